"""Vectorised sampling and indexing over ragged (CSR) arrays.

A ragged array is a flat array cut into segments by pointers ``ptr`` (segment ``i`` is
``flat[ptr[i]:ptr[i + 1]]``); the world's GEM targets, a patient's visits and the draws
of a visit are stored this way.
"""

from __future__ import annotations

import numpy as np


def sample_segments(
    weights: np.ndarray, ptr: np.ndarray, rows: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Draw one entry of each requested segment of a ragged weight array.

    Parameters
    ----------
    weights : ndarray of float, shape (n_entries,)
        Non-negative weights; segment ``i`` is ``weights[ptr[i]:ptr[i + 1]]`` and must
        have a positive sum.
    ptr : ndarray of int, shape (n_segments + 1,)
        Segment boundaries (CSR pointers).
    rows : ndarray of int, shape (n,)
        Segment to draw from, per draw.
    u : ndarray of float, shape (n,)
        Uniform variates in [0, 1).

    Returns
    -------
    ndarray of int, shape (n,)
        Flat indices into ``weights``; draw ``j`` lies in segment ``rows[j]`` with
        probability proportional to its weight (inverse-CDF sampling, vectorised).
    """
    lengths = np.diff(ptr)
    seg = segment_ids(lengths)
    cum = np.cumsum(weights, dtype=np.float64)
    before = np.concatenate(([0.0], cum))[ptr[:-1]]
    within = cum - before[seg]
    total = within[ptr[1:] - 1]
    key = seg + within / total[seg]
    key[ptr[1:] - 1] = np.arange(1, len(lengths) + 1)  # exact segment ends
    idx = np.searchsorted(key, rows + u, side="right")
    return np.minimum(idx, ptr[rows + 1] - 1)


def sample_dense(probs: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw a column of ``probs[rows[j]]`` for every ``j`` (rows need not be normalised).

    Parameters
    ----------
    probs : ndarray of float, shape (n_rows, n_cols)
    rows : ndarray of int, shape (n,)
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int, shape (n,)
    """
    n_rows, n_cols = probs.shape
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    key = (cdf + np.arange(n_rows)[:, None]).ravel()
    idx = np.searchsorted(key, rows + rng.random(len(rows)), side="right")
    return np.minimum(idx - rows * n_cols, n_cols - 1)


def segment_ptr(lengths: np.ndarray) -> np.ndarray:
    """CSR pointers of segments of the given lengths, shape (n_segments + 1,).

    Examples
    --------
    >>> segment_ptr(np.array([2, 0, 3])).tolist()
    [0, 2, 2, 5]
    """
    return np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)


def segment_starts(lengths: np.ndarray) -> np.ndarray:
    """Start offset of each segment in a concatenation, shape (n_segments,)."""
    return segment_ptr(lengths)[:-1]


def segment_ids(lengths: np.ndarray) -> np.ndarray:
    """Segment of every element of a concatenation, shape (lengths.sum(),).

    Examples
    --------
    >>> segment_ids(np.array([2, 0, 3])).tolist()
    [0, 0, 2, 2, 2]
    """
    return np.repeat(np.arange(len(lengths)), lengths)


def within_segment(lengths: np.ndarray) -> np.ndarray:
    """Position of every element inside its segment, shape (lengths.sum(),)."""
    total = int(lengths.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(segment_starts(lengths), lengths)
