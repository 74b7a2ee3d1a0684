"""Execute chapters with papermill and build the book with jupyter-book.

``book/<chapter>.py`` (jupytext) → papermill executes it with the resolved parameters into
``_build/partial/<chapter>.ipynb`` → on success the executed notebook is moved to ``book/<chapter>.ipynb`` (git-ignored),
which jupyter-book renders with execution off. A notebook whose inputs (source, parameters, library source, kernel)
are unchanged since its last successful run is not executed again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sgdbayes.chapters import Chapter, ConfigError, execution_key

DEFAULT_KERNEL = "python3"
REPORT = "report"  # always executed last: it reads every chapter's results


class ChapterFailed(RuntimeError):
    """A chapter's notebook raised; carries the failing cell and the partial notebook's path."""

    def __init__(self, chapter: str, cell_index: int | None, error: str, partial: Path):
        self.chapter, self.cell_index, self.error, self.partial = chapter, cell_index, error, partial
        where = f"cell {cell_index}" if cell_index is not None else "start-up"
        super().__init__(
            f"chapter {chapter!r} failed at {where}: {error}\n"
            f"  partial output notebook: {partial}\n"
            f"  open it in Jupyter to see the traceback, or rerun: sgdbayes run {chapter} --profile <P>"
        )


@dataclass
class RunResult:
    chapter: str
    output: Path
    seconds: float
    skipped: bool


def check_kernel(kernel: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        available = ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "(none)"
        raise ConfigError(
            f"Jupyter kernel {kernel!r} not found (available: {available}). Fix: install ipykernel in this "
            f"environment ('{sys.executable} -m pip install ipykernel') or pass --kernel with one of the available "
            "kernels."
        ) from None


def _partial_dir(root: Path) -> Path:
    path = root / "_build" / "partial"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create {path} ({err.strerror}); make the project directory writable") from None
    return path


def output_path(root: Path, chapter: str) -> Path:
    return root / "book" / f"{chapter}.ipynb"


def is_up_to_date(root: Path, chapter: Chapter, key: str) -> bool:
    import nbformat

    out = output_path(root, chapter.name)
    if not out.is_file():
        return False
    try:
        nb = nbformat.read(out, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable notebook is simply re-executed
        return False
    return nb.metadata.get("sgdbayes", {}).get("key") == key


def execute(root: Path, chapter: Chapter, params: dict[str, Any], *, profile: str, kernel: str = DEFAULT_KERNEL,
            force: bool = False, progress: bool = True, env: dict[str, str] | None = None) -> RunResult:
    """Execute one chapter; raise ``ChapterFailed`` on error (the partial notebook stays in ``_build/partial``)."""
    import logging

    import jupytext
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    key = execution_key(chapter, params, kernel)
    out = output_path(root, chapter.name)
    if not force and chapter.name != REPORT and is_up_to_date(root, chapter, key):
        return RunResult(chapter.name, out, 0.0, skipped=True)

    check_kernel(kernel)
    # papermill's own parameter inference only warns, and misreads some comments; ours validated them already
    logging.getLogger("papermill").setLevel(logging.ERROR)
    partial_dir = _partial_dir(root)
    source_nb = partial_dir / f"{chapter.name}.source.ipynb"
    partial = partial_dir / f"{chapter.name}.ipynb"
    nb = jupytext.read(chapter.source, fmt="py:percent")
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    nbformat.write(nb, source_nb)

    saved = {k: os.environ.get(k) for k in ("SGDBAYES_ROOT", "TQDM_DISABLE", "PYDEVD_DISABLE_FILE_VALIDATION",
                                            *(env or {}))}
    os.environ.update({"SGDBAYES_ROOT": str(root), "TQDM_DISABLE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                       **(env or {})})
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source_nb), str(partial), parameters=params, kernel_name=kernel, cwd=str(root / "book"),
            progress_bar=progress, log_output=False, report_mode=False, request_save_on_cell_execute=False,
        )
    except PapermillExecutionError as err:
        if out.exists():
            out.unlink()  # never render a stale result beside a failed run
        raise ChapterFailed(chapter.name, err.cell_index, f"{err.ename}: {err.evalue}", partial) from None
    except Exception as err:  # kernel death, timeouts, ...
        if out.exists():
            out.unlink()
        raise ChapterFailed(chapter.name, None, f"{type(err).__name__}: {err}", partial) from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        source_nb.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0

    executed = nbformat.read(partial, as_version=4)
    _tag_parameter_cells(executed)
    executed.metadata["sgdbayes"] = {"key": key, "profile": profile, "parameters": params,
                                     "seconds": round(seconds, 1)}
    tmp = out.with_name(f".{out.name}.tmp")
    nbformat.write(executed, tmp)
    os.replace(tmp, out)
    partial.unlink(missing_ok=True)
    return RunResult(chapter.name, out, seconds, skipped=False)


def _tag_parameter_cells(nb) -> None:
    """In the book, fold the defaults cell away and show the values this run used (papermill's injected cell);
    a chapter whose parameters cell is tagged ``remove-cell`` has both removed."""
    remove = any("parameters" in c.metadata.get("tags", []) and "remove-cell" in c.metadata.get("tags", [])
                 for c in nb.cells)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("hide-cell")
        if "injected-parameters" in tags and remove:
            tags.append("remove-cell")


def jupyter_book_build(root: Path, *, strict: bool = True) -> None:
    """``jupyter-book build . -W --keep-going`` from the project root (execution is off in _config.yml)."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else (shutil.which("jupyter-book") or "jupyter-book"), "build", str(root)]
    if strict:
        cmd += ["-W", "--keep-going"]
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}); see the warnings above")
