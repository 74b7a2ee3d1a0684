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
# # Is SGD a Bayesian sampler? Function probabilities
#
# Train the same network many times from fresh random initialisations until it classifies its training set $S$
# perfectly, and record the labelling $f$ it then gives a fixed test set $E$. The fraction of runs that end on $f$
# is
#
# $$
# P_{\mathrm{SGD}}(f \mid S) = \frac{\#\{\text{runs ending on } f\}}{\#\{\text{runs that fit } S\}} .
# $$
#
# Mingard, Valle-Pérez, Skalse & Louis (2020) compare it with the Bayesian posterior of the *same* network with its
# parameters drawn from the distribution used to initialise it and a 0–1 likelihood (a network either fits $S$ or
# it does not):
#
# $$
# P_B(f \mid S) = \frac{P(S \cup (E, f))}{P(S)} ,
# $$
#
# where $P(\cdot)$ is the prior probability that a random network labels those inputs that way. We estimate
# $P_B$ two independent ways: by **direct sampling** (draw networks from the prior, keep those that fit $S$, count
# their $f$) and by **Expectation Propagation** on the network's Gaussian-process limit (NNGP kernel), where both
# marginal likelihoods are EP approximations, $\log P_B = \log Z_{\mathrm{EP}}(S\cup(E,f)) - \log Z_{\mathrm{EP}}(S)$.
# The paper's claim: $P_{\mathrm{SGD}}(f\mid S) \approx P_B(f\mid S)$ to within about an order of magnitude over
# many orders of magnitude, with "second-order" differences between optimisers and batch sizes.
#
# Networks are trained thousands at a time (`sgdbayes.ensembles`), in seeded shards stored as they finish
# (`sgdbayes.distributed`, so an interrupted build resumes); all computation is in
# `sgdbayes.experiments.function_probability`, the figures in `sgdbayes.plots.function_probability`.

# %% tags=["parameters"]
profile = "default"
device = "auto"
seed = 0
scheduler = "auto"          # "auto": $SGDBAYES_DASK_SCHEDULER when set, else "sync" (in this process); or "local"
# --- (a) Boolean system: n = 7, all 128 inputs, FCN 7 → 40 → 40 → 1 (ReLU), prior = initialisation
bool_target = "0011"        # tiled to 128 bits, K_LZ 28 (paper: targets of K_LZ 28 to 42)
bool_n_train = 32           # size of S (paper: 32; E is the other 96 inputs)
bool_hidden = [40, 40]
bool_sigma_w = 1.0
bool_sigma_b = 1.0
bool_networks = 10000       # networks in the main histogram (paper: 6·10^5)
bool_optimizer = "sgd"      # main run: plain SGD, batch 8, cross-entropy (paper: SGD, batch 8, CE)
bool_lr = 0.1               # our choice (fits in ~8 epochs; the paper's scripts use smaller rates, see the text)
bool_batch = 8
bool_max_epochs = 2000      # budget: a network not fitted after this is reported as "never fitted"
bool_prior_samples = 10000000   # direct sampling of P_B (paper: 10^7–10^10)
ep_min_count = 2            # P_B by EP for every function SGD found at least this often
# --- (c) optimisers and batch sizes (second-order differences), (d) overtraining, |S| = 64
opt_names = ["sgd", "adam", "adagrad", "rmsprop", "adadelta"]
opt_lrs = [0.1, 0.01, 0.01, 0.01, 1.0]      # torch/Keras defaults except SGD (see text)
opt_batches = [8, 32]
opt_networks = 2000         # networks per optimiser × batch setting
opt_min_count = 5           # settings: functions seen at least this often enter their correlation
opt_ep_min_count = 5        # settings: P_B by EP for functions seen at least this often
overtrain_epochs = 64       # as in the paper
overtrain_networks = 10000
large_n_train = 64          # paper, S of 64: 486 distinct functions, top-1 0.977
large_networks = 10000
# --- (b) MNIST subset (5,000 shipped digits, label ≥ 5 → 1), FCN 784 → 40 → 40 → 1
mnist_source = "subset"     # "subset": the 5,000 shipped digits; "mnist": full MNIST (downloaded; for 10^4)
mnist_n_train = 500         # paper: 10^4
mnist_n_test = 100          # paper: 100
mnist_hidden = [40, 40]     # paper: 2 × 784
mnist_sigma_w = 1.0
mnist_sigma_b = 0.0357      # as in the authors' MNIST scripts
mnist_networks = 1000
mnist_optimizer = "sgd"
mnist_lr = 0.05
mnist_batch = 32            # paper: 32, MSE
mnist_loss = "mse"
mnist_overtrain = 0         # paper: 64
mnist_ep_method = "two_stage"   # "full" costs O((|S|+|E|)^3) per function
min_count = 10              # functions seen at least this often enter the correlation statistics

# %%
import time

import numpy as np
import pandas as pd
from IPython.display import display

from sgdbayes import plots, results
from sgdbayes.data import boolean_split, load_mnist, load_mnist_subset
from sgdbayes.device import get_device
from sgdbayes.experiments import function_probability as fp
from sgdbayes.plots import function_probability as fplots
from sgdbayes.widgets import function_probability as fwidget

plots.book_style()
dev = get_device(device)
CH = "function_probability"
results.clear(CH)
sched = fp.resolve_scheduler(scheduler)
t_start = time.time()
print(f"profile={profile}, device={dev}, scheduler={sched}")


def record(name, value, paper=None, description="", unit=""):
    results.record(CH, name, value, paper=paper, description=description, unit=unit, profile=profile)


def train(split_or_xy, n, **kw):
    """P_SGD runs on a split, sharded and resumable (shards of ≤ 2,000 networks)."""
    x_tr, y_tr, x_te = split_or_xy
    return fp.train_functions(x_tr, y_tr, x_te, n_networks=n, seed=seed, shard_size=2000, scheduler=sched,
                              device=str(dev), progress=False, **kw)


# %% [markdown]
# ## 1. The Boolean system
#
# All $2^7 = 128$ inputs $x \in \{0,1\}^7$; the target labels input $i$ by the repeating pattern `0011`, a simple
# function (Lempel–Ziv complexity 28). $S$ is a random subset of the inputs with their target labels, $E$ all the
# others, so a function on $E$ is a 96-bit string when $|S| = 32$. Parameters are initialised as
# $W \sim \mathcal N(0, \sigma_w^2/\text{fan-in})$, $b \sim \mathcal N(0, \sigma_b^2)$ with $\sigma_w = \sigma_b = 1$,
# which is also the prior of $P_B$ and the NNGP kernel of EP.

# %% [markdown]
# The main run uses plain SGD (no momentum) with batch 8 and cross-entropy, as the paper's headline Boolean run, at
# learning rate 0.1 so that a network fits $S$ within a few epochs; the authors' scripts used smaller rates, which
# need many more epochs, and in our trial runs gave a less concentrated $P_{\mathrm{SGD}}$ — the learning rate is one
# more of the "second-order" knobs of Section 3.

# %%
bs = boolean_split(bool_target, bool_n_train, seed=seed)
bool_xy = (bs.x_train, bs.y_train, bs.x_test)
arch = dict(hidden=bool_hidden, sigma_w=bool_sigma_w, sigma_b=bool_sigma_b, max_epochs=bool_max_epochs)
t0 = time.time()
main = train(bool_xy, bool_networks, optimizer=bool_optimizer, lr=bool_lr, batch_size=bool_batch, loss="ce", **arch)
t_main = time.time() - t0
prior = fp.prior_functions(*bool_xy, n_samples=bool_prior_samples, seed=seed, scheduler=sched, progress=False,
                           widths=bool_hidden, sigma_w=bool_sigma_w, sigma_b=bool_sigma_b, device=str(dev))
t_prior = time.time() - t0 - t_main
ep_main = fp.ep_log_pb(*bool_xy, main.counts, depth=len(bool_hidden), sigma_w=bool_sigma_w, sigma_b=bool_sigma_b,
                       method="full", min_count=ep_min_count)
t_ep = time.time() - t0 - t_main - t_prior
pd.DataFrame({"P_SGD: SGD runs": main.summary(),
              "P_B: prior samples": {"networks": prior.n_sampled, "counted": prior.n_consistent,
                                     "distinct functions": prior.counts.n_distinct}}).T

# %% [markdown]
# Every network is accounted for: "never fitted" networks hit the epoch budget, "diverged" ones produced a
# non-finite parameter or logit; neither is counted in $P_{\mathrm{SGD}}$. Of the prior samples, only the fraction
# $P(S)$ that happens to label $S$ correctly is kept:

# %%
print(f"P(S) ≈ {prior.p_train:.3g}: {prior.n_consistent} of {prior.n_sampled:,} prior networks fit S")
print(f"EP (method='full', step likelihood) evaluated {len(ep_main)} functions "
      f"(those seen ≥ {ep_min_count} times by SGD), {ep_main.n_failed} failed to converge")
print(f"time: SGD {t_main:.0f} s, prior sampling {t_prior:.0f} s, EP {t_ep:.0f} s (0 when cached)")

# %% [markdown]
# ### P_SGD against P_B
#
# Each point is a function SGD found; the line is $P_{\mathrm{SGD}} = P_B$ and the grey band one order of magnitude
# either side. Left: $P_B$ from EP (every function seen at least twice). Right: $P_B$ from direct sampling, which
# can only resolve the few functions whose complete 128-bit labelling is probable enough to be drawn repeatedly
# (the count of $f$ among prior samples estimates $P(S\cup(E,f))$, whatever $|S|$ is).

# %%
lp_ep = ep_main.lookup(main.counts)
lp_direct, _ = prior.log_pb(main.counts)
fig = fplots.figure_scatter_panels(
    [("EP", main.counts, lp_ep, "P_B(f|S), EP"),
     ("direct sampling", main.counts, np.where(prior.counts.lookup(main.counts.bits()) >= 2, lp_direct, np.nan),
      "P_B(f|S), direct (≥ 2 samples)")],
    bs.y_test, n_test=bs.n_test)

# %%
stats = fp.headline_statistics(main.counts, lp_ep, bs.y_test, min_count=min_count)
stats_direct = fp.headline_statistics(main.counts, lp_direct, bs.y_test, min_count=min_count)
pd.DataFrame({"P_B by EP": stats, "P_B by direct sampling": stats_direct}).round(4)

# %% [markdown]
# The top of the two distributions, function by function (the first is the target's own labelling of $E$ when it has
# 0 errors):

# %%
pd.DataFrame({"errors on E": main.counts.errors(bs.y_test)[:8],
              "P_SGD": main.counts.probabilities()[:8],
              "P_B (EP)": np.exp(lp_ep[:8]),
              "P_B (direct)": np.exp(lp_direct[:8]),
              "K_LZ": fp.lz_of_functions(bs, main.counts)[:8]},
             index=pd.RangeIndex(1, min(8, main.counts.n_distinct) + 1, name="rank under P_SGD")).round(5)

# %% [markdown]
# ### Rank plots and error histograms
#
# Sorting each distribution by probability shows how concentrated it is; the error histograms compare the expected
# generalisation under SGD with that under the Bayesian posterior. The direct-sampling histogram is over *all*
# prior samples that fit $S$ (no restriction to SGD's functions); the EP one is $P_B$ restricted to, and
# renormalised over, the functions SGD found.

# %%
fig = fplots.figure_ranks_errors(
    {"P_SGD (SGD runs)": main.counts.probabilities(), "P_B (direct sampling)": prior.counts.probabilities(),
     "P_B (EP, SGD's functions)": np.exp(lp_ep)},
    {"P_SGD": fp.error_distribution(main.counts, bs.y_test),
     "P_B, direct sampling": fp.error_distribution(prior.counts, bs.y_test),
     "P_B, EP on SGD's functions": fp.error_distribution(main.counts, bs.y_test, weights=np.exp(lp_ep))},
    titles=(f"|S| = {bs.n_train}, {main.n_counted:,} runs", "errors on E (|E| = %d)" % bs.n_test))

# %% [markdown]
# ### P_B and complexity
#
# The prior of a network is biased toward simple functions; with $S$ fixed, $P_B(f\mid S)$ should fall with the
# Lempel–Ziv complexity of the complete function ($S$'s labels plus $f$ on $E$). Marker area grows with
# $P_{\mathrm{SGD}}$.

# %%
fig = fplots.figure_lz(fp.lz_of_functions(bs, main.counts), lp_ep, main.counts.probabilities(),
                 title="P_B (EP) of the functions SGD found")

# %%
paper_bool = {"n_distinct": 33298, "top1": 0.653, "top10": 0.697}
record("bool_corr_log_psgd_log_pb_ep", stats["corr_log"],
       description=f"Boolean |S|={bs.n_train}: Pearson r of log P_SGD vs log P_B (EP) over functions seen ≥ {min_count}×")
record("bool_frac_within_decade_ep", stats["frac_within_decade"],
       description="Boolean: fraction of those functions with P_SGD within 10× of P_B (EP)")
record("bool_corr_log_psgd_log_pb_direct", stats_direct["corr_log"],
       description="Boolean: the same correlation with P_B by direct sampling (functions seen ≥ "
                   f"{min_count}× by SGD and sampled at least once)")
record("bool_n_distinct", stats["n_distinct"], paper=paper_bool["n_distinct"],
       description=f"Boolean: distinct functions in {main.n_counted:,} SGD runs (paper: in 6×10^5 runs)")
record("bool_top1_mass", stats["top1"], paper=paper_bool["top1"], description="Boolean: P_SGD of the top function")
record("bool_top10_mass", stats["top10"], paper=paper_bool["top10"], description="Boolean: P_SGD mass of the top 10")
record("bool_mean_error_sgd", stats["mean_error_sgd"], description="Boolean: mean test error under P_SGD")
record("bool_mean_error_pb_direct", float((fp.error_distribution(prior.counts, bs.y_test) *
                                           np.arange(bs.n_test + 1)).sum() / bs.n_test),
       description="Boolean: mean test error under P_B (direct sampling, all prior samples fitting S)")
record("bool_mean_error_pb_ep", stats["mean_error_pb"],
       description="Boolean: mean test error under P_B (EP), restricted to SGD's functions")
record("bool_pb_top_direct", float(prior.counts.top_k_mass(1)), paper=0.14,
       description="Boolean: P_B of the most probable function by direct sampling")
record("bool_networks_not_fitted", main.n_not_fitted + main.n_diverged + main.n_lost_fit, paper=None,
       description="Boolean main run: networks never fitted, diverged or lost the fit (not counted)")

# %% [markdown]
# ## 2. MNIST
#
# A random $S$ of the 5,000 digits shipped with the library (full MNIST in the paper profile) and a disjoint $E$ of
# 100 digits; label 1 for digits
# ≥ 5. The FCN is trained with mean-squared error on ±1 targets, as in the paper's MNIST experiment, but at a scale a
# small CPU affords (the paper: $|S| = 10^4$, hidden widths 784). EP here is the two-stage form (GP posterior on
# $S$, then EP on $E$ per function): the full form costs $O((|S|+|E|)^3)$ per function.

# %%
ms = (load_mnist_subset(mnist_n_train, mnist_n_test, seed=seed) if mnist_source == "subset"
      else load_mnist(mnist_n_train, mnist_n_test, seed=seed))
t0 = time.time()
mnist = train((ms.x_train, ms.y_train, ms.x_test), mnist_networks, hidden=mnist_hidden, sigma_w=mnist_sigma_w,
              sigma_b=mnist_sigma_b, optimizer=mnist_optimizer, lr=mnist_lr, batch_size=mnist_batch,
              loss=mnist_loss, overtrain_epochs=mnist_overtrain, max_epochs=bool_max_epochs)
t_mnist = time.time() - t0
ep_mnist = fp.ep_log_pb(ms.x_train, ms.y_train, ms.x_test, mnist.counts, depth=len(mnist_hidden),
                        sigma_w=mnist_sigma_w, sigma_b=mnist_sigma_b, method=mnist_ep_method, min_count=1)
lp_mnist = ep_mnist.lookup(mnist.counts)
stats_m = fp.headline_statistics(mnist.counts, lp_mnist, ms.y_test, min_count=min(min_count, 3))
print(f"MNIST: {mnist.n_networks} networks in {t_mnist:.0f} s; EP ({mnist_ep_method}) on {len(ep_mnist)} "
      f"functions in {time.time() - t0 - t_mnist:.0f} s, {ep_mnist.n_failed} failed")
pd.DataFrame({"MNIST run": mnist.summary()}).T

# %%
fig = fplots.figure_scatter_panels([("MNIST", mnist.counts, lp_mnist, "P_B(f|S), EP (two-stage)")], ms.y_test,
                             n_test=ms.n_test, width=4.6)

# %%
fig = fig = fplots.figure_ranks_errors(
    {"P_SGD": mnist.counts.probabilities(), "P_B (EP, SGD's functions)": np.exp(lp_mnist)},
    {"P_SGD": fp.error_distribution(mnist.counts, ms.y_test),
     "P_B, EP on SGD's functions": fp.error_distribution(mnist.counts, ms.y_test, weights=np.exp(lp_mnist))},
    titles=(f"MNIST |S| = {ms.n_train}, {mnist.n_counted:,} runs", f"errors on E (|E| = {ms.n_test})"))

# %% [markdown]
# At this scale ($|S| = 500$ rather than $10^4$, hidden widths 40 rather than 784) the networks generalise worse
# than in the paper and both distributions spread over far more functions; a few hundred runs resolve
# $P_{\mathrm{SGD}}$ only down to one over the number of runs, so the scatter shows only its head. The error
# histograms compare the two distributions as a whole.

# %%
pd.DataFrame({"MNIST": stats_m}).round(4)

# %%
record("mnist_corr_log_psgd_log_pb_ep", stats_m["corr_log"],
       description=f"MNIST |S|={ms.n_train}: Pearson r of log P_SGD vs log P_B (EP two-stage), functions seen ≥ "
                   f"{min(min_count, 3)}×")
record("mnist_frac_within_decade_ep", stats_m["frac_within_decade"],
       description="MNIST: fraction of those functions with P_SGD within 10× of P_B (EP)")
record("mnist_n_distinct", stats_m["n_distinct"], paper=95,
       description=f"MNIST: distinct functions in {mnist.n_counted} runs (paper: |S|=10^4, 2×784 FCN, +64 epochs)")
record("mnist_top1_mass", stats_m["top1"], paper=0.696, description="MNIST: P_SGD of the top function")
record("mnist_top10_mass", stats_m["top10"], paper=0.984, description="MNIST: P_SGD mass of the top 10")
record("mnist_mean_error_sgd", stats_m["mean_error_sgd"], paper=0.022,
       description="MNIST: mean test error under P_SGD (paper: ≈2.2% at |S|=10^4)")
record("mnist_mean_error_pb_ep", stats_m["mean_error_pb"],
       description="MNIST: mean test error under P_B (EP), restricted to SGD's functions")
record("mnist_networks_not_fitted", mnist.n_not_fitted + mnist.n_diverged + mnist.n_lost_fit,
       description="MNIST: networks never fitted, diverged or lost the fit (not counted)")

# %% [markdown]
# ## 3. Optimisers and batch sizes
#
# The same Boolean $S$, trained with each optimiser at two batch sizes (learning rates: PyTorch's defaults, which
# equal Keras', except plain SGD, run at 0.1 so that it fits in a few epochs). If SGD-like training samples
# functions roughly by $P_B$, every setting should scatter around the same line; the paper calls the remaining
# differences "second order". One EP run serves all settings (it is evaluated on the union of their functions).

# %%
t0 = time.time()
setting_runs = {}
for name, lr in zip(opt_names, opt_lrs):
    for b in opt_batches:
        setting_runs[(name, b, bool_n_train)] = train(bool_xy, opt_networks, optimizer=name, lr=lr, batch_size=b,
                                                      loss="ce", **arch)
ep_settings = fp.ep_log_pb(*bool_xy, [r.counts for r in setting_runs.values()], depth=len(bool_hidden),
                           sigma_w=bool_sigma_w, sigma_b=bool_sigma_b, method="full",
                           min_count=opt_ep_min_count).merge(ep_main)
setting_runs[(bool_optimizer, bool_batch, bool_n_train)] = main
print(f"settings: {time.time() - t0:.0f} s")
table = fp.settings_table({f"{k[0]}, batch {k[1]}": r for k, r in setting_runs.items()}, ep_settings, bs.y_test,
                          min_count=opt_min_count)
table.round(3)

# %%
keys = [k for k in setting_runs if k[1] == opt_batches[0]]
fig = fplots.figure_scatter_panels(
    [(f"{k[0]}, batch {k[1]}", setting_runs[k].counts, ep_settings.lookup(setting_runs[k].counts), "P_B (EP)")
     for k in keys], bs.y_test, n_test=bs.n_test, ncols=min(3, len(keys)), width=3.6)

# %%
record("opt_corr_range", [float(np.nanmin(table["corr(log P_SGD, log P_B)"])),
                          float(np.nanmax(table["corr(log P_SGD, log P_B)"]))],
       description="Boolean: range over optimiser × batch settings of corr(log P_SGD, log P_B (EP)), functions "
                   f"seen ≥ {opt_min_count}×")
record("opt_top1_range", [float(table["top-1 mass"].min()), float(table["top-1 mass"].max())],
       description="Boolean: range over optimiser × batch settings of the top-1 mass")
record("opt_networks_not_fitted", int((table["not fitted"] + table["diverged"]).sum()),
       description="Boolean settings: networks never fitted or diverged, all settings together")

# %% [markdown]
# ## 4. Overtraining and a larger training set
#
# Training on for $k$ more epochs after the network first fits $S$ (the paper: 64) keeps it at 100% training
# accuracy but moves it deeper into its basin; the paper finds this concentrates $P_{\mathrm{SGD}}$ on fewer
# functions. Doubling $|S|$ to 64 leaves fewer functions consistent with $S$ and concentrates both distributions.

# %%
t0 = time.time()
over = train(bool_xy, overtrain_networks, optimizer=bool_optimizer, lr=bool_lr, batch_size=bool_batch, loss="ce",
             overtrain_epochs=overtrain_epochs, **arch)
bl = boolean_split(bool_target, large_n_train, seed=seed)
large = train((bl.x_train, bl.y_train, bl.x_test), large_networks, optimizer=bool_optimizer, lr=bool_lr,
              batch_size=bool_batch, loss="ce", **arch)
ep_large = fp.ep_log_pb(bl.x_train, bl.y_train, bl.x_test, large.counts, depth=len(bool_hidden),
                        sigma_w=bool_sigma_w, sigma_b=bool_sigma_b, method="full", min_count=ep_min_count)
setting_runs[(bool_optimizer, bool_batch, large_n_train)] = large
print(f"overtraining and |S| = {large_n_train}: {time.time() - t0:.0f} s")
fig = fplots.figure_topk({f"|S| = {bool_n_train}, stop at fit": main.counts,
                          f"|S| = {bool_n_train}, +{overtrain_epochs} epochs": over.counts,
                          f"|S| = {large_n_train}, stop at fit": large.counts},
                         paper={f"|S| = 32, stop at fit": {1: 0.653, 10: 0.697, 100: 0.798, 1000: 0.894},
                                f"|S| = 32, +64 epochs": {1: 0.939}, "|S| = 64, stop at fit": {1: 0.977}},
                         title="concentration of P_SGD (crosses: the paper, 6×10^5 runs)")

# %%
pd.DataFrame({"stop at fit": main.summary(), f"+{overtrain_epochs} epochs": over.summary(),
              f"|S| = {large_n_train}": large.summary()}).T

# %%
record("overtrain_top1_mass", over.counts.top_k_mass(1), paper=0.939,
       description=f"Boolean |S|={bool_n_train}: top-1 mass after +{overtrain_epochs} epochs (paper: +64)")
record("overtrain_n_distinct", over.counts.n_distinct, paper=6632,
       description=f"Boolean: distinct functions after +{overtrain_epochs} epochs in {over.n_counted} runs "
                   "(paper: in 6×10^5 runs)")
record("large_S_top1_mass", large.counts.top_k_mass(1), paper=0.977,
       description=f"Boolean |S|={large_n_train}: top-1 mass")
record("large_S_n_distinct", large.counts.n_distinct, paper=486,
       description=f"Boolean |S|={large_n_train}: distinct functions in {large.n_counted} runs")

# %% [markdown]
# ## 5. Explore the runs
#
# The figure below is the default view (the main Boolean run); with a live kernel the drop-downs redraw the
# scatter and error histograms for any setting computed above (nothing is retrained).

# %%
explorer_runs = {k: (r, ep_large if k[2] == large_n_train else ep_settings, bl.y_test if k[2] == large_n_train
                     else bs.y_test) for k, r in setting_runs.items()}
static, explorer = fwidget.explorer(explorer_runs, default=(bool_optimizer, bool_batch, bool_n_train))

# %%
explorer

# %% [markdown]
# ## Summary
#
# The numbers recorded for the report, beside the paper's where it gives one:

# %%
rec = results.load(CH)["results"]
print(f"chapter time: {time.time() - t_start:.0f} s")
pd.DataFrame({k: {"value": v["value"], "paper": v["paper"], "what": v["description"]} for k, v in rec.items()}).T
