"""Beyond the assignment (report section 6): how far a fully connected net gets on CIFAR-10 on two
CPU cores. Part one: the path from the assignment's net to 72% in 20 minutes (`PART_ONE`), one
change at a time. Part two: within twice that net's training compute, what each ingredient of a
candidate (`CANDIDATE`) gives at the full budget (`leave_one_out`), and the best net found
(`PART_TWO_BEST`). Part three: other ways of spending the same budget (`part_three`), each run
with its weights averaged as well (SWA, which costs no training steps), and the best net of all
(`BEST`), one of them. The runs are stored
with the code version, machine and seeds that made them, so that the report can show and
re-check them without retraining for hours."""
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import env
from ..config import Config
from ..data import CIFAR10
from ..store.checkpoints import Checkpoint
from ..store.outputs import write_atomic
from ..store.provenance import code_version, machine, matmul_rate
from ..store.runs import read_run, reevaluate, save_run
from ..training import Result, train
from .compute import n_parameters, training_flop
from .presets import BEST, CANDIDATE, PART_ONE, PART_TWO_BEST

#: The fields in which `CANDIDATE` differs from `PART_ONE`: its ingredients, which
#: `leave_one_out` takes away one at a time.
INGREDIENTS = ("mixup", "label_smoothing", "epochs")

#: Training images of CIFAR-10's training split as this module uses it (the rest is validation).
N_TRAIN = 45_000



def budget(part_one: Config) -> int:
    """The compute budget of part two for part one's net `part_one`: twice its training compute
    (FLOP, `compute.training_flop`) on the N_TRAIN training images."""
    assert part_one.epochs is not None              # a one-cycle run has its length in epochs
    return 2 * training_flop(part_one, int(part_one.epochs) * (N_TRAIN // part_one.n_batch))


#: The compute budget of parts two and three: twice the training compute of part one's net.
BUDGET_FLOP = budget(PART_ONE)

#: Length of the short runs of the ablation path.
ABLATION_EPOCHS = 20

#: Lengths of the screening runs of part two's regularisers (`screening`).
SCREENING_EPOCHS = (30, 60)

#: Where the runs are stored (committed with the code, so that the report can show them): one
#: run file (`runs.save_run`) per run with parameters, and `RECORD`.
RESULTS_DIR = Path(__file__).resolve().parents[2] / "results" / "beyond"

#: The JSON record of the runs in RESULTS_DIR: the seeds, the machine and matmul rate of part
#: one, and per list of runs (`RUN_LISTS`) per run either {"run": its file} or, for runs stored
#: before the run format (without parameters), its whole record.
RECORD = "runs.json"

#: The lists of runs of a record: part one's ablation path, the alternatives tried beside it and
#: its net's seeds; part two's screening runs, its best net's seeds and its leave-one-out; part
#: three's runs; the best net's seeds.
RUN_LISTS = ("ablation", "alternatives", "part_one", "screening", "part_two_best",
             "leave_one_out", "part_three", "best")

#: The last part of a run over which part three's runs average their weights (`Config.swa`).
SWA = 0.25

#: Part three's linear bottleneck between the image and the first hidden layer has 1/BOTTLENECK
#: of that layer's units.
BOTTLENECK = 4

#: Fields of a run's record that its run file holds in its own right (the rest are its notes).
FROM_RESULT = ("test_accuracy", "val_accuracy", "steps", "epochs", "seconds", "config",
               "history", "code_version", "machine", "run")


def layers(hidden: Sequence[int]) -> str:
    """Layer sizes as the report writes them: (1024, 512, 256) as "1024-512-256"."""
    return "-".join(map(str, hidden))


def ablation_path(epochs: float = ABLATION_EPOCHS,
                  best: Config = PART_ONE) -> list[tuple[str, Config]]:
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
             (f"wider and deeper: {layers(best.hidden)}", wide),
             (f"Nesterov momentum {best.momentum}, batch {best.n_batch}, one-cycle schedule, "
              f"weight decay {2 * best.lam:g}", sgd),
             (f"dropout {best.dropout}", dropout),
             (f"random flips and shifts of up to {best.max_shift} pixels", augmented),
             ("ZCA whitening", zca),
             ("BN after the ReLU", bn_order),
             (f"longer training: {best.epochs:g} epochs (part one's net)", best)]
    # keep only the steps that change something (e.g. no BN-order step if BN stays before)
    return [steps[0]] + [step for prev, step in zip(steps, steps[1:]) if step[1] != prev[1]]


def alternatives(epochs: float = ABLATION_EPOCHS,
                 best: Config = PART_ONE) -> list[tuple[str, Config]]:
    """[(change, Config)]: changes tried beside the path, each against the path's last short
    step: for now the other BN placement."""
    last = ablation_path(epochs, best)[-2][1]
    other = "after" if last.bn_order == "before" else "before"
    return [(f"BN {other} the ReLU instead of {last.bn_order}", last.with_(bn_order=other))]


def leave_one_out(candidate: Config = CANDIDATE,
                  part_one: Config = PART_ONE) -> list[tuple[str, Config]]:
    """[(ingredient, Config)]: `candidate` without each of its `INGREDIENTS`, one at a time (that
    field set back to `part_one`'s value)."""
    names = {"mixup": f"MixUp {candidate.mixup:g}",
             "label_smoothing": f"label smoothing {candidate.label_smoothing:g}",
             "epochs": f"the longer training ({candidate.epochs:g} instead of "
                       f"{part_one.epochs:g} epochs)"}
    return [(names[field], candidate.with_(**{field: getattr(part_one, field)}))
            for field in INGREDIENTS]


def epochs_within(config: Config, budget: float = BUDGET_FLOP) -> int:
    """The most whole epochs of `config`'s net on the N_TRAIN training images within `budget`
    FLOP of training compute."""
    return int(budget // training_flop(config, N_TRAIN // config.n_batch))


def part_three(best: Config = PART_TWO_BEST, swa: float = SWA,
               budget: float = BUDGET_FLOP) -> list[tuple[str, str, Config]]:
    """[(file, change, Config)]: part three's runs at the full `budget` (seed 0), each with its
    weights averaged over the last `swa` of the run: part two's `best` itself, then one change to
    it each: random crops of the image padded by one pixel more (a shift with zero fill is such a
    crop); a first hidden layer half as wide; a linear bottleneck before it, 1/BOTTLENECK as
    wide (Lin, Memisevic and Konda 2015); shallower and wider (two hidden layers as wide as the
    first); deeper (each hidden layer after the first twice); all but the first two for as many
    epochs as the budget buys. Last, the shallower and wider net again with seed 1: its averaged
    weights beat `best` on validation, and a second seed is what tells whether they beat it on
    test (they did: it is `config.BEST`)."""
    first, rest = best.hidden[0], best.hidden[1:]
    narrow = best.with_(hidden=(first // 2, *rest))
    bottleneck = best.with_(hidden=(first // BOTTLENECK, *best.hidden), linear=1)
    shallow = best.with_(hidden=(first, first))
    deep = best.with_(hidden=(first, *[width for width in rest for _ in range(2)]))
    narrow, bottleneck, shallow, deep = (config.with_(epochs=epochs_within(config, budget))
                                         for config in (narrow, bottleneck, shallow, deep))
    shallow_change = (f"shallower and wider: hidden layers {layers(shallow.hidden)}, "
                      f"{shallow.epochs:g} epochs")
    return [("swa-seed-0.npz", "part two's best net, trained again", best.with_(swa=swa)),
            ("crops-seed-0.npz", f"random crops with padding {best.max_shift + 1} instead of "
             f"{best.max_shift}", best.with_(max_shift=best.max_shift + 1, swa=swa)),
            ("narrow-seed-0.npz", f"first layer {narrow.hidden[0]} wide, {narrow.epochs:g} "
             "epochs", narrow.with_(swa=swa)),
            ("bottleneck-seed-0.npz", f"a linear bottleneck of {bottleneck.hidden[0]} units "
             f"before the first layer, {bottleneck.epochs:g} epochs", bottleneck.with_(swa=swa)),
            ("shallow-seed-0.npz", shallow_change, shallow.with_(swa=swa)),
            ("deep-seed-0.npz", f"deeper: hidden layers {layers(deep.hidden)}, "
             f"{deep.epochs:g} epochs", deep.with_(swa=swa)),
            ("shallow-seed-1.npz", f"{shallow_change}, seed 1", shallow.with_(swa=swa, seed=1))]


def screening(candidate: Config = CANDIDATE, part_one: Config = PART_ONE,
              lengths: tuple[float, float] = SCREENING_EPOCHS) -> list[tuple[str, Config]]:
    """[(change, Config)]: short runs of part one's net, at `lengths[0]` epochs as it is, with
    each of `candidate`'s regularisers (label smoothing, MixUp) and with both, at `lengths[1]` as
    it is and with both."""
    ls, mix = {"label_smoothing": candidate.label_smoothing}, {"mixup": candidate.mixup}
    runs = [("part one's net", {}), (f"with label smoothing {candidate.label_smoothing:g}", ls),
            (f"with MixUp {candidate.mixup:g}", mix), ("with both", {**ls, **mix})]
    short, longer = lengths
    return [(f"{change}, {e:g} epochs", part_one.with_(epochs=e, **changes))
            for e, (change, changes) in [(short, run) for run in runs] +
            [(longer, runs[0]), (longer, runs[-1])]]


def run_record(change: str, result: Result, version: str | None = None,
               data: CIFAR10 | None = None) -> dict[str, Any]:
    """A JSON-ready record of one run: the change, its configuration and scores, its minutes,
    parameter count and training compute (`compute.training_flop`), its history, the code
    version that trained it (default: this one) and the machine it ran on (this one); given the
    `data`, as for a long run, also its flip-averaged test accuracy."""
    record = {"change": change, **result.summary(), "minutes": result.seconds / 60,
              "parameters": n_parameters(result.config),
              "training_flop": training_flop(result.config, result.steps),
              "history": result.history, "code_version": version or code_version(),
              "machine": machine()}
    if data is not None:
        record["test_accuracy_flip_averaged"] = reevaluate(data, result)[
            "test_accuracy_flip_averaged"]
    return record


Runs = list[dict[str, Any]] | tuple[()]


def make_record(ablation: Runs, alternatives: Runs, part_one: Runs, screened: Runs = (),
                part_two_best: Runs = (), left_out: Runs = (), third: Runs = (),
                best: Runs = ()) -> dict[str, Any]:
    """The stored record from run records: part one's ablation path (closed by the first run of
    its net), the alternatives tried beside it and its net's runs (one per seed), part two's
    `screening` runs, its best net's runs and the candidate's run and `leave_one_out` runs,
    part three's runs, the best net's runs (one per seed), and the `machine` they ran on."""
    return {"seeds": [run["config"]["seed"] for run in best or part_one],
            "ablation": list(ablation) + list(part_one[:1]), "alternatives": list(alternatives),
            "part_one": list(part_one), "screening": list(screened),
            "part_two_best": list(part_two_best), "leave_one_out": list(left_out),
            "part_three": list(third), "best": list(best), "machine": machine()}


def run_all(data: CIFAR10, seeds: tuple[int, ...] = (0, 1), epochs: float = ABLATION_EPOCHS,
            part_one: Config = PART_ONE, candidate: Config = CANDIDATE,
            part_two_best: Config = PART_TWO_BEST, best: Config = BEST,
            screening_epochs: tuple[float, float] = SCREENING_EPOCHS, progress: bool = False,
            checkpoints: str | os.PathLike[str] | None = None
            ) -> tuple[dict[str, Any], dict[str, Result]]:
    """Train every run of section 6 with seed `seeds[0]` unless said otherwise, one after
    another (each uses the machine's cores): part one's ablation path to `part_one` (`epochs`
    epochs per step), the alternatives, `part_one` for every seed; the `screening` runs
    (`screening_epochs` long), `part_two_best` for every seed, `candidate` and its
    `leave_one_out`; `best` for every seed and the runs of `part_three` (of `part_two_best`). A
    configuration is trained once for all the lists of runs of its kind (short or long) it is in,
    under the name of the first (`part_two_best` is one of the leave-one-out, `best` one of part
    three's runs). Each run's record has the machine's `matmul_rate`
    just before and after it.
    `checkpoints`: a folder where each run keeps its checkpoint (`training.train`), so that
    run_all called again after a stop resumes where it stopped (finished runs take seconds).
    Returns (record, runs): the record of `make_record`, each run's entry naming its file
    ("run"), and the `Result` of every run by file name."""
    runs: dict[str, Result] = {}
    done: dict[tuple[Config, bool], dict[str, Any]] = {}

    def trained(name: str, change: str, config: Config, long: bool) -> dict[str, Any]:
        if (config, long) not in done:
            checkpoint = (Checkpoint(Path(checkpoints) / f"{Path(name).stem}.checkpoint.npz")
                          if checkpoints else None)
            before = matmul_rate(config)
            runs[name] = train(data, config, progress, checkpoint=checkpoint)
            done[config, long] = {"run": name,
                                  **run_record(change, runs[name], data=data if long else None),
                                  "matmul_gflops": [before, matmul_rate(config)]}
        return {**done[config, long], "change": change}

    def numbered(prefix: str, changes: list[tuple[str, Config]]) -> list[tuple[str, str, Config]]:
        return [(f"{prefix}-{i}.npz", change, config.with_(seed=seeds[0]))
                for i, (change, config) in enumerate(changes)]

    def seeded(prefix: str, change: str, config: Config) -> list[tuple[str, str, Config]]:
        return [(f"{prefix}-seed-{s}.npz", change, config.with_(seed=s)) for s in seeds]

    if checkpoints:
        Path(checkpoints).mkdir(parents=True, exist_ok=True)
    path = ablation_path(epochs, part_one)
    left_out = [(f"without {ingredient}", config)
                for ingredient, config in leave_one_out(candidate, part_one)]
    # make_record's lists: (file, change, Config) per run and whether they are long runs (with
    # the flip-averaged test accuracy), in the order trained (the best net before part three,
    # whose shallower net's runs it is)
    lists: dict[str, tuple[list[tuple[str, str, Config]], bool]] = {
        "ablation": (numbered("ablation", path[:-1]), False),
        "alternatives": (numbered("alternative", alternatives(epochs, part_one)), False),
        "part_one": (seeded("part-one", path[-1][0], part_one), True),
        "screened": (numbered("screening", screening(candidate, part_one, screening_epochs)),
                     False),
        "part_two_best": (seeded("part-two-best", "part two's best net", part_two_best),
                          True),
        "left_out": ([(f"candidate-seed-{seeds[0]}.npz", "the candidate",
                       candidate.with_(seed=seeds[0]))] + numbered("leave-one-out", left_out),
                     True),
        "best": (seeded("best", "the best net", best), True),
        "third": (part_three(part_two_best, budget=budget(part_one)), True)}
    record = make_record(**{key: [trained(*run, long) for run in planned]
                            for key, (planned, long) in lists.items()})
    return record, runs


def save(directory: str | os.PathLike[str], record: dict[str, Any],
         runs: dict[str, Result]) -> None:
    """Store a record of `run_all` in `directory`: every run of `runs` (file name -> Result) in
    its run file, with the fields of its first whole entry (one not yet reduced, below) that the
    file does not hold by itself as its notes, and the record (`RECORD`) with such entries
    reduced to their file and change ({"run": file, "change": ...}: one run may be in several
    lists, under another name in each). Each file is written atomically, the record last."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stored = set()
    for entry in (entry for key in RUN_LISTS for entry in record.get(key, [])):
        if entry.get("run") in runs and "code_version" in entry and entry["run"] not in stored:
            name = entry["run"]
            notes = {k: v for k, v in entry.items() if k not in FROM_RESULT}
            save_run(directory / name, runs[name], notes, version=entry["code_version"],
                     machine=entry.get("machine") or record["machine"])
            stored.add(name)

    def reduced(entry: dict[str, Any]) -> dict[str, Any]:
        return ({"run": entry["run"], "change": entry["change"]}
                if entry.get("run") in stored else entry)
    text = json.dumps({key: [reduced(e) for e in value] if key in RUN_LISTS else value
                       for key, value in record.items()}, indent=1)
    write_atomic(directory / RECORD, "record", lambda f: f.write(text.encode()))


def trained_apart(data: CIFAR10, path: str | os.PathLike[str], change: str,
                  matmul_gflops: list[float], how: str) -> tuple[dict[str, Any], Result]:
    """(entry, Result) of a long run trained apart from `run_all` and saved at `path` (on the
    command line: `train ... --checkpoint ... --save PATH`): its `run_record` with the code
    version and machine its file holds, the matmul rates measured around it and `how` it was
    trained."""
    result, meta = read_run(path)
    return ({**run_record(change, result, meta["code_version"], data), "run": Path(path).name,
             "machine": meta["machine"], "matmul_gflops": matmul_gflops, "how": how}, result)


def add_run(directory: str | os.PathLike[str], key: str, entry: dict[str, Any],
            result: Result) -> None:
    """Add one run (`trained_apart`) to the record stored in `directory` (`save`): its run file
    `entry["run"]`, with the fields of `entry` the file does not hold as its notes, then
    {"run", "change"} at the end of the list `key` of the record (in place of an entry of the
    same file)."""
    record = json.loads((Path(directory) / RECORD).read_text())
    record[key] = [e for e in record.get(key, []) if e.get("run") != entry["run"]] + [entry]
    save(directory, record, {entry["run"]: result})


def load(directory: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Result]]:
    """(record, runs) as given to `save`: the record with every run's entry whole again, and
    the `Result` of every run stored with its parameters, by file name."""
    directory = Path(directory)
    record = json.loads((directory / RECORD).read_text())
    files: dict[str, tuple[Result, dict[str, Any]]] = {}

    def whole(entry: dict[str, Any]) -> dict[str, Any]:
        if "run" not in entry:             # stored before the run format, without parameters
            return entry
        if entry["run"] not in files:
            files[entry["run"]] = read_run(directory / entry["run"])
        result, meta = files[entry["run"]]
        return {**meta["notes"], **result.summary(), "history": result.history,
                "code_version": meta["code_version"], "machine": meta["machine"], **entry}

    for key in RUN_LISTS:
        record[key] = [whole(entry) for entry in record.get(key, [])]
    return record, {name: result for name, (result, _) in files.items()}


def load_or_train(data: CIFAR10, directory: str | os.PathLike[str] = RESULTS_DIR,
                  retrain: bool | None = None, progress: bool = False
                  ) -> tuple[dict[str, Any], dict[str, Result], bool]:
    """(record, runs, trained): the stored runs of `directory` (`load`), or, if there are none
    or `retrain` (default: $ASSIGNMENT3_RETRAIN == "1"), all of them trained now (`run_all`:
    seven to eight hours on 2 cores; it keeps checkpoints in `directory`/checkpoints, so that it
    resumes when called again after a stop, and removes them once the runs are stored)."""
    directory = Path(directory)
    trained = ((env.retrain() if retrain is None else retrain)
               or not (directory / RECORD).is_file())
    if trained:
        checkpoints = directory / "checkpoints"
        save(directory, *run_all(data, progress=progress, checkpoints=checkpoints))
        shutil.rmtree(checkpoints)
    return (*load(directory), trained)
