"""benchmarks/bench.py: the step loop it times must be the loop of `train` (the same parameters
after the same steps, bit for bit), so that a change of the training code shows up here, not as a
wrong figure in `make bench`; and the script itself, a real process in its --quick mode (synthetic
data, a few seconds), must print its report and write its figures with the machine they were
measured on. No CIFAR-10 needed."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assignment3 import Config, train
from tests.conftest import equal_params, equal_stats

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks" / "bench.py"
#: Steps of each compared run: Config(n_s=15, cycles=1) makes train's run this long.
STEPS = 30


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fields", [
    {"batch_norm": True},
    {"batch_norm": False, "hidden": (20, 10, 10)},
    {"batch_norm": True, "dropout": 0.2, "flip": True, "momentum": 0.9},
], ids=["bn", "no-bn-4-layer", "dropout-flip-momentum"])
def test_step_loop_is_the_loop_of_train(bench, synthetic, fields):
    config = Config(**fields, n_s=STEPS // 2, cycles=1)
    seconds, params, stats = bench.timed_steps(synthetic, config, STEPS)
    result = train(synthetic, config)
    assert result.steps == STEPS and seconds > 0
    assert equal_params(params, result.params)
    assert equal_stats(stats or [], result.stats)


def test_quick_run_prints_its_report_and_writes_its_figures(bench, tmp_path):
    """`bench.py --quick --json FILE`, with its full run in a fresh process of its own: the
    Markdown report (the machine, both sections, a verdict on every target) and the same figures
    as JSON, with the machine and its matmul rate."""
    out = tmp_path / "figures.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH",
                                                                                  "")]))
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    figures, report = json.loads(out.read_text()), proc.stdout
    assert figures["machine"]["cpu"] in report and figures["matmul_gflops"] > 0
    assert f"{figures['matmul_gflops']:.0f} GFLOP/s" in report
    for heading in ("Machine", "Seconds per 1000 training steps", "Full default run", "Targets"):
        assert f"\n## {heading}\n" in report, heading

    nets = figures["steps"]["nets"]
    assert [r["net"] for r in nets] == list(bench.NETS)
    assert all(r["s_per_1000"] > 0 and 0 < r["gflops"] and r["matmul_gflops"] > 0 for r in nets)
    full, data = figures["full"], bench.synthetic()
    assert full["steps"] == 2 * bench.QUICK_RUN.n_s and full["train_s"] > 0
    assert full["data_mb"] * 2**20 == sum(s.X.nbytes + s.Y.nbytes + s.y.nbytes
                                          for s in (data.train, data.val, data.test))
    assert full["peak_mb"] > full["data_mb"] and np.isfinite(full["of_matmul"])

    measured = [r["s_per_1000"] for r in nets] + [full[k] for k in ("train_s", "load_s",
                                                                     "peak_mb")]
    assert [(t["measured"], t["target"]) for t in figures["targets"]] == list(zip(
        measured, bench.TARGETS.values()))
    for t in figures["targets"]:
        verdict = "met" if t["measured"] <= t["target"] else "not met"
        assert t["met"] == (verdict == "met")
        assert f"| {t['figure']} | {t['measured']:.3g} | <= {t['target']:g} | {verdict} |" \
            in report


def test_unknown_section_is_a_usage_error(bench, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--sections", "steps,micro"])
    assert exit_.value.code == 2
    assert "unknown section micro; choose from steps, full" in capsys.readouterr().err
