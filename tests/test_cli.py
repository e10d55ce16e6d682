"""The command line: a real short training with --json, and usage errors without tracebacks."""
import json
import os
import subprocess
import sys

import pytest

from assignment3.cli import main


def test_train_json(cifar10_dir, capsys):
    rc = main(["train", "--hidden", "30,20", "--no-bn", "--cycles", "0.02", "--lam", "0.01",
               "--seed", "2", "--data", str(cifar10_dir), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 90 and out["seconds"] > 0
    assert 0.15 < out["test_accuracy"] <= 1 and 0.15 < out["val_accuracy"] <= 1
    assert out["config"]["hidden"] == [30, 20] and out["config"]["batch_norm"] is False


@pytest.mark.parametrize("args, message", [
    (["train", "--hidden", "50,x"], "comma-separated layer sizes"),
    (["train", "--hidden", "50,0"], "layer sizes must be >= 1"),
    (["train", "--init", "gaussian"], "he, xavier or a positive sigma"),
    (["train", "--lam", "-1"], "expected a number >= 0"),
    (["train", "--cycles", "0"], "expected a positive number"),
    (["train", "--dtype", "float16"], "invalid choice"),
    (["fly"], "invalid choice"),
    (["train", "--epochs", "3"], "one-cycle run needs its length in epochs"),
    (["train", "--dropout", "1"], "expected a number in [0, 1)"),
    (["train", "--preset", "fastest"], "invalid choice"),
    (["train", "--bn-order", "middle"], "invalid choice"),
])
def test_bad_arguments_are_usage_errors(args, message):
    proc = subprocess.run([sys.executable, "-m", "assignment3", *args], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr


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

