"""The command line: usage errors without tracebacks (exit status 2, one line naming the option),
`train --save`, `evaluate` and `plot` of a saved run and the files they refuse, stops by signal
and divergence. In this process on small synthetic data; by the real command on a synthetic
CIFAR-10 folder written here; on the real data (slow): stops of the real command by signal."""
import json
import os
import pathlib
import pickle
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

from assignment3.cli import build_parser, main
from assignment3.cli.options import SEARCH_LIMITS, TRAIN_OPTIONS, config_from_args
from assignment3.config import LIMITS, Config
from assignment3.data.files import TEST_FILE, TRAIN_FILES
from assignment3.report.presets import BEST, PART_TWO_BEST
from assignment3.signals import STOP_SIGNALS, StopSignals
from assignment3.store import runfile
from assignment3.store.outputs import OutputError
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


def in_process(args, capsys):
    """(exit status, stdout, stderr) of `main(args)` in this process, a usage error's included."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


class Command:
    """The command line in this process: `command(*args)` -> (exit status, stdout, stderr), with
    the commands' load_cifar10 giving the small synthetic data of the dtype asked for (a CIFAR-10
    folder of synthetic batches is 740 MB in float32). Each load is noted in `loads`, and calls
    `on_load` if it is set."""

    def __init__(self, data, capsys):
        self.data, self.capsys, self.loads, self.on_load = data, capsys, [], None

    def load(self, path, *, dtype, progress):
        self.loads.append(path)
        if self.on_load:
            self.on_load()
        return self.data[np.dtype(dtype)]

    def __call__(self, *args):
        return in_process(args, self.capsys)


@pytest.fixture
def command(synthetic, synthetic64, monkeypatch, capsys):
    command = Command({np.dtype(np.float32): synthetic, np.dtype(np.float64): synthetic64},
                      capsys)
    monkeypatch.setattr("assignment3.cli.commands.load_cifar10", command.load)
    return command


def places(folder):
    """A saved run and a checkpoint (files of this package) in `folder`, by kind."""
    made = {"run": folder / "r.npz", "checkpoint": folder / "c.npz"}
    for kind, path in made.items():
        runfile.write(path, {"W_0": np.zeros((1, 1))}, {"kind": kind})
    return made


# ---------------------------------------------------------------------------------------------
# Usage errors


#: Command lines that are usage errors, with a part of their one-line message, all refused
#: before any data is loaded: a row for each kind of limit an option has (every option is built
#: from its limit: test_each_option_takes_what_its_limit_takes), for each rule between settings
#: (Config's and the command line's) and for each of the parser's own refusals.
USAGE_ERRORS = [
    (["train", "--hidden", "50,x"], "argument --hidden: expected comma-separated layer sizes"),
    (["train", "--hidden", "50,0"], "every layer size in '50,0' must be an integer in [1,"),
    (["train", "--hidden", "16384"], f"'16384' makes a network of {3073 * 16384 + 16385 * 10:,} "
                                     "parameters on CIFAR-10"),
    (["train", "--init", "gaussian"], "argument --init: expected he, xavier or a number > 0"),
    (["train", "--lam", "-1"], "argument --lam: expected a number >= 0, got '-1'"),
    (["train", "--cycles", "0"], "argument --cycles: expected a number in (0, 1000], got '0'"),
    (["train", "--cycles", "1e5"], "argument --cycles: expected a number in (0, 1000]"),
    (["train", "--momentum", "1"], "argument --momentum: expected a number in [0, 1), got '1'"),
    (["train", "--max-shift", "32"], "argument --max-shift: expected an integer in [0, 31]"),
    (["train", "--epochs", "0"], "argument --epochs: expected a number in (0, 10000]"),
    (["train", "--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["train", "--flip=yes"], "argument --flip/--no-flip: ignored explicit argument 'yes'"),
    (["search", "--lam-range", "0", "0.1"], "argument --lam-range: expected a number > 0"),
    (["fly"], "argument command: invalid choice: 'fly'"),
    (["train", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["evaluate"], "the following arguments are required: PATH"),
    (["search", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not allowed with argument"),
    (["train", "--eta-max", "1e-6"], "--eta-max 1e-06 must be at least the eta_min of --preset "
                                     "assignment (1e-05)"),
    (["train", "--schedule", "one_cycle"], "--schedule one_cycle needs its length in epochs: set "
                                           "--epochs"),
    (["train", "--epochs", "3"], "--epochs 3.0 is the length of a one-cycle run; a cyclic run, "
                                 "--schedule cyclic (from --preset assignment), counts --cycles"),
    (["train", "--batch", "1"], "--bn (from --preset assignment) normalises each unit over the "
                                "mini-batch, so it needs --batch >= 2"),
    (["train", "--linear", "2"], "--linear 2 leaves no hidden layer with a ReLU (2 hidden layers)"),
    (["train", "--nesterov"], "--nesterov needs --momentum > 0"),
    (["train", "--preset", "best", "--cycles", "3"], "--cycles counts the cycles of a cyclic run, "
                                                     "and this run is one-cycle (--preset best)"),
    (["train", "--save", "a.npz", "--checkpoint", "a.npz"], "need different paths"),
    (["search", "--lam", "0.01"], "search chooses lam"),
    (["search", "--lam-range", "0.1", "0.001"], "--lam-range needs LO < HI, got 0.1 0.001"),
    (["plot", "run.npz", "--out", "curves.xyz"], "give --out a name ending in one of"),
    (["train", "--threads", "1000"], f"--threads 1000 exceeds the {os.cpu_count()} cores"),
]

#: Usage errors found once the data (here 300 training images) is loaded: the rules of
#: `training.check_run` that depend on the data's size (the machine's are checked before it).
DATA_USAGE_ERRORS = [
    (["train", "--batch", "301"], "--batch 301 exceeds the 300 training samples"),
    (["train", "--cycles", "0.01"], "--cycles 0.01 makes 0 training steps (a cycle has 30 steps)"),
]

#: A usage error: one line, by the parser of the command (or of the program, without one).
USAGE_LINE = re.compile(r"python -m assignment3(?P<command> \w+)?: error: .+ "
                        r"\(see python -m assignment3(?P=command)? --help\)\n")

#: How the library names the fields whose options are named otherwise (n_batch: --batch).
LIBRARY_NAMES = [field for option, (field, _) in TRAIN_OPTIONS.items() if option[2:] != field]


def usage_error(stderr, message):
    """One line of the parser's, naming the options in the command line's words, not the
    library's (`n_batch`, `schedule='one_cycle'`)."""
    assert USAGE_LINE.fullmatch(stderr) and message in stderr, stderr
    assert not re.search(r"\b\w+=", stderr) and not any(n in stderr for n in LIBRARY_NAMES)


def with_data(args, folder):
    return [*args, "--data", str(folder)] if args[0] in ("train", "search") else args


@pytest.mark.parametrize("args, message", USAGE_ERRORS + DATA_USAGE_ERRORS)
def test_bad_arguments_are_usage_errors(args, message, command, tmp_path):
    """Exit status 2 and one line; the data is loaded only for the errors that depend on it
    (the folder given does not exist: a search would fail on it)."""
    status, out, err = command(*with_data(args, tmp_path / "no data"))
    assert (status, out) == (2, "")
    usage_error(err, message)
    assert len(command.loads) == ((args, message) in DATA_USAGE_ERRORS)


def test_each_option_takes_what_its_limit_takes(capsys):
    """Every option that sets a Config field, and the search's numbers, is built from the field's
    `Limit` (config.LIMITS, options.SEARCH_LIMITS): it takes the values at the limit's ends that
    the limit takes and its choices, and refuses the values past the ends, a non-number and a
    number of the wrong kind in the limit's words. Every Config field the train command sets has
    an option of TRAIN_OPTIONS."""
    parser = build_parser()
    fields = {field for field, _ in TRAIN_OPTIONS.values()}
    assert {name for name in vars(parser.parse_args(["train"])) if name in LIMITS} == fields
    assert parser.parse_args(["train", "--hidden", " 20 , 10"]).hidden == (20, 10)
    options = [("train", option, field, LIMITS[field]) for option, (field, _)
               in TRAIN_OPTIONS.items() if field != "hidden"]          # hidden: its own rows
    options += [("search", f"--{field.replace('_', '-')}", field, limit)
                for field, limit in SEARCH_LIMITS.items()]

    def given(option, text):
        """The option with the value `text` (as both LO and HI of --lam-range)."""
        return [option, *[text] * (2 if option == "--lam-range" else 1)]

    def parse(command, field, *args):
        value = getattr(parser.parse_args([command, *args]), field)
        return value[0] if field == "lam_range" else value

    def refusal(command, option, text):
        with pytest.raises(SystemExit):
            parser.parse_args([command, *given(option, text)])
        return capsys.readouterr().err

    for command, option, field, limit in options:
        if limit.kind is bool:
            assert parse(command, field, option) is True, option
            assert parse(command, field, f"--no-{option[2:]}") is False, option
            continue
        for choice in limit.choices:
            assert parse(command, field, option, choice) == choice, option
        if limit.kind is str:
            assert f"argument {option}: invalid choice: 'x'" in refusal(command, option, "x")
            continue
        taken, past = [], ["nan" if limit.kind is float else "1.5"]
        for end, is_open, outwards in ((limit.lo, limit.lo_open, -1),
                                       (limit.hi, limit.hi_open, 1)):
            if end is not None:
                (past if is_open else taken).append(str(limit.kind(end)))
                past.append(str(limit.kind(end) + outwards))
        for text in taken:
            value = parse(command, field, *given(option, text))
            assert value == limit.kind(text) and type(value) is limit.kind, (option, text)
        for text in past:
            assert (f"argument {option}: expected {limit.describe()}, got {text!r}"
                    in refusal(command, option, text)), (option, text)


#: (command line, its one-line refusal) of each option that names an output place, with a file
#: of another kind there (every kind of place: tests/store/test_outputs.py).
OUTPUT_REFUSALS = [
    (["train", "--save", "{checkpoint}"], "--save {checkpoint} is a checkpoint, not a saved run: "
                                          "give another path"),
    (["train", "--checkpoint", "{run}"], "--checkpoint {run} is a saved run, not a checkpoint"),
    (["search", "--out", "{run}"], "--out {run} is a saved run, not a lambda search record"),
]


def test_output_places_are_checked_before_any_work(command, tmp_path):
    """A usage error before any data is loaded; the file there stays as it was."""
    made = places(tmp_path)
    before = {path: path.read_bytes() for path in made.values()}
    for args, message in OUTPUT_REFUSALS:
        status, out, err = command(*with_data([a.format(**made) for a in args], tmp_path / "no"))
        assert (status, out) == (2, ""), args
        usage_error(err, message.format(**made))
    assert command.loads == [] and {path: path.read_bytes() for path in before} == before


#: Command lines refused in one line, of each sort: the parser's, Config's in the options'
#: words, an output place's, and a data error (no data where $CIFAR10_DIR says).
REFUSED = [["train", "--hidden", "50,x"], ["train", "--eta-max", "1e-6"],
           ["train", "--checkpoint", "{run}"], ["train"]]


def test_the_real_command_refuses_as_main_does(tmp_path, monkeypatch, capsys):
    """`python -m assignment3` gives the exit status (2) and the one line that `main` gives in
    this process: no traceback, nothing on stdout."""
    made = places(tmp_path)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "empty"))
    lines = [[a.format(**made) for a in args] for args in REFUSED]
    procs = [subprocess.Popen([*PYTHON_M, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for args in lines]
    for args, proc in zip(lines, procs):
        with proc:
            out, err = proc.communicate(timeout=300)
        assert (proc.returncode, out, err) == in_process(args, capsys), args
        assert proc.returncode == 2 and out == "" and err.count("\n") == 1, args
    assert err == (f"error: the CIFAR10_DIR folder {tmp_path / 'empty'} has no "
                   f"{', '.join((*TRAIN_FILES, TEST_FILE))}: set CIFAR10_DIR (or give --data) to "
                   f"the folder holding data_batch_1..5 and test_batch\n")


def test_presets_with_options():
    """The options given replace their fields of the preset, the others stay: the command line
    that docs/cli.md gives for part two's best net gives PART_TWO_BEST; --schedule cyclic on
    the (one-cycle) best preset leaves out its length in epochs."""
    parser = build_parser()

    def config(*args):
        return config_from_args(parser.parse_args(["train", *args]), parser)
    assert config() == Config()
    assert config("--preset", "best", "--hidden", "1024,512,256", "--epochs", "360", "--swa",
                  "0") == PART_TWO_BEST
    assert config("--preset", "best", "--schedule", "cyclic", "--cycles", "3") == \
        BEST.with_(schedule="cyclic", epochs=None, cycles=3)


# ---------------------------------------------------------------------------------------------
# Runs in this process on the synthetic data


#: Command lines at the edges of what is accepted, for the 300 training images of the synthetic
#: data: each trains.
EDGE_RUNS = [
    ["--cycles", "0.034"],                              # 1 step: a cycle has 30 steps
    ["--batch", "2", "--cycles", "0.004"],              # the smallest batch BN takes
    ["--hidden", " 20 , 10", "--no-bn", "--cycles", "0.034"],
    ["--seed", "99999999999999999999", "--cycles", "0.034"],
    ["--init", "1e-300", "--dtype", "float64", "--cycles", "0.034"],
    ["--preset", "best", "--schedule", "cyclic", "--cycles", "0.1", "--hidden", "32", "--no-zca",
     "--threads", "1"],
    ["--preset", "best", "--hidden", "64,32", "--epochs", "4", "--no-zca", "--threads", "1"],
]


def test_runs_at_the_edges_of_what_is_accepted(command):
    """Each trains at least a step; a run with SWA (the best preset's) also scores the averaged
    weights."""
    for args in EDGE_RUNS:
        status, out, err = command("train", *args, "--json")
        assert (status, err) == (0, ""), args
        summary = json.loads(out)
        assert summary["steps"] >= 1 and 0 <= summary["test_accuracy"] <= 1, args
        assert ("swa_test_accuracy" in summary) == (summary["config"]["swa"] > 0), args


def test_divergence_names_the_options_to_change(command):
    status, out, err = command("train", "--hidden", "20", "--eta-max", "1e10", "--schedule",
                               "one_cycle", "--epochs", "3", "--batch", "50", "--quiet")
    assert (status, out) == (1, "") and err.count("\n") == 1, err
    assert err.startswith("error: training diverged at step ")
    assert err.endswith("lower --eta-max or --lam, or use a smaller --init\n"), err


def test_evaluate_says_the_scores_in_a_line(command, tmp_path):
    """The scores again (the same data: the same numbers), the flip-averaged test accuracy, and
    the scores stored with the run."""
    path = tmp_path / "run.npz"
    assert command("train", "--hidden", "20", "--cycles", "0.1", "--quiet", "--save", path)[0] == 0
    status, out, err = command("evaluate", path, "--flip-average")
    result = load_run(path)
    val, test = 100 * result.val_accuracy, 100 * result.test_accuracy
    assert (status, err) == (0, "")
    assert re.fullmatch(re.escape(f"{path}: validation accuracy {val:.2f}%, test accuracy "
                                  f"{test:.2f}%, flip-averaged ") + r"\d+\.\d\d% " +
                        re.escape(f"(stored with the run: {val:.2f}%, {test:.2f}%)\n"), out), out


@pytest.fixture
def stop_handlers():
    """The handlers the command line finds: SIGINT raises KeyboardInterrupt (Python's default),
    SIGTERM and SIGHUP are noted in the list given (a signal that gets past the command line
    does not end the tests); the session's handlers are back afterwards."""
    noted = []
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, frame: noted.append(signum))
    ours = {sig: signal.getsignal(sig) for sig in before}
    yield noted
    assert {sig: signal.getsignal(sig) for sig in before} == ours          # put back by main
    for sig, handler in before.items():
        signal.signal(sig, handler)


def send(sig):
    """Send `sig` to this process; its handler (run in the main thread, between two bytecodes)
    is to raise before 5 s have passed."""
    signal.raise_signal(sig)                 # to this thread: no other thread may take it
    end = time.monotonic() + 5
    while time.monotonic() < end:
        time.sleep(0.001)
    pytest.fail(f"{signal.Signals(sig).name} did not stop the command")


def test_a_stop_while_the_data_loads_is_one_line(command, stop_handlers):
    """Ctrl-C (KeyboardInterrupt), SIGTERM and SIGHUP (`Stopped`) while the data loads: one line
    saying what stopped it, and the shell's exit status for the signal (128 + its number)."""
    for sig, line in ((signal.SIGINT, "stopped by Ctrl-C"), (signal.SIGTERM, "stopped by SIGTERM"),
                      (signal.SIGHUP, "stopped by SIGHUP")):
        command.on_load = lambda sig=sig: send(sig)
        assert command("train", "--quiet") == (128 + sig, "", f"{line}\n")
    assert stop_handlers == []


def send_once_training(sig):
    """A thread that sends `sig` to this process once a training run notes stop signals."""
    def wait_and_send():
        end = time.monotonic() + 60
        while not isinstance(getattr(signal.getsignal(sig), "__self__", None), StopSignals):
            if time.monotonic() > end:
                return
            time.sleep(0.001)
        os.kill(os.getpid(), sig)
    thread = threading.Thread(target=wait_and_send, daemon=True)
    thread.start()
    return thread


def test_a_stop_during_training_says_where_and_what_was_kept(command, stop_handlers, tmp_path):
    """The run stops at the end of its step (`TrainingInterrupted`): one line with the step and
    what was kept (the checkpoint written there, or nothing: the option to add), the shell's
    exit status for the signal."""
    ckpt = tmp_path / "c.npz"
    steps = 100 * 2 * 5 * (300 // 100)      # 100 cycles of 2 n_s steps, n_s: 5 epochs of 3 batches
    for sig, args, kept in (
            (signal.SIGINT, [], "nothing kept: add --checkpoint PATH to be able to resume"),
            (signal.SIGTERM, ["--checkpoint", ckpt], f"checkpoint written to {ckpt}: run the "
                                                     "same command again to resume")):
        sender = send_once_training(sig)
        status, out, err = command("train", "--cycles", "100", "--quiet", *args)
        sender.join()
        stop = re.fullmatch(rf"stopped by {signal.Signals(sig).name} at step (\d+) of {steps}; "
                            rf"{re.escape(kept)}\n", err)
        assert (status, out) == (128 + sig, "") and stop, err
    assert runfile.read(ckpt)[1]["step"] == int(stop[1])
    assert stop_handlers == []


# ---------------------------------------------------------------------------------------------
# train --save, evaluate and plot by the real command on the synthetic folder


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
    assert summary["steps"] == 90 and summary["resumed_from_step"] == 0 and summary["seconds"] > 0
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


def test_plot_writes_the_format_of_the_extension(saved_run, tmp_path, capsys):
    """The default, PNG, by the real command; PDF in this process."""
    path = tmp_path / "run.npz"
    path.write_bytes(saved_run[0].read_bytes())
    proc = run("plot", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"learning curves of {path} written to {tmp_path / 'run.png'}\n"
    assert (tmp_path / "run.png").read_bytes().startswith(b"\x89PNG")
    assert main(["plot", str(path), "--out", str(tmp_path / "c.pdf")]) == 0
    assert (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    named = tmp_path / "学習.npz"        # a name the font cannot draw: a note, not warnings
    named.write_bytes(path.read_bytes())
    status, out, err = in_process(["plot", named], capsys)
    assert (status, err) == (0, "") and out.endswith("lacks are drawn as boxes)\n"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pdf", "run.npz", "run.png",
                                                          "学習.npz", "学習.png"]


def test_plot_never_writes_over_a_run(saved_run, tmp_path, capsys):
    """`plot run.png` of a run saved as run.png would write the figure over the run (the default
    --out), as would --out run.png; a .pgf needs LaTeX. Each a usage error."""
    path, _ = saved_run
    as_png = tmp_path / "run.png"
    as_png.write_bytes(path.read_bytes())
    refusals = [([as_png], "is a saved run, not a figure: give another path, or delete the file "
                           "(the default --out is PATH with .png: give --out)"),
                ([path, "--out", as_png], f"--out {as_png} is a saved run, not a figure")]
    if not shutil.which("pdflatex"):
        refusals.append(([path, "--out", tmp_path / "f.pgf"], "with LaTeX, which is not installed"))
    for args, message in refusals:
        status, out, err = in_process(["plot", *args], capsys)
        assert (status, out) == (2, ""), args
        usage_error(err, message)
    assert as_png.read_bytes() == path.read_bytes() and list(tmp_path.iterdir()) == [as_png]


class _Touch:
    """Unpickling it would create the file `path`."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def test_a_run_file_that_cannot_be_used_is_one_line(saved_run, tmp_path, capsys):
    """evaluate and plot of a missing file, and of a run file with a pickled object array (never
    unpickled): exit status 2, one line naming the file and why (every such file:
    tests/store/test_runfile.py; the real command: tests/store/test_runs.py)."""
    arrays, meta = runfile.read(saved_run[0])
    marker = tmp_path / "unpickled"
    evil = np.empty(1, dtype=object)
    evil[0] = _Touch(marker)
    np.savez(tmp_path / "evil.npz", **{**arrays, "W_0": evil}, meta=np.array(json.dumps(meta)))
    for path, problem in ((tmp_path / "nope.npz", "no such file"),
                          (tmp_path / "evil.npz", "holds a pickled object array")):
        for name in ("evaluate", "plot"):
            status, out, err = in_process([name, path], capsys)
            assert (status, out) == (2, "") and err.count("\n") == 1, (name, path)
            assert err.startswith(f"error: {path}: {problem}"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.npz"]


def test_a_run_that_cannot_be_saved_goes_to_a_fallback(saved_run, tmp_path, monkeypatch):
    """The --save folder vanished during training: the run goes to the temporary folder, else
    (gone too) the home folder, else the working folder, and the one line says where."""
    from assignment3.cli.commands import save_or_fallback
    result = load_run(saved_run[0])
    for gone in ((), ("tmp",), ("tmp", "home")):
        root = tmp_path / str(len(gone))
        places = {name: root / name for name in ("tmp", "home", "cwd")}
        for name, place in places.items():
            place.mkdir(parents=True, exist_ok=name in gone)
            if name in gone:
                place.rmdir()
        monkeypatch.setattr(tempfile, "tempdir", str(places["tmp"]))
        monkeypatch.setenv("HOME", str(places["home"]))
        monkeypatch.chdir(places["cwd"])
        with pytest.raises(OutputError) as message:
            save_or_fallback(str(root / "gone" / "run.npz"), result, "v")
        taken = places[("tmp", "home", "cwd")[len(gone)]]
        fallback = taken / f"assignment3-unsaved-run-{os.getpid()}.npz"
        assert str(message.value) == (
            f"could not write --save {root}/gone/run.npz ({root}/gone/run.npz: the folder "
            f"{root}/gone does not exist; create it first); the run was written to {fallback} "
            "instead")
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


def test_a_network_that_cannot_fit_in_memory_is_refused_before_the_data_loads(tmp_path):
    """With 2 GB of address space (ulimit -v), a float64 net of 37 million parameters (2.7 GB
    with CIFAR-10 and training's copies): one line, exit status 2, before the (missing) data is
    looked for; the same net without the limit gets as far as the data."""
    def two_gb():
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    args = [*PYTHON_M, "train", "--hidden", "12000", "--dtype", "float64", "--data",
            str(tmp_path / "none"), "--quiet"]
    limited = subprocess.run(args, capture_output=True, text=True, preexec_fn=two_gb, timeout=60)
    assert limited.returncode == 2 and limited.stderr.count("\n") == 1, limited.stderr
    assert re.search(r"--hidden 12000 needs about 2\.7 GB of memory in float64 .* more than the "
                     r"[12]\.\d GB this process has available", limited.stderr), limited.stderr
    free = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert free.returncode == 2 and "CIFAR-10 folder" in free.stderr, free.stderr


@pytest.mark.slow
def test_a_full_disk_loses_no_numbers_and_no_checkpoint(synthetic_dir, tmp_path):
    """No file can be written (ulimit -f): the summary is printed and one line says the run was
    not kept; a checkpoint that cannot be written stops the run with one line, and leaves no
    file."""
    proc = subprocess.run([*PYTHON_M, *SHORT, "--data", str(synthetic_dir), "--quiet", "--save",
                           str(tmp_path / "run.npz")], capture_output=True, text=True,
                          preexec_fn=no_room_for(50_000), cwd=tmp_path, timeout=300,
                          env={**os.environ, "TMPDIR": str(tmp_path), "HOME": str(tmp_path)})
    assert proc.returncode == 1 and "test accuracy" in proc.stdout, proc.stderr
    assert proc.stderr == (f"error: could not write --save {tmp_path}/run.npz (File too large), "
                           "nor a copy in the temporary, home or working folder: the run was not "
                           "kept (its accuracies are above)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    checkpoint = tmp_path / "c.npz"
    proc = subprocess.run([*PYTHON_M, *SHORT, "--data", str(synthetic_dir), "--quiet",
                           "--checkpoint", str(checkpoint)], capture_output=True, text=True,
                          preexec_fn=no_room_for(50_000), timeout=300)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith(f"error: could not write the checkpoint {checkpoint} at step ")
    assert proc.stderr.count("\n") == 1 and "(File too large)" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Stops of the real command by signal, on the real data


def catches(pid, sig):
    """Whether process `pid` has a handler of its own for `sig` (Linux: /proc/PID/status)."""
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return bool(int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M)[1], 16) >> (sig - 1) & 1)


@pytest.mark.slow
def test_the_real_command_stopped_while_the_data_loads(cifar10_dir):
    """Ctrl-C or SIGTERM once `main` has set its handlers, while the data loads: one line, the
    shell's exit status for the signal, no traceback."""
    for sig, line in ((signal.SIGINT, "stopped by Ctrl-C"), (signal.SIGTERM, "stopped by SIGTERM")):
        with subprocess.Popen([*PYTHON_M, "train", "--quiet", "--data", str(cifar10_dir)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            end = time.monotonic() + 60
            while not catches(proc.pid, signal.SIGTERM):
                assert proc.poll() is None and time.monotonic() < end, proc.communicate()
                time.sleep(0.001)
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
        assert (proc.returncode, out, err) == (128 + sig, "", f"{line}\n")


@pytest.mark.slow
def test_the_real_command_stopped_during_training(cifar10_dir):
    """Ctrl-C once the progress bar shows (the run notes stop signals from then on): one line
    (beside the bar's updates, each a line here: text mode reads its carriage returns as line
    ends) saying where it stopped and how to keep a run, exit status 130, no traceback."""
    with subprocess.Popen([*PYTHON_M, "train", "--cycles", "2", "--data", str(cifar10_dir)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        while "step" not in (line := proc.stderr.readline()):
            assert line, "the run ended before its training began"
        proc.send_signal(signal.SIGINT)
        err, out = proc.stderr.read(), proc.stdout.read()
        status = proc.wait(timeout=60)
    lines = [line for line in err.splitlines() if line.strip() and "/9000 [" not in line]
    assert (status, out) == (130, "") and "Traceback" not in err, err
    assert len(lines) == 1 and re.fullmatch(r"stopped by SIGINT at step \d+ of 9000; nothing "
                                            r"kept: add --checkpoint PATH to be able to resume",
                                            lines[0]), err
