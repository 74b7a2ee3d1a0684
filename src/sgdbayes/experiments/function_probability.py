"""Chapter 1 (Mingard et al. 2020): P_SGD(f|S) from many training runs, P_B(f|S) by EP and by direct sampling,
and the statistics that compare them.

The steps the chapter calls, each a thin, tested composition of the library:

- :func:`train_functions`: ``n_networks`` fully connected nets trained by :func:`sgdbayes.ensembles.train_ensemble`
  to 100% training accuracy, in seeded shards run by :func:`sgdbayes.distributed.run_sharded` (each shard stored on
  disk as it finishes, so a killed build resumes) → a :class:`TrainingRun`: the :class:`FunctionCounts` of the
  *fitted* networks' labellings of E, and how many networks never fitted, diverged or lost the fit while
  overtraining (reported, never counted).
- :func:`prior_functions`: the same for networks sampled from the parameter prior and kept when they fit S
  (:func:`sgdbayes.prior_sampling.sample_prior_shard`) → a :class:`PriorRun` whose counts estimate P_B(f|S).
- :func:`ep_log_pb`: log P_B(f|S) by EP on the NNGP kernel (:func:`sgdbayes.gp.log_pb`) for every function in one or
  more FunctionCounts → a :class:`PBTable` (looked up by labelling).
- :func:`ep_marginals`: EP's posterior marginals P_B(f_j = 1 | S) on each test input, hence the expected test error
  of a posterior sample over *all* functions (not only those SGD found) and the error of the posterior-majority
  labelling.
- :func:`gp_exact_functions` / :func:`gp_posterior_marginals`: the GP posterior that EP approximates, sampled exactly
  (rejection, while P(S) is not tiny) or by elliptical slice sampling (any |S|) — to tell EP's error apart from the
  finite width of the network.
- :func:`headline_statistics`, :func:`settings_table`, :func:`error_distribution`, :func:`lz_of_functions`.

Probabilities: P_SGD(f|S) = count(f)/(networks counted); logs are natural unless a name says ``log10``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sgdbayes.distributed import ENV_SCHEDULER, run_sharded
from sgdbayes.functions import FunctionCounts, as_bits

__all__ = [
    "EPMarginals", "PBTable", "PriorRun", "TrainingRun", "ep_log_pb", "ep_marginals", "error_distribution",
    "gp_exact_functions", "gp_posterior_marginals", "headline_statistics", "nngp_matrix",
    "lz_of_functions", "merge_training_runs", "prior_functions", "resolve_scheduler", "settings_table",
    "train_functions", "train_shard",
]

# --------------------------------------------------------------------------------------------------------------------
# where shards run
# --------------------------------------------------------------------------------------------------------------------
def resolve_scheduler(scheduler: str | None = "auto") -> str:
    """The scheduler for :func:`sgdbayes.distributed.run_sharded`.

    ``"auto"`` (or None) → ``$SGDBAYES_DASK_SCHEDULER`` when set (``sgdbayes run --scheduler tcp://…`` sets it), else
    ``"sync"`` (shards one after another in this process: no cluster start-up cost on a small machine). ``"sync"``,
    ``"local"`` (a fresh Dask ``LocalCluster``) and Dask addresses (``"tcp://host:8786"``) are returned as they are.
    """
    if scheduler is None or scheduler == "auto":
        return os.environ.get(ENV_SCHEDULER) or "sync"
    if isinstance(scheduler, str) and (scheduler in ("sync", "local") or "://" in scheduler):
        return scheduler
    raise ValueError(f"scheduler must be 'auto', 'sync', 'local' or a Dask address such as 'tcp://host:8786', "
                     f"got {scheduler!r}")


def _np32(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [n, d], got shape {arr.shape}")
    return arr


def _labels01(y: Any, n: int) -> np.ndarray:
    bits = as_bits(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y, n, name="y_train")[0]
    return bits.astype(np.int64)


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _shards(total: int, shard_size: int, what: str) -> tuple[int, int]:
    """``(n_shards, per_shard)``: equal shards of ``min(shard_size, total)``; ``n_shards·per_shard`` ≥ ``total``
    (rounded up to whole shards, so that raising ``total`` later reuses every finished shard)."""
    total = _check_positive(what, total)
    per = min(_check_positive("shard_size", shard_size), total)
    return math.ceil(total / per), per


# --------------------------------------------------------------------------------------------------------------------
# P_SGD: training runs
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class TrainingRun:
    """Outcome of many training runs on one (S, E).

    ``counts``: labellings of E by the networks that fitted S (and still fit it after any overtraining), the
    estimate of P_SGD(f|S). ``n_networks`` = ``n_fitted + n_not_fitted + n_diverged``; ``n_lost_fit`` of the
    ``n_fitted`` dropped below 100% training accuracy while overtraining and are not in ``counts``.
    ``epochs_hist[e]``: networks that first fitted after ``e`` epochs. ``seconds``: training time summed over shards.
    """

    counts: FunctionCounts
    n_networks: int
    n_fitted: int
    n_not_fitted: int
    n_diverged: int
    n_lost_fit: int
    epochs_hist: np.ndarray
    seconds: float
    config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_fitted + self.n_not_fitted + self.n_diverged != self.n_networks:
            raise ValueError(f"inconsistent TrainingRun: {self.n_fitted} fitted + {self.n_not_fitted} not fitted + "
                             f"{self.n_diverged} diverged != {self.n_networks} networks")
        if self.counts.total != self.n_fitted - self.n_lost_fit:
            raise ValueError(f"inconsistent TrainingRun: {self.counts.total} counted functions != {self.n_fitted} "
                             f"fitted − {self.n_lost_fit} that lost the fit")

    @property
    def n_counted(self) -> int:
        return self.counts.total

    @property
    def mean_epochs_to_fit(self) -> float:
        n = self.epochs_hist.sum()
        return float((np.arange(self.epochs_hist.size) * self.epochs_hist).sum() / n) if n else float("nan")

    def summary(self) -> dict[str, Any]:
        return {"networks": self.n_networks, "fitted": self.n_fitted, "not fitted": self.n_not_fitted,
                "diverged": self.n_diverged, "lost fit": self.n_lost_fit, "counted": self.n_counted,
                "mean epochs to fit": self.mean_epochs_to_fit, "distinct functions": self.counts.n_distinct}


def merge_training_runs(runs: Sequence[TrainingRun]) -> TrainingRun:
    """Exact merge of shards (counts added, failures added, epoch histograms added)."""
    runs = list(runs)
    if not runs:
        raise ValueError("merge_training_runs needs at least one TrainingRun")
    width = max(r.epochs_hist.size for r in runs)
    hist = np.zeros(width, dtype=np.int64)
    for r in runs:
        hist[:r.epochs_hist.size] += r.epochs_hist
    return TrainingRun(counts=FunctionCounts.merge_all([r.counts for r in runs]),
                       n_networks=sum(r.n_networks for r in runs), n_fitted=sum(r.n_fitted for r in runs),
                       n_not_fitted=sum(r.n_not_fitted for r in runs), n_diverged=sum(r.n_diverged for r in runs),
                       n_lost_fit=sum(r.n_lost_fit for r in runs), epochs_hist=hist,
                       seconds=sum(r.seconds for r in runs), config=dict(runs[0].config))


def train_shard(seed: int, *, x_train, y_train, x_test, n_networks: int, hidden: Sequence[int] = (40, 40),
                sigma_w: float = 1.0, sigma_b: float = 1.0, optimizer: str = "sgd", lr: float | None = None,
                optimizer_kwargs: dict | None = None, loss: str = "ce", batch_size: int | None = 8,
                max_epochs: int = 2000, overtrain_epochs: int = 0, device: str = "auto") -> TrainingRun:
    """One shard (top level and picklable, for Dask): ``n_networks`` FCNs ``d → hidden → 1`` (ReLU, prior
    initialisation with ``sigma_w, sigma_b``) trained on (x_train ``[n, d]``, y_train ``[n]`` in {0,1}) with
    :func:`sgdbayes.ensembles.train_ensemble` seeded by ``seed``; their labellings of x_test ``[|E|, d]``."""
    from sgdbayes.device import get_device
    from sgdbayes.ensembles import FCN, train_ensemble

    x_train, x_test = _np32(x_train, "x_train"), _np32(x_test, "x_test")
    dev = get_device(device)
    model = FCN(x_train.shape[1], tuple(hidden), sigma_w=sigma_w, sigma_b=sigma_b)
    res = train_ensemble(model, torch.from_numpy(x_train).to(dev), torch.as_tensor(np.asarray(y_train)).to(dev),
                         torch.from_numpy(x_test).to(dev), n_networks=n_networks, seed=int(seed),
                         optimizer=optimizer, lr=lr, optimizer_kwargs=optimizer_kwargs, loss=loss,
                         batch_size=batch_size, max_epochs=max_epochs, overtrain_epochs=overtrain_epochs,
                         device=dev, progress=False)
    c = res.counts()
    counts = res.function_counts(require_final_fit=True)
    fit_epochs = res.epochs_to_fit[res.fitted]
    hist = np.bincount(fit_epochs, minlength=1).astype(np.int64) if fit_epochs.size else np.zeros(1, np.int64)
    return TrainingRun(counts=counts, n_networks=res.n_networks, n_fitted=c["fitted"], n_not_fitted=c["not_fitted"],
                       n_diverged=c["diverged"], n_lost_fit=c["fitted"] - counts.total, epochs_hist=hist,
                       seconds=res.wall_time_s, config=dict(res.config))


def train_functions(x_train, y_train, x_test, *, n_networks: int, seed: int = 0, shard_size: int = 2000,
                    scheduler: str | None = "auto", name: str = "function_probability.sgd", progress: bool = True,
                    **train_kwargs) -> TrainingRun:
    """P_SGD(f|S): train ``n_networks`` (rounded up to whole shards of ``shard_size``) networks, sharded and resumable.

    ``train_kwargs`` are those of :func:`train_shard` (hidden, sigma_w, sigma_b, optimizer, lr, optimizer_kwargs,
    loss, batch_size, max_epochs, overtrain_epochs, device). Shards are stored under ``name`` keyed by all
    parameters; ``scheduler`` as in :func:`resolve_scheduler`.
    """
    n_shards, per = _shards(n_networks, shard_size, "n_networks")
    x_train, x_test = _np32(x_train, "x_train"), _np32(x_test, "x_test")
    if x_test.shape[1] != x_train.shape[1]:
        raise ValueError(f"x_test has {x_test.shape[1]} features but x_train has {x_train.shape[1]}")
    y = _labels01(y_train, x_train.shape[0])
    unknown = set(train_kwargs) - {"hidden", "sigma_w", "sigma_b", "optimizer", "lr", "optimizer_kwargs", "loss",
                                   "batch_size", "max_epochs", "overtrain_epochs", "device"}
    if unknown:
        raise TypeError(f"train_functions got unknown keyword(s) {sorted(unknown)}")
    if "hidden" in train_kwargs:
        train_kwargs["hidden"] = [int(h) for h in train_kwargs["hidden"]]
    params = {"x_train": x_train, "y_train": y, "x_test": x_test, "n_networks": per, **train_kwargs}
    return run_sharded(train_shard, n_shards=n_shards, seed=seed, params=params, name=name,
                       merge=merge_training_runs, scheduler=resolve_scheduler(scheduler), progress=progress)


# --------------------------------------------------------------------------------------------------------------------
# P_B by direct sampling
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class PriorRun:
    """Networks sampled from the prior: ``counts`` of the labellings of E among the ``counts.total`` of
    ``n_sampled`` that fit S. P_B(f|S) ≈ count(f)/n_consistent."""

    counts: FunctionCounts
    n_sampled: int

    @property
    def n_consistent(self) -> int:
        return self.counts.total

    @property
    def p_train(self) -> float:
        """Monte-Carlo estimate of P(S), the prior probability of the training labels."""
        return self.n_consistent / self.n_sampled

    def log_pb(self, functions) -> tuple[np.ndarray, np.ndarray]:
        """``(log P_B, relative standard error)`` of each function (FunctionCounts rows or bits ``[m, |E|]``):
        ``log(count/n_consistent)`` (−inf when never sampled) and the binomial √((1−p)/(n p)) (inf when unseen)."""
        from sgdbayes.prior_sampling import PriorSamples

        return PriorSamples(self.counts, self.n_sampled, self.n_consistent).log_pb(functions)


def prior_functions(x_train, y_train, x_test, *, n_samples: int, seed: int = 0, shard_size: int = 1_000_000,
                    scheduler: str | None = "auto", name: str = "function_probability.prior", progress: bool = True,
                    widths: Sequence[int] = (40, 40), sigma_w: float = 1.0, sigma_b: float = 1.0,
                    device: str = "auto") -> PriorRun:
    """P_B(f|S) by direct sampling of ``n_samples`` (rounded up to whole shards) prior networks, sharded, resumable."""
    from sgdbayes.prior_sampling import sample_prior_shard

    n_shards, per = _shards(n_samples, shard_size, "n_samples")
    x_train, x_test = _np32(x_train, "x_train"), _np32(x_test, "x_test")
    y = _labels01(y_train, x_train.shape[0])
    params = {"x_train": x_train, "y_train": y, "x_test": x_test, "n_samples": per, "widths": [int(w) for w in widths],
              "sigma_w": float(sigma_w), "sigma_b": float(sigma_b), "device": device}
    counts = run_sharded(sample_prior_shard, n_shards=n_shards, seed=seed, params=params, name=name,
                         scheduler=resolve_scheduler(scheduler), progress=progress)
    return PriorRun(counts=counts, n_sampled=n_shards * per)


# --------------------------------------------------------------------------------------------------------------------
# P_B by EP
# --------------------------------------------------------------------------------------------------------------------
def _void(keys: np.ndarray) -> np.ndarray:
    keys = np.ascontiguousarray(keys)
    return keys.view(np.dtype((np.void, keys.shape[1]))).reshape(keys.shape[0])


@dataclass
class PBTable:
    """log P_B(f|S) (natural log) of a set of labellings of E, looked up by labelling.

    ``keys``: packed functions ``uint8 [k, ⌈|E|/8⌉]`` (sorted); ``log_pb [k]`` (NaN where EP failed, see
    ``n_failed``); ``method``: the :func:`sgdbayes.gp.log_pb` form used; ``seconds``: EP time."""

    n_bits: int
    keys: np.ndarray
    log_pb: np.ndarray
    method: str
    n_failed: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.keys = np.ascontiguousarray(self.keys, dtype=np.uint8)
        self.log_pb = np.asarray(self.log_pb, dtype=np.float64)
        if self.keys.ndim != 2 or self.keys.shape[1] != (self.n_bits + 7) // 8 or self.log_pb.shape != (len(self),):
            raise ValueError(f"PBTable needs keys uint8 [k, {(self.n_bits + 7) // 8}] and log_pb [k], got "
                             f"{self.keys.shape} and {self.log_pb.shape}")
        order = np.argsort(_void(self.keys), kind="stable")  # lookup needs sorted keys
        self.keys, self.log_pb = np.ascontiguousarray(self.keys[order]), self.log_pb[order]

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def merge(self, other: PBTable) -> PBTable:
        """A table holding the functions of both (where both hold a function, ``self``'s value unless it is NaN)."""
        if not isinstance(other, PBTable) or other.n_bits != self.n_bits:
            raise ValueError("can only merge a PBTable with the same n_bits")
        keys = np.concatenate([self.keys, other.keys])
        vals = np.concatenate([self.log_pb, other.log_pb])
        # priority among equal keys: self's valid value (0), then other's valid value (1), then NaN (2)
        priority = np.where(np.isnan(vals), 2, np.concatenate([np.zeros(len(self), int), np.ones(len(other), int)]))
        _, rank = np.unique(_void(keys), return_inverse=True)
        order = np.lexsort((priority, rank.ravel()))
        keys, vals = keys[order], vals[order]
        v = _void(keys)
        first = np.concatenate(([True], v[1:] != v[:-1])) if len(v) else np.zeros(0, bool)
        keys, vals = np.ascontiguousarray(keys[first]), vals[first]
        methods = self.method if self.method == other.method else f"{self.method}+{other.method}"
        return PBTable(n_bits=self.n_bits, keys=keys, log_pb=vals, method=methods,
                       n_failed=int(np.isnan(vals).sum()), seconds=self.seconds + other.seconds)

    def lookup(self, functions) -> np.ndarray:
        """log P_B of each function (FunctionCounts rows in their order, or bits ``[m, |E|]``); NaN if not in the
        table."""
        keys = functions.keys if isinstance(functions, FunctionCounts) else np.packbits(
            as_bits(functions, self.n_bits), axis=1)
        if isinstance(functions, FunctionCounts) and functions.n_bits != self.n_bits:
            raise ValueError(f"functions have {functions.n_bits} bits, the table {self.n_bits}")
        out = np.full(keys.shape[0], np.nan)
        if len(self) == 0 or keys.shape[0] == 0:
            return out
        table, query = _void(self.keys), _void(keys)
        pos = np.clip(np.searchsorted(table, query), 0, len(self) - 1)
        found = table[pos] == query
        out[found] = self.log_pb[pos[found]]
        return out


def _union_keys(functions, min_count: int) -> tuple[int, np.ndarray]:
    """Sorted distinct packed keys of all functions with count ≥ min_count in any of the FunctionCounts."""
    if isinstance(functions, FunctionCounts):
        functions = [functions]
    functions = list(functions)
    if not functions or not all(isinstance(f, FunctionCounts) for f in functions):
        raise TypeError("functions must be a FunctionCounts or a non-empty iterable of them")
    n_bits = functions[0].n_bits
    if any(f.n_bits != n_bits for f in functions):
        raise ValueError(f"all FunctionCounts must have the same n_bits, got {[f.n_bits for f in functions]}")
    keys = np.concatenate([f.keys[f.counts >= min_count] for f in functions])
    if keys.shape[0] == 0:
        return n_bits, keys
    v = _void(keys)
    _, first = np.unique(v, return_index=True)  # sorted by key
    return n_bits, np.ascontiguousarray(keys[first])


def ep_log_pb(x_train, y_train, x_test, functions: FunctionCounts | Iterable[FunctionCounts], *, depth: int = 2,
              sigma_w: float = 1.0, sigma_b: float = 1.0, method: str = "full", min_count: int = 1,
              chunk: int = 256, cache: bool = True, **ep_kwargs) -> PBTable:
    """log P_B(f|S) by EP (step likelihood) on the NNGP kernel of a ``depth``-hidden-layer ReLU FCN, for every
    distinct function seen at least ``min_count`` times in ``functions`` (one FunctionCounts or several: their union).

    K = ``nngp_fcn([x_train; x_test], depth, sigma_w, sigma_b)`` (float64), y = 2·y_train − 1; the functions are sent
    to :func:`sgdbayes.gp.log_pb` ``chunk`` at a time with ``method`` (``"full"``: log Z(S ∪ (E,f)) − log Z(S);
    ``"two_stage"``: cheaper, see there). A chunk whose EP does not converge is redone one function at a time; a
    function that still fails gets NaN and is counted in ``n_failed`` (never silently dropped). Cached on disk by all
    inputs when ``cache``.
    """
    from sgdbayes.cache import cached
    from sgdbayes.gp import EPConvergenceError, log_pb

    x_train, x_test = _np32(x_train, "x_train"), _np32(x_test, "x_test")
    y = _labels01(y_train, x_train.shape[0])
    n_bits, keys = _union_keys(functions, _check_positive("min_count", min_count))
    if n_bits != x_test.shape[0]:
        raise ValueError(f"functions have {n_bits} bits but x_test has {x_test.shape[0]} rows")
    chunk = _check_positive("chunk", chunk)

    def compute() -> PBTable:
        t0 = time.perf_counter()
        K = nngp_matrix(x_train, x_test, depth=depth, sigma_w=sigma_w, sigma_b=sigma_b)
        y_pm = torch.from_numpy(2.0 * y - 1.0)
        f_all = torch.from_numpy(np.where(np.unpackbits(keys, axis=1, count=n_bits), 1.0, -1.0))
        out = np.full(keys.shape[0], np.nan)
        for a in range(0, keys.shape[0], chunk):
            f = f_all[a:a + chunk]
            try:
                out[a:a + f.shape[0]] = log_pb(K, y_pm, f, method=method, likelihood="step", **ep_kwargs).numpy()
            except EPConvergenceError:
                for i in range(f.shape[0]):
                    try:
                        out[a + i] = float(log_pb(K, y_pm, f[i:i + 1], method=method, likelihood="step",
                                                  **ep_kwargs)[0])
                    except EPConvergenceError:
                        pass
        return PBTable(n_bits=n_bits, keys=keys, log_pb=out, method=method, n_failed=int(np.isnan(out).sum()),
                       seconds=time.perf_counter() - t0)

    if not cache:
        return compute()
    params = {"x_train": x_train, "y_train": y, "x_test": x_test, "keys": keys, "depth": int(depth),
              "sigma_w": float(sigma_w), "sigma_b": float(sigma_b), "method": method, "ep": dict(ep_kwargs)}
    return cached("function_probability.ep_log_pb", params, compute)


def nngp_matrix(x_train, x_test, *, depth: int, sigma_w: float, sigma_b: float) -> torch.Tensor:
    """NNGP kernel (ReLU FCN with ``depth`` hidden layers) over ``[x_train; x_test]``, float64 ``[n_S + n_E]²``."""
    from sgdbayes.kernels import nngp_fcn

    x = torch.from_numpy(np.concatenate([_np32(x_train, "x_train"), _np32(x_test, "x_test")])).double()
    return nngp_fcn(x, depth=int(depth), sigma_w=float(sigma_w), sigma_b=float(sigma_b))


@dataclass
class EPMarginals:
    """EP's posterior on E under the 0–1 likelihood: ``q(f_E | S) = N(mu, cov)`` and ``marginals[j]`` =
    P_B(f_j = 1 | S) = Φ(μ_j/σ_j) (the step likelihood of a point is the indicator of its sign)."""

    mu: np.ndarray
    var: np.ndarray
    marginals: np.ndarray

    def expected_error(self, y_test) -> float:
        """Mean fraction of E misclassified by a function drawn from P_B: (1/|E|) Σ_j P_B(f_j ≠ y_j | S), an
        expectation over *all* functions (exact for the EP posterior; no enumeration)."""
        yt = _labels01(y_test, self.marginals.size).astype(bool)
        return float(np.where(yt, 1 - self.marginals, self.marginals).mean())

    def majority_error(self, y_test) -> float:
        """Test error of the labelling that takes each point's more probable label (the posterior-mean classifier)."""
        yt = _labels01(y_test, self.marginals.size).astype(bool)
        return float(np.mean((self.marginals > 0.5) != yt))


def ep_marginals(x_train, y_train, x_test, *, depth: int = 2, sigma_w: float = 1.0, sigma_b: float = 1.0
                 ) -> EPMarginals:
    """EP (step likelihood) on S, then the predictive ``N(μ_E, Σ_E)`` (GPML eqs. 3.60–3.61) and its marginals."""
    from scipy.special import ndtr

    from sgdbayes.gp import ep
    from sgdbayes.gp.log_pb import predictive

    K = nngp_matrix(x_train, x_test, depth=depth, sigma_w=sigma_w, sigma_b=sigma_b)
    n_s = _np32(x_train, "x_train").shape[0]
    y = torch.from_numpy(2.0 * _labels01(y_train, n_s) - 1.0)
    r = ep(K[:n_s, :n_s], y, likelihood="step")
    mu, cov = predictive(K[:n_s, :n_s], K[:n_s, n_s:], K[n_s:, n_s:], r.tau, r.nu)
    mu, var = mu.numpy(), cov.diagonal().numpy()
    return EPMarginals(mu=mu, var=var, marginals=ndtr(mu / np.sqrt(var)))


def gp_exact_functions(x_train, y_train, x_test, *, n_samples: int, depth: int = 2, sigma_w: float = 1.0,
                       sigma_b: float = 1.0, seed: int = 0, cache: bool = True):
    """P_B(f|S) of the NNGP itself (no EP, no finite width) by i.i.d. rejection sampling of the GP
    (:func:`sgdbayes.gp.sampling.sample_gp_rejection`); cached. Usable while P(S)·n_samples is not tiny."""
    from sgdbayes.cache import cached
    from sgdbayes.gp.sampling import sample_gp_rejection

    x_train, x_test = _np32(x_train, "x_train"), _np32(x_test, "x_test")
    y = _labels01(y_train, x_train.shape[0])
    _check_positive("n_samples", n_samples)

    def compute():
        K = nngp_matrix(x_train, x_test, depth=depth, sigma_w=sigma_w, sigma_b=sigma_b)
        return sample_gp_rejection(K, torch.from_numpy(2.0 * y - 1.0), n_samples=int(n_samples), seed=int(seed))

    if not cache:
        return compute()
    params = {"x_train": x_train, "y_train": y, "x_test": x_test, "n_samples": int(n_samples), "depth": int(depth),
              "sigma_w": float(sigma_w), "sigma_b": float(sigma_b), "seed": int(seed)}
    return cached("function_probability.gp_rejection", params, compute)


def gp_posterior_marginals(x_train, y_train, x_test, *, depth: int = 2, sigma_w: float = 1.0, sigma_b: float = 1.0,
                           n_chains: int = 128, n_steps: int = 500, burn_in: int = 200, seed: int = 0,
                           cache: bool = True):
    """The NNGP posterior under the 0–1 likelihood by elliptical slice sampling
    (:func:`sgdbayes.gp.sampling.elliptical_slice`, EP-initialised chains) → an ``ESSResult`` (marginals on E with
    between-chain standard errors, counts of the sampled labellings); cached."""
    from sgdbayes.cache import cached
    from sgdbayes.gp.sampling import elliptical_slice

    x_train, x_test = _np32(x_train, "x_train"), _np32(x_test, "x_test")
    y = _labels01(y_train, x_train.shape[0])

    def compute():
        K = nngp_matrix(x_train, x_test, depth=depth, sigma_w=sigma_w, sigma_b=sigma_b)
        return elliptical_slice(K, torch.from_numpy(2.0 * y - 1.0), n_chains=n_chains, n_steps=n_steps,
                                burn_in=burn_in, seed=int(seed))

    if not cache:
        return compute()
    params = {"x_train": x_train, "y_train": y, "x_test": x_test, "depth": int(depth), "sigma_w": float(sigma_w),
              "sigma_b": float(sigma_b), "n_chains": int(n_chains), "n_steps": int(n_steps), "burn_in": int(burn_in),
              "seed": int(seed)}
    return cached("function_probability.gp_ess", params, compute)


# --------------------------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------------------------
def error_distribution(functions: FunctionCounts, true_labels, weights: np.ndarray | None = None
                       ) -> np.ndarray:
    """Probability of each number of test errors 0 … |E|: ``float64 [|E| + 1]``. Weights: the empirical
    probabilities of ``functions`` (default) or ``weights`` aligned with its rows (e.g. P_B; non-finite and
    negative entries are ignored; normalised to sum 1 over the rest)."""
    err = functions.errors(true_labels)
    if weights is None:
        w = functions.counts.astype(np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != err.shape:
            raise ValueError(f"weights must have shape {err.shape} (one per function), got {w.shape}")
        w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    total = w.sum()
    if total <= 0:
        raise ValueError("error_distribution: no function has positive weight")
    return np.bincount(err, weights=w, minlength=functions.n_bits + 1) / total


def headline_statistics(functions: FunctionCounts, log_pb: np.ndarray, true_labels, *,
                        min_count: int = 10) -> dict[str, float]:
    """Compare P_SGD (the empirical probabilities of ``functions``) with P_B (``log_pb``, natural log, aligned with
    the rows of ``functions``; −inf = P_B estimated as 0, NaN = not evaluated).

    Returns: ``n_runs`` (networks counted), ``n_distinct``, ``top1``, ``top10``, ``top100``, ``top1000`` (mass of the
    k most frequent functions); over the functions seen ≥ ``min_count`` times with finite log P_B
    (``n_compared``): ``corr_log`` (Pearson correlation of log P_SGD with log P_B), ``frac_within_decade``
    (|log₁₀ P_SGD − log₁₀ P_B| ≤ 1); ``mean_error_sgd`` (expected fraction of test errors under P_SGD) and
    ``mean_error_pb_restricted`` (under P_B restricted to, and renormalised over, the functions with finite log P_B —
    biased toward those functions; the expected error under all of P_B is :meth:`EPMarginals.expected_error`), with
    ``pb_mass`` = Σ P_B over those functions (how much of P_B that restriction covers).
    """
    log_pb = np.asarray(log_pb, dtype=np.float64)
    if log_pb.shape != (functions.n_distinct,):
        raise ValueError(f"log_pb must have shape ({functions.n_distinct},), one per function, got {log_pb.shape}")
    if np.any(log_pb > 1e-9):
        raise ValueError(f"log_pb must be <= 0 (log-probabilities), got max {np.nanmax(log_pb):.3g}")
    _check_positive("min_count", min_count)
    p = functions.probabilities()
    err = functions.errors(true_labels) / functions.n_bits
    sel = (functions.counts >= min_count) & np.isfinite(log_pb)
    n_cmp = int(sel.sum())
    l_sgd, l_pb = np.log10(p[sel]), log_pb[sel] / math.log(10)
    corr = float(np.corrcoef(l_sgd, l_pb)[0, 1]) if n_cmp >= 3 and l_sgd.std() > 0 and l_pb.std() > 0 else math.nan
    within = float(np.mean(np.abs(l_sgd - l_pb) <= 1.0)) if n_cmp else math.nan
    fin = np.isfinite(log_pb)
    pb = np.exp(log_pb[fin])
    mass = float(pb.sum())
    return {
        "n_runs": functions.total, "n_distinct": functions.n_distinct,
        **{f"top{k}": functions.top_k_mass(k) for k in (1, 10, 100, 1000)},
        "n_compared": n_cmp, "corr_log": corr, "frac_within_decade": within,
        "mean_error_sgd": float((p * err).sum()),
        "mean_error_pb_restricted": float((pb * err[fin]).sum() / mass) if mass > 0 else math.nan,
        "pb_mass": mass,
    }


def settings_table(runs: Mapping[str, TrainingRun], table: PBTable | None, true_labels, *,
                   min_count: int = 10):
    """One row per training setting (``runs``: label → TrainingRun): failures, epochs, number of distinct functions,
    top-k mass, mean test error and, with a :class:`PBTable`, the agreement with P_B (:func:`headline_statistics`)."""
    import pandas as pd

    rows = []
    for label, run in runs.items():
        row = {"setting": label, **run.summary()}
        if run.n_counted:
            lp = table.lookup(run.counts) if table is not None else np.full(run.counts.n_distinct, np.nan)
            s = headline_statistics(run.counts, lp, true_labels, min_count=min_count)
            row.update({"top-1 mass": s["top1"], "top-10 mass": s["top10"], "mean test error (P_SGD)":
                        s["mean_error_sgd"]})
            if table is not None:
                row.update({"corr(log P_SGD, log P_B)": s["corr_log"], "within 10×": s["frac_within_decade"],
                            "functions compared": s["n_compared"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("setting")


def lz_of_functions(split, functions: FunctionCounts) -> np.ndarray:
    """K_LZ of each function completed on all 2ⁿ inputs (``split.full_function``: S's true labels + f on E),
    the complexity the paper plots; ``float64 [k]`` aligned with ``functions``' rows."""
    from sgdbayes.data import lz_complexity

    if functions.n_bits != split.n_test:
        raise ValueError(f"functions have {functions.n_bits} bits but the split's E has {split.n_test} inputs")
    if functions.n_distinct == 0:
        return np.zeros(0)
    return lz_complexity(split.full_function(functions.bits()))
