"""Chapter 1, page II (Mingard et al. 2021): P_SGD(f|S) against P_B(f|S) on images and Ionosphere, the posterior
that matches each loss, and P_B against the critical sample ratio.

What the page calls, each a tested composition of the library, cached through :func:`sgdbayes.cache.cached` by the
notebook (training is also stored shard by shard by :func:`sgdbayes.distributed.run_sharded`):

- :func:`load_split`: S and E from the shipped MNIST subset, full MNIST / Fashion-MNIST / CIFAR-10 (downloaded;
  S = the *first* ``n_train`` training images and E the first ``n_test`` test images, as the authors' data script
  took them) or UCI Ionosphere (the authors' row order), as a :class:`sgdbayes.data.Split`.
- :func:`train_run`: ``n_networks`` FCNs or CNNs trained by :func:`sgdbayes.ensembles.train_ensemble` under a stop
  rule (the authors' Keras rule or the clean one), in seeded shards; optionally the critical sample ratio of the first
  networks of each shard (:func:`sgdbayes.complexity.ensemble_critical_sample_ratio`, the authors' search) → an
  :class:`ImageRun` holding every network's outcome (fitted, not fitted, diverged, counted, its function on E).
- :func:`kernel_matrix`: the NNGP kernel of the architecture over S then E (FCN or one-to-few-layer CNN).
- :func:`posteriors`: the Gaussians on E's latents of the four posteriors the page compares (:data:`POSTERIORS`).
- :func:`log_pb_values`: log P_B(f|S) of given labellings under one posterior (EP; failures counted, never dropped).
- :func:`posterior_samples`: labellings drawn from a posterior's Gaussian on E (exact for the regression posteriors).
- :func:`pairing_table`, :func:`csr_table`, :func:`panel`: the statistics the page shows.

Conventions: labels 0/1; a function is the bit string of E's labels; logs natural unless a name says ``log10``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from sgdbayes.functions import FunctionCounts, as_bits
from sgdbayes.params import Choice, Float, Int, List, Rule, Spec, Str

__all__ = [
    "AUTHORS_MNIST", "POSTERIORS", "PARAMETERS", "SOURCES", "ImageRun", "PBValues", "Panel",
    "csr_table", "kernel_matrix", "load_split", "log_pb_values", "make_model", "marginal_gap", "merge_results",
    "pairing_table", "panel", "prior_csr", "pb_tables", "union_bits", "runs_table", "posterior_table", "error_distributions", "posterior_samples", "posteriors", "run_summary", "train_run", "train_shard",
]

CHAPTER = "function_probability_images"

#: Data sources of :func:`load_split`. "subset": the 5,000 MNIST digits shipped with the library (offline).
SOURCES = ("subset", "mnist", "fashion-mnist", "cifar10", "ionosphere")

#: The posteriors on E compared on the page (:func:`posteriors`), with a short description.
POSTERIORS = {
    "zero_one": "0–1 likelihood on S (EP), labels = sign of the latent",
    "regression_pm1": "GP regression on S, targets ±1, noise 0.002, read at 0",
    "regression_01_authors": "GP regression on S, targets 0/1, read at 0 (the authors' code)",
    "regression_01_at_half": "GP regression on S, targets 0/1, read at 0.5",
}

#: The authors' MNIST headline (guillefix/nn-pacbayes, ``results/sgd_bayes_10000_784_2_32_sgd_mse_64__combined.txt``,
#: committed 2019-11-21): 95 distinct labellings of the first 100 MNIST test digits with their frequencies (top-1
#: 0.695834; the smallest frequency 9.62519e-6 = 1/103,894 runs); test error 0.0216 from the companion file
#: ``sgd_bayes_10000_784_2_32_sgd_mse_1_nn_training_results.txt`` (one extra epoch, not 64; the full test set).
AUTHORS_MNIST = {"n_distinct": 95, "top1": 0.696, "top10": 0.984, "test_error": 0.022, "n_runs": 103_894,
                 "n_train": 10_000, "n_test": 100, "hidden": [784, 784], "sigma_w": 1.0, "sigma_b": 0.0357,
                 "batch_size": 32, "lr": 0.01, "overtrain": 64}


# --------------------------------------------------------------------------------------------------------------------
# parameters of the page (issue 11: declared once, checked before any kernel starts)
# --------------------------------------------------------------------------------------------------------------------
def _divides(a: str, b: str) -> Rule:
    return Rule(lambda p: p[b] % p[a] == 0 or p[a] >= p[b],
                f"{a} must divide {b} (emulated Keras processes may not straddle shards)", (a, b))


def _fits_subset(prefix: str) -> Rule:
    def ok(p):
        src = p[f"{prefix}_source"]
        n = p[f"{prefix}_n_train"] + p[f"{prefix}_n_test"]
        return src != "subset" or n <= 5000
    return Rule(ok, f"{prefix}_n_train + {prefix}_n_test must be <= 5000 with the shipped MNIST subset",
                (f"{prefix}_source", f"{prefix}_n_train", f"{prefix}_n_test"))


PARAMETERS = Spec(
    profile=Choice("smoke", "default", "paper"),
    device=Choice("auto", "cpu", "cuda"),
    seed=Int(min=0),
    scheduler=Str(nonempty=True),
    # --- MNIST FCN at the authors' settings
    mnist_source=Choice("subset", "mnist"),
    mnist_n_train=Int(min=10),
    mnist_n_test=Int(min=2, max=1000),
    mnist_binarize=Choice("parity", "threshold"),
    mnist_hidden=List(Int(min=1), min_len=1, max_len=4),
    mnist_sigma_w=Float(gt=0),
    mnist_sigma_b=Float(min=0),
    mnist_lr=Float(gt=0),
    mnist_batch=Int(min=1),
    mnist_max_epochs=Int(min=1),
    mnist_overtrain=Int(min=0),
    mnist_networks=Int(min=2),
    mnist_clean_networks=Int(min=2),
    mnist_ce_networks=Int(min=2),
    mnist_shard=Int(min=1),
    mnist_runs_per_process=Int(min=2),
    noise_var=Float(gt=0),
    ep_full_max=Int(min=1),
    min_count=Int(min=1),
    error_samples=Int(min=100),
    csr_networks=Int(min=0),
    csr_inputs=Int(min=1),
    csr_radii=List(Float(gt=0), min_len=1),
    # --- CNN on MNIST (CNN-GP kernel)
    cnn_source=Choice("subset", "mnist", "fashion-mnist", "cifar10"),
    cnn_n_train=Int(min=10),
    cnn_n_test=Int(min=2, max=1000),
    cnn_downsample=Choice(1, 2, 4),
    cnn_channels=List(Int(min=1), min_len=1, max_len=3),
    cnn_kernel_size=Int(min=1, max=9),
    cnn_padding=Choice("valid", "same"),
    cnn_lr=Float(gt=0),
    cnn_batch=Int(min=1),
    cnn_networks=Int(min=2),
    cnn_shard=Int(min=1),
    # --- Ionosphere FCN
    iono_n_train=Int(min=10, max=340),
    iono_n_test=Int(min=2, max=341),
    iono_hidden=List(Int(min=1), min_len=1, max_len=4),
    iono_sigma_b=Float(min=0),
    iono_lr=Float(gt=0),
    iono_batch=Int(min=1),
    iono_networks=Int(min=2),
    iono_shard=Int(min=1),
    panel_runs_per_process=Int(min=2),
    # --- runs that need downloads (not in the default build)
    extra_datasets=List(Choice("fashion-mnist", "cifar10"), unique=True),
    extra_n_train=Int(min=10),
    extra_networks=Int(min=2),
    relations=[
        _fits_subset("mnist"),
        _fits_subset("cnn"),
        Rule(lambda p: p["mnist_batch"] <= p["mnist_n_train"], "mnist_batch must be <= mnist_n_train",
             ("mnist_batch", "mnist_n_train")),
        Rule(lambda p: p["cnn_batch"] <= p["cnn_n_train"], "cnn_batch must be <= cnn_n_train",
             ("cnn_batch", "cnn_n_train")),
        Rule(lambda p: p["iono_n_train"] + p["iono_n_test"] <= 351, "iono_n_train + iono_n_test must be <= 351",
             ("iono_n_train", "iono_n_test")),
        Rule(lambda p: p["csr_inputs"] <= p["mnist_n_train"], "csr_inputs must be <= mnist_n_train (CSR is "
             "computed on train images)", ("csr_inputs", "mnist_n_train")),
        Rule(lambda p: p["csr_networks"] <= min(p["mnist_shard"], p["mnist_networks"]),
             "csr_networks (per shard) must be <= mnist_shard and <= mnist_networks",
             ("csr_networks", "mnist_shard", "mnist_networks")),
        _divides("mnist_runs_per_process", "mnist_shard"),
        _divides("panel_runs_per_process", "cnn_shard"),
        _divides("panel_runs_per_process", "iono_shard"),
    ],
)


# --------------------------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------------------------
def load_split(source: str, n_train: int, n_test: int, *, seed: int = 0, binarize: str = "parity",
               flatten: bool = True, downsample: int = 1, train_order: str = "first"):
    """S (``n_train``) and E (``n_test``) from ``source`` (one of :data:`SOURCES`).

    ``"subset"``: the shipped 5,000 MNIST digits in a seeded order, S its first ``n_train``, E the next ``n_test``
    (held out). ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``: the official splits (downloaded on first use); E the
    first ``n_test`` test images, S the first ``n_train`` training images (``train_order="first"``, as the authors'
    ``generate_inputs_sample_tmp.py``) or a seeded draw (``"random"``). ``"ionosphere"``: the vendored UCI file in
    the authors' row order (seed 708), S the first ``n_train`` rows, E the next ``n_test``; label g = 1 (the
    authors' coding is not known). ``binarize``: ``"parity"`` (even digit → 1, what the authors' MNIST data script
    did) or ``"threshold"`` (label ≥ 5 → 1); ignored for Ionosphere. Pixels are in [0, 1]. Returns a
    :class:`sgdbayes.data.Split` (CPU tensors; labels 0/1).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; allowed: {', '.join(SOURCES)}")
    if binarize not in ("parity", "threshold"):
        raise ValueError(f"binarize must be 'parity' or 'threshold', got {binarize!r}")
    if train_order not in ("first", "random"):
        raise ValueError(f"train_order must be 'first' or 'random', got {train_order!r}")
    # keep the digits, then binarise here: the library's "parity" rule labels odd digits 1, the authors' even ones
    rule = False
    if source == "ionosphere":
        from sgdbayes.data.ionosphere import ionosphere_split

        return ionosphere_split(int(n_train), int(n_test), order="authors")
    if source == "subset":
        from sgdbayes.data import load_mnist_subset

        sp = load_mnist_subset(int(n_train), int(n_test), seed=seed, binarize=rule, flatten=flatten,
                               downsample=downsample)
    else:
        from sgdbayes.data import image_arrays
        from sgdbayes.data.mnist import make_split

        x_tr, y_tr, x_te, y_te = image_arrays(source)
        if n_train > x_tr.shape[0] or n_test > x_te.shape[0]:
            raise ValueError(f"{source} has {x_tr.shape[0]} training and {x_te.shape[0]} test images; asked for "
                             f"|S| = {n_train}, |E| = {n_test}")
        tr = (np.arange(n_train) if train_order == "first"
              else np.random.default_rng(seed).permutation(x_tr.shape[0])[:n_train])
        te = np.arange(n_test)
        sp = make_split(x_tr[tr], y_tr[tr], x_te[te], y_te[te], train_index=tr, test_index=te, name=source,
                        binarize=rule, flatten=flatten, downsample=downsample, device="cpu")
    return replace(sp, y_train=_binary(sp.y_train, binarize), y_test=_binary(sp.y_test, binarize), n_classes=2,
                   name=f"{sp.name} ({binarize})")


def _binary(digits: torch.Tensor, binarize: str) -> torch.Tensor:
    """0/1 labels (int64) from class indices 0..9: ``"parity"`` even → 1 (the authors' ``data_binariser``:
    ``i % 2 == 0``), ``"threshold"`` ≥ 5 → 1."""
    return (digits % 2 == 0).long() if binarize == "parity" else (digits >= 5).long()


# --------------------------------------------------------------------------------------------------------------------
# P_SGD: training runs
# --------------------------------------------------------------------------------------------------------------------
def make_model(arch: Mapping, in_shape: Sequence[int]):
    """``{"kind": "fcn", "hidden": [...], "sigma_w", "sigma_b"}`` or ``{"kind": "cnn", "channels": [...],
    "kernel_size", "padding", "sigma_w", "sigma_b"}`` → the ensemble model for inputs of shape ``in_shape``."""
    from sgdbayes.ensembles import CNN, FCN

    kind = arch.get("kind")
    if kind == "fcn":
        if len(in_shape) != 1:
            raise ValueError(f"an FCN needs flat inputs [n, d], got input shape {tuple(in_shape)}")
        return FCN(int(in_shape[0]), tuple(int(h) for h in arch["hidden"]), sigma_w=float(arch["sigma_w"]),
                   sigma_b=float(arch["sigma_b"]))
    if kind == "cnn":
        if len(in_shape) != 3:
            raise ValueError(f"a CNN needs images [n, C, H, W], got input shape {tuple(in_shape)}")
        return CNN(tuple(int(s) for s in in_shape), tuple(int(c) for c in arch["channels"]),
                   kernel_size=int(arch["kernel_size"]), padding=str(arch["padding"]),
                   sigma_w=float(arch["sigma_w"]), sigma_b=float(arch["sigma_b"]))
    raise ValueError(f"arch['kind'] must be 'fcn' or 'cnn', got {kind!r}")


def _stop_rule(stop: Mapping):
    from sgdbayes.ensembles import StopRule

    if stop.get("kind") == "clean":
        return StopRule.clean()
    if stop.get("kind") == "keras":
        return StopRule.keras(threshold=float(stop.get("threshold", 0.5)), wait=int(stop.get("wait", 1)),
                              shared_callback=bool(stop.get("shared_callback", True)),
                              runs_per_process=int(stop.get("runs_per_process", 1500)),
                              label_threshold=float(stop.get("label_threshold", 0.0)))
    raise ValueError(f"stop['kind'] must be 'clean' or 'keras', got {stop.get('kind')!r}")


_RESULT_ARRAYS = ("status", "epochs_to_fit", "steps_to_fit", "epochs_trained", "train_accuracy", "train_loss",
                  "fits_by_sign", "leader", "stop_floor")


def merge_results(parts: Sequence, *, process_stride: int = 0):
    """Concatenate :class:`sgdbayes.ensembles.EnsembleResult` s (parameters dropped). Part k's emulated process ids
    are shifted by ``k · process_stride`` and its network indices by the networks before it, so processes of
    different parts (shards with their own seeds) stay distinct; −1 (independent runs) is kept."""
    from sgdbayes.ensembles import EnsembleResult

    parts = list(parts)
    if not parts:
        raise ValueError("merge_results needs at least one EnsembleResult")
    cat = {k: np.concatenate([np.asarray(getattr(p, k)) for p in parts]) for k in _RESULT_ARRAYS}
    procs, index, offset = [], [], 0
    for k, p in enumerate(parts):
        pr = np.asarray(p.process)
        procs.append(np.where(pr >= 0, pr + k * process_stride, -1))
        index.append(np.arange(p.n_networks) + offset)
        offset += p.n_networks
    first = parts[0]
    return EnsembleResult(
        status=cat["status"], epochs_to_fit=cat["epochs_to_fit"], steps_to_fit=cat["steps_to_fit"],
        epochs_trained=cat["epochs_trained"], train_accuracy=cat["train_accuracy"], train_loss=cat["train_loss"],
        test_labels=torch.cat([p.test_labels for p in parts]), network_index=np.concatenate(index),
        config=dict(first.config), params=None, wall_time_s=float(sum(p.wall_time_s for p in parts)),
        fits_by_sign=cat["fits_by_sign"], process=np.concatenate(procs), leader=cat["leader"],
        stop_floor=cat["stop_floor"], stop_rule=first.stop_rule)


@dataclass
class ImageRun:
    """Every network of a training run: ``result`` (a merged :class:`sgdbayes.ensembles.EnsembleResult`, one row
    per network, parameters dropped), ``csr`` ``[len(csr_radii), n_networks]`` (the critical sample ratio of the
    networks it was computed for, NaN for the others) and the stop rule's description.

    P_SGD is estimated from the *counted* networks (fitted by the stop rule and fitting S by its fit test at the end);
    under the Keras rule with a shared callback, from the followers of each emulated process only
    (:meth:`sgdbayes.ensembles.EnsembleResult.function_counts` with ``leaders=False``), the mixture over the
    process's first-fit epoch e₀ that the authors' processes of many runs give."""

    result: object
    csr: np.ndarray
    csr_radii: list
    label_threshold: float
    shared_callback: bool

    @property
    def n_networks(self) -> int:
        return self.result.n_networks

    @property
    def kept(self) -> np.ndarray:
        """bool [n]: the networks whose functions make P_SGD."""
        keep = self.result.counted
        if self.shared_callback:
            keep = keep & ~self.result.leader
        return keep

    def counts(self) -> FunctionCounts:
        return self.result.function_counts(require_final_fit=True, leaders=not self.shared_callback)

    def top_mass(self, k: int) -> tuple[float, float]:
        """Mass of the k most frequent functions and its standard error (clustered by emulated process)."""
        return self.result.top_mass(k, leaders=not self.shared_callback)

    def bits(self) -> np.ndarray:
        """bool [n_kept, |E|]: the functions of the kept networks, in network order."""
        return self.result.test_labels[torch.from_numpy(self.kept)].numpy()

    def errors(self, y_test) -> np.ndarray:
        """int [n_kept]: test errors of each kept network's function."""
        y = as_bits(np.asarray(y_test), self.result.test_labels.shape[1], name="y_test")[0]
        return (self.bits() != y[None, :]).sum(1)


def train_shard(seed: int, *, x_train, y_train, x_test, arch: dict, n_networks: int, optimizer: str = "sgd",
                lr: float = 0.01, loss: str = "mse", mse_targets: str = "01", batch_size: int = 32,
                max_epochs: int = 3000, overtrain_epochs: int = 0, stop: dict | None = None,
                csr_networks: int = 0, csr_radii: Sequence[float] = (0.03,), csr_inputs: int = 0,
                csr_step: float = 0.5, csr_max_iter: int = 20, device: str = "auto"):
    """One shard (module level, for :func:`sgdbayes.distributed.run_sharded`): ``n_networks`` networks of ``arch``
    trained with :func:`sgdbayes.ensembles.train_ensemble` seeded by ``seed`` → ``(EnsembleResult, csr)``.

    ``stop``: ``{"kind": "clean"}`` or ``{"kind": "keras", "threshold", "wait", "shared_callback",
    "runs_per_process", "label_threshold"}``. With ``csr_networks = k > 0`` the first k networks are trained with
    their parameters kept (networks depend only on (seed, index), and the Keras rule's process leaders are retrained
    when needed, so the split changes no network) and their critical sample ratio is computed on the first
    ``csr_inputs`` training inputs (0: all) at each radius of ``csr_radii`` with the authors' search (step
    ``csr_step``, ``csr_max_iter`` moves), for the classifier ``logit > label threshold``.
    """
    from sgdbayes.complexity import ensemble_critical_sample_ratio
    from sgdbayes.device import get_device
    from sgdbayes.ensembles import train_ensemble

    dev = get_device(device)
    x_train = np.ascontiguousarray(x_train, dtype=np.float32)
    x_test = np.ascontiguousarray(x_test, dtype=np.float32)
    model = make_model(arch, x_train.shape[1:])
    rule = _stop_rule(stop or {"kind": "clean"})
    X, Xe = torch.from_numpy(x_train).to(dev), torch.from_numpy(x_test).to(dev)
    y = torch.as_tensor(np.asarray(y_train, dtype=np.int64)).to(dev)
    kw = dict(seed=int(seed), optimizer=optimizer, lr=lr, loss=loss, mse_targets=mse_targets,
              batch_size=batch_size, max_epochs=max_epochs, overtrain_epochs=overtrain_epochs, stop_rule=rule,
              device=dev, progress=False)
    k = min(int(csr_networks), int(n_networks))
    radii = [float(r) for r in csr_radii]
    csr = np.full((len(radii), int(n_networks)), np.nan)
    parts = []
    if k:
        first = train_ensemble(model, X, y, Xe, n_networks=k, index_offset=0, return_params=True, **kw)
        label_thr = first.config["label_threshold"]
        params = [p.to(dev) for p in first.params]
        params[-1] = params[-1] - label_thr          # logit − c > 0  ⟺  logit > c: the recorded classifier
        xs = X[: (csr_inputs or X.shape[0])]
        for i, r in enumerate(radii):
            csr[i, :k] = ensemble_critical_sample_ratio(model, params, xs, radius=r, step=csr_step,
                                                        max_iter=csr_max_iter).cpu().numpy()
        first.params = None
        parts.append(first)
    if n_networks > k:
        parts.append(train_ensemble(model, X, y, Xe, n_networks=int(n_networks) - k, index_offset=k, **kw))
    res = parts[0] if len(parts) == 1 else merge_results(parts)
    res.network_index = np.arange(int(n_networks))
    return res, csr


def _merge_shards(shards: list, per: int, runs_per_process: int) -> tuple:
    stride = math.ceil(per / runs_per_process) if runs_per_process else 0
    return merge_results([s[0] for s in shards], process_stride=stride), np.concatenate([s[1] for s in shards], 1)


def train_run(x_train, y_train, x_test, *, arch: dict, n_networks: int, seed: int = 0, shard_size: int = 1000,
              optimizer: str = "sgd", lr: float = 0.01, loss: str = "mse", mse_targets: str = "01",
              batch_size: int = 32, max_epochs: int = 3000, overtrain_epochs: int = 0, stop: dict | None = None,
              csr_networks: int = 0, csr_radii: Sequence[float] = (0.03,), csr_inputs: int = 0,
              scheduler: str = "sync", device: str = "auto", name: str = "function_probability_images.train"
              ) -> ImageRun:
    """P_SGD(f|S): ``n_networks`` (rounded up to whole shards of ``shard_size``) networks trained by
    :func:`train_shard` in seeded, resumable shards (:func:`sgdbayes.distributed.run_sharded`) → an
    :class:`ImageRun`. Under the Keras rule with a shared callback each shard holds whole emulated processes
    (``runs_per_process`` must divide ``shard_size``). ``csr_networks`` is per shard."""
    from sgdbayes.distributed import run_sharded

    stop = dict(stop or {"kind": "clean"})
    rule = _stop_rule(stop)
    if isinstance(n_networks, bool) or not isinstance(n_networks, int) or n_networks < 1:
        raise ValueError(f"n_networks must be an int >= 1, got {n_networks!r}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be an int >= 1, got {shard_size!r}")
    per = min(shard_size, n_networks)
    n_shards = math.ceil(n_networks / per)
    R = rule.runs_per_process if rule.shares_floor else 0
    if R and n_shards > 1 and per % R:
        raise ValueError(f"runs_per_process = {R} must divide shard_size = {per} so that no emulated process "
                         "straddles two shards (shards have their own seeds)")
    x_train = np.ascontiguousarray(x_train, dtype=np.float32)
    x_test = np.ascontiguousarray(x_test, dtype=np.float32)
    y = as_bits(np.asarray(y_train), x_train.shape[0], name="y_train")[0].astype(np.int64)
    make_model(arch, x_train.shape[1:])                      # bad architecture: an error before any training
    params = dict(x_train=x_train, y_train=y, x_test=x_test, arch=dict(arch), n_networks=per,
                  optimizer=optimizer, lr=float(lr), loss=loss, mse_targets=mse_targets, batch_size=int(batch_size),
                  max_epochs=int(max_epochs), overtrain_epochs=int(overtrain_epochs), stop=stop,
                  csr_networks=int(csr_networks), csr_radii=[float(r) for r in csr_radii],
                  csr_inputs=int(csr_inputs), device=device)
    shards = run_sharded(train_shard, n_shards=n_shards, seed=seed, params=params, name=name,
                         merge=list, scheduler=scheduler, progress=False)
    result, csr = _merge_shards(shards, per, R)
    return ImageRun(result=result, csr=csr, csr_radii=[float(r) for r in csr_radii],
                    label_threshold=float(result.config["label_threshold"]), shared_callback=rule.shares_floor)


def _not_fitting_as_read(run: ImageRun) -> float:
    """Counted networks whose recorded function (logit > label threshold) misclassifies S: under the Keras rule with
    the fit test at 0.5 and the label read at 0 these exist (a class-0 example with 0 < logit ≤ 0.5 passes the fit
    test); when fit test and reading share the threshold there are none by construction. NaN when the stored data
    cannot tell (a reading threshold other than 0 and the fit test's)."""
    r = run.result
    if run.label_threshold == 0.0:
        return float((run.kept & ~r.fits_by_sign).sum())
    if float(r.config["threshold"]) == run.label_threshold:
        return 0.0
    return math.nan


def run_summary(run: ImageRun, y_test, *, k: Sequence[int] = (1, 10)) -> dict:
    """One row for the runs table: networks, each outcome, counted, counted but not fitting S by sign, mean epochs,
    distinct functions, top-k mass ± standard error, mean test error ± standard error (over kept networks)."""
    r = run.result
    c = r.counts()
    kept = run.kept
    row = {"networks": r.n_networks, "fitted": c["fitted"], "never fitted": c["not_fitted"],
           "diverged": c["diverged"], "lost the fit": int((r.fitted & ~r.counted).sum()),
           "counted": int(kept.sum()), "counted, not fitting S as read": _not_fitting_as_read(run),
           "mean epochs trained": float(r.epochs_trained[kept].mean()) if kept.any() else math.nan}
    counts = run.counts()
    row["distinct functions"] = counts.n_distinct
    for kk in k:
        m, se = run.top_mass(kk)
        row[f"top-{kk} mass"], row[f"top-{kk} se"] = m, se
    err = run.errors(y_test) / r.test_labels.shape[1] if kept.any() else np.zeros(0)
    row["mean test error"] = float(err.mean()) if err.size else math.nan
    row["test error se"] = float(err.std(ddof=1) / math.sqrt(err.size)) if err.size > 1 else math.nan
    return row


# --------------------------------------------------------------------------------------------------------------------
# P_B: kernels, posteriors, log P_B
# --------------------------------------------------------------------------------------------------------------------
def kernel_matrix(x_train, x_test, *, arch: Mapping) -> np.ndarray:
    """The NNGP kernel of ``arch`` (the prior of its initialisation) over ``[x_train; x_test]``, float64
    ``[n_S + n_E]²``: :func:`sgdbayes.kernels.nngp_fcn` (depth = number of hidden layers) or
    :func:`sgdbayes.kernels.nngp_cnn` (depth = number of conv layers; exact for one, O(1/channels) bias beyond)."""
    from sgdbayes.kernels import nngp_cnn, nngp_fcn

    x = torch.from_numpy(np.concatenate([np.asarray(x_train), np.asarray(x_test)]).astype(np.float64))
    if arch.get("kind") == "fcn":
        K = nngp_fcn(x.reshape(x.shape[0], -1), depth=len(arch["hidden"]), sigma_w=float(arch["sigma_w"]),
                     sigma_b=float(arch["sigma_b"]))
    elif arch.get("kind") == "cnn":
        if x.ndim != 4:
            raise ValueError(f"a CNN kernel needs images [n, C, H, W], got shape {tuple(x.shape)}")
        K = nngp_cnn(x, depth=len(arch["channels"]), sigma_w=float(arch["sigma_w"]), sigma_b=float(arch["sigma_b"]),
                     kernel_size=int(arch["kernel_size"]), padding=str(arch["padding"]))
    else:
        raise ValueError(f"arch['kind'] must be 'fcn' or 'cnn', got {arch.get('kind')!r}")
    return K.numpy()


def _posterior(K: torch.Tensor, y_pm: torch.Tensor, name: str, noise_var: float):
    from sgdbayes.gp import regression_posterior, zero_one_posterior

    if name == "zero_one":
        return zero_one_posterior(K, y_pm)
    if name == "regression_pm1":
        return regression_posterior(K, y_pm, noise_var=noise_var, targets="pm1")
    if name == "regression_01_authors":
        return regression_posterior(K, y_pm, noise_var=noise_var, targets="01", threshold=0.0)
    if name == "regression_01_at_half":
        return regression_posterior(K, y_pm, noise_var=noise_var, targets="01", threshold=0.5)
    raise ValueError(f"unknown posterior {name!r}; allowed: {', '.join(POSTERIORS)}")


def posteriors(kernel, y_train, *, names: Sequence[str] = tuple(POSTERIORS), noise_var: float = 0.002) -> dict:
    """The Gaussians ``N(μ, Σ)`` on E's latents (:class:`sgdbayes.gp.LatentGaussian`) of the posteriors ``names``
    (keys of :data:`POSTERIORS`) for the kernel over S then E and the train labels (0/1)."""
    K = torch.as_tensor(np.asarray(kernel, dtype=np.float64))
    y = torch.as_tensor(2.0 * np.asarray(y_train, dtype=np.float64) - 1.0)
    return {n: _posterior(K, y, n, float(noise_var)) for n in names}


@dataclass
class PBValues:
    """``log_pb [m]`` (natural log; NaN where EP failed, counted in ``n_failed``) of the labellings ``bits [m, |E|]``
    under ``posterior`` computed by ``method``."""

    bits: np.ndarray
    log_pb: np.ndarray
    posterior: str
    method: str
    n_failed: int

    def lookup_bits(self, bits) -> np.ndarray:
        """log P_B of each labelling ``bits [m, |E|]`` (NaN when not in this table)."""
        table = {np.packbits(b).tobytes(): v for b, v in zip(self.bits, self.log_pb, strict=True)}
        return np.array([table.get(np.packbits(b).tobytes(), np.nan) for b in np.asarray(bits, dtype=bool)],
                        dtype=np.float64)

    def lookup(self, functions: FunctionCounts) -> np.ndarray:
        """log P_B of each row of ``functions`` (NaN when not in this table)."""
        return self.lookup_bits(functions.bits()) if functions.n_distinct else np.zeros(0)


def log_pb_values(kernel, y_train, bits, *, posterior: str, method: str = "two_stage", noise_var: float = 0.002,
                  chunk: int = 64) -> PBValues:
    """log P_B(f|S) of each labelling ``bits [m, |E|]`` (0/1) under ``posterior`` (a key of :data:`POSTERIORS`).

    ``"zero_one"``: :func:`sgdbayes.gp.log_pb` with the step likelihood, ``method="full"`` (log Z_EP(S ∪ (E, f)) −
    log Z_EP(S)) or ``"two_stage"`` (S's sites fixed); the regression posteriors: ``method="mse_regression"`` (exact
    regression on S, then EP on E). Chunks whose EP does not converge are redone one labelling at a time; a labelling
    that still fails gets NaN and is counted in ``n_failed``.
    """
    from sgdbayes.gp import EPConvergenceError, log_pb

    if posterior not in POSTERIORS:
        raise ValueError(f"unknown posterior {posterior!r}; allowed: {', '.join(POSTERIORS)}")
    K = torch.as_tensor(np.asarray(kernel, dtype=np.float64))
    y = torch.as_tensor(2.0 * np.asarray(y_train, dtype=np.float64) - 1.0)
    n_e = K.shape[0] - y.shape[0]
    b = as_bits(np.asarray(bits), n_e, name="bits") if np.asarray(bits).size else np.zeros((0, n_e), dtype=bool)
    if posterior == "zero_one":
        if method not in ("full", "two_stage"):
            raise ValueError(f"the 0–1 posterior takes method 'full' or 'two_stage', got {method!r}")
        kw = {"method": method}
    else:
        method = "mse_regression"
        kw = {"method": method, "noise_var": float(noise_var),
              "targets": "pm1" if posterior == "regression_pm1" else "01",
              "threshold": 0.5 if posterior == "regression_01_at_half" else 0.0}
    f_all = torch.from_numpy(np.where(b, 1.0, -1.0))
    out = np.full(b.shape[0], np.nan)
    for a in range(0, b.shape[0], chunk):
        f = f_all[a:a + chunk]
        try:
            out[a:a + f.shape[0]] = log_pb(K, y, f, **kw).numpy()
        except EPConvergenceError:
            for i in range(f.shape[0]):
                try:
                    out[a + i] = float(log_pb(K, y, f[i:i + 1], **kw)[0])
                except EPConvergenceError:
                    pass
    return PBValues(bits=b, log_pb=out, posterior=posterior, method=method, n_failed=int(np.isnan(out).sum()))


def posterior_samples(post, n_samples: int, *, seed: int = 0) -> FunctionCounts:
    """Labellings of E drawn from a posterior's Gaussian on the latents (``f_j = 1`` iff ``g_j > threshold``): exact
    samples of the regression posteriors; of EP's Gaussian approximation for the 0–1 posterior."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}")
    mean, cov = post.mean.double(), post.cov.double()
    n = mean.shape[0]
    L = torch.linalg.cholesky(cov + 1e-10 * float(cov.diagonal().mean()) * torch.eye(n, dtype=cov.dtype))
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n_samples, n, generator=g, dtype=torch.float64)
    latents = mean[None, :] + z @ L.T
    return FunctionCounts.from_bits((latents > float(post.threshold)).numpy(), n)


def marginal_gap(functions: FunctionCounts, post) -> float:
    """Mean over E of |P_SGD(f_j = 1) − P_B(f_j = 1)|: how far SGD's per-digit label frequencies sit from the
    posterior's marginals."""
    return float(np.abs(functions.marginals() - post.p_one().numpy()).mean())


# --------------------------------------------------------------------------------------------------------------------
# statistics for the page
# --------------------------------------------------------------------------------------------------------------------
def _log10(x):
    return np.asarray(x, dtype=np.float64) / math.log(10)


def union_bits(runs: Sequence[ImageRun], *, top: int | None = None) -> np.ndarray:
    """bool ``[m, |E|]``: the distinct functions of the runs' kept networks (each run's most frequent first, then
    the next run's new ones); with ``top``, only each run's ``top`` most frequent."""
    seen, rows = set(), []
    for run in runs:
        c = run.counts()
        for b in c.bits(np.arange(min(top, c.n_distinct)) if top is not None else None):
            key = np.packbits(b).tobytes()
            if key not in seen:
                seen.add(key)
                rows.append(b)
    n_e = runs[0].result.test_labels.shape[1] if runs else 0
    return np.array(rows, dtype=bool).reshape(-1, n_e)


def pb_tables(kernel, y_train, bits, *, full_bits, noise_var: float = 0.002) -> dict:
    """log P_B of the labellings under every posterior of :data:`POSTERIORS`: ``"zero_one"`` by the full EP ratio
    for ``full_bits`` (the expensive one: O((|S|+|E|)³) per labelling), ``"zero_one_two_stage"`` for all ``bits``,
    and each regression posterior for all ``bits`` → ``{name: PBValues}``."""
    out = {"zero_one": log_pb_values(kernel, y_train, full_bits, posterior="zero_one", method="full"),
           "zero_one_two_stage": log_pb_values(kernel, y_train, bits, posterior="zero_one", method="two_stage")}
    for name in POSTERIORS:
        if name != "zero_one":
            out[name] = log_pb_values(kernel, y_train, bits, posterior=name, noise_var=noise_var)
    return out


def pairing_table(runs: Mapping[str, ImageRun], tables: Mapping[str, PBValues], posts: Mapping, y_test, *,
                  min_count: int = 2):
    """One row per (training run, posterior of :data:`POSTERIORS`): how well the posterior describes the run's P_SGD.

    ``tables[posterior]``: log P_B of (at least) the runs' functions; a function without a value (e.g. beyond the
    full-ratio EP's cap) is left out, and "P_SGD mass evaluated" says how much of P_SGD the row covers. Columns:
    distinct functions; log₁₀ P_SGD and log₁₀ P_B of the run's most frequent function; the P_SGD-weighted median of
    log₁₀(P_SGD/P_B) over the evaluated functions; the share of the evaluated P_SGD mass on functions within a factor
    10 of P_B; the Pearson correlation of the logs over functions seen ≥ ``min_count`` times (NaN with fewer than 3);
    mean |P_SGD(f_j=1) − P_B(f_j=1)| over E; Σ_j entropy of the posterior's marginals; EP failures.
    """
    import pandas as pd

    from sgdbayes.experiments.function_probability import headline_statistics

    rows = []
    for rname, run in runs.items():
        c = run.counts()
        p = c.probabilities()
        for pname in POSTERIORS:
            if pname not in tables:
                continue
            pv, post = tables[pname], posts[pname]
            lp = pv.lookup(c)
            fin = np.isfinite(lp)
            ratio = np.log10(p[fin]) - _log10(lp[fin])
            mass = float(p[fin].sum())
            if fin.any():
                order = np.argsort(ratio)
                cum = np.cumsum(p[fin][order]) / mass
                median = float(ratio[order][np.searchsorted(cum, 0.5)])
                within = float(p[fin][np.abs(ratio) <= 1].sum() / mass)
            else:
                median = within = math.nan
            stats = headline_statistics(c, lp, y_test, min_count=min_count)
            rows.append({
                "networks": rname, "posterior": pname, "distinct functions": c.n_distinct,
                "P_SGD mass evaluated": mass, "log10 P_SGD(top)": float(np.log10(p[0])),
                "log10 P_B(top)": float(_log10(lp[0])), "median log10 P_SGD/P_B": median,
                "mass within 10×": within, "corr(log P_SGD, log P_B)": stats["corr_log"],
                "functions in corr": stats["n_compared"], "mean |marginal gap|": marginal_gap(c, post),
                "Σ entropy (nats)": post.total_entropy(), "EP failures": pv.n_failed,
            })
    return pd.DataFrame(rows)


def prior_csr(x, *, arch: Mapping, n_networks: int, radii: Sequence[float], seed: int = 0,
              label_threshold: float = 0.0) -> np.ndarray:
    """Critical sample ratio of ``n_networks`` networks of ``arch`` drawn from the prior (untrained), on inputs
    ``x [n, *in_shape]``, with the authors' search at each radius → float64 ``[len(radii), n_networks]``; the label
    is ``logit > label_threshold``."""
    from sgdbayes.complexity import ensemble_critical_sample_ratio
    from sgdbayes.seed import spawn_seeds

    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    model = make_model(arch, tuple(x.shape[1:]))
    params = model.init(spawn_seeds(seed, int(n_networks)))
    params[-1] = params[-1] - float(label_threshold)
    return np.stack([ensemble_critical_sample_ratio(model, params, x, radius=float(r)).numpy() for r in radii])


def csr_table(run: ImageRun, values: PBValues):
    """Per counted network with a CSR: its function's log₁₀ P_B (from ``values``), its test errors are not needed
    here; returns ``(log10_pb [n], csr [n_radii, n], spearman [n_radii], p_values [n_radii])``."""
    from scipy.stats import spearmanr

    keep = run.kept & np.isfinite(run.csr[0])
    bits = run.result.test_labels[torch.from_numpy(keep)].numpy()
    lp = values.lookup_bits(bits)
    csr = run.csr[:, keep]
    rho, pv = [], []
    for row in csr:
        ok = np.isfinite(lp)
        if ok.sum() >= 3 and np.ptp(row[ok]) > 0 and np.ptp(lp[ok]) > 0:
            r = spearmanr(row[ok], lp[ok])
            rho.append(float(r.statistic))
            pv.append(float(r.pvalue))
        else:
            rho.append(math.nan)
            pv.append(math.nan)
    return _log10(lp), csr, np.array(rho), np.array(pv)


@dataclass
class Panel:
    """One of the paper's other panels (CNN on MNIST, FCN on Ionosphere, ...): the run, the functions' log P_B under
    the 0–1 posterior (EP full ratio for the functions seen ≥ ``min_count`` times, at most ``ep_full_max``, the
    most frequent first; two-stage for all), and P_B's error distribution from posterior samples."""

    name: str
    run: ImageRun
    y_test: np.ndarray
    full: PBValues
    two_stage: PBValues
    pb_errors: np.ndarray
    sgd_errors: np.ndarray
    n_train: int
    n_test: int
    summary: dict = field(default_factory=dict)


def panel(name: str, source: str, n_train: int, n_test: int, *, arch: dict, n_networks: int, seed: int = 0,
          shard_size: int = 1000, binarize: str = "parity", downsample: int = 1, loss: str = "ce", lr: float = 0.01,
          batch_size: int = 32, max_epochs: int = 3000, stop: dict | None = None, min_count: int = 2,
          ep_full_max: int = 32, error_samples: int = 10_000, scheduler: str = "sync", device: str = "auto") -> Panel:
    """Train ``n_networks`` of ``arch`` on ``source`` (:func:`load_split`), and compare their P_SGD with the 0–1
    posterior of the architecture's NNGP: log P_B of the functions, and the test-error distributions."""
    from sgdbayes.experiments.function_probability import error_distribution

    flatten = arch.get("kind") == "fcn"
    sp = load_split(source, n_train, n_test, seed=seed, binarize=binarize, flatten=flatten, downsample=downsample)
    run = train_run(sp.x_train, sp.y_train, sp.x_test, arch=arch, n_networks=n_networks, seed=seed,
                    shard_size=shard_size, lr=lr, loss=loss, batch_size=batch_size, max_epochs=max_epochs, stop=stop,
                    scheduler=scheduler, device=device, name=f"function_probability_images.{name}")
    K = kernel_matrix(sp.x_train, sp.x_test, arch=arch)
    counts = run.counts()
    sel = np.flatnonzero(counts.counts >= min_count)[:ep_full_max]
    full = log_pb_values(K, sp.y_train, counts.bits(sel), posterior="zero_one", method="full")
    two = log_pb_values(K, sp.y_train, counts.bits(), posterior="zero_one", method="two_stage")
    post = posteriors(K, sp.y_train, names=["zero_one"])["zero_one"]
    samples = posterior_samples(post, error_samples, seed=seed)
    return Panel(name=name, run=run, y_test=sp.y_test.numpy(), full=full, two_stage=two,
                 pb_errors=error_distribution(samples, sp.y_test), sgd_errors=error_distribution(counts, sp.y_test),
                 n_train=sp.n_train, n_test=sp.n_test, summary=run_summary(run, sp.y_test))


def runs_table(runs: Mapping[str, ImageRun], y_test):
    """:func:`run_summary` of each run, one row per run (index: the run's label)."""
    import pandas as pd

    return pd.DataFrame({name: run_summary(run, y_test) for name, run in runs.items()}).T


def posterior_table(posts: Mapping, y_test):
    """Per posterior: Σ_j entropy of the marginals (nats), expected test error of a labelling drawn from it, test
    error of its majority labelling, log₁₀ P_B of the majority labelling (EP on E) — one row per posterior."""
    import pandas as pd

    rows = {}
    for name, post in posts.items():
        rows[name] = {"Σ_j entropy (nats)": post.total_entropy(), "expected test error": post.expected_error(y_test),
                      "majority labelling's test error": post.majority_error(y_test),
                      "log10 P_B(majority labelling)": float(post.log_prob(post.majority())) / math.log(10)}
    return pd.DataFrame(rows).T


def error_distributions(runs: Mapping[str, ImageRun], posts: Mapping, y_test, *, n_samples: int = 10_000,
                        seed: int = 0) -> dict:
    """Distributions of the number of test errors, ``{label: probabilities [|E| + 1]}``: one per run (P_SGD), one
    per posterior (labellings sampled from its Gaussian on E, :func:`posterior_samples`)."""
    from sgdbayes.experiments.function_probability import error_distribution

    out = {f"P_SGD, {name}": error_distribution(run.counts(), y_test) for name, run in runs.items()}
    for name, post in posts.items():
        out[f"P_B, {name}"] = error_distribution(posterior_samples(post, n_samples, seed=seed), y_test)
    return out
