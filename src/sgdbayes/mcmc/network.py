"""The parameter-space posterior of a finite fully connected network, in whitened coordinates.

Network (as in :mod:`sgdbayes.prior_sampling`): ``d → h₁ → … → h_L → 1``, ReLU hidden layers, one linear logit;
prior = the initialisation distribution, ``W ~ N(0, σ_w²/fan_in)``, ``b ~ N(0, σ_b²)``. In *whitened* coordinates
``u ~ N(0, I)`` the parameters are ``W = (σ_w/√fan_in)·u_W`` and ``b = σ_b·u_b``; the flat layout of ``u`` is the
one of ``prior_sampling`` (layer by layer the weights ``[fan_in, fan_out]`` row-major, then the biases ``[fan_out]``),
so a row of ``u`` is the same network there and here.

Likelihood: a logistic of temperature τ on each training label ``s_n ∈ {−1, +1}``,
``p(s_n | z_n) = σ(s_n z_n / τ)``. As τ → 0 it tends to the 0–1 likelihood ``1{s_n z_n > 0}`` of Mingard et al.'s
P_B (a network fits S or it does not). The potential (negative log posterior up to a constant) is

    U_τ(u) = ½‖u‖² + Σ_n softplus(−s_n z_n(u) / τ),

and :meth:`FCNPosterior.potential_and_grad` returns it with its gradient for many chains at once (``u [C, P]``),
with a hand-written backward pass (checked against autograd in the tests).

The τ-posterior and the 0–1 posterior have the same support up to a set of measure zero, and
``π₀(u)/π_τ(u) ∝ 1{fit S} / Π_n σ(s_n z_n/τ)``: samples of π_τ reweighted by this ratio estimate the 0–1
posterior exactly (self-normalised importance weights; :meth:`FCNPosterior.log_weight_01`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sgdbayes.device import get_device

__all__ = ["FCNPosterior"]


def _check_tau(tau: float) -> None:
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")


def _as_signs(y, n: int) -> Tensor:
    t = torch.as_tensor(np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y))
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"y_train must have shape [{n}] (one label per row of x_train), got {tuple(t.shape)}")
    t = t.double()
    if bool(((t == 0) | (t == 1)).all()):
        return 2.0 * t - 1.0
    if bool(((t == -1) | (t == 1)).all()):
        return t
    raise ValueError("y_train must be binary: all values in {0, 1} or all in {-1, +1}")


class FCNPosterior:
    """Posterior of one FCN architecture on a train set S, for many chains at once.

    ``x_train [n, d]``, ``y_train [n]`` (0/1 or ±1), ``widths`` the hidden widths, ``sigma_w > 0``, ``sigma_b ≥ 0``.
    The prior is the initialisation distribution, or with ``prior_precision = κ`` an isotropic ``N(0, I/κ)`` on the
    raw parameters θ (weight decay κ/2·‖θ‖²; the coordinates stay whitened by the initialisation scales).
    Tensors live on ``device`` in ``dtype`` (float32 by default: the potential is a sum of O(n + P) terms of O(1)).
    """

    def __init__(self, x_train, y_train, *, widths: Sequence[int] = (40, 40), sigma_w: float = 1.0,
                 sigma_b: float = 1.0, prior_precision: float | None = None, device: str | torch.device = "auto",
                 dtype: torch.dtype = torch.float32):
        if not (math.isfinite(sigma_w) and sigma_w > 0):
            raise ValueError(f"sigma_w must be a finite number > 0, got {sigma_w!r}")
        if not (math.isfinite(sigma_b) and sigma_b >= 0):
            raise ValueError(f"sigma_b must be a finite number >= 0, got {sigma_b!r}")
        if prior_precision is not None and not (math.isfinite(prior_precision) and prior_precision > 0):
            raise ValueError(f"prior_precision must be None or a finite number > 0, got {prior_precision!r}")
        widths = tuple(int(w) for w in widths)
        if any(w < 1 for w in widths):
            raise ValueError(f"widths must be positive ints, got {widths!r}")
        self.device = get_device(device)
        self.dtype = dtype
        x = torch.as_tensor(np.asarray(x_train.detach().cpu() if isinstance(x_train, Tensor) else x_train))
        if x.ndim != 2 or x.shape[0] < 1:
            raise ValueError(f"x_train must be [n >= 1, d], got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("x_train contains NaN or inf")
        self.x_train = x.to(self.device, dtype)
        self.s_train = _as_signs(y_train, x.shape[0]).to(self.device, dtype)
        self.widths = widths
        self.sigma_w, self.sigma_b = float(sigma_w), float(sigma_b)
        sizes = [x.shape[1], *widths, 1]
        self.layers = list(zip(sizes[:-1], sizes[1:]))
        self.scales = [self.sigma_w / math.sqrt(a) for a, _ in self.layers]
        self.n_params = sum(a * b + b for a, b in self.layers)
        self.prior_precision = None if prior_precision is None else float(prior_precision)
        self._prior_diag = None if prior_precision is None else self.prior_precision * self.scale_vector**2

    def astype(self, dtype: torch.dtype) -> FCNPosterior:
        """The same posterior with tensors in ``dtype``."""
        return FCNPosterior(self.x_train, self.s_train, widths=self.widths, sigma_w=self.sigma_w,
                            sigma_b=self.sigma_b, prior_precision=self.prior_precision, device=self.device,
                            dtype=dtype)

    def _prior_grad(self, u: Tensor) -> Tensor:
        """Gradient of the negative log prior in u: ``u`` (initialisation prior) or ``κ σ² u`` (precision κ)."""
        return u.clone() if self._prior_diag is None else self._prior_diag * u

    def _prior_value(self, u: Tensor) -> Tensor:
        return 0.5 * ((u * u).sum(-1) if self._prior_diag is None else (self._prior_diag * u * u).sum(-1))

    @property
    def scale_vector(self) -> Tensor:
        """``[P]``: the prior standard deviation of each raw parameter, so that ``θ = scale_vector · u``."""
        parts = []
        for (a, b), alpha in zip(self.layers, self.scales, strict=True):
            parts += [torch.full((a * b,), alpha), torch.full((b,), self.sigma_b)]
        return torch.cat(parts).to(self.device, self.dtype)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    # ---- layout -------------------------------------------------------------------------------------------------
    def split(self, u: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Views ``(u_W [C, fan_in, fan_out], u_b [C, fan_out])`` of each layer of ``u [C, P]``."""
        if u.ndim != 2 or u.shape[1] != self.n_params:
            raise ValueError(f"u must be [C, {self.n_params}], got shape {tuple(u.shape)}")
        out, off = [], 0
        for a, b in self.layers:
            w = u[:, off:off + a * b].view(u.shape[0], a, b)
            off += a * b
            out.append((w, u[:, off:off + b]))
            off += b
        return out

    def raw_parameters(self, u: Tensor) -> list[Tensor]:
        """The networks' parameters in ``torch.nn`` layout, stacked: ``[W₁ [C, out, in], b₁ [C, out], …]``
        (the layout of :class:`sgdbayes.ensembles.FCN`)."""
        out = []
        for (w, b), alpha in zip(self.split(u), self.scales, strict=True):
            out += [alpha * w.transpose(1, 2).contiguous(), self.sigma_b * b.contiguous()]
        return out

    def whiten(self, params: Sequence[Tensor]) -> Tensor:
        """Inverse of :meth:`raw_parameters` for ``sigma_b > 0``: stacked ``torch.nn``-layout parameters → ``u``."""
        if self.sigma_b == 0:
            raise ValueError("whiten needs sigma_b > 0 (with sigma_b = 0 the biases are not free parameters)")
        if len(params) != 2 * len(self.layers):
            raise ValueError(f"expected {2 * len(self.layers)} parameter tensors, got {len(params)}")
        parts = []
        for k, alpha in enumerate(self.scales):
            W, b = params[2 * k], params[2 * k + 1]
            parts += [(W.transpose(1, 2) / alpha).reshape(W.shape[0], -1), b / self.sigma_b]
        return torch.cat(parts, dim=1).to(self.device, self.dtype)

    # ---- network ------------------------------------------------------------------------------------------------
    def logits(self, u: Tensor, x: Tensor | None = None) -> Tensor:
        """Logits ``[C, n]`` of the C networks ``u [C, P]`` on ``x [n, d]`` (default: the train inputs)."""
        x = self.x_train if x is None else torch.as_tensor(x).to(self.device, self.dtype)
        return self._forward(u, x)[0]

    def _forward(self, u: Tensor, x: Tensor):
        """Logits ``[C, n]``, each layer's input ``[C, n, ·]`` and the layer views, for inputs shared by all chains
        (``x [n, d]``) or per chain (``x [C, n, d]``)."""
        h = x.expand(u.shape[0], *x.shape) if x.ndim == 2 else x
        acts = [h]
        parts = self.split(u)
        for k, ((w, b), alpha) in enumerate(zip(parts, self.scales, strict=True)):
            h = torch.baddbmm(b.unsqueeze(1), h, w, beta=self.sigma_b, alpha=alpha)
            if k < len(parts) - 1:
                h = torch.relu(h)
                acts.append(h)
        return h.squeeze(-1), acts, parts

    def _backward(self, grad: Tensor, delta: Tensor, acts, parts) -> None:
        """Add ``∂(Σ_n loss_n)/∂u`` to ``grad [C, P]`` given ``delta = ∂loss/∂z [C, n]``: per layer
        ``∇u_W = α hᵀδ``, ``∇u_b = σ_b Σ_n δ`` and ``δ ← α (δ u_Wᵀ) ⊙ 1{pre-activation > 0}``."""
        delta = delta.unsqueeze(-1)
        gparts = self.split(grad)
        for k in reversed(range(len(parts))):
            (w, _), alpha = parts[k], self.scales[k]
            gw, gb = gparts[k]
            gw.baddbmm_(acts[k].transpose(1, 2), delta, alpha=alpha)
            gb.add_(delta.sum(1), alpha=self.sigma_b)
            if k:
                delta = torch.bmm(delta, w.transpose(1, 2)).mul_(alpha)
                delta.masked_fill_(acts[k] <= 0, 0.0)

    def labels(self, u: Tensor, x) -> Tensor:
        """Labelling ``logit > 0`` (bool ``[C, n]``) of ``x`` by each network."""
        with torch.no_grad():
            return self.logits(u, x) > 0

    def log_likelihood(self, u: Tensor, tau: float) -> Tensor:
        """``Σ_n log σ(s_n z_n/τ)`` of each chain ``[C]``."""
        with torch.no_grad():
            return -F.softplus(-self.s_train * self.logits(u) / tau).sum(1)

    def n_train_errors(self, u: Tensor) -> Tensor:
        """Training points each network labels wrongly by sign ``[C]`` (int64)."""
        with torch.no_grad():
            return ((self.logits(u) > 0) != (self.s_train > 0)).sum(1)

    def log_weight_01(self, u: Tensor, tau: float) -> Tensor:
        """``log π₀(u)/π_τ(u)`` up to a constant: ``−Σ_n log σ(s_n z_n/τ)`` where the network fits S by sign, −inf
        elsewhere ``[C]`` (float64). Self-normalised, these weights turn π_τ samples into 0–1-posterior samples."""
        with torch.no_grad():
            z = self.logits(u)
            fit = ((z > 0) == (self.s_train > 0)).all(1)
            lw = F.softplus(-self.s_train * z.double() / tau).sum(1)
            return torch.where(fit, lw, torch.full_like(lw, -math.inf))

    def potential_and_grad(self, u: Tensor, tau: float) -> tuple[Tensor, Tensor, Tensor]:
        """``(U [C], ∇U [C, P], log-likelihood [C])`` of ``U_τ(u) = −log prior(u) − Σ_n log σ(s_n z_n/τ)`` on S
        (``½‖u‖²`` for the initialisation prior),
        with the backward pass by hand (``δ = ∂U/∂z = −(s/τ)·σ(−s z/τ)``, see :meth:`_backward`)."""
        _check_tau(tau)
        with torch.no_grad():
            z, acts, parts = self._forward(u, self.x_train)
            m = -self.s_train * z / tau
            loglik = -F.softplus(m).sum(1)
            grad = self._prior_grad(u)
            self._backward(grad, -(self.s_train / tau) * torch.sigmoid(m), acts, parts)
            U = self._prior_value(u) - loglik
        return U, grad, loglik

    def minibatch_grad(self, u: Tensor, idx: Tensor, tau: float, prior_weight: float) -> Tensor:
        """Gradient ``[C, P]`` of ``(1/B) Σ_{n ∈ idx_c} softplus(−s_n z_n/τ) − prior_weight·log prior(u)`` per chain c,
        ``idx [C, B]`` its own minibatch (indices into S). With ``prior_weight = 1/N`` this is the minibatch gradient
        of Mandt et al.'s ``L = (1/N) Σ_n ℓ_n``, ``ℓ_n = −log p(y_n|θ) − (1/N) log p(θ)``."""
        _check_tau(tau)
        with torch.no_grad():
            x = self.x_train[idx]
            s = self.s_train[idx]
            z, acts, parts = self._forward(u, x)
            grad = self._prior_grad(u).mul_(prior_weight)
            delta = -(s / tau) * torch.sigmoid(-s * z / tau) / idx.shape[1]
            self._backward(grad, delta, acts, parts)
        return grad

    def _per_example(self, u: Tensor, dloss_dz) -> Tensor:
        """``[n, P]``: for each training example n, ``dloss_dz(z_n, s_n) · ∇_u z_n`` at one ``u [P]`` — each example
        run as its own chain through :meth:`_backward`."""
        if u.ndim != 1 or u.shape[0] != self.n_params:
            raise ValueError(f"u must be [{self.n_params}], got shape {tuple(u.shape)}")
        n = self.n_train
        with torch.no_grad():
            uu = u.expand(n, -1).contiguous()
            z, acts, parts = self._forward(uu, self.x_train.unsqueeze(1))
            grad = torch.zeros_like(uu)
            self._backward(grad, dloss_dz(z, self.s_train.unsqueeze(1)), acts, parts)
        return grad

    def per_example_grads(self, u: Tensor, tau: float) -> Tensor:
        """Per-example gradients ``[n, P]`` of ``softplus(−s_n z_n/τ)`` (likelihood terms only) at one ``u [P]``."""
        _check_tau(tau)
        return self._per_example(u, lambda z, s: -(s / tau) * torch.sigmoid(-s * z / tau))

    def per_example_logit_grads(self, u: Tensor) -> Tensor:
        """Gradients ``[n, P]`` of each training logit ``z_n`` with respect to ``u`` at one ``u [P]``."""
        return self._per_example(u, lambda z, s: torch.ones_like(z))

    def prior_hessian_diag(self) -> Tensor:
        """``[P]``: the (diagonal) Hessian of the negative log prior in u."""
        if self._prior_diag is None:
            return torch.ones(self.n_params, device=self.device, dtype=self.dtype)
        return self._prior_diag.clone()

    def potential_single(self, u: Tensor, tau: float) -> Tensor:
        """``U_τ(u)`` of one network ``u [P]`` with plain differentiable ops (for ``torch.func.hessian``)."""
        _check_tau(tau)
        h = self.x_train.to(u.dtype)
        off = 0
        for k, ((a, b), alpha) in enumerate(zip(self.layers, self.scales, strict=True)):
            w = u[off:off + a * b].view(a, b)
            off += a * b
            h = alpha * (h @ w) + self.sigma_b * u[off:off + b]
            off += b
            if k < len(self.layers) - 1:
                h = torch.relu(h)
        z = h.squeeze(-1)
        return self._prior_value(u) + F.softplus(-self.s_train.to(u.dtype) * z / tau).sum()

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of ``u`` from the prior, ``[n, P]``."""
        return torch.randn(n, self.n_params, generator=generator, device=self.device, dtype=self.dtype)
