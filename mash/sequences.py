"""Ragged visit sequences of a whole site, as flat NumPy arrays (CSR-style).

A :class:`Sequences` holds every patient's visits — one visit per (subject, calendar
day) — and each visit's distinct token ids, in three flat arrays and two pointer
arrays::

    patient p's visits:  visit_ptr[p] .. visit_ptr[p+1]         (oldest first)
    visit v's tokens:    tokens[code_ptr[v] : code_ptr[v+1]]    (first recorded first)
    visit v's day:       visit_day[v]                           (days since 1970-01-01)

Everything is vectorised (no loop over events): millions of events take seconds.
:meth:`Sequences.pad` turns a batch of patients into the dense ``(codes, times, mask)``
arrays that :func:`mash.models.batch.collate` wraps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mash.errors import MashInputError
from mash.vocab import PAD_ID, UNK_ID

if TYPE_CHECKING:  # pragma: no cover
    from mash.sites import Site
    from mash.vocab import Vocabulary

__all__ = ["Sequences", "build_sequences", "concat", "from_visit_lists"]

NS_PER_DAY = 86_400 * 10**9
#: stats that describe the arrays themselves (recomputed by every transformation)
_SHAPE_STATS = ("n_patients", "n_visits", "n_tokens")


# --------------------------------------------------------------------------------------
# Vectorised helpers
# --------------------------------------------------------------------------------------


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + l)`` for every (s, l), without a Python loop.

    Parameters
    ----------
    starts, lengths : ndarray of int, shape (k,)

    Returns
    -------
    ndarray of int64, shape (lengths.sum(),)

    Examples
    --------
    >>> ranges(np.array([5, 0, 9]), np.array([2, 0, 3])).tolist()
    [5, 6, 9, 10, 11]
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


def rank_in_group(lengths: np.ndarray) -> np.ndarray:
    """Position of each element inside its group, groups of the given lengths laid end to end.

    Examples
    --------
    >>> rank_in_group(np.array([2, 0, 3])).tolist()
    [0, 1, 0, 1, 2]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    return ranges(np.zeros_like(lengths), lengths)


def first_occurrence(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each ``(group, value)`` pair, in the given order.

    Parameters
    ----------
    group, value : ndarray of int, shape (n,)

    Returns
    -------
    ndarray of bool, shape (n,)

    Examples
    --------
    >>> first_occurrence(np.array([0, 0, 0, 1]), np.array([7, 3, 7, 7])).tolist()
    [True, True, False, True]
    """
    n = len(group)
    order = np.lexsort((np.arange(n), value, group))
    g, v = group[order], value[order]
    repeat = np.zeros(n, dtype=bool)
    repeat[1:] = (g[1:] == g[:-1]) & (v[1:] == v[:-1])
    first = np.empty(n, dtype=bool)
    first[order] = ~repeat
    return first


def _ptr(lengths: np.ndarray) -> np.ndarray:
    """Pointer array ``[0, cumsum(lengths)]``, int64, shape (k + 1,)."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def check_limit(value: int | None, name: str) -> None:
    """Raise unless ``value`` is a positive integer or None (``max_visits``, ``max_codes``)."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1
    ):
        raise MashInputError(f"{name} must be a positive integer or None, got {value!r}")


def _check_ptr(ptr: np.ndarray, n_items: int, name: str) -> None:
    if (
        ptr.ndim != 1
        or ptr.size == 0
        or ptr[0] != 0
        or ptr[-1] != n_items
        or (np.diff(ptr) < 0).any()
    ):
        raise MashInputError(f"{name} must start at 0, never decrease and end at {n_items}")


# --------------------------------------------------------------------------------------
# Sequences
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sequences:
    """Visit sequences of many patients, ragged, as flat arrays.

    Attributes
    ----------
    site : str
        The site's name (``"A+B"`` after :func:`concat`).
    subjects : ndarray of object, shape (P,)
        Subject ids.
    visit_ptr : ndarray of int64, shape (P + 1,)
        Patient ``p``'s visits are ``visit_ptr[p]:visit_ptr[p + 1]``, oldest first.
    visit_day : ndarray of float64, shape (n_visits,)
        Each visit's calendar day, in days since 1970-01-01.
    code_ptr : ndarray of int64, shape (n_visits + 1,)
        Visit ``v``'s tokens are ``tokens[code_ptr[v]:code_ptr[v + 1]]``.
    tokens : ndarray of int64, shape (n_tokens,)
        Token ids, distinct within a visit, in the order first recorded.
    stats : dict
        ``n_patients``, ``n_visits``, ``n_tokens`` describe these arrays; the build
        counts (``n_events``, ``n_unknown_events``, ``n_unknown_codes``,
        ``n_duplicate_tokens``) and ``n_empty_after_cutoff`` /
        ``n_visits_after_cutoff`` (from :meth:`until`) describe how they were made.
    site_of : ndarray of object, shape (P,)
        Each patient's site (all ``site`` unless concatenated).
    """

    site: str
    subjects: np.ndarray
    visit_ptr: np.ndarray
    visit_day: np.ndarray
    code_ptr: np.ndarray
    tokens: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)
    site_of: np.ndarray | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "subjects", np.asarray(self.subjects, dtype=object))
        set_(self, "visit_ptr", np.asarray(self.visit_ptr, dtype=np.int64))
        set_(self, "visit_day", np.asarray(self.visit_day, dtype=np.float64))
        set_(self, "code_ptr", np.asarray(self.code_ptr, dtype=np.int64))
        set_(self, "tokens", np.asarray(self.tokens, dtype=np.int64))
        n_p = self.subjects.shape[0]
        site_of = (
            np.full(n_p, self.site, dtype=object)
            if self.site_of is None
            else np.asarray(self.site_of, dtype=object)
        )
        set_(self, "site_of", site_of)
        if self.visit_ptr.shape != (n_p + 1,) or site_of.shape != (n_p,):
            raise MashInputError(f"visit_ptr must have shape ({n_p + 1},) and site_of ({n_p},)")
        _check_ptr(self.visit_ptr, self.visit_day.shape[0], "visit_ptr")
        _check_ptr(self.code_ptr, self.tokens.shape[0], "code_ptr")
        if self.code_ptr.shape[0] != self.visit_day.shape[0] + 1:
            raise MashInputError("code_ptr must have one entry more than visit_day")
        stats = dict(self.stats)
        stats.update(
            n_patients=n_p,
            n_visits=int(self.visit_day.shape[0]),
            n_tokens=int(self.tokens.shape[0]),
        )
        set_(self, "stats", stats)

    def __len__(self) -> int:
        return int(self.subjects.shape[0])

    def __repr__(self) -> str:
        return f"Sequences(site={self.site!r}, patients={len(self)}, visits={self.stats['n_visits']}, tokens={self.stats['n_tokens']})"

    def n_visits(self) -> np.ndarray:
        """Visits per patient, int64 of shape (P,)."""
        return np.diff(self.visit_ptr)

    def nonempty(self) -> np.ndarray:
        """Indices of patients with at least one visit, int64 of shape (≤ P,)."""
        return np.flatnonzero(self.n_visits() > 0)

    def visit_patient(self) -> np.ndarray:
        """The patient index of every visit, int64 of shape (n_visits,)."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.n_visits())

    # ---- selections -------------------------------------------------------------------

    def subset(self, idx: np.ndarray | Sequence[int]) -> Sequences:
        """The patients ``idx`` (int indices, in that order, or a boolean mask of shape (P,))."""
        idx = self._indices(idx)
        n_kept = self.n_visits()[idx]
        return self._take(idx, ranges(self.visit_ptr[idx], n_kept), n_kept, self.stats)

    def until(self, day_per_patient: np.ndarray) -> Sequences:
        """Drop every visit strictly after its patient's cutoff day.

        Parameters
        ----------
        day_per_patient : ndarray, shape (P,)
            Cutoffs as days since 1970-01-01 (float; ``inf`` keeps all) or datetime64.

        Returns
        -------
        Sequences
            The same patients; those now without visits stay (with zero visits) and are
            counted in ``stats["n_empty_after_cutoff"]``; dropped visits are added to
            ``stats["n_visits_after_cutoff"]``.
        """
        cut = np.asarray(day_per_patient)
        if np.issubdtype(cut.dtype, np.datetime64):
            cut = cut.astype("datetime64[ns]").astype(np.int64) / NS_PER_DAY
        try:
            cut = cut.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise MashInputError("cutoffs must be numbers of days or datetime64") from exc
        if cut.shape != (len(self),):
            raise MashInputError(f"cutoffs must have shape ({len(self)},), got {cut.shape}")
        if np.isnan(cut).any():
            raise MashInputError(
                f"cutoff of patient {int(np.flatnonzero(np.isnan(cut))[0])} is NaN"
            )
        patient = self.visit_patient()
        keep = self.visit_day <= cut[patient]
        n_kept = np.bincount(patient[keep], minlength=len(self))
        stats = dict(self.stats)
        stats["n_visits_after_cutoff"] = stats.get("n_visits_after_cutoff", 0) + int((~keep).sum())
        stats["n_empty_after_cutoff"] = int((n_kept == 0).sum())
        return self._take(np.arange(len(self)), np.flatnonzero(keep), n_kept, stats)

    def pad(
        self,
        idx: np.ndarray | Sequence[int],
        *,
        max_visits: int | None = None,
        max_codes: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dense arrays of a batch of patients, most recent visits kept.

        Parameters
        ----------
        idx : ndarray of int, shape (B,), or bool mask of shape (P,)
            The patients; each needs at least one visit (see :meth:`nonempty`).
        max_visits : int, optional
            Keep each patient's ``max_visits`` most recent visits.
        max_codes : int, optional
            Keep a visit's first ``max_codes`` tokens (in the order first recorded that
            day). Nothing is counted here: :meth:`n_visits` and ``code_ptr`` tell how
            much a limit cuts.

        Returns
        -------
        codes : ndarray of int64, shape (B, V, C)
            0 ([PAD]) at padding; V, C the largest kept counts in the batch.
        times : ndarray of float32, shape (B, V)
            Days since the patient's first kept visit; 0 at padding.
        mask : ndarray of bool, shape (B, V)
            True at real visits (left-aligned, oldest first).
        """
        check_limit(max_visits, "max_visits")
        check_limit(max_codes, "max_codes")
        idx = self._indices(idx)
        if idx.size == 0:
            raise MashInputError("pad needs at least one patient")
        nv = self.n_visits()[idx]
        if (nv == 0).any():
            p = int(idx[np.flatnonzero(nv == 0)[0]])
            raise MashInputError(
                f"patient {p} ({self.subjects[p]!r}) has no visits; select with nonempty()"
            )
        n_v = int(nv.max()) if max_visits is None else min(int(nv.max()), int(max_visits))
        k = np.minimum(nv, n_v)
        visits = ranges(self.visit_ptr[idx + 1] - k, k)
        row = np.repeat(np.arange(idx.size), k)
        col = rank_in_group(k)
        lengths = np.diff(self.code_ptr)[visits]
        n_c = max(1, int(lengths.max()))
        if max_codes is not None:
            n_c = min(n_c, int(max_codes))
        kc = np.minimum(lengths, n_c)
        codes = np.full((idx.size, n_v, n_c), PAD_ID, dtype=np.int64)
        codes[np.repeat(row, kc), np.repeat(col, kc), rank_in_group(kc)] = self.tokens[
            ranges(self.code_ptr[visits], kc)
        ]
        day = self.visit_day[visits]
        first = np.repeat(day[np.cumsum(k) - k], k)
        times = np.zeros((idx.size, n_v), dtype=np.float32)
        times[row, col] = day - first
        mask = np.zeros((idx.size, n_v), dtype=bool)
        mask[row, col] = True
        return codes, times, mask

    # ---- helpers ------------------------------------------------------------------------

    def _indices(self, idx: np.ndarray | Sequence[int]) -> np.ndarray:
        arr = np.asarray(idx)
        if arr.dtype == bool:
            if arr.shape != (len(self),):
                raise MashInputError(
                    f"a boolean selection must have shape ({len(self)},), got {arr.shape}"
                )
            return np.flatnonzero(arr)
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise MashInputError(
                "patients must be selected by a 1-D array of int indices or a boolean mask"
            )
        if (arr < 0).any() or (arr >= len(self)).any():
            bad = int(arr[(arr < 0) | (arr >= len(self))][0])
            raise MashInputError(f"patient index {bad} out of range 0..{len(self) - 1}")
        return arr.astype(np.int64)

    def _take(
        self, idx: np.ndarray, visits: np.ndarray, n_kept: np.ndarray, stats: Mapping[str, Any]
    ) -> Sequences:
        """Patients ``idx`` with the given ``visits`` (global indices, grouped by patient in
        the order of ``idx``, oldest first), ``n_kept[b]`` of them for patient ``idx[b]``."""
        lengths = np.diff(self.code_ptr)[visits]
        return replace(
            self,
            subjects=self.subjects[idx],
            visit_ptr=_ptr(n_kept),
            visit_day=self.visit_day[visits],
            code_ptr=_ptr(lengths),
            tokens=self.tokens[ranges(self.code_ptr[visits], lengths)],
            stats=dict(stats),
            site_of=self.site_of[idx],
        )


# --------------------------------------------------------------------------------------
# Building and combining
# --------------------------------------------------------------------------------------


def build_sequences(site: Site, vocab: Vocabulary) -> Sequences:
    """A site's events as visit sequences of vocabulary ids.

    One visit per (subject, calendar day); codes map as :meth:`Vocabulary.encode`
    does (the code table is mapped once, then indexed by each event's ``code_idx``):
    unknown codes become [UNK], are counted in ``stats`` and in ``vocab.unknown``.
    Repeated ids within a visit are collapsed (counted in ``n_duplicate_tokens``).

    Parameters
    ----------
    site : Site
    vocab : Vocabulary

    Returns
    -------
    Sequences
        Patients sorted by subject id.

    Raises
    ------
    MashInputError
        If the vocabulary does not know the site.
    """
    table = vocab.site_codes(site.name)  # raises for an unknown site
    codes = site.codes["code"].astype(str).to_numpy(dtype=object)
    code_id = np.fromiter((table.get(c, UNK_ID) for c in codes), dtype=np.int64, count=len(codes))
    ev = site.events
    code_idx = ev["code_idx"].to_numpy(np.int64)
    tok = code_id[code_idx]
    unknown = tok == UNK_ID
    per_code = np.bincount(code_idx[unknown], minlength=len(codes))
    for i in np.flatnonzero(per_code):
        vocab.unknown[(site.name, str(codes[i]))] += int(per_code[i])

    subj, subjects = pd.factorize(ev["subject_id"].astype(str), sort=True)
    day = np.floor_divide(ev["time"].to_numpy("datetime64[ns]").astype(np.int64), NS_PER_DAY)
    n = len(tok)
    order = np.lexsort((np.arange(n), day, subj))
    subj, day, tok = subj[order], day[order], tok[order]
    new_visit = np.ones(n, dtype=bool)
    new_visit[1:] = (subj[1:] != subj[:-1]) | (day[1:] != day[:-1])
    visit = np.cumsum(new_visit) - 1
    first = first_occurrence(visit, tok)
    n_visits = int(new_visit.sum())
    stats = {
        "n_events": n,
        "n_unknown_events": int(unknown.sum()),
        "n_unknown_codes": int((per_code > 0).sum()),
        "n_duplicate_tokens": int(n - first.sum()),
        "vocab_fingerprint": vocab.fingerprint,
        "vocab_size": len(vocab),
    }
    return Sequences(
        site=site.name,
        subjects=np.asarray(subjects, dtype=object),
        visit_ptr=_ptr(np.bincount(subj[new_visit], minlength=len(subjects))),
        visit_day=day[new_visit].astype(np.float64),
        code_ptr=_ptr(np.bincount(visit[first], minlength=n_visits)),
        tokens=tok[first],
        stats=stats,
    )


def from_visit_lists(
    site: str,
    days: Sequence[Sequence[float]],
    ids: Sequence[Sequence[Sequence[int]]],
) -> Sequences:
    """Sequences from nested lists: per patient, each visit's day and its token ids.

    Parameters
    ----------
    site : str
    days : sequence of sequences of float, P × (visits of each patient)
        Each visit's day (days since 1970-01-01), oldest first.
    ids : sequence of sequences of sequences of int, P × visits × (ids of each visit)
        Each visit's token ids, taken as given (no deduplication).

    Returns
    -------
    Sequences
        Subjects ``0 .. P-1``, in the order given.

    Examples
    --------
    >>> seqs = from_visit_lists("A", [[3.0, 5.0], [1.0]], [[[7, 8], []], [[9]]])
    >>> seqs.visit_ptr.tolist(), seqs.code_ptr.tolist(), seqs.tokens.tolist()
    ([0, 2, 3], [0, 2, 2, 3], [7, 8, 9])
    """
    if len(days) != len(ids) or any(len(d) != len(i) for d, i in zip(days, ids, strict=True)):
        raise MashInputError("days and ids must give the same patients and visits")
    visits = [v for patient in ids for v in patient]
    return Sequences(
        site=site,
        subjects=np.arange(len(ids)),
        visit_ptr=_ptr(np.array([len(patient) for patient in ids], dtype=np.int64)),
        visit_day=np.fromiter((d for patient in days for d in patient), dtype=np.float64),
        code_ptr=_ptr(np.array([len(v) for v in visits], dtype=np.int64)),
        tokens=np.fromiter((i for v in visits for i in v), dtype=np.int64),
    )


def concat(parts: Sequence[Sequences]) -> Sequences:
    """Patients of several :class:`Sequences` one after another (e.g. several sites).

    ``site`` becomes the ``"+"``-joined names, ``site_of`` keeps each patient's site;
    numeric build counts are summed. All parts must come from one vocabulary (equal
    ``stats["vocab_fingerprint"]`` where recorded).

    Raises
    ------
    MashInputError
        For no parts or parts from different vocabularies.
    """
    parts = list(parts)
    if not parts:
        raise MashInputError("concat needs at least one Sequences")
    prints = {p.stats.get("vocab_fingerprint") for p in parts} - {None}
    if len(prints) > 1:
        raise MashInputError("cannot concatenate sequences encoded with different vocabularies")
    stats: dict[str, Any] = {}
    for p in parts:
        for key, value in p.stats.items():
            if key in _SHAPE_STATS:
                continue
            if (
                isinstance(value, (int, np.integer))
                and not isinstance(value, bool)
                and key != "vocab_size"
            ):
                stats[key] = stats.get(key, 0) + int(value)
            else:
                stats.setdefault(key, value)
    visit_off = np.cumsum([0] + [p.visit_day.shape[0] for p in parts[:-1]])
    token_off = np.cumsum([0] + [p.tokens.shape[0] for p in parts[:-1]])
    return Sequences(
        site="+".join(p.site for p in parts),
        subjects=np.concatenate([p.subjects for p in parts]),
        visit_ptr=np.concatenate(
            [[0]] + [p.visit_ptr[1:] + o for p, o in zip(parts, visit_off, strict=True)]
        ),
        visit_day=np.concatenate([p.visit_day for p in parts]),
        code_ptr=np.concatenate(
            [[0]] + [p.code_ptr[1:] + o for p, o in zip(parts, token_off, strict=True)]
        ),
        tokens=np.concatenate([p.tokens for p in parts]),
        stats=stats,
        site_of=np.concatenate([p.site_of for p in parts]),
    )
