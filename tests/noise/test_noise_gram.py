"""The layer-wise per-sample gradient Gram against explicit per-sample gradients (independent truths)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sgdbayes.noise import (FallbackWarning, n_weights, per_sample_gradients, per_sample_gram, small_fc, small_lenet,
                            spectrum_from_gradients, spectrum_from_gram, tiny_fc)
from sgdbayes.noise.training import per_sample_cross_entropy as ce


pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: one thread is faster and deterministic


def _randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen, dtype=m.running_mean.dtype))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen, dtype=m.running_var.dtype) + 0.5)
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(generator=gen)
    return model


class ConvNet(nn.Module):
    """Linear with a position axis, grouped + strided + reflect-padded convs, a 'same' conv: every Gram route."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, stride=2, padding=1, padding_mode="reflect")
        self.c2 = nn.Conv2d(4, 6, 3, padding="same", groups=2, dilation=1)
        self.c3 = nn.Conv2d(6, 3, 1, bias=False)
        self.seq = nn.Linear(3, 5)  # applied to [N, positions, 3]
        self.out = nn.Linear(5, 4)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = torch.tanh(self.c2(h))
        h = self.c3(h).flatten(2).transpose(1, 2)  # [N, P, 3]
        h = torch.relu(self.seq(h)).mean(1)
        return self.out(h)


CASES = {
    "mlp": (lambda: nn.Sequential(nn.Linear(7, 9), nn.ReLU(inplace=True), nn.Linear(9, 3)), (7,), 3),
    "convnet": (ConvNet, (2, 8, 8), 4),
    "small_fc": (small_fc, (49,), 10),
    "tiny_fc": (tiny_fc, (49,), 5),
    "small_lenet": (small_lenet, (1, 28, 28), 10),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gram_equals_explicit_per_sample_gradients(name):
    make, shape, classes = CASES[name]
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model = _randomise_bn(make().double(), gen)
    n = 12
    x = torch.randn(n, *shape, generator=gen, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=gen)
    res = per_sample_gram(model, ce, x, y)
    assert res.fallback == [] and res.d == n_weights(model)
    j = per_sample_gradients(model, ce, x, y)
    assert j.shape == (n, res.d)
    truth = j @ j.T
    assert torch.allclose(res.gram, truth, rtol=0, atol=1e-10 * truth.abs().max())
    s1, s2 = spectrum_from_gram(res), spectrum_from_gradients(j)
    lam_max = s2.eigenvalues[0]
    np.testing.assert_allclose(s1.eigenvalues, s2.eigenvalues, rtol=0, atol=1e-8 * lam_max)
    assert s1.rank == s2.rank and s1.rank <= n - 1


def test_spectrum_equals_covariance_eigenvalues_and_svd():
    gen = torch.Generator().manual_seed(3)
    j = torch.randn(9, 5, generator=gen, dtype=torch.float64) @ torch.randn(5, 20, generator=gen, dtype=torch.float64)
    # D built naively from its definition (1/N) Σ g gᵀ − ḡ ḡᵀ
    dmat = j.T @ j / 9 - torch.outer(j.mean(0), j.mean(0))
    lam_d = np.sort(torch.linalg.eigvalsh(dmat).numpy())[::-1]
    s = spectrum_from_gram(j @ j.T, d=20)
    np.testing.assert_allclose(s.eigenvalues, lam_d[:9], atol=1e-10 * lam_d[0])
    assert s.rank == 5  # rank of the centred 9×20 matrix of rank 5 (generic)
    assert s.mean == pytest.approx(float(torch.trace(dmat)) / 20, rel=1e-10)
    assert s.sd == pytest.approx(float(np.std(lam_d.clip(0))), rel=1e-8)
    assert s.grad_norm_sq == pytest.approx(float((j.mean(0) ** 2).sum()), rel=1e-12)


class Scale(nn.Module):
    """A layer without a layer-wise rule."""

    def __init__(self, k):
        super().__init__()
        self.s = nn.Parameter(torch.linspace(0.5, 1.5, k))

    def forward(self, x):
        return x * self.s


def test_unsupported_layer_falls_back_and_says_so():
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    lin = nn.Linear(6, 6)
    model = nn.Sequential(nn.Linear(5, 6), Scale(6), nn.Tanh(), lin, nn.Tanh(), lin, nn.Linear(6, 3)).double()
    x = torch.randn(10, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (10,), generator=gen)
    with pytest.warns(FallbackWarning, match=r"1\.s"):
        res = per_sample_gram(model, ce, x, y)
    # the Scale parameter and the twice-called shared Linear take the fallback path
    assert set(res.fallback) == {"1.s", "3.weight", "3.bias"}
    j = per_sample_gradients(model, ce, x, y)
    truth = j @ j.T
    assert torch.allclose(res.gram, truth, rtol=0, atol=1e-10 * truth.abs().max())


def test_float32_model_accumulates_in_float64():
    gen = torch.Generator().manual_seed(4)
    model = small_fc()
    x = torch.rand(30, 49, generator=gen)
    y = torch.randint(0, 10, (30,), generator=gen)
    res = per_sample_gram(model, ce, x, y)
    assert res.gram.dtype == torch.float64
    j = per_sample_gradients(model, ce, x, y).double()
    assert torch.allclose(res.gram, j @ j.T, rtol=1e-4, atol=1e-5 * float(res.gram.abs().max()))


def test_bad_input_is_rejected_clearly():
    model = nn.Sequential(nn.Linear(3, 2)).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="N >= 2"):
        per_sample_gram(model, ce, x[:1], y[:1])
    with pytest.raises(ValueError, match="empty batch"):
        per_sample_gram(model, ce, x[:0], y[:0])
    with pytest.raises(ValueError, match="y has 3"):
        per_sample_gram(model, ce, x, y[:3])
    with pytest.raises(ValueError, match="per sample"):
        per_sample_gram(model, lambda o, t: F.cross_entropy(o, t), x, y)
    xn = x.clone()
    xn[1, 2] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        per_sample_gram(model, ce, xn, y)
    model[0].weight.data[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN"):
        per_sample_gram(model, ce, x, y)
    with pytest.raises(ValueError, match="N >= 2"):
        spectrum_from_gram(torch.ones(1, 1), d=3)


def test_nan_gradient_with_finite_loss_is_reported():
    class NanGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g * float("nan")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.b(NanGrad.apply(self.a(x)))

    x = torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(FloatingPointError, match="NaN"):
        per_sample_gram(Net().double(), ce, x, torch.tensor([0, 1, 0, 1, 1]))


def test_model_mode_is_restored():
    model = small_fc()
    model.train()
    per_sample_gram(model, ce, torch.rand(6, 49), torch.arange(6))
    assert model.training


def test_layer_blocks_are_summed_in_module_order():
    """The per-layer Gram blocks are added in the model's module order, so G is bit-identical run to run (a set of
    modules iterated in memory-address order made the last digits of the spectra differ between runs)."""
    import sgdbayes.noise.gram as gram_module

    seen = []
    orig = gram_module._layer_gram

    def spy(mod, *args):
        seen.append(mod)
        return orig(mod, *args)

    x = torch.rand(6, 1, 28, 28)
    y = torch.arange(6)
    for _ in range(5):  # fresh modules at fresh addresses
        model = small_lenet()
        seen.clear()
        gram_module._layer_gram = spy
        try:
            per_sample_gram(model, ce, x, y)
        finally:
            gram_module._layer_gram = orig
        order = [m for m in model.modules() if m in seen]
        assert seen == order


@pytest.mark.parametrize("make, shape", [(small_lenet, (1, 28, 28)), (small_fc, (49,))])
def test_float32_products_keep_the_rank_and_the_spectrum_above_the_threshold(make, shape):
    """Products in the model's float32, blocks summed in float64: an exactly rank-deficient D (12 distinct samples,
    each repeated 5 times, so D has 11 nonzero eigenvalues) keeps the thresholded rank, and every eigenvalue above the paper's threshold
    λ_max·d·ε32 agrees with the all-float64 route far inside that threshold."""
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    model = _randomise_bn(make(), gen)
    base = torch.rand(12, *shape, generator=gen)
    x = base.repeat(5, *([1] * len(shape)))
    y = torch.randint(0, 10, (12,), generator=gen).repeat(5)
    exact = spectrum_from_gram(per_sample_gram(model, ce, x, y))
    fast_res = per_sample_gram(model, ce, x, y, products="input")
    fast = spectrum_from_gram(fast_res)
    assert fast_res.gram.dtype == torch.float64
    assert (exact.eigenvalues > 1e-9 * exact.eigenvalues[0]).sum() == 11  # the exact structure
    assert exact.rank == fast.rank <= 11
    err = np.abs(fast.eigenvalues - exact.eigenvalues).max()
    assert err < 1e-3 * exact.threshold
    with pytest.raises(ValueError, match="products"):
        per_sample_gram(model, ce, x, y, products="half")


@pytest.mark.parametrize("padding, mode", [(0, "zeros"), (2, "zeros"), (2, "reflect"), ("same", "circular")])
def test_grouped_convolution_gives_each_samples_weight_gradient(padding, mode):
    """The grouped-convolution route to a conv layer's per-sample weight gradients equals autograd run on each
    sample alone, whatever the padding; it is taken for a one-channel layer with large output maps (small-lenet's
    first layer) and not where im2col is cheaper (its second layer)."""
    from sgdbayes.noise.gram import _conv_weight_grads_grouped, _grouped_conv_applies

    gen = torch.Generator().manual_seed(3)
    conv = nn.Conv2d(2, 3, 3, padding=padding, padding_mode=mode)
    x = torch.randn(5, 2, 9, 9, generator=gen)
    out = conv(x)
    delta = torch.randn(out.shape, generator=gen)
    truth = []
    for n in range(5):
        conv.zero_grad()
        (conv(x[n:n + 1]) * delta[n:n + 1]).sum().backward()
        truth.append(conv.weight.grad.reshape(-1).clone())
    got = _conv_weight_grads_grouped(conv, x, delta.detach())
    torch.testing.assert_close(got, torch.stack(truth), rtol=1e-5, atol=1e-5)

    lenet = small_lenet().eval()
    xs = torch.rand(32, 1, 28, 28, generator=gen)
    h = lenet[:5](xs)
    d1 = torch.randn(32, 8, 24, 24, generator=gen)
    d2 = torch.randn(32, 16, 4, 4, generator=gen)
    assert _grouped_conv_applies(lenet[0], xs, d1, torch.float32)
    assert not _grouped_conv_applies(lenet[0], xs, d1, torch.float64)  # float64 products: im2col in float64
    assert not _grouped_conv_applies(lenet[5], h, d2, torch.float32)
