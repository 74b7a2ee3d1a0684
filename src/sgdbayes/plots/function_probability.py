"""Figures of the function-probability chapter (Mingard et al. 2020): P_SGD(f|S) against P_B(f|S).

Each ``*_ax`` function draws on a given axis; each ``figure_*`` function builds a whole figure and returns it.
Probabilities are drawn on log axes and labelled "probability"; colour is the number of errors on E.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import numpy as np

from sgdbayes.functions import FunctionCounts
from sgdbayes.plots import PALETTE, new_figure

CMAP = "viridis"


def _error_norm(max_errors: int):
    return mpl.colors.Normalize(vmin=0, vmax=max(1, int(max_errors)))


def _lower_limit(counts: FunctionCounts, log_pb: np.ndarray, min_count: int = 1) -> float:
    """A third of the smallest probability shown (P_B of a plotted point, or 1/runs)."""
    lp = np.asarray(log_pb, dtype=float)
    sel = np.isfinite(lp) & (counts.counts >= min_count)
    vals = [1.0 / max(counts.total, 1)]
    if sel.any():
        vals += [float(np.exp(lp[sel].min())), float(counts.probabilities()[sel].min())]
    return min(vals) / 3


def scatter_ax(ax, counts: FunctionCounts, log_pb: np.ndarray, true_labels, *, title: str = "",
               pb_label: str = "P_B(f|S)", norm=None, min_count: int = 1, lo: float | None = None):
    """log-log scatter of P_SGD(f|S) (y) against P_B(f|S) (x, from ``log_pb``, natural log, aligned with
    ``counts``' rows) for the functions seen ≥ ``min_count`` times with finite P_B; colour = errors on E; the line
    y = x and a band of one order of magnitude either side; the dotted line is P_SGD = 1/(runs counted), the
    smallest probability the runs can show. Axes run from ``lo`` (default: a third of the smallest value shown) to
    1.5. Returns the scatter artist (for a colour bar)."""
    p = counts.probabilities()
    err = counts.errors(true_labels)
    lp = np.asarray(log_pb, dtype=float)
    sel = np.isfinite(lp) & (counts.counts >= min_count)
    x, y, c = np.exp(lp[sel]), p[sel], err[sel]
    norm = norm or _error_norm(err.max() if err.size else 1)
    order = np.argsort(-c)  # draw low-error (interesting) points last, on top
    sc = ax.scatter(x[order], y[order], c=c[order], cmap=CMAP, norm=norm, s=14, alpha=0.85, edgecolors="none")
    lo = lo if lo is not None else _lower_limit(counts, lp, min_count)
    grid = np.array([lo, 1.0])
    ax.plot(grid, grid, "k-", lw=1, label="y = x")
    ax.fill_between(grid, grid / 10, grid * 10, color="0.5", alpha=0.12, lw=0, label="within 10×")
    ax.axhline(1.0 / max(counts.total, 1), color="0.4", ls=":", lw=1, label="1 / runs")
    ax.set(xscale="log", yscale="log", xlim=(lo, 1.5), ylim=(lo, 1.5), xlabel=f"{pb_label} (probability)",
           ylabel="P_SGD(f|S) (probability)", title=title)
    ax.set_aspect("equal", adjustable="box")
    return sc


def figure_scatter_panels(panels: Sequence[tuple[str, FunctionCounts, np.ndarray, str]], true_labels, *,
                          n_test: int | None = None, ncols: int | None = None, width: float = 4.0):
    """One :func:`scatter_ax` per panel ``(title, counts, log_pb, pb_label)``, sharing one colour bar of errors on E
    (0 … the largest error seen)."""
    ncols = ncols or len(panels)
    nrows = -(-len(panels) // ncols)
    fig, axes = new_figure(ncols, nrows, width=width, height=width)
    max_err = max((c.errors(true_labels).max() if c.n_distinct else 0) for _, c, _, _ in panels)
    norm = _error_norm(max_err)
    lo = min(_lower_limit(c, lp) for _, c, lp, _ in panels)  # one range for all panels
    for ax, (title, counts, lp, label) in zip(axes.flat, panels):
        scatter_ax(ax, counts, lp, true_labels, title=title, pb_label=label, norm=norm, lo=lo)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="lower right", fontsize="x-small")
    cb = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=CMAP), ax=axes, shrink=0.8)
    cb.set_label("errors on E" + (f" (of {n_test})" if n_test else ""))
    return fig


def rank_ax(ax, curves: Mapping[str, np.ndarray], *, title: str = ""):
    """Probability of the r-th most probable function against its rank r (log-log), one line per entry of
    ``curves`` (label → probabilities, any order)."""
    for k, (label, probs) in enumerate(curves.items()):
        p = np.sort(np.asarray(probs, dtype=float)[np.isfinite(probs)])[::-1]
        p = p[p > 0]
        ax.plot(np.arange(1, p.size + 1), p, drawstyle="steps-post", color=PALETTE[k % len(PALETTE)], label=label)
    ax.set(xscale="log", yscale="log", xlabel="rank of the function", ylabel="probability", title=title)
    ax.legend(fontsize="small")


def errors_ax(ax, distributions: Mapping[str, np.ndarray], *, title: str = "", max_errors: int | None = None):
    """Distributions of the number of errors on E (label → probabilities ``[|E| + 1]``) as overlaid step
    histograms; the x range stops at ``max_errors`` (default: the last error count with mass ≥ 1e-3)."""
    top = 0
    for k, (label, d) in enumerate(distributions.items()):
        d = np.asarray(d, dtype=float)
        x = np.arange(d.size)
        ax.step(x, d, where="mid", color=PALETTE[k % len(PALETTE)], lw=1.8, label=label)
        ax.fill_between(x, d, step="mid", color=PALETTE[k % len(PALETTE)], alpha=0.12)
        nz = np.flatnonzero(d >= 1e-3)
        top = max(top, int(nz[-1]) if nz.size else 0)
    ax.set_xlim(-0.5, (max_errors if max_errors is not None else top) + 0.5)
    ax.set(xlabel="errors on E", ylabel="probability", title=title)
    ax.legend(fontsize="small")


def lz_ax(ax, lz: np.ndarray, log_pb: np.ndarray, p_sgd: np.ndarray | None = None, *, title: str = ""):
    """P_B(f|S) (log axis) against the Lempel–Ziv complexity of the full function; marker area ∝ P_SGD when
    given."""
    lp = np.asarray(log_pb, dtype=float)
    sel = np.isfinite(lp)
    sizes = 8 if p_sgd is None else 8 + 300 * np.sqrt(np.asarray(p_sgd)[sel])
    ax.scatter(np.asarray(lz)[sel], np.exp(lp[sel]), s=sizes, alpha=0.6, color=PALETTE[0], edgecolors="none")
    ax.set(yscale="log", xlabel="Lempel–Ziv complexity K_LZ of the function on all inputs",
           ylabel="P_B(f|S) (probability)", title=title)


def topk_ax(ax, runs: Mapping[str, FunctionCounts], *, paper: Mapping[str, Mapping[int, float]] | None = None,
            title: str = ""):
    """Mass of the k most frequent functions against k (log x), one line per run; the paper's values
    (``paper``: label → {k: mass}) as crosses, in the colour of the run with the same label."""
    colours = {label: PALETTE[k % len(PALETTE)] for k, label in enumerate(runs)}
    for label, counts in runs.items():
        if counts.total == 0:
            continue
        mass = np.cumsum(counts.counts) / counts.total
        ax.plot(np.arange(1, mass.size + 1), mass, color=colours[label], label=label)
    for k, (label, pts) in enumerate((paper or {}).items()):
        colour = colours.get(label, PALETTE[(k + len(runs)) % len(PALETTE)])
        ax.plot(list(pts.keys()), list(pts.values()), "x", ms=9, mew=2.5, color=colour,
                label=None if label in colours else f"paper: {label}")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="k (most frequent functions)", ylabel="probability mass of the top k",
           title=title)
    ax.legend(fontsize="x-small", loc="lower right")


def figure_ranks_errors(curves: Mapping[str, np.ndarray], distributions: Mapping[str, np.ndarray], *,
                        titles: tuple[str, str] = ("", "")):
    """Rank plot beside error histograms."""
    fig, axes = new_figure(2, 1, width=5.0, height=3.8)
    rank_ax(axes[0][0], curves, title=titles[0])
    errors_ax(axes[0][1], distributions, title=titles[1])
    return fig


def figure_topk(runs: Mapping[str, FunctionCounts], *, paper=None, title: str = ""):
    fig, axes = new_figure(1, 1, width=5.5, height=3.8)
    topk_ax(axes[0][0], runs, paper=paper, title=title)
    return fig


def figure_lz(lz, log_pb, p_sgd=None, *, title: str = ""):
    fig, axes = new_figure(1, 1, width=5.5, height=3.8)
    lz_ax(axes[0][0], lz, log_pb, p_sgd, title=title)
    return fig


def marginals_ax(ax, p_sgd: np.ndarray, p_b: np.ndarray, true_labels, *, p_b_err: np.ndarray | None = None,
                 title: str = "", pb_label: str = "P_B(f_j = 1 | S)"):
    """Per test point j: P_SGD(f_j = 1) (y) against the posterior marginal P_B(f_j = 1 | S) (x), with optional
    horizontal error bars; colour = the true label. Points near the corners are labelled almost always the same
    way; a distribution of functions that is more concentrated than another pushes its marginals to the corners."""
    p_sgd, p_b = np.asarray(p_sgd, float), np.asarray(p_b, float)
    t = np.asarray(true_labels).astype(bool)
    for lab, colour, name in ((False, PALETTE[0], "true label 0"), (True, PALETTE[1], "true label 1")):
        sel = t == lab
        xerr = None if p_b_err is None else np.asarray(p_b_err, float)[sel]
        ax.errorbar(p_b[sel], p_sgd[sel], xerr=xerr, fmt="o", ms=3.5, color=colour, alpha=0.8, elinewidth=0.8,
                    label=name)
    ax.plot([0, 1], [0, 1], "k-", lw=1)
    ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel=f"{pb_label} (probability)",
           ylabel="P_SGD(f_j = 1) (fraction of runs)", title=title)
    ax.set_aspect("equal", adjustable="box")
    ax.legend(loc="upper left", fontsize="x-small")


def figure_marginals(panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None, object, str]],
                     *, width: float = 4.0):
    """One :func:`marginals_ax` per panel ``(title, p_sgd, p_b, p_b_err, true_labels, pb_label)``."""
    fig, axes = new_figure(len(panels), 1, width=width, height=width)
    for ax, (title, ps, pb, err, labels, label) in zip(np.atleast_1d(axes).flat, panels):
        marginals_ax(ax, ps, pb, labels, p_b_err=err, title=title, pb_label=label)
    return fig


def figure_pb_methods(reference: np.ndarray, reference_sd: np.ndarray, others: Mapping[str, tuple[np.ndarray,
                      np.ndarray | None]], *, reference_label: str = "P_B(f|S), exact GP (sampled)", title: str = ""):
    """Estimates of P_B(f|S) for the same functions against a reference (log-log): ``others`` maps a label to
    ``(P_B, sd or None)`` aligned with ``reference``; error bars are ±1 sd; y = x and a 2× band are drawn."""
    fig, axes = new_figure(1, 1, width=4.6, height=4.6)
    ax = np.atleast_1d(axes).flat[0]
    ref = np.asarray(reference, float)
    lo = ref[ref > 0].min() / 3 if (ref > 0).any() else 1e-4
    for k, (label, (vals, sd)) in enumerate(others.items()):
        v = np.asarray(vals, float)
        ax.errorbar(ref, v, xerr=reference_sd, yerr=sd, fmt="os^"[k % 3], ms=4, color=PALETTE[k], alpha=0.8,
                    elinewidth=0.7, label=label)
        if (v > 0).any():
            lo = min(lo, v[v > 0].min() / 3)
    grid = np.array([lo, 1.0])
    ax.plot(grid, grid, "k-", lw=1, label="y = x")
    ax.fill_between(grid, grid / 2, grid * 2, color="0.5", alpha=0.12, lw=0, label="within 2×")
    ax.set(xscale="log", yscale="log", xlim=(lo, 1.0), ylim=(lo, 1.0), xlabel=f"{reference_label} (probability)",
           ylabel="other estimate of P_B(f|S) (probability)", title=title)
    ax.set_aspect("equal", adjustable="box")
    ax.legend(loc="lower right", fontsize="x-small")
    return fig
