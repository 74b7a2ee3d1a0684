"""The spectrum of the gradient-noise covariance ``D(x)`` of SGD (Chaudhari & Soatto 2018, §2 and §4.1).

``D = (1/N) Σ_k (g_k − ḡ)(g_k − ḡ)ᵀ`` (d×d) has rank at most ``N − 1``; its nonzero eigenvalues are those of the
N×N matrix ``(1/N) H G H`` (``G`` the per-sample gradient Gram, ``H = I − 11ᵀ/N``), since ``JᵀJ`` and ``JJᵀ``
share their nonzero spectrum. The paper's rank counts ``λ > λ_max · d · ε_float32`` and its "mean ± sd of λ(D)" is
over all ``d`` eigenvalues, zeros included (so ``mean = tr D / d``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sgdbayes.noise.gram import GramResult, LossFn, per_sample_gram

EPS_FLOAT32 = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class NoiseSpectrum:
    """Spectrum of ``D``.

    ``eigenvalues``: the ``N`` eigenvalues of ``HGH/N``, descending, float64 (the nonzero spectrum of ``D`` padded by
    ``d − N`` zeros is the full spectrum); ``d``: parameters; ``n``: samples; ``grad_norm_sq``: ``‖∇f‖²``.
    """

    eigenvalues: np.ndarray
    d: int
    n: int
    grad_norm_sq: float = float("nan")

    @property
    def threshold(self) -> float:
        """The paper's rank threshold ``λ_max · d · ε_float32``."""
        return float(max(self.eigenvalues[0], 0.0)) * self.d * EPS_FLOAT32

    @property
    def rank(self) -> int:
        return int((self.eigenvalues > self.threshold).sum())

    @property
    def rank_fraction(self) -> float:
        """``rank(D) / d`` (at most ``(N − 1) / d``)."""
        return self.rank / self.d

    @property
    def trace(self) -> float:
        return float(np.clip(self.eigenvalues, 0.0, None).sum())

    @property
    def mean(self) -> float:
        """Mean of all ``d`` eigenvalues of ``D`` (= ``tr D / d``)."""
        return self.trace / self.d

    @property
    def sd(self) -> float:
        """Standard deviation of all ``d`` eigenvalues of ``D`` (zeros included)."""
        lam = np.clip(self.eigenvalues, 0.0, None)
        var = (lam**2).sum() / self.d - self.mean**2
        return float(np.sqrt(max(var, 0.0)))

    @property
    def nonzero(self) -> np.ndarray:
        """Eigenvalues above the rank threshold."""
        return self.eigenvalues[self.eigenvalues > self.threshold]

    def summary(self) -> dict[str, float]:
        return {"mean": self.mean, "sd": self.sd, "rank": self.rank, "rank_fraction": self.rank_fraction,
                "lambda_max": float(self.eigenvalues[0]), "d": self.d, "n": self.n,
                "grad_norm_sq": self.grad_norm_sq}


def spectrum_from_gram(gram: torch.Tensor | GramResult, d: int | None = None) -> NoiseSpectrum:
    """Eigenvalues of ``D`` from an uncentred per-sample Gram ``[N, N]`` (``eigvalsh`` of ``HGH/N`` in float64)."""
    if isinstance(gram, GramResult):
        d = gram.d if d is None else d
        res = gram
        g = gram.gram
    else:
        g = gram
        res = None
        if d is None:
            raise ValueError("d (the number of parameters) is needed with a bare Gram matrix")
    if g.dim() != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"gram must be square [N, N], got shape {tuple(g.shape)}")
    n = g.shape[0]
    if n < 2:
        raise ValueError(f"N = {n}; the gradient covariance needs N >= 2 samples")
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    g = g.detach().to(torch.float64)
    if not torch.isfinite(g).all():
        raise FloatingPointError("the Gram matrix holds NaN/inf; the spectrum of D is undefined")
    row = g.mean(dim=1, keepdim=True)
    gc = g - row - row.T + g.mean()
    gc = 0.5 * (gc + gc.T) / n
    lam = torch.linalg.eigvalsh(gc).flip(0).cpu().numpy()
    norm_sq = res.mean_grad_sq if res is not None else float(g.sum()) / n**2
    return NoiseSpectrum(eigenvalues=lam, d=int(d), n=n, grad_norm_sq=norm_sq)


def spectrum_from_gradients(j: torch.Tensor) -> NoiseSpectrum:
    """The same spectrum from an explicit gradient matrix ``J [N, d]``: squared singular values of the centred
    ``J/√N`` (the naive route, for checks and small models)."""
    if j.dim() != 2:
        raise ValueError(f"J must be [N, d], got shape {tuple(j.shape)}")
    n, d = j.shape
    if n < 2:
        raise ValueError(f"N = {n}; the gradient covariance needs N >= 2 samples")
    j = j.detach().to(torch.float64)
    if not torch.isfinite(j).all():
        raise FloatingPointError("the gradient matrix holds NaN/inf")
    jc = (j - j.mean(dim=0)) / np.sqrt(n)
    s = torch.linalg.svdvals(jc).cpu().numpy()
    lam = np.zeros(n)
    lam[: s.size] = s**2
    return NoiseSpectrum(eigenvalues=np.sort(lam)[::-1].copy(), d=d, n=n,
                         grad_norm_sq=float((j.mean(dim=0) ** 2).sum()))


def noise_spectrum(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, **kwargs) -> NoiseSpectrum:
    """Spectrum of ``D`` of ``model`` on ``(x, y)``: :func:`per_sample_gram` then :func:`spectrum_from_gram`."""
    return spectrum_from_gram(per_sample_gram(model, loss_fn, x, y, **kwargs))
