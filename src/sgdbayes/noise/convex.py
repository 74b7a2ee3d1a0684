"""Sampling with and without replacement in a convex case: SGD on least squares, measured and in closed form.

Per-sample losses ``f_k(w) = ½ (x_kᵀw − y_k)²``, ``f = (1/N) Σ f_k``, minimum ``w*``, Hessian ``H = XᵀX/N`` and
gradient-noise covariance at the minimum ``D* = (1/N) Σ r_k² x_k x_kᵀ`` (``r_k = y_k − x_kᵀw*``; the mean gradient
is zero there). A mini-batch of ``b`` indices drawn with replacement has gradient covariance ``D/b``; a simple
random sample without replacement has ``(D/b)(N − b)/(N − 1)``. So the SDE temperature of the second is smaller by
``c = (N − b)/(N − 1)`` (≈ ``1 − b/N``, the paper's factor) and, to first order in ``η``, so is the stationary excess
loss ``E[f] − f* = η tr(D*)/(4b) · c``.

Exact discrete-time second moment: with ``e = w − w*`` and ``H_B``, ``m_B`` the batch Hessian and batch mean of
``x_k r_k``, ``e' = (I − ηH_B) e + η m_B`` and, at stationarity (``E[e] = 0``),
``S = E[(I − ηH_B) S (I − ηH_B)] + η² E[m_B m_Bᵀ]`` with ``E[H_B S H_B] = HSH + (c/b)(M(S) − HSH)``,
``M(S) = (1/N) Σ (x_kᵀ S x_k) x_k x_kᵀ`` and ``E[m_B m_Bᵀ] = (c/b) D*`` (``c = 1`` with replacement). The linear
system in ``S`` is solved exactly; ``E[f] − f* = ½ tr(HS)``. This includes the multiplicative part of the noise that
the constant-``D`` SDE leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sgdbayes.seed import make_generator

__all__ = ["LeastSquares", "least_squares_problem", "sampling_factor", "sgd_excess_chains", "stationary_excess"]

SCHEMES = ("with", "without")


def sampling_factor(n: int, b: int, scheme: str) -> float:
    """Variance factor of a mini-batch mean relative to sampling with replacement: 1, or ``(N − b)/(N − 1)``."""
    _check_nb(n, b)
    if scheme == "with":
        return 1.0
    if scheme == "without":
        return (n - b) / (n - 1)
    raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")


def _check_nb(n: int, b: int) -> None:
    if n < 2:
        raise ValueError(f"N must be >= 2, got {n}")
    if not 1 <= b <= n:
        raise ValueError(f"batch size b must be in [1, N = {n}], got {b}")


@dataclass(frozen=True)
class LeastSquares:
    """A least-squares problem and its exact quantities (float64): ``x [N, d]``, ``y [N]``, ``w_star``, ``f_star``,
    ``hessian`` ``H``, ``noise`` ``D*``."""

    x: np.ndarray
    y: np.ndarray
    w_star: np.ndarray
    f_star: float
    hessian: np.ndarray
    noise: np.ndarray

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def d(self) -> int:
        return self.x.shape[1]

    def loss(self, w: np.ndarray) -> np.ndarray:
        """``f(w)`` for ``w [..., d]``."""
        r = np.asarray(w) @ self.x.T - self.y
        return 0.5 * (r**2).mean(-1)


def least_squares_problem(n: int, d: int, *, noise_sd: float = 1.0, seed: int = 0) -> LeastSquares:
    """Gaussian inputs ``x ~ N(0, I_d)``, ``y = xᵀw₀ + ε``, ``ε ~ N(0, noise_sd²)``, ``w₀ ~ N(0, I)``."""
    if n < d + 2:
        raise ValueError(f"need N >= d + 2 samples for a unique, noisy minimum; got N = {n}, d = {d}")
    if d < 1 or not noise_sd > 0:
        raise ValueError(f"need d >= 1 and noise_sd > 0, got d = {d}, noise_sd = {noise_sd}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w0 = rng.standard_normal(d)
    y = x @ w0 + noise_sd * rng.standard_normal(n)
    w_star = np.linalg.lstsq(x, y, rcond=None)[0]
    r = y - x @ w_star
    h = x.T @ x / n
    dstar = (x * (r**2)[:, None]).T @ x / n
    return LeastSquares(x=x, y=y, w_star=w_star, f_star=float(0.5 * (r**2).mean()), hessian=h, noise=dstar)


def stationary_excess(problem: LeastSquares, lr: float, b: int, scheme: str) -> float:
    """Exact stationary ``E[f(w)] − f*`` of SGD with step ``lr`` and batch ``b`` under ``scheme``."""
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    c = sampling_factor(problem.n, b, scheme)
    h, x = problem.hessian, problem.x
    d = problem.d
    k = c / b
    # L(S) = η(HS + SH) − η²HSH − η² k (M(S) − HSH) = η² k D*, applied to the basis E_ij (column-major vec)
    cols = []
    for j in range(d):
        for i in range(d):
            s = np.zeros((d, d))
            s[i, j] = 1.0
            m = (x * np.einsum("ni,ij,nj->n", x, s, x)[:, None]).T @ x / problem.n
            hsh = h @ s @ h
            cols.append((lr * (h @ s + s @ h) - lr**2 * hsh - lr**2 * k * (m - hsh)).ravel(order="F"))
    op = np.stack(cols, axis=1)
    rhs = (lr**2 * k * problem.noise).ravel(order="F")
    s = np.linalg.solve(op, rhs).reshape(d, d, order="F")
    s = 0.5 * (s + s.T)
    if np.linalg.eigvalsh(s).min() < -1e-12 * abs(s).max():
        raise FloatingPointError(f"lr = {lr} has no stationary second moment (SGD diverges in mean square)")
    return float(0.5 * np.trace(h @ s))


def sgd_excess_chains(problem: LeastSquares, *, lr: float, b: int, chains: int, steps: int, burn_in: int,
                      seed: int = 0, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Time-averaged excess loss ``f(w_k) − f*`` over steps ``burn_in < k <= steps`` of ``chains`` independent pairs
    of SGD chains started at ``w*`` (float64) → ``(with replacement [chains], without [chains])``.

    In each pair one chain draws ``b`` indices uniformly with replacement each step, the other a simple random sample
    of ``b`` distinct indices; the two draws are coupled (:func:`sgdbayes.noise.replicas.coupled_batches`) so the
    pair shares most of its noise, which leaves each chain's law unchanged and tightens the ratio of the two means.
    """
    from sgdbayes.noise.replicas import coupled_batches

    _check_nb(problem.n, b)
    if not lr > 0 or chains < 2 or steps <= burn_in or burn_in < 0:
        raise ValueError(f"need lr > 0, chains >= 2, 0 <= burn_in < steps; got lr = {lr}, chains = {chains}, "
                         f"burn_in = {burn_in}, steps = {steps}")
    dev = torch.device(device)
    gen = make_generator(seed, device=dev)
    x = torch.as_tensor(problem.x, device=dev)
    y = torch.as_tensor(problem.y, device=dev)
    n = problem.n
    wstar = torch.as_tensor(problem.w_star, device=dev)
    w = wstar.expand(2 * chains, -1).clone()  # [with C | without C]
    h = torch.as_tensor(problem.hessian, device=dev)
    total = torch.zeros(2 * chains, dtype=torch.float64, device=dev)
    for k in range(1, steps + 1):
        idx = torch.cat(coupled_batches(n, b, chains, gen, dev))
        xb, yb = x[idx], y[idx]  # [2C, b, d], [2C, b]
        r = torch.einsum("cbd,cd->cb", xb, w) - yb
        w = w - lr * torch.einsum("cbd,cb->cd", xb, r) / b
        if k > burn_in:
            e = w - wstar
            total += 0.5 * torch.einsum("ci,ij,cj->c", e, h, e)
        if k % 500 == 0 and not torch.isfinite(w).all():
            raise FloatingPointError(f"SGD diverged by step {k}; lr = {lr} is too large")
    if not torch.isfinite(total).all():
        raise FloatingPointError(f"SGD diverged; lr = {lr} is too large")
    mean = (total / (steps - burn_in)).cpu().numpy()
    return mean[:chains], mean[chains:]
