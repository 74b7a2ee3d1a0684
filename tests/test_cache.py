import os
import warnings

import numpy as np
import pytest
import torch

from sgdbayes.cache import CacheError, CacheWarning, ResultCache, cache_key


def test_miss_then_hit(tmp_path):
    cache = ResultCache(tmp_path, enabled=True)
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3), "y": 2.5}

    a = cache.get_or_compute("job", {"n": 3}, compute)
    b = cache.get_or_compute("job", {"n": 3}, compute)
    assert len(calls) == 1 and cache.hits == 1 and cache.misses == 1
    assert torch.equal(a["x"], b["x"]) and b["y"] == 2.5
    # a fresh cache object on the same directory (a second build) hits too
    again = ResultCache(tmp_path, enabled=True)
    again.get_or_compute("job", {"n": 3}, compute)
    assert len(calls) == 1 and again.hits == 1


def test_key_depends_on_params_and_version():
    base = cache_key("job", {"n": 3, "lr": 0.1}, version="1")
    assert base == cache_key("job", {"lr": 0.1, "n": 3}, version="1")  # order-independent
    assert base != cache_key("job", {"n": 3, "lr": 0.1000001}, version="1")
    assert base != cache_key("job", {"n": 4, "lr": 0.1}, version="1")
    assert base != cache_key("job", {"n": 3, "lr": 0.1}, version="2")
    assert base != cache_key("other", {"n": 3, "lr": 0.1}, version="1")
    x = np.arange(4.0)
    assert cache_key("j", {"x": x}, version="1") != cache_key("j", {"x": x + 1e-12}, version="1")
    assert cache_key("j", {"x": torch.tensor(x)}, version="1") == cache_key("j", {"x": torch.tensor(x)}, version="1")


def test_unhashable_param_is_a_clear_error():
    with pytest.raises(TypeError, match="cannot hash a parameter of type object"):
        cache_key("j", {"x": object()})


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_file_is_recomputed_with_warning(tmp_path, damage):
    cache = ResultCache(tmp_path, enabled=True)
    cache.get_or_compute("job", {"n": 1}, lambda: torch.ones(1000))
    (path,) = list((tmp_path / "job").glob("*.pt"))
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a torch file", "empty": b""}[damage])
    with pytest.warns(CacheWarning, match="corrupt"):
        value = cache.get_or_compute("job", {"n": 1}, lambda: torch.full((1000,), 2.0))
    assert torch.equal(value, torch.full((1000,), 2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(cache.get_or_compute("job", {"n": 1}, lambda: None), torch.full((1000,), 2.0))


def test_file_of_other_params_is_not_trusted(tmp_path):
    cache = ResultCache(tmp_path, enabled=True)
    cache.get_or_compute("job", {"n": 1}, lambda: 1)
    cache.get_or_compute("job", {"n": 2}, lambda: 2)
    p1, p2 = cache.path("job", cache_key("job", {"n": 1})), cache.path("job", cache_key("job", {"n": 2}))
    p1.write_bytes(p2.read_bytes())  # a file under the wrong name
    with pytest.warns(CacheWarning):
        assert cache.get_or_compute("job", {"n": 1}, lambda: 11) == 11


def test_no_temporary_files_left(tmp_path):
    cache = ResultCache(tmp_path, enabled=True)
    for i in range(3):
        cache.get_or_compute("job", {"i": i}, lambda: i)
    assert sorted(p.suffix for p in (tmp_path / "job").iterdir()) == [".pt"] * 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_unwritable_directory_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(CacheError, match="SGDBAYES_CACHE_DIR"):
        ResultCache(ro / "cache", enabled=True).get_or_compute("job", {}, lambda: 1)


def test_unwritable_directory_is_a_clear_error_even_as_root(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    calls = []
    with pytest.raises(CacheError, match="not writable"):
        ResultCache(blocker / "cache", enabled=True).get_or_compute("job", {}, lambda: calls.append(1))
    assert calls == []  # fails before the expensive work, not after


def test_disabled_cache_always_computes(tmp_path):
    cache = ResultCache(tmp_path, enabled=False)
    calls = []
    for _ in range(2):
        cache.get_or_compute("job", {}, lambda: calls.append(1))
    assert len(calls) == 2 and not any(tmp_path.iterdir())
