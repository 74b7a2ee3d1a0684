"""Tabular regression / classification data sets for chapter 3.

The paper's data sets (Mandt, Hoffman & Blei 2017, §7.1), **vendored** with the package (``src/sgdbayes/data/vendor``,
gzip, SHA-256 of the uncompressed content checked on every load; provenance in ``vendor/PROVENANCE.md``):

- ``wine_quality``: UCI Wine Quality, white wine (N = 4,898, 11 features, regression of the quality score);
- ``protein``: UCI Physicochemical Properties of Protein Tertiary Structure, CASP (N = 45,730, 9 features F1–F9 —
  the paper says 8 —, regression of RMSD);
- ``skin``: UCI Skin Segmentation (N = 245,057, B, G, R, binary: skin = 1).

``source="uci"`` downloads the same files from UCI instead (:func:`sgdbayes.data.download.fetch`, cache first),
normalises them to the vendored form and checks the same checksums (:func:`fetch_uci`). ``covertype`` (UCI Covertype,
581,012 × 54, 7 classes; §7.3 of the paper) is downloaded only, without a checksum (UCI publishes none); offline it
raises :class:`~sgdbayes.data.download.DatasetUnavailableError` saying where to put the file.

Offline stand-ins bundled in scikit-learn / statsmodels: ``diabetes`` (442×10, regression), ``breast_cancer``
(569×30, binary), ``digits`` (1797×64, 10 classes), ``fair`` (6366×8, binary: affairs > 0), ``randhie``
(20190×9, regression).

Feature scaling (``scaling``):

- ``"standardise"`` (default): every feature column to mean 0, sd 1;
- ``"unit_length"``: every feature column centred and scaled to unit Euclidean norm over the N examples — the
  regression literature's "unit length scaling", which makes ``XᵀX`` the correlation matrix; this is how the
  chapter reads the paper's "we rescaled the feature to unit length";
- ``"none"``: the raw values.

Regression targets are centred (the models have no intercept), and standardised too under ``"standardise"``; class
labels become integers ``0..K−1``. :meth:`Tabular.with_bias` appends a constant column (of unit length under
``"unit_length"``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from sgdbayes.data.download import ChecksumError, fetch

__all__ = ["DOWNLOAD_ONLY", "OFFLINE", "SCALINGS", "UCI", "Tabular", "fetch_uci", "load_tabular", "normalise_uci", "standardize",
           "unit_length", "vendored_path"]

_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"


@dataclass(frozen=True)
class UCIFile:
    """One UCI data set: where UCI serves it, the vendored file, and the SHA-256 of the normalised content."""

    url: str
    vendored: str
    sha256: str
    rows: int


#: The paper's UCI data sets (checksums of the uncompressed, normalised files: vendor/PROVENANCE.md).
UCI = {
    "wine_quality": UCIFile(f"{_UCI}/wine-quality/winequality-white.csv", "winequality-white.csv.gz",
                            "659d419fff887f225bf977d20520bb64a64cae203e460087f809721d4430ba27", 4898),
    "protein": UCIFile(f"{_UCI}/00265/CASP.csv", "casp.csv.gz",
                       "712d2759f8113622a3ba93a47e451397147df946111f6ffdd8c655385d564aef", 45730),
    "skin": UCIFile(f"{_UCI}/00229/Skin_NonSkin.txt", "skin_nonskin.tsv.gz",
                    "008f1fb6a169498dec54fb5951be6478e5465942cc4f6df3b5dabbe484c9a98f", 245057),
}
OFFLINE = ("diabetes", "breast_cancer", "digits", "fair", "randhie")
#: Data sets only downloaded (UCI publishes no checksum for them, so none is checked): name → (url, stored file).
DOWNLOAD_ONLY = {"covertype": (f"{_UCI}/covtype/covtype.data.gz", "uci/covtype.data.gz")}
SCALINGS = ("standardise", "unit_length", "none")
_WINE_COLUMNS = ["fixed acidity", "volatile acidity", "citric acid", "residual sugar", "chlorides",
                 "free sulfur dioxide", "total sulfur dioxide", "density", "pH", "sulphates", "alcohol"]


@dataclass
class Tabular:
    """``X`` ``[N, D]`` float64 features (scaled per ``scaling``), ``y`` ``[N]`` (float64 centred target for
    regression, int64 labels for classification), ``task`` ``"regression"|"binary"|"multiclass"``."""

    name: str
    X: np.ndarray
    y: np.ndarray
    task: str
    feature_names: list[str] = field(default_factory=list)
    scaling: str = "standardise"

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def D(self) -> int:
        return self.X.shape[1]

    def with_bias(self) -> np.ndarray:
        """``X`` with a trailing constant column ``[N, D+1]``: ones, or ``1/√N`` (unit length) under
        ``scaling="unit_length"``."""
        c = 1.0 / np.sqrt(self.N) if self.scaling == "unit_length" else 1.0
        return np.column_stack([self.X, np.full(self.N, c)])


def _finite_columns(X, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    bad = np.where(~np.isfinite(X).all(0))[0]
    if bad.size:
        raise ValueError(f"{name} has NaN or inf in column(s) {bad.tolist()[:10]}; clean or impute them first")
    return X


def standardize(X, name: str = "X") -> np.ndarray:
    """Columns to mean 0, sd 1 (float64). NaN/inf or constant columns raise ``ValueError`` naming the columns."""
    X = _finite_columns(X, name)
    sd = X.std(0)
    const = np.where(sd == 0)[0]
    if const.size:
        raise ValueError(f"{name} has constant column(s) {const.tolist()[:10]}; drop them before standardising")
    out = (X - X.mean(0)) / sd
    return out[:, 0] if out.shape[1] == 1 and name == "y" else out


def unit_length(X, name: str = "X") -> np.ndarray:
    """Columns centred and scaled to unit Euclidean norm (float64): ``XᵀX`` becomes the correlation matrix.
    NaN/inf or constant columns raise ``ValueError``."""
    X = _finite_columns(X, name)
    Xc = X - X.mean(0)
    norm = np.linalg.norm(Xc, axis=0)
    const = np.where(norm == 0)[0]
    if const.size:
        raise ValueError(f"{name} has constant column(s) {const.tolist()[:10]}; drop them before scaling")
    return Xc / norm


def _scale(X, scaling):
    if scaling == "standardise":
        return standardize(X)
    if scaling == "unit_length":
        return unit_length(X)
    return _finite_columns(X, "X")


def _reg(name, X, y, cols, scaling):
    y = _finite_columns(np.asarray(y, float), "y")[:, 0]
    y = standardize(y, "y").reshape(-1) if scaling == "standardise" else y - y.mean()
    return Tabular(name, _scale(X, scaling), y, "regression", list(cols), scaling)


def _clf(name, X, y, cols, scaling):
    classes, yi = np.unique(np.asarray(y), return_inverse=True)
    return Tabular(name, _scale(X, scaling), yi.astype(np.int64), "binary" if classes.size == 2 else "multiclass",
                   list(cols), scaling)


def vendored_path(name: str) -> Path:
    """The vendored, gzip-compressed file of UCI data set ``name`` (inside the installed package)."""
    if name not in UCI:
        raise ValueError(f"no vendored file for {name!r}; vendored: {', '.join(UCI)}")
    return Path(str(resources.files("sgdbayes.data").joinpath("vendor", UCI[name].vendored)))


def _checked(name: str, content: bytes, where: str) -> bytes:
    actual = hashlib.sha256(content).hexdigest()
    if actual != UCI[name].sha256:
        raise ChecksumError(f"{where}: the {name} data have SHA-256 {actual}, expected {UCI[name].sha256} "
                            "(vendor/PROVENANCE.md); the file is corrupt or a different version")
    return content


def normalise_uci(name: str, raw: bytes) -> bytes:
    """UCI's file as served → the vendored form (see vendor/PROVENANCE.md): wine without its header and with commas
    for semicolons, skin tab-separated with LF line ends, protein unchanged."""
    if name == "protein":
        return raw
    lines = raw.decode("ascii").splitlines()
    if name == "wine_quality":
        return "\n".join(line.replace(";", ",") for line in lines[1:] if line.strip()).encode()
    if name == "skin":
        return "".join("\t".join(line.split()) + "\n" for line in lines if line.strip()).encode()
    raise ValueError(f"unknown UCI data set {name!r}; known: {', '.join(UCI)}")


def fetch_uci(name: str, *, cache_dir=None) -> bytes:
    """Download data set ``name`` from UCI (cache first, :func:`sgdbayes.data.download.fetch`), normalise it to the
    vendored form and check its SHA-256 against the vendored one; the normalised bytes. Offline → a
    :class:`~sgdbayes.data.download.DatasetUnavailableError` saying where to put the file."""
    if name not in UCI:
        raise ValueError(f"unknown UCI data set {name!r}; known: {', '.join(UCI)}")
    f = UCI[name]
    path = fetch(f.url, filename=f"uci/{f.url.rsplit('/', 1)[1]}", cache_dir=cache_dir)
    return _checked(name, normalise_uci(name, path.read_bytes()), f"{path} (from {f.url})")


def _uci_content(name: str, source: str, cache_dir) -> bytes:
    if source == "vendored":
        path = vendored_path(name)
        with gzip.open(path, "rb") as fh:
            return _checked(name, fh.read(), str(path))
    return fetch_uci(name, cache_dir=cache_dir)


def _load_uci(name: str, source: str, cache_dir, scaling: str) -> Tabular:
    import pandas as pd

    text = io.BytesIO(_uci_content(name, source, cache_dir))
    if name == "wine_quality":
        arr = pd.read_csv(text, header=None).to_numpy(float)
        return _reg(name, arr[:, :11], arr[:, 11], _WINE_COLUMNS, scaling)
    if name == "protein":
        df = pd.read_csv(text)
        y = df.pop("RMSD")
        return _reg(name, df.to_numpy(float), y.to_numpy(float), df.columns, scaling)
    arr = pd.read_csv(text, sep="\t", header=None).to_numpy(float)
    if arr.shape[1] != 4:
        raise ValueError(f"skin data should have 4 columns (B, G, R, label), got shape {arr.shape}")
    return _clf(name, arr[:, :3], (arr[:, 3] == 1).astype(int), ["B", "G", "R"], scaling)


def load_tabular(name: str, *, scaling: str = "standardise", source: str = "vendored", cache_dir=None) -> Tabular:
    """Load one data set by name (see the module docstring), features scaled per ``scaling``. ``source`` (UCI sets
    only): ``"vendored"`` (the copy in the package) or ``"uci"`` (download, normalise, check)."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}; got {scaling!r}")
    if source not in ("vendored", "uci"):
        raise ValueError(f"source must be 'vendored' or 'uci'; got {source!r}")
    if name in UCI:
        return _load_uci(name, source, cache_dir, scaling)
    if name in DOWNLOAD_ONLY:  # covertype: 581,012 × 54, 7 cover types (labels 1..7 → 0..6)
        url, fname = DOWNLOAD_ONLY[name]
        path = fetch(url, filename=fname, cache_dir=cache_dir)
        arr = np.loadtxt(gzip.open(path), delimiter=",")
        return _clf(name, arr[:, :54], arr[:, 54].astype(int), [f"x{i}" for i in range(54)], scaling)
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        d = load_diabetes()
        return _reg(name, d.data, d.target, d.feature_names, scaling)
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        d = load_breast_cancer()
        return _clf(name, d.data, d.target, d.feature_names, scaling)
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        keep = d.data.std(0) > 0  # 3 pixels are always blank
        return _clf(name, d.data[:, keep], d.target, np.array(d.feature_names)[keep], scaling)
    if name == "fair":
        import statsmodels.api as sm

        df = sm.datasets.fair.load_pandas().data
        y = (df.pop("affairs") > 0).astype(int)
        return _clf(name, df.to_numpy(float), y, df.columns, scaling)
    if name == "randhie":
        import statsmodels.api as sm

        df = sm.datasets.randhie.load_pandas().data
        y = df.pop("mdvis")
        return _reg(name, df.to_numpy(float), np.log1p(y), df.columns, scaling)
    raise ValueError(f"unknown data set {name!r}; allowed: {', '.join(OFFLINE + tuple(UCI) + tuple(DOWNLOAD_ONLY))}")
