"""Domains in alignment: candidates stay in their domain unless ``cross_domain``."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mash.align.candidates import knn_blockwise
from mash.align.pairs import build_pairs, segment_topk
from mash.align.pipeline import AlignmentWarning, align
from mash.sites import Site


def test_knn_candidates_stay_in_their_group():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(40, 8)).astype(np.float32)
    r = rng.normal(size=(30, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    gq = rng.integers(0, 3, 40)
    gq[:5] = -1  # no domain: any row
    gr = np.r_[np.zeros(27, int), [1, 1], [2]]  # group 2 has a single row
    res = knn_blockwise(q, r, 4, 3, block_rows=7, groups=(gq, gr))
    free = knn_blockwise(q, r, 4, 3, block_rows=7)
    for i in range(40):
        got = res.index[i][res.index[i] >= 0]
        if gq[i] < 0:
            assert res.index[i].tolist() == free.index[i].tolist()
        else:
            assert (gr[got] == gq[i]).all()
            assert len(got) == min(4, int((gr == gq[i]).sum()))
    assert np.array_equal(res.radius_query, free.radius_query)  # radii use every row


def test_segment_topk_pads_short_queries():
    pairs = build_pairs([np.array([0, 0, 0, 1])], [np.array([2, 0, 1, 1])], 3, 3)
    top = segment_topk(np.array([0.1, 0.5, 0.3, 0.9]), pairs, 2)
    assert top.shape == (3, 2) and (top[1] >= 0).sum() == 1 and (top[2] == -1).all()
    assert pairs.reference[top[0]].tolist() == [1, 2]  # values follow the pairs' (query, reference) order


def _site(root, name, rows):
    d = root / name
    d.mkdir()
    codes = pd.DataFrame(rows, columns=["code", "description", "domain"])
    codes.to_csv(d / "codes.csv", index=False)
    rng = np.random.default_rng(len(name))
    n = 400
    pd.DataFrame({"subject_id": rng.integers(0, 50, n).astype(str), "code": rng.choice(codes["code"], n),
                  "time": (pd.Timestamp("2011-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D"))
                  .strftime("%Y-%m-%d")}).to_csv(d / "events.csv", index=False)
    return Site.load(d)


@pytest.fixture()
def domain_sites(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = _site(tmp_path, "A", [("a1", "glucose fasting serum", "lab"), ("a2", "potassium serum", "lab"),
                                  ("a3", "diabetes mellitus type 2", "diagnosis"), ("a4", "hyperkalemia", "diagnosis"),
                                  ("a5", "hypoglycemia", "diagnosis")])
        b = _site(tmp_path, "B", [("b1", "Glucose [Mass/volume] in Serum --fasting", "lab"),
                                  ("b2", "Potassium [Moles/volume] in Serum", "lab"),
                                  ("b3", "Type 2 diabetes mellitus", "diagnosis"), ("b4", "Hyperkalemia", "diagnosis"),
                                  ("b5", "Hypoglycemia, unspecified", "diagnosis"),
                                  ("b6", "Glucose intolerance", "diagnosis")])
    return a, b


def _run(sites, cache_dir, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return align(list(sites), "B", cache_dir=str(cache_dir), quiet=True, **kw)


def test_candidates_never_cross_domains_by_default(domain_sites, cache_dir):
    res = _run(domain_sites, cache_dir)
    dom_a = dict(zip(domain_sites[0].codes["code"], domain_sites[0].codes["domain"], strict=True))
    dom_b = dict(zip(domain_sites[1].codes["code"], domain_sites[1].codes["domain"], strict=True))
    m = res.mapping
    assert (m["code"].map(dom_a) == m["reference_code"].map(dom_b)).all()
    # a lab code has only the two reference labs as candidates, not ten rows of anything
    assert set(m.loc[m["code"] == "a1", "reference_code"]) == {"b1", "b2"}
    summary = res.manifest["pairs"]["A"]["domains"]
    assert summary["lab"]["codes"] == 2 and summary["diagnosis"]["codes"] == 3
    assert all(v["top1_other_domain"] == 0 for v in summary.values())
    assert set(m["code"]) == {"a1", "a2", "a3", "a4", "a5"}  # no code lost


def test_cross_domain_lifts_the_rule(domain_sites, cache_dir):
    res = _run(domain_sites, cache_dir, cross_domain=True)
    m = res.mapping
    assert set(m.loc[m["code"] == "a1", "reference_code"]) == {f"b{i}" for i in range(1, 7)}
    assert res.manifest["parameters"]["cross_domain"] is True


def test_a_domain_the_reference_lacks_is_opened_and_warned(tmp_path, cache_dir, domain_sites):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = _site(tmp_path, "C", [("c1", "metformin 500 mg tablet", "medication"), ("c2", "hyperkalemia", "diagnosis")])
    with pytest.warns(AlignmentWarning, match=r"1 codes of site 'C' are in domains the reference lacks \(medication\)"):
        res = align([c, domain_sites[1]], "B", cache_dir=str(cache_dir), quiet=True)
    assert res.manifest["pairs"]["C"]["codes_of_domains_absent_from_reference"] == {"medication": 1}
    assert (res.mapping["code"] == "c1").sum() >= 1
