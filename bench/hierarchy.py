"""Hierarchy benchmark: reconstruction, recovery of clinical groupings, speed.

Three parts in one run (run from the repository root):

1. **Reconstruction** of a known tree (ICD-10-CM from ``simple-icd-10-cm``, ~98.5k
   nodes): Nickel & Kiela Poincaré embedding vs a Euclidean embedding of equal budget,
   mean rank and MAP at 10 dimensions (``bench/_reconstruction.py``).
2. **Recovery** on simulated two-site data (``mash simulate``; site A ICD-9-CM with CMS
   short descriptions, site B ICD-10-CM): dendrogram purity of site A's leaves against
   their CCS category and of site B's leaves against their ICD-10-CM block, and
   Dasgupta cost on a shared kNN similarity graph, for mash (no labels; the ICD-10-CM
   tree as labels for site B) vs scipy average linkage and Ward on the same aligned
   vectors and on text vectors alone. Once with real codes at site A, once with opaque
   local ids.
3. **Speed**: training relations/s (from part 1) and a 20k-concept hierarchy end to end
   (an alignment of 20,000 ICD-10-CM codes: real MiniLM text vectors, no co-occurrence).

    python bench/hierarchy.py
    python bench/hierarchy.py --skip-reconstruction --patients 5000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _linkage import linkage_tree  # noqa: E402

import mash  # noqa: E402
from mash.align.result import Alignment  # noqa: E402
from mash.hyperbolic.build import HierarchyConfig, build_hierarchy, knn_graph, member_vectors  # noqa: E402
from mash.metrics import dasgupta_cost, dendrogram_purity  # noqa: E402
from mash.synth import load_reference_tables  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(rows: list[dict], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = ""
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


# ------------------------------------------------------------------ part 2: recovery


def icd10_block(code: str) -> str:
    import simple_icd_10_cm as cm

    if not cm.is_valid_item(code):
        return ""
    anc = cm.get_ancestors(code)
    return anc[-2] if len(anc) >= 2 else anc[-1]


def recovery(patients: int, conditions: int, seed: int, opaque: bool, quiet: bool) -> list[dict]:
    name = f"hier_{patients}_{conditions}_{seed}{'_opaque' if opaque else ''}"
    sim_dir, align_dir = OUT / name, OUT / f"{name}_align"
    if not (sim_dir / "simulation.json").is_file():
        mash.simulate(sim_dir, n_patients=patients, seed=seed, n_conditions=conditions,
                      opaque_site="site_A" if opaque else None, events_format="parquet", quiet=quiet)
    if not (align_dir / "manifest.json").is_file():
        sites = [mash.Site.load(sim_dir / "site_A"), mash.Site.load(sim_dir / "site_B")]
        mash.align(sites, reference="site_B", seed=seed, quiet=quiet).save(align_dir)
    alignment = Alignment.load(align_dir)
    emb = alignment.embeddings
    site = emb["site"].astype(str)
    code = emb["code"].astype(str)
    true_a = pd.Series(code, index=code)
    if opaque:
        key = pd.read_csv(sim_dir / "opaque_key.csv", dtype=str)
        true_a = pd.Series(key["source_code"].to_numpy(), index=key["code"].to_numpy())
    ccs = load_reference_tables().ccs
    cls = np.empty(len(code), dtype=object)
    for i, (s, c) in enumerate(zip(site, code, strict=True)):
        cls[i] = f"ccs{ccs.get(true_a.get(c, ''), -1)}" if s == "site_A" else icd10_block(c)
    aligned, text = member_vectors(alignment.embeddings, HierarchyConfig().cooc_weight)
    # one similarity graph for every method's Dasgupta cost: kNN (k=10) of aligned vectors
    nbr, sim = knn_graph(aligned, 10)
    gi = np.repeat(np.arange(len(code)), nbr.shape[1])
    gj, gw = nbr.ravel(), np.maximum(sim.ravel(), 0.0)

    def scores(parent: np.ndarray, leaf_of_row: np.ndarray) -> dict:
        out = {}
        for s, col in (("site_A", "purity A (CCS)"), ("site_B", "purity B (ICD-10 block)")):
            m = (site == s) & (cls != "") & (cls != "ccs-1")
            out[col] = dendrogram_purity(parent, leaf_of_row[m], cls[m])
        out["Dasgupta"] = dasgupta_cost(parent, leaf_of_row[gi], leaf_of_row[gj], gw) / gw.sum()
        return out

    rows = []
    for label, vectors in (("aligned", aligned), ("text", text)):
        for method in ("average", "ward"):
            t0 = time.perf_counter()
            parent = linkage_tree(vectors.astype(np.float64), method=method)
            r = {"method": f"{method} linkage, {label} vectors", **scores(parent, np.arange(len(code)))}
            r["seconds"] = time.perf_counter() - t0
            rows.append(r)
    for labels, gap in [(lab, g) for lab in ((), ("icd10cm",)) for g in (0.0, 0.5)]:
        t0 = time.perf_counter()
        h = build_hierarchy(alignment, labels, quiet=quiet, seed=seed, gap_quantile=gap)
        ids, parent = h.parent_array()
        index = {v: i for i, v in enumerate(ids)}
        leaf_of_row = np.array([index[f"{s}:{c}"] for s, c in zip(site, code, strict=True)])
        tag = "mash, no labels" if not labels else "mash, ICD-10-CM tree as labels (site B)"
        tag += ", binary (before compression)" if gap == 0.0 else ", compressed (the output)"
        r = {"method": tag, **scores(parent, leaf_of_row)}
        r["seconds"] = time.perf_counter() - t0
        r["nodes"] = h.manifest["counts"]["nodes"]
        r["depth"] = h.manifest["counts"]["max_depth"]
        rows.append(r)
    for r in rows:
        r["data"] = "opaque site A" if opaque else "real codes"
        r["leaves"] = len(code)
    return rows


# ------------------------------------------------------------------ part 3: speed


def speed_20k(n: int, seed: int, quiet: bool) -> dict:
    """End-to-end build on an alignment of ``n`` ICD-10-CM codes (one site is the
    reference, a second site holds a 5% sample of the same codes, merged)."""
    import simple_icd_10_cm as cm

    from mash.text import TextEmbedder

    rng = np.random.default_rng(seed)
    leaves = [c for c in cm.get_all_codes(with_dots=False) if cm.is_leaf(c)]
    pick = np.sort(rng.choice(len(leaves), size=n, replace=False))
    codes = np.array([leaves[i] for i in pick], dtype=object)
    desc = [cm.get_description(c) for c in codes]
    text = TextEmbedder(quiet=quiet).encode(desc).astype(np.float32)
    other = np.sort(rng.choice(n, size=n // 20, replace=False))
    site = np.array(["ref"] * n + ["other"] * len(other), dtype=object)
    code_all = np.concatenate([codes, codes[other]])
    text_all = np.vstack([text, text[other]])
    cooc = np.zeros((len(code_all), 16), dtype=np.float32)
    concepts = pd.DataFrame({
        "concept_id": [f"C{i:06d}" for i in range(n)] + [f"C{i:06d}" for i in other],
        "site": site, "code": code_all,
        "description": desc + [desc[i] for i in other],
    })
    alignment = Alignment(
        reference="ref", mapping=pd.DataFrame(columns=["site", "code", "reference_code", "score", "rank"]),
        concepts=concepts,
        embeddings={"site": site.astype(str), "code": code_all.astype(str), "text": text_all,
                    "cooccurrence": cooc, "cooccurrence_reliable": np.zeros(len(code_all), bool),
                    "vectors": np.hstack([text_all, cooc]).astype(np.float64)},
        manifest={"sites": {"ref": {}, "other": {}}},
    )
    out = {}
    for labels in ((), ("icd10cm",)):
        t0 = time.perf_counter()
        h = build_hierarchy(alignment, labels, quiet=quiet, seed=seed)
        path = OUT / f"speed_{n}.graphml"
        h.save(path)
        h.plot(OUT / f"speed_{n}.png")
        tag = "labels" if labels else "no labels"
        out[tag] = {"seconds_total": time.perf_counter() - t0,
                    "stages_s": h.manifest["timings_s"], "nodes": h.manifest["counts"]["nodes"],
                    "leaves": h.manifest["counts"]["leaves"]}
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=5000)
    ap.add_argument("--conditions", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speed-concepts", type=int, default=20000)
    ap.add_argument("--skip-reconstruction", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"# bench/hierarchy.py — {dt.date.today()} — {platform.node()} ({platform.processor() or platform.machine()}), "
          f"mash {mash.__version__}, torch threads {__import__('torch').get_num_threads()}\n")
    results: dict = {"args": vars(args)}
    if not args.skip_reconstruction:
        import _reconstruction

        rows = _reconstruction.run(dim=10, seed=args.seed, quiet=args.quiet)
        results["reconstruction"] = rows
        print("## 1. Reconstruction of ICD-10-CM (10 dimensions)\n")
        print(table(rows, list(rows[0].keys())))
    rows = []
    for opaque in (False, True):
        rows += recovery(args.patients, args.conditions, args.seed, opaque, args.quiet)
    results["recovery"] = rows
    print(f"## 2. Recovery on simulated sites ({args.patients} patients/site, {args.conditions} conditions, seed {args.seed})\n")
    print(table(rows, ["data", "method", "purity A (CCS)", "purity B (ICD-10 block)", "Dasgupta", "seconds"]))
    for data in ("real codes", "opaque site A"):
        sub = [r for r in rows if r["data"] == data]
        base = max((r for r in sub if "linkage" in r["method"]), key=lambda r: r["purity A (CCS)"])
        for r in sub:
            if r["method"].startswith("mash"):
                print(f"- {data}: {r['method']}: purity A − best linkage ({base['method']}) = "
                      f"{r['purity A (CCS)'] - base['purity A (CCS)']:+.3f}")
    print()
    if not args.skip_speed:
        sp = speed_20k(args.speed_concepts, args.seed, args.quiet)
        results["speed"] = sp
        print(f"## 3. Speed: {args.speed_concepts} concepts end to end\n")
        for tag in ("no labels", "labels"):
            print(f"- {tag}: {sp[tag]['seconds_total']:.1f} s total (build + GraphML + PNG), stages "
                  f"{sp[tag]['stages_s']}, {sp[tag]['nodes']} nodes")
        print(f"- peak RSS {sp['peak_rss_mb']:.0f} MB")
    (OUT / "hierarchy_results.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
