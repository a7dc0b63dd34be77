"""Multi-site simulator on real vocabularies (ICD-9-CM and ICD-10-CM).

Two hospitals see patients drawn from one shared "biology" and record them in two
real coding systems:

- ``site_A`` codes in ICD-9-CM and writes the CMS *short, abbreviated* descriptions;
- ``site_B`` codes in ICD-10-CM (2024) and writes the *long* descriptions. Each
  ICD-9-CM condition is recorded as one of its CMS GEM targets, chosen per event from
  a per-condition preference distribution, so one ICD-9 code spreads over several
  ICD-10 codes and several ICD-9 codes can share one ICD-10 code.

The answer key ``gold.csv`` lists, for every site_A code, its GEM targets that occur
at site_B. With ``reference_vocabulary="full"`` site_B's code list is every ICD-10-CM
code (most without events, as at a hospital that loads the whole standard), and gold
lists every GEM target of a site_A code. With ``unshared_share > 0`` a share of the
conditions is never recorded at site_B: their site_A codes (``unshared.csv``) have no
counterpart there. The simulator is the benchmark the alignment method is tuned against, so
it is deliberately not easy: prevalence is heavy-tailed (many rare codes), the
co-occurrence of each code is code-specific, and the two populations differ.

Generative model
----------------
Conditions :math:`c = 1..C` are ICD-9-CM codes sampled from those whose GEM targets
all exist in ICD-10-CM 2024. Each has a log-normal base prevalence
:math:`\\rho_c`, a recurrence probability :math:`r_c` (chronic codes recur at later
visits) and a sparse loading vector :math:`W_{c\\cdot}` over :math:`K` latent disease
processes: a *main* process shared by its CCS category (categories of one ICD-9
chapter draw from one pool of processes), one to three random secondary processes
with random weights, and a dense noise floor.

A patient :math:`p` of site :math:`s` has an age :math:`a_p`, a frailty :math:`f_p`
and a sparse mixture over processes

.. math::
    \\theta_p \\sim \\mathrm{Dirichlet}\\big(\\alpha\\,\\mathrm{softmax}(\\log\\pi^{(s)}
    + \\beta\\,\\tilde a_p)\\big),

with a site prior :math:`\\pi^{(s)}` (site_B older and more cardio-metabolic). The
patient has :math:`1 + \\mathrm{Poisson}(\\lambda^{(s)} f_p)` visits spread over one to
three years with exponential gaps; each visit adds :math:`1 + \\mathrm{Poisson}(\\mu)`
new conditions drawn as

.. math::
    P(c \\mid p) \\propto \\rho_c\\, \\epsilon^{(s)}_c \\sum_k W_{ck}\\, \\theta_{pk},

where :math:`\\epsilon^{(s)}_c` is site-specific log-normal practice noise (0 at
site_B for the unshared conditions, :func:`draw_unshared`). A
condition first seen at visit :math:`v` is recorded again at each later visit with
probability :math:`r_c`.

More sites and domains
----------------------
``n_sites > 2`` adds ICD-10-CM sites site_C, ... with their own populations (their own
random streams: site_A's and site_B's files do not change). ``domains`` adds labs and
medications (:mod:`~mash.synth.clinical`, :mod:`~mash.synth.domains`): every lab test
of a real LOINC catalog and every drug ingredient loads on the same latent processes as
the conditions, so tests, drugs and diagnoses co-occur by biology; lab values follow the
patient's process activity; the reference writes LOINC and RxNorm ingredient names, the
other sites local ids with names, units and formularies in their own habits.

Every stage is a pure function of its inputs and a ``numpy.random.Generator``:
:func:`sample_world`, :func:`site_profiles`, :func:`simulate_patients` (the latent
state, kept for outcome models), :func:`record_events` (coding) and
:func:`gold_pairs`. :func:`simulate_latent` reproduces the latent state of
:func:`simulate` for the same arguments; :func:`simulate` writes the site
directories.

Outcomes
--------
:func:`simulate_outcomes` turns a site's latent state into prediction targets for
sequence models. They are defined on the latent conditions and processes, not on the
site's codes, so they mean the same at both sites. A patient's
index time :math:`t_p` is the day of visit :math:`\\lfloor (n_p-1)/2 \\rfloor`; the
history is every record on or before it, the outcome window
:math:`(t_p, t_p + H]` (:math:`H` = 365 days by default).

- ``onset``: an incident record, in the window, of a condition of the target set
  :math:`T` (:func:`outcome_targets`: the chronic conditions of the mostly-chronic
  chapters). Patients with a :math:`T` record in their history are not at risk and
  are left out of the cohort (missing value).
- ``burden``: :math:`\\log(1 + \\sum_c s_c)` over the distinct conditions recorded in
  the window, with severity :math:`s_c = 1 + 2 r_c` (:func:`condition_severity`).
- ``event``: a cardiometabolic event in the window (the only outcome with its own
  random draw), with probability :math:`\\sigma(-3 + 8\\,\\theta_p^\\top m)` where
  :math:`m` flags the processes serving the circulatory and endocrine chapters
  (:func:`event_processes`). It is not a code: what predicts it is *which* conditions
  the history holds, not how many visits it has.

``onset`` and ``burden`` depend on the history through :math:`\\theta_p` (the same
processes generate past and future conditions), the chronic recurrences and the visit
rate; ``event`` through :math:`\\theta_p` alone.

Modules
-------
One stage each; every public name is also importable from :mod:`mash.synth`.

- :mod:`~mash.synth.reference`: the real vocabularies (ICD-9-CM, ICD-10-CM, GEM, CCS)
  and the ICD-9-CM chapters;
- :mod:`~mash.synth.config`: :class:`SimulationConfig`, the named choices, argument checks;
- :mod:`~mash.synth.world`: the latent world (:func:`sample_world`);
- :mod:`~mash.synth.profiles`: the two sites (:func:`site_profiles`, :func:`draw_unshared`);
- :mod:`~mash.synth.patients`: one site's latent patients (:func:`simulate_patients`);
- :mod:`~mash.synth.coding`: coding into a site's vocabulary, the gold pairs;
- :mod:`~mash.synth.outcomes`: prediction targets (:func:`simulate_outcomes`);
- :mod:`~mash.synth.labs_catalog`, :mod:`~mash.synth.drugs_catalog`: the real lab tests
  (LOINC, reference intervals, SI factors) and drug ingredients (RxNorm, brand names);
- :mod:`~mash.synth.local_names`: each local site's naming habits;
- :mod:`~mash.synth.clinical`: lab orders and values, medication orders;
- :mod:`~mash.synth.domains`: labs and medications of every site as tables and gold;
- :mod:`~mash.synth.write`: the codes, events, gold and key tables, and writing them;
- :mod:`~mash.synth.pipeline`: :func:`simulate_latent` and :func:`simulate`.
"""

from __future__ import annotations

from mash.synth.coding import SiteRecords, gold_pairs, record_events
from mash.synth.config import (
    DOMAINS,
    EVENTS_FORMATS,
    REFERENCE_VOCABULARIES,
    SITES,
    SimulationConfig,
)
from mash.synth.outcomes import (
    EVENT_CHAPTERS,
    OUTCOME_COLUMNS,
    condition_severity,
    event_processes,
    outcome_targets,
    simulate_outcomes,
)
from mash.synth.patients import PatientState, simulate_patients
from mash.synth.pipeline import LatentSimulation, SimulationResult, simulate, simulate_latent
from mash.synth.profiles import SiteProfile, draw_unshared, site_names, site_profiles
from mash.synth.reference import (
    CHAPTER_NAMES,
    ReferenceTables,
    icd9_chapter,
    load_reference_tables,
)
from mash.synth.world import World, sample_world

__all__ = [
    "LatentSimulation",
    "PatientState",
    "ReferenceTables",
    "SimulationConfig",
    "SimulationResult",
    "SiteProfile",
    "SiteRecords",
    "World",
    "CHAPTER_NAMES",
    "DOMAINS",
    "EVENT_CHAPTERS",
    "EVENTS_FORMATS",
    "OUTCOME_COLUMNS",
    "REFERENCE_VOCABULARIES",
    "SITES",
    "condition_severity",
    "draw_unshared",
    "event_processes",
    "gold_pairs",
    "icd9_chapter",
    "load_reference_tables",
    "outcome_targets",
    "record_events",
    "sample_world",
    "simulate",
    "simulate_latent",
    "simulate_outcomes",
    "simulate_patients",
    "site_names",
    "site_profiles",
]
