"""train_ensemble against the same networks trained one at a time with torch.nn + torch.optim."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from sgdbayes.ensembles import CNN, FCN, epoch_permutations, network_streams, train_ensemble

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: one thread is faster and deterministic


TORCH_OPT = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad,
             "rmsprop": torch.optim.RMSprop, "adadelta": torch.optim.Adadelta}


def boolean_data(n_bits=5, n_train=16, seed=0):
    X = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n_bits)))
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(2**n_bits, generator=g) < 0.5).long()
    p = torch.randperm(2**n_bits, generator=g)
    return X[p[:n_train]], y[p[:n_train]], X[p[n_train:]]


def fcn_module(model: FCN, params, m: int) -> nn.Sequential:
    """The torch.nn version of network m, built here independently of FCN.to_module."""
    layers = []
    for k, (a, b) in enumerate(zip(model.widths[:-1], model.widths[1:])):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(params[2 * k][m])
            lin.bias.copy_(params[2 * k + 1][m])
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def cnn_module(model: CNN, params, m: int) -> nn.Sequential:
    layers = []
    c_in = model.in_shape[0]
    for k, c in enumerate(model.channels):
        conv = nn.Conv2d(c_in, c, model.kernel_size, padding=model.padding)
        with torch.no_grad():
            conv.weight.copy_(params[2 * k][m])
            conv.bias.copy_(params[2 * k + 1][m])
        layers += [conv, nn.ReLU()]
        c_in = c
    lin = nn.Linear(model.n_features, 1)
    with torch.no_grad():
        lin.weight.copy_(params[-2][m])
        lin.bias.copy_(params[-1][m])
    return nn.Sequential(*layers, nn.Flatten(), lin)


def train_one(model, build, X, y, Xe, *, index, seed, optimizer, lr, kw, loss, mse_targets="pm1", batch_size,
              max_epochs, overtrain=0):
    """One network, the plain way: torch.nn module, torch.optim optimiser, a Python loop over its minibatches."""
    init_seeds, keys = network_streams(seed, [index])
    net = build(model, model.init(init_seeds), 0)
    opt = TORCH_OPT[optimizer](net.parameters(), lr=lr, **kw)
    if loss == "ce":
        crit, target, thr = nn.BCEWithLogitsLoss(), y.float(), 0.0
    else:
        crit = nn.MSELoss()
        target, thr = ((2.0 * y - 1.0), 0.0) if mse_targets == "pm1" else (y.float(), 0.5)
    n = X.shape[0]
    first_fit, epoch = -1, 0
    while True:
        epoch += 1
        order = epoch_permutations(keys, epoch, n)[0] if batch_size < n else torch.arange(n)
        for s in range(math.ceil(n / batch_size)):
            idx = order[s * batch_size:(s + 1) * batch_size]
            opt.zero_grad()
            crit(net(X[idx]).squeeze(-1), target[idx]).backward()
            opt.step()
        with torch.no_grad():
            out = net(X).squeeze(-1)
        if not torch.isfinite(out).all():
            status = "diverged"
            break
        if first_fit < 0 and ((out > thr).long() == y).all():
            first_fit = epoch
        if first_fit >= 0 and epoch - first_fit >= overtrain:
            status = "fitted"
            break
        if first_fit < 0 and epoch >= max_epochs:
            status = "not_fitted"
            break
    with torch.no_grad():
        labels = (net(Xe).squeeze(-1) > thr)
    return status, first_fit, epoch, [p.detach().clone() for p in net.parameters()], labels


CASES = [
    ("sgd", 0.2, {}),
    ("sgd", 0.05, {"momentum": 0.9}),
    ("sgd", 0.05, {"momentum": 0.9, "nesterov": True}),
    ("adam", 0.01, {}),
    ("adagrad", 0.1, {}),
    ("rmsprop", 0.005, {}),
    ("rmsprop", 0.005, {"momentum": 0.5, "centered": True}),
    ("adadelta", 1.0, {}),
]


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("optimizer,lr,kw", CASES, ids=[f"{c[0]}{'+' + '+'.join(c[2]) if c[2] else ''}" for c in CASES])
def test_matches_torch_optim_one_by_one(optimizer, lr, kw, loss):
    X, y, Xe = boolean_data()
    model = FCN(5, (16, 16), sigma_w=1.4, sigma_b=0.3)
    M, seed = 3, 11
    res = train_ensemble(model, X, y, Xe, n_networks=M, seed=seed, optimizer=optimizer, lr=lr, optimizer_kwargs=kw,
                         loss=loss, batch_size=4, max_epochs=150, return_params=True, progress=False)
    n_fit = 0
    for m in range(M):
        status, e_fit, e_tot, params, labels = train_one(model, fcn_module, X, y, Xe, index=m, seed=seed,
                                                         optimizer=optimizer, lr=lr, kw=kw, loss=loss, batch_size=4,
                                                         max_epochs=150)
        n_fit += status == "fitted"
        assert res.status[m] == status
        assert res.epochs_to_fit[m] == e_fit and res.epochs_trained[m] == e_tot
        assert res.steps_to_fit[m] == (e_fit * 4 if e_fit >= 0 else -1)
        for p_ens, p_ref in zip(res.params, params):
            torch.testing.assert_close(p_ens[m], p_ref, rtol=1e-4, atol=1e-5)
        assert torch.equal(res.test_labels[m], labels)
        assert (res.train_accuracy[m] == 1.0) == (status == "fitted")
    assert n_fit >= 2, "too few reference networks fitted for a meaningful comparison; pick an easier case"


@pytest.mark.parametrize("batch_size", [1, 5, 16])
def test_batch_sizes_mse01_and_overtraining_match_reference(batch_size):
    """Batch 1, a batch size that leaves a smaller last batch, and full batch; MSE on 0/1 targets; k = 3 extra epochs."""
    X, y, Xe = boolean_data(seed=1)
    model = FCN(5, (12,), sigma_w=1.0, sigma_b=0.5)
    res = train_ensemble(model, X, y, Xe, n_networks=2, seed=5, optimizer="adam", lr=0.02, loss="mse",
                         mse_targets="01", batch_size=batch_size, max_epochs=400, overtrain_epochs=3,
                         return_params=True, progress=False)
    for m in range(2):
        status, e_fit, e_tot, params, labels = train_one(model, fcn_module, X, y, Xe, index=m, seed=5,
                                                         optimizer="adam", lr=0.02, kw={}, loss="mse",
                                                         mse_targets="01", batch_size=batch_size, max_epochs=400,
                                                         overtrain=3)
        assert status == "fitted" and res.status[m] == "fitted"
        assert (res.epochs_to_fit[m], res.epochs_trained[m]) == (e_fit, e_tot)
        assert e_tot == e_fit + 3
        for p_ens, p_ref in zip(res.params, params):
            torch.testing.assert_close(p_ens[m], p_ref, rtol=1e-4, atol=1e-5)
        assert torch.equal(res.test_labels[m], labels)


def test_cnn_matches_torch_nn():
    g = torch.Generator().manual_seed(3)
    X = torch.rand(12, 2, 5, 5, generator=g)
    y = (torch.rand(12, generator=g) < 0.5).long()
    Xe = torch.rand(7, 2, 5, 5, generator=g)
    for padding in ("same", "valid"):
        model = CNN((2, 5, 5), (3, 4), kernel_size=3, padding=padding, sigma_w=1.2, sigma_b=0.2)
        res = train_ensemble(model, X, y, Xe, n_networks=3, seed=2, optimizer="sgd", lr=0.05,
                             optimizer_kwargs={"momentum": 0.9}, batch_size=4, max_epochs=150, return_params=True,
                             progress=False)
        n_fit = 0
        for m in range(3):
            status, e_fit, _, params, labels = train_one(model, cnn_module, X, y, Xe, index=m, seed=2,
                                                         optimizer="sgd", lr=0.05, kw={"momentum": 0.9}, loss="ce",
                                                         batch_size=4, max_epochs=150)
            n_fit += status == "fitted"
            assert res.status[m] == status and res.epochs_to_fit[m] == e_fit
            for p_ens, p_ref in zip(res.params, params):
                torch.testing.assert_close(p_ens[m], p_ref, rtol=1e-4, atol=1e-5)
            assert torch.equal(res.test_labels[m], labels)
        assert n_fit >= 1, f"no CNN fitted with padding={padding!r}; pick an easier case"


def test_finished_networks_are_frozen_bit_identical():
    """Run A trains until every network is done; run B (the same networks, so the same stack and the same arithmetic
    up to then) stops everything at epoch e, where the first network of A fitted. If A had kept updating that network
    (parameters or optimiser state) after it finished, its final parameters would differ from B's in some bit."""
    X, y, Xe = boolean_data(seed=2)
    model = FCN(5, (16,), sigma_w=1.0, sigma_b=0.1)
    kw = dict(n_networks=6, seed=7, optimizer="adam", lr=0.01, batch_size=4, return_params=True, progress=False)
    a = train_ensemble(model, X, y, Xe, max_epochs=500, **kw)
    assert (a.status == "fitted").all()
    first = int(np.argmin(a.epochs_trained))
    e = int(a.epochs_to_fit[first])
    assert e < a.epochs_trained.max(), "need a network that finishes before the others"
    b = train_ensemble(model, X, y, Xe, max_epochs=e, **kw)
    assert b.status[first] == "fitted" and b.epochs_trained[first] == e
    assert (b.epochs_trained == e).all() and (b.epochs_trained < a.epochs_trained).sum() >= 1
    for pa, pb in zip(a.params, b.params):
        assert torch.equal(pa[first], pb[first])
    assert torch.equal(a.test_labels[first], b.test_labels[first])
    # the networks that went on in A did change after epoch e (so equality above is not vacuous)
    later = a.epochs_trained > e
    assert not torch.equal(a.params[0][later], b.params[0][later])


def test_overtraining_adds_exactly_k_epochs_and_changes_parameters():
    X, y, Xe = boolean_data(seed=3)
    model = FCN(5, (16,), sigma_w=1.0, sigma_b=0.1)
    kw = dict(n_networks=5, seed=1, optimizer="sgd", lr=0.1, batch_size=4, max_epochs=500, return_params=True,
              progress=False)
    r0 = train_ensemble(model, X, y, Xe, overtrain_epochs=0, **kw)
    r5 = train_ensemble(model, X, y, Xe, overtrain_epochs=5, **kw)
    assert (r0.status == "fitted").all() and (r5.status == "fitted").all()
    np.testing.assert_array_equal(r0.epochs_to_fit, r5.epochs_to_fit)
    np.testing.assert_array_equal(r5.epochs_trained - r5.epochs_to_fit, 5)
    np.testing.assert_array_equal(r0.epochs_trained, r0.epochs_to_fit)
    assert not torch.allclose(r0.params[0], r5.params[0])


def test_chunking_and_index_offset_invariance():
    X, y, Xe = boolean_data(seed=4)
    model = FCN(5, (16, 8), sigma_w=1.0, sigma_b=0.2)
    kw = dict(seed=3, optimizer="rmsprop", lr=0.01, batch_size=3, max_epochs=300, return_params=True, progress=False)
    full = train_ensemble(model, X, y, Xe, n_networks=6, chunk_size=6, **kw)
    for chunk in (1, 4):
        r = train_ensemble(model, X, y, Xe, n_networks=6, chunk_size=chunk, **kw)
        np.testing.assert_array_equal(r.status, full.status)
        np.testing.assert_array_equal(r.epochs_trained, full.epochs_trained)
        assert torch.equal(r.test_labels, full.test_labels)
        for p, q in zip(r.params, full.params):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    tail = train_ensemble(model, X, y, Xe, n_networks=2, index_offset=4, **kw)
    np.testing.assert_array_equal(tail.network_index, [4, 5])
    np.testing.assert_array_equal(tail.epochs_trained, full.epochs_trained[4:])
    assert torch.equal(tail.test_labels, full.test_labels[4:])


def test_divergence_is_reported_and_not_counted():
    X, y, Xe = boolean_data(seed=5)
    model = FCN(5, (16,), sigma_w=1.0, sigma_b=0.1)
    ok = train_ensemble(model, X, y, Xe, n_networks=3, seed=0, optimizer="sgd", lr=0.1, loss="mse", batch_size=4,
                        max_epochs=500, progress=False)
    bad = train_ensemble(model, X, y, Xe, n_networks=3, seed=0, optimizer="sgd", lr=1e4, loss="mse", batch_size=4,
                         max_epochs=500, progress=False)
    assert (ok.status == "fitted").all() and ok.function_counts().total == 3
    assert (bad.status == "diverged").all()
    assert (bad.epochs_trained < 20).all() and (bad.epochs_to_fit == -1).all()
    assert bad.function_counts().total == 0 and bad.counts()["diverged"] == 3


def test_budget_exhaustion_reported_not_counted():
    X, y, Xe = boolean_data(seed=6)
    X = torch.cat([X, X[:1]])  # the same input with both labels: 100% training accuracy is impossible
    y = torch.cat([y, 1 - y[:1]])
    model = FCN(5, (8,))
    r = train_ensemble(model, X, y, Xe, n_networks=4, optimizer="adam", lr=0.01, batch_size=5, max_epochs=50,
                       max_steps=7 * 4 + 3, progress=False)  # 17 examples, batch 5 → 4 steps/epoch → 7 epochs
    assert (r.status == "not_fitted").all()
    np.testing.assert_array_equal(r.epochs_trained, 7)
    assert (r.train_accuracy < 1).all() and (r.train_accuracy >= 16 / 17 - 1e-12).sum() >= 0
    assert r.function_counts().total == 0


def test_function_counts_are_those_of_the_fitted_networks():
    X, y, Xe = boolean_data(seed=7)
    model = FCN(5, (16,), sigma_w=1.0, sigma_b=0.1)
    r = train_ensemble(model, X, y, Xe, n_networks=8, seed=9, optimizer="sgd", lr=0.1, batch_size=2,
                       max_epochs=300, progress=False)
    fc = r.function_counts()
    assert fc.total == int(r.fitted.sum()) == 8
    bits = r.test_labels.numpy()
    distinct = {row.tobytes() for row in bits}
    assert fc.n_distinct == len(distinct)


@pytest.mark.parametrize("kwargs,match", [
    ({"optimizer": "lbfgs"}, "lbfgs.*allowed: sgd, adam, adagrad, rmsprop, adadelta"),
    ({"lr": 0.0}, "lr must be a positive"),
    ({"lr": -1.0}, "-1.0"),
    ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
    ({"loss": "hinge"}, "hinge"),
    ({"n_networks": 0}, "n_networks"),
    ({"max_epochs": 0}, "max_epochs"),
    ({"overtrain_epochs": -1}, "overtrain_epochs"),
    ({"chunk_size": 0}, "chunk_size"),
    ({"optimizer_kwargs": {"beta": 0.9}}, "beta"),
])
def test_bad_arguments(kwargs, match):
    X, y, Xe = boolean_data()
    args = {"n_networks": 2, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        train_ensemble(FCN(5, (4,)), X, y, Xe, **args)


def test_bad_data():
    X, y, Xe = boolean_data()
    model = FCN(5, (4,))
    with pytest.raises(ValueError, match=r"binary.*\[2\]"):
        train_ensemble(model, X, y * 2, Xe, n_networks=1, progress=False)
    with pytest.raises(ValueError, match=r"shape \[16\]"):
        train_ensemble(model, X, y[:-1], Xe, n_networks=1, progress=False)
    with pytest.raises(ValueError, match=r"X_train has shape \(16, 5\); this model needs \[n, 6\]"):
        train_ensemble(FCN(6, (4,)), X, y, Xe, n_networks=1, progress=False)
    with pytest.raises(ValueError, match="X_test"):
        train_ensemble(model, X, y, Xe[:, :3], n_networks=1, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        train_ensemble(model, X.masked_fill(X > 0, float("nan")), y, Xe, n_networks=1, progress=False)
