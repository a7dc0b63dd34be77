"""The token layout of a :class:`~mash.vocab.Vocabulary`: which tokens a hierarchy gives,
their ids, and where rare concepts back off to.

Token layout (ids are contiguous)::

    0..4            [PAD] [UNK] [CLS] [SEP] [MASK]
    5 .. 5+K-1      one per unified concept, sorted by concept id ("C000012")
                    (harmonize=False: one per (site, code) leaf, "site_A:4280")
    5+K .. n-1      one per internal node (kind root/group/cluster), root first,
                    then by (depth, node id)

A site's local code encodes to its concept's id, so codes of different sites that the
alignment placed in one concept share one id. With ``min_count > 1`` a rare concept has
no token of its own: its codes encode to the nearest ancestor frequent enough to keep.

:func:`build_layout` reads a hierarchy into these arrays; :func:`check_layout` checks
that a vocabulary's arrays agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd

from mash.errors import MashInputError
from mash.hyperbolic.hierarchy import Hierarchy, check_tree

if TYPE_CHECKING:  # pragma: no cover
    from mash.sites import Site
    from mash.vocab.vocabulary import Vocabulary

__all__ = [
    "CLS_ID",
    "INTERNAL_KINDS",
    "KINDS",
    "MASK_ID",
    "PAD_ID",
    "SEP_ID",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "build_layout",
    "check_layout",
    "code_counts",
]

#: Special tokens, always ids 0..4 in this order.
SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))

KINDS = ("root", "group", "cluster", "concept", "code")
INTERNAL_KINDS = ("root", "group", "cluster")


# --------------------------------------------------------------------------------------
# Building the layout
# --------------------------------------------------------------------------------------


def build_layout(
    hierarchy: Hierarchy,
    name: str,
    *,
    counts: pd.DataFrame | None = None,
    min_count: int = 1,
    harmonize: bool = True,
) -> dict[str, Any]:
    """The token layout of a hierarchy (see :meth:`Vocabulary.from_hierarchy`).

    Parameters
    ----------
    hierarchy : Hierarchy
    name : str
        What error messages call the hierarchy (its file, or ``"hierarchy"``).
    counts : pandas.DataFrame, optional
        Columns ``site, code, count`` (see :func:`code_counts`).
    min_count : int
        Back-off threshold (events per concept / subtree).
    harmonize : bool
        One token per unified concept (True) or per (site, code) (False).

    Returns
    -------
    dict
        The :class:`Vocabulary` arguments ``tokens``, ``kinds``, ``parents``,
        ``labels``, ``aliases``, ``points`` (n, d) or None, ``stats`` and ``params``.

    Raises
    ------
    MashInputError
        On a malformed tree, bad ``counts`` or ``min_count``.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise MashInputError(f"min_count must be a positive integer, got {min_count!r}")
    if min_count > 1 and counts is None:
        raise MashInputError(
            "min_count > 1 needs counts (a site, code, count table; see code_counts)"
        )
    if counts is not None and not isinstance(counts, pd.DataFrame):
        raise MashInputError("counts must be a pandas DataFrame with columns site, code, count")
    graph = hierarchy.graph
    root = check_tree(graph, name)
    _check_kinds(graph, name)
    if graph.nodes[root].get("kind") not in INTERNAL_KINDS:
        raise MashInputError(f"the root {root!r} must be an internal node", file=name)

    units = _read_units(graph, bool(harmonize), name)
    internal, internal_parent = _internal_nodes(graph, root)
    stats: dict[str, Any] = {
        "n_sites": len({s for u in units for s, _ in u.codes}),
        "n_codes": sum(len(u.codes) for u in units),
        "n_concepts": len(units),
        "n_internal_nodes": len(internal),
    }
    if counts is not None:
        leaf_count, count_stats = _leaf_counts(graph, counts)
        stats.update(count_stats)
        subtree = _subtree_counts(graph, root, leaf_count)
        unit_count = [sum(leaf_count.get(v, 0) for v in u.leaves) for u in units]
    else:
        subtree, unit_count = {}, [0] * len(units)

    own, target, keep_internal = _back_off(
        units, internal, internal_parent, subtree, unit_count, min_count
    )
    tokens, kinds, parents, labels, anchors, aliases = _assign_ids(
        graph, units, own, target, keep_internal, internal_parent, harmonize
    )
    backed = [u for u, ok in zip(units, own, strict=True) if not ok]
    stats.update(
        {
            "n_concept_tokens": sum(own),
            "n_internal_tokens": len(keep_internal),
            "n_internal_dropped": len(internal) - len(keep_internal),
            "n_backed_off_concepts": len(backed),
            "n_backed_off_codes": sum(len(u.codes) for u in backed),
            "n_tokens": len(tokens),
        }
    )
    if len(set(tokens)) != len(tokens):
        dup = next(t for t, n in Counter(tokens).items() if n > 1)
        raise MashInputError(f"token {dup!r} names both a concept and a node", file=name)
    return {
        "tokens": tokens,
        "kinds": kinds,
        "parents": parents,
        "labels": labels,
        "aliases": aliases,
        "points": _points(graph, anchors, name),
        "stats": stats,
        "params": {"min_count": int(min_count), "harmonize": bool(harmonize)},
    }


# --------------------------------------------------------------------------------------
# Reading a hierarchy into tokens
# --------------------------------------------------------------------------------------


@dataclass
class _Unit:
    """One would-be concept token: its token string, the node it stands for, its codes."""

    token: str
    anchor: str  # node whose label and point it takes
    parent: str  # nearest internal ancestor
    codes: list[tuple[str, str]] = field(default_factory=list)
    leaves: list[str] = field(default_factory=list)  # leaf node of each code


def _internal_parent(graph: nx.DiGraph, node: str) -> str:
    """Nearest ancestor of a leaf that is an internal node (skips a concept node)."""
    parent = next(iter(graph.predecessors(node)))
    if graph.nodes[parent].get("kind") == "concept":
        parent = next(iter(graph.predecessors(parent)))
    return parent


def _check_kinds(graph: nx.DiGraph, source: str) -> None:
    """Every node has a known ``kind``; concept nodes hold only leaves."""
    for v, attrs in graph.nodes(data=True):
        kind = attrs.get("kind")
        if kind not in KINDS:
            raise MashInputError(
                f"node {v!r} has kind {kind!r}; valid: {', '.join(KINDS)}", file=source
            )
        if kind == "concept":
            children = list(graph.successors(v))
            if not children or any(graph.nodes[c].get("kind") != "code" for c in children):
                raise MashInputError(
                    f"concept node {v!r} must have only code leaves as children", file=source
                )
        elif kind == "code" and graph.out_degree(v):
            raise MashInputError(f"code node {v!r} has children", file=source)


def _read_units(graph: nx.DiGraph, harmonize: bool, source: str) -> list[_Unit]:
    """The concept tokens of a tree, sorted by token string.

    ``harmonize=True``: one unit per ``concept_id`` (anchored at its concept node, or at
    its single leaf); ``False``: one unit per leaf, token ``site:code``.
    """
    concept_node: dict[str, str] = {}
    for v, attrs in graph.nodes(data=True):
        if attrs.get("kind") == "concept":
            cid = attrs.get("concept_id")
            if cid is None or str(cid) in concept_node:
                raise MashInputError(
                    f"concept node {v!r} has a missing or repeated concept_id", file=source
                )
            concept_node[str(cid)] = v
    units: dict[str, _Unit] = {}
    for v, attrs in graph.nodes(data=True):
        if attrs.get("kind") != "code":
            continue
        site, code, cid = str(attrs["site"]), str(attrs["code"]), attrs.get("concept_id")
        if cid is None or str(cid) in ("", "nan"):
            raise MashInputError(f"leaf {v!r} has no concept_id", file=source)
        cid = str(cid)
        parent = next(iter(graph.predecessors(v)))
        if harmonize:
            anchor = concept_node.get(cid, v)
            if anchor != v and anchor != parent:
                raise MashInputError(
                    f"leaf {v!r} of concept {cid} is not a child of its concept node {anchor!r}",
                    file=source,
                )
            token = cid
        else:
            anchor, token = v, f"{site}:{code}"
        unit = units.get(token)
        if unit is None:
            unit = units[token] = _Unit(token, anchor, _internal_parent(graph, v))
        elif unit.anchor != anchor:  # a second leaf of a concept without a concept node
            raise MashInputError(
                f"concept {cid} has several codes but no concept node above them", file=source
            )
        unit.codes.append((site, code))
        unit.leaves.append(v)
    for unit in units.values():
        pairs = sorted(zip(unit.codes, unit.leaves, strict=True))
        unit.codes, unit.leaves = [c for c, _ in pairs], [v for _, v in pairs]
    return [units[t] for t in sorted(units)]


def _internal_nodes(graph: nx.DiGraph, root: str) -> tuple[list[str], dict[str, str | None]]:
    """Internal nodes, root first then by (depth, id), and each one's parent (root: None)."""
    depth = nx.single_source_shortest_path_length(graph, root)
    internal = [v for v, k in graph.nodes(data="kind") if k in INTERNAL_KINDS]
    internal.sort(key=lambda v: (depth[v], str(v)))
    parent: dict[str, str | None] = {}
    for v in internal:
        preds = list(graph.predecessors(v))
        parent[v] = preds[0] if preds else None
    return internal, parent


def _subtree_counts(graph: nx.DiGraph, root: str, leaf_count: Mapping[str, int]) -> dict[str, int]:
    """Events below every node (post-order sum of ``leaf_count``; absent leaves count 0)."""
    total: dict[str, int] = {}
    for v in nx.dfs_postorder_nodes(graph, root):
        total[v] = int(leaf_count.get(v, 0)) + sum(total[c] for c in graph.successors(v))
    return total


def _leaf_counts(graph: nx.DiGraph, counts: pd.DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    """Map a ``site, code, count`` table onto leaves; return (node → count, stats)."""
    missing = [c for c in ("site", "code", "count") if c not in counts.columns]
    if missing:
        raise MashInputError(
            f"counts lacks column(s) {', '.join(missing)}; expected site, code, count",
            file="<counts>",
        )
    value = pd.to_numeric(counts["count"], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(value) | (value < 0) | (value != np.round(value))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise MashInputError(
            f"not a non-negative whole number: {counts['count'].iloc[row]!r}",
            file="<counts>",
            row=row + 1,
            column="count",
        )
    leaf_of = {
        (str(a["site"]), str(a["code"])): v
        for v, a in graph.nodes(data=True)
        if a.get("kind") == "code"
    }
    keys = list(zip(counts["site"].astype(str), counts["code"].astype(str), strict=True))
    node = [leaf_of.get(k) for k in keys]
    out: dict[str, int] = {}
    unmatched_rows, unmatched_total = 0, 0
    for v, c in zip(node, value.astype(np.int64).tolist(), strict=True):
        if v is None:
            unmatched_rows += 1
            unmatched_total += c
        else:
            out[v] = out.get(v, 0) + c
    stats = {
        "count_rows": len(keys),
        "count_rows_unmatched": unmatched_rows,
        "count_events_unmatched": int(unmatched_total),
        "count_rows_repeated": len(keys) - unmatched_rows - len(out),
    }
    return out, stats


def _back_off(
    units: Sequence[_Unit],
    internal: Sequence[str],
    internal_parent: Mapping[str, str | None],
    subtree: Mapping[str, int],
    unit_count: Sequence[int],
    min_count: int,
) -> tuple[list[bool], list[str], list[str]]:
    """Which units keep a token, where each unit's codes go, which internal nodes stay.

    Returns
    -------
    own : list of bool, per unit
        True if the unit's total count reaches ``min_count`` (always with ``min_count=1``).
    target : list of str, per unit
        Its parent internal node if ``own``; else the nearest ancestor kept.
    keep_internal : list of str
        Internal nodes whose subtree count reaches ``min_count``, and the root (the
        kept set is closed upwards, since counts only grow towards the root).
    """
    keep = [
        v
        for v in internal
        if internal_parent[v] is None or min_count <= 1 or subtree.get(v, 0) >= min_count
    ]
    kept = set(keep)
    own = [min_count <= 1 or n >= min_count for n in unit_count]
    target = [
        u.parent if ok else _nearest_kept(u.parent, internal_parent, kept)
        for u, ok in zip(units, own, strict=True)
    ]
    return own, target, keep


def _assign_ids(
    graph: nx.DiGraph,
    units: Sequence[_Unit],
    own: Sequence[bool],
    target: Sequence[str],
    keep_internal: Sequence[str],
    internal_parent: Mapping[str, str | None],
    harmonize: bool,
) -> tuple[list[str], list[str], list[int], list[str], list[str | None], dict[str, dict[str, int]]]:
    """Token strings, kinds, parent ids, labels, anchor nodes and the code → id map."""
    n_sp = len(SPECIAL_TOKENS)
    n_concept = sum(own)
    node_id = {v: n_sp + n_concept + i for i, v in enumerate(keep_internal)}
    tokens, kinds = list(SPECIAL_TOKENS), ["special"] * n_sp
    parents, labels = [-1] * n_sp, list(SPECIAL_TOKENS)
    anchors: list[str | None] = [None] * n_sp
    aliases: dict[str, dict[str, int]] = {}
    for u, ok, tgt in zip(units, own, target, strict=True):
        if ok:
            tid = len(tokens)
            tokens.append(u.token)
            kinds.append("concept" if harmonize else "code")
            parents.append(node_id[tgt])
            labels.append(_label(graph.nodes[u.anchor], u.token))
            anchors.append(u.anchor)
        else:
            tid = node_id[tgt]
        for s, c in u.codes:
            aliases.setdefault(s, {})[c] = tid
    for v in keep_internal:
        tokens.append(str(v))
        kinds.append(str(graph.nodes[v]["kind"]))
        p = internal_parent[v]
        parents.append(-1 if p is None else node_id[p])
        labels.append(_label(graph.nodes[v], str(v)))
        anchors.append(v)
    return tokens, kinds, parents, labels, anchors, aliases


def _parse_point(value: Any, node: str, source: str) -> np.ndarray | None:
    """A node's ``coordinates`` attribute as a float64 vector (None if absent)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    try:
        parts = value.split() if isinstance(value, str) else list(value)
        return np.asarray(parts, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MashInputError(f"node {node!r} has unreadable coordinates", file=source) from exc


def _points(graph: nx.DiGraph, anchors: Sequence[str | None], source: str) -> np.ndarray | None:
    """Poincaré points of the anchors, shape (n, d), NaN rows where absent (None if none)."""
    pts = [
        None if a is None else _parse_point(graph.nodes[a].get("coordinates"), a, source)
        for a in anchors
    ]
    dims = {p.shape[0] for p in pts if p is not None}
    if not dims:
        return None
    if len(dims) > 1:
        raise MashInputError(f"coordinates of different lengths: {sorted(dims)}", file=source)
    out = np.full((len(anchors), dims.pop()), np.nan)
    for i, p in enumerate(pts):
        if p is not None:
            out[i] = p
    return out


# --------------------------------------------------------------------------------------
# Counts, back-off targets, labels
# --------------------------------------------------------------------------------------


def code_counts(sites: Site | Iterable[Site]) -> pd.DataFrame:
    """Events per code of each site, the ``counts`` table of :meth:`Vocabulary.from_hierarchy`.

    Parameters
    ----------
    sites : Site or iterable of Site

    Returns
    -------
    pandas.DataFrame
        Columns ``site`` (str), ``code`` (str), ``count`` (int64); one row per code of
        every site, zero counts included.
    """
    from mash.sites import Site

    items = [sites] if isinstance(sites, Site) else list(sites)
    frames = [
        pd.DataFrame(
            {
                "site": s.name,
                "code": s.codes["code"].astype(str).to_numpy(dtype=object),
                "count": s.code_counts(),
            }
        )
        for s in items
    ]
    if not frames:
        return pd.DataFrame({"site": [], "code": [], "count": np.zeros(0, np.int64)})
    return pd.concat(frames, ignore_index=True)


def _nearest_kept(node: str | None, parent: Mapping[str, str | None], kept: set[str]) -> str:
    """``node`` or its nearest ancestor in ``kept`` (the root always is)."""
    while node is not None and node not in kept:
        node = parent[node]
    assert node is not None, "the root is always kept"
    return node


def _label(attrs: Mapping[str, Any], default: str) -> str:
    for key in ("label", "description"):
        value = attrs.get(key)
        if value is not None and str(value).strip():
            return str(value)
    return default


# --------------------------------------------------------------------------------------
# Checking a layout
# --------------------------------------------------------------------------------------


def check_layout(vocab: Vocabulary) -> None:
    """Check a vocabulary's arrays agree; raise MashInputError naming the first problem."""
    n = len(vocab.tokens)
    if tuple(vocab.tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise MashInputError(f"the first tokens must be {', '.join(SPECIAL_TOKENS)}")
    if len(set(vocab.tokens)) != n:
        raise MashInputError("token strings are not unique")
    if (
        not (len(vocab.kinds) == len(vocab.labels) == vocab.parents.shape[0] == n)
        or vocab.parents.ndim != 1
    ):
        raise MashInputError("tokens, kinds, parents and labels differ in length")
    valid = ("special", "concept", "code", *INTERNAL_KINDS)
    odd = sorted(set(vocab.kinds) - set(valid))
    if odd:
        raise MashInputError(f"unknown token kind {odd[0]!r}; valid: {', '.join(valid)}")
    par = vocab.parents
    if ((par < -1) | (par >= n) | (par == np.arange(n))).any() or (
        par[: len(SPECIAL_TOKENS)] != -1
    ).any():
        raise MashInputError("parents must be ids of this vocabulary, −1 for the root and specials")
    # every chain reaches −1 within n steps (no cycles)
    cur = par.copy()
    for _ in range(n):
        if (cur < 0).all():
            break
        cur = np.where(cur < 0, -1, par[np.maximum(cur, 0)])
    if (cur >= 0).any():
        raise MashInputError("parents form a cycle")
    for s, m in vocab._aliases.items():
        for c, i in m.items():
            if not len(SPECIAL_TOKENS) <= i < n:
                raise MashInputError(f"code ({s}, {c}) maps to {i}, not a non-special token id")
    if vocab.points is not None and (vocab.points.ndim != 2 or vocab.points.shape[0] != n):
        raise MashInputError(f"points must have shape ({n}, d)")
