"""The synthesis chapter's statistics and steps, against hand computations and limiting cases."""

import math
from pathlib import Path

import numpy as np
import pytest

from sgdbayes.data import boolean_split
from sgdbayes.experiments import synthesis as syn
from sgdbayes.experiments.function_probability import TrainingRun
from sgdbayes.functions import FunctionCounts


def _counts(rows_counts):
    bits = np.array([r for r, c in rows_counts for _ in range(c)], dtype=bool)
    return FunctionCounts.from_bits(bits)


def test_agreement_against_hand_computation():
    fc = _counts([([1, 1, 0], 60), ([1, 0, 0], 30), ([0, 0, 0], 8), ([0, 1, 1], 2)])
    truth = np.array([1, 1, 0], dtype=bool)
    pb = {(1, 1, 0): 0.5, (1, 0, 0): 0.1, (0, 0, 0): 0.3, (0, 1, 1): 0.1}
    log_pb = np.log([pb[tuple(int(b) for b in row)] for row in fc.bits()])
    out = syn.agreement(fc, log_pb, truth, min_count=5, n_boot=400, seed=1)
    p = np.array([60, 30, 8]) / 98
    q = np.array([0.5, 0.1, 0.3]) / 0.9
    assert out["n_compared"] == 3
    assert math.isclose(out["kl"], float((p * np.log(p / q)).sum()), rel_tol=1e-12)
    assert math.isclose(out["top1"], 0.6) and math.isclose(out["top10"], 1.0)
    assert math.isclose(out["mean_error"], (30 * 1 + 8 * 2 + 2 * 2) / 100 / 3)
    l1, l2 = np.log10(np.array([60, 30, 8]) / 100), np.log10([0.5, 0.1, 0.3])
    assert math.isclose(out["corr"], float(np.corrcoef(l1, l2)[0, 1]))
    assert math.isclose(out["within_decade"], float(np.mean(np.abs(l1 - l2) <= 1)))
    assert math.isclose(out["mass_pb"], 0.9) and math.isclose(out["mass_sgd"], 0.98)
    assert 0.7 < out["top1_se"] / math.sqrt(0.6 * 0.4 / 100) < 1.3
    with pytest.raises(ValueError, match="one entry per function"):
        syn.agreement(fc, log_pb[:2], truth)


def _run(counts, n_networks, not_fitted=0):
    return TrainingRun(counts=counts, n_networks=n_networks, n_fitted=counts.total, n_not_fitted=not_fitted,
                       n_diverged=n_networks - counts.total - not_fitted, n_lost_fit=0,
                       epochs_hist=np.array([0, counts.total]), seconds=0.0)


def test_grid_table_keeps_settings_where_nothing_fitted():
    fc = _counts([([1, 0], 9), ([0, 0], 1)])
    runs = {(0.1, 8): _run(fc, 20, not_fitted=10), (3.0, 8): _run(FunctionCounts.empty(2), 20, not_fitted=20)}
    t = syn.grid_table(runs, lambda c: np.log(np.full(c.n_distinct, 0.5)), np.array([1, 0]), min_count=1,
                       n_train=32, n_boot=20)
    assert len(t) == 2
    hot = t[t["lr"] == 3.0].iloc[0]
    assert hot["fit_fraction"] == 0 and np.isnan(hot["top1"])
    cold = t[t["lr"] == 0.1].iloc[0]
    assert cold["fit_fraction"] == 0.5 and math.isclose(cold["fit_fraction_se"], math.sqrt(0.25 / 20))
    assert cold["eta_over_b"] == 0.1 / 8 and cold["steps_to_fit"] == 1.0 * 4


def test_temperature_grid_rejects_bad_settings():
    sp = boolean_split("0011", 8, seed=0, n=4)
    with pytest.raises(ValueError, match="batch size"):
        syn.temperature_grid(sp.x_train, sp.y_train, sp.x_test, lrs=[0.1], batches=[16], n_networks=2,
                             max_epochs=2)
    with pytest.raises(ValueError, match="lr"):
        syn.temperature_grid(sp.x_train, sp.y_train, sp.x_test, lrs=[-0.1], batches=[2], n_networks=2,
                             max_epochs=2)
    with pytest.raises((TypeError, ValueError), match="stop.rule"):
        syn.temperature_grid(sp.x_train, sp.y_train, sp.x_test, lrs=[0.1], batches=[2], n_networks=2,
                             max_epochs=2, stop_rule="no-such-rule")


def test_mcmc_diagnostics_flag_chains_that_never_move():
    C, T, n = 6, 40, 5
    rng = np.random.default_rng(0)
    bits = np.zeros((C, T, n), dtype=bool)
    bits[:, :, 0] = (np.arange(C) % 2 == 0)[:, None]  # each chain stuck on its own label of input 0
    bits[:, :, 1:] = rng.random((C, T, n - 1)) < 0.5
    res = syn.MCMCResult(test_bits=np.packbits(bits, axis=2), log_w01=np.zeros((C, T)),
                         loglik=rng.standard_normal((C, T)), train_errors=np.zeros((C, T), int),
                         sq_norm=rng.standard_normal((C, T)), accept_prob=np.full((C, T), 0.8),
                         divergent=np.zeros((C, T), bool), warmup_divergent=np.zeros(C, int), step_size=0.1,
                         tau=0.1, n_test=n, n_params=10, seconds=0.0)
    d = syn.mcmc_diagnostics(res, np.zeros(n, bool))
    assert d["rhat_bits_max"] == math.inf and d["rhat_max"] == math.inf
    assert abs(d["rhat_loglik"] - 1) < 0.1
    assert d["fit_fraction"] == 1.0 and math.isclose(d["ess_01_weights"], C * T)


def test_averaging_with_a_vanishing_rate_keeps_the_solution():
    sp = boolean_split("0011", 16, seed=0, n=5)
    run = syn.averaging_runs(sp.x_train, sp.y_train, sp.x_test, n_networks=6, lr=0.1, batch=4, epochs=2,
                             continue_lr=1e-9,
                             hidden=[6, 6], seed=0)
    assert run.used.sum() + run.n_excluded == 6 and run.used.sum() >= 4
    assert np.array_equal(run.polyak, run.solution) and np.array_equal(run.final, run.solution)
    assert run.iasg.shape == (run.used.sum(), 2, sp.n_test)
    assert run.fits_polyak.all()


def test_hamming_and_function_mass():
    a = np.array([[1, 0, 1], [1, 1, 1], [1, 0, 1]], dtype=bool)
    assert syn.hamming(a, np.array([1, 0, 1], bool)).tolist() == [0, 1, 0]
    assert syn.function_mass(a, lambda bits: np.full(len(bits), 0.25)) == 0.5


@pytest.mark.slow
def test_local_analysis_quantities_are_consistent():
    """At a mode of a small network: rank C ≤ N − 1, Mandt's ε* and the stability limit from their formulas, the
    Lyapunov prediction and the Laplace covariance positive definite, the mode fits S."""
    sp = boolean_split("0011", 8, seed=0, n=4)
    out = syn.local_analysis(sp.x_train, sp.y_train, sp.x_test, weight_decay=0.01, batch=2, lr=0.3, seed=0,
                             hidden=[6, 6])
    pic = out["picture"]
    N, D = sp.n_train, pic.D
    assert 1 <= pic.C_rank <= N - 1
    assert math.isclose(pic.eps_star, 2 * 2 * D / (N * np.trace(pic.C)), rel_tol=1e-10)
    assert math.isclose(pic.eps_star_range, 2 * 2 * pic.C_rank / (N * np.trace(pic.C)), rel_tol=1e-10)
    assert math.isclose(pic.stability_limit, 2 / pic.A_eigvals.max(), rel_tol=1e-12)
    assert pic.A_eigvals.min() > 0 and np.linalg.eigvalsh(pic.laplace_covariance()).min() > 0
    assert pic.n_train_errors == 0
    assert np.allclose(pic.U_range.T @ pic.U_range, np.eye(pic.C_rank), atol=1e-10)
    # C vanishes off its range
    P_null = np.eye(D) - pic.U_range @ pic.U_range.T
    assert np.abs(P_null @ pic.C @ P_null).max() < 1e-8 * np.abs(pic.C).max()
    assert out["init_mode"]["sq_norm"] <= out["solution_sq_norm"] * 1.05


def test_boolean_system_is_page_ones_train_set_or_a_random_one():
    import torch

    from sgdbayes.data.boolean import boolean_split, mingard_split

    authors = syn.boolean_system("0011", 32, mask="A")
    ref = mingard_split(7, "A")
    assert torch.equal(authors.x_train, ref.x_train) and torch.equal(authors.y_test, ref.y_test)
    rnd = syn.boolean_system("0011", 32, mask="", seed=3)
    ref = boolean_split("0011", 32, seed=3)
    assert torch.equal(rnd.x_train, ref.x_train) and torch.equal(rnd.y_train, ref.y_train)


@pytest.mark.parametrize("kwargs, match", [
    (dict(target="0012", n_train=32, mask="A"), "target must be a '0'/'1' string"),
    (dict(target="001", n_train=32, mask="A"), "length divides 128"),
    (dict(target="0011", n_train=32, mask="C"), "mask must be ''"),
    (dict(target="0011", n_train=16, mask="A"), "n_train = 16"),
])
def test_boolean_system_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        syn.boolean_system(kwargs.pop("target"), kwargs.pop("n_train"), **kwargs)


@pytest.mark.parametrize("override, match", [
    (dict(bool_mask="C"), "bool_mask must be"),
    (dict(bool_n_train=16), "bool_n_train must be 32"),
    (dict(bool_target="0012"), "bool_target must be"),
])
def test_spec_checks_the_boolean_system_before_work(override, match):
    from sgdbayes.chapters import discover, load_profiles, resolve_parameters
    from sgdbayes.params import ParameterError

    root = Path(__file__).resolve().parents[1]
    chapters = discover(root)
    params = resolve_parameters(chapters["synthesis"], load_profiles(root, chapters), "default")
    params.update(override)
    with pytest.raises(ParameterError, match=match):
        syn.PARAMETERS.check(params, chapter="synthesis")


def test_mnist_local_picture_reports_a_low_rank_noise_covariance():
    """A tiny MNIST network: C's rank is at most |S| (one gradient per example) and far below D; the summary's
    numbers are finite and the stable chains do not diverge."""
    r = syn.mnist_local_picture(24, 8, downsample=7, hidden=[4, 4], weight_decay=0.001, batch=4, lr=0.1,
                                fraction=0.05, n_chains=3, n_steps=60, burn_in=20, thin=5)
    assert r["d"] == 16 and r["D"] == 16 * 4 + 4 + 4 * 4 + 4 + 4 + 1
    assert 1 <= r["rank_C"] <= 24 and r["rank_C"] < r["D"]
    assert r["n_used"] + r["n_diverged"] == 3 and r["n_diverged"] == 0
    assert all(math.isfinite(r[k]) for k in ("eps_star_over_limit", "range_ratio", "null_vs_laplace", "drift"))
    with pytest.raises(ValueError, match="fraction must lie in"):
        syn.mnist_local_picture(24, 8, downsample=7, hidden=[4, 4], weight_decay=0.001, batch=4, lr=0.1,
                                fraction=1.5, n_chains=3, n_steps=60, burn_in=20, thin=5)
