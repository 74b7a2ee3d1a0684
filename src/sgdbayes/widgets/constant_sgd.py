"""Explorer for chapter 3: pick the learning rate (log scale, in units of ε*), the minibatch size and a
preconditioner; see the predicted (Lyapunov) and measured (chains) stationary 3-sd ellipses over the posterior,
projected on its smallest and largest principal components. Axis limits are fixed across redraws."""

from __future__ import annotations

import numpy as np

from sgdbayes import widgets
from sgdbayes.ou.driver import run
from sgdbayes.ou.observers import Divergence
from sgdbayes.ou.samplers import sgd
from sgdbayes.ou.theory import lyapunov_covariance, optimal_learning_rate, optimal_preconditioner, stability_limit
from sgdbayes.plots import new_figure
from sgdbayes.plots.constant_sgd import COLORS, ellipse

__all__ = ["PRECONDITIONERS", "stationary_explorer", "stationary_figure"]

PRECONDITIONERS = ("none", "diagonal", "full")


def _setting(A, C, N, S, preconditioner, eps_factor):
    """``(H, ε)``: plain SGD at ``eps_factor·ε*``, or the optimal preconditioner at ``ε = eps_factor``."""
    if preconditioner == "none":
        return None, eps_factor * optimal_learning_rate(C, N=N, S=S)
    return optimal_preconditioner(C, N=N, S=S, diagonal=preconditioner == "diagonal"), eps_factor


def stationary_figure(model, A, C, post_mean, post_cov, *, eps_factor: float = 1.0, S: int = 100,
                      preconditioner: str = "none", n_chains: int = 300, n_steps: int = 300, seed: int = 0,
                      limits=None):
    """One view of the explorer (``eps_factor`` multiplies ε* for plain SGD, the step of the optimal preconditioner
    otherwise); ``limits`` ``(half-width x, half-width y)`` fix the axes."""
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
    N = model.N
    H, eps = _setting(A, C, N, S, preconditioner, eps_factor)
    limit = stability_limit(A, H)
    w, V = np.linalg.eigh(post_cov)
    U = V[:, [0, -1]]
    fig, axes = new_figure(1, 1, width=4.6, height=3.4)
    ax = axes[0][0]
    e = ellipse(np.zeros(2), U.T @ post_cov @ U)
    ax.plot(e[:, 0], e[:, 1], color=COLORS["posterior"], lw=2, label="posterior")
    name = {"none": "plain SGD", "diagonal": "diagonal H*", "full": "full H*"}[preconditioner]
    if eps >= limit:
        widgets.no_data(ax, f"ε = {eps:.3g} ≥ stability limit {limit:.3g}:\nthe chains diverge, none is run")
        ax.set_title(f"{name}, S = {S}")
    else:
        pred = lyapunov_covariance(A, C, eps=eps, S=S, H=H)
        r = run(model, sgd(eps, S, H=H), n_chains=n_chains, n_steps=n_steps, A=A,
                init=np.random.default_rng(seed).multivariate_normal(post_mean, pred, n_chains), seed=seed,
                divergence=Divergence(on_divergence="mark"))
        x = (r.final[~r.diverged].double().cpu().numpy() - post_mean) @ U
        ax.scatter(x[:, 0], x[:, 1], s=4, alpha=0.35, color=COLORS["samples"], label="final states")
        e = ellipse(x.mean(0), np.cov(x.T))
        ax.plot(e[:, 0], e[:, 1], color=COLORS["empirical"], ls="--", lw=1.8, label="chains (Gaussian fit)")
        e = ellipse(x.mean(0), U.T @ pred @ U)
        ax.plot(e[:, 0], e[:, 1], color=COLORS["predicted"], ls=":", lw=1.8, label="Lyapunov prediction")
        ax.set_title(f"{name}, ε = {eps:.3g}, S = {S}")
    ax.set_xlabel("smallest posterior PC")
    ax.set_ylabel("largest posterior PC")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False)
    if limits is not None:
        widgets.fix_limits(ax, xlim=(-limits[0], limits[0]), ylim=(-limits[1], limits[1]))
    return fig


def stationary_explorer(res: dict, *, model, S: int = 100, n_chains: int = 300, n_steps: int = 300, seed: int = 0):
    """``(default figure, explorer widget)`` for a Table-1 result ``res`` (its ``A``, ``C`` and posterior) and its
    model. The learning-rate slider is logarithmic, from ε*/10 to the stability limit of plain SGD (in units of ε*);
    the minibatch size runs from S/4 to 4S; the axes are fixed (wide enough for 4ε* at S/4)."""
    A, C, pm, pc = res["A"], res["C"], res["post_mean"], res["post_cov"]
    N = model.N
    eps_star = optimal_learning_rate(C, N=N, S=S)
    hi = 0.999 * stability_limit(A) / eps_star
    w, V = np.linalg.eigh(pc)
    U = V[:, [0, -1]]
    # fixed axes: wide enough for plain SGD at 4ε* with S/4 (16× the default variance); wider laws are clipped
    S_min = max(1, S // 4)
    widest = lyapunov_covariance(A, C, eps=min(4 * optimal_learning_rate(C, N=N, S=S_min), 0.9 * stability_limit(A)),
                                 S=S_min)
    limits = 3.3 * np.sqrt(np.maximum(np.diag(U.T @ widest @ U), np.diag(U.T @ pc @ U)))
    kw = dict(n_chains=n_chains, n_steps=n_steps, seed=seed, limits=limits)
    fig0 = stationary_figure(model, A, C, pm, pc, eps_factor=1.0, S=S, preconditioner="none", **kw)

    def draw(eps_factor, S, preconditioner):
        return stationary_figure(model, A, C, pm, pc, eps_factor=eps_factor, S=S, preconditioner=preconditioner,
                                 **kw)

    import ipywidgets as ipw

    controls = {"eps_factor": widgets.log_slider("ε / ε*", lo=0.1, hi=max(hi, 1.01), value=1.0),
                "S": ipw.IntSlider(value=S, min=S_min, max=4 * S, description="S", continuous_update=False),
                "preconditioner": ipw.Dropdown(options=PRECONDITIONERS, value="none", description="H")}
    return fig0, widgets.explorer(draw, controls, what="This explorer")
