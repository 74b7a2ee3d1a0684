"""Tabular loaders: offline sets standardised; downloaded sets cache-first with a clear offline error."""

import urllib.error

import numpy as np
import pytest

from sgdbayes.data import download
from sgdbayes.data.tabular import ONLINE, load_tabular, standardize


@pytest.mark.parametrize("name,task,shape", [("diabetes", "regression", (442, 10)),
                                             ("breast_cancer", "binary", (569, 30)),
                                             ("fair", "binary", (6366, 8))])
def test_offline_sets_standardised(name, task, shape):
    d = load_tabular(name)
    assert d.task == task and d.X.shape == shape
    np.testing.assert_allclose(d.X.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(d.X.std(0), 1, rtol=1e-10)
    if task == "binary":
        assert set(np.unique(d.y)) == {0, 1}


def test_offline_download_error_and_hand_placed_file(tmp_path, monkeypatch):
    def offline(url, dest, timeout):
        raise urllib.error.URLError("offline")
    monkeypatch.setattr(download, "_download", offline)
    with pytest.raises(download.DatasetUnavailableError, match="winequality-white.csv"):
        load_tabular("wine_quality", cache_dir=tmp_path)
    # a file placed by hand is used without any download
    path = tmp_path / ONLINE["wine_quality"][1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('"a";"b";"quality"\n1;2;5\n2;5;6\n3;1;7\n')
    d = load_tabular("wine_quality", cache_dir=tmp_path)
    assert d.X.shape == (3, 2) and d.task == "regression"


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        standardize(np.array([[1.0, np.nan], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="constant"):
        standardize(np.array([[1.0, 3.0], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="unknown data set"):
        load_tabular("iris")
