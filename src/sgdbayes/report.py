"""The reproduction report: every chapter's headline numbers beside the papers' (from ``_build/results/*.json``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from sgdbayes.results import load_all

CHAPTER_TITLES = {
    "function_probability": "1 · Function probability (Mingard et al. 2020)",
    "sgd_variational_inference": "2 · SGD performs variational inference (Chaudhari & Soatto 2018)",
    "constant_sgd": "3 · Constant SGD as approximate inference (Mandt, Hoffman & Blei 2017)",
    "polyak_averaging": "4 · Polyak averaging (Mandt, Hoffman & Blei 2017, §6)",
}

COLUMNS = ["chapter", "quantity", "paper", "this run", "profile", "description"]


def format_value(value: Any, unit: str = "") -> str:
    """Compact human form: 4 significant digits for floats, short lists, units appended; '—' for missing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        if math.isnan(value):
            text = "NaN"
        elif value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            text = f"{value:.3e}"
        else:
            text = f"{value:.4g}"
    elif isinstance(value, (list, tuple)):
        items = [format_value(v) for v in value[:6]]
        text = "[" + ", ".join(items) + (", …" if len(value) > 6 else "") + "]"
    elif isinstance(value, dict):
        text = ", ".join(f"{k}: {format_value(v)}" for k, v in list(value.items())[:6])
    else:
        text = str(value)
    return f"{text} {unit}".strip() if unit and text not in {"—", "yes", "no"} else text


def report_table(directory: Path | None = None) -> pd.DataFrame:
    """One row per recorded quantity: chapter, quantity, paper's value, this run's value, profile, description."""
    rows = load_all(directory)
    table = pd.DataFrame(
        [{"chapter": r["chapter"], "quantity": r["quantity"], "paper": format_value(r["paper"], r.get("unit") or ""),
          "this run": format_value(r["value"], r.get("unit") or ""), "profile": r["profile"] or "—",
          "description": r.get("description") or ""} for r in rows],
        columns=COLUMNS,
    )
    return table


def report_html(table: pd.DataFrame) -> str:
    """The table as HTML, one section per chapter; each quantity's description sits under its name."""
    from html import escape

    order = [c for c in CHAPTER_TITLES if c in set(table["chapter"])]
    order += sorted(set(table["chapter"]) - set(order))
    parts = []
    for chapter in order:
        rows = table[table["chapter"] == chapter]
        parts.append(f"<h3>{escape(CHAPTER_TITLES.get(chapter, chapter))}</h3>")
        parts.append('<table class="table sgdbayes-report"><thead><tr><th style="width:40%">quantity</th>'
                     '<th style="width:25%">paper</th><th style="width:25%">this run</th>'
                     '<th style="width:10%">profile</th></tr></thead><tbody>')
        for _, r in rows.iterrows():
            desc = f'<br><small>{escape(r["description"])}</small>' if r["description"] else ""
            parts.append(f'<tr><td><code>{escape(r["quantity"])}</code>{desc}</td><td>{escape(r["paper"])}</td>'
                         f'<td>{escape(r["this run"])}</td><td>{escape(str(r["profile"]))}</td></tr>')
        parts.append("</tbody></table>")
    return "\n".join(parts)
