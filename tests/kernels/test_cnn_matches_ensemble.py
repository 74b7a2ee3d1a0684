"""The CNN-GP kernel against the networks the chapter trains: ``sgdbayes.ensembles.models.CNN`` at its prior
initialisation (float32, its own per-network seeds and forward pass), by the Monte-Carlo average of f(x) f(x′).

For one conv layer the finite network's E[f(x) f(x′)] *is* the NNGP kernel at any number of channels (the conv
pre-activations are exactly Gaussian), so the comparison has no width bias and the tolerance is pure Monte-Carlo
error: 4.5 standard errors on each entry (the entries share the same networks, so their errors are strongly
correlated; 4.5 keeps the chance of a false failure below ~1e-4). The same statistic rejects the kernel of the
other padding, which shows the test can tell the conventions apart. For two conv layers the finite-width average
is compared with ``mc_nngp_cnn`` at the same width (the same finite-width expectation, no bias either way)."""

from __future__ import annotations

import pytest
import torch

from sgdbayes.data import load_mnist_subset
from sgdbayes.ensembles.models import CNN
from sgdbayes.kernels import mc_nngp_cnn, nngp_cnn


def network_kernel(model: CNN, x: torch.Tensor, n_networks: int, first_seed: int = 0, block: int = 2000):
    """Mean and standard error of f(x_i) f(x_j) over ``n_networks`` ensemble networks (float64 [n, n])."""
    fs = []
    with torch.no_grad():
        for a in range(first_seed, first_seed + n_networks, block):
            params = model.init(list(range(a, min(a + block, first_seed + n_networks))))
            fs.append(model.forward_shared(params, x).double())
    f = torch.cat(fs)                                    # [M, n]
    prod = f[:, :, None] * f[:, None, :]
    return prod.mean(0), prod.std(0) / f.shape[0] ** 0.5


def test_one_conv_layer_on_mnist_digits():
    """The chapter's CNN (ensembles default: 8 channels, 3×3, 'same', ReLU, dense readout) on three MNIST digits."""
    x = load_mnist_subset(3, 1, seed=0).x_train.reshape(-1, 1, 28, 28)
    model = CNN((1, 28, 28), (8,), kernel_size=3, padding="same", sigma_w=1.0, sigma_b=0.3)
    emp, se = network_kernel(model, x, 8000)
    K = nngp_cnn(x.double(), depth=1, sigma_w=1.0, sigma_b=0.3, kernel_size=3, padding="same")
    assert float(((emp - K) / se).abs().max()) <= 4.5


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_one_conv_layer_padding_conventions(padding):
    """Random 2-channel 5×5 images (non-zero borders, where the padding conventions differ most)."""
    g = torch.Generator().manual_seed(5)
    x = torch.rand(4, 2, 5, 5, generator=g) - 0.3
    model = CNN((2, 5, 5), (6,), kernel_size=3, padding=padding, sigma_w=1.3, sigma_b=0.4)
    emp, se = network_kernel(model, x, 20000)
    kern = {p: nngp_cnn(x.double(), depth=1, sigma_w=1.3, sigma_b=0.4, kernel_size=3, padding=p)
            for p in ("same", "valid")}
    other = "valid" if padding == "same" else "same"
    assert float(((emp - kern[padding]) / se).abs().max()) <= 4.5
    assert float(((emp - kern[other]) / se).abs().max()) > 8.0       # measured: 10.3 and 13.9


def test_two_conv_layers_against_the_kernel_module_networks():
    """Two conv layers of 16 channels: the ensemble networks and ``mc_nngp_cnn``'s networks have the same
    finite-width E[f f′]; the difference of the two estimates is within 4.5 combined standard errors. (The NNGP
    itself differs from both by the O(1/width) finite-width bias, which tests/kernels/test_cnn.py bounds at large
    width.)"""
    g = torch.Generator().manual_seed(6)
    x = torch.rand(3, 1, 6, 6, generator=g)
    model = CNN((1, 6, 6), (16, 16), kernel_size=3, padding="same", sigma_w=1.2, sigma_b=0.2)
    emp, se = network_kernel(model, x, 6000, first_seed=10**6)
    mc = mc_nngp_cnn(x.double(), depth=2, channels=16, sigma_w=1.2, sigma_b=0.2, kernel_size=3, padding="same",
                     n_samples=3000, seed=1, batch=500)
    z = (emp - mc.mean) / (se.square() + mc.stderr.square()).sqrt()
    assert float(z.abs().max()) <= 4.5
    K = nngp_cnn(x.double(), depth=2, sigma_w=1.2, sigma_b=0.2, kernel_size=3, padding="same")
    assert float(((mc.mean - K) / K).abs().max()) < 0.05    # close to the NNGP already (measured 0.9%)
