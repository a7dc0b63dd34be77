"""Property-based fuzzing of every reader and writer (hypothesis).

Readers get arbitrary unicode (control characters, ``$``, ``:``, quotes, newlines, a
BOM), odd sizes, dates in every shape and odd numbers. The properties:

* a reader either returns, with counts that add up to its input, or raises
  :class:`~mash.errors.MashInputError` with a one-line message; never another
  exception (which the CLI would report as an internal error, exit 1);
* a writer's file reads back to what was written (GraphML through networkx and
  :meth:`Hierarchy.load`, JSON strictly, CSV as text, NPZ bit for bit);
* a whole command (``mash align`` then ``mash build-hierarchy``) exits 0 or 2, never 1;
  on 0 every file it wrote reads back, on 2 its message is one line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mash._io import write_csv, write_json, write_npz
from mash.errors import MashInputError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: characters that broke something once: XML-forbidden controls, mathtext's $, the
#: site:code separator, CSV quoting and line ends, a BOM, a lone surrogate's neighbours
NASTY = ["\x00", "\x01", "\x0b", "\x0c", "\x1f", "\x7f", "$", ":", '"', "'", ",", ";", "\n", "\r", "\t",
         "\ufeff", "\u2028", "\ufffe", "<", ">", "&", "\\", "é", "中", "🙂", " "]
TEXT = st.text(alphabet=st.one_of(st.sampled_from(NASTY),
                                  st.characters(blacklist_categories=("Cs",))), max_size=12)
WORDY = st.lists(st.sampled_from(["heart", "failure", "diabetes", "type", "2", "acute", "renal", "asthma",
                                  "GLU", "FAST", "SER", "$x$", "a:b", "x\x0by"]), min_size=1, max_size=4).map(" ".join)
DATES = st.one_of(
    st.dates(min_value=pd.Timestamp("1900-01-01").date(), max_value=pd.Timestamp("2200-01-01").date()).map(str),
    st.sampled_from(["2010-05", "2010", "03/04/2010", "2010-02-30", "2010-01-01T10:00:00+02:00",
                     "2010-01-01T10:00:00Z", "2010-01-01 23:59:59.123456", "yesterday", "", " 2010-01-01 ",
                     "20100101", "2010-13-01", "0000-01-01", "9999-12-31"]),
)
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["", "1", "0", "1e308", "-1e308", "inf", "nan", "1,5", "0x10", " 2 ", "abc"]))


def _one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and "\r" not in text, repr(text)


def _one_error_line(stderr: str) -> None:
    """A refused command printed exactly one ``mash: error:`` line (warnings aside), no traceback."""
    errors = [line for line in stderr.splitlines() if line.startswith("mash: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr


def _csv(rows: list[dict[str, str]], header: list[str]) -> str:
    buf = io.StringIO()
    # a lone \r is a line end to CSV readers unless quoted (csv quotes only what holds
    # the lineterminator), so the file is quoted throughout, as mash's own writer does
    has_cr = any("\r" in str(v) for r in rows for v in r.values()) or any("\r" in h for h in header)
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n",
                       quoting=csv.QUOTE_ALL if has_cr else csv.QUOTE_MINIMAL)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


# ------------------------------------------------------------------ readers


@st.composite
def site_files(draw):
    codes = draw(st.lists(st.one_of(TEXT, st.sampled_from(["A01", "01522", "4280", "a:b"])), min_size=1,
                          max_size=8))
    descriptions = [draw(st.one_of(TEXT, WORDY)) for _ in codes]
    n_events = draw(st.integers(0, 25))
    events = [{"subject_id": draw(st.sampled_from(["1", "2", "x", "", "p:1"])),
               "time": draw(DATES),
               "code": draw(st.one_of(st.sampled_from(codes), TEXT)),
               "numeric_value": draw(NUMBERS)} for _ in range(n_events)]
    return codes, descriptions, events


@FAST
@given(site_files())
def test_site_reader_returns_counted_rows_or_one_line_error(files):
    from mash.sites import Site

    codes, descriptions, events = files
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        root.mkdir()
        (root / "codes.csv").write_text(
            _csv([{"code": c, "description": d} for c, d in zip(codes, descriptions, strict=True)],
                 ["code", "description"]), encoding="utf-8")
        (root / "events.csv").write_text(_csv(events, ["subject_id", "time", "code", "numeric_value"]),
                                         encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                site = Site.load(root)
            except MashInputError as exc:
                _one_line(exc)
                return
    rep = site.report
    assert rep["rows"]["codes"] == len(codes) == site.n_codes
    assert rep["rows"]["events_read"] == len(events)
    dropped = sum(rep[k]["rows"] for k in ("unknown_event_codes", "duplicate_events", "static_events"))
    assert rep["rows"]["events"] + dropped == len(events) and len(site.events) == rep["rows"]["events"]


@FAST
@given(st.lists(st.tuples(st.one_of(TEXT, st.sampled_from(["A1", "A2"])), DATES, NUMBERS), max_size=12))
def test_outcomes_reader_returns_finite_labels_or_one_line_error(rows):
    from mash.models.outcomes import read_outcomes

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outcomes.csv"
        path.write_text(_csv([{"subject_id": s, "index_time": t, "y": y} for s, t, y in rows],
                             ["subject_id", "index_time", "y"]), encoding="utf-8")
        try:
            table = read_outcomes(path, "y")
        except MashInputError as exc:
            _one_line(exc)
            return
    assert len(table) == len(rows)
    label = table["label"].to_numpy()
    assert (np.isnan(label) | np.isfinite(label)).all() and not np.isinf(label).any()
    assert table["subject_id"].is_unique


@FAST
@given(st.lists(st.tuples(st.one_of(TEXT, st.sampled_from(["K1", "K2", "G1"])),
                          st.one_of(TEXT, st.sampled_from(["G1", "G2", ""]))), max_size=10),
       st.sampled_from([["code", "parent"], ["Code", "Parent"], [" CODE ", "parent", "description"]]))
def test_labels_reader_gives_one_parent_per_code_or_one_line_error(rows, header):
    from mash.labels import csv_source

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.csv"
        path.write_text(_csv([dict(zip(header, (c, p, "text"), strict=False)) for c, p in rows], header),
                        encoding="utf-8")
        try:
            source = csv_source(path)
        except MashInputError as exc:
            _one_line(exc)
            return
    listed = [c.strip() for c, _ in rows]
    assert len(set(listed)) == len(listed)  # a repeated code is an error, never a silent overwrite
    assert set(listed) <= set(source.parent_of)


@FAST
@given(st.lists(st.tuples(st.one_of(TEXT, st.sampled_from(["A", "B"])),
                          st.one_of(TEXT, st.sampled_from(["a1", "a2"])),
                          st.one_of(TEXT, st.sampled_from(["b1", "b2"]))), max_size=8))
def test_anchor_reader_trusts_only_known_pairs(rows):
    from mash.align.anchors import read_anchor_file

    codes = {"A": pd.Series(["a1", "a2"]), "B": pd.Series(["b1", "b2"])}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "anchors.csv"
        path.write_text(_csv([{"site": s, "code": c, "reference_code": r} for s, c, r in rows],
                             ["site", "code", "reference_code"]), encoding="utf-8")
        try:
            anchors = read_anchor_file(path, codes, "B")
        except MashInputError as exc:
            _one_line(exc)
            return
    for a in anchors.values():
        assert ((a.query >= 0) & (a.query < 2) & (a.reference >= 0) & (a.reference < 2)).all()


ALIGN_FILES = ["manifest.json", "mapping.csv", "concepts.csv", "embeddings.npz"]


@pytest.fixture(scope="module")
def tiny_alignment(tiny_sites, tmp_path_factory) -> Path:
    """A real alignment of two tiny sites (from ``mash align``)."""
    from mash.cli import main

    root = tiny_sites
    out = tmp_path_factory.mktemp("fuzz_align") / "out"
    with warnings.catch_warnings(), redirect_stderr(io.StringIO()), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        assert main(["align", str(root / "A"), str(root / "B"), "--reference", "B", "--out", str(out),
                     "--quiet"]) == 0
    return out


@FAST
@given(file=st.sampled_from(ALIGN_FILES), cut=st.floats(0, 1), junk=st.binary(max_size=40))
def test_alignment_reader_refuses_damaged_files_in_one_line(tiny_alignment, file, cut, junk):
    """A truncated or overwritten alignment file loads (if still valid) or is one input error."""
    from mash.align.result import Alignment

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "out"
        copy.mkdir()
        for name in ALIGN_FILES:
            (copy / name).write_bytes((tiny_alignment / name).read_bytes())
        data = (copy / file).read_bytes()
        (copy / file).write_bytes(data[: int(len(data) * cut)] + junk)
        try:
            Alignment.load(copy)
        except MashInputError as exc:
            _one_line(exc)


@FAST
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
                    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(TEXT, kids, max_size=4)),
                    max_leaves=12))
def test_checkpoint_reader_refuses_any_manifest_in_one_line(manifest):
    from mash.models.checkpoint import load_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp)
        (ck / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        (ck / "model.pt").write_bytes(b"not a checkpoint")
        with pytest.raises(MashInputError) as info:
            load_checkpoint(ck)
    _one_line(info.value)


# ------------------------------------------------------------------ writers


def _finite_only(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, list):
        return [_finite_only(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _finite_only(v) for k, v in obj.items()}
    return obj


@FAST
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**62), 2**62), st.floats(), TEXT),
                    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(TEXT, kids, max_size=4)),
                    max_leaves=15))
def test_json_writer_reads_back_strictly(obj):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.json"
        write_json(path, obj)
        back = json.loads(path.read_text(encoding="utf-8"),
                          parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert back == _finite_only(obj)


@FAST
@given(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=10))
def test_csv_writer_reads_back_as_text(rows):
    frame = pd.DataFrame(rows, columns=["code", "description"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.csv"
        write_csv(path, frame)
        back = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    pd.testing.assert_frame_equal(back, frame.astype(str))


@FAST
@given(st.lists(st.floats(width=32), min_size=1, max_size=20), st.lists(TEXT, min_size=1, max_size=5))
def test_npz_writer_reads_back_bit_for_bit(values, names):
    arr = np.asarray(values, dtype=np.float32)
    text = np.asarray(names)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npz"
        write_npz(path, vectors=arr, code=text)
        with np.load(path, allow_pickle=False) as z:
            assert z["vectors"].tobytes() == arr.tobytes() and z["code"].tolist() == text.tolist()


@st.composite
def named_trees(draw):
    """A small hierarchy with arbitrary site names, codes, descriptions and labels."""
    n_leaves = draw(st.integers(1, 6))
    g = nx.DiGraph()
    g.add_node("root", kind="root", label=draw(TEXT))
    g.add_node("_g0", kind="group", label=draw(TEXT))
    g.add_edge("root", "_g0")
    seen = set()
    for i in range(n_leaves):
        site, code = draw(st.sampled_from(["A", "B", "site_1"])), draw(st.one_of(TEXT, st.just("a:b")))
        assume((site, code) not in seen)
        seen.add((site, code))
        v = f"leaf{i}"
        g.add_node(v, kind="code", site=site, code=code, description=draw(st.one_of(TEXT, WORDY)),
                   concept_id=f"C{i:06d}", label=draw(TEXT))
        g.add_edge("_g0" if i == 0 else draw(st.sampled_from(["root", "_g0"])), v)  # no childless group
    return g


@FAST
@given(named_trees(), st.sampled_from(["graphml", "json"]))
def test_hierarchy_files_read_back(graph, fmt):
    from mash.hyperbolic.hierarchy import Hierarchy

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"h.{fmt}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                Hierarchy(graph).save(path) if fmt == "json" else Hierarchy(graph).to_graphml(path)
            except MashInputError as exc:  # refusing a name is allowed; writing a broken file is not
                _one_line(exc)
                return
        if fmt == "graphml":
            nx.read_graphml(path)  # well-formed XML that networkx reads
        back = Hierarchy.load(path)
    leaves = {(d["site"], d["code"]) for _, d in graph.nodes(data=True) if d["kind"] == "code"}
    got = {(d["site"], d["code"]) for _, d in back.graph.nodes(data=True) if d.get("kind") == "code"}
    assert len(got) == len(leaves)  # no leaf lost or merged


@SLOW
@given(st.lists(st.one_of(TEXT, WORDY), min_size=3, max_size=3))
@example(["$", "costs $5 and $", "$\\frac{x$"])  # matplotlib's mathtext fails on these
def test_plot_accepts_any_label(labels):
    from mash.hyperbolic.plot import plot_disk

    coords = np.array([[0.0, 0.0], [0.3, 0.1], [-0.2, 0.4]])
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "p.png"
        plot_disk(coords, np.array([-1, 0, 0]), labels, path, title=labels[0])
        assert path.stat().st_size > 0


# ------------------------------------------------------------------ whole commands


@SLOW
@given(st.lists(st.one_of(TEXT, WORDY), min_size=3, max_size=3),
       st.lists(st.one_of(TEXT, st.sampled_from(["x:1", "01", "$"])), min_size=3, max_size=3, unique=True))
@example(["heart $failure", "asthma\x0b", "type: 2"], ["x:1", "01", "$"])
def test_align_then_build_hierarchy_exit_0_or_2(descriptions, codes):
    from mash.align.result import Alignment
    from mash.cli import main
    from mash.hyperbolic.hierarchy import Hierarchy

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for site, site_codes, desc in (("A", codes, descriptions), ("B", ["b1", "b2", "b3"],
                                                                    ["heart failure", "asthma", "diabetes"])):
            (root / site).mkdir()
            (root / site / "codes.csv").write_text(
                _csv([{"code": c, "description": d} for c, d in zip(site_codes, desc, strict=True)],
                     ["code", "description"]), encoding="utf-8")
            ev = [{"subject_id": str(rng.integers(0, 20)), "code": site_codes[rng.integers(0, 3)],
                   "time": f"2010-01-{rng.integers(1, 28):02d}"} for _ in range(60)]
            (root / site / "events.csv").write_text(_csv(ev, ["subject_id", "time", "code"]), encoding="utf-8")
        out, err = root / "out", io.StringIO()
        with warnings.catch_warnings(), redirect_stderr(err), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            rc = main(["align", str(root / "A"), str(root / "B"), "--reference", "B", "--out", str(out),
                       "--quiet"])
            assert rc in (0, 2), err.getvalue()
            if rc == 2:
                _one_error_line(err.getvalue())
                return
            Alignment.load(out)
            for name in ("A", "B"):  # the manifest's counts add up to the input
                rep = json.loads((out / "manifest.json").read_text())["sites"][name]["skipped_or_repaired"]
                dropped = sum(rep[k]["rows"] for k in ("unknown_event_codes", "duplicate_events", "static_events"))
                assert rep["rows"]["events_read"] == 60 and rep["rows"]["events"] + dropped == 60
                assert rep["rows"]["codes"] == 3
            mapping = pd.read_csv(out / "mapping.csv", dtype=str, keep_default_na=False)
            assert set(mapping["code"]) <= {c.strip() for c in codes}
            rc = main(["build-hierarchy", str(out), "--out", str(out / "h.graphml"), "--epochs", "2",
                       "--plot", str(out / "h.png"), "--quiet"])
            assert rc in (0, 2), err.getvalue()
            if rc == 0:
                nx.read_graphml(out / "h.graphml")
                tree = Hierarchy.load(out / "h.graphml")
                n_codes = sum(1 for _, d in tree.graph.nodes(data=True) if d.get("kind") == "code")
                assert n_codes == 6  # every code of both sites is a leaf
            else:
                _one_error_line(err.getvalue())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patients=st.sampled_from(["1", "2", "0", "-1", "x", "1.5"]),
       conditions=st.sampled_from(["1", "5", "all", "0", "abc"]),
       share=st.sampled_from(["0", "0.5", "0.99", "1", "-0.1", "nan"]),
       opaque=st.sampled_from([[], ["--opaque", "site_A"], ["--opaque", "site_C"]]))
def test_simulate_options_exit_0_or_2(patients, conditions, share, opaque):
    """``mash simulate`` on any option values: 0 with a complete, readable output, or 2."""
    from mash.cli import main

    assume(conditions != "all")  # every usable condition: a full-size world, not a fuzz case
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "sim", io.StringIO()
        with warnings.catch_warnings(), redirect_stderr(err), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                rc = main(["simulate", str(out), "--patients", patients, "--conditions", conditions,
                           "--unshared-share", share, *opaque, "--quiet"])
            except SystemExit as exc:  # argparse refuses a malformed value
                rc = exc.code
        assert rc in (0, 2), err.getvalue()
        if rc == 2:
            _one_error_line(err.getvalue().replace("mash simulate: error:", "mash: error:"))
            return
        manifest = json.loads((out / "simulation.json").read_text())
        assert manifest
        gold = pd.read_csv(out / "gold.csv", dtype=str, keep_default_na=False)
        codes_a = pd.read_csv(out / "site_A" / "codes.csv", dtype=str, keep_default_na=False)
        codes_b = pd.read_csv(out / "site_B" / "codes.csv", dtype=str, keep_default_na=False)
        assert set(gold["code"]) <= set(codes_a["code"]) and set(gold["reference_code"]) <= set(codes_b["code"])
