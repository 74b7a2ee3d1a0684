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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sgdbayes import plots, results
from sgdbayes.device import get_device
from sgdbayes.experiments import polyak_averaging as X
from sgdbayes.cache import cached
from sgdbayes.ou import averaging as av
from sgdbayes.ou import iasg
from sgdbayes.ou.diagnostics import relative_error
from sgdbayes.ou.theory import linreg_sgd_covariance, sgld_covariance_parts, stability_limit
from sgdbayes.plots import polyak_averaging as pplots
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
grid = cached(X.ou_grid, A=A, C=C, eps_list=ou_eps, S_list=ou_S, TS=ou_TS, n_chains=ou_chains, seed=seed,
              device=str(dev))

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
X.lyapunov_check(A, C, grid, ou_chains).round(5)

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
X.lag_check(A, C, grid, ou_chains).round(4)

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
ds = X.double_sum_check(A, C)
print(f"‖exact closed form − naive double sum‖/‖·‖ = {ds['closed_vs_naive']:.1e}  (T={ds['T']}, ε={ds['eps']})")
print("‖OU form (2) − exact discrete‖/‖·‖ at εT = 30:", {e: f"{v:.1e}" for e, v in ds["ou_vs_exact"].items()})

# %% [markdown]
# ### Step 4 — for long windows only the first term survives (A5)
#
# When $\varepsilon\lambda_{\min}(A')T \gg 1$ the second term of $G$ is smaller by that factor, leaving
# $$
# \operatorname{Cov}(\mu_T) \approx \frac{1}{\varepsilon T}\left(A'^{-1}\Sigma + \Sigma A'^{-\top}\right). \tag{3}
# $$
# **Check:** the relative size of the dropped term, $\|(2) - (3)\|/\|(3)\|$, against $1/(\varepsilon T\lambda_{\min})$:

# %%
X.leading_term_check(A, C).round(4)

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
ind = X.independence_check(A, C, grid, ou_chains)
fig = pplots.plot_independence(ind["entries"])
plt.show()
errs = ind["errors"]
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
fig = pplots.plot_scaling(ind["scaling"])
plt.show()
long = errs[errs["εTλ_min"] >= 30]
worst = float(long["relative error, chains"].max()) if len(long) else float("nan")
results.record(CH, "ou_avg_cov_rel_error_max", worst, profile=profile,
               paper="Cov(μ_T) ≈ A⁻¹BBᵀA⁻ᵀ/(TS), independent of ε, S and H (§6, text)",
               description=f"max over the {len(long)} of {len(errs)} (ε, S, H) configs with εTλ_min ≥ 30 (assumption "
                           f"A5; dropped finite-T term ≲ 2/(εTλ_min) ≤ 0.07) of ‖TS·Cov(μ_T) − A⁻¹CA⁻ᵀ‖_F/‖A⁻¹CA⁻ᵀ‖_F, TS={ou_TS}, {ou_chains} chains each; "
                           f"Monte-Carlo error alone ≈ {long['Monte-Carlo relative error'].max() if len(long) else float('nan'):.3f}")
results.record(CH, "ou_avg_cov_max_z_vs_exact", float(errs["max |z| vs exact"].max()), profile=profile,
               paper="(no paper number: the exact finite-T discrete-time covariance is this book's)",
               description=f"largest |measured − exact| / standard error over all {len(errs)} configs and 3 matrix "
                           f"entries (≈ 2.5–3 expected for {3 * len(errs)} Gaussian z-scores)")

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
bpts = cached(X.breakdown, A=A, C=C, fractions=fracs, T_list=ou_break_T, n_chains=ou_chains, seed=seed + 1,
              device=str(dev))
bcurves = X.breakdown_curves(A, C, fractions=fracs, T_grid=T_grid)
curves = {f"ε = {f:g} × 2/λ_max": bcurves[f] for f in fracs}
points = {f"ε = {f:g} × 2/λ_max": tuple(np.array(bpts[f]).T) for f in fracs}
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
X.window_check(A, S=10, T=100, n_chains=ou_chains, seed=seed + 2, device=str(dev)).round(4)

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
prob = X.regression_problem(N, D, seed=seed, device=str(dev))
Ah, Ch = prob.hessian(), prob.noise_covariance()
mu, post_cov = prob.posterior()
post_var = np.diag(post_cov)
lam = np.linalg.eigvalsh(Ah)
print(f"this run: N={N}, D={D}: λ(A) in [{lam[0]:.3f}, {lam[-1]:.3f}], ‖C − A‖/‖A‖ = {relative_error(Ch, Ah):.3f} "
      "(well specified up to sampling noise)")
lam_paper = np.linalg.eigvalsh(X.regression_problem(10_000, D, seed=seed).hessian())[0]
r_at_paper, b_at_paper = iasg.iasg_relative_error(np.diag([lam_paper, 1.0]), eps=0.003, T=10_000 // 10)
print(f"the paper's own setting (N=10,000, S=10, T=1000, ε=0.003, σ²=1): x_min = {0.003 * 1000 * lam_paper:.2f}, "
      f"predicted variance shortfall r = {r_at_paper:.3f} (bound {b_at_paper:.3f})")
print("the same ε with σ² = 0.1 (λ ≈ 10) would give x ≈ 30 and r ≈ 3 %: the paper's claim needs σ² ≲ 0.1 or a larger ε")
results.record(CH, "iasg_variance_shortfall_paper_setting", r_at_paper, profile=profile,
               paper="window T = N/S gives ≈ A⁻¹/N, the posterior (§6, text); IASG matches NUTS (Figs. 4–5)",
               description="(1−e^{−x})/x at x = εTλ_min for the paper's IASG (N=10,000, S=10, T=1000, ε=0.003), "
                           "assuming noise variance σ²=1 (unstated in the paper): predicted relative underestimate "
                           "of the posterior variance along λ_min")
T_iasg = N // iasg_S
eps_runs = X.iasg_settings(prob, S=iasg_S, eps=iasg_eps, bounds=iasg_bounds)
X.iasg_settings_table(prob, eps_runs, S=iasg_S).round(4)

# %% [markdown]
# The default profile has $N$ smaller than the paper's, so we keep the paper's $\varepsilon N/S$ (which sets $x$ and
# hence the bias) rather than its $\varepsilon$; at the paper profile the run *is* $\varepsilon = 0.003$. We also run
# IASG at learning rates chosen so that the bound (6) is 10 % and 5 %.
#
# **Fig. 3:** constant SGD with $S = 1$, averaged over windows of $T = N$ iterates, against the posterior and the raw
# iterates, projected on the posterior's smallest- and largest-variance principal directions (again at the paper's
# $\varepsilon N$: $\varepsilon = 0.005$ at $N = 10^4$).

# %%
f3 = cached(X.fig3, N=N, D=D, eps=fig3_eps, windows=fig3_windows, chains=fig3_chains, seed=seed, device=str(dev))
s3 = X.fig3_summary(prob, f3, eps=fig3_eps)
pl, U = np.linalg.eigh(post_cov)
Pm = U[:, [0, -1]]                               # smallest and largest posterior principal directions
covs = {"exact posterior": Pm.T @ post_cov @ Pm, "window averages": Pm.T @ s3["avg_cov"] @ Pm,
        "raw SGD iterates": Pm.T @ f3.raw_cov @ Pm}
fig = pplots.plot_fig3((f3.raw.reshape(-1, D) - mu) @ Pm, (f3.samples.reshape(-1, D) - mu) @ Pm, covs,
                       unit=" (w units)")
plt.show()
err_avg, ratio_raw = s3["err_avg"], s3["raw_over_posterior"]
print(f"‖Cov(window means) − posterior‖/‖posterior‖ = {err_avg:.3f} from {s3['n_means']} window means "
      f"(MC error ≈ √((D+1)/n) = {s3['mc_error']:.3f}; window bias (6) alone ≤ {s3['window_bias']:.3f}; exact "
      f"prediction with state-dependent noise {s3['err_pred']:.3f}; measured vs that prediction "
      f"{s3['err_vs_pred']:.3f}); raw SGD covariance / posterior (trace) = {ratio_raw:.1f} (constant-noise theory "
      f"εN/(2S) = {s3['raw_over_posterior_ou']:.1f}, exact with state-dependent noise "
      f"{s3['raw_over_posterior_exact']:.1f})")
results.record(CH, "fig3_avg_cov_rel_error", err_avg, profile=profile,
               paper="averaged-iterate covariance ≈ posterior covariance (Fig. 3, visual)",
               description=f"‖Cov(window means) − posterior‖_F/‖posterior‖_F, ε={fig3_eps}, S=1, T=N={N}, "
                           f"{s3['n_means']} means (Monte-Carlo error ≈ {s3['mc_error']:.2f}; predicted "
                           f"{s3['err_pred']:.3f}: window bias ≤ {s3['window_bias']:.3f} plus state-dependent "
                           "gradient noise)")
results.record(CH, "fig3_raw_over_posterior_trace", ratio_raw, profile=profile,
               paper="raw SGD covariance differs from the posterior (Fig. 3, visual)",
               description=f"tr Cov(raw SGD iterates) / tr posterior covariance; theory εN/(2S) = "
                           f"{s3['raw_over_posterior_ou']:.1f} (constant noise), {s3['raw_over_posterior_exact']:.1f} "
                           "(exact, state-dependent noise)")

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
print({lab: f"{np.exp(-e * T_iasg * lam[0] * burn_in_passes):.1e}" for lab, e in eps_runs.items()},
      f"(× {dist0:.0f} posterior sd from a random start)")

# %%
coords = X.coordinates(prob)
cidx = list(coords.values())
tkw = dict(N=N, D=D, S=iasg_S, eps_runs=eps_runs, n_passes=n_passes, burn_in_passes=burn_in_passes,
           n_chains=n_chains, sgld_a=sgld_a, sgld_b=sgld_b, sgld_gamma=sgld_gamma, nuts_chains=nuts_chains,
           nuts_warmup=nuts_warmup, nuts_samples=nuts_samples, seed=seed, device=str(dev))
traces = {"map": cached(X.variance_traces, init="mode", **tkw), "random": cached(X.variance_traces, init="prior", **tkw)}
pred = X.theory_lines(prob, traces["map"], eps_runs, S=iasg_S, n_passes=n_passes, burn_in_passes=burn_in_passes,
                      sgld_a=sgld_a, sgld_b=sgld_b, sgld_gamma=sgld_gamma)
lab_sgld = X.SGLD_LABEL
for init, fig_no in (("map", 4), ("random", 5)):
    fig = pplots.plot_variance_traces(traces[init], post_var, coords, predictions=pred,
                                      title=f"Fig. {fig_no}: chains started at {'the MAP' if init == 'map' else 'a prior draw'}")
    plt.show()

# %% [markdown]
# **Check of the theory lines.** For every run, the chain-averaged estimate over its last half against the dotted
# prediction, in units of its Monte-Carlo standard error (sd across chains / √chains; the estimates at successive
# passes are correlated, so |z| averaged over them is a rough guide, ≈ 0.8 if the theory is right):

# %%
theory_check = X.theory_check(prob, traces, pred)
for lab, tag in [(next(iter(eps_runs)), "iasg_paper_eps"), (lab_sgld, "sgld")]:
    row = theory_check[(theory_check["start"] == "map") & (theory_check["run"] == lab)].iloc[0]
    results.record(CH, f"{tag}_final_variance_ratio", float(row["final, smallest (chains)"]), profile=profile,
                   paper="≈ 1 for IASG; SGLD slower to converge (Figs. 4–5, visual)",
                   description=f"{lab} from the MAP, after {n_passes} passes: chain-averaged estimate / exact posterior "
                               f"variance, smallest-variance coordinate; theory {row['final, smallest (theory)']:.3f}")
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
X.shortfall_sources(prob, traces["map"], eps_runs, S=iasg_S).round(4)

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
t_list = np.array([0, T_iasg * burn_in_passes, T_iasg * n_passes, 10_000 * 1000 // 10])
e_t = sgld_a / (sgld_b + t_list) ** sgld_gamma
pd.DataFrame({"iteration t": t_list, "ε_t": e_t, f"excess ε_t N²λ_min/(4S), N={N}": e_t * N**2 * lam[0] / (4 * iasg_S),
              "at the paper's N=10,000": e_t * 1e8 / 40})

# %% [markdown]
# It decays only as $t^{-1/2}$, and the running variance averages over the whole history, so SGLD's estimate
# approaches the posterior more slowly still. (The last line: the paper's 1000 passes at $N = 10^4$.)
#
# **Passes to 10 % error.** The first pass count from which the chain-averaged estimate of both marginal variances
# stays within 10 % of the exact posterior value until the end of the run (`av.passes_to_tolerance`), beside the
# prediction of the theory lines; "not reached" within the run length shown.

# %%
paper_text = {"IASG": "IASG converges fastest (Figs. 4–5, visual)", "SGLD": "slower than IASG (Figs. 4–5, visual)",
              "NUTS": "slower than IASG (Figs. 4–5, visual)"}
conv = X.convergence_table(prob, traces, pred)
for _, row in conv.iterrows():
    p10 = row["passes to 10 %"]
    results.record(CH, f"passes_to_10pct_{row['tag']}_{row['start']}", p10 if p10 is not None else "not reached",
                   paper=paper_text[row["sampler"].split(" ")[0]], profile=profile, unit="passes",
                   description=f"{row['sampler']}, start {row['start']}, S={iasg_S}, N={N}, {row['chains']} chains")
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
