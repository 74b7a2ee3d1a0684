"""Euler–Maruyama simulation of ``dx = drift(x) dt + σ dW`` for many particles at once (any device).

``x0 [M, d]`` holds ``M`` independent particles; ``sigma`` is a scalar (isotropic noise) or a ``[d, d]`` matrix with
``σσᵀ = 2β⁻¹D``. Each step: ``x ← x + drift(x)·dt + √dt · ξ σᵀ``, ``ξ ~ N(0, I)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sgdbayes.seed import SeedLike, make_generator


@dataclass
class SDEPath:
    """``final [M, d]``; ``samples [K, M, d]``: the state every ``record_every`` steps after ``burn_in`` steps (or
    ``None``); ``dt`` of the recorded grid is ``record_every · dt``."""

    final: torch.Tensor
    samples: torch.Tensor | None
    dt: float
    record_every: int


def euler_maruyama(drift: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, *, dt: float, n_steps: int,
                   sigma: float | torch.Tensor = 2 ** 0.5, seed: SeedLike = 0, burn_in: int = 0,
                   record_every: int = 0) -> SDEPath:
    """Simulate ``M`` particles for ``n_steps`` steps of size ``dt``.

    Raises ``ValueError`` for bad sizes and ``FloatingPointError`` when a particle leaves the finite numbers (the
    step is too large for the drift's stiffness).
    """
    if x0.dim() != 2:
        raise ValueError(f"x0 must be [M particles, d], got shape {tuple(x0.shape)}")
    if not dt > 0 or n_steps < 1 or burn_in < 0 or record_every < 0:
        raise ValueError(f"need dt > 0, n_steps >= 1, burn_in >= 0, record_every >= 0; got {dt}, {n_steps}, "
                         f"{burn_in}, {record_every}")
    m, d = x0.shape
    sig = torch.as_tensor(sigma, dtype=x0.dtype, device=x0.device)
    if sig.dim() not in (0, 2) or (sig.dim() == 2 and sig.shape != (d, d)):
        raise ValueError(f"sigma must be a scalar or a [{d}, {d}] matrix, got shape {tuple(sig.shape)}")
    gen = make_generator(seed, device=x0.device)
    sq = dt ** 0.5
    x = x0.clone()
    rec = []
    for k in range(1, n_steps + 1):
        xi = torch.randn(m, d, generator=gen, device=x0.device, dtype=x0.dtype)
        noise = xi * sig if sig.dim() == 0 else xi @ sig.T
        x = x + drift(x) * dt + sq * noise
        if k % 200 == 0 and not torch.isfinite(x).all():
            raise FloatingPointError(f"particles diverged (NaN/inf) by step {k}; dt={dt} is too large")
        if record_every and k > burn_in and (k - burn_in) % record_every == 0:
            rec.append(x)
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"particles diverged (NaN/inf); dt={dt} is too large")
    return SDEPath(final=x, samples=torch.stack(rec) if rec else None, dt=dt * max(record_every, 1),
                   record_every=record_every)


def deterministic_path(drift: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, *, dt: float,
                       n_steps: int) -> torch.Tensor:
    """Noise-free path ``ẋ = drift(x)`` by classical Runge–Kutta 4: ``[n_steps + 1, M, d]``."""
    xs = [x0]
    x = x0
    for _ in range(n_steps):
        k1 = drift(x)
        k2 = drift(x + 0.5 * dt * k1)
        k3 = drift(x + 0.5 * dt * k2)
        k4 = drift(x + dt * k3)
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        xs.append(x)
    return torch.stack(xs)
