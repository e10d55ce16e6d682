"""assignment3.report.compute: the layer sizes, weights and parameters of a configuration's
network, the FLOP of a training step and a run's training compute."""
import pytest

from assignment3.config import Config
from assignment3.nn.network import init_params
from assignment3.report.compute import dims, n_parameters, n_weights, step_gflop, training_flop


def test_dims_are_the_input_the_hidden_layers_and_the_classes():
    assert dims(Config()) == [3072, 50, 50, 10]
    assert dims(Config(hidden=(7,)), d=20, K=3) == [20, 7, 3]


def test_n_parameters_counts_every_array():
    for config in (Config(), Config(hidden=(30, 20), batch_norm=False),
                   Config(hidden=(5, 6, 7), batch_norm=True)):
        params = init_params(dims(config), batch_norm=config.batch_norm, seed=0)
        assert n_parameters(config) == sum(P.size for arrays in params.values()
                                           for P in arrays)
        assert n_weights(config) == sum(W.size for W in params["W"])
    small = init_params([20, 8, 3], batch_norm=True, seed=0)
    assert n_parameters(Config(hidden=(8,)), d=20, K=3) == sum(
        P.size for arrays in small.values() for P in arrays)


def test_step_gflop_of_a_small_net():
    config = Config(hidden=(5,), n_batch=2)
    # products: 3072 x 5 (forward, dW) and 5 x 10 (forward, dW, dX), 2 FLOP each per sample
    assert step_gflop(config) == pytest.approx(2 * 2 * (2 * 3072 * 5 + 3 * 5 * 10) / 1e9)
    # twice the mini-batch, twice the work
    assert step_gflop(config.with_(n_batch=4)) == pytest.approx(2 * step_gflop(config))


def test_training_flop_is_six_per_weight_per_sample_seen():
    config = Config(hidden=(4, 3), n_batch=8)
    weights = 3072 * 4 + 4 * 3 + 3 * 10
    assert training_flop(config, 5) == 6 * weights * 5 * 8
    assert training_flop(config, 0) == 0
    assert isinstance(training_flop(Config(), 10**6), int)
