"""assignment3.env: each environment variable of the package read and checked (set in the real
environment of this process with monkeypatch, by the names a user types); a value that cannot be
used is refused, naming the variable, its value and what it should hold; an empty value means
unset."""
from pathlib import Path

import pytest

from assignment3 import env

NAME = "ASSIGNMENT3_TEST_VARIABLE"


def set_or_unset(monkeypatch, name, value):
    """Set the variable `name` to `value`, or unset it if value is None."""
    if value is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, value)


def test_read_strips_and_takes_empty_for_unset(monkeypatch):
    for value, read in ((None, None), ("", None), ("   ", None), (" a b ", "a b")):
        set_or_unset(monkeypatch, NAME, value)
        assert env.read(NAME) == read, f"{NAME}={value!r}"


#: (value, upper bound, what env.integer gives: the number, or the end of its refusal)
INTEGERS = [(None, 10, 7), ("", 10, 7), (" 3 ", 10, 3), ("1", 10, 1), ("10", 10, 10),
            ("abc", 10, "in 1..10"), ("0", 10, "in 1..10"), ("11", 10, "in 1..10"),
            ("1.5", None, ">= 1"), ("1000000", None, 1000000)]


def test_integer(monkeypatch):
    """An integer in lo..hi, both ends included (no upper bound if hi is None); the default if
    unset or empty; anything else refused with a ValueError naming the bounds."""
    for value, hi, expected in INTEGERS:
        set_or_unset(monkeypatch, NAME, value)
        case = f"{NAME}={value!r}, hi={hi}"
        if isinstance(expected, int):
            assert env.integer(NAME, 7, lo=1, hi=hi, what="a count") == expected, case
            continue
        with pytest.raises(ValueError) as refused:
            env.integer(NAME, 7, lo=1, hi=hi, what="a count")
        assert isinstance(refused.value, env.EnvironmentValueError), case
        assert str(refused.value) == (f"{NAME}='{value}': expected a count, an integer "
                                      f"{expected}; set it to such a value or unset it"), case


def test_jobs_is_a_count_of_worker_processes_up_to_the_cores(monkeypatch):
    monkeypatch.delenv("ASSIGNMENT3_JOBS", raising=False)
    assert env.jobs(4) == 4
    monkeypatch.setenv("ASSIGNMENT3_JOBS", " 2 ")
    assert env.jobs(4) == 2
    monkeypatch.setenv("ASSIGNMENT3_JOBS", "5")
    with pytest.raises(env.EnvironmentValueError,
                       match="^ASSIGNMENT3_JOBS='5': expected the number of worker processes, an "
                             "integer in 1..4; "):
        env.jobs(4)


def test_choice(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    assert env.choice(NAME, ("a", "b"), "a") == "a"
    monkeypatch.setenv(NAME, " b ")
    assert env.choice(NAME, ("a", "b"), "a") == "b"
    monkeypatch.setenv(NAME, "c")
    with pytest.raises(env.EnvironmentValueError,
                       match=f"{NAME}='c': expected one of a, b; set it to one of them or unset"):
        env.choice(NAME, ("a", "b"), "a")


def test_retrain_is_0_or_1(monkeypatch):
    for value, retrain in ((None, False), ("", False), ("0", False), (" 1 ", True)):
        set_or_unset(monkeypatch, "ASSIGNMENT3_RETRAIN", value)
        assert env.retrain() is retrain, f"ASSIGNMENT3_RETRAIN={value!r}"
    monkeypatch.setenv("ASSIGNMENT3_RETRAIN", "yes")
    with pytest.raises(env.EnvironmentValueError,
                       match="ASSIGNMENT3_RETRAIN='yes': expected one of 0, 1"):
        env.retrain()


def test_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    assert env.data_dir() is None
    monkeypatch.setenv("CIFAR10_DIR", "")
    assert env.data_dir() is None
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path))
    assert env.data_dir() == tmp_path
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CIFAR10_DIR", "~/cifar")
    assert env.data_dir() == tmp_path / "home" / "cifar"


def test_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert env.cache_home() == tmp_path / "cache"
    for value in (None, "", "relative/path"):     # relative: ignored, as the convention says
        set_or_unset(monkeypatch, "XDG_CACHE_HOME", value)
        assert env.cache_home() == Path(tmp_path / "home" / ".cache"), f"XDG_CACHE_HOME={value!r}"


def test_scheduler(monkeypatch):
    monkeypatch.delenv("ASSIGNMENT3_SCHEDULER", raising=False)
    assert env.scheduler() is None
    monkeypatch.setenv("ASSIGNMENT3_SCHEDULER", " tcp://127.0.0.1:8786 ")
    assert env.scheduler() == "tcp://127.0.0.1:8786"
