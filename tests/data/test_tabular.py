"""Tabular loaders: the vendored UCI sets (checksummed), their UCI downloaders (normalise and verify the same
checksums; tested offline through file:// URLs), the offline stand-ins, and the feature scalings."""

import dataclasses
import gzip
import urllib.error

import numpy as np
import pytest

from sgdbayes.data import download, tabular
from sgdbayes.data.download import ChecksumError, DatasetUnavailableError
from sgdbayes.data.tabular import UCI, load_tabular, normalise_uci, standardize, unit_length, vendored_path


@pytest.mark.parametrize("name,task,shape", [("wine_quality", "regression", (4898, 11)),
                                             ("protein", "regression", (45730, 9)),
                                             ("skin", "binary", (245057, 3))])
def test_vendored_uci_sets(name, task, shape):
    d = load_tabular(name, scaling="unit_length")
    assert d.task == task and d.X.shape == shape
    np.testing.assert_allclose(d.X.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(d.X, axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(np.diag(d.X.T @ d.X), 1, rtol=1e-12)       # XᵀX is the correlation matrix
    if task == "binary":
        assert int(d.y.sum()) == 50859                                       # skin = 1 (PROVENANCE counts)
        np.testing.assert_allclose(np.linalg.norm(d.with_bias()[:, -1]), 1.0)
    else:
        assert abs(d.y.mean()) < 1e-9


def test_scalings_are_what_they_say():
    raw = load_tabular("wine_quality", scaling="none")
    std = load_tabular("wine_quality")
    ul = load_tabular("wine_quality", scaling="unit_length")
    assert raw.X[0, 0] == 7.0 and raw.X[0, 10] == 8.8                       # the first row of UCI's file
    np.testing.assert_allclose(std.X.std(0), 1, rtol=1e-12)
    np.testing.assert_allclose(ul.X * np.sqrt(raw.N), std.X, rtol=1e-10)    # unit length = standardised / √N
    np.testing.assert_allclose(ul.y, raw.y, atol=1e-12)                      # targets centred, units kept
    with pytest.raises(ValueError, match="scaling must be one of"):
        load_tabular("wine_quality", scaling="minmax")


def test_corrupt_vendored_file_is_refused(tmp_path, monkeypatch):
    content = gzip.open(vendored_path("wine_quality")).read()
    bad = tmp_path / "wine.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(content.replace(b"8.8,6", b"8.9,6", 1))                    # one digit of one row
    monkeypatch.setattr(tabular, "vendored_path", lambda name: bad)
    with pytest.raises(ChecksumError, match="659d419f"):
        load_tabular("wine_quality")


def _uci_form(name: str) -> bytes:
    """The vendored content turned back into UCI's published layout."""
    text = gzip.open(vendored_path(name)).read().decode()
    if name == "wine_quality":
        header = ";".join(f'"{c}"' for c in tabular._WINE_COLUMNS + ["quality"])
        return (header + "\n" + text.replace(",", ";")).encode()
    if name == "skin":
        return text.replace("\t", " ").replace("\n", "\r\n").encode()
    return text.encode()


@pytest.mark.parametrize("name", ["wine_quality", "skin", "protein"])
def test_uci_downloader_normalises_and_verifies(name, tmp_path, monkeypatch):
    server = tmp_path / "server" / UCI[name].url.rsplit("/", 1)[1]
    server.parent.mkdir()
    server.write_bytes(_uci_form(name))
    monkeypatch.setitem(UCI, name, dataclasses.replace(UCI[name], url=server.as_uri()))
    d = load_tabular(name, source="uci", cache_dir=tmp_path / "cache", scaling="none")
    v = load_tabular(name, scaling="none")
    np.testing.assert_array_equal(d.X, v.X)
    np.testing.assert_array_equal(d.y, v.y)
    # a different file (one value changed) fails the same checksum
    (tmp_path / "cache" / "uci" / server.name).unlink()
    server.write_bytes(_uci_form(name).replace(b"1", b"2", 1))
    with pytest.raises(ChecksumError, match="expected " + UCI[name].sha256):
        load_tabular(name, source="uci", cache_dir=tmp_path / "cache")


def test_uci_offline_error_says_where_to_put_the_file(tmp_path, monkeypatch):
    def offline(url, dest, timeout):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(download, "_download", offline)
    with pytest.raises(DatasetUnavailableError, match="winequality-white.csv"):
        load_tabular("wine_quality", source="uci", cache_dir=tmp_path)


def test_normalisation_of_the_uci_layouts():
    assert normalise_uci("wine_quality", b'"a";"b"\n1;2\n3;4\n') == b"1,2\n3,4"
    assert normalise_uci("skin", b"74 85 123 1\r\n73  84 122 1\r\n") == b"74\t85\t123\t1\n73\t84\t122\t1\n"
    assert normalise_uci("protein", b"RMSD,F1\r\n1,2\r\n") == b"RMSD,F1\r\n1,2\r\n"


@pytest.mark.parametrize("name,task,shape", [("diabetes", "regression", (442, 10)),
                                             ("breast_cancer", "binary", (569, 30)),
                                             ("fair", "binary", (6366, 8))])
def test_offline_stand_ins_standardised(name, task, shape):
    d = load_tabular(name)
    assert d.task == task and d.X.shape == shape
    np.testing.assert_allclose(d.X.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(d.X.std(0), 1, rtol=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        standardize(np.array([[1.0, np.nan], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="constant"):
        standardize(np.array([[1.0, 3.0], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="constant"):
        unit_length(np.array([[1.0, 3.0], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="unknown data set"):
        load_tabular("iris")
    with pytest.raises(ValueError, match="source must be"):
        load_tabular("skin", source="kaggle")
