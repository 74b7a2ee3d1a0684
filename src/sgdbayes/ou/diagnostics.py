"""Diagnostics of chains and their estimates, in one place: relative errors, the Monte-Carlo standard error of a
sample covariance, running variances and how fast they reach a tolerance, and the paper's online estimate of the
gradient-noise covariance ``C``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sgdbayes.ou.models import DataModel
from sgdbayes.ou.threads import small_op_threads
from sgdbayes.seed import make_generator

__all__ = [
    "VarianceTrace",
    "cov_standard_error",
    "first_within",
    "online_noise_covariance",
    "passes_to_tolerance",
    "relative_error",
    "running_variance",
    "sample_cov",
]


def relative_error(estimate, truth) -> float:
    """``‖estimate − truth‖_F / ‖truth‖_F``."""
    estimate, truth = np.asarray(estimate, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if estimate.shape != truth.shape:
        raise ValueError(f"shape mismatch: estimate {estimate.shape} vs truth {truth.shape}")
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


def cov_standard_error(cov, n: int, var_x=None, var_y=None) -> np.ndarray:
    """Standard error ``[D, D]`` of each entry of a sample covariance (divisor ``n − 1``) of ``n`` independent
    jointly Gaussian pairs ``(x, y)`` with ``Cov(x, y) = cov``: ``sqrt((cov_ij² + Var x_i Var y_j) / (n − 1))``.
    For an ordinary covariance (``x = y``) the variances are the diagonal of ``cov`` (the default); for a
    cross-covariance (e.g. at a lag) pass the marginal variances ``var_x``, ``var_y``."""
    cov = np.asarray(cov, dtype=np.float64)
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2 (draws behind the covariance), got {n!r}")
    vx = np.diag(cov) if var_x is None else np.asarray(var_x, dtype=np.float64)
    vy = vx if var_y is None else np.asarray(var_y, dtype=np.float64)
    return np.sqrt((cov**2 + np.outer(vx, vy)) / (int(n) - 1))


def sample_cov(x: torch.Tensor) -> np.ndarray:
    """Sample covariance (divisor ``n − 1``, float64) of the rows of ``x`` ``[n, D]``."""
    x = x.to(torch.float64)
    xc = x - x.mean(0)
    return (xc.T @ xc / (x.shape[0] - 1)).cpu().numpy()


@dataclass
class VarianceTrace:
    """Per-chain marginal-variance estimates over a run: ``var`` ``[R, K, D]`` at ``passes`` ``[R]`` (passes through
    the data spent so far, warm-up or burn-in included), and optionally ``cov`` ``[D, D]``, the sampler's estimate of
    the whole covariance at the end of the run (pooled over chains)."""

    passes: np.ndarray
    var: np.ndarray
    cov: np.ndarray | None = None


def running_variance(samples: torch.Tensor) -> np.ndarray:
    """Unbiased variance of the first ``m`` samples of each chain for ``m = 2..M``: ``[K, M, D]`` → ``[M−1, K, D]``."""
    x = samples.to(torch.float64)
    x = x - x[:, :1]
    m = torch.arange(1, x.shape[1] + 1, dtype=x.dtype, device=x.device)[None, :, None]
    c1, c2 = x.cumsum(1), (x * x).cumsum(1)
    var = (c2 - c1 * c1 / m) / (m - 1).clamp(min=1)
    return var[:, 1:].permute(1, 0, 2).cpu().numpy()


def passes_to_tolerance(trace: VarianceTrace, true_var, coords, *, tol: float = 0.1) -> float | None:
    """First pass count from which the chain-averaged estimate of every marginal variance in ``coords`` stays within
    relative error ``tol`` of ``true_var`` until the end of the run; ``None`` if it never does."""
    true_var = np.asarray(true_var, dtype=np.float64)
    if true_var.shape != trace.var.shape[2:]:
        raise ValueError(f"true_var has shape {true_var.shape}, the trace has D = {trace.var.shape[2]}")
    est = trace.var[:, :, coords].mean(1)  # [R, len(coords)]
    return first_within(trace.passes, est / true_var[coords], tol=tol)


def first_within(x, ratio, *, tol: float) -> float | None:
    """The first ``x`` from which every column of ``ratio`` ``[R, k]`` stays within ``1 ± tol`` to the end;
    ``None`` if the last row is outside."""
    ok = np.all(np.abs(np.asarray(ratio) - 1.0) <= tol, axis=1)
    if not ok[-1]:
        return None
    bad = np.flatnonzero(~ok)
    return float(np.asarray(x)[0 if bad.size == 0 else bad[-1] + 1])


def online_noise_covariance(model, theta, *, S: int, n_steps: int, eps: float = 0.0, seed=0) -> np.ndarray:
    """The paper's running estimate ``C_t = (1 − κ_t) C_{t−1} + κ_t (ĝ_1 − ĝ_S)(ĝ_1 − ĝ_S)ᵀ``, ``κ_t = 1/t``.

    ``theta`` ``[P]`` or ``[M, P]`` (M chains update one shared estimate, averaging their outer products); with
    ``eps > 0`` the chains take constant-SGD steps in between, as during a run. ``ĝ_1`` is the first example of the
    minibatch, so ``E(ĝ_1 − ĝ_S)(ĝ_1 − ĝ_S)ᵀ = (1 − 1/S) C``; the result is divided by ``1 − 1/S`` (needs ``S >= 2``).
    Needs a model with per-example gradients (:class:`~sgdbayes.ou.models.DataModel`)."""
    if S < 2:
        raise ValueError(f"the online estimate needs a minibatch of S >= 2, got {S}")
    if not isinstance(model, DataModel):
        raise TypeError(f"{type(model).__name__} has no per-example gradients (it is not a DataModel)")
    gen = make_generator(seed, model.device)
    th = torch.as_tensor(theta, dtype=model.dtype, device=model.device)
    th = th[None] if th.ndim == 1 else th.clone()
    C = torch.zeros(model.P, model.P, dtype=torch.float64, device=model.device)
    with small_op_threads(th.shape[0] * S * model.P, model.device):
        for t in range(1, n_steps + 1):
            idx = model.draw_batches(gen, 1, th.shape[0], S).values[0]
            G = model.example_grads(th, idx)  # [M, S, P]
            gS = G.mean(1)
            d = (G[:, 0] - gS).double()
            C = (1 - 1 / t) * C + (1 / t) * (d.T @ d / d.shape[0])
            if eps > 0:
                th = th - eps * gS
    C = C / (1 - 1 / S)
    return (0.5 * (C + C.T)).cpu().numpy()
