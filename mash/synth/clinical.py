"""Labs and medications of the simulated patients: what is ordered, its values, the formulary.

The same latent patients that generate the diagnoses (:mod:`mash.synth.patients`)
also have lab tests and medication orders. Each lab test and each drug ingredient loads
on the world's latent disease processes like a condition does (a main process and one
or two secondary ones), so a test or a drug co-occurs with the diagnoses and with the
other tests and drugs of the same process, at every site.

- **Lab orders.** At each visit, ``1 + Poisson(lab_rate)`` tests are drawn: a process
  from the patient's mixture weighted by the process's lab mass, then a test
  :math:`\\propto \\rho_l\\,\\epsilon^{(s)}_l\\,W_{lk}` among the tests the site offers.
- **Lab values.** In the test's conventional unit (the reference interval of the real
  catalog), :math:`\\log v = \\mu_l + \\sigma_l (z + e_l \\log(1 + K\\theta_{p,m_l}))
  + b^{(s)}_l` with :math:`z \\sim N(0, 1)`, :math:`\\mu_l, \\sigma_l` from the
  interval (95% of healthy values inside it), a per-test disease effect :math:`e_l`
  on the activity of its main process :math:`m_l`, and a small per-site calibration
  bias :math:`b^{(s)}_l`. A site that reports a test in SI units multiplies by the
  real conversion factor (``labunits``); values are rounded to three significant
  digits.
- **Medication orders.** At each visit, ``Poisson(drug_rate)`` ingredients are drawn
  the same way; a chronic drug (recurrence :math:`r_d`) is ordered again at each later
  visit with probability :math:`r_d`. A local site records an order as one of its
  formulary entries for that ingredient (strength and form, brand or generic name),
  drawn from a per-site preference; the reference site records the ingredient.

Pure functions of their inputs and a ``numpy.random.Generator``:
:func:`sample_clinical_world`, :func:`clinical_site`, :func:`record_labs`,
:func:`record_drugs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mash.synth._segments import sample_dense, segment_ids, within_segment
from mash.synth.patients import PatientState
from mash.synth.world import World

__all__ = [
    "ClinicalSite",
    "ClinicalWorld",
    "DrugRecords",
    "LabRecords",
    "clinical_site",
    "lab_value_parameters",
    "record_drugs",
    "record_labs",
    "sample_clinical_world",
]

#: Mean extra lab tests and medication orders per visit.
LAB_RATE = 1.5
DRUG_RATE = 1.0


@dataclass(frozen=True)
class ClinicalWorld:
    """The shared biology of lab tests and drug ingredients (independent of sites).

    Attributes
    ----------
    lab_loadings : ndarray of float, shape (L, K)
        Loadings of each lab test on the latent processes.
    lab_prevalence : ndarray of float, shape (L,)
        Base ordering rate :math:`\\rho_l` (log-normal, mean 1).
    lab_main : ndarray of int, shape (L,)
        Main process :math:`m_l` of each test.
    lab_effect : ndarray of float, shape (L,)
        Disease effect :math:`e_l` (in SDs per unit of log main-process activity).
    lab_mu, lab_sigma : ndarray of float, shape (L,)
        Healthy log-value mean and SD in the conventional unit.
    drug_loadings : ndarray of float, shape (D, K)
    drug_prevalence : ndarray of float, shape (D,)
    drug_main : ndarray of int, shape (D,)
    drug_recurrence : ndarray of float, shape (D,)
        Probability that a drug is ordered again at each later visit.
    """

    lab_loadings: np.ndarray
    lab_prevalence: np.ndarray
    lab_main: np.ndarray
    lab_effect: np.ndarray
    lab_mu: np.ndarray
    lab_sigma: np.ndarray
    drug_loadings: np.ndarray
    drug_prevalence: np.ndarray
    drug_main: np.ndarray
    drug_recurrence: np.ndarray


def lab_value_parameters(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Healthy log-value mean and SD from reference intervals, shapes (L,) each.

    With ``low > 0`` the interval is the central 95% of a log-normal:
    :math:`\\mu = (\\log l + \\log h) / 2`, :math:`\\sigma = (\\log h - \\log l) / 4`.
    An interval starting at 0 (an upper limit only, e.g. troponin, LDL) puts the
    median at ``high / e`` with :math:`\\sigma = 0.5` (97.5% below the limit).

    Examples
    --------
    >>> mu, sd = lab_value_parameters(np.array([70.0, 0.0]), np.array([99.0, 0.04]))
    >>> np.round(np.exp(mu), 3).tolist(), np.round(sd, 3).tolist()
    ([83.247, 0.015], [0.087, 0.5])
    """
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    pos = low > 0
    safe_low = np.where(pos, low, 1.0)
    mu = np.where(pos, (np.log(safe_low) + np.log(high)) / 2, np.log(high) - 1.0)
    sigma = np.where(pos, (np.log(high) - np.log(safe_low)) / 4, 0.5)
    return mu, np.maximum(sigma, 0.02)


def _loadings(n: int, K: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sparse loadings like the conditions': main 1, 1-2 secondaries, noise floor."""
    main = rng.integers(0, K, size=n)
    load = np.zeros((n, K))
    load[np.arange(n), main] = 1.0
    n_sec = rng.integers(1, 3, size=n)
    keys = rng.random((n, K))
    keys[np.arange(n), main] = 2.0
    ranked = np.argsort(keys, axis=1)
    mask = np.arange(K)[None, :] < n_sec[:, None]
    load[segment_ids(n_sec), ranked[mask]] = 0.6 * rng.uniform(0.1, 1.0, size=int(n_sec.sum()))
    load += 0.15 * load.sum(axis=1, keepdims=True) * rng.exponential(1.0, size=(n, K)) / K
    return load, main


def sample_clinical_world(
    world: World, *, low: np.ndarray, high: np.ndarray, n_drugs: int, rng: np.random.Generator
) -> ClinicalWorld:
    """Draw the labs' and drugs' loadings, rates, effects and value parameters.

    Parameters
    ----------
    world : World
        Its processes are the labs' and drugs' processes.
    low, high : ndarray of float, shape (L,)
        Reference intervals of the lab catalog (conventional units).
    n_drugs : int
        Number of drug ingredients ``D``.
    rng : numpy.random.Generator

    Returns
    -------
    ClinicalWorld
    """
    K = world.n_processes
    L = len(low)
    lab_loadings, lab_main = _loadings(L, K, rng)
    lab_prevalence = np.exp(1.2 * rng.standard_normal(L) - 0.72)
    sign = np.where(rng.random(L) < 0.8, 1.0, -1.0)
    lab_effect = sign * rng.uniform(0.3, 0.9, size=L)
    lab_mu, lab_sigma = lab_value_parameters(low, high)
    drug_loadings, drug_main = _loadings(n_drugs, K, rng)
    drug_prevalence = np.exp(1.5 * rng.standard_normal(n_drugs) - 1.125)
    chronic = rng.random(n_drugs) < 0.5
    drug_recurrence = np.where(
        chronic, rng.beta(4.0, 2.0, size=n_drugs), rng.beta(1.0, 12.0, size=n_drugs)
    )
    return ClinicalWorld(
        lab_loadings=lab_loadings,
        lab_prevalence=lab_prevalence,
        lab_main=lab_main,
        lab_effect=lab_effect,
        lab_mu=lab_mu,
        lab_sigma=lab_sigma,
        drug_loadings=drug_loadings,
        drug_prevalence=drug_prevalence,
        drug_main=drug_main,
        drug_recurrence=drug_recurrence,
    )


@dataclass(frozen=True)
class ClinicalSite:
    """One site's lab and pharmacy practice.

    Attributes
    ----------
    name : str
    lab_offered : ndarray of bool, shape (L,)
        Tests the site performs.
    lab_si : ndarray of bool, shape (L,)
        Tests it reports in SI units (only where an SI factor is known).
    lab_bias : ndarray of float, shape (L,)
        :math:`b^{(s)}_l`, log-scale calibration bias of its analysers.
    lab_practice, drug_practice : ndarray of float, shape (L,) and (D,)
        Multiplicative practice noise on ordering rates (0 where not offered).
    lab_rate, drug_rate : float
        Mean extra tests / orders per visit.
    """

    name: str
    lab_offered: np.ndarray
    lab_si: np.ndarray
    lab_bias: np.ndarray
    lab_practice: np.ndarray
    drug_practice: np.ndarray
    lab_rate: float
    drug_rate: float


def clinical_site(
    name: str,
    *,
    n_labs: int,
    n_drugs: int,
    has_si: np.ndarray,
    reference: bool,
    si_share: float,
    rng: np.random.Generator,
) -> ClinicalSite:
    """Draw one site's lab menu, units, calibration and ordering habits.

    The reference site offers every test and drug and reports conventional units
    without bias (it is the standard); a local site offers about 90% of the tests and
    drugs, reports a share ``si_share`` of the tests with a known SI factor in SI
    units, and has a calibration bias of SD 0.03 (3%) per test.

    Parameters
    ----------
    name : str
    n_labs, n_drugs : int
    has_si : ndarray of bool, shape (L,)
        Tests with a known SI conversion factor.
    reference : bool
    si_share : float
    rng : numpy.random.Generator

    Returns
    -------
    ClinicalSite
    """
    lab_noise = np.exp(0.5 * rng.standard_normal(n_labs) - 0.125)
    drug_noise = np.exp(0.5 * rng.standard_normal(n_drugs) - 0.125)
    if reference:
        lab_offered = np.ones(n_labs, dtype=bool)
        drug_offered = np.ones(n_drugs, dtype=bool)
        lab_si = np.zeros(n_labs, dtype=bool)
        bias = np.zeros(n_labs)
    else:
        lab_offered = rng.random(n_labs) < 0.9
        drug_offered = rng.random(n_drugs) < 0.9
        lab_si = np.asarray(has_si, dtype=bool) & (rng.random(n_labs) < si_share)
        bias = 0.03 * rng.standard_normal(n_labs)
    return ClinicalSite(
        name=name,
        lab_offered=lab_offered,
        lab_si=lab_si,
        lab_bias=bias,
        lab_practice=lab_noise * lab_offered,
        drug_practice=drug_noise * drug_offered,
        lab_rate=LAB_RATE * float(rng.uniform(0.8, 1.25)),
        drug_rate=DRUG_RATE * float(rng.uniform(0.8, 1.25)),
    )


@dataclass(frozen=True)
class LabRecords:
    """A site's lab results, one row per (visit, test).

    Attributes
    ----------
    subject, day : ndarray of int, shape (n,)
    test : ndarray of int, shape (n,)
        Index into the lab catalog.
    value : ndarray of float, shape (n,)
        In the site's unit of the test (conventional or SI), three significant digits.
    """

    subject: np.ndarray
    day: np.ndarray
    test: np.ndarray
    value: np.ndarray


@dataclass(frozen=True)
class DrugRecords:
    """A site's medication orders, one row per (visit, ingredient).

    Attributes
    ----------
    subject, day : ndarray of int, shape (n,)
    drug : ndarray of int, shape (n,)
        Index into the drug catalog (ingredient).
    """

    subject: np.ndarray
    day: np.ndarray
    drug: np.ndarray


def _draw_items(
    loadings: np.ndarray,
    weight: np.ndarray,
    state: PatientState,
    n_per_visit: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Items drawn per visit through the processes; (visit, item) arrays, shape (n,)."""
    phi = weight[:, None] * loadings  # (n_items, K)
    mass = phi.sum(axis=0)
    draw_visit = segment_ids(n_per_visit)
    if len(draw_visit) == 0 or not mass.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    process = sample_dense(state.theta * mass[None, :], state.visit_patient[draw_visit], rng)
    item = sample_dense(phi.T, process, rng)
    return draw_visit, item


def _unique_rows(visit: np.ndarray, item: np.ndarray, n_items: int) -> np.ndarray:
    """Positions of the first row of each (visit, item), in (visit, item) order."""
    key = visit.astype(np.int64) * n_items + item
    order = np.argsort(key, kind="stable")
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    return order[first]


def _round_sig(x: np.ndarray, digits: int = 3) -> np.ndarray:
    """``x`` rounded to ``digits`` significant digits (positive values)."""
    exponent = np.floor(np.log10(np.abs(x)))
    scale = 10.0 ** (digits - 1 - exponent)
    return np.round(x * scale) / scale


def record_labs(
    cworld: ClinicalWorld,
    site: ClinicalSite,
    state: PatientState,
    *,
    si_factor: np.ndarray,
    rng: np.random.Generator,
) -> LabRecords:
    """A site's lab orders and values (see the module docstring).

    Parameters
    ----------
    cworld : ClinicalWorld
    site : ClinicalSite
    state : PatientState
        The site's latent patients (the same as its diagnoses').
    si_factor : ndarray of float, shape (L,)
        SI value = conventional value × factor.
    rng : numpy.random.Generator

    Returns
    -------
    LabRecords
    """
    n_vis = len(state.visit_day)
    n_per = 1 + rng.poisson(site.lab_rate, size=n_vis)
    visit, test = _draw_items(
        cworld.lab_loadings, cworld.lab_prevalence * site.lab_practice, state, n_per, rng
    )
    keep = _unique_rows(visit, test, len(cworld.lab_mu))
    visit, test = visit[keep], test[keep]
    patient = state.visit_patient[visit]
    K = state.theta.shape[1]
    activity = np.log1p(K * state.theta[patient, cworld.lab_main[test]])
    z = rng.standard_normal(len(test))
    log_v = (
        cworld.lab_mu[test]
        + cworld.lab_sigma[test] * (z + cworld.lab_effect[test] * activity)
        + site.lab_bias[test]
    )
    value = np.exp(log_v) * np.where(site.lab_si[test], si_factor[test], 1.0)
    return LabRecords(
        subject=patient, day=state.visit_day[visit], test=test, value=_round_sig(value)
    )


def record_drugs(
    cworld: ClinicalWorld, site: ClinicalSite, state: PatientState, *, rng: np.random.Generator
) -> DrugRecords:
    """A site's medication orders by ingredient (see the module docstring).

    Parameters
    ----------
    cworld : ClinicalWorld
    site : ClinicalSite
    state : PatientState
    rng : numpy.random.Generator

    Returns
    -------
    DrugRecords
    """
    n_vis = len(state.visit_day)
    n_per = rng.poisson(site.drug_rate, size=n_vis)
    visit, drug = _draw_items(
        cworld.drug_loadings, cworld.drug_prevalence * site.drug_practice, state, n_per, rng
    )
    # chronic drugs are ordered again at later visits of the same patient
    later = state.visit_ptr[state.visit_patient[visit] + 1] - visit - 1
    src = segment_ids(later)
    rec_visit = visit[src] + 1 + within_segment(later)
    hit = rng.random(len(src)) < cworld.drug_recurrence[drug[src]]
    visit = np.concatenate((visit, rec_visit[hit]))
    drug = np.concatenate((drug, drug[src[hit]]))
    keep = _unique_rows(visit, drug, len(cworld.drug_prevalence))
    visit, drug = visit[keep], drug[keep]
    return DrugRecords(
        subject=state.visit_patient[visit], day=state.visit_day[visit], drug=drug
    )
