from __future__ import annotations

from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One text-embedding cache for the whole session (the first run fills it)."""
    return tmp_path_factory.mktemp("mash_cache")


@pytest.fixture(scope="session")
def sample_alignment(sample_dir, cache_dir, tmp_path_factory) -> Path:
    """``mash align`` of the bundled sample, run once per session."""
    from mash.cli import main

    out = tmp_path_factory.mktemp("align_out")
    code = main(
        [
            "align", str(sample_dir / "site_A"), str(sample_dir / "site_B"),
            "--reference", "site_B", "--out", str(out), "--cache-dir", str(cache_dir), "--quiet",
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="session")
def sample_hierarchy_file(sample_alignment, tmp_path_factory) -> Path:
    """A quick ``mash build-hierarchy`` of the sample alignment (ICD-10-CM labels)."""
    from mash.cli import main

    out = tmp_path_factory.mktemp("hier_session") / "h.graphml"
    code = main(["build-hierarchy", str(sample_alignment), "--out", str(out), "--labels", "icd10cm",
                 "--epochs", "10", "--quiet"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def tiny_sites(tmp_path_factory) -> Path:
    """Two tiny sites ``A`` (4 codes) and ``B`` (5 codes) with 300 events each, under one
    directory; read-only for the tests that share it."""
    import numpy as np
    import pandas as pd

    root = tmp_path_factory.mktemp("tiny_sites")
    rng = np.random.default_rng(0)
    words = ["heart failure", "type 2 diabetes", "asthma", "chronic kidney disease", "hypertension"]
    for site, codes in (("A", ["a1", "a2", "a3", "a4"]), ("B", ["b1", "b2", "b3", "b4", "b5"])):
        (root / site).mkdir()
        pd.DataFrame({"code": codes, "description": words[: len(codes)]}).to_csv(root / site / "codes.csv",
                                                                                  index=False)
        n = 300
        pd.DataFrame({"subject_id": rng.integers(0, 40, n).astype(str), "code": rng.choice(codes, n),
                      "time": (pd.Timestamp("2010-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D"))
                      .strftime("%Y-%m-%d")}).to_csv(root / site / "events.csv", index=False)
    return root
