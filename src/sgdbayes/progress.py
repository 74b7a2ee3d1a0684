"""Progress bars with a rate and an ETA that reach a person and stay out of the rendered book.

``bar(iterable=None, *, total=None, desc="", unit="it")`` returns a ``tqdm`` whose destination depends on where the
code runs, decided by the environment variable ``SGDBAYES_PROGRESS``:

- ``stderr`` (set by ``sgdbayes run`` / ``make book`` for the kernels papermill starts): the bar is written to the
  process's *original* standard error — the terminal of the command that started the kernel. Inside a Jupyter kernel
  ``sys.stderr`` is ipykernel's stream to the notebook, and ipykernel ≥ 6 also redirects file descriptor 2 into a
  pipe that it forwards to the notebook, so neither ``sys.stderr`` nor ``sys.__stderr__`` reaches the terminal; but
  the stream's ``fileno()`` is the duplicate of the original descriptor that ipykernel keeps for exactly this (the
  kernel inherits it from the command). Writing there bypasses the notebook: the rendered book never sees the bar.
- ``off`` (or ``0``): no bar.
- unset / ``auto``: in a Jupyter kernel, ``tqdm.auto`` (a widget in a live notebook); in a terminal (stderr is a
  TTY), plain ``tqdm``; otherwise (headless: a pipe, a log file, CI) no bar.

The bar refreshes at most every ``mininterval`` seconds (0.5 by default, 2 s when not writing to a TTY), so it costs
nothing measurable next to the work it reports.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm import tqdm as _tqdm_std

__all__ = ["bar", "mode", "ENV_VAR"]

ENV_VAR = "SGDBAYES_PROGRESS"
_terminal = None


def _in_kernel() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:  # noqa: BLE001 - any failure means "not a kernel"
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def mode() -> str:
    """Where bars go now: ``"stderr"`` (the original standard error), ``"notebook"``, ``"terminal"`` or ``"off"``."""
    value = os.environ.get(ENV_VAR, "auto").strip().lower()
    if value in ("off", "0", "false", "no", "none"):
        return "off"
    if value == "stderr":
        return "stderr"
    if value not in ("", "auto"):
        raise ValueError(f"{ENV_VAR}={value!r} is not one of: stderr, off, auto")
    if _in_kernel():
        return "notebook"
    try:
        return "terminal" if sys.stderr.isatty() else "off"
    except (AttributeError, ValueError):
        return "off"


def _original_stderr():
    """A text stream on the original standard error (kept open for the process; see the module docstring)."""
    global _terminal
    if _terminal is None:
        try:
            fd = sys.stderr.fileno()  # ipykernel: the duplicate of the original fd 2; elsewhere fd 2 itself
        except (AttributeError, OSError, ValueError):
            fd = 2
        _terminal = os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
    return _terminal


def bar(iterable=None, *, total: int | float | None = None, desc: str = "", unit: str = "it",
        disable: bool = False, **kwargs: Any):
    """A ``tqdm`` progress bar (rate and ETA) sent where :func:`mode` says; ``disable=True`` always silences it.
    Extra keyword arguments go to ``tqdm`` (``unit_scale`` defaults to True, ``leave`` to False)."""
    kwargs.setdefault("unit_scale", True)
    kwargs.setdefault("leave", False)
    where = "off" if disable else mode()
    if where == "off":
        return _tqdm_std(iterable, total=total, desc=desc, unit=unit, disable=True, **kwargs)
    if where == "notebook":
        from tqdm.auto import tqdm as auto_tqdm

        return auto_tqdm(iterable, total=total, desc=desc, unit=unit, disable=False, **kwargs)
    if where == "stderr":
        stream = _original_stderr()
        tty = stream.isatty()
        kwargs.setdefault("mininterval", 0.5 if tty else 2.0)
        kwargs.setdefault("dynamic_ncols", tty)
        if not tty:
            kwargs.setdefault("ncols", 100)
        return _tqdm_std(iterable, total=total, desc=desc, unit=unit, file=stream, disable=False, **kwargs)
    kwargs.setdefault("mininterval", 0.5)
    return _tqdm_std(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=False, **kwargs)
