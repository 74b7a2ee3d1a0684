"""What a chapter will cost before it runs: predicted time per chapter and profile, here and on a GPU.

Model. A chapter's computation is a list of :class:`Work` items, each an amount of one *kind* of work (ensemble
training FLOPs of the Boolean or the MNIST-sized net, prior-network draws, float32 / float64 dense FLOPs, fixed
seconds). Its predicted time on this machine is Σ amount / rate(kind), with the rates measured on the spot by
:func:`calibrate` (a few seconds: the GEMM roofs, a short ``train_ensemble`` of each net shape, a short
``sample_prior``). On a GPU the time is Σ FLOPs(kind) / (peak × efficiency(kind)) + fixed seconds, with the peak and
the per-kind efficiencies *stated assumptions* (``GPU_MODEL``: H200, float32 dense ≈ 60 TFLOP/s; small-network
ensembles reach a few percent of it, large GEMMs most of it), not measurements.

Per chapter, ``ESTIMATORS[chapter](params) -> list[Work]`` maps the chapter's resolved parameters to work. For
``function_probability`` the mapping follows the computation (networks × epochs × FLOPs per epoch, prior draws,
GP draws, slice-sampling steps); the epochs a network needs to fit are assumptions (``EPOCHS_TO_FIT``) taken from
measured runs. The other chapters are scaled from their measured default-profile time by their dominant size
parameter (``SCALED``), until their rewrites settle. ``render`` formats the table that ``sgdbayes list --estimate``
prints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Work", "KINDS", "GPU_MODEL", "EPOCHS_TO_FIT", "SCALED", "ESTIMATORS", "REFERENCE_RATES", "calibrate",
           "estimate_work", "predict", "render"]


@dataclass(frozen=True)
class Work:
    kind: str
    amount: float
    label: str = ""


@dataclass(frozen=True)
class Kind:
    unit: str
    gpu_efficiency: float  # assumed fraction of GPU_MODEL's float32 (float64 for gemm_f64) peak; 0: not on the GPU
    description: str


KINDS: dict[str, Kind] = {
    "ens_bool": Kind("FLOP", 0.02, "training FLOPs of 7→40→40→1 ensembles, batch 8 (tiny products)"),
    "ens_mlp": Kind("FLOP", 0.15, "training FLOPs of 784→h→h→1 ensembles, batch 32"),
    "prior": Kind("draw", 0.3, "prior networks 7→40→40→1 drawn and screened on |S| = 32"),
    "gemm_f32": Kind("FLOP", 0.6, "float32 dense linear algebra (GEMM-bound)"),
    "gemm_f64": Kind("FLOP", 0.5, "float64 dense linear algebra (Cholesky, EP, GP)"),
    "scaled": Kind("reference s", 0.0, "seconds on the reference machine, scaled by this machine's GEMM roof; "
                                       "the GPU model assumes no speed-up for these"),
    "fixed": Kind("s", 0.0, "kernel start, imports, figures (same on any device)"),
}
PRIOR_FLOPS_PER_DRAW = 2 * 32 * (7 * 40 + 40 * 40 + 40)  # useful forward FLOPs of one draw on |S| = 32

GPU_MODEL = {"name": "NVIDIA H200 (assumed)", "float32_flops": 60e12, "float64_flops": 60e12,
             "note": "dense float32 / float64 peaks taken as ~60 TFLOP/s; per-kind efficiencies in KINDS are "
                     "assumptions, not measurements"}

# Epochs until a network first fits S (then + overtraining); from measured runs of the book's settings (README,
# chapter 1 notes): Boolean |S|=32 SGD batch 8 with the sign stop ≈ 8 (the authors' Keras rule: ≈ 84); the
# adaptive optimisers at lr 0.01 fit slower (≈ 30, from the 97 s the ten optimiser × batch runs took); MNIST |S|=400,
# SGD lr 0.05, batch 32, MSE ≈ 60 (from the 463 s of 10^4 networks).
EPOCHS_TO_FIT = {"boolean": 8.0, "boolean_other_optimizers": 30.0, "mnist": 60.0}

# Chapters scaled from a measured default-profile time (seconds on the 2-core reference machine) by the product of
# their dominant size parameters relative to the default values.
SCALED: dict[str, tuple[float, tuple[str, ...]]] = {
    "sgd_variational_inference": (69.0, ("n_train", "epochs_fc")),
    "constant_sgd": (133.0, ("n_chains", "n_steps")),
    "polyak_averaging": (38.0, ("ou_chains", "ou_TS")),
    "report": (4.0, ()),
}
FIXED_PER_CHAPTER = 10.0  # kernel start and imports, seconds

# Rates of the reference machine (2 cores; the README's measured build), used by the tests to check the model against
# the measured default-profile times: GEMM roofs, today's train_ensemble at 5% (Boolean) / 33% (MNIST) of the float32
# roof, 10^7 prior draws in 96 s.
REFERENCE_RATES = {"gemm_f32": 213e9, "gemm_f64": 87e9, "ens_bool": 10.8e9, "ens_mlp": 0.33 * 213e9,
                   "prior": 1e7 / 96, "scaled": 1.0, "fixed": 1.0}


def _train_flops_per_example(d: int, hidden: Iterable[int]) -> float:
    """Forward + backward FLOPs of one training visit of one example (first layer: weight gradient only)."""
    widths = [d, *hidden, 1]
    first = 2 * widths[0] * widths[1]
    rest = sum(2 * a * b for a, b in zip(widths[1:-1], widths[2:], strict=True))
    return 2 * first + 3 * rest


def _function_probability(p: Mapping) -> list[Work]:
    n_s = p["bool_n_train"]
    per_epoch = _train_flops_per_example(7, p["bool_hidden"]) * n_s
    e_fit = EPOCHS_TO_FIT["boolean"]
    n_settings = len(p["opt_names"]) * len(p["opt_batches"])
    out = [
        Work("ens_bool", p["bool_networks"] * e_fit * per_epoch, "Boolean P_SGD ensemble"),
        Work("ens_bool", n_settings * p["opt_networks"] * EPOCHS_TO_FIT["boolean_other_optimizers"] * per_epoch,
             "optimiser × batch ensembles"),
        Work("ens_bool", p["overtrain_networks"] * (e_fit + p["overtrain_epochs"]) * per_epoch, "overtrained"),
        Work("ens_bool", p["large_networks"] * e_fit * per_epoch * p["large_n_train"] / n_s, "larger S"),
        Work("prior", p["bool_prior_samples"], "P_B by direct prior sampling"),
        Work("gemm_f32", p["bool_gp_samples"] * 2 * 128 * 128, "GP rejection draws"),
        Work("gemm_f64", p["bool_ess_chains"] * p["bool_ess_steps"] * 4 * 128 * 128, "elliptical slice chains"),
    ]
    n_m = p["mnist_n_train"]
    mnist_epochs = EPOCHS_TO_FIT["mnist"] + p["mnist_overtrain"]
    mnist_per_epoch = _train_flops_per_example(784, p["mnist_hidden"]) * n_m
    out.append(Work("ens_mlp", p["mnist_networks"] * mnist_epochs * mnist_per_epoch, "MNIST P_SGD ensemble"))
    n_gp = n_m + p["mnist_n_test"]
    out.append(Work("gemm_f64", 30 * n_gp**3 / 3 + p["mnist_ess_chains"] * p["mnist_ess_steps"] * 4 * n_gp**2,
                    "MNIST GP / EP / slice chains"))
    out.append(Work("fixed", 30.0 + FIXED_PER_CHAPTER, "figures, imports, kernel"))
    return out


def _scaled(chapter: str) -> Callable[[Mapping], list[Work]]:
    ref_seconds, knobs = SCALED[chapter]

    def estimate(p: Mapping, defaults: Mapping | None = None) -> list[Work]:
        ratio = 1.0
        for k in knobs:
            if defaults is not None and k in p and k in defaults and defaults[k]:
                ratio *= float(p[k]) / float(defaults[k])
        fixed = min(FIXED_PER_CHAPTER, ref_seconds / 2)
        body = (ref_seconds - fixed) * ratio
        return [Work("scaled", body, f"scaled from {ref_seconds:.0f} s measured (default)"
                     f"{', by ' + ' × '.join(knobs) if knobs else ''}"),
                Work("fixed", fixed, "imports, kernel")]

    estimate.scaled = True  # type: ignore[attr-defined]
    return estimate


ESTIMATORS: dict[str, Callable[..., list[Work]]] = {"function_probability": _function_probability,
                                                    **{c: _scaled(c) for c in SCALED}}


def estimate_work(chapter: str, params: Mapping, defaults: Mapping | None = None) -> list[Work] | None:
    """The work of ``chapter`` with resolved ``params`` (``defaults``: the default profile's, for scaled chapters);
    None for a chapter without a model yet."""
    fn = ESTIMATORS.get(chapter)
    if fn is None:
        return None
    return fn(params, defaults) if getattr(fn, "scaled", False) else fn(params)


def _gpu_seconds(work: Work) -> float:
    kind = KINDS[work.kind]
    if work.kind in ("fixed", "scaled"):
        return work.amount
    flops = work.amount * (PRIOR_FLOPS_PER_DRAW if work.kind == "prior" else 1.0)
    peak = GPU_MODEL["float64_flops" if work.kind == "gemm_f64" else "float32_flops"]
    return flops / (peak * kind.gpu_efficiency)


def predict(works: Iterable[Work], rates: Mapping[str, float]) -> tuple[float, float]:
    """``(seconds here, seconds on the modelled GPU)`` for ``works`` at ``rates`` (units per second per kind)."""
    works = list(works)
    here = sum(w.amount / rates[w.kind] for w in works)
    return here, sum(_gpu_seconds(w) for w in works)


def calibrate(quick: bool = True) -> dict[str, float]:
    """Throughputs of this machine, measured now (a few seconds): units per second for every kind in KINDS."""
    import torch

    from sgdbayes.data.boolean import boolean_split
    from sgdbayes.ensembles import FCN, train_ensemble
    from sgdbayes.prior_sampling import sample_prior

    def best(fn, repeats=2):
        fn()
        t = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            t = min(t, time.perf_counter() - t0)
        return t

    rates: dict[str, float] = {"fixed": 1.0}
    n = 1024 if quick else 2048
    for kind, dtype in (("gemm_f32", torch.float32), ("gemm_f64", torch.float64)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        rates[kind] = 2 * n**3 / best(lambda a=a, b=b: a @ b, 3)
    g = torch.Generator().manual_seed(0)
    for kind, d, n_s, batch, M, loss in (("ens_bool", 7, 32, 8, 256, "ce"), ("ens_mlp", 784, 256, 32, 8, "mse")):
        X = torch.rand(n_s, d, generator=g)
        y = (torch.rand(n_s, generator=g) < 0.5).long()
        X[-1], y[-1] = X[0], 1 - y[0]  # unfittable: every network runs every epoch
        epochs = 10  # enough epochs that the networks' set-up (seeding, initialisation) does not dominate
        t = best(lambda X=X, y=y, d=d, batch=batch, M=M, loss=loss, epochs=epochs: train_ensemble(
            FCN(d, (40, 40)), X, y, None, n_networks=M, lr=0.01, batch_size=batch, loss=loss, max_epochs=epochs,
            progress=False), 1)
        rates[kind] = M * epochs * n_s * _train_flops_per_example(d, (40, 40)) / t
    split = boolean_split("0011", 32, seed=0)
    draws = 2**15 if quick else 2**17
    t = best(lambda: sample_prior(split.x_train, split.y_train, split.x_test, n_samples=draws, progress=False), 1)
    rates["prior"] = draws / t
    rates["scaled"] = rates["gemm_f32"] / REFERENCE_RATES["gemm_f32"]
    return rates


def _fmt(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def render(chapters: Mapping[str, Mapping[str, Mapping]], profiles: Iterable[str] | None = None,
           selected_profiles: Iterable[str] | None = None, *, rates: Mapping[str, float] | None = None) -> str:
    """The estimate table: for each chapter and profile, predicted time here (rates measured now, or ``rates``) and
    on the modelled GPU.

    ``chapters``: chapter name → profile name → resolved parameters (must include ``"default"`` for the chapters
    scaled from their default time); ``profiles``: all profile names in order; ``selected_profiles``: those to show
    (default: all)."""
    chapters = dict(chapters)
    names = list(profiles) if profiles is not None else sorted({p for c in chapters.values() for p in c})
    shown = [p for p in names if selected_profiles is None or p in set(selected_profiles)]
    rates = dict(rates) if rates is not None else calibrate()
    header = ["chapter", *(f"{p} here" for p in shown), *(f"{p} GPU" for p in shown)]
    rows: list[list[str]] = [header]
    totals_here = dict.fromkeys(shown, 0.0)
    totals_gpu = dict.fromkeys(shown, 0.0)
    for chapter, per_profile in chapters.items():
        cells_here, cells_gpu = [], []
        for p in shown:
            params = per_profile.get(p)
            works = None if params is None else estimate_work(chapter, params, per_profile.get("default"))
            if works is None:
                cells_here.append("no model")
                cells_gpu.append("no model")
                continue
            here, gpu = predict(works, rates)
            totals_here[p] += here
            totals_gpu[p] += gpu
            cells_here.append(_fmt(here))
            cells_gpu.append(_fmt(gpu))
        rows.append([chapter, *cells_here, *cells_gpu])
    rows.append(["total", *(_fmt(totals_here[p]) for p in shown), *(_fmt(totals_gpu[p]) for p in shown)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("here: rates measured just now on this machine — "
                 + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" if KINDS[k].unit == "FLOP" else f"{k} {v:,.0f} /s"
                             for k, v in rates.items() if k not in ("fixed", "scaled")))
    lines.append(f"GPU: a model, not a measurement — {GPU_MODEL['name']}, {GPU_MODEL['note']}.")
    lines.append("Epochs to fit are assumptions from measured runs " + str(EPOCHS_TO_FIT)
                 + "; chapters marked as scaled follow their measured default time.")
    return "\n".join(lines)
