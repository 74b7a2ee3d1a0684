"""One epoch of plain SGD for a whole stack of small FCNs, near the hardware limit on CPU.

``sgd_epoch`` is the integration hook for ``train_ensemble``: given the stacked parameters of an
:class:`~sgdbayes.ensembles.FCN` (``model.init`` layout, updated in place), the training set, each network's visiting
order for this epoch (``epoch_permutations``) and the learning rate, it runs every step of the epoch for every active
network and returns per-network statistics (:class:`EpochStats`): the minibatch loss and accuracy seen during the
epoch (Keras' running figures) and, with ``check=True``, each network's loss, accuracy, least logit of a positive and
greatest logit of a negative example on the whole training set after the epoch, and whether its parameters and those
logits are finite. Stop rules, freezing (an inactive network is not touched: its parameters stay bit-identical),
overtraining and divergence are decided by the caller from these.

Why it is fast. The batched torch path (``FCN.sgd_step_``) runs each step as a handful of batched GEMMs over the whole
stack: for the Boolean 7→40→40→1 net at batch 8 each is a [8, 40] × [40, 40] product per network, so a step streams
every network's weights through memory several times and pays torch's per-op overhead — ~5% of the float32 GEMM roof.
The native kernel (``sgdbayes/native/fcn_sgd.cpp``, compiled on first use with the layer sizes as constants) instead
takes one network at a time through all its steps of the epoch while its 8 KB of weights stay in L1, with forward,
backward and update fused and vectorised over the minibatch rows or the input units; networks are split over
``threads`` worker threads (the foreign call releases the GIL). Each network's arithmetic does not depend on which
thread runs it or on the other networks, so ``threads`` and the chunking never change a result.

Exactness. Same law, same seeds, same update as ``FCN.sgd_step_`` and as autograd + ``torch.optim.SGD`` one network at
a time, to float rounding (the sums run in another order; ``tests/ensembles/test_fused.py`` compares them, and the
function counts of whole ensembles, which rounding differences amplified over many steps can move, are compared
statistically there and in ``benchmarks/bench_ensembles.py``).

Without a C++ compiler, on another device, or for an unsupported configuration, ``sgd_epoch`` runs the same epoch with
``FCN.sgd_step_`` and a shared-input check (the plain-torch path), with identical statistics up to rounding.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from sgdbayes import native
from sgdbayes.ensembles.models import FCN

__all__ = ["EpochStats", "sgd_epoch", "native_kernel", "LOSS_CODES"]

LOSS_CODES = {"ce": 0, "mse": 1}
_SOURCE = "fcn_sgd.cpp"
_c_float_p = ctypes.POINTER(ctypes.c_float)


@dataclass
class EpochStats:
    """Per-network results of one :func:`sgd_epoch` ([M] arrays; rows of inactive networks are NaN / 0 / False).

    ``run_loss``: mean over the epoch's steps of the minibatch-mean loss before each update; ``run_accuracy``:
    fraction of the epoch's minibatch rows labelled correctly before each update (Keras' epoch figures). With the
    check: ``loss`` (mean over S), ``accuracy`` (fraction of S with ``(logit > threshold) == label``), ``min_pos`` /
    ``max_neg`` (least logit of a label-1 row, +inf without one / greatest logit of a label-0 row, −inf without
    one: a network fits S at threshold t iff ``min_pos > t and max_neg <= t``, for any t), ``finite`` (parameters
    and logits on S all finite). ``native`` says which path ran."""

    run_loss: np.ndarray
    run_accuracy: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    min_pos: np.ndarray
    max_neg: np.ndarray
    finite: np.ndarray
    native: bool

    def fits(self, threshold: float = 0.0) -> np.ndarray:
        """bool [M]: every training example on the right side of ``threshold`` (and finite)."""
        return self.finite & (self.min_pos > threshold) & (self.max_neg <= threshold)


def native_kernel(model: FCN, batch_size: int):
    """The compiled kernel for ``model``'s layer sizes and this batch size, or None (no compiler, disabled, not an
    FCN). Built on first use (see :mod:`sgdbayes.native`)."""
    if not isinstance(model, FCN):
        return None
    lib = native.load(_SOURCE, DIMS=",".join(map(str, model.widths)), BMAX=int(batch_size))
    if lib is not None and not getattr(lib, "_sgdb_typed", False):
        f = lib.sgdb_fcn_sgd_epoch
        f.restype = ctypes.c_int
        f.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                      ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                      ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_int, ctypes.c_float,
                      ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                      ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib._sgdb_typed = True
    return lib


def _ptr(t: Tensor | np.ndarray | None) -> int | None:
    if t is None:
        return None
    return t.data_ptr() if isinstance(t, Tensor) else t.ctypes.data


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


def sgd_epoch(model: FCN, params: Sequence[Tensor], X: Tensor, target: Tensor, label: Tensor, perm: Tensor | None,
              *, lr: float, loss: str = "ce", batch_size: int, threshold: float = 0.0, active: Tensor | None = None,
              check: bool = True, check_loss: bool = False, running_loss: bool = False, steps: int | None = None,
              threads: int | None = None, use_native: bool | None = None) -> EpochStats:
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
        check: also evaluate every active network on all of S after the epoch (accuracy, margins, finiteness).
        check_loss: the check also returns each network's mean loss on S (``loss``; NaN without it). For CE it
            costs a log per row: ask for it only for the networks that finish (e.g. a second call with
            ``steps=0`` and ``active`` = the finishing ones).
        running_loss: also the epoch's running CE loss (``run_loss``; costs a log per row, NaN without it; the
            running MSE and the running accuracy are always returned).
        steps: steps to run (default ``ceil(n / B)``, one epoch; 0 runs only the check).
        threads: worker threads for the native kernel (default ``torch.get_num_threads()``).
        use_native: None = native when available (CPU tensors, a compiler), True = require it, False = torch path.
    """
    M, n = _check_args(model, params, X, target, label, perm, batch_size)
    if loss not in LOSS_CODES:
        raise ValueError(f"unknown loss {loss!r}; allowed: {', '.join(LOSS_CODES)}")
    B = min(int(batch_size), n)
    steps = math.ceil(n / B) if steps is None else int(steps)
    if steps < 0 or steps * B > n + B - 1:
        raise ValueError(f"steps must be in 0 .. ceil(n/B) = {math.ceil(n / B)}, got {steps}")
    if steps and perm is None:
        raise ValueError("perm is required when steps > 0")
    cpu = all(t.device.type == "cpu" for t in (*params, X))
    lib = native_kernel(model, B) if (use_native is not False and cpu) else None
    if use_native and lib is None:
        raise RuntimeError("the native SGD kernel is unavailable here: "
                           + (native.unavailable_reason(_SOURCE, DIMS=",".join(map(str, model.widths)), BMAX=B)
                              if cpu else "tensors are not on the CPU"))
    if lib is not None:
        stats = _epoch_native(lib, model, params, X, target, label, perm, lr, loss, B, threshold, active, check,
                              check_loss, running_loss, steps, threads)
    else:
        stats = _epoch_torch(model, params, X, target, label, perm, lr, loss, B, threshold, active, check, steps)
    if loss == "ce" and not running_loss:
        stats.run_loss[:] = np.nan
    if not check_loss:
        stats.loss[:] = np.nan
    return stats


def _empty_stats(M: int, native_path: bool) -> EpochStats:
    return EpochStats(run_loss=np.full(M, np.nan), run_accuracy=np.full(M, np.nan), loss=np.full(M, np.nan),
                      accuracy=np.full(M, np.nan), min_pos=np.full(M, np.nan), max_neg=np.full(M, np.nan),
                      finite=np.zeros(M, dtype=bool), native=native_path)


def _epoch_native(lib, model, params, X, target, label, perm, lr, loss, B, threshold, active, check, check_loss,
                  running_loss, steps, threads):
    M, n = params[0].shape[0], X.shape[0]
    for p in params:
        if p.dtype != torch.float32 or not p.is_contiguous():
            raise ValueError("params must be contiguous float32 tensors (model.init's layout)")
    X = X.detach().to(torch.float32).contiguous()
    target = target.detach().to(torch.float32).contiguous()
    lab = label.detach().to(torch.uint8).contiguous()
    perm_c = perm.detach().to(torch.int64).contiguous() if perm is not None else None
    act = None if active is None else active.detach().to(torch.uint8).contiguous()
    n_layers = len(model.widths) - 1
    W_ptrs = (ctypes.c_void_p * n_layers)(*[params[2 * k].data_ptr() for k in range(n_layers)])
    b_ptrs = (ctypes.c_void_p * n_layers)(*[params[2 * k + 1].data_ptr() for k in range(n_layers)])
    run_loss = np.full(M, np.nan, dtype=np.float32)
    run_correct = np.zeros(M, dtype=np.int32)
    loss_out = np.full(M, np.nan, dtype=np.float32)
    correct = np.zeros(M, dtype=np.int32)
    min_pos = np.full(M, np.nan, dtype=np.float32)
    max_neg = np.full(M, np.nan, dtype=np.float32)
    finite = np.zeros(M, dtype=np.uint8)

    def call(lo: int, hi: int) -> int:
        return lib.sgdb_fcn_sgd_epoch(
            lo, hi, _ptr(act), ctypes.cast(W_ptrs, ctypes.c_void_p), ctypes.cast(b_ptrs, ctypes.c_void_p),
            X.data_ptr(), n, target.data_ptr(), lab.data_ptr(), _ptr(perm_c),
            perm_c.shape[1] if perm_c is not None else 0, B, steps, float(lr), LOSS_CODES[loss], float(threshold),
            int(bool(check)) | (2 if running_loss else 0) | (4 if check_loss else 0), run_loss.ctypes.data, run_correct.ctypes.data, loss_out.ctypes.data,
            correct.ctypes.data, min_pos.ctypes.data, max_neg.ctypes.data, finite.ctypes.data)

    threads = max(1, int(threads or torch.get_num_threads()))
    ranges = _split(M, act, threads)
    with torch.no_grad():
        if len(ranges) == 1:
            codes = [call(*ranges[0])]
        else:
            with ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix="sgd_epoch") as pool:
                codes = list(pool.map(lambda r: call(*r), ranges))
    if any(c != 0 for c in codes):
        raise MemoryError(f"the native SGD kernel failed (codes {codes})")
    on = np.ones(M, dtype=bool) if act is None else act.numpy().astype(bool)
    stats = _empty_stats(M, True)
    rows = steps * B - max(0, steps * B - n)  # minibatch rows visited
    if steps:
        stats.run_loss[on] = run_loss[on] / steps
        stats.run_accuracy[on] = run_correct[on] / rows
    if check:
        stats.loss[on] = loss_out[on]
        stats.accuracy[on] = correct[on] / n
        stats.min_pos[on] = min_pos[on]
        stats.max_neg[on] = max_neg[on]
        stats.finite[on] = finite[on].astype(bool)
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
    return stats
