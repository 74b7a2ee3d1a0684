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
    cb = fig.colorbar(im, ax=axes[0][1], shrink=0.8)
    cb.ax.set_title("[units²]", fontsize="small")
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
    ticks = np.asarray(eps)[:: max(1, len(eps) // 4)]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:.2g}" for t in ticks])
    ax.set_xlabel("learning rate ε [dimensionless]")
    ax.set_ylabel("KL(q ‖ p) = KL(stationary ‖ posterior) [nats]")
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def _finite(x):
    return x is not None and np.isfinite(x)


def vem_figure(rows):
    """Paper Fig. 6 analogue, one column per data set. Each row dict: ``name``, ``lambdas`` grid, ``scores``
    validation log-likelihood, ``lam_val``, ``vem`` (list of dicts ``factor``, ``lam``, ``m_step``, ``trace``),
    ``lam_bbvi``, ``bbvi_trace`` (every 50 steps), ``maps`` (EM maps ``f_q(λ)`` on the grid per q family) and ``fixed``
    (their fixed points). Top: validation log-likelihood with each estimate; middle: the EM maps against ``f = λ``;
    bottom: the λ traces."""
    fig, axes = new_figure(len(rows), 3, width=4.8, height=3.3)
    vem_colors = [PALETTE[1], PALETTE[4], PALETTE[3], PALETTE[5]]
    map_style = {"laplace": ("Laplace posterior (evidence)", "black", "-"),
                 "meanfield": ("mean-field Laplace", PALETTE[2], "--"),
                 "map": ("point mass (MAP)", "grey", ":"),
                 "sgd": ("OU prediction, smaller ε", PALETTE[4], "-.")}
    for j, r in enumerate(rows):
        lam = np.asarray(r["lambdas"])
        ax = axes[0][j]
        ax.plot(lam, r["scores"], "o-", color=PALETTE[0], label="MAP, held-out data")
        marks = [(r["lam_val"], "validation-optimal", "black", "-"),
                 (r["fixed"].get("laplace"), "EM, Laplace q", "black", "--"),
                 (r["lam_bbvi"], "BBVI VEM", PALETTE[2], ":")]
        marks += [(v["lam"], f"const-SGD VEM, ε={v['factor']:g}/λmax", vem_colors[i % 4], "-.")
                  for i, v in enumerate(r["vem"])]
        for x, name, c, ls in marks:
            if _finite(x):
                ax.axvline(x, color=c, ls=ls, lw=1.4, label=f"{name}: {x:.3g}")
        ax.set_xscale("log")
        ax.set_xlabel("prior precision λ [1/units²]")
        ax.set_ylabel("validation log-lik. [nats/example]")
        ax.set_title(r["name"])
        ax.legend(fontsize="xx-small", loc="lower left")
        ax = axes[1][j]
        ax.plot(lam, lam, color="red", lw=1, label="f(λ) = λ")
        for k, (name, c, ls) in map_style.items():
            f = np.asarray(r["maps"].get(k, np.full(lam.shape, np.nan)))
            if np.isfinite(f).any():
                ax.plot(lam, f, color=c, ls=ls, marker=".", label=name)
        for i, v in enumerate(r["vem"]):
            ax.plot([v["lam"]], [v["m_step"]], "*", ms=11, color=vem_colors[i % 4],
                    label=f"VEM run, ε={v['factor']:g}/λmax")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("prior precision λ [1/units²]")
        ax.set_ylabel("M-step P / E_q|θ|² [1/units²]")
        ax.legend(fontsize="xx-small", loc="upper left")
        ax = axes[2][j]
        for i, v in enumerate(r["vem"]):
            ax.plot(np.arange(1, len(v["trace"]) + 1), v["trace"], color=vem_colors[i % 4],
                    label=f"const-SGD VEM, ε={v['factor']:g}/λmax")
        bt = np.asarray(r["bbvi_trace"])
        ax.plot(1 + 50 * np.arange(len(bt)), bt, color=PALETTE[2], ls=":", lw=2, label="BBVI VEM")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("iteration [steps]")
        ax.set_ylabel("λ [1/units²]")
        ax.legend(fontsize="xx-small")
    return fig
