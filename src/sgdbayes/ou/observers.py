"""What the driver (:func:`sgdbayes.ou.driver.run`) records while chains run: observers.

The driver advances all chains in chunks of steps and hands every observer the states of a chunk,
``observe(t0, thetas, state, diverged)`` with ``thetas`` ``[n, M, P]`` the parameters after steps ``t0 .. t0 + n − 1``
(zero-based: step ``t`` produces ``θ_{t+1}``), ``state`` the sampler state after the chunk and ``diverged`` ``[M]``
the chains found diverged so far. An observer that needs a chunk to end at a particular step (a window boundary, a
snapshot) says so in :meth:`Observer.boundaries`. Diverged chains are never counted: every observer leaves them out
(streaming statistics from the moment they are found, stored samples set to NaN at the end).

- :class:`Samples`: the states after ``start`` every ``thin`` steps ``[K, M, P]``; pooled mean, covariance, per-group
  covariance.
- :class:`Moments`: running mean and covariance over kept states and chains, per group of chains (one group per
  configuration of a sweep), without storing the states.
- :class:`WindowMeans`: each chain's mean over consecutive windows of ``T`` steps (IASG's samples).
- :class:`RunningVariance`: each chain's running marginal variance, recorded every ``every`` steps (SGLD traces).
- :class:`Snapshots`: every chain's state after given numbers of steps.
- :class:`Trace`: a function of the state after every step (e.g. VEM's λ).
- :class:`Divergence`: non-finite or exploding chains, checked every ``check_every`` steps; raise or mark them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = [
    "Divergence",
    "DivergenceError",
    "Moments",
    "Observer",
    "RunningVariance",
    "Samples",
    "Snapshots",
    "Trace",
    "WindowMeans",
]


class DivergenceError(FloatingPointError):
    """Chains left every bounded region (NaN/inf or exploding iterates): the step size is too large."""


class Observer:
    """Base class: override :meth:`start`, :meth:`observe` and, if needed, :meth:`boundaries` and :meth:`finish`."""

    def boundaries(self, n_steps: int) -> list[int]:
        """Step counts (1..n_steps) at which a chunk must end so that :meth:`observe` sees them as chunk ends."""
        return []

    def start(self, n_chains: int, P: int, n_steps: int, dtype, device) -> None:
        self.n_chains, self.P, self.n_steps = n_chains, P, n_steps

    def observe(self, t0: int, thetas: torch.Tensor, state, diverged: torch.Tensor) -> None:  # pragma: no cover
        raise NotImplementedError

    def finish(self, diverged: torch.Tensor) -> None:
        pass


def _check_start_thin(start, thin):
    if isinstance(start, bool) or int(start) != start or start < 0:
        raise ValueError(f"start (burn-in steps) must be an integer >= 0, got {start!r}")
    if isinstance(thin, bool) or int(thin) != thin or thin < 1:
        raise ValueError(f"thin must be an integer >= 1, got {thin!r}")
    return int(start), int(thin)


def _kept(t0: int, n: int, start: int, thin: int) -> np.ndarray:
    """Chunk offsets ``j`` whose step ``t = t0 + j`` is kept: ``t >= start`` and ``(t − start + 1) % thin == 0``."""
    t = np.arange(t0, t0 + n)
    return np.flatnonzero((t >= start) & ((t - start + 1) % thin == 0))


class Samples(Observer):
    """Keep the states after ``start`` (burn-in) steps, every ``thin``-th: ``samples`` ``[K, M, P]`` (model dtype;
    the chains found diverged are NaN)."""

    def __init__(self, start: int = 0, thin: int = 1):
        self.start_step, self.thin = _check_start_thin(start, thin)

    def start(self, n_chains, P, n_steps, dtype, device):
        super().start(n_chains, P, n_steps, dtype, device)
        if self.start_step >= n_steps:
            raise ValueError(f"burn-in start={self.start_step} leaves nothing of a run of {n_steps} steps")
        self.samples = torch.empty(((n_steps - self.start_step) // self.thin, n_chains, P), dtype=dtype,
                                   device=device)
        self.k = 0

    def observe(self, t0, thetas, state, diverged):
        for j in _kept(t0, thetas.shape[0], self.start_step, self.thin):
            if self.k < self.samples.shape[0]:
                self.samples[self.k] = thetas[j]
                self.k += 1

    def finish(self, diverged):
        self.diverged = diverged.clone()
        if diverged.any():
            self.samples[:, diverged] = float("nan")

    def _ok(self):
        if bool(self.diverged.all()):
            raise DivergenceError(f"all {self.diverged.numel()} chains diverged")
        return ~self.diverged

    def pooled(self) -> torch.Tensor:
        """Kept states of the chains that did not diverge, pooled ``[K·M_ok, P]`` (float64)."""
        return self.samples[:, self._ok()].double().reshape(-1, self.P)

    def mean(self) -> np.ndarray:
        """Mean over kept states and non-diverged chains ``[P]`` (float64)."""
        return self.samples[:, self._ok()].double().mean((0, 1)).cpu().numpy()

    def cov(self, *, per_chain_mean: bool = False) -> np.ndarray:
        """Covariance ``[P, P]`` (float64) pooled over kept states and non-diverged chains; ``per_chain_mean=True``
        centres each chain on its own time average."""
        X = self.samples[:, self._ok()].double()
        X = X - (X.mean(0, keepdim=True) if per_chain_mean else X.mean((0, 1), keepdim=True))
        X = X.reshape(-1, X.shape[-1])
        return (X.T @ X / (X.shape[0] - 1)).cpu().numpy()

    def group_cov(self, groups: int) -> np.ndarray:
        """Covariance ``[G, P, P]`` of the chains split into ``groups`` equal consecutive blocks (one per
        configuration); a block with a diverged chain is NaN (its count is in :meth:`Divergence.per_group`)."""
        return self._group_stat(groups, cov=True)

    def group_mean(self, groups: int) -> np.ndarray:
        """Mean ``[G, P]`` per block of chains (NaN for a block with a diverged chain)."""
        return self._group_stat(groups, cov=False)

    def _group_stat(self, groups, cov):
        K, M, P = self.samples.shape
        if groups < 1 or M % groups:
            raise ValueError(f"{M} chains cannot be split into {groups} equal groups")
        X = self.samples.double().reshape(K, groups, M // groups, P).transpose(0, 1).reshape(groups, -1, P)
        mean = X.mean(1, keepdim=True)
        if cov:
            Xc = X - mean
            out = (Xc.transpose(1, 2) @ Xc / (Xc.shape[1] - 1)).cpu().numpy()
        else:
            out = mean[:, 0].cpu().numpy()
        bad = self.diverged.reshape(groups, -1).any(1).cpu().numpy()
        out[bad] = np.nan
        return out


class Moments(Observer):
    """Running mean and covariance (float64) over the states after ``start`` steps, every ``thin``-th, pooled over
    the non-diverged chains of each of ``groups`` equal consecutive blocks of chains."""

    def __init__(self, start: int = 0, thin: int = 1, groups: int = 1):
        self.start_step, self.thin = _check_start_thin(start, thin)
        if isinstance(groups, bool) or int(groups) != groups or groups < 1:
            raise ValueError(f"groups must be an integer >= 1, got {groups!r}")
        self.groups = int(groups)

    def start(self, n_chains, P, n_steps, dtype, device):
        super().start(n_chains, P, n_steps, dtype, device)
        if n_chains % self.groups:
            raise ValueError(f"{n_chains} chains cannot be split into {self.groups} equal groups")
        G = self.groups
        self.s1 = torch.zeros(G, P, dtype=torch.float64, device=device)
        self.s2 = torch.zeros(G, P, P, dtype=torch.float64, device=device)
        self.count = np.zeros(G, dtype=np.int64)
        self.kept = 0

    def observe(self, t0, thetas, state, diverged):
        for j in _kept(t0, thetas.shape[0], self.start_step, self.thin):
            if self.kept >= (self.n_steps - self.start_step) // self.thin:
                break
            self.kept += 1
            if self.groups == 1:
                ok = thetas[j][~diverged].double()
                self.s1[0] += ok.sum(0)
                self.s2[0] += ok.T @ ok
                self.count[0] += ok.shape[0]
                continue
            X = thetas[j].double().reshape(self.groups, -1, self.P)
            w = (~diverged).reshape(self.groups, -1, 1).double()
            Xw = X * w
            self.s1 += Xw.sum(1)
            self.s2 += Xw.transpose(1, 2) @ X
            self.count += w.sum((1, 2)).long().cpu().numpy()

    def mean(self, group: int = 0) -> np.ndarray:
        if self.count[group] < 1:
            raise DivergenceError(f"group {group}: no state of a non-diverged chain was kept")
        return (self.s1[group] / int(self.count[group])).cpu().numpy()

    def cov(self, group: int = 0) -> np.ndarray:
        n = int(self.count[group])
        if n < 2:
            raise DivergenceError(f"group {group}: fewer than 2 states of non-diverged chains were kept")
        m = self.s1[group] / n
        return ((self.s2[group] / n - torch.outer(m, m)) * n / (n - 1)).cpu().numpy()


class WindowMeans(Observer):
    """Each chain's mean over consecutive, non-overlapping windows of ``T`` steps, the first starting after ``start``
    steps: ``means`` ``[M, n_windows, P]`` (as many whole windows as the run holds unless ``n_windows`` is given).
    This is IASG's output: one sample per window."""

    def __init__(self, T: int, start: int = 0, n_windows: int | None = None):
        self.start_step, _ = _check_start_thin(start, 1)
        if isinstance(T, bool) or int(T) != T or T < 1:
            raise ValueError(f"averaging window T must be an integer >= 1, got {T!r}")
        self.T = int(T)
        self.n_windows = n_windows

    def boundaries(self, n_steps):
        n = self._count(n_steps)
        return [self.start_step] + [self.start_step + (m + 1) * self.T for m in range(n)]

    def _count(self, n_steps):
        n = (n_steps - self.start_step) // self.T if self.n_windows is None else int(self.n_windows)
        if n < 1 or self.start_step + n * self.T > n_steps:
            raise ValueError(f"a run of {n_steps} steps holds no window of T={self.T} after start={self.start_step}"
                             if n < 1 else f"{n} windows of T={self.T} after start={self.start_step} need "
                             f"{self.start_step + n * self.T} steps; the run has {n_steps}")
        return n

    def start(self, n_chains, P, n_steps, dtype, device):
        super().start(n_chains, P, n_steps, dtype, device)
        self.sums = torch.zeros(n_chains, self._count(n_steps), P, dtype=dtype, device=device)

    def observe(self, t0, thetas, state, diverged):
        if t0 < self.start_step:
            return
        m = (t0 - self.start_step) // self.T
        if m < self.sums.shape[1]:
            self.sums[:, m] += thetas.sum(0)

    def finish(self, diverged):
        self.means = self.sums / self.T
        self.diverged = diverged.clone()
        if diverged.any():
            self.means[diverged] = float("nan")


class RunningVariance(Observer):
    """Each chain's running mean and unbiased marginal variance of its states after ``start`` steps (Chan, Golub &
    LeVeque's pairwise merge, chunk by chunk), recorded every ``every`` steps after ``start``: ``var``
    ``[R, M, P]`` (float64 numpy) at ``steps`` ``[R]`` (steps run when recorded)."""

    def __init__(self, every: int, start: int = 0):
        self.start_step, self.every = _check_start_thin(start, every)

    def boundaries(self, n_steps):
        # every step count congruent to start modulo every (before start too, so chunks line up with records)
        return list(range(self.start_step % self.every, n_steps + 1, self.every)) + [n_steps]

    def start(self, n_chains, P, n_steps, dtype, device):
        super().start(n_chains, P, n_steps, dtype, device)
        self.count = 0
        self.mean_ = torch.zeros(n_chains, P, dtype=dtype, device=device)
        self.m2 = torch.zeros_like(self.mean_)
        self._w2 = torch.zeros(n_chains, P, P, dtype=dtype, device=device)  # Σ (θ − mean)(θ − mean)ᵀ per chain
        self.records, self.steps = [], []

    def observe(self, t0, thetas, state, diverged):
        if t0 < self.start_step:
            return
        n = thetas.shape[0]
        cmean = thetas.mean(0)
        cm2 = ((thetas - cmean) ** 2).sum(0)
        delta = cmean - self.mean_
        tot = self.count + n
        dc = thetas - cmean
        self._w2 = self._w2 + torch.einsum("nmi,nmj->mij", dc, dc) + (self.count * n / tot) * (
            delta[:, :, None] * delta[:, None, :])
        self.mean_ = self.mean_ + delta * (n / tot)
        self.m2 = self.m2 + cm2 + delta**2 * (self.count * n / tot)
        self.count = tot
        t1 = t0 + n
        if (t1 - self.start_step) % self.every == 0:
            v = (self.m2 / max(self.count - 1, 1)).cpu().numpy()
            if diverged.any():
                v = v.copy()
                v[diverged.cpu().numpy()] = np.nan
            self.records.append(v)
            self.steps.append(t1)

    def finish(self, diverged):
        self.var = np.stack(self.records) if self.records else np.empty((0, self.n_chains, self.P))
        self.steps = np.asarray(self.steps)
        self.diverged = diverged.clone()

    def pooled_cov(self) -> np.ndarray:
        """The covariance ``[P, P]`` of all states after ``start`` of the non-diverged chains, each chain centred on
        its own mean (the within-chain covariances averaged, weighted by their counts)."""
        ok = ~self.diverged
        if self.count < 2 or not bool(ok.any()):
            raise DivergenceError("fewer than 2 states, or no chain that did not diverge")
        return (self._w2[ok].sum(0) / (int(ok.sum()) * (self.count - 1))).double().cpu().numpy()


class Snapshots(Observer):
    """Every chain's state after each of ``steps`` (step counts, 1..n_steps): ``states`` ``[len(steps), M, P]``."""

    def __init__(self, steps):
        steps = [int(s) for s in np.atleast_1d(steps)]
        if not steps or min(steps) < 1:
            raise ValueError(f"snapshot steps must be step counts >= 1, got {steps}")
        self.at = sorted(set(steps))

    def boundaries(self, n_steps):
        if max(self.at) > n_steps:
            raise ValueError(f"snapshot at step {max(self.at)} is past the end of a run of {n_steps} steps")
        return list(self.at)

    def start(self, n_chains, P, n_steps, dtype, device):
        super().start(n_chains, P, n_steps, dtype, device)
        self._found = {}

    def observe(self, t0, thetas, state, diverged):
        for j in range(thetas.shape[0]):
            if t0 + j + 1 in self.at:
                self._found[t0 + j + 1] = thetas[j].clone()

    def finish(self, diverged):
        self.states = torch.stack([self._found[s] for s in self.at])
        self.diverged = diverged.clone()

    def __getitem__(self, step: int) -> torch.Tensor:
        return self.states[self.at.index(int(step))]


class Trace(Observer):
    """``fn(state)`` after every chunk (with one-step chunks: after every step): ``values`` (a list)."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def start(self, n_chains, P, n_steps, dtype, device):
        super().start(n_chains, P, n_steps, dtype, device)
        self.values = []

    def observe(self, t0, thetas, state, diverged):
        self.values.append(self.fn(state))


class Divergence(Observer):
    """Every ``check_every`` steps (and at the end) a chain whose state is non-finite or whose ``|θ − θ₀|_∞`` exceeds
    ``blowup·(1 + |θ₀|_∞)`` has diverged. ``on_divergence="raise"``: :class:`DivergenceError` naming the step and the
    step sizes; ``"mark"``: the chain is reset to its start, frozen, and left out of every statistic; its step is in
    ``step`` (−1 for chains that did not diverge) and :meth:`per_group` counts them per configuration."""

    def __init__(self, check_every: int = 25, blowup: float = 1e6, on_divergence: str = "raise"):
        if on_divergence not in ("raise", "mark"):
            raise ValueError(f"on_divergence must be 'raise' or 'mark', got {on_divergence!r}")
        if isinstance(check_every, bool) or int(check_every) != check_every or check_every < 1:
            raise ValueError(f"check_every must be an integer >= 1, got {check_every!r}")
        if not blowup > 0:
            raise ValueError(f"blowup must be > 0, got {blowup}")
        self.check_every, self.blowup, self.on_divergence = int(check_every), float(blowup), on_divergence

    def start(self, n_chains, P, n_steps, dtype, device):
        super().start(n_chains, P, n_steps, dtype, device)
        self.diverged = torch.zeros(n_chains, dtype=torch.bool, device=device)
        self.step = torch.full((n_chains,), -1, dtype=torch.long, device=device)

    def due(self, t0: int, t1: int) -> bool:
        """Whether a check falls in the chunk of steps ``t0 .. t1 − 1``."""
        return t1 // self.check_every > t0 // self.check_every or t1 == self.n_steps

    def check(self, t1: int, theta, theta0, ref, describe: Callable[[torch.Tensor], str]) -> torch.Tensor:
        """Flag new diverged chains after ``t1`` steps; raises or returns the new ones ``[M]`` bool."""
        bad = ~torch.isfinite(theta).all(1) | ((theta - theta0).abs().amax(1) > self.blowup * (1 + ref))
        new = bad & ~self.diverged
        if new.any():
            if self.on_divergence == "raise":
                raise DivergenceError(f"{int(new.sum())} of {theta.shape[0]} chains diverged by step {t1} "
                                      f"({describe(new)}); lower the step size below the stability limit")
            self.diverged |= new
            self.step[new] = t1
        return new

    def observe(self, t0, thetas, state, diverged):
        pass

    @property
    def n_diverged(self) -> int:
        return int(self.diverged.sum())

    def per_group(self, groups: int) -> np.ndarray:
        """Number of diverged chains in each of ``groups`` equal consecutive blocks of chains ``[G]``."""
        M = self.diverged.numel()
        if groups < 1 or M % groups:
            raise ValueError(f"{M} chains cannot be split into {groups} equal groups")
        return self.diverged.reshape(groups, -1).sum(1).cpu().numpy()
