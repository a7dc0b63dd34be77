"""The :class:`Vocabulary`: token ids for a hierarchy's concepts, a tokenizer for sequence models.

Token layout (ids are contiguous)::

    0..4            [PAD] [UNK] [CLS] [SEP] [MASK]
    5 .. 5+K-1      one per unified concept, sorted by concept id ("C000012")
                    (harmonize=False: one per (site, code) leaf, "site_A:4280")
    5+K .. n-1      one per internal node (kind root/group/cluster), root first,
                    then by (depth, node id)

A site's local code encodes to its concept's id, so codes of different sites that the
alignment placed in one concept share one id. With ``min_count > 1`` a rare concept has
no token of its own: its codes encode to the nearest ancestor frequent enough to keep.

This module is NumPy-only (no torch); :meth:`Vocabulary.embedding_init` computes the
tangent-space initialisation in closed form.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd

from mash._io import sha256_file, write_json, write_text
from mash._version import __version__
from mash.errors import MashError, MashInputError
from mash.hyperbolic.hierarchy import Hierarchy, check_tree

if TYPE_CHECKING:  # pragma: no cover
    from mash.sites import Site

__all__ = [
    "HF_SPECIAL_TOKENS",
    "SPECIAL_TOKENS",
    "EncodedVisits",
    "Vocabulary",
    "code_counts",
    "logmap0",
]

#: Special tokens, always ids 0..4 in this order.
SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))

#: The specials' roles as ``transformers`` names them (``tokenizer_config.json`` keys):
#: ``PreTrainedTokenizerFast(tokenizer_file=..., **HF_SPECIAL_TOKENS)``.
HF_SPECIAL_TOKENS: Mapping[str, str] = MappingProxyType(
    {
        "pad_token": SPECIAL_TOKENS[PAD_ID],
        "unk_token": SPECIAL_TOKENS[UNK_ID],
        "cls_token": SPECIAL_TOKENS[CLS_ID],
        "sep_token": SPECIAL_TOKENS[SEP_ID],
        "mask_token": SPECIAL_TOKENS[MASK_ID],
    }
)
_HF_TOKENIZER_FILE = "tokenizer.json"  # the name ``from_pretrained`` looks for

FORMAT = "mash-vocabulary"
FORMAT_VERSION = 1
KINDS = ("root", "group", "cluster", "concept", "code")
INTERNAL_KINDS = ("root", "group", "cluster")
_SPECIAL_INIT_SCALE = 0.01
_SPECIAL_INIT_SEED = 0
_NS_PER_DAY = 86_400 * 10**9


# --------------------------------------------------------------------------------------
# Pure maths
# --------------------------------------------------------------------------------------


def logmap0(x: np.ndarray) -> np.ndarray:
    r"""Logarithmic map at the origin of the Poincaré ball (curvature −1).

    .. math:: \log_0(x) = \operatorname{artanh}(\lVert x\rVert)\,\frac{x}{\lVert x\rVert},
              \qquad \log_0(0) = 0,

    the same map as ``geoopt.PoincareBall(c=1).logmap0``.

    Parameters
    ----------
    x : ndarray of float, shape (n, d)
        Points strictly inside the unit ball.

    Returns
    -------
    ndarray of float64, shape (n, d)
        Tangent vectors at the origin.

    Raises
    ------
    MashInputError
        If a point has norm ≥ 1 or is not finite.

    Examples
    --------
    >>> logmap0(np.array([[0.5, 0.0], [0.0, 0.0]])).round(4).tolist()
    [[0.5493, 0.0], [0.0, 0.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    bad = ~np.isfinite(norm[..., 0]) | (norm[..., 0] >= 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        raise MashInputError(
            f"point {i} is not strictly inside the unit ball (norm {norm.reshape(-1)[i]:.6g})"
        )
    safe = np.where(norm > 0, norm, 1.0)
    return np.arctanh(norm) * x / safe


def _special_rows(d: int) -> np.ndarray:
    """Init rows of the special tokens: [PAD] zero, the others 0.01·N(0, 1), seed 0; (5, d)."""
    rows = np.zeros((len(SPECIAL_TOKENS), d))
    rng = np.random.default_rng(_SPECIAL_INIT_SEED)
    rows[1:] = _SPECIAL_INIT_SCALE * rng.standard_normal((len(SPECIAL_TOKENS) - 1, d))
    return rows


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


def _resolve(hierarchy: Hierarchy | str | Path) -> tuple[Hierarchy, dict[str, Any]]:
    """The hierarchy (loaded if a path) and its source record: path and SHA-256 of the
    file, or of the graph's canonical content for an in-memory one."""
    if isinstance(hierarchy, (str, Path)):
        loaded = Hierarchy.load(hierarchy)
        return loaded, {"path": str(hierarchy), "sha256": sha256_file(hierarchy), "hash_of": "file"}
    if isinstance(hierarchy, Hierarchy):
        return hierarchy, {
            "path": None,
            "sha256": _graph_sha256(hierarchy.graph),
            "hash_of": "graph",
        }
    raise MashInputError(f"expected a Hierarchy or a path, got {type(hierarchy).__name__}")


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
# Visits
# --------------------------------------------------------------------------------------


@dataclass
class EncodedVisits:
    """Padded visit sequences of a batch of patients (NumPy; see ``mash.models.batch.collate``).

    Attributes
    ----------
    codes : ndarray of int64, shape (P, V, C)
        Token ids per visit, 0 ([PAD]) at padding.
    times : ndarray of float32, shape (P, V)
        Days since the patient's first kept visit; 0 at padding.
    mask : ndarray of bool, shape (P, V)
        True at real visits; visits are left-aligned, oldest first.
    code_mask : ndarray of bool, shape (P, V, C)
        True at real codes.
    n_unsorted_patients : int
        Patients whose visits were not in time order (they were sorted).
    n_dropped_visits : int
        Oldest visits dropped by ``max_visits``.
    n_dropped_codes : int
        Distinct codes dropped by ``max_codes`` (the first ``max_codes`` are kept).
    n_duplicate_codes : int
        Repeated ids within a visit, collapsed.
    n_unknown_codes : int
        Codes encoded as [UNK].
    n_empty_visits : int
        Visits without codes (kept, all codes padding).
    """

    codes: np.ndarray
    times: np.ndarray
    mask: np.ndarray
    code_mask: np.ndarray
    n_unsorted_patients: int = 0
    n_dropped_visits: int = 0
    n_dropped_codes: int = 0
    n_duplicate_codes: int = 0
    n_unknown_codes: int = 0
    n_empty_visits: int = 0

    def __len__(self) -> int:
        return int(self.codes.shape[0])


def _to_days(value: Any, where: str) -> float:
    """A visit time as days: numbers as given; dates, datetimes and ISO text since 1970-01-01."""
    if isinstance(value, bool):
        raise MashInputError(
            f"{where}: time must be a date, datetime, ISO text or number of days, got a bool"
        )
    if isinstance(value, (int, float, np.integer, np.floating)):
        days = float(value)
    elif isinstance(value, (str, datetime, date, np.datetime64, pd.Timestamp)):
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError) as exc:
            raise MashInputError(f"{where}: not a date or datetime: {value!r}") from exc
        if pd.isna(stamp):
            raise MashInputError(f"{where}: missing time")
        days = stamp.as_unit("ns").value / _NS_PER_DAY
    else:
        raise MashInputError(
            f"{where}: time must be a date, datetime, ISO text or number, got {type(value).__name__}"
        )
    if not np.isfinite(days):
        raise MashInputError(f"{where}: time is not finite")
    return days


def _unique_first(ids: Sequence[int]) -> list[int]:
    """Distinct ids in order of first occurrence."""
    return list(dict.fromkeys(ids))


def _pad_visits(
    rows: Sequence[tuple[np.ndarray, Sequence[Sequence[int]]]],
) -> tuple[np.ndarray, ...]:
    """Dense ``codes`` (P, V, C) int64, ``times`` (P, V) float32, ``mask`` (P, V) bool
    from per-patient (relative days, per-visit ids), left-aligned."""
    n_v = max(len(ids) for _, ids in rows)
    n_c = max(1, max((len(c) for _, ids in rows for c in ids), default=1))
    codes = np.full((len(rows), n_v, n_c), PAD_ID, dtype=np.int64)
    times = np.zeros((len(rows), n_v), dtype=np.float32)
    mask = np.zeros((len(rows), n_v), dtype=bool)
    for p, (day, ids) in enumerate(rows):
        times[p, : len(ids)] = day
        mask[p, : len(ids)] = True
        for v, c in enumerate(ids):
            codes[p, v, : len(c)] = c
    return codes, times, mask


def _check_limit(value: int | None, name: str) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1
    ):
        raise MashInputError(f"{name} must be a positive integer or None, got {value!r}")


# --------------------------------------------------------------------------------------
# The Vocabulary
# --------------------------------------------------------------------------------------


class Vocabulary:
    """Token ids for the concepts and internal nodes of a hierarchy.

    Build it with :meth:`from_hierarchy` or :meth:`load`; the constructor takes the
    finished layout and only checks it.

    Parameters
    ----------
    tokens : sequence of str, length n
        Token strings; the first five are :data:`SPECIAL_TOKENS`.
    kinds : sequence of str, length n
        ``special``, ``concept`` (harmonised concept), ``code`` (one site's code,
        ``harmonize=False``), ``root``, ``group`` or ``cluster``.
    parents : sequence of int, length n
        Parent token id, −1 for the root and the specials.
    labels : sequence of str, length n
        Human-readable labels.
    aliases : mapping of str to mapping of str to int
        ``aliases[site][code]`` is the id a site's code encodes to.
    points : ndarray of float64, shape (n, d), optional
        Poincaré-ball point of each token (NaN rows where absent; specials ignored).
    stats, params, source : dict, optional
        Build counts, build parameters and the source hierarchy's hash.

    Attributes
    ----------
    unknown : collections.Counter
        ``(site, code) → times`` seen by :meth:`encode` (or, as ``site:code``, by
        :meth:`encode_text`) without an id (encoded [UNK]). Runtime state; not saved.
    bare_codes : collections.Counter
        ``word → times`` seen by :meth:`encode_text` without a known ``site:`` prefix
        and not a token string (encoded [UNK], with a warning): usually a bare code such
        as ``"42840"`` where ``"site_A:42840"`` was meant. Runtime state; not saved.

    Examples
    --------
    >>> import networkx as nx
    >>> from mash.hyperbolic.hierarchy import Hierarchy
    >>> g = nx.DiGraph()
    >>> g.add_node("root", kind="root", label="All")
    >>> g.add_node("_c0", kind="concept", label="Heart failure", concept_id="C1")
    >>> for site, code in [("A", "4280"), ("B", "I509")]:
    ...     g.add_node(f"{site}:{code}", kind="code", site=site, code=code, description="HF",
    ...                concept_id="C1")
    ...     g.add_edge("_c0", f"{site}:{code}")
    >>> g.add_node("A:25000", kind="code", site="A", code="25000", description="DM",
    ...            concept_id="C2")
    >>> g.add_edges_from([("root", "_c0"), ("root", "A:25000")])
    >>> vocab = Vocabulary.from_hierarchy(Hierarchy(g))
    >>> vocab.encode(["4280", "25000", "zzz"], site="A"), vocab.encode(["I509"], site="B")
    ([5, 6, 1], [5])
    >>> vocab.decode([5, 6, 7]), vocab.ancestors(5)
    (['C1', 'C2', 'root'], [7])
    >>> vocab.encode_text("A:4280 B:I509 C2 [CLS]")  # the Hugging Face export's input
    [5, 5, 6, 2]
    >>> enc = vocab.encode_visits([[("2020-01-02", ["25000"]), ("2020-01-01", ["4280", "4280"])]],
    ...                           site="A")
    >>> enc.codes.tolist(), enc.times.tolist(), enc.n_unsorted_patients, enc.n_duplicate_codes
    ([[[5], [6]]], [[0.0, 1.0]], 1, 1)
    """

    SPECIAL_TOKENS = SPECIAL_TOKENS
    pad_id, unk_id, cls_id, sep_id, mask_id = PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID

    def __init__(
        self,
        tokens: Sequence[str],
        kinds: Sequence[str],
        parents: Sequence[int],
        labels: Sequence[str],
        aliases: Mapping[str, Mapping[str, int]],
        points: np.ndarray | None = None,
        *,
        stats: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        self.tokens: list[str] = [str(t) for t in tokens]
        self.kinds: list[str] = [str(k) for k in kinds]
        self.parents = np.asarray(parents, dtype=np.int64)
        self.labels: list[str] = [str(x) for x in labels]
        self._aliases: dict[str, dict[str, int]] = {
            str(s): {str(c): int(i) for c, i in m.items()} for s, m in aliases.items()
        }
        self.points = None if points is None else np.asarray(points, dtype=np.float64)
        self.stats: dict[str, Any] = dict(stats or {})
        self.params: dict[str, Any] = dict(params or {})
        self.source: dict[str, Any] = dict(source or {})
        self.unknown: Counter[tuple[str, str]] = Counter()
        self.bare_codes: Counter[str] = Counter()
        _check_layout(self)
        self._index = {t: i for i, t in enumerate(self.tokens)}
        self._codes_of: dict[int, list[tuple[str, str]]] | None = None
        self._strings: dict[str, int] | None = None

    # ---- construction -----------------------------------------------------------------

    @classmethod
    def from_hierarchy(
        cls,
        hierarchy: Hierarchy | str | Path,
        *,
        counts: pd.DataFrame | None = None,
        min_count: int = 1,
        harmonize: bool = True,
    ) -> Vocabulary:
        """Build the vocabulary of a hierarchy.

        Parameters
        ----------
        hierarchy : Hierarchy or str or Path
            A hierarchy, or a GraphML / node-link JSON file of one.
        counts : pandas.DataFrame, optional
            Columns ``site, code, count`` (see :func:`code_counts`): events per code.
            Needed when ``min_count > 1``; repeated rows are summed, rows naming codes
            outside the hierarchy are counted in ``stats`` and otherwise ignored.
        min_count : int
            A concept whose codes total fewer events gets no token: its codes encode to
            the nearest ancestor whose subtree totals at least ``min_count`` (the root
            is always kept). Internal nodes below ``min_count`` get no token either.
        harmonize : bool
            True: one token per unified concept, shared by its codes across sites.
            False: one token per (site, code) (the no-harmonisation baseline); the
            internal nodes are the same.

        Returns
        -------
        Vocabulary

        Raises
        ------
        MashInputError
            On a malformed tree, bad ``counts`` or ``min_count``.
        """
        hierarchy, src = _resolve(hierarchy)
        if (
            isinstance(min_count, bool)
            or not isinstance(min_count, (int, np.integer))
            or min_count < 1
        ):
            raise MashInputError(f"min_count must be a positive integer, got {min_count!r}")
        if min_count > 1 and counts is None:
            raise MashInputError(
                "min_count > 1 needs counts (a site, code, count table; see code_counts)"
            )
        if counts is not None and not isinstance(counts, pd.DataFrame):
            raise MashInputError("counts must be a pandas DataFrame with columns site, code, count")
        name = src["path"] or "hierarchy"
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
        n_concept = sum(own)
        backed = [u for u, ok in zip(units, own, strict=True) if not ok]
        stats.update(
            {
                "n_concept_tokens": n_concept,
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
        points = _points(graph, anchors, name)
        params = {"min_count": int(min_count), "harmonize": bool(harmonize)}
        return cls(
            tokens, kinds, parents, labels, aliases, points, stats=stats, params=params, source=src
        )

    # ---- lookups ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, item: object) -> bool:
        """``token in vocab`` for a token string; ``(site, code) in vocab`` for a site's code."""
        if isinstance(item, tuple) and len(item) == 2:
            return str(item[1]) in self._aliases.get(str(item[0]), {})
        return isinstance(item, str) and item in self._index

    def __repr__(self) -> str:
        return (
            f"Vocabulary({len(self)} tokens: {self.stats.get('n_concept_tokens', '?')} concepts, "
            f"{self.stats.get('n_internal_tokens', '?')} internal; sites {', '.join(self.sites)})"
        )

    @property
    def sites(self) -> list[str]:
        """Names of the sites whose codes it encodes, sorted."""
        return sorted(self._aliases)

    @property
    def fingerprint(self) -> str:
        """Hex SHA-256 of the layout (tokens, parents, aliases): equal iff ids mean the same."""
        blob = json.dumps([self.tokens, self.parents.tolist(), self._aliases], sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def token_to_id(self, token: str) -> int:
        """Id of a token string (a special, a concept id or a node id)."""
        try:
            return self._index[token]
        except (KeyError, TypeError):
            raise MashInputError(f"unknown token {token!r}") from None

    def id_to_token(self, token_id: int) -> str:
        """Token string of an id."""
        return self.tokens[self._check_id(token_id)]

    def label(self, token_id: int) -> str:
        """Human-readable label of an id (the node's ``label``; specials: themselves)."""
        return self.labels[self._check_id(token_id)]

    def kind(self, token_id: int) -> str:
        """``special``, ``concept``, ``code``, ``root``, ``group`` or ``cluster``."""
        return self.kinds[self._check_id(token_id)]

    def ancestors(self, token_id: int) -> list[int]:
        """Ancestor ids, nearest first, ending at the root ([] for specials and the root)."""
        out: list[int] = []
        p = int(self.parents[self._check_id(token_id)])
        while p >= 0:
            out.append(p)
            p = int(self.parents[p])
        return out

    def codes_of(self, token_id: int) -> list[tuple[str, str]]:
        """The (site, code) pairs that encode to ``token_id``, sorted.

        An internal node lists only the backed-off codes that encode to it, not every
        code below it.
        """
        self._check_id(token_id)
        if self._codes_of is None:
            index: dict[int, list[tuple[str, str]]] = {}
            for s, m in sorted(self._aliases.items()):
                for c, i in sorted(m.items()):
                    index.setdefault(i, []).append((s, c))
            self._codes_of = index
        return list(self._codes_of.get(int(token_id), []))

    def site_codes(self, site: str) -> dict[str, int]:
        """A copy of ``code → id`` for one site."""
        return dict(self._site_table(site))

    # ---- encoding -----------------------------------------------------------------------

    def encode(self, codes: Iterable[str], site: str) -> list[int]:
        """Ids of a site's local codes; unknown codes give [UNK] and are counted in :attr:`unknown`.

        Parameters
        ----------
        codes : iterable of str
            The site's codes (text, as in its ``codes`` table).
        site : str
            The site's name.

        Returns
        -------
        list of int, same length as ``codes``

        Raises
        ------
        MashInputError
            For an unknown site (the message lists the known ones) or a non-text code.
        """
        if isinstance(codes, str):
            raise MashInputError(f"codes must be an iterable of codes, got the string {codes!r}")
        table = self._site_table(site)
        out = []
        for j, code in enumerate(codes):
            if not isinstance(code, str):
                raise MashInputError(f"code {j} of site {site!r} is not text: {code!r}")
            i = table.get(code)
            if i is None:
                self.unknown[(site, code)] += 1
                i = UNK_ID
            out.append(i)
        return out

    def encode_text(self, text: str) -> list[int]:
        """Ids of whitespace-separated ``site:code`` words, as the Hugging Face export reads them.

        The input and ids of :meth:`to_hf_tokenizer`'s tokenizer: each word is a
        ``site:code`` string or a token string (concept id, node id, special). A word
        with a known site's prefix but an unknown code is [UNK], counted in
        :attr:`unknown` as ``(site, code)``, as :meth:`encode` counts it. Any other
        unknown word, typically a bare code without its ``site:`` prefix, is [UNK] too,
        counted in :attr:`bare_codes` and reported in one warning per call (the exported
        tokenizer turns such words into [UNK] silently).

        Parameters
        ----------
        text : str
            E.g. ``"site_A:42840 site_B:I5040"``.

        Returns
        -------
        list of int, one id per word

        Raises
        ------
        MashInputError
            If ``text`` is not a string.

        Warns
        -----
        UserWarning
            If a word has no known ``site:`` prefix and is no token, naming the sites
            whose code it is.
        """
        if not isinstance(text, str):
            raise MashInputError(
                f"text must be a string of site:code words, got {type(text).__name__}"
            )
        if self._strings is None:
            self._strings = self.alias_strings()
        strings = self._strings
        out, bare = [], []
        for word in text.split():
            i = strings.get(word)
            if i is None:
                i = UNK_ID
                site = self._site_prefix(word)
                if site is None:
                    self.bare_codes[word] += 1
                    bare.append(word)
                else:
                    self.unknown[(site, word[len(site) + 1 :])] += 1
            out.append(i)
        if bare:
            example = bare[0]
            owners = [s for s in self.sites if example in self._aliases[s]]
            hint = (
                f", a code of {', '.join(owners)}: write {owners[0] + ':' + example!r}"
                if owners
                else ""
            )
            warnings.warn(
                f"{len(bare)} of {len(out)} words have no known 'site:' prefix and are no "
                f"token: encoded as [UNK] (e.g. {example!r}{hint}); counted in "
                "Vocabulary.bare_codes",
                stacklevel=2,
            )
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Token strings of ids (concept ids, node ids or specials)."""
        return [self.tokens[self._check_id(i)] for i in ids]

    def encode_visits(
        self,
        patients: Sequence[Sequence[tuple[Any, Iterable[str]]]],
        site: str,
        *,
        max_visits: int | None = None,
        max_codes: int | None = None,
    ) -> EncodedVisits:
        """Encode and pad the visit sequences of several patients.

        Parameters
        ----------
        patients : sequence of sequences of (time, codes)
            Per patient, its visits; ``time`` is a date, datetime, ``numpy.datetime64``,
            ISO text or a number of days; ``codes`` the site's codes recorded then.
        site : str
            The site's name.
        max_visits : int, optional
            Keep each patient's most recent ``max_visits`` visits.
        max_codes : int, optional
            Keep a visit's first ``max_codes`` distinct ids (in the order given).

        Returns
        -------
        EncodedVisits
            ``codes`` (P, V, C), ``times`` (P, V), ``mask`` (P, V), ``code_mask``
            (P, V, C), with V and C the largest kept counts; and the counts of what was
            sorted, collapsed or dropped.

        Raises
        ------
        MashInputError
            For no patients, a patient without visits (naming its index), a bad time or
            visit, an unknown site.

        """
        _check_limit(max_visits, "max_visits")
        _check_limit(max_codes, "max_codes")
        self._site_table(site)
        if isinstance(patients, (str, bytes)) or len(patients) == 0:
            raise MashInputError("patients must be a non-empty sequence of visit sequences")
        n_unknown_before = sum(self.unknown.values())
        rows: list[tuple[np.ndarray, list[list[int]]]] = []
        n_unsorted = n_dropped_visits = n_dropped_codes = n_dup = n_empty = 0
        for p, visits in enumerate(patients):
            if isinstance(visits, (str, bytes)) or len(visits) == 0:
                raise MashInputError(f"patient {p} has no visits")
            days, ids = [], []
            for v, visit in enumerate(visits):
                where = f"patient {p}, visit {v}"
                if isinstance(visit, (str, bytes)) or len(visit) != 2:
                    raise MashInputError(f"{where}: expected a (time, codes) pair")
                days.append(_to_days(visit[0], where))
                if isinstance(visit[1], (str, bytes)):
                    raise MashInputError(f"{where}: codes must be a list of codes, got a string")
                raw = self.encode(visit[1], site)
                uniq = _unique_first(raw)
                n_dup += len(raw) - len(uniq)
                n_empty += not uniq
                if max_codes is not None and len(uniq) > max_codes:
                    n_dropped_codes += len(uniq) - max_codes
                    uniq = uniq[:max_codes]
                ids.append(uniq)
            day = np.asarray(days)
            if np.any(np.diff(day) < 0):
                n_unsorted += 1
                order = np.argsort(day, kind="stable")
                day, ids = day[order], [ids[i] for i in order]
            if max_visits is not None and len(ids) > max_visits:
                n_dropped_visits += len(ids) - max_visits
                day, ids = day[-max_visits:], ids[-max_visits:]
            rows.append((day - day[0], ids))
        codes, times, mask = _pad_visits(rows)
        return EncodedVisits(
            codes,
            times,
            mask,
            codes != PAD_ID,
            n_unsorted_patients=n_unsorted,
            n_dropped_visits=n_dropped_visits,
            n_dropped_codes=n_dropped_codes,
            n_duplicate_codes=n_dup,
            n_unknown_codes=sum(self.unknown.values()) - n_unknown_before,
            n_empty_visits=n_empty,
        )

    # ---- embeddings ---------------------------------------------------------------------

    def embedding_init(self) -> np.ndarray:
        r"""Initial token vectors: the hierarchy's points in the tangent space at the origin.

        Row ``i`` is :math:`\log_0(x_i) = \operatorname{artanh}(\lVert x_i\rVert)\,x_i/\lVert x_i\rVert`
        (closed form of ``geoopt.PoincareBall(c=1).logmap0``) of token ``i``'s Poincaré
        point: a concept's concept node (or its single leaf), an internal node's own
        point. [PAD] is zero; the other specials are ``0.01 · N(0, 1)`` draws (seed 0).

        Returns
        -------
        ndarray of float32, shape (len(vocab), d)

        Raises
        ------
        MashInputError
            If the hierarchy had no coordinates, or a token's node lacks them.
        """
        if self.points is None:
            raise MashInputError(
                "the hierarchy has no coordinates; embedding_init needs a hyperbolic hierarchy"
            )
        n_sp = len(SPECIAL_TOKENS)
        missing = np.flatnonzero(np.isnan(self.points[n_sp:]).any(axis=1))
        if missing.size:
            tid = int(missing[0]) + n_sp
            raise MashInputError(
                f"token {self.tokens[tid]!r} has no coordinates ({missing.size} tokens lack them)"
            )
        out = np.empty(self.points.shape)
        out[:n_sp] = _special_rows(self.points.shape[1])
        out[n_sp:] = logmap0(self.points[n_sp:])
        return out.astype(np.float32)

    # ---- export / save / load -----------------------------------------------------------

    def alias_strings(self) -> dict[str, int]:
        """``"site:code" → id`` for every code, plus every token string → its id."""
        out = {t: i for i, t in enumerate(self.tokens)}
        for s, m in self._aliases.items():
            for c, i in m.items():
                key = f"{s}:{c}"
                if out.get(key, i) != i:
                    raise MashInputError(
                        f"{key!r} is both a token (id {out[key]}) and a code of id {i}"
                    )
                out[key] = i
        return out

    def to_hf_tokenizer(self, path: str | Path) -> Path:
        """Write a Hugging Face tokenizer that encodes like :meth:`encode_text`.

        ``path`` names a directory or a ``.json`` file:

        * a directory (any path not ending in ``.json``; created if needed) receives what
          ``PreTrainedTokenizerFast.save_pretrained`` would write: ``tokenizer.json``,
          ``tokenizer_config.json`` (``tokenizer_class`` and the special tokens) and
          ``special_tokens_map.json``. ``transformers.AutoTokenizer.from_pretrained(dir)``
          (or ``PreTrainedTokenizerFast.from_pretrained(dir)``) then has ``pad_token``,
          ``unk_token``, ``cls_token``, ``sep_token`` and ``mask_token`` set;
        * a ``.json`` file is the ``tokenizers`` file itself, loadable by
          ``tokenizers.Tokenizer.from_file``. When it is named ``tokenizer.json`` the two
          companion files are written beside it, so its directory loads with
          ``from_pretrained`` as well (a ``mash pretrain`` checkpoint does). Under another
          name it is written alone; give ``transformers`` the roles yourself:
          ``PreTrainedTokenizerFast(tokenizer_file=path, **HF_SPECIAL_TOKENS)``.

        Input text is whitespace-separated ``site:code`` strings (or token strings:
        concept ids, node ids, specials); a bare code without its ``site:`` prefix is
        ``[UNK]`` (silently: :meth:`encode_text` counts and warns). The tokenizer file
        holds a WordLevel model whose vocab maps every such string to its id, several
        strings to one id where codes share a concept (``tokenizers`` keeps such aliases
        when reading a file, but its own ``Tokenizer.save`` would keep one string per id:
        re-export with this method); a WhitespaceSplit pre-tokenizer; ``[UNK]`` for
        unknown words; the five specials registered as special tokens; no normaliser and
        no post-processor (``[CLS]``/``[SEP]`` are not added). ``tokenizer_config.json``
        sets ``truncation_side="left"``, so truncation keeps the most recent codes of a
        time-ordered text, and ``padding_side="right"`` with ``[PAD]`` (id 0).

        Strings ``tokenizers`` cannot match as one word (containing whitespace or a
        special token) are left out and counted in one warning.

        Parameters
        ----------
        path : str or Path
            The directory, or the tokenizer JSON file (each file written atomically).

        Returns
        -------
        Path
            The tokenizer JSON file written (``path`` or ``path/tokenizer.json``).

        Examples
        --------
        >>> vocab.to_hf_tokenizer("out/tokenizer")  # doctest: +SKIP
        PosixPath('out/tokenizer/tokenizer.json')
        >>> from transformers import AutoTokenizer  # doctest: +SKIP
        >>> tok = AutoTokenizer.from_pretrained("out/tokenizer")  # doctest: +SKIP
        >>> tok("site_A:42840 site_B:I5040")["input_ids"] == vocab.encode_text(
        ...     "site_A:42840 site_B:I5040")  # doctest: +SKIP
        True
        """
        from tokenizers import Tokenizer, models, pre_tokenizers

        p = Path(path)
        is_dir = p.is_dir() or p.suffix.lower() != ".json"
        file = p / _HF_TOKENIZER_FILE if is_dir else p
        strings = self.alias_strings()
        unusable = [s for s in strings if s not in SPECIAL_TOKENS and _hf_unusable(s)]
        for s in unusable:
            del strings[s]
        if unusable:
            warnings.warn(
                f"{len(unusable)} code/token strings contain whitespace or a special token and "
                f"cannot be encoded by the Hugging Face tokenizer (e.g. {unusable[0]!r})",
                stacklevel=2,
            )
        canonical = {t: i for i, t in enumerate(self.tokens) if t in strings}
        tok = Tokenizer(models.WordLevel(canonical, unk_token=SPECIAL_TOKENS[UNK_ID]))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.add_special_tokens(list(SPECIAL_TOKENS))
        spec = json.loads(tok.to_str())
        spec["model"]["vocab"] = dict(sorted(strings.items(), key=lambda kv: (kv[1], kv[0])))
        text = json.dumps(spec, ensure_ascii=False, indent=1)
        check = Tokenizer.from_str(text)
        words = list(strings)
        if check.encode(" ".join(words)).ids != [strings[w] for w in words]:
            raise MashError("the exported tokenizer does not reproduce the vocabulary's ids")
        write_text(file, text)
        if file.name == _HF_TOKENIZER_FILE:
            write_json(file.parent / "tokenizer_config.json", _hf_tokenizer_config())
            write_json(file.parent / "special_tokens_map.json", dict(HF_SPECIAL_TOKENS))
        return file

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready content of :meth:`save`."""
        pts = None
        if self.points is not None:
            pts = [None if np.isnan(r).any() else r.tolist() for r in self.points]
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "mash_version": __version__,
            "tokens": self.tokens,
            "kinds": self.kinds,
            "parents": self.parents.tolist(),
            "labels": self.labels,
            "aliases": self._aliases,
            "points": pts,
            "stats": self.stats,
            "params": self.params,
            "source": self.source,
        }

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as one JSON file (atomically); :meth:`load` reads it back."""
        p = Path(path)
        text = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        write_text(p, text + "\n")
        return p

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a file written by :meth:`save`.

        Raises
        ------
        MashInputError
            If the file is missing, not JSON, not a mash vocabulary, of another format
            version, or inconsistent.
        """
        p = Path(path)
        if not p.is_file():
            raise MashInputError("vocabulary file not found", file=p)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MashInputError(f"not a JSON vocabulary ({type(exc).__name__})", file=p) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise MashInputError(f"not a mash vocabulary (format is not {FORMAT!r})", file=p)
        if data.get("version") != FORMAT_VERSION:
            raise MashInputError(
                f"vocabulary format version {data.get('version')!r}; expected {FORMAT_VERSION}",
                file=p,
            )
        missing = [k for k in ("tokens", "kinds", "parents", "labels", "aliases") if k not in data]
        if missing:
            raise MashInputError(f"vocabulary lacks {', '.join(missing)}", file=p)
        try:
            pts = data.get("points")
            points = None
            if pts is not None:
                d = next((len(r) for r in pts if r is not None), 0)
                points = np.array([[np.nan] * d if r is None else r for r in pts], dtype=np.float64)
            return cls(
                data["tokens"],
                data["kinds"],
                data["parents"],
                data["labels"],
                data["aliases"],
                points,
                stats=data.get("stats"),
                params=data.get("params"),
                source=data.get("source"),
            )
        except MashInputError as exc:
            raise MashInputError(exc.message, file=p) from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise MashInputError(
                f"corrupt vocabulary ({type(exc).__name__}: {exc})", file=p
            ) from exc

    # ---- helpers ------------------------------------------------------------------------

    def _check_id(self, token_id: Any) -> int:
        if (
            isinstance(token_id, bool)
            or not isinstance(token_id, (int, np.integer))
            or not 0 <= token_id < len(self.tokens)
        ):
            raise MashInputError(
                f"not a token id of this vocabulary (0..{len(self.tokens) - 1}): {token_id!r}"
            )
        return int(token_id)

    def _site_prefix(self, word: str) -> str | None:
        """The longest known site name ``s`` with ``word`` starting ``s:`` (None if none)."""
        found = [s for s in self._aliases if word.startswith(f"{s}:")]
        return max(found, key=len) if found else None

    def _site_table(self, site: str) -> dict[str, int]:
        table = self._aliases.get(site)
        if table is None:
            raise MashInputError(f"unknown site {site!r}; known sites: {', '.join(self.sites)}")
        return table


# --------------------------------------------------------------------------------------
# Small helpers
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


def _hf_tokenizer_config() -> dict[str, Any]:
    """``tokenizer_config.json`` of the Hugging Face export (``transformers`` 4 and 5)."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **HF_SPECIAL_TOKENS,
        "model_input_names": ["input_ids", "attention_mask"],
        "padding_side": "right",
        "truncation_side": "left",
        "clean_up_tokenization_spaces": False,
    }


def _hf_unusable(s: str) -> bool:
    """True if ``tokenizers`` would split ``s`` (whitespace, or a special token inside)."""
    return not s or any(ch.isspace() for ch in s) or any(t in s for t in SPECIAL_TOKENS)


def _graph_sha256(graph: nx.DiGraph) -> str:
    """Hex SHA-256 of a graph's nodes, attributes and edges, in a canonical order."""
    h = hashlib.sha256()
    for v in sorted(graph.nodes, key=str):
        h.update(
            json.dumps([str(v), sorted((k, str(a)) for k, a in graph.nodes[v].items())]).encode(
                "utf-8"
            )
        )
    for u, v in sorted(graph.edges, key=lambda e: (str(e[0]), str(e[1]))):
        h.update(f"{u}\0{v}\n".encode())
    return h.hexdigest()


def _check_layout(vocab: Vocabulary) -> None:
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
