"""The candidate-based alignment against exhaustive scoring, p_no_match, config checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import mash
from mash.align import pipeline
from mash.align.retrieval import csls_from_similarity
from mash.errors import MashInputError


@pytest.fixture(scope="module")
def sample_sites(sample_dir):
    return [mash.Site.load(sample_dir / "site_A"), mash.Site.load(sample_dir / "site_B")]


@pytest.fixture(scope="module")
def captured(sample_sites, cache_dir):
    """An alignment without the transport view, and the pair aligner behind it."""
    seen = {}
    original = pipeline._PairAligner.run

    def run(self, shared, *args, **kwargs):
        out = original(self, shared, *args, **kwargs)
        seen["pa"] = self
        return out

    pipeline._PairAligner.run = run
    try:
        al = mash.align(sample_sites, reference="site_B", cache_dir=str(cache_dir), quiet=True, transport="none")
    finally:
        pipeline._PairAligner.run = original
    return al, seen["pa"]


def _dense(m):
    return m.toarray() if sparse.issparse(m) else np.asarray(m)


def test_candidate_top1_equals_exhaustive_where_it_is_a_candidate(captured):
    al, pa = captured
    weights = al.manifest["pairs"]["site_A"]["scorer_weights"]
    n_q, n_r = pa.q.site.n_codes, pa.r.site.n_codes
    logits = np.zeros((n_q, n_r))
    for name in pipeline.TEXT_VIEWS:
        qm, rm = (_dense(m) for m in pa.mats[name])
        cos = (qm @ rm.T).astype(np.float32)
        logits += weights[name] * csls_from_similarity(cos, pa.cfg.csls_k)
    missing = ~(pa.q.reliable[:, None] & pa.r.reliable[None, :])
    qm, rm = pa.mats["cooc"]
    rq, rr = np.flatnonzero(pa.q.reliable), np.flatnonzero(pa.r.reliable)
    cooc = np.zeros((n_q, n_r), np.float32)
    cooc[np.ix_(rq, rr)] = csls_from_similarity(qm[rq] @ rm[rr].T, pa.cfg.csls_k)
    logits += weights["cooc"] * np.where(missing, 0.0, cooc) + weights["cooc_missing"] * missing
    # cooc_gated: the gate is the query's best text similarity over its candidates
    text_best = np.full(n_q, -np.inf, np.float32)
    np.maximum.at(text_best, pa.pairs.query, pa._text_score())
    gate = np.clip(1.0 - text_best, 0.0, 1.0)
    logits += weights["cooc_gated"] * np.where(missing, 0.0, cooc) * gate[:, None]
    fq = np.log((pa.q.events + 1) / (pa.q.events.sum() + 1))
    fr = np.log((pa.r.events + 1) / (pa.r.events.sum() + 1))
    logits += weights["freq_gap"] * -np.abs(fq[:, None] - fr[None, :])
    best = logits.argmax(axis=1)
    in_cand = pa.pairs.find(np.arange(n_q), best) >= 0
    assert in_cand.mean() > 0.95  # the exhaustive best is nearly always a candidate
    top = al.mapping[al.mapping["rank"] == 1].set_index("code")["reference_code"]
    codes_q = pa.q.site.codes["code"].to_numpy()
    codes_r = pa.r.site.codes["code"].to_numpy()
    agree = top.loc[codes_q[in_cand]].to_numpy() == codes_r[best[in_cand]]
    assert agree.mean() > 0.995  # float32 ties aside, the same top-1


def test_p_no_match_is_a_probability_per_code(captured):
    al, _ = captured
    m = al.mapping
    assert m["p_no_match"].between(0, 1).all()
    assert (m.groupby("code")["p_no_match"].nunique() == 1).all()
    assert al.manifest["pairs"]["site_A"]["no_match"]["fitted"]


def test_p_no_match_separates_codes_without_counterpart(sample_dir, captured):
    from sklearn.metrics import roc_auc_score

    al, _ = captured
    gold = pd.read_csv(sample_dir / "gold.csv", dtype=str)
    top = al.mapping[al.mapping["rank"] == 1]
    none = ~top["code"].isin(gold["code"])
    assert none.sum() >= 5
    assert roc_auc_score(none, top["p_no_match"]) > 0.7


def test_transport_view_and_convergence_recorded(sample_sites, cache_dir):
    al = mash.align(sample_sites, reference="site_B", cache_dir=str(cache_dir), quiet=True)
    log = al.manifest["pairs"]["site_A"]
    assert "transport" in log["scorer_weights"]
    assert log["transport"]["converged"] and log["transport"]["iterations"] >= 1
    assert log["scorer_fit"]["converged"]
    assert log["pairs"]["per_code_max"] <= 5 * al.manifest["parameters"]["candidates"] + 1


def test_ot_steps_zero_is_procrustes_and_neural_ot_runs(sample_sites, cache_dir):
    al0 = mash.align(sample_sites, reference="site_B", cache_dir=str(cache_dir), quiet=True, ot_steps=0,
                     transport="none", refine_rounds=0)
    al1 = mash.align(sample_sites, reference="site_B", cache_dir=str(cache_dir), quiet=True, ot_steps=5,
                     transport="none", refine_rounds=0)
    assert al0.manifest["pairs"]["site_A"]["cooc_map"] == "procrustes"
    assert al1.manifest["pairs"]["site_A"]["cooc_map"] == "neural OT"


@pytest.mark.parametrize(
    "field, value",
    [("candidates", 0), ("candidates", 5), ("block_rows", 0), ("block_rows", 2.5), ("top_k", 0),
     ("transport", "balanced"), ("transport_mass", "x"), ("transport_reg", 0.0), ("ot_steps", -1),
     ("csls_k", 0), ("window_days", float("nan")), ("anchor_margin", -1), ("min_events", True),
     ("refine_rounds", -2), ("seed", -1), ("shared_code_overlap", 2.0)],
)
def test_every_config_field_is_validated(sample_sites, field, value):
    with pytest.raises(MashInputError, match=field):
        mash.align(sample_sites, reference="site_B", quiet=True, **{field: value})


def test_tiny_sites_and_one_code(cache_dir):
    codes_a = pd.DataFrame({"code": ["X1"], "description": ["acute myocardial infarction"]})
    events_a = pd.DataFrame({"subject_id": ["1", "2"], "time": ["2020-01-01", "2020-01-02"], "code": ["X1", "X1"]})
    codes_b = pd.DataFrame({"code": ["I21", "E11", "J45"],
                            "description": ["Acute myocardial infarction", "Type 2 diabetes", "Asthma"]})
    events_b = pd.DataFrame({"subject_id": ["1", "2", "2"], "time": ["2020-01-01"] * 3, "code": ["I21", "E11", "J45"]})
    a = mash.Site.from_frames("a", codes_a, events_a)
    b = mash.Site.from_frames("b", codes_b, events_b)
    with pytest.warns(UserWarning):
        al = mash.align([a, b], reference="b", cache_dir=str(cache_dir), quiet=True, top_k=3, candidates=3)
    assert len(al.mapping) == 3
    assert al.mapping.iloc[0]["reference_code"] == "I21"
    assert al.mapping["p_no_match"].between(0, 1).all()


def test_reference_listing_codes_without_events(sample_sites, cache_dir):
    """A reference that lists extra codes (text only) and one with no events at all."""
    a, b = sample_sites
    extra = pd.DataFrame({"code": ["Z99X1", "Z99X2"], "description": ["Dependence on respirator", "Other dependence"]})
    codes = pd.concat([b.codes[["code", "description"]], extra], ignore_index=True)
    b_more = mash.Site.from_frames("site_B", codes, b.events[["subject_id", "time", "code"]])
    al = mash.align([a, b_more], reference="site_B", cache_dir=str(cache_dir), quiet=True)
    assert al.manifest["sites"]["site_B"]["codes_without_events"] >= 2
    assert len(al.mapping) == 10 * a.n_codes
    with pytest.warns(UserWarning):
        b_text = mash.Site.from_frames("site_B", codes, None)
    al = mash.align([a, b_text], reference="site_B", cache_dir=str(cache_dir), quiet=True)
    info = al.manifest["sites"]["site_B"]
    assert info["text_only"] and info["codes_without_events"] == len(codes)
    assert al.manifest["pairs"]["site_A"]["cooc_used"] is False
    gold_hits = al.mapping[al.mapping["rank"] == 1]
    assert gold_hits["reference_code"].isin(codes["code"]).all()
