"""Lab values as an alignment signal: per-code value profiles and pair features.

Two sites may record the same analyte in different units (glucose in mg/dL at one,
mmol/L at the other), so raw values differ by a constant factor :math:`f`. On the log
scale that factor is a shift, :math:`\\log(f v) = \\log f + \\log v`, so

* the *shape* of a code's distribution -- its log quantiles minus its log median --
  is exactly invariant to the unit, and
* its *scale* -- the log median -- agrees across sites after the right factor.

Only strictly positive finite values enter a profile (a log needs them); values
``≤ 0`` are counted in :attr:`ValueProfiles.n_nonpositive`, not shifted (a shift such
as ``log1p`` would break the invariance to the unit factor).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["PROBS", "ValueProfiles", "conversion_factors", "normalise_unit", "value_features",
           "value_profiles"]

PROBS = (0.05, 0.1, 0.25, 0.75, 0.9, 0.95)  # quantiles of the shape vector (the median is 0)
VALUE_FEATURES = ("value_shape", "value_scale", "value_unit", "value_missing")


@dataclass(frozen=True)
class ValueProfiles:
    """Per-code summaries of one site's numeric values.

    Attributes
    ----------
    codes : ndarray, shape (n_codes,), object
        The site's codes, in ``site.codes`` order.
    n_values : ndarray, shape (n_codes,), int64
        Finite, strictly positive values of each code.
    n_nonpositive : ndarray, shape (n_codes,), int64
        Finite values ``≤ 0`` (left out of the profile).
    log_median : ndarray, shape (n_codes,), float64
        Median of ``log v``; NaN without a profile.
    shape : ndarray, shape (n_codes, len(PROBS)), float64
        Log quantiles at :data:`PROBS` minus the log median; NaN rows without a profile.
    unit : ndarray, shape (n_codes,), object
        Most frequent unit among the code's valued events, normalised by
        :func:`normalise_unit` (``""`` when none).
    has_profile : ndarray, shape (n_codes,), bool
        ``n_values >= min_values``.
    """

    codes: np.ndarray
    n_values: np.ndarray
    n_nonpositive: np.ndarray
    log_median: np.ndarray
    shape: np.ndarray
    unit: np.ndarray
    has_profile: np.ndarray


def normalise_unit(unit: str) -> str:
    """Case, spaces and micro sign folded: ``"µmol / L"`` → ``"umol/l"``."""
    return str(unit).replace("\u00b5", "u").replace("\u03bc", "u").replace(" ", "").lower()


def value_profiles(site, min_values: int = 20) -> ValueProfiles:
    """Value profiles of every code of ``site`` (vectorised groupby, no per-event loop).

    Parameters
    ----------
    site : mash.sites.Site
    min_values : int
        Fewest positive values for a code to get a profile.

    Returns
    -------
    ValueProfiles
        Arrays of shape ``(n_codes,)`` (``shape``: ``(n_codes, len(PROBS))``).
    """
    n = site.n_codes
    ev = site.events
    v = ev["numeric_value"].to_numpy()
    idx = ev["code_idx"].to_numpy()
    finite = np.isfinite(v)
    pos = finite & (v > 0)
    n_values = np.bincount(idx[pos], minlength=n).astype(np.int64)
    n_nonpos = np.bincount(idx[finite & ~pos], minlength=n).astype(np.int64)
    has = n_values >= min_values
    log_median = np.full(n, np.nan)
    shape = np.full((n, len(PROBS)), np.nan)
    unit = np.full(n, "", dtype=object)
    if has.any():
        keep = pos & has[idx]
        frame = pd.DataFrame({"c": idx[keep], "lv": np.log(v[keep])})
        q = frame.groupby("c")["lv"].quantile([0.5, *PROBS]).unstack()
        rows = q.index.to_numpy()
        log_median[rows] = q[0.5].to_numpy()
        shape[rows] = q[list(PROBS)].to_numpy() - log_median[rows, None]
    if "unit" in ev.columns and pos.any():
        units = ev["unit"]
        valued = pos & units.notna().to_numpy()
        if valued.any():
            counts = (pd.DataFrame({"c": idx[valued], "u": units[valued].astype(str).map(normalise_unit)})
                      .value_counts(sort=False).reset_index(name="n")
                      .sort_values(["c", "n", "u"], ascending=[True, False, True], kind="stable")
                      .drop_duplicates("c"))
            unit[counts["c"].to_numpy()] = counts["u"].to_numpy()
    return ValueProfiles(site.codes["code"].to_numpy(dtype=object), n_values, n_nonpos, log_median,
                         shape, unit, has)


@functools.lru_cache(maxsize=1)
def _analytes() -> dict[str, dict]:
    """labunits' ``data/analytes.json`` (LOINC → units and factor), read without importing it."""
    spec = importlib.util.find_spec("labunits")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "analytes.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def conversion_factors(reference_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """labunits' conversion factor and units of each reference code that is a known LOINC.

    Returns
    -------
    factor : ndarray, shape (n,), float64
        Traditional → SI factor; 1 for unknown codes.
    traditional, si : ndarray, shape (n,), object
        Normalised unit names (``""`` for unknown codes).
    """
    table = _analytes()
    n = len(reference_codes)
    factor, trad, si = np.ones(n), np.full(n, "", object), np.full(n, "", object)
    for i, code in enumerate(reference_codes):  # over reference codes, not events
        a = table.get(str(code))
        if a and a.get("conversion_factor"):
            factor[i] = float(a["conversion_factor"])
            trad[i] = normalise_unit(a.get("traditional_units", ""))
            si[i] = normalise_unit(a.get("si_units", ""))
    return factor, trad, si


def value_features(prof_q: ValueProfiles, prof_r: ValueProfiles, pairs_q: np.ndarray,
                   pairs_r: np.ndarray) -> dict[str, np.ndarray]:
    """Value features of candidate pairs.

    Parameters
    ----------
    prof_q, prof_r : ValueProfiles
        Profiles of the query and the reference site.
    pairs_q, pairs_r : ndarray, shape (P,), int
        Rows of the query and the reference code of each candidate pair.

    Returns
    -------
    dict of str to ndarray, shape (P,), float64
        ``value_shape`` :math:`= -\\frac1Q\\sum_k |s_q(p_k) - s_r(p_k)|` (centred log
        quantiles: unit-free); ``value_scale`` :math:`= -\\min_{f \\in F}
        |m_q + \\log f - m_r|` with :math:`m` the log medians and
        :math:`F = \\{1, f_r, 1/f_r\\}`, :math:`f_r` labunits' factor of the reference
        code when it is a LOINC code labunits knows (else :math:`F = \\{1\\}`). Powers
        of ten are deliberately left out: with factors :math:`10^{\\pm1}, 10^{\\pm3}`
        any two analytes' medians land within :math:`\\log\\sqrt{10} \\approx 1.15` of
        each other, which would make the feature say little. ``value_unit``: 1 when
        both units are known and equal (after :func:`normalise_unit`) or are the
        traditional/SI pair of the reference analyte, 0 when both are known and
        otherwise different, NaN when either is unknown. ``value_missing``: 1 when
        either code has no profile (then ``value_shape`` and ``value_scale`` are NaN).
    """
    ok = prof_q.has_profile[pairs_q] & prof_r.has_profile[pairs_r]
    shape = -np.mean(np.abs(prof_q.shape[pairs_q] - prof_r.shape[pairs_r]), axis=1)
    factor, trad, si = conversion_factors(prof_r.codes)
    logf = np.log(factor[pairs_r])
    gap = prof_q.log_median[pairs_q] - prof_r.log_median[pairs_r]
    scale = -np.min(np.abs(np.stack([gap, gap + logf, gap - logf])), axis=0)
    uq, ur = prof_q.unit[pairs_q], prof_r.unit[pairs_r]
    known = (uq != "") & (ur != "")
    t, s = trad[pairs_r], si[pairs_r]
    related = (t != "") & (((uq == t) & (ur == s)) | ((uq == s) & (ur == t)))
    unit = np.where(known, ((uq == ur) | related).astype(np.float64), np.nan)
    return {
        "value_shape": np.where(ok, shape, np.nan),
        "value_scale": np.where(ok, scale, np.nan),
        "value_unit": unit,
        "value_missing": (~ok).astype(np.float64),
    }
