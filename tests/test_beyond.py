"""Section 6: the ablation path, parameter counts, storing and reloading its runs, the presets."""
import json
import os
from dataclasses import asdict, fields

import numpy as np
import pytest

from assignment3 import beyond
from assignment3.network import init_params
from assignment3.runfile import code_version, machine
from assignment3.training import Config, train


def test_each_ablation_step_adds_one_change():
    path = beyond.ablation_path(epochs=20)
    assert len(path) == 7                       # BEST keeps BN before the ReLU: no such step
    assert path[0][1] == Config() and path[-1][1] == beyond.BEST
    for (_, before), (change, after) in zip(path[1:-1], path[2:-1]):
        changed = {f.name for f in fields(Config) if getattr(before, f.name) != getattr(after, f.name)}
        assert changed, change
        assert after.epochs == 20 or after.schedule == "cyclic"
    # the last step only trains longer
    last, best = path[-2][1], path[-1][1]
    changed = {k: v for k, v in asdict(best).items() if v != asdict(last)[k]}
    assert changed == {"epochs": best.epochs}


def test_n_parameters_counts_every_array():
    for config in (Config(), Config(hidden=(30, 20), batch_norm=False)):
        params = init_params([3072, *config.hidden, 10], batch_norm=config.batch_norm, seed=0)
        assert beyond.n_parameters(config) == sum(P.size for arrays in params.values()
                                                  for P in arrays)


def test_code_version_names_a_commit():
    version = code_version()
    assert version == "unknown" or len(version.split("+")[0]) == 40


def test_record_names_the_machine_and_its_blas_kernel():
    info = machine()
    assert info["cores"] == os.cpu_count() and info["numpy"] == np.__version__
    assert info["blas"] and "(" in info["blas"]                   # library version (kernel)
    assert beyond.make_record([], [], [])["machine"] == info
    assert info["blas"] in beyond.describe(info) and beyond.describe(None) == "not recorded"


def test_save_and_load_give_back_the_runs(small_data, tmp_path):
    """A record with a run stored with its parameters (in its run file) and one stored before
    the run format (its record only) comes back whole."""
    config = Config(hidden=(30, 20), bn_order="after", schedule="one_cycle", epochs=1, n_batch=50)
    result = train(small_data, config)
    best = {"run": "best-seed-0.npz",
            **beyond.best_record(small_data, "a change", result, version="test")}
    older = beyond.best_record(small_data, "an older run", train(small_data, config.with_(seed=1)),
                               "old")
    record = beyond.make_record([best], [older], [best, older])
    beyond.save(tmp_path, record, {"best-seed-0.npz": result})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-seed-0.npz", beyond.RECORD]
    stored = json.loads((tmp_path / beyond.RECORD).read_text())
    assert stored["best"] == [{"run": "best-seed-0.npz"}, json.loads(json.dumps(older))]
    loaded_record, runs = beyond.load(tmp_path)
    assert loaded_record == json.loads(json.dumps(record))
    loaded = runs["best-seed-0.npz"]
    assert loaded.config == config and loaded.history == result.history
    for name in result.params:
        assert all(np.array_equal(a, b) for a, b in zip(result.params[name], loaded.params[name]))
    scores = beyond.reevaluate(small_data, loaded)
    assert scores["test"] == result.test_accuracy and scores["val"] == result.val_accuracy
    assert 0.1 < scores["test, flip-averaged"] < 1 and scores["test, flip-averaged"] != scores["test"]
    assert record["best"][0]["test_accuracy_flip_averaged"] == scores["test, flip-averaged"]
    rows = beyond.ablation_table(loaded_record)
    assert rows[0]["test acc. (%)"] == pytest.approx(100 * result.test_accuracy)
    assert rows[0]["parameters"] == beyond.n_parameters(config)
    again, again_best, trained = beyond.load_or_train(small_data, tmp_path, retrain=False)
    assert again == loaded_record and again_best.history == result.history and not trained


def test_stored_runs_of_section_6_load():
    """results/beyond: the best net's seed-0 run with its parameters; the other runs (stored
    before the run format) as records."""
    record, runs = beyond.load(beyond.RESULTS_DIR)
    best = runs[record["best"][0]["run"]]
    assert best.config == beyond.BEST and best.test_accuracy == record["best"][0]["test_accuracy"]
    assert record["ablation"][-1] == record["best"][0] and record["seeds"] == [0, 1]
    assert [len(best.params[name]) for name in ("W", "gamma")] == [4, 3]


def test_presets_are_valid_configs():
    assert beyond.PRESETS["assignment"] == Config()
    best = beyond.PRESETS["best"]
    assert asdict(best)["schedule"] == "one_cycle" and best.zca and best.dropout > 0


def test_run_all_trains_the_path_and_every_seed(small_data, tmp_path):
    tiny = beyond.BEST.with_(hidden=(32, 16), epochs=2, zca=False, bn_order="after",
                             blas_threads=1)
    record, runs = beyond.run_all(small_data, seeds=(0, 1), epochs=1, best=tiny)
    best = runs[record["best"][0]["run"]]
    assert sorted(runs) == ["ablation-0.npz", "ablation-1.npz", "ablation-2.npz", "ablation-3.npz",
                            "ablation-4.npz", "ablation-5.npz", "alternative-0.npz",
                            "best-seed-0.npz", "best-seed-1.npz"]
    changes = [run["change"] for run in record["ablation"]]
    assert len(changes) == 7 and "BN after the ReLU" in changes       # no ZCA step: zca is off
    assert [run["config"]["bn_order"] for run in record["alternatives"]] == ["before"]
    assert all(run["code_version"] == code_version() for run in record["best"])
    alt = beyond.alternatives_table(record)
    assert alt[0]["test acc. of the step (%)"] == 100 * record["ablation"][-2]["test_accuracy"]
    assert [run["config"]["seed"] for run in record["best"]] == [0, 1]
    assert record["ablation"][-1] == record["best"][0]
    assert len(record["matmul_gflops"]) == 2 and min(record["matmul_gflops"]) > 0
    assert best.test_accuracy == record["best"][0]["test_accuracy"]
    assert record["best"][0]["test_accuracy"] != record["best"][1]["test_accuracy"]
    rows = beyond.ablation_table(record)
    assert [r["epochs"] for r in rows] == [20, 20, 1, 1, 1, 1, 2]   # cyclic: 2 cycles of 10
    accs = [100 * r["test_accuracy"] for r in record["best"]]
    assert rows[-1]["mean over seeds (%)"] == pytest.approx(sum(accs) / 2)
    assert rows[-1]["test acc. (%)"] == pytest.approx(accs[0]) and "2 seeds" in rows[-1]["change"]


def test_gradient_checks_of_the_new_options(cifar10):
    rows = beyond.gradient_checks(cifar10)
    assert [(r["BN"], r["dropout"] != "none") for r in rows] == [
        ("before the ReLU", False), ("before the ReLU", True),
        ("after the ReLU", False), ("after the ReLU", True)]
    assert all(r["worst relative error"] < 1e-6 for r in rows), rows


def test_step_gflop_of_a_small_net():
    config = Config(hidden=(5,), n_batch=2)
    # products: 3072 x 5 (forward, dW) and 5 x 10 (forward, dW, dX), 2 FLOP each per sample
    assert beyond.step_gflop(config) == pytest.approx(2 * 2 * (2 * 3072 * 5 + 3 * 5 * 10) / 1e9)
