"""The text embedder: each distinct string encoded once, the on-disk cache (index,
damaged shards, compaction) and the counters the manifest reports."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mash import text
from mash.errors import MashInputError
from mash.text import TextCacheWarning, TextEmbedder

WORDS = ["heart failure", "type 2 diabetes", "HTN", "asthma", "CHF", "Heart failure"]
DISTINCT = 5  # "Heart failure" is "heart failure" to an uncased model


def test_equal_strings_share_one_encoding(tmp_path):
    emb = TextEmbedder(cache_dir=tmp_path, quiet=True)
    v = emb.encode(WORDS + WORDS[:2])
    assert v.shape == (8, 384) and v.dtype == np.float32
    assert emb.n_encoded_ == DISTINCT and emb.n_requested_ == 8
    np.testing.assert_array_equal(v[0], v[6])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    again = emb.encode(WORDS[::-1])  # a second call of the same run encodes nothing
    assert emb.n_encoded_ == DISTINCT and emb.n_cached_ == 0
    np.testing.assert_array_equal(again, v[:6][::-1])


def test_case_folding_is_exact_for_an_uncased_model(tmp_path):
    emb = TextEmbedder(cache_dir=False, quiet=True)
    assert emb._lower  # the bundled MiniLM is uncased
    texts = ["GLU FAST SER", "glu fast ser", "K+ SER/PL", "Hgb A1c", "Café au lait spots", "CAFÉ AU LAIT SPOTS"]
    folded = emb.encode(texts)
    assert emb.n_encoded_ == 5  # the ASCII strings fold, the accented ones do not
    model = emb._load_model()
    plain = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(folded, plain, atol=1e-5)


def test_order_and_batching_do_not_change_vectors(tmp_path):
    a = TextEmbedder(cache_dir=False, quiet=True, batch_size=2).encode(WORDS)
    b = TextEmbedder(cache_dir=False, quiet=True, batch_size=64).encode(WORDS)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_cache_reused_across_runs(tmp_path):
    first = TextEmbedder(cache_dir=tmp_path, quiet=True).encode(WORDS)
    emb = TextEmbedder(cache_dir=tmp_path, quiet=True)
    second = emb.encode(WORDS + ["new string"])
    assert emb.n_encoded_ == 1 and emb.n_cached_ == DISTINCT
    np.testing.assert_array_equal(second[: len(WORDS)], first)
    s = emb.stats()
    assert s["requested"] == 7 and s["encoded"] == 1 and s["from_cache"] == DISTINCT and s["damaged_shards"] == 0
    assert s["descriptions_per_s"] > 0


def test_damaged_shard_counted_removed_and_reencoded(tmp_path):
    ref = TextEmbedder(cache_dir=tmp_path, quiet=True).encode(WORDS)
    shard_dir = next((tmp_path / "text").iterdir())
    (keys_file,) = shard_dir.glob("shard-*.keys.npy")
    vec_file = keys_file.with_name(keys_file.name.replace(".keys.", ".vecs."))
    vec_file.write_bytes(b"not a numpy file")
    emb = TextEmbedder(cache_dir=tmp_path, quiet=True)
    with pytest.warns(TextCacheWarning, match="1 damaged shard"):
        got = emb.encode(WORDS)
    assert emb.n_damaged_shards_ == 1 and emb.n_encoded_ == DISTINCT
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert np.load(vec_file).shape == (DISTINCT, ref.shape[1])  # the damaged file was replaced
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the repaired cache is clean
        TextEmbedder(cache_dir=tmp_path, quiet=True).encode(WORDS)


def test_incomplete_shard_without_keys_is_ignored(tmp_path):
    TextEmbedder(cache_dir=tmp_path, quiet=True).encode(WORDS)
    shard_dir = next((tmp_path / "text").iterdir())
    (keys_file,) = shard_dir.glob("shard-*.keys.npy")
    keys_file.unlink()  # as if the writer died between the two files
    emb = TextEmbedder(cache_dir=tmp_path, quiet=True)
    emb.encode(WORDS)
    assert emb.n_encoded_ == DISTINCT and emb.n_damaged_shards_ == 0


def test_shards_compacted(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "MAX_SHARDS", 3)
    vecs = {}
    for i, w in enumerate(WORDS):  # one run (and one shard) per string
        vecs[w] = TextEmbedder(cache_dir=tmp_path, quiet=True).encode([w])[0]
        n = len(list(next((tmp_path / "text").iterdir()).glob("shard-*.keys.npy")))
        assert n <= 3, (i, n)
    emb = TextEmbedder(cache_dir=tmp_path, quiet=True)
    got = emb.encode(WORDS)
    assert emb.n_encoded_ == 0
    np.testing.assert_array_equal(got, np.stack([vecs[w] for w in WORDS]))


def test_legacy_npz_shards_read(tmp_path):
    emb0 = TextEmbedder(cache_dir=False, quiet=True)
    ref = emb0.encode(WORDS)
    shard_dir = tmp_path / "text" / emb0.key
    shard_dir.mkdir(parents=True)
    np.savez(shard_dir / "shard-0123456789abcdef.npz", keys=text._text_keys(text.canonical_texts(WORDS, True)), vectors=ref)
    emb = TextEmbedder(cache_dir=tmp_path, quiet=True)
    np.testing.assert_array_equal(emb.encode(WORDS), ref)
    assert emb.n_encoded_ == 0 and emb.n_cached_ == DISTINCT


def test_empty_and_bad_batch_size(tmp_path):
    assert TextEmbedder(cache_dir=False, quiet=True).encode([]).shape == (0, 0)
    with pytest.raises(MashInputError, match="batch size"):
        TextEmbedder(cache_dir=False, batch_size=0)
