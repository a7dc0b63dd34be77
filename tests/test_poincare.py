"""Poincaré embeddings (Nickel & Kiela) and reconstruction metrics: invariants, not printouts.

``fit_ranking``, ``tree_init`` and ``reconstruction_metrics`` are benchmark code
(``bench/_poincare.py``, ``bench/_reconstruction_metrics.py``); ``ranking_loss`` is the
library's (``mash.hyperbolic.embed``).
"""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import geoopt
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from mash.errors import MashError
from mash.hyperbolic.embed import ranking_loss
from mash.trees import transitive_closure

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import _poincare  # noqa: E402
import _reconstruction_metrics  # noqa: E402
from _poincare import fit_ranking, pair_keys, sample_negatives, tree_init  # noqa: E402
from _reconstruction_metrics import reconstruction_metrics  # noqa: E402


def balanced_tree(branching: int, depth: int) -> np.ndarray:
    """Parent array of a balanced tree in breadth-first order, root 0."""
    parent = [-1]
    frontier = [0]
    for _ in range(depth):
        nxt = []
        for p in frontier:
            for _ in range(branching):
                parent.append(p)
                nxt.append(len(parent) - 1)
        frontier = nxt
    return np.array(parent, dtype=np.int64)


def brute_force(points: np.ndarray, relations: np.ndarray, geometry: str) -> tuple[float, float]:
    """Mean rank and MAP with full distance rows, argsort and sklearn."""
    x = torch.from_numpy(points)
    manifold = geoopt.PoincareBall() if geometry == "poincare" else geoopt.Euclidean(ndim=1)
    ranks, aps = [], []
    for u in np.unique(relations[:, 0]):
        dist = manifold.dist(x[u : u + 1], x).numpy().copy()
        nbrs = relations[relations[:, 0] == u, 1]
        others = np.setdiff1d(np.arange(len(x)), [u])
        labels = np.isin(others, nbrs)
        aps.append(average_precision_score(labels, -dist[others]))
        for v in nbrs:
            masked = dist.copy()
            masked[u] = np.inf
            masked[nbrs] = np.inf
            masked[v] = dist[v]
            ranks.append(int(np.flatnonzero(np.argsort(masked, kind="stable") == v)[0]) + 1)
    return float(np.mean(ranks)), float(np.mean(aps))


# --- loss ------------------------------------------------------------------------------


def test_ranking_loss_hand_computed():
    ball = geoopt.PoincareBall()
    u = torch.tensor([[0.1, 0.2], [0.0, -0.3]], dtype=torch.float64)
    v = torch.tensor([[0.3, 0.1], [0.1, -0.5]], dtype=torch.float64)
    negs = torch.tensor(
        [[[-0.5, 0.0], [0.2, 0.7], [0.0, 0.0]], [[0.6, 0.1], [-0.2, 0.2], [0.4, -0.4]]],
        dtype=torch.float64,
    )

    def d(a, b):  # arcosh form of the Poincaré distance
        a, b = np.asarray(a), np.asarray(b)
        z = 1 + 2 * np.sum((a - b) ** 2) / ((1 - a @ a) * (1 - b @ b))
        return np.arccosh(z)

    want = []
    for b in range(2):
        pos = np.exp(-d(u[b], v[b]))
        neg = sum(np.exp(-d(u[b], n)) for n in negs[b])
        want.append(-np.log(pos / (pos + neg)))
    got = ranking_loss(ball, u, v, negs)
    assert got.shape == ()
    assert float(got) == pytest.approx(np.mean(want), rel=1e-10)

    # Euclidean variant and a manifold without a closed form both follow manifold.dist
    flat = geoopt.Euclidean(ndim=1)
    want_e = []
    for b in range(2):
        dp = torch.linalg.norm(u[b] - v[b])
        dn = torch.linalg.norm(u[b] - negs[b], dim=-1)
        want_e.append(torch.logsumexp(-torch.cat([dp[None], dn]), 0) + dp)
    assert float(ranking_loss(flat, u, v, negs)) == pytest.approx(float(np.mean(want_e)), rel=1e-10)
    curved = geoopt.Stereographic(k=-1.0)  # same geometry, generic manifold.dist path
    assert float(ranking_loss(curved, u, v, negs)) == pytest.approx(float(got), rel=1e-8)


def test_ranking_loss_gradient_finite_at_coincident_points():
    ball = geoopt.PoincareBall()
    u = torch.tensor([[0.2, 0.1]], dtype=torch.float64, requires_grad=True)
    v = u.detach().clone()
    negs = torch.stack([u.detach()[0], torch.tensor([0.5, 0.5], dtype=torch.float64)])[None]
    loss = ranking_loss(ball, u, v, negs)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(u.grad).all()


# --- negatives -------------------------------------------------------------------------


def test_negatives_avoid_self_and_positives():
    parent = balanced_tree(3, 3)
    rel = transitive_closure(parent)
    n = parent.size
    keys = pair_keys(rel, n)
    rng = np.random.default_rng(0)
    u = rel[:, 0].repeat(20)
    neg, collisions = sample_negatives(u, n, 30, keys, rng, return_collisions=True)
    assert neg.shape == (u.size, 30) and neg.dtype == np.int64
    assert neg.min() >= 0 and neg.max() < n
    positives = {tuple(r) for r in rel.tolist()} | {tuple(r[::-1]) for r in rel.tolist()}
    bad = sum((a, b) in positives or a == b for a, row in zip(u, neg, strict=True) for b in row)
    assert bad == collisions
    assert collisions <= 1e-4 * neg.size


def test_negatives_collisions_counted_when_unavoidable():
    # node 0 is related to every other node: no valid negative exists
    rel = np.array([[i, 0] for i in range(1, 4)])
    neg, collisions = sample_negatives(
        np.zeros(5, dtype=np.int64), 4, 3, pair_keys(rel, 4), np.random.default_rng(0),
        return_collisions=True,
    )
    assert collisions == neg.size


# --- training --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_tree():
    parent = balanced_tree(3, 3)  # 40 nodes, 120 relations
    return parent, transitive_closure(parent)


SMALL = dict(dim=5, batch_size=64, lr=0.1, burn_in=10, n_negatives=10, threads=1)


@pytest.fixture(scope="module")
def small_fit(small_tree):
    parent, rel = small_tree
    return fit_ranking(rel, parent.size, epochs=100, seed=3, **SMALL)


def test_small_tree_reconstructs(small_tree, small_fit):
    parent, rel = small_tree
    pts = small_fit.points
    assert pts.shape == (parent.size, 5) and pts.dtype == np.float64
    assert np.isfinite(pts).all()
    assert (np.linalg.norm(pts, axis=1) < 1.0).all()
    assert small_fit.losses[-1] < small_fit.losses[0]
    assert small_fit.relations_per_s > 0 and small_fit.epochs == 100
    assert len(small_fit.losses) == 100 and small_fit.n_collisions == 0
    m = reconstruction_metrics(pts, rel)
    assert m["n_nodes"] == parent.size - 1 and m["n_relations"] == rel.shape[0]
    assert m["map"] >= 0.95  # 0.989-1.0 over seeds 0-4
    assert m["mean_rank"] <= 1.1
    # the root sits nearest the origin, leaves furthest out
    depth = np.bincount(rel[:, 0], minlength=parent.size)
    norms = np.linalg.norm(pts, axis=1)
    assert norms[depth == 0].max() < norms[depth == 3].min()


def test_same_seed_identical(small_tree):
    parent, rel = small_tree
    a = fit_ranking(rel, parent.size, epochs=15, seed=7, **SMALL)
    b = fit_ranking(rel, parent.size, epochs=15, seed=7, **SMALL)
    np.testing.assert_array_equal(a.points, b.points)
    assert a.losses == b.losses
    c = fit_ranking(rel, parent.size, epochs=15, seed=8, **SMALL)
    assert not np.array_equal(a.points, c.points)


def test_euclidean_geometry_runs(small_tree):
    parent, rel = small_tree
    fit = fit_ranking(rel, parent.size, geometry="euclidean", epochs=60, **SMALL)
    assert fit.geometry == "euclidean" and np.isfinite(fit.points).all()
    assert fit.losses[-1] < fit.losses[0]
    m = reconstruction_metrics(fit.points, rel, geometry="euclidean")
    assert 0.0 < m["map"] <= 1.0


def test_tree_init_layout():
    parent = balanced_tree(4, 4)  # 341 nodes
    rel = transitive_closure(parent)
    depth = np.bincount(rel[:, 0], minlength=parent.size)
    pts = tree_init(parent, 10, seed=1)
    assert pts.shape == (parent.size, 10) and np.isfinite(pts).all()
    norms = np.linalg.norm(pts, axis=1)
    assert norms.max() < 1.0
    # radius is set by depth: root_radius + step * depth in hyperbolic distance
    np.testing.assert_allclose(2 * np.arctanh(norms), 1.0 + 1.5 * depth, rtol=1e-9)
    # the construction alone ranks ancestors well: 0.92-0.94 over seeds 0-4 at 10 dims
    # (0.71-0.82 at 5 dims; random points in the ball about 0.02)
    assert reconstruction_metrics(pts, rel)["map"] >= 0.85
    np.testing.assert_array_equal(pts, tree_init(parent, 10, seed=1))
    assert not np.array_equal(pts, tree_init(parent, 10, seed=2))
    flat = tree_init(parent, 10, seed=1, geometry="euclidean")
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1.0 + 1.5 * depth)


def test_tree_init_rejects_bad_input():
    with pytest.raises(MashError, match="cycle"):
        tree_init(np.array([1, 0]), 3)
    with pytest.raises(MashError, match="dim"):
        tree_init(np.array([-1, 0]), 1)
    with pytest.raises(MashError, match="step"):
        tree_init(np.array([-1, 0]), 3, step=0)
    with pytest.raises(MashError, match="geometry"):
        tree_init(np.array([-1, 0]), 3, geometry="lorentz")


TREE_SMALL = {k: v for k, v in SMALL.items() if k not in ("lr", "burn_in")}


def test_fit_from_tree_init_keeps_reconstruction(small_tree):
    parent, rel = small_tree
    start = tree_init(parent, 5, seed=0)
    fit = fit_ranking(rel, parent.size, epochs=10, init=start, burn_in=0, lr=0.01,
                      final_lr_factor=1.0, **TREE_SMALL)
    assert np.isfinite(fit.points).all() and (np.linalg.norm(fit.points, axis=1) < 1).all()
    assert reconstruction_metrics(fit.points, rel)["map"] >= 0.95
    # it started where it was told to: one tiny step leaves the points near the start
    nudged = fit_ranking(rel, parent.size, epochs=1, init=start, burn_in=0, lr=1e-6,
                         **TREE_SMALL)
    np.testing.assert_allclose(nudged.points, start, atol=1e-4)
    with pytest.raises(MashError, match="shape"):
        fit_ranking(rel, parent.size, init=start[:, :3], **SMALL)
    with pytest.raises(MashError, match="outside"):
        fit_ranking(rel, parent.size, init=start * 2, **SMALL)


def test_unknown_geometry_and_bad_relations():
    rel = np.array([[1, 0]])
    with pytest.raises(MashError, match="poincare"):
        fit_ranking(rel, 2, geometry="lorentz")
    with pytest.raises(MashError, match="outside"):
        fit_ranking(np.array([[5, 0]]), 2)
    with pytest.raises(MashError, match="itself"):
        fit_ranking(np.array([[1, 1]]), 2)


def test_non_finite_loss_raises(small_tree):
    parent, rel = small_tree
    with pytest.raises(MashError, match="non-finite"):
        fit_ranking(rel, parent.size, dim=2, epochs=3, lr=1e300, burn_in=0, batch_size=16,
                    geometry="euclidean")


# --- reconstruction metrics ------------------------------------------------------------


@pytest.mark.parametrize("geometry", ["poincare", "euclidean"])
def test_metrics_match_sklearn_brute_force(geometry):
    rng = np.random.default_rng(0)
    n = 60
    pts = rng.normal(size=(n, 3))
    pts *= (rng.uniform(0, 0.95, n) / np.linalg.norm(pts, axis=1))[:, None]
    rel = np.unique(rng.integers(0, n, size=(200, 2)), axis=0)
    rel = rel[rel[:, 0] != rel[:, 1]]
    m = reconstruction_metrics(pts, rel, geometry=geometry, chunk=7)
    mean_rank, map_ = brute_force(pts, rel, geometry)
    assert m["n_nodes"] == np.unique(rel[:, 0]).size and m["n_relations"] == rel.shape[0]
    assert m["mean_rank"] == pytest.approx(mean_rank, rel=1e-12)
    assert m["map"] == pytest.approx(map_, rel=1e-12)
    # a node sample restricts the queries but still ranks against every node
    sample = np.unique(rel[:, 0])[::3]
    sub = reconstruction_metrics(pts, rel, geometry=geometry, nodes=sample)
    mr, mp = brute_force(pts, rel[np.isin(rel[:, 0], sample)], geometry)
    assert sub["n_nodes"] == sample.size
    assert (sub["mean_rank"], sub["map"]) == (pytest.approx(mr), pytest.approx(mp))


def test_metrics_ties_follow_sklearn():
    # duplicated points make exact distance ties between neighbours and non-neighbours
    pts = np.array([[0.0, 0.0], [0.3, 0.0], [0.3, 0.0], [0.0, 0.3], [0.3, 0.0], [-0.2, 0.1]])
    rel = np.array([[1, 0], [1, 2], [3, 0], [3, 5], [5, 4]])
    m = reconstruction_metrics(pts, rel)
    _, map_ = brute_force(pts, rel, "poincare")
    assert m["map"] == pytest.approx(map_, rel=1e-12)


def test_metrics_reject_bad_input():
    with pytest.raises(MashError, match="ball"):
        reconstruction_metrics(np.array([[0.0, 0.0], [1.0, 0.5]]), np.array([[1, 0]]))
    with pytest.raises(MashError, match="geometry"):
        reconstruction_metrics(np.zeros((2, 2)), np.array([[1, 0]]), geometry="sphere")
    with pytest.raises(MashError, match="no query"):
        reconstruction_metrics(np.zeros((3, 2)), np.array([[1, 0]]), nodes=np.array([2]))


def test_fit_ranking_keeps_global_rng():
    parent = np.array([-1, 0, 0, 1, 1, 2, 2])
    rel = transitive_closure(parent)
    torch.manual_seed(1234)
    fit_ranking(rel, parent.size, dim=3, epochs=2, batch_size=16, n_negatives=4, seed=1, threads=1)
    after = torch.rand(4)
    torch.manual_seed(1234)
    assert torch.equal(after, torch.rand(4))


@pytest.mark.parametrize("module", [_poincare, _reconstruction_metrics])
def test_bench_docstring_examples(module):
    """The examples in the bench modules' docstrings (pytest collects only mash/'s)."""
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
