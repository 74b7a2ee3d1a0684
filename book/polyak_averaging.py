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
# (pa-intro)=
# # Polyak averaging: why averaged SGD iterates are optimal, and the averaged SG sampler
#
# Constant-rate SGD does not converge: its iterates fluctuate around the optimum with a stationary covariance
# $\Sigma \propto \varepsilon/S$ (previous chapter). Averaging the iterates removes that dependence. Following
# {cite:t}`mandt2017` (§6) we show, step by step, that the covariance of the average of $T$ iterates is
# $A^{-1}BB^\top A^{-\top}/(TS)$ — independent of the learning rate, the minibatch size and any preconditioner, a
# function of the number of examples processed $TS$ only, as in {cite:t}`polyak1992` — check each step on many
# simulated chains, show where the approximation breaks, turn the result into a sampler (IASG, the paper's
# Algorithm 1), and repeat the paper's §7.2 experiments (Figs. 3–5).
#
# The computations live in `sgdbayes.ou` (the averaging theory in `ou.averaging`, the sampler in `ou.iasg`; every
# chain is an `init`/`update` pair run by one vectorised driver) and `sgdbayes.experiments.polyak_averaging`; the
# figures in `sgdbayes.plots.polyak_averaging`.

# %% tags=["parameters"]
profile = "default"
device = "auto"
seed = 0
# Part 1: the 2-D quadratic model
ou_chains = 2000  # chains per (ε, S) configuration
ou_TS = 2000  # examples processed T·S, the same for every configuration
ou_eps = [0.05, 0.3, 1.2]  # learning rates (stability limit 2/λ_max(A) ≈ 1.75)
ou_S = [1, 4, 16]  # minibatch sizes
ou_break_T = [1, 3, 10, 30, 100, 300, 1000]  # windows of the breakdown figure
# Part 3: §7.2 synthetic linear regression (paper: N = 10,000, D = 10)
N = 2000
D = 10
fig3_eps = 0.025  # Fig. 3, S = 1, T = N: the paper's ε·N (ε = 0.005 at N = 10,000)
fig3_windows = 5  # windows per chain (paper: 100 windows of one chain)
fig3_chains = 100  # independent chains (paper: 1)
iasg_S = 10  # Figs. 4–5: minibatch size of IASG and SGLD
iasg_eps = 0.015  # the paper's ε·N/S (ε = 0.003 at N = 10,000)
iasg_bounds = [0.1, 0.05]  # also run IASG where the bound of (6) equals these
burn_in_passes = 2  # passes IASG and SGLD discard before estimating
sgld_a = 0.001  # SGLD steps a / (b + t)^γ (the paper's schedule)
sgld_b = 1000.0
sgld_gamma = 0.5
n_passes = 60  # passes per IASG/SGLD chain, burn-in included (paper: ~1000)
n_chains = 50  # paper: 100
nuts_chains = 4  # paper: 100 (Pyro runs NUTS chains one after another)
nuts_warmup = 100
nuts_samples = 150
widget_live = True  # False: the explorer's static default view only

# %% tags=["remove-input"]
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown

from sgdbayes.glue import glue
from sgdbayes import plots, results
from sgdbayes.cache import cached
from sgdbayes.device import get_device
from sgdbayes.experiments import polyak_averaging as X
from sgdbayes.plots import polyak_averaging as pplots
from sgdbayes.widgets import polyak_averaging as pwidget

plots.book_style()
dev = str(get_device(device))
CH = "polyak_averaging"
results.clear(CH)
A, C = np.array(X.TOY_A), np.array(X.TOY_C)

# %% [markdown]
# (pa-proof)=
# ## 1. The proof, checked step by step
#
# **Assumptions** (the paper's, named so we can see which one fails where):
#
# - **(A1) quadratic loss** near the optimum: $L(\theta) = \tfrac12 \theta^\top A\theta$, $A$ symmetric positive
#   definite (optimum shifted to 0);
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
grid = cached(
    X.ou_grid,
    A=A,
    C=C,
    eps_list=ou_eps,
    S_list=ou_S,
    TS=ou_TS,
    n_chains=ou_chains,
    seed=seed,
    device=dev,
)

# %% [markdown]
# ### Step 1 — a linear recursion whose stationary covariance solves a Lyapunov equation
#
# Under (A1)–(A2), with preconditioner $H$ (symmetric positive definite; $H=I$ is plain SGD),
#
# $$
# \theta_{t+1} = \theta_t - \varepsilon H\hat g_S(\theta_t)
#   = (I - \varepsilon HA)\,\theta_t - \frac{\varepsilon}{\sqrt S} HB\xi_t .
# $$
#
# It is stable iff $\varepsilon < 2/\lambda_{\max}(HA)$. Under (A3) it is the OU process
# $d\theta = -\varepsilon A'\theta\,dt + \frac{\varepsilon}{\sqrt S}HB\,dW$ with $A' = HA$ (time in iterations),
# whose stationary covariance solves
#
# $$
# A'\Sigma + \Sigma A'^\top = \frac{\varepsilon}{S}\, H C H^\top .
# $$ (eq-pa-lyapunov)
#
# So $\Sigma \propto \varepsilon/S$. **Check:** the raw iterates' covariance against {eq}`eq-pa-lyapunov` and the
# exact discrete-time Lyapunov solution, for every $(\varepsilon, S)$.

# %%
plots.table(X.lyapunov_check(A, C, grid, ou_chains))

# %% [markdown]
# The raw covariance matches the exact discrete solution within Monte-Carlo error (|z| small) for every
# configuration; {eq}`eq-pa-lyapunov` is accurate at small $\varepsilon$ and off by a relative $O(\varepsilon\lambda)$
# at large $\varepsilon$ — the first place where (A3) shows. Across configurations $\operatorname{tr}\Sigma$ spans
# orders of magnitude ($\propto \varepsilon/S$).
#
# ### Step 2 — the autocovariance decays as $e^{-\varepsilon A' k}$
#
# In the stationary OU process $\operatorname{Cov}(\theta_{t+k}, \theta_t) = e^{-\varepsilon A' k}\Sigma$
# (discrete: $(I-\varepsilon A')^k\Sigma_d$ exactly). **Check** at lag $k$:

# %%
plots.table(X.lag_check(A, C, grid, ou_chains))

# %% [markdown]
# ### Step 3 — the covariance of the average is a double integral of the autocovariance
#
# For $\mu_T = \frac1T\int_0^T \theta(t)\,dt$ (discrete: $\frac1T\sum_{t=1}^T\theta_t$),
#
# $$
# \operatorname{Cov}(\mu_T) = \frac{1}{T^2}\left(G\Sigma + \Sigma G^\top\right),\qquad
#   G = \int_0^T (T-\tau)e^{-\varepsilon A'\tau}d\tau
#     = \frac{T}{\varepsilon}A'^{-1} - \frac{1}{\varepsilon^2}A'^{-2}\left(I - e^{-\varepsilon A' T}\right).
# $$ (eq-pa-window)
#
# The discrete analogue is exact: with $M = I - \varepsilon A'$ and $F = \sum_{k=1}^{T-1}(T-k)M^k =
# T(I-M)^{-1} - M(I-M^T)(I-M)^{-2} - TI$, $\operatorname{Cov}(\mu_T) = \frac{1}{T^2}(T\Sigma_d + F\Sigma_d +
# \Sigma_d F^\top)$ (`ou.averaging.averaged_covariance_exact`, tested against the naive double sum). **Check:** the
# closed form against the naive double sum $\frac{1}{T^2}\sum_{t,s}\operatorname{Cov}(\theta_t,\theta_s)$ for a
# short window, and {eq}`eq-pa-window` against the exact discrete form at fixed $\varepsilon T$:

# %% tags=["remove-input"]
ds = X.double_sum_check(A, C)
glue("pa-closed-vs-naive", float(ds["closed_vs_naive"]), display=False)
glue("pa-ou-vs-exact-big", float(ds["ou_vs_exact"][0.3]), display=False)
glue("pa-ou-vs-exact-small", float(ds["ou_vs_exact"][0.003]), display=False)

# %% [markdown]
# The closed form and the double sum agree to {glue:text}`pa-closed-vs-naive:.1e` (relative, $T$ = 12); the OU form
# differs from the exact discrete covariance by {glue:text}`pa-ou-vs-exact-big:.1e` at $\varepsilon$ = 0.3 and by
# {glue:text}`pa-ou-vs-exact-small:.1e` at $\varepsilon$ = 0.003 ($\varepsilon T$ = 30): the error of (A3) vanishes
# in proportion to $\varepsilon$.
#
# ### Step 4 — for long windows only the first term survives (A5)
#
# When $\varepsilon\lambda_{\min}(A')T \gg 1$ the second term of $G$ is smaller by that factor, leaving
#
# $$
# \operatorname{Cov}(\mu_T) \approx \frac{1}{\varepsilon T}\left(A'^{-1}\Sigma + \Sigma A'^{-\top}\right).
# $$ (eq-pa-leading)
#
# **Check:** the relative size of the dropped term, the distance of {eq}`eq-pa-window` from {eq}`eq-pa-leading`,
# against $1/(\varepsilon T\lambda_{\min})$:

# %%
plots.table(X.leading_term_check(A, C))

# %% [markdown]
# ### Step 5 — substitute the Lyapunov equation
#
# Multiply {eq}`eq-pa-lyapunov` by $A'^{-1}$ on the left and $A'^{-\top}$ on the right: $\Sigma A'^{-\top} +
# A'^{-1}\Sigma = \frac{\varepsilon}{S}A'^{-1}HCH^\top A'^{-\top} = \frac{\varepsilon}{S}A^{-1}CA^{-\top}$ (since
# $A'^{-1}H = A^{-1}$). Into {eq}`eq-pa-leading`:
#
# $$
# \operatorname{Cov}(\mu_T) \approx \frac{A^{-1}BB^\top A^{-\top}}{TS} .
# $$ (eq-pa-polyak)
#
# $\varepsilon$ and $H$ cancel, and $S$ enters only through $TS$. **Check** (Steps 3–5 together): every configuration
# processes the same $TS$ examples, so $TS\cdot\operatorname{Cov}(\mu_T)$ should be the same matrix
# $A^{-1}CA^{-\top}$ for all of them, although the raw covariances differ by orders of magnitude.

# %%
ind = X.independence_check(A, C, grid, ou_chains)
fig = pplots.plot_independence(ind["entries"])
glue("fig-pa-independence", fig, display=False)
plt.close(fig)
plots.table(ind["errors"])

# %% [markdown]
# ```{glue:figure} fig-pa-independence
# :name: fig-pa-independence
#
# **The covariance of the average does not depend on ε, S or H.** $TS\cdot\operatorname{Cov}(\mu_T)$ (points, ±2
# standard errors) for every configuration against $A^{-1}CA^{-\top}$ (dashed); crosses: the exact finite-$T$
# values. Answers the claim of §6 of {cite:t}`mandt2017`.
# ```
#
# The chains agree with the exact finite-$T$ values within Monte-Carlo error (the table's $|z|$, in standard errors).
# Their distance from the dashed line is the second term of {eq}`eq-pa-window`, which Step 4 dropped: relative size
# $\approx 2/(\varepsilon T\lambda_{\min})$, visible when $\varepsilon T\lambda_{\min}$ is small ((A5) fails: the
# smallest $\varepsilon$ with the largest $S$, so the fewest iterations). Meanwhile the raw iterates' covariance
# varies with $\varepsilon/S$:

# %%
fig = pplots.plot_scaling(ind["scaling"])
glue("fig-pa-scaling", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-pa-scaling
# :name: fig-pa-scaling
#
# **Raw iterates against their averages.** The trace of the raw iterates' covariance ($\propto \varepsilon/S$) and of
# the average of $T = TS/S$ iterates (the same for all) for each configuration, log scale.
# ```

# %% tags=["remove-input"]
ri = X.record_independence(
    CH, ind["errors"], TS=ou_TS, n_chains=ou_chains, profile=profile
)
glue("pa-worst", float(ri["worst"]), display=False)
glue("pa-mc", float(ri["mc"]), display=False)
glue("pa-zmax", float(ri["zmax"]), display=False)

# %% [markdown]
# Where (A5) holds ($\varepsilon T\lambda_{\min} \ge 30$) the largest relative error is {glue:text}`pa-worst:.3f`,
# against a Monte-Carlo error of {glue:text}`pa-mc:.3f`; over all configurations the chains are within
# {glue:text}`pa-zmax:.2f` standard errors of the exact finite-$T$ covariance.
#
# ### Step 6 — why this is optimal
#
# $A^{-1}CA^{-\top}/n$ is the asymptotic covariance of the empirical-risk minimiser (an M-estimator) computed from
# $n$ fresh examples, and when the model is well specified ($C = A$, the Fisher information) it is $A^{-1}/n$, the
# Cramér–Rao bound for any unbiased estimator from $n$ examples. The average of $T$ SGD iterates has used $n=TS$
# examples and attains that covariance: no learning rate, minibatch size or preconditioner does better, and none does
# worse (to leading order) — the theorem of {cite:t}`polyak1992`, here in its OU form.
#
# (pa-breakdown)=
# ### Where the approximation breaks
#
# Two assumptions can fail: (A5) small $T$ — the average of few correlated iterates still carries $\Sigma \propto
# \varepsilon/S$; and (A3) large $\varepsilon$ — near the stability limit $2/\lambda_{\max}$ the recursion
# oscillates ($M$ has an eigenvalue near $-1$), $\Sigma_d$ blows up, and an odd number of iterates leaves one
# oscillation unpaired. The exact discrete formula captures both. (In discrete time $T\cdot\operatorname{Cov}(\mu_T)
# \to A^{-1}CA^{-\top}/S$ *exactly* as $T\to\infty$ for every stable $\varepsilon$: the $O(\varepsilon)$ error of
# {eq}`eq-pa-lyapunov` cancels in the average.)

# %%
T_grid = np.unique(np.logspace(0, 4, 60).astype(int))
fracs = [0.02, 0.2, 0.9, 0.995]
bpts = cached(
    X.breakdown,
    A=A,
    C=C,
    fractions=fracs,
    T_list=ou_break_T,
    n_chains=ou_chains,
    seed=seed,
    device=dev,
)
fig = pplots.plot_breakdown(
    T_grid,
    X.breakdown_curves(A, C, fractions=fracs, T_grid=T_grid),
    bpts,
    mc_floor=np.sqrt(3.0 / ou_chains),
)
glue("fig-pa-breakdown", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-pa-breakdown
# :name: fig-pa-breakdown
#
# **Where {eq}`eq-pa-polyak` breaks.** Relative error of the exact covariance of the average (lines) and of simulated
# chains (points) against $A^{-1}CA^{-\top}/(TS)$, over the window $T$, for learning rates at fractions of the
# stability limit; dotted: the Monte-Carlo error of the points.
# ```
#
# Small $\varepsilon$ needs $T \gtrsim 10/(\varepsilon\lambda_{\min})$ iterations before {eq}`eq-pa-polyak` is
# within 10 %; moderate $\varepsilon$ reaches it quickly; right at the stability limit odd windows keep a large error
# (the saw-tooth) until $T$ is very large. The points follow the exact lines down to their own Monte-Carlo error.
#
# **Explore.** The explorer draws, for any $(\varepsilon, S, T)$, the covariance of the average of $T$ iterates in
# coordinates where $A^{-1}CA^{-\top}/(TS)$ is the unit circle, so the axes stay fixed while $\varepsilon$ (on a
# log scale, up to the stability limit) and $S$ move the raw law by orders of magnitude. Its default view:

# %%
fig0, ui = pwidget.explorer(A, C, eps=0.2, S=4, T=250)
glue("fig-pa-explorer", fig0, display=False)
plt.close(fig0)

# %% [markdown]
# ```{glue:figure} fig-pa-explorer
# :name: fig-pa-explorer
#
# **The explorer's default view (ε = 0.2, S = 4, T = 250).** Dashed: $A^{-1}CA^{-\top}/(TS)$; solid: the exact
# covariance of the average; dotted: the raw iterates; points: simulated averages (2-sd ellipses, whitened axes).
# ```

# %%
ui if widget_live else None

# %% [markdown]
# (pa-iasg)=
# ## 2. The averaged stochastic gradient sampler (IASG)
#
# Take a **well-specified** model, $C = BB^\top = A$ (**A6**: the covariance of per-example gradients equals the
# Hessian, true at the optimum of a correctly specified likelihood). Then {eq}`eq-pa-lyapunov` with $H = I$ gives
# $\Sigma = \frac{\varepsilon}{2S}I$, and {eq}`eq-pa-window` with $A = U\Lambda U^\top$ evaluates to
#
# $$
# \operatorname{Cov}(\mu_T) = \frac{A^{-1}}{ST}
#   + \frac{1}{\varepsilon S T^2}\,U\Lambda^{-2}\left(e^{-\varepsilon T\Lambda} - I\right)U^\top .
# $$ (eq-pa-iasg)
#
# The posterior of $N$ examples is $\mathcal N(\theta^*, A^{-1}/N)$ (Laplace/Bernstein–von Mises, exact here), so the
# window **$T = N/S$** (one pass through the data) makes the first term exactly the posterior covariance. The second
# term is negative: along eigen-direction $k$ the window variance is $(1 - r_k)/(N\lambda_k)$ with
#
# $$
# r_k = \frac{1 - e^{-x_k}}{x_k},\qquad x_k = \varepsilon T\lambda_k = \frac{\varepsilon N\lambda_k}{S},\qquad
# 0 \le r_k \le \min\!\left(1, \frac{1}{\varepsilon T\lambda_{\min}}\right).
# $$ (eq-pa-bias)
#
# So IASG **underestimates** the posterior variance, by the relative amount $r(x)$, worst along $\lambda_{\min}$; the
# bias is set by $x = \varepsilon N\lambda/S$, not by $\varepsilon$ alone. **Algorithm 1 (IASG):** run constant SGD;
# output the mean of each window of $T = N/S$ iterates as one sample (`ou.iasg.iasg_sample`: constant SGD with a
# window-means observer; {eq}`eq-pa-iasg` is `iasg_window_covariance`, {eq}`eq-pa-bias` `iasg_relative_error`).
#
# **Check of {eq}`eq-pa-iasg`–{eq}`eq-pa-bias`** on the 2-D model made well specified ($C = A$), $S = 10$,
# $T = 100$, for learning rates that put $x_{\min} = \varepsilon T\lambda_{\min}$ at 1, 3, 10 and 30: the measured
# relative shortfall of the window variance along $\lambda_{\min}$ against $r(x_{\min})$ and the bound.

# %%
wc = X.window_check(A, S=10, T=100, n_chains=ou_chains, seed=seed, device=dev)
plots.table(wc)

# %% [markdown]
# The measured shortfall agrees with $r(x)$ within Monte-Carlo error and never exceeds the bound; the exact
# discrete-time value differs from the OU formula by $O(\varepsilon\lambda)$. A window of one pass is a good posterior
# sample only when $x = \varepsilon N\lambda_{\min}/S \gg 1$: a 10 % bias needs $x \approx 10$.
#
# (pa-regression)=
# ## 3. The paper's §7.2 experiments: synthetic linear regression
#
# $x\sim\mathcal N(0, I_D)$, $w\sim\mathcal N(0, I)$ (prior precision 1), $y = x^\top w + \mathcal N(0,\sigma^2)$,
# with the exact Gaussian posterior as ground truth. **The paper does not state the noise variance $\sigma^2$; we
# assume $\sigma^2 = 1$** (the model's own likelihood, so it is well specified, A6). Then $A = (X^\top X/\sigma^2 +
# I)/N \approx I/\sigma^2$, all $\lambda \approx 1$, and the bias {eq}`eq-pa-bias` of the paper's IASG setting
# follows.

# %%
prob = X.regression_problem(N, D, seed=seed, device=dev)
mu, post_cov = prob.posterior()
post_var = np.diag(post_cov)
eps_runs = X.iasg_settings(prob, S=iasg_S, eps=iasg_eps, bounds=iasg_bounds)
plots.table(X.iasg_settings_table(prob, eps_runs, S=iasg_S))

# %% tags=["remove-input"]
ps = X.problem_summary(prob)
pp = X.paper_setting_shortfall(D, seed=seed)
X.record_paper_setting(CH, pp, profile=profile)
X.record_iasg_window(CH, wc, paper_r=pp["r"], N=N, n_chains=ou_chains, profile=profile)
glue("pa-lam-min", float(ps["lam_min"]), display=False)
glue("pa-lam-max", float(ps["lam_max"]), display=False)
glue("pa-c-vs-a", float(ps["c_vs_a"]), display=False)
glue("pa-paper-x", float(pp["x_min"]), display=False)
glue("pa-paper-r", float(pp["r"]), display=False)

# %% [markdown]
# Here $\lambda(A) \in$ [{glue:text}`pa-lam-min:.3f`, {glue:text}`pa-lam-max:.3f`] and $\|C - A\|/\|A\|$ =
# {glue:text}`pa-c-vs-a:.3f` (well specified up to sampling noise). The paper's own setting ($N$ = 10,000, $S$ = 10,
# $T$ = 1,000, $\varepsilon$ = 0.003, $\sigma^2$ = 1) has $x_{\min}$ = {glue:text}`pa-paper-x:.2f` and a predicted
# variance shortfall of {glue:text}`pa-paper-r:.3f`; the same $\varepsilon$ with $\sigma^2 = 0.1$ ($\lambda
# \approx 10$) would give $x \approx 30$ and 3 %. The default profile has a smaller $N$ than the paper, so it keeps
# the paper's $\varepsilon N/S$ (which sets $x$, hence the bias) rather than its $\varepsilon$; the paper profile runs
# $\varepsilon = 0.003$ itself. We also run IASG at learning rates chosen so that the bound {eq}`eq-pa-bias` is 10 %
# and 5 %.
#
# (pa-fig3)=
# ### Figure 3: averaged iterates against the posterior
#
# Constant SGD with $S = 1$, averaged over windows of $T = N$ iterates, against the posterior and the raw iterates,
# projected on the posterior's smallest- and largest-variance principal directions (again at the paper's
# $\varepsilon N$: $\varepsilon = 0.005$ at $N = 10^4$).

# %%
f3 = cached(
    X.fig3,
    N=N,
    D=D,
    eps=fig3_eps,
    windows=fig3_windows,
    chains=fig3_chains,
    seed=seed,
    device=dev,
)
s3 = X.fig3_summary(prob, f3, eps=fig3_eps)
Pm = np.linalg.eigh(post_cov)[1][:, [0, -1]]
covs = {
    "exact posterior": Pm.T @ post_cov @ Pm,
    "window averages": Pm.T @ s3["avg_cov"] @ Pm,
    "raw SGD iterates": Pm.T @ f3.raw_cov @ Pm,
}
fig = pplots.plot_fig3(
    (f3.raw.reshape(-1, D) - mu) @ Pm, (f3.samples.reshape(-1, D) - mu) @ Pm, covs
)
glue("fig-pa-fig3", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-pa-fig3
# :name: fig-pa-fig3
#
# **Averaged SGD iterates have the posterior's covariance; the raw iterates do not.** Raw constant-SGD iterates
# ($S = 1$) and the means of windows of $T = N$ iterates, projected on the smallest- and largest-variance principal
# directions of the posterior, with 2-sd ellipses; right: a zoom without the raw iterates. Answers Fig. 3 of
# {cite:t}`mandt2017`.
# ```

# %% tags=["remove-input"]
X.record_fig3(
    CH,
    s3,
    N=N,
    D=D,
    eps=fig3_eps,
    chains=fig3_chains,
    windows=fig3_windows,
    profile=profile,
)
glue("pa-f3-err_avg", float(s3["err_avg"]), display=False)
glue("pa-f3-mc_error", float(s3["mc_error"]), display=False)
glue("pa-f3-err_pred", float(s3["err_pred"]), display=False)
glue("pa-f3-window_bias", float(s3["window_bias"]), display=False)
glue("pa-f3-raw_over_posterior", float(s3["raw_over_posterior"]), display=False)
glue("pa-f3-raw_over_posterior_ou", float(s3["raw_over_posterior_ou"]), display=False)
glue("pa-f3-raw_exact", float(s3["raw_over_posterior_exact"]), display=False)
glue("pa-f3-n", int(s3["n_means"]), display=False)

# %% [markdown]
# The window means' covariance is {glue:text}`pa-f3-err_avg:.3f` (relative Frobenius) from the posterior's, from
# {glue:text}`pa-f3-n` means (Monte-Carlo error about {glue:text}`pa-f3-mc_error:.3f`; predicted exactly, with the
# window bias of at most {glue:text}`pa-f3-window_bias:.3f` and state-dependent noise: {glue:text}`pa-f3-err_pred:.3f`).
# The raw iterates spread {glue:text}`pa-f3-raw_over_posterior:.1f` times wider than the posterior, a little more than
# the constant-noise theory's $\varepsilon N/(2S)$ = {glue:text}`pa-f3-raw_over_posterior_ou:.1f`, because (A2) is only
# approximate: the minibatch gradient of linear regression is $A\delta + (\hat A - A)\delta + \xi$, and the
# *multiplicative* term $(\hat A - A)\delta$, $\delta = \theta - \theta^*$, adds noise that grows with the spread
# itself. For minibatches drawn with replacement the second moment still closes exactly, $\Sigma = M\Sigma M^\top +
# \frac{\varepsilon^2}{S}\big(C + \overline{a_n\Sigma a_n} - \bar A\Sigma\bar A\big)$ with $a_n =
# x_nx_n^\top/\sigma^2$ (`ou.theory.linreg_sgd_covariance`; {glue:text}`pa-f3-raw_exact:.1f`× here).
# It also makes SGD *mean-square* unstable well below the OU stability limit when $\varepsilon D/S$ is of order one.
# Since $E[\theta_{t+k}\mid\theta_t] = M^k\theta_t$ still holds, {eq}`eq-pa-window` stays exact with this
# $\Sigma$; we use it for the theory lines below.
#
# (pa-fig4)=
# ### Figure 4: how fast each sampler finds the posterior's variances
#
# Samplers, all with $S = 10$, compared by their estimate of the marginal variance of the coordinates with the
# smallest and largest posterior variance, against passes through the data:
#
# - **IASG** ($T = N/S$) at the paper's $\varepsilon N/S$ and at the bound-chosen $\varepsilon$: each chain's sample
#   variance of its window means so far;
# - **SGLD** {cite:p}`welling2011` with the paper's decreasing steps $\varepsilon_t = 10^{-3}/\sqrt{1000+t}$: each
#   chain's variance of all its iterates so far;
# - **NUTS** {cite:p}`hoffman2014` (Pyro; step size and diagonal mass matrix adapted in warm-up): each chain's
#   variance of its draws so far; every gradient of the full log posterior counts as one pass, warm-up included.
#
# **Burn-in.** Algorithm 1 as printed starts averaging at once; from a random start (a draw of the prior, tens of
# posterior standard deviations away) the transient then stays in every later variance estimate and IASG never
# converges. We discard the first `burn_in_passes` passes of IASG and SGLD (they still count on the x-axis); what
# is left of the start after them:

# %%
plots.table(
    X.burn_in_transient(prob, eps_runs, S=iasg_S, burn_in_passes=burn_in_passes)
)

# %%
tkw = dict(
    N=N,
    D=D,
    S=iasg_S,
    eps_runs=eps_runs,
    n_passes=n_passes,
    burn_in_passes=burn_in_passes,
    n_chains=n_chains,
    sgld_a=sgld_a,
    sgld_b=sgld_b,
    sgld_gamma=sgld_gamma,
    nuts_chains=nuts_chains,
    nuts_warmup=nuts_warmup,
    nuts_samples=nuts_samples,
    seed=seed,
    device=dev,
)
traces = {
    "mode": cached(X.variance_traces, init="mode", **tkw),
    "prior": cached(X.variance_traces, init="prior", **tkw),
}
pred = X.theory_lines(
    prob,
    traces["mode"],
    eps_runs,
    S=iasg_S,
    n_passes=n_passes,
    burn_in_passes=burn_in_passes,
    sgld_a=sgld_a,
    sgld_b=sgld_b,
    sgld_gamma=sgld_gamma,
)
fig = pplots.plot_variance_traces(
    {"the mode": traces["mode"], "a prior draw": traces["prior"]},
    post_var,
    X.coordinates(prob),
    predictions=pred,
)
glue("fig-pa-fig4", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-pa-fig4
# :name: fig-pa-fig4
#
# **Each sampler's estimate of the smallest and largest posterior marginal variance, divided by the exact value,
# against passes through the data.** Top: chains started at the posterior mode; bottom: at a draw of the prior.
# Lines: mean over chains; bands: ±1 sd across chains; dotted: the theory lines; grey: ±10 %. Answers Fig. 4 of
# {cite:t}`mandt2017` (its right column is the random start).
# ```
#
# **Check of the theory lines.** For every run with a line, the chain-averaged estimate over its last half against
# the line, in units of its Monte-Carlo standard error (sd across chains / √chains; successive passes are correlated,
# so the mean $|z|$ is a rough guide, ≈ 0.8 if the theory is right):

# %%
tc = X.theory_check(prob, traces, pred)
plots.table(tc)

# %% tags=["remove-input"]
fin = X.record_theory_check(CH, tc, eps_runs, n_passes=n_passes, profile=profile)
glue("pa-iasg-final", float(fin["iasg_paper_eps"]), display=False)
glue("pa-sgld-final", float(fin["sgld"]), display=False)
glue("pa-iasg-theory", float(fin["iasg_paper_eps_theory"]), display=False)
glue("pa-sgld-theory", float(fin["sgld_theory"]), display=False)

# %% [markdown]
# The estimates follow the theory lines. SGLD's first points sit below its line for another reason: a short run of
# correlated iterates underestimates a variance (relaxation time $2/(\varepsilon_t N\lambda)$ of tens of steps
# against $N/S$ steps per pass); the quasi-static line ignores that.
#
# **Where does IASG's shortfall come from?** Three candidates, separated for the smallest-variance coordinate (from
# the mode): the window bias {eq}`eq-pa-bias` with constant noise; the same with the exact, state-dependent noise
# (which *adds* variance); and the positive correlation of neighbouring windows (`ou.iasg.expected_window_variance`: a
# running variance of $m$ windows is low by about $2\rho_1/m$, $\rho_1$ the lag-one correlation), at $m = 2$ and at
# the end of the run:

# %%
plots.table(X.shortfall_sources(prob, traces["mode"], eps_runs, S=iasg_S))

# %% [markdown]
# The shortfall is the window bias: at the paper's $\varepsilon N/S$ about a third, and the correlation between windows
# only matters for the first few windows. At the bound-chosen $\varepsilon$ the bias is $\lesssim 10\,\%$, minus a
# few per cent of extra variance from the state-dependent noise.
#
# **SGLD stays overdispersed.** Its stationary covariance at step $\varepsilon$ is $\Sigma_0 + \varepsilon E$ with
# $\Sigma_0 = (NA)^{-1}$, the posterior, and $\tfrac12 N(AE + EA) = \tfrac{N^2}{4S}C$: the minibatch noise, scaled
# by $N$ in the SGLD update, adds a variance $\approx \varepsilon N/(4S)$ per direction (for $C\approx A$), a
# relative excess $\varepsilon_t N^2\lambda/(4S)$. With the paper's schedule, here and at the paper's $N$ (last row:
# the paper's 1,000 passes at $N = 10^4$):

# %%
plots.table(
    X.sgld_excess(
        prob,
        S=iasg_S,
        a=sgld_a,
        b=sgld_b,
        gamma=sgld_gamma,
        n_passes=n_passes,
        burn_in_passes=burn_in_passes,
    )
)

# %% [markdown]
# It decays only as $t^{-1/2}$, and the running variance averages over the whole history, so SGLD's estimate
# approaches the posterior more slowly still.
#
# **Passes to 10 % error.** The first pass count from which the chain-averaged estimates of both marginal variances
# stay within 10 % of the exact posterior value until the end of the run, beside the prediction of the theory lines
# ("—": not reached within the run):

# %%
conv = X.convergence_table(prob, traces, pred)
plots.table(conv.drop(columns=["tag"]))

# %% tags=["remove-input"]
tag = X.record_fig4(
    CH,
    conv,
    bounds=iasg_bounds,
    paper_r=pp["r"],
    N=N,
    D=D,
    S=iasg_S,
    n_chains=n_chains,
    nuts_chains=nuts_chains,
    n_passes=n_passes,
    profile=profile,
)
p10 = conv.set_index(["start", "tag"])["passes to 10 %"]
glue("pa-p10-iasg", Markdown(X.passes_text(p10.get(("mode", tag)))), display=False)
glue("pa-p10-nuts", Markdown(X.passes_text(p10.get(("mode", "nuts")))), display=False)

# %% [markdown]
# (pa-fig5)=
# ### Figure 5: the covariance each sampler estimates
#
# At the end of the runs from the mode, each sampler's estimate of the whole $D\times D$ covariance (pooled over
# chains, each chain about its own mean) against the exact posterior's:

# %%
fig = pplots.plot_covariance_maps(post_cov, X.covariance_maps(prob, traces["mode"]))
glue("fig-pa-fig5", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig-pa-fig5
# :name: fig-pa-fig5
#
# **The posterior covariance and each sampler's estimate of it, on one colour scale**, with the relative Frobenius
# error of each. Answers Fig. 5 of {cite:t}`mandt2017`.
# ```

# %% tags=["remove-input"]
cmaps = X.covariance_maps(prob, traces["mode"])
rel = X.record_fig5(
    CH, cmaps, post_cov, N=N, D=D, n_chains=n_chains, n_passes=n_passes, profile=profile
)
glue("pa-f5-iasg", float(rel["best IASG"]), display=False)
glue("pa-f5-sgld", float(rel["SGLD"]), display=False)
glue("pa-f5-nuts", float(rel["NUTS"]), display=False)

# %% [markdown]
# (pa-summary)=
# ## What this shows
#
# - **Averaging is optimal, as the paper says.** For every learning rate, minibatch size and preconditioner the
#   averaged iterates have covariance $A^{-1}CA^{-\top}/(TS)$ {eq}`eq-pa-polyak` (largest relative error
#   {glue:text}`pa-worst:.3f` where the windows are long, against a Monte-Carlo error of {glue:text}`pa-mc:.3f`); where
#   windows are short or $\varepsilon$ is near the stability limit the exact discrete formula takes over.
# - **IASG at the paper's $\varepsilon N/S$ is biased:** with noise variance 1 its samples are under-dispersed by
#   the window bias {eq}`eq-pa-bias` — {glue:text}`pa-paper-r:.2f` predicted at the paper's own setting; here it
#   ends at {glue:text}`pa-iasg-final:.2f` of the posterior variance (theory line: {glue:text}`pa-iasg-theory:.2f`).
#   The paper's "IASG converges fastest" needs $x = \varepsilon N\lambda_{\min}/S \gtrsim 10$, a larger
#   $\varepsilon$ or a smaller noise variance than we assume (the paper does not state it).
# - **SGLD with the paper's decreasing steps** ends at {glue:text}`pa-sgld-final:.2f` of the posterior variance
#   (theory line: {glue:text}`pa-sgld-theory:.2f`): its minibatch-noise excess $\varepsilon_t N^2\lambda/(4S)$
#   decays only as $t^{-1/2}$.
# - **NUTS is unbiased but pays a full-data gradient per leapfrog step.** From the mode it needs
#   {glue:md}`pa-p10-nuts` before both variance estimates stay within 10 %, IASG at the tightest bound-chosen
#   $\varepsilon$ {glue:md}`pa-p10-iasg`. The covariance estimates of
#   Fig. 5 have relative errors of {glue:text}`pa-f5-iasg:.2f` (best IASG), {glue:text}`pa-f5-sgld:.2f` (SGLD) and
#   {glue:text}`pa-f5-nuts:.2f` (NUTS).
