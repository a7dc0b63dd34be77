"""`mash build-hierarchy` and its parts: LCA geometry, decoding, labels, invariants, I/O."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import mash
from mash.align.result import Alignment
from mash.cli import main
from mash.errors import MashError, MashInputError
from mash.hyperbolic.build import build_hierarchy
from mash.hyperbolic.compress import compress_tree
from mash.hyperbolic.decode import decode_tree, linkage_lca
from mash.hyperbolic.hierarchy import Hierarchy, check_tree

FAST = {"epochs": 15}


# ------------------------------------------------------------------ helpers


def make_alignment(vectors, *, parents=None, sites=None, concept_ids=None, descriptions=None):
    """An in-memory Alignment of one code per row (site_X unless ``sites``)."""
    n = len(vectors)
    sites = np.asarray(sites if sites is not None else ["site_X"] * n, dtype=object)
    codes = np.array([f"K{i:03d}" for i in range(n)], dtype=object)
    cids = concept_ids if concept_ids is not None else [f"C{i:04d}" for i in range(n)]
    desc = descriptions if descriptions is not None else [f"code {i}" for i in range(n)]
    concepts = pd.DataFrame({"concept_id": cids, "site": sites, "code": codes, "description": desc})
    if parents is not None:
        concepts["parent"] = parents
    vec = np.asarray(vectors, dtype=np.float64)
    emb = {
        "site": sites.astype(str), "code": codes.astype(str), "text": vec.astype(np.float32),
        "cooccurrence": np.zeros((n, 4), np.float32), "cooccurrence_reliable": np.zeros(n, bool),
        "vectors": np.hstack([vec, np.zeros((n, 4))]),
    }
    return Alignment("site_X", pd.DataFrame(columns=["site", "code", "reference_code", "score", "rank"]),
                     concepts, emb, {"sites": {s: {} for s in dict.fromkeys(sites)}})


def known_tree_vectors(seed=0, noise=0.02):
    """16 points: 2 super-groups × 4 groups × 2 members, directions nested."""
    rng = np.random.default_rng(seed)
    d = 64
    out, group, sup = [], [], []
    for s in range(2):
        s_dir = rng.normal(size=d)
        for g in range(4):
            g_dir = s_dir + 0.6 * rng.normal(size=d)
            for _ in range(2):
                out.append(g_dir + noise * np.linalg.norm(g_dir) * rng.normal(size=d) / np.sqrt(d))
                group.append(4 * s + g)
                sup.append(s)
    return np.array(out), np.array(group), np.array(sup)


def clades(graph: nx.DiGraph) -> set[frozenset]:
    """Leaf sets of every internal node."""
    out = set()
    for v in graph.nodes:
        if graph.out_degree(v):
            out.add(frozenset(graph.nodes[x]["code"] for x in nx.descendants(graph, v) if graph.out_degree(x) == 0))
    return out


# ------------------------------------------------------------------ decoding


def test_linkage_lca_equal_norm_shortcut_matches_general_formula():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 6))
    x = 0.9 * x / np.linalg.norm(x, axis=1, keepdims=True)
    depth = 2 * np.arctanh(0.9)
    z = linkage_lca(x, "average", depth)
    assert z.shape == (29, 3)
    assert np.all(np.diff(z[:, 2]) <= 1e-9)  # merges get shallower
    z2 = linkage_lca(x * np.linspace(0.89, 0.9, 30)[:, None] / 0.9, "average", depth)  # general path
    assert z2.shape == (29, 3)
    s = linkage_lca(x, "single", depth)
    assert np.all(np.diff(s[:, 2]) <= 1e-9)
    with pytest.raises(MashError, match="valid"):
        linkage_lca(x, "median", depth)


def test_compress_keeps_concepts_and_bounds_branching():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 4))
    x = 0.9 * x / np.linalg.norm(x, axis=1, keepdims=True)
    tree = decode_tree(x, np.zeros((0, 4)), np.zeros(0, np.int64), -np.ones(40, np.int64))
    assert (tree.parent == -1).sum() == 1 and len(tree.parent) == 79  # binary: 2n − 1
    parent, keep = compress_tree(tree.parent, tree.kind, tree.merge_depth, max_children=5, gap_quantile=1.0)
    assert set(range(40)) <= set(keep)  # every concept survives
    counts = np.bincount(parent[parent >= 0], minlength=len(parent))
    assert counts.max() <= 5
    assert (parent == -1).sum() == 1
    same, _ = compress_tree(tree.parent, tree.kind, tree.merge_depth, gap_quantile=0.0)
    assert len(same) == len(tree.parent)


# ------------------------------------------------------------------ known tree


@pytest.mark.parametrize("decode", ["average", "single"])
def test_small_known_tree_is_recovered_exactly(decode):
    vec, group, sup = known_tree_vectors()
    h = build_hierarchy(make_alignment(vec), decode=decode, gap_quantile=0.0, seed=0, **FAST)
    found = clades(h.graph)
    codes = np.array([f"K{i:03d}" for i in range(len(vec))])
    for g in np.unique(group):
        assert frozenset(codes[group == g]) in found
    for s in np.unique(sup):
        assert frozenset(codes[sup == s]) in found


def test_known_groups_survive_compression():
    vec, group, sup = known_tree_vectors(seed=3)
    h = build_hierarchy(make_alignment(vec), seed=0, **FAST)  # default compression
    found = clades(h.graph)
    codes = np.array([f"K{i:03d}" for i in range(len(vec))])
    for s in np.unique(sup):
        assert frozenset(codes[sup == s]) in found


# ------------------------------------------------------------------ labels


def test_parent_column_groups_are_respected_and_cycles_cut():
    rng = np.random.default_rng(4)
    vec = rng.normal(size=(12, 16))  # no structure in the vectors: only labels give one
    parents = ["G1"] * 4 + ["G2"] * 4 + [""] * 4
    parents[8], parents[9] = "K009", "K008"  # a cycle between two codes
    a = make_alignment(vec, parents=parents)
    h = build_hierarchy(a, seed=0, propagate_share=1.0, **FAST)  # no placing by neighbours
    check_tree(h.graph)
    assert h.manifest["label_stats"]["concepts_placed_by_neighbours"] == 0
    found = clades(h.graph)
    codes = [f"K{i:03d}" for i in range(12)]
    assert frozenset(codes[:4]) in found and frozenset(codes[4:8]) in found
    assert h.manifest["label_stats"]["cycles_broken"] >= 1
    assert any("cycle" in w for w in h.manifest["warnings"])
    groups = [d["label"] for _, d in h.graph.nodes(data=True) if d["kind"] == "group"]
    assert "G1" in groups and "G2" in groups


def test_labels_csv_unknown_codes_and_bad_files(tmp_path):
    rng = np.random.default_rng(5)
    a = make_alignment(rng.normal(size=(8, 8)))
    good = tmp_path / "labels.csv"
    good.write_text("code,parent,description\nK000,GA,\nK001,GA,\nGA,,Group A\nZZZ9,GA,\n")
    h = build_hierarchy(a, [str(good)], seed=0, **FAST)
    labels = {d["label"] for _, d in h.graph.nodes(data=True)}
    assert "Group A" in labels
    assert h.manifest["label_stats"]["label_rows_naming_no_code"] == {"labels.csv": 1}  # ZZZ9
    assert any("name a code that is in no site" in w for w in h.manifest["warnings"])
    nope = tmp_path / "nope.csv"
    nope.write_text("code,parent\nQQQ,GB\n")
    with pytest.raises(MashInputError, match="match no code"):
        build_hierarchy(a, [str(nope)], **FAST)
    bad = tmp_path / "bad.csv"
    bad.write_text("child,parent\nK000,GA\n")
    with pytest.raises(MashInputError, match="missing required column 'code'"):
        build_hierarchy(a, [str(bad)], **FAST)
    with pytest.raises(MashInputError, match="unknown labels"):
        build_hierarchy(a, ["snomed"], **FAST)


# ------------------------------------------------------------------ the sample


@pytest.fixture(scope="module")
def sample_hierarchy(sample_alignment, tmp_path_factory):
    out = tmp_path_factory.mktemp("hier") / "h.graphml"
    code = main(["build-hierarchy", str(sample_alignment), "--out", str(out), "--labels", "icd10cm",
                 "--epochs", "15", "--plot", str(out.with_suffix(".png")), "--quiet"])
    assert code == 0
    return out


def test_sample_tree_invariants(sample_hierarchy, sample_alignment):
    g = nx.read_graphml(sample_hierarchy)
    root = check_tree(g)
    assert g.nodes[root]["kind"] == "root"
    concepts = pd.read_csv(sample_alignment / "concepts.csv", dtype=str, keep_default_na=False)
    leaves = {(d["site"], d["code"]): d for v, d in g.nodes(data=True) if g.out_degree(v) == 0}
    assert set(leaves) == set(zip(concepts["site"], concepts["code"], strict=True))
    assert len(leaves) == len(concepts)
    for _, r in concepts.iterrows():
        d = leaves[(r["site"], r["code"])]
        assert d["concept_id"] == r["concept_id"] and d["description"] == r["description"]
    # codes of one concept share one subtree: the concept node
    for cid, rows in concepts.groupby("concept_id"):
        if len(rows) > 1:
            parents = {next(iter(g.predecessors(f"{s}:{c}"))) for s, c in zip(rows["site"], rows["code"], strict=True)}
            assert len(parents) == 1
            (p,) = parents
            assert g.nodes[p]["kind"] == "concept" and g.nodes[p]["concept_id"] == cid
    for v, d in g.nodes(data=True):
        assert d["label"]
        if g.out_degree(v):
            assert isinstance(d["depth"], int)
        pts = np.array(d["coordinates"].split(), dtype=float)
        assert np.isfinite(pts).all() and np.linalg.norm(pts) < 1.0
    depth = nx.shortest_path_length(g, root)
    assert all(g.nodes[v]["depth"] == k for v, k in depth.items())


def test_sample_groups_follow_icd10(sample_hierarchy):
    h = Hierarchy.load(sample_hierarchy)
    nodes = h.nodes()
    top = nodes[(nodes["kind"] == "group") & nodes["group"].astype(str).str.startswith("icd10cm:")]
    assert len(top) > 10
    # every site_B code that has an ICD-10-CM group sits below a group of its own chapter
    import simple_icd_10_cm as cm

    leaves = nodes[(nodes["kind"] == "code") & (nodes["site"] == "site_B")]
    checked = 0
    for _, r in leaves.iterrows():
        if not cm.is_valid_item(r["code"]):
            continue
        chapter = "icd10cm:" + cm.get_ancestors(r["code"])[-1]
        groups = [h.graph.nodes[a].get("group") for a in h.ancestors(r["node"])]
        groups = [x for x in groups if isinstance(x, str)]
        assert chapter in groups
        checked += 1
    assert checked > 400
    man = json.loads(sample_hierarchy.with_name("h.manifest.json").read_text())
    assert man["label_stats"]["labelled_by_source"]["icd10cm"]["sites"] == ["site_B"]  # not the ICD-9 site
    assert man["counts"]["leaves"] == 815 and man["parameters"]["epochs"] == 15


def test_graphml_and_json_round_trip(sample_hierarchy, tmp_path):
    h = Hierarchy.load(sample_hierarchy)
    g0 = nx.read_graphml(sample_hierarchy)
    assert nx.utils.graphs_equal(h.graph, g0)
    h.save(tmp_path / "h.json")
    h2 = Hierarchy.load(tmp_path / "h.json")
    assert set(h2.graph.edges) == set(g0.edges)
    assert dict(h2.graph.nodes(data=True)) == dict(g0.nodes(data=True))
    assert (tmp_path / "h.manifest.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    png = sample_hierarchy.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_file(sample_alignment, tmp_path):
    a = Alignment.load(sample_alignment)
    sub = a.concepts["site"].eq("site_B").to_numpy()
    small = Alignment(a.reference, a.mapping, a.concepts[sub].reset_index(drop=True),
                      {k: v[a.embeddings["site"] == "site_B"] for k, v in a.embeddings.items()}, a.manifest)
    for i in range(2):
        build_hierarchy(small, epochs=5, seed=7).to_graphml(tmp_path / f"h{i}.graphml")
    assert (tmp_path / "h0.graphml").read_bytes() == (tmp_path / "h1.graphml").read_bytes()
    build_hierarchy(small, epochs=5, seed=8).to_graphml(tmp_path / "h2.graphml")
    assert (tmp_path / "h0.graphml").read_bytes() != (tmp_path / "h2.graphml").read_bytes()


def test_python_api_is_exported(sample_alignment):
    assert mash.build_hierarchy is build_hierarchy
    assert mash.Hierarchy is Hierarchy


# ------------------------------------------------------------------ bad input


def _run(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def test_cli_bad_alignment_dirs(tmp_path, capsys, sample_alignment):
    code, err = _run(["build-hierarchy", str(tmp_path / "missing"), "--out", str(tmp_path / "h.graphml")], capsys)
    assert code == 2 and "alignment directory not found" in err and len(err.strip().splitlines()) == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in sample_alignment.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "manifest.json").write_text("{not json")
    code, err = _run(["build-hierarchy", str(broken), "--out", str(tmp_path / "h.graphml")], capsys)
    assert code == 2 and "corrupt manifest" in err and "Traceback" not in err
    (broken / "manifest.json").write_bytes((sample_alignment / "manifest.json").read_bytes())
    (broken / "embeddings.npz").write_bytes(b"garbage")
    code, err = _run(["build-hierarchy", str(broken), "--out", str(tmp_path / "h.graphml")], capsys)
    assert code == 2 and "embeddings" in err
    code, err = _run(["build-hierarchy", str(sample_alignment), "--out", str(tmp_path / "h.graphml"),
                      "--labels", "icd10cm@site_Z"], capsys)
    assert code == 2 and "site_Z" in err
    assert not (tmp_path / "h.graphml").exists()


def test_cli_json_format_and_summary(sample_alignment, tmp_path, capsys):
    out = tmp_path / "tree.out"
    code = main(["build-hierarchy", str(sample_alignment), "--out", str(out), "--format", "json",
                 "--epochs", "3", "--dim", "8"])
    stdout = capsys.readouterr().out  # the summary is on stdout
    assert code == 0
    assert "815 codes in" in stdout and "wrote" in stdout
    data = json.loads(out.read_text())
    g = nx.node_link_graph(data, directed=True, edges="edges")
    check_tree(g)


def test_load_rejects_non_trees(tmp_path):
    g = nx.DiGraph()
    g.add_node("a", kind="code", site="s", code="1")
    g.add_node("b", kind="code", site="s", code="2")
    nx.write_graphml(g, tmp_path / "two_roots.graphml")
    with pytest.raises(MashInputError, match="2 roots"):
        Hierarchy.load(tmp_path / "two_roots.graphml")
    (tmp_path / "bad.graphml").write_text("<graphml><oops")
    with pytest.raises(MashInputError, match="cannot read"):
        Hierarchy.load(tmp_path / "bad.graphml")


def test_provenance_records_what_the_alignment_read(sample_alignment, sample_dir, tmp_path):
    """The hierarchy manifest names the site files behind the alignment (their real
    hashes) and the alignment files it read; changing an input changes the record."""
    import shutil

    from mash._io import sha256_file
    from mash.hyperbolic.build import ALIGNMENT_FILES

    h = build_hierarchy(str(sample_alignment), seed=0, **FAST)
    prov = h.manifest["alignment_inputs"]
    assert set(prov) == {"site_A", "site_B"}
    for site, files in prov.items():
        assert files, site
        for name, digest in files.items():  # the hashes of the real site files
            assert digest == sha256_file(sample_dir / site / Path(name).name)
    assert h.manifest["input_hashes"] == {n: sha256_file(sample_alignment / n) for n in ALIGNMENT_FILES}

    changed = tmp_path / "changed"
    shutil.copytree(sample_alignment, changed)
    m = json.loads((changed / "manifest.json").read_text())
    first = next(iter(m["sites"]["site_A"]["input_hashes"]))
    m["sites"]["site_A"]["input_hashes"][first] = "0" * 64  # as if that site file had changed
    (changed / "manifest.json").write_text(json.dumps(m))
    h2 = build_hierarchy(str(changed), seed=0, **FAST)
    assert h2.manifest["alignment_inputs"] != prov
    assert h2.manifest["alignment_manifest_hash"] != h.manifest["alignment_manifest_hash"]
    assert h2.manifest["input_hashes"]["manifest.json"] != h.manifest["input_hashes"]["manifest.json"]
    assert h2.manifest["embeddings_hash"] == h.manifest["embeddings_hash"]  # same vectors


def test_ancestors_of_unknown_node_is_an_input_error(sample_hierarchy_file):
    from mash.errors import MashInputError

    h = mash.Hierarchy.load(sample_hierarchy_file)
    leaf = next(v for v, d in h.graph.nodes(data=True) if d.get("site") == "site_A")
    assert h.ancestors(leaf)  # a leaf has at least the root above it
    bare = leaf.split(":", 1)[1]
    with pytest.raises(MashInputError, match=f"e.g. site_A:{bare}"):
        h.ancestors(bare)
    with pytest.raises(MashInputError, match="not in the hierarchy"):
        h.ancestors("site_A:no-such-code")
