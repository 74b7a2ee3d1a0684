"""The Table-1 experiment: run every sampler at its KL-optimal setting on one model and compare its stationary law
with the posterior (exact for linear regression, Laplace otherwise).

For each method ``compare_samplers`` returns the Gaussian fit of its iterates (pooled over kept states and chains),
``KL(q ‖ posterior)`` (``kl_qp``, the direction of the paper's derivation of ε* and H*) and ``KL(posterior ‖ q)``
(``kl_pq``, the direction named in the header of the paper's Table 1), and the Lyapunov prediction of its covariance
with the same two KLs. Chains start at the mode plus a draw from their *predicted* stationary law (the Lyapunov
covariance), so the burn-in only has to remove the small gap between prediction and the true stationary law instead
of relaxing the slowest direction from scratch. The settings:

- ``sgd``: ε* = 2SD/(N Tr C);  ``sgd_diag`` / ``sgd_full``: the optimal diagonal / full preconditioners with ε = 1;
- ``sgld``: ε = ``sgld_scale`` · 2ε*/N, i.e. the same step ``(ε/2)N`` on ``L`` as constant SGD at ε*; its stationary
  covariance is then the posterior plus (commuting case) exactly constant SGD's ``(ε*/2S)A⁻¹C`` (capped at half the
  SGLD stability limit 4/(N λ_max(A)));
- ``sgfs_diag`` / ``sgfs_full``: injected noise EEᵀ = C, ε = S·``sgfs_eps_factor``, H from
  :func:`~sgdbayes.ou.theory.sgfs_optimal_preconditioner`;
- ``bbvi``: mean-field Gaussian BBVI (reparameterisation gradients).
"""

from __future__ import annotations

import numpy as np

from sgdbayes.ou import theory as th
from sgdbayes.ou.driver import run
from sgdbayes.ou.observers import Divergence, Samples
from sgdbayes.ou.posteriors import bbvi
from sgdbayes.ou.samplers import SGFS, SGLD, sgd, sgfs, sgld

__all__ = ["METHODS", "compare_samplers", "sampler_settings"]

METHODS = ("sgd", "sgd_diag", "sgd_full", "sgld", "sgfs_diag", "sgfs_full", "bbvi")


def _clip(eps, A, H, fraction):
    """``eps`` or, when that is past the stability limit of ``H``, ``fraction`` × the limit."""
    return float(min(eps, fraction * th.stability_limit(A, H)))


def sampler_settings(A, C, *, N: int, S: int, sgld_scale: float = 1.0, sgfs_eps_factor: float = 1.0,
                     stable_fraction: float = 0.5) -> dict:
    """Sampler objects and their Lyapunov-predicted covariances for every chain method.

    The optimal preconditioners assume the OU (continuous-time) limit; where the prior dominates the curvature in some
    direction (``A ≫ C`` there, e.g. nearly collinear features), ``H*A`` has a huge eigenvalue and the discrete
    recursion with ``ε = 1`` is unstable. Then the step is reduced to ``stable_fraction`` × the stability limit,
    which shrinks the stationary covariance below the posterior (reported by the KL)."""
    A = th.check_psd(A, "A")
    C = th.check_psd(C, "C (= BBᵀ)")
    out = {}
    e = th.optimal_learning_rate(C, N=N, S=S)
    out["sgd"] = (sgd(e, S, name="constant SGD"), th.lyapunov_covariance(A, C, eps=e, S=S))
    for diag, key in ((True, "sgd_diag"), (False, "sgd_full")):
        h = th.optimal_preconditioner(C, N=N, S=S, diagonal=diag)
        e = _clip(1.0, A, h, stable_fraction)
        out[key] = (sgd(e, S, H=h, name=f"SGD, {'diagonal' if diag else 'full'} H*"),
                    th.lyapunov_covariance(A, C, eps=e, S=S, H=h))
    # the same step on L as constant SGD at ε*: (ε/2)N = sgld_scale·ε*, kept below half the stability limit
    e_star = th.optimal_learning_rate(C, N=N, S=S)
    e_l = min(sgld_scale * 2.0 * e_star / N, 0.5 * 4.0 / (N * np.linalg.eigvalsh(A)[-1]))
    out["sgld"] = (sgld(e_l, S, name="SGLD"), th.sgld_covariance(A, C, eps=e_l, N=N, S=S))
    e_f = S * sgfs_eps_factor
    for diag, key in ((True, "sgfs_diag"), (False, "sgfs_full")):
        Hf = th.sgfs_optimal_preconditioner(C, C, N=N, eps=e_f, S=S, diagonal=diag)
        EEt = np.diag(np.diag(C)) if diag else C
        e = _clip(e_f, A, Hf, stable_fraction)
        out[key] = (sgfs(e, Hf, EEt, S, name=f"SGFS {'diagonal' if diag else 'full'}"),
                    th.sgfs_covariance(A, C, EEt, eps=e, H=Hf, S=S))
    return out


def _relaxation_steps(smp, A, N):
    """Slowest relaxation time (steps) of the linearised recursion: 1 / min Re eig(K)."""
    K = smp.eps * smp.drift_matrix(A, N)
    return float(1.0 / np.linalg.eigvals(K).real.min())


def _discrete_prediction(smp, A, C, N):
    """Exact stationary covariance of the linearised discrete recursion (no OU approximation)."""
    if isinstance(smp, SGLD):
        return th.sgld_covariance(A, C, eps=smp.eps, N=N, S=smp.S, discrete=True)
    if isinstance(smp, SGFS):
        EEt = np.diag(smp.EEt) if np.ndim(smp.EEt) == 1 else smp.EEt
        return th.sgfs_covariance(A, C, EEt, eps=smp.eps, H=smp.H, S=smp.S, discrete=True)
    return th.lyapunov_covariance(A, C, eps=smp.eps, S=smp.S, H=smp.H, discrete=True)


def compare_samplers(model, post_mean, post_cov, *, S: int, n_chains: int, n_steps: int, burn_in_relax: float = 3.0,
                     burn_in_max: float = 1 / 3, thin: int = 5, sgld_scale: float = 1.0, sgfs_eps_factor: float = 1.0,
                     bbvi_steps: int = 2000, stable_fraction: float = 0.5, methods=METHODS, seed: int = 0,
                     keep: int = 4000) -> dict:
    """Run every method in ``methods`` on ``model``; returns ``{"methods": {method: dict}, "A", "C", "post_mean",
    "post_cov"}``, each method with ``kl_qp``, ``kl_pq`` (iterates), ``kl_qp_pred``, ``kl_pq_pred`` (Lyapunov),
    ``kl_pq_pred_discrete`` (exact stationary law of the linearised discrete recursion), ``mean``, ``cov``, ``pred``,
    ``pred_discrete``, ``eps``, ``relax`` (slowest relaxation time, steps), ``burn_in``, ``samples``
    (≤ ``keep`` pooled iterates ``[n, P]`` for plots), ``n_diverged``. Chains start at ``post_mean`` plus a draw from
    the predicted stationary covariance; burn-in is ``burn_in_relax`` relaxation times, capped at ``burn_in_max`` of
    the run."""
    theta_star = np.asarray(post_mean, dtype=np.float64)
    A = model.hessian(theta_star)
    C = model.noise_covariance(theta_star)
    settings = sampler_settings(A, C, N=model.N, S=S, sgld_scale=sgld_scale, sgfs_eps_factor=sgfs_eps_factor,
                                stable_fraction=stable_fraction)
    rng = np.random.default_rng(seed)
    out = {}
    for i, key in enumerate(methods):
        if key == "bbvi":
            q = bbvi(model, family="meanfield", n_steps=bbvi_steps, lr=0.02, n_mc=8, seed=seed, init=theta_star)
            out[key] = {"mean": q.mean, "cov": q.cov, "pred": None, "eps": None, "relax": None, "burn_in": None,
                        "samples": rng.multivariate_normal(q.mean, q.cov, size=min(keep, 2000)), "n_diverged": 0}
        else:
            smp, pred = settings[key]
            relax = _relaxation_steps(smp, A, model.N)
            burn = int(min(burn_in_max * n_steps, max(1, burn_in_relax * relax)))
            init = rng.multivariate_normal(theta_star, pred, size=n_chains)
            kept = Samples(start=burn, thin=thin)
            r = run(model, smp, n_chains=n_chains, n_steps=n_steps, init=init, seed=seed + 1 + i,
                    observers=[kept], A=A, divergence=Divergence(on_divergence="mark"))
            X = kept.pooled().cpu().numpy()
            sub = X[rng.choice(X.shape[0], min(keep, X.shape[0]), replace=False)]
            out[key] = {"mean": kept.mean(), "cov": kept.cov(), "pred": pred, "eps": smp.eps, "relax": relax,
                        "pred_discrete": _discrete_prediction(smp, A, C, model.N),
                        "burn_in": burn, "samples": sub, "n_diverged": r.n_diverged}
        o = out[key]
        o["kl_qp"] = th.gaussian_kl(o["mean"], o["cov"], post_mean, post_cov)
        o["kl_pq"] = th.gaussian_kl(post_mean, post_cov, o["mean"], o["cov"])
        if o["pred"] is not None:
            o["kl_qp_pred"] = th.gaussian_kl(theta_star, o["pred"], post_mean, post_cov)
            o["kl_pq_pred"] = th.gaussian_kl(post_mean, post_cov, theta_star, o["pred"])
        else:
            o["kl_qp_pred"] = o["kl_pq_pred"] = float("nan")
        o["kl_pq_pred_discrete"] = (th.gaussian_kl(post_mean, post_cov, theta_star, o["pred_discrete"])
                                    if o.get("pred_discrete") is not None else float("nan"))
    return {"methods": out, "A": A, "C": C, "post_mean": np.asarray(post_mean), "post_cov": np.asarray(post_cov)}
