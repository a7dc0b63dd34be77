"""The representation check: patient vectors in 2-D, coloured by outcome, with silhouettes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mash._io import atomic_path

__all__ = ["plot_projection", "project_2d", "silhouettes"]


def project_2d(x: np.ndarray) -> np.ndarray:
    """PCA to two dimensions (deterministic up to sign; signs fixed by the largest loading).

    Parameters
    ----------
    x : ndarray, shape (n, d)

    Returns
    -------
    ndarray, shape (n, 2)
    """
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt[:2] * np.sign(vt[:2, np.abs(vt[:2]).argmax(axis=1)].diagonal())[:, None]
    out = x @ vt.T
    return out if out.shape[1] == 2 else np.pad(out, ((0, 0), (0, 2 - out.shape[1])))


def silhouettes(x: np.ndarray, groups: np.ndarray, seed: int = 0, max_n: int = 5000) -> dict[str, float]:
    """Silhouette of the outcome groups in the full space and in the 2-D projection.

    Parameters
    ----------
    x : ndarray, shape (n, d)
    groups : ndarray, shape (n,)
        Outcome classes (regression targets: split at the median by the caller).
    max_n : int
        Subsample size (silhouette is quadratic).

    Returns
    -------
    dict
        ``silhouette`` and ``silhouette_2d`` (NaN when fewer than two groups).
    """
    from sklearn.metrics import silhouette_score

    groups = np.asarray(groups)
    if len(np.unique(groups)) < 2:
        return {"silhouette": float("nan"), "silhouette_2d": float("nan")}
    idx = np.arange(len(x))
    if len(idx) > max_n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_n, replace=False))
    return {
        "silhouette": float(silhouette_score(x[idx], groups[idx])),
        "silhouette_2d": float(silhouette_score(project_2d(x)[idx], groups[idx])),
    }


def plot_projection(
    points: np.ndarray, values: np.ndarray, path: str | Path, *, title: str = "", continuous: bool = False
) -> Path:
    """Scatter ``points`` (n, 2) coloured by ``values``; written atomically in the format of
    the suffix (png, pdf or svg). The title is plain text (a ``$`` is not mathtext)."""
    from matplotlib.figure import Figure

    from mash.hyperbolic.plot import check_plot_path

    fmt = check_plot_path(path)

    fig = Figure(figsize=(6, 5), dpi=120)
    ax = fig.add_subplot()
    if continuous:
        sc = ax.scatter(points[:, 0], points[:, 1], c=values, s=6, cmap="viridis", alpha=0.7)
        fig.colorbar(sc, ax=ax)
    else:
        for v, colour in zip(np.unique(values), ("tab:blue", "tab:red", "tab:green"), strict=False):
            sel = values == v
            ax.scatter(points[sel, 0], points[sel, 1], s=6, alpha=0.6, c=colour, label=f"{v:g} (n={sel.sum()})")
        ax.legend(loc="best", markerscale=3)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title, fontsize=9, parse_math=False)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt)
    return path
