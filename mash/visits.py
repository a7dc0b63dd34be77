"""Encoding a batch of patients' visits, given as Python lists, into padded arrays.

:func:`encode_visits` (:meth:`Vocabulary.encode_visits <mash.vocab.Vocabulary.encode_visits>`)
validates, encodes, sorts and deduplicates each patient's ``(time, codes)`` visits, then
pads them with :meth:`mash.sequences.Sequences.pad`, the one padding of mash. A whole
site's events become :class:`~mash.sequences.Sequences` directly
(:func:`mash.sequences.build_sequences`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mash.errors import MashInputError
from mash.sequences import NS_PER_DAY, check_limit, from_visit_lists
from mash.vocab.layout import PAD_ID

if TYPE_CHECKING:  # pragma: no cover
    from mash.vocab.vocabulary import Vocabulary

__all__ = ["EncodedVisits", "encode_visits"]


@dataclass
class EncodedVisits:
    """Padded visit sequences of a batch of patients (NumPy; see ``mash.models.batch.collate``).

    Attributes
    ----------
    codes : ndarray of int64, shape (P, V, C)
        Token ids per visit, 0 ([PAD]) at padding.
    times : ndarray of float32, shape (P, V)
        Days since the patient's first kept visit; 0 at padding.
    mask : ndarray of bool, shape (P, V)
        True at real visits; visits are left-aligned, oldest first.
    code_mask : ndarray of bool, shape (P, V, C)
        True at real codes.
    n_unsorted_patients : int
        Patients whose visits were not in time order (they were sorted).
    n_dropped_visits : int
        Oldest visits dropped by ``max_visits``.
    n_dropped_codes : int
        Distinct codes dropped by ``max_codes`` (the first ``max_codes`` are kept).
    n_duplicate_codes : int
        Repeated ids within a visit, collapsed.
    n_unknown_codes : int
        Codes encoded as [UNK].
    n_empty_visits : int
        Visits without codes (kept, all codes padding).
    """

    codes: np.ndarray
    times: np.ndarray
    mask: np.ndarray
    code_mask: np.ndarray
    n_unsorted_patients: int = 0
    n_dropped_visits: int = 0
    n_dropped_codes: int = 0
    n_duplicate_codes: int = 0
    n_unknown_codes: int = 0
    n_empty_visits: int = 0

    def __len__(self) -> int:
        return int(self.codes.shape[0])


def _to_days(value: Any, where: str) -> float:
    """A visit time as days: numbers as given; dates, datetimes and ISO text since 1970-01-01."""
    if isinstance(value, bool):
        raise MashInputError(
            f"{where}: time must be a date, datetime, ISO text or number of days, got a bool"
        )
    if isinstance(value, (int, float, np.integer, np.floating)):
        days = float(value)
    elif isinstance(value, (str, datetime, date, np.datetime64, pd.Timestamp)):
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError) as exc:
            raise MashInputError(f"{where}: not a date or datetime: {value!r}") from exc
        if pd.isna(stamp):
            raise MashInputError(f"{where}: missing time")
        days = stamp.as_unit("ns").value / NS_PER_DAY
    else:
        raise MashInputError(
            f"{where}: time must be a date, datetime, ISO text or number, got {type(value).__name__}"
        )
    if not np.isfinite(days):
        raise MashInputError(f"{where}: time is not finite")
    return days


def _unique_first(ids: Sequence[int]) -> list[int]:
    """Distinct ids in order of first occurrence."""
    return list(dict.fromkeys(ids))


def encode_visits(
    vocab: Vocabulary,
    patients: Sequence[Sequence[tuple[Any, Iterable[str]]]],
    site: str,
    *,
    max_visits: int | None = None,
    max_codes: int | None = None,
) -> EncodedVisits:
    """Encode and pad the visit sequences of several patients.

    Parameters
    ----------
    vocab : Vocabulary
        Encodes the codes (:meth:`Vocabulary.encode`; unknown codes are counted in
        ``vocab.unknown``).
    patients : sequence of sequences of (time, codes)
        Per patient, its visits; ``time`` is a date, datetime, ``numpy.datetime64``,
        ISO text or a number of days; ``codes`` the site's codes recorded then.
    site : str
        The site's name.
    max_visits : int, optional
        Keep each patient's most recent ``max_visits`` visits.
    max_codes : int, optional
        Keep a visit's first ``max_codes`` distinct ids (in the order given).

    Returns
    -------
    EncodedVisits
        ``codes`` (P, V, C), ``times`` (P, V), ``mask`` (P, V), ``code_mask``
        (P, V, C), with V and C the largest kept counts; and the counts of what was
        sorted, collapsed or dropped.

    Raises
    ------
    MashInputError
        For no patients, a patient without visits (naming its index), a bad time or
        visit, an unknown site.
    """
    check_limit(max_visits, "max_visits")
    check_limit(max_codes, "max_codes")
    vocab.encode((), site)  # raises for an unknown site
    if isinstance(patients, (str, bytes)) or len(patients) == 0:
        raise MashInputError("patients must be a non-empty sequence of visit sequences")
    n_unknown_before = sum(vocab.unknown.values())
    days_of: list[np.ndarray] = []
    ids_of: list[list[list[int]]] = []
    n_unsorted = n_dropped_visits = n_dropped_codes = n_dup = n_empty = 0
    for p, visits in enumerate(patients):
        if isinstance(visits, (str, bytes)) or len(visits) == 0:
            raise MashInputError(f"patient {p} has no visits")
        days, ids = [], []
        for v, visit in enumerate(visits):
            where = f"patient {p}, visit {v}"
            if isinstance(visit, (str, bytes)) or len(visit) != 2:
                raise MashInputError(f"{where}: expected a (time, codes) pair")
            days.append(_to_days(visit[0], where))
            if isinstance(visit[1], (str, bytes)):
                raise MashInputError(f"{where}: codes must be a list of codes, got a string")
            raw = vocab.encode(visit[1], site)
            uniq = _unique_first(raw)
            n_dup += len(raw) - len(uniq)
            n_empty += not uniq
            if max_codes is not None and len(uniq) > max_codes:
                n_dropped_codes += len(uniq) - max_codes
                uniq = uniq[:max_codes]
            ids.append(uniq)
        day = np.asarray(days)
        if np.any(np.diff(day) < 0):
            n_unsorted += 1
            order = np.argsort(day, kind="stable")
            day, ids = day[order], [ids[i] for i in order]
        if max_visits is not None and len(ids) > max_visits:
            n_dropped_visits += len(ids) - max_visits  # Sequences.pad keeps the most recent
        days_of.append(day)
        ids_of.append(ids)
    seqs = from_visit_lists(site, days_of, ids_of)
    codes, times, mask = seqs.pad(np.arange(len(seqs)), max_visits=max_visits)
    return EncodedVisits(
        codes,
        times,
        mask,
        codes != PAD_ID,
        n_unsorted_patients=n_unsorted,
        n_dropped_visits=n_dropped_visits,
        n_dropped_codes=n_dropped_codes,
        n_duplicate_codes=n_dup,
        n_unknown_codes=sum(vocab.unknown.values()) - n_unknown_before,
        n_empty_visits=n_empty,
    )
