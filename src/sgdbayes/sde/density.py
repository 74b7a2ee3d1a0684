"""Comparing simulated particles with an analytic stationary density, and estimating probability currents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats


@dataclass(frozen=True)
class DensityCheck:
    """Pearson χ² goodness of fit of ``M`` independent samples to a density over 2-D bins.

    ``chi2``, ``dof``, ``p_value``; ``tv``: total-variation distance between bin frequencies and bin probabilities
    (the mass outside the grid is one extra bin); ``tv_noise``: its expected size from Monte Carlo alone,
    ``Σ √(p(1−p)/M)·√(2/π)/2``.
    """

    chi2: float
    dof: int
    p_value: float
    tv: float
    tv_noise: float
    counts: np.ndarray
    expected: np.ndarray


def bin_probabilities(density: Callable[[torch.Tensor], torch.Tensor], edges_x: np.ndarray, edges_y: np.ndarray,
                      sub: int = 8) -> np.ndarray:
    """Probability of each 2-D bin ``[len(ex)-1, len(ey)-1]`` by the ``sub × sub`` Gauss–Legendre rule per bin."""
    nodes, weights = np.polynomial.legendre.leggauss(sub)
    ex, ey = np.asarray(edges_x, float), np.asarray(edges_y, float)
    cx = (ex[:-1, None] + ex[1:, None]) / 2 + (ex[1:, None] - ex[:-1, None]) / 2 * nodes  # [bx, sub]
    cy = (ey[:-1, None] + ey[1:, None]) / 2 + (ey[1:, None] - ey[:-1, None]) / 2 * nodes
    wx = (ex[1:, None] - ex[:-1, None]) / 2 * weights
    wy = (ey[1:, None] - ey[:-1, None]) / 2 * weights
    gx = torch.as_tensor(cx, dtype=torch.float64)[:, :, None, None].expand(-1, -1, cy.shape[0], sub)
    gy = torch.as_tensor(cy, dtype=torch.float64)[None, None].expand(cx.shape[0], sub, -1, -1)
    rho = density(torch.stack([gx, gy], -1)).numpy()  # [bx, sub, by, sub]
    return np.einsum("aibj,ai,bj->ab", rho, wx, wy)


def chi2_density_check(samples: torch.Tensor, density: Callable[[torch.Tensor], torch.Tensor],
                       edges_x: np.ndarray, edges_y: np.ndarray, min_expected: float = 5.0) -> DensityCheck:
    """χ² test of independent samples ``[M, 2]`` against ``density`` on the given bins.

    Bins expecting fewer than ``min_expected`` samples are pooled with the outside-the-grid mass into one bin.
    """
    if samples.dim() != 2 or samples.shape[1] != 2:
        raise ValueError(f"samples must be [M, 2], got shape {tuple(samples.shape)}")
    s = samples.detach().cpu().double().numpy()
    if not np.isfinite(s).all():
        raise FloatingPointError("samples hold NaN/inf")
    m = s.shape[0]
    counts, _, _ = np.histogram2d(s[:, 0], s[:, 1], bins=[edges_x, edges_y])
    p = bin_probabilities(density, edges_x, edges_y)
    outside_p = max(1.0 - p.sum(), 0.0)
    outside_c = m - counts.sum()
    exp = p * m
    keep = exp >= min_expected
    obs = np.append(counts[keep], outside_c + counts[~keep].sum())
    ex = np.append(exp[keep], (outside_p + p[~keep].sum()) * m)
    if ex[-1] < 1e-9:
        obs, ex = obs[:-1], ex[:-1]
    chi2 = float(((obs - ex) ** 2 / ex).sum())
    dof = obs.size - 1
    pf = ex / m
    tv = 0.5 * float(np.abs(obs / m - pf).sum())
    tv_noise = 0.5 * float(np.sqrt(pf * (1 - pf) / m).sum() * np.sqrt(2 / np.pi))
    return DensityCheck(chi2=chi2, dof=dof, p_value=float(stats.chi2.sf(chi2, dof)), tv=tv, tv_noise=tv_noise,
                        counts=counts, expected=exp)


def empirical_current(path: torch.Tensor, dt: float, edges_x: np.ndarray, edges_y: np.ndarray) -> np.ndarray:
    """Stratonovich estimate of the probability current from a recorded path ``[K, M, 2]`` with step ``dt``:
    ``J(bin) ≈ Σ (x_{k+1} − x_k) 1[(x_k + x_{k+1})/2 ∈ bin] / (dt · (K−1)M · area)``. Returns ``[bx, by, 2]``."""
    if path.dim() != 3 or path.shape[2] != 2 or path.shape[0] < 2:
        raise ValueError(f"path must be [K >= 2, M, 2], got shape {tuple(path.shape)}")
    p = path.detach().cpu().double().numpy()
    mid = 0.5 * (p[1:] + p[:-1]).reshape(-1, 2)
    inc = (p[1:] - p[:-1]).reshape(-1, 2)
    area = np.outer(np.diff(edges_x), np.diff(edges_y))
    out = np.stack([np.histogram2d(mid[:, 0], mid[:, 1], bins=[edges_x, edges_y], weights=inc[:, i])[0]
                    for i in range(2)], -1)
    return out / (dt * mid.shape[0] * area[..., None])
