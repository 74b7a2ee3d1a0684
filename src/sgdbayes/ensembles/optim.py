"""Optimisers for stacked parameters ``[M, ...]``, with ``torch.optim``'s update formulas and defaults.

All five optimisers are elementwise, so one update of the stacked tensors is exactly M independent updates. The step
counter ``t`` is shared by the stack: every network of a stack starts together and finished networks are removed
(``compact``), never skipped. State lives in a plain dict of lists of tensors so that it can be indexed along the
model dimension. Updates (g = gradient, t = 1, 2, …; the op order follows torch 2.x's single-tensor code):

- ``sgd``: momentum μ: b₁ = g, b_t = μ b_{t−1} + (1 − dampening) g; d = g + μ b_t (Nesterov) or b_t; p ← p − lr·d.
  Default lr 1e-3, μ = 0.
- ``adam``: m ← m + (1−β₁)(g − m); v ← β₂ v + (1−β₂) g²; p ← p − (lr/(1−β₁ᵗ)) · m / (√v/√(1−β₂ᵗ) + ε).
  Defaults lr 1e-3, β = (0.9, 0.999), ε = 1e-8.
- ``adagrad``: s ← s + g²; p ← p − lr/(1 + (t−1)·lr_decay) · g/(√s + ε). Defaults lr 1e-2, lr_decay 0,
  initial_accumulator_value 0, ε = 1e-10.
- ``rmsprop``: s ← α s + (1−α) g²; (centered: ḡ ← ḡ + (1−α)(g − ḡ), s̃ = s − ḡ²); a = √s̃ + ε; momentum μ > 0:
  b ← μ b + g/a, p ← p − lr·b; else p ← p − lr·g/a. Defaults lr 1e-2, α = 0.99, ε = 1e-8, μ = 0.
- ``adadelta``: s ← ρ s + (1−ρ) g²; Δ = √(u + ε)/√(s + ε) · g; u ← ρ u + (1−ρ) Δ²; p ← p − lr·Δ.
  Defaults lr 1.0, ρ = 0.9, ε = 1e-6.

Weight decay, ``maximize`` and AMSGrad are not offered (the paper uses none).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["OPTIMIZERS", "BatchedOptimizer", "make_optimizer"]

# name → {hyper-parameter: torch.optim default}
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "nesterov": False},
    "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8},
    "adagrad": {"lr": 1e-2, "lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10},
    "rmsprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False},
    "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6},
}

State = dict[str, Any]


def _unit_interval(name: str, value: Any, *, closed_right: bool = False) -> float:
    v = float(value)
    ok = 0.0 <= v <= 1.0 if closed_right else 0.0 <= v < 1.0
    if not (math.isfinite(v) and ok):
        raise ValueError(f"{name} must be in [0, 1{']' if closed_right else ')'}, got {value!r}")
    return v


@dataclass(frozen=True)
class BatchedOptimizer:
    """One of ``OPTIMIZERS`` with its hyper-parameters; ``init_state`` / ``step`` / ``compact`` act on stacks."""

    name: str
    hyper: dict[str, Any] = field(default_factory=dict)

    @property
    def lr(self) -> float:
        return self.hyper["lr"]

    @property
    def n_state_tensors(self) -> int:
        """Parameter-sized state tensors per parameter (for memory sizing)."""
        h = self.hyper
        return {"sgd": int(h.get("momentum", 0) > 0), "adam": 2, "adagrad": 1,
                "rmsprop": 1 + int(h.get("momentum", 0) > 0) + int(bool(h.get("centered"))), "adadelta": 2}[self.name]

    def init_state(self, params: Sequence[Tensor]) -> State:
        h, z = self.hyper, (lambda: [torch.zeros_like(p) for p in params])
        state: State = {"step": 0}
        if self.name == "sgd":
            state["buf"] = None  # torch.optim: the first buffer is a copy of the first gradient
        elif self.name == "adam":
            state["exp_avg"], state["exp_avg_sq"] = z(), z()
        elif self.name == "adagrad":
            state["sum"] = [torch.full_like(p, h["initial_accumulator_value"]) for p in params]
        elif self.name == "rmsprop":
            state["square_avg"] = z()
            if h["momentum"] > 0:
                state["buf"] = z()
            if h["centered"]:
                state["grad_avg"] = z()
        elif self.name == "adadelta":
            state["square_avg"], state["acc_delta"] = z(), z()
        return state

    @staticmethod
    def compact(state: State, keep: Tensor) -> State:
        """State restricted to the networks ``keep`` (index or bool mask along the model dimension)."""
        return {k: (None if v is None else [t[keep] for t in v]) if isinstance(v, list) or v is None else v
                for k, v in state.items()}

    @torch.no_grad()
    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor], state: State) -> None:
        """Update ``params`` in place from ``grads``; advances ``state['step']``."""
        h = self.hyper
        state["step"] += 1
        t = state["step"]
        lr = h["lr"]
        if self.name == "sgd":
            mu = h["momentum"]
            if mu != 0:
                if state["buf"] is None:
                    state["buf"] = [g.detach().clone() for g in grads]
                else:
                    for b, g in zip(state["buf"], grads):
                        b.mul_(mu).add_(g, alpha=1 - h["dampening"])
            for i, (p, g) in enumerate(zip(params, grads)):
                if mu != 0:
                    g = g.add(state["buf"][i], alpha=mu) if h["nesterov"] else state["buf"][i]
                p.add_(g, alpha=-lr)
        elif self.name == "adam":
            b1, b2 = h["betas"]
            step_size = lr / (1 - b1**t)
            bc2_sqrt = math.sqrt(1 - b2**t)
            for p, g, m, v in zip(params, grads, state["exp_avg"], state["exp_avg_sq"]):
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / bc2_sqrt).add_(h["eps"])
                p.addcdiv_(m, denom, value=-step_size)
        elif self.name == "adagrad":
            clr = lr / (1 + (t - 1) * h["lr_decay"])
            for p, g, s in zip(params, grads, state["sum"]):
                s.addcmul_(g, g, value=1)
                p.addcdiv_(g, s.sqrt().add_(h["eps"]), value=-clr)
        elif self.name == "rmsprop":
            alpha, mu = h["alpha"], h["momentum"]
            for i, (p, g, s) in enumerate(zip(params, grads, state["square_avg"])):
                s.mul_(alpha).addcmul_(g, g, value=1 - alpha)
                if h["centered"]:
                    ga = state["grad_avg"][i]
                    ga.lerp_(g, 1 - alpha)
                    avg = s.addcmul(ga, ga, value=-1).sqrt_()
                else:
                    avg = s.sqrt()
                avg = avg.add_(h["eps"])
                if mu > 0:
                    b = state["buf"][i]
                    b.mul_(mu).addcdiv_(g, avg)
                    p.add_(b, alpha=-lr)
                else:
                    p.addcdiv_(g, avg, value=-lr)
        elif self.name == "adadelta":
            rho, eps = h["rho"], h["eps"]
            for p, g, s, u in zip(params, grads, state["square_avg"], state["acc_delta"]):
                s.mul_(rho).addcmul_(g, g, value=1 - rho)
                std = s.add(eps).sqrt_()
                delta = u.add(eps).sqrt_().div_(std).mul_(g)
                u.mul_(rho).addcmul_(delta, delta, value=1 - rho)
                p.add_(delta, alpha=-lr)
        else:  # pragma: no cover - make_optimizer validates names
            raise ValueError(f"unknown optimizer {self.name!r}")


def make_optimizer(name: str, lr: float | None = None, **kwargs: Any) -> BatchedOptimizer:
    """Validated ``BatchedOptimizer``: ``name`` one of ``OPTIMIZERS`` (case-insensitive), ``lr`` (None → torch's
    default for that optimiser) and the optimiser's other hyper-parameters (see ``OPTIMIZERS``)."""
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    name = name.lower()
    defaults = OPTIMIZERS[name]
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {sorted(unknown)} for optimizer {name!r}; "
                         f"allowed: {', '.join(k for k in defaults if k != 'lr')}")
    h = {**defaults, **kwargs}
    if lr is not None:
        h["lr"] = lr
    try:
        h["lr"] = float(h["lr"])
    except (TypeError, ValueError):
        raise ValueError(f"lr must be a positive number, got {h['lr']!r}") from None
    if not (math.isfinite(h["lr"]) and h["lr"] > 0):
        raise ValueError(f"lr must be a positive finite number, got {h['lr']!r}")
    if "momentum" in h:
        h["momentum"] = _unit_interval("momentum", h["momentum"], closed_right=True)
    if "dampening" in h:
        h["dampening"] = _unit_interval("dampening", h["dampening"], closed_right=True)
    if name == "sgd" and h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
        raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0, got momentum={h['momentum']}, "
                         f"dampening={h['dampening']}")
    if "betas" in h:
        b = tuple(h["betas"])
        if len(b) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {h['betas']!r}")
        h["betas"] = (_unit_interval("betas[0]", b[0]), _unit_interval("betas[1]", b[1]))
    for key in ("alpha", "rho"):
        if key in h:
            h[key] = _unit_interval(key, h[key], closed_right=True)
    for key in ("eps", "lr_decay", "initial_accumulator_value"):
        if key in h:
            v = float(h[key])
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{key} must be a finite number >= 0, got {h[key]!r}")
            h[key] = v
    return BatchedOptimizer(name, h)
