"""The real lab and drug catalogs and the local naming habits."""

from __future__ import annotations

from collections import Counter

import numpy as np

from mash.synth.drugs_catalog import base_name, load_drug_catalog
from mash.synth.labs_catalog import LAB_CLASSES, load_lab_catalog, parse_loinc_name
from mash.synth.local_names import draw_habit, drug_local_names, lab_local_names


def test_lab_catalog_is_real_and_has_near_duplicates():
    c = load_lab_catalog()
    assert len(c) >= 60
    assert list(c.loinc) == sorted(c.loinc)
    assert (c.high > np.maximum(c.low, 0)).all() and (c.low >= 0).all()
    assert (c.si_factor > 0).all()
    assert set(c.lab_class) <= set(LAB_CLASSES) and len(set(c.lab_class)) >= 4
    comps = Counter(c.component)
    assert sum(n >= 2 for n in comps.values()) >= 5  # one analyte, several specimens/methods
    for i in range(len(c)):  # every row's parts are its name's parse
        assert parse_loinc_name(c.display[i]) == (c.component[i], c.property[i], c.system[i], c.method[i])
    glucose = dict(zip(c.loinc, c.si_factor, strict=True))["2345-7"]
    assert glucose == 0.05551  # labunits: mg/dL -> mmol/L


def test_drug_catalog_brands_share_no_word_with_their_ingredient():
    d = load_drug_catalog()
    assert len(d) >= 80
    by_name = dict(zip(d.ingredient, d.brands, strict=True))
    assert "LIPITOR" in by_name["atorvastatin"]
    assert sum(bool(b) for b in d.brands) >= 50
    for name, brands in by_name.items():
        for b in brands:
            assert not any(w in b for w in base_name(name).split() if len(w) >= 4), (name, b)


def test_local_lab_names_unique_differ_and_are_deterministic():
    c = load_lab_catalog()
    rows = np.arange(len(c))
    names = {}
    for site in range(3):
        habit = draw_habit(np.random.default_rng(site), site_index=site)
        a = lab_local_names(c, rows, habit, np.random.default_rng(10 + site))
        b = lab_local_names(c, rows, habit, np.random.default_rng(10 + site))
        assert list(a) == list(b)
        assert len(set(a)) == len(a)
        names[site] = a
    assert (names[0] != names[1]).mean() > 0.9
    # a site that omits its default specimens makes some near-duplicates ambiguous: their
    # names differ only by a counter (" 2"), which says nothing about the specimen
    habit = draw_habit(np.random.default_rng(0), site_index=0)
    assert habit.specimen == "omit"
    omit = lab_local_names(c, rows, habit, np.random.default_rng(0))
    assert any(n.endswith(" 2") for n in omit)


def test_local_drug_names_brand_or_generic():
    d = load_drug_catalog()
    rows = np.repeat(np.arange(len(d)), 2)
    habit = draw_habit(np.random.default_rng(3), site_index=1)
    names, brand, strength, form = drug_local_names(d, rows, habit, np.random.default_rng(3))
    assert len(set(names)) == len(names)
    assert brand.any() and (~brand).any()
    for i in np.flatnonzero(brand):
        assert d.ingredient[rows[i]].split()[0] not in names[i].lower()
    for i in np.flatnonzero(~brand):
        assert names[i].lower().startswith(d.ingredient[rows[i]])
