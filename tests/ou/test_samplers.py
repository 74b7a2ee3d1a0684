"""The sampler protocol and its driver: vectorised chains against the Lyapunov theory within Monte-Carlo error, the
observers against naive recomputation, and bad settings rejected before any chain runs.

Error model: the M chains are independent, so the cross-chain sample covariance Ŝ of their final states is the
covariance of M iid draws; for Gaussian draws Var(Ŝ_ij) = (Σ_ii Σ_jj + Σ_ij²)/(M − 1). (Stationary OU states with
Gaussian noise are exactly Gaussian.) We accept |Ŝ_ij − Σ_ij| < 4 sd, entrywise (2-D: 3 entries, false-alarm ≈ 2e-4).
"""

import numpy as np
import pytest
import torch

from sgdbayes.ou import theory as th
from sgdbayes.ou.diagnostics import online_noise_covariance
from sgdbayes.ou.driver import run
from sgdbayes.ou.models import LinearRegression, LogisticRegression, Minibatches, Model, Quadratic, SoftmaxRegression
from sgdbayes.ou.observers import Divergence, DivergenceError, Moments, Samples, Snapshots, WindowMeans
from sgdbayes.ou.samplers import Schedule, build, momentum, sgd, sgfs, sgld

A = np.array([[2.0, 0.6], [0.6, 0.5]])
C = np.array([[1.0, 0.3], [0.3, 2.0]])
M = 4000


def _sd(Sig, m):
    d = np.sqrt(np.diag(Sig))
    return np.sqrt((np.outer(d**2, d**2) + Sig**2) / (m - 1))


def _within(emp, Sig, m, bias=0.0, k=4.0):
    err = np.abs(emp - Sig)
    assert np.all(err < k * _sd(Sig, m) + bias), f"\nempirical\n{emp}\ntheory\n{Sig}\n4 sd\n{k * _sd(Sig, m)}"


def test_sgd_chains_match_lyapunov():
    eps, S = 0.02, 2
    r = run(Quadratic(A, C), sgd(eps, S), n_chains=M, n_steps=1200, seed=0)
    disc = th.lyapunov_covariance(A, C, eps=eps, S=S, discrete=True)
    cont = th.lyapunov_covariance(A, C, eps=eps, S=S)
    _within(r.final_cov(), disc, M)
    _within(r.final_cov(), cont, M, bias=np.abs(disc - cont))      # O(ε) discretisation bias of the OU form


def test_preconditioned_and_sgfs_chains():
    H = np.array([[1.0, -0.3], [-0.3, 2.0]])
    r = run(Quadratic(A, C), sgd(0.05, 1, H=H), n_chains=M, n_steps=800, seed=1)
    _within(r.final_cov(), th.lyapunov_covariance(A, C, eps=0.05, S=1, H=H, discrete=True), M)
    EEt = np.array([[0.5, 0.1], [0.1, 0.3]])
    r = run(Quadratic(A, C), sgfs(0.05, H, EEt), n_chains=M, n_steps=800, seed=2)
    _within(r.final_cov(), th.sgfs_covariance(A, C, EEt, eps=0.05, H=H, discrete=True), M)


def test_equal_eps_over_mu_S_same_covariance():
    """momentum (ε=0.01, μ=0.5, S=1), SGD (ε=0.02, S=1), SGD (ε=0.04, S=2): same ε/(μS) → same covariance."""
    covs = []
    for i, smp in enumerate([momentum(0.01, 0.5, 1), sgd(0.02, 1), sgd(0.04, 2)]):
        r = run(Quadratic(A, C), smp, n_chains=M, n_steps=1200, seed=10 + i)
        covs.append(r.final_cov())
    cont = th.lyapunov_covariance(A, C, eps=0.02, S=1)
    for Sig in covs:
        _within(Sig, cont, M, bias=0.05 * np.abs(cont))               # discretisation bias ≤ ~ελ_max/μ ≈ 5 %
    # pairwise: the difference of two independent estimates has sd √2·sd
    _within(covs[0], covs[2], M, bias=0.05 * np.abs(cont), k=4 * np.sqrt(2))


def test_sgld_overestimates_by_order_eps():
    N, S = 100, 1
    post = np.linalg.inv(N * A)
    excess = []
    for i, eps in enumerate((2e-3, 4e-3)):
        r = run(Quadratic(A, C, N=N), sgld(eps, S), n_chains=M, n_steps=600, seed=20 + i)
        disc = th.sgld_covariance(A, C, eps=eps, N=N, S=S, discrete=True)
        _within(r.final_cov(), disc, M)
        excess.append(np.trace(r.final_cov() - post))
    pred = [np.trace(th.sgld_covariance(A, C, eps=e, N=N, S=S) - post) for e in (2e-3, 4e-3)]
    assert pred[1] == pytest.approx(2 * pred[0], rel=1e-9)          # the OU excess is linear in ε
    assert excess[0] > 0 and excess[1] / excess[0] == pytest.approx(2.0, rel=0.25)


def test_eps_per_chain_sweep_and_divergence():
    eps = np.repeat([0.02, 0.04], 2000)
    kept = Samples(start=500)
    run(Quadratic(A, C), sgd(eps, 1), n_chains=4000, n_steps=600, seed=3, observers=[kept])
    g = kept.group_cov(2)
    assert g[1].trace() / g[0].trace() == pytest.approx(
        np.trace(th.lyapunov_covariance(A, C, eps=0.04, S=1, discrete=True))
        / np.trace(th.lyapunov_covariance(A, C, eps=0.02, S=1, discrete=True)), rel=0.05)
    limit = th.stability_limit(A)
    # past the stability limit: a clear error before any chain runs (the stream is untouched: no step is taken)
    with pytest.raises(ValueError, match="stability limit"):
        run(Quadratic(A, C), sgd(1.1 * limit, 1), n_chains=50, n_steps=2000, seed=0, A=A)
    with pytest.warns(th.StabilityWarning), pytest.raises(DivergenceError, match="diverged"):
        run(Quadratic(A, C), sgd(1.1 * limit, 1), n_chains=50, n_steps=2000, seed=0, A=A, stability="warn")
    kept, mom = Samples(start=1000), Moments(start=1000, groups=2)
    with pytest.warns(th.StabilityWarning):
        r = run(Quadratic(A, C), sgd(np.repeat([0.5, 1.1 * limit], 20), 1), n_chains=40, n_steps=2000, seed=0, A=A,
                stability="warn", divergence=Divergence(on_divergence="mark"), observers=[kept, mom])
    assert r.diverged[20:].all() and not r.diverged[:20].any()
    np.testing.assert_array_equal(r.divergence.per_group(2), [0, 20])       # reported per configuration
    assert np.isfinite(kept.cov()).all() and np.isnan(kept.group_cov(2)[1]).all()
    # the streaming moments leave the diverged group out and agree with the stored samples of the stable one
    np.testing.assert_allclose(mom.cov(0), kept.group_cov(2)[0], rtol=1e-10)
    with pytest.raises(DivergenceError, match="group 1"):
        mom.cov(1)


def _data(n=300, d=3, seed=0, kind="linear"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=(d, 3 if kind == "softmax" else 1))
    z = X @ w
    if kind == "linear":
        return X, z[:, 0] + rng.normal(size=n)
    if kind == "logistic":
        return X, (rng.random(n) < 1 / (1 + np.exp(-z[:, 0]))).astype(float)
    return X, np.array([rng.choice(3, p=np.exp(r) / np.exp(r).sum()) for r in z])


@pytest.mark.parametrize("kind", ["linear", "logistic", "softmax"])
def test_model_gradients_hessians_against_autograd(kind):
    X, y = _data(kind=kind)
    model = {"linear": LinearRegression, "logistic": LogisticRegression, "softmax": SoftmaxRegression}[kind](
        X, y, prior_precision=0.7)
    theta = torch.randn(model.P, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.3
    idx = torch.tensor([[0, 5, 5, 17]])
    # naive: autograd of each example's loss ℓ_n = nll_n + λ|θ|²/(2N)
    def ell(t, n):
        sub = type(model).__new__(type(model))
        sub.__dict__.update(model.__dict__)
        sub.X, sub.y = model.X[n:n + 1], model.y[n:n + 1]
        sub.prior_precision = model.prior_precision / model.N
        return sub.neg_log_joint(t[None])[0]
    naive = torch.stack([torch.func.grad(ell)(theta, int(n)) for n in idx[0]])
    torch.testing.assert_close(model.example_grads(theta[None], idx)[0], naive)
    torch.testing.assert_close(model.grad(theta[None], Minibatches(idx, 4))[0], naive.mean(0))
    Hn = torch.func.hessian(lambda t: model.neg_log_joint(t[None])[0] / model.N)(theta)
    np.testing.assert_allclose(model.hessian(theta), Hn.numpy(), rtol=1e-10, atol=1e-12)
    G = model.per_example_grads(theta)
    np.testing.assert_allclose(G.mean(0).numpy(), model.full_grad(theta).numpy(), atol=1e-12)


def test_online_noise_estimate_matches_per_example():
    X, y = _data(n=400, kind="logistic")
    model = LogisticRegression(X, y)
    mode = model.mode()
    C = model.noise_covariance(mode)
    Co = online_noise_covariance(model, mode.expand(200, -1), S=8, n_steps=200, seed=0)
    # 40,000 outer products; relative sd of a diagonal entry ≈ sqrt(kurtosis-ish/4e4) ≲ 2 %
    np.testing.assert_allclose(np.diag(Co), np.diag(C), rtol=0.08)


def test_bad_data_and_arguments():
    X, y = _data()
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LinearRegression(X, y)
    X, y = _data(kind="logistic")
    with pytest.raises(ValueError, match="0 or 1"):
        LogisticRegression(X, y * 2)
    with pytest.raises(ValueError, match="eps"):
        sgd(-0.1)
    with pytest.raises(ValueError, match="unknown sampler 'adam'; allowed: sgd, momentum"):
        build("adam", eps=0.1)
    with pytest.raises(ValueError, match="positive definite"):
        Quadratic(np.diag([1.0, -1.0]), C)


# ------------------------------------------------------------------------------------- the protocol and driver


def test_schedule_is_applied_step_by_step_against_a_hand_recursion():
    """SGLD with steps ε_t = (a, b, c) on the quadratic: the driver's states equal the update written out by hand
    with the same draws (minibatch noise first, then injected noise, step by step when chunk=1)."""
    model, eps = Quadratic(A, C, N=50), np.array([1e-3, 4e-3, 2e-3])
    snaps = Snapshots([1, 2, 3])
    theta0 = torch.tensor([[0.1, -0.2], [0.3, 0.05]], dtype=torch.float64)
    run(model, sgld(Schedule(eps), 3), n_chains=2, n_steps=3, init=theta0, seed=7, observers=[snaps])
    gen = torch.Generator().manual_seed(7)
    th_ = theta0.clone()
    for t in range(3):
        z = torch.randn(1, 2, 2, generator=gen, dtype=torch.float64)[0]
        w = torch.randn(1, 2, 2, generator=gen, dtype=torch.float64)[0]
        # gradient noise with covariance C/3 through the model's factor C^{1/2}
        g = th_ @ torch.as_tensor(A) + z @ model.C_sqrt.T / np.sqrt(3)
        th_ = th_ - eps[t] / 2 * 50 * g + np.sqrt(eps[t]) * w
        torch.testing.assert_close(snaps[t + 1], th_, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(model.C_sqrt @ model.C_sqrt.T, torch.as_tensor(C))


def test_window_means_and_snapshots_against_stored_states():
    model = LinearRegression(*_data(n=80, d=2))
    T, start = 6, 5
    windows, snaps, kept = WindowMeans(T, start=start), Snapshots([5, 11, 23]), Samples()
    run(model, momentum(0.01, 0.5, 4), n_chains=3, n_steps=start + 3 * T, seed=1, observers=[windows, snaps, kept],
        chunk=4)
    x = kept.samples                                                    # every state [23, 3, 2]
    naive = x[start:].reshape(3, T, 3, 2).mean(1).transpose(0, 1)       # [chains, windows, P]
    torch.testing.assert_close(windows.means, naive, rtol=1e-12, atol=1e-14)
    for s in (5, 11, 23):
        torch.testing.assert_close(snaps[s], x[s - 1])


def test_bad_settings_fail_before_any_chain_runs():
    model = Quadratic(A, C)
    with pytest.raises(ValueError, match="symmetric positive definite|positive definite"):
        sgd(0.1, 1, H=np.array([[1.0, 2.0], [2.0, 1.0]]))              # indefinite
    with pytest.raises(ValueError, match="diagonal preconditioner H must be finite and > 0"):
        sgd(0.1, 1, H=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"preconditioner H must be \[P\] or \[P, P\] with P = 2"):
        run(model, sgd(0.1, 1, H=np.ones(3)), n_chains=2, n_steps=5)
    with pytest.raises(ValueError, match="schedule has 4 values .* run has 5 steps"):
        run(model, sgld(Schedule(np.full(4, 1e-3)), 1), n_chains=2, n_steps=5)
    with pytest.raises(ValueError, match="eps has 3 values but there are 2 chains"):
        run(model, sgd(np.array([0.1, 0.2, 0.3]), 1), n_chains=2, n_steps=5)
    with pytest.raises(ValueError, match="finite number > 0"):
        sgd(float("nan"))
    with pytest.raises(ValueError, match="variational EM runs at one constant learning rate"):
        build("vem", eps=np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="momentum damping mu must lie in"):
        momentum(0.1, 1.5)
    with pytest.raises(ValueError, match="SGFS EEᵀ given as a vector"):
        sgfs(0.1, np.ones(2), np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="init must be"):
        run(model, sgd(0.1), n_chains=2, n_steps=5, init=np.zeros((3, 2)))


def test_model_interface_is_enforced():
    with pytest.raises(TypeError, match="abstract"):
        Model()

    class NoGrad(Model):                       # forgets grad: cannot be instantiated
        def draw_batches(self, generator, n_steps, n_chains, S):
            return Minibatches(torch.zeros(n_steps, n_chains, 1), S)

        def neg_log_joint(self, theta):
            return theta.sum(-1)

        def hessian(self, theta=None):
            return np.eye(1)

        def noise_covariance(self, theta=None):
            return np.eye(1)

    with pytest.raises(TypeError, match="grad"):
        NoGrad()
    for cls in (Quadratic, LinearRegression, LogisticRegression, SoftmaxRegression):
        assert issubclass(cls, Model)


def test_ou_modules_import_without_cycles():
    """The modules of sgdbayes.ou import each other (at any depth, top level or inside functions) without a cycle."""
    import ast
    from pathlib import Path

    import sgdbayes.ou

    root = Path(sgdbayes.ou.__file__).parent
    deps = {}
    for f in root.glob("*.py"):
        if f.stem == "__init__":
            continue
        mods = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sgdbayes.ou."):
                mods.add(node.module.split(".")[2])
        deps[f.stem] = mods
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", f"import cycle: {' → '.join(path + [m])}"
        state[m] = "open"
        for d in deps.get(m, ()):
            visit(d, path + [m])
        state[m] = "done"

    for m in deps:
        visit(m, [])
    assert "models" not in deps["threads"] and "driver" in deps["iasg"]
