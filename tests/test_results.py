import json

import numpy as np
import pytest

from sgdbayes import results
from sgdbayes.report import format_value, report_table


@pytest.fixture
def rdir(tmp_path, monkeypatch):
    monkeypatch.setenv("SGDBAYES_RESULTS_DIR", str(tmp_path))
    return tmp_path


def test_record_and_load(rdir):
    results.record("ch", "kl", np.float64(0.5), paper=0.7, description="KL", profile="smoke")
    results.record("ch", "n", np.int64(3), profile="smoke")
    data = json.loads((rdir / "ch.json").read_text())
    assert data["results"]["kl"] == {"value": 0.5, "paper": 0.7, "label": "", "description": "KL", "unit": "",
                                     "profile": "smoke"}
    assert data["results"]["n"]["value"] == 3


def test_nan_stays_valid_json(rdir):
    results.record("ch", "x", float("nan"))
    assert json.loads((rdir / "ch.json").read_text())["results"]["x"]["value"] == "nan"


def test_bad_names(rdir):
    with pytest.raises(ValueError, match="may only contain"):
        results.record("ch/../x", "a", 1)
    with pytest.raises(ValueError, match="may only contain"):
        results.record("ch", "a b", 1)


def test_report_with_some_chapters(rdir):
    assert report_table(rdir).empty
    results.record("a", "q1", 1.23456, paper=1.2, profile="default")
    results.record("b", "q2", [1, 2], profile="smoke")
    (rdir / "broken.json").write_text("{not json")
    table = report_table(rdir)
    assert list(table.columns) == ["chapter", "quantity", "label", "paper", "this run", "unit", "profile",
                                   "description"]
    assert table.set_index("quantity").loc["q1", "this run"] == "1.235"
    assert table.set_index("quantity").loc["q1", "paper"] == "1.2"
    assert table.set_index("quantity").loc["q2", "paper"] == "—"
    assert "unreadable" in " ".join(table["quantity"])


@pytest.mark.parametrize("value,text", [(None, "—"), (0.000012345, "1.234e-05"), (12345678.0, "1.235e+07"),
                                        (3, "3"), (12000, "12,000"), (True, "yes"), (0.5, "0.5"),
                                        (float("nan"), "n/a"), ("nan", "n/a")])
def test_format_value(value, text):
    assert format_value(value) == text


def test_report_html_groups_by_chapter_and_escapes(rdir):
    from sgdbayes.report import appendix_html

    results.record("polyak_averaging", "a", 1.0, description="x < y", profile="smoke")
    results.record("function_probability", "b", 2.0, label="top-1 mass", profile="smoke")
    html = appendix_html(report_table(rdir))
    assert html.index("Function probability") < html.index("Polyak averaging")  # book order, not alphabetical
    assert "x &lt; y" in html and "x < y" not in html
    assert "top-1 mass" in html and html.startswith("<details")  # human label shown, collapsed by default


# ------------------------------------------------------------------------------------------------ claims
def _claim(**kw):
    args = dict(paper="mandt2017", item="Table 1", claim="Full H beats plain SGD.", status="partly",
                paper_scale="Wine, S = 100", scale="diabetes, 300 chains", reason="holds on one of two data sets",
                section="csgd-table1", numbers=["kl"], profile="smoke")
    args.update(kw)
    results.claim("constant_sgd", "table1-order", **args)


def test_claim_is_stored_beside_the_numbers(rdir):
    results.record("constant_sgd", "kl", 0.5, paper=0.7, label="KL(p ‖ q)", unit="nats", profile="smoke")
    _claim()
    data = json.loads((rdir / "constant_sgd.json").read_text())
    assert data["results"]["kl"]["value"] == 0.5
    c = data["claims"]["table1-order"]
    assert c["status"] == "partly" and c["section"] == "csgd-table1" and c["numbers"] == ["kl"]
    assert c["paper"] == "mandt2017" and c["profile"] == "smoke"
    # a later record keeps the claim (read-modify-write), and clear removes both
    results.record("constant_sgd", "other", 1)
    assert "table1-order" in results.load("constant_sgd")["claims"]
    results.clear("constant_sgd")
    assert results.load("constant_sgd") == {"chapter": "constant_sgd", "results": {}, "claims": {}}


@pytest.mark.parametrize("kw,err,match", [
    (dict(status="mostly"), ValueError, "status 'mostly' is not allowed; use one of: 'reproduced'"),
    (dict(paper="mandt2018"), ValueError, "allowed bib keys: mingard2021, chaudhari2018, mandt2017"),
    (dict(reason="  "), ValueError, "reason must not be empty"),
    (dict(scale=None), TypeError, "scale must be a str"),
    (dict(section="not a label!"), ValueError, "is not a MyST label"),
    (dict(numbers=["kl", "nope"]), ValueError, r"numbers not recorded in chapter 'constant_sgd': \['nope'\]"),
    (dict(numbers="kl"), TypeError, "not the string"),
])
def test_claim_validation(rdir, kw, err, match):
    results.record("constant_sgd", "kl", 0.5)
    with pytest.raises(err, match=match):
        _claim(**kw)
    assert results.load("constant_sgd")["claims"] == {}  # nothing written on a bad claim


def test_claim_missing_field_is_a_clear_error(rdir):
    with pytest.raises(TypeError, match="reason"):
        results.claim("ch", "x", paper="mandt2017", item="Fig. 1", claim="c", status="not run", paper_scale="p",
                      scale="s", section="sec")


def test_verdict_and_within():
    assert results.verdict({"a": True, "b": True}) == "reproduced"
    assert results.verdict({"a": True, "b": False}) == "partly"
    assert results.verdict({"a": np.bool_(False)}) == "not reproduced"
    with pytest.raises(ValueError):
        results.verdict({})
    with pytest.raises(TypeError):
        results.verdict({"a": 1})
    assert results.within(0.66, 0.653, se=0.004) and not results.within(0.67, 0.653, se=0.004)
    assert results.within(1.05, 1.0, rel=0.1) and not results.within(1.2, 1.0, rel=0.1)
    assert not results.within(float("nan"), 1.0, abs=10)
    with pytest.raises(ValueError, match="at least one"):
        results.within(1.0, 1.0)


def test_scorecard_marks_undeclared_expected_claims_and_links(rdir, tmp_path):
    from sgdbayes import report

    root = tmp_path / "proj"
    (root / "book").mkdir(parents=True)
    (root / "book" / "constant_sgd.py").write_text("# %% [markdown]\n# (csgd-table1)=\n# ## Table 1\n")
    results.record("constant_sgd", "kl", 0.5, paper=0.7, label="KL(p ‖ q), full H", unit="nats")
    _claim()
    results.record("constant_sgd", "z", 1.0)
    results.claim("constant_sgd", "extra-claim", paper="mandt2017", item="Claim", claim="c", status="not run",
                  paper_scale="p", scale="s", reason="r", section="missing-label")
    card = report.scorecard(rdir, root=root)
    assert len(card) == len(report.EXPECTED) + 1  # every expected row, plus the extra one
    row = card.set_index("claim_id").loc["table1-order"]
    assert row["status"] == "partly" and row["link"] == "constant_sgd.html#csgd-table1" and row["link_ok"]
    assert row["numbers"] == [{"name": "kl", "label": "KL(p ‖ q), full H", "paper": "0.7 nats",
                               "value": "0.5 nats", "unit": "nats"}]
    extra = card.set_index("claim_id").loc["extra-claim"]
    assert not extra["expected"] and not extra["link_ok"]
    undeclared = card[card["status"] == report.UNDECLARED]
    assert len(undeclared) == len(report.EXPECTED) - 1
    assert all("not declared by any chapter" in r for r in undeclared["reason"])
    counts = report.summary_counts(card)
    assert counts.loc["mandt2017", "partly"] == 1 and counts.loc["mandt2017", "not run"] == 1
    assert int(counts.values.sum()) == len(card)
    html = report.paper_html(card, "mandt2017")
    assert html.count('class="sgd-claim"') == len(card[card["paper"] == "mandt2017"])
    assert 'data-status="partly"' in html and "(section label not found)" in html and "0.5 nats" in html
    assert "sgd-badge" in report.summary_html(card)


def test_expected_claims_are_unique_and_name_real_papers():
    from sgdbayes import report

    keys = [(e.paper, e.claim_id) for e in report.EXPECTED]
    assert len(keys) == len(set(keys))
    assert {e.paper for e in report.EXPECTED} == set(results.PAPERS)
    # the not-run items the issue names are in the list
    ids = {e.claim_id for e in report.EXPECTED}
    assert {"imdb-lstm", "cifar10", "fashion-mnist", "noise-spectrum-cifar", "vem-covertype"} <= ids


def test_scorecard_papers_are_in_the_bibliography():
    from pathlib import Path

    bib = (Path(__file__).resolve().parents[1] / "references.bib").read_text()
    for key in results.PAPERS:
        assert f"{{{key}," in bib


@pytest.mark.parametrize("text, expected", [
    ("corr nan (Keras) / nan (clean)", "corr n/a (Keras) / n/a (clean)"),
    ("median log10 ratio +nan over 0 functions", "median log10 ratio n/a over 0 functions"),
    ("nan% within 10×", "n/a% within 10×"),
    ("(p = nan)", "(p = n/a)"),
    ("the nanny and the banana finance", "the nanny and the banana finance"),
    ("NaN is left alone only when capitalised: nan", "NaN is left alone only when capitalised: n/a"),
])
def test_numbers_that_formatted_as_nan_read_not_available(text, expected):
    assert results.not_available(text) == expected


def test_a_claim_stores_its_text_with_nan_written_as_not_available(rdir):
    results.record("ch", "x", float("nan"))
    results.claim("ch", "c1", paper="mingard2021", item="Fig. 1", claim="A claim.", status="not reproduced",
                  paper_scale="big", scale="small", reason=f"corr {float('nan'):.2f} over 2 functions.",
                  section="sec-a", numbers=["x"])
    assert results.load("ch")["claims"]["c1"]["reason"] == "corr n/a over 2 functions."
