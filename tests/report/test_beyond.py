"""Section 6: the ablation path, the alternatives, the screening and the leave-one-out, the
budget; a record of runs stored and loaded back whole (tiny runs of the synthetic data), the
stored runs of results/beyond, and run_all training every run of the section (slow)."""
import json
from dataclasses import asdict, fields

import numpy as np
import pytest

from assignment3 import env
from assignment3.config import Config, config_from_dict
from assignment3.report import beyond, compute, plans
from assignment3.report import beyond_tables as tables
from assignment3.report.presets import BEST, CANDIDATE, PART_ONE, PART_TWO_BEST
from assignment3.store.provenance import code_version, machine
from assignment3.store.runs import read_run, reevaluate
from assignment3.training import train


def changed_fields(a, b):
    return {f.name for f in fields(Config) if getattr(a, f.name) != getattr(b, f.name)}


def test_each_ablation_step_adds_one_change():
    path = plans.ablation_path(epochs=20)
    assert len(path) == 7                   # PART_ONE keeps BN before the ReLU: no such step
    assert path[0][1] == Config() and path[-1][1] == PART_ONE
    for (_, before), (change, after) in zip(path[1:-1], path[2:-1]):
        assert changed_fields(before, after), change
        assert after.epochs == 20 or after.schedule == "cyclic"
    # the last step only trains longer
    last, best = path[-2][1], path[-1][1]
    changed = {k: v for k, v in asdict(best).items() if v != asdict(last)[k]}
    assert changed == {"epochs": best.epochs}
    other = plans.ablation_path(epochs=5, best=PART_ONE.with_(bn_order="after"))
    assert len(other) == 8 and other[-2][0] == "BN after the ReLU"   # a step for the BN order
    assert other[-2][1].epochs == 5


def test_alternative_is_the_other_bn_placement():
    (change, config), = plans.alternatives(epochs=20)
    last = plans.ablation_path(epochs=20)[-2][1]
    assert change == "BN after the ReLU instead of before"
    assert changed_fields(last, config) == {"bn_order"} and config.bn_order == "after"


def test_leave_one_out_takes_away_each_ingredient():
    """The ingredients are every field in which the candidate differs from part one's net, and
    each leave-one-out run differs from the candidate in exactly one of them."""
    assert changed_fields(CANDIDATE, PART_ONE) == set(plans.INGREDIENTS)
    runs = plans.leave_one_out()
    assert len(runs) == len(plans.INGREDIENTS)
    for field, (name, config) in zip(plans.INGREDIENTS, runs):
        assert changed_fields(config, CANDIDATE) == {field}
        assert getattr(config, field) == getattr(PART_ONE, field) and name
    assert PART_TWO_BEST in [config for _, config in runs]  # part two's best is one of them


def test_screening_tries_each_regulariser_on_part_ones_net():
    runs = plans.screening(lengths=(3, 6))
    assert [change for change, _ in runs] == [
        "part one's net, 3 epochs", f"with label smoothing {CANDIDATE.label_smoothing:g}, 3 epochs",
        f"with MixUp {CANDIDATE.mixup:g}, 3 epochs", "with both, 3 epochs",
        "part one's net, 6 epochs", "with both, 6 epochs"]
    assert [changed_fields(PART_ONE, config) - {"epochs"} for _, config in runs] == [
        set(), {"label_smoothing"}, {"mixup"}, {"label_smoothing", "mixup"}, set(),
        {"label_smoothing", "mixup"}]
    assert [config.epochs for _, config in runs] == [3, 3, 3, 3, 6, 6]


def test_the_best_net_keeps_to_the_budget():
    """Part one's net: 6 FLOP per weight per sample seen, 180 epochs of 175 batches of 256; part
    two's best net and the best net: at most twice that, the best net for as many epochs as
    that buys."""
    weights = 3072 * 1024 + 1024 * 512 + 512 * 256 + 256 * 10
    assert compute.n_weights(PART_ONE) == weights
    assert plans.BUDGET_FLOP == 2 * 6 * weights * 180 * 175 * 256
    for config in (PART_TWO_BEST, CANDIDATE, BEST):
        assert compute.training_flop(config, config.epochs * 175) <= plans.BUDGET_FLOP
    assert BEST.epochs == plans.epochs_within(BEST) and BEST.swa == plans.SWA


def test_part_three_changes_one_thing_each_within_the_budget():
    """Each run of part three is part two's best net with one change (and SWA, which trains nothing
    more): crops padded by 4, a first layer half as wide or a linear bottleneck before it, two
    hidden layers as wide as the first or each later one twice; all but the crops for the most
    epochs the budget buys. The shallower and wider net is the best net."""
    (_, again_change, again), (_, crops_change, crops), (_, narrow_change, narrow), \
        (_, neck_change, neck), (_, shallow_change, shallow), (_, deep_change, deep), \
        (second_name, second_change, second) = plans.part_three()
    assert changed_fields(PART_TWO_BEST, again) == {"swa"}
    assert again_change == "part two's best net, trained again"
    assert changed_fields(PART_TWO_BEST, crops) == {"max_shift", "swa"} and crops.max_shift == 4
    assert changed_fields(PART_TWO_BEST, narrow) == {"hidden", "epochs", "swa"}
    assert narrow.hidden == (512, 512, 256) and crops.swa == narrow.swa == plans.SWA
    assert "padding 4 instead of 3" in crops_change and "512 wide, 695 epochs" in narrow_change
    assert changed_fields(PART_TWO_BEST, neck) == {"hidden", "linear", "epochs", "swa"}
    assert neck.hidden == (256, 1024, 512, 256) and neck.linear == 1 and neck.swa == plans.SWA
    assert "bottleneck of 256 units" in neck_change and "802 epochs" in neck_change
    assert changed_fields(PART_TWO_BEST, shallow) == changed_fields(PART_TWO_BEST, deep) == {
        "hidden", "epochs", "swa"}
    assert shallow == BEST
    assert shallow.hidden == (1024, 1024) and deep.hidden == (1024, 512, 512, 256, 256)
    assert "hidden layers 1024-1024, 325 epochs" in shallow_change
    assert "hidden layers 1024-512-512-256-256, 331 epochs" in deep_change
    assert second == shallow.with_(seed=1) and second_name == "shallow-seed-1.npz"
    assert second_change == shallow_change + ", seed 1" and shallow.seed == 0
    for config in (again, crops, narrow, neck, shallow, deep):
        batches = 45_000 // config.n_batch
        assert compute.training_flop(config, config.epochs * batches) <= plans.BUDGET_FLOP
    for config in (narrow, neck, shallow, deep):
        assert compute.training_flop(config, (config.epochs + 1) * 175) > plans.BUDGET_FLOP
    assert plans.epochs_within(PART_TWO_BEST) == 360
    assert plans.budget(PART_ONE) == plans.BUDGET_FLOP


def test_a_run_trained_apart_joins_the_stored_record(synthetic, tmp_path):
    """A run trained on the command line and saved (with SWA) is added to a stored record: its
    file with the matmul rates and how it was made as notes, its entry at the end of its list;
    adding it again replaces it; the record's other runs stay as they were."""
    from assignment3.store.runs import save_run
    config = Config(hidden=(20,), schedule="one_cycle", epochs=2, n_batch=50, swa=0.5)
    base = train(synthetic, config.with_(swa=0.0))
    base_entry = {"run": "part-two-best-seed-0.npz",
                  **beyond.run_record("part two's best", base, "v0", synthetic)}
    beyond.save(tmp_path, beyond.make_record([], [], [base_entry], part_two_best=[base_entry]),
                {"part-two-best-seed-0.npz": base})
    apart = train(synthetic, config)
    save_run(tmp_path / "trained.npz", apart, version="v1")
    entry, result = beyond.trained_apart(synthetic, tmp_path / "trained.npz", "with SWA",
                                         [90.0, 95.0], "on the command line")
    assert entry["run"] == "trained.npz" and entry["code_version"] == "v1"
    beyond.add_run(tmp_path, "part_three", {**entry, "run": "swa-seed-0.npz"}, result)
    beyond.add_run(tmp_path, "part_three", {**entry, "run": "swa-seed-0.npz"}, result)
    record, runs = beyond.load(tmp_path)
    assert [r["run"] for r in record["part_three"]] == ["swa-seed-0.npz"]
    third = record["part_three"][0]
    assert third["matmul_gflops"] == [90.0, 95.0] and third["how"] == "on the command line"
    assert third["swa_test_accuracy"] == apart.averaged.test_accuracy
    assert runs["swa-seed-0.npz"].averaged.val_accuracy == apart.averaged.val_accuracy
    assert record["part_two_best"][0]["test_accuracy"] == base.test_accuracy
    rows = tables.part_three_table(record)
    assert [r["run"] for r in rows] == ["part two's best net", "with SWA"]
    assert rows[0]["test acc., SWA (%)"] == "" and rows[0]["to part two's best (points)"] == 0
    assert rows[1]["test acc., SWA (%)"] == pytest.approx(100 * apart.averaged.test_accuracy)
    assert rows[1]["compute (TFLOP)"] == pytest.approx(
        compute.training_flop(config, apart.steps) / 1e12)


def test_make_record_names_the_seeds_and_the_machine():
    runs = [{"config": {"seed": s}, "change": f"run {s}"} for s in (3, 4)]
    record = beyond.make_record([{"change": "a step"}], [], runs)
    assert record["seeds"] == [3, 4] and record["machine"] == machine()
    assert record["ablation"] == [{"change": "a step"}, runs[0]]     # closed by part one's net
    assert record["screening"] == record["part_two_best"] == record["leave_one_out"] == []
    assert record["part_three"] == record["best"] == []
    assert beyond.make_record([], [], runs, best=runs[1:])["seeds"] == [4]


def test_save_and_load_give_back_the_runs(synthetic, tmp_path):
    """A record with a run stored with its parameters (in its run file) and one stored before
    the run format (its record only) comes back whole."""
    config = Config(hidden=(30, 20), bn_order="after", schedule="one_cycle", epochs=2, n_batch=50)
    result = train(synthetic, config)
    best = {"run": "best-seed-0.npz",
            **beyond.run_record("a change", result, version="test", data=synthetic)}
    older = beyond.run_record("an older run", train(synthetic, config.with_(seed=1)), "old",
                              synthetic)
    record = beyond.make_record([best], [older], [best, older], best=[best])
    beyond.save(tmp_path, record, {"best-seed-0.npz": result})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-seed-0.npz", beyond.RECORD]
    stored = json.loads((tmp_path / beyond.RECORD).read_text())
    file_entry = {"run": "best-seed-0.npz", "change": "a change"}
    assert stored["part_one"] == [file_entry, json.loads(json.dumps(older))]
    assert stored["best"] == [file_entry]
    _, meta = read_run(tmp_path / "best-seed-0.npz")
    assert meta["code_version"] == "test" and meta["notes"]["minutes"] == best["minutes"]
    loaded_record, runs = beyond.load(tmp_path)
    assert loaded_record == json.loads(json.dumps(record))
    loaded = runs["best-seed-0.npz"]
    assert loaded.config == config and loaded.history == result.history
    for name in result.params:
        assert all(np.array_equal(a, b) for a, b in zip(result.params[name], loaded.params[name]))
    scores = reevaluate(synthetic, loaded)
    assert (scores["test_accuracy"], scores["val_accuracy"]) == (result.test_accuracy,
                                                                 result.val_accuracy)
    assert record["best"][0]["test_accuracy_flip_averaged"] == \
        scores["test_accuracy_flip_averaged"]
    rows = tables.ablation_table(loaded_record)
    assert rows[0]["test acc. (%)"] == pytest.approx(100 * result.test_accuracy)
    assert rows[0]["parameters"] == compute.n_parameters(config)
    again, again_runs, trained = beyond.load_or_train(synthetic, tmp_path, retrain=False)
    assert again == loaded_record and not trained
    assert again_runs["best-seed-0.npz"].history == result.history


def test_retrain_variable_must_be_0_or_1(monkeypatch, tmp_path):
    monkeypatch.setenv(env.RETRAIN, "yes")
    with pytest.raises(env.EnvironmentValueError, match="ASSIGNMENT3_RETRAIN='yes': expected "
                                                        "one of 0, 1"):
        beyond.load_or_train(None, tmp_path)
    assert list(tmp_path.iterdir()) == []                     # nothing trained or written


def test_stored_runs_of_section_6_load():
    """results/beyond: part one's net (seed 0), part two's best net's seeds, part three's runs
    and the best net's seeds with their parameters, the other runs of part one (stored before
    the run format) as records. The best net's runs are part three's runs of its
    configuration, under the best net's file names."""
    record, runs = beyond.load(beyond.RESULTS_DIR)
    part_one = runs[record["part_one"][0]["run"]]
    assert part_one.config == PART_ONE
    assert part_one.test_accuracy == record["part_one"][0]["test_accuracy"]
    assert record["ablation"][-1] == record["part_one"][0]
    assert [len(part_one.params[name]) for name in ("W", "gamma")] == [4, 3]
    assert [change for change, _ in plans.screening()] == [r["change"]
                                                            for r in record["screening"]]
    for key, config, seeds in (("part_two_best", PART_TWO_BEST, (0, 1)),
                               ("best", BEST, (0, 1, 2, 3))):
        assert [run["run"] for run in record[key]] == [
            f"{key.replace('_', '-')}-seed-{s}.npz" for s in seeds]
        for run in record[key]:
            assert runs[run["run"]].config == config.with_(seed=run["config"]["seed"],
                                                           blas_threads=1)
    assert record["seeds"] == [run["config"]["seed"] for run in record["best"]] == [0, 1, 2, 3]
    # part four's runs are those its functions plan, by file name
    for key, planned in (("part_four_screening", plans.adamw_screening()),
                         ("part_four", plans.part_four())):
        configs = {name: (change, config.with_(blas_threads=1))
                   for name, change, config in planned}
        for run in record[key]:
            assert (run["change"], runs[run["run"]].config) == configs[run["run"]]
    # the candidate, then without each ingredient; part two's best net is one of them
    configs = [CANDIDATE] + [config for _, config in plans.leave_one_out()]
    assert [config_from_dict(run["config"]) for run in record["leave_one_out"]] == [
        config.with_(blas_threads=1) for config in configs]
    assert (record["part_two_best"][0]["run"]
            in [run.get("run") for run in record["leave_one_out"]])
    # part three: runs of its configurations (one BLAS thread each) with their changes, with
    # averaged weights; the best net's first two seeds are two of them
    planned = {(change, config.with_(blas_threads=1)) for _, change, config in plans.part_three()}
    assert {(run["change"], runs[run["run"]].config) for run in record["part_three"]} == planned
    for run in record["part_three"]:
        assert runs[run["run"]].averaged.test_accuracy == run["swa_test_accuracy"]
        assert run["training_flop"] <= plans.BUDGET_FLOP and len(run["matmul_gflops"]) == 2
    assert {run["run"] for run in record["best"][:2]} < {run["run"] for run in record["part_three"]}


@pytest.mark.slow
def test_run_all_trains_every_run_of_section_6(synthetic, tmp_path):
    tiny = PART_ONE.with_(hidden=(32, 16), epochs=2, zca=False, bn_order="after",
                          blas_threads=1)
    candidate = tiny.with_(epochs=4, mixup=0.2, label_smoothing=0.1)
    two_best = candidate.with_(label_smoothing=0.0)
    shallow = [c for name, _, c in plans.part_three(two_best, budget=plans.budget(tiny))
               if name == "shallow-seed-0.npz"][0]
    kwargs = dict(seeds=(0, 1), epochs=1, part_one=tiny, candidate=candidate,
                  part_two_best=two_best, best=shallow, screening_epochs=(1, 3),
                  checkpoints=tmp_path / "c", best_seeds=(0, 1, 2), adamw_epochs=1)
    record, runs = beyond.run_all(synthetic, **kwargs)
    # each configuration is trained once, however many lists it is in: e.g. part two's best
    # net's seed 0 is the leave-one-out without label smoothing, the best net's seeds are part
    # three's shallower net's
    entries = [run for key in beyond.RUN_LISTS for run in record[key]]
    by_config = {}
    for run in entries:
        by_config.setdefault(json.dumps(run["config"], sort_keys=True), set()).add(run["run"])
    assert all(len(names) == 1 for names in by_config.values())
    assert len(runs) == len(by_config) and {r["run"] for r in entries} == set(runs)
    assert {f"{best}-seed-{s}.npz" for s in (0, 1) for best in ("best", "part-two-best")} | {
        "candidate-seed-0.npz"} <= set(runs)
    assert "shallow-seed-0.npz" not in runs and "shallow-seed-1.npz" not in runs
    assert [r["run"] for r in record["best"]] == [f"best-seed-{s}.npz" for s in (0, 1, 2)]
    planned = plans.adamw_screening(shallow, 1) + plans.part_four(shallow)
    assert [(r["change"], runs[r["run"]].config) for r in record["part_four_screening"]
            + record["part_four"]] == [(change, config) for _, change, config in planned]
    assert [r["config"]["optimizer"] for r in record["part_four_screening"]] == [
        "sgd"] + ["adamw"] * len(plans.ADAMW_GRID)
    assert record["leave_one_out"][2] == {**record["part_two_best"][0],
                                          "change": "without label smoothing 0.1"}
    assert [r["run"] for r in record["part_three"] if "shallower" in r["change"]] == [
        "best-seed-0.npz", "best-seed-1.npz"]
    # every run kept a checkpoint, which a second call resumes from: finished, the same runs
    assert len(list((tmp_path / "c").iterdir())) == len(runs)
    changes = [run["change"] for run in record["ablation"]]
    assert len(changes) == 7 and "BN after the ReLU" in changes       # no ZCA step: zca is off
    assert [run["config"]["bn_order"] for run in record["alternatives"]] == ["before"]
    assert all(run["code_version"] == code_version() for run in record["best"])
    alt = tables.alternatives_table(record)
    assert alt[0]["test acc. of the step (%)"] == 100 * record["ablation"][-2]["test_accuracy"]
    assert [run["config"]["seed"] for run in record["part_one"]] == [0, 1]
    assert record["seeds"] == [0, 1, 2]                                 # the best net's
    assert record["ablation"][-1] == record["part_one"][0]
    assert all(len(run["matmul_gflops"]) == 2 and min(run["matmul_gflops"]) > 0
               for key in beyond.RUN_LISTS for run in record[key])
    assert runs["best-seed-0.npz"].test_accuracy == record["best"][0]["test_accuracy"]
    assert runs["best-seed-0.npz"].history != runs["best-seed-1.npz"].history
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
        50 * sum(r["test_accuracy"] for r in record["part_two_best"]))
    assert loo[3]["compute (TFLOP)"] == pytest.approx(
        compute.training_flop(candidate, runs["leave-one-out-2.npz"].steps) / 1e12)
    assert loo[0]["to the candidate (points)"] == 0
    third = tables.part_three_table(record)
    assert [r["run"] for r in third][1:] == [change for _, change, _ in plans.part_three(
        two_best, budget=plans.budget(tiny))]
    assert all(isinstance(r["test acc., SWA (%)"], float) for r in third[1:])
    assert all(run["training_flop"] <= plans.budget(tiny) for run in record["part_three"])
    beyond.save(tmp_path / "stored", record, runs)
    assert beyond.load(tmp_path / "stored")[0] == json.loads(json.dumps(record))
    again, again_runs = beyond.run_all(synthetic, **kwargs)
    for name, run in runs.items():
        assert again_runs[name].history == run.history, name
        assert again_runs[name].resumed_from_step == run.steps, name
