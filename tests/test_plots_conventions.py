"""The book's figure and table conventions (sgdbayes.plots): widths, fonts, log axes, tables."""

import struct

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from IPython.core.pylabtools import print_figure  # noqa: E402

from sgdbayes import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _style():
    plots.book_style()
    yield
    plt.close("all")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_wide_figure_is_scaled_to_the_content_column():
    fig, axes = plots.new_figure(3, 1, width=4.4, height=3.4)
    w, h = fig.get_size_inches()
    assert w == pytest.approx(plots.MAX_WIDTH_IN)
    assert h == pytest.approx(3.4 * plots.MAX_WIDTH_IN / (3 * 4.4))  # aspect of each panel kept
    assert axes.shape == (1, 3)
    # a narrow one is left alone
    fig2, _ = plots.new_figure(1, 1, width=4.0, height=3.0)
    assert tuple(fig2.get_size_inches()) == pytest.approx((4.0, 3.0))


def test_rendered_png_fits_the_column_at_full_size():
    """The notebook output is a 2× PNG shown at half its pixel size: that CSS width must fit the column."""
    fig, axes = plots.new_figure(2, 1, width=5.0, height=3.5)
    for ax in axes.flat:
        ax.plot([1, 2, 3], [3, 1, 2], label="a long legend entry that sticks out")
        ax.set_xlabel("learning rate ε")
        ax.legend()
    png = print_figure(fig, fmt="retina", bbox_inches="tight", pad_inches=0.04)
    w, _ = _png_size(png)
    assert w / 2 <= plots.CONTENT_WIDTH_PX, f"shown at {w / 2:.0f} px in a {plots.CONTENT_WIDTH_PX}-px column"
    assert w / 2 >= 0.9 * plots.MAX_WIDTH_IN * plots.DPI * 0.9


def test_small_fonts_are_raised_to_the_minimum_when_drawn():
    fig, axes = plots.new_figure(1, 1)
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], label="x")
    ax.legend(fontsize="xx-small")
    ax.set_title("t", fontsize=5)
    ax.tick_params(labelsize=4)
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    assert min(sizes) >= plots.MIN_FONT_PT
    assert ax.get_legend().get_texts()[0].get_fontsize() == plots.MIN_FONT_PT
    # an ordinary Figure is not touched (the check really depends on BookFigure)
    plain = plt.figure()
    plain.gca().set_title("t", fontsize=5)
    plain.canvas.draw()
    assert plain.gca().title.get_fontsize() == 5


def test_log_axis_spanning_decades_has_no_minor_labels():
    fig, axes = plots.new_figure(2, 1)
    a, b = axes[0]
    a.loglog(np.logspace(-6, 0, 20), np.logspace(-6, 0, 20))
    b.semilogx([2.0, 3.0, 5.0], [1, 2, 3])        # less than a decade: minor labels are all there is
    fig.canvas.draw()
    assert isinstance(a.xaxis.get_minor_formatter(), matplotlib.ticker.NullFormatter)
    assert isinstance(a.yaxis.get_minor_formatter(), matplotlib.ticker.NullFormatter)
    assert not isinstance(b.xaxis.get_minor_formatter(), matplotlib.ticker.NullFormatter)
    lo, hi = a.get_xlim()
    visible = [t for t in a.xaxis.get_major_ticks() if lo <= t.get_loc() <= hi and t.label1.get_text()]
    assert 2 <= len(visible) <= 7


def test_new_figure_rejects_bad_sizes():
    with pytest.raises(ValueError, match="ncols"):
        plots.new_figure(0, 1)
    with pytest.raises(ValueError, match="height"):
        plots.new_figure(1, 1, height=-1)


# ------------------------------------------------------------------------------------------------------ tables
def _html(df, **kw):
    return plots.table(df, **kw).to_html()


def test_table_counts_missing_values_and_index():
    df = pd.DataFrame({"optimiser": ["SGD", "Adam", "RMSprop"], "networks": [10000.0, np.nan, 2500.0],
                       "top-1 mass": [0.65312, 0.5, np.nan], "note": ["", None, "nan"]})
    html = _html(df)
    assert "10,000" in html and "2,500" in html and "10000.0" not in html
    assert "0.6531" in html
    assert "nan" not in html.lower()
    assert html.count("—") == 4  # networks, top-1 mass and both notes
    assert "<th class=\"blank" not in html and "row_heading" not in html  # no 0..n index column
    assert "white-space: nowrap" in html


def test_table_formats_and_errors():
    df = pd.DataFrame({"ε": [1e-5, 0.25, 2e6], "share": [0.1234, 0.5, 1.0], "ok": [True, False, True]})
    html = _html(df, formats={"share": "{:.1%}"})
    assert "12.3%" in html and "1.000×10⁻⁵" in html and "2.000×10⁶" in html and "yes" in html
    with pytest.raises(ValueError, match="not in the table"):
        plots.table(df, formats={"missing": "{:.1f}"})
    with pytest.raises(TypeError, match="DataFrame"):
        plots.table([[1, 2]])


@pytest.mark.parametrize("value,text", [(None, "—"), (float("nan"), "—"), (3, "3"), (-12000, "−12,000"),
                                        (0.5, "0.5"), (1.23456, "1.235"), (-2.5e-7, "−2.500×10⁻⁷"),
                                        (float("inf"), "∞"), (np.float32(0.25), "0.25"), (np.int64(7), "7")])
def test_format_number(value, text):
    assert plots.format_number(value) == text


def test_narrow_log_panels_have_no_overlapping_tick_labels():
    fig, axes = plots.new_figure(3, 1, width=3.6, height=3.6)       # scaled to ~2.3 in per panel
    for ax in axes.flat:
        ax.loglog([1e-12, 1.0], [1e-12, 1.0])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in axes.flat:
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            boxes = [t.get_window_extent(renderer) for t in labels if t.get_text() and t.get_visible()]
            boxes = [b for b in boxes if b.width > 0]
            assert len(boxes) >= 2
            for a, b in zip(boxes, boxes[1:]):
                assert not a.overlaps(b), "tick labels overlap"
