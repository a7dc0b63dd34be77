"""Retrieval metrics against a gold standard, calibration error, clinical prediction
metrics (F1, AUROC, AUPRC; RMSE, R², explained variance) and hierarchy metrics
(dendrogram purity, Dasgupta cost) on parent arrays (:mod:`mash.trees`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mash.errors import MashError
from mash.trees import check_nodes, euler_tour

__all__ = [
    "classification_metrics",
    "dasgupta_cost",
    "dendrogram_purity",
    "expected_calibration_error",
    "ranking_metrics",
    "regression_metrics",
]


def ranking_metrics(mapping: pd.DataFrame, gold: pd.DataFrame, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """hits@k and MRR@10 of ranked candidates against gold pairs.

    Parameters
    ----------
    mapping : DataFrame
        Columns ``site, code, reference_code, rank`` (rank 1 = best).
    gold : DataFrame
        Columns ``site, code, reference_code``: every correct pair; a query code may have
        several correct reference codes (any counts as a hit).

    Returns
    -------
    dict
        ``hits@k`` for each k, ``mrr@10`` and ``n`` (evaluated query codes: those with a
        gold pair whose codes exist on both sides of ``mapping``).
    """
    g = gold[["site", "code", "reference_code"]].drop_duplicates()
    queries = g[["site", "code"]].drop_duplicates()
    queries = queries.merge(mapping[["site", "code"]].drop_duplicates(), on=["site", "code"])
    hit = mapping.merge(g.assign(correct=True), on=["site", "code", "reference_code"], how="left")
    hit["correct"] = hit["correct"].fillna(False).astype(bool)
    first = (
        hit[hit["correct"]].groupby(["site", "code"])["rank"].min().rename("first").reset_index()
    )
    q = queries.merge(first, on=["site", "code"], how="left")
    ranks = q["first"].to_numpy(dtype=float)  # NaN = no gold code among the candidates
    out: dict[str, float] = {"n": int(len(q))}
    for k in ks:
        out[f"hits@{k}"] = float(np.nanmean(np.where(np.isnan(ranks), 0.0, ranks <= k))) if len(q) else float("nan")
    rr = np.where(np.isnan(ranks) | (ranks > 10), 0.0, 1.0 / np.nan_to_num(ranks, nan=1.0))
    out["mrr@10"] = float(rr.mean()) if len(q) else float("nan")
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    r"""ECE of top-1 confidences: :math:`\sum_b \frac{|B_b|}{n} |\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|`
    over ``n_bins`` equal-width bins of confidence in [0, 1].

    Parameters
    ----------
    confidence : ndarray, shape (n,)
    correct : ndarray, shape (n,), bool
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return float(ece)


def classification_metrics(
    y: np.ndarray, score: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """AUROC, AUPRC (average precision) and F1 of binary predictions.

    Parameters
    ----------
    y : ndarray of {0, 1}, shape (n,)
    score : ndarray of float, shape (n,)
        Predicted probability of the positive class.
    threshold : float
        Decision threshold for F1 (and accuracy).

    Returns
    -------
    dict
        ``auroc``, ``auprc``, ``f1``, ``accuracy``, ``prevalence``, ``n``. AUROC and
        AUPRC are NaN when ``y`` has one class only.
    """
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    y = np.asarray(y).astype(int)
    score = np.asarray(score, dtype=float)
    pred = (score >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "auroc": float(roc_auc_score(y, score)) if both else float("nan"),
        "auprc": float(average_precision_score(y, score)) if both else float("nan"),
        "f1": float(f1_score(y, pred, zero_division=0.0)),
        "accuracy": float(np.mean(pred == y)),
        "prevalence": float(np.mean(y)),
        "n": int(len(y)),
    }


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R² and explained variance.

    Parameters
    ----------
    y, pred : ndarray of float, shape (n,)

    Returns
    -------
    dict
        ``rmse``, ``mae``, ``r2``, ``explained_variance``, ``n``.
    """
    from sklearn.metrics import explained_variance_score, r2_score

    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    return {
        "rmse": float(np.sqrt(np.mean((y - pred) ** 2))),
        "mae": float(np.mean(np.abs(y - pred))),
        "r2": float(r2_score(y, pred)),
        "explained_variance": float(explained_variance_score(y, pred)),
        "n": int(len(y)),
    }


# --------------------------------------------------------------------------- hierarchies


def dasgupta_cost(
    parent: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    w: np.ndarray,
    leaves: np.ndarray | None = None,
) -> float:
    r"""Dasgupta's cost of a hierarchy for a weighted similarity graph.

    .. math::

        \mathrm{cost}(T) = \sum_k w_k \, \bigl|\mathrm{leaves}\bigl(T[\mathrm{lca}(i_k, j_k)]\bigr)\bigr|

    Lower is better: similar pairs should be split as late (as deep) as possible.

    Parameters
    ----------
    parent : ndarray of int, shape (n,)
        Parent array of a rooted tree (any arity).
    i, j : ndarray of int, shape (p,)
        End points of the similarity edges, as node indices (normally leaves).
    w : ndarray of float, shape (p,)
        Edge weights (similarities), finite.
    leaves : ndarray of int, shape (m,), optional
        The nodes counted as leaves. Default: every node without children.

    Returns
    -------
    float
        The cost; ``0.0`` for no edges.

    Raises
    ------
    MashError
        On an invalid tree, out-of-range node indices, mismatched shapes or non-finite
        weights.

    References
    ----------
    S. Dasgupta, "A cost function for similarity-based hierarchical clustering", STOC 2016.

    Examples
    --------
    >>> parent = np.array([4, 4, 5, 5, 6, 6, -1])  # ((0, 1), (2, 3))
    >>> dasgupta_cost(parent, np.array([0, 0, 2]), np.array([1, 2, 3]), np.array([1.0, 2.0, 0.5]))
    11.0
    """
    tour = euler_tour(parent)
    i = check_nodes(i, tour.n, "i").ravel()
    j = check_nodes(j, tour.n, "j").ravel()
    w = np.asarray(w, dtype=np.float64).ravel()
    if not (i.shape == j.shape == w.shape):
        raise MashError(
            f"i, j and w must have the same length, got {i.shape[0]}, {j.shape[0]}, {w.shape[0]}"
        )
    if not np.isfinite(w).all():
        raise MashError(f"w has {int((~np.isfinite(w)).sum())} non-finite weights")
    if leaves is None:
        counted = np.flatnonzero(tour.is_leaf)
    else:
        counted = np.unique(check_nodes(leaves, tour.n, "leaves"))
    if i.size == 0:
        return 0.0
    anc = tour.lca(i, j)
    cum = tour.prefix_counts(counted)
    size = cum[tour.tout[anc] + 1] - cum[tour.tin[anc]]
    return float(np.dot(w, size.astype(np.float64)))


def _label_codes(labels: object, m: int) -> np.ndarray:
    """Integer class codes ``0..C-1`` of ``m`` hashable labels, shape (m,)."""
    if isinstance(labels, np.ndarray):
        arr = labels
    else:
        items = list(labels)  # type: ignore[call-overload]
        arr = np.fromiter(items, dtype=object, count=len(items))  # keeps tuples as labels
    if arr.ndim != 1 or arr.shape[0] != m:
        raise MashError(f"labels must have shape ({m},) like leaves, got {arr.shape}")
    codes, _ = pd.factorize(arr)
    if (codes < 0).any():
        raise MashError(f"labels has {int((codes < 0).sum())} missing values (None or NaN)")
    return codes.astype(np.int64)


def dendrogram_purity(parent: np.ndarray, leaves: np.ndarray, labels: np.ndarray) -> float:
    r"""Dendrogram purity of a hierarchy against class labels.

    For every pair of evaluated leaves with the same label :math:`c`, the purity of the pair
    is the fraction of evaluated leaves under their lowest common ancestor that carry
    :math:`c`; the result is the mean over all such pairs:

    .. math::

        \mathrm{DP}(T) = \frac{1}{|\mathcal P|} \sum_{(a, b) \in \mathcal P}
            \frac{n_{c}(\mathrm{lca}(a, b))}{n(\mathrm{lca}(a, b))},
        \qquad
        \mathcal P = \{(a, b) : a < b,\ c_a = c_b\}

    where :math:`n_c(x)` counts evaluated leaves of class :math:`c` under :math:`x` and
    :math:`n(x)` all evaluated leaves under :math:`x`. Nodes not in ``leaves`` are ignored
    (they count in no subtree). The number of class-:math:`c` pairs whose LCA is :math:`x` is
    :math:`\binom{n_c(x)}{2} - \sum_{y} \binom{n_c(y)}{2}` over the children :math:`y` of
    :math:`x`; it is computed on the virtual tree of each class (its leaves and the LCAs of
    DFS-neighbours), in ``O(m log m + n log n)`` time for any number of classes and any
    arity.

    Parameters
    ----------
    parent : ndarray of int, shape (n,)
        Parent array of a rooted tree (any arity).
    leaves : ndarray of int, shape (m,)
        Distinct node indices to evaluate (normally leaves; an internal node is allowed and
        then counts in its own subtree).
    labels : array-like, shape (m,)
        Class label of each evaluated leaf; any hashable values, no missing ones.

    Returns
    -------
    float
        In ``(0, 1]``; ``1.0`` when every class is exactly the leaf set of some subtree. NaN
        when no two evaluated leaves share a label.

    Raises
    ------
    MashError
        On an invalid tree, out-of-range or repeated ``leaves``, a length mismatch, or
        missing labels.

    References
    ----------
    K. A. Heller and Z. Ghahramani, "Bayesian hierarchical clustering", ICML 2005.
    I. Chami, A. Gu, V. Chatziafratis and C. Ré, "From trees to continuous embeddings and
    back: hyperbolic hierarchical clustering" (HypHC), NeurIPS 2020.

    Examples
    --------
    >>> parent = np.array([4, 4, 5, 5, 6, 6, -1])  # ((0, 1), (2, 3))
    >>> dendrogram_purity(parent, np.arange(4), np.array(["a", "a", "b", "b"]))
    1.0
    >>> dendrogram_purity(parent, np.arange(4), np.array(["a", "b", "a", "b"]))
    0.5
    """
    tour = euler_tour(parent)
    leaves = check_nodes(leaves, tour.n, "leaves").ravel()
    if np.unique(leaves).size != leaves.size:
        raise MashError("leaves has repeated node indices: each evaluated leaf must be distinct")
    codes = _label_codes(labels, leaves.shape[0])

    span = 2 * tour.n  # sort key: class * span + position in the walk
    skey = np.sort(codes * span + tour.tin[leaves])
    s_cls, s_node = skey // span, tour.node_at[skey % span]
    same = s_cls[1:] == s_cls[:-1]
    if not same.any():
        return float("nan")

    # Virtual tree of every class: its leaves plus LCAs of DFS-neighbours (closed under LCA).
    anc = tour.lca(s_node[:-1][same], s_node[1:][same])
    vkey = np.unique(np.concatenate([skey, s_cls[1:][same] * span + tour.tin[anc]]))
    v_cls, v_node = vkey // span, tour.node_at[vkey % span]

    # n_c(v): class-c evaluated leaves in the subtree of v; n(v): all evaluated leaves there.
    hi = v_cls * span + tour.tout[v_node]
    n_c = (np.searchsorted(skey, hi, side="right") - np.searchsorted(skey, vkey)).astype(float)
    cum = tour.prefix_counts(leaves)
    n_all = (cum[tour.tout[v_node] + 1] - cum[tour.tin[v_node]]).astype(np.float64)

    # Virtual parent of v_k (same class, k > first) is lca(v_{k-1}, v_k).
    child = np.flatnonzero(v_cls[1:] == v_cls[:-1]) + 1
    vp_node = tour.lca(v_node[child - 1], v_node[child])
    vp = np.searchsorted(vkey, v_cls[child] * span + tour.tin[vp_node])

    pairs = n_c * (n_c - 1.0) / 2.0  # class-c pairs inside the subtree (exact below 2^53)
    pairs_at = pairs - np.bincount(vp, weights=pairs[child], minlength=vkey.size)
    return float(np.sum(pairs_at * n_c / n_all) / np.sum(pairs_at))
