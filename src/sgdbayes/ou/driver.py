"""The one vectorised driver of the samplers in :mod:`sgdbayes.ou.samplers`: ``M`` chains in one ``[M, P]`` tensor,
each drawing its own minibatches, with observers (:mod:`sgdbayes.ou.observers`) recording what is needed.

    result = run(model, sgd(eps, S=10), n_chains=1000, n_steps=2000, init=theta0, seed=0,
                 observers=[Moments(start=500)], A=A)

Randomness is drawn in chunks of up to ``chunk`` steps — first the chunk's minibatches (from the model), then the
chunk's injected noise (for the samplers that need it) — and chunks end where an observer needs them to (window and
record boundaries), so a run's random stream is fixed by ``seed`` and ``chunk``. ``chunk=1`` draws step by step.

Before any chain runs the driver checks what it can: the step-size schedule covers the run, the initial states are
finite and of the right shape, and — when the Hessian ``A`` is given (or ``A="auto"``) — every step size is below the
stability limit of the linearised recursion (``ValueError`` naming the step sizes; ``stability="warn"`` only warns,
for demonstrations of divergence). While running, :class:`~sgdbayes.ou.observers.Divergence` raises or marks chains
that blow up; marked chains are frozen and left out of every statistic.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from sgdbayes.ou.observers import Divergence, DivergenceError, Observer
from sgdbayes.ou.samplers import Momentum, Sampler, Schedule, eps_values
from sgdbayes.ou.theory import StabilityWarning, check_psd
from sgdbayes.ou.threads import small_op_threads
from sgdbayes.seed import make_generator

__all__ = ["DivergenceError", "Run", "initial_states", "run", "spectral_radius"]


@dataclass
class Run:
    """What :func:`run` returns: the final ``state``, the ``divergence`` record and the ``observers`` (in the order
    given), plus the run's size."""

    state: object
    divergence: Divergence
    observers: list
    n_steps: int
    sampler: Sampler

    @property
    def final(self) -> torch.Tensor:
        """Final states ``[M, P]`` (diverged chains at their start)."""
        return self.state.theta

    @property
    def diverged(self) -> torch.Tensor:
        return self.divergence.diverged

    @property
    def n_diverged(self) -> int:
        return self.divergence.n_diverged

    def final_cov(self) -> np.ndarray:
        """Cross-chain covariance of the final states of the non-diverged chains ``[P, P]`` (float64): ``M``
        independent draws of the law after ``n_steps`` steps."""
        ok = ~self.diverged
        if not bool(ok.any()):
            raise DivergenceError(f"all {ok.numel()} chains of {self.sampler.name} diverged")
        X = self.final[ok].double()
        X = X - X.mean(0)
        return (X.T @ X / (X.shape[0] - 1)).cpu().numpy()


def initial_states(model, init, n_chains: int, generator: torch.Generator) -> torch.Tensor:
    """Starting points ``[n_chains, P]``: ``"mode"`` (the model's mode), ``"prior"`` (draws of the prior
    ``N(0, λ⁻¹I)`` from ``generator``) or given states ``[P]`` / ``[n_chains, P]``."""
    if isinstance(init, str):
        if init == "mode":
            return model.mode().reshape(1, -1).expand(n_chains, model.P).clone()
        if init == "prior":
            return torch.randn(n_chains, model.P, generator=generator, dtype=model.dtype,
                               device=model.device) / float(np.sqrt(model.prior_precision))
        raise ValueError(f"init must be 'mode', 'prior' or an array of states, got {init!r}")
    th = torch.as_tensor(init, dtype=model.dtype, device=model.device)
    return th.expand(n_chains, model.P).clone() if th.ndim == 1 else th


def spectral_radius(sampler: Sampler, A, N: int) -> np.ndarray:
    """Spectral radius of the linearised recursion of ``sampler`` at Hessian ``A`` for each of its step sizes
    (< 1 ⇔ stable), ``[k]``."""
    A = check_psd(A, "A", strict=True)
    out = []
    if isinstance(sampler, Momentum):
        a = np.linalg.eigvalsh(A)
        for e in eps_values(sampler.eps):
            r = 0.0
            for ai in a:  # per eigenvalue a of A: [θ; v] ← [[1−εa, 1−μ], [−εa, 1−μ]] [θ; v]
                m = np.array([[1 - e * ai, 1 - sampler.mu], [-e * ai, 1 - sampler.mu]])
                r = max(r, float(np.abs(np.linalg.eigvals(m)).max()))
            out.append(r)
        return np.array(out)
    eigs = np.linalg.eigvals(sampler.drift_matrix(A, N))
    return np.array([float(np.abs(1 - e * eigs).max()) for e in eps_values(sampler.eps)])


def _eps_tensor(eps, M, n_steps, dtype, device):
    """A function ``t → [1, 1] or [M, 1]`` step-size tensor; checks lengths before anything runs."""
    if isinstance(eps, Schedule):
        if len(eps) - eps.offset != n_steps:
            raise ValueError(f"the step-size schedule has {len(eps) - eps.offset} values (from offset {eps.offset}) "
                             f"but the run has {n_steps} steps; they must match")
        vals = torch.as_tensor(eps.values[eps.offset:], dtype=dtype, device=device).reshape(-1, 1, 1)
        return lambda t: vals[t]
    arr = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    if arr.size not in (1, M):
        raise ValueError(f"eps has {arr.size} values but there are {M} chains; give one value or one per chain")
    const = torch.as_tensor(arr, dtype=dtype, device=device).reshape(-1, 1)
    return lambda t: const


def run(model, sampler: Sampler, *, n_chains: int, n_steps: int, init=None, seed=0, observers=(),
        A=None, stability: str = "raise", divergence: Divergence | None = None, chunk: int = 1,
        progress: bool = False) -> Run:
    """Run ``n_chains`` chains of ``sampler`` on ``model`` for ``n_steps`` steps.

    Args:
        init: ``[P]`` or ``[M, P]`` start(s); default the model's mode.
        seed: an int or a ``torch.Generator`` (whose state is used and advanced).
        observers: :class:`~sgdbayes.ou.observers.Observer` instances; read them after the run.
        A: Hessian of ``L`` at the optimum ``[P, P]`` for the stability check; ``"auto"`` computes it at the first
            start (``P <= 2000``); ``None`` skips the check.
        stability: ``"raise"`` (``ValueError`` before running when a step size is at or past the stability limit)
            or ``"warn"`` (:class:`~sgdbayes.ou.theory.StabilityWarning`, then run: the chains diverge).
        divergence: how divergence is detected and handled (default: check every 25 steps, raise).
        chunk: at most this many steps of randomness are drawn at once (a speed knob that fixes the random stream).
    """
    if not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be a Sampler (see sgdbayes.ou.samplers), got {type(sampler).__name__}")
    if stability not in ("raise", "warn"):
        raise ValueError(f"stability must be 'raise' or 'warn', got {stability!r}")
    M, n_steps, chunk = int(n_chains), int(n_steps), int(chunk)
    if M < 1 or n_steps < 1 or chunk < 1:
        raise ValueError(f"need n_chains >= 1, n_steps >= 1, chunk >= 1; got {n_chains}, {n_steps}, {chunk}")
    for o in observers:
        if not isinstance(o, Observer):
            raise TypeError(f"observers must be Observer instances, got {type(o).__name__}")
    P, dtype, device = model.P, model.dtype, model.device
    eps_at = _eps_tensor(sampler.eps, M, n_steps, dtype, device)
    theta0 = torch.as_tensor(model.mode() if init is None else init, dtype=dtype, device=device)
    if theta0.ndim == 1:
        theta0 = theta0.expand(M, P)
    if theta0.shape != (M, P):
        raise ValueError(f"init must be [P] or [M, P] = [{M}, {P}], got {tuple(theta0.shape)}")
    if not torch.isfinite(theta0).all():
        raise ValueError("init contains NaN or inf")
    if isinstance(A, str):
        if A != "auto":
            raise ValueError(f"A must be a matrix, 'auto' or None; got {A!r}")
        A = model.hessian(theta0[0].double().cpu()) if P <= 2000 else None
    if A is not None:
        _check_stability(sampler, A, model.N, stability)
    divergence = divergence or Divergence()
    gen = make_generator(seed, device)
    state = sampler.init(theta0.clone(), model)
    obs = [divergence, *observers]
    for o in obs:
        o.start(M, P, n_steps, dtype, device)
    ends = sorted({b for o in obs for b in o.boundaries(n_steps) if 0 < b <= n_steps} | {n_steps})
    ref = theta0.abs().amax(1)
    work = M * P * (sampler.S + (P if getattr(sampler, "H", None) is not None and sampler.H.ndim == 2 else 1))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, desc=sampler.name, unit="step")
    t, e = 0, 0
    with small_op_threads(work, device):
        while t < n_steps:
            while ends[e] <= t:
                e += 1
            n = min(chunk, ends[e] - t)
            state = _chunk(model, sampler, state, gen, t, n, eps_at, divergence, theta0, ref, obs)
            t += n
            if bar is not None:
                bar.update(n)
    if bar is not None:
        bar.close()
    for o in obs:
        o.finish(divergence.diverged)
    return Run(state, divergence, list(observers), n_steps, sampler)


def _check_stability(sampler, A, N, stability):
    rho = spectral_radius(sampler, A, N)
    if np.any(rho >= 1):
        vals = eps_values(sampler.eps)
        bad = vals[rho >= 1] if rho.size == vals.size else vals
        msg = (f"{sampler.name}: step size(s) {np.unique(bad)[:5]} are at or past the stability limit (spectral "
               f"radius of the linearised recursion {rho.max():.4g} >= 1); those chains would diverge")
        if stability == "raise":
            raise ValueError(msg + "; lower the step size (or pass stability='warn' to watch them diverge)")
        warnings.warn(msg, StabilityWarning, stacklevel=3)


def _chunk(model, sampler, state, gen, t0, n, eps_at, divergence, theta0, ref, obs):
    """``n`` steps of every chain from step ``t0``; checks divergence, then hands the states to the observers."""
    batches = model.draw_batches(gen, n, theta0.shape[0], sampler.S)
    noise = None
    if sampler.needs_noise:
        noise = torch.randn((n, *theta0.shape), generator=gen, dtype=theta0.dtype, device=theta0.device)
    thetas = torch.empty((n, *theta0.shape), dtype=theta0.dtype, device=theta0.device)
    frozen = divergence.diverged.any()
    for j in range(n):
        new = sampler.update(state, batches.step(j), None if noise is None else noise[j], eps_at(t0 + j), model)
        if frozen:
            new.theta = torch.where(divergence.diverged[:, None], state.theta, new.theta)
        state = new
        thetas[j] = state.theta
    if divergence.due(t0, t0 + n):
        new = divergence.check(t0 + n, state.theta, theta0, ref, lambda m: _describe(sampler, m))
        if new.any():
            state.theta = torch.where(divergence.diverged[:, None], theta0, state.theta)
            if hasattr(state, "v") and state.v is not None:
                state.v = torch.where(divergence.diverged[:, None], torch.zeros_like(state.v), state.v)
    for o in obs:
        o.observe(t0, thetas, state, divergence.diverged)
    return state


def _describe(sampler, mask) -> str:
    vals = eps_values(sampler.eps)
    if isinstance(sampler.eps, np.ndarray) and vals.size == mask.numel():
        vals = vals[mask.cpu().numpy()]
    return f"{sampler.name}, step size(s) {np.unique(vals)[:5]}"
