"""Explorer for the Polyak-averaging chapter: ε, S, T → covariance ellipses of the raw and the averaged iterates."""

from __future__ import annotations

import numpy as np

from sgdbayes.experiments.polyak_averaging import ou_average_chains
from sgdbayes.ou.averaging import averaged_covariance_exact, averaged_covariance_theory
from sgdbayes.ou.diagnostics import relative_error
from sgdbayes.ou.theory import lyapunov_covariance, stability_limit
from sgdbayes.plots import new_figure
from sgdbayes.plots.polyak_averaging import ellipses


def averaging_figure(A, C, *, eps: float, S: int, T: int, n_chains: int = 300, seed: int = 0):
    """Ellipses (2 sd) of the raw stationary law ``Σ_d``, the exact averaged covariance and ``A⁻¹CA⁻ᵀ/(TS)``, with
    ``n_chains`` simulated window averages, for the 2-D quadratic model ``(A, C)``."""
    A, C = np.asarray(A, float), np.asarray(C, float)
    if A.shape != (2, 2):
        raise ValueError(f"the explorer draws 2-D ellipses; A must be 2×2, got {A.shape}")
    raw = lyapunov_covariance(A, C, eps=eps, S=S, discrete=True)
    exact = averaged_covariance_exact(A, C, eps=eps, T=T, S=S)
    theory = averaged_covariance_theory(A, C, T=T, S=S)
    sim = ou_average_chains(A, C, eps=eps, T=T, S=S, n_chains=n_chains, seed=seed)
    fig, axes = new_figure(2, 1, width=4.3, height=4.2)
    ellipses(axes[0][0], {"raw iterates Σ": raw, "average, exact": exact, "A⁻¹CA⁻ᵀ/(TS)": theory},
             points={"raw (last iterate)": sim.last, "averages": sim.means}, unit=" (θ units)",
             lim_sd=3.0)
    axes[0][0].set_title(f"ε={eps:g}, S={S}, T={T}")
    ellipses(axes[0][1], {"average, exact": exact, "A⁻¹CA⁻ᵀ/(TS)": theory}, points={"averages": sim.means},
             unit=" (θ units)", lim_sd=3.0)
    axes[0][1].set_title(f"zoom (T·S = {T * S}): exact vs A⁻¹CA⁻ᵀ/(TS) differ by {relative_error(exact, theory):.1%}",
                         fontsize="small")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize="small", frameon=False)
    return fig


def explorer(A, C, *, eps: float = 0.2, S: int = 4, T: int = 250):
    """``(static_figure, widget)``: the default view as an ordinary figure, then sliders for ε (log scale, up to
    0.99 × the stability limit), S and T that redraw :func:`averaging_figure` below them."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    static = averaging_figure(A, C, eps=eps, S=S, T=T)
    limit = stability_limit(A)
    out = widgets.Output()
    w_eps = widgets.FloatLogSlider(value=eps, base=10, min=-3, max=float(np.log10(0.99 * limit)), step=0.05,
                                   description="ε")
    w_S = widgets.IntSlider(value=S, min=1, max=64, description="S")
    w_T = widgets.IntSlider(value=T, min=1, max=2000, description="T")

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            fig = averaging_figure(A, C, eps=w_eps.value, S=w_S.value, T=w_T.value)
            plt.show(fig)

    for w in (w_eps, w_S, w_T):
        w.observe(redraw, names="value")
    with out:   # the default view is the static figure; draw here only when a slider moves
        print("move a slider to redraw (the default view is the figure above)")
    return static, widgets.VBox([widgets.HBox([w_eps, w_S, w_T]), out])
