"""Reference posteriors, BBVI and VEM against exact answers."""

import numpy as np
import pytest
import torch

from sgdbayes.ou.models import LinearRegression, LogisticRegression, SoftmaxRegression
from sgdbayes.ou.posteriors import bbvi, laplace_posterior, linear_regression_posterior, nuts_samples
from sgdbayes.ou.theory import gaussian_kl
from sgdbayes.ou.vem import map_estimate, vem_prior_precision


def _linear(n=200, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, X @ rng.normal(size=d) + 0.5 * rng.normal(size=n)


def test_exact_linear_posterior_against_naive():
    X, y = _linear()
    mean, cov = linear_regression_posterior(X, y, noise_var=0.25, prior_precision=2.0)
    prec = X.T @ X / 0.25 + 2.0 * np.eye(3)
    np.testing.assert_allclose(cov, np.linalg.inv(prec), rtol=1e-10)
    np.testing.assert_allclose(mean, np.linalg.inv(prec) @ X.T @ y / 0.25, rtol=1e-10)
    m2, c2 = laplace_posterior(LinearRegression(X, y, noise_var=0.25, prior_precision=2.0))
    np.testing.assert_allclose(m2, mean, rtol=1e-8)
    np.testing.assert_allclose(c2, cov, rtol=1e-8)
    with pytest.raises(ValueError, match="NaN"):
        linear_regression_posterior(np.where(X > 2, np.nan, X), y)


def test_bbvi_recovers_exact_linear_posterior():
    X, y = _linear(n=100, d=2)
    mean, cov = linear_regression_posterior(X, y)
    q = bbvi(LinearRegression(X, y), family="full", n_steps=1200, lr=0.03, n_mc=32, seed=0)
    assert gaussian_kl(mean, cov, q.mean, q.cov) < 0.02
    # mean-field: the exact KL(q‖p) optimum has q's precision = diag of the posterior precision
    qm = bbvi(LinearRegression(X, y), family="meanfield", n_steps=1200, lr=0.03, n_mc=32, seed=0)
    np.testing.assert_allclose(qm.var, 1 / np.diag(np.linalg.inv(cov)), rtol=0.1)


@pytest.mark.slow
def test_nuts_matches_laplace_on_well_determined_logistic():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = (rng.random(400) < 1 / (1 + np.exp(-X @ np.array([1.0, -0.5])))).astype(float)
    model = LogisticRegression(X, y)
    m, c = laplace_posterior(model)
    d = nuts_samples(model, num_samples=300, warmup=150, seed=0)
    sd = np.sqrt(np.diag(c))
    assert np.all(np.abs(d.mean(0) - m) < 0.3 * sd)                 # N = 400: Laplace nearly exact
    np.testing.assert_allclose(np.sqrt(np.diag(np.cov(d.T))), sd, rtol=0.2)


def test_vem_recovers_prior_precision_of_generating_model():
    """Data drawn with θ ~ N(0, λ⁻¹I): with N ≫ P the empirical-Bayes λ ≈ P / |θ_true|² (the oracle)."""
    rng = np.random.default_rng(1)
    D, K, N, lam_true = 3, 3, 3000, 0.5
    theta = rng.normal(size=(D, K)) / np.sqrt(lam_true)
    X = rng.normal(size=(N, D))
    logits = X @ theta
    p = np.exp(logits - logits.max(1, keepdims=True))
    y = (p.cumsum(1) / p.sum(1, keepdims=True) < rng.random((N, 1))).sum(1)
    model = SoftmaxRegression(X, y, n_classes=K, prior_precision=1.0)
    mode = map_estimate(model)
    r = vem_prior_precision(model, eps=0.5, S=20, n_chains=16, n_steps=1500, init=mode, rho0=0.1, seed=0)
    oracle = D * K / (theta**2).sum()
    assert r.prior_precision == pytest.approx(oracle, rel=0.25)
    assert np.isfinite(r.trace).all()
    with pytest.raises(ValueError):
        vem_prior_precision(model, eps=-1.0, S=1)
