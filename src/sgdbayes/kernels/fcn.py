"""NNGP kernel of a fully connected network (FCN), float64, tiled and symmetric-aware.

Network: ``depth`` hidden layers of width → ∞ with nonlinearity φ and a linear readout; weights ``N(0, σ_w²/fan_in)``,
biases ``N(0, σ_b²)``. The covariance of the pre-activations obeys (Lee et al. 2018; Matthews et al. 2018)

    K⁰(x, x′)     = σ_b² + σ_w² x·x′ / d
    K^{l+1}(x, x′) = σ_b² + σ_w² E_{(u, v) ~ N(0, Λ^l)} [φ(u) φ(v)],   Λ^l = [[K^l(x,x), K^l(x,x′)], [·, K^l(x′,x′)]]

and the readout covariance after ``depth`` hidden layers is ``K^depth``. Closed forms of the expectation with
``a = K(x,x)``, ``b = K(x′,x′)``, ``k = K(x,x′)``:

- ReLU (arc-cosine kernel of degree 1, Cho & Saul 2009), in the numerically stable form of neural-tangents:
  ``s = √(ab − k²)``, ``θ = atan2(s, k)``, ``E = (s + (π − θ) k) / (2π)``; on the diagonal ``E = a / 2``.
  The result is flat in θ at θ = 0 (d/dθ (sin θ + (π−θ) cos θ) = −(π−θ) sin θ), so the rounding error of ``s`` near
  ``x = x′`` enters only at second order.
- erf (Williams 1997): ``E = (2/π) asin(2k / √((1 + 2a)(1 + 2b)))``.

The fast path works on square tiles of the output (``max_tile`` rows × columns): one GEMM per tile, then every
layer of the recursion in place while the tile is in cache, with two tile-sized work buffers; on CPU, ``workers``
threads take whole tiles each. The extra memory is
``O(max_tile² + n·d)`` beside the ``[n1, n2]`` result: for n = 10,000 × 784, the 800 MB result, a 63 MB float64 copy
of the inputs and two 2 MB work tiles per worker.
With ``x2=None`` only tiles on or above the diagonal are computed and mirrored, so each entry is computed once;
diagonal tiles are split down to small ones (computed in full, then made exactly symmetric), so the work beyond the
n(n+1)/2 entries of the triangle is at most ``n·max(max_tile/4, 32)/2`` entries (see ``_tiles``).

Where the time goes (2-core CPU, d = 784, depth 2, one core, per computed entry): the float64 GEMM (2·785 flops)
takes about twice as long as the two arc-cosine layers, and ``atan2`` + ``sqrt`` are 85 % of the layers (the other six
passes per layer are cheap, ~0.3-0.6 ns each against ~15 ns for ``atan2``). Both are near their floor in float64, so
the levers are computing few redundant entries and keeping both cores busy: the tile queue is dynamic, largest
tiles first.

Threads: each worker is a Python thread that takes whole tiles and runs torch single-threaded
(``torch.set_num_threads(1)`` inside the worker; torch ops release the GIL). Without that, every op of a worker
would open an OpenMP team of ``get_num_threads()`` threads: 2 workers × 2 threads on 2 cores, with a barrier per
small elementwise op. ``set_num_threads`` also updates a process-wide default (the one new threads start with),
so the caller's value is restored when the workers finish; call with ``workers=1`` to leave torch's threading alone.

When ``sigma_w``/``sigma_b``/the inputs require gradients (and grad mode is on), a dense out-of-place path with a
custom backward for the ReLU map is used instead, so the kernel can be trained (see ``NNGPKernel``).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from numbers import Real

import torch

__all__ = ["nngp_fcn", "nngp_fcn_diag", "NONLINEARITIES"]

NONLINEARITIES = ("relu", "erf")
_TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------------------------------- validation
def _check_sigma(name: str, value) -> None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        v = float(value.detach())
    elif isinstance(value, Real) and not isinstance(value, bool):
        v = float(value)
    else:
        raise TypeError(f"{name} must be a real number or a scalar tensor, got {type(value).__name__}")
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v}")


def _check_hyper(depth, sigma_w, sigma_b, nonlinearity) -> None:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth (number of hidden layers) must be an int >= 0, got {depth!r}")
    _check_sigma("sigma_w", sigma_w)
    _check_sigma("sigma_b", sigma_b)
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}; allowed: {', '.join(NONLINEARITIES)}")


def _check_x(name: str, x, ndim: int | tuple[int, ...] = 2) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if x.dim() not in ndims:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dimensions, got shape {tuple(x.shape)}")
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be a real floating or integer tensor, got dtype {x.dtype}")
    x = x.to(torch.float64)
    # one reduction, no [n, d] bool temporary: a NaN/inf anywhere makes the sum NaN/inf; only then (or when finite
    # values overflow the sum) is the exact elementwise test run, to name the first bad index
    if x.numel() and not math.isfinite(float(x.detach().sum())) and not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x)).nonzero()[0].tolist()
        raise ValueError(f"{name} contains NaN or inf (first at index {bad}: {x[tuple(bad)].item()})")
    return x


def _check_pair(x1, x2, ndim=2) -> tuple[torch.Tensor, torch.Tensor | None]:
    x1 = _check_x("x1", x1, ndim)
    if x2 is None:
        return x1, None
    x2 = _check_x("x2", x2, ndim)
    if x2.device != x1.device:
        raise ValueError(f"x1 is on {x1.device} but x2 is on {x2.device}; put both on one device")
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(f"x1 and x2 must agree in all but the first dimension, got shapes {tuple(x1.shape)} "
                         f"and {tuple(x2.shape)}")
    return x1, x2


def _sq(sigma, like: torch.Tensor):
    """σ² as a Python float (fast path) or a float64 tensor on ``like``'s device (autograd path)."""
    if isinstance(sigma, torch.Tensor):
        return sigma.to(device=like.device, dtype=torch.float64).reshape(()) ** 2
    return float(sigma) ** 2


# ------------------------------------------------------------------------------------- the layer maps (shared)
class _ReLUExpectation(torch.autograd.Function):
    """``E[relu(u) relu(v)] = (s + (π − θ) k) / (2π)`` with ``s = √(ab − k²)``, ``θ = atan2(s, k)``.

    Analytic gradients (finite everywhere, unlike autograd through ``√`` at ``s = 0``):
    ``∂/∂k = (π − θ)/(2π)``, ``∂/∂a = s / (4π a)``, ``∂/∂b = s / (4π b)``.
    ``a`` and ``b`` broadcast against ``k`` (``[n1, 1]``/``[1, n2]`` for a matrix, ``[n]``/``[n]`` pairwise).
    """

    @staticmethod
    def forward(ctx, k, a, b):
        s = torch.sqrt(torch.clamp_min(a * b - k * k, 0.0))
        theta = torch.atan2(s, k)
        ctx.save_for_backward(k, a, b, s, theta)
        return (s + (math.pi - theta) * k) / _TWO_PI

    @staticmethod
    def backward(ctx, g):
        k, a, b, s, theta = ctx.saved_tensors
        gk = ga = gb = None
        if ctx.needs_input_grad[0]:
            gk = g * (math.pi - theta) / _TWO_PI
        if ctx.needs_input_grad[1]:
            ga = _sum_to(g * torch.where(a > 0, s / (2.0 * _TWO_PI * a.clamp_min(1e-300)), 0.0), a.shape)
        if ctx.needs_input_grad[2]:
            gb = _sum_to(g * torch.where(b > 0, s / (2.0 * _TWO_PI * b.clamp_min(1e-300)), 0.0), b.shape)
        return gk, ga, gb


def _sum_to(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Reduce a broadcast gradient back to ``shape``."""
    while g.dim() > len(shape):
        g = g.sum(0)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdim=True)
    return g


def _expect(k, a, b, nonlinearity: str):
    """E[φ(u)φ(v)] for (u, v) ~ N(0, [[a, k], [k, b]]), out of place and differentiable."""
    if nonlinearity == "relu":
        return _ReLUExpectation.apply(k, a, b)
    z = 2.0 * k / torch.sqrt((1.0 + 2.0 * a) * (1.0 + 2.0 * b))
    return (2.0 / math.pi) * torch.asin(z.clamp(-1.0, 1.0))


def _expect_diag(a, nonlinearity: str):
    """E[φ(u)²] for u ~ N(0, a)."""
    if nonlinearity == "relu":
        return 0.5 * a
    return (2.0 / math.pi) * torch.asin(2.0 * a / (1.0 + 2.0 * a))


def _relu_tile_(t, a, b, s, th, sw2: float, sb2: float, last: bool) -> None:
    """In place on a tile holding ``t = −K^l`` [p, q] (diagonals ``a`` [p, 1], ``b`` [1, q]): ``t ← −K^{l+1}``, or
    ``t ← +K^{l+1}`` when ``last``. Keeping the tile negated gives ``π − θ = atan2(s, −k)`` in one call.

    ``s`` and ``th`` are work buffers of t's shape. Eight passes over the tile, two of them transcendental.
    """
    torch.mul(a, b, out=s)
    s.addcmul_(t, t, value=-1.0).clamp_(min=0.0).sqrt_()          # s = √(ab − k²)
    torch.atan2(s, t, out=th)                                      # π − θ
    torch.addcmul(s, th, t, value=-1.0, out=t)                     # s + (π − θ) k
    if last:
        t.mul_(sw2 / _TWO_PI).add_(sb2)
    else:
        t.mul_(-sw2 / _TWO_PI).sub_(sb2)


def _erf_tile_(t, a, b, s, th, sw2: float, sb2: float, last: bool) -> None:
    """In place: ``t ← σ_b² + σ_w² (2/π) asin(2k / √((1+2a)(1+2b)))`` (tile holds +K); ``s``, ``th``, ``last``
    unused."""
    t.mul_(torch.rsqrt(1.0 + 2.0 * a) * 2.0).mul_(torch.rsqrt(1.0 + 2.0 * b))
    t.clamp_(-1.0, 1.0).asin_().mul_(sw2 * 2.0 / math.pi).add_(sb2)


_TILE_MAPS = {"relu": _relu_tile_, "erf": _erf_tile_}


# ------------------------------------------------------------------------------------------------ public API
def _augment(x: torch.Tensor, sw2: float, sb2: float) -> torch.Tensor:
    """[x · σ_w/√d, σ_b]: then x̃·x̃′ = K⁰(x, x′) comes out of one GEMM with no extra pass."""
    d = x.shape[1]
    scale = math.sqrt(sw2 / d) if d else 0.0
    return torch.cat([x * scale, torch.full((x.shape[0], 1), math.sqrt(sb2), dtype=x.dtype, device=x.device)], 1)


def _diag_chain(x_aug: torch.Tensor, depth: int, sw2: float, sb2: float, nonlinearity: str) -> list[torch.Tensor]:
    """[K⁰(x,x), K¹(x,x), …, K^depth(x,x)] for each row of x (each a vector [n])."""
    out = [(x_aug * x_aug).sum(1)]
    for _ in range(depth):
        out.append(sb2 + sw2 * _expect_diag(out[-1], nonlinearity))
    return out


_SAFE = 1e150   # variances below this keep every product a·b, k² of the recursion finite in float64


def _check_range(chain: list[torch.Tensor], depth, sigma_w, sigma_b, nonlinearity) -> None:
    """A priori overflow check, free of any pass over the result: |K(x,x′)| ≤ √(K(x,x) K(x′,x′)), so when every
    variance of every layer is finite and below 1e150, no product, root or quotient of the recursion overflows."""
    peak = max(float(v.max()) for v in chain if v.numel())
    if not math.isfinite(peak) or peak > _SAFE:
        raise FloatingPointError(
            f"nngp_fcn variances reach {peak:.3g} (depth={depth}, sigma_w={float(sigma_w)}, sigma_b={float(sigma_b)}, "
            f"nonlinearity={nonlinearity!r}), beyond the float64-safe range {_SAFE:.0e}: the kernel would overflow")


def _default_tile(device: torch.device, n: int) -> int:
    if device.type == "cuda":
        return 4096
    return 256 if n < 4096 else 512


def _tiles(n1: int, n2: int, T: int, symmetric: bool) -> list[tuple[int, int, int, int]]:
    """Output tiles ``(i0, i1, j0, j1)`` covering ``[n1, n2]`` (symmetric: the upper triangle), largest first.

    Symmetric case: a grid of ``T × T`` tiles on and above the diagonal; each diagonal tile is split recursively into
    two diagonal halves and the off-diagonal block between them, down to diagonal tiles of edge ≤ ``max(T // 4, 32)``.
    Diagonal tiles are computed in full and their lower half thrown away, so the split cuts the wasted work from
    ``n·T/2`` to ``≤ n·T/8`` entries (at n = 1000, T = 256: 531k computed entries for the 500.5k of the triangle,
    instead of 750k with unsplit 512-tiles; n = 5000, T = 512: 12.81M instead of 13.76M). Largest first: with the small diagonal tiles last, the workers of the
    dynamic queue finish close together.
    """
    if not symmetric:
        return [(i0, min(i0 + T, n1), j0, min(j0 + T, n2)) for i0 in range(0, n1, T) for j0 in range(0, n2, T)]
    min_diag = max(T // 4, 32)
    jobs = []

    def split(lo, hi):
        if hi - lo <= min_diag:
            jobs.append((lo, hi, lo, hi))
            return
        mid = lo + (hi - lo + 1) // 2
        split(lo, mid)
        jobs.append((lo, mid, mid, hi))
        split(mid, hi)

    for i0 in range(0, n1, T):
        i1 = min(i0 + T, n1)
        split(i0, i1)
        jobs += [(i0, i1, j0, min(j0 + T, n1)) for j0 in range(i1, n1, T)]
    jobs.sort(key=lambda j: (j[1] - j[0]) * (j[3] - j[2]), reverse=True)
    return jobs


def nngp_fcn(x1: torch.Tensor, x2: torch.Tensor | None = None, *, depth: int, sigma_w, sigma_b,
             nonlinearity: str = "relu", max_tile: int | None = None, workers: int | None = None) -> torch.Tensor:
    """NNGP kernel ``K^depth(x1, x2)`` of a fully connected net; float64 ``[n1, n2]`` on x1's device.

    Args:
        x1: inputs ``[n1, d]`` (any real dtype; computed in float64).
        x2: inputs ``[n2, d]``, or ``None`` for ``K(x1, x1)`` (each entry computed once, result exactly symmetric).
        depth: number of hidden layers (≥ 0; 0 gives the linear kernel ``K⁰``).
        sigma_w, sigma_b: prior std of weights (times 1/√fan_in) and biases, ≥ 0; floats or scalar tensors.
        nonlinearity: ``"relu"`` or ``"erf"``.
        max_tile: edge of the square output tiles (default on CPU: 256 below 4096 rows, so that even n = 1000
            gives enough tiles to balance the workers, else 512, fewer tiles for the same balance; the CPU time per
            entry was flat from 192 to 512; 4096 on CUDA); bounds the work memory to ``2·max_tile²`` float64 per
            worker beside the result and the inputs.
        workers: CPU threads that each compute whole tiles single-threaded (default ``torch.get_num_threads()``;
            1 = one tile at a time with torch's intra-op threads; always 1 on CUDA). While it runs with several
            workers, torch's intra-op thread count is set to 1 and restored afterwards.
    """
    _check_hyper(depth, sigma_w, sigma_b, nonlinearity)
    x1, x2 = _check_pair(x1, x2)
    needs_grad = torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in (x1, x2, sigma_w, sigma_b))
    if needs_grad:
        return _nngp_fcn_autograd(x1, x1 if x2 is None else x2, depth, sigma_w, sigma_b, nonlinearity)
    if max_tile is None:
        max_tile = _default_tile(x1.device, x1.shape[0] if x2 is None else max(x1.shape[0], x2.shape[0]))
    if isinstance(max_tile, bool) or not isinstance(max_tile, int) or max_tile < 1:
        raise ValueError(f"max_tile must be an int >= 1, got {max_tile!r}")
    if workers is None:
        workers = 1 if x1.device.type != "cpu" else torch.get_num_threads()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")

    sw2, sb2 = float(sigma_w) ** 2, float(sigma_b) ** 2
    symmetric = x2 is None
    a1 = _augment(x1, sw2, sb2)
    a2 = a1 if symmetric else _augment(x2, sw2, sb2)
    n1, n2 = a1.shape[0], a2.shape[0]
    out = torch.empty(n1, n2, dtype=torch.float64, device=x1.device)
    if n1 == 0 or n2 == 0:
        return out
    diag1 = _diag_chain(a1, depth, sw2, sb2, nonlinearity)
    diag2 = diag1 if symmetric else _diag_chain(a2, depth, sw2, sb2, nonlinearity)
    _check_range(diag1 if symmetric else diag1 + diag2, depth, sigma_w, sigma_b, nonlinearity)
    tile_map = _TILE_MAPS[nonlinearity]
    negate = depth > 0 and nonlinearity == "relu"   # ReLU tiles hold −K between layers: see _relu_tile_
    tiles = _tiles(n1, n2, max_tile, symmetric)
    buf_size = max((i1 - i0) * (j1 - j0) for i0, i1, j0, j1 in tiles) if negate else 0

    def do_tile(i0, i1, j0, j1, ws, wt):
        t = out[i0:i1, j0:j1]                      # a strided view: the GEMM and every map write in place
        torch.addmm(t, a1[i0:i1], a2[j0:j1].T, beta=0.0, alpha=-1.0 if negate else 1.0, out=t)  # beta=0: t unread
        shape = (i1 - i0, j1 - j0)
        s = ws[: shape[0] * shape[1]].view(shape) if negate else None    # work buffers (ReLU only)
        th = wt[: shape[0] * shape[1]].view(shape) if negate else None
        for layer in range(depth):
            tile_map(t, diag1[layer][i0:i1, None], diag2[layer][None, j0:j1], s, th, sw2, sb2, layer == depth - 1)
        if symmetric:
            if j0 == i0:   # a diagonal tile: keep its upper triangle, mirror it (exact symmetry)
                t.triu_()
                t.add_(torch.triu(t, 1).T)
            else:
                out[j0:j1, i0:i1].copy_(t.T)

    workers = min(workers, len(tiles))

    def new_buffers():
        return (torch.empty(buf_size, dtype=torch.float64, device=x1.device),
                torch.empty(buf_size, dtype=torch.float64, device=x1.device))

    if workers == 1:
        ws, wt = new_buffers()
        for job in tiles:
            do_tile(*job, ws, wt)
        return out
    # CPU, several workers: whole tiles in parallel, each worker single-threaded (the tiles are disjoint regions
    # of ``out``, mirrors included). Far fewer synchronisation points than intra-op threading of every small
    # elementwise op, which stalls badly when the cores are shared with other processes.
    queue = iter(tiles)
    lock = threading.Lock()

    def worker():
        torch.set_num_threads(1)
        ws, wt = new_buffers()
        while True:
            with lock:
                job = next(queue, None)
            if job is None:
                return
            do_tile(*job, ws, wt)

    prev = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(workers) as pool:
            for f in [pool.submit(worker) for _ in range(workers)]:
                f.result()
    finally:
        torch.set_num_threads(prev)
    return out


def _nngp_fcn_autograd(x1, x2, depth, sigma_w, sigma_b, nonlinearity) -> torch.Tensor:
    """Dense, out-of-place, differentiable in x1, x2, sigma_w and sigma_b (no tiling)."""
    sw2, sb2 = _sq(sigma_w, x1), _sq(sigma_b, x1)
    d = max(x1.shape[1], 1)   # d = 0: x·x′ = 0, K⁰ = σ_b²
    k = sb2 + sw2 * (x1 @ x2.T) / d
    a = sb2 + sw2 * (x1 * x1).sum(1, keepdim=True) / d
    b = sb2 + sw2 * (x2 * x2).sum(1, keepdim=True).T / d
    for _ in range(depth):
        k = sb2 + sw2 * _expect(k, a, b, nonlinearity)
        a = sb2 + sw2 * _expect_diag(a, nonlinearity)
        b = sb2 + sw2 * _expect_diag(b, nonlinearity)
    return k


def nngp_fcn_diag(x1: torch.Tensor, x2: torch.Tensor | None = None, *, depth: int, sigma_w, sigma_b,
                  nonlinearity: str = "relu") -> torch.Tensor:
    """Pairwise kernel values ``K(x1[i], x2[i])`` (``[n]``, float64); ``x2=None`` gives the variances ``K(x, x)``.

    Differentiable in the sigmas when they are tensors requiring grad.
    """
    _check_hyper(depth, sigma_w, sigma_b, nonlinearity)
    x1, x2 = _check_pair(x1, x2)
    if x2 is not None and x2.shape[0] != x1.shape[0]:
        raise ValueError(f"pairwise kernel needs as many rows in x2 as in x1, got {x1.shape[0]} and {x2.shape[0]}")
    sw2, sb2 = _sq(sigma_w, x1), _sq(sigma_b, x1)
    d = max(x1.shape[1], 1)   # d = 0: x·x′ = 0, K⁰ = σ_b²
    a = sb2 + sw2 * (x1 * x1).sum(1) / d
    if x2 is None:
        for _ in range(depth):
            a = sb2 + sw2 * _expect_diag(a, nonlinearity)
        return a
    b = sb2 + sw2 * (x2 * x2).sum(1) / d
    k = sb2 + sw2 * (x1 * x2).sum(1) / d
    for _ in range(depth):
        k = sb2 + sw2 * _expect(k, a, b, nonlinearity)
        a = sb2 + sw2 * _expect_diag(a, nonlinearity)
        b = sb2 + sw2 * _expect_diag(b, nonlinearity)
    return k
