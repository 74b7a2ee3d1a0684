"""The minimum of the potential Φ moves away from the minimum of the loss f as the temperature β⁻¹ grows.

One dimension, SGD's own noise: per-sample losses ``f_k(x) = a_k (x − c_k)²/2`` (k = 1..N), ``f = mean_k f_k`` with
``f'(x) = ā x − mean(ac)`` and minimum ``x_f = mean(ac)/ā``, and the gradient-noise variance of one sample
``D(x) = var_k(a_k (x − c_k)) = A x² + B x + C`` with ``A = var(a)``, ``B = −2 cov(a, ac)``, ``C = var(ac)``
(population moments). The Itô SDE ``dx = −f'(x) dt + √(2β⁻¹ D(x)) dW`` has no current in 1-D, so its stationary
density is ``ρ(x) ∝ exp(−∫ f'/(β⁻¹D) dx) / D(x)``, i.e. ``Φ(x) = ∫ f'/D dx + β⁻¹ log D(x)`` (``ρ ∝ e^{−βΦ}``).
Its critical point solves ``f'(x) + β⁻¹ D'(x) = 0``:

    x_Φ = (ā x_f − β⁻¹ B) / (ā + 2β⁻¹ A)  =  x_f − β⁻¹ D'(x_f)/ā + O(β⁻²),

so the most likely iterate drifts away from the loss minimum linearly in β⁻¹ while ``x_f`` stays put.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sgdbayes.seed import make_generator

__all__ = ["Quadratic1D", "quadratic_1d_problem", "sde_samples", "smoothed_mode", "stationary_density_1d"]


@dataclass(frozen=True)
class Quadratic1D:
    """Per-sample curvatures ``a [N]`` and centres ``c [N]`` of ``f_k = a_k (x − c_k)²/2`` (float64)."""

    a: np.ndarray
    c: np.ndarray

    @property
    def a_mean(self) -> float:
        return float(self.a.mean())

    @property
    def x_f(self) -> float:
        """Minimum of the loss."""
        return float((self.a * self.c).mean() / self.a.mean())

    @property
    def noise_coefficients(self) -> tuple[float, float, float]:
        """``(A, B, C)`` of ``D(x) = A x² + B x + C``."""
        a, ac = self.a, self.a * self.c
        cov = float(((a - a.mean()) * (ac - ac.mean())).mean())
        return float(a.var()), -2.0 * cov, float(ac.var())

    def grad(self, x):
        return self.a_mean * x - float((self.a * self.c).mean())

    def noise(self, x):
        """``D(x)``, checked against the per-sample gradients in the tests."""
        aa, bb, cc = self.noise_coefficients
        return aa * x * x + bb * x + cc

    def potential_minimum(self, beta_inv: float) -> float:
        """``x_Φ(β⁻¹) = (ā x_f − β⁻¹ B)/(ā + 2β⁻¹ A)``."""
        if beta_inv < 0:
            raise ValueError(f"the temperature β⁻¹ must be >= 0, got {beta_inv}")
        aa, bb, _ = self.noise_coefficients
        return (self.a_mean * self.x_f - beta_inv * bb) / (self.a_mean + 2 * beta_inv * aa)

    def first_order_shift(self, beta_inv: float) -> float:
        """``−β⁻¹ D'(x_f)/ā``."""
        aa, bb, _ = self.noise_coefficients
        return -beta_inv * (2 * aa * self.x_f + bb) / self.a_mean


def quadratic_1d_problem(n: int = 100, *, seed: int = 0) -> Quadratic1D:
    """``a_k = 1 + 0.6 u_k``, ``c_k = 1.5 u_k + 0.3 ε_k`` with ``u ~ U(−1, 1)``, ``ε ~ N(0, 1)``: every ``f_k`` is
    convex, and curvature and centre are correlated, so ``D`` is far from constant near ``x_f``."""
    if n < 3:
        raise ValueError(f"need N >= 3 samples, got {n}")
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1, 1, n)
    return Quadratic1D(a=1 + 0.6 * u, c=1.5 * u + 0.3 * rng.standard_normal(n))


def stationary_density_1d(problem: Quadratic1D, beta_inv: float, grid: np.ndarray) -> np.ndarray:
    """``ρ(x) ∝ exp(−∫ f'/(β⁻¹D)) / D`` on a uniform ``grid`` (trapezoid integral from ``x_f``), normalised."""
    if not beta_inv > 0:
        raise ValueError(f"the temperature β⁻¹ must be > 0, got {beta_inv}")
    g = np.asarray(grid, dtype=np.float64)
    dx = np.diff(g)
    if g.ndim != 1 or g.size < 3 or not np.allclose(dx, dx[0]):
        raise ValueError("grid must be a uniform 1-D array of at least 3 points")
    d = problem.noise(g)
    if (d <= 0).any():
        raise ValueError("D(x) must be > 0 on the grid")
    integrand = problem.grad(g) / (beta_inv * d)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * dx)])
    logr = -cum - np.log(d)
    r = np.exp(logr - logr.max())
    return r / (r.sum() * dx[0])


def sde_samples(problem: Quadratic1D, beta_inv: float, *, particles: int, dt: float, burn_in: int, steps: int,
                record_every: int, seed: int = 0) -> np.ndarray:
    """Euler–Maruyama for the Itô SDE from ``x_f``: positions every ``record_every`` steps after ``burn_in`` →
    ``[records, particles]`` (float64)."""
    if not beta_inv > 0 or not dt > 0 or particles < 2 or steps < 1 or record_every < 1 or burn_in < 0:
        raise ValueError(f"need β⁻¹ > 0, dt > 0, particles >= 2, steps >= 1, record_every >= 1, burn_in >= 0; "
                         f"got {beta_inv}, {dt}, {particles}, {steps}, {record_every}, {burn_in}")
    gen = make_generator(seed)
    aa, bb, cc = problem.noise_coefficients
    am, amc = problem.a_mean, float((problem.a * problem.c).mean())
    x = torch.full((particles,), problem.x_f, dtype=torch.float64)
    scale = math.sqrt(2 * beta_inv * dt)
    out = []
    for k in range(1, burn_in + steps + 1):
        d = aa * x * x + bb * x + cc
        x = x - (am * x - amc) * dt + scale * torch.sqrt(d) * torch.randn(particles, generator=gen,
                                                                           dtype=torch.float64)
        if k > burn_in and (k - burn_in) % record_every == 0:
            out.append(x.clone())
    if not out:
        raise ValueError("no record taken: steps < record_every")
    res = torch.stack(out).numpy()
    if not np.isfinite(res).all():
        raise FloatingPointError(f"the SDE diverged; dt = {dt} is too large for β⁻¹ = {beta_inv}")
    return res


def smoothed_mode(samples: np.ndarray, bandwidth: float, start: float, *, iters: int = 200,
                  tol: float = 1e-10) -> float:
    """Mode of the Gaussian kernel density estimate with ``bandwidth`` by mean-shift iterations from ``start``.

    The same smoothing applied to the exact density (:func:`smoothed_density_mode`) gives the value this estimates,
    so the comparison carries no smoothing bias."""
    s = np.asarray(samples, dtype=np.float64).ravel()
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    m = float(start)
    for _ in range(iters):
        w = np.exp(-0.5 * ((s - m) / bandwidth) ** 2)
        new = float((w * s).sum() / w.sum())
        if abs(new - m) < tol:
            return new
        m = new
    return m


def smoothed_density_mode(grid: np.ndarray, density: np.ndarray, bandwidth: float) -> float:
    """Mode of ``density * N(0, bandwidth²)`` on a uniform grid (parabolic refinement around the grid maximum)."""
    g = np.asarray(grid, dtype=np.float64)
    h = g[1] - g[0]
    half = int(math.ceil(6 * bandwidth / h))
    k = np.exp(-0.5 * ((np.arange(-half, half + 1) * h) / bandwidth) ** 2)
    sm = np.convolve(density, k / k.sum(), mode="same")
    i = int(np.argmax(sm[half:-half])) + half
    y0, y1, y2 = sm[i - 1], sm[i], sm[i + 1]
    return float(g[i] + 0.5 * h * (y0 - y2) / (y0 - 2 * y1 + y2))
