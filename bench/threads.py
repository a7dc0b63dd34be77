"""Thread counts and OpenMP wait policy for ``mash`` commands on a shared CPU.

Runs one command (default: ``mash align`` on the bundled sample, warm text cache) as a
subprocess under several threading settings, alone and beside ``--load`` busy processes
that stand for other work on the machine, and prints wall time, CPU time and whether
the outputs are byte-identical to the first setting's.

Usage::

    python bench/threads.py                          # align, load 0 and 2, 3 repeats
    python bench/threads.py --command hierarchy --load 0 2 --repeat 3

Settings (``env`` is added to the environment, ``flags`` go after ``mash``):

- ``default``: each library's own default (torch and OpenMP use every core);
- ``threads=1`` / ``threads=2``: ``mash --threads N``;
- ``omp=1``: ``OMP_NUM_THREADS=1`` (the workaround users reach for);
- ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep instead of spinning);
- ``passive, threads=1``.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"

SETTINGS: dict[str, tuple[dict[str, str], list[str]]] = {
    "default": ({}, []),
    "threads=1": ({}, ["--threads", "1"]),
    "threads=2": ({}, ["--threads", "2"]),
    "omp=1": ({"OMP_NUM_THREADS": "1"}, []),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
    "passive, threads=1": ({"OMP_WAIT_POLICY": "PASSIVE"}, ["--threads", "1"]),
}
OUTPUTS = {"align": ["mapping.csv", "concepts.csv", "embeddings.npz"], "hierarchy": ["hierarchy.graphml"]}


def _spin() -> None:  # pragma: no cover - runs in a child process until terminated
    x = 0
    while True:
        x += 1


def _command(which: str, out: Path, align_dir: Path | None, cache: Path) -> list[str]:
    if which == "align":
        return ["align", str(SAMPLE / "site_A"), str(SAMPLE / "site_B"), "--reference", "site_B",
                "--out", str(out), "--cache-dir", str(cache), "--quiet"]
    assert align_dir is not None
    return ["build-hierarchy", str(align_dir), "--out", str(out / "hierarchy.graphml"), "--labels", "icd10cm",
            "--quiet"]


def _digest(out: Path, which: str) -> str:
    h = hashlib.sha256()
    for name in OUTPUTS[which]:
        h.update((out / name).read_bytes())
    return h.hexdigest()[:12]


def _run(flags: list[str], env: dict[str, str], cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of ``mash FLAGS CMD``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mash.cli", *flags, *cmd], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--command", choices=sorted(OUTPUTS), default="align")
    ap.add_argument("--load", type=int, nargs="+", default=[0, 2], help="busy processes beside the command")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mash-threads-"))
    cache = work / "cache"
    align_dir = None
    try:
        warm = _command("align", work / "warm", None, cache)  # fills the text cache
        _run([], {}, warm)
        if args.command == "hierarchy":
            align_dir = work / "warm"
        print(f"# {args.command} on the sample, cores={os.cpu_count()}, load average before "
              f"{os.getloadavg()[0]:.1f}, median of {args.repeat}")
        print(f"{'load':>4}  {'setting':<20} {'wall s':>7} {'cpu s':>7} {'vs default':>10}  outputs")
        for load in args.load:
            spinners = [mp.Process(target=_spin, daemon=True) for _ in range(load)]
            for p in spinners:
                p.start()
            try:
                ref_digest, ref_wall = None, None
                for name in args.settings:
                    env, flags = SETTINGS[name]
                    walls, cpus, digests = [], [], set()
                    for r in range(args.repeat):
                        out = work / f"{name}-{load}-{r}".replace(" ", "").replace(",", "_").replace("=", "")
                        wall, cpu = _run(flags, env, _command(args.command, out, align_dir, cache))
                        walls.append(wall)
                        cpus.append(cpu)
                        digests.add(_digest(out, args.command))
                        shutil.rmtree(out)
                    wall = statistics.median(walls)
                    digest = digests.pop() if len(digests) == 1 else "varies"
                    ref_digest = ref_digest or digest
                    ref_wall = ref_wall or wall
                    same = "identical" if digest == ref_digest else f"DIFFER ({digest})"
                    print(f"{load:>4}  {name:<20} {wall:7.1f} {statistics.median(cpus):7.1f} "
                          f"{wall / ref_wall:9.2f}x  {same}", flush=True)
            finally:
                for p in spinners:
                    p.terminate()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
