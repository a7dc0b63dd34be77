"""Node naming (mash.naming) and disk plots (mash.hyperbolic.plot)."""

from __future__ import annotations

import subprocess
import sys

import geoopt
import numpy as np
import pytest
import torch

from mash.errors import MashError
from mash.hyperbolic.plot import plot_disk, project_to_disk
from mash.naming import name_nodes, node_terms
from mash.trees import tree_levels

HEART = [
    "Congestive heart failure",
    "Systolic heart failure, acute",
    "Diastolic heart failure, chronic",
    "Hypertensive heart failure, unspecified",
]
DIABETES = [
    "Type 2 diabetes mellitus without complications",
    "Type 2 diabetes mellitus with ketoacidosis",
    "Type 2 DM w/ hyperglycemia",
    "Type 1 diabetes mellitus with ketoacidosis",
]


def _two_groups() -> tuple[np.ndarray, list[str]]:
    """Root 0 -> heart group 1, diabetes group 2 -> their leaves."""
    parent = [-1, 0, 0] + [1] * len(HEART) + [2] * len(DIABETES)
    texts = ["", "", ""] + HEART + DIABETES
    return np.array(parent), texts


# ----------------------------------------------------------------------------- naming


def test_group_labels_name_the_shared_concept() -> None:
    parent, texts = _two_groups()
    labels = name_nodes(parent, texts)
    assert "heart failure" in labels[1]
    assert "diabetes" in labels[2]
    assert labels[1] != labels[2]


def test_leaves_keep_their_description_and_every_label_is_nonempty() -> None:
    parent, texts = _two_groups()
    labels = name_nodes(parent, texts)
    assert len(labels) == parent.size
    assert all(isinstance(x, str) and x.strip() for x in labels)
    assert labels[3:] == HEART + DIABETES


def test_fixed_labels_are_kept() -> None:
    parent, texts = _two_groups()
    fixed = {0: "All diagnoses", 2: "Diabetes (E08-E13)", 5: "My leaf"}
    labels = name_nodes(parent, texts, fixed=fixed)
    for v, lab in fixed.items():
        assert labels[v] == lab
    assert "heart failure" in labels[1]


def test_deterministic() -> None:
    parent, texts = _two_groups()
    assert name_nodes(parent, texts) == name_nodes(parent, texts)


def test_medoid_fallback_when_no_term_is_shared() -> None:
    parent = np.array([-1, 0, 0, 0])
    texts = ["", "Cholera", "Fracture of femur", "Asthma"]
    label = name_nodes(parent, texts, min_share=0.5)[0]
    assert label.endswith(" and related")
    assert label[: -len(" and related")] in texts[1:]


def test_identical_siblings_are_disambiguated() -> None:
    # Both groups are "heart failure"; one is mostly acute, the other mostly chronic.
    parent = np.array([-1, 0, 0, 1, 1, 1, 2, 2, 2])
    texts = [
        "",
        "",
        "",
        "Acute heart failure",
        "Acute on chronic heart failure",
        "Heart failure",
        "Chronic heart failure",
        "Chronic diastolic heart failure",
        "Heart failure",
    ]
    labels = name_nodes(parent, texts, max_terms=2, min_share=0.9)
    assert "heart failure" in labels[1] and "heart failure" in labels[2]
    assert labels[1] != labels[2]


def test_deep_chain_is_not_recursive() -> None:
    # A caterpillar 3,000 levels deep: every internal node has one leaf and one subtree.
    n_leaves = 3000
    n = 2 * n_leaves - 1
    parent = np.full(n, -1, dtype=np.int64)
    internal = np.arange(n_leaves, n)
    parent[np.arange(n_leaves - 1)] = internal  # leaf k hangs from internal node k
    parent[internal[1:]] = internal[:-1]
    parent[n_leaves - 1] = internal[-1]
    texts = [
        f"{'Acute' if k % 2 else 'Chronic'} kidney disease stage {k % 5 + 1}"
        for k in range(n_leaves)
    ] + [""] * (n_leaves - 1)
    labels = name_nodes(parent, texts)
    assert all(x.strip() for x in labels)
    # The deepest internal node has two leaves; its label is made of their terms.
    words = {
        w for k in (n_leaves - 2, n_leaves - 1) for t in node_terms(texts[k]) for w in t.split()
    }
    deepest = labels[internal[-1]].replace(",", " ").split()
    assert deepest and set(deepest) <= words


def test_node_terms_expands_abbreviations_and_drops_filler() -> None:
    assert node_terms("Fx of femur w/o displacement, NOS") == ["fracture", "femur", "displacement"]
    assert node_terms("Type 2 DM") == ["type 2", "diabetes", "mellitus"]


@pytest.mark.parametrize(
    "parent",
    [np.array([-1, 0, -1]), np.array([1, 0, 0]), np.array([-1, 5]), np.array([[-1, 0]])],
)
def test_malformed_trees_raise(parent: np.ndarray) -> None:
    with pytest.raises(MashError):
        tree_levels(parent)


def test_bad_arguments_raise() -> None:
    parent, texts = _two_groups()
    with pytest.raises(MashError):
        name_nodes(parent, texts[:-1])
    with pytest.raises(MashError):
        name_nodes(parent, texts, min_share=0.0)
    with pytest.raises(MashError):
        name_nodes(parent, texts, fixed={99: "x"})


# ------------------------------------------------------------------------------- plot


def _ball_points(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ball = geoopt.PoincareBall()
    tangent = torch.from_numpy(rng.normal(size=(n, d)) * rng.uniform(0.0, 3.0, size=(n, 1)))
    return ball.expmap0(tangent).numpy()


@pytest.mark.parametrize("d", [1, 3, 10])
def test_project_to_disk_keeps_distance_to_origin(d: int) -> None:
    x = _ball_points(200, d)
    x[0] = 0.0
    y = project_to_disk(x)
    ball = geoopt.PoincareBall()
    before = ball.dist0(torch.from_numpy(x)).numpy()
    after = ball.dist0(torch.from_numpy(y)).numpy()
    assert y.shape == (200, 2)
    np.testing.assert_allclose(after, before, atol=1e-6, rtol=0)
    assert np.linalg.norm(y, axis=1).max() < 1.0
    np.testing.assert_array_equal(project_to_disk(x), y)  # deterministic


def test_project_to_disk_2d_is_identity_and_rejects_outside_points() -> None:
    x = _ball_points(10, 2)
    np.testing.assert_array_equal(project_to_disk(x), x)
    with pytest.raises(MashError):
        project_to_disk(np.array([[0.6, 0.9, 0.0]]))


def test_plot_disk_writes_png_atomically(tmp_path) -> None:
    parent, texts = _two_groups()
    labels = name_nodes(parent, texts)
    coords = project_to_disk(_ball_points(parent.size, 4, seed=1))
    out = tmp_path / "tree.png"
    plot_disk(coords, parent, labels, out, title="test", dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    site = np.array(["A", "B"] * 6)[: parent.size]
    plot_disk(coords, parent, labels, tmp_path / "tree.svg", highlight=site, label_depth=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree.png", "tree.svg"]
    with pytest.raises(MashError):
        plot_disk(coords, parent, labels, tmp_path / "tree.gif")


def test_importing_plot_does_not_import_matplotlib() -> None:
    code = "import sys, mash.hyperbolic.plot; print('matplotlib' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
