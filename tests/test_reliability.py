"""Odd inputs that used to change results silently or end as internal errors (issue 18):
each case here is now a one-line input error or a counted, visible repair."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mash._io import write_json
from mash.cli import main
from mash.errors import MashInputError


def test_write_json_writes_null_for_non_finite_numbers(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"auroc": float("nan"), "list": [1.0, np.float32("inf"), -math.inf], "n": np.int64(3),
                      "arr": np.array([np.nan, 2.0])})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"auroc": None, "list": [1.0, None, None], "n": 3, "arr": [None, 2.0]}


def test_pick_device_names_what_is_wrong():
    import torch

    from mash.models.train import pick_device

    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(MashInputError, match="not a torch device"):
        pick_device("tpu9")
    with pytest.raises(MashInputError, match="CUDA device"):
        pick_device(f"cuda:{torch.cuda.device_count() + 5}")
    with pytest.raises(MashInputError, match="cpu, cuda or mps"):
        pick_device("meta")


def test_checkpoint_files_are_byte_identical_for_the_same_payload(tmp_path):
    """torch.save through a file names the archive ``archive``, not the random temporary file."""
    import torch

    from mash.models.checkpoint import _save_torch

    payload = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "n_tokens": 3}
    _save_torch(tmp_path / "a.pt", payload)
    _save_torch(tmp_path / "b.pt", payload)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]["w"], payload["state_dict"]["w"])


def test_non_finite_alignment_vectors_are_named():
    from mash.hyperbolic.build import member_vectors

    vectors = np.ones((3, 4))
    vectors[1, 2] = np.nan
    emb = {"vectors": vectors, "text": np.ones((3, 2)), "site": np.array(["A", "A", "B"]),
           "code": np.array(["x", "y", "z"])}
    with pytest.raises(MashInputError, match=r"1 rows of 'vectors' are not finite \(first: row 2, A:y\)"):
        member_vectors(emb, 0.3)


def test_simulate_one_patient_summarises_empty_cohorts(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "sim"), "--patients", "1", "--conditions", "20"]) == 0
    out = capsys.readouterr().out
    assert "at risk (n/a)" in out and "wrote" in out
    manifest = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert manifest["outcomes"]["sites"]["site_A"]["onset_rate"] is None
