r"""Blockwise nearest-neighbour search and CSLS on candidate pairs.

Every view of a code (a sentence embedding, TF-IDF n-grams, a co-occurrence vector) is
a matrix of ℓ2-normalised rows, dense or sparse. :func:`knn_blockwise` multiplies a
block of query rows by the reference matrix at a time (``block_rows × n_reference``
similarities in memory, never more) and keeps, in one pass:

- each query's ``k`` most similar reference rows (its candidates from this view);
- each query's mean similarity to its ``csls_k`` nearest reference rows,
  :math:`r_{\mathrm{ref}}(q)`;
- each reference row's mean similarity to its ``csls_k`` nearest queries,
  :math:`r_{\mathrm{query}}(c)`, as a running top-k over the blocks.

CSLS (Conneau et al. 2018) of a pair is then :math:`2\cos(q, c) - r_{\mathrm{ref}}(q)
- r_{\mathrm{query}}(c)`, computed on candidate pairs only (:func:`pair_cosine`), and
equal to the dense :func:`mash.align.retrieval.csls_from_similarity` on every pair.
This is the MUSE scheme (``get_nn_avg_dist`` / ``get_candidates``) in NumPy:
candidates by cosine, scores by CSLS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

__all__ = ["KnnResult", "auto_block_rows", "knn_blockwise", "pair_cosine", "pair_csls"]

#: Default memory for one block of similarities (MB) when ``block_rows`` is not given.
BLOCK_MB = 256


def auto_block_rows(n_reference: int, block_mb: float = BLOCK_MB) -> int:
    """Query rows per block so that a float32 block of similarities fits ``block_mb``."""
    return int(max(16, min(8192, block_mb * 2**20 // (4 * max(1, n_reference)))))


@dataclass(frozen=True)
class KnnResult:
    """Output of :func:`knn_blockwise`.

    Attributes
    ----------
    index : ndarray, shape (n_q, k), int64
        Reference rows of each query's ``k`` most similar rows, best first.
    similarity : ndarray, shape (n_q, k), float32
    radius_query : ndarray, shape (n_q,), float32
        Mean similarity of each query to its ``csls_k`` nearest reference rows.
    radius_reference : ndarray, shape (n_r,), float32
        Mean similarity of each reference row to its ``csls_k`` nearest queries.
    """

    index: np.ndarray
    similarity: np.ndarray
    radius_query: np.ndarray
    radius_reference: np.ndarray


def _block_similarity(qb, r_t) -> torch.Tensor:
    if sparse.issparse(qb):
        sim = qb @ r_t
        sim = sim.toarray() if sparse.issparse(sim) else sim
        return torch.from_numpy(np.ascontiguousarray(sim, dtype=np.float32))
    return torch.from_numpy(np.ascontiguousarray(qb, dtype=np.float32)) @ r_t


def knn_blockwise(q, r, k: int, csls_k: int, *, block_rows: int | None = None, rows: np.ndarray | None = None,
                  groups: tuple[np.ndarray, np.ndarray] | None = None) -> KnnResult:
    """Top-``k`` reference rows per query and both CSLS radii, one block at a time.

    Parameters
    ----------
    q : ndarray or sparse matrix, shape (n_q, d)
    r : ndarray or sparse matrix, shape (n_r, d)
        ℓ2-normalised rows (a zero row has similarity 0 to everything).
    k : int
        Candidates per query (clipped to ``n_r``).
    csls_k : int
        Neighbourhood size of the CSLS radii (clipped to ``n_r`` / ``n_q``).
    block_rows : int, optional
        Query rows per block; default :func:`auto_block_rows`. Peak extra memory is
        about ``3 × block_rows × n_r × 4`` bytes.
    rows : ndarray of bool, shape (n_r,), optional
        Only these reference rows may be candidates (the radii still use all rows).
    groups : (ndarray of int, shape (n_q,), ndarray of int, shape (n_r,)), optional
        Group ids (e.g. domains) of the queries and the reference rows: a query's
        candidates are rows of its own group; ``-1`` (no group) matches every group.
        The radii still use all rows. Where a group has fewer than ``k`` rows, the
        missing candidates have index ``-1``.

    Returns
    -------
    KnnResult
        Ties are broken towards the lower reference row.
    """
    n_q, n_r = q.shape[0], r.shape[0]
    k = max(1, min(k, n_r))
    kq, kr = max(1, min(csls_k, n_r)), max(1, min(csls_k, n_q))
    block = block_rows or auto_block_rows(n_r)
    if sparse.issparse(r):
        r_t = r.T.tocsc()
    else:
        r_t = torch.from_numpy(np.ascontiguousarray(r, dtype=np.float32)).T
    index = np.empty((n_q, k), np.int64)
    simk = np.empty((n_q, k), np.float32)
    rad_q = np.empty(n_q, np.float32)
    col_top = torch.full((kr, n_r), -torch.inf)
    banned = None if rows is None else torch.from_numpy(~np.asarray(rows, bool))
    # one spare slot so that ties at the k-th place can be broken by row index
    kk = min(n_r, k + 1)
    for s in range(0, n_q, block):
        sim = _block_similarity(q[s : s + block], r_t)
        b = sim.shape[0]
        rad_q[s : s + b] = torch.topk(sim, kq, dim=1).values.mean(dim=1).numpy()
        blk = torch.topk(sim, min(kr, b), dim=0).values
        col_top = torch.topk(torch.cat([col_top, blk], dim=0), kr, dim=0).values
        if banned is not None:
            sim[:, banned] = -torch.inf
        if groups is not None:
            sim.masked_fill_(~_same_group(groups[0][s : s + b], groups[1]), -torch.inf)
        vals, part = torch.topk(sim, kk, dim=1)
        vals, part = vals.numpy(), part.numpy()
        order = _order_rows(part, vals)[:, :k]
        vals = np.take_along_axis(vals, order, axis=1)
        part = np.take_along_axis(part, order, axis=1)
        index[s : s + b] = np.where(np.isneginf(vals), -1, part) if groups is not None else part
        simk[s : s + b] = vals
    # every column has seen n_q ≥ kr finite similarities, so its top kr are finite
    rad_r = col_top.mean(dim=0).numpy().astype(np.float32) if n_q else np.zeros(n_r, np.float32)
    return KnnResult(index, simk, rad_q, rad_r)


def _same_group(gq: np.ndarray, gr: np.ndarray) -> torch.Tensor:
    """(b, n_r) bool: query ``i`` may take reference row ``j`` (same group, or either is -1)."""
    tq = torch.from_numpy(np.asarray(gq, np.int64))[:, None]
    tr = torch.from_numpy(np.asarray(gr, np.int64))[None, :]
    return (tq == tr) | (tq < 0) | (tr < 0)


def _order_rows(idx: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Per-row order: value descending, then index ascending (deterministic ties)."""
    o1 = np.argsort(idx, axis=1, kind="stable")
    v1 = np.take_along_axis(vals, o1, axis=1)
    o2 = np.argsort(-v1, axis=1, kind="stable")
    return np.take_along_axis(o1, o2, axis=1)


def pair_cosine(q, r, rows: np.ndarray, cols: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Dot products ``q[rows[i]] · r[cols[i]]`` of dense or sparse rows, shape (P,), float32."""
    out = np.empty(len(rows), np.float32)
    dense = not sparse.issparse(q)
    for s in range(0, len(rows), chunk):
        qi, rj = rows[s : s + chunk], cols[s : s + chunk]
        if dense:
            out[s : s + chunk] = np.einsum("ij,ij->i", q[qi], r[rj])
        else:
            out[s : s + chunk] = np.asarray(q[qi].multiply(r[rj]).sum(axis=1)).ravel()
    return out


def pair_csls(q, r, rows: np.ndarray, cols: np.ndarray, knn: KnnResult) -> np.ndarray:
    """CSLS of candidate pairs from a :func:`knn_blockwise` pass, shape (P,), float32."""
    cos = pair_cosine(q, r, rows, cols)
    return (2.0 * cos - knn.radius_query[rows] - knn.radius_reference[cols]).astype(np.float32)
