"""Sites: one institution's codes and events, loaded and validated.

A site is a directory holding a code list and an event table (see ``docs/`` and the
contract)::

    site_A/
      codes.csv   | codes.parquet   | metadata/codes.parquet (MEDS)
      events.csv  | events.parquet  | data/**/*.parquet      (MEDS shards)

The events are optional: a site with a code list and no events file (or an events
table with a header and no rows) is a *text-only* site, e.g. a reference that lists a
whole standard vocabulary. It loads with zero events, its codes can only be aligned
by their descriptions, and :attr:`Site.report` says so (``no_events``).

:meth:`Site.load` reads it, checks it and returns a :class:`Site` whose tables have
fixed columns and dtypes. Every problem that makes the data unusable raises a
:class:`~mash.errors.MashInputError` naming the file, the 1-based data row (the
header is row 0) and the column. Problems that can be repaired without guessing
(event codes missing from the code list, exact duplicate events, non-numeric
values...) are repaired, counted in :attr:`Site.report` and announced with one
:class:`SiteDataWarning` each. Nothing is dropped without being counted.

All checks are vectorised (DuckDB reads CSV, PyArrow reads Parquet, NumPy and
PyArrow compute do the rest): millions of events load in seconds.
"""

from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import io
import math
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mash._io import sha256_file
from mash.errors import MashInputError

__all__ = ["DOMAINS", "Site", "SiteDataWarning", "parse_time_text"]

#: Values the optional ``domain`` column is expected to hold (others are kept and counted).
DOMAINS: tuple[str, ...] = ("diagnosis", "medication", "lab", "procedure", "other")

_ALIASES = {"patient_id": "subject_id", "parent_codes": "parent"}
_SNIFF_BYTES = 4 << 20  # bytes of a text file checked for NUL bytes and UTF-8 up front
_MAX_LINE_BYTES = 64 << 20  # longest CSV row DuckDB reads (its default, 2 MB, is too short)
_CODE_COLUMNS = ("code", "parent")  # columns holding codes: text only, leading zeros matter
_N_EXAMPLES = 5
_NULL_TOKENS = ("", "na", "n/a", "nan", "null", "none")  # numeric_value text meaning "absent"
_TIME_HINT = "an ISO date or datetime such as 2020-01-31 or 2020-01-31T08:30:00"
_PARTIAL_DATE = r"^[+-]?[0-9]{4}(-[0-9]{1,2})?$"  # a year or a year-month: no day
# datetime64[ns] covers 1677-09-21 .. 2262-04-11; stay a day inside the limits.
_NS_MIN = np.datetime64("1677-09-22", "us")
_NS_MAX = np.datetime64("2262-04-10", "us")
_STRING = pd.StringDtype()


class SiteDataWarning(UserWarning):
    """Rows of a site were repaired or skipped; :attr:`Site.report` has the counts."""


# --------------------------------------------------------------------------------------
# The Site object
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Site:
    """One institution's validated code list and events.

    Build it with :meth:`Site.load` (a site directory) or :meth:`Site.from_frames`
    (two DataFrames); both run the same checks. The constructor itself checks
    nothing.

    Parameters
    ----------
    name : str
        The site's name (by default its directory's name).
    codes : pandas.DataFrame
        One row per local code, in file order, with a ``RangeIndex`` and the columns
        ``code`` (``string``, unique, stripped), ``description`` (``string``, non-empty),
        ``domain`` (``string``, lower case, ``<NA>`` where absent) and ``parent``
        (``string``, ``<NA>`` where absent).
    events : pandas.DataFrame
        One row per distinct recorded event, shape ``(n_events, 6)``, with a
        ``RangeIndex`` and the columns ``subject_id`` (``string``), ``time``
        (``datetime64[ns]`` to the microsecond, naive; inputs with a UTC offset
        are converted to UTC),
        ``code`` (``string``), ``code_idx`` (``int32``, the row of ``code`` in
        ``codes``), ``numeric_value`` (``float64``, NaN where absent) and ``unit``
        (``category`` of text, NaN where absent or no ``unit`` column). Sorted by
        ``(subject_id, time, code, numeric_value)`` with text compared by code
        point and NaN last; exact duplicates are collapsed, so the order does not
        depend on the input's row order. Zero rows, with these columns and dtypes,
        for a text-only site.
    source : dict of str to (str or None)
        ``{"codes": path, "events": path}`` as read (``"<codes>"``/``"<events>"``
        for :meth:`from_frames`; the ``data/`` folder for MEDS shards); ``"events"``
        is None when the site has no events file (or :meth:`from_frames` got no
        events frame).
    input_hashes : dict of str to str
        SHA-256 of every file read, keyed by path (for :meth:`from_frames`, of the
        validated tables, keyed ``"<codes>"``/``"<events>"``).
    report : dict
        Rows read, skipped and repaired. Always has the keys ``rows`` (counts read
        and kept), ``unknown_event_codes``, ``duplicate_events``,
        ``non_numeric_values``, ``static_events``, ``unknown_parents``,
        ``self_parents``, ``parent_cycles``, ``multiple_parents``,
        ``unknown_domains``, ``trimmed_whitespace``, ``blank_optional_values``,
        ``units_without_value``, ``codes_with_missing_units`` and
        ``codes_with_several_units`` (the latter two counted in codes) and
        ``codes_without_events`` (codes listed but in no kept event: normal, kept,
        not warned about; its examples are the first in code order); each of the
        latter is a dict with at least ``rows`` (how many rows, or values) and
        ``action`` (what was done), and where useful ``distinct_codes``,
        ``examples`` (at most 5, most frequent first) and ``by_column``. A
        text-only site also has
        ``no_events``: ``{"rows": 0, "action": "text only: ...", "reason": ...}``
        (the reason says whether the events file is missing or empty), announced
        with one :class:`SiteDataWarning`.

    Examples
    --------
    >>> import pandas as pd
    >>> codes = pd.DataFrame({"code": ["0010", "0020"], "description": ["flu", "cold"]})
    >>> events = pd.DataFrame({"patient_id": [2, 1, 1], "code": ["0020", "0020", "0010"],
    ...                        "time": ["2020-01-02", "2020-01-01", "2020-01-01 08:00"]})
    >>> site = Site.from_frames("demo", codes, events)
    >>> site.n_codes, site.n_events, site.n_subjects
    (2, 3, 2)
    >>> site.events[["subject_id", "code", "code_idx"]].values.tolist()
    [['1', '0020', 1], ['1', '0010', 0], ['2', '0020', 1]]
    >>> site.code_counts().tolist()
    [1, 2]
    """

    name: str
    codes: pd.DataFrame
    events: pd.DataFrame
    source: dict[str, str] = field(default_factory=dict)
    input_hashes: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    # ---- constructors -----------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> Site:
        """Read and validate a site directory.

        Parameters
        ----------
        path : str or Path
            The site directory. It holds ``codes.csv`` or ``codes.parquet`` (or,
            MEDS-style, ``metadata/codes.parquet``) and, optionally, ``events.csv``
            or ``events.parquet`` (or, MEDS-style, a ``data/`` folder of Parquet
            shards, possibly nested). Without events (no events file, or one with
            a header and no rows) the site is text-only: zero events.
        name : str, optional
            The site's name; the directory's name by default.

        Returns
        -------
        Site

        Raises
        ------
        MashInputError
            When the codes file is missing, a file is unreadable, binary or not
            UTF-8, lacks a required column, or holds an empty code, description,
            subject or time, an unparseable time, a duplicate code, or no usable
            rows (no codes; events that are all static or all of unlisted codes;
            a MEDS ``data/`` folder without shards). The message names the file,
            the data row and the column.

        Warns
        -----
        SiteDataWarning
            One per kind of repaired or skipped rows, with counts, and one for a
            text-only site (no events).
        """
        root = Path(path)
        if not root.exists():
            raise MashInputError(_missing_reason(root), file=root)
        if not root.is_dir():
            raise MashInputError("expected a site directory, found a file", file=root)
        site_name = _check_name(root.resolve().name if name is None else name)

        codes_path = _find_codes(root)
        events_path, shards = _find_events(root)

        hashes: dict[str, str] = {}
        codes_piece = _read_table(codes_path, _CODES_SPEC)
        hashes[str(codes_path)] = sha256_file(codes_path)
        event_pieces: list[_Piece] = []
        if shards:
            for shard in shards:
                event_pieces.append(_read_table(shard, _EVENTS_SPEC))
                hashes[str(shard)] = sha256_file(shard)
        elif events_path is not None:
            event_pieces = [_read_table(events_path, _EVENTS_SPEC)]
            hashes[str(events_path)] = sha256_file(events_path)

        return _assemble(
            cls,
            site_name,
            codes_piece,
            event_pieces,
            source={
                "codes": str(codes_path),
                "events": None if events_path is None else str(events_path),
            },
            input_hashes=dict(sorted(hashes.items())),
            static_ok=bool(shards),
        )

    @classmethod
    def from_frames(
        cls, name: str, codes: pd.DataFrame, events: pd.DataFrame | None
    ) -> Site:
        """Validate in-memory tables exactly as :meth:`load` validates files.

        Parameters
        ----------
        name : str
            The site's name.
        codes : pandas.DataFrame
            Columns as ``codes.csv``: ``code``, ``description`` and optionally
            ``domain`` and ``parent`` (or a ``parent_codes`` list column).
        events : pandas.DataFrame or None
            Columns as ``events.csv``: ``subject_id`` (or ``patient_id``), ``time``
            (ISO text or datetimes), ``code`` and optionally ``numeric_value``.
            None (or a frame with these columns and no rows) gives a text-only
            site with zero events.

        Returns
        -------
        Site
            Errors name the files ``<codes>`` and ``<events>``; rows are 1-based
            positions in the frames.
        """
        if not isinstance(codes, pd.DataFrame) or not (
            events is None or isinstance(events, pd.DataFrame)
        ):
            raise MashInputError("codes and events must be pandas DataFrames (events may be None)")
        site_name = _check_name(name)
        codes_piece = _frame_piece(codes, "<codes>", _CODES_SPEC)
        pieces = [] if events is None else [_frame_piece(events, "<events>", _EVENTS_SPEC)]
        site = _assemble(
            cls,
            site_name,
            codes_piece,
            pieces,
            source={"codes": "<codes>", "events": None if events is None else "<events>"},
            input_hashes={},
            static_ok=False,
        )
        site.input_hashes["<codes>"] = _frame_hash(site.codes)
        if events is not None:
            site.input_hashes["<events>"] = _frame_hash(site.events)
        return site

    # ---- views ------------------------------------------------------------------------

    @property
    def n_codes(self) -> int:
        """Number of codes (rows of :attr:`codes`)."""
        return len(self.codes)

    @property
    def n_events(self) -> int:
        """Number of events kept (rows of :attr:`events`)."""
        return len(self.events)

    @cached_property
    def n_subjects(self) -> int:
        """Number of distinct subjects with at least one event."""
        return int(self.events["subject_id"].nunique())

    @property
    def n_codes_without_events(self) -> int:
        """Number of codes listed in :attr:`codes` that no kept event uses.

        All of them for a text-only site; such codes can only be aligned by their
        descriptions.
        """
        return int(np.count_nonzero(self.code_counts() == 0))

    def code_counts(self) -> np.ndarray:
        """Events per code.

        Returns
        -------
        numpy.ndarray of int64, shape (n_codes,)
            ``counts[i]`` is the number of events whose ``code_idx`` is ``i``.
        """
        idx = self.events["code_idx"].to_numpy()
        return np.bincount(idx, minlength=self.n_codes).astype(np.int64)

    def event_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Events as the parallel arrays :mod:`mash.cooccur` takes.

        Returns
        -------
        subject : ndarray of int64, shape (n_events,)
            Dense subject ids (order of first appearance).
        time_days : ndarray of float64, shape (n_events,)
            Event times in days since 1970-01-01.
        code : ndarray of int32, shape (n_events,)
            ``code_idx`` of each event.
        """
        ev = self.events
        subject = pd.factorize(ev["subject_id"])[0].astype(np.int64)
        days = ev["time"].to_numpy("datetime64[ns]").astype(np.int64) / 86_400e9
        return subject, days, ev["code_idx"].to_numpy(np.int32)

    def __repr__(self) -> str:
        return (
            f"Site(name={self.name!r}, n_codes={self.n_codes}, n_events={self.n_events}, "
            f"n_subjects={self.n_subjects})"
        )


# --------------------------------------------------------------------------------------
# Finding the files
# --------------------------------------------------------------------------------------


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise MashInputError(f"a site name must be a non-empty string, got {name!r}")
    if ":" in name:  # leaf ids of a hierarchy are site:code; codes may contain ':'
        raise MashInputError(f"a site name must not contain ':', got {name.strip()!r}; "
                             "give another name (mash align --name)")
    return name.strip()


def _missing_reason(path: Path) -> str:
    """Why ``path`` (which does not exist) cannot be opened: absent, a looping or a
    dangling symbolic link."""
    if not path.is_symlink():
        return "site directory does not exist"
    try:
        path.resolve(strict=True)
    except (RuntimeError, OSError) as exc:  # RuntimeError: a loop, before Python 3.13
        if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP:
            return "site directory is a symbolic link that loops (it leads back to itself)"
    return f"site directory is a symbolic link to {str(path.readlink())!r}, which does not exist"


def _find_codes(root: Path) -> Path:
    flat = [root / "codes.csv", root / "codes.parquet"]
    found = [p for p in flat if p.is_file()]
    if len(found) > 1:
        raise MashInputError("found both codes.csv and codes.parquet; keep exactly one", file=root)
    if found:
        return found[0]
    meds = root / "metadata" / "codes.parquet"
    if meds.is_file():
        return meds
    raise MashInputError(
        "no codes file: looked for codes.csv, codes.parquet and metadata/codes.parquet",
        file=root,
    )


def _find_events(root: Path) -> tuple[Path | None, list[Path]]:
    """The events file (or MEDS ``data/`` folder and its shards); ``(None, [])`` when absent."""
    flat = [root / "events.csv", root / "events.parquet"]
    found = [p for p in flat if p.is_file()]
    if len(found) > 1:
        raise MashInputError(
            "found both events.csv and events.parquet; keep exactly one", file=root
        )
    if found:
        return found[0], []
    data = root / "data"
    if data.is_dir():
        shards = sorted(
            (p for p in data.rglob("*.parquet") if p.is_file()),
            key=lambda p: p.relative_to(data).as_posix(),
        )
        if not shards:
            raise MashInputError("the MEDS data/ folder holds no .parquet shards", file=data)
        return data, shards
    return None, []  # a text-only site: the caller reports it


# --------------------------------------------------------------------------------------
# Reading raw tables
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """Which columns a table needs: canonical names, required ones, aliases."""

    kind: str  # "codes" or "events"
    required: tuple[str, ...]
    optional: tuple[str, ...]


@dataclass
class _Piece:
    """Raw columns of one file (or one MEDS shard), keyed by canonical name."""

    file: str
    n_rows: int
    columns: dict[str, pa.ChunkedArray]


_CODES_SPEC = _Spec("codes", ("code", "description"), ("domain", "parent"))
_EVENTS_SPEC = _Spec("events", ("subject_id", "time", "code"), ("numeric_value", "unit"))


def _normalise_name(name: Any) -> str:
    return str(name).replace("\ufeff", "").strip().lower()


def _pick_columns(found: list[str], spec: _Spec, file: str) -> dict[str, int]:
    """Map each canonical column to its position in ``found`` (names as in the file)."""
    normalised = [_normalise_name(c) for c in found]
    wanted = set(spec.required) | set(spec.optional)
    positions: dict[str, int] = {}
    for pos, norm in enumerate(normalised):
        canonical = norm if norm in wanted else _ALIASES.get(norm)
        if canonical not in wanted:
            continue
        if canonical in positions:
            first = found[positions[canonical]]
            if _normalise_name(first) == norm:
                raise MashInputError(
                    f"column {found[pos]!r} appears twice (also {first!r}); "
                    "column names are compared case-insensitively, without surrounding spaces",
                    file=file,
                    column=canonical,
                )
            if norm == canonical:  # the canonical name beats its alias
                positions[canonical] = pos
            continue
        positions[canonical] = pos
    for col in spec.required:
        if col not in positions:
            aliases = [a for a, c in _ALIASES.items() if c == col]
            also = f" (or {', '.join(aliases)})" if aliases else ""
            shown = ", ".join(repr(c) for c in found) if found else "none"
            raise MashInputError(
                f"missing required column {col!r}{also}; {spec.kind} files need the "
                f"columns {', '.join(spec.required)}; found columns: {shown}",
                file=file,
                column=col,
            )
    return positions


def _read_table(path: Path, spec: _Spec) -> _Piece:
    if path.suffix.lower() == ".csv":
        return _read_csv(path, spec)
    return _read_parquet(path, spec)


def _check_text_head(path: Path) -> None:
    """Reject binary and non-UTF-8 files from their first bytes (DuckDB checks the rest)."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    nul = head.find(b"\x00")
    if nul >= 0:
        line = head.count(b"\n", 0, nul) + 1
        raise MashInputError(
            f"not a UTF-8 text file: NUL byte at line {line} (a binary file, a "
            "spreadsheet or UTF-16 text?); save it as a UTF-8 CSV",
            file=path,
        )
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=len(head) < _SNIFF_BYTES)
    except UnicodeDecodeError as exc:
        line = head.count(b"\n", 0, exc.start) + 1
        raise MashInputError(
            f"not UTF-8 text: invalid byte 0x{head[exc.start]:02x} at line {line}; "
            "save the file as UTF-8",
            file=path,
            row=line - 1 if line > 1 else None,
        ) from None


def _read_csv(path: Path, spec: _Spec) -> _Piece:
    import duckdb  # heavy; imported on first use

    _check_text_head(path)
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        first_line = fh.readline().lstrip("\ufeff")
    if not first_line.strip():
        raise MashInputError(
            f"empty file: expected a header row with {', '.join(spec.required)}", file=path
        )
    header = next(csv.reader(io.StringIO(first_line)))
    if len(header) == 1:
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if sep in header[0]:
                raise MashInputError(
                    f"the header {header[0].strip()!r} seems to be separated by {label}; "
                    "mash reads comma-separated files",
                    file=path,
                    row=0,
                )
    positions = _pick_columns(header, spec, str(path))
    columns = {f"c{i}": "VARCHAR" for i in range(len(header))}
    projection = ", ".join(f'"c{pos}" AS "{name}"' for name, pos in positions.items())
    con = duckdb.connect(":memory:")
    try:
        rel = con.read_csv(
            str(path),
            header=True,
            delimiter=",",
            quotechar='"',
            escapechar='"',
            columns=columns,
            auto_detect=False,
            max_line_size=_MAX_LINE_BYTES,
        ).project(projection)
        table = _arrow_table(rel.arrow())
    except duckdb.Error as exc:
        raise _csv_error(exc, path) from None
    finally:
        con.close()
    cols = {name: table.column(name) for name in positions}
    return _Piece(str(path), table.num_rows, cols)


def _arrow_table(result: Any) -> pa.Table:
    if isinstance(result, pa.RecordBatchReader):
        return result.read_all()
    return result


def _csv_error(exc: Exception, path: Path) -> MashInputError:
    """Turn DuckDB's multi-line CSV error into one line with the file and row."""
    text = str(exc)
    m = re.search(r"CSV Error on Line:\s*(\d+)", text)
    line = int(m.group(1)) if m else None
    cols = re.search(r"Expected Number of Columns:\s*(\d+)\s*Found:\s*(\d+)", text)
    size = re.search(r"Maximum line size of (\d+) bytes exceeded\. Actual Size:\s*(\d+)", text)
    if "Invalid unicode" in text or "not utf-8" in text.lower():
        reason = "not UTF-8 text; save the file as UTF-8"
    elif size:
        reason = (
            f"a row of {int(size.group(2)):,} bytes is longer than the limit of "
            f"{int(size.group(1)):,} bytes per row (an unclosed quote or a huge value?)"
        )
    elif cols:
        reason = f"expected {cols.group(1)} comma-separated fields as in the header, found {cols.group(2)}"
    elif "unterminated quote" in text.lower():
        reason = "a quoted value is never closed (unterminated quote)"
    else:
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        reason = f"unreadable CSV: {first.replace('Invalid Input Error: ', '')}"
    if line is not None:
        reason = f"{reason} (line {line} of the file)"
    row = line - 1 if line is not None and line > 1 else None
    return MashInputError(reason, file=path, row=row)


def _read_parquet(path: Path, spec: _Spec) -> _Piece:
    try:
        schema = pq.read_schema(path)
        names = list(schema.names)
        positions = _pick_columns(names, spec, str(path))
        table = pq.read_table(path, columns=[names[p] for p in positions.values()])
    except MashInputError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise MashInputError(
            f"not a readable Parquet file ({type(exc).__name__}: {exc})", file=path
        ) from None
    cols = {name: table.column(names[pos]) for name, pos in positions.items()}
    for name in _CODE_COLUMNS:
        if name in cols:
            _require_text_codes(cols[name].type, str(path), names[positions[name]])
    return _Piece(str(path), table.num_rows, cols)


def _require_text_codes(t: pa.DataType, file: str, column: str) -> None:
    """Reject a Parquet code column stored as numbers: ``01522`` would become ``1522``."""
    inner = t
    if pa.types.is_dictionary(inner):
        inner = inner.value_type
    if pa.types.is_list(inner) or pa.types.is_large_list(inner):
        inner = inner.value_type
    elif pa.types.is_fixed_size_list(inner):
        inner = inner.value_type
    if (
        pa.types.is_integer(inner)
        or pa.types.is_floating(inner)
        or pa.types.is_decimal(inner)
        or pa.types.is_boolean(inner)
    ):
        raise MashInputError(
            f"column has type {t}; codes must be stored as text (string), since numbers "
            "lose leading zeros (01522 would read as 1522); write the column as string",
            file=file,
            column=column,
        )


def _frame_piece(frame: pd.DataFrame, label: str, spec: _Spec) -> _Piece:
    found = [str(c) for c in frame.columns]
    positions = _pick_columns(found, spec, label)
    cols: dict[str, pa.ChunkedArray] = {}
    for name, pos in positions.items():
        series = frame.iloc[:, pos]
        try:
            arr = pa.array(series, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError):
            arr = pa.array(series.astype(_STRING), from_pandas=True)
        cols[name] = pa.chunked_array([arr]) if isinstance(arr, pa.Array) else arr
    return _Piece(label, len(frame), cols)


def _frame_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a validated table's column names and row hashes."""
    h = hashlib.sha256(",".join(map(str, frame.columns)).encode("utf-8"))
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# Column checks (vectorised)
# --------------------------------------------------------------------------------------


class _Tally:
    """Counts of repaired/skipped rows, merged over pieces into the report."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, dict[str, int]] = {}
        self.by_column: dict[str, dict[str, int]] = {}
        self.distinct: dict[str, int] = {}

    def add(self, key: str, n: int, examples: Mapping[str, int] | None = None) -> None:
        self.counts[key] = self.counts.get(key, 0) + int(n)
        if examples:
            bucket = self.examples.setdefault(key, {})
            for value, count in examples.items():
                bucket[value] = bucket.get(value, 0) + int(count)

    def add_column(self, key: str, column: str, n: int) -> None:
        if n:
            self.add(key, n)
            bucket = self.by_column.setdefault(key, {})
            bucket[column] = bucket.get(column, 0) + int(n)

    def top(self, key: str) -> list[str]:
        return _top_examples(self.examples.get(key, {}))


def _top_examples(counts: Mapping[str, int]) -> list[str]:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [value for value, _ in ordered[:_N_EXAMPLES]]


def _value_counts(arr: pa.ChunkedArray | pa.Array, limit: int = 50) -> dict[str, int]:
    """The ``limit`` most frequent non-null values of a text array."""
    if len(arr) == 0:
        return {}
    vc = pc.value_counts(arr)
    values = vc.field("values").to_pylist()
    counts = vc.field("counts").to_pylist()
    pairs = sorted(
        ((v, c) for v, c in zip(values, counts, strict=True) if v is not None),
        key=lambda kv: (-kv[1], kv[0]),
    )
    return dict(pairs[:limit])


def _first(mask: np.ndarray) -> tuple[int, int]:
    """(first index where ``mask``, number of True) for a boolean array."""
    hits = np.flatnonzero(mask)
    return int(hits[0]), len(hits)


def _also(n: int) -> str:
    if n <= 1:
        return ""
    return f"; {n - 1} more {'row' if n == 2 else 'rows'} like this"


def _as_text(arr: pa.ChunkedArray, file: str, column: str) -> pa.ChunkedArray:
    """Cast a column to ``string`` (numbers become their decimal text)."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = pc.cast(arr, t.value_type)
        t = arr.type
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(arr), pa.string())])
    if t == pa.string():
        return arr
    if (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or getattr(pa.types, "is_string_view", lambda _t: False)(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_boolean(t)
    ):
        return pc.cast(arr, pa.string())
    raise MashInputError(f"column has type {t}; expected text", file=file, column=column)


def _clean_text(
    arr: pa.ChunkedArray, file: str, column: str, tally: _Tally, *, count_trim: str | None
) -> pa.ChunkedArray:
    """Strip surrounding whitespace; blank values become null.

    Values that lost whitespace are counted under ``count_trim`` (e.g. ``"codes.code"``).
    """
    text = _as_text(arr, file, column)
    stripped = pc.utf8_trim_whitespace(text)
    if count_trim:
        changed = pc.sum(pc.not_equal(stripped, text)).as_py() or 0
        tally.add_column("trimmed_whitespace", count_trim, changed)
    blank = pc.equal(stripped, "")
    return pc.if_else(blank, pa.scalar(None, pa.string()), stripped)


def _require(values: pa.ChunkedArray, file: str, column: str, what: str) -> None:
    """Raise on the first null (blank) value of a required column."""
    if values.null_count == 0:
        return
    i, n = _first(pc.is_null(values).to_numpy(zero_copy_only=False))
    raise MashInputError(
        f"empty {what}; every row needs one{_also(n)}", file=file, row=i + 1, column=column
    )


#: control characters (C0, tab and line ends included; DEL; C1): junk in an identifier,
#: and most of them characters that XML (GraphML) files cannot hold
_CONTROL = "[\\x00-\\x1f\\x7f-\\x9f]"


def _refuse_control(values: pa.ChunkedArray, file: str, column: str) -> None:
    """Raise on the first identifier holding a control character (or a tab or line end)."""
    bad = pc.fill_null(pc.match_substring_regex(values, _CONTROL), False)
    if not pc.any(bad).as_py():
        return
    i, n = _first(bad.to_numpy(zero_copy_only=False))
    value = values[i].as_py()
    raise MashInputError(
        f"{value!r} holds a control character, tab or line end; identifiers cannot{_also(n)}",
        file=file, row=i + 1, column=column,
    )


def _parse_time(
    arr: pa.ChunkedArray, file: str, tally: _Tally, *, static_ok: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Parse a time column to ``datetime64[ns]``; return (times, keep) where ``keep`` is False
    only for MEDS static rows (null time), which are dropped and counted."""
    t = arr.type
    n = len(arr)
    if pa.types.is_dictionary(t):
        arr = pc.cast(arr, t.value_type)
        t = arr.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        if pa.types.is_timestamp(t) and t.tz is not None:
            arr = pc.cast(arr, pa.timestamp(t.unit))  # stored as UTC; drop the zone
        elif pa.types.is_date(t):
            arr = pc.cast(arr, pa.timestamp("s"))
        missing = pc.is_null(arr).to_numpy(zero_copy_only=False)
        values = np.asarray(pc.fill_null(arr, 0).to_numpy(), dtype="datetime64[us]")
        raw = None
    elif (
        pa.types.is_null(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or (getattr(pa.types, "is_string_view", lambda _t: False)(t))
    ):
        raw = _blank_to_null(pc.utf8_trim_whitespace(_as_text(arr, file, "time")))
        missing = pc.is_null(raw).to_numpy(zero_copy_only=False)
        values = _parse_time_text(raw, missing, file, "time")
    else:
        raise MashInputError(
            f"column has type {t}; expected {_TIME_HINT} (text) or a timestamp",
            file=file,
            column="time",
        )

    _check_time_range(values, missing, raw, file, "time")
    keep = np.ones(n, dtype=bool)
    if missing.any():
        if not static_ok:
            i, count = _first(missing)
            raise MashInputError(
                f"empty time; expected {_TIME_HINT}{_also(count)}",
                file=file,
                row=i + 1,
                column="time",
            )
        keep = ~missing
        tally.add("static_events", int(missing.sum()))
    values = np.where(missing, np.datetime64(0, "us"), values)
    return values.astype("datetime64[ns]"), keep


def parse_time_text(
    values: pa.Array | pa.ChunkedArray, file: str, column: str
) -> tuple[np.ndarray, np.ndarray]:
    """Parse ISO 8601 text exactly as the ``time`` column of a site's events is parsed.

    Other readers (``outcomes.csv``) use it so that every time mash reads follows one
    rule: a complete ISO date or datetime; a UTC offset converts to UTC (naive).

    Parameters
    ----------
    values : pyarrow.Array or pyarrow.ChunkedArray of string
        The raw text; surrounding whitespace is ignored, blank or null means absent.
    file : str
        Named in errors.
    column : str
        Named in errors.

    Returns
    -------
    times : ndarray of datetime64[us], shape (n,)
        Naive UTC times; the epoch where absent.
    missing : ndarray of bool, shape (n,)
        True where the value is blank.

    Raises
    ------
    MashInputError
        On the first value that is not a complete ISO date or datetime (``31/01/2020``,
        a partial date such as ``2020-01`` or ``2020``) or lies outside
        datetime64[ns]'s range; it names the file, the 1-based row and the column.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t, m = parse_time_text(pa.array(["2020-01-31", " ", "2020-01-31T10:00+02:00"]), "f", "t")
    >>> [str(x) for x in t], m.tolist()
    (['2020-01-31T00:00:00.000000', '1970-01-01T00:00:00.000000', '2020-01-31T08:00:00.000000'], [False, True, False])
    """
    chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    raw = _blank_to_null(pc.utf8_trim_whitespace(_as_text(chunked, file, column)))
    missing = pc.is_null(raw).to_numpy(zero_copy_only=False)
    times = _parse_time_text(raw, missing, file, column)
    _check_time_range(times, missing, raw, file, column)
    return np.where(missing, np.datetime64(0, "us"), times), missing


def _blank_to_null(text: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _check_time_range(
    values: np.ndarray,
    missing: np.ndarray,
    raw: pa.ChunkedArray | None,
    file: str,
    column: str,
) -> None:
    """Raise on the first present time outside datetime64[ns]'s range (a day inside)."""
    out_of_range = ((values < _NS_MIN) | (values > _NS_MAX)) & ~missing
    if out_of_range.any():
        i, count = _first(out_of_range)
        shown = raw[i].as_py() if raw is not None else str(values[i])
        raise MashInputError(
            f"time {shown!r} is outside the supported range {_NS_MIN} to {_NS_MAX}{_also(count)}",
            file=file,
            row=i + 1,
            column=column,
        )


def _parse_time_text(
    raw: pa.ChunkedArray, missing: np.ndarray, file: str, column: str
) -> np.ndarray:
    """ISO text (stripped, null where blank) to ``datetime64[us]``; offsets convert to UTC.

    A partial date (``2009-05``, ``2010``) is rejected: read as the first of the month
    or year, it would move events by up to a year without anyone knowing.
    """
    try:  # fast path: plain ISO 8601 without offsets, Arrow's strict parser
        return pc.cast(raw, pa.timestamp("us")).fill_null(0).to_numpy().astype("datetime64[us]")
    except pa.ArrowInvalid:  # offsets, other ISO forms or bad values: pandas, value by value
        pass
    parsed = pd.to_datetime(
        pd.Series(raw.to_pandas(types_mapper={pa.string(): _STRING}.get), copy=False),
        format="ISO8601",
        errors="coerce",
        utc=True,
    )
    partial = pc.fill_null(pc.match_substring_regex(raw, _PARTIAL_DATE), False)
    partial_np = partial.to_numpy(zero_copy_only=False)
    bad = (parsed.isna().to_numpy() & ~missing) | partial_np
    if bad.any():
        i, count = _first(bad)
        what = "incomplete date" if partial_np[i] else "unparseable time"
        raise MashInputError(
            f"{what} {raw[i].as_py()!r}; expected {_TIME_HINT} (a full date: year, month "
            f"and day), between {_NS_MIN} and {_NS_MAX}{_also(count)}",
            file=file,
            row=i + 1,
            column=column,
        )
    return parsed.dt.tz_convert(None).to_numpy().astype("datetime64[us]")


def _parse_values(arr: pa.ChunkedArray | None, n: int, file: str, tally: _Tally) -> np.ndarray:
    """``numeric_value`` as float64; blanks are NaN (counted), non-numbers NaN (counted)."""
    if arr is None:
        return np.full(n, np.nan)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = pc.cast(arr, t.value_type)
        t = arr.type
    if pa.types.is_null(t):
        tally.add_column("blank_optional_values", "events.numeric_value", n)
        return np.full(n, np.nan)
    if (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_boolean(t)
    ):
        values = pc.cast(arr, pa.float64()).to_numpy().astype(np.float64, copy=True)
        nan = np.isnan(values)
        tally.add_column("blank_optional_values", "events.numeric_value", int(nan.sum()))
        infinite = np.isinf(values)
        if infinite.any():
            tally.add(
                "non_numeric_values",
                int(infinite.sum()),
                _value_counts(pa.array(values[infinite].astype(str))),
            )
            values[infinite] = np.nan
        return values
    text = _as_text(arr, file, "numeric_value")
    stripped = pc.utf8_trim_whitespace(text)
    absent = pc.or_kleene(
        pc.is_null(stripped), pc.is_in(pc.utf8_lower(stripped), value_set=pa.array(_NULL_TOKENS))
    )
    absent_np = absent.to_numpy(zero_copy_only=False)
    tally.add_column("blank_optional_values", "events.numeric_value", int(absent_np.sum()))
    present = pc.if_else(absent, pa.scalar(None, pa.string()), stripped)
    try:  # fast path: every value is a plain decimal number
        values = pc.fill_null(pc.cast(present, pa.float64()), np.nan).to_numpy()
    except pa.ArrowInvalid:  # some are not: pandas marks them NaN one by one
        numbers = pd.to_numeric(
            pd.Series(present.to_pandas(types_mapper={pa.string(): _STRING}.get), copy=False),
            errors="coerce",
        )
        values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.array(values, dtype=np.float64, copy=True)
    bad = ~np.isfinite(values) & ~absent_np
    if bad.any():
        tally.add(
            "non_numeric_values", int(bad.sum()), _value_counts(stripped.filter(pa.array(bad)))
        )
    values[bad | absent_np] = np.nan
    return values


# --------------------------------------------------------------------------------------
# Assembling a Site
# --------------------------------------------------------------------------------------


def _prepare_codes(piece: _Piece, tally: _Tally) -> pd.DataFrame:
    file = piece.file
    if piece.n_rows == 0:
        raise MashInputError("no codes: the file has a header but no rows", file=file)
    cols = piece.columns

    code = _clean_text(cols["code"], file, "code", tally, count_trim="codes.code")
    _require(code, file, "code", "code")
    _refuse_control(code, file, "code")
    codes_np = np.asarray(code.to_numpy(zero_copy_only=False), dtype=object)
    dup = pd.Series(codes_np).duplicated().to_numpy()
    if dup.any():
        i, count = _first(dup)
        first = int(np.flatnonzero(codes_np == codes_np[i])[0])
        raise MashInputError(
            f"duplicate code {codes_np[i]!r} (first at row {first + 1}); codes must be unique"
            f"{_also(count)}",
            file=file,
            row=i + 1,
            column="code",
        )

    description = _clean_text(cols["description"], file, "description", tally, count_trim=None)
    _require(description, file, "description", "description")

    n = piece.n_rows
    if "domain" in cols:
        domain = _clean_text(cols["domain"], file, "domain", tally, count_trim=None)
        domain = pc.utf8_lower(domain)
        tally.add_column("blank_optional_values", "codes.domain", domain.null_count)
        unknown = pc.and_(pc.invert(pc.is_in(domain, pa.array(DOMAINS))), pc.is_valid(domain))
        n_unknown = pc.sum(unknown).as_py() or 0
        if n_unknown:
            tally.add("unknown_domains", n_unknown, _value_counts(domain.filter(unknown)))
    else:
        domain = pa.chunked_array([pa.nulls(n, pa.string())])

    parent = _prepare_parent(cols.get("parent"), n, file, tally)
    parent = _check_parents(code, parent, tally)

    frame = pd.DataFrame(
        {
            "code": _to_series(code),
            "description": _to_series(description),
            "domain": _to_series(domain),
            "parent": _to_series(parent),
        }
    )
    return frame


def _prepare_parent(
    arr: pa.ChunkedArray | None, n: int, file: str, tally: _Tally
) -> pa.ChunkedArray:
    if arr is None:
        return pa.chunked_array([pa.nulls(n, pa.string())])
    t = arr.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
        extra = int((lengths > 1).sum())
        if extra:
            tally.add("multiple_parents", extra)
        firsts = pc.list_element(pc.if_else(pc.greater(pc.list_value_length(arr), 0), arr, None), 0)
        arr = firsts
    parent = _clean_text(arr, file, "parent", tally, count_trim="codes.parent")
    tally.add_column("blank_optional_values", "codes.parent", parent.null_count)
    return parent


def _check_parents(
    code: pa.ChunkedArray, parent: pa.ChunkedArray, tally: _Tally
) -> pa.ChunkedArray:
    """Count unknown parents and cycles; self-parents become null (counted)."""
    n = len(code)
    self_parent = pc.fill_null(pc.equal(parent, code), False)
    n_self = pc.sum(self_parent).as_py() or 0
    if n_self:
        tally.add("self_parents", n_self, _value_counts(code.filter(self_parent)))
        parent = pc.if_else(self_parent, pa.scalar(None, pa.string()), parent)

    idx = pc.index_in(parent, value_set=code.combine_chunks())  # codes are unique: row numbers
    idx_np = pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    has_parent = pc.is_valid(parent).to_numpy(zero_copy_only=False)
    unknown = has_parent & (idx_np < 0)
    if unknown.any():
        bad = parent.filter(pa.array(unknown))
        tally.add("unknown_parents", int(unknown.sum()), _value_counts(bad))
        tally.distinct["unknown_parents"] = len(pc.unique(bad))

    # Pointer doubling: after ceil(log2(n)) + 1 jumps every chain that ends has ended.
    ptr = np.append(np.where(idx_np >= 0, idx_np, n), n)
    for _ in range(max(1, math.ceil(math.log2(n + 1))) + 1):
        ptr = ptr[ptr]
    cyclic = ptr[:n] != n
    if cyclic.any():
        tally.add("parent_cycles", int(cyclic.sum()), _value_counts(code.filter(pa.array(cyclic))))
    return parent


def _to_series(arr: pa.ChunkedArray | pa.Array) -> pd.Series:
    if isinstance(arr, pa.ChunkedArray) and arr.num_chunks != 1:
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], pa.string())
    series = arr.to_pandas(types_mapper={pa.string(): _STRING, pa.large_string(): _STRING}.get)
    return series.astype(_STRING).reset_index(drop=True)


@dataclass
class _EventColumns:
    subject: pa.ChunkedArray
    code: pa.ChunkedArray
    time: np.ndarray  # datetime64[ns]
    value: np.ndarray  # float64
    unit: pa.ChunkedArray  # string, null where absent


def _prepare_events(piece: _Piece, tally: _Tally, *, static_ok: bool) -> _EventColumns:
    file = piece.file
    cols = piece.columns
    subject = _clean_text(
        cols["subject_id"], file, "subject_id", tally, count_trim="events.subject_id"
    )
    _require(subject, file, "subject_id", "subject_id")
    _refuse_control(subject, file, "subject_id")
    code = _clean_text(cols["code"], file, "code", tally, count_trim="events.code")
    _require(code, file, "code", "code")
    _refuse_control(code, file, "code")
    time, keep = _parse_time(cols["time"], file, tally, static_ok=static_ok)
    value = _parse_values(cols.get("numeric_value"), piece.n_rows, file, tally)
    unit = _parse_units(cols.get("unit"), piece.n_rows, file, tally)
    if not keep.all():
        mask = pa.array(keep)
        subject, code, unit = subject.filter(mask), code.filter(mask), unit.filter(mask)
        time, value = time[keep], value[keep]
    return _EventColumns(subject, code, time, value, unit)


def _parse_units(arr: pa.ChunkedArray | None, n: int, file: str, tally: _Tally) -> pa.ChunkedArray:
    """``unit`` as stripped text, null where absent (blanks counted when the column exists)."""
    if arr is None:
        return pa.chunked_array([pa.nulls(n, pa.string())])
    unit = _clean_text(arr, file, "unit", tally, count_trim=None)
    tally.add_column("blank_optional_values", "events.unit", unit.null_count)
    return unit


def _count_unit_problems(
    code_idx: np.ndarray, value: np.ndarray, unit: pa.ChunkedArray, tally: _Tally,
    code_values: pa.Array,
) -> None:
    """Count units on rows without a value, codes with some units missing, codes with several.

    All are kept: a code's unit is its most frequent one (see :mod:`mash.align.values`).
    """
    has_unit = ~unit.is_null().to_numpy(zero_copy_only=False)
    has_value = np.isfinite(value)
    orphan = has_unit & ~has_value
    if orphan.any():
        tally.add("units_without_value", int(orphan.sum()),
                  _value_counts(unit.filter(pa.array(orphan))))
    if not has_unit.any():
        return
    n_codes = len(code_values)
    with_unit = np.bincount(code_idx[has_unit & has_value], minlength=n_codes)
    without_unit = np.bincount(code_idx[~has_unit & has_value], minlength=n_codes)
    missing = (with_unit > 0) & (without_unit > 0)
    if missing.any():
        names = code_values.filter(pa.array(missing)).to_pylist()
        tally.add("codes_with_missing_units", int(missing.sum()),
                  dict(zip(names, without_unit[missing].tolist(), strict=True)))
    rows = np.flatnonzero(has_unit)
    pairs = pd.DataFrame({"c": code_idx[rows],
                          "u": unit.filter(pa.array(has_unit)).to_numpy(zero_copy_only=False)})
    n_units = pairs.drop_duplicates().groupby("c").size()
    several = n_units[n_units > 1]
    if len(several):
        names = code_values.take(pa.array(several.index.to_numpy())).to_pylist()
        tally.add("codes_with_several_units", len(several),
                  dict(zip(names, several.to_numpy().tolist(), strict=True)))


def _concat_events(parts: list[_EventColumns]) -> _EventColumns:
    if len(parts) == 1:
        return parts[0]
    return _EventColumns(
        subject=pa.chunked_array([c for p in parts for c in p.subject.chunks], pa.string()),
        code=pa.chunked_array([c for p in parts for c in p.code.chunks], pa.string()),
        time=np.concatenate([p.time for p in parts]),
        value=np.concatenate([p.value for p in parts]),
        unit=pa.chunked_array([c for p in parts for c in p.unit.chunks], pa.string()),
    )


def _assemble(
    cls: type[Site],
    name: str,
    codes_piece: _Piece,
    event_pieces: list[_Piece],
    *,
    source: dict[str, str | None],
    input_hashes: dict[str, str],
    static_ok: bool,
) -> Site:
    tally = _Tally()
    codes = _prepare_codes(codes_piece, tally)
    code_values = pa.array(codes["code"].to_numpy(dtype=object), pa.string())

    n_read = sum(p.n_rows for p in event_pieces)
    if n_read:
        events = _assemble_events(
            event_pieces, code_values, tally, source=source, static_ok=static_ok
        )
    else:
        events = _empty_events()

    counts = np.bincount(events["code_idx"].to_numpy(), minlength=len(codes))
    unused = counts == 0
    if unused.any():
        first = np.sort(codes["code"].to_numpy(dtype=object)[unused].astype(str))[:_N_EXAMPLES]
        tally.add("codes_without_events", int(unused.sum()), dict.fromkeys(first.tolist(), 1))
    report = _report(tally, n_codes=len(codes), n_read=n_read, n_kept=len(events))
    if not n_read:
        report["no_events"] = {
            "rows": 0,
            "action": "text only: the site has no events; its codes are aligned by "
            "description alone",
            "reason": _no_events_reason(source, event_pieces),
        }
    site = cls(
        name=name,
        codes=codes,
        events=events,
        source=source,
        input_hashes=input_hashes,
        report=report,
    )
    _warn(site, report)
    return site


def _no_events_reason(source: Mapping[str, str | None], event_pieces: list[_Piece]) -> str:
    """Why a site has no events: no events file (or frame), or an events table without rows."""
    if event_pieces:
        return "the events table has a header but no rows"
    if source["codes"] == "<codes>":
        return "no events frame was given"
    return "no events file: looked for events.csv, events.parquet and a MEDS data/ folder"


def _empty_events() -> pd.DataFrame:
    """The events table of a text-only site: zero rows, the documented columns and dtypes."""
    return pd.DataFrame(
        {
            "subject_id": pd.Series([], dtype=_STRING),
            "time": pd.Series([], dtype="datetime64[ns]"),
            "code": pd.Series([], dtype=_STRING),
            "code_idx": pd.Series([], dtype=np.int32),
            "numeric_value": pd.Series([], dtype=np.float64),
            "unit": pd.Series(pd.Categorical([], categories=pd.Index([], dtype=object))),
        }
    )


def _assemble_events(
    event_pieces: list[_Piece],
    code_values: pa.Array,
    tally: _Tally,
    *,
    source: Mapping[str, str | None],
    static_ok: bool,
) -> pd.DataFrame:
    """Validate, map, sort and de-duplicate the events of at least one row."""
    events_label = source["events"]
    ev = _concat_events([_prepare_events(p, tally, static_ok=static_ok) for p in event_pieces])
    if len(ev.time) == 0:
        raise MashInputError(
            "no events left: every event is static (has no time)", file=events_label
        )

    # Map event codes to rows of the code list; drop (and count) unknown codes.
    idx = pc.index_in(ev.code, value_set=code_values)
    code_idx = pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    unknown = code_idx < 0
    n_unknown = int(unknown.sum())
    if n_unknown:
        bad = ev.code.filter(pa.array(unknown))
        tally.distinct["unknown_event_codes"] = len(pc.unique(bad))
        tally.add("unknown_event_codes", n_unknown, _value_counts(bad))
        if n_unknown == len(code_idx):
            raise MashInputError(
                f"no events left: none of the {n_unknown} event rows has a code listed in "
                f"{Path(source['codes']).name} (e.g. {', '.join(map(repr, tally.top('unknown_event_codes')))})",
                file=events_label,
                column="code",
            )
        known = ~unknown
        subject = ev.subject.filter(pa.array(known))
        unit = ev.unit.filter(pa.array(known))
        time, value, code_idx = ev.time[known], ev.value[known], code_idx[known]
    else:
        subject, time, value, unit = ev.subject, ev.time, ev.value, ev.unit
    _count_unit_problems(code_idx, value, unit, tally, code_values)

    order, n_dup = _sort_and_dedupe(subject, time, code_idx, value, code_values)
    tally.add("duplicate_events", n_dup)

    code_idx = code_idx[order].astype(np.int32)
    subject_sorted = subject.take(pa.array(order))
    return pd.DataFrame(
        {
            "subject_id": _to_series(subject_sorted),
            "time": pd.Series(time[order], dtype="datetime64[ns]"),
            "code": _to_series(code_values.take(pa.array(code_idx))),
            "code_idx": pd.Series(code_idx, dtype=np.int32),
            "numeric_value": pd.Series(value[order], dtype=np.float64),
            "unit": _to_category(unit.take(pa.array(order))),
        }
    )


def _to_category(unit: pa.ChunkedArray) -> pd.Series:
    """Units as a pandas categorical (a few distinct strings over millions of rows)."""
    codes_ = pc.dictionary_encode(unit.combine_chunks())
    idx = codes_.indices.to_numpy(zero_copy_only=False)
    idx = np.where(codes_.indices.is_null().to_numpy(zero_copy_only=False), -1, idx)
    cats = pd.Index(codes_.dictionary.to_pylist(), dtype=object)
    return pd.Series(pd.Categorical.from_codes(idx.astype(np.int32), categories=cats))


def _sort_and_dedupe(
    subject: pa.ChunkedArray,
    time: np.ndarray,
    code_idx: np.ndarray,
    value: np.ndarray,
    code_values: pa.Array,
) -> tuple[np.ndarray, int]:
    """Row order by (subject_id, time, code, numeric_value), exact duplicates removed.

    Returns the kept rows' positions, in order, and the number of duplicates removed.
    """
    uniq = pc.unique(subject)
    uniq = uniq.take(pc.sort_indices(uniq))
    subj_rank = pc.index_in(subject, value_set=uniq).to_numpy(zero_copy_only=False).astype(np.int64)
    code_order = pc.sort_indices(code_values).to_numpy()
    code_rank = np.empty(len(code_values), dtype=np.int64)
    code_rank[code_order] = np.arange(len(code_values))
    ev_code_rank = code_rank[code_idx]
    value_key = value + 0.0  # -0.0 -> 0.0
    t = time.view(np.int64)
    keys = pa.table({"s": subj_rank, "t": t, "c": ev_code_rank, "v": value_key})
    # Arrow's multi-key sort is stable, puts NaN last and is several times faster than
    # np.lexsort on millions of rows; it gives the same order.
    order = pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in "stcv"]).to_numpy()
    if len(order) < 2:
        return order, 0
    s_o, t_o, c_o, v_o = subj_rank[order], t[order], ev_code_rank[order], value_key[order]
    same_value = (v_o[1:] == v_o[:-1]) | (np.isnan(v_o[1:]) & np.isnan(v_o[:-1]))
    dup = (s_o[1:] == s_o[:-1]) & (t_o[1:] == t_o[:-1]) & (c_o[1:] == c_o[:-1]) & same_value
    n_dup = int(dup.sum())
    if n_dup:
        order = order[np.concatenate(([True], ~dup))]
    return order, n_dup


# --------------------------------------------------------------------------------------
# Report and warnings
# --------------------------------------------------------------------------------------

_ACTIONS: dict[str, tuple[str, str]] = {
    # key: (action, reason)
    "unknown_event_codes": ("dropped", "event code not listed in the codes file"),
    "duplicate_events": (
        "collapsed",
        "exact duplicate of another event (subject_id, time, code, numeric_value)",
    ),
    "non_numeric_values": ("set to NaN", "numeric_value is not a finite number"),
    "static_events": ("dropped", "MEDS static event without a time"),
    "unknown_parents": ("kept", "parent is not a code of the site"),
    "self_parents": ("set to <NA>", "code is its own parent"),
    "parent_cycles": ("kept", "the parent chain loops instead of reaching a root"),
    "multiple_parents": ("kept the first", "several parent_codes; only the first is used"),
    "unknown_domains": ("kept", f"domain is not one of {', '.join(DOMAINS)}"),
    "trimmed_whitespace": ("stripped", "identifier with surrounding whitespace"),
    "blank_optional_values": ("set to <NA>/NaN", "optional value left blank"),
    "units_without_value": ("kept", "unit given on an event without a numeric_value"),
    "codes_with_missing_units": (
        "kept",
        "code with a unit on some valued events and none on others (counted in codes)",
    ),
    "codes_with_several_units": (
        "kept; the code's unit is its most frequent",
        "code recorded in several units (counted in codes)",
    ),
    "codes_without_events": (
        "kept",
        "code listed in the codes file but in no kept event; aligned by description alone",
    ),
}
_WARNED = (
    "unknown_event_codes",
    "duplicate_events",
    "non_numeric_values",
    "static_events",
    "unknown_parents",
    "self_parents",
    "parent_cycles",
    "multiple_parents",
    "unknown_domains",
    "trimmed_whitespace",
    "units_without_value",
    "codes_with_missing_units",
    "codes_with_several_units",
)
_WITH_EXAMPLES = (
    "unknown_event_codes",
    "non_numeric_values",
    "unknown_parents",
    "self_parents",
    "parent_cycles",
    "unknown_domains",
    "codes_without_events",
    "units_without_value",
    "codes_with_missing_units",
    "codes_with_several_units",
)


def _report(tally: _Tally, *, n_codes: int, n_read: int, n_kept: int) -> dict[str, Any]:
    report: dict[str, Any] = {"rows": {"codes": n_codes, "events_read": n_read, "events": n_kept}}
    for key, (action, reason) in _ACTIONS.items():
        entry: dict[str, Any] = {
            "rows": tally.counts.get(key, 0),
            "action": action,
            "reason": reason,
        }
        if key in _WITH_EXAMPLES:
            entry["examples"] = tally.top(key)
        if key in ("unknown_event_codes", "unknown_parents"):
            entry["distinct_codes"] = tally.distinct.get(key, 0)
        if key in ("trimmed_whitespace", "blank_optional_values"):
            entry["by_column"] = dict(sorted(tally.by_column.get(key, {}).items()))
        report[key] = entry
    return report


def _warn(site: Site, report: dict[str, Any]) -> None:
    messages: dict[str, Callable[[dict[str, Any]], str]] = {
        "unknown_event_codes": lambda e: (
            f"{e['rows']} event rows dropped: their {e['distinct_codes']} distinct codes are not in "
            f"the codes file (e.g. {', '.join(map(repr, e['examples']))})"
        ),
        "duplicate_events": lambda e: f"{e['rows']} exact duplicate event rows collapsed",
        "non_numeric_values": lambda e: (
            f"{e['rows']} numeric_value entries are not finite numbers and were set to NaN "
            f"(e.g. {', '.join(map(repr, e['examples']))})"
        ),
        "static_events": lambda e: f"{e['rows']} static event rows (no time) dropped",
        "unknown_parents": lambda e: (
            f"{e['rows']} codes have a parent that is not a code of the site (kept; e.g. "
            f"{', '.join(map(repr, e['examples']))})"
        ),
        "self_parents": lambda e: f"{e['rows']} codes listed as their own parent; parent cleared",
        "parent_cycles": lambda e: (
            f"{e['rows']} codes have a parent chain that loops (kept; e.g. "
            f"{', '.join(map(repr, e['examples']))})"
        ),
        "multiple_parents": lambda e: (
            f"{e['rows']} codes have several parent_codes; the first was kept"
        ),
        "unknown_domains": lambda e: (
            f"{e['rows']} codes have a domain outside {', '.join(DOMAINS)} (kept; e.g. "
            f"{', '.join(map(repr, e['examples']))})"
        ),
        "trimmed_whitespace": lambda e: (
            f"{e['rows']} identifiers had surrounding whitespace, stripped ("
            + ", ".join(f"{k}: {v}" for k, v in e["by_column"].items())
            + ")"
        ),
        "units_without_value": lambda e: (
            f"{e['rows']} events have a unit but no numeric_value (kept; e.g. "
            f"{', '.join(map(repr, e['examples']))})"
        ),
        "codes_with_missing_units": lambda e: (
            f"{e['rows']} codes have a unit on some valued events and none on others (kept; e.g. "
            f"{', '.join(map(repr, e['examples']))})"
        ),
        "codes_with_several_units": lambda e: (
            f"{e['rows']} codes are recorded in several units (kept; each code's unit is its "
            f"most frequent; e.g. {', '.join(map(repr, e['examples']))})"
        ),
    }
    if "no_events" in report:
        warnings.warn(
            f"site {site.name!r}, {site.source['events'] or site.source['codes']}: "
            f"{report['no_events']['reason']}; "
            f"loaded as a text-only site: its {site.n_codes} codes are aligned by "
            "description alone",
            SiteDataWarning,
            stacklevel=4,
        )
    for key in _WARNED:
        entry = report[key]
        if entry["rows"]:
            file = (
                site.source["codes"]
                if key
                in (
                    "unknown_parents",
                    "self_parents",
                    "parent_cycles",
                    "multiple_parents",
                    "unknown_domains",
                )
                else site.source["events"]
            )
            if key == "trimmed_whitespace":
                file = ", ".join(f for f in (site.source["codes"], site.source["events"]) if f)
            warnings.warn(
                f"site {site.name!r}, {file}: {messages[key](entry)}",
                SiteDataWarning,
                stacklevel=4,
            )
