"""log P_B(f|S): normalisation over all test labellings, the two EP forms against each other and against exact
orthant-probability ratios."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from sgdbayes.gp import ep, log_pb


def rbf_inputs(n: int, lengthscale: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return torch.exp(-0.5 * torch.cdist(x, x).square() / lengthscale**2) + 1e-8 * torch.eye(n, dtype=torch.float64)


def all_labellings(k: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=k)), dtype=torch.float64)


@pytest.fixture(scope="module")
def system():
    """|S| = 6, |E| = 4; train labels from the sign of the first input coordinate (a learnable rule)."""
    K = rbf_inputs(10, 1.0, seed=21)
    y = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0, -1.0])
    return K, y


@pytest.mark.parametrize("method,likelihood,tol", [("two_stage", "step", 0.03), ("full", "step", 0.03),
                                                     ("two_stage", "probit", 0.03)])
def test_probabilities_of_all_labellings_sum_to_one(system, method, likelihood, tol):
    """Σ_f P_B(f|S) over all 2^4 labellings of E = 1 up to EP's error (observed |Σ − 1| ≲ 1e-2)."""
    K, y = system
    lp = log_pb(K, y, all_labellings(4), method=method, likelihood=likelihood)
    assert lp.shape == (16,) and bool((lp < 0).all())
    total = float(torch.logsumexp(lp, 0).exp())
    assert total == pytest.approx(1.0, abs=tol)


@pytest.mark.slow
def test_both_forms_agree_and_match_exact_ratio(system):
    """Against the exact log [P(S ∪ (E, f)) / P(S)] from orthant probabilities (Genz, releps 2e-3), all 16 f:
    the full form within 5% (relative, in log; observed ≤ 3%). The two-stage form freezes S's sites, so it
    agrees with the full form only where f is probable given S: within 0.1 nats for P_B ≥ 0.02 (observed ≤ 0.07);
    for improbable f (P_B ~ 1e-4) it overestimates log P_B by up to ~2 nats (observed 2.3)."""
    K, y = system
    f = all_labellings(4)  # the exact check uses 7 of them (Genz in 10-D is slow)
    two = log_pb(K, y, f, method="two_stage")
    full = log_pb(K, y, f, method="full")

    def orthant(Kx, yx):
        yn = yx.numpy()
        C = yn[:, None] * Kx.numpy() * yn[None, :]
        return math.log(multivariate_normal(mean=np.zeros(len(yn)), cov=C, abseps=1e-12, releps=2e-3,
                                            maxpts=10**6).cdf(np.zeros(len(yn))))

    log_ps = orthant(K[:6, :6], y)
    pick = torch.tensor([0, 4, 5, 7, 8, 9, 11])  # the probable ones and the least probable ones
    exact = torch.tensor([orthant(K, torch.cat([y, f[i]])) - log_ps for i in pick], dtype=torch.float64)
    two, full = two[pick], full[pick]
    assert bool(((full - exact).abs() <= 0.05 * exact.abs() + 5e-3).all())
    probable = exact > math.log(0.02)
    assert int(probable.sum()) >= 3
    torch.testing.assert_close(two[probable], full[probable], rtol=0, atol=0.1)
    # the ranking of the probable functions is the same under both forms
    assert torch.equal(torch.argsort(two[probable]), torch.argsort(full[probable]))


def test_full_form_is_the_ratio_of_two_eps(system):
    """method='full' equals log Z_EP(S ∪ (E, f)) − log Z_EP(S) computed by two cold EP runs."""
    K, y = system
    f = all_labellings(4)[[3, 12]]
    res = log_pb(K, y, f, method="full", return_result=True, tol=1e-9, site_tol=1e-7)
    cold_s = ep(K[:6, :6], y, likelihood="step", tol=1e-9, site_tol=1e-7).log_z
    for i in range(2):
        cold = ep(K, torch.cat([y, f[i]]), likelihood="step", tol=1e-9, site_tol=1e-7).log_z
        assert float(res.log_pb[i]) == pytest.approx(float(cold - cold_s), abs=1e-6)
    # warm-started from S's sites and the two-stage sites of E, it needs fewer sweeps than a cold start
    assert int(res.ep_full.sweeps.max()) < ep(K, torch.cat([y, f[0]]).expand(1, 10), likelihood="step",
                                               tol=1e-9, site_tol=1e-7).sweeps.item()


def test_no_training_set_gives_prior_orthant_probability():
    """n_S = 0: P_B(f) is the prior probability of the sign pattern; for |E| = 2, Sheppard's formula."""
    K = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    lp = log_pb(K, torch.zeros(0), all_labellings(2))
    torch.testing.assert_close(lp, torch.full((4,), math.log(0.25), dtype=torch.float64), rtol=0, atol=1e-12)


def test_repeated_rows_and_single_row(system):
    K, y = system
    f = all_labellings(4)[[2, 7, 2, 2, 7]]
    res = log_pb(K, y, f, return_result=True)
    assert res.ep_test.log_z.shape == (2,)  # two distinct labellings were computed
    assert float(res.log_pb[0]) == float(res.log_pb[2]) == float(res.log_pb[3])
    one = log_pb(K, y, f[1])
    assert one.shape == () and float(one) == pytest.approx(float(res.log_pb[1]), abs=1e-12)


def test_bad_input(system):
    K, y = system
    f = all_labellings(4)
    with pytest.raises(ValueError, match=r"f_test must have shape \[n\] or \[m, n\] with n = 4"):
        log_pb(K, y, f[:, :3])
    with pytest.raises(ValueError, match="labels must be -1 or \\+1"):
        log_pb(K, y, f * 2)
    with pytest.raises(ValueError, match="labels must be -1 or \\+1"):
        log_pb(K, torch.tensor([1.0, 0, 1, 1, 1, 1]), f)
    with pytest.raises(ValueError, match="at least one test input"):
        log_pb(K[:6, :6], y, f)
    with pytest.raises(ValueError, match="method must be one of"):
        log_pb(K, y, f, method="exact")
    Kn = K.clone()
    Kn[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        log_pb(Kn, y, f)
    with pytest.raises(ValueError, match="not positive definite"):
        log_pb(K - 0.5 * torch.eye(10, dtype=torch.float64), y, f)
