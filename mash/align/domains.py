"""Domains in alignment: candidates stay in their domain, results are reported per domain.

A site's codes may carry a ``domain`` (diagnosis, medication, lab, procedure, other).
A lab code and a diagnosis code are never the same concept, so by default a code's
candidates are reference codes of its own domain; a code without a domain (or a site
without the column) matches every domain. ``AlignConfig.cross_domain`` lifts the rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["domain_groups", "domain_summary", "open_missing_domains", "same_group"]

NO_DOMAIN = "(none)"


def _domains(codes: pd.DataFrame) -> pd.Series | None:
    if "domain" not in codes.columns or codes["domain"].isna().all():
        return None
    return codes["domain"].astype("string")


def domain_groups(query_codes: pd.DataFrame, reference_codes: pd.DataFrame
                  ) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """Integer domain ids of both sites' codes, for :func:`mash.align.candidates.knn_blockwise`.

    Parameters
    ----------
    query_codes, reference_codes : DataFrame
        The sites' code tables (:attr:`mash.sites.Site.codes`), optionally with ``domain``.

    Returns
    -------
    (ndarray of int64, shape (n_q,), ndarray of int64, shape (n_r,), list of str) or None
        One id per distinct domain of the two sites, ``-1`` where a code has none, and
        the domain of each id; None when either site has no domains (nothing to
        restrict) or when the two sites share a single domain.

    Examples
    --------
    >>> q = pd.DataFrame({"code": ["a", "b"], "domain": ["lab", None]})
    >>> r = pd.DataFrame({"code": ["x", "y"], "domain": ["diagnosis", "lab"]})
    >>> gq, gr, names = domain_groups(q, r)
    >>> gq.tolist(), gr.tolist(), names
    ([1, -1], [0, 1], ['diagnosis', 'lab'])
    """
    dq, dr = _domains(query_codes), _domains(reference_codes)
    if dq is None or dr is None:
        return None
    names = sorted(set(dq.dropna()) | set(dr.dropna()))
    if len(names) < 2:  # one domain (or none): every pair is allowed, no mask to apply
        return None
    lookup = pd.Index(names)

    def ids(d: pd.Series) -> np.ndarray:
        out = lookup.get_indexer(d.fillna("\0"))  # a missing domain is not in the index: -1
        return out.astype(np.int64)

    return ids(dq), ids(dr), names


def open_missing_domains(gq: np.ndarray, gr: np.ndarray, names: list[str]
                         ) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, int]]:
    """Let queries of a domain the reference lacks match every domain (id ``-1``).

    Such a code would otherwise have no candidate at all; the caller warns with the
    counts.

    Returns
    -------
    groups : (ndarray, ndarray)
        ``gq`` with those queries set to ``-1``, and ``gr`` unchanged.
    opened : dict of str to int
        Query codes per opened domain.
    """
    absent = (gq >= 0) & ~np.isin(gq, gr)
    counts = {names[g]: int(n) for g, n in zip(*np.unique(gq[absent], return_counts=True), strict=True)}
    out = gq.copy()
    out[absent] = -1
    return (out, gr), counts


def same_group(groups: tuple[np.ndarray, np.ndarray], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Which pairs (query ``rows[i]``, reference ``cols[i]``) share a domain (or lack one); (m,) bool."""
    gq, gr = groups[0][rows], groups[1][cols]
    return (gq == gr) | (gq < 0) | (gr < 0)


def domain_summary(query_codes: pd.DataFrame, reference_codes: pd.DataFrame, idx: np.ndarray,
                   scores: np.ndarray, p_no_match: np.ndarray, matched: np.ndarray) -> dict[str, Any]:
    """Per query domain: codes, mean top-1 score and ``p_no_match``, confident matches, and
    how many top-1 candidates lie in another domain.

    Parameters
    ----------
    query_codes, reference_codes : DataFrame
    idx : ndarray of int, shape (n_q, k)
        Reference rows of each code's candidates, best first (``-1`` = none).
    scores : ndarray of float, shape (n_q, k)
    p_no_match : ndarray of float, shape (n_q,)
    matched : ndarray of int
        Query rows merged into a concept with a reference code.

    Returns
    -------
    dict
        ``{domain: {"codes", "mean_top1_score", "mean_p_no_match", "matched",
        "top1_other_domain"}}``; codes without a domain under ``"(none)"``.
    """
    dq = _domains(query_codes)
    dr = _domains(reference_codes)
    n = len(query_codes)
    q_dom = np.full(n, NO_DOMAIN, dtype=object) if dq is None else dq.fillna(NO_DOMAIN).to_numpy(object)
    top = idx[:, 0] if idx.size else np.full(n, -1)
    if dr is None:
        top_dom = np.full(n, NO_DOMAIN, dtype=object)
    else:
        r_dom = dr.fillna(NO_DOMAIN).to_numpy(object)
        top_dom = np.where(top >= 0, r_dom[np.maximum(top, 0)], NO_DOMAIN)
    other = (q_dom != NO_DOMAIN) & (top_dom != NO_DOMAIN) & (q_dom != top_dom)
    is_matched = np.zeros(n, bool)
    is_matched[np.asarray(matched, np.int64)] = True
    top_score = scores[:, 0].astype(np.float64) if scores.size else np.full(n, np.nan)
    out: dict[str, Any] = {}
    for d in sorted(set(q_dom)):
        m = q_dom == d
        out[str(d)] = {
            "codes": int(m.sum()),
            "mean_top1_score": round(float(np.nanmean(top_score[m])), 4) if m.any() else None,
            "mean_p_no_match": round(float(np.mean(p_no_match[m])), 4),
            "matched": int(is_matched[m].sum()),
            "top1_other_domain": int(other[m].sum()),
        }
    return out
