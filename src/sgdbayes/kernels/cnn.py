"""NNGP kernel of a convolutional network without pooling: ``depth`` conv + φ layers, then a dense readout.

Network on images ``[C, H, W]``: each hidden layer is a stride-1 ``kernel_size × kernel_size`` convolution with
infinitely many channels, weights ``N(0, σ_w² / (C_in k²))``, biases ``N(0, σ_b²)``, followed by φ; the readout is
dense on the flattened last activations (fan-in ``C·H′·W′``). Without pooling the output covariance needs only the
covariances of the *same* spatial position ``p`` in ``x`` and ``x′`` (Garriga-Alonso et al. 2019; neural-tangents
``stax`` with diagonal spatial covariance):

    K¹_p(x, x′)   = σ_b² + σ_w² · mean_{q ∈ patch(p)} mean_c x_{c,q} x′_{c,q}
    V^l_p(x, x′)  = E[φ(u) φ(v)],  (u, v) ~ N(0, [[K^l_p(x,x), K^l_p(x,x′)], [·, K^l_p(x′,x′)]])
    K^{l+1}_p     = σ_b² + σ_w² · mean_{q ∈ patch(p)} V^l_q
    K_out(x, x′)  = σ_b² + σ_w² · mean_p V^depth_p          (depth 0: mean_p mean_c x x′ in place of V)

``mean_{q ∈ patch(p)}`` divides by k² always: with ``padding="same"`` (odd k) positions outside the image count as the
zeros a zero-padded convolution sees; with ``padding="valid"`` each layer shrinks the image by ``k − 1``. The patch
mean is ``avg_pool2d(count_include_pad=True)``, and the ReLU/erf expectations are those of ``kernels.fcn``.
This is the prior of ``sgdbayes.ensembles.models.CNN(in_shape, channels, kernel_size=k, padding=…, sigma_w=σ_w,
sigma_b=σ_b)`` with ``depth = len(channels)``: same stride, padding, fan-ins (``c_in·k²`` per conv, ``c·H′·W′`` for the
readout), ReLU after every conv and a single-logit dense readout (checked by Monte Carlo against that class in
``tests/kernels/test_cnn_matches_ensemble.py``; exact in expectation at any width for depth 1, O(1/channels) bias
beyond). Cost ``O(n1·n2·H·W·(C + depth·k²))``; pairs are processed in blocks of at most ``max_elements`` position-pair
entries, and with ``x2=None`` only blocks on or above the diagonal are computed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sgdbayes.kernels.fcn import _check_hyper, _check_pair, _expect, _expect_diag, _sq

__all__ = ["nngp_cnn", "PADDINGS"]

PADDINGS = ("same", "valid")


def _as_images(x: torch.Tensor, image_shape, name: str) -> torch.Tensor:
    if x.dim() == 4:
        if image_shape is not None and tuple(x.shape[1:]) != tuple(image_shape):
            raise ValueError(f"{name} has image shape {tuple(x.shape[1:])} but image_shape={tuple(image_shape)}")
        return x
    if image_shape is None:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; pass images [n, C, H, W] or flat rows [n, C*H*W] "
                         "together with image_shape=(C, H, W)")
    c, h, w = image_shape
    if x.shape[1] != c * h * w:
        raise ValueError(f"{name} rows have {x.shape[1]} features but image_shape={tuple(image_shape)} "
                         f"needs {c * h * w}")
    return x.reshape(x.shape[0], c, h, w)


def _patch_mean(v: torch.Tensor, k: int, pad: int) -> torch.Tensor:
    """Mean over each k×k patch (zeros outside, divisor k²) of ``v`` [..., H, W]."""
    lead = v.shape[:-2]
    out = F.avg_pool2d(v.reshape(-1, 1, *v.shape[-2:]), k, stride=1, padding=pad, count_include_pad=True)
    return out.reshape(*lead, *out.shape[-2:])


def _variances(x: torch.Tensor, depth, sw2, sb2, k, pad, nonlinearity) -> list[torch.Tensor]:
    """Per-position variances K^l_p(x, x) for l = 1..depth, each ``[n, H_l, W_l]``."""
    out = []
    v = (x * x).mean(1)
    for _ in range(depth):
        kk = sb2 + sw2 * _patch_mean(v, k, pad)
        out.append(kk)
        v = _expect_diag(kk, nonlinearity)
    return out


def _block(x1, x2, var1, var2, depth, sw2, sb2, k, pad, nonlinearity) -> torch.Tensor:
    """Output kernel for one block of pairs: ``[b1, b2]``."""
    v = torch.einsum("ichw,jchw->ijhw", x1, x2) / x1.shape[1]        # channel mean of x_p x′_p, [b1, b2, H, W]
    for layer in range(depth):
        kk = sb2 + sw2 * _patch_mean(v, k, pad)
        v = _expect(kk, var1[layer][:, None], var2[layer][None, :], nonlinearity)
    return sb2 + sw2 * v.mean((-2, -1))


def nngp_cnn(x1: torch.Tensor, x2: torch.Tensor | None = None, *, depth: int, sigma_w, sigma_b,
             nonlinearity: str = "relu", kernel_size: int = 3, padding: str = "same",
             image_shape: tuple[int, int, int] | None = None, max_elements: int = 2**22) -> torch.Tensor:
    """NNGP kernel of a CNN without pooling; float64 ``[n1, n2]`` on x1's device.

    Args:
        x1, x2: images ``[n, C, H, W]``, or flat rows ``[n, C·H·W]`` with ``image_shape=(C, H, W)``;
            ``x2=None`` for ``K(x1, x1)`` (blocks on or above the diagonal only; the result is exactly symmetric).
        depth: number of conv + φ layers (≥ 0).
        sigma_w, sigma_b: prior std of weights (times 1/√fan_in) and biases, ≥ 0; floats or scalar tensors
            (differentiable when they require grad).
        nonlinearity: ``"relu"`` or ``"erf"``.
        kernel_size: odd for ``padding="same"``; stride 1, no dilation.
        padding: ``"same"`` (zero padding, image size kept) or ``"valid"`` (shrinks by ``kernel_size − 1`` a layer).
        max_elements: bound on ``b1·b2·H·W`` per block (the working memory is a few such float64 arrays).
    """
    _check_hyper(depth, sigma_w, sigma_b, nonlinearity)
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}; allowed: {', '.join(PADDINGS)}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(f"kernel_size must be an int >= 1, got {kernel_size!r}")
    if padding == "same" and kernel_size % 2 == 0:
        raise ValueError(f"padding='same' needs an odd kernel_size, got {kernel_size}")
    if isinstance(max_elements, bool) or not isinstance(max_elements, int) or max_elements < 1:
        raise ValueError(f"max_elements must be an int >= 1, got {max_elements!r}")
    x1, x2 = _check_pair(x1, x2, ndim=(2, 4))
    x1 = _as_images(x1, image_shape, "x1")
    x2 = None if x2 is None else _as_images(x2, image_shape, "x2")
    _, _, h, w = x1.shape
    pad = kernel_size // 2 if padding == "same" else 0
    shrink = 0 if padding == "same" else depth * (kernel_size - 1)
    if h - shrink < 1 or w - shrink < 1:
        raise ValueError(f"images of size {h}x{w} are too small for depth={depth} 'valid' convolutions of "
                         f"kernel_size={kernel_size}")
    sw2, sb2 = _sq(sigma_w, x1), _sq(sigma_b, x1)
    symmetric = x2 is None
    x2_ = x1 if symmetric else x2
    var1 = _variances(x1, depth, sw2, sb2, kernel_size, pad, nonlinearity)
    var2 = var1 if symmetric else _variances(x2_, depth, sw2, sb2, kernel_size, pad, nonlinearity)
    n1, n2 = x1.shape[0], x2_.shape[0]
    if n1 == 0 or n2 == 0:
        return torch.empty(n1, n2, dtype=torch.float64, device=x1.device)
    b = max(1, int(math.isqrt(max(1, max_elements // (h * w)))))
    rows = []
    for i0 in range(0, n1, b):
        i1 = min(i0 + b, n1)
        blocks = []
        for j0 in range(0, n2, b):
            j1 = min(j0 + b, n2)
            if symmetric and j1 <= i0:        # below the diagonal: filled from the mirror after the loop
                blocks.append(None)
                continue
            blocks.append(_block(x1[i0:i1], x2_[j0:j1], [v[i0:i1] for v in var1], [v[j0:j1] for v in var2],
                                 depth, sw2, sb2, kernel_size, pad, nonlinearity))
        rows.append(blocks)
    if symmetric:
        for bi, row in enumerate(rows):
            for bj in range(bi):
                row[bj] = rows[bj][bi].T
        diag = [row[bi] for bi, row in enumerate(rows)]
        for bi, blk in enumerate(diag):   # exact symmetry within diagonal blocks
            rows[bi][bi] = torch.triu(blk) + torch.triu(blk, 1).T
    out = torch.cat([torch.cat(row, 1) for row in rows], 0)
    if not bool(torch.isfinite(out).all()):
        raise FloatingPointError(f"nngp_cnn produced non-finite values (depth={depth}, sigma_w={float(sigma_w)}, "
                                 f"sigma_b={float(sigma_b)}): the kernel overflowed float64")
    return out
