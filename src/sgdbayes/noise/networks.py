"""The small networks of Chaudhari & Soatto (2018, §4.1), rebuilt to their published weight counts.

* ``small_lenet``: MNIST 28×28 → conv 8 (5×5) + BN + max-pool 3 → conv 16 (5×5) + BN + max-pool 2 → FC 128 + BN →
  10, ReLU and dropout; 13,338 weights as in the paper.
* ``small_fc``: MNIST downsampled to 7×7 → 64 hidden + BN → 10; 3,978 weights.
* ``tiny_fc``: 7×7 inputs, the first 5 classes → 16 hidden + BN → 5; 917 weights.
* ``small_allcnn``: CIFAR 3×32×32 → nine 3×3/1×1 convolutions (12, 12, 12/2, 24, 24, 24/2, 24, 24, classes), each
  followed by BN and ReLU, then 8×8 average pooling; 26,982 weights for 10 classes (``allcnns`` in the authors'
  ``models.py``; its last block also puts BN and ReLU on the class scores before pooling, a quirk kept here).

The authors' code (github.com/pratikac/grad-info, ``models.py``) names them ``lenets``, ``fclenets``, ``fclenett`` and
``allcnns``; with its default options ``lenets`` has dropout layers with p = 0 and every model is trained by
``SGD(momentum=0.9)`` (heavy ball, not Nesterov).
"""

from __future__ import annotations

from torch import nn


def small_lenet(n_classes: int = 10, dropout: float = 0.1) -> nn.Sequential:
    """Input ``[N, 1, 28, 28]`` → logits ``[N, n_classes]`` (13,338 weights for 10 classes)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(3, 3), nn.Dropout(dropout),
        nn.Conv2d(8, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Dropout(dropout),
        nn.Flatten(), nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(128, n_classes),
    )


def small_fc(n_in: int = 49, hidden: int = 64, n_classes: int = 10) -> nn.Sequential:
    """Input ``[N, 49]`` (7×7 MNIST) → logits; 3,978 weights with the defaults."""
    return nn.Sequential(nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


def tiny_fc(n_in: int = 49, hidden: int = 16, n_classes: int = 5) -> nn.Sequential:
    """Input ``[N, 49]`` → logits over the first 5 digits; 917 weights with the defaults."""
    return small_fc(n_in, hidden, n_classes)


def small_allcnn(n_classes: int = 10, dropout: float = 0.0) -> nn.Sequential:
    """Input ``[N, 3, 32, 32]`` → logits ``[N, n_classes]`` (26,982 weights for 10 classes, 29,412 for 100)."""

    def block(c_in: int, c_out: int, k: int = 3, stride: int = 1, pad: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad), nn.BatchNorm2d(c_out), nn.ReLU()]

    c1, c2 = 12, 24
    return nn.Sequential(
        *block(3, c1), *block(c1, c1), *block(c1, c1, stride=2), nn.Dropout(dropout),
        *block(c1, c2), *block(c2, c2), *block(c2, c2, stride=2), nn.Dropout(dropout),
        *block(c2, c2), *block(c2, c2), *block(c2, n_classes, k=1, pad=0),
        nn.AvgPool2d(8), nn.Flatten(),
    )


def n_weights(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
