"""Readable names for the internal nodes of a decoded hierarchy.

Each internal node is named after the terms its leaves' descriptions share. Leaf
descriptions are tokenised, clinical shorthand is expanded (:data:`mash.abbrev.GENERIC`:
"NOS", "w/o", "fx", ...) and filler words ("unspecified", "other", "of", "with", ...) are
dropped. For a node :math:`v` with leaf set :math:`L_v` and a term :math:`t`,

.. math::

    \\mathrm{share}_v(t) = \\frac{|\\{l \\in L_v : t \\in l\\}|}{|L_v|}, \\qquad
    \\mathrm{score}_v(t) = \\mathrm{share}_v(t)
        \\log \\frac{1}{\\mathrm{share}_{\\mathrm{root}}(t)},

so a term scores high when most of the node's leaves use it and few leaves overall do.
The label takes the ``max_terms`` best-scoring terms with
:math:`\\mathrm{share}_v(t) \\ge` ``min_share``, plus qualifying terms written right next
to them in most leaves (so that "heart" brings "failure"). Terms that are neighbours in
most of the node's leaves using them form one phrase, in their usual order; the phrase
shared by the most leaves leads and the others follow after commas, in the style of a
classification index ("heart failure, congestive"). A node where no term qualifies is
named after its most typical leaf (largest mean share of its terms, among a few
representatives propagated bottom up): "<description> and related".

Counting without per-node loops over leaves
-------------------------------------------
Leaves are numbered in depth-first order, so the leaves of a node form one contiguous
range ``[start_v, end_v)``. The (leaf, term) incidences are stored sorted by term and
then by leaf, and the number of leaves of ``v`` containing ``t`` is the difference of
two binary searches in that array. Candidate terms are propagated bottom up, one depth
level at a time: a term with share at least ``min_share`` in a node has share at least
``min_share`` in one of its children (the node's share is the size-weighted mean of its
children's), so the candidates of a node are the union of the qualifying terms of its
children, and at most ``mean terms per leaf / min_share`` terms qualify in any node.
The work is therefore proportional to the number of nodes, also for very unbalanced
trees, where a dense node × leaf membership product would be quadratic.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mash.abbrev import GENERIC, tokenize
from mash.errors import MashError
from mash.trees import children_csr, segment_indices, subtree_sums, tree_levels

__all__ = ["STOPWORDS", "name_nodes", "node_terms"]

#: Words that never name a node: English function words and classification filler.
STOPWORDS: frozenset[str] = frozenset(
    """
    a an and or as at by for from in into of on onto the to than then this that these those
    with without within due via per is are be been being not no nor other others otherwise
    unspecified specified unsp unspec nos nec elsewhere classified certain part parts
    site sites mention mentioned any its their such both either neither whether which
    """.split()
)

_EXTRA = 3  # recorded terms beyond max_terms, for telling siblings apart
_REPS = 4  # representative leaves kept per node, for the medoid fallback
_JOIN = 0.6  # neighbours adjacent in this fraction of the leaves using them form a phrase
_GENERIC_TOKENS = {k: tokenize(v) for k, v in GENERIC.items()}


def node_terms(text: str) -> list[str]:
    """The terms of one description, in order of appearance, repeats kept.

    Lower-cases, expands generic clinical abbreviations (:data:`mash.abbrev.GENERIC`),
    splits slash forms that are not abbreviations ("and/or"), drops :data:`STOPWORDS`
    and joins a number to the word before it ("type 2", "stage 3").

    Parameters
    ----------
    text : str
        A code description.

    Returns
    -------
    list of str

    Examples
    --------
    >>> node_terms("Fx of femur w/o displacement, NOS")
    ['fracture', 'femur', 'displacement']
    >>> node_terms("Type 2 DM with CKD stage 3")
    ['type 2', 'diabetes', 'mellitus', 'chronic', 'kidney', 'disease', 'stage 3']
    """
    out: list[str] = []
    prev_kept = False
    for tok in tokenize(text):
        parts = _GENERIC_TOKENS.get(tok)
        if parts is None:
            parts = (tok,) if "/" not in tok else [p for p in tok.split("/") if p]
        for part in parts:
            if part in STOPWORDS:
                prev_kept = False
            elif part.isdigit() and prev_kept:
                out[-1] = f"{out[-1]} {part}"
                prev_kept = False
            else:
                out.append(part)
                prev_kept = True
    return out


def name_nodes(
    parent: np.ndarray,
    texts: list[str],
    *,
    fixed: dict[int, str] | None = None,
    max_terms: int = 3,
    min_share: float = 0.3,
) -> list[str]:
    """Name every node of a tree from its leaves' descriptions.

    Parameters
    ----------
    parent : np.ndarray, shape (n,), int
        Parent of each node, ``-1`` for the root.
    texts : list of str, length n
        Description of each node where it has one. Leaves keep theirs as their label
        (a leaf without one is called ``"node <i>"``); the texts of internal nodes are
        not used — pass those to keep in ``fixed``.
    fixed : dict of int to str, optional
        Labels kept as given (e.g. from a reference tree); they may name leaves too.
    max_terms : int
        Number of terms chosen by score; up to as many neighbouring words may be filled
        in ("systolic congestive *heart* failure").
    min_share : float in (0, 1]
        Smallest fraction of a node's leaves that must use a term for it to appear.

    Returns
    -------
    list of str, length n
        A non-empty label per node. Internal labels read like "heart failure,
        congestive"; where no term reaches ``min_share``, "<description of the most
        typical leaf> and related". Siblings that would get the same label receive the
        next best term that tells them apart, where their recorded terms allow it.

    Raises
    ------
    MashError
        On a malformed tree (see :func:`mash.trees.tree_levels`), a ``texts`` of the wrong length,
        a ``fixed`` key out of range, or bad ``max_terms``/``min_share``.

    Notes
    -----
    Deterministic: score ties are broken by share, typical position, then term. On 50,000
    ICD-10-CM leaves the run takes a few seconds (see the module notes for the method).

    Examples
    --------
    >>> parent = np.array([-1, 0, 0, 1, 1, 2, 2])
    >>> texts = ["", "", "", "Congestive heart failure", "Systolic heart failure, acute",
    ...          "Type 2 diabetes mellitus w/o complications", "Type 1 diabetes mellitus"]
    >>> name_nodes(parent, texts)[1:3]
    ['heart failure, congestive', 'diabetes mellitus, type 1']
    """
    levels = tree_levels(parent)
    parent = np.asarray(parent, dtype=np.int64)
    n = parent.size
    if len(texts) != n:
        raise MashError(f"texts has {len(texts)} entries but the tree has {n} nodes")
    if isinstance(max_terms, bool) or not isinstance(max_terms, int | np.integer) or max_terms < 1:
        raise MashError(f"max_terms must be a positive integer, got {max_terms!r}")
    if not 0.0 < float(min_share) <= 1.0:
        raise MashError(f"min_share must be in (0, 1], got {min_share!r}")
    fixed = dict(fixed or {})
    for k, v in fixed.items():
        if not isinstance(k, int | np.integer) or not 0 <= int(k) < n:
            raise MashError(f"fixed has node {k!r}, out of range [0, {n})")
        if not isinstance(v, str):
            raise MashError(f"fixed label of node {k} must be a str, got {type(v).__name__}")
    fixed = {int(k): v for k, v in fixed.items()}

    child_ptr, children = children_csr(parent)
    n_children = np.diff(child_ptr)
    is_leaf = n_children == 0
    size, start = _leaf_ranges(parent, levels, is_leaf)
    stats = _count_terms(
        levels, child_ptr, children, is_leaf, size, start, texts, max_terms, float(min_share)
    )

    labels = [""] * n
    for v in np.flatnonzero(is_leaf).tolist():
        text = texts[v] if isinstance(texts[v], str) else ""
        labels[v] = text.strip() or f"node {v}"
    chosen: dict[int, list[_Term]] = {}
    extras: dict[int, list[_Term]] = {}
    bounds = np.searchsorted(stats.rec_node, np.arange(n + 1))
    rec_term = stats.rec_term.tolist()
    rec_share = stats.rec_share.tolist()
    rec_pos = stats.rec_pos.tolist()
    rec_qual = stats.rec_qual.tolist()
    for v in np.flatnonzero(~is_leaf).tolist():
        lo, hi = int(bounds[v]), int(bounds[v + 1])
        recs = [_Term(rec_term[i], rec_share[i], rec_pos[i]) for i in range(lo, hi)]
        n_qual = sum(rec_qual[lo:hi])
        chosen[v], extras[v] = _choose(recs, n_qual, max_terms, stats.joined, v)
        if chosen[v]:
            labels[v] = _phrase(chosen[v], stats.joined, v, stats.vocab)
        else:
            desc = stats.medoid_text[v].strip()
            labels[v] = f"{desc} and related" if desc else f"node {v}"
    for v, lab in fixed.items():
        labels[v] = lab
    _disambiguate(labels, parent, chosen, extras, fixed, stats.vocab)
    for v in range(n):
        if not labels[v].strip():
            labels[v] = f"node {v}"
    return labels


# ---------------------------------------------------------------------------- internals


def _leaf_ranges(
    parent: np.ndarray, levels: list[np.ndarray], is_leaf: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Leaves per subtree and first depth-first leaf index of each node, shapes (n,)."""
    size = subtree_sums(parent, is_leaf, levels)
    start = np.zeros(parent.size, dtype=np.int64)
    for lv in levels[1:]:
        # Nodes of a level are grouped by parent: offset each by its earlier siblings.
        excl = np.cumsum(size[lv]) - size[lv]
        first = np.r_[True, parent[lv][1:] != parent[lv][:-1]]
        group_first = np.maximum.accumulate(np.where(first, np.arange(lv.size), 0))
        start[lv] = start[parent[lv]] + excl - excl[group_first]
    return size, start


class _Buffer:
    """An int64 array that grows by doubling (amortised O(1) appends)."""

    def __init__(self, init: np.ndarray) -> None:
        self.data = np.array(init, dtype=np.int64)
        self.size = self.data.size

    def append(self, values: np.ndarray) -> int:
        """Append ``values``; return the offset where they start."""
        need = self.size + values.size
        if need > self.data.size:
            grown = np.empty(max(need, 2 * self.data.size), dtype=np.int64)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        off = self.size
        self.data[off:need] = values
        self.size = need
        return off


class _Term(NamedTuple):
    """A term of a node: vocabulary id, share of the node's leaves, typical position."""

    tid: int
    share: float
    pos: float


class _Joiner:
    """Whether two terms read as one phrase in a node: adjacent in most leaves using them."""

    def __init__(
        self, pair_rows: dict[tuple[int, int], list[int]], start: np.ndarray, size: np.ndarray
    ) -> None:
        self.pair_rows = pair_rows
        self.start = start.tolist()
        self.size = size.tolist()

    def __call__(self, v: int, a: _Term, b: _Term) -> bool:
        """``a`` then ``b`` in at least ``_JOIN`` of the leaves of ``v`` using either."""
        rows = self.pair_rows.get((a.tid, b.tid))
        if not rows:
            return False
        lo = self.start[v]
        both = bisect.bisect_left(rows, lo + self.size[v]) - bisect.bisect_left(rows, lo)
        return both >= _JOIN * max(a.share, b.share) * self.size[v] - 1e-9


@dataclass(frozen=True)
class _Stats:
    """What :func:`_count_terms` finds: ranked term records per node and more."""

    vocab: list[str]
    rec_node: np.ndarray  # (R,) node of each record, increasing
    rec_term: np.ndarray  # (R,) term id
    rec_share: np.ndarray  # (R,) share of the node's leaves using the term
    rec_pos: np.ndarray  # (R,) mean relative position of the term in those leaves
    rec_qual: np.ndarray  # (R,) share >= min_share
    medoid_text: list[str]  # (n,) description of each internal node's most typical leaf
    joined: _Joiner


def _count_terms(
    levels: list[np.ndarray],
    child_ptr: np.ndarray,
    children: np.ndarray,
    is_leaf: np.ndarray,
    size: np.ndarray,
    start: np.ndarray,
    texts: list[str],
    max_terms: int,
    min_share: float,
) -> _Stats:
    """Bottom-up term statistics of every internal node (see the module notes)."""
    n = is_leaf.size
    leaves = np.flatnonzero(is_leaf)
    leaves = leaves[np.argsort(start[leaves], kind="stable")]  # depth-first leaf order
    n_leaves = leaves.size

    # Terms of each leaf (unique, with the relative position of the first occurrence)
    # and its adjacent term pairs.
    cache: dict[str, tuple[list[tuple[str, float]], set[tuple[str, str]]]] = {}
    per_leaf: list[list[tuple[str, float]]] = []
    pairs_of: list[set[tuple[str, str]]] = []
    vocab_set: set[str] = set()
    for v in leaves.tolist():
        text = texts[v] if isinstance(texts[v], str) else ""
        got = cache.get(text)
        if got is None:
            toks = node_terms(text)
            first: dict[str, int] = {}
            for i, tok in enumerate(toks):
                first.setdefault(tok, i)
            denom = max(len(toks) - 1, 1)
            pairs = {(x, y) for x, y in zip(toks, toks[1:], strict=False) if x != y}
            got = ([(tok, i / denom) for tok, i in first.items()], pairs)
            cache[text] = got
            vocab_set.update(first)
        per_leaf.append(got[0])
        pairs_of.append(got[1])
    vocab = sorted(vocab_set)
    n_terms = max(len(vocab), 1)
    term_id = {t: i for i, t in enumerate(vocab)}
    leaf_len = np.array([len(x) for x in per_leaf], dtype=np.int64)
    leaf_ptr = np.zeros(n_leaves + 1, dtype=np.int64)
    np.cumsum(leaf_len, out=leaf_ptr[1:])
    flat = [tp for x in per_leaf for tp in x]
    leaf_terms = np.array([term_id[t] for t, _ in flat], dtype=np.int64)
    leaf_pos = np.array([p for _, p in flat], dtype=np.float64)
    leaf_row = np.repeat(np.arange(n_leaves, dtype=np.int64), leaf_len)

    # Incidences sorted by (term, depth-first leaf): counts are two binary searches.
    keys = leaf_terms * n_leaves + leaf_row
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    cumpos = np.r_[0.0, np.cumsum(leaf_pos[order])]
    df = np.bincount(leaf_terms, minlength=n_terms)
    idf = np.log(n_leaves / np.maximum(df, 1))
    # Depth-first leaf indices (increasing) of each adjacent pair of term ids.
    pair_rows: dict[tuple[int, int], list[int]] = defaultdict(list)
    for row, pairs in enumerate(pairs_of):
        for x, y in pairs:
            pair_rows[(term_id[x], term_id[y])].append(row)

    def count(nodes: np.ndarray, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo = np.searchsorted(keys, terms * n_leaves + start[nodes])
        hi = np.searchsorted(keys, terms * n_leaves + start[nodes] + size[nodes])
        return hi - lo, cumpos[hi] - cumpos[lo]

    # Qualifying terms and representative leaves per node, stored as buffer segments;
    # a leaf's qualifying terms are all its terms and its representative is itself.
    kept = _Buffer(leaf_terms)
    kstart = np.zeros(n, dtype=np.int64)
    klen = np.zeros(n, dtype=np.int64)
    kstart[leaves], klen[leaves] = leaf_ptr[:-1], leaf_len
    reps = _Buffer(np.arange(n_leaves))
    rstart = np.zeros(n, dtype=np.int64)
    rlen = np.zeros(n, dtype=np.int64)
    rstart[leaves], rlen[leaves] = np.arange(n_leaves), 1
    medoid = np.zeros(n, dtype=np.int64)
    records: list[tuple[np.ndarray, ...]] = []
    keep_rank = 2 * max_terms + _EXTRA

    for lv in reversed(levels):
        nodes = lv[~is_leaf[lv]]
        if nodes.size == 0:
            continue
        nodes = np.sort(nodes)
        nch = child_ptr[nodes + 1] - child_ptr[nodes]
        ch = children[segment_indices(child_ptr[nodes], nch)]
        par = np.repeat(nodes, nch)

        # Candidate terms: the union of the children's qualifying terms.
        cand = kept.data[segment_indices(kstart[ch], klen[ch])]
        ukey = np.unique(np.repeat(par, klen[ch]) * n_terms + cand)
        pv, pt = ukey // n_terms, ukey % n_terms
        cnt, psum = count(pv, pt)
        share = cnt / size[pv]
        score = np.round(share * idf[pt], 9)  # equal scores compare equal
        pos = psum / np.maximum(cnt, 1)
        qual = share >= min_share - 1e-12
        qv = pv[qual]
        off = kept.append(pt[qual])
        lo = np.searchsorted(qv, nodes, "left")
        kstart[nodes], klen[nodes] = off + lo, np.searchsorted(qv, nodes, "right") - lo
        # Per node: qualifying first, then by score, share, typical position, term.
        o = np.lexsort((pt, pos, -share, -score, ~qual, pv))
        rank = np.arange(o.size) - np.searchsorted(pv[o], pv[o], "left")
        o = o[rank < keep_rank]
        records.append((pv[o], pt[o], share[o], pos[o], qual[o]))

        # Representatives: the children's, re-scored by token overlap with this node.
        rl = reps.data[segment_indices(rstart[ch], rlen[ch])]
        rv = np.repeat(par, rlen[ch])
        tix = segment_indices(leaf_ptr[rl], leaf_len[rl])
        pair = np.repeat(np.arange(rl.size), leaf_len[rl])
        c2, _ = count(rv[pair], leaf_terms[tix])
        overlap = np.bincount(pair, weights=c2 / size[rv[pair]], minlength=rl.size)
        rscore = np.where(leaf_len[rl] > 0, overlap / np.maximum(leaf_len[rl], 1), -1.0)
        o = np.lexsort((rl, -rscore, rv))
        rank = np.arange(o.size) - np.searchsorted(rv[o], rv[o], "left")
        o = o[rank < _REPS]
        off = reps.append(rl[o])
        rvo = rv[o]
        lo = np.searchsorted(rvo, nodes, "left")
        rstart[nodes], rlen[nodes] = off + lo, np.searchsorted(rvo, nodes, "right") - lo
        medoid[nodes] = rl[o][lo]

    if records:
        cols = [np.concatenate(c) for c in zip(*records, strict=True)]
        o = np.argsort(cols[0], kind="stable")  # one level's records are already grouped
        cols = [c[o] for c in cols]
    else:
        cols = [
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, bool),
        ]
    medoid_text = [""] * n
    for v in np.flatnonzero(~is_leaf).tolist():
        leaf = int(leaves[medoid[v]]) if n_leaves else -1
        medoid_text[v] = texts[leaf] if leaf >= 0 and isinstance(texts[leaf], str) else ""
    return _Stats(vocab, *cols, medoid_text, _Joiner(pair_rows, start, size))


def _choose(
    recs: list[_Term], n_qual: int, max_terms: int, joined: _Joiner, v: int
) -> tuple[list[_Term], list[_Term]]:
    """Split a node's ranked records into label terms and extras.

    The label takes the ``max_terms`` best qualifying terms (the first ``n_qual`` records
    qualify), plus up to ``max_terms`` other qualifying terms, at least as shared as the
    rarest chosen one, that are written next to a chosen term in most leaves ("heart"
    chosen brings "failure"; "systolic congestive *heart* failure"), so that the label
    reads as the descriptions do.
    """
    chosen = recs[: min(n_qual, max_terms)]
    if not chosen:
        return [], recs
    floor = min(t.share for t in chosen) - 1e-12
    out = list(chosen)
    for c in recs[len(chosen) : n_qual]:
        if len(out) - len(chosen) >= max_terms:
            break
        if c.share >= floor and any(
            joined(v, t, c) if t.pos < c.pos else joined(v, c, t) for t in out
        ):
            out.append(c)
    return out, [r for r in recs if r not in out]


def _at(t: _Term) -> tuple[float, int]:
    return (t.pos, t.tid)


def _phrase(terms: list[_Term], joined: _Joiner, v: int, vocab: list[str]) -> str:
    """Write terms as comma-separated phrases, the most shared phrase first.

    Terms written next to each other in most of the node's leaves that use them are
    linked; each linked group is one phrase in typical order ("heart failure"). The
    phrase whose rarest term has the largest share leads, the others follow in typical
    order ("heart failure, congestive").
    """
    if len(terms) == 1:
        return vocab[terms[0].tid]
    terms = sorted(terms, key=_at)
    group = list(range(len(terms)))  # union-find over linked terms

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i in range(len(terms)):
        for j in range(i + 1, len(terms)):
            if root(i) != root(j) and joined(v, terms[i], terms[j]):
                group[root(j)] = root(i)
    phrases: dict[int, list[_Term]] = defaultdict(list)
    for i, t in enumerate(terms):
        phrases[root(i)].append(t)
    parts = list(phrases.values())  # in typical order of their first term
    lead = max(range(len(parts)), key=lambda i: (min(t.share for t in parts[i]), -i))
    order = [lead] + [i for i in range(len(parts)) if i != lead]
    return ", ".join(" ".join(vocab[t.tid] for t in parts[i]) for i in order)


def _disambiguate(
    labels: list[str],
    parent: np.ndarray,
    chosen: dict[int, list[_Term]],
    extras: dict[int, list[_Term]],
    fixed: dict[int, str],
    vocab: list[str],
    rounds: int = 3,
) -> None:
    """Append to generated sibling labels that clash the term that best separates them.

    Among a clashing node's unused recorded extra terms (in rank order) the one the
    fewest clashing siblings also have is appended after a comma; this is repeated up to
    ``rounds`` times. Labels that cannot be separated stay equal.
    """
    options = {
        v: [e.tid for e in extras[v] if e.tid not in {t.tid for t in chosen[v]}] for v in chosen
    }
    nodes = [v for v in range(parent.size) if parent[v] >= 0]
    for _ in range(rounds):
        groups: dict[tuple[int, str], list[int]] = defaultdict(list)
        for v in nodes:
            groups[(int(parent[v]), labels[v])].append(v)
        changed = False
        for members in groups.values():
            editable = [v for v in members if v in options and v not in fixed and options[v]]
            if len(members) < 2 or not editable:
                continue
            seen = Counter(t for v in editable for t in options[v])
            for v in editable:
                opts = options[v]
                best = min(range(len(opts)), key=lambda i: (seen[opts[i]], i))
                labels[v] = f"{labels[v]}, {vocab[opts.pop(best)]}"
                changed = True
        if not changed:
            break
