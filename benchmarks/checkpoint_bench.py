"""What checkpoints cost: the time a checkpoint at every evaluation adds to a default run (target
<= 3%), and the size of a checkpoint against the size of the parameters, for the default net and
for the best net of section 6, whose checkpoint also holds the momentum velocity and the running
average of its weights (SWA): target at most 1.05x per such parameter-sized vector.

    .venv/bin/python benchmarks/checkpoint_bench.py [--repeats 3]
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from assignment3 import Checkpoint, Config, load_cifar10, train
from assignment3.data import CIFAR10
from assignment3.report.presets import BEST
from assignment3.store import runfile


def overhead(data: CIFAR10, repeats: int) -> tuple[dict[str, list[float]], float]:
    """Wall and CPU seconds of the default run without and with a checkpoint, alternating,
    `repeats` each, and the median seconds of one write of its checkpoint. On a busy machine
    the CPU seconds (all threads of this process) vary less than the wall time."""
    times: dict[str, list[float]] = {"without": [], "with": [], "without, CPU": [],
                                     "with, CPU": []}
    with tempfile.TemporaryDirectory() as folder:
        for i in range(repeats):
            for key, path in (("without", None), ("with", Path(folder) / f"{i}.npz")):
                checkpoint = Checkpoint(path) if path else None
                cpu = time.process_time()
                times[key].append(train(data, Config(), checkpoint=checkpoint).seconds)
                times[f"{key}, CPU"].append(time.process_time() - cpu)
        return times, write_seconds(Path(folder) / "0.npz")


def write_seconds(path: Path, repeats: int = 21) -> float:
    """Median seconds of writing the checkpoint `path` again (read once, written `repeats`
    times): the work each checkpoint adds, done in the evaluation thread."""
    arrays, meta = runfile.read(path)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runfile.write(path, arrays, meta)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def vectors_kept(config: Config) -> int:
    """Parameter-sized vectors a checkpoint of `config` holds: the parameters, the momentum
    velocity (with momentum) and the running average of the weights (with SWA)."""
    return 1 + bool(config.momentum) + bool(config.swa)


def size_ratio(data: CIFAR10, config: Config) -> tuple[int, int]:
    """(checkpoint bytes, parameter bytes) of a short run of `config` checkpointed at its end."""
    with tempfile.TemporaryDirectory() as folder:
        ckpt = Path(folder) / "ckpt.npz"
        result = train(data, config, checkpoint=Checkpoint(ckpt))
        params = sum(P.nbytes for arrays in result.params.values() for P in arrays)
        return ckpt.stat().st_size, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = load_cifar10(progress=False)
    times, write = overhead(data, args.repeats)
    for clock in ("", ", CPU"):
        without, with_ = (statistics.median(times[k + clock]) for k in ("without", "with"))
        print(f"default run, median of {args.repeats}{clock}: {without:.2f} s without "
              f"checkpoints, {with_:.2f} s with one at each of its 21 evaluations: "
              f"{100 * (with_ / without - 1):+.1f}% (target <= 3%)")
    without = statistics.median(times["without"])
    print("  all runs (s):", {k: [round(t, 2) for t in v] for k, v in times.items()})
    print(f"  one checkpoint write: {1000 * write:.1f} ms; 21 of them are "
          f"{100 * 21 * write / without:.1f}% of the run without checkpoints (in the "
          "evaluation thread, overlapping the steps)")
    short_best = BEST.with_(epochs=0.03, zca=False, evals_per_cycle=1)
    for name, config in (("default net", Config(cycles=0.01)), ("best net", short_best)):
        ckpt, params = size_ratio(data, config)
        n = vectors_kept(config)
        print(f"{name}: checkpoint {ckpt / 1e6:.2f} MB, parameters {params / 1e6:.2f} MB: "
              f"{ckpt / params:.2f}x for {n} parameter-sized vector{'s' if n > 1 else ''} "
              f"(target <= {1.05 * n:.2f}x)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
