"""tiny-fc replicas as the authors built them: hand-written gradients against autograd and against torch's own
modules, the 917 weights, the frozen first-layer biases, the schedule rule, and the replica trainer of §3."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgdbayes.noise import n_weights, tiny_fc
from sgdbayes.noise.replicas import _forward as mlp_forward
from sgdbayes.noise.replicas import _init as mlp_init
from sgdbayes.noise.replicas import _mean_loss_and_grads, log_softmax_last, mlp_module, train_schemes
from sgdbayes.noise.tinyfc import (_forward, _init, _loss_and_grads, check_schedule, lr_at_epoch, replica_module,
                                   train_tiny_fc)
from sgdbayes.sde import moving_coordinates
from sgdbayes.seed import make_generator

pytestmark = pytest.mark.usefixtures("one_thread")


def _params(seed=0, r=3):
    g = torch.Generator().manual_seed(seed)
    p = [t.double() for t in _init(r, 49, 16, 5, g, "cpu", torch.float32)]
    p[2] = p[2] + torch.rand(p[2].shape, dtype=torch.float64, generator=g)
    p[3] = p[3] + torch.randn(p[3].shape, dtype=torch.float64, generator=g)
    return p, g


def test_hand_written_gradients_equal_autograd():
    p, g = _params()
    p = [t.requires_grad_() for t in p]
    x = torch.rand(3, 20, 49, dtype=torch.float64, generator=g)
    y = torch.randint(0, 5, (3, 20), generator=g)
    loss = F.cross_entropy(_forward(p, x).reshape(-1, 5), y.reshape(-1), reduction="none").reshape(3, 20).mean(1)
    ga = torch.autograd.grad(loss.sum(), p)
    lm, gm = _loss_and_grads([t.detach() for t in p], x, F.one_hot(y, 5).double())
    assert torch.allclose(loss, lm, atol=1e-13)
    for a, b in zip(ga, gm, strict=True):
        assert torch.allclose(a, b, atol=1e-13)
    # the first layer's bias gets an exactly-zero gradient through train-mode batch norm
    assert gm[1].abs().max() < 1e-14
    # and the same for the plain MLP of the temperature and replacement experiments
    q = [t.double().requires_grad_() for t in mlp_init(3, 49, 16, 10, g, "cpu", torch.float32)]
    y10 = torch.randint(0, 10, (3, 20), generator=g)
    loss = F.cross_entropy(mlp_forward(q, x).reshape(-1, 10), y10.reshape(-1), reduction="none").reshape(3, 20).mean(1)
    ga = torch.autograd.grad(loss.sum(), q)
    lm, gm = _mean_loss_and_grads([t.detach() for t in q], x, F.one_hot(y10, 10).double())
    assert torch.allclose(loss, lm, atol=1e-13)
    assert all(torch.allclose(a, b, atol=1e-13) for a, b in zip(ga, gm, strict=True))
    t = torch.randn(4, 7, 5, generator=g) * 30
    assert torch.allclose(log_softmax_last(t), torch.log_softmax(t, -1), atol=1e-5)


def test_batched_forward_equals_torch_tiny_fc_per_replica():
    p, g = _params(1)
    x = torch.rand(3, 30, 49, dtype=torch.float64, generator=g)
    out = _forward(p, x)
    for r in range(3):
        m = tiny_fc().double().train()
        with torch.no_grad():
            m[0].weight.copy_(p[0][r].T)
            m[0].bias.copy_(p[1][r, 0])
            m[1].weight.copy_(p[2][r, 0])
            m[1].bias.copy_(p[3][r, 0])
            m[3].weight.copy_(p[4][r].T)
            m[3].bias.copy_(p[5][r, 0])
        assert torch.allclose(out[r], m(x[r]), atol=1e-12)
    assert n_weights(tiny_fc()) == 917


def test_training_keeps_917_weights_freezes_16_and_matches_eval_module():
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(256, 49, generator=gen)
    y = torch.randint(0, 5, (256,), generator=gen)
    run = train_tiny_fc(x, y, replicas=2, epochs=12, burn_in=4, lr_schedule=[[4, 0.1], [100, 0.01]], batch_size=32)
    assert run.d == 917 and run.weights.shape == (8, 2, 917) and run.steps_per_epoch == 8
    for r in range(2):  # the first-layer biases (after the 49·16 weights) move by float32 rounding only
        moved = moving_coordinates(run.weights[:, r])
        assert (~moved).sum() == 16 and not moved[784:800].any()
        steps = np.abs(np.diff(run.weights[:, r], axis=0))
        assert steps[:, 784:800].max() < 1e-5 * np.median(steps[:, moved])
    np.testing.assert_allclose(run.lr, [0.01] * 8)
    assert run.grad_norm.shape == (8, 2) and np.isfinite(run.grad_norm).all()
    # the burn-in state loads into torch's module; eval mode uses the running statistics
    m = replica_module(run.burn_in_state[0])
    st = run.burn_in_state[0]
    h = x.double() @ st["0.weight"].double().T + st["0.bias"].double()
    hn = (h - st["1.running_mean"].double()) / torch.sqrt(st["1.running_var"].double() + 1e-5)
    manual = torch.relu(hn * st["1.weight"].double() + st["1.bias"].double()) @ st["3.weight"].double().T \
        + st["3.bias"].double()
    assert torch.allclose(m(x.double()), manual, atol=1e-10)


def test_schedule_rule_and_checks():
    sched = [[10, 0.1], [1000, 0.001]]
    assert [lr_at_epoch(sched, e) for e in (0, 9, 10, 999, 5000)] == [0.1, 0.1, 0.001, 0.001, 0.001]
    for bad, msg in (([], "at least one"), ([[10, 0.1], [5, 0.01]], "increase"), ([[10, -0.1]], "> 0"),
                     ([[10]], "epoch_limit")):
        with pytest.raises(ValueError, match=msg):
            check_schedule(bad)
    x, y = torch.rand(20, 49), torch.randint(0, 5, (20,))
    with pytest.raises(ValueError, match="burn_in"):
        train_tiny_fc(x, y, replicas=1, epochs=5, burn_in=5, lr_schedule=[[10, 0.1]], batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        train_tiny_fc(x, y, replicas=1, epochs=5, burn_in=1, lr_schedule=[[10, 0.1]], batch_size=21)


def test_train_schemes_full_batch_run_is_plain_gradient_descent():
    """The full-batch third of :func:`train_schemes` equals gradient descent done separately with autograd from the
    same initialisation (pretraining and continuation alike)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(60, 7, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (60,), generator=gen)
    run = train_schemes(x, y, lr=0.3, batch_size=45, steps=20, replicas=2, hidden=5, pretrain_steps=15,
                        record_every=5, seed=4)
    p = [t.requires_grad_() for t in mlp_init(2, 7, 5, 3, make_generator(4), "cpu", torch.float64)]
    for _ in range(35):
        loss = F.cross_entropy(mlp_forward(p, x.expand(2, 60, 7)).reshape(-1, 3), y.repeat(2))
        grads = torch.autograd.grad(loss * 2, p)  # mean over replicas → sum of per-replica means
        with torch.no_grad():
            for t, g in zip(p, grads, strict=True):
                t.sub_(0.3 * g)
    flat = torch.cat([t.detach().reshape(2, -1) for t in p], 1).numpy()
    np.testing.assert_allclose(run.final_weights["full"], flat, atol=1e-12)
    # the module built from a replica's weights computes the same loss the run recorded
    m = mlp_module(run.final_weights["with"][0], 7, 5, 3)
    assert float(F.cross_entropy(m(x), y).detach()) == pytest.approx(run.loss["with"][-1, 0], rel=1e-10)
