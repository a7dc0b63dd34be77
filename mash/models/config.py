"""Typed configurations of the sequence models and their training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mash.errors import MashInputError

__all__ = ["FinetuneConfig", "ModelConfig", "PretrainConfig", "from_dict"]


@dataclass(frozen=True)
class ModelConfig:
    """Which encoder and its size.

    Attributes
    ----------
    model : str
        A name of :func:`mash.models.registry` (``time_aware`` is mash's model).
    dim, layers, heads : int
    dropout : float
    max_visits : int
        Most recent visits kept per patient.
    max_codes : int
        Codes kept per visit.
    init : bool
        Start the code table from the hierarchy (``Vocabulary.embedding_init``).
    time_init : float
        Initial time-interval weight of every attention head (``time_aware`` only).
    time_embedding : bool
        Add an embedding of each visit's log time before the prediction point to its
        vector (``time_aware`` only).
    """

    model: str = "time_aware"
    dim: int = 64
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    max_visits: int = 64
    max_codes: int = 32
    init: bool = True
    time_init: float = 0.0
    time_embedding: bool = True


@dataclass(frozen=True)
class PretrainConfig:
    """Pretraining: the three tasks' shares and weights, the optimiser.

    ``code_weight`` > 0 adds a fourth task (masked-code prediction; off by default).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    pair_share: float = 0.15
    mask_share: float = 0.30
    alter_share_records: float = 0.5
    alter_share_visits: float = 0.5
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    code_weight: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning with early stopping on the validation split."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 5
    seed: int = 0


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Build a config dataclass from a dict, rejecting unknown keys with a clear error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise MashInputError(
            f"unknown {cls.__name__} option(s): {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
        )
    values = dict(values)
    if "weights" in values:
        values["weights"] = tuple(values["weights"])
    return cls(**values)
