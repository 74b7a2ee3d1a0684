"""The linear case (Chaudhari & Soatto 2018, §5.2): ``dx = −F x dt + √(2β⁻¹D) dW`` with constant ``D``.

The stationary law is ``N(0, Σ)`` with ``F Σ + Σ Fᵀ = 2β⁻¹ D`` (continuous Lyapunov equation). Writing
``ρ^ss ∝ e^{−βΦ}`` gives ``Φ(x) = ½ xᵀ U x`` with ``U = β⁻¹ Σ⁻¹``, and ``F = (D + Q) U`` with ``Q = β F Σ − D``
antisymmetric. For a quadratic loss ``f = ½ xᵀ H x`` (``F = H``) with ``D`` not commuting with ``H``: ``Q ≠ 0``,
``Φ ≠ f`` (up to scale) and the force ``j(x) = −F x + D U x = −Q U x`` drives a rotating current ``J = j ρ^ss``
with ``j · ∇Φ = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg

from sgdbayes.sde.simulate import euler_maruyama
from sgdbayes.seed import SeedLike


def _as_matrix(name: str, a, d: int | None = None) -> np.ndarray:
    a = np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or (d is not None and a.shape[0] != d):
        raise ValueError(f"{name} must be a square [{d or 'd'}, {d or 'd'}] matrix, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN/inf")
    return a


@dataclass
class LinearSDE:
    """``dx = −F x dt + √(2β⁻¹D) dW`` (float64 theory)."""

    F: np.ndarray
    D: np.ndarray
    beta_inv: float = 1.0

    def __post_init__(self) -> None:
        self.F = _as_matrix("F", self.F)
        self.D = _as_matrix("D", self.D, self.F.shape[0])
        if not np.allclose(self.D, self.D.T, atol=1e-12 * max(1.0, np.abs(self.D).max())):
            raise ValueError("D must be symmetric")
        if np.linalg.eigvalsh(self.D).min() <= 0:
            raise ValueError(f"D must be positive definite, eigenvalues {np.linalg.eigvalsh(self.D)}")
        if np.linalg.eigvals(self.F).real.min() <= 0:
            raise ValueError(f"F must be stable (eigenvalues with positive real part), got {np.linalg.eigvals(self.F)}")
        if not self.beta_inv > 0:
            raise ValueError(f"beta_inv must be > 0, got {self.beta_inv}")

    @property
    def d(self) -> int:
        return self.F.shape[0]

    def covariance(self) -> np.ndarray:
        """Stationary ``Σ``: ``F Σ + Σ Fᵀ = 2β⁻¹ D``."""
        s = linalg.solve_continuous_lyapunov(self.F, 2 * self.beta_inv * self.D)
        return 0.5 * (s + s.T)

    def euler_covariance(self, dt: float) -> np.ndarray:
        """Stationary covariance of the Euler–Maruyama chain with step ``dt`` (discrete Lyapunov equation
        ``Σ = A Σ Aᵀ + 2β⁻¹D dt``, ``A = I − F dt``); equals :meth:`covariance` + O(dt)."""
        a = np.eye(self.d) - self.F * dt
        if np.abs(np.linalg.eigvals(a)).max() >= 1:
            raise ValueError(f"dt={dt} makes the Euler chain unstable for this F")
        s = linalg.solve_discrete_lyapunov(a, 2 * self.beta_inv * self.D * dt)
        return 0.5 * (s + s.T)

    def U(self) -> np.ndarray:
        """``Φ(x) = ½ xᵀ U x``, ``U = β⁻¹ Σ⁻¹``."""
        return self.beta_inv * np.linalg.inv(self.covariance())

    def Q(self) -> np.ndarray:
        """Antisymmetric part in ``F = (D + Q) U``: ``Q = β F Σ − D``."""
        return self.F @ self.covariance() / self.beta_inv - self.D

    def force(self, x: np.ndarray) -> np.ndarray:
        """``j(x) = −Q U x`` for ``x [..., d]``."""
        return -np.asarray(x) @ (self.Q() @ self.U()).T

    def simulate(self, n_particles: int, *, dt: float, n_steps: int, seed: SeedLike = 0,
                 device: str | torch.device = "cpu") -> torch.Tensor:
        """Final positions ``[M, d]`` of ``M`` particles started at 0 (Euler–Maruyama, float64)."""
        f = torch.as_tensor(self.F, device=device)
        sig = torch.as_tensor(np.linalg.cholesky(2 * self.beta_inv * self.D), device=device)
        x0 = torch.zeros(n_particles, self.d, dtype=torch.float64, device=device)
        return euler_maruyama(lambda x: -x @ f.T, x0, dt=dt, n_steps=n_steps, sigma=sig, seed=seed).final


def non_commuting_example(angle: float = np.pi / 3, h: tuple[float, float] = (1.0, 0.25),
                          d_eig: tuple[float, float] = (1.0, 0.1), beta_inv: float = 1.0) -> LinearSDE:
    """``f = ½ xᵀHx`` with ``H = diag(h)`` and ``D = R(angle) diag(d_eig) R(angle)ᵀ``: non-commuting unless the
    angle is a multiple of π/2 or one of them is isotropic."""
    c, s = np.cos(angle), np.sin(angle)
    r = np.array([[c, -s], [s, c]])
    return LinearSDE(F=np.diag(h), D=r @ np.diag(d_eig) @ r.T, beta_inv=beta_inv)


def sample_covariance_zscores(x: torch.Tensor, sigma: np.ndarray) -> np.ndarray:
    """z-scores of the sample covariance of zero-mean samples ``x [M, d]`` against ``sigma``:
    ``(S_ij − Σ_ij) / √((Σ_ii Σ_jj + Σ_ij²)/M)`` (the Gaussian sampling variance of ``S_ij``)."""
    xs = x.detach().cpu().double().numpy()
    m = xs.shape[0]
    s = xs.T @ xs / m
    se = np.sqrt((np.outer(np.diag(sigma), np.diag(sigma)) + sigma ** 2) / m)
    return (s - sigma) / se
