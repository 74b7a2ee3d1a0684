"""Explorer for the function-probability chapter: pick a training setting → the P_SGD vs P_B scatter and the error
histograms of that (cached) run. Nothing is trained here: the explorer only redraws runs already computed."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sgdbayes.experiments.function_probability import (
    PBTable,
    TrainingRun,
    error_distribution,
)
from sgdbayes.plots import new_figure
from sgdbayes.plots.function_probability import _error_norm, errors_ax, scatter_ax


def run_figure(run: TrainingRun, table: PBTable, true_labels, *, title: str = "", lo: float | None = None,
               max_errors: int | None = None):
    """Scatter of P_SGD against P_B (EP) beside the error histograms under both, for one run; the title reports
    how many networks were counted, never fitted or diverged. ``lo`` / ``max_errors`` fix the axes (an explorer
    passes the same values for every setting)."""
    lp = table.lookup(run.counts)
    fig, axes = new_figure(2, 1, width=3.45, height=3.2)
    err = run.counts.errors(true_labels)
    norm = _error_norm(max_errors if max_errors is not None else (err.max() if err.size else 1))
    sc = scatter_ax(axes[0][0], run.counts, lp, true_labels, norm=norm, pb_label="P_B(f|S), EP", lo=lo)
    fig.colorbar(sc, ax=axes[0][0], shrink=0.8, aspect=25, label="errors on E")
    dists = {"P_SGD": error_distribution(run.counts, true_labels)} if run.n_counted else {}
    if run.n_counted and np.isfinite(lp).any():
        dists["P_B (EP, on these functions)"] = error_distribution(run.counts, true_labels, weights=np.exp(lp))
    errors_ax(axes[0][1], dists, max_errors=max_errors)
    fig.suptitle(f"{title}: {run.n_counted:,} counted, {run.n_not_fitted:,} never fitted, {run.n_diverged:,} "
                 f"diverged, {run.n_lost_fit:,} lost the fit", fontsize=9)
    return fig


def explorer(runs: Mapping[str, tuple[TrainingRun, PBTable, np.ndarray]], default: str):
    """``(default_figure, widget)``: :func:`run_figure` of the ``default`` setting (to glue once, with a caption),
    and a drop-down over every setting of ``runs`` (label → (run, EP table, true labels of E)) that redraws below it
    with the same axes (:func:`sgdbayes.widgets.explorer`, with the live-kernel note)."""
    import ipywidgets as ipw

    from sgdbayes import widgets

    if default not in runs:
        raise ValueError(f"default {default!r} is not among the settings {sorted(runs)}")
    lows, max_err = [], 1
    for run, table, y in runs.values():
        if run.n_counted:
            lp = table.lookup(run.counts)
            ok = np.isfinite(lp)
            lows += [1.0 / run.n_counted] + ([float(np.exp(lp[ok]).min())] if ok.any() else [])
            max_err = max(max_err, int(run.counts.errors(y).max()))
    lo = min(lows) / 3 if lows else 1e-3

    def draw(setting: str):
        return run_figure(*runs[setting], title=setting, lo=lo, max_errors=max_err)

    control = ipw.Dropdown(options=list(runs), value=default, description="setting",
                           layout=ipw.Layout(width="30em"))
    return draw(default), widgets.explorer(draw, {"setting": control}, what="This explorer")
