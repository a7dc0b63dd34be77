"""Decode a rooted binary tree from Poincaré-ball points, inside known groups.

HypHC (Chami et al., 2020) decodes by merging points in order of decreasing
hyperbolic LCA depth: the pair whose geodesic stays farthest from the origin shares the
most specific ancestor and merges first. That is single linkage on the dissimilarity
``max_depth − lca_depth``, i.e. Kruskal's algorithm on its minimum spanning tree, which
is computed exactly here with Prim's algorithm on the dense dissimilarity, one row at
a time (O(m²) time, O(m) memory).

mash adds one constraint: known groups (:mod:`mash.labels`) are kept. Each
group is decoded bottom-up from its members (its own concepts and its child groups, a
child group represented by the mean direction of its concepts), and the group's last
merge *is* the group node; concepts outside every group and the top groups merge into
the root the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mash.errors import MashError
from mash.hyperbolic.geometry import (
    dist0_from_norm,
    lca_depth_np,
    lca_point_np,
    pairwise_lca_depth,
)
from mash.progress import bar
from mash.trees import postorder

KIND_ITEM, KIND_GROUP, KIND_CLUSTER, KIND_ROOT = "concept", "group", "cluster", "root"


METHODS = ("average", "single")


def linkage_lca(points: np.ndarray, method: str, max_depth: float) -> np.ndarray:
    """Agglomerate points by hyperbolic LCA depth.

    Parameters
    ----------
    points : ndarray, shape (m, d), m ≥ 2
    method : {"average", "single"}
        ``single`` is HypHC's decoding (merge the pair with the deepest LCA first);
        ``average`` is UPGMA on the dissimilarity ``max_depth − lca_depth``, which does
        not chain (default).
    max_depth : float
        Depth of the deepest point.

    Returns
    -------
    ndarray, shape (m − 1, 3)
        scipy-style merges ``(cluster a, cluster b, depth)``: clusters ``0..m−1`` are the
        points, merge ``k`` creates cluster ``m + k``; depth is non-increasing.
    """
    m = len(points)
    if method == "single":
        edges = single_linkage_lca(points)
        uf = list(range(m))
        cid = list(range(m))
        out = np.zeros((m - 1, 3))

        def find(a: int) -> int:
            while uf[a] != a:
                uf[a] = uf[uf[a]]
                a = uf[a]
            return a

        for k, (a, b, dep) in enumerate(edges):
            ra, rb = find(int(a)), find(int(b))
            out[k] = (cid[ra], cid[rb], dep)
            uf[rb] = ra
            cid[ra] = m + k
        return out
    if method != "average":
        raise MashError(f"unknown decoding method {method!r}; valid: {', '.join(METHODS)}")
    from scipy.cluster.hierarchy import linkage

    condensed = pairwise_lca_depth(points)
    np.subtract(max_depth, condensed, out=condensed)
    z = linkage(condensed, method="average")
    return np.column_stack([z[:, 0], z[:, 1], max_depth - z[:, 2]])


def single_linkage_lca(points: np.ndarray) -> np.ndarray:
    """Merges of ``points`` in order of decreasing hyperbolic LCA depth.

    Parameters
    ----------
    points : ndarray, shape (m, d)

    Returns
    -------
    ndarray, shape (m − 1, 3)
        Rows ``(a, b, depth)``: the edges of the maximum-depth spanning tree sorted by
        decreasing depth; merging their endpoints' clusters in this order is single
        linkage. Ties broken by index, so the result is deterministic.
    """
    m = len(points)
    if m < 2:
        return np.zeros((0, 3))
    in_tree = np.zeros(m, dtype=bool)
    best = np.full(m, -np.inf)
    src = np.zeros(m, dtype=np.int64)
    cur = 0
    in_tree[0] = True
    edges = np.zeros((m - 1, 3))
    for step in range(m - 1):
        d = lca_depth_np(points[cur][None, :], points)
        better = (d > best) & ~in_tree
        best[better] = d[better]
        src[better] = cur
        cand = np.where(in_tree, -np.inf, best)
        nxt = int(np.argmax(cand))
        edges[step] = (src[nxt], nxt, best[nxt])
        in_tree[nxt] = True
        cur = nxt
    order = np.lexsort((edges[:, 1], edges[:, 0], -edges[:, 2]))
    return edges[order]


@dataclass
class DecodedTree:
    """A rooted tree over concepts, known groups and decoded clusters.

    Attributes
    ----------
    parent : ndarray, shape (N,)
        Nodes ``0..n−1`` are concepts, ``n..n+L−1`` known groups, then clusters, the
        root last; −1 for the root.
    kind : ndarray of str, shape (N,)
    merge_depth : ndarray, shape (N,)
        LCA depth at which the node's children merged (concepts: their own depth).
    points : ndarray, shape (N, dim)
        Concepts: their embedded points; groups, clusters and the root: the hyperbolic
        LCA of their last merge (a group with a single member: 0.9 × its point), so every
        node lies on the origin side of its descendants.
    """

    parent: np.ndarray
    kind: np.ndarray
    merge_depth: np.ndarray
    points: np.ndarray


def decode_tree(
    items: np.ndarray,
    groups: np.ndarray,
    group_parent: np.ndarray,
    item_group: np.ndarray,
    *,
    method: str = "average",
    quiet: bool = True,
) -> DecodedTree:
    """Binary-within-groups tree from embedded concepts and known groups.

    Parameters
    ----------
    items : ndarray, shape (n, d)
        Concept points (all at the same Euclidean norm).
    groups : ndarray, shape (L, d)
        Known-group points as trained (replaced in the output by their merge's LCA).
    group_parent : ndarray, shape (L,)
    item_group : ndarray, shape (n,)
        The group each concept sits in directly, −1 for none.
    method : {"average", "single"}
        See :func:`linkage_lca`.

    Returns
    -------
    DecodedTree
        Every concept is a leaf; every group with members is an internal node; clusters
        are binary.
    """
    n, dim = items.shape
    n_groups = len(group_parent)
    radius = float(np.linalg.norm(items[0])) if n else 0.9
    item_depth = float(dist0_from_norm(radius, max_norm=1 - 1e-6))
    parent = [-1] * (n + n_groups)
    kind = [KIND_ITEM] * n + [KIND_GROUP] * n_groups
    depth = [item_depth] * n + [0.0] * n_groups
    pts = [p for p in items] + [g for g in groups]
    if method not in METHODS:
        raise MashError(f"unknown decoding method {method!r}; valid: {', '.join(METHODS)}")
    unit = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    members: list[list[int]] = [[] for _ in range(n_groups + 1)]  # last: the root's
    for i, g in enumerate(item_group):
        members[g if g >= 0 else n_groups].append(i)
    for g in range(n_groups):
        members[group_parent[g] if group_parent[g] >= 0 else n_groups].append(n + g)
    direction = np.zeros((n + n_groups, dim))
    direction[:n] = unit
    # post-order over groups (children before parents); node n_groups is the root
    gp = np.asarray(group_parent, dtype=np.int64).reshape(-1)
    group_tree = np.append(np.where(gp >= 0, gp, n_groups), -1)
    order = postorder(group_tree).tolist()
    for g in bar(order, "tree decoding", quiet=quiet):
        mem = members[g]
        node = n + g if g < n_groups else None
        if not mem:
            continue
        rep = np.stack([direction[m] for m in mem]) * radius
        if len(mem) == 1:
            if node is None:
                node = len(parent)
                parent.append(-1)
                kind.append(KIND_ROOT)
                depth.append(0.0)
                pts.append(np.zeros(dim))
            parent[mem[0]] = node
            depth[node] = depth[mem[0]]
            if node >= n:  # a group with one member sits just above it, on its geodesic
                pts[node] = 0.9 * pts[mem[0]]
        else:
            cluster_node = list(mem)  # scipy-style cluster ids: members, then merges
            merges = linkage_lca(rep, method, item_depth)
            for step, (a, b, dep) in enumerate(merges):
                na, nb = cluster_node[int(a)], cluster_node[int(b)]
                last = step == len(merges) - 1
                if last and node is not None:
                    new = node  # the group's last merge is the group node
                    pts[new] = lca_point_np(pts[na], pts[nb])
                else:
                    new = len(parent)
                    parent.append(-1)
                    kind.append(KIND_ROOT if last else KIND_CLUSTER)
                    pts.append(lca_point_np(pts[na], pts[nb]))
                    depth.append(0.0)
                depth[new] = float(dep)
                parent[na] = new
                parent[nb] = new
                cluster_node.append(new)
        if g < n_groups:
            total = rep.sum(0)
            direction[n + g] = total / max(np.linalg.norm(total), 1e-12)
    par = np.asarray(parent, dtype=np.int64)
    return DecodedTree(
        parent=par,
        kind=np.asarray(kind, dtype=object),
        merge_depth=np.asarray(depth, dtype=np.float64),
        points=np.stack(pts) if pts else np.zeros((0, dim)),
    )
