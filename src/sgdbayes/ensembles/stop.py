"""When a training run stops, and which runs share a stopping callback: the stop rules of ``train_ensemble``.

Two rules, both checked once per epoch on the whole training set S after the epoch's last step:

``StopRule.clean()`` (the default)
    A network has *fitted* at the first epoch E₀ at which every example of S is on the right side of the loss's
    threshold (logit > 0 for cross-entropy and for MSE on ±1 targets; > 0.5 for MSE on 0/1 targets). It then trains
    exactly ``overtrain_epochs`` more epochs, fitting or not, and stops. The recorded function is its labelling of E
    by the same threshold. Every run is independent of every other.

``StopRule.keras(threshold=0.5, wait=1, shared_callback=True, runs_per_process=1500)``
    What the authors' code did (Mingard et al. 2020; github guillefix/nn-pacbayes, ``NN_train_simplified.py`` with
    ``utils.EarlyStoppingByAccuracy``), made explicit:

    1. *Fit test.* Keras' ``accuracy`` metric on a one-unit output is ``binary_accuracy``, which thresholds the
       output at 0.5; the model has no sigmoid, so the threshold applies to the raw logit z: an example of class 1
       counts as fitted iff z > ``threshold``, one of class 0 iff z ≤ ``threshold``. S is passed as Keras'
       validation set, so the test runs at each epoch end (``on_epoch_end``, ``logs['val_accuracy'] >= 1.0``).
    2. *Wait.* After the callback first sees a fit, at epoch e₀, it stops training at the first later epoch
       e ≥ e₀ + ``wait`` at which the fit test passes (``epochs_after_fit``: 1 by default, 64 in the
       "overtraining" runs). With ``wait = 0`` a run stops at its first fit.
    3. *Shared callback.* The callback object is made once per MPI process and never reset, so e₀ is the first-fit
       epoch of the first run of the process that ever fitted; every later run of that process stops at its first
       epoch e ≥ e₀ + ``wait`` at which it fits (epochs count from the start of each run). A later run that fits
       before e₀ + wait trains on; one that first fits after it stops at once.

    Each process ran ``runs_per_process`` runs one after the other: 600,000 runs over 400 processes in the
    authors' Boolean job script (``scripts/meta_scripts/meta_script_sgd_bayes_fcboolean``: ``--number_inits
    600000``, ``n_procs=400``; ``NN_train_simplified.py`` gives rank r the tasks ``number_inits // size``), i.e.
    1,500 runs per process (``KERAS_RUNS_PER_PROCESS``). ``shared_callback=False`` gives every run a fresh callback
    (rules 1–2 only). ``max_epochs`` is then Keras' ``epochs`` (the authors' ``MAX_TRAIN_EPOCHS`` = 3,000): the total
    number of epochs a run may train; a run still going at its last epoch ends there and counts iff it fits then
    (the authors keep a run iff its final training accuracy is 1.0, ``--ignore_non_fit``).

    The recorded function is ``logit > label_threshold`` on E, 0 by default (``model.predict(test) > 0``): so a
    counted run may not classify S correctly *by sign* (a class-0 example with 0 < z ≤ 0.5 passes the fit test);
    ``EnsembleResult.fits_by_sign`` reports which.

How batched training emulates independent processes (``process_layout``): global network index g belongs to process
``g // runs_per_process``; its runs, in index order, are the order in which that process trained them. The process's
*leader* is its first run that ever passes the fit test: run 0, or, if run 0 never fits within ``max_epochs`` (or
diverges), run 1, and so on, as the never-reset callback would have it. ``train_ensemble`` first trains the leader
candidates of all processes as one batch (each stops by rule 2 on its own e₀), then the remaining runs of every
process as one batch, each with its process's floor e₀ + wait. A network's trajectory depends only on its own seed,
so this order gives each network exactly the run it would have had in its process; a leader outside the networks
asked for (``index_offset`` inside a process) is trained too, to learn e₀, and not reported, so shards of one job
reproduce the single run.

Estimating the authors' numbers. A process's pooled counts are (1/R)·leader + (1 − 1/R)·followers, and leaders
alone behave like a fresh callback (top-1 ≈ 0.50 on target 0011… against ≈ 0.65 for followers). At the authors'
R = 1,500, 10⁴ runs hold only 7 draws of e₀, so a batched run at that R swings between seeds (top-1 0.56 and 0.68
were measured). The authors' expectation — 400 processes, leaders weighing 1/1,500 — is estimated better by many
short emulated processes counted on their followers only: ``runs_per_process=25`` (400 processes at 10⁴ runs) and
``EnsembleResult.function_counts(leaders=False)`` / ``top_mass(k, leaders=False)``. Measured with 10⁴ runs (target 7
on mask A, lr 0.01, batch 8, CE): followers' top-1 0.654 ± 0.008 and top-10 0.700 ± 0.007 against the file's 0.653
and 0.697; R = 5 and R = 100 agree within error; with ``wait=64``, 0.937 ± 0.004 against 0.939.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["StopRule", "STOP_RULES", "KERAS_RUNS_PER_PROCESS", "as_stop_rule", "process_layout"]

STOP_RULES = ("clean", "keras")
# runs per MPI process in the authors' Boolean jobs: --number_inits 600000 over n_procs=400 (see the module docstring)
KERAS_RUNS_PER_PROCESS = 1500


def _int_at_least(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class StopRule:
    """A stop rule for ``train_ensemble`` (see the module docstring); build it with ``StopRule.clean()`` or
    ``StopRule.keras(...)`` (``StopRule("keras")`` is the same as ``StopRule.keras()``).

    Fields: ``kind`` in ``STOP_RULES``; for ``"keras"`` (None → the authors' value): ``threshold`` (fit test: class
    1 iff logit > threshold; 0.5), ``wait`` (epochs after the first fit, ≥ 0; 1), ``shared_callback`` (one callback
    per emulated process; True), ``runs_per_process`` (≥ 1; ``KERAS_RUNS_PER_PROCESS``) and ``label_threshold``
    (the recorded function is logit > label_threshold on E; 0). The clean rule takes its threshold from the loss
    and no other field (all None).
    """

    kind: str = "clean"
    threshold: float | None = None
    wait: int | None = None
    shared_callback: bool | None = None
    runs_per_process: int | None = None
    label_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in STOP_RULES:
            raise ValueError(f"unknown stop rule {self.kind!r}; allowed: {', '.join(STOP_RULES)}")
        if self.kind == "clean":
            extra = sorted(k for k in ("threshold", "wait", "shared_callback", "runs_per_process", "label_threshold")
                           if getattr(self, k) is not None)
            if extra:
                raise ValueError(f"the clean stop rule takes no {extra} (its threshold comes from the loss; extra "
                                 "epochs are train_ensemble's overtrain_epochs); use StopRule.keras(...) for the "
                                 "authors' rule")
            return

        def fill(name, default, check):
            value = getattr(self, name)
            object.__setattr__(self, name, check(name, default if value is None else value))

        fill("threshold", 0.5, _finite)
        fill("label_threshold", 0.0, _finite)
        fill("wait", 1, lambda n, v: _int_at_least(n, v, 0))
        fill("runs_per_process", KERAS_RUNS_PER_PROCESS, lambda n, v: _int_at_least(n, v, 1))
        fill("shared_callback", True, _boolean)

    @classmethod
    def clean(cls) -> StopRule:
        """Stop at the first epoch whose end finds S fitted by the loss's threshold (then ``overtrain_epochs``)."""
        return cls("clean")

    @classmethod
    def keras(cls, threshold: float = 0.5, wait: int = 1, *, shared_callback: bool = True,
              runs_per_process: int = KERAS_RUNS_PER_PROCESS, label_threshold: float = 0.0) -> StopRule:
        """The authors' Keras behaviour (module docstring): fit test at logit ``threshold``, ``wait`` epochs after
        the first fit, and, with ``shared_callback``, the floor e₀ + wait shared by the ``runs_per_process`` runs of
        each emulated process."""
        return cls("keras", threshold=threshold, wait=wait, shared_callback=shared_callback,
                   runs_per_process=runs_per_process, label_threshold=label_threshold)

    @property
    def shares_floor(self) -> bool:
        """Whether runs of one process share the floor e₀ + wait (Keras rule with a shared callback)."""
        return self.kind == "keras" and self.shared_callback

    def describe(self) -> str:
        """One line for result configs and tables."""
        if self.kind == "clean":
            return "clean: stop when the loss's threshold fits S, then overtrain_epochs"
        e0 = (f"first fit of the process's leader, {self.runs_per_process} runs per process" if self.shared_callback
              else "the run's own first fit")
        return (f"keras: fit iff logit > {self.threshold:g} for class 1 (≤ for class 0); stop at the first fitting "
                f"epoch ≥ e0 + {self.wait} (e0: {e0}); function = logit > {self.label_threshold:g}")


def as_stop_rule(rule: Any) -> StopRule:
    """``None`` or ``"clean"`` → ``StopRule.clean()``; ``"keras"`` → ``StopRule.keras()`` (the authors' defaults);
    a ``StopRule`` as is; anything else is an error naming the allowed values."""
    if rule is None:
        return StopRule.clean()
    if isinstance(rule, StopRule):
        return rule
    if isinstance(rule, str) and rule.lower() in STOP_RULES:
        return StopRule.clean() if rule.lower() == "clean" else StopRule.keras()
    raise ValueError(f"unknown stop rule {rule!r}; allowed: {', '.join(map(repr, STOP_RULES))} or a "
                     "sgdbayes.ensembles.StopRule (StopRule.clean(), StopRule.keras(threshold, wait, ...))")


def process_layout(indices: Any, runs_per_process: int) -> tuple[np.ndarray, np.ndarray]:
    """The emulated process of each global network index and its place in that process's sequence of runs:
    ``(process, position)``, int64 arrays shaped like ``indices``, ``process = g // R``, ``position = g % R``."""
    R = _int_at_least("runs_per_process", runs_per_process, 1)
    g = np.asarray(indices, dtype=np.int64)
    if (g < 0).any():
        raise ValueError("network indices must be >= 0")
    return g // R, g % R
