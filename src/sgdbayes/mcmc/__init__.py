"""A parameter-space Bayesian baseline: MCMC on the finite network's own posterior.

- :class:`FCNPosterior`: the posterior of an FCN with the initialisation prior and a logistic likelihood of
  temperature τ (→ the 0–1 likelihood as τ → 0), in whitened coordinates, many chains at once.
- :func:`hmc`: batched Hamiltonian Monte Carlo with an annealed temperature and per-chain step adaptation.
- :mod:`~sgdbayes.mcmc.diagnostics`: rank-normalised split R̂ and effective sample sizes.
- :func:`importance_prior`: the exact (Monte-Carlo) posterior over functions of a small case by importance
  sampling from the prior — the reference the sampler is tested against.
"""

from sgdbayes.mcmc.diagnostics import ess, ess_bulk, rhat, split_rhat
from sgdbayes.mcmc.hmc import HMCTrace, hmc
from sgdbayes.mcmc.network import FCNPosterior

__all__ = ["FCNPosterior", "HMCTrace", "ess", "ess_bulk", "hmc", "rhat", "split_rhat"]
