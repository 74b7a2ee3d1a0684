"""Headline numbers of each chapter, written to ``_build/results/<chapter>.json`` for the reproduction report.

    record("constant_sgd", "kl_sgd_full_wine", 0.83, paper=0.7, profile=profile,
           description="KL(posterior ‖ stationary), constant SGD with full preconditioner, Wine")

Each file maps a quantity's name to ``{"value", "paper", "description", "unit", "profile"}``. Writes are atomic
read-modify-write, so a chapter can record as it goes and an interrupted run keeps what it recorded.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from sgdbayes.paths import atomic_write_bytes, results_dir

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _plain(value: Any) -> Any:
    """numpy / torch scalars and arrays → JSON values; NaN and inf → strings so the JSON stays valid."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return _plain(float(value))
    return value


def results_path(chapter: str) -> Path:
    if not _NAME.match(chapter):
        raise ValueError(f"chapter name {chapter!r} may only contain letters, digits, '_', '-', '.'")
    return results_dir() / f"{chapter}.json"


def load(chapter: str) -> dict[str, Any]:
    path = results_path(chapter)
    if not path.exists():
        return {"chapter": chapter, "results": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"results file {path} is not valid JSON ({err}); delete it and rerun the chapter") from None


def record(chapter: str, name: str, value: Any, *, paper: Any = None, description: str = "", unit: str = "",
           profile: str | None = None) -> None:
    """Store one headline number of ``chapter`` (value beside the paper's, where the paper gives one)."""
    if not _NAME.match(name):
        raise ValueError(f"result name {name!r} may only contain letters, digits, '_', '-', '.'")
    data = load(chapter)
    data["chapter"] = chapter
    if profile is not None:
        data["profile"] = profile
    data["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data.setdefault("results", {})[name] = {
        "value": _plain(value), "paper": _plain(paper), "description": description, "unit": unit,
        "profile": profile if profile is not None else data.get("profile"),
    }
    atomic_write_bytes(results_path(chapter), json.dumps(data, indent=2, sort_keys=False).encode())


def clear(chapter: str) -> None:
    """Forget a chapter's previous numbers (a chapter calls this at its start so stale names do not linger)."""
    path = results_path(chapter)
    if path.exists():
        path.unlink()


def load_all(directory: Path | None = None) -> list[dict[str, Any]]:
    """One row per recorded quantity over every ``*.json`` in the results directory (sorted by chapter)."""
    directory = Path(directory) if directory is not None else results_dir()
    rows: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            rows.append({"chapter": path.stem, "quantity": "(unreadable results file)", "value": None,
                         "paper": None, "description": str(path), "unit": "", "profile": None})
            continue
        for qname, entry in data.get("results", {}).items():
            rows.append({"chapter": data.get("chapter", path.stem), "quantity": qname, **{
                k: entry.get(k) for k in ("value", "paper", "description", "unit")},
                "profile": entry.get("profile") or data.get("profile")})
    return rows
