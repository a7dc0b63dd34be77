"""``mash pretrain`` / ``mash finetune`` end to end on the sample, and their bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mash._io import sha256_file
from mash.cli import main
from mash.models.outcomes import attach_outcomes, cut_at_index, read_outcomes
from mash.sequences import build_sequences
from mash.sites import Site
from mash.vocab import Vocabulary

SMALL = ["--dim", "16", "--heads", "2", "--layers", "1", "--max-visits", "16", "--quiet"]


@pytest.fixture(scope="module")
def checkpoint(sample_dir, sample_hierarchy_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    code = main(["pretrain", str(sample_dir / "site_A"), str(sample_dir / "site_B"),
                 "--hierarchy", str(sample_hierarchy_file), "--out", str(out), "--epochs", "1", *SMALL])
    assert code == 0
    return out


def test_pretrain_writes_a_checkpoint(checkpoint):
    from tokenizers import Tokenizer

    names = {p.name for p in checkpoint.iterdir()}
    assert {"model.pt", "vocab.json", "tokenizer.json", "manifest.json", "pretrain_losses.csv"} <= names
    m = json.loads((checkpoint / "manifest.json").read_text())
    assert m["counts"]["sites"]["site_A"]["n_patients"] == 3000
    assert m["counts"]["sites"]["site_B"]["n_unknown_events"] == 0
    assert m["parameters"]["model"]["model"] == "time_aware" and m["sequences_per_s"] > 0
    assert set(m["inputs"]["sites"]) == {"site_A", "site_B"} and m["inputs"]["hierarchy"]["sha256"]
    losses = pd.read_csv(checkpoint / "pretrain_losses.csv")
    assert {"contrastive", "masked_visit", "reasonable"} <= set(losses.columns)
    vocab = Vocabulary.load(checkpoint / "vocab.json")
    tok = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    first = next(iter(vocab.site_codes("site_A")))
    assert tok.encode(f"site_A:{first}").ids == vocab.encode([first], site="site_A")


def test_finetune_from_checkpoint(checkpoint, sample_dir, tmp_path):
    out = tmp_path / "ft"
    code = main(["finetune", str(sample_dir / "site_A"), "--checkpoint", str(checkpoint), "--target", "onset",
                 "--out", str(out), "--folds", "2", "--epochs", "2", "--plot", str(out / "p.png"), "--quiet"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"auroc", "auprc", "f1"} <= set(metrics["summary"]) and len(metrics["folds"]) == 2
    assert 0.0 <= metrics["summary"]["auroc"]["mean"] <= 1.0
    preds = pd.read_csv(out / "predictions.csv", dtype={"subject_id": str})
    outcomes = pd.read_csv(sample_dir / "site_A" / "outcomes.csv", dtype={"subject_id": str})
    cohort = outcomes["onset"].notna()
    # every cohort patient is tested exactly once across folds, none outside it
    assert sorted(preds["subject_id"]) == sorted(outcomes.loc[cohort, "subject_id"])
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["outcomes"]["not_in_cohort"] == int((~cohort).sum())
    assert m["parameters"]["pretrained"] is True and (out / "p.png").stat().st_size > 1000
    assert {"model.pt", "head.pt", "vocab.json", "metrics.md"} <= {p.name for p in out.iterdir()}
    assert np.isfinite(m["representation"]["silhouette"])


def test_finetune_from_scratch_regression_one_split(sample_dir, sample_hierarchy_file, tmp_path):
    out = tmp_path / "reg"
    code = main(["finetune", str(sample_dir / "site_B"), "--hierarchy", str(sample_hierarchy_file),
                 "--target", "burden", "--out", str(out), "--folds", "0", "--epochs", "2",
                 "--model", "lstm", "--dim", "16", "--max-visits", "16", "--quiet"])  # no --heads/--layers
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"rmse", "r2", "explained_variance"} <= set(metrics["summary"]) and len(metrics["folds"]) == 1
    assert metrics["folds"][0]["n_test"] == 600


def test_pretraining_is_seeded(sample_dir, sample_hierarchy_file, tmp_path):
    states = []
    for name in ("a", "b"):
        main(["pretrain", str(sample_dir / "site_A"), "--hierarchy", str(sample_hierarchy_file),
              "--out", str(tmp_path / name), "--epochs", "1", "--seed", "3", *SMALL])
        states.append(torch.load(tmp_path / name / "model.pt", weights_only=True)["state_dict"])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def _err(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_finetune_bad_input(capsys, checkpoint, sample_dir, sample_hierarchy_file, tmp_path):
    site = str(sample_dir / "site_A")
    err = _err(capsys, ["finetune", site, "--checkpoint", str(checkpoint), "--target", "nope",
                        "--out", str(tmp_path / "o")])
    assert "missing column 'nope'" in err and "onset" in err
    err = _err(capsys, ["finetune", site, "--target", "onset", "--out", str(tmp_path / "o")])
    assert "--checkpoint" in err
    err = _err(capsys, ["finetune", site, "--checkpoint", str(tmp_path), "--target", "onset",
                        "--out", str(tmp_path / "o")])
    assert "not a mash checkpoint" in err
    bad = tmp_path / "outcomes.csv"
    bad.write_text("subject_id,index_time,onset\nA000000,2010-01-01,1\nA000001,yesterday,0\n")
    err = _err(capsys, ["finetune", site, "--checkpoint", str(checkpoint), "--target", "onset",
                        "--outcomes", str(bad), "--out", str(tmp_path / "o")])
    assert "row 2" in err and "index_time" in err
    bad.write_text("subject_id,onset\nA000000,1\nA000000,0\n")
    assert "appears twice" in _err(capsys, ["finetune", site, "--checkpoint", str(checkpoint), "--target",
                                            "onset", "--outcomes", str(bad), "--out", str(tmp_path / "o")])
    ids = pd.read_csv(sample_dir / "site_A" / "outcomes.csv", dtype=str)["subject_id"][:200]
    bad.write_text("subject_id,event\n" + "".join(f"{s},1\n" for s in ids))  # one class only
    err = _err(capsys, ["finetune", site, "--checkpoint", str(checkpoint), "--target", "event",
                        "--outcomes", str(bad), "--out", str(tmp_path / "o")])
    assert "one value only" in err and "'event'" in err
    assert not (tmp_path / "o").exists()
    for value in ("inf", "-1e308"):
        bad.write_text(f"subject_id,burden\nA000000,1.5\nA000001,{value}\n")
        err = _err(capsys, ["finetune", site, "--checkpoint", str(checkpoint), "--target", "burden",
                            "--outcomes", str(bad), "--out", str(tmp_path / "o")])
        assert "row 2" in err and "'burden'" in err and "not a finite number" in err
    for device, says in (("tpu9", "not a torch device"), ("cuda:99", "CUDA device")):
        err = _err(capsys, ["finetune", site, "--checkpoint", str(checkpoint), "--target", "onset",
                            "--device", device, "--out", str(tmp_path / "o")])
        assert says in err


def test_checkpoint_and_vocabulary_mismatch(capsys, sample_dir, sample_hierarchy_file, tmp_path):
    flat = tmp_path / "flat"
    assert main(["pretrain", str(sample_dir / "site_A"), "--hierarchy", str(sample_hierarchy_file),
                 "--out", str(flat), "--epochs", "1", "--no-harmonize", *SMALL]) == 0
    # a checkpoint whose vocab.json was swapped for another vocabulary
    vocab = Vocabulary.from_hierarchy(sample_hierarchy_file)
    vocab.save(flat / "vocab.json")
    err = _err(capsys, ["finetune", str(sample_dir / "site_A"), "--checkpoint", str(flat),
                        "--target", "onset", "--out", str(tmp_path / "o")])
    assert "does not match the checkpoint" in err


def test_attach_outcomes_counts_every_loss(sample_hierarchy_file, tmp_path):
    codes = pd.DataFrame({"code": ["A021", "I10"], "description": ["Salmonella sepsis", "Hypertension"]})
    events = pd.DataFrame({
        "subject_id": ["p1", "p1", "p2", "p3"],
        "time": pd.to_datetime(["2020-01-01", "2020-06-01", "2020-03-01", "2020-05-01"]),
        "code": ["A021", "I10", "I10", "A021"],
    })
    site = Site.from_frames("site_B", codes, events)
    seqs = build_sequences(site, Vocabulary.from_hierarchy(sample_hierarchy_file))
    path = tmp_path / "o.csv"
    path.write_text("subject_id,index_time,y\np1,2020-02-01,1\np2,2020-01-01,0\np3,,\np9,2020-01-01,1\n")
    data = attach_outcomes(seqs, read_outcomes(path, "y"))
    assert data.stats == {"outcome_rows": 4, "not_in_cohort": 1, "unknown_subject": 1, "no_history": 1,
                          "used": 1, "patients_without_outcome": 0}
    assert list(data.seqs.subjects) == ["p1"] and data.labels.tolist() == [1.0]
    assert data.seqs.n_visits().tolist() == [1]  # the June visit is after the index time


def test_finetune_hierarchy_must_match_checkpoint(capsys, checkpoint, sample_dir, sample_hierarchy_file, tmp_path):
    import networkx as nx

    graph = nx.read_graphml(sample_hierarchy_file)
    leaf = next(n for n, d in graph.nodes(data=True) if d.get("kind") == "code")
    graph.remove_node(leaf)
    other = tmp_path / "other.graphml"
    nx.write_graphml(graph, other)
    err = _err(capsys, ["finetune", str(sample_dir / "site_A"), "--checkpoint", str(checkpoint),
                        "--hierarchy", str(other), "--target", "onset", "--out", str(tmp_path / "o")])
    assert "does not match the checkpoint" in err and "other.graphml" in err


def test_cut_at_index_drops_only_what_follows_an_index_time(sample_hierarchy_file, tmp_path):
    codes = pd.DataFrame({"code": ["A021", "I10"], "description": ["Salmonella sepsis", "Hypertension"]})
    events = pd.DataFrame({
        "subject_id": ["p1", "p1", "p2", "p3", "p4", "p4"],
        "time": pd.to_datetime(["2020-01-01", "2020-06-01", "2020-03-01", "2020-05-01", "2020-01-01", "2020-02-01"]),
        "code": ["A021", "I10", "I10", "A021", "I10", "A021"],
    })
    seqs = build_sequences(Site.from_frames("site_B", codes, events),
                           Vocabulary.from_hierarchy(sample_hierarchy_file))
    path = tmp_path / "o.csv"  # no label column needed: only subjects and index times
    path.write_text("subject_id,index_time\np1,2020-02-01\np2,2020-01-01\np3,\np9,2020-01-01\n")
    cut = cut_at_index(seqs, read_outcomes(path, None))
    # p1 loses June; p2 has nothing before its index (removed); p3 has no index time, p4 is not
    # listed: both kept whole; p9 has no record
    assert list(cut.subjects) == ["p1", "p3", "p4"] and cut.n_visits().tolist() == [1, 1, 2]
    assert cut.stats["n_index_times"] == 2 and cut.stats["n_visits_after_cutoff"] == 2
    assert cut.stats["n_empty_after_cutoff"] == 1


def test_pretrain_until_index_keeps_outcome_windows_out(sample_dir, sample_hierarchy_file, tmp_path, capsys):
    out = tmp_path / "cut"
    assert main(["pretrain", str(sample_dir / "site_A"), "--hierarchy", str(sample_hierarchy_file),
                 "--out", str(out), "--epochs", "1", "--until-index", *SMALL[:-1]]) == 0
    assert "site_A: cut at" in capsys.readouterr().out
    m = json.loads((out / "manifest.json").read_text())
    st = m["counts"]["sites"]["site_A"]
    table = read_outcomes(sample_dir / "site_A" / "outcomes.csv", None)
    assert m["parameters"]["until_index"] is True
    assert m["inputs"]["outcomes"]["site_A"]["sha256"] == sha256_file(sample_dir / "site_A" / "outcomes.csv")
    assert st["n_index_times"] == int(np.isfinite(table["index_day"]).sum()) > 0
    whole = build_sequences(Site.load(sample_dir / "site_A"), Vocabulary.load(out / "vocab.json"))
    assert st["n_visits"] + st["n_visits_after_cutoff"] == whole.stats["n_visits"]
    assert st["n_patients"] + st["n_empty_after_cutoff"] == len(whole)


def test_pretrain_until_index_bad_outcomes_is_one_line(capsys, sample_dir, sample_hierarchy_file, tmp_path):
    import shutil

    site = tmp_path / "site_A"
    shutil.copytree(sample_dir / "site_A", site)
    lines = (site / "outcomes.csv").read_text().splitlines()
    head, row = lines[0].split(","), lines[2].split(",")
    row[head.index("index_time")] = "not-a-date"
    lines[2] = ",".join(row)
    (site / "outcomes.csv").write_text("\n".join(lines) + "\n")
    err = _err(capsys, ["pretrain", str(site), "--hierarchy", str(sample_hierarchy_file),
                        "--out", str(tmp_path / "o"), "--until-index", *SMALL])
    assert "outcomes.csv" in err and "not-a-date" in err and "index_time" in err and "2" in err


def test_text_only_site_is_a_one_line_error(capsys, tmp_path):
    """A site without events (a code list only) cannot be pretrained or fine-tuned on."""
    import networkx as nx

    from mash.hyperbolic.hierarchy import Hierarchy

    g = nx.DiGraph()
    g.add_node("root", kind="root", label="root")
    for code in ("A", "B"):
        g.add_node(f"ref:{code}", kind="code", site="ref", code=code, description=code,
                   concept_id=f"C{code}", label=code)
        g.add_edge("root", f"ref:{code}")
    tree = tmp_path / "h.graphml"
    Hierarchy(g).save(tree)
    site = tmp_path / "ref"
    site.mkdir()
    (site / "codes.csv").write_text("code,description\nA,alpha\nB,beta\n")
    (site / "outcomes.csv").write_text("subject_id,index_time,onset\nR1,2020-01-01,1\n")
    for argv in (
        ["pretrain", str(site), "--hierarchy", str(tree), "--out", str(tmp_path / "p"), "--epochs", "1", *SMALL],
        ["finetune", str(site), "--hierarchy", str(tree), "--target", "onset", "--out", str(tmp_path / "f"), *SMALL],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        errors = [line for line in err.splitlines() if line.startswith("mash: error:")]
        assert len(errors) == 1
        assert "site 'ref' has no events" in errors[0] and str(site / "codes.csv") in errors[0]
        assert "text-only" in err  # the loader's warning says why
