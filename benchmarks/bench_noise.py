"""Layer-wise per-sample gradient Gram (sgdbayes.noise) against torch.func vmap(grad) + JJᵀ.

Network: the paper's small-lenet (13,338 weights, float32, eval mode) on a batch of random 28×28 images.
Times are best-of-3 wall times in this process. Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the
allocation before the call; on CPU each method runs in a fresh subprocess and the peak is its resident-set high-water
mark (``ru_maxrss``) minus its resident set just before the call (after a 2-sample warm-up call, so imports, lazy kernel initialisation,
model and data are excluded).
Target: the layer-wise Gram costs at most 2× one forward+backward pass over the same batch, measured for both
product precisions: ``products="accumulation"`` (every layer's products in float64) and ``products="input"`` (each
layer's products in the network's float32, the blocks summed in float64; the rank and the eigenvalues above the
paper's threshold λ_max·d·ε32 are unchanged, tests/noise/test_noise_gram.py). What bounds the ratio is reported
beside it: the Gram of the second convolution's per-sample gradients is a dense N × N × 3,200 product, 2·N²·3,200
flops (6.7 GFLOP at N = 1,024 before the symmetric half is skipped), while the forward+backward pass costs about
3 × 0.3 MFLOP per sample; so the Gram grows with N² and the pass with N, and the rows "largest block GEMM alone"
and "Gram flops / pass flops" show how much of the ratio that product alone takes. (The first convolution's
per-sample gradients come from one grouped convolution, not im2col: ``sgdbayes.noise.gram._grouped_conv_applies``.) Timings alternate between the
routes (best of several) because the machine is shared. The memory rows are
informational: the explicit N×d matrix of small-lenet is only N·13,338·4 bytes (14 MB at N = 256), so at these sizes
both peaks are dominated by activations, float64 copies of unfolded conv inputs and allocator/convolution
workspaces; the layer-wise route's advantage is that it never grows with N·d.
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch
import torch.nn.functional as F

from roof import time_call

_MEM_SCRIPT = r"""
import json, resource, sys, torch
import torch.nn.functional as F
from sgdbayes.noise import per_sample_gram, per_sample_gradients, small_lenet
torch.manual_seed(0)
n, method = int(sys.argv[1]), sys.argv[2]
model = small_lenet().eval()
x = torch.rand(n, 1, 28, 28); y = torch.randint(0, 10, (n,))
ce = lambda o, t: F.cross_entropy(o, t, reduction="none")
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()
def go(x, y):
    if method == "gram":
        per_sample_gram(model, ce, x, y)
    else:
        j = per_sample_gradients(model, ce, x, y); g = j.double() @ j.double().T
go(x[:2], y[:2])  # lazy library initialisation is not part of the method's memory
before = rss()
go(x, y)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak_mb": max(peak - before, 0) / 2**20}))
"""


def _cpu_peak_mb(n: int, method: str) -> float | None:
    try:
        out = subprocess.run([sys.executable, "-c", _MEM_SCRIPT, str(n), method], capture_output=True, text=True,
                             timeout=600, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]
    except Exception:  # noqa: BLE001 - a failed measurement is reported as missing, not as zero
        return None


def _cuda_peak_mb(fn, device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def _forward_flops(model, x1) -> float:
    """Flops of one sample's forward pass through the convolutions and linear layers (2 per multiply-add)."""
    total = [0.0]

    def hook(mod, _inp, out):
        positions = out[0, 0].numel() if isinstance(mod, torch.nn.Conv2d) else 1
        total[0] += 2.0 * mod.weight.numel() * positions

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(x1)
    for h in hooks:
        h.remove()
    return total[0]


def run(ctx) -> list[dict]:
    from sgdbayes.noise import per_sample_gram, per_sample_gradients, small_lenet

    dev = ctx.device
    n = 256 if ctx.quick else 1024
    torch.manual_seed(0)
    model = small_lenet().to(dev).eval()
    x = torch.rand(n, 1, 28, 28, device=dev)
    y = torch.randint(0, 10, (n,), device=dev)

    def ce(o, t):
        return F.cross_entropy(o, t, reduction="none")

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y, reduction="sum").backward()

    def gram():
        return per_sample_gram(model, ce, x, y).gram

    def vmap_gram():
        j = per_sample_gradients(model, ce, x, y).double()
        return j @ j.T

    def gram32():
        return per_sample_gram(model, ce, x, y, products="input").gram

    # the largest block alone: conv2's per-sample gradients [N, 16·8·5·5] and their N×N product
    k2 = 16 * 8 * 5 * 5
    j2 = torch.randn(n, k2, device=dev)

    def block32():
        return j2 @ j2.T

    def interleaved(fns, rounds=3):
        best = [float("inf")] * len(fns)
        for _ in range(rounds):
            for i, f in enumerate(fns):
                best[i] = min(best[i], time_call(f, repeats=2, device=dev))
        return best

    t_fb, t_gram, t_g32, t_blk = interleaved([fwd_bwd, gram, gram32, block32])
    t_vmap = time_call(vmap_gram, repeats=2, device=dev)
    g1, g2, g3 = gram(), vmap_gram(), gram32()
    rel = float((g1 - g2).abs().max() / g2.abs().max())
    rel32 = float((g3 - g1).abs().max() / g1.abs().max())
    flops_fb = 3 * n * _forward_flops(model, x[:1])  # the backward pass costs about twice the forward
    flops_gram_block = 2 * n * n * k2
    if dev.type == "cuda":
        m_gram, m_vmap = _cuda_peak_mb(gram, dev), _cuda_peak_mb(vmap_gram, dev)
    else:
        m_gram, m_vmap = _cpu_peak_mb(n, "gram"), _cpu_peak_mb(n, "vmap")
    b = "noise"
    rows = [
        {"benchmark": b, "quantity": f"forward+backward, small-lenet, N={n}", "value": t_fb * 1e3, "unit": "ms",
         "target": None, "ok": None},
        {"benchmark": b, "quantity": "layer-wise Gram, float64 products", "value": t_gram * 1e3, "unit": "ms",
         "target": None, "ok": None},
        {"benchmark": b, "quantity": "layer-wise Gram, float32 products summed in float64", "value": t_g32 * 1e3,
         "unit": "ms", "target": None, "ok": None},
        {"benchmark": b, "quantity": "vmap(grad) + JJᵀ", "value": t_vmap * 1e3, "unit": "ms", "target": None,
         "ok": None},
        {"benchmark": b, "quantity": "layer-wise Gram (float64 products) / forward+backward", "value": t_gram / t_fb,
         "unit": "×", "target": "<= 2", "ok": t_gram / t_fb <= 2.0},
        {"benchmark": b, "quantity": "layer-wise Gram (float32 products) / forward+backward", "value": t_g32 / t_fb,
         "unit": "×", "target": "<= 2", "ok": t_g32 / t_fb <= 2.0},
        {"benchmark": b, "quantity": "largest block GEMM alone (conv2 JJᵀ, float32, full) / forward+backward",
         "value": t_blk / t_fb, "unit": "×", "target": None, "ok": None},
        {"benchmark": b, "quantity": "Gram flops of that block / forward+backward flops",
         "value": flops_gram_block / flops_fb, "unit": "×", "target": None, "ok": None},
        {"benchmark": b, "quantity": "vmap(grad)+JJᵀ / layer-wise Gram (float32 products, as vmap's J)",
         "value": t_vmap / t_g32, "unit": "×", "target": "> 1", "ok": t_vmap / t_g32 > 1.0},
        {"benchmark": b, "quantity": "max |G_layer − G_vmap| / max |G|", "value": rel, "unit": "",
         "target": "< 1e-4 (float32 net)", "ok": rel < 1e-4},
        {"benchmark": b, "quantity": "max |G_float32 products − G_float64 products| / max |G|", "value": rel32,
         "unit": "", "target": "< 1e-5", "ok": rel32 < 1e-5},
    ]
    for name, m in (("layer-wise Gram", m_gram), ("vmap(grad) + JJᵀ", m_vmap)):
        rows.append({"benchmark": b, "quantity": f"peak memory, {name}", "value": m, "unit": "MiB",
                     "target": None, "ok": None})
    if m_gram and m_vmap:
        rows.append({"benchmark": b, "quantity": "peak memory vmap / layer-wise", "value": m_vmap / m_gram,
                     "unit": "×", "target": None, "ok": None})
    return rows
