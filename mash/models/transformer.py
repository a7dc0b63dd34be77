"""mash's visit-sequence model: a Transformer whose attention sees the time between visits.

Each attention head adds a learned multiple of the interval between two visits to its
logits (the seed's form, also RAPT's "time-aware attention", Ren et al. KDD 2021):

.. math::
    A^{(h)}_{ij} = \\mathrm{softmax}_j\\Big(\\frac{q^{(h)}_i \\cdot k^{(h)}_j}{\\sqrt{d_h}}
    - w_h\\,\\frac{|t_i - t_j|}{\\tau}\\Big),

with one learnable :math:`w_h` per head and layer (free in sign; initialised at
``time_init``, 0 by default, so training starts from the plain Transformer and learns
how much each head should favour nearby visits) and :math:`\\tau = 365` days.
With ``time_embedding`` each visit vector also gets an embedding (a small MLP) of
:math:`\\log(1 + \\text{days from the visit to the prediction time})`; mash's default
model (:class:`mash.models.ModelConfig`) uses both. With ``time_aware=False`` the term is absent
and the model is the plain Transformer baseline (learned positions only).

A ``[CLS]`` slot at the prediction time (the last visit's time) is prepended; its
final state is the patient representation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mash.models.base import SequenceEncoder
from mash.models.batch import VisitBatch

__all__ = ["TimeAwareAttention", "TimeAwareTransformer", "TransformerEncoder"]

YEAR_DAYS = 365.0


def time_bias(times: torch.Tensor, weight: torch.Tensor, scale: float = YEAR_DAYS) -> torch.Tensor:
    """Per-head additive attention term :math:`-w_h |t_i - t_j| / \\tau`.

    Parameters
    ----------
    times : FloatTensor, shape (B, L)
        Days.
    weight : FloatTensor, shape (H,)
    scale : float
        :math:`\\tau` in days.

    Returns
    -------
    FloatTensor, shape (B, H, L, L)
    """
    gap = (times[:, :, None] - times[:, None, :]).abs() / scale  # (B, L, L)
    return -weight[None, :, None, None] * gap[:, None]


class TimeAwareAttention(nn.Module):
    """Multi-head self-attention with an optional learned time-interval term per head.

    Parameters
    ----------
    dim : int
    heads : int
    dropout : float
    time_aware : bool

    Shapes
    ------
    ``forward(x (B, L, dim), times (B, L), key_mask (B, L) bool)`` → (B, L, dim).
    """

    def __init__(
        self, dim: int, heads: int, dropout: float, time_aware: bool, time_init: float = 0.0
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.time_aware = time_aware
        self.time_weight = nn.Parameter(torch.full((heads,), float(time_init))) if time_aware else None
        self.last_weights: torch.Tensor | None = None  # (B, H, L, L) when keep_weights

    def forward(
        self,
        x: torch.Tensor,
        times: torch.Tensor,
        key_mask: torch.Tensor,
        keep_weights: bool = False,
    ) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        bias = torch.zeros(b, 1, n, n, dtype=x.dtype, device=x.device)
        bias = bias.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        if self.time_weight is not None:
            bias = bias + time_bias(times, self.time_weight)
        if keep_weights:
            logits = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + bias
            weights = logits.softmax(dim=-1)
            self.last_weights = weights.detach()
            ctx = F.dropout(weights, self.dropout, self.training) @ v
        else:
            ctx = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
            )
        return self.out(ctx.transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    def __init__(
        self, dim: int, heads: int, dropout: float, time_aware: bool, time_init: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = TimeAwareAttention(dim, heads, dropout, time_aware, time_init)
        self.ffn = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, times: torch.Tensor, mask: torch.Tensor, keep: bool
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), times, mask, keep))
        return x + self.drop(self.ffn(self.norm2(x)))


class TimeAwareTransformer(SequenceEncoder):
    """Transformer over visits with per-head time-interval attention and a ``[CLS]`` slot.

    Parameters
    ----------
    n_tokens : int
    dim : int
        Model width.
    init : ndarray, shape (n_tokens, d0), optional
        Initial code vectors (``Vocabulary.embedding_init()``).
    dropout : float
    layers : int
    heads : int
    max_visits : int
        Size of the learned position table (longer inputs raise).
    time_aware : bool
        False gives the plain Transformer baseline.
    time_init : float
        Initial :math:`w_h` (per year of interval) of every head.
    time_embedding : bool
        Also add an embedding of each visit's :math:`\\log(1 + \\text{days before the
        prediction time})` to its visit vector.

    Shapes
    ------
    ``encode_visits(batch)`` → states (B, V, dim), patient (B, dim).
    """

    def __init__(
        self,
        n_tokens: int,
        dim: int,
        *,
        init: np.ndarray | None = None,
        dropout: float = 0.1,
        layers: int = 2,
        heads: int = 4,
        max_visits: int = 512,
        time_aware: bool = True,
        time_init: float = 0.0,
        time_embedding: bool = False,
    ) -> None:
        super().__init__(n_tokens, dim, init=init, dropout=dropout)
        # optional: each visit's log time to the prediction point, embedded and added
        self.time_embed = (
            nn.Sequential(nn.Linear(1, dim), nn.Tanh(), nn.Linear(dim, dim)) if time_embedding else None
        )
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        self.position = nn.Embedding(max_visits + 1, dim)
        nn.init.normal_(self.position.weight, std=0.02)
        self.blocks = nn.ModuleList(
            _Block(dim, heads, dropout, time_aware, time_init) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.max_visits = max_visits
        self.time_aware = time_aware

    def encode_visits(
        self,
        batch: VisitBatch,
        visits: torch.Tensor | None = None,
        keep_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Contextual visit states (B, V, dim) and the ``[CLS]`` patient vector (B, dim)."""
        b, v = batch.mask.shape
        if v > self.max_visits:
            raise ValueError(f"{v} visits exceed the model's max_visits={self.max_visits}")
        x = self.embed(batch.codes) if visits is None else visits
        last = (batch.lengths - 1).clamp_min(0)
        now = batch.times.gather(1, last[:, None])  # prediction time = last visit
        if self.time_embed is not None:
            before = torch.log1p((now - batch.times).clamp_min(0.0))[..., None]  # (B, V, 1)
            x = x + self.time_embed(before) * batch.mask[..., None]
        x = torch.cat((self.cls.expand(b, 1, -1), x), dim=1)
        x = x + self.position(torch.arange(v + 1, device=x.device))[None]
        times = torch.cat((now, batch.times), dim=1)
        mask = torch.cat((torch.ones_like(batch.mask[:, :1]), batch.mask), dim=1)
        for block in self.blocks:
            x = block(x, times, mask, keep_weights)
        x = self.norm(x)
        return x[:, 1:], x[:, 0]

    def time_weights(self) -> np.ndarray:
        """Learned :math:`w_h` per layer and head, shape (layers, heads) (zeros when plain)."""
        rows = [
            blk.attn.time_weight.detach().cpu().numpy()
            if blk.attn.time_weight is not None
            else np.zeros(blk.attn.heads)
            for blk in self.blocks
        ]
        return np.stack(rows)


class TransformerEncoder(TimeAwareTransformer):
    """The plain Transformer baseline: :class:`TimeAwareTransformer` without the time term."""

    def __init__(self, n_tokens: int, dim: int, **kwargs) -> None:  # noqa: ANN003
        kwargs["time_aware"] = False
        super().__init__(n_tokens, dim, **kwargs)
