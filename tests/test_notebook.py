"""The quickstart notebook runs top to bottom (a shortened run: fewer epochs)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path, cache_dir, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MASH_QUICKSTART_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("MASH_QUICKSTART_QUICK", "1")
    monkeypatch.setenv("MASH_CACHE_DIR", str(cache_dir))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    out = tmp_path / "out"
    assert (out / "hierarchy.graphml").is_file() and (out / "hierarchy.png").is_file()
    assert (out / "tokenizer.json").is_file()
    images = sum(
        1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    )
    assert images >= 3  # the hierarchy, the pretraining losses, the representation projection
