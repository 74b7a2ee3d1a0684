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
    assert data["results"]["kl"] == {"value": 0.5, "paper": 0.7, "description": "KL", "unit": "",
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
    assert list(table.columns) == ["chapter", "quantity", "paper", "this run", "profile", "description"]
    assert table.set_index("quantity").loc["q1", "this run"] == "1.235"
    assert table.set_index("quantity").loc["q1", "paper"] == "1.2"
    assert table.set_index("quantity").loc["q2", "paper"] == "—"
    assert "unreadable" in " ".join(table["quantity"])


@pytest.mark.parametrize("value,text", [(None, "—"), (0.000012345, "1.234e-05"), (12345678.0, "1.235e+07"),
                                        (3, "3"), (12000, "12,000"), (True, "yes"), (0.5, "0.5")])
def test_format_value(value, text):
    assert format_value(value) == text


def test_report_html_groups_by_chapter_and_escapes(rdir):
    from sgdbayes.report import report_html

    results.record("polyak_averaging", "a", 1.0, description="x < y", profile="smoke")
    results.record("function_probability", "b", 2.0, profile="smoke")
    html = report_html(report_table(rdir))
    assert html.index("Function probability") < html.index("Polyak averaging")  # book order, not alphabetical
    assert "x &lt; y" in html and "x < y" not in html
