"""NNGP kernel speed: ``nngp_fcn`` (tiled, upper triangle, in place, whole tiles per CPU thread) beside a naive
plain-torch version (full matrix, out of place) and one float64 GEMM ``x xᵀ`` of the same size, at n × 784, depth 2,
ReLU; at n ≤ 2000 also ``workers=1`` (one tile at a time on torch's intra-op threads).

Target (issue 3): ≥ 1.5×10⁷ kernel entries/s (n² entries of the symmetric result) at depth 2 on 2 CPU cores.
Baselines measured on an idle 2-core machine (reference/engineering.md): neural-tangents 0.27 / 0.50 / 1.80 s and a
naive torch version 0.10 / 0.33 / 3.52 s at n = 1000 / 2000 / 5000.

The machine is often shared: the rows also give the 1-minute load average and the process CPU time of one call
(both cores together), which moves much less with the load than the wall time does; a wall time well above
CPU time / 2 means the cores were busy with something else.
"""

from __future__ import annotations

import math
import time

import torch
from roof import load_rows, time_call

from sgdbayes.kernels import nngp_fcn

DEPTH, SIGMA_W, SIGMA_B, D = 2, 1.0, 0.0357, 784
TARGET = 1.5e7


def naive_nngp_relu(x: torch.Tensor, depth: int, sw: float, sb: float) -> torch.Tensor:
    """The same kernel in plain torch: full n×n matrices, out-of-place ops, no tiling or symmetry."""
    k = sb**2 + sw**2 * (x @ x.T) / x.shape[1]
    diag = torch.diagonal(k).clone()
    for _ in range(depth):
        s = torch.sqrt(torch.clamp(diag[:, None] * diag[None, :] - k**2, min=0.0))
        theta = torch.atan2(s, k)
        k = sb**2 + sw**2 / (2 * math.pi) * (s + (math.pi - theta) * k)
        diag = sb**2 + sw**2 * diag / 2
    return k


def run(ctx) -> list[dict]:
    sizes = (1000, 2000) if ctx.quick else (1000, 2000, 5000)
    gen = torch.Generator(device=ctx.device).manual_seed(0)
    rows = []
    rows += load_rows()
    for n in sizes:
        x = torch.rand(n, D, dtype=torch.float64, device=ctx.device, generator=gen)
        big = n >= 5000
        ours = nngp_fcn(x, depth=DEPTH, sigma_w=SIGMA_W, sigma_b=SIGMA_B)
        naive = naive_nngp_relu(x, DEPTH, SIGMA_W, SIGMA_B)
        err = ((ours - naive).abs().max() / naive.abs().max()).item()
        del ours, naive
        t = time_call(lambda: nngp_fcn(x, depth=DEPTH, sigma_w=SIGMA_W, sigma_b=SIGMA_B),
                      repeats=2 if big else 3, device=ctx.device)
        t_naive = time_call(lambda: naive_nngp_relu(x, DEPTH, SIGMA_W, SIGMA_B), repeats=1 if big else 3,
                            device=ctx.device)
        t_gemm = time_call(lambda: x @ x.T, repeats=3, device=ctx.device)
        c0 = time.process_time()
        nngp_fcn(x, depth=DEPTH, sigma_w=SIGMA_W, sigma_b=SIGMA_B)
        cpu = time.process_time() - c0
        rate = n * n / t
        rows += [
            {"quantity": f"nngp_fcn time, n={n}x{D}, depth {DEPTH}", "value": t, "unit": "s", "target": None,
             "ok": None},
            {"quantity": f"nngp_fcn process CPU time of one call, n={n}", "value": cpu, "unit": "s", "target": None,
             "ok": None},
            {"quantity": f"nngp_fcn kernel entries/s, n={n}", "value": rate, "unit": "entries/s",
             "target": f">= {TARGET:.3g}", "ok": bool(rate >= TARGET)},
            {"quantity": f"naive torch time, n={n}", "value": t_naive, "unit": "s", "target": None, "ok": None},
            {"quantity": f"speed-up over naive torch, n={n}", "value": t_naive / t, "unit": "x", "target": None,
             "ok": None},
            {"quantity": f"time / one float64 GEMM x·xT, n={n}", "value": t / t_gemm, "unit": "x", "target": None,
             "ok": None},
            {"quantity": f"max |nngp_fcn - naive| / max K, n={n}", "value": err, "unit": "",
             "target": "<= 1e-12", "ok": bool(err <= 1e-12)},
        ]
        if not big:   # the design choice: whole tiles per thread vs torch's intra-op threads on every op
            t_serial = time_call(lambda: nngp_fcn(x, depth=DEPTH, sigma_w=SIGMA_W, sigma_b=SIGMA_B, workers=1),
                                 repeats=3, device=ctx.device)
            rows.append({"quantity": f"tile-parallel speed-up over workers=1 (intra-op threads), n={n}",
                         "value": t_serial / t, "unit": "x", "target": None, "ok": None})
    return rows
