"""Functions as labellings: counts of bit strings, stored packed.

A *function* here is the labelling a model gives a fixed, ordered test set E: a bit string of length ``n_bits = |E|``
(bit j = 1 when the logit on the j-th test input is > 0). :class:`FunctionCounts` holds how many times each distinct
labelling was seen (by SGD runs or by networks sampled from the prior), merges shards exactly, and answers the
questions the chapter asks: probabilities, top-k mass, errors against the true labels, entropy.

Storage. ``keys`` is a ``uint8`` array ``[k, ceil(n_bits / 8)]`` of packed bits, ``np.packbits`` order (big-endian
within a byte): bit j of a function is bit ``7 - j % 8`` of byte ``j // 8``; the padding bits of the last byte are
0. ``counts`` is an ``int64`` array ``[k]``. The two are kept *canonical*: keys distinct, rows sorted by count
descending and ties by key ascending (bytewise), so two objects holding the same multiset are equal field by field
whatever order the rows arrived or the shards were merged in.

Input bits may be ``bool``, integers/floats in {0, 1}, or in {−1, +1} (−1 → 0), as numpy arrays or torch tensors
(any device). Everything is vectorised: packing, counting (a sort of the packed rows viewed as one opaque ``void``
item each) and merging (``np.add.reduceat`` over equal keys, exact in int64); no Python loop over rows.

    >>> fc = FunctionCounts.from_bits([[0, 1, 1], [0, 1, 1], [1, 0, 0]])
    >>> fc.most_common(2)
    [('011', 2), ('100', 1)]
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sgdbayes.paths import atomic_write_bytes

__all__ = ["FunctionCounts", "FunctionCountsError", "as_bits", "pack_bits"]

_FORMAT = "sgdbayes.FunctionCounts"
_VERSION = 1
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


class FunctionCountsError(ValueError):
    """A saved FunctionCounts file is missing, corrupt or inconsistent."""


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_bits(x: Any, n_bits: int | None = None, *, name: str = "bits") -> np.ndarray:
    """Validate ``x`` and return it as a ``bool`` array ``[m, n_bits]`` (a 1-D input is one row).

    Accepted values: ``bool``; numbers all in {0, 1}; numbers all in {−1, +1} (−1 → False). Raises ``ValueError``
    naming the bad shape, width or values, ``TypeError`` for non-numeric input.
    """
    arr = _to_numpy(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D [n_bits] or 2-D [m, n_bits], got shape {tuple(arr.shape)}")
    if n_bits is not None and arr.shape[1] != n_bits:
        raise ValueError(f"{name} has width {arr.shape[1]}, expected n_bits = {n_bits}")
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be bool or numeric, got dtype {arr.dtype}")
    if arr.size == 0:
        return arr.astype(bool)
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf; allowed values are {{0, 1}} or {{-1, +1}}")
    zero_one = (arr == 0) | (arr == 1)
    if zero_one.all():
        return arr == 1
    pm_one = (arr == -1) | (arr == 1)
    if pm_one.all():
        return arr == 1
    valid = zero_one | pm_one
    if not valid.all():
        bad = np.unique(arr[~valid])[:5].tolist()
        raise ValueError(f"{name} must be binary: all values in {{0, 1}} or all in {{-1, +1}}; got values such as {bad}")
    raise ValueError(f"{name} must be binary: all values in {{0, 1}} or all in {{-1, +1}}; got 0 and -1 mixed")


def pack_bits(bits: Any, n_bits: int | None = None) -> np.ndarray:
    """Validated bits ``[m, n_bits]`` → packed ``uint8`` rows ``[m, ceil(n_bits/8)]`` (``np.packbits`` order)."""
    return np.packbits(as_bits(bits, n_bits), axis=1)


def _void(keys: np.ndarray) -> np.ndarray:
    """View each packed row as one opaque item (bytewise comparison), shape [k]."""
    keys = np.ascontiguousarray(keys)
    return keys.view(np.dtype((np.void, keys.shape[1]))).reshape(keys.shape[0])


def _canonical(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the counts of equal keys; sort by count descending, ties by key ascending."""
    if keys.shape[0] == 0:
        return keys.reshape(0, keys.shape[1]).astype(np.uint8), np.zeros(0, dtype=np.int64)
    v = _void(keys)
    order = np.argsort(v, kind="stable")
    vs = v[order]
    starts = np.concatenate(([0], np.flatnonzero(vs[1:] != vs[:-1]) + 1))
    summed = np.add.reduceat(counts[order].astype(np.int64, copy=False), starts)
    ukeys = keys[order[starts]]
    by_count = np.argsort(-summed, kind="stable")  # keys already ascending → ties broken by key
    return np.ascontiguousarray(ukeys[by_count]), summed[by_count]


class FunctionCounts:
    """Counts of labellings (bit strings of length ``n_bits``), stored as packed bits; see the module docstring.

    Attributes: ``n_bits``; ``keys`` (``uint8 [k, ceil(n_bits/8)]``, packed, canonical order); ``counts``
    (``int64 [k]``, descending, ties by key); ``total`` (sum of counts, an ``int``); ``n_distinct`` (k).
    """

    __slots__ = ("n_bits", "keys", "counts", "_key_order")

    def __init__(self, n_bits: int, keys: np.ndarray | None = None, counts: np.ndarray | None = None):
        if isinstance(n_bits, bool) or not isinstance(n_bits, (int, np.integer)) or n_bits < 1:
            raise ValueError(f"n_bits must be a positive int, got {n_bits!r}")
        self.n_bits = int(n_bits)
        nbytes = (self.n_bits + 7) // 8
        if keys is None:
            keys = np.zeros((0, nbytes), dtype=np.uint8)
            counts = np.zeros(0, dtype=np.int64)
        keys = np.asarray(keys)
        counts = np.asarray(counts)
        if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != nbytes:
            raise ValueError(f"packed keys must be uint8 [k, {nbytes}] for n_bits = {n_bits}, "
                             f"got {keys.dtype} {tuple(keys.shape)}")
        if counts.ndim != 1 or counts.shape[0] != keys.shape[0]:
            raise ValueError(f"counts must have shape [{keys.shape[0]}], got {tuple(counts.shape)}")
        if not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(f"counts must be integers, got dtype {counts.dtype}")
        if (counts < 0).any():
            raise ValueError(f"counts must be >= 0, got {counts[counts < 0][:5].tolist()}")
        pad = 8 * nbytes - self.n_bits
        if pad and keys.shape[0] and (keys[:, -1] & np.uint8((1 << pad) - 1)).any():
            raise ValueError(f"packed keys have non-zero padding bits beyond n_bits = {n_bits}")
        keep = counts > 0
        self.keys, self.counts = _canonical(keys[keep], counts[keep])
        self._key_order = None

    # ---- construction -------------------------------------------------------------------------------------------
    @classmethod
    def empty(cls, n_bits: int) -> FunctionCounts:
        """No functions counted yet."""
        return cls(n_bits)

    @classmethod
    def from_bits(cls, bits: Any, n_bits: int | None = None) -> FunctionCounts:
        """Counts of the identical rows of ``bits`` (``[m, n_bits]``, bool / {0,1} / {−1,+1}, numpy or torch)."""
        arr = as_bits(bits, n_bits)
        if arr.shape[1] == 0:
            raise ValueError("bits have width 0; a function needs n_bits >= 1")
        return cls(arr.shape[1], np.packbits(arr, axis=1), np.ones(arr.shape[0], dtype=np.int64))

    @classmethod
    def from_packed(cls, keys: Any, n_bits: int, counts: Any = None) -> FunctionCounts:
        """From already packed rows (``uint8 [m, ceil(n_bits/8)]``, ``np.packbits`` order), each counted once or
        ``counts[i]`` times; repeated rows are summed."""
        keys = _to_numpy(keys)
        counts = np.ones(keys.shape[0], dtype=np.int64) if counts is None else _to_numpy(counts).astype(np.int64)
        return cls(n_bits, keys, counts)

    @classmethod
    def merge_all(cls, shards: Iterable[FunctionCounts], n_bits: int | None = None) -> FunctionCounts:
        """Exact merge of many shards in one pass (order-independent)."""
        shards = list(shards)
        if not shards:
            if n_bits is None:
                raise ValueError("merge_all of no shards needs n_bits")
            return cls(n_bits)
        n = shards[0].n_bits if n_bits is None else n_bits
        for s in shards:
            if not isinstance(s, FunctionCounts):
                raise TypeError(f"can only merge FunctionCounts, got {type(s).__name__}")
            if s.n_bits != n:
                raise ValueError(f"cannot merge FunctionCounts with n_bits {s.n_bits} into n_bits {n}")
        return cls(n, np.concatenate([s.keys for s in shards]), np.concatenate([s.counts for s in shards]))

    def update(self, bits: Any) -> None:
        """Add the rows of ``bits`` (``[m, n_bits]``) in place."""
        self._absorb(FunctionCounts.from_bits(bits, self.n_bits))

    def update_packed(self, keys: Any, counts: Any = None) -> None:
        """Add already packed rows in place (see :meth:`from_packed`)."""
        self._absorb(FunctionCounts.from_packed(keys, self.n_bits, counts))

    def _absorb(self, other: FunctionCounts) -> None:
        merged = self.merge(other)
        self.keys, self.counts, self._key_order = merged.keys, merged.counts, None

    def merge(self, other: FunctionCounts) -> FunctionCounts:
        """A new object holding the counts of both (exact; commutative and associative)."""
        return FunctionCounts.merge_all([self, other])

    def __add__(self, other: FunctionCounts) -> FunctionCounts:
        if not isinstance(other, FunctionCounts):
            return NotImplemented
        return self.merge(other)

    def __radd__(self, other: Any) -> FunctionCounts:  # so that sum(shards) works
        if isinstance(other, int) and other == 0:
            return self.copy()
        return NotImplemented

    def copy(self) -> FunctionCounts:
        out = FunctionCounts(self.n_bits)
        out.keys, out.counts = self.keys.copy(), self.counts.copy()
        return out

    # ---- summaries ----------------------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        """Number of labellings counted (a Python int)."""
        return int(self.counts.sum())

    @property
    def n_distinct(self) -> int:
        return int(self.counts.shape[0])

    def __len__(self) -> int:
        return self.n_distinct

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FunctionCounts):
            return NotImplemented
        return (self.n_bits == other.n_bits and np.array_equal(self.keys, other.keys)
                and np.array_equal(self.counts, other.counts))

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"FunctionCounts(n_bits={self.n_bits}, n_distinct={self.n_distinct}, total={self.total})"

    def bits(self, idx: Any = None) -> np.ndarray:
        """Unpacked functions as ``bool``: ``[k, n_bits]`` (all, or rows ``idx`` in canonical order; an int idx
        gives ``[n_bits]``)."""
        keys = self.keys if idx is None else self.keys[idx]
        return np.unpackbits(keys, axis=-1, count=self.n_bits).astype(bool)

    def signs(self, idx: Any = None) -> np.ndarray:
        """Functions as ±1 ``float64`` (the convention of ``sgdbayes.gp``): ``[k, n_bits]``."""
        return np.where(self.bits(idx), 1.0, -1.0)

    def probabilities(self) -> np.ndarray:
        """Empirical probability of each function, ``counts / total`` (``float64 [k]``)."""
        if self.total == 0:
            return np.zeros(0)
        return self.counts / self.total

    def _require_nonempty(self, what: str) -> None:
        if self.total == 0:
            raise ValueError(f"{what} of an empty FunctionCounts (no functions counted)")

    def top_k_mass(self, k: int) -> float:
        """Fraction of all counts held by the ``k`` most frequent functions (k ≥ 0; k > n_distinct gives 1)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"k must be an int >= 0, got {k!r}")
        self._require_nonempty("top_k_mass")
        return float(self.counts[:k].sum() / self.total)

    def errors(self, true_labels: Any) -> np.ndarray:
        """Hamming distance of each function to ``true_labels`` (``[n_bits]``, bool / {0,1} / {−1,+1}): the
        number of test errors, ``int64 [k]``."""
        truth = np.packbits(as_bits(true_labels, self.n_bits, name="true_labels"), axis=1)
        return _POPCOUNT[np.bitwise_xor(self.keys, truth)].sum(axis=1)

    def subset(self, idx: Any) -> FunctionCounts:
        """The functions at rows ``idx`` (indices or a boolean mask over the canonical order) with their counts."""
        idx = np.asarray(idx)
        if idx.dtype == bool and idx.shape != (self.n_distinct,):
            raise ValueError(f"a boolean mask must have shape ({self.n_distinct},), got {idx.shape}")
        return FunctionCounts(self.n_bits, self.keys[idx], self.counts[idx])

    def marginals(self) -> np.ndarray:
        """``P(f_j = 1)`` for each bit j under the empirical distribution, ``float64 [n_bits]``."""
        self._require_nonempty("marginals")
        return (self.probabilities() @ self.bits().astype(np.float64)).astype(np.float64)

    def mean_error(self, true_labels: Any) -> float:
        """Expected fraction of bits that differ from ``true_labels`` (the mean test error) under the empirical
        distribution."""
        self._require_nonempty("mean_error")
        return float(self.probabilities() @ self.errors(true_labels) / self.n_bits)

    def entropy(self) -> float:
        """Plug-in (maximum-likelihood) entropy −Σ p log p of the empirical distribution, in **nats**."""
        self._require_nonempty("entropy")
        p = self.probabilities()
        return float(-(p * np.log(p)).sum())

    def most_common(self, k: int | None = None) -> list[tuple[str, int]]:
        """The ``k`` most frequent functions (all when None) as ``('0110…', count)`` pairs."""
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0):
            raise ValueError(f"k must be an int >= 0 or None, got {k!r}")
        sl = slice(None) if k is None else slice(0, int(k))
        chars = self.bits(sl).astype(np.uint8) + np.uint8(ord("0"))
        strings = np.ascontiguousarray(chars).view(f"S{self.n_bits}").ravel()
        return [(s.decode("ascii"), int(c)) for s, c in zip(strings, self.counts[sl])]

    def to_dict(self) -> dict[str, int]:
        """``{'0110…': count}`` for every function (for small cases and tests)."""
        return dict(self.most_common())

    def lookup(self, bits: Any) -> np.ndarray:
        """Counts of the given functions (``[m, n_bits]`` or one ``[n_bits]``), 0 for unseen: ``int64 [m]``."""
        query = _void(np.packbits(as_bits(bits, self.n_bits), axis=1))
        if self.n_distinct == 0:
            return np.zeros(query.shape[0], dtype=np.int64)
        if self._key_order is None:
            self._key_order = np.argsort(_void(self.keys), kind="stable")
        sorted_keys = _void(self.keys)[self._key_order]
        pos = np.clip(np.searchsorted(sorted_keys, query), 0, self.n_distinct - 1)
        found = sorted_keys[pos] == query
        return np.where(found, self.counts[self._key_order[pos]], 0).astype(np.int64)

    # ---- persistence --------------------------------------------------------------------------------------------
    def __store_state__(self) -> dict[str, Any]:
        """Plain data for :mod:`sgdbayes.store` (the result cache and shard files)."""
        return {"n_bits": self.n_bits, "keys": self.keys, "counts": self.counts.astype("<i8")}

    @classmethod
    def __from_store_state__(cls, state: dict[str, Any]) -> FunctionCounts:
        """Inverse of :meth:`__store_state__`; rows must already be canonical (as stored)."""
        try:
            out = cls(state["n_bits"], state["keys"], state["counts"])
        except (ValueError, KeyError, TypeError) as err:
            raise FunctionCountsError(f"inconsistent stored FunctionCounts ({err})") from None
        if not (np.array_equal(out.keys, state["keys"]) and np.array_equal(out.counts, state["counts"])):
            raise FunctionCountsError("stored FunctionCounts rows are not in canonical form")
        return out

    def _checksum(self) -> str:
        h = hashlib.sha256()
        h.update(str(self.n_bits).encode())
        h.update(self.keys.tobytes())
        h.update(self.counts.astype("<i8").tobytes())
        return h.hexdigest()

    def to_bytes(self) -> bytes:
        header = json.dumps({"format": _FORMAT, "version": _VERSION, "n_bits": self.n_bits,
                             "sha256": self._checksum()})
        buf = io.BytesIO()
        np.savez(buf, header=np.array(header), keys=self.keys, counts=self.counts.astype("<i8"))
        return buf.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write atomically (``.npz`` with a header and a SHA-256 of the contents); returns the path."""
        path = Path(path)
        atomic_write_bytes(path, self.to_bytes())
        return path

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> FunctionCounts:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                header = json.loads(str(z["header"][()]))
                keys, counts = z["keys"], z["counts"]
        except Exception as err:  # noqa: BLE001 - any parse failure is a corrupt file
            raise FunctionCountsError(f"{source}: not a readable FunctionCounts file ({err})") from None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise FunctionCountsError(f"{source}: not a FunctionCounts file (header {header!r})")
        if header.get("version") != _VERSION:
            raise FunctionCountsError(f"{source}: unsupported version {header.get('version')!r}, "
                                      f"this library reads version {_VERSION}")
        try:
            out = cls(header["n_bits"], keys, counts)
        except (ValueError, KeyError, TypeError) as err:
            raise FunctionCountsError(f"{source}: inconsistent contents ({err})") from None
        if not (np.array_equal(out.keys, keys) and np.array_equal(out.counts, counts)):
            raise FunctionCountsError(f"{source}: rows are not in canonical form (duplicated, zero or unsorted)")
        if out._checksum() != header.get("sha256"):
            raise FunctionCountsError(f"{source}: checksum mismatch (file corrupt)")
        return out

    @classmethod
    def load(cls, path: str | Path) -> FunctionCounts:
        """Read a file written by :meth:`save`; a missing, corrupt or inconsistent file raises
        :class:`FunctionCountsError` (a ``ValueError``) naming the path and the problem."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise FunctionCountsError(f"{path}: cannot read FunctionCounts file ({err})") from None
        return cls.from_bytes(data, source=str(path))
