"""Figures of the images page: what is drawn is the data given (points, positions, sizes within the book's width)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sgdbayes import plots  # noqa: E402
from sgdbayes.functions import FunctionCounts  # noqa: E402
from sgdbayes.plots import function_probability_images as fplots  # noqa: E402


@pytest.fixture(autouse=True)
def _style():
    plots.book_style()
    yield
    plt.close("all")


def _counts():
    rows = [[1, 0, 0]] * 6 + [[1, 1, 0]] * 3 + [[0, 0, 0]]
    return FunctionCounts.from_bits(np.array(rows), 3)


def _offsets(ax):
    return np.concatenate([c.get_offsets() for c in ax.collections if hasattr(c, "get_offsets")
                           and len(c.get_offsets()) and c.get_array() is not None] or [np.zeros((0, 2))])


def test_scatter_panels_draws_only_functions_with_a_pb_value():
    c = _counts()
    lp = np.log([0.5, np.nan, 0.01])                    # the middle function has no P_B value
    fig = fplots.scatter_panels([("a", c, lp, "P_B"), ("b", c, np.full(3, np.nan), "P_B")], np.array([1, 0, 0]))
    ax0, ax1 = fig.axes[0], fig.axes[1]
    pts = _offsets(ax0)
    expected = {(0.5, 0.6), (0.01, 0.1)}
    assert {(round(x, 6), round(y, 6)) for x, y in pts} == expected
    assert len(_offsets(ax1)) == 0 and any("no function" in t.get_text() for t in ax1.texts)
    assert fig.get_size_inches()[0] <= plots.MAX_WIDTH_IN + 1e-9


def test_marginals_figure_plots_one_point_per_test_input_per_run():
    pb = np.array([0.1, 0.5, 0.9])
    runs = {"A": np.array([0.0, 0.4, 1.0]), "B": np.array([0.2, 0.6, 0.8])}
    fig = fplots.marginals_figure([("x", pb), ("y", pb[::-1])], runs)
    ax = fig.axes[0]
    offs = [c.get_offsets() for c in ax.collections]
    assert len(offs) == 2
    np.testing.assert_allclose(offs[0], np.c_[pb, runs["A"]])
    assert fig.get_size_inches()[0] <= plots.MAX_WIDTH_IN + 1e-9


def test_concentration_figure_is_the_cumulative_mass():
    c = _counts()
    fig = fplots.concentration_figure({"run": c}, paper={1: 0.7, 10: 0.98})
    ax = fig.axes[0]
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_ydata(), [0.6, 0.9, 1.0])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.7, 0.98])


def test_error_ax_and_panel_and_csr_figures_draw_the_given_numbers():
    c = _counts()
    dists = {"P_SGD": np.array([0.1, 0.6, 0.3, 0.0]), "P_B": np.array([0.2, 0.3, 0.3, 0.2])}
    fig = fplots.panel_figure("t", c, np.log([0.5, 0.2, 0.01]), np.array([1, 0, 0]), dists)
    assert len(_offsets(fig.axes[0])) == 3
    hist_ax = fig.axes[1]
    stairs = [p for p in hist_ax.patches]
    assert len(stairs) == 2
    np.testing.assert_allclose(stairs[0].get_data().values, dists["P_SGD"])
    log10_pb = np.array([-1.0, -2.0, np.nan])
    csr = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    fig = fplots.csr_figure(log10_pb, csr, [0.01, 0.03])
    np.testing.assert_allclose(fig.axes[1].collections[0].get_offsets(), [[0.4, -1.0], [0.5, -2.0]])
