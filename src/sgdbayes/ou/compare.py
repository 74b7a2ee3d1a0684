"""The Table-1 experiment: run every sampler at its setting on one model and compare its stationary law with the
posterior (exact for linear regression, Laplace otherwise).

For each method :func:`compare_samplers` returns the Gaussian fit of its iterates (pooled over kept states and
chains), ``KL(posterior ‖ q)`` (``kl_pq``, the direction of the paper's Table 1: "KL(posterior ‖ stationary)", a
Gaussian fitted to the iterates against the Laplace approximation) and ``KL(q ‖ posterior)`` (``kl_qp``, the
direction its derivation of ε* and H* minimises), beside the Lyapunov (OU) prediction of its covariance and the exact
stationary law of the linearised discrete recursion with the same two KLs. Chains start at the mode plus a draw from
their *predicted* stationary law, so the burn-in only has to remove the gap between prediction and the true stationary
law; ``relax`` (the slowest relaxation time) says whether a run is long enough to mix (``mixed``).

The settings (:func:`sampler_settings`), those of the paper's §7.1 unless said otherwise:

- ``sgd``: ε* = 2SD/(N Tr C) (Eq. 15);  ``sgd_diag`` / ``sgd_full``: the optimal diagonal / full preconditioners H*
  with ε = 1;
- ``sgld``: SGLD at a given step ``sgld_eps`` (the paper's: "the largest rate that yielded stable results");
- ``sgld_matched``: SGLD with the same step on ``L`` as constant SGD at ε*, ``(ε/2)N = ε*`` (this book's addition);
- ``sgfs_diag`` / ``sgfs_full``: SGFS at ε = ε* with injected noise ``EEᵀ = C`` (the paper does not state its
  ``EEᵀ``) and the optimal preconditioner of :func:`~sgdbayes.ou.theory.sgfs_optimal_preconditioner`;
- ``bbvi``: mean-field Gaussian BBVI (reparameterisation gradients on minibatches of the same ``S``).

Where a setting is past the stability limit of the discrete recursion (the optimal preconditioners assume the OU
limit), the preconditioned samplers run at the step below the limit that minimises the exact discrete stationary
law's KL(stationary ‖ posterior) — the discrete analogue of their optimality —, SGLD at ``stable_fraction`` × its
limit; the setting says so (``note``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sgdbayes.ou import theory as th
from sgdbayes.ou.driver import run
from sgdbayes.ou.observers import Divergence, Samples
from sgdbayes.ou.posteriors import bbvi
from sgdbayes.ou.samplers import SGFS, SGLD, Sampler, sgd, sgfs, sgld

__all__ = ["METHODS", "Setting", "compare_samplers", "sampler_settings"]

METHODS = ("sgd", "sgd_diag", "sgd_full", "sgld", "sgld_matched", "sgfs_diag", "sgfs_full", "bbvi")
CHAIN_METHODS = METHODS[:-1]


@dataclass
class Setting:
    """A chain method's sampler, its predicted (Lyapunov) stationary covariance and a note on its step."""

    sampler: Sampler
    pred: np.ndarray
    note: str = ""


def _clip(eps, limit, fraction, kl=None):
    """``(eps, note)``: ``eps`` when it is below the stability limit; otherwise the step in ``(0, limit)`` that
    minimises ``kl(step)`` (the KL of the exact discrete stationary law) when ``kl`` is given, else ``fraction`` ×
    ``limit``."""
    if eps < limit:
        return float(eps), ""
    if kl is None:
        return float(fraction * limit), f"ε {eps:.3g} is past the stability limit {limit:.3g}: run at {fraction:g}×"
    from scipy.optimize import minimize_scalar

    best = minimize_scalar(lambda u: kl(limit * u), bounds=(0.05, 0.995), method="bounded",
                           options={"xatol": 1e-3})
    e = float(limit * best.x)
    return e, (f"ε {eps:.3g} is past the stability limit {limit:.3g}: run at ε = {e:.3g}, which minimises the "
               "exact discrete law's KL(stationary ‖ posterior)")


def sampler_settings(A, C, *, N: int, S: int, sgld_eps: float | None = None, sgfs_eps: float | None = None,
                     stable_fraction: float = 0.5, methods=CHAIN_METHODS) -> dict[str, Setting]:
    """The :class:`Setting` of every chain method in ``methods`` (see the module docstring); ``sgfs_eps`` defaults to
    ε*. An unknown method raises ``ValueError``; ``sgld`` needs ``sgld_eps``."""
    unknown = [m for m in methods if m not in CHAIN_METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; allowed: {', '.join(CHAIN_METHODS)}")
    A = th.check_psd(A, "A")
    C = th.check_psd(C, "C (= BBᵀ)")
    e_star = th.optimal_learning_rate(C, N=N, S=S)
    sgld_limit = 4.0 / (N * np.linalg.eigvalsh(A)[-1])
    out = {}
    for key in methods:
        if key == "sgd":
            out[key] = Setting(sgd(e_star, S, name="constant SGD"), th.lyapunov_covariance(A, C, eps=e_star, S=S))
        elif key in ("sgd_diag", "sgd_full"):
            h = th.optimal_preconditioner(C, N=N, S=S, diagonal=key == "sgd_diag")
            e, note = _clip(1.0, th.stability_limit(A, h), stable_fraction, lambda x, h=h: th.kl_to_posterior(
                th.lyapunov_covariance(A, C, eps=x, S=S, H=h, discrete=True), A, N=N))
            out[key] = Setting(sgd(e, S, H=h, name=f"SGD, {'diagonal' if key == 'sgd_diag' else 'full'} H*"),
                               th.lyapunov_covariance(A, C, eps=e, S=S, H=h), note)
        elif key in ("sgld", "sgld_matched"):
            if key == "sgld":
                if sgld_eps is None:
                    raise ValueError("the 'sgld' method needs sgld_eps (the paper's SGLD step)")
                e, note = _clip(float(sgld_eps), sgld_limit, stable_fraction)
            else:
                e, note = _clip(2.0 * e_star / N, sgld_limit, stable_fraction)
            out[key] = Setting(sgld(e, S, name="SGLD"), th.sgld_covariance(A, C, eps=e, N=N, S=S), note)
        else:
            diag = key == "sgfs_diag"
            e0 = e_star if sgfs_eps is None else float(sgfs_eps)
            Hf = th.sgfs_optimal_preconditioner(C, C, N=N, eps=e0, S=S, diagonal=diag)
            EEt = np.diag(np.diag(C)) if diag else C
            e, note = _clip(e0, th.stability_limit(A, Hf), stable_fraction, lambda x, Hf=Hf, EEt=EEt: th.kl_to_posterior(
                th.sgfs_covariance(A, C, EEt, eps=x, H=Hf, S=S, discrete=True), A, N=N))
            out[key] = Setting(sgfs(e, Hf, EEt, S, name=f"SGFS {'diagonal' if diag else 'full'}"),
                               th.sgfs_covariance(A, C, EEt, eps=e, H=Hf, S=S), note)
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
                     burn_in_max: float = 1 / 3, thin: int = 5, sgld_eps: float | None = None,
                     sgfs_eps: float | None = None, bbvi_steps: int = 2000, bbvi_batch: int | None = -1,
                     stable_fraction: float = 0.5, methods=METHODS, seed: int = 0, keep: int = 4000) -> dict:
    """Run every method in ``methods`` on ``model``; returns ``{"methods": {method: dict}, "A", "C", "post_mean",
    "post_cov"}``, each method with ``kl_pq``, ``kl_qp`` (Gaussian fit to the iterates against the posterior),
    ``kl_pq_pred``, ``kl_qp_pred`` (Lyapunov prediction), ``kl_pq_pred_discrete`` (exact stationary law of the
    linearised discrete recursion), ``mean``, ``cov``, ``pred``, ``pred_discrete``, ``eps``, ``relax`` (slowest
    relaxation time, steps), ``burn_in``, ``mixed`` (the kept part of the run spans at least 5 relaxation times),
    ``note``, ``samples`` (≤ ``keep`` pooled iterates ``[n, P]`` for plots) and ``n_diverged`` (diverged chains are
    left out of every statistic). Chains start at ``post_mean`` plus a draw from the predicted stationary law.
    BBVI estimates the ELBO's gradient on minibatches of ``bbvi_batch`` examples (default ``-1``: the samplers'
    ``S``; ``None``: all examples)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; allowed: {', '.join(METHODS)}")
    theta_star = np.asarray(post_mean, dtype=np.float64)
    A = model.hessian(theta_star)
    C = model.noise_covariance(theta_star)
    settings = sampler_settings(A, C, N=model.N, S=S, sgld_eps=sgld_eps, sgfs_eps=sgfs_eps,
                                stable_fraction=stable_fraction, methods=[m for m in methods if m != "bbvi"])
    rng = np.random.default_rng(seed)
    out = {}
    for i, key in enumerate(methods):
        if key == "bbvi":
            batch = S if bbvi_batch == -1 else bbvi_batch
            q = bbvi(model, family="meanfield", n_steps=bbvi_steps, lr=0.02, n_mc=8, seed=seed, init=theta_star,
                     batch_size=None if batch is None or batch >= model.N else batch)
            out[key] = {"mean": q.mean, "cov": q.cov, "pred": None, "pred_discrete": None, "eps": None,
                        "relax": None, "burn_in": None, "mixed": True, "note": "",
                        "samples": rng.multivariate_normal(q.mean, q.cov, size=min(keep, 2000)), "n_diverged": 0}
        else:
            st = settings[key]
            smp = st.sampler
            relax = _relaxation_steps(smp, A, model.N)
            burn = int(min(burn_in_max * n_steps, max(1, burn_in_relax * relax)))
            init = rng.multivariate_normal(theta_star, st.pred, size=n_chains)
            kept = Samples(start=burn, thin=thin)
            r = run(model, smp, n_chains=n_chains, n_steps=n_steps, init=init, seed=seed + 1 + i, observers=[kept],
                    A=A, divergence=Divergence(on_divergence="mark"))
            X = kept.pooled().cpu().numpy()
            sub = X[rng.choice(X.shape[0], min(keep, X.shape[0]), replace=False)]
            out[key] = {"mean": kept.mean(), "cov": kept.cov(), "pred": st.pred, "eps": smp.eps, "relax": relax,
                        "pred_discrete": _discrete_prediction(smp, A, C, model.N), "burn_in": burn,
                        "mixed": bool(n_steps - burn >= 5 * relax), "note": st.note, "samples": sub,
                        "n_diverged": r.n_diverged}
        o = out[key]
        o["kl_qp"] = th.gaussian_kl(o["mean"], o["cov"], post_mean, post_cov)
        o["kl_pq"] = th.gaussian_kl(post_mean, post_cov, o["mean"], o["cov"])
        if o["pred"] is not None:
            o["kl_qp_pred"] = th.gaussian_kl(theta_star, o["pred"], post_mean, post_cov)
            o["kl_pq_pred"] = th.gaussian_kl(post_mean, post_cov, theta_star, o["pred"])
            o["kl_pq_pred_discrete"] = th.gaussian_kl(post_mean, post_cov, theta_star, o["pred_discrete"])
        else:
            o["kl_qp_pred"] = o["kl_pq_pred"] = o["kl_pq_pred_discrete"] = float("nan")
    return {"methods": out, "A": A, "C": C, "post_mean": np.asarray(post_mean), "post_cov": np.asarray(post_cov)}
