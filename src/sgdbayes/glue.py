"""Glue for the book's pages: ``myst_nb.glue`` with values the ``{glue:text}`` role can format.

``{glue:text}`name:.3f``` parses the glued value's ``text/plain`` repr as a number. numpy ≥ 2 writes a scalar as
``np.float64(0.25)``, which that role cannot parse (a warning, and the book build fails under ``-W``), so numpy
scalars and 0-d arrays are turned into Python numbers first. Everything else passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["as_python", "glue", "glue_all"]


def as_python(value: Any) -> Any:
    """``value`` with numpy scalars, 0-d numpy arrays and one-element torch tensors as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.ndim == 0:
        return value.item()
    return value


def glue(name: str, value: Any, display: bool = False) -> None:
    """``myst_nb.glue(name, value, display=display)`` after :func:`as_python`."""
    from myst_nb import glue as myst_glue

    myst_glue(name, as_python(value), display=display)


def glue_all(values: Mapping[str, Any]) -> None:
    """:func:`glue` each ``name: value`` pair without displaying it (the numbers a page's prose cites)."""
    for name, value in values.items():
        glue(name, value, display=False)
