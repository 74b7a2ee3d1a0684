"""Statistics of weight trajectories: spectra of increments, autocorrelations with 99% bands, a Brownian control."""

from __future__ import annotations

import numpy as np

from sgdbayes.seed import make_generator

Z99 = 2.5758293035489004  # two-sided 99% normal quantile


def _check(w: np.ndarray, name: str = "trajectory") -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] < 4:
        raise ValueError(f"{name} must be [T >= 4 snapshots, d], got shape {w.shape}")
    if not np.isfinite(w).all():
        raise FloatingPointError(f"{name} holds NaN/inf")
    return w


def increment_spectrum(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrum of the increments ``Δw_t = w_{t+1} − w_t`` of each coordinate, each scaled to unit variance
    (so white noise is flat at 1). Returns ``freq`` (cycles per snapshot, excluding 0), mean and sd over coordinates."""
    w = _check(w)
    dw = np.diff(w, axis=0)
    dw = dw - dw.mean(0)
    sd = dw.std(0)
    dw = dw[:, sd > 0] / sd[sd > 0]
    t = dw.shape[0]
    p = np.abs(np.fft.rfft(dw, axis=0)) ** 2 / t
    f = np.fft.rfftfreq(t)
    return f[1:], p[1:].mean(1), p[1:].std(1)


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation ``[max_lag + 1, d]`` of each column (mean removed, biased estimator, via FFT)."""
    x = _check(x)
    t = x.shape[0]
    if not 1 <= max_lag < t:
        raise ValueError(f"max_lag must be in [1, T={t}), got {max_lag}")
    x = x - x.mean(0)
    nfft = 1 << (2 * t - 1).bit_length()
    fx = np.fft.rfft(x, n=nfft, axis=0)
    ac = np.fft.irfft(fx * np.conj(fx), n=nfft, axis=0)[: max_lag + 1]
    var = ac[0]
    ok = var > 0
    out = np.zeros_like(ac)
    out[:, ok] = ac[:, ok] / var[ok]
    return out


def white_noise_band(t: int) -> float:
    """The 99% band ``±2.576/√T`` of a sample autocorrelation at lag ≥ 1 under white noise."""
    return Z99 / np.sqrt(t)


def brownian_motion(t: int, d: int, *, scale: np.ndarray | float = 1.0, seed: int = 0) -> np.ndarray:
    """``[t, d]`` Brownian paths (Gaussian random walks from 0) with per-coordinate step sd ``scale``."""
    gen = np.random.default_rng(seed if not hasattr(seed, "initial_seed") else make_generator(seed).initial_seed())
    steps = gen.standard_normal((t - 1, d)) * np.asarray(scale)
    return np.concatenate([np.zeros((1, d)), np.cumsum(steps, axis=0)])
