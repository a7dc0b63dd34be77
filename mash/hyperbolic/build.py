"""``build_hierarchy``: an alignment's concepts → one interpretable tree.

Stages (one progress bar each):

1. concept vectors: the mean aligned vector (text ⊕ co-occurrence) of each concept's
   members, and their k nearest neighbours;
2. known groups (:mod:`mash.labels`): the sites' ``parent`` columns and
   ``labels`` sources; concepts no source knows are placed by their labelled
   neighbours where most of them agree;
3. a Poincaré-ball embedding (:mod:`mash.hyperbolic.embed`);
4. decoding by hyperbolic LCA depth inside the known groups
   (:mod:`mash.hyperbolic.decode`), then compression (:mod:`mash.hyperbolic.compress`);
5. leaves: a concept with members from several codes becomes a subtree whose leaves
   are those (site, code)s; internal nodes are named (:mod:`mash.naming`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from mash._io import sha256_file, sha256_text
from mash._version import __version__
from mash.errors import MashError, MashInputError
from mash.hyperbolic.compress import compress_tree
from mash.hyperbolic.decode import (
    KIND_CLUSTER,
    KIND_GROUP,
    KIND_ITEM,
    KIND_ROOT,
    METHODS,
    decode_tree,
)
from mash.hyperbolic.embed import fit_hierarchy_embedding
from mash.hyperbolic.geometry import dist0_from_norm
from mash.hyperbolic.hierarchy import Hierarchy, xml_clean, xml_forbidden
from mash.labels import (
    BUILTIN_SOURCES,
    LabelForest,
    build_label_forest,
    resolve_sources,
    unknown_label_rows,
)
from mash.naming import name_nodes
from mash.progress import Timer, bar
from mash.trees import breadth_first, children_lists, depths, leaf_mask, subtree_sums

KIND_CODE = "code"


@dataclass(frozen=True)
class HierarchyConfig:
    """Parameters of :func:`build_hierarchy` (all recorded in the manifest).

    Attributes
    ----------
    dim : int
        Dimension of the Poincaré ball.
    epochs : int
        Training epochs (each draws as many triplets as there are concepts).
    knn : int
        Neighbours per concept in the similarity graph.
    cooc_weight : float
        Share of the co-occurrence half in concept similarity (codes whose
        co-occurrence is unreliable use text alone).
    label_weight : float
        Share of known-group similarity in the training similarity.
    propagate_share : float
        A concept no source knows joins the deepest group shared by at least this
        (similarity-weighted) share of its labelled neighbours; 1 disables placing.
    max_children : int
        Branching bound of compression.
    gap_quantile : float
        Compression strength (0: binary tree, 1: as flat as the bound allows).
    decode : {"average", "single"}
        Agglomeration by LCA depth (:func:`mash.hyperbolic.decode.linkage_lca`).
    lr, temperature, radius, batch_size : float, float, float, int
        Training settings (:func:`mash.hyperbolic.embed.fit_hierarchy_embedding`).
    seed : int
    """

    dim: int = 32
    epochs: int = 40
    knn: int = 15
    cooc_weight: float = 0.3
    label_weight: float = 0.5
    propagate_share: float = 0.3
    max_children: int = 10
    gap_quantile: float = 0.5
    decode: str = "average"
    lr: float = 0.05
    temperature: float = 0.05
    radius: float = 0.9
    batch_size: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dim < 2:
            raise MashError(f"dim must be at least 2, got {self.dim}")
        if self.knn < 1:
            raise MashError(f"knn must be at least 1, got {self.knn}")
        if self.max_children < 2:
            raise MashError(f"max_children must be at least 2, got {self.max_children}")
        if self.decode not in METHODS:
            raise MashError(f"unknown decoding method {self.decode!r}; valid: {', '.join(METHODS)}")
        for name in ("cooc_weight", "label_weight", "propagate_share", "gap_quantile"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise MashError(f"{name} must be in [0, 1], got {v}")


# ---------------------------------------------------------------------------- vectors


def member_vectors(embeddings: dict[str, np.ndarray], cooc_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-(site, code) vectors as the hierarchy uses them, and their text half alone.

    Each row's text half and co-occurrence half are L2-normalised and weighted
    ``sqrt(1 − cooc_weight)`` and ``sqrt(cooc_weight)`` (text alone where the
    co-occurrence is unreliable).

    Returns
    -------
    member : ndarray, shape (n, d_text + d_co)
    text : ndarray, shape (n, d_text)
        The normalised text half.

    Raises
    ------
    MashInputError
        If a vector has a NaN or infinite entry (the row's site and code are named).
    """
    vec = np.asarray(embeddings["vectors"], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(vec).all(axis=1))
    if bad.size:
        i = int(bad[0])
        raise MashInputError(
            f"embeddings.npz: {bad.size} rows of 'vectors' are not finite (first: row {i + 1}, "
            f"{embeddings['site'][i]}:{embeddings['code'][i]})"
        )
    d_text = np.asarray(embeddings["text"]).shape[1]
    t, c = vec[:, :d_text], vec[:, d_text:]
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    reliable = np.asarray(embeddings.get("cooccurrence_reliable", np.ones(len(vec), bool)), dtype=bool)
    wc = np.where(reliable, np.sqrt(cooc_weight), 0.0)[:, None]
    wt = np.where(reliable, np.sqrt(1.0 - cooc_weight), 1.0)[:, None]
    return np.hstack([wt * t, wc * c]), t


def concept_vectors(alignment: Any, concept_ids: np.ndarray, cooc_weight: float) -> np.ndarray:
    """Mean of each concept's member vectors (:func:`member_vectors`), L2-normalised.

    Returns
    -------
    ndarray, shape (n_concepts, d_text + d_co)
    """
    emb = alignment.embeddings
    member, _ = member_vectors(emb, cooc_weight)
    key = pd.MultiIndex.from_arrays([emb["site"].astype(str), emb["code"].astype(str)])
    con = alignment.concepts
    rows = key.get_indexer(pd.MultiIndex.from_arrays([con["site"].astype(str), con["code"].astype(str)]))
    if (rows < 0).any():
        bad = con.iloc[int(np.flatnonzero(rows < 0)[0])]
        raise MashInputError(
            f"concept {bad['concept_id']} ({bad['site']}, {bad['code']}) has no aligned embedding",
            file="concepts.csv",
        )
    pos = pd.Index(concept_ids).get_indexer(con["concept_id"])
    out = np.zeros((len(concept_ids), member.shape[1]))
    np.add.at(out, pos, member[rows])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def knn_graph(vectors: np.ndarray, k: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours by cosine (self excluded), ties by index.

    Parameters
    ----------
    vectors : ndarray, shape (n, d)
        L2-normalised rows.

    Returns
    -------
    idx : ndarray, shape (n, k')
        ``k' = min(k, n − 1)``, most similar first.
    sim : ndarray, shape (n, k')
    """
    n = len(vectors)
    k = min(k, n - 1)
    idx = np.zeros((n, k), dtype=np.int64)
    sim = np.zeros((n, k))
    for s in range(0, n, chunk):
        block = vectors[s : s + chunk] @ vectors.T
        block[np.arange(len(block)), np.arange(s, s + len(block))] = -np.inf
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        val = np.take_along_axis(block, part, 1)
        order = np.lexsort((part, -val), axis=1)
        idx[s : s + chunk] = np.take_along_axis(part, order, 1)
        sim[s : s + chunk] = np.take_along_axis(val, order, 1)
    return idx, sim


def propagate_labels(
    paths: np.ndarray, neighbours: np.ndarray, sims: np.ndarray, min_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """Place unlabelled concepts in the deepest group most labelled neighbours share.

    Parameters
    ----------
    paths : ndarray, shape (n, P)
        Label paths, root side first, −1 padded.
    neighbours, sims : ndarray, shape (n, k)
    min_share : float
        Similarity-weighted share of the labelled neighbours that must agree.

    Returns
    -------
    paths : ndarray, shape (n, P)
        With placed concepts filled in.
    placed : ndarray of bool, shape (n,)
    """
    out = paths.copy()
    placed = np.zeros(len(paths), dtype=bool)
    if min_share >= 1.0 or not (paths >= 0).any():
        return out, placed
    labelled = (paths >= 0).any(1)
    for i in np.flatnonzero(~labelled):
        nb = neighbours[i][labelled[neighbours[i]]]
        if not len(nb):
            continue
        w = np.maximum(sims[i][labelled[neighbours[i]]], 1e-6)
        total = w.sum()
        best = None
        for t in range(paths.shape[1]):
            vals = paths[nb, t]
            ok = vals >= 0
            if not ok.any():
                break
            score = pd.Series(w[ok]).groupby(vals[ok]).sum()
            top = score.idxmax()
            if score[top] / total < min_share:
                break
            best = t
            keep = vals == top  # follow only the neighbours still on this path
            nb, w = nb[keep], w[keep]
        if best is not None:
            out[i, : best + 1] = paths[nb[0], : best + 1]
            placed[i] = True
    return out, placed


# ---------------------------------------------------------------------------- build


def build_hierarchy(
    alignment: Any,
    labels: list[str] | tuple[str, ...] = (),
    *,
    config: HierarchyConfig | None = None,
    quiet: bool = True,
    **overrides: Any,
) -> Hierarchy:
    """Build one hierarchy over every (site, code) of an alignment.

    Parameters
    ----------
    alignment : Alignment or path
        A :class:`mash.Alignment` or the directory ``mash align`` wrote.
    labels : sequence of str
        Known trees, in priority order: ``"icd10cm"``, ``"ccs"``, ``"parents"`` or CSV
        paths (:mod:`mash.labels`). The sites' ``parent`` columns are used
        in any case (last) when the alignment carries them.
    config : HierarchyConfig, optional
    quiet : bool
        No progress bars.
    **overrides
        Fields of :class:`HierarchyConfig`.

    Returns
    -------
    Hierarchy
        Its ``graph`` is a directed tree, edges parent → child, one leaf per (site, code).

    Raises
    ------
    MashInputError
        An incomplete or corrupt alignment directory, fewer than two concepts, a
        (site, code) listed twice, labels that match no code or name an unknown site.
    MashError
        An unknown hierarchy option in ``overrides``.
    """
    from mash.align.result import Alignment

    t_start = time.perf_counter()
    source_path = None
    if not isinstance(alignment, Alignment):
        source_path = str(alignment)
        alignment = Alignment.load(alignment)
    cfg = config or HierarchyConfig()
    try:
        cfg = replace(cfg, **overrides)
    except TypeError as exc:
        valid = ", ".join(f.name for f in fields(HierarchyConfig))
        raise MashError(f"unknown hierarchy option ({exc}); valid: {valid}") from None
    timer = Timer()
    con = alignment.concepts.reset_index(drop=True)
    if con.empty:
        raise MashInputError("the alignment has no concepts", file="concepts.csv")
    if con.duplicated(["site", "code"]).any():
        bad = con[con.duplicated(["site", "code"])].iloc[0]
        raise MashInputError(f"({bad['site']}, {bad['code']}) listed twice", file="concepts.csv")
    check_concepts_cover_embeddings(con, alignment.embeddings)
    concepts_hash = sha256_text(con.to_csv(index=False))
    con, n_cleaned = clean_concept_text(con)
    concept_ids = np.asarray(sorted(con["concept_id"].unique()), dtype=object)
    n = len(concept_ids)
    if n < 2:
        raise MashInputError("a hierarchy needs at least two concepts", file="concepts.csv")
    warnings_: list[str] = []
    if n_cleaned:
        warnings_.append(f"{n_cleaned} characters that XML 1.0 cannot hold (control characters) were "
                         "removed from descriptions (counted in the manifest)")

    with timer("vectors"):
        vectors = concept_vectors(alignment, concept_ids, cfg.cooc_weight)
        nbr, sim = knn_graph(vectors, cfg.knn)

    with timer("labels"):
        sources = resolve_sources(list(labels), con)
        forest: LabelForest = build_label_forest(con, concept_ids, sources, alignment.reference)
        unknown = {
            src.name: unknown_label_rows(src, con)
            for src in sources
            if src.name not in BUILTIN_SOURCES and not src.name.startswith("parents[")
        }
        forest.stats["label_rows_naming_no_code"] = {k: v for k, v in unknown.items() if v}
        for name, count in forest.stats["label_rows_naming_no_code"].items():
            warnings_.append(f"{count} rows of labels {name} name a code that is in no site (ignored)")
        paths = forest.ancestor_matrix()
        paths, placed = propagate_labels(paths, nbr, sim, cfg.propagate_share)
        item_group = np.array([row[row >= 0][-1] if (row >= 0).any() else -1 for row in paths])
        forest.stats["concepts_placed_by_neighbours"] = int(placed.sum())
        if forest.stats["cycles_broken"]:
            warnings_.append(f"{forest.stats['cycles_broken']} cycles in known groups were cut")
        if forest.stats["disagreements"]:
            warnings_.append(
                f"{forest.stats['disagreements']} concepts had members in different known groups"
                " (the reference site's member decided)"
            )

    with timer("embedding"):
        emb = fit_hierarchy_embedding(
            vectors, nbr, paths, forest.parent,
            dim=cfg.dim, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
            temperature=cfg.temperature, label_weight=cfg.label_weight, radius=cfg.radius,
            seed=cfg.seed, quiet=quiet,
        )

    with timer("decoding"):
        tree = decode_tree(
            emb.items, emb.labels, forest.parent, item_group, method=cfg.decode, quiet=quiet
        )
        parent, keep = compress_tree(
            tree.parent, tree.kind, tree.merge_depth,
            max_children=cfg.max_children, gap_quantile=cfg.gap_quantile,
        )
        kind = tree.kind[keep]
        points = tree.points[keep]

    with timer("naming"):
        graph = _to_graph(con, concept_ids, forest, parent, keep, kind, points, n, quiet)

    timings = {k: round(v, 3) for k, v in timer.seconds.items()}
    timings["total"] = round(time.perf_counter() - t_start, 3)
    manifest = {
        "mash_version": __version__,
        "command": "build-hierarchy",
        "alignment": source_path,
        **alignment_provenance(alignment, source_path),
        "concepts_hash": concepts_hash,
        "labels": list(labels),
        "label_sources": [s.name for s in sources],
        "parameters": asdict(cfg),
        "counts": {**_counts(graph, n, forest), "description_characters_removed": n_cleaned},
        "label_stats": forest.stats,
        "training": {"final_loss": round(emb.losses[-1], 6) if emb.losses else None,
                     "triplets_per_s": round(emb.triplets_per_s, 1)},
        "warnings": warnings_,
        "timings_s": timings,
        "peak_rss_mb": max(timer.peak_rss_mb.values()),
    }
    return Hierarchy(graph, manifest)


def check_concepts_cover_embeddings(con: pd.DataFrame, embeddings: dict[str, np.ndarray]) -> None:
    """Raise unless every aligned (site, code) is in the concept table, and no site name has ``:``.

    A leaf's id is ``site:code``; a ``:`` in a site name would make two leaves' ids
    collide (``a:b`` + ``c`` and ``a`` + ``b:c``). Codes may contain ``:``.

    Raises
    ------
    MashInputError
        Naming the first (site, code) with an embedding but no concept row (an
        incomplete or mixed alignment), or the first site name with a ``:``.
    """
    bad_site = sorted({s for s in con["site"].astype(str) if ":" in s})
    if bad_site:
        raise MashInputError(f"site name {bad_site[0]!r} contains ':', which separates site and code in "
                             "the hierarchy's leaf ids; rename the site (mash align --name)", file="concepts.csv")
    listed = pd.MultiIndex.from_arrays([con["site"].astype(str), con["code"].astype(str)])
    emb = pd.MultiIndex.from_arrays([np.asarray(embeddings["site"]).astype(str),
                                     np.asarray(embeddings["code"]).astype(str)])
    absent = listed.get_indexer(emb) < 0
    if absent.any():
        site, code = emb[int(np.flatnonzero(absent)[0])]
        raise MashInputError(f"{int(absent.sum())} aligned codes are missing, first ({site}, {code}): an "
                             "incomplete or mixed alignment directory; rerun mash align", file="concepts.csv")


def clean_concept_text(con: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Remove from descriptions the characters XML 1.0 forbids; refuse them in identifiers.

    Returns
    -------
    concepts : DataFrame
        ``con`` with cleaned descriptions (:func:`mash.hyperbolic.hierarchy.xml_clean`).
    removed : int
        Characters removed.

    Raises
    ------
    MashInputError
        A site, code or concept id holds such a character (row and column named).
    """
    for col in ("site", "code", "concept_id"):
        bad = [i for i, v in enumerate(con[col].astype(str)) if xml_forbidden(v)]
        if bad:
            value = str(con[col].iloc[bad[0]])
            raise MashInputError(f"{value!r} contains a control character that a hierarchy file cannot hold",
                                 file="concepts.csv", row=bad[0] + 1, column=col)
    text = con["description"].astype(str)
    removed = int(sum(xml_forbidden(v) for v in text))
    if removed:
        con = con.assign(description=[xml_clean(v) for v in text])
    return con, removed


#: Files of an alignment directory that :func:`build_hierarchy` reads.
ALIGNMENT_FILES = ("manifest.json", "mapping.csv", "concepts.csv", "embeddings.npz")


def alignment_provenance(alignment, source_path: str | None) -> dict[str, Any]:
    """What a hierarchy was built from, for its manifest.

    Parameters
    ----------
    alignment : Alignment
    source_path : str or None
        The directory it was loaded from, if any.

    Returns
    -------
    dict
        ``input_hashes``: SHA-256 of each alignment file read (only when loaded from a
        directory); ``alignment_inputs``: the site files the alignment itself read, as its
        manifest records them (``sites[*].input_hashes``); ``alignment_manifest_hash``: a
        hash of the alignment's manifest without its run-dependent parts (timings, text
        cache counters); ``embeddings_hash``: a hash of the aligned vectors used.
    """
    manifest = alignment.manifest or {}
    stable = {k: v for k, v in manifest.items() if k not in ("timings_s", "text_cache", "peak_rss_mb", "files")}
    h = hashlib.sha256()
    for key in sorted(alignment.embeddings):
        arr = np.ascontiguousarray(alignment.embeddings[key])
        h.update(key.encode())
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.astype("U").tobytes() if arr.dtype.kind in "OU" else arr.tobytes())
    out: dict[str, Any] = {
        "alignment_inputs": {site: dict(info.get("input_hashes", {}))
                             for site, info in sorted(manifest.get("sites", {}).items())},
        "alignment_manifest_hash": sha256_text(json.dumps(stable, sort_keys=True, default=str)),
        "embeddings_hash": h.hexdigest(),
    }
    if source_path is not None:
        out["input_hashes"] = {name: sha256_file(Path(source_path) / name) for name in ALIGNMENT_FILES}
    return out


def _counts(graph: nx.DiGraph, n_concepts: int, forest: LabelForest) -> dict[str, int]:
    kinds = pd.Series(dict(graph.nodes(data="kind"))).value_counts().to_dict()
    out_deg = [d for _, d in graph.out_degree() if d > 0]
    depth = max(d for _, d in graph.nodes(data="depth"))
    return {
        "leaves": int(kinds.get(KIND_CODE, 0)),
        "concepts": n_concepts,
        "nodes": graph.number_of_nodes(),
        "known_groups": int(kinds.get(KIND_GROUP, 0)),
        "clusters": int(kinds.get(KIND_CLUSTER, 0)),
        "concept_nodes": int(kinds.get(KIND_ITEM, 0)),
        "max_depth": int(depth),
        "max_children": int(max(out_deg)) if out_deg else 0,
        "mean_children": round(float(np.mean(out_deg)), 2) if out_deg else 0.0,
    }


def _to_graph(
    con: pd.DataFrame,
    concept_ids: np.ndarray,
    forest: LabelForest,
    parent: np.ndarray,
    keep: np.ndarray,
    kind: np.ndarray,
    points: np.ndarray,
    n: int,
    quiet: bool,
) -> nx.DiGraph:
    """Expand concepts into their codes, name internal nodes, build the DiGraph."""
    members = con.groupby("concept_id", sort=True)
    # nodes: 0..M-1 the compressed tree; then one leaf per code of multi-member concepts
    node_parent = list(parent)
    node_kind = list(kind)
    node_point = list(points)
    texts = [""] * len(parent)
    fixed: dict[int, str] = {}
    info: dict[int, dict[str, Any]] = {}
    for new, old in enumerate(keep):
        if old < n:  # a concept
            cid = concept_ids[old]
            rows = members.get_group(cid)
            if len(rows) == 1:
                r = rows.iloc[0]
                node_kind[new] = KIND_CODE
                texts[new] = str(r["description"])
                info[new] = {"site": str(r["site"]), "code": str(r["code"]),
                             "description": str(r["description"]), "concept_id": str(cid)}
            else:
                texts[new] = str(rows.iloc[0]["description"])
                fixed[new] = texts[new]
                info[new] = {"concept_id": str(cid)}
                for _, r in rows.iterrows():
                    leaf = len(node_parent)
                    node_parent.append(new)
                    node_kind.append(KIND_CODE)
                    node_point.append(points[new])
                    texts.append(str(r["description"]))
                    info[leaf] = {"site": str(r["site"]), "code": str(r["code"]),
                                  "description": str(r["description"]), "concept_id": str(cid)}
        elif old < n + forest.n_labels:
            g = old - n
            fixed[new] = forest.texts[g]
            info[new] = {"group": forest.keys[g]}
        elif kind[new] == KIND_ROOT:
            fixed[new] = "All concepts"
    par = np.asarray(node_parent, dtype=np.int64)
    labels = name_nodes(par, texts, fixed=fixed)
    labels = _group_aware_labels(par, node_kind, labels)
    pts = np.stack(node_point)
    norms = np.linalg.norm(pts, axis=1)
    hyp = dist0_from_norm(norms, max_norm=1 - 1e-12)
    # tree depth and leaf counts
    depth = depths(par)
    size = subtree_sums(par, np.asarray([k == KIND_CODE for k in node_kind]))
    ids = []
    counters: dict[str, int] = {}
    for v in range(len(par)):
        if node_kind[v] == KIND_CODE:
            ids.append(f"{info[v]['site']}:{info[v]['code']}")
        elif node_kind[v] == KIND_ROOT:
            ids.append("root")
        else:
            prefix = {KIND_GROUP: "g", KIND_CLUSTER: "k", KIND_ITEM: "c"}[node_kind[v]]
            counters[prefix] = counters.get(prefix, 0) + 1
            ids.append(f"_{prefix}{counters[prefix]}")
    g = nx.DiGraph()
    for v in bar(range(len(par)), "graph", quiet=quiet):
        attrs: dict[str, Any] = {
            "kind": node_kind[v],
            "label": labels[v],
            "depth": int(depth[v]),
            "size": int(size[v]),
            "norm": round(float(norms[v]), 6),
            "hyperbolic_depth": round(float(hyp[v]), 6),
            "coordinates": " ".join(f"{x:.6g}" for x in pts[v]),
        }
        attrs.update(info.get(v, {}))
        g.add_node(ids[v], **attrs)
    for v in range(len(par)):
        if par[v] >= 0:
            g.add_edge(ids[par[v]], ids[v])
    return g


def _short(label: str) -> str:
    """A known group's label without its trailing code range: "Neoplasms (C00-D49)" → "Neoplasms"."""
    head, sep, tail = label.rpartition(" (")
    return head if sep and tail.endswith(")") and len(tail) <= 14 else label


def _group_aware_labels(parent: np.ndarray, kind: list[str], labels: list[str]) -> list[str]:
    """Name clusters that gather known groups after their largest groups.

    A cluster whose leaves lie mostly (≥ half) under the known groups directly below it
    (reached through clusters only) is labelled "G1; G2 + k more" from those groups'
    labels, largest first; other clusters keep their term-based label.
    """
    children = [c.tolist() for c in children_lists(parent)]
    size = subtree_sums(parent, leaf_mask(parent))
    order = breadth_first(parent)
    out = list(labels)
    for v in order:
        if kind[v] != KIND_CLUSTER:
            continue
        groups, stack = [], list(children[v])
        while stack:
            c = stack.pop()
            if kind[c] == KIND_GROUP:
                groups.append(c)
            elif kind[c] == KIND_CLUSTER:
                stack.extend(children[c])
        covered = sum(size[g] for g in groups)
        if not groups or covered * 2 < size[v]:
            continue
        groups.sort(key=lambda g: (-size[g], g))
        names = list(dict.fromkeys(_short(labels[g]) for g in groups))
        text = "; ".join(names[:2])
        if len(names) > 2:
            text += f" + {len(names) - 2} more"
        out[v] = text
    return out
