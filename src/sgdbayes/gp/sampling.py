"""Monte-Carlo P_B(f|S) of a Gaussian process with the 0–1 likelihood: the exact answer EP approximates.

Two samplers of the GP posterior ``p(f | sign(f_S) = y_S)`` with prior ``f ~ N(0, K)`` over S ∪ E (train inputs
first, then test inputs):

:func:`sample_gp_rejection`  i.i.d. rejection sampling — draw ``f_S ~ N(0, K_SS)``, keep the draws whose signs
                             equal ``y_S``, then draw ``f_E | f_S`` from its Gaussian conditional. Exact, with a
                             binomial error, but only usable while ``P(S)`` is not tiny (Boolean system: ~3e-5).
:func:`elliptical_slice`     elliptical slice sampling (Murray, Adams & MacKay 2010) with the hard constraint as the
                             likelihood, many chains at once. Exact in the limit (MCMC); works at any ``P(S)``
                             (MNIST: ``P(S)`` ~ 1e-100), with errors from the spread between independent chains.

Both separate EP's approximation error from everything else: on the Boolean system, a network sampled from its
parameter prior differs from this GP only by finite width; EP differs from it only by EP's approximation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from sgdbayes.device import torch_threads
from sgdbayes.functions import FunctionCounts
from sgdbayes.gp.ep import check_kernel, check_labels, regularise_kernel
from sgdbayes.prior_sampling import PriorSamples, block_seed

__all__ = ["ESSError", "ESSResult", "elliptical_slice", "sample_gp_rejection"]


def _split(K, y_train, name="K"):
    K = check_kernel(K, name)
    y_t = torch.as_tensor(y_train) if not isinstance(y_train, torch.Tensor) else y_train
    if y_t.ndim != 1:
        raise ValueError(f"y_train must be 1-D [n_S], got shape {tuple(y_t.shape)}")
    n_s = y_t.shape[0]
    if n_s < 1 or n_s >= K.shape[0]:
        raise ValueError(f"K is [{K.shape[0]}, {K.shape[0]}] but y_train has {n_s} labels: need 1 <= n_S < "
                         f"{K.shape[0]} (train inputs first, then at least one test input)")
    y = check_labels(y_t, n_s, K.device, "y_train")[0]
    return K, y, n_s


def _cholesky(A: torch.Tensor, name: str) -> tuple[torch.Tensor, float]:
    A, jit = regularise_kernel(A, "auto", name=name)
    return torch.linalg.cholesky(A), jit


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------------------------------
# i.i.d. rejection sampling
# --------------------------------------------------------------------------------------------------------------------
def _conditional(K: torch.Tensor, n_s: int):
    """Factors for drawing S then E | S from ``N(0, K)``: ``L_S`` (``K_SS = L_S L_Sᵀ``), ``A = K_ES K_SS⁻¹``,
    ``L_C`` (``L_C L_Cᵀ = K_EE − K_ES K_SS⁻¹ K_SE``, GPML eq. A.6) and the largest jitter added."""
    K_ss, K_se, K_ee = K[:n_s, :n_s], K[:n_s, n_s:], K[n_s:, n_s:]
    L_s, jit_s = _cholesky(K_ss, "K_SS")
    solved = torch.cholesky_solve(K_se, L_s)                  # K_SS⁻¹ K_SE
    cond = K_ee - K_se.T @ solved
    L_c, jit_c = _cholesky(0.5 * (cond + cond.T), "K_EE|S")
    return L_s, solved.T, L_c, max(jit_s, jit_c)


def sample_gp_rejection(K, y_train, *, n_samples: int, seed: int = 0, block: int = 1 << 18,
                        dtype: torch.dtype = torch.float32) -> PriorSamples:
    """P_B(f|S) of the GP ``N(0, K)`` by rejection: ``n_samples`` draws of ``f_S = L_S ξ`` (``K_SS = L_S L_Sᵀ``),
    the ones with ``sign(f_S) = y_S`` completed by ``f_E = A f_S + L_C ζ`` with ``A = K_ES K_SS⁻¹`` and
    ``L_C L_Cᵀ = K_EE − K_ES K_SS⁻¹ K_SE`` (GPML eq. A.6). Returns a
    :class:`~sgdbayes.prior_sampling.PriorSamples` (its ``log_pb``, ``p_train``; ``config["jitter"]``).

    K ``[n_S + n_E]²`` float64 (train first), y_train ``[n_S]`` in {−1, +1}. Draws are made ``block`` at a time from
    generators seeded by ``prior_sampling.block_seed(seed, j)``, so the result depends on (seed, block) only.
    Cost ``O(n_samples · n_S²)`` plus ``O(n_consistent · n_E²)``. ``f_S`` is drawn in ``dtype`` (float32 by default,
    3× faster than float64 here: a sign can only differ when f_S,i is within rounding of 0, an event far rarer than
    the Monte-Carlo error); the completion ``f_E | f_S`` is float64. A jitter added to K_SS or to the conditional
    covariance (``regularise_kernel``, "auto") is reported in ``config["jitter"]``.
    """
    K, y, n_s = _split(K, y_train)
    n = _check_int("n_samples", n_samples, 1)
    block = _check_int("block", block, 1)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    L_s, A, L_c, jit = _conditional(K, n_s)
    L_sT = L_s.T.to(dtype)
    n_e = K.shape[0] - n_s
    keys, kept = [], 0
    for j in range(math.ceil(n / block)):
        m = min(block, n - j * block)
        gen = torch.Generator(device=K.device).manual_seed(block_seed(seed, j))
        xi = torch.randn(block, n_s, generator=gen, dtype=dtype, device=K.device)[:m]
        f_s = xi @ L_sT
        ok = ((f_s > 0) == (y > 0)).all(1)
        if ok.any():
            fs = f_s[ok].to(torch.float64)
            zeta = torch.randn(fs.shape[0], n_e, generator=gen, dtype=torch.float64, device=K.device)
            f_e = fs @ A.T + zeta @ L_c.T
            keys.append((f_e > 0).cpu().numpy())
            kept += fs.shape[0]
    bits = np.concatenate(keys) if keys else np.zeros((0, n_e), bool)
    counts = FunctionCounts.from_bits(bits, n_bits=n_e)
    return PriorSamples(counts=counts, n_sampled=n, n_consistent=kept,
                        config={"seed": seed, "block": block, "dtype": str(dtype), "jitter": jit})


# --------------------------------------------------------------------------------------------------------------------
# elliptical slice sampling
# --------------------------------------------------------------------------------------------------------------------
class ESSError(RuntimeError):
    """The slice sampler could not find an admissible point (numerical trouble, not a property of the posterior)."""


@dataclass
class ESSResult:
    """Samples of the labelling of E under ``p(f | sign(f_S) = y_S)``.

    counts          FunctionCounts of all kept samples (n_chains × n_kept, correlated within a chain)
    packed_samples  ``uint8 [n_kept, n_chains, ceil(n_E/8)]``: every kept labelling (``np.packbits`` rows), by chain
    chain_marginals ``[n_chains, n_E]``: per chain, the fraction of kept samples with f_E,j > 0
    marginals       ``[n_E]``: their mean, the estimate of P_B(f_j = +1 | S)
    marginal_se     ``[n_E]``: its standard error from the spread between independent chains (sd / √n_chains)
    shrinks_per_step mean number of bracket shrinks per transition (cost diagnostic)
    """

    counts: FunctionCounts
    chain_marginals: np.ndarray
    n_kept: int
    packed_samples: np.ndarray
    shrinks_per_step: float
    jitter: float
    config: dict = field(default_factory=dict)

    @property
    def marginals(self) -> np.ndarray:
        return self.chain_marginals.mean(0)

    @property
    def marginal_se(self) -> np.ndarray:
        c = self.chain_marginals.shape[0]
        return self.chain_marginals.std(0, ddof=1) / math.sqrt(c) if c > 1 else np.full(self.marginals.shape, np.inf)

    def pb(self, bits) -> tuple[np.ndarray, np.ndarray]:
        """``(P_B, standard error)`` of labellings ``bits [m, n_E]`` (bool/0-1/±1): the fraction of kept samples equal
        to each, and sd/√n_chains of the per-chain fractions (chains are independent; within-chain correlation is
        thereby accounted for)."""
        from sgdbayes.functions import as_bits

        n_e = self.chain_marginals.shape[1]
        q = np.packbits(as_bits(bits, n_e), axis=1)
        nbytes = q.shape[1]
        void = np.dtype((np.void, nbytes))
        samples = np.ascontiguousarray(self.packed_samples).view(void)[..., 0]   # [n_kept, C]
        per_chain = np.stack([(samples == row.view(void)[0]).mean(0) for row in q], axis=1)  # [C, m]
        c = per_chain.shape[0]
        return per_chain.mean(0), per_chain.std(0, ddof=1) / math.sqrt(c)

    def expected_error(self, y_test) -> tuple[float, float]:
        """Mean fraction of test points misclassified by a posterior sample, with its between-chain standard error;
        ``y_test [n_E]`` in {0, 1} or {−1, +1}."""
        yt = np.asarray(y_test) > 0
        per_chain = np.where(yt[None, :], 1 - self.chain_marginals, self.chain_marginals).mean(1)
        c = per_chain.size
        return float(per_chain.mean()), float(per_chain.std(ddof=1) / math.sqrt(c)) if c > 1 else math.inf


def _ep_start(K: torch.Tensor, y: torch.Tensor, n_s: int, C: int, gen: torch.Generator) -> torch.Tensor:
    """``[C, N]`` admissible starting points near the posterior: draws from EP's Gaussian approximation
    ``q(f_S) = N(μ_S, Σ_S)`` (step likelihood), completed by the prior conditional ``f_E | f_S`` (the EP sites sit on
    S only), with any sign on S still wrong flipped to ``y_S``."""
    from sgdbayes.gp.ep import ep
    from sgdbayes.gp.log_pb import predictive

    K_ss = K[:n_s, :n_s]
    r = ep(K_ss, y, likelihood="step", jitter=None)
    mu_s, cov_s = predictive(K_ss, K_ss, K_ss, r.tau, r.nu)
    L_q, _ = _cholesky(cov_s, "EP posterior covariance on S")
    _, A, L_c, _ = _conditional(K, n_s)
    f_s = mu_s + torch.randn(C, n_s, generator=gen, dtype=K.dtype, device=K.device) @ L_q.T
    f_s = f_s.abs() * y
    f_e = f_s @ A.T + torch.randn(C, K.shape[0] - n_s, generator=gen, dtype=K.dtype, device=K.device) @ L_c.T
    return torch.cat([f_s, f_e], 1)


def elliptical_slice(K, y_train, *, n_chains: int = 256, n_steps: int = 1000, burn_in: int = 200, thin: int = 1,
                     seed: int = 0, init: str = "ep", max_shrinks: int = 200) -> ESSResult:
    """Elliptical slice sampling of ``f ~ N(0, K)`` conditioned on ``sign(f_S) = y_S``, ``n_chains`` chains at once.

    One transition (Murray et al. 2010, Fig. 2, with log L = 0 on the admissible set and −∞ off it): draw
    ``ν ~ N(0, K)`` and ``θ ~ U[0, 2π)``; propose ``f cos θ + ν sin θ``; while a sign on S is wrong, shrink the
    bracket ``[θ − 2π, θ]`` towards 0 and redraw θ inside it. The chain leaves the posterior invariant; θ → 0 returns
    to the current (admissible) point, so every transition ends. Chains start (``init="ep"``) from draws of EP's
    Gaussian approximation of the posterior, or (``init="prior"``) from prior draws, with the signs on S flipped to
    y_S (admissible); then ``burn_in`` transitions are discarded and ``n_steps`` more kept every ``thin``. (On the
    Boolean system a prior start needs ~1,000 transitions to forget its start; an EP start far fewer.)

    K ``[n_S + n_E]²`` float64, y_train ``[n_S]`` in {−1, +1}. Cost per transition ``O(n_chains · N²)``.
    Raises :class:`ESSError` if a chain needs more than ``max_shrinks`` shrinks (an admissible θ always exists, so
    this signals numerical trouble).
    """
    K, y, n_s = _split(K, y_train)
    C = _check_int("n_chains", n_chains, 2)
    n_steps = _check_int("n_steps", n_steps, 1)
    burn_in = _check_int("burn_in", burn_in, 0)
    thin = _check_int("thin", thin, 1)
    max_shrinks = _check_int("max_shrinks", max_shrinks, 1)
    if init not in ("ep", "prior"):
        raise ValueError(f"init must be 'ep' or 'prior', got {init!r}")
    L, jit = _cholesky(K, "K")
    LT = L.T
    N, dev = K.shape[0], K.device
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    if init == "ep":
        f = _ep_start(K, y, n_s, C, gen)
    else:
        f = torch.randn(C, N, generator=gen, dtype=torch.float64, device=dev) @ LT
        f[:, :n_s] = f[:, :n_s].abs() * y
    ys = y > 0
    n_e = N - n_s
    bits, sums = [], torch.zeros(C, n_e, dtype=torch.float64, device=dev)
    with torch_threads(1, dev):  # many tiny ops per transition: one thread is fastest (see torch_threads)
        kept, shrinks, moves = _ess_loop(f, LT, ys, n_s, C, burn_in, n_steps, thin, max_shrinks, gen, bits, sums)
    samples = np.stack(bits)                                   # [n_kept, C, n_E] bool
    counts = FunctionCounts.from_bits(samples.reshape(-1, n_e), n_bits=n_e)
    return ESSResult(counts=counts, chain_marginals=(sums / kept).cpu().numpy(), n_kept=kept,
                     packed_samples=np.packbits(samples, axis=2),
                     shrinks_per_step=shrinks / moves, jitter=jit,
                     config={"n_chains": C, "n_steps": n_steps, "burn_in": burn_in, "thin": thin, "seed": seed,
                             "init": init})


def _ess_loop(f, LT, ys, n_s, C, burn_in, n_steps, thin, max_shrinks, gen, bits, sums):
    """The transitions of :func:`elliptical_slice`; appends kept E-labellings to ``bits`` and adds them to ``sums``."""
    dev, N = f.device, f.shape[1]
    two_pi = 2 * math.pi
    kept = shrinks = moves = 0
    for t in range(burn_in + n_steps):
        nu = torch.randn(C, N, generator=gen, dtype=torch.float64, device=dev) @ LT
        theta = torch.rand(C, generator=gen, dtype=torch.float64, device=dev) * two_pi
        lo, hi = theta - two_pi, theta.clone()
        new = torch.empty_like(f)
        todo = torch.arange(C, device=dev)
        for k in range(max_shrinks + 1):
            th = theta[todo]
            prop = f[todo] * th.cos()[:, None] + nu[todo] * th.sin()[:, None]
            ok = ((prop[:, :n_s] > 0) == ys).all(1)
            new[todo[ok]] = prop[ok]
            todo_bad = todo[~ok]
            if todo_bad.numel() == 0:
                break
            if k == max_shrinks:
                raise ESSError(f"elliptical slice: {todo_bad.numel()} chain(s) found no admissible point in "
                               f"{max_shrinks} shrinks at transition {t}")
            shrinks += todo_bad.numel()
            th_bad = theta[todo_bad]
            neg = th_bad < 0
            lo[todo_bad] = torch.where(neg, th_bad, lo[todo_bad])
            hi[todo_bad] = torch.where(neg, hi[todo_bad], th_bad)
            theta[todo_bad] = lo[todo_bad] + (hi[todo_bad] - lo[todo_bad]) * torch.rand(
                todo_bad.numel(), generator=gen, dtype=torch.float64, device=dev)
            todo = todo_bad
        f = new
        moves += C
        if t >= burn_in and (t - burn_in) % thin == 0:
            pos = f[:, n_s:] > 0
            sums += pos
            bits.append(pos.cpu().numpy())
            kept += 1
    return kept, shrinks, moves
