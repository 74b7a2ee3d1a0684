"""Stationary laws of constant-rate stochastic-gradient samplers near an optimum (Mandt, Hoffman & Blei 2017, §3–5).

Notation (all float64 numpy arrays):

- ``A`` ``[D, D]``: Hessian of the *average* loss ``L(θ) = (1/N) Σ_n ℓ_n(θ)`` at the optimum (symmetric positive
  definite); the posterior is approximately ``N(θ*, (N A)⁻¹)``.
- ``C = BBᵀ`` ``[D, D]``: covariance of one per-example gradient ``∇ℓ_n`` (symmetric positive semi-definite); a
  minibatch of ``S`` examples has gradient noise covariance ``C / S``.
- ``ε``: constant learning rate; ``H`` ``[D, D]`` (or a vector, meaning ``diag(H)``): preconditioner, the update is
  ``θ ← θ − ε H ĝ_S``. With the paper's optimal ``H*`` the learning rate is folded into ``H``: use ``eps=1``.

Each sampler is a linear recursion ``θ_{t+1} = (I − K) θ_t + ξ_t`` with ``Cov ξ_t = Q`` near the optimum. Its
stationary covariance solves, to first order in the step (the Ornstein–Uhlenbeck/Lyapunov approximation),

    K Σ + Σ Kᵀ = Q,

and exactly (for a quadratic loss with Gaussian gradient noise) the discrete Lyapunov equation

    Σ = (I − K) Σ (I − K)ᵀ + Q,

which is available with ``discrete=True``; the two differ at relative order ``ε λ_max(HA)``. For plain SGD
``K = εHA`` and ``Q = ε² H C Hᵀ / S``, so the continuous form is ``HA Σ + Σ A H = (ε/S) H C H``, i.e. the paper's
``ΣA + AΣ = (ε/S) BBᵀ`` when ``H = I``. The recursion is stable iff the spectral radius of ``I − K`` is below one:
for SGD with a positive definite ``H`` this is ``ε < 2 / λ_max(HA)`` (:func:`stability_limit`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg

__all__ = [
    "StabilityWarning",
    "as_preconditioner",
    "check_learning_rate",
    "check_psd",
    "gaussian_kl",
    "kl_to_posterior",
    "linreg_sgd_covariance",
    "lyapunov_covariance",
    "momentum_covariance",
    "optimal_learning_rate",
    "optimal_preconditioner",
    "sgfs_covariance",
    "sgfs_optimal_preconditioner",
    "sgld_covariance",
    "sgld_covariance_parts",
    "stability_limit",
    "stationary_covariance",
]


class StabilityWarning(RuntimeWarning):
    """The learning rate is at or above the stability limit: the iterates diverge instead of reaching a stationary law."""


# --------------------------------------------------------------------------------------------------------- validation

def _as_matrix(M, name: str) -> np.ndarray:
    if hasattr(M, "detach"):
        M = M.detach().cpu().numpy()
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ValueError(f"{name} must be a square [D, D] matrix with D >= 1, got shape {M.shape}")
    if not np.all(np.isfinite(M)):
        raise ValueError(f"{name} contains NaN or inf entries; it must be finite")
    return M


def check_psd(M, name: str, *, strict: bool = True, rtol: float = 1e-10) -> np.ndarray:
    """Return ``M`` as a symmetric float64 matrix after checking it is symmetric and positive (semi-)definite.

    ``strict=True`` requires every eigenvalue > ``rtol·‖M‖``; otherwise ≥ ``−rtol·‖M‖``. Raises ``ValueError`` naming
    ``name`` and its smallest eigenvalue."""
    M = _as_matrix(M, name)
    scale = max(np.abs(M).max(), np.finfo(np.float64).tiny)
    asym = np.abs(M - M.T).max()
    if asym > 1e-8 * scale:
        raise ValueError(f"{name} must be symmetric; max |{name} − {name}ᵀ| = {asym:.3g} (scale {scale:.3g})")
    M = 0.5 * (M + M.T)
    lam_min = float(np.linalg.eigvalsh(M)[0])
    if strict and lam_min <= rtol * scale:
        raise ValueError(f"{name} must be positive definite; its smallest eigenvalue is {lam_min:.4g}")
    if not strict and lam_min < -rtol * scale:
        raise ValueError(f"{name} must be positive semi-definite; its smallest eigenvalue is {lam_min:.4g}")
    return M


def as_preconditioner(H, D: int) -> np.ndarray:
    """``H`` as a ``[D, D]`` symmetric positive definite matrix: ``None`` → identity, a length-D vector → its diagonal."""
    if H is None:
        return np.eye(D)
    if hasattr(H, "detach"):
        H = H.detach().cpu().numpy()
    H = np.asarray(H, dtype=np.float64)
    if H.ndim == 1:
        if H.shape[0] != D:
            raise ValueError(f"diagonal preconditioner H must have length D={D}, got {H.shape[0]}")
        if not np.all(np.isfinite(H)) or np.any(H <= 0):
            raise ValueError(f"diagonal preconditioner H must be finite and > 0, got min {H.min():.4g}")
        return np.diag(H)
    H = check_psd(H, "H", strict=True)
    if H.shape != (D, D):
        raise ValueError(f"preconditioner H must be [D, D] = [{D}, {D}], got {H.shape}")
    return H


def _check_positive(x, name: str) -> float:
    x = float(x)
    if not np.isfinite(x) or x <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {x}")
    return x


def _check_int(x, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {x!r}")
    return int(x)


def _check_pair(A, C):
    A = check_psd(A, "A", strict=True)
    C = check_psd(C, "C (= BBᵀ)", strict=False)
    if A.shape != C.shape:
        raise ValueError(f"A and C must have the same shape, got {A.shape} and {C.shape}")
    return A, C


# ----------------------------------------------------------------------------------------------------- core solvers

def stationary_covariance(K, Q, *, discrete: bool = False) -> np.ndarray:
    """Stationary covariance of ``θ_{t+1} = (I − K) θ_t + ξ_t``, ``Cov ξ = Q``.

    ``discrete=False``: the Lyapunov approximation ``KΣ + ΣKᵀ = Q`` (needs every eigenvalue of ``K`` to have positive
    real part). ``discrete=True``: the exact ``Σ = (I−K)Σ(I−K)ᵀ + Q`` (needs spectral radius of ``I − K`` < 1).
    Raises ``ValueError`` when the recursion has no stationary law."""
    K = _as_matrix(K, "K")
    Q = check_psd(Q, "Q", strict=False)
    if K.shape != Q.shape:
        raise ValueError(f"K and Q must have the same shape, got {K.shape} and {Q.shape}")
    if discrete:
        M = np.eye(K.shape[0]) - K
        rho = float(np.abs(np.linalg.eigvals(M)).max())
        if rho >= 1.0:
            raise ValueError(f"the recursion is unstable: spectral radius of I − K is {rho:.6g} >= 1; "
                             "reduce the learning rate below the stability limit")
        S = scipy.linalg.solve_discrete_lyapunov(M, Q)
    else:
        re_min = float(np.linalg.eigvals(K).real.min())
        if re_min <= 0:
            raise ValueError(f"the drift matrix is not stable: an eigenvalue of K has real part {re_min:.4g} <= 0")
        S = scipy.linalg.solve_continuous_lyapunov(K, Q)
    return 0.5 * (S + S.T)


def stability_limit(A, H=None) -> float:
    """Largest stable learning rate of (preconditioned) SGD on ``½θᵀAθ``: ``ε_max = 2 / λ_max(HA)``."""
    A = check_psd(A, "A", strict=True)
    H = as_preconditioner(H, A.shape[0])
    lam = np.linalg.eigvals(H @ A).real.max()
    return float(2.0 / lam)


def _warn_if_unstable(eps: float, limit: float, what: str) -> None:
    if eps >= limit:
        warnings.warn(f"{what}: learning rate eps={eps:.4g} is at or above the stability limit {limit:.4g} "
                      "(2/λ_max(HA)); the iterates will diverge", StabilityWarning, stacklevel=3)


# ------------------------------------------------------------------------------------------------------- samplers

def lyapunov_covariance(A, C, *, eps: float, S: int = 1, H=None, discrete: bool = False) -> np.ndarray:
    """Stationary covariance ``Σ`` ``[D, D]`` of constant SGD ``θ ← θ − ε H ĝ_S``.

    Solves ``Σ A' ᵀ + A' Σ = (ε/S) H C Hᵀ`` with ``A' = HA`` (``discrete=True``: the exact discrete-time equation).
    ``A`` symmetric PD, ``C`` symmetric PSD, ``H`` symmetric PD or a positive vector (diagonal) or ``None`` (I).
    Warns (:class:`StabilityWarning`) and raises ``ValueError`` when ``eps`` is at or above :func:`stability_limit`."""
    A, C = _check_pair(A, C)
    eps = _check_positive(eps, "eps")
    S = int(S)
    if S < 1:
        raise ValueError(f"minibatch size S must be >= 1, got {S}")
    H = as_preconditioner(H, A.shape[0])
    limit = stability_limit(A, H)
    if eps >= limit:
        _warn_if_unstable(eps, limit, "constant SGD")
        raise ValueError(f"constant SGD has no stationary law at eps={eps:.4g} >= stability limit {limit:.4g}")
    K = eps * H @ A
    Q = eps**2 * H @ C @ H.T / S
    if discrete:
        return stationary_covariance(K, Q, discrete=True)
    # continuous form divided by ε: (HA)Σ + Σ(HA)ᵀ = (ε/S) H C Hᵀ
    return stationary_covariance(H @ A, eps * H @ C @ H.T / S, discrete=False)


def optimal_learning_rate(C, *, N: int, S: int = 1) -> float:
    """KL-optimal constant learning rate of plain SGD: ``ε* = 2 (S/N) D / Tr(C)`` (Mandt et al. eq. for ε*)."""
    C = check_psd(C, "C (= BBᵀ)", strict=False)
    N = int(N)
    if N < 1 or S < 1:
        raise ValueError(f"N and S must be >= 1, got N={N}, S={S}")
    tr = float(np.trace(C))
    if tr <= 0:
        raise ValueError("Tr(C) must be > 0 (the gradient noise vanishes, so no finite ε* exists)")
    return 2.0 * S * C.shape[0] / (N * tr)


def optimal_preconditioner(C, *, N: int, S: int = 1, diagonal: bool = False) -> np.ndarray:
    """KL-optimal preconditioner of constant SGD (use with ``eps=1``).

    Full: ``H* = (2S/N) C⁻¹`` (``C`` must be PD), giving ``Σ = (NA)⁻¹``, the posterior, under the OU assumptions.
    ``diagonal=True``: ``H*_kk = 2S / (N C_kk)``, returned as a length-D vector."""
    N = int(N)
    if N < 1 or S < 1:
        raise ValueError(f"N and S must be >= 1, got N={N}, S={S}")
    if diagonal:
        C = check_psd(C, "C (= BBᵀ)", strict=False)
        d = np.diag(C)
        if np.any(d <= 0):
            raise ValueError(f"diagonal of C must be > 0 for the diagonal preconditioner, got min {d.min():.4g}")
        return 2.0 * S / (N * d)
    C = check_psd(C, "C (= BBᵀ)", strict=True)
    Hinv = scipy.linalg.cho_solve(scipy.linalg.cho_factor(C), np.eye(C.shape[0]))
    H = 2.0 * S / N * Hinv
    return 0.5 * (H + H.T)


def momentum_covariance(A, C, *, eps: float, mu: float, S: int = 1, discrete: bool = False) -> np.ndarray:
    """Stationary covariance of ``θ`` under momentum SGD ``v ← (1−μ)v − εĝ_S, θ ← θ + v``, ``0 < μ <= 1``.

    Continuous: ``ΣA + AΣ = (ε/(μS)) C`` (only ``ε/(μS)`` matters). ``discrete=True``: exact, from the discrete
    Lyapunov equation of the joint ``(θ, v)`` recursion (returns the ``θ`` block)."""
    A, C = _check_pair(A, C)
    eps = _check_positive(eps, "eps")
    mu = float(mu)
    if not 0 < mu <= 1:
        raise ValueError(f"momentum damping mu must lie in (0, 1], got {mu}")
    if not discrete:
        return lyapunov_covariance(A, C, eps=eps / mu, S=S)
    D = A.shape[0]
    I = np.eye(D)
    # [θ'; v'] = M [θ; v] + [−εξ; −εξ],  with θ' = θ + v'.
    M = np.block([[I - eps * A, (1 - mu) * I], [-eps * A, (1 - mu) * I]])
    G = np.vstack([-eps * I, -eps * I])
    Q = G @ (C / S) @ G.T
    rho = float(np.abs(np.linalg.eigvals(M)).max())
    if rho >= 1:
        warnings.warn(f"momentum SGD at eps={eps:.4g}, mu={mu:.4g} is unstable (spectral radius {rho:.6g})",
                      StabilityWarning, stacklevel=2)
        raise ValueError(f"momentum SGD has no stationary law at eps={eps:.4g}, mu={mu:.4g}")
    Sig = scipy.linalg.solve_discrete_lyapunov(M, Q)[:D, :D]
    return 0.5 * (Sig + Sig.T)


def sgld_covariance(A, C, *, eps: float, N: int, S: int = 1, discrete: bool = False) -> np.ndarray:
    """Stationary covariance of constant-rate SGLD ``θ ← θ − (ε/2) N ĝ_S + √ε w``, ``w ~ N(0, I)``.

    Here ``K = (εN/2) A`` and ``Q = ε I + (ε² N²/4) C/S``, so the Lyapunov form is
    ``½N(AΣ + ΣA) = I + (ε N² / 4S) C``: the posterior ``(NA)⁻¹`` plus an excess of order ε; when ``A`` and ``C``
    commute, ``Σ = (NA)⁻¹ + (εN/4S) A⁻¹C``. (The constant differs from the paper's printed ``εN/2S`` because ``ĝ_S`` here
    is the minibatch mean of per-example gradients ``∇ℓ_n``, whose covariance is ``C/S``.)"""
    A, C = _check_pair(A, C)
    eps = _check_positive(eps, "eps")
    N = int(N)
    D = A.shape[0]
    K = 0.5 * eps * N * A
    Q = eps * np.eye(D) + 0.25 * eps**2 * N**2 * C / S
    limit = 2.0 / (0.5 * N * np.linalg.eigvalsh(A)[-1])
    if eps >= limit:
        _warn_if_unstable(eps, limit, "SGLD")
        raise ValueError(f"SGLD has no stationary law at eps={eps:.4g} >= stability limit {limit:.4g}")
    if discrete:
        return stationary_covariance(K, Q, discrete=True)
    return stationary_covariance(K / eps, Q / eps)


def sgfs_optimal_preconditioner(C, EEt, *, N: int, eps: float, S: int = 1, diagonal: bool = False) -> np.ndarray:
    """SGFS preconditioner ``H* = (2/N)(εC/S + EEᵀ)⁻¹`` (a vector of the diagonal version when ``diagonal=True``),
    which makes the Lyapunov stationary covariance equal ``(NA)⁻¹`` (full version)."""
    C = check_psd(C, "C (= BBᵀ)", strict=False)
    EEt = check_psd(EEt, "EEᵀ", strict=False)
    eps = _check_positive(eps, "eps")
    M = eps * C / S + EEt
    if diagonal:
        d = np.diag(M)
        if np.any(d <= 0):
            raise ValueError("diagonal of εC/S + EEᵀ must be > 0")
        return 2.0 / (N * d)
    M = check_psd(M, "εC/S + EEᵀ", strict=True)
    H = 2.0 / N * scipy.linalg.cho_solve(scipy.linalg.cho_factor(M), np.eye(M.shape[0]))
    return 0.5 * (H + H.T)


def sgfs_covariance(A, C, EEt, *, eps: float, H, S: int = 1, discrete: bool = False) -> np.ndarray:
    """Stationary covariance of SGFS ``θ ← θ − εHĝ_S + √ε H E w``: ``K = εHA``, ``Q = ε²HCHᵀ/S + ε H EEᵀ Hᵀ``."""
    A, C = _check_pair(A, C)
    EEt = check_psd(EEt, "EEᵀ", strict=False)
    eps = _check_positive(eps, "eps")
    H = as_preconditioner(H, A.shape[0])
    limit = stability_limit(A, H)
    if eps >= limit:
        _warn_if_unstable(eps, limit, "SGFS")
        raise ValueError(f"SGFS has no stationary law at eps={eps:.4g} >= stability limit {limit:.4g}")
    Q = eps**2 * H @ C @ H.T / S + eps * H @ EEt @ H.T
    if discrete:
        return stationary_covariance(eps * H @ A, Q, discrete=True)
    return stationary_covariance(H @ A, Q / eps)


# ------------------------------------------------------------------------------------------------------------ KL

def gaussian_kl(mu0, S0, mu1, S1) -> float:
    """``KL(N(mu0, S0) ‖ N(mu1, S1))`` in nats, via Cholesky factors (both covariances must be PD):
    ``½[tr(S1⁻¹S0) + (mu1−mu0)ᵀS1⁻¹(mu1−mu0) − D + log|S1| − log|S0|]``."""
    S0 = check_psd(S0, "S0", strict=True)
    S1 = check_psd(S1, "S1", strict=True)
    mu0 = np.asarray(mu0, dtype=np.float64).reshape(-1)
    mu1 = np.asarray(mu1, dtype=np.float64).reshape(-1)
    D = S0.shape[0]
    if S1.shape != S0.shape or mu0.shape != (D,) or mu1.shape != (D,):
        raise ValueError(f"shapes disagree: mu0 {mu0.shape}, S0 {S0.shape}, mu1 {mu1.shape}, S1 {S1.shape}")
    L0 = np.linalg.cholesky(S0)
    L1 = np.linalg.cholesky(S1)
    M = scipy.linalg.solve_triangular(L1, L0, lower=True)          # L1⁻¹ L0
    d = scipy.linalg.solve_triangular(L1, mu1 - mu0, lower=True)
    logdet = 2 * (np.log(np.diag(L1)).sum() - np.log(np.diag(L0)).sum())
    return max(0.0, float(0.5 * ((M**2).sum() + d @ d - D + logdet)))  # ≥ 0; rounding can dip below


def kl_to_posterior(Sigma, A, *, N: int) -> float:
    """The paper's ``KL(N(0,Σ) ‖ N(0,(NA)⁻¹)) = ½(N Tr(AΣ) − log|NA| − log|Σ| − D)``."""
    A = check_psd(A, "A", strict=True)
    Sigma = check_psd(Sigma, "Sigma", strict=True)
    D = A.shape[0]
    _, ldA = np.linalg.slogdet(N * A)
    _, ldS = np.linalg.slogdet(Sigma)
    return float(0.5 * (N * np.trace(A @ Sigma) - ldA - ldS - D))


# ------------------------------------------------------------------------------------------- more samplers

def check_learning_rate(eps, A, H=None) -> float:
    """``eps`` as a float after checking ``0 < eps < 2/λ_max(HA)`` (the stability limit); raises ``ValueError``."""
    eps = float(eps)
    limit = stability_limit(A, H)
    if not math.isfinite(eps) or eps <= 0 or eps >= limit:
        raise ValueError(f"learning rate eps={eps:.6g} is outside the stable range 0 < eps < 2/λ_max(HA) = {limit:.6g}")
    return eps


def sgld_covariance_parts(A, C, *, N: int, S: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(Σ_0, E)`` ``[D, D]`` with the continuous-time (Lyapunov) stationary covariance of constant-step SGLD
    ``θ ← θ − (ε/2)N ĝ_S + √ε ξ`` exactly linear in ε: ``Σ(ε) = Σ_0 + ε E``.

    From ``½N(AΣ + ΣA) = I + ε (N²/4S) C``: ``Σ_0 = (NA)⁻¹``, the posterior, and ``E`` solves
    ``½N(AE + EA) = (N²/4S) C`` — the minibatch-noise excess, of relative size ``ε N²/(4S)·λ(C)/λ(NA)``; with
    ``C = A`` (well specified) ``E = (N/4S) I``. With a decreasing schedule and fast mixing, the running variance of
    all iterates ``t ∈ [t_0, t_1)`` is ≈ ``Σ_0 + mean(ε_t) E``."""
    A, C = _check_pair(A, C)
    N, S = int(N), _check_int(S, "minibatch size S")
    if N < 1:
        raise ValueError(f"N must be >= 1, got N={N}")
    Sigma0 = np.linalg.inv(N * A)
    E = stationary_covariance(0.5 * N * A, N**2 / (4.0 * S) * C)
    return 0.5 * (Sigma0 + Sigma0.T), E


def linreg_sgd_covariance(model, *, eps: float, S: int) -> np.ndarray:
    """Exact stationary covariance ``[D, D]`` of constant SGD ``θ ← θ − ε ĝ_S(θ)`` on the linear regression ``model``, minibatches of
    ``S`` examples drawn uniformly with replacement — without the constant-noise assumption.

    With ``a_n = x_n x_nᵀ/σ²`` and ``δ = θ − θ*``, the minibatch gradient is ``Aδ + (Â − A)δ + ξ``: besides the
    additive noise ``ξ`` (covariance ``C/S``) it carries the multiplicative term ``(Â − A)δ``. The mean obeys
    ``E δ_{t+1} = M E δ_t`` exactly, so in stationarity ``E δ = 0``, the cross term vanishes, and the second moment
    closes exactly:

        Σ = M Σ Mᵀ + (ε²/S) (C + V(Σ)),   V(Σ) = mean_n a_n Σ a_n − Ā Σ Ā,   M = I − εA,

    a linear system in ``vec Σ`` (``D² × D²``). For ``x ~ N(0, I)``, ``V(Σ) ≈ tr(Σ) I + Σ``: a relative excess of
    about ``εD/(2S)`` over the constant-noise ``Σ_d``. Raises ``ValueError`` when the second moment diverges."""
    S = _check_int(S, "minibatch size S")
    A = model.hessian()
    eps = check_learning_rate(eps, A)
    X = model.X.cpu().numpy()
    N, D = X.shape
    C = model.noise_covariance()
    Z = np.einsum("ni,nj->nij", X, X).reshape(N, D * D) / model.noise_var
    abar = Z.mean(0).reshape(D, D)
    V = Z.T @ Z / N - np.kron(abar, abar)       # mean_n a_n ⊗ a_n − Ā ⊗ Ā (a_n ⊗ a_n = vec a_n vec a_nᵀ: rank one)
    M = np.eye(D) - eps * A
    L = np.kron(M, M) + eps**2 / S * V
    rho = float(np.abs(np.linalg.eigvals(L)).max())
    if rho >= 1.0:
        raise ValueError(f"constant SGD at eps={eps:.4g}, S={S} is mean-square unstable on this data (spectral radius "
                         f"of the second-moment map {rho:.4g} >= 1): its variance diverges; lower eps")
    Sigma = np.linalg.solve(np.eye(D * D) - L, (eps**2 / S) * C.reshape(-1)).reshape(D, D)
    return 0.5 * (Sigma + Sigma.T)
