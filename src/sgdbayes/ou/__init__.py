"""Constant SGD as approximate Bayesian inference (Mandt, Hoffman & Blei 2017): Lyapunov theory of the stationary law
(:mod:`~sgdbayes.ou.theory`), vectorised chains of SGD/momentum/SGLD/SGFS (:mod:`~sgdbayes.ou.chains`), reference
posteriors and BBVI (:mod:`~sgdbayes.ou.posteriors`), variational EM for a prior precision (:mod:`~sgdbayes.ou.vem`)."""

from sgdbayes.ou.theory import (  # noqa: F401
    StabilityWarning,
    gaussian_kl,
    kl_to_posterior,
    lyapunov_covariance,
    momentum_covariance,
    optimal_learning_rate,
    optimal_preconditioner,
    sgfs_covariance,
    sgfs_optimal_preconditioner,
    sgld_covariance,
    stability_limit,
    stationary_covariance,
)
