"""Run every ``benchmarks/bench_*.py`` and print one table of side-by-side ratios; write ``_build/bench.json``.

Each benchmark module defines ``run(ctx) -> list[dict]``; a row is
``{"benchmark", "quantity", "value", "unit", "target" (text or None), "ok" (bool or None)}``. ``ctx`` carries the GEMM
roof of this same run (``ctx.roof("float32"|"float64")``: re-measured at each call, the best kept), the device, and
``ctx.quick`` (smaller sizes, for a fast look). Targets are ratios measured side by side in one run, never absolute timings.

    python benchmarks/run.py [--only kernels,ep] [--quick] [--device cpu]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from roof import gemm_roof  # noqa: E402


@dataclass
class Context:
    device: torch.device
    quick: bool
    roof_gflops: dict[str, float] = field(default_factory=dict)

    def roof(self, dtype: str = "float32") -> float:
        """The GEMM roof (GFLOP/s), measured again now and kept as the best seen in this run.

        Call it right after the timing it is compared with: on a shared 2-core machine a roof taken minutes earlier,
        under different load, can sit below what a later op achieves (ratios > 1)."""
        now = gemm_roof(getattr(torch, dtype), self.device, quick=True)
        self.roof_gflops[dtype] = max(self.roof_gflops.get(dtype, 0.0), now)
        return self.roof_gflops[dtype]

    def efficiency(self, gflops: float, dtype: str = "float32") -> float:
        """Achieved GFLOP/s as a fraction of the GEMM roof (measured again now; see :meth:`roof`)."""
        return gflops / self.roof(dtype)


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated topics (bench_<topic>.py), default: all")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(ROOT / "_build" / "bench.json"))
    args = parser.parse_args(argv)

    from sgdbayes.device import get_device

    ctx = Context(device=get_device(args.device), quick=args.quick)
    rows: list[dict] = []
    print(f"device: {ctx.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, {platform.processor()}")
    for dtype in ("float32", "float64"):
        ctx.roof_gflops[dtype] = gemm_roof(getattr(torch, dtype), ctx.device, quick=args.quick)
        rows.append({"benchmark": "roof", "quantity": f"GEMM roof {dtype}", "value": ctx.roof_gflops[dtype],
                     "unit": "GFLOP/s", "target": None, "ok": None})

    only = {t.strip() for t in args.only.split(",") if t.strip()}
    modules = sorted(HERE.glob("bench_*.py"))
    unknown = only - {m.stem.removeprefix("bench_") for m in modules}
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; available: "
                     f"{sorted(m.stem.removeprefix('bench_') for m in modules)}")
    failed = []
    for path in modules:
        topic = path.stem.removeprefix("bench_")
        if only and topic not in only:
            continue
        t0 = time.perf_counter()
        try:
            new = _load(path).run(ctx)
        except Exception:  # noqa: BLE001 - report and go on with the other benchmarks
            traceback.print_exc()
            failed.append(topic)
            new = [{"benchmark": topic, "quantity": "ERROR (see traceback above)", "value": None, "unit": "",
                    "target": None, "ok": False}]
        for r in new:
            r.setdefault("benchmark", topic)
        rows.extend(new)
        print(f"[{topic}] done in {time.perf_counter() - t0:.1f} s")

    for dtype, gflops in ctx.roof_gflops.items():
        rows.append({"benchmark": "roof", "quantity": f"GEMM roof {dtype}, best over the run", "value": gflops,
                     "unit": "GFLOP/s", "target": None, "ok": None})
    header = ("benchmark", "quantity", "value", "unit", "target", "ok")
    table = [header] + [tuple(_fmt(r.get(k)) if r.get(k) is not None else "" for k in header) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print()
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": str(ctx.device), "torch": torch.__version__,
                               "threads": torch.get_num_threads(), "rows": rows}, indent=2))
    print(f"\nwrote {out}")
    missed = [r for r in rows if r.get("ok") is False]
    if missed:
        print(f"{len(missed)} target(s) missed or errored: " + "; ".join(f"{r['benchmark']}/{r['quantity']}" for r in missed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
