"""Section 6: the ablation path, the leave-one-out, compute counts, storing and reloading the runs,
the presets."""
import json
import os
from dataclasses import asdict, fields

import numpy as np
import pytest

from assignment3 import beyond, compute, training
from assignment3 import beyond_tables as tables
from assignment3.network import init_params
from assignment3.runfile import code_version, machine
from assignment3.training import Config, train


def test_each_ablation_step_adds_one_change():
    path = beyond.ablation_path(epochs=20)
    assert len(path) == 7                       # BEST keeps BN before the ReLU: no such step
    assert path[0][1] == Config() and path[-1][1] == beyond.PART_ONE
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
        assert compute.n_parameters(config) == sum(P.size for arrays in params.values()
                                                  for P in arrays)


def test_code_version_names_a_commit():
    version = code_version()
    assert version == "unknown" or len(version.split("+")[0]) == 40


def test_record_names_the_machine_and_its_blas_kernel():
    info = machine()
    assert info["cores"] == os.cpu_count() and info["numpy"] == np.__version__
    assert info["blas"] and "(" in info["blas"]                   # library version (kernel)
    assert beyond.make_record([], [], [])["machine"] == info
    assert info["blas"] in compute.describe(info) and compute.describe(None) == "not recorded"


def test_save_and_load_give_back_the_runs(small_data, tmp_path):
    """A record with a run stored with its parameters (in its run file) and one stored before
    the run format (its record only) comes back whole."""
    config = Config(hidden=(30, 20), bn_order="after", schedule="one_cycle", epochs=1, n_batch=50)
    result = train(small_data, config)
    best = {"run": "best-seed-0.npz",
            **beyond.best_record(small_data, "a change", result, version="test")}
    older = beyond.best_record(small_data, "an older run", train(small_data, config.with_(seed=1)),
                               "old")
    record = beyond.make_record([best], [older], [best, older], best=[best])
    beyond.save(tmp_path, record, {"best-seed-0.npz": result})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-seed-0.npz", beyond.RECORD]
    stored = json.loads((tmp_path / beyond.RECORD).read_text())
    file_entry = {"run": "best-seed-0.npz", "change": "a change"}
    assert stored["part_one"] == [file_entry, json.loads(json.dumps(older))]
    assert stored["best"] == [file_entry]
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
    rows = tables.ablation_table(loaded_record)
    assert rows[0]["test acc. (%)"] == pytest.approx(100 * result.test_accuracy)
    assert rows[0]["parameters"] == compute.n_parameters(config)
    again, again_runs, trained = beyond.load_or_train(small_data, tmp_path, retrain=False)
    assert again == loaded_record and not trained
    assert again_runs["best-seed-0.npz"].history == result.history


def test_stored_runs_of_section_6_load():
    """results/beyond: part one's net (seed 0) and the best net's seeds with their parameters,
    the other runs of part one (stored before the run format) as records."""
    record, runs = beyond.load(beyond.RESULTS_DIR)
    part_one = runs[record["part_one"][0]["run"]]
    assert part_one.config == beyond.PART_ONE
    assert part_one.test_accuracy == record["part_one"][0]["test_accuracy"]
    assert record["ablation"][-1] == record["part_one"][0]
    assert [len(part_one.params[name]) for name in ("W", "gamma")] == [4, 3]
    assert [change for change, _ in beyond.screening()] == [r["change"] for r in record["screening"]]
    for run in record["best"]:
        assert runs[run["run"]].config == beyond.BEST.with_(seed=run["config"]["seed"],
                                                            blas_threads=1)
    assert record["seeds"] == [run["config"]["seed"] for run in record["best"]] == [0, 1]
    # the candidate, then without each ingredient; the best net is one of them
    configs = [beyond.CANDIDATE] + [config for _, config in beyond.leave_one_out()]
    assert [training.config_from_dict(run["config"]) for run in record["leave_one_out"]] == [
        config.with_(blas_threads=1) for config in configs]
    assert record["best"][0]["run"] in [run.get("run") for run in record["leave_one_out"]]


def test_presets_are_valid_configs():
    assert beyond.PRESETS["assignment"] == Config()
    best = beyond.PRESETS["best"]
    assert asdict(best)["schedule"] == "one_cycle" and best.zca and best.dropout > 0
    assert best.label_smoothing > 0 and best in [c for _, c in beyond.leave_one_out()]


def test_the_best_net_keeps_to_the_budget():
    """Part one's net: 6 FLOP per weight per sample seen, 180 epochs of 175 batches of 256; the
    best net: at most twice that."""
    weights = 3072 * 1024 + 1024 * 512 + 512 * 256 + 256 * 10
    assert compute.n_weights(beyond.PART_ONE) == weights
    assert beyond.BUDGET_FLOP == 2 * 6 * weights * 180 * 175 * 256
    for config in (beyond.BEST, beyond.CANDIDATE):
        assert compute.training_flop(config, 360 * 175) <= beyond.BUDGET_FLOP


def test_leave_one_out_takes_away_each_ingredient():
    """The ingredients are every field in which the candidate differs from part one's net, and
    each leave-one-out run differs from the candidate in exactly one of them."""
    differ = {f.name for f in fields(Config)
              if getattr(beyond.CANDIDATE, f.name) != getattr(beyond.PART_ONE, f.name)}
    assert differ == set(beyond.INGREDIENTS)
    runs = beyond.leave_one_out()
    assert len(runs) == len(beyond.INGREDIENTS)
    for field, (name, config) in zip(beyond.INGREDIENTS, runs):
        changed = {f.name for f in fields(Config)
                   if getattr(config, f.name) != getattr(beyond.CANDIDATE, f.name)}
        assert changed == {field} and getattr(config, field) == getattr(beyond.PART_ONE, field)
        assert name


def test_run_all_trains_every_run_of_section_6(small_data, tmp_path):
    tiny = beyond.PART_ONE.with_(hidden=(32, 16), epochs=2, zca=False, bn_order="after",
                                 blas_threads=1)
    candidate = tiny.with_(epochs=4, mixup=0.2, label_smoothing=0.1)
    best = candidate.with_(label_smoothing=0.0)
    kwargs = dict(seeds=(0, 1), epochs=1, part_one=tiny, candidate=candidate, best=best,
                  screening_epochs=(1, 3), checkpoints=tmp_path / "c")
    record, runs = beyond.run_all(small_data, **kwargs)
    # each configuration is trained once, however many lists it is in: e.g. the best net's seed 0
    # is the leave-one-out without label smoothing
    entries = [run for key in beyond.RUN_LISTS for run in record[key]]
    by_config = {}
    for run in entries:
        by_config.setdefault(json.dumps(run["config"], sort_keys=True), set()).add(run["run"])
    assert all(len(names) == 1 for names in by_config.values())
    assert len(runs) == len(by_config) and {r["run"] for r in entries} == set(runs)
    assert {f"best-seed-{s}.npz" for s in (0, 1)} | {"candidate-seed-0.npz"} <= set(runs)
    assert record["leave_one_out"][2] == {**record["best"][0],
                                          "change": "without label smoothing 0.1"}
    # every run kept a checkpoint, which a second call resumes from: finished, the same runs
    assert len(list((tmp_path / "c").iterdir())) == len(runs)
    changes = [run["change"] for run in record["ablation"]]
    assert len(changes) == 7 and "BN after the ReLU" in changes       # no ZCA step: zca is off
    assert [run["config"]["bn_order"] for run in record["alternatives"]] == ["before"]
    assert all(run["code_version"] == code_version() for run in record["best"])
    alt = tables.alternatives_table(record)
    assert alt[0]["test acc. of the step (%)"] == 100 * record["ablation"][-2]["test_accuracy"]
    assert [run["config"]["seed"] for run in record["part_one"]] == [0, 1] == record["seeds"]
    assert record["ablation"][-1] == record["part_one"][0]
    assert all(len(run["matmul_gflops"]) == 2 and min(run["matmul_gflops"]) > 0
               for key in beyond.RUN_LISTS for run in record[key])
    assert runs["best-seed-0.npz"].test_accuracy == record["best"][0]["test_accuracy"]
    assert record["best"][0]["test_accuracy"] != record["best"][1]["test_accuracy"]
    assert [r["config"]["mixup"] for r in record["leave_one_out"]] == [0.2, 0, 0.2, 0.2]
    assert [r["epochs"] for r in record["leave_one_out"]] == [4, 4, 4, 2]
    assert [r["epochs"] for r in record["screening"]] == [1, 1, 1, 1, 3, 3]
    rows = tables.ablation_table(record)
    assert [r["epochs"] for r in rows] == [20, 20, 1, 1, 1, 1, 2]   # cyclic: 2 cycles of 10
    accs = [100 * r["test_accuracy"] for r in record["part_one"]]
    assert rows[-1]["mean over seeds (%)"] == pytest.approx(sum(accs) / 2)
    assert rows[-1]["test acc. (%)"] == pytest.approx(accs[0]) and "2 seeds" in rows[-1]["change"]
    loo = tables.leave_one_out_table(record)
    assert [r["run"] for r in loo][:4] == [r["change"] for r in record["leave_one_out"]]
    assert loo[4]["test acc. (%)"] == pytest.approx(
        50 * sum(r["test_accuracy"] for r in record["best"]))
    assert loo[3]["compute (TFLOP)"] == pytest.approx(
        compute.training_flop(candidate, runs["leave-one-out-2.npz"].steps) / 1e12)
    assert loo[0]["to the candidate (points)"] == 0
    beyond.save(tmp_path / "stored", record, runs)
    assert beyond.load(tmp_path / "stored")[0] == json.loads(json.dumps(record))
    again, again_runs = beyond.run_all(small_data, **kwargs)
    for name, run in runs.items():
        assert again_runs[name].history == run.history, name
        assert again_runs[name].resumed_from_step == run.steps, name


def test_gradient_checks_of_the_new_options(cifar10):
    rows = beyond.gradient_checks(cifar10)
    assert [(r["BN"], r["dropout"] != "none", r["targets"] != "one-hot") for r in rows] == [
        (bn, drop, soft) for bn in ("before the ReLU", "after the ReLU")
        for drop in (False, True) for soft in (False, True)]
    assert all(r["worst relative error"] < 1e-6 for r in rows), rows


def test_step_gflop_of_a_small_net():
    config = Config(hidden=(5,), n_batch=2)
    # products: 3072 x 5 (forward, dW) and 5 x 10 (forward, dW, dX), 2 FLOP each per sample
    assert compute.step_gflop(config) == pytest.approx(2 * 2 * (2 * 3072 * 5 + 3 * 5 * 10) / 1e9)
