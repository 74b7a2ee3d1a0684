"""The result cache: keys built from the call and the code, values stored without pickle and checked on read."""

import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import sgdbayes
from sgdbayes import store
from sgdbayes.cache import (CacheError, CacheStoreWarning, CacheWarning, ResultCache, call_key, fingerprint_files,
                            library_fingerprint, memoize, package_files)
from sgdbayes.functions import FunctionCounts
from sgdbayes.params import Int

CALLS: list[tuple] = []


def square_sum(x, n: int = 2, *, scale: float = 1.0):
    """A cacheable module-level function that records its calls."""
    CALLS.append((n, scale))
    return {"y": torch.as_tensor(x) ** n * scale, "n": n}


def unstorable():
    return object()


@memoize
def memoized_double(a: int) -> int:
    CALLS.append(("double", a))
    return 2 * a


@pytest.fixture
def cache(tmp_path):
    CALLS.clear()
    return ResultCache(tmp_path, enabled=True)


def the_file(cache: ResultCache) -> Path:
    (path,) = list(cache.root.rglob("*.sgdb"))
    return path


# ---- keys ---------------------------------------------------------------------------------------------------------


def test_miss_then_hit_and_a_second_build_hits(cache):
    a = cache.call(square_sum, np.arange(3.0), 3)
    b = cache.call(square_sum, np.arange(3.0), 3)
    assert len(CALLS) == 1 and cache.hits == 1 and cache.misses == 1
    assert torch.equal(a["y"], b["y"]) and b["n"] == 3
    again = ResultCache(cache.root, enabled=True)
    again.call(square_sum, np.arange(3.0), 3)
    assert len(CALLS) == 1 and again.hits == 1


def test_the_key_is_the_bound_call_with_defaults():
    x = np.arange(4.0)
    base = call_key(square_sum, (x,), {})
    assert base == call_key(square_sum, (x, 2), {}) == call_key(square_sum, (), {"x": x, "n": 2, "scale": 1.0})
    assert base != call_key(square_sum, (x, 3), {})
    assert base != call_key(square_sum, (x,), {"scale": 1.0000000001})  # floats exactly
    assert base != call_key(square_sum, (x + 1e-12,), {})  # arrays by content
    assert base != call_key(square_sum, (torch.tensor(x),), {})  # a tensor is not an array
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        call_key(square_sum, (x,), {"nope": 1})


def test_a_library_edit_changes_every_key_and_recomputes(cache, monkeypatch):
    cache.call(square_sum, [1.0, 2.0])
    monkeypatch.setattr("sgdbayes.cache.library_fingerprint", lambda: "the library after an edit")
    cache.call(square_sum, [1.0, 2.0])
    assert len(CALLS) == 2 and cache.misses == 2


def test_editing_any_file_of_the_package_changes_the_fingerprint():
    files = package_files()
    assert "cache.py" in files and "ou/theory.py" in files and len(files) > 40
    base = fingerprint_files(files)
    for rel in files:
        edited = dict(files)
        edited[rel] = files[rel] + b"\n# edited\n"
        assert fingerprint_files(edited) != base, rel
    renamed = dict(files)
    renamed["x_" + "cache.py"] = renamed.pop("cache.py")
    assert fingerprint_files(renamed) != base


def test_probe_a_real_edit_of_a_library_module_recomputes(tmp_path):
    """Issue 11's probe, end to end: a copy of the package, a cached call, an edit to an unrelated module, again."""
    lib = tmp_path / "lib"
    shutil.copytree(Path(sgdbayes.__file__).parent, lib / "sgdbayes",
                    ignore=shutil.ignore_patterns("__pycache__"))
    script = textwrap.dedent(f"""
        import sgdbayes, sgdbayes.seed
        from sgdbayes.cache import ResultCache
        assert sgdbayes.__file__.startswith({str(lib)!r}), sgdbayes.__file__
        c = ResultCache({str(tmp_path / "cache")!r}, enabled=True)
        c.call(sgdbayes.seed.spawn_seeds, 7, 3)
        print(c.hits, c.misses)
    """)
    env = {**os.environ, "PYTHONPATH": str(lib)}

    def run() -> str:
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert run() == ["0", "1"]
    assert run() == ["1", "0"]  # nothing changed: a hit
    with open(lib / "sgdbayes" / "ou" / "theory.py", "a") as fh:
        fh.write("\n# an edit that does not touch spawn_seeds still invalidates: the code is keyed as a whole\n")
    assert run() == ["0", "1"]


def test_only_module_level_library_functions_can_be_cached(cache):
    with pytest.raises(TypeError, match="lambdas and nested functions"):
        cache.call(lambda: 1)

    def local():
        return 1

    with pytest.raises(TypeError, match="lambdas and nested functions"):
        cache.call(local)
    main = type(square_sum)(square_sum.__code__, {}, "f")
    main.__module__, main.__qualname__ = "__main__", "f"
    with pytest.raises(TypeError, match="notebook or script"):
        cache.call(main)


def test_a_generator_argument_is_refused():
    with pytest.raises(TypeError, match="pass an integer seed"):
        call_key(square_sum, (torch.Generator(),), {})


def test_memoize(cache, monkeypatch):
    monkeypatch.setattr("sgdbayes.cache.default_cache", lambda: cache)
    assert memoized_double(4) == 8 and memoized_double(4) == 8
    assert CALLS == [("double", 4)]
    assert memoized_double.__wrapped__(5) == 10 and cache.misses == 1  # the bypass


# ---- stored values --------------------------------------------------------------------------------------------


def roundtrip(value):
    return store.loads(store.dumps(value, key="k"), key="k")


def test_values_of_every_storable_kind_come_back_equal():
    frame = pd.DataFrame({"setting": ["sgd", "adam"], "top-1 mass": [0.25, np.nan], "count": [3, 4]},
                         index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["x", "y"]))
    value = {
        "f32": torch.randn(3, 4), "bf16": torch.ones(5, dtype=torch.bfloat16), "i64": torch.arange(5),
        "arr": np.arange(6, dtype=np.int16).reshape(2, 3), "empty": np.zeros((0, 4)), "str": np.array(["ab", "c"]),
        "scalar": np.float32(1.5), "nan": float("nan"), "inf": -float("inf"), "tuple": (1, [2, 3]), "set": {3, 1},
        7: "int key", (1, 2): "tuple key", "path": Path("a/b"), "dtype": torch.float64, "device": torch.device("cpu"),
        "frame": frame, "series": frame["count"], "spec": Int(min=0, max=5),
        "counts": FunctionCounts.from_bits([[0, 1, 1], [0, 1, 1], [1, 0, 0]]), "complex": 1 + 2j, "none": None,
    }
    back = roundtrip(value)
    assert set(back) == set(value)
    for k in ("f32", "bf16", "i64"):
        assert back[k].dtype == value[k].dtype and torch.equal(back[k], value[k])
    for k in ("arr", "empty", "str"):
        assert back[k].dtype == value[k].dtype and np.array_equal(back[k], value[k])
    assert back["scalar"] == value["scalar"] and back["scalar"].dtype == np.float32
    assert np.isnan(back["nan"]) and back["inf"] == -float("inf")
    assert back["tuple"] == (1, [2, 3]) and back["set"] == {1, 3} and back[7] == "int key" and back[(1, 2)]
    assert back["path"] == Path("a/b") and back["dtype"] is torch.float64 and back["device"] == torch.device("cpu")
    pd.testing.assert_frame_equal(back["frame"], frame)
    pd.testing.assert_series_equal(back["series"], frame["count"])
    assert back["spec"] == Int(min=0, max=5) and back["counts"] == value["counts"]
    assert back["complex"] == 1 + 2j and back["none"] is None


def test_classes_outside_the_package_are_refused():
    with pytest.raises(TypeError, match="cannot store value\\['x'\\] of type builtins.object"):
        store.dumps({"x": object()})
    with pytest.raises(TypeError, match="dtype object is not allowed"):
        store.dumps(np.array([object()]))


def test_a_file_cannot_name_a_foreign_class():
    tree = json.dumps({"$dataclass": "subprocess:Popen", "fields": {}}).encode()
    payload = struct.pack("<Q", len(tree)) + tree
    import hashlib

    header = json.dumps({"format": store.FORMAT, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
                         "key": "k"}).encode()
    data = store.MAGIC + struct.pack("<Q", len(header)) + header + payload
    with pytest.raises(store.StoreError, match="only classes of the sgdbayes package"):
        store.loads(data, key="k")


def test_an_unstorable_value_is_returned_uncached_with_a_warning(cache):
    with pytest.warns(CacheStoreWarning, match="not cached"):
        value = cache.call(unstorable)
    assert type(value) is object and not list(cache.root.rglob("*.sgdb"))


# ---- damaged and hostile files ----------------------------------------------------------------------------------


def test_a_pickle_at_the_cache_path_runs_nothing(cache, tmp_path):
    cache.call(square_sum, [1.0])
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    buf = io.BytesIO()
    pickle.dump({"key": "whatever", "value": Boom()}, buf)
    path = the_file(cache)
    path.write_bytes(buf.getvalue())
    with pytest.warns(CacheWarning, match="bad magic"):
        value = cache.call(square_sum, [1.0])
    assert not marker.exists() and len(CALLS) == 2 and torch.equal(value["y"], torch.tensor([1.0]))


def _flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["tensor element", "scalar in the tree", "last byte", "truncated", "empty"])
def test_damage_is_detected_and_recomputed(cache, where):
    expected = cache.call(square_sum, np.arange(100.0), 2, scale=3.0)
    path = the_file(cache)
    data = path.read_bytes()
    if where == "tensor element":
        _flip(path, len(data) - 8 * 50)  # inside the float64 tensor y, the blob's only array
    elif where == "scalar in the tree":
        _flip(path, data.index(b'"n":2') + 4)  # the stored n: 2 -> 3
    elif where == "last byte":
        _flip(path, len(data) - 1)
    elif where == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"")
    with pytest.warns(CacheWarning, match="corrupt"):
        value = cache.call(square_sum, np.arange(100.0), 2, scale=3.0)
    assert len(CALLS) == 2 and torch.equal(value["y"], expected["y"]) and value["n"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recomputed file is intact
        cache.call(square_sum, np.arange(100.0), 2, scale=3.0)
    assert len(CALLS) == 2


def test_a_file_written_for_another_call_is_not_trusted(cache):
    cache.call(square_sum, [1.0])
    cache.call(square_sum, [2.0])
    p1 = cache.path("test_cache.square_sum", call_key(square_sum, ([1.0],), {}))
    p2 = cache.path("test_cache.square_sum", call_key(square_sum, ([2.0],), {}))
    assert p1.exists() and p2.exists()
    p1.write_bytes(p2.read_bytes())  # an intact file, under the wrong name
    with pytest.warns(CacheWarning, match="written for key"):
        value = cache.call(square_sum, [1.0])
    assert torch.equal(value["y"], torch.tensor([1.0])) and len(CALLS) == 3


def test_no_temporary_files_left_and_orphans_removed(cache):
    for i in range(3):
        cache.call(square_sum, [float(i)])
    folder = next(cache.root.iterdir())
    orphan = folder / ".x.sgdb.nohost-here.999999999.tmp"
    orphan.write_bytes(b"half")
    os.utime(orphan, (0, 0))  # older than a day: removed whatever host wrote it
    cache.call(square_sum, [9.0])
    assert sorted(p.suffix for p in folder.iterdir()) == [".sgdb"] * 4


# ---- switches and failures ----------------------------------------------------------------------------------------


def test_unwritable_directory_fails_before_the_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    CALLS.clear()
    with pytest.raises(CacheError, match="not writable.*SGDBAYES_CACHE_DIR"):
        ResultCache(blocker / "cache", enabled=True).call(square_sum, [1.0])
    assert CALLS == []


def test_disabled_cache_always_computes(tmp_path):
    CALLS.clear()
    cache = ResultCache(tmp_path, enabled=False)
    for _ in range(2):
        cache.call(square_sum, [1.0])
    assert len(CALLS) == 2 and not any(tmp_path.iterdir())


def test_the_fingerprint_is_computed_once_per_process():
    assert library_fingerprint() == library_fingerprint()
    assert library_fingerprint.cache_info().hits >= 1


def test_the_store_keeps_an_arrays_memory_order():
    """LAPACK returns Fortran-ordered arrays; a product over a C-ordered copy can round differently, so a cached
    result must come back in the order it was computed in (values and layout)."""
    import numpy as np

    from sgdbayes import store

    a = np.asfortranarray(np.arange(12.0).reshape(3, 4) / 7)
    c = np.arange(6).reshape(2, 3)
    back = store.loads(store.dumps({"f": a, "c": c, "v": np.arange(3.0)}))
    assert back["f"].flags.f_contiguous and not back["f"].flags.c_contiguous
    assert back["c"].flags.c_contiguous
    np.testing.assert_array_equal(back["f"], a)
    np.testing.assert_array_equal(back["c"], c)
