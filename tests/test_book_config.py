"""The book's Sphinx configuration renders math, numbered equations, citations and the widget scripts as intended.

Builds a one-page book with the project's own ``_config.yml``, ``references.bib`` and ``_static/`` (no notebooks
executed, ~15 s) and reads the HTML. The browser test (test_book.py) checks the real pages; this one pins the causes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sgdbayes.sphinxext import dedupe_assets, order_widget_scripts

ROOT = Path(__file__).resolve().parents[1]

PAGE = r"""# Test page

Under the assumptions the iterates satisfy
$$
\theta_{t+1} = (I - \varepsilon A)\,\theta_t + \frac{\varepsilon}{\sqrt S} B\xi_t . \tag{1}
$$
It is stable iff $\varepsilon < 2/\lambda_{\max}$.

The stationary covariance solves

$$
A\Sigma + \Sigma A^\top = \frac{\varepsilon}{S} BB^\top
$$ (eq-lyapunov)

and {eq}`eq-lyapunov` gives $\Sigma \propto \varepsilon/S$ {cite:p}`mandt2017`, as {cite:t}`mandt2017` show.

```{bibliography}
```
"""


NOTEBOOK_CELLS = [
    ("markdown", "# Figures"),
    ("code", "from myst_nb import glue\nfrom sgdbayes import plots\nplots.book_style()"),
    ("code", "fig, axes = plots.new_figure(3, 1, width=4.4, height=3.4)\n"
             "for ax in axes.flat:\n    ax.loglog([1e-9, 1.0], [1e-9, 1.0], label='a legend entry')\n"
             "    ax.legend(fontsize='xx-small')\n"
             "glue('fig-test-panels', fig, display=False)"),
    ("markdown", "```{glue:figure} fig-test-panels\n:name: fig-test-panels\n\n**Three panels.** A caption.\n```\n\n"
                 "As {numref}`fig-test-panels` shows."),
]


def _executed_notebook(path: Path) -> None:
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) if kind == "code" else nbformat.v4.new_markdown_cell(src)
                for kind, src in NOTEBOOK_CELLS]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    exe = Path(sys.executable).with_name("jupyter-book")
    if not exe.exists():
        pytest.skip("jupyter-book is not installed in this environment")
    root = tmp_path_factory.mktemp("minibook")
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy(ROOT / "references.bib", root / "references.bib")
    shutil.copytree(ROOT / "_static", root / "_static")
    (root / "page.md").write_text(PAGE)
    _executed_notebook(root / "figs.ipynb")
    (root / "_toc.yml").write_text("format: jb-book\nroot: page\nchapters:\n  - file: figs\n")
    proc = subprocess.run([str(exe), "build", str(root), "-W", "--keep-going"], cwd=root, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"mini book failed to build:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return root / "_build" / "html" / "page.html"


pytestmark = pytest.mark.slow


def _text_outside_math(html: str) -> str:
    body = html.split('<article class="bd-article"', 1)[-1]
    body = re.sub(r'<div class="math[^"]*"[^>]*>.*?</div>', "", body, flags=re.S)
    body = re.sub(r'<span class="math[^"]*"[^>]*>.*?</span>', "", body, flags=re.S)
    return re.sub(r"<[^>]+>", "", body)


def test_display_math_after_a_text_line_is_rendered_not_raw(built):
    html = built.read_text()
    text = _text_outside_math(html)
    assert "$$" not in text and "\\frac" not in text and "\\tag" not in text
    # both display equations became math blocks for MathJax
    assert len(re.findall(r'<div class="math notranslate nohighlight"', html)) >= 2


def test_labelled_equation_is_numbered_and_referenced(built):
    html = built.read_text()
    assert 'id="equation-eq-lyapunov"' in html
    assert re.search(r'<span class="eqno">\(1\)', html), "the labelled equation carries no number"
    assert re.search(r'href="#equation-eq-lyapunov"[^>]*>\(1\)', html), "{eq} does not link to the equation"


def test_glued_figure_is_numbered_captioned_and_fits_the_column(built):
    html = (built.parent / "figs.html").read_text()
    fig = re.search(r'<figure[^>]*id="fig-test-panels".*?</figure>', html, flags=re.S)
    assert fig, "the glued figure is not a <figure> with the given :name:"
    assert re.search(r'<span class="caption-number">Fig\. 1 </span>', fig.group(0))
    assert "Three panels." in fig.group(0)
    width = int(re.search(r'style="width: (\d+)px', fig.group(0)).group(1))
    from sgdbayes.plots import CONTENT_WIDTH_PX

    assert 0.8 * CONTENT_WIDTH_PX <= width <= CONTENT_WIDTH_PX      # 2× PNG shown at its CSS size, fits
    assert re.search(r'href="#fig-test-panels"[^>]*>.*?Fig\. 1', html, flags=re.S), "{numref} does not link"


def test_citations_are_author_year_with_round_brackets(built):
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", built.read_text()))
    assert "(Mandt et al., 2017)" in text
    assert "Mandt et al. (2017) show" in text


def test_no_duplicated_inline_scripts_and_no_cdn(built):
    html = built.read_text()
    assert html.count("const THEBE_JS_URL") <= 1
    assert html.count("var togglebuttonSelector") <= 1
    assert "cdn.jsdelivr.net" not in html and "cdnjs.cloudflare.com" not in html
    assert 'dataset.mode = "auto"' in html


# ------------------------------------------------------------------------------ the extension's pure helpers
class _JS:
    def __init__(self, filename, **attributes):
        self.filename, self.attributes = filename, attributes


def test_dedupe_treats_none_and_empty_file_names_alike():
    a, b, c = _JS(None, body="const X = 1"), _JS("", body="const X = 1"), _JS("x.js")
    assert dedupe_assets([a, c, b]) == [a, c]


def test_widget_scripts_in_order_and_only_with_widget_state():
    conf = ["sgdbayes-widgets.js", "vendor/requirejs/require.js", "vendor/hm/embed-amd.js"]
    shim, req, emb = (_JS("_static/" + f) for f in conf)
    other, state = _JS("_static/doctools.js"), _JS(None, type="application/vnd.jupyter.widget-state+json", body="{}")
    assert order_widget_scripts([other, emb, req, shim, state], conf) == [other, shim, req, emb, state]
    assert order_widget_scripts([other, emb, req, shim], conf) == [other]  # no widget state: no widget JS
