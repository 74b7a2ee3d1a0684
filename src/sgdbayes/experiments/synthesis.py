"""Chapter 5, the synthesis: the three senses of "SGD is Bayesian" measured on the same Boolean network.

The chapter composes the library; each step here is a tested function of plain arguments (arrays, numbers,
strings), so that its cached result is keyed on the whole call:

- :func:`temperature_grid` / :func:`grid_table` — P_SGD(f|S) over a grid of learning rates η and batch sizes b
  (Mingard × Chaudhari: the SDE temperature is η/2b), each setting against P_B (EP) with error bars;
- :func:`mcmc_baseline` / :func:`mcmc_diagnostics` — HMC on the finite network's own posterior (initialisation
  prior, logistic likelihood of temperature τ → 0–1), with R̂/ESS on function-space statistics and the draws
  reweighted to the exact 0–1 posterior (:mod:`sgdbayes.mcmc`);
- :func:`local_analysis` / :func:`local_chains` — Mandt et al.'s picture at one solution (A, C, ε*, H*, Lyapunov,
  Laplace) and constant SGD run there (:mod:`sgdbayes.local`);
- :func:`averaging_runs` — the function of Polyak-averaged (and IASG-window-averaged) SGD weights;
- :func:`agreement`, :func:`function_mass`, :func:`hamming` — the statistics the closing table quotes.

Probabilities: natural logs unless a name says ``log10``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sgdbayes.data.boolean import mask_problem
from sgdbayes.functions import FunctionCounts, as_bits
from sgdbayes.params import Choice, Float, Int, List, Rule, Spec, Str

__all__ = [
    "AveragingRun", "MCMCResult", "PARAMETERS", "agreement", "averaging_runs", "boolean_system", "function_mass",
    "grid_shard", "mnist_local_picture",
    "grid_table", "hamming", "local_analysis", "local_chains", "mcmc_baseline", "mcmc_diagnostics",
    "mcmc_functions", "sgd_solutions", "temperature_grid",
]


def _np(x, dtype=np.float32) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=dtype))


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_pos(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------------------------------
# (1) temperature and function space
# --------------------------------------------------------------------------------------------------------------------
def grid_shard(seed: int, *, x_train, y_train, x_test, n_networks: int, lr: float, batch_size: int, max_epochs: int,
               max_steps: int | None = None, stop_rule: str = "clean", runs_per_process: int = 25,
               hidden: Sequence[int] = (40, 40),
               sigma_w: float = 1.0, sigma_b: float = 1.0, device: str = "cpu"):
    """One shard of :func:`temperature_grid` (top level, for :func:`sgdbayes.distributed.run_sharded`):
    ``n_networks`` FCNs trained by plain SGD (cross-entropy) with :func:`sgdbayes.ensembles.train_ensemble` under
    ``stop_rule`` — ``"clean"`` or the authors' ``"keras"`` rule, emulating processes of ``runs_per_process`` runs
    whose leaders are left out (:class:`sgdbayes.ensembles.StopRule`) — as a
    :class:`~sgdbayes.experiments.function_probability.TrainingRun` of the counted runs."""
    from sgdbayes.device import get_device, torch_threads
    from sgdbayes.ensembles import FCN, StopRule, train_ensemble
    from sgdbayes.experiments.function_probability import TrainingRun

    dev = get_device(device)
    x_tr = torch.as_tensor(_np(x_train), device=dev)
    rule = StopRule.clean() if stop_rule == "clean" else StopRule(stop_rule, runs_per_process=runs_per_process)
    model = FCN(x_tr.shape[1], tuple(hidden), sigma_w=sigma_w, sigma_b=sigma_b)
    # small nets and minibatches: one torch thread (two spinning threads on a shared 2-core machine cost several
    # times the CPU for the same work)
    with torch_threads(1, dev):
        res = train_ensemble(model, x_tr, torch.as_tensor(_np(y_train, np.int64), device=dev),
                             torch.as_tensor(_np(x_test), device=dev), n_networks=n_networks, seed=int(seed), lr=lr,
                             batch_size=batch_size, max_epochs=max_epochs, max_steps=max_steps, stop_rule=rule,
                             device=dev, progress=False)
    mine = np.ones(res.n_networks, dtype=bool) if res.leader is None else ~res.leader
    status = res.status[mine]
    fitted = status == "fitted"
    counts = res.function_counts(require_final_fit=True, leaders=False)
    fit_epochs = res.epochs_to_fit[mine][fitted]
    hist = np.bincount(fit_epochs, minlength=1).astype(np.int64) if fit_epochs.size else np.zeros(1, np.int64)
    return TrainingRun(counts=counts, n_networks=int(mine.sum()), n_fitted=int(fitted.sum()),
                       n_not_fitted=int((status == "not_fitted").sum()), n_diverged=int((status == "diverged").sum()),
                       n_lost_fit=int(fitted.sum()) - counts.total, epochs_hist=hist, seconds=res.wall_time_s,
                       config={"stop_rule": stop_rule, "runs_per_process": runs_per_process})


def temperature_grid(x_train, y_train, x_test, *, lrs: Sequence[float], batches: Sequence[int], n_networks: int,
                     max_epochs: int, max_steps: int | None = None, seed: int = 0, stop_rule: str = "clean",
                     runs_per_process: int = 25,
                     hidden: Sequence[int] = (40, 40), sigma_w: float = 1.0, sigma_b: float = 1.0,
                     device: str = "cpu", shard_size: int = 2000, progress: bool = False) -> dict:
    """P_SGD(f|S) of plain SGD (cross-entropy) for every (η, b) in ``lrs × batches``: ``{(lr, batch): TrainingRun}``,
    trained in seeded shards (:func:`grid_shard` through :func:`sgdbayes.distributed.run_sharded`: resumable, each
    shard stored as it finishes). Every setting uses the same seeds, so the same initialisations (common random
    numbers). ``stop_rule``: ``"clean"`` (stop at the end of the first epoch at which the sign of the logit fits S)
    or ``"keras"`` (the authors' rule; the leaders of its emulated processes are not counted). A network gets at
    most ``max_epochs`` epochs and ``max_steps`` SGD steps (rounded down to whole epochs, at least one) to fit S."""
    from sgdbayes.distributed import run_sharded
    from sgdbayes.ensembles import STOP_RULES
    from sgdbayes.experiments import function_probability as fp

    lrs = [_check_pos("lr", lr) for lr in lrs]
    batches = [_check_int("batch", b, 1) for b in batches]
    if not lrs or not batches:
        raise ValueError("lrs and batches must be non-empty")
    if stop_rule not in STOP_RULES:
        raise ValueError(f"unknown stop rule {stop_rule!r}; allowed: {', '.join(STOP_RULES)}")
    xtr, xte = _np(x_train), _np(x_test)
    ytr = as_bits(_np(y_train, np.int64), xtr.shape[0], name="y_train")[0].astype(np.int64)
    if max(batches) > xtr.shape[0]:
        raise ValueError(f"every batch size must be <= |S| = {xtr.shape[0]}, got {max(batches)}")
    n_networks = _check_int("n_networks", n_networks, 1)
    per = min(_check_int("shard_size", shard_size, 1), n_networks)
    n_shards = math.ceil(n_networks / per)
    out = {}
    for lr in lrs:
        for b in batches:
            steps = None if max_steps is None else max(int(max_steps), math.ceil(xtr.shape[0] / b))
            params = {"x_train": xtr, "y_train": ytr, "x_test": xte, "n_networks": per, "lr": lr, "batch_size": b,
                      "max_epochs": int(max_epochs), "max_steps": steps, "stop_rule": stop_rule,
                      "runs_per_process": int(runs_per_process),
                      "hidden": [int(h) for h in hidden], "sigma_w": float(sigma_w), "sigma_b": float(sigma_b),
                      "device": device}
            out[(lr, b)] = run_sharded(grid_shard, n_shards=n_shards, seed=seed, params=params,
                                       merge=fp.merge_training_runs, scheduler=fp.resolve_scheduler("auto"),
                                       progress=progress)
    return out


def _kl_on_support(p_sgd: np.ndarray, log_pb: np.ndarray) -> float:
    """KL(P_SGD|U ‖ P_B|U) with both renormalised over the given functions U (p_sgd > 0, log_pb finite)."""
    p = p_sgd / p_sgd.sum()
    lq = log_pb - np.logaddexp.reduce(log_pb)
    return float((p * (np.log(p) - lq)).sum())


def agreement(counts: FunctionCounts, log_pb: np.ndarray, true_labels, *, min_count: int = 10,
              n_boot: int = 200, seed: int = 0) -> dict:
    """How P_SGD (the empirical distribution ``counts``) compares with P_B (``log_pb``: natural log per row of
    ``counts``; NaN = not evaluated, −inf = zero), with multinomial-bootstrap standard errors (``*_se``).

    Support U = the functions seen at least ``min_count`` times with finite log P_B (``n_compared`` of them).
    Returns ``n_counted``, ``n_distinct``, ``top1``, ``top10`` (mass of the most frequent), ``mean_error`` (expected
    fraction of E misclassified under P_SGD), and on U: ``kl`` = KL(P_SGD|U ‖ P_B|U) (both renormalised on U),
    ``corr`` (Pearson, log P_SGD vs log P_B), ``within_decade`` (fraction with |log₁₀ P_SGD − log₁₀ P_B| ≤ 1),
    ``mass_sgd`` and ``mass_pb`` (how much of each distribution U holds)."""
    min_count = _check_int("min_count", min_count, 1)
    log_pb = np.asarray(log_pb, dtype=np.float64)
    if log_pb.shape != (counts.n_distinct,):
        raise ValueError(f"log_pb must have one entry per function ({counts.n_distinct}), got {log_pb.shape}")
    n = counts.total
    if n == 0:
        raise ValueError("no functions counted (no network fitted S)")
    err = counts.errors(true_labels) / counts.n_bits
    sel = (counts.counts >= min_count) & np.isfinite(log_pb)

    def stats(c: np.ndarray) -> dict:
        p = c / c.sum()
        srt = np.sort(c)[::-1]
        out = {"top1": srt[:1].sum() / c.sum(), "top10": srt[:10].sum() / c.sum(), "mean_error": float(p @ err)}
        s = sel & (c > 0)
        if s.sum() >= 2:
            l_sgd, l_pb = np.log10(p[s]), log_pb[s] / math.log(10)
            out["kl"] = _kl_on_support(p[s], log_pb[s])
            out["corr"] = float(np.corrcoef(l_sgd, l_pb)[0, 1]) if l_sgd.std() > 0 and l_pb.std() > 0 else math.nan
            out["within_decade"] = float(np.mean(np.abs(l_sgd - l_pb) <= 1.0))
            out["mass_sgd"] = float(p[s].sum())
        else:
            out.update(kl=math.nan, corr=math.nan, within_decade=math.nan, mass_sgd=math.nan)
        return out

    base = stats(counts.counts.astype(np.float64))
    rng = np.random.default_rng(seed)
    p0 = counts.counts / n
    boot = [stats(rng.multinomial(n, p0).astype(np.float64)) for _ in range(n_boot)]
    res = {"n_counted": n, "n_distinct": counts.n_distinct, "n_compared": int(sel.sum()), **base,
           "mass_pb": float(np.exp(log_pb[sel]).sum()) if sel.any() else math.nan}
    for k in base:
        vals = np.array([b[k] for b in boot], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        res[f"{k}_se"] = float(vals.std(ddof=1)) if vals.size > 1 else math.nan
    return res


def grid_table(runs: Mapping, lookup, true_labels, *, min_count: int = 10, n_train: int, n_boot: int = 200,
               seed: int = 0):
    """One row per (η, b) of :func:`temperature_grid`: temperature η/b, how many networks fitted / did not fit /
    diverged, the fraction that fit S (``fit_fraction`` ± binomial ``fit_fraction_se``), and :func:`agreement` with
    P_B, where ``lookup(counts) → log P_B`` per function (e.g. a ``PBTable.lookup``). A setting where no network
    fitted keeps its row, with NaN statistics — reported, never dropped."""
    import pandas as pd

    rows = []
    for (lr, b), run in runs.items():
        row = {"lr": lr, "batch": b, "eta_over_b": lr / b, "networks": run.n_networks, "fitted": run.n_fitted,
               "not_fitted": run.n_not_fitted, "diverged": run.n_diverged, "lost_fit": run.n_lost_fit,
               "mean_epochs": run.mean_epochs_to_fit, "steps_to_fit": run.mean_epochs_to_fit * math.ceil(n_train / b)}
        f = run.n_counted / run.n_networks
        row.update(fit_fraction=f, fit_fraction_se=math.sqrt(f * (1 - f) / run.n_networks))
        if run.n_counted:
            row.update(agreement(run.counts, lookup(run.counts), true_labels, min_count=min_count,
                                 n_boot=n_boot, seed=seed))
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["eta_over_b", "batch"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------------
# (2) the parameter-space Bayesian baseline
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class MCMCResult:
    """HMC draws of the finite network's posterior at temperature ``tau``. ``[C, T]`` arrays: ``test_bits [C, T,
    ⌈|E|/8⌉]`` (packed labellings of E), ``log_w01`` (log importance weight to the 0–1 posterior, −inf where the
    draw does not fit S), ``loglik``, ``train_errors`` (points of S misclassified by sign), ``sq_norm`` (‖u‖²/P),
    ``accept_prob``, ``divergent``; ``warmup_divergent [C]``; ``step_size``; ``n_params``; ``seconds``."""

    test_bits: np.ndarray
    log_w01: np.ndarray
    loglik: np.ndarray
    train_errors: np.ndarray
    sq_norm: np.ndarray
    accept_prob: np.ndarray
    divergent: np.ndarray
    warmup_divergent: np.ndarray
    step_size: float
    tau: float
    n_test: int
    n_params: int
    seconds: float

    def bits(self) -> np.ndarray:
        """Labellings of E, bool ``[C, T, |E|]``."""
        return np.unpackbits(self.test_bits, axis=2, count=self.n_test).astype(bool)


def mcmc_baseline(x_train, y_train, x_test, *, hidden: Sequence[int] = (40, 40), sigma_w: float = 1.0,
                  sigma_b: float = 1.0, tau: float = 0.01, tau_start: float = 3.0, n_chains: int = 128,
                  n_warmup: int = 150, n_draws: int = 150, n_leapfrog: int = 32, thin: int = 1,
                  target_accept: float = 0.8, seed: int = 0, device: str = "cpu", threads: int = 1) -> MCMCResult:
    """HMC (:func:`sgdbayes.mcmc.hmc`) on the posterior of the FCN ``d → hidden → 1`` with its initialisation prior
    and the logistic likelihood of temperature ``tau`` (annealed from ``tau_start`` during the warm-up), from prior
    draws; records the labelling of E, the 0–1 importance weight and the diagnostics of every kept draw.
    ``threads``: torch threads for the run (small batched ops: 1 is fastest on a shared CPU)."""
    from sgdbayes.device import get_device, torch_threads
    from sgdbayes.mcmc import FCNPosterior, hmc
    from sgdbayes.seed import make_generator

    dev = get_device(device)
    post = FCNPosterior(_np(x_train), _np(y_train), widths=hidden, sigma_w=sigma_w, sigma_b=sigma_b, device=dev)
    xe = torch.as_tensor(_np(x_test), device=dev)

    def record(u):
        return {"test": post.labels(u, xe), "lw": post.log_weight_01(u, tau), "err": post.n_train_errors(u),
                "norm": (u * u).sum(1) / post.n_params}

    t0 = time.perf_counter()
    with torch_threads(int(threads), dev):
        u0 = post.sample_prior(_check_int("n_chains", n_chains, 2), make_generator(seed + 1, dev))
        tr = hmc(post, u0, tau=tau, tau_start=tau_start, n_warmup=n_warmup, n_draws=n_draws, n_leapfrog=n_leapfrog,
                 thin=thin, target_accept=target_accept, record=record, seed=seed)
    r = tr.records
    return MCMCResult(test_bits=np.packbits(r["test"], axis=2), log_w01=r["lw"], loglik=tr.loglik,
                      train_errors=r["err"], sq_norm=r["norm"], accept_prob=tr.accept_prob,
                      divergent=tr.divergent, warmup_divergent=tr.warmup_divergent, step_size=tr.step_size,
                      tau=float(tau), n_test=int(xe.shape[0]), n_params=post.n_params,
                      seconds=time.perf_counter() - t0)


def mcmc_functions(result: MCMCResult, *, zero_one: bool = True):
    """:class:`sgdbayes.mcmc.functions.ChainFunctions` of the draws: reweighted to the 0–1 posterior
    (``zero_one``) or as drawn from the τ-posterior."""
    from sgdbayes.mcmc.functions import chain_functions

    return chain_functions(result.bits(), result.log_w01 if zero_one else None)


def mcmc_diagnostics(result: MCMCResult, true_labels, *, top_k: int = 5) -> dict:
    """R̂ (rank-normalised split) and bulk ESS of the log-likelihood, the test error, ‖u‖²/P, each label of E (the
    largest R̂ and smallest ESS over the |E| bits that vary) and the indicators of the ``top_k`` most visited
    functions; the acceptance rate, divergences, the fraction of draws fitting S and the Kish ESS of the 0–1
    weights."""
    from sgdbayes.mcmc import ess_bulk, rhat

    bits = result.bits()
    truth = as_bits(true_labels, result.n_test)[0]
    err = (bits != truth).mean(2)
    out = {}
    for name, x in (("loglik", result.loglik), ("test_error", err), ("sq_norm", result.sq_norm)):
        out[f"rhat_{name}"] = rhat(x)
        out[f"ess_{name}"] = ess_bulk(x)
    rb, eb = [], []
    for j in range(bits.shape[2]):
        x = bits[:, :, j].astype(np.float64)
        if np.ptp(x) > 0:
            rb.append(rhat(x))
            eb.append(ess_bulk(x))
    out["rhat_bits_max"] = float(np.nanmax(rb)) if rb else math.nan
    out["ess_bits_min"] = float(np.nanmin(eb)) if eb else math.nan
    keys = np.packbits(bits, axis=2)
    flat = keys.reshape(-1, keys.shape[2])
    uniq, inv, cnt = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    rt, et = [], []
    for k in np.argsort(-cnt)[:top_k]:
        x = (inv.reshape(bits.shape[:2]) == k).astype(np.float64)
        if np.ptp(x) > 0:
            rt.append(rhat(x))
            et.append(ess_bulk(x))
    out["rhat_top_max"] = float(np.nanmax(rt)) if rt else math.nan
    out["ess_top_min"] = float(np.nanmin(et)) if et else math.nan
    lw = result.log_w01
    w = np.where(np.isfinite(lw), np.exp(lw - lw[np.isfinite(lw)].max()), 0.0) if np.isfinite(lw).any() else lw * 0
    out.update(accept=float(result.accept_prob.mean()), divergent=int(result.divergent.sum()),
               warmup_divergent=int(result.warmup_divergent.sum()),
               fit_fraction=float((result.train_errors == 0).mean()),
               ess_01_weights=float(w.sum() ** 2 / (w**2).sum()) if w.sum() > 0 else 0.0,
               n_draws=int(lw.size), n_chains=int(lw.shape[0]))
    out["rhat_max"] = float(np.nanmax([out[k] for k in out if k.startswith("rhat_")]))
    out["ess_min"] = float(np.nanmin([out[k] for k in out if k.startswith("ess_") and k != "ess_01_weights"]))
    return out


# --------------------------------------------------------------------------------------------------------------------
# (3) Mandt's local picture at one solution
# --------------------------------------------------------------------------------------------------------------------
def sgd_solutions(x_train, y_train, x_test, *, n_networks: int, lr: float, batch: int, seed: int = 0,
                  hidden: Sequence[int] = (40, 40), sigma_w: float = 1.0, sigma_b: float = 1.0,
                  max_epochs: int = 2000, device: str = "cpu") -> dict:
    """``n_networks`` SGD solutions (cross-entropy, stopped when the sign fits S) with their parameters:
    ``{"params": [W₁ [M, out, in], b₁, …] (numpy), "fitted": bool [M], "labels": bool [M, |E|]}``."""
    from sgdbayes.device import get_device
    from sgdbayes.ensembles import FCN, train_ensemble

    dev = get_device(device)
    x_tr = torch.as_tensor(_np(x_train), device=dev)
    model = FCN(x_tr.shape[1], tuple(hidden), sigma_w=sigma_w, sigma_b=sigma_b)
    res = train_ensemble(model, x_tr, torch.as_tensor(_np(y_train, np.int64), device=dev),
                         torch.as_tensor(_np(x_test), device=dev), n_networks=n_networks, seed=seed, lr=lr,
                         batch_size=batch, max_epochs=max_epochs, return_params=True, progress=False, device=dev)
    return {"params": [p.numpy() for p in res.params], "fitted": res.fitted & (res.train_accuracy == 1.0),
            "labels": res.test_labels.numpy()}


def local_analysis(x_train, y_train, x_test, *, weight_decay: float, batch: int, lr: float, seed: int = 0,
                   hidden: Sequence[int] = (40, 40), sigma_w: float = 1.0, sigma_b: float = 1.0,
                   init_prior_mode: bool = True, device: str = "cpu") -> dict:
    """Mandt's local picture at a solution: one network trained by SGD (``lr``, ``batch``) to fit S, then

    - with the initialisation prior (``init_prior_mode``): the nearest mode of the network's own posterior
      (τ = 1, cross-entropy) — reported to show where it lies (``init_mode``: ‖u*‖²/P, training errors);
    - with weight decay ``weight_decay`` (L = mean cross-entropy + ``weight_decay``/2·‖θ‖², i.e. a Gaussian prior of
      precision N·weight_decay on θ): the mode next to the solution and its
      :class:`~sgdbayes.local.LocalPicture` (minibatch ``batch``).

    Returns ``{"solution_labels", "solution_sq_norm", "init_mode": {...} or None, "picture": LocalPicture}``."""
    from sgdbayes.local import find_mode, local_picture
    from sgdbayes.mcmc import FCNPosterior

    _check_pos("weight_decay", weight_decay)
    sol = sgd_solutions(x_train, y_train, x_test, n_networks=1, lr=lr, batch=batch, seed=seed, hidden=hidden,
                        sigma_w=sigma_w, sigma_b=sigma_b, device=device)
    if not sol["fitted"][0]:
        raise RuntimeError(f"the SGD run (lr {lr}, batch {batch}, seed {seed}) did not fit S; no solution to analyse")
    xtr, ytr, xte = _np(x_train), _np(y_train), _np(x_test)
    post0 = FCNPosterior(xtr, ytr, widths=hidden, sigma_w=sigma_w, sigma_b=sigma_b, device=device,
                         dtype=torch.float64)
    u_sol = post0.whiten([torch.as_tensor(p, dtype=torch.float64) for p in sol["params"]])[0]
    init_mode = None
    if init_prior_mode:
        um0, info0 = find_mode(post0, u_sol, 1.0)
        init_mode = {"sq_norm": float((um0 * um0).mean()), "train_errors": int(post0.n_train_errors(um0[None])[0]),
                     **info0}
    n = xtr.shape[0]
    post = FCNPosterior(xtr, ytr, widths=hidden, sigma_w=sigma_w, sigma_b=sigma_b, prior_precision=n * weight_decay,
                        device=device, dtype=torch.float64)
    um, info = find_mode(post, u_sol, 1.0)
    pic = local_picture(post, um, 1.0, S=batch, x_test=xte, mode_info=info)
    return {"solution_labels": sol["labels"][0], "solution_sq_norm": float((u_sol * u_sol).mean()),
            "init_mode": init_mode, "picture": pic}


def local_chains(x_train, y_train, x_test, u_mode, *, weight_decay: float, eps: float, batch: int, n_chains: int,
                 n_steps: int, burn_in: int, thin: int, directions=None, hidden: Sequence[int] = (40, 40),
                 sigma_w: float = 1.0, sigma_b: float = 1.0, seed: int = 0, device: str = "cpu"):
    """Constant SGD at rate ``eps`` from the mode ``u_mode`` of :func:`local_analysis`
    (:func:`sgdbayes.local.constant_sgd_chains`, float64) → a :class:`~sgdbayes.local.ConstantSGDRun`."""
    from sgdbayes.device import torch_threads
    from sgdbayes.local import constant_sgd_chains
    from sgdbayes.mcmc import FCNPosterior

    xtr = _np(x_train)
    post = FCNPosterior(xtr, _np(y_train), widths=hidden, sigma_w=sigma_w, sigma_b=sigma_b,
                        prior_precision=xtr.shape[0] * _check_pos("weight_decay", weight_decay), device=device,
                        dtype=torch.float64)
    with torch_threads(1, post.device):
        return constant_sgd_chains(post, np.asarray(u_mode), 1.0, eps=eps, S=batch, n_chains=n_chains,
                                   n_steps=n_steps, burn_in=burn_in, thin=thin, directions=directions,
                                   x_test=_np(x_test), seed=seed)


# --------------------------------------------------------------------------------------------------------------------
# (4) averaging
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class AveragingRun:
    """Networks trained by SGD until they fit S, then run on at the same (η, b) for ``epochs`` more epochs.
    ``[M, |E|]`` bool labellings: ``final`` (last iterate), ``polyak`` (average of all iterates of the extra epochs),
    ``iasg [M, W, |E|]`` (average of each one-epoch window, Mandt et al.'s IASG samples); ``fits_final`` /
    ``fits_polyak`` (does the labelling of S by that network fit S); ``used [M]`` (networks that fitted S and stayed
    finite: the others are excluded and counted in ``n_excluded``)."""

    solution: np.ndarray
    final: np.ndarray
    polyak: np.ndarray
    iasg: np.ndarray
    fits_final: np.ndarray
    fits_polyak: np.ndarray
    used: np.ndarray
    n_excluded: int
    lr: float
    batch: int
    epochs: int


def averaging_runs(x_train, y_train, x_test, *, n_networks: int, lr: float, batch: int, epochs: int, seed: int = 0,
                   continue_lr: float | None = None, hidden: Sequence[int] = (40, 40), sigma_w: float = 1.0,
                   sigma_b: float = 1.0, device: str = "cpu") -> AveragingRun:
    """Polyak averaging of SGD from its own solutions: :func:`sgd_solutions` at (``lr``, ``batch``), then
    ``epochs`` epochs of plain SGD at ``continue_lr`` (default ``lr``; cross-entropy, no prior; minibatches drawn
    with replacement) per network, averaging the iterates."""
    from sgdbayes.device import get_device, torch_threads
    from sgdbayes.mcmc import FCNPosterior
    from sgdbayes.seed import make_generator

    epochs = _check_int("epochs", epochs, 1)
    sol = sgd_solutions(x_train, y_train, x_test, n_networks=n_networks, lr=lr, batch=batch, seed=seed,
                        hidden=hidden, sigma_w=sigma_w, sigma_b=sigma_b, device=device)
    dev = get_device(device)
    xtr = _np(x_train)
    post = FCNPosterior(xtr, _np(y_train), widths=hidden, sigma_w=sigma_w, sigma_b=sigma_b, device=dev)
    xe = torch.as_tensor(_np(x_test), device=dev)
    keep = np.flatnonzero(sol["fitted"])
    n_e = xe.shape[0]
    if keep.size == 0:
        empty = np.zeros((0, n_e), dtype=bool)
        return AveragingRun(solution=empty, final=empty, polyak=empty, iasg=np.zeros((0, epochs, n_e), dtype=bool),
                            fits_final=np.zeros(0, bool), fits_polyak=np.zeros(0, bool),
                            used=np.zeros(n_networks, bool), n_excluded=int(n_networks), lr=float(lr),
                            batch=int(batch), epochs=epochs)
    step_lr = float(lr if continue_lr is None else _check_pos("continue_lr", continue_lr))
    u = post.whiten([torch.as_tensor(p[keep], device=dev) for p in sol["params"]])
    inv_s2 = 1.0 / post.scale_vector**2
    n = xtr.shape[0]
    steps_per_epoch = max(1, math.ceil(n / batch))
    gen = make_generator(seed + 7, dev)
    mean = torch.zeros_like(u)
    iasg = []
    with torch_threads(1, dev):
        for _ in range(epochs):
            win = torch.zeros_like(u)
            for _ in range(steps_per_epoch):
                idx = torch.randint(0, n, (u.shape[0], batch), generator=gen, device=dev)
                u = u - step_lr * inv_s2 * post.minibatch_grad(u, idx, 1.0, prior_weight=0.0)
                win += u
            mean += win
            iasg.append(post.labels(win / steps_per_epoch, xe).cpu().numpy())
        mean /= epochs * steps_per_epoch
        finite = torch.isfinite(u).all(1) & torch.isfinite(mean).all(1)
        final = post.labels(u, xe).cpu().numpy()
        polyak = post.labels(mean, xe).cpu().numpy()
        fits_f = (post.n_train_errors(u) == 0).cpu().numpy()
        fits_p = (post.n_train_errors(mean) == 0).cpu().numpy()
    ok = finite.cpu().numpy()
    used = np.zeros(n_networks, dtype=bool)
    used[keep[ok]] = True
    return AveragingRun(solution=sol["labels"][keep][ok], final=final[ok], polyak=polyak[ok],
                        iasg=np.stack(iasg, 1)[ok], fits_final=fits_f[ok], fits_polyak=fits_p[ok], used=used,
                        n_excluded=int(n_networks - used.sum()), lr=float(lr), batch=int(batch), epochs=epochs)


# --------------------------------------------------------------------------------------------------------------------
# small statistics
# --------------------------------------------------------------------------------------------------------------------
def hamming(a, b) -> np.ndarray:
    """Number of differing bits between each row of ``a [m, n]`` and ``b [n]`` (or rows of ``b [m, n]``)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    return (a != b).sum(-1)


def function_mass(functions_bits, probs_of) -> float:
    """Σ of ``probs_of(distinct functions)`` over the distinct rows of ``functions_bits [m, n]``: how much of a
    distribution over functions a set of visited functions covers."""
    bits = np.unique(np.asarray(functions_bits, dtype=bool), axis=0)
    p = np.asarray(probs_of(bits), dtype=np.float64)
    return float(np.nansum(p))


def mnist_local_picture(n_train: int, n_test: int, *, downsample: int, hidden: Sequence[int], weight_decay: float,
                        batch: int, lr: float, fraction: float, n_chains: int, n_steps: int, burn_in: int, thin: int,
                        sigma_w: float = 1.0, sigma_b: float = 1.0, seed: int = 0) -> dict:
    """Mandt's local picture (:func:`local_analysis`) on a small MNIST network, summarised as numbers.

    S and E: the shipped MNIST digits (parity labels, even → 1), ``n_train`` / ``n_test`` of them, images averaged
    over ``downsample``×``downsample`` blocks and flattened; network d → ``hidden`` → 1. At the weight-decay mode next
    to an SGD solution: the rank of the gradient-noise covariance C against the number of parameters D, Mandt's ε*
    against the stability limit 2/λ_max(A), and constant SGD at ``fraction``·(stability limit) (``n_chains`` chains)
    compared with the Lyapunov prediction in the range of C and with the Laplace posterior in its null space.

    Returns ``{"d", "D", "rank_C", "eps_star_over_limit", "n_used", "n_diverged", "range_ratio"
    (SGD / discrete-Lyapunov trace in range(C)), "null_vs_laplace" (SGD / Laplace trace in null(C)), "drift"}``."""
    from sgdbayes.experiments.function_probability_images import load_split
    from sgdbayes.local.compare import covariance_comparison

    if not (0 < fraction < 1):
        raise ValueError(f"fraction must lie in (0, 1) (a stable constant-SGD rate), got {fraction!r}")
    split = load_split("subset", n_train, n_test, seed=seed, binarize="parity", downsample=downsample)
    xtr, ytr, xte = _np(split.x_train), _np(split.y_train), _np(split.x_test)
    local = local_analysis(xtr, ytr, xte, weight_decay=weight_decay, batch=batch, lr=lr, seed=seed, hidden=hidden,
                           sigma_w=sigma_w, sigma_b=sigma_b, init_prior_mode=False)
    pic = local["picture"]
    run = local_chains(xtr, ytr, xte, pic.u_mode, weight_decay=weight_decay, eps=fraction * pic.stability_limit,
                       batch=batch, n_chains=n_chains, n_steps=n_steps, burn_in=burn_in, thin=thin,
                       directions=pic.U_range, hidden=hidden, sigma_w=sigma_w, sigma_b=sigma_b, seed=seed)
    c = covariance_comparison(pic, run)
    return {"d": int(xtr.shape[1]), "D": int(pic.D), "rank_C": int(pic.C_rank),
            "eps_star_over_limit": float(pic.eps_star / pic.stability_limit), "n_used": int(c["n_used"]),
            "n_diverged": int(c["n_diverged"]), "range_ratio": float(c["tr_emp_range"] / c["tr_lyap_discrete_range"]),
            "null_vs_laplace": float(c["tr_emp_null"] / c["tr_laplace_null"]), "drift": float(c["drift"])}


def boolean_system(target: str, n_train: int, *, mask: str = "", seed: int = 0):
    """The chapter's Boolean split (n = 7, all 128 inputs): ``target`` a '0'/'1' string tiled to 128 bits.

    With ``mask`` ("A", "B" or 128 bits with 32 ones) S is the authors' train set, the one chapter 1's page I uses
    (:func:`sgdbayes.data.boolean.mingard_split`), and ``n_train`` must be 32; with ``mask=""`` S is ``n_train``
    inputs drawn at random with ``seed`` (:func:`sgdbayes.data.boolean_split`). Returns a ``BooleanSplit``."""
    from sgdbayes.data.boolean import boolean_split, mingard_split

    if not isinstance(target, str) or not target or set(target) - {"0", "1"} or 128 % len(target):
        raise ValueError(f"target must be a '0'/'1' string whose length divides 128, got {target!r}")
    if mask == "":
        return boolean_split(target, n_train, seed=seed)
    problem = mask_problem(mask)
    if problem is not None:
        raise ValueError(f"mask must be '', 'A', 'B' or 128 '0'/'1' characters with 32 ones, got {problem}: {mask!r}")
    if n_train != 32:
        raise ValueError(f"with a train mask |S| is the mask's 32 inputs; got n_train = {n_train}")
    return mingard_split(target * (128 // len(target)), mask)


# --------------------------------------------------------------------------------------------------------------------
# the chapter's parameters (checked by `sgdbayes run/book` before any kernel starts)
# --------------------------------------------------------------------------------------------------------------------
PARAMETERS = Spec(
    profile=Choice("smoke", "default", "paper"), device=Choice("auto", "cpu", "cuda"), seed=Int(min=0),
    bool_target=Str(), bool_n_train=Int(min=2, max=127), bool_split_seed=Int(min=0), bool_mask=Str(),
    hidden=List(Int(min=1), min_len=1), sigma_w=Float(gt=0), sigma_b=Float(gt=0),
    grid_lrs=List(Float(gt=0), min_len=1), grid_batches=List(Int(min=1), min_len=1),
    grid_networks=Int(min=1), grid_max_epochs=Int(min=1), grid_max_steps=Int(min=1),
    stop_rules=List(Choice("clean", "keras"), min_len=1),
    min_count=Int(min=1), prior_samples=Int(min=1),
    mcmc_tau=Float(gt=0), mcmc_tau_start=Float(gt=0), mcmc_chains=Int(min=2), mcmc_warmup=Int(min=1),
    mcmc_draws=Int(min=4), mcmc_leapfrog=Int(min=1),
    local_lr=Float(gt=0), local_batch=Int(min=1), local_weight_decay=Float(gt=0),
    local_fractions=List(Float(gt=0), min_len=1), local_chains=Int(min=1), local_steps=Int(min=1),
    local_burn_in=Int(min=0), local_thin=Int(min=1), local_star_chains=Int(min=1), local_star_steps=Int(min=1),
    avg_networks=Int(min=1), avg_lr=Float(gt=0), avg_batch=Int(min=1), avg_epochs=Int(min=1),
    mnist_local_n_train=Int(min=2, max=4999), mnist_local_n_test=Int(min=1, max=4998),
    mnist_local_downsample=Int(min=1, max=28), mnist_local_hidden=List(Int(min=1), min_len=1),
    mnist_local_chains=Int(min=1),
    relations=[
        Rule(lambda p: 28 % p["mnist_local_downsample"] == 0, "mnist_local_downsample must divide 28"),
        Rule(lambda p: p["mnist_local_n_train"] + p["mnist_local_n_test"] <= 5000,
             "mnist_local_n_train + mnist_local_n_test <= 5000 (the shipped digits)"),
        Rule(lambda p: p["local_batch"] <= p["mnist_local_n_train"], "local_batch <= mnist_local_n_train"),
        Rule(lambda p: set(p["bool_target"]) <= {"0", "1"} and 0 < len(p["bool_target"]) and
             128 % len(p["bool_target"]) == 0, "bool_target must be a '0'/'1' string whose length divides 128"),
        Rule(lambda p: p["bool_mask"] == "" or mask_problem(p["bool_mask"]) is None,
             "bool_mask must be '' (a random S), 'A', 'B' or 128 '0'/'1' characters with 32 ones"),
        Rule(lambda p: p["bool_mask"] == "" or p["bool_n_train"] == 32,
             "with a bool_mask, bool_n_train must be 32 (the mask's size)"),
        Rule(lambda p: max(p["grid_batches"]) <= p["bool_n_train"], "every grid_batches entry <= bool_n_train"),
        Rule(lambda p: p["local_batch"] <= p["bool_n_train"] and p["avg_batch"] <= p["bool_n_train"],
             "local_batch and avg_batch <= bool_n_train"),
        Rule(lambda p: p["avg_lr"] in p["grid_lrs"] and p["avg_batch"] in p["grid_batches"],
             "(avg_lr, avg_batch) must be a setting of the grid (grid_lrs × grid_batches)"),
        Rule(lambda p: p["mcmc_tau"] <= p["mcmc_tau_start"], "mcmc_tau <= mcmc_tau_start"),
        Rule(lambda p: "clean" in p["stop_rules"], "stop_rules must include 'clean'"),
        Rule(lambda p: p["local_thin"] <= p["local_steps"], "local_thin <= local_steps"),
    ],
)


