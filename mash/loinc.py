"""LOINC long common names: their parts and a class rule.

A LOINC long common name reads ``Component [Property] in System by Method``
(``Glucose [Mass/volume] in Serum or Plasma``; property and method may be absent).
:func:`parse_loinc_name` splits it; :func:`lab_class` assigns a coarse class
(chemistry, hematology, ...) by a rule on the parts. Used by the simulator's lab
catalog and by the ``loinc`` hierarchy labels (:mod:`mash.labels`).
"""

from __future__ import annotations

import re

__all__ = ["LAB_CLASSES", "LOINC_CODE", "lab_class", "parse_loinc_name"]

#: A LOINC code: up to 7 digits, a dash, a check digit.
LOINC_CODE = re.compile(r"^\d{1,7}-\d$")
#: Classes of :func:`lab_class`, a rule on the parsed name (not a per-code table).
LAB_CLASSES = ("chemistry", "hematology", "coagulation", "blood gas", "urinalysis")
# Specimens (LOINC "system") a long common name may end with.
_SYSTEMS = (
    "Serum or Plasma", "Serum, Plasma or Blood", "Serum", "Plasma", "Blood", "Arterial blood",
    "Venous blood", "Capillary blood", "Platelet poor plasma", "Red Blood Cells", "Urine",
    "24 hour Urine", "Cerebral spinal fluid", "Stool",
)
_WITH_PROPERTY = re.compile(r"^(?P<c>.+?) \[(?P<p>[^\]]+)\] (?:in|of) (?P<rest>.+)$")
_WITHOUT_PROPERTY = re.compile(r"^(?P<c>.+?) (?:in|of) (?P<rest>.+)$")

def parse_loinc_name(display: str) -> tuple[str, str, str, str] | None:
    """The LOINC parts of a long common name: (component, property, system, method).

    ``None`` when the name does not end in a known specimen.

    Examples
    --------
    >>> parse_loinc_name("Glucose [Mass/volume] in Serum or Plasma")
    ('Glucose', 'Mass/volume', 'Serum or Plasma', '')
    >>> parse_loinc_name("Hemoglobin A1c/Hemoglobin.total in Blood")
    ('Hemoglobin A1c/Hemoglobin.total', '', 'Blood', '')
    >>> parse_loinc_name("Glomerular filtration rate [Volume Rate/Area] in Serum or Plasma "
    ...                  "by Creatinine-based formula (MDRD)/1.73 sq M")[2:]
    ('Serum or Plasma', 'Creatinine-based formula (MDRD)/1.73 sq M')
    >>> parse_loinc_name("pH of Arterial blood")
    ('pH', '', 'Arterial blood', '')
    >>> parse_loinc_name("CT Head") is None
    True
    """
    m = _WITH_PROPERTY.match(display) or _WITHOUT_PROPERTY.match(display)
    if m is None:
        return None
    component, rest = m.group("c").strip(), m.group("rest").strip()
    prop = m.groupdict().get("p") or ""
    for system in sorted(_SYSTEMS, key=len, reverse=True):
        if rest == system or rest.startswith(system + " by "):
            method = rest[len(system) + 4:].strip() if rest != system else ""
            return component, prop.strip(), system, method
    return None


def lab_class(component: str, prop: str, system: str) -> str:
    """A test's class from its parsed name (one of :data:`LAB_CLASSES`).

    Urine → urinalysis; arterial or venous blood → blood gas; platelet-poor plasma, INR,
    prothrombin time, aPTT → coagulation; blood counts, fractions and volumes of cells,
    hemoglobin, hematocrit, sedimentation rate in blood → hematology; else chemistry.

    Examples
    --------
    >>> lab_class("Leukocytes", "#/volume", "Blood"), lab_class("Glucose", "Mass/volume", "Blood")
    ('hematology', 'chemistry')
    """
    if "Urine" in system:
        return "urinalysis"
    if system in ("Arterial blood", "Venous blood", "Capillary blood"):
        return "blood gas"
    if system == "Platelet poor plasma" or component in ("INR", "Prothrombin time (PT)", "aPTT"):
        return "coagulation"
    cell_props = ("#/volume", "Volume Fraction", "Entitic volume", "Entitic mass",
                  "Mass Concentration", "Sedimentation Rate", "Ratio", "Number Fraction")
    blood_cells = ("Hemoglobin", "Hematocrit", "Erythrocyte")
    if system == "Blood" and "/100 leukocytes" in component:
        return "hematology"
    if system == "Blood" and (prop in cell_props or component.startswith(blood_cells)):
        return "hematology" if not component.startswith("Hemoglobin A1c") else "chemistry"
    return "chemistry"
