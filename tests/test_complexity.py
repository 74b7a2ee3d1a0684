"""Critical sample ratio on classifiers whose answer is known exactly: linear functions (critical iff the margin is
below r‖w‖₁), the inside of a sphere (the search lands on the farthest corner), a GP posterior mean with a linear
kernel, stacked ensembles against their networks one at a time, and Boolean functions with closed-form CSRs."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch

from sgdbayes.complexity import (
    AUTHORS_CSR,
    boolean_csr,
    critical_sample_ratio,
    ensemble_critical_sample_ratio,
    gp_mean_predictor,
)
from sgdbayes.data import boolean_inputs
from sgdbayes.ensembles.models import CNN, FCN
from sgdbayes.kernels import nngp_fcn

F64 = torch.float64


def linear_points(w, b, margins, seed=0):
    """Points whose L∞-box margin |w·x + b| / ‖w‖₁ equals each entry of ``margins`` (both signs)."""
    g = torch.Generator().manual_seed(seed)
    pts = []
    for k, m in enumerate(margins):
        z = torch.randn(w.shape[0], generator=g, dtype=F64)
        z = z - (z @ w + b) / (w @ w) * w                    # on the hyperplane
        sign = 1.0 if k % 2 == 0 else -1.0
        pts.append(z + sign * m * w.abs().sum() * w / (w @ w))
    return torch.stack(pts)


@pytest.mark.parametrize("step", [0.5, 0.01])   # α ≫ r (the authors'), and α = r/3
def test_linear_classifier_exact(step):
    r = 0.03
    w = torch.tensor([0.7, -1.3, 0.2, 2.0, -0.4], dtype=F64)
    b = 0.3
    margins = torch.tensor([0.1, 0.5, 0.9, 0.99, 1.01, 1.2, 3.0, 10.0]) * r
    x = linear_points(w, b, margins.tolist())
    torch.testing.assert_close((x @ w + b).abs() / w.abs().sum(), margins.double(), rtol=1e-10, atol=0)
    res = critical_sample_ratio(lambda v: v @ w + b, x, radius=r, step=step, max_iter=20)
    want = margins < r
    assert torch.equal(res.critical, want)
    assert res.ratio == pytest.approx(float(want.double().mean()))
    # after k moves the search has reached the corner of the box of radius min(kα, r): it flips at the first k with
    # kα > margin
    k_flip = torch.floor(margins / step).long() + 1
    assert torch.equal(res.flip_step[want], k_flip[want]) and bool((res.flip_step[~want] == 0).all())


def test_search_budget_limits_what_is_found():
    """With α·K < r the search reaches only the box of radius α·K: critical iff margin < α·K."""
    r, step, k = 0.03, 0.001, 10          # reaches 0.01
    w = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    margins = [0.005, 0.0099, 0.0101, 0.02, 0.029]
    x = linear_points(w, 0.0, margins, seed=1)
    res = critical_sample_ratio(lambda v: v @ w, x, radius=r, step=step, max_iter=k)
    assert res.critical.tolist() == [True, True, False, False, False]


def test_inside_of_a_sphere():
    """f(x) = ‖x‖² − c² (label +1 outside). From inside, the gradient 2x points out, so the first move reaches the
    corner Δ = r·sign(x), the farthest point of the box: critical iff Σ (|x_i| + r)² > c²."""
    g = torch.Generator().manual_seed(2)
    d, c, r = 4, 1.0, 0.05
    u = torch.randn(200, d, generator=g, dtype=F64)
    u = u / u.norm(dim=1, keepdim=True)
    x = u * torch.linspace(0.5, 0.999, 200, dtype=F64)[:, None]
    res = critical_sample_ratio(lambda v: (v * v).sum(-1) - c**2, x, radius=r)
    want = ((x.abs() + r) ** 2).sum(1) > c**2
    assert 0 < int(want.sum()) < 200
    assert torch.equal(res.critical, want)


def test_gp_mean_with_a_linear_kernel_is_a_linear_classifier():
    """With the depth-0 NNGP kernel σ_b² + σ_w² x·x′/d the posterior mean is w·x + b, w = σ_w²/d Σ α_i x_i,
    b = σ_b² Σ α_i: the exact criterion of the linear case applies."""
    g = torch.Generator().manual_seed(3)
    xs = torch.randn(12, 3, generator=g, dtype=F64)
    ys = torch.where(xs[:, 0] + 0.5 * xs[:, 1] > 0, 1.0, -1.0).double()
    kern = functools.partial(nngp_fcn, depth=0, sigma_w=1.5, sigma_b=0.4)
    pred = gp_mean_predictor(kern, xs, ys, noise_var=0.1)
    A = kern(xs, xs) + 0.1 * torch.eye(12, dtype=F64)
    alpha = torch.linalg.solve(A, ys)
    w = 1.5**2 / 3 * (alpha @ xs)
    b = 0.4**2 * alpha.sum()
    xt = torch.randn(300, 3, generator=g, dtype=F64) * 0.3
    torch.testing.assert_close(pred(xt), xt @ w + b)
    r = 0.1
    res = critical_sample_ratio(pred, xt, radius=r)
    want = (xt @ w + b).abs() < r * w.abs().sum()
    assert 0 < int(want.sum()) < 300
    assert torch.equal(res.critical, want)
    # the authors' 0/1 targets read at 0.5: also linear, with its own w and b
    pred01 = gp_mean_predictor(kern, xs, ys, noise_var=0.1, targets="01", threshold=0.5)
    torch.testing.assert_close(pred01(xt), 0.5 * (xt @ w + b) + 0.5 * kern(xt, xs) @ torch.linalg.solve(
        A, torch.ones(12, dtype=F64)) - 0.5)


@pytest.mark.parametrize("arch", ["fcn", "cnn"])
def test_ensemble_matches_networks_one_at_a_time(arch):
    torch.manual_seed(0)
    if arch == "fcn":
        model = FCN(6, (16, 16), sigma_w=1.4, sigma_b=0.2)
        x = torch.rand(40, 6)
    else:
        model = CNN((1, 6, 6), (4,), sigma_w=1.4, sigma_b=0.2)
        x = torch.rand(30, 1, 6, 6)
    params = model.init([11, 12, 13])
    got = ensemble_critical_sample_ratio(model, params, x, radius=0.05)
    for m in range(3):
        single = [p[m] for p in params]
        one = critical_sample_ratio(lambda v, s=single: model.forward_single(s, v), x, radius=0.05)
        assert got[m].item() == pytest.approx(one.ratio)
    assert bool((got > 0).any())      # the radius is large enough for some inputs of some networks to be critical


def test_radius_extremes():
    w = torch.tensor([1.0, 1.0], dtype=F64)
    x = torch.tensor([[0.3, 0.2], [-0.4, 0.1], [2.0, 1.0]], dtype=F64)     # margins 0.25, 0.15, 1.5
    assert critical_sample_ratio(lambda v: v @ w, x, radius=1e-3).ratio == 0.0
    assert critical_sample_ratio(lambda v: v @ w, x, radius=2.0).ratio == 1.0


def test_authors_settings():
    assert AUTHORS_CSR == {"radius": 0.03, "step": 0.5, "max_iter": 20}


def test_bad_input():
    x = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ValueError, match="radius"):
        critical_sample_ratio(lambda v: v.sum(1), x, radius=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        critical_sample_ratio(lambda v: v.sum(1), x, max_iter=0)
    with pytest.raises(ValueError, match="must map inputs"):
        critical_sample_ratio(lambda v: v, x)
    with pytest.raises(FloatingPointError):
        critical_sample_ratio(lambda v: v.sum(1) / 0.0 * 0.0, x)
    with pytest.raises(ValueError, match="NaN"):
        critical_sample_ratio(lambda v: v.sum(1), torch.full((2, 2), float("nan")))


# --------------------------------------------------------------------------------------------------- Boolean
def _naive_boolean_csr(f: str, n: int) -> float:
    inputs = ["".join(map(str, t)) for t in itertools.product([0, 1], repeat=n)]
    index = {s: i for i, s in enumerate(inputs)}
    crit = 0
    for s in inputs:
        for k in range(n):
            nb = s[:k] + ("1" if s[k] == "0" else "0") + s[k + 1:]
            if f[index[nb]] != f[index[s]]:
                crit += 1
                break
    return crit / len(inputs)


def test_boolean_closed_forms():
    n = 7
    x = boolean_inputs(n).numpy().astype(int)
    assert boolean_csr("0" * 128, n) == 0.0
    assert boolean_csr((x.sum(1) % 2).astype(bool), n) == 1.0                 # parity: every neighbour differs
    assert boolean_csr(x[:, 3].astype(bool), n) == 1.0                        # a dictator bit
    assert boolean_csr(x.all(1), n) == pytest.approx((n + 1) / 2**n)          # AND: 1…1 and its n neighbours
    assert boolean_csr("0011" * 32, n) == 1.0


def test_boolean_against_naive_loop():
    rng = np.random.default_rng(0)
    fs = rng.random((5, 32)) < np.array([0.05, 0.2, 0.5, 0.8, 0.97])[:, None]
    got = boolean_csr(fs, 5)
    want = [_naive_boolean_csr("".join("1" if b else "0" for b in f), 5) for f in fs]
    np.testing.assert_allclose(got, want)
    with pytest.raises(ValueError):
        boolean_csr(fs, 6)
