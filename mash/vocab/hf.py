"""The Hugging Face export of a vocabulary: a ``tokenizers`` WordLevel file and the
``transformers`` companion files (see :meth:`Vocabulary.to_hf_tokenizer`)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mash._io import write_json, write_text
from mash.errors import MashError
from mash.vocab.layout import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS, UNK_ID

__all__ = ["HF_SPECIAL_TOKENS", "write_hf_tokenizer"]

#: The specials' roles as ``transformers`` names them (``tokenizer_config.json`` keys):
#: ``PreTrainedTokenizerFast(tokenizer_file=..., **HF_SPECIAL_TOKENS)``.
HF_SPECIAL_TOKENS: Mapping[str, str] = MappingProxyType(
    {
        "pad_token": SPECIAL_TOKENS[PAD_ID],
        "unk_token": SPECIAL_TOKENS[UNK_ID],
        "cls_token": SPECIAL_TOKENS[CLS_ID],
        "sep_token": SPECIAL_TOKENS[SEP_ID],
        "mask_token": SPECIAL_TOKENS[MASK_ID],
    }
)
_HF_TOKENIZER_FILE = "tokenizer.json"  # the name ``from_pretrained`` looks for


def write_hf_tokenizer(
    strings: Mapping[str, int],
    tokens: Sequence[str],
    path: str | Path,
    *,
    stacklevel: int = 2,
) -> Path:
    """Write the tokenizer file of :meth:`Vocabulary.to_hf_tokenizer` (and its companions).

    Parameters
    ----------
    strings : mapping of str to int
        Every word to its id (:meth:`Vocabulary.alias_strings`): token strings and
        ``site:code`` aliases.
    tokens : sequence of str, length n
        The token string of each id (the WordLevel model's canonical vocab).
    path : str or Path
        A directory (any path not ending in ``.json``) or the tokenizer JSON file.
    stacklevel : int
        Of the warning about unusable strings (2: the caller of this function).

    Returns
    -------
    Path
        The tokenizer JSON file written (``path`` or ``path/tokenizer.json``).

    Raises
    ------
    MashError
        If the tokenizer read back does not give ``strings``' ids.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    p = Path(path)
    is_dir = p.is_dir() or p.suffix.lower() != ".json"
    file = p / _HF_TOKENIZER_FILE if is_dir else p
    strings = dict(strings)
    unusable = [s for s in strings if s not in SPECIAL_TOKENS and _hf_unusable(s)]
    for s in unusable:
        del strings[s]
    if unusable:
        warnings.warn(
            f"{len(unusable)} code/token strings contain whitespace or a special token and "
            f"cannot be encoded by the Hugging Face tokenizer (e.g. {unusable[0]!r})",
            stacklevel=stacklevel,
        )
    canonical = {t: i for i, t in enumerate(tokens) if t in strings}
    tok = Tokenizer(models.WordLevel(canonical, unk_token=SPECIAL_TOKENS[UNK_ID]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    spec = json.loads(tok.to_str())
    spec["model"]["vocab"] = dict(sorted(strings.items(), key=lambda kv: (kv[1], kv[0])))
    text = json.dumps(spec, ensure_ascii=False, indent=1)
    check = Tokenizer.from_str(text)
    words = list(strings)
    if check.encode(" ".join(words)).ids != [strings[w] for w in words]:
        raise MashError("the exported tokenizer does not reproduce the vocabulary's ids")
    write_text(file, text)
    if file.name == _HF_TOKENIZER_FILE:
        write_json(file.parent / "tokenizer_config.json", _hf_tokenizer_config())
        write_json(file.parent / "special_tokens_map.json", dict(HF_SPECIAL_TOKENS))
    return file


def _hf_tokenizer_config() -> dict[str, Any]:
    """``tokenizer_config.json`` of the Hugging Face export (``transformers`` 4 and 5)."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **HF_SPECIAL_TOKENS,
        "model_input_names": ["input_ids", "attention_mask"],
        "padding_side": "right",
        "truncation_side": "left",
        "clean_up_tokenization_spaces": False,
    }


def _hf_unusable(s: str) -> bool:
    """True if ``tokenizers`` would split ``s`` (whitespace, or a special token inside)."""
    return not s or any(ch.isspace() for ch in s) or any(t in s for t in SPECIAL_TOKENS)
