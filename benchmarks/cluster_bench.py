"""A lambda search on a local 2-worker Dask cluster against the same search in 2 local worker
processes (Markdown on stdout); the issue's target is a time ratio <= 1.15.

    python benchmarks/cluster_bench.py                 # 4 default trials, 3 runs each: ~3 min

Each run is the command line, `python -m assignment3 search --coarse 4 --fine 0 --json` with
`--jobs 2` or `--scheduler ADDRESS`, in a fresh process, timed from start to exit; the two
alternate, since the speed of a shared machine drifts. The cluster (`distributed.LocalCluster`:
a scheduler in this process, 2 worker processes with one thread each) is started before the
first run and kept: its first run includes the workers' loading of CIFAR-10 ("cold"), the next
ones find it loaded ("warm"). Every run records its trials (--out): the training time of a
trial (`Result.seconds`) against the wall time says how much of a run is not training.
Needs CIFAR-10 (see `assignment3.data.find_data_dir`) and the cluster extra.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from distributed import LocalCluster


def search(backend: list[str], extra: list[str], folder: str, run: str) -> tuple[float, float]:
    """(wall seconds, summed training seconds of the trials) of one search command."""
    out = Path(folder) / f"{run}.jsonl"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "assignment3", "search", "--coarse", "4", "--fine",
                    "0", "--json", "--out", str(out), *backend, *extra],
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    trials = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    return wall, sum(t["seconds"] for t in trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each backend (3)")
    parser.add_argument("extra", nargs="*", help="more search options, e.g. -- --cycles 0.5")
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {"jobs": [], "cold": [], "warm": []}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, \
            tempfile.TemporaryDirectory() as folder:
        for run in range(args.repeats):
            rows["jobs"].append(search(["--jobs", "2"], args.extra, folder, f"jobs{run}"))
            rows["cold" if run == 0 else "warm"].append(
                search(["--scheduler", cluster.scheduler_address], args.extra, folder,
                       f"dask{run}"))
    jobs = np.median([wall for wall, _ in rows["jobs"]])
    print("| backend | runs | wall s (median) | training s per worker | not training, s | "
          "ratio to --jobs 2 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, label in [("jobs", "--jobs 2"), ("cold", "Dask, first run (workers load data)"),
                        ("warm", "Dask, data loaded")]:
        if rows[name]:
            wall, train = np.median(rows[name], axis=0)
            print(f"| {label} | {len(rows[name])} | {wall:.1f} | {train / 2:.1f} | "
                  f"{wall - train / 2:.1f} | {wall / jobs:.3f} |")
    print("\nAll runs (wall s; they alternate jobs, Dask): " + ", ".join(
        f"{name} {wall:.1f}" for name in rows for wall, _ in rows[name]))


if __name__ == "__main__":
    main()
