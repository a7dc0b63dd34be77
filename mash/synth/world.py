"""The latent world shared by the sites: conditions, processes and GEM coding rules.

:func:`sample_world` draws which ICD-9-CM codes are conditions, their loadings on the
latent disease processes, prevalences, recurrences, and site_B's preference over each
condition's ICD-10-CM GEM targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mash.errors import MashInputError
from mash.synth._segments import segment_ids, segment_ptr, segment_starts
from mash.synth.config import SimulationConfig
from mash.synth.reference import CHAPTER_NAMES, ReferenceTables, icd9_chapter

__all__ = ["CHRONIC_CHAPTERS", "World", "sample_world"]

#: Chapters whose conditions are mostly chronic (``chronic_share_chronic``); their
#: chronic conditions are the default target set of the ``onset`` outcome.
CHRONIC_CHAPTERS = frozenset(
    {
        "neoplasms",
        "endocrine",
        "blood",
        "mental",
        "nervous",
        "circulatory",
        "musculoskeletal",
        "congenital",
    }
)
# Mean age slope (per 20 years) of a process by the chapter it belongs to.
_AGE_SLOPE = {
    "neoplasms": 0.8,
    "endocrine": 0.8,
    "circulatory": 1.0,
    "nervous": 0.4,
    "musculoskeletal": 0.5,
    "genitourinary": 0.3,
    "pregnancy": -1.5,
    "perinatal": -1.5,
    "congenital": -0.8,
    "injury": -0.3,
    "external": -0.3,
}


@dataclass(frozen=True)
class World:
    """The shared biology and the coding rules (independent of patients and sites).

    Attributes
    ----------
    conditions : ndarray of str, shape (C,)
        ICD-9-CM codes, sorted.
    descriptions : ndarray of str, shape (C,)
        Their CMS short descriptions.
    ccs : ndarray of int, shape (C,)
        CCS single-level category of each condition.
    chapter : ndarray of int, shape (C,)
        ICD-9-CM chapter (index into :data:`CHAPTER_NAMES`).
    prevalence : ndarray of float, shape (C,)
        Base prevalence :math:`\\rho_c` (log-normal, mean 1).
    loadings : ndarray of float, shape (C, K)
        :math:`W`: sparse structured loadings plus a dense noise floor.
    main_process : ndarray of int, shape (C,)
        Main process of each condition (shared within a CCS category).
    recurrence : ndarray of float, shape (C,)
        Probability that the condition is recorded again at each later visit.
    chronic : ndarray of bool, shape (C,)
    process_chapter : ndarray of int, shape (K,)
        Chapter whose categories a process mainly serves.
    process_age_slope : ndarray of float, shape (K,)
        :math:`\\beta_k`, the log-prior change per 20 years of age.
    targets : ndarray of str, shape (T,)
        Every ICD-10-CM GEM target of the conditions, sorted.
    target_descriptions : ndarray of str, shape (T,)
        Their long descriptions.
    target_ptr : ndarray of int, shape (C + 1,)
        Condition ``c``'s GEM targets are ``target_index[target_ptr[c]:target_ptr[c+1]]``.
    target_index : ndarray of int, shape (n_pairs,)
        Indices into ``targets``.
    target_preference : ndarray of float, shape (n_pairs,)
        site_B's probability of recording a condition as each of its targets (sums to
        one per condition).
    """

    conditions: np.ndarray
    descriptions: np.ndarray
    ccs: np.ndarray
    chapter: np.ndarray
    prevalence: np.ndarray
    loadings: np.ndarray
    main_process: np.ndarray
    recurrence: np.ndarray
    chronic: np.ndarray
    process_chapter: np.ndarray
    process_age_slope: np.ndarray
    targets: np.ndarray
    target_descriptions: np.ndarray
    target_ptr: np.ndarray
    target_index: np.ndarray
    target_preference: np.ndarray

    @property
    def n_conditions(self) -> int:
        """Number of conditions :math:`C`."""
        return len(self.conditions)

    @property
    def n_processes(self) -> int:
        """Number of latent processes :math:`K`."""
        return self.loadings.shape[1]


def _allocate_processes(chapter_counts: np.ndarray, n_processes: int) -> list[np.ndarray]:
    """Split processes ``0..K-1`` into one pool per chapter present.

    Parameters
    ----------
    chapter_counts : ndarray of int, shape (n_present,)
        Number of conditions in each chapter present.
    n_processes : int

    Returns
    -------
    list of ndarray of int
        The process pool of each chapter: contiguous blocks of sizes proportional to
        the chapter's share (at least one each), or shared processes when ``K`` is
        smaller than the number of chapters.
    """
    n_ch = len(chapter_counts)
    if n_processes < n_ch:
        return [np.array([i % n_processes]) for i in range(n_ch)]
    extra = n_processes - n_ch
    share = chapter_counts / chapter_counts.sum() * extra
    alloc = np.floor(share).astype(np.int64)
    remainder = extra - alloc.sum()
    order = np.argsort(-(share - alloc), kind="stable")
    alloc[order[:remainder]] += 1
    sizes = alloc + 1
    starts = segment_starts(sizes)
    return [np.arange(s, s + n) for s, n in zip(starts, sizes, strict=True)]


def sample_world(
    tables: ReferenceTables,
    *,
    n_conditions: int,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> World:
    """Sample the conditions, their loadings, prevalences and GEM coding rules.

    Parameters
    ----------
    tables : ReferenceTables
    n_conditions : int
        Number of ICD-9-CM conditions :math:`C` (at most ``len(tables.icd9_usable)``).
    config : SimulationConfig
    rng : numpy.random.Generator

    Returns
    -------
    World
    """
    usable = tables.icd9_usable
    if not 1 <= n_conditions <= len(usable):
        raise MashInputError(f"n_conditions must be in [1, {len(usable)}], got {n_conditions}")
    K = int(config.n_processes)
    conditions = np.sort(rng.choice(usable, size=n_conditions, replace=False))
    C = len(conditions)
    ccs = tables.ccs.reindex(conditions).to_numpy(dtype=np.int64)
    chapter = icd9_chapter(conditions)

    # Processes: a pool per chapter; every CCS category picks its main process there.
    present, chapter_pos = np.unique(chapter, return_inverse=True)
    pools = _allocate_processes(np.bincount(chapter_pos), K)
    process_chapter = np.empty(K, dtype=np.int64)
    for ch, pool in zip(present, pools, strict=True):
        process_chapter[pool] = ch
    categories, cat_of = np.unique(ccs, return_inverse=True)
    cat_chapter_pos = np.zeros(len(categories), dtype=np.int64)
    cat_chapter_pos[cat_of] = chapter_pos  # one of its conditions' chapters
    pool_sizes = np.array([len(p) for p in pools])
    pool_starts = np.array([p[0] for p in pools])
    pick = np.floor(rng.random(len(categories)) * pool_sizes[cat_chapter_pos]).astype(np.int64)
    cat_main = pool_starts[cat_chapter_pos] + pick
    main_process = cat_main[cat_of]

    # Code-specific loadings: main 1, 1-3 random secondaries, dense noise floor.
    loadings = np.zeros((C, K))
    loadings[np.arange(C), main_process] = 1.0
    n_sec = rng.integers(config.min_secondary, config.max_secondary + 1, size=C)
    keys = rng.random((C, K))
    keys[np.arange(C), main_process] = 2.0  # never re-pick the main process
    ranked = np.argsort(keys, axis=1)
    sec_mask = np.arange(K)[None, :] < n_sec[:, None]
    sec_rows = segment_ids(n_sec)
    sec_cols = ranked[sec_mask]
    loadings[sec_rows, sec_cols] = config.secondary_weight * rng.uniform(
        0.1, 1.0, size=len(sec_rows)
    )
    structured = loadings.sum(axis=1, keepdims=True)
    loadings += config.loading_noise * structured * rng.exponential(1.0, size=(C, K)) / K

    prevalence = np.exp(
        config.prevalence_sigma * rng.standard_normal(C) - config.prevalence_sigma**2 / 2
    )

    chronic_share = np.where(
        np.isin(np.array(CHAPTER_NAMES)[chapter], list(CHRONIC_CHAPTERS)),
        config.chronic_share_chronic,
        config.chronic_share_other,
    )
    chronic = rng.random(C) < chronic_share
    recurrence = np.where(chronic, rng.beta(4.0, 2.0, size=C), rng.beta(1.0, 15.0, size=C))

    slope_mean = np.array([_AGE_SLOPE.get(CHAPTER_NAMES[ch], 0.0) for ch in process_chapter])
    process_age_slope = slope_mean + config.age_effect * rng.standard_normal(K)

    # GEM coding rules and site_B's per-condition preference over targets.
    gem = tables.gem.loc[tables.gem["icd9cm"].isin(conditions), ["icd9cm", "icd10cm"]]
    gem = gem.sort_values(["icd9cm", "icd10cm"], kind="stable")
    targets, target_index = np.unique(gem["icd10cm"].to_numpy(dtype=str), return_inverse=True)
    n_targets = np.bincount(
        np.searchsorted(conditions, gem["icd9cm"].to_numpy(dtype=str)), minlength=C
    )
    target_ptr = segment_ptr(n_targets)
    gamma = rng.gamma(config.target_concentration, size=len(target_index)) + 1e-12
    seg = segment_ids(n_targets)
    target_preference = gamma / np.bincount(seg, weights=gamma, minlength=C)[seg]

    return World(
        conditions=conditions,
        descriptions=tables.icd9_short.reindex(conditions).to_numpy(dtype=str),
        ccs=ccs,
        chapter=chapter,
        prevalence=prevalence,
        loadings=loadings,
        main_process=main_process,
        recurrence=recurrence,
        chronic=chronic,
        process_chapter=process_chapter,
        process_age_slope=process_age_slope,
        targets=targets,
        target_descriptions=tables.icd10_long.reindex(targets).to_numpy(dtype=str),
        target_ptr=target_ptr,
        target_index=target_index.astype(np.int64),
        target_preference=target_preference,
    )
