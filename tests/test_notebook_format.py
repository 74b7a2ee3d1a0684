"""Code on the page: every chapter source ``book/*.py`` is ``ruff format --line-length 88`` clean, and no line of a
code cell is longer than 88 columns (the formatter leaves long strings alone; the rendered page shows 88 columns).

One test per file, so ``pytest tests/test_notebook_format.py -k constant_sgd`` checks one chapter. A failure prints
the diff and the one-line fix.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "book").glob("*.py"))
LINE_LENGTH = 88


def _ruff() -> str:
    exe = Path(sys.executable).with_name("ruff")
    found = str(exe) if exe.exists() else shutil.which("ruff")
    if not found:
        pytest.fail("ruff is not installed: .venv/bin/pip install -e '.[dev]' (it is a dev dependency)")
    return found


def _fix(path: Path) -> str:
    return f".venv/bin/ruff format --line-length {LINE_LENGTH} {path.relative_to(ROOT)}"


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_chapter_source_is_ruff_formatted(path):
    proc = subprocess.run([_ruff(), "format", "--check", "--diff", "--line-length", str(LINE_LENGTH),
                           "--no-cache", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, (f"{path.name} is not ruff-formatted; fix with:  {_fix(path)}\n"
                                  f"{proc.stdout[-3000:]}{proc.stderr[-1000:]}")


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_code_cells_fit_88_columns(path):
    nb = jupytext.read(path)
    long = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for j, line in enumerate(cell.source.splitlines(), 1):
            if len(line) > LINE_LENGTH:
                long.append(f"cell {i}, line {j} ({len(line)} columns): {line[:60]}…")
    assert not long, (f"{path.name}: code lines over {LINE_LENGTH} columns (split long strings or expressions, "
                      f"then run  {_fix(path)}):\n" + "\n".join(long[:20])
                      + (f"\n… and {len(long) - 20} more" if len(long) > 20 else ""))


def test_there_are_chapter_sources():
    assert len(SOURCES) >= 5, [p.name for p in SOURCES]
