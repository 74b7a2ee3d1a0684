"""SGD temperature helpers and the replica trainer."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from sgdbayes.noise import temperature, temperature_tests, train_replicas
from sgdbayes.noise.replicas import _forward, _init


def test_temperature_formula():
    assert temperature(0.1, 10) == pytest.approx(0.005)
    assert temperature(0.1, 10, 40, replacement=False) == pytest.approx(0.005 * 0.75)
    assert temperature(0.1, 40, 40, replacement=False) == 0.0  # full batch: no noise
    with pytest.raises(ValueError, match="N >= b"):
        temperature(0.1, 10, 5, replacement=False)


def test_batched_forward_matches_per_replica_networks():
    gen = torch.Generator().manual_seed(0)
    params = _init(3, 4, 5, 2, gen, "cpu", torch.float64)
    x = torch.randn(3, 7, 4, dtype=torch.float64)
    out = _forward(params, x)
    for r in range(3):
        w1, b1, w2, b2 = (p[r] for p in params)
        np.testing.assert_allclose(out[r], torch.relu(x[r] @ w1 + b1) @ w2 + b2, atol=1e-12)


def test_replicas_learn_and_record():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 5, generator=gen)
    y = (x[:, 0] > 0).long()
    run = train_replicas(x, y, lr=[0.5, 0.05], batch_size=8, steps=200, replicas=2, record_every=50,
                         replacement=False, x_test=x, y_test=y, record_weights=True)
    assert run.train_loss.shape == (5, 2) and run.weights.shape == (5, 2, run.d)
    assert run.d == 5 * 16 + 16 + 16 * 2 + 2
    assert run.train_loss[-1, 0] < 0.5 * run.train_loss[0, 0]
    assert run.train_loss[-1, 0] < run.train_loss[-1, 1]  # larger lr, same time budget in steps: further along
    # recorded loss is the full-data cross-entropy
    w = torch.as_tensor(run.weights[-1, 0])
    sizes = [5 * 16, 16, 16 * 2, 2]
    parts = torch.split(w, sizes)
    p = [parts[0].reshape(1, 5, 16), parts[1].reshape(1, 1, 16), parts[2].reshape(1, 16, 2), parts[3].reshape(1, 1, 2)]
    loss = F.cross_entropy(_forward(p, x.unsqueeze(0))[0], y)
    assert float(loss) == pytest.approx(run.train_loss[-1, 0], rel=1e-5)
    with pytest.raises(FloatingPointError, match="diverged"):
        train_replicas(x * 1e3, y, lr=1e4, batch_size=8, steps=50, record_every=10)


def test_temperature_tests_on_known_groups():
    e = 0.05 * np.random.default_rng(0).standard_normal(8)
    rows = []
    # equal η/b, identical sample means by construction (F = 0, p = 1); the third group is shifted by 20 sd
    for lr, b, vals in [(0.1, 10, 1.0 + e), (0.2, 20, 1.0 + e[::-1]), (0.4, 20, 2.0 + e)]:
        rows += [{"lr": lr, "batch_size": b, "ratio": lr / b, "loss": v} for v in vals]
    out = temperature_tests(pd.DataFrame(rows))
    assert out["ok"] and out["between_p"] < 1e-6
    assert list(out["within_p"].values()) == [pytest.approx(1.0)]
    rows[0]["loss"] += 1.0  # one outlier in the first group breaks equality
    assert temperature_tests(pd.DataFrame(rows))["within_p"][0.01] < 0.5
