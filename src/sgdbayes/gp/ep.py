"""Expectation Propagation for binary GP classification (Rasmussen & Williams, GPML §3.6, Alg. 3.5/3.6).

Model: ``f ~ N(m, K)``, ``p(y | f) = Π_i p(y_i | f_i)`` with the probit or the step likelihood
(:mod:`sgdbayes.gp.likelihoods`); EP replaces each likelihood factor by an unnormalised Gaussian site
``Z̃_i exp(−½ τ̃_i f_i² + ν̃_i f_i)`` and returns the sites and ``log Z_EP ≈ log p(y)``.

The posterior ``q(f) = N(μ, Σ)``, ``Σ = (K⁻¹ + S̃)⁻¹``, ``S̃ = diag τ̃``, is always recomputed from scratch through
``B = I + S̃^½ K S̃^½ = L Lᵀ``:  ``V = L⁻¹ S̃^½ K``, ``Σ = K − VᵀV``, ``μ = Σ ν̃`` (a prior mean is moved into the
likelihood as an offset, so EP runs on a zero-mean prior). With cavities ``τ₋ = 1/Σ_ii − τ̃_i``,
``ν₋ = μ_i/Σ_ii − ν̃_i`` (GPML eq. 3.56) the EP log marginal likelihood is (eq. 3.65, rearranged for τ̃_i = 0):

    log Z_EP = Σ log Ẑ_i + ½ Σ log(1 + τ̃_i/τ₋_i) − Σ log L_ii + ½ ν̃ᵀ μ
               + ½ Σ (τ̃_i ν₋_i²/τ₋_i − 2 ν₋_i ν̃_i − ν̃_i²) / (τ₋_i + τ̃_i).

Two schedules: ``"parallel"`` updates every site from the cavities of one posterior, then refactorises (one batched
Cholesky + one triangular solve per sweep, GEMM-class work); ``"sequential"`` is GPML Alg. 3.5 (rank-one updates of Σ
site by site, refactorised after each sweep). Both can be damped: a new site is ``ω·proposal + (1 − ω)·old`` in
natural parameters. EP stops when ``|Δ log Z_EP| ≤ tol`` between two consecutive sweeps and the sites have settled:
``max_i |Δτ̃_i|, |Δν̃_i| ≤ site_tol·(1 + |·|)``, where Δ is, for the parallel schedule, the fixed-point residual at the
returned sites (the undamped update proposed from their posterior, i.e. what one more sweep would change), and for
the sequential schedule the change over the last sweep. The residual test sees a converged state one
factorisation earlier than a test on the last step taken would (which needs the posterior after that step), and it
checks the returned sites themselves.

Cost of a parallel sweep (n × n, one labelling): the Cholesky of B (n³/3 flops) and the triangular solve
``V = L⁻¹ S̃^½K`` (n³); only the diagonal of Σ is formed (column norms of V, no ``VᵀV``), and μ comes from two
matrix-vector products. The right-hand side ``S̃^½K`` is built as the transpose of ``K S̃^½`` so that LAPACK gets it
in its column-major layout without an [n, n] copy. With ``jitter="auto"`` one more Cholesky (of K) checks definiteness.

``y`` may hold ``m`` labellings of the same inputs (``[m, n]``): they share ``K`` and run as one batch (batched
Cholesky ``[m, n, n]``, chunked to a memory budget); a labelling that has converged leaves the batch.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch

from sgdbayes.gp.likelihoods import likelihood_constant, site_update

SCHEDULES = ("parallel", "sequential")


class EPConvergenceError(RuntimeError):
    """EP did not reach its tolerance within ``max_sweeps``, or its numbers stopped being finite/valid."""


@dataclass
class EPResult:
    """The outcome of :func:`ep`. Batched fields have a leading ``[m]`` axis iff ``y`` was ``[m, n]``.

    log_z       EP approximation of ``log p(y)``, ``[]`` or ``[m]`` (nats)
    tau, nu     site precisions τ̃ and precision-times-means ν̃ (in the coordinates of f), ``[n]`` or ``[m, n]``
    mu, var     posterior mean and marginal variances of ``q(f)`` (including the prior mean), ``[n]`` or ``[m, n]``
    sweeps      sweeps done per labelling (``int`` or ``[m]`` int64)
    converged   per labelling (``bool`` or ``[m]`` bool)
    delta_log_z |Δ log Z_EP| of the last sweep, per labelling
    jitter      value added to K's diagonal (0.0 when none)
    """

    log_z: torch.Tensor
    tau: torch.Tensor
    nu: torch.Tensor
    mu: torch.Tensor
    var: torch.Tensor
    sweeps: torch.Tensor | int
    converged: torch.Tensor | bool
    delta_log_z: torch.Tensor
    jitter: float
    likelihood: str
    schedule: str
    tol: float
    site_tol: float
    info: dict = field(default_factory=dict)

    @property
    def all_converged(self) -> bool:
        return bool(torch.as_tensor(self.converged).all())


# ----------------------------------------------------------------------------------------------------------- checks
def _as_float64(x, name: str, device=None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x, dtype=torch.float64, device=device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a tensor or array of numbers, got {type(x).__name__}: {err}") from None
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be real-valued, got dtype {x.dtype}")
    x = x.to(dtype=torch.float64, device=device if device is not None else x.device)
    return x


def _square_blocks(n: int, T: int = 256):
    """Pairs of block slices ``(I, J)`` with I ≤ J covering the upper triangle of an [n, n] matrix."""
    return [(slice(i0, i0 + T), slice(j0, j0 + T)) for i0 in range(0, n, T) for j0 in range(i0, n, T)]


def check_kernel(K, name: str = "K") -> torch.Tensor:
    """``K`` as a symmetric float64 ``[n, n]`` tensor with finite entries and a positive diagonal; else ValueError.

    An exactly symmetric ``K`` is returned as it is (no copy); one asymmetric within the tolerance is replaced by
    ``(K + Kᵀ)/2``. Transposed reads go block by block (256 × 256): a full-matrix ``K − Kᵀ`` pass strides through
    memory and took ~1.2 s at n = 5000, the blocked one ~0.1 s.
    """
    K = _as_float64(K, name)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise ValueError(f"{name} must be a square [n, n] matrix with n >= 1, got shape {tuple(K.shape)}")
    lo, hi = (float(v) for v in torch.aminmax(K))   # one pass, no temporary; NaN/inf show up in lo or hi
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = (~torch.isfinite(K)).nonzero()[0].tolist()
        raise ValueError(f"{name} has non-finite entries (NaN or inf), first at index {bad}")
    scale = max(-lo, hi)
    blocks = _square_blocks(K.shape[0])
    asym = float(torch.stack([(K[I, J] - K[J, I].T).abs_().amax() for I, J in blocks]).max())
    if asym > 1e-8 * max(scale, 1e-300):
        raise ValueError(f"{name} must be symmetric; max |K - K^T| = {asym:.3g} (max |K| = {scale:.3g})")
    diag = torch.diagonal(K)
    if bool((diag <= 0).any()):
        i = int((diag <= 0).nonzero()[0])
        raise ValueError(f"{name} must have a positive diagonal (prior variances); {name}[{i},{i}] = {float(diag[i]):.3g}")
    if asym == 0.0:
        return K
    out = torch.empty_like(K)
    for I, J in blocks:
        blk = 0.5 * (K[I, J] + K[J, I].T)
        out[I, J] = blk
        out[J, I] = blk.T
    return out


def check_labels(y, n: int, device, name: str = "y") -> torch.Tensor:
    """``y`` as float64 ``[m, n]`` with entries in {−1, +1}; ``[n]`` becomes ``[1, n]``. Else ValueError."""
    y = _as_float64(y, name, device)
    if y.ndim not in (1, 2) or y.shape[-1] != n:
        raise ValueError(f"{name} must have shape [n] or [m, n] with n = {n} (the size of K), got {tuple(y.shape)}")
    if y.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(y.shape)})")
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"{name} contains NaN or inf; labels must be -1 or +1")
    bad = (y != 1) & (y != -1)
    if bool(bad.any()):
        idx = bad.nonzero()[0].tolist()
        raise ValueError(f"labels must be -1 or +1; {name}{idx} = {float(y[tuple(idx)])}")
    return y.reshape(-1, n)


def regularise_kernel(K: torch.Tensor, jitter: str | float | None = "auto", max_jitter: float = 1e-6,
                      name: str = "K") -> tuple[torch.Tensor, float]:
    """Make sure ``K`` is numerically positive definite.

    ``jitter="auto"``: try a Cholesky of ``K``; if it fails, add ``j · mean(diag K)`` to the diagonal for
    ``j = 1e-12, 1e-11, …, max_jitter`` until it succeeds (a warning states the value); beyond that, ValueError with
    the smallest eigenvalue. A number: add exactly that (absolute) jitter. ``None``/``0``: no jitter, no check.
    Returns ``(K', jitter_added)``.
    """
    if jitter is None or (not isinstance(jitter, str) and float(jitter) == 0.0):
        return K, 0.0
    n = K.shape[0]

    def plus_jitter(j: float) -> torch.Tensor:   # K + j·I without an [n, n] identity
        out = K.clone()
        out.diagonal().add_(j)
        return out

    if not isinstance(jitter, str):
        j = float(jitter)
        if not math.isfinite(j) or j < 0:
            raise ValueError(f"jitter must be 'auto', None or a finite number >= 0, got {jitter!r}")
        return plus_jitter(j), j
    if jitter != "auto":
        raise ValueError(f"jitter must be 'auto', None or a finite number >= 0, got {jitter!r}")
    if int(torch.linalg.cholesky_ex(K)[1]) == 0:
        return K, 0.0
    scale = float(torch.diagonal(K).mean())
    rel = 1e-12
    while rel <= max_jitter * (1 + 1e-9):
        j = rel * scale
        Kj = plus_jitter(j)
        if int(torch.linalg.cholesky_ex(Kj)[1]) == 0:
            warnings.warn(f"{name} is not numerically positive definite; added jitter {j:.3g} "
                          f"({rel:.0e} x mean diagonal) to its diagonal", RuntimeWarning, stacklevel=3)
            return Kj, j
        rel *= 10
    lam_min = float(torch.linalg.eigvalsh(K)[0])
    raise ValueError(f"{name} is not positive definite: smallest eigenvalue {lam_min:.3g} (mean diagonal "
                     f"{scale:.3g}); a jitter up to {max_jitter:.0e} x mean diagonal did not fix it")


# ------------------------------------------------------------------------------------------------------------- core
def _posterior(K: torch.Tensor, tau: torch.Tensor, nu: torch.Tensor, *, full: bool = False):
    """From sites ``[b, n]``: ``(var [b,n], mu [b,n], logdet_B/2 [b], Sigma [b,n,n] or None)`` for zero prior mean."""
    b, n = tau.shape
    if not bool(tau.any()):  # no site yet (a cold start): B = I, Σ = K — no factorisation needed
        mu = nu @ K
        zero = torch.zeros(b, dtype=K.dtype, device=K.device)
        var = torch.diagonal(K).expand(b, n).clone()
        return var, mu, zero, (K.expand(b, n, n).clone() if full else None)
    st = tau.sqrt()
    # S̃^½K as the transpose of K S̃^½ (K is exactly symmetric, see check_kernel): a column-major view, which is
    # the layout LAPACK wants for the right-hand side of the triangular solve, so no [n, n] copy is made there,
    # and V comes back column-major, where the column norms below are contiguous reductions
    sk = (K * st.unsqueeze(-2)).mT
    B = sk.mT * st.unsqueeze(-1)  # S̃^½ K S̃^½
    B.diagonal(dim1=-2, dim2=-1).add_(1.0)
    L, info = torch.linalg.cholesky_ex(B)
    del B
    if bool((info != 0).any()):
        raise EPConvergenceError("Cholesky of B = I + S^1/2 K S^1/2 failed (K not numerically PSD or sites "
                                 "overflowed); try jitter='auto' or a larger jitter")
    V = torch.linalg.solve_triangular(L, sk, upper=False)
    del sk
    half_logdet = torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(-1)
    del L
    mu = nu @ K - (V.transpose(-1, -2) @ (V @ nu.unsqueeze(-1))).squeeze(-1)
    if full:
        Sigma = K - V.transpose(-1, -2) @ V
        return torch.diagonal(Sigma, dim1=-2, dim2=-1).clone(), mu, half_logdet, Sigma
    var = torch.diagonal(K) - torch.linalg.vector_norm(V, dim=-2).square()  # Σ_ii = K_ii − ‖V[:, i]‖²
    return var, mu, half_logdet, None


def _log_z(tau, nu, tau_cav, nu_cav, log_zhat, mu, half_logdet):
    """GPML eq. 3.65 in natural parameters (see the module docstring), ``[b]``."""
    t = (tau * nu_cav.square() / tau_cav - 2.0 * nu_cav * nu - nu.square()) / (tau_cav + tau)
    return (log_zhat.sum(-1) + 0.5 * torch.log1p(tau / tau_cav).sum(-1) - half_logdet
            + 0.5 * (nu * mu).sum(-1) + 0.5 * t.sum(-1))


def _cavity(var, mu, tau, nu):
    return 1.0 / var - tau, mu / var - nu


def _check_state(where: str, var, tau_cav, *extra):
    ok = torch.isfinite(var).all(-1) & (var > 0).all(-1) & torch.isfinite(tau_cav).all(-1) & (tau_cav > 0).all(-1)
    for e in extra:
        ok &= torch.isfinite(e).all(-1)
    if not bool(ok.all()):
        raise EPConvergenceError(
            f"EP {where}: non-positive or non-finite posterior/cavity variances in {int((~ok).sum())} labelling(s) "
            "(numerical breakdown; try damping < 1, the sequential schedule, or jitter)")


def _site_change(tau, tau_ref, nu, nu_ref):
    """``max_i |τ̃_i − τ̃ref_i|/(1 + |τ̃_i|), |ν̃_i − ν̃ref_i|/(1 + |ν̃_i|)`` per labelling, ``[b]``."""
    return torch.maximum(((tau - tau_ref).abs() / (1 + tau.abs())).amax(-1),
                         ((nu - nu_ref).abs() / (1 + nu.abs())).amax(-1))


def _run_batch(K, y, offset, tau, nu, c, schedule, damping, tol, site_tol, max_sweeps, adaptive):
    """EP for one chunk ``[b, n]``; returns ``(log_z, tau, nu, mu, var, sweeps, converged, d_lz)``."""
    b, n = y.shape
    dev = y.device
    sweeps = torch.zeros(b, dtype=torch.int64, device=dev)
    converged = torch.zeros(b, dtype=torch.bool, device=dev)
    log_z = torch.full((b,), float("nan"), dtype=torch.float64, device=dev)
    d_lz = torch.full((b,), float("inf"), dtype=torch.float64, device=dev)
    mu_out = torch.zeros_like(y)
    var_out = torch.zeros_like(y)
    active = torch.arange(b, device=dev)
    # state of the active labellings
    t, v, yy, off = tau.clone(), nu.clone(), y, offset
    var, mu, hld, Sigma = _posterior(K, t, v, full=(schedule == "sequential"))
    lz_old = torch.full((b,), float("nan"), dtype=torch.float64, device=dev)
    t_old, v_old = t.clone(), v.clone()
    # adaptive damping (parallel): when the proposed site step grows, ω halves and its cap shrinks by 0.8 (cap ≥
    # damping/16, ω ≥ damping/32); otherwise ω grows back by 1.5x up to the cap
    omega = torch.full((b,), damping, dtype=torch.float64, device=dev)
    step_old = torch.full((b,), float("inf"), dtype=torch.float64, device=dev)
    cap = omega.clone()
    for sweep in range(max_sweeps + 1):
        tc, vc = _cavity(var, mu, t, v)
        _check_state(f"sweep {sweep}", var, tc, mu)
        lzh, t_new, v_new = site_update(tc, vc, yy, off, c)
        lz = _log_z(t, v, tc, vc, lzh, mu, hld)
        if not bool(torch.isfinite(lz).all()):
            raise EPConvergenceError(f"EP sweep {sweep}: log Z_EP is not finite (numerical breakdown)")
        # parallel: the site test is the fixed-point residual at the current sites (the undamped update proposed
        # from the current posterior), so a converged state is recognised without one more factorisation;
        # sequential: the change of the sites over the last sweep
        step = _site_change(t_new, t, v_new, v) if schedule == "parallel" else None
        if sweep > 0:
            dl = (lz - lz_old).abs()
            d_site = step if step is not None else _site_change(t, t_old, v, v_old)
            done = (dl <= tol) & (d_site <= site_tol)
        else:
            done = torch.zeros_like(lz, dtype=torch.bool)
            dl = torch.full_like(lz, float("inf"))
        last = sweep == max_sweeps
        finish = done | last
        if bool(finish.any()):
            idx = active[finish]
            log_z[idx], d_lz[idx], converged[idx], sweeps[idx] = lz[finish], dl[finish], done[finish], sweep
            tau[idx], nu[idx], mu_out[idx], var_out[idx] = t[finish], v[finish], mu[finish], var[finish]
            keep = ~finish
            if not bool(keep.any()):
                break
            active = active[keep]
            t, v, yy, tc, vc, lz = t[keep], v[keep], yy[keep], tc[keep], vc[keep], lz[keep]
            t_new, v_new, var, mu = t_new[keep], v_new[keep], var[keep], mu[keep]
            omega, step_old, cap = omega[keep], step_old[keep], cap[keep]
            off = off[keep]
            if step is not None:
                step = step[keep]
            if Sigma is not None:
                Sigma = Sigma[keep]
        lz_old, t_old, v_old = lz, t, v
        if schedule == "parallel":
            if adaptive:
                grew = step > step_old
                cap = torch.where(grew, (cap * 0.8).clamp(min=damping / 16), cap)
                omega = torch.where(grew, (omega * 0.5).clamp(min=damping / 32), torch.minimum(omega * 1.5, cap))
            step_old = step
            w = omega.unsqueeze(-1)
            t = w * t_new + (1 - w) * t
            v = w * v_new + (1 - w) * v
            var, mu, hld, _ = _posterior(K, t, v)
        else:
            t, v = t.clone(), v.clone()
            for i in range(n):
                s_i = Sigma[:, :, i]  # [b, n]
                var_i = s_i[:, i]
                tci = 1.0 / var_i - t[:, i]
                vci = mu[:, i] / var_i - v[:, i]
                _, tpi, vpi = site_update(tci, vci, yy[:, i], off[:, i], c)
                ti = damping * tpi + (1 - damping) * t[:, i]
                vi = damping * vpi + (1 - damping) * v[:, i]
                dt = ti - t[:, i]
                dv = vi - v[:, i]
                t[:, i], v[:, i] = ti, vi
                a = dt / (1.0 + dt * var_i)  # Sherman–Morrison: Σ ← Σ − a s sᵀ
                s_i = s_i.clone()
                Sigma -= a[:, None, None] * s_i.unsqueeze(-1) * s_i.unsqueeze(-2)
                # μ = Σ ν̃ with the new Σ and ν̃, in O(n): μ + Δν s − a s (sᵀ ν̃_new)
                mu = mu + s_i * (dv - a * (s_i * v).sum(-1)).unsqueeze(-1)
            if not bool(torch.isfinite(t).all() & torch.isfinite(v).all()):
                raise EPConvergenceError(f"EP sweep {sweep + 1}: non-finite site parameters (numerical breakdown)")
            var, mu, hld, Sigma = _posterior(K, t, v, full=True)
    return log_z, tau, nu, mu_out, var_out, sweeps, converged, d_lz


def ep(
    K,
    y,
    *,
    likelihood: str = "probit",
    mean=None,
    schedule: str = "parallel",
    damping: float | None = None,
    adaptive_damping: bool = True,
    tol: float = 1e-6,
    site_tol: float = 1e-4,
    max_sweeps: int = 200,
    init=None,
    jitter: str | float | None = "auto",
    max_jitter: float = 1e-6,
    raise_on_nonconvergence: bool = True,
    max_batch_bytes: int = 2**30,
) -> EPResult:
    """EP approximation of the marginal likelihood ``log p(y) = log ∫ N(f; mean, K) Π_i p(y_i | f_i) df``.

    K          ``[n, n]`` prior covariance (float64; symmetric, PD up to the jitter policy)
    y          labels in {−1, +1}, ``[n]`` or ``[m, n]`` (m labellings of the same inputs, run as one batch)
    likelihood ``"probit"`` (``Φ(y f)``) or ``"step"`` (``1[y f > 0]``)
    mean       prior mean, scalar, ``[n]`` or ``[m, n]`` (default 0)
    schedule   ``"parallel"`` (default; all sites from one posterior, then one batched Cholesky) or
               ``"sequential"`` (GPML Alg. 3.5)
    damping    weight ω ∈ (0, 1] of the new site; default 1 sequential, 0.8 parallel
    tol        stop when ``|Δ log Z_EP| ≤ tol`` between sweeps and ...
    site_tol   ... ``max_i |Δτ̃_i|/(1+|τ̃_i|), |Δν̃_i|/(1+|ν̃_i|) ≤ site_tol``; parallel: Δ = the update one more sweep
               would make (fixed-point residual), sequential: the change over the last sweep
    max_sweeps sweeps before giving up: ``EPConvergenceError``, or (``raise_on_nonconvergence=False``) a result with
               ``converged`` False and the last iterate
    init       warm start: an :class:`EPResult` or a pair ``(tau, nu)`` broadcastable to ``[m, n]``
    jitter     ``"auto"`` (default: added only if K's Cholesky fails, stated in a warning and ``result.jitter``),
               a number (always added), or ``None`` (never; no check)
    max_batch_bytes  labellings are processed in chunks whose ``[b, n, n]`` work arrays fit this budget

    Returns an :class:`EPResult`; ``log_z`` has shape ``[]`` for ``y [n]`` and ``[m]`` for ``y [m, n]``.
    """
    c = likelihood_constant(likelihood)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if damping is None:
        damping = 1.0
    if not (isinstance(damping, (int, float)) and 0.0 < float(damping) <= 1.0):
        raise ValueError(f"damping must be a number in (0, 1], got {damping!r}")
    for nm, val in (("tol", tol), ("site_tol", site_tol)):
        if not (isinstance(val, (int, float)) and val > 0 and math.isfinite(val)):
            raise ValueError(f"{nm} must be a finite number > 0, got {val!r}")
    if not (isinstance(max_sweeps, int) and max_sweeps >= 1):
        raise ValueError(f"max_sweeps must be an int >= 1, got {max_sweeps!r}")
    K = check_kernel(K)
    n = K.shape[0]
    single = torch.as_tensor(y).ndim == 1 if not isinstance(y, torch.Tensor) else y.ndim == 1
    y = check_labels(y, n, K.device)
    m = y.shape[0]
    offset = torch.zeros((), dtype=torch.float64, device=K.device) if mean is None else _as_float64(
        mean, "mean", K.device)
    if not bool(torch.isfinite(offset).all()):
        raise ValueError("mean contains NaN or inf")
    try:
        if offset.ndim > 2:
            raise RuntimeError
        offset = offset.expand(m, n).contiguous()
    except RuntimeError:
        raise ValueError(f"mean must be a scalar, [n] or [m, n] with m = {m}, n = {n}; got shape "
                         f"{tuple(offset.shape)}") from None

    if init is None:
        tau0 = torch.zeros(m, n, dtype=torch.float64, device=K.device)
        nu0 = torch.zeros_like(tau0)
    else:
        if isinstance(init, EPResult):
            init = (init.tau, init.nu)
        try:
            tau0, nu0 = init
        except (TypeError, ValueError):
            raise TypeError("init must be an EPResult or a pair (tau, nu)") from None
        tau0 = _as_float64(tau0, "init tau", K.device)
        nu0 = _as_float64(nu0, "init nu", K.device)
        try:
            tau0 = tau0.expand(m, n).clone()
            nu0 = nu0.expand(m, n).clone()
        except RuntimeError:
            raise ValueError(f"init sites must broadcast to [m, n] = [{m}, {n}], got {tuple(tau0.shape)} and "
                             f"{tuple(nu0.shape)}") from None
        if not bool(torch.isfinite(tau0).all() & torch.isfinite(nu0).all() & (tau0 >= 0).all()):
            raise ValueError("init sites must be finite with tau >= 0")
        nu0 = nu0 - tau0 * offset  # to the coordinates g = f − mean

    K, jit = regularise_kernel(K, jitter, max_jitter)

    per = 3 * 8 * n * n
    chunk = max(1, min(m, int(max_batch_bytes // per)))
    outs = []
    for s in range(0, m, chunk):
        sl = slice(s, s + chunk)
        outs.append(_run_batch(K, y[sl], offset[sl], tau0[sl], nu0[sl], c, schedule, float(damping),
                               float(tol), float(site_tol), int(max_sweeps), bool(adaptive_damping)))
    log_z, tau, nu, mu, var, sweeps, conv, d_lz = (torch.cat(parts) for parts in zip(*outs))
    mu = mu + offset
    nu = nu + tau * offset  # sites back in the coordinates of f (EP ran on g = f − mean)
    if raise_on_nonconvergence and not bool(conv.all()):
        bad = (~conv).nonzero().flatten().tolist()
        raise EPConvergenceError(
            f"EP ({schedule}, {likelihood}, damping {damping}) did not converge in {max_sweeps} sweeps for "
            f"{len(bad)} of {m} labelling(s) (first: {bad[:5]}); last |Δ log Z| = {float(d_lz[bad[0]]):.3g} "
            f"(tol {tol:g}), jitter {jit:.3g}. Try more sweeps, damping < 1 or the sequential schedule")
    if single:
        log_z, tau, nu, mu, var, d_lz = log_z[0], tau[0], nu[0], mu[0], var[0], d_lz[0]
        sweeps, conv = int(sweeps[0]), bool(conv[0])
    return EPResult(log_z=log_z, tau=tau, nu=nu, mu=mu, var=var, sweeps=sweeps, converged=conv, delta_log_z=d_lz,
                    jitter=jit, likelihood=likelihood, schedule=schedule, tol=tol, site_tol=site_tol,
                    info={"damping": float(damping), "max_sweeps": max_sweeps, "chunk": chunk})
