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
