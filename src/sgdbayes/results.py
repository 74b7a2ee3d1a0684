"""Headline numbers and scorecard rows of each chapter, written to ``_build/results/<chapter>.json``.

Numbers::

    record("constant_sgd", "kl_sgd_full_wine", 0.83, paper=0.7, profile=profile, unit="nats",
           label="KL(posterior ‖ stationary), full H, Wine",
           description="constant SGD with the full preconditioner H*, 300 chains")

Claims (one row of the reproduction scorecard; the report page reads nothing else)::

    claim("constant_sgd", "table1-order", paper="mandt2017", item="Table 1",
          claim="Full preconditioning beats diagonal, which beats plain constant SGD, in KL.",
          status="partly", paper_scale="Wine, Skin, Protein; S = 100–10,000",
          scale=f"diabetes + fair, {n_chains} chains", reason="...", section="csgd-table1",
          numbers=["kl_pq_sgd_full_diabetes", "kl_pq_sgd_diabetes"], profile=profile)

Each file maps a quantity's name to ``{"value", "paper", "label", "description", "unit", "profile"}`` under
``"results"`` and a claim's id to its row under ``"claims"``. Writes are atomic read-modify-write, so a chapter can
record as it goes and an interrupted run keeps what it recorded. Every argument is checked before anything is
written: a bad status, an empty field or an unknown paper raises ``ValueError`` naming the value and what is allowed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sgdbayes.paths import atomic_write_bytes, results_dir

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
#: MyST target labels as this book writes them: ``(fp-boolean)=`` before a heading.
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")

#: The scorecard's papers: bib key in ``references.bib`` → short name shown in the report.
PAPERS: dict[str, str] = {
    "mingard2021": "Mingard, Valle-Pérez, Skalse & Louis (2021)",
    "chaudhari2018": "Chaudhari & Soatto (2018)",
    "mandt2017": "Mandt, Hoffman & Blei (2017)",
}

#: A claim's status, best first. "partly": some of the claim's parts hold, or it holds at a weaker criterion.
STATUSES: tuple[str, ...] = ("reproduced", "partly", "not reproduced", "not run")


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
    if not isinstance(chapter, str) or not _NAME.match(chapter):
        raise ValueError(f"chapter name {chapter!r} may only contain letters, digits, '_', '-', '.'")
    return results_dir() / f"{chapter}.json"


def load(chapter: str) -> dict[str, Any]:
    path = results_path(chapter)
    if not path.exists():
        return {"chapter": chapter, "results": {}, "claims": {}}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"results file {path} is not valid JSON ({err}); delete it and rerun the chapter") from None
    data.setdefault("results", {})
    data.setdefault("claims", {})
    return data


def _save(chapter: str, data: dict[str, Any], profile: str | None) -> None:
    data["chapter"] = chapter
    if profile is not None:
        data["profile"] = profile
    atomic_write_bytes(results_path(chapter), json.dumps(data, indent=2, sort_keys=False).encode())


def _text(field: str, value: Any, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, got {type(value).__name__} ({value!r})")
    if not allow_empty and not value.strip():
        raise ValueError(f"{field} must not be empty")
    return value.strip()


_FORMATTED_NAN = re.compile(r"(?<![A-Za-z])[+-]?nan(?![A-Za-z])")


def not_available(text: str) -> str:
    """``text`` with every number that formatted as NaN (``nan``, ``+nan``, ``nan%`` from an f-string) written
    ``n/a``: a statistic that this run could not compute (e.g. a correlation over fewer than three functions on the
    smoke profile), said as such in the scorecard rather than as a float's repr."""
    return _FORMATTED_NAN.sub("n/a", text)


def record(chapter: str, name: str, value: Any, *, paper: Any = None, label: str = "", description: str = "",
           unit: str = "", profile: str | None = None) -> None:
    """Store one headline number of ``chapter`` (beside the paper's value, where the paper gives one).

    ``label`` is the human-readable name shown in tables ("top-1 mass", "KL(posterior ‖ stationary)"); without one
    the report shows ``name``. ``description`` says what exactly was measured (set-up, estimator, error).
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"result name {name!r} may only contain letters, digits, '_', '-', '.'")
    label = _text("label", label, allow_empty=True)
    description = _text("description", description, allow_empty=True)
    unit = _text("unit", unit, allow_empty=True)
    data = load(chapter)
    data["results"][name] = {
        "value": _plain(value), "paper": _plain(paper), "label": label, "description": description, "unit": unit,
        "profile": profile if profile is not None else data.get("profile"),
    }
    _save(chapter, data, profile)


def claim(chapter: str, claim_id: str, *, paper: str, item: str, claim: str, status: str, paper_scale: str,
          scale: str, reason: str, section: str, numbers: Iterable[str] = (), profile: str | None = None) -> None:
    """Declare one row of the reproduction scorecard for ``paper``.

    ``claim_id`` names the row (the report matches it against its list of the paper's expected claims,
    ``sgdbayes.report.EXPECTED``); ``item`` is where the paper makes the claim ("Fig. 2", "Table 1", "§7.3",
    "Claim"); ``claim`` the claim in one sentence; ``status`` one of :data:`STATUSES`; ``paper_scale`` / ``scale``
    the paper's and this build's scale with actual numbers; ``reason`` one sentence on why the status is what it is;
    ``section`` the MyST label of the chapter section that shows it; ``numbers`` names already recorded with
    :func:`record` in this chapter, shown beneath the row (the paper's value beside this build's).
    """
    if not isinstance(claim_id, str) or not _NAME.match(claim_id):
        raise ValueError(f"claim id {claim_id!r} may only contain letters, digits, '_', '-', '.'")
    if paper not in PAPERS:
        raise ValueError(f"paper {paper!r} is not a scorecard paper; allowed bib keys: {', '.join(PAPERS)}")
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not allowed; use one of: {', '.join(repr(s) for s in STATUSES)}")
    fields = {"item": item, "claim": claim, "paper_scale": paper_scale, "scale": scale, "reason": reason}
    fields = {k: not_available(_text(k, v)) for k, v in fields.items()}
    section = _text("section", section)
    if not _LABEL.match(section):
        raise ValueError(f"section {section!r} is not a MyST label (letters, digits, '-', '_'; e.g. 'fp-boolean'): "
                         "put `(label)=` on the line before the section's heading and pass that label")
    if isinstance(numbers, str):
        raise TypeError(f"numbers must be a list of recorded names, not the string {numbers!r}")
    numbers = list(numbers)
    data = load(chapter)
    missing = [n for n in numbers if n not in data["results"]]
    if missing:
        known = ", ".join(sorted(data["results"])) or "none yet"
        raise ValueError(f"claim {claim_id!r} lists numbers not recorded in chapter {chapter!r}: {missing}; record "
                         f"them with results.record first (recorded: {known})")
    data["claims"][claim_id] = {
        "paper": paper, **fields, "status": status, "section": section, "numbers": numbers,
        "profile": profile if profile is not None else data.get("profile"),
    }
    _save(chapter, data, profile)


def verdict(checks: Mapping[str, bool]) -> str:
    """A status from named pass/fail checks of a claim's parts: all hold → "reproduced", none → "not reproduced",
    some → "partly". Use it so a status follows the numbers of the run instead of being typed."""
    if not checks:
        raise ValueError("verdict needs at least one check")
    bad = {k: v for k, v in checks.items() if not isinstance(v, (bool, np.bool_))}
    if bad:
        raise TypeError(f"checks must be booleans, got {bad}")
    n_ok = sum(bool(v) for v in checks.values())
    return "reproduced" if n_ok == len(checks) else ("not reproduced" if n_ok == 0 else "partly")


def within(value: float, target: float, *, rel: float | None = None, abs: float | None = None,
           se: float | None = None, k: float = 2.0) -> bool:
    """Whether ``value`` agrees with ``target``: within ``k`` standard errors ``se``, or a relative / absolute
    tolerance (any criterion given suffices). A non-finite value never agrees."""
    if rel is None and abs is None and se is None:
        raise ValueError("within needs at least one of rel=, abs=, se=")
    value, target = float(value), float(target)
    if not (math.isfinite(value) and math.isfinite(target)):
        return False
    diff = math.fabs(value - target)
    ok = False
    if rel is not None:
        ok |= diff <= rel * math.fabs(target)
    if abs is not None:
        ok |= diff <= abs
    if se is not None:
        ok |= diff <= k * float(se)
    return ok


def clear(chapter: str) -> None:
    """Forget a chapter's previous numbers and claims (a chapter calls this at its start so stale ones do not
    linger)."""
    path = results_path(chapter)
    if path.exists():
        path.unlink()


def _read_all(directory: Path | None) -> list[tuple[Path, dict[str, Any] | None]]:
    directory = Path(directory) if directory is not None else results_dir()
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text())))
        except json.JSONDecodeError:
            out.append((path, None))
    return out


def load_all(directory: Path | None = None) -> list[dict[str, Any]]:
    """One row per recorded quantity over every ``*.json`` in the results directory (sorted by chapter)."""
    rows: list[dict[str, Any]] = []
    for path, data in _read_all(directory):
        if data is None:
            rows.append({"chapter": path.stem, "quantity": "(unreadable results file)", "value": None,
                         "paper": None, "label": "", "description": str(path), "unit": "", "profile": None})
            continue
        for qname, entry in data.get("results", {}).items():
            rows.append({"chapter": data.get("chapter", path.stem), "quantity": qname, **{
                k: entry.get(k) for k in ("value", "paper", "description", "unit")},
                "label": entry.get("label") or "",
                "profile": entry.get("profile") or data.get("profile")})
    return rows


def load_claims(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every declared scorecard row over every ``*.json`` in the results directory, with its chapter and id."""
    rows: list[dict[str, Any]] = []
    for path, data in _read_all(directory):
        if data is None:
            continue
        for cid, entry in data.get("claims", {}).items():
            rows.append({"chapter": data.get("chapter", path.stem), "claim_id": cid, **entry})
    return rows
