"""Figures for the report: learning curves by step and by compute, the lambda search."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from assignment3.config import Config  # noqa: E402
from assignment3.report.plots import plot_by_compute, plot_curves, plot_lambda_search  # noqa: E402
from assignment3.scale.search import coarse_to_fine  # noqa: E402
from assignment3.training import train  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def run(synthetic):
    return train(synthetic, Config(hidden=(8,), n_batch=50, n_s=20, cycles=1, evals_per_cycle=4))


def test_plot_by_compute_puts_each_evaluation_at_its_compute(run, synthetic):
    ax = plot_by_compute({"a run": {**run.summary(), "history": run.history}}, budget=2e9)
    x, y = ax.lines[0].get_data()
    weights = synthetic.train.X.shape[0] * 8 + 8 * 10
    assert list(x) == pytest.approx([6 * weights * 50 * t / 1e12 for t in run.history["step"]])
    assert list(y) == pytest.approx([100 * a for a in run.history["acc_val"]])
    assert ax.lines[1].get_xdata()[0] == pytest.approx(2e-3)            # the budget line
    assert ax.get_xlabel() == "training compute (TFLOP)"
    assert ax.get_ylabel() == "validation accuracy (%)"
    loss = plot_by_compute({"a run": {**run.summary(), "history": run.history}}, "loss")
    assert list(loss.lines[0].get_ydata()) == run.history["loss_val"] and len(loss.lines) == 1


@pytest.mark.parametrize("quantity", ["cost", "loss", "acc"])
def test_plot_curves_draws_training_and_validation_per_run(run, quantity):
    ax = plot_curves({"first": run, "second": run}, quantity, title="curves")
    assert [line.get_label() for line in ax.lines] == [
        "first, training", "first, validation", "second, training", "second, validation"]
    train_line, val_line = ax.lines[:2]
    assert list(train_line.get_xdata()) == run.history["step"]
    assert list(train_line.get_ydata()) == run.history[f"{quantity}_train"]
    assert list(val_line.get_ydata()) == run.history[f"{quantity}_val"]
    assert val_line.get_linestyle() == "--" and ax.get_title() == "curves"


def test_plot_curves_refuses_an_unknown_quantity(run):
    with pytest.raises(ValueError, match=r"quantity must be one of \['acc', 'cost', 'loss'\], "
                                         "not 'accuracy'"):
        plot_curves({"a run": run}, "accuracy")


def test_plot_lambda_search_marks_the_best(synthetic):
    search = coarse_to_fine(synthetic, Config(hidden=(8,), n_batch=50, n_s=10, cycles=1),
                            n_coarse=3, n_fine=2, n_jobs=1)
    ax = plot_lambda_search(search)
    coarse, fine, best = ax.lines
    assert list(coarse.get_xdata()) == sorted(t["lam"] for t in search["coarse"])
    assert list(fine.get_ydata()) == [100 * t["val_accuracy"]
                                      for t in sorted(search["fine"], key=lambda t: t["lam"])]
    assert list(best.get_xdata()) == [search["best"]["lam"]]
    assert ax.get_xscale() == "log" and best.get_label().startswith("best: lam = ")


def test_lambda_plot_leaves_out_diverged_trials_and_marks_their_lam():
    search = {"coarse": [{"lam": 1e-3, "val_accuracy": 0.30, "diverged": None},
                         {"lam": 1.0, "val_accuracy": 0.31, "diverged": None},
                         {"lam": 1e3, "val_accuracy": None, "diverged": {"step": 3, "eta": 0.1}}],
              "fine": [], "best": {"lam": 1.0, "val_accuracy": 0.31}}
    ax = plot_lambda_search(search)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["coarse search"].get_xdata()) == [1e-3, 1.0]
    assert list(lines["diverged"].get_xdata()) == [1e3]
    plt.close(ax.figure)
