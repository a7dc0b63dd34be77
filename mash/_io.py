"""Atomic writes, content hashes and run manifests."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Readers never see a half-written file: either the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; use the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically (reproducible bytes).

    NaN and ±inf, which JSON does not have, are written as ``null`` (``json.dumps``
    would write the bare tokens ``NaN`` / ``Infinity`` that strict readers reject).
    """
    text = json.dumps(_finite_or_null(obj), indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    write_text(path, text + "\n")


def _finite_or_null(obj: Any) -> Any:
    """``obj`` with every non-finite float (NumPy's too) replaced by None, recursively."""
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_null(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite_or_null(obj.tolist())
    return obj


def write_csv(path: str | Path, frame: pd.DataFrame, float_format: str | None = "%.6g") -> None:
    """Write a DataFrame as CSV (no index, ``\\n`` line ends) atomically.

    Python's CSV writer quotes a field holding ``\\n`` but not one holding a lone
    ``\\r``, which every reader then takes for a line end; a frame with a ``\\r`` in
    any text cell is therefore written with every field quoted.
    """
    text_cols = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])]
    has_cr = any(frame[c].astype(str).str.contains("\r", regex=False).any() for c in text_cols) or any(
        "\r" in str(c) for c in frame.columns)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n",
                     quoting=csv.QUOTE_ALL if has_cr else csv.QUOTE_MINIMAL)


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Write arrays to an uncompressed ``.npz`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_text(*parts: str) -> str:
    """Hex SHA-256 of strings joined by NUL (stable cache keys)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):  # floats and arrays were converted by _finite_or_null
        return int(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A ``manifest.json`` (of an alignment, a hierarchy or a checkpoint) as a dict.

    Returns ``{}`` when there is no such file.

    Raises
    ------
    MashInputError
        The file is not UTF-8 JSON or not a JSON object.
    """
    from mash.errors import MashInputError

    path = Path(path)
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MashInputError(f"corrupt manifest ({type(exc).__name__}: {exc})", file=path) from None
    if not isinstance(manifest, dict):
        raise MashInputError(f"corrupt manifest: a JSON {type(manifest).__name__}, not an object", file=path)
    return manifest


def stale_temporaries(directory: str | Path, names: list[str] | tuple[str, ...]) -> list[Path]:
    """Temporaries that :func:`atomic_path` left beside ``names`` in ``directory``.

    A run killed while writing leaves ``.NAME.XXXXXXXX.tmp`` files behind; they are
    never read, only removed by the next write of the same outputs.
    """
    d = Path(directory)
    if not d.is_dir():
        return []
    found: list[Path] = []
    for name in names:
        p = Path(name)
        folder = d / p.parent
        if folder.is_dir():
            found += sorted(folder.glob(f".{p.name}.*.tmp"))
    return found


def remove_stale_temporaries(directory: str | Path, names: list[str] | tuple[str, ...]) -> list[Path]:
    """Remove :func:`stale_temporaries` of ``names`` in ``directory``; return what was removed."""
    removed = stale_temporaries(directory, names)
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def file_hashes(directory: str | Path, names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``{name: sha256}`` of files of ``directory``, for a manifest written after them."""
    return {name: sha256_file(Path(directory) / name) for name in names}


def verify_file_hashes(directory: str | Path, hashes: Any, manifest: str | Path) -> None:
    """Refuse a directory whose files are not those its manifest recorded.

    Parameters
    ----------
    directory : str or Path
    hashes : dict
        ``{name: sha256}`` as :func:`file_hashes` wrote it into the manifest.
    manifest : str or Path
        The manifest file, named in the error.

    Raises
    ------
    MashInputError
        A recorded file is missing or its bytes changed since the manifest was written
        (a run killed while replacing its outputs, or files from two runs).
    """
    from mash.errors import MashInputError

    if not isinstance(hashes, dict):
        raise MashInputError("corrupt manifest: 'files' is not a mapping", file=manifest)
    for name, digest in sorted(hashes.items()):
        path = Path(directory) / name
        if not path.is_file():
            raise MashInputError(f"{name} is missing but listed in the manifest", file=manifest)
        if sha256_file(path) != digest:
            raise MashInputError(
                f"is not the file {Path(manifest).name} describes (sha256 differs): files from two "
                "runs, or a run killed while writing; rerun the command that wrote it",
                file=path,
            )


def check_out_path(path: str | Path, *, kind: str = "dir", option: str = "--out") -> Path:
    """Check before any computation that ``path`` can be written as a directory or a file.

    Parameters
    ----------
    path : str or Path
    kind : {"dir", "file"}
        What will be written at ``path``.
    option : str
        The option named in the error.

    Returns
    -------
    Path

    Raises
    ------
    MashInputError
        ``path`` is a file (for a directory) or a directory (for a file), lies under a
        file, or its nearest existing folder is not writable.
    """
    from mash.errors import MashInputError

    p = Path(path)
    if kind == "dir" and p.exists() and not p.is_dir():
        raise MashInputError(f"{option} must be a directory, but this is a file", file=p)
    if kind == "file" and p.is_dir():
        raise MashInputError(f"{option} must be a file name, but this is a directory", file=p)
    target = p if kind == "dir" and p.is_dir() else p.parent
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise MashInputError(f"{option} cannot be written: {probe} is a file, not a folder", file=p)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise MashInputError(f"{option} cannot be written: no write permission in {probe}", file=p)
    return p
