"""Polyak averaging of constant-SGD iterates and the averaged stochastic gradient sampler
(Mandt, Hoffman & Blei 2017, §6).

Notation as in :mod:`sgdbayes.ou.theory`: the average loss ``L(θ) = (1/N) Σ_n ℓ_n(θ)`` has Hessian ``A`` at its optimum,
one per-example gradient has covariance ``C = BBᵀ``, a minibatch of ``S`` examples has gradient noise ``C/S``, and
(preconditioned) constant SGD is ``θ ← θ − ε H ĝ_S``. Near the optimum this is the linear recursion

    θ_{t+1} = M θ_t + ξ_t,   M = I − εHA,   Cov ξ_t = Q = ε² H C Hᵀ / S,

whose stationary covariance is ``Σ`` (Lyapunov, :func:`sgdbayes.ou.theory.lyapunov_covariance`). The average
``μ_T = (1/T) Σ_{t=1..T} θ_t`` of ``T`` stationary iterates has covariance

* leading order (the paper's result): ``(1/εT)(A'⁻¹Σ + ΣA'⁻ᵀ) = A⁻¹CA⁻ᵀ/(TS)`` (:func:`averaged_covariance_theory`),
  independent of ``ε``, ``S`` and ``H``; with a well-specified model (``C = A``) and ``T = N/S`` this is ``A⁻¹/N``,
  the posterior covariance;
* continuous time (OU), any ``T`` (:func:`averaged_covariance_ou`);
* exactly, in discrete time (:func:`averaged_covariance_exact`).

Beyond the single window: :func:`window_autocovariance` and :func:`expected_window_variance` (correlation of
consecutive IASG samples and what a running variance of them estimates), :func:`linreg_sgd_covariance` (the exact
stationary covariance of SGD on linear regression, state-dependent gradient noise included) and
:func:`sgld_covariance_parts` (SGLD's stationary covariance, linear in its step). Samplers for the §7.2 experiments:
:func:`iasg_sample` (Algorithm 1, with an optional burn-in), :func:`sgld_sample`, :func:`nuts_sample` (Pyro).

Everything theoretical is float64 numpy; samplers are vectorised over chains in torch on any device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from sgdbayes.device import get_device
from sgdbayes.ou.chains import small_op_threads
from sgdbayes.ou.theory import as_preconditioner, check_psd, lyapunov_covariance, stability_limit, \
    stationary_covariance
from sgdbayes.seed import SeedLike, make_generator

__all__ = [
    "LinearRegression",
    "OUAverage",
    "IASGResult",
    "VarianceTrace",
    "averaged_covariance_exact",
    "averaged_covariance_ou",
    "averaged_covariance_theory",
    "check_learning_rate",
    "expected_window_variance",
    "iasg_relative_error",
    "iasg_sample",
    "iasg_variance_trace",
    "iasg_window_covariance",
    "linreg_sgd_covariance",
    "make_linear_regression",
    "nuts_sample",
    "passes_to_tolerance",
    "relative_error",
    "sgld_covariance_parts",
    "sgld_sample",
    "sgld_steps",
    "simulate_ou_average",
    "window_autocovariance",
]


# --------------------------------------------------------------------------------------------------------- checks

def _check_T(T) -> int:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) and not (isinstance(T, float) and T.is_integer()):
        raise TypeError(f"averaging window T must be an integer number of iterations, got {T!r}")
    T = int(T)
    if T < 1:
        raise ValueError(f"averaging window T must be >= 1 iteration, got T={T}")
    return T


def _check_S(S) -> int:
    if isinstance(S, bool) or not isinstance(S, (int, np.integer)):
        raise TypeError(f"minibatch size S must be an integer, got {S!r}")
    if S < 1:
        raise ValueError(f"minibatch size S must be >= 1, got S={S}")
    return int(S)


def _pair(A, C):
    A = check_psd(A, "A")
    C = check_psd(C, "C (= BBᵀ)", strict=False)
    if A.shape != C.shape:
        raise ValueError(f"dimension mismatch: A is {A.shape} but C (= BBᵀ) is {C.shape}; both must be [D, D]")
    return A, C


def check_learning_rate(eps, A, H=None) -> float:
    """``eps`` as a float after checking ``0 < eps < 2/λ_max(HA)`` (the stability limit); raises ``ValueError``."""
    eps = float(eps)
    limit = stability_limit(A, H)
    if not math.isfinite(eps) or eps <= 0 or eps >= limit:
        raise ValueError(f"learning rate eps={eps:.6g} is outside the stable range 0 < eps < 2/λ_max(HA) = {limit:.6g}")
    return eps


# ------------------------------------------------------------------------------------------------- theory (numpy)

def averaged_covariance_theory(A, C, *, T: int, S: int = 1) -> np.ndarray:
    """Leading-order covariance of the average of ``T`` stationary SGD iterates, ``A⁻¹ C A⁻ᵀ / (T S)`` ``[D, D]``.

    Depends on ``T·S`` (examples processed) only; the asymptotic (sandwich) covariance of the M-estimator from ``TS``
    examples, the Cramér–Rao bound ``A⁻¹/(TS)`` when the model is well specified (``C = A``)."""
    A, C = _pair(A, C)
    T, S = _check_T(T), _check_S(S)
    Ainv = np.linalg.inv(A)
    out = Ainv @ C @ Ainv.T / (T * S)
    return 0.5 * (out + out.T)


def _drift(A, H, eps) -> np.ndarray:
    return eps * as_preconditioner(H, A.shape[0]) @ A


def averaged_covariance_ou(A, C, *, eps: float, T: int, S: int = 1, H=None, leading: bool = False) -> np.ndarray:
    """Covariance of ``(1/T)∫_0^T θ(t) dt`` for the stationary OU process ``dθ = −K θ dt + …``, ``K = εHA``, time in
    iterations, ``Σ`` the continuous Lyapunov covariance:

        Cov = (1/T²)(G Σ + Σ Gᵀ),   G = ∫_0^T (T − τ) e^{−Kτ} dτ = T K⁻¹ − K⁻² (I − e^{−KT}).

    ``leading=True`` keeps only ``G ≈ T K⁻¹``: the paper's ``(1/εT)(A'⁻¹Σ + ΣA'⁻ᵀ)``, ``A' = HA``."""
    A, C = _pair(A, C)
    T, S = _check_T(T), _check_S(S)
    eps = check_learning_rate(eps, A, H)
    Sigma = lyapunov_covariance(A, C, eps=eps, S=S, H=H)
    K = _drift(A, H, eps)
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
    A, C = _pair(A, C)
    T, S = _check_T(T), _check_S(S)
    eps = check_learning_rate(eps, A, H)
    Sd = _stationary(A, C, eps, S, H, Sigma)
    D = A.shape[0]
    I = np.eye(D)
    K = _drift(A, H, eps)             # I − M
    M = I - K
    Kinv = np.linalg.inv(K)
    MT = np.linalg.matrix_power(M, T)
    F = T * Kinv - M @ (I - MT) @ Kinv @ Kinv - T * I
    out = (T * Sd + F @ Sd + Sd @ F.T) / T**2
    return 0.5 * (out + out.T)


def _stationary(A, C, eps, S, H, Sigma) -> np.ndarray:
    if Sigma is None:
        return lyapunov_covariance(A, C, eps=eps, S=S, H=H, discrete=True)
    Sigma = check_psd(Sigma, "Sigma")
    if Sigma.shape != A.shape:
        raise ValueError(f"dimension mismatch: Sigma is {Sigma.shape} but A is {A.shape}")
    return Sigma


def iasg_window_covariance(A, *, eps: float, T: int, S: int = 1) -> np.ndarray:
    """The paper's covariance of one IASG sample (mean of a window of ``T`` iterates) for a well-specified model
    (``C = A``, so ``Σ = (ε/2S) I``), ``A = UΛUᵀ``:

        A⁻¹/(ST) + (1/(εST²)) U Λ⁻² (e^{−εTΛ} − I) Uᵀ.

    With ``T = N/S`` the first term is the posterior covariance ``A⁻¹/N``."""
    A = check_psd(A, "A")
    T, S = _check_T(T), _check_S(S)
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
    T = _check_T(T)
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
    A, C = _pair(A, C)
    T, S = _check_T(T), _check_S(S)
    eps = check_learning_rate(eps, A, H)
    if isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer)) or max_lag < 0:
        raise ValueError(f"max_lag must be an integer >= 0, got {max_lag!r}")
    Sd = _stationary(A, C, eps, S, H, Sigma)
    I = np.eye(A.shape[0])
    K = _drift(A, H, eps)
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


def sgld_covariance_parts(A, C, *, N: int, S: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(Σ_0, E)`` ``[D, D]`` with the continuous-time (Lyapunov) stationary covariance of constant-step SGLD
    ``θ ← θ − (ε/2)N ĝ_S + √ε ξ`` exactly linear in ε: ``Σ(ε) = Σ_0 + ε E``.

    From ``½N(AΣ + ΣA) = I + ε (N²/4S) C``: ``Σ_0 = (NA)⁻¹``, the posterior, and ``E`` solves
    ``½N(AE + EA) = (N²/4S) C`` — the minibatch-noise excess, of relative size ``ε N²/(4S)·λ(C)/λ(NA)``; with
    ``C = A`` (well specified) ``E = (N/4S) I``. With a decreasing schedule and fast mixing, the running variance of
    all iterates ``t ∈ [t_0, t_1)`` is ≈ ``Σ_0 + mean(ε_t) E``."""
    A, C = _pair(A, C)
    N, S = int(N), _check_S(S)
    if N < 1:
        raise ValueError(f"N must be >= 1, got N={N}")
    Sigma0 = np.linalg.inv(N * A)
    E = stationary_covariance(0.5 * N * A, N**2 / (4.0 * S) * C)
    return 0.5 * (Sigma0 + Sigma0.T), E


def relative_error(estimate, truth) -> float:
    """``‖estimate − truth‖_F / ‖truth‖_F``."""
    estimate, truth = np.asarray(estimate, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if estimate.shape != truth.shape:
        raise ValueError(f"shape mismatch: estimate {estimate.shape} vs truth {truth.shape}")
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


# ---------------------------------------------------------------------------------- OU chains (quadratic, Gaussian)

@dataclass
class OUAverage:
    """Result of :func:`simulate_ou_average`: ``means`` ``[K, D]`` (one average of ``T`` iterates per chain),
    ``last`` ``[K, D]`` (each chain's final iterate, a draw of the raw stationary law), ``lagged`` ``[K, D]`` (the
    iterate ``lag`` steps before the end) and the inputs."""

    means: torch.Tensor
    last: torch.Tensor
    lagged: torch.Tensor
    eps: float
    S: int
    T: int
    lag: int

    def cov(self, which: str = "means") -> np.ndarray:
        """Sample covariance across chains ``[D, D]`` of ``means`` or ``last``."""
        return _sample_cov(getattr(self, which))

    def lag_cov(self) -> np.ndarray:
        """Sample ``Cov(θ_T, θ_{T−lag})`` across chains ``[D, D]``."""
        a = self.last - self.last.mean(0)
        b = self.lagged - self.lagged.mean(0)
        return (a.T @ b / (a.shape[0] - 1)).cpu().numpy()


def _sample_cov(x: torch.Tensor) -> np.ndarray:
    x = x.to(torch.float64)
    xc = x - x.mean(0)
    return (xc.T @ xc / (x.shape[0] - 1)).cpu().numpy()


def simulate_ou_average(A, C, *, eps: float, T: int, S: int = 1, H=None, n_chains: int = 1000, lag: int = 0,
                        seed: SeedLike = 0, device="auto", block: int = 512) -> OUAverage:
    """Run ``n_chains`` chains of constant SGD on ``½θᵀAθ`` with Gaussian gradient noise ``N(0, C/S)``,
    ``θ ← θ − εH(Aθ + noise)``, each started from an exact draw of its stationary law ``N(0, Σ_d)`` (so no burn-in
    is needed), and average the ``T`` iterates ``θ_1..θ_T``. Float64, vectorised over chains."""
    A, C = _pair(A, C)
    T, S = _check_T(T), _check_S(S)
    eps = check_learning_rate(eps, A, H)
    if n_chains < 2:
        raise ValueError(f"n_chains must be >= 2 to estimate a covariance, got {n_chains}")
    if not 0 <= lag < T:
        raise ValueError(f"lag must be in [0, T) = [0, {T}), got {lag}")
    D = A.shape[0]
    dev = get_device(device)
    gen = make_generator(seed, dev)
    Hm = as_preconditioner(H, D)
    Sd = lyapunov_covariance(A, C, eps=eps, S=S, H=H, discrete=True)
    Q = eps**2 * Hm @ C @ Hm.T / S
    f64 = dict(dtype=torch.float64, device=dev)
    M = np.eye(D) - eps * Hm @ A
    # Blocked but exact: over a block of b steps from θ_0, θ_j = M^j θ_0 + Σ_{s<j} M^{j−1−s} ξ_s, so
    # Σ_{j=1..b} θ_j = (W_b − I) θ_0 + Σ_s W_{b−1−s} ξ_s with W_k = Σ_{i=0..k} M^i. Row-vector form: θ @ Mᵀ.
    b = min(block, T)
    pw = [np.eye(D)]
    for _ in range(b):
        pw.append(pw[-1] @ M)
    Wk = np.cumsum(np.stack(pw), 0)                                    # W_0..W_b
    Pt = torch.as_tensor(np.stack(pw).transpose(0, 2, 1).copy(), **f64)  # (M^j)ᵀ
    Wt = torch.as_tensor(Wk.transpose(0, 2, 1).copy(), **f64)            # W_kᵀ
    Lq = torch.as_tensor(_psd_factor(Q).T.copy(), **f64)
    L0 = torch.as_tensor(_psd_factor(Sd).T.copy(), **f64)
    eye = torch.eye(D, **f64)
    theta = torch.randn(n_chains, D, generator=gen, **f64) @ L0
    total = torch.zeros_like(theta)
    lagged = theta.clone()
    t = 0
    while t < T:
        nb = min(b, T - t)
        if t < T - lag < t + nb:       # end a block exactly where the lagged iterate is needed
            nb = T - lag - t
        xi = torch.randn(nb, n_chains, D, generator=gen, **f64) @ Lq          # [nb, K, D]
        rev = torch.arange(nb - 1, -1, -1, device=dev)                       # s → nb−1−s
        total += theta @ (Wt[nb] - eye) + torch.einsum("skd,sde->ke", xi, Wt[rev])
        theta = theta @ Pt[nb] + torch.einsum("skd,sde->ke", xi, Pt[rev])
        t += nb
        if t == T - lag:
            lagged = theta.clone()
    if not (torch.isfinite(total).all() and torch.isfinite(theta).all()):
        raise FloatingPointError(f"OU chains diverged (eps={eps}, S={S}, T={T}): non-finite iterates")
    return OUAverage(means=total / T, last=theta, lagged=lagged, eps=eps, S=S, T=T, lag=lag)


def _psd_factor(M: np.ndarray) -> np.ndarray:
    """``L`` with ``L Lᵀ = M`` for a symmetric PSD ``M`` (eigen-factor, so singular ``M`` is fine)."""
    lam, U = np.linalg.eigh(0.5 * (M + M.T))
    return U * np.sqrt(np.clip(lam, 0.0, None))


# ---------------------------------------------------------------------------------------- linear regression model

@dataclass
class LinearRegression:
    """Bayesian linear regression ``y = Xw + noise``, noise ``N(0, noise_var)``, prior ``N(0, I/prior_precision)``.

    Per-example loss (the paper's convention) ``ℓ_n(w) = (y_n − x_nᵀw)²/(2σ²) + (α/2N)‖w‖²`` so that
    ``N·L(w) = −log posterior + const``. Tensors are float64 on one device; ``X`` ``[N, D]``, ``y`` ``[N]``."""

    X: torch.Tensor
    y: torch.Tensor
    prior_precision: float = 1.0
    noise_var: float = 1.0
    w_true: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.X.ndim != 2 or self.y.ndim != 1 or self.X.shape[0] != self.y.shape[0]:
            raise ValueError(f"dimension mismatch: X must be [N, D] and y [N], got X {tuple(self.X.shape)}, "
                             f"y {tuple(self.y.shape)}")
        if self.prior_precision <= 0 or self.noise_var <= 0:
            raise ValueError(f"prior_precision and noise_var must be > 0, got {self.prior_precision}, {self.noise_var}")
        P = self.X.T @ self.X / self.noise_var + self.prior_precision * torch.eye(self.D, dtype=self.X.dtype,
                                                                                   device=self.X.device)
        self.posterior_precision = P
        self.posterior_cov = torch.linalg.inv(P)
        self.posterior_cov = 0.5 * (self.posterior_cov + self.posterior_cov.T)
        self.posterior_mean = torch.linalg.solve(P, self.X.T @ self.y / self.noise_var)

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def D(self) -> int:
        return self.X.shape[1]

    @property
    def hessian(self) -> np.ndarray:
        """``A`` = Hessian of the average loss ``L`` = posterior precision / N ``[D, D]``."""
        return (self.posterior_precision / self.N).cpu().numpy()

    def gradient_noise_covariance(self, w=None) -> np.ndarray:
        """``C`` = covariance over examples of ``∇ℓ_n(w)`` at ``w`` (default: the MAP) ``[D, D]``."""
        w = self.posterior_mean if w is None else torch.as_tensor(w, dtype=self.X.dtype, device=self.X.device)
        G = -self.X * ((self.y - self.X @ w) / self.noise_var)[:, None] + self.prior_precision * w / self.N
        G = G - G.mean(0)
        return (G.T @ G / self.N).cpu().numpy()

    def minibatch_grad(self, theta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Minibatch gradient of ``L`` for each chain: ``theta`` ``[K, D]``, ``idx`` ``[K, S]`` → ``[K, D]``."""
        Xb = self.X[idx]                                                   # [K, S, D]
        r = torch.einsum("ksd,kd->ks", Xb, theta) - self.y[idx]            # [K, S]
        return torch.einsum("ksd,ks->kd", Xb, r) / (idx.shape[1] * self.noise_var) \
            + (self.prior_precision / self.N) * theta

    def init(self, kind: str, n_chains: int, generator: torch.Generator) -> torch.Tensor:
        """Starting points ``[n_chains, D]``: ``"map"`` (the posterior mode) or ``"random"`` (draws from the prior)."""
        if kind == "map":
            return self.posterior_mean.expand(n_chains, self.D).clone()
        if kind == "random":
            return torch.randn(n_chains, self.D, generator=generator, dtype=self.X.dtype,
                               device=self.X.device) / math.sqrt(self.prior_precision)
        raise ValueError(f"init must be 'map' or 'random', got {kind!r}")


def make_linear_regression(N: int, D: int, *, prior_precision: float = 1.0, noise_var: float = 1.0,
                           seed: SeedLike = 0, device="auto") -> LinearRegression:
    """The paper's §7.2 synthetic problem: ``x ~ N(0, I_D)``, ``w ~ N(0, I/α)`` (the prior), ``y = xᵀw + N(0, σ²)``."""
    if N < 1 or D < 1:
        raise ValueError(f"N and D must be >= 1, got N={N}, D={D}")
    dev = get_device(device)
    gen = make_generator(seed, dev)
    f64 = dict(dtype=torch.float64, device=dev)
    w = torch.randn(D, generator=gen, **f64) / math.sqrt(prior_precision)
    X = torch.randn(N, D, generator=gen, **f64)
    y = X @ w + math.sqrt(noise_var) * torch.randn(N, generator=gen, **f64)
    return LinearRegression(X=X, y=y, prior_precision=prior_precision, noise_var=noise_var, w_true=w)


def linreg_sgd_covariance(problem: LinearRegression, *, eps: float, S: int) -> np.ndarray:
    """Exact stationary covariance ``[D, D]`` of constant SGD ``θ ← θ − ε ĝ_S(θ)`` on ``problem``, minibatches of
    ``S`` examples drawn uniformly with replacement — without the constant-noise assumption.

    With ``a_n = x_n x_nᵀ/σ²`` and ``δ = θ − θ*``, the minibatch gradient is ``Aδ + (Â − A)δ + ξ``: besides the
    additive noise ``ξ`` (covariance ``C/S``) it carries the multiplicative term ``(Â − A)δ``. The mean obeys
    ``E δ_{t+1} = M E δ_t`` exactly, so in stationarity ``E δ = 0``, the cross term vanishes, and the second moment
    closes exactly:

        Σ = M Σ Mᵀ + (ε²/S) (C + V(Σ)),   V(Σ) = mean_n a_n Σ a_n − Ā Σ Ā,   M = I − εA,

    a linear system in ``vec Σ`` (``D² × D²``). For ``x ~ N(0, I)``, ``V(Σ) ≈ tr(Σ) I + Σ``: a relative excess of
    about ``εD/(2S)`` over the constant-noise ``Σ_d``. Raises ``ValueError`` when the second moment diverges."""
    S = _check_S(S)
    A = problem.hessian
    eps = check_learning_rate(eps, A)
    X = problem.X.cpu().numpy()
    N, D = X.shape
    C = problem.gradient_noise_covariance()
    Z = np.einsum("ni,nj->nij", X, X).reshape(N, D * D) / problem.noise_var
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


# ------------------------------------------------------------------------------------------- IASG (Algorithm 1)

def _linreg_chunk(problem: LinearRegression, theta: torch.Tensor, h: np.ndarray, noise_sd: np.ndarray | None,
                  S: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``len(h)`` steps of ``θ ← θ − h_j ĝ_S(θ) + noise_sd_j ξ_j`` for every chain; ``theta`` ``[K, D, 1]``.

    Minibatches of ``S`` indices are drawn uniformly with replacement (gradient noise covariance exactly ``C/S``).
    With ``ĝ_S = X_bᵀ(X_bθ − y_b)/(Sσ²) + (α/N)θ`` one step is two batched matrix products. Returns the final
    ``theta`` and every iterate ``[n, K, D]``."""
    n, K, D, N = len(h), theta.shape[0], problem.D, problem.N
    dev = theta.device
    idx = torch.randint(N, (n, K, S), generator=gen, device=dev)
    Xg = problem.X[idx]                                           # [n, K, S, D]
    XgT = Xg.transpose(-1, -2)
    yg = problem.y[idx].unsqueeze(-1)                             # [n, K, S, 1]
    xi = None if noise_sd is None else torch.randn(n, K, D, 1, generator=gen, dtype=theta.dtype, device=dev)
    shrink = (1.0 - h * problem.prior_precision / N).tolist()
    coef = (-h / (S * problem.noise_var)).tolist()
    sd = None if noise_sd is None else noise_sd.tolist()
    buf = torch.empty(n, K, D, dtype=theta.dtype, device=dev)
    for j in range(n):
        r = torch.baddbmm(yg[j], Xg[j], theta, beta=-1.0)                          # X_bθ − y_b   [K, S, 1]
        theta = torch.baddbmm(theta, XgT[j], r, beta=shrink[j], alpha=coef[j])
        if xi is not None:
            theta.add_(xi[j], alpha=sd[j])
        buf[j] = theta[..., 0]
    return theta, buf


def _small_ops(problem: LinearRegression, n_chains: int, S: int):
    work = n_chains * S * problem.D if problem.X.device.type == "cpu" else float("inf")
    return small_op_threads(work)


@dataclass
class IASGResult:
    """``samples`` ``[K, M, D]``: the mean of each window of ``T`` iterates (one sample per window) for ``K`` chains;
    ``raw`` ``[K, R, D]``: every ``raw_every``-th raw iterate after burn-in; ``raw_cov`` ``[D, D]``: their covariance
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


def iasg_sample(problem: LinearRegression, *, eps: float, S: int, T: int | None = None, n_samples: int,
                n_chains: int = 1, init: str = "map", burn_in: int = 0, raw_every: int = 0,
                seed: SeedLike = 0, block: int = 256) -> IASGResult:
    """Algorithm 1 (iterate-averaging stochastic gradients), vectorised over ``n_chains`` chains.

    Constant SGD ``θ ← θ − ε ĝ_S(θ)`` (minibatches uniform with replacement); the first ``burn_in`` iterations are
    discarded (Algorithm 1 as printed has none: from a start far from the posterior the transient then stays in
    every later variance estimate), then every window of ``T`` (default ``N/S``, one pass) consecutive iterates is
    averaged into one sample. Raises ``FloatingPointError`` if any chain diverges."""
    N = problem.N
    S = _check_S(S)
    if S > N:
        raise ValueError(f"minibatch size S={S} exceeds the data size N={N}")
    T = max(1, N // S) if T is None else _check_T(T)
    eps = check_learning_rate(eps, problem.hessian)
    if n_samples < 1 or n_chains < 1 or burn_in < 0 or raw_every < 0 or block < 1:
        raise ValueError(f"need n_samples >= 1, n_chains >= 1, burn_in >= 0, raw_every >= 0, block >= 1; got "
                         f"{n_samples}, {n_chains}, {burn_in}, {raw_every}, {block}")
    dev = problem.X.device
    gen = make_generator(seed, dev)
    theta = problem.init(init, n_chains, gen)[..., None]          # [K, D, 1]
    D = problem.D
    samples = torch.zeros(n_chains, n_samples, D, dtype=theta.dtype, device=dev)
    raw: list[torch.Tensor] = []
    # segments never straddle the end of burn-in or of a window: (length, window index or −1 for burn-in)
    segments = [(min(block, burn_in - s), -1) for s in range(0, burn_in, block)]
    segments += [(min(block, T - s), m) for m in range(n_samples) for s in range(0, T, block)]
    done = 0
    with _small_ops(problem, n_chains, S):
        for n, m in segments:
            theta, buf = _linreg_chunk(problem, theta, np.full(n, eps), None, S, gen)
            if not torch.isfinite(theta).all():
                raise FloatingPointError(f"IASG diverged within iterations {done}..{done + n} (eps={eps}, S={S}): "
                                         "non-finite iterates; lower eps")
            if m >= 0:
                samples[:, m] += buf.sum(0)
                if raw_every:
                    k = np.arange(done + 1, done + n + 1) - burn_in          # post-burn-in iteration numbers
                    keep = np.flatnonzero(k % raw_every == 0)
                    if keep.size:
                        raw.append(buf[torch.as_tensor(keep, device=dev)].transpose(0, 1))
            done += n
    samples /= T
    raw_t = torch.cat(raw, 1) if raw else torch.empty(n_chains, 0, D, dtype=theta.dtype, device=dev)
    raw_cov = _sample_cov(raw_t.reshape(-1, D)) if raw_t.shape[1] * n_chains >= 2 else np.full((D, D), np.nan)
    return IASGResult(samples=samples, raw_cov=raw_cov, raw=raw_t, T=T, S=S, eps=eps, burn_in=burn_in)


# ------------------------------------------------------------------------------------- convergence of marginals

@dataclass
class VarianceTrace:
    """Per-chain marginal-variance estimates over the run: ``var`` ``[P, K, D]`` at ``passes`` ``[P]`` (passes through
    the data spent so far, warm-up / burn-in included)."""

    passes: np.ndarray
    var: np.ndarray


def _running_var(samples: torch.Tensor) -> np.ndarray:
    """Unbiased variance of the first ``m`` samples of each chain for ``m = 2..M``: ``[K, M, D]`` → ``[M−1, K, D]``."""
    x = samples.to(torch.float64)
    x = x - x[:, :1]
    m = torch.arange(1, x.shape[1] + 1, dtype=x.dtype, device=x.device)[None, :, None]
    c1, c2 = x.cumsum(1), (x * x).cumsum(1)
    var = (c2 - c1 * c1 / m) / (m - 1).clamp(min=1)
    return var[:, 1:].permute(1, 0, 2).cpu().numpy()


def iasg_variance_trace(result: IASGResult, N: int) -> VarianceTrace:
    """Marginal variances of each chain's IASG samples so far, after each sample from the 2nd on."""
    return VarianceTrace(passes=result.passes(N)[1:], var=_running_var(result.samples))


def _merge_moments(count: int, mean: torch.Tensor, m2: torch.Tensor, chunk: torch.Tensor):
    """Add ``chunk`` ``[n, ...]`` to running ``(count, mean, M2 = Σ(x − mean)²)`` (Chan, Golub & LeVeque's pairwise
    update, stable for long runs); the unbiased variance is ``M2/(count − 1)``."""
    n = chunk.shape[0]
    cmean = chunk.mean(0)
    cm2 = ((chunk - cmean) ** 2).sum(0)
    delta = cmean - mean
    tot = count + n
    return tot, mean + delta * (n / tot), m2 + cm2 + delta**2 * (count * n / tot)


def sgld_steps(n: int, *, a: float = 1e-3, b: float = 1000.0, gamma: float = 0.5, start: int = 0) -> np.ndarray:
    """The decreasing SGLD schedule ``ε_t = a/(b + t)^γ`` for ``t = start .. start + n − 1`` ``[n]``."""
    if not (a > 0 and b >= 0 and gamma >= 0):
        raise ValueError(f"SGLD schedule needs a > 0, b >= 0, gamma >= 0; got a={a}, b={b}, gamma={gamma}")
    return a / (b + np.arange(start, start + n, dtype=np.float64)) ** gamma


def sgld_sample(problem: LinearRegression, *, S: int, n_passes: int, step: Callable[[int], float] | None = None,
                a: float = 1e-3, b: float = 1000.0, gamma: float = 0.5, burn_in_passes: int = 0, n_chains: int = 1,
                init: str = "map", seed: SeedLike = 0, block: int = 256) -> VarianceTrace:
    """SGLD (Welling & Teh 2011) with decreasing steps ``ε_t = a/(b + t)^γ`` (or ``step(t)``), vectorised over chains:

        θ ← θ − (ε_t/2) N ĝ_S(θ) + √ε_t ξ,   ξ ~ N(0, I),

    ``N ĝ_S`` the minibatch estimate of ∇(−log posterior). Every iterate after the first ``burn_in_passes`` passes is a
    sample; returns each chain's running marginal variance (merged chunk by chunk, Chan et al.) after every later pass
    (``N/S`` iterations), ``n_passes`` passes in all (burn-in included)."""
    N = problem.N
    S = _check_S(S)
    if S > N:
        raise ValueError(f"minibatch size S={S} exceeds the data size N={N}")
    if not (0 <= burn_in_passes < n_passes) or n_chains < 1 or block < 1:
        raise ValueError(f"need 0 <= burn_in_passes < n_passes, n_chains >= 1, block >= 1; got burn_in_passes="
                         f"{burn_in_passes}, n_passes={n_passes}, n_chains={n_chains}, block={block}")
    per_pass = max(1, N // S)
    dev = problem.X.device
    gen = make_generator(seed, dev)
    theta = problem.init(init, n_chains, gen)[..., None]
    D = problem.D
    count = 0
    mean = torch.zeros(n_chains, D, dtype=theta.dtype, device=dev)
    m2 = torch.zeros_like(mean)
    out = np.empty((n_passes - burn_in_passes, n_chains, D))
    t = 0
    with _small_ops(problem, n_chains, S):
        for p in range(n_passes):
            for s in range(0, per_pass, block):
                n = min(block, per_pass - s)
                eps = sgld_steps(n, a=a, b=b, gamma=gamma, start=t) if step is None else \
                    np.array([float(step(t + j)) for j in range(n)])
                bad = ~(np.isfinite(eps) & (eps > 0))
                if bad.any():
                    j = int(np.flatnonzero(bad)[0])
                    raise ValueError(f"SGLD step size at iteration {t + j} is {eps[j]}; it must be finite and > 0")
                theta, buf = _linreg_chunk(problem, theta, 0.5 * N * eps, np.sqrt(eps), S, gen)
                t += n
                if not torch.isfinite(theta).all():
                    raise FloatingPointError(f"SGLD diverged by iteration {t}: non-finite iterates; lower the steps")
                if p < burn_in_passes:
                    continue
                count, mean, m2 = _merge_moments(count, mean, m2, buf)
            if p >= burn_in_passes:
                out[p - burn_in_passes] = (m2 / max(count - 1, 1)).cpu().numpy()
    passes = np.arange(burn_in_passes + 1, n_passes + 1, dtype=float) * per_pass * S / N
    return VarianceTrace(passes=passes, var=out)


def nuts_sample(problem: LinearRegression, *, n_samples: int, warmup: int, n_chains: int = 1, init: str = "map",
                seed: int = 0) -> VarianceTrace:
    """NUTS (Pyro, ``pyro.infer.NUTS`` with step-size and diagonal mass adaptation) on the exact posterior, chains run
    one after another. Every gradient of the full log posterior counts as one pass through the data; returns each
    chain's running marginal variance of its post-warm-up samples (from the 2nd on) against passes spent (warm-up
    included; the ``passes`` row is the mean over chains)."""
    import pyro
    from pyro.infer import MCMC, NUTS

    if n_samples < 2 or warmup < 0 or n_chains < 1:
        raise ValueError(f"need n_samples >= 2, warmup >= 0, n_chains >= 1; got {n_samples}, {warmup}, {n_chains}")
    X, y = problem.X.cpu(), problem.y.cpu()
    alpha, s2 = problem.prior_precision, problem.noise_var
    calls = [0]

    def potential(params):
        calls[0] += 1
        w = params["w"]
        r = y - X @ w
        return 0.5 * (r @ r) / s2 + 0.5 * alpha * (w @ w)

    gen = make_generator(int(seed), "cpu")
    starts = problem.init(init, n_chains, make_generator(int(seed) + 1, problem.X.device)).cpu()
    var = np.empty((n_samples - 1, n_chains, problem.D))
    passes = np.empty((n_samples - 1, n_chains))
    for c in range(n_chains):
        pyro.set_rng_seed(int(torch.randint(2**31 - 1, (1,), generator=gen)))
        calls[0] = 0
        at: list[int] = []

        def hook(kernel, samples, stage, i, _at=at):
            if stage == "Sample":
                _at.append(calls[0])

        kernel = NUTS(potential_fn=potential, adapt_step_size=True, adapt_mass_matrix=True)
        mcmc = MCMC(kernel, num_samples=n_samples, warmup_steps=warmup, initial_params={"w": starts[c].clone()},
                    disable_progbar=True, hook_fn=hook)
        mcmc.run()
        w = mcmc.get_samples()["w"].to(torch.float64)
        if not torch.isfinite(w).all():
            raise FloatingPointError(f"NUTS chain {c} produced non-finite samples")
        var[:, c] = _running_var(w[None])[:, 0]
        at_arr = np.asarray(at[-n_samples:], dtype=float) if len(at) >= n_samples else \
            np.linspace(calls[0] / n_samples, calls[0], n_samples)
        passes[:, c] = at_arr[1:]
    return VarianceTrace(passes=passes.mean(1), var=var)


def passes_to_tolerance(trace: VarianceTrace, true_var, coords, *, tol: float = 0.1) -> float | None:
    """First pass count from which the chain-averaged estimate of every marginal variance in ``coords`` stays within
    relative error ``tol`` of ``true_var`` until the end of the run; ``None`` if it never does."""
    true_var = np.asarray(true_var, dtype=np.float64)
    if true_var.shape != trace.var.shape[2:]:
        raise ValueError(f"true_var has shape {true_var.shape}, the trace has D = {trace.var.shape[2]}")
    est = trace.var[:, :, coords].mean(1)                         # [P, len(coords)]
    ok = np.all(np.abs(est / true_var[coords] - 1.0) <= tol, axis=1)
    if not ok[-1]:
        return None
    bad = np.flatnonzero(~ok)
    first = 0 if bad.size == 0 else bad[-1] + 1
    return float(trace.passes[first])
