"""One protocol for every stochastic-gradient chain of chapters 3–4, in the spirit of normal-computing/posteriors:
a sampler is an ``init`` / ``update`` pair on a state, and one vectorised driver (:func:`sgdbayes.ou.driver.run`)
runs many chains of it at once.

    state = sampler.init(theta0, model)                       # theta0 [M, P]: M chains
    state = sampler.update(state, batch, noise, eps, model)   # one step of every chain

``batch`` is one step's minibatches (:class:`~sgdbayes.ou.models.Minibatches`, drawn by the driver from the model),
``noise`` a standard normal ``[M, P]`` for the samplers that inject noise (``needs_noise``), ``eps`` the step size of
this step (a ``[1, 1]`` or per-chain ``[M, 1]`` tensor). Every state has ``theta`` ``[M, P]``.

=================  =========================================================================================
:func:`sgd`        ``θ ← θ − ε H ĝ_S``   (``H`` = I, a positive vector = diagonal, or an SPD ``[P, P]`` matrix)
:func:`momentum`   ``v ← (1 − μ) v − ε ĝ_S,  θ ← θ + v``
:func:`sgld`       ``θ ← θ − (ε/2) N ĝ_S + √ε w``,  ``w ~ N(0, I)``
:func:`sgfs`       ``θ ← θ − ε H ĝ_S + √ε H E w``,  ``EEᵀ`` given
:func:`vem`        constant SGD on ``θ`` with a Robbins–Monro step on the prior precision λ (variational EM)
=================  =========================================================================================

IASG (Algorithm 1 of the paper) is constant SGD whose window means are the samples: :mod:`sgdbayes.ou.iasg`.

The step size ``eps`` of a sampler is a float, a per-chain vector ``[M]`` (a sweep in one tensor) or a
:class:`Schedule` (one value per step). Bad settings — a non-positive step, a preconditioner that is not symmetric
positive definite, a schedule of the wrong length, an unknown sampler name — raise ``ValueError`` before any chain
runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sgdbayes.ou.observers import DivergenceError
from sgdbayes.ou.theory import check_psd

__all__ = [
    "SAMPLERS",
    "SGD",
    "SGFS",
    "SGLD",
    "VEM",
    "Momentum",
    "MomentumState",
    "Sampler",
    "Schedule",
    "State",
    "VEMState",
    "build",
    "momentum",
    "polynomial_schedule",
    "sgd",
    "sgfs",
    "sgld",
    "vem",
]


# ----------------------------------------------------------------------------------------------------- step sizes


@dataclass(frozen=True)
class Schedule:
    """A step size for every step: ``values`` ``[n_steps]`` (finite, > 0). The driver checks that the run has exactly
    ``len(values)`` steps (or, with ``offset``, that the schedule covers ``offset .. offset + n_steps − 1``)."""

    values: np.ndarray
    offset: int = 0

    def __post_init__(self):
        v = np.asarray(self.values, dtype=np.float64)
        if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)) or np.any(v <= 0):
            bad = v[~(np.isfinite(v) & (v > 0))][:3] if v.ndim == 1 else v.shape
            raise ValueError(f"a schedule needs a non-empty 1-D array of finite step sizes > 0; got bad values {bad}")
        object.__setattr__(self, "values", v)

    def __len__(self) -> int:
        return self.values.size

    def at(self, t: int) -> float:
        return float(self.values[self.offset + t])

    def shifted(self, offset: int) -> Schedule:
        """The same schedule started ``offset`` steps in (for a run resumed after ``offset`` steps)."""
        return Schedule(self.values, self.offset + int(offset))


def polynomial_schedule(n_steps: int, *, a: float, b: float = 0.0, gamma: float = 0.5, start: int = 0) -> Schedule:
    """``ε_t = a / (b + t)^γ`` for ``t = start .. start + n_steps − 1`` (SGLD's decreasing steps, Welling & Teh)."""
    if not (a > 0 and b >= 0 and gamma >= 0) or n_steps < 1:
        raise ValueError(f"need a > 0, b >= 0, gamma >= 0, n_steps >= 1; got a={a}, b={b}, gamma={gamma}, "
                         f"n_steps={n_steps}")
    t = np.arange(start, start + n_steps, dtype=np.float64)
    if b == 0 and start == 0 and gamma > 0:
        raise ValueError("a/(b + t)^γ is infinite at t = 0 when b = 0; give b > 0 or start >= 1")
    return Schedule(a / (b + t) ** gamma)


def check_eps(eps, name: str = "eps"):
    """``eps`` as a float, a 1-D float64 array of per-chain values, or a :class:`Schedule`; ``ValueError`` otherwise."""
    if isinstance(eps, Schedule):
        return eps
    arr = np.asarray(eps, dtype=np.float64)
    if arr.ndim > 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be a finite number > 0, a 1-D array of them (one per chain) or a Schedule; "
                         f"got {eps!r}")
    return float(arr) if arr.ndim == 0 else arr


def eps_values(eps) -> np.ndarray:
    """Every step size a sampler may use (for stability checks): ``[k]``."""
    if isinstance(eps, Schedule):
        return np.unique(eps.values[eps.offset:])
    return np.atleast_1d(np.asarray(eps, dtype=np.float64))


# ------------------------------------------------------------------------------------------------------- states


@dataclass
class State:
    """The state of plain chains: parameters ``theta`` ``[M, P]``."""

    theta: torch.Tensor


@dataclass
class MomentumState(State):
    """Momentum chains: parameters and velocities ``v`` ``[M, P]``."""

    v: torch.Tensor = None


@dataclass
class VEMState(State):
    """Variational EM: the chains and the current prior precision ``lam`` (shared by all chains); ``sq`` the chains'
    mean ``|θ|²`` after the last step; ``t`` the number of λ steps taken."""

    log_lam: float = 0.0
    sq: float = float("nan")
    t: int = 0

    @property
    def lam(self) -> float:
        return float(np.exp(self.log_lam))


# ----------------------------------------------------------------------------------------------------- samplers


def _preconditioner(H, name: str = "H") -> np.ndarray | None:
    """``None``, a positive finite vector (diagonal) or a symmetric positive definite matrix, as float64."""
    if H is None:
        return None
    H = np.asarray(H.detach().cpu().numpy() if hasattr(H, "detach") else H, dtype=np.float64)
    if H.ndim == 1:
        if H.size == 0 or not np.all(np.isfinite(H)) or np.any(H <= 0):
            raise ValueError(f"a diagonal preconditioner {name} must be finite and > 0; got min "
                             f"{H.min() if H.size else 'empty'}")
        return H
    if H.ndim == 2:
        return check_psd(H, name, strict=True)
    raise ValueError(f"preconditioner {name} must be None, a vector [P] or a matrix [P, P]; got shape {H.shape}")


def _as_param(H, P, dtype, device, name="H"):
    if H is None:
        return None
    if H.shape not in ((P,), (P, P)):
        raise ValueError(f"preconditioner {name} must be [P] or [P, P] with P = {P}; got shape {H.shape}")
    return torch.as_tensor(H, dtype=dtype, device=device)


def _apply(H, g):
    if H is None:
        return g
    return g * H if H.ndim == 1 else g @ H.T


@dataclass
class Sampler:
    """Base of the samplers: a name, a step size ``eps`` (see :func:`check_eps`) and a minibatch size ``S``."""

    eps: float | np.ndarray | Schedule
    S: int = 1
    name: str = ""
    needs_noise = False
    kind = "sampler"

    def __post_init__(self):
        self.eps = check_eps(self.eps)
        if isinstance(self.S, bool) or int(self.S) != self.S or self.S < 1:
            raise ValueError(f"minibatch size S must be an integer >= 1, got {self.S!r}")
        self.S = int(self.S)
        if not self.name:
            self.name = self.kind

    def init(self, theta: torch.Tensor, model) -> State:
        return State(theta)

    def update(self, state, batch, noise, eps, model):  # pragma: no cover - every sampler overrides it
        raise NotImplementedError

    def drift_matrix(self, A, N: int) -> np.ndarray:
        """``K/ε`` of the linearised recursion ``θ ← (I − εK/ε)θ + …`` at Hessian ``A`` (for stability checks)."""
        return np.asarray(A, dtype=np.float64)


@dataclass
class SGD(Sampler):
    """Constant SGD ``θ ← θ − ε H ĝ_S`` (``H``: None, a positive vector or an SPD matrix)."""

    H: np.ndarray | None = None
    kind = "sgd"

    def __post_init__(self):
        super().__post_init__()
        self.H = _preconditioner(self.H)

    def init(self, theta, model):
        self._H = _as_param(self.H, model.P, model.dtype, model.device)
        return State(theta)

    def update(self, state, batch, noise, eps, model):
        g = model.grad(state.theta, batch)
        return State(state.theta + (-eps * _apply(self._H, g)))

    def drift_matrix(self, A, N):
        A = np.asarray(A, dtype=np.float64)
        if self.H is None:
            return A
        return (np.diag(self.H) if self.H.ndim == 1 else self.H) @ A


@dataclass
class Momentum(Sampler):
    """Momentum SGD ``v ← (1 − μ) v − ε ĝ_S, θ ← θ + v`` with damping ``0 < μ <= 1`` (μ = 1: plain SGD)."""

    mu: float = 1.0
    kind = "momentum"

    def __post_init__(self):
        super().__post_init__()
        if not 0 < float(self.mu) <= 1:
            raise ValueError(f"momentum damping mu must lie in (0, 1], got {self.mu}")
        self.mu = float(self.mu)

    def init(self, theta, model):
        return MomentumState(theta, torch.zeros_like(theta))

    def update(self, state, batch, noise, eps, model):
        g = model.grad(state.theta, batch)
        v = (1 - self.mu) * state.v - eps * g
        return MomentumState(state.theta + v, v)


@dataclass
class SGLD(Sampler):
    """Stochastic gradient Langevin dynamics ``θ ← θ − (ε/2) N ĝ_S + √ε w`` (constant ``ε`` or a schedule)."""

    needs_noise = True
    kind = "sgld"

    def init(self, theta, model):
        self._H = torch.full((model.P,), 0.5 * model.N, dtype=model.dtype, device=model.device)
        return State(theta)

    def update(self, state, batch, noise, eps, model):
        g = model.grad(state.theta, batch)
        return State(state.theta + (-eps * _apply(self._H, g) + eps.sqrt() * noise))

    def drift_matrix(self, A, N):
        return 0.5 * N * np.asarray(A, dtype=np.float64)


@dataclass
class SGFS(Sampler):
    """Stochastic gradient Fisher scoring ``θ ← θ − ε H ĝ_S + √ε H E w`` with injected noise ``Cov(Ew) = EEᵀ``
    (a PSD matrix, or a non-negative vector meaning its diagonal) and preconditioner ``H``."""

    H: np.ndarray | None = None
    EEt: np.ndarray | None = None
    needs_noise = True
    kind = "sgfs"

    def __post_init__(self):
        super().__post_init__()
        if self.H is None or self.EEt is None:
            raise ValueError("SGFS needs a preconditioner H and an injected-noise covariance EEt")
        self.H = _preconditioner(self.H)
        E = np.asarray(self.EEt, dtype=np.float64)
        if E.ndim == 1:
            if not np.all(np.isfinite(E)) or np.any(E < 0):
                raise ValueError("SGFS EEᵀ given as a vector (its diagonal) must be finite and >= 0")
        else:
            E = check_psd(E, "EEᵀ", strict=False)
        self.EEt = E

    def noise_factor(self) -> np.ndarray:
        """``G`` with ``Cov(G w) = H EEᵀ Hᵀ``: ``H E``, ``E`` the eigen-factor of ``EEᵀ``."""
        if self.EEt.ndim == 1:
            E = np.diag(np.sqrt(self.EEt))
        else:
            w, V = np.linalg.eigh(self.EEt)
            E = V * np.sqrt(np.clip(w, 0, None))
        Hm = np.diag(self.H) if self.H.ndim == 1 else self.H
        return Hm @ E

    def init(self, theta, model):
        self._H = _as_param(self.H, model.P, model.dtype, model.device)
        G = self.noise_factor()
        if G.shape != (model.P, model.P):
            raise ValueError(f"SGFS EEᵀ must be [P] or [P, P] with P = {model.P}; got shape {self.EEt.shape}")
        self._G = torch.as_tensor(G, dtype=model.dtype, device=model.device)
        return State(theta)

    def update(self, state, batch, noise, eps, model):
        g = model.grad(state.theta, batch)
        return State(state.theta + (-eps * _apply(self._H, g) + eps.sqrt() * (noise @ self._G.T)))

    def drift_matrix(self, A, N):
        return (np.diag(self.H) if self.H.ndim == 1 else self.H) @ np.asarray(A, dtype=np.float64)


@dataclass
class VEM(Sampler):
    """Constant-SGD variational EM for the prior precision λ (Mandt et al. §7.3): each step every chain takes a
    constant-SGD step on ``L(θ, λ)`` (E-step, sampling ``q``), then ``λ`` takes one Robbins–Monro step on
    ``log λ`` towards the M-step fixed point ``λ = P / E_q|θ|²``:

        log λ ← log λ − ρ_t (λ · mean_m |θ_m|² / P − 1),   ρ_t = ρ₀ (1 + t/t₀)^{−0.7}

    (``∂L/∂ log λ`` rescaled by ``2N/P``). ``eps`` must be a float."""

    lam0: float = 1.0
    rho0: float = 0.05
    t0: float = 100.0
    kind = "vem"

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.eps, float):
            raise ValueError("variational EM runs at one constant learning rate: eps must be a float")
        if not (self.lam0 > 0 and self.rho0 > 0 and self.t0 > 0):
            raise ValueError(f"need lam0, rho0, t0 > 0; got {self.lam0}, {self.rho0}, {self.t0}")

    def init(self, theta, model):
        return VEMState(theta, log_lam=float(np.log(self.lam0)))

    def update(self, state, batch, noise, eps, model):
        lam = float(np.exp(state.log_lam))
        theta = state.theta - self.eps * model.grad(state.theta, batch, prior_precision=lam)
        sq = float((theta.double() ** 2).sum(1).mean())
        if not np.isfinite(sq):
            raise DivergenceError(f"VEM: the chains diverged at step {state.t} (eps={self.eps}); lower eps")
        rho = self.rho0 * (1 + state.t / self.t0) ** -0.7
        log_lam = state.log_lam - rho * (np.exp(state.log_lam) * sq / model.P - 1.0)
        log_lam = float(np.clip(log_lam, -30, 30))
        return VEMState(theta, log_lam=log_lam, sq=sq, t=state.t + 1)


# ------------------------------------------------------------------------------------------------ constructors


def sgd(eps, S: int = 1, H=None, name: str = "") -> SGD:
    """Constant SGD ``θ ← θ − εHĝ_S``; ``H`` None, a positive vector (diagonal) or an SPD matrix."""
    return SGD(eps, S, name or "sgd", H=H)


def momentum(eps, mu: float, S: int = 1, name: str = "") -> Momentum:
    """Momentum SGD ``v ← (1−μ)v − εĝ_S, θ ← θ + v``."""
    return Momentum(eps, S, name or "momentum", mu=mu)


def sgld(eps, S: int = 1, name: str = "") -> SGLD:
    """SGLD ``θ ← θ − (ε/2)Nĝ_S + √ε w`` (``eps`` a float, per-chain values or a :class:`Schedule`)."""
    return SGLD(eps, S, name or "sgld")


def sgfs(eps, H, EEt, S: int = 1, name: str = "") -> SGFS:
    """SGFS ``θ ← θ − εHĝ_S + √ε H E w`` with ``Cov(Ew) = EEᵀ`` (a PSD matrix or a non-negative vector)."""
    return SGFS(eps, S, name or "sgfs", H=H, EEt=EEt)


def vem(eps: float, S: int = 1, *, lam0: float = 1.0, rho0: float = 0.05, t0: float = 100.0, name: str = "") -> VEM:
    """Constant-SGD variational EM for the prior precision (see :class:`VEM`)."""
    return VEM(eps, S, name or "vem", lam0=lam0, rho0=rho0, t0=t0)


#: Sampler constructors by name (what :func:`build` accepts).
SAMPLERS = {"sgd": sgd, "momentum": momentum, "sgld": sgld, "sgfs": sgfs, "vem": vem}


def build(name: str, **kwargs) -> Sampler:
    """A sampler by name (one of :data:`SAMPLERS`); an unknown name raises ``ValueError`` listing the known ones."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; allowed: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](**kwargs)

