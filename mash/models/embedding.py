"""Visit embeddings shared by every sequence model: the sum of a visit's code vectors."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["VisitEmbedding"]


class VisitEmbedding(nn.Module):
    """Embed each visit as the sum of its codes' vectors, projected to ``dim``.

    Parameters
    ----------
    n_tokens : int
        Vocabulary size (id 0 is ``[PAD]`` and embeds to zero).
    dim : int
        Output dimension.
    init : ndarray of float, shape (n_tokens, d0), optional
        Initial code vectors (e.g. ``Vocabulary.embedding_init()``, the hierarchy's
        Poincaré points mapped to the tangent space at the origin). When ``d0 != dim``
        a linear map ``d0 → dim`` follows; otherwise the table has width ``dim``.
    dropout : float

    Shapes
    ------
    ``forward(codes)``: LongTensor (B, V, C) → FloatTensor (B, V, dim).
    """

    def __init__(
        self, n_tokens: int, dim: int, *, init: np.ndarray | None = None, dropout: float = 0.1
    ) -> None:
        super().__init__()
        width = dim if init is None else int(np.asarray(init).shape[1])
        self.table = nn.Embedding(n_tokens, width, padding_idx=0)
        if init is not None:
            init = np.asarray(init, dtype=np.float32)
            if init.shape[0] != n_tokens:
                raise ValueError(
                    f"embedding init has {init.shape[0]} rows, the vocabulary {n_tokens} tokens"
                )
            # unit-variance scale, so the hierarchy's geometry survives but the size is standard
            scale = float(np.sqrt(np.mean(init[1:] ** 2))) or 1.0
            with torch.no_grad():
                self.table.weight.copy_(torch.from_numpy(init / scale * 0.5))
                self.table.weight[0].zero_()
        self.project = nn.Identity() if width == dim else nn.Linear(width, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dim = dim

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of code vectors per visit, projected, normalised; (B, V, C) → (B, V, dim)."""
        summed = self.table(codes).sum(dim=2)
        return self.dropout(self.norm(self.project(summed)))
