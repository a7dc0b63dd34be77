"""Agglomerative-clustering baselines of the hierarchy benchmark (bench/_linkage.py)."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import pdist

from mash.errors import MashError
from mash.metrics import dendrogram_purity
from mash.trees import leaf_mask, validate_tree

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import _linkage  # noqa: E402
from _linkage import LINKAGE_METHODS, linkage_to_parent, linkage_tree  # noqa: E402


def test_linkage_to_parent_gives_a_valid_tree():
    rng = np.random.default_rng(6)
    for n in (1, 2, 3, 17):
        Z = linkage(rng.normal(size=(n, 3)), "average") if n > 1 else np.zeros((0, 4))
        parent = linkage_to_parent(Z)
        assert parent.shape == (2 * n - 1,)
        assert validate_tree(parent) == 2 * n - 2
        assert np.flatnonzero(leaf_mask(parent)).tolist() == list(range(n))
        if n > 1:
            assert (np.bincount(parent[parent >= 0])[n:] == 2).all()


@pytest.mark.parametrize(
    "Z, words",
    [
        (np.zeros((2, 3)), "shape"),
        (np.array([[0.0, 1.0, 0.1, 2], [0.0, 2.0, 0.2, 3]]), "twice"),
        (np.array([[0.0, 3.0, 0.1, 2], [1.0, 2.0, 0.2, 3]]), "outside"),
        (np.array([[0.5, 1.0, 0.1, 2], [2.0, 3.0, 0.2, 3]]), "integral"),
    ],
)
def test_linkage_to_parent_rejects(Z, words):
    with pytest.raises(MashError, match=words):
        linkage_to_parent(Z)


def test_linkage_tree_separates_clear_clusters():
    rng = np.random.default_rng(7)
    centres = np.eye(6)[:4] * 10
    labels = np.repeat(np.arange(4), 15)
    x = centres[labels] + rng.normal(scale=0.3, size=(60, 6))
    for method in LINKAGE_METHODS:
        parent = linkage_tree(x, method=method)
        assert parent.shape == (119,)
        assert dendrogram_purity(parent, np.arange(60), labels) == 1.0
    assert (
        dendrogram_purity(linkage_tree(x, "average", metric="euclidean"), np.arange(60), labels)
        == 1.0
    )


def test_linkage_tree_ward_is_euclidean_on_unit_rows():
    x = np.random.default_rng(8).normal(size=(40, 5))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = linkage_to_parent(linkage(pdist(unit), "ward"))
    assert (linkage_tree(x, "ward") == expected).all()
    expected = linkage_to_parent(linkage(pdist(x, "cosine"), "average"))
    assert (linkage_tree(x, "average") == expected).all()


def test_linkage_tree_errors():
    x = np.random.default_rng(9).normal(size=(5, 3))
    with pytest.raises(MashError, match="average.*complete.*single.*ward"):
        linkage_tree(x, method="centroid")
    with pytest.raises(MashError, match="ward"):
        linkage_tree(x, method="ward", metric="euclidean")
    x[2] = 0.0
    with pytest.raises(MashError, match="row 2"):
        linkage_tree(x)
    assert linkage_tree(np.ones((1, 3))).tolist() == [-1]


def test_bench_docstring_examples():
    result = doctest.testmod(_linkage)
    assert result.attempted > 0 and result.failed == 0
