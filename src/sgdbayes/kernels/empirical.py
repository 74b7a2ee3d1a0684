"""Monte-Carlo NNGP: the kernel as an average over randomly initialised finite networks, with its standard error.

For one network with last-layer features ``Φ(x) ∈ R^N`` and a linear readout ``f = w·Φ/√N·σ_w + b`` drawn from the
prior, ``E_readout[f(x) f(x′)] = σ_b² + σ_w² Φ(x)·Φ(x′)/N`` exactly; averaging that over ``n_samples`` independent
draws of the hidden weights gives an unbiased estimate of the finite-width kernel, which tends to the NNGP as the
width N → ∞ (bias O(1/N)). Integrating the readout out analytically (Rao–Blackwellisation) lowers the variance and
changes nothing else. ``stderr`` is the sample standard deviation of the per-network estimates over √n_samples.

For architectures without a closed form, ``module_nngp`` averages ``f(x) f(x′)ᵀ / k`` over freshly built
``torch.nn.Module`` networks with ``k`` outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sgdbayes.kernels.cnn import _as_images
from sgdbayes.kernels.fcn import _check_hyper, _check_pair
from sgdbayes.seed import SeedLike, make_generator

__all__ = ["MonteCarloKernel", "empirical_nngp", "mc_nngp_fcn", "mc_nngp_cnn", "module_nngp"]

_PHI = {"relu": torch.relu, "erf": torch.erf}


@dataclass(frozen=True)
class MonteCarloKernel:
    """``mean`` and ``stderr`` ``[n1, n2]`` (float64) of a Monte-Carlo kernel estimate from ``n_samples`` networks."""

    mean: torch.Tensor
    stderr: torch.Tensor
    n_samples: int


def _check_count(name, v, minimum=1):
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")


def empirical_nngp(sample_kernels: Callable[[torch.Tensor, torch.Generator, int], torch.Tensor],
                   x1: torch.Tensor, x2: torch.Tensor | None = None, *, n_samples: int, seed: SeedLike = 0,
                   batch: int = 16) -> MonteCarloKernel:
    """Average per-network kernel estimates.

    ``sample_kernels(x, generator, m)`` draws ``m`` independent networks and returns their kernel estimates on all
    rows of ``x`` as ``[m, n, n]``. ``x`` is ``x1`` or ``cat(x1, x2)``; networks are drawn ``batch`` at a time.
    Running mean and squared deviations are merged batch-wise (Chan et al.), in float64.
    """
    _check_count("n_samples", n_samples, 2)
    _check_count("batch", batch)
    n1 = x1.shape[0]
    x = x1 if x2 is None else torch.cat([x1, x2], 0)
    gen = make_generator(seed, x.device)
    count, mean, m2 = 0, None, None
    done = 0
    while done < n_samples:
        m = min(batch, n_samples - done)
        ks = sample_kernels(x, gen, m).to(torch.float64)
        if not bool(torch.isfinite(ks).all()):
            raise FloatingPointError("a sampled network produced a non-finite kernel estimate")
        b_mean = ks.mean(0)
        b_m2 = ((ks - b_mean) ** 2).sum(0)
        if mean is None:
            mean, m2 = b_mean, b_m2
        else:
            delta = b_mean - mean
            tot = count + m
            mean = mean + delta * (m / tot)
            m2 = m2 + b_m2 + delta**2 * (count * m / tot)
        count += m
        done += m
    stderr = torch.sqrt(m2 / (count - 1) / count)
    if x2 is not None:
        mean, stderr = mean[:n1, n1:], stderr[:n1, n1:]
    return MonteCarloKernel(mean=mean, stderr=stderr, n_samples=count)


def _normal(shape, std, gen, like):
    return torch.randn(shape, generator=gen, dtype=torch.float64, device=like.device) * std


def mc_nngp_fcn(x1: torch.Tensor, x2: torch.Tensor | None = None, *, depth: int, width: int, sigma_w: float,
                sigma_b: float, nonlinearity: str = "relu", n_samples: int = 64, seed: SeedLike = 0,
                batch: int = 8) -> MonteCarloKernel:
    """Monte-Carlo NNGP of random FCNs ``d → width × depth → readout`` (same prior as ``nngp_fcn``)."""
    _check_hyper(depth, sigma_w, sigma_b, nonlinearity)
    _check_count("width", width)
    x1, x2 = _check_pair(x1, x2)
    phi = _PHI[nonlinearity]
    sw, sb = float(sigma_w), float(sigma_b)

    def sample(x, gen, m):
        h = x.expand(m, *x.shape)                                       # [m, n, fan_in]
        for _ in range(depth):
            fan_in = h.shape[-1]
            w = _normal((m, fan_in, width), sw / math.sqrt(fan_in), gen, x)
            b = _normal((m, 1, width), sb, gen, x)
            h = phi(torch.baddbmm(b, h, w))
        return sb**2 + sw**2 * torch.bmm(h, h.transpose(1, 2)) / h.shape[-1]

    return empirical_nngp(sample, x1, x2, n_samples=n_samples, seed=seed, batch=batch)


def mc_nngp_cnn(x1: torch.Tensor, x2: torch.Tensor | None = None, *, depth: int, channels: int, sigma_w: float,
                sigma_b: float, nonlinearity: str = "relu", kernel_size: int = 3, padding: str = "same",
                image_shape: tuple[int, int, int] | None = None, n_samples: int = 64, seed: SeedLike = 0,
                batch: int = 8) -> MonteCarloKernel:
    """Monte-Carlo NNGP of random CNNs (``depth`` conv + φ layers of ``channels``, dense readout), the prior of
    ``nngp_cnn``; ``batch`` networks at a time as one grouped convolution."""
    _check_hyper(depth, sigma_w, sigma_b, nonlinearity)
    _check_count("channels", channels)
    if padding not in ("same", "valid"):
        raise ValueError(f"unknown padding {padding!r}; allowed: same, valid")
    x1, x2 = _check_pair(x1, x2, ndim=(2, 4))
    x1 = _as_images(x1, image_shape, "x1")
    x2 = None if x2 is None else _as_images(x2, image_shape, "x2")
    phi = _PHI[nonlinearity]
    sw, sb = float(sigma_w), float(sigma_b)
    pad = kernel_size // 2 if padding == "same" else 0

    def sample(x, gen, m):
        n, c = x.shape[:2]
        h = x.repeat(1, m, 1, 1)                                          # [n, m·c, H, W]
        for _ in range(depth):
            fan_in = c * kernel_size**2
            w = _normal((m * channels, c, kernel_size, kernel_size), sw / math.sqrt(fan_in), gen, x)
            b = _normal((m * channels,), sb, gen, x)
            h = phi(F.conv2d(h, w, b, padding=pad, groups=m))
            c = channels
        feats = h.reshape(n, m, -1)                                       # [n, m, c·H′·W′]
        return sb**2 + sw**2 * torch.einsum("imf,jmf->mij", feats, feats) / feats.shape[-1]

    return empirical_nngp(sample, x1, x2, n_samples=n_samples, seed=seed, batch=batch)


def module_nngp(make_net: Callable[[torch.Generator], torch.nn.Module], x1: torch.Tensor,
                x2: torch.Tensor | None = None, *, n_samples: int, seed: SeedLike = 0) -> MonteCarloKernel:
    """Monte-Carlo NNGP of any architecture: ``make_net(generator)`` returns a freshly initialised module mapping
    ``[n, ...]`` to ``[n, k]``; each network contributes ``f fᵀ / k``. Evaluated without gradients."""

    def sample(x, gen, m):
        out = []
        with torch.no_grad():
            for _ in range(m):
                f = make_net(gen)(x).to(torch.float64)
                if f.dim() == 1:
                    f = f[:, None]
                out.append(f @ f.T / f.shape[1])
        return torch.stack(out)

    return empirical_nngp(sample, x1, x2, n_samples=n_samples, seed=seed, batch=1)
