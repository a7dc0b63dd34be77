"""Self-supervised pretraining tasks on visit sequences (after RAPT, Ren et al. KDD 2021).

Three tasks are trained jointly on one encoder (:class:`Pretrainer`):

1. **Similar-record contrastive** (:func:`similar_record_pairs`,
   :func:`contrastive_loss`). Records are compared as L2-normalised bags of codes; in a
   batch, the closest ``pair_share`` (15%) of record pairs by Euclidean distance are
   positives and the farthest 15% negatives. A projection of the patient vectors,
   normalised to the unit sphere, is pulled together for positives (:math:`d^2`) and
   pushed beyond a margin for negatives (:math:`\\max(0, m - d)^2`).
2. **Masked visit prediction** (:func:`mask_visits`). ``mask_share`` (30%) of each
   record's visits (at least one, none when a record has one visit) are replaced by a
   learned ``[MASK]`` vector; a head predicts each masked visit's representation (its
   visit embedding, gradient stopped) from its contextual state; mean squared error.
3. **Reasonable-record check** (:func:`alter_records`). In ``alter_share_records``
   (half) of the records, ``alter_share_visits`` (half) of the visits are replaced by
   visits of other records of the batch; a head classifies each record's patient vector
   as real or altered; cross-entropy.

The total loss is the weighted sum; each task's loss is returned so that its decrease
can be checked (tests) and reported (``pretrain_losses.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mash.models.base import SequenceEncoder
from mash.models.batch import VisitBatch

__all__ = [
    "PretrainLosses",
    "Pretrainer",
    "alter_records",
    "bag_of_codes",
    "contrastive_loss",
    "mask_visits",
    "similar_record_pairs",
]


def bag_of_codes(codes: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """L2-normalised code counts per record, ignoring ``[PAD]``.

    Parameters
    ----------
    codes : LongTensor, shape (B, V, C)
    n_tokens : int

    Returns
    -------
    FloatTensor, shape (B, n_tokens)
    """
    b = codes.shape[0]
    flat = codes.reshape(b, -1)
    bag = torch.zeros(b, n_tokens, device=codes.device)
    bag.scatter_add_(1, flat, torch.ones_like(flat, dtype=bag.dtype))
    bag[:, 0] = 0.0
    return F.normalize(bag, dim=1)


def similar_record_pairs(
    records: torch.Tensor, share: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    """The closest and the farthest ``share`` of record pairs by Euclidean distance.

    Parameters
    ----------
    records : FloatTensor, shape (B, F)
    share : float
        Fraction of the :math:`B(B-1)/2` pairs in each of the two sets (at least one
        pair each when :math:`B \\ge 2`).

    Returns
    -------
    positives, negatives : LongTensor, shape (n_pairs, 2)
    """
    b = records.shape[0]
    if b < 2:
        empty = torch.zeros(0, 2, dtype=torch.long, device=records.device)
        return empty, empty
    i, j = torch.triu_indices(b, b, offset=1, device=records.device)
    dist = (records[i] - records[j]).norm(dim=1)
    k = max(1, int(round(share * len(dist))))
    order = torch.argsort(dist, stable=True)
    pairs = torch.stack((i, j), dim=1)
    return pairs[order[:k]], pairs[order[-k:]]


def contrastive_loss(
    z: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Margin contrastive loss (Hadsell et al. 2006) on unit-normalised vectors.

    Parameters
    ----------
    z : FloatTensor, shape (B, D)
        Projected patient vectors (normalised here).
    positives, negatives : LongTensor, shape (n, 2)
    margin : float

    Returns
    -------
    scalar FloatTensor
    """
    z = F.normalize(z, dim=1)
    if len(positives) == 0:
        return z.sum() * 0.0
    d_pos = (z[positives[:, 0]] - z[positives[:, 1]]).norm(dim=1)
    d_neg = (z[negatives[:, 0]] - z[negatives[:, 1]]).norm(dim=1)
    return (d_pos**2).mean() + F.relu(margin - d_neg).pow(2).mean()


def mask_visits(mask: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Choose ``share`` of each record's real visits to mask (≥ 1 when it has ≥ 2).

    Parameters
    ----------
    mask : BoolTensor, shape (B, V)
    share : float
    generator : torch.Generator
        On the CPU; draws are moved to ``mask``'s device.

    Returns
    -------
    BoolTensor, shape (B, V)
        True at masked visits (always real visits; records with one visit get none).
    """
    lengths = mask.sum(dim=1)
    n_mask = torch.where(
        lengths >= 2, (share * lengths.float()).round().long().clamp_min(1), 0
    ).clamp_max((lengths - 1).clamp_min(0))
    noise = torch.rand(mask.shape, generator=generator).to(mask.device)
    noise = noise.masked_fill(~mask, 2.0)  # padding sorts last
    rank = noise.argsort(dim=1).argsort(dim=1)
    return (rank < n_mask[:, None]) & mask


def alter_records(
    batch: VisitBatch,
    record_share: float,
    visit_share: float,
    generator: torch.Generator,
) -> tuple[VisitBatch, torch.Tensor]:
    """Replace ``visit_share`` of the visits of ``record_share`` of the records.

    A replaced visit takes the codes of a random real visit of another record of the
    batch (times are kept). Records with a single visit stay real when the batch has no
    other record.

    Parameters
    ----------
    batch : VisitBatch
    record_share, visit_share : float
    generator : torch.Generator
        On the CPU.

    Returns
    -------
    altered : VisitBatch
    labels : LongTensor, shape (B,)
        1 for altered records, 0 for real ones.
    """
    b, v, _ = batch.codes.shape
    device = batch.codes.device
    if b < 2:
        return batch, torch.zeros(b, dtype=torch.long, device=device)
    chosen = torch.rand(b, generator=generator) < record_share
    lengths = batch.lengths.cpu()
    n_swap = (visit_share * lengths.float()).round().long().clamp_min(1)
    noise = torch.rand(b, v, generator=generator).masked_fill(~batch.mask.cpu(), 2.0)
    rank = noise.argsort(dim=1).argsort(dim=1)
    swap = (rank < n_swap[:, None]) & batch.mask.cpu() & chosen[:, None]
    rows, cols = swap.nonzero(as_tuple=True)
    donor = (rows + torch.randint(1, b, (len(rows),), generator=generator)) % b
    donor_visit = (torch.rand(len(rows), generator=generator) * lengths[donor]).long()
    codes = batch.codes.clone()
    codes[rows.to(device), cols.to(device)] = batch.codes[donor.to(device), donor_visit.to(device)]
    labels = (swap.any(dim=1)).long().to(device)
    return VisitBatch(codes, batch.times, batch.mask), labels


@dataclass
class PretrainLosses:
    """One step's losses (scalar tensors); ``total`` is the weighted sum."""

    total: torch.Tensor
    contrastive: torch.Tensor
    masked_visit: torch.Tensor
    reasonable: torch.Tensor
    reasonable_accuracy: float
    masked_code: torch.Tensor | None = None

    def as_floats(self) -> dict[str, float]:
        """Losses as plain floats, for logging."""
        extra = {} if self.masked_code is None else {"masked_code": self.masked_code.item()}
        return {
            "total": self.total.item(),
            "contrastive": self.contrastive.item(),
            "masked_visit": self.masked_visit.item(),
            "reasonable": self.reasonable.item(),
            "reasonable_accuracy": self.reasonable_accuracy,
        } | extra


class Pretrainer(nn.Module):
    """An encoder with the three pretraining heads.

    Parameters
    ----------
    encoder : SequenceEncoder
    n_tokens : int
    pair_share, mask_share, alter_share_records, alter_share_visits : float
        See the module docstring (defaults 0.15, 0.30, 0.5, 0.5).
    weights : tuple of float
        Weights of the contrastive, masked-visit and reasonable-record losses.
    margin : float
        Contrastive margin on the unit sphere.
    code_weight : float
        Weight of an optional fourth loss (off by default): predicting each masked
        visit's codes (multi-label cross-entropy over the vocabulary) from its state.
    """

    def __init__(
        self,
        encoder: SequenceEncoder,
        n_tokens: int,
        *,
        pair_share: float = 0.15,
        mask_share: float = 0.30,
        alter_share_records: float = 0.5,
        alter_share_visits: float = 0.5,
        weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        margin: float = 1.0,
        code_weight: float = 0.0,
    ) -> None:
        super().__init__()
        d = encoder.dim
        self.code_weight = code_weight
        self.predict_codes = nn.Linear(d, n_tokens) if code_weight > 0 else None
        self.encoder = encoder
        self.n_tokens = n_tokens
        self.mask_vector = nn.Parameter(torch.randn(d) * 0.02)
        self.project = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.predict_visit = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.check = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 2))
        self.pair_share, self.mask_share = pair_share, mask_share
        self.alter_share_records, self.alter_share_visits = alter_share_records, alter_share_visits
        self.weights, self.margin = weights, margin

    def forward(self, batch: VisitBatch, generator: torch.Generator) -> PretrainLosses:
        """The three losses on one batch (two encoder passes: masked, then altered)."""
        # 1 + 2: masked visits; contrastive on the same pass's patient vectors
        visits = self.encoder.embed(batch.codes)
        masked = mask_visits(batch.mask, self.mask_share, generator)
        inputs = torch.where(masked[..., None], self.mask_vector.expand_as(visits), visits)
        states, patient = self.encoder.encode_visits(batch, visits=inputs)
        if masked.any():
            mvp = F.mse_loss(self.predict_visit(states[masked]), visits[masked].detach())
        else:
            mvp = states.sum() * 0.0
        mcp = states.sum() * 0.0
        if self.predict_codes is not None and masked.any():
            target = torch.zeros(int(masked.sum()), self.n_tokens, device=states.device)
            target.scatter_(1, batch.codes[masked], 1.0)
            target[:, 0] = 0.0
            mcp = F.binary_cross_entropy_with_logits(self.predict_codes(states[masked]), target)
        pos, neg = similar_record_pairs(bag_of_codes(batch.codes, self.n_tokens), self.pair_share)
        con = contrastive_loss(self.project(patient), pos, neg, self.margin)
        # 3: reasonable-record check
        altered, labels = alter_records(
            batch, self.alter_share_records, self.alter_share_visits, generator
        )
        logits = self.check(self.encoder(altered))
        rrc = F.cross_entropy(logits, labels)
        acc = float((logits.argmax(dim=1) == labels).float().mean())
        w = self.weights
        total = w[0] * con + w[1] * mvp + w[2] * rrc + self.code_weight * mcp
        return PretrainLosses(total, con, mvp, rrc, acc, mcp if self.predict_codes is not None else None)
