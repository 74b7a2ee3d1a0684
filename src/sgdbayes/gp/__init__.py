"""Gaussian-process classification by Expectation Propagation, and the Bayesian posterior P_B(f|S).

- :func:`ep` — EP for binary GP classification (probit or step likelihood), batched over labellings.
- :func:`log_pb` — ``log P_B(f | S)`` for many test labellings ``f`` at once (full ratio or two-stage form).
"""

from sgdbayes.gp.ep import EPConvergenceError, EPResult, ep
from sgdbayes.gp.log_pb import LogPBResult, log_pb

__all__ = ["EPConvergenceError", "EPResult", "LogPBResult", "ep", "log_pb"]
