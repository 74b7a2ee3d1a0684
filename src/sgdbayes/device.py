"""Where tensors live: CUDA when present, CPU otherwise, ``SGDBAYES_DEVICE`` overrides.

Library code never calls ``.cuda()``; it creates tensors on the device of its inputs, and entry points that start from
nothing take ``device="auto"`` and resolve it here.
"""

from __future__ import annotations

import contextlib
import os

import torch

ENV_VAR = "SGDBAYES_DEVICE"
_ALLOWED = ("auto", "cpu", "cuda", "cuda:N", "mps")


def _parse(name: str) -> torch.device:
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"unknown device {name!r}; allowed: {', '.join(_ALLOWED)}"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r} requested but CUDA is not available on this machine; "
                f"use 'cpu' or 'auto' (set {ENV_VAR}=auto or unset it)"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device {name!r} requested but MPS is not available; use 'cpu' or 'auto'")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device type {dev.type!r}; allowed: {', '.join(_ALLOWED)}")
    return dev


def get_device(device: str | torch.device | None = "auto") -> torch.device:
    """Resolve a device request.

    ``None`` or ``"auto"`` → the ``SGDBAYES_DEVICE`` environment variable when set, else CUDA when available, else CPU.
    An explicit device string or ``torch.device`` is validated and returned. A bad value raises ``ValueError`` naming
    it and the allowed values.
    """
    if isinstance(device, torch.device):
        return _parse(str(device))
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        env = os.environ.get(ENV_VAR)
        if env:
            try:
                return _parse(env)
            except ValueError as err:
                raise ValueError(f"bad {ENV_VAR}={env!r}: {err}") from None
        return _parse("auto")
    if not isinstance(device, str):
        raise TypeError(f"device must be a str, torch.device or None, got {type(device).__name__}")
    return _parse(device)


@contextlib.contextmanager
def torch_threads(n: int, device: str | torch.device = "cpu"):
    """Run a block with ``n`` torch intra-op threads on CPU (restored after; a no-op for other devices).

    For loops of many small tensor ops: there, thread start-up and spinning cost more than the work, and on a busy
    machine two spinning threads can make a loop 20× slower than one. Process-wide: not for use while other Python
    threads run torch concurrently.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
