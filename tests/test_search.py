"""Lambda search: the grids and the coarse-to-fine logic, on short real trainings; the search
command, its --out record and resuming from it after SIGKILL."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from assignment3.cli import main
from assignment3.search import SearchFileError, TrialLog, best_trial, coarse_to_fine, lambda_values
from assignment3.training import Config


def test_log_spaced_values():
    lams = lambda_values(1e-5, 1e-1, 8)
    assert len(lams) == 8 and lams[0] == pytest.approx(1e-5) and lams[-1] == pytest.approx(1e-1)
    assert np.allclose(np.diff(np.log10(lams)), 4 / 7)


def test_random_values_in_range_sorted_and_seeded():
    lams = lambda_values(1e-4, 1e-2, 20, random=True, seed=1)
    assert all(1e-4 <= v <= 1e-2 for v in lams) and lams == sorted(lams)
    assert lams == lambda_values(1e-4, 1e-2, 20, random=True, seed=1)
    assert lams != lambda_values(1e-4, 1e-2, 20, random=True, seed=2)


@pytest.mark.parametrize("args", [(0, 1, 3), (1e-2, 1e-3, 3), (1e-3, 1e-2, 0)])
def test_bad_ranges(args):
    with pytest.raises(ValueError):
        lambda_values(*args)


def test_best_trial_uses_validation_only():
    trials = [{"lam": 1, "val_accuracy": 0.5, "test_accuracy": 0.9},
              {"lam": 2, "val_accuracy": 0.6, "test_accuracy": 0.1}]
    assert best_trial(trials)["lam"] == 2


def test_coarse_to_fine_searches_around_the_best(small_data):
    out = coarse_to_fine(small_data, Config(n_s=10, cycles=1), n_coarse=4, n_fine=4, n_jobs=1)
    coarse = [t["lam"] for t in out["coarse"]]
    assert np.allclose(coarse, lambda_values(1e-5, 1e-1, 4))
    best_coarse = best_trial(out["coarse"])["lam"]
    fine = [t["lam"] for t in out["fine"]]
    step = 4 / 3                                   # the coarse grid's step in log10
    assert np.allclose(np.log10(fine), np.log10(best_coarse) + np.linspace(-step, step, 6)[1:-1])
    assert not set(fine) & set(coarse)
    every = out["coarse"] + out["fine"]
    assert out["best"]["val_accuracy"] == max(t["val_accuracy"] for t in every)
    assert all(t["result"].config.lam == t["lam"] for t in every)


def test_no_fine_stage(small_data):
    out = coarse_to_fine(small_data, Config(n_s=10, cycles=1), n_coarse=3, n_fine=0, n_jobs=1)
    assert out["fine"] == [] and len(out["coarse"]) == 3
    assert out["best"] == best_trial(out["coarse"])


#: A search of 6 short trials through the command line.
SEARCH = ["search", "--hidden", "20", "--cycles", "0.05", "--coarse", "4", "--fine", "2"]


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
        while time.monotonic() < deadline and _lines(out) < 3:     # two trials done
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


def test_out_of_another_search_is_refused(tmp_path, cifar10_dir, capsys):
    out = tmp_path / "trials.jsonl"
    short = ["--cycles", "0.01", "--coarse", "1", "--fine", "0", "--jobs", "1", "--data",
             str(cifar10_dir), "--out", str(out), "--json"]
    assert main(["search", "--hidden", "20", *short]) == 0
    recorded = out.read_text()
    assert main(["search", "--hidden", "30", *short]) == 2
    err = capsys.readouterr().err
    assert f"{out} records another search (hidden [20] there, [30] here)" in err
    assert out.read_text() == recorded


@pytest.mark.parametrize("text", ["", "not json\n", '{"trials": []}\n',
                                  '{"search": {}}\n{"lam": 0.1}\n'])
def test_a_file_that_is_no_record_is_refused(tmp_path, text):
    path = tmp_path / "trials.jsonl"
    path.write_text(text)
    with pytest.raises(SearchFileError, match="give another --out file"):
        TrialLog(path, {})
    assert path.read_text() == text


@pytest.mark.parametrize("args, message", [
    (["--lam", "0.01"], "search chooses lam"),
    (["--lam-range", "0.1", "0.001"], "--lam-range needs LO < HI"),
    (["--lam-range", "0", "0.1"], "argument --lam-range: expected a number > 0"),
    (["--coarse", "0"], "argument --coarse: expected an integer in [1, 1000]"),
    (["--fine", "-1"], "argument --fine: expected an integer in [0, 1000]"),
    (["--jobs", "0"], "argument --jobs: expected an integer in [1, "),
    (["--jobs", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not allowed with argument"),
])
def test_search_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["search", *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def _lines_of(path):
    return path.read_text().splitlines() if path.exists() else []


def _lines(path):
    return len(_lines_of(path))
