"""Formulary entries of one drug, pooled for co-occurrence.

A local formulary lists one drug several times: ``LIPITOR 20 mg PO TAB``,
``LIPITOR 40 mg PO TAB``. Each entry has its own orders, so a rarely ordered strength
has too few events for a reliable co-occurrence vector, while the drug as a whole has
plenty. :func:`medication_stems` groups a site's medication codes by the name before
the first number (the strength; a trailing counter), so :func:`mash.align.align` counts
co-occurrence per group and gives every entry its group's vector. Only codes of the
``medication`` domain are grouped, and only with another code of the same stem.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["medication_stems", "stem"]

_NUMBER = re.compile(r"\s\d")


def stem(name: str) -> str:
    """The drug part of a formulary name: lower case, up to the first number.

    Examples
    --------
    >>> stem("LIPITOR 20 mg PO TAB"), stem("atorvastatin calcium 40 MG Oral Tablet")
    ('lipitor', 'atorvastatin calcium')
    >>> stem("Cefixime 2"), stem("heparin")
    ('cefixime', 'heparin')
    """
    text = " ".join(str(name).lower().split())
    m = _NUMBER.search(text)
    return (text[: m.start()] if m else text).strip()


def medication_stems(codes: pd.DataFrame) -> tuple[np.ndarray, int]:
    """A co-occurrence group per code: medication codes sharing a stem share one.

    Parameters
    ----------
    codes : DataFrame
        A site's codes (``description``, optional ``domain``), in ``code_idx`` order.

    Returns
    -------
    group : ndarray of int64, shape (n_codes,)
        Group of each code, ``0..n_groups-1``; a code outside any pool is its own group.
    pooled : int
        Codes that share their group with another code.

    Examples
    --------
    >>> c = pd.DataFrame({"description": ["LIPITOR 20 mg", "LIPITOR 40 mg", "asthma"],
    ...                   "domain": ["medication", "medication", "diagnosis"]})
    >>> group, pooled = medication_stems(c)
    >>> group.tolist(), pooled
    ([0, 0, 1], 2)
    """
    n = len(codes)
    if "domain" not in codes.columns or n == 0:
        return np.arange(n, dtype=np.int64), 0
    is_med = (codes["domain"].astype(str) == "medication").to_numpy()
    stems = [stem(d) if m else "" for d, m in zip(codes["description"], is_med, strict=True)]
    keys = np.array([f"m:{t}" if t else f"c:{i}" for i, t in enumerate(stems)], dtype=object)
    _, first, group = np.unique(keys, return_index=True, return_inverse=True)
    # number groups in order of first appearance, so group ids follow code order
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    group = rank[group]
    sizes = np.bincount(group)
    return group.astype(np.int64), int((sizes[group] > 1).sum())
