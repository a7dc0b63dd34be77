"""Agglomerative-clustering baselines for hierarchies, as parent arrays.

Benchmark code (``bench/hierarchy.py``), not part of the mash package (mash decodes its
own trees with :func:`mash.hyperbolic.decode.linkage_lca`).

The trees these functions return use the representation of :mod:`mash.trees`
(``parent[root] == -1``), with the ``n`` input rows as leaves ``0..n-1``, merge ``k`` as node
``n + k`` and the root at ``2n - 2``, so they can be scored with
:func:`mash.metrics.dendrogram_purity` and :func:`mash.metrics.dasgupta_cost` next to
decoded hyperbolic trees.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import pdist

from mash.errors import MashError
from mash.trees import validate_tree

__all__ = ["LINKAGE_METHODS", "linkage_to_parent", "linkage_tree"]

#: Linkage criteria accepted by :func:`linkage_tree`.
LINKAGE_METHODS: tuple[str, ...] = ("average", "complete", "single", "ward")

_BLOCK_ENTRIES = 1 << 24  # entries of one block of the Gram matrix (128 MiB in float64)


def linkage_to_parent(Z: np.ndarray) -> np.ndarray:
    """Convert a scipy linkage matrix to a parent array.

    Parameters
    ----------
    Z : ndarray, shape (n-1, 4)
        Linkage matrix as returned by :func:`scipy.cluster.hierarchy.linkage`: row ``k``
        merges clusters ``Z[k, 0]`` and ``Z[k, 1]`` into cluster ``n + k``.

    Returns
    -------
    ndarray of int64, shape (2n-1,)
        Parent array: leaves ``0..n-1``, merge ``k`` is node ``n + k``, the root is node
        ``2n - 2`` with parent ``-1``. For ``n == 1`` (``Z`` of shape ``(0, 4)``) the tree is
        the single node ``[-1]``.

    Raises
    ------
    MashError
        If ``Z`` is not a valid linkage matrix (wrong shape, non-integral or out-of-range
        cluster ids, a cluster merged twice or never).

    Examples
    --------
    >>> linkage_to_parent(np.array([[0.0, 1.0, 0.5, 2], [2.0, 3.0, 0.9, 3]])).tolist()
    [3, 3, 4, 4, -1]
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] != 4:
        raise MashError(f"a linkage matrix must have shape (n-1, 4), got {Z.shape}")
    n = Z.shape[0] + 1
    ids = Z[:, :2]
    if not np.isfinite(ids).all() or (ids != np.round(ids)).any():
        raise MashError("linkage matrix columns 0 and 1 must hold integral cluster ids")
    ids = ids.astype(np.int64)
    merge = n + np.arange(n - 1, dtype=np.int64)
    if ((ids < 0) | (ids >= merge[:, None])).any():
        k = int(np.flatnonzero(((ids < 0) | (ids >= merge[:, None])).any(axis=1))[0])
        raise MashError(f"linkage row {k} merges a cluster id outside 0..{n + k - 1}")
    if np.bincount(ids.ravel(), minlength=2 * n - 1).max(initial=0) > 1:
        raise MashError("linkage matrix merges some cluster twice")
    parent = np.full(2 * n - 1, -1, dtype=np.int64)
    parent[ids[:, 0]] = merge
    parent[ids[:, 1]] = merge
    validate_tree(parent)
    return parent


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm; raise on a zero row (cosine undefined)."""
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise MashError(f"vectors row {int(zero[0])} is all zeros: cosine distance is undefined")
    return x / norms[:, None]


def _condensed_unit_distances(u: np.ndarray, *, euclidean: bool) -> np.ndarray:
    """Condensed pairwise distances of unit rows from BLAS Gram blocks.

    Cosine distance ``1 - <a, b>``, or, with ``euclidean``, ``||a - b|| = sqrt(2 - 2<a, b>)``,
    shape ``(n(n-1)/2,)`` in float64. Row block ``r0:r1`` of the upper triangle is one
    contiguous stretch of the condensed vector, so blocks are written in place.
    """
    n = u.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    rows = max(1, _BLOCK_ENTRIES // n)
    start = 0
    for r0 in range(0, n - 1, rows):
        r1 = min(r0 + rows, n - 1)
        gram = u[r0:r1] @ u[r0:].T  # (r1 - r0, n - r0)
        first = start
        for r in range(r0, r1):  # row r contributes its entries right of the diagonal
            out[start : start + n - r - 1] = gram[r - r0, r - r0 + 1 :]
            start += n - r - 1
        block = out[first:start]
        np.clip(block, -1.0, 1.0, out=block)
        if euclidean:
            np.sqrt(2.0 - 2.0 * block, out=block)
        else:
            np.subtract(1.0, block, out=block)
    return out


def linkage_tree(
    vectors: np.ndarray, method: str = "average", metric: str = "cosine"
) -> np.ndarray:
    """Agglomerative clustering of row vectors into a binary tree (scipy linkage).

    Parameters
    ----------
    vectors : ndarray of float, shape (n, d)
        One row per leaf; finite values.
    method : {"average", "complete", "single", "ward"}
        Linkage criterion.
    metric : str
        Distance between rows for ``average``, ``complete`` and ``single``: ``"cosine"``
        (default; computed with BLAS) or any metric name of
        :func:`scipy.spatial.distance.pdist`. ``ward`` needs Euclidean distances, so it
        L2-normalises the rows and uses the Euclidean distance between them,
        ``sqrt(2 - 2 cos)``, a monotone function of the cosine distance; with ``ward`` the
        metric must therefore be ``"cosine"``.

    Returns
    -------
    ndarray of int64, shape (2n-1,)
        Parent array: leaves ``0..n-1`` are the rows, merge ``k`` is node ``n + k``, the root is
        node ``2n - 2`` (see :func:`linkage_to_parent`).

    Raises
    ------
    MashError
        On an unknown method (the message lists the valid ones), ``ward`` with a metric other
        than cosine, non-finite values, or an all-zero row with the cosine metric.

    Notes
    -----
    scipy works on the condensed distance matrix of ``n(n-1)/2`` float64 values and its
    nearest-neighbour-chain algorithm keeps a working copy, so peak memory is about
    ``8 n^2`` bytes: 1.6 GB for the matrix at ``n = 20,000`` and 3.2 GB at the peak (scipy
    accepts no float32 here). Time is ``O(n^2)`` (tens of seconds at ``n = 20,000``).

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> linkage_tree(x).tolist()
    [3, 3, 4, 4, -1]
    """
    if method not in LINKAGE_METHODS:
        raise MashError(f"unknown linkage method {method!r}: expected one of {LINKAGE_METHODS}")
    if method == "ward" and metric != "cosine":
        raise MashError(
            f"method 'ward' uses Euclidean distance on L2-normalised rows (metric 'cosine'), "
            f"got metric {metric!r}"
        )
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise MashError(f"vectors must have shape (n, d), got {x.shape}")
    if x.shape[0] == 0:
        raise MashError("vectors is empty: a tree needs at least one leaf")
    if not np.isfinite(x).all():
        raise MashError(f"vectors has {int((~np.isfinite(x)).sum())} non-finite values")
    n = x.shape[0]
    if n == 1:
        return np.array([-1], dtype=np.int64)
    if metric == "cosine":
        dist = _condensed_unit_distances(_unit_rows(x), euclidean=method == "ward")
    else:
        try:
            dist = pdist(x, metric=metric)
        except ValueError as err:
            raise MashError(f"metric {metric!r} rejected by scipy pdist: {err}") from err
        if not np.isfinite(dist).all():
            raise MashError(f"metric {metric!r} gave non-finite distances for these vectors")
    return linkage_to_parent(linkage(dist, method=method))
