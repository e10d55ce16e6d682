"""Speed and memory benchmark of the training code (Markdown on stdout).

    python benchmarks/bench.py             # machine, steps, full: ~5 min on 2 cores
    python benchmarks/bench.py --all --baseline 9d3f9fb --write benchmarks/RESULTS.md   # ~25 min

Sections: *machine*, its measured matmul rates; *steps*, for 3- and 9-layer nets, with and without
BN, in float32 and float64, the seconds per 1000 training steps (median of --repeats runs of 1000
steps, each exactly the loop of `train`: shuffled mini-batch gather, forward, backward, update, BN
moving averages) and the lower bound the measured matmul speed implies; *full*, the seconds of a
full default run (`train(load_cifar10(), Config())`, data loading excluded, each in a fresh
process), the loading time and the peak memory of that process; *parallel*, 4 independent runs in
this process vs 2 worker processes (`assignment3.scale.parallel`); *accuracy*, float32 vs float64
accuracy of the default run over 10 seeds; *micro*, the speed figures that the package's docstrings
quote (relu, row_sum, the weight decay and the blocked momentum update of the optimiser, the matmul
rate of section 6's net), measured again. `--baseline REV` also measures the code of a git revision
(extracted to a temporary folder), alternating with the working tree's, for before/after figures: a
revision in the package's layout since 0.2.0 (nn/, store/, scale/, report/), in the flat layout
before it (every module at the top, aebdaaf to 488c968), or the first training loop (9d3f9fb). Only
public names of the working tree's package are used. On a shared 2-core machine the figures move by
+-20% from one minute to the next: every figure is a median, and the variants compared alternate.
Needs CIFAR-10 (see `assignment3.data.find_data_dir`).
"""
import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The package is imported where it is used, so that the fresh process of a full run imports
# nothing of it before its clock starts.

NETS = {"3-layer": (50, 50), "9-layer": (50, 30, 20, 20, 10, 10, 10, 10)}
DTYPES = ("float32", "float64")


# ---------------------------------------------------------------------------------------------
# The machine and its matmul rates
# ---------------------------------------------------------------------------------------------

def median_time(fn, repeats=5, number=1):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return float(np.median(times))


def large_matmul_rate(dtype, threads, size=2000):
    """GFLOP/s of a size x size x size product."""
    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal((size, size)).astype(dtype) for _ in range(2))
    with threadpool_limits(threads, user_api="blas"):
        return 2 * size ** 3 / median_time(lambda: A @ B) / 1e9


def step_matmuls(hidden, dtype, n_batch=100, d=3072, K=10):
    """The matrix products of one training step, with the shapes and memory layouts of `train`:
    forward W_l H_(l-1), backward G_l H_(l-1)^T and W_l^T G_l. Returns (callables, FLOPs)."""
    rng = np.random.default_rng(0)
    dims = [d, *hidden, K]
    X_rows = rng.standard_normal((4 * n_batch, d)).astype(dtype)
    H = [X_rows[rng.permutation(4 * n_batch)[:n_batch]].T]       # a gathered mini-batch
    H += [rng.standard_normal((m, n_batch)).astype(dtype) for m in dims[1:-1]]
    W = [rng.standard_normal((m, m_in)).astype(dtype) for m_in, m in zip(dims[:-1], dims[1:])]
    G = [rng.standard_normal((m, n_batch)).astype(dtype) for m in dims[1:]]
    calls, flops = [], 0
    for l, (m_in, m) in enumerate(zip(dims[:-1], dims[1:])):
        calls += [lambda l=l: W[l] @ H[l], lambda l=l: G[l] @ H[l].T]
        flops += 2 * 2 * m * m_in * n_batch
        if l > 0:
            calls.append(lambda l=l: W[l].T @ G[l])
            flops += 2 * m * m_in * n_batch
    return calls, flops


def matmul_lower_bound(hidden, dtype, threads=1):
    """(seconds per 1000 steps of the step's matmuls alone with `threads` BLAS threads; their
    GFLOP/s)."""
    calls, flops = step_matmuls(hidden, dtype)
    with threadpool_limits(threads, user_api="blas"):
        seconds = median_time(lambda: [call() for call in calls], repeats=7, number=200)
    return 1000 * seconds, flops / seconds / 1e9


# ---------------------------------------------------------------------------------------------
# The code measured: the working tree's package, or a git revision's, in either layout
# ---------------------------------------------------------------------------------------------

#: Where the step loop's functions live in each layout of the package. "nested": 0.2.0 on (the
#: maths in nn/). "flat": aebdaaf to 488c968 (every module at the top; the step function and the
#: flat parameters were not public then, so these two names are looked up only in a --baseline
#: revision of that layout, never in the working tree). "first": 9d3f9fb's loop (no step
#: function), written out in `first_loop`.
LAYOUTS = {
    "nested": {"network": "nn.network", "schedule": "nn.optim", "averages": "nn.optim",
               "FlatParams": ("nn.optim", "FlatParams"), "step": ("nn.optim", "step")},
    "flat": {"network": "network", "schedule": "training", "averages": "training",
             "FlatParams": ("training", "_FlatParams"), "step": ("training", "_step")},
    "first": {"network": "network", "schedule": "training", "averages": "training"},
}
#: The first revision with a step function and flat parameters, and the first with
#: `minibatches.step_inputs`: revisions from the one up to the other fit no layout here.
FLAT_PARAMS_REV, STEP_INPUTS_REV = "0b2cea4", "aebdaaf"


def submodule(package, name):
    """The module `package.name`, or None if this version of the package has none."""
    full = f"{package}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as err:
        if err.name and (full == err.name or full.startswith(err.name + ".")):
            return None
        raise


@dataclass
class Code:
    """One version of the package, as the benchmark uses it: its `Config`, `load_cifar10`,
    `train` and the parts of its training loop, wherever its layout keeps them."""
    package: str                       # import name: assignment3, or a3_baseline (--baseline)
    layout: str                        # a key of LAYOUTS
    Config: type
    load_cifar10: Callable
    train: Callable
    network: Any                       # init_params, forward, softmax, backward
    cyclic_lr: Callable
    update_moving_averages: Callable
    step_inputs: Callable | None = None
    FlatParams: type | None = None
    step_fn: Callable | None = None

    def step(self, flat, Xb, Yb, eta, config, masks, t):
        """One update of `flat`, as this version's `train` makes it; its BN statistics."""
        if self.layout == "nested":
            return self.step_fn(flat, Xb, Yb, eta, lam=config.lam, momentum=config.momentum,
                                nesterov=config.nesterov, bn_order=config.bn_order, masks=masks,
                                t=t)
        return self.step_fn(flat, Xb, Yb, eta, config, masks, t)


def load_code(package):
    """The `Code` of the package importable as `package`, in whichever layout it has."""
    minibatches = submodule(package, "minibatches")
    layout = ("nested" if submodule(package, "nn") is not None
              else "flat" if minibatches is not None and hasattr(minibatches, "step_inputs")
              else "first")
    names = LAYOUTS[layout]
    training = submodule(package, "training")
    config = submodule(package, "config") or training       # 9d3f9fb: Config in training
    code = Code(package=package, layout=layout, Config=config.Config,
                load_cifar10=submodule(package, "data").load_cifar10, train=training.train,
                network=submodule(package, names["network"]),
                cyclic_lr=submodule(package, names["schedule"]).cyclic_lr,
                update_moving_averages=submodule(package, names["averages"])
                .update_moving_averages)
    if layout != "first":
        code.step_inputs = minibatches.step_inputs
        code.FlatParams = getattr(submodule(package, names["FlatParams"][0]),
                                  names["FlatParams"][1])
        code.step_fn = getattr(submodule(package, names["step"][0]), names["step"][1])
    return code


def baseline_package(rev, folder, name="a3_baseline"):
    """Extract assignment3/ of git revision `rev` into folder/name, importable as `name` with
    `folder` on sys.path; return the name. Refuses a revision whose training loop fits none of
    the LAYOUTS."""
    def is_ancestor(a, b):
        return subprocess.run(["git", "-C", str(REPO), "merge-base", "--is-ancestor", a, b],
                              capture_output=True).returncode == 0
    if is_ancestor(FLAT_PARAMS_REV, rev) and not is_ancestor(STEP_INPUTS_REV, rev):
        sys.exit(f"bench.py: --baseline {rev}: revisions from {FLAT_PARAMS_REV} to before "
                 f"{STEP_INPUTS_REV} have a step loop this benchmark does not know; compare "
                 f"with 9d3f9fb (the first loop), {STEP_INPUTS_REV} or later")
    target = Path(folder) / name
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "assignment3"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target), "--strip-components=1"], input=archive,
                   check=True)
    return name


# ---------------------------------------------------------------------------------------------
# Seconds per 1000 training steps
# ---------------------------------------------------------------------------------------------

def run_steps(code, data, fields, steps, threads=1):
    """(seconds, params, BN moving averages) of `steps` steps of `code`'s training loop on
    `data`, for the configuration `fields` (a dict of Config fields), with `threads` BLAS
    threads. For the "nested" and "flat" layouts it is the loop of that version's `train`
    with its own functions (its input stream with the next mini-batch prepared in another
    thread if the BLAS threads leave a core free, its step, its moving averages), without the
    evaluations: the parameters after `steps` steps are those of `train`'s run of `steps`
    steps, bit for bit, with one BLAS thread. For "first", `first_loop`."""
    if code.layout == "first":
        return first_loop(code, data, fields, steps, threads)
    config = code.Config(**fields).with_(blas_threads=threads)
    d, K = data.train.X.shape[0], data.train.Y.shape[0]
    n_s = config.n_s or 5 * (data.train.X.shape[1] // config.n_batch)
    flat = code.FlatParams(code.network.init_params(
        [d, *config.hidden, K], batch_norm=config.batch_norm, init=config.init, seed=config.seed,
        dtype=np.dtype(config.dtype)), momentum=config.momentum > 0)
    stats = None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
            threadpool_limits(threads, user_api="blas"), \
            ThreadPoolExecutor(max_workers=1) as pool:
        start = time.perf_counter()
        inputs = code.step_inputs(data.train, flat.params, config, steps, pool)
        for t, (Xb, Yb, masks, _) in enumerate(inputs):
            eta = code.cyclic_lr(t, config.eta_min, config.eta_max, n_s)
            batch_stats = code.step(flat, Xb, Yb, eta, config, masks, t)
            if batch_stats:
                stats = code.update_moving_averages(stats, batch_stats)
        return time.perf_counter() - start, flat.params, stats


def first_loop(code, data, fields, steps, threads=None):
    """The loop of 9d3f9fb's `train` (it has no separate step function), written out here with
    its public functions: a shuffled row gather, forward, softmax, the divergence check,
    backward, one update per parameter array, the moving averages; by default with BLAS threads
    as the process has them, as it ran. Returns what `run_steps` does."""
    network = code.network
    config = code.Config(**fields)
    d, K = data.train.X.shape[0], data.train.Y.shape[0]
    params = network.init_params([d, *config.hidden, K], batch_norm=config.batch_norm,
                                 init=config.init, seed=config.seed,
                                 dtype=np.dtype(config.dtype))
    rng = np.random.default_rng([config.seed, 1])
    X_rows, Y_rows = data.train.X.T, data.train.Y.T
    n, nb = X_rows.shape[0], config.n_batch
    n_s = config.n_s or 5 * (n // nb)
    stats, t = None, 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
            threadpool_limits(threads, user_api="blas"):
        start = time.perf_counter()
        while t < steps:
            order = rng.permutation(n)
            for j in range(n // nb):
                if t == steps:
                    break
                idx = order[j * nb:(j + 1) * nb]
                Xb, Yb = X_rows[idx].T, Y_rows[idx].T
                eta = code.cyclic_lr(t, config.eta_min, config.eta_max, n_s)
                S, cache, batch_stats = network.forward(params, Xb)
                P = network.softmax(S)
                if not np.isfinite(P.sum()):           # 9d3f9fb's divergence check
                    raise FloatingPointError(f"training diverged at step {t}")
                g = network.backward(params, Yb, P, cache, config.lam)
                for name, plist in params.items():
                    for p, gp in zip(plist, g[name]):
                        p -= eta * gp
                if network.uses_bn(params):
                    stats = code.update_moving_averages(stats, batch_stats)
                t += 1
        return time.perf_counter() - start, params, stats


def seconds_of_steps(code, data, fields, steps, threads=1):
    """The seconds of `run_steps`."""
    return run_steps(code, data, fields, steps, threads)[0]


# ---------------------------------------------------------------------------------------------
# Full runs, each in a fresh process
# ---------------------------------------------------------------------------------------------

def child_full_run(pkg_name, config_json):
    """In a fresh process: load CIFAR-10, train, print load time, train time, peak RSS."""
    start = time.perf_counter()
    code = load_code(pkg_name)
    config = code.Config(**json.loads(config_json))
    data = code.load_cifar10(progress=False, dtype=np.dtype(config.dtype))
    load = time.perf_counter() - start
    rss_load = peak_rss_mb()
    result = code.train(data, config)
    print(json.dumps({"load_s": load, "train_s": result.seconds, "rss_load_mb": rss_load,
                      "peak_mb": peak_rss_mb(), "test": result.test_accuracy,
                      "val": result.val_accuracy}))


def peak_rss_mb():
    """This process's peak resident memory (VmHWM; unlike ru_maxrss not inherited from the
    parent across fork and exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def full_run(pkg_name, pkg_path, config=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(pkg_path), str(REPO)]))
    out = subprocess.run([sys.executable, __file__, "--child", pkg_name, json.dumps(config or {})],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Parallel runs and float32 vs float64 accuracy
# ---------------------------------------------------------------------------------------------

class TreeMemoryPeak:
    """Peak memory of this process and its descendants (the worker processes): the sum of their
    proportional set sizes (PSS: shared pages, e.g. joblib's memory-mapped copy of the data,
    split between the processes sharing them), sampled every 0.1 s."""

    def __enter__(self):
        self.peak = self.used()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()

    @staticmethod
    def descendants():
        """The process ids of this process's descendants."""
        children = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [os.getpid()]
        while todo:
            pids = children.get(todo.pop(), [])
            found += pids
            todo += pids
        return found

    @classmethod
    def used(cls):
        total = 0.0
        for pid in [os.getpid(), *cls.descendants()]:
            try:
                for line in open(f"/proc/{pid}/smaps_rollup"):
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) / 1024
            except OSError:
                pass
        return total

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.used())
            time.sleep(0.1)


def parallel_runs(data, n_runs, repeats):
    from assignment3 import Config
    from assignment3.scale.parallel import train_many
    configs = [Config(seed=s) for s in range(n_runs)]
    rows = {1: [], 2: []}
    same = True
    for _ in range(repeats):
        results = {}
        for n_jobs in (1, 2):
            with TreeMemoryPeak() as mem:
                start = time.perf_counter()
                results[n_jobs] = train_many(data, configs, n_jobs=n_jobs)
                rows[n_jobs].append((time.perf_counter() - start, mem.peak))
        same &= all(np.array_equal(a.params["W"][0], b.params["W"][0])
                    for a, b in zip(results[1], results[2]))
    return {n_jobs: (float(np.median([r[0] for r in rs])), float(max(r[1] for r in rs)))
            for n_jobs, rs in rows.items()}, same


def worker_blas_threads():
    """The BLAS thread counts inside a worker process of `run_many`."""
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def accuracy_by_dtype(seeds):
    from assignment3 import Config, load_cifar10
    from assignment3.scale.parallel import train_many
    out = {}
    for dtype in DTYPES:
        data = load_cifar10(progress=False, dtype=np.dtype(dtype))
        results = train_many(data, [Config(dtype=dtype, seed=s) for s in seeds])
        out[dtype] = [(r.val_accuracy, r.test_accuracy, r.seconds) for r in results]
        del data
    return out


# ---------------------------------------------------------------------------------------------

class OtherLoad:
    """CPU time used by other processes while the block runs, in cores on average: the machine's
    busy time (/proc/stat) minus this process's and its waited-for children's. Flags figures
    measured on a machine that was not idle."""

    def __enter__(self):
        self.start = (time.perf_counter(), self.busy(), self.ours())
        return self

    def __exit__(self, *exc):
        wall, busy, ours = (b - a for a, b in zip(self.start, (
            time.perf_counter(), self.busy(), self.ours())))
        self.cores = max(0.0, (busy - ours) / wall)

    @staticmethod
    def busy():
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def ours():
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        for pid in TreeMemoryPeak.descendants():          # running worker processes
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                own += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
        return own


# ---------------------------------------------------------------------------------------------
# The report: one function per section, each emitting Markdown lines
# ---------------------------------------------------------------------------------------------

SECTIONS = ("machine", "steps", "full", "parallel", "accuracy", "micro")
#: In an existing --write file, the text up to this line is kept (hand-written notes).
MARKER = "<!-- bench.py output below -->"


def section_machine(args, packages, emit):
    from assignment3.store.provenance import machine
    info = machine()
    emit("## Machine")
    emit()
    emit(f"{info['cpu']}, {info['cores']} cores; Python {info['python']}, numpy {info['numpy']}, "
         f"BLAS {info['blas']}.")
    emit()
    emit("Matmul rate, 2000 x 2000 x 2000 (GFLOP/s, median of 5): " + ", ".join(
        f"{dt} {large_matmul_rate(dt, 1):.0f} (1 thread) / {large_matmul_rate(dt, 2):.0f} "
        f"(2 threads)" for dt in DTYPES) + ".")
    emit()


def section_steps(args, packages, emit):
    from assignment3 import load_cifar10
    emit("## Seconds per 1000 training steps")
    emit()
    emit(f"Batch 100, median of {args.repeats} runs of 1000 steps on the real data, each the "
         "loop of `train` (mini-batch gather, forward, backward, update, moving averages). "
         "*now*: one BLAS thread, as `train` runs them; *now 2t*: the same code with two BLAS "
         "threads. *bound 1t* / *bound 2t*: the step's matrix products alone, at the speed "
         "measured for their shapes with one / two BLAS threads; GFLOP/s: those speeds; "
         "*now / bound*: now / bound 1t.")
    if "before" in packages:
        emit(f"*before 2t* / *before 1t*: the loop of {args.baseline} "
             f"({packages['before'].layout} layout) with two / one BLAS threads; *speed-up*: "
             "before 1t / now. All variants alternate.")
    emit()
    variants = {"now": (packages["now"], seconds_of_steps),
                "now 2t": (packages["now"], partial(seconds_of_steps, threads=2))}
    head, rule = "| net | BN | dtype |", "| --- | --- | --- |"
    if "before" in packages:
        variants["before 2t"] = (packages["before"], partial(seconds_of_steps, threads=2))
        variants["before 1t"] = (packages["before"], partial(seconds_of_steps, threads=1))
        head += " before 2t | before 1t |"
        rule += " --- | --- |"
    head += " now | now 2t |"
    rule += " --- | --- |"
    if "before" in packages:
        head += " speed-up |"
        rule += " --- |"
    emit(head + " bound 1t | bound 2t | GFLOP/s 1t / 2t | now / bound |")
    emit(rule + " --- | --- | --- | --- |")
    for dtype in DTYPES:
        data = load_cifar10(progress=False, dtype=np.dtype(dtype))
        for net, hidden in NETS.items():
            bound, rate = matmul_lower_bound(hidden, dtype)
            bound2, rate2 = matmul_lower_bound(hidden, dtype, threads=2)
            for bn in (True, False):
                fields = {"hidden": hidden, "batch_norm": bn, "dtype": dtype}
                times = {key: [] for key in variants}
                for _ in range(args.repeats):                 # the variants alternate
                    for key, (code, run) in variants.items():
                        times[key].append(run(code, data, fields, 1000))
                med = {key: float(np.median(ts)) for key, ts in times.items()}
                row = f"| {net} | {'yes' if bn else 'no'} | {dtype} |"
                if "before" in packages:
                    row += f" {med['before 2t']:.2f} | {med['before 1t']:.2f} |"
                row += f" **{med['now']:.2f}** | {med['now 2t']:.2f} |"
                if "before" in packages:
                    row += f" {med['before 1t'] / med['now']:.2f} |"
                emit(row + f" {bound:.2f} | {bound2:.2f} | {rate:.0f} / {rate2:.0f} | "
                           f"{med['now'] / bound:.2f} |")
        del data
    emit()


def section_full(args, packages, emit, folder):
    emit("## Full default run")
    emit()
    emit("`train(load_cifar10(), Config())`: 3-layer BN net, float32, 9,000 steps, 21 "
         "evaluations on 45,000 + 5,000 images and one on the 10,000 test images. Each run in a "
         f"fresh process; median of {args.full_repeats}"
         + (", before and now alternating" if "before" in packages else "") + ". *train s*: "
         "`Result.seconds`, data loading excluded; *load s*: importing the package and "
         "`load_cifar10()`; *peak MB*: the process's peak resident memory (VmHWM), data "
         "included.")
    emit()
    emit("| code | train s | load s | peak MB | test acc | val acc |")
    emit("| --- | --- | --- | --- | --- | --- |")
    runs = {key: [] for key in packages}
    for _ in range(args.full_repeats):
        for key, code in packages.items():
            runs[key].append(full_run(code.package, folder))
    for key, rs in runs.items():
        def med(field, rs=rs):
            return float(np.median([r[field] for r in rs]))
        name = f"before ({args.baseline})" if key == "before" else key
        emit(f"| {name} | {med('train_s'):.1f} | {med('load_s'):.2f} | "
             f"{max(r['peak_mb'] for r in rs):.0f} | {rs[0]['test']:.4f} | {rs[0]['val']:.4f} |")
    emit()


def section_parallel(args, packages, emit, n_runs=4):
    from assignment3 import load_cifar10
    from assignment3.scale.parallel import run_many
    data = load_cifar10(progress=False)
    par, same = parallel_runs(data, n_runs, repeats=2)
    threads = run_many(worker_blas_threads, [()] * 2, n_jobs=2)
    emit("## Independent runs in parallel")
    emit()
    emit(f"{n_runs} default runs (seeds 0-{n_runs - 1}) with `train_many`: in this process one "
         "after another (n_jobs=1) or in 2 loky worker processes with one BLAS thread each "
         "(n_jobs=2); median of 2, alternating. Peak MB: the sum of the proportional set sizes "
         "of this process (holding the data) and its worker processes (sharing joblib's "
         "memory-mapped copy of it).")
    emit()
    emit("| n_jobs | wall s | peak MB |")
    emit("| --- | --- | --- |")
    for n_jobs, (wall, mb) in par.items():
        emit(f"| {n_jobs} | {wall:.1f} | {mb:.0f} |")
    emit()
    emit(f"Speed-up of 2 workers: {par[1][0] / par[2][0]:.2f}x. Same parameters in workers "
         f"as in this process, bit for bit: {'yes' if same else 'NO'}. BLAS threads in each "
         f"worker (threadpoolctl): {threads}.")
    emit()


def section_accuracy(args, packages, emit, seeds=tuple(range(10))):
    acc = accuracy_by_dtype(seeds)
    emit("## float32 vs float64 accuracy")
    emit()
    emit(f"Default 3-layer BN run, seeds {', '.join(map(str, seeds))}, with `train_many` "
         "(float64 gradients are what the gradient check validates); mean +- standard "
         "deviation over the seeds.")
    emit()
    emit("| dtype | test acc per seed | mean test | val acc per seed | mean val |")
    emit("| --- | --- | --- | --- | --- |")
    for dtype, rs in acc.items():
        tests, vals = [r[1] for r in rs], [r[0] for r in rs]
        emit(f"| {dtype} | {', '.join(f'{a:.4f}' for a in tests)} | "
             f"{np.mean(tests):.4f} +- {np.std(tests, ddof=1):.4f} | "
             f"{', '.join(f'{a:.4f}' for a in vals)} | "
             f"{np.mean(vals):.4f} +- {np.std(vals, ddof=1):.4f} |")
    emit()
    for i, split in ((1, "test"), (0, "val")):
        a, b = ([r[i] for r in acc[dtype]] for dtype in DTYPES)
        diff = 100 * (np.mean(a) - np.mean(b))
        se = 100 * np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
        emit(f"- {split}: float32 minus float64 mean accuracy {diff:+.2f} points, standard "
             f"error {se:.2f} ({abs(diff) / se:.1f} standard errors).")
    emit()


# ---------------------------------------------------------------------------------------------
# The speed figures the package's docstrings quote, measured again
# ---------------------------------------------------------------------------------------------

def random_data(n=2000, d=3072, K=10, dtype=np.float32, seed=0):
    """A CIFAR10 of n random training images (10 validation and test ones), laid out as
    load_cifar10's: for timing steps, whose speed does not depend on the pixels."""
    from assignment3.data import CIFAR10, Split, one_hot
    rng = np.random.default_rng(seed)

    def split(m):
        y = rng.integers(0, K, m)
        return Split(X=rng.standard_normal((m, d)).astype(dtype).T, Y=one_hot(y, K, dtype=dtype),
                     y=y)
    return CIFAR10(train=split(n), val=split(10), test=split(10), mean=np.zeros((d, 1)),
                   std=np.ones((d, 1)))


def alternating(variants, repeats, setup=None):
    """{name: median seconds} of the callables `variants`, run in turn `repeats` times; `setup`
    (untimed) before each call."""
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            if setup:
                setup()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def momentum_update(g, v, theta, eta, lam, mu, n_weights, block):
    """nn.optim.step's momentum update (Nesterov), written out: g += 2 lam W; v = mu v + g;
    theta -= eta (g + mu v), `block` entries at a time (the whole vectors at once: one pass of
    each operation over them)."""
    for i in range(0, theta.size, block):
        gb, vb, tb = g[i:i + block], v[i:i + block], theta[i:i + block]
        if lam and i < n_weights:
            w = slice(0, n_weights - i)
            gb[w] += (2 * lam) * tb[w]
        vb *= mu
        vb += gb
        gb += mu * vb
        gb *= eta
        tb -= gb


def section_micro(args, packages, emit):
    from assignment3 import Config
    from assignment3.compute import n_parameters, n_weights
    from assignment3.config import PART_ONE
    from assignment3.nn.network import relu, row_sum
    from assignment3.nn.optim import UPDATE_BLOCK
    from assignment3.store.provenance import matmul_rate
    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(1, user_api="blas"):
        S = np.abs(rng.standard_normal((50, 10_000))).astype(np.float32)
        t = alternating({"row": lambda: relu(S), "scalar": lambda: np.maximum(S, 0, out=S)}, 201)
        rows.append(("`nn/network.py` `relu`: against a row of zeros, not the scalar 0",
                     "scalar 0 3x slower (50 x 10,000)",
                     f"{1e6 * t['row']:.0f} us vs {1e6 * t['scalar']:.0f} us: scalar "
                     f"{t['scalar'] / t['row']:.1f}x slower"))
        A = rng.standard_normal((50, 100)).astype(np.float32)
        t = alternating({"row_sum": lambda: row_sum(A),
                         "sum": lambda: A.sum(axis=1, keepdims=True),
                         "mean": lambda: A.mean(axis=1, keepdims=True),
                         "ones": lambda: np.ones((100, 1), np.float32)}, 2001)
        rows.append(("`nn/network.py` `row_sum`: A times a cached column of ones",
                     "half the time of A.sum(axis=1) (50 x 100); a fifth of mean "
                     "(RESULTS.md)",
                     f"{1e6 * t['row_sum']:.1f} us vs sum {1e6 * t['sum']:.1f} us "
                     f"({t['row_sum'] / t['sum']:.2f}), mean {1e6 * t['mean']:.1f} us "
                     f"({t['row_sum'] / t['mean']:.2f})"))
        rows.append(("`nn/network.py` `row_sum`'s column of ones is cached",
                     "creating it costs as much as the sum",
                     f"np.ones((100, 1)) {1e6 * t['ones']:.1f} us, row_sum "
                     f"{1e6 * t['row_sum']:.1f} us"))

        # weight decay as W *= 1 - 2 eta lam, against the gradient's 2 lam W term added with a
        # temporary, on the 3-layer net's vectors, and per step of its training loop
        config = Config()
        m = n_parameters(config)
        theta, grad = rng.standard_normal(m).astype(np.float32), np.empty(m, np.float32)
        nw, eta, lam = n_weights(config), 0.01, config.lam
        g0 = rng.standard_normal(m).astype(np.float32)

        def scaled():
            theta[:nw] *= 1 - 2 * eta * lam
            grad[...] *= eta
            theta[...] -= grad

        def temporary():
            grad[:nw] += (2 * lam) * theta[:nw]
            grad[...] *= eta
            theta[...] -= grad
        t = alternating({"scaled": scaled, "temporary": temporary}, 2001,
                        setup=lambda: grad.__setitem__(Ellipsis, g0))
        step_s = run_steps(load_code("assignment3"), random_data(), {}, 500)[0] / 500
        rows.append(("`nn/optim.py` `step`: weight decay as W *= 1 - 2 eta lam",
                     "5% faster for the 3-layer net (than a W_1-sized temporary)",
                     f"update {1e6 * t['scaled']:.0f} us vs {1e6 * t['temporary']:.0f} us; "
                     f"the difference is {100 * (t['temporary'] - t['scaled']) / step_s:.1f}% "
                     f"of a 3-layer BN float32 step ({1e6 * step_s:.0f} us)"))

    # the momentum update block by block, on the vectors of section 6's 1024-512-256 net
    m, nw = n_parameters(PART_ONE), n_weights(PART_ONE)
    vecs = [rng.standard_normal(m).astype(np.float32) for _ in range(3)]
    work = [np.empty_like(x) for x in vecs]

    def reset():
        for w, x in zip(work, vecs):
            w[...] = x
    t = alternating({block: partial(momentum_update, *work, 0.01, 2.5e-4, 0.9, nw, block)
                     for block in (UPDATE_BLOCK, m)}, 31, setup=reset)
    rows.append(("`nn/optim.py` momentum update: block by block",
                 f"halves the update's time (vectors of {m * 4 / 1e6:.0f} MB, part one's net)",
                 f"{1e3 * t[UPDATE_BLOCK]:.1f} ms in blocks of {UPDATE_BLOCK} vs "
                 f"{1e3 * t[m]:.1f} ms in one pass: {t[m] / t[UPDATE_BLOCK]:.2f}x"))
    rows.append(("`config.py` `PART_ONE`: its first layer's float32 product",
                 "130 GFLOP/s on some days, 190 on others",
                 f"{matmul_rate(PART_ONE):.0f} GFLOP/s now (`store.provenance.matmul_rate`, "
                 f"{PART_ONE.blas_threads} BLAS threads)"))
    emit("## Figures quoted in the package's docstrings")
    emit()
    emit("Medians of alternating runs, float32, one BLAS thread but for the matmul rate.")
    emit()
    emit("| where | docstring says | measured |")
    emit("| --- | --- | --- |")
    for row in rows:
        emit("| " + " | ".join(row) + " |")
    emit()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs of 1000 steps per figure")
    ap.add_argument("--full-repeats", type=int, default=3, help="full default runs")
    ap.add_argument("--baseline", metavar="REV", help="also measure this git revision's code")
    ap.add_argument("--all", action="store_true", help="every section (default: machine, "
                    "steps, full; the others are parallel, accuracy and micro)")
    ap.add_argument("--sections", help=f"comma-separated, from {', '.join(SECTIONS)}")
    ap.add_argument("--write", metavar="FILE", help="also write the Markdown to FILE, keeping "
                    f"any text up to a line {MARKER}")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_full_run(*args.child)
    sections = (SECTIONS if args.all else args.sections.split(",") if args.sections
                else SECTIONS[:3])

    lines = []

    def emit(text=""):
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as folder:
        packages = {"now": load_code("assignment3")}
        if args.baseline:
            name = baseline_package(args.baseline, folder)
            sys.path.insert(0, folder)
            packages["before"] = load_code(name)
        emit(f"_`python benchmarks/bench.py {' '.join(sys.argv[1:])}`, "
             f"{time.strftime('%Y-%m-%d %H:%M')}_")
        emit()
        for section in sections:
            run = globals()[f"section_{section}"]
            with OtherLoad() as other:
                if section == "full":
                    run(args, packages, emit, folder)
                else:
                    run(args, packages, emit)
            emit(f"_Other processes used {other.cores:.2f} cores on average during this "
                 "section._")
            emit()

    if args.write:
        path = Path(args.write)
        kept = ""
        if path.exists() and MARKER in path.read_text():
            kept = path.read_text().split(MARKER)[0] + MARKER + "\n\n"
        path.write_text(kept + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
