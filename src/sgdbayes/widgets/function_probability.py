"""Explorer for the function-probability chapter: pick optimiser, batch size and |S| → P_SGD vs P_B scatter and the
error histograms of that (cached) run. Nothing is trained here: the explorer only redraws runs already computed."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sgdbayes.experiments.function_probability import PBTable, TrainingRun, error_distribution
from sgdbayes.plots import new_figure
from sgdbayes.plots.function_probability import _error_norm, errors_ax, scatter_ax

Key = tuple[str, int, int]  # (optimiser, batch size, |S|)


def run_figure(run: TrainingRun, table: PBTable, true_labels, *, title: str = ""):
    """Scatter of P_SGD against P_B (EP) beside the error histograms under both, for one run; the title reports
    how many networks fitted, never fitted or diverged."""
    lp = table.lookup(run.counts)
    fig, axes = new_figure(2, 1, width=5.0, height=4.2)
    err = run.counts.errors(true_labels)
    norm = _error_norm(err.max() if err.size else 1)
    sc = scatter_ax(axes[0][0], run.counts, lp, true_labels, norm=norm, pb_label="P_B(f|S), EP")
    fig.colorbar(sc, ax=axes[0][0], shrink=0.8, label="errors on E")
    axes[0][0].legend(loc="lower right", fontsize="x-small")
    dists = {"P_SGD": error_distribution(run.counts, true_labels)}
    if np.isfinite(lp).any():
        dists["P_B (EP, on these functions)"] = error_distribution(run.counts, true_labels, weights=np.exp(lp))
    errors_ax(axes[0][1], dists)
    fig.suptitle(f"{title}  —  {run.n_networks} networks: {run.n_counted} counted, {run.n_not_fitted} never fitted, "
                 f"{run.n_diverged} diverged, {run.n_lost_fit} lost the fit", fontsize="small")
    return fig


def explorer(runs: Mapping[Key, tuple[TrainingRun, PBTable, np.ndarray]], default: Key):
    """``(static_figure, widget)``: the default run as an ordinary figure, then drop-downs for optimiser, batch size
    and |S| that redraw :func:`run_figure` for any combination in ``runs`` (key ``(optimiser, batch, |S|)`` →
    ``(run, table, true labels of E)``)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    if default not in runs:
        raise ValueError(f"default {default!r} is not among the runs {sorted(runs)}")

    def title(key: Key) -> str:
        return f"{key[0]}, batch {key[1]}, |S| = {key[2]}"

    static = run_figure(*runs[default], title=title(default))
    opts = sorted({k[0] for k in runs})
    batches = sorted({k[1] for k in runs})
    sizes = sorted({k[2] for k in runs})
    w_opt = widgets.Dropdown(options=opts, value=default[0], description="optimiser")
    w_b = widgets.Dropdown(options=batches, value=default[1], description="batch")
    w_s = widgets.Dropdown(options=sizes, value=default[2], description="|S|")
    out = widgets.Output()

    def redraw(*_):
        key = (w_opt.value, w_b.value, w_s.value)
        with out:
            out.clear_output(wait=True)
            if key not in runs:
                print(f"not run: {title(key)}. Available: " + "; ".join(title(k) for k in sorted(runs)))
                return
            plt.show(run_figure(*runs[key], title=title(key)))

    for w in (w_opt, w_b, w_s):
        w.observe(redraw, names="value")
    with out:
        print("pick a setting to redraw (the default view is the figure above)")
    return static, widgets.VBox([widgets.HBox([w_opt, w_b, w_s]), out])
