"""Stacked models, prior initialisation, per-network streams and the batched optimisers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sgdbayes.ensembles import (CNN, FCN, OPTIMIZERS, auto_chunk_size, epoch_permutations, make_optimizer,
                                network_streams)


pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: one thread is faster and deterministic


def test_init_matches_nngp_prior_moments():
    """W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²): sample variances within 5 standard errors (SE = σ²·√(2/N))."""
    model = FCN(50, (100, 30), sigma_w=1.7, sigma_b=0.4)
    params = model.init(list(range(200)))
    for k, p in enumerate(params):
        var = (1.7**2 / model.fan_ins[k // 2]) if k % 2 == 0 else 0.4**2
        x = p.double().flatten()
        N = x.numel()
        assert abs(x.mean().item()) < 5 * math.sqrt(var / N)
        assert abs(x.var().item() - var) < 5 * var * math.sqrt(2 / N)
        kurt = ((x - x.mean()) ** 4).mean().item() / x.var().item() ** 2  # Gaussian: 3
        assert abs(kurt - 3) < 5 * math.sqrt(24 / N)


def test_cnn_init_fan_in():
    model = CNN((3, 6, 6), (20,), kernel_size=3, sigma_w=2.0, sigma_b=0.0)
    params = model.init(list(range(300)))
    assert model.fan_ins == [27, 20 * 36]
    x = params[0].double().flatten()
    assert abs(x.var().item() - 4 / 27) < 5 * (4 / 27) * math.sqrt(2 / x.numel())
    assert (params[1] == 0).all()


def test_network_init_independent_of_stack():
    model = FCN(4, (6,))
    seeds, _ = network_streams(3, [10, 11, 12])
    stack = model.init(seeds)
    alone = model.init_network(seeds[2])
    for s, a in zip(stack, alone):
        assert torch.equal(s[2], a)
    seeds_again, keys_again = network_streams(3, [12])
    assert seeds_again[0] == seeds[2]
    assert len(set(network_streams(3, range(1000))[0])) == 1000


@pytest.mark.parametrize("make", [
    lambda: FCN(6, (5, 7, 3), sigma_w=1.3, sigma_b=0.5),
    lambda: CNN((2, 5, 4), (3, 2), kernel_size=3, padding="same", sigma_w=1.3, sigma_b=0.5),
    lambda: CNN((1, 6, 6), (4,), kernel_size=2, padding="valid", sigma_w=1.0, sigma_b=0.5),
])
def test_forward_paths_agree_with_torch_nn(make):
    model = make()
    M = 4
    params = model.init(list(range(M)))
    g = torch.Generator().manual_seed(0)
    X = torch.randn(9, *model.in_shape, generator=g)
    shared = model.forward_shared(params, X)
    per_net = model.forward(params, X.expand(M, *X.shape))
    assert shared.shape == per_net.shape == (M, 9)
    for m in range(M):
        ref = model.to_module(params, m)(X).squeeze(-1)
        torch.testing.assert_close(shared[m], ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(per_net[m], ref, rtol=1e-5, atol=1e-5)
    # different networks get different inputs in forward(): row m must use x[m] only
    x = torch.randn(M, 3, *model.in_shape, generator=g)
    out = model.forward(params, x)
    for m in range(M):
        torch.testing.assert_close(out[m], model.to_module(params, m)(x[m]).squeeze(-1), rtol=1e-5, atol=1e-5)
    assert model.flops_per_example() > 0 and model.n_params == sum(p[0].numel() for p in params)


def test_epoch_permutations_are_uniform_and_per_network():
    """All 5! orders equally likely (χ² over 12,000 network-epochs); a row depends only on its own key."""
    _, keys = network_streams(0, range(2000))
    perms = torch.cat([epoch_permutations(keys, e, 5) for e in range(1, 7)])
    assert (perms.sort(1).values == torch.arange(5)).all()
    code = (perms * torch.tensor([1, 5, 25, 125, 625])).sum(1)
    counts = np.bincount(np.unique(code.numpy(), return_inverse=True)[1])
    assert len(counts) == 120
    expected = perms.shape[0] / 120
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 119 + 5 * math.sqrt(2 * 119)  # mean 119, sd √238
    # row r from a subset of keys equals row r of the full set; epochs differ
    assert torch.equal(epoch_permutations(keys[7:9], 3, 50), epoch_permutations(keys, 3, 50)[7:9])
    assert not torch.equal(epoch_permutations(keys[:5], 1, 50), epoch_permutations(keys[:5], 2, 50))


PARAMS_SHAPES = [(3, 4, 5), (3, 4)]


@pytest.mark.parametrize("name,kw", [
    ("sgd", {"lr": 0.1}), ("sgd", {"lr": 0.1, "momentum": 0.9}), ("sgd", {"lr": 0.1, "momentum": 0.8, "dampening": 0.3}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}), ("adam", {}), ("adam", {"lr": 0.1, "betas": (0.5, 0.9)}),
    ("adagrad", {"lr_decay": 0.1, "initial_accumulator_value": 0.2}), ("rmsprop", {}),
    ("rmsprop", {"momentum": 0.9, "centered": True}), ("adadelta", {}), ("adadelta", {"lr": 0.5, "rho": 0.5}),
])
def test_batched_optimizer_equals_torch_optim(name, kw):
    """Five steps on random stacked parameters with random gradients: each slice equals torch.optim on that slice."""
    g = torch.Generator().manual_seed(1)
    params = [torch.randn(s, generator=g) for s in PARAMS_SHAPES]
    grads_seq = [[torch.randn(s, generator=g) for s in PARAMS_SHAPES] for _ in range(5)]
    opt = make_optimizer(name, **kw)
    state = opt.init_state(params)
    torch_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad,
                 "rmsprop": torch.optim.RMSprop, "adadelta": torch.optim.Adadelta}[name]
    refs = []
    for m in range(3):
        ps = [torch.nn.Parameter(p[m].clone()) for p in params]
        refs.append((ps, torch_cls(ps, **kw)))
    for grads in grads_seq:
        opt.step(params, grads, state)
        for m, (ps, o) in enumerate(refs):
            for p, gr in zip(ps, grads):
                p.grad = gr[m].clone()
            o.step()
    for m, (ps, _) in enumerate(refs):
        for p_stack, p_ref in zip(params, ps):
            torch.testing.assert_close(p_stack[m], p_ref.detach(), rtol=1e-6, atol=1e-7)
    assert opt.lr == (kw.get("lr", OPTIMIZERS[name]["lr"]))


def test_compact_keeps_selected_state():
    opt = make_optimizer("adam", lr=0.1)
    params = [torch.randn(4, 3)]
    state = opt.init_state(params)
    opt.step(params, [torch.randn(4, 3)], state)
    small = opt.compact(state, torch.tensor([0, 2]))
    assert small["step"] == 1 and torch.equal(small["exp_avg"][0], state["exp_avg"][0][[0, 2]])
    sgd = make_optimizer("sgd", lr=0.1, momentum=0.9)
    st = sgd.init_state(params)
    assert sgd.compact(st, torch.tensor([1]))["buf"] is None


@pytest.mark.parametrize("args,match", [
    (("nadam",), "nadam.*allowed"), (("sgd", 0.0), "lr"), (("sgd", float("nan")), "lr"),
    (("sgd", 0.1), None), (("adam", 0.1, {"betas": (0.9, 1.0)}), r"betas\[1\]"),
    (("sgd", 0.1, {"momentum": -0.1}), "momentum"), (("sgd", 0.1, {"nesterov": True}), "nesterov"),
    (("rmsprop", 0.1, {"eps": -1}), "eps"), (("adadelta", 0.1, {"momentum": 0.9}), "momentum.*allowed: rho, eps"),
])
def test_make_optimizer_validation(args, match):
    kw = args[2] if len(args) > 2 else {}
    if match is None:
        assert make_optimizer(*args[:2], **kw).lr == 0.1
        return
    with pytest.raises(ValueError, match=match):
        make_optimizer(*args[:2], **kw)


def test_model_validation():
    with pytest.raises(ValueError, match="hidden"):
        FCN(7, (40, 0))
    with pytest.raises(ValueError, match="sigma_w"):
        FCN(7, (40,), sigma_w=0.0)
    with pytest.raises(ValueError, match="sigma_b"):
        FCN(7, (40,), sigma_b=-1.0)
    with pytest.raises(ValueError, match="padding"):
        CNN((1, 5, 5), (2,), padding="full")
    with pytest.raises(ValueError, match="too small"):
        CNN((1, 3, 3), (2, 2), kernel_size=3, padding="valid")


def test_auto_chunk_size_rule():
    sgd = make_optimizer("sgd", lr=0.1)
    small = auto_chunk_size(FCN(7, (40, 40)), sgd, n_train=32, batch_size=8)
    wide = auto_chunk_size(FCN(784, (1024, 1024)), sgd, n_train=1000, batch_size=32)
    assert small >= 256 and wide == 1
    mid = auto_chunk_size(FCN(784, (256, 256)), make_optimizer("adam"), n_train=1000, batch_size=32)
    assert 1 <= mid < small
