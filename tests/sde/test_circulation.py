"""Circulation, flux and critical points of the double well; the 1-D potential shift — against quadrature, exact
identities and Monte Carlo within its error."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from sgdbayes.noise.statistics import mean_ci
from sgdbayes.sde import (DoubleWell, circulation_closed_form, critical_point_path, critical_points,
                          first_order_shift, flux_closed_form, measure_circulation, quadratic_1d_problem, sde_samples,
                          smoothed_density_mode, smoothed_mode, stationary_density_1d)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_closed_forms_equal_quadrature_of_the_current():
    w = DoubleWell(1.3)

    def current(x1, x2):
        return w.current(torch.tensor([[x1, x2]], dtype=torch.float64))[0].numpy()

    circ, _ = integrate.dblquad(lambda x2, x1: x1 * current(x1, x2)[1] - x2 * current(x1, x2)[0], -6, 6, -6, 6,
                                epsabs=1e-10)
    assert circ == pytest.approx(circulation_closed_form(w), rel=1e-6)
    for a in (0.0, 0.5, 1.2):
        flux, _ = integrate.quad(lambda s: current(s, 0.0)[1], a, 8, epsabs=1e-12)
        assert flux == pytest.approx(flux_closed_form(w, a), rel=1e-8)
    assert circulation_closed_form(DoubleWell(0.0)) == 0.0


def test_measured_circulation_and_flux_match_closed_forms_and_vanish_without_rotation():
    x0 = 0.5 * torch.randn(4000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for lam in (0.0, 1.5):
        w = DoubleWell(lam)
        r = measure_circulation(w.drift, x0, dt=0.005, burn_in=600, n_steps=1000, section=0.5, seed=1)
        c, f = mean_ci(r.circulation, level=0.999), mean_ci(r.flux, level=0.999)
        assert c.covers(circulation_closed_form(w)), (lam, c, circulation_closed_form(w))
        assert f.covers(flux_closed_form(w, 0.5)), (lam, f, flux_closed_form(w, 0.5))
    assert c.lo > 0.5  # λ = 1.5: clearly non-zero


def test_critical_point_moves_at_first_order_and_merges_into_the_origin_at_lambda_c():
    small = critical_points(DoubleWell(0.02), start=(1.0, 0.0))
    assert np.allclose(small, first_order_shift(0.02), atol=5e-4)  # O(λ²) remainder
    grid = np.round(np.arange(0.0, 1.0, 0.002), 6)
    path = critical_point_path(grid)
    last = grid[np.isfinite(path[:, 0])][-1]
    lam_c = math.exp(-0.25)  # the origin's Jacobian [[1, −λe^{1/4}], [λe^{1/4}, −1]] has det λ²e^{1/2} − 1
    assert lam_c - 0.01 < last < lam_c
    # independent check of the determinant's sign change, by finite differences of the drift at the origin
    for lam, sign in ((lam_c - 0.02, -1), (lam_c + 0.02, 1)):
        w, h = DoubleWell(lam), 1e-6
        cols = [(w.drift(torch.tensor(e, dtype=torch.float64) * h) - w.drift(-torch.tensor(e, dtype=torch.float64) * h))
                / (2 * h) for e in ([1.0, 0.0], [0.0, 1.0])]
        jac = torch.stack(cols, 1).numpy()
        assert np.sign(np.linalg.det(jac)) == sign
    with pytest.raises(ValueError, match="increasing"):
        critical_point_path([0.5, 0.1])


def test_one_dimensional_potential_and_its_minimum():
    p = quadratic_1d_problem(seed=2)
    xs = np.linspace(-1, 2, 7)
    g = p.a[None, :] * (xs[:, None] - p.c[None, :])  # per-sample gradients, naive
    np.testing.assert_allclose(p.noise(xs), g.var(axis=1), rtol=1e-12)
    np.testing.assert_allclose(p.grad(xs), g.mean(axis=1), rtol=1e-12, atol=1e-14)
    for bi in (0.05, 0.3):
        xm = p.potential_minimum(bi)
        aa, bb, _ = p.noise_coefficients
        assert p.grad(xm) + bi * (2 * aa * xm + bb) == pytest.approx(0.0, abs=1e-12)
        grid = np.linspace(xm - 3, xm + 3, 60001)
        rho = stationary_density_1d(p, bi, grid)
        assert abs(grid[rho.argmax()] - xm) < 2e-4  # the density's mode is x_Φ
        # zero probability flux: f'ρ + β⁻¹ (Dρ)' = 0
        flux = p.grad(grid) * rho + bi * np.gradient(p.noise(grid) * rho, grid)
        assert np.abs(flux[100:-100]).max() < 1e-6 * rho.max()
    def remainder(bi):
        return p.potential_minimum(bi) - p.x_f - p.first_order_shift(bi)

    assert remainder(0.01) / remainder(0.005) == pytest.approx(4.0, rel=0.02)  # the first-order term is exact: O(β⁻²)


def test_sde_samples_have_the_exact_mean_and_mode():
    """E[x] = x_f exactly (E[f'(x)] = 0 at stationarity, f' linear), while the mode moves to x_Φ."""
    p = quadratic_1d_problem(seed=0)
    bi = 0.3
    xs = sde_samples(p, bi, particles=20000, dt=0.005, burn_in=1000, steps=400, record_every=20, seed=3)
    per_particle = xs.mean(0)
    assert mean_ci(per_particle, level=0.999).covers(p.x_f)
    sd = xs.std()
    h = 0.25 * sd
    grid = np.linspace(p.x_f - 12 * sd, p.x_f + 12 * sd, 6001)
    theory = smoothed_density_mode(grid, stationary_density_1d(p, bi, grid), h)
    modes = [smoothed_mode(xs[:, g], h, start=theory) for g in np.array_split(np.arange(20000), 10)]
    assert mean_ci(modes, level=0.999).covers(theory)
    assert theory - p.x_f > 0.1  # the mode has moved well away from the loss minimum
