"""The averaged stochastic gradient sampler, IASG (Mandt, Hoffman & Blei 2017, §6, Algorithm 1): run constant SGD
and output the mean of each window of ``T`` iterates as one sample. With ``T = N/S`` (one pass through the data) and a
well-specified model the window mean has covariance ``≈ A⁻¹/N``, the posterior's.

- :func:`iasg_sample`: Algorithm 1 on any model, vectorised over chains (the driver of :mod:`sgdbayes.ou.driver`
  with constant SGD and a :class:`~sgdbayes.ou.observers.WindowMeans` observer), with an optional burn-in.
- :func:`iasg_window_covariance` (the paper's formula for one window), :func:`iasg_relative_error` (its shortfall
  against ``A⁻¹/(ST)`` and the bound), :func:`window_autocovariance` and :func:`expected_window_variance` (the
  correlation of consecutive samples and what a running variance of them estimates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sgdbayes.ou.averaging import averaged_covariance_exact, check_S, check_T, drift, pair, stationary_or
from sgdbayes.ou.diagnostics import VarianceTrace, running_variance, sample_cov
from sgdbayes.ou.driver import initial_states, run
from sgdbayes.ou.observers import Divergence, Samples, WindowMeans
from sgdbayes.ou.samplers import sgd
from sgdbayes.ou.theory import check_learning_rate, check_psd
from sgdbayes.seed import SeedLike, make_generator

__all__ = [
    "IASGResult",
    "expected_window_variance",
    "iasg_relative_error",
    "iasg_sample",
    "iasg_window_covariance",
    "window_autocovariance",
]


@dataclass
class IASGResult:
    """``samples`` ``[K, M, P]``: the mean of each window of ``T`` iterates (one sample per window) for ``K`` chains;
    ``raw`` ``[K, R, P]``: every ``raw_every``-th raw iterate after burn-in; ``raw_cov`` ``[P, P]``: their covariance
    pooled over chains and time (NaN when fewer than 2); ``burn_in``: iterations discarded before the first window."""

    samples: torch.Tensor
    raw_cov: np.ndarray
    raw: torch.Tensor
    T: int
    S: int
    eps: float
    burn_in: int

    def passes(self, N: int) -> np.ndarray:
        """Passes through ``N`` examples spent (burn-in included) when sample ``m`` (1-based) is out, ``[M]``."""
        M = self.samples.shape[1]
        return (self.burn_in + self.T * np.arange(1, M + 1)) * self.S / N

    def variance_trace(self, N: int) -> VarianceTrace:
        """Each chain's marginal variance of its samples so far, after each sample from the 2nd on; ``cov``: the
        covariance of all samples of all chains, each chain centred on its own mean."""
        x = self.samples.double()
        return VarianceTrace(passes=self.passes(N)[1:], var=running_variance(self.samples),
                             cov=sample_cov((x - x.mean(1, keepdim=True)).reshape(-1, x.shape[-1])))


def iasg_sample(model, *, eps: float, S: int, T: int | None = None, n_samples: int, n_chains: int = 1,
                init="mode", burn_in: int = 0, raw_every: int = 0, seed: SeedLike = 0, chunk: int = 256
                ) -> IASGResult:
    """Algorithm 1 (iterate-averaging stochastic gradients), vectorised over ``n_chains`` chains.

    Constant SGD ``θ ← θ − ε ĝ_S(θ)`` (minibatches uniform with replacement); the first ``burn_in`` iterations are
    discarded (Algorithm 1 as printed has none: from a start far from the posterior the transient then stays in
    every later variance estimate), then every window of ``T`` (default ``N/S``, one pass) consecutive iterates is
    averaged into one sample. ``init``: ``"mode"``, ``"prior"`` (draws from the prior, from the same random stream)
    or states ``[P]`` / ``[K, P]``. The learning rate must be below the stability limit ``2/λ_max(A)``; a chain that
    diverges anyway raises :class:`~sgdbayes.ou.observers.DivergenceError`."""
    N = model.N
    S = check_S(S)
    if S > N:
        raise ValueError(f"minibatch size S={S} exceeds the data size N={N}")
    T = max(1, N // S) if T is None else check_T(T)
    A = model.hessian()
    eps = check_learning_rate(eps, A)
    if n_samples < 1 or n_chains < 1 or burn_in < 0 or raw_every < 0:
        raise ValueError(f"need n_samples >= 1, n_chains >= 1, burn_in >= 0, raw_every >= 0; got {n_samples}, "
                         f"{n_chains}, {burn_in}, {raw_every}")
    gen = make_generator(seed, model.device)
    theta0 = initial_states(model, init, n_chains, gen)
    windows = WindowMeans(T, start=burn_in, n_windows=n_samples)
    observers = [windows]
    if raw_every:
        raw = Samples(start=burn_in, thin=raw_every)
        observers.append(raw)
    r = run(model, sgd(eps, S, name="IASG"), n_chains=n_chains, n_steps=burn_in + n_samples * T, init=theta0,
            seed=gen, observers=observers, A=A, divergence=Divergence(check_every=1), chunk=chunk)
    P = model.P
    if raw_every:
        raw_t = raw.samples.transpose(0, 1)
        raw_cov = sample_cov(raw_t.reshape(-1, P)) if raw_t.shape[1] * n_chains >= 2 else np.full((P, P), np.nan)
    else:
        raw_t = torch.empty(n_chains, 0, P, dtype=model.dtype, device=model.device)
        raw_cov = np.full((P, P), np.nan)
    return IASGResult(samples=windows.means, raw_cov=raw_cov, raw=raw_t, T=T, S=S, eps=eps, burn_in=burn_in)


def iasg_window_covariance(A, *, eps: float, T: int, S: int = 1) -> np.ndarray:
    """The paper's covariance of one IASG sample (mean of a window of ``T`` iterates) for a well-specified model
    (``C = A``, so ``Σ = (ε/2S) I``), ``A = UΛUᵀ``:

        A⁻¹/(ST) + (1/(εST²)) U Λ⁻² (e^{−εTΛ} − I) Uᵀ.

    With ``T = N/S`` the first term is the posterior covariance ``A⁻¹/N``."""
    A = check_psd(A, "A")
    T, S = check_T(T), check_S(S)
    eps = check_learning_rate(eps, A)
    lam, U = np.linalg.eigh(A)
    d = 1.0 / (S * T * lam) + np.expm1(-eps * T * lam) / (eps * S * T**2 * lam**2)
    return (U * d) @ U.T


def iasg_relative_error(A, *, eps: float, T: int) -> tuple[float, float]:
    """Relative error of the IASG window covariance against ``A⁻¹/(ST)``, ``(exact, bound)``.

    In eigen-direction ``k`` the window covariance is ``(1 − r_k)/(STλ_k)`` with ``r_k = (1 − e^{−x_k})/x_k``,
    ``x_k = εTλ_k``; ``r_k`` falls with ``x_k``, so the worst direction is ``λ_min``:
    ``exact = max_k r_k = r(εTλ_min) ≤ bound = min(1, 1/(εTλ_min))``. Independent of ``S``."""
    A = check_psd(A, "A")
    T = check_T(T)
    eps = check_learning_rate(eps, A)
    x = eps * T * float(np.linalg.eigvalsh(A)[0])
    return float(-np.expm1(-x) / x), float(min(1.0, 1.0 / x))


def window_autocovariance(A, C, *, eps: float, T: int, S: int = 1, H=None, max_lag: int = 1,
                          Sigma=None) -> np.ndarray:
    """Exact autocovariance ``Γ_k = Cov(μ_{j+k}, μ_j)`` ``[max_lag + 1, D, D]`` of the means of consecutive,
    non-overlapping windows of ``T`` iterates of the stationary recursion ``θ_{t+1} = Mθ_t + ξ_t``, ``M = I − εHA``:

        Γ_0 = :func:`averaged_covariance_exact`,   Γ_k = M^{(k−1)T+1} W² Σ_d / T²  (k ≥ 1),   W = Σ_{c<T} M^c.

    Consecutive IASG samples are correlated through ``Γ_1 ≈ Σ (1 − e^{−εTλ})²/(εTλ)²`` (per eigen-direction).
    ``Sigma`` replaces ``Σ_d`` as in :func:`averaged_covariance_exact`."""
    A, C = pair(A, C)
    T, S = check_T(T), check_S(S)
    eps = check_learning_rate(eps, A, H)
    if isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer)) or max_lag < 0:
        raise ValueError(f"max_lag must be an integer >= 0, got {max_lag!r}")
    Sd = stationary_or(A, C, eps, S, H, Sigma)
    I = np.eye(A.shape[0])
    K = drift(A, H, eps)
    M = I - K
    MT = np.linalg.matrix_power(M, T)
    W = np.linalg.solve(K.T, (I - MT).T).T                  # (I − M^T)(I − M)⁻¹ (they commute)
    out = np.empty((max_lag + 1,) + A.shape)
    out[0] = averaged_covariance_exact(A, C, eps=eps, T=T, S=S, H=H, Sigma=Sigma)
    P = M @ W @ W @ Sd / T**2                               # k = 1
    for k in range(1, max_lag + 1):
        out[k] = P
        P = MT @ P
    return out


def expected_window_variance(A, C, *, eps: float, T: int, S: int = 1, H=None, m, Sigma=None) -> np.ndarray:
    """Expected sample covariance (divisor ``m − 1``) of ``m`` consecutive stationary window means, for each ``m``
    in ``m`` (integers >= 2) ``[len(m), D, D]``:

        E[s²_m] = Γ_0 − (1/(m(m−1))) Σ_{k=1}^{m−1} (m − k)(Γ_k + Γ_kᵀ)

    (:func:`window_autocovariance`). It is what one chain's running IASG variance estimates: below ``Γ_0`` by the
    positive correlation of neighbouring windows, a bias that falls as ``1/m``."""
    m = np.atleast_1d(np.asarray(m))
    if m.ndim != 1 or not np.issubdtype(m.dtype, np.integer) or m.min() < 2:
        raise ValueError(f"m must be integers >= 2 (number of windows), got {m!r}")
    G = window_autocovariance(A, C, eps=eps, T=T, S=S, H=H, max_lag=int(m.max()) - 1, Sigma=Sigma)
    Gs = G[1:] + np.swapaxes(G[1:], 1, 2)                   # [m_max − 1, D, D], k = 1..
    k = np.arange(1, Gs.shape[0] + 1, dtype=float)[:, None, None]
    c1 = np.concatenate([np.zeros((1,) + A.shape[-2:]), np.cumsum(Gs, 0)])          # Σ_{k<m} G_k at index m−1
    c2 = np.concatenate([np.zeros((1,) + A.shape[-2:]), np.cumsum(k * Gs, 0)])
    mm = m.astype(float)[:, None, None]
    return G[0] - (mm * c1[m - 1] - c2[m - 1]) / (mm * (mm - 1))
