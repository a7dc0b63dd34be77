"""Candidate pairs between a query site and the reference, and operations per query.

Alignment scores only *candidate* pairs: for each query code a few hundred reference
codes at most, never the full ``n_query × n_reference`` product. A :class:`PairSet`
holds them as parallel arrays sorted by query, then reference, with segment pointers,
so that every per-query operation (softmax, best candidate, top-k) is a segment
reduction over a 1-D array of length ``P`` (the number of pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "PairSet",
    "build_pairs",
    "mutual_best",
    "segment_logsumexp",
    "segment_max",
    "segment_softmax",
    "segment_topk",
]


@dataclass(frozen=True)
class PairSet:
    """Candidate (query, reference) pairs, sorted by query then reference.

    Attributes
    ----------
    query, reference : ndarray, shape (P,), int64
        Row indices into the query and reference code tables.
    ptr : ndarray, shape (n_query + 1,), int64
        Pairs of query ``i`` are ``ptr[i]:ptr[i + 1]``.
    n_query, n_reference : int
    """

    query: np.ndarray
    reference: np.ndarray
    ptr: np.ndarray
    n_query: int
    n_reference: int

    def __len__(self) -> int:
        return len(self.query)

    @property
    def sizes(self) -> np.ndarray:
        """Candidates per query, shape (n_query,)."""
        return np.diff(self.ptr)

    def find(self, query: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Pair index of each (query, reference), ``-1`` where it is not a candidate.

        Parameters
        ----------
        query, reference : ndarray, shape (m,)

        Returns
        -------
        ndarray, shape (m,), int64
        """
        key = self.query * self.n_reference + self.reference
        want = np.asarray(query, np.int64) * self.n_reference + np.asarray(reference, np.int64)
        if len(key) == 0:
            return np.full(len(want), -1, np.int64)
        pos = np.minimum(np.searchsorted(key, want), len(key) - 1)
        return np.where(key[pos] == want, pos, -1).astype(np.int64)

    def subset(self, keep: np.ndarray) -> PairSet:
        """The pairs where ``keep`` (shape (P,), bool) is true, order kept."""
        q, r = self.query[keep], self.reference[keep]
        return PairSet(q, r, _pointers(q, self.n_query), self.n_query, self.n_reference)


def _pointers(query: np.ndarray, n_query: int) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(np.bincount(query, minlength=n_query)))).astype(np.int64)


def build_pairs(queries: list[np.ndarray], references: list[np.ndarray], n_query: int, n_reference: int) -> PairSet:
    """Union of candidate lists (duplicates removed), sorted by query then reference.

    Parameters
    ----------
    queries, references : list of ndarray
        Parallel arrays of pairs from each source (views, anchors); any shapes,
        flattened.
    n_query, n_reference : int

    Returns
    -------
    PairSet
    """
    q = np.concatenate([np.asarray(a, np.int64).ravel() for a in queries]) if queries else np.zeros(0, np.int64)
    r = np.concatenate([np.asarray(a, np.int64).ravel() for a in references]) if references else np.zeros(0, np.int64)
    key = np.unique(q * n_reference + r)
    q, r = key // n_reference, key % n_reference
    return PairSet(q, r, _pointers(q, n_query), n_query, n_reference)


def segment_max(values: np.ndarray, ptr: np.ndarray, empty: float = -np.inf) -> np.ndarray:
    """Maximum of each segment ``values[ptr[i]:ptr[i+1]]``; ``empty`` for empty ones.

    Returns
    -------
    ndarray, shape (len(ptr) - 1,)
    """
    out = np.full(len(ptr) - 1, empty, dtype=np.float64)
    nonempty = np.flatnonzero(np.diff(ptr) > 0)
    if len(nonempty) and len(values):
        out[nonempty] = np.maximum.reduceat(values, ptr[nonempty])
    return out


def segment_logsumexp(values: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """``log Σ exp`` of each segment (``-inf`` for empty ones), shape (len(ptr) - 1,)."""
    m = segment_max(values, ptr)
    seg = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    finite_m = np.where(np.isfinite(m), m, 0.0)
    s = np.bincount(seg, weights=np.exp(values - finite_m[seg]), minlength=len(ptr) - 1)
    with np.errstate(divide="ignore"):
        return np.where(np.diff(ptr) > 0, finite_m + np.log(s), -np.inf)


def segment_softmax(values: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """Softmax within each segment, shape (P,), float64."""
    lse = segment_logsumexp(values, ptr)
    seg = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    return np.exp(values - lse[seg])


def segment_topk(values: np.ndarray, pairs: PairSet, k: int) -> np.ndarray:
    """Pair indices of each query's ``k`` best pairs, best first (ties: lower reference row).

    Parameters
    ----------
    values : ndarray, shape (P,)
    pairs : PairSet
    k : int

    Returns
    -------
    ndarray, shape (n_query, k), int64
        ``-1`` after the last pair of a query with fewer than ``k`` candidates.
    """
    order = np.lexsort((pairs.reference, -values, pairs.query))
    slot = np.arange(k)[None, :]
    take = pairs.ptr[:-1, None] + slot
    ok = slot < pairs.sizes[:, None]
    if not len(order):
        return np.full(take.shape, -1, np.int64)
    return np.where(ok, order[np.minimum(take, len(order) - 1)], -1)


def mutual_best(values: np.ndarray, pairs: PairSet, min_margin: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs that are the best candidate of their query and the best query of their
    reference (among the queries that hold it as a candidate), with the query's margin
    of best over second best at least ``min_margin``. Ties go to the lower row.

    Parameters
    ----------
    values : ndarray, shape (P,)
        Pair scores; ``-inf`` excludes a pair.
    pairs : PairSet
    min_margin : float

    Returns
    -------
    rows, cols, margin : ndarray, shape (m,)
        Query rows, reference rows, margins (``inf`` for a single finite candidate).
    """
    n_q = pairs.n_query
    if len(pairs) == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0)
    order_q = np.lexsort((pairs.reference, -values, pairs.query))
    sizes = pairs.sizes
    has = sizes > 0
    first = order_q[pairs.ptr[:-1][has]]
    second_val = np.full(n_q, -np.inf)
    two = sizes >= 2
    second_val[two] = values[order_q[pairs.ptr[:-1][two] + 1]]
    best_of_q = np.full(n_q, -1, np.int64)
    best_of_q[np.flatnonzero(has)] = first
    order_r = np.lexsort((pairs.query, -values, pairs.reference))
    ref_sorted = pairs.reference[order_r]
    starts = np.flatnonzero(np.concatenate(([True], ref_sorted[1:] != ref_sorted[:-1])))
    best_of_r = np.full(pairs.n_reference, -1, np.int64)
    best_of_r[ref_sorted[starts]] = order_r[starts]
    cand = best_of_q[has]
    mutual = best_of_r[pairs.reference[cand]] == cand
    cand = cand[mutual & np.isfinite(values[cand])]
    rows, cols = pairs.query[cand], pairs.reference[cand]
    sv = second_val[rows]
    with np.errstate(invalid="ignore"):
        margin = np.where(np.isfinite(sv), values[cand] - sv, np.inf)
    keep = margin >= min_margin
    return rows[keep], cols[keep], margin[keep]
