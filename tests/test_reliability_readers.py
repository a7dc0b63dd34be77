"""Readers under fuzzed input (issue 18): bad input gives one line naming file, row and
column; nothing is misread or dropped silently."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mash.errors import MashInputError
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
