"""Pretraining benchmark: does the hierarchy-harmonised multi-site pretraining help?

On simulated sites with outcomes (``mash simulate``: site A ICD-9-CM, site B
ICD-10-CM, ``outcomes.csv`` with the binary ``onset`` and ``event`` and the continuous
``burden``), in one run, on the target site A and for each binary target (``onset``:
a new chronic disease, which leans on visit counts; ``event``: a cardiometabolic
event, which depends on which conditions the history holds):

- mash's time-aware Transformer with **no pretraining**, **pretraining on the target
  site**, **pretraining on target + auxiliary site through the harmonised vocabulary**
  (codes of one concept share a token) and **pretraining on both sites without
  harmonisation** (one token per site code), each fine-tuned at 100%, 10% and ≤ 500
  labelled patients;
- the same four arms with the code table started at random instead of from the hierarchy
  (``ModelConfig(init=False)``, Med-BERT's "no pretraining"): an ablation that separates
  what the hierarchy's code table brings from what the sequence pretraining brings
  (``--skip-init-ablation`` leaves it out);
- the baselines (plain Transformer, LSTM, RETAIN, Dipole, T-LSTM, HiTANet), no
  pretraining, same vocabulary, same harness, at 100% and ≤ 500 labels;
- a classical reference on the same folds: L2 logistic regression on the bag of codes
  (distinct tokens of the history) plus log visit count, C picked on the validation
  part of each fold;
- the regression target (RMSE, R²) for no pretraining vs harmonised pretraining;
- throughput (sequences/s) of pretraining and inference.

Each cell is k-fold cross-validation by patient (default 5; each fold 0.7/0.1/0.2),
reported as mean ± standard deviation over folds. Target-site pretraining only sees
each patient's visits up to the index time (the prediction time), so no test patient's
future leaks into the encoder; the auxiliary site's full records are used.

    python bench/pretrain.py                     # the recorded run
    python bench/pretrain.py --patients 1000 --folds 2 --epochs 3 --pretrain-epochs 1   # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import mash
from mash.align.result import Alignment
from mash.hyperbolic.build import build_hierarchy
from mash.hyperbolic.hierarchy import Hierarchy
from mash.models.config import (
    DEFAULT_DEVICE,
    DEFAULT_FOLDS,
    MODEL_NAMES,
    FinetuneConfig,
    ModelConfig,
    PretrainConfig,
    defaults,
)
from mash.models.experiment import evaluate
from mash.models.outcomes import Labelled, attach_outcomes, cut_at_index, read_outcomes
from mash.models.registry import make_encoder
from mash.models.train import embed_patients, pick_device, pretrain
from mash.sequences import build_sequences, concat
from mash.sites import Site
from mash.vocab import Vocabulary

OUT = Path(__file__).resolve().parent / "out"
TIME_AWARE, RANDOM_TABLE = "time-aware", "time-aware, random table"
BASELINES = tuple(name for name in MODEL_NAMES if name != ModelConfig.model)


def prepare(
    patients: int, conditions: int, seed: int, quiet: bool, visit_rate: float | None = None
) -> tuple[Path, Hierarchy]:
    """Simulate, align and build the hierarchy once (cached under bench/out/)."""
    more = {} if visit_rate is None else {"visit_rate": visit_rate}
    sim = OUT / (f"pretrain_{patients}_{conditions}_{seed}" + ("" if visit_rate is None else f"_vr{visit_rate:g}"))
    out_a = sim / "site_A" / "outcomes.csv"
    if not out_a.is_file() or "event" not in out_a.open().readline():
        # codes, events and gold do not depend on the outcomes: the caches below stay valid
        mash.simulate(sim, n_patients=patients, n_conditions=conditions, seed=seed, quiet=quiet, **more)
    align_dir = sim / "align"
    if not (align_dir / "manifest.json").is_file():
        sites = [Site.load(sim / "site_A"), Site.load(sim / "site_B")]
        mash.align(sites, reference="site_B", quiet=quiet).save(align_dir)
    h_path = sim / "hierarchy.graphml"
    if not h_path.is_file():
        build_hierarchy(Alignment.load(align_dir), ["icd10cm"], quiet=quiet).save(h_path)
    return sim, Hierarchy.load(h_path)


def labelled(site: Site, vocab: Vocabulary, outcomes: Path, target: str) -> Labelled:
    return attach_outcomes(build_sequences(site, vocab), read_outcomes(outcomes, target))


def target_history(site: Site, vocab: Vocabulary, outcomes: Path):  # noqa: ANN201
    """Site A's records cut at each patient's index time (for target-site pretraining)."""
    return cut_at_index(build_sequences(site, vocab), read_outcomes(outcomes, None))


def token_counts(seqs, n_tokens: int):  # noqa: ANN001, ANN201
    """Token counts of each patient's history, sparse, shape (patients, n_tokens)."""
    import scipy.sparse as sp

    tok_ptr = seqs.code_ptr[seqs.visit_ptr]  # (P + 1,) token range of each patient
    rows = np.repeat(np.arange(len(seqs)), np.diff(tok_ptr))
    return sp.csr_matrix((np.ones(rows.size), (rows, seqs.tokens[tok_ptr[0]:tok_ptr[-1]])),
                         shape=(len(seqs), n_tokens))


def bag_of_codes(seqs, n_tokens: int):  # noqa: ANN001, ANN201
    """(patients, n_tokens + 1) sparse features: distinct tokens of the history, log visits."""
    import scipy.sparse as sp

    x = token_counts(seqs, n_tokens)
    x.data[:] = 1.0  # presence only
    visits = np.log1p(np.diff(seqs.visit_ptr))[:, None]
    return sp.hstack([x, sp.csr_matrix(visits)]).tocsr()


def logistic_cell(d: Labelled, n_tokens: int, folds: int, seed: int, labels) -> dict:  # noqa: ANN001
    """Bag-of-codes logistic regression on evaluate()'s folds and label subsamples."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score

    from mash.models.splits import evaluation_splits

    x, y = bag_of_codes(d.seqs, n_tokens), d.labels
    rows = []
    for k, (train, val, test) in enumerate(evaluation_splits(len(y), folds, seed, labels)):
        best = None
        for c in (0.01, 0.03, 0.1, 0.3, 1.0):
            m = LogisticRegression(C=c, max_iter=2000).fit(x[train], y[train])
            v = roc_auc_score(y[val], m.decision_function(x[val])) if len(set(y[val])) > 1 else 0.0
            if best is None or v > best[0]:
                best = (v, m)
        p = best[1].decision_function(x[test])
        rows.append({"fold": k + 1, "auroc": roc_auc_score(y[test], p),
                     "auprc": average_precision_score(y[test], p), "n_train": len(train), "C": best[1].C})
    f = pd.DataFrame(rows)
    return {"folds": f.to_dict(orient="records"), "n_train": int(f["n_train"].mean()),
            "summary": {m: {"mean": float(f[m].mean()), "std": float(f[m].std(ddof=1))} for m in ("auroc", "auprc")}}


def label_name(labels: float | int | None) -> str:
    """``100%``, a share such as ``10%``, or a count of labelled patients."""
    if labels is None:
        return "100%"
    return f"{labels:.0%}" if isinstance(labels, float) else f"{labels}"


def fmt(summary: dict, key: str) -> str:
    s = summary.get(key)
    return "—" if s is None else f"{s['mean']:.3f} ± {s['std']:.3f}"


def main() -> None:
    model_d, pre_d, ft_d = defaults(ModelConfig), defaults(PretrainConfig), defaults(FinetuneConfig)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=4000, help="patients per site")
    ap.add_argument("--conditions", type=int, default=800)
    ap.add_argument("--seed", type=int, default=ft_d["seed"])
    ap.add_argument("--visit-rate", type=float, default=None,
                    help="simulator visit_rate (mean visits after the first; default the simulator's 4)")
    ap.add_argument("--folds", type=int, default=DEFAULT_FOLDS)
    ap.add_argument("--epochs", type=int, default=20, help="fine-tuning epochs (early stopping)")
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--pretrain-epochs", type=int, default=pre_d["epochs"])
    ap.add_argument("--dim", type=int, default=model_d["dim"])
    ap.add_argument("--code-weight", type=float, default=pre_d["code_weight"],
                    help="weight of the masked-code pretraining task")
    ap.add_argument("--time-init", type=float, default=model_d["time_init"],
                    help="initial w_h of the time-aware heads")
    ap.add_argument("--no-time-embedding", action="store_true", help="time-aware model without the time embedding")
    ap.add_argument("--small", type=int, default=500, help="the few-labels setting (labelled patients)")
    ap.add_argument("--targets", default="onset,event", help="binary targets, comma-separated")
    ap.add_argument("--tag", default="", help="suffix of the results file bench/out/pretrain_<tag>.json")
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--skip-regression", action="store_true")
    ap.add_argument("--skip-init-ablation", action="store_true",
                    help="skip the arms whose code table starts random instead of from the hierarchy")
    ap.add_argument("--device", default=DEFAULT_DEVICE)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t_start = time.perf_counter()
    sim, tree = prepare(args.patients, args.conditions, args.seed, args.quiet, args.visit_rate)
    site_a, site_b = Site.load(sim / "site_A"), Site.load(sim / "site_B")
    outcomes = sim / "site_A" / "outcomes.csv"
    vocab = Vocabulary.from_hierarchy(tree)
    flat = Vocabulary.from_hierarchy(tree, harmonize=False)
    model = ModelConfig(dim=args.dim, time_init=args.time_init, time_embedding=not args.no_time_embedding)
    pre_cfg = PretrainConfig(epochs=args.pretrain_epochs, seed=args.seed, code_weight=args.code_weight)
    ft_cfg = FinetuneConfig(epochs=args.epochs, patience=args.patience, seed=args.seed)
    device = str(pick_device(args.device))
    results: dict = {"cells": [], "throughput": {}}

    random_table = dataclasses.replace(model, init=False)

    def pretrained_state(v: Vocabulary, sites_seqs, name: str, m: ModelConfig) -> dict:
        torch.manual_seed(args.seed)
        enc = make_encoder(m, len(v), v.embedding_init())
        t0 = time.perf_counter()
        res = pretrain(enc, sites_seqs, m, pre_cfg, device=args.device, quiet=args.quiet)
        results["throughput"][f"pretrain {name}"] = res.sequences_per_s
        results.setdefault("pretrain_losses", {})[name] = res.history.to_dict(orient="records")
        print(f"pretrained {name} on {len(sites_seqs)} records in {time.perf_counter() - t0:.0f} s "
              f"({res.sequences_per_s:.0f} sequences/s); losses {res.history.iloc[0].total:.3f} → "
              f"{res.history.iloc[-1].total:.3f}", flush=True)
        return {k: v.detach().cpu().clone() for k, v in enc.state_dict().items()}

    hist_a = target_history(site_a, vocab, outcomes)
    corpora = {
        "target": (hist_a, vocab),
        "target+aux, harmonised": (concat([hist_a, build_sequences(site_b, vocab)]), vocab),
        "target+aux, not harmonised": (
            concat([target_history(site_a, flat, outcomes), build_sequences(site_b, flat)]), flat),
    }
    # arms: (encoder name, pretraining) -> (model config, pretrained state or None, vocabulary)
    arms = {(TIME_AWARE, "none"): (model, None, vocab)}
    arms |= {(TIME_AWARE, p): (model, pretrained_state(v, c, p, model), v) for p, (c, v) in corpora.items()}
    if not args.skip_init_ablation:
        arms[(RANDOM_TABLE, "none")] = (random_table, None, vocab)
        arms |= {(RANDOM_TABLE, p): (random_table, pretrained_state(v, c, f"{p} ({RANDOM_TABLE})", random_table), v)
                 for p, (c, v) in corpora.items()}
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    data = {(id(v), t): labelled(site_a, v, outcomes, t) for v in (vocab, flat) for t in targets}
    for t in targets:
        d = data[(id(vocab), t)]
        print(f"site A {t} cohort: {len(d.seqs)} patients, prevalence {d.labels.mean():.3f}; "
              f"{d.stats}", flush=True)

    def cell(name: str, pretraining: str, labels, task: str = "classification", target: str = "onset",
             arch: str = "time_aware") -> None:
        m, state, v = arms.get((name, pretraining), (model, None, vocab))
        d = data[(id(v), target)] if task == "classification" else labelled(site_a, v, outcomes, target)
        m = dataclasses.replace(m, model=arch)
        t0 = time.perf_counter()
        res = evaluate(d, task=task, model=m, config=ft_cfg, n_tokens=len(v),
                       init=v.embedding_init(), pretrained=state,
                       folds=args.folds, label_size=labels, device=args.device, quiet=True)
        s = res.summary()
        row = {"model": name, "pretraining": pretraining, "labels": label_name(labels), "task": target,
               "n_train": int(res.folds["n_train"].mean()), "seconds": time.perf_counter() - t0,
               "summary": s, "folds": res.folds.to_dict(orient="records")}
        results["cells"].append(row)
        keys = ("auroc", "auprc") if task == "classification" else ("rmse", "r2")
        print(f"{name:26s} {pretraining:28s} {row['labels']:>5s} {target:6s} n_train {row['n_train']:5d} "
              + " ".join(f"{k} {fmt(s, k)}" for k in keys) + f"  ({row['seconds']:.0f} s)", flush=True)

    for t in targets:
        for labels in (None, 0.1, args.small):
            for name, pretraining in arms:
                cell(name, pretraining, labels, target=t)
        if not args.skip_baselines:
            for labels in (None, args.small):
                for arch in BASELINES:
                    cell(arch, "none", labels, arch=arch, target=t)
        for labels in (None, 0.1, args.small):
            t0 = time.perf_counter()
            row = logistic_cell(data[(id(vocab), t)], len(vocab), args.folds, args.seed, labels)
            row.update(model="logistic (bag of codes)", pretraining="none", task=t,
                       labels=label_name(labels),
                       seconds=time.perf_counter() - t0)
            results["cells"].append(row)
            print(f"{'logistic':26s} {'none':28s} {row['labels']:>5s} {t:6s} n_train {row['n_train']:5d} "
                  f"auroc {fmt(row['summary'], 'auroc')} auprc {fmt(row['summary'], 'auprc')}", flush=True)
    for pretraining in () if args.skip_regression else ("none", "target+aux, harmonised"):
        cell(TIME_AWARE, pretraining, None, task="regression", target="burden")

    # inference throughput of the time-aware model
    enc = make_encoder(model, len(vocab), vocab.embedding_init())
    idx = np.arange(len(hist_a))
    t0 = time.perf_counter()
    embed_patients(enc, hist_a, idx, model, device=args.device)
    results["throughput"]["inference"] = len(idx) / (time.perf_counter() - t0)
    results["meta"] = {
        "command": " ".join(sys.argv), "date": dt.date.today().isoformat(), "device": device,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "args": vars(args), "total_s": time.perf_counter() - t_start,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / f"pretrain_{args.tag or 'results'}.json").write_text(json.dumps(results, indent=1, default=float))

    results["paired"] = []
    for t in targets:
        cells = [r for r in results["cells"] if r["task"] == t]
        print(f"\n{t}:\n| model | pretraining | labels | AUROC | AUPRC |\n|---|---|---|---|---|")
        for r in cells:
            print(f"| {r['model']} | {r['pretraining']} | {r['labels']} | {fmt(r['summary'], 'auroc')} | "
                  f"{fmt(r['summary'], 'auprc')} |")
        print(f"\npaired differences on the same folds ({t}, AUROC points, mean ± std over folds):")
        print("| comparison | labels | Δ AUROC |\n|---|---|---|")

        def find(model: str, pretraining: str, labels: str, cells=cells):  # noqa: ANN202
            return next((r for r in cells if (r["model"], r["pretraining"], r["labels"]) == (model, pretraining, labels)), None)

        pairs = []
        for enc in (TIME_AWARE, RANDOM_TABLE):
            pairs += [((enc, p), (enc, "none")) for p in corpora]
            pairs += [((enc, "target+aux, harmonised"), (enc, "target")),
                      ((enc, "target+aux, harmonised"), (enc, "target+aux, not harmonised"))]
        pairs += [((TIME_AWARE, "none"), (RANDOM_TABLE, "none")),  # the hierarchy's code table alone
                  ((TIME_AWARE, "target+aux, harmonised"), (RANDOM_TABLE, "none")),  # all of mash vs neither
                  ((TIME_AWARE, "none"), ("transformer", "none"))]
        for labels in ("100%", "10%", str(args.small)):
            for a, b in pairs:
                ra, rb = find(*a, labels), find(*b, labels)
                if ra is None or rb is None:
                    continue
                d = 100 * (np.array([f["auroc"] for f in ra["folds"]]) - np.array([f["auroc"] for f in rb["folds"]]))
                results["paired"].append({"target": t, "a": a, "b": b, "labels": labels,
                                          "mean": float(d.mean()), "std": float(d.std(ddof=1))})
                print(f"| {a[0]} {a[1]} − {b[0]} {b[1]} | {labels} | {d.mean():+.1f} ± {d.std(ddof=1):.1f} |")
    (OUT / f"pretrain_{args.tag or 'results'}.json").write_text(json.dumps(results, indent=1, default=float))

    print("\n| model | pretraining | RMSE | R² |\n|---|---|---|---|")
    for r in results["cells"]:
        if r["task"] == "burden":
            print(f"| {r['model']} | {r['pretraining']} | {fmt(r['summary'], 'rmse')} | {fmt(r['summary'], 'r2')} |")
    print("\nthroughput (sequences/s): " + ", ".join(f"{k} {v:.0f}" for k, v in results["throughput"].items()))
    print(f"total {results['meta']['total_s']:.0f} s on {device}")


if __name__ == "__main__":
    main()
