"""Errors raised on bad input.

Every user-facing failure is a :class:`MashInputError` whose ``str`` is one line
naming the file, row and column where they are known. The command line prints that
line and exits with status 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class MashError(Exception):
    """Base class of every error mash raises on purpose."""


class MashInputError(MashError, ValueError):
    """Bad input: a file, a row, a column or a parameter that mash cannot use.

    Parameters
    ----------
    message : str
        What is wrong and, where possible, what was expected.
    file : str or Path, optional
        The file (or directory) the problem is in.
    row : int, optional
        1-based data row (the header is row 0) where the problem was found.
    column : str, optional
        The column name.

    Examples
    --------
    >>> str(MashInputError("not a date: 'x'", file="site/events.csv", row=3, column="time"))
    "site/events.csv, row 3, column 'time': not a date: 'x'"
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        text = " ".join(self.message.split())  # always one line
        return f"{', '.join(where)}: {text}" if where else text
