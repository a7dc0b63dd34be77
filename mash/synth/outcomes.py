"""Prediction targets of a site's patients (``onset``, ``burden``, ``event``).

Defined on the latent conditions and processes of :class:`~mash.synth.patients.PatientState`,
not on the site's codes, so they mean the same at both sites.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from mash.errors import MashInputError
from mash.synth._calendar import iso_dates
from mash.synth.config import check_int
from mash.synth.patients import PatientState
from mash.synth.profiles import subject_ids
from mash.synth.reference import CHAPTER_NAMES
from mash.synth.world import CHRONIC_CHAPTERS, World

__all__ = [
    "EVENT_CHAPTERS",
    "OUTCOME_COLUMNS",
    "condition_severity",
    "event_processes",
    "outcome_definition",
    "outcome_rates",
    "outcome_targets",
    "simulate_outcomes",
]

#: Columns of ``outcomes.csv``, in order.
OUTCOME_COLUMNS = ("subject_id", "index_time", "onset", "burden", "event")
HORIZON_DAYS = 365  # the horizon of the outcomes.csv that simulate writes
#: Chapters whose processes raise the risk of the ``event`` outcome.
EVENT_CHAPTERS = ("circulatory", "endocrine")
EVENT_INTERCEPT = -3.0  # logit of the event probability for a patient with no such process
EVENT_SLOPE = 8.0  # logit change from none to all of a patient's mixture on them


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
    >>> from mash.synth import simulate_latent
    >>> world = simulate_latent(n_patients=5, n_conditions=200).world
    >>> bool(np.all(world.chronic[outcome_targets(world, ["circulatory"])]))
    True
    """
    names = _chapter_names(CHRONIC_CHAPTERS if chapters is None else chapters)
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
    >>> from mash.synth import simulate_latent
    >>> latent = simulate_latent(n_patients=50, n_conditions=100)
    >>> out = simulate_outcomes(
    ...     latent.world, latent.patients["site_A"], id_prefix="A", rng=np.random.default_rng(0)
    ... )
    >>> list(out.columns), len(out)
    (['subject_id', 'index_time', 'onset', 'burden', 'event'], 50)
    """
    horizon = check_int("horizon_days", horizon_days, 1)
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
    p_event = 1.0 / (1.0 + np.exp(-(EVENT_INTERCEPT + EVENT_SLOPE * share)))
    event = (rng.random(n) < p_event).astype(np.int64)

    index_time = iso_dates(index_day)
    return pd.DataFrame(
        {
            "subject_id": subject_ids(id_prefix, n),
            "index_time": index_time,
            "onset": onset,
            "burden": np.log1p(load),
            "event": event,
        }
    )


def outcome_definition(world: World) -> dict[str, Any]:
    """How :func:`simulate` defines ``outcomes.csv``, for its manifest.

    Parameters
    ----------
    world : World

    Returns
    -------
    dict
        ``horizon_days``, ``target_chapters`` and ``target_conditions`` (:math:`T`),
        ``event_chapters`` and ``event_processes`` (:math:`m`), ``event_logit``
        (intercept and slope of the event probability).
    """
    return {
        "horizon_days": HORIZON_DAYS,
        "target_chapters": sorted(CHRONIC_CHAPTERS),
        "target_conditions": int(outcome_targets(world).sum()),
        "event_chapters": list(EVENT_CHAPTERS),
        "event_processes": int(event_processes(world).sum()),
        "event_logit": [EVENT_INTERCEPT, EVENT_SLOPE],
    }


def outcome_rates(outcomes: pd.DataFrame) -> dict[str, Any]:
    """Counts and rates of one site's outcomes (:func:`simulate_outcomes`'s table).

    Parameters
    ----------
    outcomes : pandas.DataFrame, shape (n_patients, 5)

    Returns
    -------
    dict
        ``cohort`` (patients at risk of ``onset``), ``onset`` and ``onset_rate`` (None
        for an empty cohort), ``burden_mean``, ``event`` and ``event_rate``; rates and
        the mean rounded to 4 decimals.

    Examples
    --------
    >>> frame = pd.DataFrame({"onset": pd.array([1, pd.NA], dtype="Int64"),
    ...                       "burden": [0.5, 1.5], "event": [0, 1]})
    >>> outcome_rates(frame)["onset_rate"], outcome_rates(frame)["event_rate"]
    (1.0, 0.5)
    """
    in_cohort = outcomes["onset"].notna()
    return {
        "cohort": int(in_cohort.sum()),
        "onset": int(outcomes["onset"].sum()),
        "onset_rate": (round(float(outcomes["onset"].mean()), 4) if in_cohort.any() else None),
        "burden_mean": round(float(outcomes["burden"].mean()), 4),
        "event": int(outcomes["event"].sum()),
        "event_rate": round(float(outcomes["event"].mean()), 4),
    }
