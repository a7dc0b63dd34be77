"""Pictures of a hierarchy embedded in the Poincaré ball.

:func:`project_to_disk` brings points of a higher-dimensional ball into the disk while
keeping every point's hyperbolic distance to the origin, so generic concepts stay near
the centre; :func:`plot_disk` draws the tree on the disk.

matplotlib is imported inside :func:`plot_disk` only: importing this module does not
import it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import geoopt
import numpy as np
import torch

from mash._io import atomic_path
from mash.errors import MashError
from mash.trees import tree_levels

__all__ = ["FORMATS", "check_plot_path", "plot_disk", "project_to_disk"]

#: File suffixes :func:`plot_disk` can write.
FORMATS: tuple[str, ...] = ("png", "pdf", "svg")

_ARC_POINTS = 12  # points per drawn geodesic arc
_ARC_MIN_LENGTH = 0.02  # shorter edges are drawn straight (the arc equals its chord)
_LABEL_CHARS = 28  # label line width before wrapping
_LABEL_LINES = 2


def check_plot_path(path: str | Path) -> str:
    """The format of a picture file from its suffix (one of :data:`FORMATS`).

    Raises
    ------
    MashError
        An unsupported suffix (checked before any computation by the commands).
    """
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise MashError(f"cannot write {Path(path).name!r}: unknown suffix; valid suffixes: {', '.join(FORMATS)}")
    return fmt


def project_to_disk(points: np.ndarray) -> np.ndarray:
    """Project points of the Poincaré ball to the Poincaré disk.

    The points are mapped to the tangent space at the origin
    (:meth:`geoopt.PoincareBall.logmap0`), projected on their first two principal axes,
    each 2-d vector is rescaled to the norm of its original tangent vector, and mapped
    back with :meth:`geoopt.PoincareBall.expmap0`:

    .. math::

        y_i = \\exp_0\\Big(\\lVert \\log_0 x_i \\rVert
              \\frac{W^\\top \\log_0 x_i}{\\lVert W^\\top \\log_0 x_i \\rVert}\\Big),

    with :math:`W \\in \\mathbb{R}^{d \\times 2}` the principal axes of the (centred)
    tangent vectors. Hence :math:`d(0, y_i) = d(0, x_i)` exactly: depth in the hierarchy
    is kept. Angles, and so distances between points, are only approximate (a PCA view).

    Parameters
    ----------
    points : np.ndarray, shape (n, d)
        Points strictly inside the unit ball (curvature -1).

    Returns
    -------
    np.ndarray, shape (n, 2), float64
        Points strictly inside the unit disk; ``points`` itself (as float64) when
        ``d == 2``. Each principal axis is signed so that its largest-magnitude
        coordinate is positive; a vector orthogonal to both axes is placed on the
        first axis.

    Raises
    ------
    MashError
        If ``points`` is not a finite 2-d array with every norm below 1.

    Examples
    --------
    >>> x = np.array([[0.1, 0.2, 0.3], [-0.5, 0.1, 0.0], [0.0, 0.0, 0.0]])
    >>> y = project_to_disk(x)
    >>> y.shape, bool(np.allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1)))
    ((3, 2), True)
    """
    x = np.ascontiguousarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise MashError(f"points must have shape (n, d) with d >= 1, got {x.shape}")
    if not np.isfinite(x).all():
        raise MashError("points contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1)
    if norms.size and norms.max() >= 1.0:
        i = int(np.argmax(norms))
        raise MashError(f"point {i} has norm {norms[i]:.6g}; Poincaré-ball points need norm < 1")
    if x.shape[1] == 2:
        return x.copy()
    if x.shape[0] == 0:
        return np.zeros((0, 2))
    ball = geoopt.PoincareBall()
    tangent = ball.logmap0(torch.from_numpy(x)).numpy()
    if tangent.shape[1] == 1:
        tangent = np.hstack([tangent, np.zeros_like(tangent)])
    axes = _principal_axes(tangent)
    flat = tangent @ axes.T
    flat_norm = np.linalg.norm(flat, axis=1, keepdims=True)
    tan_norm = np.linalg.norm(tangent, axis=1, keepdims=True)
    direction = np.where(flat_norm > 1e-300, flat / np.maximum(flat_norm, 1e-300), [1.0, 0.0])
    out = ball.expmap0(torch.from_numpy(direction * tan_norm), project=False).numpy()
    # tanh(artanh(r)) may round up to 1 for r within an ulp of 1: keep the input's norm.
    out_norm = np.linalg.norm(out, axis=1)
    over = out_norm >= 1.0
    if over.any():
        out[over] = direction[over] * norms[over, None]
    return out


def plot_disk(
    coords: np.ndarray,
    parent: np.ndarray,
    labels: list[str],
    path: str | Path,
    *,
    depth: np.ndarray | None = None,
    label_depth: int = 2,
    highlight: np.ndarray | None = None,
    title: str | None = None,
    dpi: int = 150,
    max_labels: int = 60,
) -> None:
    """Draw a tree embedded in the Poincaré disk and save it.

    Edges are hyperbolic geodesics (circle arcs orthogonal to the boundary, computed with
    :meth:`geoopt.PoincareBall.geodesic`; very short edges are straight). Nodes
    are coloured by depth, or by the categories of ``highlight``. Nodes up to depth
    ``label_depth`` are labelled, at most ``max_labels`` of them, those with the most
    leaves first; text runs towards the centre of the disk, wrapped and shortened, so it
    stays inside the figure.

    Parameters
    ----------
    coords : np.ndarray, shape (n, 2)
        Node positions in the disk (see :func:`project_to_disk`).
    parent : np.ndarray, shape (n,), int
        Parent of each node, ``-1`` for the root.
    labels : list of str, length n
        Node names (e.g. from :func:`mash.naming.name_nodes`).
    path : str or Path
        Output file; the format comes from the suffix (``.png``, ``.pdf``, ``.svg``).
        Written atomically: a reader sees the old file or the complete new one.
    depth : np.ndarray, shape (n,), int, optional
        Depth of each node (root 0); computed from ``parent`` when omitted.
    label_depth : int
        Deepest level that gets labels.
    highlight : np.ndarray, shape (n,), optional
        A category per node (e.g. the site); colours the nodes instead of depth.
    title : str, optional
    dpi : int
        Resolution of raster output.
    max_labels : int
        Most labels drawn.

    Raises
    ------
    MashError
        On inconsistent shapes, a malformed tree, or an unsupported suffix.

    Notes
    -----
    matplotlib is imported here, not at module import, and the figure is drawn on a
    standalone :class:`matplotlib.figure.Figure` (no pyplot), so no global backend is
    set or required and nothing is left open.
    """
    path = Path(path)
    fmt = check_plot_path(path)
    xy = np.asarray(coords, dtype=np.float64)
    levels = tree_levels(parent)
    par = np.asarray(parent, dtype=np.int64)
    n = par.size
    if xy.shape != (n, 2):
        raise MashError(f"coords must have shape ({n}, 2) to match parent, got {xy.shape}")
    if not np.isfinite(xy).all():
        raise MashError("coords contain NaN or infinite values")
    if len(labels) != n:
        raise MashError(f"labels has {len(labels)} entries but the tree has {n} nodes")
    if depth is None:
        depth = np.zeros(n, dtype=np.int64)
        for d, lv in enumerate(levels):
            depth[lv] = d
    depth = np.asarray(depth)
    if depth.shape != (n,):
        raise MashError(f"depth must have shape ({n},), got {depth.shape}")
    if highlight is not None:
        highlight = np.asarray(highlight)
        if highlight.shape != (n,):
            raise MashError(f"highlight must have shape ({n},), got {highlight.shape}")

    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, PathPatch
    from matplotlib.path import Path as MplPath
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8, 8))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.92 if title else 0.96))
    ax.set_xlim(-1.02, 1.02)
    ax.set_ylim(-1.02, 1.02)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.add_patch(Circle((0.0, 0.0), 1.0, fill=False, lw=0.8, color="black"))

    edges = _edge_paths(xy, par)
    if len(edges):
        # One compound path draws much faster than a LineCollection of 50k paths.
        codes = np.full(edges.shape[:2], MplPath.LINETO, dtype=MplPath.code_type)
        codes[:, 0] = MplPath.MOVETO
        lw = float(np.clip(20.0 / np.sqrt(n), 0.1, 0.8))
        ax.add_artist(
            PathPatch(
                MplPath(edges.reshape(-1, 2), codes.ravel()), fill=False, ec="0.6", lw=lw, zorder=1
            )
        )

    size = float(np.clip(4000.0 / n, 0.5, 24.0))
    if highlight is None:
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=depth, cmap="viridis", s=size, linewidths=0, zorder=2)
        if depth.max() > 0:
            cb = fig.colorbar(sc, ax=ax, fraction=0.03, pad=0.0, shrink=0.5)
            cb.set_label("depth", fontsize=7)
            cb.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            cb.ax.tick_params(labelsize=6)
    else:
        cats, code = _categories(highlight)
        colors = _category_colors(len(cats), colormaps)
        ax.scatter(xy[:, 0], xy[:, 1], c=colors[code], s=size, linewidths=0, zorder=2)
        handles = [
            ax.scatter([], [], color=colors[i], s=12, label=c) for i, c in enumerate(cats[:20])
        ]
        legend = ax.legend(
            handles=handles,
            loc="upper right",
            fontsize=6,
            frameon=False,
            title=None if len(cats) <= 20 else f"first 20 of {len(cats)}",
            title_fontsize=6,
        )
        for t in legend.get_texts():  # site names are text, never mathtext ("$")
            t.set_parse_math(False)

    for v in _label_nodes(par, levels, depth, label_depth, max_labels).tolist():
        x, y = xy[v]
        ha = "center" if abs(x) < 0.15 else ("left" if x < 0 else "right")
        va = "center" if abs(y) < 0.15 else ("bottom" if y < 0 else "top")
        ax.text(
            x,
            y,
            _short(labels[v]),
            fontsize=5,
            ha=ha,
            va=va,
            zorder=3,
            clip_on=True,
            parse_math=False,  # descriptions are text: a "$" is a dollar sign
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7},
        )
    if title:
        fig.suptitle(title, fontsize=10, parse_math=False)

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)


# ---------------------------------------------------------------------------- internals


def _principal_axes(v: np.ndarray) -> np.ndarray:
    """The first two principal axes of the rows of ``v`` (centred), shape (2, d).

    Each axis is signed so that its largest-magnitude entry is positive (deterministic).
    """
    centred = v - v.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = np.zeros((2, v.shape[1]))
    k = min(2, vt.shape[0])
    axes[:k] = vt[:k]
    for i in range(k, 2):  # fewer than 2 components (n < 2): complete with unit vectors
        e = np.zeros(v.shape[1])
        e[i] = 1.0
        axes[i] = e - axes[:i].T @ (axes[:i] @ e)
        axes[i] /= np.linalg.norm(axes[i])
    from sklearn.utils.extmath import svd_flip

    return svd_flip(None, axes, u_based_decision=False)[1]


def _categories(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Sorted category names (numerically for numbers) and each value's index, shape (n,)."""
    if values.dtype.kind in "biuf":
        uniq, code = np.unique(values, return_inverse=True)
        return [str(u) for u in uniq.tolist()], code
    names = np.array([str(h) for h in values.tolist()], dtype=object)
    uniq, code = np.unique(names, return_inverse=True)
    return [str(u) for u in uniq.tolist()], code


def _category_colors(k: int, colormaps: object) -> np.ndarray:
    """``k`` distinct RGBA colours, shape (k, 4): tab10, tab20, or evenly spaced turbo."""
    if k <= 10:
        return np.asarray(colormaps["tab10"](np.arange(k)))
    if k <= 20:
        return np.asarray(colormaps["tab20"](np.arange(k)))
    return np.asarray(colormaps["turbo"](np.linspace(0.0, 1.0, k)))


def _edge_paths(xy: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Polylines of the tree edges, shape (E, m, 2).

    Edges longer than ``_ARC_MIN_LENGTH`` (Euclidean) follow their geodesic; shorter
    ones, where the arc is indistinguishable from its chord, are straight.
    """
    child = np.flatnonzero(parent >= 0)
    a, b = xy[parent[child]], xy[child]
    t = np.linspace(0.0, 1.0, _ARC_POINTS)
    out = a[:, None, :] + t[None, :, None] * (b - a)[:, None, :]
    long = np.flatnonzero(np.linalg.norm(b - a, axis=1) > _ARC_MIN_LENGTH)
    if long.size:
        ball = geoopt.PoincareBall()
        arcs = ball.geodesic(
            torch.from_numpy(t)[None, :, None],
            torch.from_numpy(a[long])[:, None, :],
            torch.from_numpy(b[long])[:, None, :],
        )
        out[long] = arcs.numpy()
    return out


def _label_nodes(
    parent: np.ndarray,
    levels: list[np.ndarray],
    depth: np.ndarray,
    label_depth: int,
    max_labels: int,
) -> np.ndarray:
    """Nodes to label: depth <= ``label_depth``, most leaves first, then by id."""
    n = parent.size
    n_children = np.bincount(parent[parent >= 0], minlength=n)
    size = (n_children == 0).astype(np.int64)
    for lv in reversed(levels[1:]):
        size += np.bincount(parent[lv], weights=size[lv], minlength=n).astype(np.int64)
    cand = np.flatnonzero(depth <= label_depth)
    order = np.lexsort((cand, -size[cand]))
    return cand[order[: max(int(max_labels), 0)]]


def _short(label: str) -> str:
    """Wrap a label to a few short lines, ending in an ellipsis when cut."""
    lines = textwrap.wrap(" ".join(str(label).split()), _LABEL_CHARS) or [""]
    if len(lines) > _LABEL_LINES:
        lines = lines[:_LABEL_LINES]
        lines[-1] = lines[-1][: _LABEL_CHARS - 1].rstrip() + "…"
    return "\n".join(lines)
