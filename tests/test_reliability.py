"""Odd inputs that used to change results silently or end as internal errors (issue 18):
each case here is now a one-line input error or a counted, visible repair."""

from __future__ import annotations

import io
import json
import math
import re
import warnings
from contextlib import redirect_stderr, redirect_stdout

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


#: manifest fields that may differ between identical runs (docs/formats.md, "What differs
#: between two identical runs"); every other field must be equal
VOLATILE = re.compile(
    r"(^|\.)(timings_s|peak_rss_mb)(\.|$)|(^|\.)seconds(\.|$)|(events_per_second|triplets_per_s|sequences_per_s)$"
    r"|^text_cache\."
    r"|^(alignment_manifest_hash|input_hashes\.manifest\.json)$|(^|\.)(path|alignment|out)$"
)


def _flat(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _flat(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def test_identical_runs_differ_only_in_documented_manifest_fields(tmp_path, cache_dir, tiny_sites):
    runs = [tmp_path / "run1", tmp_path / "run2"]
    with warnings.catch_warnings(), redirect_stderr(io.StringIO()), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for out in runs:
            assert main(["--threads", "1", "align", str(tiny_sites / "A"), str(tiny_sites / "B"), "--reference", "B",
                         "--out", str(out), "--cache-dir", str(cache_dir), "--quiet"]) == 0
            assert main(["--threads", "1", "build-hierarchy", str(out), "--out", str(out / "h.graphml"),
                         "--epochs", "2", "--quiet"]) == 0
    for name in ("mapping.csv", "concepts.csv", "embeddings.npz", "h.graphml"):
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name
    for name in ("manifest.json", "h.manifest.json"):
        a, b = (dict(_flat(json.loads((r / name).read_text()))) for r in runs)
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        assert differ, name  # timings at least
        assert [k for k in differ if not VOLATILE.search(k)] == [], name


@pytest.mark.parametrize("refine_rounds", [0, 2])
def test_align_progress_bar_total_matches_its_steps(tiny_sites, cache_dir, monkeypatch, refine_rounds):
    """The "align" bar's total (``_PairAligner.n_steps``) equals the steps it is advanced by."""
    import contextlib

    from mash.align import pipeline
    from mash.sites import Site

    seen: dict[str, list] = {"total": [], "labels": []}

    @contextlib.contextmanager
    def recording_steps(desc, total, *, quiet=False):
        seen["total"].append(total)
        yield seen["labels"].append

    monkeypatch.setattr(pipeline, "steps", recording_steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sites = [Site.load(tiny_sites / "A"), Site.load(tiny_sites / "B")]
        pipeline.align(sites, "B", cache_dir=str(cache_dir), refine_rounds=refine_rounds, quiet=True)
    assert seen["total"] == [len(seen["labels"])] and len(seen["labels"]) == 6 + refine_rounds
