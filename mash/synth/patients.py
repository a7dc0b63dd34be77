"""One site's latent patients: process mixtures, visits and condition events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mash.synth._segments import sample_dense, segment_ids, segment_ptr, within_segment
from mash.synth.config import SimulationConfig
from mash.synth.profiles import SiteProfile
from mash.synth.world import World

__all__ = ["PatientState", "simulate_patients"]

# Ages are standardised as (age - 50) / 20 for the process age slopes and the frailty.
_AGE_CENTER, _AGE_SCALE = 50.0, 20.0


@dataclass(frozen=True)
class PatientState:
    """Latent state of one site's patients: what outcome models will condition on.

    Visits are ordered by patient then time; condition events by visit then condition.

    Attributes
    ----------
    site : str
    age : ndarray of float, shape (n_patients,)
        Age at the first visit.
    frailty : ndarray of float, shape (n_patients,)
        Multiplicative visit intensity.
    theta : ndarray of float, shape (n_patients, K)
        :math:`\\theta_p`, each patient's mixture over processes (rows sum to one).
    visit_ptr : ndarray of int, shape (n_patients + 1,)
        Patient ``p``'s visits are ``visit_ptr[p]:visit_ptr[p + 1]``.
    visit_patient : ndarray of int, shape (n_visits,)
    visit_day : ndarray of int, shape (n_visits,)
        Days since 1970-01-01.
    event_visit : ndarray of int, shape (n_events,)
        Visit of each condition event (index into the visit arrays).
    event_condition : ndarray of int, shape (n_events,)
        Condition (index into ``World.conditions``).
    event_incident : ndarray of bool, shape (n_events,)
        True at a condition's first record in an episode, False for a chronic recurrence.
    event_process : ndarray of int, shape (n_events,)
        Process the episode was drawn from (recurrences inherit it).
    """

    site: str
    age: np.ndarray
    frailty: np.ndarray
    theta: np.ndarray
    visit_ptr: np.ndarray
    visit_patient: np.ndarray
    visit_day: np.ndarray
    event_visit: np.ndarray
    event_condition: np.ndarray
    event_incident: np.ndarray
    event_process: np.ndarray

    @property
    def n_patients(self) -> int:
        """Number of patients."""
        return len(self.age)

    @property
    def event_patient(self) -> np.ndarray:
        """Patient of each condition event, shape (n_events,)."""
        return self.visit_patient[self.event_visit]

    @property
    def event_day(self) -> np.ndarray:
        """Day of each condition event, shape (n_events,)."""
        return self.visit_day[self.event_visit]


def simulate_patients(
    world: World,
    profile: SiteProfile,
    *,
    n_patients: int,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> PatientState:
    """Simulate one site's patients: mixtures, visits and condition events.

    Parameters
    ----------
    world : World
    profile : SiteProfile
    n_patients : int
    config : SimulationConfig
    rng : numpy.random.Generator

    Returns
    -------
    PatientState
    """
    n = int(n_patients)

    # Who: age, frailty, sparse process mixture.
    age = np.clip(rng.normal(profile.age_mean, profile.age_sd, size=n), 18.0, 95.0)
    age_std = (age - _AGE_CENTER) / _AGE_SCALE
    logits = profile.log_prior[None, :] + age_std[:, None] * world.process_age_slope[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    alpha = np.exp(logits)
    alpha *= config.concentration / alpha.sum(axis=1, keepdims=True)
    theta = rng.gamma(alpha) + 1e-300
    theta /= theta.sum(axis=1, keepdims=True)
    log_frailty = config.frailty_sigma * rng.standard_normal(n) + 0.3 * age_std
    frailty = np.exp(log_frailty - np.log(np.mean(np.exp(log_frailty))))

    # When: 1 + Poisson visits over 1-3 years; exponential gaps scaled to the span.
    n_visits = 1 + rng.poisson(profile.visit_rate * frailty)
    visit_ptr = segment_ptr(n_visits)
    n_vis = int(visit_ptr[-1])
    visit_patient = segment_ids(n_visits)
    span = rng.uniform(365.0, 3 * 365.0, size=n)
    latest_start = profile.last_day - 3 * 365
    start = rng.integers(profile.first_day, latest_start + 1, size=n)
    gaps = rng.exponential(1.0, size=n_vis)  # gap after each visit; the last closes the span
    before = np.cumsum(gaps) - gaps
    before -= before[visit_ptr[:-1]][visit_patient]
    total = np.bincount(visit_patient, weights=gaps, minlength=n)
    offsets = np.floor(before / total[visit_patient] * span[visit_patient]).astype(np.int64)
    visit_day = start[visit_patient] + offsets

    # What: 1 + Poisson new conditions per visit, z ~ theta_p * M_z, c ~ rho*eps*W[:, z].
    site_weight = world.prevalence * profile.practice  # (C,)
    phi = site_weight[:, None] * world.loadings  # (C, K)
    mass = phi.sum(axis=0)  # (K,)
    n_new = 1 + rng.poisson(config.codes_per_visit, size=n_vis)
    draw_visit = segment_ids(n_new)
    draw_patient = visit_patient[draw_visit]
    process = sample_dense(theta * mass[None, :], draw_patient, rng)
    condition = sample_dense(phi.T, process, rng)

    # Chronic recurrence at each later visit with probability r_c.
    later = visit_ptr[draw_patient + 1] - draw_visit - 1
    rec_src = segment_ids(later)
    rec_visit = draw_visit[rec_src] + 1 + within_segment(later)
    hit = rng.random(len(rec_src)) < world.recurrence[condition[rec_src]]
    rec_src, rec_visit = rec_src[hit], rec_visit[hit]

    # One record per (visit, condition); an incident draw wins over a recurrence.
    all_visit = np.concatenate((draw_visit, rec_visit))
    all_cond = np.concatenate((condition, condition[rec_src]))
    all_proc = np.concatenate((process, process[rec_src]))
    all_inc = np.concatenate((np.ones(len(draw_visit), bool), np.zeros(len(rec_src), bool)))
    key = all_visit * world.n_conditions + all_cond
    order = np.lexsort((~all_inc, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    sel = order[first]
    return PatientState(
        site=profile.name,
        age=age,
        frailty=frailty,
        theta=theta,
        visit_ptr=visit_ptr,
        visit_patient=visit_patient,
        visit_day=visit_day,
        event_visit=all_visit[sel],
        event_condition=all_cond[sel],
        event_incident=all_inc[sel],
        event_process=all_proc[sel],
    )
