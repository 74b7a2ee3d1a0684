"""P_B(f|S) by direct sampling: draw networks from the parameter prior, keep those that fit S, count their f on E.

A fully connected net with hidden widths ``widths`` = (h₁, …, h_L), nonlinearity φ and one linear logit,

    z¹ = W¹ᵀx + b¹,   zˡ⁺¹ = Wˡ⁺¹ᵀ φ(zˡ) + bˡ⁺¹,   logit = z^{L+1},
    W ~ N(0, σ_w²/fan_in) entrywise (fan_in = d for the first layer),   b ~ N(0, σ_b²),

is the network whose NNGP kernel is ``sgdbayes.kernels.nngp_fcn(depth=L, sigma_w, sigma_b)``. Its label on x is
1 when logit > 0 (an exactly zero logit is labelled 0). Rejection sampling gives P_B(f|S) = P(f on E, S fitted) /
P(S fitted): of ``n_sampled`` prior draws, the ``n_consistent`` ones that label every input of S correctly are kept
and their labellings of E counted in a :class:`~sgdbayes.functions.FunctionCounts`; the estimate of P_B(f|S) is
``counts / n_consistent`` and ``n_consistent / n_sampled`` estimates P(S), the prior probability of the training
labels.

Cost and layout. Networks are processed ``chunk`` at a time as batched matmuls (``torch.baddbmm``, one [n, h] × [h, h']
product per network), first on S only; the (few) networks that fit S are then evaluated on E. When |S| exceeds
``PREFILTER_INPUTS`` (8), a cheap first pass on the first 8 inputs of S discards the networks that clearly mislabel
one of them (a wrong-signed logit beyond a margin far above float rounding, see ``_chunk_functions``); only the
survivors are evaluated on all of S, exactly as without that pass: same kept networks, ~1.4× faster for the book's
7 → 40 → 40 → 1 net on |S| = 32. On CPU, drawing the normals costs about as much as the forward pass, and torch's
``normal_`` runs on one core; so ``threads`` worker threads (default ``torch.get_num_threads()``, the cores torch may
use) each take a whole chunk — draw its blocks from their own generators, evaluate, keep the fitting networks —
while the main thread merges the chunks' results in block order (torch releases the GIL inside these kernels). A
chunk's networks and arithmetic are the same whichever thread runs it, so ``threads`` does not change the result.
Memory is bounded by ``threads × chunk`` (parameters ``chunk × n_params`` plus activations ``chunk × |S| × max(h)``
per thread), never by ``n_samples``.
Sampling runs in float32 by default: a labelling only changes when a logit is within float32 rounding
(~1e-7 relative) of 0, an event of negligible probability next to the Monte-Carlo error; pass
``dtype=torch.float64`` to check. Non-finite logits raise ``FloatingPointError``.

Reproducibility. The random stream is cut into fixed *blocks* of ``block`` networks; block j draws all its
parameters from a generator seeded with ``spawn_seeds(seed, ·)[j]`` (numpy ``SeedSequence(seed, spawn_key=(j,))``).
A chunk is a whole number of blocks, so the same seed gives the same networks — and the same counts — whatever the
chunk size; a different ``block`` or device type (CPU and CUDA generators differ) gives a different, equally valid
stream. A trailing partial block draws the full block and keeps its first networks. Layout: block j is one
``[block, n_params]`` standard-normal tensor (``Tensor.normal_`` with that generator); row i holds network
``j·block + i`` as, layer by layer, the weights ``[fan_in, fan_out]`` (row-major) then the biases ``[fan_out]``, all
before scaling by σ_w/√fan_in and σ_b.
"""

from __future__ import annotations

import ctypes
import math
import queue
import time
import warnings
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import torch

from sgdbayes import native
from sgdbayes.device import get_device
from sgdbayes.functions import FunctionCounts, as_bits
from sgdbayes.progress import bar as progress_bar

__all__ = ["PriorSamples", "block_seed", "n_parameters", "sample_prior", "sample_prior_shard", "forward_flops"]

DEFAULT_BLOCK = 2048
# First pass on S (see _chunk_functions): inputs used (0 = off) and the margin, relative to the bound on a logit's
# summed terms, beyond which a wrong sign is trusted. float32 rounding of an n-term dot product is ≤ n·2⁻²⁴ of that
# bound (worst case; typically ~√n·2⁻²⁴): 2.4e-6 for n = 40, 2.4e-4 for n = 4096; measured differences between the
# 8-row and the full GEMM for the book's net: ≤ 2.6e-7 (tests/test_prior_sampling.py checks ≤ margin/100).
PREFILTER_INPUTS = 8
PREFILTER_MARGIN = 1e-3
_NONLINEARITIES = {"relu": torch.relu_, "erf": torch.erf_}
# The native path (sgdbayes/native/prior.cpp): torch's CPU normal stream reproduced bit for bit, ~3x faster than
# Tensor.normal_, and a filter on S fused with it that never loads the parameters from memory (see _chunk_functions).
# False forces the plain torch path (tests compare the two).
USE_NATIVE = True
_native_state: dict[tuple, object] = {}


def _native_prior(dims: tuple[int, ...]):
    """The compiled prior kernel for layer sizes ``dims`` (d, widths…, 1) when it can be used here, else None: it must
    build, and its normal stream must equal ``Tensor.normal_``'s bit for bit on this machine (checked once, on sizes
    with and without the 16-value tail; torch's stream depends on its CPU kernel: AVX2/AVX-512 builds agree)."""
    key = tuple(dims)
    if key in _native_state:
        return _native_state[key]
    lib = native.load("prior.cpp", DIMS=",".join(map(str, dims)))
    if lib is not None:
        lib.sgdb_normal_fill.restype = None
        lib.sgdb_normal_fill.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_int64]
        lib.sgdb_box_muller_mismatches.restype = ctypes.c_int64
        lib.sgdb_box_muller_mismatches.argtypes = []
        f = lib.sgdb_prior_filter
        f.restype = ctypes.c_int64
        f.argtypes = [ctypes.c_uint64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                      ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_void_p,
                      ctypes.c_void_p]
        for seed, size in ((block_seed(0, 0), 4099), (block_seed(1, 3), 2 * 16 * 40 + 16)):
            ref = torch.empty(size).normal_(generator=torch.Generator().manual_seed(seed))
            ours = torch.empty(size)
            lib.sgdb_normal_fill(seed, ours.data_ptr(), size)
            if not torch.equal(ref.view(torch.int32), ours.view(torch.int32)):
                warnings.warn("the native normal stream differs from this torch's Tensor.normal_ here; prior "
                              "sampling uses the plain torch path", RuntimeWarning, stacklevel=3)
                lib = None
                break
    _native_state[key] = lib
    return lib


def block_seed(seed: int, j: int) -> int:
    """Seed of block ``j`` of stream ``seed``: equal to ``sgdbayes.seed.spawn_seeds(seed, n)[j]`` for any n > j."""
    state = np.random.SeedSequence(int(seed), spawn_key=(int(j),)).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def _layer_sizes(d: int, widths: Sequence[int]) -> list[tuple[int, int]]:
    sizes = [d, *widths, 1]
    return list(zip(sizes[:-1], sizes[1:]))


def n_parameters(d: int, widths: Sequence[int]) -> int:
    """Weights and biases of one d → h₁ → … → h_L → 1 network."""
    return sum(a * b + b for a, b in _layer_sizes(d, widths))


def forward_flops(n_inputs: int, d: int, widths: Sequence[int]) -> int:
    """Matmul FLOPs (2 per multiply-add) of one network on ``n_inputs`` inputs."""
    return 2 * n_inputs * sum(a * b for a, b in _layer_sizes(d, widths))


@dataclass
class PriorSamples:
    """Result of :func:`sample_prior`: ``counts`` of the labellings of E among the ``n_consistent`` networks (of
    ``n_sampled`` prior draws) that fit S."""

    counts: FunctionCounts
    n_sampled: int
    n_consistent: int
    seconds: float = 0.0
    config: dict = field(default_factory=dict)

    @property
    def p_train(self) -> float:
        """Monte-Carlo estimate of P(S): the prior probability that a network labels S correctly."""
        return self.n_consistent / self.n_sampled if self.n_sampled else float("nan")

    def p_b(self) -> np.ndarray:
        """Estimated P_B(f|S) of each counted function (canonical order of ``counts``)."""
        return self.counts.probabilities()

    def log_pb(self, functions) -> tuple[np.ndarray, np.ndarray]:
        """``(log P_B, sd of log P_B)`` of each function (FunctionCounts rows or bits ``[m, |E|]``):
        ``log(count/n_consistent)`` (−inf when never sampled) and the binomial delta-method √((1−p)/(n p)) (inf
        when unseen)."""
        bits = functions.bits() if isinstance(functions, FunctionCounts) else as_bits(functions, self.counts.n_bits)
        c = self.counts.lookup(bits).astype(np.float64)
        n = max(self.n_consistent, 1)
        with np.errstate(divide="ignore"):
            p = c / n
            return np.log(p), np.sqrt((1 - p) / (n * p))

    def p_b_stderr(self) -> np.ndarray:
        """Binomial standard error of :meth:`p_b`: √(p(1 − p)/n_consistent)."""
        p = self.p_b()
        return np.sqrt(p * (1 - p) / max(self.n_consistent, 1))

    @property
    def samples_per_second(self) -> float:
        return self.n_sampled / self.seconds if self.seconds > 0 else float("nan")


def _forward(params: torch.Tensor, x: torch.Tensor, layers, sigma_w: float, sigma_b: float, phi,
             with_scale: bool = False):
    """Logits ``[c, n]`` of c networks (raw standard-normal ``params [c, P]``) on inputs ``x [n, d]``.

    With ``with_scale``, also ``[c, n]`` bounds of the magnitude of the terms summed into each logit,
    σ_b|b| + (σ_w/√fan_in)‖h‖‖w‖ ≥ σ_b|b| + Σᵢ|(σ_w/√fan_in) hᵢwᵢ| (Cauchy–Schwarz; h the last hidden layer): the
    rounding error of a logit is a small multiple of machine epsilon times this."""
    c = params.shape[0]
    h = x.expand(c, *x.shape)
    offset = 0
    for i, (fan_in, fan_out) in enumerate(layers):
        w = params[:, offset:offset + fan_in * fan_out].view(c, fan_in, fan_out)
        offset += fan_in * fan_out
        b = params[:, offset:offset + fan_out].view(c, 1, fan_out)
        offset += fan_out
        alpha = sigma_w / math.sqrt(fan_in)
        if with_scale and i == len(layers) - 1:
            scale = sigma_b * b[:, :, 0].abs() + alpha * torch.linalg.vector_norm(h, dim=2) \
                * torch.linalg.vector_norm(w[:, :, 0], dim=1, keepdim=True)
        # z = σ_b·b + (σ_w/√fan_in)·h @ w  (scales folded into one fused batched GEMM)
        h = torch.baddbmm(b, h, w, beta=sigma_b, alpha=alpha)
        if i < len(layers) - 1:
            phi(h)  # in place
    return (h.squeeze(-1), scale) if with_scale else h.squeeze(-1)


def _check_inputs(x_train, y_train, x_test, device, dtype):
    x_test = torch.as_tensor(x_test).to(device=device, dtype=dtype)
    if x_test.ndim != 2 or x_test.shape[0] == 0:
        raise ValueError(f"x_test must be [n_test >= 1, d], got shape {tuple(x_test.shape)}")
    d = x_test.shape[1]
    if x_train is None:
        x_train = torch.zeros(0, d)
    x_train = torch.as_tensor(x_train).to(device=device, dtype=dtype)
    if x_train.ndim != 2 or x_train.shape[1] != d:
        raise ValueError(f"x_train must be [n_train, {d}] (d of x_test), got shape {tuple(x_train.shape)}")
    if y_train is None:
        y_train = np.zeros(0, bool)
    y = as_bits(y_train, name="y_train")[0] if len(y_train) else np.zeros(0, bool)
    if y.shape[0] != x_train.shape[0]:
        raise ValueError(f"y_train has {y.shape[0]} labels but x_train has {x_train.shape[0]} rows")
    for name, t in (("x_train", x_train), ("x_test", x_test)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf")
    return x_train, torch.as_tensor(y, device=device), x_test


def _pack(bits: torch.Tensor) -> torch.Tensor:
    """bool ``[m, n]`` → uint8 ``[m, ceil(n/8)]`` in ``np.packbits`` order, on the tensor's device."""
    m, n = bits.shape
    nbytes = (n + 7) // 8
    padded = torch.zeros(m, nbytes * 8, dtype=torch.uint8, device=bits.device)
    padded[:, :n] = bits
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=bits.device)
    return (padded.view(m, nbytes, 8) * weights).sum(-1, dtype=torch.uint8)


def _alternate_labels(y: torch.Tensor) -> torch.Tensor:
    """Indices of ``y`` (bool ``[n]``) that alternate its two labels as long as both last: positive, negative,
    positive, … then the rest of the larger class, each class in its original order."""
    pos = torch.nonzero(y, as_tuple=True)[0]
    neg = torch.nonzero(~y, as_tuple=True)[0]
    m = min(len(pos), len(neg))
    paired = torch.stack([pos[:m], neg[:m]], dim=1).reshape(-1)
    return torch.cat([paired, pos[m:], neg[m:]])


def _native_candidates(lib, buffer: torch.Tensor, first: int, last: int, n_total: int, seed: int, block: int,
                       s_filter: tuple[torch.Tensor, torch.Tensor], sigma_w: float, sigma_b: float) -> torch.Tensor:
    """The raw parameters (rows of ``buffer``) of the networks of blocks ``first … last − 1`` that the native filter
    keeps: each block's stream is generated slice by slice (bit-equal to ``Tensor.normal_``) and every network
    evaluated on S in cache, rejecting only those with a logit of the wrong sign by more than PREFILTER_MARGIN × the
    bound on its summed terms (the test of the first pass below, on all of S) — so the kept networks are a superset
    of those fitting S, in block order, and the caller evaluates them exactly as on the torch path. ``s_filter``:
    S as the filter takes it, float32 ``[n, d]`` and uint8 labels ``[n]``, contiguous, in any order."""
    x, yb = s_filter
    idx = np.empty(block, dtype=np.int64)
    count = 0
    for j in range(first, last):
        keep = min(block, n_total - j * block)
        count += lib.sgdb_prior_filter(block_seed(seed, j), block, keep, x.data_ptr(), yb.data_ptr(), x.shape[0],
                                       sigma_w, sigma_b, PREFILTER_MARGIN, idx.ctypes.data,
                                       buffer[count:].data_ptr())
    return buffer[:count]


def _chunk_functions(buffer: torch.Tensor, first: int, last: int, n_total: int, seed: int, block: int,
                     x_train, y, x_test, layers, sigma_w: float, sigma_b: float, phi,
                     lib=None, s_filter=None) -> tuple[int, torch.Tensor | None]:
    """Draw blocks ``first … last − 1`` of stream ``seed`` into ``buffer [≥ (last − first)·block, n_params]`` and
    return ``(n_chunk, packed)``: the chunk's number of networks (the last chunk keeps only those below ``n_total``)
    and the packed labellings of E ``uint8 [n_fit, ⌈|E|/8⌉]`` (on CPU) of those fitting S, or None when none does.
    With ``lib`` (the native kernel, CPU float32 ReLU only) the draws and the screening on S run natively
    (``_native_candidates`` on ``s_filter``; with S empty, only the draws); the networks kept, and so the result,
    are the same."""
    with torch.inference_mode():  # inference mode is thread-local: the worker threads enter it themselves
        n_chunk = min((last - first) * block, n_total - first * block)
        if s_filter is not None:  # the native kernel and a non-empty S
            params = _native_candidates(lib, buffer, first, last, n_total, seed, block, s_filter, sigma_w,
                                        sigma_b)
        else:
            for k, j in enumerate(range(first, last)):  # block j fills rows [k·block, (k+1)·block) of the buffer
                rows = buffer[k * block:(k + 1) * block]
                if lib is not None:
                    lib.sgdb_normal_fill(block_seed(seed, j), rows.data_ptr(), rows.numel())
                else:
                    rows.normal_(generator=torch.Generator(device=buffer.device).manual_seed(block_seed(seed, j)))
            params = buffer[:n_chunk]
        if lib is None and x_train.shape[0] > PREFILTER_INPUTS > 0:
            # Cheap first pass on the first PREFILTER_INPUTS inputs of S (~1/3 of the cost of all 32 for the book's
            # net, and it rejects > 99.9% of its draws). A smaller GEMM may round differently (it can take another
            # kernel), so it only rejects a network whose wrong-signed logit exceeds PREFILTER_MARGIN × the bound
            # on its summed terms — orders of magnitude above any float rounding difference; the survivors are
            # then evaluated on all of S exactly as without the first pass, so the kept networks are the same.
            k = PREFILTER_INPUTS
            logits, scale = _forward(params, x_train[:k], layers, sigma_w, sigma_b, phi, with_scale=True)
            if not (torch.isfinite(logits).all() and torch.isfinite(scale).all()):
                raise FloatingPointError(f"non-finite logits on S in block(s) {first}..{last - 1} of seed {seed}")
            wrong = ((logits > 0) != y[:k]) & (logits.abs() > PREFILTER_MARGIN * scale)
            params = params[~wrong.any(dim=1)]
        if x_train.shape[0] and params.shape[0]:
            logits = _forward(params, x_train, layers, sigma_w, sigma_b, phi)
            if not torch.isfinite(logits).all():
                raise FloatingPointError(f"non-finite logits on S in block(s) {first}..{last - 1} of seed {seed}")
            fits = ((logits > 0) == y).all(dim=1)
            params = params[fits]
        if not params.shape[0]:
            return n_chunk, None
        logits = _forward(params, x_test, layers, sigma_w, sigma_b, phi)
        if not torch.isfinite(logits).all():
            raise FloatingPointError(f"non-finite logits on E in block(s) {first}..{last - 1} of seed {seed}")
        return n_chunk, _pack(logits > 0).cpu()


def sample_prior(x_train, y_train, x_test, *, n_samples: int, widths: Sequence[int] = (40, 40),
                 sigma_w: float = 1.0, sigma_b: float = 1.0, nonlinearity: str = "relu", seed: int = 0,
                 chunk: int | None = None, block: int = DEFAULT_BLOCK, device: str | torch.device = "auto",
                 dtype: torch.dtype = torch.float32, threads: int | None = None,
                 progress: bool = True) -> PriorSamples:
    """Sample ``n_samples`` networks from the prior; count the labellings of ``x_test`` among those fitting S.

    Args:
        x_train: ``[|S|, d]`` inputs of S (may be empty or None: then every network is kept, giving P(f) on E).
        y_train: ``[|S|]`` labels of S (bool, {0,1} or {−1,+1}).
        x_test: ``[|E|, d]`` inputs of E; functions are bit strings in this row order.
        n_samples: number of prior draws (≥ 1).
        widths: hidden widths (h₁, …, h_L); ``()`` is the linear model.
        sigma_w, sigma_b: prior scales (W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²)).
        nonlinearity: ``"relu"`` or ``"erf"``.
        seed: root seed of the block stream (see the module docstring).
        chunk: networks per batched evaluation (one thread's unit of work), rounded up to a multiple of ``block``;
            bounds memory (default: on CPU with the native kernel, up to 4 blocks while their parameters fit in
            64 MiB; on CPU without it, max(block, 2048), i.e. one default block — a chunk that stays small is
            faster there; 64 blocks on CUDA). Does not change the result.
        block: networks per random-number block (part of the stream's definition).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, …; dtype: float32 (default) or float64.
        threads: worker threads drawing and evaluating chunks concurrently (≥ 1; default on CPU
            ``sgdbayes.ensembles.fused.default_threads()`` with the native kernel, else ``torch.get_num_threads()``;
            1 on CUDA; 1 runs everything in the calling thread). Does not change the result.
        progress: show a tqdm bar.

    Returns: :class:`PriorSamples` (``counts``, ``n_sampled``, ``n_consistent``, timing and the config).
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}")
    widths = tuple(widths)
    if any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in widths):
        raise ValueError(f"widths must be positive ints, got {widths!r}")
    if not (sigma_w > 0 and math.isfinite(sigma_w)):
        raise ValueError(f"sigma_w must be > 0 and finite, got {sigma_w!r}")
    if not (sigma_b >= 0 and math.isfinite(sigma_b)):
        raise ValueError(f"sigma_b must be >= 0 and finite, got {sigma_b!r}")
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}; allowed: {sorted(_NONLINEARITIES)}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be an int >= 1, got {block!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                or threads < 1):
        raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")
    dev = get_device(device)
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1):
        raise ValueError(f"chunk must be None or an int >= 1, got {chunk!r}")

    x_train, y, x_test = _check_inputs(x_train, y_train, x_test, dev, dtype)
    d = x_test.shape[1]
    layers = _layer_sizes(d, widths)
    n_params = n_parameters(d, widths)
    phi = _NONLINEARITIES[nonlinearity]
    lib = None
    if USE_NATIVE and dev.type == "cpu" and dtype == torch.float32 and nonlinearity == "relu" \
            and int(block) * n_params >= 16:
        lib = _native_prior((d, *widths, 1))
    if chunk is None:
        if dev.type == "cuda":
            chunk = block * 64  # large launches
        elif lib is not None:
            # the native kernel keeps only the few networks that pass its filter, so the chunk bounds work per
            # thread hand-off, not memory in use: up to 4 blocks (measured ~4% faster than 1 for the book's net),
            # as long as a chunk's parameters, if all were kept, stay within 64 MiB
            chunk = block * max(1, min(4, (64 << 20) // (4 * block * n_params)))
        else:
            # torch path: one 2048-network block (16 MB of float32 parameters) per chunk measured ~1.15× faster
            # than 8 blocks (131 MB, beyond the caches) even in one thread
            chunk = max(int(block), 2048)
    blocks_per_chunk = -(-int(chunk) // block)
    s_filter = None
    if lib is not None and x_train.shape[0]:
        # The filter's verdict does not depend on the order of S, and it stops at the first pair of inputs that
        # rejects: pairs of opposite labels reject almost every network at once (a prior network is rarely far from
        # constant), ~1.05 pairs per network for the book's S instead of ~1.5 in its own order. The exact check of
        # the survivors keeps S's own order.
        order = _alternate_labels(y)
        s_filter = (x_train[order].to(torch.float32).contiguous(), y[order].to(torch.uint8).contiguous())
    if threads is None:
        # the native path's work is in its own kernel: every CPU (fused.default_threads), whatever torch's thread
        # count (chapters set torch to one thread for its tiny ops); the torch path keeps torch's count
        from sgdbayes.ensembles.fused import default_threads

        threads = 1 if dev.type == "cuda" else (default_threads() if lib is not None
                                                else max(1, torch.get_num_threads()))
    n_blocks = -(-int(n_samples) // block)
    starts = range(0, n_blocks, blocks_per_chunk)
    threads = min(int(threads), len(starts))
    rows = min(blocks_per_chunk, n_blocks) * block

    counts = FunctionCounts.empty(x_test.shape[0])
    pending: list[torch.Tensor] = []
    pending_rows = 0
    n_consistent = 0
    t0 = time.perf_counter()
    bar = progress_bar(total=int(n_samples), unit="net", desc="prior samples", disable=not progress)

    def absorb(n_chunk: int, packed: torch.Tensor | None) -> None:
        nonlocal pending, pending_rows, n_consistent
        if packed is not None:
            pending.append(packed)
            pending_rows += packed.shape[0]
            n_consistent += packed.shape[0]
        if pending_rows >= 1_000_000:
            counts.update_packed(torch.cat(pending).numpy())
            pending, pending_rows = [], 0
        bar.update(n_chunk)

    args = (int(n_samples), int(seed), int(block), x_train, y, x_test, layers, float(sigma_w), float(sigma_b), phi,
            lib, s_filter)
    with torch.inference_mode():
        buffers = [torch.empty(rows, n_params, device=dev, dtype=dtype) for _ in range(threads)]
    if threads == 1:
        for first in starts:
            absorb(*_chunk_functions(buffers[0], first, min(first + blocks_per_chunk, n_blocks), *args))
    else:
        free: queue.SimpleQueue = queue.SimpleQueue()  # at most `threads` chunks run at once: one buffer each
        for buf in buffers:
            free.put(buf)

        def work(first: int):
            buf = free.get()
            try:
                return _chunk_functions(buf, first, min(first + blocks_per_chunk, n_blocks), *args)
            finally:
                free.put(buf)

        # results are taken in block order; at most 2·threads chunks are queued, so that a failing chunk stops the
        # run early and finished results never pile up
        todo = iter(starts)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sample_prior") as pool:
            inflight: deque = deque(pool.submit(work, f) for f in islice(todo, 2 * threads))
            try:
                while inflight:
                    result = inflight.popleft().result()
                    inflight.extend(pool.submit(work, f) for f in islice(todo, 1))
                    absorb(*result)
            finally:
                for fut in inflight:
                    fut.cancel()
    bar.close()
    if pending:
        counts.update_packed(torch.cat(pending).numpy())
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    assert counts.total == n_consistent
    config = {"widths": list(widths), "sigma_w": float(sigma_w), "sigma_b": float(sigma_b),
              "nonlinearity": nonlinearity, "seed": int(seed), "block": int(block), "dtype": str(dtype),
              "device": dev.type}
    return PriorSamples(counts=counts, n_sampled=int(n_samples), n_consistent=n_consistent, seconds=seconds,
                        config=config)


def sample_prior_shard(seed: int, n_samples: int, **config) -> FunctionCounts:
    """One shard of a sharded prior-sampling job (top-level and picklable, for Dask): the :class:`FunctionCounts`
    of :func:`sample_prior` with this ``seed``. ``config`` must hold ``x_train``, ``y_train`` and ``x_test`` and
    may hold any other keyword of :func:`sample_prior` (``progress`` defaults to False). The shard's n_consistent
    is ``counts.total``; its n_sampled is ``n_samples``."""
    missing = {"x_train", "y_train", "x_test"} - set(config)
    if missing:
        raise ValueError(f"sample_prior_shard needs x_train, y_train and x_test in its config; missing {sorted(missing)}")
    config.setdefault("progress", False)
    return sample_prior(n_samples=n_samples, seed=seed, **config).counts
