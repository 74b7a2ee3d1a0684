"""The MSE-matching posterior (exact GP regression on S, then the orthant probability on E) and the summaries of a
Gaussian on the test latents, against independent computations: numpy matrix inverses, the exact normal CDF for one
point, quadrature of the bivariate normal for two, Genz's algorithm (scipy) and pathwise Monte-Carlo samples of the
regression posterior for four to six."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import log_ndtr, ndtr
from scipy.stats import multivariate_normal, norm

from sgdbayes.gp import (
    EPConvergenceError,
    LatentGaussian,
    as_pm1,
    log_orthant,
    log_pb,
    regression_posterior,
    zero_one_posterior,
)
from sgdbayes.kernels import nngp_fcn

N_S = 10


def system(n_e: int, seed: int = 3):
    """NNGP kernel (ReLU FCN, depth 2) on N_S + n_E Gaussian inputs in R³; labels = sign of the first coordinate."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N_S + n_e, 3, generator=g, dtype=torch.float64)
    K = nngp_fcn(x, depth=2, sigma_w=1.4, sigma_b=0.3)
    y = torch.where(x[:N_S, 0] > 0, 1.0, -1.0)
    return K, y


def direct_moments(K, y, noise_var, targets, test_noise):
    """Eq. (2) with numpy's explicit inverse (a different computation from the Cholesky route)."""
    K = K.numpy()
    t = y.numpy() if targets == "pm1" else (y.numpy() + 1) / 2
    Ai = np.linalg.inv(K[:N_S, :N_S] + noise_var * np.eye(N_S))
    mu = K[N_S:, :N_S] @ Ai @ t
    cov = K[N_S:, N_S:] - K[N_S:, :N_S] @ Ai @ K[:N_S, N_S:]
    if test_noise:
        cov = cov + noise_var * np.eye(cov.shape[0])
    return mu, cov


def all_labellings(k: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=k)), dtype=torch.float64)


def exact_orthant(mu, cov, f) -> float:
    """P(f_j g_j > 0 ∀j), g ~ N(mu, cov), by Genz's algorithm: P(D g > 0) = P(−D g < 0) = CDF of N(0, DΣD) at Dμ."""
    d = np.diag(f)
    return float(multivariate_normal(mean=np.zeros(len(f)), cov=d @ cov @ d, abseps=1e-7, releps=1e-4,
                                     maxpts=2 * 10**6).cdf(d @ mu))


# ------------------------------------------------------------------------------------------------------- moments
@pytest.mark.parametrize("targets", ["pm1", "01"])
@pytest.mark.parametrize("test_noise", [True, False])
@pytest.mark.parametrize("noise_var", [0.002, 0.3])
def test_moments_match_direct_inverse(targets, test_noise, noise_var):
    K, y = system(5)
    post = regression_posterior(K, y, noise_var=noise_var, targets=targets, test_noise=test_noise)
    mu, cov = direct_moments(K, y, noise_var, targets, test_noise)
    np.testing.assert_allclose(post.mean.numpy(), mu, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(post.cov.numpy(), cov, rtol=1e-8, atol=1e-10)
    assert post.kind == "mse_regression" and post.targets == targets and post.noise_var == noise_var
    assert torch.equal(post.cov, post.cov.T)


def test_zero_one_encoded_labels_give_the_same_posterior():
    K, y = system(3)
    a = regression_posterior(K, y, targets="01")
    b = regression_posterior(K, (y + 1) / 2, targets="01")   # the same labels written 0/1
    torch.testing.assert_close(a.mean, b.mean, rtol=0, atol=0)


def test_noiseless_regression_interpolates_train_labels():
    """With σ² → 0 the regression mean at a copy of a train input is its target: ±1 for 'pm1', 0/1 for '01' — the
    authors' 0/1 targets put every class-0 point exactly on the decision threshold 0 (P(f=1) ≈ 1/2 there)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_S, 3, generator=g, dtype=torch.float64)
    y = torch.where(x[:, 0] > 0, 1.0, -1.0).double()
    x_all = torch.cat([x, x[:4] + 1e-7])
    K = nngp_fcn(x_all, depth=2, sigma_w=1.4, sigma_b=0.3)
    pm = regression_posterior(K, y, noise_var=1e-9, targets="pm1", test_noise=False, jitter=None)
    zo = regression_posterior(K, y, noise_var=1e-9, targets="01", test_noise=False, jitter=None)
    torch.testing.assert_close(pm.mean, y[:4], rtol=0, atol=1e-4)
    torch.testing.assert_close(zo.mean, (y[:4] + 1) / 2, rtol=0, atol=1e-4)


def test_no_train_set_gives_the_prior():
    K, _ = system(4)
    post = regression_posterior(K[N_S:, N_S:], torch.zeros(0), noise_var=0.01)
    assert bool((post.mean == 0).all())
    torch.testing.assert_close(post.cov, K[N_S:, N_S:] + 0.01 * torch.eye(4, dtype=torch.float64))


# ------------------------------------------------------------------------------------------------------- orthants
@pytest.mark.parametrize("targets,threshold", [("pm1", 0.0), ("01", 0.0), ("01", 0.5)])
def test_one_test_point_is_exact(targets, threshold):
    """|E| = 1: EP with one step site is exact, log P(f) = log Φ(f (μ − c)/σ) for the threshold c."""
    K, y = system(1)
    f = torch.tensor([[1.0], [-1.0]])
    lp = log_pb(K, y, f, method="mse_regression", targets=targets, threshold=threshold, tol=1e-12, site_tol=1e-10)
    mu, cov = direct_moments(K, y, 0.002, targets, True)
    want = log_ndtr(f.numpy()[:, 0] * (mu[0] - threshold) / math.sqrt(cov[0, 0]))
    np.testing.assert_allclose(lp.numpy(), want, rtol=1e-9, atol=1e-12)
    post = regression_posterior(K, y, targets=targets, threshold=threshold)
    assert float(post.p_one()[0]) == pytest.approx(math.exp(want[0]), rel=1e-12)
    assert float(post.majority()[0]) == (1.0 if mu[0] > threshold else -1.0)


def _bivariate_orthant(mu, cov, f) -> float:
    """P(f1 g1 > 0, f2 g2 > 0) by 1-D quadrature: with u = f1 (g1 − μ1)/σ1, the event is u > −a1 and
    f2 g2 > 0, where f2 g2 | u ~ N(a2 σ2 + ρ σ2 u, σ2² (1 − ρ²)) with a_j = f_j μ_j / σ_j and ρ = f1 f2 corr."""
    s1, s2 = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
    a1, a2 = f[0] * mu[0] / s1, f[1] * mu[1] / s2
    rho = f[0] * f[1] * cov[0, 1] / (s1 * s2)
    val, _err = integrate.quad(lambda u: norm.pdf(u) * ndtr((a2 + rho * u) / math.sqrt(1 - rho**2)), -a1, np.inf,
                              epsabs=1e-13, epsrel=1e-11)
    return val


@pytest.mark.parametrize("noise_var", [0.002, 0.1])
def test_two_test_points_against_quadrature(noise_var):
    """|E| = 2, all four labellings, against the bivariate-normal orthant by quadrature. EP is not exact for two
    correlated sites; on these cases its error is ≤ 2.1e-4 of P (measured), the tolerance 2e-3 of P leaves 10×."""
    K, y = system(2)
    f = all_labellings(2)
    lp = log_pb(K, y, f, method="mse_regression", noise_var=noise_var, tol=1e-12, site_tol=1e-10)
    mu, cov = direct_moments(K, y, noise_var, "pm1", True)
    exact = np.array([_bivariate_orthant(mu, cov, fi) for fi in f.numpy()])
    assert exact.sum() == pytest.approx(1.0, abs=1e-9)     # the quadrature is a distribution over the 4 orthants
    np.testing.assert_allclose(np.exp(lp.numpy()), exact, rtol=2e-3, atol=1e-8)
    # and Genz's algorithm agrees with the quadrature (two independent exact routes)
    np.testing.assert_allclose([exact_orthant(mu, cov, fi) for fi in f.numpy()], exact, rtol=1e-4, atol=1e-7)


def _pathwise_samples(K, y, noise_var, n, seed):
    """Samples of g_E from the regression posterior without its formula for Σ: draw (g_S, g_E) from the prior and
    noise ε_S, ε_E ~ N(0, σ² I), then g_E + ε_E + K_ES A⁻¹ (y − g_S − ε_S) (Matheron's rule; test_noise=True)."""
    rng = np.random.default_rng(seed)
    Kn = K.numpy()
    L = np.linalg.cholesky(Kn + 1e-12 * np.eye(Kn.shape[0]))
    g = rng.standard_normal((n, Kn.shape[0])) @ L.T
    eps = math.sqrt(noise_var) * rng.standard_normal((n, Kn.shape[0]))
    gain = np.linalg.solve(Kn[:N_S, :N_S] + noise_var * np.eye(N_S), Kn[:N_S, N_S:])   # A⁻¹ K_SE
    resid = y.numpy()[None, :] - g[:, :N_S] - eps[:, :N_S]
    return g[:, N_S:] + eps[:, N_S:] + resid @ gain


@pytest.mark.parametrize("n_e,noise_var,seed", [(4, 0.1, 3), (5, 0.002, 7), (6, 0.002, 3)])
def test_four_to_six_test_points_against_exact_and_monte_carlo(n_e, noise_var, seed):
    """|E| = 4–6, every labelling with P ≥ 0.01:
    (a) rejection counts of 400,000 pathwise posterior samples agree with the exact orthant probability (Genz,
        error ≤ 1e-4 of P) within 4.5 binomial standard errors — this checks the posterior N(μ, Σ) itself;
    (b) EP's orthant probability is within 10% of P + 2e-3 of the exact one — EP's own approximation error, which
        this tolerance covers: measured on these three cases at ≤ 1.8% of P (correlations up to 0.9), and up to ~5%
        in other draws whose test points are almost perfectly correlated;
    (c) the EP probabilities of all 2^|E| labellings sum to 1 within 0.05."""
    K, y = system(n_e, seed)
    f = all_labellings(n_e)
    lp = log_pb(K, y, f, method="mse_regression", noise_var=noise_var)
    mu, cov = direct_moments(K, y, noise_var, "pm1", True)
    exact = np.array([exact_orthant(mu, cov, fi) for fi in f.numpy()])
    n = 400_000
    g = _pathwise_samples(K, y, noise_var, n, seed=seed)
    codes = ((g > 0).astype(np.int64) * (2 ** np.arange(n_e - 1, -1, -1))).sum(1)   # row order of all_labellings
    freq = np.bincount(codes, minlength=2**n_e) / n
    sel = exact >= 0.01
    assert sel.sum() >= 2
    se = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(freq - exact)[sel] <= 4.5 * se[sel] + 1e-4 * exact[sel])
    p_ep = np.exp(lp.numpy())
    assert np.all(np.abs(p_ep - exact)[sel] <= 0.1 * exact[sel] + 2e-3)
    assert p_ep.sum() == pytest.approx(1.0, abs=0.05)


def test_log_pb_regression_is_the_orthant_of_the_posterior():
    K, y = system(4)
    f = all_labellings(4)[[0, 5, 5, 15]]
    res = log_pb(K, y, f, method="mse_regression", targets="01", noise_var=0.05, test_noise=False,
                 return_result=True)
    post = regression_posterior(K, y, noise_var=0.05, targets="01", test_noise=False)
    torch.testing.assert_close(res.log_pb, post.log_prob(f), rtol=0, atol=1e-12)
    torch.testing.assert_close(res.mu_test, post.mean)
    assert res.method == "mse_regression" and res.log_pb[1] == res.log_pb[2] and res.ep_test.log_z.shape == (3,)
    # defaults: the authors' noise variance 0.002 with σ² on E, ±1 targets
    torch.testing.assert_close(log_pb(K, y, f, method="mse_regression"),
                               regression_posterior(K, y, noise_var=0.002, targets="pm1", test_noise=True).log_prob(f))


def test_zero_one_posterior_reproduces_the_two_stage_log_pb():
    K, y = system(4)
    f = all_labellings(4)
    post = zero_one_posterior(K, y)
    torch.testing.assert_close(post.log_prob(f), log_pb(K, y, f, method="two_stage"), rtol=0, atol=1e-9)
    assert post.kind == "zero_one"


def test_ep_non_convergence_is_raised_not_returned():
    K, y = system(6)
    with pytest.raises(EPConvergenceError):
        log_pb(K, y, all_labellings(6)[:4], method="mse_regression", max_sweeps=1, tol=1e-14, site_tol=1e-14)


# ------------------------------------------------------------------------------------------------------- summaries
def test_summaries_against_sampling_and_direct_formulas():
    """p_one = Φ(μ/σ), entropy = binary entropy of p, majority = sign(μ); expected error = the mean test error of
    labellings sampled from N(μ, Σ) (within 4.5 standard errors), majority error counted directly."""
    K, y = system(6)
    post = regression_posterior(K, y, noise_var=0.1)
    mu, var = post.mean.numpy(), post.var.numpy()
    p = ndtr(mu / np.sqrt(var))
    np.testing.assert_allclose(post.p_one().numpy(), p, rtol=1e-12)
    h = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    np.testing.assert_allclose(post.entropy().numpy(), h, rtol=1e-10, atol=1e-14)
    assert post.total_entropy() == pytest.approx(h.sum(), rel=1e-10)
    np.testing.assert_array_equal(post.majority().numpy(), np.where(mu > 0, 1.0, -1.0))
    y_test = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0, -1.0])
    rng = np.random.default_rng(0)
    g = rng.multivariate_normal(mu, post.cov.numpy(), size=200_000)
    err = (np.where(g > 0, 1.0, -1.0) != y_test.numpy()).mean(1)
    assert post.expected_error(y_test) == pytest.approx(err.mean(), abs=4.5 * err.std() / math.sqrt(len(err)))
    assert post.expected_error((y_test + 1) / 2) == post.expected_error(y_test)   # 0/1 labels accepted
    assert post.majority_error(y_test) == pytest.approx(np.mean(np.where(mu > 0, 1.0, -1.0) != y_test.numpy()))


def test_entropy_keeps_precision_in_the_tails():
    post = LatentGaussian(mean=torch.tensor([40.0, -40.0, 0.0], dtype=torch.float64),
                          cov=torch.eye(3, dtype=torch.float64), kind="mse_regression")
    h = post.entropy()
    assert bool(torch.isfinite(h).all()) and float(h[:2].min()) >= 0.0 and float(h[:2].max()) <= 1e-300
    assert float(h[2]) == pytest.approx(math.log(2), rel=1e-14)
    mid = LatentGaussian(mean=torch.tensor([-9.0], dtype=torch.float64), cov=torch.eye(1, dtype=torch.float64),
                         kind="zero_one")
    q = ndtr(-9.0)   # ≈ 1.1e-19: H ≈ q (1 − log q), which 1 − p would lose entirely
    assert float(mid.entropy()[0]) == pytest.approx(q * (1 - math.log(q)), rel=1e-6)


def test_zero_variance_is_reported():
    post = LatentGaussian(mean=torch.zeros(2, dtype=torch.float64), cov=torch.diag(torch.tensor([1.0, 0.0],
                          dtype=torch.float64)), kind="mse_regression")
    with pytest.raises(ValueError, match="not positive at test point 1"):
        post.p_one()


# ------------------------------------------------------------------------------------------------------- bad input
def test_as_pm1():
    torch.testing.assert_close(as_pm1([0, 1, 1]), torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(as_pm1([1, 1]), torch.tensor([1.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="mixes"):
        as_pm1([-1, 0, 1])
    with pytest.raises(ValueError, match=r"y\[1\] = 0.5"):
        as_pm1([1, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        as_pm1([1, float("nan")])


@pytest.mark.parametrize("kwargs,err,match", [
    ({"noise_var": -0.1}, ValueError, "noise_var must be a finite number >= 0"),
    ({"noise_var": float("nan")}, ValueError, "noise_var"),
    ({"noise_var": True}, ValueError, "noise_var"),
    ({"targets": "0/1"}, ValueError, "targets must be one of"),
    ({"test_noise": "yes"}, ValueError, "test_noise"),
    ({"threshold": float("inf")}, ValueError, "threshold must be a finite number"),
])
def test_bad_arguments(kwargs, err, match):
    K, y = system(2)
    with pytest.raises(err, match=match):
        regression_posterior(K, y, **kwargs)


def test_bad_inputs():
    K, y = system(2)
    with pytest.raises(ValueError, match="labels must be -1/\\+1 or 0/1"):
        regression_posterior(K, y * 2)
    with pytest.raises(ValueError, match="at least one test input"):
        regression_posterior(K[:N_S, :N_S], y)
    Kbad = K.clone()
    Kbad[0, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        regression_posterior(Kbad, y)
    with pytest.raises(ValueError, match="must have 2 labels"):
        log_pb(K, y, torch.ones(3), method="mse_regression")
    with pytest.raises(ValueError, match="apply only to method='mse_regression'"):
        log_pb(K, y, torch.ones(2), method="two_stage", noise_var=0.1)
    with pytest.raises(ValueError, match="threshold apply only"):
        log_pb(K, y, torch.ones(2), method="full", threshold=0.5)
    with pytest.raises(ValueError, match="step likelihood"):
        log_pb(K, y, torch.ones(2), method="mse_regression", likelihood="probit")
    with pytest.raises(ValueError, match="mean must have shape"):
        log_orthant(torch.zeros(3), torch.eye(2), torch.ones(2))


def test_singular_train_kernel_without_noise_or_jitter_is_an_error():
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.cat([x[:3], x[:1], x[3:]])       # train input 3 duplicates train input 0: K_SS is singular
    K = nngp_fcn(x, depth=1, sigma_w=1.0, sigma_b=0.1)
    y = torch.tensor([1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="not positive definite"):
        regression_posterior(K, y, noise_var=0.0, jitter=None)
    with pytest.warns(RuntimeWarning, match="jitter"):
        post = regression_posterior(K, y, noise_var=0.0, jitter="auto")
    assert post.jitter > 0
