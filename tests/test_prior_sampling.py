"""Direct prior sampling against independent truths: Gaussian orthant probabilities (closed form for the linear
model, NNGP + scipy for a wide one-hidden-layer net), a naive per-network re-evaluation, and EP's log P_B."""

from __future__ import annotations

import itertools
import math
import pickle
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from sgdbayes.functions import FunctionCounts
from sgdbayes.prior_sampling import block_seed, n_parameters, sample_prior, sample_prior_shard
from sgdbayes.seed import spawn_seeds

CUBE2 = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


def relu_nngp_1layer(x: np.ndarray, sw: float, sb: float) -> np.ndarray:
    """Closed-form NNGP kernel of d → ReLU(h → ∞) → 1 (arc-cosine kernel of order 1), written out here."""
    k0 = sb**2 + sw**2 * x @ x.T / x.shape[1]
    s = np.sqrt(np.outer(np.diag(k0), np.diag(k0)))
    cos = np.clip(k0 / s, -1.0, 1.0)
    theta = np.arccos(cos)
    return sb**2 + sw**2 / (2 * np.pi) * s * (np.sin(theta) + (np.pi - theta) * cos)


def orthant(cov: np.ndarray, signs, seed: int = 0, **genz) -> float:
    """P(sign(f_i) = signs_i for all i), f ~ N(0, cov) (Genz; ``genz``: abseps, releps, maxpts)."""
    d = np.diag(np.asarray(signs, float))
    genz = {"abseps": 1e-7, "releps": 1e-7, **genz}
    mvn = multivariate_normal(np.zeros(len(cov)), d @ cov @ d, seed=seed, **genz)
    return float(mvn.cdf(np.zeros(len(cov))))


def bitstring(signs) -> str:
    return "".join("1" if s > 0 else "0" for s in signs)


def test_linear_model_matches_closed_form_orthant():
    """depth 0: logit = σ_w/√d w·x + σ_b b is exactly Gaussian with K⁰; 3 inputs → P(signs) =
    1/8 + Σ_{i<j} asin(s_i s_j ρ_ij)/(4π). Tolerance: 5 binomial sd per function."""
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    sw, sb, n = 1.3, 0.7, 100_000
    res = sample_prior(None, None, x, n_samples=n, widths=(), sigma_w=sw, sigma_b=sb, seed=3, progress=False)
    assert res.n_sampled == res.n_consistent == res.counts.total == n
    k = sb**2 + sw**2 * (x @ x.T).numpy() / 2
    rho = k / np.sqrt(np.outer(np.diag(k), np.diag(k)))
    for signs in itertools.product((-1, 1), repeat=3):
        p = 1 / 8 + sum(math.asin(signs[i] * signs[j] * rho[i, j]) for i, j in ((0, 1), (0, 2), (1, 2))) / (4 * math.pi)
        got = res.counts.lookup(np.array(signs) > 0)[0] / n
        assert abs(got - p) <= 5 * math.sqrt(p * (1 - p) / n), (signs, got, p)


@pytest.mark.slow
def test_wide_relu_net_matches_nngp_orthant():
    """d=2 → ReLU(512) → 1 on {0,1}²: S = {(1,1)} labelled 1, E = the other three inputs. P(S) = 1/2 exactly by
    symmetry; P_B(f|S) = P(S, f)/P(S) from 4-D orthant probabilities of the closed-form NNGP kernel. Tolerance:
    5 binomial sd plus 0.01 for the O(1/width) finite-width difference between the net and its GP limit."""
    sw, sb, n = 1.4, 0.6, 40_000
    res = sample_prior(CUBE2[3:], [1], CUBE2[:3], n_samples=n, widths=(512,), sigma_w=sw, sigma_b=sb, seed=11,
                       progress=False)
    assert abs(res.p_train - 0.5) <= 5 * math.sqrt(0.25 / n)
    K = relu_nngp_1layer(CUBE2[[3, 0, 1, 2]].numpy().astype(float), sw, sb)
    m = res.n_consistent
    total = 0.0
    for signs in itertools.product((-1, 1), repeat=3):
        p = orthant(K, (1, *signs)) / 0.5
        total += p
        got = res.counts.lookup(np.array(signs) > 0)[0] / m
        assert abs(got - p) <= 5 * math.sqrt(p * (1 - p) / m) + 0.01, (signs, got, p)
    assert total == pytest.approx(1.0, abs=1e-4)


def _naive_counts(x_train, y_train, x_test, *, n_samples, widths, sw, sb, seed, block):
    """Re-create each network from the documented stream layout and evaluate it alone with plain matmuls."""
    x_train = x_train.double()
    x_test = x_test.double()
    d = x_test.shape[1]
    sizes = [d, *widths, 1]
    n_params = n_parameters(d, widths)
    out = Counter()
    n_blocks = -(-n_samples // block)
    for j in range(n_blocks):
        gen = torch.Generator().manual_seed(block_seed(seed, j))
        raw = torch.empty(block, n_params, dtype=torch.float64).normal_(generator=gen)
        for i in range(min(block, n_samples - j * block)):
            p, off, layers = raw[i], 0, []
            for a, b in zip(sizes[:-1], sizes[1:]):
                w = p[off:off + a * b].reshape(a, b) * sw / math.sqrt(a)
                off += a * b
                layers.append((w, p[off:off + b] * sb))
                off += b

            def net(x):
                for k, (w, b) in enumerate(layers):
                    x = x @ w + b
                    if k < len(layers) - 1:
                        x = torch.relu(x)
                return x[:, 0]
            if bool(((net(x_train) > 0) == torch.as_tensor(y_train, dtype=torch.bool)).all()):
                out[bitstring(net(x_test).sign())] += 1  # sign 0 → '0', as logit > 0 ↔ 1
    return out


def test_matches_naive_per_network_evaluation():
    x = torch.tensor(list(itertools.product((0.0, 1.0), repeat=3)))
    x_train, y_train, x_test = x[[1, 6]], [1, 0], x[[0, 2, 3, 4, 5, 7]]
    kw = dict(n_samples=3 * 64 + 5, widths=(6, 5), sw=1.2, sb=0.8, seed=5, block=64)
    ref = _naive_counts(x_train, y_train, x_test, **kw)
    res = sample_prior(x_train, y_train, x_test, n_samples=kw["n_samples"], widths=kw["widths"],
                       sigma_w=kw["sw"], sigma_b=kw["sb"], seed=kw["seed"], block=kw["block"], chunk=128,
                       dtype=torch.float64, progress=False)
    assert res.counts.to_dict() == dict(ref)
    assert res.n_consistent == sum(ref.values()) > 0


@pytest.fixture(scope="module")
def small_problem():
    x = torch.tensor(list(itertools.product((0.0, 1.0), repeat=4)))
    return dict(x_train=x[[0, 5, 9]], y_train=[0, 1, 1], x_test=x[[1, 2, 3, 4, 6, 7, 8, 10, 11, 12, 13, 14, 15]],
                widths=(10, 10), progress=False, block=256)


def test_seeds_and_chunk_size_invariance(small_problem):
    n = 5 * 256 + 17
    a = sample_prior(n_samples=n, seed=1, chunk=256, **small_problem)
    b = sample_prior(n_samples=n, seed=1, chunk=3 * 256, **small_problem)
    c = sample_prior(n_samples=n, seed=1, chunk=100 * 256, **small_problem)
    other = sample_prior(n_samples=n, seed=2, chunk=256, **small_problem)
    assert a.counts == b.counts == c.counts
    assert a.n_consistent == b.n_consistent == c.n_consistent > 0
    assert other.counts != a.counts
    # a prefix of the stream is the same networks: counts of n − 17 samples are contained in those of n
    prefix = sample_prior(n_samples=n - 17, seed=1, chunk=512, **small_problem)
    assert np.all(a.counts.lookup(prefix.counts.bits()) >= prefix.counts.counts)
    assert block_seed(7, 3) == spawn_seeds(7, 10)[3]


def test_shard_function_is_picklable_and_equal(small_problem):
    fn = pickle.loads(pickle.dumps(sample_prior_shard))
    cfg = {k: v for k, v in small_problem.items() if k != "progress"}
    shard = fn(4, 600, **cfg)
    assert isinstance(shard, FunctionCounts)
    assert shard == sample_prior(n_samples=600, seed=4, **small_problem).counts
    with pytest.raises(ValueError, match="missing"):
        sample_prior_shard(0, 10, x_test=cfg["x_test"])


def test_bad_input(small_problem):
    kw = dict(small_problem)
    with pytest.raises(ValueError, match="n_samples"):
        sample_prior(n_samples=0, **kw)
    with pytest.raises(ValueError, match="sigma_w"):
        sample_prior(n_samples=10, sigma_w=-1.0, **kw)
    with pytest.raises(ValueError, match="sigma_b"):
        sample_prior(n_samples=10, sigma_b=float("nan"), **kw)
    with pytest.raises(ValueError, match="nonlinearity 'tanh'"):
        sample_prior(n_samples=10, nonlinearity="tanh", **kw)
    with pytest.raises(ValueError, match="widths"):
        sample_prior(n_samples=10, **{**kw, "widths": (10, 0)})
    with pytest.raises(ValueError, match="y_train has 2 labels but x_train has 3"):
        sample_prior(n_samples=10, **{**kw, "y_train": [0, 1]})
    with pytest.raises(ValueError, match="binary"):
        sample_prior(n_samples=10, **{**kw, "y_train": [0, 2, 1]})
    with pytest.raises(ValueError, match="x_train must be"):
        sample_prior(n_samples=10, **{**kw, "x_train": torch.zeros(3, 5)})
    with pytest.raises(ValueError, match="chunk must be None or an int >= 1, got 0"):
        sample_prior(n_samples=10, chunk=0, **kw)
    bad_x = kw["x_test"].clone()
    bad_x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sample_prior(n_samples=10, **{**kw, "x_test": bad_x})


@pytest.mark.slow
def test_agrees_with_exact_gp_and_with_ep_log_pb():
    """Boolean n = 3 (8 inputs, target = first bit), |S| = 2, E = the other 6; a wide net 3 → ReLU(512) → 1
    (σ_w = σ_b = 1, 4·10⁵ draws), for the 10 functions drawn ≥ 1,000 times.

    (1) Against the exact P_B of the net's GP limit, P(S ∪ (E, f))/P(S) from 8-D orthant probabilities of the
        NNGP kernel (Genz, its error taken as 3× the spread of two seeds, checked ≤ 1%): |p̂ − P_B| ≤ 4 binomial sd
        √(p(1−p)/n_consistent) + Genz's error. No allowance for width: the O(1/width) finite-width bias is below
        the sampling error at width 512.
    (2) EP's own approximation error against the same exact value: ≤ 0.1 nats for the full ratio (measured ≈ 0.05),
        ≤ 0.35 for the two-stage form (which freezes S's sites).
    (3) Hence direct sampling against EP, with the tolerance derived from (1) and (2): |log p̂ − log P_B^EP| ≤
        4 sd of log p̂ (√((1 − p)/(p n))) + |log P_B^EP − log P_B^exact| (EP's error, computed here)."""
    kernels = pytest.importorskip("sgdbayes.kernels")
    gp = pytest.importorskip("sgdbayes.gp")
    from sgdbayes.data.boolean import boolean_split

    split = boolean_split("first_bit", 2, seed=1, n=3)
    res = sample_prior(split.x_train, split.y_train, split.x_test, n_samples=400_000, widths=(512,),
                       sigma_w=1.0, sigma_b=1.0, seed=0, progress=False)
    keep = res.counts.counts >= 1000
    assert keep.sum() >= 8, res.counts.most_common(10)
    p_hat = res.p_b()[keep]
    n = res.n_consistent
    signs = res.counts.signs(keep)
    x = torch.cat([split.x_train, split.x_test]).double()
    K = kernels.nngp_fcn(x, depth=1, sigma_w=1.0, sigma_b=1.0)
    Kn = K.numpy()
    y = split.y_train.double().numpy() * 2 - 1
    p_s = orthant(Kn[:2, :2], y)
    # 8-D Genz at a fixed number of points, twice with different seeds: the difference bounds its own error
    genz = {"abseps": 1e-12, "releps": 1e-12, "maxpts": 200_000}
    two = np.array([[orthant(Kn, np.r_[y, s], seed=k, **genz) / p_s for s in signs] for k in (0, 1)])
    exact, genz_err = two.mean(0), 3 * np.abs(two[0] - two[1])
    assert np.all(genz_err <= 0.01 * exact), genz_err / exact
    assert np.all(np.abs(p_hat - exact) <= 4 * np.sqrt(exact * (1 - exact) / n) + genz_err), list(zip(p_hat, exact))
    sd_log = np.sqrt((1 - p_hat) / (p_hat * n))
    for method, ep_bound in (("full", 0.1), ("two_stage", 0.35)):
        lp = gp.log_pb(K, torch.from_numpy(y), torch.from_numpy(signs.astype(float)), method=method).numpy()
        ep_err = np.abs(lp - np.log(exact))
        assert np.all(ep_err <= ep_bound), (method, ep_err)
        diff = np.abs(np.log(p_hat) - lp)
        assert np.all(diff <= 4 * sd_log + ep_err + genz_err / exact), (method, list(zip(p_hat, np.exp(lp), diff)))

def test_threads_and_first_pass_do_not_change_counts(monkeypatch):
    """|S| = 12 > PREFILTER_INPUTS, so the cheap first pass on S runs: the counts must equal those of the plain
    full-S evaluation (first pass off), in one thread or several, whatever the chunk; and float64 must match the
    naive per-network re-creation."""
    import sgdbayes.prior_sampling as ps

    x = torch.tensor(list(itertools.product((0.0, 1.0), repeat=5)))
    y = torch.zeros(32, dtype=torch.long)  # the simplest target, so that enough networks fit 12 labels
    tr = [0, 3, 5, 6, 9, 12, 17, 20, 22, 26, 29, 31]
    te = [i for i in range(32) if i not in tr][:9]
    assert len(tr) > ps.PREFILTER_INPUTS > 0
    kw = dict(x_train=x[tr], y_train=y[tr], x_test=x[te], n_samples=20 * 64 + 9, widths=(6, 5), sigma_w=1.2,
              sigma_b=0.8, seed=5, block=64, progress=False)
    runs = [sample_prior(threads=t, chunk=c, **kw) for t, c in ((1, 64), (3, 64), (2, 192), (4, 10**6))]
    monkeypatch.setattr(ps, "PREFILTER_INPUTS", 0)
    plain = sample_prior(threads=1, chunk=64, **kw)
    assert plain.n_consistent > 20
    for r in runs:
        assert r.counts == plain.counts and r.n_consistent == plain.n_consistent
    monkeypatch.undo()
    ref = _naive_counts(x[tr], y[tr].tolist(), x[te], n_samples=kw["n_samples"], widths=kw["widths"], sw=1.2,
                        sb=0.8, seed=5, block=64)
    got = sample_prior(threads=2, dtype=torch.float64, **kw)
    assert got.counts.to_dict() == dict(ref)


def test_first_pass_margin_exceeds_rounding_differences():
    """The first pass evaluates PREFILTER_INPUTS rows of S in a smaller GEMM, which may round differently from the
    full evaluation; its margin must dwarf that difference (measured: ~3e-7 of the bound on the summed terms, for a
    1e-3 margin). Here: ≤ margin/100 on 16k networks of the book's 7 → 40 → 40 → 1 net."""
    import sgdbayes.prior_sampling as ps

    x = torch.tensor(list(itertools.product((0.0, 1.0), repeat=7)))[::4]
    layers = ps._layer_sizes(7, (40, 40))
    gen = torch.Generator().manual_seed(0)
    params = torch.randn(16384, n_parameters(7, (40, 40)), generator=gen)
    with torch.inference_mode():
        full = ps._forward(params, x, layers, 1.0, 1.0, torch.relu_)
        sub, scale = ps._forward(params, x[:ps.PREFILTER_INPUTS], layers, 1.0, 1.0, torch.relu_, with_scale=True)
        # the scale bounds the logit itself (it bounds the sum of the absolute terms)
        assert torch.all(sub.abs() <= scale * (1 + 1e-5))
        assert ((sub - full[:, :ps.PREFILTER_INPUTS]).abs() / scale).max() <= ps.PREFILTER_MARGIN / 100


def test_threaded_errors_propagate(small_problem):
    with pytest.raises(FloatingPointError, match="non-finite logits"):
        sample_prior(n_samples=4 * 256, sigma_w=1e30, threads=2, chunk=256, **small_problem)
    with pytest.raises(ValueError, match="threads must be None or an int >= 1, got 0"):
        sample_prior(n_samples=10, threads=0, **small_problem)


# ---------------------------------------------------------------------------------------------------------------
# the native path (sgdbayes/native/prior.cpp): torch's normal stream bit for bit, and the same counts
# ---------------------------------------------------------------------------------------------------------------
def _native_or_skip(dims=(7, 40, 40, 1)):
    import sgdbayes.prior_sampling as ps

    lib = ps._native_prior(dims)
    if lib is None:
        pytest.skip("native prior kernel unavailable here (no compiler, or torch's normal stream differs)")
    return lib


@pytest.mark.parametrize("size", [16, 17, 31, 4099, 2001 * 7, 2048 * 2001])
def test_native_normal_stream_equals_torch_bit_for_bit(size):
    lib = _native_or_skip()
    for seed in (0, block_seed(7, 3), 2**40 + 5):
        ref = torch.empty(size).normal_(generator=torch.Generator().manual_seed(seed))
        ours = torch.empty(size)
        lib.sgdb_normal_fill(seed, ours.data_ptr(), size)
        assert torch.equal(ref.view(torch.int32), ours.view(torch.int32)), (size, seed)


def test_alternate_labels_pairs_opposite_labels_and_keeps_every_input_once():
    from sgdbayes.prior_sampling import _alternate_labels

    y = torch.tensor([0, 0, 1, 0, 1, 1, 1, 0, 1, 1], dtype=torch.bool)
    order = _alternate_labels(y)
    assert order.tolist() == [2, 0, 4, 1, 5, 3, 6, 7, 8, 9]
    assert sorted(order.tolist()) == list(range(10))
    assert _alternate_labels(torch.zeros(3, dtype=torch.bool)).tolist() == [0, 1, 2]
    assert _alternate_labels(torch.zeros(0, dtype=torch.bool)).tolist() == []


def test_native_box_muller_equals_torchs_kernel_on_every_uniform():
    """The AVX-512 Box-Muller drops operations of torch's kernel that cannot change a value on its inputs' range and
    replaces others by equivalent ones; over all 2^24 possible uniforms, as u1 and as u2, its output must equal, bit
    for bit, the transcription of torch's AVX2 kernel (itself checked against Tensor.normal_ above)."""
    lib = _native_or_skip()
    assert lib.sgdb_box_muller_mismatches() == 0


def test_native_filter_stream_and_superset():
    """With an infinite margin the filter returns every network of the block with torch's normals (the stream
    sliced a few networks at a time, including a partial block and a block whose size is not a multiple of 16);
    with the real margin it keeps every network that torch finds fitting S."""
    import sgdbayes.prior_sampling as ps
    from sgdbayes.data.boolean import boolean_split

    lib = _native_or_skip()
    P = n_parameters(7, (40, 40))
    split = boolean_split("0011", 32, seed=0)
    xs = torch.as_tensor(split.x_train, dtype=torch.float32).contiguous()
    ys = torch.as_tensor(np.asarray(split.y_train) > 0).to(torch.uint8)
    for block, keep in ((37, 30), (33, 33), (2048, 2048)):
        seed = block_seed(0, block)
        idx = np.empty(block, np.int64)
        out = torch.empty(block, P)
        c = lib.sgdb_prior_filter(seed, block, keep, xs.data_ptr(), ys.data_ptr(), 32, 1.0, 1.0, 1e30,
                                  idx.ctypes.data, out.data_ptr())
        ref = torch.empty(block, P).normal_(generator=torch.Generator().manual_seed(seed))
        assert c == keep and (idx[:c] == np.arange(keep)).all()
        assert torch.equal(out[:keep].view(torch.int32), ref[:keep].view(torch.int32))
    kept_fitting = 0
    for j in range(12):
        seed = block_seed(1, j)
        idx = np.empty(2048, np.int64)
        out = torch.empty(2048, P)
        c = lib.sgdb_prior_filter(seed, 2048, 2048, xs.data_ptr(), ys.data_ptr(), 32, 1.0, 1.0,
                                  ps.PREFILTER_MARGIN, idx.ctypes.data, out.data_ptr())
        ref = torch.empty(2048, P).normal_(generator=torch.Generator().manual_seed(seed))
        logits = ps._forward(ref, xs, ps._layer_sizes(7, (40, 40)), 1.0, 1.0, torch.relu_)
        fits = np.flatnonzero(((logits > 0) == ys.bool()).all(1).numpy())
        assert set(fits) <= set(idx[:c].tolist())
        assert c < 2048 // 20  # it does reject: the screening is not vacuous
        kept_fitting += len(fits)


@pytest.mark.parametrize("widths", [(), (5,), (17, 3), (33, 9, 40)])
def test_native_filter_on_other_architectures_gives_torchs_counts(monkeypatch, widths):
    """The native filter is compiled per architecture: the linear model (no hidden layer), one or three hidden
    layers, widths that are not multiples of the vector width. Its counts must equal the torch path's."""
    import sgdbayes.prior_sampling as ps
    from sgdbayes.data.boolean import boolean_split

    _native_or_skip((7, *widths, 1))
    split = boolean_split("0110", 6, seed=2)
    kw = dict(x_train=split.x_train, y_train=split.y_train, x_test=split.x_test, n_samples=3000, block=1000,
              widths=widths, sigma_b=0.5, seed=5, progress=False)
    native = sample_prior(**kw)
    monkeypatch.setattr(ps, "USE_NATIVE", False)
    plain = sample_prior(**kw)
    assert native.n_consistent == plain.n_consistent > 0
    assert native.counts == plain.counts


@pytest.mark.parametrize("with_s", [True, False])
def test_native_and_torch_paths_give_identical_counts(monkeypatch, with_s):
    import sgdbayes.prior_sampling as ps
    from sgdbayes.data.boolean import boolean_inputs, boolean_split

    _native_or_skip()
    split = boolean_split("0011", 16, seed=1)
    kw = dict(x_train=split.x_train if with_s else None, y_train=split.y_train if with_s else None,
              x_test=split.x_test if with_s else boolean_inputs(7), n_samples=3 * 1000 + 123, block=1000,
              chunk=2000, seed=4, progress=False)
    native = sample_prior(**kw)
    monkeypatch.setattr(ps, "USE_NATIVE", False)
    plain = sample_prior(**kw)
    assert native.n_consistent == plain.n_consistent > 0
    assert native.counts == plain.counts
