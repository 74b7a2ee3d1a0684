"""The GEMM roof: the best square-matmul GFLOP/s of this device, measured in the same run as the benchmarks."""

from __future__ import annotations

import os
import time

import torch


def load_rows() -> list[dict]:
    """The 1-minute load average as a row, where the OS reports one: the machine is often shared, so the ratios are
    side by side but the seconds are not."""
    if not hasattr(os, "getloadavg"):
        return []
    return [{"quantity": "load average (1 min) at the start", "value": os.getloadavg()[0], "unit": "",
             "target": None, "ok": None}]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, *, repeats: int = 3, device: torch.device | None = None) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` (seconds), after one warm-up call."""
    fn()
    if device is not None:
        _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if device is not None:
            _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def cpu_time_roof(dtype: torch.dtype = torch.float32, n: int = 1024, repeats: int = 5) -> float:
    """The one-thread GEMM roof in GFLOP per CPU-second (``time.process_time``): on a machine shared with other work,
    CPU time is what a process actually got, so ratios of CPU-time rates are a second, load-robust measure beside the
    wall-clock ones."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, dtype=dtype, generator=gen)
        b = torch.randn(n, n, dtype=dtype, generator=gen)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            t0 = time.process_time()
            a @ b
            best = min(best, time.process_time() - t0)
        return 2 * n**3 / best / 1e9
    finally:
        torch.set_num_threads(saved)


def gemm_roof(dtype: torch.dtype, device: torch.device, *, quick: bool = False) -> float:
    """max over n of 2n³ / t for an n×n GEMM (GFLOP/s)."""
    sizes = (1024, 2048) if quick else (1024, 2048, 4096)
    if device.type == "cuda":
        sizes = (4096, 8192)
    best = 0.0
    gen = torch.Generator(device=device).manual_seed(0)
    for n in sizes:
        a = torch.randn(n, n, dtype=dtype, device=device, generator=gen)
        b = torch.randn(n, n, dtype=dtype, device=device, generator=gen)
        t = time_call(lambda: a @ b, repeats=5, device=device)
        best = max(best, 2 * n**3 / t / 1e9)
    return best
