"""The batch every sequence model consumes: patients × visits × codes, with times.

Visits are left-aligned and in time order: a patient's real visits occupy positions
``0 .. n_visits - 1`` (the most recent last) and the rest is padding. Codes are token
ids of a :class:`mash.Vocabulary`; id 0 is ``[PAD]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["VisitBatch", "collate"]


@dataclass
class VisitBatch:
    """A padded batch of visit sequences.

    Attributes
    ----------
    codes : LongTensor, shape (B, V, C)
        Token ids per visit; 0 (``[PAD]``) pads both missing codes and missing visits.
    times : FloatTensor, shape (B, V)
        Days since the patient's first kept visit (non-decreasing over real visits;
        0 at padded positions).
    mask : BoolTensor, shape (B, V)
        True at real visits. Every row has at least one real visit.
    """

    codes: torch.Tensor
    times: torch.Tensor
    mask: torch.Tensor

    @property
    def lengths(self) -> torch.Tensor:
        """Real visits per patient, LongTensor of shape (B,)."""
        return self.mask.sum(dim=1)

    @property
    def intervals(self) -> torch.Tensor:
        """Days since the previous visit, shape (B, V) (0 at the first and at padding)."""
        gap = torch.zeros_like(self.times)
        gap[:, 1:] = (self.times[:, 1:] - self.times[:, :-1]).clamp_min(0.0)
        return gap * self.mask

    def to(self, device: torch.device | str) -> VisitBatch:
        """The same batch on ``device``."""
        return VisitBatch(self.codes.to(device), self.times.to(device), self.mask.to(device))

    def __len__(self) -> int:
        return int(self.codes.shape[0])


def collate(codes: np.ndarray, times: np.ndarray, mask: np.ndarray) -> VisitBatch:
    """Wrap NumPy arrays (as from ``Vocabulary.encode_visits``) in a :class:`VisitBatch`.

    Parameters
    ----------
    codes : ndarray of int, shape (B, V, C)
    times : ndarray of float, shape (B, V)
    mask : ndarray of bool, shape (B, V)

    Returns
    -------
    VisitBatch
    """
    return VisitBatch(
        torch.as_tensor(np.asarray(codes), dtype=torch.long),
        torch.as_tensor(np.asarray(times), dtype=torch.float32),
        torch.as_tensor(np.asarray(mask), dtype=torch.bool),
    )
