"""Names → sequence encoders: mash's time-aware Transformer and the baselines."""

from __future__ import annotations

import dataclasses

import numpy as np

from mash.errors import MashInputError
from mash.models.base import SequenceEncoder
from mash.models.config import MODEL_NAMES, TRANSFORMERS, ModelConfig

__all__ = ["MODEL_NAMES", "encoder_from_state", "make_encoder", "registry"]


def registry() -> dict[str, type[SequenceEncoder]]:
    """Every encoder class by name."""
    from mash.models.baselines import baseline_registry
    from mash.models.transformer import TimeAwareTransformer, TransformerEncoder

    return {"time_aware": TimeAwareTransformer, "transformer": TransformerEncoder, **baseline_registry()}


def make_encoder(
    config: ModelConfig, n_tokens: int, init: np.ndarray | None = None
) -> SequenceEncoder:
    """Instantiate ``config.model`` for a vocabulary of ``n_tokens``.

    Parameters
    ----------
    config : ModelConfig
    n_tokens : int
    init : ndarray, shape (n_tokens, d0), optional
        Used only when ``config.init`` is true.

    Returns
    -------
    SequenceEncoder
    """
    classes = registry()
    if config.model not in classes:
        raise MashInputError(
            f"unknown model {config.model!r}; choose one of {', '.join(sorted(classes))}"
        )
    kwargs: dict = {"init": init if config.init else None, "dropout": config.dropout}
    if config.model in TRANSFORMERS:
        kwargs.update(layers=config.layers, heads=config.heads, max_visits=config.max_visits)
    if config.model == "time_aware":
        kwargs.update(time_init=config.time_init, time_embedding=config.time_embedding)
    return classes[config.model](n_tokens, config.dim, **kwargs)


def encoder_from_state(config: ModelConfig, state: dict) -> SequenceEncoder:
    """Rebuild ``config.model`` with the shapes of a saved ``state_dict`` and load it.

    The code table's width comes from ``state["embed.table.weight"]`` (a hierarchy
    initialisation may differ from ``config.dim``).

    Raises
    ------
    RuntimeError
        When the weights do not fit the model (callers turn it into an input error).
    """
    table = state["embed.table.weight"]
    n_tokens, width = int(table.shape[0]), int(table.shape[1])
    # a table narrower or wider than the model, or followed by a projection, was built from an init
    shaped = width != config.dim or "embed.project.weight" in state
    init = np.zeros((n_tokens, width), np.float32) if shaped else None
    encoder = make_encoder(dataclasses.replace(config, init=shaped), n_tokens, init)
    encoder.load_state_dict(state)
    return encoder
