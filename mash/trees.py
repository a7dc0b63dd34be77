"""Rooted trees and forests as parent arrays: validation, traversal, closure, LCA.

A rooted tree over ``n`` nodes is an integer array ``parent`` of shape ``(n,)`` with
``parent[root] == -1`` for exactly one root and ``parent[x]`` the parent of every other
node; a forest may have any number of roots. Leaves are the nodes without children.
Every tree algorithm of mash works on this representation and lives here, once:

- :func:`check_parent` (and :func:`validate_tree`, :func:`depths`) validate with pointer
  jumping: at step ``k`` every node jumps ``2^k`` ancestors up, so ``ceil(log2 n)``
  steps reach a root from every node, and a node that does not get there lies on, or
  hangs below, a cycle.
- :func:`children_csr` / :func:`children_lists`, :func:`leaf_mask`, :func:`tree_levels`
  (breadth-first levels), :func:`breadth_first`, :func:`subtree_sums` and :func:`transitive_closure`.
- The Euler tour (:func:`euler_tour`; enter/exit events of a depth-first walk) is found
  by list ranking on the successor function of the walk; it gives :func:`postorder`,
  subtree intervals and the ancestor test ``tin[u] <= tin[v] <= tout[u]``, and
  :meth:`EulerTour.lca` answers many pairs at once with a sparse-table range-minimum
  query over the Euler sequence (``O(n log n)`` to build, ``O(1)`` per pair).

Everything is vectorised (no Python loop over nodes, no recursion), so deep chains of
hundreds of thousands of nodes are as cheap as balanced trees. The tests check each
function against networkx (``is_arborescence``, ``dfs_postorder_nodes``,
``transitive_closure_dag``, ``tree_all_pairs_lowest_common_ancestor``) on random trees;
networkx itself is 10-100x slower on the 100k-node trees used here.

Tree metrics built on these (dendrogram purity, Dasgupta cost) are in :mod:`mash.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mash.errors import MashError

__all__ = [
    "EulerTour",
    "breadth_first",
    "check_nodes",
    "check_parent",
    "children_csr",
    "children_lists",
    "depths",
    "euler_tour",
    "lca",
    "leaf_mask",
    "postorder",
    "segment_indices",
        "subtree_sums",
    "transitive_closure",
    "tree_levels",
    "validate_tree",
]


# --------------------------------------------------------------------------- validation


def _as_parent(parent: np.ndarray, *, forest: bool) -> np.ndarray:
    """``parent`` as a 1-D int64 array, or raise on a wrong shape, dtype or emptiness."""
    arr = np.asarray(parent)
    if arr.ndim != 1:
        raise MashError(f"parent must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        if forest:
            return arr.astype(np.int64)
        raise MashError("parent is empty: a tree needs at least one node")
    if not np.issubdtype(arr.dtype, np.integer):
        raise MashError(f"parent must be an integer array, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _jump_to_roots(parent: np.ndarray, *, forest: bool) -> tuple[np.ndarray, np.ndarray]:
    """Check a parent array (already 1-D int64); return ``(roots, depth)``, shapes (r,), (n,).

    Raises :class:`MashError` naming the first parent out of range, a wrong number of
    roots (trees: exactly one) or a node on or below a cycle.
    """
    n = parent.shape[0]
    bad = np.flatnonzero((parent < -1) | (parent >= n))
    if bad.size:
        k = int(bad[0])
        raise MashError(
            f"parent[{k}] = {int(parent[k])} is out of range: expected -1 (root) or 0..{n - 1}"
        )
    roots = np.flatnonzero(parent == -1)
    if not forest and roots.size != 1:
        shown = ", ".join(str(int(r)) for r in roots[:5])
        raise MashError(
            f"a tree needs exactly one root (parent == -1), found {roots.size}"
            + (f": nodes {shown}{', ...' if roots.size > 5 else ''}" if roots.size else "")
        )
    nodes = np.arange(n)
    up = np.where(parent >= 0, parent, nodes)  # a root points to itself
    depth = (up != nodes).astype(np.int64)  # distance from x to up[x]
    for _ in range(max(1, int(np.ceil(np.log2(max(n, 1)))))):
        if (parent[up] < 0).all():
            break
        depth += depth[up]
        up = up[up]
    stuck = np.flatnonzero(parent[up] >= 0)
    if stuck.size:
        raise MashError(f"parent links contain a cycle: node {int(stuck[0])} never reaches a root")
    return roots, depth


def check_parent(parent: np.ndarray, *, forest: bool = False) -> np.ndarray:
    """Validate a parent array and return it as int64.

    Parameters
    ----------
    parent : ndarray of int, shape (n,)
        ``parent[x]`` is the parent of node ``x``; ``-1`` marks a root.
    forest : bool
        Accept any number of roots (and ``n == 0``); otherwise exactly one root.

    Returns
    -------
    ndarray of int64, shape (n,)

    Raises
    ------
    MashError
        If ``parent`` is not a 1-D integer array (non-empty for a tree), a parent is out
        of range, a tree has not exactly one root, or the parent links contain a cycle.

    Examples
    --------
    >>> check_parent(np.array([-1, 0, -1, 2]), forest=True).tolist()
    [-1, 0, -1, 2]
    """
    arr = _as_parent(parent, forest=forest)
    _jump_to_roots(arr, forest=forest)
    return arr


def validate_tree(parent: np.ndarray) -> int:
    """Check that ``parent`` encodes one rooted tree and return its root.

    Parameters
    ----------
    parent : ndarray of int, shape (n,)
        ``parent[x]`` is the parent of node ``x``; ``-1`` marks the root.

    Returns
    -------
    int
        The index of the root.

    Raises
    ------
    MashError
        As :func:`check_parent` with ``forest=False``.

    Examples
    --------
    >>> validate_tree(np.array([2, 2, -1]))
    2
    """
    roots, _ = _jump_to_roots(_as_parent(parent, forest=False), forest=False)
    return int(roots[0])


def depths(parent: np.ndarray, *, forest: bool = False) -> np.ndarray:
    """Number of edges from every node up to its root.

    Parameters
    ----------
    parent : ndarray of int, shape (n,)
        Parent array of a rooted tree (of a forest with ``forest=True``).
    forest : bool
        Accept any number of roots.

    Returns
    -------
    ndarray of int64, shape (n,)
        ``0`` at a root.

    Examples
    --------
    >>> depths(np.array([-1, 0, 1, 1])).tolist()
    [0, 1, 2, 2]
    """
    _, depth = _jump_to_roots(_as_parent(parent, forest=forest), forest=forest)
    return depth


def check_nodes(x: object, n: int, name: str) -> np.ndarray:
    """``x`` as an int64 array of node indices in ``0..n-1`` (any shape), or raise naming ``name``.

    Examples
    --------
    >>> check_nodes([2, 0], 3, "i").tolist()
    [2, 0]
    """
    arr = np.asarray(x)
    if arr.size == 0:
        return arr.astype(np.int64).reshape(arr.shape)
    if not np.issubdtype(arr.dtype, np.integer):
        raise MashError(f"{name} must hold integer node indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    bad = np.flatnonzero((arr.ravel() < 0) | (arr.ravel() >= n))
    if bad.size:
        k = int(bad[0])
        raise MashError(f"{name}[{k}] = {int(arr.ravel()[k])} is not a node: expected 0..{n - 1}")
    return arr


# --------------------------------------------------------------------------- children, levels


def children_csr(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Children of every node in CSR form: ``children[ptr[x]:ptr[x + 1]]``, ascending ids.

    ``parent`` is not validated (only ranges are assumed); roots have no parent entry.

    Returns
    -------
    ptr : ndarray of int64, shape (n + 1,)
    children : ndarray of int64, shape (n - n_roots,)

    Examples
    --------
    >>> ptr, kids = children_csr(np.array([2, 2, -1]))
    >>> ptr.tolist(), kids.tolist()
    ([0, 0, 0, 2], [0, 1])
    """
    parent = np.asarray(parent, dtype=np.int64)
    n = parent.size
    nonroot = np.flatnonzero(parent >= 0)
    children = nonroot[np.argsort(parent[nonroot], kind="stable")].astype(np.int64)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(parent[nonroot], minlength=n), out=ptr[1:])
    return ptr, children


def children_lists(parent: np.ndarray, *, forest: bool = False) -> list[np.ndarray]:
    """The children of every node.

    Parameters
    ----------
    parent : ndarray of int, shape (n,)
        Parent array of a rooted tree (of a forest with ``forest=True``).
    forest : bool
        Accept any number of roots.

    Returns
    -------
    list of ndarray of int64
        ``n`` arrays; entry ``x`` holds the children of ``x`` in ascending order (empty for
        a leaf).

    Examples
    --------
    >>> [c.tolist() for c in children_lists(np.array([2, 2, -1]))]
    [[], [], [0, 1]]
    """
    parent = check_parent(parent, forest=forest)
    ptr, kids = children_csr(parent)
    return np.split(kids, ptr[1:-1])


def _leaf_mask(parent: np.ndarray) -> np.ndarray:
    mask = np.ones(parent.shape[0], dtype=bool)
    mask[parent[parent >= 0]] = False
    return mask


def leaf_mask(parent: np.ndarray) -> np.ndarray:
    """Which nodes are leaves (have no children).

    Parameters
    ----------
    parent : ndarray of int, shape (n,)
        Parent array of a rooted tree.

    Returns
    -------
    ndarray of bool, shape (n,)
        True where the node has no children. A single-node tree is one leaf.

    Examples
    --------
    >>> leaf_mask(np.array([2, 2, -1])).tolist()
    [True, True, False]
    """
    return _leaf_mask(check_parent(parent))


def segment_indices(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices ``starts[i] + [0, lengths[i])`` concatenated over ``i`` (CSR segments).

    Examples
    --------
    >>> segment_indices(np.array([0, 5]), np.array([2, 3])).tolist()
    [0, 1, 5, 6, 7]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts, dtype=np.int64) - offsets, lengths) + np.arange(total)


def tree_levels(parent: np.ndarray) -> list[np.ndarray]:
    """Validate a rooted tree and list its nodes level by level (breadth first).

    Parameters
    ----------
    parent : np.ndarray, shape (n,), int
        ``parent[i]`` is the parent of node ``i``; ``-1`` marks the single root.

    Returns
    -------
    list of np.ndarray of int64
        ``levels[d]`` holds the nodes at depth ``d`` (the root is depth 0), grouped by
        parent in the order of the previous level, children in increasing id; their
        concatenation is the breadth-first order (every parent before its children).

    Raises
    ------
    MashError
        As :func:`check_parent` with ``forest=False``.

    Examples
    --------
    >>> [lv.tolist() for lv in tree_levels(np.array([-1, 0, 0, 1]))]
    [[0], [1, 2], [3]]
    """
    parent = _as_parent(parent, forest=False)
    roots, _ = _jump_to_roots(parent, forest=False)
    ptr, children = children_csr(parent)
    levels = [roots.astype(np.int64)]
    while True:
        cur = levels[-1]
        nxt = children[segment_indices(ptr[cur], ptr[cur + 1] - ptr[cur])]
        if nxt.size == 0:
            break
        levels.append(nxt)
    return levels


def breadth_first(parent: np.ndarray) -> np.ndarray:
    """Breadth-first order of a rooted tree: ``np.concatenate(tree_levels(parent))``.

    Examples
    --------
    >>> breadth_first(np.array([2, 2, -1, 0])).tolist()
    [2, 0, 1, 3]
    """
    return np.concatenate(tree_levels(parent))


def subtree_sums(
    parent: np.ndarray, values: np.ndarray, levels: list[np.ndarray] | None = None
) -> np.ndarray:
    """Sum of ``values`` over every node's subtree (the node included).

    Parameters
    ----------
    parent : ndarray of int, shape (n,)
        Parent array of a rooted tree.
    values : ndarray of int, shape (n,)
        E.g. a leaf indicator, giving the number of leaves below each node.
    levels : list of ndarray, optional
        :func:`tree_levels` of ``parent`` when already at hand (then not re-validated).

    Returns
    -------
    ndarray of int64, shape (n,)

    Examples
    --------
    >>> parent = np.array([-1, 0, 0, 1])
    >>> subtree_sums(parent, leaf_mask(parent)).tolist()
    [2, 1, 1, 1]
    """
    if levels is None:
        levels = tree_levels(parent)
    parent = np.asarray(parent, dtype=np.int64)
    n = parent.size
    size = np.asarray(values).astype(np.int64)
    for lv in reversed(levels[1:]):
        size += np.bincount(parent[lv], weights=size[lv], minlength=n).astype(np.int64)
    return size


def transitive_closure(parent: np.ndarray) -> np.ndarray:
    """Every ``(node, proper ancestor)`` pair of a forest.

    Parameters
    ----------
    parent : np.ndarray, shape (n,), int
        ``parent[i]`` is the parent of node ``i``, or ``-1`` for a root.

    Returns
    -------
    np.ndarray, shape (E, 2), int64
        Rows ``[node, ancestor]``, sorted by node then by distance (parent first).
        ``E`` is the sum of the node depths.

    Raises
    ------
    MashError
        As :func:`check_parent` with ``forest=True``.

    Examples
    --------
    >>> transitive_closure(np.array([-1, 0, 1])).tolist()
    [[1, 0], [2, 1], [2, 0]]
    """
    parent = check_parent(parent, forest=True)
    nodes = np.arange(parent.size, dtype=np.int64)
    anc = parent.copy()
    pairs_node, pairs_anc = [], []
    # Walk all nodes up one level at a time: level k gives the k-th ancestor (acyclic, so
    # this ends after max-depth steps).
    while True:
        keep = anc >= 0
        if not keep.any():
            break
        nodes, anc = nodes[keep], anc[keep]
        pairs_node.append(nodes)
        pairs_anc.append(anc)
        anc = parent[anc]
    if not pairs_node:
        return np.zeros((0, 2), dtype=np.int64)
    depth_rank = np.concatenate([np.full(p.size, k) for k, p in enumerate(pairs_node)])
    out = np.stack([np.concatenate(pairs_node), np.concatenate(pairs_anc)], axis=1)
    return out[np.lexsort((depth_rank, out[:, 0]))]


# --------------------------------------------------------------------------- Euler tour


@dataclass(frozen=True)
class EulerTour:
    """Euler tour of a validated tree (see :func:`euler_tour`).

    Event ``x`` (``0 <= x < n``) enters node ``x`` and event ``n + x`` leaves it. ``tin``
    and ``tout`` are their positions in the walk, shape (n,), values in ``0..2n-1``; the
    subtree of ``x`` is exactly the events at positions ``tin[x]..tout[x]``.
    ``node_at[p]`` is the node entered at position ``p`` (``-1`` at exit positions),
    shape (2n,).
    """

    parent: np.ndarray
    root: int
    tin: np.ndarray
    tout: np.ndarray
    node_at: np.ndarray

    @property
    def n(self) -> int:
        """Number of nodes."""
        return self.parent.shape[0]

    @cached_property
    def is_leaf(self) -> np.ndarray:
        """Leaf mask, shape (n,)."""
        return _leaf_mask(self.parent)

    @cached_property
    def rmq_table(self) -> np.ndarray:
        """Sparse table for range-minimum queries over the Euler sequence.

        The sequence holds, at each position, the node the walk is in after that event
        (``x`` after entering ``x``, ``parent[x]`` after leaving it), keyed
        ``depth * n + node`` so that the minimum of a range names its shallowest node. Row
        ``k`` holds minima of windows of length ``2^k``; shape ``(K, 2n)`` with
        ``K = floor(log2 2n) + 1``.
        """
        n, m = self.n, 2 * self.n
        seq = np.empty(m, dtype=np.int64)
        seq[self.tin] = np.arange(n)
        seq[self.tout] = np.where(self.parent >= 0, self.parent, self.root)
        step = np.zeros(m, dtype=np.int64)
        step[self.tin] = 1
        step[self.tout] = -1
        level = np.cumsum(step)  # depth + 1 after an enter event, the parent's after an exit
        depth = level[self.tin] - 1
        levels = int(m).bit_length()
        table = np.full((levels, m), np.iinfo(np.int64).max, dtype=np.int64)
        table[0] = depth[seq] * n + seq
        for k in range(1, levels):
            half, width = 1 << (k - 1), m - (1 << k) + 1
            np.minimum(table[k - 1, :width], table[k - 1, half : half + width], out=table[k, :width])
        return table

    def lca(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """LCA of node arrays ``i`` and ``j`` (same shape, already checked), O(1) per pair."""
        table = self.rmq_table
        ti, tj = self.tin[i], self.tin[j]
        lo, hi = np.minimum(ti, tj), np.maximum(ti, tj)
        k = np.frexp((hi - lo + 1).astype(np.float64))[1] - 1  # floor(log2(span)), exact
        best = np.minimum(table[k, lo], table[k, hi - (1 << k.astype(np.int64)) + 1])
        return best % self.n

    def prefix_counts(self, nodes: np.ndarray) -> np.ndarray:
        """Prefix sums over walk positions of "node entered here is in ``nodes``", (2n+1,).

        The number of ``nodes`` in the subtree of ``x`` is ``c[tout[x] + 1] - c[tin[x]]``.
        """
        mark = np.zeros(2 * self.n + 1, dtype=np.int64)
        mark[self.tin[nodes] + 1] = 1
        return np.cumsum(mark)


def euler_tour(parent: np.ndarray) -> EulerTour:
    """Validate ``parent`` and compute its Euler tour by list ranking.

    The walk visits children in ascending index order. The successor of "enter x" is
    "enter first child of x", or "leave x" for a leaf; the successor of "leave x" is
    "enter next sibling of x", or "leave parent of x" for a last child. Pointer jumping
    over this linked list gives every event its distance to the end, hence its position.

    Parameters
    ----------
    parent : ndarray of int, shape (n,)
        Parent array of a rooted tree.

    Returns
    -------
    EulerTour

    Examples
    --------
    >>> t = euler_tour(np.array([-1, 0, 0]))
    >>> t.tin.tolist(), t.tout.tolist()
    ([0, 1, 3], [5, 2, 4])
    """
    parent = _as_parent(parent, forest=False)
    roots, _ = _jump_to_roots(parent, forest=False)
    root = int(roots[0])
    n = parent.shape[0]
    indptr, kids = children_csr(parent)
    nodes = np.arange(n, dtype=np.int64)

    first_child = np.full(n, -1, dtype=np.int64)
    has_kids = indptr[1:] > indptr[:-1]
    first_child[has_kids] = kids[indptr[:-1][has_kids]]
    next_sibling = np.full(n, -1, dtype=np.int64)
    same = parent[kids[1:]] == parent[kids[:-1]]
    next_sibling[kids[:-1][same]] = kids[1:][same]

    m = 2 * n
    succ = np.empty(m, dtype=np.int64)
    succ[:n] = np.where(first_child >= 0, first_child, nodes + n)
    succ[n:] = np.where(next_sibling >= 0, next_sibling, parent + n)
    end = n + root
    succ[end] = end
    dist = np.ones(m, dtype=np.int64)
    dist[end] = 0
    for _ in range(int(np.ceil(np.log2(m)))):
        if (succ == end).all():
            break
        dist += dist[succ]
        succ = succ[succ]
    pos = (m - 1) - dist
    tin, tout = pos[:n], pos[n:]
    node_at = np.full(m, -1, dtype=np.int64)
    node_at[tin] = nodes
    return EulerTour(parent=parent, root=root, tin=tin, tout=tout, node_at=node_at)


def postorder(parent: np.ndarray) -> np.ndarray:
    """Nodes in depth-first postorder (every node after all of its descendants).

    Parameters
    ----------
    parent : ndarray of int, shape (n,)
        Parent array of a rooted tree.

    Returns
    -------
    ndarray of int64, shape (n,)
        A permutation of ``0..n-1`` ending with the root; children are visited in
        ascending index order.

    Examples
    --------
    >>> postorder(np.array([-1, 0, 0, 1])).tolist()
    [3, 1, 2, 0]
    """
    tour = euler_tour(parent)
    left = np.full(2 * tour.n, -1, dtype=np.int64)
    left[tour.tout] = np.arange(tour.n)
    return left[left >= 0]


def lca(parent: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Lowest common ancestors of many node pairs.

    Parameters
    ----------
    parent : ndarray of int, shape (n,)
        Parent array of a rooted tree.
    i, j : ndarray of int, shape (p,) (any shape, the same for both)
        Node indices; pair ``k`` is ``(i[k], j[k])``.

    Returns
    -------
    ndarray of int64, shape (p,)
        The deepest node that is an ancestor of both (a node is its own ancestor).

    Notes
    -----
    ``O(n log n)`` to build a sparse table over the Euler tour, then ``O(1)`` per pair;
    one million pairs on a 100,000-node tree take well under a second.

    Examples
    --------
    >>> parent = np.array([4, 4, 5, 5, 6, 6, -1])
    >>> lca(parent, np.array([0, 0, 2]), np.array([1, 3, 5])).tolist()
    [4, 6, 5]
    """
    tour = euler_tour(parent)
    i = check_nodes(i, tour.n, "i")
    j = check_nodes(j, tour.n, "j")
    if i.shape != j.shape:
        raise MashError(f"i and j must have the same shape, got {i.shape} and {j.shape}")
    if i.size == 0:
        return np.zeros(i.shape, dtype=np.int64)
    return tour.lca(i, j)
