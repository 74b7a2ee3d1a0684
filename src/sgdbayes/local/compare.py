"""Constant SGD's measured stationary law at a mode against the Lyapunov prediction and the Laplace posterior,
split into the range of the gradient-noise covariance C and its null space."""

from __future__ import annotations

import math

import numpy as np

from sgdbayes.local.lyapunov import eigen_lyapunov, subspace_split
from sgdbayes.local.mode import ConstantSGDRun, LocalPicture

__all__ = ["covariance_comparison", "gaussian_kl_zero_mean"]


def gaussian_kl_zero_mean(S0: np.ndarray, S1: np.ndarray) -> float:
    """``KL(N(0, S0) ‖ N(0, S1))`` for positive definite ``S0``, ``S1`` (nats)."""
    L1 = np.linalg.cholesky(S1)
    M = np.linalg.solve(L1, np.linalg.cholesky(S0))
    logdet = 2 * (np.log(np.diag(L1)).sum() - np.log(np.diag(np.linalg.cholesky(S0))).sum())
    return float(0.5 * ((M**2).sum() - S0.shape[0] + logdet))


def covariance_comparison(pic: LocalPicture, run: ConstantSGDRun) -> dict:
    """Compare one :class:`ConstantSGDRun` (its ``proj`` must be on ``pic.U_range``) with theory.

    Returns, over the chains that did not diverge (``n_used``; NaN everywhere if none):

    - ``emp_range [r, r]``: the iterates' covariance in the range of C (about their mean);
      ``lyap_range`` / ``lyap_range_discrete``: the continuous and exact-discrete Lyapunov predictions there;
      ``laplace_range``: the Laplace posterior's;
    - traces: ``tr_emp_range``, ``tr_lyap_range``, ``tr_lyap_discrete_range``, ``tr_laplace_range``, and in the null
      space ``tr_emp_null`` (the iterates' total variance about their mean minus the range part), ``tr_lyap_null``,
      ``tr_laplace_null``; ``rel_err_range`` (‖emp − discrete Lyapunov‖_F / ‖discrete Lyapunov‖_F);
    - ``kl_range``: KL(stationary ‖ Laplace) of the zero-mean Gaussians in the range of C;
    - ``drift``: mean ‖θ − θ*‖² over the second half of the recorded steps divided by the first half's (1 for a
      stationary chain; well above 1 when the iterates still drift) and ``mean_offset_sq`` = ‖E θ − θ*‖².
    """
    use = ~run.diverged
    out: dict = {"n_used": int(use.sum()), "n_diverged": int(run.diverged.sum()), "eps": run.eps}
    U = pic.U_range
    r = U.shape[1]
    lyap = eigen_lyapunov(pic.A_eigvals, pic.A_eigvecs, pic.C, eps=run.eps, S=run.S)
    split_c = subspace_split(lyap, U)
    lap = pic.laplace_covariance()
    split_l = subspace_split(lap, U)
    try:
        lyap_d = eigen_lyapunov(pic.A_eigvals, pic.A_eigvecs, pic.C, eps=run.eps, S=run.S, discrete=True)
        split_d = subspace_split(lyap_d, U)
    except ValueError:  # above the stability limit of the quadratic model: no stationary law
        split_d = {"range": np.full((r, r), np.nan), "trace_range": math.nan, "trace_null": math.nan}
    out.update(lyap_range=split_c["range"], lyap_range_discrete=split_d["range"], laplace_range=split_l["range"],
               tr_lyap_range=split_c["trace_range"], tr_lyap_discrete_range=split_d["trace_range"],
               tr_lyap_null=split_c["trace_null"], tr_lyap_discrete_null=split_d["trace_null"],
               tr_laplace_range=split_l["trace_range"], tr_laplace_null=split_l["trace_null"])
    if not use.any():
        out.update(emp_range=np.full((r, r), np.nan), tr_emp_range=math.nan, tr_emp_null=math.nan,
                   rel_err_range=math.nan, kl_range=math.nan, drift=math.nan, mean_offset_sq=math.nan)
        return out
    X = run.proj[use].reshape(-1, r)
    mu = X.mean(0)
    emp = (X - mu).T @ (X - mu) / X.shape[0]
    total = run.sq_dev[use].mean() - float(run.mean_dev @ run.mean_dev)
    half = run.sq_dev.shape[1] // 2
    drift = float(run.sq_dev[use, half:].mean() / run.sq_dev[use, :half].mean()) if half else math.nan
    ref = split_d["range"] if np.isfinite(split_d["trace_range"]) else split_c["range"]
    try:
        kl = gaussian_kl_zero_mean(emp, split_l["range"])
    except np.linalg.LinAlgError:
        kl = math.nan
    out.update(emp_range=emp, tr_emp_range=float(np.trace(emp)), tr_emp_null=float(total - np.trace(emp)),
               rel_err_range=float(np.linalg.norm(emp - ref) / np.linalg.norm(ref)), kl_range=kl, drift=drift,
               mean_offset_sq=float(run.mean_dev @ run.mean_dev))
    return out
