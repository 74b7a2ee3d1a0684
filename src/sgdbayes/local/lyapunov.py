"""Stationary covariances of constant SGD for a symmetric Hessian, solved in the Hessian's eigenbasis, and their split
into the range and the null space of the gradient-noise covariance.

For symmetric ``A = V Λ Vᵀ`` and plain SGD ``θ ← θ − ε ĝ_S`` with ``Cov ĝ_S = C/S`` (Mandt et al. 2017, §3):

- continuous (Ornstein–Uhlenbeck) form ``AΣ + ΣA = (ε/S) C``:  ``(VᵀΣV)_ij = (ε/S)(VᵀCV)_ij / (λ_i + λ_j)``;
- exact discrete form ``Σ = (I − εA) Σ (I − εA) + (ε²/S) C``:  ``(VᵀΣV)_ij = (ε²/S)(VᵀCV)_ij / (1 − m_i m_j)``,
  ``m = 1 − ελ``.

One symmetric eigendecomposition (O(D³), ~1 s at D = 2,000) instead of a Bartels–Stewart solve; the same
solutions as :func:`sgdbayes.ou.theory.lyapunov_covariance` (tested on random quadratics).
"""

from __future__ import annotations

import numpy as np

__all__ = ["eigen_lyapunov", "subspace_split"]


def eigen_lyapunov(lam: np.ndarray, V: np.ndarray, C: np.ndarray, *, eps: float, S: int = 1,
                   discrete: bool = False) -> np.ndarray:
    """Stationary covariance ``[D, D]`` of constant SGD on ``½θᵀAθ`` with ``A = V diag(lam) Vᵀ`` (``lam [D]``,
    ``V [D, D]`` orthonormal, e.g. from ``numpy.linalg.eigh``) and per-example noise covariance ``C``.

    Raises ``ValueError`` when no stationary law exists: ``A`` not positive definite (continuous form) or
    ``ε ≥ 2/λ_max`` (discrete form)."""
    lam = np.asarray(lam, dtype=np.float64)
    V = np.asarray(V, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    D = lam.shape[0]
    if V.shape != (D, D) or C.shape != (D, D):
        raise ValueError(f"lam [D], V [D, D] and C [D, D] must agree; got {lam.shape}, {V.shape}, {C.shape}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    if int(S) != S or S < 1:
        raise ValueError(f"S must be an int >= 1, got {S!r}")
    Ct = V.T @ C @ V
    if discrete:
        m = 1.0 - eps * lam
        if np.abs(m).max() >= 1.0:
            raise ValueError(f"constant SGD is unstable at eps={eps:.4g}: the stability limit 2/λ_max(A) is "
                             f"{2.0 / lam.max():.4g}" if lam.max() > 0 else "A has no positive eigenvalue")
        St = (eps**2 / S) * Ct / (1.0 - np.outer(m, m))
    else:
        if lam.min() <= 0:
            raise ValueError(f"A must be positive definite for the Lyapunov form; its smallest eigenvalue is "
                             f"{lam.min():.4g}")
        St = (eps / S) * Ct / (lam[:, None] + lam[None, :])
    out = V @ St @ V.T
    return 0.5 * (out + out.T)


def subspace_split(M: np.ndarray, U_r: np.ndarray) -> dict[str, float | np.ndarray]:
    """Split a covariance ``M [D, D]`` by an orthonormal basis ``U_r [D, r]`` of a subspace (here the range of C):
    ``range`` = ``U_rᵀ M U_r`` ``[r, r]``, ``trace_range`` = its trace, ``trace_null`` = the trace of ``M`` on the
    orthogonal complement, ``cross`` = Frobenius norm of the off-diagonal block ``U_rᵀ M P_⊥``."""
    M = np.asarray(M, dtype=np.float64)
    U_r = np.asarray(U_r, dtype=np.float64)
    R = U_r.T @ M @ U_r
    MU = M @ U_r
    cross = MU - U_r @ R  # P_⊥ M U_r
    return {"range": R, "trace_range": float(np.trace(R)), "trace_null": float(np.trace(M) - np.trace(R)),
            "cross": float(np.linalg.norm(cross))}
