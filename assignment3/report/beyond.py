"""The runs of report section 6 (`plans`): training them all (`run_all`), and their record,
stored with the code version, machine and seeds that made them, so that the report can show and
re-check them without retraining for hours (`save`, `load`, `add_run` for a run trained apart
on the command line)."""
import json
import os
import shutil
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
from .plans import (
    ABLATION_EPOCHS,
    ADAMW_SCREENING_EPOCHS,
    SCREENING_EPOCHS,
    ablation_path,
    adamw_screening,
    alternatives,
    budget,
    leave_one_out,
    part_four,
    part_three,
    screening,
)
from .presets import BEST, CANDIDATE, PART_ONE, PART_TWO_BEST

#: Where the runs are stored (committed with the code, so that the report can show them): one
#: run file (`runs.save_run`) per run with parameters, and `RECORD`.
RESULTS_DIR = Path(__file__).resolve().parents[2] / "results" / "beyond"

#: The JSON record of the runs in RESULTS_DIR: the seeds, the machine and matmul rate of part
#: one, and per list of runs (`RUN_LISTS`) per run either {"run": its file} or, for runs stored
#: before the run format (without parameters), its whole record.
RECORD = "runs.json"

#: The lists of runs of a record: part one's ablation path, the alternatives tried beside it and
#: its net's seeds; part two's screening runs, its best net's seeds and its leave-one-out; part
#: three's runs; the best net's seeds; part four's short runs and its runs.
RUN_LISTS = ("ablation", "alternatives", "part_one", "screening", "part_two_best",
             "leave_one_out", "part_three", "best", "part_four_screening", "part_four")

#: Fields of a run's record that its run file holds in its own right (the rest are its notes).
FROM_RESULT = ("test_accuracy", "val_accuracy", "steps", "epochs", "seconds", "config",
               "history", "code_version", "machine", "run")


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
                best: Runs = (), four_screened: Runs = (), four: Runs = ()) -> dict[str, Any]:
    """The stored record from run records: part one's ablation path (closed by the first run of
    its net), the alternatives tried beside it and its net's runs (one per seed), part two's
    `screening` runs, its best net's runs and the candidate's run and `leave_one_out` runs,
    part three's runs, the best net's runs (one per seed), part four's short runs
    (`adamw_screening`) and full-budget runs (`part_four`), and the `machine` they ran on."""
    return {"seeds": [run["config"]["seed"] for run in best or part_one],
            "ablation": list(ablation) + list(part_one[:1]), "alternatives": list(alternatives),
            "part_one": list(part_one), "screening": list(screened),
            "part_two_best": list(part_two_best), "leave_one_out": list(left_out),
            "part_three": list(third), "best": list(best),
            "part_four_screening": list(four_screened), "part_four": list(four),
            "machine": machine()}


def run_all(data: CIFAR10, seeds: tuple[int, ...] = (0, 1), epochs: float = ABLATION_EPOCHS,
            part_one: Config = PART_ONE, candidate: Config = CANDIDATE,
            part_two_best: Config = PART_TWO_BEST, best: Config = BEST,
            screening_epochs: tuple[float, float] = SCREENING_EPOCHS, progress: bool = False,
            checkpoints: str | os.PathLike[str] | None = None,
            best_seeds: tuple[int, ...] = (0, 1, 2, 3),
            adamw_epochs: float = ADAMW_SCREENING_EPOCHS
            ) -> tuple[dict[str, Any], dict[str, Result]]:
    """Train every run of section 6 with seed `seeds[0]` unless said otherwise, one after
    another (each uses the machine's cores): part one's ablation path to `part_one` (`epochs`
    epochs per step), the alternatives, `part_one` for every seed; the `screening` runs
    (`screening_epochs` long), `part_two_best` for every seed, `candidate` and its
    `leave_one_out`; `best` for every seed of `best_seeds` and the runs of `part_three` (of
    `part_two_best`); part four's short runs of `best` (`adamw_epochs` long) and its runs. A
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

    def seeded(prefix: str, change: str, config: Config,
               over: tuple[int, ...] = seeds) -> list[tuple[str, str, Config]]:
        return [(f"{prefix}-seed-{s}.npz", change, config.with_(seed=s)) for s in over]

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
        "best": (seeded("best", "the best net", best, best_seeds), True),
        "third": (part_three(part_two_best, budget=budget(part_one)), True),
        "four_screened": (adamw_screening(best, adamw_epochs), False),
        "four": (part_four(best), True)}
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
    ten to twelve hours on 2 cores; it keeps checkpoints in `directory`/checkpoints, so that it
    resumes when called again after a stop, and removes them once the runs are stored)."""
    directory = Path(directory)
    trained = ((env.retrain() if retrain is None else retrain)
               or not (directory / RECORD).is_file())
    if trained:
        checkpoints = directory / "checkpoints"
        save(directory, *run_all(data, progress=progress, checkpoints=checkpoints))
        shutil.rmtree(checkpoints)
    return (*load(directory), trained)
