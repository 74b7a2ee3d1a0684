"""Reference posteriors, BBVI and VEM against exact answers."""

import numpy as np
import pytest
import torch

from sgdbayes.ou.models import LinearRegression, LogisticRegression, SoftmaxRegression
from sgdbayes.ou.posteriors import bbvi, laplace_posterior, nuts
from sgdbayes.ou.theory import gaussian_kl
from sgdbayes.ou.vem import map_estimate, vem_prior_precision


def _linear(n=200, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, X @ rng.normal(size=d) + 0.5 * rng.normal(size=n)


def test_exact_linear_posterior_against_naive():
    X, y = _linear()
    model = LinearRegression(X, y, noise_var=0.25, prior_precision=2.0)
    mean, cov = model.posterior()
    prec = X.T @ X / 0.25 + 2.0 * np.eye(3)
    np.testing.assert_allclose(cov, np.linalg.inv(prec), rtol=1e-10)
    np.testing.assert_allclose(mean, np.linalg.inv(prec) @ X.T @ y / 0.25, rtol=1e-10)
    m2, c2 = laplace_posterior(model)
    np.testing.assert_allclose(m2, mean, rtol=1e-8)
    np.testing.assert_allclose(c2, cov, rtol=1e-8)
    with pytest.raises(ValueError, match="NaN"):
        LinearRegression(np.where(X > 2, np.nan, X), y)


def test_bbvi_recovers_exact_linear_posterior():
    X, y = _linear(n=100, d=2)
    mean, cov = LinearRegression(X, y).posterior()
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
    r = nuts(model, num_samples=300, warmup=150, seed=0, max_tree_depth=8)
    d = r.draws
    assert np.all(np.diff(r.gradients) >= 1)                       # every draw costs at least one gradient
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


def _softmax_data(N=300, D=3, K=3, seed=2):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=(N, D - 1)), np.ones(N)])
    logits = X @ rng.normal(size=(D, K))
    p = np.exp(logits - logits.max(1, keepdims=True))
    y = (p.cumsum(1) / p.sum(1, keepdims=True) < rng.random((N, 1))).sum(1)
    return X, y


def test_vem_sits_on_its_own_m_step():
    """At convergence λ_VEM = P / E_q|θ|² (the closed-form M-step) with E_q the chains' time average."""
    X, y = _softmax_data()
    model = SoftmaxRegression(X, y, n_classes=3, prior_precision=1.0)
    r = vem_prior_precision(model, eps=0.2, S=10, n_chains=16, n_steps=1500, init=map_estimate(model), seed=1)
    assert r.m_step() == pytest.approx(r.prior_precision, rel=0.1)
    assert r.sq_trace.shape == r.trace.shape == (1500,)


def test_precision_scan_against_naive_and_fixed_points():
    from sgdbayes.ou.theory import lyapunov_covariance
    from sgdbayes.ou.vem import fixed_point, prior_precision_scan

    X, y = _softmax_data()
    lams = np.array([0.1, 1.0, 10.0])
    sc = prior_precision_scan(X[:200], y[:200], X[200:], y[200:], lams, n_classes=3, eps=0.3, S=5)
    for i, lam in enumerate(lams):
        m = SoftmaxRegression(X[:200], y[:200], n_classes=3, prior_precision=lam)
        mode = map_estimate(m)
        A, C = m.hessian(mode), m.noise_covariance(mode)
        assert sc.sq_mode[i] == pytest.approx(float((mode**2).sum()), rel=1e-5)
        assert sc.tr_post[i] == pytest.approx(np.trace(np.linalg.inv(200 * A)), rel=1e-5)
        assert sc.tr_meanfield[i] == pytest.approx((1 / (200 * np.diag(A))).sum(), rel=1e-5)
        assert sc.tr_sgd[i] == pytest.approx(np.trace(lyapunov_covariance(A, C, eps=0.3, S=5)), rel=1e-5)
        assert sc.val_loglik[i] == pytest.approx(
            float(m.log_likelihood(mode[None], torch.as_tensor(X[200:]), torch.as_tensor(y[200:]))[0]), abs=1e-6)
    # the Laplace (evidence) map adds Tr(NA)⁻¹ >= 0: its fixed point is below the point-mass one
    assert np.all(sc.m_step("laplace") <= sc.m_step("map"))
    # fixed_point: f(λ) = √(10 λ) crosses λ at 10 (log-linear, so exact on a log grid)
    grid = np.geomspace(0.1, 1000, 9)
    assert fixed_point(grid, np.sqrt(10 * grid)) == pytest.approx(10.0, rel=1e-12)
    assert np.isnan(fixed_point(grid, 2 * grid))                   # never crosses
    with pytest.raises(ValueError, match="kind"):
        sc.m_step("nuts")
