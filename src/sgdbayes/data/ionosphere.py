"""UCI Ionosphere (Sigillito et al. 1989): 351 radar returns, 34 features, label "g" (good) or "b" (bad).

Shipped with the package (``sgdbayes/data/vendor/ionosphere.csv.gz``, provenance in
``vendor/PROVENANCE-ionosphere.md``) so that the book runs offline; :func:`download` fetches the same data from UCI and
accepts it only if its content has the same SHA-256.

The checksum is of the *normalised text*: rows of 35 comma-separated fields, ``\\n`` line ends, no trailing newline —
which is exactly the vendored file's uncompressed bytes. UCI's ``ionosphere.data`` is the same rows; a final newline
or ``\\r\\n`` line ends do not change the normalised text, anything else does.

Preprocessing: none. The 34 features are already in [−1, 1] (feature 2 is 0 for every row); they are returned as
float32, the labels as int64 with g → 1, b → 0 (225 ones, 126 zeros). Mingard et al.'s code
(guillefix/nn-pacbayes, ``generate_inputs_sample.py``, ``dataset == "ion"``) reads its own ``datasets/ionosphere.csv``
with numeric labels (their file is not published, so which class they coded 1 is not known), uses the features as
read, shuffles the rows with ``np.random.seed(708); np.random.permutation(data.index)`` and takes the first m rows
as S and the remaining 351 − m as E; :func:`ionosphere_split` with ``order="authors"`` reproduces that order.

    >>> from sgdbayes.data.ionosphere import load, ionosphere_split
    >>> data = load()
    >>> data.x.shape, data.x.dtype, int(data.y.sum())
    (torch.Size([351, 34]), torch.float32, 225)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from sgdbayes.data.download import ChecksumError, fetch
from sgdbayes.data.mnist import Split

__all__ = ["N_FEATURES", "N_ROWS", "SHA256", "UCI_URL", "Ionosphere", "canonical_text", "download",
           "ionosphere_split", "load", "parse"]

N_ROWS, N_FEATURES = 351, 34
SHA256 = "fd6dd7864b55d56dac0a1e6e24af9ccc35bf2555ac79af8ab9f3d1daa065ab83"
"""SHA-256 of the normalised text (see the module docstring); also in ``/work/shared/data/PROVENANCE.md``."""
UCI_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/ionosphere/ionosphere.data"
UCI_ZIP_URL = "https://archive.ics.uci.edu/static/public/52/ionosphere.zip"
_VENDORED = "vendor/ionosphere.csv.gz"
_LABELS = {"g": 1, "b": 0}
AUTHORS_SEED = 708


@dataclass(frozen=True)
class Ionosphere:
    """x ``[351, 34]`` float32 features in [−1, 1]; y ``[351]`` int64 labels (1 = "g", 0 = "b"); ``source``:
    ``"vendored"`` or the path of the downloaded file; ``sha256`` of the normalised text."""

    x: torch.Tensor
    y: torch.Tensor
    source: str
    sha256: str


def canonical_text(raw: bytes) -> bytes:
    """The normalised text of a data file: lines with trailing whitespace (``\\r``) removed, empty lines dropped,
    joined by ``\\n`` without a final newline. A zip archive (UCI's ``ionosphere.zip``) is read through its
    ``ionosphere.data`` member."""
    if raw[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            names = [n for n in zf.namelist() if n.endswith("ionosphere.data")]
            if not names:
                raise ChecksumError(f"the zip archive has no ionosphere.data member (members: {zf.namelist()})")
            raw = zf.read(names[0])
    lines = [ln.rstrip() for ln in raw.split(b"\n")]
    return b"\n".join(ln for ln in lines if ln)


def parse(text: bytes | str) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``f1,…,f34,label`` → ``(x float32 [n, 34], y int64 [n])``; ValueError naming the first bad row."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    rows = [ln for ln in text.split("\n") if ln.strip()]
    x = np.empty((len(rows), N_FEATURES), dtype=np.float32)
    y = np.empty(len(rows), dtype=np.int64)
    for i, ln in enumerate(rows):
        fields = ln.strip().split(",")
        if len(fields) != N_FEATURES + 1:
            raise ValueError(f"Ionosphere row {i + 1} has {len(fields)} fields, expected {N_FEATURES + 1}: {ln[:60]!r}")
        if fields[-1] not in _LABELS:
            raise ValueError(f"Ionosphere row {i + 1} has label {fields[-1]!r}, expected 'g' or 'b'")
        try:
            x[i] = [float(v) for v in fields[:-1]]
        except ValueError:
            raise ValueError(f"Ionosphere row {i + 1} has a non-numeric feature: {ln[:60]!r}") from None
        y[i] = _LABELS[fields[-1]]
    if not np.isfinite(x).all():
        raise ValueError("Ionosphere features contain NaN or inf")
    return x, y


def _vendored_bytes() -> bytes:
    return gzip.decompress(resources.files("sgdbayes.data").joinpath(_VENDORED).read_bytes())


def _checked(raw: bytes, where: str) -> bytes:
    text = canonical_text(raw)
    digest = hashlib.sha256(text).hexdigest()
    if digest != SHA256:
        raise ChecksumError(f"{where}: the normalised content has sha256 {digest}, expected {SHA256} (a different "
                            "version of the UCI file or a damaged copy)")
    return text


def download(*, cache_dir: str | os.PathLike | None = None, url: str = UCI_URL,
             mirrors: tuple[str, ...] = (UCI_ZIP_URL,), timeout: float = 60.0) -> Path:
    """Fetch Ionosphere from UCI into the data directory (cache first) and check its content against
    :data:`SHA256`; returns the local path. A file with the wrong content is deleted and :class:`ChecksumError`
    raised; without network access :class:`sgdbayes.data.DatasetUnavailableError` says where to put the file by
    hand. ``url``/``mirrors`` may be ``file://`` URLs."""
    path = fetch(url, filename="ionosphere/ionosphere.data", cache_dir=cache_dir, mirrors=mirrors, timeout=timeout)
    try:
        _checked(path.read_bytes(), str(path))
    except (ChecksumError, zipfile.BadZipFile) as err:
        path.unlink(missing_ok=True)
        raise ChecksumError(f"{err}; the file was deleted: call again to download it afresh") from None
    return path


def load(source: str = "vendored", *, cache_dir: str | os.PathLike | None = None) -> Ionosphere:
    """The 351 × 34 data set. ``source="vendored"`` (default: the copy shipped with the package, offline) or
    ``"download"`` (:func:`download`, then the same checks). Both are checked against :data:`SHA256`."""
    if source == "vendored":
        text, where = _checked(_vendored_bytes(), "the vendored ionosphere.csv.gz"), "vendored"
    elif source == "download":
        path = download(cache_dir=cache_dir)
        text, where = _checked(path.read_bytes(), str(path)), str(path)
    else:
        raise ValueError(f"source must be 'vendored' or 'download', got {source!r}")
    x, y = parse(text)
    if x.shape != (N_ROWS, N_FEATURES):
        raise ValueError(f"Ionosphere has shape {x.shape}, expected ({N_ROWS}, {N_FEATURES})")
    return Ionosphere(x=torch.from_numpy(x), y=torch.from_numpy(y), source=where, sha256=SHA256)


def ionosphere_split(n_train: int, n_test: int | None = None, *, order: str | int = "authors",
                     data: Ionosphere | None = None) -> Split:
    """A train set S of ``n_train`` rows and a disjoint test set E of ``n_test`` rows (default: all the others).

    order  ``"authors"``: the row order of Mingard et al.'s code, ``np.random.RandomState(708).permutation(351)``
           (their ``np.random.seed(708)`` then ``np.random.permutation``), S = its first ``n_train`` rows, E the next
           ``n_test``; an int: a permutation from ``np.random.default_rng(order)``.
    """
    if isinstance(n_train, bool) or not isinstance(n_train, int) or not 1 <= n_train < N_ROWS:
        raise ValueError(f"n_train must be an int in 1..{N_ROWS - 1}, got {n_train!r}")
    rest = N_ROWS - n_train
    n_test = rest if n_test is None else n_test
    if isinstance(n_test, bool) or not isinstance(n_test, int) or not 1 <= n_test <= rest:
        raise ValueError(f"n_test must be an int in 1..{rest} (351 - n_train), got {n_test!r}")
    if order == "authors":
        perm = np.random.RandomState(AUTHORS_SEED).permutation(N_ROWS)
    elif isinstance(order, int) and not isinstance(order, bool) and order >= 0:
        perm = np.random.default_rng(order).permutation(N_ROWS)
    else:
        raise ValueError(f"order must be 'authors' or a seed (int >= 0), got {order!r}")
    data = load() if data is None else data
    tr, te = perm[:n_train], perm[n_train:n_train + n_test]
    return Split(x_train=data.x[tr], y_train=data.y[tr], x_test=data.x[te], y_test=data.y[te], n_classes=2,
                 name="ionosphere", train_index=tr.astype(np.int64), test_index=te.astype(np.int64))
