"""Tests of mash.cooccur: counts against a brute force, SPPMI against NumPy, SVD invariants."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import scipy.sparse as sp

from mash.cooccur import (
    CooccurrenceResult,
    cooccurrence_counts,
    cooccurrence_embeddings,
    sppmi,
    svd_embeddings,
)
from mash.errors import MashInputError

# --------------------------------------------------------------------------- references


def brute_counts(subject, time_days, code, n_codes, window):
    """Definition of cooccurrence_counts, written as plainly as possible."""
    kept: dict[tuple[int, int, int], float] = {}
    for s, t, c in zip(subject, time_days, code, strict=True):
        key = (int(s), int(c), int(np.floor(t)))
        kept[key] = min(kept.get(key, np.inf), float(t))
    events = [(s, c, t) for (s, c, _), t in kept.items()]
    counts = np.zeros((n_codes, n_codes))
    n_pairs = 0
    for (s1, c1, t1), (s2, c2, t2) in itertools.combinations(events, 2):
        if s1 == s2 and c1 != c2 and abs(t1 - t2) <= window:
            counts[c1, c2] += 1
            counts[c2, c1] += 1
            n_pairs += 1
    return counts, len(events), n_pairs


def dense_sppmi(c, shift, alpha):
    c = np.asarray(c, dtype=np.float64)
    d = c.sum()
    row = c.sum(axis=1, keepdims=True)
    col = c.sum(axis=0, keepdims=True)
    p_ctx = col**alpha / (col**alpha).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log((c / d) / ((row / d) * p_ctx))
    out = np.maximum(pmi - np.log(shift), 0.0)
    out[c == 0] = 0.0
    return out


def random_events(rng, n_events, n_subjects=4, n_codes=6, span=80.0, decimals=2, id_scale=1):
    low = -(n_subjects // 2)  # negative ids too
    subject = rng.integers(low, low + n_subjects, n_events) * id_scale
    time_days = np.round(rng.uniform(0, span, n_events), decimals)
    code = rng.integers(0, n_codes, n_events).astype(np.int32)
    return subject.astype(np.int64), time_days, code


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize("seed", range(40))
def test_counts_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_codes = int(rng.integers(1, 8))
    subject, time_days, code = random_events(
        rng,
        int(rng.integers(1, 70)),
        n_subjects=int(rng.integers(1, 6)),
        n_codes=n_codes,
        decimals=int(rng.choice([0, 1, 3])),
        id_scale=int(rng.choice([1, 10**12])),
    )
    window = float(rng.choice([0.0, 0.5, 1.0, 7.0, 30.0]))
    ref, n_used, n_pairs = brute_counts(subject, time_days, code, n_codes, window)
    for chunk_events, n_threads in [(10**6, 1), (5, 2)]:
        res = cooccurrence_counts(
            subject, time_days, code, n_codes, window,
            max_neighbors=None, chunk_events=chunk_events, n_threads=n_threads,
        )
        np.testing.assert_array_equal(res.counts.toarray(), ref)
        assert (res.n_events_used, res.n_pairs, res.n_pairs_capped) == (n_used, n_pairs, 0)
        assert res.n_duplicates_collapsed == subject.size - n_used
        assert res.code_events.sum() == n_used
        assert res.counts.sum() == 2 * n_pairs


def test_counts_is_symmetric_canonical_csr_with_zero_diagonal():
    rng = np.random.default_rng(0)
    subject, time_days, code = random_events(rng, 500, n_subjects=20, n_codes=9)
    c = cooccurrence_counts(subject, time_days, code, 9).counts
    assert isinstance(c, sp.csr_matrix) and c.dtype == np.float64 and c.shape == (9, 9)
    assert c.has_canonical_format
    assert (c != c.T).nnz == 0
    assert not c.diagonal().any()


def test_window_boundary_is_inclusive():
    subject = np.array([1, 1, 2, 2])
    time_days = np.array([10.25, 40.25, 10.25, 40.26])  # gaps 30.0 and 30.01
    code = np.array([0, 1, 0, 1])
    res = cooccurrence_counts(subject, time_days, code, 2, window_days=30.0)
    assert res.n_pairs == 1
    assert res.counts[0, 1] == 1


def test_duplicates_collapse_to_earliest_time_of_the_day():
    # code 0 twice on day 0 (t = 0.9 and 0.1): one event at t = 0.1, 30.4 days before code 1
    subject = np.array([5, 5, 5])
    time_days = np.array([0.9, 0.1, 30.5])
    code = np.array([0, 0, 1])
    res = cooccurrence_counts(subject, time_days, code, 2, window_days=30.0)
    assert (res.n_events_used, res.n_duplicates_collapsed, res.n_pairs) == (2, 1, 0)
    np.testing.assert_array_equal(res.code_events, [1, 1])
    # the same code on two different days is not a duplicate, and never a pair
    res = cooccurrence_counts(subject, np.array([0.5, 1.5, 2.0]), code, 2)
    assert (res.n_events_used, res.n_pairs) == (3, 2)
    np.testing.assert_array_equal(res.counts.toarray(), [[0, 2], [2, 0]])


def test_unsorted_input_and_single_event_patients():
    rng = np.random.default_rng(3)
    subject, time_days, code = random_events(rng, 60, n_subjects=5, n_codes=5)
    subject = np.concatenate([subject, [100, 101, 102]])  # three patients with one event
    time_days = np.concatenate([time_days, [1.0, 2.0, 3.0]])
    code = np.concatenate([code, [0, 1, 2]]).astype(np.int32)
    perm = rng.permutation(subject.size)
    a = cooccurrence_counts(subject, time_days, code, 5)
    b = cooccurrence_counts(subject[perm], time_days[perm], code[perm], 5)
    ref, n_used, n_pairs = brute_counts(subject, time_days, code, 5, 30.0)
    np.testing.assert_array_equal(a.counts.toarray(), ref)
    np.testing.assert_array_equal(b.counts.toarray(), ref)
    assert a.n_pairs == b.n_pairs == n_pairs


def test_wide_id_range_uses_general_sort():
    subject = np.array([-(2**62), 2**62, -(2**62), 2**62, 0])
    time_days = np.array([0.0, 0.0, 1.0, 100.0, 1.0])
    code = np.array([0, 1, 2, 2, 1])
    res = cooccurrence_counts(subject, time_days, code, 3)
    np.testing.assert_array_equal(res.counts.toarray(), brute_counts(subject, time_days, code, 3, 30.0)[0])


def test_large_vocabulary_uses_sparse_aggregation():
    # n_codes = 6000: the upper triangle exceeds the dense accumulator
    rng = np.random.default_rng(1)
    subject, time_days, code = random_events(rng, 3000, n_subjects=40, n_codes=50)
    big = (code.astype(np.int64) * 113) % 6000
    small = cooccurrence_counts(subject, time_days, code, 50).counts
    large = cooccurrence_counts(subject, time_days, big, 6000, chunk_events=500, n_threads=2).counts
    c50 = np.arange(50) * 113 % 6000
    np.testing.assert_array_equal(large[c50][:, c50].toarray(), small.toarray())
    assert large.sum() == small.sum()


@pytest.mark.parametrize("seed", range(10))
def test_cap_counts_every_lost_pair(seed):
    rng = np.random.default_rng(100 + seed)
    subject, time_days, code = random_events(rng, 120, n_subjects=3, n_codes=8, span=20.0)
    ref, _, n_pairs = brute_counts(subject, time_days, code, 8, 30.0)
    k = int(rng.integers(1, 6))
    res = cooccurrence_counts(subject, time_days, code, 8, max_neighbors=k, chunk_events=40)
    assert res.n_pairs_capped > 0
    assert res.n_pairs + res.n_pairs_capped == n_pairs
    assert (res.counts.toarray() <= ref).all()
    assert 1 <= res.n_subjects_capped <= 3


def test_cap_on_one_dense_day():
    # one patient, 10 distinct codes on one day: 45 pairs; with 3 neighbours each event
    # pairs with its next 3 in code order: 3*7 + 2 + 1 = 24 kept, 21 capped
    subject = np.zeros(10, dtype=np.int64)
    time_days = np.full(10, 5.5)
    code = np.arange(10)[::-1].copy()
    res = cooccurrence_counts(np.append(subject, 1), np.append(time_days, 0.0), np.append(code, 0), 10,
                              max_neighbors=3)
    assert (res.n_pairs, res.n_pairs_capped, res.n_subjects_capped) == (24, 21, 1)
    c = res.counts.toarray()
    assert c[0, 3] == 1 and c[0, 4] == 0


def test_empty_input():
    e = np.array([], dtype=np.int64)
    res = cooccurrence_counts(e, e.astype(float), e, 4)
    assert isinstance(res, CooccurrenceResult)
    assert res.counts.shape == (4, 4) and res.counts.nnz == 0 and res.n_pairs == 0


@pytest.mark.parametrize(
    ("subject", "time_days", "code", "match"),
    [
        ([1, 2], [0.0], [0], "same length"),
        ([1.5], [0.0], [0], "subject ids must be integers"),
        ([1], [np.nan], [0], "not a finite number"),
        ([1], [1e300], [0], "not a finite number"),
        ([1], [0.0], [3], "outside"),
        ([1], [0.0], [-1], "outside"),
        ([1], ["x"], [0], "numeric days"),
    ],
)
def test_bad_input_raises_with_explanation(subject, time_days, code, match):
    with pytest.raises(MashInputError, match=match):
        cooccurrence_counts(np.array(subject), np.array(time_days), np.array(code), 3)


def test_bad_parameters_raise():
    one = np.array([1])
    with pytest.raises(MashInputError, match="window_days"):
        cooccurrence_counts(one, one * 1.0, one * 0, 2, window_days=-1)
    with pytest.raises(MashInputError, match="max_neighbors"):
        cooccurrence_counts(one, one * 1.0, one * 0, 2, max_neighbors=0)
    with pytest.raises(MashInputError, match="n_codes"):
        cooccurrence_counts(one, one * 1.0, one * 0, 0)


# --------------------------------------------------------------------------- SPPMI


def small_counts(seed=0, n=12):
    rng = np.random.default_rng(seed)
    c = rng.poisson(2.0, (n, n)) * (rng.random((n, n)) < 0.5)
    c = np.triu(c, 1)
    c = c + c.T
    c[3] = 0  # a code that never co-occurs
    c[:, 3] = 0
    return c.astype(np.float64)


@pytest.mark.parametrize(("shift", "alpha"), [(1.0, 1.0), (5.0, 0.75), (2.0, 0.5)])
def test_sppmi_equals_dense_reference(shift, alpha):
    c = small_counts()
    out = sppmi(sp.csr_matrix(c), shift=shift, cds_alpha=alpha)
    assert isinstance(out, sp.csr_matrix) and out.dtype == np.float64
    np.testing.assert_allclose(out.toarray(), dense_sppmi(c, shift, alpha), rtol=1e-12, atol=1e-12)
    assert out.data.min() > 0
    assert not out[3].toarray().any()


def test_sppmi_without_smoothing_is_symmetric():
    c = small_counts(1)
    out = sppmi(sp.csr_matrix(c), shift=2.0, cds_alpha=1.0)
    assert abs(out - out.T).max() < 1e-12


def test_shift_increases_sparsity():
    c = sp.csr_matrix(small_counts(2, n=30))
    nnz = [sppmi(c, shift=k).nnz for k in (1.0, 2.0, 5.0, 20.0)]
    assert nnz == sorted(nnz, reverse=True)
    assert nnz[0] > nnz[-1]


def test_sppmi_rejects_bad_input():
    with pytest.raises(MashInputError, match="non-negative"):
        sppmi(sp.csr_matrix(np.array([[0.0, -1.0], [-1.0, 0.0]])))
    with pytest.raises(MashInputError, match="shift"):
        sppmi(sp.csr_matrix(np.eye(2)), shift=0.0)
    assert sppmi(sp.csr_matrix((3, 3))).nnz == 0


# --------------------------------------------------------------------------- SVD


def assert_unit_or_zero(v):
    norms = np.linalg.norm(v, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))


@pytest.mark.parametrize("n", [40, 700])  # dense SVD and ARPACK
def test_svd_embeddings_invariants(n):
    rng = np.random.default_rng(n)
    a = sp.random(n, n, density=0.05, random_state=rng)
    keep = sp.diags((np.arange(n) != 5).astype(float))
    m = sp.csr_matrix(keep @ (a + a.T) @ keep)  # row and column 5 all zero
    m.eliminate_zeros()
    v = svd_embeddings(m, dim=8, seed=0)
    assert v.shape == (n, 8) and v.dtype == np.float32
    assert_unit_or_zero(v)
    assert not v[5].any()
    np.testing.assert_array_equal(v, svd_embeddings(m, dim=8, seed=0))
    # sign convention: U is fixed by its largest entries, so M and -M embed alike
    np.testing.assert_allclose(svd_embeddings(-m, dim=8, seed=0), v, atol=1e-4)


@pytest.mark.parametrize("n", [300, 600])  # dense SVD and ARPACK
def test_svd_embeddings_match_numpy_reference(n):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3)) * np.array([10.0, 6.0, 3.0])
    noise = 0.01 * rng.standard_normal((n, n))
    m = x @ x.T + (noise + noise.T) / 2
    u, s, _ = np.linalg.svd(m)
    assert s[2] > 10 * s[3]
    u = u[:, :3] * np.sign(u[np.argmax(np.abs(u[:, :3]), axis=0), np.arange(3)])
    e = u * np.sqrt(s[:3])
    ref = e / np.linalg.norm(e, axis=1, keepdims=True)
    np.testing.assert_allclose(svd_embeddings(sp.csr_matrix(m), dim=3), ref, atol=1e-4)


def test_dim_beyond_rank_pads_with_zeros():
    x = np.random.default_rng(0).standard_normal((30, 2))
    v = svd_embeddings(sp.csr_matrix(x @ x.T), dim=10)
    assert v.shape == (30, 10)
    assert np.abs(v[:, 2:]).max() == 0
    assert_unit_or_zero(v)
    assert svd_embeddings(np.ones((3, 1)), dim=4).shape == (3, 4)


def test_svd_of_zero_matrix_is_zero():
    assert not svd_embeddings(sp.csr_matrix((5, 5)), dim=3).any()


def two_cluster_events(n_subjects=400, per_subject=12, n_codes=20, seed=0):
    """Each patient draws codes from one of two clusters: codes < 10 or codes >= 10."""
    rng = np.random.default_rng(seed)
    subject = np.repeat(np.arange(n_subjects) * 7919, per_subject)
    cluster = np.repeat(rng.integers(0, 2, n_subjects), per_subject)
    code = rng.integers(0, n_codes // 2, subject.size) + cluster * (n_codes // 2)
    time_days = 18000 + rng.uniform(0, 60, subject.size)
    return subject, time_days, code.astype(np.int32)


def test_embeddings_separate_planted_clusters():
    subject, time_days, code = two_cluster_events()
    emb = cooccurrence_embeddings(subject, time_days, code, 20, dim=4, shift=1.0, min_events=5)
    v = emb.vectors.astype(np.float64)
    cos = v @ v.T
    same = np.equal.outer(np.arange(20) < 10, np.arange(20) < 10)
    off_diag = ~np.eye(20, dtype=bool)
    assert cos[same & off_diag].min() > cos[~same].max()
    assert emb.reliable.all()


def test_cooccurrence_embeddings_result():
    subject, time_days, code = two_cluster_events()
    code = code.copy()
    code[:3] = 20  # a rare code: 3 events or fewer after collapsing
    emb = cooccurrence_embeddings(subject, time_days, code, 22, dim=6, min_events=20)
    assert emb.vectors.shape == (22, 6) and emb.vectors.dtype == np.float32
    assert emb.code_events.dtype == np.int64 and emb.code_events.shape == (22,)
    assert emb.reliable.dtype == bool
    assert not emb.reliable[20] and not emb.reliable[21]  # rare, and never seen
    assert not emb.vectors[21].any()
    np.testing.assert_array_equal(emb.reliable, (emb.code_events >= 20) & np.any(emb.vectors != 0, axis=1))
    assert_unit_or_zero(emb.vectors)
    json.dumps(emb.stats)
    assert emb.stats["n_pairs"] * 2 == emb.counts.sum()
    assert set(emb.stats["seconds"]) == {"counts", "sppmi", "svd"}
    again = cooccurrence_embeddings(subject, time_days, code, 22, dim=6, min_events=20)
    np.testing.assert_array_equal(again.vectors, emb.vectors)


# --------------------------------------------------------------------------- codes without events


def test_embeddings_of_a_site_without_events():
    """A text-only site (a code list, no events): zero vectors, nothing reliable, no error."""
    e = np.array([], dtype=np.int64)
    emb = cooccurrence_embeddings(e, e.astype(np.float64), e.astype(np.int32), 74_000, dim=16)
    assert emb.vectors.shape == (74_000, 16) and emb.vectors.dtype == np.float32
    assert not emb.vectors.any()
    assert emb.reliable.shape == (74_000,) and emb.reliable.dtype == bool and not emb.reliable.any()
    assert emb.code_events.shape == (74_000,) and not emb.code_events.any()
    assert emb.counts.shape == emb.sppmi.shape == (74_000, 74_000)
    assert emb.counts.nnz == emb.sppmi.nnz == 0
    assert emb.stats["n_events"] == emb.stats["n_pairs"] == emb.stats["n_reliable"] == 0
    assert emb.stats["events_per_second"] == 0.0
    json.dumps(emb.stats, allow_nan=False)
    assert set(emb.stats["seconds"]) == {"counts", "sppmi", "svd"}


def test_codes_without_events_do_not_change_the_others():
    """Listing many more codes (none with events) leaves the used codes' vectors as they were."""
    subject, time_days, code = two_cluster_events()
    small = cooccurrence_embeddings(subject, time_days, code, 20, dim=6, min_events=5)
    spread = code.astype(np.int64) * 50 + 7  # the 20 codes among 1,000
    big = cooccurrence_embeddings(subject, time_days, spread, 1_000, dim=6, min_events=5)
    used = np.arange(20) * 50 + 7
    np.testing.assert_allclose(big.vectors[used], small.vectors, atol=1e-6)
    np.testing.assert_array_equal(big.reliable[used], small.reliable)
    others = np.setdiff1d(np.arange(1_000), used)
    assert not big.vectors[others].any() and not big.reliable[others].any()
    assert big.stats["n_reliable"] == small.stats["n_reliable"]
    assert big.stats["n_pairs"] == small.stats["n_pairs"]


def test_svd_ignores_empty_rows_and_columns():
    rng = np.random.default_rng(1)
    a = sp.random(40, 30, density=0.3, random_state=2, format="csr")
    full = sp.lil_matrix((700, 600))
    r, c = rng.choice(700, 40, replace=False), rng.choice(600, 30, replace=False)
    full[np.ix_(r, c)] = a.toarray()
    v = svd_embeddings(full.tocsr(), dim=5)
    np.testing.assert_allclose(v[r], svd_embeddings(a, dim=5), atol=1e-6)
    assert not np.delete(v, r, axis=0).any()


def test_arpack_failure_is_recorded_and_warned(monkeypatch):
    """A non-converging ARPACK falls back to the dense SVD, with a warning and a stat."""
    import scipy.sparse.linalg as spla

    from mash import cooccur

    rng = np.random.default_rng(0)
    subject = np.repeat(np.arange(4000), 6)
    code = rng.integers(0, 700, len(subject)).astype(np.int32)
    times = np.zeros(len(subject))
    ok = cooccur.cooccurrence_embeddings(subject, times, code, 700, dim=8, min_events=1)
    assert ok.stats["svd_solver"] == "arpack"

    def no_convergence(*args, **kwargs):
        raise spla.ArpackNoConvergence("no convergence", np.zeros(0), np.zeros((0, 0)))

    monkeypatch.setattr(cooccur, "svds", no_convergence)
    with pytest.warns(cooccur.SvdFallbackWarning, match="ARPACK did not converge"):
        res = cooccur.cooccurrence_embeddings(subject, times, code, 700, dim=8, min_events=1)
    assert res.stats["svd_solver"] == "dense after arpack did not converge"
    a, b = ok.vectors.astype(np.float64), res.vectors.astype(np.float64)
    np.testing.assert_allclose(a @ a.T, b @ b.T, atol=1e-3)  # the same embedding geometry
