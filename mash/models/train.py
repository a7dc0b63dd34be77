"""Training loops: pretraining, fine-tuning with early stopping, prediction.

Every loop is seeded (``torch.manual_seed`` plus a dedicated ``torch.Generator`` for
the pretraining corruptions and a NumPy generator for batch order), so the same data,
configuration and seed give the same weights on the same device.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from mash._rng import isolated_torch_rng
from mash.errors import MashError, MashInputError
from mash.models.base import SequenceEncoder
from mash.models.batch import VisitBatch, collate
from mash.models.config import (
    DEFAULT_DEVICE,
    TASKS,
    FinetuneConfig,
    ModelConfig,
    PretrainConfig,
)
from mash.models.pretraining import Pretrainer
from mash.progress import bar
from mash.sequences import Sequences

__all__ = [
    "FinetuneResult",
    "PredictionModel",
    "PretrainResult",
    "batches",
    "embed_patients",
    "finetune",
    "pick_device",
    "predict",
    "pretrain",
]

def pick_device(device: str | None = None) -> torch.device:
    """The torch device a run uses, checked to exist on this machine.

    Parameters
    ----------
    device : str, optional
        ``"auto"`` or None: CUDA when available, else CPU. Otherwise a torch device
        string (``cpu``, ``cuda``, ``cuda:1``, ``mps``).

    Returns
    -------
    torch.device

    Raises
    ------
    MashInputError
        If the string names no torch device, or a device this machine does not have.
    """
    if device in (None, DEFAULT_DEVICE):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise MashInputError(
            f"device {device!r} is not a torch device; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise MashInputError(f"device {device!r}: this machine has no CUDA device; use auto or cpu")
        if dev.index is not None and dev.index >= n:
            raise MashInputError(f"device {device!r}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise MashInputError(f"device {device!r}: MPS is not available on this machine; use auto or cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise MashInputError(f"device {device!r}: mash runs on cpu, cuda or mps")
    return dev


def batches(
    seqs: Sequences,
    idx: np.ndarray,
    batch_size: int,
    model: ModelConfig,
    rng: np.random.Generator | None = None,
) -> Iterator[tuple[np.ndarray, VisitBatch]]:
    """Padded batches of the patients ``idx`` (shuffled when ``rng`` is given).

    Yields
    ------
    rows : ndarray of int, shape (B,)
        Positions into ``idx``'s order.
    batch : VisitBatch
    """
    order = rng.permutation(len(idx)) if rng is not None else np.arange(len(idx))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        codes, times, mask = seqs.pad(
            idx[rows], max_visits=model.max_visits, max_codes=model.max_codes
        )
        yield rows, collate(codes, times, mask)


def _step(net: nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor, where: str) -> None:
    """One optimiser step on ``loss``: checked finite, gradients clipped to norm 1.

    Raises
    ------
    MashError
        When ``loss`` is NaN or infinite (``where`` names the epoch).
    """
    if not torch.isfinite(loss):
        raise MashError(f"{where}: the loss became {float(loss)}; lower the learning rate")
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()


@dataclass
class PretrainResult:
    """What :func:`pretrain` returns.

    Attributes
    ----------
    history : DataFrame
        One row per epoch: mean ``total``, ``contrastive``, ``masked_visit``,
        ``reasonable`` losses, ``reasonable_accuracy``, ``seconds``.
    sequences_per_s : float
        Training throughput (patients processed per second, all epochs).
    """

    history: pd.DataFrame
    sequences_per_s: float


@isolated_torch_rng
def pretrain(
    encoder: SequenceEncoder,
    seqs: Sequences,
    model: ModelConfig,
    config: PretrainConfig,
    *,
    idx: np.ndarray | None = None,
    device: str | None = None,
    quiet: bool = True,
) -> PretrainResult:
    """Pretrain ``encoder`` in place on the three self-supervised tasks.

    Parameters
    ----------
    encoder : SequenceEncoder
    seqs : Sequences
        Patients with at least one visit.
    model : ModelConfig
        For truncation (``max_visits``, ``max_codes``).
    config : PretrainConfig
    idx : ndarray of int, optional
        Patients to use (default all).
    device : str, optional
    quiet : bool

    Returns
    -------
    PretrainResult
    """
    dev = pick_device(device)
    torch.manual_seed(config.seed)
    n_tokens = encoder.embed.table.num_embeddings
    task = Pretrainer(
        encoder,
        n_tokens,
        pair_share=config.pair_share,
        mask_share=config.mask_share,
        alter_share_records=config.alter_share_records,
        alter_share_visits=config.alter_share_visits,
        weights=config.weights,
        code_weight=config.code_weight,
    ).to(dev)
    opt = torch.optim.AdamW(task.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    idx = np.arange(len(seqs)) if idx is None else np.asarray(idx)
    rows, seen, t0 = [], 0, time.perf_counter()
    task.train()
    for epoch in bar(range(config.epochs), "pretrain", quiet=quiet):
        sums: dict[str, float] = {}
        n_b, t_e = 0, time.perf_counter()
        for _, batch in batches(seqs, idx, config.batch_size, model, rng):
            losses = task(batch.to(dev), gen)
            _step(task, opt, losses.total, f"pretraining epoch {epoch + 1}")
            for k, v in losses.as_floats().items():
                sums[k] = sums.get(k, 0.0) + v
            n_b += 1
            seen += len(batch)
        rows.append({"epoch": epoch + 1, **{k: v / max(n_b, 1) for k, v in sums.items()},
                     "seconds": time.perf_counter() - t_e})
    encoder.eval()
    return PretrainResult(pd.DataFrame(rows), seen / max(time.perf_counter() - t0, 1e-9))


class PredictionModel(nn.Module):
    """An encoder with a fresh prediction head (one output).

    Parameters
    ----------
    encoder : SequenceEncoder
    task : {"classification", "regression"}
    """

    def __init__(self, encoder: SequenceEncoder, task: str) -> None:
        super().__init__()
        if task not in TASKS:
            raise MashError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        self.encoder, self.task = encoder, task
        d = encoder.dim
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(d, 1))

    def forward(self, batch: VisitBatch) -> torch.Tensor:
        """Logits (classification) or standardised predictions (regression), shape (B,)."""
        return self.head(self.encoder(batch)).squeeze(-1)


@dataclass
class FinetuneResult:
    """What :func:`finetune` returns.

    Attributes
    ----------
    model : PredictionModel
        With the weights of the best validation epoch.
    history : DataFrame
        Per epoch: ``train_loss``, ``val_loss``.
    best_epoch : int
    target_mean, target_std : float
        Regression targets are standardised with the training split's moments.
    """

    model: PredictionModel
    history: pd.DataFrame
    best_epoch: int
    target_mean: float = 0.0
    target_std: float = 1.0


def _loss(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "classification":
        return F.binary_cross_entropy_with_logits(out, y)
    return F.mse_loss(out, y)


@isolated_torch_rng
def finetune(
    encoder: SequenceEncoder,
    seqs: Sequences,
    labels: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    task: str,
    model: ModelConfig,
    config: FinetuneConfig,
    device: str | None = None,
    quiet: bool = True,
) -> FinetuneResult:
    """Train ``encoder`` plus a new head; keep the epoch with the best validation loss.

    Parameters
    ----------
    encoder : SequenceEncoder
        Pretrained or fresh; trained in place.
    seqs : Sequences
    labels : ndarray of float, shape (len(seqs),)
        0/1 for classification.
    train_idx, val_idx : ndarray of int
    task : {"classification", "regression"}
    model : ModelConfig
    config : FinetuneConfig
    device : str, optional
    quiet : bool

    Returns
    -------
    FinetuneResult
    """
    dev = pick_device(device)
    torch.manual_seed(config.seed)
    net = PredictionModel(encoder, task).to(dev)
    labels = np.asarray(labels, dtype=np.float64)
    mean, std = 0.0, 1.0
    if task == "regression":
        mean = float(labels[train_idx].mean())
        std = float(labels[train_idx].std()) or 1.0
    target = torch.as_tensor((labels - mean) / std, dtype=torch.float32)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    best, best_state, best_epoch, bad, rows = float("inf"), None, 0, 0, []
    for epoch in bar(range(config.epochs), "fine-tune", quiet=quiet):
        net.train()
        total, n = 0.0, 0
        for rows_b, batch in batches(seqs, train_idx, config.batch_size, model, rng):
            y = target[train_idx[rows_b]].to(dev)
            loss = _loss(task, net(batch.to(dev)), y)
            _step(net, opt, loss, f"fine-tuning epoch {epoch + 1}")
            total += loss.item() * len(y)
            n += len(y)
        out = _outputs(net, seqs, val_idx, model, config.batch_size, dev)
        val = float(_loss(task, out, target[val_idx]))
        rows.append({"epoch": epoch + 1, "train_loss": total / max(n, 1), "val_loss": val})
        if val < best - 1e-6:
            best, best_epoch, bad = val, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= config.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return FinetuneResult(net, pd.DataFrame(rows), best_epoch, mean, std)


@torch.no_grad()
def _outputs(
    net: PredictionModel,
    seqs: Sequences,
    idx: np.ndarray,
    model: ModelConfig,
    batch_size: int,
    dev: torch.device,
) -> torch.Tensor:
    net.eval()
    outs = [net(b.to(dev)).cpu() for _, b in batches(seqs, idx, batch_size, model)]
    return torch.cat(outs) if outs else torch.zeros(0)


def predict(
    result: FinetuneResult, seqs: Sequences, idx: np.ndarray, model: ModelConfig,
    batch_size: int = 256, device: str | None = None,
) -> np.ndarray:
    """Probabilities (classification) or predictions in the target's units (regression).

    Returns
    -------
    ndarray of float, shape (len(idx),)
    """
    dev = pick_device(device)
    out = _outputs(result.model.to(dev), seqs, np.asarray(idx), model, batch_size, dev).numpy()
    if result.model.task == "classification":
        return 1.0 / (1.0 + np.exp(-out.astype(np.float64)))
    return out.astype(np.float64) * result.target_std + result.target_mean


@torch.no_grad()
def embed_patients(
    encoder: SequenceEncoder, seqs: Sequences, idx: np.ndarray, model: ModelConfig,
    batch_size: int = 256, device: str | None = None,
) -> np.ndarray:
    """Patient representations, shape (len(idx), dim)."""
    dev = pick_device(device)
    encoder = encoder.to(dev).eval()
    outs = [encoder(b.to(dev)).cpu() for _, b in batches(seqs, np.asarray(idx), batch_size, model)]
    return torch.cat(outs).numpy() if outs else np.zeros((0, encoder.dim), np.float32)
