"""The :class:`Vocabulary`: token ids for a hierarchy's concepts, a tokenizer for sequence models.

This module holds the object, its lookups and encoders and its file format; it composes
the token layout (:mod:`mash.vocab.layout`), the embedding initialisation
(:mod:`mash.vocab.embedding`), the Hugging Face export (:mod:`mash.vocab.hf`) and the
visit encoding (:mod:`mash.visits`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd

from mash._io import sha256_file, write_text
from mash._version import __version__
from mash.errors import MashInputError
from mash.hyperbolic.hierarchy import Hierarchy
from mash.vocab.embedding import embedding_init
from mash.vocab.hf import write_hf_tokenizer
from mash.vocab.layout import (
    CLS_ID,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    build_layout,
    check_layout,
)

if TYPE_CHECKING:  # pragma: no cover
    from mash.visits import EncodedVisits

__all__ = ["Vocabulary", "vocab_fingerprint"]

FORMAT = "mash-vocabulary"
FORMAT_VERSION = 1


def vocab_fingerprint(vocab: Vocabulary | Sequence[str]) -> str:
    """Hex SHA-256 of a vocabulary's token list: what its ids (and embedding rows) mean.

    The one fingerprint of a vocabulary: :attr:`Vocabulary.fingerprint`, the
    ``vocab_sha256`` of a checkpoint's ``model.pt`` (checked when it is loaded) and the
    ``vocab_fingerprint`` of :class:`~mash.sequences.Sequences` stats.

    Parameters
    ----------
    vocab : Vocabulary or sequence of str
        The vocabulary, or its token strings in id order.

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> vocab_fingerprint(["[PAD]", "[UNK]"]) == vocab_fingerprint(("[PAD]", "[UNK]"))
    True
    """
    tokens = list(vocab.tokens if isinstance(vocab, Vocabulary) else vocab)
    return hashlib.sha256(json.dumps(tokens).encode()).hexdigest()


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
        check_layout(self)
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
        layout = build_layout(
            hierarchy,
            src["path"] or "hierarchy",
            counts=counts,
            min_count=min_count,
            harmonize=harmonize,
        )
        return cls(**layout, source=src)

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
        """Hex SHA-256 of the token list (:func:`vocab_fingerprint`): what the ids mean."""
        return vocab_fingerprint(self.tokens)

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
        """Encode and pad the visit sequences of several patients with this vocabulary.

        :func:`mash.visits.encode_visits` (its parameters, result and errors): per
        patient, ``(time, codes)`` visits in; ``EncodedVisits`` with ``codes``
        (P, V, C), ``times`` (P, V), ``mask`` (P, V) and ``code_mask`` (P, V, C) out,
        padded by :meth:`mash.sequences.Sequences.pad`.
        """
        from mash.visits import encode_visits  # not at the top: mash.visits imports mash.vocab

        return encode_visits(self, patients, site, max_visits=max_visits, max_codes=max_codes)

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
        return embedding_init(self.points, self.tokens)

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
        return write_hf_tokenizer(self.alias_strings(), self.tokens, path, stacklevel=3)

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
# The source hierarchy
# --------------------------------------------------------------------------------------


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
