"""The exact posterior over functions of a small network, by importance sampling from the prior.

For prior draws ``u_i ~ N(0, I)`` (whitened parameters, :class:`~sgdbayes.mcmc.FCNPosterior`) with weights
``w_i = Π_n σ(s_n z_n(u_i)/τ)`` — or ``w_i = 1{u_i fits S}`` for ``tau = 0``, which is rejection sampling —

    P_τ(f | S) ≈ Σ_i w_i 1{f(u_i) = f} / Σ_i w_i,

consistent and unbiased in the limit, with the Monte-Carlo error of i.i.d. weighted draws (Kish effective sample
size ``(Σw)²/Σw²``). Usable while P(S) — the prior mass that fits S — is not tiny; it is the reference the MCMC
baseline is tested against on a case small enough for both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sgdbayes.mcmc.functions import weighted_function_table
from sgdbayes.mcmc.network import FCNPosterior
from sgdbayes.seed import make_generator

__all__ = ["WeightedFunctions", "importance_prior"]


@dataclass
class WeightedFunctions:
    """Functions on E with normalised posterior weights: ``keys [K, ⌈n_bits/8⌉]`` (packed, by weight descending),
    ``probs [K]`` (sum 1), ``marginals [n_bits]``, ``ess`` (Kish), ``n_samples`` prior draws."""

    n_bits: int
    keys: np.ndarray
    probs: np.ndarray
    marginals: np.ndarray
    ess: float
    n_samples: int
    tau: float

    def bits(self) -> np.ndarray:
        return np.unpackbits(self.keys, axis=1, count=self.n_bits).astype(bool)

    def stderr(self) -> np.ndarray:
        """Approximate standard error of each probability, √(p(1 − p)/ESS)."""
        return np.sqrt(self.probs * (1 - self.probs) / max(self.ess, 1.0))


def importance_prior(posterior: FCNPosterior, x_test, *, tau: float, n_samples: int, seed: int = 0,
                     chunk: int = 65536) -> WeightedFunctions:
    """P_τ(f|S) on ``x_test [n_E, d]`` from ``n_samples`` prior draws (see the module docstring); ``tau = 0`` is the
    0–1 likelihood."""
    if not (math.isfinite(tau) and tau >= 0):
        raise ValueError(f"tau must be a finite number >= 0, got {tau!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}")
    x_test = torch.as_tensor(np.asarray(x_test)).to(posterior.device, posterior.dtype)
    gen = make_generator(seed, posterior.device)
    s = posterior.s_train
    bits, logw = [], []
    with torch.no_grad():
        for start in range(0, int(n_samples), chunk):
            m = min(chunk, int(n_samples) - start)
            u = posterior.sample_prior(m, gen)
            z = posterior.logits(u)
            if tau == 0:
                lw = torch.where(((z > 0) == (s > 0)).all(1), 0.0, -math.inf).double()
            else:
                lw = -F.softplus(-s * z.double() / tau).sum(1)
            keep = torch.isfinite(lw)
            if keep.any():
                bits.append(posterior.labels(u[keep], x_test).cpu().numpy())
                logw.append(lw[keep].cpu().numpy())
    n_bits = x_test.shape[0]
    if not bits:
        raise ValueError(f"none of {n_samples} prior draws fits S: P(S) is too small for this reference")
    bits_np, lw_np = np.concatenate(bits), np.concatenate(logw)
    w = np.exp(lw_np - lw_np.max())
    keys, mass = weighted_function_table(bits_np, w)
    total = w.sum()
    return WeightedFunctions(n_bits=n_bits, keys=keys, probs=mass / total, marginals=(w @ bits_np) / total,
                             ess=float(total**2 / (w**2).sum()), n_samples=int(n_samples), tau=float(tau))
