"""Measure the mean epochs of the chapters' training runs (``EnsembleResult.epochs_trained``) for the cost model
(``sgdbayes.estimate.MEAN_EPOCHS``): small ensembles of every (optimiser, learning rate, batch, stop rule) setting the
chapters use, on the chapter's Boolean problem (target 0011 tiled to 128 bits, |S| = 32 and 64, 7→40→40→1,
σ_w = σ_b = 1, cross-entropy) and on the MNIST setting (784→40→40→1 on |S| shipped digits, parity labels).

    python benchmarks/epochs_table.py [--networks 200]   # prints the table as Python for estimate.py
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from sgdbayes.data.boolean import boolean_split
from sgdbayes.ensembles import FCN, StopRule, train_ensemble

BOOLEAN = [  # (optimizer, lr, batch, rule, wait / overtrain, |S|)
    ("sgd", 0.1, 8, "clean", 0, 32), ("sgd", 0.01, 8, "clean", 0, 32), ("sgd", 0.01, 8, "keras", 1, 32),
    ("sgd", 0.01, 8, "keras", 64, 32), ("sgd", 0.1, 8, "clean", 64, 32), ("sgd", 0.01, 8, "keras", 1, 64),
    ("sgd", 0.01, 8, "clean", 0, 64), ("sgd", 0.1, 8, "clean", 0, 64),
    ("sgd", 0.01, 32, "keras", 1, 32), ("sgd", 0.01, 32, "clean", 0, 32),
    ("adam", 0.001, 8, "keras", 1, 32), ("adam", 0.001, 32, "keras", 1, 32), ("adam", 0.01, 8, "clean", 0, 32),
    ("adagrad", 0.01, 8, "keras", 1, 32), ("adagrad", 0.01, 32, "keras", 1, 32),
    ("rmsprop", 0.001, 8, "keras", 1, 32), ("rmsprop", 0.001, 32, "keras", 1, 32), ("rmsprop", 0.01, 8, "clean", 0, 32),
    ("adadelta", 1.0, 8, "keras", 1, 32), ("adadelta", 1.0, 32, "keras", 1, 32),
    ("sgd", 0.03, 2, "clean", 0, 32), ("sgd", 0.3, 32, "clean", 0, 32), ("sgd", 1.0, 8, "clean", 0, 32),
    ("sgd", 0.1, 32, "clean", 0, 32), ("adam", 0.01, 32, "clean", 0, 32), ("adam", 0.001, 8, "clean", 0, 32),
    ("adam", 0.001, 32, "clean", 0, 32), ("adagrad", 0.01, 8, "clean", 0, 32), ("adagrad", 0.01, 32, "clean", 0, 32),
    ("rmsprop", 0.01, 32, "clean", 0, 32), ("rmsprop", 0.001, 8, "clean", 0, 32),
    ("rmsprop", 0.001, 32, "clean", 0, 32), ("adadelta", 1.0, 8, "clean", 0, 32),
    ("adadelta", 1.0, 32, "clean", 0, 32),
]


def boolean_epochs(networks: int, settings=BOOLEAN) -> dict:
    out = {}
    for opt, lr, B, rule, extra, n in settings:
        split = boolean_split("0011", n, seed=0)
        X, y, Xe = (torch.as_tensor(np.asarray(a)) for a in (split.x_train, split.y_train, split.x_test))
        model = FCN(7, (40, 40), sigma_w=1.0, sigma_b=1.0)
        kw = dict(stop_rule=StopRule.keras(wait=extra, runs_per_process=25), max_epochs=3000) if rule == "keras" \
            else dict(overtrain_epochs=extra, max_epochs=3000)
        m = networks if opt == "sgd" else max(50, networks // 4)
        res = train_ensemble(model, X, y, Xe, n_networks=m, optimizer=opt, lr=lr, batch_size=B, progress=False, **kw)
        out[(opt, lr, B, rule, extra, n)] = round(float(res.epochs_trained.mean()), 1)
        print(f"    {(opt, lr, B, rule, extra, n)!r}: {out[(opt, lr, B, rule, extra, n)]},", flush=True)
    return out


def mnist_epochs(networks: int) -> dict:
    from sgdbayes.data import load_mnist_subset

    out = {}
    for n, lr, B, loss, rule, extra in ((1000, 0.01, 32, "mse", "keras", 1), (1000, 0.01, 32, "mse", "clean", 0),
                                        (1000, 0.01, 32, "ce", "clean", 0), (400, 0.05, 32, "mse", "clean", 0)):
        ms = load_mnist_subset(n, 100, seed=0)
        X, y, Xe = (torch.as_tensor(a) for a in (ms.x_train, ms.y_train, ms.x_test))
        model = FCN(784, (40, 40), sigma_w=1.0, sigma_b=0.0357)
        kw = dict(stop_rule=StopRule.keras(wait=extra, runs_per_process=8), max_epochs=3000) if rule == "keras" \
            else dict(overtrain_epochs=extra, max_epochs=3000)
        res = train_ensemble(model, X, y, Xe, n_networks=max(16, networks // 8), optimizer="sgd", lr=lr, loss=loss,
                             batch_size=B, progress=False, **kw)
        key = ("mnist", n, lr, B, loss, rule, extra)
        out[key] = round(float(res.epochs_trained.mean()), 1)
        print(f"    {key!r}: {out[key]},", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("MEAN_EPOCHS = {")
    boolean_epochs(args.networks)
    mnist_epochs(args.networks)
    print("}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
