"""Combining views into one calibrated score per candidate pair.

Each view gives one value per candidate pair (CSLS-corrected similarities of the raw
and normalised descriptions, character n-grams, words, co-occurrence after the map,
the transport plan; a missing-co-occurrence flag; a frequency gap). A linear score
:math:`s(q, c) = w^\\top f(q, c)` is fitted by a conditional-logit (listwise softmax)
likelihood on anchor pairs, each anchor's softmax running over its query's candidates
:math:`C(q)`:

.. math::
   p(c \\mid q) = \\frac{\\exp s(q, c)}{\\sum_{c' \\in C(q)} \\exp s(q, c')}, \\qquad
   \\hat w = \\arg\\max_w \\sum_{(q, c) \\in A} \\log p(c \\mid q) - \\tfrac{\\lambda}{2}\\lVert w\\rVert^2 .

The reported score is :math:`p(c \\mid q)`: the probability that ``c`` is the match of
``q`` given that ``q`` has one (reference codes outside ``C(q)`` get none). Because
the weights' scale is fitted by likelihood it also acts as the softmax temperature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mash.align.pairs import PairSet

__all__ = ["ScorerFit", "fit_listwise"]


@dataclass(frozen=True)
class ScorerFit:
    """Fitted weights of the listwise scorer and how the fit went.

    Attributes
    ----------
    weights : ndarray, shape (F,), float32
    converged : bool
        L-BFGS stopped before its iteration limit.
    iterations : int
    loss : float
        Final mean negative log-likelihood (plus ridge term); ``nan`` without anchors.
    n_anchors : int
        Anchor queries the fit used.
    """

    weights: np.ndarray
    converged: bool
    iterations: int
    loss: float
    n_anchors: int


def fit_listwise(
    feats: np.ndarray,
    pairs: PairSet,
    anchor_pairs: np.ndarray,
    *,
    prior: np.ndarray | None = None,
    l2: float = 1e-3,
    iters: int = 200,
    max_anchors: int = 10_000,
    seed: int = 0,
) -> ScorerFit:
    """Fit the weights of the listwise scorer on anchor pairs.

    Parameters
    ----------
    feats : ndarray, shape (P, F)
        Features of every candidate pair of ``pairs``.
    pairs : PairSet
    anchor_pairs : ndarray, shape (m,), int
        Pair indices of the anchors (each anchor must be a candidate pair); at most one
        per query.
    prior : ndarray, shape (F,), optional
        Starting weights (default: all ones).
    l2, iters
        Ridge penalty, L-BFGS iterations.
    max_anchors : int
        Fit on at most this many anchors (a seeded sample), which bounds memory at
        ``max_anchors × max candidates × F`` floats.
    seed : int

    Returns
    -------
    ScorerFit
        With ``prior`` as weights (and ``converged=False``) when there are no anchors.
    """
    n_feat = feats.shape[1]
    w0 = np.ones(n_feat, np.float32) if prior is None else prior.astype(np.float32)
    anchor_pairs = np.asarray(anchor_pairs, np.int64)
    if len(anchor_pairs) == 0:
        return ScorerFit(w0, False, 0, float("nan"), 0)
    if len(anchor_pairs) > max_anchors:
        rng = np.random.default_rng(seed)
        anchor_pairs = np.sort(rng.choice(anchor_pairs, max_anchors, replace=False))
    q = pairs.query[anchor_pairs]
    start, size = pairs.ptr[q], pairs.sizes[q]
    width = int(size.max())
    slot = np.arange(width)[None, :]
    idx = np.minimum(start[:, None] + slot, len(pairs) - 1)
    mask = slot >= size[:, None]
    target = torch.as_tensor(anchor_pairs - start)
    xt = torch.as_tensor(feats[idx].astype(np.float32))  # (m, width, F)
    mt = torch.as_tensor(mask)
    w = torch.tensor(w0, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=iters, line_search_fn="strong_wolfe")
    rows = torch.arange(len(anchor_pairs))

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = (xt @ w).masked_fill(mt, float("-inf"))
        loss = -torch.log_softmax(logits, dim=1)[rows, target].mean() + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        logits = (xt @ w).masked_fill(mt, float("-inf"))
        loss = float(-torch.log_softmax(logits, dim=1)[rows, target].mean() + 0.5 * l2 * (w * w).sum())
    n_iter = int(opt.state[w].get("n_iter", 0))
    return ScorerFit(w.detach().numpy().astype(np.float32), n_iter < iters, n_iter, loss, len(anchor_pairs))
