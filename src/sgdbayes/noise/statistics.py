"""Small, exact statistical tools for the chapter's measurements: confidence intervals, a paired equivalence test
(TOST), a paired difference test and the ratio of two paired means.

Every function takes plain arrays of independent units (replicas, chains, particles) and returns a frozen dataclass
of floats, so results can be cached and recorded as they are. Intervals are Student-t intervals; the ratio uses the
delta method (Fieller's interval agrees with it to first order when the denominator is far from zero, which
:func:`ratio_of_means` checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Estimate", "Tost", "mean_ci", "paired_difference", "paired_tost", "ratio_of_means"]


def _units(name: str, x, min_n: int = 2) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size < min_n:
        raise ValueError(f"{name} needs at least {min_n} independent units, got {a.size}")
    if not np.isfinite(a).all():
        raise FloatingPointError(f"{name} holds {int((~np.isfinite(a)).sum())} NaN/inf values")
    return a


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return float(level)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error and a two-sided ``level`` confidence interval ``[lo, hi]``;
    ``p_value`` tests ``value == null`` (two-sided) and ``n`` counts the independent units."""

    value: float
    se: float
    lo: float
    hi: float
    level: float
    n: int
    null: float = 0.0
    p_value: float = float("nan")

    def covers(self, x: float) -> bool:
        return self.lo <= x <= self.hi

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.lo:.4g}, {self.hi:.4g}]"


def _t_estimate(value: float, se: float, n: int, level: float, null: float = 0.0) -> Estimate:
    df = n - 1
    q = float(stats.t.ppf(0.5 + level / 2, df))
    if se > 0:
        p = float(2 * stats.t.sf(abs(value - null) / se, df))
    else:
        p = 0.0 if value != null else 1.0
    return Estimate(value=float(value), se=float(se), lo=float(value - q * se), hi=float(value + q * se),
                    level=level, n=n, null=float(null), p_value=p)


def mean_ci(x, *, level: float = 0.95, null: float = 0.0) -> Estimate:
    """Mean of independent units with its t interval and the two-sided p-value against ``null``."""
    a = _units("mean_ci", x)
    level = _check_level(level)
    return _t_estimate(float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size)), a.size, level, null)


def paired_difference(a, b, *, level: float = 0.95) -> Estimate:
    """Mean of ``a − b`` over paired units (paired t test against 0)."""
    x, y = _units("paired_difference a", a), _units("paired_difference b", b)
    if x.shape != y.shape:
        raise ValueError(f"paired samples must have the same length, got {x.size} and {y.size}")
    return mean_ci(x - y, level=level)


@dataclass(frozen=True)
class Tost:
    """Two one-sided tests of ``|mean(a − b)| < margin`` (equivalence).

    ``p_value`` is the larger of the two one-sided p-values; ``equivalent`` is ``p_value < alpha``, which holds
    exactly when the ``1 − 2α`` interval ``[lo, hi]`` lies inside ``(−margin, margin)``.
    """

    difference: float
    se: float
    lo: float
    hi: float
    margin: float
    alpha: float
    p_lower: float
    p_upper: float
    n: int

    @property
    def p_value(self) -> float:
        return max(self.p_lower, self.p_upper)

    @property
    def equivalent(self) -> bool:
        return self.p_value < self.alpha


def paired_tost(a, b, margin: float, *, alpha: float = 0.05) -> Tost:
    """Paired TOST: H0 ``mean(a − b) ≤ −margin`` or ``≥ margin`` against H1 ``|mean(a − b)| < margin``."""
    x, y = _units("paired_tost a", a), _units("paired_tost b", b)
    if x.shape != y.shape:
        raise ValueError(f"paired samples must have the same length, got {x.size} and {y.size}")
    if not margin > 0 or not math.isfinite(margin):
        raise ValueError(f"the equivalence margin must be a finite number > 0, got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    d = x - y
    n = d.size
    m = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n))
    df = n - 1
    if se > 0:
        p_lower = float(stats.t.sf((m + margin) / se, df))  # H0: mean <= -margin
        p_upper = float(stats.t.cdf((m - margin) / se, df))  # H0: mean >= +margin
    else:
        p_lower = 0.0 if m > -margin else 1.0
        p_upper = 0.0 if m < margin else 1.0
    q = float(stats.t.ppf(1 - alpha, df))
    return Tost(difference=m, se=se, lo=m - q * se, hi=m + q * se, margin=float(margin), alpha=float(alpha),
                p_lower=p_lower, p_upper=p_upper, n=n)


def ratio_of_means(num, den, *, level: float = 0.95, null: float = 1.0) -> Estimate:
    """``mean(num) / mean(den)`` over paired units, with a delta-method t interval.

    Its variance is ``(s_n² − 2R s_nd + R² s_d²) / (n · mean(den)²)``; the interval is refused (ValueError) when the
    denominator's mean is within two standard errors of zero, where the ratio is not normally distributed.
    """
    x, y = _units("ratio_of_means num", num), _units("ratio_of_means den", den)
    if x.shape != y.shape:
        raise ValueError(f"paired samples must have the same length, got {x.size} and {y.size}")
    level = _check_level(level)
    n = x.size
    mx, my = float(x.mean()), float(y.mean())
    se_den = float(y.std(ddof=1) / math.sqrt(n))
    if abs(my) <= 2 * se_den:
        raise ValueError(f"the denominator's mean {my:.3g} is within two standard errors ({se_den:.3g}) of zero; "
                         "the ratio has no useful interval")
    r = mx / my
    c = np.cov(x, y, ddof=1)
    var = (c[0, 0] - 2 * r * c[0, 1] + r * r * c[1, 1]) / (n * my * my)
    return _t_estimate(r, math.sqrt(max(var, 0.0)), n, level, null)
