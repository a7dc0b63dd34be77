"""The simulator's time unit: days since 1970-01-01, and their ISO dates."""

from __future__ import annotations

import numpy as np

#: Day 0 of every ``day`` array of the simulator.
EPOCH = np.datetime64("1970-01-01", "D")


def day_number(iso: str) -> int:
    """Days since :data:`EPOCH` of an ISO date.

    Examples
    --------
    >>> day_number("1970-01-31")
    30
    """
    return int((np.datetime64(iso, "D") - EPOCH).astype(np.int64))


def iso_dates(days: np.ndarray) -> np.ndarray:
    """ISO dates (``YYYY-MM-DD``) of days since :data:`EPOCH`.

    Parameters
    ----------
    days : ndarray of int, shape (n,)

    Returns
    -------
    ndarray of object (str), shape (n,)

    Examples
    --------
    >>> iso_dates(np.array([0, 19723])).tolist()
    ['1970-01-01', '2024-01-01']
    """
    return np.datetime_as_string(EPOCH + days.astype("timedelta64[D]"), unit="D").astype(object)
