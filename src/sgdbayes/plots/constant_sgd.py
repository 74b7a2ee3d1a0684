"""Figures of chapter 3 (constant SGD as approximate Bayesian inference). Each function takes arrays and returns a
Figure (``sgdbayes.plots.new_figure``: the book's width and fonts); nothing here computes beyond ellipse geometry."""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

from sgdbayes.plots import PALETTE, new_figure

__all__ = ["covariance_figure", "ellipse", "eps_sweep_figure", "projection_figure", "vem_figure"]

COLORS = {"posterior": "black", "empirical": PALETTE[1], "predicted": PALETTE[0], "samples": PALETTE[7]}


def ellipse(mean, cov, k: float = 3.0, n: int = 200) -> np.ndarray:
    """Points ``[n, 2]`` of the ``k``-sd ellipse ``{x: (x−m)ᵀΣ⁻¹(x−m) = k²}`` of a 2-D Gaussian."""
    w, V = np.linalg.eigh(np.asarray(cov, dtype=float))
    t = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    return np.asarray(mean, dtype=float) + k * (circle * np.sqrt(np.clip(w, 0, None))) @ V.T


def _row_limits(panels, k=3.3):
    """Limits shared by every panel of a row: the widest 3.3-sd extent of any posterior, prediction or fit."""
    half = np.zeros(2)
    for p in panels:
        covs = [p["posterior"][1], np.cov(np.asarray(p["samples"]).T)]
        if p.get("predicted") is not None:
            covs.append(p["predicted"])
        for c in covs:
            half = np.maximum(half, k * np.sqrt(np.clip(np.diag(c), 0, None)))
        half = np.maximum(half, np.abs(np.asarray(p["samples"]).mean(0)) + k * np.sqrt(np.diag(covs[0])))
    return half


def projection_figure(rows, *, row_titles=(), max_points: int = 1200, seed: int = 0):
    """Fig. 1: one row per model, one panel per method. Each panel: dict with ``title``, ``samples`` ``[n, 2]`` (the
    iterates, centred on the posterior mean and projected on the smallest / largest posterior principal components),
    ``posterior`` ``(mean [2], cov [2, 2])`` and an optional ``predicted`` covariance (Lyapunov, centred at the
    iterates' mean). 3-sd ellipses; the panels of a row share their axes."""
    nrows, ncols = len(rows), max(len(r) for r in rows)
    fig, axes = new_figure(ncols, nrows, width=2.35, height=2.2, sharex="row", sharey="row")
    rng = np.random.default_rng(seed)
    for i, panels in enumerate(rows):
        hx, hy = _row_limits(panels)
        for j, p in enumerate(panels):
            ax = axes[i][j]
            x = np.asarray(p["samples"])
            shown = x[rng.choice(x.shape[0], max_points, replace=False)] if x.shape[0] > max_points else x
            ax.scatter(shown[:, 0], shown[:, 1], s=2, alpha=0.3, color=COLORS["samples"], rasterized=True)
            e = ellipse(*p["posterior"])
            ax.plot(e[:, 0], e[:, 1], color=COLORS["posterior"], lw=1.8)
            me = x.mean(0)
            e = ellipse(me, np.cov(x.T))
            ax.plot(e[:, 0], e[:, 1], color=COLORS["empirical"], lw=1.6, ls="--")
            if p.get("predicted") is not None:
                e = ellipse(me, p["predicted"])
                ax.plot(e[:, 0], e[:, 1], color=COLORS["predicted"], lw=1.6, ls=":")
            ax.set_xlim(-hx, hx)
            ax.set_ylim(-hy, hy)
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.yaxis.set_major_locator(MaxNLocator(4))
            ax.set_title(p["title"] if i == 0 else "")
            if i == nrows - 1:
                ax.set_xlabel("smallest posterior PC")
        axes[i][0].set_ylabel(f"{row_titles[i] if i < len(row_titles) else ''}\nlargest posterior PC")
    handles = [Line2D([], [], color=COLORS["posterior"], lw=1.8), Line2D([], [], color=COLORS["empirical"], ls="--"),
               Line2D([], [], color=COLORS["predicted"], ls=":"),
               Line2D([], [], color=COLORS["samples"], marker="o", ls="", ms=4)]
    fig.legend(handles, ["posterior", "Gaussian fit to the iterates", "Lyapunov (OU) prediction", "iterates"],
               loc="outside lower center", ncol=2, frameon=False)
    return fig


def covariance_figure(predicted, empirical, *, names=None):
    """Fig. 2: the predicted (Lyapunov) and empirical covariance matrices as heat maps on one colour scale, and their
    entries against each other."""
    fig, axes = new_figure(3, 1, width=2.35, height=2.35)
    vmax = max(np.abs(predicted).max(), np.abs(empirical).max())
    im = None
    for ax, M, name in ((axes[0][0], predicted, "predicted (Lyapunov)"), (axes[0][1], empirical, "iterates")):
        im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(name)
        ax.set_xlabel("parameter")
        ax.grid(False)
        ticks = np.arange(0, M.shape[0], max(1, M.shape[0] // 4))
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
    axes[0][0].set_ylabel("parameter")
    fig.colorbar(im, ax=axes[0][:2].tolist(), shrink=0.8, aspect=25, location="bottom", label="covariance")
    ax = axes[0][2]
    iu = np.triu_indices_from(predicted)
    ax.scatter(predicted[iu], empirical[iu], s=10, color=PALETTE[0])
    lim = [min(predicted[iu].min(), empirical[iu].min()), max(predicted[iu].max(), empirical[iu].max())]
    ax.plot(lim, lim, color="grey", lw=1, ls="--")
    ax.xaxis.set_major_locator(MaxNLocator(3))
    ax.set_xlabel("predicted entry")
    ax.set_ylabel("iterates' entry")
    ax.set_title("entries, y = x dashed")
    return fig


def eps_sweep_figure(eps, kl_pq, kl_qp, kl_pq_pred, kl_qp_pred, eps_star, *, eps_limit=None):
    """KL between the Gaussian fit of the iterates and the posterior against the learning rate, both directions,
    measured (points) and predicted (lines), with ε* and the stability limit."""
    fig, axes = new_figure(2, 1, width=3.4, height=2.8, sharex=True)
    for ax, meas, pred, title in ((axes[0][0], kl_pq, kl_pq_pred, "KL(posterior ‖ stationary)"),
                                  (axes[0][1], kl_qp, kl_qp_pred, "KL(stationary ‖ posterior)")):
        ax.plot(eps, pred, color=COLORS["predicted"], lw=1.8, label="Lyapunov prediction")
        ax.plot(eps, meas, "o", color=COLORS["empirical"], label="chains (Gaussian fit)")
        ax.axvline(eps_star, color="black", ls="--", lw=1, label="ε* (Eq. 15)")
        if eps_limit is not None and eps_limit <= 1.2 * max(eps):
            ax.axvline(eps_limit, color="red", ls=":", lw=1, label="stability limit")
        ax.set_xscale("log")
        _plain_log_y(ax)
        ax.set_xlabel("learning rate ε")
        ax.set_title(title)
    axes[0][0].set_ylabel("KL [nats]")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    return fig


def _plain_log_y(ax):
    """Log-scaled y axis labelled in plain numbers (no ``2×10⁰`` minor labels): 1, 2, 5, 10, ... over a wide
    range, a few evenly spaced values over a narrow one. Call after the data are drawn."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    wide = hi > 5 * lo
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)) if wide else MaxNLocator(4))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _times(f) -> str:
    return "" if f == 1 else f"{f:g}"


def _finite(x):
    return x is not None and np.isfinite(x)


def vem_figure(r):
    """Fig. 6 analogue for one data set: (left) the validation log-likelihood of the MAP against the prior precision
    λ with each estimate of λ; (middle) the closed-form EM maps ``f_q(λ)`` against ``f = λ`` (their crossings are
    the fixed points) with each VEM run at its own M-step; (right) the λ traces of constant-SGD and BBVI VEM."""
    fig, axes = new_figure(3, 1, width=2.35, height=3.1)
    lam = np.asarray(r["lambdas"])
    vem_colors = [PALETTE[1], PALETTE[4], PALETTE[3]]
    ax = axes[0][0]
    ax.plot(lam, r["scores"], "o-", color=PALETTE[0], ms=3)
    marks = [(r["lam_val"], "validation optimum", "black", "-"),
             (r["fixed"].get("laplace"), "EM, Laplace q (evidence)", "grey", "--"),
             (r["lam_bbvi"], "BBVI VEM", PALETTE[2], ":")]
    marks += [(v["lam"], f"constant-SGD VEM, {_times(v['factor'])}ε*", vem_colors[i % 3], "-.")
              for i, v in enumerate(r["vem"])]
    handles = []
    for x, name, c, ls in marks:
        if _finite(x):
            ax.axvline(x, color=c, ls=ls, lw=1.4)
            handles.append((Line2D([], [], color=c, ls=ls, lw=1.4), f"{name}: λ = {x:.3g}"))
    ax.set_xscale("log")
    ax.set_xlabel("prior precision λ")
    ax.set_ylabel("validation log-lik. / example")
    ax.set_title("held-out fit of the MAP")
    ax = axes[0][1]
    ax.plot(lam, lam, color="red", lw=1)
    handles.append((Line2D([], [], color="red", lw=1), "f(λ) = λ"))
    styles = {"laplace": ("EM map, Laplace q", "black", "-"), "meanfield": ("EM map, mean-field q", PALETTE[2], "--"),
              "map": ("EM map, point mass", "grey", ":"), "sgd": ("EM map, OU prediction at ε*", PALETTE[4], "-.")}
    for k, (name, c, ls) in styles.items():
        f = np.asarray(r["maps"].get(k, np.full(lam.shape, np.nan)), dtype=float)
        if np.isfinite(f).any():
            # the dotted point-mass map is drawn on top so that it stays visible where it meets another map
            ax.plot(lam, f, color=c, ls=ls, marker=".", ms=4, lw=2.2 if ls == ":" else 1.4, zorder=3 if ls == ":" else 2)
            handles.append((Line2D([], [], color=c, ls=ls), name))
    for i, v in enumerate(r["vem"]):
        ax.plot([v["lam"]], [v["m_step"]], "*", ms=10, color=vem_colors[i % 3])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("prior precision λ")
    ax.set_ylabel("EM update f(λ)")
    ax.set_title("EM maps; fixed points on f = λ")
    ax = axes[0][2]
    for i, v in enumerate(r["vem"]):
        ax.plot(np.arange(1, len(v["trace"]) + 1), v["trace"], color=vem_colors[i % 3])
    bt = np.asarray(r["bbvi_trace"])
    ax.plot(1 + 50 * np.arange(len(bt)), bt, color=PALETTE[2], ls=":", lw=2)
    ax.set_xscale("log")
    _plain_log_y(ax)
    ax.set_xlabel("iteration")
    ax.set_ylabel("λ")
    ax.set_title("λ during VEM")
    fig.legend([h for h, _ in handles], [t for _, t in handles], loc="outside lower center", ncol=2, frameon=False)
    return fig
