"""FunctionCounts against a naive ``collections.Counter`` of bit strings, plus merge laws and persistence."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sgdbayes.functions import FunctionCounts, FunctionCountsError


def naive(bits: np.ndarray) -> Counter:
    return Counter("".join("1" if b else "0" for b in row) for row in bits)


def bit_matrices(max_rows=60, max_bits=20):
    """Random bool matrices with many repeated rows (rows drawn from a small pool)."""
    @st.composite
    def build(draw):
        n_bits = draw(st.integers(1, max_bits))
        pool = draw(arrays(np.bool_, (draw(st.integers(1, 6)), n_bits)))
        idx = draw(arrays(np.int64, draw(st.integers(0, max_rows)), elements=st.integers(0, len(pool) - 1)))
        return pool[idx].reshape(len(idx), n_bits)
    return build()


@settings(max_examples=60, deadline=None)
@given(bit_matrices())
def test_counts_match_counter(bits):
    fc = FunctionCounts.from_bits(bits, n_bits=bits.shape[1])
    ref = naive(bits)
    assert fc.to_dict() == dict(ref)
    assert fc.total == bits.shape[0] == sum(ref.values())
    assert fc.n_distinct == len(ref)
    # canonical order: counts descending, ties by bit string ascending (packbits order = lexicographic)
    mc = fc.most_common()
    assert mc == sorted(ref.items(), key=lambda kv: (-kv[1], kv[0]))
    if fc.total:
        p = np.array([c for _, c in mc]) / fc.total
        np.testing.assert_allclose(fc.probabilities(), p)
        assert fc.entropy() == pytest.approx(-sum(q * math.log(q) for q in p), abs=1e-12)
        for k in (0, 1, 3, 100):
            assert fc.top_k_mass(k) == pytest.approx(sum(c for _, c in mc[:k]) / fc.total)
        truth = bits[0]
        expect = [sum(a != b for a, b in zip(s, "".join("1" if t else "0" for t in truth))) for s, _ in mc]
        assert fc.errors(truth).tolist() == expect
        assert fc.errors(np.where(truth, 1, -1)).tolist() == expect  # ±1 labels accepted
        # subset keeps the chosen rows with their counts
        sub = fc.subset(np.arange(0, fc.n_distinct, 2))
        assert sub.to_dict() == dict(mc[::2])
        # marginals and mean error: plain averages over the raw rows
        np.testing.assert_allclose(fc.marginals(), bits.mean(0), atol=1e-12)
        assert fc.mean_error(truth) == pytest.approx(float((bits != truth).mean()), abs=1e-12)
    # bits() round-trips the strings; lookup gives counts, 0 for unseen
    assert ["".join("1" if b else "0" for b in row) for row in fc.bits()] == [s for s, _ in mc]
    query = np.concatenate([bits[:3], ~bits[:3]]) if len(bits) else np.zeros((1, bits.shape[1]), bool)
    assert fc.lookup(query).tolist() == [ref.get("".join("1" if b else "0" for b in r), 0) for r in query]


@settings(max_examples=40, deadline=None)
@given(bit_matrices(), st.data())
def test_merge_laws(bits, data):
    n = bits.shape[1]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(bits)), min_size=2, max_size=2)))
    a, b, c = (FunctionCounts.from_bits(p, n) for p in np.split(bits, cuts))
    whole = FunctionCounts.from_bits(bits, n)
    assert a + b == b + a
    assert (a + b) + c == a + (b + c) == whole
    assert sum([c, a, b]) == whole
    assert FunctionCounts.merge_all([b, c, a]) == whole
    d = FunctionCounts.empty(n)
    for part in np.split(bits, cuts)[::-1]:
        d.update(part)
    assert d == whole


def test_wide_functions_and_torch_input():
    """|E| = 1000 bits (not a multiple of 8: 1003), torch and ±1 input, agreement with Counter."""
    gen = np.random.default_rng(0)
    pool = gen.random((50, 1003)) < 0.5
    bits = pool[gen.integers(0, 50, size=5000)]
    fc = FunctionCounts.from_bits(torch.from_numpy(bits.astype(np.float32) * 2 - 1))
    assert fc.keys.shape == (fc.n_distinct, 126) and fc.keys.dtype == np.uint8
    assert fc.to_dict() == dict(naive(bits))
    np.testing.assert_array_equal(fc.signs(0), np.where(fc.bits(0), 1.0, -1.0))


def test_update_packed_equals_update():
    gen = np.random.default_rng(1)
    bits = gen.random((300, 13)) < 0.2
    a = FunctionCounts.empty(13)
    a.update(bits)
    b = FunctionCounts.empty(13)
    b.update_packed(np.packbits(bits, axis=1))
    assert a == b == FunctionCounts.from_packed(np.packbits(bits, axis=1), 13)


def test_save_load_roundtrip(tmp_path):
    gen = np.random.default_rng(2)
    fc = FunctionCounts.from_bits(gen.random((1000, 37)) < 0.1)
    path = fc.save(tmp_path / "sub" / "fc.npz")
    back = FunctionCounts.load(path)
    assert back == fc and back.total == 1000
    assert FunctionCounts.load(FunctionCounts.empty(5).save(tmp_path / "e.npz")) == FunctionCounts.empty(5)


def test_corrupt_files_raise(tmp_path):
    fc = FunctionCounts.from_bits(np.eye(9, dtype=bool))
    path = fc.save(tmp_path / "fc.npz")
    raw = bytearray(path.read_bytes())
    (tmp_path / "trunc.npz").write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(FunctionCountsError, match="trunc.npz"):
        FunctionCounts.load(tmp_path / "trunc.npz")
    with pytest.raises(FunctionCountsError, match="cannot read"):
        FunctionCounts.load(tmp_path / "missing.npz")
    # a valid npz whose counts were altered: checksum mismatch
    import io
    with np.load(io.BytesIO(bytes(raw))) as z:
        parts = {k: z[k] for k in z.files}
    parts["counts"] = parts["counts"].copy()
    parts["counts"][0] += 1
    buf = io.BytesIO()
    np.savez(buf, **parts)
    (tmp_path / "tamper.npz").write_bytes(buf.getvalue())
    with pytest.raises(FunctionCountsError, match="checksum"):
        FunctionCounts.load(tmp_path / "tamper.npz")
    assert isinstance(FunctionCountsError("x"), ValueError)


def test_bad_input():
    with pytest.raises(ValueError, match="width 4, expected n_bits = 5"):
        FunctionCounts.empty(5).update(np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match=r"values such as \[2\]"):
        FunctionCounts.from_bits(np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="mixed"):
        FunctionCounts.from_bits(np.array([[0, 1, -1]]))
    with pytest.raises(ValueError, match="NaN"):
        FunctionCounts.from_bits(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="n_bits 4 into n_bits 3"):
        FunctionCounts.empty(3) + FunctionCounts.empty(4)
    with pytest.raises(ValueError, match="n_bits must be a positive int"):
        FunctionCounts.empty(0)
    with pytest.raises(ValueError, match="empty"):
        FunctionCounts.empty(3).entropy()
    with pytest.raises(ValueError, match="k must be"):
        FunctionCounts.from_bits([[1, 0]]).top_k_mass(-1)
    with pytest.raises(ValueError, match="true_labels has width 3"):
        FunctionCounts.from_bits([[1, 0]]).errors([1, 0, 1])
