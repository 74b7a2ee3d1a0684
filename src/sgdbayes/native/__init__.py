"""Small C++ kernels compiled on this machine at first use and called through ``ctypes``.

Two kernels live here (sources beside this file): ``fcn_sgd.cpp``, one epoch of plain SGD for a stack of small ReLU
networks (``sgdbayes.ensembles.fused``), and ``prior.cpp``, torch's CPU normal stream reproduced bit for bit and a
rejection filter for prior sampling (``sgdbayes.prior_sampling``).

Build: the system C++ compiler (``$CXX``, else ``g++``, else ``c++``) with ``-O3 -march=native`` and the layer sizes as
compile-time constants, one shared library per (source, sizes) in a cache directory (``SGDBAYES_NATIVE_DIR``, default
``~/.cache/sgdbayes/native``), keyed by a hash of the source, the flags, the compiler's version and this CPU's feature
flags (a library built for another CPU is never loaded). A build takes 1–3 s once; it is written to a temporary file
and renamed, so concurrent processes never load a half-written library. Nothing is downloaded.

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
HERE = Path(__file__).resolve().parent
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
    return Path(os.environ.get(ENV_DIR) or Path.home() / ".cache" / "sgdbayes" / "native")


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


def _build(source: str, defines: tuple[tuple[str, str], ...]) -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get(ENV_SWITCH, "").strip().lower() in ("0", "off", "false", "no"):
        return None, f"disabled by {ENV_SWITCH}={os.environ[ENV_SWITCH]}"
    if platform.system() not in ("Linux", "Darwin"):
        return None, f"native kernels are built on Linux and macOS only (this is {platform.system()})"
    cxx = _compiler()
    if cxx is None:
        return None, "no C++ compiler found ($CXX, g++, c++ or clang++)"
    src = (HERE / source).read_text()
    args = [*SOURCE_FLAGS.get(source, ("-ffp-contract=off",)), *(f"-D{k}={v}" for k, v in defines)]
    key = hashlib.sha256("\0".join([src, *FLAGS, *args, _version(cxx), _cpu_fingerprint()]).encode()).hexdigest()[:20]
    out_dir = cache_dir()
    lib_path = out_dir / f"{Path(source).stem}-{key}.so"
    if not lib_path.exists():
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
            os.close(fd)
            proc = subprocess.run([cxx, *FLAGS, *args, "-o", tmp, str(HERE / source)], capture_output=True,
                                  text=True, timeout=300)
            if proc.returncode != 0:
                os.unlink(tmp)
                return None, f"{cxx} failed on {source}: {proc.stderr.strip()[-2000:]}"
            os.replace(tmp, lib_path)
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"building {source} failed: {exc}"
    try:
        return ctypes.CDLL(str(lib_path)), ""
    except OSError as exc:
        return None, f"loading {lib_path} failed: {exc}"


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
