"""Initial token vectors of a vocabulary: hierarchy points mapped to the tangent space.

The map is :func:`mash.hyperbolic.geometry.logmap0`, the one home of the Poincaré-ball
formulas; it is imported when first used, so ``import mash.vocab`` stays free of torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mash.errors import MashInputError
from mash.vocab.layout import SPECIAL_TOKENS

__all__ = ["embedding_init"]

_SPECIAL_INIT_SCALE = 0.01
_SPECIAL_INIT_SEED = 0


def _special_rows(d: int) -> np.ndarray:
    """Init rows of the special tokens: [PAD] zero, the others 0.01·N(0, 1), seed 0; (5, d)."""
    rows = np.zeros((len(SPECIAL_TOKENS), d))
    rng = np.random.default_rng(_SPECIAL_INIT_SEED)
    rows[1:] = _SPECIAL_INIT_SCALE * rng.standard_normal((len(SPECIAL_TOKENS) - 1, d))
    return rows


def embedding_init(points: np.ndarray | None, tokens: Sequence[str]) -> np.ndarray:
    r"""Initial token vectors: the tokens' Poincaré points in the tangent space at the origin.

    Row ``i`` is :math:`\log_0(x_i)` (:func:`mash.hyperbolic.geometry.logmap0`) of token ``i``'s point; the rows
    of the specials are ignored: [PAD] is zero, the other specials are
    ``0.01 · N(0, 1)`` draws (seed 0).

    Parameters
    ----------
    points : ndarray of float64, shape (n, d), or None
        Poincaré points of the tokens (NaN rows where absent), as
        :attr:`Vocabulary.points`.
    tokens : sequence of str, length n
        Token strings (named in the error for a token without a point).

    Returns
    -------
    ndarray of float32, shape (n, d)

    Raises
    ------
    MashInputError
        If ``points`` is None, or a non-special token has no point.

    Examples
    --------
    >>> pts = np.vstack([np.zeros((5, 2)), [[0.5, 0.0]]])
    >>> init = embedding_init(pts, ["t"] * 6)
    >>> init.shape, init.dtype.name, init[0].tolist(), init[5].astype(float).round(4).tolist()
    ((6, 2), 'float32', [0.0, 0.0], [0.5493, 0.0])
    """
    from mash.hyperbolic.geometry import logmap0  # torch and geoopt: only when used

    if points is None:
        raise MashInputError(
            "the hierarchy has no coordinates; embedding_init needs a hyperbolic hierarchy"
        )
    n_sp = len(SPECIAL_TOKENS)
    missing = np.flatnonzero(np.isnan(points[n_sp:]).any(axis=1))
    if missing.size:
        tid = int(missing[0]) + n_sp
        raise MashInputError(
            f"token {tokens[tid]!r} has no coordinates ({missing.size} tokens lack them)"
        )
    out = np.empty(points.shape)
    out[:n_sp] = _special_rows(points.shape[1])
    out[n_sp:] = logmap0(points[n_sp:])
    return out.astype(np.float32)
