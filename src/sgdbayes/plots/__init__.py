"""Seaborn/matplotlib figures for the book, one module per chapter; this module holds the shared style.

Plotting is kept thin and separate from computation: a plot function takes arrays/results and returns a Figure.
"""

from __future__ import annotations

import matplotlib

import matplotlib.pyplot as plt
import seaborn as sns

#: One colour per method, shared by every chapter so that "SGD" is the same colour everywhere.
PALETTE = sns.color_palette("colorblind")


def book_style(context: str = "notebook") -> None:
    """The book's figure style: readable in the rendered HTML (seaborn ``notebook`` context, white grid)."""
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE)
    matplotlib.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 110,
        "figure.constrained_layout.use": True,
        "axes.titlesize": "medium",
    })


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4, **kwargs):
    """``plt.subplots`` sized per panel (inches); returns ``(fig, axes)``."""
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)
