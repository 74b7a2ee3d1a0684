"""Many independent one-hidden-layer ReLU networks trained at once by plain SGD (batched matmuls).

Used for the temperature experiment (several seeds per learning rate/batch size) and for long weight trajectories.
Replica ``r`` has its own weights, its own learning rate ``lr[r]`` and its own mini-batches; the replicas share
nothing but the data, so one ``autograd`` pass over the summed loss gives each its own gradient.

Temperature of the SGD diffusion (Chaudhari & Soatto 2018, eq. 4 and Remark 6):
``β⁻¹ = η / (2b)`` when mini-batches are drawn with replacement, ``β⁻¹ = η / (2b) · (1 − b/N)`` without.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sgdbayes.seed import make_generator


def temperature(lr: float, batch_size: int, n: int | None = None, *, replacement: bool = True) -> float:
    """``β⁻¹ = η/(2b)`` (with replacement) or ``η/(2b)(1 − b/N)`` (without); ``n`` needed without replacement."""
    if lr <= 0 or batch_size < 1:
        raise ValueError(f"need lr > 0 and batch_size >= 1, got {lr}, {batch_size}")
    if replacement:
        return lr / (2 * batch_size)
    if n is None or n < batch_size:
        raise ValueError(f"sampling without replacement needs N >= b, got N={n}, b={batch_size}")
    return lr / (2 * batch_size) * (1 - batch_size / n)


@dataclass
class ReplicaRun:
    """``steps`` recorded: ``train_loss [n_rec, R]`` (full-data mean cross-entropy), ``test_error [n_rec, R]``,
    ``grad_norm [n_rec, R]`` (full-gradient norm ``‖∇f‖/√d``), ``weights [n_rec, R, d]`` when asked for."""

    steps: np.ndarray
    train_loss: np.ndarray
    test_error: np.ndarray
    grad_norm: np.ndarray
    weights: np.ndarray | None
    d: int


def _init(r: int, n_in: int, hidden: int, n_out: int, gen: torch.Generator, device, dtype):
    """``nn.Linear``'s default init (uniform ±1/√fan_in) for ``r`` replicas."""
    def u(shape, fan_in):
        return (torch.rand(shape, generator=gen, device=device, dtype=dtype) * 2 - 1) / math.sqrt(fan_in)
    return [u((r, n_in, hidden), n_in), u((r, 1, hidden), n_in), u((r, hidden, n_out), hidden), u((r, 1, n_out), hidden)]


def _forward(params, x):
    w1, b1, w2, b2 = params
    return torch.baddbmm(b2, torch.relu(torch.baddbmm(b1, x, w1)), w2)


def train_replicas(x: torch.Tensor, y: torch.Tensor, *, lr: float | list[float], batch_size: int, steps: int,
                   hidden: int = 16, replicas: int = 1, replacement: bool = True, seed: int = 0,
                   record_every: int = 100, x_test: torch.Tensor | None = None, y_test: torch.Tensor | None = None,
                   record_weights: bool = False, n_classes: int | None = None) -> ReplicaRun:
    """Train ``replicas`` MLPs ``in → hidden → classes`` by plain SGD on cross-entropy for ``steps`` steps.

    ``lr``: one learning rate or one per replica. Mini-batches of ``batch_size`` are drawn uniformly with replacement,
    or (``replacement=False``) as consecutive slices of a fresh permutation every ``⌊N/b⌋`` steps. Every
    ``record_every`` steps (and at step 0) the full-data loss, test error and full-gradient norm are recorded.
    Raises ``FloatingPointError`` when any replica's loss becomes NaN/inf.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be [N, features], got shape {tuple(x.shape)}")
    n, n_in = x.shape
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, N={n}], got {batch_size}")
    if steps < 1 or record_every < 1 or replicas < 1:
        raise ValueError(f"need steps, record_every, replicas >= 1; got {steps}, {record_every}, {replicas}")
    lrs = torch.as_tensor(lr if isinstance(lr, (list, tuple)) else [lr] * replicas, dtype=x.dtype, device=x.device)
    if lrs.numel() != replicas or (lrs <= 0).any():
        raise ValueError(f"lr must be > 0, one value or one per replica ({replicas}); got {lr}")
    c = int(n_classes or int(y.max()) + 1)
    gen = make_generator(seed, device=x.device)
    params = _init(replicas, n_in, hidden, c, gen, x.device, x.dtype)
    d = n_in * hidden + hidden + hidden * c + c
    per_epoch = n // batch_size
    rec_steps, losses, errs, gnorms, ws = [], [], [], [], []
    y1h = F.one_hot(y, c).to(x.dtype)
    xs = x.unsqueeze(0).expand(replicas, n, n_in)
    ys = y1h.unsqueeze(0).expand(replicas, n, c)
    lr_view = lrs.view(-1, 1, 1)

    def record(k: int) -> None:
        loss, g = _mean_loss_and_grads(params, xs, ys)
        if not torch.isfinite(loss).all():
            bad = torch.nonzero(~torch.isfinite(loss)).flatten().tolist()
            raise FloatingPointError(f"replicas {bad} diverged (loss NaN/inf) by step {k}; lower lr {lrs[bad].tolist()}")
        gn = torch.sqrt(sum((gi.reshape(replicas, -1) ** 2).sum(1) for gi in g) / d)
        rec_steps.append(k)
        losses.append(loss.cpu().numpy())
        gnorms.append(gn.cpu().numpy())
        if x_test is not None:
            ot = _forward(params, x_test.unsqueeze(0).expand(replicas, *x_test.shape))
            errs.append((ot.argmax(-1) != y_test).float().mean(1).cpu().numpy())
        else:
            errs.append(np.full(replicas, np.nan))
        if record_weights:
            ws.append(torch.cat([p.reshape(replicas, -1) for p in params], 1).cpu().numpy())

    record(0)
    perm = None
    for k in range(1, steps + 1):
        if replacement:
            idx = torch.randint(n, (replicas, batch_size), generator=gen, device=x.device)
        else:
            j = (k - 1) % per_epoch
            if j == 0:
                perm = torch.rand(replicas, n, generator=gen, device=x.device).argsort(dim=1)
            idx = perm[:, j * batch_size:(j + 1) * batch_size]
        _, grads = _mean_loss_and_grads(params, x[idx], y1h[idx])
        for p, g in zip(params, grads, strict=True):
            p.sub_(lr_view * g)
        if k % record_every == 0:
            record(k)
    return ReplicaRun(steps=np.asarray(rec_steps), train_loss=np.stack(losses), test_error=np.stack(errs),
                      grad_norm=np.stack(gnorms), weights=np.stack(ws) if record_weights else None, d=d)


def log_softmax_last(t: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` over the last axis, written out: on the CPU, torch's kernel took 5-10× longer for the few
    classes of these networks (last axis of 5 or 10) than these four operations."""
    z = t - t.amax(-1, keepdim=True)
    return z - z.exp().sum(-1, keepdim=True).log()


def _mean_loss_and_grads(params, x, y1h, grads: bool = True):
    """Mean cross-entropy per replica ``[R]`` of :func:`_forward` on ``x [R, B, n_in]`` (one-hot targets
    ``y1h [R, B, C]``) and its gradients (``None`` unless ``grads``), by hand (the same numbers as autograd;
    tested)."""
    w1, b1, w2, b2 = params
    bsz = x.shape[1]
    z = torch.baddbmm(b1, x, w1)
    a = torch.relu(z)
    logp = log_softmax_last(torch.baddbmm(b2, a, w2))
    loss = -(logp * y1h).sum((1, 2)) / bsz
    if not grads:
        return loss, None
    dout = (logp.exp() - y1h) / bsz
    dz = torch.bmm(dout, w2.transpose(1, 2)) * (z > 0)
    return loss, [torch.bmm(x.transpose(1, 2), dz), dz.sum(1, keepdim=True), torch.bmm(a.transpose(1, 2), dout),
                  dout.sum(1, keepdim=True)]


def coupled_batches(n: int, b: int, replicas: int, gen: torch.Generator, device=None) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """One mini-batch per replica drawn **with** replacement (``[R, b]``, ``b`` uniform draws) and one **without**
    (``[R, b]``, ``b`` distinct indices), coupled to overlap as much as possible: the second holds every distinct
    index of the first, filled up with indices drawn uniformly from the rest.

    Each is exactly distributed as its scheme requires: the first is ``b`` independent uniform draws, and the second,
    always ``b`` distinct indices whose law is invariant under any permutation of ``0..N−1``, is a uniform simple
    random sample. The coupling only makes the two SGD paths share most of their noise, so that their difference is
    measured with far less Monte-Carlo error than with independent draws.
    """
    if not 1 <= b <= n:
        raise ValueError(f"batch size b must be in [1, N = {n}], got {b}")
    dev = device if device is not None else gen.device
    with_idx = torch.randint(n, (replicas, b), generator=gen, device=dev)
    marked = torch.zeros(replicas, n, device=dev, dtype=torch.float64)
    marked.scatter_(1, with_idx, 1.0)
    keys = torch.rand(replicas, n, generator=gen, device=dev, dtype=torch.float64) - 2.0 * marked
    return with_idx, keys.argsort(dim=1)[:, :b]


@dataclass(frozen=True)
class SchemeRun:
    """Full-data mean cross-entropy of paired runs ``loss[scheme] [n_rec, R]`` at ``steps [n_rec]`` for the schemes
    ``"with"`` (replacement), ``"without"`` and ``"full"`` (full-batch gradient descent), all from the same
    ``R`` initialisations; ``start_weights [R, d]`` (after the pretraining) and ``final_weights[scheme] [R, d]``
    (W1, b1, W2, b2 flattened, W as ``[in, out]``)."""

    steps: np.ndarray
    loss: dict[str, np.ndarray]
    start_weights: np.ndarray
    final_weights: dict[str, np.ndarray]
    hidden: int
    n_classes: int


def train_schemes(x: torch.Tensor, y: torch.Tensor, *, lr: float, batch_size: int, steps: int, replicas: int,
                  hidden: int = 16, pretrain_steps: int = 0, pretrain_lr: float | None = None, record_every: int = 10,
                  seed: int = 0) -> SchemeRun:
    """``replicas`` MLPs ``in → hidden → classes``, first trained by full-batch gradient descent for
    ``pretrain_steps`` steps at ``pretrain_lr`` (default ``lr``) so that all runs start in the same basin, near a
    minimum, then each continued three
    times from that point by plain SGD with mini-batches drawn with and without replacement (coupled by
    :func:`coupled_batches`) and with the full batch. One batched pass per step trains all ``3R`` networks; the
    full-data loss is recorded every ``record_every`` steps (and at step 0 of the continuation)."""
    if x.dim() != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be [N, features] and y [N], got {tuple(x.shape)} and {tuple(y.shape)}")
    n, n_in = x.shape
    if not 1 <= batch_size < n:
        raise ValueError(f"batch_size must be in [1, N) = [1, {n}) (b = N has no noise without replacement), got "
                         f"{batch_size}")
    if not lr > 0 or steps < 1 or replicas < 2 or record_every < 1:
        raise ValueError(f"need lr > 0, steps >= 1, replicas >= 2, record_every >= 1; got {lr}, {steps}, {replicas}, "
                         f"{record_every}")
    c = int(y.max()) + 1
    gen = make_generator(seed, device=x.device)
    if pretrain_steps < 0:
        raise ValueError(f"pretrain_steps must be >= 0, got {pretrain_steps}")
    init = _init(replicas, n_in, hidden, c, gen, x.device, x.dtype)
    r = replicas
    y1h = F.one_hot(y, c).to(x.dtype)
    xs_full = x.unsqueeze(0).expand(r, n, n_in)
    ys_full = y1h.unsqueeze(0).expand(r, n, c)
    plr = lr if pretrain_lr is None else pretrain_lr
    if not plr > 0:
        raise ValueError(f"pretrain_lr must be > 0, got {pretrain_lr}")
    for _ in range(pretrain_steps):
        _, grads = _mean_loss_and_grads(init, xs_full, ys_full)
        torch._foreach_add_(init, grads, alpha=-plr)
    start = torch.cat([p.reshape(r, -1) for p in init], dim=1).double().cpu().numpy()
    params = [p.repeat(3, 1, 1) for p in init]  # [with R | without R | full R]
    names = ("with", "without", "full")
    rec_steps, losses = [], {k: [] for k in names}
    xs_all = x.unsqueeze(0).expand(3 * r, n, n_in)
    ys_all = y1h.unsqueeze(0).expand(3 * r, n, c)

    def record(k: int) -> None:
        lf, _ = _mean_loss_and_grads(params, xs_all, ys_all, grads=False)
        if not torch.isfinite(lf).all():
            raise FloatingPointError(f"a network diverged (loss NaN/inf) by step {k}; lower lr = {lr}")
        rec_steps.append(k)
        for i, name in enumerate(names):
            losses[name].append(lf[i * r:(i + 1) * r].double().cpu().numpy())

    record(0)
    for k in range(1, steps + 1):
        iw, io = coupled_batches(n, batch_size, r, gen)
        idx = torch.cat([iw, io])
        _, g_sgd = _mean_loss_and_grads([p[:2 * r] for p in params], x[idx], y1h[idx])
        _, g_full = _mean_loss_and_grads([p[2 * r:] for p in params], xs_full, ys_full)
        torch._foreach_add_(params, [torch.cat([a, b]) for a, b in zip(g_sgd, g_full, strict=True)], alpha=-lr)
        if k % record_every == 0:
            record(k)
    flat = torch.cat([p.reshape(3 * r, -1) for p in params], dim=1).double().cpu().numpy()
    return SchemeRun(steps=np.asarray(rec_steps), loss={k: np.stack(v) for k, v in losses.items()},
                     start_weights=start, final_weights={name: flat[i * r:(i + 1) * r] for i, name in enumerate(names)}, hidden=hidden,
                     n_classes=c)


def mlp_module(weights: np.ndarray, n_in: int, hidden: int, n_classes: int) -> torch.nn.Sequential:
    """The float64 ``nn.Sequential(Linear, ReLU, Linear)`` holding one replica's flattened weights (as stored by
    :func:`train_schemes`), for per-sample gradients."""
    w = torch.as_tensor(np.asarray(weights), dtype=torch.float64)
    sizes = [n_in * hidden, hidden, hidden * n_classes, n_classes]
    if w.numel() != sum(sizes):
        raise ValueError(f"expected {sum(sizes)} weights for {n_in} → {hidden} → {n_classes}, got {w.numel()}")
    w1, b1, w2, b2 = torch.split(w, sizes)
    m = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_classes))
    with torch.no_grad():
        m[0].weight.copy_(w1.reshape(n_in, hidden).T)
        m[0].bias.copy_(b1)
        m[2].weight.copy_(w2.reshape(hidden, n_classes).T)
        m[2].bias.copy_(b2)
    return m.double()
