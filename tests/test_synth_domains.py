"""The simulator on three or more sites, with labs and medications."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import mash
from mash.errors import MashInputError
from mash.sites import SiteDataWarning
from mash.synth.labs_catalog import load_lab_catalog

SMALL = {"n_patients": 300, "n_conditions": 80, "quiet": True}


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    out = tmp_path_factory.mktemp("three")
    mash.simulate(out, n_sites=3, domains=("diagnosis", "lab", "medication"), **SMALL)
    return out


def _read(path):
    frame = pd.read_csv(path, dtype={"code": str, "subject_id": str}, keep_default_na=False)
    if "numeric_value" in frame:
        frame["numeric_value"] = pd.to_numeric(frame["numeric_value"], errors="coerce")
    return frame


def test_extra_sites_leave_the_first_two_unchanged(tmp_path):
    two, three = tmp_path / "two", tmp_path / "three"
    mash.simulate(two, **SMALL)
    mash.simulate(three, n_sites=3, **SMALL)
    for f in ("codes.csv", "events.csv", "outcomes.csv"):
        for site in ("site_A", "site_B"):
            assert filecmp.cmp(two / site / f, three / site / f, shallow=False), (site, f)
    gold = _read(three / "gold.csv")
    assert set(gold["site"]) == {"site_A", "site_C"}
    c = gold[gold["site"] == "site_C"]
    assert (c["code"] == c["reference_code"]).all()  # ICD-10-CM at both: the same code
    codes_b = set(_read(three / "site_B" / "codes.csv")["code"])
    codes_c = set(_read(three / "site_C" / "codes.csv")["code"])
    assert set(c["code"]) == codes_b & codes_c
    ev = _read(three / "site_C" / "events.csv")
    assert ev["subject_id"].str.startswith("C").all()
    manifest = json.loads((three / "simulation.json").read_text())
    assert manifest["parameters"]["n_sites"] == 3 and "site_C" in manifest["sites"]
    # the two-site manifest records no new parameter (its files are byte-identical)
    assert "n_sites" not in json.loads((two / "simulation.json").read_text())["parameters"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_sites": 1}, "n_sites"),
        ({"n_sites": 7}, "n_sites"),
        ({"n_sites": "3"}, "n_sites"),
        ({"domains": ("lab",)}, "domains must include diagnosis"),
        ({"domains": "diagnosis,labs"}, "domains must include diagnosis"),
    ],
)
def test_bad_sites_or_domains(tmp_path, kwargs, match):
    with pytest.raises(MashInputError, match=match):
        mash.simulate(tmp_path, **{**SMALL, **kwargs})


def test_cli_bad_domains_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mash.cli", "simulate", str(tmp_path / "o"),
                        "--domains", "diagnosis,drugs", "--patients", "10"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "domains must include diagnosis" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_domains_codes_events_and_gold(three):
    labs = load_lab_catalog()
    key = _read(three / "local_key.csv")
    gold = _read(three / "gold.csv")
    sites = {s: (_read(three / s / "codes.csv"), _read(three / s / "events.csv"))
             for s in ("site_A", "site_B", "site_C")}
    for site, (codes, events) in sites.items():
        assert set(codes["domain"]) == {"diagnosis", "lab", "medication"}, site
        assert codes["code"].is_unique
        assert set(events["code"]) == set(codes["code"])
        dom = events["code"].map(codes.set_index("code")["domain"])
        lab = dom == "lab"
        values = pd.to_numeric(events["numeric_value"], errors="coerce")
        assert values[lab].notna().all() and (values[lab] > 0).all()
        assert values[~lab].isna().all()
        assert (events.loc[lab, "unit"] != "").all() and (events.loc[~lab, "unit"] == "").all()
    ref_codes = sites["site_B"][0]
    ref_labs = ref_codes[ref_codes["domain"] == "lab"]
    assert set(ref_labs["code"]) <= set(labs.loinc)  # the reference writes LOINC
    display = dict(zip(labs.loinc, labs.display, strict=True))
    assert (ref_labs["description"] == ref_labs["code"].map(display)).all()
    for site in ("site_A", "site_C"):
        codes = sites[site][0]
        local_labs = codes[codes["domain"] == "lab"]["code"]
        assert local_labs.str.match(r"^LB\d{5}$").all()
        g = gold[gold["site"] == site].merge(codes, on="code")
        k = key[key["site"] == site].set_index("code")
        # every gold pair of a lab or drug names the reference code of its source
        for dom in ("lab", "medication"):
            gd = g[g["domain"] == dom]
            assert len(gd) > 0
            assert (gd["reference_code"].to_numpy() == k.loc[gd["code"], "source_code"].to_numpy()).all()
            assert set(gd["reference_code"]) <= set(ref_codes["code"])
        meds = k[k["domain"] == "medication"]
        assert set(meds["naming"]) <= {"brand", "generic"}
    assert (key[(key["site"] == "site_A") & (key["domain"] == "medication")]["naming"] == "brand").any()


def test_si_units_carry_the_real_conversion_factor(three):
    """A test reported in SI units at a local site: its median is the reference's × factor
    (closer to it than to 1; the populations differ, so medians move by up to about 2×)."""
    labs = load_lab_catalog()
    key = _read(three / "local_key.csv")
    ref = _read(three / "site_B" / "events.csv")
    ref = ref[ref["code"].isin(set(labs.loinc))]
    ref_median = ref.groupby("code")["numeric_value"].median()
    ref_unit = ref.groupby("code")["unit"].first()
    checked = 0
    for site in ("site_A", "site_C"):
        ev = _read(three / site / "events.csv")
        k = key[(key["site"] == site) & (key["domain"] == "lab")].set_index("code")
        ev = ev[ev["code"].isin(k.index)]
        for code, grp in ev.groupby("code"):
            loinc = k.loc[code, "source_code"]
            i = int(np.flatnonzero(labs.loinc == loinc)[0])
            if len(grp) < 30 or loinc not in ref_median.index or ref_median[loinc] <= 0:
                continue
            unit = grp["unit"].iloc[0]
            ratio = grp["numeric_value"].median() / ref_median[loinc]
            if unit == labs.si_unit[i] and unit != ref_unit[loinc]:
                # populations differ (disease shifts values): closer to the factor than to 1
                assert abs(np.log(ratio / labs.si_factor[i])) < abs(np.log(ratio)), (site, loinc)
                checked += 1
            else:
                assert unit == ref_unit[loinc]
                assert abs(np.log(ratio)) < np.log(3), (site, loinc)
    assert checked > 0


def test_domains_are_reproducible(three, tmp_path):
    again = tmp_path / "again"
    mash.simulate(again, n_sites=3, domains="diagnosis,lab,medication", **SMALL)
    for f in ("gold.csv", "local_key.csv", "site_A/codes.csv", "site_C/events.csv", "site_B/events.csv"):
        assert filecmp.cmp(three / f, again / f, shallow=False), f


def test_sites_load_and_align_within_domains(three):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SiteDataWarning)  # nothing to repair or skip
        sites = [mash.Site.load(three / s) for s in ("site_A", "site_B", "site_C")]
    al = mash.align(sites, reference="site_B", quiet=True)
    dom = {(s.name, c): d for s in sites for c, d in zip(s.codes["code"], s.codes["domain"], strict=True)}
    m = al.mapping
    assert set(m["site"]) == {"site_A", "site_C"}
    crossed = [dom[(s, q)] != dom[("site_B", r)]
               for s, q, r in zip(m["site"], m["code"], m["reference_code"], strict=True)]
    assert not any(crossed)


def test_three_site_sample_is_reproduced(tmp_path):
    """data/three_sites regenerates byte for byte from the parameters its manifest records."""
    import hashlib
    import inspect
    from pathlib import Path

    from mash.synth import SimulationConfig, simulate

    root = Path(__file__).resolve().parents[1] / "data" / "three_sites"
    manifest = json.loads((root / "simulation.json").read_text())
    accepted = set(inspect.signature(simulate).parameters) | set(SimulationConfig.__dataclass_fields__)
    params = {k: v for k, v in manifest["parameters"].items() if k in accepted}
    simulate(tmp_path, quiet=True, **params)
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == entry["sha256"], name


def test_a_site_with_one_domain_only(three):
    """A lab-only site (its codes and events taken from site_A) aligns to a three-domain
    reference: its candidates are lab codes only and most of its labs still match."""
    codes = _read(three / "site_A" / "codes.csv")
    events = _read(three / "site_A" / "events.csv")
    labs = codes[codes["domain"] == "lab"].reset_index(drop=True)
    ev = events[events["code"].isin(set(labs["code"]))].reset_index(drop=True)
    ev["unit"] = ev["unit"].replace("", np.nan)
    only = mash.Site.from_frames("labs_only", labs, ev)
    ref = mash.Site.load(three / "site_B")
    al = mash.align([only, ref], reference="site_B", quiet=True)
    ref_dom = dict(zip(ref.codes["code"], ref.codes["domain"], strict=True))
    assert {ref_dom[c] for c in al.mapping["reference_code"]} == {"lab"}
    gold = _read(three / "gold.csv")
    gold = gold[gold["code"].isin(set(labs["code"]))].assign(site="labs_only")
    top = al.mapping[al.mapping["rank"] == 1].merge(gold, on=["site", "code", "reference_code"])
    # 300 patients and no diagnoses to co-occur with: most labs still match by name and values
    assert len(top) >= 0.5 * gold["code"].nunique()


def test_formulary_entries_of_one_drug_share_a_cooccurrence_vector(three):
    from mash.align.stems import medication_stems

    site = mash.Site.load(three / "site_A")
    group, pooled = medication_stems(site.codes)
    assert pooled > 0
    meds = (site.codes["domain"].astype(str) == "medication").to_numpy()
    assert (np.bincount(group)[group][~meds] == 1).all()  # only drugs are pooled
    ref = mash.Site.load(three / "site_B")
    on = mash.align([site, ref], reference="site_B", quiet=True)
    off = mash.align([site, ref], reference="site_B", quiet=True, pool_medications=False)
    stats = on.manifest["sites"]["site_A"]["cooccurrence"]
    assert stats["medication_codes_pooled"] == pooled
    assert "medication_codes_pooled" not in off.manifest["sites"]["site_A"]["cooccurrence"]
    assert on.manifest["parameters"]["pool_medications"] is True
