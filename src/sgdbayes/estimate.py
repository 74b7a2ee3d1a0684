"""What a chapter will cost before it runs: predicted time per chapter and profile, here and on a GPU.

Model. A chapter's computation is a list of :class:`Work` items, each an amount of one *kind* of work (training FLOPs
of small-network ensembles on the native or the torch path, prior-network draws, float32 / float64 dense FLOPs,
seconds of a reference machine, fixed seconds). Its predicted time on this machine is Σ amount / rate(kind), with
the rates measured on the spot by :func:`calibrate` (a few seconds of short, repeated measurements, the best of each
kept, so a busy spell on a shared machine does not inflate them). On a GPU the time is Σ FLOPs(kind) / (peak ×
efficiency(kind)) + seconds, with the peak and the per-kind efficiencies *stated assumptions* (``GPU_MODEL``: H200,
float32 dense ≈ 60 TFLOP/s; small-network ensembles reach a few percent of it, large GEMMs most of it), not
measurements.

Per chapter, ``ESTIMATORS[chapter](params, defaults) -> list[Work]`` maps the chapter's resolved parameters to work.
Ensembles follow the computation: networks × mean epochs × training FLOPs per epoch, the mean epochs of each
(optimiser, learning rate, batch, stop rule, |S|) setting taken from ``MEAN_EPOCHS`` — ``EnsembleResult``
measurements of that very setting (``benchmarks/epochs_table.py``), not guesses; a setting missing from the table is
scaled from its nearest measured neighbour by the learning rate (SGD's steps to fit ∝ 1/lr). Prior sampling is draws;
the Gaussian-process parts (EP, GP sampling, elliptical slice chains) and the chapters whose computations are not
modelled one by one (``SCALED``) are seconds measured on the reference machine, scaled by their size parameters and
by this machine's speed. A chapter, or a chapter version, whose parameters the model does not know gets
"no model" in the table — never an error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Work", "KINDS", "GPU_MODEL", "MEAN_EPOCHS", "SCALED", "ESTIMATORS", "REFERENCE_RATES", "NoModel",
           "calibrate", "estimate_work", "mean_epochs", "predict", "render"]


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
    "sgd_native": Kind("FLOP", 0.02, "training FLOPs of plain-SGD ensembles of small FCNs, native kernel "
                                     "(calibrated on 7→40→40→1, batch 8)"),
    "sgd_native_wide": Kind("FLOP", 0.15, "training FLOPs of plain-SGD ensembles of 784-input FCNs, native kernel "
                                          "(calibrated on 784→40→40→1, batch 32)"),
    "sgd_torch": Kind("FLOP", 0.02, "training FLOPs of ensembles on the torch path (adaptive optimisers, momentum, "
                                    "CNNs, wide nets; calibrated on 7→40→40→1 with Adam, batch 8)"),
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


class NoModel(KeyError):
    """The chapter's parameters are not the ones the model knows (another version of the chapter)."""


# Mean epochs a run trains (EnsembleResult.epochs_trained.mean()), measured by benchmarks/epochs_table.py on the
# chapter's Boolean problem (target 0011, 7→40→40→1, σ_w = σ_b = 1, cross-entropy, 200 networks per plain-SGD
# setting, 50 per other optimiser; 3,000-epoch cap) and on the MNIST setting (784→40→40→1, shipped digits).
# Keys: (optimizer, lr, batch, rule, wait or overtrain epochs, |S|); ("mnist", |S|, lr, batch, loss, rule, extra).
MEAN_EPOCHS: dict[tuple, float] = {
    ('sgd', 0.1, 8, 'clean', 0, 32): 8.2,
    ('sgd', 0.01, 8, 'clean', 0, 32): 73.7,
    ('sgd', 0.01, 8, 'keras', 1, 32): 112.2,
    ('sgd', 0.01, 8, 'keras', 64, 32): 158.6,
    ('sgd', 0.1, 8, 'clean', 64, 32): 72.2,
    ('sgd', 0.01, 8, 'keras', 1, 64): 51.0,
    ('sgd', 0.01, 8, 'clean', 0, 64): 29.7,
    ('sgd', 0.1, 8, 'clean', 0, 64): 4.6,
    ('sgd', 0.01, 32, 'keras', 1, 32): 449.2,
    ('sgd', 0.01, 32, 'clean', 0, 32): 295.2,
    ('adam', 0.001, 8, 'keras', 1, 32): 41.6,
    ('adam', 0.001, 32, 'keras', 1, 32): 117.4,
    ('adam', 0.01, 8, 'clean', 0, 32): 4.6,
    ('adagrad', 0.01, 8, 'keras', 1, 32): 20.0,
    ('adagrad', 0.01, 32, 'keras', 1, 32): 38.5,
    ('rmsprop', 0.001, 8, 'keras', 1, 32): 18.3,
    ('rmsprop', 0.001, 32, 'keras', 1, 32): 36.4,
    ('rmsprop', 0.01, 8, 'clean', 0, 32): 2.3,
    ('adadelta', 1.0, 8, 'keras', 1, 32): 13.5,
    ('adadelta', 1.0, 32, 'keras', 1, 32): 30.1,
    ('sgd', 0.03, 2, 'clean', 0, 32): 6.6,
    ('sgd', 0.3, 32, 'clean', 0, 32): 12.5,
    ('sgd', 1.0, 8, 'clean', 0, 32): 66.1,
    ('mnist', 1000, 0.01, 32, 'mse', 'keras', 1): 138.2,
    ('mnist', 1000, 0.01, 32, 'mse', 'clean', 0): 65.6,
    ('mnist', 1000, 0.01, 32, 'ce', 'clean', 0): 142.4,
    ('mnist', 400, 0.05, 32, 'mse', 'clean', 0): 19.3,
    ('sgd', 0.1, 32, 'clean', 0, 32): 30.4,
    ('adam', 0.01, 32, 'clean', 0, 32): 11.9,
    ('adam', 0.001, 8, 'clean', 0, 32): 28.4,
    ('adam', 0.001, 32, 'clean', 0, 32): 80.7,
    ('adagrad', 0.01, 8, 'clean', 0, 32): 10.6,
    ('adagrad', 0.01, 32, 'clean', 0, 32): 20.5,
    ('rmsprop', 0.01, 32, 'clean', 0, 32): 4.9,
    ('rmsprop', 0.001, 8, 'clean', 0, 32): 10.2,
    ('rmsprop', 0.001, 32, 'clean', 0, 32): 19.8,
    ('adadelta', 1.0, 8, 'clean', 0, 32): 9.8,
    ('adadelta', 1.0, 32, 'clean', 0, 32): 21.8,
}

# Chapters not modelled step by step: (seconds of their default profile measured on the reference machine, the size
# parameters their cost scales with). The estimate scales the measured time by Π param/default over those present.
SCALED: dict[str, tuple[float, tuple[str, ...]]] = {
    "sgd_variational_inference": (50.6, ("n_train",)),
    "constant_sgd": (74.1, ("n_chains", "n_steps")),
    "polyak_averaging": (36.1, ("ou_chains", "ou_TS")),
    "report": (3.1, ()),
}
FIXED_PER_CHAPTER = 10.0  # kernel start and imports, seconds

# Rates of the reference machine (2 cores, otherwise idle), measured by calibrate(quick=False) minutes after the
# default-profile build whose chapter times SCALED and the tests use (clean clone, 2026-11-30; tests/test_estimate.py).
REFERENCE_RATES = {"gemm_f32": 316e9, "gemm_f64": 131e9, "sgd_native": 58.1e9, "sgd_native_wide": 78.6e9,
                   "sgd_torch": 1.53e9, "prior": 6.85e5, "scaled": 1.0, "fixed": 1.0}


def _train_flops_per_example(d: int, hidden: Iterable[int]) -> float:
    """Forward + backward FLOPs of one training visit of one example (first layer: weight gradient only)."""
    widths = [d, *hidden, 1]
    first = 2 * widths[0] * widths[1]
    rest = sum(2 * a * b for a, b in zip(widths[1:-1], widths[2:], strict=True))
    return 2 * first + 3 * rest


def _batch_exponent(opt: str, rule: str) -> float:
    """Exponent a in epochs ∝ batch^a for ``opt`` under ``rule``, from the settings measured at two batch sizes with
    the same learning rate (mean over them); 1 (constant steps to fit, SGD's law) when none are."""
    logs = []
    for k, v in MEAN_EPOCHS.items():
        if k[0] != opt or k[3] != rule:
            continue
        for k2, v2 in MEAN_EPOCHS.items():
            if k2[0] == opt and k2[1] == k[1] and k2[3:] == k[3:] and k2[2] > k[2]:
                logs.append(math.log(v2 / v) / math.log(k2[2] / k[2]))
    return sum(logs) / len(logs) if logs else 1.0


def mean_epochs(key: tuple) -> float:
    """Mean epochs of the setting ``key`` (see ``MEAN_EPOCHS``): the measured value, else that of the nearest measured
    setting with the same optimiser and stop rule — same batch if measured, then nearest in learning rate, then same
    |S|, then nearest extra (wait / overtraining) epochs — scaled: plain SGD's epochs by the learning-rate ratio (steps
    to fit ∝ 1/lr), every optimiser's by (batch / measured batch)^a with a fitted on the settings measured at two
    batches (plain SGD: a ≈ 1, i.e. steps to fit independent of the batch), and the difference in extra epochs
    added. ``NoModel`` when nothing comparable was measured."""
    if key in MEAN_EPOCHS:
        return MEAN_EPOCHS[key]
    mnist = key[0] == "mnist"
    # positions of (lr, batch, |S|, extra) in the key, and the fields that must match
    lr_i, b_i, n_i, extra_i = (2, 3, 1, 6) if mnist else (1, 2, 5, 4)
    fixed = (lambda k: (k[0], k[4], k[5])) if mnist else (lambda k: (k[0], k[3]))
    same = [k for k in MEAN_EPOCHS if fixed(k) == fixed(key)]
    if not same:
        raise NoModel(f"no measured mean epochs near {key}")
    lr, batch = key[lr_i], key[b_i]
    ref = min(same, key=lambda k: (k[b_i] != batch, abs(math.log(k[lr_i] / lr)), k[n_i] != key[n_i],
                                   abs(k[extra_i] - key[extra_i]), abs(math.log(k[b_i] / batch))))
    scale = ref[lr_i] / lr if key[0] in ("sgd", "mnist") else 1.0
    if ref[b_i] != batch:
        scale *= (batch / ref[b_i]) ** (1.0 if mnist else _batch_exponent(key[0], key[3]))
    return MEAN_EPOCHS[ref] * scale + max(0, key[extra_i] - ref[extra_i])


class _Params:
    """The resolved parameters; a missing name means a chapter version the model does not know (``NoModel``)."""

    def __init__(self, p: Mapping):
        self.p = p

    def __getitem__(self, name: str):
        if name not in self.p:
            raise NoModel(name)
        return self.p[name]

    def get(self, name: str, default=None):
        return self.p.get(name, default)


def _ensemble(networks: float, key: tuple, d: int, hidden, n_train: int, *, label: str,
              optimizer: str = "sgd") -> Work:
    flops = networks * mean_epochs(key) * _train_flops_per_example(d, hidden) * n_train
    if max(hidden) > 256:
        kind = "gemm_f32"  # wide layers: the torch path's products are large GEMMs (an assumption: ~the GEMM roof)
    elif optimizer != "sgd":
        kind = "sgd_torch"
    elif d > 64:
        kind = "sgd_native_wide" if max(hidden) <= 128 else "sgd_torch"
    else:
        kind = "sgd_native" if max(hidden) <= 256 else "sgd_torch"
    return Work(kind, flops, label)


def _function_probability(p: _Params) -> list[Work]:
    """Chapter 1 as one page (Boolean, optimisers, overtraining, |S| = 64, MNIST). The Gaussian-process parts are
    reference seconds from the measured default run (EP 152 s on 693 functions, NNGP sampling 6 s per 10⁷ draws,
    slice chains 19 s and 13 s, MNIST EP 221 s on 5,921 functions, |S| = 64 EP ~45 s), scaled by their sizes."""
    hidden, n_s = p["bool_hidden"], p["bool_n_train"]
    main_key = (p["bool_optimizer"], p["bool_lr"], p["bool_batch"], "clean", 0, n_s)
    out = [_ensemble(p["bool_networks"], main_key, 7, hidden, n_s, label="Boolean P_SGD ensemble"),
           _ensemble(p["overtrain_networks"], main_key[:4] + (p["overtrain_epochs"], n_s), 7, hidden, n_s,
                     label="overtrained"),
           _ensemble(p["large_networks"], main_key[:5] + (p["large_n_train"],), 7, hidden, p["large_n_train"],
                     label="|S| = 64")]
    for name, lr in zip(p["opt_names"], p["opt_lrs"], strict=True):
        for b in p["opt_batches"]:
            out.append(_ensemble(p["opt_networks"], (name, lr, b, "clean", 0, n_s), 7, hidden, n_s,
                                 label=f"{name}, batch {b}", optimizer=name))
    out.append(Work("prior", p["bool_prior_samples"], "P_B by direct prior sampling"))
    # GP parts: reference seconds of the measured default run, scaled by their sizes (EP by the networks whose
    # functions it evaluates: the distinct functions seen twice grow with them)
    out.append(Work("scaled", 152.0 * p["bool_networks"] / 1e4, "EP on the functions SGD found"))
    out.append(Work("scaled", 45.0 * p["large_networks"] / 1e4, "EP, |S| = 64"))
    out.append(Work("scaled", 6.0 * p["bool_gp_samples"] / 1e7, "NNGP samples"))
    out.append(Work("scaled", 19.0 * p["bool_ess_chains"] * p["bool_ess_steps"] / (512 * 400), "slice chains"))
    n_m = p["mnist_n_train"]
    out.append(_ensemble(p["mnist_networks"], ("mnist", n_m, p["mnist_lr"], p["mnist_batch"], p["mnist_loss"],
                                               "clean", p["mnist_overtrain"]), 784, p["mnist_hidden"], n_m,
                         label="MNIST P_SGD ensemble"))
    size = (n_m + p["mnist_n_test"]) / 500
    out.append(Work("scaled", 221.0 * p["mnist_networks"] / 1e4 * size**2, "MNIST EP (two-stage)"))
    out.append(Work("scaled", 13.0 * p["mnist_ess_chains"] * p["mnist_ess_steps"] / (128 * 400) * size**2,
                    "MNIST slice chains"))
    out.append(Work("fixed", 40.0 + FIXED_PER_CHAPTER, "statistics, figures, imports, kernel"))
    return out


def _function_probability_boolean(p: _Params) -> list[Work]:
    """Chapter 1's Boolean page (the authors' set-up): the stop-rule study (the Keras and the clean headline runs,
    six other cells and the Keras runs read at logit 0.5, overtraining under both rules), the seven targets, random
    train sets, optimisers × batches × rules, |S| = 64 — each per stop rule — then prior sampling and the GP parts.
    The mean epochs are those measured on target 0011 (``MEAN_EPOCHS``) whatever the page's target."""
    hidden, lr, B = p["bool_hidden"], p["bool_lr"], p["bool_batch"]
    rules = {"keras": p["keras_wait"], "clean": 0}
    keras, clean = (("sgd", lr, B, rule, extra, 32) for rule, extra in rules.items())
    k_over = p["overtrain_epochs"]
    out = [_ensemble(p["main_networks"], keras, 7, hidden, 32, label="headline, Keras rule"),
           _ensemble(p.get("clean_networks", p["main_networks"]), clean, 7, hidden, 32, label="headline, clean rule"),
           _ensemble(7 * p["cell_networks"], keras, 7, hidden, 32, label="other stop-rule cells"),
           _ensemble(2 * p["overtrain_networks"], keras[:4] + (k_over, 32), 7, hidden, 32,
                     label="overtrained, Keras rule (shared and fresh callback)"),
           _ensemble(p["overtrain_networks"], clean[:4] + (k_over, 32), 7, hidden, 32,
                     label="overtrained, clean rule")]
    for rule, key in (("keras", keras), ("clean", clean)):
        out.append(_ensemble(len(p["targets"]) * p["target_networks"], key, 7, hidden, 32,
                             label=f"seven targets, {rule}"))
        out.append(_ensemble(p["train_sets"] * p["train_set_networks"], key, 7, hidden, 32,
                             label=f"random train sets, {rule}"))
        out.append(_ensemble(p["large_networks"], key[:5] + (64,), 7, hidden, 64, label=f"|S| = 64, {rule}"))
    for name, olr in zip(p["opt_names"], p["opt_lrs"], strict=True):
        for b in p["opt_batches"]:
            for rule in p["opt_rules"]:
                out.append(_ensemble(p["opt_networks"], (name, olr, b, rule, rules.get(rule, 0), 32), 7, hidden, 32,
                                     label=f"{name}, batch {b}, {rule}", optimizer=name))
    out.append(Work("prior", p["prior_samples"] + len(p["targets"]) * p["target_prior_samples"], "prior sampling"))
    # GP parts and the rest: reference-machine seconds from the cell times of one measured default run (2-core
    # machine, load ~2, 95 s in all; this machine's GEMM rate then 107 GFLOP/s, i.e. 0.5 of the reference's): P_B
    # methods (NNGP draws + slice chains) 3.6 s, EP within pb_study ~5.6 s, imports and figures ~5 s
    out.append(Work("scaled", 2.5 * p["gp_samples"] / 1e7, "NNGP samples"))
    out.append(Work("scaled", 3.2 * p["ess_chains"] * p["ess_steps"] / (512 * 400), "slice chains"))
    out.append(Work("scaled", 2.8 * (p["main_networks"] + p.get("clean_networks", p["main_networks"])) / 1.5e4,
                    "EP on the functions SGD found"))
    out.append(Work("fixed", 5.0 + FIXED_PER_CHAPTER, "figures, imports, kernel"))
    return out


def _function_probability_any(p: _Params) -> list[Work]:
    try:
        return _function_probability_boolean(p)
    except NoModel:
        return _function_probability(p)


def _function_probability_images(p: _Params) -> list[Work]:
    """Chapter 1's image page: MNIST FCNs under the Keras and the clean rule, a CNN, Ionosphere."""
    n_m, hidden = p["mnist_n_train"], p["mnist_hidden"]
    lr, B, extra = p["mnist_lr"], p["mnist_batch"], p["mnist_overtrain"]
    out = [_ensemble(p["mnist_networks"], ("mnist", n_m, lr, B, "mse", "keras", extra), 784, hidden, n_m,
                     label="MNIST, Keras rule"),
           _ensemble(p["mnist_clean_networks"], ("mnist", n_m, lr, B, "mse", "clean", extra), 784, hidden, n_m,
                     label="MNIST, clean rule (MSE)"),
           _ensemble(p["mnist_ce_networks"], ("mnist", n_m, lr, B, "ce", "clean", extra), 784, hidden, n_m,
                     label="MNIST, clean rule (CE)")]
    # The rest: seconds of the cells of the reference build (clean clone, idle machine, 2026-11-30), scaled by
    # their sizes — the GP parts by n³, the CNN and Ionosphere panels (training, their own EP, error samples) by
    # networks × |S| — crude, stated assumptions; the GPU model gives these no speed-up.
    n_gp = n_m + p["mnist_n_test"]
    out.append(Work("scaled", 14.3 * (n_gp / 1100) ** 3 * (1 + p["ep_full_max"]) / 9, "MNIST NNGP kernel and EP"))
    out.append(Work("scaled", 2.2 * p["csr_networks"] / 32 * p["csr_inputs"] / 200, "critical sample ratios"))
    # CNN panel: torch-path work, its FLOPs taken as the panel's measured 17.5 s in the reference build × the
    # torch-path rate calibrated beside it (1.53 GFLOP/s), scaled by networks × |S| × the first layer's
    # multiply-adds per example
    side = 28 // p["cnn_downsample"]
    k = p["cnn_kernel_size"]
    out_side = side if p.get("cnn_padding", "valid") == "same" else side - k + 1
    conv = p["cnn_channels"][0] * k * k * out_side**2 / (4 * 9 * 12**2)
    out.append(Work("sgd_torch", 17.5 * 1.53e9 * p["cnn_networks"] / 192 * p["cnn_n_train"] / 200 * conv,
                    "CNN panel"))
    n_i = p["iono_n_train"]
    out.append(_ensemble(p["iono_networks"], ("mnist", 1000, p["iono_lr"], p["iono_batch"], "mse", "keras", 1), 34,
                         p["iono_hidden"], n_i, label="Ionosphere training (MNIST setting's epochs)"))
    out.append(Work("scaled", 7.4 * p["iono_networks"] / 512 * n_i / 200, "Ionosphere panel (GP, errors)"))
    out.append(Work("fixed", FIXED_PER_CHAPTER, "data, figures, imports, kernel"))
    return out


def _synthesis(p: _Params) -> list[Work]:
    """The synthesis chapter: P_SGD over a grid of learning rates × batches × stop rules, prior samples, HMC,
    constant SGD at one solution, iterate averaging."""
    hidden, n_s = p["hidden"], p["bool_n_train"]
    out = []
    for lr in p["grid_lrs"]:
        for b in p["grid_batches"]:
            for rule in p["stop_rules"]:
                key = ("sgd", lr, b, rule, 1 if rule == "keras" else 0, n_s)
                steps_cap = p["grid_max_steps"] / math.ceil(n_s / b)
                w = _ensemble(p["grid_networks"], key, 7, hidden, n_s, label=f"lr {lr}, batch {b}, {rule}")
                cap = min(p["grid_max_epochs"], steps_cap) / mean_epochs(key)
                out.append(Work(w.kind, w.amount * min(1.0, cap), w.label))
    out.append(Work("prior", p["prior_samples"], "prior sampling"))
    # HMC and the local chains are many tiny steps whose cost the FLOP count does not capture: factors that bring the
    # FLOP model to the reference build's measured cells (HMC 17.7 s, where FLOPs / the torch rate give 141 s; the
    # local chains 23.3 s for 7.3 s; with REFERENCE_RATES)
    hmc_grads = p["mcmc_chains"] * (p["mcmc_warmup"] + p["mcmc_draws"]) * p["mcmc_leapfrog"]
    out.append(Work("sgd_torch", 0.126 * hmc_grads * _train_flops_per_example(7, hidden) * n_s, "HMC"))
    out.append(Work("sgd_torch", 3.17 * p["local_chains"] * p["local_steps"] * _train_flops_per_example(7, hidden)
                    * p["local_batch"], "constant SGD at one solution"))
    # the MNIST local picture: seconds of the reference build (constant-SGD chains dominate), scaled by chains × steps
    if "mnist_local_chains" in p.p:
        out.append(Work("scaled", 20.0 * p["mnist_local_chains"] * p["local_steps"] / (32 * 2000),
                        "MNIST local picture"))
    out.append(_ensemble(p["avg_networks"], ("sgd", p["avg_lr"], p["avg_batch"], "clean", p["avg_epochs"], n_s), 7,
                         hidden, n_s, label="averaging"))
    out.append(Work("fixed", 10.0 + FIXED_PER_CHAPTER, "figures, imports, kernel"))
    return out


def _scaled(chapter: str) -> Callable[[_Params, Mapping | None], list[Work]]:
    ref_seconds, knobs = SCALED[chapter]

    def estimate(p: _Params, defaults: Mapping | None = None) -> list[Work]:
        ratio = 1.0
        for k in knobs:
            if defaults is not None and k in p.p and k in defaults and defaults[k]:
                ratio *= float(p[k]) / float(defaults[k])
        fixed = min(FIXED_PER_CHAPTER, ref_seconds / 2)
        body = (ref_seconds - fixed) * ratio
        return [Work("scaled", body, f"scaled from {ref_seconds:.0f} s measured (default)"
                     f"{', by ' + ' × '.join(knobs) if knobs else ''}"),
                Work("fixed", fixed, "imports, kernel")]

    estimate.scaled = True  # type: ignore[attr-defined]
    return estimate


ESTIMATORS: dict[str, Callable[..., list[Work]]] = {
    "function_probability": _function_probability_any,
    "function_probability_images": _function_probability_images,
    "synthesis": _synthesis,
    **{c: _scaled(c) for c in SCALED},
}


def estimate_work(chapter: str, params: Mapping, defaults: Mapping | None = None) -> list[Work] | None:
    """The work of ``chapter`` with resolved ``params`` (``defaults``: the default profile's, for scaled chapters);
    None for a chapter without a model, or one whose parameters the model does not know."""
    fn = ESTIMATORS.get(chapter)
    if fn is None:
        return None
    try:
        return fn(_Params(params), defaults) if getattr(fn, "scaled", False) else fn(_Params(params))
    except (NoModel, TypeError, ValueError, ZeroDivisionError):
        return None


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


def _best(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up: a busy spell lengthens some calls, never shortens."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def calibrate(quick: bool = True) -> dict[str, float]:
    """Throughputs of this machine, measured now: units per second for every kind in KINDS. Each is the best of
    several short runs (~0.02–0.1 s each; ~2 s in all with ``quick``, ~5 s without), so a busy spell on a shared
    machine lengthens some runs but not the best one. The torch-path ensembles are measured on one torch thread, as
    the chapters run them (torch's intra-op threads lose on these tiny tensors)."""
    import torch

    from sgdbayes.data.boolean import boolean_split
    from sgdbayes.ensembles import FCN, train_ensemble
    from sgdbayes.prior_sampling import sample_prior

    repeats = 4 if quick else 9
    rates: dict[str, float] = {"fixed": 1.0}
    for kind, dtype, n in (("gemm_f32", torch.float32, 1024), ("gemm_f64", torch.float64, 768)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        rates[kind] = 2 * n**3 / _best(lambda a=a, b=b: a @ b, repeats + 2)
    g = torch.Generator().manual_seed(0)
    saved = torch.get_num_threads()
    try:
        for kind, d, n_s, batch, M, opt, loss, epochs in (("sgd_native", 7, 32, 8, 256, "sgd", "ce", 8),
                                                          ("sgd_native_wide", 784, 256, 32, 32, "sgd", "mse", 2),
                                                          ("sgd_torch", 7, 32, 8, 64, "adam", "ce", 4)):
            X = torch.rand(n_s, d, generator=g)
            y = (torch.rand(n_s, generator=g) < 0.5).long()
            X[-1], y[-1] = X[0], 1 - y[0]  # unfittable: every network runs every epoch
            if kind == "sgd_torch":
                torch.set_num_threads(1)

            def run(X=X, y=y, d=d, batch=batch, M=M, loss=loss, opt=opt, epochs=epochs):
                train_ensemble(FCN(d, (40, 40)), X, y, None, n_networks=M, optimizer=opt, lr=0.01, batch_size=batch,
                               loss=loss, max_epochs=epochs, progress=False)

            rates[kind] = M * epochs * n_s * _train_flops_per_example(d, (40, 40)) / _best(run, repeats)
    finally:
        torch.set_num_threads(saved)
    split = boolean_split("0011", 32, seed=0)
    draws = 2**14
    rates["prior"] = draws / _best(lambda: sample_prior(split.x_train, split.y_train, split.x_test, n_samples=draws,
                                                        progress=False), repeats)
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
    on the modelled GPU; "no model" where the model does not know the chapter or its parameters.

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
    missing = dict.fromkeys(shown, False)
    for chapter, per_profile in chapters.items():
        cells_here, cells_gpu = [], []
        for p in shown:
            params = per_profile.get(p)
            works = None if params is None else estimate_work(chapter, params, per_profile.get("default"))
            if works is None:
                cells_here.append("no model")
                cells_gpu.append("no model")
                missing[p] = True
                continue
            here, gpu = predict(works, rates)
            totals_here[p] += here
            totals_gpu[p] += gpu
            cells_here.append(_fmt(here))
            cells_gpu.append(_fmt(gpu))
        rows.append([chapter, *cells_here, *cells_gpu])
    rows.append(["total" + (" (modelled chapters)" if any(missing.values()) else ""),
                 *(_fmt(totals_here[p]) for p in shown), *(_fmt(totals_gpu[p]) for p in shown)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("here: rates measured just now on this machine — "
                 + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" if KINDS[k].unit == "FLOP" else f"{k} {v:,.0f} /s"
                             for k, v in rates.items() if k not in ("fixed", "scaled")))
    lines.append(f"GPU: a model, not a measurement — {GPU_MODEL['name']}, {GPU_MODEL['note']}.")
    lines.append("Training epochs per run come from measured ensembles of each setting (estimate.MEAN_EPOCHS); "
                 "chapters marked as scaled follow their measured default time.")
    return "\n".join(lines)
