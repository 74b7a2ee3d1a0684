"""run_sharded: seeded shards on a Dask LocalCluster (2 worker processes), stored as they finish, resumed after a
crash, merged exactly as a single process would."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from sgdbayes.distributed import ShardError, ShardWarning, run_sharded, shard_dir
from sgdbayes.functions import FunctionCounts
from sgdbayes.seed import make_generator, spawn_seeds

N_SHARDS = 6


def perceptron_functions(shard_seed: int, *, n_samples: int, n_inputs: int = 7, log_dir: str | None = None,
                         fail_once: list[int] = (), fail_always: list[int] = (), x: torch.Tensor | None = None):
    """Prior sampling for a perceptron: labellings sign(w·x + b) of fixed inputs under w, b ~ N(0, 1).

    Logs each call as a file in ``log_dir`` (visible across worker processes); raises on its first call for a seed
    in ``fail_once`` (a simulated crash) and on every call for a seed in ``fail_always``.
    """
    if log_dir is not None:
        (Path(log_dir) / f"call-{shard_seed}-{uuid.uuid4().hex}").touch()
        marker = Path(log_dir) / f"crashed-{shard_seed}"
        if shard_seed in fail_once and not marker.exists():
            marker.touch()
            raise RuntimeError(f"simulated crash for seed {shard_seed}")
    if shard_seed in fail_always:
        raise ValueError(f"bad shard {shard_seed}")
    if x is None:
        x = torch.randn(n_inputs, 3, generator=make_generator(1234))
    g = make_generator(shard_seed)
    w = torch.randn(n_samples, x.shape[1], generator=g)
    b = torch.randn(n_samples, 1, generator=g)
    return FunctionCounts.from_bits(w @ x.T + b > 0)


def calls(log_dir: Path) -> dict[int, int]:
    out: dict[int, int] = {}
    for f in log_dir.glob("call-*"):
        s = int(f.name.split("-")[1])
        out[s] = out.get(s, 0) + 1
    return out


def reference(seed: int, n_shards: int, **params) -> FunctionCounts:
    """The single-process truth: the same seeds, one shard after another, merged."""
    return FunctionCounts.merge_all([perceptron_functions(s, **params) for s in spawn_seeds(seed, n_shards)])


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c


def test_local_cluster_equals_single_process(cluster, tmp_path):
    params = {"n_samples": 2000}
    merged, info = run_sharded(perceptron_functions, n_shards=N_SHARDS, seed=11, params=params,
                               scheduler=cluster.scheduler_address, cache_dir=tmp_path, progress=False,
                               return_info=True)
    truth = reference(11, N_SHARDS, **params)
    assert merged == truth  # keys and counts identical
    assert merged.total == N_SHARDS * 2000 and merged.n_distinct > 5
    assert sorted(info.computed) == list(range(N_SHARDS)) and info.reused == []
    assert info.scheduler == cluster.scheduler_address
    assert len(list(info.directory.glob("shard-*.sgdb"))) == N_SHARDS
    # a different root seed gives different counts (the seed is really used)
    assert run_sharded(perceptron_functions, n_shards=N_SHARDS, seed=12, params=params, scheduler="sync",
                       cache_dir=False, progress=False) != truth


def test_killed_run_resumes_from_finished_shards(cluster, tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    seeds = spawn_seeds(5, N_SHARDS)
    params = {"n_samples": 500, "log_dir": str(log), "fail_once": [seeds[1], seeds[4]]}
    with pytest.raises(ShardError) as info:
        run_sharded(perceptron_functions, n_shards=N_SHARDS, seed=5, params=params, scheduler=cluster.scheduler_address,
                    cache_dir=tmp_path / "store", progress=False)
    err = info.value
    assert [f.index for f in err.failures] == [1, 4]
    assert [f.seed for f in err.failures] == [seeds[1], seeds[4]]
    assert all("RuntimeError: simulated crash" in f.error for f in err.failures)
    assert f"shard 1 (seed {seeds[1]})" in str(err) and err.n_done == N_SHARDS - 2
    assert len(list(err.directory.glob("shard-*.sgdb"))) == N_SHARDS - 2  # the finished ones were kept

    merged, run = run_sharded(perceptron_functions, n_shards=N_SHARDS, seed=5, params=params,
                              scheduler=cluster.scheduler_address, cache_dir=tmp_path / "store", progress=False,
                              return_info=True)
    assert sorted(run.computed) == [1, 4] and sorted(run.reused) == [0, 2, 3, 5]
    n_calls = calls(log)
    assert n_calls == {s: (2 if k in (1, 4) else 1) for k, s in enumerate(seeds)}  # nothing redone, nothing lost
    truth = FunctionCounts.merge_all([perceptron_functions(s, n_samples=500) for s in seeds])
    assert merged == truth

    # a third call computes nothing; more shards later reuse the first ones (shard k's seed ignores n_shards)
    again = run_sharded(perceptron_functions, n_shards=N_SHARDS, seed=5, params=params, scheduler="sync",
                        cache_dir=tmp_path / "store", progress=False)
    assert again == truth and calls(log) == n_calls
    more, run = run_sharded(perceptron_functions, n_shards=N_SHARDS + 2, seed=5, params=params, scheduler="sync",
                            cache_dir=tmp_path / "store", progress=False, return_info=True)
    assert run.computed == [N_SHARDS, N_SHARDS + 1] and more.total == (N_SHARDS + 2) * 500
    assert more == FunctionCounts.merge_all([truth, *(perceptron_functions(s, n_samples=500)
                                                       for s in spawn_seeds(5, N_SHARDS + 2)[N_SHARDS:])])


def test_failing_shard_is_reported_never_dropped(tmp_path):
    seeds = spawn_seeds(2, 4)
    with pytest.raises(ShardError, match=rf"shard 2 \(seed {seeds[2]}\): ValueError: bad shard") as info:
        run_sharded(perceptron_functions, n_shards=4, seed=2, scheduler="sync", cache_dir=tmp_path, progress=False,
                    params={"n_samples": 10, "fail_always": [seeds[2]]})
    assert "Traceback" in info.value.failures[0].traceback and info.value.n_done == 3
    with pytest.raises(ShardError):  # still failing on a rerun: reported again, not counted
        run_sharded(perceptron_functions, n_shards=4, seed=2, scheduler="sync", cache_dir=tmp_path, progress=False,
                    params={"n_samples": 10, "fail_always": [seeds[2]]})


def test_env_scheduler_and_scattered_params(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SGDBAYES_DASK_SCHEDULER", cluster.scheduler_address)
    x = torch.randn(80_000, 4, generator=make_generator(0))  # 1.3 MB: sent to the workers once
    params = {"n_samples": 3, "x": x}
    merged, info = run_sharded(perceptron_functions, n_shards=3, seed=0, params=params, cache_dir=tmp_path,
                               progress=False, return_info=True)
    assert info.scheduler == cluster.scheduler_address
    assert merged == reference(0, 3, **params)
    # the tensor is part of the shard key: different data, different store
    other = x.clone()
    other[0, 0] += 1
    assert shard_dir(perceptron_functions, {"n_samples": 3, "x": other}, tmp_path) != info.directory
    assert shard_dir(perceptron_functions, params, tmp_path) == info.directory


def test_default_local_cluster(tmp_path):
    # scheduler=None and no environment variable: a LocalCluster started (and closed) for this call
    merged, info = run_sharded(perceptron_functions, n_shards=3, seed=4, params={"n_samples": 100}, n_workers=2,
                               processes=False, cache_dir=tmp_path, progress=False, return_info=True)
    assert merged == reference(4, 3, n_samples=100)
    assert "://" in info.scheduler


def test_corrupt_shard_is_recomputed(tmp_path):
    params = {"n_samples": 50}
    first, info = run_sharded(perceptron_functions, n_shards=3, seed=9, params=params, scheduler="sync",
                              cache_dir=tmp_path, progress=False, return_info=True)
    victim = sorted(info.directory.glob("shard-*.sgdb"))[1]
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.warns(ShardWarning, match="corrupt"):
        second, info2 = run_sharded(perceptron_functions, n_shards=3, seed=9, params=params, scheduler="sync",
                                    cache_dir=tmp_path, progress=False, return_info=True)
    assert info2.computed == [1] and second == first


def test_custom_merge_gets_shards_in_order_and_storing_off(tmp_path):
    out = run_sharded(_echo_seed, n_shards=5, seed=3, scheduler="sync", cache_dir=False, progress=False,
                      merge=lambda rs: rs)
    assert out == spawn_seeds(3, 5)
    assert run_sharded(_echo_seed, n_shards=5, seed=3, scheduler="sync", cache_dir=tmp_path, progress=False,
                       merge=sum) == sum(spawn_seeds(3, 5))
    assert run_sharded(_echo_seed, n_shards=2, seed=3, scheduler="sync", cache_dir=tmp_path,
                       progress=False) == spawn_seeds(3, 2)  # default merge of non-FunctionCounts: the list


def _echo_seed(shard_seed: int) -> int:
    return shard_seed


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_shards": 0}, "n_shards must be an int >= 1"),
    ({"seed": -1}, "seed must be an int >= 0"),
    ({"params": {"seed": 1}}, "must not contain 'seed'"),
    ({"scheduler": "nowhere"}, "scheduler 'nowhere' is not understood"),
    ({"n_workers": 0}, "n_workers must be an int >= 1"),
])
def test_bad_arguments(kwargs, match, tmp_path):
    args = {"n_shards": 2, "seed": 0, "cache_dir": tmp_path, "progress": False} | kwargs
    with pytest.raises(ValueError, match=match):
        run_sharded(_echo_seed, **args)


def test_reference_is_not_trivial():
    # the test job really produces many distinct, seed-dependent labellings
    a = perceptron_functions(spawn_seeds(0, 1)[0], n_samples=1000)
    b = perceptron_functions(spawn_seeds(1, 1)[0], n_samples=1000)
    assert a != b and a.n_distinct >= 8 and np.isclose(a.top_k_mass(a.n_distinct), 1.0)


# ---- issue 11: shards keyed on the code, stored without pickle, checked before they are decoded ------------------


def _run(tmp_path, **kw):
    return run_sharded(perceptron_functions, n_shards=3, seed=9, params={"n_samples": 400}, scheduler="sync",
                       cache_dir=tmp_path, progress=False, return_info=True, **kw)


def test_a_library_edit_changes_the_shard_key(tmp_path, monkeypatch):
    first, info = _run(tmp_path)
    monkeypatch.setattr("sgdbayes.cache.library_fingerprint", lambda: "edited library")
    again, info2 = _run(tmp_path)
    assert info2.directory != info.directory and info2.computed == [0, 1, 2] and again == first


def test_shard_of_another_shard_function_is_not_read(tmp_path):
    _, info = _run(tmp_path)
    other = shard_dir(_other_perceptron, {"n_samples": 400}, tmp_path)
    assert other != info.directory  # same params, same name folder pattern, different code


def _other_perceptron(shard_seed: int, *, n_samples: int):
    return perceptron_functions(shard_seed + 1, n_samples=n_samples)


def _array_position(data: bytes, name: str) -> int:
    """Absolute offset in a stored FunctionCounts shard of the first byte of its array ``name``."""
    import json
    import struct

    from sgdbayes import store as st

    _, payload = st.read_header(data)
    (tlen,) = struct.unpack_from("<Q", payload, 0)
    tree = json.loads(bytes(payload[8:8 + tlen]))
    ref = tree["state"][name]["$ndarray"]
    return len(data) - len(payload) + 8 + tlen + ref["offset"]


@pytest.mark.parametrize("where", ["keys", "counts", "header", "tree"])
def test_one_flipped_byte_is_detected_and_recomputed(tmp_path, where):
    first, info = _run(tmp_path)
    victim = sorted(info.directory.glob("shard-*.sgdb"))[1]
    data = bytearray(victim.read_bytes())
    pos = {"keys": lambda: _array_position(bytes(data), "keys"),
           "counts": lambda: _array_position(bytes(data), "counts"),
           "header": lambda: data.index(b'"seed": ') + 8,  # the first digit of the stored seed
           "tree": lambda: data.index(b"FunctionCounts")}[where]()
    data[pos] ^= 0x01
    victim.write_bytes(bytes(data))
    with pytest.warns(ShardWarning, match="checksum mismatch|written for seed"):
        second, info2 = _run(tmp_path)
    assert info2.computed == [1] and second == first


def test_a_pickle_at_the_shard_path_runs_nothing(tmp_path):
    _, info = _run(tmp_path)
    victim = sorted(info.directory.glob("shard-*.sgdb"))[0]
    marker = tmp_path / "pwned"
    victim.write_bytes(_malicious_pickle(marker))
    with pytest.warns(ShardWarning, match="bad magic"):
        _, info2 = _run(tmp_path)
    assert not marker.exists() and info2.computed == [0]


def _malicious_pickle(marker) -> bytes:
    import io
    import pickle

    class Boom:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    buf = io.BytesIO()
    pickle.dump({"format": "sgdbayes.shard/1", "value": Boom()}, buf)
    return buf.getvalue()


def test_orphan_temporaries_are_removed(tmp_path):
    _, info = _run(tmp_path)
    dead = info.directory / f".shard-000000-1.sgdb.{_host()}.999999999.tmp"  # a pid that cannot be alive
    dead.write_bytes(b"half a shard")
    _run(tmp_path)
    assert not dead.exists()


def _host():
    from sgdbayes.paths import _host as host

    return host()


def test_unwritable_shard_directory_fails_before_any_shard_runs(tmp_path):
    from sgdbayes.cache import CacheError

    blocker = tmp_path / "file"
    blocker.write_text("a file where the shard directory should be")
    log = tmp_path / "log"
    log.mkdir()
    with pytest.raises(CacheError, match="not writable.*SGDBAYES_CACHE_DIR"):
        run_sharded(perceptron_functions, n_shards=2, seed=0, scheduler="sync", cache_dir=blocker, progress=False,
                    params={"n_samples": 10, "log_dir": str(log)})
    assert not list(log.iterdir())  # no shard ran


def test_a_lambda_cannot_be_a_shard_function(tmp_path):
    with pytest.raises(TypeError, match="lambdas and nested functions are not allowed"):
        run_sharded(lambda s: s, n_shards=2, seed=0, scheduler="sync", cache_dir=tmp_path, progress=False)
