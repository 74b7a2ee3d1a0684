"""The Boolean system of Mingard et al. (2020): all 2ⁿ n-bit inputs, target functions, LZ complexity, S/E splits.

Input order. Row ``i`` of :func:`boolean_inputs` is the binary expansion of ``i`` with the most significant bit in
column 0: for n = 3 the rows are 000, 001, 010, …, 111. A function (target or learnt) on all inputs is a bit string
of length 2ⁿ in this order, so ``"0011" * 32`` labels input i by bit ``i mod 4 ≥ 2``, i.e. by column n − 2.

Complexity. :func:`lz_complexity` is the Lempel–Ziv measure used by the paper (Dingle et al. 2018):
``K_LZ(s) = log₂(L) · [N_w(s) + N_w(reverse s)] / 2`` with L = len(s) and N_w the number of words of the LZ76
(Lempel & Ziv 1976, exhaustive history) parsing, and ``K_LZ(s) = log₂(L)`` for a constant string. For L = 128 the
values lie on a grid of step 3.5; the paper's targets have K_LZ ≈ 28–42.

The authors' set-up. :data:`MINGARD_TARGETS` (seven 128-bit targets, numbered 1–7) and :data:`MINGARD_MASKS` (train
masks "A" and "B", 32 ones each: |S| = 32, |E| = 96) are the strings of the authors' analysis script
(github guillefix/nn-pacbayes, ``analyze/analyze_perceptron_sgd_vs_bayes2.py``; their result files number the
targets 0–6). Bit i of each string is input i of :func:`boolean_inputs`: the authors build the inputs as
``"{0:07b}".format(i)`` for i = 0 … 127 (``generate_inputs_sample.py``), the same order, which is also that of
``itertools.product([0, 1], repeat=7)``. Mask A is the train set their data script drew for target 7 (0011…):
``np.random.seed(42069); np.random.choice(range(128), size=32, replace=False)``. :func:`mingard_split` builds S
and E from a target and its mask (E in input order, as the authors' function strings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sgdbayes.device import get_device
from sgdbayes.functions import as_bits

__all__ = [
    "MINGARD_MASKS",
    "MINGARD_TARGETS",
    "MINGARD_TARGET_MASK",
    "BooleanSplit",
    "NAMED_TARGETS",
    "boolean_inputs",
    "boolean_split",
    "boolean_target",
    "lz76_words",
    "lz_complexity",
    "mask_problem",
    "mask_split",
    "mingard_split",
    "random_target_with_lz",
]

MAX_N = 20


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_N:
        raise ValueError(f"n (number of input bits) must be an int in [1, {MAX_N}], got {n!r}")
    return int(n)


def boolean_inputs(n: int, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> torch.Tensor:
    """All 2ⁿ inputs in {0, 1}ⁿ as a ``[2ⁿ, n]`` tensor; row i is i in binary, most significant bit first."""
    n = _check_n(n)
    dev = get_device(device)
    i = torch.arange(2**n, device=dev)
    shifts = torch.arange(n - 1, -1, -1, device=dev)
    return ((i[:, None] >> shifts) & 1).to(dtype)


def _as_string(bits) -> str:
    if isinstance(bits, str):
        if not bits or set(bits) - {"0", "1"}:
            raise ValueError(f"bit string must be a non-empty string of '0'/'1', got {bits[:40]!r}")
        return bits
    arr = as_bits(bits, name="bits")
    if arr.shape[0] != 1 or arr.shape[1] == 0:
        raise ValueError(f"expected one non-empty bit string, got shape {tuple(arr.shape)}")
    return "".join("1" if b else "0" for b in arr[0])


def lz76_words(s) -> int:
    """N_w(s): the number of words in the LZ76 exhaustive-history parsing of the bit string ``s``.

    Each new word starting at position p is the shortest ``s[p:p+L]`` that is *not* a substring of ``s[:p+L-1]``
    (the history may overlap the word itself); a final word that reaches the end while still reproducible is
    counted too. Example (Kaspar & Schuster 1987): 0·001·10·100·1000·101 → 6.
    """
    s = _as_string(s)
    n, p, words = len(s), 0, 0
    while p < n:
        length = 1
        while p + length <= n and s[p:p + length] in s[:p + length - 1]:
            length += 1
        words += 1
        p += length
    return words


def lz_complexity(bits) -> float | np.ndarray:
    """K_LZ of one bit string (``str`` or array ``[L]``) → float, or of each row of ``[m, L]`` → ``float64 [m]``.

    K_LZ(s) = log₂(L)·[N_w(s) + N_w(reverse s)]/2; log₂(L) for a constant string (see the module docstring).
    """
    if not isinstance(bits, str) and len(np.shape(bits)) == 2:
        return np.array([lz_complexity(row) for row in as_bits(bits, name="bits")], dtype=np.float64)
    s = _as_string(bits)
    length = len(s)
    if length == 1:
        return 0.0
    if s.count(s[0]) == length:
        return math.log2(length)
    return math.log2(length) * (lz76_words(s) + lz76_words(s[::-1])) / 2


def _parity(x: np.ndarray) -> np.ndarray:
    return x.sum(1) % 2 == 1


NAMED_TARGETS = {
    "zeros": lambda x: np.zeros(len(x), bool),
    "ones": lambda x: np.ones(len(x), bool),
    "parity": _parity,
    "majority": lambda x: x.sum(1) * 2 > x.shape[1],
    "first_bit": lambda x: x[:, 0] == 1,
    "last_bit": lambda x: x[:, -1] == 1,
    "and": lambda x: x.all(1),
    "or": lambda x: x.any(1),
}
"""Named targets: name → rule on the 0/1 input matrix ``[2ⁿ, n]`` (majority: more than half the bits set)."""


def random_target_with_lz(complexity: float, n: int = 7, *, seed: int = 0, max_tries: int = 200_000) -> np.ndarray:
    """A random target ``bool [2ⁿ]`` whose K_LZ is the achievable value nearest to ``complexity``.

    Candidates are drawn (seeded) from a family spanning simple to complex strings: a random pattern of random
    period 2ᵏ tiled over 2ⁿ bits, with each bit flipped with a probability drawn log-uniformly in [10⁻³, 0.5];
    the first candidate whose K_LZ is within half a grid step (log₂(2ⁿ)/2) of ``complexity`` is returned.
    """
    n = _check_n(n)
    length = 2**n
    step = math.log2(length) / 2
    gen = np.random.default_rng(seed)
    seen = []
    for _ in range(max_tries):
        period = 2 ** int(gen.integers(1, n + 1))
        pattern = gen.random(period) < 0.5
        s = np.tile(pattern, length // period)
        flip = 10 ** gen.uniform(-3, math.log10(0.5))
        s ^= gen.random(length) < flip
        k = lz_complexity(s)
        if abs(k - complexity) <= step / 2 + 1e-9:
            return s
        seen.append(k)
    raise ValueError(f"no target with K_LZ ≈ {complexity} found for n = {n} in {max_tries} tries; "
                     f"sampled K_LZ ranged over [{min(seen):.1f}, {max(seen):.1f}]")


def boolean_target(name_or_bits, n: int = 7, *, seed: int = 0) -> np.ndarray:
    """A target function on all 2ⁿ inputs, ``bool [2ⁿ]`` in :func:`boolean_inputs` order.

    ``name_or_bits`` is one of
      - a '0'/'1' string whose length divides 2ⁿ, tiled (``"0011"`` → ``"0011" * 32`` for n = 7), or an array of
        2ⁿ bits (bool, {0,1} or {−1,+1});
      - a name in :data:`NAMED_TARGETS` (``"parity"``, ``"majority"``, ``"first_bit"``, …);
      - ``"random"`` (uniform random bits, seeded) or ``"lz:<K>"`` (random, K_LZ ≈ K, see
        :func:`random_target_with_lz`).
    """
    n = _check_n(n)
    length = 2**n
    if isinstance(name_or_bits, str):
        key = name_or_bits.strip().lower()
        if key and not set(key) - {"0", "1"}:
            if length % len(key):
                raise ValueError(f"bit pattern of length {len(key)} does not divide 2^{n} = {length}")
            return np.array([c == "1" for c in key * (length // len(key))])
        if key in NAMED_TARGETS:
            x = boolean_inputs(n).numpy().astype(np.int64)
            return np.asarray(NAMED_TARGETS[key](x), dtype=bool)
        if key == "random":
            return np.random.default_rng(seed).random(length) < 0.5
        if key.startswith("lz:"):
            try:
                value = float(key[3:])
            except ValueError:
                raise ValueError(f"bad LZ target {name_or_bits!r}; use e.g. 'lz:35'") from None
            return random_target_with_lz(value, n, seed=seed)
        raise ValueError(f"unknown target {name_or_bits!r}; allowed: a 0/1 pattern whose length divides {length}, "
                         f"{sorted(NAMED_TARGETS)}, 'random', 'lz:<K>'")
    arr = as_bits(name_or_bits, name="target")
    if arr.shape != (1, length):
        raise ValueError(f"target must have 2^{n} = {length} bits, got shape {tuple(np.shape(name_or_bits))}")
    return arr[0]


@dataclass(frozen=True)
class BooleanSplit:
    """Train set S and test set E of the Boolean system. Index arrays are sorted, so a function on E is a bit
    string in input order. ``x_*``: float tensors ``[|S|, n]``/``[|E|, n]``; ``y_*``: float tensors in {0, 1}."""

    n: int
    target: np.ndarray          # bool [2^n]
    train_idx: np.ndarray       # int64 [|S|], sorted
    test_idx: np.ndarray        # int64 [|E|], sorted
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def n_train(self) -> int:
        return len(self.train_idx)

    @property
    def n_test(self) -> int:
        return len(self.test_idx)

    def full_function(self, f_test) -> np.ndarray:
        """Functions on E (``[m, |E|]`` or ``[|E|]``) completed with S's labels → ``bool [m, 2ⁿ]`` in input order
        (the string whose LZ complexity the paper plots)."""
        bits = as_bits(f_test, self.n_test, name="f_test")
        out = np.empty((bits.shape[0], 2**self.n), dtype=bool)
        out[:, self.train_idx] = self.target[self.train_idx]
        out[:, self.test_idx] = bits
        return out


def boolean_split(target, n_train: int, seed: int = 0, *, n: int = 7,
                  device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> BooleanSplit:
    """S: ``n_train`` inputs drawn uniformly without replacement (seeded); E: all the other 2ⁿ − n_train inputs.

    ``target`` is anything :func:`boolean_target` accepts (its ``seed`` is the same ``seed``).
    """
    n = _check_n(n)
    length = 2**n
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or not 0 <= n_train < length:
        raise ValueError(f"n_train must be an int in [0, {length - 1}] so that E is not empty, got {n_train!r}")
    t = boolean_target(target, n, seed=seed)
    perm = np.random.default_rng(seed).permutation(length)
    train_idx = np.sort(perm[:n_train]).astype(np.int64)
    test_idx = np.sort(perm[n_train:]).astype(np.int64)
    x = boolean_inputs(n, dtype=dtype, device=device)
    y = torch.as_tensor(t, dtype=dtype, device=x.device)
    tr, te = torch.as_tensor(train_idx, device=x.device), torch.as_tensor(test_idx, device=x.device)
    return BooleanSplit(n=n, target=t, train_idx=train_idx, test_idx=test_idx,
                        x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te])


# --------------------------------------------------------------------------------------------------------------------
# the authors' targets and train sets
# --------------------------------------------------------------------------------------------------------------------
MINGARD_MASKS = {
    "A": "01100010000011100000110101000000101100001010000101001000000110010100000000010000000000000001000000101001"
         "100000010010000101000000",
    "B": "01001100010100101100001000100010000010010011000010000010001010010000000001100000010000100000000000100010"
         "010000011000100011000000",
}
"""The authors' two train masks on the 128 inputs (bit i = 1: input i is in S); 32 ones each."""

MINGARD_TARGETS = {
    1: "1000100000000000000000000000000000001000000000000000000000000000000000000000000000000000000000000000000000"
       "0000000000000000000000",
    2: "1111111111111111111111111111111101011111011111110111111101111111111111111111111111111111111111111111111111"
       "1111111111111111111111",
    3: "1111111111111111111111111111111101110111011101110111011101110111111111111111111111111111111111111111111111"
       "1111111111111111111111",
    4: "1111111111111111111111111111111101010101010101010101010101010101111111111111111111111111111111110101010101"
       "0101010101010101010101",
    5: "0011001100110011000000000000000000110011001100110000000000000000000000000000000000000000000000000000000000"
       "0000000000000000000000",
    6: "0000111100001111000011110000111100001111000011110000111100001111111111111111111111111111111111111111111111"
       "1111111111111111111111",
    7: "0011" * 32,
}
"""The authors' seven Boolean targets (n = 7), numbered 1–7 in the order of their analysis script."""

MINGARD_TARGET_MASK = {1: "B", 2: "B", 3: "B", 4: "B", 5: "B", 6: "B", 7: "A"}
"""The mask the authors trained each target on."""


def _exact_bits(bits, length: int, name: str) -> np.ndarray:
    """``bits`` as ``bool [length]``: a string of exactly ``length`` characters '0'/'1', or an array of ``length``
    values in {0, 1} (or bool); anything else is an error naming what was given."""
    if isinstance(bits, str):
        bad = sorted(set(bits) - {"0", "1"})
        if len(bits) != length or bad:
            what = f"characters {bad[:5]}" if bad else f"length {len(bits)}"
            raise ValueError(f"{name} must be a string of {length} '0'/'1' characters, got {what}: {bits[:40]!r}…")
        return np.frombuffer(bits.encode(), dtype=np.uint8) == ord("1")
    arr = np.asarray(bits)
    if arr.shape != (length,) or not (arr.dtype == bool or np.isin(arr, (0, 1)).all()):
        raise ValueError(f"{name} must be {length} bits in {{0, 1}}, got an array of shape {arr.shape} "
                         f"and dtype {arr.dtype}")
    return arr.astype(bool)


def mask_split(target, mask, *, n: int = 7, n_train: int | None = None, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> BooleanSplit:
    """S and E from a train ``mask`` (2ⁿ bits, 1 = in S) and a ``target`` (exactly 2ⁿ bits, '0'/'1' string or
    array), both indexed in :func:`boolean_inputs` order; S and E in input order. ``n_train``, if given, is the
    number of ones the mask must have. Errors: a mask or target of the wrong length or with other characters, a
    mask of the wrong weight, or one that leaves S or E empty."""
    n = _check_n(n)
    length = 2**n
    t = _exact_bits(target, length, "target")
    m = _exact_bits(mask, length, "mask")
    weight = int(m.sum())
    if n_train is not None and weight != n_train:
        raise ValueError(f"mask must have {n_train} ones (|S| = {n_train}), got {weight}")
    if not 0 < weight < length:
        raise ValueError(f"mask has {weight} ones of {length}; S and E must both be non-empty")
    x = boolean_inputs(n, dtype=dtype, device=device)
    y = torch.as_tensor(t, dtype=dtype, device=x.device)
    train_idx, test_idx = np.flatnonzero(m).astype(np.int64), np.flatnonzero(~m).astype(np.int64)
    tr, te = torch.as_tensor(train_idx, device=x.device), torch.as_tensor(test_idx, device=x.device)
    return BooleanSplit(n=n, target=t, train_idx=train_idx, test_idx=test_idx,
                        x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te])


def mask_problem(mask) -> str | None:
    """None when ``mask`` names one of the authors' train sets for :func:`mingard_split`: "A" or "B" (either case)
    or a 128-character '0'/'1' string with 32 ones; otherwise what is wrong with it, for an error message."""
    if not isinstance(mask, str):
        return f"not a string ({type(mask).__name__})"
    if mask.upper() in MINGARD_MASKS:
        return None
    if len(mask) != 128 or set(mask) - {"0", "1"}:
        return "neither 'A', 'B' nor a 128-character '0'/'1' string"
    return None if mask.count("1") == 32 else f"a mask with {mask.count('1')} ones, not 32 (|S| = 32)"


def mingard_split(target: int | str = 7, mask: str | None = None, *, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> BooleanSplit:
    """The authors' Boolean set-up (n = 7, |S| = 32): ``target`` a number 1–7 of :data:`MINGARD_TARGETS` (7 is
    0011…, the paper's headline target) or a 128-bit '0'/'1' string; ``mask`` "A", "B" or a 128-bit string with
    32 ones, by default the mask the authors used with that target (:data:`MINGARD_TARGET_MASK`; a string target
    needs an explicit mask)."""
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if int(target) not in MINGARD_TARGETS:
            raise ValueError(f"target number must be one of {sorted(MINGARD_TARGETS)}, got {target!r}")
        bits, default_mask = MINGARD_TARGETS[int(target)], MINGARD_TARGET_MASK[int(target)]
    elif isinstance(target, str):
        bits, default_mask = target, None
    else:
        raise ValueError(f"target must be a number 1–7 or a 128-bit '0'/'1' string, got {target!r}")
    mask = default_mask if mask is None else mask
    if mask is None:
        raise ValueError("a target given as a bit string needs a mask: 'A', 'B' or a 128-bit string with 32 ones")
    if isinstance(mask, str) and mask.upper() in MINGARD_MASKS:
        mask = MINGARD_MASKS[mask.upper()]
    return mask_split(bits, mask, n=7, n_train=32, device=device, dtype=dtype)
