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


def moving_coordinates(w: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    """Mask of the coordinates whose increments are not negligible: sd above ``rel`` × the median sd. (A weight with
    an exactly-zero gradient still moves by rounding noise in float32; normalised to unit variance, that noise would
    look like a white-noise coordinate.)"""
    sd = np.diff(np.asarray(w, dtype=np.float64), axis=0).std(0)
    return sd > rel * np.median(sd[sd > 0]) if (sd > 0).any() else sd > 0


def increment_spectrum(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrum of the increments ``Δw_t = w_{t+1} − w_t`` of each moving coordinate
    (:func:`moving_coordinates`), each scaled to unit variance (so white noise is flat at 1). Returns ``freq``
    (cycles per snapshot, excluding 0), mean and sd over coordinates."""
    w = _check(w)
    keep = moving_coordinates(w)
    dw = np.diff(w[:, keep], axis=0)
    dw = dw - dw.mean(0)
    dw = dw / dw.std(0)
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


def low_frequency_power(freq: np.ndarray, power: np.ndarray, f_max: float) -> float:
    """Mean of a normalised increment spectrum (:func:`increment_spectrum`, white noise = 1) below ``f_max``."""
    freq, power = np.asarray(freq), np.asarray(power)
    keep = freq < f_max
    if not keep.any():
        raise ValueError(f"no frequency below f_max = {f_max}; the lowest is {freq.min():.3g} (a longer trajectory "
                         "resolves lower frequencies)")
    return float(power[keep].mean())


def outside_band_fraction(acf: np.ndarray, band: float, lags: slice = slice(1, None)) -> float:
    """Fraction of the autocorrelations ``acf [lags, d]`` at the lags selected that lie outside ``±band``."""
    a = np.asarray(acf)[lags]
    if a.size == 0:
        raise ValueError("no lag selected")
    return float((np.abs(a) > band).mean())


def reversible_control(eigenvalues: np.ndarray, eigenvectors: np.ndarray, *, lr: np.ndarray, momentum: float,
                       noise_factor: float, steps_per_epoch: int, seed: int = 0) -> np.ndarray:
    """An equilibrium control for a weight trajectory: SGD with the same learning rates, momentum and mini-batch
    noise, on the quadratic whose Hessian equals the measured noise covariance ``D`` (the Fisher/Gauss–Newton
    approximation near a minimum, ``H ≈ D``).

    Because the Hessian and ``D`` commute, the process has no antisymmetric part (``Q = 0``): detailed balance holds,
    ``Φ = f`` and there are no cycles. In the eigenbasis of ``D`` each mode ``i`` is an independent scalar chain:
    ``g = λ_i z_i + √(λ_i · noise_factor) ξ``, ``v ← μ v + g``, ``z ← z − η v`` (PyTorch's heavy ball), started at
    ``z = 0`` (the trajectory's first point) with ``ξ ~ N(0, 1)``; ``noise_factor`` is the per-step variance
    factor of a mini-batch mean (``1/b``, or ``(N − b)/(b(N − 1))`` without replacement).

    Args:
        eigenvalues: ``[R, r]`` eigenvalues of ``D`` (zeros allowed) for ``R`` replicas.
        eigenvectors: ``[R, d, r]`` the matching orthonormal eigenvectors.
        lr: ``[epochs]`` the learning rate of each epoch.
    Returns:
        ``[epochs, R, d]``: the position relative to the start at the end of each epoch.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    vec = np.asarray(eigenvectors, dtype=np.float64)
    lr = np.asarray(lr, dtype=np.float64)
    if lam.ndim != 2 or vec.ndim != 3 or vec.shape[0] != lam.shape[0] or vec.shape[2] != lam.shape[1]:
        raise ValueError(f"eigenvalues must be [R, r] and eigenvectors [R, d, r]; got {lam.shape} and {vec.shape}")
    if (lam < 0).any() or not noise_factor > 0 or not 0 <= momentum < 1 or steps_per_epoch < 1 or (lr <= 0).any():
        raise ValueError("need eigenvalues >= 0, noise_factor > 0, 0 <= momentum < 1, steps_per_epoch >= 1, lr > 0")
    gen = np.random.default_rng(seed)
    z = np.zeros_like(lam)
    v = np.zeros_like(lam)
    sd = np.sqrt(lam * noise_factor)
    out = np.empty((lr.size, lam.shape[0], vec.shape[1]))
    first = True
    for e, eta in enumerate(lr):
        for _ in range(steps_per_epoch):
            g = lam * z + sd * gen.standard_normal(lam.shape)
            v = g if first else momentum * v + g
            first = False
            z = z - eta * v
        if not np.isfinite(z).all():
            raise FloatingPointError(f"the control diverged in epoch {e}: η λ_max is too large for the momentum")
        out[e] = np.einsum("rdk,rk->rd", vec, z)
    return out
