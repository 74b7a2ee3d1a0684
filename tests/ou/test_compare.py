"""The Table-1 settings against closed forms (commuting case) and a small end-to-end run."""

import numpy as np
import pytest

from sgdbayes.ou import theory as th
from sgdbayes.ou.compare import compare_samplers, sampler_settings
from sgdbayes.ou.models import LinearRegression


def test_settings_commuting_closed_forms():
    a, c = np.array([2.0, 0.5, 1.0]), np.array([1.0, 3.0, 0.4])
    A, C, N, S = np.diag(a), np.diag(c), 1000, 10
    st = sampler_settings(A, C, N=N, S=S, sgld_eps=1e-4)
    e = 2 * S * 3 / (N * c.sum())
    assert st["sgd"].sampler.eps == pytest.approx(e)
    np.testing.assert_allclose(np.diag(st["sgd"].pred), e * c / (2 * S * a), rtol=1e-12)
    # diagonal problem: diagonal and full H* (and SGFS-full at ε*, EEᵀ = C) all give the posterior
    for k in ("sgd_diag", "sgd_full", "sgfs_full"):
        np.testing.assert_allclose(st[k].pred, np.linalg.inv(N * A), rtol=1e-8)
        assert st[k].note == ""
    assert st["sgfs_full"].sampler.eps == pytest.approx(e)
    # SGLD with the same step on L as SGD: posterior + (εN/4S)A⁻¹C at ε = 2ε*/N, i.e. + ε*C/(2SA)
    assert st["sgld_matched"].sampler.eps == pytest.approx(2 * e / N)
    np.testing.assert_allclose(np.diag(st["sgld_matched"].pred), 1 / (N * a) + e * c / (2 * S * a), rtol=1e-10)
    # SGLD at a given step: the same closed form with that step
    np.testing.assert_allclose(np.diag(st["sgld"].pred), 1 / (N * a) + 1e-4 * N * c / (4 * S * a), rtol=1e-10)
    # a step past the stability limit is halved and the setting says so
    big = sampler_settings(A, C, N=N, S=S, sgld_eps=1.0, methods=("sgld",))
    assert big["sgld"].sampler.eps == pytest.approx(0.5 * 4 / (N * 2.0)) and "stability limit" in big["sgld"].note
    with pytest.raises(ValueError, match="unknown method"):
        sampler_settings(A, C, N=N, S=S, methods=("adam",))
    with pytest.raises(ValueError, match="needs sgld_eps"):
        sampler_settings(A, C, N=N, S=S, methods=("sgld",))


def test_compare_samplers_small_linear_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = X @ np.array([0.5, -1.0]) + rng.normal(size=400)
    model = LinearRegression(X, y)
    pm, pc = model.posterior()
    res = compare_samplers(model, pm, pc, S=10, n_chains=200, n_steps=600, thin=5, bbvi_steps=300,
                           methods=("sgd", "sgd_full", "bbvi"), seed=0)
    m = res["methods"]
    for k in ("sgd", "sgd_full"):
        assert m[k]["burn_in"] <= 200 and m[k]["n_diverged"] == 0
        # the iterates' KL to the posterior tracks the Lyapunov prediction (Gaussian-fit bias ~ D(D+3)/(4 n_eff))
        assert abs(m[k]["kl_pq"] - m[k]["kl_pq_pred"]) < 0.05 + 0.2 * m[k]["kl_pq_pred"]
    assert m["sgd_full"]["kl_pq"] < 0.05
    assert th.gaussian_kl(pm, pc, m["sgd"]["mean"], m["sgd"]["cov"]) == pytest.approx(m["sgd"]["kl_pq"])
