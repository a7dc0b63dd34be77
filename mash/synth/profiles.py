"""The two sites: their populations and practices, and the conditions site_B never records."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mash.errors import MashInputError
from mash.synth._calendar import day_number
from mash.synth.config import SimulationConfig
from mash.synth.reference import CHAPTER_NAMES
from mash.synth.world import World

__all__ = [
    "SiteProfile",
    "draw_unshared",
    "extra_site_profile",
    "site_names",
    "site_profiles",
    "subject_ids",
]

#: Chapters whose processes site_B's prior favours (``2.5 ** shift`` times).
CARDIOMETABOLIC_CHAPTERS = frozenset({"endocrine", "circulatory"})


@dataclass(frozen=True)
class SiteProfile:
    """One site's population and practice.

    Attributes
    ----------
    name : str
        ``"site_A"`` or ``"site_B"``.
    system : str
        ``"icd9"`` (codes are the conditions) or ``"icd10"`` (GEM targets).
    id_prefix : str
        First character of subject ids (``A000123``).
    log_prior : ndarray of float, shape (K,)
        :math:`\\log\\pi^{(s)}`, the site's log prior over processes (age 50).
    age_mean, age_sd : float
        Normal age distribution at the first visit (clipped to [18, 95]).
    visit_rate : float
        :math:`\\lambda^{(s)}`: mean Poisson number of visits after the first.
    practice : ndarray of float, shape (C,)
        :math:`\\epsilon^{(s)}_c`: multiplicative practice noise on code prevalence.
    first_day, last_day : int
        Calendar window of the site's records, days since 1970-01-01.
    """

    name: str
    system: str
    id_prefix: str
    log_prior: np.ndarray
    age_mean: float
    age_sd: float
    visit_rate: float
    practice: np.ndarray
    first_day: int
    last_day: int


def site_profiles(
    world: World, *, config: SimulationConfig, rng: np.random.Generator
) -> dict[str, SiteProfile]:
    """The two sites: site_A (ICD-9-CM, 2009-2015) and site_B (ICD-10-CM, 2016-2023).

    site_B is older (``+12 * shift`` years), has a ``2.5 ** shift`` times stronger prior
    on cardio-metabolic processes, ``1 + 0.3 * shift`` times more visits, and each site
    has its own noise on the process prior and on code prevalence.

    Parameters
    ----------
    world : World
    config : SimulationConfig
    rng : numpy.random.Generator

    Returns
    -------
    dict of str to SiteProfile
        Keyed by site name, in :data:`SITES` order.
    """
    K, C = world.n_processes, world.n_conditions
    shift = config.shift
    base = rng.normal(0.0, 0.5, size=K)
    cardio = np.isin(np.array(CHAPTER_NAMES)[world.process_chapter], list(CARDIOMETABOLIC_CHAPTERS))
    noise_a = shift * config.process_site_sigma * rng.standard_normal(K)
    noise_b = shift * config.process_site_sigma * rng.standard_normal(K)
    practice = np.exp(
        config.practice_noise * rng.standard_normal((2, C)) - config.practice_noise**2 / 2
    )
    return {
        "site_A": SiteProfile(
            name="site_A",
            system="icd9",
            id_prefix="A",
            log_prior=base + noise_a,
            age_mean=48.0,
            age_sd=18.0,
            visit_rate=config.visit_rate,
            practice=practice[0],
            first_day=day_number("2009-01-01"),
            last_day=day_number("2015-09-30"),
        ),
        "site_B": SiteProfile(
            name="site_B",
            system="icd10",
            id_prefix="B",
            log_prior=base + noise_b + shift * np.log(2.5) * cardio,
            age_mean=48.0 + 12.0 * shift,
            age_sd=18.0 - 3.0 * min(shift, 2.0),
            visit_rate=config.visit_rate * (1.0 + 0.3 * shift),
            practice=practice[1],
            first_day=day_number("2016-01-01"),
            last_day=day_number("2023-12-31"),
        ),
    }


def site_names(n_sites: int) -> tuple[str, ...]:
    """``site_A``, ``site_B`` (the reference), ``site_C``, ... for ``n_sites`` sites.

    Examples
    --------
    >>> site_names(3)
    ('site_A', 'site_B', 'site_C')
    """
    return tuple(f"site_{chr(ord('A') + i)}" for i in range(n_sites))


def extra_site_profile(
    world: World, name: str, *, config: SimulationConfig, rng: np.random.Generator
) -> SiteProfile:
    """A third (fourth, ...) site: ICD-10-CM, 2016-2023, its own population.

    Its process prior has its own base and noise (``process_site_sigma * shift``), its
    mean age is drawn in ``40 ± 8 * shift`` years and its visit rate in
    ``visit_rate * (1 ± 0.3 * shift)``; the practice noise on code prevalence is its own.

    Parameters
    ----------
    world : World
    name : str
        ``site_C``, ``site_D``, ...; the subject id prefix is its last letter.
    config : SimulationConfig
    rng : numpy.random.Generator
        That site's own stream.

    Returns
    -------
    SiteProfile
    """
    K, C = world.n_processes, world.n_conditions
    shift = config.shift
    log_prior = rng.normal(0.0, 0.5, size=K) + shift * config.process_site_sigma * (
        rng.standard_normal(K)
    )
    practice = np.exp(config.practice_noise * rng.standard_normal(C) - config.practice_noise**2 / 2)
    return SiteProfile(
        name=name,
        system="icd10",
        id_prefix=name[-1],
        log_prior=log_prior,
        age_mean=40.0 + 8.0 * shift * float(rng.uniform(-1.0, 1.0)),
        age_sd=18.0,
        visit_rate=config.visit_rate * (1.0 + 0.3 * shift * float(rng.uniform(-1.0, 1.0))),
        practice=practice,
        first_day=day_number("2016-01-01"),
        last_day=day_number("2023-12-31"),
    )


def draw_unshared(world: World, *, share: float, rng: np.random.Generator) -> np.ndarray:
    """Which conditions site_B never records (conditions without a counterpart).

    Parameters
    ----------
    world : World
    share : float
        :attr:`SimulationConfig.unshared_share`, in [0, 1).
    rng : numpy.random.Generator
        The ``unshared`` stream (one ``choice`` call, also when ``share`` is 0).

    Returns
    -------
    numpy.ndarray of bool, shape (C,)
        True for ``round(share * C)`` conditions drawn uniformly without replacement.

    Examples
    --------
    >>> from mash.synth import simulate_latent
    >>> world = simulate_latent(n_patients=5, n_conditions=40).world
    >>> int(draw_unshared(world, share=0.25, rng=np.random.default_rng(0)).sum())
    10
    """
    if not 0 <= share < 1:
        raise MashInputError(f"unshared_share must be in [0, 1), got {share!r}")
    C = world.n_conditions
    picked = rng.choice(C, size=int(round(share * C)), replace=False)
    out = np.zeros(C, dtype=bool)
    out[picked] = True
    return out


def subject_ids(id_prefix: str, n_patients: int) -> np.ndarray:
    """Subject ids ``id_prefix`` + zero-padded index (at least 6 digits), shape (n_patients,).

    Examples
    --------
    >>> subject_ids("A", 2).tolist()
    ['A000000', 'A000001']
    """
    width = max(6, len(str(max(n_patients - 1, 0))))
    return np.array([f"{id_prefix}{i:0{width}d}" for i in range(n_patients)], dtype=object)
