"""Retrieval metrics against a gold standard, calibration error, and (re-exported from
:mod:`mash.hyperbolic.treemetrics`) dendrogram purity and Dasgupta cost."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mash.hyperbolic.treemetrics import dasgupta_cost, dendrogram_purity

__all__ = ["dasgupta_cost", "dendrogram_purity", "expected_calibration_error", "ranking_metrics"]


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
