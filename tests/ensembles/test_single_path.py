"""The fast paths of train_ensemble against the general one and against torch.nn + torch.optim one network at a time:
the single-network path (a chunk of one network: 2-D ops, ``model.forward_single``) and the fused plain-SGD step
(``FCN.sgd_step_``: hand-written backward, updates fused into the gradient GEMMs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sgdbayes.ensembles.train as train_mod
from sgdbayes.ensembles import CNN, FCN, train_ensemble
from sgdbayes.ensembles.train import _per_net_loss

from test_train import boolean_data, fcn_module, train_one  # noqa: E402  (tests/ensembles is on sys.path under pytest)

pytestmark = pytest.mark.usefixtures("one_thread")


class CountingFCN(FCN):
    """FCN that counts which forward it was asked for, to show which path a run took."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = {"forward": 0, "forward_shared": 0, "forward_single": 0}

    def forward(self, params, x):
        self.calls["forward"] += 1
        return super().forward(params, x)

    def forward_shared(self, params, X):
        self.calls["forward_shared"] += 1
        return super().forward_shared(params, X)

    def forward_single(self, params, x):
        self.calls["forward_single"] += 1
        return super().forward_single(params, x)


SINGLE_CASES = [
    ("sgd", 0.05, {"momentum": 0.9}, "ce", 4),
    ("sgd", 0.02, {"momentum": 0.9, "nesterov": True}, "mse", 5),
    ("adam", 0.01, {}, "ce", 4),
    ("adam", 0.02, {}, "mse", 16),  # full batch
    ("rmsprop", 0.005, {"momentum": 0.5, "centered": True}, "ce", 3),
]


@pytest.mark.parametrize("optimizer,lr,kw,loss,batch_size", SINGLE_CASES,
                         ids=[f"{c[0]}{'+' + '+'.join(c[2]) if c[2] else ''}-{c[3]}-B{c[4]}" for c in SINGLE_CASES])
def test_single_path_equals_batched_path(optimizer, lr, kw, loss, batch_size):
    """chunk_size=1 (single path) vs one stack of all M networks (batched path), same seeds, with overtraining: the
    stacked run removes each network when it finishes (freezing), the single run stops it alone; both must agree on
    status, the epoch of first fit, the epochs trained, the parameters (to float rounding) and the test labels."""
    X, y, Xe = boolean_data(seed=8)
    M = 4
    kw_run = dict(n_networks=M, seed=13, optimizer=optimizer, lr=lr, optimizer_kwargs=kw, loss=loss,
                  batch_size=batch_size, max_epochs=120, overtrain_epochs=3, return_params=True, progress=False)
    m_single, m_batched = CountingFCN(5, (16, 12), sigma_w=1.3, sigma_b=0.2), CountingFCN(5, (16, 12), sigma_w=1.3,
                                                                                         sigma_b=0.2)
    single = train_ensemble(m_single, X, y, Xe, chunk_size=1, **kw_run)
    batched = train_ensemble(m_batched, X, y, Xe, chunk_size=M, **kw_run)
    # the two runs really took different code paths
    assert m_single.calls["forward"] == m_single.calls["forward_shared"] == 0 and m_single.calls["forward_single"] > 0
    assert m_batched.calls["forward_single"] == 0 and m_batched.calls["forward_shared"] > 0
    if batch_size < X.shape[0]:
        assert m_batched.calls["forward"] > 0
    assert single.fitted.all(), "too few networks fitted for a meaningful comparison"
    np.testing.assert_array_equal(single.status, batched.status)
    np.testing.assert_array_equal(single.epochs_to_fit, batched.epochs_to_fit)
    np.testing.assert_array_equal(single.epochs_trained, batched.epochs_trained)
    np.testing.assert_array_equal(single.epochs_trained[single.fitted] - single.epochs_to_fit[single.fitted], 3)
    assert len(set(batched.epochs_trained.tolist())) >= 2, "need networks that finish at different epochs (freezing)"
    np.testing.assert_allclose(single.train_accuracy, batched.train_accuracy)
    np.testing.assert_allclose(single.train_loss, batched.train_loss, rtol=1e-4, atol=1e-6)
    assert torch.equal(single.test_labels, batched.test_labels)
    for p, q in zip(single.params, batched.params):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("optimizer,lr,kw", [("sgd", 0.05, {"momentum": 0.9}), ("adam", 0.01, {}), ("sgd", 0.2, {})])
def test_single_path_matches_torch_optim(optimizer, lr, kw):
    """The single path against the plain torch.nn + torch.optim loop of the reference test (same seeds)."""
    X, y, Xe = boolean_data()
    model = FCN(5, (16, 16), sigma_w=1.4, sigma_b=0.3)
    res = train_ensemble(model, X, y, Xe, n_networks=3, seed=11, optimizer=optimizer, lr=lr, optimizer_kwargs=kw,
                         batch_size=4, max_epochs=150, overtrain_epochs=2, chunk_size=1, return_params=True,
                         progress=False)
    n_fit = 0
    for m in range(3):
        status, e_fit, e_tot, params, labels = train_one(model, fcn_module, X, y, Xe, index=m, seed=11,
                                                         optimizer=optimizer, lr=lr, kw=kw, loss="ce", batch_size=4,
                                                         max_epochs=150, overtrain=2)
        n_fit += status == "fitted"
        assert (res.status[m], res.epochs_to_fit[m], res.epochs_trained[m]) == (status, e_fit, e_tot)
        for p_ens, p_ref in zip(res.params, params):
            torch.testing.assert_close(p_ens[m], p_ref, rtol=1e-4, atol=1e-5)
        assert torch.equal(res.test_labels[m], labels)
    assert n_fit >= 2


def test_single_path_divergence_and_budget():
    """Divergence and an exhausted budget are reported by the single path exactly as by the batched one."""
    X, y, Xe = boolean_data(seed=5)
    model = FCN(5, (16,), sigma_w=1.0, sigma_b=0.1)
    kw = dict(n_networks=3, seed=0, optimizer="sgd", lr=1e4, loss="mse", batch_size=4, max_epochs=500, progress=False)
    bad1, bad3 = train_ensemble(model, X, y, Xe, chunk_size=1, **kw), train_ensemble(model, X, y, Xe, chunk_size=3, **kw)
    assert (bad1.status == "diverged").all()
    np.testing.assert_array_equal(bad1.epochs_trained, bad3.epochs_trained)
    Xu, yu = torch.cat([X, X[:1]]), torch.cat([y, 1 - y[:1]])  # unfittable
    kw = dict(n_networks=2, seed=1, optimizer="adam", lr=0.01, batch_size=5, max_epochs=6, return_params=True,
              progress=False)
    r1, r2 = train_ensemble(model, Xu, yu, Xe, chunk_size=1, **kw), train_ensemble(model, Xu, yu, Xe, chunk_size=2, **kw)
    assert (r1.status == "not_fitted").all() and (r1.epochs_trained == 6).all()
    np.testing.assert_allclose(r1.train_accuracy, r2.train_accuracy)
    for p, q in zip(r1.params, r2.params):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_cnn_forward_single_equals_stacked_forward():
    model = CNN((2, 5, 5), (3, 4), kernel_size=3, padding="valid", sigma_w=1.2, sigma_b=0.2)
    params = model.init([4, 5])
    x = torch.randn(6, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    stacked = model.forward_shared(params, x)
    for m in range(2):
        torch.testing.assert_close(model.forward_single([p[m] for p in params], x), stacked[m], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.forward_single([p[m] for p in params], x),
                                   model.to_module(params, m)(x).squeeze(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("stacked", [True, False])
def test_sgd_step_equals_autograd_sgd(loss, stacked):
    """Three steps of FCN.sgd_step_ against autograd gradients of the summed mean losses and p ← p − lr·g."""
    model = FCN(6, (9, 7, 5), sigma_w=1.5, sigma_b=0.4)
    g = torch.Generator().manual_seed(2)
    M, b, lr = 3, 5, 0.1
    ref = [p.clone() for p in model.init([1, 2, 3])]
    fused = [p.clone() for p in ref] if stacked else [p[1].clone() for p in ref]
    for _ in range(3):
        x = torch.randn(M, b, 6, generator=g)
        t = torch.randn(M, b, generator=g) if loss == "mse" else (torch.rand(M, b, generator=g) < 0.5).float()
        leaves = [p.requires_grad_() for p in ref]
        logits_ref = model.forward(leaves, x)
        grads = torch.autograd.grad(_per_net_loss(logits_ref, t, loss).sum(), leaves)
        ref = [(p - lr * gr).detach() for p, gr in zip(leaves, grads)]
        if stacked:
            logits = model.sgd_step_(fused, x, lambda z: train_mod._grad_logits(z, t, loss), lr)
            torch.testing.assert_close(logits, logits_ref.detach(), rtol=1e-5, atol=1e-6)
        else:
            model.sgd_step_(fused, x[1], lambda z: train_mod._grad_logits(z, t[1], loss), lr)
    for p_ref, p in zip(ref, fused):
        torch.testing.assert_close(p if stacked else p.unsqueeze(0), p_ref if stacked else p_ref[1:2],
                                   rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ref[0], model.init([1, 2, 3])[0]), "the steps must have moved the parameters"


@pytest.mark.parametrize("chunk,batch_size,loss", [(1, 4, "ce"), (4, 4, "mse"), (1, 16, "mse"), (4, 3, "ce")])
def test_fused_sgd_equals_autograd_path(monkeypatch, chunk, batch_size, loss):
    """Plain SGD: the native kernel (NATIVE_SGD, default where it builds), the fused torch step (FUSED_SGD) and the
    autograd + BatchedOptimizer path give the same networks (same seeds; statuses, fit epochs with 3 overtraining
    epochs, labels exactly; parameters to float rounding)."""
    X, y, Xe = boolean_data(seed=8)
    kw = dict(n_networks=4, seed=21, optimizer="sgd", lr=0.1, loss=loss, batch_size=batch_size, max_epochs=150,
              overtrain_epochs=3, chunk_size=chunk, return_params=True, progress=False)
    model = FCN(5, (16, 12), sigma_w=1.3, sigma_b=0.2)
    default = train_ensemble(model, X, y, Xe, **kw)
    monkeypatch.setattr(train_mod, "NATIVE_SGD", False)
    fused = train_ensemble(model, X, y, Xe, **kw)
    monkeypatch.setattr(train_mod, "FUSED_SGD", False)
    plain = train_ensemble(model, X, y, Xe, **kw)
    assert fused.config["path"] == plain.config["path"] == "torch"
    assert fused.fitted.sum() >= 3, "too few networks fitted for a meaningful comparison"
    for other in (default, fused):
        np.testing.assert_array_equal(other.status, plain.status)
        np.testing.assert_array_equal(other.epochs_to_fit, plain.epochs_to_fit)
        np.testing.assert_array_equal(other.epochs_trained, plain.epochs_trained)
        assert torch.equal(other.test_labels, plain.test_labels)
        for p, q in zip(other.params, plain.params):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def _teacher_data(n=200, d=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    return X, (X[:, :3].sum(1) > 0).long(), torch.randn(20, d, generator=g)


class SizeRecordingFCN(FCN):
    """Records how many inputs each forward_shared / forward_single call of the end-of-epoch check saw."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sizes = []

    def forward_shared(self, params, X):
        self.sizes.append((params[0].shape[0], X.shape[0]))
        return super().forward_shared(params, X)

    def forward_single(self, params, x):
        if not torch.is_grad_enabled():
            self.sizes.append((1, x.shape[0]))
        return super().forward_single(params, x)


@pytest.mark.parametrize("optimizer,lr,chunk,k_over,max_epochs", [
    ("adam", 0.01, 6, 2, 60),      # all fit, at different epochs, then overtrain
    ("sgd", 0.1, 6, 0, 40),        # most run out of budget (not_fitted: accuracy and loss recorded)
    ("adam", 0.01, 1, 1, 60),      # single-network path
])
def test_prefix_screened_check_equals_full_check(monkeypatch, optimizer, lr, chunk, k_over, max_epochs):
    """The end-of-epoch check screened on CHECK_PREFIX examples gives exactly the results of the full check on S
    (statuses, epochs, accuracies, losses, parameters, labels), and it did skip full checks. (The torch paths'
    check; the native kernel screens inside its own check, tests/ensembles/test_native_train.py.)"""
    monkeypatch.setattr(train_mod, "NATIVE_SGD", False)
    X, y, Xe = _teacher_data()
    kw = dict(n_networks=6, seed=0, optimizer=optimizer, lr=lr, batch_size=50, max_epochs=max_epochs,
              overtrain_epochs=k_over, chunk_size=chunk, return_params=True, progress=False)
    prefix = train_mod.CHECK_PREFIX
    assert X.shape[0] > 2 * prefix, "the screening only runs for |S| > 2·CHECK_PREFIX"
    m_screen = SizeRecordingFCN(10, (32,), sigma_b=0.1)
    screened = train_ensemble(m_screen, X, y, Xe, **kw)
    monkeypatch.setattr(train_mod, "CHECK_PREFIX", 10**9)  # |S| ≤ 2·prefix: always the full check
    m_full = SizeRecordingFCN(10, (32,), sigma_b=0.1)
    full = train_ensemble(m_full, X, y, Xe, **kw)
    np.testing.assert_array_equal(screened.status, full.status)
    np.testing.assert_array_equal(screened.epochs_to_fit, full.epochs_to_fit)
    np.testing.assert_array_equal(screened.epochs_trained, full.epochs_trained)
    np.testing.assert_array_equal(screened.train_accuracy, full.train_accuracy)
    np.testing.assert_allclose(screened.train_loss, full.train_loss, rtol=1e-6)
    assert torch.equal(screened.test_labels, full.test_labels)
    for p, q in zip(screened.params, full.params):
        assert torch.equal(p, q)  # training is untouched by the check
    # network-checks on all of S: fewer with screening (else the test would not exercise it)
    n_full = lambda sizes: sum(m for m, n in sizes if n == X.shape[0])  # noqa: E731
    assert n_full(m_screen.sizes) < n_full(m_full.sizes)
    assert any(n == prefix for _, n in m_screen.sizes)


def test_screened_check_still_catches_divergence():
    X, y, Xe = _teacher_data()
    r = train_ensemble(FCN(10, (32,)), X, y, Xe, n_networks=3, seed=0, optimizer="sgd", lr=1e4, loss="mse",
                       batch_size=50, max_epochs=100, progress=False)
    assert (r.status == "diverged").all() and (r.epochs_trained < 20).all()


def test_logit_bound_is_a_bound():
    model = FCN(10, (30, 20), sigma_w=2.0, sigma_b=1.0)
    params = model.init(list(range(5)))
    X = torch.rand(500, 10, generator=torch.Generator().manual_seed(0)) * 2 - 1  # |x| ≤ 1
    bound = train_mod._logit_bound(model, params, 5, 1.0)
    logits = model.forward_shared(params, X).abs().amax(1).double()
    assert (logits <= bound).all() and (bound < 1e6).all()  # loose (worst case), but far below LOGIT_SAFE_BOUND
    params[2][1, 0, 0] = float("nan")
    assert torch.isnan(train_mod._logit_bound(model, params, 5, 1.0)[1])
    cnn = CNN((1, 4, 4), (3,), kernel_size=3, sigma_w=1.5, sigma_b=0.5)
    cp = cnn.init([0, 1])
    Xc = torch.rand(200, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    assert (cnn.forward_shared(cp, Xc).abs().amax(1).double() <= train_mod._logit_bound(cnn, cp, 2, 1.0)).all()
