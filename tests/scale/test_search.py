"""Lambda search: the grids and the coarse-to-fine logic on tiny trainings of the synthetic
data, the record of its trials (`TrialLog`) from which a stopped search resumes, and the files
that are no record of this search; on the real data (slow), the search command resuming after
SIGKILL."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from assignment3.cli import main
from assignment3.config import Config
from assignment3.data import DataError, Source
from assignment3.scale.search import (
    SearchFileError,
    TrialLog,
    best_trial,
    coarse_to_fine,
    evaluate_lambdas,
    lambda_values,
)

#: The tiny runs of the searches here (40 steps on the synthetic data).
TINY = Config(hidden=(10,), n_s=20, cycles=1, n_batch=50)


def test_log_spaced_values():
    lams = lambda_values(1e-5, 1e-1, 8)
    assert len(lams) == 8 and lams[0] == pytest.approx(1e-5) and lams[-1] == pytest.approx(1e-1)
    assert np.allclose(np.diff(np.log10(lams)), 4 / 7)
    assert lambda_values(1e-3, 1e-2, 1) == [pytest.approx(1e-3)]


def test_random_values_in_range_sorted_and_seeded():
    lams = lambda_values(1e-4, 1e-2, 20, random=True, seed=1)
    assert all(1e-4 <= v <= 1e-2 for v in lams) and lams == sorted(lams)
    assert lams == lambda_values(1e-4, 1e-2, 20, random=True, seed=1)
    assert lams != lambda_values(1e-4, 1e-2, 20, random=True, seed=2)


@pytest.mark.parametrize("args", [(0, 1, 3), (1e-2, 1e-3, 3), (1e-3, 1e-3, 3), (1e-3, 1e-2, 0)])
def test_bad_ranges(args):
    lo, hi, n = args
    with pytest.raises(ValueError, match=f"need 0 < lo < hi and n >= 1, got lo={lo}, hi={hi}, "
                                         f"n={n}"):
        lambda_values(*args)


def test_best_trial_uses_validation_only():
    trials = [{"lam": 1, "val_accuracy": 0.5, "test_accuracy": 0.9},
              {"lam": 2, "val_accuracy": 0.6, "test_accuracy": 0.1}]
    assert best_trial(trials)["lam"] == 2


def test_coarse_to_fine_searches_around_the_best(synthetic):
    out = coarse_to_fine(synthetic, TINY, n_coarse=4, n_fine=4, n_jobs=1)
    coarse = [t["lam"] for t in out["coarse"]]
    assert np.allclose(coarse, lambda_values(1e-5, 1e-1, 4))
    best_coarse = best_trial(out["coarse"])["lam"]
    fine = [t["lam"] for t in out["fine"]]
    step = 4 / 3                                   # the coarse grid's step in log10
    assert np.allclose(np.log10(fine), np.log10(best_coarse) + np.linspace(-step, step, 6)[1:-1])
    assert not set(fine) & set(coarse)
    every = out["coarse"] + out["fine"]
    assert out["best"]["val_accuracy"] == max(t["val_accuracy"] for t in every)
    assert all(t["result"].config == TINY.with_(lam=t["lam"]) for t in every)
    assert all(t["val_accuracy"] == t["result"].val_accuracy for t in every)
    assert [t["stage"] for t in every] == ["coarse"] * 4 + ["fine"] * 4


def test_no_fine_stage(synthetic):
    out = coarse_to_fine(synthetic, TINY, n_coarse=3, n_fine=0, n_jobs=1)
    assert out["fine"] == [] and len(out["coarse"]) == 3
    assert out["best"] == best_trial(out["coarse"])


def test_random_search_draws_its_fine_values_around_the_best(synthetic):
    out = coarse_to_fine(synthetic, TINY, n_coarse=2, n_fine=2, random=True, seed=4, n_jobs=1)
    assert [t["lam"] for t in out["coarse"]] == lambda_values(1e-5, 1e-1, 2, random=True, seed=4)
    centre = np.log10(best_trial(out["coarse"])["lam"])
    assert np.allclose([t["lam"] for t in out["fine"]],          # one coarse step either side
                       lambda_values(10 ** (centre - 4), 10 ** (centre + 4), 2, random=True,
                                     seed=5))
    with pytest.raises(ValueError, match="a random search is recorded in `out` only with a seed"):
        coarse_to_fine(synthetic, TINY, random=True, out="trials.jsonl")


def test_known_trials_are_not_trained_again(synthetic):
    known = {0.01: {"stage": "coarse", "lam": 0.01, "val_accuracy": 0.5, "test_accuracy": 0.4,
                    "result": None}}
    finished = []
    trials = evaluate_lambdas(synthetic, TINY, [0.001, 0.01], n_jobs=1, known=known,
                              on_trial=finished.append)
    assert trials[1] is known[0.01] and trials[0]["result"].config.lam == 0.001
    assert finished == [trials[0]]


def test_stopped_search_resumes_from_its_record(synthetic, tmp_path):
    """A record cut after two trials, as if the search were killed then: the same search
    trains only the trials it lacks, and ends with the trials of the whole search."""
    out = tmp_path / "trials.jsonl"
    whole = coarse_to_fine(synthetic, TINY, n_coarse=3, n_fine=2, n_jobs=1, out=out)
    lines = out.read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["search"]["config"]["hidden"] == [10]
    assert [(t["stage"], t["lam"]) for t in map(json.loads, lines[1:])] == \
        [(t["stage"], t["lam"]) for t in whole["coarse"] + whole["fine"]]
    out.write_text("\n".join(lines[:3]) + "\n")
    resumed = coarse_to_fine(synthetic, TINY, n_coarse=3, n_fine=2, n_jobs=1, out=out)
    every = resumed["coarse"] + resumed["fine"]
    assert [t["result"] is None for t in every] == [True, True, False, False, False]
    fields = ("stage", "lam", "val_accuracy", "test_accuracy")
    assert [[t[k] for k in fields] for t in every] == \
        [[t[k] for k in fields] for t in whole["coarse"] + whole["fine"]]
    assert out.read_text().splitlines()[:3] == lines[:3] and len(out.read_text().splitlines()) == 6
    assert resumed["best"]["lam"] == whole["best"]["lam"]


def test_record_of_another_search_is_refused(synthetic, tmp_path):
    out = tmp_path / "trials.jsonl"
    coarse_to_fine(synthetic, TINY, n_coarse=1, n_fine=0, n_jobs=1, out=out)
    recorded = out.read_text()
    with pytest.raises(SearchFileError, match=r"records another search \(hidden \[10\] there, "
                                              r"\[12\] here\): give another --out file"):
        coarse_to_fine(synthetic, TINY.with_(hidden=(12,)), n_coarse=1, n_fine=0, n_jobs=1,
                       out=out)
    with pytest.raises(SearchFileError, match=r"another search \(coarse 1 there, 2 here\)"):
        coarse_to_fine(synthetic, TINY, n_coarse=2, n_fine=0, n_jobs=1, out=out)
    assert out.read_text() == recorded
    # lam itself is what the search chooses: another lam in the config is the same search
    again = coarse_to_fine(synthetic, TINY.with_(lam=0.5), n_coarse=1, n_fine=0, n_jobs=1,
                           out=out)
    assert again["best"]["result"] is None and out.read_text() == recorded


@pytest.mark.parametrize("text", ["", "not json\n", '{"trials": []}\n',
                                  '{"search": {}}\n{"lam": 0.1}\n', "[1, 2]\n"])
def test_a_file_that_is_no_record_is_refused(tmp_path, text):
    path = tmp_path / "trials.jsonl"
    path.write_text(text)
    with pytest.raises(SearchFileError, match=f"{path} is .*not a lambda search record.*give "
                                              "another --out file"):
        TrialLog(path, {})
    assert path.read_text() == text


def test_search_loads_a_source_itself(tmp_path):
    """A data.Source is loaded before the first trial: a missing folder stops the search."""
    with pytest.raises(DataError, match=f"the CIFAR-10 folder {tmp_path / 'nothing'} does not "
                                        "exist"):
        coarse_to_fine(Source(str(tmp_path / "nothing")), TINY, n_coarse=1, n_fine=0, n_jobs=1)


# ---------------------------------------------------------------------------------------------
# The search command on the real data


#: A search of 6 short trials through the command line.
SEARCH = ["search", "--hidden", "20", "--cycles", "0.05", "--coarse", "4", "--fine", "2"]


def _lines_of(path):
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
def test_out_resumes_after_sigkill(tmp_path, cifar10_dir, capsys):
    """SIGKILL to a search writing --out, then the same search again: it trains only the
    trials the file lacks, and ends with the trials of an uninterrupted search."""
    assert main([*SEARCH, "--jobs", "1", "--data", str(cifar10_dir), "--json"]) == 0
    uninterrupted = json.loads(capsys.readouterr().out)
    out = tmp_path / "trials.jsonl"
    command = [sys.executable, "-m", "assignment3", *SEARCH, "--jobs", "1", "--data",
               str(cifar10_dir), "--out", str(out), "--json"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_lines_of(out)) < 3:     # two trials done
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
    before = _lines_of(out)
    assert 3 <= len(before) < 7, "the search was not stopped in the middle"
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    after = _lines_of(out)
    assert after[:len(before)] == before
    trials = [(t["stage"], t["lam"]) for t in map(json.loads, after[1:])]
    assert len(trials) == len(set(trials)) == 6
    assert json.loads(second.stdout) == uninterrupted


@pytest.mark.slow
def test_out_of_another_search_stops_the_command(tmp_path, cifar10_dir, capsys):
    out = tmp_path / "trials.jsonl"
    short = ["--cycles", "0.01", "--coarse", "1", "--fine", "0", "--jobs", "1", "--data",
             str(cifar10_dir), "--out", str(out), "--json"]
    assert main(["search", "--hidden", "20", *short]) == 0
    recorded = out.read_text()
    assert main(["search", "--hidden", "30", *short]) == 2
    err = capsys.readouterr().err
    assert f"{out} records another search (hidden [20] there, [30] here)" in err
    assert out.read_text() == recorded
