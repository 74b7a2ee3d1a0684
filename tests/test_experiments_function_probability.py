"""Tests of sgdbayes.experiments.function_probability against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgdbayes.data import boolean_split, lz_complexity
from sgdbayes.distributed import ENV_SCHEDULER
from sgdbayes.experiments import function_probability as fp
from sgdbayes.functions import FunctionCounts
from sgdbayes.seed import spawn_seeds


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SGDBAYES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_SCHEDULER, raising=False)


def _hand_made():
    """Six distinct 4-bit functions with known counts (total 40), truth 0000."""
    table = {"0000": 20, "0001": 10, "0011": 5, "0111": 3, "1111": 1, "1000": 1}
    rows = [[int(c) for c in s] for s, n in table.items() for _ in range(n)]
    return table, FunctionCounts.from_bits(np.array(rows))


def test_headline_statistics_matches_naive_computation():
    table, fc = _hand_made()
    truth = np.zeros(4, int)
    strings = [s for s, _ in fc.most_common()]
    # an arbitrary P_B: NaN (not evaluated) for one, −inf (never sampled) for another
    pb_by_string = {"0000": 0.5, "0001": 0.01, "0011": 0.2, "0111": 0.001, "1111": None, "1000": 0.0}
    log_pb = np.array([np.nan if pb_by_string[s] is None else (np.log(pb_by_string[s]) if pb_by_string[s] > 0
                                                                else -np.inf) for s in strings])
    s = fp.headline_statistics(fc, log_pb, truth, min_count=3)

    total = sum(table.values())
    # naive: functions seen >= 3 times with finite P_B are 0000, 0001, 0011, 0111
    keep = ["0000", "0001", "0011", "0111"]
    a = [math.log10(table[k] / total) for k in keep]
    b = [math.log10(pb_by_string[k]) for k in keep]
    ma, mb = sum(a) / 4, sum(b) / 4
    r = sum((x - ma) * (y - mb) for x, y in zip(a, b)) / math.sqrt(
        sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    within = sum(abs(x - y) <= 1 for x, y in zip(a, b)) / 4
    err = {k: k.count("1") / 4 for k in table}
    mean_sgd = sum(table[k] * err[k] for k in table) / total
    finite = ["0000", "0001", "0011", "0111"]  # 1000 has P_B = 0 (weight 0), 1111 NaN
    mass = sum(pb_by_string[k] for k in finite)
    mean_pb = sum(pb_by_string[k] * err[k] for k in finite) / mass

    assert s["n_runs"] == 40 and s["n_distinct"] == 6
    assert s["top1"] == pytest.approx(20 / 40) and s["top10"] == 1.0
    assert s["n_compared"] == 4
    assert s["corr_log"] == pytest.approx(r, rel=1e-12)
    assert s["frac_within_decade"] == pytest.approx(within)
    assert s["mean_error_sgd"] == pytest.approx(mean_sgd, rel=1e-12)
    assert s["mean_error_pb_restricted"] == pytest.approx(mean_pb, rel=1e-12)
    assert s["pb_mass"] == pytest.approx(mass, rel=1e-12)


def test_headline_statistics_rejects_bad_input():
    _, fc = _hand_made()
    with pytest.raises(ValueError, match="shape"):
        fp.headline_statistics(fc, np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="<= 0"):
        fp.headline_statistics(fc, np.full(6, 0.5), np.zeros(4))


def test_error_distribution_naive():
    table, fc = _hand_made()
    d = fp.error_distribution(fc, [0, 0, 0, 0])
    naive = np.zeros(5)
    for k, n in table.items():
        naive[k.count("1")] += n / 40
    np.testing.assert_allclose(d, naive, rtol=1e-12)
    w = np.arange(1, 7, dtype=float)
    dw = fp.error_distribution(fc, [0, 0, 0, 0], weights=w)
    naive_w = np.bincount(fc.errors([0, 0, 0, 0]), weights=w, minlength=5) / w.sum()
    np.testing.assert_allclose(dw, naive_w, rtol=1e-12)


def test_pb_table_lookup():
    _, fc = _hand_made()
    n_bits, keys = fp._union_keys([fc, FunctionCounts.from_bits([[1, 0, 1, 0]] * 5)], min_count=3)
    got = {"".join(map(str, np.unpackbits(k, count=4))) for k in keys}
    assert got == {"0000", "0001", "0011", "0111", "1010"}
    tab = fp.PBTable(n_bits=4, keys=keys, log_pb=-np.arange(len(keys), dtype=float), method="full")
    vals = tab.lookup(fc)
    for i, (s, _) in enumerate(fc.most_common()):
        if s in got:
            j = sorted(got).index(s)  # keys are sorted bytewise = lexicographic for 4 bits
            assert vals[i] == -j
        else:
            assert np.isnan(vals[i])


def test_ep_log_pb_equals_direct_log_pb_calls():
    from sgdbayes.gp import log_pb
    from sgdbayes.kernels import nngp_fcn

    sp = boolean_split("0110", 6, seed=1, n=4)
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(12, sp.n_test))
    fc = FunctionCounts.from_bits(bits)
    tab = fp.ep_log_pb(sp.x_train, sp.y_train, sp.x_test, fc, depth=2, sigma_w=1.0, sigma_b=0.5, method="full",
                       chunk=5, cache=False)
    x = torch.cat([sp.x_train, sp.x_test]).double()
    K = nngp_fcn(x, depth=2, sigma_w=1.0, sigma_b=0.5)
    direct = log_pb(K, 2 * sp.y_train.double() - 1, torch.from_numpy(fc.signs()), method="full", likelihood="step")
    np.testing.assert_allclose(tab.lookup(fc), direct.numpy(), rtol=1e-8, atol=1e-10)
    assert tab.n_failed == 0 and tab.method == "full"


def _tiny():
    return boolean_split("0011", 4, seed=0, n=3)


def test_train_functions_sharded_equals_direct_shards_and_resumes(tmp_path):
    sp = _tiny()
    kw = dict(hidden=(8,), optimizer="adam", lr=0.05, batch_size=2, max_epochs=200)
    run = fp.train_functions(sp.x_train, sp.y_train, sp.x_test, n_networks=30, shard_size=10, seed=3,
                             scheduler="sync", progress=False, **kw)
    shards = [fp.train_shard(s, x_train=sp.x_train, y_train=sp.y_train.long(), x_test=sp.x_test, n_networks=10, **kw)
              for s in spawn_seeds(3, 3)]
    direct = fp.merge_training_runs(shards)
    assert run.counts == direct.counts
    assert run.n_networks == 30 == run.n_fitted + run.n_not_fitted + run.n_diverged
    assert run.counts.total == run.n_fitted - run.n_lost_fit
    np.testing.assert_array_equal(run.epochs_hist, direct.epochs_hist)
    # a second call loads every shard from disk: same result, no training
    again = fp.train_functions(sp.x_train, sp.y_train, sp.x_test, n_networks=30, shard_size=10, seed=3,
                               scheduler="sync", progress=False, **kw)
    assert again.counts == run.counts and again.seconds == run.seconds


def test_training_run_reports_not_fitted():
    # S holds one input twice with opposite labels: no network can fit; all must be reported, none counted
    x = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    y = np.array([0, 1, 1])
    run = fp.train_shard(0, x_train=x, y_train=y, x_test=x[:2], n_networks=5, hidden=(4,), batch_size=3,
                         max_epochs=3)
    assert run.n_not_fitted == 5 and run.counts.total == 0 and math.isnan(run.mean_epochs_to_fit)


def test_merge_and_consistency_checks():
    fc = FunctionCounts.from_bits([[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="inconsistent"):
        fp.TrainingRun(counts=fc, n_networks=3, n_fitted=2, n_not_fitted=0, n_diverged=0, n_lost_fit=0,
                       epochs_hist=np.zeros(1, np.int64), seconds=0.0)
    a = fp.TrainingRun(counts=fc, n_networks=3, n_fitted=2, n_not_fitted=1, n_diverged=0, n_lost_fit=0,
                       epochs_hist=np.array([0, 2]), seconds=1.0)
    b = fp.TrainingRun(counts=FunctionCounts.from_bits([[1, 1]]), n_networks=2, n_fitted=2, n_not_fitted=0,
                       n_diverged=0, n_lost_fit=1, epochs_hist=np.array([0, 0, 0, 2]), seconds=2.0)
    m = fp.merge_training_runs([a, b])
    assert (m.n_networks, m.n_fitted, m.n_not_fitted, m.n_lost_fit) == (5, 4, 1, 1)
    np.testing.assert_array_equal(m.epochs_hist, [0, 2, 0, 2])
    assert m.mean_epochs_to_fit == pytest.approx((2 * 1 + 2 * 3) / 4)
    assert m.counts.to_dict() == {"01": 2, "11": 1}


def test_prior_functions_equals_sample_prior():
    from sgdbayes.prior_sampling import sample_prior

    sp = _tiny()
    pr = fp.prior_functions(sp.x_train, sp.y_train, sp.x_test, n_samples=5000, shard_size=2500, seed=2,
                            widths=(8,), scheduler="sync", progress=False, device="cpu")
    direct = [sample_prior(sp.x_train, sp.y_train, sp.x_test, n_samples=2500, widths=(8,), seed=s, device="cpu",
                           progress=False) for s in spawn_seeds(2, 2)]
    assert pr.n_sampled == 5000
    assert pr.counts == FunctionCounts.merge_all([d.counts for d in direct])
    assert pr.n_consistent == sum(d.n_consistent for d in direct)
    lp, rel = pr.log_pb(pr.counts)
    np.testing.assert_allclose(np.exp(lp), pr.counts.counts / pr.n_consistent, rtol=1e-12)
    unseen = np.ones((1, sp.n_test), int) - pr.counts.bits(0)[None].astype(int)  # complement of the top one
    if pr.counts.lookup(unseen)[0] == 0:
        assert pr.log_pb(unseen)[0][0] == -np.inf


def test_lz_of_functions_completes_with_train_labels():
    sp = boolean_split("0011", 32, seed=0)
    fc = FunctionCounts.from_bits(np.stack([sp.target[sp.test_idx], ~sp.target[sp.test_idx]]))
    lz = fp.lz_of_functions(sp, fc)
    for i, (s, _) in enumerate(fc.most_common()):
        full = sp.target.copy()
        full[sp.test_idx] = [c == "1" for c in s]
        assert lz[i] == lz_complexity(full)
    assert 28.0 in lz  # the target itself, K_LZ = 28 as in the paper


def test_resolve_scheduler(monkeypatch):
    assert fp.resolve_scheduler("auto") == "sync"
    monkeypatch.setenv(ENV_SCHEDULER, "tcp://example:8786")
    assert fp.resolve_scheduler("auto") == "tcp://example:8786"
    assert fp.resolve_scheduler("sync") == "sync"
    with pytest.raises(ValueError, match="scheduler"):
        fp.resolve_scheduler("threads")


def test_bad_input():
    sp = _tiny()
    with pytest.raises(ValueError, match="n_networks"):
        fp.train_functions(sp.x_train, sp.y_train, sp.x_test, n_networks=0)
    with pytest.raises(TypeError, match="unknown keyword"):
        fp.train_functions(sp.x_train, sp.y_train, sp.x_test, n_networks=2, optimiser="sgd")
    with pytest.raises(ValueError, match="y_train"):
        fp.train_functions(sp.x_train, np.array([0, 1, 2, 1]), sp.x_test, n_networks=2)


def test_figures_and_explorer_draw_labelled_log_axes():
    import matplotlib

    matplotlib.use("Agg")
    from sgdbayes.plots import function_probability as fplots
    from sgdbayes.widgets import function_probability as fwidget

    _, fc = _hand_made()
    lp = np.log(np.array([0.5, 0.2, 0.05, 0.01, 0.001, 0.002]))
    fig = fplots.figure_scatter_panels([("a", fc, lp, "P_B"), ("b", fc, lp - 1, "P_B")], np.zeros(4), n_test=4)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "probability" in ax.get_xlabel() and "probability" in ax.get_ylabel()
    assert fig.axes[0].get_xlim() == fig.axes[1].get_xlim()  # one range for all panels
    run = fp.TrainingRun(counts=fc, n_networks=42, n_fitted=41, n_not_fitted=1, n_diverged=0, n_lost_fit=1,
                         epochs_hist=np.array([0, 41]), seconds=1.0)
    n_bits, keys = fp._union_keys(fc, 1)
    table = fp.PBTable(n_bits=n_bits, keys=keys, log_pb=np.log(np.full(len(keys), 0.1)), method="full")
    static, widget = fwidget.explorer({"sgd, batch 8": (run, table, np.zeros(4))}, default="sgd, batch 8")
    title = static.texts[0].get_text()
    assert "1 never fitted" in title and "1 lost the fit" in title and "40 counted" in title
    with pytest.raises(ValueError, match="default"):
        fwidget.explorer({"sgd, batch 8": (run, table, np.zeros(4))}, default="adam")


def test_pb_table_merge_prefers_first_valid_value():
    a_bits = np.array([[0, 0, 1], [0, 1, 0], [1, 1, 1]])
    b_bits = np.array([[0, 1, 0], [1, 1, 1], [1, 0, 0]])
    a = fp.PBTable(3, np.packbits(a_bits, axis=1), np.array([-1.0, -2.0, np.nan]), "full")
    b = fp.PBTable(3, np.packbits(b_bits, axis=1), np.array([-20.0, -3.0, -4.0]), "full")
    m = a.merge(b)
    got = m.lookup(np.array([[0, 0, 1], [0, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]]))
    np.testing.assert_array_equal(got[:4], [-1.0, -2.0, -3.0, -4.0])
    assert np.isnan(got[4]) and len(m) == 4 and m.n_failed == 0


def test_ep_marginals_against_exact_orthant_ratios():
    """Boolean n = 3 (8 inputs), |S| = 3: P_B(f_j = 1 | S) from EP against the exact P(S, f_j = +1)/P(S) (4-D
    orthant probabilities of the same NNGP kernel, Genz). EP with the step likelihood is an approximation: within
    0.03 (measured ≤ 0.01). Expected and majority errors equal their definitions computed naively from the marginals."""
    from scipy.stats import multivariate_normal

    sp = boolean_split("first_bit", 3, seed=4, n=3)
    em = fp.ep_marginals(sp.x_train, sp.y_train, sp.x_test, depth=1, sigma_w=1.0, sigma_b=1.0)
    K = fp.nngp_matrix(sp.x_train, sp.x_test, depth=1, sigma_w=1.0, sigma_b=1.0).numpy()
    y = 2.0 * np.asarray(sp.y_train, float) - 1

    def orthant(idx, signs):
        s = np.asarray(signs, float)
        C = s[:, None] * K[np.ix_(idx, idx)] * s[None, :]
        return multivariate_normal(np.zeros(len(s)), C, abseps=1e-7, releps=1e-4, seed=0).cdf(np.zeros(len(s)))

    p_s = orthant([0, 1, 2], y)
    exact = np.array([orthant([0, 1, 2, 3 + j], [*y, 1.0]) / p_s for j in range(sp.n_test)])
    assert em.marginals.shape == (sp.n_test,)
    np.testing.assert_allclose(em.marginals, exact, atol=0.03)
    yt = np.asarray(sp.y_test).astype(bool)
    naive = np.mean([1 - m if t else m for m, t in zip(em.marginals, yt)])
    assert em.expected_error(sp.y_test) == pytest.approx(naive, abs=1e-12)
    assert em.majority_error(sp.y_test) == pytest.approx(np.mean((em.marginals > 0.5) != yt), abs=1e-12)


def test_gp_samplers_are_the_library_samplers_and_cached(tmp_path):
    from sgdbayes.gp.sampling import elliptical_slice, sample_gp_rejection

    sp = boolean_split("first_bit", 3, seed=4, n=3)
    kw = dict(depth=1, sigma_w=1.0, sigma_b=1.0)
    K = fp.nngp_matrix(sp.x_train, sp.x_test, **kw)
    y = torch.as_tensor(2.0 * np.asarray(sp.y_train, float) - 1)
    rej = fp.gp_exact_functions(sp.x_train, sp.y_train, sp.x_test, n_samples=20_000, seed=3, **kw)
    ref = sample_gp_rejection(K, y, n_samples=20_000, seed=3)
    assert rej.n_consistent == ref.n_consistent and rej.counts == ref.counts
    again = fp.gp_exact_functions(sp.x_train, sp.y_train, sp.x_test, n_samples=20_000, seed=3, **kw)
    assert again.counts == rej.counts
    ess = fp.gp_posterior_marginals(sp.x_train, sp.y_train, sp.x_test, n_chains=4, n_steps=10, burn_in=5, seed=1,
                                    **kw)
    ref_ess = elliptical_slice(K, y, n_chains=4, n_steps=10, burn_in=5, seed=1)
    np.testing.assert_array_equal(ess.chain_marginals, ref_ess.chain_marginals)
    # the two samplers agree on the marginals within their Monte-Carlo errors
    p_rej = rej.counts.marginals()
    se_rej = np.sqrt(p_rej * (1 - p_rej) / rej.n_consistent)
    big = fp.gp_posterior_marginals(sp.x_train, sp.y_train, sp.x_test, n_chains=100, n_steps=200, burn_in=50,
                                    seed=2, **kw)
    assert np.all(np.abs(big.marginals - p_rej) <= 5 * np.hypot(big.marginal_se, se_rej) + 1e-3)
