"""Reproducible randomness: every stochastic function takes a ``seed`` or a ``torch.Generator``.

``make_generator`` turns either into a generator on a given device; ``spawn_seeds`` derives independent child seeds
(for shards, chains, networks) from one root seed with numpy's ``SeedSequence``, so shard k of a job gets the same
stream whether it runs alone, in a loop or on a Dask worker.
"""

from __future__ import annotations

import random

import numpy as np
import torch

SeedLike = int | torch.Generator | None


def make_generator(seed: SeedLike = None, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device``: ``seed`` may be an int (≥ 0), an existing generator (returned as is) or
    ``None`` (a fresh seed from the OS)."""
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, a torch.Generator or None, got {type(seed).__name__}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        gen.manual_seed(int(seed))
    return gen


def spawn_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 63-bit child seeds derived from ``seed`` (numpy ``SeedSequence.spawn``)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    children = np.random.SeedSequence(int(seed)).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for c in children]


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch global generators (for notebooks; library code takes explicit seeds)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
