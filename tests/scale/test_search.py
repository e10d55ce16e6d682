"""Lambda search: the grids and the coarse-to-fine logic on tiny trainings of the synthetic
data, the record of its trials (`TrialLog`) from which a stopped search resumes, and the files
that are no record of this search; trials that diverge, recorded as such while the search goes
on; the search command refusing the record of another search; on the real data (slow), the
search command resuming after SIGKILL, reporting a diverged trial and stopping when every trial
of a stage diverged."""
import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from assignment3.cli import main
from assignment3.config import Config
from assignment3.data import DataError, Source
from assignment3.nn.optim import DivergenceError, cyclic_lr
from assignment3.scale.search import (
    SearchFileError,
    StageDiverged,
    TrialLog,
    best_trial,
    coarse_to_fine,
    lambda_values,
)
from assignment3.store.outputs import OutputError
from assignment3.training import train

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


def test_bad_ranges_are_refused():
    """One row per condition: lo > 0, lo < hi (here equal), n >= 1."""
    for lo, hi, n in [(0, 1, 3), (1e-3, 1e-3, 3), (1e-3, 1e-2, 0)]:
        with pytest.raises(ValueError, match=f"need 0 < lo < hi and n >= 1, got lo={lo}, "
                                             f"hi={hi}, n={n}"):
            lambda_values(lo, hi, n)


def test_best_trial_is_by_validation_among_those_that_trained():
    trials = [{"lam": 1, "val_accuracy": 0.5, "test_accuracy": 0.9, "diverged": None},
              {"lam": 2, "val_accuracy": 0.6, "test_accuracy": 0.1},
              {"lam": 3, "val_accuracy": None, "test_accuracy": None,
               "diverged": {"step": 3, "eta": 0.1}}]
    assert best_trial(trials)["lam"] == 2                  # the test set plays no part
    assert best_trial(trials[:1] + trials[2:])["lam"] == 1
    with pytest.raises(ValueError, match="no trial to choose from: every one diverged"):
        best_trial(trials[2:])


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


def test_random_search_draws_its_fine_values_around_the_best(synthetic, tmp_path):
    """Recorded with the seed of its draws, which a resumed search must repeat."""
    record = tmp_path / "trials.jsonl"
    out = coarse_to_fine(synthetic, TINY, n_coarse=2, n_fine=2, random=True, seed=4, n_jobs=1,
                         out=record)
    assert json.loads(record.read_text().splitlines()[0])["search"]["draw_seed"] == 4
    assert [t["lam"] for t in out["coarse"]] == lambda_values(1e-5, 1e-1, 2, random=True, seed=4)
    centre = np.log10(best_trial(out["coarse"])["lam"])
    assert np.allclose([t["lam"] for t in out["fine"]],          # one coarse step either side
                       lambda_values(10 ** (centre - 4), 10 ** (centre + 4), 2, random=True,
                                     seed=5))
    with pytest.raises(ValueError, match="a random search is recorded in `out` only with a seed"):
        coarse_to_fine(synthetic, TINY, random=True, out="trials.jsonl")


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


def test_a_path_that_holds_no_record_is_refused(tmp_path):
    """What may not receive a record is refused as the command line refuses it (store.outputs,
    tested there for every kind of file; no IsADirectoryError or UnicodeDecodeError from deep
    inside); an empty file is not yet a record. Nothing is changed."""
    def write(text):
        return lambda path: path.write_bytes(text)

    for i, (make, error, what) in enumerate([
            (write(b""), SearchFileError, "is empty, not a lambda search record: delete it or "
                                          "give another --out file"),
            (write(b"not json\n"), OutputError, "is a file that assignment3 did not write, "
                                                "not a lambda search record: give another"),
            (write(b'{"trials": []}\n'), OutputError, "is a file that assignment3 did not "
                                                      "write, not a lambda search record"),
            (write(b"PK\x03\x04 a zip"), OutputError, "is a damaged run file, not a lambda "
                                                      "search record"),
            (lambda path: path.mkdir(), OutputError, "is a folder, not a lambda search record")]):
        path = tmp_path / f"trials{i}.jsonl"
        make(path)
        before = path.read_bytes() if path.is_file() else None
        with pytest.raises(error, match=f"^{re.escape(f'{path} {what}')}"):
            TrialLog(path, {"config": {}})
        assert (path.read_bytes() if path.is_file() else None) == before, what


#: A diverged trial's line in a record, and a trained one's (the format before diverged trials).
DIVERGED_LINE = {"stage": "coarse", "lam": 1000.0, "val_accuracy": None, "test_accuracy": None,
                 "seconds": 0.02, "diverged": {"step": 12, "eta": 0.055}}
TRAINED_LINE = {"stage": "fine", "lam": 0.001, "val_accuracy": 0.15, "test_accuracy": 0.18,
                "seconds": 0.07}


def test_record_lines_of_both_kinds_are_read(tmp_path):
    path = tmp_path / "trials.jsonl"
    path.write_text("".join(json.dumps(line) + "\n"
                            for line in ({"search": {}}, DIVERGED_LINE, TRAINED_LINE)))
    log = TrialLog(path, {})
    assert log.trials("coarse") == {1000.0: {**DIVERGED_LINE, "result": None}}
    assert log.trials("fine") == {0.001: {**TRAINED_LINE, "diverged": None, "result": None}}


#: Trial lines that no search writes, one per check of a line (the checks of a field's value,
#: store.fields.number and integer, are tested with the run files).
WRONG_LINES = [
    "not json",
    json.dumps({"lam": 0.1}),                                 # fields missing
    json.dumps({**DIVERGED_LINE, "stage": "medium"}),
    json.dumps({**DIVERGED_LINE, "lam": "1e3"}),
    json.dumps({**DIVERGED_LINE, "lam": 0.0}),
    json.dumps({**DIVERGED_LINE, "seconds": "0.02"}),
    json.dumps({**DIVERGED_LINE, "val_accuracy": 0.5}),       # a diverged trial with a score
    json.dumps({**DIVERGED_LINE, "diverged": None}),
    json.dumps({**DIVERGED_LINE, "diverged": {"step": 12}}),
    json.dumps({**DIVERGED_LINE, "diverged": {"step": 1.5, "eta": 0.05}}),
    json.dumps({**DIVERGED_LINE, "diverged": {"step": 12, "eta": "fast"}}),
    json.dumps({**TRAINED_LINE, "val_accuracy": None}),       # no score, and not diverged
    json.dumps({**TRAINED_LINE, "val_accuracy": 15.0}),
    "[" * 100_000 + "]" * 100_000,                            # JSON nested too deeply to read
]


def test_a_trial_line_of_the_wrong_kind_is_refused(tmp_path):
    """A file that starts as a record but goes on otherwise is a damaged record, left as it
    is."""
    path = tmp_path / "trials.jsonl"
    for line in WRONG_LINES:
        text = json.dumps({"search": {}}) + "\n" + line + "\n"
        path.write_text(text)
        with pytest.raises(SearchFileError, match=f"^{re.escape(str(path))} is not a lambda "
                                                  f"search record \\(line 2: "
                                                  f"{re.escape(repr(line[:80]))}\\): give "
                                                  f"another --out file"):
            TrialLog(path, {})
        assert path.read_text() == text, line


#: A coarse grid 1e-3, 1, 1e3 on which TINY trains at 1e-3 and 1 but diverges at 1e3 (its L2
#: step 2 lam eta outgrows the weights within a few dozen steps).
WIDE = (1e-3, 1e3)


def _scores(trial):
    return {k: trial[k] for k in ("stage", "lam", "val_accuracy", "test_accuracy", "diverged")}


def test_a_diverged_trial_is_recorded_and_the_search_goes_on(synthetic, tmp_path):
    """In two worker processes, as `search --jobs 2` runs them: the trial that diverges is kept
    as diverged, in the record too, the others train and the best is one of them; the same
    search again trains nothing (a trial trained again would be appended to the record)."""
    out = tmp_path / "trials.jsonl"
    search = coarse_to_fine(synthetic, TINY, coarse=WIDE, n_coarse=3, n_fine=0, n_jobs=2, out=out)
    lo, mid, hi = search["coarse"]
    assert [lo["lam"], mid["lam"], hi["lam"]] == pytest.approx([1e-3, 1, 1e3])
    assert [t["result"].config for t in (lo, mid)] == [TINY.with_(lam=lo["lam"]),
                                                       TINY.with_(lam=mid["lam"])]
    assert lo["diverged"] is mid["diverged"] is None
    assert hi["result"] is hi["val_accuracy"] is hi["test_accuracy"] is None
    with pytest.raises(DivergenceError, match="training diverged at step"):
        train(synthetic, TINY.with_(lam=hi["lam"]))          # the same run, in this process
    # where it diverged: after a step (a NaN mini-batch cost) or at an evaluation that ended one
    # (an infinite cost), whichever is noticed first, since evaluations run in a thread
    step, eta = hi["diverged"]["step"], hi["diverged"]["eta"]
    assert 0 < step <= 40 and eta in [cyclic_lr(t, TINY.eta_min, TINY.eta_max, TINY.n_s)
                                      for t in (step - 1, step)]
    assert search["best"] in (lo, mid)
    assert search["best"]["val_accuracy"] == max(lo["val_accuracy"], mid["val_accuracy"])

    lines = [json.loads(text) for text in out.read_text().splitlines()[1:]]
    by_lam = {line["lam"]: line for line in lines}
    assert len(lines) == 3 and set(by_lam) == {lo["lam"], mid["lam"], hi["lam"]}
    assert by_lam[hi["lam"]] == {"stage": "coarse", "lam": hi["lam"], "val_accuracy": None,
                                 "test_accuracy": None, "seconds": round(hi["seconds"], 2),
                                 "diverged": hi["diverged"]}
    for t in (lo, mid):            # a trained trial's line as before diverged trials were kept
        assert by_lam[t["lam"]] == {"stage": "coarse", "lam": t["lam"],
                                    "val_accuracy": t["val_accuracy"],
                                    "test_accuracy": t["test_accuracy"],
                                    "seconds": round(t["seconds"], 2)}

    recorded = out.read_text()
    again = coarse_to_fine(synthetic, TINY, coarse=WIDE, n_coarse=3, n_fine=0, n_jobs=2, out=out)
    assert out.read_text() == recorded
    assert [t["result"] for t in again["coarse"]] == [None] * 3
    assert [_scores(t) for t in again["coarse"]] == [_scores(t) for t in (lo, mid, hi)]
    assert _scores(again["best"]) == _scores(search["best"])
    # a wider range is another search, and says so
    with pytest.raises(SearchFileError, match=r"another search \(lam_range \[0\.001, 1000\.0\] "
                                              r"there, \[1e-05, 1000\.0\] here\)"):
        coarse_to_fine(synthetic, TINY, coarse=(1e-5, 1e3), n_coarse=3, n_fine=0, n_jobs=1,
                       out=out)


def test_the_fine_stage_centres_on_the_best_trial_that_trained(synthetic):
    search = coarse_to_fine(synthetic, TINY, coarse=WIDE, n_coarse=3, n_fine=2, n_jobs=1)
    assert [t["diverged"] is not None for t in search["coarse"]] == [False, False, True]
    centre = np.log10(best_trial(search["coarse"][:2])["lam"])
    assert np.allclose(np.log10([t["lam"] for t in search["fine"]]), [centre - 1, centre + 1])
    every = search["coarse"] + search["fine"]
    assert search["best"]["val_accuracy"] == max(t["val_accuracy"] for t in every
                                                 if not t["diverged"])


def test_a_stage_whose_every_trial_diverged_stops_the_search(synthetic, tmp_path):
    """Recorded, so that the same search again stops at once, training nothing."""
    out = tmp_path / "trials.jsonl"
    message = ("every trial of the coarse stage diverged (all 2 values of lam, 100 to 1e+04): "
               "none trained; lower eta_max, or search smaller values with lam_range")
    with pytest.raises(StageDiverged, match=f"^{re.escape(message)}$"):
        coarse_to_fine(synthetic, TINY, coarse=(1e2, 1e4), n_coarse=2, n_fine=2, n_jobs=1,
                       out=out)
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(text)["diverged"] for text in lines[1:])
    with pytest.raises(StageDiverged, match=f"^{re.escape(message)}$"):
        coarse_to_fine(synthetic, TINY, coarse=(1e2, 1e4), n_coarse=2, n_fine=2, n_jobs=1,
                       out=out)
    assert out.read_text().splitlines() == lines


def test_a_fine_stage_whose_every_trial_diverged_stops_the_search(synthetic, tmp_path):
    """The fine trials of a finished search marked diverged in its record, as a search whose
    fine trials diverged leaves it: the same search then stops after the coarse stage."""
    out = tmp_path / "trials.jsonl"
    whole = coarse_to_fine(synthetic, TINY, n_coarse=2, n_fine=2, n_jobs=1, out=out)
    lines = [json.loads(text) for text in out.read_text().splitlines()]
    marked = [{**line, "val_accuracy": None, "test_accuracy": None,
               "diverged": {"step": 7, "eta": 0.01}} if line.get("stage") == "fine" else line
              for line in lines]
    out.write_text("".join(json.dumps(line) + "\n" for line in marked))
    fine = sorted(t["lam"] for t in whole["fine"])
    with pytest.raises(StageDiverged, match=re.escape(
            f"every trial of the fine stage diverged (all 2 values of lam, {fine[0]:.3g} to "
            f"{fine[1]:.3g}): none trained")):
        coarse_to_fine(synthetic, TINY, n_coarse=2, n_fine=2, n_jobs=1, out=out)
    assert [json.loads(text) for text in out.read_text().splitlines()] == marked


def test_search_loads_a_source_itself(tmp_path):
    """A data.Source is loaded before the first trial: a missing folder stops the search."""
    with pytest.raises(DataError, match=f"the CIFAR-10 folder {tmp_path / 'nothing'} does not "
                                        "exist"):
        coarse_to_fine(Source(str(tmp_path / "nothing")), TINY, n_coarse=1, n_fine=0, n_jobs=1)


# ---------------------------------------------------------------------------------------------
# The search command (on the real data but for the refusal of another search's record)


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


def test_the_command_refuses_the_record_of_another_search_before_loading_data(tmp_path,
                                                                              capsys):
    """A search stopped by its missing data has begun its record; the same --out for another
    search is then refused (before the data: the folder is still missing), one line, exit
    status 2, the record unchanged."""
    out = tmp_path / "trials.jsonl"
    args = ["--cycles", "0.01", "--coarse", "1", "--fine", "0", "--jobs", "1", "--data",
            str(tmp_path / "nothing"), "--out", str(out), "--json"]
    assert main(["search", "--hidden", "20", *args]) == 2
    assert "does not exist" in capsys.readouterr().err
    recorded = out.read_text()
    assert main(["search", "--hidden", "30", *args]) == 2
    out_, err = capsys.readouterr()
    assert out_ == "" and err == (f"error: {out} records another search (hidden [20] there, "
                                  f"[30] here): give another --out file, or delete {out} to "
                                  f"start this one afresh\n")
    assert out.read_text() == recorded


def _search(*args):
    """`python -m assignment3 search *args`, finished."""
    return subprocess.run([sys.executable, "-m", "assignment3", "search", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_command_reports_a_diverged_trial_and_goes_on(tmp_path, cifar10_dir):
    """The search of the issue that met it (lam 1e3 diverges within 0.05 cycles), in two worker
    processes: the trial is recorded as diverged, the best is a trial that trained, and nothing
    reaches stderr (no resource tracker's warning from the workers); the same search again
    trains nothing and its table says where the trial diverged."""
    out = tmp_path / "s.jsonl"
    args = ["--lam-range", "1e-3", "1e3", "--coarse", "3", "--fine", "0", "--cycles", "0.05",
            "--jobs", "2", "--data", str(cifar10_dir), "--out", str(out)]
    first = _search(*args, "--json")
    assert (first.returncode, first.stderr) == (0, "")
    record = {line["lam"]: line for line in map(json.loads, out.read_text().splitlines()[1:])}
    assert sorted(record) == pytest.approx([1e-3, 1, 1e3])
    assert [lam for lam, line in record.items() if "diverged" in line] == [1e3]
    best = max((line for line in record.values() if "diverged" not in line),
               key=lambda line: line["val_accuracy"])
    report = json.loads(first.stdout)
    assert report["best"] == {k: best[k] for k in ("lam", "val_accuracy", "test_accuracy")}
    assert report["trials"] == [
        {"stage": "coarse", "lam": lam, "val_accuracy": record[lam]["val_accuracy"],
         "test_accuracy": record[lam]["test_accuracy"], "diverged": record[lam].get("diverged")}
        for lam in sorted(record)]

    recorded = out.read_text()
    table = _search(*args)
    assert table.returncode == 0, table.stderr
    assert "Traceback" not in table.stderr
    assert out.read_text() == recorded
    step, eta = record[1e3]["diverged"]["step"], record[1e3]["diverged"]["eta"]
    rows = table.stdout.splitlines()
    assert len(rows) == 4
    assert rows[2] == f"coarse lam 1.000e+03: diverged at step {step} (learning rate {eta:.3g})"
    assert rows[3] == (f"best lam {best['lam']:.3e}: validation accuracy "
                       f"{100 * best['val_accuracy']:.2f}%, test accuracy "
                       f"{100 * best['test_accuracy']:.2f}%")


@pytest.mark.slow
def test_the_command_fails_when_every_trial_of_a_stage_diverged(cifar10_dir):
    failed = _search("--lam-range", "1e3", "1e5", "--coarse", "2", "--fine", "2", "--cycles",
                     "0.05", "--jobs", "2", "--data", str(cifar10_dir), "--json")
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr == ("error: every trial of the coarse stage diverged (all 2 values of "
                             "lam, 1e+03 to 1e+05): none trained; lower --eta-max, or search "
                             "smaller values with --lam-range LO HI\n")
