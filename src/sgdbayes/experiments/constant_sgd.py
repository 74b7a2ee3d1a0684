"""Chapter 3 (Mandt, Hoffman & Blei 2017, §3–5 and §7.1, §7.3): constant SGD as approximate Bayesian inference,
composed from :mod:`sgdbayes.ou`.

- :func:`sgld_constant_check`: the SGLD stationary constant (ours against the paper's printed one) on a 2-D
  quadratic with exact Gaussian gradient noise;
- :func:`load_problem` / :func:`table1`: Table 1 — every sampler at its KL-optimal setting against the posterior;
- :func:`eps_sweep`, :func:`momentum_check`, :func:`laplace_vs_nuts`;
- :func:`vem_experiment`: variational EM for the prior precision of softmax regression (§7.3, Fig. 6).

Every function that runs chains takes a ``seed`` and returns plain values, so the chapter caches it with
:func:`sgdbayes.cache.cached` keyed on all its arguments.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sgdbayes.data.tabular import load_tabular
from sgdbayes.ou import theory as th
from sgdbayes.ou.compare import compare_samplers
from sgdbayes.ou.diagnostics import cov_standard_error
from sgdbayes.ou.driver import run
from sgdbayes.ou.models import LinearRegression, LogisticRegression, Quadratic, SoftmaxRegression, max_curvature
from sgdbayes.ou.observers import Divergence, Samples
from sgdbayes.ou.posteriors import bbvi, laplace_posterior, nuts
from sgdbayes.ou.samplers import momentum, sgd, sgld
from sgdbayes.ou.vem import map_estimate, prior_precision_scan, vem_prior_precision

__all__ = [
    "eps_sweep",
    "laplace_vs_nuts",
    "load_problem",
    "momentum_check",
    "sgld_constant_check",
    "table1",
    "vem_experiment",
]


# ------------------------------------------------------------------------------------- the SGLD constant


#: The 2-D quadratic of the SGLD check: Hessian of L, per-example gradient covariance, N.
SGLD_CHECK = {"A": [[2.0, 0.6], [0.6, 0.5]], "C": [[1.0, 0.3], [0.3, 2.0]], "N": 100}


def sgld_constant_check(*, eps_list=(1e-3, 2e-3, 4e-3), n_chains: int, n_steps: int = 300, S: int = 1,
                        seed: int) -> pd.DataFrame:
    """Constant-step SGLD on the 2-D quadratic of :data:`SGLD_CHECK` (exact Gaussian gradient noise), chains started
    at the posterior: the excess of the final states' covariance over the posterior, ``Tr(Σ − (NA)⁻¹)``, beside our
    Lyapunov constant ``εN²/4S``, the exact discrete recursion and the paper's printed ``εN/2S`` (read with
    ``BBᵀ = C``), with the Monte-Carlo standard deviation of the measured trace."""
    A, C, N = np.array(SGLD_CHECK["A"]), np.array(SGLD_CHECK["C"]), SGLD_CHECK["N"]
    post = np.linalg.inv(N * A)
    rows = []
    for i, e in enumerate(eps_list):
        init = np.random.default_rng(seed + i).multivariate_normal(np.zeros(2), post, n_chains)
        r = run(Quadratic(A, C, N=N), sgld(e, S), n_chains=n_chains, n_steps=n_steps, init=init, seed=seed + 300 + i)
        emp = r.final_cov()
        sd_tr = float(np.sqrt((cov_standard_error(emp, n_chains)[[0, 1], [0, 1]] ** 2).sum()))
        ours = th.sgld_covariance(A, C, eps=e, N=N, S=S)
        exact = th.sgld_covariance(A, C, eps=e, N=N, S=S, discrete=True)
        printed = th.stationary_covariance(0.5 * N * A, np.eye(2) + e * N / (2 * S) * C)
        rows.append({"ε": e, "chains: Tr(Σ − (NA)⁻¹)": np.trace(emp - post), "± 1 sd (Monte Carlo)": sd_tr,
                     "ours, εN²/4S: Lyapunov": np.trace(ours - post),
                     "ours: exact discrete recursion": np.trace(exact - post),
                     "paper's printed εN/2S (BBᵀ = C)": np.trace(printed - post)})
    return pd.DataFrame(rows).set_index("ε")


# ------------------------------------------------------------------------------------------------ Table 1


def load_problem(name: str, *, device: str = "cpu"):
    """Data set ``name`` as a model with its reference posterior: ``(data, model, post_mean, post_cov)`` — the exact
    posterior for linear regression, the Laplace approximation (with a bias column) for logistic regression."""
    d = load_tabular(name)
    if d.task == "regression":
        model = LinearRegression(d.X, d.y, device=device)
        pm, pc = model.posterior()
    else:
        model = LogisticRegression(d.with_bias(), d.y, device=device)
        pm, pc = laplace_posterior(model)
    return d, model, pm, pc


def table1(name: str, *, S: int, n_chains: int, n_steps: int, thin: int, sgld_scale: float, bbvi_steps: int,
           seed: int, device: str = "cpu") -> dict:
    """Table 1 on data set ``name``: every method of :data:`sgdbayes.ou.compare.METHODS` at its setting
    (:func:`sgdbayes.ou.compare.compare_samplers`)."""
    _, model, pm, pc = load_problem(name, device=device)
    return compare_samplers(model, pm, pc, S=S, n_chains=n_chains, n_steps=n_steps, thin=thin, sgld_scale=sgld_scale,
                            bbvi_steps=bbvi_steps, seed=seed)


# --------------------------------------------------------------------------------------- sweep, momentum, NUTS


def eps_grid(A, C, *, N: int, S: int, points: int) -> np.ndarray:
    """Learning rates from ``ε*/4`` to ``min(4ε*, 0.9 × the stability limit)``, log-spaced."""
    eps_star = th.optimal_learning_rate(C, N=N, S=S)
    return np.geomspace(eps_star / 4, min(4 * eps_star, 0.9 * th.stability_limit(A)), points)


def eps_sweep(name: str, *, S: int, points: int, chains: int, n_steps: int, thin: int, seed: int,
              device: str = "cpu") -> dict:
    """Constant SGD at every learning rate of :func:`eps_grid`, all in one tensor (``chains`` per rate), each group
    started from its predicted stationary law: the Gaussian fit of each group's iterates, its KL to the posterior
    (empirical and predicted) and the diverged chains per rate."""
    _, model, pm, pc = load_problem(name, device=device)
    A, C = model.hessian(pm), model.noise_covariance(pm)
    grid = eps_grid(A, C, N=model.N, S=S, points=points)
    rng = np.random.default_rng(seed)
    init = np.concatenate([rng.multivariate_normal(pm, th.lyapunov_covariance(A, C, eps=e, S=S), size=chains)
                           for e in grid])
    kept = Samples(start=n_steps // 3, thin=thin)
    r = run(model, sgd(np.repeat(grid, chains), S), n_chains=grid.size * chains, n_steps=n_steps, init=init,
            seed=seed + 100, observers=[kept], A=A, divergence=Divergence(on_divergence="mark"))
    covs, means = kept.group_cov(points), kept.group_mean(points)
    kl_emp = [th.gaussian_kl(mu, c, pm, pc) if np.isfinite(c).all() else float("nan")
              for mu, c in zip(means, covs, strict=True)]
    kl_pred = [th.kl_to_posterior(th.lyapunov_covariance(A, C, eps=e, S=S), A, N=model.N) for e in grid]
    return {"eps": grid, "eps_star": th.optimal_learning_rate(C, N=model.N, S=S), "limit": th.stability_limit(A),
            "kl_emp": np.array(kl_emp), "kl_pred": np.array(kl_pred), "diverged": r.divergence.per_group(points)}


def momentum_check(name: str, *, S: int, mu: float, n_chains: int, n_steps: int, thin: int, seed: int,
                   device: str = "cpu") -> pd.DataFrame:
    """Momentum SGD (damping ``mu``, ``ε = μ ε*``) against SGD at ``ε*`` and SGD at ``2ε*`` with ``2S`` — the same
    ``ε/(μS)`` — from the same starts: their stationary covariances."""
    _, model, pm, pc = load_problem(name, device=device)
    A, C = model.hessian(pm), model.noise_covariance(pm)
    eps_star = th.optimal_learning_rate(C, N=model.N, S=S)
    pred = th.lyapunov_covariance(A, C, eps=eps_star, S=S)
    init = np.random.default_rng(seed).multivariate_normal(pm, pred, size=n_chains)
    covs = {}
    for key, smp in (("sgd", sgd(eps_star, S)), ("momentum", momentum(mu * eps_star, mu, S)),
                     ("sgd_2S", sgd(2 * eps_star, 2 * S))):
        kept = Samples(start=n_steps // 3, thin=thin)
        run(model, smp, n_chains=n_chains, n_steps=n_steps, init=init, seed=seed + 200, observers=[kept], A=A)
        covs[key] = kept.cov()
    rows = [{"run": key, "Tr Σ": np.trace(c),
             "‖Σ − Σ_sgd‖/‖Σ_sgd‖": np.linalg.norm(c - covs["sgd"]) / np.linalg.norm(covs["sgd"]),
             "‖Σ − Σ_Lyapunov‖/‖Σ_Lyapunov‖": np.linalg.norm(c - pred) / np.linalg.norm(pred)}
            for key, c in covs.items()]
    return pd.DataFrame(rows).set_index("run")


def laplace_vs_nuts(name: str, *, n_samples: int, warmup: int, seed: int, device: str = "cpu") -> dict:
    """NUTS draws from the exact posterior of logistic data set ``name`` against its Laplace approximation."""
    d, model, lm, lc = load_problem(name, device=device)
    draws = nuts(model, num_samples=n_samples, warmup=warmup, seed=seed, max_tree_depth=8).draws
    nm, nc = draws.mean(0), np.cov(draws.T)
    sd_ratio = np.sqrt(np.diag(nc) / np.diag(lc))
    return {"max_z_mean": float((np.abs(nm - lm) / np.sqrt(np.diag(lc))).max()), "sd_ratio_min": float(sd_ratio.min()),
            "sd_ratio_max": float(sd_ratio.max()), "kl": th.gaussian_kl(lm, lc, nm, nc),
            "kl_mc_error": d.D**2 / (4 * n_samples), "D": int(d.D)}


# -------------------------------------------------------------------------------------------------------- VEM


def vem_experiment(X_train, y_train, X_val, y_val, *, name: str, eps_factors, S: int, n_chains: int, n_steps: int,
                   bbvi_steps: int, lambdas, seed: int, device: str = "cpu") -> dict:
    """Variational EM for the prior precision λ of softmax regression: constant-SGD VEM at each learning rate
    ``factor / λ_max(A)`` (``A`` at the λ = 1 MAP), mean-field BBVI VEM, and on the ``lambdas`` grid the validation
    log-likelihood of the MAP and the closed-form EM maps with their fixed points."""
    K = int(max(np.max(y_train), np.max(y_val)) + 1)
    model = SoftmaxRegression(X_train, y_train, n_classes=K, prior_precision=1.0, device=device)
    mode = map_estimate(model)
    lmax = max_curvature(model, mode)
    runs = []
    for f in eps_factors:
        r = vem_prior_precision(model, eps=f / lmax, S=S, n_chains=n_chains, n_steps=n_steps, init=mode, seed=seed)
        runs.append({"eps": f / lmax, "factor": f, "lam": r.prior_precision, "m_step": r.m_step(), "trace": r.trace})
    model.prior_precision = 1.0
    q = bbvi(model, family="meanfield", n_steps=bbvi_steps, lr=0.1, n_mc=4, init=mode, learn_prior_precision=True,
             seed=seed)
    scan = prior_precision_scan(X_train, y_train, X_val, y_val, lambdas, n_classes=K, eps=runs[-1]["eps"], S=S,
                                device=device)
    kinds = ("laplace", "meanfield", "map", "sgd")
    return {"name": name, "N": model.N, "P": model.P, "lambdas": scan.lambdas, "scores": scan.val_loglik,
            "lam_val": scan.best_validation, "vem": runs, "lam_bbvi": float(q.prior_precision[-1]),
            "bbvi_trace": q.prior_precision, "maps": {k: scan.m_step(k) for k in kinds},
            "fixed": {k: scan.fixed_point(k) for k in kinds}}


def digits_vem(*, eps_factors, S: int, n_chains: int, n_steps: int, bbvi_steps: int, lambdas, seed: int,
               device: str = "cpu") -> dict:
    """:func:`vem_experiment` on scikit-learn's 8×8 digits (2/3 training, 1/3 validation, with a bias column)."""
    dg = load_tabular("digits")
    perm = np.random.default_rng(seed).permutation(dg.N)
    ntr = int(0.67 * dg.N)
    X = dg.with_bias()
    return vem_experiment(X[perm[:ntr]], dg.y[perm[:ntr]], X[perm[ntr:]], dg.y[perm[ntr:]],
                          name="sklearn digits (8×8)", eps_factors=eps_factors, S=S, n_chains=n_chains,
                          n_steps=n_steps, bbvi_steps=bbvi_steps, lambdas=lambdas, seed=seed, device=device)


def mnist_vem(*, n_train: int, n_test: int, downsample: int, eps_factors, S: int, n_chains: int, n_steps: int,
              bbvi_steps: int, lambdas, seed: int, device: str = "cpu") -> dict:
    """:func:`vem_experiment` on a subset of the MNIST digits shipped offline, average-pooled by ``downsample``,
    pixels standardised on the training set (constant pixels dropped), with a bias column."""
    from sgdbayes.data.mnist import load_mnist_subset

    mn = load_mnist_subset(n_train, n_test, seed=seed, binarize=False, downsample=downsample)
    xtr = mn.x_train.reshape(n_train, -1).double().numpy()
    xte = mn.x_test.reshape(n_test, -1).double().numpy()
    keep = xtr.std(0) > 0
    mu, sd = xtr[:, keep].mean(0), xtr[:, keep].std(0)
    xtr = np.column_stack([(xtr[:, keep] - mu) / sd, np.ones(len(xtr))])
    xte = np.column_stack([(xte[:, keep] - mu) / sd, np.ones(len(xte))])
    side = 28 // downsample
    return vem_experiment(xtr, mn.y_train.numpy(), xte, mn.y_test.numpy(),
                          name=f"MNIST subset ({n_train} train, {side}×{side})", eps_factors=eps_factors, S=S,
                          n_chains=n_chains, n_steps=n_steps, bbvi_steps=bbvi_steps, lambdas=lambdas, seed=seed,
                          device=device)
