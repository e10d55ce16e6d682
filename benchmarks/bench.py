"""Speed and memory of the training code against its targets (Markdown on stdout).

    python benchmarks/bench.py                  # steps and full runs: about a minute on 2 cores
    python benchmarks/bench.py --quick          # synthetic data, a few seconds: the script works
    python benchmarks/bench.py --json out.json  # also the figures with the machine, as JSON

*Steps*: seconds per 1000 training steps of the 3- and 9-layer BN nets in float32, each run the
loop of `train` without its evaluations, with one BLAS thread (as `train` runs) and two. *Full*: a
default run (`train(load_cifar10(), Config())`) in a fresh process: training seconds
(`Result.seconds`), seconds of `load_cifar10()`, peak memory. Times on a shared machine drift (up
to 2x in a day), so each is also given as FLOP/s (`compute.step_gflop`) over the float32 matmul
rate measured beside it (`store.provenance.matmul_rate`), memory as a multiple of the data's.
Needs CIFAR-10 (`assignment3.data.find_data_dir`) but with --quick. Older code's figures:
benchmarks/RESULTS.md and git history.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from assignment3 import Config, load_cifar10, train
from assignment3.data import CIFAR10, Split, one_hot
from assignment3.nn.network import update_moving_averages
from assignment3.nn.optim import FlatParams, cyclic_lr, step
from assignment3.nn.types import Array, Params, Stats
from assignment3.report.compute import n_weights, step_gflop
from assignment3.store.provenance import machine, matmul_rate
from assignment3.training.harness import Run
from assignment3.training.inputs import step_inputs

#: The nets whose steps are timed (BN, float32, batch 100), by name.
NETS = {"3-layer": Config(hidden=(50, 50)),
        "9-layer": Config(hidden=(50, 30, 20, 20, 10, 10, 10, 10))}
#: The targets (docs/speed.md): seconds per 1000 steps of each net with one BLAS thread, and of
#: a full default run: training seconds, loading seconds, peak memory in MB.
TARGETS = {"3-layer": 0.45, "9-layer": 0.8, "train_s": 10.0, "load_s": 2.0, "peak_mb": 1500.0}
#: --quick: steps per timed run and the full run's Config (on synthetic data).
QUICK_STEPS, QUICK_RUN = 40, Config(n_s=10, cycles=1)
SECTIONS = ("steps", "full")
Figures = dict[str, Any]


def synthetic(n_train: int = 500, n: int = 100, d: int = 3072, K: int = 10) -> CIFAR10:
    """Random data laid out as load_cifar10's (X.T C-contiguous): for --quick, whose figures do
    not depend on the pixels."""
    rng = np.random.default_rng(0)

    def split(m: int) -> Split:
        y = rng.integers(0, K, m)
        X = rng.standard_normal((m, d), dtype=np.float32).T
        return Split(X=X, Y=one_hot(y, K, dtype=np.float32), y=y)
    return CIFAR10(train=split(n_train), val=split(n), test=split(n), mean=np.zeros((d, 1)),
                   std=np.ones((d, 1)))


def one_step(flat: FlatParams, Xb: Array, Yb: Array, eta: float, config: Config,
             masks: list[Array] | None, t: int) -> Stats:
    """`nn.optim.step` with the options of `config`, as `train` calls it (the one call of it
    here); the mini-batch's BN statistics."""
    return step(flat, Xb, Yb, eta, t, config.update, net=config.net, masks=masks)


def timed_steps(data: CIFAR10, config: Config, steps: int) -> tuple[float, Params, Stats | None]:
    """(seconds, parameters, BN moving averages) of the first `steps` steps of `train`'s loop for
    the cyclic `config` on `data`, without its evaluations: its input stream (the next mini-batch
    made in a thread if the BLAS threads leave a core free), `step`, the moving averages. The
    parameters are those of `train`'s run of `steps` steps, bit for bit."""
    flat = Run.start(data, config, None).flat
    n_s = config.n_s or 5 * (data.train.n // config.n_batch)
    stats: Stats | None = None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
            threadpool_limits(config.blas_threads, user_api="blas"), \
            ThreadPoolExecutor(max_workers=1) as pool:
        start = time.perf_counter()
        for t, (Xb, Yb, masks, _) in enumerate(step_inputs(data.train, flat.params, config,
                                                           steps, pool)):
            eta = cyclic_lr(t, config.eta_min, config.eta_max, n_s)
            batch_stats = one_step(flat, Xb, Yb, eta, config, masks, t)
            if batch_stats:
                stats = update_moving_averages(stats, batch_stats)
        return time.perf_counter() - start, flat.params, stats


def steps_section(quick: bool, repeats: int) -> Figures:
    """Per net: the median seconds per 1000 steps with 1 and 2 BLAS threads and the matmul rate
    beside each, the variants alternating `repeats` times (--quick: once, 1 thread)."""
    data = synthetic() if quick else load_cifar10(progress=False)
    steps, threads, repeats = (QUICK_STEPS, (1,), 1) if quick else (1000, (1, 2), repeats)
    rows = []
    for name, config in NETS.items():
        runs: dict[int, list[tuple[float, float]]] = {n: [] for n in threads}
        for _ in range(repeats):
            for n, times in runs.items():
                threaded = config.with_(blas_threads=n)
                times.append((timed_steps(data, threaded, steps)[0], matmul_rate(threaded)))
        s, rate = ({n: statistics.median(r[i] for r in v) for n, v in runs.items()}
                   for i in (0, 1))
        gflops = step_gflop(config) * steps / s[1]
        rows.append({"net": name, "hidden": config.hidden, "s_per_1000": 1000 * s[1] / steps,
                     "gflops": gflops, "matmul_gflops": rate[1], "of_matmul": gflops / rate[1],
                     **({"s_per_1000_2t": 1000 * s[2] / steps, "speedup_2t": s[1] / s[2],
                         "matmul_gflops_2t": rate[2]} if 2 in s else {})})
    return {"repeats": repeats, "steps": steps, "nets": rows}


def child_full_run(quick: bool) -> Figures:
    """In a fresh process: load the data, train the default run (--quick: QUICK_RUN on synthetic
    data); its figures."""
    config = QUICK_RUN if quick else Config()
    start = time.perf_counter()
    data = synthetic() if quick else load_cifar10(progress=False)
    load_s = time.perf_counter() - start
    rate = matmul_rate(config)
    result = train(data, config)
    splits = (data.train, data.val, data.test)
    evaluated = (len(result.history["acc_val"]) * (data.train.n + data.val.n) + data.test.n)
    gflop = result.steps * step_gflop(config) + 2 * n_weights(config) * evaluated / 1e9
    data_mb = sum(s.X.nbytes + s.Y.nbytes + s.y.nbytes for s in splits) / 2**20
    peak_mb = next(int(line.split()[1]) / 1024 for line in  # VmHWM: not inherited, as ru_maxrss
                   Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    return {"train_s": result.seconds, "load_s": load_s, "peak_mb": peak_mb,
            "data_mb": data_mb, "gflops": gflop / result.seconds, "matmul_gflops": rate,
            "steps": result.steps, "test_accuracy": result.test_accuracy}


def full_section(quick: bool, repeats: int) -> Figures:
    """The medians of `repeats` full runs (--quick: 1), each in a fresh process; peak: the max."""
    repeats = 1 if quick else repeats
    command = [sys.executable, __file__, "--child", *(["--quick"] if quick else [])]
    runs = [json.loads(subprocess.run(command, check=True, capture_output=True, text=True)
                       .stdout.splitlines()[-1]) for _ in range(repeats)]
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    return {**median, "peak_mb": max(run["peak_mb"] for run in runs),
            "of_matmul": median["gflops"] / median["matmul_gflops"], "repeats": repeats}


@contextmanager
def other_load() -> Iterator[list[float]]:
    """A list that gets, as the block ends, the cores other processes used on average in it (the
    machine's busy CPU time less this process's and its waited-for children's): a busy machine."""
    def clocks() -> tuple[float, float, float]:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # not idle
        t = os.times()
        return time.perf_counter(), busy, t.user + t.system + t.children_user + t.children_system
    cores: list[float] = []
    start = clocks()
    yield cores
    wall, busy, ours = (b - a for a, b in zip(start, clocks()))
    cores.append(max(0.0, (busy - ours) / wall))


def targets(out: Figures) -> list[Figures]:
    """Each target of the sections run, with the figure measured for it and whether it is met."""
    found = [(f"{r['net']} BN float32, s / 1000 steps", r["s_per_1000"], TARGETS[r["net"]])
             for r in out.get("steps", {}).get("nets", [])]
    found += [(figure, out["full"][key], TARGETS[key]) for key, figure in (
        ("train_s", "full default run, training s"), ("load_s", "loading CIFAR-10, s"),
        ("peak_mb", "peak memory of a default run, MB")) if "full" in out]
    return [{"figure": f, "measured": m, "target": t, "met": m <= t} for f, m, t in found]


def markdown(out: Figures) -> Iterator[str]:
    """The report of the figures `out`, line by line."""
    m = out["machine"]
    yield f"_`python benchmarks/bench.py {out['args']}`, {out['date']}_\n"
    yield "**--quick: synthetic data, few steps: figures meaningless.**\n" if out["quick"] else ""
    yield "## Machine\n"
    yield (f"{m['cpu']}, {m['cores']} cores; Python {m['python']}, numpy {m['numpy']}, BLAS "
           f"{m['blas']}. Matmul rate (`matmul_rate(Config())`: float32, 50 x 3072 by 3072 x "
           f"100, median of 20): {out['matmul_gflops']:.0f} GFLOP/s.\n")
    if "steps" in out:
        yield ("## Seconds per 1000 training steps\n\nBN, float32, batch 100; median of "
               f"{out['steps']['repeats']} runs of {out['steps']['steps']} steps, each the loop "
               "of `train` without its evaluations, 1 and 2 BLAS threads alternating (--quick: "
               "1). *GFLOP/s*: the step's products (`step_gflop`) per second, 1 thread; *of "
               "matmul*: that over the matmul rate measured beside each run (1 thread).\n")
        yield "| net | s, 1 thread | s, 2 threads | 2t speed-up | GFLOP/s | of matmul |"
        yield "| --- | --- | --- | --- | --- | --- |"
        for r in out["steps"]["nets"]:
            two = (f"{r['s_per_1000_2t']:.2f} | {r['speedup_2t']:.2f}" if "speedup_2t" in r
                   else "- | -")
            yield (f"| {r['net']} | **{r['s_per_1000']:.2f}** | {two} | {r['gflops']:.0f} | "
                   f"{r['of_matmul']:.2f} |")
        yield f"\n_Other processes used {out['steps']['other_cores']:.2f} cores meanwhile._\n"
    if "full" in out:
        f = out["full"]
        yield (f"## Full default run\n\nMedian of {f['repeats']}, each in a fresh process: "
               f"{f['steps']:.0f} steps and the evaluations; test accuracy "
               f"{f['test_accuracy']:.4f}. *GFLOP/s*: the products of its steps and evaluations "
               "per second of training; *of matmul*: that over the matmul rate measured before "
               "it; *peak / data*: the process's peak memory over the data's.\n")
        yield "| train s | load s | peak MB | peak / data | GFLOP/s | of matmul |"
        yield "| --- | --- | --- | --- | --- | --- |"
        yield (f"| **{f['train_s']:.1f}** | {f['load_s']:.2f} | {f['peak_mb']:.0f} | "
               f"{f['peak_mb'] / f['data_mb']:.2f} | {f['gflops']:.0f} | {f['of_matmul']:.2f} |")
        yield f"\n_Other processes used {f['other_cores']:.2f} cores meanwhile._\n"
    yield "## Targets\n\n| | measured | target | |\n| --- | --- | --- | --- |"
    for v in out["targets"]:
        yield (f"| {v['figure']} | {v['measured']:.3g} | <= {v['target']:g} | "
               f"{'met' if v['met'] else 'not met'} |")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated, from {', '.join(SECTIONS)} (default: both)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each net and threads")
    ap.add_argument("--full-repeats", type=int, default=3, help="full default runs")
    ap.add_argument("--quick", action="store_true", help="synthetic data, few steps, one run "
                    "each, one BLAS thread: a few seconds, to check that the script works")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child_full_run(args.quick)))
        return
    sections = args.sections.split(",")
    if unknown := sorted(set(sections) - set(SECTIONS)):
        ap.error(f"unknown section {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    out: Figures = {"args": " ".join(sys.argv[1:] if argv is None else argv),
                    "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
                    "matmul_gflops": matmul_rate(Config()), "quick": args.quick}
    for section in (s for s in SECTIONS if s in sections):
        with other_load() as cores:
            out[section] = (steps_section(args.quick, args.repeats) if section == "steps"
                            else full_section(args.quick, args.full_repeats))
        out[section]["other_cores"] = cores[0]
    out["targets"] = targets(out)
    print("\n".join(markdown(out)), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
