"""The Gaussian posterior on the test latents and what follows from it: the two posteriors of Mingard et al.

Both Bayesian posteriors of chapter 1 end in the same object: a Gaussian ``q(g_E) = N(μ, Σ)`` over the latent values
``g`` of the GP on the test inputs E, and a labelling ``f_j = sign(g_j)``. The probability of a labelling is then an
orthant probability,

    P_B(f | S) = P_{g ~ N(μ, Σ)}( f_j g_j > 0 for all j ∈ E ),                                            (1)

which :func:`log_orthant` evaluates by EP with the step likelihood ``1[f_j g_j > 0]`` (one EP run on |E| sites per
distinct f; exact for |E| = 1). The two posteriors differ in how S enters:

``zero_one_posterior``   the 0–1 likelihood on S (P_B of the paper, for cross-entropy-trained nets): EP with the step
                         likelihood on S, then the EP predictive on E (GPML eqs. 3.60–3.61). With (1) this is the
                         ``method="two_stage"`` form of :func:`sgdbayes.gp.log_pb`.
``regression_posterior`` the exact GP *regression* posterior on S with Gaussian noise of variance σ² (the posterior
                         matching a network trained with MSE, as the authors computed it): with ``A = K_SS + σ² I``,

                             μ = K_ES A⁻¹ t,     Σ = K_EE − K_ES A⁻¹ K_SE  (+ σ² I on E if ``test_noise``),      (2)

                         where ``t`` are the regression targets: ``t = y ∈ {−1, +1}`` (``targets="pm1"``, the
                         consistent choice: the label is the sign of the latent, so the classes must sit on opposite
                         sides of 0) or ``t = (y + 1)/2 ∈ {0, 1}`` (``targets="01"``, what the authors' scripts
                         regressed on: class-0 points are pulled to the decision threshold 0 itself, so their
                         labels stay close to a coin flip). Reading the 0/1 regression at ``threshold=0.5`` (as
                         the authors read their 0/1-trained nets) is the consistent version of that choice.

The authors' code (guillefix/nn-pacbayes, ``GP_prob/nngp_mse_heaviside_posterior.py``, called by
``compute_posterior_params.py`` and ``compute_posterior_prob.py``) does (2) with GPy's exact Gaussian inference,
``Gaussian(variance=0.002)`` and ``predict(X_E, full_cov=True)`` — whose default ``include_likelihood=True`` adds the
noise variance to Σ on E (our ``test_noise=True``) — on the 0/1 labels of the data file, then (1) by GPy's EP with a
Heaviside link and the mean as a mean function, i.e. the labels are read at 0. Their MSE-trained nets are read at 0.5
(``NN_train.py``: ``function > 0.5`` when ``loss == "mse" and zero_one``, the default), so the two sides of the
comparison threshold the same 0/1 regression at different levels — the mismatch behind "looks like a bug".

:class:`LatentGaussian` carries ``(μ, Σ)`` and the summaries the chapter shows: per-point probabilities
``P(f_j = 1) = Φ(μ_j / σ_j)``, their entropies, the posterior-majority labelling, expected and majority test error,
and log P_B of any labellings.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from sgdbayes.gp.ep import EPResult, _as_float64, check_kernel, check_labels, ep, regularise_kernel

__all__ = ["TARGETS", "LatentGaussian", "as_pm1", "log_orthant", "regression_posterior", "zero_one_posterior"]

TARGETS = ("pm1", "01")
"""Regression targets for :func:`regression_posterior`: ``"pm1"`` (t = y ∈ {−1, +1}) or ``"01"`` (t = (y+1)/2)."""

AUTHORS_NOISE_VAR = 0.002
"""Gaussian noise variance of the authors' MSE posterior (``GPy.likelihoods.Gaussian(variance=0.002)``)."""


# ------------------------------------------------------------------------------------------------------- inputs
def as_pm1(y, n: int | None = None, name: str = "y", device=None) -> torch.Tensor:
    """Binary labels as float64 in {−1, +1}, shape kept (``[n]`` or ``[m, n]``).

    Accepts either encoding: all entries in {−1, +1}, or all in {0, 1} (0 → −1). Class 1 is ``1`` in both, so a
    tensor of ones is unambiguous; a mix of −1 and 0 is an error, as is anything else (NaN, 0.5, 2, …).
    """
    y = _as_float64(y, name, device)
    if y.ndim not in (1, 2) or y.numel() == 0:
        raise ValueError(f"{name} must be a non-empty [n] or [m, n] array of labels, got shape {tuple(y.shape)}")
    if n is not None and y.shape[-1] != n:
        raise ValueError(f"{name} must have {n} labels in its last axis, got shape {tuple(y.shape)}")
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"{name} contains NaN or inf; labels must be -1/+1 or 0/1")
    pm = (y == 1) | (y == -1)
    zo = (y == 1) | (y == 0)
    if bool(pm.all()):
        return y
    if bool(zo.all()):
        return 2.0 * y - 1.0
    bad = (~(pm | zo)).nonzero()
    if bad.shape[0]:
        idx = bad[0].tolist()
        raise ValueError(f"labels must be -1/+1 or 0/1; {name}{idx} = {float(y[tuple(idx)])}")
    raise ValueError(f"{name} mixes the two label encodings (it holds both -1 and 0); use -1/+1 or 0/1 throughout")


def _check_noise_var(noise_var) -> float:
    if isinstance(noise_var, bool) or not isinstance(noise_var, (int, float)):
        raise ValueError(f"noise_var must be a finite number >= 0 (a variance), got {noise_var!r}")
    v = float(noise_var)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"noise_var must be a finite number >= 0 (a variance), got {noise_var!r}")
    return v


def _split_kernel(K, y_train, name: str = "y_train"):
    """``(K, n_S, n_E)`` for a kernel over S then E; y_train's length sets n_S."""
    K = check_kernel(K)
    N = K.shape[0]
    y = torch.as_tensor(y_train) if not isinstance(y_train, torch.Tensor) else y_train
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D [n_S], got shape {tuple(y.shape)}")
    n_s = int(y.shape[0])
    if N - n_s < 1:
        raise ValueError(f"K is [{N}, {N}] but {name} has {n_s} labels: K must cover the n_S train inputs and at "
                         "least one test input (train first, then test)")
    return K, n_s, N - n_s


# ------------------------------------------------------------------------------------------------- the object
@dataclass
class LatentGaussian:
    """``q(g_E) = N(mean, cov)`` over the GP latents on E; the labelling is ``f_j = sign(g_j)``.

    mean        ``[n_E]`` float64
    cov         ``[n_E, n_E]`` float64 (symmetric PSD)
    kind        ``"zero_one"`` (EP predictive under the 0–1 likelihood on S) or ``"mse_regression"``
    noise_var   regression noise variance σ² (0.0 for ``"zero_one"``)
    targets     ``"pm1"`` / ``"01"`` for ``"mse_regression"``, ``""`` otherwise
    test_noise  whether σ² was added to cov on E
    jitter      value added to a kernel diagonal to make it PD (0.0 when none)
    threshold   c: the labelling is ``f_j = +1`` iff ``g_j > c`` (0 except for the 0/1-target variant read at 0.5)
    """

    mean: torch.Tensor
    cov: torch.Tensor
    kind: str
    noise_var: float = 0.0
    targets: str = ""
    test_noise: bool = False
    jitter: float = 0.0
    threshold: float = 0.0

    @property
    def n(self) -> int:
        return int(self.mean.shape[0])

    @property
    def var(self) -> torch.Tensor:
        """Marginal variances ``[n_E]``."""
        return torch.diagonal(self.cov)

    def _z(self) -> torch.Tensor:
        var = self.var
        if not bool((var > 0).all()):
            j = int((var <= 0).nonzero()[0])
            raise ValueError(f"posterior variance on E is not positive at test point {j} ({float(var[j]):.3g}); "
                             "a test input duplicates a train input with noise_var = 0?")
        return (self.mean - self.threshold) / var.sqrt()

    def p_one(self) -> torch.Tensor:
        """``P(f_j = +1) = Φ((μ_j − c) / σ_j)``, ``[n_E]``."""
        return torch.special.ndtr(self._z())

    def entropy(self) -> torch.Tensor:
        """Per-point entropy of the label, ``H_j = −p log p − (1−p) log(1−p)`` with ``p = Φ(z_j)``, in nats,
        ``[n_E]`` (log p and log(1−p) from ``log_ndtr(±z)``, so tails keep their precision)."""
        z = self._z()
        lp, lq = torch.special.log_ndtr(z), torch.special.log_ndtr(-z)
        return -(lp.exp() * lp + lq.exp() * lq)

    def total_entropy(self) -> float:
        """``Σ_j H_j`` (nats): the entropy of the labelling if the points were independent — an upper bound on the
        entropy of the joint posterior over labellings."""
        return float(self.entropy().sum())

    def majority(self) -> torch.Tensor:
        """The posterior-majority labelling, ``f_j = +1`` iff ``μ_j > c`` (float64 ±1, ``[n_E]``)."""
        return torch.where(self.mean > self.threshold, 1.0, -1.0).to(self.mean)

    def expected_error(self, y_test) -> float:
        """Mean fraction of E misclassified by a labelling drawn from the posterior: ``(1/n) Σ_j P(f_j ≠ y_j)``
        (exact for this Gaussian; an expectation over all labellings, no enumeration). ``y_test``: ±1 or 0/1."""
        y = as_pm1(y_test, self.n, "y_test", self.mean.device)
        if y.ndim != 1:
            raise ValueError(f"y_test must be 1-D [n_E], got shape {tuple(y.shape)}")
        p = self.p_one()
        return float(torch.where(y > 0, 1 - p, p).mean())

    def majority_error(self, y_test) -> float:
        """Test error of :meth:`majority`, a fraction of E."""
        y = as_pm1(y_test, self.n, "y_test", self.mean.device)
        if y.ndim != 1:
            raise ValueError(f"y_test must be 1-D [n_E], got shape {tuple(y.shape)}")
        return float((self.majority() != y).double().mean())

    def log_prob(self, f, **ep_kwargs) -> torch.Tensor:
        """``log P(f | S)`` (nats) of labellings ``f`` (``[m, n_E]`` or ``[n_E]``, ±1 or 0/1) by eq. (1); see
        :func:`log_orthant`."""
        return log_orthant(self.mean - self.threshold, self.cov, f, **ep_kwargs)


# ------------------------------------------------------------------------------------------------- orthants
def log_orthant(mean, cov, f, *, jitter: str | float | None = "auto", return_result: bool = False, **ep_kwargs):
    """``log P_{g ~ N(mean, cov)}(f_j g_j > 0 ∀j)`` for each row of ``f``, by EP with the step likelihood.

    mean  ``[n]``; cov ``[n, n]`` (float64, PD up to the jitter policy); f ``[m, n]`` or ``[n]`` labellings (±1 or
    0/1; repeated rows are computed once). EP keywords (schedule, damping, tol, site_tol, max_sweeps, …) go to
    :func:`sgdbayes.gp.ep`; an EP run that does not converge raises ``EPConvergenceError``.

    EP is exact for n = 1 (log Φ(f μ/σ)). For n ≥ 2 it approximates the orthant probability; on the small cases of
    the tests its error is a few per cent of P at most (see ``tests/gp/test_posterior.py``).

    Returns float64 ``[m]`` (``[]`` for 1-D f), or ``(log_p, EPResult, inverse)`` when ``return_result``.
    """
    cov = check_kernel(cov, "cov")
    n = cov.shape[0]
    mean = _as_float64(mean, "mean", cov.device)
    if mean.shape != (n,):
        raise ValueError(f"mean must have shape [{n}] to match cov [{n}, {n}], got {tuple(mean.shape)}")
    if not bool(torch.isfinite(mean).all()):
        raise ValueError("mean contains NaN or inf")
    for bad in ("mean", "init", "likelihood"):
        if bad in ep_kwargs:
            raise TypeError(f"log_orthant does not accept {bad!r} as an EP keyword")
    f_t = torch.as_tensor(f) if not isinstance(f, torch.Tensor) else f
    single = f_t.ndim == 1
    f_pm = check_labels(as_pm1(f_t, n, "f", cov.device), n, cov.device, "f")
    uniq, inverse = torch.unique(f_pm, dim=0, return_inverse=True)
    res = ep(cov, uniq, likelihood="step", mean=mean, jitter=jitter, **ep_kwargs)
    out = res.log_z[inverse]
    if single:
        out = out[0]
    return (out, res, inverse) if return_result else out


_PIVOT_RTOL = 1e-12
"""A Cholesky pivot ``L_ii² < _PIVOT_RTOL · mean(diag A)`` counts as a failure: the pivot is a Schur complement, which
bounds the smallest eigenvalue from above, so ``A`` is numerically singular (e.g. a repeated input with σ² = 0)."""


def _cholesky(A: torch.Tensor, jitter, noise_var: float) -> tuple[torch.Tensor, float]:
    """Lower Cholesky factor of ``A = K_SS + σ² I`` and the jitter added; ValueError when A is not numerically PD.

    ``jitter="auto"``: factorise as is; if that fails (or a pivot is tiny) add ``j · mean(diag A)`` for
    ``j = 1e-12, 1e-11, …, 1e-6`` until it succeeds, with a warning. A number: always add it. ``None``: never.
    """
    name = "K_SS + noise_var*I"
    scale = float(torch.diagonal(A).mean())

    def attempt(j: float):
        Aj = A if j == 0.0 else A + j * torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
        L, info = torch.linalg.cholesky_ex(Aj)
        ok = int(info) == 0 and float(torch.diagonal(L).square().min()) >= _PIVOT_RTOL * scale
        return L, ok

    if jitter is None or isinstance(jitter, str):
        if isinstance(jitter, str) and jitter != "auto":
            raise ValueError(f"jitter must be 'auto', None or a finite number >= 0, got {jitter!r}")
        L, ok = attempt(0.0)
        if ok:
            return L, 0.0
        if jitter == "auto":
            rel = 1e-12
            while rel <= 1e-6 * (1 + 1e-9):
                L, ok = attempt(rel * scale)
                if ok:
                    warnings.warn(f"{name} is not numerically positive definite; added jitter {rel * scale:.3g} "
                                  f"({rel:.0e} x mean diagonal) to its diagonal", RuntimeWarning, stacklevel=3)
                    return L, rel * scale
                rel *= 10
        lam = float(torch.linalg.eigvalsh(A)[0])
        raise ValueError(f"{name} (noise_var = {noise_var:g}) is not positive definite: smallest eigenvalue "
                         f"{lam:.3g} (mean diagonal {scale:.3g}); use jitter='auto' or a larger noise_var")
    j = float(jitter)
    if isinstance(jitter, bool) or not math.isfinite(j) or j < 0:
        raise ValueError(f"jitter must be 'auto', None or a finite number >= 0, got {jitter!r}")
    L, ok = attempt(j)
    if not ok:
        raise ValueError(f"{name} + jitter {j:g} (noise_var = {noise_var:g}) is not positive definite; use "
                         "jitter='auto' or a larger noise_var")
    return L, j


# ------------------------------------------------------------------------------------------------- posteriors
def regression_posterior(K, y_train, *, noise_var: float = AUTHORS_NOISE_VAR, targets: str = "pm1",
                         test_noise: bool = True, threshold: float = 0.0,
                         jitter: str | float | None = "auto") -> LatentGaussian:
    """The exact GP regression posterior on E given S, eq. (2) of the module docstring.

    K          ``[n_S + n_E, n_S + n_E]`` kernel over the train inputs, then the test inputs (float64)
    y_train    ``[n_S]`` labels, ±1 or 0/1 (``n_S = 0`` gives the prior N(0, K_EE))
    noise_var  σ² ≥ 0 (default 0.002, the authors' value); with σ² = 0 the jitter policy makes K_SS PD
    targets    ``"pm1"`` (regress on y ∈ {−1, +1}) or ``"01"`` (on (y+1)/2 ∈ {0, 1}, the authors' choice)
    test_noise add σ² to the diagonal of Σ on E (the authors' GPy ``predict`` does; default True)
    threshold  c, the label of a test point is ``+1`` iff ``g_j > c``: 0 (default; the authors' GP side, whatever
               the targets) or 0.5, the reading of 0/1-target nets in the authors' ``NN_train.py``
               (``function > 0.5`` when ``loss == "mse" and zero_one``) and the consistent one for ``targets="01"``
    jitter     for ``A = K_SS + σ² I``: ``"auto"`` adds ``j · mean(diag A)``, j = 1e-12 … 1e-6, only when A is not
               numerically PD (a failed Cholesky or a pivot below 1e-12 of the mean diagonal), with a warning; a
               number is always added; ``None`` never (then a singular A is a ValueError)

    Computed as ``A = L Lᵀ``, ``W = L⁻¹ K_SE``, ``μ = Wᵀ L⁻¹ t``, ``Σ = K_EE − WᵀW``. Cost O(n_S³ + n_S² n_E).
    """
    noise_var = _check_noise_var(noise_var)
    if targets not in TARGETS:
        raise ValueError(f"targets must be one of {TARGETS} ('pm1': regress on -1/+1, '01': on 0/1), got {targets!r}")
    if not isinstance(test_noise, bool):
        raise ValueError(f"test_noise must be True or False, got {test_noise!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    K, n_s, n_e = _split_kernel(K, y_train)
    K_ee = K[n_s:, n_s:]
    jit = 0.0
    if n_s == 0:
        mu = torch.zeros(n_e, dtype=K.dtype, device=K.device)
        cov = K_ee.clone()
    else:
        y = as_pm1(y_train, n_s, "y_train", K.device)
        t = y if targets == "pm1" else 0.5 * (y + 1.0)
        A = K[:n_s, :n_s].clone()
        A.diagonal().add_(noise_var)
        L, jit = _cholesky(A, jitter, noise_var)
        W = torch.linalg.solve_triangular(L, K[:n_s, n_s:], upper=False)
        a = torch.linalg.solve_triangular(L, t.unsqueeze(-1), upper=False).squeeze(-1)
        mu = W.T @ a
        cov = K_ee - W.T @ W
    if test_noise:
        cov.diagonal().add_(noise_var)
    cov = 0.5 * (cov + cov.T)
    if not (bool(torch.isfinite(mu).all()) and bool(torch.isfinite(cov).all())):
        raise FloatingPointError("the regression posterior on E has non-finite entries (kernel too ill-conditioned)")
    return LatentGaussian(mean=mu, cov=cov, kind="mse_regression", noise_var=noise_var, targets=targets,
                          test_noise=test_noise, jitter=jit, threshold=float(threshold))


def zero_one_posterior(K, y_train, *, likelihood: str = "step", jitter: str | float | None = "auto",
                       **ep_kwargs) -> LatentGaussian:
    """The posterior on E under the 0–1 likelihood on S: EP on S (step likelihood by default), then the EP
    predictive ``N(μ_E, Σ_E)`` (GPML Alg. 3.6 with the full covariance). ``K`` and ``y_train`` as for
    :func:`regression_posterior`; EP keywords go to :func:`sgdbayes.gp.ep` (``EPConvergenceError`` if EP on S does
    not converge)."""
    from sgdbayes.gp.log_pb import predictive

    K, n_s, n_e = _split_kernel(K, y_train)
    K, jit = regularise_kernel(K, jitter)
    if n_s == 0:
        return LatentGaussian(mean=torch.zeros(n_e, dtype=K.dtype, device=K.device), cov=K.clone(),
                              kind="zero_one", jitter=jit)
    y = as_pm1(y_train, n_s, "y_train", K.device)
    res: EPResult = ep(K[:n_s, :n_s], y, likelihood=likelihood, jitter=None, **ep_kwargs)
    mu, cov = predictive(K[:n_s, :n_s], K[:n_s, n_s:], K[n_s:, n_s:], res.tau, res.nu)
    return LatentGaussian(mean=mu, cov=cov, kind="zero_one", jitter=jit)
