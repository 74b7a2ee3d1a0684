# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Reproduction report
#
# Every headline number of the three papers beside the value this build obtained. Each chapter writes its numbers
# to `_build/results/<chapter>.json` as it runs; this page collects whatever is there, so it also works when only
# some chapters have been executed. The *profile* column says at which scale a number was obtained: `smoke` numbers
# only show that the code runs, `default` numbers come from a 2-core CPU at reduced scale, `paper` numbers from the
# papers' scale. A dash in the *paper* column means the paper states no number for that quantity (its claim is
# quoted in the description instead).

# %% tags=["parameters", "remove-cell"]
profile = "default"

# %% tags=["remove-input"]
from IPython.display import HTML, Markdown, display

from sgdbayes.paths import results_dir
from sgdbayes.report import report_html, report_table

table = report_table()
if table.empty:
    display(Markdown(f"No chapter has recorded results yet (looked in `{results_dir()}`). Run "
                     "`sgdbayes book` or `sgdbayes run CHAPTER` first."))
else:
    chapters = ", ".join(sorted(table["chapter"].unique()))
    display(Markdown(f"{len(table)} quantities from {table['chapter'].nunique()} chapter(s): {chapters}."))
    display(HTML(report_html(table)))
