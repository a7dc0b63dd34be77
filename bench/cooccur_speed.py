"""Speed of :func:`mash.cooccur.cooccurrence_counts` on realistic synthetic sites.

Each patient has Poisson(events / 4) + 1 visits spread uniformly over 1--3 years, each
visit Poisson(3) + 1 codes drawn from a Zipf(1.1) distribution over ``n_codes`` codes,
timed on the visit day plus 0--2 days and a random time of day. Subject ids are random
10-digit integers and the events are shuffled, so nothing is pre-sorted.

Usage::

    python bench/cooccur_speed.py                 # 100k and 200k patients
    python bench/cooccur_speed.py --patients 50000 --threads 1 --repeat 1

Prints one table row per size: events, pairs, capped pairs, best-of-``repeat`` seconds,
events/s, the size of the input arrays, the peak of memory allocated by the call on top of
them (``tracemalloc``, measured in one extra untimed run; NumPy reports its buffers to it),
and the process's peak RSS so far (``ru_maxrss``; it includes the event generator).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from mash.cooccur import cooccurrence_counts, cooccurrence_embeddings


def generate_events(
    n_patients: int,
    n_codes: int = 3000,
    events_per_patient: float = 20.0,
    zipf_s: float = 1.1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffled (subject int64, time_days float64, code int32) arrays of ~20 events each."""
    rng = np.random.default_rng(seed)
    n_vis = rng.poisson(events_per_patient / 4.0, n_patients) + 1
    ids = rng.choice(9 * 10**9, size=n_patients, replace=False).astype(np.int64) + 10**9
    vis_subj = np.repeat(np.arange(n_patients), n_vis)
    span = rng.uniform(365.0, 3 * 365.0, n_patients)
    start = rng.uniform(16_000.0, 19_000.0, n_patients)  # days since 1970
    vis_day = np.floor(start[vis_subj] + rng.uniform(0.0, 1.0, vis_subj.size) * span[vis_subj])
    ev_vis = np.repeat(np.arange(vis_subj.size), rng.poisson(3.0, vis_subj.size) + 1)
    p = np.arange(1, n_codes + 1, dtype=np.float64) ** -zipf_s
    code = rng.permutation(n_codes)[rng.choice(n_codes, size=ev_vis.size, p=p / p.sum())]
    t = vis_day[ev_vis] + rng.integers(0, 3, ev_vis.size) + rng.uniform(0.0, 1.0, ev_vis.size)
    order = rng.permutation(ev_vis.size)
    return ids[vis_subj[ev_vis]][order], t[order], code[order].astype(np.int32)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, nargs="+", default=[100_000, 200_000])
    ap.add_argument("--codes", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=None, help="default: all cores")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--embed", action="store_true", help="also time SPPMI + SVD (dim 64)")
    args = ap.parse_args()

    print(f"{'patients':>9} {'events':>10} {'pairs':>11} {'capped':>7} {'seconds':>8} "
          f"{'events/s':>11} {'input MiB':>10} {'extra MiB':>10} {'peak RSS MiB':>13}")
    for n_patients in args.patients:
        subject, time_days, code = generate_events(n_patients, n_codes=args.codes)
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = cooccurrence_counts(
                subject, time_days, code, args.codes, args.window, n_threads=args.threads
            )
            best = min(best, time.perf_counter() - t0)
        tracemalloc.start()
        cooccurrence_counts(subject, time_days, code, args.codes, args.window, n_threads=args.threads)
        extra = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        size = (subject.nbytes + time_days.nbytes + code.nbytes) / 2**20
        print(f"{n_patients:>9,} {subject.size:>10,} {res.n_pairs:>11,} {res.n_pairs_capped:>7,} "
              f"{best:>8.3f} {subject.size / best:>11,.0f} {size:>10,.0f} {extra:>10,.0f} "
              f"{peak_rss_mib():>13,.0f}")
        if args.embed:
            emb = cooccurrence_embeddings(
                subject, time_days, code, args.codes, window_days=args.window,
                n_threads=args.threads,
            )
            print("   embed stages (s):", emb.stats["seconds"], "reliable:", emb.stats["n_reliable"])


if __name__ == "__main__":
    main()
