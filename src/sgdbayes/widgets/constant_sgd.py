"""Explorer for chapter 3: pick ε, S and a preconditioner; see the predicted (Lyapunov) and empirical (chains)
stationary 3-sd ellipses over the posterior, projected on its smallest and largest principal components."""

from __future__ import annotations

import numpy as np

from sgdbayes.ou.driver import run
from sgdbayes.ou.observers import Divergence
from sgdbayes.ou.samplers import sgd
from sgdbayes.ou.theory import lyapunov_covariance, optimal_preconditioner, stability_limit
from sgdbayes.plots import new_figure
from sgdbayes.plots.constant_sgd import COLORS, ellipse

__all__ = ["stationary_figure", "stationary_explorer"]

PRECONDITIONERS = ("none", "diagonal", "full")


def _preconditioner(kind, C, N, S):
    if kind == "none":
        return None, 1.0
    return optimal_preconditioner(C, N=N, S=S, diagonal=(kind == "diagonal")), 1.0


def stationary_figure(model, A, C, post_mean, post_cov, *, eps_factor: float = 1.0, S: int = 10,
                      preconditioner: str = "none", n_chains: int = 300, n_steps: int = 300, seed: int = 0):
    """One view: ``eps_factor`` multiplies ε* (plain SGD) or the optimal preconditioner's step (diag/full)."""
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
    N = model.N
    H, _ = _preconditioner(preconditioner, C, N, S)
    if H is None:
        eps = eps_factor * 2 * S * A.shape[0] / (N * np.trace(C))
    else:
        eps = eps_factor
    limit = stability_limit(A, H)
    w, V = np.linalg.eigh(post_cov)
    U = V[:, [0, -1]]                                         # smallest, largest posterior PC
    fig, axes = new_figure(1, 1, width=5.0, height=4.2)
    ax = axes[0][0]
    e = ellipse(U.T @ post_mean, U.T @ post_cov @ U)
    ax.plot(e[:, 0], e[:, 1], color=COLORS["posterior"], lw=2, label="posterior")
    if eps >= limit:
        ax.set_title(f"ε = {eps:.3g} ≥ stability limit {limit:.3g}: the chains diverge")
    else:
        pred = lyapunov_covariance(A, C, eps=eps, S=S, H=H)
        # start from the predicted stationary law: the run then only has to correct the prediction's small errors
        r = run(model, sgd(eps, S, H=H), n_chains=n_chains, n_steps=n_steps,
                init=np.random.default_rng(seed).multivariate_normal(post_mean, pred, n_chains), seed=seed,
                divergence=Divergence(on_divergence="mark"))
        x = r.final[~r.diverged].double().cpu().numpy() @ U
        ax.scatter(x[:, 0], x[:, 1], s=4, alpha=0.35, color=COLORS["samples"], label="final iterates")
        e = ellipse(x.mean(0), np.cov(x.T))
        ax.plot(e[:, 0], e[:, 1], color=COLORS["empirical"], ls="--", lw=1.8, label="empirical")
        e = ellipse(x.mean(0), U.T @ pred @ U)
        ax.plot(e[:, 0], e[:, 1], color=COLORS["predicted"], ls=":", lw=1.8, label="Lyapunov prediction")
        name = {"none": "no", "diagonal": "diagonal H*,", "full": "full H*,"}[preconditioner]
        ax.set_title(f"{name} preconditioner, ε = {eps:.3g}, S = {S}")
    ax.set_xlabel("θ on smallest posterior PC [std. units]")
    ax.set_ylabel("θ on largest posterior PC [std. units]")
    ax.legend(fontsize="x-small")
    return fig


def stationary_explorer(model, A, C, post_mean, post_cov, **defaults):
    """``(static default figure, ipywidgets.interactive)``."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    static = stationary_figure(model, A, C, post_mean, post_cov, **defaults)

    first = [True]

    def show(eps_factor=1.0, S=10, preconditioner="none"):
        if first[0]:                       # the default view is the static figure already shown: do not draw it twice
            first[0] = False
            return
        fig = stationary_figure(model, A, C, post_mean, post_cov, eps_factor=eps_factor, S=S,
                                preconditioner=preconditioner,
                                **{k: v for k, v in defaults.items() if k in ("n_chains", "n_steps", "seed")})
        plt.show(fig)

    ui = widgets.interactive(
        show,
        eps_factor=widgets.FloatLogSlider(value=defaults.get("eps_factor", 1.0), base=10, min=-1.5, max=1.0,
                                          step=0.1, description="ε / ε*"),
        S=widgets.IntSlider(value=defaults.get("S", 10), min=1, max=100, description="S"),
        preconditioner=widgets.Dropdown(options=PRECONDITIONERS, value=defaults.get("preconditioner", "none")),
    )
    return static, ui
