"""Tests of sgdbayes.experiments.function_probability_images against independent computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import log_ndtr
from scipy.stats import multivariate_normal

from sgdbayes.chapters import parse_parameters
from sgdbayes.distributed import ENV_SCHEDULER
from sgdbayes.ensembles import FCN, StopRule, train_ensemble
from sgdbayes.experiments import function_probability_images as fpi
from sgdbayes.functions import FunctionCounts
from sgdbayes.params import ParameterError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SGDBAYES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_SCHEDULER, raising=False)


# ------------------------------------------------------------------------------------------------------ parameters
def _profiles():
    import yaml

    defaults = parse_parameters(ROOT / "book" / "function_probability_images.py")
    spec = yaml.safe_load((ROOT / "book" / "profiles.yml").read_text())["chapters"][fpi.CHAPTER]
    return defaults, {name: {**defaults, **spec.get(name, {}), "profile": name} for name in ("smoke", "paper")}


def test_parameters_cell_matches_the_spec_and_every_profile_passes():
    defaults, profiles = _profiles()
    assert sorted(defaults) == sorted(fpi.PARAMETERS.names)
    fpi.PARAMETERS.check(defaults)
    for values in profiles.values():
        fpi.PARAMETERS.check(values)


@pytest.mark.parametrize("change, needle", [
    ({"csr_inputs": 5000}, "csr_inputs"),
    ({"mnist_n_train": 4950}, "5000"),
    ({"mnist_runs_per_process": 7}, "divide"),
    ({"csr_radii": []}, "csr_radii"),
    ({"extra_datasets": ["imdb"]}, "extra_datasets"),
])
def test_bad_parameters_are_refused_with_their_name(change, needle):
    defaults, _ = _profiles()
    with pytest.raises(ParameterError, match=needle):
        fpi.PARAMETERS.check({**defaults, **change})


# ------------------------------------------------------------------------------------------------------ data
def test_subset_split_is_held_out_and_parity_labelled():
    from sgdbayes.data import mnist_subset_arrays

    sp = _np(fpi.load_split("subset", 30, 10, seed=3, binarize="parity"))
    _, digits = mnist_subset_arrays()
    assert not set(sp.train_index) & set(sp.test_index)
    np.testing.assert_array_equal(sp.y_train, (digits[sp.train_index] % 2 == 0).astype(np.int64))
    np.testing.assert_array_equal(sp.y_test, (digits[sp.test_index] % 2 == 0).astype(np.int64))
    thr = _np(fpi.load_split("subset", 30, 10, seed=3, binarize="threshold"))
    np.testing.assert_array_equal(thr.y_test, (digits[thr.test_index] >= 5).astype(np.int64))
    assert sp.x_train.shape == (30, 784) and sp.x_train.dtype == np.float32 and sp.x_train.max() <= 1.0
    img = _np(fpi.load_split("subset", 30, 10, seed=3, flatten=False, downsample=2))
    assert img.input_shape == (1, 14, 14)
    # a 2x2 block average of the flat 28x28 digit
    full = sp.x_train[0].reshape(28, 28)
    np.testing.assert_allclose(img.x_train[0, 0], full.reshape(14, 2, 14, 2).mean((1, 3)), rtol=1e-6)


def test_ionosphere_split_follows_the_authors_row_order():
    sp = fpi.load_split("ionosphere", 50, 20)
    perm = np.random.RandomState(708).permutation(351)
    np.testing.assert_array_equal(sp.train_index, perm[:50])
    np.testing.assert_array_equal(sp.test_index, perm[50:70])


def test_load_split_names_bad_values():
    with pytest.raises(ValueError, match="unknown source 'imagenet'"):
        fpi.load_split("imagenet", 10, 10)
    with pytest.raises(ValueError, match="binarize"):
        fpi.load_split("subset", 10, 10, binarize="odd")


# ------------------------------------------------------------------------------------------------------ training
def _np(sp):
    """A Split with numpy arrays in place of its tensors (for the tests' direct computations)."""
    from dataclasses import replace

    return replace(sp, **{k: getattr(sp, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")})


def _tiny(n_train=40, n_test=12, seed=1):
    return _np(fpi.load_split("subset", n_train, n_test, seed=seed, downsample=7))  # 16 features


KERAS = {"kind": "keras", "threshold": 0.5, "wait": 2, "shared_callback": True, "runs_per_process": 3,
         "label_threshold": 0.5}


@pytest.mark.parametrize("stop", [KERAS, {"kind": "clean"}])
def test_train_shard_with_csr_split_trains_the_same_networks_as_one_call(stop):
    sp = _tiny()
    arch = {"kind": "fcn", "hidden": [8], "sigma_w": 1.0, "sigma_b": 0.1}
    res, csr = fpi.train_shard(7, x_train=sp.x_train, y_train=sp.y_train, x_test=sp.x_test, arch=arch,
                               n_networks=8, lr=0.2, loss="mse", mse_targets="01", batch_size=8, max_epochs=300,
                               overtrain_epochs=0 if stop["kind"] == "keras" else 2, stop=stop, csr_networks=4,
                               csr_radii=[0.05], csr_inputs=10, device="cpu")
    ref = train_ensemble(FCN(16, (8,), sigma_w=1.0, sigma_b=0.1), torch.from_numpy(sp.x_train),
                         torch.from_numpy(sp.y_train), torch.from_numpy(sp.x_test), n_networks=8, seed=7, lr=0.2,
                         loss="mse", mse_targets="01", batch_size=8, max_epochs=300,
                         overtrain_epochs=0 if stop["kind"] == "keras" else 2, stop_rule=fpi._stop_rule(stop),
                         device="cpu", progress=False)
    assert torch.equal(res.test_labels, ref.test_labels)
    np.testing.assert_array_equal(res.status, ref.status)
    np.testing.assert_array_equal(res.epochs_trained, ref.epochs_trained)
    np.testing.assert_array_equal(res.process, ref.process)
    assert np.isfinite(csr[0, :4]).all() and np.isnan(csr[0, 4:]).all()


def test_csr_of_linear_networks_is_the_closed_form():
    """For a linear classifier the authors' search is exact: x is critical iff |w·x + b − c| < r‖w‖₁."""
    sp = _tiny(n_train=40, n_test=6)
    arch = {"kind": "fcn", "hidden": [], "sigma_w": 1.0, "sigma_b": 0.5}
    r = 0.02
    res, csr = fpi.train_shard(3, x_train=sp.x_train, y_train=sp.y_train, x_test=sp.x_test, arch=arch,
                               n_networks=5, lr=0.1, loss="mse", mse_targets="01", batch_size=40, max_epochs=2,
                               stop=KERAS, csr_networks=5, csr_radii=[r], csr_inputs=30, device="cpu")
    ref = train_ensemble(FCN(16, (), sigma_w=1.0, sigma_b=0.5), torch.from_numpy(sp.x_train),
                         torch.from_numpy(sp.y_train), torch.from_numpy(sp.x_test), n_networks=5, seed=3, lr=0.1,
                         loss="mse", mse_targets="01", batch_size=40, max_epochs=2, stop_rule=fpi._stop_rule(KERAS),
                         return_params=True, device="cpu", progress=False)
    W, b = ref.params[0][:, 0, :].double(), ref.params[1][:, 0].double()
    x = torch.from_numpy(sp.x_train[:30]).double()
    margin = (x @ W.T + b - 0.5).abs()                       # [30, 5]
    expected = (margin < r * W.abs().sum(1)).double().mean(0).numpy()
    np.testing.assert_allclose(csr[0], expected, atol=1e-12)
    assert 0 < expected.mean() < 1                          # the case is not trivial


def test_train_run_merges_shards_with_distinct_processes_and_reports_every_network():
    sp = _tiny()
    arch = {"kind": "fcn", "hidden": [8], "sigma_w": 1.0, "sigma_b": 0.1}
    run = fpi.train_run(sp.x_train, sp.y_train, sp.x_test, arch=arch, n_networks=12, shard_size=6, lr=0.2,
                        loss="mse", mse_targets="01", batch_size=8, max_epochs=300, stop=KERAS, scheduler="sync",
                        device="cpu")
    r = run.result
    assert r.n_networks == 12
    assert sorted(set(r.process)) == [0, 1, 2, 3]                       # 2 processes per shard, distinct
    assert r.leader.sum() == 4 and (r.process[r.leader] == np.arange(4)).all()
    # P_SGD from the followers only; its counts are the followers' labellings
    kept = r.counted & ~r.leader
    np.testing.assert_array_equal(run.kept, kept)
    assert run.counts().total == kept.sum()
    direct = FunctionCounts.from_bits(r.test_labels.numpy()[kept], sp.n_test)
    assert run.counts() == direct
    row = fpi.run_summary(run, sp.y_test)
    assert row["fitted"] + row["never fitted"] + row["diverged"] == 12
    assert row["top-1 mass"] == pytest.approx(direct.counts.max() / direct.total)
    errors = (r.test_labels.numpy()[kept] != sp.y_test.astype(bool)).mean(1)
    assert row["mean test error"] == pytest.approx(errors.mean())
    assert row["counted, not fitting S as read"] == 0      # fit test and reading share the 0.5 threshold


def test_train_run_refuses_processes_straddling_shards():
    sp = _tiny()
    arch = {"kind": "fcn", "hidden": [8], "sigma_w": 1.0, "sigma_b": 0.1}
    with pytest.raises(ValueError, match="runs_per_process = 3 must divide shard_size = 4"):
        fpi.train_run(sp.x_train, sp.y_train, sp.x_test, arch=arch, n_networks=8, shard_size=4, stop=KERAS)
    with pytest.raises(ValueError, match="arch"):
        fpi.train_run(sp.x_train, sp.y_train, sp.x_test, arch={"kind": "rnn"}, n_networks=2)


# ------------------------------------------------------------------------------------------------------ posteriors
def test_cnn_kernel_matches_monte_carlo_over_the_ensembles_initialisation():
    sp = _np(fpi.load_split("subset", 3, 2, seed=0, flatten=False, downsample=4))    # 7x7 images
    arch = {"kind": "cnn", "channels": [6], "kernel_size": 3, "padding": "valid", "sigma_w": 1.3, "sigma_b": 0.2}
    K = fpi.kernel_matrix(sp.x_train, sp.x_test, arch=arch)
    model = fpi.make_model(arch, sp.input_shape)
    x = torch.from_numpy(np.concatenate([sp.x_train, sp.x_test]))
    M = 20000
    params = model.init(list(range(M)))
    out = model.forward(params, x.unsqueeze(0).expand(M, *x.shape).contiguous()).double()   # [M, 5]
    mc = (out.T @ out / M).numpy()
    prod = out[:, :, None] * out[:, None, :]
    se = (prod.std(0) / math.sqrt(M)).numpy()
    assert np.all(np.abs(mc - K) < 5 * se + 1e-9)


def _toy_kernel(n_s=6, n_e=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_s + n_e, 3))
    K = np.exp(-0.5 * ((x[:, None] - x[None]) ** 2).sum(-1)) + 1e-6 * np.eye(n_s + n_e)
    y = (x[:n_s, 0] > 0).astype(np.int64)
    return K, y


@pytest.mark.parametrize("name, t, c", [("regression_pm1", "pm1", 0.0), ("regression_01_authors", "01", 0.0),
                                        ("regression_01_at_half", "01", 0.5)])
def test_regression_log_pb_against_the_exact_gaussian(name, t, c):
    K, y = _toy_kernel()
    n_s = y.size
    A = K[:n_s, :n_s] + 0.002 * np.eye(n_s)
    targets = 2.0 * y - 1 if t == "pm1" else y.astype(float)
    mu = K[n_s:, :n_s] @ np.linalg.solve(A, targets)
    cov = K[n_s:, n_s:] - K[n_s:, :n_s] @ np.linalg.solve(A, K[:n_s, n_s:]) + 0.002 * np.eye(2)
    bits = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=bool)
    v = fpi.log_pb_values(K, y, bits, posterior=name, noise_var=0.002)
    # exact orthant probabilities of N(mu - c, cov)
    exact = []
    for f in bits:
        s = np.where(f, 1.0, -1.0)
        exact.append(multivariate_normal(mean=np.zeros(2), cov=s[:, None] * cov * s[None, :]).cdf(s * (mu - c)))
    assert np.exp(v.log_pb).sum() == pytest.approx(1.0, abs=0.03)
    np.testing.assert_allclose(np.exp(v.log_pb), exact, rtol=0.05, atol=1e-3)
    # one test point: EP is exact
    v1 = fpi.log_pb_values(K[:n_s + 1, :n_s + 1], y, np.array([[1], [0]], dtype=bool), posterior=name)
    z = (mu[0] - c) / math.sqrt(cov[0, 0])
    np.testing.assert_allclose(v1.log_pb, [log_ndtr(z), log_ndtr(-z)], rtol=1e-9)


def test_zero_one_full_ratio_against_rejection_sampling():
    K, y = _toy_kernel(n_s=4, n_e=2, seed=2)
    bits = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=bool)
    v = fpi.log_pb_values(K, y, bits, posterior="zero_one", method="full")
    rng = np.random.default_rng(0)
    g = rng.multivariate_normal(np.zeros(6), K, size=400_000)
    keep = ((g[:, :4] > 0) == y.astype(bool)).all(1)
    lab = g[keep, 4:] > 0
    freq = np.array([np.mean((lab == b).all(1)) for b in bits])
    se = np.sqrt(freq * (1 - freq) / keep.sum())
    assert keep.sum() > 10_000
    # EP's error on a 6-point step likelihood is a few per cent of P
    np.testing.assert_allclose(np.exp(v.log_pb), freq, rtol=0.15, atol=5 * se.max())


def test_ep_failures_are_counted_not_dropped(monkeypatch):
    import sgdbayes.gp as gp

    K, y = _toy_kernel()
    real = gp.log_pb

    def flaky(K, y, f, **kw):
        if f.shape[0] > 1 or bool((f[0] > 0).all()):
            raise gp.EPConvergenceError("did not converge (test)")
        return real(K, y, f, **kw)

    monkeypatch.setattr(gp, "log_pb", flaky)
    bits = np.array([[0, 0], [0, 1], [1, 1]], dtype=bool)
    v = fpi.log_pb_values(K, y, bits, posterior="regression_pm1")
    assert v.n_failed == 1 and np.isnan(v.log_pb[2]) and np.isfinite(v.log_pb[:2]).all()


def test_posterior_samples_have_the_posteriors_marginals():
    K, y = _toy_kernel(n_s=6, n_e=3, seed=4)
    post = fpi.posteriors(K, y, names=["regression_01_at_half"])["regression_01_at_half"]
    n = 40_000
    samples = fpi.posterior_samples(post, n, seed=1)
    p = post.p_one().numpy()
    assert samples.total == n
    np.testing.assert_allclose(samples.marginals(), p, atol=4 * np.sqrt(p * (1 - p) / n).max() + 1e-9)


def test_union_bits_and_lookup():
    a = FunctionCounts.from_bits(np.array([[1, 0], [1, 0], [0, 0]]), 2)
    b = FunctionCounts.from_bits(np.array([[0, 1], [0, 0], [0, 1]]), 2)

    class R:
        def __init__(self, c):
            self._c = c
            self.result = type("X", (), {"test_labels": torch.zeros(1, 2)})()

        def counts(self):
            return self._c

    u = fpi.union_bits([R(a), R(b)])
    assert u.tolist() == [[True, False], [False, False], [False, True]]
    assert fpi.union_bits([R(a), R(b)], top=1).tolist() == [[True, False], [False, True]]
    pv = fpi.PBValues(bits=u, log_pb=np.log([0.5, 0.2, 0.1]), posterior="zero_one", method="full", n_failed=0)
    np.testing.assert_allclose(pv.lookup(b), np.log([0.1, 0.2]))
    assert np.isnan(pv.lookup_bits(np.array([[True, True]]))[0])


def test_pairing_table_against_a_direct_computation():
    """Two functions with P_SGD 3/4 and 1/4 against hand-set P_B values."""

    class R:
        def __init__(self, c):
            self._c = c

        def counts(self):
            return self._c

    c = FunctionCounts.from_bits(np.array([[1, 0], [1, 0], [1, 0], [0, 0]]), 2)
    bits = np.array([[True, False], [False, False]])
    pb = np.array([0.5, 0.0001])
    tables = {"zero_one": fpi.PBValues(bits, np.log(pb), "zero_one", "full", 0)}

    class Post:
        def p_one(self):
            return torch.tensor([0.9, 0.2])

        def total_entropy(self):
            return 1.25

    df = fpi.pairing_table({"A": R(c)}, tables, {"zero_one": Post()}, np.array([1, 0]))
    row = df.iloc[0]
    ratios = {"10": math.log10(0.75 / 0.5), "00": math.log10(0.25 / 0.0001)}
    assert row["log10 P_SGD(top)"] == pytest.approx(math.log10(0.75))
    assert row["median log10 P_SGD/P_B"] == pytest.approx(ratios["10"])     # 3/4 of the mass at the smaller ratio
    assert row["mass within 10×"] == pytest.approx(0.75)
    assert row["mean |marginal gap|"] == pytest.approx((abs(0.75 - 0.9) + abs(0.0 - 0.2)) / 2)
    assert row["P_SGD mass evaluated"] == pytest.approx(1.0)


def test_posterior_table_is_consistent_with_the_gaussian():
    K, y = _toy_kernel(n_s=6, n_e=3, seed=5)
    posts = fpi.posteriors(K, y)
    y_test = np.array([1, 0, 1])
    df = fpi.posterior_table(posts, y_test)
    for name, post in posts.items():
        p = post.p_one().numpy()
        maj = (post.mean.numpy() > post.threshold).astype(int)
        assert df.loc[name, "majority labelling's test error"] == pytest.approx(np.mean(maj != y_test))
        assert df.loc[name, "expected test error"] == pytest.approx(np.mean(np.where(y_test == 1, 1 - p, p)))
        h = -(p * np.log(p) + (1 - p) * np.log1p(-p))
        assert df.loc[name, "Σ_j entropy (nats)"] == pytest.approx(h.sum(), rel=1e-9)


def test_downloaded_sources_take_the_first_training_and_test_images(monkeypatch):
    import sgdbayes.data as data

    rng = np.random.default_rng(0)
    x_tr = rng.integers(0, 256, size=(50, 1, 28, 28), dtype=np.uint8)
    x_te = rng.integers(0, 256, size=(20, 1, 28, 28), dtype=np.uint8)
    y_tr, y_te = rng.integers(0, 10, 50), rng.integers(0, 10, 20)
    monkeypatch.setattr(data, "image_arrays", lambda name: (x_tr, y_tr, x_te, y_te))
    sp = _np(fpi.load_split("mnist", 12, 5, binarize="parity"))
    np.testing.assert_array_equal(sp.train_index, np.arange(12))
    np.testing.assert_array_equal(sp.test_index, np.arange(5))
    np.testing.assert_allclose(sp.x_train, x_tr[:12].reshape(12, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(sp.y_test, (y_te[:5] % 2 == 0).astype(np.int64))
    rnd = fpi.load_split("fashion-mnist", 12, 5, train_order="random", seed=4)
    np.testing.assert_array_equal(rnd.train_index, np.random.default_rng(4).permutation(50)[:12])
    with pytest.raises(ValueError, match="asked for"):
        fpi.load_split("mnist", 60, 5)


def test_panel_is_consistent_with_its_parts():
    arch = {"kind": "cnn", "channels": [2], "kernel_size": 3, "padding": "valid", "sigma_w": 1.0, "sigma_b": 0.1}
    p = fpi.panel("t", "subset", 30, 8, arch=arch, n_networks=8, shard_size=8, downsample=4, lr=0.2,
                  max_epochs=400, stop={"kind": "clean"}, min_count=2, ep_full_max=3, error_samples=500,
                  device="cpu")
    c = p.run.counts()
    assert p.sgd_errors.sum() == pytest.approx(1) and p.pb_errors.sum() == pytest.approx(1)
    assert p.sgd_errors.size == p.n_test + 1
    # the full ratio went to (at most 3 of) the functions seen at least twice; the two-stage form to all
    full_keys = {np.packbits(b).tobytes() for b in p.full.bits}
    frequent = [np.packbits(b).tobytes() for b, n in zip(c.bits(), c.counts) if n >= 2][:3]
    assert full_keys == set(frequent)
    assert p.two_stage.bits.shape[0] == c.n_distinct
    assert p.summary["counted"] == c.total


def test_prior_csr_of_linear_networks_is_the_closed_form():
    from sgdbayes.seed import spawn_seeds

    x = _tiny(n_train=25).x_train
    arch = {"kind": "fcn", "hidden": [], "sigma_w": 1.0, "sigma_b": 0.3}
    got = fpi.prior_csr(x, arch=arch, n_networks=6, radii=[0.01, 0.05], seed=2)
    params = FCN(16, (), sigma_w=1.0, sigma_b=0.3).init(spawn_seeds(2, 6))
    W, b = params[0][:, 0, :].double(), params[1][:, 0].double()
    margin = (torch.from_numpy(x).double() @ W.T + b).abs()
    for row, r in zip(got, [0.01, 0.05], strict=True):
        np.testing.assert_allclose(row, (margin < r * W.abs().sum(1)).double().mean(0).numpy(), atol=1e-12)
    assert got[0].mean() < got[1].mean()
