"""Many independent constant-rate stochastic-gradient chains in one tensor.

``run_chains(model, sampler, n_chains=1000, n_steps=..., burn_in=...)`` advances ``M`` chains ``θ`` ``[M, P]`` at once;
each chain draws its own minibatch every step. The samplers (all with a constant learning rate ``ε``, a scalar or one
per chain ``[M]``):

=============  ==========================================================================
``sgd``        ``θ ← θ − ε H ĝ_S``   (``H`` = I, a diagonal vector or a full ``[P, P]`` matrix)
``momentum``   ``v ← (1 − μ) v − ε ĝ_S,  θ ← θ + v``
``sgld``       ``θ ← θ − (ε/2) N ĝ_S + √ε w``,  ``w ~ N(0, I)``
``sgfs``       ``θ ← θ − ε H ĝ_S + √ε H E w``,  ``EEᵀ`` given
=============  ==========================================================================

Near the optimum the stationary covariance of each is given by :mod:`sgdbayes.ou.theory`. A learning rate above the
stability limit gets a :class:`~sgdbayes.ou.theory.StabilityWarning` (when the Hessian is known) and divergence — a
non-finite or exploding iterate — is detected every ``check_every`` steps and raised as :class:`DivergenceError`
(``on_divergence="raise"``) or reported per chain (``"mark"``), never silently averaged.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from sgdbayes.device import torch_threads
from sgdbayes.ou.models import Model
from sgdbayes.ou.theory import StabilityWarning, as_preconditioner, check_psd
from sgdbayes.seed import make_generator

__all__ = ["ChainResult", "DivergenceError", "Sampler", "momentum_sgd", "online_noise_covariance", "run_chains",
           "sgd", "sgfs", "sgld", "small_op_threads", "spectral_radius"]

_KINDS = ("sgd", "momentum", "sgld", "sgfs")


class DivergenceError(FloatingPointError):
    """Chains left every bounded region (NaN/inf or exploding iterates): the learning rate is too large."""


@dataclass
class Sampler:
    """A constant-rate sampler; build with :func:`sgd`, :func:`momentum_sgd`, :func:`sgld`, :func:`sgfs`."""

    kind: str
    eps: float | np.ndarray
    S: int = 1
    H: np.ndarray | None = None        # None, [P] (diagonal) or [P, P]
    mu: float = 1.0                    # momentum damping (1 = plain SGD)
    EEt: np.ndarray | None = None      # SGFS injected-noise covariance
    name: str = ""

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"unknown sampler kind {self.kind!r}; allowed: {', '.join(_KINDS)}")
        eps = np.asarray(self.eps, dtype=np.float64)
        if eps.ndim > 1 or eps.size == 0 or not np.all(np.isfinite(eps)) or np.any(eps <= 0):
            raise ValueError(f"eps must be a finite positive number or a 1-D array of them, got {self.eps!r}")
        self.eps = float(eps) if eps.ndim == 0 else eps
        if int(self.S) != self.S or self.S < 1:
            raise ValueError(f"minibatch size S must be an integer >= 1, got {self.S}")
        self.S = int(self.S)
        if not 0 < self.mu <= 1:
            raise ValueError(f"momentum damping mu must lie in (0, 1], got {self.mu}")
        if not self.name:
            self.name = self.kind


def sgd(eps, S: int = 1, H=None, name: str = "") -> Sampler:
    """Constant SGD ``θ ← θ − εHĝ_S``; ``H`` None, a positive vector (diagonal) or a PD matrix."""
    return Sampler("sgd", eps, S, H=None if H is None else np.asarray(H, dtype=np.float64), name=name or "sgd")


def momentum_sgd(eps, mu: float, S: int = 1, name: str = "") -> Sampler:
    """Momentum SGD ``v ← (1−μ)v − εĝ_S, θ ← θ + v``."""
    return Sampler("momentum", eps, S, mu=float(mu), name=name or "momentum")


def sgld(eps, S: int = 1, name: str = "") -> Sampler:
    """Constant-rate SGLD ``θ ← θ − (ε/2)Nĝ_S + √ε w``."""
    return Sampler("sgld", eps, S, name=name or "sgld")


def sgfs(eps, H, EEt, S: int = 1, name: str = "") -> Sampler:
    """SGFS ``θ ← θ − εHĝ_S + √ε H E w`` with ``Cov(Ew) = EEᵀ`` (``EEt`` a PSD matrix or a non-negative vector)."""
    EEt = np.asarray(EEt, dtype=np.float64)
    return Sampler("sgfs", eps, S, H=np.asarray(H, dtype=np.float64), EEt=EEt, name=name or "sgfs")


def spectral_radius(sampler: Sampler, A, N: int) -> np.ndarray:
    """Spectral radius of the linearised recursion of ``sampler`` at Hessian ``A`` for each ``ε`` (< 1 ⇔ stable)."""
    A = check_psd(A, "A", strict=True)
    P = A.shape[0]
    H = as_preconditioner(sampler.H, P) if sampler.kind in ("sgd", "sgfs") else np.eye(P)
    if sampler.kind == "sgld":
        H = 0.5 * N * np.eye(P)
    eigs = np.linalg.eigvals(H @ A)
    out = []
    for e in np.atleast_1d(sampler.eps):
        if sampler.kind == "momentum":
            # per eigenvalue a of A: [θ; v] ← [[1−εa, 1−μ], [−εa, 1−μ]] [θ; v]
            r = 0.0
            for a in np.linalg.eigvalsh(A):
                m = np.array([[1 - e * a, 1 - sampler.mu], [-e * a, 1 - sampler.mu]])
                r = max(r, float(np.abs(np.linalg.eigvals(m)).max()))
            out.append(r)
        else:
            out.append(float(np.abs(1 - e * eigs).max()))
    return np.array(out)


@dataclass
class ChainResult:
    """Output of :func:`run_chains`.

    ``samples`` ``[T, M, P]``: states after burn-in every ``thin`` steps (``None`` when ``keep_samples=False``);
    ``final`` ``[M, P]``; ``diverged`` ``[M]`` bool and ``diverged_step`` ``[M]`` (−1 if not); running moments over
    all kept states of the non-diverged chains give :meth:`mean` and :meth:`cov`."""

    sampler: Sampler
    final: torch.Tensor
    samples: torch.Tensor | None
    diverged: torch.Tensor
    diverged_step: torch.Tensor
    n_steps: int
    burn_in: int
    thin: int
    _sum: torch.Tensor = field(repr=False, default=None)
    _sum2: torch.Tensor = field(repr=False, default=None)
    _count: int = 0

    @property
    def n_diverged(self) -> int:
        return int(self.diverged.sum())

    def _ok(self):
        if self.n_diverged == self.final.shape[0]:
            raise DivergenceError(f"all {self.final.shape[0]} chains of {self.sampler.name} diverged")
        return ~self.diverged

    def mean(self) -> np.ndarray:
        """Mean over kept states and non-diverged chains ``[P]`` (float64)."""
        if self.samples is not None:
            return self.samples[:, self._ok()].double().mean((0, 1)).cpu().numpy()
        return (self._sum / self._count).cpu().numpy()

    def cov(self, *, per_chain_mean: bool = False) -> np.ndarray:
        """Covariance ``[P, P]`` (float64) pooled over kept states and non-diverged chains. ``per_chain_mean=True``
        centres each chain on its own time average (needs ``samples``); for an ε sweep pass one chain group."""
        if self.samples is not None:
            X = self.samples[:, self._ok()].double()
            X = X - (X.mean(0, keepdim=True) if per_chain_mean else X.mean((0, 1), keepdim=True))
            X = X.reshape(-1, X.shape[-1])
            return (X.T @ X / (X.shape[0] - 1)).cpu().numpy()
        m = self._sum / self._count
        return ((self._sum2 / self._count - torch.outer(m, m)) * self._count / (self._count - 1)).cpu().numpy()

    def cov_final(self) -> np.ndarray:
        """Cross-chain covariance of the final states ``[P, P]``: M independent draws from the stationary law."""
        X = self.final[self._ok()].double()
        X = X - X.mean(0)
        return (X.T @ X / (X.shape[0] - 1)).cpu().numpy()

    def group_cov(self, groups: int) -> np.ndarray:
        """Covariance ``[G, P, P]`` for chains split into ``groups`` equal consecutive blocks (one per ε of a sweep);
        a block with a diverged chain is NaN."""
        if self.samples is None:
            raise ValueError("group_cov needs keep_samples=True")
        T, M, P = self.samples.shape
        if M % groups:
            raise ValueError(f"{M} chains cannot be split into {groups} equal groups")
        X = self.samples.double().reshape(T, groups, M // groups, P).transpose(0, 1).reshape(groups, -1, P)
        X = X - X.mean(1, keepdim=True)
        out = (X.transpose(1, 2) @ X / (X.shape[1] - 1)).cpu().numpy()
        bad = self.diverged.reshape(groups, -1).any(1).cpu().numpy()
        out[bad] = np.nan
        return out


@contextlib.contextmanager
def small_op_threads(work: float, threshold: float = 4e6):
    """Run a loop of small tensor ops single-threaded when ``work`` (elements touched per step) is below
    ``threshold``: BLAS calls on tiny matrices gain nothing from threads, and on a busy machine their thread
    hand-offs cost 10–50× the arithmetic. Restores the previous thread count."""
    if work >= threshold or torch.get_num_threads() == 1:
        yield
        return
    with torch_threads(1):
        yield


def _as_param(H, P, dtype, device):
    if H is None:
        return None
    H = torch.as_tensor(np.asarray(H), dtype=dtype, device=device)
    if H.ndim == 1 and H.shape[0] != P or H.ndim == 2 and H.shape != (P, P) or H.ndim > 2:
        raise ValueError(f"preconditioner must be [P] or [P, P] with P={P}, got {tuple(H.shape)}")
    return H


def _apply(H, g):
    if H is None:
        return g
    return g * H if H.ndim == 1 else g @ H.T


def run_chains(model: Model, sampler: Sampler, *, n_chains: int = 1000, n_steps: int = 1000, burn_in: int = 0,
               thin: int = 1, init=None, seed=0, A=None, keep_samples: bool = True, on_divergence: str = "raise",
               check_every: int = 25, blowup: float = 1e6, progress: bool = False) -> ChainResult:
    """Run ``n_chains`` independent chains of ``sampler`` on ``model`` for ``n_steps`` steps.

    Args:
        init: ``[P]`` or ``[M, P]`` starting point(s); default the model's mode (stationarity from step 0 up to
            the transient of the covariance, so keep a ``burn_in`` of a few relaxation times ``1/(ε λ_min(HA))``).
        eps: the sampler's ``eps`` may be an array ``[M]`` (one learning rate per chain: a sweep in one tensor).
        A: Hessian of ``L`` at the optimum (``[P, P]``) used to warn when ``ε`` is past the stability limit;
            ``"auto"`` computes ``model.hessian`` at ``init`` (only when ``P <= 2000``); ``None`` skips the warning.
        on_divergence: ``"raise"`` → :class:`DivergenceError`; ``"mark"`` → flag the chains in ``diverged`` and
            freeze them (statistics exclude them).
        blowup: a chain whose ``|θ − init|_∞`` exceeds ``blowup·(1 + |init|_∞)`` or is non-finite has diverged.
    """
    if on_divergence not in ("raise", "mark"):
        raise ValueError(f"on_divergence must be 'raise' or 'mark', got {on_divergence!r}")
    M = int(n_chains)
    if M < 1 or n_steps < 1 or burn_in < 0 or burn_in >= n_steps or thin < 1:
        raise ValueError(f"need n_chains >= 1, n_steps >= 1, 0 <= burn_in < n_steps, thin >= 1; got {M}, {n_steps}, "
                         f"{burn_in}, {thin}")
    P, dtype, device = model.P, model.dtype, model.device
    gen = make_generator(seed, device)
    eps_np = np.atleast_1d(sampler.eps)
    if eps_np.size not in (1, M):
        raise ValueError(f"eps has {eps_np.size} values but there are {M} chains")
    eps = torch.as_tensor(eps_np, dtype=dtype, device=device).reshape(-1, 1)
    if init is None:
        init = model.mode()
    theta0 = torch.as_tensor(init, dtype=dtype, device=device)
    if theta0.ndim == 1:
        theta0 = theta0.expand(M, P)
    if theta0.shape != (M, P):
        raise ValueError(f"init must be [P] or [M, P] = [{M}, {P}], got {tuple(theta0.shape)}")
    if not torch.isfinite(theta0).all():
        raise ValueError("init contains NaN or inf")
    if isinstance(A, str) and A == "auto":
        A = model.hessian(theta0[0].double().cpu()) if P <= 2000 else None
    if A is not None:
        rho = spectral_radius(sampler, A, model.N)
        if np.any(rho >= 1):
            bad = eps_np[np.atleast_1d(rho >= 1) if rho.size == eps_np.size else slice(None)]
            warnings.warn(f"{sampler.name}: learning rate(s) {np.unique(bad)[:5]} are at or above the stability limit "
                          f"(spectral radius of the linearised recursion {rho.max():.4g} >= 1); those chains diverge",
                          StabilityWarning, stacklevel=2)

    kind = sampler.kind
    H = _as_param(sampler.H, P, dtype, device)
    noise = None
    if kind == "sgld":
        H = torch.full((P,), 0.5 * model.N, dtype=dtype, device=device)
        noise = "iid"
    elif kind == "sgfs":
        EEt = np.asarray(sampler.EEt, dtype=np.float64)
        if EEt.ndim == 1:
            if np.any(EEt < 0):
                raise ValueError("SGFS EEᵀ given as a vector must be >= 0")
            E = np.diag(np.sqrt(EEt))
        else:
            EEt = check_psd(EEt, "EEᵀ", strict=False)
            w, V = np.linalg.eigh(EEt)
            E = V * np.sqrt(np.clip(w, 0, None))
        Hm = np.diag(sampler.H) if np.ndim(sampler.H) == 1 else np.asarray(sampler.H)
        noise = torch.as_tensor(Hm @ E, dtype=dtype, device=device)       # G with Cov(G w) = H EEᵀ Hᵀ
    sqrt_eps = eps.sqrt()

    theta = theta0.clone()
    v = torch.zeros_like(theta) if kind == "momentum" else None
    ref = theta0.abs().amax(1)
    diverged = torch.zeros(M, dtype=torch.bool, device=device)
    div_step = torch.full((M,), -1, dtype=torch.long, device=device)
    n_keep = (n_steps - burn_in) // thin
    samples = torch.empty((n_keep, M, P), dtype=dtype, device=device) if keep_samples else None
    s1 = torch.zeros(P, dtype=torch.float64, device=device)
    s2 = torch.zeros(P, P, dtype=torch.float64, device=device)
    steps = range(n_steps)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc=sampler.name)
    work = M * P * (sampler.S + (P if H is not None and H.ndim == 2 else 1))
    if device.type != "cpu":
        work = float("inf")
    with small_op_threads(work):
        theta, v, k, count = _loop(model, sampler, steps, theta, v, theta0, ref, eps, sqrt_eps, H, noise, kind,
                                   diverged, div_step, samples, s1, s2, burn_in, thin, n_keep, n_steps, check_every,
                                   blowup, on_divergence, eps_np, M, gen)
    if samples is not None and diverged.any():
        samples[:, diverged] = float("nan")
    return ChainResult(sampler, theta, samples, diverged, div_step, n_steps, burn_in, thin, s1, s2, count)


def _loop(model, sampler, steps, theta, v, theta0, ref, eps, sqrt_eps, H, noise, kind, diverged, div_step, samples,
          s1, s2, burn_in, thin, n_keep, n_steps, check_every, blowup, on_divergence, eps_np, M, gen):
    """The step loop of :func:`run_chains` (updates ``diverged``, ``div_step``, ``samples``, ``s1``, ``s2`` in place)."""
    dtype, device = theta.dtype, theta.device
    count, k = 0, 0
    for t in steps:
        g = model.minibatch_grad(theta, sampler.S, gen)
        if kind == "momentum":
            v = (1 - sampler.mu) * v - eps * g
            step = v
        else:
            step = -eps * _apply(H, g)
            if noise is not None:
                w = torch.randn(theta.shape, generator=gen, dtype=dtype, device=device)
                step = step + sqrt_eps * (w if noise == "iid" else w @ noise.T)
        if diverged.any():
            step = torch.where(diverged[:, None], torch.zeros_like(step), step)
        theta = theta + step
        if (t + 1) % check_every == 0 or t == n_steps - 1:
            bad = ~torch.isfinite(theta).all(1) | ((theta - theta0).abs().amax(1) > blowup * (1 + ref))
            new = bad & ~diverged
            if new.any():
                if on_divergence == "raise":
                    e_bad = eps_np if eps_np.size == 1 else eps_np[new.cpu().numpy()]
                    raise DivergenceError(
                        f"{sampler.name}: {int(new.sum())} of {M} chains diverged by step {t + 1} "
                        f"(learning rate(s) {np.unique(e_bad)[:5]}); lower eps below the stability limit "
                        "2/λ_max(HA)")
                diverged |= new
                div_step[new] = t + 1
                theta = torch.where(diverged[:, None], theta0, theta)
                if v is not None:
                    v = torch.where(diverged[:, None], torch.zeros_like(v), v)
        if t >= burn_in and (t - burn_in + 1) % thin == 0 and k < n_keep:
            if samples is not None:
                samples[k] = theta
            else:
                ok = theta[~diverged].double()
                s1 += ok.sum(0)
                s2 += ok.T @ ok
                count += ok.shape[0]
            k += 1
    return theta, v, k, count


def online_noise_covariance(model: Model, theta, *, S: int, n_steps: int, eps: float = 0.0, seed=0) -> np.ndarray:
    """The paper's running estimate ``C_t = (1 − κ_t) C_{t−1} + κ_t (ĝ_1 − ĝ_S)(ĝ_1 − ĝ_S)ᵀ``, ``κ_t = 1/t``.

    ``theta`` ``[P]`` or ``[M, P]`` (M chains update one shared estimate, averaging their outer products); with
    ``eps > 0`` the chains take constant-SGD steps in between, as during a run. ``ĝ_1`` is the first example of the
    minibatch, so ``E(ĝ_1 − ĝ_S)(ĝ_1 − ĝ_S)ᵀ = (1 − 1/S) C``; the result is divided by ``1 − 1/S`` (needs ``S >= 2``)."""
    if S < 2:
        raise ValueError(f"the online estimate needs a minibatch of S >= 2, got {S}")
    if not hasattr(model, "example_grads"):
        raise TypeError(f"{type(model).__name__} has no per-example gradients")
    gen = make_generator(seed, model.device)
    th = torch.as_tensor(theta, dtype=model.dtype, device=model.device)
    th = th[None] if th.ndim == 1 else th.clone()
    C = torch.zeros(model.P, model.P, dtype=torch.float64, device=model.device)
    with small_op_threads(th.shape[0] * S * model.P if model.device.type == "cpu" else float("inf")):
        C = _online_loop(model, th, C, S, n_steps, eps, gen)
    C = C / (1 - 1 / S)
    return (0.5 * (C + C.T)).cpu().numpy()


def _online_loop(model, th, C, S, n_steps, eps, gen):
    for t in range(1, n_steps + 1):
        idx = torch.randint(model.N, (th.shape[0], S), generator=gen, device=model.device)
        G = model.example_grads(th, idx)                         # [M, S, P]
        gS = G.mean(1)
        d = (G[:, 0] - gS).double()
        C = (1 - 1 / t) * C + (1 / t) * (d.T @ d / d.shape[0])
        if eps > 0:
            th = th - eps * gS
    return C
