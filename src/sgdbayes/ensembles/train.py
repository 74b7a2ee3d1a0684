"""Train M independent networks at once until each fits its training set; record the functions they end on.

Algorithm (one chunk of networks at a time, see ``auto_chunk_size``):

1. Network ``i`` (global index ``index_offset + i``) gets its initial parameters and its minibatch stream from
   ``(seed, i)`` only (``network_streams``), so it trains identically whatever the chunking, M or device layout.
2. Each epoch every network visits S in its own random order (``epoch_permutations``) in ``ceil(|S|/B)`` minibatches
   of size B (the last one smaller when B ∤ |S|, as ``torch.utils.data.DataLoader(drop_last=False)``). A step gathers
   each network's minibatch ``X[idx]`` (``idx [M, B]``), takes the gradient of Σ_m (mean loss of network m) — which is
   each network's own gradient — and applies the batched optimiser. Full batch (B ≥ |S|) uses one shared GEMM.
   Two exact fast paths (same law, same seeds; equal to the general path up to float rounding): a chunk of one
   network (wide nets on CPU) runs with ``torch.nn``-shaped 2-D tensors (``model.forward_single``, ``addmm``) instead
   of batch-1 ``bmm``; plain SGD (momentum 0) on an FCN runs ``FCN.sgd_step_``, a hand-written backward whose
   weight updates are fused into the gradient GEMMs (``FUSED_SGD``). On CPU with a C++ compiler, plain SGD on an
   FCN of up to ``fused.NATIVE_MAX_PARAMS`` parameters at batch ≤ ``fused.NATIVE_MAX_BATCH`` takes the native path
   (``NATIVE_SGD``, ``sgdbayes.ensembles.fused.train_runs``): each network runs from its first epoch to the end of
   its run in a compiled kernel — same initial parameters, same visiting orders, the stop rule below applied at the
   same epoch ends, its function on E taken there — with two (batch ≤ 8) or four (batch ≤ 4) networks sharing each
   vector register; ~10× the torch path, equal to it up to float rounding (on the chapter's Boolean ensembles of
   10⁴ networks: the same statuses, epochs and functions for every network, ``benchmarks/counts_equivalence.py``).
3. After every epoch the training accuracy of every network is measured on the full S (as in the authors' code);
   for |S| > 2·``CHECK_PREFIX`` a network that misclassifies one of the first ``CHECK_PREFIX`` examples and
   provably has finite logits is known not to have fitted without evaluating the rest (``_epoch_check``).
   The stop rule (``sgdbayes.ensembles.stop``) decides from that check which networks are finished:
   - clean (default): a network at 100% has *fitted* (``epochs_to_fit``); it then trains ``overtrain_epochs`` more
     epochs and is finished; one that has not fitted after ``max_epochs`` is finished as *not_fitted*;
   - Keras (the authors' code): the fit test thresholds the logit at 0.5; a network is finished at the first epoch
     ≥ its floor at which it passes (floor = e₀ + wait: its own first fit, or, with the never-reset callback, that
     of its emulated process's leader, trained first — see ``_train_processes``); at ``max_epochs`` (all epochs of
     a run) it ends anyway, fitted iff it passes then.
   A network whose parameters or logits stop being finite is finished as *diverged*. Finished networks are removed
   from the stack (parameters and optimiser state), so they receive no further update of any kind and are never
   counted unless fitted.
4. A finished network's function is its labelling of the test inputs E: ``logit > threshold`` (clean rule:
   threshold 0 for CE and for MSE on ±1 targets, 0.5 for MSE on 0/1 targets; Keras rule: its ``label_threshold``,
   0 as in the authors' ``model.predict(test) > 0``). ``fits_by_sign`` records whether ``logit > 0`` classifies
   all of S correctly at the end (not implied by the Keras fit test).

Losses on one logit z with label y ∈ {0, 1}: ``"ce"`` = BCE-with-logits ``softplus(z) − y z``; ``"mse"`` =
``(z − t)²`` with t = 2y − 1 (``mse_targets="pm1"``, default) or t = y (``"01"``). Each is averaged over the
minibatch, as ``torch.nn`` does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sgdbayes.device import get_device
from sgdbayes.ensembles.models import FCN, EnsembleModel
from sgdbayes.ensembles.optim import BatchedOptimizer, make_optimizer
from sgdbayes.ensembles.stop import StopRule, as_stop_rule, process_layout
from sgdbayes.progress import bar as progress_bar

__all__ = ["EnsembleResult", "train_ensemble", "network_streams", "epoch_permutations", "auto_chunk_size",
           "STATUSES", "LOSSES", "StopRule"]

STATUSES = ("fitted", "not_fitted", "diverged")
LOSSES = ("ce", "mse")
_MSE_TARGETS = ("pm1", "01")
_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9

# CPU chunk rule (measured on a 2-core CPU, 1 MiB L2/core, 8 MiB L3; checked by benchmarks/bench_ensembles.py):
# a network whose per-step working set (parameters, gradients, optimiser state, minibatch activations) is small is
# dispatch-bound — stack many (up to CPU_SMALL_NET_STACK_BYTES in all) to amortise the per-op overhead; a network
# larger than CPU_SMALL_NET_BYTES is bandwidth-bound — stacking streams its weights from DRAM and allocates large
# temporaries every step, which measured 2–3× slower than one network at a time, so only CPU_LARGE_NET_STACK_BYTES
# are stacked (1 network for width ≥ 256 on 784 inputs). A chunk of 1 takes the single-network path (2-D addmm, as a
# plain torch.nn loop; see _train_chunk), which the batch-1 bmm path was ~0.5× of at width 1024.
CPU_SMALL_NET_BYTES = 1 * 2**20
CPU_SMALL_NET_STACK_BYTES = 64 * 2**20
CPU_LARGE_NET_STACK_BYTES = 4 * 2**20
CPU_MAX_CHUNK = 2048
MEMORY_CAP_BYTES = 1 * 2**30
# Plain SGD (momentum 0) on an FCN takes FCN.sgd_step_ (hand-written backward, updates fused into the gradient GEMMs):
# the same law and seeds, equal to the autograd + BatchedOptimizer path up to float rounding (which individual
# trajectories can amplify over many steps). False forces the autograd path (tests compare the two).
FUSED_SGD = True
# Plain SGD on an FCN on CPU with a C++ compiler takes the native path (sgdbayes.ensembles.fused.train_runs): whole runs
# in a compiled kernel, the stop rule included, networks sharing vector registers; same law, seeds and stop rules,
# equal to the torch paths up to float rounding. False forces the torch paths (tests and benchmarks compare them).
NATIVE_SGD = True
# End-of-epoch check (its full-S forward is ~1/3 of an epoch's FLOPs at batch 32): screen every network on the first
# CHECK_PREFIX examples of S and finish the check on all of S only for the networks that may have fitted, finish now,
# or could have non-finite logits (see _epoch_check); exact, not an estimate.
CHECK_PREFIX = 64
LOGIT_SAFE_BOUND = 1e30


# --------------------------------------------------------------------------------------------------------------------
# per-network randomness
# --------------------------------------------------------------------------------------------------------------------
def network_streams(seed: int, indices: Sequence[int]) -> tuple[list[int], Tensor]:
    """Per-network seeds derived from ``(seed, i)`` with ``numpy.random.SeedSequence(seed, spawn_key=(i,))`` (the
    i-th child of ``sgdbayes.seed.spawn_seeds(seed, ·)``).

    Returns ``(init_seeds, keys)``: a 63-bit seed per network for its initialisation, and ``keys`` (int64 ``[m, 2]``,
    two 32-bit words) for its minibatch stream (``epoch_permutations``). The four state words are
    ``SeedSequence.generate_state(4)``, computed for all indices below 2³² at once by ``_seed_sequence_words``
    (numpy's algorithm, vectorised; tests compare it with ``SeedSequence`` itself).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    idx = [int(i) for i in indices]
    if any(i < 0 for i in idx):
        raise ValueError("network indices must be >= 0")
    if idx and max(idx) < 2**32:
        words = _seed_sequence_words(int(seed), np.asarray(idx, dtype=np.uint64))
    else:
        words = np.array([np.random.SeedSequence(int(seed), spawn_key=(i,)).generate_state(4, dtype=np.uint32)
                          for i in idx], dtype=np.uint32).reshape(len(idx), 4)
    init_seeds = ((words[:, 0].astype(np.uint64) << np.uint64(31)) | (words[:, 1].astype(np.uint64) >> np.uint64(1)))
    return [int(v) for v in init_seeds], torch.from_numpy(words[:, 2:4].astype(np.int64))


_SS_INIT_A, _SS_MULT_A, _SS_INIT_B, _SS_MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_SS_MIX_L, _SS_MIX_R = 0xCA01F9DD, 0x4973F715


def _seed_sequence_words(seed: int, indices: np.ndarray, n_words: int = 4) -> np.ndarray:
    """``SeedSequence(seed, spawn_key=(i,)).generate_state(n_words)`` for every i of ``indices`` (uint64 < 2³²) at
    once: uint32 ``[m, n_words]``. numpy's algorithm (``numpy/random/bit_generator.pyx``): the entropy words of
    ``seed`` (padded with zeros to the pool size 4, as numpy does when a spawn key is present) then ``i`` are hashed
    into a pool of 4 words (``hashmix``/``mix``, whose multiplier sequence does not depend on the data), and the
    output words are hashed from the pool."""
    run, n = [], int(seed)
    while True:
        run.append(n & 0xFFFFFFFF)
        n >>= 32
        if n == 0:
            break
    run += [0] * (4 - len(run)) if len(run) < 4 else []
    m = indices.shape[0]
    entropy = [np.full(m, w, dtype=np.uint32) for w in run] + [indices.astype(np.uint32)]
    const = _SS_INIT_A

    def hashmix(v: np.ndarray) -> np.ndarray:
        nonlocal const
        v = v ^ np.uint32(const)
        const = (const * _SS_MULT_A) & 0xFFFFFFFF
        v = v * np.uint32(const)
        return v ^ (v >> np.uint32(16))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = np.uint32(_SS_MIX_L) * x - np.uint32(_SS_MIX_R) * y
        return r ^ (r >> np.uint32(16))

    pool = [hashmix(entropy[i]) for i in range(4)]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(4, len(entropy)):
        for dst in range(4):
            pool[dst] = mix(pool[dst], hashmix(entropy[src]))
    const, out = _SS_INIT_B, []
    for k in range(n_words):
        v = pool[k % 4] ^ np.uint32(const)
        const = (const * _SS_MULT_B) & 0xFFFFFFFF
        v = v * np.uint32(const)
        out.append(v ^ (v >> np.uint32(16)))
    return np.stack(out, axis=1) if m else np.zeros((0, n_words), dtype=np.uint32)


def _mul32(x: Tensor, c: int) -> Tensor:
    """``x · c mod 2³²`` for int64 ``x`` in [0, 2³²) without int64 overflow (c split in 16-bit halves)."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _MASK


def _hash32(x: Tensor) -> Tensor:
    """A bijective 32-bit integer mixer (Wellons' ``lowbias32``) on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def epoch_permutations(keys: Tensor, epoch: int, n: int) -> Tensor:
    """The order in which each network visits its n training examples in ``epoch`` (≥ 1): int64 ``[m, n]``.

    Row r is the argsort of n hashed 32-bit keys of (``keys[r]``, epoch, position) — a counter-based stream, so all m
    rows come from one vectorised call and row r depends on nothing but ``keys[r]``. Ties between keys (probability
    < n²/2³³ per epoch) are broken by position (stable sort).
    """
    k0, k1 = keys[:, :1], keys[:, 1:]
    e = torch.tensor(epoch % 2**32, dtype=torch.int64, device=keys.device)
    base = _hash32(k0 ^ _hash32(_mul32(e, _GOLDEN) ^ k1))  # [m, 1]
    j = torch.arange(n, dtype=torch.int64, device=keys.device)
    h = _hash32(_hash32((base + _mul32(j, _GOLDEN)) & _MASK) ^ k1)  # [m, n]
    return torch.sort(h, dim=1, stable=True).indices


# --------------------------------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class EnsembleResult:
    """Outcome of ``train_ensemble`` for M networks (index m ↔ global network ``network_index[m]``).

    ``status`` [M] str in ``STATUSES``: ``"fitted"`` when the stop rule ended the run on a fit (see ``StopRule``),
    ``"not_fitted"`` when the epoch budget ran out first, ``"diverged"`` when parameters or logits stopped being
    finite; ``epochs_to_fit`` / ``steps_to_fit`` [M]: the run's own first fit by the rule's fit test (−1 if never);
    ``epochs_trained`` [M]: the epoch at which it stopped (clean rule: epochs_to_fit + overtrain_epochs for fitted
    runs); ``train_accuracy`` and ``train_loss`` [M] on the full S when the network finished (accuracy by the fit
    test); ``fits_by_sign`` bool [M]: whether logit > 0 classified all of S correctly then; ``test_labels`` bool
    ``[M, n_test]`` (CPU): the recorded function on E (logit > the rule's label threshold); ``process`` [M]: the
    emulated process of each run (−1 when runs are independent), ``leader`` bool [M]: the run set its process's
    e₀, ``stop_floor`` [M]: the earliest epoch at which the run could stop on a fit (e₀ + wait; −1 under the clean
    rule or when never known); ``params`` (only with ``return_params=True``): stacked final parameters
    ``[M, ...]`` (CPU). A run is *counted* (``counted``) iff it is fitted and fits S by the fit test at its end.
    """

    status: np.ndarray
    epochs_to_fit: np.ndarray
    steps_to_fit: np.ndarray
    epochs_trained: np.ndarray
    train_accuracy: np.ndarray
    train_loss: np.ndarray
    test_labels: Tensor
    network_index: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    params: list[Tensor] | None = None
    wall_time_s: float = float("nan")
    fits_by_sign: np.ndarray | None = None
    process: np.ndarray | None = None
    leader: np.ndarray | None = None
    stop_floor: np.ndarray | None = None
    stop_rule: StopRule = field(default_factory=StopRule.clean)

    @property
    def n_networks(self) -> int:
        return int(self.status.shape[0])

    @property
    def fitted(self) -> np.ndarray:
        """bool [M]: ended on a fit by the stop rule (clean: reached it before any overtraining) without diverging."""
        return self.status == "fitted"

    @property
    def counted(self) -> np.ndarray:
        """bool [M]: the runs whose functions are counted: fitted, and fitting S by the fit test at the end."""
        return self.fitted & (self.train_accuracy == 1.0)

    def counts(self) -> dict[str, int]:
        return {s: int((self.status == s).sum()) for s in STATUSES}

    def _kept(self, require_final_fit: bool, leaders: bool) -> np.ndarray:
        keep = self.counted if require_final_fit else self.fitted
        if not leaders and self.leader is not None:
            keep = keep & ~self.leader
        return keep

    def function_counts(self, *, require_final_fit: bool = True, leaders: bool = True):
        """``sgdbayes.functions.FunctionCounts`` of the test labellings of the fitted networks only. With
        ``require_final_fit`` a fitted network that lost 100% training accuracy during overtraining is left out too.
        ``leaders=False`` leaves out the leaders of the Keras rule's emulated processes: the rest is the mixture over
        e₀ of the runs that followed a leader, which is what processes of many runs (the authors': 1,500) give up to
        a weight 1/runs_per_process, so fewer runs per process (more e₀ draws) can estimate it."""
        from sgdbayes.functions import FunctionCounts

        keep = self._kept(require_final_fit, leaders)
        n_bits = int(self.test_labels.shape[1])
        if n_bits == 0:
            raise ValueError("no test inputs were given (X_test=None), so there are no functions to count")
        bits = self.test_labels[torch.from_numpy(keep)]
        return FunctionCounts.from_bits(bits, n_bits) if bits.shape[0] else FunctionCounts.empty(n_bits)

    def top_mass(self, k: int = 1, *, leaders: bool = True) -> tuple[float, float]:
        """Mass of the k most frequent functions among the counted runs (``leaders=False``: without the Keras
        rule's process leaders, see ``function_counts``), and its Monte-Carlo standard error.

        The error treats each emulated process as one cluster (runs of a process share e₀, so they are not
        independent; independent runs are clusters of one): with a_p counted runs of process p on the top-k
        functions out of n_p, mass = Σa_p / Σn_p and SE² = P/(P−1) · Σ_p (a_p − mass·n_p)² / (Σn_p)² (the ratio
        estimator's linearised variance over P clusters). The top-k set is chosen from the same runs (a small
        upward bias for near-ties, ignored). Returns (nan, nan) with no counted run.
        """
        k = _positive_int("k", k)
        keep = self._kept(True, leaders)
        n = int(keep.sum())
        if n == 0:
            return float("nan"), float("nan")
        bits = self.test_labels[torch.from_numpy(keep)].numpy()
        _, inverse, freq = np.unique(np.packbits(bits, axis=1), axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        top = np.argsort(-freq, kind="stable")[:k]
        hit = np.isin(inverse, top)
        cluster = self.process[keep] if self.process is not None else np.full(n, -1)
        cluster = np.where(cluster >= 0, cluster, -1 - np.arange(n))  # independent runs: one cluster each
        _, c = np.unique(cluster, return_inverse=True)
        a, m = np.bincount(c, weights=hit.astype(float)), np.bincount(c).astype(float)
        mass, P = a.sum() / n, a.shape[0]
        se = math.sqrt(P / (P - 1) * float(((a - mass * m) ** 2).sum())) / n if P > 1 else float("nan")
        return float(mass), se

    def summary(self) -> dict[str, Any]:
        f, c = self.fitted, self.counted
        out: dict[str, Any] = {"n_networks": self.n_networks, **{f"n_{k}": v for k, v in self.counts().items()}}
        out["n_counted"] = int(c.sum())
        if self.fits_by_sign is not None:
            out["n_counted_not_fitting_by_sign"] = int((c & ~self.fits_by_sign).sum())
        out["mean_epochs_to_fit"] = float(self.epochs_to_fit[f].mean()) if f.any() else float("nan")
        out["mean_epochs_trained"] = float(self.epochs_trained[c].mean()) if c.any() else float("nan")
        out["wall_time_s"] = self.wall_time_s
        out["networks_per_s"] = self.n_networks / self.wall_time_s if self.wall_time_s > 0 else float("nan")
        return out

    def __repr__(self) -> str:
        c = self.counts()
        return (f"EnsembleResult(M={self.n_networks}, fitted={c['fitted']}, not_fitted={c['not_fitted']}, "
                f"diverged={c['diverged']}, n_test={self.test_labels.shape[1]}, rule={self.stop_rule.kind}, "
                f"wall={self.wall_time_s:.3g} s)")


# --------------------------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------------------------
def _as_float_tensor(x: Any, name: str, device: torch.device) -> Tensor:
    t = torch.as_tensor(x)
    if not (t.is_floating_point() or t.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise ValueError(f"{name} must be numeric, got dtype {t.dtype}")
    t = t.to(device=device, dtype=torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf")
    return t.contiguous()


def _as_labels(y: Any, n: int, device: torch.device) -> Tensor:
    t = torch.as_tensor(y)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"y_train must have shape [{n}] (one label per row of X_train), got {tuple(t.shape)}")
    if t.dtype == torch.bool:
        return t.to(device)
    if t.is_complex():
        raise ValueError(f"y_train must be binary in {{0, 1}}, got dtype {t.dtype}")
    bad = (t != 0) & (t != 1)
    if bad.any():
        vals = torch.unique(t[bad])[:5].tolist()
        raise ValueError(f"y_train must be binary with values in {{0, 1}} (or bool); got values such as {vals}")
    return (t == 1).to(device)


def _positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def auto_chunk_size(model: EnsembleModel, optimizer: BatchedOptimizer, *, n_train: int, batch_size: int,
                    n_test: int = 0, device: torch.device | str = "cpu") -> int:
    """How many networks to stack at once.

    Per network, a step touches ``4·P·(2 + s)`` bytes (P parameters, their gradients, s optimiser-state tensors) plus
    ``4·3·A·B`` bytes of activations (A units per example, minibatch B); the accuracy check holds
    ``4·2·A·max(|S|, |E|)``. On CPU: networks of at most ``CPU_SMALL_NET_BYTES`` per step are stacked up to
    ``CPU_SMALL_NET_STACK_BYTES`` (capped at ``CPU_MAX_CHUNK``); larger ones only up to ``CPU_LARGE_NET_STACK_BYTES``
    — 1 for very wide nets, where batching does not pay — and the check stays within ``MEMORY_CAP_BYTES``. On an
    accelerator only memory bounds it (a quarter of the device memory).
    """
    device = torch.device(device)
    step_bytes = 4 * model.n_params * (2 + optimizer.n_state_tensors) + 4 * 3 * model.activation_units() * batch_size
    check_bytes = 4 * 2 * model.activation_units() * max(n_train, n_test, 1)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory // 4
        return max(1, int(total // (step_bytes + check_bytes)))
    budget = CPU_SMALL_NET_STACK_BYTES if step_bytes <= CPU_SMALL_NET_BYTES else CPU_LARGE_NET_STACK_BYTES
    return int(max(1, min(CPU_MAX_CHUNK, budget // step_bytes, MEMORY_CAP_BYTES // check_bytes)))


def _per_net_loss(logits: Tensor, target: Tensor, loss: str) -> Tensor:
    """Mean loss of each network over its examples: logits ``[M, b]``, target ``[M, b]`` or ``[b]`` → ``[M]``."""
    if loss == "ce":
        per = F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="none")
    else:
        per = (logits - target).square()
    return per.mean(1)


def _logit_bound(model: EnsembleModel, params: Sequence[Tensor], m: int, x_max: float) -> Tensor:
    """A bound on |logit| of each network over all inputs with |x| ≤ ``x_max``: float64 ``[m]`` (NaN if a parameter
    is NaN). Layer l maps inputs bounded by a to outputs bounded by ``fan_in_l · max|W_l| · a + max|b_l|`` (ReLU
    and zero padding do not increase magnitudes), so a network whose bound is < ``LOGIT_SAFE_BOUND`` has finite
    logits on every such input."""
    a = torch.full((m,), x_max, dtype=torch.float64, device=params[0].device)
    for layer, fan_in in enumerate(model.fan_ins):
        w = params[2 * layer].detach().reshape(m, -1).abs().amax(1).double()
        b = params[2 * layer + 1].detach().reshape(m, -1).abs().amax(1).double()
        a = fan_in * w * a + b
    return a


@torch.no_grad()
def _epoch_check(model, params, logits_shared, X, y, target, threshold, loss, x_max, finishing, has_fit, single):
    """End-of-epoch check of the m alive networks: numpy ``(finite, fit, acc, loss, sign_fit)`` ``[m]``, where
    ``finite`` is "parameters and logits on S finite", ``fit`` "all of S classified correctly" by ``threshold``
    (class 1 iff logit > threshold), and acc / loss (on S) and ``sign_fit`` ("logit > 0 classifies all of S
    correctly") are needed only for networks that finish now (NaN / False for the others).

    Exactly the full check on S, at less cost: when |S| > 2·``CHECK_PREFIX``, every network is first evaluated on
    the first ``CHECK_PREFIX`` examples of S. A network needs no more if it cannot finish this epoch (``finishing``
    False: not at its budget or at the end of its overtraining), its parameters and prefix logits are finite, its
    ``_logit_bound`` shows its logits on all of S are finite, and it either misclassifies a prefix example (so it
    has not fitted) or has fitted already and only needs finiteness (``has_fit``: the clean rule's overtraining;
    all False under the Keras rule, which tests the fit every epoch). The others get the full check.
    """
    m, n = finishing.shape[0], X.shape[0]
    finite = torch.ones(m, dtype=torch.bool, device=X.device)
    for p in params:
        # a slice sum is non-finite iff the slice holds NaN/inf (or |values| ~ 1e38: diverged too); one pass
        finite &= torch.isfinite(p.detach().reshape(m, -1).sum(1))
    need = np.ones(m, dtype=bool)
    if n > 2 * CHECK_PREFIX:
        k = CHECK_PREFIX
        head = logits_shared(params, X[:k])
        missed = ((head > threshold) != y[:k]).any(1)
        ok = finite & torch.isfinite(head.sum(1)) & (_logit_bound(model, params, m, x_max) < LOGIT_SAFE_BOUND)
        skip = ok.cpu().numpy() & ~finishing & (missed.cpu().numpy() | has_fit)
        need = ~skip
    finite_np = finite.cpu().numpy()
    fit_np, sign_np = np.zeros(m, dtype=bool), np.zeros(m, dtype=bool)
    acc_np, loss_np = np.full(m, np.nan), np.full(m, np.nan)
    rows = np.flatnonzero(need)
    if rows.size:
        if rows.size == m:
            sub = params
        else:  # never for a single network (m = 1)
            sel = torch.from_numpy(rows).to(X.device)
            sub = [p.detach()[sel] for p in params]
        logits = logits_shared(sub, X)
        correct = (logits > threshold) == y
        finite_np[rows] &= torch.isfinite(logits.sum(1)).cpu().numpy()
        fit_np[rows] = correct.all(1).cpu().numpy()
        sign_np[rows] = ((logits > 0) == y).all(1).cpu().numpy()
        acc_np[rows] = correct.double().mean(1).cpu().numpy()
        loss_np[rows] = _per_net_loss(logits, target, loss).double().cpu().numpy()
    return finite_np, fit_np, acc_np, loss_np, sign_np


def _minibatch(X: Tensor, target: Tensor, perm, s: int, B: int, single: bool) -> tuple[Tensor, Tensor]:
    """Inputs and targets of step ``s`` of an epoch: ``(X, target)`` for full batch (``perm`` None); one network's
    ``[B, *in_shape]``, ``[B]`` when ``single``; else each network's own rows ``[M, B, *in_shape]``, ``[M, B]``
    (``index_select`` of the flattened indices: the same rows as ``X[idx]``, gathered ~1.7× faster on CPU)."""
    if perm is None:
        return X, target
    idx = perm[0, s * B:(s + 1) * B] if single else perm[:, s * B:(s + 1) * B]
    return X.index_select(0, idx.reshape(-1)).view(*idx.shape, *X.shape[1:]), target[idx]


def _grad_logits(logits: Tensor, target: Tensor, loss: str) -> Tensor:
    """∂(mean loss over the b examples)/∂logits for each network, as autograd forms it from ``_per_net_loss``:
    CE ``(σ(z) − y)/b``, MSE ``2(z − t)/b``; logits ``[M, b]`` or ``[b]``, target the same shape."""
    b = logits.shape[-1]
    if loss == "ce":
        return (torch.sigmoid(logits) - target).mul_(1.0 / b)
    return (logits - target).mul_(2.0 / b)


# --------------------------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------------------------
def train_ensemble(
    model: EnsembleModel,
    X_train: Any,
    y_train: Any,
    X_test: Any = None,
    *,
    n_networks: int,
    seed: int = 0,
    index_offset: int = 0,
    optimizer: str = "sgd",
    lr: float | None = None,
    optimizer_kwargs: dict[str, Any] | None = None,
    loss: str = "ce",
    mse_targets: str = "pm1",
    batch_size: int | None = 32,
    max_epochs: int = 10_000,
    max_steps: int | None = None,
    overtrain_epochs: int = 0,
    stop_rule: StopRule | str | None = None,
    chunk_size: int | str = "auto",
    device: str | torch.device | None = None,
    return_params: bool = False,
    progress: bool = True,
) -> EnsembleResult:
    """Train ``n_networks`` independent copies of ``model`` on (``X_train``, ``y_train``), each until its stop rule
    ends it (see the module docstring for the algorithm and ``sgdbayes.ensembles.stop`` for the rules), and label
    ``X_test`` with each.

    Shapes: ``X_train [n, *model.in_shape]``, ``y_train [n]`` in {0, 1} (or bool), ``X_test [n_test, *in_shape]``.
    ``optimizer`` one of ``sgd, adam, adagrad, rmsprop, adadelta`` with ``lr`` (None → torch.optim's default) and
    ``optimizer_kwargs`` (e.g. ``{"momentum": 0.9, "nesterov": True}``); ``loss`` ``"ce"`` or ``"mse"`` (targets
    ``mse_targets`` = ``"pm1"`` or ``"01"``); ``batch_size`` 1 … |S| (None or ≥ |S| → full batch).
    ``stop_rule``: ``None`` / ``"clean"`` / ``StopRule.clean()`` (default) or ``"keras"`` /
    ``StopRule.keras(threshold, wait, shared_callback=, runs_per_process=)``. Clean rule: ``max_epochs`` /
    ``max_steps`` bound the training *until first fit* (whichever is smaller, in whole epochs) and
    ``overtrain_epochs`` adds k more epochs after the first fit. Keras rule: ``max_epochs`` is the total number of
    epochs of a run (Keras' ``epochs``; the authors used 3,000) and the extra epochs are the rule's ``wait``
    (``overtrain_epochs`` must be 0). Network m uses the seeds of global index ``index_offset + m`` (shards of one
    job use consecutive offsets; the Keras rule's processes are ranges of global indices, so shards reproduce the
    single run). ``chunk_size`` networks are stacked at once (``"auto"``: ``auto_chunk_size``). ``device`` None →
    X_train's device if it is a tensor, else ``sgdbayes.get_device("auto")``. Training is float32.
    """
    t_start = time.perf_counter()
    if not isinstance(model, EnsembleModel):
        raise TypeError(f"model must be an sgdbayes.ensembles model (FCN, CNN), got {type(model).__name__}")
    rule = as_stop_rule(stop_rule)
    if device is None:
        device = X_train.device if isinstance(X_train, Tensor) else get_device("auto")
    device = get_device(device)
    M = _positive_int("n_networks", n_networks)
    index_offset = _positive_int("index_offset", index_offset, minimum=0)
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
    if mse_targets not in _MSE_TARGETS:
        raise ValueError(f"unknown mse_targets {mse_targets!r}; allowed: {', '.join(_MSE_TARGETS)}")
    opt = make_optimizer(optimizer, lr, **(optimizer_kwargs or {}))

    X = _as_float_tensor(X_train, "X_train", device)
    model.check_inputs(X, "X_train")
    n = X.shape[0]
    if n == 0:
        raise ValueError("X_train is empty")
    y = _as_labels(y_train, n, device)
    if X_test is None:
        Xe = torch.zeros((0, *model.in_shape), device=device)
    else:
        Xe = _as_float_tensor(X_test, "X_test", device)
        model.check_inputs(Xe, "X_test")
    B = n if batch_size is None else _positive_int("batch_size", batch_size)
    B = min(B, n)
    steps_per_epoch = math.ceil(n / B)
    max_epochs = _positive_int("max_epochs", max_epochs)
    if max_steps is not None:
        max_steps = _positive_int("max_steps", max_steps)
        if max_steps < steps_per_epoch:
            raise ValueError(f"max_steps={max_steps} is less than one epoch ({steps_per_epoch} steps of batch {B})")
        max_epochs = min(max_epochs, max_steps // steps_per_epoch)
    k_over = _positive_int("overtrain_epochs", overtrain_epochs, minimum=0)
    if rule.kind == "keras" and k_over:
        raise ValueError(f"overtrain_epochs={k_over} belongs to the clean stop rule; under the Keras rule the extra "
                         f"epochs are its wait: StopRule.keras(wait={k_over})")
    if chunk_size == "auto":
        chunk = auto_chunk_size(model, opt, n_train=n, batch_size=B, n_test=Xe.shape[0], device=device)
    else:
        chunk = _positive_int("chunk_size", chunk_size)
    chunk = min(chunk, M)

    if loss == "ce":
        target, threshold = y.float(), 0.0
    elif mse_targets == "pm1":
        target, threshold = 2.0 * y.float() - 1.0, 0.0
    else:
        target, threshold = y.float(), 0.5
    if rule.kind == "keras":
        fit_threshold, label_threshold = rule.threshold, rule.label_threshold
    else:
        fit_threshold = label_threshold = threshold

    config = {"model": repr(model), "n_networks": M, "seed": int(seed), "index_offset": index_offset,
              "optimizer": opt.name, "hyper": dict(opt.hyper), "loss": loss,
              "mse_targets": mse_targets if loss == "mse" else None, "batch_size": B, "n_train": n,
              "n_test": int(Xe.shape[0]), "max_epochs": max_epochs, "overtrain_epochs": k_over,
              "steps_per_epoch": steps_per_epoch, "threshold": fit_threshold, "label_threshold": label_threshold,
              "stop_rule": rule.describe(), "chunk_size": chunk, "device": str(device)}
    out = {
        "status": np.empty(M, dtype="<U10"),
        "epochs_to_fit": np.full(M, -1, dtype=np.int64),
        "epochs_trained": np.zeros(M, dtype=np.int64),
        "train_accuracy": np.zeros(M, dtype=np.float64),
        "train_loss": np.zeros(M, dtype=np.float64),
        "fits_by_sign": np.zeros(M, dtype=bool),
        "stop_floor": np.full(M, -1, dtype=np.int64),
        "test_labels": torch.zeros((M, Xe.shape[0]), dtype=torch.bool),
    }
    params_out = [torch.empty((M, *s)) for s in model.param_shapes] if return_params else None
    native = _use_native(model, opt, B, device)
    config["path"] = "native" if native else "torch"
    spec = _RunSpec(model, opt, X, y, target, Xe, fit_threshold, label_threshold, loss, B, steps_per_epoch,
                    max_epochs, k_over, rule.wait if rule.kind == "keras" else None, int(seed), chunk,
                    return_params, native)
    positions = np.arange(M)
    g_all = index_offset + positions

    def record(indices: np.ndarray, floors: np.ndarray | None) -> np.ndarray:
        """Train the networks of global ``indices`` (in chunks), write those inside this call's range into ``out``;
        return their first-fit epochs."""
        is_inside = (indices >= index_offset) & (indices < index_offset + M)
        rec = _train_networks(spec, indices, floors, is_inside, bar)
        inside = np.flatnonzero(is_inside)
        pos = indices[inside] - index_offset
        for key in ("status", "epochs_trained", "train_accuracy", "train_loss", "fits_by_sign", "stop_floor"):
            out[key][pos] = rec[key][inside]
        out["epochs_to_fit"][pos] = rec["first_fit"][inside]
        out["test_labels"][torch.from_numpy(pos)] = rec["test_labels"][torch.from_numpy(inside)]
        if params_out is not None:
            for k, p in enumerate(rec["params"]):
                params_out[k][torch.from_numpy(pos)] = p[torch.from_numpy(inside)]
        return rec["first_fit"]

    process, leader = np.full(M, -1, dtype=np.int64), np.zeros(M, dtype=bool)
    with progress_bar(total=M, desc=f"train {M} nets ({'native' if native else 'torch'})", unit="net",
                      disable=not progress) as bar:
        if not rule.shares_floor:
            # independent runs; under the Keras rule with fresh callbacks each run's floor is its own e0 + wait
            record(g_all, None if rule.kind == "clean" else np.full(M, -1, dtype=np.int64))
        else:
            process, leader = _train_processes(rule, g_all, record)

    steps_to_fit = np.where(out["epochs_to_fit"] >= 0, out["epochs_to_fit"] * steps_per_epoch, -1)
    return EnsembleResult(
        status=out["status"], epochs_to_fit=out["epochs_to_fit"], steps_to_fit=steps_to_fit,
        epochs_trained=out["epochs_trained"], train_accuracy=out["train_accuracy"], train_loss=out["train_loss"],
        test_labels=out["test_labels"], network_index=g_all.astype(np.int64), config=config, params=params_out,
        wall_time_s=time.perf_counter() - t_start, fits_by_sign=out["fits_by_sign"], process=process,
        leader=leader, stop_floor=out["stop_floor"], stop_rule=rule)


def _train_processes(rule: StopRule, g_all: np.ndarray, record) -> tuple[np.ndarray, np.ndarray]:
    """The Keras rule with a shared callback (``sgdbayes.ensembles.stop``): networks ``g_all`` (global indices, one
    contiguous range) grouped into processes of ``rule.runs_per_process`` consecutive indices.

    Phase 1, in rounds: every process that has no leader yet trains its next candidate run (its position 0 first)
    with its own floor (first fit + wait); a candidate that ever fits is the leader and its first-fit epoch is the
    process's e₀; one that never fits (budget, divergence) hands the role to the next run, as the never-reset
    callback would. Candidates outside ``g_all`` are trained for e₀ only. A process stops looking once no run of
    ``g_all`` is left after its candidate. Phase 2: all other runs of ``g_all`` at once, each with floor e₀ + wait.
    ``record(indices, floors)`` trains and stores (floors −1: own first fit + wait). Returns (process [M],
    leader [M]).
    """
    R, wait = rule.runs_per_process, rule.wait
    proc, pos = process_layout(g_all, R)
    last = {int(p): int(pos[proc == p].max()) for p in np.unique(proc)}
    cand = dict.fromkeys(last, 0)  # position of each unresolved process's current candidate
    e0: dict[int, int] = {}
    while True:
        active = [p for p in last if p not in e0 and cand[p] <= last[p]]
        if not active:
            break
        idx = np.array([p * R + cand[p] for p in active], dtype=np.int64)
        first_fit = record(idx, np.full(idx.shape, -1, dtype=np.int64))
        for p, ff in zip(active, first_fit, strict=True):
            if ff >= 0:
                e0[p] = int(ff)
            else:
                cand[p] += 1
    is_leader = np.array([int(p) in e0 and cand[int(p)] == q for p, q in zip(proc, pos, strict=True)])
    follower = np.array([int(p) in e0 and q > cand[int(p)] for p, q in zip(proc, pos, strict=True)])
    if follower.any():
        floors = np.array([e0[int(p)] + wait for p in proc[follower]], dtype=np.int64)
        record(g_all[follower], floors)
    return proc, is_leader


@dataclass(frozen=True)
class _RunSpec:
    """Everything a chunk of networks needs besides which networks they are (built once by ``train_ensemble``)."""

    model: EnsembleModel
    opt: BatchedOptimizer
    X: Tensor
    y: Tensor
    target: Tensor
    Xe: Tensor
    fit_threshold: float
    label_threshold: float
    loss: str
    B: int
    steps_per_epoch: int
    max_epochs: int
    k_over: int
    wait: int | None  # None: clean rule; else the Keras rule's wait
    seed: int
    chunk: int
    return_params: bool
    native: bool = False  # plain SGD on an FCN on CPU: whole runs in the compiled kernel (_train_chunk_native)


def _use_native(model: EnsembleModel, opt: BatchedOptimizer, B: int, device: torch.device) -> bool:
    """Whether ``train_ensemble`` takes the native path: ``NATIVE_SGD``, plain SGD (momentum 0) on an FCN on CPU,
    a batch and a network the kernel takes (``fused.native_supported``), and a kernel that builds here."""
    if not (NATIVE_SGD and device.type == "cpu" and isinstance(model, FCN) and opt.name == "sgd"
            and opt.hyper.get("momentum", 0) == 0):
        return False
    from sgdbayes.ensembles.fused import native_kernel, native_supported

    return not native_supported(model, B) and native_kernel(model, B) is not None


def _train_networks(spec: _RunSpec, indices: np.ndarray, floors: np.ndarray | None, counted: np.ndarray,
                    bar) -> dict[str, Any]:
    """Train the networks of global ``indices`` in chunks of ``spec.chunk``; per-network results in that order
    (see ``_train_chunk``). ``counted`` marks those the progress bar counts."""
    parts = []
    for start in range(0, len(indices), spec.chunk):
        sl = slice(start, start + spec.chunk)
        train_chunk = _train_chunk_native if spec.native else _train_chunk
        parts.append(train_chunk(spec, indices[sl], None if floors is None else floors[sl], counted[sl], bar))
    rec = {k: np.concatenate([r[k] for r in parts]) for k in parts[0] if k not in ("test_labels", "params")}
    rec["test_labels"] = torch.cat([r["test_labels"] for r in parts])
    rec["params"] = [torch.cat(ps) for ps in zip(*(r["params"] for r in parts))] if spec.return_params else None
    return rec


def _train_chunk_native(spec: _RunSpec, indices: np.ndarray, floors: np.ndarray | None, counted: np.ndarray,
                        bar) -> dict[str, Any]:
    """``_train_chunk``'s record for the networks of global ``indices``, trained by the native kernel
    (``sgdbayes.ensembles.fused.train_runs``): the same initial parameters (``fused.init_params`` = ``model.init``
    bit for bit), the same visiting orders (generated in the kernel), the same stop rule applied at the same epoch
    ends; each network runs start to end in the kernel, so a finished network is never touched again, and its
    labelling of E is taken in the kernel from its final parameters."""
    from sgdbayes.ensembles.fused import init_params, train_runs

    model, m0 = spec.model, len(indices)
    init_seeds, keys = network_streams(spec.seed, [int(i) for i in indices])
    params = init_params(model, init_seeds)
    keras = spec.wait is not None

    def done(lo: int, hi: int) -> None:
        if bar is not None:
            bar.update(int(counted[lo:hi].sum()))

    rec = train_runs(model, params, spec.X, spec.target, spec.y, keys, lr=spec.opt.hyper["lr"], loss=spec.loss,
                     batch_size=spec.B, threshold=spec.fit_threshold, rule="keras" if keras else "clean",
                     max_epochs=spec.max_epochs, overtrain_epochs=spec.k_over, wait=spec.wait or 0,
                     floors=(np.full(m0, -1, dtype=np.int64) if floors is None else floors) if keras else None,
                     X_test=spec.Xe, label_threshold=spec.label_threshold, on_done=done)
    labels = rec["test_labels"]
    return {"status": rec["status"], "first_fit": rec["first_fit"], "epochs_trained": rec["epochs_trained"],
            "train_accuracy": rec["train_accuracy"], "train_loss": rec["train_loss"],
            "fits_by_sign": rec["fits_by_sign"], "stop_floor": rec["stop_floor"], "test_labels": labels,
            "params": [p.clone() for p in params] if spec.return_params else None}


def _train_chunk(spec: _RunSpec, indices: np.ndarray, floors: np.ndarray | None, counted: np.ndarray,
                 bar) -> dict[str, Any]:
    """Train the networks of global ``indices`` (one stack) to completion; returns numpy arrays in that order:
    ``status``, ``first_fit`` (−1 if never), ``epochs_trained``, ``train_accuracy``, ``train_loss``,
    ``fits_by_sign``, ``stop_floor``, and ``test_labels`` (bool tensor ``[m, n_test]``), ``params`` (CPU, or None).

    Stop rule at each epoch end (``spec.wait`` None: clean; else Keras, ``floors[i]`` the network's floor, −1 for
    "own first fit + wait"): clean — finished when ``overtrain_epochs`` epochs have passed since the first fit;
    Keras — finished at the first epoch ≥ min(floor, ``max_epochs``) at which the fit test passes; both — out of
    budget at ``max_epochs`` without a fit (clean: without a first fit), diverged as soon as anything is non-finite.

    A chunk of one network (what ``auto_chunk_size`` picks for wide nets on CPU) takes the single-network path: its
    parameters are plain ``torch.nn``-shaped leaves, the forward is ``model.forward_single`` (2-D ``addmm``, as
    ``torch.nn.Linear``) and the optimiser updates those contiguous tensors — the work of a plain per-network loop,
    without the batch-1 ``bmm`` whose backward costs ~2× ``mm`` and hands back transposed (strided) weight gradients
    that make every optimiser pass ~3× slower. Same law and same seeds; results equal the batched path's to float
    rounding (``tests/ensembles/test_single_path.py``).
    """
    model, opt, X, y, target, Xe = spec.model, spec.opt, spec.X, spec.y, spec.target, spec.Xe
    threshold, loss, B, steps_per_epoch = spec.fit_threshold, spec.loss, spec.B, spec.steps_per_epoch
    max_epochs, k_over, keras = spec.max_epochs, spec.k_over, spec.wait is not None
    device, n, m0 = X.device, X.shape[0], len(indices)
    init_seeds, keys = network_streams(spec.seed, [int(i) for i in indices])
    keys = keys.to(device)
    single = m0 == 1
    if single:
        # model.init stacks [1, ...]; p[0] is a contiguous view with torch.nn's shape
        params = [p[0].requires_grad_() for p in model.init(init_seeds, device)]
    else:
        params = [p.requires_grad_() for p in model.init(init_seeds, device)]
    state = opt.init_state(params)
    res: dict[str, Any] = {
        "status": np.empty(m0, dtype="<U10"), "first_fit": np.full(m0, -1, dtype=np.int64),
        "epochs_trained": np.zeros(m0, dtype=np.int64), "train_accuracy": np.zeros(m0),
        "train_loss": np.zeros(m0), "fits_by_sign": np.zeros(m0, dtype=bool),
        "stop_floor": np.full(m0, -1, dtype=np.int64), "test_labels": torch.zeros((m0, Xe.shape[0]), dtype=torch.bool),
        "params": [torch.empty((m0, *s)) for s in model.param_shapes] if spec.return_params else None,
    }
    never = np.iinfo(np.int64).max // 2

    def logits_shared(ps, inputs):  # [m, n]: every alive network on one shared input set
        return model.forward_single(ps, inputs).unsqueeze(0) if single else model.forward_shared(ps, inputs)

    x_max = float(X.abs().max()) if n else 0.0
    alive = np.arange(m0)  # chunk positions of the networks still in the stack
    first_fit = res["first_fit"]
    full_batch = B >= n
    # plain SGD on an FCN: hand-written backward with each update fused into its gradient GEMM (FCN.sgd_step_); the
    # stacked full-batch case keeps autograd, whose shared first-layer GEMM (forward_shared) is the better kernel there
    lr = opt.hyper["lr"]
    fused_sgd = (FUSED_SGD and isinstance(model, FCN) and opt.name == "sgd" and opt.hyper["momentum"] == 0
                 and (single or not full_batch))
    epoch = 0
    while alive.size:
        epoch += 1
        perm = None if full_batch else epoch_permutations(keys, epoch, n)
        for s in range(steps_per_epoch):
            xb, tb = _minibatch(X, target, perm, s, B, single)
            if fused_sgd:
                model.sgd_step_(params, xb, lambda z: _grad_logits(z, tb, loss), lr)
                state["step"] += 1
                continue
            with torch.enable_grad():
                if full_batch:
                    logits = logits_shared(params, X)
                elif single:
                    logits = model.forward_single(params, xb).unsqueeze(0)
                else:
                    logits = model.forward(params, xb)
                total = _per_net_loss(logits, tb, loss).sum()
                grads = torch.autograd.grad(total, params)
            opt.step(params, grads, state)

        # end of epoch: accuracy on the full S, finiteness (screened on a prefix of S first, see _epoch_check)
        has_fit0 = first_fit[alive] >= 0
        if keras:  # the fit is tested every epoch; only the budget forces an end without one
            finishing, screen_fit = np.full(alive.size, epoch >= max_epochs), np.zeros(alive.size, dtype=bool)
        else:
            finishing = np.where(has_fit0, epoch - first_fit[alive] >= k_over, epoch >= max_epochs)
            screen_fit = has_fit0
        finite_np, fit_np, acc_np, loss_np, sign_np = _epoch_check(model, params, logits_shared, X, y, target,
                                                                   threshold, loss, x_max, finishing, screen_fit,
                                                                   single)
        newly = finite_np & fit_np & (first_fit[alive] < 0)
        first_fit[alive[newly]] = epoch
        has_fit = first_fit[alive] >= 0
        if keras:
            own = np.where(has_fit, first_fit[alive] + spec.wait, never)
            floor = own if floors is None else np.where(floors[alive] >= 0, floors[alive], own)
            done_fit = finite_np & fit_np & (epoch >= np.minimum(floor, max_epochs))
            done_budget = finite_np & ~fit_np & (epoch >= max_epochs)
        else:
            floor = np.full(alive.size, -1, dtype=np.int64)
            done_fit = finite_np & has_fit & (epoch - first_fit[alive] >= k_over)
            done_budget = finite_np & ~has_fit & (epoch >= max_epochs)
        done = ~finite_np | done_fit | done_budget
        if not done.any():
            continue
        pos = alive[done]
        res["status"][pos] = np.where(~finite_np[done], "diverged", np.where(done_fit[done], "fitted", "not_fitted"))
        res["epochs_trained"][pos] = epoch
        res["train_accuracy"][pos] = acc_np[done]
        res["train_loss"][pos] = loss_np[done]
        res["fits_by_sign"][pos] = sign_np[done]
        res["stop_floor"][pos] = np.where(floor[done] < never, floor[done], -1)
        sel = torch.from_numpy(np.flatnonzero(done)).to(device)
        with torch.no_grad():
            # single: the one network is done (done.all()); its leaves are already the finished parameters
            finished = [p.detach() for p in params] if single else [p.detach()[sel] for p in params]
            if Xe.shape[0]:
                res["test_labels"][torch.from_numpy(pos)] = (logits_shared(finished, Xe) > spec.label_threshold).cpu()
        if res["params"] is not None:
            for k, p in enumerate(finished):
                res["params"][k][torch.from_numpy(pos)] = p.cpu()
        if bar is not None:
            bar.update(int(counted[pos].sum()))
        keep_np = np.flatnonzero(~done)
        alive = alive[keep_np]
        if alive.size:
            keep = torch.from_numpy(keep_np).to(device)
            params = [p.detach()[keep].requires_grad_() for p in params]
            state = opt.compact(state, keep)
            keys = keys[keep]
    return res
