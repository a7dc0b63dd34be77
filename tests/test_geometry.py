"""Poincaré-ball maths (mash.hyperbolic.geometry) against geoopt, and torch against NumPy."""

from __future__ import annotations

import geoopt
import numpy as np
import pytest
import torch

from mash.errors import MashInputError
from mash.hyperbolic.geometry import (
    curvature,
    dist0,
    dist0_from_norm,
    dist_from_parts,
    lca_depth,
    lca_depth_np,
    lca_point,
    lca_point_np,
    logmap0,
    pairwise_lca_depth,
)

BALL = geoopt.PoincareBall()


def ball_points(n: int, d: int, seed: int = 0, max_norm: float = 0.95) -> np.ndarray:
    """Random points inside the ball, norms spread over (0, max_norm)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True) * rng.uniform(0, max_norm, (n, 1))


@pytest.mark.parametrize("d", [2, 10, 32])
def test_dist_from_parts_equals_geoopt(d):
    x = torch.from_numpy(ball_points(64, d, 1))
    t = torch.from_numpy(ball_points(64 * 7, d, 2)).view(64, 7, d)
    x2 = (x * x).sum(-1, keepdim=True)
    t2 = (t * t).sum(-1)
    d2 = (t - x.unsqueeze(-2)).pow(2).sum(-1)
    got = dist_from_parts(x2, t2, d2, curvature(BALL))
    want = BALL.dist(x.unsqueeze(-2), t)
    assert got.shape == (64, 7)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    flat = dist_from_parts(x2, t2, d2, curvature(geoopt.Euclidean(ndim=1)))
    torch.testing.assert_close(flat, geoopt.Euclidean(ndim=1).dist(x.unsqueeze(-2), t))
    assert curvature(geoopt.Sphere()) is None


def test_dist_from_parts_gradient_finite_at_coincident_points():
    x = torch.tensor([[0.2, 0.1]], dtype=torch.float64, requires_grad=True)
    t = x.detach().clone().unsqueeze(1)
    d = dist_from_parts((x * x).sum(-1, keepdim=True), (t * t).sum(-1), (t - x.unsqueeze(1)).pow(2).sum(-1), torch.ones(()))
    d.sum().backward()
    assert torch.isfinite(x.grad).all() and float(d.detach()) < 1e-7


def test_dist0_and_logmap0_equal_geoopt():
    x = ball_points(200, 6, 3, max_norm=1 - 1e-5)
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(dist0(x), BALL.dist0(xt).numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(logmap0(x), BALL.logmap0(xt).numpy(), rtol=1e-12, atol=1e-12)
    norms = np.linalg.norm(x, axis=1)
    assert (dist0_from_norm(norms) == dist0(x)).all()
    np.testing.assert_allclose(np.linalg.norm(logmap0(x), axis=1), dist0(x) / 2, rtol=1e-12)
    assert float(dist0_from_norm(1.0, max_norm=1 - 1e-6)) == float(2 * np.arctanh(1 - 1e-6))
    assert logmap0(np.zeros((1, 3))).tolist() == [[0.0, 0.0, 0.0]]


@pytest.mark.parametrize("bad", [np.array([[1.0, 0.0]]), np.array([[0.1, np.nan]])])
def test_logmap0_rejects_points_outside_the_ball(bad):
    with pytest.raises(MashInputError, match="strictly inside"):
        logmap0(bad)


def test_lca_depth_geometry():
    torch.manual_seed(0)
    y = torch.randn(20, 5, dtype=torch.float64)
    y = 0.8 * y / y.norm(dim=1, keepdim=True)
    x = 0.5 * y  # on the geodesic from the origin to y: x is y's ancestor
    assert torch.allclose(lca_depth(x, y), BALL.dist0(x), atol=1e-9)
    assert torch.allclose(lca_depth(y, -y), torch.zeros(20, dtype=torch.float64), atol=1e-6)
    z = torch.randn(20, 5, dtype=torch.float64)
    z = 0.7 * z / z.norm(dim=1, keepdim=True)
    assert torch.allclose(lca_depth(y, z), lca_depth(z, y), atol=1e-12)
    d = lca_depth(y, z)
    assert bool(((d <= BALL.dist0(y) + 1e-9) & (d <= BALL.dist0(z) + 1e-9)).all())
    p = lca_point(y, z)
    assert torch.allclose(BALL.dist0(p), d, atol=1e-6)
    assert bool((p.norm(dim=1) < 1).all())


@pytest.mark.parametrize("d", [2, 10, 32])
def test_numpy_lca_twins_equal_torch(d):
    x, y = ball_points(300, d, 5), ball_points(300, d, 6)
    want = lca_depth(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(lca_depth_np(x, y), want, rtol=1e-12, atol=1e-12)
    one = lca_depth(torch.from_numpy(x[:1]), torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(lca_depth_np(x[:1], y), one, rtol=1e-12, atol=1e-12)
    pts = lca_point(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    got = np.stack([lca_point_np(a, b) for a, b in zip(x, y, strict=True)])
    np.testing.assert_allclose(got, pts, rtol=1e-12, atol=1e-12)


def test_pairwise_lca_depth_closed_form_equals_general_formula():
    x = ball_points(40, 6, 7)
    x = 0.9 * x / np.linalg.norm(x, axis=1, keepdims=True)  # equal norms: the closed form
    iu, ju = np.triu_indices(len(x), 1)
    general = lca_depth_np(x[iu], x[ju])
    np.testing.assert_allclose(pairwise_lca_depth(x), general, rtol=1e-9, atol=1e-9)
    y = x * np.linspace(0.5, 1.0, len(x))[:, None]  # unequal norms: the general path, in blocks
    iu, ju = np.triu_indices(len(y), 1)
    assert np.array_equal(pairwise_lca_depth(y, block=7), lca_depth_np(y[iu], y[ju]))
