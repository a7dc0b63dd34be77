r"""``p_no_match``: the probability that a code has no counterpart in the reference.

The listwise score is :math:`p(c \mid q, \text{a match exists})`. Whether a match
exists is judged per code from what its candidate list looks like: how good its best
candidate is (:math:`\max_c s(q, c)`), how much likelihood all candidates hold
(:math:`\log\sum_c e^{s(q, c)}`), the margin over the second best, how much of the code's
mass the unbalanced transport plan could place (a code without a counterpart keeps its
mass), and how often the code occurs.

No code is labelled "no match" at training time, so labels are made by **holding out
reference codes**: the reference codes of a random half of the anchor pairs are removed
from every candidate list, logits and transport are recomputed, and a logistic
regression learns to tell the anchor codes whose counterpart was removed (label 1) from
the others (label 0). The training prior (one half) is then replaced by the prior of
the codes being scored, estimated by the EM procedure of Saerens, Latinne & Decaestecker
(2002, *Neural Computation* 14:21–41), which adjusts posteriors to a new class prior
without labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mash.align.pairs import PairSet, segment_logsumexp, segment_max

__all__ = ["NoMatchModel", "em_prior", "fit_no_match", "query_features", "FEATURES"]

FEATURES = ("logsumexp", "best", "margin", "transported", "log_events")


def query_features(
    logits: np.ndarray, pairs: PairSet, transported: np.ndarray, log_events: np.ndarray
) -> np.ndarray:
    """Per-code features of the candidate list, shape (n_query, len(FEATURES)).

    Parameters
    ----------
    logits : ndarray, shape (P,)
        Scorer logits of the candidate pairs.
    pairs : PairSet
    transported : ndarray, shape (n_query,)
        Fraction of each code's mass the transport plan placed (1 without transport).
    log_events : ndarray, shape (n_query,)
        ``log(1 + events)`` of each code.
    """
    lse = segment_logsumexp(logits, pairs.ptr)
    best = segment_max(logits, pairs.ptr)
    masked = logits.copy()
    top = np.full(len(pairs), False)
    order = np.lexsort((pairs.reference, -logits, pairs.query))
    has = pairs.sizes > 0
    top[order[pairs.ptr[:-1][has]]] = True
    masked[top] = -np.inf
    second = segment_max(masked, pairs.ptr)
    floor = np.nanmin(np.where(np.isfinite(best), best, np.nan)) - 10 if np.isfinite(best).any() else -10.0
    best = np.where(np.isfinite(best), best, floor)
    lse = np.where(np.isfinite(lse), lse, floor)
    margin = np.where(np.isfinite(second), best - second, 10.0)
    t = np.log(np.clip(transported, 1e-12, None))
    return np.column_stack([lse, best, margin, t, log_events]).astype(np.float64)


def em_prior(p: np.ndarray, train_prior: float, *, max_iter: int = 200, tol: float = 1e-8) -> tuple[np.ndarray, float]:
    """Adjust posteriors fitted under ``train_prior`` to the prior of the scored set.

    Parameters
    ----------
    p : ndarray, shape (n,)
        Posteriors of the positive class under the training prior.
    train_prior : float

    Returns
    -------
    p_adjusted : ndarray, shape (n,)
    prior : float
        The estimated prior of the scored set.
    """
    p = np.clip(np.asarray(p, np.float64), 1e-9, 1 - 1e-9)
    prior = train_prior
    adj = p
    for _ in range(max_iter):
        r1, r0 = prior / train_prior, (1 - prior) / (1 - train_prior)
        adj = r1 * p / (r1 * p + r0 * (1 - p))
        new = float(adj.mean())
        if abs(new - prior) < tol:
            prior = new
            break
        prior = min(max(new, 1e-6), 1 - 1e-6)
    return adj, prior


@dataclass(frozen=True)
class NoMatchModel:
    """A fitted logistic model of "no counterpart" on :func:`query_features`.

    Attributes
    ----------
    mean, scale : ndarray, shape (F,)
        Standardisation of the features.
    coef : ndarray, shape (F,)
    intercept : float
    train_prior : float
        Share of positives in the training set.
    n_train : int
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    train_prior: float
    n_train: int

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """Posterior of "no counterpart" under the training prior, shape (n,)."""
        z = (feats - self.mean) / self.scale @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


def fit_no_match(feats: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> NoMatchModel | None:
    """L2 logistic regression (scikit-learn, C = 1) of ``labels`` on standardised ``feats``.

    Parameters
    ----------
    feats : ndarray, shape (n, F)
    labels : ndarray, shape (n,), bool
    seed : int

    Returns
    -------
    NoMatchModel, or None when either class has fewer than 5 examples.
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, bool)
    if labels.sum() < 5 or (~labels).sum() < 5:
        return None
    mean = feats.mean(axis=0)
    scale = feats.std(axis=0)
    scale[scale < 1e-9] = 1.0
    clf = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    clf.fit((feats - mean) / scale, labels)
    return NoMatchModel(mean, scale, clf.coef_[0].astype(np.float64), float(clf.intercept_[0]), float(labels.mean()), len(labels))
