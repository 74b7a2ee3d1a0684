"""Ionosphere: the vendored copy (checksum, shape, labels, known rows), the UCI downloader offline (file:// URLs
standing in for UCI: its line ends and final newline, a zip mirror, a damaged copy, no network), and the authors'
row order."""

from __future__ import annotations

import gzip
import hashlib
import urllib.error
import zipfile

import numpy as np
import pytest
import torch

from sgdbayes.data import ChecksumError, DatasetUnavailableError
from sgdbayes.data import download as download_module
from sgdbayes.data.ionosphere import SHA256, canonical_text, download, ionosphere_split, load, parse


@pytest.fixture(scope="module")
def vendored_text() -> bytes:
    from importlib import resources

    return gzip.decompress(resources.files("sgdbayes.data").joinpath("vendor/ionosphere.csv.gz").read_bytes())


def test_vendored_copy(vendored_text):
    assert hashlib.sha256(vendored_text).hexdigest() == SHA256       # the file as shipped, no normalisation needed
    d = load()
    assert d.x.shape == (351, 34) and d.x.dtype == torch.float32 and d.y.dtype == torch.int64
    assert int(d.y.sum()) == 225 and int((d.y == 0).sum()) == 126          # 225 g, 126 b (UCI's description)
    assert float(d.x.min()) == -1.0 and float(d.x.max()) == 1.0
    assert bool((d.x[:, 1] == 0).all())                                     # feature 2 is constant
    # first two rows of UCI's file
    torch.testing.assert_close(d.x[0, :4], torch.tensor([1.0, 0.0, 0.99539, -0.05889]))
    torch.testing.assert_close(d.x[1, 32:], torch.tensor([-0.13738, -0.02447]))
    assert d.y[:2].tolist() == [1, 0]


def uci_like(text: bytes) -> bytes:
    """UCI's layout as fetched: CRLF line ends and a final newline."""
    return text.replace(b"\n", b"\r\n") + b"\r\n"


def test_download_normalises_uci_layout(tmp_path, vendored_text):
    src = tmp_path / "uci" / "ionosphere.data"
    src.parent.mkdir()
    src.write_bytes(uci_like(vendored_text))
    assert hashlib.sha256(src.read_bytes()).hexdigest() != SHA256           # raw bytes differ ...
    assert hashlib.sha256(canonical_text(src.read_bytes())).hexdigest() == SHA256   # ... the content does not
    cache = tmp_path / "cache"
    path = download(cache_dir=cache, url=src.as_uri(), mirrors=())
    assert path.is_file() and path.parent.parent == cache
    d = load("download", cache_dir=cache)         # cache first: no network needed now
    torch.testing.assert_close(d.x, load().x, rtol=0, atol=0)
    assert d.source == str(path)


def test_download_from_zip_mirror(tmp_path, vendored_text):
    z = tmp_path / "ionosphere.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ionosphere.names", "description")
        zf.writestr("ionosphere.data", uci_like(vendored_text))
    path = download(cache_dir=tmp_path / "c", url=(tmp_path / "missing.data").as_uri(), mirrors=(z.as_uri(),))
    assert hashlib.sha256(canonical_text(path.read_bytes())).hexdigest() == SHA256


def test_damaged_download_is_rejected_and_deleted(tmp_path, vendored_text):
    bad = tmp_path / "ionosphere.data"
    bad.write_bytes(vendored_text.replace(b"0.99539", b"0.99593", 1))
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="expected " + SHA256):
        download(cache_dir=cache, url=bad.as_uri(), mirrors=())
    assert not (cache / "ionosphere" / "ionosphere.data").exists()


def test_offline_is_a_clear_error(tmp_path, monkeypatch):
    def no_network(url, dest, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download_module, "_download", no_network)
    with pytest.raises(DatasetUnavailableError, match="could not download.*place it at"):
        download(cache_dir=tmp_path)                 # the real UCI URLs, with the network cut
    with pytest.raises(DatasetUnavailableError):
        load("download", cache_dir=tmp_path)


def test_authors_row_order():
    """np.random.seed(708); data.reindex(np.random.permutation(data.index)), as in the authors'
    generate_inputs_sample.py, then the first m rows are S and the rest E."""
    pd = pytest.importorskip("pandas")
    d = load()
    df = pd.DataFrame(d.x.numpy())
    np.random.seed(708)
    order = df.reindex(np.random.permutation(df.index)).index.to_numpy()
    np.random.seed()
    s = ionosphere_split(200, data=d)
    np.testing.assert_array_equal(s.train_index, order[:200])
    np.testing.assert_array_equal(s.test_index, order[200:])
    torch.testing.assert_close(s.x_train, d.x[torch.from_numpy(order[:200].copy())])
    assert s.n_test == 151 and s.name == "ionosphere"
    r = ionosphere_split(100, 50, order=3, data=d)
    assert r.n_train == 100 and r.n_test == 50 and not set(r.train_index) & set(r.test_index)


def test_bad_input():
    with pytest.raises(ValueError, match="source must be"):
        load("uci")
    with pytest.raises(ValueError, match="n_train"):
        ionosphere_split(351)
    with pytest.raises(ValueError, match="n_test"):
        ionosphere_split(300, 60)
    with pytest.raises(ValueError, match="label 'x'"):
        parse("1," * 34 + "x")
    with pytest.raises(ValueError, match="has 3 fields"):
        parse("1,2,g")
