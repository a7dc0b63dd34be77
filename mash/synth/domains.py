"""Labs and medications of every simulated site as tables: codes, events, gold, key.

The reference site writes the standards: LOINC codes with their long common names
and RxNorm ingredient ids with ingredient names. Every other site writes local ids
(``LB`` + 5 digits for tests, ``RX`` + 6 digits for formulary entries) with names in
its own habit (:mod:`mash.synth.local_names`): abbreviations, specimen written or
omitted, SI or conventional units, brand or generic drug names with strength and form.
The gold pairs are a local code and the reference code of the same LOINC test or the
same ingredient, when both occur.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mash.synth._calendar import iso_dates
from mash.synth._segments import sample_segments, segment_ptr
from mash.synth.clinical import (
    ClinicalSite,
    clinical_site,
    record_drugs,
    record_labs,
    sample_clinical_world,
)
from mash.synth.config import DOMAINS
from mash.synth.drugs_catalog import DrugCatalog, load_drug_catalog
from mash.synth.labs_catalog import LabCatalog, load_lab_catalog
from mash.synth.local_names import draw_habit, drug_local_names, lab_local_names
from mash.synth.patients import PatientState
from mash.synth.profiles import subject_ids
from mash.synth.world import World

__all__ = ["DOMAINS", "SiteDomainTables", "simulate_domains"]

#: Share of the SI-convertible tests a local site reports in SI units, by site order.
_SI_SHARE = (0.1, 0.0, 0.9, 0.5, 0.3, 0.7)


@dataclass(frozen=True)
class SiteDomainTables:
    """One site's lab and medication tables.

    Attributes
    ----------
    codes : DataFrame
        ``code, description, domain``, the codes that occur.
    events : DataFrame
        ``subject_id, time, code, numeric_value, unit`` (values and units for labs;
        NaN and "" for drugs).
    key : DataFrame
        ``site, code, domain, source_code, source_name, naming``: the LOINC test or
        ingredient each code stands for, and how the site named it (``lab``,
        ``brand`` or ``generic``). For benchmarks only.
    written_test, written_drug : dict of int to str
        Written code of each catalog test / ingredient (reference site) or, for a
        local site, empty (its codes are formulary entries and local tests).
    """

    codes: pd.DataFrame
    events: pd.DataFrame
    key: pd.DataFrame


def _local_ids(prefix: str, n: int, width: int, rng: np.random.Generator) -> np.ndarray:
    draws = rng.choice(10**width, size=n, replace=False)
    return np.array([f"{prefix}{x:0{width}d}" for x in draws], dtype=object)


def _events_frame(
    subject: np.ndarray,
    day: np.ndarray,
    code: np.ndarray,
    value: np.ndarray,
    unit: np.ndarray,
    id_prefix: str,
    n_patients: int,
) -> pd.DataFrame:
    ids = subject_ids(id_prefix, n_patients)
    days, inv = np.unique(day, return_inverse=True)
    frame = pd.DataFrame(
        {
            "subject_id": ids[subject],
            "time": iso_dates(days)[inv],
            "code": code,
            "numeric_value": value,
            "unit": unit,
        }
    )
    # two visits of a patient on one day may order the same drug (or give one value
    # twice): one row, as the diagnoses' one row per (subject, day, code)
    return frame.drop_duplicates(["subject_id", "time", "code", "numeric_value"], ignore_index=True)


def _lab_tables(
    site: str,
    reference: bool,
    labs: LabCatalog,
    used: np.ndarray,
    csite: ClinicalSite,
    habit_rng: np.random.Generator,
    site_index: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Written code, name and unit of every catalog test (meaningful where used)."""
    L = len(labs.loinc)
    code = np.empty(L, dtype=object)
    name = np.empty(L, dtype=object)
    if reference:
        code[:] = labs.loinc
        name[:] = labs.display
    else:
        habit = draw_habit(habit_rng, site_index=site_index)
        code[used] = _local_ids("LB", len(used), 5, habit_rng)
        name[used] = lab_local_names(labs, used, habit, habit_rng)
    unit = np.where(csite.lab_si, labs.si_unit, labs.unit).astype(object)
    key = pd.DataFrame(
        {
            "site": site,
            "code": code[used],
            "domain": "lab",
            "source_code": labs.loinc[used],
            "source_name": labs.display[used],
            "naming": "lab",
        }
    )
    return code, name, unit, key


def simulate_domains(
    world: World,
    patients: dict[str, PatientState],
    id_prefixes: dict[str, str],
    *,
    reference: str,
    domains: tuple[str, ...],
    n_patients: int,
    rng: np.random.Generator,
) -> tuple[dict[str, SiteDomainTables], pd.DataFrame, dict]:
    """Labs and/or medications of every site, their gold pairs and a summary.

    Parameters
    ----------
    world : World
    patients : dict of str to PatientState
        Every site's latent patients, in site order.
    id_prefixes : dict of str to str
        Subject id prefix of each site.
    reference : str
        The site that writes LOINC and RxNorm ingredients.
    domains : tuple of str
        Subset of ``("lab", "medication")`` to simulate (``"diagnosis"`` is ignored
        here).
    n_patients : int
    rng : numpy.random.Generator
        The ``clinical`` stream.

    Returns
    -------
    tables : dict of str to SiteDomainTables
    gold : DataFrame
        ``site, code, reference_site, reference_code`` of every local site.
    summary : dict
        Catalog sizes and, per site, codes by domain and brand-named drugs.
    """
    sites = list(patients)
    do_labs, do_drugs = "lab" in domains, "medication" in domains
    labs = load_lab_catalog()
    drugs: DrugCatalog = load_drug_catalog()
    world_rng, *site_rngs = rng.spawn(1 + len(sites))
    cworld = sample_clinical_world(
        world, low=labs.low, high=labs.high, n_drugs=len(drugs.rxcui), rng=world_rng
    )
    has_si = np.asarray(labs.si_factor, dtype=np.float64) != 1.0
    tables: dict[str, SiteDomainTables] = {}
    gold_parts: list[pd.DataFrame] = []
    summary: dict = {
        "lab_tests": len(labs.loinc) if do_labs else 0,
        "drug_ingredients": len(drugs.rxcui) if do_drugs else 0,
        "sites": {},
    }
    ref_written: dict[str, dict[int, str]] = {}
    order = [reference] + [s for s in sites if s != reference]  # the reference first
    for site in order:
        i = sites.index(site)
        is_ref = site == reference
        r_site, r_labs, r_drugs, r_names = site_rngs[i].spawn(4)
        csite = clinical_site(
            site,
            n_labs=len(labs.loinc),
            n_drugs=len(drugs.rxcui),
            has_si=has_si,
            reference=is_ref,
            si_share=_SI_SHARE[i % len(_SI_SHARE)],
            rng=r_site,
        )
        codes_parts, events_parts, key_parts = [], [], []
        site_summary: dict = {}
        if do_labs:
            rec = record_labs(
                cworld, csite, patients[site], si_factor=labs.si_factor, rng=r_labs
            )
            used = np.unique(rec.test)
            code, name, unit, key = _lab_tables(
                site, is_ref, labs, used, csite, r_names, site_index=i
            )
            codes_parts.append(
                pd.DataFrame({"code": code[used], "description": name[used], "domain": "lab"})
            )
            events_parts.append(
                _events_frame(
                    rec.subject, rec.day, code[rec.test], rec.value, unit[rec.test],
                    id_prefixes[site], n_patients,
                )
            )
            key_parts.append(key)
            site_summary["lab_codes"] = len(used)
            site_summary["lab_codes_in_si_units"] = int(csite.lab_si[used].sum())
            if is_ref:
                ref_written["lab"] = {int(t): str(code[t]) for t in used}
            else:
                gold_parts.append(_gold(site, reference, key, ref_written["lab"], labs.loinc))
        if do_drugs:
            rec_d = record_drugs(cworld, csite, patients[site], rng=r_drugs)
            if is_ref:
                used_d = np.unique(rec_d.drug)
                code_d = np.asarray(drugs.rxcui, dtype=object)
                entry_code = code_d[rec_d.drug]
                codes_parts.append(
                    pd.DataFrame(
                        {
                            "code": code_d[used_d],
                            "description": np.asarray(drugs.ingredient, dtype=object)[used_d],
                            "domain": "medication",
                        }
                    )
                )
                key_parts.append(
                    pd.DataFrame(
                        {
                            "site": site,
                            "code": code_d[used_d],
                            "domain": "medication",
                            "source_code": code_d[used_d],
                            "source_name": np.asarray(drugs.ingredient, dtype=object)[used_d],
                            "naming": "generic",
                        }
                    )
                )
                ref_written["medication"] = {int(d): str(code_d[d]) for d in used_d}
                n_brand = 0
            else:
                entry_code, entries = _formulary(
                    site, drugs, rec_d.drug, r_names, site_index=i
                )
                codes_parts.append(entries[["code", "description", "domain"]])
                key = entries[["site", "code", "domain", "source_code", "source_name", "naming"]]
                key_parts.append(key)
                n_brand = int((entries["naming"] == "brand").sum())
                gold_parts.append(
                    _gold(site, reference, key, ref_written["medication"], drugs.rxcui)
                )
            events_parts.append(
                _events_frame(
                    rec_d.subject, rec_d.day, entry_code,
                    np.full(len(entry_code), np.nan), np.full(len(entry_code), "", dtype=object),
                    id_prefixes[site], n_patients,
                )
            )
            site_summary["medication_codes"] = len(codes_parts[-1])
            site_summary["brand_named_medication_codes"] = n_brand
        tables[site] = SiteDomainTables(
            codes=pd.concat(codes_parts, ignore_index=True),
            events=pd.concat(events_parts, ignore_index=True),
            key=pd.concat(key_parts, ignore_index=True),
        )
        summary["sites"][site] = site_summary
    summary["sites"] = {s: summary["sites"][s] for s in sites}
    gold = (
        pd.concat(gold_parts, ignore_index=True)
        if gold_parts
        else pd.DataFrame(columns=["site", "code", "reference_site", "reference_code"])
    )
    return {s: tables[s] for s in sites}, gold, summary


def _gold(
    site: str, reference: str, key: pd.DataFrame, ref_written: dict[int, str], source: np.ndarray
) -> pd.DataFrame:
    """Gold pairs of a local site's codes whose source occurs at the reference."""
    position = {str(s): i for i, s in enumerate(source)}
    ref = [ref_written.get(position[str(s)]) for s in key["source_code"]]
    frame = pd.DataFrame(
        {"site": site, "code": key["code"].to_numpy(), "reference_site": reference,
         "reference_code": np.array(ref, dtype=object)}
    )
    return frame[frame["reference_code"].notna()].reset_index(drop=True)


def _formulary(
    site: str,
    drugs: DrugCatalog,
    orders: np.ndarray,
    rng: np.random.Generator,
    *,
    site_index: int,
) -> tuple[np.ndarray, pd.DataFrame]:
    """A local site's formulary entries and the entry of each order.

    Each ordered ingredient gets one to three entries (strengths and forms, brand or
    generic per the site's habit); an order picks one of its ingredient's entries
    from a per-site preference. Entries that no order picked are not listed.

    Returns
    -------
    entry_code : ndarray of object, shape (n_orders,)
    entries : DataFrame
        ``site, code, description, domain, source_code, source_name, naming``.
    """
    habit = draw_habit(rng, site_index=site_index)
    used = np.unique(orders)
    n_entries = 1 + (rng.random(len(used)) < 0.5) + (rng.random(len(used)) < 0.2)
    rows = np.repeat(used, n_entries)
    names, is_brand = drug_local_names(drugs, rows, habit, rng)[:2]
    codes = _local_ids("RX", len(rows), 6, rng)
    # preference over each ingredient's entries (Dirichlet(1)), then one per order
    pref = rng.gamma(1.0, size=len(rows)) + 1e-12
    pick = sample_segments(pref, segment_ptr(n_entries), np.searchsorted(used, orders),
                           rng.random(len(orders)))
    entries = pd.DataFrame(
        {
            "site": site,
            "code": codes,
            "description": names,
            "domain": "medication",
            "source_code": np.asarray(drugs.rxcui, dtype=object)[rows],
            "source_name": np.asarray(drugs.ingredient, dtype=object)[rows],
            "naming": np.where(is_brand, "brand", "generic"),
        }
    )
    ordered = np.zeros(len(rows), dtype=bool)
    ordered[pick] = True  # a formulary entry no order used is not listed
    return codes[pick], entries[ordered].reset_index(drop=True)
