"""The fused SGD epoch (``sgdbayes.ensembles.fused.sgd_epoch``) against a one-network-at-a-time ``torch.nn`` +
``torch.optim.SGD`` reference, against its own torch path, and its bookkeeping (active mask, threads, divergence)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from sgdbayes.ensembles import FCN, epoch_permutations, network_streams
from sgdbayes.ensembles.fused import native_kernel, sgd_epoch

needs_native = pytest.mark.skipif(native_kernel(FCN(7, (40, 40)), 8) is None,
                                  reason="no C++ compiler here: the native kernel is not built (torch path only)")


def _data(n: int, d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g)
    y = torch.rand(n, generator=g) < 0.5
    return X, y


def _reference(model: FCN, params, m: int, X, y, perms, lr, loss, B):
    """Network m trained alone: torch.nn layers, torch.optim.SGD, the loss averaged over each minibatch."""
    net = model.to_module(params, m)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    target = y.float() if loss == "ce" else 2.0 * y.float() - 1.0
    crit = nn.BCEWithLogitsLoss() if loss == "ce" else nn.MSELoss()
    for perm in perms:
        order = perm[m]
        for s in range(math.ceil(X.shape[0] / B)):
            idx = order[s * B:(s + 1) * B]
            opt.zero_grad()
            crit(net(X[idx]).squeeze(-1), target[idx]).backward()
            opt.step()
    return [p.detach() for p in net.parameters()]


@needs_native
@pytest.mark.parametrize("d, widths, n, B, loss", [
    (7, (40, 40), 32, 8, "ce"),        # the Boolean setting
    (13, (24, 16), 21, 8, "mse"),      # padded fan-in (13 -> 16), B does not divide n, widths not multiples of 8
    (5, (12,), 10, 3, "ce"),           # one hidden layer, batch padded to 4 (four networks per vector)
    (20, (24,), 50, 16, "ce"),         # one network per vector; 16 inputs transposed in registers + 4 more
    (40, (10, 12), 70, 32, "mse"),     # two 16-lane chunks per vector; last minibatch of 6 rows
    (35, (8,), 150, 128, "ce"),        # eight chunks; one step of 128 rows and one of 22
])
def test_native_epochs_match_one_network_at_a_time(d, widths, n, B, loss):
    model = FCN(d, widths, sigma_b=0.5)
    M = 6
    X, y = _data(n, d)
    seeds, keys = network_streams(3, range(M))
    params = model.init(seeds)
    start = [p.clone() for p in params]
    perms = [epoch_permutations(keys, e, n) for e in (1, 2, 3)]
    target = y.float() if loss == "ce" else 2.0 * y.float() - 1.0
    for perm in perms:
        stats = sgd_epoch(model, params, X, target, y, perm, lr=0.05, loss=loss, batch_size=B, use_native=True)
        assert stats.native
    for m in range(M):
        ref = _reference(model, start, m, X, y, perms, 0.05, loss, B)
        for p, r in zip(params, ref, strict=True):
            torch.testing.assert_close(p[m], r, rtol=1e-5, atol=2e-6)


@needs_native
def test_native_statistics_match_torch_path():
    """Same parameters and the same per-network statistics from the native kernel and the torch path."""
    model = FCN(7, (40, 40), sigma_b=1.0)
    M, n = 40, 32
    X, y = _data(n, 7, seed=1)
    seeds, keys = network_streams(0, range(M))
    pa = model.init(seeds)
    pb = [p.clone() for p in pa]
    for e in (1, 2):
        perm = epoch_permutations(keys, e, n)
        kw = dict(lr=0.1, batch_size=8, threshold=0.5, check_loss=True, running_loss=True)
        sa = sgd_epoch(model, pa, X, y.float(), y, perm, use_native=True, **kw)
        sb = sgd_epoch(model, pb, X, y.float(), y, perm, use_native=False, **kw)
    assert sa.native and not sb.native
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for name in ("run_loss", "loss", "min_pos", "max_neg"):
        np.testing.assert_allclose(getattr(sa, name), getattr(sb, name), rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(sa.accuracy, sb.accuracy)
    np.testing.assert_array_equal(sa.run_accuracy, sb.run_accuracy)
    np.testing.assert_array_equal(sa.finite, sb.finite)
    # the margins decide a fit at any threshold, consistently with the accuracy at the threshold used
    np.testing.assert_array_equal(sa.fits(0.5), sa.accuracy == 1.0)
    logits = model.forward_shared(pa, X)
    np.testing.assert_array_equal(sa.fits(0.0), ((logits > 0) == y).all(1).numpy())


@pytest.mark.parametrize("use_native", [True, False])
def test_inactive_networks_are_bit_identical_and_threads_do_not_matter(use_native):
    model = FCN(7, (40, 40), sigma_b=1.0)
    if use_native and native_kernel(model, 8) is None:
        pytest.skip("no native kernel here")
    M, n = 9, 16
    X, y = _data(n, 7, seed=2)
    seeds, keys = network_streams(5, range(M))
    perm = epoch_permutations(keys, 1, n)
    active = torch.tensor([True, False, True, True, False, True, False, True, True])
    base = model.init(seeds)
    pa = [p.clone() for p in base]
    pb = [p.clone() for p in base]
    sa = sgd_epoch(model, pa, X, y.float(), y, perm, lr=0.1, batch_size=8, active=active, threads=1,
                   use_native=use_native)
    sgd_epoch(model, pb, X, y.float(), y, perm, lr=0.1, batch_size=8, active=active, threads=3,
              use_native=use_native)
    for a, b, p0 in zip(pa, pb, base, strict=True):
        assert torch.equal(a, b)                               # threads never change a result
        assert torch.equal(a[~active], p0[~active])            # frozen networks untouched, bit for bit
        assert not torch.equal(a[active], p0[active])
    assert np.isnan(sa.accuracy[~active.numpy()]).all() and not sa.finite[~active.numpy()].any()
    assert np.isfinite(sa.accuracy[active.numpy()]).all()


@pytest.mark.parametrize("use_native", [True, False])
def test_divergence_is_reported_as_non_finite(use_native):
    model = FCN(7, (40, 40), sigma_b=1.0)
    if use_native and native_kernel(model, 8) is None:
        pytest.skip("no native kernel here")
    X, y = _data(16, 7, seed=4)
    X = X * 1e3
    seeds, keys = network_streams(0, range(4))
    params = model.init(seeds)
    for e in range(1, 6):
        stats = sgd_epoch(model, params, X, 2.0 * y.float() - 1.0, y, epoch_permutations(keys, e, 16), lr=1e3,
                          loss="mse", batch_size=8, use_native=use_native)
    assert not stats.finite.any()
    assert not stats.fits(0.0).any()


def test_check_only_and_argument_errors():
    model = FCN(7, (40, 40))
    X, y = _data(16, 7)
    seeds, keys = network_streams(0, range(3))
    params = model.init(seeds)
    before = [p.clone() for p in params]
    stats = sgd_epoch(model, params, X, y.float(), y, None, lr=0.1, batch_size=8, steps=0, check_loss=True)
    assert all(torch.equal(a, b) for a, b in zip(params, before, strict=True))
    logits = model.forward_shared(params, X)
    np.testing.assert_allclose(stats.loss, nn.functional.binary_cross_entropy_with_logits(
        logits, y.float().expand_as(logits), reduction="none").mean(1).numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="perm is required"):
        sgd_epoch(model, params, X, y.float(), y, None, lr=0.1, batch_size=8)
    with pytest.raises(ValueError, match="unknown loss"):
        sgd_epoch(model, params, X, y.float(), y, None, lr=0.1, batch_size=8, steps=0, loss="hinge")
    with pytest.raises(ValueError, match="X must be"):
        sgd_epoch(model, params, X[:, :5], y.float(), y, None, lr=0.1, batch_size=8, steps=0)
    with pytest.raises(TypeError, match="needs an FCN"):
        sgd_epoch(object(), params, X, y.float(), y, None, lr=0.1, batch_size=8, steps=0)
