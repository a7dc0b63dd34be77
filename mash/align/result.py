"""The :class:`Alignment` result: tables, aligned embeddings, manifest; save and load."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mash._io import (
    file_hashes,
    read_manifest,
    remove_stale_temporaries,
    verify_file_hashes,
    write_csv,
    write_json,
    write_npz,
)
from mash.errors import MashInputError

MAPPING_COLUMNS = ["site", "code", "reference_code", "score", "rank", "p_no_match"]
REQUIRED_MAPPING_COLUMNS = MAPPING_COLUMNS[:5]  # alignments written before p_no_match existed load too
CONCEPT_COLUMNS = ["concept_id", "site", "code", "description"]
OPTIONAL_CONCEPT_COLUMNS = ["domain", "parent"]  # written when the sites' codes tables have them
DATA_FILES = ("mapping.csv", "concepts.csv", "embeddings.npz")  # their sha256 is in the manifest
REQUIRED_EMBEDDINGS = ("site", "code", "text", "vectors")


def mapping_frame(
    site: str,
    codes: np.ndarray,
    reference_codes: np.ndarray,
    idx: np.ndarray,
    scores: np.ndarray | None = None,
    p_no_match: np.ndarray | None = None,
) -> pd.DataFrame:
    """Rows of ``mapping.csv`` for one site.

    Parameters
    ----------
    site : str
    codes : ndarray, shape (n_q,)
        The site's codes, row i for ``idx[i]``.
    reference_codes : ndarray, shape (n_r,)
    idx : ndarray, shape (n_q, k)
        Reference rows of each code's candidates, best first; ``-1`` entries (a code
        with fewer than ``k`` candidates, e.g. in a small domain) give no row.
    scores : ndarray, shape (n_q, k), optional
        Candidate scores; the column is left out when ``None``.
    p_no_match : ndarray, shape (n_q,), optional
        Probability that the code has no counterpart (repeated on its ``k`` rows); the
        column is left out when ``None``.
    """
    n_q, k = idx.shape
    frame = pd.DataFrame(
        {
            "site": site,
            "code": np.repeat(np.asarray(codes), k),
            "reference_code": np.asarray(reference_codes)[np.maximum(idx.ravel(), 0)],
            "rank": np.tile(np.arange(1, k + 1), n_q),
        }
    )
    if scores is not None:
        frame.insert(3, "score", np.round(scores.ravel().astype(np.float64), 6))
    if p_no_match is not None:
        frame["p_no_match"] = np.repeat(np.round(np.asarray(p_no_match, np.float64), 6), k)
    present = idx.ravel() >= 0
    return frame if present.all() else frame[present].reset_index(drop=True)


@dataclass
class Alignment:
    """Cross-site alignment of K ≥ 2 sites to a reference site.

    Attributes
    ----------
    reference : str
        Name of the reference site.
    mapping : DataFrame
        Columns ``site, code, reference_code, score, rank, p_no_match`` (see
        docs/formats.md): top-k reference candidates for every code of every
        non-reference site, and each code's probability of having no counterpart.
    concepts : DataFrame
        Columns ``concept_id, site, code, description``; every (site, code) once.
    embeddings : dict of ndarray
        ``site`` (n,), ``code`` (n,), ``text`` (n, d_text), ``cooccurrence`` (n, d_co),
        ``cooccurrence_reliable`` (n,) bool, ``vectors`` (n, d_text + d_co): every
        (site, code) in the reference site's space.
    manifest : dict
        Version, parameters, input hashes, row counts, anchors, timings.
    """

    reference: str
    mapping: pd.DataFrame
    concepts: pd.DataFrame
    embeddings: dict[str, np.ndarray]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def sites(self) -> list[str]:
        """Site names in the order they were given."""
        return list(self.manifest.get("sites", {}).keys()) or sorted(set(self.concepts["site"]))

    def save(self, out_dir: str | Path) -> Path:
        """Write the alignment to a directory (the format of ``docs/formats.md``).

        ``mapping.csv``, ``concepts.csv``, ``embeddings.npz`` and ``manifest.json``, each
        written atomically. The old manifest is removed first and the new one, written
        last, records each file's SHA-256 (``files``), so a directory with a manifest
        is complete and :meth:`load` refuses files from two runs. Temporaries a killed
        earlier run left are removed. The same alignment gives byte-identical files.

        Parameters
        ----------
        out_dir : str or Path
            Created if missing; existing files of those names are replaced.

        Returns
        -------
        Path
            ``out_dir``.
        """
        out = Path(out_dir)  # created by the atomic writers (mash._io.atomic_path)
        remove_stale_temporaries(out, (*DATA_FILES, "manifest.json"))  # of a killed earlier run
        (out / "manifest.json").unlink(missing_ok=True)  # until the new files are all in place
        write_csv(out / "mapping.csv", self.mapping[[c for c in MAPPING_COLUMNS if c in self.mapping.columns]])
        extra = [c for c in OPTIONAL_CONCEPT_COLUMNS if c in self.concepts.columns]
        write_csv(out / "concepts.csv", self.concepts[CONCEPT_COLUMNS + extra])
        emb = {k: (v.astype(str) if v.dtype == object else v) for k, v in self.embeddings.items()}
        write_npz(out / "embeddings.npz", **emb)
        write_json(out / "manifest.json", {**self.manifest, "files": file_hashes(out, DATA_FILES)})
        return out

    @classmethod
    def load(cls, out_dir: str | Path) -> Alignment:
        """Read a directory written by :meth:`save` (or by ``mash align``).

        Parameters
        ----------
        out_dir : str or Path

        Returns
        -------
        Alignment

        Raises
        ------
        MashInputError
            The directory or one of its four files is missing, a file is corrupt, lacks
            required columns or arrays, or is not the file the manifest describes (its
            SHA-256 or its row counts differ), or the files disagree with each other.
        """
        out = Path(out_dir)
        if not out.is_dir():
            raise MashInputError("alignment directory not found", file=out)
        for name in ("manifest.json", "mapping.csv", "concepts.csv", "embeddings.npz"):
            if not (out / name).is_file():
                raise MashInputError(
                    f"not a complete alignment directory: {name} is missing", file=out
                )
        manifest = read_manifest(out / "manifest.json")
        if "files" in manifest:  # written since the manifest records its files' hashes
            verify_file_hashes(out, manifest["files"], out / "manifest.json")
        frames = {}
        for name, cols in (("mapping.csv", REQUIRED_MAPPING_COLUMNS), ("concepts.csv", CONCEPT_COLUMNS)):
            try:
                frame = pd.read_csv(
                    out / name,
                    dtype={"site": str, "code": str, "reference_code": str, "concept_id": str, "description": str,
                           "domain": str, "parent": str},
                    keep_default_na=False,
                )
            except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
                raise MashInputError(f"corrupt CSV ({type(exc).__name__})", file=out / name) from exc
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise MashInputError(f"missing columns {missing}", file=out / name)
            frames[name] = frame
        try:
            with np.load(out / "embeddings.npz", allow_pickle=False) as z:
                emb = {k: z[k] for k in z.files}
        except Exception as exc:
            raise MashInputError(f"corrupt embeddings ({type(exc).__name__})", file=out / "embeddings.npz") from exc
        check_embeddings(emb, out / "embeddings.npz")
        check_counts(manifest, frames["mapping.csv"], frames["concepts.csv"], emb, out)
        return cls(
            reference=manifest.get("reference", ""),
            mapping=frames["mapping.csv"],
            concepts=frames["concepts.csv"],
            embeddings=emb,
            manifest=manifest,
        )

    def vectors_for(self, site: str) -> tuple[np.ndarray, np.ndarray]:
        """Codes and aligned vectors of one site: (codes (n,), vectors (n, d))."""
        m = self.embeddings["site"] == site
        return self.embeddings["code"][m], self.embeddings["vectors"][m]


def check_embeddings(emb: dict[str, np.ndarray], source: str | Path) -> None:
    """Raise unless ``emb`` has the arrays of :data:`REQUIRED_EMBEDDINGS`, one row per code.

    Raises
    ------
    MashInputError
        Naming the first missing array or the first array of another length.
    """
    missing = [k for k in REQUIRED_EMBEDDINGS if k not in emb]
    if missing:
        raise MashInputError(f"missing arrays {missing} (has {sorted(emb)})", file=source)
    n = len(emb["code"])
    for k in ("site", "text", "vectors", "cooccurrence", "cooccurrence_reliable"):
        if k in emb and (np.ndim(emb[k]) < 1 or len(emb[k]) != n):
            raise MashInputError(f"array {k!r} has {len(np.atleast_1d(emb[k]))} rows, 'code' has {n}", file=source)
    for k in ("text", "vectors"):
        if np.ndim(emb[k]) != 2 or emb[k].dtype.kind not in "fiu":
            raise MashInputError(f"array {k!r} must be a 2-D numeric array, got {emb[k].dtype} "
                                 f"of shape {emb[k].shape}", file=source)


def check_counts(manifest: dict[str, Any], mapping: pd.DataFrame, concepts: pd.DataFrame,
                 emb: dict[str, np.ndarray], out: Path) -> None:
    """Raise unless the files hold the rows the manifest counted (an incomplete or mixed directory).

    Compares ``outputs.mapping_rows``, ``outputs.embedding_rows``, ``outputs.concepts``
    and each site's ``codes`` with ``mapping.csv``, ``embeddings.npz`` and
    ``concepts.csv``; counts the manifest lacks are not checked.
    """
    outputs = manifest.get("outputs", {})
    outputs = outputs if isinstance(outputs, dict) else {}
    found = {
        ("mapping.csv", "mapping_rows", "candidate rows"): len(mapping),
        ("embeddings.npz", "embedding_rows", "rows"): len(emb["code"]),
        ("concepts.csv", "concepts", "concepts"): concepts["concept_id"].nunique(),
    }
    for (name, key, what), n in found.items():
        if key in outputs and outputs[key] != n:
            raise MashInputError(f"has {n} {what}, the manifest counted {outputs[key]}: an incomplete "
                                 "or mixed alignment directory; rerun mash align", file=out / name)
    sites = manifest.get("sites", {})
    per_site = concepts["site"].value_counts()
    for name, info in (sites.items() if isinstance(sites, dict) else ()):
        want = info.get("codes") if isinstance(info, dict) else None
        if want is not None and int(per_site.get(name, 0)) != want:
            raise MashInputError(f"lists {int(per_site.get(name, 0))} codes of site {name}, the manifest "
                                 f"counted {want}: an incomplete or mixed alignment directory; rerun mash align",
                                 file=out / "concepts.csv")
