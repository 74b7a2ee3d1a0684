"""Site updates of EP for binary GP classification: the probit and the step (Heaviside) likelihood.

Both likelihoods are ``p(y | f) = Φ(y (f + b) / √c)`` in the limit sense: ``c = 1`` is the probit
``Φ(y (f + b))`` and ``c → 0`` the step ``1[y (f + b) > 0]``; ``b`` is a per-site offset (a prior mean moved into the
likelihood, so that EP itself always runs on a zero-mean prior). For a Gaussian cavity ``N(f; μ₋, σ²₋)`` the tilted
distribution ``N(f; μ₋, σ²₋) p(y | f)`` has (GPML eqs. 3.58, 3.82 with the "1 +" replaced by ``c +``)

    z = y (μ₋ + b) / s,   s² = c + σ²₋,   Ẑ = Φ(z),   r = φ(z) / Φ(z),
    μ̂ = μ₋ + y σ²₋ r / s,   σ̂² = σ²₋ (1 − ρ w),   ρ = σ²₋ / s²,   w = r (z + r) = 1 − v,

where ``v = 1 − r (z + r)`` is the variance of a standard normal truncated to ``t > −z``. Everything here is written so
that no difference of nearly equal numbers is formed: ``r`` comes from ``erfcx`` (exact for all ``z``), ``v`` for
``z < −5`` from Laplace's continued fraction of the Mills ratio (where ``1 − r (z + r)`` would cancel), and the new
site parameters ``τ̃ = 1/σ̂² − τ₋``, ``ν̃ = μ̂/σ̂² − ν₋`` are expanded into sums of non-negative terms:

    D = (1 − ρ) + ρ v,   τ̃ = τ₋ ρ w / D,   ν̃ = μ₋ τ̃ + y r / (s D).

Both likelihoods are log-concave, so ``τ̃ ≥ 0`` always.
"""

from __future__ import annotations

import math

import torch

LIKELIHOODS = {"probit": 1.0, "step": 0.0}
"""Likelihood name → the constant ``c`` in ``s² = c + σ²₋``."""

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_CF_SWITCH = 5.0  # use the continued fraction for z < -_CF_SWITCH
_CF_TERMS = 60  # enough for full float64 precision at x >= 5 (checked against mpmath in the tests)


def likelihood_constant(likelihood: str) -> float:
    """``c`` for a likelihood name; a clear ``ValueError`` for anything else."""
    try:
        return LIKELIHOODS[likelihood]
    except (KeyError, TypeError):
        raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {likelihood!r}") from None


def truncated_normal_moments(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean ``r``, variance ``v`` and ``w = 1 − v`` of a standard normal truncated to ``t > −z``.

    ``r = φ(z)/Φ(z)``, ``v = 1 − r (z + r)``; all three have full relative precision for every finite ``z``
    (``v ≈ 1/z²`` as ``z → −∞``, ``w ≈ z φ(z)`` as ``z → +∞``). Shapes follow ``z``.
    """
    # r from erfcx: Φ(z) = ½ exp(−z²/2) erfcx(−z/√2), so r = √(2/π) / erfcx(−z/√2) (→ 0 correctly for z → +∞).
    r = _SQRT_2_OVER_PI / torch.special.erfcx(-z * math.sqrt(0.5))
    w = r * (z + r)
    v = 1.0 - w
    far = z < -_CF_SWITCH
    if bool(far.any()):
        # Laplace: Q(x)/φ(x) = 1/(x + u₁), u_k = k/(x + u_{k+1}); then r = x + u₁ and v = u₁ (u₂ − u₁), x = −z.
        x = -z.clamp(max=-_CF_SWITCH)
        u = torch.zeros_like(x)
        u2 = u
        for k in range(_CF_TERMS, 0, -1):
            u2, u = u, k / (x + u)
        v_far = u * (u2 - u)
        r = torch.where(far, x + u, r)
        v = torch.where(far, v_far, v)
        w = torch.where(far, 1.0 - v_far, w)
    return r, v, w


def site_update(
    tau_cav: torch.Tensor,
    nu_cav: torch.Tensor,
    y: torch.Tensor,
    offset: torch.Tensor | float,
    c: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moment-matched sites for cavities ``N(ν₋/τ₋, 1/τ₋)`` (natural parameters, ``τ₋ > 0``).

    Returns ``(log Ẑ, τ̃, ν̃)``: the log normaliser of the tilted distribution and the new site precision and
    precision-times-mean, all of the broadcast shape of the inputs. ``c = 1`` probit, ``c = 0`` step.
    """
    var_cav = 1.0 / tau_cav
    mu_cav = nu_cav * var_cav
    s2 = c + var_cav
    s = torch.sqrt(s2)
    z = y * (mu_cav + offset) / s
    log_zhat = torch.special.log_ndtr(z)
    r, v, w = truncated_normal_moments(z)
    if c == 0.0:
        rho, one_minus_rho = torch.ones_like(s2), torch.zeros_like(s2)
    else:
        rho = var_cav / s2  # = 1/(1 + c τ₋)
        one_minus_rho = c / s2
    d = one_minus_rho + rho * v
    tau_site = tau_cav * rho * w / d
    nu_site = mu_cav * tau_site + y * r / (s * d)
    return log_zhat, tau_site, nu_site
