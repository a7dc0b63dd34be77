"""Hyperbolic lowest common ancestors in the Poincaré ball (curvature −1).

The *hyperbolic LCA* of two points (Chami et al., 2020) is the point of the geodesic
between them that lies closest to the origin; its distance to the origin, the *LCA
depth*, says how specific the pair's common ancestor is: two concepts whose geodesic
passes near the origin share only a generic ancestor, two that sit in one narrow cone
share a deep one.

It is computed in the Klein model, where geodesics are straight segments and the
distance to the origin is monotone in the Euclidean norm: the LCA is the Euclidean
projection of the origin onto the segment, and for a Klein point ``k``,
``d(0, k) = artanh(|k|)``. Everything else (distances, exp/log maps, projections) goes
through :mod:`geoopt`.
"""

from __future__ import annotations

import torch

_EPS = 1e-6


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
