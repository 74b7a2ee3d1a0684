"""Tabular regression/classification data sets for chapter 3, with standardised features.

Offline (bundled in scikit-learn / statsmodels wheels): ``diabetes`` (442×10, regression), ``breast_cancer`` (569×30,
binary), ``digits`` (1797×64, 10 classes), ``fair`` (6366×8, binary: affairs > 0), ``randhie`` (20190×9, regression).

Downloaded (UCI, through :func:`sgdbayes.data.download.fetch`, cache first; offline → ``DatasetUnavailableError``
saying where to put the file): ``wine_quality`` (white wine, 4898×11, regression), ``skin`` (245057×3, binary),
``protein`` (CASP, 45730×9, regression). No canonical checksums are published for these files, so none is checked.

Every loader returns :class:`Tabular`: features standardised to mean 0, sd 1 (constant columns rejected), regression
targets standardised too, class labels as integers ``0..K−1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sgdbayes.data.download import fetch

__all__ = ["OFFLINE", "ONLINE", "Tabular", "load_tabular", "standardize"]

_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"
#: name → (url, stored filename)
ONLINE = {
    "wine_quality": (f"{_UCI}/wine-quality/winequality-white.csv", "uci/winequality-white.csv"),
    "skin": (f"{_UCI}/00229/Skin_NonSkin.txt", "uci/Skin_NonSkin.txt"),
    "protein": (f"{_UCI}/00265/CASP.csv", "uci/CASP.csv"),
}
OFFLINE = ("diabetes", "breast_cancer", "digits", "fair", "randhie")


@dataclass
class Tabular:
    """``X`` ``[N, D]`` float64 standardised features, ``y`` ``[N]`` (float64 standardised for regression,
    int64 labels for classification), ``task`` ``"regression"|"binary"|"multiclass"``."""

    name: str
    X: np.ndarray
    y: np.ndarray
    task: str
    feature_names: list[str] = field(default_factory=list)

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def D(self) -> int:
        return self.X.shape[1]

    def with_bias(self) -> np.ndarray:
        """``X`` with a trailing column of ones ``[N, D+1]``."""
        return np.column_stack([self.X, np.ones(self.N)])


def standardize(X, name: str = "X") -> np.ndarray:
    """Columns to mean 0, sd 1 (float64). NaN/inf or constant columns raise ``ValueError`` naming the columns."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    bad = np.where(~np.isfinite(X).all(0))[0]
    if bad.size:
        raise ValueError(f"{name} has NaN or inf in column(s) {bad.tolist()[:10]}; clean or impute them first")
    sd = X.std(0)
    const = np.where(sd == 0)[0]
    if const.size:
        raise ValueError(f"{name} has constant column(s) {const.tolist()[:10]}; drop them before standardising")
    out = (X - X.mean(0)) / sd
    return out[:, 0] if out.shape[1] == 1 and name == "y" else out


def _reg(name, X, y, cols):
    return Tabular(name, standardize(X), standardize(np.asarray(y, float), "y").reshape(-1), "regression", list(cols))


def _clf(name, X, y, cols):
    y = np.asarray(y)
    classes, yi = np.unique(y, return_inverse=True)
    return Tabular(name, standardize(X), yi.astype(np.int64), "binary" if classes.size == 2 else "multiclass",
                   list(cols))


def load_tabular(name: str, *, cache_dir=None) -> Tabular:
    """Load one data set by name (see the module docstring for the list)."""
    if name == "diabetes":
        from sklearn.datasets import load_diabetes
        d = load_diabetes()
        return _reg(name, d.data, d.target, d.feature_names)
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer
        d = load_breast_cancer()
        return _clf(name, d.data, d.target, d.feature_names)
    if name == "digits":
        from sklearn.datasets import load_digits
        d = load_digits()
        keep = d.data.std(0) > 0                       # 3 pixels are always blank
        return _clf(name, d.data[:, keep], d.target, np.array(d.feature_names)[keep])
    if name == "fair":
        import statsmodels.api as sm
        df = sm.datasets.fair.load_pandas().data
        y = (df.pop("affairs") > 0).astype(int)
        return _clf(name, df.to_numpy(float), y, df.columns)
    if name == "randhie":
        import statsmodels.api as sm
        df = sm.datasets.randhie.load_pandas().data
        y = df.pop("mdvis")
        return _reg(name, df.to_numpy(float), np.log1p(y), df.columns)
    if name in ONLINE:
        import pandas as pd
        url, fname = ONLINE[name]
        path = fetch(url, filename=fname, cache_dir=cache_dir)
        if name == "wine_quality":
            df = pd.read_csv(path, sep=";")
            y = df.pop("quality")
            return _reg(name, df.to_numpy(float), y, df.columns)
        if name == "skin":
            arr = np.loadtxt(path)
            if arr.ndim != 2 or arr.shape[1] != 4:
                raise ValueError(f"{path} should have 4 columns (B, G, R, label), got shape {arr.shape}")
            return _clf(name, arr[:, :3], (arr[:, 3] == 1).astype(int), ["B", "G", "R"])
        df = pd.read_csv(path)
        y = df.pop("RMSD")
        return _reg(name, df.to_numpy(float), y, df.columns)
    raise ValueError(f"unknown data set {name!r}; allowed: {', '.join(OFFLINE + tuple(ONLINE))}")
