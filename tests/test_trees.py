"""Parent-array trees (mash.trees) and tree metrics (mash.metrics): invariants, hand-worked
values, brute-force and networkx agreement."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from mash.errors import MashError
from mash.metrics import dasgupta_cost, dendrogram_purity
from mash.trees import (
    breadth_first,
    check_parent,
    children_lists,
    depths,
    euler_tour,
    lca,
    leaf_mask,
    postorder,
    subtree_sums,
    transitive_closure,
    tree_levels,
    validate_tree,
)

# ((0, 1), (2, 3)): leaves 0..3, internal 4 = {0, 1}, 5 = {2, 3}, root 6.
BINARY = np.array([4, 4, 5, 5, 6, 6, -1])
# root 4 with four leaf children.
STAR = np.array([4, 4, 4, 4, -1])


# --------------------------------------------------------------------------- random trees


def random_recursive_tree(n: int, rng: np.random.Generator) -> np.ndarray:
    """Any arity, unary nodes included; node labels shuffled so the root is anywhere."""
    parent = np.full(n, -1)
    parent[1:] = [rng.integers(0, k) for k in range(1, n)]
    perm = rng.permutation(n)  # old label k becomes perm[k]
    out = np.full(n, -1)
    out[perm[1:]] = perm[parent[1:]]
    return out


def random_binary_tree(m: int, rng: np.random.Generator) -> np.ndarray:
    """Random merges of ``m`` leaves into a full binary tree over ``2m - 1`` nodes."""
    parent = np.full(2 * m - 1, -1)
    active = list(range(m))
    for k in range(m - 1):
        a, b = sorted(rng.choice(len(active), 2, replace=False), reverse=True)
        parent[active.pop(a)] = m + k
        parent[active.pop(b)] = m + k
        active.append(m + k)
    return parent


def random_trees(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    trees = []
    for _ in range(6):
        trees.append(random_recursive_tree(int(rng.integers(2, 40)), rng))
        trees.append(random_binary_tree(int(rng.integers(2, 25)), rng))
    return trees


# --------------------------------------------------------------------------- brute force


def ancestors(parent: np.ndarray, x: int) -> list[int]:
    """``x`` and its ancestors, nearest first."""
    out = [x]
    while parent[out[-1]] != -1:
        out.append(int(parent[out[-1]]))
    return out


def brute_lca(parent: np.ndarray, a: int, b: int) -> int:
    up = set(ancestors(parent, a))
    return next(x for x in ancestors(parent, b) if x in up)


def brute_under(parent: np.ndarray, x: int, nodes) -> list[int]:
    """The members of ``nodes`` in the subtree of ``x``."""
    return [v for v in nodes if x in ancestors(parent, v)]


def brute_purity(parent, leaves, labels) -> float:
    label_of = dict(zip(leaves.tolist(), labels, strict=True))
    scores = []
    for a, b in itertools.combinations(leaves.tolist(), 2):
        if label_of[a] != label_of[b]:
            continue
        under = brute_under(parent, brute_lca(parent, a, b), leaves.tolist())
        scores.append(np.mean([label_of[v] == label_of[a] for v in under]))
    return float(np.mean(scores)) if scores else float("nan")


def brute_dasgupta(parent, i, j, w, counted) -> float:
    return float(
        sum(
            wk * len(brute_under(parent, brute_lca(parent, a, b), counted))
            for a, b, wk in zip(i, j, w, strict=True)
        )
    )


# --------------------------------------------------------------------------- validation and helpers


def test_validate_tree_returns_the_root():
    assert validate_tree(BINARY) == 6
    assert validate_tree(np.array([-1])) == 0
    assert validate_tree(np.array([1, -1, 1], dtype=np.int32)) == 1


@pytest.mark.parametrize(
    "parent, words",
    [
        (np.array([-1, -1, 0]), "exactly one root"),
        (np.array([1, 2, 0]), "exactly one root"),  # no root at all
        (np.array([-1, 2, 1]), "cycle"),  # detached 2-cycle
        (np.array([-1, 1, 0]), "cycle"),  # self-loop
        (np.array([-1, 0, 3]), "out of range"),
        (np.array([-1, -2]), "out of range"),
        (np.array([[-1, 0]]), "1-D"),
        (np.array([-1.0, 0.0]), "integer"),
        (np.array([], dtype=np.int64), "empty"),
    ],
)
def test_validate_tree_rejects(parent, words):
    with pytest.raises(MashError, match=words):
        validate_tree(parent)


def test_helpers_on_a_small_tree():
    assert [c.tolist() for c in children_lists(BINARY)] == [[], [], [], [], [0, 1], [2, 3], [4, 5]]
    assert leaf_mask(BINARY).tolist() == [True] * 4 + [False] * 3
    assert depths(BINARY).tolist() == [2, 2, 2, 2, 1, 1, 0]
    assert postorder(BINARY).tolist() == [0, 1, 4, 2, 3, 5, 6]
    assert leaf_mask(np.array([-1])).tolist() == [True]


def test_helpers_match_brute_force_on_random_trees():
    for parent in random_trees(1):
        n = parent.shape[0]
        assert depths(parent).tolist() == [len(ancestors(parent, x)) - 1 for x in range(n)]
        kids = children_lists(parent)
        assert [k.tolist() for k in kids] == [
            sorted(np.flatnonzero(parent == x).tolist()) for x in range(n)
        ]
        assert leaf_mask(parent).tolist() == [k.size == 0 for k in kids]
        order = postorder(parent)
        assert sorted(order.tolist()) == list(range(n))
        where = np.empty(n, dtype=int)
        where[order] = np.arange(n)
        child = np.flatnonzero(parent >= 0)
        assert (where[child] < where[parent[child]]).all()
        # DFS postorder: every subtree is a contiguous block ending at its root
        for x in range(n):
            size = len(brute_under(parent, x, range(n)))
            assert set(order[where[x] - size + 1 : where[x] + 1].tolist()) == set(
                brute_under(parent, x, range(n))
            )


def test_deep_chain_is_fine():
    n = 100_000
    chain = np.arange(-1, n - 1)  # 0 <- 1 <- 2 ... depth n - 1
    assert validate_tree(chain) == 0
    assert depths(chain)[-1] == n - 1
    assert postorder(chain)[0] == n - 1
    assert lca(chain, np.array([n - 1, 5]), np.array([7, n - 2])).tolist() == [7, 5]
    # caterpillar: spine nodes n..2n-2 down to the deepest, one leaf hanging off each
    m = 50_000
    cat = np.full(2 * m - 1, -1)
    cat[m : 2 * m - 2] = np.arange(m + 1, 2 * m - 1)
    cat[: m - 1] = np.arange(m, 2 * m - 1)
    cat[m - 1] = 2 * m - 2
    # leaf k hangs off spine node m + k (k < m - 1), leaves m - 2 and m - 1 off the root:
    # lca(0, 1) = m + 1 holds leaves {0, 1}; lca(0, m - 3) = 2m - 3 holds leaves 0..m - 3
    assert dasgupta_cost(cat, np.array([0, 0]), np.array([1, m - 3]), np.ones(2)) == 2 + (m - 2)
    assert dendrogram_purity(cat, np.arange(m), np.zeros(m)) == 1.0


# --------------------------------------------------------------------------- LCA


def test_lca_matches_brute_force():
    rng = np.random.default_rng(2)
    for parent in random_trees(2):
        n = parent.shape[0]
        i, j = rng.integers(0, n, 60), rng.integers(0, n, 60)
        i[:5] = j[:5]  # a node with itself
        assert lca(parent, i, j).tolist() == [
            brute_lca(parent, a, b) for a, b in zip(i, j, strict=True)
        ]
        assert (lca(parent, i, j) == lca(parent, j, i)).all()


def test_lca_shapes_and_errors():
    assert lca(BINARY, np.array([], dtype=int), np.array([], dtype=int)).shape == (0,)
    assert lca(BINARY, np.array([[0, 2]]), np.array([[1, 3]])).tolist() == [[4, 5]]
    with pytest.raises(MashError, match="same shape"):
        lca(BINARY, np.array([0, 1]), np.array([1]))
    with pytest.raises(MashError, match="not a node"):
        lca(BINARY, np.array([0]), np.array([7]))


# --------------------------------------------------------------------------- dendrogram purity


def test_purity_hand_examples():
    leaves = np.arange(4)
    assert dendrogram_purity(BINARY, leaves, np.array(["a", "a", "b", "b"])) == 1.0
    assert dendrogram_purity(BINARY, leaves, np.array(["a", "b", "a", "b"])) == 0.5
    # (0,1): lca 4, 2/2; (0,2) and (1,2): root, 3/4 each
    assert dendrogram_purity(BINARY, leaves, [1, 1, 1, 2]) == pytest.approx((1 + 0.75 + 0.75) / 3)
    assert dendrogram_purity(STAR, leaves, ["a", "a", "b", "b"]) == 0.5
    # leaves outside `leaves` do not count: without leaf 3, the pair (0, 2) sees 2 of 3
    assert dendrogram_purity(BINARY, np.array([0, 1, 2]), ["a", "b", "a"]) == pytest.approx(2 / 3)
    assert np.isnan(dendrogram_purity(BINARY, leaves, ["a", "b", "c", "d"]))
    assert np.isnan(dendrogram_purity(BINARY, np.array([0]), ["a"]))


def test_purity_is_one_when_classes_are_subtrees():
    rng = np.random.default_rng(3)
    for parent in random_trees(3) + [
        random_binary_tree(2000, rng),
        random_recursive_tree(3000, rng),
    ]:
        root = validate_tree(parent)
        leaves = np.flatnonzero(leaf_mask(parent))
        top = np.array([ancestors(parent, int(x))[-2] if x != root else root for x in leaves])
        purity = dendrogram_purity(parent, leaves, top)
        assert purity == 1.0 or (np.isnan(purity) and np.unique(top).size == leaves.size)


def test_purity_matches_brute_force_on_random_trees():
    rng = np.random.default_rng(4)
    for parent in random_trees(4):
        leaves = np.flatnonzero(leaf_mask(parent))
        for n_classes in (1, 2, 4):
            subset = rng.permutation(leaves)[: max(1, int(rng.integers(1, leaves.size + 1)))]
            labels = [f"c{k}" for k in rng.integers(0, n_classes, subset.size)]
            expected = brute_purity(parent, subset, labels)
            got = dendrogram_purity(parent, subset, labels)
            if np.isnan(expected):
                assert np.isnan(got)
            else:
                assert got == pytest.approx(expected, rel=1e-12)


def test_purity_rejects_bad_input():
    with pytest.raises(MashError, match="repeated"):
        dendrogram_purity(BINARY, np.array([0, 0, 1]), [1, 1, 2])
    with pytest.raises(MashError, match="labels must have shape"):
        dendrogram_purity(BINARY, np.arange(4), [1, 1, 2])
    with pytest.raises(MashError, match="missing"):
        dendrogram_purity(BINARY, np.arange(4), np.array([1.0, np.nan, 1.0, 2.0]))
    with pytest.raises(MashError, match="not a node"):
        dendrogram_purity(BINARY, np.array([0, 9]), [1, 1])


# --------------------------------------------------------------------------- Dasgupta cost


def test_dasgupta_hand_examples():
    i, j, w = np.array([0, 0, 2]), np.array([1, 2, 3]), np.array([1.0, 2.0, 0.5])
    assert dasgupta_cost(BINARY, i, j, w) == 1 * 2 + 2 * 4 + 0.5 * 2
    assert dasgupta_cost(STAR, i, j, w) == 4 * w.sum()
    # counting only leaves 0, 1, 2: the root holds 3 of them, node 5 holds 1
    assert dasgupta_cost(BINARY, i, j, w, leaves=np.array([0, 1, 2])) == 1 * 2 + 2 * 3 + 0.5 * 1
    assert (
        dasgupta_cost(BINARY, np.array([], dtype=int), np.array([], dtype=int), np.array([])) == 0.0
    )


def test_dasgupta_matches_brute_force_on_random_trees():
    rng = np.random.default_rng(5)
    for parent in random_trees(5):
        leaves = np.flatnonzero(leaf_mask(parent))
        i, j = rng.choice(leaves, 30), rng.choice(leaves, 30)
        w = rng.random(30)
        assert dasgupta_cost(parent, i, j, w) == pytest.approx(
            brute_dasgupta(parent, i, j, w, leaves)
        )
        subset = rng.permutation(leaves)[: leaves.size // 2 + 1]
        assert dasgupta_cost(parent, i, j, w, leaves=subset) == pytest.approx(
            brute_dasgupta(parent, i, j, w, subset.tolist())
        )


def test_dasgupta_rejects_bad_input():
    with pytest.raises(MashError, match="same length"):
        dasgupta_cost(BINARY, np.array([0, 1]), np.array([1, 2]), np.array([1.0]))
    with pytest.raises(MashError, match="non-finite"):
        dasgupta_cost(BINARY, np.array([0]), np.array([1]), np.array([np.inf]))


# --- transitive closure ---------------------------------------------------------------


def test_closure_small_forest():
    #   0        5
    #  / \\      |
    # 1   2     6
    #     |
    #     3 - 4
    parent = np.array([-1, 0, 0, 2, 3, -1, 5])
    got = {tuple(r) for r in transitive_closure(parent).tolist()}
    want = {(1, 0), (2, 0), (3, 2), (3, 0), (4, 3), (4, 2), (4, 0), (6, 5)}
    assert got == want
    out = transitive_closure(parent)
    assert out.dtype == np.int64 and out.shape == (8, 2)


def test_closure_matches_depth_sum():
    parent = np.repeat(np.arange(-1, 13), [1] + [3] * 13)  # balanced, branching 3, depth 3
    rel = transitive_closure(parent)
    assert rel.shape[0] == 3 * 1 + 9 * 2 + 27 * 3
    assert len({tuple(r) for r in rel.tolist()}) == rel.shape[0]


@pytest.mark.parametrize(
    "parent", [np.array([1, 2, 0]), np.array([-1, 2, 1]), np.array([0]), np.array([-1, 3, 1, 2])]
)
def test_closure_cycle_raises(parent):
    with pytest.raises(MashError, match="cycle"):
        transitive_closure(parent)


def test_closure_out_of_range_raises():
    with pytest.raises(MashError, match="out of range"):
        transitive_closure(np.array([-1, 5]))


def test_forest_validation():
    assert check_parent(np.array([-1, 0, -1, 2]), forest=True).tolist() == [-1, 0, -1, 2]
    assert check_parent(np.zeros(0, dtype=float), forest=True).shape == (0,)
    assert depths(np.array([-1, 0, -1, 2, 3]), forest=True).tolist() == [0, 1, 0, 1, 2]
    with pytest.raises(MashError, match="exactly one root"):
        check_parent(np.array([-1, 0, -1]))
    with pytest.raises(MashError, match="cycle"):
        check_parent(np.array([-1, 2, 1]), forest=True)


# --------------------------------------------------------------------------- networkx agreement


def as_digraph(parent: np.ndarray) -> nx.DiGraph:
    """Edges parent -> child, children added in ascending order (networkx visits them so)."""
    g = nx.DiGraph()
    g.add_nodes_from(range(parent.shape[0]))
    g.add_edges_from((int(parent[x]), x) for x in range(parent.shape[0]) if parent[x] >= 0)
    return g


def random_forest(n: int, rng: np.random.Generator) -> np.ndarray:
    parent = np.full(n, -1)
    perm = rng.permutation(n)
    for k in range(1, n):
        if rng.random() < 0.85:
            parent[perm[k]] = perm[rng.integers(0, k)]
    return parent


def test_vectorised_versions_match_networkx_on_random_trees():
    rng = np.random.default_rng(5)
    for parent in random_trees(5):
        n = parent.shape[0]
        g = as_digraph(parent)
        root = validate_tree(parent)
        assert nx.is_arborescence(g)
        assert postorder(parent).tolist() == list(nx.dfs_postorder_nodes(g, root))
        assert breadth_first(parent).tolist() == [root] + [v for _, v in nx.bfs_edges(g, root)]
        levels = tree_levels(parent)
        assert [sorted(lv.tolist()) for lv in levels] == [
            sorted(lv) for lv in nx.bfs_layers(g, [root])
        ]
        assert depths(parent).tolist() == [nx.shortest_path_length(g, root, x) for x in range(n)]
        leaves = leaf_mask(parent)
        want_sizes = [sum(leaves[d] for d in nx.descendants(g, x) | {x}) for x in range(n)]
        assert subtree_sums(parent, leaves).tolist() == want_sizes
        pairs = [(int(a), int(b)) for a, b in rng.integers(0, n, (40, 2))]
        want = dict(nx.tree_all_pairs_lowest_common_ancestor(g, root, pairs))
        i, j = np.array(pairs).T
        assert lca(parent, i, j).tolist() == [want[p] for p in pairs]


def test_closure_matches_networkx_on_random_forests():
    rng = np.random.default_rng(6)
    for _ in range(20):
        parent = random_forest(int(rng.integers(1, 40)), rng)
        assert not nx.is_arborescence(as_digraph(parent)) or (parent == -1).sum() == 1
        got = transitive_closure(parent)
        closure = nx.transitive_closure_dag(as_digraph(parent))
        assert sorted(map(tuple, got.tolist())) == sorted((v, u) for u, v in closure.edges)
        # sorted by node, then nearest ancestor first
        d = depths(parent, forest=True)
        assert (np.diff(got[:, 0]) >= 0).all()
        same = np.diff(got[:, 0]) == 0
        assert (np.diff(d[got[:, 1]])[same] < 0).all()


def test_non_trees_rejected_like_networkx():
    for parent in [np.array([-1, 2, 1]), np.array([-1, -1, 0]), np.array([1, 0])]:
        assert not nx.is_arborescence(as_digraph(parent))
        with pytest.raises(MashError):
            validate_tree(parent)


def test_euler_tour_intervals_are_subtrees():
    for parent in random_trees(7):
        tour = euler_tour(parent)
        g = as_digraph(parent)
        for x in range(parent.shape[0]):
            inside = (tour.tin >= tour.tin[x]) & (tour.tin <= tour.tout[x])
            assert set(np.flatnonzero(inside).tolist()) == nx.descendants(g, x) | {x}
