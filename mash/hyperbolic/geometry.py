r"""Poincaré-ball maths (curvature −1), one implementation per formula, on top of geoopt.

Everything mash does in the ball goes through :class:`geoopt.PoincareBall` (distances,
exp/log maps, projections, geodesics, the Riemannian optimiser) except the few formulas
geoopt does not have, or has only in a slower general form; those are here, once each:

- :func:`dist0_from_norm` / :func:`dist0`: the distance to the origin,
  :math:`d(0, x) = 2\operatorname{artanh}\lVert x\rVert`, and :func:`logmap0`, the
  logarithmic map at the origin, for NumPy arrays (``geoopt.PoincareBall().dist0`` and
  ``.logmap0`` for tensors; the tests check they agree);
- :func:`dist_from_parts`: the closed-form distance from squared norms, used by the
  training losses because it is faster than ``geoopt.PoincareBall().dist`` with its
  gradient (equal to it to rounding; see its notes for the measurement);
- the hyperbolic lowest common ancestor (Chami et al., 2020), in the Klein model:
  :func:`lca_depth`, :func:`lca_point` (torch, differentiable, for training) and their
  NumPy twins :func:`lca_depth_np`, :func:`lca_point_np` and :func:`pairwise_lca_depth`
  (for decoding, where torch's per-call cost would dominate; the tests check that the
  twins agree).

The *hyperbolic LCA* of two points is the point of the geodesic between them that lies
closest to the origin; its distance to the origin, the *LCA depth*, says how specific
the pair's common ancestor is: two concepts whose geodesic passes near the origin share
only a generic ancestor, two that sit in one narrow cone share a deep one. In the Klein
model geodesics are straight segments and the distance to the origin is monotone in the
Euclidean norm: the LCA is the Euclidean projection of the origin onto the segment, and
for a Klein point ``k``, ``d(0, k) = artanh(|k|)``.

References
----------
I. Chami, A. Gu, V. Chatziafratis and C. Ré, "From trees to continuous embeddings and
back: hyperbolic hierarchical clustering", NeurIPS 2020.
"""

from __future__ import annotations

import geoopt
import numpy as np
import torch

from mash.errors import MashInputError

__all__ = [
    "curvature",
    "dist0",
    "dist0_from_norm",
    "dist_from_parts",
    "klein_to_poincare",
    "lca_depth",
    "lca_depth_np",
    "lca_point",
    "lca_point_np",
    "pairwise_lca_depth",
    "logmap0",
    "poincare_to_klein",
]

_EPS = 1e-6  # Klein points stay at norm <= 1 - _EPS


# --------------------------------------------------------------------------- origin


def dist0_from_norm(norm: np.ndarray | float, *, max_norm: float | None = None) -> np.ndarray:
    r"""Hyperbolic distance to the origin of a point with Euclidean norm ``norm``.

    .. math:: d(0, x) = 2 \operatorname{artanh} \lVert x \rVert

    Parameters
    ----------
    norm : ndarray or float, shape (...)
        Euclidean norms in ``[0, 1)``.
    max_norm : float, optional
        Norms are first clipped to this value (keeps the result finite at the boundary).

    Returns
    -------
    ndarray of float64, shape (...)
        (a NumPy scalar for a float input).

    Examples
    --------
    >>> round(float(dist0_from_norm(0.5)), 6)
    1.098612
    """
    r = np.asarray(norm, dtype=np.float64)
    if max_norm is not None:
        r = np.minimum(r, max_norm)
    return 2.0 * np.arctanh(r)


def dist0(x: np.ndarray, *, max_norm: float | None = None) -> np.ndarray:
    """:func:`dist0_from_norm` of points: ``geoopt.PoincareBall().dist0`` for NumPy arrays.

    Parameters
    ----------
    x : ndarray, shape (..., d)
    max_norm : float, optional
        See :func:`dist0_from_norm`.

    Returns
    -------
    ndarray of float64, shape (...)

    Examples
    --------
    >>> dist0(np.array([[0.0, 0.0], [0.6, 0.0]])).round(6).tolist()
    [0.0, 1.386294]
    """
    return dist0_from_norm(np.linalg.norm(np.asarray(x, dtype=np.float64), axis=-1), max_norm=max_norm)


def logmap0(x: np.ndarray) -> np.ndarray:
    r"""Logarithmic map at the origin of the Poincaré ball (curvature −1).

    .. math:: \log_0(x) = \operatorname{artanh}(\lVert x\rVert)\,\frac{x}{\lVert x\rVert},
              \qquad \log_0(0) = 0,

    the same map as ``geoopt.PoincareBall(c=1).logmap0``, for NumPy arrays; the norm of
    :math:`\log_0(x)` is half of :func:`dist0`.

    Parameters
    ----------
    x : ndarray of float, shape (n, d)
        Points strictly inside the unit ball.

    Returns
    -------
    ndarray of float64, shape (n, d)
        Tangent vectors at the origin.

    Raises
    ------
    MashInputError
        If a point has norm ≥ 1 or is not finite.

    Examples
    --------
    >>> logmap0(np.array([[0.5, 0.0], [0.0, 0.0]])).round(4).tolist()
    [[0.5493, 0.0], [0.0, 0.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    bad = ~np.isfinite(norm[..., 0]) | (norm[..., 0] >= 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        raise MashInputError(
            f"point {i} is not strictly inside the unit ball (norm {norm.reshape(-1)[i]:.6g})"
        )
    safe = np.where(norm > 0, norm, 1.0)
    return 0.5 * dist0_from_norm(norm) * x / safe  # 0.5 * (2 * a) == a exactly


# --------------------------------------------------------------------------- distances


def curvature(manifold: geoopt.manifolds.Manifold) -> torch.Tensor | None:
    """``c = -k`` of a Poincaré ball, ``0`` for flat space, ``None`` for anything else.

    Examples
    --------
    >>> float(curvature(geoopt.PoincareBall())), float(curvature(geoopt.Euclidean(ndim=1)))
    (1.0, 0.0)
    """
    if isinstance(manifold, geoopt.PoincareBall):
        return -manifold.k
    if isinstance(manifold, geoopt.Euclidean) and manifold.ndim == 1:
        return torch.zeros(())
    return None


def dist_from_parts(
    x2: torch.Tensor, t2: torch.Tensor, d2: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    r"""Distances from squared norms ``x2`` (B, 1), ``t2`` (B, T) and ``d2 = |x - t|^2``.

    With ``c > 0`` the Poincaré distance of curvature ``-c``,

    .. math::

        d(x, t) = \frac{1}{\sqrt c}\operatorname{arcosh}\Big(1 + \frac{2c|x - t|^2}
                  {(1 - c|x|^2)(1 - c|t|^2)}\Big),

    evaluated as ``log1p(z + sqrt(z (z + 2)))`` for accuracy near zero; with ``c == 0``
    the Euclidean distance. Shapes broadcast; the result has the shape of ``d2``.
    Squared distances below machine epsilon are clamped (zero gradient there instead of
    an infinite one).

    Notes
    -----
    Equal to ``geoopt.PoincareBall().dist`` to rounding (``tests/test_geometry.py``) and
    faster, since no ``(B, T, d)`` Möbius addition is formed. Distances of B=4096 queries
    to T=51 targets (a positive and 50 negatives) in d=10, float64, forward and backward,
    one thread, best of 20 on a shared 2-core machine: 80 ms with this function
    (squared norms and differences included) against 152 ms for
    ``geoopt.PoincareBall().dist`` (1.9x; medians 100 ms against 230 ms). Earlier,
    in a whole training step of :func:`mash.hyperbolic.embed.ranking_loss`: 3.4x.
    """
    eps = torch.finfo(d2.dtype).eps
    if float(c) == 0.0:
        return d2.clamp_min(eps * eps).sqrt()
    c = c.to(d2.dtype)
    z = (2.0 * c * d2 / ((1.0 - c * x2) * (1.0 - c * t2))).clamp_min(eps)
    return torch.log1p(z + (z * (z + 2.0)).sqrt()) / c.sqrt()


# --------------------------------------------------------------------------- LCA


def poincare_to_klein(x: torch.Tensor) -> torch.Tensor:
    r"""Map Poincaré-ball points to the Klein model: :math:`k = 2x / (1 + |x|^2)`.

    Parameters
    ----------
    x : Tensor, shape (..., d)
        Points with :math:`|x| < 1`.

    Returns
    -------
    Tensor, shape (..., d)
    """
    sq = (x * x).sum(-1, keepdim=True)
    return 2.0 * x / (1.0 + sq)


def klein_to_poincare(k: torch.Tensor) -> torch.Tensor:
    r"""Inverse of :func:`poincare_to_klein`: :math:`x = k / (1 + \sqrt{1 - |k|^2})`."""
    sq = (k * k).sum(-1, keepdim=True).clamp(max=1.0 - _EPS)
    return k / (1.0 + torch.sqrt(1.0 - sq))


def _klein_lca(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    kx, ky = poincare_to_klein(x), poincare_to_klein(y)
    direction = ky - kx
    denom = (direction * direction).sum(-1, keepdim=True).clamp_min(1e-15)
    t = (-(kx * direction).sum(-1, keepdim=True) / denom).clamp(0.0, 1.0)
    return kx + t * direction


def lca_depth(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Hyperbolic distance from the origin to the geodesic segment between x and y.

    Parameters
    ----------
    x, y : Tensor, shape (..., d)
        Points of the Poincaré ball (broadcastable).

    Returns
    -------
    Tensor, shape (...)
        ``0`` when the geodesic passes through the origin; ``d(0, x)`` when ``x`` lies
        on the geodesic from the origin to ``y`` (x is then y's ancestor). Differentiable.
    """
    k = _klein_lca(x, y)
    r = torch.sqrt((k * k).sum(-1).clamp_min(1e-30)).clamp(max=1.0 - _EPS)
    return torch.atanh(r)


def lca_point(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The hyperbolic LCA of x and y, as a Poincaré-ball point, shape (..., d)."""
    return klein_to_poincare(_klein_lca(x, y))


def lca_depth_np(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`lca_depth` (no gradients), for decoding.

    The same operations in NumPy: the decoder calls it once per merge or per block of
    pairs, where going through torch cost 1.3-2x the time (1500 x 32 points, one
    thread); ``tests/test_geometry.py`` checks the two agree to 1e-12.

    Parameters
    ----------
    x : ndarray, shape (d,) or (m, d)
    y : ndarray, shape (m, d)

    Returns
    -------
    ndarray, shape (m,)

    Examples
    --------
    >>> y = np.array([[0.5, 0.0], [0.0, 0.5]])
    >>> lca_depth_np(np.array([0.25, 0.0]), y).round(6).tolist()  # first: 2 artanh(0.25)
    [0.510826, 0.430353]
    """
    kx = 2.0 * x / (1.0 + (x * x).sum(-1, keepdims=True))
    ky = 2.0 * y / (1.0 + (y * y).sum(-1, keepdims=True))
    direction = ky - kx
    denom = np.maximum((direction * direction).sum(-1), 1e-15)
    t = np.clip(-(kx * direction).sum(-1) / denom, 0.0, 1.0)
    p = kx + t[:, None] * direction
    r = np.minimum(np.sqrt((p * p).sum(-1)), 1.0 - _EPS)
    return np.arctanh(r)


def lca_point_np(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`lca_point` for one pair: the hyperbolic LCA of x and y.

    Parameters
    ----------
    x, y : ndarray, shape (d,)

    Returns
    -------
    ndarray, shape (d,)
        A Poincaré-ball point (5x faster than through torch for one pair, as the decoder
        calls it once per merge).
    """
    kx = 2.0 * x / (1.0 + (x * x).sum())
    ky = 2.0 * y / (1.0 + (y * y).sum())
    direction = ky - kx
    t = np.clip(-(kx @ direction) / max(direction @ direction, 1e-15), 0.0, 1.0)
    k = kx + t * direction
    sq = min(float(k @ k), 1.0 - _EPS)
    return k / (1.0 + np.sqrt(1.0 - sq))


def pairwise_lca_depth(points: np.ndarray, *, block: int = 1 << 22) -> np.ndarray:
    r"""LCA depths of all pairs of points, condensed like :func:`scipy.spatial.distance.pdist`.

    Points of equal norm (the decoder's case: every concept sits at the same radius) use
    a closed form: two points at Klein radius :math:`\rho` with angle :math:`\theta`
    have their LCA at the chord's midpoint, at Klein radius
    :math:`\rho \cos(\theta / 2)`, so the depth is
    :math:`\operatorname{artanh}(\rho\sqrt{(1 + \cos\theta) / 2})`, computed in place
    on the cosine distances (no second ``m(m-1)/2`` array). Other points go through
    :func:`lca_depth_np` in blocks of ``block`` pairs.

    Parameters
    ----------
    points : ndarray, shape (m, d)
    block : int
        Pairs per block on the general path.

    Returns
    -------
    ndarray of float64, shape (m (m - 1) / 2,)
        Entry for pair ``(i, j)``, ``i < j``, in pdist order.

    Examples
    --------
    >>> x = np.array([[0.5, 0.0], [0.0, 0.5], [-0.5, 0.0]])
    >>> pairwise_lca_depth(x).round(6).tolist()
    [0.641155, 0.0, 0.641155]
    """
    from scipy.spatial.distance import pdist

    m = len(points)
    norms = np.linalg.norm(points, axis=1)
    if m > 1 and np.ptp(norms) < 1e-9:
        rho = 2.0 * norms[0] / (1.0 + norms[0] ** 2)
        depth = pdist(points, metric="cosine")  # 1 - cos(theta)
        np.subtract(1.0, depth / 2.0, out=depth)  # cos^2(theta / 2)
        np.sqrt(np.maximum(depth, 0.0, out=depth), out=depth)
        np.multiply(depth, rho, out=depth)
        np.arctanh(np.minimum(depth, 1.0 - _EPS, out=depth), out=depth)
        return depth
    iu, ju = np.triu_indices(m, 1)
    depth = np.empty(len(iu))
    for s in range(0, len(iu), block):
        a, b = iu[s : s + block], ju[s : s + block]
        depth[s : s + block] = lca_depth_np(points[a], points[b])
    return depth
