"""Typed configurations of the sequence models and their training, and their names.

This module imports nothing heavy (no torch, no NumPy), so that the command line can
show these defaults and choices without loading the models.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mash.errors import MashInputError

__all__ = [
    "DEFAULT_DEVICE",
    "DEFAULT_FOLDS",
    "DEFAULT_MIN_COUNT",
    "DEFAULT_TASK",
    "FinetuneConfig",
    "MODEL_NAMES",
    "ModelConfig",
    "PretrainConfig",
    "TASKS",
    "TASK_CHOICES",
    "TRANSFORMERS",
    "defaults",
    "from_dict",
]

MODEL_NAMES = ("time_aware", "transformer", "lstm", "retain", "dipole", "tlstm", "hitanet")
#: The models that have ``layers`` and ``heads``; the baselines have neither.
TRANSFORMERS = ("time_aware", "transformer")
#: What a fine-tuned head predicts: 0/1 labels (logits) or a standardised number.
TASKS = ("classification", "regression")
#: ``finetune_site``'s ``task``: one of :data:`TASKS`, or ``auto`` (inferred from the labels).
TASK_CHOICES = ("auto", *TASKS)

#: The device of every loop unless told: ``auto`` is a GPU when present, else the CPU.
DEFAULT_DEVICE = "auto"

# Defaults of mash.models.pipeline's run options that are not configuration fields.
#: ``pretrain_sites(min_count=...)``: 1 keeps every concept (no back-off to an ancestor).
DEFAULT_MIN_COUNT = 1
#: ``finetune_site(task=...)``.
DEFAULT_TASK = "auto"
#: ``finetune_site(folds=...)``: k of the k-fold cross-validation.
DEFAULT_FOLDS = 5


def _check_int(owner: str, name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise MashInputError(f"{owner}.{name} must be an integer >= {low}, got {value!r}")


def _check_float(owner: str, name: str, value: Any, low: float, high: float, *, open_high: bool = False,
                 open_low: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    if not ok:
        lo, hi = "(" if open_low else "[", ")" if open_high else "]"
        raise MashInputError(f"{owner}.{name} must be a number in {lo}{low}, {high}{hi}, got {value!r}")


def _check_optimiser(owner: str, config: Any, counts: tuple[str, ...]) -> None:
    """The checks every training configuration shares: positive ``counts``, seed, lr, decay."""
    for name in counts:
        _check_int(owner, name, getattr(config, name))
    _check_int(owner, "seed", config.seed, 0)
    _check_float(owner, "lr", config.lr, 0.0, 10.0, open_low=True)
    _check_float(owner, "weight_decay", config.weight_decay, 0.0, 10.0)


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

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise MashInputError(f"unknown model {self.model!r}; choose one of {', '.join(sorted(MODEL_NAMES))}")
        for name in ("dim", "layers", "heads", "max_visits", "max_codes"):
            _check_int("ModelConfig", name, getattr(self, name))
        _check_float("ModelConfig", "dropout", self.dropout, 0.0, 1.0, open_high=True)
        _check_float("ModelConfig", "time_init", self.time_init, -1e6, 1e6)
        if self.model in TRANSFORMERS and self.dim % self.heads:
            raise MashInputError(f"dim={self.dim} must be divisible by heads={self.heads} "
                                 "(each attention head gets dim/heads features)")


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

    def __post_init__(self) -> None:
        _check_optimiser("PretrainConfig", self, ("epochs", "batch_size"))
        for name in ("pair_share", "mask_share", "alter_share_records", "alter_share_visits"):
            _check_float("PretrainConfig", name, getattr(self, name), 0.0, 1.0)
        if len(self.weights) != 3:
            raise MashInputError(f"PretrainConfig.weights needs 3 task weights, got {self.weights!r}")
        for w in (*self.weights, self.code_weight):
            _check_float("PretrainConfig", "weights", w, 0.0, 1e6)
        if not any(self.weights) and not self.code_weight:
            raise MashInputError("PretrainConfig: every task weight is 0; nothing would be trained")


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning with early stopping on the validation split."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        _check_optimiser("FinetuneConfig", self, ("epochs", "batch_size", "patience"))


def defaults(cls: type) -> dict[str, Any]:
    """The default of every field of config dataclass ``cls``, by name.

    Examples
    --------
    >>> defaults(FinetuneConfig)["patience"]
    5
    >>> defaults(ModelConfig)["model"]
    'time_aware'
    """
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


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
