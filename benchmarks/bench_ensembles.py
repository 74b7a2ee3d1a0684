"""Batched ensembles (``sgdbayes.ensembles.train_ensemble``) vs a per-network Python loop doing the same work, and
train_ensemble's native path (plain SGD on FCNs on CPU: ``sgdbayes.ensembles.fused.train_runs``) vs its torch path.

Same work: every network trains exactly ``epochs`` epochs (the training set holds one input twice with opposite labels,
so no network can fit and stop early) with its own minibatch order, SGD, BCE loss, and a full-S accuracy check after
each epoch. The loop is plain ``torch.nn`` + ``torch.optim``, one network after another. FLOPs count forward +
backward of the training steps (``_train_flops``: 2 per multiply-add; the first layer's backward is its weight
gradient only; the end-of-epoch checks are not counted). Plain SGD on an FCN takes the native path where a compiler
is present (networks of up to ``fused.NATIVE_MAX_PARAMS`` parameters); wider nets keep the torch path (width ≥ 256 on
784 inputs runs one network per chunk there). Further rows: the Boolean setting on the native vs the torch path with
the thread policy (1 vs 2 worker threads), the chapter's Boolean P_SGD ensemble under the authors' Keras rule and the
clean rule (native vs torch path, identical functions checked), the book's MNIST setting (784→40→40→1 on 500 shipped
digits, batch 32, MSE, SGD lr 0.05; 2 epochs per network), and one full-batch step of a wide ensemble (one shared GEMM
for the first layer) — each as throughput and fraction of the float32 GEMM roof re-measured beside it.
"""

from __future__ import annotations

import math
import os
import time

import torch
from torch import nn

from roof import cpu_time_roof, load_rows  # benchmarks/ is on sys.path under run.py

import numpy as np

import sgdbayes.ensembles.train as train_mod
from sgdbayes.ensembles import (FCN, StopRule, auto_chunk_size, epoch_permutations, make_optimizer, network_streams,
                                train_ensemble)
from sgdbayes.ensembles.fused import default_threads
from sgdbayes.ensembles.train import _per_net_loss

N_TRAIN, BATCH, EPOCHS, LR = 64, 8, 2, 0.01
FUSED_EPOCHS = 16  # fused-vs-today rows: closer to the book's runs (≈ 84 epochs under the authors' stop rule), so the
# per-network set-up both sides share (seeding, initialisation) does not hide the per-epoch work


def _data(d: int, device):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(N_TRAIN, d, generator=g)
    y = (torch.rand(N_TRAIN, generator=g) < 0.5).long()
    X[-1], y[-1] = X[0], 1 - y[0]  # unfittable: every network runs all epochs
    return X.to(device), y.to(device)


def _loop(model: FCN, X, y, M: int) -> None:
    n, yf, crit = X.shape[0], y.float(), nn.BCEWithLogitsLoss()
    for i in range(M):
        seeds, keys = network_streams(0, [i])
        net = model.to_module(model.init(seeds, X.device), 0)
        opt = torch.optim.SGD(net.parameters(), lr=LR)
        for e in range(1, EPOCHS + 1):
            order = epoch_permutations(keys.to(X.device), e, n)[0]
            for s in range(math.ceil(n / BATCH)):
                idx = order[s * BATCH:(s + 1) * BATCH]
                opt.zero_grad()
                crit(net(X[idx]).squeeze(-1), yf[idx]).backward()
                opt.step()
            with torch.no_grad():
                ((net(X).squeeze(-1) > 0).long() == y).float().mean().item()


def _ensemble(model: FCN, X, y, M: int, chunk_size="auto"):
    return train_ensemble(model, X, y, None, n_networks=M, optimizer="sgd", lr=LR, batch_size=BATCH,
                          max_epochs=EPOCHS, chunk_size=chunk_size, progress=False)


def _best_interleaved(fa, fb, repeats: int) -> tuple[float, float]:
    """Best wall times of ``fa`` and ``fb`` run alternately, in ABBA order (so a busy spell on a shared machine hits
    both, and neither always runs first)."""
    best = [float("inf"), float("inf")]
    for r in range(repeats):
        for k, fn in (((0, fa), (1, fb)) if r % 2 == 0 else ((1, fb), (0, fa))):
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best[0], best[1]


def _train_flops(model, d_in: int, width: int) -> int:
    """FLOPs of one training visit of one example: forward (2 per multiply-add) + backward, where the first layer
    needs only its weight gradient (the data need no gradient: 2× its forward) and every other layer also passes a
    gradient to its input (3× its forward)."""
    first = 2 * d_in * width
    return 2 * first + 3 * (model.flops_per_example() - first)


def _with_path(native: bool, threads: int | None, fn):
    """Run ``fn()`` on the native or the torch path of ``train_ensemble`` with ``threads`` threads (torch's, and the
    native kernel's via ``SGDBAYES_THREADS``; None: as set), restoring all after."""
    saved, saved_threads, saved_env = train_mod.NATIVE_SGD, torch.get_num_threads(), os.environ.get("SGDBAYES_THREADS")
    train_mod.NATIVE_SGD = native
    if threads:
        torch.set_num_threads(threads)
        os.environ["SGDBAYES_THREADS"] = str(threads)
    try:
        return fn()
    finally:
        train_mod.NATIVE_SGD = saved
        torch.set_num_threads(saved_threads)
        if saved_env is None:
            os.environ.pop("SGDBAYES_THREADS", None)
        else:
            os.environ["SGDBAYES_THREADS"] = saved_env


def _best_of(variants: dict, repeats: int, cpu: dict | None = None) -> dict:
    """Best wall time of each variant, run round-robin (the order reversed every other round, ABBA-style, so a busy
    spell on a shared machine hits all of them and none always runs first). With ``cpu`` (a dict), also the best
    CPU time (``time.process_time``) of each, stored there."""
    best = dict.fromkeys(variants, float("inf"))
    names = list(variants)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            c0, t0 = time.process_time(), time.perf_counter()
            variants[name]()
            best[name] = min(best[name], time.perf_counter() - t0)
            if cpu is not None:
                cpu[name] = min(cpu.get(name, float("inf")), time.process_time() - c0)
    return best


def _fused_rows(ctx) -> list[dict]:
    """The Boolean setting (7→40→40→1, batch 8, CE, plain SGD): ``train_ensemble`` on its native path against its
    torch path (what it ran before the native kernel: the fused ``FCN.sgd_step_``, with 2 and 1 torch threads —
    torch's intra-op threads lose on these tiny ops, so the better of the two is "today's figure"), the native path
    with 1 and 2 worker threads (the thread policy), on the same unfittable work (every network runs FUSED_EPOCHS
    epochs with the check after each), interleaved, best of repeats; the roof re-measured beside."""
    dev = ctx.device
    model = FCN(7, (40, 40), sigma_b=1.0)
    X, y = _data(7, dev)
    M_native, M_torch = (2048, 256) if ctx.quick else (8192, 1024)
    threads = max(default_threads(), torch.get_num_threads())

    def work(M):
        return lambda: train_ensemble(model, X, y, None, n_networks=M, optimizer="sgd", lr=LR, batch_size=BATCH,
                                      max_epochs=FUSED_EPOCHS, progress=False)

    native = _with_path(True, None, lambda: work(4)()).config["path"] == "native"
    variants = {
        "native": lambda: _with_path(True, threads, work(M_native)),
        "native, 1 thread": lambda: _with_path(True, 1, work(M_native)),
        "torch": lambda: _with_path(False, threads, work(M_torch)),
        "torch, 1 thread": lambda: _with_path(False, 1, work(M_torch)),
    }
    _with_path(False, None, work(8))  # warm-up (the native kernel was built above)
    cpu: dict = {}
    best = _best_of(variants, 2 if ctx.quick else 3, cpu)
    roof = ctx.roof("float32")
    cpu_roof = cpu_time_roof()
    M_of = {"native": M_native, "native, 1 thread": M_native, "torch": M_torch, "torch, 1 thread": M_torch}
    rate = {k: M_of[k] * FUSED_EPOCHS / t for k, t in best.items()}
    today = max(rate["torch"], rate["torch, 1 thread"])
    flop_per = _train_flops(model, 7, 40) * N_TRAIN  # one network-epoch's training FLOPs
    frac = rate["native"] * flop_per / 1e9 / roof
    # CPU-time rates of the one-thread runs (load-robust): GFLOP per CPU-second against the one-thread roof's
    cpu_rate = {k: M_of[k] * FUSED_EPOCHS / cpu[k] for k in ("native, 1 thread", "torch, 1 thread")}
    cpu_frac = cpu_rate["native, 1 thread"] * flop_per / 1e9 / cpu_roof
    cpu_speed = cpu_rate["native, 1 thread"] / cpu_rate["torch, 1 thread"]
    return [
        {"quantity": f"Boolean 7→40→40→1, B=8, CE, SGD: networks·epochs/s, train_ensemble torch path, {threads} "
                     f"threads (M={M_torch})", "value": rate["torch"], "unit": "1/s", "target": None, "ok": None},
        {"quantity": "Boolean: networks·epochs/s, torch path, 1 thread", "value": rate["torch, 1 thread"],
         "unit": "1/s", "target": None, "ok": None},
        {"quantity": f"Boolean: networks·epochs/s, train_ensemble {'native' if native else 'torch (no compiler)'} "
                     f"path, {threads} threads (M={M_native})", "value": rate["native"], "unit": "1/s",
         "target": None, "ok": None},
        {"quantity": "Boolean: native path speed-up vs the torch path's best thread count (same run)",
         "value": rate["native"] / today, "unit": "×", "target": "≥ 5×", "ok": rate["native"] / today >= 5},
        {"quantity": "Boolean: torch path training GFLOP/s / float32 roof", "value": today * flop_per / 1e9 / roof,
         "unit": "", "target": None, "ok": None},
        {"quantity": "Boolean: native path training GFLOP/s / float32 roof", "value": frac, "unit": "",
         "target": "≥ 0.30", "ok": frac >= 0.30},
        {"quantity": "Boolean, CPU time (1 thread each): native vs torch path", "value": cpu_speed, "unit": "×",
         "target": "≥ 5×", "ok": cpu_speed >= 5},
        {"quantity": "Boolean, CPU time: native path GFLOP per CPU-s / one-thread roof per CPU-s", "value": cpu_frac,
         "unit": "", "target": "≥ 0.30", "ok": cpu_frac >= 0.30},
        {"quantity": "one-thread float32 GEMM roof, GFLOP per CPU-second", "value": cpu_roof, "unit": "GFLOP/s",
         "target": None, "ok": None},
        {"quantity": f"thread policy: native path, {threads} worker threads vs 1", "unit": "×",
         "value": rate["native"] / rate["native, 1 thread"],
         "target": "≥ 1 (the default: every CPU, fused.default_threads)" if threads > 1 else None,
         "ok": rate["native"] / rate["native, 1 thread"] >= 1 if threads > 1 else None},
    ]


def _keras_rows(ctx) -> list[dict]:
    """The chapter's Boolean ensemble under the authors' Keras rule (target 0011, |S| = 32, lr 0.01, wait 1, shared
    callbacks over 25 runs per process, 3,000-epoch cap; ~115 epochs a run) and under the clean rule (lr 0.1, ~8
    epochs): networks per second, native against torch path (each at its best thread count), with the function counts
    compared (identical on these seeds)."""
    from sgdbayes.data.boolean import boolean_split

    split = boolean_split("0011", 32, seed=0)
    X, y, Xe = (torch.as_tensor(np.asarray(a)).to(ctx.device) for a in (split.x_train, split.y_train,
                                                                        split.x_test))
    model = FCN(7, (40, 40), sigma_w=1.0, sigma_b=1.0)
    rows = []
    for rule, lr, max_epochs, (m_native, m_torch) in (
            ("keras", 0.01, 3000, (500, 100) if ctx.quick else (2000, 250)),
            ("clean", 0.1, 2000, (2000, 400) if ctx.quick else (10000, 2000))):
        stop = StopRule.keras(wait=1, runs_per_process=25) if rule == "keras" else None

        def work(M, stop=stop, lr=lr, max_epochs=max_epochs):
            return lambda: train_ensemble(model, X, y, Xe, n_networks=M, optimizer="sgd", lr=lr, batch_size=8,
                                          max_epochs=max_epochs, stop_rule=stop, progress=False)

        res = {}
        variants = {"native": lambda w=work(m_native): res.__setitem__("native", _with_path(True, None, w)),
                    "torch": lambda w=work(m_torch): res.__setitem__("torch", _with_path(False, 1, w))}
        best = _best_of(variants, 1 if ctx.quick else 2)
        same = bool(torch.equal(res["native"].test_labels[:m_torch], res["torch"].test_labels)
                    and (res["native"].epochs_trained[:m_torch] == res["torch"].epochs_trained).all())
        speed = (m_native / best["native"]) / (m_torch / best["torch"])
        label = "Keras rule (wait 1, 25 runs/process)" if rule == "keras" else "clean rule"
        rows += [
            {"quantity": f"Boolean P_SGD, {label}: networks/s, native path (mean "
                         f"{res['native'].epochs_trained.mean():.0f} epochs)", "value": m_native / best["native"],
             "unit": "1/s", "target": None, "ok": None},
            {"quantity": f"Boolean P_SGD, {label}: native vs torch path (1 thread)", "value": speed, "unit": "×",
             "target": "≥ 5×", "ok": speed >= 5},
            {"quantity": f"Boolean P_SGD, {label}: same statuses, epochs and functions on both paths",
             "value": same, "unit": "", "target": "True", "ok": same},
        ]
    return rows


def run(ctx) -> list[dict]:
    rows: list[dict] = load_rows()
    dev = ctx.device
    # (input size, width, networks in the ensemble, networks in the loop baseline, repeats). Wide nets run one network
    # per chunk, so short blocks with many repeats compare them best on a shared, fluctuating machine.
    if ctx.quick:
        grid = [(7, 40, 256, 32, 2), (784, 40, 128, 16, 2), (784, 1024, 1, 1, 6)]
    else:
        grid = [(7, 40, 512, 64, 3), (784, 40, 256, 32, 3), (7, 256, 128, 32, 3), (784, 256, 4, 4, 6),
                (7, 1024, 2, 2, 8), (784, 1024, 1, 1, 10)]
    steps = EPOCHS * math.ceil(N_TRAIN / BATCH)
    for d, w, M, M_loop, repeats in grid:
        model = FCN(d, (w, w))
        X, y = _data(d, dev)
        _ensemble(model, X, y, min(M, 4))  # warm-up (both)
        _loop(model, X, y, 1)
        t_ens, t_loop = _best_interleaved(lambda: _ensemble(model, X, y, M), lambda: _loop(model, X, y, M_loop),
                                          repeats)
        t_ens, t_loop = t_ens / M, t_loop / M_loop
        speedup = t_loop / t_ens
        gflops = _train_flops(model, d, w) * BATCH * steps / t_ens / 1e9
        name = f"{d}→{w}→{w}→1"
        chunk = min(M, auto_chunk_size(model, make_optimizer("sgd", lr=LR), n_train=N_TRAIN, batch_size=BATCH,
                                       device=dev))
        if w == 40:
            target, ok = "≥ 10× (width 40)", speedup >= 10
        elif w >= 1024:
            target, ok = "≥ 1× (never slower; 10% timing noise allowed)", speedup >= 0.9
        else:
            target, ok = None, None
        rows.append({"quantity": f"speedup vs loop, {name}, M={M} (chunk {chunk})", "value": speedup, "unit": "×",
                     "target": target, "ok": ok})
        rows.append({"quantity": f"GFLOP/s ensemble, {name}", "value": gflops, "unit": "GFLOP/s",
                     "target": None, "ok": None})
        rows.append({"quantity": f"roof fraction ensemble, {name}", "value": gflops / ctx.roof("float32"),
                     "unit": "", "target": None, "ok": None})

    rows += _fused_rows(ctx)
    rows += _keras_rows(ctx)

    # the book's MNIST setting (function_probability: 784→40→40→1, |S| = 500 digits, batch 32, MSE, SGD lr 0.05),
    # a fixed 2 epochs per network (no network fits that soon): train_ensemble's native path against its torch path
    from sgdbayes.data import load_mnist_subset

    ms = load_mnist_subset(500, 100, seed=0)
    Xm, ym, Xem = (torch.as_tensor(a).to(dev) for a in (ms.x_train, ms.y_train, ms.x_test))
    model = FCN(784, (40, 40), sigma_w=1.0, sigma_b=0.0357)
    M_book, epochs_book = (56, 2) if ctx.quick else (224, 2)

    def book(native):
        return lambda: _with_path(native, None, lambda: train_ensemble(
            model, Xm, ym, Xem, n_networks=M_book, optimizer="sgd", lr=0.05, loss="mse", batch_size=32,
            max_epochs=epochs_book, progress=False))

    book(True)()  # warm-up (builds the kernel)
    best = _best_of({"native": book(True), "torch": book(False)}, 2)
    flop = _train_flops(model, 784, 40) * Xm.shape[0] * epochs_book * M_book
    roof = ctx.roof("float32")  # re-measured beside these timings
    rows.append({"quantity": f"book MNIST setting (784→40→40→1, |S|=500, B=32, MSE, SGD): networks·epoch/s, torch "
                             f"path, M={M_book}", "value": M_book * epochs_book / best["torch"], "unit": "1/s",
                 "target": None, "ok": None})
    rows.append({"quantity": "book MNIST setting: torch path training GFLOP/s / float32 roof",
                 "value": flop / best["torch"] / 1e9 / roof, "unit": "", "target": None, "ok": None})
    rows.append({"quantity": "book MNIST setting, native path: networks·epoch/s",
                 "value": M_book * epochs_book / best["native"], "unit": "1/s", "target": None, "ok": None})
    rows.append({"quantity": "book MNIST setting, native path: speed-up vs torch path",
                 "value": best["torch"] / best["native"], "unit": "×", "target": "≥ 1×",
                 "ok": best["torch"] / best["native"] >= 1})
    rows.append({"quantity": "book MNIST setting, native path: training GFLOP/s / float32 roof",
                 "value": flop / best["native"] / 1e9 / roof, "unit": "", "target": None, "ok": None})

    # one full-batch step of a wide-enough ensemble: [n, 784] × [784, M·w] first layer, bmm for the rest
    n, w, M = (500, 256, 8) if ctx.quick else (1000, 256, 16)
    model = FCN(784, (w, w))
    g = torch.Generator().manual_seed(1)
    X = torch.rand(n, 784, generator=g).to(dev)
    target = (torch.rand(n, generator=g) < 0.5).float().to(dev)
    params = [p.requires_grad_() for p in model.init(list(range(M)), dev)]
    opt = make_optimizer("sgd", lr=1e-3)
    state = opt.init_state(params)

    def step():
        total = _per_net_loss(model.forward_shared(params, X), target, "ce").sum()
        opt.step(params, torch.autograd.grad(total, params), state)

    from roof import time_call  # benchmarks/ is on sys.path under run.py

    t = time_call(step, repeats=3, device=dev)
    gflops = _train_flops(model, 784, w) * n * M / t / 1e9
    rows.append({"quantity": f"full-batch step GFLOP/s, |S|={n}, 784→{w}→{w}→1, M={M}", "value": gflops,
                 "unit": "GFLOP/s", "target": None, "ok": None})
    roof = ctx.roof("float32")  # re-measured beside this timing
    rows.append({"quantity": "full-batch step / float32 roof", "value": gflops / roof, "unit": "",
                 "target": "≥ 0.4", "ok": gflops / roof >= 0.4})
    return rows
