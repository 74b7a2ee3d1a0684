"""Figures of chapter 1, page II (images): P_SGD against P_B per function and per test point, error histograms,
P_B against the critical sample ratio, and the concentration of P_SGD beside the authors' numbers.

Every function takes arrays or results and returns a Figure built with :func:`sgdbayes.plots.new_figure`.
Probabilities are on log axes; in scatter plots colour is the number of errors on E.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import numpy as np

from sgdbayes.functions import FunctionCounts
from sgdbayes.plots import PALETTE, new_figure

CMAP = "viridis"
_MARKERS = ("o", "s", "^", "D", "v")


def _function_points(counts: FunctionCounts, log_pb: np.ndarray):
    """(P_B, P_SGD, index) of the functions with a finite log P_B."""
    lp = np.asarray(log_pb, dtype=float)
    sel = np.flatnonzero(np.isfinite(lp))
    return np.exp(lp[sel]), counts.probabilities()[sel], sel


def scatter_panels(panels: Sequence[tuple[str, FunctionCounts, np.ndarray, str]], true_labels, *, ncols: int = 2,
                   width: float = 3.2):
    """log-log scatter of P_SGD(f|S) (y) against P_B(f|S) (x) per panel ``(title, counts, log_pb, x_label)``; the
    functions without a P_B value are left out. Line y = x, a band of a factor 10 either side, the dotted line
    1/(runs counted). One colour bar (errors on E) and one axis range for all panels."""
    nrows = -(-len(panels) // ncols)
    fig, axes = new_figure(ncols, nrows, width=width, height=width, sharex=True, sharey=True)
    n_e = len(np.asarray(true_labels))
    max_err = max([int(c.errors(true_labels).max()) for _, c, _, _ in panels if c.n_distinct] + [1])
    norm = mpl.colors.Normalize(vmin=0, vmax=max_err)
    lows = [1.0 / max(c.total, 1) for _, c, _, _ in panels]
    for _, c, lp, _ in panels:
        x, y, _ = _function_points(c, lp)
        if x.size:
            lows += [float(x.min()), float(y.min())]
    lo = max(min(lows) / 3, 1e-300)
    grid = np.array([lo, 1.0])
    for ax, (title, c, lp, xlabel) in zip(axes.flat, panels, strict=False):
        x, y, idx = _function_points(c, lp)
        err = c.errors(true_labels)[idx]
        order = np.argsort(-err)
        ax.fill_between(grid, grid / 10, grid * 10, color="0.5", alpha=0.15, lw=0, label="within 10×")
        ax.plot(grid, grid, "k-", lw=1, label="P_SGD = P_B")
        ax.axhline(1.0 / max(c.total, 1), color="0.35", ls=":", lw=1, label="1 / runs")
        ax.scatter(x[order], y[order], c=err[order], cmap=CMAP, norm=norm, s=18, alpha=0.9, edgecolors="none")
        ax.set(xscale="log", yscale="log", xlim=(lo, 1.5), ylim=(lo, 1.5), title=title)
        ax.set_xlabel(xlabel)
        if ax in axes[:, 0]:
            ax.set_ylabel("P_SGD(f|S)")
        if not x.size:
            ax.text(0.5, 0.5, "no function with a P_B value", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="lower right", fontsize="small")
    cb = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=CMAP), ax=axes, shrink=0.8, aspect=25)
    cb.set_label(f"errors on E (of {n_e})")
    return fig


def marginals_figure(columns: Sequence[tuple[str, np.ndarray]], runs: Mapping[str, np.ndarray], *,
                     width: float = 2.3):
    """Per test point j: the fraction of a run's networks labelling it 1 (y) against the posterior marginal
    P_B(f_j = 1 | S) (x), one panel per posterior ``columns = [(title, p_one [|E|]), ...]``, one marker series per
    run ``runs = {label: fraction [|E|]}``; the diagonal is agreement."""
    fig, axes = new_figure(len(columns), 1, width=width, height=width + 0.35, sharex=True, sharey=True)
    for ax, (title, pb) in zip(axes[0], columns, strict=True):
        ax.plot([0, 1], [0, 1], "k-", lw=1)
        for k, (label, frac) in enumerate(runs.items()):
            ax.scatter(pb, frac, s=14, marker=_MARKERS[k % len(_MARKERS)], color=PALETTE[k], alpha=0.75,
                       edgecolors="none", label=label)
        ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), title=title)
        ax.set_xlabel("P_B(f_j = 1 | S)")
    axes[0, 0].set_ylabel("fraction of networks with f_j = 1")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=len(runs))
    return fig


def error_ax(ax, dists: Mapping[str, np.ndarray], *, title: str = "", n_test: int | None = None):
    """Distributions of the number of errors on E (``{label: probabilities [|E| + 1]}``) as step histograms."""
    top = 0
    for k, (label, d) in enumerate(dists.items()):
        d = np.asarray(d, dtype=float)
        nz = np.flatnonzero(d > 0)
        top = max(top, int(nz.max()) if nz.size else 0)
        ax.stairs(d, np.arange(d.size + 1) - 0.5, color=PALETTE[k], lw=1.6, label=label,
                  fill=k == 0, alpha=0.35 if k == 0 else 1.0)
    ax.set(xlim=(-0.5, top + 1.5), xlabel=f"errors on E (of {n_test})" if n_test else "errors on E",
           ylabel="probability", title=title)
    ax.legend(loc="upper right", fontsize="small")


def panel_figure(title: str, counts: FunctionCounts, log_pb: np.ndarray, true_labels, dists: Mapping[str, np.ndarray],
                 *, pb_label: str = "P_B(f|S), EP (full ratio)"):
    """One of the paper's panels: P_SGD against P_B per function (left, colour = errors on E) and the error
    distributions under P_SGD and P_B (right)."""
    fig, axes = new_figure(2, 1, width=3.3, height=3.1)
    ax = axes[0, 0]
    n_e = len(np.asarray(true_labels))
    x, y, idx = _function_points(counts, log_pb)
    err = counts.errors(true_labels)[idx]
    lo = max(min([1.0 / max(counts.total, 1), *(x.tolist() or [1.0]), *(y.tolist() or [1.0])]) / 3, 1e-300)
    grid = np.array([lo, 1.0])
    ax.fill_between(grid, grid / 10, grid * 10, color="0.5", alpha=0.15, lw=0)
    ax.plot(grid, grid, "k-", lw=1)
    ax.axhline(1.0 / max(counts.total, 1), color="0.35", ls=":", lw=1)
    order = np.argsort(-err)
    sc = ax.scatter(x[order], y[order], c=err[order], cmap=CMAP, s=18, edgecolors="none",
                    norm=mpl.colors.Normalize(vmin=0, vmax=max(1, int(err.max()) if err.size else 1)))
    ax.set(xscale="log", yscale="log", xlim=(lo, 1.5), ylim=(lo, 1.5), xlabel=pb_label, ylabel="P_SGD(f|S)",
           title=title)
    cb = fig.colorbar(sc, ax=ax, shrink=0.8, aspect=25, pad=0.02)
    cb.set_label(f"errors on E (of {n_e})")
    error_ax(axes[0, 1], dists, title="test errors", n_test=n_e)
    return fig


def csr_figure(log10_pb: np.ndarray, csr: np.ndarray, radii: Sequence[float], *, errors: np.ndarray | None = None,
               width: float = 2.3):
    """log₁₀ P_B(f|S) of each network's function against the critical sample ratio of the network, one panel per
    box radius r (the authors': 0.03); colour = errors on E when given."""
    fig, axes = new_figure(len(radii), 1, width=width, height=width + 0.2, sharey=True)
    norm = None
    if errors is not None:
        norm = mpl.colors.Normalize(vmin=0, vmax=max(1, int(np.max(errors))))
    for ax, r, row in zip(axes[0], radii, csr, strict=True):
        ok = np.isfinite(log10_pb) & np.isfinite(row)
        if errors is None:
            ax.scatter(row[ok], log10_pb[ok], s=14, color=PALETTE[0], edgecolors="none", alpha=0.85)
        else:
            ax.scatter(row[ok], log10_pb[ok], s=14, c=np.asarray(errors)[ok], cmap=CMAP, norm=norm,
                       edgecolors="none", alpha=0.85)
        ax.set(xlim=(-0.03, 1.03), title=f"r = {r:g}", xlabel="critical sample ratio")
    axes[0, 0].set_ylabel("log₁₀ P_B(f|S)")
    if norm is not None:
        cb = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=CMAP), ax=axes, shrink=0.8, aspect=25)
        cb.set_label("errors on E")
    return fig


def concentration_figure(curves: Mapping[str, FunctionCounts], *, paper: Mapping[int, float] | None = None,
                         paper_label: str = "the authors (|S| = 10⁴)", width: float = 4.6, height: float = 3.0):
    """Cumulative P_SGD mass of the k most frequent functions against k (log axis), one curve per run; the authors'
    top-1 / top-10 masses as crosses."""
    fig, axes = new_figure(1, 1, width=width, height=height)
    ax = axes[0, 0]
    kmax = 1
    for k, (label, c) in enumerate(curves.items()):
        if not c.n_distinct:
            continue
        cum = np.cumsum(c.probabilities())
        ks = np.arange(1, cum.size + 1)
        kmax = max(kmax, int(ks[-1]))
        ax.step(ks, cum, where="post", color=PALETTE[k], lw=1.6, label=label)
    if paper:
        ks, vals = zip(*sorted(paper.items()), strict=True)
        ax.plot(ks, vals, "kx", ms=8, mew=2, label=paper_label)
        kmax = max(kmax, max(ks))
    ax.set(xscale="log", xlim=(0.8, kmax * 1.3), ylim=(0, 1.02), xlabel="k (functions, most frequent first)",
           ylabel="P_SGD mass of the top k")
    ax.legend(loc="upper left", fontsize="small")  # the curves rise to the right
    return fig
