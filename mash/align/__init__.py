"""Cross-site alignment: anchors, Procrustes, neural OT, CSLS retrieval, scoring, concepts."""

from mash.align.pipeline import AlignConfig, align
from mash.align.result import Alignment

__all__ = ["AlignConfig", "Alignment", "align"]
