"""Variational EM for the prior precision λ of Bayesian softmax regression with constant SGD as the E-step
(Mandt, Hoffman & Blei 2017, §7.3).

The objective per example is ``L(θ, λ) = (1/N)[(λ/2)|θ|² − (P/2) log λ + Σ_n (logsumexp_k x_nᵀθ_k − x_nᵀθ_{y_n})]``.
``M`` constant-SGD chains (learning rate ``ε``, fixed) sample ``θ`` from their stationary law ``q``; λ follows a
Robbins–Monro recursion with a decreasing step on ``log λ``:

    log λ ← log λ − ρ_t (λ · mean_m |θ_m|² / P − 1),      ρ_t = ρ₀ (1 + t/t₀)^{−0.7},

which is ``∂L/∂ log λ`` rescaled by ``2/(P)·N`` (same fixed point ``λ = P / E_q|θ|²``, the M-step of EM).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sgdbayes.ou.chains import small_op_threads
from sgdbayes.ou.models import SoftmaxRegression
from sgdbayes.seed import make_generator

__all__ = ["VEMResult", "map_estimate", "validation_prior_precision", "vem_prior_precision"]


@dataclass
class VEMResult:
    """``prior_precision``: final λ (geometric mean over the last quarter of steps); ``trace`` λ per step ``[T]``;
    ``theta`` final chain states ``[M, P]``."""

    prior_precision: float
    trace: np.ndarray
    theta: torch.Tensor


def vem_prior_precision(model: SoftmaxRegression, *, eps: float, S: int, n_chains: int = 8, n_steps: int = 2000,
                        lam0: float = 1.0, rho0: float = 0.05, t0: float = 100.0, init=None, seed: int = 0
                        ) -> VEMResult:
    """Constant-SGD variational EM for λ (see module docstring). ``model.prior_precision`` is updated in place and
    left at the final λ. Raises ``FloatingPointError`` if the chains or λ become non-finite."""
    if eps <= 0 or S < 1 or n_chains < 1 or n_steps < 4 or lam0 <= 0:
        raise ValueError(f"need eps > 0, S >= 1, n_chains >= 1, n_steps >= 4, lam0 > 0; got {eps}, {S}, {n_chains}, "
                         f"{n_steps}, {lam0}")
    gen = make_generator(seed, model.device)
    P = model.P
    theta = (torch.zeros(n_chains, P, dtype=model.dtype, device=model.device) if init is None
             else torch.as_tensor(init, dtype=model.dtype, device=model.device).expand(n_chains, P).clone())
    log_lam = float(np.log(lam0))
    with small_op_threads(n_chains * S * P if model.device.type == "cpu" else float("inf")):
        trace, theta = _vem_loop(model, theta, gen, eps, S, P, log_lam, rho0, t0, n_steps)
    lam = float(np.exp(np.log(trace[-max(1, n_steps // 4):]).mean()))
    model.prior_precision = lam
    return VEMResult(lam, trace, theta)


def _vem_loop(model, theta, gen, eps, S, P, log_lam, rho0, t0, n_steps):
    trace = np.empty(n_steps)
    for t in range(n_steps):
        model.prior_precision = float(np.exp(log_lam))
        theta = theta - eps * model.minibatch_grad(theta, S, gen)
        sq = float((theta.double() ** 2).sum(1).mean())
        if not np.isfinite(sq):
            raise FloatingPointError(f"VEM: the chains diverged at step {t} (eps={eps}); lower eps")
        rho = rho0 * (1 + t / t0) ** -0.7
        log_lam -= rho * (np.exp(log_lam) * sq / P - 1.0)
        log_lam = float(np.clip(log_lam, -30, 30))
        trace[t] = np.exp(log_lam)
    return trace, theta


def map_estimate(model: SoftmaxRegression, *, init=None, max_iter: int = 200, tol: float = 1e-9) -> torch.Tensor:
    """MAP ``θ`` ``[P]`` by full-batch L-BFGS (strong Wolfe) on ``neg_log_joint`` (no ``P×P`` Hessian needed)."""
    theta = (torch.zeros(model.P, dtype=model.dtype, device=model.device) if init is None
             else torch.as_tensor(init, dtype=model.dtype, device=model.device).clone()).requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = model.neg_log_joint(theta[None])[0] / model.N
        loss.backward()
        return loss

    opt.step(closure)
    if not torch.isfinite(theta).all():
        raise FloatingPointError("L-BFGS for the MAP produced non-finite parameters")
    return theta.detach()


def validation_prior_precision(X_train, y_train, X_val, y_val, lambdas, *, n_classes: int, dtype=torch.float64):
    """For each λ in ``lambdas``: MAP on the training set, mean log-likelihood of the validation set.
    Returns ``(best λ, scores [len(lambdas)])``."""
    lambdas = np.asarray(lambdas, dtype=np.float64)
    if lambdas.ndim != 1 or lambdas.size == 0 or np.any(lambdas <= 0):
        raise ValueError(f"lambdas must be a non-empty 1-D array of positive values, got {lambdas!r}")
    Xv = torch.as_tensor(np.asarray(X_val), dtype=dtype)
    yv = torch.as_tensor(np.asarray(y_val), dtype=torch.long)
    scores, prev = [], None
    for lam in lambdas:
        m = SoftmaxRegression(X_train, y_train, n_classes=n_classes, prior_precision=float(lam), dtype=dtype)
        prev = map_estimate(m, init=prev)
        scores.append(float(m.log_likelihood(prev[None], Xv, yv)[0]))
    scores = np.array(scores)
    return float(lambdas[int(np.argmax(scores))]), scores
