"""Execute chapters with papermill and build the book with jupyter-book.

``book/<chapter>.py`` (jupytext) → papermill executes it with the resolved parameters into
``_build/partial/<chapter>.ipynb`` → on success the executed notebook is moved to ``book/<chapter>.ipynb`` (git-ignored),
which jupyter-book renders with execution off. A notebook whose inputs (source, parameters, library source, kernel)
are unchanged since its last successful run is not executed again.

Every wait on the kernel can be bounded: ``cell_timeout`` (``--cell-timeout`` or ``SGDBAYES_CELL_TIMEOUT``, seconds)
limits each cell; a cell that overruns is interrupted (so its partial notebook shows where it was) and reported as a
failure of that cell. papermill itself asks the kernel for ``kernel_info`` after the last cell with no limit at all
(nteract/papermill#711): the runner's papermill engine (``_register_engine``) bounds that wait too, so a kernel that
stops answering fails the run instead of hanging it.
"""

from __future__ import annotations

import functools
import logging
import math
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
CELL_TIMEOUT_ENV = "SGDBAYES_CELL_TIMEOUT"
KERNEL_START_TIMEOUT_S = 120  # kernel start-up and the kernel_info handshake (papermill's default is 60)
KERNEL_INFO_TIMEOUT_S = 120  # the kernel_info papermill requests after the last cell
LOST_REPLY_GRACE_S = 30.0  # after a cell's 'idle' on IOPub, how long its execute_reply may still take
_ENGINE = "sgdbayes-bounded"


class ChapterFailed(RuntimeError):
    """A chapter's notebook raised; carries the failing cell and the partial notebook's path."""

    def __init__(self, chapter: str, cell_index: int | None, error: str, partial: Path, outputs: str = ""):
        self.chapter, self.cell_index, self.error, self.partial = chapter, cell_index, error, partial
        where = f"cell {cell_index}" if cell_index is not None else "the kernel (start-up or shut-down)"
        tail = f"  last output of the failing cell:\n{outputs}\n" if outputs else ""
        super().__init__(
            f"chapter {chapter!r} failed at {where}: {error}\n{tail}"
            f"  partial output notebook: {partial}\n"
            f"  open it in Jupyter to see the traceback, or rerun: sgdbayes run {chapter} --profile <P>"
        )


class KernelUnresponsive(RuntimeError):
    """The kernel stopped answering (it did not reply to ``kernel_info`` in time)."""


MAX_CELL_TIMEOUT_S = 1e7  # about 4 months; nbclient's timers overflow on much larger values


def cell_timeout_seconds(value, what: str) -> float | None:
    """A cell timeout as given (``what`` names its source in errors): seconds in (0, 10^7], or None for no limit
    (0 or inf)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{what} is not a number; give seconds (> 0), or 0 or inf for no limit") from None
    if math.isnan(seconds) or seconds < 0:
        raise ConfigError(f"{what}: give seconds (> 0), or 0 or inf for no limit")
    if seconds == 0 or math.isinf(seconds):
        return None
    if seconds > MAX_CELL_TIMEOUT_S:
        raise ConfigError(f"{what}: at most {MAX_CELL_TIMEOUT_S:.0e} s; give 0 or inf for no limit")
    return seconds


def cell_timeout_from_env() -> float | None:
    """``SGDBAYES_CELL_TIMEOUT`` in seconds (unset, empty or 0: no limit)."""
    raw = os.environ.get(CELL_TIMEOUT_ENV, "").strip()
    return cell_timeout_seconds(raw, f"{CELL_TIMEOUT_ENV}={raw!r}") if raw else None


@functools.cache
def _register_engine() -> None:
    """Register (once) the papermill engine whose notebook client bounds every wait on the kernel.

    Built on first use: importing papermill costs ~1 s, which ``sgdbayes list`` need not pay."""
    import asyncio
    from queue import Empty

    import nbformat
    from nbclient.util import ensure_async, run_sync
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines, remove_args
    from papermill.log import logger

    class BoundedNotebookClient(PapermillNotebookClient):
        """papermill's client with every wait on the kernel bounded or recoverable:

        * the ``kernel_info`` papermill requests after the last cell (only to record ``language_info``) is bounded by
          ``KERNEL_INFO_TIMEOUT_S`` and raises :class:`KernelUnresponsive` instead of waiting forever;
        * a cell whose ``idle`` status has arrived on IOPub (the kernel finished it; every output is in) but whose
          ``execute_reply`` has not arrived ``LOST_REPLY_GRACE_S`` later is completed from its outputs, with a
          warning, instead of waiting forever for a reply the kernel lost;
        * a cell timeout adds a ``CellTimeoutError`` output naming the limit before the kernel is interrupted.
        """

        def execute(self, **kwargs):
            self.reset_execution_trackers()
            with self.setup_kernel(**kwargs):
                self.log.info(f"Executing notebook with kernel: {self.kernel_name}")
                self.papermill_execute_cells()
                self.nb.metadata["language_info"] = self._language_info()
                self.set_widgets_metadata()
            return self.nb

        async def _async_language_info(self) -> dict:
            msg_id = await ensure_async(self.kc.kernel_info())
            deadline = time.monotonic() + KERNEL_INFO_TIMEOUT_S
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=min(remaining, 1.0)))
                except Empty:
                    await self._async_check_alive()
                    continue
                if msg["parent_header"].get("msg_id") == msg_id:
                    return msg["content"]["language_info"]
            raise KernelUnresponsive(f"the kernel did not answer kernel_info within {KERNEL_INFO_TIMEOUT_S} s "
                                     "after the last cell")

        _language_info = run_sync(_async_language_info)

        async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive):
            reply = asyncio.ensure_future(super()._async_poll_for_reply(
                msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive))
            try:
                while not reply.done():
                    await asyncio.wait({reply}, timeout=1.0)
                    if reply.done() or not task_poll_output_msg.done():
                        continue
                    if task_poll_output_msg.cancelled() or task_poll_output_msg.exception() is not None:
                        continue  # nbclient handles (and raises) these itself
                    await asyncio.wait({reply}, timeout=LOST_REPLY_GRACE_S)
                    if reply.done():
                        break
                    task_poll_kernel_alive.cancel()
                    logging.getLogger(__name__).warning(
                                     "the kernel finished cell %s (idle on IOPub) but its execute_reply did not "
                                     "arrive within %s s; completing the cell from its outputs",
                                     cell.get("id", "?"), LOST_REPLY_GRACE_S)
                    cell.metadata.setdefault("sgdbayes", {})["lost_execute_reply"] = True
                    return _reply_from_outputs(msg_id, cell)
                return reply.result()
            finally:
                if not reply.done():
                    reply.cancel()

        async def _async_handle_timeout(self, timeout, cell=None):
            # an error output, so that papermill reports the timeout (not a bare CellExecutionError) and the
            # KeyboardInterrupt traceback that follows it shows where the cell was stuck
            reply = await super()._async_handle_timeout(timeout, cell)
            if cell is not None:
                cell.outputs.append(nbformat.v4.new_output(
                    "error", ename="CellTimeoutError", traceback=[],
                    evalue=f"the cell ran longer than the {timeout} s cell timeout ({CELL_TIMEOUT_ENV} / "
                           "--cell-timeout); the kernel was interrupted"))
            return reply

    def _reply_from_outputs(msg_id: str, cell) -> dict:
        """The execute_reply a finished cell would have had: an error if it shows an error output, else ok."""
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        content = {"status": "ok", "execution_count": None}
        if errors:
            content = {"status": "error", "execution_count": None, "ename": errors[-1].get("ename", ""),
                       "evalue": errors[-1].get("evalue", ""), "traceback": errors[-1].get("traceback", [])}
        return {"parent_header": {"msg_id": msg_id}, "header": {"msg_type": "execute_reply"}, "metadata": {},
                "content": content}

    class BoundedEngine(NBClientEngine):
        """papermill's nbclient engine (same arguments) running :class:`BoundedNotebookClient`."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            return BoundedNotebookClient(nb_man, timeout=execution_timeout, startup_timeout=start_timeout,
                                         kernel_name=kernel_name, log=logger, log_output=log_output,
                                         stdout_file=stdout_file, stderr_file=stderr_file, **kwargs).execute()

    papermill_engines.register(_ENGINE, BoundedEngine)


def _failing_cell_output(nb_path: Path, source: str, lines: int = 30) -> str:
    """The last ``lines`` lines of text the failing cell (found by its ``source``) printed: streams and
    tracebacks, ANSI colours removed. A diagnostic only: any problem reading the notebook gives ``""``."""
    import re

    import nbformat

    try:
        cells = [c for c in nbformat.read(nb_path, as_version=4).cells
                 if c.cell_type == "code" and c.source == source]
    except Exception:  # noqa: BLE001 - the failure itself is reported regardless
        return ""
    if not cells:
        return ""
    parts = []
    for out in cells[-1].get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append("\n".join(out.get("traceback", [])))
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(p.rstrip("\n") for p in parts))
    return "\n".join("    " + line for line in text.rstrip().splitlines()[-lines:])


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
            force: bool = False, progress: bool = True, env: dict[str, str] | None = None,
            cell_timeout: float | None = None) -> RunResult:
    """Execute one chapter; raise ``ChapterFailed`` on error (the partial notebook stays in ``_build/partial``).

    ``cell_timeout``: seconds any one cell may run (None: no limit); an overrunning cell is interrupted and reported.
    """
    if cell_timeout is not None and not cell_timeout > 0:
        raise ConfigError(f"cell_timeout={cell_timeout!r}: give seconds > 0, or None for no limit")

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

    # the kernel inherits this process's stderr: library progress bars (sgdbayes.progress) write there, so they
    # show in the terminal of `sgdbayes run` and never in the notebook's outputs
    kernel_env = {"SGDBAYES_ROOT": str(root), "TQDM_DISABLE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                  "SGDBAYES_PROGRESS": "stderr" if progress else "off", **(env or {})}
    saved = {k: os.environ.get(k) for k in kernel_env}
    os.environ.update(kernel_env)
    _register_engine()
    timeouts = {"start_timeout": KERNEL_START_TIMEOUT_S}
    if cell_timeout is not None:
        seconds = int(max(1, round(cell_timeout)))
        # nbclient then interrupts the kernel (the cell's output shows where it was) and fails the cell with this error
        timeouts.update(execution_timeout=seconds, interrupt_on_timeout=True, error_on_timeout={
            "ename": "CellTimeoutError", "evalue": f"over {seconds} s", "traceback": []})
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source_nb), str(partial), parameters=params, kernel_name=kernel, cwd=str(root / "book"),
            progress_bar=progress, log_output=False, report_mode=False, request_save_on_cell_execute=False,
            engine_name=_ENGINE, **timeouts,
        )
    except PapermillExecutionError as err:
        if out.exists():
            out.unlink()  # never render a stale result beside a failed run
        raise ChapterFailed(chapter.name, err.cell_index, f"{err.ename}: {err.evalue}", partial,
                            _failing_cell_output(partial, err.source)) from None
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
    """In the book, the reader sees the chapter's commented parameters cell once, open; papermill's injected cell
    (the values this run used) is folded beneath it, its first line saying what it is. A chapter whose parameters
    cell is tagged ``remove-cell`` has both removed."""
    remove = any("parameters" in c.metadata.get("tags", []) and "remove-cell" in c.metadata.get("tags", [])
                 for c in nb.cells)
    profile = (nb.metadata.get("papermill", {}).get("parameters", {}) or {}).get("profile")
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags:
            tags[:] = [t for t in tags if t not in ("hide-cell", "hide-input")]
        if "injected-parameters" in tags:
            if remove:
                tags.append("remove-cell")
            elif "hide-cell" not in tags:
                tags.append("hide-cell")
            cell.metadata.setdefault("mystnb", {}).update({
                "code_prompt_show": "Show the parameter values this build used",
                "code_prompt_hide": "Hide the parameter values this build used"})
            head = (f"# The values this build used (profile {profile!r}; injected by papermill over the defaults "
                    "above)" if profile else "# The values this build used (injected by papermill)")
            lines = cell.source.splitlines()
            if lines and lines[0].strip() == "# Parameters":
                lines = lines[1:]
            if not (lines and lines[0].startswith("# The values this build used")):
                cell.source = "\n".join([head, *lines])


def jupyter_book_build(root: Path, *, strict: bool = True) -> None:
    """``jupyter-book build . -W --keep-going`` from the project root (execution is off in _config.yml)."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else (shutil.which("jupyter-book") or "jupyter-book"), "build", str(root)]
    if strict:
        cmd += ["-W", "--keep-going"]
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}); see the warnings above")
