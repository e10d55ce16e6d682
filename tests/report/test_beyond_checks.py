"""Section 6's gradient check of its new options (report.beyond_checks)."""
import pytest

from assignment3.report.beyond_checks import gradient_checks


def check_new_options(rows):
    assert [(r["BN"], r["dropout"] != "none", r["targets"] != "one-hot", r["ReLU"])
            for r in rows] == [
        (bn, drop, soft, "every hidden layer") for bn in ("before the ReLU", "after the ReLU")
        for drop in (False, True) for soft in (False, True)] + [
        (bn, True, True, "not in layer 1 (linear)") for bn in ("before the ReLU", "after the ReLU")]
    assert all(r["worst relative error"] < 1e-6 for r in rows), rows
    assert all(r["median relative error"] <= r["worst relative error"] for r in rows)


def test_gradient_checks_of_the_new_options(synthetic):
    """Small nets (the default 50-30 one takes ~10 s: on the real data below)."""
    check_new_options(gradient_checks(synthetic, hidden=(10, 8)))


@pytest.mark.slow
def test_gradient_checks_of_the_new_options_as_the_report_runs_them(cifar10):
    check_new_options(gradient_checks(cifar10))
