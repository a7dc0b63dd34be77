"""Orthogonal Procrustes."""

from __future__ import annotations

import numpy as np


def procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Orthogonal map from ``x`` to ``y``.

    .. math:: W^\star = \arg\min_{W^\top W = I} \lVert X W - Y \rVert_F = U V^\top,
       \quad U \Sigma V^\top = \operatorname{svd}(X^\top Y)

    Parameters
    ----------
    x, y : ndarray, shape (n_pairs, d)
        Paired rows (anchor i of the source is row i of ``x``).

    Returns
    -------
    ndarray, shape (d, d)
        Orthogonal ``W``; map source vectors with ``x @ W``.
    """
    if x.shape != y.shape:
        raise ValueError(f"procrustes needs equal shapes, got {x.shape} and {y.shape}")
    u, _, vt = np.linalg.svd(x.T.astype(np.float64) @ y.astype(np.float64))
    return (u @ vt).astype(np.float32)
