"""One mode of a finite network's posterior, seen as Mandt, Hoffman & Blei (2017) see it, and constant SGD run there.

Objective (Mandt et al.'s §3, in the raw parameters θ that SGD updates): ``L(θ) = (1/N) Σ_n ℓ_n(θ)`` with
``ℓ_n = softplus(−s_n z_n(θ)/τ) + (1/N)·½ θᵀΛθ`` — the negative log of the logistic likelihood of temperature τ plus
``1/N`` of the negative log prior ``N(0, Λ⁻¹)`` (the initialisation distribution), so the posterior is
``∝ exp(−N L(θ))``, the one :class:`sgdbayes.mcmc.FCNPosterior` samples. With whitened ``u`` (``θ = σ ⊙ u``, σ the
prior standard deviations) ``N·L = U_τ(u)`` of that class.

At a mode θ* (:func:`find_mode`: L-BFGS then Newton steps, float64) :func:`local_picture` computes

- ``A = ∇²L(θ*)`` exactly (``torch.func.hessian``), its spectrum, and the stability limit ``2/λ_max(A)`` of
  constant SGD;
- ``C = Cov_n ∇ℓ_n(θ*) = (1/N) Σ_n (g_n − ḡ)(g_n − ḡ)ᵀ`` from the N per-example gradients, and its nonzero spectrum
  and rank through the layer-wise per-example Gram of :mod:`sgdbayes.noise` (the chapter-2 machinery; the two
  routes are compared); rank(C) ≤ N − 1, far below the number of parameters D;
- Mandt's ε* = 2SD/(N tr C) (his Eq. 15, by :func:`sgdbayes.ou.theory.optimal_learning_rate`) and the diagonal
  preconditioner ``H*_kk = 2S/(N C_kk)`` (infinite where ``C_kk = 0``: parameters no example's gradient touches,
  e.g. those of a ReLU unit dead on all of S); and ``ε*_r = 2Sr/(N tr C)``, the same optimum computed in the
  r-dimensional range of C alone.

:func:`constant_sgd_chains` runs many chains of ``θ ← θ − ε ĝ_S(θ)`` (minibatches of S examples drawn with
replacement, as the theory's noise model ``C/S`` assumes) from θ*, in float64, and records the deviations
projected on given directions, the labelling of E, Polyak averages and IASG window means.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sgdbayes.mcmc.network import FCNPosterior
from sgdbayes.seed import make_generator

__all__ = ["ConstantSGDRun", "LocalPicture", "constant_sgd_chains", "find_mode", "local_picture", "to_module"]


def _unit_coordinates(post: FCNPosterior) -> list[list[np.ndarray]]:
    """For each hidden layer, for each unit: the indices (in the flat layout) of its incoming weights, its bias and
    its outgoing weights."""
    offsets, off = [], 0
    for a, b in post.layers:
        offsets.append((off, off + a * b))  # weights [a, b] row-major, then biases [b]
        off += a * b + b
    out = []
    for k in range(len(post.layers) - 1):
        a, b = post.layers[k]
        w0, b0 = offsets[k]
        nw0 = offsets[k + 1][0]
        b_next = post.layers[k + 1][1]
        units = []
        for j in range(b):
            incoming = w0 + np.arange(a) * b + j
            outgoing = nw0 + j * b_next + np.arange(b_next)
            units.append(np.concatenate([incoming, [b0 + j], outgoing]))
        out.append(units)
    return out


def switch_off_idle_units(post: FCNPosterior, u: Tensor, *, tol: float = 1e-3) -> tuple[Tensor, int]:
    """Set to exactly zero the parameters of every hidden unit that is (numerically) off: its pre-activation is
    below ``tol`` on every training input and its incoming and outgoing weights are below ``tol`` (whitened). Such
    a unit sits on a kink of the ReLU where the loss is not twice differentiable; at exactly zero it is dead in
    torch's convention (ReLU′(0) = 0), SGD leaves it there, and the Hessian sees only the prior. Returns
    ``(u, units switched off)``."""
    u = u.clone()
    _, acts, parts = post._forward(u.unsqueeze(0), post.x_train)
    n_off = 0
    for k, units in enumerate(_unit_coordinates(post)):
        (w, b), alpha = parts[k], post.scales[k]
        pre = torch.baddbmm(b.unsqueeze(1), acts[k], w, beta=post.sigma_b, alpha=alpha)[0]  # [n, units]
        for j, idx in enumerate(units):
            t = torch.as_tensor(idx, device=u.device)
            if float(pre[:, j].max()) < tol and float(u[t].abs().max()) < tol:
                u[t] = 0.0
                n_off += 1
    return u, n_off


def find_mode(posterior: FCNPosterior, u0: Tensor, tau: float, *, max_iter: int = 2000, grad_tol: float = 1e-10,
              unit_tol: float = 1e-3) -> tuple[Tensor, dict]:
    """A (local) minimiser of ``U_τ`` — hence of L — near the whitened network ``u0 [P]``, in float64: L-BFGS with a
    strong-Wolfe line search for at most ``max_iter`` iterations, then every hidden unit the prior has switched off
    is set exactly to zero (:func:`switch_off_idle_units`). A ReLU network's loss is only piecewise smooth: its
    minimisers sit on kinks (pre-activations at exactly zero on some inputs), where the gradient jumps and no
    Newton step converges, so the result is a numerical minimiser; ``info`` reports how far from stationary it is
    (``grad_norm`` of U in u), ``U``, the L-BFGS ``iterations`` and ``units_off``."""
    post = posterior.astype(torch.float64)
    x = u0.detach().to(post.device, torch.float64).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=max_iter, tolerance_grad=grad_tol, tolerance_change=1e-15,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        U, g, _ = post.potential_and_grad(x.detach().unsqueeze(0), tau)
        x.grad = g[0].clone()
        return U[0]

    opt.step(closure)
    u, n_off = switch_off_idle_units(post, x.detach(), tol=unit_tol)
    U, g, _ = post.potential_and_grad(u.unsqueeze(0), tau)
    return u, {"grad_norm": float(g.norm()), "U": float(U[0]), "units_off": n_off,
               "iterations": int(opt.state[opt._params[0]].get("n_iter", 0))}


def to_module(posterior: FCNPosterior, u: Tensor) -> nn.Sequential:
    """The network ``u [P]`` as a ``torch.nn`` module (``Linear``/``ReLU``, float64) in the raw parameters θ."""
    params = posterior.astype(torch.float64).raw_parameters(u.detach().double().unsqueeze(0))
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(posterior.layers):
        if k:
            layers.append(nn.ReLU())
        lin = nn.Linear(a, b, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(params[2 * k][0])
            lin.bias.copy_(params[2 * k + 1][0])
        layers.append(lin)
    return nn.Sequential(*layers).to(posterior.device)


@dataclass
class LocalPicture:
    """Mandt's quantities at one mode (raw coordinates θ; D parameters; N = |S|; minibatch S).

    ``u_mode [D]`` (whitened), ``theta_mode [D]``, ``scale [D]`` (θ = scale·u); ``A_eigvals [D]`` ascending and
    ``A_eigvecs [D, D]`` of the generalised Gauss–Newton Hessian of L (positive definite; the A of the theory);
    ``hessian_eigvals [D]``: the exact Hessian's, ascending (negative ones mark ReLU kinks and saddle directions);
    ``C [D, D]``; ``C_spectrum [N]`` (nonzero spectrum of C from the
    layer-wise Gram, descending) and ``C_rank`` (Chaudhari & Soatto's threshold λ_max·D·ε_float32); ``U_range
    [D, r]`` orthonormal basis of the range of C (from the per-example gradients); ``gram_rel_err``: largest
    difference between the layer-wise Gram and the one of the explicit per-example gradients, relative to its
    largest entry; ``eps_star`` (Mandt's Eq. 15), ``eps_star_range`` (ε* in the range of C), ``stability_limit``
    (2/λ_max(A)); ``H_diag [D]`` (diagonal H*, inf where C_kk = 0) and ``n_dead`` (those coordinates);
    ``mode_info`` (from :func:`find_mode`); ``n_train_errors`` of the mode by sign; ``mode_labels`` on E (if given).
    """

    u_mode: np.ndarray
    theta_mode: np.ndarray
    scale: np.ndarray
    tau: float
    N: int
    S: int
    A_eigvals: np.ndarray
    A_eigvecs: np.ndarray
    hessian_eigvals: np.ndarray
    C: np.ndarray
    C_spectrum: np.ndarray
    C_rank: int
    U_range: np.ndarray
    gram_rel_err: float
    eps_star: float
    eps_star_range: float
    stability_limit: float
    H_diag: np.ndarray
    n_dead: int
    mode_info: dict
    n_train_errors: int
    mode_labels: np.ndarray

    @property
    def D(self) -> int:
        return int(self.u_mode.shape[0])

    def laplace_covariance(self) -> np.ndarray:
        """The Laplace approximation of the posterior, ``(N A)⁻¹`` (needs A positive definite)."""
        lam, V = self.A_eigvals, self.A_eigvecs
        if lam.min() <= 0:
            raise ValueError(f"A is not positive definite (smallest eigenvalue {lam.min():.3g}); no Laplace posterior")
        return (V / (self.N * lam)) @ V.T


def local_picture(posterior: FCNPosterior, u_mode: Tensor, tau: float, *, S: int, x_test=None,
                  mode_info: dict | None = None) -> LocalPicture:
    """Compute the :class:`LocalPicture` of ``posterior`` at the mode ``u_mode [D]`` (see the module docstring)."""
    from sgdbayes.noise import per_sample_gram, spectrum_from_gram
    from sgdbayes.ou.theory import optimal_learning_rate

    post = posterior.astype(torch.float64)
    u = u_mode.detach().to(post.device, torch.float64)
    N, D = post.n_train, post.n_params
    if isinstance(S, bool) or not isinstance(S, (int, np.integer)) or not 1 <= S <= N:
        raise ValueError(f"S (minibatch size) must be an int in [1, N = {N}], got {S!r}")
    scale = post.scale_vector
    # exact Hessian of L = U/N in θ, (1/N) diag(1/σ) ∇²_u U diag(1/σ): a diagnostic (ReLU kinks make it indefinite)
    Hu = torch.func.hessian(lambda v: post.potential_single(v, tau))(u)
    H_exact = (Hu / N) / scale[:, None] / scale[None, :]
    hess_eig = torch.linalg.eigvalsh(0.5 * (H_exact + H_exact.T))
    # generalised Gauss–Newton Hessian (the curvature used by the theory and the Laplace posterior): positive
    # definite, (1/N)[Σ_n ℓ''(z_n) ∇z_n ∇z_nᵀ + prior precision], ℓ'' = σ(m)(1 − σ(m))/τ², m = −s z/τ
    Jz = post.per_example_logit_grads(u) / scale
    with torch.no_grad():
        m = -post.s_train * post.logits(u.unsqueeze(0))[0] / tau
    curv = torch.sigmoid(m) * torch.sigmoid(-m) / tau**2
    A = (Jz.T @ (curv[:, None] * Jz) + torch.diag(post.prior_hessian_diag() / scale**2)) / N
    A = 0.5 * (A + A.T)
    lam, V = torch.linalg.eigh(A)
    # per-example gradients of the likelihood terms in θ (the prior term is the same for every n and cancels in C)
    J = post.per_example_grads(u, tau) / scale
    Jc = J - J.mean(0)
    C = Jc.T @ Jc / N
    # the layer-wise Gram of the same gradients (chapter 2's route), its spectrum and rank
    module = to_module(posterior, u)
    s = post.s_train

    def loss_fn(out, y):
        return F.softplus(-y * out.squeeze(-1) / tau)

    gram = per_sample_gram(module, loss_fn, post.x_train, s)
    spec = spectrum_from_gram(gram)
    G_direct = J @ J.T
    gram_err = float((gram.gram - G_direct).abs().max() / G_direct.abs().max())
    # basis of the range of C: left singular vectors of Jcᵀ above the rank threshold
    Ux, sv, _ = torch.linalg.svd(Jc.T, full_matrices=False)
    r = spec.rank
    U_range = Ux[:, :r]
    C_np = C.cpu().numpy()
    eps_star = optimal_learning_rate(C_np, N=N, S=int(S))
    trC = float(np.trace(C_np))
    diagC = np.diag(C_np)
    dead = diagC <= 1e-12 * diagC.max()
    H = np.full(D, np.inf)
    H[~dead] = 2.0 * S / (N * diagC[~dead])
    with torch.no_grad():
        n_err = int(post.n_train_errors(u.unsqueeze(0))[0])
        labels = (post.labels(u.unsqueeze(0), x_test)[0].cpu().numpy() if x_test is not None
                  else np.zeros(0, dtype=bool))
    return LocalPicture(
        u_mode=u.cpu().numpy(), theta_mode=(scale * u).cpu().numpy(), scale=scale.cpu().numpy(), tau=float(tau),
        N=N, S=int(S), A_eigvals=lam.cpu().numpy(), A_eigvecs=V.cpu().numpy(), C=C_np,
        hessian_eigvals=hess_eig.cpu().numpy(), C_spectrum=spec.eigenvalues, C_rank=int(r),
        U_range=U_range.cpu().numpy(), gram_rel_err=gram_err,
        eps_star=float(eps_star), eps_star_range=2.0 * S * r / (N * trC),
        stability_limit=float(2.0 / lam.max()), H_diag=H, n_dead=int(dead.sum()), mode_info=dict(mode_info or {}),
        n_train_errors=n_err, mode_labels=labels)


@dataclass
class ConstantSGDRun:
    """Constant-SGD chains from one mode. ``[C, T]`` over chains and recorded steps: ``proj [C, T, k]`` (θ − θ*
    on the k given directions), ``sq_dev`` (‖θ − θ*‖²); ``mean_dev [D]``: θ − θ* averaged over the recorded states of
    the chains that did not diverge; ``test_bits [C, T, ⌈|E|/8⌉]`` (packed labellings of E),
    ``fits`` (fits S by sign); per chain: ``polyak_labels [C, |E|]`` (labelling by the average of its recorded-phase
    iterates), ``polyak_dev [C, k]``; ``iasg_bits [C, W, ⌈|E|/8⌉]`` (labelling by each window mean of
    ``window`` iterates); ``diverged [C]`` (non-finite or ‖θ − θ*‖ beyond ``max_dev``; such chains stop and are
    excluded from every statistic); ``eps``, ``S``, ``steps``, ``burn_in``, ``thin``, ``seconds``."""

    proj: np.ndarray
    sq_dev: np.ndarray
    mean_dev: np.ndarray
    test_bits: np.ndarray
    fits: np.ndarray
    polyak_labels: np.ndarray
    polyak_dev: np.ndarray
    iasg_bits: np.ndarray
    diverged: np.ndarray
    eps: float
    S: int
    steps: int
    burn_in: int
    thin: int
    window: int
    seconds: float

    @property
    def n_chains(self) -> int:
        return int(self.diverged.shape[0])


def constant_sgd_chains(posterior: FCNPosterior, u_mode, tau: float, *, eps: float, S: int, n_chains: int,
                        n_steps: int, burn_in: int, thin: int = 10, directions=None, x_test=None,
                        window: int | None = None, max_dev: float = 1e3, seed: int = 0) -> ConstantSGDRun:
    """Run ``n_chains`` chains of constant SGD ``θ ← θ − ε ĝ_S(θ)`` on L from the mode ``u_mode [D]`` (see the
    module docstring): ``burn_in`` steps, then ``n_steps`` recorded every ``thin`` steps. ``directions [D, k]``
    (θ coordinates) are the axes the deviations are projected on; ``window`` (default N/S, one pass) the IASG window.
    """
    for name, val, lo in (("n_chains", n_chains, 1), ("n_steps", n_steps, 1), ("burn_in", burn_in, 0),
                          ("thin", thin, 1)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {val!r}")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    post = posterior.astype(torch.float64)
    N = post.n_train
    if isinstance(S, bool) or not isinstance(S, (int, np.integer)) or not 1 <= S <= N:
        raise ValueError(f"S must be an int in [1, N = {N}], got {S!r}")
    window = max(1, N // S) if window is None else int(window)
    dev = post.device
    t0 = time.perf_counter()
    gen = make_generator(seed, dev)
    scale = post.scale_vector
    inv_s2 = 1.0 / scale**2
    u_star = torch.as_tensor(np.asarray(u_mode), dtype=torch.float64, device=dev)
    u = u_star.expand(n_chains, -1).clone()
    B = (torch.zeros(post.n_params, 0, dtype=torch.float64, device=dev) if directions is None
         else torch.as_tensor(np.asarray(directions), dtype=torch.float64, device=dev))
    xe = None if x_test is None else torch.as_tensor(np.asarray(x_test)).to(dev, torch.float64)
    n_rec = n_steps // thin
    n_bytes = 0 if xe is None else (xe.shape[0] + 7) // 8
    proj = np.zeros((n_chains, n_rec, B.shape[1]))
    sq = np.zeros((n_chains, n_rec))
    bits = np.zeros((n_chains, n_rec, n_bytes), dtype=np.uint8)
    fits = np.zeros((n_chains, n_rec), dtype=bool)
    n_win = n_steps // window
    iasg = np.zeros((n_chains, n_win, n_bytes), dtype=np.uint8)
    alive = torch.ones(n_chains, dtype=torch.bool, device=dev)
    polyak = torch.zeros_like(u)
    win_sum = torch.zeros_like(u)
    dev_sum = torch.zeros_like(u)

    def deviation(v):
        return (v - u_star) * scale

    for step in range(burn_in + n_steps):
        idx = torch.randint(0, N, (n_chains, S), generator=gen, device=dev)
        g = post.minibatch_grad(u, idx, tau, prior_weight=1.0 / N)
        u = u - eps * inv_s2 * g
        bad = ~torch.isfinite(u).all(1) | ((deviation(u) ** 2).sum(1) > max_dev**2)
        if bad.any():
            alive &= ~bad
            u = torch.where(bad.unsqueeze(1), u_star.expand_as(u), u)
        j = step - burn_in
        if j < 0:
            continue
        polyak += u
        win_sum += u
        if (j + 1) % window == 0 and xe is not None:
            w = (j + 1) // window - 1
            iasg[:, w] = np.packbits(post.labels(win_sum / window, xe).cpu().numpy(), axis=1)
            win_sum.zero_()
        if (j + 1) % thin == 0:
            r = (j + 1) // thin - 1
            d = deviation(u)
            dev_sum += d
            proj[:, r] = (d @ B).cpu().numpy()
            sq[:, r] = (d * d).sum(1).cpu().numpy()
            fits[:, r] = (post.n_train_errors(u) == 0).cpu().numpy()
            if xe is not None:
                bits[:, r] = np.packbits(post.labels(u, xe).cpu().numpy(), axis=1)
    polyak /= n_steps
    diverged = (~alive).cpu().numpy()
    mean_dev = (dev_sum[alive].sum(0) / max(1, int(alive.sum()) * n_rec)).cpu().numpy()
    pl = post.labels(polyak, xe).cpu().numpy() if xe is not None else np.zeros((n_chains, 0), dtype=bool)
    return ConstantSGDRun(proj=proj, sq_dev=sq, mean_dev=mean_dev, test_bits=bits, fits=fits, polyak_labels=pl,
                          polyak_dev=(deviation(polyak) @ B).cpu().numpy(), iasg_bits=iasg, diverged=diverged,
                          eps=float(eps), S=int(S), steps=int(n_steps), burn_in=int(burn_in), thin=int(thin),
                          window=int(window), seconds=time.perf_counter() - t0)
