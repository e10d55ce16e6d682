"""The linear bottleneck (`Config.linear`, `--linear N`) in real runs on the synthetic data: the
settings Config accepts and refuses, a short run that is repeatable, differs from the run with
every ReLU, and whose stored scores are those of its network with the first layer linear; a
saved run re-evaluates to the same scores (with and without SWA), a checkpoint resumes only
with its own linear, and the command line passes --linear on."""
import dataclasses
import json
import re

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from assignment3.config import Config, ConfigError, ConfigTypeError, config_dict, config_from_dict
from assignment3.nn.augment import flipped
from assignment3.nn.cost import evaluate
from assignment3.nn.network import Net, forward, softmax
from assignment3.nn.swa import bn_statistics
from assignment3.store.checkpoints import Checkpoint
from assignment3.store.runfile import RunFileError
from assignment3.store.runs import load_run, read_run, reevaluate, save_run
from assignment3.training import train
from tests.conftest import equal_params, equal_stats

#: 300 training images / 50 = 6 steps an epoch, 3 epochs: 18 steps; the first of the two
#: hidden layers without a ReLU.
RUN = Config(hidden=(20, 10), schedule="one_cycle", epochs=3, n_batch=50, linear=1)


def accuracy(params, stats, split, linear, bn_order="before"):
    """Test-mode accuracy on `split`, with one BLAS thread (the run's)."""
    with threadpool_limits(1, user_api="blas"):
        return evaluate(params, split.X, split.y, 0.0, stats, net=Net(bn_order, linear))["accuracy"]


# ---------------------------------------------------------------------------------------------
# Config


@pytest.mark.parametrize("kwargs", [
    {"linear": 0}, {"linear": 1}, {"hidden": (20, 10, 5), "linear": 2},
    {"hidden": (20,), "linear": 0}, {"linear": np.int64(1)}])
def test_config_accepts_linear_below_the_hidden_layers(kwargs):
    config = Config(**kwargs)
    assert config.linear == kwargs["linear"] and type(config.linear) is int
    assert config_from_dict(json.loads(json.dumps(config_dict(config)))) == config


def test_linear_is_off_by_default():
    assert Config().linear == 0
    assert config_from_dict({k: v for k, v in config_dict(RUN).items() if k != "linear"}) == \
        RUN.with_(linear=0)                    # a configuration from before the field


@pytest.mark.parametrize("kwargs, error, message", [
    ({"linear": 2}, ConfigError, r"linear=2 leaves no hidden layer with a ReLU \(2 hidden "
                                 r"layers\): the network would be linear"),
    ({"linear": 5}, ConfigError, r"linear=5 leaves no hidden layer with a ReLU \(2 hidden"),
    ({"hidden": (30,), "linear": 1}, ConfigError, r"linear=1 leaves no hidden layer with a "
                                                  r"ReLU \(1 hidden layer\)"),
    ({"linear": -1}, ConfigError, "linear must be an integer >= 0, got -1"),
    ({"linear": 1.0}, ConfigTypeError, "linear must be an integer >= 0, got 1.0"),
    ({"linear": 1.5}, ConfigTypeError, "linear must be an integer >= 0, got 1.5"),
    ({"linear": True}, ConfigTypeError, "linear must be an integer >= 0, got True"),
    ({"linear": "1"}, ConfigTypeError, "linear must be an integer >= 0, got '1'"),
    ({"linear": None}, ConfigTypeError, "linear must be an integer >= 0, got None"),
])
def test_config_refuses_bad_linear(kwargs, error, message):
    """Out of range: ConfigError (a ValueError); not an int: ConfigTypeError (also a
    TypeError). Each names the setting."""
    with pytest.raises(error, match=message) as err:
        Config(**kwargs)
    assert isinstance(err.value, ValueError)
    assert isinstance(err.value, TypeError) == (error is ConfigTypeError)


def test_with_refuses_fewer_hidden_layers_than_linear():
    """A copy with fewer hidden layers is checked against its linear too."""
    with pytest.raises(ConfigError, match="linear=1 leaves no hidden layer with a ReLU"):
        RUN.with_(hidden=(20,))


# ---------------------------------------------------------------------------------------------
# Training


@pytest.fixture(scope="module")
def runs(synthetic):
    """{name: Result} of RUN (twice), RUN with every ReLU (linear 0) and RUN with SWA 0.5."""
    return {"linear": train(synthetic, RUN), "again": train(synthetic, RUN),
            "relu": train(synthetic, RUN.with_(linear=0)),
            "swa": train(synthetic, RUN.with_(swa=0.5))}


def test_run_gives_a_history_and_accuracies(runs):
    result = runs["linear"]
    assert result.config.linear == 1 and result.steps == 18
    assert result.history["step"][-1] == 18 and len(result.history["step"]) >= 2
    assert all(np.isfinite(result.history["cost_train"]))
    assert 0 <= result.val_accuracy <= 1 and 0 <= result.test_accuracy <= 1
    assert result.history["acc_train"][-1] > 0.2               # learns (chance: 0.1)
    assert result.summary()["config"]["linear"] == 1


def test_run_is_bit_identical_when_run_twice(runs):
    a, b = runs["linear"], runs["again"]
    assert equal_params(a.params, b.params) and equal_stats(a.stats, b.stats)
    assert a.history == b.history
    assert (a.val_accuracy, a.test_accuracy) == (b.val_accuracy, b.test_accuracy)


def test_run_differs_from_the_run_with_every_relu(runs):
    """The same seed, init and mini-batches: other weights from the first step on, another
    history."""
    a, b = runs["linear"], runs["relu"]
    assert not np.allclose(a.params["W"][0], b.params["W"][0])
    assert a.history["cost_train"] != b.history["cost_train"]


def test_stored_scores_are_those_of_the_linear_network(runs, synthetic):
    """Val (the last evaluation) and test accuracy: evaluate with linear=1 on the Result's
    params and moving averages; the history's last training cost is its cost on the training
    set."""
    result = runs["linear"]
    assert result.val_accuracy == accuracy(result.params, result.stats, synthetic.val, 1)
    assert result.test_accuracy == accuracy(result.params, result.stats, synthetic.test, 1)
    with threadpool_limits(1, user_api="blas"):
        train_scores = evaluate(result.params, synthetic.train.X, synthetic.train.y, RUN.lam,
                                result.stats, net=Net(linear=1))
        relu_scores = evaluate(result.params, synthetic.train.X, synthetic.train.y, RUN.lam,
                               result.stats, net=Net(linear=0))
    assert result.history["cost_train"][-1] == pytest.approx(train_scores["cost"], rel=1e-5)
    assert result.history["cost_train"][-1] != pytest.approx(relu_scores["cost"], rel=1e-3)


def test_averaged_weights_get_statistics_and_scores_of_the_linear_network(runs, synthetic):
    """SWA: the averaged weights' BN statistics are bn_statistics(linear=1) (not linear=0's),
    their scores evaluate(linear=1)'s."""
    averaged = runs["swa"].averaged
    stats = bn_statistics(averaged.params, synthetic.train.X, RUN.n_batch, Net(linear=1))
    assert equal_stats(averaged.stats, stats)
    assert not np.allclose(bn_statistics(averaged.params, synthetic.train.X, RUN.n_batch,
                                         Net(linear=0))[1][0], stats[1][0])
    assert averaged.val_accuracy == accuracy(averaged.params, stats, synthetic.val, 1)
    assert averaged.test_accuracy == accuracy(averaged.params, stats, synthetic.test, 1)


# ---------------------------------------------------------------------------------------------
# Saved runs and checkpoints


@pytest.mark.parametrize("name", ["linear", "swa"])
def test_saved_run_reevaluates_to_its_stored_scores(runs, synthetic, tmp_path, name):
    """save_run, read_run: the same config (linear 1), params and stats; reevaluate gives the
    stored val and test accuracies exactly (and the averaged ones of a SWA run), and the
    flip-averaged accuracy of the linear network's test scores."""
    result = runs[name]
    save_run(tmp_path / "run.npz", result, version="test")
    loaded, meta = read_run(tmp_path / "run.npz")
    assert loaded.config == result.config and meta["config"]["linear"] == 1
    assert equal_params(loaded.params, result.params) and equal_stats(loaded.stats, result.stats)
    scores = reevaluate(synthetic, loaded)
    assert (scores["val_accuracy"], scores["test_accuracy"]) == (result.val_accuracy,
                                                                 result.test_accuracy)
    if name == "swa":
        assert scores["swa_val_accuracy"] == result.averaged.val_accuracy
        assert scores["swa_test_accuracy"] == result.averaged.test_accuracy
    X = synthetic.test.X
    P = sum(softmax(forward(loaded.params, Xt, loaded.stats, net=Net(linear=1))[0])
            for Xt in (X, flipped(X)))
    assert scores["test_accuracy_flip_averaged"] == np.mean(P.argmax(axis=0) == synthetic.test.y)


def test_reevaluate_follows_the_config_linear(runs, synthetic):
    """The same params and stats under a config of linear=0: reevaluate gives linear=0's
    scores, which are not the stored ones; the two networks' test-mode losses differ too."""
    result = runs["linear"]
    relu = dataclasses.replace(result, config=result.config.with_(linear=0))
    scores = reevaluate(synthetic, relu, flip_average=False)
    assert scores == {"val_accuracy": accuracy(result.params, result.stats, synthetic.val, 0),
                      "test_accuracy": accuracy(result.params, result.stats, synthetic.test, 0)}
    assert scores != {"val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy}
    losses = [evaluate(result.params, synthetic.test.X, synthetic.test.y, 0.0, result.stats,
                       net=Net(linear=linear))["loss"] for linear in (0, 1)]
    assert losses[0] != pytest.approx(losses[1], rel=1e-3)


def test_checkpoint_resumes_only_with_its_linear(synthetic, tmp_path, runs):
    """A finished run's checkpoint with linear=1: resumed by the same run it gives the run's
    Result; a run with linear=0 refuses it, naming the difference, and leaves it as it was."""
    path = tmp_path / "ckpt.npz"
    first = train(synthetic, RUN, checkpoint=Checkpoint(path))
    assert equal_params(first.params, runs["linear"].params)
    before = path.read_bytes()
    with pytest.raises(RunFileError, match=r"was written for another configuration "
                                           r"\(linear: 1 there, 0 here\)"):
        train(synthetic, RUN.with_(linear=0), checkpoint=Checkpoint(path))
    assert path.read_bytes() == before
    resumed = train(synthetic, RUN, checkpoint=Checkpoint(path))
    assert resumed.resumed_from_step == 18 and equal_params(resumed.params, first.params)
    assert resumed.test_accuracy == first.test_accuracy


# ---------------------------------------------------------------------------------------------
# The command line (the data loader gives the synthetic data: the CIFAR-10 folder is not read)


SHORT = ["train", "--hidden", "20,10", "--schedule", "one_cycle", "--epochs", "3", "--batch",
         "50", "--quiet", "--data", "unused"]


def test_linear_option_reaches_the_config(cli_synthetic, runs, tmp_path):
    """train --linear 1 --json: config.linear is 1 and the scores are those of RUN; the saved
    run has linear 1 and evaluate gives its scores back."""
    path = tmp_path / "run.npz"
    status, out, err = cli_synthetic(*SHORT, "--linear", "1", "--json", "--save", path)
    assert status == 0, err
    summary = json.loads(out)
    assert summary["config"] == config_dict(RUN) and summary["config"]["linear"] == 1
    assert (summary["val_accuracy"], summary["test_accuracy"]) == \
        (runs["linear"].val_accuracy, runs["linear"].test_accuracy)
    assert load_run(path).config.linear == 1
    status, out, err = cli_synthetic("evaluate", path, "--json", "--data", "unused")
    assert status == 0, err
    again = json.loads(out)
    assert (again["val_accuracy"], again["test_accuracy"]) == \
        (summary["val_accuracy"], summary["test_accuracy"])
    status, out, err = cli_synthetic(*SHORT, "--json")
    assert status == 0, err
    assert json.loads(out)["config"]["linear"] == 0


@pytest.mark.parametrize("args, message", [
    (["--linear", "5"], r"error: --linear 5 leaves no hidden layer with a ReLU \(2 hidden "
                        r"layers\): the network would be linear"),
    (["--linear", "2"], r"--linear 2 leaves no hidden layer with a ReLU \(2 hidden layers\)"),
    (["--linear", "-1"], r"argument --linear: expected an integer >= 0, got '-1'"),
    (["--linear", "1.5"], r"argument --linear: expected an integer >= 0, got '1.5'"),
    (["--linear", "x"], r"argument --linear: expected an integer >= 0, got 'x'"),
])
def test_bad_linear_is_a_one_line_usage_error(cli_synthetic, capsys, monkeypatch, args, message):
    """Exit status 2 and one line on stderr naming --linear, before any data is loaded."""
    loads = []
    monkeypatch.setattr("assignment3.cli.commands.load_cifar10", lambda *a, **k: loads.append(a))
    with pytest.raises(SystemExit, match="2"):
        cli_synthetic(*SHORT, *args)
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and re.search(message, err), err
    assert loads == []
