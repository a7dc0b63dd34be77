"""Cross-site alignment against the CMS GEMs, on simulated ICD-9-CM / ICD-10-CM sites.

For each size (patients per site) the simulator writes two sites (`mash simulate`), then
four methods rank ICD-10-CM candidates for every ICD-9-CM code, scored against the GEM
gold pairs (hits@1, hits@5, MRR@10):

(a) text-only nearest neighbour: cosine of MiniLM embeddings of the raw descriptions;
(b) co-occurrence only: SPPMI-SVD vectors aligned by orthogonal Procrustes on seed
    anchors (mutual text nearest neighbours, the same seeds mash starts from), cosine;
(c) plain POT Sinkhorn on the joined features [text ⊕ co-occurrence], uniform marginals,
    candidates ranked by transport mass;
(d) mash full (`mash.align`).

Also: wall time per stage of mash, co-occurrence events/s, peak RSS, and the top-1
calibration of mash's score (ECE). Run from the repository root:

    python bench/align_gem.py                     # sizes 5000 20000 100000
    python bench/align_gem.py --sizes 20000 --seed 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import ot
import pandas as pd

import mash
from mash.align.procrustes import procrustes
from mash.align.result import mapping_frame
from mash.align.retrieval import mutual_nearest, topk
from mash.cooccur import cooccurrence_embeddings
from mash.metrics import expected_calibration_error, ranking_metrics
from mash.text import TextEmbedder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def to_mapping(site: str, q_codes: np.ndarray, r_codes: np.ndarray, scores: np.ndarray, k: int = 10) -> pd.DataFrame:
    return mapping_frame(site, q_codes, r_codes, topk(scores, k)[0])


def cooc_of(site: mash.Site, seed: int):
    # the same settings as mash.align's defaults, so baseline (b) sees mash's vectors
    cfg = mash.AlignConfig()
    return cooccurrence_embeddings(
        *site.event_arrays(), site.n_codes, window_days=cfg.window_days, shift=cfg.sppmi_shift,
        dim=cfg.cooc_dim, min_events=cfg.min_events, seed=seed,
    )


def run_size(n_patients: int, seed: int, root: Path, conditions: int) -> list[dict]:
    sim_dir = root / f"sim_{n_patients}_{conditions}_{seed}"
    if not (sim_dir / "simulation.json").exists():
        mash.simulate(sim_dir, n_patients=n_patients, seed=seed, n_conditions=conditions, events_format="parquet", quiet=True)
    gold = pd.read_csv(sim_dir / "gold.csv", dtype=str)
    t0 = time.perf_counter()
    a = mash.Site.load(sim_dir / "site_A")
    b = mash.Site.load(sim_dir / "site_B")
    t_load = time.perf_counter() - t0
    n_events = a.n_events + b.n_events
    qc, rc = a.codes["code"].to_numpy(str), b.codes["code"].to_numpy(str)
    emb = TextEmbedder(quiet=True)
    ta, tb = emb.encode(a.codes["description"].tolist()), emb.encode(b.codes["description"].tolist())
    rows = []

    # (a) text-only nearest neighbour
    sim_text = ta @ tb.T
    rows.append({"method": "(a) text-only NN", **ranking_metrics(to_mapping("site_A", qc, rc, sim_text), gold)})

    # (b) co-occurrence only, Procrustes on seed anchors
    ca, cb = cooc_of(a, seed), cooc_of(b, seed)
    qa, rb, _ = mutual_nearest(sim_text, 0.05)
    both = ca.reliable[qa] & cb.reliable[rb]
    w = procrustes(ca.vectors[qa[both]], cb.vectors[rb[both]])
    sim_co = (ca.vectors @ w) @ cb.vectors.T
    rows.append({"method": "(b) co-occurrence + Procrustes", **ranking_metrics(to_mapping("site_A", qc, rc, sim_co), gold)})

    # (c) plain Sinkhorn on joined features
    xa = np.concatenate([ta, ca.vectors], axis=1) / np.sqrt(2)
    xb = np.concatenate([tb, cb.vectors], axis=1) / np.sqrt(2)
    cost = 1.0 - xa @ xb.T
    plan = ot.sinkhorn(np.full(len(xa), 1 / len(xa)), np.full(len(xb), 1 / len(xb)), cost, 0.02, numItermax=2000)
    rows.append({"method": "(c) POT Sinkhorn, joined", **ranking_metrics(to_mapping("site_A", qc, rc, plan), gold)})

    # (d) mash
    rss0 = peak_rss_mb()
    t1 = time.perf_counter()
    al = mash.align([a, b], reference="site_B", seed=seed, quiet=True)
    t_align = time.perf_counter() - t1
    metrics = ranking_metrics(al.mapping, gold)
    rows.append({"method": "(d) mash full", **metrics})
    # calibration of mash's top-1 score
    top1 = al.mapping[al.mapping["rank"] == 1].merge(
        gold[["site", "code", "reference_code"]].assign(ok=True), how="left", on=["site", "code", "reference_code"]
    )
    top1 = top1[top1["code"].isin(gold["code"])]
    ece = expected_calibration_error(top1["score"].to_numpy(), top1["ok"].fillna(False).to_numpy(bool))
    man = al.manifest
    co_stats = [man["sites"][s]["cooccurrence"] for s in ("site_A", "site_B")]
    extra = {
        "patients/site": n_patients,
        "events": n_events,
        "codes A/B": f"{a.n_codes}/{b.n_codes}",
        "load s": round(t_load, 1),
        "align s": round(t_align, 1),
        "stages s": man["timings_s"],
        "cooc events/s": round(sum(s["n_events"] for s in co_stats) / max(1e-9, sum(s["seconds"]["counts"] for s in co_stats))),
        "peak RSS MB": round(max(rss0, peak_rss_mb())),
        "ECE top-1": round(ece, 3),
        "anchors": man["pairs"]["site_A"].get("anchors"),
        "weights": man["pairs"]["site_A"].get("scorer_weights"),
    }
    for r in rows:
        r["patients/site"] = n_patients
    return rows, extra


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 100000])
    p.add_argument("--conditions", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", type=Path, default=Path("bench/out"))
    p.add_argument("--json", type=Path, default=None, help="also write all results here")
    args = p.parse_args()
    all_rows, extras = [], []
    for n in args.sizes:
        rows, extra = run_size(n, args.seed, args.root, args.conditions)
        all_rows += rows
        extras.append(extra)
        print(pd.DataFrame(rows).round(3).to_string(index=False), flush=True)
        print(json.dumps(extra), flush=True)
    table = pd.DataFrame(all_rows)
    print("\n## hits@1 / hits@5 / MRR@10 against the CMS GEMs")
    print(f"date {dt.date.today()}, {platform.machine()}, {platform.python_version()}, seed {args.seed}, conditions {args.conditions}")
    print(table[["patients/site", "method", "n", "hits@1", "hits@5", "mrr@10"]].round(3).to_string(index=False))
    print("\n## mash cost")
    print(pd.DataFrame(extras).drop(columns=["weights"]).to_string(index=False))
    if args.json:
        args.json.write_text(json.dumps({"rows": all_rows, "extras": extras}, indent=2, default=str))


if __name__ == "__main__":
    main()
