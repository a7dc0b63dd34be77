r"""Windowed co-occurrence counts, SPPMI and truncated-SVD code embeddings.

One site's events become one vector per code, in three pure steps:

1. :func:`cooccurrence_counts` -- how often two codes occur in the same patient within
   ``window_days`` of each other (a symmetric sparse matrix :math:`C`);
2. :func:`sppmi` -- shifted positive pointwise mutual information of :math:`C` with
   context-distribution smoothing (Levy, Goldberg & Dagan 2015);
3. :func:`svd_embeddings` -- :math:`U_d \sqrt{\Sigma_d}` of a truncated SVD, with a
   deterministic sign convention and unit-norm rows.

:func:`cooccurrence_embeddings` chains them and says which codes have enough data for
their vector to be trusted.

Counting never builds an ``n_codes x n_codes`` dense matrix unless ``n_codes`` is small,
and never holds all pairs at once: subjects are hashed into chunks of about
``chunk_events`` events, each chunk is counted on its own (on ``n_threads`` threads) and
only its aggregated code-pair counts are kept. Memory is therefore the input arrays, an
8-byte chunk index per event, O(``chunk_events``) per thread and the pair counts (a dense
int64 upper triangle, 36 MiB for 3,000 codes, or sparse keys above 5,793 codes).

References
----------
.. [1] O. Levy, Y. Goldberg, I. Dagan, "Improving distributional similarity with lessons
   learned from word embeddings", TACL 3 (2015) 211--225.
.. [2] A. L. Beam et al., "Clinical concept embeddings learned from massive sources of
   multimodal medical data", PSB 2020 (cui2vec).
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackNoConvergence, svds

from mash.errors import MashInputError

__all__ = [
    "CooccurrenceEmbedding",
    "CooccurrenceResult",
    "cooccurrence_counts",
    "cooccurrence_embeddings",
    "sppmi",
    "svd_embeddings",
    "SvdFallbackWarning",
]

# Dense upper-triangle accumulator when it has at most this many cells (128 MiB of int64,
# n_codes <= 5793); above it, pair keys are aggregated by sorting.
_DENSE_MAX_CELLS = 1 << 24
# Below this active fraction the offset loop switches from whole-array slices to gathers.
_GATHER_BELOW = 0.3
# Largest |time_days| accepted (about 2.7 million years), so that days fit in int64.
_MAX_ABS_DAYS = 1e9
# Multiplier of Fibonacci hashing, used to spread subject ids over chunks.
_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CooccurrenceResult:
    """Windowed co-occurrence counts of one site and what it took to get them.

    Attributes
    ----------
    counts : scipy.sparse.csr_matrix, shape (n_codes, n_codes), float64
        Symmetric, zero diagonal, canonical (sorted indices, no duplicates).
        ``counts[a, b]`` is the number of event pairs of codes ``a`` and ``b``.
    code_events : ndarray, shape (n_codes,), int64
        Events per code after collapsing duplicates.
    n_events : int
        Events given.
    n_events_used : int
        Events left after collapsing duplicate (subject, code, day) events.
    n_duplicates_collapsed : int
        ``n_events - n_events_used``.
    n_pairs : int
        Unordered event pairs counted; ``counts.sum() == 2 * n_pairs``.
    n_pairs_capped : int
        Event pairs inside the window, with different codes, that were *not* counted
        because of ``max_neighbors`` (exact, not an estimate). Zero when no patient had
        more than ``max_neighbors`` events within one window.
    n_subjects_capped : int
        Subjects that lost at least one pair to the cap.
    seconds : float
        Wall time of the call.
    """

    counts: sp.csr_matrix
    code_events: np.ndarray
    n_events: int
    n_events_used: int
    n_duplicates_collapsed: int
    n_pairs: int
    n_pairs_capped: int
    n_subjects_capped: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        """Input events processed per second of wall time."""
        if self.n_events == 0:
            return 0.0
        return self.n_events / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class CooccurrenceEmbedding:
    """Co-occurrence embedding of every code of one site.

    Attributes
    ----------
    vectors : ndarray, shape (n_codes, dim), float32
        Unit-norm rows; all-zero rows for codes without co-occurrence signal.
    counts : scipy.sparse.csr_matrix, shape (n_codes, n_codes), float64
        The windowed co-occurrence counts (see :func:`cooccurrence_counts`).
    sppmi : scipy.sparse.csr_matrix, shape (n_codes, n_codes), float64
        The matrix that was factorised (see :func:`sppmi`).
    code_events : ndarray, shape (n_codes,), int64
        Events per code after collapsing duplicates.
    reliable : ndarray, shape (n_codes,), bool
        ``code_events >= min_events`` and the code's vector is not zero.
    stats : dict
        JSON-ready numbers: ``n_events``, ``n_events_used``, ``n_duplicates_collapsed``,
        ``n_pairs``, ``n_pairs_capped``, ``n_subjects_capped``, ``nnz_counts``,
        ``nnz_sppmi``, ``n_reliable``, ``events_per_second`` (counting step) and
        ``seconds`` per stage (``counts``, ``sppmi``, ``svd``).
    """

    vectors: np.ndarray
    counts: sp.csr_matrix
    sppmi: sp.csr_matrix
    code_events: np.ndarray
    reliable: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- validation


def _check_events(
    subject: np.ndarray, time_days: np.ndarray, code: np.ndarray, n_codes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the parallel event arrays; return int64, float64 and integer arrays (no copy if possible)."""
    if isinstance(n_codes, bool) or not isinstance(n_codes, (int, np.integer)) or n_codes < 1:
        raise MashInputError(f"n_codes must be a positive integer, got {n_codes!r}")
    subject = np.asarray(subject)
    time_days = np.asarray(time_days)
    code = np.asarray(code)
    for name, arr in (("subject", subject), ("time_days", time_days), ("code", code)):
        if arr.ndim != 1:
            raise MashInputError(
                f"expected a 1-D array of shape (n_events,), got shape {arr.shape}", column=name
            )
    if not subject.size == time_days.size == code.size:
        raise MashInputError(
            "subject, time_days and code must have the same length, got "
            f"{subject.size}, {time_days.size} and {code.size}"
        )
    if subject.size and not np.issubdtype(subject.dtype, np.integer):
        raise MashInputError(
            f"subject ids must be integers, got dtype {subject.dtype}; "
            "map them to integers first (e.g. pandas.factorize)",
            column="subject",
        )
    if code.size and not np.issubdtype(code.dtype, np.integer):
        raise MashInputError(
            f"codes must be integer indices in [0, n_codes), got dtype {code.dtype}",
            column="code",
        )
    if time_days.size and not (
        np.issubdtype(time_days.dtype, np.floating) or np.issubdtype(time_days.dtype, np.integer)
    ):
        raise MashInputError(
            f"time_days must be numeric days, got dtype {time_days.dtype}; convert datetime64 "
            "with t.astype('datetime64[ns]').astype('int64') / 86400e9",
            column="time_days",
        )
    subject = subject.astype(np.int64, copy=False)
    time_days = time_days.astype(np.float64, copy=False)
    if code.size:
        lo, hi = int(code.min()), int(code.max())
        if lo < 0 or hi >= n_codes:
            bad = int(np.flatnonzero((code < 0) | (code >= n_codes))[0])
            raise MashInputError(
                f"code {int(code[bad])} at event {bad} is outside [0, n_codes={n_codes})",
                column="code",
            )
        if not (-_MAX_ABS_DAYS <= time_days.min() and time_days.max() <= _MAX_ABS_DAYS):
            bad = int(np.flatnonzero(~(np.abs(time_days) <= _MAX_ABS_DAYS))[0])
            raise MashInputError(
                f"time {time_days[bad]} at event {bad} is not a finite number of days within "
                f"+-{_MAX_ABS_DAYS:g}; drop events without a time",
                column="time_days",
            )
    return subject, time_days, code


# --------------------------------------------------------------------------- counting kernels


def _sort_and_collapse(
    subject: np.ndarray, time_days: np.ndarray, code: np.ndarray, n_codes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort one chunk by (subject, day, code) and collapse duplicate (subject, code, day) events.

    Returns ``(group, t, code)`` of the kept events in that order: ``group`` is an int64
    array equal exactly for events of the same subject, ``t`` the earliest time of each
    collapsed group.
    """
    day = np.floor(time_days).astype(np.int64)
    s_min, s_max = int(subject.min()), int(subject.max())
    d_min, d_max = int(day.min()), int(day.max())
    cb = max(int(n_codes - 1).bit_length(), 1)
    db = max(d_max - d_min, 1).bit_length()
    sb = max(s_max - s_min, 1).bit_length()
    packed = sb + db + cb <= 63
    if packed:
        key = ((subject - s_min) << (db + cb)) | ((day - d_min) << cb) | code
        order = np.argsort(key)
        key = key[order]
        new = np.empty(key.size, dtype=bool)
        new[0] = True
        np.not_equal(key[1:], key[:-1], out=new[1:])
    else:  # id or day range too wide to pack into one int64 key
        order = np.lexsort((code, day, subject))
        key = subject[order]
        ds, cs = day[order], code[order]
        new = np.empty(key.size, dtype=bool)
        new[0] = True
        new[1:] = (key[1:] != key[:-1]) | (ds[1:] != ds[:-1]) | (cs[1:] != cs[:-1])
    t_sorted = time_days[order]
    if new.all():
        t = t_sorted
        kept = order
    else:
        starts = np.flatnonzero(new)
        t = t_sorted[starts]
        dup = np.flatnonzero(~new)
        # earliest time of each collapsed (subject, code, day) group
        np.minimum.at(t, np.searchsorted(starts, dup, side="right") - 1, t_sorted[dup])
        key = key[starts]
        kept = order[starts]
    if packed:
        return key >> (db + cb), t, key & ((1 << cb) - 1)
    return key, t, code[kept]


def _offset_pairs(
    group: np.ndarray,
    t: np.ndarray,
    code: np.ndarray,
    window_days: float,
    max_k: int | None,
    *,
    emit: bool = True,
    per_event: bool = False,
) -> tuple[list[np.ndarray], np.ndarray | int, np.ndarray]:
    """Enumerate in-window pairs of events sorted by (subject, day, code), by offset.

    For ``k = 1, 2, ...`` event ``i`` is compared with event ``i + k`` in vectorised
    passes. An event stays *active* while the event ``k`` places later has the same
    subject and a time at most ``window_days + 1.5`` later: the order is by calendar day,
    so within a day times may go backwards by less than one day, and the extra half day
    absorbs rounding. Once inactive, no later event can be in its window.

    Parameters
    ----------
    group, t, code : ndarray, shape (n,)
        Sorted, collapsed events (see :func:`_sort_and_collapse`).
    window_days : float
        Inclusive window.
    max_k : int or None
        Largest offset examined.
    emit : bool
        Return the code pairs.
    per_event : bool
        Return pairs found per event ``i`` (the earlier one) instead of the total.

    Returns
    -------
    pairs : list of ndarray, each (2, m) int64
        ``(min(code_i, code_j), max(code_i, code_j))`` per pair; empty unless ``emit``.
    n_pairs : int or ndarray of shape (n,)
        Pairs found (different codes, ``|t_i - t_j| <= window_days``).
    remaining : ndarray of int64
        Events still active after ``max_k`` offsets (empty when the loop ran dry).
    """
    n = t.size
    lim = window_days + 1.5
    out: list[np.ndarray] = []
    n_pairs = 0
    found = np.zeros(n, dtype=np.int64) if per_event else None
    idx: np.ndarray | None = None  # None: all events active, use whole-array slices
    act = np.ones(n, dtype=bool)
    k = 0
    while max_k is None or k < max_k:
        k += 1
        if k >= n:
            idx = np.empty(0, dtype=np.int64)
            break
        if idx is None:
            dt = t[k:] - t[:-k]
            ci, cj = code[:-k], code[k:]
            act = (group[:-k] == group[k:]) & (dt <= lim)
        else:
            j = idx + k
            if j[-1] >= n:  # idx is sorted
                keep = j < n
                idx, j = idx[keep], j[keep]
            dt = t[j] - t[idx]
            ci, cj = code[idx], code[j]
            act = (group[idx] == group[j]) & (dt <= lim)
        pair = act & (np.abs(dt) <= window_days) & (ci != cj)
        m = int(np.count_nonzero(pair))
        n_pairs += m
        if found is not None and m:
            if idx is None:
                found[: n - k] += pair
            else:
                found[idx] += pair
        if emit and m:
            a, b = ci[pair], cj[pair]
            out.append(np.stack([np.minimum(a, b), np.maximum(a, b)]))
        if idx is None:
            n_act = int(np.count_nonzero(act))
            if n_act < _GATHER_BELOW * act.size:
                idx = np.flatnonzero(act)
        else:
            idx = idx[act]
            n_act = idx.size
        if n_act == 0:
            idx = np.empty(0, dtype=np.int64)
            break
    if idx is None:  # stopped by max_k while still in slice mode
        idx = np.flatnonzero(act)
    return out, (found if found is not None else n_pairs), idx


def _count_forward_within(t: np.ndarray, seg_end: np.ndarray, window_days: float) -> np.ndarray:
    """For each ``i``, count ``i < j < seg_end[i]`` with ``t[j] - t[i] <= window_days``.

    ``t`` is ascending within each segment ``[i, seg_end[i])``. Vectorised bisection,
    O(n log n); the predicate is the same float expression as in :func:`_offset_pairs`.
    """
    n = t.size
    i = np.arange(n)
    lo = i + 1
    hi = seg_end.astype(np.int64, copy=True)
    while True:
        live = lo < hi
        if not live.any():
            break
        mid = np.minimum((lo + hi) // 2, n - 1)
        ok = live & (t[mid] - t <= window_days)
        lo = np.where(ok, mid + 1, lo)
        hi = np.where(live & ~ok, mid, hi)
    return lo - i - 1


def _segment_ends(*keys: np.ndarray) -> np.ndarray:
    """End (exclusive) of the run of equal ``keys`` that each position belongs to."""
    n = keys[0].size
    change = np.zeros(n, dtype=bool)
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    bounds = np.append(np.flatnonzero(change[1:]) + 1, n)
    return bounds[np.cumsum(change)]


def _exact_pair_counts(group: np.ndarray, t: np.ndarray, code: np.ndarray, window_days: float) -> np.ndarray:
    """Per event, pairs with a later-in-time event of its group, another code, within window.

    Summed over a group this is the group's exact number of in-window pairs with
    different codes (all pairs minus same-code pairs, each counted by bisection).
    """
    out = np.zeros(t.size, dtype=np.int64)
    order = np.lexsort((t, group))
    g = group[order]
    out[order] += _count_forward_within(t[order], _segment_ends(g), window_days)
    order = np.lexsort((t, code, group))
    g, c = group[order], code[order]
    out[order] -= _count_forward_within(t[order], _segment_ends(g, c), window_days)
    return out


@dataclass
class _ChunkOut:
    pairs: np.ndarray  # (2, m) lo/hi code pairs (dense path) or unique pair keys (sparse path)
    pair_counts: np.ndarray | None  # multiplicity of each key (sparse path)
    code_events: np.ndarray
    n_used: int
    n_pairs: int
    n_capped: int
    n_subjects_capped: int


def _count_chunk(
    subject: np.ndarray,
    time_days: np.ndarray,
    code: np.ndarray,
    n_codes: int,
    window_days: float,
    max_neighbors: int | None,
    dense: bool,
) -> _ChunkOut:
    """Count pairs of one chunk of whole subjects."""
    group, t, c = _sort_and_collapse(subject, time_days, code, n_codes)
    code_events = np.bincount(c, minlength=n_codes)
    out, n_pairs, rem = _offset_pairs(group, t, c, window_days, max_neighbors)
    n_capped = 0
    n_subj_capped = 0
    if rem.size:
        # exact loss: all in-window pairs of the affected subjects minus those counted
        sel = np.isin(group, np.unique(group[rem]))
        g_p, t_p, c_p = group[sel], t[sel], c[sel]
        _, emitted, _ = _offset_pairs(g_p, t_p, c_p, window_days, max_neighbors, emit=False, per_event=True)
        lost = _exact_pair_counts(g_p, t_p, c_p, window_days) - emitted
        lost_per_subject = np.bincount(np.cumsum(np.r_[False, g_p[1:] != g_p[:-1]]), weights=lost)
        n_capped = int(lost.sum())
        n_subj_capped = int(np.count_nonzero(lost_per_subject > 0))
    pairs = np.concatenate(out, axis=1) if out else np.empty((2, 0), dtype=np.int64)
    if dense:
        return _ChunkOut(pairs, None, code_events, t.size, int(n_pairs), n_capped, n_subj_capped)
    keys, counts = np.unique(pairs[0] * n_codes + pairs[1], return_counts=True)
    return _ChunkOut(keys, counts, code_events, t.size, int(n_pairs), n_capped, n_subj_capped)


def _chunk_slices(subject: np.ndarray, n_chunks: int) -> list[np.ndarray] | None:
    """Hash subjects into ``n_chunks`` groups; return the (ascending) event indices of each."""
    if n_chunks <= 1:
        return None
    h = (subject.view(np.uint64) * _HASH_MULT) >> np.uint64(40)
    bucket = (h % np.uint64(n_chunks)).astype(np.uint16)
    order = np.argsort(bucket, kind="stable")  # radix sort
    bounds = np.zeros(n_chunks + 1, dtype=np.int64)
    np.cumsum(np.bincount(bucket, minlength=n_chunks), out=bounds[1:])
    return [order[bounds[i] : bounds[i + 1]] for i in range(n_chunks) if bounds[i + 1] > bounds[i]]


def _symmetric_csr(lo: np.ndarray, hi: np.ndarray, values: np.ndarray, n_codes: int) -> sp.csr_matrix:
    """CSR of ``values`` at (lo, hi) and (hi, lo); pairs sorted by (lo, hi), distinct, ``lo < hi``."""
    indptr = np.zeros(n_codes + 1, dtype=np.int64)
    np.cumsum(np.bincount(lo, minlength=n_codes), out=indptr[1:])
    idx_dtype = np.int32 if 2 * lo.size < 2**31 and n_codes < 2**31 else np.int64
    upper = sp.csr_matrix(
        (values.astype(np.float64), hi.astype(idx_dtype), indptr.astype(idx_dtype)),
        shape=(n_codes, n_codes),
    )
    upper.has_sorted_indices = True
    out = (upper + upper.T.tocsr()).tocsr()
    out.sort_indices()
    return out


# --------------------------------------------------------------------------- public API


def cooccurrence_counts(
    subject: np.ndarray,
    time_days: np.ndarray,
    code: np.ndarray,
    n_codes: int,
    window_days: float = 30.0,
    *,
    max_neighbors: int | None = 256,
    chunk_events: int = 250_000,
    n_threads: int | None = None,
) -> CooccurrenceResult:
    r"""Count how often two codes occur in the same subject within a time window.

    Definition, in this order:

    1. **Collapse duplicates.** Events with the same subject, code and calendar day
       :math:`\lfloor t \rfloor` become one event whose time is the earliest of them.
    2. **Count pairs.** Every unordered pair of the remaining events :math:`(e, f)` with
       the same subject, different codes :math:`a \ne b` and :math:`|t_e - t_f| \le w`
       (``window_days``, boundary included) adds one to :math:`C_{ab}` and to
       :math:`C_{ba}`:

       .. math::

           C_{ab} = \sum_{s} \#\{\{e, f\} \subseteq E_s :\ \mathrm{code}(e)=a,\
           \mathrm{code}(f)=b,\ |t_e - t_f| \le w\}, \quad a \ne b,\qquad C_{aa} = 0.

    3. **Cap dense patients.** Within a subject, events are ordered by (calendar day,
       code); each event is paired only with its ``max_neighbors`` successors in that order,
       i.e. its nearest later events at day resolution. Pairs lost this way are counted
       exactly in ``n_pairs_capped``; with ``max_neighbors=None`` nothing is capped.

    Parameters
    ----------
    subject : ndarray, shape (n_events,), integer
        Subject (patient) id of each event; any int64 values.
    time_days : ndarray, shape (n_events,), float
        Event time in days, e.g. ``datetime64[ns]`` as int64 divided by ``86400e9``.
        Calendar days are the integer parts, so use one reference (UTC epoch) per site.
    code : ndarray, shape (n_events,), integer
        Code index of each event, in ``[0, n_codes)``.
    n_codes : int
        Size of the site's code vocabulary.
    window_days : float, default 30.0
        Maximum time between two events of a pair, in days (inclusive).
    max_neighbors : int or None, default 256
        Most later events an event is paired with. Bounds the work per event for
        patients with very many events in a window. ``None``: no cap.
    chunk_events : int, default 250_000
        Approximate events per chunk; subjects are hashed into chunks that are counted
        independently, which bounds temporary memory to O(``chunk_events``) per thread.
    n_threads : int or None, default None
        Threads counting chunks in parallel; ``None``: one per available core.

    Returns
    -------
    CooccurrenceResult
        ``counts`` is a symmetric float64 CSR matrix of shape (n_codes, n_codes) with zero
        diagonal, plus ``code_events`` and counts of events, duplicates, pairs and capped
        pairs.

    Raises
    ------
    MashInputError
        On arrays of different lengths or dtypes, codes outside ``[0, n_codes)``,
        non-finite times, a negative window or a non-positive ``max_neighbors``.

    Notes
    -----
    Events are sorted by one int64 key ``(subject, day, code)`` (a ``lexsort`` when the
    id and day ranges do not fit in 63 bits), duplicates are adjacent and collapsed, then
    event :math:`i` is compared with :math:`i+k` for :math:`k = 1, 2, \dots` in vectorised
    passes until no event has a same-subject successor within :math:`w` (+1.5 days,
    because the order is by day). Pairs are aggregated in a dense upper triangle when
    :math:`n(n-1)/2 \le 2^{24}`, otherwise by sorting pair keys.

    Examples
    --------
    >>> import numpy as np
    >>> r = cooccurrence_counts(
    ...     subject=np.array([7, 7, 7, 8]),
    ...     time_days=np.array([0.0, 10.0, 45.0, 3.0]),
    ...     code=np.array([0, 1, 2, 1]),
    ...     n_codes=3,
    ...     window_days=30.0,
    ... )
    >>> r.counts.toarray()
    array([[0., 1., 0.],
           [1., 0., 0.],
           [0., 0., 0.]])
    >>> r.n_pairs, r.n_events_used
    (1, 4)
    """
    t0 = time.perf_counter()
    subject, time_days, code = _check_events(subject, time_days, code, n_codes)
    window_days = float(window_days)
    if not window_days >= 0 or not math.isfinite(window_days):
        raise MashInputError(f"window_days must be a finite number >= 0, got {window_days}")
    if max_neighbors is not None and (isinstance(max_neighbors, bool) or int(max_neighbors) < 1):
        raise MashInputError(f"max_neighbors must be a positive integer or None, got {max_neighbors!r}")
    if int(chunk_events) < 1:
        raise MashInputError(f"chunk_events must be a positive integer, got {chunk_events!r}")
    n_codes = int(n_codes)
    n_events = int(subject.size)
    n_tri = n_codes * (n_codes - 1) // 2
    dense = n_tri <= _DENSE_MAX_CELLS
    code_events = np.zeros(n_codes, dtype=np.int64)
    if n_events == 0:
        return CooccurrenceResult(
            sp.csr_matrix((n_codes, n_codes), dtype=np.float64), code_events,
            0, 0, 0, 0, 0, 0, time.perf_counter() - t0,
        )

    n_chunks = min(-(-n_events // int(chunk_events)), 4096)
    slices = _chunk_slices(subject, n_chunks)
    if n_threads is None:
        from mash.threads import thread_limit

        n_threads = thread_limit()
    n_threads = max(int(n_threads), 1)

    acc = np.zeros(n_tri, dtype=np.int64) if dense else None
    sparse_parts: list[tuple[np.ndarray, np.ndarray]] = []
    lock = threading.Lock()
    totals = np.zeros(4, dtype=np.int64)  # used, pairs, capped, subjects capped

    def work(sel: np.ndarray | None) -> None:
        if sel is None:
            s, t, c = subject, time_days, code
        else:
            s, t, c = subject[sel], time_days[sel], code[sel]
        r = _count_chunk(s, t, c.astype(np.int64, copy=False), n_codes, window_days, max_neighbors, dense)
        if dense:
            lo, hi = r.pairs
            # row-major index in the strict upper triangle
            tri = lo * (2 * n_codes - lo - 1) // 2 + (hi - lo - 1)
        with lock:
            np.add(code_events, r.code_events, out=code_events)
            totals[:] += (r.n_used, r.n_pairs, r.n_capped, r.n_subjects_capped)
            if dense:
                np.add.at(acc, tri, 1)
            else:
                sparse_parts.append((r.pairs, r.pair_counts))

    if slices is None:
        work(None)
    elif n_threads == 1:
        for sel in slices:
            work(sel)
    else:
        with ThreadPoolExecutor(max_workers=min(n_threads, len(slices))) as pool:
            list(pool.map(work, slices))  # list() re-raises worker errors

    if dense:
        nz = np.flatnonzero(acc)
        values = acc[nz]
        row_start = np.arange(n_codes, dtype=np.int64)
        row_start = row_start * (2 * n_codes - row_start - 1) // 2
        lo = np.searchsorted(row_start, nz, side="right") - 1
        hi = nz - row_start[lo] + lo + 1
        del acc
    else:
        keys = np.concatenate([k for k, _ in sparse_parts]) if sparse_parts else np.empty(0, np.int64)
        vals = np.concatenate([v for _, v in sparse_parts]) if sparse_parts else np.empty(0, np.int64)
        order = np.argsort(keys, kind="stable")
        keys, vals = keys[order], vals[order]
        if keys.size:
            start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            values = np.add.reduceat(vals, start)
            keys = keys[start]
        else:
            values = vals
        lo, hi = keys // n_codes, keys % n_codes
    counts = _symmetric_csr(lo, hi, values, n_codes)
    n_used, n_pairs, n_capped, n_subj_capped = (int(x) for x in totals)
    return CooccurrenceResult(
        counts=counts,
        code_events=code_events,
        n_events=n_events,
        n_events_used=n_used,
        n_duplicates_collapsed=n_events - n_used,
        n_pairs=n_pairs,
        n_pairs_capped=n_capped,
        n_subjects_capped=n_subj_capped,
        seconds=time.perf_counter() - t0,
    )


def sppmi(counts: sp.spmatrix, shift: float = 1.0, cds_alpha: float = 0.75) -> sp.csr_matrix:
    r"""Shifted positive PMI with context-distribution smoothing (Levy et al. 2015).

    With row sums :math:`r_i = \sum_j C_{ij}`, column sums :math:`c_j = \sum_i C_{ij}`,
    total :math:`D = \sum_{ij} C_{ij}` and smoothed context probabilities
    :math:`\hat P_\alpha(j) = c_j^\alpha / \sum_{j'} c_{j'}^\alpha`,

    .. math::

        \mathrm{PMI}_\alpha(i, j)
            = \log \frac{C_{ij} / D}{(r_i / D)\, \hat P_\alpha(j)}
            = \log \frac{C_{ij} \sum_{j'} c_{j'}^\alpha}{r_i\, c_j^\alpha},
        \qquad
        \mathrm{SPPMI}(i, j) = \max\bigl(\mathrm{PMI}_\alpha(i, j) - \log k,\ 0\bigr)

    for :math:`C_{ij} > 0`, and 0 where :math:`C_{ij} = 0` (so only the nonzeros of
    :math:`C` are touched and rows or columns without counts stay all-zero). ``shift`` is
    :math:`k` (the number of negative samples in the word2vec analogy; ``shift=1`` gives
    PPMI) and ``cds_alpha`` is :math:`\alpha` (1: no smoothing). With :math:`\alpha \ne 1`
    the result of a symmetric :math:`C` is not exactly symmetric: rows are "words" and
    columns "contexts".

    Parameters
    ----------
    counts : sparse matrix, shape (n_rows, n_cols)
        Non-negative co-occurrence counts, e.g. :attr:`CooccurrenceResult.counts`.
    shift : float, default 1.0
        :math:`k > 0`; larger values keep fewer, stronger associations.
    cds_alpha : float, default 0.75
        Context-distribution smoothing exponent :math:`\alpha > 0`.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_rows, n_cols), float64
        Non-negative, with explicit zeros removed and sorted indices.

    Raises
    ------
    MashInputError
        If ``counts`` has negative or non-finite entries, or ``shift``/``cds_alpha`` is
        not positive.

    References
    ----------
    O. Levy, Y. Goldberg, I. Dagan, "Improving distributional similarity with lessons
    learned from word embeddings", TACL 3 (2015), sections 3.1 and 3.2.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> c = sp.csr_matrix(np.array([[0.0, 4.0, 0.0], [4.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    >>> np.round(sppmi(c, shift=1.0, cds_alpha=1.0).toarray(), 3)
    array([[0.   , 0.693, 0.   ],
           [0.693, 0.   , 0.693],
           [0.   , 0.693, 0.   ]])
    """
    if not (shift > 0 and math.isfinite(shift)):
        raise MashInputError(f"shift must be a finite number > 0, got {shift}")
    if not (cds_alpha > 0 and math.isfinite(cds_alpha)):
        raise MashInputError(f"cds_alpha must be a finite number > 0, got {cds_alpha}")
    c = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    c.sum_duplicates()
    c.eliminate_zeros()
    if c.nnz and (not np.isfinite(c.data).all() or c.data.min() < 0):
        raise MashInputError("counts must be finite and non-negative")
    if c.nnz == 0:
        return c
    row_sum = np.asarray(c.sum(axis=1)).ravel()
    col_sum = np.asarray(c.sum(axis=0)).ravel()
    log_col = np.zeros_like(col_sum)
    np.log(col_sum, out=log_col, where=col_sum > 0)
    log_z = math.log(float(np.sum(col_sum[col_sum > 0] ** cds_alpha)))
    rows = np.repeat(np.arange(c.shape[0]), np.diff(c.indptr))
    pmi = np.log(c.data) + log_z - np.log(row_sum[rows]) - cds_alpha * log_col[c.indices]
    c.data = np.maximum(pmi - math.log(shift), 0.0)
    c.eliminate_zeros()
    c.sort_indices()
    return c


def _sign_fix(u: np.ndarray) -> np.ndarray:
    """Flip each column of ``u`` so that its largest-magnitude entry is positive
    (scikit-learn's ``svd_flip`` convention)."""
    from sklearn.utils.extmath import svd_flip

    if u.size == 0:
        return u
    return svd_flip(u.copy(), None, u_based_decision=True)[0]


class SvdFallbackWarning(UserWarning):
    """ARPACK did not converge and the dense SVD was used instead (slower, same result)."""


def svd_embeddings(matrix: sp.spmatrix | np.ndarray, dim: int = 64, seed: int = 0) -> np.ndarray:
    r"""Row embeddings :math:`U_d \Sigma_d^{1/2}` of a truncated SVD, unit-norm rows.

    With :math:`M \approx U_d \Sigma_d V_d^\top` the rank-:math:`d` truncated SVD
    (singular values in descending order), the embedding of row :math:`i` is

    .. math::

        e_i = \frac{(U_d \Sigma_d^{1/2})_{i,:}}{\lVert (U_d \Sigma_d^{1/2})_{i,:} \rVert_2},

    the symmetric eigenvalue weighting :math:`p = 1/2` of Levy et al. (2015). Each
    singular vector :math:`u_r` is signed so that its largest-magnitude entry is positive
    (first such entry on ties), which makes the result deterministic. Components beyond
    the numerical rank (:math:`\sigma_r \le \sigma_1 \max(M.\mathrm{shape})\,\epsilon`)
    and ``dim > min(M.shape)`` are zero columns; rows of :math:`M` that are all zero, or
    whose projection vanishes, stay zero.

    Parameters
    ----------
    matrix : sparse matrix or ndarray, shape (n_rows, n_cols)
        Typically :func:`sppmi` of the counts.
    dim : int, default 64
        Embedding dimension :math:`d`.
    seed : int, default 0
        Seeds the ARPACK start vector (sparse solver), so repeated calls agree exactly.

    Returns
    -------
    ndarray, shape (n_rows, dim), float32
        Rows of unit :math:`\ell_2` norm, or zero.

    Notes
    -----
    All-zero rows and columns are dropped before the SVD (which is exact: they carry no
    singular mass), so a large code list of which few codes have events -- a reference
    listing a whole vocabulary -- costs what its active codes cost. The remaining
    matrix uses a dense ``numpy.linalg.svd`` when ``min(shape) <= 512`` or
    ``dim >= min(shape) - 1``, otherwise ``scipy.sparse.linalg.svds`` (ARPACK) with a
    seeded start vector, falling back to the dense SVD if ARPACK does not converge.

    Examples
    --------
    >>> m = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> svd_embeddings(m, dim=3)
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 0.]], dtype=float32)
    """
    return _svd_embeddings(matrix, dim, seed)[0]


def _svd_embeddings(matrix: sp.spmatrix | np.ndarray, dim: int, seed: int) -> tuple[np.ndarray, str]:
    """:func:`svd_embeddings` and the solver used: ``"none"`` (empty matrix), ``"dense"``,
    ``"arpack"`` or ``"dense after arpack did not converge"`` (also warned)."""
    if isinstance(dim, bool) or int(dim) < 1:
        raise MashInputError(f"dim must be a positive integer, got {dim!r}")
    dim = int(dim)
    m = sp.csr_matrix(matrix, dtype=np.float64)
    m.eliminate_zeros()
    n_rows, n_cols = m.shape
    out = np.zeros((n_rows, dim), dtype=np.float32)
    if m.nnz == 0 or min(n_rows, n_cols) == 0:
        return out, "none"
    if not np.isfinite(m.data).all():
        raise MashInputError("matrix has non-finite entries")
    # Only rows and columns with entries carry singular mass: factorise those alone.
    rows = np.flatnonzero(np.diff(m.indptr) > 0)
    cols = np.flatnonzero(np.bincount(m.indices, minlength=n_cols) > 0)
    if len(rows) < n_rows or len(cols) < n_cols:
        m = m[rows][:, cols]
    k_max = min(m.shape)
    k = min(dim, k_max)
    u = s = None
    solver = "dense"
    if k_max > 512 and k < k_max - 1:
        v0 = np.random.default_rng(seed).standard_normal(k_max)
        try:
            u, s, _ = svds(m, k=k, v0=v0, solver="arpack")
            solver = "arpack"
        except ArpackNoConvergence:
            u = s = None
            solver = "dense after arpack did not converge"
            warnings.warn(
                f"ARPACK did not converge on the {m.shape[0]} x {m.shape[1]} SPPMI matrix; "
                "used the dense SVD (same result, more time and memory)",
                SvdFallbackWarning,
                stacklevel=3,
            )
    if u is None or s is None:
        u, s, _ = np.linalg.svd(m.toarray(), full_matrices=False)
    order = np.argsort(-s, kind="stable")[:k]
    u, s = u[:, order], s[order]
    rank = int(np.count_nonzero(s > s[0] * max(n_rows, n_cols) * np.finfo(np.float64).eps))
    u = _sign_fix(u[:, :rank])
    emb = u * np.sqrt(s[:rank])
    norms = np.linalg.norm(emb, axis=1)
    ok = norms > 1e-12 * max(float(norms.max()), 1e-300)
    out[rows[ok], :rank] = emb[ok] / norms[ok, None]
    return out, solver


def cooccurrence_embeddings(
    subject: np.ndarray,
    time_days: np.ndarray,
    code: np.ndarray,
    n_codes: int,
    *,
    window_days: float = 30.0,
    shift: float = 1.0,
    cds_alpha: float = 0.75,
    dim: int = 64,
    min_events: int = 20,
    max_neighbors: int | None = 256,
    n_threads: int | None = None,
    seed: int = 0,
) -> CooccurrenceEmbedding:
    r"""Counts, SPPMI and SVD of one site's events in one call.

    Composes :func:`cooccurrence_counts`, :func:`sppmi` and :func:`svd_embeddings`; see
    them for the definitions. A code is ``reliable`` when it has at least ``min_events``
    events after collapsing duplicates *and* a nonzero SPPMI row.

    Parameters
    ----------
    subject, time_days, code : ndarray, shape (n_events,)
        One site's events, as in :func:`cooccurrence_counts`.
    n_codes : int
        Size of the site's code vocabulary.
    window_days, max_neighbors, n_threads
        Passed to :func:`cooccurrence_counts`.
    shift, cds_alpha
        Passed to :func:`sppmi`.
    dim, seed
        Passed to :func:`svd_embeddings`.
    min_events : int, default 20
        Fewest events for a code's vector to count as reliable.

    Returns
    -------
    CooccurrenceEmbedding
        ``vectors`` (n_codes, dim) float32, ``counts``, ``sppmi``, ``code_events``,
        ``reliable`` and JSON-ready ``stats``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> subject = np.repeat(np.arange(200), 5)
    >>> code = (rng.integers(0, 3, 1000) + 3 * (subject % 2)).astype(np.int32)
    >>> emb = cooccurrence_embeddings(subject, np.zeros(1000), code, 6, dim=2, shift=1.0)
    >>> emb.vectors.shape, bool(emb.reliable.all())
    ((6, 2), True)
    """
    if isinstance(min_events, bool) or int(min_events) < 0:
        raise MashInputError(f"min_events must be a non-negative integer, got {min_events!r}")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    res = cooccurrence_counts(
        subject, time_days, code, n_codes, window_days,
        max_neighbors=max_neighbors, n_threads=n_threads,
    )
    t1 = time.perf_counter()
    seconds["counts"] = t1 - t0
    m = sppmi(res.counts, shift=shift, cds_alpha=cds_alpha)
    t2 = time.perf_counter()
    seconds["sppmi"] = t2 - t1
    vectors, solver = _svd_embeddings(m, dim, seed)
    seconds["svd"] = time.perf_counter() - t2
    reliable = (res.code_events >= int(min_events)) & (np.diff(m.indptr) > 0)
    reliable &= np.any(vectors != 0, axis=1)
    stats = {
        "n_events": res.n_events,
        "n_events_used": res.n_events_used,
        "n_duplicates_collapsed": res.n_duplicates_collapsed,
        "n_pairs": res.n_pairs,
        "n_pairs_capped": res.n_pairs_capped,
        "n_subjects_capped": res.n_subjects_capped,
        "nnz_counts": int(res.counts.nnz),
        "nnz_sppmi": int(m.nnz),
        "n_reliable": int(reliable.sum()),
        "svd_solver": solver,
        "events_per_second": round(res.events_per_second, 1),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
    }
    return CooccurrenceEmbedding(
        vectors=vectors,
        counts=res.counts,
        sppmi=m,
        code_events=res.code_events,
        reliable=reliable,
        stats=stats,
    )
