"""Small C++ kernels compiled on this machine at first use and called through ``ctypes``.

Two kernels live here (sources beside this file): ``fcn_sgd.cpp``, one epoch of plain SGD for a stack of small ReLU
networks (``sgdbayes.ensembles.fused``), and ``prior.cpp``, torch's CPU normal stream reproduced bit for bit and a
rejection filter for prior sampling (``sgdbayes.prior_sampling``).

Build: the system C++ compiler (``$CXX``, else ``g++``, else ``c++``) with ``-O3 -march=native`` and the layer sizes as
compile-time constants, one shared library per (source, sizes) in a cache directory (``SGDBAYES_NATIVE_DIR``, default
``~/.cache/sgdbayes/native``; never inside the package, whose files the result cache fingerprints), keyed by a hash of
the source, the flags, the compiler's version and this CPU's feature flags (a library built for another CPU is never
loaded: a home directory shared by machines of different CPUs holds one library per CPU). A build takes 1–3 s once;
it is written to a temporary file in the cache directory and renamed into place (atomic), so two processes building
the same library at once both end with a complete one and never load a half-written file. Nothing is downloaded.

CPU features are chosen at compile time, for the CPU the build runs on: the kernels use AVX-512 where the compiler
defines ``__AVX512F__`` (``-march=native`` on a CPU that has it), else AVX2/FMA (``fcn_sgd.cpp`` also has a scalar
path; ``prior.cpp`` needs AVX2 and FMA and otherwise fails to build). When ``-march=native`` itself is refused, the
build is retried once without it (portable code for the compiler's default target). ``SGDBAYES_NATIVE_FLAGS`` adds
compiler flags (part of the cache key; e.g. ``-mno-avx512f`` builds the AVX2 path on an AVX-512 CPU, as the tests do).

When no compiler is found, a build fails, or ``SGDBAYES_NATIVE=off`` is set, :func:`load` returns None and the callers
take their plain-torch paths (same results up to float rounding, slower), with one warning naming the reason.
The foreign calls release the GIL, so callers run them from several Python threads at once.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

__all__ = ["load", "available", "unavailable_reason", "cache_dir", "ENV_SWITCH"]

ENV_SWITCH = "SGDBAYES_NATIVE"
ENV_DIR = "SGDBAYES_NATIVE_DIR"
ENV_FLAGS = "SGDBAYES_NATIVE_FLAGS"
HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
# No -ffast-math anywhere: NaN and inf must propagate (divergence is detected from them). prior.cpp reproduces
# torch's rounding step by step, so it writes each fused multiply-add explicitly and nothing else may be contracted;
# fcn_sgd.cpp lets the compiler fuse its multiply-adds (float tolerance, not bit-exactness, is its standard).
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-Wno-psabi", "-std=c++17", "-shared", "-fPIC")
SOURCE_FLAGS = {"fcn_sgd.cpp": ("-ffp-contract=fast",), "prior.cpp": ("-ffp-contract=off",)}

_lock = threading.Lock()
_libs: dict[tuple, ctypes.CDLL | None] = {}
_reasons: dict[tuple, str] = {}
_warned: set[str] = set()


def cache_dir() -> Path:
    """Where built libraries go: ``SGDBAYES_NATIVE_DIR``, else ``~/.cache/sgdbayes/native``. A directory inside the
    ``sgdbayes`` package is refused (ValueError): the result cache fingerprints every file there."""
    path = Path(os.environ.get(ENV_DIR) or Path.home() / ".cache" / "sgdbayes" / "native").expanduser().resolve()
    if path == PACKAGE or PACKAGE in path.parents:
        raise ValueError(f"{ENV_DIR}={os.environ.get(ENV_DIR)!r} lies inside the sgdbayes package ({PACKAGE}); "
                         "built libraries must live outside it (the result cache fingerprints every package file)")
    return path


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_fingerprint() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _version(cxx: str) -> str:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _compile(cxx: str, flags: list[str], source: str, lib_path: Path) -> str:
    """Compile ``source`` to ``lib_path`` through a temporary file renamed into place; "" on success, else why not."""
    fd, tmp = tempfile.mkstemp(prefix=f".{lib_path.stem}-", suffix=".tmp", dir=lib_path.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cxx, *flags, "-o", tmp, str(HERE / source)], capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            return f"{cxx} failed on {source} (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        os.replace(tmp, lib_path)  # atomic: a concurrent loader sees no file or a complete one
        return ""
    except (OSError, subprocess.SubprocessError) as exc:
        return f"building {source} failed: {exc}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _build(source: str, defines: tuple[tuple[str, str], ...]) -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get(ENV_SWITCH, "").strip().lower() in ("0", "off", "false", "no"):
        return None, f"disabled by {ENV_SWITCH}={os.environ[ENV_SWITCH]}"
    if platform.system() not in ("Linux", "Darwin"):
        return None, f"native kernels are built on Linux and macOS only (this is {platform.system()})"
    cxx = _compiler()
    if cxx is None:
        return None, "no C++ compiler found ($CXX, g++, c++ or clang++)"
    try:
        out_dir = cache_dir()
        out_dir.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        return None, str(exc)
    src = (HERE / source).read_text()
    args = [*SOURCE_FLAGS.get(source, ("-ffp-contract=off",)), *(f"-D{k}={v}" for k, v in defines),
            *os.environ.get(ENV_FLAGS, "").split()]
    version, cpu = _version(cxx), _cpu_fingerprint()
    reasons = []
    # -march=native first; if the compiler refuses it, the portable build (the compiler's default target)
    for flags in (list(FLAGS), [f for f in FLAGS if not f.startswith("-march=")]):
        key = hashlib.sha256("\0".join([src, *flags, *args, version, cpu]).encode()).hexdigest()[:20]
        lib_path = out_dir / f"{Path(source).stem}-{key}.so"
        if not lib_path.exists():
            reason = _compile(cxx, [*flags, *args], source, lib_path)
            if reason:
                reasons.append(reason)
                continue
        try:
            return ctypes.CDLL(str(lib_path)), ""
        except OSError as exc:
            reasons.append(f"loading {lib_path} failed: {exc}")
    if len(set(reasons)) > 1:
        return None, f"{reasons[0]}; retried without -march=native: {reasons[-1]}"
    return None, reasons[0]


def load(source: str, **defines) -> ctypes.CDLL | None:
    """The compiled library of ``source`` (a file beside this module) with ``-DNAME=VALUE`` for each define, built
    on first use; None when it cannot be built (a warning says why, once per reason)."""
    key = (source, tuple(sorted((k, str(v)) for k, v in defines.items())))
    with _lock:
        if key not in _libs:
            lib, reason = _build(source, key[1])
            _libs[key] = lib
            if lib is None:
                _reasons[key] = reason
                if reason not in _warned:
                    _warned.add(reason)
                    warnings.warn(f"sgdbayes native kernel unavailable ({reason}); using the plain-torch path",
                                  RuntimeWarning, stacklevel=3)
        return _libs[key]


def available(source: str, **defines) -> bool:
    return load(source, **defines) is not None


def unavailable_reason(source: str, **defines) -> str:
    key = (source, tuple(sorted((k, str(v)) for k, v in defines.items())))
    load(source, **defines)
    return _reasons.get(key, "")
