"""The native kernels' build (sgdbayes.native) and its fallbacks: without a compiler, with a compiler that fails, with
the kernels switched off, the callers warn and take their torch paths with the same results; the AVX2 build (no
AVX-512) gives the results of the torch path; libraries live outside the package; concurrent builds of one library
both succeed and leave one complete file; the native path is deterministic for a seed."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import sgdbayes
import sgdbayes.ensembles.train as train_mod
import sgdbayes.prior_sampling as ps
from sgdbayes import native
from sgdbayes.data.boolean import boolean_split
from sgdbayes.ensembles import FCN, train_ensemble
from sgdbayes.ensembles.fused import native_kernel
from sgdbayes.prior_sampling import sample_prior

PACKAGE = Path(sgdbayes.__file__).resolve().parent
HAS_NATIVE = native_kernel(FCN(5, (16, 12)), 4) is not None
needs_native = pytest.mark.skipif(not HAS_NATIVE, reason="no C++ compiler here: the native kernels are not built")


def _boolean(n_bits=5, n_train=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_all = torch.tensor([[(i >> b) & 1 for b in range(n_bits)] for i in range(2**n_bits)], dtype=torch.float32)
    x_all = 2 * x_all - 1
    y_all = (x_all[:, 0] * x_all[:, 1] > 0).long()  # XOR of two bits: fittable, not at once
    perm = torch.randperm(2**n_bits, generator=g)
    return x_all[perm[:n_train]], y_all[perm[:n_train]], x_all[perm[n_train:]]


def _fresh_native(monkeypatch, build_dir: Path | None = None):
    """Empty in-process caches of loaded libraries (and a fresh build directory), restored after the test."""
    monkeypatch.setattr(native, "_libs", {})
    monkeypatch.setattr(native, "_reasons", {})
    monkeypatch.setattr(native, "_warned", set())
    monkeypatch.setattr(ps, "_native_state", {})
    if build_dir is not None:
        monkeypatch.setenv(native.ENV_DIR, str(build_dir))


def _train(**kw):
    X, y, Xe = _boolean(seed=2)
    return train_ensemble(FCN(5, (16, 12), sigma_w=1.3, sigma_b=0.2), X, y, Xe,
                          **{"n_networks": 12, "seed": 3, "optimizer": "sgd", "lr": 0.1, "batch_size": 4,
                             "max_epochs": 150, "return_params": True, "progress": False, **kw})


def _prior(n_samples=3123):
    split = boolean_split("0011", 16, seed=1)
    return sample_prior(split.x_train, split.y_train, split.x_test, n_samples=n_samples, block=1000, chunk=2000,
                        seed=4, progress=False)


def _assert_same_runs(a, b, exact_params=False):
    for name in ("status", "epochs_to_fit", "epochs_trained", "train_accuracy", "fits_by_sign"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert torch.equal(a.test_labels, b.test_labels)
    for p, q in zip(a.params, b.params, strict=True):
        if exact_params:
            assert torch.equal(p, q)
        else:
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def _break_compiler(monkeypatch, tmp_path, how):
    if how == "off":
        monkeypatch.setenv(native.ENV_SWITCH, "off")
        return "disabled by SGDBAYES_NATIVE"
    if how == "missing":
        monkeypatch.delenv("CXX", raising=False)
        empty = tmp_path / "empty_path"
        empty.mkdir()
        monkeypatch.setenv("PATH", str(empty))
        return "no C++ compiler found"
    failing = tmp_path / "failing-c++"  # a "compiler" that reports an error, as a broken toolchain would
    failing.write_text("#!/bin/sh\necho 'c++: error: unrecognized command-line option' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setenv("CXX", str(failing))
    return "failed on"


@pytest.mark.parametrize("how", ["off", "missing", "failing"])
def test_fallback_to_torch_paths_with_a_warning(monkeypatch, tmp_path, how):
    """No usable compiler: a RuntimeWarning naming the reason, the torch paths run, and their results are those
    of the torch paths chosen on purpose (and, where the native kernels build here, those of the native paths)."""
    reference_native = _train() if HAS_NATIVE else None
    reference_prior = _prior()
    build_dir = tmp_path / "native"
    _fresh_native(monkeypatch, build_dir)
    reason = _break_compiler(monkeypatch, tmp_path, how)
    with pytest.warns(RuntimeWarning, match=f"native kernel unavailable.*{re.escape(reason)}"):
        res = _train()
        prior = _prior()
    assert res.config["path"] == "torch"
    assert res.fitted.any()
    assert ps._native_state and all(v is None for v in ps._native_state.values())
    monkeypatch.setattr(train_mod, "NATIVE_SGD", False)
    _assert_same_runs(res, _train(), exact_params=True)
    if reference_native is not None:
        assert reference_native.config["path"] == "native"
        _assert_same_runs(res, reference_native)
    assert prior.n_consistent == reference_prior.n_consistent > 0 and prior.counts == reference_prior.counts
    assert not (build_dir.exists() and list(build_dir.iterdir()))  # no library, no temporary file left


@needs_native
def test_avx2_build_without_avx512_matches_torch_paths(monkeypatch, tmp_path):
    """The kernels built without AVX-512 (``-mno-avx512f``: the code path of a CPU without it) give the torch
    paths' results: the training kernel to float rounding, the prior kernel's counts exactly (its normal stream is
    checked bit for bit against torch's before use)."""
    _fresh_native(monkeypatch, tmp_path / "native")
    monkeypatch.setenv(native.ENV_FLAGS, "-mno-avx512f")
    res = _train()
    assert res.config["path"] == "native"
    prior = _prior()
    assert ps._native_state and all(v is not None for v in ps._native_state.values())
    # built here with the extra flag, not taken from elsewhere (prior.cpp twice: the sampler's sizes, and the
    # normal fill the training path uses for initial parameters)
    built = {p.name.split("-")[0] for p in (tmp_path / "native").glob("*.so")}
    assert built == {"fcn_sgd", "prior"}, built
    monkeypatch.setattr(train_mod, "NATIVE_SGD", False)
    monkeypatch.setattr(ps, "USE_NATIVE", False)
    _assert_same_runs(res, _train())
    plain = _prior()
    assert prior.n_consistent == plain.n_consistent > 0 and prior.counts == plain.counts


def test_libraries_live_outside_the_package(monkeypatch):
    _fresh_native(monkeypatch)
    assert PACKAGE not in native.cache_dir().parents
    inside = PACKAGE / "native" / "build"
    monkeypatch.setenv(native.ENV_DIR, str(inside))
    with pytest.raises(ValueError, match="inside the sgdbayes package"):
        native.cache_dir()
    with pytest.warns(RuntimeWarning, match="inside the sgdbayes package"):
        assert native.load("fcn_sgd.cpp", DIMS="3,4,1", BMAX=2) is None
    assert not inside.exists()
    assert not [p for p in PACKAGE.rglob("*") if p.suffix in (".so", ".tmp", ".dylib")]


@pytest.mark.skipif(native._compiler() is None, reason="no C++ compiler here")
def test_concurrent_builds_leave_one_complete_library(tmp_path):
    """Two processes building the same library into an empty directory at the same moment: both load a working
    library, one file remains, no temporary file is left behind."""
    out = tmp_path / "native"
    script = textwrap.dedent(f"""
        import os, sys, time
        os.environ[{native.ENV_DIR!r}] = {str(out)!r}
        from sgdbayes import native
        while time.time() < float(sys.argv[1]):
            time.sleep(0.005)
        lib = native.load("fcn_sgd.cpp", DIMS="3,6,5,1", BMAX=3)
        sys.exit(0 if lib is not None and hasattr(lib, "sgdb_fcn_train") else 1)
    """)
    import time

    start = str(time.time() + 3.0)  # both processes past their imports, then compile at once
    procs = [subprocess.Popen([sys.executable, "-c", script, start], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 1 and files[0].startswith("fcn_sgd-") and files[0].endswith(".so"), files


@needs_native
def test_native_path_same_seed_same_results():
    """Same seed twice on the native path: identical statuses, epochs, functions and parameters bit for bit (also
    with another thread count); another seed gives other runs."""
    import os

    a = _train()
    saved = os.environ.get("SGDBAYES_THREADS")
    os.environ["SGDBAYES_THREADS"] = "2" if (saved or "") != "2" else "1"
    try:
        b = _train()
    finally:
        if saved is None:
            os.environ.pop("SGDBAYES_THREADS")
        else:
            os.environ["SGDBAYES_THREADS"] = saved
    assert a.config["path"] == b.config["path"] == "native"
    _assert_same_runs(a, b, exact_params=True)
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    c = _train(seed=4)
    assert not all(torch.equal(p, q) for p, q in zip(a.params, c.params, strict=True))
