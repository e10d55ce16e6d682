"""The report's experiments, each on the synthetic data with tiny runs: the gradient check and
its table, section 6's gradient check of its new options, BN against no BN with the table of
seeds, the lambda search with its final run, the sensitivity to the initial sigma."""
import pytest

from assignment3.config import Config
from assignment3.report.experiments import (
    NINE_LAYER,
    THREE_LAYER,
    accuracy_stats,
    bn_comparison,
    bn_table,
    gradient_check,
    gradient_check_table,
    gradient_checks,
    init_sensitivity,
    lambda_search,
)
from assignment3.training import Result


def test_gradient_check_of_every_layer_with_and_without_bn(synthetic):
    rows = gradient_check(synthetic, hidden_lists=((10,), (10, 8)), n=3, d=12)
    # per net: W and b of each layer, with BN also gamma and beta of each hidden layer; 2 lams
    assert len(rows) == 2 * ((2 * 2) + (2 * 2 + 2 * 1) + (2 * 3) + (2 * 3 + 2 * 2))
    assert {(r["hidden layers"], r["BN"], r["lam"]) for r in rows} == {
        (h, bn, lam) for h in (1, 2) for bn in (False, True) for lam in (0.0, 0.005)}
    assert all(r["max_rel_error"] < 1e-6 for r in rows), rows
    table = gradient_check_table(rows)
    assert len(table) == 2 + 4 + 2 + 4                  # (net, BN, param) rows
    for entry in table:                                 # the worst over the lams, per layer
        key = (entry["hidden layers"], entry["BN"], entry["param"])
        layers = {r["layer"] for r in rows
                  if (r["hidden layers"], "yes" if r["BN"] else "no", r["param"]) == key}
        assert {k for k in entry if k.startswith("layer")} == {f"layer {l}" for l in layers}
        for l in layers:
            assert entry[f"layer {l}"] == max(
                r["max_rel_error"] for r in rows if r["layer"] == l and
                (r["hidden layers"], "yes" if r["BN"] else "no", r["param"]) == key)


def test_bn_comparison_trains_each_seed_with_and_without_bn(synthetic):
    runs = bn_comparison(synthetic, (10,), seeds=(0, 1), n_jobs=1, n_s=10, cycles=1, n_batch=50)
    assert list(runs) == ["no BN", "BN"]
    assert [r.config for r in runs["no BN"] + runs["BN"]] == [
        Config(hidden=(10,), batch_norm=bn, seed=s, n_s=10, cycles=1, n_batch=50)
        for bn in (False, True) for s in (0, 1)]
    rows = bn_table(runs, student={"BN": 54.03})
    assert [r["setting"] for r in rows] == ["no BN", "BN"]
    assert rows[1]["student report (%)"] == 54.03 and rows[0]["student report (%)"] == ""
    for row, results in zip(rows, runs.values()):
        assert row["test acc. seed 0 (%)"] == 100 * results[0].test_accuracy
        assert row["mean (%)"] == accuracy_stats(results)["mean"] and row["seeds"] == 2


def result_of(test_accuracy):
    return Result(config=Config(), params={}, stats=[], test_accuracy=test_accuracy)


def test_accuracy_stats_in_percent():
    stats = accuracy_stats([result_of(a) for a in (0.5, 0.52, 0.54)])
    assert stats["mean"] == pytest.approx(52) and stats["std"] == pytest.approx(2)
    assert stats["runs"] == pytest.approx([50, 52, 54])
    assert accuracy_stats([result_of(0.5)]) == {"mean": 50.0, "std": 0.0, "runs": [50.0]}


def test_lambda_search_trains_the_best_lam_longer(synthetic):
    out = lambda_search(synthetic, n_jobs=1, final_cycles=0.5, n_coarse=2, n_fine=0)
    assert len(out["coarse"]) == 2 and out["fine"] == []
    assert out["final"].config == Config(hidden=THREE_LAYER, lam=out["best"]["lam"],
                                         cycles=0.5)
    assert out["coarse"][0]["result"].config.hidden == THREE_LAYER


def test_init_sensitivity_covers_depths_bn_and_sigmas(synthetic):
    runs = init_sensitivity(synthetic, sigmas=(1e-3,), n_jobs=1)
    assert list(runs) == [(3, False, 1e-3), (3, True, 1e-3), (9, False, 1e-3), (9, True, 1e-3)]
    for (depth, bn, sigma), result in runs.items():
        assert result.config == Config(hidden=THREE_LAYER if depth == 3 else NINE_LAYER,
                                       batch_norm=bn, init=sigma)
        assert len(result.params["W"]) == depth


def check_new_options(rows):
    assert [(r["BN"], r["dropout"] != "none", r["targets"] != "one-hot", r["ReLU"])
            for r in rows] == [
        (bn, drop, soft, "every layer") for bn in ("before ReLU", "after ReLU")
        for drop in (False, True) for soft in (False, True)] + [
        (bn, True, True, "not layer 1 (linear)") for bn in ("before ReLU", "after ReLU")]
    assert all(r["worst rel. error"] < 1e-6 for r in rows), rows
    assert all(r["median rel. error"] <= r["worst rel. error"] for r in rows)


def test_gradient_checks_of_the_new_options(synthetic):
    """Small nets (the default 50-30 one takes ~10 s: on the real data below)."""
    check_new_options(gradient_checks(synthetic, hidden=(10, 8)))


@pytest.mark.slow
def test_gradient_checks_of_the_new_options_as_the_report_runs_them(cifar10):
    check_new_options(gradient_checks(cifar10))
