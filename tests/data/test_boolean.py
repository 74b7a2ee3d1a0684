"""The Boolean system: input order, LZ76 word counts on hand-parsed strings, K_LZ, targets and splits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sgdbayes.data.boolean import (MINGARD_MASKS, MINGARD_TARGET_MASK, MINGARD_TARGETS, boolean_inputs,
                                   boolean_split, boolean_target, lz76_words, lz_complexity, mask_split,
                                   mingard_split, random_target_with_lz)


def test_inputs_order():
    x = boolean_inputs(3)
    assert x.dtype == torch.float32 and x.shape == (8, 3)
    assert x[5].tolist() == [1.0, 0.0, 1.0]  # 5 = 101, most significant bit first
    # all distinct, and row i read as binary is i
    assert ((x * torch.tensor([4.0, 2.0, 1.0])).sum(1) == torch.arange(8)).all()
    with pytest.raises(ValueError, match="n .* must be an int in"):
        boolean_inputs(0)


@pytest.mark.parametrize("s, words", [
    ("0001101001000101", 6),   # Kaspar & Schuster: 0·001·10·100·1000·101
    ("0", 1), ("01", 2), ("0000", 2),          # 0·000 (the last word reaches the end while reproducible)
    ("0101010101", 3),         # 0·1·01010101
    ("0011" * 4, 4),           # 0·01·10·0110011 ...
    ("0110", 3),               # 0·1·10
    ("1011", 3),               # 1·0·11
])
def test_lz76_words_hand_parsed(s, words):
    assert lz76_words(s) == words


def test_lz_complexity_values():
    assert lz_complexity("0" * 128) == 7.0 == lz_complexity(np.ones(128, bool))     # constant: log2(L)
    assert lz_complexity("01" * 64) == pytest.approx(7 * (3 + 3) / 2)
    assert lz_complexity("0011" * 32) == pytest.approx(28.0)  # the paper's simplest target, K_LZ = 28
    s = "0001101001000101"
    assert lz_complexity(s) == pytest.approx(4 * (lz76_words(s) + lz76_words(s[::-1])) / 2)
    batch = lz_complexity(np.array([[0, 1] * 4, [1] * 8]))
    np.testing.assert_allclose(batch, [3 * 3, 3.0])
    with pytest.raises(ValueError, match="binary"):
        lz_complexity(np.array([0, 2, 1]))


def test_named_targets():
    x = boolean_inputs(7).numpy().astype(int)
    t = boolean_target("0011", 7)
    assert "".join(map(str, t.astype(int))) == "0011" * 32
    np.testing.assert_array_equal(t, x[:, 5] == 1)   # 0011 repeated = second-to-last bit
    np.testing.assert_array_equal(boolean_target("parity", 7), x.sum(1) % 2 == 1)
    np.testing.assert_array_equal(boolean_target("majority", 7), x.sum(1) >= 4)
    np.testing.assert_array_equal(boolean_target(t.astype(int) * 2 - 1, 7), t)   # ±1 array accepted
    r1, r2 = boolean_target("random", 7, seed=3), boolean_target("random", 7, seed=3)
    np.testing.assert_array_equal(r1, r2)
    for k in (28.0, 35.0, 42.0, 70.0):
        assert lz_complexity(boolean_target(f"lz:{k}", 7, seed=1)) == pytest.approx(k, abs=1.75)
    with pytest.raises(ValueError, match="unknown target 'foo'"):
        boolean_target("foo")
    with pytest.raises(ValueError, match="does not divide"):
        boolean_target("011")
    with pytest.raises(ValueError, match="128 bits"):
        boolean_target(np.zeros(64))
    with pytest.raises(ValueError, match="no target with K_LZ"):
        random_target_with_lz(1000.0, 7, max_tries=50)


def test_split():
    sp = boolean_split("0011", 32, seed=4)
    assert sp.n_train == 32 and sp.n_test == 96
    assert np.all(np.diff(sp.train_idx) > 0) and np.all(np.diff(sp.test_idx) > 0)
    assert set(sp.train_idx) | set(sp.test_idx) == set(range(128)) and not set(sp.train_idx) & set(sp.test_idx)
    x = boolean_inputs(7)
    assert torch.equal(sp.x_train, x[sp.train_idx]) and torch.equal(sp.x_test, x[sp.test_idx])
    np.testing.assert_array_equal(sp.y_train.numpy() == 1, sp.target[sp.train_idx])
    np.testing.assert_array_equal(sp.full_function(sp.y_test.numpy())[0], sp.target)
    again = boolean_split("0011", 32, seed=4)
    np.testing.assert_array_equal(again.train_idx, sp.train_idx)
    assert not np.array_equal(boolean_split("0011", 32, seed=5).train_idx, sp.train_idx)
    for bad in (128, -1, 2.5):
        with pytest.raises(ValueError, match="n_train"):
            boolean_split("0011", bad)


def test_input_order_is_the_authors():
    """The authors index inputs by i with "{0:07b}".format(i) (generate_inputs_sample.py), i.e. in the order of
    itertools.product([0, 1], repeat=7); ours must be the same for their bit strings to mean the same functions."""
    x = boolean_inputs(7).numpy().astype(int)
    authors = np.array([[int(c) for c in "{0:07b}".format(i)] for i in range(128)])
    np.testing.assert_array_equal(x, authors)
    np.testing.assert_array_equal(x, np.array(list(itertools.product([0, 1], repeat=7))))


def test_authors_masks_and_targets():
    for name, mask in MINGARD_MASKS.items():
        assert len(mask) == 128 and set(mask) == {"0", "1"} and mask.count("1") == 32, name
    # mask A is the train set the authors' data script drew for the 0011 target: seed 42069, 32 of 128 inputs
    drawn = np.random.RandomState(42069).choice(range(128), size=32, replace=False)
    assert MINGARD_MASKS["A"] == "".join("1" if i in drawn else "0" for i in range(128))
    assert set(MINGARD_TARGETS) == set(MINGARD_TARGET_MASK) == set(range(1, 8))
    for k, t in MINGARD_TARGETS.items():
        assert len(t) == 128 and set(t) <= {"0", "1"}, k
    assert MINGARD_TARGETS[7] == "".join(map(str, boolean_target("0011").astype(int)))
    assert len(set(MINGARD_TARGETS.values())) == 7


@pytest.mark.parametrize("k", range(1, 8))
def test_mingard_split(k):
    sp = mingard_split(k)
    mask = MINGARD_MASKS[MINGARD_TARGET_MASK[k]]
    assert (sp.n_train, sp.n_test) == (32, 96)
    np.testing.assert_array_equal(sp.train_idx, [i for i, c in enumerate(mask) if c == "1"])
    np.testing.assert_array_equal(sp.test_idx, [i for i, c in enumerate(mask) if c == "0"])
    target = np.array([c == "1" for c in MINGARD_TARGETS[k]])
    np.testing.assert_array_equal(sp.target, target)
    x = boolean_inputs(7)
    assert torch.equal(sp.x_train, x[sp.train_idx]) and torch.equal(sp.x_test, x[sp.test_idx])
    np.testing.assert_array_equal(sp.y_train.numpy() == 1, target[sp.train_idx])
    np.testing.assert_array_equal(sp.y_test.numpy() == 1, target[sp.test_idx])
    same = mingard_split(MINGARD_TARGETS[k], MINGARD_TARGET_MASK[k].lower())
    np.testing.assert_array_equal(same.train_idx, sp.train_idx)


def test_mask_problem_agrees_with_mingard_split():
    """mask_problem accepts exactly the masks mingard_split takes with |S| = 32, and says what is wrong otherwise."""
    from sgdbayes.data.boolean import mask_problem

    a = MINGARD_MASKS["A"]
    bad = {"C": "neither 'A', 'B'", a[:-1]: "neither 'A', 'B'", a[:-1] + "2": "neither 'A', 'B'",
           "1" + a[1:]: "33 ones, not 32", 7: "not a string (int)"}
    for mask in ("A", "b", a, MINGARD_MASKS["B"]):
        assert mask_problem(mask) is None
        assert mingard_split(7, mask).x_train.shape[0] == 32
    for mask, reason in bad.items():
        assert reason in mask_problem(mask)
        if isinstance(mask, str) and mask.upper() not in ("A", "B"):
            with pytest.raises(ValueError):
                mingard_split(7, mask)


def test_mask_and_target_errors():
    a, t7 = MINGARD_MASKS["A"], MINGARD_TARGETS[7]
    with pytest.raises(ValueError, match="mask must be a string of 128 '0'/'1' characters, got length 127"):
        mingard_split(7, a[:-1])
    with pytest.raises(ValueError, match="mask must have 32 ones .* got 31"):
        mingard_split(7, a[0] + "0" + a[2:])  # a[1] is its first one
    with pytest.raises(ValueError, match="mask must have 32 ones .* got 33"):
        mingard_split(7, "1" + a[1:])
    with pytest.raises(ValueError, match=r"target must be a string of 128 .* length 126"):
        mingard_split(t7[:-2], "A")
    with pytest.raises(ValueError, match=r"target must be a string of 128 .* characters \['2'\]"):
        mingard_split(t7[:-1] + "2", "A")
    with pytest.raises(ValueError, match=r"target number must be one of \[1, 2, 3, 4, 5, 6, 7\], got 0"):
        mingard_split(0)
    with pytest.raises(ValueError, match="needs a mask"):
        mingard_split(t7)
    with pytest.raises(ValueError, match="target must be 128 bits"):
        mask_split(np.zeros(64), a)
    with pytest.raises(ValueError, match="S and E must both be non-empty"):
        mask_split(t7, "1" * 128)
