"""Vocabulary: token layout, shared ids, back-off, visits, Hugging Face export, save/load, init."""

from __future__ import annotations

import json
import warnings
from datetime import datetime

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from mash.errors import MashInputError
from mash.hyperbolic.hierarchy import Hierarchy
from mash.vocab import HF_SPECIAL_TOKENS, SPECIAL_TOKENS, Vocabulary, code_counts
from mash.vocab.embedding import embedding_init

# root ─┬─ _g1 (group) ─┬─ _c0 (concept C1) ─┬─ A:4280
#       │               │                    └─ B:I509
#       │               └─ A:4281 (C2)
#       └─ _g2 (group) ─┬─ _k1 (cluster) ─┬─ A:25000 (C3)
#                       │                 └─ B:E119 (C4)
#                       └─ B:E780 (C5)
LEAVES = {  # node: (site, code, concept_id, parent)
    "A:4280": ("A", "4280", "C1", "_c0"),
    "B:I509": ("B", "I509", "C1", "_c0"),
    "A:4281": ("A", "4281", "C2", "_g1"),
    "A:25000": ("A", "25000", "C3", "_k1"),
    "B:E119": ("B", "E119", "C4", "_k1"),
    "B:E780": ("B", "E780", "C5", "_g2"),
}
INTERNAL = {  # node: (kind, parent)
    "root": ("root", None),
    "_g1": ("group", "root"),
    "_g2": ("group", "root"),
    "_k1": ("cluster", "_g2"),
    "_c0": ("concept", "_g1"),
}


def tiny_graph(coordinates: bool = True) -> nx.DiGraph:
    g = nx.DiGraph()
    rng = np.random.default_rng(1)
    for v, (kind, parent) in INTERNAL.items():
        g.add_node(v, kind=kind, label=f"label {v}")
        if kind == "concept":
            g.nodes[v]["concept_id"] = "C1"
        if parent:
            g.add_edge(parent, v)
    for v, (site, code, cid, parent) in LEAVES.items():
        g.add_node(
            v,
            kind="code",
            site=site,
            code=code,
            description=f"desc {code}",
            concept_id=cid,
            label=f"desc {code}",
        )
        g.add_edge(parent, v)
    if coordinates:
        for v in g.nodes:
            point = rng.uniform(-0.6, 0.6, size=3)
            g.nodes[v]["coordinates"] = " ".join(f"{x:.6g}" for x in point)
    return g


@pytest.fixture()
def hierarchy() -> Hierarchy:
    return Hierarchy(tiny_graph())


@pytest.fixture()
def vocab(hierarchy) -> Vocabulary:
    return Vocabulary.from_hierarchy(hierarchy)


COUNTS = pd.DataFrame(
    {
        "site": ["A", "B", "A", "A", "B", "B", "Z"],
        "code": ["4280", "I509", "4281", "25000", "E119", "E780", "nope"],
        "count": [10, 5, 1, 2, 1, 20, 7],
    }
)


# ------------------------------------------------------------------ layout


def test_specials_have_fixed_ids(vocab):
    assert vocab.tokens[:5] == list(SPECIAL_TOKENS)
    assert (vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id, vocab.mask_id) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert [vocab.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert all(vocab.ancestors(i) == [] for i in range(5))


def test_layout_concepts_sorted_then_internal_root_first(vocab):
    assert vocab.tokens[5:] == ["C1", "C2", "C3", "C4", "C5", "root", "_g1", "_g2", "_k1"]
    assert len(vocab) == 14 and "C1" in vocab and "_c0" not in vocab
    assert ("A", "4280") in vocab and ("A", "nope") not in vocab
    assert vocab.stats["n_concept_tokens"] == 5 and vocab.stats["n_internal_tokens"] == 4


def test_merged_concept_shares_one_id_across_sites(vocab):
    (a,) = vocab.encode(["4280"], site="A")
    (b,) = vocab.encode(["I509"], site="B")
    assert a == b == vocab.token_to_id("C1")
    assert vocab.codes_of(a) == [("A", "4280"), ("B", "I509")]
    assert vocab.label(a) == "label _c0"  # the concept node's label
    assert vocab.decode(vocab.encode(["4280", "4281", "25000"], site="A")) == ["C1", "C2", "C3"]


def test_no_harmonization_gives_each_code_its_own_id(hierarchy):
    vocab = Vocabulary.from_hierarchy(hierarchy, harmonize=False)
    (a,) = vocab.encode(["4280"], site="A")
    (b,) = vocab.encode(["I509"], site="B")
    assert a != b
    assert vocab.decode([a, b]) == ["A:4280", "B:I509"]
    assert vocab.stats["n_concept_tokens"] == 6
    assert vocab.decode(vocab.ancestors(a)) == ["_g1", "root"]  # the concept node is skipped
    assert vocab.ancestors(a) == vocab.ancestors(b)


def test_unknown_codes_are_unk_and_counted(vocab):
    ids = vocab.encode(["4280", "9999", "9999", "I509"], site="A")
    assert ids == [5, 1, 1, 1]
    assert vocab.unknown == {("A", "9999"): 2, ("A", "I509"): 1}


def test_unknown_site_lists_known_sites(vocab):
    with pytest.raises(MashInputError, match="unknown site 'C'.*A, B"):
        vocab.encode(["4280"], site="C")
    with pytest.raises(MashInputError, match="string"):
        vocab.encode("4280", site="A")


def test_ancestors_nearest_first_ending_at_root(vocab):
    (c3,) = vocab.encode(["25000"], site="A")
    assert vocab.decode(vocab.ancestors(c3)) == ["_k1", "_g2", "root"]
    assert vocab.decode(vocab.ancestors(vocab.token_to_id("_k1"))) == ["_g2", "root"]
    assert vocab.ancestors(vocab.token_to_id("root")) == []
    with pytest.raises(MashInputError):
        vocab.ancestors(99)


# ------------------------------------------------------------------ min_count back-off


def test_min_count_backs_off_to_nearest_frequent_ancestor(hierarchy):
    vocab = Vocabulary.from_hierarchy(hierarchy, counts=COUNTS, min_count=5)
    # C1 = 15 and C5 = 20 keep tokens; C2 = 1 → _g1 (16); C3 = 2, C4 = 1 → _k1 is 3 (dropped) → _g2
    assert vocab.tokens[5:] == ["C1", "C5", "root", "_g1", "_g2"]
    assert vocab.decode(vocab.encode(["4280", "4281", "25000"], site="A")) == ["C1", "_g1", "_g2"]
    assert vocab.decode(vocab.encode(["E119", "E780"], site="B")) == ["_g2", "C5"]
    assert vocab.stats["n_backed_off_concepts"] == 3 and vocab.stats["n_backed_off_codes"] == 3
    assert vocab.stats["n_internal_dropped"] == 1
    assert vocab.stats["count_rows_unmatched"] == 1 and vocab.stats["count_events_unmatched"] == 7
    assert vocab.codes_of(vocab.token_to_id("_g2")) == [("A", "25000"), ("B", "E119")]
    assert list(range(len(vocab))) == sorted(
        vocab.token_to_id(t) for t in vocab.tokens
    )  # contiguous


def test_min_count_above_everything_keeps_only_root(hierarchy):
    vocab = Vocabulary.from_hierarchy(hierarchy, counts=COUNTS, min_count=10_000)
    assert vocab.tokens[5:] == ["root"]
    assert set(vocab.encode(["4280", "25000"], site="A")) == {5}


def test_min_count_needs_valid_counts(hierarchy):
    with pytest.raises(MashInputError, match="needs counts"):
        Vocabulary.from_hierarchy(hierarchy, min_count=2)
    bad = COUNTS.assign(count=[1, -2, 1, 1, 1, 1, 1])
    with pytest.raises(MashInputError, match="row 2, column 'count'"):
        Vocabulary.from_hierarchy(hierarchy, counts=bad, min_count=2)
    with pytest.raises(MashInputError, match="min_count"):
        Vocabulary.from_hierarchy(hierarchy, min_count=0)


def test_malformed_hierarchy_is_an_input_error():
    g = tiny_graph()
    g.nodes["_k1"]["kind"] = "blob"
    with pytest.raises(MashInputError, match="kind 'blob'"):
        Vocabulary.from_hierarchy(Hierarchy(g))
    g = tiny_graph()
    del g.nodes["A:4281"]["concept_id"]
    with pytest.raises(MashInputError, match="no concept_id"):
        Vocabulary.from_hierarchy(Hierarchy(g))


# ------------------------------------------------------------------ visits


def test_encode_visits_sorts_truncates_and_masks(vocab):
    patients = [
        [
            ("2020-01-05", ["25000"]),
            ("2020-01-01", ["4280", "4280", "4281"]),
            (datetime(2020, 1, 3), ["4281"]),
        ],
        [(np.datetime64("2021-06-01"), ["9999"])],
    ]
    enc = vocab.encode_visits(patients, site="A", max_visits=2, max_codes=1)
    assert enc.codes.shape == (2, 2, 1) and enc.codes.dtype == np.int64
    # patient 0 sorted to 01-01, 01-03, 01-05; the most recent two kept
    assert enc.codes[0, :, 0].tolist() == [6, 7]  # C2 (4281), C3 (25000)
    assert enc.times[0].tolist() == [0.0, 2.0] and enc.times.dtype == np.float32
    assert enc.mask.tolist() == [[True, True], [True, False]]
    assert enc.codes[1].tolist() == [[1], [0]]
    assert np.array_equal(enc.code_mask, enc.codes != 0)
    assert enc.n_unsorted_patients == 1 and enc.n_dropped_visits == 1
    assert enc.n_duplicate_codes == 1 and enc.n_dropped_codes == 1  # {C1, C2} cut to C1
    assert enc.n_unknown_codes == 1


def test_encode_visits_keeps_first_distinct_codes_and_numeric_times(vocab):
    enc = vocab.encode_visits([[(10.0, ["25000", "4280", "25000"]), (12.5, ["4281"])]], site="A")
    assert enc.codes.tolist() == [[[7, 5], [6, 0]]]
    assert enc.times.tolist() == [[0.0, 2.5]]
    assert enc.code_mask.tolist() == [[[True, True], [True, False]]]


def test_encode_visits_rejects_empty_patient_and_bad_time(vocab):
    with pytest.raises(MashInputError, match="patient 1 has no visits"):
        vocab.encode_visits([[("2020-01-01", ["4280"])], []], site="A")
    with pytest.raises(MashInputError, match="patient 0, visit 0: not a date"):
        vocab.encode_visits([[("yesterday", ["4280"])]], site="A")
    with pytest.raises(MashInputError, match="max_visits"):
        vocab.encode_visits([[(0, ["4280"])]], site="A", max_visits=0)


# ------------------------------------------------------------------ Hugging Face export


def test_hf_tokenizer_round_trips_aliases_and_unknown(vocab, tmp_path):
    from tokenizers import Tokenizer

    path = vocab.to_hf_tokenizer(tmp_path / "tok" / "tokenizer.json")
    tok = Tokenizer.from_file(str(path))
    assert tok.encode("A:4280 A:25000").ids == vocab.encode(["4280", "25000"], site="A")
    # several strings, one id: both sites' codes and the concept token itself
    assert tok.encode("A:4280 B:I509 C1").ids == [5, 5, 5]
    assert tok.encode("A:9999 A:4281 _g2 [CLS] [MASK]").ids == [
        1,
        6,
        vocab.token_to_id("_g2"),
        2,
        4,
    ]
    assert tok.token_to_id("[PAD]") == 0
    assert not list(tmp_path.glob("tok/.*.tmp"))  # atomic write leaves nothing behind


def test_hf_tokenizer_after_back_off(hierarchy, tmp_path):
    from tokenizers import Tokenizer

    vocab = Vocabulary.from_hierarchy(hierarchy, counts=COUNTS, min_count=5, harmonize=False)
    tok = Tokenizer.from_file(str(vocab.to_hf_tokenizer(tmp_path / "t.json")))
    for site, code in [("A", "4280"), ("A", "4281"), ("A", "25000"), ("B", "E119"), ("B", "E780")]:
        assert tok.encode(f"{site}:{code}").ids == vocab.encode([code], site=site)


def test_hf_tokenizer_counts_unusable_strings(tmp_path):
    g = tiny_graph()
    g.nodes["A:4281"]["code"] = "42 81"
    vocab = Vocabulary.from_hierarchy(Hierarchy(g))
    with pytest.warns(UserWarning, match="1 code/token strings"):
        vocab.to_hf_tokenizer(tmp_path / "t.json")


def test_hf_directory_loads_with_transformers_special_tokens_set(vocab, tmp_path):
    transformers = pytest.importorskip("transformers")

    path = vocab.to_hf_tokenizer(tmp_path / "hf")
    assert path == tmp_path / "hf" / "tokenizer.json"
    assert {f.name for f in (tmp_path / "hf").iterdir()} == {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
    text = "A:4280 A:25000 B:I509 A:9999 _g2 C1"
    for cls in (transformers.PreTrainedTokenizerFast, transformers.AutoTokenizer):
        tok = cls.from_pretrained(str(tmp_path / "hf"))
        roles = (tok.pad_token, tok.unk_token, tok.cls_token, tok.sep_token, tok.mask_token)
        assert roles == SPECIAL_TOKENS
        assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.mask_token_id) == (
            vocab.pad_id,
            vocab.unk_id,
            vocab.cls_id,
            vocab.mask_id,
        )
        ids = tok(text)["input_ids"]  # no [CLS]/[SEP] added
        assert ids == vocab.encode_text(text)
        assert ids[:4] == vocab.encode(["4280", "25000"], site="A") + vocab.encode(
            ["I509", "9999"], site="B"
        )
        batch = tok(["A:4280", "A:4280 A:4281"], padding=True)
        assert batch["input_ids"] == [[5, vocab.pad_id], [5, 6]]
        assert batch["attention_mask"] == [[1, 0], [1, 1]]
        # truncation keeps the most recent (last) codes
        assert tok("A:4280 A:4281 A:25000", truncation=True, max_length=2)["input_ids"] == [6, 7]


def test_hf_file_gets_companions_only_as_tokenizer_json(vocab, tmp_path):
    transformers = pytest.importorskip("transformers")

    other = vocab.to_hf_tokenizer(tmp_path / "alone" / "codes.json")
    assert [f.name for f in other.parent.iterdir()] == ["codes.json"]
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(other), **HF_SPECIAL_TOKENS)
    assert tok.unk_token == "[UNK]" and tok("A:4280 nope")["input_ids"] == [5, 1]

    path = vocab.to_hf_tokenizer(tmp_path / "ckpt" / "tokenizer.json")  # as a checkpoint does
    config = json.loads((tmp_path / "ckpt" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert {k: config[k] for k in HF_SPECIAL_TOKENS} == dict(HF_SPECIAL_TOKENS)
    assert json.loads((tmp_path / "ckpt" / "special_tokens_map.json").read_text()) == dict(
        HF_SPECIAL_TOKENS
    )
    tok = transformers.PreTrainedTokenizerFast.from_pretrained(str(path.parent))
    assert tok.mask_token == "[MASK]" and tok("B:I509 [MASK]")["input_ids"] == [5, 4]
    assert not list(tmp_path.glob("ckpt/.*.tmp"))


def test_encode_text_matches_export_and_warns_on_bare_codes(vocab, tmp_path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(vocab.to_hf_tokenizer(tmp_path / "t.json")))
    text = "A:4280 4280 A:9999 B:I509 C1 I509 [CLS] 4280"
    with pytest.warns(UserWarning, match=r"3 of 8 words .*'4280', a code of A: write 'A:4280'"):
        ids = vocab.encode_text(text)
    assert ids == tok.encode(text).ids == [5, 1, 1, 5, 5, 1, 2, 1]
    assert vocab.bare_codes == {"4280": 2, "I509": 1}
    assert vocab.unknown == {("A", "9999"): 1}  # a known site's unknown code, as encode counts
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert vocab.encode_text("A:4281  B:E780\tA:nope") == [6, 9, 1]
        assert vocab.encode_text("") == []
    with pytest.warns(UserWarning, match=r"1 of 1 words .*'zz'\)"):
        vocab.encode_text("zz")
    with pytest.raises(MashInputError, match="string of site:code words"):
        vocab.encode_text(["A:4280"])


# ------------------------------------------------------------------ save / load


def test_fingerprint_is_the_token_list_hash_checkpoints_store(vocab):
    """One fingerprint: the SHA-256 of the token list that model.pt files carry as
    vocab_sha256 (so checkpoints written before it was unified still load)."""
    import hashlib

    from mash.models.checkpoint import vocab_fingerprint as checkpoint_fingerprint
    from mash.vocab import vocab_fingerprint

    legacy = hashlib.sha256(json.dumps(list(vocab.tokens)).encode()).hexdigest()
    assert vocab.fingerprint == vocab_fingerprint(vocab) == vocab_fingerprint(vocab.tokens)
    assert checkpoint_fingerprint(vocab) == legacy == vocab.fingerprint


def test_save_load_round_trip(hierarchy, tmp_path):
    vocab = Vocabulary.from_hierarchy(hierarchy, counts=COUNTS, min_count=5)
    path = vocab.save(tmp_path / "vocab.json")
    again = Vocabulary.load(path)
    assert again.tokens == vocab.tokens and again.fingerprint == vocab.fingerprint
    assert again.stats == vocab.stats and again.params == vocab.params
    for site, codes in [("A", ["4280", "4281", "25000", "x"]), ("B", ["I509", "E119", "E780"])]:
        assert again.encode(codes, site=site) == vocab.encode(codes, site=site)
    assert all(again.ancestors(i) == vocab.ancestors(i) for i in range(len(vocab)))
    assert [again.label(i) for i in range(len(vocab))] == [
        vocab.label(i) for i in range(len(vocab))
    ]
    assert np.array_equal(again.embedding_init(), vocab.embedding_init())


def test_load_rejects_bad_files(vocab, tmp_path):
    with pytest.raises(MashInputError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MashInputError, match="bad.json: not a JSON"):
        Vocabulary.load(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(MashInputError, match="not a mash vocabulary"):
        Vocabulary.load(bad)
    data = vocab.to_dict()
    data["parents"][6] = 6
    bad.write_text(json.dumps(data))
    with pytest.raises(MashInputError, match="bad.json: parents"):
        Vocabulary.load(bad)
    data = vocab.to_dict()
    data["aliases"]["A"]["4280"] = 999
    bad.write_text(json.dumps(data))
    with pytest.raises(MashInputError, match="bad.json"):
        Vocabulary.load(bad)


def test_from_graphml_records_source_hash(hierarchy, tmp_path):
    path = tmp_path / "h.graphml"
    hierarchy.to_graphml(path)
    vocab = Vocabulary.from_hierarchy(path)
    assert vocab.source["hash_of"] == "file" and len(vocab.source["sha256"]) == 64
    assert vocab.tokens == Vocabulary.from_hierarchy(hierarchy).tokens


# ------------------------------------------------------------------ embedding init


def test_embedding_init_is_logmap0_of_coordinates(vocab, hierarchy):
    import geoopt
    import torch

    init = vocab.embedding_init()
    assert init.shape == (len(vocab), 3) and init.dtype == np.float32
    assert np.isfinite(init).all() and not init[0].any() and np.abs(init[1:5]).max() < 0.1
    g = hierarchy.graph
    node = {"C1": "_c0", "C2": "A:4281", "C5": "B:E780", "_k1": "_k1", "root": "root"}
    for token, v in node.items():
        x = torch.tensor([float(t) for t in g.nodes[v]["coordinates"].split()], dtype=torch.float64)
        expected = geoopt.PoincareBall(c=1.0).logmap0(x).numpy()
        np.testing.assert_allclose(init[vocab.token_to_id(token)], expected, rtol=1e-6, atol=1e-7)
    assert np.array_equal(init, vocab.embedding_init())  # deterministic


def test_embedding_init_needs_coordinates():
    vocab = Vocabulary.from_hierarchy(Hierarchy(tiny_graph(coordinates=False)))
    with pytest.raises(MashInputError, match="no coordinates"):
        vocab.embedding_init()
    pts = np.vstack([np.zeros((5, 3)), np.full((len(vocab) - 5, 3), 0.6)])  # norm > 1
    with pytest.raises(MashInputError, match="inside the unit ball"):
        embedding_init(pts, vocab.tokens)


# ------------------------------------------------------------------ on the bundled sample


def test_sample_sites_counts_and_shared_ids(sample_dir):
    """Real sample sites under a hand-built two-level tree (no minute-long alignment)."""
    from mash.sequences import build_sequences, concat
    from mash.sites import Site

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sites = [Site.load(sample_dir / "site_A"), Site.load(sample_dir / "site_B")]
    g = nx.DiGraph()
    g.add_node("root", kind="root", label="All")
    shared = {
        (sites[0].name, sites[0].codes["code"][0]),
        (sites[1].name, sites[1].codes["code"][0]),
    }
    for s in sites:
        g.add_node(f"_g_{s.name}", kind="group", label=s.name)
        g.add_edge("root", f"_g_{s.name}")
        for code in s.codes["code"]:
            cid = "C_SHARED" if (s.name, code) in shared else f"C_{s.name}_{code}"
            g.add_node(
                f"{s.name}:{code}",
                kind="code",
                site=s.name,
                code=code,
                description="d",
                concept_id=cid,
            )
            g.add_edge(f"_g_{s.name}", f"{s.name}:{code}")
    # a shared concept needs a concept node above its two leaves
    g.add_node("_c_shared", kind="concept", label="shared", concept_id="C_SHARED")
    g.add_edge("root", "_c_shared")
    for s, code in shared:
        g.remove_edge(f"_g_{s}", f"{s}:{code}")
        g.add_edge("_c_shared", f"{s}:{code}")
    counts = code_counts(sites)
    assert list(counts.columns) == ["site", "code", "count"]
    assert counts["count"].sum() == sum(s.n_events for s in sites)
    vocab = Vocabulary.from_hierarchy(Hierarchy(g), counts=counts, min_count=3)
    assert len({vocab.encode([c], site=s)[0] for s, c in shared}) == 1
    seqs = concat([build_sequences(s, vocab) for s in sites])
    assert seqs.stats["n_events"] == sum(s.n_events for s in sites)
    assert seqs.stats["n_unknown_events"] == 0
    assert len(seqs) == sum(s.n_subjects for s in sites)
