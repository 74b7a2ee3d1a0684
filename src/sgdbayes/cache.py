"""Content-addressed result cache.

An expensive result is stored under ``<cache_dir>/<name>/<key>.pt`` where ``key`` is the SHA-256 of its name, its
parameters (canonical JSON; arrays and tensors by dtype, shape and bytes) and the library version. Files are written
atomically; on load the stored key is checked, and a corrupt, partial or mismatched file is recomputed with a warning
— never a crash, never a silently wrong value.

    >>> from sgdbayes.cache import cached
    >>> value = cached("prior_counts", {"n": 7, "samples": 10**7, "seed": 0}, lambda: expensive())   # doctest: +SKIP

``SGDBAYES_CACHE=off`` disables reading and writing (every call computes); ``SGDBAYES_CACHE_DIR`` moves the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from sgdbayes.paths import atomic_write_bytes, cache_dir

T = TypeVar("T")
_FORMAT = 1


class CacheError(RuntimeError):
    """The cache cannot be used (for instance its directory is not writable)."""


class CacheWarning(UserWarning):
    """A cached file was unreadable or did not match its key and was recomputed."""


def _canonical(obj: Any) -> Any:
    """A JSON-serialisable, order-independent form of ``obj`` for hashing."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isnan(x) or math.isinf(x):
            return {"__float__": repr(x)}
        return {"__float__": x.hex()}  # exact: 0.1 and 0.1000000001 hash differently
    if isinstance(obj, torch.Tensor):
        arr = obj.detach().cpu().contiguous()
        return {"__tensor__": str(arr.dtype), "shape": list(arr.shape),
                "sha256": hashlib.sha256(arr.view(torch.uint8).numpy().tobytes() if arr.numel() else b"").hexdigest()}
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {"__ndarray__": str(arr.dtype), "shape": list(arr.shape),
                "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}
    if isinstance(obj, Mapping):
        return {"__dict__": sorted((str(k), _canonical(v)) for k, v in obj.items())}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return {"__set__": sorted(json.dumps(_canonical(v), sort_keys=True) for v in obj)}
    if isinstance(obj, torch.device):
        return {"__device__": obj.type}
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj)}
    if isinstance(obj, Path):
        return {"__path__": str(obj)}
    raise TypeError(
        f"cannot hash a parameter of type {type(obj).__name__} for the result cache; "
        "use numbers, strings, lists, dicts, numpy arrays or tensors"
    )


def cache_key(name: str, params: Mapping[str, Any], version: str | None = None) -> str:
    """SHA-256 hex digest of (name, params, library version)."""
    if version is None:
        from sgdbayes import __version__ as version
    payload = json.dumps({"name": name, "params": _canonical(params), "version": version, "format": _FORMAT},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _enabled() -> bool:
    return os.environ.get("SGDBAYES_CACHE", "on").strip().lower() not in {"0", "off", "false", "no"}


@dataclass
class ResultCache:
    """A directory of cached results. ``hits`` and ``misses`` count what this instance did (for tests and logs)."""

    root: Path | None = None
    enabled: bool = field(default_factory=_enabled)
    hits: int = 0
    misses: int = 0

    def __post_init__(self) -> None:
        self.root = Path(self.root) if self.root is not None else cache_dir()

    def path(self, name: str, key: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.root / safe / f"{key}.pt"

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise CacheError(
                f"the result cache directory {self.root} is not writable ({err.strerror or err}). "
                "Fix: set SGDBAYES_CACHE_DIR to a writable directory, or SGDBAYES_CACHE=off to compute without caching."
            ) from None

    def load(self, name: str, params: Mapping[str, Any]) -> tuple[bool, Any]:
        """``(True, value)`` on a valid hit, ``(False, None)`` otherwise (warning if a file was there but bad)."""
        if not self.enabled:
            return False, None
        key = cache_key(name, params)
        path = self.path(name, key)
        if not path.exists():
            return False, None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=False)
            if not isinstance(blob, dict) or blob.get("key") != key or "value" not in blob:
                raise ValueError("stored key does not match its parameters")
        except Exception as err:  # noqa: BLE001 - any unreadable file is recomputed, never trusted
            warnings.warn(f"cached result {path} is unreadable or corrupt ({err}); recomputing it",
                          CacheWarning, stacklevel=3)
            return False, None
        return True, blob["value"]

    def store(self, name: str, params: Mapping[str, Any], value: Any) -> Path | None:
        if not self.enabled:
            return None
        self._check_writable()
        key = cache_key(name, params)
        path = self.path(name, key)
        buf = io.BytesIO()
        torch.save({"key": key, "name": name, "params": _canonical(params), "value": value}, buf)
        atomic_write_bytes(path, buf.getvalue())
        return path

    def get_or_compute(self, name: str, params: Mapping[str, Any], compute: Callable[[], T]) -> T:
        hit, value = self.load(name, params)
        if hit:
            self.hits += 1
            return value
        if self.enabled:
            self._check_writable()  # fail before hours of work, not after
        value = compute()
        self.misses += 1
        self.store(name, params, value)
        return value


_default: ResultCache | None = None


def default_cache() -> ResultCache:
    """The process-wide cache (re-created when ``SGDBAYES_CACHE_DIR`` or ``SGDBAYES_CACHE`` changed)."""
    global _default
    if _default is None or _default.root != cache_dir() or _default.enabled != _enabled():
        _default = ResultCache()
    return _default


def cached(name: str, params: Mapping[str, Any], compute: Callable[[], T], *, cache: ResultCache | None = None) -> T:
    """Return the cached result for ``(name, params)`` or compute, store and return it."""
    return (cache or default_cache()).get_or_compute(name, params, compute)
