"""mash: multi-site alignment of clinical codes.

Public API::

    import mash
    sites = [mash.Site.load("data/sample/site_A"), mash.Site.load("data/sample/site_B")]
    alignment = mash.align(sites, reference="site_B")
    alignment.save("out/sample")
    hierarchy = mash.build_hierarchy(alignment, labels=["icd10cm"])
    hierarchy.save("out/sample/hierarchy.graphml")
    vocab = mash.Vocabulary.from_hierarchy(hierarchy)
    ids = vocab.encode(["42840", "0031"], site="site_A")

Names are imported on first use (PEP 562), so ``import mash`` and the command line's
start-up do not pay for torch and POT until alignment is actually run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mash.align as _align_package  # light; imported first so ``align`` below stays the function
from mash._lazy import lazy_getattr
from mash._version import __version__
from mash.errors import MashError, MashInputError

_LAZY = {
    "AlignConfig": "mash.align.pipeline",
    "FinetuneConfig": "mash.models.config",
    "ModelConfig": "mash.models.config",
    "PretrainConfig": "mash.models.config",
    "Vocabulary": "mash.vocab",
    "finetune_site": "mash.models.pipeline",
    "pretrain_sites": "mash.models.pipeline",
    "Alignment": "mash.align.result",
    "Hierarchy": "mash.hyperbolic.hierarchy",
    "HierarchyConfig": "mash.hyperbolic.build",
    "Site": "mash.sites",
    "build_hierarchy": "mash.hyperbolic.build",
    "simulate": "mash.synth",
}

__all__ = ["MashError", "MashInputError", "__version__", "align", *sorted(_LAZY)]


def align(sites, reference, *, anchors_file=None, config=None, **overrides):  # noqa: ANN001, ANN201
    """Align K ≥ 2 sites to the codes of a reference site.

    For every code of every other site: candidates from each view (raw and normalised
    description embeddings, character and word TF-IDF, mapped co-occurrence vectors)
    by blockwise nearest-neighbour search, a listwise scorer fitted on anchor pairs,
    unbalanced optimal transport over the candidate pairs, and ``p_no_match``; then
    unified concepts. See ``docs/method.md``.

    Parameters
    ----------
    sites : list of Site, length K ≥ 2
        Loaded sites (:meth:`mash.Site.load`), names unique; one of them is ``reference``.
    reference : str
        Name of the reference site (whose codes are the mapping targets).
    anchors_file : str or Path, optional
        CSV of known pairs ``site, code, reference_code`` used as anchors.
    config : AlignConfig, optional
        Every parameter (see :class:`mash.AlignConfig`); defaults when omitted.
    **overrides
        Fields of :class:`mash.AlignConfig` that replace those of ``config``
        (e.g. ``seed=1``, ``candidates=100``, ``cache_dir="/tmp/c"``, ``quiet=True``).

    Returns
    -------
    Alignment
        ``mapping`` (one row per (site, code, candidate): ``site, code,
        reference_code, score, rank, p_no_match``), ``concepts`` (``concept_id, site,
        code, description``), ``embeddings`` (aligned vectors of every (site, code)) and
        ``manifest``; :meth:`Alignment.save` writes them.

    Raises
    ------
    MashInputError
        Fewer than two sites, duplicate site names, an unknown reference, an invalid
        config field, a malformed anchors file or text model directory (one line).

    Warns
    -----
    AlignmentWarning
        No anchors (uncalibrated scores), a scorer or Sinkhorn fit that did not
        converge, ``p_no_match`` not fitted; each also recorded in the manifest.

    Examples
    --------
    >>> import mash
    >>> sites = [mash.Site.load("data/sample/site_A"), mash.Site.load("data/sample/site_B")]
    >>> alignment = mash.align(sites, reference="site_B", quiet=True)  # doctest: +SKIP
    >>> alignment.mapping.columns.tolist()  # doctest: +SKIP
    ['site', 'code', 'reference_code', 'score', 'rank', 'p_no_match']
    """
    from mash.align.pipeline import align as _align

    return _align(sites, reference, anchors_file=anchors_file, config=config, **overrides)


del _align_package

if TYPE_CHECKING:  # pragma: no cover
    from mash.align.pipeline import AlignConfig  # noqa: F401
    from mash.align.result import Alignment  # noqa: F401
    from mash.hyperbolic.build import HierarchyConfig, build_hierarchy  # noqa: F401
    from mash.hyperbolic.hierarchy import Hierarchy  # noqa: F401
    from mash.models.config import FinetuneConfig, ModelConfig, PretrainConfig  # noqa: F401
    from mash.models.pipeline import finetune_site, pretrain_sites  # noqa: F401
    from mash.sites import Site  # noqa: F401
    from mash.synth import simulate  # noqa: F401
    from mash.vocab import Vocabulary  # noqa: F401


__getattr__ = lazy_getattr(globals(), _LAZY)


def __dir__() -> list[str]:
    return sorted(__all__)
