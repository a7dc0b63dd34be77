"""The interface every sequence model (mash's and the baselines) implements."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mash.models.batch import VisitBatch
from mash.models.embedding import VisitEmbedding

__all__ = ["SequenceEncoder"]


class SequenceEncoder(nn.Module):
    """Base class: visits in, one vector per patient out.

    Subclasses take ``(n_tokens, dim, *, init=None, dropout=0.1, **kwargs)``, build
    ``self.embed = VisitEmbedding(n_tokens, dim, init=init, dropout=dropout)`` (done
    here) and implement :meth:`encode_visits`. :meth:`forward` returns the patient
    representation.

    Attributes
    ----------
    dim : int
        Width of the visit and patient representations.
    """

    def __init__(
        self, n_tokens: int, dim: int, *, init: np.ndarray | None = None, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.dim = dim
        self.embed = VisitEmbedding(n_tokens, dim, init=init, dropout=dropout)

    def encode_visits(
        self, batch: VisitBatch, visits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Contextual visit states and the patient vector.

        Parameters
        ----------
        batch : VisitBatch
            codes (B, V, C), times (B, V), mask (B, V).
        visits : FloatTensor, shape (B, V, dim), optional
            Visit embeddings to use instead of ``self.embed(batch.codes)`` (pretraining
            replaces masked visits this way).

        Returns
        -------
        states : FloatTensor, shape (B, V, dim)
            One state per visit position (padding positions are arbitrary).
        patient : FloatTensor, shape (B, dim)
        """
        raise NotImplementedError

    def forward(self, batch: VisitBatch) -> torch.Tensor:
        """Patient representation, shape (B, dim)."""
        return self.encode_visits(batch)[1]
