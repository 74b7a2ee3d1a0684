"""Figures of chapter 3 (constant SGD as approximate Bayesian inference). Each function takes arrays and returns a
Figure; nothing here computes anything beyond ellipse geometry."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator, NullFormatter

from sgdbayes.plots import PALETTE, new_figure

__all__ = ["covariance_figure", "ellipse", "eps_sweep_figure", "projection_figure", "vem_figure"]

COLORS = {"posterior": "black", "empirical": PALETTE[1], "predicted": PALETTE[0], "samples": PALETTE[7]}


def ellipse(mean, cov, k: float = 3.0, n: int = 200) -> np.ndarray:
    """Points ``[n, 2]`` of the ``k``-sd ellipse ``{x: (x−m)ᵀΣ⁻¹(x−m) = k²}`` of a 2-D Gaussian."""
    w, V = np.linalg.eigh(np.asarray(cov, dtype=float))
    t = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    return np.asarray(mean, dtype=float) + k * (circle * np.sqrt(np.clip(w, 0, None))) @ V.T


def projection_figure(panels, *, unit: str = "std. units", max_points: int = 1500, seed: int = 0):
    """Fig.-1-style panels. Each panel: dict with ``title``, ``samples`` ``[n, 2]`` (iterates projected on the
    smallest/largest posterior principal components), ``posterior`` ``(mean [2], cov [2,2])``, optional
    ``predicted`` cov ``[2,2]`` (Lyapunov) centred at the samples' mean. Draws 3-sd ellipses."""
    fig, axes = new_figure(len(panels), 1, width=4.0, height=3.8)
    rng = np.random.default_rng(seed)
    for ax, p in zip(axes[0], panels):
        x = np.asarray(p["samples"])
        if x.shape[0] > max_points:
            x = x[rng.choice(x.shape[0], max_points, replace=False)]
        ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.3, color=COLORS["samples"], label="iterates", rasterized=True)
        m0, c0 = p["posterior"]
        e = ellipse(m0, c0)
        ax.plot(e[:, 0], e[:, 1], color=COLORS["posterior"], lw=2, label="posterior")
        me = np.asarray(p["samples"]).mean(0)
        e = ellipse(me, np.cov(np.asarray(p["samples"]).T))
        ax.plot(e[:, 0], e[:, 1], color=COLORS["empirical"], lw=1.8, ls="--", label="iterates (Gaussian fit)")
        if p.get("predicted") is not None:
            e = ellipse(me, p["predicted"])
            ax.plot(e[:, 0], e[:, 1], color=COLORS["predicted"], lw=1.8, ls=":", label="Lyapunov prediction")
        ax.set_title(p["title"])
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_xlabel(f"θ on smallest posterior PC [{unit}]")
    axes[0][0].set_ylabel(f"θ on largest posterior PC [{unit}]")
    axes[0][0].legend(fontsize="x-small", loc="best")
    return fig


def covariance_figure(predicted, empirical, *, title: str = ""):
    """Fig.-2-style: predicted and empirical covariance matrices side by side (same colour scale) and their entries
    against each other."""
    fig, axes = new_figure(3, 1, width=3.9, height=3.5)
    vmax = max(np.abs(predicted).max(), np.abs(empirical).max())
    for ax, M, name in ((axes[0][0], predicted, "predicted (Lyapunov)"), (axes[0][1], empirical, "empirical")):
        im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(name)
        ax.set_xlabel("parameter index")
        ax.set_ylabel("parameter index")
    fig.colorbar(im, ax=axes[0][1], shrink=0.8, label="covariance [standardised units²]")
    ax = axes[0][2]
    iu = np.triu_indices_from(predicted)
    ax.scatter(predicted[iu], empirical[iu], s=12, color=PALETTE[0])
    lim = [min(predicted[iu].min(), empirical[iu].min()), max(predicted[iu].max(), empirical[iu].max())]
    ax.plot(lim, lim, color="grey", lw=1, ls="--", label="y = x")
    ax.set_xlabel("predicted entry [units²]")
    ax.set_ylabel("empirical entry [units²]")
    ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def eps_sweep_figure(eps, kl_empirical, kl_predicted, eps_star, *, eps_limit=None, title: str = ""):
    """KL(stationary ‖ posterior) against the learning rate, empirical (chains) and predicted (Lyapunov)."""
    fig, axes = new_figure(1, 1, width=5.2, height=3.6)
    ax = axes[0][0]
    ax.plot(eps, kl_predicted, color=COLORS["predicted"], lw=2, label="Lyapunov prediction")
    ax.plot(eps, kl_empirical, "o", color=COLORS["empirical"], label="chains (Gaussian fit)")
    ax.axvline(eps_star, color="black", ls="--", lw=1, label="ε* = 2SD / (N Tr BBᵀ)")
    if eps_limit is not None:
        ax.axvline(eps_limit, color="red", ls=":", lw=1, label="stability limit 2/λ_max(A)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("learning rate ε [dimensionless]")
    ax.set_ylabel("KL(stationary ‖ posterior) [nats]")
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def vem_figure(rows):
    """Paper Fig. 6 analogue. Each row: dict ``name``, ``lambdas`` grid, ``scores`` validation log-likelihood,
    ``trace`` VEM λ per step, ``lam_vem``, ``lam_bbvi``, ``lam_val``. One column per data set, two rows."""
    fig, axes = new_figure(len(rows), 2, width=4.4, height=3.2)
    for j, r in enumerate(rows):
        ax = axes[0][j]
        ax.plot(r["lambdas"], r["scores"], "o-", color=PALETTE[0])
        for lam, name, c, ls in ((r["lam_val"], "validation-optimal", "black", "-"),
                                 (r["lam_vem"], "constant-SGD VEM", PALETTE[1], "--"),
                                 (r["lam_bbvi"], "BBVI", PALETTE[2], ":")):
            ax.axvline(lam, color=c, ls=ls, lw=1.6, label=f"{name}: {lam:.3g}")
        ax.set_xscale("log")
        ax.set_xlabel("prior precision λ [1/units²]")
        ax.set_ylabel("validation log-lik. [nats/example]")
        ax.set_title(r["name"])
        ax.legend(fontsize="x-small")
        ax = axes[1][j]
        ax.plot(np.arange(1, len(r["trace"]) + 1), r["trace"], color=PALETTE[1])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("VEM iteration [steps]")
        ax.set_ylabel("λ [1/units²]")
    return fig
