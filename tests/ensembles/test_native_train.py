"""The native path of train_ensemble (``sgdbayes.ensembles.fused.train_runs``): whole runs in the compiled kernel.

Against independent truths: numpy's SeedSequence (the vectorised network streams), ``model.init`` (the native
initialisation, bit for bit), ``epoch_permutations`` + the epoch kernel (the kernel's own visiting orders, bit for
bit), each network trained alone (pairing, slices and threads never change a result), and the torch paths of
``train_ensemble`` (statuses, epochs, functions exactly; parameters to float rounding) for both stop rules, both
losses and minibatches that put 4, 2 or 1 networks in a vector register."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sgdbayes.ensembles.train as train_mod
from sgdbayes.ensembles import FCN, StopRule, epoch_permutations, network_streams, train_ensemble
from sgdbayes.ensembles.fused import init_params, native_kernel, sgd_epoch, train_runs
from sgdbayes.ensembles.train import _seed_sequence_words

from test_train import boolean_data  # noqa: E402  (tests/ensembles is on sys.path under pytest)

needs_native = pytest.mark.skipif(native_kernel(FCN(5, (16, 12)), 4) is None,
                                  reason="no C++ compiler here: the native kernel is not built (torch path only)")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1, 2**32, 2**64 + 5, 2**140 + 3])
def test_network_streams_equal_seed_sequence(seed):
    idx = np.array([0, 1, 7, 2**31, 2**32 - 1] + list(np.random.default_rng(seed % 97).integers(0, 2**32, 20)),
                   dtype=np.uint64)
    ours = _seed_sequence_words(seed, idx)
    ref = np.stack([np.random.SeedSequence(seed, spawn_key=(int(i),)).generate_state(4, dtype=np.uint32)
                    for i in idx])
    np.testing.assert_array_equal(ours, ref)
    # the public function, including an index beyond 2^32 (SeedSequence itself)
    init, keys = network_streams(seed, [3, 2**33 + 1])
    for j, i in enumerate((3, 2**33 + 1)):
        w = np.random.SeedSequence(seed, spawn_key=(i,)).generate_state(4, dtype=np.uint32)
        assert init[j] == (int(w[0]) << 31) | (int(w[1]) >> 1)
        assert keys[j].tolist() == [int(w[2]), int(w[3])]


@pytest.mark.parametrize("model", [FCN(7, (40, 40), sigma_b=1.0), FCN(13, (5,), sigma_w=1.7, sigma_b=0.3),
                                   FCN(2, (3,))])  # the last has 13 parameters (< 16): torch's own init
def test_init_params_equal_model_init_bit_for_bit(model):
    seeds, _ = network_streams(11, range(9))
    ours, ref = init_params(model, seeds), model.init(seeds)
    for a, b in zip(ours, ref, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and a.is_contiguous()
        assert torch.equal(a.view(torch.int32), b.view(torch.int32))


def _unfittable(n=24, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g)
    y = torch.rand(n, generator=g) < 0.5
    X[-1], y[-1] = X[0], ~y[0]  # no network fits: every run lasts max_epochs
    return X, y


@needs_native
@pytest.mark.parametrize("B", [3, 8, 16])
def test_kernel_visiting_orders_equal_epoch_permutations(B):
    """train_runs (orders generated in the kernel) and sgd_epoch fed epoch_permutations: the same parameters bit for
    bit after 5 epochs, for 4, 2 and 1 networks per vector."""
    model = FCN(6, (12, 9), sigma_b=0.5)
    X, y = _unfittable()
    seeds, keys = network_streams(4, range(7))
    pa, pb = model.init(seeds), model.init(seeds)
    rec = train_runs(model, pa, X, y.float(), y, keys, lr=0.05, loss="ce", batch_size=B, threshold=0.0,
                     max_epochs=5, threads=1)
    assert (rec["status"] == "not_fitted").all() and (rec["epochs_trained"] == 5).all()
    for e in range(1, 6):
        sgd_epoch(model, pb, X, y.float(), y, epoch_permutations(keys, e, X.shape[0]), lr=0.05, batch_size=B,
                  check=False, threads=1, use_native=True)
    for a, b in zip(pa, pb, strict=True):
        assert torch.equal(a, b)


@needs_native
@pytest.mark.parametrize("B,loss", [(4, "ce"), (8, "mse"), (16, "ce")])
def test_results_do_not_depend_on_neighbours_slices_or_threads(B, loss):
    """Each network trained alone, all together in one thread, and all together over 3 threads: bit-identical
    parameters and records (a finished network is never touched while its register neighbours train on)."""
    X, y, Xe = boolean_data(seed=3)
    model = FCN(5, (16, 12), sigma_w=1.3, sigma_b=0.2)
    M = 9
    seeds, keys = network_streams(2, range(M))
    target = y.float() if loss == "ce" else 2.0 * y.float() - 1.0
    kw = dict(lr=0.1 if B < 16 else 0.5, loss=loss, batch_size=B, threshold=0.0, max_epochs=150, overtrain_epochs=2,
              X_test=Xe)
    runs = []
    for threads in (1, 3):
        p = model.init(seeds)
        runs.append((train_runs(model, p, X, target, y.bool(), keys, threads=threads, **kw), p))
    alone = []
    for m in range(M):
        p = model.init(seeds[m:m + 1])
        alone.append((train_runs(model, p, X, target, y.bool(), keys[m:m + 1], threads=1, **kw), p))
    assert len(set(runs[0][0]["epochs_trained"].tolist())) >= 2, "runs must end at different epochs"
    rec_alone = {k: np.concatenate([a[0][k] for a in alone]) for k in runs[0][0] if k != "test_labels"}
    rec_alone["test_labels"] = torch.cat([a[0]["test_labels"] for a in alone])
    params_alone = [torch.cat([a[1][k] for a in alone]) for k in range(len(model.param_shapes))]
    for rec, params in [runs[1], (rec_alone, params_alone)]:
        for k in runs[0][0]:
            if k == "test_labels":
                assert torch.equal(rec[k], runs[0][0][k])
            else:
                np.testing.assert_array_equal(rec[k], runs[0][0][k], err_msg=k)
        for a, b in zip(params, runs[0][1], strict=True):
            assert torch.equal(a, b)


CASES = [  # (loss, mse_targets, batch, stop rule, overtrain, lr)
    ("ce", "pm1", 8, "clean", 3, 0.1),
    ("mse", "pm1", 3, "clean", 0, 0.05),
    ("mse", "01", 16, "clean", 2, 0.05),        # fit at threshold 0.5
    ("ce", "pm1", 16, "clean", 0, 0.3),         # full batch (|S| = 16)
    ("ce", "pm1", 4, StopRule.keras(wait=2, runs_per_process=3), 0, 0.1),
    ("ce", "pm1", 8, StopRule.keras(wait=0, shared_callback=False), 0, 0.1),
]


@needs_native
@pytest.mark.parametrize("loss,mse_targets,B,rule,k_over,lr", CASES,
                         ids=[f"{c[0]}-{c[1]}-B{c[2]}-{getattr(c[3], 'kind', c[3])}-k{c[4]}" for c in CASES])
def test_native_path_equals_torch_paths(monkeypatch, loss, mse_targets, B, rule, k_over, lr):
    """train_ensemble on the native path against its torch path (fused step), same seeds: statuses, first fits,
    epochs, stop floors, processes, functions, fit by sign and accuracies exactly; parameters and losses to float
    rounding."""
    X, y, Xe = boolean_data(seed=8)
    model = FCN(5, (16, 12), sigma_w=1.3, sigma_b=0.2)
    kw = dict(n_networks=10, seed=5, optimizer="sgd", lr=lr, loss=loss, mse_targets=mse_targets, batch_size=B,
              max_epochs=200, overtrain_epochs=k_over, stop_rule=rule, return_params=True, progress=False)
    native = train_ensemble(model, X, y, Xe, **kw)
    monkeypatch.setattr(train_mod, "NATIVE_SGD", False)
    ref = train_ensemble(model, X, y, Xe, **kw)
    assert native.config["path"] == "native" and ref.config["path"] == "torch"
    assert native.fitted.sum() >= 7, "too few networks fitted for a meaningful comparison"
    for name in ("status", "epochs_to_fit", "epochs_trained", "train_accuracy", "fits_by_sign", "stop_floor",
                 "process", "leader"):
        np.testing.assert_array_equal(getattr(native, name), getattr(ref, name), err_msg=name)
    assert torch.equal(native.test_labels, ref.test_labels)
    np.testing.assert_allclose(native.train_loss, ref.train_loss, rtol=1e-4, atol=1e-6)
    for p, q in zip(native.params, ref.params, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@needs_native
def test_native_divergence_and_budget_match_torch(monkeypatch):
    X, y, Xe = boolean_data(seed=5)
    model = FCN(5, (16,), sigma_w=1.0, sigma_b=0.1)
    kw = dict(n_networks=4, seed=0, optimizer="sgd", lr=1e4, loss="mse", batch_size=4, max_epochs=500, progress=False)
    native = train_ensemble(model, X, y, Xe, **kw)
    monkeypatch.setattr(train_mod, "NATIVE_SGD", False)
    ref = train_ensemble(model, X, y, Xe, **kw)
    assert native.config["path"] == "native"
    assert (native.status == "diverged").all() and not native.counted.any()
    np.testing.assert_array_equal(native.epochs_trained, ref.epochs_trained)
    assert native.function_counts().total == 0  # never counted
    Xu, yu = torch.cat([X, X[:1]]), torch.cat([y, 1 - y[:1]])  # unfittable
    monkeypatch.setattr(train_mod, "NATIVE_SGD", True)
    res = train_ensemble(model, Xu, yu, Xe, n_networks=3, seed=1, optimizer="sgd", lr=0.05, batch_size=5,
                         max_epochs=7, progress=False)
    assert (res.status == "not_fitted").all() and (res.epochs_trained == 7).all() and (res.epochs_to_fit == -1).all()
    assert (res.train_accuracy < 1).all()


@needs_native
def test_screened_check_is_exact_for_the_fit_and_finiteness():
    """sgd_epoch(check="screen"): the fit at the threshold and finiteness equal the full check's; statistics are
    complete exactly where the full check was needed (fitted networks) and NaN elsewhere."""
    model = FCN(7, (40, 40), sigma_b=1.0)
    g = torch.Generator().manual_seed(0)
    X = torch.rand(64, 7, generator=g)
    y = X[:, 0] > 0.5  # learnable: some networks fit after a few epochs
    seeds, keys = network_streams(0, range(40))
    params = model.init(seeds)
    for e in range(1, 30):
        perm = epoch_permutations(keys, e, 64)
        before = [p.clone() for p in params]
        full = sgd_epoch(model, params, X, y.float(), y, perm, lr=0.5, batch_size=8, threshold=0.0, check=True)
        after = [p.clone() for p in params]
        for p, q in zip(params, before, strict=True):
            p.copy_(q)
        screen = sgd_epoch(model, params, X, y.float(), y, perm, lr=0.5, batch_size=8, threshold=0.0,
                           check="screen")
        assert all(torch.equal(p, q) for p, q in zip(params, after, strict=True))
        np.testing.assert_array_equal(screen.fits(0.0), full.fits(0.0))
        np.testing.assert_array_equal(screen.finite, full.finite)
        assert screen.complete[full.fits(0.0)].all() and full.complete.all()
        np.testing.assert_array_equal(screen.accuracy[screen.complete], full.accuracy[screen.complete])
        assert np.isnan(screen.accuracy[~screen.complete]).all()
    assert full.fits(0.0).any() and not full.fits(0.0).all(), "need both fitted and unfitted networks"
    assert (~screen.complete).any(), "the screen must have stopped early somewhere"


def test_native_path_reported_and_switchable(monkeypatch):
    X, y, Xe = boolean_data(seed=1)
    model = FCN(5, (16,))
    kw = dict(n_networks=2, optimizer="sgd", lr=0.1, batch_size=4, max_epochs=5, progress=False)
    expected = "native" if native_kernel(model, 4) is not None else "torch"
    assert train_ensemble(model, X, y, Xe, **kw).config["path"] == expected
    assert train_ensemble(model, X, y, Xe, **{**kw, "optimizer_kwargs": {"momentum": 0.9}}).config["path"] == "torch"
    assert train_ensemble(model, X, y, Xe, **{**kw, "optimizer": "adam"}).config["path"] == "torch"
    monkeypatch.setattr(train_mod, "NATIVE_SGD", False)
    assert train_ensemble(model, X, y, Xe, **kw).config["path"] == "torch"


def test_train_runs_argument_errors():
    model = FCN(5, (16,))
    X, y = _unfittable(d=5)
    seeds, keys = network_streams(0, range(2))
    params = model.init(seeds)
    kw = dict(lr=0.1, loss="ce", batch_size=4, threshold=0.0, max_epochs=3)
    with pytest.raises(ValueError, match="rule must be"):
        train_runs(model, params, X, y.float(), y, keys, rule="early", **kw)
    with pytest.raises(ValueError, match="unknown loss"):
        train_runs(model, params, X, y.float(), y, keys, **{**kw, "loss": "hinge"})
    if native_kernel(model, 4) is not None:
        with pytest.raises(ValueError, match="keys must be"):
            train_runs(model, params, X, y.float(), y, keys[:1], **kw)
        with pytest.raises(ValueError, match="X_test must be"):
            train_runs(model, params, X, y.float(), y, keys, X_test=torch.zeros(3, 4), **kw)
