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
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sgdbayes.distributed import ENV_SCHEDULER, run_sharded
from sgdbayes.ensembles.stop import StopRule, as_stop_rule
from sgdbayes.functions import FunctionCounts, as_bits
from sgdbayes.params import Choice, Float, Int, Kind, List, Rule, Spec, Str, same_length

__all__ = [
    "COMPARE_COLUMNS",
    "DECOMPOSITION",
    "KERAS_HYPER",
    "KERAS_LR",
    "PAPER_BOOLEAN",
    "PARAMETERS",
    "PB_COLUMNS",
    "PB_FORMATS",
    "TF2_KERAS_LR",
    "BooleanSetup",
    "EPMarginals",
    "OptimiserStudy",
    "PBStudy",
    "PBTable",
    "PriorRun",
    "ProtocolStudy",
    "SplitStudy",
    "TrainingRun",
    "authors_mask_64",
    "authors_split",
    "compare",
    "compare_frame",
    "complexity_data",
    "decomposition_rule",
    "ep_log_pb",
    "ep_marginals",
    "ep_only_study",
    "ep_table",
    "ep_vs_direct",
    "error_distribution",
    "gp_ess",
    "gp_exact_functions",
    "gp_posterior_marginals",
    "gp_rejection",
    "headline_statistics",
    "keras_hyper",
    "lz_of_functions",
    "merge_training_runs",
    "nngp_matrix",
    "optimiser_study",
    "optimiser_table",
    "pb_methods",
    "pb_study",
    "prior_functions",
    "protocol_study",
    "protocol_table",
    "random_splits",
    "resolve_scheduler",
    "settings_table",
    "split_study",
    "spread_table",
    "studies_table",
    "target_studies",
    "train_functions",
    "train_shard",
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


@contextmanager
def limit_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (None: leave the setting alone), then restore it. The
    Boolean networks and EP's 128-point linear algebra are far too small to share among threads: on a busy 2-core
    machine two threads measured 6–7× slower than one, in CPU and in wall time (the threads spin waiting for each
    other)."""
    if n is None:
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(_check_positive("torch_threads", n))
    try:
        yield
    finally:
        torch.set_num_threads(prev)


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

    ``counts``: labellings of E by the counted networks, the estimate of P_SGD(f|S). A network is counted when it
    ended on a fit by its stop rule and still fitted S then (``EnsembleResult.counted``), and — under the Keras rule
    with a shared callback, unless the run was asked to count them — it is not the leader of its emulated process
    (``n_leaders`` fitted leaders are left out; see :mod:`sgdbayes.ensembles.stop`). ``n_networks`` =
    ``n_fitted + n_not_fitted + n_diverged``; ``n_lost_fit`` of the ``n_fitted`` dropped below 100% training
    accuracy while overtraining (clean rule) and are not counted either. ``epochs_hist[e]``: networks that first
    fitted after ``e`` epochs; ``trained_hist[e]``: counted networks that trained ``e`` epochs in all.
    ``n_sign_misfit``: counted networks whose labelling by the sign of the logit does not fit S (possible under the
    Keras rule's 0.5 threshold). ``run_keys`` (``uint8 [n_counted, ⌈|E|/8⌉]``) and ``run_cluster``
    (``int64 [n_counted]``): each counted run's packed function and its cluster — its emulated process under a
    shared callback (runs of one process share e₀ and are not independent), else a cluster of its own — for
    :meth:`top_mass`'s standard error. ``seconds``: training time summed over shards (never recorded: it varies).
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
    n_leaders: int = 0
    n_sign_misfit: int = 0
    trained_hist: np.ndarray | None = None
    run_keys: np.ndarray | None = None
    run_cluster: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.n_fitted + self.n_not_fitted + self.n_diverged != self.n_networks:
            raise ValueError(f"inconsistent TrainingRun: {self.n_fitted} fitted + {self.n_not_fitted} not fitted + "
                             f"{self.n_diverged} diverged != {self.n_networks} networks")
        if self.counts.total != self.n_fitted - self.n_lost_fit - self.n_leaders:
            raise ValueError(f"inconsistent TrainingRun: {self.counts.total} counted functions != {self.n_fitted} "
                             f"fitted − {self.n_lost_fit} that lost the fit − {self.n_leaders} process leaders")
        if not 0 <= self.n_sign_misfit <= self.counts.total:
            raise ValueError(f"inconsistent TrainingRun: {self.n_sign_misfit} counted runs not fitting by sign of "
                             f"{self.counts.total} counted")
        if (self.run_keys is None) != (self.run_cluster is None):
            raise ValueError("run_keys and run_cluster go together (both or neither)")
        if self.run_keys is not None:
            self.run_keys = np.ascontiguousarray(self.run_keys, dtype=np.uint8)
            self.run_cluster = np.asarray(self.run_cluster, dtype=np.int64)
            shape = (self.counts.total, (self.counts.n_bits + 7) // 8)
            if self.run_keys.shape != shape or self.run_cluster.shape != (self.counts.total,):
                raise ValueError(f"run_keys must be uint8 {shape} and run_cluster [{self.counts.total}], got "
                                 f"{self.run_keys.shape} and {self.run_cluster.shape}")

    @property
    def n_counted(self) -> int:
        return self.counts.total

    @property
    def mean_epochs_to_fit(self) -> float:
        n = self.epochs_hist.sum()
        return float((np.arange(self.epochs_hist.size) * self.epochs_hist).sum() / n) if n else float("nan")

    @property
    def mean_epochs_trained(self) -> float:
        """Mean number of epochs the counted networks trained in all (first fit, then any wait or overtraining)."""
        h = self.trained_hist
        if h is None or h.sum() == 0:
            return float("nan")
        return float((np.arange(h.size) * h).sum() / h.sum())

    @property
    def frac_sign_misfit(self) -> float:
        """Fraction of the counted networks whose sign labelling does not fit S."""
        return self.n_sign_misfit / self.n_counted if self.n_counted else float("nan")

    @property
    def n_clusters(self) -> int:
        """Independent units among the counted runs (emulated processes, or runs); 0 without run data."""
        return 0 if self.run_cluster is None else int(np.unique(self.run_cluster).size)

    def top_mass(self, k: int = 1) -> tuple[float, float]:
        """Mass of the ``k`` most frequent functions among the counted runs and its Monte-Carlo standard error.

        The error treats each cluster (``run_cluster``: an emulated process under a shared callback, else one run)
        as an independent unit: with a_c of the n_c counted runs of cluster c on the top-k functions,
        mass = Σa_c/Σn_c and SE² = C/(C−1) · Σ_c (a_c − mass·n_c)² / (Σn_c)² (the linearised variance of a ratio
        estimator over C clusters; the binomial √(m(1−m)/(n−1)) when every cluster is one run). The top k are chosen
        from the same runs (a small upward bias for near-ties, ignored). NaN when nothing was counted; the SE is NaN
        without run data or with a single cluster.
        """
        k = _check_positive("k", k)
        if self.n_counted == 0:
            return float("nan"), float("nan")
        mass = self.counts.top_k_mass(k)
        if self.run_keys is None:
            return mass, float("nan")
        top = self.counts.keys[:k]
        hit = np.isin(_void(self.run_keys), _void(top))
        _, c = np.unique(self.run_cluster, return_inverse=True)
        c = c.reshape(-1)
        a = np.bincount(c, weights=hit.astype(np.float64))
        m = np.bincount(c).astype(np.float64)
        n, n_c = m.sum(), a.shape[0]
        if n_c < 2:
            return mass, float("nan")
        se = math.sqrt(n_c / (n_c - 1) * float(((a - mass * m) ** 2).sum())) / n
        return mass, se

    def summary(self) -> dict[str, Any]:
        return {"networks": self.n_networks, "fitted": self.n_fitted, "not fitted": self.n_not_fitted,
                "diverged": self.n_diverged, "lost fit": self.n_lost_fit, "leaders (not counted)": self.n_leaders,
                "counted": self.n_counted, "not fitting S by sign": self.n_sign_misfit,
                "mean epochs to fit": self.mean_epochs_to_fit, "mean epochs trained": self.mean_epochs_trained,
                "distinct functions": self.counts.n_distinct}


def _add_hists(hists: Sequence[np.ndarray | None]) -> np.ndarray | None:
    present = [h for h in hists if h is not None]
    if not present:
        return None
    out = np.zeros(max(h.size for h in present), dtype=np.int64)
    for h in present:
        out[:h.size] += h
    return out


def merge_training_runs(runs: Sequence[TrainingRun]) -> TrainingRun:
    """Exact merge of shards (counts, failures and histograms added; run data concatenated in shard order with the
    clusters of each shard renumbered after those of the shards before it, so clusters never merge across shards)."""
    runs = list(runs)
    if not runs:
        raise ValueError("merge_training_runs needs at least one TrainingRun")
    with_runs = all(r.run_keys is not None for r in runs)
    keys = cluster = None
    if with_runs:
        keys = np.concatenate([r.run_keys for r in runs])
        parts, offset = [], 0
        for r in runs:
            _, c = np.unique(r.run_cluster, return_inverse=True)
            parts.append(c.reshape(-1).astype(np.int64) + offset)
            offset += int(c.max()) + 1 if c.size else 0
        cluster = np.concatenate(parts)
    return TrainingRun(counts=FunctionCounts.merge_all([r.counts for r in runs]),
                       n_networks=sum(r.n_networks for r in runs), n_fitted=sum(r.n_fitted for r in runs),
                       n_not_fitted=sum(r.n_not_fitted for r in runs), n_diverged=sum(r.n_diverged for r in runs),
                       n_lost_fit=sum(r.n_lost_fit for r in runs), epochs_hist=_add_hists([r.epochs_hist for r in runs]),
                       seconds=sum(r.seconds for r in runs), config=dict(runs[0].config),
                       n_leaders=sum(r.n_leaders for r in runs), n_sign_misfit=sum(r.n_sign_misfit for r in runs),
                       trained_hist=_add_hists([r.trained_hist for r in runs]), run_keys=keys, run_cluster=cluster)


def train_shard(seed: int, *, x_train, y_train, x_test, n_networks: int, hidden: Sequence[int] = (40, 40),
                sigma_w: float = 1.0, sigma_b: float = 1.0, optimizer: str = "sgd", lr: float | None = None,
                optimizer_kwargs: dict | None = None, loss: str = "ce", batch_size: int | None = 8,
                max_epochs: int = 2000, overtrain_epochs: int = 0, stop_rule: StopRule | str | None = None,
                count_leaders: bool = False, torch_threads: int | None = None, device: str = "auto") -> TrainingRun:
    """One shard (top level and picklable, for Dask): ``n_networks`` FCNs ``d → hidden → 1`` (ReLU, prior
    initialisation with ``sigma_w, sigma_b``) trained on (x_train ``[n, d]``, y_train ``[n]`` in {0,1}) with
    :func:`sgdbayes.ensembles.train_ensemble` seeded by ``seed`` and stopped by ``stop_rule`` (None: the clean rule);
    their labellings of x_test ``[|E|, d]``. Under the Keras rule with a shared callback the shard's networks form
    ``n_networks / runs_per_process`` emulated processes, and their leaders are left out of the counts unless
    ``count_leaders`` (the authors' runs are followers but for 1 in 1,500; see :mod:`sgdbayes.ensembles.stop`).
    ``torch_threads``: torch's intra-op threads while training (None: as set; see :func:`limit_threads`)."""
    from sgdbayes.device import get_device
    from sgdbayes.ensembles import FCN, train_ensemble

    rule = as_stop_rule(stop_rule)
    x_train, x_test = _np32(x_train, "x_train"), _np32(x_test, "x_test")
    dev = get_device(device)
    model = FCN(x_train.shape[1], tuple(hidden), sigma_w=sigma_w, sigma_b=sigma_b)
    with limit_threads(torch_threads):
        res = train_ensemble(model, torch.from_numpy(x_train).to(dev), torch.as_tensor(np.asarray(y_train)).to(dev),
                             torch.from_numpy(x_test).to(dev), n_networks=n_networks, seed=int(seed),
                             optimizer=optimizer, lr=lr, optimizer_kwargs=optimizer_kwargs, loss=loss,
                             batch_size=batch_size, max_epochs=max_epochs, overtrain_epochs=overtrain_epochs,
                             stop_rule=rule, device=dev, progress=False)
    c = res.counts()
    counted = res.counted
    leaders = counted & res.leader if (rule.shares_floor and not count_leaders) else np.zeros_like(counted)
    keep = counted & ~leaders
    bits = res.test_labels[torch.from_numpy(keep)].numpy()
    n_bits = x_test.shape[0]
    counts = FunctionCounts.from_bits(bits, n_bits) if bits.shape[0] else FunctionCounts.empty(n_bits)
    fit_epochs = res.epochs_to_fit[res.fitted]
    hist = np.bincount(fit_epochs, minlength=1).astype(np.int64) if fit_epochs.size else np.zeros(1, np.int64)
    trained = res.epochs_trained[keep]
    trained_hist = np.bincount(trained, minlength=1).astype(np.int64) if trained.size else np.zeros(1, np.int64)
    index = np.arange(res.n_networks)
    cluster = np.where(res.process >= 0, res.process, index)[keep] if rule.shares_floor else index[keep]
    sign = res.fits_by_sign if res.fits_by_sign is not None else np.ones(res.n_networks, dtype=bool)
    return TrainingRun(counts=counts, n_networks=res.n_networks, n_fitted=c["fitted"], n_not_fitted=c["not_fitted"],
                       n_diverged=c["diverged"], n_lost_fit=c["fitted"] - int(counted.sum()), epochs_hist=hist,
                       seconds=res.wall_time_s, config=dict(res.config), n_leaders=int(leaders.sum()),
                       n_sign_misfit=int((keep & ~sign).sum()), trained_hist=trained_hist,
                       run_keys=np.packbits(bits, axis=1) if bits.shape[0] else np.zeros((0, (n_bits + 7) // 8),
                                                                                           np.uint8),
                       run_cluster=cluster.astype(np.int64))


_TRAIN_KEYS = {"hidden", "sigma_w", "sigma_b", "optimizer", "lr", "optimizer_kwargs", "loss", "batch_size",
               "max_epochs", "overtrain_epochs", "stop_rule", "count_leaders", "torch_threads", "device"}


def train_functions(x_train, y_train, x_test, *, n_networks: int, seed: int = 0, shard_size: int = 2000,
                    scheduler: str | None = "auto", name: str = "function_probability.sgd", progress: bool = True,
                    **train_kwargs) -> TrainingRun:
    """P_SGD(f|S): train ``n_networks`` (rounded up to whole shards of ``shard_size``) networks, sharded and resumable.

    ``train_kwargs`` are those of :func:`train_shard` (hidden, sigma_w, sigma_b, optimizer, lr, optimizer_kwargs,
    loss, batch_size, max_epochs, overtrain_epochs, stop_rule, count_leaders, torch_threads, device). Shards are
    stored under
    ``name`` keyed by all parameters; ``scheduler`` as in :func:`resolve_scheduler`. Under the Keras rule with a
    shared callback a shard must hold whole emulated processes (its size a multiple of ``runs_per_process``). The
    stop rule and the optimiser are checked before any shard runs.
    """
    from sgdbayes.ensembles import make_optimizer

    n_shards, per = _shards(n_networks, shard_size, "n_networks")
    x_train, x_test = _np32(x_train, "x_train"), _np32(x_test, "x_test")
    if x_test.shape[1] != x_train.shape[1]:
        raise ValueError(f"x_test has {x_test.shape[1]} features but x_train has {x_train.shape[1]}")
    y = _labels01(y_train, x_train.shape[0])
    unknown = set(train_kwargs) - _TRAIN_KEYS
    if unknown:
        raise TypeError(f"train_functions got unknown keyword(s) {sorted(unknown)}; allowed: {sorted(_TRAIN_KEYS)}")
    if "hidden" in train_kwargs:
        train_kwargs["hidden"] = [int(h) for h in train_kwargs["hidden"]]
    rule = as_stop_rule(train_kwargs.get("stop_rule"))
    if "stop_rule" in train_kwargs:
        train_kwargs["stop_rule"] = rule
    if rule.kind == "keras" and train_kwargs.get("overtrain_epochs", 0):
        raise ValueError("under the Keras rule the extra epochs are its wait (StopRule.keras(wait=...)), not "
                         "overtrain_epochs")
    if rule.shares_floor and per % rule.runs_per_process:
        raise ValueError(f"each shard must hold whole emulated processes: {per} networks per shard is not a multiple "
                         f"of runs_per_process={rule.runs_per_process} (choose n_networks and shard_size as "
                         "multiples of it)")
    make_optimizer(train_kwargs.get("optimizer", "sgd"), train_kwargs.get("lr"),
                   **(train_kwargs.get("optimizer_kwargs") or {}))
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
    ``"two_stage"``: cheaper, see there) and ``ep_kwargs`` (e.g. ``tol``, ``site_tol``). A chunk whose EP does not
    converge is redone one function at a time; a function that still fails gets NaN and is counted in ``n_failed``
    (never silently dropped). Cached on disk (:func:`sgdbayes.cache.cached` of :func:`ep_table`) when ``cache``.
    """
    from sgdbayes.cache import cached

    x_train, x_test = _np32(x_train, "x_train"), _np32(x_test, "x_test")
    y = _labels01(y_train, x_train.shape[0])
    n_bits, keys = _union_keys(functions, _check_positive("min_count", min_count))
    if n_bits != x_test.shape[0]:
        raise ValueError(f"functions have {n_bits} bits but x_test has {x_test.shape[0]} rows")
    kw = dict(keys=keys, n_bits=n_bits, depth=int(depth), sigma_w=float(sigma_w), sigma_b=float(sigma_b),
              method=method, chunk=_check_positive("chunk", chunk), ep_kwargs=dict(ep_kwargs))
    if not cache:
        return ep_table(x_train, y, x_test, **kw)
    return cached(ep_table, x_train, y, x_test, **kw)


def ep_table(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, keys: np.ndarray, n_bits: int,
             depth: int, sigma_w: float, sigma_b: float, method: str, chunk: int, ep_kwargs: dict) -> PBTable:
    """The computation behind :func:`ep_log_pb` (module level, so that :func:`sgdbayes.cache.cached` can key it):
    log P_B of the packed functions ``keys`` (``uint8 [k, ⌈n_bits/8⌉]``) given S = (x_train, y_train in {0, 1})."""
    from sgdbayes.gp import EPConvergenceError, log_pb

    t0 = time.perf_counter()
    K = nngp_matrix(x_train, x_test, depth=depth, sigma_w=sigma_w, sigma_b=sigma_b)
    y_pm = torch.from_numpy(2.0 * np.asarray(y_train, dtype=np.float64) - 1.0)
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

    x_train, x_test = _np32(x_train, "x_train"), _np32(x_test, "x_test")
    y = _labels01(y_train, x_train.shape[0])
    kw = dict(n_samples=_check_positive("n_samples", n_samples), depth=int(depth), sigma_w=float(sigma_w),
              sigma_b=float(sigma_b), seed=int(seed))
    return cached(gp_rejection, x_train, y, x_test, **kw) if cache else gp_rejection(x_train, y, x_test, **kw)


def gp_rejection(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, n_samples: int, depth: int,
                 sigma_w: float, sigma_b: float, seed: int):
    """The computation behind :func:`gp_exact_functions` (module level, for the cache)."""
    from sgdbayes.gp.sampling import sample_gp_rejection

    K = nngp_matrix(x_train, x_test, depth=depth, sigma_w=sigma_w, sigma_b=sigma_b)
    return sample_gp_rejection(K, torch.from_numpy(2.0 * np.asarray(y_train, np.float64) - 1.0),
                               n_samples=n_samples, seed=seed)


def gp_posterior_marginals(x_train, y_train, x_test, *, depth: int = 2, sigma_w: float = 1.0, sigma_b: float = 1.0,
                           n_chains: int = 128, n_steps: int = 500, burn_in: int = 200, seed: int = 0,
                           cache: bool = True):
    """The NNGP posterior under the 0–1 likelihood by elliptical slice sampling
    (:func:`sgdbayes.gp.sampling.elliptical_slice`, EP-initialised chains) → an ``ESSResult`` (marginals on E with
    between-chain standard errors, counts of the sampled labellings); cached."""
    from sgdbayes.cache import cached

    x_train, x_test = _np32(x_train, "x_train"), _np32(x_test, "x_test")
    y = _labels01(y_train, x_train.shape[0])
    kw = dict(depth=int(depth), sigma_w=float(sigma_w), sigma_b=float(sigma_b), n_chains=int(n_chains),
              n_steps=int(n_steps), burn_in=int(burn_in), seed=int(seed))
    return cached(gp_ess, x_train, y, x_test, **kw) if cache else gp_ess(x_train, y, x_test, **kw)


def gp_ess(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, depth: int, sigma_w: float,
           sigma_b: float, n_chains: int, n_steps: int, burn_in: int, seed: int):
    """The computation behind :func:`gp_posterior_marginals` (module level, for the cache)."""
    from sgdbayes.gp.sampling import elliptical_slice

    K = nngp_matrix(x_train, x_test, depth=depth, sigma_w=sigma_w, sigma_b=sigma_b)
    return elliptical_slice(K, torch.from_numpy(2.0 * np.asarray(y_train, np.float64) - 1.0), n_chains=n_chains,
                            n_steps=n_steps, burn_in=burn_in, seed=seed)


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


def error_distributions(functions: Mapping[str, FunctionCounts], true_labels) -> dict[str, np.ndarray]:
    """:func:`error_distribution` of each non-empty entry (label → counts); empty ones are left out."""
    return {label: error_distribution(c, true_labels) for label, c in functions.items() if c.total}


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


# ====================================================================================================================
# Page I of the chapter: the Boolean system at the authors' set-up
# ====================================================================================================================
# The authors' numbers (their Boolean result files; facts in shared/reference/mingard2020.md): 6×10⁵ runs, target 7
# (0011…) on mask A, plain Keras SGD lr 0.01, batch 8, cross-entropy, σ_w = σ_b = 1, their stop rule.
PAPER_BOOLEAN: dict[str, float] = {
    "runs": 600_000, "n_distinct": 33_298, "top1": 0.653, "top10": 0.697, "top100": 0.798, "top1000": 0.894,
    "mean_epochs": 84, "test_error": 0.0270, "overtrain_top1": 0.939, "overtrain_n_distinct": 6_632,
    "large_top1": 0.977, "large_n_distinct": 486, "pb_top_direct": 0.14,
}

#: Keras' optimiser defaults as the authors' code got them (``model.compile(optimizer="adam", ...)``: the string
#: gives the optimiser's defaults) in the torch form of :mod:`sgdbayes.ensembles.optim`: standalone Keras 2.2 /
#: TF 1.x ``keras.optimizers`` — Adam lr 1e-3 (β 0.9, 0.999), Adagrad lr 1e-2 (accumulators from 0), RMSprop lr 1e-3
#: (ρ 0.9), Adadelta lr 1.0 (ρ 0.95), ε = K.epsilon() = 1e-7 for all. Adagrad, RMSprop (ε added to √s) and Adadelta
#: are then the same formulas as torch's; Adam differs in form only: Keras adds ε to √v before the bias correction
#: (torch after it), which moves the parameters by < 1% of their displacement at these gradients (tested). TF 2.x
#: changed Adagrad to lr 1e-3 with accumulators from 0.1, Adadelta to lr 1e-3 and RMSprop to √(s + ε) (a real
#: difference for small gradients); which version ran the authors' optimiser jobs is not recorded.
KERAS_LR: dict[str, float] = {"sgd": 0.01, "adam": 0.001, "adagrad": 0.01, "rmsprop": 0.001, "adadelta": 1.0}
KERAS_HYPER: dict[str, dict[str, Any]] = {
    "sgd": {}, "adam": {"betas": (0.9, 0.999), "eps": 1e-7}, "adagrad": {"eps": 1e-7},
    "rmsprop": {"alpha": 0.9, "eps": 1e-7}, "adadelta": {"rho": 0.95, "eps": 1e-7},
}
TF2_KERAS_LR: dict[str, float] = {**KERAS_LR, "adagrad": 0.001, "adadelta": 0.001}


def keras_hyper(name: str) -> dict[str, Any]:
    """The Keras defaults other than the learning rate (:data:`KERAS_HYPER`) for optimiser ``name``."""
    if name not in KERAS_HYPER:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(KERAS_HYPER)}")
    return dict(KERAS_HYPER[name])


def authors_mask_64() -> str:
    """A 128-bit train mask with 64 ones inferred for the authors' |S| = 64 runs (not in their result files).

    Mask A is ``np.random.seed(42069); np.random.choice(range(128), size=32, replace=False)`` (their data script,
    checked in the tests); that call draws a permutation and keeps its head, so the same call with ``size=64`` — what
    the script gives for m = 64 — returns mask A's 32 inputs and 32 more."""
    rs = np.random.RandomState(42069)
    mask = np.zeros(128, dtype=np.uint8)
    mask[rs.choice(range(128), size=64, replace=False)] = 1
    return "".join(map(str, mask))


def authors_split(target: int | str = 7, mask: str = ""):
    """The authors' Boolean split (:func:`sgdbayes.data.mingard_split`): ``target`` 1–7 or a 128-bit string;
    ``mask`` ``"A"``, ``"B"``, ``"A64"`` (:func:`authors_mask_64`, |S| = 64), a 128-bit string, or ``""`` for the
    mask the authors used with that target."""
    from sgdbayes.data.boolean import MINGARD_TARGETS, mask_split, mingard_split

    if isinstance(mask, str) and mask.upper() == "A64":
        bits = MINGARD_TARGETS[int(target)] if isinstance(target, (int, np.integer)) else target
        return mask_split(bits, authors_mask_64(), n=7, n_train=64)
    return mingard_split(target, mask or None)


def random_splits(target: int | str, n_sets: int, n_train: int, *, seed: int = 0) -> list:
    """``n_sets`` train sets S of ``n_train`` inputs drawn uniformly (without replacement) for the same target:
    set k uses :func:`sgdbayes.data.boolean_split` with seed ``seed + 1 + k`` (so none is the authors' mask)."""
    from sgdbayes.data import boolean_split
    from sgdbayes.data.boolean import MINGARD_TARGETS

    bits = MINGARD_TARGETS[int(target)] if isinstance(target, (int, np.integer)) else target
    return [boolean_split(bits, _check_positive("n_train", n_train), seed=int(seed) + 1 + k)
            for k in range(_check_positive("n_sets", n_sets))]


def _ensembles_train():
    from sgdbayes.ensembles import train

    return train


@dataclass(frozen=True)
class BooleanSetup:
    """Everything the Boolean runs share: the network and prior (``hidden``, ``sigma_w``, ``sigma_b``), plain SGD
    (``lr``, ``batch``), the epoch budget (``max_epochs``: the authors' 3,000), the Keras rule's parameters
    (``threshold``, ``wait``, ``runs_per_process``), where runs go (``seed``, ``shard_size``, ``scheduler``,
    ``device``), EP (``ep_min_count``: P_B by EP for every function seen at least this often; ``ep_tol``: EP's stop
    on |Δ log Z|, sites at 10·ep_tol), ``min_count`` (functions seen at least this often enter the statistics) and
    ``torch_threads`` (torch's intra-op threads for training and EP, see :func:`limit_threads`; prior sampling keeps
    its own threads)."""

    hidden: tuple[int, ...] = (40, 40)
    sigma_w: float = 1.0
    sigma_b: float = 1.0
    lr: float = 0.01
    batch: int = 8
    max_epochs: int = 3000
    threshold: float = 0.5
    wait: int = 1
    runs_per_process: int = 25
    seed: int = 0
    shard_size: int = 1000
    scheduler: str = "sync"
    device: str = "auto"
    ep_min_count: int = 2
    ep_tol: float = 1e-4
    min_count: int = 5
    torch_threads: int | None = 1

    def rule(self, kind: str, *, threshold: float | None = None, wait: int | None = None,
             shared: bool = True) -> StopRule:
        """``"clean"`` → the clean rule; ``"keras"`` → the authors' rule with this set-up's parameters (``threshold``,
        ``wait`` override them; ``shared=False``: a fresh callback per run)."""
        if kind == "clean":
            return StopRule.clean()
        if kind == "keras":
            return StopRule.keras(self.threshold if threshold is None else threshold,
                                  self.wait if wait is None else wait, shared_callback=shared,
                                  runs_per_process=self.runs_per_process)
        raise ValueError(f"unknown stop rule {kind!r}; allowed: 'keras', 'clean'")

    def train(self, split, rule: StopRule, n_networks: int, *, extra_epochs: int = 0, optimizer: str = "sgd",
              lr: float | None = None, batch: int | None = None, optimizer_kwargs: dict | None = None,
              progress: bool = False) -> TrainingRun:
        """P_SGD on ``split`` with ``rule``; ``extra_epochs`` after the fit (the Keras rule's wait, the clean rule's
        overtraining); plain SGD at this set-up's rate and batch unless told otherwise."""
        threads = self.torch_threads
        if optimizer == "sgd" and getattr(_ensembles_train(), "NATIVE_SGD", False):
            threads = None  # the native SGD engine (where present) runs its own worker threads
        if rule.kind == "keras" and extra_epochs:
            rule = StopRule.keras(rule.threshold, extra_epochs, shared_callback=rule.shared_callback,
                                  runs_per_process=rule.runs_per_process, label_threshold=rule.label_threshold)
        return train_functions(
            split.x_train, split.y_train, split.x_test, n_networks=n_networks, seed=self.seed,
            shard_size=self.shard_size, scheduler=self.scheduler, progress=progress, hidden=list(self.hidden),
            sigma_w=self.sigma_w, sigma_b=self.sigma_b, optimizer=optimizer, lr=self.lr if lr is None else lr,
            optimizer_kwargs=optimizer_kwargs, loss="ce", batch_size=self.batch if batch is None else batch,
            max_epochs=self.max_epochs, overtrain_epochs=0 if rule.kind == "keras" else extra_epochs,
            stop_rule=rule, torch_threads=threads, device=self.device)

    def ep(self, split, functions, *, min_count: int | None = None) -> PBTable:
        """log P_B by EP (full ratio, step likelihood) for the functions seen ≥ ``ep_min_count`` times."""
        with limit_threads(self.torch_threads):
            return ep_log_pb(split.x_train, split.y_train, split.x_test, functions, depth=len(self.hidden),
                             sigma_w=self.sigma_w, sigma_b=self.sigma_b, method="full",
                             min_count=self.ep_min_count if min_count is None else min_count, tol=self.ep_tol,
                             site_tol=10 * self.ep_tol)

    def prior(self, split, n_samples: int, *, progress: bool = False) -> PriorRun:
        """P_B by direct sampling of ``n_samples`` prior networks (shards of 10⁶)."""
        return prior_functions(split.x_train, split.y_train, split.x_test, n_samples=n_samples, seed=self.seed,
                               shard_size=min(1_000_000, n_samples), scheduler=self.scheduler, progress=progress,
                               widths=self.hidden, sigma_w=self.sigma_w, sigma_b=self.sigma_b, device=self.device)

    def marginals(self, split) -> EPMarginals:
        """EP's posterior marginals on E (for P_B's expected test error over all functions)."""
        with limit_threads(self.torch_threads):
            return ep_marginals(split.x_train, split.y_train, split.x_test, depth=len(self.hidden),
                                sigma_w=self.sigma_w, sigma_b=self.sigma_b)


def direct_log_pb(prior: PriorRun, counts: FunctionCounts, min_samples: int = 2) -> np.ndarray:
    """log P_B by direct sampling of each function of ``counts``, NaN where the prior drew it < ``min_samples``
    times (too few to resolve)."""
    lp, _ = prior.log_pb(counts)
    seen = prior.counts.lookup(counts.bits()) if counts.n_distinct else np.zeros(0, np.int64)
    return np.where(seen >= min_samples, lp, np.nan)


def compare(run: TrainingRun, y_test, *, ep: PBTable | None = None, prior: PriorRun | None = None,
            marginals: EPMarginals | None = None, min_count: int = 5, direct_min_samples: int = 2) -> dict[str, Any]:
    """The numbers the page reports for one training run: concentration (``top1``, ``top1_se``, ``top10``,
    ``top10_se``, ``n_distinct``, ``n_counted``, ``n_clusters``), failures (``n_not_fitted``, ``n_diverged``),
    ``mean_epochs`` (trained), ``frac_sign_misfit``; against P_B by EP (``ep_corr``, ``ep_within``, ``ep_n``:
    functions seen ≥ ``min_count`` times with a P_B; ``ep_failed``) and by direct sampling (``direct_corr``,
    ``direct_within``, ``direct_n``: also drawn ≥ ``direct_min_samples`` times by the prior sampler); mean test
    errors under P_SGD (``error_sgd``), under P_B by direct sampling over all the functions it drew
    (``error_pb_direct``) and under EP's posterior over all functions (``error_pb_ep``). NaN where a number does not
    apply or has too little data (a correlation needs ≥ 3 functions)."""
    top1, se1 = run.top_mass(1)
    top10, se10 = run.top_mass(10)
    out: dict[str, Any] = {
        "n_counted": run.n_counted, "n_clusters": run.n_clusters, "n_distinct": run.counts.n_distinct,
        "top1": top1, "top1_se": se1, "top10": top10, "top10_se": se10, "n_not_fitted": run.n_not_fitted,
        "n_diverged": run.n_diverged, "mean_epochs": run.mean_epochs_trained, "frac_sign_misfit": run.frac_sign_misfit,
        "error_sgd": run.counts.mean_error(y_test) if run.n_counted else math.nan,
        "ep_corr": math.nan, "ep_within": math.nan, "ep_n": 0, "ep_failed": 0, "direct_corr": math.nan,
        "direct_within": math.nan, "direct_n": 0, "error_pb_direct": math.nan, "error_pb_ep": math.nan,
    }
    if run.n_counted == 0:
        return out
    if ep is not None:
        lp = ep.lookup(run.counts)
        s = headline_statistics(run.counts, lp, y_test, min_count=min_count)
        out.update(ep_corr=s["corr_log"], ep_within=s["frac_within_decade"], ep_n=s["n_compared"],
                   ep_failed=int(np.sum(np.isnan(lp) & (run.counts.counts >= min_count)
                                        & np.isin(_void(run.counts.keys), _void(ep.keys)))))
    if prior is not None:
        s = headline_statistics(run.counts, direct_log_pb(prior, run.counts, direct_min_samples), y_test,
                                min_count=min_count)
        out.update(direct_corr=s["corr_log"], direct_within=s["frac_within_decade"], direct_n=s["n_compared"])
        if prior.n_consistent:
            out["error_pb_direct"] = prior.counts.mean_error(y_test)
    if marginals is not None:
        out["error_pb_ep"] = marginals.expected_error(y_test)
    return out


#: Human column names of :func:`compare`'s numbers, in table order.
COMPARE_COLUMNS = {
    "n_counted": "runs counted", "n_clusters": "independent units", "n_distinct": "distinct functions",
    "top1": "top-1 mass", "top1_se": "± (1 se)", "top10": "top-10 mass", "top10_se": "± (1 se) ",
    "mean_epochs": "mean epochs trained", "frac_sign_misfit": "counted, not fitting S by sign",
    "n_not_fitted": "never fitted", "n_diverged": "diverged",
    "ep_corr": "corr(log P_SGD, log P_B), EP", "ep_within": "within 10× of P_B, EP", "ep_n": "functions (EP)",
    "ep_failed": "EP failures", "direct_corr": "corr(log P_SGD, log P_B), direct",
    "direct_within": "within 10× of P_B, direct", "direct_n": "functions (direct)",
    "error_sgd": "mean test error, P_SGD", "error_pb_direct": "mean test error, P_B (direct)",
    "error_pb_ep": "mean test error, P_B (EP)",
}


#: The columns of a P_SGD-against-P_B table (keys of :data:`COMPARE_COLUMNS`) and their formats.
PB_COLUMNS = ["n_distinct", "top1", "ep_corr", "ep_within", "ep_n", "direct_corr", "direct_within", "direct_n",
              "error_sgd", "error_pb_direct", "error_pb_ep"]
PB_FORMATS = {"top-1 mass": "{:.3f}", "within 10× of P_B, EP": "{:.0%}", "within 10× of P_B, direct": "{:.0%}",
              "mean test error, P_SGD": "{:.1%}", "mean test error, P_B (direct)": "{:.1%}",
              "mean test error, P_B (EP)": "{:.1%}"}


def compare_frame(rows: Mapping[Any, Mapping[str, Any]], *, columns: Sequence[str], index: Mapping[str, Sequence]
                  ) -> Any:
    """A table of :func:`compare` rows: ``index`` maps leading column names to one value per row (in ``rows``'
    order), then ``columns`` (keys of :data:`COMPARE_COLUMNS`) under their human names."""
    import pandas as pd

    rows = list(rows.values())
    data = {name: list(vals) for name, vals in index.items()}
    for name, vals in data.items():
        if len(vals) != len(rows):
            raise ValueError(f"index column {name!r} has {len(vals)} values for {len(rows)} rows")
    for c in columns:
        data[COMPARE_COLUMNS[c]] = [r[c] for r in rows]
    return pd.DataFrame(data)


# --------------------------------------------------------------------------------------------------------------------
# §1 the protocol: the stop rule's three quirks
# --------------------------------------------------------------------------------------------------------------------
#: The 2×2×2 decomposition of the authors' stop rule: label → (0.5 threshold, wait, shared callback).
DECOMPOSITION: dict[str, tuple[bool, bool, bool]] = {
    "clean rule": (False, False, False),
    "threshold": (True, False, False),
    "wait": (False, True, False),
    "shared callback": (False, False, True),
    "threshold + wait": (True, True, False),
    "threshold + shared": (True, False, True),
    "wait + shared": (False, True, True),
    "Keras rule (all three)": (True, True, True),
}


def decomposition_rule(setup: BooleanSetup, threshold: bool, wait: bool, shared: bool) -> StopRule:
    """The rule with some of the authors' quirks switched on: fit threshold ``setup.threshold`` (else 0, the sign),
    ``setup.wait`` epochs after the fit (else 0), a callback shared by each emulated process (else fresh). All off
    is the clean rule itself (for cross-entropy the Keras rule at threshold 0, wait 0, fresh callback is the same
    rule), so its runs are the clean rule's."""
    if not (threshold or wait or shared):
        return StopRule.clean()
    return setup.rule("keras", threshold=setup.threshold if threshold else 0.0, wait=setup.wait if wait else 0,
                      shared=shared)


@dataclass
class ProtocolStudy:
    """The runs of §1: ``runs`` (label → TrainingRun: every cell of :data:`DECOMPOSITION`, then the overtraining
    runs), ``flags`` (label → (0.5 threshold?, extra epochs after the fit as text, shared callback?)),
    ``y_test`` (E's true labels) and ``overtrain_epochs``."""

    runs: dict[str, TrainingRun]
    flags: dict[str, tuple[bool, str, bool]]
    y_test: np.ndarray
    overtrain_epochs: int
    labels_05: TrainingRun | None = None

    @property
    def keras(self) -> TrainingRun:
        return self.runs["Keras rule (all three)"]

    @property
    def clean(self) -> TrainingRun:
        return self.runs["clean rule"]

    def overtrained(self, which: str = "keras") -> TrainingRun:
        """The overtraining run of the Keras rule (shared callback), ``"fresh"`` (fresh callback) or ``"clean"``."""
        k = self.overtrain_epochs
        label = {"keras": f"Keras rule, wait {k}", "fresh": f"Keras rule, wait {k}, fresh callback",
                 "clean": f"clean rule, +{k} epochs"}[which]
        return self.runs[label]


def protocol_study(split, setup: BooleanSetup, *, main_networks: int, cell_networks: int, overtrain_epochs: int,
                   overtrain_networks: int, clean_networks: int | None = None, progress: bool = False
                   ) -> ProtocolStudy:
    """Every cell of :data:`DECOMPOSITION` on ``split`` (the full Keras rule with ``main_networks``, the clean rule
    with ``clean_networks`` (default ``main_networks``), the six others with ``cell_networks``; the same seeds, so
    every cell starts from the same initialisations), then ``overtrain_epochs`` extra epochs under the Keras rule
    (its wait; shared and fresh callback) and the clean rule, ``overtrain_networks`` each; and the first
    ``cell_networks`` Keras runs again with their functions read at logit > 0.5 (``labels_05``: the same training,
    the labelling Keras' ``accuracy`` uses, so its mean error is the test error in the authors' result file)."""
    runs, flags = {}, {}
    sizes = {(False, False, False): main_networks if clean_networks is None else clean_networks,
             (True, True, True): main_networks}
    for label, (thr, wait, shared) in DECOMPOSITION.items():
        n = sizes.get((thr, wait, shared), cell_networks)
        runs[label] = setup.train(split, decomposition_rule(setup, thr, wait, shared), n, progress=progress)
        flags[label] = (thr, str(setup.wait) if wait else "0", shared)
    k = _check_positive("overtrain_epochs", overtrain_epochs)
    for label, rule, f in ((f"Keras rule, wait {k}", setup.rule("keras"), (True, str(k), True)),
                           (f"Keras rule, wait {k}, fresh callback", setup.rule("keras", shared=False),
                            (True, str(k), False)),
                           (f"clean rule, +{k} epochs", setup.rule("clean"), (False, f"+{k}", False))):
        runs[label] = setup.train(split, rule, overtrain_networks, extra_epochs=k, progress=progress)
        flags[label] = f
    keras = setup.rule("keras")
    rule05 = StopRule.keras(keras.threshold, keras.wait, shared_callback=True, runs_per_process=keras.runs_per_process,
                            label_threshold=0.5)
    labels_05 = setup.train(split, rule05, cell_networks, progress=progress)
    return ProtocolStudy(runs=runs, flags=flags, y_test=np.asarray(split.y_test), overtrain_epochs=k,
                         labels_05=labels_05)


def protocol_table(study: ProtocolStudy) -> Any:
    """One row per run of :func:`protocol_study`: which quirks are on, runs, top-1 and top-10 mass with their
    per-process standard errors, distinct functions, mean epochs trained, the fraction of counted runs that do not
    fit S by sign, failures, and the authors' top-1 where their protocol is the row's."""
    rows = {label: compare(run, study.y_test) for label, run in study.runs.items()}
    k = study.overtrain_epochs
    paper = {"Keras rule (all three)": PAPER_BOOLEAN["top1"], f"Keras rule, wait {k}": PAPER_BOOLEAN["overtrain_top1"]}
    yes = {True: "yes", False: "—"}
    df = compare_frame(rows, columns=["n_counted", "top1", "top1_se", "top10", "top10_se", "n_distinct",
                                      "mean_epochs", "frac_sign_misfit", "n_not_fitted", "n_diverged"],
                       index={"stop rule": list(rows),
                              "threshold 0.5": [yes[study.flags[r][0]] for r in rows],
                              "epochs after fit": [study.flags[r][1] for r in rows],
                              "shared callback": [yes[study.flags[r][2]] for r in rows]})
    df["paper top-1"] = [paper.get(r, math.nan) for r in rows]
    return df


# --------------------------------------------------------------------------------------------------------------------
# §2 P_B of the headline target: EP, direct sampling, the exact NNGP
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class PBStudy:
    """P_B on one split: ``ep`` (EP table over the functions of ``runs``), ``prior`` (direct sampling),
    ``marginals`` (EP's posterior marginals on E)."""

    ep: PBTable
    prior: PriorRun
    marginals: EPMarginals

    def compare(self, run: TrainingRun, y_test, *, min_count: int = 5) -> dict[str, Any]:
        """:func:`compare` of ``run`` against this P_B (EP, direct sampling and EP's marginals)."""
        return compare(run, y_test, ep=self.ep, prior=self.prior, marginals=self.marginals, min_count=min_count)


def pb_study(split, setup: BooleanSetup, runs: Iterable[TrainingRun], *, prior_samples: int,
             progress: bool = False) -> PBStudy:
    """EP for every function seen ≥ ``setup.ep_min_count`` times in any of ``runs``, ``prior_samples`` prior
    networks, and EP's marginals, on ``split``."""
    counts = [r.counts for r in runs if r.n_counted]
    n_bits = split.n_test
    ep = setup.ep(split, counts) if counts else PBTable(n_bits, np.zeros((0, (n_bits + 7) // 8), np.uint8),
                                                         np.zeros(0), "full")
    return PBStudy(ep=ep, prior=setup.prior(split, prior_samples, progress=progress),
                   marginals=setup.marginals(split))


def pb_methods(split, setup: BooleanSetup, pb: PBStudy, *, gp_samples: int, ess_chains: int, ess_steps: int,
               ess_burn_in: int, p_min: float = 1e-3, max_functions: int = 60, max_rel_se: float = 0.5
               ) -> dict[str, Any]:
    """P_B of the same functions four ways: the NNGP sampled by elliptical slice sampling (``p_ess``, ``se_ess``:
    between-chain errors) and by i.i.d. rejection (``p_rej``, ``sd_rej``: binomial), EP (``p_ep``) and the
    width-``hidden`` networks by direct sampling (``p_net``, ``sd_net``); plus ``log10_ep_over_gp`` and
    ``n_functions`` (``ep_gp_median`` / ``ep_gp_max``: the median and the largest |·| of that log ratio, NaN with no
    function). The functions are those the slice sampler puts at P_B ≥ ``p_min`` (at most ``max_functions``)
    with a between-chain relative error below ``max_rel_se``: a function visited by one chain only (a chain stuck
    where it started) has a relative error of 1 and is left out (``n_one_chain`` counts them)."""
    kernel = dict(depth=len(setup.hidden), sigma_w=setup.sigma_w, sigma_b=setup.sigma_b)
    with limit_threads(setup.torch_threads):
        ess = gp_posterior_marginals(split.x_train, split.y_train, split.x_test, n_chains=ess_chains,
                                     n_steps=ess_steps, burn_in=ess_burn_in, seed=setup.seed, **kernel)
        rej = gp_exact_functions(split.x_train, split.y_train, split.x_test, n_samples=gp_samples,
                                 seed=setup.seed, **kernel)
    p_all = ess.counts.probabilities()
    cand = ess.counts.subset(np.flatnonzero(p_all >= min(p_min, p_all.max())))
    p_c, se_c = ess.pb(cand.bits())
    good = se_c < max_rel_se * p_c
    sub = cand.subset(np.flatnonzero(good)[:max_functions])
    p_ess, se_ess = p_c[good][:max_functions], se_c[good][:max_functions]
    p_ep = np.exp(setup.ep(split, [sub], min_count=1).lookup(sub)) if sub.n_distinct else np.zeros(0)
    lp_rej, sdl_rej = rej.log_pb(sub.bits())
    lp_net, sdl_net = pb.prior.log_pb(sub)
    p_rej, p_net = np.exp(lp_rej), np.exp(lp_net)
    ratio = np.log10(p_ep / p_ess)
    return {"ep_gp_median": float(np.median(ratio)) if ratio.size else math.nan,
            "ep_gp_max": float(np.abs(ratio).max()) if ratio.size else math.nan, "p_ess": p_ess, "se_ess": se_ess, "p_ep": p_ep, "p_rej": p_rej,
            "sd_rej": p_rej * np.nan_to_num(sdl_rej, posinf=0.0), "p_net": p_net,
            "sd_net": p_net * np.nan_to_num(sdl_net, posinf=0.0), "log10_ep_over_gp": ratio,
            "n_functions": int(sub.n_distinct), "n_one_chain": int((~good).sum()),
            "gp_consistent": rej.n_consistent, "gp_sampled": rej.n_sampled,
            "top_gp": float(rej.counts.top_k_mass(1)) if rej.n_consistent else math.nan}


def ep_vs_direct(pb: PBStudy, *, min_samples: int = 10) -> dict[str, float]:
    """EP against direct sampling on the functions the prior drew ≥ ``min_samples`` times: their number ``n``,
    the median and the largest |log₁₀(P_B^EP / P_B^direct)|, and the median signed log₁₀ ratio."""
    sel = pb.prior.counts.counts >= min_samples
    sub = pb.prior.counts.subset(sel)
    if sub.n_distinct == 0:
        return {"n": 0, "median_abs_log10": math.nan, "max_abs_log10": math.nan, "median_log10": math.nan}
    lp_d, _ = pb.prior.log_pb(sub)
    lp_e = pb.ep.lookup(sub)
    ok = np.isfinite(lp_e)
    r = (lp_e[ok] - lp_d[ok]) / math.log(10)
    if r.size == 0:
        return {"n": 0, "median_abs_log10": math.nan, "max_abs_log10": math.nan, "median_log10": math.nan}
    return {"n": int(r.size), "median_abs_log10": float(np.median(np.abs(r))), "max_abs_log10": float(np.abs(r).max()),
            "median_log10": float(np.median(r))}


# --------------------------------------------------------------------------------------------------------------------
# §3 the seven targets, §4 random train sets, §5 optimisers, §6 |S| = 64
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class SplitStudy:
    """Runs under several rules on one split, with P_B for their functions: ``runs`` (rule name → TrainingRun),
    ``pb`` (:class:`PBStudy`, or None), ``stats`` (rule name → :func:`compare`)."""

    name: str
    split: Any
    runs: dict[str, TrainingRun]
    pb: PBStudy | None
    stats: dict[str, dict[str, Any]]


def split_study(name: str, split, setup: BooleanSetup, rules: Sequence[str], *, n_networks: int,
                prior_samples: int = 0, progress: bool = False) -> SplitStudy:
    """``n_networks`` runs per rule (``"keras"``/``"clean"``) on ``split``; then EP for their functions, direct
    sampling with ``prior_samples`` networks (0: none) and the statistics of each rule."""
    runs = {r: setup.train(split, setup.rule(r), n_networks, progress=progress) for r in rules}
    pb = None
    if prior_samples:
        pb = pb_study(split, setup, runs.values(), prior_samples=prior_samples, progress=progress)
    stats = {r: (compare(run, split.y_test, min_count=setup.min_count) if pb is None
                 else pb.compare(run, split.y_test, min_count=setup.min_count)) for r, run in runs.items()}
    return SplitStudy(name=name, split=split, runs=runs, pb=pb, stats=stats)


def ep_only_study(name: str, split, setup: BooleanSetup, rules: Sequence[str], *, n_networks: int,
                  progress: bool = False) -> SplitStudy:
    """As :func:`split_study` with P_B by EP only (no direct sampling): for the random train sets."""
    runs = {r: setup.train(split, setup.rule(r), n_networks, progress=progress) for r in rules}
    counts = [r.counts for r in runs.values() if r.n_counted]
    ep = setup.ep(split, counts)
    marg = setup.marginals(split)
    stats = {r: compare(run, split.y_test, ep=ep, marginals=marg, min_count=setup.min_count)
             for r, run in runs.items()}
    return SplitStudy(name=name, split=split, runs=runs, pb=None, stats=stats)


def target_studies(targets: Sequence[int], setup: BooleanSetup, rules: Sequence[str], *, n_networks: int,
                   prior_samples: int, progress: bool = False) -> dict[int, SplitStudy]:
    """:func:`split_study` for each of the authors' targets on the mask they used with it."""
    from sgdbayes.data.boolean import MINGARD_TARGET_MASK

    return {int(t): split_study(f"target {t} (mask {MINGARD_TARGET_MASK[int(t)]})", authors_split(int(t)), setup,
                                rules, n_networks=n_networks, prior_samples=prior_samples, progress=progress)
            for t in targets}


def studies_table(studies: Mapping[Any, SplitStudy], *, columns: Sequence[str]) -> Any:
    """One row per (study, rule): the study's name, the target's K_LZ, the rule, then ``columns`` of
    :func:`compare`."""
    from sgdbayes.data import lz_complexity

    rows, names, rules, lz = {}, [], [], []
    for key, st in studies.items():
        for rule, stats in st.stats.items():
            rows[(key, rule)] = stats
            names.append(st.name)
            lz.append(float(lz_complexity(st.split.target)))
            rules.append("Keras" if rule == "keras" else rule)
    return compare_frame(rows, columns=columns, index={"set-up": names, "target K_LZ": lz, "stop rule": rules})


def train_set_studies(splits: Sequence, setup: BooleanSetup, rules: Sequence[str], *, n_networks: int,
                      progress: bool = False) -> dict[int, SplitStudy]:
    """:func:`ep_only_study` on each train set of ``splits`` (numbered from 1)."""
    return {k + 1: ep_only_study(f"random S {k + 1}", sp, setup, rules, n_networks=n_networks, progress=progress)
            for k, sp in enumerate(splits)}


def spread_series(studies: Mapping[Any, SplitStudy], quantities: Mapping[str, str]
                  ) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray | None]]]:
    """For :func:`sgdbayes.plots.function_probability.figure_spread`: axis label → {rule → (value per study,
    its standard error or None)} for each :func:`compare` quantity of ``quantities`` (axis label → quantity)."""
    rules = list(next(iter(studies.values())).stats)
    out = {}
    for label, q in quantities.items():
        se_key = f"{q}_se" if f"{q}_se" in COMPARE_COLUMNS else None
        out[label] = {("Keras" if r == "keras" else r): (
            np.array([st.stats[r][q] for st in studies.values()], dtype=float),
            None if se_key is None else np.array([st.stats[r][se_key] for st in studies.values()], dtype=float))
            for r in rules}
    return out


def target_panels(studies: Mapping[int, SplitStudy]) -> dict[str, dict[str, tuple[FunctionCounts, np.ndarray]]]:
    """For :func:`sgdbayes.plots.function_probability.figure_targets`: study name → {rule → (counts, log P_B by
    EP)}."""
    return {st.name: {("Keras" if r == "keras" else r): (run.counts, st.pb.ep.lookup(run.counts))
                      for r, run in st.runs.items()} for st in studies.values() if st.pb is not None}


def targets_table() -> Any:
    """The authors' seven targets: mask, K_LZ of the 128-bit string, the fraction of ones on all inputs and on S."""
    import pandas as pd

    from sgdbayes.data import lz_complexity
    from sgdbayes.data.boolean import MINGARD_TARGET_MASK, MINGARD_TARGETS

    rows = []
    for t, bits in MINGARD_TARGETS.items():
        sp = authors_split(t)
        rows.append({"target": t, "first 32 bits": bits[:32] + "…", "mask": MINGARD_TARGET_MASK[t],
                     "K_LZ": float(lz_complexity(bits)), "ones on all 128 inputs": bits.count("1") / 128,
                     "ones on S": float(np.asarray(sp.y_train).mean())})
    return pd.DataFrame(rows)


def authors_standard_error(run: TrainingRun, k: int = 1, *, n_processes: int = 400, runs_per_process: int = 1500
                           ) -> float:
    """The Monte-Carlo standard error the authors' own top-``k`` mass carried, estimated from ``run`` (the Keras
    rule's followers, in emulated processes): their estimate pooled ``n_processes`` processes of
    ``runs_per_process`` runs, so its variance is (σ²_between + σ²_within/runs_per_process)/n_processes, with the
    between-process variance of a process's mean σ²_between and the within-process variance σ²_within of the
    0/1 indicator "the run ends on one of the top k" estimated from ``run``'s processes by one-way ANOVA (method of
    moments, σ²_between floored at 0). NaN without run data or with fewer than two processes."""
    if run.run_keys is None or run.n_counted == 0:
        return math.nan
    top = run.counts.keys[:_check_positive("k", k)]
    hit = np.isin(_void(run.run_keys), _void(top)).astype(np.float64)
    _, c = np.unique(run.run_cluster, return_inverse=True)
    c = c.reshape(-1)
    n_c = np.bincount(c).astype(np.float64)
    if n_c.size < 2:
        return math.nan
    means = np.bincount(c, weights=hit) / n_c
    grand = hit.mean()
    within = float(((hit - means[c]) ** 2).sum() / max(hit.size - n_c.size, 1))
    n0 = (hit.size - (n_c ** 2).sum() / hit.size) / (n_c.size - 1)  # effective group size (unbalanced ANOVA)
    between_ms = float((n_c * (means - grand) ** 2).sum() / (n_c.size - 1))
    var_between = max((between_ms - within) / n0, 0.0)
    return math.sqrt((var_between + within / runs_per_process) / n_processes)


def explorer_runs(split, proto: ProtocolStudy, pb: PBStudy, studies: Mapping[int, SplitStudy] | None = None,
                  opt: OptimiserStudy | None = None) -> dict[str, tuple[TrainingRun, PBTable, np.ndarray]]:
    """Every run of the page that has P_B by EP, for the explorer: label → (run, EP table, true labels of E)."""
    y = np.asarray(split.y_test)
    out = {"Keras rule, headline target": (proto.keras, pb.ep, y),
           "clean rule, headline target": (proto.clean, pb.ep, y)}
    for st in (studies or {}).values():
        if st.pb is not None:
            for r, run in st.runs.items():
                out[f"{'Keras' if r == 'keras' else r} rule, {st.name}"] = (run, st.pb.ep, np.asarray(st.split.y_test))
    if opt is not None:
        for (name, b, r), run in opt.runs.items():
            out[f"{name} (lr {opt.lrs[name]:g}), batch {b}, {'Keras' if r == 'keras' else r} rule"] = (run, opt.ep, y)
    return out


def spread_table(studies: Mapping[Any, SplitStudy], *, quantities: Sequence[str],
                 reference: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """Mean, standard deviation, minimum and maximum over the studies of each :func:`compare` quantity, per rule;
    with ``reference`` (rule → compare row, e.g. the authors' mask) that value beside them."""
    import pandas as pd

    rules = list(next(iter(studies.values())).stats)
    recs = []
    for rule in rules:
        for q in quantities:
            vals = np.array([st.stats[rule][q] for st in studies.values()], dtype=float)
            ok = vals[np.isfinite(vals)]
            recs.append({"stop rule": "Keras" if rule == "keras" else rule, "quantity": COMPARE_COLUMNS[q].strip(),
                         "train sets": int(ok.size), "mean": ok.mean() if ok.size else math.nan,
                         "sd": ok.std(ddof=1) if ok.size > 1 else math.nan,
                         "min": ok.min() if ok.size else math.nan, "max": ok.max() if ok.size else math.nan,
                         "authors' S": (reference or {}).get(rule, {}).get(q, math.nan)})
    return pd.DataFrame(recs)


@dataclass
class OptimiserStudy:
    """Runs for each (optimiser, batch size, rule) on one split, EP over all their functions, and the statistics
    per setting (``stats``: key → :func:`compare`)."""

    runs: dict[tuple[str, int, str], TrainingRun]
    ep: PBTable
    stats: dict[tuple[str, int, str], dict[str, Any]]
    lrs: dict[str, float]


def optimiser_study(split, setup: BooleanSetup, names: Sequence[str], lrs: Sequence[float], batches: Sequence[int],
                    rules: Sequence[str], *, n_networks: int, progress: bool = False) -> OptimiserStudy:
    """Each optimiser (with its learning rate, in the order of ``names``, and Keras' other defaults,
    :func:`keras_hyper`) × batch size × stop rule, ``n_networks`` runs each; one EP over the union of their
    functions."""
    names, lrs = list(names), [float(v) for v in lrs]
    if len(names) != len(lrs):
        raise ValueError(f"{len(names)} optimisers but {len(lrs)} learning rates: they pair up one to one")
    for b in batches:
        if _check_positive("batch size", b) > split.n_train:
            raise ValueError(f"batch size {b} exceeds |S| = {split.n_train}")
    runs = {}
    for name, lr in zip(names, lrs, strict=True):
        for b in batches:
            for r in rules:
                runs[(name, int(b), r)] = setup.train(split, setup.rule(r), n_networks, optimizer=name, lr=lr,
                                                      batch=int(b), optimizer_kwargs=keras_hyper(name) or None,
                                                      progress=progress)
    counts = [r.counts for r in runs.values() if r.n_counted]
    ep = setup.ep(split, counts) if counts else PBTable(split.n_test, np.zeros((0, (split.n_test + 7) // 8),
                                                                                 np.uint8), np.zeros(0), "full")
    stats = {k: compare(run, split.y_test, ep=ep, min_count=setup.min_count) for k, run in runs.items()}
    return OptimiserStudy(runs=runs, ep=ep, stats=stats, lrs=dict(zip(names, lrs, strict=True)))


def optimiser_table(study: OptimiserStudy) -> Any:
    """One row per setting of :func:`optimiser_study`."""
    keys = list(study.stats)
    return compare_frame(study.stats, columns=["n_counted", "n_not_fitted", "n_diverged", "mean_epochs", "top1",
                                               "top1_se", "n_distinct", "ep_corr", "ep_within", "ep_n",
                                               "error_sgd"],
                         index={"optimiser": [k[0] for k in keys], "learning rate": [study.lrs[k[0]] for k in keys],
                                "batch": [k[1] for k in keys],
                                "stop rule": ["Keras" if k[2] == "keras" else k[2] for k in keys]})


def settings_series(study: OptimiserStudy, quantities: Mapping[str, str]
                    ) -> tuple[list[str], dict[str, dict[str, tuple[np.ndarray, np.ndarray | None]]]]:
    """For :func:`sgdbayes.plots.function_probability.figure_settings`: the row labels ("adam, batch 8", in study
    order) and axis label → {rule → (value per row, its standard error or None)} for each :func:`compare` quantity
    of ``quantities`` (axis label → quantity)."""
    combos = list(dict.fromkeys((k[0], k[1]) for k in study.stats))
    rules = list(dict.fromkeys(k[2] for k in study.stats))
    out = {}
    for label, q in quantities.items():
        se_key = f"{q}_se" if f"{q}_se" in COMPARE_COLUMNS else None
        out[label] = {("Keras" if r == "keras" else r): (
            np.array([study.stats[(n, b, r)][q] for n, b in combos], dtype=float),
            None if se_key is None else np.array([study.stats[(n, b, r)][se_key] for n, b in combos], dtype=float))
            for r in rules}
    return [f"{n}, batch {b}" for n, b in combos], out


# --------------------------------------------------------------------------------------------------------------------
# §7 P_B and complexity
# --------------------------------------------------------------------------------------------------------------------
def complexity_data(split, pb: PBStudy, counts: FunctionCounts) -> dict[str, Any]:
    """K_LZ and the Boolean critical sample ratio (:func:`sgdbayes.complexity.boolean_csr`) of each function
    completed on all 128 inputs with S's labels, with its P_B: for the functions the prior sampler drew
    (``prior_*``, P_B by direct sampling, all functions, not only SGD's) and for SGD's functions with an EP value
    (``sgd_*``, P_B by EP, ``sgd_p``: P_SGD); Spearman correlations of log P_B with each complexity and their
    p-values (``rho_*``, ``p_*``)."""
    from scipy.stats import spearmanr

    from sgdbayes.complexity import boolean_csr

    out: dict[str, Any] = {}
    pc = pb.prior.counts
    if pc.n_distinct:
        full = split.full_function(pc.bits())
        out["prior_lz"] = lz_of_functions(split, pc)
        out["prior_csr"] = boolean_csr(full, split.n)
        out["prior_pb"] = pc.probabilities()
        out["prior_count"] = pc.counts
    lp = pb.ep.lookup(counts)
    ok = np.isfinite(lp)
    sub = counts.subset(ok)
    out["sgd_lz"] = lz_of_functions(split, sub) if sub.n_distinct else np.zeros(0)
    out["sgd_csr"] = boolean_csr(split.full_function(sub.bits()), split.n) if sub.n_distinct else np.zeros(0)
    out["sgd_pb"] = np.exp(lp[ok])
    out["sgd_p"] = counts.probabilities()[ok]
    for who in ("prior", "sgd"):
        for c in ("lz", "csr"):
            x, y = out.get(f"{who}_{c}"), out.get(f"{who}_pb")
            if x is None or len(x) < 3 or np.ptp(x) == 0:
                out[f"rho_{who}_{c}"], out[f"p_{who}_{c}"] = math.nan, math.nan
                continue
            r = spearmanr(x, np.log(y))
            out[f"rho_{who}_{c}"], out[f"p_{who}_{c}"] = float(r.statistic), float(r.pvalue)
    return out


# --------------------------------------------------------------------------------------------------------------------
# the chapter's parameters (checked by `sgdbayes run/book` before any kernel starts)
# --------------------------------------------------------------------------------------------------------------------
class _BooleanTarget(Kind):
    """One of the authors' target numbers 1–7, or a 128-character '0'/'1' string."""

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool):
            return "not a target"
        if isinstance(value, int):
            return None if 1 <= value <= 7 else "not one of the authors' targets 1–7"
        if isinstance(value, str):
            if len(value) != 128:
                return f"a string of length {len(value)}, not 128"
            return None if not set(value) - {"0", "1"} else "a string with characters other than '0'/'1'"
        return "not a target"

    def describe(self) -> str:
        return "an authors' target number 1–7 or a 128-character '0'/'1' string"


class _BooleanMask(Kind):
    """'' (the authors' mask for the target), 'A', 'B', or a 128-character '0'/'1' string with 32 ones."""

    def problem(self, value: Any) -> str | None:
        from sgdbayes.data.boolean import mask_problem

        return None if value == "" else mask_problem(value)

    def describe(self) -> str:
        return "'' (the authors' mask for the target), 'A', 'B' or a 128-character '0'/'1' string with 32 ones"


_N_TRAIN = 32  # |S| of the authors' masks
_NETWORK_COUNTS = ("main_networks", "clean_networks", "cell_networks", "overtrain_networks", "target_networks",
                   "train_set_networks",
                   "opt_networks", "large_networks")


def _whole_processes(p: Mapping[str, Any]) -> bool:
    r = p["keras_runs_per_process"]
    return all(p[n] % r == 0 for n in (*_NETWORK_COUNTS, "shard_size"))


def _string_target_needs_mask(p: Mapping[str, Any]) -> bool:
    return not isinstance(p["bool_target"], str) or p["bool_mask"].upper() not in ("",)


PARAMETERS = Spec(
    profile=Choice("smoke", "default", "paper"), device=Choice("auto", "cpu", "cuda"), seed=Int(min=0),
    scheduler=Str(nonempty=True),
    bool_target=_BooleanTarget(), bool_mask=_BooleanMask(), bool_hidden=List(Int(min=1), min_len=1),
    bool_sigma_w=Float(gt=0), bool_sigma_b=Float(min=0), bool_lr=Float(gt=0), bool_batch=Int(min=1, max=_N_TRAIN),
    max_epochs=Int(min=1), keras_threshold=Float(), keras_wait=Int(min=0), keras_runs_per_process=Int(min=1),
    shard_size=Int(min=1), main_networks=Int(min=1), clean_networks=Int(min=1), cell_networks=Int(min=1),
    overtrain_epochs=Int(min=1),
    overtrain_networks=Int(min=1), prior_samples=Int(min=1), gp_samples=Int(min=1), ess_chains=Int(min=2),
    ess_steps=Int(min=1), ess_burn_in=Int(min=0), ep_min_count=Int(min=1), ep_tol=Float(gt=0, lt=1),
    torch_threads=Int(min=1),
    min_count=Int(min=1), targets=List(Int(min=1, max=7), min_len=1, unique=True), target_networks=Int(min=1),
    target_prior_samples=Int(min=1), train_sets=Int(min=1), train_set_networks=Int(min=1),
    opt_names=List(Choice(*KERAS_LR), min_len=1, unique=True), opt_lrs=List(Float(gt=0), min_len=1),
    opt_batches=List(Int(min=1, max=_N_TRAIN), min_len=1, unique=True),
    opt_rules=List(Choice("keras", "clean"), min_len=1, unique=True), opt_networks=Int(min=1),
    large_networks=Int(min=1),
    relations=[
        same_length("opt_names", "opt_lrs"),
        Rule(_whole_processes, "every network count and shard_size must be a multiple of keras_runs_per_process "
                               "(each emulated process of the Keras rule is whole)",
             ("keras_runs_per_process", "shard_size", *_NETWORK_COUNTS)),
        Rule(_string_target_needs_mask, "a bool_target given as a 128-bit string needs an explicit bool_mask",
             ("bool_target", "bool_mask")),
    ],
)


def record_numbers(chapter: str, numbers: Mapping[str, Mapping[str, Any]], *, profile: str | None = None) -> list[str]:
    """:func:`sgdbayes.results.record` for each ``name → {value, paper, label, description, unit}``; a value that is
    NaN or infinite (a statistic without enough data) is recorded as the text "not enough data", never as NaN.
    Returns the names recorded that way."""
    from sgdbayes import results

    missing = []
    for name, spec in numbers.items():
        spec = dict(spec)
        value = spec.pop("value")
        if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
            value = "not enough data"
            missing.append(name)
        elif isinstance(value, np.generic):
            value = value.item()
        results.record(chapter, name, value, profile=profile, **spec)
    return missing
