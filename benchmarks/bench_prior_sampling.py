"""Direct prior sampling (sgdbayes.prior_sampling): networks/s for 7→40→40→1 ReLU on the Boolean system, achieved
matmul GFLOP/s against the float32 GEMM roof, and the effect of the chunk size.

Two settings: S = 32 inputs of the '0011' target (the paper's; only networks fitting S are evaluated on E, so each
draw costs a forward pass on 32 inputs), and S empty (every network evaluated on all 128 inputs). FLOPs are the
matmul multiply-adds actually performed (2 per multiply-add), excluding random-number generation, which is part of
the measured time.
"""

from __future__ import annotations

from sgdbayes.data.boolean import boolean_inputs, boolean_split
from sgdbayes.prior_sampling import forward_flops, n_parameters, sample_prior

WIDTHS = (40, 40)


def _run(ctx, split, n, chunk):
    x_train = split.x_train if split is not None else None
    y_train = split.y_train if split is not None else None
    x_test = split.x_test if split is not None else boolean_inputs(7)
    sample_prior(x_train, y_train, x_test, n_samples=min(n, chunk), chunk=chunk, device=ctx.device, progress=False)
    res = sample_prior(x_train, y_train, x_test, n_samples=n, chunk=chunk, seed=1, device=ctx.device, progress=False)
    n_s = 0 if x_train is None else x_train.shape[0]
    flops = res.n_sampled * forward_flops(n_s, 7, WIDTHS) + res.n_consistent * forward_flops(x_test.shape[0], 7, WIDTHS)
    return res, flops / res.seconds / 1e9


def run(ctx) -> list[dict]:
    gpu = ctx.device.type == "cuda"
    n = (2**17 if ctx.quick else 2**19) * (64 if gpu else 1)
    chunks = [2048, 8192, 32768] if not gpu else [2**15, 2**17, 2**19]
    split = boolean_split("0011", 32, seed=0)
    rows = []
    best = 0.0
    for chunk in chunks:
        res, gflops = _run(ctx, split, n, chunk)
        best = max(best, res.samples_per_second)
        rows.append({"quantity": f"networks/s, |S|=32, chunk {chunk}", "value": res.samples_per_second,
                     "unit": "1/s", "target": None, "ok": None})
        rows.append({"quantity": f"matmul GFLOP/s / float32 roof, chunk {chunk}", "value": gflops / ctx.roof_gflops["float32"],
                     "unit": "ratio", "target": None, "ok": None})
    target = 1e7 / 300
    rows.append({"quantity": "best networks/s, |S|=32 (7→40→40→1)", "value": best, "unit": "1/s",
                 "target": f">= {target:.3g} (1e7 draws in <= 5 min)", "ok": best >= target})
    rows.append({"quantity": "time for 1e7 draws at best rate", "value": 1e7 / best, "unit": "s", "target": None,
                 "ok": None})
    res, gflops = _run(ctx, None, n // 2, chunks[1])
    rows.append({"quantity": "networks/s, S empty (all 128 inputs)", "value": res.samples_per_second, "unit": "1/s",
                 "target": None, "ok": None})
    rows.append({"quantity": "matmul GFLOP/s, S empty", "value": gflops, "unit": "GFLOP/s", "target": None, "ok": None})
    rows.append({"quantity": "matmul GFLOP/s / float32 roof, S empty", "value": gflops / ctx.roof_gflops["float32"],
                 "unit": "ratio", "target": None, "ok": None})
    rows.append({"quantity": "normals drawn per network", "value": n_parameters(7, WIDTHS), "unit": "", "target": None,
                 "ok": None})
    return rows
