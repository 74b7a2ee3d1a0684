# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Polyak averaging: why averaged SGD iterates are optimal, and the averaged SG sampler
#
# Constant-rate SGD does not converge: its iterates fluctuate around the optimum with a stationary covariance
# $\Sigma \propto \varepsilon/S$ (previous chapter). Averaging the iterates removes that dependence. This chapter
# follows Mandt, Hoffman & Blei (2017, §6): we prove, step by step, that the covariance of the average of $T$ iterates
# is $A^{-1}BB^\top A^{-\top}/(TS)$ — independent of the learning rate, the minibatch size and any preconditioner,
# a function of the number of examples processed $TS$ only — check every step on many simulated chains, show where
# the approximation breaks, turn the result into a sampler (IASG), and repeat the paper's §7.2 experiments.
#
# All computation lives in `sgdbayes.averaging`; the figures in `sgdbayes.plots.polyak_averaging`.

# %% tags=["parameters"]
profile = "default"
device = "auto"
seed = 0
# part 1: the 2-D quadratic model, vectorised OU chains
ou_chains = 2000            # chains per (ε, S) configuration
ou_TS = 2000                # examples processed T·S, the same for every configuration
ou_eps = [0.05, 0.3, 1.2]   # learning rates (stability limit 2/λ_max(A) ≈ 1.75)
ou_S = [1, 4, 16]           # minibatch sizes
ou_break_T = [1, 3, 10, 30, 100, 300, 1000]   # windows simulated for the breakdown figure
# part 3: §7.2 synthetic linear regression (paper: N = 10,000, D = 10, noise variance unstated; we use 1)
N = 2000
D = 10
fig3_eps = 0.025            # Fig. 3 (S is 1, window T is N): same ε·N as the paper's ε 0.005 at N 10,000
fig3_windows = 5            # windows per chain (paper: 100 windows of one chain, 10^6 iterations)
fig3_chains = 100           # independent chains (paper: 1)
iasg_S = 10                 # Figs. 4–5: minibatch size of IASG and SGLD
iasg_eps = 0.015            # same ε·N/S (3) as the paper's ε 0.003 at N 10,000
iasg_bounds = [0.1, 0.05]   # also run IASG at the ε that makes the bound (6) equal to each of these
burn_in_passes = 2          # passes discarded by IASG and SGLD before they estimate anything
sgld_a = 0.001              # SGLD steps a / (b + t)^γ (the paper's schedule)
sgld_b = 1000.0
sgld_gamma = 0.5
n_passes = 60               # passes through the data per IASG/SGLD chain, burn-in included (paper: ~1000)
n_chains = 50               # paper: 100
nuts_chains = 4             # paper: 100 (Pyro NUTS runs chains one after another)
nuts_warmup = 100
nuts_samples = 150

# %%
import time

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import scipy.linalg
import torch

from sgdbayes import averaging as av
from sgdbayes import cache, plots, results
from sgdbayes.device import get_device
from sgdbayes.ou.theory import lyapunov_covariance, stability_limit
from sgdbayes.plots import polyak_averaging as pplots
from sgdbayes.seed import spawn_seeds
from sgdbayes.widgets import polyak_averaging as pwidget

plots.book_style()
dev = get_device(device)
results.clear("polyak_averaging")
CH = "polyak_averaging"
t_start = time.time()
print(f"profile={profile}, device={dev}")

# %% [markdown]
# ## 1. The proof, checked step by step
#
# **Assumptions** (the paper's, named so we can see which one fails where):
# - **(A1) quadratic loss** near the optimum: $L(\theta) = \tfrac12 \theta^\top A\theta$, $A$ symmetric positive definite
#   (optimum shifted to 0);
# - **(A2) Gaussian, state-independent gradient noise**: $\hat g_S(\theta) = A\theta + S^{-1/2}B\xi$,
#   $\xi\sim\mathcal N(0,I)$, $C = BB^\top$ constant;
# - **(A3) small steps**: the discrete recursion is replaced by its continuous-time (Ornstein–Uhlenbeck) limit;
# - **(A4) stationarity**: the chain has forgotten its start before averaging begins;
# - **(A5) long windows**: $T \gg 1/(\varepsilon\lambda_{\min}(A))$, the autocorrelation time.
#
# We use a 2-D model whose noise $C$ is *not* proportional to $A$ (a misspecified model), so nothing cancels by
# accident. The chains below satisfy (A1)–(A2) exactly and start from their exact stationary law (A4), so any
# deviation comes from (A3) and (A5). Each configuration runs `ou_chains` independent chains; a covariance entry of
# $n$ Gaussian draws has standard error $\sqrt{(\Sigma_{ij}^2 + \Sigma_{ii}\Sigma_{jj})/(n-1)}$.

# %%
A = np.array([[1.0, 0.3], [0.3, 0.5]])
C = np.array([[1.0, -0.2], [-0.2, 0.6]])
limit = stability_limit(A)
print(f"λ(A) = {np.linalg.eigvalsh(A).round(4)}, stability limit 2/λ_max = {limit:.4f}")

def se_cov(cov, n):
    return np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / (n - 1))

def run_grid():
    out = {}
    seeds = iter(spawn_seeds(seed, 64))
    configs = [(e, s, None) for e in ou_eps for s in ou_S] + [(ou_eps[1], ou_S[1], "diag")]
    for e, s, h in configs:
        H = np.array([2.0, 0.5]) if h == "diag" else None
        T = max(1, ou_TS // s)
        r = av.simulate_ou_average(A, C, eps=e, T=T, S=s, H=H, n_chains=ou_chains, lag=min(5, T - 1),
                                   seed=next(seeds), device=dev)
        out[(e, s, h)] = dict(T=T, avg=r.cov("means"), raw=r.cov("last"), lag=r.lag_cov(), lagk=r.lag)
    return out

grid = cache.cached("ch4_ou_grid", dict(A=A, C=C, eps=ou_eps, S=ou_S, TS=ou_TS, n=ou_chains, seed=seed), run_grid)

# %% [markdown]
# ### Step 1 — SGD near the optimum is a linear recursion, and its stationary covariance solves a Lyapunov equation
#
# Under (A1)–(A2), with preconditioner $H$ (symmetric positive definite; $H=I$ is plain SGD),
# $$
# \theta_{t+1} = \theta_t - \varepsilon H\hat g_S(\theta_t) = (I - \varepsilon HA)\,\theta_t - \frac{\varepsilon}{\sqrt S} HB\xi_t .
# $$
# It is stable iff $\varepsilon < 2/\lambda_{\max}(HA)$. Under (A3) it is the OU process
# $d\theta = -\varepsilon A'\theta\,dt + \frac{\varepsilon}{\sqrt S}HB\,dW$ with $A' = HA$ (time in iterations), whose
# stationary covariance solves
# $$
# A'\Sigma + \Sigma A'^\top = \frac{\varepsilon}{S}\, H C H^\top . \tag{1}
# $$
# So $\Sigma \propto \varepsilon/S$. **Check:** the raw iterates' covariance against (1) (continuous) and the exact
# discrete-time Lyapunov solution, for every $(\varepsilon, S)$.

# %%
rows = []
for (e, s, h), g in grid.items():
    H = np.array([2.0, 0.5]) if h == "diag" else None
    cont = lyapunov_covariance(A, C, eps=e, S=s, H=H)
    disc = lyapunov_covariance(A, C, eps=e, S=s, H=H, discrete=True)
    z = np.abs(g["raw"] - disc) / se_cov(disc, ou_chains)
    rows.append(dict(eps=e, S=s, H=h or "I", tr_raw=np.trace(g["raw"]), tr_lyap=np.trace(cont),
                     tr_discrete=np.trace(disc), rel_err_vs_lyap=av.relative_error(g["raw"], cont),
                     max_z_vs_discrete=z.max()))
step1 = pd.DataFrame(rows)
step1.round(5)

# %% [markdown]
# The raw covariance matches the exact discrete solution within Monte-Carlo error (|z| small) for every configuration;
# the continuous Lyapunov solution (1) is accurate at small $\varepsilon$ and off by a relative $O(\varepsilon\lambda)$
# at large $\varepsilon$ — the first place where (A3) shows. Across configurations $\operatorname{tr}\Sigma$ spans
# orders of magnitude ($\propto \varepsilon/S$).
#
# ### Step 2 — the autocovariance decays as $e^{-\varepsilon A' k}$
#
# In the stationary OU process $\operatorname{Cov}(\theta_{t+k}, \theta_t) = e^{-\varepsilon A' k}\Sigma$
# (discrete: $(I-\varepsilon A')^k\Sigma_d$ exactly). **Check** at lag $k$:

# %%
rows = []
for (e, s, h), g in grid.items():
    H = np.array([2.0, 0.5]) if h == "diag" else None
    Ap = (np.diag(H) if H is not None else np.eye(2)) @ A
    k = g["lagk"]
    disc = lyapunov_covariance(A, C, eps=e, S=s, H=H, discrete=True)
    want_d = np.linalg.matrix_power(np.eye(2) - e * Ap, k) @ disc
    want_c = scipy.linalg.expm(-e * Ap * k) @ lyapunov_covariance(A, C, eps=e, S=s, H=H)
    se = np.sqrt((np.outer(np.diag(disc), np.diag(disc)) + want_d**2) / ou_chains)
    rows.append(dict(eps=e, S=s, H=h or "I", lag=k, max_z_vs_exact=(np.abs(g["lag"] - want_d) / se).max(),
                     rel_err_vs_OU=av.relative_error(g["lag"], want_c)))
pd.DataFrame(rows).round(4)

# %% [markdown]
# ### Step 3 — the covariance of the average is a double integral of the autocovariance
#
# For $\mu_T = \frac1T\int_0^T \theta(t)\,dt$ (discrete: $\frac1T\sum_{t=1}^T\theta_t$),
# $$
# \operatorname{Cov}(\mu_T) = \frac{1}{T^2}\int_0^T\!\!\int_0^T \operatorname{Cov}(\theta(t),\theta(s))\,ds\,dt
#   = \frac{1}{T^2}\left(G\Sigma + \Sigma G^\top\right),\quad
#   G = \int_0^T (T-\tau)e^{-\varepsilon A'\tau}d\tau = \frac{T}{\varepsilon}A'^{-1} - \frac{1}{\varepsilon^2}A'^{-2}\left(I - e^{-\varepsilon A' T}\right). \tag{2}
# $$
# The discrete analogue is exact: with $M = I - \varepsilon A'$ and $F = \sum_{k=1}^{T-1}(T-k)M^k = T(I-M)^{-1} - M(I-M^T)(I-M)^{-2} - TI$,
# $\operatorname{Cov}(\mu_T) = \frac{1}{T^2}(T\Sigma_d + F\Sigma_d + \Sigma_d F^\top)$ (`averaged_covariance_exact`;
# tested against the naive double sum). **Check:** the closed forms against the naive double sum
# $\frac{1}{T^2}\sum_{t,s}\operatorname{Cov}(\theta_t,\theta_s)$ for a short window, and the continuous form (2)
# against the exact discrete one at fixed $\varepsilon T$ (their difference, the error of (A3), vanishes in proportion
# to $\varepsilon$):

# %%
e3, T3 = 0.3, 12
Sd3 = lyapunov_covariance(A, C, eps=e3, discrete=True)
M3 = np.eye(2) - e3 * A
naive = sum(np.linalg.matrix_power(M3, t - u) @ Sd3 if t >= u else Sd3 @ np.linalg.matrix_power(M3, u - t).T
            for t in range(T3) for u in range(T3)) / T3**2
print(f"‖exact closed form − naive double sum‖/‖·‖ = "
      f"{av.relative_error(av.averaged_covariance_exact(A, C, eps=e3, T=T3), naive):.1e}  (T={T3}, ε={e3})")
for e in [0.3, 0.03, 0.003]:
    T = int(30 / e)
    print(f"ε={e:<6g} T={T:<6d} ‖OU form (2) − exact discrete‖/‖·‖ = "
          f"{av.relative_error(av.averaged_covariance_ou(A, C, eps=e, T=T), av.averaged_covariance_exact(A, C, eps=e, T=T)):.1e}")

# %% [markdown]
# ### Step 4 — for long windows only the first term survives (A5)
#
# When $\varepsilon\lambda_{\min}(A')T \gg 1$ the second term of $G$ is smaller by that factor, leaving
# $$
# \operatorname{Cov}(\mu_T) \approx \frac{1}{\varepsilon T}\left(A'^{-1}\Sigma + \Sigma A'^{-\top}\right). \tag{3}
# $$
# **Check:** the relative size of the dropped term, $\|(2) - (3)\|/\|(3)\|$, against $1/(\varepsilon T\lambda_{\min})$:

# %%
rows = []
for x in [1, 3, 10, 30, 100]:
    e = 0.1
    T = int(np.ceil(x / (e * np.linalg.eigvalsh(A)[0])))
    full, lead = av.averaged_covariance_ou(A, C, eps=e, T=T), av.averaged_covariance_ou(A, C, eps=e, T=T, leading=True)
    rows.append(dict(eps_T_lam_min=e * T * np.linalg.eigvalsh(A)[0], dropped_term=av.relative_error(full, lead),
                     one_over_eps_T_lam_min=1 / (e * T * np.linalg.eigvalsh(A)[0])))
pd.DataFrame(rows).round(4)

# %% [markdown]
# ### Step 5 — substitute the Lyapunov equation
#
# Multiply (1) by $A'^{-1}$ on the left and $A'^{-\top}$ on the right:
# $\Sigma A'^{-\top} + A'^{-1}\Sigma = \frac{\varepsilon}{S}A'^{-1}HCH^\top A'^{-\top} = \frac{\varepsilon}{S}A^{-1}CA^{-\top}$
# (since $A'^{-1}H = A^{-1}$). Into (3):
# $$
# \boxed{\operatorname{Cov}(\mu_T) \approx \frac{A^{-1}BB^\top A^{-\top}}{TS}} \tag{4}
# $$
# $\varepsilon$ and $H$ cancel, and $S$ enters only through $TS$. **Check** (Steps 3–5 together): every configuration
# processes the same $TS$ examples, so $TS\cdot\operatorname{Cov}(\mu_T)$ should be the same matrix $A^{-1}CA^{-\top}$
# for all of them, even though the raw covariances differ by orders of magnitude.

# %%
theory_TS = av.averaged_covariance_theory(A, C, T=1, S=1)      # A⁻¹CA⁻ᵀ
rows, scal, errs = [], [], []
for (e, s, h), g in grid.items():
    H = np.array([2.0, 0.5]) if h == "diag" else None
    T = g["T"]
    exact = av.averaged_covariance_exact(A, C, eps=e, T=T, S=s, H=H)
    lab = f"ε={e:g}, S={s}" + (", H=diag" if h else "")
    se = se_cov(exact, ou_chains) * T * s
    for (i, j), name in [((0, 0), "(1,1)"), ((0, 1), "(1,2)"), ((1, 1), "(2,2)")]:
        rows.append(dict(config=lab, entry=name, measured=g["avg"][i, j] * T * s, se=se[i, j],
                         exact=exact[i, j] * T * s, theory=theory_TS[i, j]))
    err = av.relative_error(g["avg"] * T * s, theory_TS)
    lam_min = np.linalg.eigvals((np.diag(H) if H is not None else np.eye(2)) @ A).real.min()
    errs.append(dict(config=lab, T=T, eps_T_lam_min=e * T * lam_min, rel_err_measured=err,
                     rel_err_exact=av.relative_error(exact * T * s, theory_TS),
                     mc_rel_se=np.linalg.norm(se) / np.linalg.norm(theory_TS),
                     max_z_vs_exact=float((np.abs(g["avg"] - exact) * T * s / se).max())))
    scal += [dict(config=lab, kind="raw iterates Σ", value=np.trace(g["raw"])),
             dict(config=lab, kind="average μ_T", value=np.trace(g["avg"]))]
indep = pd.DataFrame(rows)
fig = pplots.plot_independence(indep)
plt.show()
errs = pd.DataFrame(errs)
errs.round(4)

# %% [markdown]
# The blue points ($TS\cdot$ measured covariance, ±2 standard errors) sit on the dashed line $A^{-1}CA^{-\top}$ for
# every learning rate, minibatch size and the preconditioned run; the crosses are the exact finite-$T$ values.
# The chains agree with the exact finite-$T$ values within Monte-Carlo error (`max_z_vs_exact`, in standard errors).
# The differences from the dashed line are the second term of (2), which Step 4 dropped: relative size
# $\approx 2/(\varepsilon T\lambda_{\min})$. When $\varepsilon T\lambda_{\min}$ is small ((A5) fails: the
# smallest $\varepsilon$ with the largest $S$, so the fewest iterations) that term is visible; otherwise only
# Monte-Carlo error (`mc_rel_se`) is left. Meanwhile the raw iterates' covariance varies with $\varepsilon/S$:

# %%
fig = pplots.plot_scaling(pd.DataFrame(scal))
plt.show()
long = errs[errs["eps_T_lam_min"] >= 30]
worst = float(long["rel_err_measured"].max()) if len(long) else float("nan")
results.record(CH, "ou_avg_cov_rel_error_max", worst, profile=profile,
               paper="Cov(μ_T) ≈ A⁻¹BBᵀA⁻ᵀ/(TS), independent of ε, S and H (§6, text)",
               description=f"max over the {len(long)} of {len(errs)} (ε, S, H) configs with εTλ_min ≥ 30 (assumption "
                           f"A5; dropped finite-T term ≲ 2/(εTλ_min) ≤ 0.07) of ‖TS·Cov(μ_T) − A⁻¹CA⁻ᵀ‖_F/‖A⁻¹CA⁻ᵀ‖_F, TS={ou_TS}, {ou_chains} chains each; "
                           f"Monte-Carlo error alone ≈ {long['mc_rel_se'].max() if len(long) else float('nan'):.3f}")
results.record(CH, "ou_avg_cov_max_z_vs_exact", float(errs["max_z_vs_exact"].max()), profile=profile,
               paper="(no paper number: the exact finite-T discrete-time covariance is this book's)",
               description=f"largest |measured − exact| / standard error over all {len(errs)} configs and 3 matrix "
                           f"entries (≈ 2.5–3 expected for {3 * len(errs)} Gaussian z-scores)")
print(f"configs with εTλ_min ≥ 30: worst relative error {worst:.3f} (Monte-Carlo error ≈ "
      f"{long['mc_rel_se'].max() if len(long) else float('nan'):.3f}); all configs: max |z| vs exact "
      f"{errs['max_z_vs_exact'].max():.2f}")

# %% [markdown]
# ### Step 6 — why this is optimal
#
# $A^{-1}CA^{-\top}/n$ is the asymptotic covariance of the empirical-risk minimiser (an M-estimator) computed from $n$
# fresh examples, and when the model is well specified ($C = A$, the Fisher information) it is $A^{-1}/n$, the
# Cramér–Rao bound for any unbiased estimator from $n$ examples. The average of $T$ SGD iterates has used $n=TS$
# examples and attains that covariance: no learning rate, minibatch size or preconditioner can do better, and none
# does worse (to leading order). This is Polyak & Juditsky's (1992) theorem, here in its OU form.
#
# ### Where the approximation breaks
#
# Two assumptions can fail: (A5) small $T$ — the average of few correlated iterates still carries $\Sigma\propto\varepsilon/S$;
# and (A3) large $\varepsilon$ — near the stability limit $2/\lambda_{\max}$ the recursion oscillates
# ($M$ has an eigenvalue near $-1$), $\Sigma_d$ blows up, and an odd number of iterates leaves one oscillation
# unpaired. The exact discrete formula captures both; the figure shows its relative error against (4) over $T$ for
# several $\varepsilon$, with simulated chains as points. (Interestingly, in discrete time $T\cdot\operatorname{Cov}(\mu_T)\to A^{-1}CA^{-\top}/S$
# *exactly* as $T\to\infty$ for every stable $\varepsilon$: the $O(\varepsilon)$ error of (1) cancels in the average.)

# %%
T_grid = np.unique(np.logspace(0, 4, 60).astype(int))
fracs = [0.02, 0.2, 0.9, 0.995]
def run_break():
    pts = {}
    seeds = iter(spawn_seeds(seed + 1, 64))
    for f in fracs:
        e = f * limit
        pts[f] = [(T, av.relative_error(av.simulate_ou_average(A, C, eps=e, T=T, n_chains=ou_chains, seed=next(seeds),
                                                                device=dev).cov(), av.averaged_covariance_theory(A, C, T=T)))
                  for T in ou_break_T]
    return pts
bpts = cache.cached("ch4_ou_break", dict(A=A, C=C, f=fracs, T=ou_break_T, n=ou_chains, seed=seed), run_break)
curves, points = {}, {}
for f in fracs:
    e = f * limit
    lab = f"ε = {f:g} × 2/λ_max"
    curves[lab] = [av.relative_error(av.averaged_covariance_exact(A, C, eps=e, T=int(T)), av.averaged_covariance_theory(A, C, T=int(T))) for T in T_grid]
    points[lab] = tuple(np.array(bpts[f]).T)
fig = pplots.plot_breakdown(T_grid, curves, points, mc_floor=np.sqrt(3.0 / ou_chains))
plt.show()

# %% [markdown]
# Small $\varepsilon$ needs $T \gtrsim 10/(\varepsilon\lambda_{\min})$ iterations before (4) is within 10 %; moderate
# $\varepsilon$ reaches it quickly; right at the stability limit odd windows keep a large error (the saw-tooth) until
# $T$ is very large. Points (simulations) follow the exact lines down to their own Monte-Carlo error (dotted, $\approx\sqrt{3/n}$ for
$n$ chains).
#
# **Explore:** the widget draws the raw and averaged covariance ellipses for any $(\varepsilon, S, T)$; below first its
# default view.

# %%
static, explorer = pwidget.explorer(A, C, eps=0.2, S=4, T=250)
plt.show(static)
explorer

# %% [markdown]
# ## 2. The averaged stochastic gradient sampler (IASG)
#
# Take a **well-specified** model, $C = BB^\top = A$ (**A6**: the covariance of per-example gradients equals the
# Hessian, true at the optimum of a correctly specified likelihood). Then (1) with $H = I$ gives
# $\Sigma = \frac{\varepsilon}{2S}I$, and (2) with $A = U\Lambda U^\top$ evaluates to
# $$
# \operatorname{Cov}(\mu_T) = \frac{A^{-1}}{ST} + \frac{1}{\varepsilon S T^2}\,U\Lambda^{-2}\left(e^{-\varepsilon T\Lambda} - I\right)U^\top . \tag{5}
# $$
# The posterior of $N$ examples is $\mathcal N(\theta^*, A^{-1}/N)$ (Laplace/Bernstein–von Mises, exact here), so the
# window **$T = N/S$** (one pass through the data) makes the first term exactly the posterior covariance. The second
# term is negative: along eigen-direction $k$ the window variance is $(1 - r_k)/(N\lambda_k)$ with
# $$
# r_k = \frac{1 - e^{-x_k}}{x_k},\qquad x_k = \varepsilon T\lambda_k = \frac{\varepsilon N\lambda_k}{S},\qquad
# 0 \le r_k \le \min\!\left(1, \frac{1}{\varepsilon T\lambda_{\min}}\right). \tag{6}
# $$
# So IASG **underestimates** the posterior variance, by the relative amount $r(x)$, worst along $\lambda_{\min}$; the
# bias is set by $x = \varepsilon N\lambda/S$, not by $\varepsilon$ alone. **Algorithm 1 (IASG):** run constant SGD;
# output the mean of each window of $T = N/S$ iterates as one sample (`av.iasg_sample`, vectorised over chains;
# (5) is `av.iasg_window_covariance`, (6) `av.iasg_relative_error`).
#
# **Check of (5)–(6)** on the 2-D model made well specified ($C = A$), $S = 10$, $T = 100$, for learning rates that put
# $x_{\min} = \varepsilon T\lambda_{\min}$ at 1, 3, 10 and 30: the measured relative shortfall of the window variance
# along $\lambda_{\min}$ against $r(x_{\min})$ and against the bound.

# %%
S_w, T_w = 10, 100
lam_toy = np.linalg.eigvalsh(A)
def run_window_check():
    rows = []
    for x, sd in zip([1.0, 3.0, 10.0, 30.0], spawn_seeds(seed + 2, 4)):
        e = x / (T_w * lam_toy[0])
        r = av.simulate_ou_average(A, A, eps=e, T=T_w, S=S_w, n_chains=ou_chains, seed=sd, device=dev)
        rows.append(dict(x_min=x, eps=e, cov=r.cov()))
    return rows
U_toy = np.linalg.eigh(A)[1][:, 0]
rows = []
for row in cache.cached("ch4_window_check", dict(A=A, n=ou_chains, seed=seed, S=S_w, T=T_w), run_window_check):
    e = row["eps"]
    target = U_toy @ np.linalg.inv(A) @ U_toy / (S_w * T_w)
    measured = 1 - U_toy @ row["cov"] @ U_toy / target
    formula5 = 1 - U_toy @ av.iasg_window_covariance(A, eps=e, T=T_w, S=S_w) @ U_toy / target
    exact = 1 - U_toy @ av.averaged_covariance_exact(A, A, eps=e, T=T_w, S=S_w) @ U_toy / target
    r_pred, bound = av.iasg_relative_error(A, eps=e, T=T_w)
    rows.append(dict(x_min=row["x_min"], eps=e, shortfall_measured=measured, mc_se=np.sqrt(2 / (ou_chains - 1)) * (1 - r_pred),
                     formula_5=formula5, r_eq6=r_pred, exact_discrete=exact, bound_eq6=bound))
pd.DataFrame(rows).round(4)

# %% [markdown]
# The measured shortfall agrees with $r(x)$ of (6) within Monte-Carlo error (`mc_se`) and never exceeds the bound; the
# exact discrete-time value differs from the OU formula by $O(\varepsilon\lambda)$. A window of one pass is a good
# posterior sample only when $x = \varepsilon N\lambda_{\min}/S \gg 1$: for a 10 % bias one needs $x \approx 10$.
#
# ## 3. The paper's §7.2 experiments: synthetic linear regression
#
# $x\sim\mathcal N(0, I_D)$, $w\sim\mathcal N(0, I)$ (prior precision 1), $y = x^\top w + \mathcal N(0,\sigma^2)$, with
# the exact Gaussian posterior as ground truth. **The paper does not state the noise variance $\sigma^2$; we assume
# $\sigma^2 = 1$** (the model's own likelihood, so it is well specified, A6). Then $A = (X^\top X/\sigma^2 + I)/N
# \approx I/\sigma^2$, all $\lambda \approx 1$, and the bias (6) of the paper's IASG setting follows:

# %%
prob = av.make_linear_regression(N, D, seed=seed, device=dev)
Ah, Ch = prob.hessian, prob.gradient_noise_covariance()
post_cov = prob.posterior_cov.cpu().numpy()
post_var = np.diag(post_cov)
lam = np.linalg.eigvalsh(Ah)
print(f"this run: N={N}, D={D}: λ(A) in [{lam[0]:.3f}, {lam[-1]:.3f}], ‖C − A‖/‖A‖ = {av.relative_error(Ch, Ah):.3f} "
      "(well specified up to sampling noise)")
lam_paper = np.linalg.eigvalsh(av.make_linear_regression(10_000, D, seed=seed, device="cpu").hessian)[0]
r_at_paper, b_at_paper = av.iasg_relative_error(np.diag([lam_paper, 1.0]), eps=0.003, T=10_000 // 10)
print(f"the paper's own setting (N=10,000, S=10, T=1000, ε=0.003, σ²=1): x_min = {0.003 * 1000 * lam_paper:.2f}, "
      f"predicted variance shortfall r = {r_at_paper:.3f} (bound {b_at_paper:.3f})")
print("the same ε with σ² = 0.1 (λ ≈ 10) would give x ≈ 30 and r ≈ 3 %: the paper's claim needs σ² ≲ 0.1 or a larger ε")
results.record(CH, "iasg_variance_shortfall_paper_setting", r_at_paper, profile=profile,
               paper="window T = N/S gives ≈ A⁻¹/N, the posterior (§6, text); IASG matches NUTS (Figs. 4–5)",
               description="(1−e^{−x})/x at x = εTλ_min for the paper's IASG (N=10,000, S=10, T=1000, ε=0.003), "
                           "assuming noise variance σ²=1 (unstated in the paper): predicted relative underestimate "
                           "of the posterior variance along λ_min")
T_iasg = N // iasg_S
eps_runs = {f"IASG ε={iasg_eps:g} (paper's εN/S)": iasg_eps}
for bnd in iasg_bounds:
    e = 1.0 / (bnd * T_iasg * lam[0])
    eps_runs[f"IASG ε={e:.3g} (bound {bnd:.0%})"] = e
rows = []
for lab, e in eps_runs.items():
    r_, b_ = av.iasg_relative_error(Ah, eps=e, T=T_iasg)
    rows.append(dict(run=lab, eps=e, x_min=e * T_iasg * lam[0], r_eq6=r_, bound=b_, raw_over_posterior=e * N / (2 * iasg_S)))
pd.DataFrame(rows).round(4)

# %% [markdown]
# The default profile has $N$ smaller than the paper's, so we keep the paper's $\varepsilon N/S$ (which sets $x$ and
# hence the bias) rather than its $\varepsilon$; at the paper profile the run *is* $\varepsilon = 0.003$. We also run
# IASG at learning rates chosen so that the bound (6) is 10 % and 5 %.
#
# **Fig. 3:** constant SGD with $S = 1$, averaged over windows of $T = N$ iterates, against the posterior and the raw
# iterates, projected on the posterior's smallest- and largest-variance principal directions (again at the paper's
# $\varepsilon N$: $\varepsilon = 0.005$ at $N = 10^4$).

# %%
r_fig3, b_fig3 = av.iasg_relative_error(Ah, eps=fig3_eps, T=N)
def run_fig3():
    r = av.iasg_sample(prob, eps=fig3_eps, S=1, T=N, n_samples=fig3_windows, n_chains=fig3_chains, init="map",
                       burn_in=int(5 / (fig3_eps * lam[0])), raw_every=max(1, N // 20), seed=seed + 3)
    return dict(samples=r.samples.cpu(), raw=r.raw.cpu(), raw_cov=r.raw_cov)
f3 = cache.cached("ch4_fig3", dict(N=N, D=D, eps=fig3_eps, w=fig3_windows, c=fig3_chains, seed=seed), run_fig3)
avg = f3["samples"].reshape(-1, D).numpy()
avg_cov = np.cov(avg.T)
pl, U = np.linalg.eigh(post_cov)
P = U[:, [0, -1]]                               # smallest and largest posterior principal directions
mu = prob.posterior_mean.cpu().numpy()
proj = lambda X: (X - mu) @ P
covs = {"exact posterior": P.T @ post_cov @ P, "window averages": P.T @ avg_cov @ P,
        "raw SGD iterates": P.T @ f3["raw_cov"] @ P}
fig = pplots.plot_fig3(proj(f3["raw"].reshape(-1, D).numpy()), proj(avg), covs, unit=" (w units)")
plt.show()
err_avg = av.relative_error(avg_cov, post_cov)
pred_avg = av.averaged_covariance_exact(Ah, Ch, eps=fig3_eps, T=N, S=1,
                                        Sigma=av.linreg_sgd_covariance(prob, eps=fig3_eps, S=1))
err_pred = av.relative_error(pred_avg, post_cov)
ratio_raw = np.trace(f3["raw_cov"]) / np.trace(post_cov)
ratio_raw_exact = np.trace(av.linreg_sgd_covariance(prob, eps=fig3_eps, S=1)) / np.trace(post_cov)
n_avg = avg.shape[0]
print(f"‖Cov(window means) − posterior‖/‖posterior‖ = {err_avg:.3f} from {n_avg} window means "
      f"(MC error ≈ √((D+1)/n) = {np.sqrt((D + 1) / n_avg):.3f}; window bias (6) alone ≤ {r_fig3:.3f}; exact prediction "
      f"with state-dependent noise {err_pred:.3f}; measured vs that prediction "
      f"{av.relative_error(avg_cov, pred_avg):.3f}); "
      f"raw SGD covariance / posterior (trace) = {ratio_raw:.1f} (constant-noise theory εN/(2S) = {fig3_eps * N / 2:.1f}, "
      f"exact with state-dependent noise {ratio_raw_exact:.1f})")
results.record(CH, "fig3_avg_cov_rel_error", err_avg, profile=profile,
               paper="averaged-iterate covariance ≈ posterior covariance (Fig. 3, visual)",
               description=f"‖Cov(window means) − posterior‖_F/‖posterior‖_F, ε={fig3_eps}, S=1, T=N={N}, {n_avg} "
                           f"means (Monte-Carlo error ≈ {np.sqrt((D + 1) / n_avg):.2f}; predicted {err_pred:.3f}: "
                           f"window bias ≤ {r_fig3:.3f} plus state-dependent gradient noise)")
results.record(CH, "fig3_raw_over_posterior_trace", ratio_raw, profile=profile,
               paper="raw SGD covariance differs from the posterior (Fig. 3, visual)",
               description=f"tr Cov(raw SGD iterates) / tr posterior covariance; theory εN/(2S) = {fig3_eps * N / 2:.1f} "
                           f"(constant noise), {ratio_raw_exact:.1f} (exact, state-dependent noise)")

# %% [markdown]
# The raw iterates spread $\approx\varepsilon N/(2S)$ times wider than the posterior; the window averages shrink onto
# the posterior ellipse. The raw spread is a little wider than $\varepsilon N/(2S)$ because assumption (A2) is only
# approximate here: the minibatch gradient of linear regression is $A\delta + (\hat A - A)\delta + \xi$, and the
# *multiplicative* term $(\hat A - A)\delta$, $\delta = \theta - \theta^*$, adds noise that grows with the spread
# itself. For linear regression with minibatches drawn with replacement the second moment still closes exactly,
# $\Sigma = M\Sigma M^\top + \frac{\varepsilon^2}{S}\big(C + \overline{a_n\Sigma a_n} - \bar A\Sigma\bar A\big)$ with
# $a_n = x_nx_n^\top/\sigma^2$ (`av.linreg_sgd_covariance`, tested against simulation), a relative excess of
# about $\varepsilon D/(2S)$ for $x\sim\mathcal N(0,I)$. It also makes SGD *mean-square* unstable well below the
# OU stability limit $2/\lambda_{\max}$ when $\varepsilon D/S$ is of order one — a second place where the
# approximation breaks. Since $E[\theta_{t+k}\mid\theta_t] = M^k\theta_t$ still holds, the averaging formulas (2)
# stay exact with this $\Sigma$ in place of $\Sigma_d$; we use it for the theory lines below.
#
# **Figs. 4–5.** Samplers, all with $S = 10$, compared by their estimate of the marginal variance of the coordinates
# with the smallest and largest posterior variance, as a function of passes through the data:
# - **IASG** ($T = N/S$) at the paper's $\varepsilon N/S$ and at the bound-chosen $\varepsilon$: each chain's sample
#   variance of its window means so far;
# - **SGLD** with the paper's decreasing steps $\varepsilon_t = 10^{-3}/\sqrt{1000+t}$: each chain's variance of all
#   its iterates so far;
# - **NUTS** (Pyro, step size and diagonal mass matrix adapted in warm-up): each chain's variance of its draws so
#   far; every gradient of the full log posterior counts as one pass, warm-up included.
#
# **Burn-in.** Algorithm 1 as printed starts averaging at once; from a random start (a draw of the prior, ~50
# posterior standard deviations away) the transient then stays in every later variance estimate and IASG never
# converges. We discard the first `burn_in_passes` passes of IASG and SGLD (they still count on the x-axis); the
# transient left after $b$ passes is $e^{-\varepsilon (N/S)\lambda_{\min} b}$ of the initial distance:

# %%
dist0 = float(np.sqrt(np.mean(1.0 + mu**2) / np.mean(post_var)))   # prior draw → posterior mean, in posterior sds
for lab, e in eps_runs.items():
    left = np.exp(-e * T_iasg * lam[0] * burn_in_passes)
    print(f"{lab}: after {burn_in_passes} passes the transient is {left:.1e} of the start "
          f"(≈ {left * dist0:.2g} posterior sd from a random start)")
sgld_eps = av.sgld_steps(burn_in_passes * T_iasg, a=sgld_a, b=sgld_b, gamma=sgld_gamma)
print(f"SGLD: relaxation rate ε_t Nλ_min/2 ≥ {sgld_eps[-1] * N * lam[0] / 2:.3f} per step over "
      f"{burn_in_passes * T_iasg} burn-in steps")

# %%
coords = {"smallest": int(np.argmin(post_var)), "largest": int(np.argmax(post_var))}
cidx = list(coords.values())
def run_samplers(init):
    s = spawn_seeds(seed + (0 if init == "map" else 100), len(eps_runs) + 2)
    out = {}
    for (lab, e), sd in zip(eps_runs.items(), s):
        r = av.iasg_sample(prob, eps=e, S=iasg_S, n_samples=n_passes - burn_in_passes, n_chains=n_chains, init=init,
                           burn_in=burn_in_passes * T_iasg, seed=sd)
        out[lab] = av.iasg_variance_trace(r, N)
    out["SGLD ε_t = a/√(b+t)"] = av.sgld_sample(prob, S=iasg_S, n_passes=n_passes, a=sgld_a, b=sgld_b,
                                                gamma=sgld_gamma, burn_in_passes=burn_in_passes, n_chains=n_chains,
                                                init=init, seed=s[-2])
    out["NUTS (Pyro)"] = av.nuts_sample(prob, n_samples=nuts_samples, warmup=nuts_warmup, n_chains=nuts_chains,
                                        init=init, seed=s[-1])
    return out
params = dict(N=N, D=D, S=iasg_S, eps=list(eps_runs.values()), sgld=[sgld_a, sgld_b, sgld_gamma], p=n_passes,
              b=burn_in_passes, c=n_chains, nuts=[nuts_chains, nuts_warmup, nuts_samples], seed=seed)
t0 = time.time()
traces = {init: cache.cached(f"ch4_samplers_{init}", dict(params, init=init), lambda: run_samplers(init))
          for init in ("map", "random")}
print(f"samplers: {time.time() - t0:.1f} s")

# theory for each trace: IASG — E[s²_m] of m correlated stationary windows (exact: discrete time, state-dependent
# noise); SGLD — quasi-static running variance Σ_0 + mean(ε_t) E over the iterates kept so far
pred = {}
for lab, e in eps_runs.items():
    tr = traces["map"][lab]
    Es = av.expected_window_variance(Ah, Ch, eps=e, T=T_iasg, S=iasg_S, m=np.arange(2, tr.var.shape[0] + 2),
                                     Sigma=av.linreg_sgd_covariance(prob, eps=e, S=iasg_S))
    pred[lab] = (tr.passes, Es[:, cidx, cidx] / post_var[cidx])
S0, E_sgld = av.sgld_covariance_parts(Ah, Ch, N=N, S=iasg_S)
steps_all = av.sgld_steps(n_passes * T_iasg, a=sgld_a, b=sgld_b, gamma=sgld_gamma)[burn_in_passes * T_iasg:]
mean_eps = (np.cumsum(steps_all) / np.arange(1, steps_all.size + 1))[T_iasg - 1::T_iasg]
lab_sgld = "SGLD ε_t = a/√(b+t)"
pred[lab_sgld] = (traces["map"][lab_sgld].passes,
                  (np.diag(S0)[cidx] + mean_eps[:, None] * np.diag(E_sgld)[cidx]) / post_var[cidx])
for init, fig_no in (("map", 4), ("random", 5)):
    fig = pplots.plot_variance_traces(traces[init], post_var, coords, predictions=pred,
                                      title=f"Fig. {fig_no}: chains started at {'the MAP' if init == 'map' else 'a prior draw'}")
    plt.show()

# %% [markdown]
# **Check of the theory lines.** For every run, the chain-averaged estimate over its last half against the dotted
# prediction, in units of its Monte-Carlo standard error (sd across chains / √chains; the estimates at successive
# passes are correlated, so |z| averaged over them is a rough guide, ≈ 0.8 if the theory is right):

# %%
rows = []
for init, tr_all in traces.items():
    for lab, (p, r) in pred.items():
        v = tr_all[lab].var[:, :, cidx] / post_var[cidx]
        half = slice(v.shape[0] // 2, None)
        se = v[half].std(1) / np.sqrt(v.shape[1])
        z = (v[half].mean(1) - r[half]) / se
        rows.append(dict(init=init, run=lab, final_measured_smallest=v[-1, :, 0].mean(),
                         final_theory_smallest=r[-1, 0], final_measured_largest=v[-1, :, 1].mean(),
                         final_theory_largest=r[-1, 1], mean_abs_z_last_half=np.abs(z).mean()))
theory_check = pd.DataFrame(rows)
for lab, tag in [(next(iter(eps_runs)), "iasg_paper_eps"), (lab_sgld, "sgld")]:
    row = theory_check[(theory_check["init"] == "map") & (theory_check["run"] == lab)].iloc[0]
    results.record(CH, f"{tag}_final_variance_ratio", float(row["final_measured_smallest"]), profile=profile,
                   paper="≈ 1 for IASG; SGLD slower to converge (Figs. 4–5, visual)",
                   description=f"{lab} from the MAP, after {n_passes} passes: chain-averaged estimate / exact posterior "
                               f"variance, smallest-variance coordinate; theory {row['final_theory_smallest']:.3f}")
theory_check.round(3)

# %% [markdown]
# The estimates follow the theory lines. SGLD's first points sit below its line for a different reason: a short run
# of correlated iterates underestimates a variance (relaxation time $2/(\varepsilon_t N\lambda) \approx 40$ steps
# against 200 steps per pass); the quasi-static line ignores that.
#
# **Where does IASG's shortfall come from?** Three candidates, separated for the smallest-variance coordinate
# (the run from the MAP): the window bias (6) with constant noise; the same with the exact, state-dependent
# noise (which *adds* variance); and the positive correlation of neighbouring windows
# (`av.expected_window_variance`: a running variance of $m$ windows is low by about $2\rho_1/m$, $\rho_1$ the
# lag-one correlation), at $m = 2$ and at the end of the run:

# %%
rows = []
for lab, e in eps_runs.items():
    M = traces["map"][lab].var.shape[0] + 1
    Sig = av.linreg_sgd_covariance(prob, eps=e, S=iasg_S)
    G = av.window_autocovariance(Ah, Ch, eps=e, T=T_iasg, S=iasg_S, max_lag=1, Sigma=Sig)
    G_const = av.window_autocovariance(Ah, Ch, eps=e, T=T_iasg, S=iasg_S, max_lag=0)
    Es = av.expected_window_variance(Ah, Ch, eps=e, T=T_iasg, S=iasg_S, m=[2, M], Sigma=Sig)
    c = cidx[0]
    rows.append(dict(run=lab, r_eq6=av.iasg_relative_error(Ah, eps=e, T=T_iasg)[0],
                     shortfall_const_noise=1 - G_const[0][c, c] / post_var[c],
                     shortfall_exact=1 - G[0][c, c] / post_var[c], rho1=G[1][c, c] / G[0][c, c],
                     corr_bias_m2=1 - Es[0][c, c] / G[0][c, c], corr_bias_end=1 - Es[1][c, c] / G[0][c, c],
                     measured_end=float(traces["map"][lab].var[-1, :, c].mean() / post_var[c]), windows_at_end=M))
pd.DataFrame(rows).round(4)

# %% [markdown]
# The shortfall is the window bias (6): at the paper's $\varepsilon N/S$ it is about a third, and the correlation
# between windows only matters for the first few windows (it is gone by the end of the run). At the bound-chosen
# $\varepsilon$ the bias is $\lesssim 10\,\%$, minus a few per cent of extra variance from the state-dependent noise.
#
# **SGLD stays overdispersed.** Its stationary covariance at step $\varepsilon$ is $\Sigma_0 + \varepsilon E$ with
# $\Sigma_0 = (NA)^{-1}$, the posterior, and $\tfrac12 N(AE + EA) = \tfrac{N^2}{4S}C$: the minibatch gradient noise,
# scaled by $N$ in the SGLD update, adds a variance $\approx \varepsilon N/(4S)$ per direction (for $C\approx A$),
# i.e. a relative excess $\varepsilon_t N^2\lambda/(4S)$. With the paper's schedule that is:

# %%
for t_ in [0, T_iasg * burn_in_passes, T_iasg * n_passes, 10_000 * 1000 // 10]:
    e = sgld_a / (sgld_b + t_) ** sgld_gamma
    print(f"t = {t_:>9,d} iterations: ε_t = {e:.2e}, relative excess variance ε_t N²λ_min/(4S) ≈ "
          f"{e * N**2 * lam[0] / (4 * iasg_S):.2f} at N={N}, {e * 1e8 / 40:.2f} at the paper's N=10,000")

# %% [markdown]
# It decays only as $t^{-1/2}$, and the running variance averages over the whole history, so SGLD's estimate
# approaches the posterior more slowly still. (The last line: the paper's 1000 passes at $N = 10^4$.)
#
# **Passes to 10 % error.** The first pass count from which the chain-averaged estimate of both marginal variances
# stays within 10 % of the exact posterior value until the end of the run (`av.passes_to_tolerance`), beside the
# prediction of the theory lines; "not reached" within the run length shown.

# %%
rows = []
paper_text = {"IASG": "IASG converges fastest (Figs. 4–5, visual)", "SGLD": "slower than IASG (Figs. 4–5, visual)",
              "NUTS": "slower than IASG (Figs. 4–5, visual)"}
def tag_of(lab):
    if lab.startswith("IASG"):
        return "iasg_paper_eps" if "paper" in lab else "iasg_bound_" + lab.split("bound ")[1].rstrip("%)")
    return lab.split(" ")[0].lower()
for init, tr in traces.items():
    for lab, t in tr.items():
        p10 = av.passes_to_tolerance(t, post_var, cidx, tol=0.1)
        p10_th = None
        if lab in pred:
            ok = np.all(np.abs(pred[lab][1] - 1) <= 0.1, axis=1)
            p10_th = float(pred[lab][0][np.flatnonzero(~ok)[-1] + 1]) if ok[-1] and not ok.all() else \
                (float(pred[lab][0][0]) if ok.all() else None)
        final = t.var[-1][:, cidx].mean(0) / post_var[cidx]
        rows.append(dict(init=init, sampler=lab, passes_to_10pct=p10, theory=p10_th, final_ratio_smallest=final[0],
                         final_ratio_largest=final[1], passes_run=float(t.passes[-1]), chains=t.var.shape[1]))
        results.record(CH, f"passes_to_10pct_{tag_of(lab)}_{init}", p10 if p10 is not None else "not reached",
                       paper=paper_text[lab.split(" ")[0]], profile=profile, unit="passes",
                       description=f"{lab}, start {init}, S={iasg_S}, N={N}, {t.var.shape[1]} chains, burn-in "
                                   f"{burn_in_passes if lab[:4] in ('IASG', 'SGLD') else 'NUTS warm-up'}: first "
                                   f"pass after which the chain-averaged estimates of the smallest and largest "
                                   f"posterior marginal variance stay within 10 % (run {t.passes[-1]:.0f} passes; "
                                   f"final ratios {final[0]:.2f}, {final[1]:.2f}; theory: {p10_th})")
conv = pd.DataFrame(rows)
conv.round(3)

# %% [markdown]
# **What this shows** (the numbers are in the two tables above; the statements hold at the default and paper profiles).
#
# 1. **IASG at the paper's $\varepsilon N/S$** settles within a few passes — on the wrong value: its samples are
#    under-dispersed by the window bias (6), about a third with $\sigma^2 = 1$, exactly on the theory line. So the
#    paper's "IASG converges fastest" needs $x = \varepsilon N\lambda_{\min}/S \gtrsim 10$, i.e. a larger
#    $\varepsilon$ or a smaller noise variance than we assume (the paper does not state it).
# 2. **IASG with $\varepsilon$ from the bound** is close to the posterior after a few passes from either start,
#    but the 10 % bound is not a 10 % guarantee on a finite data set: (6) assumes $C = A$ exactly, and the sample
#    $C$ differs from $A$ by a few per cent along some directions, so the bound-10 % run ends ≈ 12–14 % low, on its
#    theory line. The bound-5 % run stays within 10 % after about ten passes (the first few windows are too noisy,
#    and low by the window correlation).
# 3. **SGLD** with the paper's decreasing schedule stays overdispersed for the whole run, on its theory line: the
#    minibatch-noise excess $\varepsilon_t N^2\lambda/(4S)$ relative to the posterior decays only as $t^{-1/2}$
#    (and at the paper's $N = 10^4$ it is 25 times larger than here).
# 4. **NUTS** is unbiased but pays a full-data gradient per leapfrog step: hundreds of passes of warm-up before its
#    first draw, and about a thousand passes before both variance estimates stay within 10 % — two orders of
#    magnitude more than IASG with a suitable $\varepsilon$. In that sense the paper's ranking is reproduced; with
#    its stated $\varepsilon$ (and $\sigma^2 = 1$) IASG is fast but biased.

# %%
print(f"chapter ran in {time.time() - t_start:.1f} s (profile {profile})")
