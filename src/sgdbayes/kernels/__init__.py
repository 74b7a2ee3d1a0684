"""NNGP kernels as plain functions (float64, any device) and a GPyTorch wrapper.

- ``nngp_fcn(x1, x2=None, *, depth, sigma_w, sigma_b, nonlinearity="relu", max_tile=None)``: fully connected net,
  ReLU (stable arctan2 arc-cosine form) or erf; tiled, symmetric case computes each entry once (``kernels.fcn``).
- ``nngp_fcn_diag``: the pairwise values ``K(x1[i], x2[i])`` or the variances ``K(x, x)``.
- ``nngp_cnn(x1, x2=None, *, depth, sigma_w, sigma_b, nonlinearity, kernel_size=3, padding="same"|"valid",
  image_shape=None)``: conv + φ layers without pooling and a dense readout (``kernels.cnn``).
- ``mc_nngp_fcn``, ``mc_nngp_cnn``, ``module_nngp``, ``empirical_nngp`` → ``MonteCarloKernel(mean, stderr,
  n_samples)``: Monte-Carlo NNGP of random finite networks, for tests and other architectures (``kernels.empirical``).
- ``NNGPKernel``: a ``gpytorch.kernels.Kernel`` with learnable, positive ``sigma_w`` and ``sigma_b``
  (``kernels.gpytorch_kernel``).

Prior everywhere: weights ``N(0, σ_w²/fan_in)``, biases ``N(0, σ_b²)``, linear readout; ``depth`` hidden layers.
"""

from sgdbayes.kernels.cnn import nngp_cnn
from sgdbayes.kernels.empirical import MonteCarloKernel, empirical_nngp, mc_nngp_cnn, mc_nngp_fcn, module_nngp
from sgdbayes.kernels.fcn import nngp_fcn, nngp_fcn_diag
from sgdbayes.kernels.gpytorch_kernel import NNGPKernel

__all__ = ["nngp_fcn", "nngp_fcn_diag", "nngp_cnn", "NNGPKernel", "MonteCarloKernel", "empirical_nngp",
           "mc_nngp_fcn", "mc_nngp_cnn", "module_nngp"]
