"""The simulator's options: :class:`SimulationConfig`, the named choices, argument checks."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mash.errors import MashInputError

#: The simulated sites: site_A codes in ICD-9-CM, site_B (the reference) in ICD-10-CM.
SITES = ("site_A", "site_B")
EVENTS_FORMATS = ("csv", "parquet")
#: What site_B's codes.csv lists: the codes that occur, or every ICD-10-CM 2024 code.
REFERENCE_VOCABULARIES = ("used", "full")
#: What the simulator can write: diagnoses always, labs and medications on request.
DOMAINS = ("diagnosis", "lab", "medication")


@dataclass(frozen=True)
class SimulationConfig:
    """Knobs of the generative model (everything but size, seed and output format).

    Every field can be passed to :func:`simulate` as a keyword (``**more_options``).

    Parameters
    ----------
    n_processes : int
        :math:`K`, the number of latent disease processes.
    prevalence_sigma : float
        Standard deviation of the log base prevalence :math:`\\log\\rho_c`; larger
        gives a heavier tail (more rare codes, a few very common ones).
    min_secondary, max_secondary : int
        Each condition loads on a uniform number in ``[min_secondary, max_secondary]``
        of random secondary processes.
    secondary_weight : float
        Secondary loadings are ``Uniform(0.1, 1) * secondary_weight`` (main loading 1).
    loading_noise : float
        Dense unstructured loading mass, as a fraction of each code's structured mass.
    concentration : float
        Total Dirichlet concentration :math:`\\alpha` of a patient's process mixture;
        small values give patients few active processes.
    age_effect : float
        Standard deviation of the per-process age slopes around their chapter mean.
    visit_rate : float
        Mean of the Poisson number of visits after the first (site_A; site_B is
        scaled by ``1 + 0.3 * shift``).
    frailty_sigma : float
        Log-normal spread of the per-patient visit intensity.
    codes_per_visit : float
        Mean of the Poisson number of new conditions per visit beyond the first.
    chronic_share_chronic, chronic_share_other : float
        Probability that a condition is chronic, for chapters that are mostly chronic
        (circulatory, endocrine, ...) and for the others.
    practice_noise : float
        Log-normal sigma of each site's multiplicative noise on code prevalence.
    target_concentration : float
        Dirichlet concentration of site_B's preference over the GEM targets of one
        ICD-9 condition; small values make some targets dominate.
    shift : float
        Strength of the population shift between the sites (0: the same population,
        1: site_B about 12 years older, 2.5x cardio-metabolic prior, more visits).
    process_site_sigma : float
        Log-normal sigma of the site-specific noise on the process prior (scaled by
        ``shift``).
    unshared_share : float
        Share in [0, 1) of the world's conditions that site_B never records
        (``round(unshared_share * C)`` of them, drawn by :func:`draw_unshared`): its
        practice noise :math:`\\epsilon^{(B)}_c` is 0 for them, so its patients draw
        other conditions instead, while site_A records them as usual. Their site_A
        codes have no counterpart at site_B. 0 (the default) changes nothing.
    """

    n_processes: int = 48
    prevalence_sigma: float = 1.8
    min_secondary: int = 1
    max_secondary: int = 3
    secondary_weight: float = 0.8
    loading_noise: float = 0.15
    concentration: float = 1.5
    age_effect: float = 0.5
    visit_rate: float = 4.0
    frailty_sigma: float = 0.5
    codes_per_visit: float = 1.0
    chronic_share_chronic: float = 0.6
    chronic_share_other: float = 0.15
    practice_noise: float = 0.5
    target_concentration: float = 0.6
    shift: float = 1.0
    process_site_sigma: float = 0.5
    unshared_share: float = 0.0

    def __post_init__(self) -> None:
        positive = ("n_processes", "concentration", "target_concentration", "secondary_weight")
        for name in positive:
            if not getattr(self, name) > 0:
                raise MashInputError(f"option {name} must be > 0, got {getattr(self, name)!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not np.isfinite(value)
            ):
                raise MashInputError(f"option {f.name} must be a finite number, got {value!r}")
            if value < 0:
                raise MashInputError(f"option {f.name} must be >= 0, got {value!r}")
        for name in ("n_processes", "min_secondary", "max_secondary"):
            if int(getattr(self, name)) != getattr(self, name):
                raise MashInputError(
                    f"option {name} must be an integer, got {getattr(self, name)!r}"
                )
        if self.min_secondary > self.max_secondary:
            raise MashInputError(
                f"option min_secondary ({self.min_secondary}) must be <= max_secondary ({self.max_secondary})"
            )
        if self.max_secondary >= self.n_processes:
            raise MashInputError(
                f"option max_secondary ({self.max_secondary}) must be < n_processes ({self.n_processes})"
            )
        for name in ("chronic_share_chronic", "chronic_share_other"):
            if getattr(self, name) > 1:
                raise MashInputError(
                    f"option {name} must be in [0, 1], got {getattr(self, name)!r}"
                )
        if self.unshared_share >= 1:
            raise MashInputError(
                f"option unshared_share must be in [0, 1), got {self.unshared_share!r}"
            )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SimulationConfig:
        """Build a config from keyword options; unknown names raise :class:`MashInputError`."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise MashInputError(
                f"unknown simulation option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(valid))}"
            )
        return cls(**options)


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` as an ``int``; a bool, a non-integer or one below ``low`` raises.

    Examples
    --------
    >>> check_int("n_patients", 5, 1)
    5
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise MashInputError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Raise :class:`MashInputError` naming the valid ``choices`` unless ``value`` is one.

    Examples
    --------
    >>> check_choice("events_format", "csv", EVENTS_FORMATS)
    >>> check_choice("events_format", "tsv", EVENTS_FORMATS)
    Traceback (most recent call last):
    ...
    mash.errors.MashInputError: events_format must be one of csv, parquet; got 'tsv'
    """
    if value not in choices:
        raise MashInputError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
