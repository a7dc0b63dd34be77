"""Coding a site's latent condition events in its vocabulary, and the gold mapping.

:func:`record_events` writes each event as an ICD-9-CM code (the condition) or one of
its ICD-10-CM GEM targets; :func:`gold_pairs` is the answer key between the sites;
:func:`full_reference` re-indexes an ICD-10-CM site into every ICD-10-CM code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mash.errors import MashInputError
from mash.synth._segments import sample_segments, segment_ids
from mash.synth.config import REFERENCE_VOCABULARIES, check_choice
from mash.synth.patients import PatientState
from mash.synth.profiles import SiteProfile
from mash.synth.reference import ReferenceTables
from mash.synth.world import World

__all__ = ["SiteRecords", "full_reference", "gold_pairs", "identity_gold", "record_events"]


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
        flat = sample_segments(
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
    check_choice("reference_vocabulary", reference_vocabulary, REFERENCE_VOCABULARIES)
    n_targets = np.diff(world.target_ptr)
    cond = segment_ids(n_targets)
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


def identity_gold(
    records: SiteRecords, reference: SiteRecords, *, reference_vocabulary: str = "used"
) -> np.ndarray:
    """Gold pairs of an ICD-10-CM site: its codes that the reference site lists too.

    Both sites code in ``World.targets``, so a code's counterpart is the same code.

    Parameters
    ----------
    records, reference : SiteRecords
        An extra ICD-10-CM site and site_B (codes index ``World.targets``).
    reference_vocabulary : {"used", "full"}
        ``"full"``: site_B lists every ICD-10-CM code, so every code that occurs pairs.

    Returns
    -------
    ndarray of int, shape (n_pairs,)
        Indices into ``World.targets``, sorted.
    """
    check_choice("reference_vocabulary", reference_vocabulary, REFERENCE_VOCABULARIES)
    if reference_vocabulary == "full":
        return records.used
    return np.intersect1d(records.used, reference.used)


def full_reference(records: SiteRecords, tables: ReferenceTables) -> tuple[SiteRecords, np.ndarray]:
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
