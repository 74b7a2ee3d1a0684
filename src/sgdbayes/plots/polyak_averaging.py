"""Figures of the Polyak-averaging chapter (Mandt et al. 2017 §6–7.2). Each function takes results, returns a Figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Ellipse
from matplotlib.ticker import MaxNLocator

from sgdbayes.plots import PALETTE, new_figure


def add_ellipse(ax, cov, center=(0.0, 0.0), *, n_sd: float = 2.0, **kw):
    """Draw the ``n_sd``-standard-deviation ellipse of a 2×2 covariance ``cov`` on ``ax``."""
    lam, U = np.linalg.eigh(np.asarray(cov, dtype=float))
    lam = np.clip(lam, 0, None)
    angle = np.degrees(np.arctan2(U[1, 1], U[0, 1]))
    kw.setdefault("zorder", 3)  # above any scatter of points
    e = Ellipse(center, 2 * n_sd * np.sqrt(lam[1]), 2 * n_sd * np.sqrt(lam[0]), angle=angle, fill=False, **kw)
    ax.add_patch(e)
    return e


def ellipses(ax, covs: dict, *, points: dict | None = None, n_sd: float = 2.0, unit: str = "",
             lim_sd: float | None = None) -> None:
    """``n_sd``-sd covariance ellipses (labelled "2-sd ellipse: <label>") and optional scatter ``points[label] =
    [n, 2]`` of several laws on one axis; the axes span ``lim_sd`` (default ``1.15·n_sd``) sd of the widest law."""
    styles = ["-", "--", ":", "-."]
    for i, (label, cov) in enumerate(covs.items()):
        add_ellipse(ax, cov, n_sd=n_sd, color=PALETTE[i], lw=2, ls=styles[i % 4], label=f"{n_sd:g}-sd ellipse: {label}")
    for i, (label, pts) in enumerate((points or {}).items()):
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.35, color="0.5" if "raw" in label else PALETTE[1], label=label,
                   zorder=1)
    r = max(np.sqrt(np.linalg.eigvalsh(np.asarray(c, float)).max()) for c in covs.values()) * (lim_sd or 1.15 * n_sd)
    ax.set_xlim(-r, r)
    ax.set_ylim(-r, r)
    ax.set_aspect("equal")
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel(f"θ₁ − θ*₁{unit}")
    ax.set_ylabel(f"θ₂ − θ*₂{unit}")


def plot_independence(df: pd.DataFrame):
    """``df`` rows: config label, entry ("(1,1)", "(1,2)", "(2,2)"), measured ``T·S·Cov`` with ``se``, ``theory``.
    One panel per matrix entry: the scaled averaged covariance for every (ε, S, H) beside ``A⁻¹CA⁻ᵀ``."""
    entries = list(dict.fromkeys(df["entry"]))
    fig, axes = new_figure(len(entries), 1, width=3.4, height=3.8, sharey=True)
    for ax, ent in zip(axes[0], entries):
        sub = df[df["entry"] == ent]
        y = np.arange(len(sub))
        ax.errorbar(sub["measured"], y, xerr=2 * sub["se"], fmt="o", color=PALETTE[0], label="chains (±2 s.e.)")
        ax.scatter(sub["exact"], y, marker="x", color=PALETTE[3], zorder=3, label="exact, finite T")
        ax.axvline(sub["theory"].iloc[0], color="k", ls="--", lw=1.2, label="A⁻¹CA⁻ᵀ")
        ax.set_yticks(y, sub["config"])
        ax.set_title(f"entry {ent}")
        ax.set_xlabel("T·S·Cov(μ_T)  (θ units²)")
    axes[0][0].invert_yaxis()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize="small", frameon=False)
    return fig


def plot_breakdown(T_grid, curves: dict, points: dict | None = None, *, bound=None, mc_floor: float | None = None):
    """Relative error ``‖Cov(μ_T) − A⁻¹CA⁻ᵀ/(TS)‖/‖·‖`` against ``T``: exact lines (``curves[key] = [len(T)]``, a
    float key being a fraction of the stability limit), simulated points (``points[key] = (T, err)`` or ``[[T,
    err], ...]``), optionally the continuous-time ``bound`` line and the
    Monte-Carlo error level ``mc_floor`` of the points (below it a point measures noise, not the error)."""
    fig, axes = new_figure(1, 1, width=6.0, height=4.0)
    ax = axes[0][0]
    for i, (key, err) in enumerate(curves.items()):
        label = f"ε = {key:g} × 2/λ_max" if isinstance(key, float) else str(key)
        ax.plot(T_grid, err, color=PALETTE[i], lw=2, label=label)
        if points and key in points:
            t, e = np.asarray(points[key], dtype=float).T if not isinstance(points[key], tuple) else points[key]
            ax.scatter(t, e, color=PALETTE[i], edgecolor="k", zorder=3, s=30)
    if points:
        ax.scatter([], [], color="w", edgecolor="k", s=30, label="simulated chains")
    if bound is not None:
        ax.plot(T_grid, bound, color="k", ls=":", label="OU (continuous time), ε→0")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(0.1, color="grey", lw=0.8, label="10 %")
    if mc_floor is not None:
        ax.axhline(mc_floor, color="grey", ls=":", lw=1.2, label="Monte-Carlo error of the points")
    ax.set_xlabel("averaging window T (iterations)")
    ax.set_ylabel("relative error of Cov(μ_T) vs A⁻¹CA⁻ᵀ/(TS)")
    ax.legend(fontsize="small")
    return fig


def plot_fig3(raw_xy, avg_xy, covs: dict, *, unit: str = ""):
    """Paper's Fig. 3: raw SGD iterates and window averages projected on two posterior principal directions, with the
    2-sd ellipses of the posterior, the averaged iterates and the raw iterates (left), and a zoom without the raw
    iterates (right)."""
    fig, axes = new_figure(2, 1, width=4.6, height=4.4)
    ellipses(axes[0][0], covs, points={"raw SGD iterates": raw_xy, "window averages": avg_xy}, unit=unit, n_sd=2.0,
             lim_sd=3.0)
    axes[0][0].set_title("raw iterates and window averages")
    zoom = {k: v for k, v in covs.items() if "raw" not in k}
    ellipses(axes[0][1], zoom, points={"window averages": avg_xy}, unit=unit, n_sd=2.0, lim_sd=3.0)
    axes[0][1].set_title("zoom: window averages vs posterior")
    for a in axes[0]:
        a.set_xlabel(f"smallest-variance PC{unit}")
        a.set_ylabel(f"largest-variance PC{unit}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize="small", frameon=False)
    return fig


def plot_variance_traces(traces_by_start: dict, true_var, coords: dict, *, predictions: dict | None = None,
                         tol: float = 0.1, y_max: float = 3.0):
    """Fig. 4: one row per start (``traces_by_start[start][label] = VarianceTrace``), one column per coordinate of
    ``coords`` (smallest / largest posterior variance): each sampler's estimate of the marginal variance divided by
    the exact one — mean over chains (line) ±1 sd across chains (band) — against passes through the data (log), with
    the ±``tol`` band and, dotted, ``predictions[label] = (passes [P], ratio [P, len(coords)])`` where the theory
    gives one. The panels share the x axis, and the y axis within a row (clipped at ``y_max``)."""
    starts = list(traces_by_start)
    fig, axes = new_figure(2, len(starts), width=3.4, height=2.5, sharex=True, sharey="row")
    labels = list(next(iter(traces_by_start.values())))
    for r, start in enumerate(starts):
        lo, hi = 0.0, 1.0 + 2 * tol
        for j, (which, c) in enumerate(coords.items()):
            ax = axes[r][j]
            ax.axhspan(1 - tol, 1 + tol, color="0.85", lw=0)
            ax.axhline(1.0, color="k", ls="--", lw=1.0)
            for i, label in enumerate(labels):
                tr = traces_by_start[start][label]
                v = tr.var[:, :, c] / true_var[c]
                m, sd = v.mean(1), v.std(1)
                ax.plot(tr.passes, m, color=PALETTE[i], lw=1.8)
                ax.fill_between(tr.passes, m - sd, m + sd, color=PALETTE[i], alpha=0.18, lw=0)
                lo, hi = min(lo, float((m - sd).min())), max(hi, float((m + sd).max()))
                if predictions and label in predictions and r == 0:
                    p, ratio = predictions[label]
                    ax.plot(p, ratio[:, j], color=PALETTE[i], ls=":", lw=1.6)
            ax.set_xscale("log")
            if r == 0:
                ax.set_title(f"{which} posterior variance")
            if r == len(starts) - 1:
                ax.set_xlabel("passes through the data")
        axes[r][0].set_ylabel(f"from {start}\nestimate / exact")
        hi = min(hi, y_max)
        pad = 0.04 * (hi - lo)
        axes[r][0].set_ylim(lo - pad, hi + pad)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=PALETTE[i], lw=1.8) for i in range(len(labels))]
    names = list(labels)
    if predictions:
        handles.append(Line2D([], [], color="0.3", ls=":", lw=1.6))
        names.append("theory (dotted; from the mode)")
    handles.append(Patch(color="0.85"))
    names.append(f"exact ±{tol:.0%}")
    fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False)
    return fig


def plot_covariance_maps(posterior, covs: dict):
    """Fig. 5: the posterior covariance and each sampler's estimate of it as heat maps on one colour scale, with the
    relative Frobenius error of each estimate in its title."""
    mats = {"exact posterior": np.asarray(posterior), **{k: np.asarray(v) for k, v in covs.items()}}
    ncols = 3
    nrows = int(np.ceil(len(mats) / ncols))
    fig, axes = new_figure(ncols, nrows, width=2.3, height=2.2)
    vmax = max(np.abs(m).max() for m in mats.values())
    im = None
    for ax, (name, M) in zip(axes.ravel(), mats.items()):
        im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        err = np.linalg.norm(M - mats["exact posterior"]) / np.linalg.norm(mats["exact posterior"])
        ax.set_title(name if name == "exact posterior" else f"{name}\nrel. error {err:.2f}")
        ax.grid(False)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(mats):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, aspect=25, label="covariance")
    return fig


def plot_scaling(df: pd.DataFrame):
    """Raw iterate variance (∝ ε/S) vs averaged variance (∝ 1/(TS)) per config: ``df`` columns config, kind, value."""
    fig, axes = new_figure(1, 1, width=max(6.0, 0.7 * df["config"].nunique()), height=4.2)
    sns.barplot(df, x="config", y="value", hue="kind", ax=axes[0][0], palette=PALETTE[:2])
    axes[0][0].set_yscale("log")
    axes[0][0].set_xlabel("configuration (ε, S, preconditioner)")
    axes[0][0].set_ylabel("trace of covariance (θ units²)")
    axes[0][0].tick_params(axis="x", rotation=35)
    for t in axes[0][0].get_xticklabels():
        t.set_horizontalalignment("right")
    sns.move_legend(axes[0][0], "upper left", bbox_to_anchor=(1.01, 1), title=None, frameon=False)
    return fig
