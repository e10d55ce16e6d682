"""assignment3.env: each environment variable of the package read and checked (set in the real
environment of this process with monkeypatch); a value that cannot be used is refused, naming the
variable, its value and what it should hold; an empty value means unset."""
import os
from pathlib import Path

import pytest

from assignment3 import env

NAME = "ASSIGNMENT3_TEST_VARIABLE"


def test_the_names():
    assert (env.DATA_DIR, env.CACHE_HOME, env.JOBS, env.SCHEDULER, env.RETRAIN) == (
        "CIFAR10_DIR", "XDG_CACHE_HOME", "ASSIGNMENT3_JOBS", "ASSIGNMENT3_SCHEDULER",
        "ASSIGNMENT3_RETRAIN")


@pytest.mark.parametrize("value, read", [(None, None), ("", None), ("   ", None),
                                         (" a b ", "a b"), ("x", "x")])
def test_read_strips_and_takes_empty_for_unset(monkeypatch, value, read):
    if value is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, value)
    assert env.read(NAME) == read


@pytest.mark.parametrize("value, expected", [(None, 7), ("", 7), (" 3 ", 3), ("1", 1),
                                             ("10", 10)])
def test_integer_unset_empty_or_valid(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, value)
    assert env.integer(NAME, 7, lo=1, hi=10) == expected


@pytest.mark.parametrize("value, hi, bounds", [("abc", 10, "in 1..10"), ("0", 10, "in 1..10"),
                                               ("11", 10, "in 1..10"), ("1.5", None, ">= 1"),
                                               ("-3", None, ">= 1")])
def test_integer_refuses_what_it_cannot_use(monkeypatch, value, hi, bounds):
    monkeypatch.setenv(NAME, value)
    with pytest.raises(env.EnvironmentValueError,
                       match=f"{NAME}='{value}': expected a count, an integer {bounds}; set it "
                             f"to such a value or unset it"):
        env.integer(NAME, 1, hi=hi, what="a count")


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "1000000"])
def test_jobs_variable_must_be_a_core_count(monkeypatch, value):
    monkeypatch.setenv(env.JOBS, value)
    cores = os.cpu_count()
    with pytest.raises(env.EnvironmentValueError,
                       match=f"ASSIGNMENT3_JOBS='{value}': expected the number of worker "
                             f"processes, an integer in 1..{cores}"):
        env.jobs(cores)


@pytest.mark.parametrize("value, jobs", [("", 4), (" 1 ", 1), ("1", 1), ("4", 4)])
def test_jobs_variable_unset_empty_or_valid(monkeypatch, value, jobs):
    monkeypatch.setenv(env.JOBS, value)
    assert env.jobs(4) == jobs
    monkeypatch.delenv(env.JOBS)
    assert env.jobs(4) == 4


def test_choice(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    assert env.choice(NAME, ("a", "b"), "a") == "a"
    monkeypatch.setenv(NAME, " b ")
    assert env.choice(NAME, ("a", "b"), "a") == "b"
    monkeypatch.setenv(NAME, "c")
    with pytest.raises(env.EnvironmentValueError,
                       match=f"{NAME}='c': expected one of a, b; set it to one of them or unset"):
        env.choice(NAME, ("a", "b"), "a")


@pytest.mark.parametrize("value, retrain", [(None, False), ("", False), ("0", False),
                                            ("1", True), (" 1 ", True)])
def test_retrain_variable_is_0_or_1(monkeypatch, value, retrain):
    if value is None:
        monkeypatch.delenv(env.RETRAIN, raising=False)
    else:
        monkeypatch.setenv(env.RETRAIN, value)
    assert env.retrain() is retrain


@pytest.mark.parametrize("value", ["yes", "true", "2"])
def test_retrain_variable_must_be_0_or_1(monkeypatch, value):
    monkeypatch.setenv(env.RETRAIN, value)
    with pytest.raises(env.EnvironmentValueError,
                       match=f"ASSIGNMENT3_RETRAIN='{value}': expected one of 0, 1"):
        env.retrain()


def test_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(env.DATA_DIR, raising=False)
    assert env.data_dir() is None
    monkeypatch.setenv(env.DATA_DIR, "")
    assert env.data_dir() is None
    monkeypatch.setenv(env.DATA_DIR, str(tmp_path))
    assert env.data_dir() == tmp_path
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(env.DATA_DIR, "~/cifar")
    assert env.data_dir() == tmp_path / "home" / "cifar"


def test_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(env.CACHE_HOME, str(tmp_path / "cache"))
    assert env.cache_home() == tmp_path / "cache"
    for value in ("", "relative/path"):              # relative: ignored, as the convention says
        monkeypatch.setenv(env.CACHE_HOME, value)
        assert env.cache_home() == tmp_path / "home" / ".cache"
    monkeypatch.delenv(env.CACHE_HOME)
    assert env.cache_home() == Path(tmp_path / "home" / ".cache")


def test_scheduler(monkeypatch):
    monkeypatch.delenv(env.SCHEDULER, raising=False)
    assert env.scheduler() is None
    monkeypatch.setenv(env.SCHEDULER, " tcp://127.0.0.1:8786 ")
    assert env.scheduler() == "tcp://127.0.0.1:8786"


def test_environment_value_error_is_a_value_error():
    assert issubclass(env.EnvironmentValueError, ValueError)
