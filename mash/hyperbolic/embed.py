r"""Poincaré-ball embedding of aligned concepts and their known groups.

Two objectives, trained jointly with :class:`geoopt.optim.RiemannianAdam`:

1. **HypHC triplet objective** (Chami et al., 2020, "From trees to continuous
   embeddings and back"). For a triplet of concepts :math:`(i, j, k)` with similarities
   :math:`w_{ij}, w_{ik}, w_{jk}`, a continuous relaxation of Dasgupta's cost

   .. math::
       L_{ijk} = w_{ij} + w_{ik} + w_{jk}
                 - \sum_{(a,b)} w_{ab}\,\sigma_\tau(\delta_{ij}, \delta_{ik}, \delta_{jk})_{ab}

   where :math:`\delta_{ab}` is the depth (distance to the origin) of the hyperbolic
   LCA of :math:`a, b` (:func:`mash.hyperbolic.geometry.lca_depth`) and :math:`\sigma_\tau` a softmax
   with temperature :math:`\tau`: the most similar pair of each triplet should have the
   deepest common ancestor. As in HypHC, concepts live on a sphere of fixed hyperbolic
   radius, so the hierarchy is carried by their directions and by the LCAs.
   Similarity :math:`w` is the cosine of the aligned vectors (text ⊕ co-occurrence),
   mixed with label similarity (the depth of the shared known group) where both
   concepts have labels. Triplets are drawn as (i, a k-nearest neighbour of i, a
   random concept), so that informative triplets are frequent.

2. **Nickel & Kiela (2017) ranking loss** (:func:`ranking_loss`) on the closure of
   the known groups (concept → each group above it, group → each group above it),
   with group nodes as free points of the ball: groups settle between the origin and
   their members, generic groups nearest the origin.

Points never leave the ball: concept points are ``radius · u / |u|`` with
``radius < 1``, group points are :class:`geoopt.ManifoldParameter` projected by the
optimiser, and a non-finite loss stops training with an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import geoopt
import numpy as np
import torch

from mash.errors import MashError
from mash.hyperbolic.geometry import curvature, dist0_from_norm, dist_from_parts, lca_depth
from mash.progress import bar
from mash.trees import transitive_closure


@dataclass
class HierarchyEmbedding:
    """Result of :func:`fit_hierarchy_embedding`.

    Attributes
    ----------
    items : ndarray, shape (n, dim)
        Concept points (Poincaré ball, curvature −1), all at Euclidean norm ``radius``.
    labels : ndarray, shape (L, dim)
        Known-group points.
    losses : list of float
        Mean total loss per epoch.
    """

    items: np.ndarray
    labels: np.ndarray
    radius: float
    losses: list[float] = field(default_factory=list)
    triplets_per_s: float = 0.0


def label_similarity(paths_a: torch.Tensor, paths_b: torch.Tensor) -> torch.Tensor:
    """Depth of the deepest shared known group over the longer path (0 … 1).

    Parameters
    ----------
    paths_a, paths_b : Tensor, shape (B, P)
        Label paths, root side first, padded with −1.

    Returns
    -------
    Tensor, shape (B,)
        1 for two concepts in the same group, 0 when they share nothing (or either
        has no label).
    """
    same = (paths_a == paths_b) & (paths_a >= 0)
    shared = torch.cumprod(same.to(torch.int64), dim=1).sum(1)
    longest = torch.maximum((paths_a >= 0).sum(1), (paths_b >= 0).sum(1)).clamp_min(1)
    return shared.to(torch.float64) / longest.to(torch.float64)


def triplet_lca_loss(
    w: torch.Tensor, depths: torch.Tensor, temperature: float
) -> torch.Tensor:
    """HypHC's relaxed Dasgupta objective for a batch of triplets.

    Parameters
    ----------
    w : Tensor, shape (B, 3)
        Similarities of pairs (i,j), (i,k), (j,k).
    depths : Tensor, shape (B, 3)
        LCA depths of the same pairs, scaled to [0, 1].
    temperature : float

    Returns
    -------
    Tensor, scalar
        Mean over the batch.
    """
    soft = torch.softmax(depths / temperature, dim=1)
    return (w.sum(1) - (w * soft).sum(1)).mean()


def _loss_from_dist(dist: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``logsumexp(-dist) + dist[:, 0]``; column 0 is the positive."""
    return (torch.logsumexp(-dist, dim=-1) + dist[:, 0]).mean()


def ranking_loss(
    manifold: geoopt.manifolds.Manifold,
    u: torch.Tensor,
    v: torch.Tensor,
    negatives: torch.Tensor,
) -> torch.Tensor:
    """Nickel–Kiela softmax ranking loss, averaged over the batch.

    .. math::

        \\frac{1}{B}\\sum_{b} \\Big[\\log\\big(e^{-d(u_b, v_b)}
        + \\sum_k e^{-d(u_b, n_{bk})}\\big) + d(u_b, v_b)\\Big]

    computed with ``logsumexp``. ``d`` is ``manifold.dist``; for
    :class:`geoopt.PoincareBall` and ``geoopt.Euclidean(ndim=1)`` it is evaluated in
    closed form by :func:`mash.hyperbolic.geometry.dist_from_parts` (the same values as
    ``manifold.dist`` to rounding, and faster; see there); any other manifold uses
    ``manifold.dist``.

    Parameters
    ----------
    manifold : geoopt.manifolds.Manifold
        Gives the distance, e.g. ``geoopt.PoincareBall()`` or ``geoopt.Euclidean(ndim=1)``.
    u : torch.Tensor, shape (B, d)
        Query points (children).
    v : torch.Tensor, shape (B, d)
        Positive points (ancestors).
    negatives : torch.Tensor, shape (B, K, d)
        Negative points for each query.

    Returns
    -------
    torch.Tensor, shape ()
        The mean loss.
    """
    targets = torch.cat([v.unsqueeze(-2), negatives], dim=-2)  # (B, 1 + K, d)
    c = curvature(manifold)
    if c is None:
        dist = manifold.dist(u.unsqueeze(-2), targets)
    else:
        x2 = (u * u).sum(-1, keepdim=True)
        t2 = (targets * targets).sum(-1)
        d2 = (targets - u.unsqueeze(-2)).pow(2).sum(-1)  # no cancellation, any dtype
        dist = dist_from_parts(x2, t2, d2, c)
    return _loss_from_dist(dist)


def _closure(label_paths: np.ndarray, label_parent: np.ndarray, n_items: int) -> np.ndarray:
    """(child node, ancestor node) pairs; items are 0..n−1, groups n..n+L−1.

    Each concept's path (root side first) comes first, in row order, then every group's
    ancestors, nearest first (:func:`mash.trees.transitive_closure`).
    """
    items, cols = np.nonzero(label_paths >= 0)
    rows = np.stack([items, n_items + label_paths[items, cols]], 1).astype(np.int64)
    groups = n_items + transitive_closure(np.asarray(label_parent, dtype=np.int64))
    return np.concatenate([rows.reshape(-1, 2), groups])


def fit_hierarchy_embedding(
    vectors: np.ndarray,
    neighbours: np.ndarray,
    label_paths: np.ndarray,
    label_parent: np.ndarray,
    *,
    dim: int = 10,
    epochs: int = 40,
    batch_size: int = 4096,
    lr: float = 0.05,
    temperature: float = 0.05,
    label_weight: float = 0.5,
    ranking_weight: float = 1.0,
    n_negatives: int = 10,
    radius: float = 0.9,
    seed: int = 0,
    quiet: bool = True,
) -> HierarchyEmbedding:
    """Embed concepts (and known groups) in the Poincaré ball.

    Parameters
    ----------
    vectors : ndarray, shape (n, D)
        L2-normalised aligned concept vectors.
    neighbours : ndarray, shape (n, k)
        Indices of each concept's k nearest neighbours (by ``vectors``).
    label_paths : ndarray, shape (n, P)
        Known-group path of each concept, root side first, −1 padded
        (:meth:`LabelForest.ancestor_matrix`); all −1 when there are no labels.
    label_parent : ndarray, shape (L,)
        Parent of each group (−1 for a top group).
    dim : int
        Dimension of the ball.
    epochs : int
        Each epoch draws ``n`` triplets (and as many closure relations).
    radius : float
        Euclidean norm of every concept point, in (0, 1).
    seed : int
        Seeds initialisation and sampling; the same inputs and seed give the same points.

    Returns
    -------
    HierarchyEmbedding
    """
    n = len(vectors)
    n_labels = len(label_parent)
    if n < 2:
        raise MashError("a hierarchy needs at least two concepts")
    if not 0.0 < radius < 1.0:
        raise MashError(f"radius must be in (0, 1), got {radius}")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    ball = geoopt.PoincareBall()
    vec = torch.as_tensor(np.ascontiguousarray(vectors), dtype=torch.float64)
    nbr = torch.as_tensor(np.ascontiguousarray(neighbours), dtype=torch.int64)
    paths = torch.as_tensor(np.ascontiguousarray(label_paths), dtype=torch.int64)
    has_label = (paths >= 0).any(1)
    # initial directions: a random projection of the aligned vectors, so that similar
    # concepts start close (HypHC starts at random; this converges in fewer epochs)
    proj = torch.randn(vec.shape[1], dim, generator=gen, dtype=torch.float64)
    directions = torch.nn.Parameter(vec @ proj + 1e-3 * torch.randn(n, dim, generator=gen, dtype=torch.float64))
    params: list[torch.nn.Parameter] = [directions]
    closure = _closure(label_paths, label_parent, n)
    groups = None
    if n_labels:
        # a group starts near the origin, in the mean direction of its members
        init = torch.zeros(n_labels, dim, dtype=torch.float64)
        count = torch.zeros(n_labels, dtype=torch.float64)
        d0 = directions.detach() / directions.detach().norm(dim=1, keepdim=True).clamp_min(1e-12)
        anc = torch.as_tensor(closure[closure[:, 0] < n])
        if len(anc):
            init.index_add_(0, anc[:, 1] - n, d0[anc[:, 0]])
            count.index_add_(0, anc[:, 1] - n, torch.ones(len(anc), dtype=torch.float64))
        init = init / count.clamp_min(1).unsqueeze(1)
        init = 0.1 * init / init.norm(dim=1, keepdim=True).clamp_min(1e-12)
        groups = geoopt.ManifoldParameter(ball.projx(init), manifold=ball)
        params.append(groups)
    opt = geoopt.optim.RiemannianAdam(params, lr=lr, stabilize=10)
    max_depth = float(dist0_from_norm(radius))
    steps = max(1, int(np.ceil(n / batch_size)))
    k_nbr = nbr.shape[1]
    losses: list[float] = []
    t0 = time.perf_counter()
    for _epoch in bar(range(epochs), "hyperbolic embedding", quiet=quiet):
        total = 0.0
        for _ in range(steps):
            i = torch.randint(0, n, (batch_size,), generator=gen)
            j = nbr[i, torch.randint(0, k_nbr, (batch_size,), generator=gen)]
            k = torch.randint(0, n, (batch_size,), generator=gen)
            pts = radius * directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
            pairs = ((i, j), (i, k), (j, k))
            with torch.no_grad():
                w = []
                for a, b in pairs:
                    s = (vec[a] * vec[b]).sum(1).clamp_min(0.0)
                    if n_labels:
                        both = has_label[a] & has_label[b]
                        mixed = (1 - label_weight) * s + label_weight * label_similarity(paths[a], paths[b])
                        s = torch.where(both, mixed, s)
                    w.append(s)
                w = torch.stack(w, 1)
            depth = torch.stack(
                [lca_depth(pts.index_select(0, a), pts.index_select(0, b)) for a, b in pairs], 1
            ) / max_depth
            loss = triplet_lca_loss(w, depth, temperature)
            if groups is not None and len(closure):
                rel = closure[rng.integers(0, len(closure), size=batch_size)]
                neg = n + rng.integers(0, n_labels, size=(batch_size, n_negatives))
                allp = torch.cat([pts, groups], 0)
                u = allp.index_select(0, torch.as_tensor(rel[:, 0]))
                v = allp.index_select(0, torch.as_tensor(rel[:, 1]))
                negs = allp.index_select(0, torch.as_tensor(neg.ravel())).view(batch_size, n_negatives, -1)
                loss = loss + ranking_weight * ranking_loss(ball, u, v, negs)
            if not torch.isfinite(loss):
                raise MashError("hyperbolic training diverged (non-finite loss); lower --lr")
            opt.zero_grad()
            loss.backward()
            opt.step()
            if groups is not None:
                with torch.no_grad():
                    groups.data.copy_(ball.projx(groups.data))
            total += float(loss.detach())
        losses.append(total / steps)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        pts = radius * directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
        items = pts.numpy().copy()
        labels = groups.detach().numpy().copy() if groups is not None else np.zeros((0, dim))
    if not (np.isfinite(items).all() and np.isfinite(labels).all()):
        raise MashError("hyperbolic training produced non-finite points")
    return HierarchyEmbedding(
        items=items,
        labels=labels,
        radius=radius,
        losses=losses,
        triplets_per_s=epochs * steps * batch_size / max(seconds, 1e-9),
    )
