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
# (fpi-intro)=
# # Function probability II: images, and the posterior each loss implies
#
# The previous page compared $P_{\mathrm{SGD}}(f\mid S)$, the frequency with which independently trained networks
# end on the labelling $f$ of a test set $E$, with the Bayesian posterior $P_B(f\mid S)$ of the same architecture on
# the Boolean system. This page does the same for the image experiments of {cite:t}`mingard2021`, and asks a
# question their MNIST panel raises: **which posterior should a network trained with mean-squared error be compared
# with?** The 0–1 likelihood of the paper's definition says only whether a network fits $S$; a network trained to
# regress its labels sees more than that, and the authors' code in fact compared their MSE-trained MNIST networks
# with a Gaussian-process *regression* posterior. We compute both and put each beside networks trained with each
# loss.
#
# Everything here is computed by `sgdbayes.experiments.function_probability_images` and drawn by
# `sgdbayes.plots.function_probability_images`; training runs are stored shard by shard, so an interrupted build
# resumes.

# %% tags=["parameters"]
profile = "default"
device = "auto"
seed = 0
scheduler = "auto"  # "auto": $SGDBAYES_DASK_SCHEDULER when set, else "sync"
# --- MNIST, FCN, at the authors' settings where the machine allows
mnist_source = "subset"  # the 5,000 shipped digits; "mnist": full MNIST (downloaded)
mnist_n_train = 1000  # |S| (authors: 10^4, the first 10^4 training digits)
mnist_n_test = 100  # |E| (authors: the first 100 test digits)
mnist_binarize = "parity"  # even digit -> 1, as the authors' MNIST data script
mnist_hidden = [40, 40]  # authors: [784, 784]
mnist_sigma_w = 1.0
mnist_sigma_b = 0.0357  # the authors' MNIST value
mnist_lr = 0.01  # Keras SGD, the authors' default
mnist_batch = 32
mnist_max_epochs = 3000  # the authors' MAX_TRAIN_EPOCHS
mnist_overtrain = 64  # epochs after the fit (Keras rule: its wait)
mnist_networks = 512  # the authors' protocol (authors: ~10^5 runs)
mnist_clean_networks = 256  # MSE on +-1 targets, clean stop rule
mnist_ce_networks = 256  # cross-entropy, clean stop rule
mnist_shard = 64  # networks per stored shard
mnist_runs_per_process = 8  # Keras rule: runs sharing one never-reset callback
noise_var = 0.002  # the authors' regression noise variance
ep_full_max = 8  # per run: most frequent functions given the full 0-1 EP ratio
min_count = 2  # functions seen at least this often enter correlations
error_samples = 20000  # posterior samples for the error histograms
csr_networks = 32  # networks (per shard) whose critical sample ratio is computed
csr_inputs = 200  # ... on the first csr_inputs digits of S (authors: all of S)
csr_radii = [0.003, 0.01, 0.03]  # L-infinity box radii (authors: 0.03)
# --- CNN on MNIST (one conv layer: its CNN-GP kernel is exact)
cnn_source = "subset"
cnn_n_train = 200
cnn_n_test = 100
cnn_downsample = 2  # 14 x 14 images
cnn_channels = [4]
cnn_kernel_size = 3
cnn_padding = "valid"
cnn_lr = 0.1
cnn_batch = 32
cnn_networks = 192
cnn_shard = 192
# --- Ionosphere, FCN (the authors' row order)
iono_n_train = 200
iono_n_test = 100
iono_hidden = [40, 40]
iono_sigma_b = 0.0357
iono_lr = 0.1  # 0.01 needs thousands of epochs to fit S here
iono_batch = 32
iono_networks = 512
iono_shard = 512
panel_runs_per_process = 64  # Keras rule of the Ionosphere run
# --- data sets that need a download (not run by default)
extra_datasets = []  # e.g. ["fashion-mnist", "cifar10"]
extra_n_train = 1000
extra_networks = 1000

# %%
import numpy as np
import pandas as pd

from sgdbayes.glue import glue
from sgdbayes import plots, results
from sgdbayes.cache import cached
from sgdbayes.experiments import function_probability as fp
from sgdbayes.experiments import function_probability_images as fpi
from sgdbayes.plots import function_probability_images as fplots

plots.book_style()
CH = "function_probability_images"
results.clear(CH)
sched = fp.resolve_scheduler(scheduler)
mnist_arch = {
    "kind": "fcn",
    "hidden": mnist_hidden,
    "sigma_w": mnist_sigma_w,
    "sigma_b": mnist_sigma_b,
}
authors_stop = {
    "kind": "keras",
    "threshold": 0.5,
    "wait": mnist_overtrain,
    "shared_callback": True,
    "runs_per_process": mnist_runs_per_process,
    "label_threshold": 0.5,
}
common = dict(
    arch=mnist_arch,
    seed=seed,
    shard_size=mnist_shard,
    lr=mnist_lr,
    batch_size=mnist_batch,
    max_epochs=mnist_max_epochs,
    scheduler=sched,
    device=device,
)

# %% [markdown]
# (fpi-protocol)=
# ## 1. The authors' MNIST run, as their code ran it
#
# The paper's MNIST headline — 95 distinct functions on 100 test digits, the most frequent one found by 69.6% of
# the runs and the ten most frequent by 98.4%, a test error near 2.2% — comes from a file of the authors' repository
# (guillefix/nn-pacbayes, `results/sgd_bayes_10000_784_2_32_sgd_mse_64__combined.txt`, committed on 21 November
# 2019: each function with its frequency; the smallest frequency is one run in about 103,900). Reading the code of
# that period rather than the paper's text:
#
# - **Data.** The data script of those runs (`generate_inputs_sample_tmp.py`) took the *first* $10^4$ training
#   digits as $S$ and the first 100 test digits as $E$, and binarised by **parity** (even digit → 1), not by
#   "digit ≥ 5". The file confirms it: its most frequent function disagrees with the parity labels of the first 100
#   test digits on one digit, and with the "≥ 5" labels on 62. We use parity throughout this page.
# - **Network and loss.** FCN 784 → 784 → 784 → 1 (ReLU), plain Keras SGD (learning rate 0.01), batch 32,
#   mean-squared error on 0/1 labels, 64 epochs after the fit.
# - **Stop rule.** The Keras rule of the previous page: a training digit counts as fitted when the output is on its
#   side of 0.5, the never-reset callback makes every later run of a process wait until the first run's fit epoch
#   plus 64, and only runs at 100% training accuracy are kept. With 0/1 targets the output is naturally read at 0.5;
#   the training script of that period wrote out `output > 0` instead, which would leave every class-0 digit near a
#   coin flip — the file's 95 functions with a 1-in-100 error cannot have been read that way, so we read at 0.5 and
#   say so.
# - **Initialisation.** Weights $\mathcal N(0, \sigma_w^2/\text{fan-in})$ with $\sigma_w = 1$, biases
#   $\mathcal N(0, \sigma_b^2)$ with $\sigma_b = 0.0357$. Unlike the Boolean runs, these did use $\sigma_b$: the
#   `utils.reset_weights` that draws every bias from $\mathcal N(0, 1)$ served the simplified training script only on
#   5–6 November 2019; before, each run rebuilt its model with Keras initialisers set from $\sigma_b$, and from 6
#   November `initialization.simple_reset_weights` drew the biases with $\sigma_b$. The companion results file of
#   4 November lists a standard deviation of 0.029 for the trained biases, which only a small initial $\sigma_b$
#   explains.
# - **Posterior.** For MSE-trained networks the authors' $P_B$ is a GP *regression* posterior (Section 3).
#
# What a 2-core CPU can run in the default build, and what differs:

# %%
settings = pd.DataFrame(
    {
        "the authors": [
            "full MNIST, first 10,000",
            "first 100 test digits",
            "784 → 784 → 784 → 1",
            "~10⁵",
            "parity",
        ],
        "this build": [
            f"{mnist_source}, {mnist_n_train:,}",
            f"next {mnist_n_test} digits (held out)",
            "784 → " + " → ".join(map(str, mnist_hidden)) + " → 1",
            f"{mnist_networks:,}",
            mnist_binarize,
        ],
    },
    index=["S", "E", "network", "runs (authors' protocol)", "labels"],
)
plots.table(settings.rename_axis("setting"), index=True)

# %% [markdown]
# (fpi-mnist)=
# ## 2. MNIST at the authors' settings, as far as this machine goes
#
# Three sets of networks share $S$, $E$, the architecture, the initialisations (network $i$ starts from the same
# parameters in each set), SGD at learning rate 0.01, batch 32 and 64 epochs after the fit:
#
# - **authors' protocol**: MSE on 0/1 targets, the Keras rule with its shared callback (emulated processes of
#   `mnist_runs_per_process` runs; $P_{\mathrm{SGD}}$ is estimated from the runs that follow each process's first
#   run, the mixture the authors' long processes give), functions read at 0.5;
# - **clean MSE**: MSE on ±1 targets, stop at the first epoch whose end finds $S$ fitted by sign, then 64 epochs;
#   functions read at 0;
# - **cross-entropy**: the same clean rule with cross-entropy.
#
# Runs that never fit within 3,000 epochs or diverge are listed and never counted.

# %%
ms = fpi.load_split(
    mnist_source, mnist_n_train, mnist_n_test, seed=seed, binarize=mnist_binarize
)
run_authors = fpi.train_run(
    ms.x_train,
    ms.y_train,
    ms.x_test,
    n_networks=mnist_networks,
    loss="mse",
    mse_targets="01",
    stop=authors_stop,
    csr_networks=csr_networks,
    csr_radii=csr_radii,
    csr_inputs=csr_inputs,
    name="function_probability_images.mnist_authors",
    **common,
)
run_clean = fpi.train_run(
    ms.x_train,
    ms.y_train,
    ms.x_test,
    n_networks=mnist_clean_networks,
    loss="mse",
    mse_targets="pm1",
    overtrain_epochs=mnist_overtrain,
    name="function_probability_images.mnist_clean",
    **common,
)
run_ce = fpi.train_run(
    ms.x_train,
    ms.y_train,
    ms.x_test,
    n_networks=mnist_ce_networks,
    loss="ce",
    overtrain_epochs=mnist_overtrain,
    name="function_probability_images.mnist_ce",
    **common,
)
runs = {
    "MSE, authors' protocol": run_authors,
    "MSE ±1, clean rule": run_clean,
    "cross-entropy, clean rule": run_ce,
}
runs_df = fpi.runs_table(runs, ms.y_test)
plots.table(
    runs_df.rename_axis("networks trained with"),
    index=True,
    formats={"mean test error": "{:.3f}", "test error se": "{:.3f}"},
)

# %% tags=["remove-input"]
top1, top1_se = run_authors.top_mass(1)
top10, top10_se = run_authors.top_mass(10)
counts_authors = run_authors.counts()
err_authors = runs_df.loc["MSE, authors' protocol", "mean test error"]
err_authors_se = runs_df.loc["MSE, authors' protocol", "test error se"]
protocol_matches = (
    mnist_source == "mnist"
    and mnist_n_train == fpi.AUTHORS_MNIST["n_train"]
    and list(mnist_hidden) == fpi.AUTHORS_MNIST["hidden"]
    and mnist_overtrain == 64
    and mnist_batch == 32
    and mnist_networks >= 10_000
)
glue("mnist-n-counted", int(counts_authors.total), display=False)
glue("mnist-n-train", f"{ms.n_train:,}", display=False)
glue("mnist-width", int(mnist_hidden[0]), display=False)
glue("mnist-n-distinct", int(counts_authors.n_distinct), display=False)
glue("mnist-top1", top1, display=False)
glue("mnist-top1-se", top1_se, display=False)
glue("mnist-top10", top10, display=False)
glue("mnist-err", err_authors, display=False)
glue(
    "mnist-err-clean",
    runs_df.loc["MSE ±1, clean rule", "mean test error"],
    display=False,
)
glue(
    "mnist-err-ce",
    runs_df.loc["cross-entropy, clean rule", "mean test error"],
    display=False,
)
glue("mnist-top1-clean", runs_df.loc["MSE ±1, clean rule", "top-1 mass"], display=False)
glue(
    "mnist-top1-ce",
    runs_df.loc["cross-entropy, clean rule", "top-1 mass"],
    display=False,
)

# %%
fig = fplots.concentration_figure(
    {name: run.counts() for name, run in runs.items()},
    paper=(
        {1: fpi.AUTHORS_MNIST["top1"], 10: fpi.AUTHORS_MNIST["top10"]}
        if protocol_matches
        else None
    ),
)
glue("fig-fpi-concentration", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig-fpi-concentration
# :name: fig-fpi-concentration
#
# **How concentrated $P_{\mathrm{SGD}}$ is on MNIST.** Mass of the $k$ most frequent functions for the three sets
# of networks. Only where the run matches the authors' protocol ($|S| = 10^4$, width 784: the `paper` profile)
# do crosses mark their top-1 and top-10 masses. Answers the MNIST concentration numbers of {cite:t}`mingard2021`.
# ```
#
# Under the authors' protocol {glue:text}`mnist-n-counted` counted runs end on
# {glue:text}`mnist-n-distinct` distinct functions; the most frequent carries a mass of
# {glue:text}`mnist-top1:.3f` ± {glue:text}`mnist-top1-se:.3f` (one standard error, runs of one emulated process
# counted as a cluster) and the mean test error is {glue:text}`mnist-err:.3f`. These are not the authors'
# quantities: theirs (95 functions, top-1 0.696, top-10 0.984, test error 0.022) belong to ten times the training
# set and networks twenty times as wide, where both the error and the spread of $P_{\mathrm{SGD}}$ are smaller.
# The `paper` profile runs their protocol, and only there does the scorecard set the two side by side.

# %% [markdown]
# (fpi-posteriors)=
# ## 3. The posterior that matches the loss
#
# Both posteriors below use the network's NNGP kernel $K$ (the prior of its initialisation) and label a test digit
# by the sign of a latent value $g_j$; they differ in how $S$ enters.
#
# **0–1 likelihood** (the paper's definition): a labelling of $S$ either agrees with the data or it does not, and
#
# $$
# P_B(f \mid S) = \frac{P\big(S \cup (E, f)\big)}{P(S)} ,
# $$ (eq-fpi-zero-one)
#
# both marginal likelihoods by Expectation Propagation with the step likelihood, on $S \cup E$ for each $f$ (the
# *full ratio*, $O((|S|+|E|)^3)$ per function: we give it to each run's `ep_full_max` most frequent functions).
#
# **Regression** (what the authors computed for their MSE-trained networks): the exact GP regression posterior on
# $S$ with targets $t$ and Gaussian noise of variance $\sigma^2 = 0.002$,
#
# $$
# g_E \mid S \sim \mathcal N\!\big(K_{ES}(K_{SS} + \sigma^2 I)^{-1} t,\;
# K_{EE} - K_{ES}(K_{SS} + \sigma^2 I)^{-1} K_{SE} + \sigma^2 I\big),
# $$ (eq-fpi-regression)
#
# and then $P_B(f \mid S)$ is the probability that $g_E$ falls in the orthant of $f$, by EP with the step
# likelihood on $E$ alone. The targets matter. With $t = \pm 1$ the two classes sit on opposite sides of the
# threshold 0 — the consistent choice, and the posterior we pair with MSE networks trained on ±1. The authors
# regressed on $t \in \{0, 1\}$ and still read the latent at 0: class-0 digits are then pulled *onto* the decision
# threshold and their labels stay close to a coin flip. Reading the 0/1 regression at 0.5 is the consistent version
# of their choice, and the posterior that matches networks trained on 0/1 targets and read at 0.5 (the authors'
# protocol above). All four are computed:

# %%
K = cached(fpi.kernel_matrix, ms.x_train, ms.x_test, arch=mnist_arch)
posts = cached(fpi.posteriors, K, ms.y_train, noise_var=noise_var)
all_bits = fpi.union_bits(list(runs.values()))
full_bits = fpi.union_bits(list(runs.values()), top=ep_full_max)
tables = cached(
    fpi.pb_tables, K, ms.y_train, all_bits, full_bits=full_bits, noise_var=noise_var
)
post_df = fpi.posterior_table(posts, ms.y_test)
plots.table(
    post_df.rename(index=fpi.POSTERIORS).rename_axis("posterior on E"),
    index=True,
    formats={
        "expected test error": "{:.3f}",
        "majority labelling's test error": "{:.3f}",
    },
)

# %% [markdown]
# The 0–1 posterior leaves tens of nats of uncertainty on 100 digits; the ±1 regression posterior almost none: it
# trusts every training label to within $\sqrt{0.002}$ and extrapolates. The authors' 0/1-read-at-0 posterior
# errs on a large share of $E$ even with its majority labelling — the class-0 digits sit on the threshold — while
# the same regression read at 0.5 behaves like the ±1 one.
#
# Now each set of networks against each posterior, function by function and digit by digit:

# %%
pair_df = fpi.pairing_table(runs, tables, posts, ms.y_test, min_count=min_count)
plots.table(
    pair_df.replace({"posterior": {k: k.replace("_", " ") for k in fpi.POSTERIORS}}),
    formats={"P_SGD mass evaluated": "{:.2f}", "mass within 10×": "{:.2f}"},
)

# %%
fig = fplots.scatter_panels(
    [
        (
            "MSE nets (authors' protocol)",
            counts_authors,
            tables["zero_one"].lookup(counts_authors),
            "P_B, 0–1 likelihood (EP)",
        ),
        (
            "MSE nets (authors' protocol)",
            counts_authors,
            tables["regression_01_at_half"].lookup(counts_authors),
            "P_B, regression 0/1 at 0.5",
        ),
        (
            "cross-entropy nets",
            run_ce.counts(),
            tables["zero_one"].lookup(run_ce.counts()),
            "P_B, 0–1 likelihood (EP)",
        ),
        (
            "cross-entropy nets",
            run_ce.counts(),
            tables["regression_pm1"].lookup(run_ce.counts()),
            "P_B, regression ±1",
        ),
    ],
    ms.y_test,
    ncols=2,
)
glue("fig-fpi-pairings", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig-fpi-pairings
# :name: fig-fpi-pairings
#
# **$P_{\mathrm{SGD}}$ against $P_B$ on MNIST, for each loss and each posterior.** Each point is a function found
# by the networks (the 0–1 panels show the functions given the full EP ratio); the line is equality, the band a
# factor 10 either side, the dotted line one run. Left: the 0–1 posterior; right: the regression posterior that
# matches the targets. Answers the MNIST panel of {cite:t}`mingard2021`, whose networks were trained with MSE.
# ```

# %%
fig = fplots.marginals_figure(
    [
        ("0–1 likelihood", posts["zero_one"].p_one().numpy()),
        ("regression ±1", posts["regression_pm1"].p_one().numpy()),
        ("regression 0/1, read at 0", posts["regression_01_authors"].p_one().numpy()),
    ],
    {name: run.counts().marginals() for name, run in runs.items()},
)
glue("fig-fpi-marginals", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig-fpi-marginals
# :name: fig-fpi-marginals
#
# **Digit by digit.** For each test digit, the fraction of networks labelling it 1 against its posterior marginal
# $P_B(f_j = 1 \mid S)$. Points on the diagonal: the networks are as certain about that digit as the posterior.
# ```

# %% tags=["remove-input"]
pt = pair_df.set_index(["networks", "posterior"])
gap = pt["mean |marginal gap|"]
key_a = "MSE, authors' protocol"
key_c = "cross-entropy, clean rule"
key_b = "MSE ±1, clean rule"
matched = pt.loc[(key_a, "regression_01_at_half")]
matched_b = pt.loc[(key_b, "regression_pm1")]
zero_one_a = pt.loc[(key_a, "zero_one")]
zero_one_c = pt.loc[(key_c, "zero_one")]
for name, value in {
    "gap-a-zero-one": gap[(key_a, "zero_one")],
    "gap-a-regression": gap[(key_a, "regression_01_at_half")],
    "gap-a-authors": gap[(key_a, "regression_01_authors")],
    "gap-b-regression": gap[(key_b, "regression_pm1")],
    "gap-c-zero-one": gap[(key_c, "zero_one")],
    "gap-c-regression": gap[(key_c, "regression_pm1")],
    "median-a-matched": matched["median log10 P_SGD/P_B"],
    "median-a-zero-one": zero_one_a["median log10 P_SGD/P_B"],
    "median-b-matched": matched_b["median log10 P_SGD/P_B"],
    "median-c-zero-one": zero_one_c["median log10 P_SGD/P_B"],
    "within-a-matched": matched["mass within 10×"],
    "within-a-zero-one": zero_one_a["mass within 10×"],
    "entropy-zero-one": post_df.loc["zero_one", "Σ_j entropy (nats)"],
    "entropy-regression": post_df.loc["regression_pm1", "Σ_j entropy (nats)"],
    "maj-err-authors-gp": post_df.loc[
        "regression_01_authors", "majority labelling's test error"
    ],
}.items():
    glue(name, float(value), display=False)

# %% [markdown]
# **Which pairing the paper's claim is about.** The paper's MNIST networks were trained with MSE, and its $P_B$
# for them was the regression posterior, so the comparison the claim rests on is the MSE networks against a
# regression posterior — in the consistent form, the 0/1 regression read at 0.5 for the authors' protocol (median
# $\log_{10} P_{\mathrm{SGD}}/P_B$ = {glue:text}`median-a-matched:.2f`, mean per-digit gap
# {glue:text}`gap-a-regression:.3f`) and the ±1 regression for the clean MSE networks (median
# {glue:text}`median-b-matched:.2f`). Against the 0–1 posterior the same MSE networks sit
# {glue:text}`median-a-zero-one:.1f` decades above $P_B$: that posterior spreads
# {glue:text}`entropy-zero-one:.0f` nats over $E$ against {glue:text}`entropy-regression:.1f` for the ±1
# regression, so every function gets far less of it. The authors' own 0/1-read-at-0 variant errs on
# {glue:text}`maj-err-authors-gp:.0%` of $E$ with its majority labelling and cannot describe any of the
# networks; it is shown for completeness. The cross-entropy networks have no regression targets; the 0–1 posterior
# is the one that matches their loss, and it sits {glue:text}`median-c-zero-one:.1f` decades below them too.

# %% [markdown]
# (fpi-errors)=
# ### Test errors
#
# The error histograms of the paper compare the distribution of the number of errors on $E$ under
# $P_{\mathrm{SGD}}$ with that under $P_B$. For $P_B$ we draw labellings from each posterior's Gaussian on $E$:
# exact for the regression posteriors, EP's Gaussian approximation for the 0–1 one.

# %%
dists = cached(
    fpi.error_distributions,
    {key_a: run_authors, key_c: run_ce},
    {k: posts[k] for k in ("zero_one", "regression_01_at_half")},
    ms.y_test,
    n_samples=error_samples,
    seed=seed,
)
fig, axes = plots.new_figure(1, 1, width=5.2, height=3.0)
fplots.error_ax(axes[0, 0], dists, n_test=ms.n_test)
glue("fig-fpi-mnist-errors", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig-fpi-mnist-errors
# :name: fig-fpi-mnist-errors
#
# **Errors on $E$ under $P_{\mathrm{SGD}}$ and $P_B$ (MNIST).** The networks' error distributions (filled: the
# authors' protocol) against labellings sampled from the 0–1 posterior and from the 0/1 regression posterior read
# at 0.5. Answers the MNIST error histogram of {cite:t}`mingard2021`.
# ```

# %% tags=["remove-input"]
mean_err_pb = {
    k: float((np.arange(d.size) * d).sum() / ms.n_test) for k, d in dists.items()
}
glue("err-pb-zero-one", mean_err_pb["P_B, zero_one"], display=False)
glue("err-pb-regression", mean_err_pb["P_B, regression_01_at_half"], display=False)

# %% [markdown]
# A labelling drawn from the 0–1 posterior errs on {glue:text}`err-pb-zero-one:.3f` of $E$ on average, one from
# the regression posterior on {glue:text}`err-pb-regression:.3f`, and the networks trained by the authors'
# protocol on {glue:text}`mnist-err:.3f`: $P_B$ favours low-error functions under both likelihoods, and the MSE
# networks' errors follow the regression posterior's.

# %% [markdown]
# (fpi-csr)=
# ## 4. $P_B$ and the critical sample ratio
#
# For images the paper measures a function's complexity by its critical sample ratio (CSR; {cite:t}`arpit2017`):
# the fraction of inputs whose label flips somewhere inside an $L_\infty$ box of radius $r$ around them. The
# authors' `compute_CSR.py` searched each box with 20 sign-gradient moves of size 0.5 (clipped to the box, so
# from the first move on the search visits corners), on the run's training images, at $r = 0.03$, one network at a
# time. We do the same for the first `csr_networks` networks of the authors'-protocol run — on the first
# `csr_inputs` digits of $S$ to stay within the budget — at three radii, and plot each network's CSR against
# $\log_{10} P_B$ of its function under the matching (0/1 at 0.5) regression posterior.

# %%
log10_pb_csr, csr_values, csr_rho, csr_p = fpi.csr_table(
    run_authors, tables["regression_01_at_half"]
)
fig = fplots.csr_figure(log10_pb_csr, csr_values, csr_radii)
glue("fig-fpi-csr", fig, display=False)
csr_prior = cached(
    fpi.prior_csr,
    ms.x_train[:csr_inputs],
    arch=mnist_arch,
    n_networks=max(csr_networks, 1),
    radii=csr_radii,
    seed=seed,
)
csr_df = pd.DataFrame(
    {
        "radius r": csr_radii,
        "mean CSR, untrained": csr_prior.mean(1),
        "mean CSR, trained": csr_values.mean(1),
        "Spearman ρ(CSR, log P_B)": csr_rho,
        "p-value": csr_p,
    }
)
plots.table(csr_df)

# %% [markdown]
# ```{glue:figure} fig-fpi-csr
# :name: fig-fpi-csr
#
# **$P_B$ against the critical sample ratio, MNIST.** Each point is one network of the authors' protocol: the CSR
# of the network on training digits (its label read at 0.5) and $\log_{10} P_B$ of its function on $E$ under the
# 0/1 regression posterior read at 0.5. One panel per box radius (the authors used 0.03). Answers the
# complexity panel for images of {cite:t}`mingard2021`.
# ```
#
# The radius decides what the CSR measures. The authors' 0.03 is three times the pixel grid of 1/255 in every one of
# 784 coordinates at once — a box corner moves the input by $0.03 \cdot 784 \approx 24$ in $L_1$ — so for a
# ReLU network, whose logit is locally linear, a digit is critical whenever its margin is below $0.03\,\lVert \nabla
# \rVert_1$; on untrained wide networks nearly every digit is, and the CSR saturates. On trained networks it
# falls with $r$, and at the smallest radius hardly anything is critical.

# %% [markdown]
# (fpi-cnn)=
# ## 5. A CNN on MNIST
#
# A convolutional network without pooling — one $k \times k$ convolution with `cnn_channels` channels, ReLU, a
# dense readout — has the CNN-GP kernel of {cite:t}`garrigaalonso2019` as its prior; for a single convolutional
# layer our ensemble's initialisation and `sgdbayes.kernels.nngp_cnn` agree exactly. To keep the grouped
# convolutions of many networks within the budget, the digits are average-pooled to 14 × 14, trained with
# cross-entropy at learning rate 0.1 under the clean rule. $P_B$ is the 0–1 posterior (full EP ratio for the
# functions seen at least twice).

# %%
panel_common = dict(
    seed=seed,
    min_count=min_count,
    ep_full_max=4 * ep_full_max,
    error_samples=error_samples,
    scheduler=sched,
    device=device,
)
cnn_arch = {
    "kind": "cnn",
    "channels": cnn_channels,
    "kernel_size": cnn_kernel_size,
    "padding": cnn_padding,
    "sigma_w": mnist_sigma_w,
    "sigma_b": mnist_sigma_b,
}
cnn = cached(
    fpi.panel,
    "mnist_cnn",
    cnn_source,
    cnn_n_train,
    cnn_n_test,
    arch=cnn_arch,
    n_networks=cnn_networks,
    shard_size=cnn_shard,
    binarize=mnist_binarize,
    downsample=cnn_downsample,
    loss="ce",
    lr=cnn_lr,
    batch_size=cnn_batch,
    max_epochs=mnist_max_epochs,
    stop={"kind": "clean"},
    **panel_common,
)
cnn_counts = cnn.run.counts()
fig = fplots.panel_figure(
    f"CNN, MNIST |S| = {cnn.n_train}",
    cnn_counts,
    cnn.full.lookup(cnn_counts),
    cnn.y_test,
    {"P_SGD": cnn.sgd_errors, "P_B (0–1, EP)": cnn.pb_errors},
)
glue("fig-fpi-cnn", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig-fpi-cnn
# :name: fig-fpi-cnn
#
# **A CNN on MNIST.** Left: $P_{\mathrm{SGD}}$ against $P_B$ (0–1 posterior of the CNN-GP kernel, full EP ratio)
# for the functions found at least twice; right: the test-error distributions. Answers the CNN panel of
# {cite:t}`mingard2021`.
# ```

# %% [markdown]
# (fpi-ionosphere)=
# ## 6. Ionosphere
#
# The UCI Ionosphere radar returns ({cite:t}`uci_ionosphere`: 351 rows, 34 features in $[-1, 1]$), in the row
# order of the authors' data script; $S$ the first `iono_n_train` rows, $E$ the next `iono_n_test`. The authors'
# label coding is not known (their data file is not published); here "good" returns are 1. An FCN with two hidden
# layers, cross-entropy, SGD at 0.01, batch 32, stopped by the authors' Keras rule (one epoch after the fit, a
# callback shared by `panel_runs_per_process` runs).

# %%
iono = cached(
    fpi.panel,
    "ionosphere",
    "ionosphere",
    iono_n_train,
    iono_n_test,
    arch={
        "kind": "fcn",
        "hidden": iono_hidden,
        "sigma_w": mnist_sigma_w,
        "sigma_b": iono_sigma_b,
    },
    n_networks=iono_networks,
    shard_size=iono_shard,
    loss="ce",
    lr=iono_lr,
    batch_size=iono_batch,
    max_epochs=mnist_max_epochs,
    stop={
        "kind": "keras",
        "threshold": 0.5,
        "wait": 1,
        "shared_callback": True,
        "runs_per_process": panel_runs_per_process,
        "label_threshold": 0.0,
    },
    **panel_common,
)
iono_counts = iono.run.counts()
fig = fplots.panel_figure(
    f"FCN, Ionosphere |S| = {iono.n_train}",
    iono_counts,
    iono.full.lookup(iono_counts),
    iono.y_test,
    {"P_SGD": iono.sgd_errors, "P_B (0–1, EP)": iono.pb_errors},
)
glue("fig-fpi-ionosphere", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig-fpi-ionosphere
# :name: fig-fpi-ionosphere
#
# **Ionosphere.** Left: $P_{\mathrm{SGD}}$ against $P_B$ (0–1 posterior of the NNGP, full EP ratio) for the
# functions found at least twice; right: the test-error distributions. Answers the Ionosphere panel of
# {cite:t}`mingard2021`.
# ```

# %% [markdown]
# The data sets of Section 7 run here when `extra_datasets` names them (none in this build unless set), with the
# 0–1 posterior and the clean rule, and join the table below.

# %%
extra = {
    name: cached(
        fpi.panel,
        name,
        name,
        extra_n_train,
        100,
        arch=mnist_arch if name == "fashion-mnist" else cnn_arch,
        n_networks=extra_networks,
        shard_size=extra_networks,
        binarize=mnist_binarize,
        loss="ce",
        lr=mnist_lr if name == "fashion-mnist" else cnn_lr,
        batch_size=mnist_batch,
        max_epochs=mnist_max_epochs,
        stop={"kind": "clean"},
        **panel_common,
    )
    for name in extra_datasets
}
# %%
panels = {"CNN, MNIST": cnn, "FCN, Ionosphere": iono, **extra}
panel_stats = {
    name: fp.headline_statistics(
        p.run.counts(), p.full.lookup(p.run.counts()), p.y_test, min_count=min_count
    )
    for name, p in panels.items()
}
panel_df = pd.DataFrame(
    {
        name: {
            "networks": panels[name].run.n_networks,
            "never fitted": panels[name].summary["never fitted"],
            "diverged": panels[name].summary["diverged"],
            "counted runs": s["n_runs"],
            "distinct functions": s["n_distinct"],
            "top-1 mass": s["top1"],
            "functions compared": s["n_compared"],
            "corr(log P_SGD, log P_B)": s["corr_log"],
            "within 10×": s["frac_within_decade"],
            "mean test error, P_SGD": s["mean_error_sgd"],
            "mean test error, P_B": float(
                (np.arange(panels[name].pb_errors.size) * panels[name].pb_errors).sum()
                / panels[name].n_test
            ),
            "EP failures": panels[name].full.n_failed + panels[name].two_stage.n_failed,
        }
        for name, s in panel_stats.items()
    }
).T
plots.table(panel_df.rename_axis("panel"), index=True)

# %% [markdown]
# (fpi-not-run)=
# ## 7. Not run here
#
# - **Fashion-MNIST and CIFAR-10** need a download. With network access,
#   `sgdbayes run function_probability_images --profile paper -p 'extra_datasets=["fashion-mnist", "cifar10"]'`
#   adds a Fashion-MNIST panel (the MNIST FCN, cross-entropy) and a CIFAR-10 panel (the CNN above on 3 × 32 × 32
#   images, CNN-GP kernel), each as in Sections 5–6.
# - **IMDb with an LSTM** is not implemented: it needs the IMDb reviews, an ensemble trainer for recurrent networks
#   and a Monte-Carlo estimate of the LSTM's NNGP kernel (`sgdbayes.kernels.empirical` does this for FCNs and CNNs
#   only).

# %% tags=["remove-input"]
scale_mnist = (
    f"{run_authors.n_networks:,} runs ({counts_authors.total:,} counted), "
    f"|S| = {ms.n_train:,} ({mnist_source}), |E| = {ms.n_test}, FCN 784→"
    + "→".join(map(str, mnist_hidden))
    + f"→1, MSE 0/1, batch {mnist_batch}, +{mnist_overtrain} epochs"
)
rec = dict(profile=profile)
results.record(
    CH,
    "mnist_n_counted",
    int(counts_authors.total),
    label="MNIST: counted runs (authors' protocol)",
    **rec,
)
results.record(
    CH,
    "mnist_n_distinct",
    int(counts_authors.n_distinct),
    paper=95 if protocol_matches else None,
    label="MNIST: distinct functions",
    description=scale_mnist,
    **rec,
)
results.record(
    CH,
    "mnist_top1_mass",
    top1,
    paper=0.696 if protocol_matches else None,
    label="MNIST: top-1 mass of P_SGD",
    description=f"± {top1_se:.3f} (1 se, clustered by process)",
    **rec,
)
results.record(
    CH,
    "mnist_top10_mass",
    top10,
    paper=0.984 if protocol_matches else None,
    label="MNIST: top-10 mass of P_SGD",
    description=f"± {top10_se:.3f}",
    **rec,
)
results.record(
    CH,
    "mnist_mean_error_sgd",
    float(err_authors),
    paper=0.022 if protocol_matches else None,
    label="MNIST: mean test error under P_SGD",
    description=(
        f"± {err_authors_se:.3f} (the authors' 0.022: full test set, 1 extra epoch)"
    ),
    **rec,
)
results.record(
    CH,
    "mnist_not_counted",
    int(run_authors.n_networks - counts_authors.total),
    label="MNIST: runs not counted (authors' protocol)",
    description="never fitted, diverged, lost the fit, or a process leader",
    **rec,
)
for (rname, pname), row in pt.iterrows():
    tag = {key_a: "authors", key_b: "clean", key_c: "ce"}[rname]
    results.record(
        CH,
        f"mnist_{tag}_{pname}_median_log10_ratio",
        float(row["median log10 P_SGD/P_B"]),
        label=f"MNIST {rname} vs {pname}: median log10 P_SGD/P_B",
        **rec,
    )
    results.record(
        CH,
        f"mnist_{tag}_{pname}_marginal_gap",
        float(row["mean |marginal gap|"]),
        label=f"MNIST {rname} vs {pname}: mean per-digit gap",
        **rec,
    )
results.record(
    CH,
    "mnist_ep_failures",
    int(sum(v.n_failed for v in tables.values())),
    label="MNIST: EP failures (all posteriors)",
    **rec,
)
for name in post_df.index:
    results.record(
        CH,
        f"mnist_entropy_{name}",
        float(post_df.loc[name, "Σ_j entropy (nats)"]),
        label=f"MNIST: Σ_j entropy of P_B, {name}",
        unit="nats",
        **rec,
    )
results.record(
    CH,
    "mnist_mean_error_pb_zero_one",
    mean_err_pb["P_B, zero_one"],
    label="MNIST: mean test error under P_B (0–1)",
    **rec,
)
results.record(
    CH,
    "mnist_mean_error_pb_regression",
    mean_err_pb["P_B, regression_01_at_half"],
    label="MNIST: mean test error under P_B (regression 0/1 at 0.5)",
    **rec,
)
for r, rho, pv, m in zip(csr_radii, csr_rho, csr_p, csr_values.mean(1), strict=True):
    results.record(
        CH,
        f"csr_spearman_r{r:g}",
        float(rho),
        label=f"MNIST: Spearman ρ(CSR, log P_B), r = {r:g}",
        description=f"p = {pv:.2g}, {csr_values.shape[1]} networks",
        **rec,
    )
    results.record(
        CH, f"csr_mean_r{r:g}", float(m), label=f"MNIST: mean CSR, r = {r:g}", **rec
    )
for tag, name in (("cnn", "CNN, MNIST"), ("iono", "FCN, Ionosphere")):
    s = panel_stats[name]
    results.record(
        CH,
        f"{tag}_corr_log",
        float(s["corr_log"]),
        label=f"{name}: corr(log P_SGD, log P_B)",
        description=f"{s['n_compared']} functions seen ≥ {min_count}×",
        **rec,
    )
    results.record(
        CH,
        f"{tag}_frac_within_decade",
        float(s["frac_within_decade"]),
        label=f"{name}: functions within 10× of P_B",
        **rec,
    )
    results.record(
        CH, f"{tag}_n_counted", int(s["n_runs"]), label=f"{name}: counted runs", **rec
    )
    results.record(
        CH,
        f"{tag}_ep_failures",
        int(panel_df.loc[name, "EP failures"]),
        label=f"{name}: EP failures",
        **rec,
    )

# %% tags=["remove-input"]
tracks = bool(matched["mass within 10×"] >= 0.5)
checks = {
    "MSE nets within 10× of the matching regression posterior (≥ half the mass)": tracks
}
if protocol_matches:
    checks["top-1 mass within 3 se of 0.696"] = results.within(
        top1, 0.696, se=top1_se, k=3
    )
    checks["test error within 0.01 of 0.022"] = results.within(
        err_authors, 0.022, abs=0.01
    )
status = results.verdict(checks)
if not protocol_matches and status == "reproduced":
    status = "partly"
results.claim(
    CH,
    "mnist-fcn",
    paper="mingard2021",
    item="MNIST, FCN",
    claim=(
        "On MNIST, P_SGD(f|S) of an FCN tracks P_B(f|S) (95 distinct functions, top-1"
        " 0.696, top-10 0.984, test error ≈ 2.2%)."
    ),
    status=status,
    paper_scale=(
        "|S| = 10⁴ (first 10⁴ digits, parity), |E| = 100, FCN 2×784, σ_b = 0.0357, MSE"
        " 0/1, batch 32, +64 epochs, ~1.04×10⁵ runs"
    ),
    scale=scale_mnist,
    reason=(
        "Against the regression posterior that matches the loss"
        f" {matched['mass within 10×']:.0%} of P_SGD lies within 10× of P_B (median"
        f" log10 ratio {matched['median log10 P_SGD/P_B']:+.2f}); against the 0–1"
        f" posterior {zero_one_a['median log10 P_SGD/P_B']:+.1f} decades; "
        + (
            "the headline numbers are compared at the authors' scale."
            if protocol_matches
            else (
                "the headline numbers need the paper profile (|S| = 10⁴, width 784), so"
                " they are not compared."
            )
        )
    ),
    section="fpi-mnist",
    numbers=[
        "mnist_n_distinct",
        "mnist_top1_mass",
        "mnist_top10_mass",
        "mnist_mean_error_sgd",
    ],
    profile=profile,
)
authors_majority_error = post_df.loc[
    "regression_01_authors", "majority labelling's test error"
]
results.claim(
    CH,
    "mnist-posterior-loss",
    paper="mingard2021",
    item="MNIST, P_B for MSE-trained nets",
    claim=(
        "P_B for MSE-trained networks is the NNGP regression posterior (noise 0.002)"
        " followed by EP on E; the 0–1 posterior is the one for the paper's definition."
    ),
    status=results.verdict(
        {
            "MSE nets closer (per digit) to the matching regression posterior "
            "than to the 0–1 one": bool(
                gap[(key_a, "regression_01_at_half")] < gap[(key_a, "zero_one")]
            ),
            "MSE nets closer in log P (median ratio) to the regression posterior": bool(
                abs(matched["median log10 P_SGD/P_B"])
                < abs(zero_one_a["median log10 P_SGD/P_B"])
            ),
        }
    ),
    paper_scale=(
        "authors' code: GPy regression on 0/1 targets read at 0 (not stated in the"
        " paper)"
    ),
    scale=(
        f"{ms.n_train:,} digits; {len(runs)} sets of networks × {len(fpi.POSTERIORS)}"
        " posteriors"
    ),
    reason=(
        "Per-digit gap of the MSE networks:"
        f" {gap[(key_a, 'regression_01_at_half')]:.3f} to the 0/1 regression read at"
        f" 0.5, {gap[(key_a, 'zero_one')]:.3f} to the 0–1 posterior,"
        f" {gap[(key_a, 'regression_01_authors')]:.3f} to the authors' 0/1-read-at-0"
        " version, whose majority labelling errs on"
        f" {authors_majority_error:.0%}"
        " of E."
    ),
    section="fpi-posteriors",
    numbers=[
        "mnist_authors_regression_01_at_half_marginal_gap",
        "mnist_authors_zero_one_marginal_gap",
        "mnist_authors_regression_01_authors_marginal_gap",
        "mnist_entropy_zero_one",
        "mnist_entropy_regression_pm1",
    ],
    profile=profile,
)
results.claim(
    CH,
    "pb-low-error-images",
    paper="mingard2021",
    item="Error histograms (MNIST)",
    claim=(
        "P_B(f|S) is biased towards low-error functions, and P_SGD's error distribution"
        " follows P_B's (MNIST)."
    ),
    status=results.verdict(
        {
            "P_B's mean error far below chance (both posteriors)": bool(
                max(
                    mean_err_pb.get("P_B, zero_one"),
                    mean_err_pb.get("P_B, regression_01_at_half"),
                )
                < 0.25
            ),
            "MSE nets' mean error within 0.05 of the matching posterior's": bool(
                abs(err_authors - mean_err_pb["P_B, regression_01_at_half"]) < 0.05
            ),
        }
    ),
    paper_scale="MNIST |S| = 10⁴",
    scale=f"MNIST |S| = {ms.n_train:,}, {error_samples:,} posterior samples",
    reason=(
        f"Mean test error: P_SGD {err_authors:.3f}, P_B regression"
        f" {mean_err_pb['P_B, regression_01_at_half']:.3f}, P_B 0–1"
        f" {mean_err_pb['P_B, zero_one']:.3f} (chance 0.5)."
    ),
    section="fpi-errors",
    numbers=[
        "mnist_mean_error_sgd",
        "mnist_mean_error_pb_regression",
        "mnist_mean_error_pb_zero_one",
    ],
    profile=profile,
)
i_auth = csr_radii.index(0.03) if 0.03 in csr_radii else len(csr_radii) - 1
r_auth = csr_radii[i_auth]
results.claim(
    CH,
    "critical-sample-ratio",
    paper="mingard2021",
    item="P_B and complexity, images",
    claim="For images, P_B(f|S) falls with the critical sample ratio of f.",
    status=(
        "reproduced"
        if csr_rho[i_auth] < 0 and csr_p[i_auth] < 0.01
        else "not reproduced"
    ),
    paper_scale="MNIST / CIFAR-10, r = 0.03 on the run's train images",
    scale=(
        f"{csr_values.shape[1]} MNIST networks, CSR on {min(csr_inputs, ms.n_train)}"
        f" train digits, r = {', '.join(f'{r:g}' for r in csr_radii)}"
    ),
    reason=(
        f"Spearman ρ(CSR, log P_B) = {csr_rho[i_auth]:.2f} (p = {csr_p[i_auth]:.2g}) at"
        f" r = {r_auth:g}; mean CSR {csr_values[i_auth].mean():.2f}."
    ),
    section="fpi-csr",
    numbers=[f"csr_spearman_r{r:g}" for r in csr_radii],
    profile=profile,
)
for cid, tag, name, item, claim_text, pscale in (
    (
        "mnist-cnn",
        "cnn",
        "CNN, MNIST",
        "MNIST, CNN",
        "On MNIST, P_SGD of a CNN tracks P_B of its CNN-GP kernel.",
        "MNIST, CNN",
    ),
    (
        "ionosphere",
        "iono",
        "FCN, Ionosphere",
        "Ionosphere",
        "The same agreement on the UCI Ionosphere data set.",
        "UCI Ionosphere, FCN",
    ),
):
    s = panel_stats[name]
    p = panels[name]
    results.claim(
        CH,
        cid,
        paper="mingard2021",
        item=item,
        claim=claim_text,
        status=(
            "not reproduced"
            if not np.isfinite(s["corr_log"])
            else results.verdict(
                {
                    "most functions within 10×": bool(s["frac_within_decade"] >= 0.5),
                    "log-log correlation ≥ 0.7": bool(s["corr_log"] >= 0.7),
                }
            )
        ),
        paper_scale=pscale,
        scale=f"{p.run.n_networks:,} runs, |S| = {p.n_train}, |E| = {p.n_test}",
        reason=(
            f"{s['frac_within_decade']:.0%} of the {s['n_compared']} functions seen ≥"
            f" {min_count}× lie within 10× of P_B (0–1, full EP ratio); correlation of"
            f" the logs {s['corr_log']:.2f}."
        ),
        section=f"fpi-{'cnn' if tag == 'cnn' else 'ionosphere'}",
        numbers=[f"{tag}_corr_log", f"{tag}_frac_within_decade"],
        profile=profile,
    )
for cid, name, item in (
    ("fashion-mnist", "fashion-mnist", "Fashion-MNIST"),
    ("cifar10", "cifar10", "CIFAR-10"),
):
    if name in extra:
        p = extra[name]
        s = fp.headline_statistics(
            p.run.counts(), p.full.lookup(p.run.counts()), p.y_test, min_count=min_count
        )
        status = (
            "not reproduced"
            if not np.isfinite(s["corr_log"])
            else results.verdict(
                {
                    "most functions within 10×": bool(s["frac_within_decade"] >= 0.5),
                    "log-log correlation ≥ 0.7": bool(s["corr_log"] >= 0.7),
                }
            )
        )
        scale, reason = (
            f"{p.run.n_networks:,} runs, |S| = {p.n_train}",
            (
                f"{s['frac_within_decade']:.0%} within 10×, correlation"
                f" {s['corr_log']:.2f}."
            ),
        )
    else:
        status, scale = "not run", "—"
        reason = (
            f"Needs the {item} download: sgdbayes run function_probability_images"
            f" --profile paper -p 'extra_datasets=[\"{name}\"]'."
        )
    results.claim(
        CH,
        cid,
        paper="mingard2021",
        item=item,
        claim=(
            "The same agreement on Fashion-MNIST (FCN and CNN)."
            if name == "fashion-mnist"
            else (
                "The same agreement on CIFAR-10 with convolutional networks (CNN-GP"
                " kernel)."
            )
        ),
        status=status,
        paper_scale=(
            "|S| = 10⁴, |E| = 100 (unverified)"
            if name == "fashion-mnist"
            else "CIFAR-10, CNN (unverified)"
        ),
        scale=scale,
        reason=reason,
        section="fpi-not-run",
        profile=profile,
    )
results.claim(
    CH,
    "imdb-lstm",
    paper="mingard2021",
    item="IMDb, LSTM",
    claim=(
        "The same agreement for an LSTM on IMDb sentiment, with an empirical"
        " (Monte-Carlo) NNGP kernel."
    ),
    status="not run",
    paper_scale="|S| = 45,000, |E| = 50",
    scale="—",
    reason=(
        "Not implemented: the IMDb data, an ensemble trainer for LSTMs and a"
        " Monte-Carlo LSTM kernel are missing."
    ),
    section="fpi-not-run",
    profile=profile,
)

# %% [markdown]
# (fpi-summary)=
# ## What this shows
#
# - **The loss decides the posterior.** Networks trained with MSE sit
#   {glue:text}`median-a-matched:.2f` decades (median) from the GP regression posterior that matches their
#   targets, and {glue:text}`median-a-zero-one:.1f` decades above the 0–1 posterior of the paper's definition,
#   whose {glue:text}`entropy-zero-one:.0f` nats of uncertainty on $E$ (against
#   {glue:text}`entropy-regression:.1f` for the ±1 regression) spread its mass over far more functions. The paper's
#   MNIST claim is about this MSE/regression pairing; the authors' own regression read 0/1 targets at 0, which
#   labels {glue:text}`maj-err-authors-gp:.0%` of $E$ wrongly with its majority labelling.
# - **The authors' MNIST run, read from their code**: parity labels, the first $10^4$ digits, $\sigma_b = 0.0357$
#   actually used, MSE on 0/1 targets under the Keras rule with 64 epochs of waiting. At our scale
#   ($|S|$ = {glue:text}`mnist-n-train`, width {glue:text}`mnist-width`) that protocol gives {glue:text}`mnist-n-distinct` functions in
#   {glue:text}`mnist-n-counted` counted runs, top-1 mass {glue:text}`mnist-top1:.3f` and test error
#   {glue:text}`mnist-err:.3f` — not comparable with the authors' 95 functions, 0.696 and 0.022 at $|S| = 10^4$,
#   which the `paper` profile runs.
# - **Errors.** Labellings drawn from either posterior err on few digits
#   ({glue:text}`err-pb-regression:.3f` regression, {glue:text}`err-pb-zero-one:.3f` 0–1), and the MSE networks'
#   error ({glue:text}`mnist-err:.3f`) follows the regression posterior's.
# - **Complexity and the other panels.** How $P_B$ relates to the critical sample ratio depends on the box radius
#   (Section 4); the CNN and Ionosphere panels and the scorecard rows give the agreement for the 0–1 posterior at
#   this scale. Fashion-MNIST and CIFAR-10 need a download, and IMDb/LSTM is not implemented.
