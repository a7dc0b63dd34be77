"""Formatting a site's records as ``codes`` and ``events`` tables, and writing them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mash._io import atomic_path, write_csv
from mash.synth._calendar import iso_dates
from mash.synth.coding import SiteRecords
from mash.synth.config import EVENTS_FORMATS
from mash.synth.profiles import subject_ids

__all__ = [
    "gold_table",
    "merge_domain_tables",
    "opaque_ids",
    "opaque_key_table",
    "site_frames",
    "unshared_table",
    "write_events",
    "write_site",
]

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


def merge_domain_tables(
    codes: pd.DataFrame, events: pd.DataFrame, extra: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A site's diagnosis tables with its lab and medication tables, sorted.

    Parameters
    ----------
    codes, events : pandas.DataFrame
        From :func:`site_frames`.
    extra : mash.synth.domains.SiteDomainTables

    Returns
    -------
    codes : DataFrame (code, description, domain), sorted by code
    events : DataFrame (subject_id, time, code, numeric_value, unit), sorted by
        subject, time, code
    """
    both = pd.concat([codes, extra.codes], ignore_index=True)
    if both["code"].duplicated().any():  # local ids are drawn apart; a clash is a bug
        clash = both.loc[both["code"].duplicated(), "code"].iloc[0]
        raise AssertionError(f"simulated code {clash!r} written twice")
    both = both.sort_values("code", kind="stable", ignore_index=True)
    ev = events.assign(numeric_value=np.nan, unit="")
    ev = pd.concat([ev, extra.events], ignore_index=True)
    ev = ev.sort_values(["subject_id", "time", "code"], kind="stable", ignore_index=True)
    return both, ev


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
    if "numeric_value" in events:
        table = table.append_column(
            "numeric_value", pa.array(events["numeric_value"].to_numpy(), type=pa.float64())
        )
    if "unit" in events:
        unit = events["unit"].to_numpy(dtype=object)
        table = table.append_column(
            "unit", pa.array(np.where(unit == "", None, unit), type=pa.string())
        )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_site(site_dir: Path, codes: pd.DataFrame, events: pd.DataFrame, fmt: str) -> None:
    """Write one site's ``codes.csv`` and events file (see :func:`write_events`).

    An events file of the other format left in ``site_dir`` by an earlier run is
    removed: with two, the site would be ambiguous.

    Parameters
    ----------
    site_dir : Path
    codes, events : pandas.DataFrame
        From :func:`site_frames`.
    fmt : {"csv", "parquet"}
    """
    write_csv(site_dir / "codes.csv", codes)
    write_events(site_dir / f"events.{fmt}", events, fmt)
    for other in EVENTS_FORMATS:
        stale = site_dir / f"events.{other}"
        if other != fmt and stale.exists():
            stale.unlink()


def gold_table(code: np.ndarray, reference_code: np.ndarray, site: str = "site_A") -> pd.DataFrame:
    """``gold.csv`` rows: a site's codes and their site_B counterparts, sorted.

    Parameters
    ----------
    code, reference_code : ndarray of object (str), shape (n_pairs,)
        Written codes of each pair at ``site`` and at site_B.
    site : str

    Returns
    -------
    pandas.DataFrame, shape (n_pairs, 4)
        ``site, code, reference_site, reference_code``, by code then reference code.
    """
    return pd.DataFrame(
        {
            "site": site,
            "code": code,
            "reference_site": "site_B",
            "reference_code": reference_code,
        }
    ).sort_values(["code", "reference_code"], kind="stable", ignore_index=True)


def opaque_key_table(site: str, code: np.ndarray, source_code: np.ndarray) -> pd.DataFrame:
    """``opaque_key.csv``: the real code each opaque id of ``site`` stands for, by id.

    Parameters
    ----------
    site : str
    code, source_code : ndarray of object (str), shape (n_codes,)
        Opaque ids and the codes they replace.

    Returns
    -------
    pandas.DataFrame, shape (n_codes, 3)
        ``site, code, source_code``.
    """
    return pd.DataFrame({"site": site, "code": code, "source_code": source_code}).sort_values(
        "code", kind="stable", ignore_index=True
    )


def unshared_table(code: np.ndarray) -> pd.DataFrame:
    """``unshared.csv``: site_A codes of the conditions site_B never records, sorted.

    Parameters
    ----------
    code : ndarray of object (str), shape (n_codes,)

    Returns
    -------
    pandas.DataFrame, shape (n_codes, 2)
        ``site, code``.
    """
    table = pd.DataFrame({"site": "site_A", "code": code})
    return table.sort_values("code", kind="stable", ignore_index=True)
