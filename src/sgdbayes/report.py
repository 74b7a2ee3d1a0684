"""The reproduction report: the scorecard of the three papers, from ``_build/results/*.json`` only.

Each chapter declares its rows with :func:`sgdbayes.results.claim`. :data:`EXPECTED` lists, per paper, every figure,
table and headline claim this book should answer — including those it does not run — so that a claim no chapter
declares shows up as "not declared by any chapter" instead of silently missing. A declared claim matches an expected
one by ``(paper, claim_id)``; declared claims not in the list are shown too, after the expected ones.

The figure and table numbers of Mandt et al. and the table of Chaudhari & Soatto follow ``shared/reference``; for
Mingard et al. the items name the experiment (the paper's figure numbers were not checked against its text).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from sgdbayes.paths import project_root
from sgdbayes.results import PAPERS, STATUSES, load_all, load_claims

CHAPTER_TITLES = {
    "function_probability": "1 · Function probability I: the Boolean system (Mingard et al. 2021)",
    "function_probability_images": "1 · Function probability II: images (Mingard et al. 2021)",
    "sgd_variational_inference": "2 · SGD performs variational inference (Chaudhari & Soatto 2018)",
    "constant_sgd": "3 · Constant SGD as approximate inference (Mandt, Hoffman & Blei 2017)",
    "polyak_averaging": "4 · Polyak averaging (Mandt, Hoffman & Blei 2017, §6)",
    "synthesis": "5 · Synthesis",
}

#: Shown for an expected claim that no chapter declared.
UNDECLARED = "not declared"

#: Badge colours: text on a filled badge, readable in colour-blind palettes by label as well as colour.
STATUS_COLOURS = {
    "reproduced": "#1a7f37",
    "partly": "#9a6700",
    "not reproduced": "#c62828",
    "not run": "#57606a",
    UNDECLARED: "#ffffff",
}

PAPER_LINKS = {
    "mingard2021": "https://arxiv.org/abs/2006.15191",
    "chaudhari2018": "https://arxiv.org/abs/1710.11029",
    "mandt2017": "https://arxiv.org/abs/1704.04289",
}


@dataclass(frozen=True)
class Expected:
    """A figure, table or headline claim of a paper that the scorecard must answer."""

    paper: str
    claim_id: str
    item: str
    claim: str
    paper_scale: str
    chapter: str  # the chapter expected to declare it


def _m(cid, item, claim, scale, chapter="function_probability"):
    return Expected("mingard2021", cid, item, claim, scale, chapter)


def _c(cid, item, claim, scale, chapter="sgd_variational_inference"):
    return Expected("chaudhari2018", cid, item, claim, scale, chapter)


def _d(cid, item, claim, scale, chapter="constant_sgd"):
    return Expected("mandt2017", cid, item, claim, scale, chapter)


#: Every item of the three papers the scorecard answers, in the order shown (facts: shared/reference/*.md).
EXPECTED: tuple[Expected, ...] = (
    # --- Mingard, Valle-Pérez, Skalse & Louis (JMLR 2021)
    _m("boolean-psgd-vs-pb", "Boolean system",
       "P_SGD(f|S) of an FCN on the n = 7 Boolean system tracks P_B(f|S) of its NNGP (EP) within about an order of "
       "magnitude, over many orders of magnitude.",
       "FCN 7→40→40→1, |S| = 32, |E| = 96, 6×10⁵ SGD runs (batch 8, cross-entropy)"),
    _m("boolean-pb-direct", "Boolean system, P_B by sampling",
       "P_B(f|S) estimated by direct sampling of prior networks agrees with the EP estimate.",
       "10⁷–10¹⁰ prior samples; top function P_B ≈ 0.14"),
    _m("boolean-concentration", "Boolean system, P_SGD",
       "P_SGD is concentrated on few functions: 33,298 distinct, top-1/10/100/1000 mass 0.653/0.697/0.798/0.894.",
       "6×10⁵ runs, |S| = 32, stop at 100% train accuracy"),
    _m("boolean-overtraining", "Overtraining",
       "64 further epochs after the fit concentrate P_SGD (top-1 0.939, 6,632 distinct functions).",
       "6×10⁵ runs, |S| = 32, +64 epochs"),
    _m("boolean-large-s", "Larger training set",
       "With |S| = 64 both distributions concentrate (486 distinct functions, top-1 0.977).",
       "6×10⁵ runs, |S| = 64"),
    _m("optimisers", "Optimisers and batch sizes",
       "Adam, Adagrad, Adadelta, RMSprop and SGD at several batch sizes all track P_B; their differences are "
       "second order.", "Boolean and MNIST systems, batch 1–128, 10⁵–10⁶ runs per setting"),
    _m("pb-complexity", "P_B and complexity",
       "P_B(f|S) falls with the Lempel–Ziv complexity of f: the posterior is biased towards simple functions.",
       "Boolean n = 7, targets of K_LZ 28–42"),
    _m("pb-low-error", "Error histograms",
       "P_B(f|S) is biased towards low-error functions, and P_SGD's error distribution follows P_B's.",
       "Boolean |S| = 32 and MNIST |S| = 10⁴"),
    _m("mnist-fcn", "MNIST, FCN",
       "On MNIST, P_SGD(f|S) of an FCN tracks P_B(f|S) (95 distinct functions, top-1 0.696, top-10 0.984, "
       "test error ≈ 2.2%).",
       "|S| = 10⁴, |E| = 100, FCN 2×784, σ_w = 1, σ_b = 0.0357, MSE, batch 32, +64 epochs", chapter="function_probability_images"),
    _m("fashion-mnist", "Fashion-MNIST",
       "The same agreement on Fashion-MNIST (FCN and CNN).", "|S| = 10⁴, |E| = 100 (unverified)", chapter="function_probability_images"),
    _m("cifar10", "CIFAR-10",
       "The same agreement on CIFAR-10 with convolutional networks (CNN-GP kernel).", "CIFAR-10, CNN (unverified)", chapter="function_probability_images"),
    _m("imdb-lstm", "IMDb, LSTM",
       "The same agreement for an LSTM on IMDb sentiment, with an empirical (Monte-Carlo) NNGP kernel.",
       "|S| = 45,000, |E| = 50", chapter="function_probability_images"),
    _m("ionosphere", "Ionosphere",
       "The same agreement on the UCI Ionosphere data set.", "UCI Ionosphere, FCN", chapter="function_probability_images"),
    _m("critical-sample-ratio", "P_B and complexity, images",
       "For images, P_B(f|S) falls with the critical sample ratio of f.", "MNIST / CIFAR-10", chapter="function_probability_images"),
    # --- Chaudhari & Soatto (ICLR 2018)
    _c("noise-spectrum-mnist", "Table (λ(D), MNIST)",
       "The gradient-noise covariance D is highly non-isotropic and low rank: small-lenet (0.3 ± 2.11)×10⁻³, rank "
       "1.8% of d; small-fc (0.9 ± 18.5)×10⁻³, rank 0.6%.",
       "full MNIST; small-lenet 13,338 weights, small-fc 3,978"),
    _c("noise-spectrum-cifar", "Table (λ(D), CIFAR)",
       "small-allcnn: CIFAR-10 0.27 ± 0.84 (rank 0.34%), CIFAR-100 0.98 ± 2.16 (0.47%), CIFAR-10 with augmentation "
       "0.43 ± 1.32 (0.32%).", "CIFAR-10/100, small-allcnn 26,982 weights"),
    _c("spectrum-checkpoints", "Eigenspectrum figure",
       "Spectra of D at 20%, 40% and 100% of training are nearly identical.", "small-lenet / small-allcnn"),
    _c("eta-over-b", "Remark (learning rate ∝ batch size)",
       "Only η/b matters for the stationary behaviour: the learning rate should scale linearly with the batch size.",
       "argument from the SDE"),
    _c("with-replacement", "Remark (sampling with replacement)",
       "Sampling with replacement regularises more: its temperature exceeds the without-replacement one by "
       "1/(1 − b/N).", "argument from the SDE"),
    _c("variational-inference", "Theorem (variational inference)",
       "ρ^ss minimises E_ρ[Φ] − β⁻¹H(ρ), and Φ = f only when D is isotropic.", "theorem"),
    _c("linear-phi-ne-f", "Linear case",
       "For a quadratic loss with D and the Hessian not commuting, Φ ≠ f while the minimum stays put.", "theory"),
    _c("double-well", "Double-well example",
       "ρ^ss = e^{−Φ}/Z for every rotation strength λ; at λ = 1.5 the most likely path is a limit cycle.",
       "2-D toy SDE after Noh & Lee (2015)"),
    _c("trajectory-fft", "Trajectory figure (FFT)",
       "The FFT of SGD weight increments is not flat: low-frequency modes, unlike white noise.",
       "tiny-fc, 10⁵ epochs, burn-in 10³"),
    _c("trajectory-acf", "Trajectory figure (autocorrelation)",
       "The autocorrelation of the weights stays outside the 99% band at large lags, unlike Brownian motion.",
       "tiny-fc, 10⁵ epochs"),
    _c("trajectory-grad-norm", "Trajectory figure (gradient norm)",
       "The full-gradient norm stays large, dropping only ≈3× over 10⁵ epochs: SGD does not settle at a critical "
       "point.", "tiny-fc, 10⁵ epochs"),
    _c("critical-points", "Remark (critical points of Φ)",
       "The critical points of Φ move away from those of f as the temperature β⁻¹ grows (non-isotropic noise).",
       "argument; double well and a 1-D SGD diffusion here"),
    _c("local-entropy", "Local entropy",
       "Local entropy, the loss smoothed in the exponent, favours wide minima.", "argument"),
    # --- Mandt, Hoffman & Blei (JMLR 2017)
    _d("table1-wine", "Table 1 (Wine)",
       "KL(posterior ‖ stationary) on Wine Quality: full H 0.7, SGFS-full 0.8, SGLD 2.9, SGFS-diag 12.8, "
       "diagonal 14.0, constant SGD 18.7, BBVI 44.7.", "UCI Wine Quality, N = 4,898, D = 11, S = 100"),
    _d("table1-skin", "Table 1 (Skin)",
       "KL on Skin Segmentation (logistic): full H 0.005, SGFS-full 0.005, constant SGD 0.471, SGFS-diag 0.864, "
       "SGLD 0.905, diagonal 0.921, BBVI 5.74.", "UCI Skin, N = 245,057, D = 3, S = 10,000"),
    _d("table1-protein", "Table 1 (Protein)",
       "KL on Protein: SGFS-full 1.3, full H 1.8, SGLD 4.5, BBVI 478.1, SGFS-diag 597.4, diagonal 678.4, "
       "constant SGD 1000.9.", "UCI Protein, N = 45,730, S = 100"),
    _d("table1-order", "Table 1 (ordering)",
       "Full preconditioning ≈ SGFS-full ≪ SGLD < diagonal < plain constant SGD in KL.",
       "Wine, Skin, Protein"),
    _d("eps-star", "Eq. 15 (optimal ε)",
       "The constant learning rate ε* = 2SD/(N Tr BBᵀ) minimises KL(q ‖ posterior).", "theory; Table 1 runs at ε*"),
    _d("fig1", "Fig. 1",
       "Projected on the posterior's principal axes, preconditioned constant SGD matches the posterior, plain constant "
       "SGD its scale but not its shape, BBVI neither.", "linear and logistic regression, 2-D projections"),
    _d("fig2", "Fig. 2",
       "The OU-predicted 11-D stationary covariance matches the empirical covariance of the iterates on Wine.",
       "Wine Quality, D = 11"),
    _d("momentum", "§5 (momentum)",
       "With momentum only ε/(μS) matters for the stationary covariance.", "theory"),
    _d("sgld", "§5 (SGLD)",
       "Constant-rate SGLD overestimates the posterior covariance by (ε/2S)A⁻¹BBᵀ (commuting case).", "theory"),
    _d("sgfs", "§5 (SGFS)",
       "SGFS with the optimal full preconditioner samples the posterior exactly (KL = 0 under the assumptions).",
       "theory; Table 1 SGFS rows"),
    _d("vem-mnist", "§7.3, Fig. 6 (MNIST)",
       "Constant-SGD variational EM finds a prior precision λ close to the validation-optimal one and to BBVI's.",
       "Bayesian softmax regression on MNIST"),
    _d("vem-covertype", "§7.3, Fig. 6 (covertype)",
       "The same agreement on covertype.", "Bayesian softmax regression on covertype (UCI)"),
    _d("polyak-optimal", "§6 (Polyak averaging)",
       "The covariance of the average of T iterates is A⁻¹BBᵀA⁻ᵀ/(TS), independent of ε, S and the preconditioner: "
       "averaging is optimal.", "theory", chapter="polyak_averaging"),
    _d("iasg-window", "§6, Algorithm 1 (IASG)",
       "Averaging windows of T = N/S iterates gives approximately independent posterior samples (covariance ≈ A⁻¹/N).",
       "theory", chapter="polyak_averaging"),
    _d("fig3", "Fig. 3",
       "Averaged SGD iterates have approximately the posterior covariance; the raw iterates' covariance differs.",
       "synthetic linear regression N = 10,000, D = 10, ε = 0.005, S = 1, 10⁶ iterations", chapter="polyak_averaging"),
    _d("fig4", "Fig. 4",
       "IASG reaches the posterior's smallest and largest marginal variances in fewer passes than SGLD and NUTS, "
       "from the MAP and from a random start.",
       "N = 10,000, D = 10, S = 10, window 1,000, ε = 0.003, 100 chains", chapter="polyak_averaging"),
    _d("fig5", "Fig. 5",
       "The covariance matrices estimated by IASG, SGLD and NUTS against the posterior's (heat maps).",
       "N = 10,000, D = 10", chapter="polyak_averaging"),
)


def expected_for(paper: str) -> list[Expected]:
    return [e for e in EXPECTED if e.paper == paper]


def format_value(value: Any, unit: str = "") -> str:
    """Compact human form: 4 significant digits for floats, short lists, units appended; '—' for missing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        if math.isnan(value):
            text = "NaN"
        elif value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            text = f"{value:.3e}"
        else:
            text = f"{value:.4g}"
    elif isinstance(value, (list, tuple)):
        items = [format_value(v) for v in value[:6]]
        text = "[" + ", ".join(items) + (", …" if len(value) > 6 else "") + "]"
    elif isinstance(value, dict):
        text = ", ".join(f"{k}: {format_value(v)}" for k, v in list(value.items())[:6])
    elif value == "nan":  # results._plain stores NaN as the string 'nan'
        text = "NaN"
    else:
        text = str(value)
    numeric = not isinstance(value, (str, bool)) or text == "NaN"
    return f"{text} {unit}".strip() if unit and numeric and text != "—" else text


COLUMNS = ["chapter", "quantity", "label", "paper", "this run", "unit", "profile", "description"]


def report_table(directory: Path | None = None) -> pd.DataFrame:
    """One row per recorded quantity: chapter, name, human label, the paper's value, this run's, unit, profile,
    description (values formatted as text)."""
    rows = load_all(directory)
    return pd.DataFrame(
        [{"chapter": r["chapter"], "quantity": r["quantity"], "label": r.get("label") or "",
          "paper": format_value(r["paper"]), "this run": format_value(r["value"]), "unit": r.get("unit") or "",
          "profile": r["profile"] or "—", "description": r.get("description") or ""} for r in rows],
        columns=COLUMNS,
    )


# ----------------------------------------------------------------------------------------------- the scorecard
def section_labels(chapter: str, root: Path | None = None) -> set[str]:
    """The MyST target labels ``(label)=`` defined in ``book/<chapter>.py`` (empty when the source is absent)."""
    path = (root or project_root()) / "book" / f"{chapter}.py"
    if not path.is_file():
        return set()
    return set(re.findall(r"^#?\s*\(([A-Za-z0-9][A-Za-z0-9_\-]*)\)=\s*$", path.read_text(), flags=re.M))


def scorecard(directory: Path | None = None, root: Path | None = None) -> pd.DataFrame:
    """One row per expected or declared claim, for every paper, in the order of :data:`EXPECTED`.

    Columns: paper, claim_id, item, claim, paper_scale, scale, status, reason, chapter, section, link, link_ok,
    numbers (list of dicts: label, paper, value, unit), declared (bool), expected (bool), profile.
    """
    claims = load_claims(directory)
    recorded = {(r["chapter"], r["quantity"]): r for r in load_all(directory)}
    declared: dict[tuple[str, str], dict[str, Any]] = {}
    duplicates = []
    for c in claims:
        key = (c["paper"], c["claim_id"])
        if key in declared:
            duplicates.append(f"{key[1]} ({declared[key]['chapter']} and {c['chapter']})")
        declared[key] = c
    labels_cache: dict[str, set[str]] = {}

    def row_for(c: dict[str, Any], exp: Expected | None) -> dict[str, Any]:
        chapter = c["chapter"]
        if chapter not in labels_cache:
            labels_cache[chapter] = section_labels(chapter, root)
        nums = []
        for name in c.get("numbers", []):
            r = recorded.get((chapter, name))
            if r is None:
                nums.append({"name": name, "label": name, "paper": "—", "value": "(not recorded)", "unit": ""})
                continue
            unit = r.get("unit") or ""
            nums.append({"name": name, "label": r.get("label") or r.get("description") or name,
                         "paper": format_value(r["paper"], unit), "value": format_value(r["value"], unit),
                         "unit": unit})
        return {"paper": c["paper"], "claim_id": c["claim_id"], "item": c["item"], "claim": c["claim"],
                "paper_scale": c["paper_scale"], "scale": c["scale"], "status": c["status"], "reason": c["reason"],
                "chapter": chapter, "section": c["section"], "link": f"{chapter}.html#{c['section']}",
                "link_ok": c["section"] in labels_cache[chapter], "numbers": nums, "declared": True,
                "expected": exp is not None, "profile": c.get("profile") or "—"}

    rows = []
    for paper in PAPERS:
        for exp in expected_for(paper):
            c = declared.pop((paper, exp.claim_id), None)
            if c is not None:
                rows.append(row_for(c, exp))
            else:
                rows.append({"paper": paper, "claim_id": exp.claim_id, "item": exp.item, "claim": exp.claim,
                             "paper_scale": exp.paper_scale, "scale": "—", "status": UNDECLARED,
                             "reason": f"not declared by any chapter (expected from {exp.chapter})",
                             "chapter": exp.chapter, "section": "", "link": "", "link_ok": False, "numbers": [],
                             "declared": False, "expected": True, "profile": "—"})
        for key in [k for k in declared if k[0] == paper]:
            rows.append(row_for(declared.pop(key), None))
    table = pd.DataFrame(rows)
    table.attrs["duplicates"] = duplicates
    return table


def header_markdown(card: pd.DataFrame, table: pd.DataFrame) -> str:
    """The line above the summary: where the numbers come from, a warning for smoke-profile numbers, duplicated
    claim ids."""
    from sgdbayes.paths import results_dir

    if table.empty and card.empty:
        return (f"No chapter has recorded results yet (looked in `{results_dir()}`). Run `sgdbayes book` or "
                "`sgdbayes run CHAPTER` first.")
    profiles = sorted({p for p in table["profile"] if p and p != "—"}) if not table.empty else []
    chapters = sorted(set(table["chapter"])) if not table.empty else []
    parts = [f"Rows declared by {len(set(card.loc[card['declared'], 'chapter'])) if not card.empty else 0} "
             f"chapter(s); numbers from {len(chapters)} chapter(s), profile(s): "
             f"{', '.join(f'`{p}`' for p in profiles) or '—'}."]
    if "smoke" in profiles:
        parts.append("**Some numbers come from the `smoke` profile**, which only checks that the code runs: at "
                     "that scale no status below means anything.")
    if card.attrs.get("duplicates"):
        parts.append("Claims declared twice (the later one is shown): " + "; ".join(card.attrs["duplicates"]) + ".")
    return " ".join(parts)


def summary_counts(card: pd.DataFrame) -> pd.DataFrame:
    """Rows: papers; columns: the statuses (and "not declared"); cells: number of scorecard rows."""
    cols = [*STATUSES, UNDECLARED]
    counts = pd.DataFrame(0, index=list(PAPERS), columns=cols, dtype=int)
    if not card.empty:
        for (paper, status), n in card.groupby(["paper", "status"]).size().items():
            counts.loc[paper, status] = int(n)
    return counts


def badge(status: str) -> str:
    """An inline coloured badge for a status (colour and words both carry it)."""
    if status not in STATUS_COLOURS:
        raise ValueError(f"unknown status {status!r}; allowed: {', '.join(STATUS_COLOURS)}")
    cls = "sgd-badge sgd-" + status.replace(" ", "-")
    if status == UNDECLARED:
        style = "background:#fff;color:#57606a;border:1px dashed #8c959f;"
    else:
        style = f"background:{STATUS_COLOURS[status]};color:#fff;border:1px solid {STATUS_COLOURS[status]};"
    return (f'<span class="{cls}" data-status="{escape(status)}" style="{style}display:inline-block;'
            f'padding:1px 7px;border-radius:9px;font-size:0.85em;font-weight:600;white-space:nowrap;">'
            f"{escape(status)}</span>")


def summary_html(card: pd.DataFrame) -> str:
    """Per paper: a bar split by status and the counts, so what holds is visible at a glance."""
    counts = summary_counts(card)
    cols = list(counts.columns)
    head = "".join(f"<th style='text-align:center'>{badge(s)}</th>" for s in cols)
    body = []
    for paper, row in counts.iterrows():
        total = int(row.sum())
        segs = "".join(
            f'<span title="{escape(s)}: {int(row[s])}" style="display:inline-block;height:12px;width:'
            f'{100 * row[s] / max(total, 1):.2f}%;background:{STATUS_COLOURS[s] if s != UNDECLARED else "#d0d7de"};">'
            "</span>" for s in cols if row[s])
        cells = "".join(f"<td style='text-align:center'>{int(row[s]) if row[s] else '·'}</td>" for s in cols)
        body.append(f'<tr class="sgd-summary-row"><td><a href="#report-{paper}">{escape(PAPERS[paper])}</a>'
                    f'<div style="display:flex;width:100%;min-width:140px;margin-top:3px;border-radius:3px;'
                    f'overflow:hidden;background:#eee">{segs}</div></td>{cells}'
                    f"<td style='text-align:center'>{total}</td></tr>")
    return ('<table class="sgd-summary table" style="width:100%"><thead><tr><th>paper</th>' + head
            + "<th style='text-align:center'>rows</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def paper_html(card: pd.DataFrame, paper: str) -> str:
    """The scorecard of one paper: one row per claim — its status badge in the first column (scan it to see what
    holds), then the item and claim, the paper's and this build's scale, the reason and the link to the chapter
    section; the numbers (paper beside this build) beneath."""
    if paper not in PAPERS:
        raise ValueError(f"unknown paper {paper!r}; allowed: {', '.join(PAPERS)}")
    rows = card[card["paper"] == paper] if not card.empty else card
    out = ['<table class="sgd-scorecard table" style="width:100%">',
           '<thead><tr><th style="width:8.5em">status</th><th>claim, scale, reason</th></tr></thead><tbody>']
    for _, r in rows.iterrows():
        if r["declared"]:
            title = CHAPTER_TITLES.get(r["chapter"], r["chapter"]).split(" (")[0]
            warn = "" if r["link_ok"] else (' <span class="sgd-warn" title="no (label)= with this name in the '
                                            'chapter source">(section label not found)</span>')
            where = (f' · shown in <a class="sgd-section-link" href="{escape(r["link"])}">{escape(title)}</a>'
                     f"{warn}")
        else:
            where = ""
        if r["expected"]:
            extra = ""
        elif r["chapter"] == "synthesis":
            extra = (' <small title="a test of this paper\'s view on the synthesis chapter\'s networks">'
                     "(synthesis)</small>")
        else:
            extra = ' <small title="declared by a chapter, not in the expected list">(extra)</small>'
        nums = ""
        if r["numbers"]:
            items = "".join(
                f"<li>{escape(n['label'])}: paper <b>{escape(n['paper'])}</b> · this build "
                f"<b>{escape(n['value'])}</b></li>" for n in r["numbers"])
            nums = f'<ul class="sgd-numbers">{items}</ul>'
        out.append(
            f'<tr class="sgd-claim" data-claim="{escape(r["claim_id"])}" data-status="{escape(r["status"])}">'
            f"<td>{badge(r['status'])}</td>"
            f'<td><div class="sgd-claim-text"><b>{escape(r["item"])}</b>{extra} — {escape(r["claim"])}</div>'
            f'<div class="sgd-scale"><span>Paper: {escape(r["paper_scale"])}</span> · '
            f'<span>this build: {escape(r["scale"])}</span></div>'
            f'<div class="sgd-reason">{escape(r["reason"])}{where}</div>{nums}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def appendix_html(table: pd.DataFrame) -> str:
    """Every recorded quantity, grouped by chapter, inside a collapsed ``<details>``: human label first, the
    internal name small beneath it, then this build's value, the paper's, the unit and the profile."""
    if table.empty:
        return "<p>No quantities recorded yet.</p>"
    order = [c for c in CHAPTER_TITLES if c in set(table["chapter"])]
    order += sorted(set(table["chapter"]) - set(order))
    parts = [f"<details class='sgd-appendix'><summary>All {len(table)} recorded quantities, by chapter "
             "(click to open)</summary>"]
    for chapter in order:
        rows = table[table["chapter"] == chapter]
        parts.append(f"<h4>{escape(CHAPTER_TITLES.get(chapter, chapter))}</h4>")
        parts.append('<table class="table sgdbayes-report" style="width:100%"><thead><tr>'
                     '<th style="width:45%">quantity</th><th>this build</th><th>paper</th><th>unit</th>'
                     "<th>profile</th></tr></thead><tbody>")
        for _, r in rows.iterrows():
            label = r["label"] or r["description"] or r["quantity"]
            desc = r["description"] if r["label"] and r["description"] else ""
            sub = f"<br><small>{escape(desc)}</small>" if desc else ""
            parts.append(f"<tr><td>{escape(label)}{sub}<br><small><code>{escape(r['quantity'])}</code></small></td>"
                         f"<td style='white-space:nowrap'>{escape(r['this run'])}</td>"
                         f"<td style='white-space:nowrap'>{escape(r['paper'])}</td><td>{escape(r['unit'] or '—')}</td>"
                         f"<td>{escape(str(r['profile']))}</td></tr>")
        parts.append("</tbody></table>")
    parts.append("</details>")
    return "\n".join(parts)


def report_html(table: pd.DataFrame) -> str:
    """Kept for callers of the old report: the appendix of every recorded quantity."""
    return appendix_html(table)
