"""Vectorised constant-SGD chains (one tensor, own minibatches) vs a Python loop of single chains doing the same work.

Workload: Bayesian linear regression on scikit-learn diabetes (N = 442, D = 10), minibatch S = 10, constant ε*;
M chains × T steps either as one call of the driver (:func:`sgdbayes.ou.driver.run`) or as M calls with one chain
each. Target: ≥ 20× on 2 cores.
"""

from __future__ import annotations

import time

from sgdbayes.data.tabular import load_tabular
from sgdbayes.ou.driver import run as run_chains
from sgdbayes.ou.models import LinearRegression
from sgdbayes.ou.samplers import sgd
from sgdbayes.ou.theory import optimal_learning_rate


def run(ctx) -> list[dict]:
    d = load_tabular("diabetes")
    model = LinearRegression(d.X, d.y, device=ctx.device)
    mode = model.mode()
    eps = optimal_learning_rate(model.noise_covariance(mode), N=model.N, S=10)
    M, T = (200, 50) if ctx.quick else (1000, 200)

    def vec():
        return run_chains(model, sgd(eps, 10), n_chains=M, n_steps=T, init=mode, seed=0)

    def loop():
        for m in range(M):
            run_chains(model, sgd(eps, 10), n_chains=1, n_steps=T, init=mode, seed=m)

    vec()
    t0 = time.perf_counter()
    vec()
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop()
    t_loop = time.perf_counter() - t0
    speedup = t_loop / t_vec
    rate = M * T / t_vec
    return [
        {"benchmark": "chains", "quantity": f"vectorised {M} chains × {T} steps", "value": t_vec, "unit": "s",
         "target": None, "ok": None},
        {"benchmark": "chains", "quantity": f"Python loop of {M} single chains × {T} steps", "value": t_loop,
         "unit": "s", "target": None, "ok": None},
        {"benchmark": "chains", "quantity": "chain-steps per second (vectorised)", "value": rate, "unit": "1/s",
         "target": None, "ok": None},
        {"benchmark": "chains", "quantity": "speed-up vectorised / loop", "value": speedup, "unit": "×",
         "target": 20.0, "ok": bool(speedup >= 20.0)},
    ]
