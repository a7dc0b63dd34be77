"""Cross-site alignment: anchors, Procrustes, neural OT, CSLS retrieval, scoring, concepts.

``AlignConfig``, ``Alignment`` and ``align`` are imported on first use, so importing this
package (which ``import mash`` does) does not load torch or POT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mash._lazy import lazy_getattr

_LAZY = {"AlignConfig": "mash.align.pipeline", "align": "mash.align.pipeline", "Alignment": "mash.align.result"}
__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from mash.align.pipeline import AlignConfig, align  # noqa: F401
    from mash.align.result import Alignment  # noqa: F401


__getattr__ = lazy_getattr(globals(), _LAZY)
