"""Thread policy for the many small tensor operations of the samplers (one module that every ``ou`` module may
import, so that none of them imports another just for this)."""

from __future__ import annotations

import contextlib

import torch

from sgdbayes.device import torch_threads

__all__ = ["small_op_threads"]

#: Elements touched per step below which a loop of tensor ops runs single-threaded on the CPU.
SMALL_WORK = 4e6


@contextlib.contextmanager
def small_op_threads(work: float, device: str | torch.device = "cpu", threshold: float = SMALL_WORK):
    """Run a loop of small tensor ops single-threaded when ``work`` (elements touched per step) is below
    ``threshold`` and the device is the CPU: BLAS calls on tiny matrices gain nothing from threads, and on a busy
    machine their thread hand-offs cost 10–50× the arithmetic. Restores the previous thread count."""
    if torch.device(device).type != "cpu" or work >= threshold or torch.get_num_threads() == 1:
        yield
        return
    with torch_threads(1):
        yield
