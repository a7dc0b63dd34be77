"""Readers under fuzzed input (issue 18): bad input gives one line naming file, row and
column; nothing is misread or dropped silently."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mash import sites as sites_module
from mash.cli import main
from mash.errors import MashInputError
from mash.labels import build_label_forest, csv_source, resolve_sources
from mash.models.outcomes import read_outcomes
from mash.sites import Site, SiteDataWarning

CODES = "code,description\n01522,first\n0020,second\n"
EVENTS = "subject_id,time,code\np1,2020-01-01,01522\np1,2020-01-02,0020\n"


def write_site(root: Path, codes: str = CODES, events: str = EVENTS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "codes.csv").write_text(codes, encoding="utf-8")
    (root / "events.csv").write_text(events, encoding="utf-8")
    return root


def load_error(path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SiteDataWarning)
        with pytest.raises(MashInputError) as info:
            Site.load(path)
    text = str(info.value)
    assert "\n" not in text
    return text


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------- 1. outcomes dates


def write_outcomes(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "outcomes.csv"
    path.write_text("subject_id,index_time,y\n" + rows, encoding="utf-8")
    return path


@pytest.mark.parametrize("value", ["03/04/2010", "13/04/2010", "2010-02", "2010", "soon"])
def test_outcomes_index_time_iso_only(tmp_path, value):
    path = write_outcomes(tmp_path, f"A,2010-01-01,1\nB,{value},0\n")
    with pytest.raises(MashInputError) as info:
        read_outcomes(path, "y")
    assert one_line(info).startswith(f"{path}, row 2, column 'index_time': ")
    assert repr(value) in str(info.value)


def test_outcomes_index_time_offsets_convert_to_utc_like_sites(tmp_path):
    path = write_outcomes(
        tmp_path, "A,2010-02-01T00:00:00+06:00,1\nB,2010-02-01,0\nC,,1\nD, 2010-02-01T12:00Z ,1\n"
    )
    days = read_outcomes(path, "y")["index_day"].to_numpy()
    epoch = pd.Timestamp("1970-01-01")
    expected = [
        (pd.Timestamp("2010-01-31 18:00") - epoch) / pd.Timedelta(days=1),
        (pd.Timestamp("2010-02-01") - epoch) / pd.Timedelta(days=1),
        np.nan,
        (pd.Timestamp("2010-02-01 12:00") - epoch) / pd.Timedelta(days=1),
    ]
    np.testing.assert_allclose(days, expected)
    # the same text in a site's events gives the same instant
    site_dir = write_site(
        tmp_path / "s", events="subject_id,time,code\np1,2010-02-01T00:00:00+06:00,0020\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SiteDataWarning)
        site = Site.load(site_dir)
    assert site.event_arrays()[1][0] == pytest.approx(days[0])


# ---------------------------------------------------------------- 2. labels files


def concepts_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "concept_id": ["C1", "C2"],
            "site": ["A", "A"],
            "code": ["K1", "K2"],
            "description": ["one", "two"],
        }
    )


def test_labels_files_with_one_name_do_not_merge(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "labels.csv", tmp_path / "b" / "labels.csv"
    first.write_text("code,parent\nK1,G\n")
    second.write_text("code,parent\nK2,G\n")
    con = concepts_frame()
    sources = resolve_sources([str(first), str(second)], con)
    assert [s.name for s in sources] == [str(first), str(second)]
    forest = build_label_forest(con, np.array(["C1", "C2"], dtype=object), sources, "A")
    assert forest.concept_label[0] != forest.concept_label[1]  # two groups called G, not one
    assert set(forest.stats["labelled_by_source"]) == {str(first), str(second)}
    with pytest.raises(MashInputError, match="given twice") as info:
        resolve_sources([str(first), str(tmp_path / "a" / ".." / "a" / "labels.csv")], con)
    one_line(info)
    assert resolve_sources([str(first)], con)[0].name == "labels.csv"  # unique: the file name


def test_labels_code_with_two_parents_rejected(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("code,parent\nK1,G1\nK2,G1\nK1,G2\n")
    with pytest.raises(MashInputError) as info:
        csv_source(path)
    text = one_line(info)
    assert text.startswith(f"{path}, row 3, column 'code': ")
    assert "'G1' (row 1)" in text and "'G2' (row 3)" in text
    path.write_text("code,parent\nK1,G1\nK1,G1\n")
    with pytest.raises(MashInputError, match=r"row 2, column 'code': code 'K1' is listed twice"):
        csv_source(path)


def test_labels_header_case_and_row_numbers_as_in_site_files(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("\ufeffCode, Parent ,DESCRIPTION\nK1,G1,\nG1,,Group one\n", encoding="utf-8")
    src = csv_source(path)
    assert src.parent_of == {"K1": "G1", "G1": ""}
    assert src.text_of == {"G1": "Group one"}
    path.write_text("code,parent\nK1,G1\n ,G1\n")
    with pytest.raises(MashInputError) as info:
        csv_source(path)
    assert one_line(info).startswith(f"{path}, row 2, column 'code': empty code")
    path.write_text("child,parent\nK1,G1\n")
    with pytest.raises(MashInputError, match="missing required column 'code'"):
        csv_source(path)


# ---------------------------------------------------------------- 3. partial dates


@pytest.mark.parametrize("value", ["2009-05", "2010", "2009-5"])
def test_partial_event_dates_rejected(tmp_path, value):
    events = f"subject_id,time,code\np1,2020-01-01T10:00:00+01:00,0020\np1,{value},0020\n"
    site_dir = write_site(tmp_path / "s", events=events)
    text = load_error(site_dir)
    assert text.startswith(f"{site_dir / 'events.csv'}, row 2, column 'time': incomplete date")
    assert repr(value) in text


def test_partial_dates_rejected_when_only_bad_rows_differ(tmp_path):
    events = "subject_id,time,code\np1,2020-01-01,0020\np1,2010,0020\np1,soon,0020\n"
    site_dir = write_site(tmp_path / "s", events=events)
    assert "row 2, column 'time': incomplete date '2010'" in load_error(site_dir)


# ---------------------------------------------------------------- 4. Parquet code types


@pytest.mark.parametrize("table", ["codes", "events"])
def test_parquet_numeric_codes_rejected(tmp_path, table):
    root = tmp_path / "s"
    root.mkdir()
    as_int = pa.array([1522, 20], pa.int64())
    as_text = pa.array(["01522", "0020"], pa.string())
    pq.write_table(
        pa.table({"code": as_int if table == "codes" else as_text, "description": ["a", "b"]}),
        root / "codes.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "subject_id": ["p1", "p1"],
                "time": ["2020-01-01", "2020-01-02"],
                "code": as_int if table == "events" else as_text,
            }
        ),
        root / "events.parquet",
    )
    text = load_error(root)
    assert text.startswith(f"{root / (table + '.parquet')}, column 'code': column has type int64")
    assert "leading zeros" in text


def test_parquet_text_codes_keep_leading_zeros(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    pd.DataFrame({"code": ["01522", "0020"], "description": ["a", "b"]}).to_parquet(
        root / "codes.parquet"
    )
    pd.DataFrame(
        {"subject_id": ["p1"], "time": [pd.Timestamp("2020-01-01")], "code": ["01522"]}
    ).to_parquet(root / "events.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SiteDataWarning)
        site = Site.load(root)
    assert site.codes["code"].tolist() == ["01522", "0020"]
    csv_site = write_site(tmp_path / "c")  # a CSV reads codes as text already
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SiteDataWarning)
        assert Site.load(csv_site).events["code"].tolist() == ["01522", "0020"]


# ---------------------------------------------------------------- 5. finetune --labels


@pytest.mark.parametrize("value", ["1.5", "0", "-2", "nan", "inf", "some"])
def test_finetune_labels_must_be_share_or_whole_count(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as info:
        main(["finetune", str(tmp_path), "--target", "y", "--out", str(tmp_path / "o"),
              "--labels", value])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mash finetune: error: argument --labels: expected a share")


def test_finetune_labels_parses_shares_and_counts():
    from mash.cli import _parser

    def parsed(value: str):
        return _parser().parse_args(["finetune", "x", "--target", "y", "--out", "o",
                                     "--labels", value]).labels

    assert parsed("0.25") == 0.25 and isinstance(parsed("0.25"), float)
    assert parsed("40") == 40 and isinstance(parsed("40"), int)
    assert parsed("2.0") == 2 and isinstance(parsed("2.0"), int)


# ---------------------------------------------------------------- 6. long fields


def test_long_description_reads(tmp_path):
    long = "x" * 3_000_000
    site_dir = write_site(tmp_path / "s", codes=f"code,description\n01522,{long}\n0020,b\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SiteDataWarning)
        site = Site.load(site_dir)
    assert len(site.codes["description"][0]) == 3_000_000


def test_row_over_the_limit_names_row_and_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(sites_module, "_MAX_LINE_BYTES", 1 << 20)
    site_dir = write_site(
        tmp_path / "s", codes=f"code,description\n0020,b\n01522,{'x' * 1_500_000}\n"
    )
    text = load_error(site_dir)
    assert text.startswith(f"{site_dir / 'codes.csv'}, row 2: a row of 1,500,006 bytes")
    assert "limit of 1,048,576 bytes" in text


# ---------------------------------------------------------------- 7. symlink loops


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_symlink_loop_and_dangling_link(tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    assert load_error(loop) == f"{loop}: site directory is a symbolic link that loops (it leads back to itself)"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert "symbolic link to" in load_error(dangling) and "does not exist" in load_error(dangling)
    assert load_error(tmp_path / "absent").endswith("site directory does not exist")
    good = write_site(tmp_path / "good")
    code = main(["align", str(loop), str(good), "--reference", "good", "--out",
                 str(tmp_path / "o"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mash: error: {loop}: site directory is a symbolic link that loops (it leads back to itself)"]
