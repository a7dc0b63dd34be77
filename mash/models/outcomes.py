"""Outcome tables: read ``outcomes.csv`` and attach labels to visit sequences.

``outcomes.csv`` has one row per patient: ``subject_id``, an optional ``index_time``
(the prediction time: only visits on or before that day are model input) and one or
more label columns. An empty label means "not in this outcome's cohort". Every row
that cannot be used is counted, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mash.errors import MashInputError
from mash.sequences import Sequences

__all__ = ["Labelled", "attach_outcomes", "cut_at_index", "infer_task", "read_outcomes"]


def _reject_first(bad: pd.Series, values: pd.Series, message: str, path: Path, column: str) -> None:
    """Raise for the first row where ``bad`` holds, naming the file, row and column.

    ``message`` is formatted with that row's entry of ``values`` (``{!r}``).
    """
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MashInputError(message.format(values.iloc[first]), file=path, row=first + 1, column=column)


_MAX_LABEL = 1e150  # (1e150)² = 1e300 < the float64 maximum (1.8e308)


def _index_days(text: pd.Series, path: Path) -> np.ndarray:
    """``index_time`` text as float days since 1970-01-01 (NaN where blank).

    Parsed as site event times are (:func:`mash.sites.parse_time_text`): ISO 8601 only,
    complete dates, UTC offsets converted to UTC, so an index time compares with the
    events' times on one clock.
    """
    import pyarrow as pa

    from mash.sites import parse_time_text

    times, missing = parse_time_text(
        pa.array(text.to_numpy(dtype=object), pa.string()), str(path), "index_time"
    )
    us = times.astype("datetime64[us]").astype(np.int64).astype(float)
    return np.where(missing, np.nan, us / 86_400e6)


def read_outcomes(path: str | Path, target: str | None) -> pd.DataFrame:
    """Read ``subject_id``, ``index_time`` (optional) and the ``target`` column.

    Parameters
    ----------
    path : str or Path
    target : str or None
        The label column; None reads only subjects and index times (``label`` all NaN).

    Returns
    -------
    DataFrame
        Columns ``subject_id`` (str), ``index_day`` (float days since 1970-01-01, NaN
        when absent), ``label`` (float, NaN = not in the cohort), ``row`` (1-based).

    Raises
    ------
    MashInputError
        Missing file or columns, a duplicate subject, a label that does not parse or an
        ``index_time`` that is not a complete ISO 8601 date or datetime (``31/01/2020``
        and ``2020-01`` are rejected, as in site files; a UTC offset converts to UTC).
        The error names the file, the 1-based data row and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise MashInputError("outcomes file not found", file=path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MashInputError(f"not a readable CSV ({type(exc).__name__})", file=path) from None
    raw.columns = [c.strip() for c in raw.columns]
    if "subject_id" not in raw.columns and "patient_id" in raw.columns:
        raw = raw.rename(columns={"patient_id": "subject_id"})
    for col in ("subject_id", target) if target is not None else ("subject_id",):
        if col not in raw.columns:
            labels = [c for c in raw.columns if c not in ("subject_id", "index_time")]
            raise MashInputError(
                f"missing column {col!r}; label columns found: {', '.join(labels) or 'none'}",
                file=path,
            )
    subject = raw["subject_id"].str.strip()
    _reject_first(subject == "", subject, "empty subject_id", path, "subject_id")
    _reject_first(subject.duplicated(), subject, "subject {!r} appears twice", path, "subject_id")
    text = raw[target].str.strip() if target is not None else pd.Series("", index=raw.index)
    label = pd.to_numeric(text.where(text != ""), errors="coerce")
    _reject_first(label.isna() & (text != ""), text, "not a number: {!r}", path, target)
    # a label whose square overflows cannot be standardised or trained on
    _reject_first(label.abs() >= _MAX_LABEL, text, f"{{!r}} is not a finite number below {_MAX_LABEL:.0e} in size",
                  path, target)
    index_day = np.full(len(raw), np.nan)
    if "index_time" in raw.columns:
        index_day = _index_days(raw["index_time"], path)
    return pd.DataFrame(
        {"subject_id": subject, "index_day": index_day, "label": label.to_numpy(float),
         "row": np.arange(1, len(raw) + 1)}
    )


def infer_task(labels: np.ndarray) -> str:
    """``classification`` when every label is 0 or 1, else ``regression``."""
    values = np.unique(labels[~np.isnan(labels)])
    return "classification" if set(values.tolist()) <= {0.0, 1.0} else "regression"


@dataclass
class Labelled:
    """Sequences cut at each patient's index time, with their labels.

    Attributes
    ----------
    seqs : Sequences
        Only patients with a label and at least one visit at or before the index time.
    labels : ndarray of float, shape (len(seqs),)
    stats : dict
        ``outcome_rows``, ``not_in_cohort`` (empty label), ``unknown_subject`` (no
        events at the site), ``no_history`` (no visit at or before ``index_time``),
        ``used``, and ``patients_without_outcome``.
    """

    seqs: Sequences
    labels: np.ndarray
    stats: dict = field(default_factory=dict)


def cut_at_index(seqs: Sequences, outcomes: pd.DataFrame) -> Sequences:
    """Drop the visits after each listed patient's index time (for pretraining).

    Patients absent from ``outcomes``, or listed without an index time, keep every visit;
    patients left with no visit are removed. Nothing from an outcome window then reaches
    a pretrained encoder that is later fine-tuned on those outcomes.

    Parameters
    ----------
    seqs : Sequences
    outcomes : DataFrame
        As returned by :func:`read_outcomes` (``subject_id``, ``index_day``).

    Returns
    -------
    Sequences
        ``stats`` gains ``n_visits_after_cutoff`` and ``n_empty_after_cutoff`` (see
        :meth:`Sequences.until`) and ``n_index_times`` (patients cut at one).
    """
    pos = pd.Index(seqs.subjects).get_indexer(outcomes["subject_id"])
    index_day = outcomes["index_day"].to_numpy(float)
    ok = (pos >= 0) & np.isfinite(index_day)
    day = np.full(len(seqs), np.inf)
    day[pos[ok]] = index_day[ok]
    cut = seqs.until(day)
    cut.stats["n_index_times"] = int(ok.sum())
    return cut.subset(cut.nonempty())


def attach_outcomes(seqs: Sequences, outcomes: pd.DataFrame) -> Labelled:
    """Match outcome rows to patients, cut histories at the index time, count losses.

    Parameters
    ----------
    seqs : Sequences
    outcomes : DataFrame
        As returned by :func:`read_outcomes`.

    Returns
    -------
    Labelled
    """
    pos = pd.Index(seqs.subjects).get_indexer(outcomes["subject_id"])
    in_cohort = ~np.isnan(outcomes["label"].to_numpy())
    known = pos >= 0
    keep = in_cohort & known
    rows = outcomes[keep]
    idx = pos[keep]
    cut = seqs.subset(idx)
    day = rows["index_day"].to_numpy()
    if not np.isnan(day).all():
        cut = cut.until(np.where(np.isnan(day), np.inf, day))
    has = np.asarray(cut.n_visits()) > 0
    labels = rows["label"].to_numpy(float)[has]
    stats = {
        "outcome_rows": int(len(outcomes)),
        "not_in_cohort": int((~in_cohort).sum()),
        "unknown_subject": int((in_cohort & ~known).sum()),
        "no_history": int((~has).sum()),
        "used": int(has.sum()),
        "patients_without_outcome": int(len(seqs) - len(np.unique(pos[known]))),
    }
    return Labelled(cut.subset(np.flatnonzero(has)), labels, stats)
