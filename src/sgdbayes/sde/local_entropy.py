"""Local entropy ``f_γ(x) = −log (G_γ * e^{−f})(x)`` (Chaudhari & Soatto 2018, §6; Chaudhari et al. 2017).

``G_γ`` is the Gaussian density of variance ``γ``; the convolution smooths ``e^{−f}``, so a wide minimum of ``f``
keeps its depth while a sharp one is washed out. Computed on a uniform 1-D grid with log-sum-exp (no overflow).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def local_entropy(f: np.ndarray, x: np.ndarray, gamma: float) -> np.ndarray:
    """``f_γ`` on the grid ``x`` (uniform, increasing) from the values ``f(x)``: the trapezoid-free Riemann sum
    ``−log Σ_y Δ · N(x − y; 0, γ) e^{−f(y)}``, accurate while ``√γ`` spans several grid steps and the grid covers
    the mass of ``e^{−f}``."""
    x = np.asarray(x, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    if x.ndim != 1 or f.shape != x.shape or x.size < 3:
        raise ValueError(f"x and f must be 1-D of the same length >= 3, got {x.shape} and {f.shape}")
    if not gamma > 0:
        raise ValueError(f"gamma (the Gaussian variance) must be > 0, got {gamma}")
    dx = np.diff(x)
    if not np.allclose(dx, dx[0], rtol=1e-9):
        raise ValueError("x must be a uniform grid")
    if not np.isfinite(f).all():
        raise ValueError("f holds NaN/inf")
    logk = -(x[:, None] - x[None, :]) ** 2 / (2 * gamma) - 0.5 * np.log(2 * np.pi * gamma) + np.log(dx[0])
    return -logsumexp(logk - f[None, :], axis=1)


def sharp_and_wide(x: np.ndarray, *, sharp: tuple[float, float, float] = (-1.0, 0.08, 0.0),
                   wide: tuple[float, float, float] = (1.2, 0.6, 0.6)) -> np.ndarray:
    """A landscape with two minima: ``f(x) = −log(e^{−f₁} + e^{−f₂})`` where ``f_i = depth_i + (x − c_i)²/(2 w_i²)``,
    each tuple ``(centre c, width w, depth)``. The sharp minimum is the deeper one by default."""
    x = np.asarray(x, dtype=np.float64)
    (c1, w1, h1), (c2, w2, h2) = sharp, wide
    return -np.logaddexp(-(h1 + (x - c1) ** 2 / (2 * w1 ** 2)), -(h2 + (x - c2) ** 2 / (2 * w2 ** 2)))
