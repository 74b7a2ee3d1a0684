"""The chapter's orchestration: its parameter spec against the notebook and the profiles, bad input refused before
work, the tables and tests it builds, and reproducibility of its experiment functions."""

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import sgdbayes.experiments.sgd_variational_inference as exp

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "sgd_variational_inference.py"


def _parameters(profile: str = "default") -> dict:
    text = NOTEBOOK.read_text()
    cell = text.split('# %% tags=["parameters"]\n', 1)[1].split("\n# %%", 1)[0]
    values: dict = {}
    exec(compile(cell, "parameters", "exec"), {}, values)  # noqa: S102 - the notebook's own literals
    if profile != "default":
        prof = yaml.safe_load((ROOT / "book" / "profiles.yml").read_text())["chapters"][exp.CHAPTER]
        values.update(prof.get(profile, {}))
    values["profile"] = profile
    return values


@pytest.mark.parametrize("profile", ["smoke", "default", "paper"])
def test_spec_covers_every_parameter_and_accepts_every_profile(profile):
    values = _parameters(profile)
    assert set(values) == set(exp.PARAMETERS.kinds)
    exp.check_parameters(values)


@pytest.mark.parametrize("change, message", [
    ({"temperature_configs": [[0.05, 10], [0.1, 10], [0.2, 10]]}, "same η/b"),
    ({"temperature_configs": [[0.05, 10], [0.1, 20], [0.2, 40]]}, "different η/b"),
    ({"temperature_configs": [[0.05, 10], [0.1, 20], [0.4, 2000]]}, "n_temperature"),
    ({"temperature_configs": [[0.05, 10], [-0.1, 20], [0.4, 20]]}, ">"),
    ({"temperature_configs": [[0.05, 10], [0.05, 10], [0.1, 20], [0.4, 20]]}, "repeat"),
    ({"replacement_batch": 1000}, "replacement_batch"),
    ({"convex_batch": 40}, "convex_batch"),
    ({"lr_spectra": 0.0}, "lr_spectra"),
    ({"n_spectrum": 3000}, "n_spectrum"),
    ({"trajectory_lr_schedule": [[100, 0.1], [50, 0.001]]}, "trajectory_lr_schedule"),
    ({"spectra_networks": ["small-allcnn-cifar100"]}, "CIFAR-100"),
    ({"max_lag": 5000}, "max_lag"),
    ({"epochs_lenet": 3}, "epochs_lenet"),
])
def test_bad_parameters_are_refused_with_a_message_naming_them(change, message):
    values = {**_parameters(), **change}
    with pytest.raises(ValueError, match=message):
        exp.check_parameters(values)


def test_notebook_holds_no_function_definitions():
    cells = re.split(r"^# %%(.*)$", NOTEBOOK.read_text(), flags=re.M)
    code = [body for marker, body in zip(cells[1::2], cells[2::2], strict=True) if "[markdown]" not in marker]
    tree = ast.parse("\n".join(code))
    defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda, ast.ClassDef))]
    assert not defs
    assert not re.search(r"^\s*(while)\b", "\n".join(code), re.M)


def _synthetic(shift_equal=0.0, shift_different=0.5):
    rng = np.random.default_rng(0)
    base = 1.0 + 0.1 * rng.standard_normal(12)
    rows = []
    for lr, b, off in [(0.05, 10, 0.0), (0.1, 20, shift_equal), (0.4, 20, shift_different)]:
        for s, v in enumerate(base + off + 0.002 * rng.standard_normal(12)):
            rows.append({"lr": lr, "batch_size": b, "ratio": lr / b, "seed": s, "loss": v})
    return pd.DataFrame(rows)


def test_equivalence_table_on_known_structure():
    t = exp.equivalence_table(_synthetic(), margin=0.05)
    assert list(t.expected) == ["equal", "different", "different"]
    assert list(t.verdict) == ["equivalent", "differ", "differ"]
    assert exp.equivalence_summary(t)["status"] == "reproduced"
    t = exp.equivalence_table(_synthetic(shift_equal=0.2), margin=0.05)  # equal ratio, 20% apart
    assert t.verdict.iloc[0] == "not shown equivalent"
    assert exp.equivalence_summary(t)["status"] == "partly"


def test_spectra_table_lists_the_cifar_rows_as_not_run_with_a_command():
    t = exp.spectra_table({})
    assert len(t) == 4
    assert t[t.data == "CIFAR-10"].iloc[0]["here: λ(D), mean ± sd"] == "not run: needs the download"
    assert "not run" in t[t.data == "CIFAR-100"].iloc[0]["here: λ(D), mean ± sd"]
    assert 'spectra_networks=["small-allcnn-cifar10"]' in exp.spectra_command(["small-allcnn-cifar10"])
    assert not t.isna().any().any()


def test_small_runs_are_reproducible_bit_for_bit():
    kw = dict(n=120, b=90, lr=0.5, pretrain_steps=20, steps=20, replicas=2, seed=3, device="cpu")
    a, b = exp.network_replacement(**kw), exp.network_replacement(**kw)
    for f in ("loss_with", "loss_without", "loss_full", "trace_start", "curve_with"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    kw = dict(source="subset", n_train=300, batch_size=32, epochs=30, burn_in=5, lr_schedule=[[5, 0.1], [99, 0.01]],
              replicas=2, max_lag=5, seed=1, device="cpu")
    a, b = exp.trajectory_experiment(**kw), exp.trajectory_experiment(**kw)
    for p in exp.PROCESSES:
        assert np.array_equal(a.spectrum[p], b.spectrum[p])
    assert a.d == 917 and a.frozen_weights == 16 + 16 * a.blank_pixels  # BN-fed biases, blank pixels' weights


def test_replacement_status_rule():
    from sgdbayes.noise.statistics import Estimate

    def est(v, lo, hi):
        return Estimate(value=v, se=0.0, lo=lo, hi=hi, level=0.95, n=10)

    pos = est(0.01, 0.005, 0.02)
    assert exp.replacement_status(est(0.26, 0.2, 0.3), 0.25, pos) == "reproduced"
    assert exp.replacement_status(est(0.5, 0.4, 0.6), 0.25, pos) == "partly"
    assert exp.replacement_status(est(0.26, 0.2, 0.3), 0.25, est(0.0, -0.01, 0.01)) == "not reproduced"
