"""How a local site names its lab tests and formulary entries.

Real local names are terse and site-specific: ``GLU FAST SER``, ``HGB A1C``,
``K+ SER/PL``, ``LACTATE ART``; ``LIPITOR 20MG TAB``, ``atorvastatin 20 mg oral
tablet``. A :class:`NamingHabit` draws one site's style; :func:`lab_local_names` and
:func:`drug_local_names` apply it. The abbreviations come from data, not a per-code
table: the first tokens of the LOINC short name (``Creat``, ``Bilirub``, ``HCO3``,
``Hgb``, ``LDLc``), clinosim's internal analyte names (``Hb``, ``Plt``, ``K``,
``T_Bil``), the first four letters of the component (``LACT`` names lactate *and*
lactate dehydrogenase: the names alone are then ambiguous, as at real sites), or the
component itself. Only the specimen and dose-form abbreviations are small tables.

Names are unique within a site: a repeated name gets `` 2``, `` 3``, ... in a random
order, so the suffix says nothing about which test it is.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from mash.synth.drugs_catalog import DrugCatalog
from mash.synth.labs_catalog import LabCatalog, package_dir

__all__ = [
    "ABBREVIATION_STYLES",
    "NamingHabit",
    "draw_habit",
    "drug_local_names",
    "lab_abbreviations",
    "lab_local_names",
]

#: How a test's analyte may be written (:func:`lab_abbreviations`).
ABBREVIATION_STYLES = ("short", "internal", "truncated", "component")
_SPECIMEN = {  # LOINC system -> local spellings
    "Serum or Plasma": ("SER/PL", "S", "SERUM"),
    "Serum, Plasma or Blood": ("S/P/B", "SPB", "SER/PL/BLD"),
    "Serum": ("SER", "S", "SERUM"),
    "Plasma": ("PL", "P", "PLASMA"),
    "Blood": ("BLD", "WB", "BLOOD"),
    "Arterial blood": ("ART", "ABG", "ARTERIAL"),
    "Venous blood": ("VEN", "VBG", "VENOUS"),
    "Capillary blood": ("CAP", "CBG", "CAPILLARY"),
    "Platelet poor plasma": ("PPP", "PL", "CITRATE PL"),
    "Urine": ("UR", "U", "URINE"),
}
#: Systems a site may leave unwritten (its default specimens).
_DEFAULT_SYSTEMS = ("Serum or Plasma", "Serum", "Plasma", "Blood", "Platelet poor plasma")
_FORM_WORDS = {
    "Oral": "", "Tablet": "TAB", "Capsule": "CAP", "Injection": "INJ", "Injectable": "INJ",
    "Solution": "SOLN", "Extended": "ER", "Release": "", "Delayed": "DR", "Prefilled": "PFS",
    "Syringe": "", "Transdermal": "TD", "System": "PATCH", "Chewable": "CHEW",
    "Sublingual": "SL", "Mucosal": "", "Spray": "SPRAY", "Topical": "TOP", "Cream": "CRM",
    "Suspension": "SUSP", "Inhalation": "INH", "Powder": "PWD",
}
_SHORT_STOP = re.compile(r"^(?:SerPl\S*|Ser\S*|Bld\S*|Plas\S*|PPP\S*|Ur\S*|#|%|VFr|MFr|DL\S*)$")


@dataclass(frozen=True)
class NamingHabit:
    """One site's naming style.

    Attributes
    ----------
    abbreviation : tuple of float, length 4
        Probabilities of the :data:`ABBREVIATION_STYLES` per test.
    specimen : {"suffix", "prefix", "omit"}
        Where the specimen goes; ``"omit"`` leaves the site's default specimens
        (serum, plasma, blood) unwritten and writes the others as a suffix.
    specimen_style : int
        Which of the local spellings of a specimen (0, 1, 2).
    method : bool
        Whether a test's method is written (``CALC``, ``AUTO``, ...).
    case : {"upper", "title", "lower"}
    brand_share : float
        Share of drug ingredients with a brand name that the site names by brand.
    strength_style : {"joined", "spaced", "lower"}
        ``20MG``, ``20 MG``, ``20 mg``.
    form_style : {"abbreviated", "full", "route"}
        ``TAB``, ``Oral Tablet``, ``PO TAB``.
    """

    abbreviation: tuple[float, float, float, float]
    specimen: str
    specimen_style: int
    method: bool
    case: str
    brand_share: float
    strength_style: str
    form_style: str


def draw_habit(rng: np.random.Generator, *, site_index: int) -> NamingHabit:
    """A site's habit; consecutive sites cycle through the specimen and case styles.

    Examples
    --------
    >>> a = draw_habit(np.random.default_rng(0), site_index=0)
    >>> b = draw_habit(np.random.default_rng(0), site_index=2)
    >>> (a.specimen, a.case) != (b.specimen, b.case)
    True
    """
    weights = rng.dirichlet(np.full(len(ABBREVIATION_STYLES), 1.0))
    return NamingHabit(
        abbreviation=tuple(float(w) for w in weights),
        specimen=("omit", "suffix", "prefix")[site_index % 3],
        specimen_style=int(rng.integers(0, 3)),
        method=bool(rng.random() < 0.5),
        case=("upper", "lower", "title", "upper")[site_index % 4],
        brand_share=float(rng.uniform(0.4, 0.8)),
        strength_style=("joined", "spaced", "lower")[int(rng.integers(0, 3))],
        form_style=("abbreviated", "full", "route")[int(rng.integers(0, 3))],
    )


def _short_token(short: str) -> str:
    """The analyte part of a LOINC short name (``Creat SerPl-mCnc`` → ``Creat``)."""
    words = []
    for w in short.replace("-", " - ").split():
        if _SHORT_STOP.match(w) or w == "-":
            break
        words.append(w)
    return " ".join(words)


@functools.lru_cache(maxsize=1)
def _internal_names() -> dict[str, str]:
    """LOINC → clinosim's internal analyte name (``Hb``, ``Plt``, ``T_Bil``)."""
    import yaml

    with open(package_dir("clinosim") / "locale" / "us" / "code_mapping_lab.yaml", encoding="utf-8") as fh:
        mapping = yaml.safe_load(fh)
    out: dict[str, str] = {}
    for name, loinc in mapping.items():
        out.setdefault(str(loinc), str(name).replace("_", " "))
    return out


def lab_abbreviations(catalog: LabCatalog) -> np.ndarray:
    """Each test's analyte in the four :data:`ABBREVIATION_STYLES`, shape (L, 4).

    A style without data for a test (no short name, no internal name) falls back on
    the component. Tests sharing a component share its abbreviations.
    """
    internal = _internal_names()
    by_component: dict[str, dict[str, str]] = {}
    for loinc, comp, short in zip(catalog.loinc, catalog.component, catalog.short, strict=True):
        d = by_component.setdefault(comp, {})
        tok = _short_token(str(short))
        if tok:
            d.setdefault("short", tok)
        if loinc in internal:
            d.setdefault("internal", internal[loinc])
    out = np.empty((len(catalog.loinc), len(ABBREVIATION_STYLES)), dtype=object)
    for i, comp in enumerate(catalog.component):
        d = by_component[comp]
        first = re.sub(r"[^A-Za-z0-9]", "", comp.split()[0].split(".")[0])
        out[i] = (d.get("short", comp), d.get("internal", d.get("short", comp)), first[:4], comp)
    return out


def _case(text: str, case: str) -> str:
    return text.upper() if case == "upper" else text.lower() if case == "lower" else text.title()


def _dedupe(names: list[str], rng: np.random.Generator) -> np.ndarray:
    """Repeated names get `` 2``, `` 3``, ... in a random order."""
    out = np.array(names, dtype=object)
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        groups.setdefault(n, []).append(i)
    taken = set(names)
    for n, idx in groups.items():
        if len(idx) < 2:
            continue
        order = rng.permutation(idx)
        k = 2
        for i in order[1:]:
            while f"{n} {k}" in taken:
                k += 1
            out[i] = f"{n} {k}"
            taken.add(out[i])
            k += 1
    return out


def lab_local_names(
    catalog: LabCatalog, rows: np.ndarray, habit: NamingHabit, rng: np.random.Generator
) -> np.ndarray:
    """Local names of the tests ``rows`` at one site, unique, shape (len(rows),).

    Parameters
    ----------
    catalog : LabCatalog
    rows : ndarray of int, shape (n,)
        Distinct test indices the site performs.
    habit : NamingHabit
    rng : numpy.random.Generator

    Examples
    --------
    >>> from mash.synth.labs_catalog import load_lab_catalog
    >>> cat = load_lab_catalog()
    >>> habit = draw_habit(np.random.default_rng(1), site_index=1)
    >>> names = lab_local_names(cat, np.arange(len(cat)), habit, np.random.default_rng(1))
    >>> len(set(names)) == len(cat)
    True
    """
    abbr = lab_abbreviations(catalog)
    style = rng.choice(len(ABBREVIATION_STYLES), size=len(rows), p=np.array(habit.abbreviation))
    names = []
    for i, s in zip(rows, style, strict=True):
        parts = [str(abbr[i, s])]
        system = str(catalog.system[i])
        spec = _SPECIMEN.get(system, (system,) * 3)[habit.specimen_style]
        if habit.method and catalog.method[i]:
            parts.append(str(catalog.method[i]).split()[0][:4])
        if habit.specimen == "suffix" or (habit.specimen == "omit" and system not in _DEFAULT_SYSTEMS):
            parts.append(spec)
        elif habit.specimen == "prefix":
            parts.insert(0, spec)
        names.append(_case(" ".join(parts), habit.case))
    return _dedupe(names, rng)


def _strength(text: str, style: str) -> str:
    if style == "joined":
        return text.replace(" ", "")
    return text.lower() if style == "lower" else text


def _form(text: str, style: str) -> str:
    if style == "full":
        return text
    words = [_FORM_WORDS.get(w, w.upper()) for w in text.split()]
    short = " ".join(w for w in words if w)
    return f"PO {short}" if style == "route" and text.startswith("Oral") else short


def drug_local_names(
    catalog: DrugCatalog, rows: np.ndarray, habit: NamingHabit, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Formulary entry names of one site: brand or generic, strength and form, unique.

    Each ingredient the site names by brand (a share ``habit.brand_share`` of those with
    a brand) uses one brand for all its entries; each entry draws a strength and a form
    of its ingredient's clinical drugs (none written when unknown).

    Parameters
    ----------
    catalog : DrugCatalog
    rows : ndarray of int, shape (n,)
        Ingredient index of each entry (an ingredient may repeat: several entries).
    habit : NamingHabit
    rng : numpy.random.Generator

    Returns
    -------
    names : ndarray of str, shape (n,)
    is_brand : ndarray of bool, shape (n,)
    strength, form : ndarray of str, shape (n,)
        What each entry was drawn with ("" when unknown).
    """
    brand_of: dict[int, str] = {}
    for d in np.unique(rows):
        brands = catalog.brands[d]
        if brands and rng.random() < habit.brand_share:
            brand_of[int(d)] = str(brands[int(rng.integers(0, len(brands)))])
    names, is_brand, strengths, forms = [], [], [], []
    first: dict[int, tuple[int, int]] = {}  # an ingredient's first draw; later entries step on
    seen: dict[int, int] = {}
    for d in rows:
        d = int(d)
        st = catalog.strengths[d]
        fo = catalog.forms[d]
        if d not in first:
            first[d] = (int(rng.integers(0, max(len(st), 1))), int(rng.integers(0, max(len(fo), 1))))
        k = seen.get(d, 0)
        seen[d] = k + 1
        i_st, i_fo = first[d]
        strength = str(st[(i_st + k) % len(st)]) if st else ""
        form = str(fo[(i_fo + k // max(len(st), 1)) % len(fo)]) if fo else ""
        head = brand_of.get(d, str(catalog.ingredient[d]))
        parts = [head]
        if strength:
            parts.append(_strength(strength, habit.strength_style))
        if form:
            parts.append(_form(form, habit.form_style))
        names.append(_case(" ".join(parts), habit.case))
        is_brand.append(d in brand_of)
        strengths.append(strength)
        forms.append(form)
    return (_dedupe(names, rng), np.array(is_brand, dtype=bool),
            np.array(strengths, dtype=object), np.array(forms, dtype=object))
