"""Vocabularies: token ids for a hierarchy's concepts, a tokenizer for sequence models.

Ids are contiguous: the five special tokens, then one per unified concept, then one per
internal node of the hierarchy (the layout in :mod:`mash.vocab.layout`). Codes of
different sites that the alignment placed in one concept share one id; with
``min_count > 1`` a rare concept backs off to its nearest frequent ancestor.

One module per job:

* :mod:`mash.vocab.layout` — special tokens, ids, reading a hierarchy into tokens,
  back-off of rare concepts (:func:`code_counts` gives the counts);
* :mod:`mash.vocab.vocabulary` — the :class:`Vocabulary` object: lookups, encoding,
  save / load, and :func:`vocab_fingerprint`;
* :mod:`mash.vocab.embedding` — the tangent-space initialisation of
  :meth:`Vocabulary.embedding_init` (through :func:`mash.hyperbolic.geometry.logmap0`);
* :mod:`mash.vocab.hf` — the Hugging Face tokenizer export.

Visits are encoded and padded next to the site-wide sequences, in :mod:`mash.visits`
(:class:`~mash.visits.EncodedVisits`) and :mod:`mash.sequences`.
"""

from mash.vocab.hf import HF_SPECIAL_TOKENS
from mash.vocab.layout import (
    CLS_ID,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    code_counts,
)
from mash.vocab.vocabulary import Vocabulary, vocab_fingerprint

__all__ = [
    "CLS_ID",
    "HF_SPECIAL_TOKENS",
    "MASK_ID",
    "PAD_ID",
    "SEP_ID",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "Vocabulary",
    "code_counts",
    "vocab_fingerprint",
]
