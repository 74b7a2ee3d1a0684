"""Small Sphinx extension for the book (listed in ``_config.yml`` under ``sphinx.extra_extensions``).

- Removes duplicated ``<script>`` / stylesheet entries from every page. jupyter-book 1 registers the inline scripts
  of sphinx-thebe and sphinx-togglebutton twice (once with the file name ``None``, once with ``""``); the second
  ``const THEBE_JS_URL = ...`` raised "Identifier 'THEBE_JS_URL' has already been declared" in the console of every
  page.
- Keeps the widget JavaScript (``nb_ipywidgets_js``: require.js, then the html-manager bundle, both served from
  ``_static/vendor``) in its configured order and only on pages that hold saved widget state. myst-nb adds the files
  while pages are written, so they leaked onto later pages and could come out in the wrong order ("define is not
  defined": the AMD bundle loaded before require.js).
"""

from __future__ import annotations

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


def setup(app) -> dict[str, Any]:
    # run late, after every other extension has added its assets for the page
    app.connect("html-page-context", _page_context, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
