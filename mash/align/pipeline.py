"""``mash.align``: from loaded sites to an :class:`~mash.align.result.Alignment`.

Stages (one progress bar each; wall time of each in the manifest):

1. text: sentence embeddings of raw and normalised descriptions (cached), TF-IDF
   character n-grams and words of normalised descriptions;
2. co-occurrence: per site, windowed counts → SPPMI → truncated SVD (:mod:`mash.cooccur`);
3. per non-reference site, on candidate pairs only (:mod:`mash.align.candidates`:
   blockwise top-k search per view, never a dense ``n_query × n_reference`` matrix):
   anchors (file, shared code strings, mutual text matches), abbreviations learned
   from anchors, Procrustes (or a neural OT map) on co-occurrence vectors,
   co-occurrence anchors, a listwise scorer over all views, refinement rounds with
   the scorer's own confident mutual matches, then unbalanced optimal transport over
   the candidate graph (:mod:`mash.align.transport`) as a further view;
4. top-k candidates with calibrated scores, ``p_no_match`` per code
   (:mod:`mash.align.nomatch`); unified concepts.
"""

from __future__ import annotations

import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mash import abbrev
from mash._version import __version__
from mash.align.anchors import Anchors, read_anchor_file, shared_code_anchors
from mash.align.candidates import KnnResult, knn_blockwise, pair_csls
from mash.align.concepts import unify_concepts
from mash.align.domains import domain_groups, domain_summary, open_missing_domains, same_group
from mash.align.neural_ot import fit_neural_ot
from mash.align.nomatch import FEATURES as NO_MATCH_FEATURES
from mash.align.nomatch import em_prior, fit_no_match, query_features
from mash.align.pairs import (
    PairSet,
    build_pairs,
    mutual_best,
    segment_logsumexp,
    segment_softmax,
    segment_topk,
)
from mash.align.procrustes import procrustes
from mash.align.result import Alignment, mapping_frame
from mash.align.scoring import ScorerFit, fit_listwise
from mash.align.stems import medication_stems
from mash.align.transport import TransportResult, sparse_unbalanced_sinkhorn
from mash.align.values import VALUE_FEATURES, value_features, value_profiles
from mash.cooccur import cooccurrence_embeddings
from mash.errors import MashInputError
from mash.progress import Timer, bar, steps
from mash.sites import Site
from mash.text import TextEmbedder, fit_tfidf


class AlignmentWarning(UserWarning):
    """Something in an alignment went less well than intended; the manifest has details."""


TEXT_VIEWS = ("text_raw", "text_norm", "char", "word")
BASE_FEATURES = [*TEXT_VIEWS, "cooc", "cooc_missing", "freq_gap", "cooc_gated"]
TRANSPORTS = ("unbalanced", "none")
TRANSPORT_MASSES = ("frequency", "uniform")


@dataclass
class AlignConfig:
    """Parameters of :func:`align` (all recorded in the manifest).

    Attributes
    ----------
    text_model : str, optional
        Local sentence-transformers model directory; ``None`` = bundled all-MiniLM-L6-v2.
    cache_dir : str, optional
        Embedding cache root (default ``$MASH_CACHE_DIR`` or ``~/.cache/mash``).
    window_days : float
        Co-occurrence window: two codes of a subject within this many days co-occur.
    sppmi_shift : float
        SPPMI shift ``k`` (PMI − log k).
    text_dim : int, optional
        Size of the text half of the aligned vectors (PCA of the sentence embeddings);
        ``None`` keeps the model's size.
    cooc_dim : int
        Size of the co-occurrence half (SVD rank).
    min_events : int
        Codes with fewer events have no reliable co-occurrence vector and lean on text
        (counted in the manifest).
    top_k : int
        Candidates per code in ``mapping.csv``.
    candidates : int
        Candidates per code from each view (text raw, text normalised, character
        n-grams, words, co-occurrence); their union is what is scored (≥ ``top_k``).
    block_rows : int, optional
        Query rows per block of the nearest-neighbour search (memory ≈ 3 ×
        ``block_rows × n_reference × 4`` bytes); ``None`` = a 256 MB block.
    csls_k : int
        Neighbourhood size of CSLS.
    anchor_margin : float
        Minimum margin of a mutual text match to become an anchor.
    shared_code_overlap : float
        Fraction of shared code strings above which identical codes are anchors.
    refine_rounds : int
        Rounds of anchor refinement with the fitted scorer.
    ot_steps, ot_reg, ot_anchor_weight : int, float, float
        Neural OT map of the co-occurrence vectors: training steps (``0`` =
        orthogonal Procrustes only), entropic regularisation, anchor-loss weight.
    transport : {"unbalanced", "none"}
        Unbalanced optimal transport between the two sites' codes over the candidate
        pairs, its log-plan a scorer feature (:mod:`mash.align.transport`).
    transport_reg, transport_reg_m : float
        Entropic regularisation ε and marginal relaxation τ of that transport, on a
        cost of minus the scorer's logit.
    transport_mass : {"frequency", "uniform"}
        Code masses: event frequencies (+1) or uniform.
    transport_iters : int
        Sinkhorn iterations at most.
    concept_threshold : float
        Minimum score of a mutual best match to merge codes into one concept (and
        ``p_no_match`` below 0.5).
    cross_domain : bool
        Let candidates cross domains. By default a code's candidates are reference
        codes of its own ``domain`` (codes without a domain, or sites without the
        column, match every domain).
    use_values : bool
        Add the lab-value features of :mod:`mash.align.values` (shape, scale, unit,
        missing flag) when at least one site has codes with value profiles.
    pool_medications : bool
        Count co-occurrence per drug rather than per formulary entry: medication codes of
        a site whose names agree up to the first number (``LIPITOR 20 mg PO TAB``,
        ``LIPITOR 40 mg PO TAB``) share one co-occurrence vector
        (:mod:`mash.align.stems`); counted in the manifest.
    seed : int
    quiet : bool
    """

    text_model: str | None = None
    cache_dir: str | None = None
    window_days: float = 30.0
    sppmi_shift: float = 1.0
    text_dim: int | None = None
    cooc_dim: int = 64
    min_events: int = 20
    top_k: int = 10
    candidates: int = 50
    block_rows: int | None = None
    csls_k: int = 10
    anchor_margin: float = 0.05
    shared_code_overlap: float = 0.3
    refine_rounds: int = 2
    ot_steps: int = 0
    ot_reg: float = 0.05
    ot_anchor_weight: float = 1.0
    transport: str = "unbalanced"
    transport_reg: float = 1.0
    transport_reg_m: float = 1.0
    transport_mass: str = "frequency"
    transport_iters: int = 300
    concept_threshold: float = 0.5
    cross_domain: bool = False
    use_values: bool = True
    pool_medications: bool = True
    seed: int = 0
    quiet: bool = False

    def validate(self) -> None:
        """Raise :class:`MashInputError` (one line, naming the field) on a bad value."""

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise MashInputError(f"{name} must be {what}, got {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int | np.integer) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) and np.isfinite(v)

        for name in ("text_model", "cache_dir"):
            need(getattr(self, name) is None or isinstance(getattr(self, name), str | Path), name, "a path or None")
        for name, low in (("cooc_dim", 1), ("min_events", 0), ("top_k", 1), ("candidates", 1), ("csls_k", 1),
                          ("refine_rounds", 0), ("ot_steps", 0), ("transport_iters", 1), ("seed", 0)):
            need(is_int(getattr(self, name)) and getattr(self, name) >= low, name, f"an integer ≥ {low}")
        for name in ("text_dim", "block_rows"):
            v = getattr(self, name)
            need(v is None or (is_int(v) and v >= 1), name, "an integer ≥ 1 or None")
        need(self.candidates >= self.top_k, "candidates", f"≥ top_k ({self.top_k})")
        for name in ("window_days", "ot_reg", "transport_reg", "transport_reg_m"):
            need(is_num(getattr(self, name)) and getattr(self, name) > 0, name, "a number > 0")
        need(is_num(self.sppmi_shift) and self.sppmi_shift >= 1, "sppmi_shift", "a number ≥ 1")
        for name in ("anchor_margin", "ot_anchor_weight"):
            need(is_num(getattr(self, name)) and getattr(self, name) >= 0, name, "a number ≥ 0")
        for name in ("shared_code_overlap", "concept_threshold"):
            need(is_num(getattr(self, name)) and 0 <= getattr(self, name) <= 1, name, "a number in [0, 1]")
        need(self.transport in TRANSPORTS, "transport", f"one of {', '.join(TRANSPORTS)}")
        need(self.transport_mass in TRANSPORT_MASSES, "transport_mass", f"one of {', '.join(TRANSPORT_MASSES)}")
        for name in ("quiet", "cross_domain", "use_values", "pool_medications"):
            need(isinstance(getattr(self, name), bool), name, "True or False")


@dataclass
class _SiteView:
    """Everything computed once per site."""

    site: Site
    text_raw: np.ndarray  # (n, d) sentence embeddings of raw descriptions
    cooc: np.ndarray  # (n, d_co)
    reliable: np.ndarray  # (n,) bool
    events: np.ndarray  # (n,) int64
    stats: dict[str, Any] = field(default_factory=dict)


class _PairAligner:
    """Aligns one query site to the reference on candidate pairs: views, anchors, the
    co-occurrence map, transport, the scorer and ``p_no_match``."""

    def __init__(self, query: _SiteView, ref: _SiteView, embedder: TextEmbedder, cfg: AlignConfig,
                 file_anchors: Anchors, ref_norm: list[str], ref_norm_emb: np.ndarray) -> None:
        self.q, self.r, self.embedder, self.cfg = query, ref, embedder, cfg
        self.file_anchors = file_anchors
        self.ref_norm, self.ref_norm_emb = ref_norm, ref_norm_emb
        self.mats: dict[str, tuple[Any, Any]] = {}
        self.knn: dict[str, KnnResult] = {}
        self.pairs: PairSet | None = None
        self.feats: dict[str, np.ndarray] = {}
        self.log: dict[str, Any] = {}
        found = None if cfg.cross_domain else domain_groups(query.site.codes, ref.site.codes)
        self.values = None
        if cfg.use_values:
            vq, vr = value_profiles(query.site), value_profiles(ref.site)
            if vq.has_profile.any() or vr.has_profile.any():
                self.values = (vq, vr)
                self.log["values"] = {"query_codes_with_profiles": int(vq.has_profile.sum()),
                                      "reference_codes_with_profiles": int(vr.has_profile.sum())}
        self.groups: tuple[np.ndarray, np.ndarray] | None = None
        if found is not None:
            self.groups, unmatched = open_missing_domains(*found)
            if unmatched:
                self.log["codes_of_domains_absent_from_reference"] = unmatched
                warnings.warn(f"{sum(unmatched.values())} codes of site {query.site.name!r} are in domains the "
                              f"reference lacks ({', '.join(sorted(unmatched))}): their candidates come from every "
                              "domain", AlignmentWarning, stacklevel=2)

    # -- views -------------------------------------------------------------------
    def _search(self, name: str, qm, rm) -> None:
        cfg = self.cfg
        self.mats[name] = (qm, rm)
        self.knn[name] = knn_blockwise(qm, rm, cfg.candidates, cfg.csls_k, block_rows=cfg.block_rows,
                                       groups=self.groups)

    def _text_views(self, learned: dict[str, str]) -> list[str]:
        q_desc = self.q.site.codes["description"].tolist()
        if not hasattr(self, "prefixes"):  # depends on the two vocabularies only
            self.prefixes = abbrev.learn_prefixes(q_desc, self.r.site.codes["description"].tolist())
        q_norm = [abbrev.normalize(t, learned, abbrev.GENERIC, self.prefixes) for t in q_desc]
        self.q_norm_emb = self.embedder.encode(q_norm)
        if "text_raw" not in self.knn:  # raw descriptions do not change between passes
            self._search("text_raw", self.q.text_raw, self.r.text_raw)
        self._search("text_norm", self.q_norm_emb, self.ref_norm_emb)
        if not hasattr(self, "tfidf"):  # vocabulary and IDF fitted once, on the first pass
            corpus = q_norm + self.ref_norm
            self.tfidf = {"char": fit_tfidf(corpus, analyzer="char_wb", ngram_range=(3, 5)),
                          "word": fit_tfidf(corpus, analyzer="word", ngram_range=(1, 2))}
            self.ref_tfidf = {k: v.transform(self.ref_norm).tocsr() for k, v in self.tfidf.items()}
        for name in ("char", "word"):
            self._search(name, self.tfidf[name].transform(q_norm).tocsr(), self.ref_tfidf[name])
        return q_norm

    def _cooc_view(self, anchors: Anchors) -> None:
        """Fit the co-occurrence map on anchors and search with the mapped vectors."""
        cfg = self.cfg
        relq, relr = np.flatnonzero(self.q.reliable), np.flatnonzero(self.r.reliable)
        both = self.q.reliable[anchors.query] & self.r.reliable[anchors.reference]
        aq, ar = anchors.query[both], anchors.reference[both]
        n_min = max(10, cfg.cooc_dim // 2)
        self.mapped_cooc = np.zeros_like(self.q.cooc)
        if len(aq) < n_min or len(relr) == 0:
            self.log["cooc_used"] = False
            self.log["cooc_reason"] = f"{len(aq)} anchors with reliable co-occurrence on both sides (< {n_min})"
            self.knn.pop("cooc", None)
            return
        w0 = procrustes(self.q.cooc[aq], self.r.cooc[ar])
        if cfg.ot_steps > 0:
            pos_q = np.full(len(self.q.reliable), -1, np.int64)
            pos_q[relq] = np.arange(len(relq))
            pos_r = np.full(len(self.r.reliable), -1, np.int64)
            pos_r[relr] = np.arange(len(relr))
            res = fit_neural_ot(self.q.cooc[relq], self.r.cooc[relr], (pos_q[aq], pos_r[ar]), w0,
                                steps=cfg.ot_steps, reg=cfg.ot_reg, anchor_weight=cfg.ot_anchor_weight, seed=cfg.seed)
            self.mapped_cooc[relq] = res.transform(self.q.cooc[relq])
            self.log["ot_loss_first_last"] = [res.losses[0], res.losses[-1]]
            self.log["ot_sinkhorn_unconverged_steps"] = res.sinkhorn_unconverged
            if res.sinkhorn_unconverged:
                warnings.warn(f"neural OT: the minibatch Sinkhorn did not converge in {res.sinkhorn_unconverged} "
                              f"of {cfg.ot_steps} steps (tolerance 1e-6, 200 iterations); see the manifest",
                              AlignmentWarning, stacklevel=2)
        else:
            y = self.q.cooc[relq] @ w0
            self.mapped_cooc[relq] = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        self.log["cooc_used"] = True
        self.log["cooc_map"] = "neural OT" if cfg.ot_steps > 0 else "procrustes"
        self.log["cooc_anchor_pairs"] = int(len(aq))
        groups = None if self.groups is None else (self.groups[0][relq], self.groups[1][relr])
        sub = knn_blockwise(self.mapped_cooc[relq], self.r.cooc[relr], cfg.candidates, cfg.csls_k,
                            block_rows=cfg.block_rows, groups=groups)
        rad_q = np.zeros(len(self.q.reliable), np.float32)
        rad_q[relq] = sub.radius_query
        rad_r = np.zeros(len(self.r.reliable), np.float32)
        rad_r[relr] = sub.radius_reference
        index = np.full((len(self.q.reliable), sub.index.shape[1]), -1, np.int64)
        index[relq] = np.where(sub.index >= 0, relr[np.maximum(sub.index, 0)], -1)
        self.knn["cooc"] = KnnResult(index, np.zeros(0, np.float32), rad_q, rad_r)
        self.mats["cooc"] = (self.mapped_cooc, self.r.cooc)

    def _view_values(self, name: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        qm, rm = self.mats[name]
        vals = pair_csls(qm, rm, rows, cols, self.knn[name])
        if name == "cooc":
            vals[~(self.q.reliable[rows] & self.r.reliable[cols])] = 0.0
        return vals

    def _update_pairs(self, extra: Anchors, views: tuple[str, ...]) -> None:
        """Add the candidates of ``views`` and ``extra`` pairs to the pair set; compute
        every feature on new pairs (text views are carried over for old ones) and the
        co-occurrence features on all pairs."""
        n_q, n_r = self.q.site.n_codes, self.r.site.n_codes
        qs, rs = [], []
        for name in views:
            if name in self.knn:
                idx = self.knn[name].index
                rows = np.repeat(np.arange(n_q), idx.shape[1])
                ok = idx.ravel() >= 0
                qs.append(rows[ok])
                rs.append(idx.ravel()[ok])
        qs.append(extra.query)
        rs.append(extra.reference)
        old = self.pairs
        if old is not None:
            qs.append(old.query)
            rs.append(old.reference)
        new = build_pairs(qs, rs, n_q, n_r)
        fresh = np.ones(len(new), bool)
        pos = None
        if old is not None:
            pos = new.find(old.query, old.reference)
            fresh[pos] = False
        for name in TEXT_VIEWS:
            vals = np.empty(len(new), np.float32)
            if pos is not None:
                vals[pos] = self.feats[name]
            vals[fresh] = self._view_values(name, new.query[fresh], new.reference[fresh])
            self.feats[name] = vals
        self.pairs = new
        self._cooc_features()

    def _cooc_features(self) -> None:
        p = self.pairs
        missing = ~(self.q.reliable[p.query] & self.r.reliable[p.reference])
        self.feats["cooc_missing"] = missing.astype(np.float32)
        self.feats["cooc"] = (self._view_values("cooc", p.query, p.reference) if "cooc" in self.knn
                              else np.zeros(len(p), np.float32))
        fq = np.log((self.q.events + 1) / (self.q.events.sum() + 1))
        fr = np.log((self.r.events + 1) / (self.r.events.sum() + 1))
        self.feats["freq_gap"] = -np.abs(fq[p.query] - fr[p.reference]).astype(np.float32)
        # co-occurrence gated by how little the text says about the query: 1 − its best
        # text similarity over its candidates. A linear score cannot otherwise lean on
        # co-occurrence more for a brand-named drug (no text clue) than for a code whose
        # name matches, as its weights are shared by all queries
        text = self._text_score()
        best = np.full(self.q.site.n_codes, -np.inf, np.float32)
        np.maximum.at(best, p.query, text)
        gate = np.clip(1.0 - best, 0.0, 1.0)[p.query]
        self.feats["cooc_gated"] = (self.feats["cooc"] * gate).astype(np.float32)
        if self.values is not None:  # missing values: filled and flagged, as cooc_missing
            vf = value_features(*self.values, p.query, p.reference)
            fill = {"value_shape": 0.0, "value_scale": 0.0, "value_unit": 0.5}
            for name in VALUE_FEATURES:
                self.feats[name] = np.nan_to_num(vf[name], nan=fill.get(name, 0.0)).astype(np.float32)
            self.log["values"]["pairs_with_value_features"] = int((vf["value_missing"] == 0).sum())

    def _text_score(self) -> np.ndarray:
        return sum(self.feats[n] for n in TEXT_VIEWS) / len(TEXT_VIEWS)

    def _mutual(self, score: np.ndarray, source: str, margin: float, mask: np.ndarray | None = None) -> Anchors:
        s = score if mask is None else np.where(mask, score, -np.inf)
        rows, cols, _ = mutual_best(s, self.pairs, margin)
        return Anchors(rows.astype(np.int64), cols.astype(np.int64), np.full(len(rows), source, dtype=object))

    def _x(self, names: list[str]) -> np.ndarray:
        return np.column_stack([self.feats[n] for n in names]).astype(np.float32)

    def _fit(self, names: list[str], anchors: Anchors, prior: np.ndarray | None) -> ScorerFit:
        at = self.pairs.find(anchors.query, anchors.reference)
        return fit_listwise(self._x(names), self.pairs, at[at >= 0], prior=prior, seed=self.cfg.seed)

    # -- transport ---------------------------------------------------------------
    def _masses(self) -> tuple[np.ndarray, np.ndarray]:
        if self.cfg.transport_mass == "uniform":
            a, b = np.ones(self.q.site.n_codes), np.ones(self.r.site.n_codes)
        else:
            a, b = self.q.events + 1.0, self.r.events + 1.0
        return a / a.sum(), b / b.sum()

    def _transport(self, logits: np.ndarray, pairs: PairSet) -> tuple[np.ndarray, np.ndarray, TransportResult]:
        """Transport feature (log of the plan over the code's mass) on ``pairs`` and the
        fraction of each query's mass placed."""
        a, b = self._masses()
        # cost −log p(c | q): the kernel is the scorer's softmax, rebalanced by the marginals
        cost = segment_logsumexp(logits.astype(np.float64), pairs.ptr)[pairs.query] - logits
        res = sparse_unbalanced_sinkhorn(pairs.query, pairs.reference, cost, a, b,
                                         reg=self.cfg.transport_reg, reg_m=self.cfg.transport_reg_m,
                                         max_iter=self.cfg.transport_iters)
        feat = np.log(np.maximum(res.plan / a[pairs.query], 1e-30)).astype(np.float32)
        return np.maximum(feat, -50.0), res.row_mass / a, res

    # -- the whole pair ----------------------------------------------------------
    @staticmethod
    def n_steps(cfg: AlignConfig) -> int:
        """Calls of ``step`` in :meth:`run`: text, abbreviations, co-occurrence, each
        scorer round, the final scorer, ``p_no_match``."""
        return 3 + (cfg.refine_rounds + 1) + 2

    def run(self, shared: Anchors, step: Callable[[str], None] = lambda label: None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Align; returns top-k reference rows (n_q, k), their scores (n_q, k) and
        ``p_no_match`` (n_q,). ``step(label)`` is called after each of
        :meth:`n_steps` phases (for a progress bar)."""
        cfg = self.cfg
        q_desc = self.q.site.codes["description"].tolist()
        r_desc = self.r.site.codes["description"].tolist()
        if self.groups is not None:  # identical code strings in two domains are not the same thing
            keep = same_group(self.groups, shared.query, shared.reference)
            shared = Anchors(shared.query[keep], shared.reference[keep], shared.source[keep])
        base = self.file_anchors.union(shared)
        self._text_views({})
        self._update_pairs(base, TEXT_VIEWS)
        text_anchors = base.union(self._mutual(self._text_score(), "text", cfg.anchor_margin))
        step("text views")
        # abbreviations learned from anchor descriptions, then the text views again
        learned = abbrev.learn_from_pairs(
            (q_desc[i], r_desc[j]) for i, j in zip(text_anchors.query, text_anchors.reference, strict=True)
        )
        self.log["learned_abbreviations"] = len(learned)
        self._text_views(learned)
        self.pairs = None  # the text candidates changed: rebuild from the second pass
        self._update_pairs(base, TEXT_VIEWS)
        anchors = base.union(self._mutual(self._text_score(), "text", cfg.anchor_margin))
        step("abbreviations")
        self._cooc_view(anchors)
        self._update_pairs(anchors, ("cooc",))
        if self.log.get("cooc_used"):
            rel = self.feats["cooc_missing"] == 0
            anchors = anchors.union(self._mutual(self.feats["cooc"], "cooccurrence", cfg.anchor_margin, rel))
        step("co-occurrence map")
        names = list(BASE_FEATURES) + (list(VALUE_FEATURES) if self.values is not None else [])
        fit = None
        for round_ in range(cfg.refine_rounds + 1):
            fit = self._fit(names, anchors, None if fit is None else fit.weights)
            refined = self._mutual(self._x(names) @ fit.weights, "refined", cfg.anchor_margin)
            anchors = base.union(refined)
            self._cooc_view(anchors)
            self._update_pairs(anchors, ("cooc",))
            step(f"refinement {round_ + 1}/{cfg.refine_rounds + 1}")
        fit = self._fit(names, anchors, fit.weights)
        logits = self._x(names) @ fit.weights
        self.log["pairs"] = {"total": len(self.pairs), "per_code_mean": round(float(self.pairs.sizes.mean()), 1),
                             "per_code_max": int(self.pairs.sizes.max()), "candidates_per_view": cfg.candidates}
        transported = np.ones(self.q.site.n_codes)
        self._base_w = fit.weights.copy()
        if cfg.transport == "unbalanced":
            self.feats["transport"], transported, tres = self._transport(logits, self.pairs)
            names = [*names, "transport"]
            fit = self._fit(names, anchors, np.append(fit.weights, 1.0).astype(np.float32))
            logits = self._x(names) @ fit.weights
            self.log["transport"] = {"converged": tres.converged, "iterations": tres.iterations,
                                     "error": float(tres.error), "mass_placed": round(float(tres.row_mass.sum()), 4)}
            if not tres.converged:
                warnings.warn(f"unbalanced Sinkhorn did not converge in {tres.iterations} iterations "
                              f"(error {tres.error:.2e}); see the manifest", AlignmentWarning, stacklevel=2)
        step("scorer" + (" and transport" if cfg.transport == "unbalanced" else ""))
        self.log["anchors"] = anchors.counts()
        self.log["scorer_weights"] = dict(zip(names, [float(w) for w in fit.weights], strict=True))
        self.log["scorer_fit"] = {"converged": fit.converged, "iterations": fit.iterations,
                                  "loss": None if np.isnan(fit.loss) else round(fit.loss, 6), "anchors": fit.n_anchors}
        if fit.n_anchors == 0:
            warnings.warn("no anchor pairs: the scorer kept its starting weights (all ones); scores are "
                          "uncalibrated", AlignmentWarning, stacklevel=2)
        elif not fit.converged:
            warnings.warn(f"the scorer fit did not converge in {fit.iterations} iterations; see the manifest",
                          AlignmentWarning, stacklevel=2)
        prob = segment_softmax(logits, self.pairs.ptr)
        k = min(cfg.top_k, self.r.site.n_codes)
        if k < cfg.top_k:
            self.log["top_k_used"] = k
            warnings.warn(f"top_k {cfg.top_k} is more than the reference's {k} codes: at most {k} candidates per "
                          "code", AlignmentWarning, stacklevel=2)
        top = segment_topk(logits, self.pairs, k)
        idx = np.where(top >= 0, self.pairs.reference[np.maximum(top, 0)], -1)
        scores = np.where(top >= 0, prob[np.maximum(top, 0)], np.nan).astype(np.float32)
        p_none = self._no_match(names, fit.weights, logits, transported, anchors)
        # confident one-to-one matches for concepts: mutual best, probability ≥ threshold,
        # and more likely than not to have a counterpart
        rows, cols, _ = mutual_best(logits, self.pairs, 0.0)
        at = self.pairs.find(rows, cols)
        ok = (prob[at] >= cfg.concept_threshold) & (p_none[rows] < 0.5)
        self.matches = (rows[ok], cols[ok])
        step("p_no_match")
        self.log["domains"] = domain_summary(self.q.site.codes, self.r.site.codes, idx, scores, p_none,
                                             self.matches[0])
        return idx, scores, p_none

    def _no_match(self, names: list[str], weights: np.ndarray, logits: np.ndarray, transported: np.ndarray,
                  anchors: Anchors) -> np.ndarray:
        """``p_no_match`` per query code (:mod:`mash.align.nomatch`)."""
        cfg = self.cfg
        log_events = np.log1p(self.q.events.astype(np.float64))
        feats_all = query_features(logits, self.pairs, transported, log_events)
        rng = np.random.default_rng(cfg.seed)
        held = rng.random(len(anchors)) < 0.5
        gone = np.zeros(self.r.site.n_codes, bool)
        gone[anchors.reference[held]] = True
        keep = ~gone[self.pairs.reference]
        sub = self.pairs.subset(keep)
        x = self._x(names)[keep]
        if "transport" in names:  # the plan is recomputed without the held-out codes
            nb = len(self._base_w)
            feat_t, transported_h, _ = self._transport(x[:, :nb] @ self._base_w, sub)
            x[:, names.index("transport")] = feat_t
        else:
            transported_h = np.ones(self.q.site.n_codes)
        feats_h = query_features(x @ weights, sub, transported_h, log_events)
        model = fit_no_match(feats_h[anchors.query], held, seed=cfg.seed)
        if model is None:
            self.log["no_match"] = {"fitted": False, "reason": "fewer than 5 anchors in a class"}
            warnings.warn("p_no_match could not be fitted (too few anchors); it is left at 0", AlignmentWarning,
                          stacklevel=2)
            return np.zeros(self.q.site.n_codes)
        p, prior = em_prior(model.predict(feats_all), model.train_prior)
        self.log["no_match"] = {"fitted": True, "train_anchors": model.n_train, "held_out": int(held.sum()),
                                "estimated_prior": round(prior, 4),
                                "coef": dict(zip(NO_MATCH_FEATURES, np.round(model.coef, 4).tolist(), strict=True))}
        return p


def _pca(x: np.ndarray, dim: int) -> np.ndarray:
    """Rows of ``x`` projected on their top ``dim`` principal axes, ℓ2-normalised."""
    xc = x - x.mean(axis=0, keepdims=True)
    from sklearn.utils.extmath import svd_flip

    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    vt = svd_flip(None, vt, u_based_decision=False)[1]  # largest entry of each axis positive
    y = xc @ vt[:dim].T
    n = np.linalg.norm(y, axis=1, keepdims=True)
    return (y / np.maximum(n, 1e-12)).astype(np.float32)


def align(
    sites: list[Site],
    reference: str,
    *,
    anchors_file: str | Path | None = None,
    config: AlignConfig | None = None,
    **overrides: Any,
) -> Alignment:
    """Align K ≥ 2 sites to the codes of a reference site.

    The implementation behind :func:`mash.align`, whose docstring documents the
    parameters, return value, errors and warnings (one text, kept there).
    """
    cfg = AlignConfig(**{**(asdict(config) if config else {}), **overrides})
    cfg.validate()
    names = [s.name for s in sites]
    if len(sites) < 2:
        raise MashInputError(f"alignment needs at least two sites, got {len(sites)}")
    if len(set(names)) != len(names):
        raise MashInputError(f"site names must be unique, got {names} (use --name to rename)")
    if reference not in names:
        raise MashInputError(f"unknown reference site {reference!r}; the sites are {names}")
    timer = Timer()
    t_start = time.perf_counter()
    embedder = TextEmbedder(cfg.text_model, cache_dir=cfg.cache_dir, quiet=cfg.quiet)

    views: dict[str, _SiteView] = {}
    with timer("text"):
        raw = {s.name: embedder.encode(s.codes["description"].tolist()) for s in sites}
    with timer("cooccurrence"):
        for s in bar(sites, "co-occurrence", quiet=cfg.quiet):
            subject, days, code = s.event_arrays()
            group, pooled = (medication_stems(s.codes) if cfg.pool_medications
                             else (np.arange(s.n_codes, dtype=np.int64), 0))
            n_groups = int(group.max()) + 1 if len(group) else 0
            co = cooccurrence_embeddings(
                subject, days, group[code] if pooled else code,
                n_groups if pooled else s.n_codes,
                window_days=cfg.window_days,
                shift=cfg.sppmi_shift,
                dim=cfg.cooc_dim,
                min_events=cfg.min_events,
                seed=cfg.seed,
            )
            vectors, reliable, code_events, stats = co.vectors, co.reliable, co.code_events, co.stats
            if pooled:  # every entry of a pooled drug gets its group's vector
                vectors, reliable = vectors[group], reliable[group]
                code_events = np.bincount(code, minlength=s.n_codes).astype(code_events.dtype)
                stats = {**stats, "medication_codes_pooled": pooled, "medication_pools": int(
                    (np.bincount(group) > 1).sum())}
            views[s.name] = _SiteView(s, raw[s.name], vectors, reliable, code_events, stats)

    file_anchors = {n: Anchors.empty() for n in names if n != reference}
    if anchors_file is not None:
        file_anchors = read_anchor_file(
            anchors_file, {s.name: s.codes["code"] for s in sites}, reference
        )

    ref_view = views[reference]
    ref_norm = [abbrev.normalize(t, abbrev.GENERIC) for t in ref_view.site.codes["description"]]
    with timer("text"):
        ref_norm_emb = embedder.encode(ref_norm)

    pair_logs: dict[str, Any] = {}
    mapping_parts, matches, mapped = [], {}, {}
    others = [s for s in sites if s.name != reference]
    with timer("align"), steps("align", len(others) * _PairAligner.n_steps(cfg), quiet=cfg.quiet) as step:
        for s in others:
            pa = _PairAligner(views[s.name], ref_view, embedder, cfg, file_anchors[s.name], ref_norm, ref_norm_emb)
            shared = shared_code_anchors(s.codes["code"], ref_view.site.codes["code"], cfg.shared_code_overlap)
            idx, scores, p_none = pa.run(shared, lambda label, name=s.name: step(f"{name}: {label}"))
            mapping_parts.append(
                mapping_frame(s.name, s.codes["code"].to_numpy(), ref_view.site.codes["code"].to_numpy(), idx, scores,
                              p_none)
            )
            matches[s.name] = pa.matches
            mapped[s.name] = (pa.q_norm_emb, pa.mapped_cooc)
            pair_logs[s.name] = pa.log
    mapping = pd.concat(mapping_parts, ignore_index=True)
    concepts = unify_concepts({s.name: s.codes for s in sites}, reference, matches)

    # aligned embeddings of every (site, code), text half ⊕ co-occurrence half
    mapped[reference] = (ref_norm_emb, ref_view.cooc)
    text_all = np.concatenate([mapped[n][0] for n in names])
    if cfg.text_dim is not None and cfg.text_dim < text_all.shape[1]:
        text_all = _pca(text_all, cfg.text_dim)
    cooc_all = np.concatenate([mapped[n][1] for n in names]).astype(np.float32)
    rel_all = np.concatenate([views[n].reliable for n in names])
    embeddings = {
        "site": np.concatenate([np.full(views[n].site.n_codes, n) for n in names]).astype(str),
        "code": np.concatenate([views[n].site.codes["code"].to_numpy(str) for n in names]),
        "text": text_all.astype(np.float32),
        "cooccurrence": cooc_all,
        "cooccurrence_reliable": rel_all,
        "vectors": np.concatenate([text_all, cooc_all], axis=1).astype(np.float32) / np.sqrt(2),
    }
    timings = {k: round(v, 3) for k, v in timer.seconds.items()}
    timings["total"] = round(time.perf_counter() - t_start, 3)
    manifest = {
        "mash_version": __version__,
        "command": "align",
        "reference": reference,
        "parameters": {**asdict(cfg), "anchors_file": None if anchors_file is None else str(anchors_file)},
        "seed": cfg.seed,
        "text_model": embedder.identity(),
        "text_cache": {**embedder.stats(),
                       "encodings_per_code": round(embedder.n_encoded_ / max(1, sum(s.n_codes for s in sites)), 3)},
        "sites": {
            n: {
                "path": views[n].site.source,
                "input_hashes": views[n].site.input_hashes,
                "codes": views[n].site.n_codes,
                "events": views[n].site.n_events,
                "subjects": views[n].site.n_subjects,
                "skipped_or_repaired": views[n].site.report,
                "codes_below_min_events": int((~views[n].reliable).sum()),
                "codes_without_events": int((views[n].events == 0).sum()),
                "text_only": views[n].site.n_events == 0,
                "cooccurrence": views[n].stats,
            }
            for n in names
        },
        "pairs": pair_logs,
        "outputs": {
            "mapping_rows": len(mapping),
            "concepts": int(concepts["concept_id"].nunique()),
            "merged_concepts": int((concepts.groupby("concept_id").size() > 1).sum()),
            "embedding_rows": len(embeddings["code"]),
        },
        "score": (
            "score = p(reference code | query code, a match exists): softmax over the code's "
            "candidate pairs (the union of each view's nearest neighbours) of a linear score of "
            "CSLS-corrected views (text raw, text normalised, char n-grams, words, co-occurrence "
            "after the map) and the log unbalanced transport plan, weights fitted by listwise "
            "likelihood on anchor pairs. p_no_match = probability that the code has no "
            "counterpart in the reference (logistic model of its candidate list, trained by "
            "holding out anchors' reference codes, prior re-estimated by EM). See docs/method.md."
        ),
        "timings_s": timings,
        "peak_rss_mb": timer.peak_rss_mb,
        "platform": {"python": platform.python_version(), "machine": platform.machine()},
    }
    return Alignment(reference, mapping, concepts, embeddings, manifest)
