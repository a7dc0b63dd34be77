"""Formatting a site's records as ``codes`` and ``events`` tables, and writing them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mash._io import atomic_path, write_csv
from mash.synth._calendar import iso_dates
from mash.synth.coding import SiteRecords
from mash.synth.profiles import subject_ids

__all__ = ["opaque_ids", "site_frames", "write_events"]

#: The ``domain`` of every code the simulator writes.
DOMAIN = "diagnosis"


def opaque_ids(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unique local ids ``L`` + 6 digits (more digits past 900k codes), shape (n,)."""
    width = max(6, len(str(max(n - 1, 0))) + 1)
    draws = rng.choice(10**width, size=n, replace=False)
    return np.array([f"L{x:0{width}d}" for x in draws], dtype=object)


def site_frames(
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
    ids = subject_ids(id_prefix, n_patients)
    days, day_inv = np.unique(records.day[order], return_inverse=True)
    day_str = iso_dates(days)
    events = pd.DataFrame(
        {
            "subject_id": ids[records.subject[order]],
            "time": day_str[day_inv],
            "code": written[records.code[order]],
        }
    )
    return codes, events, written


def write_events(path: Path, events: pd.DataFrame, fmt: str) -> None:
    """Write a site's events as ``events.csv`` or, for ``fmt="parquet"``, ``events.parquet``.

    Parameters
    ----------
    path : Path
    events : pandas.DataFrame
        Columns ``subject_id``, ``time`` (``YYYY-MM-DD``), ``code``.
    fmt : {"csv", "parquet"}
        Parquet stores ``time`` as ``timestamp[us]``, as in MEDS.
    """
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
