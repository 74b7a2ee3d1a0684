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
bool_gp_samples = 10000000  # i.i.d. draws of the NNGP itself (exact P_B of the infinite-width limit: EP's target)
bool_ess_chains = 512       # ... and elliptical slice sampling of the same GP posterior (many more samples)
bool_ess_steps = 400
ep_min_count = 2            # P_B by EP for every function SGD found at least this often
# --- (c) optimisers and batch sizes (second-order differences), (d) overtraining, |S| = 64
opt_names = ["sgd", "adam", "adagrad", "rmsprop", "adadelta"]
opt_lrs = [0.1, 0.01, 0.01, 0.01, 1.0]      # torch/Keras defaults except SGD (see text)
opt_batches = [8, 32]
opt_networks = 10000        # networks per optimiser × batch setting
opt_min_count = 5           # settings: functions seen at least this often enter their correlation
opt_ep_min_count = 5        # settings: P_B by EP for functions seen at least this often
overtrain_epochs = 64       # as in the paper
overtrain_networks = 10000
large_n_train = 64          # paper, S of 64: 486 distinct functions, top-1 0.977
large_networks = 10000
# --- (b) MNIST subset (5,000 shipped digits, label ≥ 5 → 1), FCN 784 → 40 → 40 → 1
mnist_source = "subset"     # "subset": the 5,000 shipped digits; "mnist": full MNIST (downloaded; for 10^4)
mnist_n_train = 400         # paper: 10^4 (400 keeps 10^4 networks within the 20-minute default book)
mnist_n_test = 100          # paper: 100
mnist_hidden = [40, 40]     # paper: 2 × 784
mnist_sigma_w = 1.0
mnist_sigma_b = 0.0357      # as in the authors' MNIST scripts
mnist_networks = 10000
mnist_optimizer = "sgd"
mnist_lr = 0.05
mnist_batch = 32            # paper: 32, MSE
mnist_loss = "mse"
mnist_overtrain = 0         # paper: 64
mnist_ep_method = "two_stage"   # "full" costs O((|S|+|E|)^3) per function
mnist_ess_chains = 128      # elliptical slice sampling of the exact GP posterior (checks EP's marginals)
mnist_ess_steps = 400
mnist_ess_burn_in = 200
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
bool_kernel = dict(depth=len(bool_hidden), sigma_w=bool_sigma_w, sigma_b=bool_sigma_b)
gp_exact = fp.gp_exact_functions(*bool_xy, n_samples=bool_gp_samples, seed=seed, **bool_kernel)
ep_marg_bool = fp.ep_marginals(*bool_xy, **bool_kernel)
t_gp = time.time() - t0 - t_main - t_prior - t_ep
pd.DataFrame({"P_SGD: SGD runs": main.summary(),
              "P_B: prior samples (networks)": {"networks": prior.n_sampled, "counted": prior.n_consistent,
                                                "distinct functions": prior.counts.n_distinct},
              "P_B: NNGP samples": {"networks": gp_exact.n_sampled, "counted": gp_exact.n_consistent,
                                    "distinct functions": gp_exact.counts.n_distinct}}).T

# %% [markdown]
# Every network is accounted for: "never fitted" networks hit the epoch budget, "diverged" ones produced a
# non-finite parameter or logit; neither is counted in $P_{\mathrm{SGD}}$. Of the prior samples, only the fraction
# $P(S)$ that happens to label $S$ correctly is kept:

# %%
print(f"P(S) ≈ {prior.p_train:.3g}: {prior.n_consistent} of {prior.n_sampled:,} prior networks fit S")
print(f"EP (method='full', step likelihood) evaluated {len(ep_main)} functions "
      f"(those seen ≥ {ep_min_count} times by SGD), {ep_main.n_failed} failed to converge")
print(f"P(S) of the NNGP ≈ {gp_exact.p_train:.3g}: {gp_exact.n_consistent} of {gp_exact.n_sampled:,} GP draws")
print(f"time: SGD {t_main:.0f} s, prior sampling {t_prior:.0f} s, EP {t_ep:.0f} s, GP sampling {t_gp:.0f} s "
      "(0 when cached)")

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
# The top of the distributions, function by function (the first is the target's own labelling of $E$ when it has
# 0 errors). "Exact GP" is $P_B$ of the network's infinite-width limit, the NNGP, estimated by drawing the Gaussian
# process itself and keeping the draws that fit $S$ (`sgdbayes.gp.sampling.sample_gp_rejection`): it is the
# quantity EP approximates, with only a binomial error.

# %%
top = min(8, main.counts.n_distinct)
lp_gp_main, sd_gp_main = gp_exact.log_pb(main.counts.bits(np.arange(top)))
pd.DataFrame({"errors on E": main.counts.errors(bs.y_test)[:top],
              "P_SGD": main.counts.probabilities()[:top],
              "P_B (EP)": np.exp(lp_ep[:top]),
              "P_B (exact GP)": np.exp(lp_gp_main),
              "± (1 sd)": np.where(np.isfinite(lp_gp_main), np.exp(lp_gp_main) * np.nan_to_num(sd_gp_main), np.nan),
              "P_B (networks, direct)": np.exp(lp_direct[:top]),
              "K_LZ": fp.lz_of_functions(bs, main.counts)[:top]},
             index=pd.RangeIndex(1, top + 1, name="rank under P_SGD")).round(5)

# %% [markdown]
# ### EP, the Gaussian process and the finite network
#
# EP's $P_B$ and the direct-sampling $P_B$ of the width-40 network differ by up to a factor of about two on the
# most probable functions. Two things separate them: EP approximates the GP posterior, and a width-40 network is
# not its infinite-width GP. Sampling the GP posterior exactly splits the two. The i.i.d. GP draws above give a few
# hundred samples; elliptical slice sampling (Murray, Adams & MacKay 2010; `sgdbayes.gp.sampling`) of the same
# posterior gives far more, with error bars from the spread between independent chains. Below: every function the
# sampler puts at $P_B \geq 10^{-3}$, its $P_B$ from EP, from the i.i.d. GP draws and from the networks against the
# sampled value.

# %%
t0 = time.time()
ess_bool = fp.gp_posterior_marginals(*bool_xy, n_chains=bool_ess_chains, n_steps=bool_ess_steps, burn_in=200,
                                     seed=seed, **bool_kernel)
p_ess_all = ess_bool.counts.probabilities()
sel_ess = np.flatnonzero(p_ess_all >= min(1e-3, p_ess_all.max()))[:60]
ess_fn = ess_bool.counts.bits(sel_ess)
p_ess, se_ess = ess_bool.pb(ess_fn)
ep_ess_table = fp.ep_log_pb(*bool_xy, [ess_bool.counts.subset(sel_ess)], method="full", **bool_kernel)
p_ep_ess = np.exp(ep_ess_table.lookup(ess_fn))
lp_rej, sdl_rej = gp_exact.log_pb(ess_fn)
lp_net, sdl_net = prior.log_pb(ess_fn)
p_rej, p_net = np.exp(lp_rej), np.exp(lp_net)
print(f"elliptical slice: {bool_ess_chains} chains × {bool_ess_steps} kept transitions, "
      f"{ess_bool.shrinks_per_step:.1f} shrinks per transition, {time.time() - t0:.0f} s (0 when cached); "
      f"{sel_ess.size} functions with P_B ≥ 1e-3")
fig = fplots.figure_pb_methods(
    p_ess, se_ess,
    {"EP (full ratio)": (p_ep_ess, None),
     "NNGP, i.i.d. draws": (p_rej, p_rej * np.nan_to_num(sdl_rej, posinf=0.0)),
     f"width-{bool_hidden[0]} networks, direct": (p_net, p_net * np.nan_to_num(sdl_net, posinf=0.0))},
    reference_label="P_B(f|S), NNGP (elliptical slice)",
    title=f"Boolean |S| = {bs.n_train}: {sel_ess.size} functions")
ratio_ep = np.log10(p_ep_ess / p_ess)
seen = p_net > 0
ratio_net = np.log10(p_net[seen] / p_ess[seen])
print(f"log10(P_B^EP / P_B^GP): median {np.median(ratio_ep):+.2f}, range [{ratio_ep.min():+.2f}, "
      f"{ratio_ep.max():+.2f}] over {ratio_ep.size} functions")
if ratio_net.size:
    print(f"log10(P_B^net / P_B^GP): median {np.median(ratio_net):+.2f} over the {ratio_net.size} of them the "
          "networks drew at least once (biased up: a function is only shown when drawn)")
top_gp = pd.DataFrame({
    "P_B of the top function": [p_ess[0], p_rej[0], p_net[0], p_ep_ess[0]],
    "± (1 sd)": [se_ess[0], p_rej[0] * np.nan_to_num(sdl_rej[0], posinf=0.0),
                 p_net[0] * np.nan_to_num(sdl_net[0], posinf=0.0), np.nan]},
    index=["NNGP, elliptical slice", "NNGP, i.i.d. draws", f"width-{bool_hidden[0]} networks, direct",
           "EP (full ratio)"])
top_gp.round(4)

# %% [markdown]
# Two separate effects, both visible. EP sits below the sampled GP value on every function, by a roughly constant
# factor (the printed median and range of $\log_{10}$ ratios): the step likelihood is EP's hardest case, its Gaussian
# sites on $S$ standing in for a sharply truncated posterior. The networks are drawn too rarely (a few hundred fit
# $S$) to resolve anything but the top function, and there the width-40 networks put more mass on the target's own
# labelling than their infinite-width GP does — a finite-width effect (for the points of low $P_B$ the networks'
# values are biased upward, since a function only appears once it has been drawn). The factor between EP and
# direct sampling on the top function is the product of the two; both are small next to the many orders of
# magnitude the comparison with $P_{\mathrm{SGD}}$ spans.

# %% [markdown]
# ### Rank plots and error histograms
#
# Sorting each distribution by probability shows how concentrated it is; the error histograms compare the expected
# generalisation under SGD with that under the Bayesian posterior. The sampled histograms of $P_B$ are over *all*
# draws that fit $S$ (no restriction to SGD's functions).

# %%
fig = fplots.figure_ranks_errors(
    {"P_SGD (SGD runs)": main.counts.probabilities(), "P_B (networks, direct)": prior.counts.probabilities(),
     "P_B (exact GP, sampled)": gp_exact.counts.probabilities(), "P_B (EP, SGD's functions)": np.exp(lp_ep)},
    {"P_SGD": fp.error_distribution(main.counts, bs.y_test),
     "P_B, networks (direct)": fp.error_distribution(prior.counts, bs.y_test),
     "P_B, exact GP (sampled)": fp.error_distribution(gp_exact.counts, bs.y_test)},
    titles=(f"|S| = {bs.n_train}, {main.n_counted:,} runs", "errors on E (|E| = %d)" % bs.n_test))

# %% [markdown]
# The mean test error of a function drawn from $P_B$ needs no enumeration of functions: it is the average over the
# test points of the posterior probability of the wrong label, $\frac{1}{|E|}\sum_j P_B(f_j \neq y_j \mid S)$,
# and EP gives each of those marginals directly (its Gaussian on $E$, pushed through the sign). The posterior's
# majority labelling (each point's more probable label) is the Bayes classifier, not a sample:

# %%
bool_errors = {
    "P_SGD (SGD runs)": main.counts.mean_error(bs.y_test),
    "P_B, networks (direct sampling)": prior.counts.mean_error(bs.y_test),
    "P_B, exact GP (sampled)": gp_exact.counts.mean_error(bs.y_test),
    "P_B, EP marginals": ep_marg_bool.expected_error(bs.y_test),
    "posterior majority labelling (EP)": ep_marg_bool.majority_error(bs.y_test),
}
pd.DataFrame({"mean test error": bool_errors}).round(4)

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
record("bool_mean_error_pb_direct", bool_errors["P_B, networks (direct sampling)"],
       description="Boolean: mean test error under P_B (direct sampling, all prior networks fitting S)")
record("bool_mean_error_pb_gp", bool_errors["P_B, exact GP (sampled)"],
       description="Boolean: mean test error under P_B of the NNGP (all GP draws fitting S)")
record("bool_mean_error_pb_ep", bool_errors["P_B, EP marginals"],
       description="Boolean: mean test error under P_B (EP posterior marginals, all functions)")
record("bool_median_log10_ep_over_gp", float(np.median(ratio_ep)),
       description="Boolean: median log10(P_B by EP / P_B of the NNGP by elliptical slice sampling) over functions "
                   "with P_B ≥ 1e-3 (EP's own error)")
record("bool_pb_top_gp", float(gp_exact.counts.top_k_mass(1)),
       description="Boolean: P_B of the most probable function of the NNGP (exact, sampled)")
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
stats_m = fp.headline_statistics(mnist.counts, lp_mnist, ms.y_test, min_count=min_count)
print(f"MNIST: {mnist.n_networks} networks in {t_mnist:.0f} s; EP ({mnist_ep_method}) on {len(ep_mnist)} "
      f"functions in {time.time() - t0 - t_mnist:.0f} s, {ep_mnist.n_failed} failed")
pd.DataFrame({"MNIST run": mnist.summary()}).T

# %%
fig = fplots.figure_scatter_panels([("MNIST", mnist.counts, lp_mnist, "P_B(f|S), EP (two-stage)")], ms.y_test,
                             n_test=ms.n_test, width=4.6)

# %% [markdown]
# At this scale ($|S|$ of a few hundred rather than $10^4$, hidden widths 40 rather than 784) the networks generalise worse
# than in the paper and spread over far more functions; the runs resolve $P_{\mathrm{SGD}}$ only down to one over
# the number of runs, so the scatter shows only its head — and there the two disagree by orders of magnitude:
# EP gives SGD's favourite functions a posterior probability far below their frequency among the runs.
#
# ### Is that EP's fault? The posterior, test point by test point
#
# A labelling of 100 points has a tiny probability when many of its points are uncertain, so the question is how
# uncertain each test point is under each distribution. For a single point $j$, $P_B(f_j = 1 \mid S)$ is a
# marginal of the posterior. We get it two ways: from EP, and from the exact GP posterior under the 0–1
# likelihood sampled by elliptical slice sampling (Murray, Adams & MacKay 2010; `sgdbayes.gp.sampling`), many
# chains started from EP's Gaussian, with error bars from the spread between chains. Direct rejection sampling is
# hopeless here: $P(S)$ of hundreds of labels is astronomically small.

# %%
t0 = time.time()
mnist_kernel = dict(depth=len(mnist_hidden), sigma_w=mnist_sigma_w, sigma_b=mnist_sigma_b)
ep_marg_m = fp.ep_marginals(ms.x_train, ms.y_train, ms.x_test, **mnist_kernel)
ess_m = fp.gp_posterior_marginals(ms.x_train, ms.y_train, ms.x_test, n_chains=mnist_ess_chains,
                                  n_steps=mnist_ess_steps, burn_in=mnist_ess_burn_in, seed=seed, **mnist_kernel)
ess_err, ess_err_se = ess_m.expected_error(ms.y_test)
print(f"elliptical slice sampling: {mnist_ess_chains} chains × {mnist_ess_steps} kept transitions "
      f"(after {mnist_ess_burn_in}), {ess_m.shrinks_per_step:.1f} bracket shrinks per transition, "
      f"{time.time() - t0:.0f} s (0 when cached)")
print(f"EP marginals vs sampled: max |difference| {np.abs(ep_marg_m.marginals - ess_m.marginals).max():.3f}, "
      f"mean {np.abs(ep_marg_m.marginals - ess_m.marginals).mean():.3f} "
      f"(sampling standard error {ess_m.marginal_se.mean():.3f} on average)")

# %% [markdown]
# Ranked probabilities (left) and the distribution of the number of test errors (right). $P_B$'s error histogram is
# over the elliptical-slice samples of the exact GP posterior — all functions, not only SGD's.

# %%
fig = fplots.figure_ranks_errors(
    {"P_SGD": mnist.counts.probabilities(), "P_B (EP, SGD's functions)": np.exp(lp_mnist)},
    {"P_SGD": fp.error_distribution(mnist.counts, ms.y_test),
     "P_B, exact GP (elliptical slice)": fp.error_distribution(ess_m.counts, ms.y_test)},
    titles=(f"MNIST |S| = {ms.n_train}, {mnist.n_counted:,} runs", f"errors on E (|E| = {ms.n_test})"))

# %% [markdown]
# Test point by test point: each dot is one input of $E$, its fraction of SGD runs labelling it 1 against its
# posterior marginal (Boolean: EP; MNIST: the sampled GP posterior, ±2 standard errors).

# %%
fig = fplots.figure_marginals([
    (f"Boolean, |S| = {bs.n_train}", main.counts.marginals(), ep_marg_bool.marginals, None, bs.y_test,
     "P_B(f_j = 1 | S), EP"),
    (f"MNIST, |S| = {ms.n_train}", mnist.counts.marginals(), ess_m.marginals, 2 * ess_m.marginal_se, ms.y_test,
     "P_B(f_j = 1 | S), sampled GP"),
])

# %%
def marginal_entropy(q):
    q = np.clip(q, 1e-12, 1 - 1e-12)
    return float(-(q * np.log(q) + (1 - q) * np.log1p(-q)).sum())


mnist_errors = {
    "P_SGD (SGD runs)": (mnist.counts.mean_error(ms.y_test), marginal_entropy(mnist.counts.marginals())),
    "P_B, EP marginals": (ep_marg_m.expected_error(ms.y_test), marginal_entropy(ep_marg_m.marginals)),
    "P_B, exact GP (elliptical slice)": (ess_err, marginal_entropy(ess_m.marginals)),
    "posterior majority labelling (EP)": (ep_marg_m.majority_error(ms.y_test), 0.0),
}
pd.DataFrame(mnist_errors, index=["mean test error", "Σ_j entropy of f_j (nats)"]).T.round(4)

# %% [markdown]
# The sampler confirms EP: the exact GP posterior is as uncertain on $E$ as EP says (EP's marginals sit within the
# sampler's error bars, and both give the same expected error). So the gap in the scatter plot is not EP's doing.
# At this scale the Bayesian posterior of the NNGP under the 0–1 likelihood leaves many test digits genuinely
# uncertain, and a function drawn from it errs on $E$ markedly more often than a trained network (table), while the trained
# networks almost always agree on each digit: they behave like the posterior's *majority* labelling (whose error
# matches theirs), not like samples from the posterior. The summed per-point entropies say the same — a few nats
# for $P_{\mathrm{SGD}}$, tens of nats for $P_B$ — so $P_B$ spreads its mass over vastly more labellings, and each of
# SGD's favourite functions gets a tiny $P_B$. On the Boolean system (left panel) the two sets of marginals agree
# far better, which is why the Boolean scatter hugs the diagonal. We therefore do **not** reproduce the paper's
# MNIST agreement at this reduced scale (a few hundred training digits, width 40); whether it appears at $|S| = 10^4$ with width-784
# networks, as the paper reports, is what the `paper` profile runs.

# %%
pd.DataFrame({"MNIST": stats_m}).round(4)

# %%
record("mnist_corr_log_psgd_log_pb_ep", stats_m["corr_log"],
       description=f"MNIST |S|={ms.n_train}: Pearson r of log P_SGD vs log P_B (EP two-stage), functions seen ≥ "
                   f"{min_count}×")
record("mnist_frac_within_decade_ep", stats_m["frac_within_decade"],
       description="MNIST: fraction of those functions with P_SGD within 10× of P_B (EP)")
record("mnist_n_distinct", stats_m["n_distinct"], paper=95,
       description=f"MNIST: distinct functions in {mnist.n_counted} runs (paper: |S|=10^4, 2×784 FCN, +64 epochs)")
record("mnist_top1_mass", stats_m["top1"], paper=0.696, description="MNIST: P_SGD of the top function")
record("mnist_top10_mass", stats_m["top10"], paper=0.984, description="MNIST: P_SGD mass of the top 10")
record("mnist_mean_error_sgd", stats_m["mean_error_sgd"], paper=0.022,
       description="MNIST: mean test error under P_SGD (paper: ≈2.2% at |S|=10^4)")
record("mnist_mean_error_pb_ep", mnist_errors["P_B, EP marginals"][0],
       description="MNIST: mean test error under P_B (EP posterior marginals, all functions)")
record("mnist_mean_error_pb_ess", ess_err,
       description=f"MNIST: mean test error under the exact GP posterior (elliptical slice sampling; ± {ess_err_se:.3f})")
record("mnist_majority_error_pb", mnist_errors["posterior majority labelling (EP)"][0],
       description="MNIST: test error of the posterior-majority labelling (EP)")
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
