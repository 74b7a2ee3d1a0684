"""Mandt's local picture: the eigenbasis Lyapunov solver and ε* against the chapter-3 code on quadratics, the
quantities at a network's mode against independent computations, and constant SGD's stationary covariance against
the Lyapunov prediction where the quadratic model holds."""

import numpy as np
import pytest
import torch

from sgdbayes.data import boolean_split
from sgdbayes.local import constant_sgd_chains, eigen_lyapunov, find_mode, local_picture, subspace_split
from sgdbayes.local.compare import covariance_comparison, gaussian_kl_zero_mean
from sgdbayes.local.mode import switch_off_idle_units
from sgdbayes.mcmc import FCNPosterior
from sgdbayes.ou.theory import gaussian_kl, lyapunov_covariance, optimal_learning_rate, optimal_preconditioner


def _quadratic(D=6, rank=3, seed=0):
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((D, D)))[0]
    A = Q @ np.diag(np.geomspace(0.05, 3.0, D)) @ Q.T
    B = rng.standard_normal((D, rank))
    return 0.5 * (A + A.T), B @ B.T


@pytest.mark.parametrize("discrete", [False, True])
def test_eigen_lyapunov_equals_chapter3_solver(discrete):
    A, C = _quadratic()
    lam, V = np.linalg.eigh(A)
    for eps, S in [(0.01, 1), (0.3, 4)]:
        mine = eigen_lyapunov(lam, V, C, eps=eps, S=S, discrete=discrete)
        theirs = lyapunov_covariance(A, C, eps=eps, S=S, discrete=discrete)
        assert np.allclose(mine, theirs, rtol=1e-9, atol=1e-12 * np.abs(theirs).max())
    with pytest.raises(ValueError, match="unstable" if discrete else "positive definite"):
        if discrete:
            eigen_lyapunov(lam, V, C, eps=2.5 / lam.max(), discrete=True)
        else:
            eigen_lyapunov(np.r_[-1.0, lam[1:]], V, C, eps=0.1)


def test_subspace_split_and_kl():
    A, C = _quadratic(D=5, rank=2)
    lam, V = np.linalg.eigh(C)
    U = V[:, -2:]
    Sig = np.linalg.inv(A)
    sp = subspace_split(Sig, U)
    P = U @ U.T
    assert np.isclose(sp["trace_range"], np.trace(P @ Sig @ P))
    assert np.isclose(sp["trace_null"], np.trace((np.eye(5) - P) @ Sig @ (np.eye(5) - P)))
    assert np.isclose(sp["cross"], np.linalg.norm((np.eye(5) - P) @ Sig @ U))
    S0, S1 = np.eye(5) * 0.3 + 0.1, A
    assert np.isclose(gaussian_kl_zero_mean(S0, S1), gaussian_kl(np.zeros(5), S0, np.zeros(5), S1))


@pytest.fixture
def small_problem():
    return boolean_split("0110", 8, seed=1, n=4)


def test_local_picture_of_logistic_regression(small_problem):
    """widths = (): logistic regression, where the Gauss–Newton matrix is the exact Hessian and the loss is convex;
    ε* and the diagonal H* equal the chapter-3 formulas, and C equals the naive covariance of per-example gradients."""
    sp = small_problem
    post = FCNPosterior(sp.x_train, sp.y_train, widths=(), prior_precision=0.5, device="cpu", dtype=torch.float64)
    u0 = torch.zeros(post.n_params, dtype=torch.float64)
    um, info = find_mode(post, u0, 1.0)
    assert info["grad_norm"] < 1e-6
    pic = local_picture(post, um, 1.0, S=2, mode_info=info)
    assert np.allclose(np.sort(pic.A_eigvals), pic.hessian_eigvals, rtol=1e-8, atol=1e-12)
    N = post.n_train
    g = []
    theta = torch.tensor(pic.theta_mode).requires_grad_()
    for n in range(N):
        z = sp.x_train[n].double() @ theta[:4] + theta[4]
        s = 2.0 * sp.y_train[n].double() - 1
        (gn,) = torch.autograd.grad(torch.nn.functional.softplus(-s * z), theta)
        g.append(gn.numpy())
    g = np.array(g)
    C = np.cov(g.T, bias=True)
    assert np.allclose(pic.C, C, atol=1e-12)
    assert np.isclose(pic.eps_star, optimal_learning_rate(C, N=N, S=2))
    assert np.isclose(pic.eps_star, 2 * 2 * 5 / (N * np.trace(C)))
    assert np.allclose(pic.H_diag, optimal_preconditioner(C, N=N, S=2, diagonal=True))
    assert pic.gram_rel_err < 1e-10
    assert pic.C_rank == np.linalg.matrix_rank(C)


def test_idle_units_are_switched_off(small_problem):
    sp = small_problem
    post = FCNPosterior(sp.x_train, sp.y_train, widths=(3,), device="cpu", dtype=torch.float64)
    u = post.sample_prior(1, torch.Generator().manual_seed(0))[0]
    # unit 1 of the hidden layer: incoming weights rows j of W [4, 3], bias 12 + j, outgoing weight 15 + j
    idx = [1, 4, 7, 10, 13, 16]
    u[idx] = 1e-5
    u[13] = -1e-5  # bias slightly negative: off on every input
    out, n_off = switch_off_idle_units(post, u)
    assert n_off == 1 and torch.all(out[idx] == 0)
    keep = [i for i in range(post.n_params) if i not in idx]
    assert torch.equal(out[keep], u[keep])


@pytest.mark.slow
def test_constant_sgd_matches_lyapunov_at_small_rate(small_problem, one_thread):
    """On logistic regression (smooth, convex: the quadratic model holds near the mode) at ε = 2% of the stability
    limit, constant SGD's covariance in the range of C matches the exact discrete Lyapunov solution within 10%."""
    sp = small_problem
    post = FCNPosterior(sp.x_train, sp.y_train, widths=(), prior_precision=0.5, device="cpu", dtype=torch.float64)
    um, info = find_mode(post, torch.zeros(post.n_params, dtype=torch.float64), 1.0)
    pic = local_picture(post, um, 1.0, S=2, mode_info=info)
    eps = 0.02 * pic.stability_limit
    relax = int(3 / (eps * pic.A_eigvals.min()))
    run = constant_sgd_chains(post, pic.u_mode, 1.0, eps=eps, S=2, n_chains=400, n_steps=4 * relax,
                              burn_in=relax, thin=max(1, relax // 4), directions=pic.U_range, seed=0)
    cmp = covariance_comparison(pic, run)
    assert cmp["n_diverged"] == 0
    assert abs(cmp["tr_emp_range"] / cmp["tr_lyap_discrete_range"] - 1) < 0.1
    assert 0.85 < cmp["drift"] < 1.15
