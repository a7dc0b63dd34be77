"""Nearest-neighbour retrieval with CSLS hubness correction, in row chunks."""

from __future__ import annotations

import numpy as np


def mean_topk_similarity(a: np.ndarray, b: np.ndarray, k: int, chunk: int = 4096) -> np.ndarray:
    """Mean cosine similarity of each row of ``a`` to its ``k`` nearest rows of ``b``.

    Parameters
    ----------
    a : ndarray, shape (n_a, d);  b : ndarray, shape (n_b, d)
        ℓ2-normalised rows.
    k : int

    Returns
    -------
    ndarray, shape (n_a,)
    """
    k = max(1, min(k, b.shape[0]))
    out = np.empty(a.shape[0], dtype=np.float32)
    for s in range(0, a.shape[0], chunk):
        sim = a[s : s + chunk] @ b.T
        part = np.partition(sim, sim.shape[1] - k, axis=1)[:, -k:]
        out[s : s + chunk] = part.mean(axis=1)
    return out


def csls(sim: np.ndarray, r_query: np.ndarray, r_ref: np.ndarray) -> np.ndarray:
    r"""Cross-domain similarity local scaling (Conneau et al. 2018).

    .. math:: \mathrm{CSLS}(q, c) = 2\cos(q, c) - r_{\mathrm{ref}}(q) - r_{\mathrm{query}}(c)

    where :math:`r_{\mathrm{ref}}(q)` is the mean similarity of ``q`` to its k nearest
    reference items and :math:`r_{\mathrm{query}}(c)` that of ``c`` to its k nearest
    queries. Hubs (items close to everything) are penalised.

    Parameters
    ----------
    sim : ndarray, shape (n_q, n_r)
    r_query : ndarray, shape (n_q,)
        Mean top-k similarity of each query to the reference set.
    r_ref : ndarray, shape (n_r,)
        Mean top-k similarity of each reference item to the query set.
    """
    return 2.0 * sim - r_query[:, None] - r_ref[None, :]


def csls_from_similarity(sim: np.ndarray, k: int) -> np.ndarray:
    """CSLS of a full similarity matrix (n_q, n_r): neighbourhoods of size ``k`` taken
    along its rows (query → reference) and its columns (reference → query)."""
    kq, kr = max(1, min(k, sim.shape[1])), max(1, min(k, sim.shape[0]))
    r_query = -np.partition(-sim, kq - 1, axis=1)[:, :kq].mean(axis=1)
    r_ref = -np.partition(-sim, kr - 1, axis=0)[:kr].mean(axis=0)
    return csls(sim, r_query, r_ref)


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` best columns per row, best first, ties by index.

    Returns
    -------
    (ndarray (n, k) int64, ndarray (n, k) float32)
    """
    k = min(k, scores.shape[1])
    idx = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
    vals = np.take_along_axis(scores, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")  # stable: ties keep index order
    idx = np.take_along_axis(idx, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)


def mutual_nearest(scores: np.ndarray, min_margin: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j) that are each other's best match, with the margin of row i's best
    over its second best at least ``min_margin``.

    Returns
    -------
    (rows (m,), cols (m,), margin (m,))
    """
    best_c = scores.argmax(axis=1)
    best_r = scores.argmax(axis=0)
    rows = np.flatnonzero(best_r[best_c] == np.arange(scores.shape[0]))
    cols = best_c[rows]
    if scores.shape[1] > 1:
        top2 = -np.partition(-scores[rows], 1, axis=1)[:, :2]
        with np.errstate(invalid="ignore"):  # -inf - -inf where a row has one finite score
            margin = np.where(np.isfinite(top2[:, 1]), top2[:, 0] - top2[:, 1], np.inf)
    else:
        margin = np.full(len(rows), np.inf)
    keep = margin >= min_margin
    return rows[keep], cols[keep], margin[keep]
