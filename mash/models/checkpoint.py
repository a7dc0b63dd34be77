"""Checkpoints: a directory with the encoder's weights, its vocabulary and a manifest.

Layout::

    DIR/model.pt           {"format", "model_config", "n_tokens", "vocab_sha256", "state_dict"}
    DIR/vocab.json         Vocabulary.save
    DIR/tokenizer.json     Vocabulary.to_hf_tokenizer (Hugging Face tokenizers)
    DIR/manifest.json      version, parameters, inputs, counts, timings
    DIR/head.pt            fine-tuned only: {"task", "target", "target_mean", "target_std", "state_dict"}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from mash._io import (
    atomic_path,
    file_hashes,
    read_manifest,
    remove_stale_temporaries,
    verify_file_hashes,
    write_json,
)
from mash.errors import MashInputError
from mash.models.base import SequenceEncoder
from mash.models.config import ModelConfig, from_dict
from mash.models.registry import encoder_from_state
from mash.vocab import Vocabulary, vocab_fingerprint  # re-exported: models/pipeline.py

__all__ = [
    "check_vocabulary",
    "load_checkpoint",
    "save_checkpoint",
    "save_head",
    "vocab_fingerprint",
]

FORMAT = "mash.checkpoint/1"
#: Files whose SHA-256 the manifest records (``files``); ``head.pt`` is written after it.
CHECKPOINT_FILES = ("model.pt", "vocab.json", "tokenizer.json")



def _save_torch(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to ``path`` atomically, with the same bytes for the same payload.

    Given a file name, torch names the zip archive's root folder after it, which would
    be the random temporary name; through an open file the root is always ``archive``.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)

def save_checkpoint(
    out_dir: str | Path,
    encoder: SequenceEncoder,
    model: ModelConfig,
    vocab: Vocabulary,
    manifest: dict[str, Any],
) -> Path:
    """Write ``model.pt``, ``vocab.json``, ``tokenizer.json`` and ``manifest.json``.

    Each file is written atomically (``mash._io.atomic_path``, which creates ``out_dir``
    and its parents when missing). Temporaries a killed earlier run left are removed and
    the old manifest goes first; the new one, written last, records the files' SHA-256.

    Returns
    -------
    Path
        ``out_dir``.
    """
    out = Path(out_dir)
    remove_stale_temporaries(out, (*CHECKPOINT_FILES, "manifest.json", "head.pt"))
    (out / "manifest.json").unlink(missing_ok=True)
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    payload = {
        "format": FORMAT,
        "model_config": dataclasses.asdict(model),
        "n_tokens": len(vocab),
        "vocab_sha256": vocab_fingerprint(vocab),
        "state_dict": state,
    }
    _save_torch(out / "model.pt", payload)
    vocab.save(out / "vocab.json")
    vocab.to_hf_tokenizer(out / "tokenizer.json")
    write_json(out / "manifest.json", {**manifest, "files": file_hashes(out, CHECKPOINT_FILES)})
    return out


def load_checkpoint(path: str | Path) -> tuple[SequenceEncoder, ModelConfig, Vocabulary, dict]:
    """Load a checkpoint directory (or its ``model.pt``).

    Returns
    -------
    encoder : SequenceEncoder
        In eval mode, on the CPU.
    model : ModelConfig
    vocab : Vocabulary
    manifest : dict

    Raises
    ------
    MashInputError
        Missing files, a file that is not a mash checkpoint, a corrupt manifest or one
        that describes other files (SHA-256), or weights that do not match the saved
        vocabulary.
    """
    root = Path(path)
    if root.is_file():
        root = root.parent
    pt = root / "model.pt"
    if not pt.is_file():
        raise MashInputError("not a mash checkpoint (no model.pt)", file=root)
    manifest = read_manifest(root / "manifest.json")
    try:
        payload = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types on a damaged file
        raise MashInputError(f"unreadable checkpoint ({type(exc).__name__})", file=pt) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MashInputError(f"not a {FORMAT} file", file=pt)
    vocab = Vocabulary.load(root / "vocab.json")
    check_vocabulary(payload, vocab, root / "vocab.json")
    model = from_dict(ModelConfig, payload["model_config"])
    try:
        encoder = encoder_from_state(model, payload["state_dict"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).splitlines()[0]
        raise MashInputError(f"weights do not fit the model: {first}", file=pt) from None
    if "files" in manifest:  # last: the checks above name the problem more precisely
        verify_file_hashes(root, manifest["files"], root / "manifest.json")
    return encoder.eval(), model, vocab, manifest


def check_vocabulary(payload: dict, vocab: Vocabulary, source: str | Path) -> None:
    """Raise unless ``vocab`` is the vocabulary the checkpoint's weights were trained on."""
    same = payload.get("vocab_sha256") == vocab_fingerprint(vocab)
    if payload.get("n_tokens") != len(vocab) or not same:
        raise MashInputError(
            f"vocabulary does not match the checkpoint: {len(vocab)} tokens here, "
            f"{payload.get('n_tokens')} in the checkpoint (build both from the same hierarchy "
            "and options)",
            file=source,
        )


def save_head(path: str | Path, fit: Any, target: str) -> None:
    """Write a fine-tuned model's prediction head and target scaling (atomically).

    Parameters
    ----------
    path : path
    fit : FinetuneResult
    target : str
    """
    payload = {
        "task": fit.model.task,
        "target": target,
        "target_mean": fit.target_mean,
        "target_std": fit.target_std,
        "state_dict": {k: v.detach().cpu() for k, v in fit.model.head.state_dict().items()},
    }
    _save_torch(path, payload)
