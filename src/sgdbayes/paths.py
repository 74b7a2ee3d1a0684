"""Where the project's outputs go: ``_build/`` at the project root.

The root is ``SGDBAYES_ROOT`` when set (the CLI sets it for every notebook it runs), else the nearest ancestor of the
working directory holding ``_toc.yml``, else the working directory. Notebooks opened by hand from ``book/`` therefore
write to the same ``_build/`` as ``make book``.
"""

from __future__ import annotations

import os
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
