"""Codes whose description says nothing (an opaque id): does co-occurrence align them?

A copy of the bundled sample in which a fifth of site_A's descriptions are replaced by
"item N"; hits@1 of those codes against the sample's gold, with and without
co-occurrence (``min_events`` above every count) and with and without transport.
Run from the repository root:

    python bench/opaque_descriptions.py [--share 0.2] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import mash


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sample", type=Path, default=Path("data/sample"))
    p.add_argument("--share", type=float, default=0.2, help="share of site_A descriptions blanked")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path("bench/out/opaque_cache"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "world"
        shutil.copytree(args.sample, root)
        codes = pd.read_csv(root / "site_A" / "codes.csv", dtype=str, keep_default_na=False)
        events = pd.read_csv(root / "site_A" / "events.csv", dtype=str)
        counts = events["code"].value_counts()
        rng = np.random.default_rng(args.seed)
        blank = rng.choice(len(codes), int(len(codes) * args.share), replace=False)
        codes.loc[blank, "description"] = [f"item {i}" for i in range(len(blank))]
        codes.to_csv(root / "site_A" / "codes.csv", index=False)
        gold = pd.read_csv(root / "gold.csv", dtype=str)
        gold = gold[gold["site"] == "site_A"]
        blanked = set(codes.loc[blank, "code"])
        frequent = {c for c in blanked if counts.get(c, 0) >= 20}
        sites = [mash.Site.load(root / "site_A"), mash.Site.load(root / "site_B")]
        rows = []
        for transport in ("unbalanced", "none"):
            for cooc, min_events in (("yes", 20), ("no", 10**9)):
                al = mash.align(sites, reference="site_B", quiet=True, cache_dir=str(args.cache),
                                transport=transport, min_events=min_events, seed=args.seed)
                top = al.mapping[al.mapping["rank"] == 1][["code", "reference_code"]]
                hit = set(top.merge(gold, on=["code", "reference_code"])["code"])
                rows.append({"transport": transport, "co-occurrence": cooc,
                             f"hits@1 blanked (n={len(blanked)})": round(np.mean([c in hit for c in blanked]), 3),
                             f"hits@1 blanked, >= 20 events (n={len(frequent)})":
                                 round(np.mean([c in hit for c in frequent]), 3)})
    print(f"\n## opaque descriptions, share {args.share}, seed {args.seed}; {dt.date.today()}, "
          f"{platform.machine()}, Python {platform.python_version()}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
