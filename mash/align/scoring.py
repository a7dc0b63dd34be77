"""Combining similarity views into one calibrated score per (query, reference) pair.

Each view gives an ``(n_q, n_r)`` matrix of CSLS-corrected similarities (text of the raw
description, text of the normalised description, character n-grams, words,
co-occurrence after the OT map). A linear score :math:`s(q, c) = w^\\top f(q, c)` is fitted
by a conditional-logit (listwise softmax) likelihood on anchor pairs:

.. math::
   p(c \\mid q) = \\frac{\\exp s(q, c)}{\\sum_{c'} \\exp s(q, c')}, \\qquad
   \\hat w = \\arg\\max_w \\sum_{(q, c) \\in A} \\log p(c \\mid q) - \\tfrac{\\lambda}{2}\\lVert w\\rVert^2

with the sum over ``c'`` restricted to each anchor query's ``n_candidates`` best
reference codes. The reported score is :math:`p(c \\mid q)` over all reference codes: a
probability that ``c`` is the match of ``q`` given that ``q`` has one. Because the weights'
scale is fitted by likelihood it also acts as the softmax temperature.
"""

from __future__ import annotations

import numpy as np
import torch


def stack(features: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """Stack named ``(n_q, n_r)`` matrices into ``(n_q, n_r, F)`` float32."""
    return np.stack([features[n] for n in names], axis=-1).astype(np.float32)


def fit_listwise(
    feats: np.ndarray,
    anchor_q: np.ndarray,
    anchor_r: np.ndarray,
    *,
    prior: np.ndarray | None = None,
    n_candidates: int = 50,
    l2: float = 1e-3,
    iters: int = 200,
) -> np.ndarray:
    """Fit the weights of the listwise scorer on anchors.

    Parameters
    ----------
    feats : ndarray, shape (n_q, n_r, F)
    anchor_q, anchor_r : ndarray, shape (m,)
        Anchor pairs (row, column) of ``feats``.
    prior : ndarray, shape (F,), optional
        Weights used to choose each anchor query's candidate list (default: all ones).
    n_candidates, l2, iters
        Candidate list size, ridge penalty, L-BFGS iterations.

    Returns
    -------
    ndarray, shape (F,)
    """
    n_feat = feats.shape[-1]
    prior = np.ones(n_feat, np.float32) if prior is None else prior.astype(np.float32)
    if len(anchor_q) == 0:
        return prior
    f_a = feats[anchor_q]  # (m, n_r, F)
    base = f_a @ prior
    k = min(n_candidates, feats.shape[1])
    cand = np.argpartition(-base, k - 1, axis=1)[:, :k]
    # make sure the anchor's own column is in its list (slot 0)
    cand = np.concatenate([anchor_r[:, None], cand], axis=1)
    dup = cand[:, 1:] == anchor_r[:, None]
    x = np.take_along_axis(f_a, cand[:, :, None], axis=1)  # (m, k+1, F)
    mask = np.concatenate([np.zeros((len(cand), 1), bool), dup], axis=1)
    xt = torch.as_tensor(x)
    mt = torch.as_tensor(mask)
    w = torch.tensor(prior, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = (xt @ w).masked_fill(mt, float("-inf"))
        loss = -torch.log_softmax(logits, dim=1)[:, 0].mean() + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().astype(np.float32)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shape preserved, float32."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z.astype(np.float32)
