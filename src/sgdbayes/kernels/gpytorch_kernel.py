"""``NNGPKernel``: the FCN/CNN NNGP kernels as a ``gpytorch.kernels.Kernel`` with learnable σ_w and σ_b.

The kernel is evaluated in float64 by ``nngp_fcn``/``nngp_cnn`` and returned in the dtype of ``x1``, so it works in
float32 and float64 models. σ_w and σ_b are ``raw_sigma_w``/``raw_sigma_b`` behind ``gpytorch.constraints.Positive``
(softplus) constraints, stored in float64 (``.float()`` changes that). While they require gradients the kernel
takes the dense differentiable path (analytic gradient of the ReLU map, finite on the diagonal); under
``torch.no_grad()`` the tiled fast path.
"""

from __future__ import annotations

import itertools

import torch
from gpytorch.constraints import Interval, Positive
from gpytorch.kernels import Kernel

from sgdbayes.kernels.cnn import nngp_cnn
from sgdbayes.kernels.fcn import NONLINEARITIES, _check_sigma, nngp_fcn, nngp_fcn_diag

__all__ = ["NNGPKernel", "ARCHITECTURES"]

ARCHITECTURES = ("fcn", "cnn")


class NNGPKernel(Kernel):
    """NNGP kernel of an FCN (``architecture="fcn"``, inputs ``[..., n, d]``) or a CNN without pooling
    (``"cnn"``, flat inputs ``[..., n, C·H·W]`` with ``image_shape=(C, H, W)``).

    Args:
        depth: hidden layers (≥ 0).
        nonlinearity: ``"relu"`` or ``"erf"``.
        sigma_w, sigma_b: initial values (> 0: the positivity constraint excludes 0).
        sigma_w_constraint, sigma_b_constraint: ``gpytorch`` constraints (default ``Positive()``).
        **cnn_kwargs: ``kernel_size``, ``padding``, ``image_shape`` for ``nngp_cnn``.
    """

    has_lengthscale = False

    def __init__(self, *, depth: int, nonlinearity: str = "relu", architecture: str = "fcn",
                 sigma_w: float = 1.0, sigma_b: float = 0.1, sigma_w_constraint: Interval | None = None,
                 sigma_b_constraint: Interval | None = None, **kwargs):
        cnn_kwargs = {k: kwargs.pop(k) for k in ("kernel_size", "padding", "image_shape") if k in kwargs}
        super().__init__(**kwargs)
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; allowed: {', '.join(ARCHITECTURES)}")
        if cnn_kwargs and architecture != "cnn":
            raise ValueError(f"{sorted(cnn_kwargs)} only apply to architecture='cnn'")
        if architecture == "cnn" and cnn_kwargs.get("image_shape") is None:
            raise ValueError("architecture='cnn' needs image_shape=(C, H, W) (gpytorch passes flat rows)")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be an int >= 0, got {depth!r}")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"unknown nonlinearity {nonlinearity!r}; allowed: {', '.join(NONLINEARITIES)}")
        for name, v in (("sigma_w", sigma_w), ("sigma_b", sigma_b)):
            _check_sigma(name, v)
            if float(v) <= 0:
                raise ValueError(f"initial {name} must be > 0 (positivity constraint), got {v}")
        self.depth, self.nonlinearity = depth, nonlinearity
        self.architecture, self.cnn_kwargs = architecture, cnn_kwargs
        for name, v, constraint in (("sigma_w", sigma_w, sigma_w_constraint),
                                    ("sigma_b", sigma_b, sigma_b_constraint)):
            raw = torch.zeros(*self.batch_shape, 1, 1, dtype=torch.float64)
            self.register_parameter(f"raw_{name}", torch.nn.Parameter(raw))
            self.register_constraint(f"raw_{name}", constraint if constraint is not None else Positive())
            setattr(self, name, float(v))

    def _get(self, name):
        raw = getattr(self, f"raw_{name}")
        return getattr(self, f"raw_{name}_constraint").transform(raw)

    def _set(self, name, value):
        raw = getattr(self, f"raw_{name}")
        value = torch.as_tensor(value, dtype=raw.dtype, device=raw.device)
        if not bool(torch.isfinite(value).all()) or not bool((value > 0).all()):
            raise ValueError(f"{name} must be finite and > 0 (positivity constraint), got {value.tolist()}")
        value = value.expand_as(raw)
        self.initialize(**{f"raw_{name}": getattr(self, f"raw_{name}_constraint").inverse_transform(value)})

    @property
    def sigma_w(self) -> torch.Tensor:
        return self._get("sigma_w")

    @sigma_w.setter
    def sigma_w(self, value):
        self._set("sigma_w", value)

    @property
    def sigma_b(self) -> torch.Tensor:
        return self._get("sigma_b")

    @sigma_b.setter
    def sigma_b(self, value):
        self._set("sigma_b", value)

    def _one(self, x1, x2, sw, sb, diag):
        kw = dict(depth=self.depth, sigma_w=sw, sigma_b=sb, nonlinearity=self.nonlinearity)
        if self.architecture == "fcn":
            if diag:
                return nngp_fcn_diag(x1, None if x1 is x2 else x2, **kw)
            return nngp_fcn(x1, None if x1 is x2 else x2, **kw)
        if diag:   # pairwise values K(x1[i], x2[i]); rarely needed, computed from 1×1 blocks
            return torch.stack([nngp_cnn(a[None], b[None], **kw, **self.cnn_kwargs)[0, 0] for a, b in zip(x1, x2)])
        return nngp_cnn(x1, None if x1 is x2 else x2, **kw, **self.cnn_kwargs)

    def forward(self, x1, x2, diag: bool = False, last_dim_is_batch: bool = False, **params):
        if last_dim_is_batch:
            raise ValueError("NNGPKernel does not support last_dim_is_batch=True")
        sw, sb = self.sigma_w, self.sigma_b                       # [*batch, 1, 1]
        batch = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2], sw.shape[:-2])
        same = x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))
        x1b, x2b = x1.expand(*batch, *x1.shape[-2:]), x2.expand(*batch, *x2.shape[-2:])
        swb, sbb = sw.expand(*batch, 1, 1), sb.expand(*batch, 1, 1)
        if not batch:
            out = self._one(x1, x1 if same else x2, sw.reshape(()), sb.reshape(()), diag)
        else:
            outs = []
            for idx in itertools.product(*(range(s) for s in batch)):
                a = x1b[idx]
                outs.append(self._one(a, a if same else x2b[idx], swb[idx].reshape(()), sbb[idx].reshape(()), diag))
            out = torch.stack(outs).reshape(*batch, *outs[0].shape)
        return out.to(x1.dtype)
