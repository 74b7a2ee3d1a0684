"""Where the project's outputs go: ``_build/`` at the project root.

The root is ``SGDBAYES_ROOT`` when set (the CLI sets it for every notebook it runs), else the nearest ancestor of the
working directory holding ``_toc.yml``, else the working directory. Notebooks opened by hand from ``book/`` therefore
write to the same ``_build/`` as ``make book``.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path


def project_root() -> Path:
    env = os.environ.get("SGDBAYES_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for parent in (here, *here.parents):
        if (parent / "_toc.yml").is_file():
            return parent
    return here


def build_dir() -> Path:
    return project_root() / "_build"


def results_dir() -> Path:
    env = os.environ.get("SGDBAYES_RESULTS_DIR")
    return Path(env).resolve() if env else build_dir() / "results"


def cache_dir() -> Path:
    env = os.environ.get("SGDBAYES_CACHE_DIR")
    return Path(env).resolve() if env else build_dir() / "cache"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``, so a reader never
    sees a half-written file and an interrupted write leaves the old file (or none) in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_host()}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _host() -> str:
    return "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:64] or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


ORPHAN_AGE_S = 24 * 3600  # a temporary file of another host is removed only when it is this old


def remove_orphan_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write_bytes` left in ``directory`` when its process was killed
    mid-write: those of this host whose process is gone, and those of other hosts (a shared directory on a cluster)
    older than a day. Returns what was removed. Readers never look at temporary files, so this is housekeeping."""
    removed = []
    try:
        entries = list(Path(directory).glob(".*.tmp"))
    except OSError:
        return removed
    host, now = _host(), time.time()
    for tmp in entries:
        parts = tmp.name[1:-len(".tmp")].rsplit(".", 2)
        try:
            owner, pid = (parts[1], int(parts[2])) if len(parts) == 3 else ("", int(parts[-1]))
        except ValueError:
            continue
        try:
            stale = (owner in ("", host) and not _pid_alive(pid)) or now - tmp.stat().st_mtime > ORPHAN_AGE_S
            if stale:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


def check_writable_dir(directory: Path) -> str | None:
    """None when ``directory`` exists (or can be created) and a file can be written in it; else the reason."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe.{_host()}.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        reason = err.strerror or str(err)
        if err.errno == errno.EROFS:
            reason = "read-only file system"
        return f"{reason}: {err.filename or directory}"
    return None
