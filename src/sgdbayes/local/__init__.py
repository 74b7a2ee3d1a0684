"""Mandt, Hoffman & Blei's local picture at one mode of a real network.

At a mode θ* of ``L(θ) = (1/N) Σ_n ℓ_n(θ)`` (``ℓ_n`` the negative log likelihood of example n plus ``1/N`` of the
negative log prior): the Hessian ``A``, the per-example gradient covariance ``C`` (and its spectrum through the
layer-wise Gram of :mod:`sgdbayes.noise`), Mandt's optimal constant rate ε* and diagonal preconditioner H*, the
Lyapunov prediction of constant SGD's stationary covariance split into the range and the null space of ``C``, the
Laplace posterior ``(NA)⁻¹``, and constant-SGD chains run there (:mod:`sgdbayes.local.mode`).
"""

from sgdbayes.local.lyapunov import eigen_lyapunov, subspace_split
from sgdbayes.local.mode import ConstantSGDRun, LocalPicture, constant_sgd_chains, find_mode, local_picture

__all__ = ["ConstantSGDRun", "LocalPicture", "constant_sgd_chains", "eigen_lyapunov", "find_mode", "local_picture",
           "subspace_split"]
