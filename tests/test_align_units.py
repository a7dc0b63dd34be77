"""Invariants of the alignment building blocks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mash import abbrev
from mash.align.anchors import Anchors, read_anchor_file, shared_code_anchors
from mash.align.concepts import unify_concepts
from mash.align.neural_ot import fit_neural_ot
from mash.align.pairs import build_pairs, segment_softmax
from mash.align.procrustes import procrustes
from mash.align.retrieval import csls, mean_topk_similarity, mutual_nearest, topk
from mash.align.scoring import fit_listwise
from mash.errors import MashInputError
from mash.metrics import expected_calibration_error, ranking_metrics


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_procrustes_recovers_rotation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    w = procrustes(x, x @ q)
    np.testing.assert_allclose(w, q, atol=1e-5)
    np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-5)


def test_topk_sorted_and_stable_ties():
    s = np.array([[0.1, 0.9, 0.9, 0.5], [1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    idx, val = topk(s, 3)
    assert idx[0].tolist() == [1, 2, 3]
    assert idx[1].tolist() == [0, 1, 2]
    assert (np.diff(val, axis=1) <= 0).all()


def test_csls_penalises_hubs():
    rng = np.random.default_rng(1)
    r = _unit(rng.normal(size=(30, 5)))
    hub = _unit(r.mean(axis=0, keepdims=True))
    refs = np.concatenate([r, hub])
    q = _unit(r + 0.05 * rng.normal(size=r.shape))
    sim = q @ refs.T
    hub_wins_cos = (sim.argmax(axis=1) == 30).sum()
    c = csls(sim, mean_topk_similarity(q, refs, 5), mean_topk_similarity(refs, q, 5))
    assert (c.argmax(axis=1) == 30).sum() <= hub_wins_cos
    assert (c.argmax(axis=1) == np.arange(30)).mean() >= 0.9


def test_mutual_nearest_is_one_to_one():
    rng = np.random.default_rng(2)
    s = rng.normal(size=(40, 50))
    rows, cols, margin = mutual_nearest(s, 0.0)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert (s[rows].argmax(axis=1) == cols).all() and (s[:, cols].argmax(axis=0) == rows).all()
    assert (margin >= 0).all()


def test_neural_ot_improves_on_noisy_procrustes():
    rng = np.random.default_rng(0)
    x = _unit(rng.normal(size=(400, 16)))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    y = _unit(x @ q)
    a = np.arange(30)
    w0 = procrustes(x[a] + 0.4 * rng.normal(size=(30, 16)), y[a])
    res = fit_neural_ot(x, y, (a, a), w0, steps=120, batch_size=128, seed=0)
    acc0 = ((x @ w0) @ y.T).argmax(axis=1) == np.arange(400)
    acc1 = (res.transform(x) @ y.T).argmax(axis=1) == np.arange(400)
    assert np.isfinite(res.losses).all()
    assert res.losses[-1] < res.losses[0]
    assert acc1.mean() > acc0.mean()
    # deterministic given the seed
    res2 = fit_neural_ot(x, y, (a, a), w0, steps=120, batch_size=128, seed=0)
    np.testing.assert_allclose(res.transform(x), res2.transform(x), atol=1e-6)


def test_listwise_scorer_learns_informative_feature():
    rng = np.random.default_rng(0)
    n = 60
    good = np.eye(n) + 0.3 * rng.normal(size=(n, n))  # informative
    noise = rng.normal(size=(n, n))  # uninformative
    rows, cols = np.divmod(np.arange(n * n), n)
    pairs = build_pairs([rows], [cols], n, n)
    feats = np.column_stack([noise[pairs.query, pairs.reference], good[pairs.query, pairs.reference]])
    fit = fit_listwise(feats.astype(np.float32), pairs, pairs.find(np.arange(n), np.arange(n)))
    assert fit.converged and fit.n_anchors == n and np.isfinite(fit.loss)
    assert fit.weights[1] > abs(fit.weights[0]) * 3
    p = segment_softmax(feats @ fit.weights, pairs.ptr)
    np.testing.assert_allclose(np.bincount(pairs.query, weights=p), 1.0, atol=1e-5)


def test_listwise_scorer_without_anchors_keeps_prior():
    pairs = build_pairs([np.array([0, 0, 1])], [np.array([0, 1, 1])], 2, 2)
    fit = fit_listwise(np.ones((3, 2), np.float32), pairs, np.zeros(0, np.int64))
    assert fit.n_anchors == 0 and not fit.converged
    np.testing.assert_array_equal(fit.weights, [1.0, 1.0])


def test_abbreviations():
    assert abbrev.tokenize("Cholera d/t vib cholerae, NOS") == ["cholera", "d/t", "vib", "cholerae", "nos"]
    pre = abbrev.learn_prefixes(["Cholera d/t vib cholerae"], ["Cholera due to Vibrio cholerae"])
    assert pre == {"vib": "vibrio"}
    learned = abbrev.learn_from_pairs([("Ac mi antrlat wall", "Acute myocardial infarction of anterolateral wall")])
    assert learned["antrlat"] == "anterolateral"
    assert abbrev.normalize("Chr kidney dis NOS", abbrev.GENERIC) == "chronic kidney disease unspecified"


def test_shared_code_anchors_need_overlap():
    a = pd.Series(["V5861", "4280", "25000"])
    b = pd.Series(["V5861", "I509", "E119", "I10"])
    assert len(shared_code_anchors(a, b, 0.5)) == 0  # one accidental match of three
    c = pd.Series(["4280", "25000", "4019"])
    anchors = shared_code_anchors(a, c, 0.3)
    assert anchors.query.tolist() == [1, 2] and anchors.reference.tolist() == [0, 1]


def test_anchor_union_is_one_to_one():
    x = Anchors(np.array([0, 1]), np.array([5, 6]), np.array(["file", "file"], dtype=object))
    y = Anchors(np.array([1, 2, 3]), np.array([7, 6, 8]), np.array(["text"] * 3, dtype=object))
    u = x.union(y)
    assert u.query.tolist() == [0, 1, 3] and u.reference.tolist() == [5, 6, 8]
    assert u.counts() == {"file": 2, "text": 1}


def test_anchor_file_errors(tmp_path):
    codes = {"A": pd.Series(["1", "2"]), "B": pd.Series(["x", "y"])}
    f = tmp_path / "anchors.csv"
    f.write_text("site,code,reference_code\nA,1,x\nA,3,y\n")
    with pytest.raises(MashInputError, match=r"anchors.csv, row 2, column 'code'"):
        read_anchor_file(f, codes, "B")
    f.write_text("site,code\nA,1\n")
    with pytest.raises(MashInputError, match="reference_code"):
        read_anchor_file(f, codes, "B")
    f.write_text("site,code,reference_code\nA,2,y\n")
    got = read_anchor_file(f, codes, "B")["A"]
    assert got.query.tolist() == [1] and got.reference.tolist() == [1]


def test_unify_concepts_every_code_once():
    codes = {
        "A": pd.DataFrame({"code": ["a1", "a2", "a3"], "description": ["x", "y", "z"]}),
        "B": pd.DataFrame({"code": ["b1", "b2"], "description": ["X", "Y"]}),
        "C": pd.DataFrame({"code": ["c1"], "description": ["W"]}),
    }
    out = unify_concepts(codes, "B", {"A": (np.array([0]), np.array([1])), "C": (np.array([0]), np.array([1]))})
    assert len(out) == 6 and not out.duplicated(["site", "code"]).any()
    merged = out.groupby("concept_id")["code"].apply(set)
    assert {"a1", "b2", "c1"} in merged.tolist()
    assert out["concept_id"].nunique() == 4


def test_ranking_metrics_and_ece():
    mapping = pd.DataFrame(
        {"site": "A", "code": ["q1", "q1", "q2", "q2"], "reference_code": ["r1", "r2", "r3", "r4"], "rank": [1, 2, 1, 2]}
    )
    gold = pd.DataFrame({"site": "A", "code": ["q1", "q2", "q3"], "reference_code": ["r1", "r4", "r9"]})
    m = ranking_metrics(mapping, gold)
    assert m["n"] == 2 and m["hits@1"] == 0.5 and m["hits@5"] == 1.0 and m["mrr@10"] == 0.75
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([True, True])) == 0.0
    assert expected_calibration_error(np.array([0.9, 0.9]), np.array([False, False])) == pytest.approx(0.9)
