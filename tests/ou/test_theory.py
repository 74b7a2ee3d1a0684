"""Theory of the stationary laws against closed forms (commuting cases) and naive re-computation."""

import numpy as np
import pytest

from sgdbayes.ou import theory as th


def _spd(rng, d, shift=0.3):
    Q = rng.normal(size=(d, d))
    return Q @ Q.T / d + shift * np.eye(d)


def _naive_lyap(K, Q):
    """vec(KΣ + ΣKᵀ) = (I⊗K + K⊗I) vec Σ, solved densely."""
    d = K.shape[0]
    M = np.kron(np.eye(d), K) + np.kron(K, np.eye(d))
    return np.linalg.solve(M, Q.reshape(-1, order="F")).reshape(d, d, order="F")


def test_commuting_closed_form():
    a, c = np.array([2.0, 0.5, 1.3]), np.array([1.0, 3.0, 0.2])
    eps, S = 0.05, 4
    Sig = th.lyapunov_covariance(np.diag(a), np.diag(c), eps=eps, S=S)
    np.testing.assert_allclose(Sig, np.diag(eps * c / (2 * S * a)), atol=1e-15)
    # exact discrete recursion per coordinate: σ² = ε²c/S / (1 − (1−εa)²)
    disc = th.lyapunov_covariance(np.diag(a), np.diag(c), eps=eps, S=S, discrete=True)
    np.testing.assert_allclose(np.diag(disc), eps**2 * c / S / (1 - (1 - eps * a) ** 2), rtol=1e-12)


def test_general_against_kronecker_solve():
    rng = np.random.default_rng(1)
    A, C = _spd(rng, 4), _spd(rng, 4, 0.05)
    H = _spd(rng, 4, 0.5)
    Sig = th.lyapunov_covariance(A, C, eps=0.1, S=3, H=H)
    np.testing.assert_allclose(Sig, _naive_lyap(H @ A, 0.1 / 3 * H @ C @ H), rtol=1e-9, atol=1e-14)


def test_optimal_preconditioners_give_posterior():
    rng = np.random.default_rng(2)
    A, C, N, S = _spd(rng, 5), _spd(rng, 5, 0.1), 1000, 10
    post = np.linalg.inv(N * A)
    H = th.optimal_preconditioner(C, N=N, S=S)
    np.testing.assert_allclose(th.lyapunov_covariance(A, C, eps=1.0, S=S, H=H), post, rtol=1e-9)
    assert th.kl_to_posterior(th.lyapunov_covariance(A, C, eps=1.0, S=S, H=H), A, N=N) < 1e-9
    # diagonal preconditioner is exact when A and C are diagonal
    a, c = np.diag(np.diag(A)), np.diag(np.diag(C))
    h = th.optimal_preconditioner(c, N=N, S=S, diagonal=True)
    np.testing.assert_allclose(th.lyapunov_covariance(a, c, eps=1.0, S=S, H=h), np.linalg.inv(N * a), rtol=1e-9)
    # SGFS with its optimal H also reproduces the posterior, for any injected noise
    EEt = _spd(rng, 5, 0.2)
    Hs = th.sgfs_optimal_preconditioner(C, EEt, N=N, eps=0.01, S=S)
    np.testing.assert_allclose(th.sgfs_covariance(A, C, EEt, eps=0.01, H=Hs, S=S), post, rtol=1e-8)


def test_optimal_learning_rate_minimises_kl():
    rng = np.random.default_rng(3)
    A, C, N, S = _spd(rng, 4), _spd(rng, 4, 0.1), 500, 5
    e_star = th.optimal_learning_rate(C, N=N, S=S)
    grid = e_star * np.linspace(0.5, 1.5, 41)
    kls = [th.kl_to_posterior(th.lyapunov_covariance(A, C, eps=e, S=S), A, N=N) for e in grid]
    assert abs(grid[int(np.argmin(kls))] / e_star - 1) < 0.03
    # the paper's KL formula equals the general Gaussian KL
    Sig = th.lyapunov_covariance(A, C, eps=e_star, S=S)
    assert th.kl_to_posterior(Sig, A, N=N) == pytest.approx(
        th.gaussian_kl(np.zeros(4), Sig, np.zeros(4), np.linalg.inv(N * A)), rel=1e-10)


def test_gaussian_kl_one_dimensional_and_monte_carlo():
    m0, s0, m1, s1 = 0.3, 0.7, -0.2, 1.4
    exact = np.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5
    assert th.gaussian_kl([m0], [[s0**2]], [m1], [[s1**2]]) == pytest.approx(exact, rel=1e-12)
    rng = np.random.default_rng(0)
    S0, S1 = _spd(rng, 3), _spd(rng, 3)
    mu0, mu1 = rng.normal(size=3), rng.normal(size=3)
    x = rng.multivariate_normal(mu0, S0, size=400_000)

    def logpdf(x, m, S):
        d = x - m
        return -0.5 * (np.einsum("ni,ij,nj->n", d, np.linalg.inv(S), d) + np.linalg.slogdet(2 * np.pi * S)[1])

    diff = logpdf(x, mu0, S0) - logpdf(x, mu1, S1)
    assert abs(diff.mean() - th.gaussian_kl(mu0, S0, mu1, S1)) < 4 * diff.std() / np.sqrt(x.shape[0])


def test_momentum_depends_on_eps_over_mu():
    rng = np.random.default_rng(4)
    A, C = _spd(rng, 3), _spd(rng, 3, 0.1)
    a = th.momentum_covariance(A, C, eps=0.01, mu=0.5, S=2)
    b = th.lyapunov_covariance(A, C, eps=0.02, S=2)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    # exact discrete (θ, v) recursion approaches it as ε → 0 (relative error O(ε/μ²))
    for eps in (1e-3, 1e-4):
        d = th.momentum_covariance(A, C, eps=eps, mu=0.5, S=2, discrete=True)
        c = th.momentum_covariance(A, C, eps=eps, mu=0.5, S=2)
        assert np.abs(d - c).max() / np.abs(c).max() < 20 * eps


def test_sgld_commuting_excess():
    a, c = np.array([1.0, 0.3]), np.array([2.0, 0.5])
    N, S, eps = 200, 5, 1e-3
    Sig = th.sgld_covariance(np.diag(a), np.diag(c), eps=eps, N=N, S=S)
    np.testing.assert_allclose(np.diag(Sig), 1 / (N * a) + eps * N * c / (4 * S * a), rtol=1e-12)


def test_bad_input():
    A = np.diag([1.0, 2.0])
    with pytest.raises(ValueError, match="positive definite"):
        th.lyapunov_covariance(np.diag([1.0, -1.0]), A, eps=0.1)
    with pytest.raises(ValueError, match="semi-definite"):
        th.lyapunov_covariance(A, np.array([[1.0, 2.0], [2.0, 1.0]]), eps=0.1)
    with pytest.raises(ValueError, match="symmetric"):
        th.lyapunov_covariance(np.array([[1.0, 0.5], [0.0, 1.0]]), A, eps=0.1)
    with pytest.raises(ValueError, match="same shape"):
        th.lyapunov_covariance(A, np.eye(3), eps=0.1)
    with pytest.raises(ValueError, match="NaN"):
        th.lyapunov_covariance(np.array([[np.nan, 0], [0, 1.0]]), A, eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        th.lyapunov_covariance(A, A, eps=-1)
    assert th.stability_limit(A) == pytest.approx(1.0)
    with pytest.warns(th.StabilityWarning), pytest.raises(ValueError, match="stability limit"):
        th.lyapunov_covariance(A, A, eps=1.2)
    with pytest.raises(ValueError, match="positive definite"):
        th.optimal_preconditioner(np.diag([1.0, 0.0]), N=10)
