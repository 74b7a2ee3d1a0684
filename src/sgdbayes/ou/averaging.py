"""Polyak averaging of constant-SGD iterates (Mandt, Hoffman & Blei 2017, §6): the covariance of the mean of ``T``
stationary iterates, beside the stationary theory of :mod:`sgdbayes.ou.theory`.

Notation as there: ``A`` the Hessian of the average loss at the optimum, ``C = BBᵀ`` the per-example gradient
covariance, minibatch noise ``C/S``, update ``θ ← θ − ε H ĝ_S``. Near the optimum this is the linear recursion

    θ_{t+1} = M θ_t + ξ_t,   M = I − εHA,   Cov ξ_t = Q = ε² H C Hᵀ / S,

whose stationary covariance is ``Σ`` (:func:`~sgdbayes.ou.theory.lyapunov_covariance`). The average
``μ_T = (1/T) Σ_{t=1..T} θ_t`` of ``T`` stationary iterates has covariance

* leading order (the paper's result): ``(1/εT)(A'⁻¹Σ + ΣA'⁻ᵀ) = A⁻¹CA⁻ᵀ/(TS)`` (:func:`averaged_covariance_theory`),
  independent of ``ε``, ``S`` and ``H``; with a well-specified model (``C = A``) and ``T = N/S`` this is ``A⁻¹/N``,
  the posterior covariance;
* continuous time (OU), any ``T`` (:func:`averaged_covariance_ou`);
* exactly, in discrete time (:func:`averaged_covariance_exact`).

The window statistics of IASG (one sample per window) are in :mod:`sgdbayes.ou.iasg`. Everything is float64 numpy.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from sgdbayes.ou.theory import as_preconditioner, check_learning_rate, check_psd, lyapunov_covariance

__all__ = [
    "averaged_covariance_exact",
    "averaged_covariance_ou",
    "averaged_covariance_theory",
    "check_S",
    "check_T",
]


def check_T(T) -> int:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) and not (isinstance(T, float) and T.is_integer()):
        raise TypeError(f"averaging window T must be an integer number of iterations, got {T!r}")
    T = int(T)
    if T < 1:
        raise ValueError(f"averaging window T must be >= 1 iteration, got T={T}")
    return T


def check_S(S) -> int:
    if isinstance(S, bool) or not isinstance(S, (int, np.integer)):
        raise TypeError(f"minibatch size S must be an integer, got {S!r}")
    if S < 1:
        raise ValueError(f"minibatch size S must be >= 1, got S={S}")
    return int(S)


def pair(A, C):
    A = check_psd(A, "A")
    C = check_psd(C, "C (= BBᵀ)", strict=False)
    if A.shape != C.shape:
        raise ValueError(f"dimension mismatch: A is {A.shape} but C (= BBᵀ) is {C.shape}; both must be [D, D]")
    return A, C


def averaged_covariance_theory(A, C, *, T: int, S: int = 1) -> np.ndarray:
    """Leading-order covariance of the average of ``T`` stationary SGD iterates, ``A⁻¹ C A⁻ᵀ / (T S)`` ``[D, D]``.

    Depends on ``T·S`` (examples processed) only; the asymptotic (sandwich) covariance of the M-estimator from ``TS``
    examples, the Cramér–Rao bound ``A⁻¹/(TS)`` when the model is well specified (``C = A``)."""
    A, C = pair(A, C)
    T, S = check_T(T), check_S(S)
    Ainv = np.linalg.inv(A)
    out = Ainv @ C @ Ainv.T / (T * S)
    return 0.5 * (out + out.T)


def drift(A, H, eps) -> np.ndarray:
    return eps * as_preconditioner(H, A.shape[0]) @ A


def averaged_covariance_ou(A, C, *, eps: float, T: int, S: int = 1, H=None, leading: bool = False) -> np.ndarray:
    """Covariance of ``(1/T)∫_0^T θ(t) dt`` for the stationary OU process ``dθ = −K θ dt + …``, ``K = εHA``, time in
    iterations, ``Σ`` the continuous Lyapunov covariance:

        Cov = (1/T²)(G Σ + Σ Gᵀ),   G = ∫_0^T (T − τ) e^{−Kτ} dτ = T K⁻¹ − K⁻² (I − e^{−KT}).

    ``leading=True`` keeps only ``G ≈ T K⁻¹``: the paper's ``(1/εT)(A'⁻¹Σ + ΣA'⁻ᵀ)``, ``A' = HA``."""
    A, C = pair(A, C)
    T, S = check_T(T), check_S(S)
    eps = check_learning_rate(eps, A, H)
    Sigma = lyapunov_covariance(A, C, eps=eps, S=S, H=H)
    K = drift(A, H, eps)
    Kinv = np.linalg.inv(K)
    G = T * Kinv
    if not leading:
        G = G - Kinv @ Kinv @ (np.eye(A.shape[0]) - scipy.linalg.expm(-K * T))
    out = (G @ Sigma + Sigma @ G.T) / T**2
    return 0.5 * (out + out.T)


def averaged_covariance_exact(A, C, *, eps: float, T: int, S: int = 1, H=None, Sigma=None) -> np.ndarray:
    """Exact covariance of ``(1/T) Σ_{t=1..T} θ_t`` for the stationary linear recursion ``θ_{t+1} = Mθ_t + ξ_t``,
    ``M = I − εHA``, ``Cov ξ = ε² H C Hᵀ / S``, with ``Σ_d`` the discrete Lyapunov covariance:

        Cov = (1/T²)(T Σ_d + F Σ_d + Σ_d Fᵀ),   F = Σ_{k=1}^{T−1} (T−k) M^k = T(I−M)⁻¹ − M(I−M^T)(I−M)⁻² − T I.

    As ``T → ∞``, ``T·Cov → A⁻¹CA⁻ᵀ/S`` for *every* stable ``ε`` (the discrete recursion has no ``O(ε)`` bias in the
    average); the finite-``T`` terms grow as ``ε`` approaches the stability limit (``M`` has eigenvalues near −1).

    ``Sigma``: the iterates' stationary covariance to use instead of ``Σ_d`` — the formula only needs
    ``E[θ_{t+k} | θ_t] = M^k θ_t``, which also holds with state-dependent noise (:func:`linreg_sgd_covariance`)."""
    A, C = pair(A, C)
    T, S = check_T(T), check_S(S)
    eps = check_learning_rate(eps, A, H)
    Sd = stationary_or(A, C, eps, S, H, Sigma)
    D = A.shape[0]
    I = np.eye(D)
    K = drift(A, H, eps)             # I − M
    M = I - K
    Kinv = np.linalg.inv(K)
    MT = np.linalg.matrix_power(M, T)
    F = T * Kinv - M @ (I - MT) @ Kinv @ Kinv - T * I
    out = (T * Sd + F @ Sd + Sd @ F.T) / T**2
    return 0.5 * (out + out.T)


def stationary_or(A, C, eps, S, H, Sigma) -> np.ndarray:
    if Sigma is None:
        return lyapunov_covariance(A, C, eps=eps, S=S, H=H, discrete=True)
    Sigma = check_psd(Sigma, "Sigma")
    if Sigma.shape != A.shape:
        raise ValueError(f"dimension mismatch: Sigma is {Sigma.shape} but A is {A.shape}")
    return Sigma
