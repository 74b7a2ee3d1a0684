"""Explorer for the Polyak-averaging chapter: ε (log scale, up to the stability limit), S and T → the covariance of
the average of T iterates against A⁻¹CA⁻ᵀ/(TS), with simulated window averages. Everything is drawn in whitened
coordinates, where A⁻¹CA⁻ᵀ/(TS) is the identity, so the axes stay fixed while ε, S and T change the scale of
everything by orders of magnitude."""

from __future__ import annotations

import numpy as np

from sgdbayes import widgets
from sgdbayes.experiments.polyak_averaging import ou_average_chains
from sgdbayes.ou.averaging import averaged_covariance_exact, averaged_covariance_theory
from sgdbayes.ou.diagnostics import relative_error
from sgdbayes.ou.theory import lyapunov_covariance, stability_limit
from sgdbayes.plots import PALETTE, new_figure
from sgdbayes.plots.polyak_averaging import add_ellipse

__all__ = ["averaging_figure", "explorer"]

LIMIT = 4.5  # half-width of the fixed axes, in units of the theory's standard deviation


def averaging_figure(A, C, *, eps: float, S: int, T: int, n_chains: int = 300, seed: int = 0):
    """2-sd ellipses of the exact covariance of the average of ``T`` iterates, of ``A⁻¹CA⁻ᵀ/(TS)`` (the unit circle
    here) and of the raw stationary law, with ``n_chains`` simulated window averages, in coordinates whitened by
    ``A⁻¹CA⁻ᵀ/(TS)``; a raw law too wide for the fixed axes is reported instead of drawn."""
    A, C = np.asarray(A, float), np.asarray(C, float)
    if A.shape != (2, 2):
        raise ValueError(f"the explorer draws 2-D ellipses; A must be 2×2, got {A.shape}")
    theory = averaged_covariance_theory(A, C, T=T, S=S)
    w, U = np.linalg.eigh(theory)
    W = U / np.sqrt(w)  # whitening: Wᵀ theory W = I
    fig, axes = new_figure(1, 1, width=4.6, height=3.9)
    ax = axes[0][0]
    if eps >= stability_limit(A):
        widgets.no_data(ax, f"ε = {eps:.3g} is past the stability limit {stability_limit(A):.3g}")
    else:
        raw = W.T @ lyapunov_covariance(A, C, eps=eps, S=S, discrete=True) @ W
        exact = W.T @ averaged_covariance_exact(A, C, eps=eps, T=T, S=S) @ W
        sim = ou_average_chains(A, C, eps=eps, T=T, S=S, n_chains=n_chains, seed=seed)
        pts = sim.means @ W
        ax.scatter(pts[:, 0], pts[:, 1], s=5, alpha=0.35, color=PALETTE[1], label="simulated averages", zorder=1)
        add_ellipse(ax, np.eye(2), color="black", lw=2, ls="--", label="A⁻¹CA⁻ᵀ/(TS)")
        add_ellipse(ax, exact, color=PALETTE[0], lw=2, label="average of T iterates, exact")
        r_raw = 2 * np.sqrt(np.linalg.eigvalsh(raw).max())
        if r_raw < LIMIT:
            add_ellipse(ax, raw, color="0.4", lw=1.5, ls=":", label="raw iterates")
            note = ""
        else:
            note = f"; raw iterates: {r_raw / 2:.3g}× wider (off the axes)"
        ax.set_title(f"ε = {eps:.3g}, S = {S}, T = {T}: exact vs (4) differ by {relative_error(exact, np.eye(2)):.1%}"
                     f"{note}", fontsize=9, wrap=True)
    ax.set_aspect("equal")
    widgets.fix_limits(ax, xlim=(-LIMIT, LIMIT), ylim=(-LIMIT, LIMIT))
    ax.set_xlabel("whitened coordinate 1")
    ax.set_ylabel("whitened coordinate 2")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    return fig


def explorer(A, C, *, eps: float = 0.2, S: int = 4, T: int = 250, n_chains: int = 300, seed: int = 0):
    """``(default figure, widget)``: the default view, and controls for ε (log scale, from 10⁻³ to 0.99 of the
    stability limit), S and T (log scale) that redraw :func:`averaging_figure` below it."""
    import ipywidgets as ipw

    fig0 = averaging_figure(A, C, eps=eps, S=S, T=T, n_chains=n_chains, seed=seed)
    limit = stability_limit(A)

    def draw(eps, S, T):
        return averaging_figure(A, C, eps=eps, S=int(S), T=int(round(T)), n_chains=n_chains, seed=seed)

    controls = {"eps": widgets.log_slider("ε", lo=1e-3, hi=0.99 * limit, value=eps),
                "S": ipw.IntSlider(value=S, min=1, max=64, description="S", continuous_update=False),
                "T": widgets.log_slider("T", lo=1, hi=5000, value=T, readout_format=".0f")}
    return fig0, widgets.explorer(draw, controls, what="This explorer")
