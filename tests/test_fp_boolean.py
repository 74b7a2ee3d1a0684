"""Tests of page I of the function-probability chapter (the Boolean system at the authors' set-up): training runs
under the stop rules, their Monte-Carlo errors, the studies' statistics, the parameters and the figures, each
against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgdbayes.chapters import parse_parameters
from sgdbayes.data import boolean_split, lz_complexity
from sgdbayes.data.boolean import MINGARD_MASKS, MINGARD_TARGETS
from sgdbayes.distributed import ENV_SCHEDULER
from sgdbayes.ensembles import FCN, StopRule, train_ensemble
from sgdbayes.experiments import function_probability as fp
from sgdbayes.functions import FunctionCounts
from sgdbayes.params import ParameterError
from sgdbayes.paths import project_root
from sgdbayes.seed import spawn_seeds


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SGDBAYES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_SCHEDULER, raising=False)


def _small():
    """n = 4 (16 inputs), |S| = 6: a network 4 → 8 → 1 fits in a few epochs at lr 0.1."""
    return boolean_split("0110", 6, seed=1, n=4)


SMALL = dict(hidden=(8,), sigma_w=1.0, sigma_b=1.0, lr=0.1, batch_size=2, max_epochs=500)


def _run_from(keys_bits, clusters, n_bits=3):
    """A TrainingRun whose counted runs are the rows of ``keys_bits`` in clusters ``clusters``."""
    bits = np.asarray(keys_bits, dtype=bool)
    counts = FunctionCounts.from_bits(bits, n_bits)
    n = bits.shape[0]
    return fp.TrainingRun(counts=counts, n_networks=n, n_fitted=n, n_not_fitted=0, n_diverged=0, n_lost_fit=0,
                          epochs_hist=np.array([0, n]), seconds=0.0, run_keys=np.packbits(bits, axis=1),
                          run_cluster=np.asarray(clusters))


# --------------------------------------------------------------------------------------------------------------------
# training runs under the stop rules
# --------------------------------------------------------------------------------------------------------------------
def test_keras_shard_equals_train_ensemble_followers():
    """train_shard under the Keras rule counts exactly the followers of train_ensemble's emulated processes, and its
    per-process standard error is EnsembleResult.top_mass's (a different implementation of the same estimator)."""
    sp = _small()
    rule = StopRule.keras(runs_per_process=5)
    res = train_ensemble(FCN(4, (8,), sigma_w=1.0, sigma_b=1.0), sp.x_train, sp.y_train, sp.x_test, n_networks=30,
                         seed=7, lr=0.1, batch_size=2, max_epochs=500, stop_rule=rule, progress=False)
    sh = fp.train_shard(7, x_train=sp.x_train, y_train=sp.y_train.long(), x_test=sp.x_test, n_networks=30,
                        stop_rule=rule, **SMALL)
    assert sh.counts == res.function_counts(leaders=False)
    assert sh.n_leaders == int((res.counted & res.leader).sum()) > 0
    assert sh.n_counted == int((res.counted & ~res.leader).sum())
    assert sh.n_clusters == len(np.unique(res.process[res.counted & ~res.leader]))
    for k in (1, 2, 5):
        m, se = sh.top_mass(k)
        m_ref, se_ref = res.top_mass(k, leaders=False)
        assert m == pytest.approx(m_ref, abs=1e-12) and se == pytest.approx(se_ref, rel=1e-9)
    keep = res.counted & ~res.leader
    assert sh.n_sign_misfit == int((keep & ~res.fits_by_sign).sum())
    assert sh.mean_epochs_trained == pytest.approx(res.epochs_trained[keep].mean())
    # counting the leaders too gives every counted run
    with_leaders = fp.train_shard(7, x_train=sp.x_train, y_train=sp.y_train.long(), x_test=sp.x_test,
                                  n_networks=30, stop_rule=rule, count_leaders=True, **SMALL)
    assert with_leaders.counts == res.function_counts(leaders=True) and with_leaders.n_leaders == 0


def test_clean_rule_standard_error_is_binomial():
    """Independent runs are clusters of one: the clustered error reduces to √(m(1−m)/(n−1))."""
    sp = _small()
    run = fp.train_shard(3, x_train=sp.x_train, y_train=sp.y_train.long(), x_test=sp.x_test, n_networks=40,
                         **SMALL)
    n = run.n_counted
    m, se = run.top_mass(1)
    assert run.n_clusters == n == 40 and run.n_leaders == 0 and run.n_sign_misfit == 0
    assert m == pytest.approx(run.counts.counts[0] / n)
    assert se == pytest.approx(math.sqrt(m * (1 - m) / (n - 1)), rel=1e-12)


def test_top_mass_clustered_error_by_hand():
    # 3 clusters: {A, A}, {A, B}, {B, B, B}; top-1 is B (4 of 7)
    A, B = [0, 0, 1], [1, 1, 0]
    run = _run_from([A, A, A, B, B, B, B], [5, 5, 9, 9, 2, 2, 2])
    m, se = run.top_mass(1)
    a, sizes = np.array([0.0, 1.0, 3.0]), np.array([2.0, 2.0, 3.0])
    mass = 4 / 7
    expected = math.sqrt(3 / 2 * ((a - mass * sizes) ** 2).sum()) / 7
    assert m == pytest.approx(mass) and se == pytest.approx(expected, rel=1e-12)
    assert run.top_mass(2) == (1.0, 0.0)


def test_merge_keeps_clusters_apart_and_checks_consistency():
    A, B = [0, 0, 1], [1, 1, 0]
    r1 = _run_from([A, A, B], [0, 0, 1])
    r2 = _run_from([A, B, B], [0, 1, 1])
    m = fp.merge_training_runs([r1, r2])
    assert m.n_clusters == 4 and m.n_counted == 6 and m.counts.to_dict() == {"001": 3, "110": 3}
    by_hand = _run_from([A, A, B, A, B, B], [0, 0, 1, 2, 3, 3])
    assert m.top_mass(1) == pytest.approx(by_hand.top_mass(1))
    with pytest.raises(ValueError, match="process leaders"):
        fp.TrainingRun(counts=r1.counts, n_networks=3, n_fitted=3, n_not_fitted=0, n_diverged=0, n_lost_fit=0,
                       epochs_hist=np.array([3]), seconds=0.0, n_leaders=1)
    with pytest.raises(ValueError, match="run_keys"):
        fp.TrainingRun(counts=r1.counts, n_networks=3, n_fitted=3, n_not_fitted=0, n_diverged=0, n_lost_fit=0,
                       epochs_hist=np.array([3]), seconds=0.0, run_keys=r1.run_keys[:2], run_cluster=[0, 0])


def test_keras_sharded_run_equals_its_shards_and_checks_whole_processes():
    sp = _small()
    rule = StopRule.keras(runs_per_process=5)
    run = fp.train_functions(sp.x_train, sp.y_train, sp.x_test, n_networks=20, shard_size=10, seed=4,
                             scheduler="sync", progress=False, stop_rule=rule, **SMALL)
    shards = [fp.train_shard(s, x_train=sp.x_train, y_train=sp.y_train.long(), x_test=sp.x_test, n_networks=10,
                             stop_rule=rule, **SMALL) for s in spawn_seeds(4, 2)]
    ref = fp.merge_training_runs(shards)
    assert run.counts == ref.counts and run.n_leaders == ref.n_leaders == 4
    assert run.top_mass(1) == pytest.approx(ref.top_mass(1))
    with pytest.raises(ValueError, match="whole emulated processes"):
        fp.train_functions(sp.x_train, sp.y_train, sp.x_test, n_networks=10**9, shard_size=12, stop_rule=rule,
                           **SMALL)
    with pytest.raises(ValueError, match="unknown stop rule"):
        fp.train_functions(sp.x_train, sp.y_train, sp.x_test, n_networks=10**9, stop_rule="keras2", **SMALL)
    with pytest.raises(ValueError, match="wait"):
        fp.train_functions(sp.x_train, sp.y_train, sp.x_test, n_networks=10**9, stop_rule="keras",
                           overtrain_epochs=3, **SMALL)
    with pytest.raises(ValueError, match="unknown optimizer"):
        fp.train_functions(sp.x_train, sp.y_train, sp.x_test, n_networks=10**9, optimizer="lbfgs", **SMALL)


def test_limit_threads_restores():
    before = torch.get_num_threads()
    with fp.limit_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="torch_threads"), fp.limit_threads(0):
        pass


# --------------------------------------------------------------------------------------------------------------------
# the authors' set-up
# --------------------------------------------------------------------------------------------------------------------
def test_authors_masks_come_from_their_seed():
    """Mask A is what the authors' data script draws (seed 42069, 32 inputs without replacement); the inferred
    |S| = 64 mask is the same call at size 64 and contains mask A."""
    rs = np.random.RandomState(42069)
    a = np.zeros(128, int)
    a[rs.choice(range(128), size=32, replace=False)] = 1
    assert "".join(map(str, a)) == MINGARD_MASKS["A"]
    m64 = np.array([int(c) for c in fp.authors_mask_64()])
    assert m64.sum() == 64 and (m64 & a).sum() == 32
    sp = fp.authors_split(7, "A64")
    assert sp.n_train == 64 and sp.n_test == 64
    np.testing.assert_array_equal(sp.target, np.array([c == "1" for c in MINGARD_TARGETS[7]]))
    assert fp.authors_split(7).n_train == 32


def test_random_splits_are_seeded_and_distinct():
    a = fp.random_splits(7, 3, 32, seed=0)
    b = fp.random_splits(7, 3, 32, seed=0)
    assert [tuple(s.train_idx) for s in a] == [tuple(s.train_idx) for s in b]
    assert len({tuple(s.train_idx) for s in a}) == 3 and all(s.n_train == 32 for s in a)


def test_decomposition_rules():
    setup = fp.BooleanSetup(threshold=0.5, wait=3, runs_per_process=10)
    assert fp.decomposition_rule(setup, False, False, False) == StopRule.clean()
    full = fp.decomposition_rule(setup, True, True, True)
    assert (full.threshold, full.wait, full.shared_callback, full.runs_per_process) == (0.5, 3, True, 10)
    thr = fp.decomposition_rule(setup, True, False, False)
    assert (thr.threshold, thr.wait, thr.shared_callback) == (0.5, 0, False)
    sh = fp.decomposition_rule(setup, False, False, True)
    assert (sh.threshold, sh.wait, sh.shared_callback) == (0.0, 0, True)
    assert len(fp.DECOMPOSITION) == 8 and len(set(fp.DECOMPOSITION.values())) == 8


def test_keras_optimiser_forms_match_keras_formulas_closely():
    """What the text claims about the torch forms: standalone Keras' RMSprop (ε added to √s) is ours exactly, and
    its Adam (ε added to √v before the bias correction) differs from ours by far less than an update."""
    from sgdbayes.ensembles import make_optimizer

    rng = np.random.default_rng(0)
    g = [rng.normal(0, 0.05, size=(200,)) for _ in range(20)]
    for name in ("adam", "rmsprop"):
        opt = make_optimizer(name, fp.KERAS_LR[name], **fp.keras_hyper(name))
        p = torch.zeros(1, 200, dtype=torch.float64)
        state = opt.init_state([p])
        ref, m, v = np.zeros(200), np.zeros(200), np.zeros(200)
        for t, gt in enumerate(g, start=1):
            opt.step([p], [torch.from_numpy(gt)[None]], state)
            if name == "adam":
                m, v = 0.9 * m + 0.1 * gt, 0.999 * v + 0.001 * gt**2
                lr_t = 1e-3 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
                ref -= lr_t * m / (np.sqrt(v) + 1e-7)
            else:
                v = 0.9 * v + 0.1 * gt**2
                ref -= 1e-3 * gt / (np.sqrt(v) + 1e-7)
        step = np.abs(ref).mean()
        tol = 1e-2 if name == "adam" else 1e-10
        assert np.abs(p[0].numpy() - ref).max() < tol * step, name
    assert fp.KERAS_LR == {"sgd": 0.01, "adam": 0.001, "adagrad": 0.01, "rmsprop": 0.001, "adadelta": 1.0}


# --------------------------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------------------------
def test_compare_against_naive_computation():
    A, B, C, D = [0, 0, 0], [0, 0, 1], [1, 1, 1], [0, 1, 0]
    rows = [A] * 6 + [B] * 3 + [C] * 2 + [D]
    run = _run_from(rows, np.arange(12))
    truth = np.array([0, 0, 0])
    n_bits, keys = fp._union_keys(run.counts, 1)
    lp_by = {"000": math.log(0.6), "001": math.log(0.02), "111": math.log(0.01), "010": math.log(0.2)}
    names = ["".join(map(str, np.unpackbits(k, count=3))) for k in keys]
    table = fp.PBTable(n_bits, keys, np.array([lp_by[n] for n in names]), "full")
    prior = fp.PriorRun(counts=FunctionCounts.from_bits(np.array([A] * 50 + [B] * 30 + [D] * 19 + [C]), 3),
                        n_sampled=1000)
    s = fp.compare(run, truth, ep=table, prior=prior, min_count=2, direct_min_samples=2)
    p_sgd = {"000": 0.5, "001": 0.25, "111": 2 / 12}
    x = np.log10([p_sgd[k] for k in ("000", "001", "111")])
    y = np.log10([0.6, 0.02, 0.01])
    assert s["ep_n"] == 3 and s["ep_corr"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert s["ep_within"] == pytest.approx(np.mean(np.abs(x - y) <= 1))
    # direct: 111 was drawn once (< 2): left out
    xd, yd = np.log10([0.5, 0.25]), np.log10([0.5, 0.3])
    assert s["direct_n"] == 2 and math.isnan(s["direct_corr"]) and s["direct_within"] == np.mean(np.abs(xd - yd) <= 1)
    assert s["error_sgd"] == pytest.approx((3 * 1 + 2 * 3 + 1 * 1) / 12 / 3)
    assert s["error_pb_direct"] == pytest.approx((30 * 1 + 19 * 1 + 1 * 3) / 100 / 3)
    assert s["top1"] == 0.5 and s["top10"] == 1.0 and s["n_distinct"] == 4 and s["ep_failed"] == 0
    empty = fp.TrainingRun(counts=FunctionCounts.empty(3), n_networks=2, n_fitted=0, n_not_fitted=2,
                           n_diverged=0, n_lost_fit=0, epochs_hist=np.zeros(1, np.int64), seconds=0.0)
    e = fp.compare(empty, truth, ep=table)
    assert e["n_not_fitted"] == 2 and math.isnan(e["top1"]) and e["ep_n"] == 0


def test_authors_standard_error_by_hand():
    """Processes whose runs all agree (no within-process variance): the between-process variance is the sample
    variance of the process means, and the authors' error is its square root over √400."""
    A, B = [0, 0, 1], [1, 1, 0]
    rows, clusters = [], []
    for c, f in enumerate([A, A, A, A, B, B]):
        rows += [f] * 10
        clusters += [c] * 10
    run = _run_from(rows, clusters)
    means = np.array([1, 1, 1, 1, 0, 0], float)
    assert fp.authors_standard_error(run, 1) == pytest.approx(math.sqrt(means.var(ddof=1) / 400), rel=1e-12)
    # all runs on one function: no error at all
    assert fp.authors_standard_error(_run_from([A] * 20, np.repeat(np.arange(4), 5)), 1) == 0.0


def test_spread_table_against_numpy():
    sp = _small()
    studies = {}
    for k, top in enumerate([0.5, 0.7, 0.9]):
        stats = {"keras": {"top1": top, "ep_corr": 0.1 * k}, "clean": {"top1": top / 2, "ep_corr": math.nan}}
        studies[k] = fp.SplitStudy(name=f"S{k}", split=sp, runs={}, pb=None, stats=stats)
    df = fp.spread_table(studies, quantities=["top1", "ep_corr"], reference={"keras": {"top1": 0.65}})
    row = df[(df["stop rule"] == "Keras") & (df["quantity"] == "top-1 mass")].iloc[0]
    assert row["mean"] == pytest.approx(0.7) and row["sd"] == pytest.approx(np.std([0.5, 0.7, 0.9], ddof=1))
    assert (row["min"], row["max"], row["authors' S"], row["train sets"]) == (0.5, 0.9, 0.65, 3)
    nan_row = df[(df["stop rule"] == "clean") & (df["quantity"].str.startswith("corr"))].iloc[0]
    assert nan_row["train sets"] == 0 and math.isnan(nan_row["mean"])


def test_complexity_data_against_naive_lz_and_csr():
    from scipy.stats import spearmanr

    sp = boolean_split("0011", 32, seed=3)
    rng = np.random.default_rng(0)
    base = sp.target[sp.test_idx]
    bits = np.array([base ^ (rng.random(sp.n_test) < q) for q in (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)])
    prior = fp.PriorRun(counts=FunctionCounts.from_bits(np.repeat(bits, [40, 20, 10, 5, 3, 2], axis=0)),
                        n_sampled=10**6)
    n_bits, keys = fp._union_keys(prior.counts, 1)
    pb = fp.PBStudy(ep=fp.PBTable(n_bits, keys, np.log(np.linspace(0.5, 0.01, len(keys))), "full"), prior=prior,
                    marginals=None)
    d = fp.complexity_data(sp, pb, prior.counts)
    full = sp.full_function(prior.counts.bits())
    lz = np.array([lz_complexity(f) for f in full])
    idx = np.arange(128)
    csr = np.array([np.mean([any(f[i] != f[i ^ (1 << b)] for b in range(7)) for i in idx]) for f in full])
    np.testing.assert_allclose(d["prior_lz"], lz)
    np.testing.assert_allclose(d["prior_csr"], csr)
    r = spearmanr(lz, np.log(prior.counts.probabilities()))
    assert d["rho_prior_lz"] == pytest.approx(r.statistic) and d["p_prior_lz"] == pytest.approx(r.pvalue)
    assert d["rho_prior_lz"] < 0  # the simplest (the target) is the most probable here


def test_error_distributions_skip_empty_and_record_numbers(monkeypatch, tmp_path):
    from sgdbayes import results

    _, fc = FunctionCounts.empty(4), FunctionCounts.from_bits([[0, 0, 0, 1], [0, 0, 0, 0]])
    d = fp.error_distributions({"a": fc, "b": FunctionCounts.empty(4)}, np.zeros(4))
    assert list(d) == ["a"] and d["a"].tolist() == [0.5, 0.5, 0, 0, 0]
    monkeypatch.setenv("SGDBAYES_RESULTS_DIR", str(tmp_path / "results"))
    missing = fp.record_numbers("fp_test", {"x": {"value": float("nan"), "label": "x"},
                                            "y": {"value": np.float64(0.25), "paper": 0.3}})
    data = results.load("fp_test")["results"]
    assert missing == ["x"] and data["x"]["value"] == "not enough data" and data["y"]["value"] == 0.25


# --------------------------------------------------------------------------------------------------------------------
# studies end to end (tiny) and figures
# --------------------------------------------------------------------------------------------------------------------
def test_protocol_study_tiny_end_to_end():
    import matplotlib

    matplotlib.use("Agg")
    from sgdbayes import plots
    from sgdbayes.plots import function_probability as fplots

    sp = _small()
    setup = fp.BooleanSetup(hidden=(8,), lr=0.1, batch=2, max_epochs=500, runs_per_process=5, shard_size=10,
                            min_count=2)
    proto = fp.protocol_study(sp, setup, main_networks=20, cell_networks=10, overtrain_epochs=3,
                              overtrain_networks=10)
    df = fp.protocol_table(proto)
    assert list(df["stop rule"][:8]) == list(fp.DECOMPOSITION) and len(df) == 11
    assert df["paper top-1"].notna().sum() == 2
    # the Keras rule with a shared callback leaves its leaders out; a fresh callback has none
    assert proto.keras.n_leaders == 4 and proto.overtrained("fresh").n_leaders == 0
    assert (proto.keras.n_counted, proto.clean.n_counted) == (16, 20)
    # a longer wait can only move each follower's stop later (same networks: the first shard, same leaders, same e0)
    same = setup.train(sp, setup.rule("keras"), 10)
    assert proto.overtrained("keras").mean_epochs_trained >= same.mean_epochs_trained
    # the clean rule's overtraining is exactly 3 more epochs for every run that keeps its fit
    clean10, over = setup.train(sp, setup.rule("clean"), 10), proto.overtrained("clean")
    if over.n_lost_fit == 0:
        assert over.mean_epochs_trained == pytest.approx(clean10.mean_epochs_trained + 3)
    fig = fplots.figure_protocol({"Keras": proto.keras.counts, "clean": proto.clean.counts},
                                 {k: r.top_mass(1) for k, r in proto.runs.items()},
                                 paper_curve={1: 0.653}, paper_cells={"Keras rule (all three)": 0.653})
    assert fig.get_size_inches()[0] <= plots.MAX_WIDTH_IN + 1e-9
    pb = fp.pb_study(sp, setup, [proto.keras, proto.clean], prior_samples=20000)
    assert pb.ep.n_failed == 0 and len(pb.ep) > 0 and pb.prior.n_sampled == 20000
    st = fp.split_study("tiny", sp, setup, ["keras", "clean"], n_networks=10, prior_samples=20000)
    tab = fp.studies_table({1: st}, columns=["top1", "ep_within"])
    assert list(tab["stop rule"]) == ["Keras", "clean"] and tab["target K_LZ"].iloc[0] == lz_complexity(sp.target)
    panels = fp.target_panels({1: st})
    fig = fplots.figure_targets(panels)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_xlim() == fig.axes[0].get_ylim()


def test_optimiser_study_pairs_names_and_rates():
    sp = _small()
    setup = fp.BooleanSetup(hidden=(8,), lr=0.1, batch=2, max_epochs=300, runs_per_process=5, shard_size=10)
    with pytest.raises(ValueError, match="pair up"):
        fp.optimiser_study(sp, setup, ["sgd", "adam"], [0.1], [2], ["clean"], n_networks=10)
    with pytest.raises(ValueError, match="exceeds"):
        fp.optimiser_study(sp, setup, ["sgd"], [0.1], [7], ["clean"], n_networks=10)
    opt = fp.optimiser_study(sp, setup, ["sgd", "adam"], [0.1, 0.01], [2, 6], ["clean"], n_networks=10)
    df = fp.optimiser_table(opt)
    assert list(zip(df["optimiser"], df["batch"], df["learning rate"], strict=True)) == [
        ("sgd", 2, 0.1), ("sgd", 6, 0.1), ("adam", 2, 0.01), ("adam", 6, 0.01)]
    assert opt.runs[("adam", 2, "clean")].config["hyper"]["eps"] == 1e-7
    rows, series = fp.settings_series(opt, {"top-1": "top1"})
    assert rows == ["sgd, batch 2", "sgd, batch 6", "adam, batch 2", "adam, batch 6"]
    np.testing.assert_allclose(series["top-1"]["clean"][0], df["top-1 mass"])


def test_spread_and_settings_figures():
    import matplotlib

    matplotlib.use("Agg")
    from sgdbayes import plots
    from sgdbayes.plots import function_probability as fplots

    fig = fplots.figure_spread({"top-1": {"Keras": (np.array([0.5, 0.6]), np.array([0.01, 0.02])),
                                          "clean": (np.array([0.1, 0.2]), None)}},
                               {"top-1": {"Keras": 0.65}})
    fig2 = fplots.figure_settings(["a", "b"], {"top-1": {"Keras": (np.array([0.5, 0.6]), None)}})
    for f in (fig, fig2):
        assert f.get_size_inches()[0] <= plots.MAX_WIDTH_IN + 1e-9


# --------------------------------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------------------------------
def _chapter_params(profile: str) -> dict:
    import yaml

    params = parse_parameters(project_root() / "book" / "function_probability.py")
    prof = yaml.safe_load((project_root() / "book" / "profiles.yml").read_text())["chapters"]
    params.update(prof["function_probability"].get(profile, {}))
    params["profile"] = profile
    return params


@pytest.mark.parametrize("profile", ["smoke", "default", "paper"])
def test_every_profile_passes_the_parameter_spec(profile):
    params = _chapter_params(profile)
    assert fp.PARAMETERS.missing(list(params)) == []
    fp.PARAMETERS.check(params, chapter="function_probability")


@pytest.mark.parametrize("change, match", [
    ({"opt_lrs": [0.1]}, "opt_names, opt_lrs pair up"),
    ({"opt_batches": [8, 64]}, r"opt_batches = \[8, 64\]"),
    ({"opt_batches": [0]}, "opt_batches"),
    ({"bool_batch": 33}, "bool_batch = 33"),
    ({"opt_rules": ["keras", "patience"]}, "opt_rules"),
    ({"bool_mask": "C"}, "bool_mask = 'C'"),
    ({"bool_mask": "1" * 64 + "0" * 64}, "64 ones, not 32"),
    ({"bool_target": "0011"}, "length 4, not 128"),
    ({"bool_target": 8}, "targets 1–7"),
    ({"bool_target": "0011" * 32, "bool_mask": ""}, "needs an explicit bool_mask"),
    ({"main_networks": 10010}, "multiple of keras_runs_per_process"),
    ({"opt_names": ["sgd", "lbfgs", "adam", "adagrad", "rmsprop"]}, "opt_names"),
])
def test_bad_parameters_are_named(change, match):
    params = {**_chapter_params("default"), **change}
    with pytest.raises(ParameterError, match=match):
        fp.PARAMETERS.check(params, chapter="function_probability")
