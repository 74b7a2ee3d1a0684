"""The double well with a rotational force (Chaudhari & Soatto 2018, §5.1, after Noh & Lee 2015).

``Φ(x) = (x₁² − 1)²/4 + x₂²/2``, ``J^ss(x) = e^{−(x₁² + x₂²)²/4} (−x₂, x₁)`` (divergence free),
``j(x) = λ e^{Φ(x)} J^ss(x)``, ``∇f = −j + ∇Φ`` and ``dx = −∇f dt + √2 dW`` (``D = I``, ``β = 1``).
For every ``λ`` the Fokker–Planck steady state is ``ρ^ss = e^{−Φ}/Z`` and its probability current is ``λ J^ss/Z``
(``∇·J^ss = 0`` because ``J^ss`` is a radial profile times a rotation; note ``∇·j = j·∇Φ ≠ 0`` here, so this example
does not satisfy the paper's assumption ``∇·j = 0``):
the stationary density does not see ``λ`` but the dynamics do (at ``λ = 1.5`` the noise-free flow ``ẋ = −∇f`` has a
limit cycle around the saddle at the origin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from scipy import integrate


@dataclass(frozen=True)
class DoubleWell:
    lam: float = 0.0

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """``Φ(x)`` for ``x [..., 2]``."""
        return (x[..., 0] ** 2 - 1) ** 2 / 4 + x[..., 1] ** 2 / 2

    def grad_phi(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[..., 0] * (x[..., 0] ** 2 - 1), x[..., 1]], dim=-1)

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """Stationary probability current of the normalised density, ``λ J^ss(x) / Z`` ``[..., 2]``
        (``J^ss`` is the current of the unnormalised ``e^{−Φ}``)."""
        r2 = (x ** 2).sum(-1)
        return self.lam * torch.exp(-r2 ** 2 / 4 - self.log_z).unsqueeze(-1) * torch.stack([-x[..., 1], x[..., 0]], dim=-1)

    def force(self, x: torch.Tensor) -> torch.Tensor:
        """The rotational force ``j = λ e^{Φ} J^ss`` (exponents combined, so it never overflows)."""
        r2 = (x ** 2).sum(-1)
        g = torch.exp(self.phi(x) - r2 ** 2 / 4)
        return self.lam * g.unsqueeze(-1) * torch.stack([-x[..., 1], x[..., 0]], dim=-1)

    def drift(self, x: torch.Tensor) -> torch.Tensor:
        """``−∇f(x) = j(x) − ∇Φ(x)`` (fused for speed)."""
        x1, x2 = x[..., 0], x[..., 1]
        q = x1 * x1
        r2 = q + x2 * x2
        g = self.lam * torch.exp((q - 1) ** 2 / 4 + x2 * x2 / 2 - r2 * r2 / 4)
        return torch.stack([-g * x2 - x1 * (q - 1), g * x1 - x2], dim=-1)

    @cached_property
    def log_z(self) -> float:
        """``log ∫ e^{−Φ}``: ``∫ e^{−(x²−1)²/4} dx · √(2π)`` (quadrature)."""
        z1, _ = integrate.quad(lambda s: math.exp(-((s * s - 1) ** 2) / 4), -np.inf, np.inf, epsabs=1e-13)
        return math.log(z1) + 0.5 * math.log(2 * math.pi)

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """``ρ^ss(x) = e^{−Φ(x)}/Z``."""
        return torch.exp(-self.phi(x) - self.log_z)

    def marginal_x1(self, s: np.ndarray) -> np.ndarray:
        """Stationary marginal density of ``x₁``."""
        return np.exp(-((s ** 2 - 1) ** 2) / 4 - self.log_z + 0.5 * math.log(2 * math.pi))
