"""Beyond the assignment (report section 6): how far a fully connected net gets on CIFAR-10 on two
CPU cores. The path from the assignment's net to the best one, one change at a time, and the long
runs of the best net, stored with the code version and seeds that made them so that the report
can show and re-check them without retraining for 40 minutes to an hour."""
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from . import env
from .augment import flipped, zca_whiten
from .data import one_hot
from .gradcheck import check_gradients
from .network import PARAM_NAMES, dropout_masks, evaluate, init_params, softmax, test_scores
from .training import Config, Result, train

#: Hidden layers of the wide net.
WIDE = (1024, 512, 256)

#: The best configuration. Its length is what fits in 20 minutes (ZCA fit, steps and evaluations
#: included) on the report's 2-core machine, with a margin: that machine's speed varies (its float32
#: matmul ran at 130 GFLOP/s on some days, 190 on others; `matmul_rate`), and the runs stored in
#: results/beyond record the rate measured before and after them.
BEST = Config(hidden=WIDE, bn_order="before", dropout=0.2, flip=True, max_shift=3, zca=True,
              schedule="one_cycle", epochs=180, eta_max=0.1, momentum=0.9, nesterov=True,
              lam=2.5e-4, n_batch=256, blas_threads=2)

#: Configurations the command line starts from (`--preset`).
PRESETS = {"assignment": Config(), "best": BEST}

#: Length of the short runs of the ablation path.
ABLATION_EPOCHS = 20

#: Where the runs are stored (committed with the code, so that the report can show them).
RESULTS_DIR = Path(__file__).resolve().parents[1] / "results" / "beyond"

#: Set to 1 to retrain instead of loading the stored runs.
RETRAIN_ENV = "ASSIGNMENT3_RETRAIN"


def ablation_path(epochs=ABLATION_EPOCHS, best=BEST):
    """[(change, Config)]: from the assignment's 3-layer BN net to the `best` configuration, each
    step adding one change to the step before, all but the last trained for `epochs` epochs (the
    assignment's two cycles are 20 epochs)."""
    assignment = Config()
    wide = assignment.with_(hidden=best.hidden, blas_threads=best.blas_threads)
    sgd = wide.with_(n_batch=best.n_batch, lam=best.lam, schedule="one_cycle", epochs=epochs,
                     eta_max=best.eta_max, warmup=best.warmup, momentum=best.momentum,
                     nesterov=best.nesterov)
    dropout = sgd.with_(dropout=best.dropout)
    augmented = dropout.with_(flip=best.flip, max_shift=best.max_shift)
    zca = augmented.with_(zca=best.zca)
    bn_order = zca.with_(bn_order=best.bn_order)
    steps = [("the assignment's net: 50-50, BN, cyclical learning rate", assignment),
             (f"wider and deeper: {'-'.join(map(str, best.hidden))}", wide),
             (f"Nesterov momentum {best.momentum}, batch {best.n_batch}, one-cycle schedule, "
              f"weight decay {2 * best.lam:g}", sgd),
             (f"dropout {best.dropout}", dropout),
             (f"random flips and shifts of up to {best.max_shift} pixels", augmented),
             ("ZCA whitening", zca),
             ("BN after the ReLU", bn_order),
             (f"longer training: {best.epochs:g} epochs (the best net)", best)]
    # keep only the steps that change something (e.g. no BN-order step if BN stays before)
    return [steps[0]] + [step for prev, step in zip(steps, steps[1:]) if step[1] != prev[1]]


def gradient_checks(data, hidden=(50, 30), n=3, d=20, dropout=0.2, lam=0.005, seed=0):
    """Worst relative error of the analytic gradients of the new network options (BN before or
    after the ReLU, without and with fixed dropout masks) against centred differences, float64,
    on the first n training images and their first d dimensions. One row per option pair."""
    X = np.ascontiguousarray(data.train.X[:d, :n], dtype=np.float64)
    Y = one_hot(data.train.y[:n], dtype=np.float64)
    params = init_params([d, *hidden, Y.shape[0]], batch_norm=True, seed=seed)
    masks = dropout_masks(params, n, dropout, np.random.default_rng(seed))
    rows = []
    for bn_order in ("before", "after"):
        for drop in (None, masks):
            errors = check_gradients(params, X, Y, lam, bn_order=bn_order, masks=drop)
            rows.append({"BN": bn_order + " the ReLU",
                         "dropout": f"{dropout} (fixed masks)" if drop else "none",
                         "worst relative error": max(r["max_rel_error"] for r in errors),
                         "median relative error": float(np.median([r["median_rel_error"]
                                                                   for r in errors]))})
    return rows


def n_parameters(config, d=3072, K=10):
    """Trainable parameters (W, b, gamma, beta) of a configuration's network."""
    dims = [d, *config.hidden, K]
    weights = sum(m_in * m_out + m_out for m_in, m_out in zip(dims[:-1], dims[1:]))
    return weights + (2 * sum(config.hidden) if config.batch_norm else 0)


def step_gflop(config, d=3072, K=10):
    """GFLOP of the matrix products of one training step: per layer W H forward, G H^T for dW
    and (except the first layer) W^T G, each 2 m_in m_out n_batch FLOP."""
    dims = [d, *config.hidden, K]
    products = sum((2 if l == 0 else 3) * m_in * m_out
                   for l, (m_in, m_out) in enumerate(zip(dims[:-1], dims[1:])))
    return 2 * products * config.n_batch / 1e9


def matmul_rate(config=BEST, d=3072, repeats=20):
    """GFLOP/s of this machine's float32 product of `config`'s first layer, W_1 (m_1 x d) times a
    mini-batch (d x n_batch), with its BLAS threads; median of `repeats`. It bounds the speed of
    the training steps, so it tells how fast the machine was when a run was timed."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((config.hidden[0], d), dtype=np.float32)
    X = rng.standard_normal((d, config.n_batch), dtype=np.float32)
    times = []
    with threadpool_limits(config.blas_threads, user_api="blas"):
        for _ in range(repeats + 1):                   # the first product warms up
            start = time.perf_counter()
            W @ X
            times.append(time.perf_counter() - start)
    return 2 * W.size * config.n_batch / np.median(times[1:]) / 1e9


def machine():
    """The machine a run is timed on: CPU model, cores, Python and numpy versions, and the BLAS
    library with its kernel (e.g. "openblas 0.3.31 (Haswell), 2 threads"; the kernel changes
    the rounding of the products, so a seed gives a different run with another kernel)."""
    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):                # Linux: the model name
        cpu = next((line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    blas = [f"{i['internal_api']} {i['version']} ({i.get('architecture', '?')}), "
            f"{i['num_threads']} threads" for i in threadpool_info() if i["user_api"] == "blas"]
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "blas": "; ".join(blas)}


def describe(machine_info):
    """One line for a `machine()` dict (or "not recorded" for None)."""
    if not machine_info:
        return "not recorded"
    return "{cpu}, {cores} cores, numpy {numpy}, BLAS {blas}".format(**machine_info)


def code_version(repo=Path(__file__).resolve().parents[1]):
    """The git commit of the code ("<hash>", with "+changes" if the working tree differs from
    it), or "unknown" outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", "assignment3")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if changed else "")


def alternatives(epochs=ABLATION_EPOCHS, best=BEST):
    """[(change, Config)]: changes tried beside the path, each against the path's last short
    step: for now the other BN placement."""
    last = ablation_path(epochs, best)[-2][1]
    other = "after" if last.bn_order == "before" else "before"
    return [(f"BN {other} the ReLU instead of {last.bn_order}", last.with_(bn_order=other))]


def run_record(change, result, version=None):
    """A JSON-ready record of one run: the change, its configuration and scores, its minutes and
    parameter count, its history, and the code version that trained it (default: this one)."""
    return {"change": change, **result.summary(), "minutes": result.seconds / 60,
            "parameters": n_parameters(result.config), "history": result.history,
            "code_version": version or code_version()}


def make_record(ablation, alternative, best, matmul_gflops=()):
    """The stored record from run records: the ablation path's short runs, the alternatives and
    the best configuration's runs (one per seed; the first closes the path), the machine's
    `matmul_rate` measured before and after them, and the `machine` they ran on."""
    return {"seeds": [run["config"]["seed"] for run in best], "ablation": ablation + best[:1],
            "alternatives": alternative, "best": best, "matmul_gflops": list(matmul_gflops),
            "machine": machine()}


def run_all(data, seeds=(0, 1), epochs=ABLATION_EPOCHS, best=BEST, progress=False):
    """Train the ablation path to `best` and the alternatives (seed `seeds[0]`), and `best` for
    every seed, one run after another (each run uses both cores). Returns (record, the best
    configuration's Result for seeds[0])."""
    def records(steps):
        return [run_record(change, train(data, config.with_(seed=seeds[0]), progress))
                for change, config in steps]
    path = ablation_path(epochs, best)
    rate_before = matmul_rate(best)
    best_results = [train(data, best.with_(seed=s), progress) for s in seeds]
    ablation, alternative = records(path[:-1]), records(alternatives(epochs, best))
    record = make_record(ablation, alternative,
                         [best_record(data, path[-1][0], r) for r in best_results],
                         (rate_before, matmul_rate(best)))
    return record, best_results[0]


def best_record(data, change, result, version=None):
    """`run_record` of a best-configuration run, with its flip-averaged test accuracy."""
    return {**run_record(change, result, version),
            "test_accuracy_flip_averaged": reevaluate(data, result)["test, flip-averaged"]}


def save(directory, record, result):
    """Write the record (beyond.json) and the first best run's parameters and BN averages
    (best_params.npz) into `directory`, each through a temporary file renamed into place."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {f"{name}_{l}": P for name in PARAM_NAMES for l, P in enumerate(result.params[name])}
    arrays.update({f"{key}_{l}": a for l, stat in enumerate(result.stats)
                   for key, a in zip(("mu", "v"), stat)})
    _write_atomic(directory / "best_params.npz", lambda f: np.savez_compressed(f, **arrays))
    _write_atomic(directory / "beyond.json",
                  lambda f: f.write(json.dumps(record, indent=1).encode()))


def _write_atomic(path, write):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)                           # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(directory):
    """(record, Result) as written by `save`: the Result holds the stored parameters, BN averages,
    configuration and history of the first best run."""
    directory = Path(directory)
    record = json.loads((directory / "beyond.json").read_text())
    run = record["best"][0]
    config = Config(**{k: tuple(v) if k == "hidden" else v for k, v in run["config"].items()})
    with np.load(directory / "best_params.npz") as f:
        params = {name: [f[f"{name}_{l}"] for l in range(_count(f, name))] for name in PARAM_NAMES}
        stats = [(f[f"mu_{l}"], f[f"v_{l}"]) for l in range(_count(f, "mu"))]
    result = Result(config=config, params=params, stats=stats, history=run["history"],
                    steps=run["steps"], epochs=run["epochs"], seconds=run["seconds"], val_accuracy=run["val_accuracy"],
                    test_accuracy=run["test_accuracy"])
    return record, result


def load_or_train(data, directory=RESULTS_DIR, retrain=None, progress=False):
    """(record, best Result, trained): the stored runs of `directory`, or, if there are none or
    `retrain` (default: $ASSIGNMENT3_RETRAIN == "1"), all of them trained now (40 minutes to an
    hour on 2 cores) and stored there."""
    if retrain is None:
        retrain = env.choice(RETRAIN_ENV, ("0", "1"), "0") == "1"
    directory = Path(directory)
    if not retrain and (directory / "beyond.json").is_file():
        return (*load(directory), False)
    record, best = run_all(data, progress=progress)
    save(directory, record, best)
    return record, best, True


def _count(npz, name):
    return sum(1 for key in npz.files if key.rsplit("_", 1)[0] == name)


def reevaluate(data, result):
    """Validation and test accuracy of a stored run, recomputed from its parameters (with the
    ZCA whitening refitted on the training split if the run used it), and the test accuracy
    with flip averaging: the mean of the probabilities of each test image and its mirror image
    (a test-time augmentation; the training is the same)."""
    if result.config.zca:
        data = zca_whiten(data)
    params, stats, order = result.params, result.stats, result.config.bn_order
    scores = {name: evaluate(params, split.X, split.y, 0.0, stats, bn_order=order)["accuracy"]
              for name, split in (("val", data.val), ("test", data.test))}
    P = sum(softmax(test_scores(params, X, stats, bn_order=order))
            for X in (data.test.X, flipped(data.test.X)))
    scores["test, flip-averaged"] = float(np.mean(P.argmax(axis=0) == data.test.y))
    return scores


def ablation_table(record):
    """One row per step of the path: change, epochs, test accuracy (seed 0; for the best net
    also the mean over its seeds, plain and flip-averaged), training minutes, parameters."""
    rows = [{"change": run["change"], "epochs": run["epochs"],
             "test acc. (%)": 100 * run["test_accuracy"], "mean over seeds (%)": "",
             "flip-averaged, mean (%)": "", "training minutes": run["minutes"],
             "parameters": run["parameters"]} for run in record["ablation"]]
    acc = [100 * r["test_accuracy"] for r in record["best"]]
    rows[-1]["mean over seeds (%)"] = float(np.mean(acc))
    rows[-1]["flip-averaged, mean (%)"] = float(np.mean(
        [100 * r["test_accuracy_flip_averaged"] for r in record["best"]]))
    rows[-1]["change"] += f" ({len(acc)} seeds: {', '.join(f'{a:.2f}%' for a in acc)})"
    return rows


def alternatives_table(record):
    """One row per alternative tried, beside the path's last short step that it modifies (same
    epochs and seed)."""
    ref = record["ablation"][-2]
    return [{"change": run["change"], "to the step": ref["change"],
             "test acc. (%)": 100 * run["test_accuracy"],
             "test acc. of the step (%)": 100 * ref["test_accuracy"],
             "training minutes": run["minutes"]} for run in record["alternatives"]]

