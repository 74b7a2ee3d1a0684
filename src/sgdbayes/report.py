"""The reproduction report: every chapter's headline numbers beside the papers' (from ``_build/results/*.json``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from sgdbayes.results import load_all

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
