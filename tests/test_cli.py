"""The command line: usage errors without tracebacks (exit status 2, one line naming the option),
`train --save`, `evaluate` and `plot` of a saved run and the files they refuse, on a synthetic
CIFAR-10 folder written here; on the real data (slow): short trainings, the runs at the edges of
what is accepted, stops by signal and divergence."""
import json
import os
import pathlib
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from assignment3.cli import main
from assignment3.data.files import TEST_FILE, TRAIN_FILES
from assignment3.store import runfile
from assignment3.store.runs import load_run

PYTHON_M = [sys.executable, "-m", "assignment3"]


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A CIFAR-10 folder in the official python format (6 pickled batches of 10,000 uint8
    images of 3,072 values, ~30 MB each) of random images whose labels are the arg-max of a
    fixed linear map of their first 10 values: a net learns them within a fraction of an
    epoch."""
    folder = tmp_path_factory.mktemp("cifar-10-batches-py")
    rng = np.random.default_rng(0)
    A = rng.standard_normal((10, 10)).astype(np.float32)
    images = rng.integers(0, 256, (12_000, 3072), dtype=np.uint8)     # drawn once: it is slow
    for name in (*TRAIN_FILES, TEST_FILE):
        data = images[rng.permutation(len(images))[:10_000]]
        labels = ((data[:, :10].astype(np.float32) - 127.5) @ A).argmax(axis=1)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels.tolist()}, f, protocol=4)
    return folder


def run(*args, env=None):
    """`python -m assignment3 *args`, finished."""
    return subprocess.run([*PYTHON_M, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def one_error_line(stderr, message):
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and message in stderr
    assert "Traceback" not in stderr


# ---------------------------------------------------------------------------------------------
# Usage errors


#: Command lines that are usage errors, with a part of their one-line message; all refused
#: before any data is loaded.
USAGE_ERRORS = [
    (["train", "--hidden", "50,x"], "comma-separated layer sizes"),
    (["train", "--hidden", "50,0"], "every layer size in '50,0' must be an integer in [1,"),
    (["train", "--hidden", ",50"], "comma-separated layer sizes"),
    (["train", "--hidden", ""], "comma-separated layer sizes"),
    (["train", "--hidden", "100000"], "argument --hidden: every layer size"),
    (["train", "--hidden", "16384"], "parameters on CIFAR-10"),
    (["train", "--hidden", "4000,4000,4000,4000"], "at most 50,000,000"),
    (["train", "--init", "gaussian"], "he, xavier or a number > 0"),
    (["train", "--init", "0"], "argument --init"),
    (["train", "--init", "nan"], "argument --init"),
    (["train", "--init", "-inf"], "argument --init"),
    (["train", "--lam", "-1"], "argument --lam: expected a number >= 0"),
    (["train", "--lam", "nan"], "argument --lam"),
    (["train", "--lam", "inf"], "argument --lam"),
    (["train", "--cycles", "0"], "argument --cycles: expected a number in (0, 1000]"),
    (["train", "--cycles", "1e5"], "argument --cycles"),
    (["train", "--cycles", "-nan"], "argument --cycles"),
    (["train", "--eta-max", "0"], "argument --eta-max"),
    (["train", "--eta-max", "1e-6"], "--eta-max 1e-06 must be at least the eta_min of --preset"),
    (["train", "--batch", "0"], "argument --batch: expected an integer >= 1"),
    (["train", "--batch", "1e2"], "argument --batch"),
    (["train", "--batch", "1"], "--bn (from --preset assignment) normalises each unit"),
    (["train", "--seed", "-1"], "argument --seed: expected an integer >= 0"),
    (["train", "--seed", "1.5"], "argument --seed"),
    (["train", "--threads", "0"], "argument --threads"),
    (["train", "--momentum", "1"], "argument --momentum"),
    (["train", "--nesterov"], "--nesterov needs --momentum > 0"),
    (["train", "--preset", "best", "--momentum", "0"],
     "--nesterov (from --preset best) needs --momentum > 0"),
    (["train", "--preset", "best", "--cycles", "3"], "--cycles counts the cycles of a cyclic"),
    (["train", "--max-shift", "32"], "argument --max-shift: expected an integer in [0, 31]"),
    (["train", "--max-shift", "-1"], "argument --max-shift"),
    (["train", "--dtype", "float16"], "invalid choice"),
    (["fly"], "invalid choice"),
    (["train", "--epochs", "3"], "--epochs 3.0 is the length of a one-cycle run"),
    (["train", "--schedule", "one_cycle"], "--schedule one_cycle needs its length in epochs"),
    (["train", "--schedule", "one_cycle", "--epochs", "0"], "argument --epochs"),
    (["train", "--dropout", "1"], "expected a number in [0, 1)"),
    (["train", "--dropout", "nan"], "argument --dropout"),
    (["train", "--preset", "fastest"], "invalid choice"),
    (["train", "--bn-order", "middle"], "invalid choice"),
    (["train", "--frobnicate"], "unrecognized arguments"),
    (["train", "--save", "/nonexistent/run.npz"], "the folder /nonexistent does not exist"),
    (["train", "--save", "a.npz", "--checkpoint", "a.npz"], "need different paths"),
    (["evaluate"], "the following arguments are required: PATH"),
    (["plot", "run.npz", "--out", "curves.xyz"], "give --out a name ending in one of"),
    (["search", "--lam", "0.01"], "search chooses lam"),
    (["search", "--lam-range", "0.1", "0.001"], "--lam-range needs LO < HI"),
    (["search", "--lam-range", "0", "0.1"], "argument --lam-range: expected a number > 0"),
    (["search", "--coarse", "0"], "argument --coarse: expected an integer in [1, 1000]"),
    (["search", "--fine", "-1"], "argument --fine: expected an integer in [0, 1000]"),
    (["search", "--jobs", "0"], "argument --jobs: expected an integer in [1, "),
    (["search", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not allowed with argument"),
]

#: Usage errors found once the data is loaded: they depend on its size or on the machine.
DATA_USAGE_ERRORS = [
    (["train", "--batch", "50000"], "--batch 50000 exceeds the 45000 training samples"),
    (["train", "--cycles", "1e-4"], "--cycles 0.0001 makes 0 training steps"),
    (["train", "--threads", "1000"], "--threads 1000 exceeds the"),
]


def usage_error(stderr, message):
    """One line naming the option in the command line's words, not the library's."""
    assert stderr.count("\n") == 1 and "error:" in stderr and message in stderr, stderr
    for library_name in ("eta_max", "n_batch", "blas_threads", "schedule="):
        assert library_name not in stderr


def with_data(args, folder):
    return [*args, "--data", str(folder)] if args[0] in ("train", "search") else args


@pytest.mark.parametrize("args, message", USAGE_ERRORS)
def test_bad_arguments_are_usage_errors(args, message, tmp_path, capsys):
    """Exit status 2 and one line. The data folder given does not exist: none is loaded."""
    with pytest.raises(SystemExit) as exit_:
        main(with_data(args, tmp_path / "no data"))
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == ""
    usage_error(err, message)


@pytest.mark.parametrize("args, message", [
    (["train", "--hidden", "50,x"], "comma-separated layer sizes"),
    (["search", "--lam", "0.01"], "search chooses lam")])
def test_usage_error_of_the_real_command(args, message):
    """Two of USAGE_ERRORS (all of them: slow, below), by `python -m assignment3`."""
    assert (args, message) in USAGE_ERRORS
    proc = run(*args)
    assert proc.returncode == 2 and proc.stdout == ""
    usage_error(proc.stderr, message)


@pytest.mark.slow
@pytest.mark.parametrize("args, message", USAGE_ERRORS + DATA_USAGE_ERRORS)
def test_bad_arguments_are_usage_errors_of_the_real_command(args, message, cifar10_dir):
    proc = run(*with_data(args, cifar10_dir))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    usage_error(proc.stderr, message)


def test_missing_data_is_a_clear_error(tmp_path):
    env = {**os.environ, "CIFAR10_DIR": str(tmp_path)}
    proc = run("train", "--cycles", "0.01", env=env)
    assert proc.returncode == 2
    one_error_line(proc.stderr, "data_batch_1")


# ---------------------------------------------------------------------------------------------
# train --save, evaluate and plot on the synthetic folder


#: A run of 90 steps on the synthetic folder (one-cycle: it learns its labels).
SHORT = ["train", "--hidden", "20", "--schedule", "one_cycle", "--epochs", "0.2", "--seed", "1"]


@pytest.fixture(scope="module")
def saved_run(synthetic_dir, tmp_path_factory):
    """(path, JSON summary) of the SHORT run trained and saved by the command line."""
    path = tmp_path_factory.mktemp("run") / "run.npz"
    proc = run(*SHORT, "--data", synthetic_dir, "--json", "--save", path)
    assert proc.returncode == 0, proc.stderr
    return path, json.loads(proc.stdout)


def test_train_saves_the_run_it_reports(saved_run):
    path, summary = saved_run
    assert summary["steps"] == 90 and summary["resumed_from_step"] == 0
    assert summary["config"]["hidden"] == [20] and summary["config"]["schedule"] == "one_cycle"
    result = load_run(path)
    assert (result.test_accuracy, result.val_accuracy, result.steps) == \
        (summary["test_accuracy"], summary["val_accuracy"], summary["steps"])
    assert 0.15 < summary["test_accuracy"] < 1                  # it learned (chance: 0.1)
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.npz"]


def test_evaluate_gives_the_runs_own_scores(saved_run, synthetic_dir):
    path, summary = saved_run
    env = {**os.environ, "CIFAR10_DIR": str(synthetic_dir)}        # the data from the variable
    rescored = run("evaluate", path, "--json", "--flip-average", env=env)
    assert rescored.returncode == 0, rescored.stderr
    again = json.loads(rescored.stdout)
    assert again["test_accuracy"] == summary["test_accuracy"]
    assert again["val_accuracy"] == summary["val_accuracy"]
    assert {k: again[k] for k in ("steps", "epochs", "config")} == \
        {k: summary[k] for k in ("steps", "epochs", "config")}
    assert 0.1 < again["test_accuracy_flip_averaged"] < 1
    assert again["test_accuracy_flip_averaged"] != again["test_accuracy"]


@pytest.mark.slow
def test_evaluate_says_the_scores_in_a_line(saved_run, synthetic_dir, capsys):
    """Slow only as it loads the data folder once more."""
    path, summary = saved_run
    assert main(["evaluate", str(path), "--data", str(synthetic_dir)]) == 0
    test, val = 100 * summary["test_accuracy"], 100 * summary["val_accuracy"]
    assert capsys.readouterr().out == (f"{path}: validation accuracy {val:.2f}%, test accuracy "
                                       f"{test:.2f}% (stored with the run: {val:.2f}%, "
                                       f"{test:.2f}%)\n")


def test_plot_writes_the_format_of_the_extension(saved_run, tmp_path, capsys):
    """The default, PNG, by the real command; PDF and a refused extension in this process."""
    path = tmp_path / "run.npz"
    path.write_bytes(saved_run[0].read_bytes())
    proc = run("plot", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"learning curves of {path} written to {tmp_path / 'run.png'}\n"
    assert (tmp_path / "run.png").read_bytes().startswith(b"\x89PNG")
    assert main(["plot", str(path), "--out", str(tmp_path / "c.pdf")]) == 0
    assert (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(SystemExit) as exit_:
        main(["plot", str(path), "--out", str(tmp_path / "c.xyz")])
    assert exit_.value.code == 2 and "give --out a name ending in one of" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pdf", "run.npz", "run.png"]


def refused_run_file(path, message, capsys):
    """evaluate (the real command) and plot (in this process) refuse the run file `path`:
    exit status 2, one line naming it and why."""
    proc = run("evaluate", path)
    assert proc.returncode == 2
    one_error_line(proc.stderr, f"error: {path}: {message}")
    assert main(["plot", str(path)]) == 2
    one_error_line(capsys.readouterr().err, f"error: {path}: {message}")


def test_file_with_a_pickled_object_is_refused(saved_run, tmp_path, capsys):
    """An object array in a run file: refused, and never unpickled."""
    arrays, meta = runfile.read(saved_run[0])
    marker = tmp_path / "unpickled"
    evil = np.empty(1, dtype=object)
    evil[0] = _Touch(marker)
    np.savez(tmp_path / "evil.npz", **{**arrays, "W_0": evil}, meta=np.array(json.dumps(meta)))
    refused_run_file(tmp_path / "evil.npz", "holds a pickled object array", capsys)
    assert not marker.exists()


class _Touch:
    """Unpickling it would create the file `path`."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def test_file_of_another_kind_is_not_taken_for_a_pickle(tmp_path):
    """A JSON file (the record of results/beyond, say) given as a run: not an .npz archive."""
    record = tmp_path / "runs.json"
    record.write_text('{"best": []}')
    proc = run("evaluate", record)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"error: {record}: not a readable run file (not an .npz "
                                   "archive); it may be truncated or corrupt, or another kind of "
                                   "file")


def test_missing_run_is_a_clear_error(tmp_path, capsys):
    refused_run_file(tmp_path / "nope.npz", "no such file", capsys)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# On the real data


@pytest.mark.slow
def test_train_json(cifar10_dir, capsys):
    rc = main(["train", "--hidden", "30,20", "--no-bn", "--cycles", "0.02", "--lam", "0.01",
               "--seed", "2", "--data", str(cifar10_dir), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 90 and out["seconds"] > 0 and out["resumed_from_step"] == 0
    assert 0.15 < out["test_accuracy"] <= 1 and 0.15 < out["val_accuracy"] <= 1
    assert out["config"]["hidden"] == [30, 20] and out["config"]["batch_norm"] is False


#: Command lines at the edges of what is accepted: each runs (a few steps).
EDGE_RUNS = [
    ["--cycles", "0.005"],
    ["--cycles", "0.0003", "--batch", "2"],
    ["--hidden", " 20 , 10", "--no-bn", "--cycles", "0.005"],
    ["--seed", "99999999999999999999", "--cycles", "0.005"],
    ["--init", "1e-300", "--cycles", "0.005", "--dtype", "float64"],
    ["--preset", "best", "--schedule", "cyclic", "--cycles", "0.005", "--hidden", "32",
     "--no-zca", "--threads", "1"],
]


@pytest.mark.slow
@pytest.mark.parametrize("args", EDGE_RUNS)
def test_edge_values_run(args, cifar10_dir):
    proc = run("train", *args, "--json", "--data", cifar10_dir)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["steps"] >= 1 and 0 <= out["test_accuracy"] <= 1


@pytest.mark.slow
def test_preset_best_with_overrides(cifar10_dir, capsys):
    """--preset best with its length and width cut down: the preset's other fields stay."""
    rc = main(["train", "--preset", "best", "--hidden", "64,32", "--epochs", "0.05", "--no-zca",
               "--threads", "1", "--data", str(cifar10_dir), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    config = out["config"]
    assert config["hidden"] == [64, 32] and config["epochs"] == 0.05 and config["zca"] is False
    assert config["schedule"] == "one_cycle" and config["nesterov"] and config["dropout"] == 0.2
    assert out["steps"] == round(0.05 * (45000 // 256)) and 0 <= out["test_accuracy"] <= 1
    assert config["swa"] == 0.25 and 0 <= out["swa_test_accuracy"] <= 1     # averaged weights


def test_part_two_best_net_is_the_best_preset_with_three_options():
    """The command line that docs/cli.md gives for part two's best net gives PART_TWO_BEST."""
    from assignment3.cli import build_parser
    from assignment3.cli.options import config_from_args
    from assignment3.report.presets import PART_TWO_BEST
    parser = build_parser()
    args = parser.parse_args(["train", "--preset", "best", "--hidden", "1024,512,256",
                              "--epochs", "360", "--swa", "0"])
    assert config_from_args(args, parser) == PART_TWO_BEST


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("when", ["loading", "training"])
def test_stop_by_signal_prints_no_traceback(cifar10_dir, sig, when):
    """A stop while the modules or the data load, or during training: one line on stderr
    (beside the progress bar's updates, each a line here: text mode reads its carriage returns
    as line ends), the shell's exit status for the signal (128 + its number), no traceback."""
    proc = subprocess.Popen([*PYTHON_M, "train", "--cycles", "2", "--data", str(cifar10_dir)],
                            stderr=subprocess.PIPE, text=True)
    try:
        if when == "training":
            while "step" not in (line := proc.stderr.readline()):
                assert line, "the run ended before its first evaluation"
        else:
            time.sleep(0.3)
        proc.send_signal(sig)
        err = proc.stderr.read()
        status = proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert status in (128 + sig, -sig), err          # -sig: before Python's handlers are set
    lines = [line for line in err.splitlines() if line.strip() and "/9000 [" not in line]
    assert "Traceback" not in err and len(lines) <= 1, err


@pytest.mark.slow
def test_sigint_without_checkpoint_says_how_to_keep_a_run(cifar10_dir):
    proc = subprocess.Popen([*PYTHON_M, "train", "--preset", "best", "--hidden", "32",
                             "--epochs", "5", "--no-zca", "--threads", "1", "--json", "--data",
                             str(cifar10_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)                                        # inside training, or still loading
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "add --checkpoint PATH" in err or err.strip() == "stopped by Ctrl-C"


@pytest.mark.slow
def test_divergence_names_the_options_to_change(cifar10_dir, capsys):
    rc = main(["train", "--hidden", "20", "--eta-max", "1e10", "--cycles", "0.01", "--quiet",
               "--data", str(cifar10_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("error: training diverged at step ")
    assert err[0].endswith("lower --eta-max or --lam, or use a smaller --init"), err


# ---------------------------------------------------------------------------------------------
# Where the outputs go: every place checked before any work, nothing finished lost


@pytest.fixture
def places(tmp_path):
    """Output places of every sort: a folder, a CIFAR-10 batch, a checkpoint, a saved run."""
    made = {"folder": tmp_path / "d.npz", "batch": tmp_path / "test_batch",
            "checkpoint": tmp_path / "c.npz", "run": tmp_path / "r.npz"}
    made["folder"].mkdir()
    with open(made["batch"], "wb") as f:
        pickle.dump({b"batch_label": b"testing batch 1 of 1", b"labels": [0]}, f, protocol=2)
    for kind in ("checkpoint", "run"):
        runfile.write(made[kind], {"W_0": np.zeros((1, 1))}, {"kind": kind})
    return made


#: (command line, its one-line refusal); the data folder given does not exist, so the refusal
#: comes before any data is loaded or any training starts.
OUTPUT_REFUSALS = [
    (["train", "--save", "{folder}"], "--save {folder} is a folder, not a saved run"),
    (["train", "--save", "/dev/null"], "--save /dev/null is a device, not a saved run"),
    (["train", "--save", "{batch}"], "--save {batch} is a CIFAR-10 data batch, not a saved run"),
    (["train", "--save", "{checkpoint}"], "is a checkpoint, not a saved run: give another path"),
    (["train", "--checkpoint", "{run}"], "--checkpoint {run} is a saved run, not a checkpoint"),
    (["train", "--save", "{folder}/no/r.npz"], "no does not exist; create it first"),
    (["search", "--out", "{folder}"], "--out {folder} is a folder, not a lambda search record"),
    (["search", "--out", "{run}"], "--out {run} is a saved run, not a lambda search record"),
    (["search", "--out", "{folder}/no/s.jsonl"], "does not exist; create it first"),
]


@pytest.mark.parametrize("args, message", OUTPUT_REFUSALS)
def test_output_places_are_checked_before_any_work(args, message, places, tmp_path, capsys):
    args = [a.format(**places) for a in args]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--data", str(tmp_path / "no data")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    assert message.format(**places) in err
    assert places["batch"].read_bytes().startswith(b"\x80\x02")     # nothing replaced
    assert places["folder"].is_dir() and os.path.exists("/dev/null")


def test_plot_never_writes_over_a_run(saved_run, tmp_path, capsys):
    """`plot run.png` of a run saved as run.png would write the figure over the run."""
    path, _ = saved_run
    as_png = tmp_path / "run.png"
    as_png.write_bytes(path.read_bytes())
    proc = run("plot", as_png)
    assert proc.returncode == 2 and "is a saved run, not a figure" in proc.stderr
    assert proc.stderr.count("\n") == 1 and as_png.read_bytes() == path.read_bytes()
    for out, message in ((as_png, "is a saved run, not a figure"),
                         (tmp_path / "no" / "f.png", "does not exist; create it first"),
                         (tmp_path / "f.pgf", "with LaTeX, which is not installed")):
        if out.suffix == ".pgf" and shutil.which("pdflatex"):
            continue
        with pytest.raises(SystemExit) as exit_:
            main(["plot", str(path), "--out", str(out)])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and message in err and err.count("\n") == 1
    assert as_png.read_bytes() == path.read_bytes()


def test_a_run_that_cannot_be_saved_goes_to_a_fallback(saved_run, tmp_path, monkeypatch):
    """The --save folder vanished during training: the run goes to the temporary folder, and
    the one line says where."""
    from assignment3.cli.commands import save_or_fallback
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)          # read TMPDIR again
    result = load_run(saved_run[0])
    message = save_or_fallback(str(tmp_path / "gone" / "run.npz"), result, "v")
    fallback = tmp_path / f"assignment3-unsaved-run-{os.getpid()}.npz"
    assert message == (f"could not write --save {tmp_path}/gone/run.npz ({tmp_path}/gone/run.npz:"
                       f" the folder {tmp_path}/gone does not exist; create it first); the run "
                       f"was written to {fallback} instead")
    again = load_run(fallback)
    assert again.test_accuracy == result.test_accuracy
    assert all(np.array_equal(a, b) for a, b in zip(again.params["W"], result.params["W"]))


def no_room_for(n_bytes):
    """A child's pre-exec: files of at most n_bytes, and a write past it an error (EFBIG), not
    the signal SIGXFSZ: a full disk, as far as the process can tell."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))
    return limit


@pytest.mark.slow
def test_a_full_disk_loses_no_numbers_and_no_checkpoint(synthetic_dir, tmp_path):
    """No file can be written (ulimit -f): the summary is printed and one line says the run was
    not kept; a checkpoint that cannot be written stops the run with one line, and the
    checkpoint written before stays whole."""
    proc = subprocess.run([*PYTHON_M, *SHORT, "--data", str(synthetic_dir), "--quiet", "--save",
                           str(tmp_path / "run.npz")], capture_output=True, text=True,
                          preexec_fn=no_room_for(50_000), cwd=tmp_path, timeout=300,
                          env={**os.environ, "TMPDIR": str(tmp_path), "HOME": str(tmp_path)})
    assert proc.returncode == 1 and "test accuracy" in proc.stdout, proc.stderr
    assert proc.stderr == (f"error: could not write --save {tmp_path}/run.npz (File too large), "
                           f"nor a copy in {tmp_path} or {tmp_path}: the run was not kept (its "
                           f"accuracies are above)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    checkpoint = tmp_path / "c.npz"
    runfile.write(checkpoint, {"W_0": np.zeros((1, 1))}, {"kind": "checkpoint"})
    before = checkpoint.read_bytes()
    proc = subprocess.run([*PYTHON_M, *SHORT[:-2], "--seed", "3", "--data", str(synthetic_dir),
                           "--quiet", "--checkpoint", str(checkpoint)], capture_output=True,
                          text=True, preexec_fn=no_room_for(50_000), timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1       # another run's: refused
    checkpoint.unlink()
    proc = subprocess.run([*PYTHON_M, *SHORT, "--data", str(synthetic_dir), "--quiet",
                           "--checkpoint", str(checkpoint)], capture_output=True, text=True,
                          preexec_fn=no_room_for(50_000), timeout=300)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith(f"error: could not write the checkpoint {checkpoint} at step ")
    assert proc.stderr.count("\n") == 1 and "(File too large)" in proc.stderr
    assert not checkpoint.exists() and before
