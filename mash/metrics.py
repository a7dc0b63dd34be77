"""Retrieval metrics against a gold standard, calibration error, clinical prediction
metrics (F1, AUROC, AUPRC; RMSE, R², explained variance) and (re-exported from
:mod:`mash.hyperbolic.treemetrics`) dendrogram purity and Dasgupta cost."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mash.hyperbolic.treemetrics import dasgupta_cost, dendrogram_purity

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
