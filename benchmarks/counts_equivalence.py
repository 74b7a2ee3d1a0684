"""Function counts of the native and the torch paths of ``train_ensemble`` on the same seeds (issue 16).

The native kernel sums in another order than torch's GEMMs, so individual trajectories may differ by rounding, which
many SGD steps can amplify. This script trains the chapter's Boolean P_SGD ensemble (target 0011, |S| = 32,
7→40→40→1, σ_w = σ_b = 1, batch 8, cross-entropy) on both paths with the same seeds, under the clean rule (lr 0.1)
and the authors' Keras rule (lr 0.01, wait 1, shared callbacks, 25 runs per emulated process, 3,000 epochs), and
reports per rule: the fraction of networks whose status, epochs and function are identical on both paths, the top-1
and top-10 masses with their Monte-Carlo errors, and — when any function differs — a G-test of the two count
tables over the functions seen at least 5 times on either path (the rest pooled), which tests "same distribution",
and, because the two samples are paired (same seeds), an exact McNemar test of the top-1 mass on the pairs whose
functions differ (H0: a run that changes function leaves the top function as often as it reaches it).

    python benchmarks/counts_equivalence.py [--networks 10000] [--out _build/counts_equivalence.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

import sgdbayes.ensembles.train as train_mod
from sgdbayes.data.boolean import boolean_split
from sgdbayes.ensembles import FCN, StopRule, train_ensemble

ROOT = Path(__file__).resolve().parent.parent


def _g_test(a_bits: torch.Tensor, b_bits: torch.Tensor, min_count: int = 5) -> tuple[float, int, float]:
    """G-test of homogeneity of two samples of functions (rows of bool bits): (G, dof, p)."""
    both = torch.cat([a_bits, b_bits]).numpy()
    keys, inverse = np.unique(np.packbits(both, axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    ca = np.bincount(inverse[:a_bits.shape[0]], minlength=keys.shape[0])
    cb = np.bincount(inverse[a_bits.shape[0]:], minlength=keys.shape[0])
    common = (ca + cb) >= min_count
    table = np.stack([np.append(ca[common], ca[~common].sum()), np.append(cb[common], cb[~common].sum())])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        return 0.0, 0, 1.0
    g, p, dof, _ = stats.chi2_contingency(table, lambda_="log-likelihood")
    return float(g), int(dof), float(p)


def compare(n_networks: int, rule: str, seed: int = 0, clean_lr: float = 0.1) -> dict:
    split = boolean_split("0011", 32, seed=0)
    X, y, Xe = (torch.as_tensor(np.asarray(a)) for a in (split.x_train, split.y_train, split.x_test))
    model = FCN(7, (40, 40), sigma_w=1.0, sigma_b=1.0)
    if rule == "clean":
        kw = dict(lr=clean_lr, max_epochs=2000, stop_rule=None)
    else:
        kw = dict(lr=0.01, max_epochs=3000, stop_rule=StopRule.keras(wait=1, runs_per_process=25))
    out, seconds = {}, {}
    saved = train_mod.NATIVE_SGD
    try:
        for native in (True, False):
            train_mod.NATIVE_SGD = native
            t0 = time.process_time()
            out[native] = train_ensemble(model, X, y, Xe, n_networks=n_networks, seed=seed, optimizer="sgd",
                                         batch_size=8, loss="ce", progress=False, **kw)
            seconds[native] = time.process_time() - t0
    finally:
        train_mod.NATIVE_SGD = saved
    a, b = out[True], out[False]
    assert a.config["path"] == "native" and b.config["path"] == "torch"
    same = ((a.status == b.status) & (a.epochs_trained == b.epochs_trained)
            & (a.test_labels == b.test_labels).all(1).numpy())
    leaders = rule == "clean"
    row = {"rule": rule, "lr": kw["lr"], "networks": n_networks, "identical_fraction": float(same.mean()),
           "cpu_s_native": seconds[True], "cpu_s_torch": seconds[False],
           "mean_epochs": float(a.epochs_trained.mean())}
    for name, res in (("native", a), ("torch", b)):
        for k in (1, 10):
            m, se = res.top_mass(k, leaders=leaders)
            row[f"top{k}_{name}"], row[f"top{k}_se_{name}"] = m, se
    # the G-test and the paired McNemar test also when every run is identical (then G = 0, p = 1)
    keep_a, keep_b = a._kept(True, leaders), b._kept(True, leaders)
    g, dof, p = _g_test(a.test_labels[torch.from_numpy(keep_a)], b.test_labels[torch.from_numpy(keep_b)])
    row.update(g_statistic=g, g_dof=dof, g_p_value=p)
    # paired: McNemar on "function is the torch path's top-1 function", over the counted runs of both paths
    la, lb = a.test_labels.numpy(), b.test_labels.numpy()
    both = keep_a & keep_b
    keys, inverse = np.unique(np.packbits(lb[keep_b], axis=1), axis=0, return_inverse=True)
    top = np.unpackbits(keys[np.bincount(inverse.reshape(-1)).argmax()])[:lb.shape[1]].astype(bool)
    is_top_a, is_top_b = (la == top).all(1) & both, (lb == top).all(1) & both
    n01, n10 = int((is_top_a & ~is_top_b).sum()), int((~is_top_a & is_top_b).sum())
    row.update(mcnemar_top1_native_only=n01, mcnemar_top1_torch_only=n10,
               mcnemar_p_value=float(stats.binomtest(n01, n01 + n10).pvalue) if n01 + n10 else 1.0)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=10_000)
    parser.add_argument("--clean-lr", type=float, default=0.1,
                        help="learning rate of the clean-rule runs (1.0: chaotic runs, where rounding shows)")
    parser.add_argument("--rules", nargs="+", default=["clean", "keras"], choices=["clean", "keras"])
    parser.add_argument("--out", default=str(ROOT / "_build" / "counts_equivalence.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [compare(args.networks, rule, clean_lr=args.clean_lr) for rule in args.rules]
    for r in rows:
        print(json.dumps(r))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
