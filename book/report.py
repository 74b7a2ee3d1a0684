# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# (report)=
# # Reproduction scorecard
#
# One row for every figure, table and headline claim of the three papers: the claim in a sentence, the paper's
# scale, this build's scale, a status, the reason in a sentence and a link to the chapter section that shows it;
# under each row the paper's numbers beside this build's. Each chapter declares its own rows as it runs
# (`sgdbayes.results.claim`), so rerunning a chapter updates them; a claim of a paper that no chapter declares is
# listed as *not declared*. Statuses:
# **reproduced** — the claim holds at this build's scale, by the criterion in the reason;
# **partly** — some parts hold, or it holds only at a weaker criterion;
# **not reproduced** — it was tested and does not hold as stated;
# **not run** — not tested in this build (data that cannot be downloaded here, a scale beyond a CPU), with the
# command that would run it where one exists.
# In the numbers beneath a row, "—" means the paper gives no value and "n/a" that this run produced no finite
# value (too little data at this scale — common on the smoke profile — or a numerical failure, which the chapter
# itself reports).

# %% tags=["parameters", "remove-cell"]
profile = "default"

# %% tags=["remove-input"]
from IPython.display import HTML, Markdown, display

from sgdbayes import report

card = report.scorecard()
table = report.report_table()
display(Markdown(report.header_markdown(card, table)))
display(HTML(report.summary_html(card)))

# %% [markdown]
# (report-mingard2021)=
# ## Mingard et al. — Is SGD a Bayesian sampler?
#
# {cite:t}`mingard2021`; chapters [Function probability I: the Boolean system](function_probability.ipynb) and
# [Function probability II: images](function_probability_images.ipynb).

# %% tags=["remove-input"]
display(HTML(report.paper_html(card, "mingard2021")))

# %% [markdown]
# (report-chaudhari2018)=
# ## Chaudhari & Soatto — SGD performs variational inference
#
# {cite:t}`chaudhari2018`; chapter [SGD performs variational inference](sgd_variational_inference.ipynb).

# %% tags=["remove-input"]
display(HTML(report.paper_html(card, "chaudhari2018")))

# %% [markdown]
# (report-mandt2017)=
# ## Mandt, Hoffman & Blei — constant SGD as approximate Bayesian inference
#
# {cite:t}`mandt2017`; chapters [Constant SGD](constant_sgd.ipynb) and [Polyak averaging](polyak_averaging.ipynb).

# %% tags=["remove-input"]
display(HTML(report.paper_html(card, "mandt2017")))

# %% [markdown]
# (report-appendix)=
# ## Appendix: every recorded quantity
#
# The raw numbers each chapter recorded, with their units and the profile that produced them. A dash in the
# *paper* column means the paper gives no number for that quantity.

# %% tags=["remove-input"]
display(HTML(report.appendix_html(table)))
