"""Anchor pairs: known or confidently matched (query code, reference code) pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mash.errors import MashInputError

#: Anchor sources, in order of trust.
SOURCES = ("file", "shared_code", "text", "cooccurrence", "refined")


@dataclass(frozen=True)
class Anchors:
    """Parallel arrays of anchor pairs between one query site and the reference.

    Attributes
    ----------
    query, reference : ndarray, shape (m,), int64
        Row indices into the query site's and the reference site's code tables.
    source : ndarray, shape (m,), object
        Where each pair came from (one of :data:`SOURCES`).
    """

    query: np.ndarray
    reference: np.ndarray
    source: np.ndarray

    @classmethod
    def empty(cls) -> Anchors:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, object))

    def __len__(self) -> int:
        return len(self.query)

    def union(self, other: Anchors) -> Anchors:
        """Pairs of ``self`` plus those of ``other`` whose query and reference are both
        still unused (earlier, more trusted sources win; one-to-one)."""
        used_q, used_r = set(self.query.tolist()), set(self.reference.tolist())
        keep = [
            i
            for i, (q, r) in enumerate(zip(other.query.tolist(), other.reference.tolist(), strict=True))
            if q not in used_q and r not in used_r
        ]
        return Anchors(
            np.concatenate([self.query, other.query[keep]]).astype(np.int64),
            np.concatenate([self.reference, other.reference[keep]]).astype(np.int64),
            np.concatenate([self.source, other.source[keep]]),
        )

    def counts(self) -> dict[str, int]:
        return {s: int((self.source == s).sum()) for s in SOURCES if (self.source == s).any()}


def shared_code_anchors(
    query_codes: pd.Series, reference_codes: pd.Series, min_overlap: float = 0.3
) -> Anchors:
    """Identical code strings, used only when the sites plausibly share a coding system.

    Two vocabularies are taken to share a system when at least ``min_overlap`` of the
    smaller one's codes occur verbatim in the other (an ICD-9 site and an ICD-10 site
    share a few strings by accident, e.g. ``V5861``; those must not become anchors).
    """
    ref_pos = {c: i for i, c in enumerate(reference_codes.tolist())}
    q = [(i, ref_pos[c]) for i, c in enumerate(query_codes.tolist()) if c in ref_pos]
    if not q or len(q) < min_overlap * min(len(query_codes), len(reference_codes)):
        return Anchors.empty()
    qi, ri = (np.array(v, dtype=np.int64) for v in zip(*q, strict=True))
    return Anchors(qi, ri, np.full(len(qi), "shared_code", dtype=object))


def read_anchor_file(
    path: str | Path, site_codes: dict[str, pd.Series], reference: str
) -> dict[str, Anchors]:
    """Read known pairs: a CSV with columns ``site, code, reference_code``.

    Returns one :class:`Anchors` per non-reference site. Rows naming an unknown site or
    code are errors (one line, with the row), since a user-given anchor is trusted.
    """
    path = Path(path)
    if not path.is_file():
        raise MashInputError("anchors file not found", file=path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
        raise MashInputError(f"cannot read anchors CSV ({type(exc).__name__})", file=path) from exc
    frame.columns = [c.strip().lower() for c in frame.columns]
    for col in ("site", "code", "reference_code"):
        if col not in frame.columns:
            raise MashInputError(
                f"missing column; found {list(frame.columns)}", file=path, column=col
            )
    ref_pos = {c: i for i, c in enumerate(site_codes[reference].tolist())}
    pos = {s: {c: i for i, c in enumerate(codes.tolist())} for s, codes in site_codes.items()}
    pairs: dict[str, list[tuple[int, int]]] = {s: [] for s in site_codes if s != reference}
    for row, (s, c, r) in enumerate(
        zip(frame["site"].str.strip(), frame["code"].str.strip(), frame["reference_code"].str.strip(), strict=True),
        start=1,
    ):
        if s not in pairs:
            raise MashInputError(
                f"unknown site {s!r}; expected one of {sorted(pairs)}", file=path, row=row, column="site"
            )
        if c not in pos[s]:
            raise MashInputError(f"code {c!r} is not a code of site {s!r}", file=path, row=row, column="code")
        if r not in ref_pos:
            raise MashInputError(
                f"code {r!r} is not a code of reference site {reference!r}",
                file=path,
                row=row,
                column="reference_code",
            )
        pairs[s].append((pos[s][c], ref_pos[r]))
    out = {}
    for s, lst in pairs.items():
        if lst:
            qi, ri = (np.array(v, dtype=np.int64) for v in zip(*lst, strict=True))
            out[s] = Anchors(qi, ri, np.full(len(qi), "file", dtype=object))
        else:
            out[s] = Anchors.empty()
    return out
