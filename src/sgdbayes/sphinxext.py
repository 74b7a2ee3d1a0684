"""Small Sphinx extension for the book (listed in ``_config.yml`` under ``sphinx.extra_extensions``).

- Removes duplicated ``<script>`` / stylesheet entries from every page. jupyter-book 1 registers the inline scripts
  of sphinx-thebe and sphinx-togglebutton twice (once with the file name ``None``, once with ``""``); the second
  ``const THEBE_JS_URL = ...`` raised "Identifier 'THEBE_JS_URL' has already been declared" in the console of every
  page.
- Keeps the widget JavaScript (``nb_ipywidgets_js``: require.js, then the html-manager bundle, both served from
  ``_static/vendor``) in its configured order and only on pages that hold saved widget state. myst-nb adds the files
  while pages are written, so they leaked onto later pages and could come out in the wrong order ("define is not
  defined": the AMD bundle loaded before require.js).
- Sets the theme mode to "auto" when the reader has none stored: pydata-sphinx-theme's page template sets it to
  ``localStorage.getItem("mode") || ""`` and then logs "Got invalid theme mode: ." as a console error on every
  first visit before falling back to "auto" itself.
- Registers the citation style ``author_year_round``: sphinxcontrib-bibtex's author–year style with round brackets,
  so {cite:t}`mandt2017` reads "Mandt et al. (2017)" and {cite:p} "(Mandt et al., 2017)".
"""

from __future__ import annotations

import dataclasses
from typing import Any

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _filename(asset: Any) -> str:
    return str(getattr(asset, "filename", asset) or "")


def _key(asset: Any) -> tuple:
    attributes = getattr(asset, "attributes", {}) or {}
    return (_filename(asset), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def dedupe_assets(assets: list[Any]) -> list[Any]:
    """``assets`` without repeats (same file or inline body and the same attributes), first occurrence kept."""
    seen: set[tuple] = set()
    out = []
    for asset in assets:
        key = _key(asset)
        if key in seen:
            continue
        seen.add(key)
        out.append(asset)
    return out


def order_widget_scripts(scripts: list[Any], widget_js: list[str]) -> list[Any]:
    """Drop the widget scripts (file names ending in one of ``widget_js``) from a page without widget state; on a
    page with it, put them in the order of ``widget_js`` at the place of the first of them."""
    def which(asset: Any) -> int | None:
        name = _filename(asset)
        for i, suffix in enumerate(widget_js):
            if suffix and name.endswith(suffix):
                return i
        return None

    has_state = any((getattr(a, "attributes", {}) or {}).get("type") == WIDGET_STATE for a in scripts)
    widget = sorted((a for a in scripts if which(a) is not None), key=which)
    others = [a for a in scripts if which(a) is None]
    if not has_state or not widget:
        return others
    first = next(i for i, a in enumerate(scripts) if which(a) is not None)
    before = [a for a in scripts[:first] if which(a) is None]
    ids = {id(a) for a in before}
    return before + widget + [a for a in others if id(a) not in ids]


def _page_context(app, pagename, templatename, context, doctree) -> None:
    if "css_files" in context:
        context["css_files"] = dedupe_assets(list(context["css_files"]))
    if "script_files" in context:
        scripts = dedupe_assets(list(context["script_files"]))
        widget_js = list(getattr(app.config, "nb_ipywidgets_js", {}) or {})
        context["script_files"] = order_widget_scripts(scripts, widget_js)


def _register_round_author_year() -> None:
    try:
        from sphinxcontrib.bibtex.plugin import register_plugin
        from sphinxcontrib.bibtex.style.referencing import BracketStyle
        from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle
    except ImportError:  # pragma: no cover - bibtex not installed: nothing to register
        return

    def round_brackets() -> BracketStyle:
        return BracketStyle(left="(", right=")")

    @dataclasses.dataclass
    class RoundAuthorYearReferenceStyle(AuthorYearReferenceStyle):
        bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=round_brackets)
        bracket_textual: BracketStyle = dataclasses.field(default_factory=round_brackets)
        bracket_author: BracketStyle = dataclasses.field(default_factory=round_brackets)
        bracket_label: BracketStyle = dataclasses.field(default_factory=round_brackets)
        bracket_year: BracketStyle = dataclasses.field(default_factory=round_brackets)

    register_plugin("sphinxcontrib.bibtex.style.referencing", "author_year_round",
                    RoundAuthorYearReferenceStyle, force=True)


THEME_MODE_FIX = 'if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "auto"; }'


def setup(app) -> dict[str, Any]:
    _register_round_author_year()
    app.add_js_file(None, body=THEME_MODE_FIX, priority=100)
    # run late, after every other extension has added its assets for the page
    app.connect("html-page-context", _page_context, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
