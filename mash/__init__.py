"""mash: multi-site alignment of clinical codes.

Public API::

    import mash
    sites = [mash.Site.load("data/sample/site_A"), mash.Site.load("data/sample/site_B")]
    alignment = mash.align(sites, reference="site_B")
    alignment.save("out/")
"""

from mash._version import __version__
from mash.align import AlignConfig, Alignment, align
from mash.errors import MashError, MashInputError
from mash.sites import Site
from mash.synth import simulate

__all__ = [
    "AlignConfig",
    "Alignment",
    "MashError",
    "MashInputError",
    "Site",
    "__version__",
    "align",
    "simulate",
]
