"""Explorers of the chapter "SGD performs variational inference": λ of the double well, (η, b) of the temperature.
Each shows its default view as a static figure first, then the interactive version (needs a live kernel)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

from sgdbayes.plots import PALETTE, new_figure
from sgdbayes.sde import DoubleWell, deterministic_path


def double_well_figure(lam: float, lim: float = 2.0, n_steps: int = 600):
    """Density e^{−Φ}/Z (same for every λ), current λJ^ss/Z and the noise-free path from (1.6, 0.8)."""
    dw = DoubleWell(lam)
    s = np.linspace(-lim, lim, 80)
    xx, yy = np.meshgrid(s, s)
    g = torch.tensor(np.stack([xx, yy], -1))
    fig, axes = new_figure(width=4.6, height=4.2)
    ax = axes[0][0]
    im = ax.contourf(xx, yy, dw.density(g).numpy(), levels=12, cmap="Blues")
    fig.colorbar(im, ax=ax, label="stationary density (per unit area)")
    q = np.linspace(-lim * 0.85, lim * 0.85, 13)
    qx, qy = np.meshgrid(q, q)
    cur = dw.current(torch.tensor(np.stack([qx, qy], -1))).numpy()
    if lam > 0:
        ax.quiver(qx, qy, cur[..., 0], cur[..., 1], color=PALETTE[3], width=0.006, scale=0.1 * 14)
    path = deterministic_path(dw.drift, torch.tensor([[1.6, 0.8]], dtype=torch.float64), dt=0.05,
                              n_steps=n_steps)[:, 0].numpy()
    ax.plot(path[:, 0], path[:, 1], color=PALETTE[2], lw=1.5, label="noise-free path ẋ = −∇f")
    ax.set(title=f"double well, λ = {lam:.2f}", xlabel="$x_1$ (weight units)", ylabel="$x_2$ (weight units)",
           xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    ax.legend(fontsize="x-small", loc="lower left")
    return fig


def double_well_explorer(default: float = 1.5, n_steps: int = 600):
    """Static figure at ``default``, then a slider for λ ∈ [0, 2] (redraws in about a second)."""
    fig = double_well_figure(default, n_steps=n_steps)
    display(fig)
    plt.close(fig)
    try:
        import ipywidgets as w
    except ImportError:  # pragma: no cover
        return None

    def show(lam):
        f = double_well_figure(lam, n_steps=n_steps)
        display(f)
        plt.close(f)

    return w.interact(show, lam=w.FloatSlider(value=default, min=0.0, max=2.0, step=0.1, description="λ"))


def temperature_figure(df: pd.DataFrame, lr: float, batch_size: int, n: int):
    """All runs' stationary loss against η/b, the chosen (η, b) highlighted, with its temperature."""
    fig, axes = new_figure(width=5.4, height=3.6)
    ax = axes[0][0]
    agg = df.groupby(["lr", "batch_size", "ratio"]).loss.agg(["mean", "std"]).reset_index()
    ax.errorbar(agg.ratio, agg["mean"], yerr=agg["std"], fmt="o", color="0.5", capsize=3, label="runs (mean ± sd)")
    sel = agg[(np.isclose(agg.lr, lr)) & (agg.batch_size == batch_size)]
    if len(sel):
        ax.errorbar(sel.ratio, sel["mean"], yerr=sel["std"], fmt="o", color=PALETTE[3], ms=10, capsize=4,
                    label=f"η={lr:g}, b={batch_size}")
    t_with = lr / (2 * batch_size)
    t_without = t_with * (1 - batch_size / n)
    ax.set(xscale="log", xlabel="η/b (learning rate per sample)", ylabel="stationary train loss (nats)",
           title=f"β⁻¹ = {t_with:.2e} with replacement, {t_without:.2e} without (N = {n})")
    ax.legend(fontsize="x-small")
    return fig


def temperature_explorer(df: pd.DataFrame, n: int):
    """Static figure for the first configuration, then dropdowns for η and b over the precomputed runs."""
    first = df.iloc[0]
    fig = temperature_figure(df, float(first.lr), int(first.batch_size), n)
    display(fig)
    plt.close(fig)
    try:
        import ipywidgets as w
    except ImportError:  # pragma: no cover
        return None

    def show(lr, batch_size):
        f = temperature_figure(df, lr, batch_size, n)
        display(f)
        plt.close(f)

    return w.interact(show, lr=w.Dropdown(options=sorted(df.lr.unique()), value=float(first.lr), description="η"),
                      batch_size=w.Dropdown(options=sorted(df.batch_size.unique()), value=int(first.batch_size),
                                            description="b"))
