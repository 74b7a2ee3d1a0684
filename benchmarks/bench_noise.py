"""Layer-wise per-sample gradient Gram (sgdbayes.noise) against torch.func vmap(grad) + JJᵀ.

Network: the paper's small-lenet (13,338 weights, float32, eval mode) on a batch of random 28×28 images.
Times are best-of-3 wall times in this process. Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the
allocation before the call; on CPU each method runs in a fresh subprocess and the peak is its resident-set high-water
mark (``ru_maxrss``) minus its resident set just before the call (after a 2-sample warm-up call, so imports, lazy kernel initialisation,
model and data are excluded).
Target: the layer-wise Gram costs at most 2× one forward+backward pass over the same batch. The memory rows are
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

    t_fb = time_call(fwd_bwd, repeats=3, device=dev)
    t_gram = time_call(gram, repeats=3, device=dev)
    t_vmap = time_call(vmap_gram, repeats=2, device=dev)
    g1, g2 = gram(), vmap_gram()
    rel = float((g1 - g2).abs().max() / g2.abs().max())
    if dev.type == "cuda":
        m_gram, m_vmap = _cuda_peak_mb(gram, dev), _cuda_peak_mb(vmap_gram, dev)
    else:
        m_gram, m_vmap = _cpu_peak_mb(n, "gram"), _cpu_peak_mb(n, "vmap")
    b = "noise"
    rows = [
        {"benchmark": b, "quantity": f"forward+backward, small-lenet, N={n}", "value": t_fb * 1e3, "unit": "ms",
         "target": None, "ok": None},
        {"benchmark": b, "quantity": "layer-wise Gram (float64 accumulation)", "value": t_gram * 1e3, "unit": "ms",
         "target": None, "ok": None},
        {"benchmark": b, "quantity": "vmap(grad) + JJᵀ", "value": t_vmap * 1e3, "unit": "ms", "target": None,
         "ok": None},
        {"benchmark": b, "quantity": "layer-wise Gram / forward+backward", "value": t_gram / t_fb, "unit": "×",
         "target": "<= 2", "ok": t_gram / t_fb <= 2.0},
        {"benchmark": b, "quantity": "vmap(grad)+JJᵀ / layer-wise Gram", "value": t_vmap / t_gram, "unit": "×",
         "target": "> 1", "ok": t_vmap / t_gram > 1.0},
        {"benchmark": b, "quantity": "max |G_layer − G_vmap| / max |G|", "value": rel, "unit": "",
         "target": "< 1e-4 (float32 net)", "ok": rel < 1e-4},
    ]
    for name, m in (("layer-wise Gram", m_gram), ("vmap(grad) + JJᵀ", m_vmap)):
        rows.append({"benchmark": b, "quantity": f"peak memory, {name}", "value": m, "unit": "MiB",
                     "target": None, "ok": None})
    if m_gram and m_vmap:
        rows.append({"benchmark": b, "quantity": "peak memory vmap / layer-wise", "value": m_vmap / m_gram,
                     "unit": "×", "target": None, "ok": None})
    return rows
