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
n_chains = 500              # independent chains per method, all in one tensor
n_steps = 3000               # steps per chain (burn-in: 3 relaxation times, at most half)
thin = 10                    # keep every thin-th state after burn-in
datasets = ["diabetes", "fair"]  # offline data sets of Table 1; the paper profile adds randhie (N 20,190)
uci_datasets = ["wine_quality", "skin", "protein"]  # the paper's data sets (downloaded; offline → reported not run)
sgld_excess = 0.1            # SGLD ε chosen so its predicted excess covariance is ~10 % of the posterior's
bbvi_steps = 1500            # BBVI (mean-field) optimisation steps
sweep_points = 9             # learning rates in the ε sweep
sweep_chains = 100           # chains per learning rate in the sweep
momentum_mu = 0.5            # momentum damping μ for the ε/(μS) invariance check
nuts_samples = 300           # NUTS draws for the Laplace check
nuts_warmup = 200
vem_steps = 2000             # constant-SGD VEM iterations
vem_chains = 8
vem_bbvi_steps = 500
vem_lambdas = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]   # grid for the validation-optimal λ
mnist_n_train = 1000         # MNIST subset size for VEM; 0 skips it
mnist_n_test = 1000
widget_chains = 300
widget_steps = 2000          # steps of the widget's chains (relaxation of the slowest direction ≈ 900 steps)

# %%
import os
import time

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from sgdbayes import results
from sgdbayes.cache import cached
from sgdbayes.data.download import DatasetUnavailableError
from sgdbayes.data.tabular import ONLINE, load_tabular
from sgdbayes.device import get_device
from sgdbayes.ou import theory as th
from sgdbayes.ou.chains import momentum_sgd, run_chains, sgd
from sgdbayes.ou.compare import METHODS, compare_samplers
from sgdbayes.ou.models import LinearRegression, LogisticRegression, SoftmaxRegression, max_curvature
from sgdbayes.ou.posteriors import bbvi, laplace_posterior, linear_regression_posterior
from sgdbayes.ou.posteriors import nuts_samples as run_nuts
from sgdbayes.ou.vem import map_estimate, validation_prior_precision, vem_prior_precision
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
# $\varepsilon \to \varepsilon/\mu$: only $\varepsilon/(\mu S)$ matters. Constant-rate SGLD
# ($\theta \leftarrow \theta - \frac\varepsilon2 N\hat g_S + \sqrt\varepsilon\,w$) satisfies
# $\tfrac N2(A\Sigma+\Sigma A) = I + \frac{\varepsilon N^2}{4S}C$: the posterior plus an excess of order $\varepsilon$
# (our $\hat g_S$ is the minibatch *mean* of $\nabla\ell_n$, hence the constant $N^2/4S$). SGFS adds preconditioned
# noise $\sqrt\varepsilon HEw$ and is exact with $H^* = \frac2N(\varepsilon C/S + EE^\top)^{-1}$.
#
# **Stability.** The discrete recursion $\theta \leftarrow (I-\varepsilon HA)\theta + \text{noise}$ has a stationary
# law only if every eigenvalue of $\varepsilon HA$ lies in $(0,2)$, i.e. $\varepsilon < 2/\lambda_{\max}(HA)$ (for
# SGLD: $\varepsilon < 4/(N\lambda_{\max}(A))$). Above it the iterates diverge; `sgdbayes.ou` warns
# (`StabilityWarning`) when it knows $A$ and detects divergence (non-finite or exploding iterates) in the chains,
# raising `DivergenceError` or flagging the chains — never averaging them in. The Lyapunov equation is itself a
# first-order approximation: the exact stationary covariance of the linear recursion differs at relative order
# $\varepsilon\lambda_{\max}(HA)$ (`discrete=True` solves it exactly).

# %% [markdown]
# ## Table 1: how close does each sampler get?
#
# For each data set we compute the posterior (exact Gaussian for linear regression with $\sigma^2=1$ on standardised
# targets; Laplace for logistic regression, checked against NUTS below), $A$ and $C$ at the mode from per-example
# gradients, and run `n_chains` independent chains of each method in one tensor, each chain drawing its own
# minibatches (with replacement, so the minibatch-noise covariance is exactly $C/S$). Chains start from posterior
# draws and are burnt in for three relaxation times $1/\lambda_{\min}(\varepsilon HA)$ (at most half the run). The
# KL is between a Gaussian fitted to the pooled iterates and the posterior, both directions; the paper's derivation
# uses $\mathrm{KL}(q\,\|\,p)$, and its table caption does not say, so we give both.

# %%
def load_model(name):
    d = load_tabular(name)
    if d.task == "regression":
        model = LinearRegression(d.X, d.y, device=dev)
        pm, pc = linear_regression_posterior(d.X, d.y)
    else:
        model = LogisticRegression(d.with_bias(), d.y, device=dev)
        pm, pc = laplace_posterior(model)
    return d, model, pm, pc


def table_row(name):
    d, model, pm, pc = load_model(name)
    params = dict(name=name, S=S, n_chains=n_chains, n_steps=n_steps, thin=thin, sgld_excess=sgld_excess,
                  bbvi_steps=bbvi_steps, seed=seed)
    res = cached("constant_sgd_table1", params, lambda: compare_samplers(
        model, pm, pc, S=S, n_chains=n_chains, n_steps=n_steps, thin=thin, sgld_excess=sgld_excess,
        bbvi_steps=bbvi_steps, seed=seed))
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
        row[f"{name}: KL(q‖p)"] = meth[m]["kl_qp"]
        row[f"{name}: KL(p‖q)"] = meth[m]["kl_pq"]
        row[f"{name}: predicted KL(q‖p)"] = meth[m]["kl_qp_pred"]
    for j, pn in enumerate(("Wine", "Skin", "Protein")):
        row[f"paper {pn}"] = PAPER[m][j]
    rows.append(row)
df = pd.DataFrame(rows).set_index("method")
display(df.style.format("{:.3g}"))

for name, meth in table.items():
    for m in METHODS:
        results.record(CH, f"kl_{m}_{name}", meth[m]["kl_qp"], profile=profile, unit="nats",
                       description=f"KL(stationary ‖ posterior), {LABEL[m]}, {name} (N={runs[name][0].N})")
        results.record(CH, f"kl_pq_{m}_{name}", meth[m]["kl_pq"], profile=profile, unit="nats",
                       description=f"KL(posterior ‖ stationary), {LABEL[m]}, {name}")
for name in uci_datasets:
    j = {"wine_quality": 0, "skin": 1, "protein": 2}[name]
    for m in METHODS:
        if name in table:
            results.record(CH, f"kl_{m}_{name}_uci", table[name][m]["kl_qp"], paper=PAPER[m][j], profile=profile,
                           unit="nats", description=f"KL(stationary ‖ posterior), {LABEL[m]}, UCI {name}")
        else:
            results.record(CH, f"kl_{m}_{name}_uci", "not run (offline)", paper=PAPER[m][j], profile=profile,
                           unit="nats", description=f"KL, {LABEL[m]}, UCI {name}: data not available offline")

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
# inequality on every data set (in the direction $\mathrm{KL}(q\,\|\,p)$) and record it.

# %%
checks = []
for name, meth in table.items():
    k = {m: meth[m]["kl_qp"] for m in METHODS}
    for label, ok in (("full ≪ SGLD", k["sgd_full"] < k["sgld"]), ("SGFS-full ≪ SGLD", k["sgfs_full"] < k["sgld"]),
                      ("SGLD < diagonal", k["sgld"] < k["sgd_diag"]), ("diagonal < plain", k["sgd_diag"] < k["sgd"]),
                      ("full ≈ SGFS-full (within ×3 or both < 0.1)",
                       max(k["sgd_full"], k["sgfs_full"]) < 0.1 or
                       max(k["sgd_full"], k["sgfs_full"]) < 3 * min(k["sgd_full"], k["sgfs_full"]))):
        checks.append({"data set": name, "check": label, "holds": bool(ok)})
        key = label.split(" (")[0].replace(" ", "_").replace("≪", "lt").replace("<", "lt").replace("≈", "approx")
        results.record(CH, f"order_{key}_{name}", bool(ok), paper=True, profile=profile,
                       description=f"ordering check '{label}' on {name}")
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
# One tensor of `sweep_points × sweep_chains` chains, each group with its own learning rate, from $\varepsilon^*/8$ up
# to just below the stability limit.

# %%
A_reg, C_reg = res_reg["A"], res_reg["C"]
eps_star = th.optimal_learning_rate(C_reg, N=model_reg.N, S=S)
eps_lim = th.stability_limit(A_reg)
grid = np.geomspace(eps_star / 8, min(8 * eps_star, 0.9 * eps_lim), sweep_points)


def sweep():
    eps_vec = np.repeat(grid, sweep_chains)
    init = np.random.default_rng(seed).multivariate_normal(pm, pc, size=eps_vec.size)
    relax = 1 / (grid.min() * np.linalg.eigvalsh(A_reg)[0])
    steps = int(max(n_steps, 4 * relax))
    r = run_chains(model_reg, sgd(eps_vec, S), n_chains=eps_vec.size, n_steps=steps, burn_in=steps // 2,
                   thin=thin, init=init, seed=seed + 100, A=A_reg, on_divergence="mark")
    covs = r.group_cov(sweep_points)
    means = r.samples.double().reshape(r.samples.shape[0], sweep_points, sweep_chains, -1).mean((0, 2)).numpy()
    return {"covs": covs, "means": means, "steps": steps}


sw = cached("constant_sgd_sweep", dict(reg=reg, S=S, grid=grid, chains=sweep_chains, n_steps=n_steps, thin=thin,
                                       seed=seed), sweep)
kl_emp = [th.gaussian_kl(mu, c, pm, pc) for mu, c in zip(sw["means"], sw["covs"])]
kl_pred = [th.kl_to_posterior(th.lyapunov_covariance(A_reg, C_reg, eps=e, S=S), A_reg, N=model_reg.N) for e in grid]
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
def momentum_check():
    init = np.random.default_rng(seed).multivariate_normal(pm, pc, size=n_chains)
    relax = 1 / (eps_star * np.linalg.eigvalsh(A_reg)[0])
    steps = int(max(n_steps, 4 * relax))
    out = {}
    for key, smp in (("sgd", sgd(eps_star, S)), ("momentum", momentum_sgd(momentum_mu * eps_star, momentum_mu, S)),
                     ("sgd_2S", sgd(2 * eps_star, 2 * S))):
        r = run_chains(model_reg, smp, n_chains=n_chains, n_steps=steps, burn_in=steps // 2, thin=thin, init=init,
                       seed=seed + 200, A=A_reg)
        out[key] = r.cov()
    return out


mom = cached("constant_sgd_momentum", dict(reg=reg, S=S, mu=momentum_mu, n_chains=n_chains, n_steps=n_steps,
                                           thin=thin, seed=seed), momentum_check)
pred = th.lyapunov_covariance(A_reg, C_reg, eps=eps_star, S=S)
mrows = []
for key, c in mom.items():
    e = np.linalg.norm(c - mom["sgd"]) / np.linalg.norm(mom["sgd"])
    mrows.append({"run": key, "Tr Σ": np.trace(c), "‖Σ − Σ_sgd‖/‖Σ_sgd‖": e,
                  "‖Σ − Σ_Lyapunov‖/‖Σ_Lyapunov‖": np.linalg.norm(c - pred) / np.linalg.norm(pred)})
display(pd.DataFrame(mrows).set_index("run").style.format("{:.3g}"))
results.record(CH, f"momentum_vs_sgd_rel_diff_{reg}", mrows[1]["‖Σ − Σ_sgd‖/‖Σ_sgd‖"], profile=profile,
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
    draws = cached("constant_sgd_nuts", dict(name=clf, n=nuts_samples, w=nuts_warmup, seed=seed),
                   lambda: run_nuts(model_c, num_samples=nuts_samples, warmup=nuts_warmup, seed=seed))
    lm, lc = res_c["post_mean"], res_c["post_cov"]
    nm, nc = draws.mean(0), np.cov(draws.T)
    z = np.abs(nm - lm) / np.sqrt(np.diag(lc))
    sd_ratio = np.sqrt(np.diag(nc) / np.diag(lc))
    kl_ln = th.gaussian_kl(lm, lc, nm, nc)
    print(f"{clf}: max |mean_NUTS − mode| / sd_Laplace = {z.max():.3f}; sd ratio NUTS/Laplace in "
          f"[{sd_ratio.min():.3f}, {sd_ratio.max():.3f}]; KL(Laplace ‖ NUTS Gaussian fit) = {kl_ln:.3f} nats "
          f"({nuts_samples} draws: Monte-Carlo error of that KL ≈ D²/(4·n) = {d_c.D**2 / (4 * nuts_samples):.3f})")
    results.record(CH, f"laplace_vs_nuts_kl_{clf}", kl_ln, profile=profile, unit="nats",
                   description="KL(Laplace ‖ Gaussian fit to NUTS draws), logistic regression")

# %% [markdown]
# ## Variational EM for the prior precision (§7.3, Figure 6)
#
# Bayesian softmax regression with prior $\mathcal N(0,\lambda^{-1}I)$. Constant SGD samples $\theta$ at the current
# $\lambda$ (E-step) while $\lambda$ follows a decreasing-step stochastic gradient of the same objective (M-step),
# whose fixed point is $\lambda = P/\mathbb E_q|\theta|^2$. BBVI does the same with a mean-field Gaussian $q$ and the
# exact M-step every iteration. Both are compared with the $\lambda$ that maximises the validation log-likelihood of
# the MAP. The learning rate is $\min(\varepsilon^*, 1/\lambda_{\max}(A))$ — half the stability limit — because for
# softmax regression $\varepsilon^*$ itself is past it (many directions carry almost no gradient noise).

# %%
def vem_experiment(Xtr, ytr, Xva, yva, name):
    K = int(max(ytr.max(), yva.max()) + 1)
    model = SoftmaxRegression(Xtr, ytr, n_classes=K, prior_precision=1.0, device=dev)
    mode = map_estimate(model)
    lmax = max_curvature(model, mode)
    eps = min(2 * S * model.P / (model.N * model.noise_trace(mode)), 1.0 / lmax)
    r = vem_prior_precision(model, eps=eps, S=S, n_chains=vem_chains, n_steps=vem_steps, init=mode, seed=seed)
    model.prior_precision = 1.0
    q = bbvi(model, family="meanfield", n_steps=vem_bbvi_steps, lr=0.02, n_mc=4, batch_size=200, init=mode,
             learn_prior_precision=True, seed=seed)
    lam_val, scores = validation_prior_precision(Xtr, ytr, Xva, yva, vem_lambdas, n_classes=K)
    return {"name": name, "lambdas": np.array(vem_lambdas), "scores": scores, "trace": r.trace,
            "lam_vem": r.prior_precision, "lam_bbvi": float(q.prior_precision[-1]), "lam_val": lam_val, "eps": eps}


dg = load_tabular("digits")
perm = np.random.default_rng(seed).permutation(dg.N)
ntr = int(0.67 * dg.N)
Xd = dg.with_bias()
vem_rows = [cached("constant_sgd_vem", dict(name="digits", steps=vem_steps, chains=vem_chains, b=vem_bbvi_steps,
                                            lams=vem_lambdas, S=S, seed=seed),
                   lambda: vem_experiment(Xd[perm[:ntr]], dg.y[perm[:ntr]], Xd[perm[ntr:]], dg.y[perm[ntr:]],
                                          "sklearn digits (8×8)"))]
if mnist_n_train > 0:
    from sgdbayes.data.mnist import load_mnist_subset
    mn = load_mnist_subset(mnist_n_train, mnist_n_test, seed=seed, binarize=False)
    xtr = mn.x_train.reshape(mnist_n_train, -1).double().numpy()
    xte = mn.x_test.reshape(mnist_n_test, -1).double().numpy()
    keep = xtr.std(0) > 0
    mu_, sd_ = xtr[:, keep].mean(0), xtr[:, keep].std(0)
    xtr = np.column_stack([(xtr[:, keep] - mu_) / sd_, np.ones(len(xtr))])
    xte = np.column_stack([(xte[:, keep] - mu_) / sd_, np.ones(len(xte))])
    vem_rows.append(cached("constant_sgd_vem", dict(name="mnist", n=mnist_n_train, m=mnist_n_test, steps=vem_steps,
                                                    chains=vem_chains, b=vem_bbvi_steps, lams=vem_lambdas, S=S,
                                                    seed=seed),
                           lambda: vem_experiment(xtr, mn.y_train.numpy(), xte, mn.y_test.numpy(),
                                                  f"MNIST subset ({mnist_n_train} train)")))
fig = P.vem_figure(vem_rows)
for r in vem_rows:
    key = "digits" if r["name"].startswith("sklearn") else "mnist"
    for k in ("lam_vem", "lam_bbvi", "lam_val"):
        results.record(CH, f"vem_{k}_{key}", r[k], profile=profile, unit="1/units²",
                       description=f"prior precision λ, {k.split('_')[1]}, softmax regression on {r['name']}")
    results.record(CH, f"vem_log10_ratio_vem_val_{key}", float(np.log10(r["lam_vem"] / r["lam_val"])), paper=0.0,
                   profile=profile, description="log10(λ_VEM / λ_validation); paper: they agree")
display(pd.DataFrame([{k: r[k] for k in ("name", "lam_vem", "lam_bbvi", "lam_val", "eps")} for r in vem_rows]))

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
display(ui)

# %%
elapsed = time.time() - t_start
print(f"chapter ran in {elapsed:.0f} s (profile {profile})")
