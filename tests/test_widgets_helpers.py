"""Shared widget helpers: log sliders, fixed limits, the explorer's draw-on-change behaviour."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sgdbayes import plots, widgets  # noqa: E402


def test_log_slider_spans_decades_evenly():
    s = widgets.log_slider("ε/ε*", lo=0.1, hi=10.0, value=1.0, steps_per_decade=20)
    assert s.min == pytest.approx(-1) and s.max == pytest.approx(1) and s.step == pytest.approx(0.05)
    assert s.value == pytest.approx(1.0) and s.base == 10
    # one step multiplies the value by the same factor everywhere on the slider
    assert 10 ** s.step == pytest.approx(10 ** 0.05)


@pytest.mark.parametrize("kw,match", [(dict(lo=0.0, hi=1.0, value=0.5), "positive"),
                                      (dict(lo=2.0, hi=1.0, value=1.5), "below"),
                                      (dict(lo=0.1, hi=1.0, value=5.0), "outside"),
                                      (dict(lo=0.1, hi=1.0, value=float("nan")), "positive")])
def test_log_slider_rejects_bad_ranges(kw, match):
    with pytest.raises(ValueError, match=match):
        widgets.log_slider("x", **kw)


def test_span_covers_all_settings():
    lo, hi = widgets.span([1.0, 2.0], np.array([[0.5, np.nan], [3.0, np.inf]]), pad=0.1)
    assert lo == pytest.approx(0.5 - 0.25) and hi == pytest.approx(3.0 + 0.25)
    llo, lhi = widgets.span([1e-3, 10.0, -1.0], log=True, pad=0.0)
    assert (llo, lhi) == (pytest.approx(1e-3), pytest.approx(10.0))
    with pytest.raises(ValueError, match="no finite"):
        widgets.span([np.nan])


def test_fix_limits_survive_new_data():
    fig, axes = plots.new_figure(1, 1)
    ax = axes[0, 0]
    widgets.fix_limits(ax, xlim=(0, 1), ylim=(-1, 1))
    ax.plot([0, 5], [0, 50])
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (-1, 1)


def test_explorer_draws_only_when_a_control_moves():
    calls = []

    def draw(eps):
        calls.append(eps)
        fig, axes = plots.new_figure(1, 1)
        axes[0, 0].plot([0, 1], [0, eps])
        return fig

    slider = widgets.log_slider("ε", lo=0.1, hi=10.0, value=1.0)
    ui = widgets.explorer(draw, {"eps": slider})
    assert calls == []                       # the default view is the chapter's static figure, not drawn again
    slider.value = 2.0
    assert len(calls) == 1 and math.isclose(calls[0], 2.0, rel_tol=1e-9)
    assert "live Python kernel" in ui.children[0].value
    with pytest.raises(ValueError):
        widgets.explorer(draw, {})
