"""nngp_cnn against a naive loop over positions and patches, reductions to the FCN kernel, and the Monte-Carlo
kernel of wide random CNNs."""

import math

import numpy as np
import pytest
import torch

from sgdbayes.kernels import mc_nngp_cnn, nngp_cnn, nngp_fcn

F64 = torch.float64


def _images(n, c, h, w, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _relu_expect(a, b, k):
    c = math.sqrt(a * b)
    if c == 0.0:
        return 0.0
    theta = math.acos(min(1.0, max(-1.0, k / c)))
    return c * (math.sin(theta) + (math.pi - theta) * math.cos(theta)) / (2 * math.pi)


def _naive_cnn(x, y, depth, sw, sb, ksize, padding):
    """One pair at a time, explicit loops over positions and zero-padded patches (numpy/math only)."""
    x, y = x.numpy(), y.numpy()
    c, h, w = x.shape
    pad = ksize // 2 if padding == "same" else 0
    # layer-0 "activations" covariance maps: mean over channels of products
    v = [(x * y).mean(0), (x * x).mean(0), (y * y).mean(0)]          # cross, xx, yy
    for _ in range(depth):
        hh, ww = v[0].shape
        ho, wo = hh + 2 * pad - ksize + 1, ww + 2 * pad - ksize + 1
        kk = []
        for m in v:
            mp = np.pad(m, pad)
            out = np.empty((ho, wo))
            for i in range(ho):
                for j in range(wo):
                    out[i, j] = sb**2 + sw**2 * mp[i:i + ksize, j:j + ksize].sum() / ksize**2
            kk.append(out)
        cross, xx, yy = kk
        v = [np.vectorize(_relu_expect)(xx, yy, cross), xx / 2, yy / 2]
    return sb**2 + sw**2 * v[0].mean()


@pytest.mark.parametrize("padding,ksize", [("same", 3), ("valid", 3), ("same", 5)])
def test_matches_naive_loops(padding, ksize):
    x, y = _images(3, 2, 6, 6), _images(2, 2, 6, 6, seed=1)
    x[1] = 2.0 * x[0]
    got = nngp_cnn(x, y, depth=2, sigma_w=1.4, sigma_b=0.3, kernel_size=ksize, padding=padding).numpy()
    want = np.array([[_naive_cnn(a, b, 2, 1.4, 0.3, ksize, padding) for b in y] for a in x])
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12)  # the naive arccos loses ~√ε near ρ = 1


@pytest.mark.parametrize("phi", ["relu", "erf"])
@pytest.mark.parametrize("depth", [0, 1, 3])
def test_kernel_size_one_is_mean_of_fcn_kernels(phi, depth):
    """With 1×1 convolutions every position is an FCN on the channel vector; the readout averages them."""
    x, y = _images(5, 3, 4, 3), _images(4, 3, 4, 3, seed=2)
    got = nngp_cnn(x, y, depth=depth, sigma_w=1.3, sigma_b=0.2, nonlinearity=phi, kernel_size=1)
    want = torch.stack([nngp_fcn(x[:, :, i, j], y[:, :, i, j], depth=depth, sigma_w=1.3, sigma_b=0.2,
                                 nonlinearity=phi) for i in range(4) for j in range(3)]).mean(0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("phi", ["relu", "erf"])
def test_full_image_valid_conv_is_fcn(phi):
    """One 'valid' convolution as large as the image is a dense layer on the flattened image."""
    x = _images(6, 2, 5, 5, seed=3)
    got = nngp_cnn(x, depth=1, sigma_w=1.2, sigma_b=0.5, nonlinearity=phi, kernel_size=5, padding="valid")
    want = nngp_fcn(x.flatten(1), depth=1, sigma_w=1.2, sigma_b=0.5, nonlinearity=phi)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_matches_wide_network_monte_carlo(padding):
    x = _images(6, 2, 7, 7, seed=4)
    sw, sb = 1.5, 0.3
    mc = mc_nngp_cnn(x, depth=2, channels=96, sigma_w=sw, sigma_b=sb, padding=padding, n_samples=32, seed=0)
    k = nngp_cnn(x, depth=2, sigma_w=sw, sigma_b=sb, padding=padding)
    # finite-width bias O(1/channels) ≈ 1 %, below the Monte-Carlo error (~3-5 % of the entries)
    z = (mc.mean - k) / mc.stderr
    assert z.abs().max() < 4.5, f"max |z| = {z.abs().max():.2f}"
    k_wrong = nngp_cnn(x, depth=2, sigma_w=sw, sigma_b=sb + 0.2, padding=padding)
    assert ((mc.mean - k_wrong) / mc.stderr).abs().max() > 6


def test_symmetric_psd_blocks_and_flat_inputs():
    x = _images(15, 1, 5, 5, seed=5)
    kw = dict(depth=2, sigma_w=1.3, sigma_b=0.1)
    k = nngp_cnn(x, **kw)
    assert torch.equal(k, k.T)
    ev = torch.linalg.eigvalsh(k)
    assert ev.min() > 0
    torch.testing.assert_close(nngp_cnn(x, x.clone(), **kw), k, rtol=1e-13, atol=1e-13)
    for max_elements in (4 * 25, 7 * 7 * 25, 10**6):       # block edges 2, 7, whole
        torch.testing.assert_close(nngp_cnn(x, **kw, max_elements=max_elements), k, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(nngp_cnn(x, x[:9], **kw, max_elements=max_elements), k[:, :9],
                                   rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(nngp_cnn(x.flatten(1), **kw, image_shape=(1, 5, 5)), k, rtol=0, atol=0)
    assert k.dtype == F64 and k.device == x.device


def test_differentiable_in_sigmas():
    x = _images(3, 1, 4, 4, seed=6)
    sw = torch.tensor(1.2, dtype=F64, requires_grad=True)
    sb = torch.tensor(0.3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: nngp_cnn(x, depth=2, sigma_w=a, sigma_b=b), (sw, sb), eps=1e-6,
                                    atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(padding="reflect"), "reflect.*same, valid"),
    (dict(kernel_size=4), "odd kernel_size.*4"),
    (dict(kernel_size=0), "kernel_size.*0"),
    (dict(padding="valid", depth=3), "too small.*depth=3"),
    (dict(depth=-2), "depth.*-2"),
    (dict(sigma_w=-1.0), "sigma_w.*-1.0"),
    (dict(nonlinearity="gelu"), "gelu"),
])
def test_bad_arguments(kwargs, match):
    base = dict(depth=1, sigma_w=1.0, sigma_b=0.1)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        nngp_cnn(torch.zeros(2, 1, 5, 5), **base)


def test_bad_inputs():
    with pytest.raises(ValueError, match="image_shape"):
        nngp_cnn(torch.zeros(2, 25), depth=1, sigma_w=1.0, sigma_b=0.1)
    with pytest.raises(ValueError, match="24 features.*needs 25"):
        nngp_cnn(torch.zeros(2, 24), depth=1, sigma_w=1.0, sigma_b=0.1, image_shape=(1, 5, 5))
    with pytest.raises(ValueError, match="shapes"):
        nngp_cnn(torch.zeros(2, 1, 5, 5), torch.zeros(2, 1, 5, 4), depth=1, sigma_w=1.0, sigma_b=0.1)
    x = torch.zeros(2, 1, 5, 5)
    x[1, 0, 2, 3] = float("inf")
    with pytest.raises(ValueError, match=r"x1 contains NaN or inf.*\[1, 0, 2, 3\]"):
        nngp_cnn(x, depth=1, sigma_w=1.0, sigma_b=0.1)
