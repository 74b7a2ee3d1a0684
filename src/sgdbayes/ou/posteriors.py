"""Reference posteriors and black-box variational inference for the models of :mod:`sgdbayes.ou.models`.

- :func:`laplace_posterior`: ``N(θ*, (N A)⁻¹)`` at the MAP, ``A`` the Hessian of the average loss (the exact
  posterior of linear regression is :meth:`sgdbayes.ou.models.LinearRegression.posterior`).
- :func:`nuts`: NUTS (Pyro) draws from the posterior of any model, with the number of full-data gradients spent.
- :func:`bbvi`: Gaussian ``q`` (full-rank or mean-field) fitted by maximising the ELBO with reparameterisation
  gradients (Adam, decaying step), optionally on minibatches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from sgdbayes.ou.models import Model
from sgdbayes.ou.threads import small_op_threads
from sgdbayes.seed import make_generator

__all__ = ["BBVIResult", "NUTSResult", "bbvi", "laplace_posterior", "nuts"]


def laplace_posterior(model: Model, mode=None):
    """Laplace approximation ``(θ* [P], (N A)⁻¹ [P, P])`` as float64 numpy arrays."""
    theta = model.mode() if mode is None else torch.as_tensor(mode, device=model.device)
    A = model.hessian(theta.double().cpu())
    cov = np.linalg.inv(model.N * A)
    return theta.double().cpu().numpy(), 0.5 * (cov + cov.T)


@dataclass
class NUTSResult:
    """``draws`` ``[n, P]`` (float64) after warm-up; ``gradients`` ``[n]``: full-data evaluations of the log
    posterior (each with its gradient) spent by the time each draw was out, warm-up included."""

    draws: np.ndarray
    gradients: np.ndarray


def nuts(model: Model, *, num_samples: int = 500, warmup: int = 300, seed: int = 0, init=None,
         max_tree_depth: int = 10) -> NUTSResult:
    """``num_samples`` NUTS draws from ``∝ exp(−neg_log_joint(θ))`` with Pyro (step size and diagonal mass matrix
    adapted during ``warmup``), starting at ``init`` (default the mode). Every evaluation of the potential is one
    pass through the data. Raises ``FloatingPointError`` on non-finite draws."""
    import pyro
    from pyro.infer import MCMC, NUTS

    if num_samples < 1 or warmup < 0:
        raise ValueError(f"need num_samples >= 1 and warmup >= 0; got {num_samples}, {warmup}")
    pyro.set_rng_seed(seed)
    theta0 = (model.mode() if init is None else torch.as_tensor(init)).to(dtype=model.dtype, device=model.device)
    calls, at = [0], []

    def potential(params):
        calls[0] += 1
        return model.neg_log_joint(params["theta"][None])[0]

    def hook(kernel, samples, stage, i):
        if stage == "Sample":
            at.append(calls[0])

    kernel = NUTS(potential_fn=potential, adapt_step_size=True, adapt_mass_matrix=True,
                  max_tree_depth=max_tree_depth)
    mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup, initial_params={"theta": theta0},
                disable_progbar=True, hook_fn=hook)
    with small_op_threads(model.N * model.P, model.device):
        mcmc.run()
    draws = mcmc.get_samples()["theta"].double().cpu().numpy()
    if not np.isfinite(draws).all():
        raise FloatingPointError("NUTS produced non-finite draws")
    grads = (np.asarray(at[-num_samples:], dtype=float) if len(at) >= num_samples
             else np.linspace(calls[0] / num_samples, calls[0], num_samples))
    return NUTSResult(draws, grads)


@dataclass
class BBVIResult:
    """``mean [P]``, ``cov [P, P]`` (float64 numpy; ``None`` for a mean-field fit with ``P > 2000``, see ``var``),
    ``var [P]`` the marginal variances, the ELBO trace (every 50 steps) and, with ``learn_prior_precision``, the
    trace of the prior precision λ (every 50 steps)."""

    mean: np.ndarray
    cov: np.ndarray | None
    var: np.ndarray
    elbo: np.ndarray
    prior_precision: np.ndarray | None = None


def bbvi(model: Model, *, family: str = "full", n_steps: int = 3000, lr: float = 0.05, n_mc: int = 16,
         batch_size: int | None = None, init=None, seed: int = 0, decay: float = 0.5,
         learn_prior_precision: bool = False) -> BBVIResult:
    """Fit ``q = N(m, LLᵀ)`` (``family="full"``, ``L`` lower-triangular with positive diagonal) or
    ``N(m, diag(s²))`` (``"meanfield"``) by stochastic ascent on ``ELBO = E_q[−neg_log_joint] + H(q)``.

    Gradients: reparameterisation ``θ = m + L z`` with ``n_mc`` draws; with ``batch_size`` the likelihood is a
    rescaled minibatch sum. Adam with step ``lr / (1 + t/n_steps·…)`` decaying as ``(1 + 10 t/n_steps)^{-decay}``.
    The scale starts at the curvature scale ``1/sqrt(N diag A)``.

    ``learn_prior_precision=True`` also maximises the ELBO over the prior precision λ (variational EM): after every
    step λ is set to its exact maximiser given ``q``, ``λ = P / E_q|θ|² = P / (|m|² + Tr Σ)``. ``model.prior_precision``
    is left at the final λ."""
    if family not in ("full", "meanfield"):
        raise ValueError(f"family must be 'full' or 'meanfield', got {family!r}")
    gen = make_generator(seed, model.device)
    dtype, P = model.dtype, model.P
    dev = model.device
    m0 = model.mode() if init is None else torch.as_tensor(init, dtype=dtype, device=dev)
    # initial scale: 1/sqrt(N · diag A) when the Hessian is affordable, else 1/sqrt(N)
    try:
        d0 = np.diag(model.hessian(m0)) if P <= 2000 else np.ones(P)
    except Exception:  # noqa: BLE001 - a model without a Hessian starts from the prior-free guess
        d0 = np.ones(P)
    s0 = torch.as_tensor(1.0 / np.sqrt(model.N * d0), dtype=dtype, device=dev)
    m = m0.detach().clone().requires_grad_(True)
    log_s = s0.log().clone().requires_grad_(True)
    params = [m, log_s]
    off = None
    if family == "full":
        off = torch.zeros(P, P, dtype=dtype, device=dev, requires_grad=True)
        params.append(off)
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: (1 + 10 * t / n_steps) ** (-decay))
    tril = torch.tril(torch.ones(P, P, dtype=torch.bool, device=dev), -1)
    elbos, lams = [], []
    work = n_mc * (batch_size or model.N) * P
    with small_op_threads(work, model.device):
        _bbvi_loop(model, opt, sched, gen, m, log_s, off, tril, n_steps, n_mc, batch_size, learn_prior_precision,
                   elbos, lams, lr)
    return _bbvi_result(m, log_s, off, tril, P, elbos, lams, learn_prior_precision)


def _bbvi_loop(model, opt, sched, gen, m, log_s, off, tril, n_steps, n_mc, batch_size, learn_prior_precision,
               elbos, lams, lr):
    dtype, P = model.dtype, model.P
    for t in range(n_steps):
        opt.zero_grad()
        z = torch.randn(n_mc, P, generator=gen, dtype=dtype, device=m.device)
        s = log_s.exp()
        if off is None:
            theta = m + z * s
        else:
            L = torch.diag(s) + torch.where(tril, off, torch.zeros_like(off)) * s[None, :]
            theta = m + z @ L.T
        if batch_size is None:
            nlj = model.neg_log_joint(theta).mean()
        else:
            nlj = _minibatch_nlj(model, theta, batch_size, gen).mean()
        entropy = log_s.sum()                     # + const; log|L| = Σ log s
        loss = nlj - entropy
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(f"BBVI: the ELBO became non-finite at step {t}; lower lr (now {lr})")
        loss.backward()
        opt.step()
        sched.step()
        if learn_prior_precision:
            with torch.no_grad():
                s2 = (2 * log_s).exp()
                tr = s2.sum() if off is None else (s2 * (1 + (torch.tril(off, -1) ** 2).sum(0))).sum()
                model.prior_precision = float(P / ((m**2).sum() + tr))
        if t % 50 == 0:
            elbos.append(-float(loss.detach()) + 0.5 * P * (1 + math.log(2 * math.pi)))
            lams.append(model.prior_precision)


def _bbvi_result(m, log_s, off, tril, P, elbos, lams, learn_prior_precision):
    with torch.no_grad():
        s = log_s.exp()
        if off is None:
            var = (s**2).double().cpu().numpy()
            cov = np.diag(var) if P <= 2000 else None
        else:
            L = torch.diag(s) + torch.where(tril, off, torch.zeros_like(off)) * s[None]
            cov = (L @ L.T).double().cpu().numpy()
            cov = 0.5 * (cov + cov.T)
            var = np.diag(cov).copy()
    return BBVIResult(m.detach().double().cpu().numpy(), cov, var, np.array(elbos),
                      np.array(lams) if learn_prior_precision else None)


def _minibatch_nlj(model: Model, theta, batch_size: int, gen) -> torch.Tensor:
    """Unbiased minibatch estimate of ``neg_log_joint`` for the GLMs: ``(N/B) Σ_batch nll + prior``."""
    idx = torch.randint(model.N, (batch_size,), generator=gen, device=model.device)
    sub = type(model).__new__(type(model))
    sub.__dict__.update(model.__dict__)
    sub.X, sub.y, sub.N = model.X[idx], model.y[idx], batch_size
    lam = model.prior_precision
    prior = 0.5 * lam * (theta**2).sum(-1)
    return (model.N / batch_size) * (sub.neg_log_joint(theta) - prior) + prior
