"""Plain SGD for whole stacks of small FCNs near the hardware limit on CPU: the native path of ``train_ensemble``.

Three entry points, all on :class:`~sgdbayes.ensembles.FCN` stacks in ``model.init``'s layout (updated in place):

- :func:`train_runs` — what ``train_ensemble`` calls for plain SGD on an FCN on CPU: every network trained to the end
  of its run under a stop rule (clean or Keras; overtraining, floors of shared callbacks, the epoch budget,
  divergence), its visiting orders generated natively (equal to ``epoch_permutations``), and returns per-network
  records (status, first fit, epochs, final accuracy / loss / sign fit, stop floor).
- :func:`sgd_epoch` — one epoch of given visiting orders for the active networks, then a check on S; per-network
  statistics (:class:`EpochStats`). The building block, kept for tests and benchmarks.
- :func:`init_params` — ``model.init(seeds)``, bit for bit, with the normal streams drawn natively.

Why it is fast. The batched torch path (``FCN.sgd_step_``) runs each step as a handful of batched GEMMs over the whole
stack: for the Boolean 7→40→40→1 net at batch 8 each is a [8, 40] × [40, 40] product per network, so a step streams
every network's weights through memory several times and pays torch's per-op overhead — ~5% of the float32 GEMM roof.
The native kernel (``sgdbayes/native/fcn_sgd.cpp``, compiled on first use with the layer sizes as constants) instead
takes a few networks at a time through all their steps — with :func:`train_runs` through their whole runs — while
their weights stay in L1, with forward, backward and update fused; at batch ≤ 8 two (batch ≤ 4: four) networks share
each 16-float vector register, so the products run at full AVX-512 width. The stop rule runs inside the kernel, so
an epoch costs no Python at all. Networks are split over ``threads`` worker threads (the foreign calls release the
GIL); each network's arithmetic is lane-wise and does not depend on which thread or which neighbours it has, so
``threads``, the chunking and the pairing never change a result.

Exactness. Same law, same seeds, same update as ``FCN.sgd_step_`` and as autograd + ``torch.optim.SGD`` one network at
a time, to float rounding (sums run in another order; ``tests/ensembles/test_fused.py`` compares them; the function
counts of whole ensembles, which rounding differences amplified over many steps can move, are compared statistically
in ``tests/ensembles/test_native_train.py``).

Without a C++ compiler, on another device, or for an unsupported configuration, ``train_ensemble`` keeps its torch path
and :func:`sgd_epoch` runs the same epoch with ``FCN.sgd_step_`` (identical statistics up to rounding).
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from sgdbayes import native
from sgdbayes.ensembles.models import FCN

__all__ = ["EpochStats", "sgd_epoch", "train_runs", "init_params", "native_kernel", "native_supported",
           "default_threads", "LOSS_CODES", "NATIVE_MAX_BATCH", "NATIVE_MAX_PARAMS"]

LOSS_CODES = {"ce": 0, "mse": 1}
STATUS_NAMES = ("fitted", "not_fitted", "diverged")
_SOURCE = "fcn_sgd.cpp"
# The native kernel keeps a few networks' weights in L1/L2 and a minibatch in registers: it is built for batches up to
# NATIVE_MAX_BATCH (a 128-row minibatch is 8 vector registers per unit) and networks of at most NATIVE_MAX_PARAMS
# parameters (784→40→40→1 has 33k; beyond ~L2 size the batched torch GEMMs stream better). Larger configurations keep
# the torch path.
NATIVE_MAX_BATCH = 128
NATIVE_MAX_PARAMS = 200_000
_P = ctypes.c_void_p
_I = ctypes.c_int64
_D = ctypes.c_double


class _EpochArgs(ctypes.Structure):
    _fields_ = [("m_begin", _I), ("m_end", _I), ("active", _P), ("W_stack", _P), ("b_stack", _P), ("X", _P),
                ("XT", _P), ("n", _I), ("target", _P), ("label", _P), ("perm", _P), ("perm_stride", _I), ("batch", _I),
                ("steps", _I), ("lr", _D), ("loss", _I), ("threshold", _D), ("check", _I),
                ("want_check_loss", _I), ("want_running_ce", _I), ("x_max", _D), ("run_loss", _P),
                ("run_correct", _P), ("loss_out", _P), ("correct_out", _P), ("min_pos", _P), ("max_neg", _P),
                ("finite", _P), ("full", _P)]


class _TrainArgs(ctypes.Structure):
    _fields_ = [("m_begin", _I), ("m_end", _I), ("W_stack", _P), ("b_stack", _P), ("X", _P), ("XT", _P),
                ("n", _I), ("target", _P), ("label", _P), ("keys", _P), ("batch", _I), ("lr", _D), ("loss", _I),
                ("threshold", _D), ("rule", _I), ("max_epochs", _I), ("overtrain", _I), ("wait", _I),
                ("floors", _P), ("x_max", _D), ("status", _P), ("first_fit", _P), ("epochs", _P),
                ("accuracy", _P), ("loss_out", _P), ("fits_by_sign", _P), ("stop_floor", _P), ("Xe", _P),
                ("XeT", _P), ("n_test", _I), ("label_threshold", _D), ("test_labels", _P)]


@dataclass
class EpochStats:
    """Per-network results of one :func:`sgd_epoch` ([M] arrays; rows of inactive networks are NaN / 0 / False).

    ``run_loss``: mean over the epoch's steps of the minibatch-mean loss before each update; ``run_accuracy``:
    fraction of the epoch's minibatch rows labelled correctly before each update (Keras' epoch figures). With the
    check: ``loss`` (mean over S), ``accuracy`` (fraction of S with ``(logit > threshold) == label``), ``min_pos`` /
    ``max_neg`` (least logit of a label-1 row, +inf without one / greatest logit of a label-0 row, −inf without
    one: a network fits S at threshold t iff ``min_pos > t and max_neg <= t``, for any t), ``finite`` (parameters
    and logits on S all finite), ``complete`` (the check looked at every row of S: always, except for networks that
    ``check="screen"`` stopped at a misclassified row — their accuracy, loss and margins are NaN, their fit at the
    threshold is exactly False and their ``finite`` exact). ``native`` says which path ran."""

    run_loss: np.ndarray
    run_accuracy: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    min_pos: np.ndarray
    max_neg: np.ndarray
    finite: np.ndarray
    native: bool
    complete: np.ndarray | None = None

    def fits(self, threshold: float = 0.0) -> np.ndarray:
        """bool [M]: every training example on the right side of ``threshold`` (and finite). After a screened check
        only the check's own threshold is meaningful."""
        with np.errstate(invalid="ignore"):
            return self.finite & (self.min_pos > threshold) & (self.max_neg <= threshold)


# --------------------------------------------------------------------------------------------------------------------
# the compiled kernels
# --------------------------------------------------------------------------------------------------------------------
def _defines(model: FCN, batch_size: int) -> dict:
    return {"DIMS": ",".join(map(str, model.widths)), "BMAX": int(batch_size)}


def native_supported(model, batch_size: int) -> str:
    """Why the native kernel cannot train ``model`` at ``batch_size`` ("" when it can, compiler permitting)."""
    if not isinstance(model, FCN):
        return f"not an FCN ({type(model).__name__})"
    if batch_size > NATIVE_MAX_BATCH:
        return f"batch {batch_size} > {NATIVE_MAX_BATCH}"
    if model.n_params > NATIVE_MAX_PARAMS:
        return f"{model.n_params} parameters per network > {NATIVE_MAX_PARAMS}"
    return ""


def native_kernel(model: FCN, batch_size: int):
    """The compiled kernel for ``model``'s layer sizes and this batch size, or None (no compiler, disabled by
    ``SGDBAYES_NATIVE=off``, not an FCN, too large). Built on first use (see :mod:`sgdbayes.native`)."""
    if native_supported(model, int(batch_size)):
        return None
    lib = native.load(_SOURCE, **_defines(model, batch_size))
    if lib is not None and not getattr(lib, "_sgdb_typed", False):
        lib.sgdb_fcn_sgd_epoch.restype = ctypes.c_int
        lib.sgdb_fcn_sgd_epoch.argtypes = [ctypes.POINTER(_EpochArgs)]
        lib.sgdb_fcn_train.restype = ctypes.c_int
        lib.sgdb_fcn_train.argtypes = [ctypes.POINTER(_TrainArgs)]
        lib.sgdb_fcn_group.restype = ctypes.c_int
        lib._sgdb_typed = True
    return lib


def _ptr(t: Tensor | np.ndarray | None) -> int | None:
    if t is None:
        return None
    return t.data_ptr() if isinstance(t, Tensor) else t.ctypes.data


def _stack_pointers(model: FCN, params: Sequence[Tensor]):
    n_layers = len(model.widths) - 1
    for p in params:
        if p.dtype != torch.float32 or not p.is_contiguous() or p.device.type != "cpu":
            raise ValueError("params must be contiguous float32 CPU tensors (model.init's layout)")
    W = (ctypes.c_void_p * n_layers)(*[params[2 * k].data_ptr() for k in range(n_layers)])
    b = (ctypes.c_void_p * n_layers)(*[params[2 * k + 1].data_ptr() for k in range(n_layers)])
    return W, b


# --------------------------------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------------------------------
_pools: dict[int, ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


def default_threads() -> int:
    """Worker threads for the native kernels: ``SGDBAYES_THREADS`` when set, else ``OMP_NUM_THREADS`` when set (the
    usual way to keep a process-per-core job, e.g. single-threaded Dask workers, to one core each), else every CPU
    this process may run on.

    Not ``torch.get_num_threads()``: chapters set torch to one thread because torch's intra-op threads lose on tiny
    tensors (5–10× slower with two on a busy 2-core machine), but the kernel splits whole networks over its threads
    with no synchronisation inside a run, so a second core helps it: measured 1.5× with 2 threads vs 1 on the 2-core
    machine at load ~3.5, ~1.1× at load ~4.5 (``benchmarks/bench_ensembles.py``, "thread policy"), never slower."""
    for var in ("SGDBAYES_THREADS", "OMP_NUM_THREADS"):
        env = os.environ.get(var, "").strip()
        if env:
            try:
                value = int(env)
            except ValueError:
                raise ValueError(f"{var} must be an int >= 1, got {env!r}") from None
            if value < 1:
                raise ValueError(f"{var} must be an int >= 1, got {env!r}")
            return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _pool(threads: int) -> ThreadPoolExecutor:
    with _pool_lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sgdbayes_native")
        return pool


def _run_slices(fn: Callable[[int, int], int], M: int, threads: int, slice_size: int,
                on_done: Callable[[int, int], None] | None = None) -> None:
    """``fn(lo, hi)`` over [0, M) in slices (in order when ``threads`` is 1, else on a pool, each slice as soon as a
    worker is free); ``on_done(lo, hi)`` after each, in the calling thread. A nonzero return code is an error."""
    slices = [(lo, min(lo + slice_size, M)) for lo in range(0, M, slice_size)]

    def check(code: int) -> None:
        if code != 0:
            raise MemoryError(f"the native SGD kernel failed (code {code}: "
                              + ("a work buffer could not be allocated)" if code == -1 else "bad batch size)"))

    if threads <= 1 or len(slices) <= 1:
        for lo, hi in slices:
            check(fn(lo, hi))
            if on_done is not None:
                on_done(lo, hi)
        return
    pool = _pool(threads)
    futures = [(lo, hi, pool.submit(fn, lo, hi)) for lo, hi in slices]
    try:
        for lo, hi, fut in futures:
            check(fut.result())
            if on_done is not None:
                on_done(lo, hi)
    finally:
        for _, _, fut in futures:
            fut.cancel()
        for _, _, fut in futures:
            if not fut.cancelled():
                fut.exception()  # wait: no worker may touch the buffers after we return


# --------------------------------------------------------------------------------------------------------------------
# initialisation
# --------------------------------------------------------------------------------------------------------------------
_init_checked: dict[tuple, bool] = {}


def _normal_lib(model: FCN):
    """prior.cpp's normal stream for this model's sizes, when it reproduces ``model.init`` bit for bit here."""
    from sgdbayes.prior_sampling import _native_prior

    key = tuple(model.widths) + (model.sigma_w, model.sigma_b)
    if model.n_params < 16 or _init_checked.get(key) is False:
        return None
    lib = _native_prior(tuple(model.widths))
    if lib is None:
        return None
    if not getattr(lib, "_sgdb_many_typed", False):
        lib.sgdb_normal_fill_many.restype = None
        lib.sgdb_normal_fill_many.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
        lib._sgdb_many_typed = True
    if key not in _init_checked:
        seeds = [12345, (7 << 40) + 3]
        ours = _init_native(lib, model, seeds)
        ref = [torch.stack([model.init_network(s)[k] for s in seeds]) for k in range(len(model.param_shapes))]
        _init_checked[key] = all(torch.equal(a.view(torch.int32), b.view(torch.int32)) for a, b in zip(ours, ref))
        if not _init_checked[key]:
            warnings.warn("the native normal stream does not reproduce FCN.init here; initialising with torch",
                          RuntimeWarning, stacklevel=3)
            return None
    return lib


def _init_native(lib, model: FCN, seeds: Sequence[int]) -> list[Tensor]:
    m, P = len(seeds), model.n_params
    z = np.empty((m, P), dtype=np.float32)
    s = np.ascontiguousarray(np.asarray([int(x) for x in seeds], dtype=np.uint64))
    lib.sgdb_normal_fill_many(s.ctypes.data, m, z.ctypes.data, P)
    out, offset = [], 0
    for k, shape in enumerate(model.param_shapes):
        size = math.prod(shape)
        std = model.sigma_w / math.sqrt(model.fan_ins[k // 2]) if k % 2 == 0 else model.sigma_b
        block = np.multiply(z[:, offset:offset + size], np.float32(std), dtype=np.float32)
        out.append(torch.from_numpy(np.ascontiguousarray(block).reshape(m, *shape)))
        offset += size
    return out


def init_params(model: FCN, seeds: Sequence[int], device: torch.device | str = "cpu") -> list[Tensor]:
    """``model.init(seeds, device)`` bit for bit; on CPU the normal streams are drawn natively (prior.cpp's copy of
    torch's stream, checked against ``model.init`` once per model), ~20× faster than one torch generator per
    network. Falls back to ``model.init``."""
    lib = _normal_lib(model) if isinstance(model, FCN) and len(seeds) else None
    if lib is None:
        return model.init(seeds, device)
    return [p.to(device) for p in _init_native(lib, model, seeds)]


# --------------------------------------------------------------------------------------------------------------------
# one epoch
# --------------------------------------------------------------------------------------------------------------------
def _check_args(model, params, X, target, label, perm, batch_size):
    if not isinstance(model, FCN):
        raise TypeError(f"sgd_epoch needs an FCN, got {type(model).__name__}")
    if len(params) != len(model.param_shapes):
        raise ValueError(f"params has {len(params)} tensors; {model!r} has {len(model.param_shapes)}")
    M = params[0].shape[0]
    for p, shape in zip(params, model.param_shapes, strict=True):
        if tuple(p.shape) != (M, *shape):
            raise ValueError(f"a parameter has shape {tuple(p.shape)}, expected {(M, *shape)}")
    n = X.shape[0]
    if X.ndim != 2 or X.shape[1] != model.widths[0]:
        raise ValueError(f"X must be [n, {model.widths[0]}], got {tuple(X.shape)}")
    if target.shape != (n,) or label.shape != (n,):
        raise ValueError(f"target and label must be [{n}], got {tuple(target.shape)} and {tuple(label.shape)}")
    if perm is not None and (perm.ndim != 2 or perm.shape[0] != M or perm.shape[1] < n):
        raise ValueError(f"perm must be [{M}, >= {n}], got {tuple(perm.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return M, n


_CHECKS = {False: 0, True: 1, "full": 1, "screen": 2}


def sgd_epoch(model: FCN, params: Sequence[Tensor], X: Tensor, target: Tensor, label: Tensor, perm: Tensor | None,
              *, lr: float, loss: str = "ce", batch_size: int, threshold: float = 0.0, active: Tensor | None = None,
              check: bool | str = True, check_loss: bool = False, running_loss: bool = False,
              steps: int | None = None, threads: int | None = None, use_native: bool | None = None) -> EpochStats:
    """One epoch of plain SGD for every active network of the stack, in place; see the module docstring.

    Args:
        model: the :class:`FCN` (its ``widths`` fix the layer sizes).
        params: ``model.init(...)`` stacks ``[M, ...]`` (float32, contiguous), updated in place.
        X: ``[n, d]`` training inputs (float32); target: ``[n]`` float32 loss targets (CE: y ∈ {0, 1}; MSE: t);
            label: ``[n]`` bool labels for the accuracy and the fit margins.
        perm: int64 ``[M, n]``, network m's visiting order this epoch (``epoch_permutations``); step s takes rows
            ``perm[m, s·B:(s+1)·B]`` (the last step smaller when B ∤ n). None only with ``steps=0``.
        lr: learning rate; loss: ``"ce"`` (BCE with logits) or ``"mse"``; batch_size: B (1 … n).
        threshold: the label threshold on the logit for the accuracies (0 for CE and ±1 MSE; Keras' rule uses 0.5).
        active: bool ``[M]`` or None (all): inactive networks are skipped, their parameters untouched.
        check: after the epoch, evaluate every active network on all of S (True / ``"full"``: accuracy, margins,
            finiteness), or ``"screen"``: a network with finite parameters and provably finite logits stops at its
            first block of rows holding a misclassified row (its fit at ``threshold`` and finiteness stay exact, its
            other statistics NaN, ``complete`` False) — what a stop rule needs, at a fraction of the cost; or False.
        check_loss: the check also returns each network's mean loss on S (``loss``; NaN without it). For CE it
            costs a log per row: ask for it only for the networks that finish (e.g. a second call with
            ``steps=0`` and ``active`` = the finishing ones).
        running_loss: also the epoch's running CE loss (``run_loss``; costs a log per row, NaN without it; the
            running MSE and the running accuracy are always returned).
        steps: steps to run (default ``ceil(n / B)``, one epoch; 0 runs only the check).
        threads: worker threads for the native kernel (default :func:`default_threads`).
        use_native: None = native when available (CPU tensors, a compiler), True = require it, False = torch path.
    """
    M, n = _check_args(model, params, X, target, label, perm, batch_size)
    if loss not in LOSS_CODES:
        raise ValueError(f"unknown loss {loss!r}; allowed: {', '.join(LOSS_CODES)}")
    if check not in _CHECKS:
        raise ValueError(f"check must be True, False, 'full' or 'screen', got {check!r}")
    B = min(int(batch_size), n)
    steps = math.ceil(n / B) if steps is None else int(steps)
    if steps < 0 or steps * B > n + B - 1:
        raise ValueError(f"steps must be in 0 .. ceil(n/B) = {math.ceil(n / B)}, got {steps}")
    if steps and perm is None:
        raise ValueError("perm is required when steps > 0")
    cpu = all(t.device.type == "cpu" for t in (*params, X))
    lib = native_kernel(model, B) if (use_native is not False and cpu) else None
    if use_native and lib is None:
        why = native_supported(model, B) or (
            native.unavailable_reason(_SOURCE, **_defines(model, B)) if cpu else "tensors are not on the CPU")
        raise RuntimeError(f"the native SGD kernel is unavailable here: {why}")
    if lib is not None:
        stats = _epoch_native(lib, model, params, X, target, label, perm, lr, loss, B, threshold, active,
                              _CHECKS[check], check_loss, running_loss, steps, threads)
    else:
        stats = _epoch_torch(model, params, X, target, label, perm, lr, loss, B, threshold, active, bool(check),
                             steps)
    if loss == "ce" and not running_loss:
        stats.run_loss[:] = np.nan
    if not check_loss:
        stats.loss[:] = np.nan
    return stats


def _empty_stats(M: int, native_path: bool) -> EpochStats:
    return EpochStats(run_loss=np.full(M, np.nan), run_accuracy=np.full(M, np.nan), loss=np.full(M, np.nan),
                      accuracy=np.full(M, np.nan), min_pos=np.full(M, np.nan), max_neg=np.full(M, np.nan),
                      finite=np.zeros(M, dtype=bool), native=native_path, complete=np.zeros(M, dtype=bool))


def _epoch_native(lib, model, params, X, target, label, perm, lr, loss, B, threshold, active, check, check_loss,
                  running_loss, steps, threads):
    M, n = params[0].shape[0], X.shape[0]
    W_ptrs, b_ptrs = _stack_pointers(model, params)
    X = X.detach().to(torch.float32).contiguous()
    XT = X.t().contiguous()  # the kernel gathers one network's minibatch per input unit from it
    target = target.detach().to(torch.float32).contiguous()
    lab = label.detach().to(torch.uint8).contiguous()
    perm_c = perm.detach().to(torch.int64).contiguous() if perm is not None else None
    act = None if active is None else active.detach().to(torch.uint8).contiguous()
    out = {k: np.zeros(M, dtype=t) for k, t in (("run_loss", np.float64), ("run_correct", np.int64),
                                                  ("loss_out", np.float64), ("correct_out", np.int64),
                                                  ("min_pos", np.float32), ("max_neg", np.float32),
                                                  ("finite", np.uint8), ("full", np.uint8))}
    x_max = float(X.abs().max()) if n else 0.0

    def call(lo: int, hi: int) -> int:
        args = _EpochArgs(lo, hi, _ptr(act), ctypes.cast(W_ptrs, _P), ctypes.cast(b_ptrs, _P), X.data_ptr(),
                          XT.data_ptr(), n,
                          target.data_ptr(), lab.data_ptr(), _ptr(perm_c),
                          perm_c.shape[1] if perm_c is not None else 0, B, steps, float(lr), LOSS_CODES[loss],
                          float(threshold), check, int(bool(check_loss)), int(bool(running_loss)), x_max,
                          *(out[k].ctypes.data for k in ("run_loss", "run_correct", "loss_out", "correct_out",
                                                          "min_pos", "max_neg", "finite", "full")))
        return lib.sgdb_fcn_sgd_epoch(ctypes.byref(args))

    threads = max(1, int(threads or default_threads()))
    ranges = _split(M, act, threads)
    with torch.no_grad():
        if len(ranges) == 1:
            codes = [call(*ranges[0])]
        else:
            codes = list(_pool(len(ranges)).map(lambda r: call(*r), ranges))
    if any(c != 0 for c in codes):
        raise MemoryError(f"the native SGD kernel failed (codes {codes})")
    on = np.ones(M, dtype=bool) if act is None else act.numpy().astype(bool)
    stats = _empty_stats(M, True)
    rows = steps * B - max(0, steps * B - n)  # minibatch rows visited
    if steps:
        stats.run_loss[on] = out["run_loss"][on] / steps
        stats.run_accuracy[on] = out["run_correct"][on] / rows
    if check:
        full = on & out["full"].astype(bool)
        stats.complete[on] = full[on]
        stats.loss[full] = out["loss_out"][full]
        stats.accuracy[full] = out["correct_out"][full] / n
        stats.min_pos[full] = out["min_pos"][full]
        stats.max_neg[full] = out["max_neg"][full]
        # screened networks (on & ~full) keep NaN margins: fits() is False for them, as it must be
        stats.finite[on] = out["finite"][on].astype(bool)
    return stats


def _split(M: int, act: Tensor | None, parts: int) -> list[tuple[int, int]]:
    """Contiguous ranges of [0, M) holding about equal numbers of active networks."""
    if M == 0:
        return [(0, 0)]
    weight = np.ones(M) if act is None else act.numpy().astype(float)
    total = weight.sum()
    parts = int(max(1, min(parts, total if total else 1)))
    if parts == 1:
        return [(0, M)]
    cum = np.cumsum(weight)
    cuts = [0] + [int(np.searchsorted(cum, total * k / parts)) + 1 for k in range(1, parts)] + [M]
    cuts = sorted(set(min(max(c, 0), M) for c in cuts))
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=False) if b > a]


def _loss_per_row(z: Tensor, t: Tensor, loss: str) -> Tensor:
    if loss == "ce":
        return torch.nn.functional.binary_cross_entropy_with_logits(z, t.expand_as(z), reduction="none")
    return (z - t).square()


@torch.no_grad()
def _epoch_torch(model, params, X, target, label, perm, lr, loss, B, threshold, active, check, steps) -> EpochStats:
    """The same epoch with ``FCN.sgd_step_`` (batched torch ops) on the active networks; any device."""
    M, n = params[0].shape[0], X.shape[0]
    sel = None if active is None else torch.nonzero(active.to(params[0].device)).squeeze(1)
    sub = list(params) if sel is None else [p[sel] for p in params]
    m = sub[0].shape[0]
    stats = _empty_stats(M, False)
    on = np.ones(M, dtype=bool) if active is None else active.cpu().numpy().astype(bool)
    if m == 0:
        return stats
    order = None if perm is None else (perm if sel is None else perm[sel.to(perm.device)])
    run_loss = torch.zeros(m, dtype=torch.float64, device=X.device)
    run_correct = torch.zeros(m, dtype=torch.int64, device=X.device)
    for s in range(steps):
        idx = order[:, s * B:(s + 1) * B]
        xb = X.index_select(0, idx.reshape(-1)).view(m, -1, X.shape[1])
        tb, lb = target[idx], label[idx]
        bs = idx.shape[1]

        def grad_logits(z, tb=tb, bs=bs):
            return (torch.sigmoid(z) - tb).mul_(1.0 / bs) if loss == "ce" else (z - tb).mul_(2.0 / bs)

        z = model.sgd_step_(sub, xb, grad_logits, lr)
        run_loss += _loss_per_row(z, tb, loss).mean(1).double()
        run_correct += ((z > threshold) == lb).sum(1)
    if sel is not None:
        for p, q in zip(params, sub, strict=True):
            p[sel] = q
    if steps:
        rows = min(steps * B, n)
        stats.run_loss[on] = (run_loss / steps).cpu().numpy()
        stats.run_accuracy[on] = (run_correct.double() / rows).cpu().numpy()
    if check:
        z = model.forward_shared(sub, X)  # [m, n]
        finite = torch.isfinite(z).all(1)
        for p in sub:
            finite &= torch.isfinite(p.reshape(m, -1).sum(1))
        pos = label.bool()
        inf = torch.tensor(float("inf"), device=z.device)
        stats.loss[on] = _loss_per_row(z, target, loss).double().mean(1).cpu().numpy()
        stats.accuracy[on] = ((z > threshold) == pos).double().mean(1).cpu().numpy()
        stats.min_pos[on] = torch.where(pos, z, inf).amin(1).cpu().numpy()
        stats.max_neg[on] = torch.where(~pos, z, -inf).amax(1).cpu().numpy()
        stats.finite[on] = finite.cpu().numpy()
        stats.complete[on] = True
    return stats


# --------------------------------------------------------------------------------------------------------------------
# whole runs
# --------------------------------------------------------------------------------------------------------------------
def train_runs(model: FCN, params: Sequence[Tensor], X: Tensor, target: Tensor, label: Tensor, keys: Tensor, *,
               lr: float, loss: str, batch_size: int, threshold: float, rule: str = "clean", max_epochs: int,
               overtrain_epochs: int = 0, wait: int = 0, floors: np.ndarray | None = None,
               X_test: Tensor | None = None, label_threshold: float = 0.0, threads: int | None = None,
               on_done: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Train every network of the stack (CPU, in place) to the end of its run, natively; see the module docstring.

    ``keys``: ``network_streams``' int64 ``[M, 2]`` minibatch keys (epoch e of network m visits S in the order
    ``epoch_permutations(keys[m:m+1], e, n)[0]``). ``rule`` ``"clean"`` (``max_epochs`` until the first fit at
    ``threshold``, then ``overtrain_epochs`` more) or ``"keras"`` (``max_epochs`` in all; a run ends at its first
    fitting epoch ≥ its floor: ``floors[m]`` when ≥ 0, else its own first fit + ``wait``). ``on_done(lo, hi)`` is
    called after networks lo … hi−1 have finished (for a progress bar).

    Returns numpy arrays [M]: ``status`` (``STATUS_NAMES``), ``first_fit`` (−1 if never), ``epochs_trained``,
    ``train_accuracy`` (at ``threshold``, on S at the end), ``train_loss``, ``fits_by_sign``, ``stop_floor``
    (Keras: the floor in force at the end, −1 when never known; clean: −1), and ``test_labels`` bool
    ``[M, n_test]``: ``logit > label_threshold`` on the rows of ``X_test`` at the end of each run (the recorded
    function; ``n_test`` 0 without ``X_test``). Raises RuntimeError when the kernel cannot be built (check
    :func:`native_kernel` first).
    """
    if rule not in ("clean", "keras"):
        raise ValueError(f"rule must be 'clean' or 'keras', got {rule!r}")
    if loss not in LOSS_CODES:
        raise ValueError(f"unknown loss {loss!r}; allowed: {', '.join(LOSS_CODES)}")
    M, n = params[0].shape[0], X.shape[0]
    B = min(int(batch_size), n)
    lib = native_kernel(model, B)
    if lib is None:
        raise RuntimeError("the native SGD kernel is unavailable here: "
                           + (native_supported(model, B) or native.unavailable_reason(_SOURCE, **_defines(model, B))))
    if keys.shape != (M, 2):
        raise ValueError(f"keys must be [{M}, 2], got {tuple(keys.shape)}")
    W_ptrs, b_ptrs = _stack_pointers(model, params)
    X = X.detach().to(torch.float32).contiguous()
    XT = X.t().contiguous()  # the kernel gathers one network's minibatch per input unit from it
    target = target.detach().to(torch.float32).contiguous()
    lab = label.detach().to(torch.uint8).contiguous()
    keys_c = keys.detach().to(torch.int64).contiguous()
    fl = None if floors is None else np.ascontiguousarray(np.asarray(floors, dtype=np.int64))
    if fl is not None and fl.shape != (M,):
        raise ValueError(f"floors must be [{M}], got {fl.shape}")
    out = {k: np.zeros(M, dtype=t) for k, t in (("status", np.int64), ("first_fit", np.int64),
                                                  ("epochs_trained", np.int64), ("train_accuracy", np.float64),
                                                  ("train_loss", np.float64), ("fits_by_sign", np.uint8),
                                                  ("stop_floor", np.int64))}
    x_max = float(X.abs().max()) if n else 0.0
    if X_test is None:
        Xe = torch.zeros((0, X.shape[1]))
    else:
        Xe = X_test.detach().to(torch.float32).contiguous()
        if Xe.ndim != 2 or Xe.shape[1] != X.shape[1]:
            raise ValueError(f"X_test must be [n_test, {X.shape[1]}], got {tuple(Xe.shape)}")
    XeT = Xe.t().contiguous()
    labels = np.zeros((M, Xe.shape[0]), dtype=np.uint8)

    def call(lo: int, hi: int) -> int:
        args = _TrainArgs(lo, hi, ctypes.cast(W_ptrs, _P), ctypes.cast(b_ptrs, _P), X.data_ptr(), XT.data_ptr(), n,
                          target.data_ptr(), lab.data_ptr(), keys_c.data_ptr(), B, float(lr), LOSS_CODES[loss],
                          float(threshold), 1 if rule == "keras" else 0, int(max_epochs), int(overtrain_epochs),
                          int(wait), _ptr(fl), x_max,
                          *(out[k].ctypes.data for k in ("status", "first_fit", "epochs_trained", "train_accuracy",
                                                          "train_loss", "fits_by_sign", "stop_floor")),
                          Xe.data_ptr(), XeT.data_ptr(), Xe.shape[0], float(label_threshold), labels.ctypes.data)
        return lib.sgdb_fcn_train(ctypes.byref(args))

    threads = max(1, int(threads or default_threads()))
    group = int(lib.sgdb_fcn_group())
    # slices: small enough to balance runs of very different lengths over the threads and to move a progress bar,
    # large enough that a slice's set-up (~µs) is nothing; a multiple of the networks sharing a register
    size = max(group, min(64, math.ceil(M / (8 * threads)))) if M else 1
    size = -(-size // group) * group
    with torch.no_grad():
        _run_slices(call, M, threads, size, on_done)
    res: dict[str, np.ndarray] = {k: v for k, v in out.items()}
    res["status"] = np.asarray(STATUS_NAMES, dtype="<U10")[out["status"]]
    res["fits_by_sign"] = out["fits_by_sign"].astype(bool)
    res["test_labels"] = torch.from_numpy(labels.astype(bool))
    return res
