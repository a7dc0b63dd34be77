"""Vocabularies: token ids for a hierarchy's concepts, a tokenizer for sequence models.

Token layout (ids are contiguous)::

    0..4            [PAD] [UNK] [CLS] [SEP] [MASK]
    5 .. 5+K-1      one per unified concept, sorted by concept id ("C000012")
                    (harmonize=False: one per (site, code) leaf, "site_A:4280")
    5+K .. n-1      one per internal node (kind root/group/cluster), root first,
                    then by (depth, node id)

A site's local code encodes to its concept's id, so codes of different sites that the
alignment placed in one concept share one id. With ``min_count > 1`` a rare concept has
no token of its own: its codes encode to the nearest ancestor frequent enough to keep.

One module per job:

* :mod:`mash.vocab.layout` — special tokens, ids, reading a hierarchy into tokens,
  back-off of rare concepts (:func:`code_counts` gives the counts);
* :mod:`mash.vocab.vocabulary` — the :class:`Vocabulary` object: lookups, encoding,
  save / load, and :func:`vocab_fingerprint`;
* :mod:`mash.vocab.embedding` — :func:`logmap0` and the tangent-space initialisation of
  :meth:`Vocabulary.embedding_init` (NumPy only, no torch);
* :mod:`mash.vocab.hf` — the Hugging Face tokenizer export.

Visits are encoded and padded next to the site-wide sequences, in :mod:`mash.visits`
(:class:`~mash.visits.EncodedVisits`) and :mod:`mash.sequences`.
"""

from mash.vocab.embedding import logmap0
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
    "logmap0",
    "vocab_fingerprint",
]
