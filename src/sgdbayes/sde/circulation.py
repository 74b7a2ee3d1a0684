"""Circulation of a 2-D diffusion at steady state, measured from paths and in closed form for the double well.

Two measures of a probability current that circulates around the origin:

* the **circulation rate** ``C = E[x₁ ẋ₂ − x₂ ẋ₁]`` (twice the rate at which the position vector sweeps area). A
  stationary reversible process has ``C = 0``. For the double well (:class:`~sgdbayes.sde.DoubleWell`) with
  ``J^ss = λ e^{−r⁴/4}(−x₂, x₁)/Z``, ``C = ∫ (x₁J₂ − x₂J₁) dx = (λ/Z) ∫ r² e^{−r⁴/4} dx = 2πλ/Z``.
  From a path it is the Itô sum ``Σ_k x_k × (x_{k+1} − x_k) / T``; the Stratonovich correction vanishes because the
  noise is isotropic (``d⟨x₁, x₂⟩ = 0``). Its variance is finite, unlike the mean angular velocity ``E[θ̇]``, whose
  estimator has infinite variance in the continuum because of windings close to the origin (Spitzer's law).
* the **flux through a section**, the net rate of crossings of the ray ``{x₂ = 0, x₁ > a}`` (upward minus downward):
  ``∫_a^∞ J₂(s, 0) ds = (λ/Z) ∫_a^∞ s e^{−s⁴/4} ds = λ √π erfc(a²/2) / (2Z)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize, special

from sgdbayes.sde.double_well import DoubleWell
from sgdbayes.seed import make_generator

__all__ = ["CirculationPaths", "circulation_closed_form", "critical_point_path", "critical_points",
           "first_order_shift", "flux_closed_form", "measure_circulation"]


def circulation_closed_form(well: DoubleWell) -> float:
    """``C = 2πλ/Z`` for the double well."""
    return 2 * math.pi * well.lam * math.exp(-well.log_z)


def flux_closed_form(well: DoubleWell, a: float) -> float:
    """Net stationary crossing rate of the ray ``{x₂ = 0, x₁ > a}``: ``λ √π erfc(a²/2) / (2Z)`` (``a >= 0``)."""
    if a < 0:
        raise ValueError(f"the section starts at a >= 0, got a = {a}")
    return well.lam * math.sqrt(math.pi) * float(special.erfc(a * a / 2)) / 2 * math.exp(-well.log_z)


@dataclass(frozen=True)
class CirculationPaths:
    """Per-particle time averages over the measuring window of length ``time``: ``circulation [M]`` (the Itô sum of
    ``x × dx`` divided by the time) and ``flux [M]`` (net crossings of the section divided by the time); ``final
    [M, 2]``: the positions at the end."""

    final: np.ndarray
    circulation: np.ndarray
    flux: np.ndarray
    time: float
    section: float
    dt: float


def measure_circulation(drift: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, *, dt: float,
                        burn_in: int, n_steps: int, section: float = 0.5, sigma: float = 2**0.5,
                        seed: int = 0) -> CirculationPaths:
    """Euler–Maruyama for ``dx = drift(x) dt + σ dW`` from ``x0 [M, 2]``; after ``burn_in`` steps, accumulate each
    particle's circulation and net crossings of the section ``{x₂ = 0, x₁ > section}`` over ``n_steps`` steps.

    A step crosses the section when ``x₂`` changes sign and the straight line between the two points meets
    ``x₂ = 0`` at ``x₁ > section``; it counts +1 upward, −1 downward.
    """
    if x0.dim() != 2 or x0.shape[1] != 2:
        raise ValueError(f"x0 must be [M, 2], got shape {tuple(x0.shape)}")
    if not dt > 0 or burn_in < 0 or n_steps < 1:
        raise ValueError(f"need dt > 0, burn_in >= 0, n_steps >= 1; got {dt}, {burn_in}, {n_steps}")
    gen = make_generator(seed, device=x0.device)
    sq = math.sqrt(dt) * sigma
    x = x0.clone()
    m = x.shape[0]
    circ = torch.zeros(m, dtype=x.dtype, device=x.device)
    flux = torch.zeros(m, dtype=x.dtype, device=x.device)
    for k in range(burn_in + n_steps):
        xi = torch.randn(m, 2, generator=gen, device=x.device, dtype=x.dtype)
        new = x + drift(x) * dt + sq * xi
        if k >= burn_in:
            dx = new - x
            circ += x[:, 0] * dx[:, 1] - x[:, 1] * dx[:, 0]
            y0, y1 = x[:, 1], new[:, 1]
            cross = (y0 < 0) != (y1 < 0)
            t = y0 / torch.where(cross, y0 - y1, torch.ones_like(y0))
            x_at = x[:, 0] + t * dx[:, 0]
            sign = torch.where(y1 >= 0, 1.0, -1.0).to(x.dtype)
            flux += torch.where(cross & (x_at > section), sign, torch.zeros_like(sign))
        x = new
        if k % 500 == 0 and not torch.isfinite(x).all():
            raise FloatingPointError(f"particles diverged (NaN/inf) by step {k}; dt = {dt} is too large")
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"particles diverged (NaN/inf); dt = {dt} is too large")
    time = n_steps * dt
    return CirculationPaths(final=x.cpu().numpy(), circulation=(circ / time).cpu().numpy(),
                            flux=(flux / time).cpu().numpy(), time=time, section=float(section), dt=float(dt))


def critical_points(well: DoubleWell, start=(1.0, 0.0)) -> np.ndarray:
    """The zero of the noise-free drift ``−∇f = j − ∇Φ`` near ``start`` (``scipy.optimize.root``, hybrid method) as
    ``[2]``, or ``NaN``s when the root finder converges nowhere within 1 of the start."""
    def g(z):
        return well.drift(torch.tensor(z, dtype=torch.float64)).numpy()

    sol = optimize.root(g, np.asarray(start, dtype=np.float64), method="hybr", options={"xtol": 1e-13})
    ok = np.abs(g(sol.x)).max() < 1e-10 and np.linalg.norm(sol.x - np.asarray(start)) < 1.0
    return sol.x if ok else np.full(2, np.nan)


def critical_point_path(lams) -> np.ndarray:
    """The stable critical point that starts at the minimum ``(1, 0)`` of Φ at ``λ = 0``, followed by continuation
    along increasing ``lams`` (each root started from the previous one) → ``[len(lams), 2]``; ``NaN`` from the first
    ``λ`` at which it has merged into the zero at the origin (or the root finder lost it)."""
    lams = np.asarray(lams, dtype=np.float64)
    if lams.ndim != 1 or lams.size == 0 or (np.diff(lams) <= 0).any() or lams[0] < 0:
        raise ValueError("lams must be a non-empty increasing sequence of values >= 0")
    out = np.full((lams.size, 2), np.nan)
    prev = np.array([1.0, 0.0])
    for i, lam in enumerate(lams):
        z = critical_points(DoubleWell(float(lam)), start=prev)
        if not np.isfinite(z).all() or np.linalg.norm(z - prev) > 0.2 or np.linalg.norm(z) < 1e-6:
            break
        out[i] = prev = z
    return out


def first_order_shift(lam: float) -> np.ndarray:
    """First-order position of the critical point near ``(1, 0)``: ``∇²Φ δ = λ ĵ(1, 0)`` with ``∇²Φ = diag(2, 1)`` and
    ``ĵ(1, 0) = e^{−1/4} (0, 1)``, so ``x* ≈ (1, λ e^{−1/4})``."""
    return np.array([1.0, lam * math.exp(-0.25)])
