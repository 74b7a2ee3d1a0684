"""ipywidgets explorers, one module per chapter, and the helpers they share.

Each explorer shows its default view **once**, as an ordinary (glued) figure, so the static book shows it although
widget callbacks need a live kernel; the interactive part redraws *below* it only when a control moves, with axis
limits fixed across redraws, and carries the shared note that it needs a live kernel::

    from sgdbayes import widgets

    eps = widgets.log_slider("ε / ε*", lo=0.1, hi=3.0, value=1.0)
    xlim = widgets.span(all_x, pad=0.05)

    def draw(eps):
        fig, axes = plots.new_figure(1, 1)
        ...
        widgets.fix_limits(axes[0, 0], xlim=xlim, ylim=ylim)
        return fig

    fig0 = draw(eps=1.0)
    glue("fig-csgd-explorer", fig0, display=False)
    ui = widgets.explorer(draw, {"eps": eps})
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

#: Where the introduction explains how to run the explorers live.
LIVE_HELP = "intro.html#intro-widgets"


def live_note(what: str = "This explorer") -> Any:
    """The shared note above an explorer: its controls need a live Python kernel; the static page shows the
    default view (the figure above) and the controls' saved state only."""
    from IPython.display import HTML

    return HTML(
        f'<div class="sgd-live-note"><b>{_esc(what)} needs a live Python kernel.</b> On this static page the '
        "controls show their saved state and moving them redraws nothing; the figure above is the default view. "
        f'Open the chapter in Jupyter to explore (<a href="{LIVE_HELP}">how</a>).</div>'
    )


def _esc(text: str) -> str:
    from html import escape

    return escape(str(text))


def log_slider(description: str, *, lo: float, hi: float, value: float, steps_per_decade: int = 20,
               readout_format: str = ".3g", **kwargs):
    """An ``ipywidgets.FloatLogSlider`` from ``lo`` to ``hi`` (positive, spanning decades) with ``steps_per_decade``
    even steps per factor of ten, so a quantity that spans decades moves smoothly across all of them."""
    import ipywidgets as ipw

    for name, v in (("lo", lo), ("hi", hi), ("value", value)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"log_slider {description!r}: {name} must be a positive finite number, got {v!r}")
    if not lo < hi:
        raise ValueError(f"log_slider {description!r}: lo ({lo}) must be below hi ({hi})")
    if not lo <= value <= hi:
        raise ValueError(f"log_slider {description!r}: value {value} is outside [{lo}, {hi}]")
    if steps_per_decade < 1:
        raise ValueError(f"steps_per_decade must be ≥ 1, got {steps_per_decade}")
    return ipw.FloatLogSlider(value=value, base=10, min=math.log10(lo), max=math.log10(hi),
                              step=1.0 / steps_per_decade, description=description,
                              readout_format=readout_format, continuous_update=False, **kwargs)


def span(*arrays: Iterable[float], pad: float = 0.05, log: bool = False) -> tuple[float, float]:
    """Axis limits covering every finite value of ``arrays`` (all the settings an explorer can show), padded by
    ``pad`` of the range (of the log range when ``log``): pass them to every redraw so the axes do not jump."""
    values = np.concatenate([np.asarray(list(a) if not hasattr(a, "__array__") else a, dtype=float).ravel()
                             for a in arrays]) if arrays else np.array([])
    values = values[np.isfinite(values)]
    if log:
        values = values[values > 0]
    if values.size == 0:
        raise ValueError("span: no finite values" + (" > 0 (log axis)" if log else ""))
    lo, hi = float(values.min()), float(values.max())
    if log:
        a, b = math.log10(lo), math.log10(hi)
        d = (b - a) or 1.0
        return 10 ** (a - pad * d), 10 ** (b + pad * d)
    d = (hi - lo) or (abs(hi) or 1.0)
    return lo - pad * d, hi + pad * d


def fix_limits(ax, *, xlim: tuple[float, float] | None = None, ylim: tuple[float, float] | None = None) -> None:
    """Set fixed limits (and switch off autoscaling) so that every redraw of an explorer uses the same axes."""
    if xlim is not None:
        ax.set_xlim(*xlim)
        ax.set_autoscalex_on(False)
    if ylim is not None:
        ax.set_ylim(*ylim)
        ax.set_autoscaley_on(False)


def no_data(ax, message: str = "no data for this setting") -> None:
    """Say, inside the axes, that the chosen setting has nothing to show (instead of an empty or stale panel)."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="#57606a",
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#8c959f"})


def explorer(draw: Callable[..., Any], controls: Mapping[str, Any], *, what: str = "This explorer"):
    """Controls + an output area that ``draw(**values)`` (returning a Figure) fills when a control changes — not at
    construction: the default view is the chapter's own static figure above. Returns the widget to display last in
    the cell; the live-kernel note is part of it."""
    import ipywidgets as ipw
    import matplotlib.pyplot as plt
    from IPython.display import display

    if not controls:
        raise ValueError("explorer needs at least one control")
    out = ipw.Output()

    def redraw(_change=None):
        values = {name: w.value for name, w in controls.items()}
        with out:
            out.clear_output(wait=True)
            fig = draw(**values)
            display(fig)
            plt.close(fig)

    for w in controls.values():
        w.observe(redraw, names="value")
    note = ipw.HTML(live_note(what).data)
    return ipw.VBox([note, ipw.HBox(list(controls.values()), layout=ipw.Layout(flex_flow="row wrap")), out])
