"""Full image data sets, downloaded once and checked: MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100.

The files, URLs and MD5 checksums are the canonical ones (the same lists torchvision uses). Downloads go through
:func:`sgdbayes.data.download.fetch`: cache first, checksum checked, and offline a
:class:`~sgdbayes.data.download.DatasetUnavailableError` that lists every file the data set needs and where to put
it by hand. The files are parsed here (IDX for the MNISTs, the "python version" pickles for CIFAR), so torchvision is
not needed. The CIFAR pickles are read by an unpickler that can build only numpy arrays and plain containers
(:class:`_ArrayUnpickler`): even a file that passed its checksum cannot run code when it is read.

As in Mingard et al., S is a random ``n_train``-subset of the official training split (seeded) and E the first
``n_test`` points of the official test split (``test="random"`` draws them at random instead); pixels are divided by
255 and labels binarised as label ≥ 5 → 1 unless ``binarize=False``.

    >>> from sgdbayes.data import load_mnist
    >>> split = load_mnist(10_000, 100, seed=0)        # doctest: +SKIP  (downloads 11 MB on first use)
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sgdbayes.data.download import ChecksumError, DatasetUnavailableError, data_dir, fetch
from sgdbayes.data.mnist import Split, _check_binarize, _check_count, make_split

__all__ = [
    "DATASETS",
    "image_arrays",
    "load_cifar10",
    "load_cifar100",
    "load_fashion_mnist",
    "load_image_dataset",
    "load_mnist",
    "read_cifar10",
    "read_cifar100",
    "read_idx",
]


@dataclass(frozen=True)
class ImageSource:
    """Where a data set's files come from: ``files`` maps a role to ``(file name, md5)``; each file is fetched from
    the first of ``mirrors`` (a base URL ending in ``/``) that works and stored under ``<data dir>/<folder>/``."""

    name: str
    folder: str
    mirrors: tuple[str, ...]
    files: dict[str, tuple[str, str]]
    kind: str  # "idx", "cifar10" or "cifar100"


DATASETS: dict[str, ImageSource] = {
    "mnist": ImageSource(
        name="MNIST",
        folder="mnist",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        files={
            "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        },
        kind="idx",
    ),
    "fashion-mnist": ImageSource(
        name="Fashion-MNIST",
        folder="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        files={
            "train_images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            "train_labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            "test_images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            "test_labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        },
        kind="idx",
    ),
    "cifar10": ImageSource(
        name="CIFAR-10",
        folder="cifar10",
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files={"archive": ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")},
        kind="cifar10",
    ),
    "cifar100": ImageSource(
        name="CIFAR-100",
        folder="cifar100",
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files={"archive": ("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85")},
        kind="cifar100",
    ),
}

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); multi-byte values are big-endian.
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = ("test_batch",)
_CIFAR100_DIR = "cifar-100-python"

# what a CIFAR "python version" pickle may construct: numpy arrays (old and new module paths) and dtypes
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays, dtypes and builtin containers and refuses every other global, so a
    pickle cannot call arbitrary code (``os.system``, ``exec``, ...) while it is read."""

    def find_class(self, module: str, name: str):
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed here")


def _load_array_pickle(fh) -> object:
    return _ArrayUnpickler(fh, encoding="bytes").load()


def _cifar_member(tar: tarfile.TarFile, member: str, archive: Path, what: str) -> dict:
    try:
        fh = tar.extractfile(member)
    except KeyError:
        fh = None
    if fh is None:
        raise ValueError(f"{archive} has no file {member}; is it the {what} 'python version' archive?")
    blob = _load_array_pickle(fh)
    if not isinstance(blob, dict):
        raise ValueError(f"{member} in {archive} does not hold a dict")
    return blob


def _cifar_rows(blob: dict, label_key: bytes, member: str, archive: Path, n_classes: int
                ) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(blob.get(b"data"), dtype=np.uint8)
    labels = np.asarray(blob.get(label_key), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.ndim != 1 or data.shape[0] != labels.shape[0]:
        raise ValueError(f"{member} in {archive}: data {data.shape} and labels {labels.shape} do not match the "
                         "CIFAR layout [n, 3072] / [n]")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{member} in {archive}: labels outside 0..{n_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (gzip-compressed when its name ends in ``.gz``) into a native-endian numpy array.

    Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64),
    the number of dimensions d, then d big-endian uint32 sizes, then the data in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:  # gzip raises BadGzipFile (an OSError) or EOFError on truncation
        raise ValueError(f"{path} is not a readable IDX file ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (magic bytes {raw[:4].hex() or 'missing'})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)) if ndim else ()
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} of {dtype} ({expected} bytes), file has {len(raw)}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_cifar10(archive: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse ``cifar-10-python.tar.gz``: ``(x_train [50000, 3, 32, 32] uint8, y_train [50000] int64, x_test, y_test)``
    (sizes as found in the archive). Each batch pickle holds ``data`` ``[n, 3072]`` uint8 rows (1024 red, 1024 green,
    1024 blue values, each a 32×32 image in row-major order) and ``labels`` (n ints 0..9)."""
    archive = Path(archive)

    def batches(tar: tarfile.TarFile, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_cifar_rows(_cifar_member(tar, f"{_CIFAR_DIR}/{name}", archive, "CIFAR-10"), b"labels",
                             f"{_CIFAR_DIR}/{name}", archive, 10) for name in names]
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])

    try:
        with tarfile.open(archive, "r:gz") as tar:
            x_train, y_train = batches(tar, _CIFAR_TRAIN)
            x_test, y_test = batches(tar, _CIFAR_TEST)
    except (tarfile.TarError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{archive} is not a readable CIFAR-10 archive ({err})") from err
    return x_train, y_train, x_test, y_test


def read_cifar100(archive: str | os.PathLike, *, labels: str = "fine"
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse ``cifar-100-python.tar.gz``: ``(x_train [50000, 3, 32, 32] uint8, y_train [50000] int64, x_test,
    y_test)``; the files ``train`` and ``test`` hold ``data`` in CIFAR-10's layout and ``fine_labels`` (0..99) and
    ``coarse_labels`` (0..19): ``labels="fine"`` or ``"coarse"`` picks one."""
    if labels not in ("fine", "coarse"):
        raise ValueError(f"labels must be 'fine' or 'coarse', got {labels!r}")
    archive = Path(archive)
    key, n_classes = (b"fine_labels", 100) if labels == "fine" else (b"coarse_labels", 20)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            out = []
            for part in ("train", "test"):
                member = f"{_CIFAR100_DIR}/{part}"
                out.extend(_cifar_rows(_cifar_member(tar, member, archive, "CIFAR-100"), key, member, archive,
                                       n_classes))
    except (tarfile.TarError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{archive} is not a readable CIFAR-100 archive ({err})") from err
    return out[0], out[1], out[2], out[3]


def _source(dataset: str) -> ImageSource:
    key = dataset.strip().lower().replace("_", "-")
    key = {"fashion": "fashion-mnist", "fmnist": "fashion-mnist", "cifar-10": "cifar10",
           "cifar-100": "cifar100"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown image data set {dataset!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[key]


def _fetch_all(source: ImageSource, cache_dir: str | os.PathLike | None) -> dict[str, Path]:
    """Fetch every file of ``source``; offline, the error lists all files needed and where they go."""
    paths: dict[str, Path] = {}
    for role, (filename, md5) in source.files.items():
        urls = [base + filename for base in source.mirrors]
        try:
            paths[role] = fetch(urls[0], mirrors=urls[1:], filename=f"{source.folder}/{filename}", md5=md5,
                                cache_dir=cache_dir)
        except ChecksumError:
            raise
        except DatasetUnavailableError as err:
            folder = data_dir(cache_dir) / source.folder
            needed = "; ".join(f"{f} (md5 {m}) from {source.mirrors[0]}{f}" for f, m in source.files.values())
            raise DatasetUnavailableError(
                f"{source.name} is not available offline: {err}\n"
                f"{source.name} needs these files in {folder}: {needed}."
            ) from err
    return paths


@functools.lru_cache(maxsize=2)
def _arrays_cached(key: str, root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    source = DATASETS[key]
    paths = _fetch_all(source, root)
    if source.kind == "idx":
        x_train, y_train = read_idx(paths["train_images"]), read_idx(paths["train_labels"])
        x_test, y_test = read_idx(paths["test_images"]), read_idx(paths["test_labels"])
        for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
            if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0] or x.dtype != np.uint8:
                raise ValueError(f"{source.name} {part} files hold images {x.shape} {x.dtype} and labels {y.shape}; "
                                 "expected [n, H, W] uint8 and [n]")
        x_train, x_test = x_train[:, None], x_test[:, None]
        y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    elif source.kind == "cifar10":
        x_train, y_train, x_test, y_test = read_cifar10(paths["archive"])
    else:
        x_train, y_train, x_test, y_test = read_cifar100(paths["archive"])
    for a in (x_train, y_train, x_test, y_test):
        a.flags.writeable = False
    return x_train, y_train, x_test, y_test


def image_arrays(dataset: str, *, cache_dir: str | os.PathLike | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The official splits as read-only arrays ``(x_train [N, C, H, W] uint8, y_train [N] int64, x_test, y_test)``,
    downloaded on first use and kept in memory for the two most recent data sets."""
    key = next(k for k, v in DATASETS.items() if v is _source(dataset))
    return _arrays_cached(key, str(data_dir(cache_dir).resolve()))  # keyed by the directory actually used


def load_image_dataset(
    dataset: str,
    n_train: int | None = None,
    n_test: int | None = None,
    *,
    seed: int = 0,
    test: str = "first",
    binarize: bool | str = True,
    flatten: bool = True,
    downsample: int = 1,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
) -> Split:
    """S and E from a full image data set (``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` or ``"cifar100"``, whose
    labels are the 100 fine classes).

    Args:
        n_train: |S|, drawn without replacement from the official training split with ``default_rng(seed)``
            (``None``: all of it, in the seeded order).
        n_test: |E| from the official test split (``None``: all of it).
        test: ``"first"`` (the first ``n_test`` test points, as in the paper) or ``"random"`` (a seeded draw).
        binarize, flatten, downsample, device: as in :func:`sgdbayes.data.load_mnist_subset`; CIFAR-10 inputs are
            ``[n, 3, 32, 32]``, flattened channel-major to 3072 features.
        cache_dir: where the files are kept (default ``$SGDBAYES_DATA_DIR`` or ``~/.cache/sgdbayes/data``).

    Raises:
        ValueError: unknown data set or ``test`` rule, sizes larger than the splits.
        DatasetUnavailableError: the files are absent and cannot be downloaded (the message says where to put them).
    """
    source = _source(dataset)
    if test not in ("first", "random"):
        raise ValueError(f"test must be 'first' or 'random', got {test!r}")
    _check_binarize(binarize)
    if n_train is not None:
        _check_count("n_train", n_train, 1)
    if n_test is not None:
        _check_count("n_test", n_test, 0)
    x_tr, y_tr, x_te, y_te = image_arrays(dataset, cache_dir=cache_dir)
    n_train = x_tr.shape[0] if n_train is None else n_train
    n_test = x_te.shape[0] if n_test is None else n_test
    if n_train > x_tr.shape[0] or n_test > x_te.shape[0]:
        raise ValueError(f"{source.name} has {x_tr.shape[0]} training and {x_te.shape[0]} test images; "
                         f"asked for |S| = {n_train} and |E| = {n_test}")
    rng = np.random.default_rng(seed)
    tr = rng.permutation(x_tr.shape[0])[:n_train]
    te = np.arange(n_test) if test == "first" else rng.permutation(x_te.shape[0])[:n_test]
    return make_split(x_tr[tr], y_tr[tr], x_te[te], y_te[te], train_index=tr, test_index=te,
                      name=source.folder, binarize=binarize, flatten=flatten, downsample=downsample, device=device)


def load_mnist(n_train: int | None = None, n_test: int | None = None, **kwargs) -> Split:
    """Full MNIST (60,000 train / 10,000 test); see :func:`load_image_dataset` for the keywords."""
    return load_image_dataset("mnist", n_train, n_test, **kwargs)


def load_fashion_mnist(n_train: int | None = None, n_test: int | None = None, **kwargs) -> Split:
    """Fashion-MNIST (60,000 / 10,000, 28×28 grey); see :func:`load_image_dataset`."""
    return load_image_dataset("fashion-mnist", n_train, n_test, **kwargs)


def load_cifar10(n_train: int | None = None, n_test: int | None = None, **kwargs) -> Split:
    """CIFAR-10 (50,000 / 10,000, 3×32×32); see :func:`load_image_dataset`."""
    return load_image_dataset("cifar10", n_train, n_test, **kwargs)


def load_cifar100(n_train: int | None = None, n_test: int | None = None, **kwargs) -> Split:
    """CIFAR-100 (50,000 / 10,000, 3×32×32, 100 fine classes); see :func:`load_image_dataset` (``binarize=False``
    keeps the 100 classes)."""
    return load_image_dataset("cifar100", n_train, n_test, **kwargs)
