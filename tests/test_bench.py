"""The benchmark script's step loop still drives the training code (it reaches into `training`'s
private step functions, so a change of their signatures must show up here, not in `make bench`)."""
import importlib.util
from pathlib import Path

import pytest

import assignment3.network
import assignment3.training
from assignment3.training import Config

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("bn", [True, False])
def test_step_loop_runs_the_training_steps(bench, small_data, bn):
    seconds = bench.steps_current(assignment3, small_data, Config(batch_norm=bn), steps=30)
    assert seconds > 0
