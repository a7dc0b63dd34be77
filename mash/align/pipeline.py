"""``mash.align``: from loaded sites to an :class:`~mash.align.result.Alignment`.

Stages (one progress bar each; wall time of each in the manifest):

1. text: sentence embeddings of raw and normalised descriptions (cached), TF-IDF
   character n-grams and words of normalised descriptions;
2. co-occurrence: per site, windowed counts → SPPMI → truncated SVD (:mod:`mash.cooccur`);
3. per non-reference site: anchors (file, shared code strings, mutual text matches),
   abbreviations learned from anchors, Procrustes + neural OT on co-occurrence
   vectors, co-occurrence anchors, a listwise scorer over all views, refinement
   rounds with the scorer's own confident mutual matches;
4. top-k candidates with calibrated scores; unified concepts.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mash import abbrev
from mash._version import __version__
from mash.align.anchors import Anchors, read_anchor_file, shared_code_anchors
from mash.align.concepts import unify_concepts
from mash.align.neural_ot import fit_neural_ot
from mash.align.procrustes import procrustes
from mash.align.result import Alignment, mapping_frame
from mash.align.retrieval import csls_from_similarity, mutual_nearest, topk
from mash.align.scoring import fit_listwise, softmax_rows, stack
from mash.cooccur import cooccurrence_embeddings
from mash.errors import MashInputError
from mash.progress import Timer, bar
from mash.sites import Site
from mash.text import TextEmbedder, tfidf_pair

FEATURES = ["text_raw", "text_norm", "char", "word", "cooc", "cooc_missing", "freq_gap"]


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
        Candidates per code in ``mapping.csv`` (≥ 5).
    csls_k : int
        Neighbourhood size of CSLS.
    anchor_margin : float
        Minimum margin of a mutual text match to become an anchor.
    shared_code_overlap : float
        Fraction of shared code strings above which identical codes are anchors.
    refine_rounds : int
        Rounds of anchor refinement with the fitted scorer.
    ot_steps, ot_reg, ot_anchor_weight : int, float, float
        Neural OT training settings.
    concept_threshold : float
        Minimum score of a mutual best match to merge codes into one concept.
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
    csls_k: int = 10
    anchor_margin: float = 0.05
    shared_code_overlap: float = 0.3
    refine_rounds: int = 2
    ot_steps: int = 150
    ot_reg: float = 0.05
    ot_anchor_weight: float = 1.0
    concept_threshold: float = 0.5
    seed: int = 0
    quiet: bool = False

    def validate(self) -> None:
        if self.top_k < 1:
            raise MashInputError(f"top_k must be ≥ 1, got {self.top_k}")
        if self.window_days <= 0:
            raise MashInputError(f"window must be > 0 days, got {self.window_days}")
        if self.sppmi_shift < 1:
            raise MashInputError(f"SPPMI shift must be ≥ 1, got {self.sppmi_shift}")
        if self.cooc_dim < 1 or (self.text_dim is not None and self.text_dim < 1):
            raise MashInputError("embedding sizes must be ≥ 1")
        if not 0 <= self.concept_threshold <= 1:
            raise MashInputError(f"concept threshold must be in [0, 1], got {self.concept_threshold}")


@dataclass
class _SiteView:
    """Everything computed once per site."""

    site: Site
    text_raw: np.ndarray  # (n, d) sentence embeddings of raw descriptions
    cooc: np.ndarray  # (n, d_co)
    reliable: np.ndarray  # (n,) bool
    events: np.ndarray  # (n,) int64
    stats: dict[str, Any] = field(default_factory=dict)


def _csls_matrix(q, r, k: int) -> np.ndarray:
    """CSLS-corrected cosine similarities of ℓ2-normalised rows (dense or sparse), (n_q, n_r)."""
    sim = q @ r.T
    if not isinstance(sim, np.ndarray):
        sim = sim.toarray()
    return csls_from_similarity(np.asarray(sim, dtype=np.float32), k)


class _PairAligner:
    """Aligns one query site to the reference: features, anchors, OT, scorer."""

    def __init__(
        self,
        query: _SiteView,
        ref: _SiteView,
        embedder: TextEmbedder,
        cfg: AlignConfig,
        file_anchors: Anchors,
        ref_norm: list[str],
        ref_norm_emb: np.ndarray,
    ) -> None:
        self.q, self.r, self.embedder, self.cfg = query, ref, embedder, cfg
        self.file_anchors = file_anchors
        self.ref_norm, self.ref_norm_emb = ref_norm, ref_norm_emb
        self.feats: dict[str, np.ndarray] = {}
        self.log: dict[str, Any] = {}

    # -- text views --------------------------------------------------------------
    def _text_features(self, learned: dict[str, str]) -> None:
        cfg = self.cfg
        q_desc = self.q.site.codes["description"].tolist()
        if not hasattr(self, "prefixes"):  # depends on the two vocabularies only
            self.prefixes = abbrev.learn_prefixes(q_desc, self.r.site.codes["description"].tolist())
        q_norm = [abbrev.normalize(t, learned, abbrev.GENERIC, self.prefixes) for t in q_desc]
        q_norm_emb = self.embedder.encode(q_norm)
        if "text_raw" not in self.feats:  # raw descriptions do not change between passes
            self.feats["text_raw"] = _csls_matrix(self.q.text_raw, self.r.text_raw, cfg.csls_k)
        self.feats["text_norm"] = _csls_matrix(q_norm_emb, self.ref_norm_emb, cfg.csls_k)
        cq, cr = tfidf_pair(q_norm, self.ref_norm, analyzer="char_wb", ngram_range=(3, 5))
        self.feats["char"] = _csls_matrix(cq, cr, cfg.csls_k)
        wq, wr = tfidf_pair(q_norm, self.ref_norm, analyzer="word", ngram_range=(1, 2))
        self.feats["word"] = _csls_matrix(wq, wr, cfg.csls_k)
        self.q_norm_emb = q_norm_emb

    def _text_score(self) -> np.ndarray:
        return (self.feats["text_raw"] + self.feats["text_norm"] + self.feats["char"] + self.feats["word"]) / 4

    def _mutual(self, score: np.ndarray, source: str, margin: float, mask=None) -> Anchors:
        s = score if mask is None else np.where(mask, score, -np.inf)
        rows, cols, _ = mutual_nearest(s, margin)
        finite = np.isfinite(s[rows, cols])
        rows, cols = rows[finite], cols[finite]
        return Anchors(rows.astype(np.int64), cols.astype(np.int64), np.full(len(rows), source, dtype=object))

    # -- co-occurrence view ------------------------------------------------------
    def _cooc_features(self, anchors: Anchors) -> None:
        cfg = self.cfg
        both = self.q.reliable[anchors.query] & self.r.reliable[anchors.reference]
        aq, ar = anchors.query[both], anchors.reference[both]
        n_min = max(10, cfg.cooc_dim // 2)
        missing = ~(self.q.reliable[:, None] & self.r.reliable[None, :])
        self.feats["cooc_missing"] = missing.astype(np.float32)
        if len(aq) < n_min:
            self.feats["cooc"] = np.zeros(missing.shape, np.float32)
            self.log["cooc_used"] = False
            self.log["cooc_reason"] = f"{len(aq)} anchors with reliable co-occurrence on both sides (< {n_min})"
            self.mapped_cooc = np.zeros_like(self.q.cooc)
            return
        w0 = procrustes(self.q.cooc[aq], self.r.cooc[ar])
        relq = np.flatnonzero(self.q.reliable)
        relr = np.flatnonzero(self.r.reliable)
        # anchors re-indexed into the reliable subsets
        pos_q = {v: i for i, v in enumerate(relq.tolist())}
        pos_r = {v: i for i, v in enumerate(relr.tolist())}
        a_sub = (
            np.array([pos_q[v] for v in aq.tolist()], dtype=np.int64),
            np.array([pos_r[v] for v in ar.tolist()], dtype=np.int64),
        )
        res = fit_neural_ot(
            self.q.cooc[relq],
            self.r.cooc[relr],
            a_sub,
            w0,
            steps=cfg.ot_steps,
            reg=cfg.ot_reg,
            anchor_weight=cfg.ot_anchor_weight,
            seed=cfg.seed,
        )
        mapped = np.zeros_like(self.q.cooc)
        mapped[relq] = res.transform(self.q.cooc[relq])
        sim = _csls_matrix(mapped, self.r.cooc, cfg.csls_k)
        self.feats["cooc"] = np.where(missing, 0.0, sim).astype(np.float32)
        self.mapped_cooc = mapped
        self.log["cooc_used"] = True
        self.log["ot_anchor_pairs"] = int(len(aq))
        self.log["ot_loss_first_last"] = [res.losses[0], res.losses[-1]]

    # -- the whole pair ----------------------------------------------------------
    def _freq_feature(self) -> None:
        # |log relative frequency gap|: a code and its counterpart are similarly common,
        # up to population shift and one-to-many splits (the scorer learns how much)
        fq = np.log((self.q.events + 1) / (self.q.events.sum() + 1))
        fr = np.log((self.r.events + 1) / (self.r.events.sum() + 1))
        self.feats["freq_gap"] = -np.abs(fq[:, None] - fr[None, :]).astype(np.float32)

    def run(self, shared: Anchors) -> tuple[np.ndarray, np.ndarray]:
        """Align; returns the top-k reference rows (n_q, k) and their scores (n_q, k)."""
        cfg = self.cfg
        self._freq_feature()
        q_desc = self.q.site.codes["description"].tolist()
        r_desc = self.r.site.codes["description"].tolist()
        self._text_features({})
        base = self.file_anchors.union(shared)
        text_anchors = base.union(self._mutual(self._text_score(), "text", cfg.anchor_margin))
        # abbreviations learned from anchor descriptions, then text views recomputed
        learned = abbrev.learn_from_pairs(
            (q_desc[i], r_desc[j]) for i, j in zip(text_anchors.query, text_anchors.reference, strict=True)
        )
        self.log["learned_abbreviations"] = len(learned)
        self._text_features(learned)
        anchors = base.union(self._mutual(self._text_score(), "text", cfg.anchor_margin))
        self._cooc_features(anchors)
        if self.log.get("cooc_used"):
            rel = ~self.feats["cooc_missing"].astype(bool)
            anchors = anchors.union(self._mutual(self.feats["cooc"], "cooccurrence", cfg.anchor_margin, rel))
        names = FEATURES
        weights = None
        for _ in range(cfg.refine_rounds + 1):
            x = stack(self.feats, names)
            weights = fit_listwise(x, anchors.query, anchors.reference, prior=weights)
            logits = x @ weights
            refined = self._mutual(logits, "refined", cfg.anchor_margin)
            anchors = base.union(refined)
            self._cooc_features(anchors)
        x = stack(self.feats, names)
        weights = fit_listwise(x, anchors.query, anchors.reference, prior=weights)
        logits = x @ weights
        self.log["anchors"] = anchors.counts()
        self.log["scorer_weights"] = dict(zip(names, [float(w) for w in weights], strict=True))
        prob = softmax_rows(logits)
        idx, _ = topk(logits, cfg.top_k)
        scores = np.take_along_axis(prob, idx, axis=1)
        # confident one-to-one matches for concepts: mutual best, probability ≥ threshold
        rows, cols, _ = mutual_nearest(logits, 0.0)
        ok = prob[rows, cols] >= cfg.concept_threshold
        self.matches = (rows[ok], cols[ok])
        return idx, scores


def _pca(x: np.ndarray, dim: int) -> np.ndarray:
    """Rows of ``x`` projected on their top ``dim`` principal axes, ℓ2-normalised."""
    xc = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    vt *= np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])[:, None]
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
    """Align K ≥ 2 sites to ``reference``.

    Parameters
    ----------
    sites : list of Site
        Loaded sites (:meth:`mash.Site.load`), names unique.
    reference : str
        Name of the reference site.
    anchors_file : path, optional
        CSV of known pairs ``site, code, reference_code``.
    config : AlignConfig, optional
    **overrides
        Fields of :class:`AlignConfig` (e.g. ``seed=1``, ``quiet=True``).

    Returns
    -------
    Alignment
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
            co = cooccurrence_embeddings(
                *s.event_arrays(),
                s.n_codes,
                window_days=cfg.window_days,
                shift=cfg.sppmi_shift,
                dim=cfg.cooc_dim,
                min_events=cfg.min_events,
                seed=cfg.seed,
            )
            views[s.name] = _SiteView(s, raw[s.name], co.vectors, co.reliable, co.code_events, co.stats)

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
    with timer("align"):
        for s in bar([s for s in sites if s.name != reference], "align", quiet=cfg.quiet):
            pa = _PairAligner(views[s.name], ref_view, embedder, cfg, file_anchors[s.name], ref_norm, ref_norm_emb)
            shared = shared_code_anchors(s.codes["code"], ref_view.site.codes["code"], cfg.shared_code_overlap)
            idx, scores = pa.run(shared)
            mapping_parts.append(
                mapping_frame(s.name, s.codes["code"].to_numpy(), ref_view.site.codes["code"].to_numpy(), idx, scores)
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
        "text_model": {"name": embedder.name, "key": embedder.key},
        "text_cache": {"encoded": embedder.n_encoded_, "from_cache": embedder.n_cached_},
        "sites": {
            n: {
                "path": views[n].site.source,
                "input_hashes": views[n].site.input_hashes,
                "codes": views[n].site.n_codes,
                "events": views[n].site.n_events,
                "subjects": views[n].site.n_subjects,
                "skipped_or_repaired": views[n].site.report,
                "codes_below_min_events": int((~views[n].reliable).sum()),
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
            "score = p(reference code | query code): softmax over all reference codes of a "
            "linear score of CSLS-corrected views (text raw, text normalised, char n-grams, "
            "words, co-occurrence after neural OT), weights fitted by listwise likelihood on "
            "anchor pairs. Read it as the probability that the candidate is the match, given "
            "that the code has one; see docs/method.md for the measured calibration."
        ),
        "timings_s": timings,
        "peak_rss_mb": timer.peak_rss_mb,
        "platform": {"python": platform.python_version(), "machine": platform.machine()},
    }
    return Alignment(reference, mapping, concepts, embeddings, manifest)
