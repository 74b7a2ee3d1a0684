"""Posterior probabilities of functions from many MCMC chains, with between-chain standard errors.

The draws of chain c are labellings of the test set E, optionally weighted (importance weights ``w_ct``, e.g. from
the τ-posterior to the 0–1 posterior). A function's probability is the ratio estimator

    p̂(f) = Σ_c a_c(f) / Σ_c b_c,   a_c(f) = Σ_t w_ct 1{f_ct = f},   b_c = Σ_t w_ct,

and, treating the C chains as independent replicates (each started independently and past its warm-up), its
standard error is the delta-method one of a ratio of means,
``se² = Σ_c (a_c − p̂ b_c)² / (C (C − 1) b̄²)``. It accounts for the autocorrelation within chains without modelling
it — valid when every chain has mixed, which R̂ checks separately. The same estimator gives each bit's posterior
marginal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sgdbayes.functions import FunctionCounts, as_bits

__all__ = ["ChainFunctions", "chain_functions", "weighted_function_table"]


def _void(keys: np.ndarray) -> np.ndarray:
    keys = np.ascontiguousarray(keys)
    return keys.view(np.dtype((np.void, keys.shape[1]))).reshape(keys.shape[0])


def _ratio_se(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ratio estimates ``Σa/Σb`` and their delta-method standard errors over the leading (chain) axis."""
    C = b.shape[0]
    p = a.sum(0) / b.sum()
    if C < 2:
        return p, np.full_like(p, np.nan)
    resid = a - p[None] * b.reshape((C,) + (1,) * (a.ndim - 1))
    se = np.sqrt((resid**2).sum(0) / (C * (C - 1))) / b.mean()
    return p, se


@dataclass
class ChainFunctions:
    """Distinct functions seen by C chains: ``keys [K, ⌈n_bits/8⌉]`` (packed, ``np.packbits`` order, sorted by
    probability, descending), ``chain_mass [C, K]`` (a_c(f)), ``chain_weight [C]`` (b_c), ``marginal_mass
    [C, n_bits]`` (Σ_t w_ct f_ct,j) and ``n_draws`` (draws per chain)."""

    n_bits: int
    keys: np.ndarray
    chain_mass: np.ndarray
    chain_weight: np.ndarray
    marginal_mass: np.ndarray
    n_draws: int

    @property
    def n_distinct(self) -> int:
        return int(self.keys.shape[0])

    @property
    def n_chains(self) -> int:
        return int(self.chain_weight.shape[0])

    def probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """``(p̂ [K], se [K])``."""
        return _ratio_se(self.chain_mass, self.chain_weight)

    def marginals(self) -> tuple[np.ndarray, np.ndarray]:
        """``(P(f_j = 1) [n_bits], se [n_bits])``."""
        return _ratio_se(self.marginal_mass, self.chain_weight)

    def bits(self) -> np.ndarray:
        return np.unpackbits(self.keys, axis=1, count=self.n_bits).astype(bool)

    def lookup(self, functions) -> tuple[np.ndarray, np.ndarray]:
        """``(p̂, se)`` of the given functions (``FunctionCounts`` rows or bits ``[m, n_bits]``); 0 and NaN for a
        function no chain visited."""
        keys = functions.keys if isinstance(functions, FunctionCounts) else np.packbits(
            as_bits(functions, self.n_bits), axis=1)
        p, se = self.probabilities()
        out_p, out_se = np.zeros(keys.shape[0]), np.full(keys.shape[0], np.nan)
        if self.n_distinct == 0 or keys.shape[0] == 0:
            return out_p, out_se
        mine = _void(self.keys)
        order = np.argsort(mine)
        q = _void(keys)
        pos = np.clip(np.searchsorted(mine[order], q), 0, self.n_distinct - 1)
        found = mine[order][pos] == q
        out_p[found] = p[order[pos[found]]]
        out_se[found] = se[order[pos[found]]]
        return out_p, out_se

    def to_counts(self) -> FunctionCounts:
        """Unweighted visit counts (only meaningful without importance weights)."""
        counts = np.rint(self.chain_mass.sum(0)).astype(np.int64)
        return FunctionCounts.from_packed(self.keys, self.n_bits, counts)


def chain_functions(bits, log_weights=None) -> ChainFunctions:
    """Summarise draws ``bits [C, T, n_bits]`` (bool) with optional ``log_weights [C, T]`` (−inf = weight 0; the
    weights are normalised by their overall maximum, so only their ratios matter)."""
    bits = np.asarray(bits)
    if bits.ndim != 3 or bits.dtype != np.bool_:
        raise ValueError(f"bits must be a bool array [chains, draws, n_bits], got {bits.dtype} {bits.shape}")
    C, T, n = bits.shape
    if log_weights is None:
        w = np.ones((C, T))
    else:
        lw = np.asarray(log_weights, dtype=np.float64)
        if lw.shape != (C, T):
            raise ValueError(f"log_weights must have shape {(C, T)}, got {lw.shape}")
        if np.isnan(lw).any() or np.isposinf(lw).any():
            raise ValueError("log_weights must be finite or -inf")
        if not np.isfinite(lw).any():
            raise ValueError("every draw has weight 0 (log weight -inf): no draw is in the target's support")
        w = np.exp(lw - lw[np.isfinite(lw)].max())
    packed = np.packbits(bits, axis=2).reshape(C * T, -1)
    v = _void(packed)
    uniq, inverse = np.unique(v, return_inverse=True)
    K = uniq.shape[0]
    mass = np.zeros((C, K))
    np.add.at(mass, (np.repeat(np.arange(C), T), inverse.ravel()), w.ravel())
    keys = np.ascontiguousarray(uniq.view(np.uint8).reshape(K, packed.shape[1]))
    keep = mass.sum(0) > 0
    keys, mass = keys[keep], mass[:, keep]
    order = np.lexsort((np.arange(keys.shape[0]), -mass.sum(0)))
    marg = np.einsum("ct,ctj->cj", w, bits.astype(np.float64))
    return ChainFunctions(n_bits=n, keys=keys[order], chain_mass=mass[:, order], chain_weight=w.sum(1),
                          marginal_mass=marg, n_draws=T)


def weighted_function_table(bits, weights) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``bits [m, n_bits]`` (bool) with their summed ``weights [m]``: ``(keys, mass)`` sorted by
    mass, descending (packed keys as in :class:`ChainFunctions`)."""
    bits = np.asarray(bits, dtype=bool)
    w = np.asarray(weights, dtype=np.float64)
    packed = np.packbits(bits, axis=1)
    uniq, inverse = np.unique(_void(packed), return_inverse=True)
    mass = np.bincount(inverse.ravel(), weights=w, minlength=uniq.shape[0])
    keys = np.ascontiguousarray(uniq.view(np.uint8).reshape(uniq.shape[0], packed.shape[1]))
    order = np.argsort(-mass, kind="stable")
    return keys[order], mass[order]
