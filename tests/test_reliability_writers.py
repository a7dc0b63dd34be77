"""Writers and loaders under hostile input (issue 18): what is written reads back, or the
command stops with one line; a directory from two runs or a killed run is refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from mash.align.result import Alignment
from mash.cli import main
from mash.errors import MashError, MashInputError
from mash.hyperbolic.build import build_hierarchy
from mash.hyperbolic.hierarchy import Hierarchy, xml_clean, xml_forbidden

FAST = {"epochs": 5, "dim": 4}
ROOT = Path(__file__).resolve().parents[1]


def tiny_alignment(n=12, *, sites=None, codes=None, descriptions=None, seed=0):
    """An Alignment of ``n`` one-code concepts in three clusters, with manifest counts."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 16))
    vec = centres[np.arange(n) % 3] + 0.05 * rng.normal(size=(n, 16))
    sites = np.asarray(sites if sites is not None else ["A", "B"] * (n // 2), dtype=object)
    codes = np.asarray(codes if codes is not None else [f"K{i:03d}" for i in range(n)], dtype=object)
    desc = descriptions if descriptions is not None else [f"code {i}" for i in range(n)]
    concepts = pd.DataFrame({"concept_id": [f"C{i:04d}" for i in range(n)], "site": sites, "code": codes,
                             "description": desc})
    emb = {"site": sites.astype(str), "code": codes.astype(str), "text": vec.astype(np.float32),
           "cooccurrence": np.zeros((n, 2), np.float32), "cooccurrence_reliable": np.zeros(n, bool),
           "vectors": np.hstack([vec, np.zeros((n, 2))]).astype(np.float32)}
    mapping = pd.DataFrame({"site": ["A"], "code": [codes[0]], "reference_code": [codes[1]], "score": [0.5],
                            "rank": [1]})
    names = list(dict.fromkeys(sites))
    manifest = {"reference": names[-1],
                "sites": {s: {"codes": int((sites == s).sum())} for s in names},
                "outputs": {"mapping_rows": 1, "concepts": n, "embedding_rows": n}}
    return Alignment(names[-1], mapping, concepts, emb, manifest)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [x for x in err if x.startswith("mash: ")]
    assert errors and errors[-1].startswith("mash: error: "), err
    assert "Traceback" not in "\n".join(err)
    return errors[-1]


# ------------------------------------------------------------------ 1. control characters


BAD_TEXT = "vertical\x0btab, form\x0cfeed, nul\x00, unit\x1fsep, non-char\ufffe"


def test_xml_clean_removes_exactly_what_xml_forbids():
    assert xml_forbidden(BAD_TEXT) == 5
    clean = xml_clean(BAD_TEXT)
    assert xml_forbidden(clean) == 0
    assert clean.startswith("vertical tab, form feed, nul, unit sep")  # whitespace controls → space
    assert xml_clean("tab\tand\nnewline é 𝄞") == "tab\tand\nnewline é 𝄞"


@pytest.mark.parametrize("suffix", [".graphml", ".json"])
def test_control_characters_in_descriptions_read_back(tmp_path, suffix):
    desc = [f"code {i}" for i in range(12)]
    desc[0], desc[3] = BAD_TEXT, "a\x0bb"
    h = build_hierarchy(tiny_alignment(descriptions=desc), **FAST)
    assert h.manifest["counts"]["description_characters_removed"] == 6
    assert any("XML 1.0" in w for w in h.manifest["warnings"])
    path = h.save(tmp_path / f"h{suffix}")
    back = Hierarchy.load(path)
    assert len(back.leaves()) == 12
    if suffix == ".graphml":
        g = nx.read_graphml(path)
        assert g.nodes["A:K000"]["description"] == xml_clean(BAD_TEXT)
    else:
        json.loads(path.read_text(encoding="utf-8"))


def test_graphml_writer_cleans_a_hand_built_graph(tmp_path):
    g = nx.DiGraph()
    g.add_node("root", kind="root", label="All\x0c", depth=0, coordinates="0 0")
    g.add_node("s:c", kind="code", site="s", code="c", label="x\x00y", description="d\x0b", depth=1,
               coordinates="0 0")
    g.add_edge("root", "s:c")
    with pytest.warns(UserWarning, match="3 characters"):
        Hierarchy(g).to_graphml(tmp_path / "h.graphml")
    assert Hierarchy.load(tmp_path / "h.graphml").graph.nodes["s:c"]["description"] == "d "


def test_control_character_in_a_code_is_one_line_error():
    with pytest.raises(MashInputError, match=r"row 3, column 'code'") as exc:
        build_hierarchy(tiny_alignment(codes=[f"K{i}" for i in range(2)] + ["bad\x0b"] + [f"K{i}" for i in range(3, 12)]),
                        **FAST)
    assert "\n" not in str(exc.value)


def test_cli_build_hierarchy_with_control_characters_warns_and_reads_back(tmp_path, capsys):
    desc = [f"code {i}" for i in range(12)]
    desc[5] = "bad\x0b\x0c"
    tiny_alignment(descriptions=desc).save(tmp_path / "al")
    out = tmp_path / "h.graphml"
    assert main(["build-hierarchy", str(tmp_path / "al"), "--out", str(out), "--epochs", "5", "--dim", "4",
                 "--quiet"]) == 0
    assert "2 characters that XML 1.0 cannot hold" in capsys.readouterr().err
    nx.read_graphml(out)
    Hierarchy.load(out)


# ------------------------------------------------------------------ 2. ':' in site names and codes


def test_colon_in_site_name_is_refused(tmp_path):
    from mash.sites import Site

    with pytest.raises(MashInputError, match="must not contain ':'"):
        Site.load(ROOT / "data" / "sample" / "site_A", name="a:b")
    with pytest.raises(MashInputError, match="contains ':'") as exc:
        build_hierarchy(tiny_alignment(sites=["a:b"] * 6 + ["a"] * 6), **FAST)
    assert "\n" not in str(exc.value)


def test_colon_in_codes_keeps_every_leaf(tmp_path):
    codes = ["b:K0", "K0"] + [f"x:{i}:y" for i in range(10)]
    h = build_hierarchy(tiny_alignment(codes=codes, sites=["A"] * 12), **FAST)
    leaves = h.leaves()
    assert len(leaves) == 12 and set(leaves["code"]) == set(codes)
    back = Hierarchy.load(h.save(tmp_path / "h.graphml"))
    assert set(back.leaves()["node"]) == {f"A:{c}" for c in codes}
    assert back.ancestors("A:b:K0")[-1] == back.root
    with pytest.raises(MashInputError, match="e.g. A:b:K0"):
        back.ancestors("b:K0")


# ------------------------------------------------------------------ 3. incomplete alignment directories


def test_code_missing_from_concepts_csv_is_refused(tmp_path, capsys):
    al = tmp_path / "al"
    tiny_alignment().save(al)
    concepts = pd.read_csv(al / "concepts.csv", dtype=str)
    concepts.iloc[:-1].to_csv(al / "concepts.csv", index=False)
    with pytest.raises(MashInputError, match="concepts.csv: .*sha256 differs"):
        Alignment.load(al)
    assert main(["build-hierarchy", str(al), "--out", str(tmp_path / "h.graphml"), "--quiet"]) == 2
    assert "concepts.csv" in one_line_error(capsys)
    assert not (tmp_path / "h.graphml").exists()


def test_counts_are_checked_without_hashes(tmp_path):
    al = tmp_path / "al"
    tiny_alignment().save(al)
    m = json.loads((al / "manifest.json").read_text())
    del m["files"]  # a manifest of an older mash
    (al / "manifest.json").write_text(json.dumps(m))
    Alignment.load(al)
    pd.read_csv(al / "concepts.csv", dtype=str).iloc[:-1].to_csv(al / "concepts.csv", index=False)
    with pytest.raises(MashInputError, match="11 concepts, the manifest counted 12"):
        Alignment.load(al)


def test_in_memory_alignment_with_a_code_missing_from_concepts_is_refused():
    a = tiny_alignment()
    a.concepts = a.concepts.iloc[1:]
    with pytest.raises(MashInputError, match=r"1 aligned codes are missing, first \(A, K000\)"):
        build_hierarchy(a, **FAST)


# ------------------------------------------------------------------ 4. mixed directories, killed runs


def test_mapping_of_another_run_is_refused(tmp_path, capsys):
    tiny_alignment().save(tmp_path / "old")
    new = tiny_alignment(seed=1)
    new.mapping = pd.concat([new.mapping] * 2, ignore_index=True)
    new.save(tmp_path / "new")
    shutil.copy(tmp_path / "new" / "mapping.csv", tmp_path / "old" / "mapping.csv")
    with pytest.raises(MashInputError, match="mapping.csv: is not the file manifest.json describes"):
        Alignment.load(tmp_path / "old")
    assert main(["build-hierarchy", str(tmp_path / "old"), "--out", str(tmp_path / "h.graphml")]) == 2
    assert "sha256 differs" in one_line_error(capsys)


def test_save_removes_stale_temporaries_and_the_old_manifest_first(tmp_path):
    out = tmp_path / "al"
    out.mkdir()
    stale = [out / ".mapping.csv.k1ll3d00.tmp", out / ".manifest.json.abcdefgh.tmp"]
    for p in stale:
        p.write_text("half")
    (out / "other.tmp").write_text("not ours")
    tiny_alignment().save(out)
    assert not any(p.exists() for p in stale) and (out / "other.tmp").exists()
    Alignment.load(out)


def test_hierarchy_file_of_another_run_is_refused(tmp_path):
    a = build_hierarchy(tiny_alignment(), **FAST).save(tmp_path / "a.graphml")
    b = build_hierarchy(tiny_alignment(seed=3), seed=1, **FAST).save(tmp_path / "b.graphml")
    shutil.copy(b, a)  # the new tree beside the old manifest
    with pytest.raises(MashInputError, match="a.graphml: is not the file a.manifest.json describes"):
        Hierarchy.load(a)
    Hierarchy.load(b)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 60.0) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; False if it ended first."""
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.001)
    proc.wait()
    return False


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_alignment_save_killed_mid_write_is_refused_then_rerun_succeeds(tmp_path):
    out = tmp_path / "al"
    big = tiny_alignment(n=40_000)  # about 5 MB of embeddings: a measurable write
    big.save(out)
    old = Alignment.load(out)
    script = ("from mash.align.result import Alignment\n"
              f"a = Alignment.load({str(out)!r})\n"
              "a.mapping = a.mapping.assign(score=0.25)\n"
              "print('go', flush=True)\n"
              f"a.save({str(out)!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", script], env=_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "go"
    _kill_when(proc, lambda: any(out.glob(".embeddings.npz.*.tmp")) or not (out / "manifest.json").exists())
    try:
        back = Alignment.load(out)
    except MashInputError as exc:  # refused: never a mix
        assert "\n" not in str(exc)
    else:  # the process got to the end: the new complete run, not a mix
        assert (back.mapping["score"] == 0.25).all() or back.mapping.equals(old.mapping)
    big.save(out)  # the re-run
    assert Alignment.load(out).concepts.shape == old.concepts.shape
    assert not list(out.glob(".*.tmp"))


def test_simulate_killed_mid_write_leaves_no_mix_and_rerun_succeeds(tmp_path):
    from mash._io import sha256_file

    out = tmp_path / "sim"
    cmd = [sys.executable, "-m", "mash.cli", "simulate", "--patients", "3000", "--conditions", "100", "--quiet"]
    subprocess.run([*cmd, str(tmp_path / "new"), "--seed", "2"], env=_env(), check=True)
    subprocess.run([*cmd, str(out), "--seed", "1"], env=_env(), check=True)

    def hashes(d: Path) -> set[str]:
        return {f["sha256"] for f in json.loads((d / "simulation.json").read_text())["files"].values()}

    new, old = hashes(tmp_path / "new"), hashes(out)
    proc = subprocess.Popen([*cmd, str(out), "--seed", "2"], env=_env(), stderr=subprocess.PIPE)
    killed = _kill_when(proc, lambda: not (out / "simulation.json").exists())
    present = {sha256_file(p) for p in out.rglob("*") if p.is_file() and not p.name.endswith(".tmp")}
    if (out / "simulation.json").exists():  # complete: the files its manifest lists
        assert hashes(out) <= present and not killed or hashes(out) in (old, new)
    else:  # killed while replacing: old files or new files, never both (no manifest: incomplete)
        assert not (present & (old - new) and present & (new - old))
    done = subprocess.run([*cmd, str(out), "--seed", "2"], env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert hashes(out) == new and not list(out.rglob(".*.tmp"))


def test_simulate_into_a_used_directory_removes_and_lists_its_own_outputs(tmp_path):
    from mash.synth import simulate

    out = tmp_path / "sim"
    simulate(out, n_patients=50, n_conditions=30, opaque_site="site_A", quiet=True)
    (out / "notes.txt").write_text("mine")
    with pytest.warns(UserWarning, match=r"removed \d+ files of an earlier run.*opaque_key.csv"):
        simulate(out, n_patients=50, n_conditions=30, quiet=True)
    assert not (out / "opaque_key.csv").exists() and (out / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------ 5. --format against the suffix


def test_format_that_contradicts_the_suffix_is_refused(tmp_path, capsys):
    h = build_hierarchy(tiny_alignment(), **FAST)
    with pytest.raises(MashInputError, match="--format json does not match the suffix .graphml"):
        h.save(tmp_path / "h.graphml", format="json")
    tiny_alignment().save(tmp_path / "al")
    assert main(["build-hierarchy", str(tmp_path / "al"), "--out", str(tmp_path / "h.graphml"),
                 "--format", "json"]) == 2
    assert "does not match the suffix" in one_line_error(capsys)
    assert not list(tmp_path.glob("h.*"))


def test_load_sniffs_json_whatever_the_suffix(tmp_path):
    h = build_hierarchy(tiny_alignment(), **FAST)
    h.save(tmp_path / "h.tree", format="json")
    assert len(Hierarchy.load(tmp_path / "h.tree").leaves()) == 12
    h.save(tmp_path / "g.tree")
    assert len(Hierarchy.load(tmp_path / "g.tree").leaves()) == 12


# ------------------------------------------------------------------ 6. --out checked first


def _commands(out: Path, sites: Path) -> list[list[str]]:
    s = str(sites / "site_A")
    return [
        ["align", s, s, "--reference", "site_A", "--out", str(out)],
        ["build-hierarchy", str(sites), "--out", str(out)],
        ["pretrain", s, "--hierarchy", str(sites / "h.graphml"), "--out", str(out)],
        ["finetune", s, "--target", "event", "--hierarchy", str(sites / "h.graphml"), "--out", str(out)],
        ["simulate", str(out)],
    ]


@pytest.mark.parametrize("where", ["is_file", "under_file"])
@pytest.mark.parametrize("i", range(5))
def test_out_that_cannot_be_written_is_refused_first(tmp_path, capsys, where, i):
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("x")
    out = blocker if where == "is_file" else blocker / "sub" / "dir"
    if where == "is_file" and i == 1:  # build-hierarchy writes a file: a directory is in the way
        out = tmp_path / "a_dir"
        out.mkdir()
        argv = ["build-hierarchy", str(tmp_path / "nowhere"), "--out", str(out)]
    else:
        argv = _commands(out, tmp_path / "nowhere")[i]
    t0 = time.perf_counter()
    assert main(argv) == 2
    line = one_line_error(capsys)
    assert "nowhere" not in line and ("--out" in line or "OUT_DIR" in line), line  # before reading any input
    assert time.perf_counter() - t0 < 5


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_out_in_a_read_only_folder_is_refused_first(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["simulate", str(ro / "sim")]) == 2
        assert "no write permission" in one_line_error(capsys)
    finally:
        ro.chmod(0o700)


# ------------------------------------------------------------------ 7. --plot


def test_dollar_signs_are_drawn_as_text(tmp_path):
    g = nx.DiGraph()  # labels that matplotlib's mathtext cannot parse
    g.add_node("root", kind="root", label="All", depth=0, coordinates="0 0")
    for i in range(3):
        g.add_node(f"s$:c{i}", kind="code", site="s$", code=f"c{i}", label=f"costs $5 or $\\frac{{$ {i}",
                   depth=1, coordinates=f"0.{i + 1} 0.2")
        g.add_edge("root", f"s$:c{i}")
    Hierarchy(g).plot(tmp_path / "h.png", title="$\\frac{$")
    assert (tmp_path / "h.png").stat().st_size > 0
    from mash.models.projection import plot_projection

    plot_projection(np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2, tmp_path / "p.svg",
                    title="$y^$: test patients")
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")


def test_plot_suffix_is_checked_before_anything_is_written(tmp_path, capsys):
    tiny_alignment().save(tmp_path / "al")
    out = tmp_path / "h.graphml"
    assert main(["build-hierarchy", str(tmp_path / "al"), "--out", str(out), "--plot", str(tmp_path / "h.jpeg")]) == 2
    assert "unknown suffix" in one_line_error(capsys)
    assert not out.exists()
    assert main(["finetune", str(tmp_path / "nowhere"), "--target", "y", "--hierarchy", str(out),
                 "--out", str(tmp_path / "ft"), "--plot", str(tmp_path / "p.gif")]) == 2
    assert "--plot 'p.gif': unknown suffix" in one_line_error(capsys)


# ------------------------------------------------------------------ 8. corrupt inputs of the loaders


def test_embeddings_without_vectors_is_an_input_error(tmp_path, capsys):
    al = tmp_path / "al"
    tiny_alignment().save(al)
    with np.load(al / "embeddings.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "vectors"}
    np.savez(al / "embeddings.npz", **arrays)
    m = json.loads((al / "manifest.json").read_text())
    del m["files"]
    (al / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(MashInputError, match=r"embeddings.npz: missing arrays \['vectors'\]"):
        Alignment.load(al)
    assert main(["build-hierarchy", str(al), "--out", str(tmp_path / "h.graphml")]) == 2
    assert "missing arrays" in one_line_error(capsys)


@pytest.mark.parametrize("text", ["[1, 2, 3]", "{not json", "\"a string\""])
def test_list_shaped_or_corrupt_manifests_are_input_errors(tmp_path, text):
    from mash.models.checkpoint import load_checkpoint

    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "model.pt").write_bytes(b"not a checkpoint")
    (ck / "manifest.json").write_text(text)
    with pytest.raises(MashInputError, match="manifest.json: corrupt manifest") as exc:
        load_checkpoint(ck)
    assert "\n" not in str(exc.value)
    al = tmp_path / "al"
    tiny_alignment().save(al)
    (al / "manifest.json").write_text(text)
    with pytest.raises(MashInputError, match="corrupt manifest"):
        Alignment.load(al)
    h = build_hierarchy(tiny_alignment(), **FAST).save(tmp_path / "h.graphml")
    (tmp_path / "h.manifest.json").write_text(text)
    with pytest.raises(MashInputError, match="corrupt manifest"):
        Hierarchy.load(h)


def test_errors_are_mash_errors():
    assert issubclass(MashInputError, MashError)


def test_checkpoint_files_of_another_run_are_refused(tmp_path):
    from mash.models.checkpoint import load_checkpoint, save_checkpoint
    from mash.models.config import ModelConfig
    from mash.models.registry import make_encoder
    from mash.vocab import Vocabulary

    vocab = Vocabulary.from_hierarchy(build_hierarchy(tiny_alignment(), **FAST))
    model = ModelConfig(dim=8, layers=1, heads=2, init=False)
    ck = tmp_path / "ck"
    (ck).mkdir()
    (ck / ".model.pt.k1ll3d00.tmp").write_bytes(b"half")
    save_checkpoint(ck, make_encoder(model, len(vocab), None), model, vocab, {"kind": "test"})
    assert not list(ck.glob(".*.tmp"))
    assert load_checkpoint(ck)[3]["kind"] == "test"
    (ck / "tokenizer.json").write_text((ck / "tokenizer.json").read_text() + " ")
    with pytest.raises(MashInputError, match="tokenizer.json: is not the file manifest.json describes"):
        load_checkpoint(ck)
