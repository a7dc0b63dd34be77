"""Patient-level splits: one 0.7/0.1/0.2 split, or k folds with a validation share."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mash.errors import MashInputError

__all__ = ["evaluation_splits", "kfold_patients", "split_patients", "subsample"]


def split_patients(
    n: int, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle ``n`` patients into train / validation / test index arrays.

    Parameters
    ----------
    n : int
    fractions : tuple of three floats summing to 1
    seed : int

    Returns
    -------
    train, val, test : ndarray of int, sorted
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise MashInputError(f"split fractions must be three shares summing to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    a = int(round(fractions[0] * n))
    b = a + int(round(fractions[1] * n))
    return np.sort(perm[:a]), np.sort(perm[a:b]), np.sort(perm[b:])


def kfold_patients(
    n: int, k: int = 5, val_share: float = 0.125, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``k`` folds by patient: each fold is the test set once; the rest splits train/val.

    With ``k=5`` and ``val_share=0.125`` every fold is a 0.7/0.1/0.2 split.

    Parameters
    ----------
    n, k : int
    val_share : float
        Share of the non-test patients used for early stopping.
    seed : int

    Yields
    ------
    train, val, test : ndarray of int, sorted
    """
    if k < 2 or k > n:
        raise MashInputError(f"cross-validation needs 2 <= k <= n patients, got k={k}, n={n}")
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(n), k)
    for i in range(k):
        rest = rng.permutation(np.concatenate([f for j, f in enumerate(folds) if j != i]))
        n_val = max(1, int(round(val_share * len(rest))))
        yield np.sort(rest[n_val:]), np.sort(rest[:n_val]), np.sort(folds[i])


def subsample(idx: np.ndarray, size: float | int | None, seed: int = 0) -> np.ndarray:
    """Keep a share (float in (0, 1]) or a count (int) of ``idx``, at random; sorted.

    Parameters
    ----------
    idx : ndarray of int
    size : float, int or None
        None keeps everything.
    seed : int

    Returns
    -------
    ndarray of int
    """
    if size is None:
        return idx
    m = int(round(size * len(idx))) if isinstance(size, float) else int(size)
    m = max(1, min(m, len(idx)))
    return np.sort(np.random.default_rng(seed).choice(idx, size=m, replace=False))


def evaluation_splits(
    n: int, folds: int | None, seed: int = 0, label_size: float | int | None = None
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The (train, val, test) splits of an evaluation, with fewer labels if asked.

    ``folds`` patient folds (:func:`kfold_patients`), or one 0.7/0.1/0.2 split
    (:func:`split_patients`) for ``None`` or 0. With ``label_size`` (a share, or a count
    of the training + validation patients) both parts of fold ``k`` are subsampled in
    proportion (at least 2 each, seed ``seed + k``); the test parts are unchanged.
    Every model compared on the same ``n``, ``folds``, ``seed`` and ``label_size``
    sees the same patients.

    Parameters
    ----------
    n : int
    folds : int or None
    seed : int
    label_size : float, int or None

    Returns
    -------
    list of (train, val, test), ndarrays of int, sorted
    """
    splits = list(kfold_patients(n, folds, seed=seed)) if folds else [split_patients(n, seed=seed)]
    if label_size is None:
        return splits
    out = []
    for k, (train, val, test) in enumerate(splits):
        share = label_size if isinstance(label_size, float) else label_size / (len(train) + len(val))
        out.append((
            subsample(train, max(2, int(round(share * len(train)))), seed=seed + k),
            subsample(val, max(2, int(round(share * len(val)))), seed=seed + k),
            test,
        ))
    return out
