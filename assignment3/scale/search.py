"""Coarse-to-fine search for the regularisation strength lam, by validation accuracy, on this
machine or a Dask cluster, with a record of its trials from which a stopped search resumes.
A trial whose training diverges is recorded as diverged, and the search goes on without it."""
import json
import math
import os
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import asdict
from typing import Any

import numpy as np
from tqdm import tqdm

from ..config import Config
from ..data import CIFAR10, Source
from ..errors import Error
from ..store.fields import Check, integer, is_object, number, shaped
from ..store.outputs import check_output, write_atomic
from ..training import Diverged, Result
from .parallel import scheduler_address, train_each

#: The fields of the line of a trial that trained in a record of trials (`TrialLog`), and
#: their checks.
TRAINED_FIELDS: dict[str, Check] = {
    "stage": ("coarse", "fine").__contains__, "lam": lambda v: number(0)(v) and v > 0,
    "val_accuracy": number(0, 1), "test_accuracy": number(0, 1), "seconds": number(0)}
#: The lines of a record of trials, each a JSON object that passes one of these checks: the
#: first line, the search; then one line per trial, of a trial that trained, or of one that
#: diverged, with null accuracies and "diverged": where (`training.Diverged`).
FIRST_LINE: list[Check] = [shaped(search=is_object)]
TRIAL_LINE: list[Check] = [shaped(**TRAINED_FIELDS), shaped(**{
    **TRAINED_FIELDS, "val_accuracy": lambda v: v is None, "test_accuracy": lambda v: v is None,
    "diverged": shaped(step=integer(0), eta=number(-math.inf))})]

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
    ends = np.log10(lo), np.log10(hi), n
    exps = np.sort(np.random.default_rng(seed).uniform(*ends)) if random else np.linspace(*ends)
    return [float(v) for v in 10.0 ** exps]


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
    # what makes two searches the same: the configuration (but lam) and the search's settings,
    # as plain JSON values
    log = TrialLog(out, json.loads(json.dumps({
        "config": {k: v for k, v in asdict(config).items() if k != "lam"},
        "lam_range": list(coarse), "coarse": n_coarse, "fine": n_fine, "random": random,
        **({"draw_seed": seed} if random else {})}))) if out else None
    scheduler = scheduler_address(n_jobs, scheduler)
    if isinstance(data, Source) and not scheduler:
        data = data.load(progress=progress)
    with tqdm(total=n_coarse + n_fine, disable=not progress, unit="trial",
              desc="lambda search") as bar:
        def run(stage: str, lams: list[float]) -> list[Trial]:
            """The trials of `stage`, one per lam in `lams`: those of the record as read from
            it, the others trained (as `parallel.train_each` does) and recorded as each
            finishes. StageDiverged if every one diverged."""
            trials = log.trials(stage) if log else {}
            bar.update(sum(lam in trials for lam in lams))
            todo = [lam for lam in lams if lam not in trials]
            for i, outcome in train_each(data, [config.with_(lam=lam) for lam in todo], n_jobs,
                                         scheduler, diverged=True):
                trials[todo[i]] = trial = _trial(stage, todo[i], outcome)
                if log:
                    log.append(trial)
                bar.update()
            if not trained(trials[lam] for lam in lams):
                raise StageDiverged(stage, lams)
            return [trials[lam] for lam in lams]

        coarse_trials = run("coarse", lambda_values(*coarse, n_coarse, random=random, seed=seed))
        fine_trials = run("fine", _fine_values(coarse, n_coarse, best_trial(coarse_trials)["lam"],
                                               n_fine, random, seed)) if n_fine else []
    return {"coarse": coarse_trials, "fine": fine_trials,
            "best": best_trial(coarse_trials + fine_trials)}


def _fine_values(coarse: tuple[float, float], n_coarse: int, best: float, n_fine: int,
                 random: bool, seed: int | None) -> list[float]:
    """The fine stage's lam values around `best`, the best coarse value (see
    `coarse_to_fine`)."""
    step = (np.log10(coarse[1]) - np.log10(coarse[0])) / max(n_coarse - 1, 1)
    lo, hi = 10 ** (np.log10(best) - step), 10 ** (np.log10(best) + step)
    # random: drawn with the next seed; else n_fine + 2 log-spaced values without the two ends
    return (lambda_values(lo, hi, n_fine, random=True, seed=None if seed is None else seed + 1)
            if random else lambda_values(lo, hi, n_fine + 2)[1:-1])


class TrialLog:
    """The trials of a search in a JSON-lines file: a first line {"search": what makes the
    search (its settings, `coarse_to_fine` says)}, then one line per finished trial
    (TRIAL_LINE), in the order they finished. Opening the file of the same search again
    resumes it (`trials`); the file of another search raises SearchFileError. Every append
    writes the whole file under a temporary name and renames it over the old one, so the file
    is complete whenever the search is stopped."""

    def __init__(self, path: str | os.PathLike[str], search: dict[str, Any]) -> None:
        self.path = check_output(path, "search")   # OutputError unless a record may go there
        if self.path.exists():
            self.lines = self._read()
            # each search's settings, with those of its config in place of the config
            found, wanted = ({key: value for k, v in each.items()
                              for key, value in (v.items() if isinstance(v, dict) else [(k, v)])}
                             for each in (self.lines[0]["search"], search))
            differences = [f"{key} {found.get(key)} there, {wanted.get(key)} here"
                           for key in sorted(set(found) | set(wanted))
                           if found.get(key) != wanted.get(key)]
            if differences:
                raise SearchFileError(f"{self.path} records another search "
                                      f"({'; '.join(differences)}): give another --out file, "
                                      f"or delete {self.path} to start this one afresh")
        else:
            self.lines = [{"search": search}]
            self._write()

    def trials(self, stage: str) -> dict[float, Trial]:
        """lam -> trial for the trials of `stage` in the file ("result" None)."""
        return {line["lam"]: {"diverged": None, **line, "result": None}
                for line in self.lines[1:] if line["stage"] == stage}

    def append(self, trial: Trial) -> None:
        """Record a finished trial; a diverged one with its "diverged" field."""
        self.lines.append({**{k: trial[k] for k in TRAINED_FIELDS},
                           "seconds": round(trial["seconds"], 2),
                           **({"diverged": trial["diverged"]} if trial["diverged"] else {})})
        self._write()

    def _read(self) -> list[dict[str, Any]]:
        lines = []
        for n, text in enumerate(self.path.read_text(errors="replace").splitlines(), 1):
            line: Any = None
            with suppress(ValueError, RecursionError):     # not JSON, or nested too deeply
                line = json.loads(text)
            if not any(fits(line) for fits in (FIRST_LINE if n == 1 else TRIAL_LINE)):
                raise SearchFileError(f"{self.path} is not a lambda search record (line "
                                      f"{n}: {text.strip()[:80]!r}): give another "
                                      f"--out file, or delete it")
            lines.append(line)
        if not lines:
            raise SearchFileError(f"{self.path} is empty, not a lambda search record: delete "
                                  f"it or give another --out file")
        return lines

    def _write(self) -> None:
        text = "".join(json.dumps(line) + "\n" for line in self.lines)
        write_atomic(self.path, "search", lambda f: f.write(text.encode()))

