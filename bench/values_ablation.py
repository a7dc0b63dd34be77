"""Lab values as an alignment signal: top-1 with and without ``use_values``.

A synthetic lab-only world: 60 labunits analytes (LOINC codes, real names at the
reference); the query site names half of them by one of four shared, uninformative
names ("lab panel 0" ...) and the other half by the analyte's name. Each analyte's values
are log-normal (median and spread drawn per analyte, the same at both sites); the query
records traditional units, the reference SI units (labunits' factor). The world is
idealised (identical distributions, no units column, no noise between sites), so it
bounds what the features can add. Run: ``python bench/values_ablation.py``.
"""
import warnings

import numpy as np
import pandas as pd

from mash.align import align
from mash.align.values import _analytes
from mash.sites import Site

warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
an = [a for a in _analytes().values() if a.get("conversion_factor") and a.get("name")][:60]
n = len(an)
med = np.exp(rng.uniform(-1, 5, n))
sig = rng.uniform(0.05, 0.6, n)
amb = rng.random(n) < 0.5
qnames = [f"lab panel {i % 4}" if amb[i] else a["name"].lower() for i, a in enumerate(an)]
def ev(codes, scale, seed):
    r = np.random.default_rng(seed)
    rows = []
    for i, c in enumerate(codes):
        k = 150
        v = med[i] * np.exp(sig[i] * r.standard_normal(k)) * scale[i]
        rows.append(pd.DataFrame({"subject_id": r.integers(0, 300, k).astype(str), "time": pd.Timestamp("2015-01-01") + pd.to_timedelta(r.integers(0, 700, k), unit="D"), "code": c, "numeric_value": v}))
    return pd.concat(rows)
qc = [f"q{i}" for i in range(n)]
rc = [a["loinc_num"] for a in an]
A = Site.from_frames("A", pd.DataFrame({"code": qc, "description": qnames, "domain": "lab"}), ev(qc, np.ones(n), 1))
B = Site.from_frames("B", pd.DataFrame({"code": rc, "description": [a["name"] for a in an], "domain": "lab"}), ev(rc, np.array([a["conversion_factor"] for a in an]), 2))
for use in (True, False):
    res = align([A, B], "B", quiet=True, use_values=use)
    m = res.mapping[res.mapping["rank"] == 1].set_index("code")["reference_code"]
    ok = np.array([m.get(q) == r for q, r in zip(qc, rc, strict=True)])
    print(f"use_values={use}: top-1 all {ok.mean():.3f}  ambiguous-named {ok[amb].mean():.3f} ({amb.sum()})  named {ok[~amb].mean():.3f} ({(~amb).sum()})")
