"""fetch(): cache first, atomic checked downloads, a clear error offline or on a bad checksum. All offline."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

import pytest

from sgdbayes.data import download
from sgdbayes.data.download import ChecksumError, DatasetUnavailableError, data_dir, fetch, file_digest

PAYLOAD = b"sgdbayes test payload\n" * 1000


@pytest.fixture
def source(tmp_path):
    """A file served through a file:// URL, with its true digests."""
    src = tmp_path / "server" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    return src.as_uri(), hashlib.sha256(PAYLOAD).hexdigest(), hashlib.md5(PAYLOAD).hexdigest()  # noqa: S324


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def test_download_then_cache_hit(source, cache, monkeypatch):
    url, sha, _ = source
    path = fetch(url, filename="sub/blob.bin", sha256=sha, cache_dir=cache)
    assert path == cache / "sub" / "blob.bin"
    assert path.read_bytes() == PAYLOAD
    assert not list(path.parent.glob(".*part"))  # no temporary left behind

    def no_network(*args, **kwargs):
        raise AssertionError("a cached file must not be downloaded again")

    monkeypatch.setattr(download, "_download", no_network)
    assert fetch(url, filename="sub/blob.bin", sha256=sha, cache_dir=cache) == path


def test_md5_is_checked_and_file_digest_matches_hashlib(source, cache):
    url, sha, md5 = source
    path = fetch(url, filename="blob.bin", md5=md5, cache_dir=cache)
    assert file_digest(path, "sha256") == sha
    assert file_digest(path, "md5") == md5


def test_wrong_checksum_deletes_download(source, cache):
    url, sha, _ = source
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        fetch(url, filename="blob.bin", sha256=wrong, cache_dir=cache)
    msg = str(info.value)
    assert wrong in msg and sha in msg  # expected and actual digests both named
    assert not (cache / "blob.bin").exists()
    assert list(cache.iterdir()) == []  # nor any temporary
    assert isinstance(info.value, RuntimeError)


def test_corrupt_cached_file_is_deleted_then_refetched(source, cache):
    url, sha, _ = source
    bad = cache / "blob.bin"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"truncated")
    with pytest.raises(ChecksumError, match="deleted"):
        fetch(url, filename="blob.bin", sha256=sha, cache_dir=cache)
    assert not bad.exists()
    assert fetch(url, filename="blob.bin", sha256=sha, cache_dir=cache).read_bytes() == PAYLOAD


def test_offline_error_says_where_to_put_the_file(cache, monkeypatch):
    def offline(request, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    sha = "ab" * 32
    url = "https://example.invalid/data/blob.bin"
    with pytest.raises(DatasetUnavailableError) as info:
        fetch(url, filename="blob.bin", sha256=sha, cache_dir=cache)
    msg = str(info.value)
    assert "could not download blob.bin" in msg
    assert url in msg
    assert str(cache / "blob.bin") in msg
    assert sha in msg
    assert "SGDBAYES_DATA_DIR" in msg
    assert not (cache / "blob.bin").exists()
    assert not list(cache.glob(".*part"))


def test_mirror_used_when_primary_fails(source, cache, tmp_path):
    url, sha, _ = source
    dead = (tmp_path / "nowhere" / "blob.bin").as_uri()  # file:// to a missing file → URLError
    path = fetch(dead, filename="blob.bin", sha256=sha, cache_dir=cache, mirrors=[url])
    assert path.read_bytes() == PAYLOAD


def test_missing_local_source_is_unavailable(cache, tmp_path):
    dead = (tmp_path / "nowhere" / "blob.bin").as_uri()
    with pytest.raises(DatasetUnavailableError, match="no checksum is recorded"):
        fetch(dead, filename="blob.bin", cache_dir=cache)


def test_hand_placed_file_is_used(cache):
    cache.mkdir()
    (cache / "blob.bin").write_bytes(PAYLOAD)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    assert fetch("https://example.invalid/x", filename="blob.bin", sha256=sha, cache_dir=cache).read_bytes() == PAYLOAD


def test_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SGDBAYES_DATA_DIR", str(tmp_path / "d"))
    assert data_dir() == tmp_path / "d"
    assert data_dir(tmp_path / "e") == tmp_path / "e"
    monkeypatch.delenv("SGDBAYES_DATA_DIR")
    assert data_dir().parts[-3:] == (".cache", "sgdbayes", "data")


@pytest.mark.parametrize("kwargs", [{"filename": "../escape"}, {"filename": ""}, {"filename": "f", "sha256": "xyz"},
                                    {"filename": "f", "md5": "0" * 31}])
def test_bad_arguments(kwargs, cache):
    with pytest.raises(ValueError):
        fetch("https://example.invalid/x", cache_dir=cache, **kwargs)
