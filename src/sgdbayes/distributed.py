"""Sampling work split into seeded, resumable shards, run on a Dask cluster.

A sampling job — P_SGD runs, prior samples for P_B — is a pure function of a seed: ``shard_fn(shard_seed, **params)``
returns, say, a :class:`~sgdbayes.functions.FunctionCounts`. :func:`run_sharded` gives shard ``k`` the seed
``spawn_seeds(seed, n_shards)[k]`` (numpy ``SeedSequence``: shard k's seed does not depend on ``n_shards``, so raising
``n_shards`` later keeps the shards already done), runs the shards not yet on disk on a Dask cluster, stores each one
atomically **as soon as it finishes**, and merges them in shard order. The merged result is therefore exactly the one
a single process looping over the same seeds would produce, and a run killed half-way (Ctrl-C, a lost node, a
SLURM time limit) resumes from its finished shards. A shard that raises is reported — which shard, which seed, what
error — never dropped: the other shards still finish and are kept, then :class:`ShardError` is raised.

Where the shards run (``scheduler=``):

- ``None``: the scheduler named by ``$SGDBAYES_DASK_SCHEDULER`` (e.g. ``tcp://login1:8786``) if set, else a
  ``LocalCluster`` of worker processes (one thread each, ``n_workers`` ≤ the cores available) started for this call;
- ``"tcp://host:port"`` (any Dask address), a ``distributed.Client``, or a cluster object (``SLURMCluster``, ...);
- ``"local"``: always a fresh ``LocalCluster``; ``"sync"``: in this process, one shard after another (no Dask).

Where the shards are kept: ``<cache_dir>/<name>/<key>/shard-<index>-<seed>.sgdb``, ``key`` being the cache key of
the call ``shard_fn(**params)`` (:func:`sgdbayes.cache.call_key`: the shard function's identity, every parameter and
the fingerprint of the library's code, so editing the library never brings back shards of the old code) together
with the job name; ``cache_dir`` defaults to ``_build/cache/shards`` (``$SGDBAYES_CACHE_DIR/shards`` when set).
``SGDBAYES_CACHE=off`` or ``cache_dir=False`` turns storing off. Shards are written in :mod:`sgdbayes.store`'s
format (no pickle; the payload's SHA-256 is checked before it is decoded, and the header must name this job's key,
the shard's index and its seed), so a corrupt, tampered or foreign file is recomputed with a :class:`ShardWarning`,
never merged. The directory is checked writable before any shard runs, and temporary files of writes that were
killed are removed.

    >>> from sgdbayes.distributed import run_sharded
    >>> counts = run_sharded(sample_prior_functions, n_shards=64, seed=0,
    ...                      params={"n_samples": 10**6, "width": 40})               # doctest: +SKIP

On a SLURM cluster with `dask-jobqueue <https://jobqueue.dask.org>`_ ≥ 0.8 (``pip install dask-jobqueue``), from a login
node or inside an allocation::

    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster
    from sgdbayes.distributed import run_sharded

    cluster = SLURMCluster(
        queue="compute", account="my-project",          # your partition and account
        cores=16, processes=16, memory="64GB",          # per SLURM job: 16 single-threaded worker processes
        walltime="04:00:00",
        job_extra_directives=["--exclusive"],           # any further #SBATCH lines
        job_script_prologue=["source ~/sgdbayes/.venv/bin/activate"],
    )
    cluster.scale(jobs=8)                               # 8 jobs × 16 workers = 128 shards at a time
    client = Client(cluster)
    counts = run_sharded(sample_prior_functions, n_shards=1024, seed=0, params={...}, scheduler=client)

The same without dask-jobqueue: start ``dask scheduler`` on the login node, ``srun dask worker tcp://login1:8786
--nthreads 1`` in a batch job, and run the notebook or CLI with ``SGDBAYES_DASK_SCHEDULER=tcp://login1:8786``. The shard
directory must be on a file system the *client* can write (workers only return results; the client stores them).
"""

from __future__ import annotations

import hashlib
import os
import traceback
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sgdbayes import store
from sgdbayes.cache import CacheError, ResultCache, call_key
from sgdbayes.paths import (atomic_write_bytes, cache_dir as default_cache_dir, check_writable_dir,
                            remove_orphan_temporaries)
from sgdbayes.seed import spawn_seeds

__all__ = [
    "ENV_SCHEDULER",
    "ShardError",
    "ShardFailure",
    "ShardRunInfo",
    "ShardWarning",
    "available_cores",
    "run_sharded",
    "shard_dir",
]

ENV_SCHEDULER = "SGDBAYES_DASK_SCHEDULER"
_FORMAT = "sgdbayes.shard/2"
_SCATTER_BYTES = 1 << 20  # tensors/arrays in params larger than this are sent to the workers once, not per task


class ShardWarning(UserWarning):
    """A stored shard was unreadable or did not match its job and is recomputed."""


@dataclass(frozen=True)
class ShardFailure:
    """One shard that raised: its index, its seed, the exception's type and message, and the worker's traceback."""

    index: int
    seed: int
    error: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"shard {self.index} (seed {self.seed}): {self.error}"


class ShardError(RuntimeError):
    """Some shards raised. ``failures`` lists them; the shards that finished are stored, so calling again with the
    same arguments reruns only the failed ones."""

    def __init__(self, name: str, failures: Sequence[ShardFailure], n_shards: int, n_done: int, directory: Path | None):
        self.failures = list(failures)
        self.n_shards, self.n_done, self.directory = n_shards, n_done, directory
        listing = "\n".join(f"  - {f}" for f in self.failures[:20])
        more = f"\n  ... and {len(self.failures) - 20} more" if len(self.failures) > 20 else ""
        kept = (f"The {n_done} finished shards are stored in {directory}; calling run_sharded again with the same "
                "arguments reruns only the missing ones." if directory is not None else
                "Shard storing is off, so nothing was kept.")
        first_tb = f"\nTraceback of shard {self.failures[0].index}:\n{self.failures[0].traceback}" \
            if self.failures and self.failures[0].traceback else ""
        super().__init__(f"{len(self.failures)} of {n_shards} shards of job {name!r} failed:\n{listing}{more}\n"
                         f"{kept}{first_tb}")


@dataclass
class ShardRunInfo:
    """What a :func:`run_sharded` call did: shard indices ``computed`` now and ``reused`` from disk, the shard
    ``seeds``, the shard ``directory`` (None when storing is off) and the ``scheduler`` address used."""

    name: str
    key: str
    seeds: list[int]
    computed: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    directory: Path | None = None
    scheduler: str = ""


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _job_name(shard_fn: Callable[..., Any]) -> str:
    module = getattr(shard_fn, "__module__", None) or "unknown"
    qualname = getattr(shard_fn, "__qualname__", None) or type(shard_fn).__name__
    return f"{module}.{qualname}"


def job_key(shard_fn: Callable[..., Any], name: str, params: Mapping[str, Any]) -> str:
    """The key of a sharded job: the cache key of ``shard_fn(**params)`` (code included) and the job's name."""
    code_and_args = call_key(shard_fn, (0,), dict(params))  # the shard seed is bound to a placeholder
    return hashlib.sha256(f"{_FORMAT}\0{name}\0{code_and_args}".encode()).hexdigest()


def shard_dir(shard_fn: Callable[..., Any], params: Mapping[str, Any], cache_dir: str | os.PathLike | None = None,
              name: str | None = None) -> Path:
    """The directory holding the shards of ``shard_fn`` with ``params`` (see the module docstring)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "shards"
    name = name or _job_name(shard_fn)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]
    return root / safe / job_key(shard_fn, name, params)


def _shard_path(directory: Path, index: int, seed: int) -> Path:
    return directory / f"shard-{index:06d}-{seed}.sgdb"


def _load_shard(path: Path, key: str, index: int, seed: int) -> tuple[bool, Any]:
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return False, None
    except OSError as err:
        warnings.warn(f"stored shard {path} cannot be read ({err}); recomputing it", ShardWarning, stacklevel=3)
        return False, None
    try:
        return True, store.loads(data, job_format=_FORMAT, key=key, index=index, seed=seed)
    except store.StoreError as err:
        warnings.warn(f"stored shard {path} is corrupt or not this job's ({err}); recomputing it", ShardWarning,
                      stacklevel=3)
        return False, None


def _store_shard(path: Path, key: str, index: int, seed: int, value: Any) -> None:
    atomic_write_bytes(path, store.dumps(value, job_format=_FORMAT, key=key, index=index, seed=seed))


def _run_one(shard_fn: Callable[..., Any], seed: int, params: Mapping[str, Any]) -> Any:
    return shard_fn(seed, **params)


def _failure(index: int, seed: int, err: BaseException, tb: Any = None) -> ShardFailure:
    if tb is None:
        tb = err.__traceback__
    text = "".join(traceback.format_exception(type(err), err, tb)) if tb is not None else ""
    return ShardFailure(index=index, seed=seed, error=f"{type(err).__name__}: {err}", traceback=text)


def _default_merge(results: list[Any]) -> Any:
    from sgdbayes.functions import FunctionCounts

    if results and all(isinstance(r, FunctionCounts) for r in results):
        return FunctionCounts.merge_all(results)
    return results


def _big(value: Any) -> bool:
    nbytes = getattr(value, "nbytes", None)
    if nbytes is None and isinstance(value, torch.Tensor):
        nbytes = value.element_size() * value.numel()
    return isinstance(nbytes, int) and nbytes > _SCATTER_BYTES


def _connect(scheduler: Any, n_workers: int | None, n_pending: int, processes: bool):
    """``(client, owned_objects, address)``: a Dask client for ``scheduler``; objects we started are closed later."""
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, [], str(getattr(scheduler.scheduler, "address", scheduler))
    if scheduler is not None and hasattr(scheduler, "scheduler_address"):  # a cluster object (SLURMCluster, ...)
        client = Client(scheduler)
        return client, [client], scheduler.scheduler_address
    if scheduler is None:
        scheduler = os.environ.get(ENV_SCHEDULER) or "local"
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be None, a str, a distributed.Client or a cluster object, "
                        f"got {type(scheduler).__name__}")
    if scheduler == "local":
        cores = available_cores()
        workers = min(cores, n_pending) if n_workers is None else n_workers
        if workers > cores:
            warnings.warn(f"n_workers={workers} exceeds the {cores} available cores; workers will compete for them",
                          stacklevel=4)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                               dashboard_address=":0")  # any free port: never clashes with another cluster
        client = Client(cluster)
        return client, [client, cluster], cluster.scheduler_address
    if "://" not in scheduler:
        raise ValueError(f"scheduler {scheduler!r} is not understood; allowed: None, 'local', 'sync', a Dask address "
                         "such as 'tcp://host:8786', a distributed.Client or a cluster object")
    try:
        client = Client(scheduler, timeout="30s")
    except OSError as err:
        raise ConnectionError(f"cannot reach the Dask scheduler at {scheduler} ({err}); is it running? "
                              f"(set by the scheduler argument or ${ENV_SCHEDULER})") from err
    return client, [client], scheduler


def run_sharded(
    shard_fn: Callable[..., Any],
    *,
    n_shards: int,
    seed: int,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    merge: Callable[[list[Any]], Any] | None = None,
    scheduler: Any = None,
    n_workers: int | None = None,
    processes: bool = True,
    cache_dir: str | os.PathLike | None | bool = None,
    retries: int = 0,
    progress: bool = True,
    return_info: bool = False,
) -> Any:
    """Run ``shard_fn(seed_k, **params)`` for k = 0 … n_shards − 1, resumably, and merge the results.

    Args:
        shard_fn: a picklable function (defined at module top level) of ``(shard_seed: int, **params)``; it must be
            deterministic in its seed. Usually returns a :class:`~sgdbayes.functions.FunctionCounts`.
        n_shards: number of shards (≥ 1). ``seed``: the job's root seed (≥ 0); shard k gets
            ``sgdbayes.seed.spawn_seeds(seed, n_shards)[k]``.
        params: keyword arguments of ``shard_fn``; with the function's code and ``name`` they key the stored shards
            (:func:`sgdbayes.cache.call_key`: numbers, strings, lists, dicts, arrays, tensors, dataclasses).
            Arrays/tensors over 1 MiB are sent to the workers once.
        name: job name for the shard store's folder (default: ``shard_fn``'s module and qualified name); part of
            the key too.
        merge: combines the list of shard results **in shard order**. Default: ``FunctionCounts.merge_all`` when
            every shard returned a FunctionCounts, else the list itself.
        scheduler: where to run (see the module docstring): None, ``"local"``, ``"sync"``, a Dask address, a
            ``Client`` or a cluster object.
        n_workers, processes: for a local cluster: workers (default ``min(cores, shards to run)``), processes or
            threads.
        cache_dir: root of the shard store (default ``_build/cache/shards``); ``False`` stores nothing.
        retries: times Dask retries a failed shard (e.g. on a lost worker) before it counts as failed.
        progress: show a tqdm bar over shards.
        return_info: also return a :class:`ShardRunInfo` (``(merged, info)``).

    Raises:
        ShardError: one or more shards raised (after all others finished and were stored).
        CacheError: the shard directory is not writable (raised before any shard runs).
        TypeError: ``shard_fn`` is a lambda, a closure or defined in ``__main__`` (its code could not be part of
            the key), or a parameter cannot be keyed.
    """
    if not callable(shard_fn):
        raise TypeError(f"shard_fn must be callable, got {type(shard_fn).__name__}")
    n_shards = _check_int("n_shards", n_shards, 1)
    seed = _check_int("seed", seed, 0)
    retries = _check_int("retries", retries, 0)
    if n_workers is not None:
        _check_int("n_workers", n_workers, 1)
    params = dict(params or {})
    if "seed" in params:
        raise ValueError("params must not contain 'seed': the shard seed is passed to shard_fn as its first argument")
    name = name or _job_name(shard_fn)
    key = job_key(shard_fn, name, params)
    seeds = spawn_seeds(seed, n_shards)

    storing = cache_dir is not False and ResultCache().enabled  # honours SGDBAYES_CACHE=off
    directory = shard_dir(shard_fn, params, None if cache_dir in (None, True) else cache_dir, name=name) \
        if storing else None
    info = ShardRunInfo(name=name, key=key, seeds=seeds, directory=directory)

    results: dict[int, Any] = {}
    if directory is not None:
        problem = check_writable_dir(directory)  # fail now, not after hours of work
        if problem:
            raise CacheError(
                f"the shard directory {directory} is not writable ({problem}). Fix: set SGDBAYES_CACHE_DIR to a "
                "writable directory (shards go to its 'shards' folder), pass cache_dir=... to run_sharded, or "
                "SGDBAYES_CACHE=off to run without storing shards (nothing is then resumable).")
        remove_orphan_temporaries(directory)
        for k, s in enumerate(seeds):
            hit, value = _load_shard(_shard_path(directory, k, s), key, k, s)
            if hit:
                results[k] = value
                info.reused.append(k)
    pending = [k for k in range(n_shards) if k not in results]

    from tqdm.auto import tqdm

    failures: list[ShardFailure] = []
    bar = tqdm(total=n_shards, initial=len(results), desc=name.rsplit(".", 1)[-1], unit="shard",
               disable=not progress or not pending)

    def finished(k: int, value: Any) -> None:
        if directory is not None:
            _store_shard(_shard_path(directory, k, seeds[k]), key, k, seeds[k], value)
        results[k] = value
        info.computed.append(k)
        bar.update(1)

    try:
        if pending and scheduler == "sync":
            info.scheduler = "sync"
            for k in pending:
                try:
                    value = _run_one(shard_fn, seeds[k], params)
                except Exception as err:  # noqa: BLE001 - reported below with shard and seed
                    failures.append(_failure(k, seeds[k], err))
                    continue
                finished(k, value)
        elif pending:
            from distributed import as_completed

            client, owned, info.scheduler = _connect(scheduler, n_workers, len(pending), processes)
            futures: list[Any] = []
            try:
                task_params = dict(params)
                big = {p: v for p, v in params.items() if _big(v)}
                if big:
                    task_params.update(client.scatter(big, broadcast=True, hash=False))
                token = uuid.uuid4().hex[:8]
                futures = [client.submit(_run_one, shard_fn, seeds[k], task_params, retries=retries, pure=False,
                                         key=f"{name.rsplit('.', 1)[-1]}-shard-{k}-{token}") for k in pending]
                index_of = {f.key: k for f, k in zip(futures, pending, strict=True)}
                for future in as_completed(futures):
                    k = index_of[future.key]
                    if future.status == "finished":
                        finished(k, future.result())
                    else:
                        try:
                            err, tb = future.exception(), future.traceback()
                        except Exception as lost:  # noqa: BLE001 - e.g. the scheduler went away
                            err, tb = lost, None
                        if err is None:
                            err = RuntimeError(f"task ended with status {future.status!r}")
                        failures.append(_failure(k, seeds[k], err, tb))
                    future.release()
            finally:
                for f in futures:
                    if not f.done():
                        f.cancel()
                for obj in owned:
                    obj.close()
    finally:
        bar.close()

    if failures:
        failures.sort(key=lambda f: f.index)
        raise ShardError(name, failures, n_shards, len(results), directory)
    ordered = [results[k] for k in range(n_shards)]
    merged = (merge or _default_merge)(ordered)
    return (merged, info) if return_info else merged
