"""assignment3.config: what each setting of a run accepts (`Limit`, `LIMITS`), Config's refusals
(each naming the setting, as ConfigError or ConfigTypeError), configurations as JSON and back,
and the presets."""
import json
from dataclasses import FrozenInstanceError, asdict, fields

import numpy as np
import pytest

from assignment3.config import (
    LIMITS,
    MAX_PARAMETERS,
    Config,
    ConfigError,
    ConfigTypeError,
    Limit,
    checked_hidden,
    config_dict,
    config_from_dict,
)
from assignment3.report.compute import n_parameters
from assignment3.report.presets import BEST, CANDIDATE, PART_ONE, PART_TWO_BEST, PRESETS, WIDE


@pytest.mark.parametrize("kwargs, error, message", [
    # types
    ({"batch_norm": "no"}, ConfigTypeError, "batch_norm must be True or False, got 'no'"),
    ({"flip": 1}, ConfigTypeError, "flip must be True or False, got 1"),
    ({"n_s": 2.5}, ConfigTypeError, r"n_s must be an integer in \[1, 1000000\] or None, got 2.5"),
    ({"n_batch": True}, ConfigTypeError, "n_batch must be an integer"),
    ({"lam": "0.1"}, ConfigTypeError, "lam must be a number >= 0, got '0.1'"),
    ({"init": True}, ConfigTypeError, "init must be he, xavier or a number > 0, got True"),
    ({"dtype": "float16"}, ConfigTypeError, "dtype must be one of float32, float64, got 'float16'"),
    ({"hidden": ()}, ConfigTypeError, r"hidden must be a non-empty sequence of layer sizes "
                                      r"\(a list or tuple, in order\), got \(\)"),
    ({"hidden": 50}, ConfigTypeError, "hidden must be a non-empty sequence"),
    ({"hidden": "50,50"}, ConfigTypeError, "hidden must be a non-empty sequence"),
    ({"hidden": {20, 10}}, ConfigTypeError, r"hidden must be .*\(a list or tuple, in order\)"),
    ({"hidden": {20: 1, 10: 2}}, ConfigTypeError, "hidden must be a non-empty sequence"),
    ({"hidden": (50, 2.5)}, ConfigTypeError, "every layer size in hidden must be an integer in "
                                             r"\[1, 16384\], got 2.5"),
    # values out of their limits
    ({"hidden": (50, 0)}, ConfigError, r"every layer size in hidden .*, got 0"),
    ({"hidden": (4000,) * 4}, ConfigError, r"hidden=\(4000, 4000, 4000, 4000\) makes a network "
                                           r"of [\d,]+ parameters on CIFAR-10 .* at most "
                                           "50,000,000 are allowed"),
    ({"n_s": 0}, ConfigError, r"n_s must be an integer in \[1, 1000000\] or None, got 0"),
    ({"n_batch": 0}, ConfigError, "n_batch must be an integer >= 1, got 0"),
    ({"lam": float("nan")}, ConfigError, "lam must be a number >= 0, got nan"),
    ({"eta_min": 0}, ConfigError, "eta_min must be a number > 0, got 0"),
    ({"cycles": 0}, ConfigError, r"cycles must be a number in \(0, 1000\], got 0"),
    ({"init": float("nan")}, ConfigError, "init must be he, xavier or a number > 0"),
    ({"evals_per_cycle": 0}, ConfigError, r"evals_per_cycle must be an integer in \[1, 1000\]"),
    ({"schedule": "one_cycle", "epochs": 0}, ConfigError,
     r"epochs must be a number in \(0, 10000\] or None, got 0"),
    ({"schedule": "one_cycle", "epochs": 2, "warmup": 1.0}, ConfigError,
     r"warmup must be a number in \(0, 1\), got 1.0"),
    ({"max_shift": 32}, ConfigError, "max_shift must be an integer in"),
    # settings that do not fit together
    ({"eta_min": 0.2}, ConfigError, "eta_max=0.1 must be at least eta_min=0.2"),
    ({"n_batch": 1}, ConfigError, "batch_norm=True normalises each unit over the mini-batch, so "
                                  "it needs n_batch >= 2"),
    ({"schedule": "one_cycle"}, ConfigError, "schedule='one_cycle' needs its length in epochs: "
                                             "set epochs"),
    ({"epochs": 3}, ConfigError, "epochs=3 is the length of a one-cycle run; a cyclic run, "
                                 "schedule='cyclic', counts cycles instead"),
    ({"nesterov": True}, ConfigError, "nesterov=True needs momentum > 0"),
    ({"swa_lr": 0.01, "swa": 0.25}, ConfigError, "swa_lr=0.01 is the learning rate over the "
                                                 "averaged part of a one-cycle run: set swa and"),
    ({"swa_lr": 0.2, "swa": 0.25, "schedule": "one_cycle", "epochs": 2}, ConfigError,
     "swa_lr=0.2 must be at most eta_max=0.1"),
    ({"optimizer": "adamw", "momentum": 0.9}, ConfigError, "momentum=0.9 is SGD's: "
                                                           "optimizer='adamw' keeps its own"),
    ({"weight_decay": 0.01}, ConfigError, "weight_decay=0.01 is AdamW's decoupled weight decay: "
                                          "set optimizer to adamw, or use lam for SGD"),
])
def test_config_refuses_values_it_cannot_use(kwargs, error, message):
    """One row per kind of limit (`Limit.check`'s branches: kind, range ends open or closed,
    finiteness, choices, optional) and per rule between settings; each field's own limit is
    LIMITS, which the command line's test takes at its ends."""
    with pytest.raises(error, match=message) as err:
        Config(**kwargs)
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ValueError)
    assert isinstance(err.value, TypeError) == (error is ConfigTypeError)


@pytest.mark.parametrize("kwargs", [
    {"n_s": None}, {"n_batch": 1, "batch_norm": False}, {"init": "xavier"}, {"init": 0.01},
    {"init": np.float32(0.01)}, {"seed": np.int64(3)}, {"flip": np.bool_(True)},
    {"schedule": "one_cycle", "epochs": 0.5}, {"momentum": 0.9, "nesterov": True},
    {"hidden": (10, 16_384)}, {"max_shift": 31}, {"mixup": 100}, {"eta_min": 0.1},
    {"optimizer": "adamw", "weight_decay": 0.05, "lam": 0.001},
    {"schedule": "one_cycle", "epochs": 2, "swa": 0.25, "swa_lr": 0.1},
])
def test_config_accepts_values_at_its_limits(kwargs):
    assert all(getattr(Config(**kwargs), k) == v for k, v in kwargs.items())


def test_config_stores_hidden_as_a_tuple_of_ints():
    config = Config(hidden=[np.int64(40), 20])
    assert config.hidden == (40, 20) and all(type(m) is int for m in config.hidden)
    assert config == Config(hidden=(40, 20)) and hash(config) == hash(Config(hidden=(40, 20)))
    assert checked_hidden(np.array([3, 4])) == (3, 4)


def test_config_is_frozen_and_with_makes_checked_copies():
    config = Config()
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'lam'"):
        config.lam = 0.1
    other = config.with_(lam=0.1, hidden=[30])
    assert other.lam == 0.1 and other.hidden == (30,) and config.lam == 0.005
    with pytest.raises(ConfigError, match="lam must be a number >= 0, got -0.1"):
        config.with_(lam=-0.1)


def test_the_defaults_are_the_assignments():
    config = Config()
    assert (config.hidden, config.batch_norm, config.lam, config.n_batch) == ((50, 50), True,
                                                                              0.005, 100)
    assert (config.eta_min, config.eta_max, config.n_s, config.cycles) == (1e-5, 1e-1, None, 2)
    assert (config.schedule, config.dtype, config.init) == ("cyclic", "float32", "he")
    beyond = [f.name for f in fields(Config)]
    beyond = beyond[beyond.index("evals_per_cycle") + 1:]
    off = {"schedule": "cyclic", "epochs": None, "warmup": 0.2, "bn_order": "before",
           "optimizer": "sgd", "blas_threads": 1}
    assert all(getattr(config, name) == off.get(name, 0) for name in beyond)


def test_every_field_has_its_limit():
    assert list(LIMITS) == [f.name for f in fields(Config)]


@pytest.mark.parametrize("limit, words", [
    (Limit(bool), "True or False"),
    (Limit(int, 1), "an integer >= 1"),
    (Limit(float, 0, lo_open=True), "a number > 0"),
    (Limit(float, 0, 1, hi_open=True), "a number in [0, 1)"),
    (Limit(float, 0, 1, lo_open=True, hi_open=True), "a number in (0, 1)"),
    (Limit(float, 0.5, 2.5), "a number in [0.5, 2.5]"),
    (Limit(int, 1, 10, optional=True), "an integer in [1, 10]"),
    (Limit(str, choices=("a", "b")), "one of a, b"),
    (Limit(float, 0, lo_open=True, choices=("he",)), "he or a number > 0"),
])
def test_limit_describes_what_it_accepts(limit, words):
    assert limit.describe() == words


def test_limit_checks_values():
    limit = Limit(int, 1, 10, optional=True)
    for good in (None, 1, 10, np.int32(5)):
        limit.check("n", good)
    with pytest.raises(ConfigError, match=r"n must be an integer in \[1, 10\] or None, got 11"):
        limit.check("n", 11)
    with pytest.raises(ConfigTypeError, match="n must be an integer .* got 'five'"):
        limit.check("n", "five")


def test_config_error_words_the_settings_as_asked():
    with pytest.raises(ConfigError) as err:
        Config(eta_min=0.5, eta_max=0.2)
    assert str(err.value) == "eta_max=0.2 must be at least eta_min=0.5"

    def option(field, *value):
        return f"--{field.replace('_', '-')}" + (f" {value[0]}" if value else "")

    assert err.value.worded(option) == "--eta-max 0.2 must be at least --eta-min 0.5"
    error = ConfigError("{0} makes {n} steps", ("cycles", 0.001), n=0)
    assert str(error) == "cycles=0.001 makes 0 steps" and error.values == {"n": 0}


@pytest.mark.parametrize("config", [Config(), Config(hidden=(30, 20), init=0.01, n_s=None),
                                    PART_ONE, CANDIDATE, PART_TWO_BEST, BEST])
def test_config_dict_round_trips_through_json(config):
    as_dict = config_dict(config)
    assert isinstance(as_dict["hidden"], list) and set(as_dict) == set(asdict(config))
    again = config_from_dict(json.loads(json.dumps(as_dict)))
    assert again == config and type(again.hidden) is tuple


def test_config_from_dict_refuses_unknown_and_bad_fields():
    with pytest.raises(ValueError, match=r"unknown configuration fields \['colour', 'size'\] "
                                         r"\(written by a newer version of the code\?\)"):
        config_from_dict({**config_dict(Config()), "size": 1, "colour": "red"})
    with pytest.raises(ConfigError, match="lam must be a number >= 0, got -1"):
        config_from_dict({"lam": -1})
    assert config_from_dict({"lam": 0.1}) == Config(lam=0.1)


def test_presets_are_valid_configs():
    assert set(PRESETS) == {"assignment", "best"}
    assert PRESETS["assignment"] == Config()
    best = PRESETS["best"]
    assert best is BEST and asdict(best)["schedule"] == "one_cycle" and best.zca
    assert best.dropout > 0 and best.label_smoothing > 0
    # part two's best net is the candidate with one ingredient (MixUp) taken away, back to part
    # one's; the best net is part two's with two hidden layers as wide as its first, for another
    # number of epochs, with averaged weights
    def differ(a, b):
        return {f.name for f in fields(Config) if getattr(a, f.name) != getattr(b, f.name)}
    assert differ(PART_TWO_BEST, CANDIDATE) == {"mixup"}
    assert PART_TWO_BEST.mixup == PART_ONE.mixup == 0
    assert differ(BEST, PART_TWO_BEST) == {"hidden", "epochs", "swa"} and best.swa > 0
    assert best.hidden == (WIDE[0], WIDE[0]) and PART_TWO_BEST.hidden == WIDE
    assert CANDIDATE.epochs == 2 * PART_ONE.epochs and CANDIDATE.mixup > 0
    assert PART_ONE.hidden == WIDE and n_parameters(BEST) < MAX_PARAMETERS


def test_numpy_scalars_and_arrays_are_stored_as_python_values():
    """A seed from np.arange, sizes from an array, a float32 lam: Config holds Python values,
    so JSON (saved runs, checkpoints, cluster tasks) takes them."""
    config = Config(seed=np.arange(3)[1], hidden=np.array([50, 30]), lam=np.float32(0.25),
                    batch_norm=np.bool_(False), cycles=np.array(0.5), init=np.float64(0.1),
                    dtype=np.str_("float64"))
    assert (config.seed, config.hidden, config.lam, config.batch_norm, config.cycles,
            config.init, config.dtype) == (1, (50, 30), 0.25, False, 0.5, 0.1, "float64")
    assert all(type(v) in (int, float, bool, str, tuple, type(None))
               for v in asdict(config).values())
    assert config_from_dict(json.loads(json.dumps(config_dict(config)))) == config
    with pytest.raises(ConfigTypeError, match="seed must be an integer >= 0, got 1.5"):
        Config(seed=np.float64(1.5))
