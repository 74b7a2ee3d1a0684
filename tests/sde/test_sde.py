"""Toy SDEs against their closed forms, within Monte-Carlo error."""

import numpy as np
import pytest
import torch
from scipy import integrate

from sgdbayes.sde import (DoubleWell, bin_probabilities, LinearSDE, autocorrelation, brownian_motion, chi2_density_check,
                          deterministic_path, empirical_current, euler_maruyama, increment_spectrum, local_entropy,
                          non_commuting_example, sample_covariance_zscores, sharp_and_wide, white_noise_band)


pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: one thread is faster and deterministic


def test_double_well_algebra():
    dw = DoubleWell(1.5)
    x = torch.randn(50, 2, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(dw.phi(x).sum(), x)
    assert torch.allclose(g, dw.grad_phi(x))
    # the current is divergence free and j·∇Φ = 0
    jac = torch.autograd.functional.jacobian(lambda z: dw.current(z).sum(0), x.detach())
    div = jac[0, :, 0] + jac[1, :, 1]
    assert div.abs().max() < 1e-12
    # ∇·(j ρ^ss) = 0 ⇔ ∇·j = j·∇Φ (β = 1)
    jac_j = torch.autograd.functional.jacobian(lambda z: dw.force(z).sum(0), x.detach())
    div_j = jac_j[0, :, 0] + jac_j[1, :, 1]
    assert torch.allclose(div_j, (dw.force(x) * dw.grad_phi(x)).sum(-1), atol=1e-10)
    # ρ^ss integrates to one; its x₁ marginal too
    edges = np.linspace(-7, 7, 57)
    assert bin_probabilities(dw.density, edges, edges, sub=10).sum() == pytest.approx(1.0, abs=1e-9)
    assert integrate.quad(dw.marginal_x1, -6, 6)[0] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.5])
def test_double_well_steady_state_is_exp_minus_phi_for_every_lambda(lam):
    dw = DoubleWell(lam)
    # start far from equilibrium: all particles near the saddle
    x0 = 0.2 * torch.randn(8000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    path = euler_maruyama(dw.drift, x0, dt=0.005, n_steps=1600, seed=11 + int(10 * lam))
    e = np.linspace(-2.4, 2.4, 13)
    check = chi2_density_check(path.final, dw.density, e, e)
    assert check.p_value > 1e-3, (check.chi2, check.dof)
    assert check.tv < check.tv_noise + 0.02


def test_density_check_detects_a_wrong_density():
    dw = DoubleWell(0.0)
    x = torch.randn(8000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # N(0, I) ≠ e^{-Φ}
    e = np.linspace(-2.4, 2.4, 13)
    assert chi2_density_check(x, dw.density, e, e).p_value < 1e-6


def test_empirical_current_matches_lambda_jss():
    dw = DoubleWell(1.5)
    x0 = torch.randn(2500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    path = euler_maruyama(dw.drift, x0, dt=0.005, n_steps=1200, seed=2, burn_in=300, record_every=1)
    e = np.linspace(-1.2, 1.2, 5)
    j = empirical_current(path.samples, path.dt, e, e)
    c = (e[:-1] + e[1:]) / 2
    grid = torch.tensor(np.stack(np.meshgrid(c, c, indexing="ij"), -1))
    truth = dw.current(grid).numpy()
    # bin averages vs centre values (curvature) and MC error: compare the circulation direction and magnitude
    assert np.corrcoef(j.ravel(), truth.ravel())[0, 1] > 0.9
    assert np.abs(j - truth).max() < 0.3 * np.abs(truth).max()
    # λ = 0: no current
    dw0 = DoubleWell(0.0)
    path0 = euler_maruyama(dw0.drift, x0, dt=0.005, n_steps=1200, seed=2, burn_in=300, record_every=1)
    j0 = empirical_current(path0.samples, path0.dt, e, e)
    assert np.abs(j0).max() < 0.3 * np.abs(truth).max()


def test_limit_cycle_at_lambda_1_5_but_not_at_0():
    x0 = torch.tensor([[0.3, 0.0], [1.0, 0.0]], dtype=torch.float64)  # inside and outside the cycle
    xs = deterministic_path(DoubleWell(1.5).drift, x0, dt=0.04, n_steps=4000)[-200:]
    r = xs.norm(dim=-1)  # [400, 2]
    # both starts end on the same closed orbit around the saddle, which they circle
    assert r.min() > 0.05
    assert torch.allclose(r.min(0).values[0], r.min(0).values[1], atol=0.02)
    assert torch.allclose(r.max(0).values[0], r.max(0).values[1], atol=0.02)
    turns = np.diff(np.unwrap(np.arctan2(xs[:, 0, 1].numpy(), xs[:, 0, 0].numpy()))).sum() / (2 * np.pi)
    assert abs(turns) > 1
    # λ = 0: plain gradient flow of Φ, ends in the minimum (1, 0)
    xs0 = deterministic_path(DoubleWell(0.0).drift, x0, dt=0.04, n_steps=1000)[-1]
    assert torch.allclose(xs0, torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64), atol=1e-6)


def test_lyapunov_covariance_and_the_potential():
    s = non_commuting_example()
    sig = s.covariance()
    np.testing.assert_allclose(s.F @ sig + sig @ s.F.T, 2 * s.D, atol=1e-12)
    q = s.Q()
    np.testing.assert_allclose(q, -q.T, atol=1e-12)
    assert np.abs(q).max() > 0.05  # D and H do not commute → Q ≠ 0
    np.testing.assert_allclose((s.D + q) @ s.U(), s.F, atol=1e-12)
    # Φ ≠ f: U is not a multiple of H = F
    u, h = s.U(), s.F
    assert np.abs(u / np.linalg.norm(u) - h / np.linalg.norm(h)).max() > 0.1
    # the force is orthogonal to ∇Φ and rotates
    x = np.random.default_rng(0).standard_normal((100, 2))
    assert np.abs((s.force(x) * (x @ u.T)).sum(1)).max() < 1e-12
    # commuting case: Q = 0 and Φ ∝ f
    c = LinearSDE(F=np.diag([1.0, 0.25]), D=np.diag([0.5, 0.5]))
    np.testing.assert_allclose(c.Q(), 0, atol=1e-12)


def test_simulated_covariance_equals_lyapunov():
    s = non_commuting_example()
    dt = 0.004
    x = s.simulate(10000, dt=dt, n_steps=3000, seed=0)
    z = sample_covariance_zscores(x, s.covariance())
    assert np.abs(z).max() < 4.0, z
    # the Euler chain's own stationary covariance is within O(dt) of the continuous one
    np.testing.assert_allclose(s.euler_covariance(dt), s.covariance(), rtol=5 * dt)


def test_trajectory_statistics():
    w = brownian_motion(2001, 40, scale=0.1, seed=0)
    f, mean, sd = increment_spectrum(w)
    assert f.min() > 0 and f.max() <= 0.5
    assert abs(mean.mean() - 1.0) < 0.05  # white increments: flat at 1 (unit variance normalisation)
    acf = autocorrelation(np.diff(w, axis=0), 50)
    band = white_noise_band(2000)
    outside = (np.abs(acf[1:]) > band).mean()
    assert outside < 0.03  # 1% expected
    # an AR(1) is strongly correlated at small lags; the FFT ACF equals the direct estimate
    rng = np.random.default_rng(1)
    a = np.zeros((500, 1))
    for t in range(1, 500):
        a[t] = 0.9 * a[t - 1] + rng.standard_normal()
    ac = autocorrelation(a, 3)[:, 0]
    ac_direct = [np.sum((a[:500 - k, 0] - a.mean()) * (a[k:, 0] - a.mean())) / np.sum((a - a.mean()) ** 2)
                 for k in range(4)]
    np.testing.assert_allclose(ac, ac_direct, atol=1e-12)
    with pytest.raises(ValueError, match="max_lag"):
        autocorrelation(a, 500)


def test_local_entropy_closed_form_and_preference_for_wide_minimum():
    x = np.linspace(-8, 8, 1601)
    s2, gamma = 0.7, 0.3
    fg = local_entropy(x ** 2 / (2 * s2), x, gamma)
    truth = x ** 2 / (2 * (s2 + gamma)) + 0.5 * np.log((s2 + gamma) / s2)
    inner = np.abs(x) < 3
    np.testing.assert_allclose(fg[inner], truth[inner], atol=1e-8)
    f = sharp_and_wide(x)
    assert abs(x[f.argmin()] - (-1.0)) < 0.02  # the loss prefers the sharp minimum
    assert abs(x[local_entropy(f, x, 0.2).argmin()] - 1.2) < 0.1  # local entropy the wide one
    with pytest.raises(ValueError, match="gamma"):
        local_entropy(f, x, 0.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="x0"):
        euler_maruyama(lambda x: x, torch.zeros(3), dt=0.1, n_steps=1)
    with pytest.raises(FloatingPointError, match="diverged"):
        euler_maruyama(lambda x: x ** 3, torch.ones(4, 1) * 10, dt=1.0, n_steps=300)
    with pytest.raises(ValueError, match="positive definite"):
        LinearSDE(F=np.eye(2), D=np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="stable"):
        LinearSDE(F=-np.eye(2), D=np.eye(2))


def test_equilibrium_control_has_the_stationary_variance_and_no_circulation():
    """Without momentum one mode is an AR(1), z' = (1 − ηλ) z + η√(λc) ξ, stationary variance η²λc / (1 − (1 − ηλ)²);
    in weight space the lagged cross-covariance of a reversible process is symmetric, C_ij(τ) = C_ji(τ)."""
    from sgdbayes.sde import reversible_control

    lam = np.array([[2.0, 0.5]] * 400)
    vec = np.tile(np.array([[0.6, -0.8], [0.8, 0.6]])[None], (400, 1, 1))
    eta, c = 0.1, 0.05
    w = reversible_control(lam, vec, lr=np.full(300, eta), momentum=0.0, noise_factor=c, steps_per_epoch=1, seed=0)
    z = np.einsum("trd,rdk->trk", w[100:], vec)  # back to the eigen-coordinates
    for k in range(2):
        lk = lam[0, k]
        theory = eta**2 * lk * c / (1 - (1 - eta * lk) ** 2)
        emp = z[..., k].var()
        assert abs(emp / theory - 1) < 0.05, (k, emp, theory)
    x, y = w[100:-5, :, 0], w[100:-5, :, 1]
    x5, y5 = w[105:, :, 0], w[105:, :, 1]
    asym = (x5 * y).mean() - (y5 * x).mean()
    scale = np.sqrt((x**2).mean() * (y**2).mean())
    assert abs(asym) < 0.02 * scale
    with pytest.raises(ValueError, match="eigenvalues"):
        reversible_control(lam[:, :1], vec, lr=np.ones(2), momentum=0.0, noise_factor=c, steps_per_epoch=1)


def test_low_frequency_power_and_band_fraction_for_white_noise():
    from sgdbayes.sde import low_frequency_power, moving_coordinates, outside_band_fraction

    w = brownian_motion(4001, 30, scale=0.3, seed=2)
    f, m, _ = increment_spectrum(w)
    assert abs(low_frequency_power(f, m, 0.05) - 1) < 0.1
    acf = autocorrelation(np.diff(w, axis=0), 40)
    assert outside_band_fraction(acf, white_noise_band(4000)) < 0.03
    frozen = np.concatenate([w, 1 + 1e-9 * np.cumsum(np.ones((4001, 2)), axis=0)], axis=1)
    assert moving_coordinates(frozen).sum() == 30
    with pytest.raises(ValueError, match="no frequency"):
        low_frequency_power(f, m, 1e-6)
