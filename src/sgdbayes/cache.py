"""A result cache whose keys cannot go stale and whose files cannot run code.

Declare what you cache; never write its key by hand::

    from sgdbayes.cache import cached, memoize

    table = cached(experiments.constant_sgd.table1, dataset="wine", n_chains=2000, seed=0)   # == table1(...)

    @memoize                       # every call of table1 is cached
    def table1(dataset: str, *, n_chains: int, seed: int) -> Table1: ...

The key of a call is the SHA-256 of

- the function's identity (module and qualified name) — it must be a module-level function, so that its code is
  known: lambdas, closures and functions defined in a notebook are refused (define them in the library);
- **all** its arguments, bound to its signature with the defaults filled in (canonical JSON; arrays and tensors by
  dtype, shape and a hash of their bytes; floats exactly);
- the code: :func:`library_fingerprint`, a hash of every file of the installed ``sgdbayes`` package (computed once
  per process), plus the source file of the function's own module when that lies outside the package; and the
  versions of torch, numpy, scipy and pandas.

So any edit to the library — or an upgrade of those packages — gives new keys: the next build recomputes (a cold
build), and old entries are simply never read again. There is deliberately no way to keep them across a code change.

Values are stored with :mod:`sgdbayes.store` (no pickle; a SHA-256 of the payload is checked before anything is
decoded) under ``<cache_dir>/<module.function>/<key>.sgdb``, written atomically. A file that is corrupt, truncated,
tampered with or written for another key is reported with a :class:`CacheWarning` and recomputed; it is never
returned. ``SGDBAYES_CACHE=off`` disables reading and writing; ``SGDBAYES_CACHE_DIR`` moves the cache.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import importlib
import inspect
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version as _dist_version
from pathlib import Path, PurePath
from typing import Any, TypeVar

import numpy as np
import torch

from sgdbayes import store
from sgdbayes.paths import atomic_write_bytes, cache_dir, check_writable_dir, remove_orphan_temporaries

T = TypeVar("T")
_KEY_FORMAT = 2
SUFFIX = ".sgdb"
_DEPENDENCIES = ("torch", "numpy", "scipy", "pandas")

__all__ = ["CacheError", "CacheWarning", "CacheStoreWarning", "ResultCache", "cached", "memoize", "call_key",
           "canonical", "library_fingerprint", "function_identity", "default_cache"]


class CacheError(RuntimeError):
    """The cache cannot be used (for instance its directory is not writable)."""


class CacheWarning(UserWarning):
    """A cached file was unreadable, corrupt or written for another key, and was recomputed."""


class CacheStoreWarning(UserWarning):
    """A computed value could not be stored (its type is not storable); it is returned uncached."""


# --------------------------------------------------------------------------------------------------------------------
# the code's fingerprint


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def fingerprint_files(files: Mapping[str, bytes]) -> str:
    """SHA-256 over ``{relative path: content}`` (sorted by path; each path and content length-prefixed)."""
    h = hashlib.sha256()
    for rel in sorted(files):
        name, data = rel.encode(), files[rel]
        h.update(len(name).to_bytes(8, "little") + name + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def package_files(root: Path | None = None) -> dict[str, bytes]:
    """Every file of the package that can change a result: sources and shipped data (no bytecode caches)."""
    root = Path(root) if root is not None else _package_dir()
    files = {}
    for path in root.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}:
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


@functools.cache
def library_fingerprint() -> str:
    """Fingerprint of the installed ``sgdbayes`` package (every source and data file) and of the versions of the
    numerical packages it rests on. Computed once per process: a kernel or CLI started after an edit sees it."""
    versions = {}
    for dist in _DEPENDENCIES:
        try:
            versions[dist] = _dist_version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return hashlib.sha256((fingerprint_files(package_files()) + json.dumps(versions, sort_keys=True)).encode()
                          ).hexdigest()


@functools.cache
def _module_source_hash(module_name: str) -> str:
    """Hash of the source file of a module outside the package (its code is then part of the key)."""
    module = importlib.import_module(module_name)
    path = getattr(module, "__file__", None)
    if not path or not Path(path).is_file():
        raise TypeError(f"cannot cache a function of module {module_name!r}: its source file is unknown")
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------------------------
# keys


def _unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    while hasattr(fn, "__sgdbayes_memoized__"):
        fn = fn.__wrapped__
    return fn


def function_identity(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a module-level function, checked to be importable under that name.

    Raises ``TypeError`` for lambdas, closures, methods of local classes, functions defined in ``__main__``
    (a notebook or script): their code is not part of any fingerprint, so a cache keyed on them could go stale."""
    fn = _unwrap(fn)
    if not callable(fn):
        raise TypeError(f"cannot cache {fn!r}: not callable")
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    hint = ("define it as a module-level function in the sgdbayes library (so that its code is part of the "
            "cache key) and pass every input as an argument")
    if not module or not qualname or "<lambda>" in qualname or "<locals>" in qualname:
        raise TypeError(f"cannot cache {qualname or fn!r}: lambdas and nested functions are not allowed; {hint}")
    if module == "__main__":
        raise TypeError(f"cannot cache {qualname!r} defined in a notebook or script (__main__); {hint}")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if obj is None or _unwrap(obj) is not fn:
        raise TypeError(f"cannot cache {module}.{qualname}: it is not reachable under that name; {hint}")
    return f"{module}:{qualname}"


def canonical(obj: Any, where: str = "argument") -> Any:
    """A JSON-serialisable form of ``obj`` that is equal exactly when the values are equal (dict order ignored,
    floats exact, arrays by dtype, shape and a hash of their bytes)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return {"__enum__": f"{type(obj).__module__}:{type(obj).__qualname__}.{obj.name}"}
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return {"__float__": repr(x) if math.isnan(x) or math.isinf(x) else x.hex()}
    if isinstance(obj, complex):
        return {"__complex__": [canonical(obj.real), canonical(obj.imag)]}
    if isinstance(obj, torch.Tensor):
        arr = obj.detach().cpu().contiguous()
        data = arr.view(torch.uint8).numpy().tobytes() if arr.numel() else b""
        return {"__tensor__": str(arr.dtype), "shape": list(arr.shape), "sha256": hashlib.sha256(data).hexdigest()}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return {"__objects__": [canonical(v, where) for v in obj.ravel().tolist()], "shape": list(obj.shape)}
        arr = np.ascontiguousarray(obj)
        return {"__ndarray__": arr.dtype.str, "shape": list(arr.shape),
                "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}
    if isinstance(obj, Mapping):
        items = [(json.dumps(canonical(k, where), sort_keys=True), canonical(v, f"{where}[{k!r}]"))
                 for k, v in obj.items()]
        return {"__dict__": sorted(items, key=lambda kv: kv[0])}
    if isinstance(obj, (list, tuple)):
        return [canonical(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        return {"__set__": sorted(json.dumps(canonical(v, where), sort_keys=True) for v in obj)}
    if isinstance(obj, torch.device):
        return {"__device__": str(obj)}
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj)}
    if isinstance(obj, PurePath):
        return {"__path__": str(obj)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__dataclass__": f"{type(obj).__module__}:{type(obj).__qualname__}",
                "fields": {f.name: canonical(getattr(obj, f.name), f"{where}.{f.name}")
                           for f in dataclasses.fields(obj)}}
    if hasattr(obj, "__store_state__"):
        return {"__state__": f"{type(obj).__module__}:{type(obj).__qualname__}",
                "state": canonical(obj.__store_state__(), where)}
    if inspect.isfunction(obj) or inspect.isclass(obj):
        return {"__function__": function_identity(obj)}
    if isinstance(obj, torch.Generator):
        raise TypeError(f"cannot key {where} on a torch.Generator (its state is hidden): pass an integer seed")
    raise TypeError(
        f"cannot key {where} of type {type(obj).__name__} for the result cache; use numbers, strings, lists, "
        "dicts, numpy arrays, tensors, dataclasses or library functions"
    )


def _code_of(identity: str) -> str:
    module = identity.split(":", 1)[0]
    if module == "sgdbayes" or module.startswith("sgdbayes."):
        return library_fingerprint()
    return library_fingerprint() + _module_source_hash(module)


def call_key(fn: Callable[..., Any], args: tuple = (), kwargs: Mapping[str, Any] | None = None) -> str:
    """The cache key of ``fn(*args, **kwargs)`` (see the module docstring)."""
    fn = _unwrap(fn)
    identity = function_identity(fn)
    try:
        bound = inspect.signature(fn).bind(*args, **(kwargs or {}))
    except TypeError as err:
        raise TypeError(f"{identity}: {err}") from None
    bound.apply_defaults()
    arguments = {name: canonical(value, f"argument {name!r} of {identity}")
                 for name, value in bound.arguments.items()}
    payload = json.dumps({"format": _KEY_FORMAT, "function": identity, "arguments": arguments,
                          "code": _code_of(identity)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _enabled() -> bool:
    return os.environ.get("SGDBAYES_CACHE", "on").strip().lower() not in {"0", "off", "false", "no"}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]


# --------------------------------------------------------------------------------------------------------------------
# the cache


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
        return self.root / _safe(name) / f"{key}{SUFFIX}"

    def check_writable(self) -> None:
        """Raise :class:`CacheError` (with a fix) unless the cache directory can be created and written."""
        problem = check_writable_dir(self.root)
        if problem:
            raise CacheError(
                f"the result cache directory {self.root} is not writable ({problem}). Fix: set SGDBAYES_CACHE_DIR "
                "to a writable directory, or SGDBAYES_CACHE=off to compute without caching."
            )

    def load(self, name: str, key: str) -> tuple[bool, Any]:
        """``(True, value)`` for an intact file written for ``key``; ``(False, None)`` otherwise, with a
        :class:`CacheWarning` when a file was there but could not be trusted."""
        if not self.enabled:
            return False, None
        path = self.path(name, key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return False, None
        except OSError as err:
            warnings.warn(f"cached result {path} cannot be read ({err}); recomputing it", CacheWarning, stacklevel=3)
            return False, None
        try:
            return True, store.loads(data, key=key)
        except store.StoreError as err:
            warnings.warn(f"cached result {path} is corrupt or not the one asked for ({err}); recomputing it",
                          CacheWarning, stacklevel=3)
            return False, None

    def store(self, name: str, key: str, value: Any) -> Path | None:
        """Write ``value`` under ``key``; an unstorable value gives a :class:`CacheStoreWarning` and None."""
        if not self.enabled:
            return None
        try:
            data = store.dumps(value, key=key, name=name)
        except TypeError as err:
            warnings.warn(f"result of {name} not cached: {err}", CacheStoreWarning, stacklevel=3)
            return None
        path = self.path(name, key)
        remove_orphan_temporaries(path.parent)
        atomic_write_bytes(path, data)
        return path

    def get_or_compute(self, name: str, key: str, compute: Callable[[], T]) -> T:
        hit, value = self.load(name, key)
        if hit:
            self.hits += 1
            return value
        if self.enabled:
            self.check_writable()  # fail before hours of work, not after
        value = compute()
        self.misses += 1
        self.store(name, key, value)
        return value

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, from the cache when this exact call (code included) was made before."""
        inner = _unwrap(fn)
        key = call_key(inner, args, kwargs)
        name = function_identity(inner).replace(":", ".")
        return self.get_or_compute(name, key, lambda: inner(*args, **kwargs))


_default: ResultCache | None = None


def default_cache() -> ResultCache:
    """The process-wide cache (re-created when ``SGDBAYES_CACHE_DIR`` or ``SGDBAYES_CACHE`` changed)."""
    global _default
    if _default is None or _default.root != cache_dir() or _default.enabled != _enabled():
        _default = ResultCache()
    return _default


def cached(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` through the process-wide cache (see the module docstring)."""
    if isinstance(fn, str):
        raise TypeError(f"cached({fn!r}, ...): a hand-named cache entry is not supported; pass the library "
                        "function itself, cached(fn, *args, **kwargs), so that the key covers all its arguments")
    return default_cache().call(fn, *args, **kwargs)


def memoize(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorate a module-level library function so that every call goes through :func:`cached`.

    The undecorated function stays reachable as ``fn.__wrapped__`` (call it to bypass the cache)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return default_cache().call(fn, *args, **kwargs)

    wrapper.__sgdbayes_memoized__ = True  # type: ignore[attr-defined]
    return wrapper
