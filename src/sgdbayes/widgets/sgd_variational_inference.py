"""Explorers of the chapter "SGD performs variational inference": λ of the double well and η/b of the temperature
runs. Each returns ``(static figure of the default view, widget)``: the page shows the static figure once; the
widget redraws below it only when a control moves (which needs a live kernel)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from sgdbayes.noise.statistics import mean_ci
from sgdbayes.plots import PALETTE, new_figure
from sgdbayes.sde import DoubleWell, critical_points, deterministic_path

LIM = 2.0


def double_well_figure(lam: float, n_steps: int = 600):
    """Density e^{−Φ}/Z (the same for every λ), current λJ^ss/Z, the noise-free path from (1.6, 0.8) and the
    drift's zero near (1, 0) when it exists; axes fixed across λ."""
    dw = DoubleWell(lam)
    s = np.linspace(-LIM, LIM, 80)
    xx, yy = np.meshgrid(s, s)
    g = torch.tensor(np.stack([xx, yy], -1))
    fig, axes = new_figure(width=4.6, height=4.0)
    ax = axes[0][0]
    im = ax.contourf(xx, yy, dw.density(g).numpy(), levels=np.arange(0, 0.181, 0.015), cmap="Blues")
    fig.colorbar(im, ax=ax, shrink=0.8, aspect=25, label="stationary density", ticks=[0, 0.05, 0.1, 0.15])
    q = np.linspace(-LIM * 0.85, LIM * 0.85, 11)
    qx, qy = np.meshgrid(q, q)
    cur = DoubleWell(1.0).current(torch.tensor(np.stack([qx, qy], -1))).numpy() * lam
    if lam > 0:
        ax.quiver(qx, qy, cur[..., 0], cur[..., 1], color=PALETTE[3], width=0.006, scale=0.3 * 11)
    path = deterministic_path(dw.drift, torch.tensor([[1.6, 0.8]], dtype=torch.float64), dt=0.05,
                              n_steps=n_steps)[:, 0].numpy()
    ax.plot(path[:, 0], path[:, 1], color=PALETTE[2], lw=1.5, label="noise-free path")
    z = critical_points(dw) if lam < np.exp(-0.25) else np.full(2, np.nan)
    if np.isfinite(z).all():
        ax.plot([z[0], -z[0]], [z[1], -z[1]], "o", color=PALETTE[1], ms=6, label="zeros of the drift")
    ax.plot([1, -1], [0, 0], "x", color="k", ms=7, label="minima of Φ")
    ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(f"λ = {lam:.2f}" + (r"  (above $\lambda_c = e^{-1/4}$: no minimum of f)" if lam >= np.exp(-0.25)
                                      else ""), fontsize=10)
    ax.legend(fontsize=9, loc="lower left", frameon=True)
    return fig


def double_well_explorer(default: float = 1.5, n_steps: int = 600):
    """``(default figure, widget)``: a λ slider on [0, 2] (linear: λ does not span decades) whose redraws appear
    below the default figure, which the chapter glues once."""
    import ipywidgets as ipw

    from sgdbayes import widgets

    lam = ipw.FloatSlider(value=default, min=0.0, max=2.0, step=0.05, description="λ", continuous_update=False)
    return double_well_figure(default, n_steps=n_steps), widgets.explorer(
        lambda lam: double_well_figure(lam, n_steps=n_steps), {"lam": lam}, what="The double-well explorer")


def temperature_figure(df: pd.DataFrame, ratio: float, n: int, ylim: tuple[float, float] | None = None):
    """Every run's stationary loss (mean and 95% interval over replicas) against η/b on a log axis (runs of equal
    η/b side by side), the runs at the chosen η/b highlighted and listed with their temperatures."""
    fig, axes = new_figure(width=5.6, height=3.4)
    ax = axes[0][0]
    agg = sorted(((lr, b, lr / b, mean_ci(g.loss.to_numpy())) for (lr, b), g in df.groupby(["lr", "batch_size"])),
                 key=lambda a: (a[2], a[0]))
    hits = [a for a in agg if np.isclose(a[2], ratio, rtol=0.02)]
    seen: dict[float, int] = {}
    for lr, b, r, e in agg:
        k = seen.get(round(r, 12), 0)
        seen[round(r, 12)] = k + 1
        x = r * 1.12**k  # equal ratios side by side
        sel = any(h[:2] == (lr, b) for h in hits)
        ax.errorbar([x], [e.value], yerr=[[e.value - e.lo], [e.hi - e.value]], fmt="o", capsize=3,
                    color=PALETTE[3] if sel else "0.55", ms=7 if sel else 5)
    ax.axvline(ratio, color=PALETTE[3], lw=0.8, ls=":")
    ratios = [a[2] for a in agg]
    ax.set(xscale="log", xlim=(min(ratios) / 2, max(ratios) * 3))
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("η/b (runs of equal η/b side by side)")
    ax.set_ylabel("stationary train loss (nats)")
    if hits:
        lines = [f"η/b = {ratio:.3g}: β⁻¹ = {ratio / 2:.2e} with replacement"]
        lines += [f"η = {lr:g}, b = {b}: {ratio / 2 * (n - b) / (n - 1):.2e} without" for lr, b, _, _ in hits]
    else:
        from sgdbayes import widgets

        widgets.no_data(ax, f"no run at η/b = {ratio:.3g}")
        lines = [f"β⁻¹ = {ratio / 2:.2e} with replacement"]
    ax.text(0.02, 0.98, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=9,
            bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.9})
    return fig


def temperature_explorer(df: pd.DataFrame, n: int, default: float | None = None):
    """``(default figure, widget)``: a log slider over η/b (a quarter of the smallest to four times the largest
    ratio run); ratios with no run say so; the axes are the same for every ratio."""
    from sgdbayes import widgets

    ratios = sorted(set(df.lr / df.batch_size))
    default = ratios[len(ratios) // 2] if default is None else default
    cis = [mean_ci(g.loss.to_numpy()) for _, g in df.groupby(["lr", "batch_size"])]
    lo, hi = min(e.lo for e in cis), max(e.hi for e in cis)
    ylim = (lo - 0.05 * (hi - lo), hi + 0.6 * (hi - lo))  # room for the text box
    slider = widgets.log_slider("η/b", lo=min(ratios) / 4, hi=max(ratios) * 4, value=default)
    return temperature_figure(df, default, n, ylim), widgets.explorer(
        lambda ratio: temperature_figure(df, ratio, n, ylim), {"ratio": slider}, what="The temperature explorer")
