"""Candidate pairs: blockwise search and CSLS against dense computation, segment ops,
sparse unbalanced transport against POT, the no-match prior."""

from __future__ import annotations

import numpy as np
import ot
import pytest
from scipy import sparse

from mash.align.candidates import auto_block_rows, knn_blockwise, pair_csls
from mash.align.nomatch import em_prior, fit_no_match
from mash.align.pairs import (
    build_pairs,
    mutual_best,
    segment_logsumexp,
    segment_softmax,
    segment_topk,
)
from mash.align.retrieval import csls_from_similarity, mutual_nearest
from mash.align.transport import sparse_unbalanced_sinkhorn


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("block", [1, 7, 1000])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_blockwise_csls_equals_dense(block, kind):
    rng = np.random.default_rng(1)
    q, r = _unit(rng.normal(size=(40, 6))), _unit(rng.normal(size=(33, 6)))
    if kind == "sparse":
        q[q < 0.2], r[r < 0.2] = 0, 0
        q, r = _unit(q + 1e-3), _unit(r + 1e-3)
        qm, rm = sparse.csr_matrix(q), sparse.csr_matrix(r)
    else:
        qm, rm = q, r
    knn = knn_blockwise(qm, rm, 5, 4, block_rows=block)
    dense = csls_from_similarity(q @ r.T, 4)
    rows, cols = np.divmod(np.arange(40 * 33), 33)
    np.testing.assert_allclose(pair_csls(qm, rm, rows, cols, knn), dense[rows, cols], atol=1e-5)
    # candidates: the 5 most similar reference rows, best first
    sim = q @ r.T
    np.testing.assert_allclose(knn.similarity, -np.sort(-sim, axis=1)[:, :5], atol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(sim, knn.index, 1), knn.similarity, atol=1e-6)


def test_knn_restricted_rows_and_small_reference():
    rng = np.random.default_rng(2)
    q, r = _unit(rng.normal(size=(10, 4))), _unit(rng.normal(size=(3, 4)))
    knn = knn_blockwise(q, r, 50, 10)  # k and csls_k clipped to the reference size
    assert knn.index.shape == (10, 3)
    allowed = np.array([True, False, True])
    knn = knn_blockwise(q, r, 2, 2, rows=allowed)
    assert set(np.unique(knn.index)) <= {0, 2}


def test_auto_block_rows_bounds_memory():
    assert auto_block_rows(74_000) * 74_000 * 4 <= 256 * 2**20
    assert auto_block_rows(10) == 8192 and auto_block_rows(10**9) == 16


def test_segment_ops_and_mutual_best_match_dense():
    rng = np.random.default_rng(3)
    n_q, n_r = 30, 25
    scores = rng.normal(size=(n_q, n_r))
    rows, cols = np.divmod(np.arange(n_q * n_r), n_r)
    pairs = build_pairs([rows[::-1]], [cols[::-1]], n_q, n_r)  # sorted and deduplicated
    vals = scores[pairs.query, pairs.reference]
    np.testing.assert_allclose(segment_logsumexp(vals, pairs.ptr), np.log(np.exp(scores).sum(1)))
    np.testing.assert_allclose(segment_softmax(vals, pairs.ptr).reshape(n_q, n_r),
                               np.exp(scores) / np.exp(scores).sum(1, keepdims=True))
    top = segment_topk(vals, pairs, 4)
    np.testing.assert_array_equal(pairs.reference[top], np.argsort(-scores, axis=1)[:, :4])
    r1, c1, m1 = mutual_best(vals, pairs, 0.1)
    r2, c2, m2 = mutual_nearest(scores, 0.1)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_allclose(m1, m2)
    assert (pairs.find(np.array([0, 29]), np.array([0, 24])) >= 0).all()
    sub = pairs.subset(pairs.reference != 0)
    assert sub.find(np.array([3]), np.array([0]))[0] == -1 and len(sub) == n_q * (n_r - 1)


@pytest.mark.parametrize("reg_m", [0.3, 5.0])
def test_sparse_unbalanced_sinkhorn_matches_pot_on_full_support(reg_m):
    rng = np.random.default_rng(4)
    m = rng.random((6, 9))
    a = rng.random(6) + 0.1
    a /= a.sum()
    b = rng.random(9) + 0.1
    b /= 1.5 * b.sum()
    ref = ot.unbalanced.sinkhorn_unbalanced(a, b, m, 0.1, reg_m, numItermax=20000, stopThr=1e-13)
    rows, cols = np.divmod(np.arange(54), 9)
    res = sparse_unbalanced_sinkhorn(rows, cols, m[rows, cols], a, b, reg=0.1, reg_m=reg_m, max_iter=20000, tol=1e-12)
    assert res.converged
    np.testing.assert_allclose(res.plan.reshape(6, 9), ref, atol=1e-9)
    np.testing.assert_allclose(res.row_mass, ref.sum(1), atol=1e-9)


def test_sparse_sinkhorn_support_and_errors():
    rows, cols = np.array([0, 0, 1]), np.array([0, 1, 1])
    res = sparse_unbalanced_sinkhorn(rows, cols, np.zeros(3), np.array([0.5, 0.5]), np.array([0.5, 0.5]),
                                     reg=1.0, reg_m=1.0)
    assert res.plan.shape == (3,) and (res.plan > 0).all()
    with pytest.raises(ValueError):
        sparse_unbalanced_sinkhorn(rows[::-1], cols, np.zeros(3), np.ones(2), np.ones(2), reg=1.0, reg_m=1.0)
    with pytest.raises(ValueError):
        sparse_unbalanced_sinkhorn(rows, cols, np.zeros(3), np.ones(2), np.ones(2), reg=0.0, reg_m=1.0)


def test_em_prior_recovers_a_shifted_prior():
    rng = np.random.default_rng(5)
    # a calibrated classifier under a 50 % training prior, scored on a set with 10 % positives
    y = rng.random(20000) < 0.1
    score = rng.normal(np.where(y, 1.5, -1.5), 1.0)
    p_train = 1 / (1 + np.exp(-3.0 * score))  # log-odds of N(±1.5, 1) classes at prior 0.5
    adj, prior = em_prior(p_train, 0.5)
    assert abs(prior - 0.1) < 0.02
    assert abs(adj.mean() - y.mean()) < 0.02


def test_fit_no_match_needs_both_classes():
    x = np.random.default_rng(6).normal(size=(20, 3))
    assert fit_no_match(x, np.zeros(20, bool)) is None
    model = fit_no_match(x, np.arange(20) % 2 == 0)
    p = model.predict(x)
    assert p.shape == (20,) and ((p > 0) & (p < 1)).all()
