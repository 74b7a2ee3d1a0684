"""``log P_B(f | S)``: the GP posterior probability that the test inputs E get the labelling f, given the train set S.

With a 0–1 (step) likelihood, ``P_B(f | S) = P(S ∪ (E, f)) / P(S)`` (Mingard et al. 2020, eq. 3), a ratio of two
marginal likelihoods of a GP classifier with the network's NNGP kernel. Two EP approximations:

``method="full"``      ``log Z_EP(S ∪ (E, f)) − log Z_EP(S)``: one EP on S, then batched EP on S ∪ E for every
                       distinct f, warm-started from S's sites (and from the two-stage sites of E), so it needs a few
                       sweeps, but each sweep costs ``O((|S|+|E|)³)`` per labelling.
``method="two_stage"`` S's sites frozen at their EP values: q(f_E | S) = N(μ_E, Σ_E) is the EP predictive of S
                       (GPML eqs. 3.60–3.61, computed once and shared by all f), and ``log P_B(f | S)`` is the EP
                       log Z of ``Π_{j∈E} p(f_j | f_E,j)`` under that Gaussian: ``O(|E|³)`` per labelling.
                       It is the full ratio with S's sites not re-adjusted to E (exact for the two Gaussians,
                       an approximation of the same EP otherwise; the two agree closely when |E| ≪ |S|).
``method="mse_regression"`` the posterior matching a network trained with MSE, as Mingard et al. computed it: the
                       exact GP regression posterior on S with Gaussian noise variance ``noise_var`` (default 0.002)
                       gives ``N(μ_E, Σ_E)`` on E, then ``log P_B(f | S)`` is the orthant probability of f under it
                       by EP with the step likelihood on E alone: ``O(|S|³)`` once, ``O(|E|³)`` per labelling. See
                       :mod:`sgdbayes.gp.posterior` for the equations and the ``targets`` / ``test_noise`` choices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sgdbayes.gp.ep import EPResult, check_kernel, check_labels, ep, regularise_kernel

METHODS = ("two_stage", "full", "mse_regression")


@dataclass
class LogPBResult:
    """``log_pb [m]`` (nats) with the EP runs behind it: ``ep_train`` on S, ``ep_test`` (two-stage EP on E, one row
    per distinct f), ``ep_full`` (S ∪ E, method ``"full"`` only); ``inverse[k]`` = row of the distinct-f runs used
    by ``f_test[k]``; ``mu_test, cov_test`` = the EP predictive of S on E; ``jitter`` added to K."""

    log_pb: torch.Tensor
    log_z_train: torch.Tensor
    method: str
    ep_train: EPResult | None
    ep_test: EPResult
    ep_full: EPResult | None
    inverse: torch.Tensor
    mu_test: torch.Tensor
    cov_test: torch.Tensor
    jitter: float


def predictive(K_ss: torch.Tensor, K_se: torch.Tensor, K_ee: torch.Tensor, tau: torch.Tensor, nu: torch.Tensor):
    """EP predictive ``N(μ_E, Σ_E)`` of the latents on E given S's sites (GPML Alg. 3.6, full covariance).

    ``B = I + S̃^½ K_SS S̃^½ = L Lᵀ``, ``W = L⁻¹ S̃^½ K_SE``: ``Σ_E = K_EE − WᵀW``,
    ``μ_E = K_ES ν̃ − Wᵀ L⁻¹ S̃^½ K_SS ν̃``. Shapes: ``[n_S, n_S], [n_S, n_E], [n_E, n_E], [n_S], [n_S]``.
    """
    st = tau.sqrt()
    B = st[:, None] * K_ss * st[None, :]
    B.diagonal().add_(1.0)
    L = torch.linalg.cholesky(B)
    W = torch.linalg.solve_triangular(L, st[:, None] * K_se, upper=False)
    a = torch.linalg.solve_triangular(L, (st * (K_ss @ nu)).unsqueeze(-1), upper=False).squeeze(-1)
    mu = K_se.T @ nu - W.T @ a
    cov = K_ee - W.T @ W
    return mu, 0.5 * (cov + cov.T)


def log_pb(
    K,
    y_train,
    f_test,
    *,
    method: str = "two_stage",
    likelihood: str = "step",
    jitter: str | float | None = "auto",
    return_result: bool = False,
    noise_var: float | None = None,
    targets: str | None = None,
    test_noise: bool | None = None,
    threshold: float | None = None,
    **ep_kwargs,
):
    """``log P_B(f | S)`` for each row of ``f_test``.

    K         ``[n_S + n_E, n_S + n_E]`` kernel over the train inputs, then the test inputs (float64)
    y_train   ``[n_S]`` train labels in {−1, +1} (``n_S = 0`` allowed: then the prior probability of f)
    f_test    ``[m, n_E]`` (or ``[n_E]``) test labellings in {−1, +1}; repeated rows are computed once
    method    ``"two_stage"`` (default, cheap), ``"full"`` or ``"mse_regression"`` (see the module docstring)
    likelihood ``"step"`` (default: the 0–1 likelihood of P_B) or ``"probit"``; ``"mse_regression"`` uses the step
              likelihood on E only (the label is the sign of the latent) and accepts nothing else
    noise_var, targets, test_noise, threshold  ``"mse_regression"`` only (defaults 0.002, ``"pm1"``, True, 0.0): see
              :func:`sgdbayes.gp.posterior.regression_posterior`
    jitter    policy for K (see :func:`sgdbayes.gp.ep.regularise_kernel`); the value used is in the result
    ep_kwargs passed to :func:`sgdbayes.gp.ep` (schedule, damping, tol, site_tol, max_sweeps, max_batch_bytes)

    Returns a float64 tensor ``[m]`` (``[]`` for 1-D ``f_test``) of natural logs, or a :class:`LogPBResult` when
    ``return_result``. Raises ``EPConvergenceError`` when any EP run does not converge.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "mse_regression":
        return _log_pb_regression(K, y_train, f_test, likelihood=likelihood, jitter=jitter,
                                  return_result=return_result, noise_var=noise_var, targets=targets,
                                  test_noise=test_noise, threshold=threshold, **ep_kwargs)
    given = [k for k, v in (("noise_var", noise_var), ("targets", targets), ("test_noise", test_noise),
                            ("threshold", threshold)) if v is not None]
    if given:
        raise ValueError(f"{', '.join(given)} apply only to method='mse_regression', not method={method!r}")
    for bad in ("mean", "init", "jitter", "likelihood", "raise_on_nonconvergence"):
        if bad in ep_kwargs:
            raise TypeError(f"log_pb does not accept {bad!r} as an EP keyword")
    K = check_kernel(K)
    N = K.shape[0]
    y_train = torch.as_tensor(y_train) if not isinstance(y_train, torch.Tensor) else y_train
    if y_train.ndim != 1:
        raise ValueError(f"y_train must be 1-D [n_S], got shape {tuple(y_train.shape)}")
    n_s = y_train.shape[0]
    n_e = N - n_s
    if n_e < 1:
        raise ValueError(f"K is [{N}, {N}] but y_train has {n_s} labels: K must cover n_S train inputs and at least "
                         "one test input (train first, then test)")
    ys = check_labels(y_train, n_s, K.device, "y_train")[0] if n_s > 0 else y_train.to(K.device, torch.float64)
    f_t = torch.as_tensor(f_test) if not isinstance(f_test, torch.Tensor) else f_test
    single = f_t.ndim == 1
    f = check_labels(f_t, n_e, K.device, "f_test")

    K, jit = regularise_kernel(K, jitter, name="K")
    uniq, inverse = torch.unique(f, dim=0, return_inverse=True)

    K_ss, K_se, K_ee = K[:n_s, :n_s], K[:n_s, n_s:], K[n_s:, n_s:]
    if n_s > 0:
        ep_s = ep(K_ss, ys, likelihood=likelihood, jitter=None, **ep_kwargs)
        mu_e, cov_e = predictive(K_ss, K_se, K_ee, ep_s.tau, ep_s.nu)
        log_z_s = ep_s.log_z
    else:
        ep_s = None
        mu_e, cov_e = torch.zeros(n_e, dtype=K.dtype, device=K.device), K_ee
        log_z_s = torch.zeros((), dtype=K.dtype, device=K.device)
    # Σ_E may lose definiteness numerically when test points nearly repeat train points: same jitter policy.
    ep_e = ep(cov_e, uniq, likelihood=likelihood, mean=mu_e, jitter="auto" if jitter is not None else None,
              **ep_kwargs)
    ep_full = None
    if method == "two_stage" or n_s == 0:
        out = ep_e.log_z
    else:
        u = uniq.shape[0]
        y_full = torch.cat([ys.expand(u, n_s), uniq], dim=1)
        tau0 = torch.cat([ep_s.tau.expand(u, n_s), ep_e.tau], dim=1)
        nu0 = torch.cat([ep_s.nu.expand(u, n_s), ep_e.nu], dim=1)
        ep_full = ep(K, y_full, likelihood=likelihood, init=(tau0, nu0), jitter=None, **ep_kwargs)
        out = ep_full.log_z - log_z_s
    out = out[inverse]
    if single:
        out = out[0]
    if not return_result:
        return out
    return LogPBResult(log_pb=out, log_z_train=log_z_s, method=method, ep_train=ep_s, ep_test=ep_e,
                       ep_full=ep_full, inverse=inverse, mu_test=mu_e, cov_test=cov_e, jitter=jit)


def _log_pb_regression(K, y_train, f_test, *, likelihood, jitter, return_result, noise_var, targets, test_noise,
                       threshold, **ep_kwargs):
    """``method="mse_regression"`` of :func:`log_pb`: :func:`regression_posterior`, then :func:`log_orthant`."""
    from sgdbayes.gp.posterior import AUTHORS_NOISE_VAR, log_orthant, regression_posterior

    if likelihood != "step":
        raise ValueError(f"method='mse_regression' labels E by the sign of the latent (step likelihood); "
                         f"likelihood={likelihood!r} is not allowed")
    for bad in ("mean", "init", "raise_on_nonconvergence"):
        if bad in ep_kwargs:
            raise TypeError(f"log_pb does not accept {bad!r} as an EP keyword")
    post = regression_posterior(K, y_train, noise_var=AUTHORS_NOISE_VAR if noise_var is None else noise_var,
                                targets="pm1" if targets is None else targets,
                                test_noise=True if test_noise is None else test_noise,
                                threshold=0.0 if threshold is None else threshold, jitter=jitter)
    # the shapes of f_test are checked against the posterior's n_E by log_orthant
    out, ep_e, inverse = log_orthant(post.mean - post.threshold, post.cov, f_test, jitter="auto" if jitter is not None else None,
                                     return_result=True, **ep_kwargs)
    if not return_result:
        return out
    return LogPBResult(log_pb=out, log_z_train=torch.zeros((), dtype=torch.float64, device=out.device),
                       method="mse_regression", ep_train=None, ep_test=ep_e, ep_full=None, inverse=inverse,
                       mu_test=post.mean, cov_test=post.cov, jitter=post.jitter)
