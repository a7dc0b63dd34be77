"""The :class:`Hierarchy` result: a ``networkx.DiGraph`` tree, its manifest, save/load/plot.

Node attributes (see ``docs/formats.md``): every node has ``kind`` (``root``,
``group`` — a known group —, ``cluster`` — decoded —, ``concept`` — a concept with
several codes —, ``code`` — a leaf), ``label``, ``depth`` (edges from the root),
``size`` (leaves below), ``norm`` (Euclidean norm of its Poincaré point),
``hyperbolic_depth`` (its distance to the origin) and ``coordinates`` (the point,
space-separated). Leaves add ``site``, ``code``, ``description``, ``concept_id``; concept
nodes ``concept_id``; known groups ``group`` (``source:code``).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from mash._io import atomic_path, read_manifest, remove_stale_temporaries, sha256_file, write_json
from mash.errors import MashInputError

FORMATS = ("graphml", "json")
SUFFIXES = {".graphml": "graphml", ".json": "json"}

#: Characters XML 1.0 does not allow (``Char`` production): C0 controls but tab, LF and
#: CR; surrogates; U+FFFE and U+FFFF.
_XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_forbidden(text: str) -> int:
    r"""Number of characters of ``text`` that XML 1.0 forbids.

    >>> xml_forbidden("a\x0bb\x0c")
    2
    """
    return len(_XML_FORBIDDEN.findall(text))


def xml_clean(text: str) -> str:
    r"""``text`` without the characters XML 1.0 forbids (whitespace controls become a space).

    >>> xml_clean("a\x0bb\x00c")
    'a bc'
    """
    return _XML_FORBIDDEN.sub(lambda m: " " if m.group().isspace() else "", text)


def _xml_safe_graph(graph: nx.DiGraph) -> tuple[nx.DiGraph, int]:
    """A copy of ``graph`` with forbidden characters removed from string attributes.

    Raises
    ------
    MashInputError
        A node id holds such a character (an id cannot change).
    """
    bad = next((v for v in graph.nodes if xml_forbidden(str(v))), None)
    if bad is not None:
        raise MashInputError(f"node id {bad!r} contains a control character that GraphML cannot hold")
    g = graph.copy()
    removed = 0
    for attrs in [d for _, d in g.nodes(data=True)] + [d for *_, d in g.edges(data=True)] + [g.graph]:
        for k, v in attrs.items():
            if isinstance(v, str) and xml_forbidden(v):
                removed += xml_forbidden(v)
                attrs[k] = xml_clean(v)
    return g, removed


def format_of(path: Path, format: str | None) -> str:  # noqa: A002
    """The format to write ``path`` in; a known suffix must agree with ``format``."""
    by_suffix = SUFFIXES.get(path.suffix.lower())
    fmt = format or by_suffix or "graphml"
    if fmt not in FORMATS:
        raise MashInputError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if by_suffix is not None and by_suffix != fmt:
        raise MashInputError(f"--format {fmt} does not match the suffix {path.suffix}; name the file "
                             f"*.{fmt} or drop --format", file=path)
    return fmt


def manifest_path(path: str | Path) -> Path:
    """``h.graphml`` → ``h.manifest.json``: where a hierarchy's manifest is written."""
    p = Path(path)
    return p.with_name(p.stem + ".manifest.json")


def check_tree(graph: nx.DiGraph, source: str | Path = "hierarchy") -> str:
    """Check the tree invariants and return the root's id.

    One root, every other node exactly one parent, no cycles, all nodes reachable, every
    leaf a ``code`` node with ``site`` and ``code``, each (site, code) once.

    Raises
    ------
    MashInputError
        Naming the first violated invariant.
    """
    roots = [v for v, d in graph.in_degree() if d == 0]
    if len(roots) != 1:
        raise MashInputError(f"not a tree: {len(roots)} roots", file=source)
    multi = [v for v, d in graph.in_degree() if d > 1]
    if multi:
        raise MashInputError(f"not a tree: node {multi[0]!r} has {graph.in_degree(multi[0])} parents", file=source)
    if graph.number_of_edges() != graph.number_of_nodes() - 1 or not nx.is_weakly_connected(graph):
        raise MashInputError("not a tree: it has a cycle or is disconnected", file=source)
    seen: set[tuple[str, str]] = set()
    for v, d in graph.out_degree():
        if d:
            continue
        attrs = graph.nodes[v]
        if attrs.get("kind") != "code" or "site" not in attrs or "code" not in attrs:
            raise MashInputError(f"leaf {v!r} is not a (site, code) node", file=source)
        key = (str(attrs["site"]), str(attrs["code"]))
        if key in seen:
            raise MashInputError(f"({key[0]}, {key[1]}) is a leaf twice", file=source)
        seen.add(key)
    return roots[0]


class Hierarchy:
    """A hierarchy over the codes of several sites.

    Parameters
    ----------
    graph : networkx.DiGraph
        A tree, edges parent → child (see the module docstring for attributes).
    manifest : dict, optional
        How it was built (version, parameters, input hashes, counts, timings).
    """

    def __init__(self, graph: nx.DiGraph, manifest: dict[str, Any] | None = None) -> None:
        self.graph = graph
        self.manifest = manifest or {}

    def __repr__(self) -> str:
        n_leaves = sum(1 for _, d in self.graph.out_degree() if d == 0)
        return f"Hierarchy({self.graph.number_of_nodes()} nodes, {n_leaves} leaves)"

    @property
    def root(self) -> str:
        """Id of the root node."""
        return check_tree(self.graph)

    def nodes(self) -> pd.DataFrame:
        """One row per node: ``node``, ``parent`` and every attribute except coordinates."""
        rows = []
        for v, attrs in self.graph.nodes(data=True):
            parents = list(self.graph.predecessors(v))
            row = {"node": v, "parent": parents[0] if parents else ""}
            row.update({k: a for k, a in attrs.items() if k != "coordinates"})
            rows.append(row)
        return pd.DataFrame(rows)

    def leaves(self) -> pd.DataFrame:
        """Columns ``node, site, code, description, concept_id``: one row per (site, code)."""
        frame = self.nodes()
        frame = frame[frame["kind"] == "code"]
        return frame[["node", "site", "code", "description", "concept_id"]].reset_index(drop=True)

    def coordinates(self) -> tuple[list[str], np.ndarray]:
        """Node ids and their Poincaré-ball points, shape (n_nodes, dim)."""
        ids = list(self.graph.nodes)
        pts = [np.array(str(self.graph.nodes[v]["coordinates"]).split(), dtype=np.float64) for v in ids]
        return ids, np.stack(pts)

    def parent_array(self) -> tuple[list[str], np.ndarray]:
        """Node ids and the tree as a parent array, shape (n_nodes,), −1 for the root
        (the representation :mod:`mash.trees` works on)."""
        ids = list(self.graph.nodes)
        index = {v: i for i, v in enumerate(ids)}
        parent = np.full(len(ids), -1, dtype=np.int64)
        for u, v in self.graph.edges:
            parent[index[v]] = index[u]
        return ids, parent

    def ancestors(self, node: str) -> list[str]:
        """Ancestors of ``node``, nearest first (the root last).

        Parameters
        ----------
        node : str
            A node id; a leaf's id is ``"site:code"`` (e.g. ``"site_A:42840"``).

        Returns
        -------
        list of str

        Raises
        ------
        MashInputError
            ``node`` is not in the hierarchy (a bare code without its ``site:``
            prefix is named as such).
        """
        if node not in self.graph:
            hint = ""  # a bare code, which may itself contain ':'
            sites = sorted({s for _, s in self.graph.nodes(data="site") if s})
            owners = [s for s in sites if f"{s}:{node}" in self.graph]
            if owners:
                hint = f"; leaves are named site:code, e.g. {owners[0]}:{node}"
            raise MashInputError(f"node {node!r} is not in the hierarchy{hint}")
        out = []
        cur = list(self.graph.predecessors(node))
        while cur:
            out.append(cur[0])
            cur = list(self.graph.predecessors(cur[0]))
        return out

    # ------------------------------------------------------------------ save / load

    def save(self, path: str | Path, format: str | None = None) -> Path:  # noqa: A002
        """Write the tree and ``<stem>.manifest.json`` beside it, each atomically.

        Parameters
        ----------
        path : str or Path
            Output file; its parent is created if missing.
        format : {"graphml", "json"}, optional
            Default: ``"json"`` for a ``.json`` suffix, else GraphML. A ``.graphml`` or
            ``.json`` suffix must agree with it.

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        MashInputError
            An unknown format, or one that contradicts the suffix.
        """
        p = Path(path)
        fmt = format_of(p, format)
        p.parent.mkdir(parents=True, exist_ok=True)
        mp = manifest_path(p)
        remove_stale_temporaries(p.parent, (p.name, mp.name))  # of a killed earlier run
        mp.unlink(missing_ok=True)  # an old manifest must not describe the new file
        if fmt == "graphml":
            self.to_graphml(p)
        else:
            self.to_json(p)
        if self.manifest:
            write_json(mp, {**self.manifest, "files": {p.name: sha256_file(p)}})
        return p

    def to_graphml(self, path: str | Path) -> None:
        """Write GraphML readable by ``networkx.read_graphml`` (atomically).

        Parameters
        ----------
        path : str or Path
            Nodes keep their attributes (``site``, ``code``, ``description``,
            ``concept_id`` on leaves; ``label``, ``depth``, ``kind`` and the hyperbolic
            norm on every node); edges run parent → child. Characters XML 1.0 forbids
            are removed from attribute values (with a warning counting them).
        """
        g, removed = _xml_safe_graph(self.graph)
        if removed:
            warnings.warn(f"{removed} characters that XML 1.0 cannot hold were removed from {path}",
                          stacklevel=2)
        g.graph.update({"generator": "mash", "mash_version": str(self.manifest.get("mash_version", ""))})
        with atomic_path(path) as tmp:
            nx.write_graphml(g, tmp, encoding="utf-8", prettyprint=True)

    def to_json(self, path: str | Path) -> None:
        """networkx node-link JSON (``edges`` key), written atomically."""
        data = nx.node_link_data(self.graph, edges="edges")
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Hierarchy:
        """Read a GraphML or node-link JSON hierarchy (and its manifest, if beside it).

        Parameters
        ----------
        path : str or Path
            Node-link JSON when the file starts with ``{`` (whatever its suffix), else
            GraphML.

        Returns
        -------
        Hierarchy

        Raises
        ------
        MashInputError
            A missing or unreadable file, or a graph that is not a tree (one root, one
            parent per node, no cycle), or a manifest beside it that describes another
            file (SHA-256).
        """
        p = Path(path)
        if not p.is_file():
            raise MashInputError("hierarchy file not found", file=p)
        try:
            with open(p, "rb") as fh:
                head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
            if head.startswith(b"{"):
                data = json.loads(p.read_text(encoding="utf-8"))
                graph = nx.node_link_graph(data, directed=True, edges="edges")
            else:
                graph = nx.read_graphml(p)
        except Exception as exc:  # malformed XML/JSON of any kind
            raise MashInputError(f"cannot read hierarchy ({type(exc).__name__})", file=p) from exc
        if not isinstance(graph, nx.DiGraph):
            raise MashInputError("not a directed graph", file=p)
        check_tree(graph, p)
        mp = manifest_path(p)
        manifest = read_manifest(mp)
        if manifest:
            files = manifest.get("files")  # written since manifests record their file's hash
            if files is not None and (not isinstance(files, dict) or sha256_file(p) not in files.values()):
                raise MashInputError(f"is not the file {mp.name} describes (sha256 differs): files from two "
                                     "runs, or a run killed while writing; rerun mash build-hierarchy", file=p)
        return cls(graph, manifest)

    def plot(self, path: str | Path, *, label_depth: int = 2, title: str | None = None) -> Path:
        """Draw the Poincaré disk as a PNG (or any format matplotlib writes from the suffix).

        A 2-D projection that keeps every node's distance to the origin; leaves
        coloured by site; the top ``label_depth`` levels labelled.

        Parameters
        ----------
        path : str or Path
        label_depth : int
            Levels below the root whose nodes get their label drawn.
        title : str, optional

        Returns
        -------
        Path
            ``path``.
        """
        from mash.hyperbolic.plot import plot_disk, project_to_disk

        ids, parent = self.parent_array()
        _, pts = self.coordinates()
        labels = [str(self.graph.nodes[v].get("label", "")) for v in ids]
        sites = [str(self.graph.nodes[v].get("site", "")) for v in ids]
        site_names = sorted({s for s in sites if s})
        highlight = np.array([f"code of {s}" if s else "internal node" for s in sites], dtype=object)
        depth = np.array([int(self.graph.nodes[v].get("depth", 0)) for v in ids])
        plot_disk(
            project_to_disk(pts), parent, labels, path,
            depth=depth, label_depth=label_depth, highlight=highlight,
            title=title or f"mash hierarchy: {len(site_names)} sites",
        )
        return Path(path)
