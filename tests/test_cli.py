"""The command line: a real short training with --json, and usage errors without tracebacks."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from assignment3.cli import main


def test_train_json(cifar10_dir, capsys):
    rc = main(["train", "--hidden", "30,20", "--no-bn", "--cycles", "0.02", "--lam", "0.01",
               "--seed", "2", "--data", str(cifar10_dir), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 90 and out["seconds"] > 0 and out["resumed_from_step"] == 0
    assert 0.15 < out["test_accuracy"] <= 1 and 0.15 < out["val_accuracy"] <= 1
    assert out["config"]["hidden"] == [30, 20] and out["config"]["batch_norm"] is False


#: Command lines that are usage errors, with a part of their one-line message. The ones after
#: the first block are refused right after loading the data (they depend on its size or on the
#: machine), so they need it.
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
    (["train", "--batch", "50000"], "--batch 50000 exceeds the 45000 training samples"),
    (["train", "--cycles", "1e-4"], "--cycles 0.0001 makes 0 training steps"),
    (["train", "--threads", "1000"], "--threads 1000 exceeds the"),
    (["train", "--save", "/nonexistent/run.npz"], "the folder /nonexistent does not exist"),
    (["train", "--save", "a.npz", "--checkpoint", "a.npz"], "need different paths"),
    (["evaluate"], "the following arguments are required: PATH"),
    (["plot", "run.npz", "--out", "curves.xyz"], "give --out a name ending in one of"),
]


@pytest.mark.parametrize("args, message", USAGE_ERRORS)
def test_bad_arguments_are_usage_errors(args, message, cifar10_dir):
    """Exit status 2 and one line naming the option, in the command line's words."""
    proc = subprocess.run([sys.executable, "-m", "assignment3", *args, "--data", str(cifar10_dir)]
                          if args[0] == "train" else [sys.executable, "-m", "assignment3", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "error:" in proc.stderr and message in proc.stderr
    assert proc.stdout == ""
    for library_name in ("eta_max", "n_batch", "blas_threads", "schedule="):
        assert library_name not in proc.stderr


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


@pytest.mark.parametrize("args", EDGE_RUNS)
def test_edge_values_run(args, cifar10_dir):
    proc = subprocess.run([sys.executable, "-m", "assignment3", "train", *args, "--json",
                           "--data", str(cifar10_dir)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["steps"] >= 1 and 0 <= out["test_accuracy"] <= 1


def test_missing_data_is_a_clear_error(tmp_path):
    env = {**os.environ, "CIFAR10_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "assignment3", "train", "--cycles", "0.01"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "data_batch_1" in proc.stderr
    assert "Traceback" not in proc.stderr


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



@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("when", ["loading", "training"])
def test_stop_by_signal_prints_no_traceback(cifar10_dir, sig, when):
    """A stop while the modules or the data load, or during training: one line on stderr
    (beside the progress bar's updates, each a line here: text mode reads its carriage returns
    as line ends), the shell's exit status for the signal (128 + its number), no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "assignment3", "train", "--cycles", "2",
                             "--data", str(cifar10_dir)], stderr=subprocess.PIPE, text=True)
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


def test_divergence_names_the_options_to_change(cifar10_dir, capsys):
    rc = main(["train", "--hidden", "20", "--eta-max", "1e10", "--cycles", "0.01", "--quiet",
               "--data", str(cifar10_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("error: training diverged at step ")
    assert err[0].endswith("lower --eta-max or --lam, or use a smaller --init"), err
