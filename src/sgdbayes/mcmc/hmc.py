"""Hamiltonian Monte Carlo for many chains at once, with an annealed likelihood temperature.

Target: ``π_τ(u) ∝ exp(−U_τ(u))`` for a model with ``potential_and_grad(u [C, P], τ) → (U [C], ∇U [C, P], loglik [C])``
(e.g. :class:`sgdbayes.mcmc.FCNPosterior`). Each iteration draws a momentum ``p ~ N(0, I)`` (identity mass: the
coordinates are whitened by the prior), runs ``L`` leapfrog steps of size ε and accepts with probability
``min(1, exp(H₀ − H₁))``, ``H = U + ½‖p‖²`` (Neal 2011, "MCMC using Hamiltonian dynamics"). Every chain is an exact
HMC chain of its own: the chains share only the step (fixed after the warm-up) and the number of leapfrog steps per
iteration, which is drawn independently of their states (uniform in ``[⌈L/2⌉, L]``, which avoids periodic orbits).

Warm-up (draws discarded):

1. *annealing*: the temperature falls geometrically from ``tau_start`` to ``tau`` over the first ``anneal_frac`` of
   the warm-up, starting from prior draws, so that chains reach the sharp posterior through a sequence of
   overlapping ones instead of being dropped into it;
2. *step-size adaptation*: one step size shared by all chains (they sample the same target) follows the
   dual-averaging scheme of Hoffman & Gelman (2014, NUTS paper, §3.2; γ = 0.05, t₀ = 10, κ = 0.75) toward a mean
   acceptance probability over the chains of ``target_accept``; the scheme restarts at every temperature so the step
   keeps up with the sharpening potential; after the warm-up the averaged step is fixed, jittered by ±10% per chain
   and iteration while sampling.

Failures are detected, never hidden: an iteration whose energy error exceeds ``DIVERGENCE`` or is not finite is a
*divergence* (rejected and counted per chain and draw); a chain whose state becomes non-finite raises.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from sgdbayes.seed import make_generator

__all__ = ["DIVERGENCE", "HMCTrace", "hmc"]

#: Energy error beyond which a trajectory counts as divergent (Stan's default threshold).
DIVERGENCE = 1000.0


@dataclass
class HMCTrace:
    """What :func:`hmc` kept. ``[C, T]`` arrays over chains and kept draws: ``accept_prob``, ``divergent`` (bool),
    ``loglik`` (at temperature ``tau``); ``step_size``: the step after the warm-up; ``warmup_tau [W]``:
    the temperature of each warm-up iteration; ``records``: whatever ``record(u)`` returned at each kept draw,
    stacked as ``{name: array [C, T, ...]}``; ``n_leapfrog``: the maximum number of leapfrog steps."""

    accept_prob: np.ndarray
    divergent: np.ndarray
    loglik: np.ndarray
    step_size: float
    warmup_tau: np.ndarray
    warmup_divergent: np.ndarray
    records: dict
    tau: float
    n_leapfrog: int
    seconds: float

    @property
    def n_chains(self) -> int:
        return int(self.accept_prob.shape[0])

    @property
    def n_draws(self) -> int:
        return int(self.accept_prob.shape[1])


class _DualAveraging:
    """Dual averaging of log ε (Hoffman & Gelman 2014, Algorithm 5)."""

    def __init__(self, eps: float, target: float, gamma: float = 0.05, t0: float = 10.0, kappa: float = 0.75):
        self.target, self.gamma, self.t0, self.kappa = target, gamma, t0, kappa
        self.restart(eps)

    def restart(self, eps: float) -> None:
        self.mu = math.log(10.0 * eps)
        self.hbar = 0.0
        self.log_eps_bar = math.log(eps)
        self.t = 0

    def update(self, accept_prob: float) -> float:
        self.t += 1
        t = self.t
        w = 1.0 / (t + self.t0)
        self.hbar = (1 - w) * self.hbar + w * (self.target - accept_prob)
        log_eps = self.mu - math.sqrt(t) / self.gamma * self.hbar
        eta = t ** -self.kappa
        self.log_eps_bar = eta * log_eps + (1 - eta) * self.log_eps_bar
        return math.exp(log_eps)

    @property
    def final(self) -> float:
        return math.exp(self.log_eps_bar)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def hmc(model, u0: Tensor, *, tau: float, n_warmup: int, n_draws: int, n_leapfrog: int = 16,
        tau_start: float | None = None, anneal_frac: float = 0.6, anneal_stages: int = 12,
        target_accept: float = 0.8, step_size: float = 0.1, thin: int = 1,
        record: Callable[[Tensor], dict] | None = None, seed: int = 0, progress: bool = False) -> HMCTrace:
    """Run ``u0.shape[0]`` HMC chains from ``u0 [C, P]`` on ``model`` (see the module docstring).

    ``tau``: the temperature sampled; ``tau_start`` (default ``tau``: no annealing) the first warm-up temperature,
    lowered geometrically in ``anneal_stages`` equal stages over ``anneal_frac·n_warmup`` iterations; the rest of the
    warm-up adapts the step at ``tau``. ``n_draws`` iterations are kept (every ``thin``-th recorded);
    ``record(u) → {name: tensor [C, ...]}`` is called at each recorded draw. Returns an :class:`HMCTrace`.
    """
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
    tau_start = float(tau if tau_start is None else tau_start)
    if not (tau_start >= tau and math.isfinite(tau_start)):
        raise ValueError(f"tau_start must be finite and >= tau = {tau}, got {tau_start!r}")
    n_warmup = _check_int("n_warmup", n_warmup, 1)
    n_draws = _check_int("n_draws", n_draws, 1)
    n_leapfrog = _check_int("n_leapfrog", n_leapfrog, 1)
    anneal_stages = _check_int("anneal_stages", anneal_stages, 1)
    thin = _check_int("thin", thin, 1)
    if not 0 <= anneal_frac < 1:
        raise ValueError(f"anneal_frac must lie in [0, 1), got {anneal_frac!r}")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must lie in (0, 1), got {target_accept!r}")
    if u0.ndim != 2:
        raise ValueError(f"u0 must be [chains, parameters], got shape {tuple(u0.shape)}")
    t_start = time.perf_counter()
    gen = make_generator(seed, u0.device)
    C = u0.shape[0]
    u = u0.clone()

    n_anneal = int(round(anneal_frac * n_warmup)) if tau_start > tau else 0
    stage_len = max(1, math.ceil(n_anneal / anneal_stages)) if n_anneal else 1
    taus = np.full(n_warmup, float(tau))
    for i in range(n_anneal):
        stage = min(i // stage_len, anneal_stages - 1)
        taus[i] = tau_start * (tau / tau_start) ** ((stage + 1) / anneal_stages)

    eps = float(step_size)
    adapt = _DualAveraging(eps, target_accept)
    cur_tau = taus[0]
    U, g, ll = model.potential_and_grad(u, cur_tau)
    n_rec = n_draws // thin
    acc_out = np.zeros((C, n_draws))
    div_out = np.zeros((C, n_draws), dtype=bool)
    ll_out = np.zeros((C, n_rec))
    warm_div = np.zeros(C, dtype=np.int64)
    recs: dict[str, list] = {}

    from tqdm.auto import tqdm

    for it in tqdm(range(n_warmup + n_draws), desc="HMC", disable=not progress, leave=False):
        warm = it < n_warmup
        if warm and taus[it] != cur_tau:
            cur_tau = taus[it]
            U, g, ll = model.potential_and_grad(u, cur_tau)
            adapt.restart(eps)
        if it == n_warmup:
            eps = adapt.final
            if cur_tau != tau:
                cur_tau = tau
                U, g, ll = model.potential_and_grad(u, cur_tau)
        L = int(torch.randint(math.ceil(n_leapfrog / 2), n_leapfrog + 1, (1,), generator=gen, device=u.device))
        if warm:
            s = torch.full((C, 1), eps, device=u.device, dtype=u.dtype)
        else:
            s = eps * (0.9 + 0.2 * torch.rand((C, 1), generator=gen, device=u.device, dtype=u.dtype))
        p = torch.randn(u.shape, generator=gen, device=u.device, dtype=u.dtype)
        H0 = U + 0.5 * (p * p).sum(1)
        un = u.clone()
        pn = p - 0.5 * s * g
        for k in range(L):
            un.add_(s * pn)
            Un, gn, lln = model.potential_and_grad(un, cur_tau)
            pn.sub_(s * gn, alpha=1.0 if k < L - 1 else 0.5)
        H1 = Un + 0.5 * (pn * pn).sum(1)
        dH = H1 - H0
        finite = torch.isfinite(dH) & torch.isfinite(un).all(1)
        divergent = ~finite | (dH > DIVERGENCE)
        log_a = torch.where(finite, torch.clamp(-dH, max=0.0), torch.full_like(dH, -math.inf))
        a_prob = torch.exp(log_a)
        accept = torch.log(torch.rand(C, generator=gen, device=u.device, dtype=u.dtype)) < log_a
        accept &= ~divergent
        sel = accept.unsqueeze(1)
        u = torch.where(sel, un, u)
        g = torch.where(sel, gn, g)
        U = torch.where(accept, Un, U)
        ll = torch.where(accept, lln, ll)
        if not torch.isfinite(u).all():
            raise FloatingPointError("an HMC chain reached a non-finite state")
        if warm:
            warm_div += divergent.cpu().numpy()
            eps = adapt.update(float(a_prob.mean()))
            continue
        j = it - n_warmup
        acc_out[:, j] = a_prob.cpu().numpy()
        div_out[:, j] = divergent.cpu().numpy()
        if j % thin == thin - 1:
            r = j // thin
            ll_out[:, r] = ll.double().cpu().numpy()
            if record is not None:
                for name, value in record(u).items():
                    recs.setdefault(name, []).append(value.cpu().numpy())
    records = {k: np.stack(v, axis=1) for k, v in recs.items()}
    return HMCTrace(accept_prob=acc_out, divergent=div_out, loglik=ll_out, step_size=float(eps),
                    warmup_tau=taus, warmup_divergent=warm_div, records=records, tau=float(tau),
                    n_leapfrog=n_leapfrog, seconds=time.perf_counter() - t_start)
