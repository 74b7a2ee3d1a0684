"""Convergence diagnostics for many chains: rank-normalised split R̂ and effective sample sizes.

Definitions follow Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), "Rank-normalization, folding, and
localization: an improved R̂ for assessing convergence of MCMC" (Bayesian Analysis 16(2)), as implemented in Stan
and ArviZ:

- each of the C chains of length T is split in halves (2C chains of length ⌊T/2⌋);
- *split R̂* = √(var⁺/W), var⁺ = (T−1)/T · W + B/T, with W the mean within-chain variance and B/T the variance of
  the chain means;
- *rank-normalised* R̂: the same on z-scores of the pooled ranks (Φ⁻¹((r − 3/8)/(S + 1/4))), and on the ranks of
  |x − median| ("folded", sensitive to a difference in scale); the reported R̂ is the larger of the two;
- *ESS* from the chains' averaged autocorrelation ρ̂_t = 1 − (W − mean autocov_t)/var⁺, summed with Geyer's initial
  monotone sequence of pair sums; ``ess_bulk`` is that of the rank-normalised draws.

A quantity that is constant over all draws has no defined R̂ (returned as NaN); one constant within every chain but
different between chains gets R̂ = inf: it has not mixed at all.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

__all__ = ["ess", "ess_bulk", "rank_normalize", "rhat", "split_chains", "split_rhat"]


def _as_chains(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 4:
        raise ValueError(f"draws must be [chains >= 1, draws >= 4], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("draws contain NaN or inf; diagnostics need finite values")
    return x


def split_chains(x) -> np.ndarray:
    """``[C, T]`` → ``[2C, ⌊T/2⌋]``: each chain's first and second half (the middle draw dropped when T is odd)."""
    x = _as_chains(x)
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, -half:]], axis=0)


def _rhat_core(x: np.ndarray) -> float:
    n = x.shape[1]
    means = x.mean(1)
    W = x.var(1, ddof=1).mean()
    B_over_n = means.var(ddof=1)
    if W <= 1e-12 * max(B_over_n, np.finfo(np.float64).tiny):  # constant within every chain (up to rounding)
        return float("nan") if B_over_n == 0 else float("inf")
    var_plus = (n - 1) / n * W + B_over_n
    return float(np.sqrt(var_plus / W))


def split_rhat(x) -> float:
    """Classic split R̂ of draws ``[C, T]`` (no rank normalisation)."""
    return _rhat_core(split_chains(x))


def rank_normalize(x) -> np.ndarray:
    """Normal scores of the pooled ranks (average ranks for ties), same shape as ``x``."""
    x = np.asarray(x, dtype=np.float64)
    r = rankdata(x, method="average").reshape(x.shape)
    return ndtri((r - 0.375) / (x.size + 0.25))


def rhat(x) -> float:
    """Rank-normalised split R̂ of draws ``[C, T]``: max of the bulk and the folded versions (Vehtari et al. 2021).
    Values above ~1.01 (a strict bar) or 1.05 signal chains that have not mixed."""
    s = split_chains(x)
    if np.ptp(s) == 0:
        return float("nan")
    bulk = _rhat_core(rank_normalize(s))
    folded = _rhat_core(rank_normalize(np.abs(s - np.median(s))))
    return float(np.nanmax([bulk, folded]))


def _autocov(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance of each row at lags 0 … n−1 (FFT)."""
    n = x.shape[1]
    xc = x - x.mean(1, keepdims=True)
    m = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(xc, n=m, axis=1)
    return np.fft.irfft(f * np.conj(f), n=m, axis=1)[:, :n] / n


def ess(x, *, split: bool = True) -> float:
    """Effective sample size of draws ``[C, T]`` (split chains by default), Stan's estimator: the averaged
    autocorrelation summed up to the first negative pair sum, made monotone. Capped at C·T·log10(C·T) as Stan does."""
    x = split_chains(x) if split else _as_chains(x)
    c, n = x.shape
    if np.ptp(x) == 0:
        return float("nan")
    acov = _autocov(x)
    W = acov[:, 0].mean() * n / (n - 1)
    var_plus = W * (n - 1) / n + (x.mean(1).var(ddof=1) if c > 1 else 0.0)
    if var_plus == 0:
        return float("nan")
    rho = 1.0 - (W - acov.mean(0)) / var_plus
    rho[0] = 1.0
    # Geyer: pair sums P_k = ρ_{2k} + ρ_{2k+1}, keep while positive, make non-increasing
    n_pairs = n // 2
    pairs = rho[: 2 * n_pairs].reshape(n_pairs, 2).sum(1)
    stop = np.flatnonzero(pairs <= 0)
    k = stop[0] if stop.size else n_pairs
    pairs = np.minimum.accumulate(pairs[:k]) if k else pairs[:0]
    tau = -1.0 + 2.0 * pairs.sum()
    tau = max(tau, 1.0 / np.log10(c * n))
    return float(c * n / tau)


def ess_bulk(x) -> float:
    """Bulk ESS: :func:`ess` of the rank-normalised split draws."""
    x = _as_chains(x)
    if np.ptp(x) == 0:
        return float("nan")
    return ess(rank_normalize(x), split=True)
