"""The N×N Gram matrix of per-sample gradients, built layer by layer without an N×d gradient matrix.

For a loss ``f(x) = (1/N) Σ_k f_k(x)`` with per-sample gradients ``g_k = ∇f_k ∈ R^d``, the Gram matrix is
``G_nm = g_n · g_m``. It is a sum over parameter blocks, and for the common layers each block follows from what one
forward and one backward pass already hold (Goodfellow 2015, arXiv 1510.01799):

* ``Linear`` applied to ``a_n ∈ R^{T×in}`` with output gradients ``δ_n ∈ R^{T×out}`` (``T`` = positions; 1 for a
  plain batch): the weight gradient is ``Σ_t δ_nt a_ntᵀ`` so
  ``G_nm = Σ_{t,s} (a_nt·a_ms)(δ_nt·δ_ms)``; for ``T = 1`` this is ``(A Aᵀ) ∘ (Δ Δᵀ)``, and the bias adds
  ``(Σ_t δ_nt)·(Σ_s δ_ms)``.
* ``Conv2d``: the same with ``a_nt`` the unfolded input patches and ``t`` the output pixels.
* ``BatchNorm`` in eval mode (an affine map per channel): ``γ`` gets ``Σ_p δ_ncp x̂_ncp``, ``β`` gets ``Σ_p δ_ncp``.

For every block the cheaper of two exact routes is taken (as in "mixed ghost clipping", Bu et al. 2022): the
position-kernel route above, cost ``∝ N² T² (in + out)``, or forming that layer's own per-sample gradients
``[N, d_layer]`` (cost ``∝ N T d_layer + N² d_layer``) and adding their Gram. Only one layer's block is alive at a time.
Parameters of any other module (or of a module called twice in one forward pass) go through a ``torch.func``
``vmap(grad)`` fallback, restricted to those parameters, and a :class:`FallbackWarning` names them.

Per-sample gradients need samples that do not interact: the model is evaluated in eval mode (as in Chaudhari &
Soatto, who measure D in eval mode), so batch norm uses its running statistics and dropout is off.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_SUPPORTED = (nn.Linear, nn.Conv2d, *_BATCHNORM)
#: Largest temporary of the position-kernel route, in elements (keeps memory bounded on big batches).
_BLOCK_ELEMENTS = 2**24


class FallbackWarning(UserWarning):
    """Some parameters were not covered by a layer-wise rule and went through the slower ``torch.func`` path."""


@dataclass
class GramResult:
    """Per-sample gradient Gram ``gram [N, N]`` (float64 unless asked otherwise) and how it was built.

    ``d`` counts the trainable parameters; ``mean_grad_sq`` is ``‖ḡ‖²`` = ``1ᵀ G 1 / N²`` (the full-gradient norm²);
    ``fallback`` names the parameters that took the ``torch.func`` path; ``routes`` says per layer which exact route
    was used (``"kernel"`` or ``"materialise"``).
    """

    gram: torch.Tensor
    d: int
    fallback: list[str] = field(default_factory=list)
    routes: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.gram.shape[0]

    @property
    def mean_grad_sq(self) -> float:
        return float(self.gram.sum()) / self.n**2

    def centred(self) -> torch.Tensor:
        """``H G H`` with ``H = I − 11ᵀ/N``: the Gram of ``g_k − ḡ``."""
        g = self.gram
        row = g.mean(dim=1, keepdim=True)
        return g - row - row.T + g.mean()


def _check_batch(x: torch.Tensor, y: torch.Tensor) -> int:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"x and y must be tensors, got {type(x).__name__} and {type(y).__name__}")
    n = x.shape[0] if x.dim() > 0 else 0
    if n == 0:
        raise ValueError("empty batch: x has 0 samples; the gradient Gram needs N >= 2 samples")
    if n < 2:
        raise ValueError(f"N = {n} sample; the gradient covariance D needs N >= 2 samples")
    if y.shape[0] != n:
        raise ValueError(f"x has {n} samples but y has {y.shape[0]}; they must match")
    if x.is_floating_point() and not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"x holds {bad} non-finite values (NaN/inf); inputs must be finite")
    return n


def _per_sample_loss(loss_fn: LossFn, out: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
    loss = loss_fn(out, y)
    if loss.shape != (n,):
        raise ValueError(
            f"loss_fn must return one loss per sample (shape [{n}], e.g. reduction='none'), got shape "
            f"{tuple(loss.shape)}")
    if not torch.isfinite(loss).all():
        bad = int((~torch.isfinite(loss)).sum())
        raise FloatingPointError(f"{bad} of {n} per-sample losses are NaN/inf; the gradient Gram is undefined")
    return loss


def _check_finite(name: str, t: torch.Tensor) -> None:
    if not torch.isfinite(t).all():
        raise FloatingPointError(
            f"NaN/inf in the backward pass at {name!r}: the per-sample gradients are not finite "
            "(diverged weights or an overflowing loss?)")


def _self_gram(j: torch.Tensor) -> torch.Tensor:
    """``J Jᵀ`` for ``J [N, k]``; above 768 rows only the blocks on and above the diagonal are multiplied and the rest
    mirrored (a symmetric rank-k update in 256-row blocks: about 60% of the flops of ``J @ J.T`` at N = 1,024)."""
    n = j.shape[0]
    if n <= 768:
        return j @ j.T
    out = j.new_empty(n, n)
    step = 256
    for i in range(0, n, step):
        ji = j[i:i + step]
        blk = ji @ j[i:].T
        out[i:i + step, i:] = blk
        out[i + step:, i:i + step] = blk[:, ji.shape[0]:].T
    return out


def _materialise_is_cheaper(n: int, t: int, p: int, q: int) -> bool:
    """Whether forming a layer's per-sample gradients (``[N, p·q]``, then their Gram) costs no more than the
    position-kernel route, for ``N`` samples, ``T`` positions, ``p`` inputs and ``q`` outputs per position."""
    return n * n * t * t * (p + q) >= n * t * p * q + n * n * p * q


def _positional_gram(a: torch.Tensor, delta: torch.Tensor, product_dtype: torch.dtype) -> tuple[torch.Tensor, str]:
    """Exact ``G_nm = ‖Σ_t δ_nt a_ntᵀ‖``-Gram for ``a [N, T, p]``, ``delta [N, T, q]`` by the cheaper route, computed
    and returned in ``product_dtype`` (the caller adds it into its ``dtype`` sum)."""
    n, t, p = a.shape
    q = delta.shape[2]
    a = a.to(product_dtype)
    delta = delta.to(product_dtype)
    if t == 1:
        a2, d2 = a[:, 0], delta[:, 0]
        return _self_gram(a2).mul_(_self_gram(d2)), "kernel"
    if not _materialise_is_cheaper(n, t, p, q):
        out = a.new_empty(n, n)
        step = max(1, _BLOCK_ELEMENTS // max(1, n * t * t))
        af = a.reshape(n * t, p)
        df = delta.reshape(n * t, q)
        for i in range(0, n, step):
            ai, di = a[i:i + step], delta[i:i + step]
            m = ai.shape[0]
            ka = (ai.reshape(m * t, p) @ af.T).reshape(m, t, n, t)
            kd = (di.reshape(m * t, q) @ df.T).reshape(m, t, n, t)
            out[i:i + m] = (ka * kd).sum(dim=(1, 3))
        return out, "kernel"
    j = torch.bmm(delta.transpose(1, 2), a).reshape(n, q * p)
    return _self_gram(j), "materialise"


def _padded_conv_input(mod: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``x`` padded as ``mod`` pads it (padding modes and 'same' included)."""
    padding = mod.padding
    if mod.padding_mode != "zeros" or isinstance(padding, str):
        mode = "constant" if mod.padding_mode == "zeros" else mod.padding_mode
        return F.pad(x, mod._reversed_padding_repeated_twice, mode=mode)
    if any(padding):
        return F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    return x


def _unfold_conv_input(mod: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Input patches of ``mod`` as ``[N, P, C_in·kh·kw]`` (``P`` output pixels; padding modes, 'same', stride and
    dilation handled), from a strided view of the padded input and one copy: the same numbers as ``F.unfold``, whose
    im2col took 4× longer on small-lenet's one-channel input (2-core CPU, N = 1,024)."""
    x = _padded_conv_input(mod, x)
    (kh, kw), (sh, sw), (dh, dw) = mod.kernel_size, mod.stride, mod.dilation
    u = x.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)[..., ::dh, ::dw]  # [N, C, Ho, Wo, kh, kw]
    n, c, ho, wo = u.shape[:4]
    return u.permute(0, 2, 3, 1, 4, 5).reshape(n, ho * wo, c * kh * kw)


def _grouped_conv_applies(mod: nn.Conv2d, x: torch.Tensor, delta: torch.Tensor, product_dtype: torch.dtype) -> bool:
    """Whether :func:`_conv_weight_grads_grouped` is the faster way to this layer's per-sample weight gradients:
    a plain float32 convolution (stride and dilation 1, one group; products in the input's precision) whose output
    has more pixels than one patch has entries, and whose Gram block takes the materialise route. There im2col copies
    ``P / (C_in kh kw)`` times more numbers than the gradients hold (small-lenet's first layer: 576 pixels, patches of
    25; the grouped convolution measured ~1.6× faster than im2col + bmm at N = 256 on the 2-core CPU, while on its
    second layer, 16 pixels and patches of 200, im2col was ~1.8× faster)."""
    if not (mod.groups == 1 and mod.stride == (1, 1) and mod.dilation == (1, 1)
            and x.dtype == product_dtype == torch.float32 and x.dim() == 4):
        return False
    n, cout = delta.shape[0], delta.shape[1]
    t = delta.shape[2] * delta.shape[3]
    p = x.shape[1] * mod.kernel_size[0] * mod.kernel_size[1]
    return _materialise_is_cheaper(n, t, p, cout) and t > p


def _conv_weight_grads_grouped(mod: nn.Conv2d, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Per-sample weight gradients ``[N, C_out·C_in·kh·kw]`` (the order of ``mod.weight``) of a stride-1, dilation-1,
    one-group convolution, as one grouped convolution: sample n's gradient ``Σ_p δ_n[o, p] x_n[i, p + k]`` is the
    correlation of its padded input with its output gradient, so the batch becomes the channels (input
    ``[C_in, N, H, W]``, kernels ``δ [N·C_out, 1, Ho, Wo]``, ``groups = N``; output ``[C_in, N·C_out, kh, kw]``)."""
    xp = _padded_conv_input(mod, x)
    n, cin = x.shape[:2]
    cout, ho, wo = delta.shape[1:]
    kh, kw = mod.kernel_size
    g = F.conv2d(xp.transpose(0, 1), delta.reshape(n * cout, 1, ho, wo), groups=n)  # [C_in, N·C_out, kh, kw]
    return g.reshape(cin, n, cout, kh * kw).permute(1, 2, 0, 3).reshape(n, cout * cin * kh * kw)


def _layer_gram(mod: nn.Module, x: torch.Tensor, delta: torch.Tensor, gram: torch.Tensor,
                product_dtype: torch.dtype) -> str:
    """Add the Gram contribution of the trainable parameters of one supported module into ``gram`` (in place, in
    its dtype), the products computed in ``product_dtype``; returns the route taken."""
    n = x.shape[0]
    route = "kernel"

    def outer(s: torch.Tensor) -> torch.Tensor:
        s = s.to(product_dtype)
        return (s @ s.T).to(gram.dtype)  # cast, then add: faster than an in-place add of mixed dtypes

    if isinstance(mod, nn.Linear):
        a = x.reshape(n, -1, x.shape[-1])
        d = delta.reshape(n, -1, delta.shape[-1])
        if mod.weight.requires_grad:
            g, route = _positional_gram(a, d, product_dtype)
            gram += g.to(gram.dtype)
        if mod.bias is not None and mod.bias.requires_grad:
            gram += outer(d.sum(dim=1))
    elif isinstance(mod, nn.Conv2d):
        if x.dim() == 3:  # unbatched input is not a batch of samples
            raise ValueError("Conv2d received an unbatched [C, H, W] input; pass [N, C, H, W]")
        d = delta.reshape(n, delta.shape[1], -1).transpose(1, 2)  # [N, P, C_out]
        if mod.weight.requires_grad and _grouped_conv_applies(mod, x, delta, product_dtype):
            gram += _self_gram(_conv_weight_grads_grouped(mod, x, delta)).to(gram.dtype)
            route = "materialise"
        elif mod.weight.requires_grad:
            u = _unfold_conv_input(mod, x)  # [N, P, C_in·kh·kw], channel-major
            gs = mod.groups
            cin, cout = u.shape[2] // gs, d.shape[2] // gs
            for g_ in range(gs):
                g, route = _positional_gram(u[:, :, g_ * cin:(g_ + 1) * cin], d[:, :, g_ * cout:(g_ + 1) * cout],
                                            product_dtype)
                gram += g.to(gram.dtype)
        if mod.bias is not None and mod.bias.requires_grad:
            gram += outer(d.sum(dim=1))
    elif isinstance(mod, _BATCHNORM):
        if not mod.track_running_stats or mod.running_mean is None:
            raise RuntimeError("batch norm without running statistics couples samples; no per-sample gradient")
        shape = (1, -1) + (1,) * (x.dim() - 2)
        xhat = (x - mod.running_mean.reshape(shape)) / torch.sqrt(mod.running_var.reshape(shape) + mod.eps)
        dims = tuple(range(2, x.dim()))
        if mod.affine and mod.weight.requires_grad:
            gram += outer((delta * xhat).sum(dim=dims) if dims else delta * xhat)
        if mod.affine and mod.bias.requires_grad:
            gram += outer(delta.sum(dim=dims) if dims else delta)
        route = "materialise"
    return route


def _own_trainable(mod: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(k, p) for k, p in mod.named_parameters(recurse=False) if p.requires_grad]


def _fallback_gram(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, names: list[str],
                   dtype: torch.dtype, chunk: int | None) -> torch.Tensor:
    """Gram of the per-sample gradients of the parameters ``names`` by ``torch.func.vmap(grad)``."""
    from torch.func import functional_call, grad, vmap

    params = dict(model.named_parameters())
    diff = {k: params[k].detach() for k in names}
    fixed = {k: v.detach() for k, v in params.items() if k not in diff}
    fixed.update(dict(model.named_buffers()))

    def one(p, xi, yi):
        out = functional_call(model, {**fixed, **p}, (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0)).sum()

    grads = vmap(grad(one), in_dims=(None, 0, 0), chunk_size=chunk)(diff, x, y)
    n = x.shape[0]
    gram = torch.zeros(n, n, dtype=dtype, device=x.device)
    for k, g in grads.items():
        _check_finite(k, g)
        j = g.reshape(n, -1).to(dtype)
        gram += j @ j.T
    return gram


def per_sample_gram(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, *,
                    dtype: torch.dtype = torch.float64, products: str = "accumulation",
                    fallback_chunk: int | None = None, warn_fallback: bool = True) -> GramResult:
    """Gram matrix ``G_nm = ∇f_n · ∇f_m`` of the per-sample loss gradients of ``model`` on ``(x, y)``.

    Args:
        model: any ``nn.Module``; evaluated in eval mode (its mode is restored afterwards).
        loss_fn: ``loss_fn(output, y) → [N]`` per-sample losses (e.g. ``F.cross_entropy(..., reduction="none")``).
        x: inputs ``[N, ...]`` with ``N >= 2``.  y: targets ``[N, ...]``.
        dtype: precision of the Gram and of the sum of the per-layer blocks (float64 by default).
        products: ``"accumulation"`` (each layer's products in ``dtype``: activations and output gradients are
            cast first) or ``"input"`` (each layer's products in the model's own precision, e.g. float32, and only
            the blocks summed in ``dtype``). ``"input"`` is about twice as fast on a CPU; its error per entry is
            about ``ε_float32 · ‖g_n‖ ‖g_m‖``, far below the rank threshold ``λ_max · d · ε_float32`` that the paper
            (and :class:`~sgdbayes.noise.NoiseSpectrum`) uses, so the rank and the eigenvalues above it are kept
            (tested on the chapter's networks).
        fallback_chunk: ``chunk_size`` of the ``torch.func.vmap`` fallback (bounds its memory).
        warn_fallback: emit a :class:`FallbackWarning` when the fallback is used.

    Returns:
        :class:`GramResult` with ``gram [N, N]``.

    Raises:
        ValueError: ``N < 2``, mismatched ``x``/``y``, non-finite inputs, a loss that is not per-sample.
        FloatingPointError: NaN/inf losses or gradients.
    """
    n = _check_batch(x, y)
    if products not in ("accumulation", "input"):
        raise ValueError(f"products must be 'accumulation' or 'input', got {products!r}")
    trainable = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("model has no trainable parameters (requires_grad=True); D would be 0-dimensional")
    product_dtype = dtype if products == "accumulation" else trainable[0][1].dtype
    d = sum(p.numel() for _, p in trainable)

    calls: dict[nn.Module, list] = {}
    hooks = []
    inplace_guard = {"clone": False}

    def fwd_hook(mod, inputs, output):
        calls.setdefault(mod, []).append((inputs[0].detach(), output, output._version))
        return output.clone() if inplace_guard["clone"] else None

    layer_of: dict[str, nn.Module] = {}
    for mname, mod in model.named_modules():
        own = _own_trainable(mod)
        if not own:
            continue
        if isinstance(mod, _SUPPORTED) and not (isinstance(mod, _BATCHNORM) and not mod.track_running_stats):
            for k, _ in own:
                layer_of[f"{mname}.{k}" if mname else k] = mod
    # a parameter shared between modules cannot be split layer by layer
    seen: dict[int, str] = {}
    for k, p in model.named_parameters(remove_duplicate=False):
        if p.requires_grad and id(p) in seen and seen[id(p)] != k:
            layer_of.pop(k, None)
            layer_of.pop(seen[id(p)], None)
        seen.setdefault(id(p), k)
    # a list in the model's module order, not a set: the per-layer blocks are summed in this order, and a set of
    # modules iterates in an order that depends on their memory addresses (the last digits of G changed run to run)
    supported_mods = list(dict.fromkeys(layer_of.values()))

    was_training = model.training
    model.eval()
    try:
        for mod in supported_mods:
            hooks.append(mod.register_forward_hook(fwd_hook))
        with torch.enable_grad():
            out = model(x)
            if any(c_out._version != v0 for lst in calls.values() for (_, c_out, v0) in lst):
                # a layer output was later modified in place (e.g. ReLU(inplace=True)): redo with copies
                calls.clear()
                inplace_guard["clone"] = True
                out = model(x)
            loss = _per_sample_loss(loss_fn, out, y, n)
            if not loss.requires_grad:
                raise ValueError("the loss does not depend on any trainable parameter")
            once = [m for m in supported_mods if len(calls.get(m, ())) == 1]
            outs = [calls[m][0][1] for m in once]
            grads = torch.autograd.grad(loss.sum(), outs, allow_unused=True) if outs else []
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    gram = torch.zeros(n, n, dtype=dtype, device=x.device)
    routes: dict[str, str] = {}
    names = {m: k for k, m in model.named_modules()}
    grads = [torch.zeros_like(calls[m][0][1]) if g is None else g for m, g in zip(once, grads, strict=True)]
    for mod, g in zip(once, grads, strict=True):
        routes[names[mod]] = _layer_gram(mod, calls[mod][0][0], g, gram, product_dtype)
    if not torch.isfinite(gram).all():  # a NaN/inf gradient reaches the Gram: name the first layer that holds one
        for mod, g in zip(once, grads, strict=True):
            _check_finite(names[mod], g)
    covered = {k for k, m in layer_of.items() if m in once}
    rest = [k for k, _ in trainable if k not in covered]
    if rest:
        if warn_fallback:
            warnings.warn(
                f"{len(rest)} parameter tensor(s) are not covered by the layer-wise rules (Linear, Conv2d, eval-mode "
                f"BatchNorm, each called once): {', '.join(rest[:6])}{' ...' if len(rest) > 6 else ''}; "
                "their per-sample gradients are computed with torch.func.vmap(grad) instead (exact, slower)",
                FallbackWarning, stacklevel=2)
        was_training = model.training
        model.eval()
        try:
            gram += _fallback_gram(model, loss_fn, x, y, rest, dtype, fallback_chunk)
        finally:
            model.train(was_training)
    if not torch.isfinite(gram).all():
        raise FloatingPointError("the per-sample gradient Gram overflowed (NaN/inf); try dtype=torch.float64")
    return GramResult(gram=gram, d=d, fallback=rest, routes=routes)


def per_sample_gradients(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, *,
                         chunk: int | None = None) -> torch.Tensor:
    """The explicit per-sample gradient matrix ``J [N, d]`` (``torch.func.vmap(grad)``, eval mode).

    The naive reference for :func:`per_sample_gram` (``G = J Jᵀ``) and for small models; memory ``N·d``.
    """
    from torch.func import functional_call, grad, vmap

    n = _check_batch(x, y)
    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameters (requires_grad=True)")
    fixed = {k: p.detach() for k, p in model.named_parameters() if not p.requires_grad}
    fixed.update(dict(model.named_buffers()))

    def one(p, xi, yi):
        out = functional_call(model, {**fixed, **p}, (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0)).sum()

    was_training = model.training
    model.eval()
    try:
        _per_sample_loss(loss_fn, model(x).detach(), y, n)
        grads = vmap(grad(one), in_dims=(None, 0, 0), chunk_size=chunk)(params, x, y)
    finally:
        model.train(was_training)
    j = torch.cat([grads[k].reshape(n, -1) for k in params], dim=1)
    _check_finite("per-sample gradients", j)
    return j
