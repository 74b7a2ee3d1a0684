"""Seaborn/matplotlib figures for the book, one module per chapter; this module holds the book's conventions.

Plotting is kept thin and separate from computation: a plot function takes arrays/results and returns a Figure.

**One plotting convention for the whole book** (see ``docs/conventions.md``):

- ``book_style()`` once per notebook; figures from ``new_figure(ncols, nrows, width=..., height=...)``.
- ``figure.dpi`` is 96, i.e. one figure inch is one CSS inch of the page, so a font of 9 pt in the figure *is* 9 pt
  on the page when the figure is shown at full size. Figures are rendered at twice that resolution ("retina") and
  shown at their CSS size, so they stay sharp.
- No figure is wider than :data:`MAX_WIDTH_IN` (the content column of the rendered page, measured in headless
  Chromium): ``new_figure`` scales the panels down to fit, so the page never shrinks a figure.
- Every text in a figure made by ``new_figure`` is at least :data:`MIN_FONT_PT` when drawn (smaller sizes such as
  ``fontsize="xx-small"`` are raised), and log axes spanning more than a decade show no minor tick labels (they
  overlap the major ones).
- Bounding boxes are tight (``bbox_inches="tight"``, small padding).
- Show a figure with ``glue("fig-...", fig, display=False)`` and a ``{glue:figure}`` with ``:name:`` and a caption.

``table(df)`` renders a DataFrame as a book table: no index, integer counts as integers, "—" for missing values,
numbers that never wrap.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter

#: One colour per method, shared by every chapter so that "SGD" is the same colour everywhere.
PALETTE = sns.color_palette("colorblind")

#: Width, in CSS pixels, of the content column of a chapter page: ``article.bd-article`` less its 2 × 32 px padding,
#: measured in headless Chromium (sphinx-book-theme 1.1): 755 px in a 1024-px window, 688 px at 1280 (the right-hand
#: table of contents appears), 790 px from 1440 up. The narrowest of these is the budget; tests/test_book.py checks
#: in a 1280-px window that no figure is shown below 90% of its width.
CONTENT_WIDTH_PX = 688
#: Figure dots per inch on screen: CSS defines 96 px per inch, so figure inches and points are page inches and points.
DPI = 96
#: The widest a figure may be, in inches (a small margin left for the tight bounding box's padding).
MAX_WIDTH_IN = round(0.97 * CONTENT_WIDTH_PX / DPI, 2)
#: No text in a book figure is smaller than this, in points at full size.
MIN_FONT_PT = 9.0
#: Base font size of the book style, points.
BASE_FONT_PT = 10.0


class BookFigure(Figure):
    """A Figure that enforces the book's minimum font size and tidies log axes each time it is drawn."""

    def draw(self, renderer):  # noqa: D102 - matplotlib API
        enforce_min_font(self)
        tidy_log_axes(self)
        return super().draw(renderer)


def enforce_min_font(fig: Figure, minimum: float = MIN_FONT_PT) -> int:
    """Raise every text of ``fig`` (titles, labels, tick labels, legends, annotations, colour bars) to at least
    ``minimum`` points; returns how many were raised."""
    raised = 0
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_text() and text.get_fontsize() < minimum - 1e-9:
            text.set_fontsize(minimum)
            raised += 1
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for which in ("major", "minor"):
                size = axis.get_tick_params(which=which).get("labelsize")
                if isinstance(size, numbers.Number) and size < minimum:
                    axis.set_tick_params(which=which, labelsize=minimum)
                    raised += 1
    return raised


def tidy_log_axes(fig: Figure) -> None:
    """On every log-scaled axis spanning at least one decade, hide the minor tick labels (which overlap the
    decade labels) and label at most one decade per ~45 px of axis length (2 to 7 labels)."""
    fw, fh = fig.get_size_inches()
    for ax in fig.axes:
        pos = ax.get_position()
        for axis, lim, length_px in ((ax.xaxis, ax.get_xlim(), pos.width * fw * DPI),
                                     (ax.yaxis, ax.get_ylim(), pos.height * fh * DPI)):
            if axis.get_scale() != "log":
                continue
            lo, hi = sorted(lim)
            if not (lo > 0 and math.isfinite(lo) and math.isfinite(hi)):
                continue
            if math.log10(hi) - math.log10(lo) >= 1.0:
                axis.set_minor_formatter(NullFormatter())
                major = axis.get_major_locator()
                if isinstance(major, LogLocator):
                    major.set_params(numticks=int(min(7, max(2, length_px / 45))))


def book_style(context: str = "notebook") -> None:
    """The book's figure style: white grid, colour-blind palette, 96 dpi (figure points = page points), readable
    fonts, tight bounding boxes and sharp (2×) PNGs in notebook outputs."""
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE)
    small = max(MIN_FONT_PT, BASE_FONT_PT - 1)
    matplotlib.rcParams.update({
        "figure.dpi": DPI,
        "savefig.dpi": 2 * DPI,
        "savefig.bbox": "tight",
        "savefig.pad_inches": 0.04,
        "figure.constrained_layout.use": True,
        "font.size": BASE_FONT_PT,
        "axes.titlesize": BASE_FONT_PT,
        "axes.labelsize": BASE_FONT_PT,
        "xtick.labelsize": small,
        "ytick.labelsize": small,
        "legend.fontsize": small,
        "legend.title_fontsize": small,
        "figure.titlesize": BASE_FONT_PT + 1,
        "lines.linewidth": 1.5,
        "lines.markersize": 5,
    })
    try:  # notebook outputs: 2× PNG shown at its CSS size (myst-nb honours the width/height metadata)
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        if get_ipython() is not None:
            set_matplotlib_formats("retina", bbox_inches="tight", pad_inches=0.04)
    except ImportError:  # pragma: no cover - outside IPython
        pass


def fit_width(width: float, ncols: int) -> float:
    """The per-panel width actually used: ``width`` unless ``ncols`` panels would exceed :data:`MAX_WIDTH_IN`."""
    if width <= 0 or ncols < 1:
        raise ValueError(f"width must be > 0 and ncols ≥ 1, got width={width!r}, ncols={ncols!r}")
    return min(width, MAX_WIDTH_IN / ncols)


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4, **kwargs):
    """``plt.subplots`` sized per panel (inches), as a :class:`BookFigure`; returns ``(fig, axes)`` with ``axes`` a
    2-D array ``[nrows, ncols]``.

    The figure is never wider than :data:`MAX_WIDTH_IN`: when ``ncols × width`` is wider, each panel is scaled
    down keeping its aspect ratio (fonts stay ≥ :data:`MIN_FONT_PT`). Pass ``sharex``/``sharey`` (e.g. ``"row"``)
    to give panels that compare the same quantity the same axes.
    """
    if not (isinstance(ncols, int) and isinstance(nrows, int)) or ncols < 1 or nrows < 1:
        raise ValueError(f"ncols and nrows must be positive integers, got ncols={ncols!r}, nrows={nrows!r}")
    if height <= 0:
        raise ValueError(f"height must be > 0, got {height!r}")
    w = fit_width(width, ncols)
    h = height * (w / width)
    kwargs.setdefault("FigureClass", BookFigure)
    return plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False, **kwargs)


# ------------------------------------------------------------------------------------------------------- tables
def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, np.floating) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in {"nan", "none", "<na>"}


def _integral_column(col: pd.Series) -> bool:
    values = [v for v in col if not _is_missing(v)]
    if not values or any(isinstance(v, (bool, np.bool_)) for v in values):
        return False
    if not all(isinstance(v, numbers.Real) for v in values):
        return False
    return all(float(v).is_integer() and abs(float(v)) < 2**53 for v in values)


def format_number(value: Any, digits: int = 4) -> str:
    """One table cell: '—' for missing, integers with thousands separators, floats to ``digits`` significant
    digits (scientific notation below 10⁻³ or from 10⁶, with a real minus sign), booleans as yes/no."""
    if _is_missing(value):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}".replace("-", "−")
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            mant, exp = f"{v:.{digits - 1}e}".split("e")
            return f"{mant}×10{_superscript(int(exp))}".replace("-", "−")
        text = f"{v:.{digits}g}"
        if "e" in text:  # large values that .g put in e-notation
            text = f"{v:,.0f}"
        return text.replace("-", "−")
    return str(value)


_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _superscript(n: int) -> str:
    return str(n).translate(_SUP)


def table(df: pd.DataFrame, *, formats: Mapping[str, str | Callable[[Any], str]] | None = None,
          digits: int = 4, integers: list[str] | None = None, index: bool = False, caption: str | None = None):
    """A DataFrame as a book table (a pandas ``Styler``; the last expression of a cell displays it).

    Column names are the caller's (give human ones: "top-1 mass", not ``pb_mass``). Missing values (None, NaN,
    ``pd.NA``) show as "—", never "nan"; columns whose values are all whole numbers (counts that became floats
    through a missing value, say) show as integers with thousands separators, as do ``integers`` columns; other
    numbers get ``digits`` significant digits. ``formats`` maps a column to a format string (``"{:.1%}"``) or a
    function. Numeric cells do not wrap. The index is hidden unless ``index=True`` (use it when the index is a
    meaningful row label, e.g. a method's name, and name it).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"table expects a pandas DataFrame, got {type(df).__name__}")
    formats = dict(formats or {})
    unknown = [c for c in [*formats, *(integers or [])] if c not in df.columns]
    if unknown:
        raise ValueError(f"columns {unknown} are not in the table; columns: {list(df.columns)}")
    if df.columns.duplicated().any():
        raise ValueError(f"duplicate column names: {list(df.columns[df.columns.duplicated()])}")
    ints = set(integers or []) | {c for c in df.columns if c not in formats and _integral_column(df[c])}

    def cell_formatter(col):
        fmt = formats.get(col)
        if fmt is None:
            if col in ints:
                return lambda v: "—" if _is_missing(v) else f"{int(round(float(v))):,}".replace("-", "−")
            return lambda v: format_number(v, digits)
        if callable(fmt):
            return lambda v: "—" if _is_missing(v) else fmt(v)
        return lambda v: "—" if _is_missing(v) else fmt.format(v).replace("nan", "—")

    styler = df.style.format({c: cell_formatter(c) for c in df.columns})
    if not index:
        styler = styler.hide(axis="index")
    else:
        styler = styler.format_index(lambda v: "—" if _is_missing(v) else str(v), axis="index")
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) or c in ints]
    styler = styler.set_table_attributes('class="sgd-table"')
    styler = styler.set_table_styles([
        {"selector": "th", "props": "text-align: left; vertical-align: bottom;"},
        {"selector": "td", "props": "vertical-align: top;"},
    ])
    if numeric:
        styler = styler.set_properties(subset=numeric, **{"white-space": "nowrap", "text-align": "right"})
    if caption:
        styler = styler.set_caption(caption)
    return styler
