"""Tests of mash.sites: loading and validating one site's codes and events."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mash import sites as sites_module
from mash.errors import MashInputError
from mash.sites import Site, SiteDataWarning

CODES_CSV = """code,description,domain,parent
0010,Cholera,diagnosis,
0011,Cholera due to vibrio,diagnosis,0010
25000,Diabetes mellitus,diagnosis,
LAB1,Glucose,lab,
"""

EVENTS_CSV = """subject_id,time,code,numeric_value
p2,2020-01-02,25000,
p1,2020-01-01T10:00:00,0011,
p1,2020-01-01,0010,
p1,2020-01-01 10:00:00,LAB1,5.5
p2,2020-01-02,LAB1,7
p3,2021-06-30T23:59:59,0010,
"""


def write_site(
    root: Path, codes: str = CODES_CSV, events: str = EVENTS_CSV, name: str = "site_A"
) -> Path:
    site = root / name
    site.mkdir(parents=True, exist_ok=True)
    (site / "codes.csv").write_text(codes, encoding="utf-8")
    (site / "events.csv").write_text(events, encoding="utf-8")
    return site


def load_quiet(path: Path, **kwargs) -> Site:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SiteDataWarning)
        return Site.load(path, **kwargs)


def error_of(path: Path, **kwargs) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SiteDataWarning)
        with pytest.raises(MashInputError) as info:
            Site.load(path, **kwargs)
    text = str(info.value)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------------------
# The loaded tables
# --------------------------------------------------------------------------------------


def test_load_csv_tables_and_dtypes(tmp_path):
    path = write_site(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean site warns about nothing
        site = Site.load(path)
    assert site.name == "site_A"
    assert list(site.codes.columns) == ["code", "description", "domain", "parent"]
    assert list(site.events.columns) == ["subject_id", "time", "code", "code_idx", "numeric_value", "unit"]
    assert isinstance(site.codes.index, pd.RangeIndex)
    assert isinstance(site.events.index, pd.RangeIndex)
    assert site.codes["code"].tolist() == ["0010", "0011", "25000", "LAB1"]  # file order
    assert site.codes["parent"].isna().tolist() == [True, False, True, True]
    assert site.events["time"].dtype == np.dtype("datetime64[ns]")
    assert site.events["code_idx"].dtype == np.int32
    assert site.events["numeric_value"].dtype == np.float64
    assert site.events["subject_id"].dtype == "string"
    assert site.events["code"].dtype == "string"
    assert (site.n_codes, site.n_events, site.n_subjects) == (4, 6, 3)
    assert site.source == {"codes": str(path / "codes.csv"), "events": str(path / "events.csv")}
    assert set(site.input_hashes) == {str(path / "codes.csv"), str(path / "events.csv")}
    assert all(len(h) == 64 for h in site.input_hashes.values())
    assert site.report["rows"] == {"codes": 4, "events_read": 6, "events": 6}
    assert "site_A" in repr(site)


def test_leading_zeros_are_kept(tmp_path):
    codes = "code,description\n0010,a\n10,b\n010,c\n"
    events = "subject_id,time,code\n007,2020-01-01,0010\n7,2020-01-01,10\n007,2020-01-02,010\n"
    site = load_quiet(write_site(tmp_path, codes, events))
    assert site.codes["code"].tolist() == ["0010", "10", "010"]
    assert set(site.events["subject_id"]) == {"007", "7"}
    assert site.code_counts().tolist() == [1, 1, 1]


def test_name_override_and_column_names_case_and_space(tmp_path):
    codes = " Code ,DESCRIPTION, Domain\n0010,a,Diagnosis\n"
    events = "Subject_ID , TIME,CODE\n1,2020-01-01,0010\n"
    site = load_quiet(write_site(tmp_path, codes, events), name="hospital")
    assert site.name == "hospital"
    assert site.codes["domain"].tolist() == ["diagnosis"]


def test_patient_id_alias(tmp_path):
    events = EVENTS_CSV.replace("subject_id", "patient_id")
    a = load_quiet(write_site(tmp_path / "a", events=events))
    b = load_quiet(write_site(tmp_path / "b"))
    pd.testing.assert_frame_equal(a.events, b.events)


def test_code_idx_consistent_with_codes(tmp_path):
    site = load_quiet(write_site(tmp_path))
    idx = site.events["code_idx"].to_numpy()
    assert (site.codes["code"].to_numpy()[idx] == site.events["code"].to_numpy()).all()
    counts = site.code_counts()
    assert counts.dtype == np.int64 and counts.shape == (site.n_codes,)
    expected = site.events["code"].value_counts()
    for i, code in enumerate(site.codes["code"]):
        assert counts[i] == expected.get(code, 0)


def test_sort_order_is_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    lines = EVENTS_CSV.strip().splitlines()
    header, rows = lines[0], lines[1:]
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    a = load_quiet(write_site(tmp_path / "a"))
    b = load_quiet(write_site(tmp_path / "b", events="\n".join([header, *shuffled]) + "\n"))
    pd.testing.assert_frame_equal(a.events, b.events)
    ev = a.events
    keys = list(zip(ev["subject_id"], ev["time"], ev["code"], strict=True))
    assert keys == sorted(keys)
    assert ev["subject_id"].tolist() == ["p1", "p1", "p1", "p2", "p2", "p3"]
    # same subject and time: by code (text order)
    assert ev["code"].tolist()[:3] == ["0010", "0011", "LAB1"]


def test_time_formats_and_offsets(tmp_path):
    events = (
        "subject_id,time,code\n"
        "1,2020-01-01,0010\n"
        "1,2020-01-01T10:00:00+02:00,0010\n"
        "1,2020-01-01T09:00:00Z,0010\n"
        "1, 2020-01-02 08:30 ,0010\n"
    )
    site = load_quiet(write_site(tmp_path, events=events))
    assert site.events["time"].tolist() == [
        pd.Timestamp("2020-01-01 00:00"),
        pd.Timestamp("2020-01-01 08:00"),  # +02:00 converted to UTC
        pd.Timestamp("2020-01-01 09:00"),
        pd.Timestamp("2020-01-02 08:30"),
    ]


# --------------------------------------------------------------------------------------
# Other layouts give the same Site
# --------------------------------------------------------------------------------------


def assert_same_site(a: Site, b: Site) -> None:
    pd.testing.assert_frame_equal(a.codes, b.codes)
    pd.testing.assert_frame_equal(a.events, b.events)
    for key, entry in a.report.items():
        if key != "trimmed_whitespace":
            assert (
                b.report[key]["rows"] == entry["rows"]
                if "rows" in entry
                else b.report[key] == entry
            )


def test_parquet_layout_matches_csv(tmp_path):
    csv_site = load_quiet(write_site(tmp_path))
    root = tmp_path / "pq" / "site_A"
    root.mkdir(parents=True)
    codes = pd.read_csv(tmp_path / "site_A" / "codes.csv", dtype=str)
    events = pd.read_csv(tmp_path / "site_A" / "events.csv", dtype=str)
    events["time"] = pd.to_datetime(events["time"], format="ISO8601")
    events["numeric_value"] = events["numeric_value"].astype(float)
    codes.to_parquet(root / "codes.parquet", index=False)
    events.to_parquet(root / "events.parquet", index=False)
    pq_site = load_quiet(root)
    assert_same_site(csv_site, pq_site)
    assert pq_site.source["events"] == str(root / "events.parquet")


def test_meds_layout_matches_csv(tmp_path):
    codes_csv = "code,description,parent\nA/1,first,\nA/2,second,A/1\nB/1,third,\n"
    events_csv = (
        "subject_id,time,code,numeric_value\n"
        "1,2020-01-01 10:00:00,A/1,\n"
        "1,2020-01-02 00:00:00,A/2,1.5\n"
        "2,2020-01-03 00:00:00,B/1,\n"
        "10,2020-01-04 00:00:00,A/1,2.0\n"
    )
    csv_site = load_quiet(write_site(tmp_path, codes_csv, events_csv))

    root = tmp_path / "meds" / "site_A"
    (root / "metadata").mkdir(parents=True)
    (root / "data" / "train").mkdir(parents=True)
    (root / "data" / "held_out").mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "code": ["A/1", "A/2", "B/1"],
                "description": ["first", "second", "third"],
                "parent_codes": pa.array([[], ["A/1"], None], pa.list_(pa.string())),
            }
        ),
        root / "metadata" / "codes.parquet",
    )
    shard = pa.schema(
        [
            ("subject_id", pa.int64()),
            ("time", pa.timestamp("us")),
            ("code", pa.string()),
            ("numeric_value", pa.float32()),
        ]
    )
    ts = pd.to_datetime
    pq.write_table(
        pa.table(
            {
                "subject_id": [1, 1, 1],
                "time": [None, ts("2020-01-01 10:00"), ts("2020-01-02")],
                "code": ["MEDS_BIRTH", "A/1", "A/2"],
                "numeric_value": [None, None, 1.5],
            },
            schema=shard,
        ),
        root / "data" / "train" / "0.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "subject_id": [2, 10],
                "time": [ts("2020-01-03"), ts("2020-01-04")],
                "code": ["B/1", "A/1"],
                "numeric_value": [None, 2.0],
            },
            schema=shard,
        ),
        root / "data" / "held_out" / "0.parquet",
    )
    meds_site = load_quiet(root)
    pd.testing.assert_frame_equal(csv_site.codes, meds_site.codes)
    pd.testing.assert_frame_equal(csv_site.events, meds_site.events)
    assert meds_site.source == {
        "codes": str(root / "metadata" / "codes.parquet"),
        "events": str(root / "data"),
    }
    assert len(meds_site.input_hashes) == 3  # codes + two shards
    assert meds_site.report["static_events"]["rows"] == 1  # the null-time row
    assert meds_site.report["rows"]["events_read"] == 5


def test_meds_multiple_parents_keep_first(tmp_path):
    root = tmp_path / "site_M"
    (root / "metadata").mkdir(parents=True)
    (root / "data").mkdir()
    pq.write_table(
        pa.table(
            {
                "code": ["A", "B", "C"],
                "description": ["a", "b", "c"],
                "parent_codes": [None, ["A"], ["B", "A"]],
            }
        ),
        root / "metadata" / "codes.parquet",
    )
    pq.write_table(
        pa.table({"subject_id": [1], "time": [pd.Timestamp("2020-01-01")], "code": ["C"]}),
        root / "data" / "shard.parquet",
    )
    with pytest.warns(SiteDataWarning, match="several parent_codes"):
        site = Site.load(root)
    assert site.codes["parent"].tolist()[1:] == ["A", "B"]
    assert site.report["multiple_parents"]["rows"] == 1


def test_from_frames_matches_csv(tmp_path):
    csv_site = load_quiet(write_site(tmp_path))
    codes = pd.read_csv(tmp_path / "site_A" / "codes.csv", dtype=str)
    events = pd.read_csv(tmp_path / "site_A" / "events.csv", dtype=str)
    site = Site.from_frames("site_A", codes, events)
    assert_same_site(csv_site, site)
    assert site.source == {"codes": "<codes>", "events": "<events>"}
    assert set(site.input_hashes) == {"<codes>", "<events>"}


def test_from_frames_typed_columns():
    codes = pd.DataFrame({"code": ["1", "2"], "description": ["a", "b"]})
    events = pd.DataFrame(
        {
            "patient_id": [5, 5, 6],
            "time": pd.to_datetime(["2020-01-02", "2020-01-01", "2020-01-01"]),
            "code": ["2", "1", "1"],
            "numeric_value": [1, 2, 3],
        }
    )
    site = Site.from_frames("f", codes, events)
    assert site.events["subject_id"].tolist() == ["5", "5", "6"]
    assert site.events["numeric_value"].tolist() == [2.0, 1.0, 3.0]


def test_from_frames_mixed_objects_and_time_zones():
    codes = pd.DataFrame({"code": ["1", "02"], "description": ["a", "b"]})
    events = pd.DataFrame(
        {
            "subject_id": [1, "x"],
            "time": pd.to_datetime(["2020-01-01T10:00:00+02:00", "2020-01-01T00:00:00Z"], utc=True),
            "code": [1, "02"],
            "numeric_value": ["1", 2],
        }
    )
    site = Site.from_frames("f", codes, events)
    assert site.events["subject_id"].tolist() == ["1", "x"]
    assert site.events["code"].tolist() == ["1", "02"]
    assert site.events["time"].tolist() == [
        pd.Timestamp("2020-01-01 08:00"),
        pd.Timestamp("2020-01-01"),
    ]
    assert site.events["numeric_value"].tolist() == [1.0, 2.0]


def test_from_frames_errors_name_the_frames():
    codes = pd.DataFrame({"code": ["1", "1"], "description": ["a", "b"]})
    events = pd.DataFrame({"subject_id": ["s"], "time": ["2020-01-01"], "code": ["1"]})
    with pytest.raises(MashInputError, match=r"^<codes>, row 2, column 'code': duplicate code '1'"):
        Site.from_frames("f", codes, events)
    codes = pd.DataFrame({"code": ["1"], "description": ["a"]})
    events = pd.DataFrame(
        {"subject_id": ["s", "s"], "time": ["2020-01-01", "soon"], "code": ["1", "1"]}
    )
    with pytest.raises(
        MashInputError, match=r"^<events>, row 2, column 'time': unparseable time 'soon'"
    ):
        Site.from_frames("f", codes, events)


# --------------------------------------------------------------------------------------
# Repairs: counted, reported, warned
# --------------------------------------------------------------------------------------


def test_unknown_event_codes_counted_exactly(tmp_path):
    events = (
        EVENTS_CSV + "p1,2020-02-01,X1,\np1,2020-02-02,X1,\np2,2020-02-01,X2,\np4,2020-02-01,X1,\n"
    )
    with pytest.warns(
        SiteDataWarning, match=r"events\.csv: 4 event rows dropped: their 2 distinct codes"
    ):
        site = Site.load(write_site(tmp_path, events=events))
    entry = site.report["unknown_event_codes"]
    assert entry["rows"] == 4
    assert entry["distinct_codes"] == 2
    assert entry["examples"] == ["X1", "X2"]  # most frequent first
    assert site.n_events == 6
    assert site.report["rows"] == {"codes": 4, "events_read": 10, "events": 6}
    assert "p4" not in set(site.events["subject_id"])


def test_duplicate_events_collapsed_and_counted(tmp_path):
    events = (
        EVENTS_CSV
        + "p1,2020-01-01T10:00:00,LAB1,5.5\np1,2020-01-01 10:00,LAB1,5.50\np1,2020-01-01 10:00,LAB1,6\n"
    )
    with pytest.warns(SiteDataWarning, match="2 exact duplicate event rows collapsed"):
        site = Site.load(write_site(tmp_path, events=events))
    assert site.report["duplicate_events"]["rows"] == 2
    assert site.n_events == 7  # the 6.0 value is a different event


def test_non_numeric_values_set_nan_and_counted(tmp_path):
    events = "subject_id,time,code,numeric_value\n1,2020-01-01,0010,abc\n1,2020-01-02,0010,NaN\n1,2020-01-03,0010,1e3\n1,2020-01-04,0010,\n"
    with pytest.warns(SiteDataWarning, match="1 numeric_value entries"):
        site = Site.load(write_site(tmp_path, events=events))
    assert site.report["non_numeric_values"]["rows"] == 1
    assert site.report["non_numeric_values"]["examples"] == ["abc"]
    assert site.report["blank_optional_values"]["by_column"]["events.numeric_value"] == 2
    values = site.events["numeric_value"].tolist()
    assert (
        np.isnan(values[0]) and np.isnan(values[1]) and values[2] == 1000.0 and np.isnan(values[3])
    )


def test_parents_unknown_self_and_cycles(tmp_path):
    codes = "code,description,parent\nA,a,ZZ\nB,b,B\nC,c,D\nD,d,C\nE,e,A\n"
    events = "subject_id,time,code\n1,2020-01-01,A\n"
    with pytest.warns(SiteDataWarning) as record:
        site = Site.load(write_site(tmp_path, codes, events))
    text = " ".join(str(w.message) for w in record)
    assert "codes.csv" in text
    r = site.report
    assert (r["unknown_parents"]["rows"], r["unknown_parents"]["examples"]) == (1, ["ZZ"])
    assert site.codes["parent"].tolist()[0] == "ZZ"  # kept
    assert r["self_parents"]["rows"] == 1 and pd.isna(site.codes["parent"][1])
    assert r["parent_cycles"]["rows"] == 2 and r["parent_cycles"]["examples"] == ["C", "D"]


def test_whitespace_trimmed_and_counted(tmp_path):
    codes = "code,description\n 0010 ,a\n"
    events = "subject_id,time,code\n 1 ,2020-01-01, 0010\n"
    with pytest.warns(SiteDataWarning, match="whitespace"):
        site = Site.load(write_site(tmp_path, codes, events))
    assert site.codes["code"].tolist() == ["0010"]
    assert site.events["subject_id"].tolist() == ["1"]
    assert site.report["trimmed_whitespace"]["by_column"] == {
        "codes.code": 1,
        "events.code": 1,
        "events.subject_id": 1,
    }


def test_unknown_domain_kept_and_counted(tmp_path):
    codes = "code,description,domain\n0010,a,Diagnosis\n0011,b,dx\n0012,c,\n"
    events = "subject_id,time,code\n1,2020-01-01,0010\n"
    with pytest.warns(SiteDataWarning, match="domain"):
        site = Site.load(write_site(tmp_path, codes, events))
    assert site.codes["domain"].tolist()[:2] == ["diagnosis", "dx"]
    assert site.report["unknown_domains"]["rows"] == 1
    assert site.report["blank_optional_values"]["by_column"]["codes.domain"] == 1


def test_report_has_every_key(tmp_path):
    site = load_quiet(write_site(tmp_path))
    for key in (
        "unknown_event_codes",
        "duplicate_events",
        "non_numeric_values",
        "static_events",
        "unknown_parents",
        "self_parents",
        "parent_cycles",
        "multiple_parents",
        "unknown_domains",
        "trimmed_whitespace",
        "blank_optional_values",
        "units_without_value",
        "codes_with_missing_units",
        "codes_with_several_units",
        "codes_without_events",
    ):
        assert site.report[key]["rows"] == 0 or key == "blank_optional_values"
        assert "action" in site.report[key] and "reason" in site.report[key]
    assert "no_events" not in site.report  # only for a text-only site


# --------------------------------------------------------------------------------------
# Codes without events and text-only sites
# --------------------------------------------------------------------------------------


def test_codes_without_events_are_kept_and_counted(tmp_path):
    codes = CODES_CSV + "Z99,Never seen,diagnosis,\nA01,Also never seen,diagnosis,\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # normal: no warning
        site = Site.load(write_site(tmp_path, codes=codes))
    assert site.n_codes == 6 and site.n_codes_without_events == 2
    entry = site.report["codes_without_events"]
    assert entry["rows"] == 2 and entry["examples"] == ["A01", "Z99"]  # code order
    assert entry["action"] == "kept"
    assert site.code_counts().tolist()[-2:] == [0, 0]
    assert site.report["rows"] == {"codes": 6, "events_read": 6, "events": 6}


def assert_text_only(site: Site, n_codes: int) -> None:
    assert (site.n_codes, site.n_events, site.n_subjects) == (n_codes, 0, 0)
    assert site.n_codes_without_events == n_codes
    ev = site.events
    assert list(ev.columns) == ["subject_id", "time", "code", "code_idx", "numeric_value", "unit"]
    assert isinstance(ev.index, pd.RangeIndex)
    assert ev["subject_id"].dtype == "string" and ev["code"].dtype == "string"
    assert ev["time"].dtype == np.dtype("datetime64[ns]")
    assert ev["code_idx"].dtype == np.int32 and ev["numeric_value"].dtype == np.float64
    subject, days, code = site.event_arrays()
    assert subject.shape == days.shape == code.shape == (0,)
    assert (subject.dtype, days.dtype, code.dtype) == (np.int64, np.float64, np.int32)
    assert site.code_counts().tolist() == [0] * n_codes
    report = site.report
    assert report["rows"] == {"codes": n_codes, "events_read": 0, "events": 0}
    assert report["no_events"]["rows"] == 0
    assert report["no_events"]["action"].startswith("text only")
    assert report["codes_without_events"]["rows"] == n_codes
    for key, entry in report.items():  # every other count is zero
        if key not in ("rows", "codes_without_events", "blank_optional_values"):
            assert entry["rows"] == 0, key
    assert "n_events=0, n_subjects=0" in repr(site)


def load_text_only(path: Path) -> tuple[Site, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        site = Site.load(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, SiteDataWarning)]
    return site, messages


def test_text_only_site_without_events_file(tmp_path):
    site_dir = write_site(tmp_path)
    (site_dir / "events.csv").unlink()
    site, messages = load_text_only(site_dir)
    assert_text_only(site, 4)
    assert site.source == {"codes": str(site_dir / "codes.csv"), "events": None}
    assert list(site.input_hashes) == [str(site_dir / "codes.csv")]
    assert "no events file" in site.report["no_events"]["reason"]
    assert len(messages) == 1  # announced once
    assert "text-only" in messages[0] and "events.csv" in messages[0]
    assert "\n" not in messages[0]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "meds"])
def test_text_only_site_with_header_only_events(tmp_path, fmt):
    site_dir = write_site(tmp_path, events="subject_id,time,code,numeric_value\n")
    if fmt != "csv":
        (site_dir / "events.csv").unlink()
        empty = pa.table(
            {
                "subject_id": pa.array([], pa.string()),
                "time": pa.array([], pa.timestamp("us")),
                "code": pa.array([], pa.string()),
            }
        )
        target = site_dir / "events.parquet"
        if fmt == "meds":
            (site_dir / "data").mkdir()
            target = site_dir / "data" / "0.parquet"
        pq.write_table(empty, target)
    site, messages = load_text_only(site_dir)
    assert_text_only(site, 4)
    assert site.report["no_events"]["reason"] == "the events table has a header but no rows"
    assert len(messages) == 1 and "header but no rows" in messages[0]
    assert len(site.input_hashes) == 2


def test_text_only_site_from_frames():
    codes = pd.DataFrame({"code": ["A", "B", "C"], "description": ["a", "b", "c"]})
    with pytest.warns(SiteDataWarning, match="text-only"):
        site = Site.from_frames("ref", codes, None)
    assert_text_only(site, 3)
    assert site.source == {"codes": "<codes>", "events": None}
    assert set(site.input_hashes) == {"<codes>"}
    empty = pd.DataFrame({"subject_id": [], "time": [], "code": []})
    with pytest.warns(SiteDataWarning, match="header but no rows"):
        again = Site.from_frames("ref", codes, empty)
    assert_text_only(again, 3)
    pd.testing.assert_frame_equal(site.events, again.events)


def test_text_only_site_still_checks_its_files(tmp_path):
    # the events header is still required ...
    site_dir = write_site(tmp_path, events="subject_id,code\n")
    assert "missing required column 'time'" in error_of(site_dir)
    # ... as are the codes
    site_dir = write_site(tmp_path / "b", codes="code,description\n0010,\n")
    (site_dir / "events.csv").unlink()
    assert error_of(site_dir).startswith(f"{site_dir / 'codes.csv'}, row 1, column 'description'")


def test_bad_events_stay_errors(tmp_path):
    """Events that exist but are all unusable are bad input, not a text-only site."""
    site_dir = write_site(tmp_path, events="subject_id,time,code\n1,2020-01-01,Q1\n")
    assert "no events left" in error_of(site_dir)
    site_dir = write_site(tmp_path / "meds")
    (site_dir / "events.csv").unlink()
    (site_dir / "data").mkdir()
    pq.write_table(
        pa.table(
            {
                "subject_id": pa.array(["1"], pa.string()),
                "time": pa.array([None], pa.timestamp("us")),
                "code": pa.array(["0010"], pa.string()),
            }
        ),
        site_dir / "data" / "0.parquet",
    )
    assert "every event is static" in error_of(site_dir)
    (site_dir / "data" / "0.parquet").unlink()  # a data/ folder without shards
    assert "holds no .parquet shards" in error_of(site_dir)


# --------------------------------------------------------------------------------------
# Errors: file, row and column in one line
# --------------------------------------------------------------------------------------


def test_error_missing_or_not_a_directory(tmp_path):
    assert "does not exist" in error_of(tmp_path / "nope")
    f = tmp_path / "file.csv"
    f.write_text("x")
    assert error_of(f).startswith(f"{f}: expected a site directory")


def test_error_missing_codes_file(tmp_path):
    site = write_site(tmp_path)
    (site / "codes.csv").unlink()
    msg = error_of(site)
    assert msg.startswith(str(site))
    assert "codes.csv" in msg and "codes.parquet" in msg and "metadata/codes.parquet" in msg


def test_error_both_csv_and_parquet(tmp_path):
    site = write_site(tmp_path)
    pd.DataFrame({"code": ["1"], "description": ["a"]}).to_parquet(site / "codes.parquet")
    assert "both codes.csv and codes.parquet" in error_of(site)


def test_error_missing_required_column(tmp_path):
    site = write_site(tmp_path, codes="code,desc\n0010,a\n")
    msg = error_of(site)
    assert msg.startswith(f"{site / 'codes.csv'}, column 'description': missing required column")
    assert "found columns: 'code', 'desc'" in msg
    site = write_site(tmp_path / "b", events="subject,time,code\n1,2020-01-01,0010\n")
    msg = error_of(site)
    assert msg.startswith(f"{site / 'events.csv'}, column 'subject_id'")
    assert "patient_id" in msg and "'subject'" in msg


def test_error_duplicate_code(tmp_path):
    site = write_site(tmp_path, codes="code,description\n0010,a\n0020,b\n0010,c\n")
    msg = error_of(site)
    assert msg.startswith(
        f"{site / 'codes.csv'}, row 3, column 'code': duplicate code '0010' (first at row 1)"
    )


def test_error_blank_description(tmp_path):
    site = write_site(tmp_path, codes='code,description\n0010,a\n0020,"   "\n0030,\n')
    msg = error_of(site)
    assert msg.startswith(f"{site / 'codes.csv'}, row 2, column 'description': empty description")
    assert "1 more row" in msg


def test_error_blank_code_in_codes(tmp_path):
    site = write_site(tmp_path, codes="code,description\n0010,a\n,b\n")
    assert error_of(site).startswith(f"{site / 'codes.csv'}, row 2, column 'code': empty code")


def test_error_blank_code_in_events(tmp_path):
    site = write_site(tmp_path, events="subject_id,time,code\n1,2020-01-01,0010\n1,2020-01-01, \n")
    assert error_of(site).startswith(f"{site / 'events.csv'}, row 2, column 'code': empty code")


def test_error_blank_subject(tmp_path):
    site = write_site(tmp_path, events="subject_id,time,code\n,2020-01-01,0010\n")
    assert error_of(site).startswith(f"{site / 'events.csv'}, row 1, column 'subject_id': empty")


def test_error_unparseable_time(tmp_path):
    events = "subject_id,time,code\n1,2020-01-01,0010\n1,2020-01-02,0010\n1,01/32/2020,0010\n"
    msg = error_of(write_site(tmp_path, events=events))
    assert msg.startswith(
        f"{tmp_path / 'site_A' / 'events.csv'}, row 3, column 'time': unparseable time '01/32/2020'"
    )
    assert "ISO" in msg


def test_error_time_out_of_range(tmp_path):
    events = "subject_id,time,code\n1,2020-01-01,0010\n1,9999-12-31,0010\n"
    msg = error_of(write_site(tmp_path, events=events))
    assert ", row 2, column 'time'" in msg and "9999-12-31" in msg


def test_error_empty_time(tmp_path):
    events = "subject_id,time,code\n1,2020-01-01,0010\n1,,0010\n"
    msg = error_of(write_site(tmp_path, events=events))
    assert msg.startswith(f"{tmp_path / 'site_A' / 'events.csv'}, row 2, column 'time': empty time")


def test_error_binary_file(tmp_path):
    site = write_site(tmp_path)
    (site / "events.csv").write_bytes(b"PK\x03\x04\x00\x00binary\x00junk")
    msg = error_of(site)
    assert msg.startswith(f"{site / 'events.csv'}: not a UTF-8 text file")


def test_error_utf16_file(tmp_path):
    site = write_site(tmp_path)
    (site / "codes.csv").write_bytes(CODES_CSV.encode("utf-16"))
    assert error_of(site).startswith(f"{site / 'codes.csv'}: not a UTF-8 text file")


def test_error_not_utf8(tmp_path):
    site = write_site(tmp_path)
    (site / "codes.csv").write_bytes("code,description\n0010,a\n0020,caf\u00e9\n".encode("latin-1"))
    msg = error_of(site)
    assert msg.startswith(f"{site / 'codes.csv'}, row 2: not UTF-8 text")
    assert "line 3" in msg


def test_error_not_utf8_beyond_the_checked_head(tmp_path, monkeypatch):
    monkeypatch.setattr(sites_module, "_SNIFF_BYTES", 20)  # DuckDB finds it instead
    site = write_site(tmp_path)
    (site / "codes.csv").write_bytes("code,description\n0010,a\n0020,caf\u00e9\n".encode("latin-1"))
    msg = error_of(site)
    assert msg.startswith(f"{site / 'codes.csv'}, row 2: not UTF-8 text")


def test_error_ragged_row(tmp_path):
    site = write_site(tmp_path, codes="code,description\n0010,a\n0020,b,extra\n")
    msg = error_of(site)
    assert msg.startswith(f"{site / 'codes.csv'}, row 2: expected 2 comma-separated fields")


def test_error_wrong_separator(tmp_path):
    site = write_site(tmp_path, codes="code;description\n0010;a\n")
    msg = error_of(site)
    assert msg.startswith(f"{site / 'codes.csv'}, row 0: the header 'code;description'")
    assert "semicolons" in msg


def test_error_empty_files(tmp_path):
    site = write_site(tmp_path, codes="code,description\n")
    assert error_of(site).startswith(f"{site / 'codes.csv'}: no codes")
    site = write_site(tmp_path / "b", events="")
    assert error_of(site).startswith(f"{site / 'events.csv'}: empty file")
    site = write_site(tmp_path / "c", codes="")
    assert error_of(site).startswith(f"{site / 'codes.csv'}: empty file")


def test_error_no_known_event_codes(tmp_path):
    site = write_site(tmp_path, events="subject_id,time,code\n1,2020-01-01,Q1\n")
    msg = error_of(site)
    assert msg.startswith(f"{site / 'events.csv'}, column 'code': no events left")
    assert "'Q1'" in msg


def test_error_corrupt_parquet(tmp_path):
    site = write_site(tmp_path)
    (site / "events.csv").unlink()
    (site / "events.parquet").write_bytes(b"PAR1 this is not really parquet PAR1")
    msg = error_of(site)
    assert msg.startswith(f"{site / 'events.parquet'}: not a readable Parquet file")


def test_error_corrupt_meds_shard(tmp_path):
    site = write_site(tmp_path)
    (site / "events.csv").unlink()
    (site / "data" / "a").mkdir(parents=True)
    (site / "data" / "a" / "0.parquet").write_bytes(b"garbage")
    msg = error_of(site)
    assert msg.startswith(f"{site / 'data' / 'a' / '0.parquet'}: not a readable Parquet file")


def test_error_parquet_wrong_time_type(tmp_path):
    site = write_site(tmp_path)
    (site / "events.csv").unlink()
    pd.DataFrame({"subject_id": ["1"], "time": [3.5], "code": ["0010"]}).to_parquet(
        site / "events.parquet"
    )
    msg = error_of(site)
    assert msg.startswith(f"{site / 'events.parquet'}, column 'time': column has type double")


def test_error_bad_name(tmp_path):
    assert "site name" in error_of(write_site(tmp_path), name="  ")


# --------------------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_million_events_load_fast(tmp_path):
    rng = np.random.default_rng(0)
    n_codes, n = 2_000, 1_000_000
    codes = pd.DataFrame(
        {
            "code": [f"{i:05d}" for i in range(n_codes)],
            "description": [f"c {i}" for i in range(n_codes)],
        }
    )
    pool = np.array([*codes["code"], "UNK1", "UNK2", "UNK3"], dtype=object)
    base = np.datetime64("2010-01-01T00:00:00")
    times = (base + rng.integers(0, 10 * 365 * 86400, n).astype("timedelta64[s]")).astype(str)
    values = np.where(rng.random(n) < 0.3, rng.normal(size=n).round(3).astype(str), "")
    events = pd.DataFrame(
        {
            "subject_id": rng.integers(0, 20_000, n).astype(str),
            "time": times,
            "code": pool[rng.integers(0, len(pool), n)],
            "numeric_value": values,
        }
    )
    root = tmp_path / "big"
    root.mkdir()
    codes.to_csv(root / "codes.csv", index=False)
    events.to_csv(root / "events.csv", index=False)
    t0 = time.perf_counter()
    site = load_quiet(root)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10, f"loading 1M events took {elapsed:.1f} s"
    dropped = site.report["unknown_event_codes"]["rows"]
    assert site.report["rows"]["events_read"] == n
    assert site.n_events + dropped + site.report["duplicate_events"]["rows"] == n
