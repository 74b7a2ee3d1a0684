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
    axes.flat[0].legend(loc="lower right", fontsize="small")
    for ax in axes.flat:  # label the outer panels only
        if not ax.get_subplotspec().is_last_row():
            ax.set_xlabel("")
        if not ax.get_subplotspec().is_first_col():
            ax.set_ylabel("")
    cb = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=CMAP), ax=axes, shrink=0.8 if nrows == 1 else 0.5,
                      aspect=25)
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
    ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
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


# --------------------------------------------------------------------------------------------------------------------
# page I: the Boolean system at the authors' set-up
# --------------------------------------------------------------------------------------------------------------------
def figure_protocol(curves: Mapping[str, FunctionCounts], cells: Mapping[str, tuple[float, float]], *,
                    paper_curve: Mapping[int, float] | None = None, paper_cells: Mapping[str, float] | None = None,
                    k_max: int = 1000):
    """The protocol finding in two panels. Left: mass of the k most frequent functions against k for each run of
    ``curves`` (label → counts), the paper's values as crosses (``paper_curve``: k → mass, drawn in the colour of
    the first curve). Right: the top-1 mass of each cell of the stop-rule decomposition (``cells``: label →
    (mass, standard error); bars are ±2 se), the paper's value as a vertical line per label in ``paper_cells``."""
    fig, axes = new_figure(2, 1, width=3.45, height=3.3)
    ax = axes[0][0]
    for i, (label, counts) in enumerate(curves.items()):
        if counts.total == 0:
            continue
        mass = np.cumsum(counts.counts[:k_max]) / counts.total
        ax.plot(np.arange(1, mass.size + 1), mass, color=PALETTE[i % len(PALETTE)], label=label)
    if paper_curve:
        ax.plot(list(paper_curve), list(paper_curve.values()), "x", ms=8, mew=2.2, color="k",
                label="paper (6×10⁵ runs)")
    ax.set(xscale="log", ylim=(0, 1.02), xlim=(0.8, k_max * 1.2), xlabel="k (most frequent functions)",
           ylabel="mass of the top k (probability)")
    ax.legend(loc="lower right", fontsize="small")
    ax = axes[0][1]
    labels = list(cells)
    y = np.arange(len(labels))[::-1]
    mass = np.array([cells[lab][0] for lab in labels])
    se = np.array([cells[lab][1] for lab in labels])
    ax.errorbar(mass, y, xerr=2 * np.nan_to_num(se), fmt="o", color=PALETTE[0], ms=5, capsize=2)
    for lab, v in (paper_cells or {}).items():
        if lab in cells:
            ax.plot([v], [y[labels.index(lab)]], "x", ms=9, mew=2.2, color="k")
    ax.set_yticks(y, labels)
    ax.set(xlim=(0, 1), xlabel="top-1 mass of P_SGD (probability)")
    return fig


def _band(ax, lo: float, n_runs: int | None = None) -> None:
    grid = np.array([lo, 1.0])
    ax.plot(grid, grid, "k-", lw=1)
    ax.fill_between(grid, grid / 10, grid * 10, color="0.5", alpha=0.12, lw=0)
    if n_runs:
        ax.axhline(1.0 / n_runs, color="0.4", ls=":", lw=1)


def figure_targets(panels: Mapping[str, Mapping[str, tuple[FunctionCounts, np.ndarray]]], *, min_count: int = 1,
                   ncols: int = 4, width: float = 1.7, floor: float = 1e-9):
    """Small multiples of P_SGD against P_B (EP), one panel per target (``panels``: title → {rule label → (counts,
    log P_B aligned with the counts)}), rules in the book's colours, functions seen ≥ ``min_count`` times; the line
    y = x and one decade either side. All panels share their axes, which start no lower than ``floor``: a P_B below
    it is drawn on the left edge as a "<". A spare panel holds the legend."""
    n = len(panels) + 1
    nrows = -(-n // ncols)
    fig, axes = new_figure(ncols, nrows, width=width, height=width, sharex=True, sharey=True)
    rules = list(dict.fromkeys(r for p in panels.values() for r in p))
    vals = [1.0]
    for p in panels.values():
        for counts, lp in p.values():
            sel = np.isfinite(lp) & (counts.counts >= min_count)
            if sel.any():
                vals += [float(np.exp(lp[sel]).min()), float(counts.probabilities()[sel].min())]
    lo = max(min(vals) / 3, floor)
    markers = "o^sD"
    for ax, (title, p) in zip(axes.flat, panels.items()):
        _band(ax, lo)
        for j, rule in enumerate(rules):
            if rule not in p:
                continue
            counts, lp = p[rule]
            sel = np.isfinite(lp) & (counts.counts >= min_count)
            x, y = np.exp(lp[sel]), counts.probabilities()[sel]
            low = x < lo
            face = "none" if j else PALETTE[j]
            ax.scatter(x[~low], y[~low], s=12, marker=markers[j % 4], facecolors=face, edgecolors=PALETTE[j],
                       lw=0.9, alpha=0.85)
            if low.any():
                ax.scatter(np.full(low.sum(), lo * 1.3), y[low], s=14, marker="<", color=PALETTE[j], alpha=0.85)
        ax.set(xscale="log", yscale="log", xlim=(lo, 1.5), ylim=(lo, 1.5))
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal", adjustable="box")
    spare = list(axes.flat)[len(panels):]
    for ax in spare:
        ax.axis("off")
    handles = [mpl.lines.Line2D([], [], ls="none", marker=markers[j % 4], color=PALETTE[j],
                                markerfacecolor="none" if j else PALETTE[j], label=f"P_SGD, {r}")
               for j, r in enumerate(rules)]
    handles.append(mpl.patches.Patch(color="0.5", alpha=0.3, label="within 10×"))
    spare[0].legend(handles=handles, loc="center", fontsize="small", frameon=False)
    for ax in axes[-1]:
        ax.set_xlabel("P_B(f|S), EP")
    for row in axes:
        row[0].set_ylabel("P_SGD(f|S)")
    return fig


def figure_spread(series: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray | None]]],
                  reference: Mapping[str, Mapping[str, float]] | None = None, *, xlabels: Sequence[str] = (),
                  ylims: Mapping[str, tuple[float, float]] | None = None):
    """One panel per quantity (``series``: quantity → {rule → (values per train set, standard errors or None)}):
    the value on each train set (x: 1 … n) per rule, with ±2 se bars; ``reference`` (quantity → {rule → value}) as a
    dashed line: the authors' mask A."""
    fig, axes = new_figure(len(series), 1, width=3.45, height=2.8)
    for ax, (q, by_rule) in zip(axes.flat, series.items()):
        for j, (rule, (vals, se)) in enumerate(by_rule.items()):
            x = np.arange(1, len(vals) + 1) + (j - (len(by_rule) - 1) / 2) * 0.12
            ax.errorbar(x, vals, yerr=None if se is None else 2 * np.nan_to_num(se), fmt="o^"[j % 2], ms=5,
                        color=PALETTE[j], capsize=2, label=rule)
            ref = (reference or {}).get(q, {}).get(rule)
            if ref is not None and np.isfinite(ref):
                ax.axhline(ref, color=PALETTE[j], ls="--", lw=1)
        n = max(len(v[0]) for v in by_rule.values())
        ax.set_xticks(np.arange(1, n + 1), list(xlabels) or [str(i) for i in range(1, n + 1)])
        ax.set(xlabel="random train set S", ylabel=q)
        if ylims and q in ylims:
            ax.set_ylim(*ylims[q])
    axes.flat[0].legend(loc="best", fontsize="small")
    return fig


def figure_settings(rows: Sequence[str], quantities: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray | None]]],
                    *, xlims: Mapping[str, tuple[float, float]] | None = None):
    """Dot plots of a few quantities per setting: ``rows`` (one label per setting, top to bottom), ``quantities``
    (axis label → {rule → (values per row, standard errors or None)}); ±2 se bars; rules side by side."""
    fig, axes = new_figure(len(quantities), 1, width=3.45, height=0.28 * len(rows) + 1.1, sharey=True)
    y = np.arange(len(rows))[::-1]
    for ax, (q, by_rule) in zip(axes.flat, quantities.items()):
        for j, (rule, (vals, se)) in enumerate(by_rule.items()):
            off = (j - (len(by_rule) - 1) / 2) * 0.22
            ax.errorbar(vals, y + off, xerr=None if se is None else 2 * np.nan_to_num(se), fmt="o^"[j % 2], ms=4.5,
                        color=PALETTE[j], capsize=2, label=rule)
        ax.set_xlabel(q)
        if xlims and q in xlims:
            ax.set_xlim(*xlims[q])
    axes[0][0].set_yticks(y, rows)
    axes[0][0].legend(loc="best", fontsize="small")
    return fig


def figure_complexity(data: Mapping[str, np.ndarray]):
    """P_B(f|S) against the Lempel–Ziv complexity (left) and the critical sample ratio (right) of each function on
    all inputs: the functions the prior sampler drew (grey, P_B by direct sampling) and SGD's functions (colour,
    P_B by EP, marker area ∝ P_SGD). ``data`` as :func:`sgdbayes.experiments.function_probability.complexity_data`
    returns it."""
    fig, axes = new_figure(2, 1, width=3.45, height=3.0, sharey=True)
    for ax, c, label in ((axes[0][0], "lz", "Lempel–Ziv complexity K_LZ"),
                         (axes[0][1], "csr", "critical sample ratio")):
        if "prior_pb" in data:
            ax.scatter(data[f"prior_{c}"], data["prior_pb"], s=10, color="0.55", alpha=0.6, edgecolors="none",
                       label="prior samples (direct P_B)")
        if len(data.get("sgd_pb", [])):
            ax.scatter(data[f"sgd_{c}"], data["sgd_pb"], s=6 + 250 * np.sqrt(data["sgd_p"]), color=PALETTE[0],
                       alpha=0.5, edgecolors="none", label="SGD's functions (EP; area ∝ P_SGD)")
        ax.set(yscale="log", xlabel=label)
    axes[0][0].set_ylabel("P_B(f|S) (probability)")
    axes[0][0].legend(loc="lower left", fontsize="small")
    return fig
