"""Gaussian-process classification by Expectation Propagation, and the Bayesian posterior P_B(f|S).

- :func:`ep` — EP for binary GP classification (probit or step likelihood), batched over labellings.
- :func:`log_pb` — ``log P_B(f | S)`` for many test labellings ``f`` at once (full ratio or two-stage form).
- :func:`sample_gp_rejection`, :func:`elliptical_slice` — the exact GP posterior under the 0–1 likelihood, sampled
  (what EP approximates).
"""

from sgdbayes.gp.ep import EPConvergenceError, EPResult, ep
from sgdbayes.gp.log_pb import LogPBResult, log_pb
from sgdbayes.gp.sampling import ESSError, ESSResult, elliptical_slice, sample_gp_rejection

__all__ = ["EPConvergenceError", "EPResult", "ESSError", "ESSResult", "LogPBResult", "ep",
           "elliptical_slice", "log_pb", "sample_gp_rejection"]
