"""Bayesian models as sums of per-example losses, in the form the samplers of :mod:`sgdbayes.ou.samplers` need.

Every model defines the average loss ``L(θ) = (1/N) Σ_n ℓ_n(θ)``, ``ℓ_n = −log p(y_n | x_n, θ) − (1/N) log p(θ)``
with a Gaussian prior ``N(0, λ⁻¹ I)``, so the posterior is ``∝ exp(−N L(θ))``. Parameters are flat vectors
``θ ∈ ℝᴾ``; a batch of chains is ``[M, P]``. Gradients are written out in closed form (no autograd in the inner loop):
one step of M chains, each with its own minibatch, is a gather and two batched contractions.

:class:`Model` is the interface every model implements (an ABC):

- ``draw_batches(generator, n_steps, n_chains, S)``: the randomness of ``n_steps`` minibatches for every chain;
- ``grad(theta, batch)``: the minibatch gradient of ``L`` ``[M, P]`` for one step of those batches;
- ``neg_log_joint(theta)``: ``N L(θ)`` up to a constant ``[M]`` (differentiable);
- ``hessian(theta)``, ``noise_covariance(theta)``: ``A`` and ``C = BBᵀ`` at ``theta`` ``[P, P]``;
- ``mode()``: the MAP ``[P]``.

:class:`DataModel` adds what models built from examples have: per-example gradients (``example_grads``,
``per_example_grads``), minibatches of indices drawn with replacement (so the minibatch noise covariance is exactly
``C/S``), and the noise covariance from the per-example gradients.

- :class:`Quadratic`: ``L = ½(θ−θ*)ᵀA(θ−θ*)`` with exact Gaussian gradient noise ``N(0, C/S)`` (the OU model itself).
- :class:`LinearRegression`: ``y = xᵀθ + N(0, σ²)``, with its exact posterior; :func:`make_linear_regression` draws
  the synthetic problem of the paper's §7.2.
- :class:`LogisticRegression`: ``y ∈ {0, 1}``, ``p(y=1) = sigmoid(xᵀθ)``.
- :class:`SoftmaxRegression`: ``y ∈ {0..K−1}``, ``θ`` is ``[D, K]`` flattened row-major.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from sgdbayes.ou.theory import check_psd
from sgdbayes.ou.threads import small_op_threads
from sgdbayes.seed import SeedLike, make_generator

__all__ = [
    "DataModel",
    "Minibatches",
    "LinearRegression",
    "LogisticRegression",
    "Model",
    "Quadratic",
    "SoftmaxRegression",
    "make_linear_regression",
    "max_curvature",
    "newton_mode",
]


def _tensor(x, name, dtype, device, ndim) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(t.shape)}")
    if t.is_floating_point() or ndim == 2:
        if not torch.isfinite(t.double()).all():
            bad = int((~torch.isfinite(t.double())).sum())
            raise ValueError(f"{name} contains {bad} NaN or inf value(s); clean or impute the data first")
    return t.to(device=device, dtype=dtype).contiguous()  # row-major: minibatch gathers read whole rows


@dataclass(frozen=True)
class Minibatches:
    """The randomness of ``n`` consecutive minibatches of every chain: ``values`` ``[n, M, S]`` example indices
    (:class:`DataModel`) or ``[n, M, P]`` standard normal draws (:class:`Quadratic`), and the minibatch size ``S``."""

    values: torch.Tensor
    S: int

    def __len__(self) -> int:
        return self.values.shape[0]

    def step(self, j: int) -> Minibatches:
        """The minibatch of step ``j`` (``values`` without the step axis)."""
        return Minibatches(self.values[j], self.S)


class Model(ABC):
    """The interface of every model the samplers run on (see the module docstring)."""

    N: int
    P: int
    dtype: torch.dtype
    device: torch.device
    prior_precision: float

    @abstractmethod
    def draw_batches(self, generator: torch.Generator, n_steps: int, n_chains: int, S: int) -> Minibatches:
        """The randomness of ``n_steps`` minibatches of size ``S`` for ``n_chains`` chains."""

    @abstractmethod
    def grad(self, theta: torch.Tensor, batch: Minibatches, *, prior_precision=None) -> torch.Tensor:
        """Minibatch gradient of ``L`` ``[M, P]`` at ``theta`` ``[M, P]`` for one step's ``batch`` (``values``
        without the step axis). ``prior_precision`` (a float) replaces the model's λ in the prior term (VEM)."""

    @abstractmethod
    def neg_log_joint(self, theta: torch.Tensor) -> torch.Tensor:
        """``N L(θ)`` up to a constant for each row of ``theta`` ``[M, P]`` → ``[M]``; differentiable."""

    @abstractmethod
    def hessian(self, theta=None) -> np.ndarray:
        """Hessian ``A`` of ``L`` at ``theta`` ``[P, P]`` (float64)."""

    @abstractmethod
    def noise_covariance(self, theta=None) -> np.ndarray:
        """``C = BBᵀ`` ``[P, P]`` (float64): the covariance of one example's gradient ``∇ℓ_n(θ)``."""

    def mode(self, **kw) -> torch.Tensor:
        """The MAP ``θ*`` ``[P]`` (damped Newton unless a model knows better)."""
        return newton_mode(self, **kw)

    def full_grad(self, theta: torch.Tensor) -> torch.Tensor:
        """Gradient of ``L`` (all examples) by autograd of :meth:`neg_log_joint`; ``[P]`` or ``[M, P]``."""
        th = theta.reshape(1, -1) if theta.ndim == 1 else theta
        with torch.enable_grad():
            t = th.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad(self.neg_log_joint(t).sum(), t)
        g = g / self.N
        return g.reshape(theta.shape)

    def minibatch_grad(self, theta: torch.Tensor, S: int, generator: torch.Generator) -> torch.Tensor:
        """One minibatch gradient per chain ``[M, P]``, drawing its randomness from ``generator``."""
        b = self.draw_batches(generator, 1, theta.shape[0], S)
        return self.grad(theta, b.step(0))


class Quadratic(Model):
    """``L(θ) = ½(θ−θ*)ᵀA(θ−θ*)`` with minibatch gradient ``A(θ−θ*) + C^{1/2} z / √S``, ``z ~ N(0, I)``; ``N``
    only sets the 'posterior' ``N(θ*, (NA)⁻¹)``. ``C^{1/2}`` is the eigen-factor of ``C`` (singular ``C`` allowed)."""

    def __init__(self, A, C, *, N: int = 1, theta_star=None, dtype=torch.float64, device="cpu"):
        A = check_psd(A, "A", strict=True)
        C = check_psd(C, "C (= BBᵀ)", strict=False)
        if A.shape != C.shape:
            raise ValueError(f"A and C must have the same shape, got {A.shape} and {C.shape}")
        self.P = A.shape[0]
        self.N = int(N)
        self.dtype, self.device = dtype, torch.device(device)
        self._A, self._C = A, C
        self.A = torch.as_tensor(A, dtype=dtype, device=self.device)
        w, V = np.linalg.eigh(C)
        self.C_sqrt = torch.as_tensor(V * np.sqrt(np.clip(w, 0, None)), dtype=dtype, device=self.device)
        self.theta_star = (
            torch.zeros(self.P, dtype=dtype, device=self.device)
            if theta_star is None
            else torch.as_tensor(theta_star, dtype=dtype, device=self.device)
        )
        self.prior_precision = 0.0

    def draw_batches(self, generator, n_steps, n_chains, S):
        z = torch.randn((n_steps, n_chains, self.P), generator=generator, device=self.device, dtype=self.dtype)
        return Minibatches(z, int(S))

    def grad(self, theta, batch, *, prior_precision=None):
        return (theta - self.theta_star) @ self.A + batch.values @ self.C_sqrt.T / math.sqrt(batch.S)

    def neg_log_joint(self, theta):
        d = theta - self.theta_star
        return 0.5 * self.N * ((d @ self.A) * d).sum(-1)

    def hessian(self, theta=None) -> np.ndarray:
        return self._A.copy()

    def noise_covariance(self, theta=None) -> np.ndarray:
        return self._C.copy()

    def mode(self, **kw):
        return self.theta_star.clone()


class DataModel(Model):
    """A model that is a sum over ``N`` examples: minibatches are example indices drawn uniformly with replacement,
    independently for every chain (so the minibatch gradient noise has covariance exactly ``C/S``)."""

    @abstractmethod
    def example_grads(self, theta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``∇ℓ_n`` for the rows ``idx`` ``[M, S]`` at ``theta`` ``[M, P]`` → ``[M, S, P]``."""

    @abstractmethod
    def per_example_grads(self, theta: torch.Tensor) -> torch.Tensor:
        """``∇ℓ_n(θ)`` for every example at one ``theta`` ``[P]`` → ``[N, P]``."""

    def draw_batches(self, generator, n_steps, n_chains, S):
        S = int(S)
        if S < 1 or S > self.N:
            raise ValueError(f"minibatch size S must lie in 1..N = 1..{self.N}, got {S}")
        idx = torch.randint(self.N, (n_steps, n_chains, S), generator=generator, device=self.device)
        return Minibatches(idx, S)

    def _theta(self, theta) -> torch.Tensor:
        return torch.as_tensor(theta, dtype=self.dtype, device=self.device)

    def noise_covariance(self, theta=None) -> np.ndarray:
        """``C`` at ``theta`` (default: the mode): the covariance over examples of ``∇ℓ_n`` (divisor N)."""
        theta = self.mode() if theta is None else self._theta(theta)
        G = self.per_example_grads(theta).double()
        G = G - G.mean(0)
        C = (G.T @ G / self.N).cpu().numpy()
        return 0.5 * (C + C.T)

    def noise_trace(self, theta=None) -> float:
        """``Tr C`` without forming ``C`` (for large P)."""
        theta = self.mode() if theta is None else self._theta(theta)
        G = self.per_example_grads(theta).double()
        return float(((G - G.mean(0)) ** 2).sum(1).mean())


class _GLM(DataModel):
    def __init__(self, X, y, *, prior_precision: float = 1.0, dtype=torch.float64, device="cpu", y_dtype=None):
        self.dtype, self.device = dtype, torch.device(device)
        self.X = _tensor(X, "X", dtype, self.device, 2)
        self.y = _tensor(y, "y", y_dtype or dtype, self.device, 1)
        if self.y.shape[0] != self.X.shape[0]:
            raise ValueError(f"X has {self.X.shape[0]} rows but y has {self.y.shape[0]}")
        if self.X.shape[0] < 1:
            raise ValueError("X must have at least one row")
        lam = float(prior_precision)
        if not math.isfinite(lam) or lam <= 0:
            raise ValueError(f"prior_precision must be a finite number > 0, got {prior_precision}")
        self.prior_precision = lam
        self.N, self.D = self.X.shape

    # residual-type factor r_n(θ) ∈ ℝ^{K} such that ∇ℓ_n = x_n ⊗ r_n + λθ/N
    @abstractmethod
    def _factor(self, logits, y): ...

    def _K(self) -> int:
        return 1

    def _theta3(self, theta):
        return theta.reshape(theta.shape[0], self.D, self._K())

    def _rows(self, idx):
        return self.X.index_select(0, idx.reshape(-1)).reshape(*idx.shape, self.D)

    def grad(self, theta, batch, *, prior_precision=None):
        idx = batch.values
        Xb = self._rows(idx)  # [M, S, D]
        r = self._factor(torch.bmm(Xb, self._theta3(theta)), self.y[idx])  # [M, S, K]
        g = torch.bmm(Xb.transpose(1, 2), r) / idx.shape[1]  # [M, D, K]
        lam = self.prior_precision if prior_precision is None else prior_precision
        return g.reshape(theta.shape) + (lam / self.N) * theta

    def example_grads(self, theta, idx):
        Xb = self._rows(idx)
        r = self._factor(torch.bmm(Xb, self._theta3(theta)), self.y[idx])
        g = (Xb[..., :, None] * r[..., None, :]).reshape(*idx.shape, -1)
        return g + (self.prior_precision / self.N) * theta[:, None, :]

    def per_example_grads(self, theta):
        th = theta.reshape(self.D, self._K())
        r = self._factor((self.X @ th)[None], self.y[None])[0]  # [N, K]
        g = (self.X[:, :, None] * r[:, None, :]).reshape(self.N, -1)
        return g + (self.prior_precision / self.N) * theta.reshape(1, -1)


class LinearRegression(_GLM):
    """Bayesian linear regression ``y = xᵀθ + N(0, σ²)``, prior ``N(0, λ⁻¹I)``; ``P = D``. The posterior is
    Gaussian and known exactly (:meth:`posterior`); ``w_true`` is kept when the data were simulated."""

    def __init__(self, X, y, *, noise_var: float = 1.0, prior_precision: float = 1.0, dtype=torch.float64,
                 device="cpu", w_true=None):
        super().__init__(X, y, prior_precision=prior_precision, dtype=dtype, device=device)
        if not math.isfinite(noise_var) or noise_var <= 0:
            raise ValueError(f"noise_var must be a finite number > 0, got {noise_var}")
        self.noise_var = float(noise_var)
        self.P = self.D
        self.w_true = w_true
        self._post = None

    def _factor(self, logits, y):
        return (logits - y[..., None]) / self.noise_var

    def neg_log_joint(self, theta):
        r = theta @ self.X.T - self.y  # [M, N]
        return 0.5 * (r**2).sum(-1) / self.noise_var + 0.5 * self.prior_precision * (theta**2).sum(-1)

    def hessian(self, theta=None) -> np.ndarray:
        """``A = (XᵀX/σ² + λI)/N``, the same at every ``θ``."""
        X = self.X.double()
        H = X.T @ X / (self.N * self.noise_var) + self.prior_precision / self.N * torch.eye(
            self.D, dtype=X.dtype, device=X.device)
        return H.cpu().numpy()

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact posterior ``(mean [D], cov [D, D])`` (float64): precision ``Λ = XᵀX/σ² + λI``, mean
        ``Λ⁻¹Xᵀy/σ²`` (Cholesky)."""
        if self._post is None:
            X = self.X.double().cpu().numpy()
            y = self.y.double().cpu().numpy()
            Lam = X.T @ X / self.noise_var + self.prior_precision * np.eye(self.D)
            cf = scipy.linalg.cho_factor(Lam)
            mean = scipy.linalg.cho_solve(cf, X.T @ y / self.noise_var)
            cov = scipy.linalg.cho_solve(cf, np.eye(self.D))
            self._post = (mean, 0.5 * (cov + cov.T))
        return self._post[0].copy(), self._post[1].copy()

    def mode(self, **kw) -> torch.Tensor:
        return torch.as_tensor(self.posterior()[0], dtype=self.dtype, device=self.device)


def make_linear_regression(N: int, D: int, *, prior_precision: float = 1.0, noise_var: float = 1.0,
                           seed: SeedLike = 0, device="cpu") -> LinearRegression:
    """The paper's §7.2 synthetic problem: ``x ~ N(0, I_D)``, ``w ~ N(0, I/λ)`` (the prior), ``y = xᵀw + N(0, σ²)``
    (float64 on ``device``)."""
    if N < 1 or D < 1:
        raise ValueError(f"N and D must be >= 1, got N={N}, D={D}")
    dev = torch.device(device)
    gen = make_generator(seed, dev)
    f64 = dict(dtype=torch.float64, device=dev)
    w = torch.randn(D, generator=gen, **f64) / math.sqrt(prior_precision)
    X = torch.randn(N, D, generator=gen, **f64)
    y = X @ w + math.sqrt(noise_var) * torch.randn(N, generator=gen, **f64)
    return LinearRegression(X, y, prior_precision=prior_precision, noise_var=noise_var, device=dev, w_true=w)


class LogisticRegression(_GLM):
    """Bayesian logistic regression, ``y ∈ {0, 1}``, prior ``N(0, λ⁻¹I)``; ``P = D``."""

    def __init__(self, X, y, *, prior_precision: float = 1.0, dtype=torch.float64, device="cpu"):
        super().__init__(X, y, prior_precision=prior_precision, dtype=dtype, device=device)
        u = torch.unique(self.y)
        if not bool(((u == 0) | (u == 1)).all()):
            raise ValueError(f"logistic regression labels must be 0 or 1, got values {u.tolist()[:10]}")
        self.P = self.D

    def _factor(self, logits, y):
        return torch.sigmoid(logits) - y[..., None]

    def neg_log_joint(self, theta):
        z = theta @ self.X.T
        return (torch.nn.functional.softplus(z) - self.y * z).sum(-1) + 0.5 * self.prior_precision * (
            theta**2).sum(-1)

    def hessian(self, theta=None) -> np.ndarray:
        theta = self.mode() if theta is None else theta
        X = self.X.double()
        p = torch.sigmoid(X @ torch.as_tensor(theta, dtype=X.dtype, device=X.device).reshape(-1))
        H = (X * (p * (1 - p))[:, None]).T @ X / self.N + self.prior_precision / self.N * torch.eye(
            self.D, dtype=X.dtype, device=X.device)
        return H.cpu().numpy()


class SoftmaxRegression(_GLM):
    """Bayesian softmax regression with ``K`` classes, ``θ`` = ``[D, K]`` flattened; prior ``N(0, λ⁻¹I)``."""

    def __init__(self, X, y, *, n_classes: int | None = None, prior_precision: float = 1.0, dtype=torch.float64,
                 device="cpu"):
        super().__init__(X, y, prior_precision=prior_precision, dtype=dtype, device=device, y_dtype=torch.long)
        K = int(self.y.max()) + 1 if n_classes is None else int(n_classes)
        if int(self.y.min()) < 0 or int(self.y.max()) >= K:
            raise ValueError(f"labels must lie in 0..{K - 1}, got range {int(self.y.min())}..{int(self.y.max())}")
        self.K = K
        self.P = self.D * K

    def _K(self):
        return self.K

    def _factor(self, logits, y):
        p = torch.softmax(logits, -1)
        return p - torch.nn.functional.one_hot(y, self.K).to(p.dtype)

    def neg_log_joint(self, theta):
        logits = torch.einsum("nd,mdk->mnk", self.X, self._theta3(theta))
        nll = torch.logsumexp(logits, -1) - logits.gather(-1, self.y.expand(theta.shape[0], -1)[..., None])[..., 0]
        return nll.sum(-1) + 0.5 * self.prior_precision * (theta**2).sum(-1)

    def log_likelihood(self, theta, X, y) -> torch.Tensor:
        """Mean predictive log-likelihood of ``(X, y)`` under each row of ``theta`` ``[M, P]`` → ``[M]``."""
        logits = torch.einsum("nd,mdk->mnk", X.to(self.dtype), self._theta3(theta))
        lp = torch.log_softmax(logits, -1)
        return lp.gather(-1, y.expand(theta.shape[0], -1)[..., None])[..., 0].mean(-1)

    def hessian(self, theta=None) -> np.ndarray:
        theta = self.mode() if theta is None else theta
        X = self.X.double()
        p = torch.softmax(X @ torch.as_tensor(theta, dtype=X.dtype, device=X.device).reshape(self.D, self.K), -1)
        Z = (X[:, :, None] * p[:, None, :]).reshape(self.N, -1)  # [N, P]
        H = -(Z.T @ Z)
        diag_blocks = torch.einsum("nd,ne,nk->dke", X, X, p)  # [D, K, D]
        H = H.reshape(self.D, self.K, self.D, self.K)
        idx = torch.arange(self.K, device=X.device)
        H[:, idx, :, idx] += diag_blocks.permute(1, 0, 2)
        H = H.reshape(self.P, self.P) / self.N + self.prior_precision / self.N * torch.eye(
            self.P, dtype=X.dtype, device=X.device)
        return H.cpu().numpy()


def newton_mode(model: Model, *, theta0=None, tol: float = 1e-10, max_iter: int = 100) -> torch.Tensor:
    """MAP ``θ*`` ``[P]`` by damped Newton on ``L`` (float64). Raises ``RuntimeError`` if it does not converge."""
    theta = torch.zeros(model.P, dtype=torch.float64) if theta0 is None else torch.as_tensor(theta0).double().cpu()
    orig = (model.dtype, model.device)
    for _ in range(max_iter):
        g = model.full_grad(theta.to(dtype=orig[0], device=orig[1]))
        g = g.double().cpu()
        H = torch.as_tensor(model.hessian(theta.to(dtype=orig[0], device=orig[1])))
        step = torch.linalg.solve(H, g)
        L0 = float(model.neg_log_joint(theta.to(dtype=orig[0], device=orig[1])[None])[0])
        t = 1.0
        while t > 1e-8:
            new = theta - t * step
            if float(model.neg_log_joint(new.to(dtype=orig[0], device=orig[1])[None])[0]) <= L0 + 1e-12 * abs(L0):
                break
            t *= 0.5
        theta = new
        if float(g.abs().max()) < tol and float(step.abs().max()) < 1e3 * tol:
            return theta.to(dtype=orig[0], device=orig[1])
        if float((t * step).abs().max()) < tol:
            return theta.to(dtype=orig[0], device=orig[1])
    raise RuntimeError(f"Newton's method for the mode did not converge in {max_iter} iterations "
                       f"(last gradient max-abs {float(g.abs().max()):.3g})")


def max_curvature(model: Model, theta, *, n_iter: int = 50, seed: int = 0) -> float:
    """Largest eigenvalue of the Hessian ``A`` of ``L`` at ``theta`` by power iteration on Hessian-vector products
    (autograd; no ``P×P`` matrix), for the stability limit ``2/λ_max`` of large models."""
    with small_op_threads(model.N * model.P, model.device):
        th = torch.as_tensor(theta, dtype=model.dtype, device=model.device).reshape(1, -1).detach()
        th.requires_grad_(True)
        (g,) = torch.autograd.grad(model.neg_log_joint(th).sum() / model.N, th, create_graph=True)
        gen = torch.Generator(device=model.device).manual_seed(seed)
        v = torch.randn(th.shape, generator=gen, dtype=model.dtype, device=model.device)
        v = v / v.norm()
        lam = 0.0
        for _ in range(n_iter):
            (hv,) = torch.autograd.grad(g, th, grad_outputs=v, retain_graph=True)
            lam = float((hv * v).sum())
            v = hv / hv.norm()
        return lam
