"""Sequences: visits per (subject, day), dedup, unknown codes, until, pad, subset, concat."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from mash.errors import MashInputError
from mash.hyperbolic.hierarchy import Hierarchy
from mash.sequences import (
    Sequences,
    build_sequences,
    concat,
    first_occurrence,
    from_visit_lists,
    ranges,
)
from mash.sites import Site
from mash.vocab import Vocabulary


def tiny_hierarchy() -> Hierarchy:
    """root ─ _g ─ {_c (C1: A:x1, B:y1), A:x2 (C2), B:y2 (C3)}; A:x3 is not in the tree."""
    g = nx.DiGraph()
    g.add_node("root", kind="root", label="All")
    g.add_node("_g", kind="group", label="G")
    g.add_node("_c", kind="concept", label="one", concept_id="C1")
    g.add_edges_from([("root", "_g"), ("_g", "_c")])
    for site, code, cid, parent in [
        ("A", "x1", "C1", "_c"),
        ("B", "y1", "C1", "_c"),
        ("A", "x2", "C2", "_g"),
        ("B", "y2", "C3", "_g"),
    ]:
        g.add_node(
            f"{site}:{code}", kind="code", site=site, code=code, description=code, concept_id=cid
        )
        g.add_edge(parent, f"{site}:{code}")
    return Hierarchy(g)


C1, C2, C3 = 5, 6, 7


def site_a() -> Site:
    codes = pd.DataFrame({"code": ["x1", "x2", "x3"], "description": ["one", "two", "three"]})
    events = pd.DataFrame(
        {
            "subject_id": ["p1", "p1", "p1", "p1", "p1", "p1", "p2"],
            "time": [
                "2020-01-01 08:00",
                "2020-01-01 09:00",
                "2020-01-01 12:00",
                "2020-01-03",
                "2020-01-10",
                "2020-01-10 01:00",
                "2020-02-01",
            ],
            "code": ["x2", "x1", "x2", "x1", "x3", "x1", "x1"],
        }
    )
    return Site.from_frames("A", codes, events)


def site_b() -> Site:
    codes = pd.DataFrame({"code": ["y1", "y2"], "description": ["one", "two"]})
    events = pd.DataFrame(
        {"subject_id": ["q1", "q1"], "time": ["2021-01-01", "2021-01-02"], "code": ["y1", "y2"]}
    )
    return Site.from_frames("B", codes, events)


@pytest.fixture()
def vocab() -> Vocabulary:
    return Vocabulary.from_hierarchy(tiny_hierarchy())


@pytest.fixture()
def seqs(vocab) -> Sequences:
    return build_sequences(site_a(), vocab)


def visits_of(s: Sequences, p: int) -> list[list[int]]:
    return [
        s.tokens[s.code_ptr[v] : s.code_ptr[v + 1]].tolist()
        for v in range(s.visit_ptr[p], s.visit_ptr[p + 1])
    ]


def test_helpers():
    assert ranges(np.array([3, 7]), np.array([2, 1])).tolist() == [3, 4, 7]
    assert first_occurrence(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 6])).tolist() == [
        True,
        False,
        True,
        True,
    ]


def test_one_visit_per_subject_day_with_dedup_and_unknown(seqs, vocab):
    assert seqs.subjects.tolist() == ["p1", "p2"]
    assert seqs.n_visits().tolist() == [3, 1]
    # day 1: x2, x1, x2 → [C2, C1] (first recorded first); day 3: C1; day 10: x3 (unknown), x1
    assert visits_of(seqs, 0) == [[C2, C1], [C1], [1, C1]]
    assert visits_of(seqs, 1) == [[C1]]
    day0 = (pd.Timestamp("2020-01-01") - pd.Timestamp("1970-01-01")).days
    assert seqs.visit_day.tolist() == [day0, day0 + 2, day0 + 9, day0 + 31]
    assert seqs.stats["n_events"] == 7 and seqs.stats["n_duplicate_tokens"] == 1
    assert seqs.stats["n_unknown_events"] == 1 and seqs.stats["n_unknown_codes"] == 1
    assert vocab.unknown == {("A", "x3"): 1}
    assert seqs.stats["n_visits"] == 4 and seqs.stats["n_tokens"] == 6


def test_pad_keeps_most_recent_visits(seqs):
    codes, times, mask = seqs.pad([0, 1], max_visits=2)
    assert codes.shape == (2, 2, 2) and codes.dtype == np.int64
    assert codes[0].tolist() == [[C1, 0], [1, C1]]  # days 3 and 10
    assert codes[1].tolist() == [[C1, 0], [0, 0]]
    assert times.tolist() == [[0.0, 7.0], [0.0, 0.0]] and times.dtype == np.float32
    assert mask.tolist() == [[True, True], [True, False]]
    codes, times, _ = seqs.pad(np.array([0]), max_codes=1)
    assert codes[0].tolist() == [[C2], [C1], [1]] and times[0].tolist() == [0.0, 2.0, 9.0]


def test_encode_visits_pads_like_sequences(seqs, vocab):
    """Vocabulary.encode_visits and Sequences.pad are one padding: the same arrays for
    site A's visits given as lists (times as days) and as build_sequences grouped them."""
    d0 = float(seqs.visit_day[0])
    patients = [
        [(d0, ["x2", "x1", "x2"]), (d0 + 2, ["x1"]), (d0 + 9, ["x3", "x1"])],
        [(d0 + 31, ["x1"])],
    ]
    for max_visits in (None, 2):
        enc = vocab.encode_visits(patients, site="A", max_visits=max_visits)
        codes, times, mask = seqs.pad(np.arange(len(seqs)), max_visits=max_visits)
        assert np.array_equal(enc.codes, codes) and np.array_equal(enc.mask, mask)
        assert np.array_equal(enc.times, times) and enc.times.dtype == times.dtype
    assert enc.n_dropped_visits == 1


def test_from_visit_lists_keeps_empty_visits():
    s = from_visit_lists("A", [[1.0, 4.0], [2.0]], [[[5, 6], []], [[7]]])
    assert s.subjects.tolist() == [0, 1] and s.n_visits().tolist() == [2, 1]
    codes, times, mask = s.pad([0, 1])
    assert codes.tolist() == [[[5, 6], [0, 0]], [[7, 0], [0, 0]]]
    assert times.tolist() == [[0.0, 3.0], [0.0, 0.0]] and mask.sum() == 3
    with pytest.raises(MashInputError, match="same patients and visits"):
        from_visit_lists("A", [[1.0]], [[[5], [6]]])


def test_until_drops_later_visits_and_keeps_empty_patients(seqs):
    day0 = seqs.visit_day[0]
    cut = seqs.until(np.array([day0 + 2, day0]))
    assert len(cut) == 2 and cut.n_visits().tolist() == [2, 0]
    assert visits_of(cut, 0) == [[C2, C1], [C1]]
    assert cut.stats["n_empty_after_cutoff"] == 1 and cut.stats["n_visits_after_cutoff"] == 2
    assert cut.nonempty().tolist() == [0]
    with pytest.raises(MashInputError, match="patient 1 .* no visits"):
        cut.pad([0, 1])
    dates = np.array(["2020-01-01", "2020-12-31"], dtype="datetime64[D]")
    assert seqs.until(dates).n_visits().tolist() == [1, 1]
    with pytest.raises(MashInputError, match="shape"):
        seqs.until(np.array([1.0]))


def test_subset_reorders_and_masks(seqs):
    sub = seqs.subset([1, 0])
    assert sub.subjects.tolist() == ["p2", "p1"]
    assert visits_of(sub, 0) == [[C1]] and visits_of(sub, 1) == visits_of(seqs, 0)
    assert seqs.subset(np.array([False, True])).subjects.tolist() == ["p2"]
    with pytest.raises(MashInputError, match="out of range"):
        seqs.subset([2])


def test_concat_sites(seqs, vocab):
    both = concat([seqs, build_sequences(site_b(), vocab)])
    assert both.site == "A+B" and len(both) == 3
    assert both.site_of.tolist() == ["A", "A", "B"]
    assert visits_of(both, 2) == [[C1], [C3]]  # B's y1 shares A's x1 id
    assert both.stats["n_events"] == 9 and both.stats["n_visits"] == 6
    codes, _, mask = both.pad([0, 2])
    assert codes.shape == (2, 3, 2) and mask.sum() == 5
    unharmonized = Vocabulary.from_hierarchy(tiny_hierarchy(), harmonize=False)
    other_seqs = build_sequences(site_b(), unharmonized)
    with pytest.raises(MashInputError, match="different vocabularies"):
        concat([seqs, other_seqs])


def test_unknown_site_is_an_error(vocab):
    codes = pd.DataFrame({"code": ["z"], "description": ["z"]})
    events = pd.DataFrame({"subject_id": ["1"], "time": ["2020-01-01"], "code": ["z"]})
    with pytest.raises(MashInputError, match="unknown site 'Z'"):
        build_sequences(Site.from_frames("Z", codes, events), vocab)


def test_inconsistent_arrays_are_rejected():
    with pytest.raises(MashInputError, match="code_ptr"):
        Sequences(
            "A",
            np.array(["p"], dtype=object),
            np.array([0, 1]),
            np.array([0.0]),
            np.array([0, 3]),
            np.array([5, 6]),
        )
