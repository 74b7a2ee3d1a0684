"""Least squares with and without replacement: the exact stationary excess loss against an enumeration of every
mini-batch, and SGD chains against it within Monte-Carlo error; the coupled sampler's laws."""

import itertools

import numpy as np
import pytest
import torch

from sgdbayes.noise.convex import least_squares_problem, sampling_factor, sgd_excess_chains, stationary_excess
from sgdbayes.noise.replicas import coupled_batches

pytestmark = pytest.mark.usefixtures("one_thread")


def _enumerated_excess(p, lr, b, scheme, iters=20000):
    """Iterate S ← E_B[(I − ηH_B) S (I − ηH_B)ᵀ + η² m_B m_Bᵀ] with the expectation taken over every possible
    mini-batch (ordered tuples with replacement, subsets without), from S = 0 to its fixed point."""
    x, y, n, d = p.x, p.y, p.n, p.d
    r = y - x @ p.w_star
    batches = list(itertools.product(range(n), repeat=b)) if scheme == "with" else \
        list(itertools.combinations(range(n), b))
    a_list, m_list = [], []
    for bt in batches:
        idx = list(bt)
        hb = x[idx].T @ x[idx] / b
        a_list.append(np.eye(d) - lr * hb)
        m_list.append(x[idx].T @ r[idx] / b)
    a, m = np.stack(a_list), np.stack(m_list)
    noise = np.einsum("bi,bj->ij", m, m) / len(batches)
    s = np.zeros((d, d))
    for _ in range(iters):
        new = np.einsum("bij,jk,blk->il", a, s, a) / len(batches) + lr**2 * noise
        if np.abs(new - s).max() < 1e-16:
            break
        s = new
    return 0.5 * np.trace(p.hessian @ s)


@pytest.mark.parametrize("scheme", ["with", "without"])
def test_exact_excess_equals_enumeration_of_all_batches(scheme):
    p = least_squares_problem(5, 2, seed=3)
    lr, b = 0.3, 3
    assert stationary_excess(p, lr, b, scheme) == pytest.approx(_enumerated_excess(p, lr, b, scheme), rel=1e-9)


def test_chains_match_the_exact_excess_and_the_ratio():
    p = least_squares_problem(20, 3, seed=4)
    lr, b = 0.1, 15
    w, wo = sgd_excess_chains(p, lr=lr, b=b, chains=300, steps=1200, burn_in=200, seed=5)
    for sample, scheme in ((w, "with"), (wo, "without")):
        exact = stationary_excess(p, lr, b, scheme)
        z = (sample.mean() - exact) / (sample.std(ddof=1) / np.sqrt(sample.size))
        assert abs(z) < 4, (scheme, sample.mean(), exact)
    exact_ratio = stationary_excess(p, lr, b, "without") / stationary_excess(p, lr, b, "with")
    assert abs(exact_ratio - sampling_factor(20, b, "without")) < 0.02  # small-η limit: (N − b)/(N − 1)
    assert (wo.mean() / w.mean()) == pytest.approx(exact_ratio, rel=0.08)


def test_sampling_factor_and_bad_input():
    assert sampling_factor(200, 150, "without") == pytest.approx(50 / 199)
    assert sampling_factor(200, 150, "with") == 1.0
    with pytest.raises(ValueError, match="batch size"):
        sampling_factor(10, 11, "with")
    with pytest.raises(ValueError, match="scheme"):
        sampling_factor(10, 5, "sometimes")
    with pytest.raises(FloatingPointError, match="diverges"):
        stationary_excess(least_squares_problem(20, 3, seed=0), 5.0, 5, "with")


def test_coupled_batches_have_the_right_laws_and_overlap():
    n, b, reps = 6, 4, 60000
    gen = torch.Generator().manual_seed(0)
    w, wo = coupled_batches(n, b, reps, gen)
    # with replacement: every draw uniform
    counts = np.bincount(w.flatten().numpy(), minlength=n)
    chi2 = ((counts - reps * b / n) ** 2 / (reps * b / n)).sum()
    assert chi2 < 25  # χ² with 5 dof: P(> 25) ≈ 1e-4
    # without: distinct, and every subset of size b equally likely (15 subsets)
    srt = np.sort(wo.numpy(), axis=1)
    assert (np.diff(srt, axis=1) > 0).all()
    keys, freq = np.unique(srt, axis=0, return_counts=True)
    assert len(keys) == 15
    expected = reps / 15
    assert (((freq - expected) ** 2) / expected).sum() < 40  # χ² with 14 dof: P(> 40) ≈ 2e-4
    # coupling: the sample without replacement holds every distinct index of the one with
    for a, c in zip(w[:200].tolist(), wo[:200].tolist(), strict=True):
        assert set(a) <= set(c)
