"""Does SGD's stationary behaviour depend on ``η`` and ``b`` only through the temperature ``η/(2b)``?

Runs at several ``(η, b)`` are trained for the same diffusion time ``t = η · steps`` (so the SDE has run equally long),
then the train loss and test error are averaged over the second part of each run (the "stationary" window). Runs
with equal ``η/b`` should agree within seed-to-seed spread; runs with different ``η/b`` should not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from sgdbayes.noise.replicas import temperature, train_replicas


def temperature_experiment(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, *,
                           configs: Sequence[tuple[float, int]], seeds: int, time: float, hidden: int = 16,
                           replacement: bool = True, burn_fraction: float = 0.5, n_records: int = 40,
                           seed: int = 0) -> pd.DataFrame:
    """One row per (config, seed): ``lr, batch_size, ratio = η/b, temperature, replacement, seed, loss,
    test_error`` (window means after ``burn_fraction`` of the run). ``seeds`` replicas per config share an init
    stream seeded by ``seed`` (the same initial weights for every config, so configs differ only in η and b)."""
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 to estimate a spread, got {seeds}")
    if not 0 <= burn_fraction < 1:
        raise ValueError(f"burn_fraction must be in [0, 1), got {burn_fraction}")
    rows = []
    n = x.shape[0]
    for lr, b in configs:
        steps = max(1, int(round(time / lr)))
        run = train_replicas(x, y, lr=lr, batch_size=int(b), steps=steps, hidden=hidden, replicas=seeds,
                             replacement=replacement, seed=seed, record_every=max(1, steps // n_records),
                             x_test=x_test, y_test=y_test)
        keep = run.steps >= burn_fraction * steps
        loss = run.train_loss[keep].mean(0)
        err = run.test_error[keep].mean(0)
        for s in range(seeds):
            rows.append({"lr": lr, "batch_size": int(b), "ratio": lr / b, "replacement": replacement,
                         "temperature": temperature(lr, int(b), n, replacement=replacement), "seed": s,
                         "loss": float(loss[s]), "test_error": float(err[s])})
    return pd.DataFrame(rows)


def temperature_tests(df: pd.DataFrame, column: str = "loss", alpha: float = 0.01) -> dict:
    """One-way ANOVA of ``column`` across configs that share ``η/b`` (expect p > alpha: indistinguishable) and
    across the ``η/b`` groups (expect p < alpha). ``ok`` is True when both hold."""
    within = {}
    for ratio, g in df.groupby("ratio"):
        groups = [v[column].to_numpy() for _, v in g.groupby(["lr", "batch_size"])]
        if len(groups) >= 2:
            within[float(ratio)] = float(stats.f_oneway(*groups).pvalue)
    between_groups = [g[column].to_numpy() for _, g in df.groupby("ratio")]
    between = float(stats.f_oneway(*between_groups).pvalue) if len(between_groups) >= 2 else float("nan")
    ok = bool(within) and all(p > alpha for p in within.values()) and between < alpha
    return {"within_p": within, "between_p": between, "alpha": alpha, "ok": ok}
