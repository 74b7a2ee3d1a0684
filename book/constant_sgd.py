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
# # Constant SGD as approximate Bayesian inference
#
# With a constant learning rate, stochastic gradient descent never settles: the minibatch noise keeps kicking the
# iterates around the optimum, and after a while they fluctuate with a fixed distribution. Mandt, Hoffman & Blei
# (2017) ask whether that *stationary distribution* can be tuned — through the learning rate $\varepsilon$, the
# minibatch size $S$ and a preconditioner $H$ — to be close to the Bayesian posterior, which would make SGD a cheap
# approximate sampler. This chapter rebuilds their argument (§3–5), checks every formula against many simulated
# chains, repeats the Table 1 / Figure 1 / Figure 2 experiments on data that ship with scikit-learn and statsmodels,
# and the variational-EM experiment of §7.3 (Figure 6).
#
# All computation lives in `sgdbayes.ou` (theory, chains, posteriors, VEM); the figures in
# `sgdbayes.plots.constant_sgd`.

# %% tags=["parameters"]
profile = "default"
device = "auto"
seed = 0
S = 10                       # minibatch size for Table 1 (paper: 100 for regression, 10,000 for Skin)
n_chains = 300               # independent chains per method, all in one tensor
n_steps = 1500               # steps per chain (burn-in: 3 relaxation times, at most a third of the run)
thin = 5                     # keep every thin-th state after burn-in
datasets = ["diabetes", "fair"]  # offline data sets of Table 1; the paper profile adds randhie (N 20,190)
uci_datasets = ["wine_quality", "skin", "protein"]  # the paper's data sets (downloaded; offline → reported not run)
sgld_scale = 1.0             # SGLD step size in units of 2 eps_star / N (the same step on L as constant SGD)
bbvi_steps = 1000            # BBVI (mean-field) optimisation steps
sweep_points = 7             # learning rates in the ε sweep
sweep_chains = 100           # chains per learning rate in the sweep
momentum_mu = 0.5            # momentum damping μ for the ε/(μS) invariance check
sgld_check_chains = 4000     # chains of the 2-D SGLD-constant check
nuts_samples = 200           # NUTS draws for the Laplace check
nuts_warmup = 150
vem_steps = 3000             # constant-SGD VEM iterations
vem_chains = 8
vem_eps_factors = [1.0, 0.125]  # VEM learning rates as multiples of 1/λ_max(A) (the first is the draft's choice)
vem_bbvi_steps = 2000
vem_lambdas = [0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]   # grid for the validation-optimal λ and fixed points
mnist_n_train = 500          # MNIST subset size for VEM; 0 skips it
mnist_n_test = 1000
mnist_downsample = 2         # average-pool MNIST by this factor (2: 14×14 pixels) so the P×P Hessian stays small
widget_chains = 300
widget_steps = 300           # steps of the widget's chains (they start from the predicted stationary law)

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from sgdbayes import results
from sgdbayes.data.download import DatasetUnavailableError
from sgdbayes.data.tabular import ONLINE
from sgdbayes.device import get_device
from sgdbayes.experiments import constant_sgd as X
from sgdbayes.cache import cached
from sgdbayes.ou import theory as th
from sgdbayes.ou.compare import METHODS
from sgdbayes.plots import book_style
from sgdbayes.plots import constant_sgd as P

book_style()
dev = get_device(device)
results.clear("constant_sgd")
CH = "constant_sgd"
t_start = time.time()
print(f"profile {profile}, device {dev}")

# %% [markdown]
# ## The Ornstein–Uhlenbeck picture
#
# Write the loss as an average over $N$ examples, $\mathcal L(\theta) = \frac1N\sum_n \ell_n(\theta)$ with
# $\ell_n = -\log p(x_n\mid\theta) - \frac1N\log p(\theta)$, so the posterior is $\propto e^{-N\mathcal L(\theta)}$.
# A minibatch gradient $\hat g_S$ is the full gradient plus noise of covariance $BB^\top/S$, where
# $C = BB^\top$ is the covariance of one example's gradient. Near the optimum take $\mathcal L \approx
# \tfrac12\theta^\top A\theta$ and $C$ constant. Then one step $\theta_{t+1} = \theta_t - \varepsilon H\hat g_S$ is an
# Euler step (of size $\varepsilon$) of the Ornstein–Uhlenbeck process
#
# $$ d\theta = -HA\,\theta\,dt + \sqrt{\varepsilon/S}\,HB\,dW, $$
#
# whose stationary law is $\mathcal N(0,\Sigma)$ with $\Sigma$ solving the Lyapunov equation
#
# $$ HA\,\Sigma + \Sigma\,AH = \tfrac{\varepsilon}{S}\,HCH . $$
#
# The posterior, in the same quadratic approximation, is $\mathcal N(0, (NA)^{-1})$. Minimising
# $\mathrm{KL}(q\,\|\,p) = \tfrac12\left(N\,\mathrm{Tr}(A\Sigma) - \log|NA| - \log|\Sigma| - D\right)$ gives
#
# * the optimal scalar learning rate $\varepsilon^* = 2SD / (N\,\mathrm{Tr}\,C)$ (with $H=I$);
# * the optimal preconditioner $H^* = \frac{2S}{N}C^{-1}$, which makes $\Sigma = (NA)^{-1}$ exactly; its diagonal
#   version $H^*_{kk} = 2S/(N C_{kk})$.
#
# Momentum SGD ($v \leftarrow (1-\mu)v - \varepsilon\hat g_S$, $\theta\leftarrow\theta+v$) has the same equation with
# $\varepsilon \to \varepsilon/\mu$: only $\varepsilon/(\mu S)$ matters. SGFS adds preconditioned noise
# $\sqrt\varepsilon HEw$ and is exact with $H^* = \frac2N(\varepsilon C/S + EE^\top)^{-1}$.
#
# **Constant-rate SGLD** ($\theta \leftarrow \theta - \frac\varepsilon2 N\hat g_S + \sqrt\varepsilon\,w$,
# $w\sim\mathcal N(0,I)$) is a linear recursion with drift $K = \frac{\varepsilon N}{2}A$ and noise covariance
# $Q = \varepsilon I + \frac{\varepsilon^2N^2}{4}\,\mathrm{Cov}(\hat g_S)$. With $C$ defined as above — the covariance of
# one example's $\nabla\ell_n$, so $\mathrm{Cov}(\hat g_S) = C/S$ — the Lyapunov equation $K\Sigma+\Sigma K = Q$ reads
#
# $$ \tfrac N2(A\Sigma+\Sigma A) = I + \frac{\varepsilon N^2}{4S}\,C, \qquad
#    \Sigma = (NA)^{-1} + \frac{\varepsilon N}{4S}A^{-1}C \ \text{(commuting case)} .$$
#
# The paper prints $I + \frac{\varepsilon N}{2S}BB^\top$ and $\Sigma = (NA)^{-1} + \frac{\varepsilon}{2S}A^{-1}BB^\top$,
# with the same update and the same symbol $BB^\top$ it uses for the per-example noise of $\mathcal L$'s gradient. The two
# agree only if $BB^\top = \frac N2 C$, which is not the covariance of any natural gradient estimate: the noise of the
# minibatch gradient of the *full* negative log posterior $N\mathcal L$ has covariance $N^2C/S$, and of $\mathcal L$
# itself $C/S$. Read with $BB^\top = C$, the printed constant is too small by a factor $N/2$. The simulation below
# (2-D quadratic, exact Gaussian gradient noise, thousands of chains) decides it.
#
# **Stability.** The discrete recursion $\theta \leftarrow (I-\varepsilon HA)\theta + \text{noise}$ has a stationary
# law only if every eigenvalue of $\varepsilon HA$ lies in $(0,2)$, i.e. $\varepsilon < 2/\lambda_{\max}(HA)$ (for
# SGLD: $\varepsilon < 4/(N\lambda_{\max}(A))$). Above it the iterates diverge; `sgdbayes.ou` warns
# (`StabilityWarning`) when it knows $A$ and detects divergence (non-finite or exploding iterates) in the chains,
# raising `DivergenceError` or flagging the chains — never averaging them in. The Lyapunov equation is itself a
# first-order approximation: the exact stationary covariance of the linear recursion differs at relative order
# $\varepsilon\lambda_{\max}(HA)$ (`discrete=True` solves it exactly).

# %%
sg = cached(X.sgld_constant_check, n_chains=sgld_check_chains, seed=seed)
N2 = X.SGLD_CHECK["N"]
display(sg.style.format("{:.3g}"))
z = ((sg["chains: Tr(Σ − (NA)⁻¹)"] - sg["ours: exact discrete recursion"]) / sg["± 1 sd (Monte Carlo)"]).abs().max()
z_p = ((sg["chains: Tr(Σ − (NA)⁻¹)"] - sg["paper's printed εN/2S (BBᵀ = C)"]) / sg["± 1 sd (Monte Carlo)"]).abs().min()
results.record(CH, "sgld_constant_max_z_ours", float(z), profile=profile,
               description="max |chains − our SGLD excess (εN²/4S, discrete)| in Monte-Carlo sd over 3 ε")
results.record(CH, "sgld_constant_min_z_printed", float(z_p), profile=profile,
               description="min |chains − paper's printed SGLD excess (εN/2S with BBᵀ = C)| in Monte-Carlo sd")
print(f"excess covariance trace: our constant within {z:.1f} sd of the chains; the printed constant (read with "
      f"BBᵀ = C) at least {z_p:.0f} sd away — it is {N2 / 2:.0f} = N/2 times too small")

# %% [markdown]
# ## Table 1: how close does each sampler get?
#
# For each data set we compute the posterior (exact Gaussian for linear regression with $\sigma^2=1$ on standardised
# targets; Laplace for logistic regression, checked against NUTS below), $A$ and $C$ at the mode from per-example
# gradients, and run `n_chains` independent chains of each method in one tensor, each chain drawing its own
# minibatches (with replacement, so the minibatch-noise covariance is exactly $C/S$). Each chain starts at the mode
# plus a draw from its method's *predicted* stationary law (the Lyapunov covariance), so it is close to stationary from
# the first step, and is burnt in for three relaxation times $1/\lambda_{\min}(\varepsilon HA)$ (at most a third of the
# run) to remove what the prediction gets wrong: the OU prediction errs by $O(\varepsilon\lambda)$ in the *fast*
# directions, which relax within a few steps; in the slow directions it is accurate. The column "exact discrete linear
# recursion" (the discrete Lyapunov equation, no OU approximation) is what stationary chains on the quadratic
# approximation must reproduce up to Monte-Carlo error, and they do: that is the evidence the rows are stationary. SGLD runs with the same step on $\mathcal L$ as constant SGD,
# $\varepsilon_{\rm SGLD}N/2 = \varepsilon^*$, so its gradient noise adds constant SGD's own stationary covariance on top of
# the posterior (the paper does not give its SGLD step).
#
# **Which KL.** $q$ is the Gaussian fitted to the pooled iterates, $p$ the posterior. The paper's Table 1 is headed
# "KL(posterior ‖ stationary)", i.e. $\mathrm{KL}(p\,\|\,q)$, while its derivation of $\varepsilon^*$ and $H^*$
# minimises $\mathrm{KL}(q\,\|\,p)$. We report both, label every column with its direction, put the paper's numbers
# beside $\mathrm{KL}(p\,\|\,q)$ (the direction its table names) and run the ordering checks on that direction.

# %%
def table_row(name):
    d, model, _, _ = X.load_problem(name, device=dev)
    res = cached(X.table1, name=name, S=S, n_chains=n_chains, n_steps=n_steps, thin=thin, sgld_scale=sgld_scale,
                 bbvi_steps=bbvi_steps, seed=seed, device=str(dev))
    return d, model, res


table, not_run, runs = {}, {}, {}
for name in datasets + uci_datasets:
    try:
        d, model, res = table_row(name)
    except DatasetUnavailableError as err:
        not_run[name] = str(err)
        continue
    runs[name] = (d, model, res)
    table[name] = res["methods"]

PAPER = {"sgd": (18.7, 0.471, 1000.9), "sgd_diag": (14.0, 0.921, 678.4), "sgd_full": (0.7, 0.005, 1.8),
         "sgld": (2.9, 0.905, 4.5), "sgfs_diag": (12.8, 0.864, 597.4), "sgfs_full": (0.8, 0.005, 1.3),
         "bbvi": (44.7, 5.74, 478.1)}
LABEL = {"sgd": "constant SGD", "sgd_diag": "constant SGD, diagonal H", "sgd_full": "constant SGD, full H",
         "sgld": "SGLD", "sgfs_diag": "SGFS diagonal", "sgfs_full": "SGFS full", "bbvi": "BBVI (mean-field)"}
rows = []
for m in METHODS:
    row = {"method": LABEL[m]}
    for name, meth in table.items():
        row[(name, "KL(p‖q): posterior ‖ iterates")] = meth[m]["kl_pq"]
        row[(name, "KL(q‖p): iterates ‖ posterior")] = meth[m]["kl_qp"]
        row[(name, "KL(p‖q), Lyapunov (OU) prediction")] = meth[m]["kl_pq_pred"]
        row[(name, "KL(p‖q), exact discrete linear recursion")] = meth[m]["kl_pq_pred_discrete"]
        row[(name, "slowest relaxation [steps]")] = meth[m]["relax"] if meth[m]["relax"] is not None else np.nan
        row[(name, "burn-in [steps]")] = meth[m]["burn_in"] if meth[m]["burn_in"] is not None else np.nan
    for j, pn in enumerate(("Wine", "Skin", "Protein")):
        row[("paper, KL(p‖q) (Table 1 header)", pn)] = PAPER[m][j]
    rows.append(row)
df = pd.DataFrame(rows).set_index("method")
df.columns = pd.MultiIndex.from_tuples(df.columns)
display(df.style.format("{:.3g}", na_rep="–"))

for name, meth in table.items():
    for m in METHODS:
        results.record(CH, f"kl_pq_{m}_{name}", meth[m]["kl_pq"], profile=profile, unit="nats",
                       description=f"KL(posterior ‖ Gaussian fit to iterates), {LABEL[m]}, {name} "
                                   f"(N={runs[name][0].N}); the direction of the paper's Table 1 header")
        results.record(CH, f"kl_qp_{m}_{name}", meth[m]["kl_qp"], profile=profile, unit="nats",
                       description=f"KL(Gaussian fit to iterates ‖ posterior), {LABEL[m]}, {name}; the direction of "
                                   "the paper's derivation")
for name in uci_datasets:
    j = {"wine_quality": 0, "skin": 1, "protein": 2}[name]
    for m in METHODS:
        if name in table:
            results.record(CH, f"kl_pq_{m}_{name}_uci", table[name][m]["kl_pq"], paper=PAPER[m][j], profile=profile,
                           unit="nats", description=f"KL(posterior ‖ stationary), {LABEL[m]}, UCI {name}")
        else:
            results.record(CH, f"kl_pq_{m}_{name}_uci", "not run (offline)", paper=PAPER[m][j], profile=profile,
                           unit="nats", description=f"KL(posterior ‖ stationary), {LABEL[m]}, UCI {name}: data not "
                                                    "available offline")

# %% [markdown]
# The paper's numbers are for its own data sets (UCI Wine Quality, Skin Segmentation, Protein); ours for the offline
# stand-ins, so compare the *ordering*, not the values. The rows that could not run here:

# %%
if not_run:
    lines = [f"* **{k}** — not run: the file is not on this machine and there is no internet. To run it, download "
             f"`{ONLINE[k][0]}` and place it at `$SGDBAYES_DATA_DIR/{ONLINE[k][1]}` (default data directory "
             f"`~/.cache/sgdbayes/data`); the chapter then fills its columns." for k in not_run]
    display(Markdown("\n".join(lines)))
else:
    display(Markdown("All UCI data sets were available and ran."))

# %% [markdown]
# The paper's ordering is: full preconditioning ≈ SGFS-full ≪ SGLD < diagonal < plain constant SGD. We check each
# inequality on every data set in the direction of the paper's table, $\mathrm{KL}(p\,\|\,q)$, and record it.

# %%
checks = []
for name, meth in table.items():
    k = {m: meth[m]["kl_pq"] for m in METHODS}
    for label, ok in (("full ≪ SGLD", k["sgd_full"] < k["sgld"]), ("SGFS-full ≪ SGLD", k["sgfs_full"] < k["sgld"]),
                      ("SGLD < diagonal", k["sgld"] < k["sgd_diag"]), ("diagonal < plain", k["sgd_diag"] < k["sgd"]),
                      ("full ≈ SGFS-full (within ×3 or both < 0.1)",
                       max(k["sgd_full"], k["sgfs_full"]) < 0.1 or
                       max(k["sgd_full"], k["sgfs_full"]) < 3 * min(k["sgd_full"], k["sgfs_full"]))):
        checks.append({"data set": name, "check": label, "holds": bool(ok)})
        key = label.split(" (")[0].replace(" ", "_").replace("≪", "lt").replace("<", "lt").replace("≈", "approx")
        results.record(CH, f"order_{key}_{name}", bool(ok), paper=True, profile=profile,
                       description=f"ordering check '{label}' on {name}, in KL(posterior ‖ stationary)")
display(pd.DataFrame(checks).pivot(index="check", columns="data set", values="holds"))

# %% [markdown]
# ## Figure 1: iterates on the posterior's principal axes
#
# The iterates of three methods on the regression data set, projected on the smallest- and largest-variance principal
# components of the posterior, with 3-sd ellipses of the posterior, of a Gaussian fitted to the iterates and of the
# Lyapunov prediction. Plain constant SGD at $\varepsilon^*$ matches the posterior's overall scale but not its shape;
# the full preconditioner matches both; mean-field BBVI cannot represent correlations.

# %%
reg = datasets[0]
d_reg, model_reg, res_reg = runs[reg]
pm, pc = res_reg["post_mean"], res_reg["post_cov"]
w, V = np.linalg.eigh(pc)
U = V[:, [0, -1]]
panels = []
for m, title in (("sgd_full", "constant SGD, full H*"), ("sgd", "constant SGD, ε*"), ("bbvi", "BBVI (mean-field)")):
    o = res_reg["methods"][m]
    panels.append({"title": title, "samples": o["samples"] @ U, "posterior": (U.T @ pm, U.T @ pc @ U),
                   "predicted": None if o["pred"] is None else U.T @ o["pred"] @ U})
fig = P.projection_figure(panels)
fig.suptitle(f"{reg}: Bayesian linear regression, N = {d_reg.N}, D = {d_reg.D}")

# %% [markdown]
# ## Figure 2: predicted against empirical covariance
#
# For plain constant SGD at $\varepsilon^*$, the Lyapunov solution against the covariance of the iterates, entry by
# entry.

# %%
o = res_reg["methods"]["sgd"]
fig = P.covariance_figure(o["pred"], o["cov"], title=f"{reg}: constant SGD, ε* = {o['eps']:.3g}, S = {S}")
rel = np.linalg.norm(o["cov"] - o["pred"]) / np.linalg.norm(o["pred"])
results.record(CH, f"cov_rel_error_sgd_{reg}", rel, profile=profile,
               description="‖Σ_empirical − Σ_Lyapunov‖_F / ‖Σ_Lyapunov‖_F, constant SGD at ε*")
print(f"relative Frobenius error of the Lyapunov prediction: {rel:.3f} "
      f"(ε*·λ_max(A) = {o['eps'] * np.linalg.eigvalsh(res_reg['A'])[-1]:.2f} sets the discretisation error)")

# %% [markdown]
# ## The learning-rate sweep: KL is smallest near $\varepsilon^*$
#
# One tensor of `sweep_points × sweep_chains` chains, each group with its own learning rate, from $\varepsilon^*/4$ up
# to just below the stability limit; each group starts from its own predicted stationary law.

# %%
A_reg, C_reg = res_reg["A"], res_reg["C"]
eps_star = th.optimal_learning_rate(C_reg, N=model_reg.N, S=S)
eps_lim = th.stability_limit(A_reg)
sw = cached(X.eps_sweep, name=reg, S=S, points=sweep_points, chains=sweep_chains, n_steps=n_steps, thin=thin,
            seed=seed, device=str(dev))
grid, kl_emp, kl_pred = sw["eps"], sw["kl_emp"], sw["kl_pred"]
fig = P.eps_sweep_figure(grid, kl_emp, kl_pred, eps_star, eps_limit=eps_lim, title=f"{reg}, S = {S}")
best = grid[int(np.nanargmin(kl_emp))]
results.record(CH, f"eps_sweep_argmin_over_eps_star_{reg}", best / eps_star, paper=1.0, profile=profile,
               description="learning rate minimising the empirical KL, in units of ε* (grid resolution "
                           f"×{grid[1] / grid[0]:.2f})")
print(f"ε* = {eps_star:.4g}, stability limit 2/λ_max(A) = {eps_lim:.4g}, empirical argmin = {best:.4g}")

# %% [markdown]
# ## Momentum: only $\varepsilon/(\mu S)$ matters
#
# Momentum SGD with damping $\mu$ and learning rate $\mu\varepsilon^*$ against plain SGD at $\varepsilon^*$ (same
# $\varepsilon/(\mu S)$), and plain SGD at $2\varepsilon^*$ with $2S$.

# %%
mt = cached(X.momentum_check, name=reg, S=S, mu=momentum_mu, n_chains=n_chains, n_steps=n_steps, thin=thin,
            seed=seed, device=str(dev))
display(mt.style.format("{:.3g}"))
results.record(CH, f"momentum_vs_sgd_rel_diff_{reg}", float(mt.loc["momentum", "‖Σ − Σ_sgd‖/‖Σ_sgd‖"]), profile=profile,
               description=f"relative difference of stationary covariances, momentum (μ={momentum_mu}, ε=με*) vs SGD ε*")
# %% [markdown]
# ## How good is the Laplace reference? A NUTS check
#
# For the logistic data set the reference posterior is the Laplace approximation, as in the paper. NUTS (Pyro)
# samples the exact posterior; we compare its moments with Laplace's.

# %%
clf = next((n for n in datasets if n in runs and runs[n][0].task != "regression"), None)
if clf is not None:
    d_c, model_c, res_c = runs[clf]
    nv = cached(X.laplace_vs_nuts, name=clf, n_samples=nuts_samples, warmup=nuts_warmup, seed=seed, device=str(dev))
    kl_ln = nv["kl"]
    print(f"{clf}: max |mean_NUTS − mode| / sd_Laplace = {nv['max_z_mean']:.3f}; sd ratio NUTS/Laplace in "
          f"[{nv['sd_ratio_min']:.3f}, {nv['sd_ratio_max']:.3f}]; KL(Laplace ‖ NUTS Gaussian fit) = {kl_ln:.3f} nats "
          f"({nuts_samples} draws: Monte-Carlo error of that KL ≈ D²/(4·n) = {nv['kl_mc_error']:.3f})")
    results.record(CH, f"laplace_vs_nuts_kl_{clf}", kl_ln, profile=profile, unit="nats",
                   description="KL(Laplace ‖ Gaussian fit to NUTS draws), logistic regression")

# %% [markdown]
# ## Variational EM for the prior precision (§7.3, Figure 6)
#
# Bayesian softmax regression with prior $\mathcal N(0,\lambda^{-1}I)$ on all $P = DK$ weights. The per-example loss
# is $\ell_n = -\log p(y_n\mid x_n,\theta) + \frac1N\big(\frac\lambda2|\theta|^2 - \frac P2\log\lambda\big)$, so the
# objective is the paper's $\frac\lambda2|\theta|^2 - \frac{P}{2}\log\lambda + \sum_n[\dots]$ divided by $N$. Constant SGD
# samples $\theta$ at the current $\lambda$ (E-step) while $\lambda$ follows a decreasing-step stochastic gradient of the
# same objective (M-step). Setting $\partial_\lambda\,\mathbb E_q[\cdot] = 0$ gives the closed-form M-step
# $\lambda = P/\mathbb E_q|\theta|^2$, so **every** Gaussian-$q$ VEM converges to a fixed point of
#
# $$ f_q(\lambda) = \frac{P}{|m_\lambda|^2 + \mathrm{Tr}\,\Sigma_q(\lambda)} ,$$
#
# which we can evaluate without any sampling on a grid of $\lambda$ from the MAP $m_\lambda$ and the Hessian:
# the Laplace posterior ($\Sigma_q = (NA)^{-1}$: the evidence-maximising λ, MacKay's $\lambda = \gamma/|m|^2$), its
# mean-field restriction ($1/(NA)_{kk}$: what BBVI's mean-field $q$ targets), a point mass (MAP-EM) and constant SGD's
# Lyapunov covariance at the VEM's $(\varepsilon, S)$. These fixed points are independent checks of the stochastic runs.
# We also check each run against its own M-step, $\lambda_{\rm VEM}$ vs $P/\overline{|\theta|^2}$ over its last quarter.
#
# The learning rate is a multiple of $1/\lambda_{\max}(A)$ (at the $\lambda = 1$ MAP): $\varepsilon^*$ itself is past the
# stability limit here. We run the VEM at two learning rates, the draft's $1/\lambda_{\max}$ and $1/(8\lambda_{\max})$.

# %%
vem_kw = dict(eps_factors=vem_eps_factors, S=S, n_chains=vem_chains, n_steps=vem_steps, bbvi_steps=vem_bbvi_steps,
              lambdas=vem_lambdas, seed=seed, device=str(dev))
vem_rows = [cached(X.digits_vem, **vem_kw)]
if mnist_n_train > 0:
    vem_rows.append(cached(X.mnist_vem, n_train=mnist_n_train, n_test=mnist_n_test, downsample=mnist_downsample,
                           **vem_kw))
fig = P.vem_figure(vem_rows)
vem_table = []
for r in vem_rows:
    key = "digits" if r["name"].startswith("sklearn") else "mnist"
    row = {"data set": r["name"], "P": r["P"], "validation-optimal": r["lam_val"],
           "EM, Laplace q (evidence)": r["fixed"]["laplace"], "EM, mean-field Laplace q": r["fixed"]["meanfield"],
           "EM, point mass (MAP-EM)": r["fixed"]["map"], "BBVI VEM (mean-field)": r["lam_bbvi"]}
    for v in r["vem"]:
        row[f"const-SGD VEM, ε = {v['factor']:g}/λ_max"] = v["lam"]
        row[f"  its M-step P/E|θ|², ε = {v['factor']:g}/λ_max"] = v["m_step"]
    row[f"OU prediction for ε = {r['vem'][-1]['factor']:g}/λ_max"] = r["fixed"]["sgd"]
    vem_table.append(row)
    results.record(CH, f"vem_lam_val_{key}", r["lam_val"], profile=profile, unit="1/units²",
                   description=f"validation-optimal prior precision λ (grid), softmax regression on {r['name']}")
    results.record(CH, f"vem_lam_laplace_em_{key}", r["fixed"]["laplace"], profile=profile, unit="1/units²",
                   description=f"EM fixed point with the Laplace posterior (evidence optimum), {r['name']}")
    results.record(CH, f"vem_lam_bbvi_{key}", r["lam_bbvi"], profile=profile, unit="1/units²",
                   description=f"λ from mean-field BBVI variational EM, {r['name']}")
    for v in r["vem"]:
        results.record(CH, f"vem_lam_sgd_{key}_eps{v['factor']:g}", v["lam"], profile=profile, unit="1/units²",
                       description=f"λ from constant-SGD VEM at ε = {v['factor']:g}/λ_max(A), {r['name']}")
    results.record(CH, f"vem_log10_ratio_vem_val_{key}", float(np.log10(r["vem"][-1]["lam"] / r["lam_val"])),
                   paper=0.0, profile=profile,
                   description="log10(λ_VEM / λ_validation) at the smaller ε; paper: they agree")
display(pd.DataFrame(vem_table).set_index("data set").T.style.format(
    lambda v: v if isinstance(v, str) else f"{v:.3g}", na_rep="outside grid"))

# %% [markdown]
# **What the numbers say** (the sentences below are computed from this run):

# %%
lines = []
for r in vem_rows:
    big, small = r["vem"][0], r["vem"][-1]
    lines.append(
        f"* **{r['name']}** (P = {r['P']}): each stochastic VEM run sits on its own closed-form M-step "
        f"(λ = {big['lam']:.3g} vs P/E|θ|² = {big['m_step']:.3g}; λ = {small['lam']:.3g} vs {small['m_step']:.3g}), "
        f"so the λ recursion and its gradient are right. The answer depends on ε/S, as E_q|θ|² = |m|² + Tr Σ with "
        f"Σ ∝ ε/S says it must: {big['lam']:.3g} at ε = {big['factor']:g}/λ_max, {small['lam']:.3g} at "
        f"ε = {small['factor']:g}/λ_max. The evidence (Laplace-EM) fixed point is {r['fixed']['laplace']:.3g}, the "
        f"mean-field one {r['fixed']['meanfield']:.3g}, BBVI ended at {r['lam_bbvi']:.3g} "
        f"(its trace is {'still moving' if abs(np.log(r['bbvi_trace'][-1] / r['bbvi_trace'][-5])) > 0.05 else 'flat'} "
        f"at the end), and the validation-optimal λ on the grid is {r['lam_val']:.3g}.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# Why they disagree, and why the paper's "VEM ≈ validation-optimal ≈ BBVI" is not reproduced here:
#
# 1. **At the larger ε the OU picture breaks.** The chains leave the quadratic basin ($|\theta|^2$ grows to many times
#    $|m|^2$): the gradient noise of softmax regression on nearly separable data is exponential in the margins, so a
#    modest excursion multiplies it, and the constant-$C$ assumption fails; λ then runs down towards zero.
# 2. **At the smaller ε the chains stay near the mode**, but their spread still exceeds the OU prediction computed with
#    $C$ at the mode (orange dash-dot map in the middle panel), for the same reason, so λ lands below that prediction.
# 3. **Constant SGD has no variance where only the prior acts**: the prior term of $\ell_n$ is identical for every
#    example and adds no gradient noise, while the posterior has variance $1/\lambda$ in those directions. The missing
#    $\mathrm{Tr}\,\Sigma$ pushes constant-SGD (and mean-field) VEM above the evidence fixed point.
# 4. **The evidence optimum is not the validation optimum** on these small training sets (with the MAP's held-out
#    log-likelihood as the criterion), so even exact VEM would not land on the validation-optimal λ.
#
# So the three estimators target different fixed points; the closed-form maps in the middle panels show which, and the
# stochastic runs land where their own $q$ puts them.

# %% [markdown]
# ## Explore: learning rate, minibatch size, preconditioner
#
# The static figure shows the default (plain SGD at $\varepsilon^*$, $S$ = 10) on the regression data set; with a live
# kernel the sliders rerun `widget_chains` chains and redraw the predicted (Lyapunov) and empirical stationary
# ellipses over the posterior. Past the stability limit the chains diverge and the panel says so.

# %%
from sgdbayes.widgets.constant_sgd import stationary_explorer  # noqa: E402

static, ui = stationary_explorer(model_reg, A_reg, C_reg, pm, pc, S=S, n_chains=widget_chains,
                                 n_steps=widget_steps, seed=seed)
display(static)
plt.close(static)            # shown once, above; not again by the inline backend
display(ui)

# %%
elapsed = time.time() - t_start
print(f"chapter ran in {elapsed:.0f} s (profile {profile})")
