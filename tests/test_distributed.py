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
    assert len(list(info.directory.glob("shard-*.pt"))) == N_SHARDS
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
    assert len(list(err.directory.glob("shard-*.pt"))) == N_SHARDS - 2  # the finished ones were kept

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
    assert shard_dir(info.name, {"n_samples": 3, "x": other}, tmp_path) != info.directory


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
    victim = sorted(info.directory.glob("shard-*.pt"))[1]
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.warns(ShardWarning, match="unreadable or corrupt"):
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
