"""Lab values and units as an alignment signal (mash.align.values, sites' ``unit`` column)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mash.align import align
from mash.align.values import normalise_unit, value_features, value_profiles
from mash.cli import main
from mash.sites import Site

GLUCOSE_TO_SI = 0.05551  # labunits' factor for LOINC 2345-7 (mg/dL → mmol/L)


def _frames(codes, values, units=None, seed=0):
    """A site of ``codes`` [(code, description, domain)] whose events carry ``values``
    {code: array}; one event per value, one subject per value index."""
    rng = np.random.default_rng(seed)
    rows = []
    for code, vals in values.items():
        for i, v in enumerate(vals):
            rows.append((f"s{i % 60}", pd.Timestamp("2015-01-01") + pd.Timedelta(days=int(rng.integers(0, 300))),
                         code, float(v), (units or {}).get(code)))
    ev = pd.DataFrame(rows, columns=["subject_id", "time", "code", "numeric_value", "unit"])
    cd = pd.DataFrame(codes, columns=["code", "description", "domain"])
    return cd, ev


def _site(name, codes, values, units=None, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Site.from_frames(name, *_frames(codes, values, units, seed))


def _lognormal(median, sigma, n=200, seed=0):
    return median * np.exp(sigma * np.random.default_rng(seed).standard_normal(n))


# --------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------


def test_unit_factor_invariance():
    mg = _lognormal(100.0, 0.25, seed=1)
    other = _lognormal(140.0, 0.03, seed=2)  # sodium-like: narrow
    q = _site("Q", [("q1", "glucose", "lab"), ("q2", "sodium", "lab")], {"q1": mg, "q2": other},
              {"q1": "mg/dL", "q2": "mmol/L"})
    r = _site("R", [("2345-7", "Glucose", "lab")], {"2345-7": mg * GLUCOSE_TO_SI}, {"2345-7": "mmol/L"})
    pq, pr = value_profiles(q), value_profiles(r)
    assert pq.has_profile.all() and pr.has_profile.all()
    f = value_features(pq, pr, np.array([0, 1]), np.array([0, 0]))
    assert f["value_shape"][0] == pytest.approx(0.0, abs=1e-9)
    assert f["value_scale"][0] == pytest.approx(0.0, abs=1e-6)  # found the labunits factor
    assert f["value_shape"][1] < -0.1 and f["value_scale"][1] < -0.3  # log(140/100), no factor fits
    assert f["value_unit"][0] == 1.0  # mg/dL ↔ mmol/L is glucose's labunits pair
    assert f["value_missing"].tolist() == [0.0, 0.0]


def test_without_the_factor_scale_differs_and_units_disagree():
    mg = _lognormal(100.0, 0.25, seed=1)
    q = _site("Q", [("q1", "glucose", "lab")], {"q1": mg}, {"q1": "mg/dL"})
    r = _site("R", [("x1", "Glucose", "lab")], {"x1": mg * GLUCOSE_TO_SI}, {"x1": "mmol/L"})
    f = value_features(value_profiles(q), value_profiles(r), np.array([0]), np.array([0]))
    assert f["value_shape"][0] == pytest.approx(0.0, abs=1e-9)  # the shape needs no factor
    assert f["value_scale"][0] < -2.0  # not a LOINC code: no factor tried
    assert f["value_unit"][0] == 0.0


def test_profiles_need_min_values_and_positive_values():
    q = _site("Q", [("a", "x", "lab"), ("b", "y", "lab"), ("c", "z", "diagnosis")],
              {"a": np.r_[np.arange(1, 20), 0.0, -1.0], "b": np.arange(1, 31), "c": [np.nan] * 5})
    p = value_profiles(q)
    assert p.n_values.tolist() == [19, 30, 0] and p.n_nonpositive.tolist() == [2, 0, 0]
    assert p.has_profile.tolist() == [False, True, False]
    assert np.isnan(p.shape[0]).all() and np.isfinite(p.shape[1]).all()
    f = value_features(p, p, np.array([0, 1, 2]), np.array([1, 1, 2]))
    assert f["value_missing"].tolist() == [1.0, 0.0, 1.0]
    assert np.isnan(f["value_unit"]).all()


def test_normalise_unit():
    assert normalise_unit("µmol / L") == normalise_unit("umol/l") == normalise_unit("\u03bcmol/L")


# --------------------------------------------------------------------------------------
# End to end: ambiguous names told apart by their values
# --------------------------------------------------------------------------------------


def _world():
    """Query labs with distinct names (text anchors) plus two both named "chemistry panel
    result"; the reference names them all distinctly, some in SI units."""
    labs = [  # (query code, query name, ref code, ref name, median, sigma, factor)
        ("l1", "creatinine", "2160-0", "Creatinine [Mass/volume] in Serum", 1.0, 0.35, 88.4),
        ("l2", "urea nitrogen", "3094-0", "Urea nitrogen [Mass/volume] in Serum", 15.0, 0.45, 0.357),
        ("l3", "albumin", "1751-7", "Albumin [Mass/volume] in Serum", 4.0, 0.12, 10.0),
        ("l4", "potassium", "2823-3", "Potassium [Moles/volume] in Serum", 4.2, 0.08, 1.0),
        ("l5", "chloride", "2075-0", "Chloride [Moles/volume] in Serum", 102.0, 0.04, 1.0),
        ("x1", "chemistry panel result", "2345-7", "Glucose [Mass/volume] in Serum", 100.0, 0.3, GLUCOSE_TO_SI),
        ("x2", "chemistry panel result", "2951-2", "Sodium [Moles/volume] in Serum", 140.0, 0.02, 1.0),
    ]
    q_codes = [(q, name, "lab") for q, name, *_ in labs]
    r_codes = [(r, rname, "lab") for _, _, r, rname, *_ in labs]
    q_vals = {q: _lognormal(m, s, seed=i) for i, (q, _, _, _, m, s, _) in enumerate(labs)}
    r_vals = {r: _lognormal(m, s, seed=100 + i) * f for i, (_, _, r, _, m, s, f) in enumerate(labs)}
    a = _site("A", q_codes, q_vals, seed=1)
    b = _site("B", r_codes, r_vals, seed=2)
    return a, b, {q: r for q, _, r, *_ in labs}


def test_values_resolve_ambiguous_lab_names(cache_dir):
    a, b, truth = _world()
    top = {}
    for use in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = align([a, b], "B", cache_dir=str(cache_dir), quiet=True, use_values=use)
        m = res.mapping[res.mapping["rank"] == 1].set_index("code")["reference_code"]
        top[use] = {c: m[c] for c in ("x1", "x2")}
        if use:
            log = res.manifest["pairs"]["A"]["values"]
            assert log["query_codes_with_profiles"] == 7 and log["reference_codes_with_profiles"] == 7
            assert log["pairs_with_value_features"] > 0
            assert res.manifest["pairs"]["A"]["scorer_weights"]["value_shape"] > 0
        else:
            assert "values" not in res.manifest["pairs"]["A"]
    assert top[True] == {"x1": truth["x1"], "x2": truth["x2"]}
    assert top[False] != {"x1": truth["x1"], "x2": truth["x2"]}


# --------------------------------------------------------------------------------------
# The unit column: repairs counted, through the CLI
# --------------------------------------------------------------------------------------


def _write(tmp_path, name, events):
    d = tmp_path / name
    d.mkdir()
    pd.DataFrame({"code": ["g", "h"], "description": ["glucose", "heart failure"],
                  "domain": ["lab", "diagnosis"]}).to_csv(d / "codes.csv", index=False)
    events.to_csv(d / "events.csv", index=False)
    return d


def _events(units, values):
    n = len(units)
    return pd.DataFrame({"subject_id": [f"s{i % 5}" for i in range(n)],
                         "time": [f"2020-01-{1 + i % 28:02d}" for i in range(n)],
                         "code": ["g"] * (n - 2) + ["h", "h"], "numeric_value": values, "unit": units})


@pytest.mark.parametrize(
    ("units", "values", "kind", "words"),
    [
        (["mg/dL"] * 8 + ["mg/dL", None], [1, 2, 3, 4, 5, 6, 7, 8, None, None], "units_without_value",
         "unit but no numeric_value"),
        (["mg/dL"] * 4 + [None] * 4 + [None, None], list(range(1, 9)) + [None, None], "codes_with_missing_units",
         "unit on some valued events"),
        (["mg/dL"] * 5 + ["mmol/L"] * 3 + [None, None], list(range(1, 9)) + [None, None],
         "codes_with_several_units", "several units"),
        (["mg/dL"] * 8 + [None, None], ["1", "2", "high", "4", "5", "6", "7", "8", "", ""], "non_numeric_values",
         "numeric_value entries are not finite numbers"),
    ],
)
def test_unit_repairs_counted_and_warned(tmp_path, capsys, cache_dir, units, values, kind, words):
    a = _write(tmp_path, "A", _events(units, values))
    b = _write(tmp_path, "B", _events(["mg/dL"] * 8 + [None, None], list(range(1, 9)) + [None, None]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        site = Site.load(a)
    assert site.report[kind]["rows"] >= 1
    assert site.events["unit"].dtype == "category"
    out = tmp_path / "out"
    rc = main(["align", str(a), str(b), "--reference", "B", "--out", str(out), "--cache-dir", str(cache_dir),
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0
    lines = [ln for ln in err.splitlines() if words in ln]
    assert len(lines) == 1 and lines[0].startswith("mash: warning: site 'A'") and "Traceback" not in err


def test_units_without_unit_column_and_blank_units(tmp_path):
    ev = _events(["mg/dL", " ", *["mg/dL"] * 6, None, None], list(range(1, 9)) + [None, None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        site = Site.load(_write(tmp_path, "A", ev))
        plain = Site.load(_write(tmp_path, "P", ev.drop(columns="unit")))
    assert site.report["blank_optional_values"]["by_column"]["events.unit"] == 3
    assert site.report["codes_with_missing_units"]["rows"] == 1
    assert plain.events["unit"].isna().all() and plain.report["codes_with_missing_units"]["rows"] == 0


def test_bad_unit_type_in_parquet_is_one_line(tmp_path, capsys):
    ev = _events(["mg/dL"] * 10, list(range(1, 9)) + [None, None])
    a = _write(tmp_path, "A", ev)
    (a / "events.csv").unlink()
    ev.assign(unit=[[1]] * 10).to_parquet(a / "events.parquet")
    rc = main(["align", str(a), str(a), "--reference", "A", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "unit" in err and "Traceback" not in err


def test_sample_has_no_value_profiles_so_its_outputs_are_unchanged(sample_dir):
    """The value features join the scorer only with a profile on either side; the bundled
    sample (diagnoses only) has none, so its mapping and concepts stay byte-identical
    (checked against main's outputs with ``cmp`` when the feature was added)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sites = [Site.load(sample_dir / n) for n in ("site_A", "site_B")]
    assert not any(value_profiles(s).has_profile.any() for s in sites)
