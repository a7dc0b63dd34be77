"""Compress a decoded binary tree into a readable multi-level hierarchy.

A binary tree over thousands of concepts is thousands of levels of "A vs the rest".
Clusters whose merge is barely deeper than their parent's (a small *gap* in LCA depth)
add little: they are dissolved into the parent, smallest gap first, as long as the
parent keeps at most ``max_children`` children. Concepts are never dissolved; a known
group is dissolved only when it has a single child and is not a top group (a chain
chapter → block → category → one code becomes chapter → code).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from mash.hyperbolic.decode import KIND_CLUSTER, KIND_GROUP
from mash.trees import breadth_first, children_lists


def compress_tree(
    parent: np.ndarray,
    kind: np.ndarray,
    merge_depth: np.ndarray,
    *,
    max_children: int = 10,
    gap_quantile: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Dissolve low-gap clusters under a branching bound.

    Parameters
    ----------
    parent : ndarray, shape (N,)
        −1 for the root.
    kind : ndarray of str, shape (N,)
        Only ``"cluster"`` nodes may be dissolved.
    merge_depth : ndarray, shape (N,)
        LCA depth of each node's merge.
    max_children : int
        Upper bound on the children a dissolve may leave a node with (a node that
        already has more, e.g. a large known group, keeps them).
    gap_quantile : float in [0, 1]
        Clusters whose gap to their parent is below this quantile of all cluster gaps
        are candidates; 0 keeps the binary tree, 1 dissolves as much as the bound lets.

    Returns
    -------
    parent : ndarray, shape (M,)
        The compressed tree, re-indexed.
    keep : ndarray, shape (M,)
        Old index of each kept node (kept nodes stay in their original order).
    """
    n = len(parent)
    if max_children < 2:
        raise ValueError("max_children must be at least 2")
    children = [c.tolist() for c in children_lists(parent)]
    bfs = breadth_first(parent)
    root = int(bfs[0])
    is_cluster = kind == KIND_CLUSTER
    gaps = np.maximum(merge_depth - np.where(parent >= 0, merge_depth[np.maximum(parent, 0)], 0.0), 0.0)
    threshold = float(np.quantile(gaps[is_cluster], gap_quantile)) if is_cluster.any() else 0.0
    if gap_quantile >= 1.0:
        threshold = np.inf
    new_parent = parent.copy()
    removed = np.zeros(n, dtype=bool)
    # single-child known groups below the top level, bottom-up
    for v in bfs[::-1].tolist():
        p = new_parent[v]
        if kind[v] == KIND_GROUP and len(children[v]) == 1 and p >= 0 and new_parent[p] >= 0:
            (c,) = children[v]
            at = children[p].index(v)
            children[p][at] = c
            new_parent[c] = p
            removed[v] = True
    queue = deque([root])
    while queue:
        p = queue.popleft()
        changed = True
        while changed:
            changed = False
            cands = [c for c in children[p] if is_cluster[c]]
            cands.sort(key=lambda c: (max(merge_depth[c] - merge_depth[p], 0.0), c))
            for c in cands:
                gap = max(merge_depth[c] - merge_depth[p], 0.0)
                if gap >= threshold:
                    break
                if len(children[p]) - 1 + len(children[c]) > max_children:
                    continue
                at = children[p].index(c)
                children[p][at : at + 1] = children[c]
                for g in children[c]:
                    new_parent[g] = p
                removed[c] = True
                changed = True
                break
        queue.extend(children[p])
    keep = np.flatnonzero(~removed)
    remap = np.full(n, -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    out = new_parent[keep]
    out = np.where(out >= 0, remap[np.maximum(out, 0)], -1)
    return out.astype(np.int64), keep
