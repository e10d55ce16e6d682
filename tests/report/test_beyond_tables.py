"""What section 6 shows of its stored runs: the provenance lines and the tables, on the record
of results/beyond (read only) and on small records built here."""
import numpy as np
import pytest

from assignment3.report import beyond, plans
from assignment3.report import beyond_tables as tables
from assignment3.store.provenance import describe, short_version


@pytest.fixture(scope="module")
def record():
    return beyond.load(beyond.RESULTS_DIR)[0]


def test_provenance_names_runs_code_machines_and_rates(record):
    lines = tables.provenance(record).splitlines()
    parts = [(title, keys) for title, keys in (
        ("Part one", ("ablation", "alternatives", "part_one")), ("Screening", ("screening",)),
        ("Part two", ("part_two_best", "leave_one_out")), ("Part three", ("part_three", "best")),
        ("Part four", ("part_four_screening", "part_four")))
        if any(record.get(key) for key in keys)]                  # a part without runs: no line
    assert len(lines) == len(parts) >= 4
    for line, (title, keys) in zip(lines, parts):
        runs = list({run.get("run") or id(run): run              # a run in two lists: once
                     for key in keys for run in record[key]}.values())
        assert line.startswith(f"- {title}: {len(runs)} runs, code version ")
        for run in runs:
            version = run["code_version"]
            assert (f"`{short_version(version)}`" if short_version(version) != version
                    else version) in line
            assert describe(run.get("machine") or record["machine"]) in line
        rates = [r for run in runs for r in run["matmul_gflops"]]
        assert f"{min(rates):.0f} to {max(rates):.0f} GFLOP/s" in line


def test_ablation_table_closes_with_the_mean_over_seeds(record):
    rows = tables.ablation_table(record)
    assert [r["change"] for r in rows[:-1]] == [r["change"] for r in record["ablation"][:-1]]
    assert [r["test acc. (%)"] for r in rows] == [100 * r["test_accuracy"]
                                                  for r in record["ablation"]]
    accs = [100 * r["test_accuracy"] for r in record["part_one"]]
    assert rows[-1]["mean over seeds (%)"] == pytest.approx(np.mean(accs))
    assert rows[-1]["flip-averaged, mean (%)"] == pytest.approx(
        np.mean([100 * r["test_accuracy_flip_averaged"] for r in record["part_one"]]))
    assert rows[-1]["change"].endswith(f"(2 seeds: {accs[0]:.2f}%, {accs[1]:.2f}%)")
    assert all(r["mean over seeds (%)"] == "" for r in rows[:-1])


def test_alternatives_table_compares_with_the_last_short_step(record):
    rows = tables.alternatives_table(record)
    step = record["ablation"][-2]
    assert [r["change"] for r in rows] == [r["change"] for r in record["alternatives"]]
    assert all(r["to the step"] == step["change"] for r in rows)
    assert rows[0]["test acc. of the step (%)"] == 100 * step["test_accuracy"]


def test_screening_table_compares_with_part_ones_net_of_the_same_length(record):
    rows = tables.screening_table(record)
    assert [r["run"] for r in rows] == [change for change, _ in plans.screening()]
    base = {}
    for row in rows:
        base.setdefault(row["epochs"], row["test acc. (%)"])
        assert row["to part one's net (points)"] == pytest.approx(
            row["test acc. (%)"] - base[row["epochs"]])
    assert [r["to part one's net (points)"] for r in rows].count(0) >= 2     # one per length


def test_leave_one_out_table_compares_with_the_candidate(record):
    rows = tables.leave_one_out_table(record)
    loo = record["leave_one_out"]
    assert [r["run"] for r in rows[:len(loo)]] == [r["change"] for r in loo]
    assert rows[0]["to the candidate (points)"] == 0
    best = rows[len(loo)]
    assert best["run"] == "part two's best net" and best["seeds"] == "0, 1"
    assert best["test acc. (%)"] == pytest.approx(np.mean([100 * r["test_accuracy"]
                                                           for r in record["part_two_best"]]))
    assert best["to the candidate (points)"] == pytest.approx(
        best["test acc. (%)"] - 100 * loo[0]["test_accuracy"])
    assert rows[-1]["run"].startswith("part one's net (180 epochs")
    assert all(r["compute (TFLOP)"] <= plans.BUDGET_FLOP / 1e12 for r in rows)


def test_published_table_ends_with_ours(record):
    """Part one's net, part two's best net, and the best net scored by its averaged weights."""
    rows = tables.published_table(record)
    assert len(rows) == len(tables.PUBLISHED) + 3
    ours = rows[-3:]
    assert [r["source"] for r in ours] == [f"this report, part {p}" for p in ("one", "two",
                                                                               "three")]
    key_and_score = (("part_one", "test_accuracy"), ("part_two_best", "test_accuracy"),
                     ("best", "swa_test_accuracy"))
    for row, (key, score) in zip(ours, key_and_score):
        assert row["test acc. (%)"] == round(float(np.mean(
            [100 * r[score] for r in record[key]])), 2)
        assert row["training"].endswith(
            f"{100 * record[key][0]['training_flop'] / plans.BUDGET_FLOP:.0f}% of the budget")
    assert [r["net"] for r in ours] == ["3072-1024-512-256-10, BN, dropout"] * 2 + [
        "3072-1024-1024-10, BN, dropout, averaged weights"]


def test_accuracy_is_that_of_the_averaged_weights_if_a_run_has_them():
    run = {"test_accuracy": 0.7, "val_accuracy": 0.71}
    assert tables.accuracy(run, "test") == 0.7 and tables.accuracy(run, "val") == 0.71
    averaged = {**run, "swa_test_accuracy": 0.72, "swa_val_accuracy": 0.73}
    assert tables.accuracy(averaged, "test") == 0.72 and tables.accuracy(averaged, "val") == 0.73


def test_leave_one_out_table_of_a_record_without_rates():
    """Runs with no matmul rates recorded: NaN, not an error."""
    def run(change, acc, seed=0):
        return {"change": change, "config": {"seed": seed}, "test_accuracy": acc,
                "val_accuracy": acc, "test_accuracy_flip_averaged": acc,
                "training_flop": 1e12, "minutes": 1.0, "epochs": 180}
    record = {"leave_one_out": [run("the candidate", 0.7), run("without x", 0.65)],
              "part_two_best": [run("best", 0.72), run("best", 0.74, 1)],
              "part_one": [run("part one", 0.6)]}
    rows = tables.leave_one_out_table(record)
    assert [r["to the candidate (points)"] for r in rows] == pytest.approx([0, -5, 3, -10])
    assert all(np.isnan(r["matmul GFLOP/s"]) for r in rows)


def test_part_four_table_compares_with_the_mean_of_the_best_nets_seeds():
    def run(change, acc, averaged, seed=0):
        return {"change": change, "config": {"seed": seed}, "test_accuracy": acc,
                "val_accuracy": acc, "test_accuracy_flip_averaged": acc,
                "swa_test_accuracy": averaged, "swa_val_accuracy": averaged,
                "training_flop": 1e12, "minutes": 1.0, "matmul_gflops": [100.0, 110.0]}
    record = {"best": [run("the best net", 0.74, 0.75), run("the best net", 0.76, 0.77, 1)],
              "part_four": [run("a change", 0.75, 0.78), run("another", 0.7, 0.7),
                            run("a change, seed 1", 0.75, 0.80, 1)]}
    record["part_four"][1]["config"]["other"] = 1
    rows = tables.part_four_table(record)
    assert [(r["run"], r["seeds"]) for r in rows] == [
        ("the best net", "0, 1"), ("a change", "0, 1"), ("another", "0")]   # seeds: one row
    assert [r["test acc., SWA (%)"] for r in rows] == pytest.approx([76, 79, 70])
    assert [r["SWA to the best net (points)"] for r in rows] == pytest.approx([0, 3, -6])
    assert [r["to the best net (points)"] for r in rows] == pytest.approx([0, 0, -5])
    assert rows[0]["matmul GFLOP/s"] == 105.0


def test_mean_interval_is_students_t():
    """The 95% interval of a mean of 4 runs, written out: t(0.975, 3 degrees) = 3.182."""
    mean, sd, lo, hi = tables.mean_interval([1.0, 2.0, 3.0, 4.0])
    assert (mean, sd) == pytest.approx((2.5, np.sqrt(5 / 3)))
    assert (lo, hi) == pytest.approx((2.5 - 3.182 * sd / 2, 2.5 + 3.182 * sd / 2))
    assert tables.mean_interval([1.0, 3.0])[2:] == pytest.approx((2 - 12.706, 2 + 12.706))
