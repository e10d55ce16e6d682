"""Coarse-to-fine search for the regularisation strength lam, by validation accuracy, on this
machine or a Dask cluster, with a record of its trials from which a stopped search resumes.
A trial whose training diverges is recorded as diverged, and the search goes on without it."""
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..config import Config
from ..data import CIFAR10, Source
from ..errors import Error
from ..store.fields import integer, number
from ..store.outputs import check_output, write_atomic
from ..training import Diverged, Result
from .parallel import scheduler_address, train_each

#: What the record keeps of a trial, one JSON line each; a diverged trial's line has null
#: accuracies and one more field, "diverged": {"step", "eta"} (`training.Diverged`).
TRIAL_FIELDS = ("stage", "lam", "val_accuracy", "test_accuracy", "seconds")

#: A trial: {"stage", "lam", "val_accuracy", "test_accuracy", "seconds", "diverged", "result"}:
#: "diverged" None for a trial that trained, else {"step", "eta"} where its training diverged
#: (its accuracies None); "result" its `Result`, or None for a diverged trial or one read
#: from a record.
Trial = dict[str, Any]


class SearchFileError(Error, ValueError):
    """A trial record that cannot be read, or that belongs to another search."""


class StageDiverged(Error, RuntimeError):
    """Every trial of a stage of the search diverged: there is no best value to go on from."""

    def __init__(self, stage: str, lams: Sequence[float]) -> None:
        values = (f"lam {min(lams):.3g}" if len(lams) == 1 else
                  f"all {len(lams)} values of lam, {min(lams):.3g} to {max(lams):.3g}")
        super().__init__("every trial of the {stage} stage diverged ({which}): none trained; "
                         "lower {0}, or search smaller values with {1}", "eta_max", "lam_range",
                         stage=stage, which=values)


def lambda_values(lo: float, hi: float, n: int, *, random: bool = False,
                  seed: int | None = None) -> list[float]:
    """n values of lam in [lo, hi]: log-spaced, or drawn log-uniformly (sorted) if `random`."""
    if not 0 < lo < hi or n < 1:
        raise ValueError(f"need 0 < lo < hi and n >= 1, got lo={lo}, hi={hi}, n={n}")
    if random:
        exps = np.sort(np.random.default_rng(seed).uniform(np.log10(lo), np.log10(hi), n))
    else:
        exps = np.linspace(np.log10(lo), np.log10(hi), n)
    return [float(v) for v in 10.0 ** exps]


def evaluate_lambdas(data: CIFAR10 | Source, config: Config, lams: Sequence[float],
                     n_jobs: int | None = None, *, stage: str = "coarse",
                     scheduler: str | None = None, known: Mapping[float, Trial] | None = None,
                     on_trial: Callable[[Trial], object] | None = None) -> list[Trial]:
    """Train `config` once per lam (as `parallel.train_each` does, with n_jobs and scheduler).
    Returns one trial per lam (see `Trial`), in the order of `lams`; a trial whose training
    diverges is one with "diverged" set, and the other trials go on, locally and on a cluster.
    Trials in `known` (lam -> trial, from an earlier run) are not trained again; `on_trial(trial)`
    is called for every new trial as it finishes."""
    trials = dict(known or {})
    todo = [lam for lam in lams if lam not in trials]
    configs = [config.with_(lam=lam) for lam in todo]
    for i, outcome in train_each(data, configs, n_jobs, scheduler, diverged=True):
        trial = _trial(stage, todo[i], outcome)
        trials[todo[i]] = trial
        if on_trial:
            on_trial(trial)
    return [trials[lam] for lam in lams]


def _trial(stage: str, lam: float, outcome: Result | Diverged) -> Trial:
    """The trial of a run's Result, or of its Diverged."""
    if isinstance(outcome, Diverged):
        return {"stage": stage, "lam": lam, "val_accuracy": None, "test_accuracy": None,
                "seconds": outcome.seconds,
                "diverged": {"step": outcome.step, "eta": outcome.eta}, "result": None}
    return {"stage": stage, "lam": lam, "val_accuracy": outcome.val_accuracy,
            "test_accuracy": outcome.test_accuracy, "seconds": outcome.seconds,
            "diverged": None, "result": outcome}


def trained(trials: Iterable[Trial]) -> list[Trial]:
    """The trials whose training did not diverge."""
    return [trial for trial in trials if not trial.get("diverged")]


def best_trial(trials: Iterable[Trial]) -> Trial:
    """The trial with the highest validation accuracy among those that trained (the test set
    plays no part); ValueError if every one diverged."""
    candidates = trained(trials)
    if not candidates:
        raise ValueError("no trial to choose from: every one diverged")
    return max(candidates, key=lambda trial: trial["val_accuracy"])


def coarse_to_fine(data: CIFAR10 | Source, config: Config, *,
                   coarse: tuple[float, float] = (1e-5, 1e-1), n_coarse: int = 8,
                   n_fine: int = 8, random: bool = False, seed: int | None = None,
                   n_jobs: int | None = None, scheduler: str | None = None,
                   out: str | os.PathLike[str] | None = None,
                   progress: bool = False) -> dict[str, Any]:
    """Coarse search over n_coarse values in `coarse`, then a fine one over n_fine new values
    (0: none) strictly between the best coarse value's neighbours (one coarse step either side,
    in log scale; the neighbours themselves were trained in the coarse stage, and with an even
    n_fine so was none of the fine values). `random` draws the values log-uniformly, with
    `seed` (the fine stage with seed + 1).

    The runs go to the Dask cluster `parallel.scheduler_address(n_jobs, scheduler)` names, if
    any, else to n_jobs local processes. `data` is a `CIFAR10`, or a `data.Source`, loaded here
    once unless the runs go to a cluster (its workers load it themselves). `out`: a JSON-lines
    file recording every trial as it finishes (`TrialLog`); if it exists, the trials it holds
    are not trained again. `progress`: a bar of trials done on stderr.

    A trial whose training diverges is kept as diverged (in `out` too, so that it is not
    trained again) and the search goes on without it: the fine stage is centred on the best
    trial that trained. If every trial of a stage diverges, raises StageDiverged.
    Returns {"coarse": trials, "fine": trials, "best": the best trial of both stages that
    trained}; each trial as `Trial` says, its "result" None for a trial read from `out`."""
    if out and random and seed is None:
        raise ValueError("a random search is recorded in `out` only with a seed: resuming it "
                         "must draw the same values")
    log = TrialLog(out, _description(config, coarse, n_coarse, n_fine, random, seed)) \
        if out else None
    scheduler = scheduler_address(n_jobs, scheduler)
    if isinstance(data, Source) and not scheduler:
        data = data.load(progress=progress)
    with tqdm(total=n_coarse + n_fine, disable=not progress, unit="trial",
              desc="lambda search") as bar:
        def finished(trial: Trial) -> None:
            if log:
                log.append(trial)
            bar.update()

        def run(stage: str, lams: list[float]) -> list[Trial]:
            known = log.trials(stage) if log else {}
            bar.update(sum(lam in known for lam in lams))
            trials = evaluate_lambdas(data, config, lams, n_jobs, stage=stage,
                                      scheduler=scheduler, known=known, on_trial=finished)
            if not trained(trials):
                raise StageDiverged(stage, lams)
            return trials

        coarse_lams = lambda_values(*coarse, n_coarse, random=random, seed=seed)
        coarse_trials = run("coarse", coarse_lams)
        fine_trials = run("fine", _fine_values(coarse, coarse_lams, coarse_trials, n_fine,
                                               random, seed)) if n_fine else []
    return {"coarse": coarse_trials, "fine": fine_trials,
            "best": best_trial(coarse_trials + fine_trials)}


def _fine_values(coarse: tuple[float, float], coarse_lams: list[float], coarse_trials: list[Trial],
                 n_fine: int, random: bool, seed: int | None) -> list[float]:
    """The fine stage's lam values around the best coarse trial (see `coarse_to_fine`)."""
    n_coarse = len(coarse_lams)
    i = coarse_lams.index(best_trial(coarse_trials)["lam"])
    step = (np.log10(coarse[1]) - np.log10(coarse[0])) / max(n_coarse - 1, 1)
    centre = np.log10(coarse_lams[i])
    if random:
        return lambda_values(10 ** (centre - step), 10 ** (centre + step), n_fine,
                             random=True, seed=None if seed is None else seed + 1)
    # n_fine + 2 log-spaced points without the two ends
    return lambda_values(10 ** (centre - step), 10 ** (centre + step), n_fine + 2)[1:-1]


def _description(config: Config, coarse: tuple[float, float], n_coarse: int, n_fine: int,
                 random: bool, seed: int | None) -> dict[str, Any]:
    """What makes two searches the same: the configuration (but lam) and the search's
    settings, as plain JSON values."""
    settings = {"config": {k: v for k, v in asdict(config).items() if k != "lam"},
                "lam_range": list(coarse), "coarse": n_coarse, "fine": n_fine, "random": random}
    if random:
        settings["draw_seed"] = seed
    return json.loads(json.dumps(settings))


class TrialLog:
    """The trials of a search in a JSON-lines file: a first line {"search": what makes the
    search (`_description`)}, then one line per finished trial with TRIAL_FIELDS, in the order
    they finished. Opening the file of the same search again resumes it (`trials`); the file
    of another search raises SearchFileError. Every append writes the whole file under a
    temporary name and renames it over the old one, so the file is complete whenever the
    search is stopped."""

    def __init__(self, path: str | os.PathLike[str], search: dict[str, Any]) -> None:
        self.path = check_output(path, "search")   # OutputError unless a record may go there
        if self.path.exists():
            self.lines = self._read()
            _check_same(self.path, self.lines[0]["search"], search)
        else:
            self.lines = [{"search": search}]
            self._write()

    def trials(self, stage: str) -> dict[float, Trial]:
        """lam -> trial for the trials of `stage` in the file ("result" None)."""
        return {line["lam"]: {"diverged": None, **line, "result": None}
                for line in self.lines[1:] if line["stage"] == stage}

    def append(self, trial: Trial) -> None:
        """Record a finished trial; a diverged one with its "diverged" field."""
        line = {**{k: trial[k] for k in TRIAL_FIELDS[:-1]}, "seconds": round(trial["seconds"], 2)}
        if trial.get("diverged"):
            line["diverged"] = dict(trial["diverged"])
        self.lines.append(line)
        self._write()

    def _read(self) -> list[dict[str, Any]]:
        lines = []
        with self.path.open() as f:
            for number, text in enumerate(f, start=1):
                try:
                    line = json.loads(text)
                except json.JSONDecodeError as err:
                    line = err
                if not _is_record_line(line, number == 1):
                    raise SearchFileError(f"{self.path} is not a lambda search record (line "
                                          f"{number}: {text.strip()[:80]!r}): give another "
                                          f"--out file, or delete it")
                lines.append(line)
        if not lines:
            raise SearchFileError(f"{self.path} is empty, not a lambda search record: delete "
                                  f"it or give another --out file")
        return lines

    def _write(self) -> None:
        text = "".join(json.dumps(line) + "\n" for line in self.lines)
        write_atomic(self.path, "search", lambda f: f.write(text.encode()))


def _is_record_line(line: object, first: bool) -> bool:
    """Whether a parsed line is a record's first line (the search) or a trial line: TRIAL_FIELDS
    with values of their kinds, and for a diverged trial null accuracies and "diverged"."""
    if not isinstance(line, dict):
        return False
    if first:
        return set(line) == {"search"} and isinstance(line["search"], dict)
    if set(line) not in ({*TRIAL_FIELDS}, {*TRIAL_FIELDS, "diverged"}):
        return False
    if not (line["stage"] in ("coarse", "fine") and number(0)(line["lam"]) and line["lam"] > 0
            and number(0)(line["seconds"])):
        return False
    accuracies = (line["val_accuracy"], line["test_accuracy"])
    if "diverged" not in line:
        return all(map(number(0, 1), accuracies))
    diverged = line["diverged"]                # a diverged trial's line (`TrialLog.append`)
    return (accuracies == (None, None) and isinstance(diverged, dict)
            and set(diverged) == {"step", "eta"} and integer(0)(diverged["step"])
            and number(-math.inf)(diverged["eta"]))


def _check_same(path: Path, found: dict[str, Any], wanted: dict[str, Any]) -> None:
    """SearchFileError naming the differences if the search recorded in `path` (`found`) is
    not the one asked for (`wanted`)."""
    if found == wanted:
        return
    flat_found = {**found.get("config", {}), **{k: v for k, v in found.items() if k != "config"}}
    flat_wanted = {**wanted["config"], **{k: v for k, v in wanted.items() if k != "config"}}
    differences = [f"{key} {flat_found.get(key)} there, {flat_wanted.get(key)} here"
                   for key in sorted(set(flat_found) | set(flat_wanted))
                   if flat_found.get(key) != flat_wanted.get(key)]
    raise SearchFileError(f"{path} records another search ({'; '.join(differences)}): give "
                          f"another --out file, or delete {path} to start this one afresh")
