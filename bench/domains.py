"""Labs, medications and diagnoses on three or more sites: per domain and per site.

The simulator writes ``--sites`` sites with all three domains (`mash simulate --sites 3
--domains diagnosis,lab,medication`): site_B, the reference, writes ICD-10-CM, LOINC
long common names and RxNorm ingredient names; site_A (ICD-9-CM) and site_C, ...
(ICD-10-CM) write local lab ids with terse local names in their own habits and units
and local formulary entries (brand or generic, with strength and form). Then, on the
same sites:

  (a) text-only nearest neighbour: cosine of MiniLM embeddings of the raw
      descriptions, within the code's domain;
  (b0) mash without co-occurrence and without values (text views and scorer only);
  (b) mash without co-occurrence (`min_events` above every count; values kept);
  (c) mash without values (`use_values=False`);
  (d) mash full (the default);
  (e) mash full without pooling a site's formulary entries of one drug for co-occurrence.

For each method, query site and domain: hits@1 / hits@5 against the gold pairs, and
the subsets the issue names: brand-named medications (no text clue: their brand is
nowhere in the reference), generic ones, and lab codes whose LOINC component has
near-duplicates at the reference (same analyte in another specimen, method or unit);
and how many top-1 candidates lie in another domain.

Then the hierarchy of lab codes: `mash build-hierarchy` over the full alignment,
without labels and with the ICD-10-CM tree as labels (it labels diagnoses only),
against average and Ward linkage on the same vectors; dendrogram purity of the lab
leaves of every site by LOINC component and by LOINC class (both parsed from the
LOINC names by :mod:`mash.synth.labs_catalog`). A picture of the lab subtree is
written to ``docs/img/lab_subtree.png``. Run from the repository root:

    python bench/domains.py                       # 3 sites, 10000 patients per site
    python bench/domains.py --patients 3000 --sites 4
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _linkage import linkage_tree  # noqa: E402

import mash  # noqa: E402
from mash.align.candidates import knn_blockwise  # noqa: E402
from mash.align.result import Alignment, mapping_frame  # noqa: E402
from mash.hyperbolic.build import HierarchyConfig, build_hierarchy, member_vectors  # noqa: E402
from mash.metrics import dendrogram_purity, ranking_metrics  # noqa: E402
from mash.synth.labs_catalog import load_lab_catalog  # noqa: E402
from mash.text import TextEmbedder  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
METHODS = {
    "(b0) mash, no co-occurrence, no values": {"min_events": 10**9, "use_values": False},
    "(b) mash, no co-occurrence": {"min_events": 10**9},
    "(c) mash, no values": {"use_values": False},
    "(d) mash full": {},
    "(e) mash full, formulary entries not pooled": {"pool_medications": False},
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(rows: list[dict], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = ""
    for r in rows:
        cells = [f"{r.get(c, ''):.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def world(patients: int, conditions: int, n_sites: int, seed: int) -> Path:
    sim_dir = OUT / f"domains_{patients}_{conditions}_{n_sites}_{seed}"
    if not (sim_dir / "simulation.json").is_file():
        mash.simulate(sim_dir, n_patients=patients, seed=seed, n_conditions=conditions,
                      n_sites=n_sites, domains=("diagnosis", "lab", "medication"),
                      events_format="parquet", quiet=True)
    return sim_dir


def text_only(sites: list[mash.Site], reference: str) -> pd.DataFrame:
    """(a): raw-description cosine nearest neighbours within each domain."""
    emb = TextEmbedder(quiet=True)
    ref = next(s for s in sites if s.name == reference)
    rv = emb.encode(ref.codes["description"].tolist())
    rdom = ref.codes["domain"].astype(str).to_numpy()
    rcodes = ref.codes["code"].to_numpy(str)
    parts = []
    for s in sites:
        if s.name == reference:
            continue
        qv = emb.encode(s.codes["description"].tolist())
        qdom = s.codes["domain"].astype(str).to_numpy()
        for d in np.unique(qdom):
            qi, ri = np.flatnonzero(qdom == d), np.flatnonzero(rdom == d)
            res = knn_blockwise(qv[qi], rv[ri], min(10, len(ri)), 1)
            parts.append(mapping_frame(s.name, s.codes["code"].to_numpy(str)[qi], rcodes[ri], res.index))
    return pd.concat(parts, ignore_index=True)


def subsets(sim_dir: Path, sites: list[mash.Site], reference: str) -> dict[str, pd.DataFrame]:
    """Gold pairs per (site, subset): domains, brand/generic drugs, near-duplicate labs."""
    gold = pd.read_csv(sim_dir / "gold.csv", dtype=str)
    key = pd.read_csv(sim_dir / "local_key.csv", dtype=str)
    domain = pd.concat([s.codes[["code", "domain"]].assign(site=s.name) for s in sites])
    g = gold.merge(domain.astype(str), on=["site", "code"], how="left")
    g = g.merge(key[["site", "code", "source_code", "naming"]], on=["site", "code"], how="left")
    labs = load_lab_catalog()
    comp = pd.Series(labs.component, index=labs.loinc)
    ref_labs = key[(key["site"] == reference) & (key["domain"] == "lab")]["source_code"]
    n_at_ref = comp.reindex(ref_labs).value_counts()
    g["near_dup"] = g["source_code"].map(comp).map(n_at_ref).fillna(0).astype(int) >= 2
    # names alone ambiguous: the local name, without the counter that keeps names unique
    # (" 2"), is shared by another lab code of the site
    desc = pd.concat([s.codes[["code", "description"]].assign(site=s.name) for s in sites])
    g = g.merge(desc.astype(str), on=["site", "code"], how="left")
    base = g["description"].str.lower().str.replace(r" \d+$", "", regex=True)
    labs_only = g["domain"] == "lab"
    local_names = pd.concat([s.codes.assign(site=s.name) for s in sites if s.name != reference])
    local_names = local_names[local_names["domain"].astype(str) == "lab"]
    nb = local_names["description"].astype(str).str.lower().str.replace(r" \d+$", "", regex=True)
    n_same = pd.Series(list(zip(local_names["site"], nb, strict=True))).value_counts()
    g["ambiguous"] = labs_only & (pd.Series(list(zip(g["site"], base, strict=True))).map(
        lambda k: n_same.get(k, 0)).to_numpy() >= 2)
    out = {}
    for site in sorted(g["site"].unique()):
        gs = g[g["site"] == site]
        for d in ("diagnosis", "lab", "medication"):
            out[(site, d)] = gs[gs["domain"] == d]
        out[(site, "medication: brand")] = gs[(gs["domain"] == "medication") & (gs["naming"] == "brand")]
        out[(site, "medication: generic")] = gs[(gs["domain"] == "medication") & (gs["naming"] == "generic")]
        out[(site, "lab: near-duplicates")] = gs[(gs["domain"] == "lab") & gs["near_dup"]]
        out[(site, "lab: ambiguous names")] = gs[gs["ambiguous"]]
    for d in ("diagnosis", "lab", "medication"):
        out[("all", d)] = g[g["domain"] == d]
    out[("all", "medication: brand")] = g[(g["domain"] == "medication") & (g["naming"] == "brand")]
    out[("all", "lab: near-duplicates")] = g[(g["domain"] == "lab") & g["near_dup"]]
    out[("all", "lab: ambiguous names")] = g[g["ambiguous"]]
    return out


def cross_domain_top1(mapping: pd.DataFrame, sites: list[mash.Site], reference: str) -> int:
    dom = {(s.name, c): d for s in sites for c, d in zip(s.codes["code"], s.codes["domain"].astype(str), strict=True)}
    top = mapping[mapping["rank"] == 1]
    return int(sum(dom.get((s, q)) != dom.get((reference, r))
                   for s, q, r in zip(top["site"], top["code"], top["reference_code"], strict=True)))


def lab_hierarchy(align_dir: Path, sim_dir: Path, seed: int, quiet: bool) -> list[dict]:
    """Purity of lab leaves by LOINC component and class: mash vs linkage."""
    alignment = Alignment.load(align_dir)
    emb = alignment.embeddings
    site, code = emb["site"].astype(str), emb["code"].astype(str)
    key = pd.read_csv(sim_dir / "local_key.csv", dtype=str)
    labs = load_lab_catalog()
    comp = dict(zip(labs.loinc, labs.component, strict=True))
    klass = dict(zip(labs.loinc, labs.lab_class, strict=True))
    src = {(s, c): x for s, c, x, d in zip(key["site"], key["code"], key["source_code"], key["domain"], strict=True)
           if d == "lab"}
    loinc = np.array([src.get((s, c), "") for s, c in zip(site, code, strict=True)], dtype=object)
    is_lab = loinc != ""
    by_comp = np.array([comp.get(x, "") for x in loinc], dtype=object)
    by_class = np.array([klass.get(x, "") for x in loinc], dtype=object)

    def scores(parent: np.ndarray, leaf_of_row: np.ndarray) -> dict:
        m = is_lab
        return {"purity by component": dendrogram_purity(parent, leaf_of_row[m], by_comp[m]),
                "purity by class": dendrogram_purity(parent, leaf_of_row[m], by_class[m])}

    aligned, text = member_vectors(emb, HierarchyConfig().cooc_weight)
    rows = []
    for label, vectors in (("aligned", aligned), ("text", text)):
        for method in ("average", "ward"):
            t0 = time.perf_counter()
            parent = linkage_tree(vectors.astype(np.float64), method=method)
            rows.append({"method": f"{method} linkage, {label} vectors", **scores(parent, np.arange(len(code))),
                         "seconds": time.perf_counter() - t0})
    hierarchies = {}
    for labels in ((), ("icd10cm",), ("icd10cm", "loinc")):
        t0 = time.perf_counter()
        h = build_hierarchy(alignment, labels, quiet=quiet, seed=seed)
        ids, parent = h.parent_array()
        index = {v: i for i, v in enumerate(ids)}
        leaf_of_row = np.array([index[f"{s}:{c}"] for s, c in zip(site, code, strict=True)])
        tag = "mash, " + ("no labels" if not labels else " + ".join(labels) + " as labels")
        rows.append({"method": tag, **scores(parent, leaf_of_row), "seconds": time.perf_counter() - t0,
                     "nodes": h.manifest["counts"]["nodes"]})
        hierarchies[tag] = h
    for r in rows:
        r["lab leaves"] = int(is_lab.sum())
    draw_lab_subtree(hierarchies["mash, icd10cm + loinc as labels"], {f"{s}:{c}" for s, c in zip(site[is_lab], code[is_lab], strict=True)},
                     DOCS_IMG / "lab_subtree.png")
    return rows


def draw_lab_subtree(h, lab_leaves: set[str], path: Path, max_leaves: int = 90) -> None:
    """The smallest subtree holding the first ``max_leaves`` lab leaves, as a dendrogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    g = h.graph
    root = next(n for n in g if g.in_degree(n) == 0)
    order = [n for n in nx.dfs_preorder_nodes(g, root) if n in lab_leaves][:max_leaves]
    keep: set = set()
    for leaf in order:
        keep.update(nx.ancestors(g, leaf))
        keep.add(leaf)
    sub = g.subgraph(keep)
    # collapse chains of single-child nodes so the picture shows the branching
    x: dict = {}
    for i, leaf in enumerate(order):
        x[leaf] = i
    depth = nx.shortest_path_length(sub, root)
    for n in sorted(sub, key=lambda v: -depth[v]):
        kids = list(sub.successors(n))
        if kids:
            x[n] = float(np.mean([x[k] for k in kids]))
    fig, ax = plt.subplots(figsize=(10, max(6, 0.22 * len(order))))
    maxd = max(depth.values())
    for u, v in sub.edges():
        ax.plot([depth[u], depth[u], depth[v]], [x[u], x[v], x[v]], color="0.6", lw=0.6)
    for leaf in order:
        text = str(g.nodes[leaf].get("label", leaf))[:48]
        ax.text(maxd + 0.3, x[leaf], f"{leaf.split(':')[0]}  {text}", va="center", fontsize=6)
    for n in sub:
        if sub.out_degree(n) >= 2 and depth[n] > 0:
            ax.text(depth[n], x[n], str(g.nodes[n].get("label", ""))[:28], fontsize=5, color="tab:blue",
                    ha="right", va="bottom")
    ax.set_xlim(-0.5, maxd + 8)
    ax.invert_yaxis()
    ax.axis("off")
    ax.set_title(f"mash hierarchy: subtree of {len(order)} lab codes (all sites)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=10_000, help="patients per site")
    p.add_argument("--conditions", type=int, default=1500)
    p.add_argument("--sites", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    t_start = time.perf_counter()
    sim_dir = world(args.patients, args.conditions, args.sites, args.seed)
    names = [f"site_{chr(ord('A') + i)}" for i in range(args.sites)]
    sites = [mash.Site.load(sim_dir / n) for n in names]
    reference = "site_B"
    sets = subsets(sim_dir, sites, reference)
    mappings = {"(a) text-only NN": text_only(sites, reference)}
    manifests = {}
    for name, overrides in METHODS.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            al = mash.align(sites, reference=reference, seed=args.seed, quiet=args.quiet, **overrides)
        mappings[name] = al.mapping
        manifests[name] = {"seconds": time.perf_counter() - t0, "peak RSS MB": round(peak_rss_mb())}
        if name == "(d) mash full":
            align_dir = sim_dir.with_name(sim_dir.name + "_align")
            al.save(align_dir)
        print(f"{name}: {manifests[name]}", flush=True)
    rows = []
    for (site, subset), gold in sets.items():
        if gold.empty:
            continue
        row = {"site": site, "subset": subset, "n": gold["code"].nunique()}
        for name, mapping in mappings.items():
            m = ranking_metrics(mapping, gold)
            row[f"{name} @1"] = m["hits@1"]
            row[f"{name} @5"] = m["hits@5"]
        rows.append(row)
    cross = {name: cross_domain_top1(m, sites, reference) for name, m in mappings.items()}
    cols = ["site", "subset", "n"] + [f"{n} @{k}" for n in mappings for k in (1, 5)]
    # brand-named drugs by how many events their code has (co-occurrence needs data)
    brand = sets[("all", "medication: brand")]
    n_events = pd.concat([s.events.groupby("code", observed=True).size().rename("events").reset_index()
                          .assign(site=s.name) for s in sites])
    n_events["code"] = n_events["code"].astype(str)
    brand = brand.merge(n_events, on=["site", "code"], how="left")
    for lo, hi in ((0, 50), (50, 200), (200, 10**12)):
        sub = brand[(brand["events"] > lo) & (brand["events"] <= hi)]
        if sub.empty:
            continue
        row = {"site": "all", "subset": f"medication: brand, {lo}-{hi if hi < 10**12 else ''} events",
               "n": sub["code"].nunique()}
        for name, mapping in mappings.items():
            m = ranking_metrics(mapping, sub)
            row[f"{name} @1"], row[f"{name} @5"] = m["hits@1"], m["hits@5"]
        rows.append(row)
    print(f"\n{sim_dir.name}: {', '.join(f'{s.name} {s.n_codes} codes' for s in sites)}")
    print(table(rows, cols))
    print("top-1 candidates in another domain: " + ", ".join(f"{k}: {v}" for k, v in cross.items()))
    hier = lab_hierarchy(align_dir, sim_dir, args.seed, args.quiet)
    print()
    print(table(hier, ["method", "lab leaves", "purity by component", "purity by class", "seconds"]))
    best = max((r for r in hier if "linkage" in r["method"]), key=lambda r: r["purity by component"])
    for r in hier:
        if r["method"].startswith("mash"):
            print(f"- {r['method']}: purity by component − best linkage ({best['method']}) = "
                  f"{r['purity by component'] - best['purity by component']:+.3f}")
    record = {"date": dt.date.today().isoformat(), "machine": platform.platform(), "args": vars(args),
              "rows": rows, "cross_domain_top1": cross, "hierarchy": hier, "runs": manifests,
              "seconds": time.perf_counter() - t_start}
    OUT.mkdir(exist_ok=True)
    (OUT / f"domains_{args.patients}_{args.sites}_{args.seed}.json").write_text(json.dumps(record, indent=1, default=str))


if __name__ == "__main__":
    main()
