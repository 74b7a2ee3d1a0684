"""Training with momentum SGD while measuring the spectrum of ``D`` at checkpoints (fractions of training)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sgdbayes.noise.spectrum import NoiseSpectrum, noise_spectrum
from sgdbayes.seed import make_generator


def per_sample_cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(out, y, reduction="none")``: the per-sample loss used throughout the chapter."""
    return F.cross_entropy(out, y, reduction="none")


@dataclass
class TrainRecord:
    """``spectra[fraction]`` at each checkpoint; ``train_loss``/``test_error`` per epoch (full passes, eval mode)."""

    spectra: dict[float, NoiseSpectrum] = field(default_factory=dict)
    train_loss: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> tuple[float, float]:
    """Mean cross-entropy and error rate of ``model`` on ``(x, y)`` in eval mode."""
    was = model.training
    model.eval()
    loss, wrong = 0.0, 0
    for i in range(0, x.shape[0], batch):
        out = model(x[i:i + batch])
        loss += float(F.cross_entropy(out, y[i:i + batch], reduction="sum"))
        wrong += int((out.argmax(1) != y[i:i + batch]).sum())
    model.train(was)
    return loss / x.shape[0], wrong / x.shape[0]


def train_with_spectra(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
                       batch_size: int, x_test: torch.Tensor | None = None, y_test: torch.Tensor | None = None,
                       momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0,
                       checkpoints: Sequence[float] = (0.2, 0.4, 1.0), n_spectrum: int = 1000,
                       gram_products: str = "accumulation", seed: int = 0, progress: bool = False) -> TrainRecord:
    """Train ``model`` with SGD and heavy-ball momentum (PyTorch's ``SGD(momentum=…)``, as the authors' ``train.py``;
    ``nesterov=True`` for Nesterov's variant) on cross-entropy and compute the spectrum of ``D`` at ``checkpoints``.
    ``gram_products`` is passed to :func:`~sgdbayes.noise.per_sample_gram` as ``products``.

    The spectrum uses the first ``n_spectrum`` training samples (eval mode). A checkpoint ``c`` is taken after
    ``round(c · epochs)`` epochs (``c = 0`` is the initialisation). Raises ``FloatingPointError`` if the loss diverges.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    bad = [c for c in checkpoints if not 0.0 <= c <= 1.0]
    if bad:
        raise ValueError(f"checkpoints are fractions of training in [0, 1], got {bad}")
    gen = make_generator(seed)
    torch.manual_seed(seed)  # dropout masks
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                          weight_decay=weight_decay)
    at: dict[int, list[float]] = {}
    for c in checkpoints:
        at.setdefault(round(c * epochs), []).append(float(c))
    rec = TrainRecord()
    xs, ys = x[:n_spectrum], y[:n_spectrum]
    n = x.shape[0]

    def check(epoch: int) -> None:
        if epoch in at:
            s = noise_spectrum(model, per_sample_cross_entropy, xs, ys, products=gram_products)
            for c in at[epoch]:
                rec.spectra[c] = s

    check(0)
    for epoch in tqdm(range(1, epochs + 1), disable=not progress, desc="epochs"):
        model.train()
        perm = torch.randperm(n, generator=gen).to(x.device)
        for i in range(0, n - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"training loss became {float(loss.detach())} in epoch {epoch} (lr={lr} too large?)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        tl, _ = evaluate(model, x, y)
        rec.train_loss.append(tl)
        if x_test is not None:
            rec.test_error.append(evaluate(model, x_test, y_test)[1])
        check(epoch)
    return rec
