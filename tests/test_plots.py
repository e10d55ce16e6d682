"""Figures and Markdown tables for the report."""
import matplotlib.pyplot as plt
import pytest

from assignment3.plots import markdown_table, plot_by_compute
from assignment3.training import Config, train


def test_markdown_table_formats_and_sizes_columns():
    rows = [{"setting": "a long setting name", "acc (%)": 53.137}, {"setting": "b", "acc (%)": ""}]
    text = markdown_table(rows, formats={"acc (%)": ".2f"})
    assert text.splitlines() == ["| setting | acc (%) |",
                                 "|-----------------------|------------|",
                                 "| a long setting name | 53.14 |",
                                 "| b |  |"]


def test_plot_by_compute_puts_each_evaluation_at_its_compute(small_data):
    config = Config(hidden=(8,), n_batch=50, n_s=20, cycles=1, evals_per_cycle=4)
    result = train(small_data, config)
    ax = plot_by_compute({"a run": {**result.summary(), "history": result.history}}, budget=2e9)
    x, y = ax.lines[0].get_data()
    weights = small_data.train.X.shape[0] * 8 + 8 * 10
    assert list(x) == pytest.approx([6 * weights * 50 * t / 1e12 for t in result.history["step"]])
    assert list(y) == pytest.approx([100 * a for a in result.history["acc_val"]])
    assert ax.lines[1].get_xdata()[0] == pytest.approx(2e-3)            # the budget line
    plt.close(ax.figure)
