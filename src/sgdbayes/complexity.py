"""Complexity of a learned function: the critical sample ratio (CSR), as Mingard et al. / Valle-Pérez et al. used it.

Arpit et al. (2017) call an input x *critical* when a point of the box ``{x + Δ : ‖Δ‖_∞ ≤ r}`` gets a different
label, found by a gradient search (their LASS); the CSR of a function on a set of inputs is the fraction of critical
inputs. The authors of the paper this book reproduces computed it for image classifiers in guillefix/nn-pacbayes,
``compute_CSR.py`` (functions ``lass`` and ``crit_sample_ratio``). Their search, which :func:`critical_sample_ratio`
implements, is, for each input x with label ``s = sign f(x)``:

    Δ₀ = 0;  for k = 1 … K:   Δ_k = clip_[−r, r]( Δ_{k−1} + α · sign(−s ∇_x f(x + Δ_{k−1})) )
                              x is critical (and the search stops) as soon as sign f(x + Δ_k) ≠ s,

with the L∞ box of radius ``r = 0.03`` (pixels scaled to [0, 1]), step ``α = 0.5``, ``K = 20`` steps, no noise term
(their β·N(0, 1) term is commented out) and no clipping of ``x + Δ`` to the pixel range. Because α ≫ r, the first
step already lands on a corner of the box (coordinate-wise ``±r``; coordinates with zero gradient stay), and later
steps move between corners: an iterated fast-gradient-sign search. For a linear classifier ``f = w·x + b`` the first
corner minimises ``s f`` over the box, so the test is exact: x is critical iff ``|w·x + b| < r ‖w‖₁``.

Where the authors applied it: ``compute_CSR.py`` loads the train images of the run's data file (``load_data``) and
networks saved by the run (``sampled_nets/``), and writes one CSR per network; ``analyze/analyze_CSR_sample.py``
plots it against log P. Labels here are ``f > 0`` (the book's convention for recorded functions); the authors'
``tf.sign`` differs only for an output of exactly 0.

For Boolean functions on {0, 1}ⁿ the authors' CSR (``complexities.py``, ``crit_sample_ratio``) is the fraction of
inputs with at least one Hamming neighbour of the other label: :func:`boolean_csr`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["AUTHORS_CSR", "CSRResult", "boolean_csr", "critical_sample_ratio", "ensemble_critical_sample_ratio",
           "gp_mean_predictor"]

AUTHORS_CSR = {"radius": 0.03, "step": 0.5, "max_iter": 20}
"""The settings of ``compute_CSR.py`` (``crit_sample_ratio(model, data, r=0.03)``, ``alpha=0.5``, ``max_iters=20``)."""


@dataclass
class CSRResult:
    """``ratio``: fraction of critical inputs; ``critical`` ``[n]`` bool; ``flip_step`` ``[n]`` int64, the search
    step (1 … max_iter) at which the label flipped, 0 for inputs that are not critical."""

    ratio: float
    critical: torch.Tensor
    flip_step: torch.Tensor
    radius: float
    step: float
    max_iter: int


def _check_settings(radius, step, max_iter, chunk):
    for name, v in (("radius", radius), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    for name, v in (("max_iter", max_iter), ("chunk", chunk)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")


def _search(fn: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, n_lead: int, radius: float, step: float,
            max_iter: int) -> torch.Tensor:
    """The box search on ``x0 [*lead, *features]`` (``n_lead`` leading axes), ``fn`` → logits ``[*lead]`` computed
    row by row. Returns the flip step ``[*lead]`` (0 = never flipped)."""
    lead = x0.shape[:n_lead]
    feat_axes = (None,) * (x0.ndim - n_lead)

    def logits(x):
        out = fn(x)
        if out.shape != lead:
            if out.shape == (*lead, 1):
                out = out.squeeze(-1)
            else:
                raise ValueError(f"the model must map inputs {tuple(x.shape)} to logits {tuple(lead)} (or with a "
                                 f"trailing 1), got {tuple(out.shape)}")
        if not bool(torch.isfinite(out).all()):
            raise FloatingPointError("the model produced non-finite outputs during the critical-sample search")
        return out

    with torch.no_grad():
        label = logits(x0) > 0
    s = torch.where(label, 1.0, -1.0).to(x0.dtype)[(...,) + feat_axes]
    flip = torch.zeros(lead, dtype=torch.int64, device=x0.device)
    delta = torch.zeros_like(x0)
    active = torch.ones(lead, dtype=torch.bool, device=x0.device)
    for k in range(1, max_iter + 1):
        with torch.enable_grad():
            xt = (x0 + delta).detach().requires_grad_(True)
            out = logits(xt)
            (grad,) = torch.autograd.grad(out.sum(), xt)
        move = step * torch.sign(-s * grad) * active.to(x0.dtype)[(...,) + feat_axes]
        delta = (delta + move).clamp_(-radius, radius)
        with torch.no_grad():
            new = logits(x0 + delta) > 0
        hit = active & (new != label)
        flip[hit] = k
        active &= ~hit
        if not bool(active.any()):
            break
    return flip


def critical_sample_ratio(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *,
                          radius: float = AUTHORS_CSR["radius"], step: float = AUTHORS_CSR["step"],
                          max_iter: int = AUTHORS_CSR["max_iter"], chunk: int = 1024) -> CSRResult:
    """CSR of the classifier ``sign fn(x)`` on the inputs ``x`` (see the module docstring for the search).

    fn       differentiable map ``[b, *in_shape]`` → logits ``[b]`` (or ``[b, 1]``) that treats rows independently
             (a network in evaluation mode, a kernel predictor; no batch statistics)
    x        ``[n, *in_shape]`` inputs, in the units ``radius`` refers to (pixels in [0, 1] for the authors' 0.03);
             the search runs in x's dtype and on x's device
    radius   half-width r of the L∞ box; step α of each sign move; max_iter moves at most
    chunk    inputs searched at a time
    """
    _check_settings(radius, step, max_iter, chunk)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a floating tensor [n, *in_shape] with n >= 1, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or inf")
    flips = [_search(fn, x[a:a + chunk].detach(), 1, float(radius), float(step), max_iter)
             for a in range(0, x.shape[0], chunk)]
    flip = torch.cat(flips)
    crit = flip > 0
    return CSRResult(ratio=float(crit.double().mean()), critical=crit, flip_step=flip, radius=float(radius),
                     step=float(step), max_iter=int(max_iter))


def ensemble_critical_sample_ratio(model, params: Sequence[torch.Tensor], x: torch.Tensor, *,
                                   radius: float = AUTHORS_CSR["radius"], step: float = AUTHORS_CSR["step"],
                                   max_iter: int = AUTHORS_CSR["max_iter"], chunk: int = 256) -> torch.Tensor:
    """CSR of each of the M networks of a stacked ensemble (``sgdbayes.ensembles.FCN``/``CNN`` with parameters
    ``[M, ...]``) on the same inputs ``x [n, *in_shape]``: float64 ``[M]``. Each network searches its own boxes; the
    M searches run together through ``model.forward(params, x [M, b, *in_shape])``."""
    _check_settings(radius, step, max_iter, chunk)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError("x must be a floating tensor [n, *in_shape] with n >= 1")
    model.check_inputs(x, "x")
    params = [p.detach() for p in params]
    M = params[0].shape[0]

    def fn(xx):
        return model.forward(params, xx)

    crit = []
    for a in range(0, x.shape[0], chunk):
        xc = x[a:a + chunk].to(params[0].dtype)
        x0 = xc.unsqueeze(0).expand(M, *xc.shape).contiguous()
        crit.append(_search(fn, x0, 2, float(radius), float(step), max_iter) > 0)
    return torch.cat(crit, 1).double().mean(1)


def gp_mean_predictor(kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x_train: torch.Tensor, y_train,
                      *, noise_var: float = 0.002, targets: str = "pm1",
                      threshold: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """The posterior-mean classifier of the GP regression posterior, as a differentiable function for the search:
    ``x ↦ k(x, X_S) (K_SS + σ² I)⁻¹ t − c`` (float64), labels ``> 0``. ``kernel(x1, x2)`` → ``[n1, n2]``, e.g.
    ``functools.partial(sgdbayes.kernels.nngp_fcn, depth=2, sigma_w=1.0, sigma_b=0.0357)``; ``targets`` and the
    threshold ``c`` as in :func:`sgdbayes.gp.regression_posterior`."""
    from sgdbayes.gp.posterior import TARGETS, _check_noise_var, as_pm1

    noise_var = _check_noise_var(noise_var)
    if targets not in TARGETS:
        raise ValueError(f"targets must be one of {TARGETS}, got {targets!r}")
    xs = x_train.detach().to(torch.float64)
    y = as_pm1(y_train, xs.shape[0], "y_train", xs.device)
    t = y if targets == "pm1" else 0.5 * (y + 1)
    A = kernel(xs, xs).to(torch.float64)
    A = A + noise_var * torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        raise ValueError(f"K_SS + noise_var*I is not positive definite (noise_var = {noise_var:g})")
    alpha = torch.cholesky_solve(t.unsqueeze(-1), L).squeeze(-1)
    c = float(threshold)

    def predict(x: torch.Tensor) -> torch.Tensor:
        return kernel(x.to(torch.float64), xs).to(torch.float64) @ alpha - c

    return predict


def boolean_csr(bits, n: int) -> np.ndarray:
    """CSR of Boolean functions on all 2ⁿ inputs (row i = i in binary, most significant bit first, as
    :func:`sgdbayes.data.boolean_inputs`): the fraction of inputs with a Hamming neighbour of the other label.

    bits ``[m, 2ⁿ]`` or ``[2ⁿ]`` (0/1 or bool, or '0'/'1' strings) → float64 ``[m]`` (a float for one function).
    """
    from sgdbayes.functions import as_bits

    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 24:
        raise ValueError(f"n must be an int in 1..24, got {n!r}")
    single = isinstance(bits, str) or np.ndim(bits) == 1
    if isinstance(bits, str):
        bits = [bits]
    if not isinstance(bits, np.ndarray) and len(bits) and isinstance(bits[0], str):
        bits = np.array([[c == "1" for c in b] for b in bits])
    f = as_bits(bits, 2**n)
    idx = np.arange(2**n)
    crit = np.zeros(f.shape, dtype=bool)
    for b in range(n):
        crit |= f != f[:, idx ^ (1 << b)]
    out = crit.mean(1)
    return float(out[0]) if single else out
