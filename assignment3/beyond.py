"""Beyond the assignment (report section 6): how far a fully connected net gets on CIFAR-10 on two
CPU cores. The path from the assignment's net to the best one, one change at a time, and the long
runs of the best net, stored with the code version and seeds that made them so that the report
can show and re-check them without retraining for 40 minutes to an hour."""
import json
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import env
from .augment import flipped, zca_whiten
from .data import one_hot
from .gradcheck import check_gradients
from .network import dropout_masks, evaluate, init_params, softmax, test_scores
from .runfile import code_version, machine, write_atomic
from .runs import read_run, save_run
from .training import Config, train

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

#: Where the runs are stored (committed with the code, so that the report can show them): one
#: run file (`runs.save_run`) per run with parameters, and `RECORD`.
RESULTS_DIR = Path(__file__).resolve().parents[1] / "results" / "beyond"

#: The JSON record of the runs in RESULTS_DIR: the seeds, the machine and its matmul rate, and
#: per run either {"run": its file} or, for runs stored before the run format (without
#: parameters), its whole record.
RECORD = "runs.json"

#: Fields of a run's record that its run file holds in its own right (the rest are its notes).
FROM_RESULT = ("test_accuracy", "val_accuracy", "steps", "epochs", "seconds", "config",
               "history", "code_version", "run")

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


def describe(machine_info):
    """One line for a `machine()` dict (or "not recorded" for None)."""
    if not machine_info:
        return "not recorded"
    return "{cpu}, {cores} cores, numpy {numpy}, BLAS {blas}".format(**machine_info)


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
    every seed, one run after another (each run uses both cores). Returns (record, runs): the
    record of `make_record`, each run's entry naming its file ("run"), and the `Result` of
    every run by file name."""
    runs = {}

    def trained(name, change, config, record=run_record):
        runs[name] = train(data, config, progress)
        return {"run": name, **record(change, runs[name])}

    path = ablation_path(epochs, best)
    rate_before = matmul_rate(best)
    best_runs = [trained(f"best-seed-{s}.npz", path[-1][0], best.with_(seed=s),
                         lambda change, result: best_record(data, change, result))
                 for s in seeds]
    ablation = [trained(f"ablation-{i}.npz", change, config.with_(seed=seeds[0]))
                for i, (change, config) in enumerate(path[:-1])]
    alternative = [trained(f"alternative-{i}.npz", change, config.with_(seed=seeds[0]))
                   for i, (change, config) in enumerate(alternatives(epochs, best))]
    record = make_record(ablation, alternative, best_runs, (rate_before, matmul_rate(best)))
    return record, runs


def best_record(data, change, result, version=None):
    """`run_record` of a best-configuration run, with its flip-averaged test accuracy."""
    return {**run_record(change, result, version),
            "test_accuracy_flip_averaged": reevaluate(data, result)["test, flip-averaged"]}


def save(directory, record, runs):
    """Store a record of `run_all` in `directory`: every run of `runs` (file name -> Result) in
    its run file, with the fields of its entry that the file does not hold by itself as its
    notes, and the record (`RECORD`) with such entries reduced to {"run": file}. Each file is
    written atomically, the record last."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stored = {}
    for entry in _entries(record):
        if entry.get("run") in runs and entry["run"] not in stored:
            name = entry["run"]
            notes = {k: v for k, v in entry.items() if k not in FROM_RESULT}
            save_run(directory / name, runs[name], notes, version=entry["code_version"],
                     machine=record["machine"])
            stored[name] = {"run": name}
    text = json.dumps({key: [stored.get(e.get("run"), e) for e in value]
                       if key in ("ablation", "alternatives", "best") else value
                       for key, value in record.items()}, indent=1)
    write_atomic(directory / RECORD, lambda f: f.write(text.encode()))


def load(directory):
    """(record, runs) as given to `save`: the record with every run's entry whole again, and
    the `Result` of every run stored with its parameters, by file name."""
    directory = Path(directory)
    record = json.loads((directory / RECORD).read_text())
    files, runs = {}, {}

    def whole(entry):
        if "run" not in entry:             # stored before the run format, without parameters
            return entry
        if entry["run"] not in files:
            files[entry["run"]] = read_run(directory / entry["run"])
        result, meta = files[entry["run"]]
        runs[entry["run"]] = result
        return {"run": entry["run"], **meta["notes"], **result.summary(),
                "history": result.history, "code_version": meta["code_version"]}

    for key in ("ablation", "alternatives", "best"):
        record[key] = [whole(entry) for entry in record[key]]
    return record, runs


def load_or_train(data, directory=RESULTS_DIR, retrain=None, progress=False):
    """(record, best Result, trained): the stored runs of `directory` and the Result of the
    first best run (seed 0), or, if there are none or `retrain` (default: $ASSIGNMENT3_RETRAIN
    == "1"), all of them trained now (40 minutes to an hour on 2 cores) and stored there."""
    if retrain is None:
        retrain = env.choice(RETRAIN_ENV, ("0", "1"), "0") == "1"
    directory = Path(directory)
    trained = retrain or not (directory / RECORD).is_file()
    if trained:
        record, runs = run_all(data, progress=progress)
        save(directory, record, runs)
    else:
        record, runs = load(directory)
    return record, runs[record["best"][0]["run"]], trained


def _entries(record):
    return [entry for key in ("ablation", "alternatives", "best") for entry in record[key]]


def reevaluate(data, result, flip_average=True):
    """Validation and test accuracy of a stored run, recomputed from its parameters (with the
    ZCA whitening refitted on the training split if the run used it, and the run's BLAS
    threads, so that they are the run's own numbers), and with `flip_average` the test
    accuracy with flip averaging: the mean of the probabilities of each test image and its
    mirror image (a test-time augmentation; the training is the same)."""
    if result.config.zca:
        data = zca_whiten(data)
    params, stats, order = result.params, result.stats, result.config.bn_order
    with threadpool_limits(result.config.blas_threads, user_api="blas"):
        scores = {name: evaluate(params, split.X, split.y, 0.0, stats, bn_order=order)["accuracy"]
                  for name, split in (("val", data.val), ("test", data.test))}
        if flip_average:
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

