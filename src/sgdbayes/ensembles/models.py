"""Stacks of M independent networks stored as tensors with a leading model dimension.

Every parameter of an ensemble is one tensor ``[M, ...]``: slice ``m`` is network ``m``'s parameter with the shape
``torch.nn`` would give it (``Linear.weight`` is ``[out, in]``, ``Conv2d.weight`` is ``[out, in, k, k]``). The
forward passes are plain functions of that list, so autograd of the *sum* of the per-network mean losses gives each
network exactly its own gradient (the networks share no parameter).

Initialisation matches the NNGP prior of the Bayesian side (Mingard et al. 2020; ``sgdbayes.kernels.nngp_fcn``):
``W ~ N(0, σ_w²/fan_in)``, ``b ~ N(0, σ_b²)``, ReLU hidden layers, one linear logit. Network ``m`` draws its
parameters from its own CPU ``torch.Generator`` seeded with its own seed (one standard-normal draw split in the order
``W1, b1, W2, b2, …``) — so a network's initial parameters do not depend on which other networks share its stack, on
the chunk size, or on the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FCN", "CNN", "EnsembleModel"]


def _check_positive_ints(name: str, values: Sequence[int], *, allow_empty: bool = True) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of positive ints, got {values!r}") from None
    if any(v <= 0 for v in out) or any(int(v) != v for v in values) or (not allow_empty and not out):
        raise ValueError(f"{name} must be a sequence of positive ints, got {values!r}")
    return out


class EnsembleModel:
    """Common part of the stacked architectures: parameter shapes, prior initialisation, export to ``torch.nn``.

    Subclasses define ``param_shapes`` (per network, torch.nn layout, pairs weight/bias), ``fan_ins`` (one per
    weight), ``forward(params, x)`` for per-network inputs ``x [M, b, *in_shape]`` → logits ``[M, b]``,
    ``forward_shared(params, X)`` for one input set seen by all networks ``X [n, *in_shape]`` → logits ``[M, n]``, and
    ``forward_single(params, x)`` for one network's unstacked parameters on ``x [b, *in_shape]`` → logits ``[b]``.
    """

    in_shape: tuple[int, ...]
    sigma_w: float
    sigma_b: float

    def _check_sigmas(self, sigma_w: float, sigma_b: float) -> None:
        if not (math.isfinite(sigma_w) and sigma_w > 0):
            raise ValueError(f"sigma_w must be a finite number > 0, got {sigma_w!r}")
        if not (math.isfinite(sigma_b) and sigma_b >= 0):
            raise ValueError(f"sigma_b must be a finite number >= 0, got {sigma_b!r}")
        self.sigma_w, self.sigma_b = float(sigma_w), float(sigma_b)

    # --- shapes -------------------------------------------------------------------------------------------------
    @property
    def param_shapes(self) -> list[tuple[int, ...]]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def fan_ins(self) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        """Number of scalar parameters of one network."""
        return sum(math.prod(s) for s in self.param_shapes)

    def activation_units(self) -> int:
        """Number of activations one network stores per input example (all layers); sizes the chunk."""
        raise NotImplementedError  # pragma: no cover

    def flops_per_example(self) -> int:
        """Multiply-adds ×2 of one forward pass of one network on one example (backward ≈ 2× this)."""
        raise NotImplementedError  # pragma: no cover

    # --- initialisation ------------------------------------------------------------------------------------------
    def init_network(self, seed: int) -> list[Tensor]:
        """Parameters of one network drawn from the prior with a CPU generator seeded by ``seed`` (float32): one
        ``randn(n_params)`` draw, split into ``W1, b1, W2, b2, …`` in that order and scaled by σ_w/√fan_in or σ_b."""
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(self.n_params, generator=gen, dtype=torch.float32)
        out: list[Tensor] = []
        offset = 0
        for k, shape in enumerate(self.param_shapes):
            size = math.prod(shape)
            std = self.sigma_w / math.sqrt(self.fan_ins[k // 2]) if k % 2 == 0 else self.sigma_b
            out.append(z[offset:offset + size].view(shape).mul_(std))
            offset += size
        return out

    def init(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> list[Tensor]:
        """Stacked parameters ``[M, ...]`` of ``len(seeds)`` networks, network m from ``init_network(seeds[m])``."""
        if len(seeds) == 0:
            raise ValueError("seeds is empty; an ensemble needs at least one network")
        per_net = [self.init_network(s) for s in seeds]
        return [torch.stack([p[k] for p in per_net]).to(device) for k in range(len(self.param_shapes))]

    # --- torch.nn export -----------------------------------------------------------------------------------------
    def to_module(self, params: Sequence[Tensor], m: int) -> nn.Module:  # pragma: no cover - abstract
        """Network ``m`` of the stack as an ordinary ``torch.nn`` module (copies; float32)."""
        raise NotImplementedError

    def forward_single(self, params: Sequence[Tensor], x: Tensor) -> Tensor:
        """One network's parameters (``torch.nn`` shapes, no model dimension) on inputs ``x [b, *in_shape]`` → logits
        ``[b]``. Subclasses use plain 2-D ops here (GEMMs as ``addmm``), which ``train_ensemble`` takes for a chunk of
        one network: a batched GEMM of batch 1 and its backward (which returns transposed, strided gradients) cost up
        to 2× the 2-D ones for wide layers on CPU."""
        return self.forward([p.unsqueeze(0) for p in params], x.unsqueeze(0)).squeeze(0)

    def check_inputs(self, X: Tensor, name: str = "X") -> None:
        if tuple(X.shape[1:]) != self.in_shape:
            raise ValueError(f"{name} has shape {tuple(X.shape)}; this model needs [n, {', '.join(map(str, self.in_shape))}]")


class FCN(EnsembleModel):
    """M fully connected ReLU networks ``in_features → hidden[0] → … → hidden[-1] → 1``.

    Parameters per network: ``W_l [out, in]``, ``b_l [out]`` for each layer, the last one the logit readout.
    ``FCN(7, (40, 40))`` is the paper's Boolean 7→40→40→1 net; ``FCN(784, (40, 40))`` an MNIST one.
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (40, 40), *, sigma_w: float = 1.0,
                 sigma_b: float = 0.0):
        (d,) = _check_positive_ints("in_features", [in_features])
        self.hidden = _check_positive_ints("hidden", hidden)
        self._check_sigmas(sigma_w, sigma_b)
        self.in_shape = (d,)
        self.widths = (d, *self.hidden, 1)

    def __repr__(self) -> str:
        return f"FCN({'→'.join(map(str, self.widths))}, sigma_w={self.sigma_w}, sigma_b={self.sigma_b})"

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        shapes: list[tuple[int, ...]] = []
        for a, b in zip(self.widths[:-1], self.widths[1:]):
            shapes += [(b, a), (b,)]
        return shapes

    @property
    def fan_ins(self) -> list[int]:
        return list(self.widths[:-1])

    def activation_units(self) -> int:
        return sum(self.widths)

    def flops_per_example(self) -> int:
        return 2 * sum(a * b for a, b in zip(self.widths[:-1], self.widths[1:]))

    def _rest(self, params: Sequence[Tensor], h: Tensor) -> Tensor:
        """Layers 2… on hidden activations ``h [M, b, width_1]`` (already through the first layer)."""
        n_layers = len(self.widths) - 1
        for layer in range(1, n_layers):
            h = torch.relu(h)
            W, b = params[2 * layer], params[2 * layer + 1]
            h = torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
        return h.squeeze(-1)

    def forward(self, params: Sequence[Tensor], x: Tensor) -> Tensor:
        """Per-network inputs ``x [M, b, d]`` → logits ``[M, b]``."""
        W, b = params[0], params[1]
        return self._rest(params, torch.baddbmm(b.unsqueeze(1), x, W.transpose(1, 2)))

    def forward_shared(self, params: Sequence[Tensor], X: Tensor) -> Tensor:
        """Inputs shared by all networks ``X [n, d]`` → logits ``[M, n]``; the first layer of all M networks is one
        GEMM ``X · [W1_1; …; W1_M]ᵀ`` (``[n, d] × [d, M·h]``)."""
        W, b = params[0], params[1]
        M, h, d = W.shape
        first = torch.addmm(b.reshape(M * h), X, W.reshape(M * h, d).t())  # [n, M*h]
        return self._rest(params, first.view(X.shape[0], M, h).transpose(0, 1))

    def forward_single(self, params: Sequence[Tensor], x: Tensor) -> Tensor:
        """One network ``W_l [out, in]``, ``b_l [out]`` on ``x [b, d]`` → logits ``[b]``: ``F.linear`` per layer, the
        same ``addmm`` as ``torch.nn.Linear``, whose backward returns weight gradients in the weights' (contiguous)
        layout."""
        h = x
        for layer in range(len(self.widths) - 1):
            if layer:
                h = torch.relu(h)
            h = F.linear(h, params[2 * layer], params[2 * layer + 1])
        return h.squeeze(-1)

    @torch.no_grad()
    def sgd_step_(self, params: Sequence[Tensor], x: Tensor, grad_logits, lr: float) -> Tensor:
        """One plain-SGD step (no momentum) in place, with the backward pass written out and every weight update fused
        into the GEMM that forms its gradient: ``W_l ← W_l − lr · δ_lᵀ a_l`` as one ``baddbmm_``/``addmm_`` (α = −lr),
        ``b_l ← b_l − lr · Σ_b δ_l``.

        ``params`` stacked ``[M, ...]`` with ``x [M, b, d]``, or one network's (``forward_single`` layout) with
        ``x [b, d]``. ``grad_logits(z)`` maps the logits (``[M, b]`` or ``[b]``) to ∂(each network's mean loss)/∂z.
        Backward: δ_L = grad_logits(z); δ_{l} = (δ_{l+1} W_{l+1}) ⊙ [a_{l+1} > 0] (ReLU; taken before W_{l+1} changes),
        a_l the input of layer l. Same update as autograd + ``torch.optim.SGD`` up to float rounding, without the
        gradient tensors (one write and two reads of the parameters' size less per step, and no fresh allocation).
        Returns the logits of the forward pass (before the update).
        """
        single = x.ndim == 2
        n_layers = len(self.widths) - 1
        acts, h = [x], x
        for layer in range(n_layers):
            W, b = params[2 * layer], params[2 * layer + 1]
            h = torch.addmm(b, h, W.t()) if single else torch.baddbmm(b.unsqueeze(1), h, W.transpose(-1, -2))
            if layer < n_layers - 1:
                h = torch.relu(h)
                acts.append(h)
        logits = h.squeeze(-1)
        delta = grad_logits(logits).unsqueeze(-1)  # [(M,) b, 1]
        for layer in reversed(range(n_layers)):
            W, b = params[2 * layer], params[2 * layer + 1]
            below = None
            if layer:
                below = torch.mm(delta, W) if single else torch.bmm(delta, W)
                below.masked_fill_(acts[layer] <= 0, 0.0)  # ReLU backward, as autograd's threshold_backward
            if single:
                W.addmm_(delta.t(), acts[layer], alpha=-lr)
                b.add_(delta.sum(0), alpha=-lr)
            else:
                W.baddbmm_(delta.transpose(1, 2), acts[layer], alpha=-lr)
                b.add_(delta.sum(1), alpha=-lr)
            delta = below
        return logits

    def to_module(self, params: Sequence[Tensor], m: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(self.widths[:-1], self.widths[1:])):
            if k:
                layers.append(nn.ReLU())
            lin = nn.Linear(a, b)
            with torch.no_grad():
                lin.weight.copy_(params[2 * k][m])
                lin.bias.copy_(params[2 * k + 1][m])
            layers.append(lin)
        return nn.Sequential(*layers).to(params[0].device)


class CNN(EnsembleModel):
    """M small convolutional ReLU networks without pooling: ``conv(k) → ReLU → … → flatten → linear → 1 logit``.

    Inputs ``[C, H, W]``; each conv layer has stride 1 and ``padding`` (``"same"`` keeps H×W, ``"valid"`` shrinks by
    k−1). Per network: ``W_l [c_out, c_in, k, k]`` (fan_in = c_in·k²), ``b_l [c_out]``, readout ``[1, c·H'·W']``.
    The M networks run as one grouped convolution (``groups = M``) over channels ``[b, M·c, H, W]``.
    """

    def __init__(self, in_shape: Sequence[int], channels: Sequence[int] = (8,), *, kernel_size: int = 3,
                 padding: str = "same", sigma_w: float = 1.0, sigma_b: float = 0.0):
        self.in_shape = _check_positive_ints("in_shape", in_shape)
        if len(self.in_shape) != 3:
            raise ValueError(f"in_shape must be (channels, height, width), got {tuple(in_shape)!r}")
        self.channels = _check_positive_ints("channels", channels, allow_empty=False)
        (self.kernel_size,) = _check_positive_ints("kernel_size", [kernel_size])
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        self.padding = padding
        self._check_sigmas(sigma_w, sigma_b)
        c, h, w = self.in_shape
        shrink = 0 if padding == "same" else len(self.channels) * (self.kernel_size - 1)
        if h - shrink < 1 or w - shrink < 1:
            raise ValueError(f"input {h}×{w} too small for {len(self.channels)} 'valid' convolutions of size {kernel_size}")
        self.out_hw = (h - shrink, w - shrink)

    def __repr__(self) -> str:
        return (f"CNN(in={self.in_shape}, channels={self.channels}, k={self.kernel_size}, padding={self.padding!r}, "
                f"sigma_w={self.sigma_w}, sigma_b={self.sigma_b})")

    @property
    def n_features(self) -> int:
        return self.channels[-1] * self.out_hw[0] * self.out_hw[1]

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        k = self.kernel_size
        shapes: list[tuple[int, ...]] = []
        for a, b in zip((self.in_shape[0], *self.channels[:-1]), self.channels):
            shapes += [(b, a, k, k), (b,)]
        return shapes + [(1, self.n_features), (1,)]

    @property
    def fan_ins(self) -> list[int]:
        k2 = self.kernel_size**2
        return [a * k2 for a in (self.in_shape[0], *self.channels[:-1])] + [self.n_features]

    def _hw(self) -> list[tuple[int, int]]:
        h, w = self.in_shape[1:]
        out = []
        for _ in self.channels:
            if self.padding == "valid":
                h, w = h - self.kernel_size + 1, w - self.kernel_size + 1
            out.append((h, w))
        return out

    def activation_units(self) -> int:
        return math.prod(self.in_shape) + sum(c * h * w for c, (h, w) in zip(self.channels, self._hw())) + 1

    def flops_per_example(self) -> int:
        k2 = self.kernel_size**2
        ins = (self.in_shape[0], *self.channels[:-1])
        conv = sum(2 * a * b * k2 * h * w for a, b, (h, w) in zip(ins, self.channels, self._hw()))
        return conv + 2 * self.n_features

    def _convs(self, params: Sequence[Tensor], h: Tensor, M: int, first_done: bool) -> Tensor:
        """Conv layers on ``h [b, M·c, H, W]`` (grouped); returns logits ``[M, b]``."""
        start = 1 if first_done else 0
        for layer in range(start, len(self.channels)):
            W, b = params[2 * layer], params[2 * layer + 1]
            if layer:
                h = torch.relu(h)
            h = F.conv2d(h, W.reshape(-1, *W.shape[2:]), b.reshape(-1), padding=self.padding, groups=M)
        h = torch.relu(h)
        n = h.shape[0]
        feats = h.reshape(n, M, self.n_features).transpose(0, 1)  # [M, b, F]
        Wr, br = params[-2], params[-1]
        return torch.baddbmm(br.unsqueeze(1), feats, Wr.transpose(1, 2)).squeeze(-1)

    def forward(self, params: Sequence[Tensor], x: Tensor) -> Tensor:
        """Per-network inputs ``x [M, b, C, H, W]`` → logits ``[M, b]``."""
        M, b = x.shape[:2]
        h = x.transpose(0, 1).reshape(b, M * self.in_shape[0], *self.in_shape[1:])
        return self._convs(params, h, M, first_done=False)

    def forward_shared(self, params: Sequence[Tensor], X: Tensor) -> Tensor:
        """Shared inputs ``X [n, C, H, W]`` → logits ``[M, n]`` (first conv of all M networks as one convolution)."""
        W, b = params[0], params[1]
        M = W.shape[0]
        h = F.conv2d(X, W.reshape(-1, *W.shape[2:]), b.reshape(-1), padding=self.padding)
        return self._convs(params, h, M, first_done=True)

    def forward_single(self, params: Sequence[Tensor], x: Tensor) -> Tensor:
        """One network's parameters on ``x [b, C, H, W]`` → logits ``[b]`` (ordinary, ungrouped convolutions)."""
        h = x
        for layer in range(len(self.channels)):
            if layer:
                h = torch.relu(h)
            h = F.conv2d(h, params[2 * layer], params[2 * layer + 1], padding=self.padding)
        h = torch.relu(h).flatten(1)
        return F.linear(h, params[-2], params[-1]).squeeze(-1)

    def to_module(self, params: Sequence[Tensor], m: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(zip((self.in_shape[0], *self.channels[:-1]), self.channels)):
            if k:
                layers.append(nn.ReLU())
            conv = nn.Conv2d(a, b, self.kernel_size, padding=self.padding)
            with torch.no_grad():
                conv.weight.copy_(params[2 * k][m])
                conv.bias.copy_(params[2 * k + 1][m])
            layers.append(conv)
        lin = nn.Linear(self.n_features, 1)
        with torch.no_grad():
            lin.weight.copy_(params[-2][m])
            lin.bias.copy_(params[-1][m])
        layers += [nn.ReLU(), nn.Flatten(), lin]
        return nn.Sequential(*layers).to(params[0].device)
