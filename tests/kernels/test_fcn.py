"""nngp_fcn against independent truths: 1-D quadrature of the layer expectation, the arc-cosine formula in its
original (arccos) form, the Monte-Carlo kernel of wide random networks, and naive recomputation."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from sgdbayes.kernels import empirical_nngp, mc_nngp_fcn, module_nngp, nngp_fcn, nngp_fcn_diag

F64 = torch.float64


def _points(n=7, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=F64)
    x[1] = 2.5 * x[0]                  # collinear with x[0]: θ = 0 off the diagonal
    x[2] = -0.7 * x[0]                 # anti-collinear: θ = π
    x[3] = x[0] + 1e-7 * x[-1]         # almost equal: the ill-conditioned corner of the arc-cosine map
    return x


# ------------------------------------------------------------------------------------ independent truths
def _expect_quad(a, b, k, phi):
    """E[φ(u)φ(v)] for (u, v) ~ N(0, [[a, k], [k, b]]) by 1-D quadrature over u of φ(u) E[φ(v) | u], with the
    inner expectation in closed form (relu: μΦ(μ/σ) + σ ϕ(μ/σ); erf: erf(μ/√(1 + 2σ²)))."""
    su = math.sqrt(a)
    var_c = max(b - k * k / a, 0.0)
    sc = math.sqrt(var_c)

    def inner(u):
        mu = k / a * u
        if phi == "relu":
            if sc == 0.0:
                return max(mu, 0.0)
            z = mu / sc
            return mu * 0.5 * math.erfc(-z / math.sqrt(2)) + sc * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        return math.erf(mu / math.sqrt(1.0 + 2.0 * var_c))

    act = (lambda u: max(u, 0.0)) if phi == "relu" else math.erf
    lo = 0.0 if phi == "relu" else -12 * su
    norm = 1.0 / (su * math.sqrt(2 * math.pi))
    val, _ = integrate.quad(lambda u: act(u) * inner(u) * norm * math.exp(-0.5 * (u / su) ** 2), lo, 12 * su,
                            epsabs=1e-13, epsrel=1e-12, limit=200)
    return val


def _kernel_quad(x1, x2, depth, sw, sb, phi):
    sym = x1 is x2
    x1, x2 = x1.numpy(), x2.numpy()
    d = x1.shape[1]
    out = np.empty((len(x1), len(x2)))
    for i, u in enumerate(x1):
        for j, v in enumerate(x2):
            if sym and j < i:
                out[i, j] = out[j, i]
                continue
            a, b, k = (sb**2 + sw**2 * np.dot(p, q) / d for p, q in ((u, u), (v, v), (u, v)))
            for _ in range(depth):
                a, b, k = (sb**2 + sw**2 * _expect_quad(a, a, a, phi), sb**2 + sw**2 * _expect_quad(b, b, b, phi),
                           sb**2 + sw**2 * _expect_quad(a, b, k, phi))
            out[i, j] = k
    return out


def _kernel_arccos(x1, x2, depth, sw, sb):
    """Cho & Saul arc-cosine recursion with θ = arccos(ρ), numpy, full matrices (naive)."""
    x1, x2 = x1.numpy(), x2.numpy()
    d = x1.shape[1]
    k = sb**2 + sw**2 * x1 @ x2.T / d
    a = sb**2 + sw**2 * (x1**2).sum(1) / d
    b = sb**2 + sw**2 * (x2**2).sum(1) / d
    for _ in range(depth):
        c = np.sqrt(np.outer(a, b))
        theta = np.arccos(np.clip(k / c, -1, 1))
        k = sb**2 + sw**2 / (2 * np.pi) * c * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
        a, b = sb**2 + sw**2 * a / 2, sb**2 + sw**2 * b / 2
    return k


@pytest.mark.parametrize("phi", ["relu", "erf"])
@pytest.mark.parametrize("depth", [1, 2])
def test_matches_quadrature(phi, depth):
    x = _points(5, 4)
    sw, sb = 1.3, 0.4
    got = nngp_fcn(x, depth=depth, sigma_w=sw, sigma_b=sb, nonlinearity=phi).numpy()
    want = _kernel_quad(x, x, depth, sw, sb, phi)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_matches_arccos_form_deep():
    x, y = _points(9, 6, seed=1), _points(4, 6, seed=2)
    for depth in (0, 1, 3, 6):
        got = nngp_fcn(x, y, depth=depth, sigma_w=1.41, sigma_b=0.1).numpy()
        want = _kernel_arccos(x, y, depth, 1.41, 0.1)
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12)  # arccos loses ~√ε near ρ = ±1


def test_depth0_is_linear_kernel():
    x, y = _points(6, 3), _points(5, 3, seed=3)
    want = 0.3**2 + 2.0**2 * (x @ y.T) / 3
    for phi in ("relu", "erf"):
        torch.testing.assert_close(nngp_fcn(x, y, depth=0, sigma_w=2.0, sigma_b=0.3, nonlinearity=phi), want,
                                   rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("phi,depth", [("relu", 2), ("erf", 2)])
def test_matches_wide_network_monte_carlo(phi, depth):
    x = _points(8, 5, seed=4)
    x[3] = x[5] * 0.5 + x[6]  # keep the near-duplicate out: finite width is rough there
    sw, sb = 1.5, 0.4
    mc = mc_nngp_fcn(x, depth=depth, width=256, sigma_w=sw, sigma_b=sb, nonlinearity=phi, n_samples=64, seed=0)
    k = nngp_fcn(x, depth=depth, sigma_w=sw, sigma_b=sb, nonlinearity=phi)
    # finite-width bias is O(1/width) ≈ 0.4 % of the kernel, well under the Monte-Carlo error of ~2-4 %
    z = (mc.mean - k) / mc.stderr
    assert z.abs().max() < 4.5, f"max |z| = {z.abs().max():.2f}"
    # the test has power: a kernel with σ_b off by 0.15 is rejected by the same samples
    k_wrong = nngp_fcn(x, depth=depth, sigma_w=sw, sigma_b=sb + 0.15, nonlinearity=phi)
    assert ((mc.mean - k_wrong) / mc.stderr).abs().max() > 6


@pytest.mark.parametrize("phi", ["relu", "erf"])
def test_symmetric_psd_and_equal_to_explicit_x2(phi):
    x = torch.randn(150, 20, generator=torch.Generator().manual_seed(5), dtype=F64)
    x[7] = x[3]  # an exact duplicate: K stays PSD (singular), no NaN
    k = nngp_fcn(x, depth=3, sigma_w=1.2, sigma_b=0.2, nonlinearity=phi, max_tile=32)
    assert torch.equal(k, k.T)
    ev = torch.linalg.eigvalsh(k)
    assert ev.min() > -1e-12 * ev.max()
    k2 = nngp_fcn(x, x.clone(), depth=3, sigma_w=1.2, sigma_b=0.2, nonlinearity=phi, max_tile=32)
    torch.testing.assert_close(k, k2, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(torch.diagonal(k), nngp_fcn_diag(x, depth=3, sigma_w=1.2, sigma_b=0.2,
                                                                 nonlinearity=phi), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("phi", ["relu", "erf"])
def test_tiling_invariance(phi):
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(53, 11, generator=g, dtype=F64), torch.randn(29, 11, generator=g, dtype=F64)
    kw = dict(depth=2, sigma_w=1.3, sigma_b=0.5, nonlinearity=phi)
    ref_sym, ref = nngp_fcn(x, **kw, max_tile=10_000), nngp_fcn(x, y, **kw, max_tile=10_000)
    for tile in (3, 16, 53):
        torch.testing.assert_close(nngp_fcn(x, **kw, max_tile=tile), ref_sym, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(nngp_fcn(x, y, **kw, max_tile=tile), ref, rtol=1e-13, atol=1e-13)


def test_parallel_tiles_match_serial_and_restore_threads():
    g = torch.Generator().manual_seed(11)
    x, y = torch.randn(70, 9, generator=g, dtype=F64), torch.randn(45, 9, generator=g, dtype=F64)
    threads = torch.get_num_threads()
    for args in ((x,), (x, y)):
        ref = nngp_fcn(*args, depth=3, sigma_w=1.2, sigma_b=0.3, max_tile=16, workers=1)
        for workers in (2, 3):
            got = nngp_fcn(*args, depth=3, sigma_w=1.2, sigma_b=0.3, max_tile=16, workers=workers)
            torch.testing.assert_close(got, ref, rtol=1e-13, atol=1e-13)
            assert torch.get_num_threads() == threads


def test_autograd_path_values_and_gradients():
    x = _points(6, 4, seed=7)
    sw = torch.tensor(1.3, dtype=F64, requires_grad=True)
    sb = torch.tensor(0.4, dtype=F64, requires_grad=True)
    for phi in ("relu", "erf"):
        k = nngp_fcn(x, depth=3, sigma_w=sw, sigma_b=sb, nonlinearity=phi)
        assert k.requires_grad
        torch.testing.assert_close(k.detach(), nngp_fcn(x, depth=3, sigma_w=1.3, sigma_b=0.4, nonlinearity=phi),
                                   rtol=1e-13, atol=1e-13)
        # gradients (the diagonal, where √(ab − k²) = 0, included) against central finite differences
        assert torch.autograd.gradcheck(
            lambda w, b: nngp_fcn(x, depth=3, sigma_w=w, sigma_b=b, nonlinearity=phi), (sw, sb), eps=1e-6,
            atol=1e-7, rtol=1e-6)
    x_req = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: nngp_fcn(z, x[:3], depth=2, sigma_w=1.3, sigma_b=0.4), (x_req,))


def test_pairwise_diag():
    x, y = _points(6, 4), _points(6, 4, seed=8)
    for phi in ("relu", "erf"):
        full = nngp_fcn(x, y, depth=2, sigma_w=1.1, sigma_b=0.3, nonlinearity=phi)
        pair = nngp_fcn_diag(x, y, depth=2, sigma_w=1.1, sigma_b=0.3, nonlinearity=phi)
        torch.testing.assert_close(pair, torch.diagonal(full), rtol=1e-13, atol=1e-13)


def test_dtype_device_and_empty():
    x = torch.randint(-3, 4, (10, 6))
    k = nngp_fcn(x, depth=1, sigma_w=1.0, sigma_b=0.1)
    assert k.dtype == F64 and k.device == x.device and k.shape == (10, 10)
    torch.testing.assert_close(k, nngp_fcn(x.to(torch.float32), depth=1, sigma_w=1.0, sigma_b=0.1))
    assert nngp_fcn(x, x[:0], depth=2, sigma_w=1.0, sigma_b=0.1).shape == (10, 0)
    # zero inputs with σ_b = 0 have zero variance: the kernel is 0, not NaN
    z = torch.zeros(3, 4, dtype=F64)
    assert torch.equal(nngp_fcn(z, depth=2, sigma_w=1.0, sigma_b=0.0), torch.zeros(3, 3, dtype=F64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = _points(40, 8)
    k_gpu = nngp_fcn(x.cuda(), depth=2, sigma_w=1.2, sigma_b=0.2)
    assert k_gpu.device.type == "cuda"
    torch.testing.assert_close(k_gpu.cpu(), nngp_fcn(x, depth=2, sigma_w=1.2, sigma_b=0.2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs,x2,match", [
    (dict(depth=-1), None, "depth.*-1"),
    (dict(depth=1.5), None, "depth.*1.5"),
    (dict(sigma_w=-0.5), None, "sigma_w.*-0.5"),
    (dict(sigma_b=-1.0), None, "sigma_b.*-1.0"),
    (dict(sigma_b=float("nan")), None, "sigma_b.*nan"),
    (dict(nonlinearity="tanh"), None, "tanh.*relu, erf"),
    (dict(max_tile=0), None, "max_tile.*0"),
    (dict(workers=0), None, "workers.*0"),
    ({}, torch.zeros(3, 4), r"shapes \(5, 3\) and \(3, 4\)"),
])
def test_bad_input(kwargs, x2, match):
    base = dict(depth=2, sigma_w=1.0, sigma_b=0.1)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        nngp_fcn(torch.zeros(5, 3), x2, **base)


def test_bad_tensors():
    x = torch.zeros(4, 3)
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"x1 contains NaN.*\[2, 1\]"):
        nngp_fcn(x, depth=1, sigma_w=1.0, sigma_b=0.1)
    with pytest.raises(ValueError, match="x2 contains NaN"):
        nngp_fcn(torch.zeros(2, 3), x, depth=1, sigma_w=1.0, sigma_b=0.1)
    with pytest.raises(ValueError, match=r"2 dimensions.*\(4,\)"):
        nngp_fcn(torch.zeros(4), depth=1, sigma_w=1.0, sigma_b=0.1)
    with pytest.raises(FloatingPointError, match="float64-safe range"):
        nngp_fcn(torch.ones(2, 3), depth=400, sigma_w=100.0, sigma_b=0.1)


def test_empirical_mean_and_stderr_are_exact_sample_statistics():
    """The batch-wise (Chan) merge gives the plain sample mean and s/√M, for batches that do not divide M."""
    draws = torch.randn(11, 3, 3, generator=torch.Generator().manual_seed(9), dtype=F64)
    it = iter(draws)

    def sample(x, gen, m):
        return torch.stack([next(it) for _ in range(m)])

    mc = empirical_nngp(sample, torch.zeros(3, 1), n_samples=11, batch=4)
    torch.testing.assert_close(mc.mean, draws.mean(0), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(mc.stderr, draws.std(0) / math.sqrt(11), rtol=1e-13, atol=1e-14)
    assert mc.n_samples == 11


def test_module_nngp_matches_fcn_kernel():
    """Any nn.Module with the prior's initialisation: a 1-hidden-layer ReLU net with 32 readout units."""
    x = _points(6, 5, seed=10)
    x[3] = x[4] - x[5]
    sw, sb, width = 1.4, 0.3, 256

    def make_net(gen):
        net = torch.nn.Sequential(torch.nn.Linear(5, width), torch.nn.ReLU(), torch.nn.Linear(width, 32)).double()
        for layer in (net[0], net[2]):
            torch.nn.init.normal_(layer.weight, 0.0, sw / math.sqrt(layer.in_features), generator=gen)
            torch.nn.init.normal_(layer.bias, 0.0, sb, generator=gen)
        return net

    mc = module_nngp(make_net, x, n_samples=48, seed=1)
    k = nngp_fcn(x, depth=1, sigma_w=sw, sigma_b=sb)
    z = (mc.mean - k) / mc.stderr
    assert z.abs().max() < 4.5, f"max |z| = {z.abs().max():.2f}"


# ------------------------------------------------------------------------------------------- tiling geometry
@pytest.mark.parametrize("n,tile", [(1, 256), (100, 256), (1000, 256), (1000, 512), (777, 100), (53, 3), (300, 33)])
def test_symmetric_tiles_cover_the_triangle_once_with_little_waste(n, tile):
    from sgdbayes.kernels.fcn import _tiles

    tiles = _tiles(n, n, tile, True)
    owner = torch.zeros(n, n, dtype=torch.int64)     # how many off-diagonal tiles write each (i, j), mirrors included
    computed = 0
    for i0, i1, j0, j1 in tiles:
        assert 0 <= i0 < i1 <= n and 0 <= j0 < j1 <= n and i1 - i0 <= tile and j1 - j0 <= tile
        computed += (i1 - i0) * (j1 - j0)
        if i0 == j0:
            assert i1 == j1                          # diagonal tiles are square
            owner[i0:i1, i0:i1] += 1
        else:
            assert i1 <= j0                          # off-diagonal tiles lie strictly above the diagonal
            owner[i0:i1, j0:j1] += 1
            owner[j0:j1, i0:i1] += 1
    assert torch.equal(owner, torch.ones(n, n, dtype=torch.int64))
    sizes = [(i1 - i0) * (j1 - j0) for i0, i1, j0, j1 in tiles]
    assert sizes == sorted(sizes, reverse=True)      # largest first, for the dynamic queue
    assert computed <= n * (n + 1) // 2 + n * max(tile // 4, 32) // 2 + n


def test_default_tiles_match_naive_kernel_exactly_symmetric():
    """n = 700 with the default tile (256): diagonal tiles are split (down to 64), several workers; against the
    plain full-matrix recursion in the same atan2 form."""
    x = torch.rand(700, 30, generator=torch.Generator().manual_seed(12), dtype=F64)
    x[5] = x[600]                                    # a duplicate across tiles
    sw, sb = 1.3, 0.2
    k = nngp_fcn(x, depth=2, sigma_w=sw, sigma_b=sb, workers=2)
    assert torch.equal(k, k.T)
    ref = sb**2 + sw**2 * (x @ x.T) / x.shape[1]
    diag = torch.diagonal(ref).clone()
    for _ in range(2):
        s = torch.sqrt(torch.clamp(diag[:, None] * diag[None, :] - ref**2, min=0.0))
        ref = sb**2 + sw**2 / (2 * math.pi) * (s + (math.pi - torch.atan2(s, ref)) * ref)
        diag = sb**2 + sw**2 * diag / 2
    torch.testing.assert_close(k, ref, rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(nngp_fcn(x, depth=2, sigma_w=sw, sigma_b=sb, workers=1), k, rtol=1e-14, atol=0)


def test_finite_check_survives_an_overflowing_sum():
    """The NaN/inf screen is one sum; finite inputs whose sum overflows must not be reported as NaN/inf, and an
    inf − inf pair (sum NaN) must be."""
    big = torch.full((2, 3), 1e308, dtype=F64)
    with pytest.raises(FloatingPointError, match="float64-safe range"):   # finite, but the variances overflow
        nngp_fcn(big, depth=1, sigma_w=1.0, sigma_b=0.1)
    x = torch.zeros(3, 2, dtype=F64)
    x[1, 0], x[2, 1] = float("inf"), -float("inf")
    with pytest.raises(ValueError, match=r"x1 contains NaN or inf \(first at index \[1, 0\]: inf\)"):
        nngp_fcn(x, depth=1, sigma_w=1.0, sigma_b=0.1)
