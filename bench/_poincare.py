"""Poincaré embeddings of a known hierarchy (Nickel & Kiela, 2017), trained with geoopt.

Benchmark code (``bench/_reconstruction.py``), not part of the mash package: the
library's hierarchy embedding is :mod:`mash.hyperbolic.embed`, which shares the loss
(:func:`mash.hyperbolic.embed.ranking_loss`) and the closed-form distance
(:func:`mash.hyperbolic.geometry.dist_from_parts`) with this module.

The hierarchy is a forest given by a parent array. Its transitive closure gives the
training relations ``(child, ancestor)``; each relation ``(u, v)`` is scored against
``K`` uniformly sampled negatives ``n_k`` that are neither ``u`` nor related to ``u``:

.. math::

    \\mathcal{L}(u, v) = -\\log \\frac{e^{-d(u, v)}}{e^{-d(u, v)} + \\sum_{k=1}^{K} e^{-d(u, n_k)}}

with :math:`d` the Poincaré-ball distance (or the Euclidean distance for the baseline).
Points are one :class:`geoopt.ManifoldParameter` optimised by
:class:`geoopt.optim.RiemannianAdam`, whose retraction projects them strictly inside
the ball after every step. :func:`fit_ranking` follows the paper's schedule (burn-in at
a small learning rate with frequency-dampened negatives) and is vectorised throughout:
negatives for a whole batch in a few ``np.searchsorted`` calls, prepared in a second
thread, and one gather of all points a batch touches.

References
----------
M. Nickel and D. Kiela, "Poincaré Embeddings for Learning Hierarchical Representations",
NeurIPS 2017.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import geoopt
import numpy as np
import torch

from mash._rng import isolated_torch_rng
from mash.errors import MashError
from mash.hyperbolic.geometry import curvature, dist_from_parts
from mash.progress import bar
from mash.trees import check_parent, depths

__all__ = [
    "GEOMETRIES",
    "PoincareFit",
    "fit_ranking",
    "make_manifold",
    "pair_keys",
    "sample_negatives",
    "tree_init",
]

#: Geometry name -> factory of the geoopt manifold holding the points.
GEOMETRIES: dict[str, Callable[[], geoopt.manifolds.Manifold]] = {
    "poincare": lambda: geoopt.PoincareBall(),
    "euclidean": lambda: geoopt.Euclidean(ndim=1),
}

_RESAMPLE_TRIES = 8


def make_manifold(geometry: str) -> geoopt.manifolds.Manifold:
    """The geoopt manifold of a geometry name (``"poincare"`` or ``"euclidean"``).

    Raises
    ------
    MashError
        For an unknown name; the message lists the valid ones.
    """
    try:
        return GEOMETRIES[geometry]()
    except KeyError:
        raise MashError(
            f"unknown geometry {geometry!r}; valid names: {', '.join(sorted(GEOMETRIES))}"
        ) from None


def tree_init(
    parent: np.ndarray,
    dim: int,
    *,
    geometry: str = "poincare",
    root_radius: float = 1.0,
    step: float = 1.5,
    spread: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Points laid out from a known forest: depth sets the radius, ancestry the direction.

    A randomised version of the combinatorial constructions of Sarkar (2011) and Sala et
    al. (2018). A node at depth ``k`` sits at hyperbolic distance
    ``root_radius + step * k`` from the origin, in the direction of its parent plus a
    random offset of size ``spread * exp(-step * k / 2)``: a subtree stays inside a cone
    around its root, and the cones narrow with depth at the rate at which hyperbolic
    circles grow, so that siblings end up about as far from each other as from their
    parent. :func:`fit_ranking` can start from these points (``init=``) instead of from
    a tiny random cloud.

    Parameters
    ----------
    parent : np.ndarray, shape (n,), int
        ``parent[i]`` is the parent of node ``i``, or ``-1`` for a root.
    dim : int
        Embedding dimension (>= 2).
    geometry : {"poincare", "euclidean"}
        ``"poincare"``: Euclidean norm ``tanh(r / 2)`` for hyperbolic radius ``r``;
        ``"euclidean"``: norm ``r`` (the same layout with flat distances).
    root_radius, step, spread : float
        Radius of the roots, radius added per level, angular offset of the first level.
        The defaults keep ICD-10-CM's 7 levels (radius 1 to 10) inside float64's usable
        part of the ball (norm below ``1 - 1e-5``, radius 12.2).
    seed : int
        Seeds the random directions.

    Returns
    -------
    np.ndarray, shape (n, dim), float64

    Raises
    ------
    MashError
        On an invalid parent array (see :func:`mash.trees.check_parent`), ``dim < 2``,
        non-positive ``step`` or ``spread``, or a negative ``root_radius``.

    Examples
    --------
    >>> pts = tree_init(np.array([-1, 0, 0, 1]), 2)
    >>> np.round(np.linalg.norm(pts, axis=1), 3).tolist()
    [0.462, 0.848, 0.848, 0.964]
    """
    make_manifold(geometry)  # validates the name
    if int(dim) < 2:
        raise MashError(f"dim must be at least 2, got {dim}")
    if not (step > 0 and spread > 0 and root_radius >= 0):
        raise MashError(
            f"step and spread must be > 0 and root_radius >= 0, got {step}, {spread}, {root_radius}"
        )
    parent = check_parent(parent, forest=True)
    n = parent.size
    depth = depths(parent, forest=True)
    rng = np.random.default_rng(seed)
    directions = np.zeros((n, int(dim)))
    for k in range(int(depth.max(initial=0)) + 1):
        idx = np.flatnonzero(depth == k)
        noise = rng.standard_normal((idx.size, int(dim)))
        if k == 0:
            d = noise
        else:
            d = directions[parent[idx]] + spread * math.exp(-step * k / 2) * noise / math.sqrt(dim)
        directions[idx] = d / np.linalg.norm(d, axis=1, keepdims=True)
    radius = root_radius + step * depth
    norm = np.tanh(radius / 2) if geometry == "poincare" else radius
    if geometry == "poincare":
        norm = np.minimum(norm, 1.0 - 1e-5)  # geoopt's float64 boundary
    return directions * norm[:, None]


def _grouped_loss(
    points: torch.Tensor,
    u: torch.Tensor,
    targets: torch.Tensor,
    n_pos: int,
    c: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed :func:`mash.hyperbolic.embed.ranking_loss` of all relations of a batch of query nodes.

    ``u`` (b,) are query nodes, ``targets`` (b, D + K) their ``D`` positives (``-1`` is
    padding) then ``K`` negatives, shared by the relations of one node. The loss of
    relation ``(u, v)`` is ``-log(e^{-d(u,v)} / (e^{-d(u,v)} + S_u))`` with
    ``S_u = sum_k e^{-d(u, n_k)}``, i.e. ``softplus(d(u, v) + log S_u)``. Returns the sum
    over relations and their number.
    """
    valid = targets[:, :n_pos] >= 0
    idx = torch.where(targets >= 0, targets, u.unsqueeze(1))
    sq = (points * points).sum(-1)
    x = points.index_select(0, u)
    y = points.index_select(0, idx.reshape(-1)).view(idx.shape[0], idx.shape[1], -1)
    x2, t2 = sq.index_select(0, u).unsqueeze(-1), sq[idx]
    # |x - y|^2 expanded: no (b, T, d) difference tensor; in float64 and with geoopt's
    # float64 boundary (|x| <= 1 - 1e-5) the cancellation error stays below 1e-4 relative
    d2 = x2 + t2 - 2.0 * torch.einsum("btd,bd->bt", y, x)
    dist = dist_from_parts(x2, t2, d2, c)
    lse_neg = torch.logsumexp(-dist[:, n_pos:], dim=-1, keepdim=True)
    per_rel = torch.nn.functional.softplus(dist[:, :n_pos] + lse_neg)
    return (per_rel * valid).sum(), valid.sum()


def pair_keys(relations: np.ndarray, n_nodes: int) -> np.ndarray:
    """Sorted unique keys ``u * n_nodes + v`` of the pairs in both directions.

    Parameters
    ----------
    relations : np.ndarray, shape (E, 2), int
    n_nodes : int

    Returns
    -------
    np.ndarray, shape (<= 2E,), int64
        The ``forbidden_keys`` argument of :func:`sample_negatives`.
    """
    r = np.asarray(relations, dtype=np.int64)
    keys = np.concatenate([r[:, 0] * n_nodes + r[:, 1], r[:, 1] * n_nodes + r[:, 0]])
    return np.unique(keys)


def _is_forbidden(
    u: np.ndarray, cand: np.ndarray, n_nodes: int, forbidden_keys: np.ndarray
) -> np.ndarray:
    """Boolean mask of ``cand`` entries equal to ``u`` or paired with it in the keys."""
    bad = cand == u
    if forbidden_keys.size:
        keys = u * n_nodes + cand
        pos = np.searchsorted(forbidden_keys, keys)
        np.minimum(pos, forbidden_keys.size - 1, out=pos)
        bad |= forbidden_keys[pos] == keys
    return bad


def sample_negatives(
    u_idx: np.ndarray,
    n_nodes: int,
    k: int,
    forbidden_keys: np.ndarray,
    rng: np.random.Generator,
    *,
    return_collisions: bool = False,
    cdf: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, int]:
    """Uniform negative nodes for each query, avoiding the query and its positives.

    Offending draws (found with one ``np.searchsorted`` over all draws) are redrawn,
    vectorised, up to 8 rounds; any left after that are kept and counted. They are rare:
    with ``p`` the probability mass forbidden to ``u`` a draw survives all rounds with
    probability ``p ** 9``.

    Parameters
    ----------
    u_idx : np.ndarray, shape (B,), int
        Query nodes.
    n_nodes : int
        Negatives are drawn from ``range(n_nodes)``.
    k : int
        Negatives per query.
    forbidden_keys : np.ndarray, shape (F,), int64
        Sorted keys ``u * n_nodes + v`` of every positive pair, in both directions
        (see :func:`pair_keys`).
    rng : np.random.Generator
    return_collisions : bool
        Also return the number of forbidden draws left in the output.
    cdf : np.ndarray, shape (n_nodes,), optional
        Cumulative (unnormalised) weights: draw node ``i`` with probability proportional
        to ``cdf[i] - cdf[i - 1]`` instead of uniformly.

    Returns
    -------
    np.ndarray, shape (B, k), int64
        Negatives; with ``return_collisions`` a tuple ``(negatives, n_collisions)``.
    """
    u = np.asarray(u_idx, dtype=np.int64).reshape(-1, 1)

    def draw(size: int | tuple[int, int]) -> np.ndarray:
        if cdf is None:
            return rng.integers(0, n_nodes, size=size, dtype=np.int64)
        return np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")

    neg = draw((u.shape[0], k))
    bad = np.flatnonzero(_is_forbidden(u, neg, n_nodes, forbidden_keys))
    for _ in range(_RESAMPLE_TRIES):
        if bad.size == 0:
            break
        rows = bad // k
        cand = draw(bad.size)
        neg.reshape(-1)[bad] = cand
        still = _is_forbidden(u[rows, 0], cand, n_nodes, forbidden_keys)
        bad = bad[still]
    if return_collisions:
        return neg, int(bad.size)
    return neg


@dataclass
class PoincareFit:
    """Result of :func:`fit_ranking`.

    Attributes
    ----------
    points : np.ndarray, shape (n, d), float64
        The embedding; inside the unit ball for ``geometry="poincare"``.
    geometry : str
        ``"poincare"`` or ``"euclidean"``.
    losses : list of float
        Mean training loss of each epoch.
    epochs : int
        Epochs trained.
    relations_per_s : float
        Training relations processed per second of the training loop (negative sampling,
        forward, backward and optimiser step; setup and evaluation excluded).
    seconds : float
        Wall time of the whole call.
    n_collisions : int
        Negatives that stayed forbidden after resampling (should be ~0).
    """

    points: np.ndarray
    geometry: str
    losses: list[float] = field(default_factory=list)
    epochs: int = 0
    relations_per_s: float = 0.0
    seconds: float = 0.0
    n_collisions: int = 0


def _check_relations(relations: np.ndarray, n_nodes: int) -> np.ndarray:
    r = np.asarray(relations)
    if r.ndim != 2 or r.shape[1] != 2:
        raise MashError(f"relations must have shape (E, 2), got {r.shape}")
    if r.shape[0] == 0:
        raise MashError("relations is empty; nothing to train on")
    if not np.issubdtype(r.dtype, np.integer):
        raise MashError(f"relations must hold integer node ids, got dtype {r.dtype}")
    r = r.astype(np.int64)
    if r.min() < 0 or r.max() >= n_nodes:
        raise MashError(f"relations hold node ids outside [0, {n_nodes})")
    if (r[:, 0] == r[:, 1]).any():
        i = int(np.flatnonzero(r[:, 0] == r[:, 1])[0])
        raise MashError(f"relation {i} links node {r[i, 0]} to itself")
    return r


def _positives_by_node(relations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Query nodes ``(q,)`` and their positives ``(q, D)``, padded with ``-1``."""
    r = relations[np.lexsort((relations[:, 1], relations[:, 0]))]
    nodes, first, degree = np.unique(r[:, 0], return_index=True, return_counts=True)
    table = np.full((nodes.size, int(degree.max())), -1, dtype=np.int64)
    row = np.repeat(np.arange(nodes.size), degree)
    col = np.arange(r.shape[0]) - np.repeat(first, degree)
    table[row, col] = r[:, 1]
    return nodes, table


def _batch_stream(
    nodes: np.ndarray,
    positives: np.ndarray,
    n_nodes: int,
    epochs: int,
    nodes_per_batch: int,
    n_negatives: int,
    forbidden: np.ndarray,
    rng: np.random.Generator,
    burn_in: int = 0,
    cdf: np.ndarray | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, int]]:
    """Yield ``(epoch, u (b,), targets (b, D + K), collisions)``: each query node with all its
    positives (``-1`` padded) followed by its negatives, nodes in a new order each epoch."""
    for epoch in range(epochs):
        order = rng.permutation(nodes.size)
        for start in range(0, nodes.size, nodes_per_batch):
            sel = order[start : start + nodes_per_batch]
            u = nodes[sel]
            neg, bad = sample_negatives(
                u, n_nodes, n_negatives, forbidden, rng, return_collisions=True,
                cdf=cdf if epoch < burn_in else None,
            )
            targets = np.concatenate([positives[sel], neg], axis=1)
            yield epoch, torch.from_numpy(u), torch.from_numpy(targets), bad


def _learning_rate(
    t: float, lr: float, burn_in: int, burn_in_factor: float, final_factor: float, epochs: int
) -> float:
    """Learning rate at epoch ``t`` (fractional): ``lr * burn_in_factor`` during burn-in,
    then linear from ``lr`` to ``lr * final_factor`` at the end."""
    if t < burn_in:
        return lr * burn_in_factor
    frac = (t - burn_in) / max(epochs - burn_in, 1)
    return lr * (1.0 + (final_factor - 1.0) * frac)


@isolated_torch_rng
def fit_ranking(
    relations: np.ndarray,
    n_nodes: int,
    *,
    dim: int = 10,
    geometry: str = "poincare",
    epochs: int = 100,
    batch_size: int = 8192,
    n_negatives: int = 50,
    lr: float = 0.015,
    burn_in: int = 10,
    burn_in_lr_factor: float = 0.01,
    burn_in_dampening: float | None = 0.75,
    final_lr_factor: float = 5.0,
    init_scale: float = 1e-3,
    init: np.ndarray | None = None,
    seed: int = 0,
    quiet: bool = True,
    threads: int | None = None,
) -> PoincareFit:
    """Train Nickel–Kiela embeddings of ``(child, ancestor)`` relations.

    Each epoch visits every relation once, in batches of query nodes in a random order:
    a node ``u`` comes with all its positives ``v`` and ``n_negatives`` fresh negatives
    (:func:`sample_negatives`), shared by the relations of ``u`` in that batch, and each
    relation contributes its :func:`mash.hyperbolic.embed.ranking_loss` term
    ``-log(e^{-d(u,v)} / (e^{-d(u,v)} + sum_k e^{-d(u,n_k)}))``. Sharing the negatives of a
    node across its ``~depth`` relations keeps every relation's expected loss and cuts the
    distance computations about fivefold on ICD-10-CM.

    The whole ``(n_nodes, dim)`` table is one :class:`geoopt.ManifoldParameter` updated by
    dense :class:`geoopt.optim.RiemannianAdam` (with large batches nearly every row is
    touched by some negative anyway); its retraction projects the points strictly inside
    the ball after every step. Burn-in as in Nickel & Kiela's code: ``burn_in`` epochs at
    ``lr * burn_in_lr_factor`` with negatives drawn proportionally to
    ``degree ** burn_in_dampening`` (frequent, i.e. high-level, nodes), so that the top
    of the hierarchy is laid out near the origin. Then uniform negatives and (our
    choice, see Notes) a learning rate rising linearly from ``lr`` to
    ``lr * final_lr_factor``, which lets the deep levels keep spreading towards the
    boundary.
    The next batch (shuffle, negatives) is prepared in a second thread while torch works
    on the current one.

    Parameters
    ----------
    relations : np.ndarray, shape (E, 2), int
        ``(child, ancestor)`` pairs, e.g. from :func:`mash.trees.transitive_closure`.
    n_nodes : int
        Number of nodes; ids are ``0 .. n_nodes - 1``.
    dim : int
        Embedding dimension.
    geometry : {"poincare", "euclidean"}
        Distance of the loss; ``"euclidean"`` is the baseline with an equal budget (same
        loss, schedule, negatives and epochs; its points are unconstrained).
    epochs : int
        Passes over the relations, burn-in included.
    batch_size : int
        Relations per optimiser step (whole query nodes, so approximately).
    n_negatives : int
        Negatives per query node (and so per relation).
    lr : float
        RiemannianAdam learning rate right after burn-in; for the ball it is about the
        geodesic length of one step.
    burn_in : int
        Epochs at the reduced learning rate and with dampened negatives.
    burn_in_lr_factor : float
        Learning-rate multiplier during burn-in.
    burn_in_dampening : float, optional
        Burn-in negatives are drawn with probability proportional to
        ``degree ** burn_in_dampening`` (degree: relations a node is part of); ``None``
        keeps them uniform.
    final_lr_factor : float
        Learning rate at the last epoch relative to ``lr`` (linear in between).
    init_scale : float
        Initial coordinates are uniform in ``[-init_scale, init_scale]`` (without
        ``init``).
    init : np.ndarray, shape (n_nodes, dim), optional
        Starting points instead, e.g. :func:`tree_init` of a known forest (then
        ``burn_in=0`` is the natural choice: the top levels are already laid out).
    seed : int
        Seeds torch and the NumPy generator; the same seed (and thread count) gives
        identical points.
    quiet : bool
        Hide the progress bar.
    threads : int, optional
        Torch intra-op threads during the call (restored afterwards); default: unchanged.
        On a 2-core machine shared with other busy processes, ``threads=1`` avoids
        spin-waiting threads (measured 5-50x slower element-wise kernels).

    Returns
    -------
    PoincareFit

    Raises
    ------
    MashError
        On invalid arguments, an unknown geometry, or a non-finite loss.

    Notes
    -----
    The defaults were chosen by measurement (MAP from
    :func:`_reconstruction_metrics.reconstruction_metrics`),
    first on an 11.6k-node ICD-10-CM subset, then on all of ICD-10-CM (98.5k nodes,
    487k relations, dim 10):

    * RiemannianAdam over RiemannianSGD: on the subset after 20 epochs Adam (lr 0.05)
      reached MAP 0.52, SGD 0.48 at its best lr (200 on the batch-mean loss; 30 gave
      0.24, 1000 diverged to 0.17), and Adam's step needs no rescaling with the batch
      size.
    * A learning rate rising after burn-in beat a constant one (subset, 40 epochs:
      0.78 vs 0.63) and a decaying one (0.51 vs 0.60); dampened burn-in negatives cut
      the mean rank from 24 to 9. Negatives drawn from the ancestors' subtrees ("hard"
      negatives) were worse (0.59 with 20 %, 0.34 with 50 %).
    * Full ICD-10-CM, 100 epochs: lr 0.015 gave MAP 0.645 (mean rank 30), lr 0.01 0.59
      (rank 21); 40 epochs at lr 0.03: 0.62; 100 negatives instead of 50: no gain.
    * Smaller batches do not help: 30 epochs of 1 024-relation batches gave MAP 0.40
      (8 192: 0.48) at a seventh of the throughput.
    * From :func:`tree_init` (MAP 0.91 before any training), 10 epochs at a constant
      lr 0.01 without burn-in gave 0.968; 30 epochs 0.958; lr 0.03 0.926. This is the
      recipe of ``bench/_reconstruction.py``'s ``tree`` rows.

    Examples
    --------
    >>> from mash.trees import transitive_closure
    >>> rel = transitive_closure(np.array([-1, 0, 0, 1, 1, 2, 2]))
    >>> fit = fit_ranking(rel, 7, dim=2, epochs=5, burn_in=1)
    >>> fit.points.shape, bool((np.linalg.norm(fit.points, axis=1) < 1).all())
    ((7, 2), True)
    """
    t_start = time.perf_counter()
    manifold = make_manifold(geometry)
    if n_nodes < 2:
        raise MashError(f"n_nodes must be at least 2, got {n_nodes}")
    r = _check_relations(relations, n_nodes)
    for name, value in [
        ("dim", dim),
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("n_negatives", n_negatives),
    ]:
        if int(value) < 1:
            raise MashError(f"{name} must be a positive integer, got {value}")
    for name, value in [
        ("lr", lr),
        ("burn_in_lr_factor", burn_in_lr_factor),
        ("final_lr_factor", final_lr_factor),
        ("init_scale", init_scale),
    ]:
        if not (value > 0 and math.isfinite(value)):
            raise MashError(f"{name} must be a positive number, got {value}")
    if burn_in < 0:
        raise MashError(f"burn_in must be >= 0, got {burn_in}")

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        forbidden = pair_keys(r, n_nodes)
        if init is None:
            start = torch.empty(n_nodes, dim, dtype=torch.float64).uniform_(-init_scale, init_scale)
        else:
            start = torch.as_tensor(np.array(init, dtype=np.float64))
            if tuple(start.shape) != (n_nodes, dim) or not torch.isfinite(start).all():
                raise MashError(
                    f"init must be a finite array of shape ({n_nodes}, {dim}), got {tuple(start.shape)}"
                )
            if geometry == "poincare" and bool((start.norm(dim=1) >= 1).any()):
                raise MashError("init has points outside the open unit ball")
        points = geoopt.ManifoldParameter(manifold.projx(start), manifold=manifold)
        opt = geoopt.optim.RiemannianAdam([points], lr=lr, stabilize=None)
        c = curvature(manifold)
        nodes, positives = _positives_by_node(r)
        n_pos = positives.shape[1]
        n_rel = r.shape[0]
        nodes_per_batch = max(1, round(batch_size * nodes.size / n_rel))
        n_batches = -(-nodes.size // nodes_per_batch)
        cdf = None
        if burn_in_dampening is not None and burn_in > 0:
            degree = np.bincount(r.reshape(-1), minlength=n_nodes).astype(np.float64)
            cdf = np.cumsum(degree**burn_in_dampening)
        stream = _batch_stream(
            nodes, positives, n_nodes, epochs, nodes_per_batch, n_negatives, forbidden, rng,
            burn_in, cdf,
        )
        sums = torch.zeros(epochs, dtype=torch.float64)
        n_collisions = 0
        t_loop = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(next, stream)
            steps = bar(range(epochs * n_batches), f"fit {geometry}", quiet=quiet)
            for step in steps:
                epoch, u, targets, bad = pending.result()
                if step + 1 < epochs * n_batches:
                    pending = pool.submit(next, stream)
                n_collisions += bad
                for group in opt.param_groups:
                    group["lr"] = _learning_rate(
                        step / n_batches, lr, burn_in, burn_in_lr_factor, final_lr_factor, epochs
                    )
                total, count = _grouped_loss(points, u, targets, n_pos, c)
                loss = total / count
                if not torch.isfinite(loss):
                    raise MashError(
                        f"training loss became non-finite in epoch {epoch + 1} "
                        f"({geometry}, lr {lr}); try a smaller lr"
                    )
                opt.zero_grad(set_to_none=False)
                loss.backward()
                opt.step()
                sums[epoch] += total.detach()
        train_s = time.perf_counter() - t_loop
        out = points.detach().numpy().copy()
    finally:
        torch.set_num_threads(old_threads)
    if not np.isfinite(out).all():
        raise MashError(f"training produced non-finite points ({geometry})")
    return PoincareFit(
        points=out,
        geometry=geometry,
        losses=(sums / n_rel).tolist(),
        epochs=epochs,
        relations_per_s=epochs * n_rel / train_s,
        seconds=time.perf_counter() - t_start,
        n_collisions=n_collisions,
    )
