"""Reconstruction quality of an embedded hierarchy: mean rank and mean average precision.

Benchmark code (``bench/_reconstruction.py``), not part of the mash package.

As ``eval_reconstruction`` of facebookresearch/poincare-embeddings: every query node
``u`` with at least one neighbour (here, its ancestors in ``relations``) is compared with
every other node. The rank of a neighbour ``v`` is one plus the number of non-neighbours
strictly closer to ``u`` than ``v``; the mean rank averages over all ``(u, v)`` pairs.
``AP(u)`` is the average precision of the neighbours when all other nodes are ordered by
distance to ``u`` (``sklearn.metrics.average_precision_score(labels, -dist)``, ties
included); MAP averages over query nodes.

No distance row is sorted: for a query ``u`` with neighbours at sorted distances
:math:`\\delta_1 \\le \\dots \\le \\delta_m`, let :math:`c_j` count the non-neighbours at
distance :math:`\\le \\delta_j` and :math:`k_j` the neighbours at distance
:math:`\\le \\delta_j`; then

.. math::

    \\mathrm{AP}(u) = \\frac{1}{m} \\sum_{j=1}^{m} \\frac{k_j}{k_j + c_j}.

Only the non-neighbours closer than the farthest neighbour are ever looked at, and the
distance is replaced by a key with the same order within a row (``|u - y|^2`` in
Euclidean space, ``|u - y|^2 / (1 - |y|^2)`` in the Poincaré ball, since
:math:`d(u, y) = \\operatorname{arcosh}(1 + 2|u - y|^2 / ((1 - |u|^2)(1 - |y|^2)))`).
A block of keys is one float64 matrix product of the expanded squares; near geoopt's
float64 boundary (``|y| = 1 - 1e-5``) two distances closer than about ``1e-7``
(relative) may come out in either order. All ~98k ICD-10-CM nodes take 15-30 s on two
cores.
"""

from __future__ import annotations

import numpy as np
import torch

from mash.errors import MashError
from mash.progress import bar

__all__ = ["reconstruction_metrics"]

_GEOMETRIES = ("euclidean", "poincare")


def _key_factors(pts: np.ndarray, geometry: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors ``A`` (n, d + 2) and ``Y`` (n, d + 2) with ``(A[q] @ Y.T)[i, j]`` a key that
    orders the distances from node ``q[i]`` to all nodes ``j`` like the true distances.

    The key is ``w_j |x - y_j|^2 = w_j |x|^2 + w_j |y_j|^2 - 2 w_j <x, y_j>`` with
    ``w_j = 1`` (Euclidean) or ``w_j = 1 / (1 - |y_j|^2)`` (Poincaré), so one matrix
    product of width ``d + 2`` gives a whole block of keys.
    """
    sq = (pts * pts).sum(1)
    w = np.ones_like(sq) if geometry == "euclidean" else 1.0 / (1.0 - sq)
    a = np.concatenate([pts, sq[:, None], np.ones_like(sq)[:, None]], axis=1)
    y = np.concatenate([-2.0 * w[:, None] * pts, w[:, None], (w * sq)[:, None]], axis=1)
    return torch.from_numpy(a), torch.from_numpy(y)


def reconstruction_metrics(
    points: np.ndarray,
    relations: np.ndarray,
    *,
    geometry: str = "poincare",
    nodes: np.ndarray | None = None,
    chunk: int = 512,
    quiet: bool = True,
) -> dict:
    """Mean rank and MAP of reconstructing ``relations`` from distances between points.

    Parameters
    ----------
    points : np.ndarray, shape (n, d), float
        Embedding of all nodes (inside the unit ball for ``"poincare"``).
    relations : np.ndarray, shape (E, 2), int
        ``(node, neighbour)`` pairs, e.g. ``(child, ancestor)`` from
        :func:`mash.trees.transitive_closure`; duplicates are ignored.
    geometry : {"poincare", "euclidean"}
        Distance used for ranking.
    nodes : np.ndarray, shape (q,), int, optional
        Evaluate only these query nodes (e.g. a sample); they are still ranked against
        all ``n`` nodes. Nodes without neighbours are skipped.
    chunk : int
        Query nodes per block; memory is about ``3 * chunk * n * 8`` bytes.
    quiet : bool
        Hide the progress bar.

    Returns
    -------
    dict
        ``mean_rank`` (float), ``map`` (float), ``n_nodes`` (query nodes evaluated) and
        ``n_relations`` (``(u, v)`` pairs ranked).

    Raises
    ------
    MashError
        On bad shapes, ids out of range, points outside the ball, or no query node.

    Examples
    --------
    >>> pts = np.array([[0.0, 0.0], [0.5, 0.0], [-0.5, 0.0], [0.5, 0.6]])
    >>> m = reconstruction_metrics(pts, np.array([[1, 0], [3, 1], [3, 0], [2, 0]]))
    >>> m["map"], m["mean_rank"]
    (1.0, 1.0)
    """
    if geometry not in _GEOMETRIES:
        raise MashError(f"unknown geometry {geometry!r}; valid names: {', '.join(_GEOMETRIES)}")
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2:
        raise MashError(f"points must have shape (n, d), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise MashError("points contain NaN or infinite values")
    n = pts.shape[0]
    rel = np.asarray(relations)
    if rel.ndim != 2 or rel.shape[1] != 2 or not np.issubdtype(rel.dtype, np.integer):
        raise MashError(f"relations must be an integer array of shape (E, 2), got {rel.shape}")
    rel = rel.astype(np.int64)
    if rel.size and (rel.min() < 0 or rel.max() >= n):
        raise MashError(f"relations hold node ids outside [0, {n})")
    pair = np.unique(rel[:, 0] * n + rel[:, 1])  # deduplicated, sorted by query node
    rel = np.stack([pair // n, pair % n], axis=1)
    rel = rel[rel[:, 0] != rel[:, 1]]
    if chunk < 1:
        raise MashError(f"chunk must be positive, got {chunk}")

    if geometry == "poincare":
        sq = (pts * pts).sum(1)
        if (sq >= 1.0).any():
            raise MashError(f"{int((sq >= 1).sum())} points lie outside the open unit ball")
    a_fac, y_fac = _key_factors(pts, geometry)

    start = np.searchsorted(rel[:, 0], np.arange(n + 1))  # neighbours of u: start[u]:start[u+1]
    degree = np.diff(start)
    queries = np.flatnonzero(degree > 0)
    if nodes is not None:
        sel = np.asarray(nodes, dtype=np.int64).reshape(-1)
        if sel.size and (sel.min() < 0 or sel.max() >= n):
            raise MashError(f"nodes hold ids outside [0, {n})")
        queries = np.intersect1d(queries, sel)
    if queries.size == 0:
        raise MashError("no query node has a neighbour in relations")

    ranks_sum = 0.0
    ap_sum = 0.0
    n_pairs = 0
    blocks = range(0, queries.size, chunk)
    # reused buffers: fresh multi-MB tensors per block cost more in page faults than the
    # matrix product itself
    y_t = y_fac.T.contiguous()
    keys_buf = torch.empty(min(chunk, queries.size), n, dtype=torch.float64)
    mask_buf = torch.empty(keys_buf.shape, dtype=torch.bool)
    for b in bar(blocks, "reconstruction", quiet=quiet, total=len(blocks)):
        q = queries[b : b + chunk]
        c = q.size
        deg = degree[q]
        m = int(deg.max())
        # padded neighbour table (c, m): row r holds the neighbours of q[r], -1 padding
        row = np.repeat(np.arange(c), deg)
        col = np.arange(row.size) - np.repeat(np.cumsum(deg) - deg, deg)
        nbr = rel[np.concatenate([np.arange(start[u], start[u + 1]) for u in q]), 1]
        keys = torch.mm(a_fac[torch.from_numpy(q)], y_t, out=keys_buf[:c])  # (c, n)
        row_t, nbr_t = torch.from_numpy(row), torch.from_numpy(nbr)
        nk = torch.full((c, m), float("inf"), dtype=torch.float64)
        nk[row_t, torch.from_numpy(col)] = keys[row_t, nbr_t]
        nk, _ = nk.sort(dim=1)  # (c, m) ascending, inf padding last
        # keep only non-neighbours: mask out u itself and its neighbours
        keys[torch.arange(c), torch.from_numpy(q)] = float("inf")
        keys[row_t, nbr_t] = float("inf")
        kmax = nk.gather(1, torch.from_numpy(deg - 1).unsqueeze(1))  # farthest neighbour
        closer = torch.le(keys, kmax, out=mask_buf[:c])
        r_idx, c_idx = torch.nonzero(closer, as_tuple=True)
        vals = keys[r_idx, c_idx].unsqueeze(1)
        nk_r = nk[r_idx]
        # non-neighbour val is counted for neighbour j (sorted) if val < nk_j (rank) or
        # val <= nk_j (AP); j >= (#nk <= val) resp. j >= (#nk < val)
        pos_lt = (nk_r <= vals).sum(1)
        pos_le = (nk_r < vals).sum(1)
        c_lt = torch.zeros(c, m + 1, dtype=torch.float64)
        c_le = torch.zeros(c, m + 1, dtype=torch.float64)
        ones = torch.ones(r_idx.numel(), dtype=torch.float64)
        c_lt.index_put_((r_idx, pos_lt), ones, accumulate=True)
        c_le.index_put_((r_idx, pos_le), ones, accumulate=True)
        c_lt = c_lt.cumsum(1)[:, :m]
        c_le = c_le.cumsum(1)[:, :m]
        valid = torch.arange(m).unsqueeze(0) < torch.from_numpy(deg).unsqueeze(1)
        # k_j: neighbours at key <= nk_j (ties among neighbours share the last position)
        k = torch.searchsorted(nk, nk, right=True).to(torch.float64)
        prec = torch.where(valid, k / (k + c_le), torch.zeros((), dtype=torch.float64))
        ap_sum += float((prec.sum(1) / torch.from_numpy(deg)).sum())
        ranks_sum += float(torch.where(valid, 1.0 + c_lt, 0.0).sum())
        n_pairs += int(deg.sum())
    return {
        "mean_rank": ranks_sum / n_pairs,
        "map": ap_sum / queries.size,
        "n_nodes": int(queries.size),
        "n_relations": n_pairs,
    }
