"""Long SGD trajectories of *tiny-fc* as the authors built it, several independent replicas at once.

tiny-fc (Chaudhari & Soatto 2018, §4.2; ``fclenett`` in github.com/pratikac/grad-info ``models.py``) is
``Linear(49, 16) → BatchNorm1d(16) → ReLU → Linear(16, 5)`` on 7×7 digits of the first five classes: 917 weights.
The authors' ``prob_current.py`` trains it with heavy-ball momentum 0.9 (PyTorch's ``SGD(momentum=0.9)``, not
Nesterov), batch 128, reshuffled every epoch, no weight decay, a learning-rate schedule given as a list of
``[epoch_limit, lr]`` pairs (their ``exptutils.schedule``: the first pair whose limit exceeds the epoch), and keeps
one snapshot of the weights per epoch after the burn-in together with the full gradient.

Quirk of the architecture, kept: the first layer's bias feeds batch norm in train mode, which subtracts the batch
mean, so its gradient is exactly zero and 16 of the 917 weights never move during training.

Replica ``r`` has its own initialisation (PyTorch's defaults: uniform ±1/√fan_in for the linear layers, γ = 1,
β = 0) and its own mini-batches; batch norm is applied per replica over its own batch (train mode) and running
statistics are kept (momentum 0.1, unbiased variance) for eval-mode use. The full gradient is taken in train mode over
the whole training set in one batch (the authors average train-mode gradients of consecutive batches of 128).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sgdbayes.noise.networks import tiny_fc
from sgdbayes.noise.replicas import log_softmax_last
from sgdbayes.seed import make_generator

__all__ = ["TinyFcRun", "lr_at_epoch", "replica_module", "train_tiny_fc"]

BN_EPS = 1e-5
BN_MOMENTUM = 0.1


def lr_at_epoch(schedule: Sequence[Sequence[float]], epoch: int) -> float:
    """The authors' schedule rule: the rate of the first ``[limit, lr]`` pair with ``epoch < limit``, else the
    last pair's rate."""
    if not schedule:
        raise ValueError("the learning-rate schedule needs at least one [epoch_limit, lr] pair")
    for limit, lr in schedule:
        if epoch < limit:
            return float(lr)
    return float(schedule[-1][1])


def check_schedule(schedule: Sequence[Sequence[float]]) -> None:
    """Pairs ``[limit, lr]`` with increasing limits and rates > 0."""
    if not schedule:
        raise ValueError("the learning-rate schedule needs at least one [epoch_limit, lr] pair")
    last = -math.inf
    for pair in schedule:
        if len(pair) != 2:
            raise ValueError(f"each schedule entry is [epoch_limit, lr], got {pair!r}")
        limit, lr = pair
        if not lr > 0:
            raise ValueError(f"learning rates must be > 0, got {lr} in {pair!r}")
        if not limit > last:
            raise ValueError(f"schedule limits must increase, got {limit} after {last}")
        last = limit


@dataclass
class TinyFcRun:
    """``epochs [T]`` of the snapshots (taken at the end of each epoch ``>= burn_in``), ``weights [T, R, d]``
    (float64, in ``tiny_fc``'s parameter order), ``grad_norm [T, R]`` (``‖∇f‖/√d``, train mode, full data),
    ``loss [T, R]`` (the same pass's mean cross-entropy), ``lr [T]``, ``burn_in_state``: the parameters and running
    statistics per replica at the end of the burn-in (for :func:`replica_module`)."""

    epochs: np.ndarray
    weights: np.ndarray
    grad_norm: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    d: int
    steps_per_epoch: int
    burn_in_state: list[dict[str, torch.Tensor]]


def _init(r: int, n_in: int, hidden: int, n_out: int, gen: torch.Generator, device, dtype):
    def u(shape, fan_in):
        return (torch.rand(shape, generator=gen, device=device, dtype=dtype) * 2 - 1) / math.sqrt(fan_in)

    return [u((r, n_in, hidden), n_in), u((r, 1, hidden), n_in),
            torch.ones(r, 1, hidden, device=device, dtype=dtype), torch.zeros(r, 1, hidden, device=device, dtype=dtype),
            u((r, hidden, n_out), hidden), u((r, 1, n_out), hidden)]


def _forward(params, x, running=None):
    """Train-mode forward of every replica ``x [R, B, n_in]``; updates ``running = (mean, var)`` in place."""
    w1, b1, g, be, w2, b2 = params
    h = torch.baddbmm(b1, x, w1)
    mu = h.mean(1, keepdim=True)
    var = h.var(1, unbiased=False, keepdim=True)
    if running is not None:
        n = h.shape[1]
        with torch.no_grad():
            running[0].mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * mu)
            running[1].mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * var * n / max(n - 1, 1))
    hn = (h - mu) / torch.sqrt(var + BN_EPS) * g + be
    return torch.baddbmm(b2, torch.relu(hn), w2)


def _loss_and_grads(params, x, y1h, running=None):
    """Mean cross-entropy per replica ``[R]`` of the train-mode forward on ``x [R, B, n_in]`` (targets one-hot
    ``y1h [R, B, C]``) and its gradients with respect to ``params``, written out by hand: the same numbers as
    autograd through :func:`_forward` (tested), without building a graph for every one of the many small steps."""
    w1, b1, g, be, w2, b2 = params
    bsz = x.shape[1]
    h = torch.baddbmm(b1, x, w1)
    mu = h.mean(1, keepdim=True)
    var = h.var(1, unbiased=False, keepdim=True)
    if running is not None:
        running[0].mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * mu)
        running[1].mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * var * bsz / max(bsz - 1, 1))
    inv = torch.rsqrt(var + BN_EPS)
    xhat = (h - mu) * inv
    z = xhat * g + be
    a = torch.relu(z)
    out = torch.baddbmm(b2, a, w2)
    logp = log_softmax_last(out)
    loss = -(logp * y1h).sum((1, 2)) / bsz
    dout = (logp.exp() - y1h) / bsz  # [R, B, C]
    dw2 = torch.bmm(a.transpose(1, 2), dout)
    db2 = dout.sum(1, keepdim=True)
    dz = torch.bmm(dout, w2.transpose(1, 2)) * (z > 0)
    dg = (dz * xhat).sum(1, keepdim=True)
    dbe = dz.sum(1, keepdim=True)
    dxhat = dz * g
    dh = inv * (dxhat - dxhat.mean(1, keepdim=True) - xhat * (dxhat * xhat).mean(1, keepdim=True))
    dw1 = torch.bmm(x.transpose(1, 2), dh)
    db1 = dh.sum(1, keepdim=True)
    return loss, [dw1, db1, dg, dbe, dw2, db2]


def _flat(params) -> torch.Tensor:
    """``[R, d]`` in ``tiny_fc``'s ``named_parameters`` order (Linear weights as ``[out, in]``)."""
    w1, b1, g, be, w2, b2 = (p.detach() for p in params)
    r = w1.shape[0]
    return torch.cat([w1.transpose(1, 2).reshape(r, -1), b1.reshape(r, -1), g.reshape(r, -1), be.reshape(r, -1),
                      w2.transpose(1, 2).reshape(r, -1), b2.reshape(r, -1)], dim=1)


def replica_module(state: dict[str, torch.Tensor]) -> nn.Sequential:
    """A ``tiny_fc`` module (float64) holding one replica's parameters and running statistics."""
    n_in, hidden = state["0.weight"].shape[1], state["0.weight"].shape[0]
    n_out = state["3.weight"].shape[0]
    m = tiny_fc(n_in, hidden, n_out).double()
    m.load_state_dict({k: v.double() for k, v in state.items()}, strict=False)
    return m.eval()


def _state(params, running, r: int) -> dict[str, torch.Tensor]:
    w1, b1, g, be, w2, b2 = (p.detach() for p in params)
    return {"0.weight": w1[r].T.clone(), "0.bias": b1[r, 0].clone(), "1.weight": g[r, 0].clone(),
            "1.bias": be[r, 0].clone(), "1.running_mean": running[0][r, 0].clone(),
            "1.running_var": running[1][r, 0].clone(), "3.weight": w2[r].T.clone(), "3.bias": b2[r, 0].clone()}


def train_tiny_fc(x: torch.Tensor, y: torch.Tensor, *, replicas: int, epochs: int, burn_in: int,
                  lr_schedule: Sequence[Sequence[float]], batch_size: int = 128, momentum: float = 0.9,
                  hidden: int = 16, seed: int = 0) -> TinyFcRun:
    """Train ``replicas`` independent tiny-fc networks on ``(x [N, n_in], y [N])`` for ``epochs`` epochs and keep a
    snapshot at the end of every epoch ``e >= burn_in`` (epochs are counted from 0, as in the authors' loop).

    Raises ValueError for bad sizes or schedules and FloatingPointError when a replica diverges.
    """
    if x.dim() != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be [N, n_in] and y [N], got {tuple(x.shape)} and {tuple(y.shape)}")
    n, n_in = x.shape
    if not 2 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [2, N = {n}] (batch norm needs 2 samples), got {batch_size}")
    if replicas < 1 or epochs < 2 or not 1 <= burn_in < epochs or not 0 <= momentum < 1:
        raise ValueError(f"need replicas >= 1, epochs >= 2, 1 <= burn_in < epochs, 0 <= momentum < 1; got "
                         f"{replicas}, {epochs}, {burn_in}, {momentum}")
    check_schedule(lr_schedule)
    n_out = int(y.max()) + 1
    dev, dtype = x.device, torch.float32
    gen = make_generator(seed, device=dev)
    params = _init(replicas, n_in, hidden, n_out, gen, dev, dtype)
    running = [torch.zeros(replicas, 1, hidden, device=dev, dtype=dtype),
               torch.ones(replicas, 1, hidden, device=dev, dtype=dtype)]
    bufs = [torch.zeros_like(p) for p in params]
    d = sum(p[0].numel() for p in params)
    xf = x.to(dtype)
    y1h = F.one_hot(y, n_out).to(dtype)
    per_epoch = n // batch_size
    xs_full = xf.unsqueeze(0).expand(replicas, n, n_in)
    y1h_full = y1h.unsqueeze(0).expand(replicas, n, n_out)
    ep_rec, ws, gns, losses, lrs = [], [], [], [], []
    burn_state: list[dict[str, torch.Tensor]] = []
    first = True
    for epoch in range(epochs):
        lr = lr_at_epoch(lr_schedule, epoch)
        perm = torch.rand(replicas, n, generator=gen, device=dev).argsort(dim=1)
        xe, ye = xf[perm], y1h[perm]  # this epoch's order, gathered once
        for j in range(per_epoch):
            sl = slice(j * batch_size, (j + 1) * batch_size)
            _, grads = _loss_and_grads(params, xe[:, sl], ye[:, sl], running)
            if first:
                torch._foreach_copy_(bufs, grads)
                first = False
            else:
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, grads)
            torch._foreach_add_(params, bufs, alpha=-lr)
        if epoch == burn_in - 1:
            burn_state = [_state(params, running, r) for r in range(replicas)]
        if epoch >= burn_in:
            lf, g = _loss_and_grads(params, xs_full, y1h_full)
            if not torch.isfinite(lf).all():
                bad = torch.nonzero(~torch.isfinite(lf)).flatten().tolist()
                raise FloatingPointError(f"tiny-fc replicas {bad} diverged (loss NaN/inf) in epoch {epoch}; lower "
                                         f"the learning rate {lr}")
            gn = torch.sqrt(sum((gi.reshape(replicas, -1) ** 2).sum(1) for gi in g) / d)
            ep_rec.append(epoch)
            ws.append(_flat(params).double().cpu().numpy())
            gns.append(gn.double().cpu().numpy())
            losses.append(lf.double().cpu().numpy())
            lrs.append(lr)
    return TinyFcRun(epochs=np.asarray(ep_rec), weights=np.stack(ws), grad_norm=np.stack(gns),
                     loss=np.stack(losses), lr=np.asarray(lrs), d=d, steps_per_epoch=per_epoch,
                     burn_in_state=burn_state)
