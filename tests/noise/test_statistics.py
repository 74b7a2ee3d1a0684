"""Paired statistics against independent implementations and Monte-Carlo coverage."""

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from sgdbayes.noise.statistics import mean_ci, paired_difference, paired_tost, ratio_of_means


def test_mean_ci_equals_scipy_t_interval():
    x = np.random.default_rng(0).normal(1.0, 2.0, 13)
    e = mean_ci(x, level=0.9, null=0.5)
    lo, hi = stats.t.interval(0.9, 12, loc=x.mean(), scale=stats.sem(x))
    assert e.lo == pytest.approx(lo, rel=1e-12) and e.hi == pytest.approx(hi, rel=1e-12)
    assert e.p_value == pytest.approx(stats.ttest_1samp(x, 0.5).pvalue, rel=1e-10)
    d = paired_difference(x, x[::-1])
    assert d.p_value == pytest.approx(stats.ttest_rel(x, x[::-1]).pvalue, rel=1e-10)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.5])
def test_tost_matches_statsmodels_and_the_interval_rule(shift):
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, 20)
    b = a + shift + rng.normal(0, 0.5, 20)
    t = paired_tost(a, b, 1.0, alpha=0.05)
    p_sm = ttost_paired(a, b, -1.0, 1.0)[0]
    assert t.p_value == pytest.approx(p_sm, rel=1e-9)
    assert t.equivalent == (-1.0 < t.lo and t.hi < 1.0)  # TOST at α ⇔ the 1 − 2α interval inside the margin
    assert t.equivalent == (shift < 1.0)  # true differences 0 and 0.3 lie inside ±1, 1.5 outside


def test_tost_rejects_bad_margins():
    with pytest.raises(ValueError, match="margin"):
        paired_tost([1, 2, 3], [1, 2, 3], 0.0)
    with pytest.raises(ValueError, match="same length"):
        paired_tost([1, 2, 3], [1, 2], 0.1)


def test_ratio_of_means_covers_the_true_ratio_at_its_level():
    """Monte-Carlo coverage of the delta-method interval for correlated pairs: 2,000 data sets of 30 pairs with
    ratio 0.25; coverage within 3 binomial sd of 95%."""
    rng = np.random.default_rng(2)
    reps, n, hits = 2000, 30, 0
    for _ in range(reps):
        den = rng.gamma(20, 0.05, n)  # mean 1
        num = 0.25 * den + rng.normal(0, 0.05, n)
        hits += ratio_of_means(num, den).covers(0.25)
    sd = np.sqrt(0.95 * 0.05 / reps)
    assert abs(hits / reps - 0.95) < 3 * sd
    with pytest.raises(ValueError, match="denominator"):
        ratio_of_means([1.0, 2.0, 3.0], [1.0, -1.0, 0.1])
