"""Bad input on the command line: one line, non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mash.cli import main


def _run(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def test_fewer_than_two_sites(sample_dir, tmp_path, capsys):
    code, err = _run(["align", str(sample_dir / "site_A"), "--reference", "site_A", "--out", str(tmp_path)], capsys)
    assert code == 2 and "at least two sites" in err and "Traceback" not in err


def test_unknown_reference(sample_dir, tmp_path, capsys):
    code, err = _run(
        ["align", str(sample_dir / "site_A"), str(sample_dir / "site_B"), "--reference", "site_X", "--out", str(tmp_path)],
        capsys,
    )
    assert code == 2 and "unknown reference site 'site_X'" in err


def test_missing_site_dir(tmp_path, sample_dir, capsys):
    code, err = _run(
        ["align", str(tmp_path / "nope"), str(sample_dir / "site_B"), "--reference", "site_B", "--out", str(tmp_path / "o")],
        capsys,
    )
    assert code == 2 and "nope" in err and len(err.strip().splitlines()) == 1


def test_bad_event_time_names_file_row_column(tmp_path, sample_dir, capsys):
    site = tmp_path / "bad"
    site.mkdir()
    (site / "codes.csv").write_text("code,description\n001,Cholera\n002,Typhoid\n")
    (site / "events.csv").write_text("subject_id,time,code\n1,2020-01-01,001\n1,not-a-date,002\n")
    code, err = _run(["align", str(site), str(sample_dir / "site_B"), "--reference", "site_B", "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "events.csv" in err and "row 2" in err and "'time'" in err and "not-a-date" in err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_bad_anchors_file(tmp_path, sample_dir, cache_dir, capsys):
    anchors = tmp_path / "a.csv"
    anchors.write_text("site,code,reference_code\nsite_A,NOPE,E119\n")
    code, err = _run(
        ["align", str(sample_dir / "site_A"), str(sample_dir / "site_B"), "--reference", "site_B",
         "--out", str(tmp_path / "o"), "--anchors", str(anchors), "--cache-dir", str(cache_dir), "--quiet"],
        capsys,
    )
    assert code == 2 and "a.csv, row 1, column 'code'" in err


def test_console_script_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mash.cli", "align", str(tmp_path / "x"), str(tmp_path / "y"), "--reference", "x", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("mash: error:")


@pytest.mark.parametrize("bad", [["--top-k", "0"], ["--cooc-dim", "-1"]])
def test_bad_numbers_rejected(bad, sample_dir, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["align", str(sample_dir / "site_A"), str(sample_dir / "site_B"), "--reference", "site_B", "--out", str(tmp_path), *bad])
    assert exc.value.code == 2


def test_repairs_are_reported_even_when_the_run_stops(tmp_path, sample_dir, capsys):
    site = tmp_path / "s"
    site.mkdir()
    (site / "codes.csv").write_text("code,description\n001,Cholera\n")
    (site / "events.csv").write_text("subject_id,time,code\n1,2020-01-01,001\n1,2020-01-02,999\n")
    code, err = _run(["align", str(site), str(sample_dir / "site_B"), "--reference", "nope", "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "mash: error: unknown reference site 'nope'" in err
    assert "mash: warning:" in err and "'999'" in err and "not in the codes file" in err


def test_import_is_light():
    """`import mash` must not load torch (the CLI's start-up and errors stay instant)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, mash; mash.MashInputError; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
    )
    assert proc.stdout.strip() == "False"


def test_simulate_prints_outcome_rates(tmp_path, capsys):
    import json

    code = main(["simulate", str(tmp_path / "sim"), "--patients", "300", "--conditions", "120"])
    err = capsys.readouterr().out  # the summary is on stdout
    assert code == 0
    sites = json.loads((tmp_path / "sim" / "simulation.json").read_text())["outcomes"]["sites"]
    for name, r in sites.items():
        line = next(x for x in err.splitlines() if x.startswith(f"{name} outcomes:"))
        assert f"onset {r['onset']}/{r['cohort']} at risk" in line and f"event {r['event']}/300" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--heads", "3"], "dim=64 must be divisible by heads=3"),
        (["--model", "lstm", "--layers", "3"], "--layers apply to the Transformer models"),
        (["--model", "retain", "--heads", "2"], "--heads apply to the Transformer models"),
        (["--dropout", "1.5"], "ModelConfig.dropout must be a number in [0.0, 1.0)"),
        (["--lr", "0"], "lr must be a number in (0.0"),
    ],
)
def test_bad_model_options_are_one_line_errors(args, message, sample_hierarchy_file, sample_dir, tmp_path, capsys):
    """Bad model or training options are input errors, not internal errors or ignored."""
    code = main(["pretrain", str(sample_dir / "site_A"), str(sample_dir / "site_B"), "--hierarchy",
                 str(sample_hierarchy_file), "--out", str(tmp_path / "ckpt"), "--epochs", "1", "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "internal error" not in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.startswith("mash: error")]) == 1


def test_model_configs_validate():
    from mash.errors import MashInputError
    from mash.models.config import FinetuneConfig, ModelConfig, PretrainConfig

    ModelConfig(model="lstm")  # the baselines' configs keep the Transformer defaults
    for bad in ({"model": "gru"}, {"dim": 0}, {"layers": True}, {"max_codes": 1.5}, {"dim": 30, "heads": 4}):
        with pytest.raises(MashInputError):
            ModelConfig(**bad)
    for bad in ({"epochs": 0}, {"mask_share": 2.0}, {"weights": (0.0, 0.0, 0.0)}, {"weights": (1.0,)}):
        with pytest.raises(MashInputError):
            PretrainConfig(**bad)
    with pytest.raises(MashInputError):
        FinetuneConfig(patience=0)


def test_threads_option_same_outputs(sample_alignment, sample_dir, cache_dir, tmp_path):
    """`mash --threads 1` limits torch's pool for the command and restores it; two runs on
    one thread give byte-identical files, and against the default thread count only the
    rounding differs (same top-1, scores within 1e-2; docs/benchmarks.md "Threads")."""
    import pandas as pd
    import torch

    before = torch.get_num_threads()
    outs = []
    for run in range(2):
        out = tmp_path / f"one_thread{run}"
        assert main(["--threads", "1", "align", str(sample_dir / "site_A"), str(sample_dir / "site_B"),
                     "--reference", "site_B", "--out", str(out), "--cache-dir", str(cache_dir), "--quiet"]) == 0
        assert torch.get_num_threads() == before
        outs.append(out)
    for name in ("mapping.csv", "concepts.csv", "embeddings.npz"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    one, default = (pd.read_csv(d / "mapping.csv", dtype={"code": str, "reference_code": str})
                    for d in (outs[0], sample_alignment))
    top = ["site", "code", "reference_code"]
    assert one.loc[one["rank"] == 1, top].values.tolist() == default.loc[default["rank"] == 1, top].values.tolist()
    assert (one["score"] - default["score"]).abs().max() < 1e-2
    assert (one["p_no_match"] - default["p_no_match"]).abs().max() < 1e-2


def test_limit_threads_sets_and_restores():
    import torch
    from threadpoolctl import threadpool_info

    from mash.errors import MashInputError
    from mash.threads import limit_threads, thread_limit

    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1 and thread_limit() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == before
    with pytest.raises(MashInputError):
        with limit_threads(0):
            pass
