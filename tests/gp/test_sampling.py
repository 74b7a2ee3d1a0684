"""Monte-Carlo samplers of the GP posterior under the 0–1 likelihood (``sgdbayes.gp.sampling``) against exact
orthant probabilities (Genz), within their Monte-Carlo error."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from sgdbayes.gp.sampling import elliptical_slice, sample_gp_rejection


def _kernel(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return torch.exp(-0.5 * torch.cdist(x, x).square()) + 0.1 + 1e-6 * torch.eye(n, dtype=torch.float64)


def _orthant(K: np.ndarray, signs) -> float:
    s = np.asarray(signs, dtype=float)
    C = s[:, None] * K * s[None, :]
    return float(multivariate_normal(mean=np.zeros(len(s)), cov=C, abseps=1e-7, releps=1e-4).cdf(np.zeros(len(s))))


@pytest.fixture(scope="module")
def system():
    """|S| = 3, |E| = 2, and the exact P(S) and P_B(f|S) for the four labellings f of E."""
    K = _kernel(5, seed=3)
    y = torch.tensor([1.0, -1.0, 1.0])
    Kn = K.numpy()
    p_s = _orthant(Kn[:3, :3], y.numpy())
    exact = {f: _orthant(Kn, (*y.numpy(), *f)) / p_s for f in itertools.product((-1.0, 1.0), repeat=2)}
    return K, y, p_s, exact


def test_exact_reference_is_normalised(system):
    _, _, _, exact = system
    assert sum(exact.values()) == pytest.approx(1.0, abs=1e-5)


def test_rejection_matches_orthant_probabilities(system):
    """P(S) and every P_B(f|S) within 5 binomial standard deviations."""
    K, y, p_s, exact = system
    n = 200_000
    res = sample_gp_rejection(K, y, n_samples=n, seed=0, block=50_000)
    assert res.n_sampled == n and res.config["jitter"] == 0.0
    assert abs(res.p_train - p_s) <= 5 * math.sqrt(p_s * (1 - p_s) / n)
    m = res.n_consistent
    bits = np.array([[f1 > 0, f2 > 0] for f1, f2 in exact])
    log_p, sd = res.log_pb(bits)
    for (f, p), lp in zip(exact.items(), log_p):
        assert abs(math.exp(lp) - p) <= 5 * math.sqrt(p * (1 - p) / m), (f, math.exp(lp), p)
    assert np.all(np.isfinite(sd))


def test_rejection_is_reproducible_and_uses_the_seed(system):
    K, y, _, _ = system
    a = sample_gp_rejection(K, y, n_samples=20_000, seed=5, block=4096)
    b = sample_gp_rejection(K, y, n_samples=20_000, seed=5, block=4096)
    c = sample_gp_rejection(K, y, n_samples=20_000, seed=6, block=4096)
    assert a.n_consistent == b.n_consistent and np.array_equal(a.counts.counts, b.counts.counts)
    assert a.n_consistent != c.n_consistent or not np.array_equal(a.counts.counts, c.counts.counts)


@pytest.mark.parametrize("init", ["ep", "prior"])
def test_elliptical_slice_marginals_match_exact(system, init, one_thread):
    """P_B(f_j = +1 | S) for both test points, and the probability of each full labelling of E, within 5 standard
    errors estimated from the spread between independent chains (plus 1e-3 for the finite burn-in)."""
    K, y, _, exact = system
    res = elliptical_slice(K, y, n_chains=200, n_steps=300, burn_in=100, seed=1, init=init)
    marg_exact = np.array([sum(p for f, p in exact.items() if f[j] > 0) for j in range(2)])
    assert res.chain_marginals.shape == (200, 2) and res.n_kept == 300
    assert np.all(np.abs(res.marginals - marg_exact) <= 5 * res.marginal_se + 1e-3), (res.marginals, marg_exact)
    assert res.counts.total == 200 * 300
    # the samples stay admissible: none of them can be anything but a labelling of E (4 possible), all seen
    assert res.counts.n_distinct == 4


def test_elliptical_slice_expected_error(system, one_thread):
    K, y, _, exact = system
    res = elliptical_slice(K, y, n_chains=100, n_steps=200, burn_in=50, seed=2)
    y_test = np.array([1, 0])
    err_exact = sum(p * np.mean((np.array(f) > 0) != (y_test > 0)) for f, p in exact.items())
    err, se = res.expected_error(y_test)
    assert abs(err - err_exact) <= 5 * se + 1e-3, (err, se, err_exact)


def test_bad_input(system):
    K, y, _, _ = system
    with pytest.raises(ValueError, match="n_samples"):
        sample_gp_rejection(K, y, n_samples=0)
    with pytest.raises(ValueError, match="y_train"):
        sample_gp_rejection(K, torch.tensor([1.0, 0.0, 1.0]), n_samples=10)
    with pytest.raises(ValueError, match="n_S"):
        sample_gp_rejection(K, torch.ones(5), n_samples=10)
    with pytest.raises(ValueError, match="n_chains"):
        elliptical_slice(K, y, n_chains=1)
    with pytest.raises(ValueError, match="init"):
        elliptical_slice(K, y, init="zeros")
    with pytest.raises(ValueError):
        elliptical_slice(K[:4], y)
    bad = K.clone()
    bad[0, 1] = bad[1, 0] = 5.0  # not positive definite
    with pytest.raises(ValueError, match="positive definite"):
        elliptical_slice(bad, y, n_chains=4, n_steps=2, burn_in=0)


def test_elliptical_slice_labelling_probabilities(system, one_thread):
    """P_B(f|S) of each of the four labellings of E within 5 between-chain standard errors (+1e-3 burn-in)."""
    K, y, _, exact = system
    res = elliptical_slice(K, y, n_chains=100, n_steps=200, burn_in=50, seed=3)
    bits = np.array([[f1 > 0, f2 > 0] for f1, f2 in exact])
    p, se = res.pb(bits)
    assert res.packed_samples.shape == (200, 100, 1)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(p, res.counts.lookup(bits) / res.counts.total, atol=1e-12)
    for (f, q), got, s in zip(exact.items(), p, se):
        assert abs(got - q) <= 5 * s + 1e-3, (f, got, q, s)
