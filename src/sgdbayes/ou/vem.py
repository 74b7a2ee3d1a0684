"""Variational EM for the prior precision λ of Bayesian softmax regression with constant SGD as the E-step
(Mandt, Hoffman & Blei 2017, §7.3).

The objective per example is ``L(θ, λ) = (1/N)[(λ/2)|θ|² − (P/2) log λ + Σ_n (logsumexp_k x_nᵀθ_k − x_nᵀθ_{y_n})]``.
``M`` constant-SGD chains (learning rate ``ε``, fixed) sample ``θ`` from their stationary law ``q``; λ follows a
Robbins–Monro recursion with a decreasing step on ``log λ``:

    log λ ← log λ − ρ_t (λ · mean_m |θ_m|² / P − 1),      ρ_t = ρ₀ (1 + t/t₀)^{−0.7},

which is ``∂L/∂ log λ`` rescaled by ``2N/P`` (same fixed point ``λ = P / E_q|θ|²``, the M-step of EM).

Every Gaussian-``q`` VEM therefore converges to a fixed point of ``f(λ) = P / (|m_λ|² + Tr Σ_q(λ))``: the exact
posterior (Laplace) gives the evidence-maximising λ (MacKay's ``λ = γ/|m|²``), a mean-field ``q`` or constant SGD's
stationary law (``Tr Σ ∝ ε/S``, and zero in directions the data do not constrain: the prior term of ``ℓ_n`` is the same
for every example, so it adds no gradient noise) give larger λ. :func:`prior_precision_scan` evaluates ``f`` for each
family on a λ grid and :func:`fixed_point` finds its crossing, an independent check of the stochastic runs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from sgdbayes.ou.driver import run
from sgdbayes.ou.models import SoftmaxRegression
from sgdbayes.ou.observers import Divergence, Trace
from sgdbayes.ou.samplers import vem
from sgdbayes.ou.threads import small_op_threads

__all__ = ["PrecisionScan", "VEMResult", "fixed_point", "map_estimate", "prior_precision_scan",
           "validation_prior_precision", "vem_prior_precision"]


@contextlib.contextmanager
def _few_threads(work: float, device):
    """Single-threaded torch and BLAS for small problems on the CPU (thread hand-offs dominate; on a shared machine
    by 10×), see :func:`~sgdbayes.ou.threads.small_op_threads`."""
    cpu = torch.device(device).type == "cpu"
    with small_op_threads(work, device):
        if cpu and work < 4e6:
            from threadpoolctl import threadpool_limits
            with threadpool_limits(1):
                yield
        else:
            yield


@dataclass
class VEMResult:
    """``prior_precision``: final λ (geometric mean over the last quarter of steps); ``trace`` λ per step ``[T]``;
    ``sq_trace`` the chains' mean ``|θ|²`` per step ``[T]``; ``theta`` final chain states ``[M, P]``.

    :meth:`m_step` is the exact M-step ``P / E_q|θ|²`` with ``E_q`` the average of ``sq_trace`` over the last
    quarter: at a converged run it equals ``prior_precision`` (the Robbins–Monro recursion's fixed point)."""

    prior_precision: float
    trace: np.ndarray
    sq_trace: np.ndarray
    theta: torch.Tensor
    P: int = 0

    def m_step(self) -> float:
        return float(self.P / self.sq_trace[-max(1, len(self.sq_trace) // 4):].mean())


def vem_prior_precision(model: SoftmaxRegression, *, eps: float, S: int, n_chains: int = 8, n_steps: int = 2000,
                        lam0: float = 1.0, rho0: float = 0.05, t0: float = 100.0, init=None, seed: int = 0
                        ) -> VEMResult:
    """Constant-SGD variational EM for λ (see the module docstring and :class:`~sgdbayes.ou.samplers.VEM`): the
    driver runs ``n_chains`` chains of the VEM sampler from ``init`` (default zeros). The model is not changed.
    Raises :class:`~sgdbayes.ou.observers.DivergenceError` if the chains or λ become non-finite."""
    if eps <= 0 or S < 1 or n_chains < 1 or n_steps < 4 or lam0 <= 0:
        raise ValueError(f"need eps > 0, S >= 1, n_chains >= 1, n_steps >= 4, lam0 > 0; got {eps}, {S}, {n_chains}, "
                         f"{n_steps}, {lam0}")
    P = model.P
    theta = (torch.zeros(n_chains, P, dtype=model.dtype, device=model.device) if init is None
             else torch.as_tensor(init, dtype=model.dtype, device=model.device).expand(n_chains, P).clone())
    trace = Trace(_lam_and_sq)
    r = run(model, vem(float(eps), S, lam0=lam0, rho0=rho0, t0=t0), n_chains=n_chains, n_steps=n_steps,
            init=theta, seed=seed, observers=[trace], divergence=Divergence(check_every=n_steps))
    lam_trace = np.array([v[0] for v in trace.values])
    sq_trace = np.array([v[1] for v in trace.values])
    lam = float(np.exp(np.log(lam_trace[-max(1, n_steps // 4):]).mean()))
    return VEMResult(lam, lam_trace, sq_trace, r.final, P)


def _lam_and_sq(state) -> tuple[float, float]:
    return state.lam, state.sq


def map_estimate(model: SoftmaxRegression, *, init=None, max_iter: int = 200, tol: float = 1e-9) -> torch.Tensor:
    """MAP ``θ`` ``[P]`` by full-batch L-BFGS (strong Wolfe) on ``neg_log_joint`` (no ``P×P`` Hessian needed);
    ``tol`` bounds the max-abs gradient of the average loss."""
    with _few_threads(model.N * model.P, model.device):
        return _map_estimate(model, init, max_iter, tol)


def _map_estimate(model, init, max_iter, tol):
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
    scan = prior_precision_scan(X_train, y_train, X_val, y_val, lambdas, n_classes=n_classes, dtype=dtype,
                                hessian=False)
    return float(scan.lambdas[int(np.argmax(scan.val_loglik))]), scan.val_loglik


@dataclass
class PrecisionScan:
    """Per grid value of λ (all ``[G]``): validation mean log-likelihood of the MAP, ``|m_λ|²`` (MAP norm), and the
    trace of three Gaussian ``q`` around the MAP — the Laplace posterior ``Tr (NA)⁻¹``, its mean-field (KL(q‖p)
    optimal) restriction ``Σ_k 1/(NA)_kk``, and constant SGD's Lyapunov covariance ``Tr Σ(ε, S)`` — NaN where not
    computed. ``A`` is the Hessian of the average loss at the MAP."""

    lambdas: np.ndarray
    val_loglik: np.ndarray
    sq_mode: np.ndarray
    tr_post: np.ndarray
    tr_meanfield: np.ndarray
    tr_sgd: np.ndarray
    P: int

    def m_step(self, kind: str) -> np.ndarray:
        """The EM update ``f(λ) = P / (|m_λ|² + Tr Σ_q)`` for ``kind`` in ``map`` (q a point mass), ``laplace``,
        ``meanfield``, ``sgd``."""
        tr = {"map": 0.0, "laplace": self.tr_post, "meanfield": self.tr_meanfield, "sgd": self.tr_sgd}
        if kind not in tr:
            raise ValueError(f"kind must be one of {sorted(tr)}, got {kind!r}")
        return self.P / (self.sq_mode + tr[kind])

    def fixed_point(self, kind: str) -> float:
        """λ with ``f(λ) = λ`` for the q family ``kind`` (see :func:`fixed_point`)."""
        return fixed_point(self.lambdas, self.m_step(kind))

    @property
    def best_validation(self) -> float:
        return float(self.lambdas[int(np.argmax(self.val_loglik))])


def fixed_point(lambdas, f) -> float:
    """The stable fixed point of the EM map ``λ ← f(λ)`` from values on a grid: the first sign change of
    ``g = log f − log λ`` from + to − (linear interpolation in ``log λ``). NaN when the grid does not bracket it
    (``g`` of one sign, or non-finite values)."""
    lam = np.asarray(lambdas, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    order = np.argsort(lam)
    lam, f = lam[order], f[order]
    if lam.size < 2 or not np.all(np.isfinite(f)) or np.any(f <= 0):
        return float("nan")
    x, g = np.log(lam), np.log(f) - np.log(lam)
    for i in range(lam.size - 1):
        if g[i] >= 0 > g[i + 1]:
            return float(np.exp(x[i] + g[i] * (x[i + 1] - x[i]) / (g[i] - g[i + 1])))
    return float("nan")


def prior_precision_scan(X_train, y_train, X_val, y_val, lambdas, *, n_classes: int, eps: float | None = None,
                         S: int = 1, hessian: bool = True, max_hessian_P: int = 3000, dtype=torch.float64,
                         device="cpu") -> PrecisionScan:
    """MAP of softmax regression for every λ of ``lambdas`` (L-BFGS, warm-started along the sorted grid) and the
    quantities of :class:`PrecisionScan`. The Hessian terms need ``hessian=True`` and ``P <= max_hessian_P`` (one
    ``P×P`` eigendecomposition per λ); ``tr_sgd`` also needs ``eps`` and uses the eigenbasis of ``A``:
    ``Tr Σ = (ε/S) Σ_i (UᵀCU)_ii / (2 a_i)``, exact for the continuous Lyapunov equation ``AΣ + ΣA = (ε/S)C``."""
    lambdas = np.asarray(lambdas, dtype=np.float64)
    if lambdas.ndim != 1 or lambdas.size == 0 or np.any(~np.isfinite(lambdas)) or np.any(lambdas <= 0):
        raise ValueError(f"lambdas must be a non-empty 1-D array of finite positive values, got {lambdas!r}")
    if eps is not None and (not np.isfinite(eps) or eps <= 0 or S < 1):
        raise ValueError(f"need eps > 0 and S >= 1 for the SGD trace, got eps={eps}, S={S}")
    Xv = torch.as_tensor(np.asarray(X_val), dtype=dtype, device=device)
    yv = torch.as_tensor(np.asarray(y_val), dtype=torch.long, device=device)
    G = lambdas.size
    out = {k: np.full(G, np.nan) for k in ("val", "sq", "post", "mf", "sgd")}
    with _few_threads(np.asarray(X_train).shape[0] * np.asarray(X_train).shape[1] * n_classes, device):
        return _scan(X_train, y_train, Xv, yv, lambdas, n_classes, eps, S, hessian, max_hessian_P, dtype, device,
                     out)


def _scan(X_train, y_train, Xv, yv, lambdas, n_classes, eps, S, hessian, max_hessian_P, dtype, device, out):
    prev, P = None, None
    for i in np.argsort(lambdas)[::-1]:                        # strongest prior first: each MAP warm-starts the next
        m = SoftmaxRegression(X_train, y_train, n_classes=n_classes, prior_precision=float(lambdas[i]), dtype=dtype,
                              device=device)
        P = m.P
        prev = map_estimate(m, init=prev, tol=1e-7)
        out["val"][i] = float(m.log_likelihood(prev[None], Xv, yv)[0])
        out["sq"][i] = float((prev.double() ** 2).sum())
        if hessian and P <= max_hessian_P:
            A = m.hessian(prev)
            a, U = np.linalg.eigh(A)
            if a[0] <= 0:
                raise FloatingPointError(f"the Hessian at the MAP for λ={lambdas[i]:.4g} is not positive definite "
                                         f"(smallest eigenvalue {a[0]:.3g})")
            out["post"][i] = float((1 / (m.N * a)).sum())
            out["mf"][i] = float((1 / (m.N * np.diag(A))).sum())
            if eps is not None:
                C = m.noise_covariance(prev)
                cdiag = np.einsum("ij,jk,ki->i", U.T, C, U)
                out["sgd"][i] = float(eps / S * (cdiag / (2 * a)).sum())
    return PrecisionScan(lambdas, out["val"], out["sq"], out["post"], out["mf"], out["sgd"], int(P))
