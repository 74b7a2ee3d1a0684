"""Gaussian-process classification by Expectation Propagation, and the Bayesian posterior P_B(f|S).

- :func:`ep` — EP for binary GP classification (probit or step likelihood), batched over labellings.
- :func:`log_pb` — ``log P_B(f | S)`` for many test labellings ``f`` at once (full ratio, two-stage form, or the
  MSE-matching regression posterior ``method="mse_regression"``).
- :func:`regression_posterior`, :func:`zero_one_posterior` → :class:`LatentGaussian`: the Gaussian on the test
  latents under either posterior, with per-point probabilities, entropies, the majority labelling, expected errors
  and :func:`log_orthant` for the probability of any labelling.
- :func:`sample_gp_rejection`, :func:`elliptical_slice` — the exact GP posterior under the 0–1 likelihood, sampled
  (what EP approximates).
"""

from sgdbayes.gp.ep import EPConvergenceError, EPResult, ep
from sgdbayes.gp.log_pb import LogPBResult, log_pb
from sgdbayes.gp.posterior import (
    TARGETS,
    LatentGaussian,
    as_pm1,
    log_orthant,
    regression_posterior,
    zero_one_posterior,
)
from sgdbayes.gp.sampling import ESSError, ESSResult, elliptical_slice, sample_gp_rejection

__all__ = [
    "TARGETS",
    "EPConvergenceError",
    "EPResult",
    "ESSError",
    "ESSResult",
    "LatentGaussian",
    "LogPBResult",
    "as_pm1",
    "elliptical_slice",
    "ep",
    "log_orthant",
    "log_pb",
    "regression_posterior",
    "sample_gp_rejection",
    "zero_one_posterior",
]
