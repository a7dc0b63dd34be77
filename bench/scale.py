"""Wall time and peak RSS of `mash align` against vocabulary size (warm and cold text cache).

Two synthetic sites of N codes each. The reference site's descriptions are real ICD-10-CM
2024 long descriptions (past the 74k real ones, a real description plus a generated
qualifier); the query site writes the same concepts the way a local system would
(words truncated to 3-5 letters, some dropped, shuffled qualifiers), under its own
opaque codes. Events come from a topic model (each code belongs to one of N/40
topics; a patient draws from two topics), about 25 events per code per site.

Each size runs `mash align` as a separate process under `/usr/bin/time -v` (peak RSS of
the whole command), first with an empty text cache (cold), then again (warm). Run from
the repository root:

    python bench/scale.py                              # 2000 8000 30000
    python bench/scale.py --sizes 100000 --no-cold     # shared cache: cold only when it lacks the texts
    python bench/scale.py --sizes 8000 --reference-size 74044   # a whole standard vocabulary at B
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_descriptions(n: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Reference and query descriptions of ``n`` concepts."""
    from mash.synth import load_reference_tables

    real = load_reference_tables().icd10_long.to_numpy(dtype=str)
    pick = rng.permutation(len(real))[: min(n, len(real))]
    ref = list(real[pick])
    quals = ["left", "right", "bilateral", "initial encounter", "subsequent encounter", "sequela", "recurrent",
             "chronic", "acute", "with complication", "without complication", "in remission", "mild", "severe"]
    k = 0
    while len(ref) < n:  # generated concepts past the real vocabulary
        base = real[rng.integers(len(real))]
        q1, q2 = rng.choice(len(quals), 2, replace=False)
        ref.append(f"{base}, {quals[q1]}, {quals[q2]}, type {k % 97}")
        k += 1

    def local(text: str) -> str:
        words = re.findall(r"[A-Za-z0-9]+", text)
        out = []
        for w in words:
            u = rng.random()
            if u < 0.12 and len(words) > 3:
                continue  # dropped
            if u < 0.6 and len(w) > 5:
                w = w[: rng.integers(3, 6)]  # truncated
            out.append(w.upper() if rng.random() < 0.5 else w.lower())
        return " ".join(out) or text

    return ref, [local(t) for t in ref]


def write_sites(root: Path, n: int, seed: int, n_ref: int | None = None) -> tuple[Path, Path]:
    """Site A with ``n`` codes, site B with ``n_ref`` (default ``n``); B's codes past the
    first ``n`` concepts are listed without events (a whole standard vocabulary)."""
    rng = np.random.default_rng(seed)
    n_ref = n if n_ref is None else n_ref
    ref_all, q_all = synthetic_descriptions(n_ref, rng)
    ref_desc, q_desc = ref_all[:n], q_all[:n]
    n_topics = max(5, n // 40)
    topic = rng.integers(n_topics, size=n)
    prevalence = np.exp(1.5 * rng.standard_normal(n))
    dirs = []
    for name, desc, prefix in (("site_A", q_desc, "A"), ("site_B", ref_desc, "B")):
        codes = np.array([f"{prefix}{i:07d}" for i in rng.permutation(n)])
        n_patients = max(500, n // 2)
        per = rng.poisson(50, size=n_patients) + 1
        pt = np.repeat(np.arange(n_patients), per)
        topics = rng.integers(n_topics, size=(n_patients, 2))
        chosen = topics[pt, rng.integers(2, size=len(pt))]
        # a code of the chosen topic, by prevalence (sampled per topic with sorted cumsums)
        order = np.argsort(topic, kind="stable")
        starts = np.searchsorted(topic[order], np.arange(n_topics + 1))
        cum = np.cumsum(prevalence[order])
        lo = np.where(starts[chosen] > 0, cum[np.maximum(starts[chosen] - 1, 0)], 0.0)
        hi = cum[np.maximum(starts[chosen + 1] - 1, 0)]
        u = lo + rng.random(len(pt)) * (hi - lo)
        pos = np.minimum(np.searchsorted(cum, u), len(cum) - 1)
        code_idx = order[pos]
        day = rng.integers(0, 730, size=len(pt))
        site = root / name
        site.mkdir(parents=True, exist_ok=True)
        listed = pd.DataFrame({"code": codes, "description": desc})
        if name == "site_B" and n_ref > n:  # the rest of the vocabulary, text only
            extra = pd.DataFrame({"code": [f"B{i:07d}" for i in range(n, n_ref)], "description": ref_all[n:]})
            listed = pd.concat([listed, extra], ignore_index=True)
        listed.to_csv(site / "codes.csv", index=False)
        times = (np.datetime64("2020-01-01") + day.astype("timedelta64[D]")).astype(str)
        pd.DataFrame({"subject_id": pt, "time": times, "code": codes[code_idx]}).to_csv(site / "events.csv", index=False)
        dirs.append(site)
    return dirs[0], dirs[1]


def timed_align(a: Path, b: Path, out: Path, cache: Path) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "mash.cli", "align", str(a), str(b), "--reference", "site_B",
           "--out", str(out), "--cache-dir", str(cache), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 1024
    manifest = json.loads((out / "manifest.json").read_text())
    return {"wall s": round(wall, 1), "peak RSS MB": round(rss), **{f"{k} s": v for k, v in manifest["timings_s"].items()},
            "encoded": manifest["text_cache"]["encoded"],
            "encodings/code": manifest["text_cache"]["encodings_per_code"],
            "desc/s": manifest["text_cache"]["descriptions_per_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 30000])
    p.add_argument("--reference-size", type=int, default=None,
                   help="site B lists this many codes (only the first N have events), e.g. 74044")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", type=Path, default=Path("bench/out/scale"))
    p.add_argument("--no-cold", action="store_true", help="skip the cold-cache run (use the shared cache as is)")
    p.add_argument("--cache", type=Path, default=Path("bench/out/scale/cache"), help="warm text cache")
    args = p.parse_args()
    rows = []
    for n in args.sizes:
        n_ref = args.reference_size or n
        site_root = args.root / f"sites_{n}x{n_ref}_{args.seed}"
        if not (site_root / "site_B" / "events.csv").exists():
            write_sites(site_root, n, args.seed, n_ref)
        a, b = site_root / "site_A", site_root / "site_B"
        label = f"{n} x {n_ref}"
        if not args.no_cold:  # an empty cache, then the same cache again (warm)
            with tempfile.TemporaryDirectory() as cache:
                for kind in ("cold", "warm"):
                    rows.append({"codes/site": label, "cache": kind,
                                 **timed_align(a, b, site_root / f"out_{kind}", Path(cache))})
                    print(json.dumps(rows[-1]), flush=True)
            continue
        rows.append({"codes/site": label, "cache": "warm", **timed_align(a, b, site_root / "out_warm", args.cache)})
        print(json.dumps(rows[-1]), flush=True)
        if rows[-1]["encoded"]:  # the shared cache lacked these texts: that run was cold
            rows[-1]["cache"] = "cold (filled)"
            rows.append({"codes/site": label, "cache": "warm", **timed_align(a, b, site_root / "out_warm", args.cache)})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n## mash align, wall time and peak RSS by vocabulary size; {dt.date.today()}, "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
