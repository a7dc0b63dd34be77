"""Unified concepts: confident mutual matches merged, every other code its own concept."""

from __future__ import annotations

import numpy as np
import pandas as pd


def unify_concepts(
    site_codes: dict[str, pd.DataFrame],
    reference: str,
    matches: dict[str, tuple[np.ndarray, np.ndarray]],
) -> pd.DataFrame:
    """Group codes of K ≥ 2 sites into concepts through the reference site.

    Parameters
    ----------
    site_codes : dict
        site name → its codes table (columns ``code``, ``description``), in site order.
    reference : str
        The reference site; each of its codes anchors one concept.
    matches : dict
        non-reference site → (query rows, reference rows) of its confident one-to-one
        matches.

    Returns
    -------
    DataFrame
        Columns ``concept_id, site, code, description``, then ``domain`` and ``parent``
        where any site's codes table has them (missing values empty); every (site, code)
        exactly once.
        Concept ids are ``C`` + a zero-padded number, numbered in reference-code order,
        then unmatched codes site by site (sites in the given order), so the numbering
        is deterministic.
    """
    ref = site_codes[reference]
    extra = [
        c for c in ("domain", "parent")
        if any(c in t.columns and t[c].notna().any() and (t[c].astype("string") != "").any()
               for t in site_codes.values())
    ]

    def _extra(codes: pd.DataFrame) -> dict[str, np.ndarray]:
        n = len(codes)
        return {
            c: (codes[c].astype("string").fillna("").to_numpy(dtype=object) if c in codes.columns
                else np.full(n, "", dtype=object))
            for c in extra
        }
    concept_of_ref = np.arange(len(ref))
    rows = [
        pd.DataFrame(
            {
                "concept": concept_of_ref,
                "site": reference,
                "code": ref["code"].to_numpy(),
                "description": ref["description"].to_numpy(),
                **_extra(ref),
            }
        )
    ]
    next_id = len(ref)
    for site, codes in site_codes.items():
        if site == reference:
            continue
        concept = np.full(len(codes), -1, dtype=np.int64)
        q, r = matches.get(site, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        concept[q] = concept_of_ref[r]
        free = np.flatnonzero(concept < 0)
        concept[free] = next_id + np.arange(len(free))
        next_id += len(free)
        rows.append(
            pd.DataFrame(
                {
                    "concept": concept,
                    "site": site,
                    "code": codes["code"].to_numpy(),
                    "description": codes["description"].to_numpy(),
                    **_extra(codes),
                }
            )
        )
    frame = pd.concat(rows, ignore_index=True)
    width = max(6, len(str(next_id)))
    frame.insert(0, "concept_id", ["C" + str(c).zfill(width) for c in frame["concept"]])
    frame = frame.drop(columns="concept").sort_values(["concept_id", "site", "code"], kind="stable")
    return frame.reset_index(drop=True)
