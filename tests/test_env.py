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


JOBS = "the number of worker processes, an integer in 1..4; set it to such a value"
WAIT = "the seconds to wait for Dask workers, a number > 0; set it to such a value"
RETRAIN = "one of 0, 1; set it to one of them"
#: variable -> (its reader, [(value, what the reader gives: the value, or what its refusal
#: expected)])
PARSED = {
    "ASSIGNMENT3_JOBS": (lambda: env.jobs(4), [(None, 4), ("", 4), (" 2 ", 2), ("1", 1),
                                               ("4", 4), ("0", JOBS), ("5", JOBS), ("1.5", JOBS),
                                               ("abc", JOBS)]),
    "ASSIGNMENT3_WAIT_WORKERS": (lambda: env.wait_workers(2.5), [(None, 2.5), (" 0.2 ", 0.2),
                                                                 ("0", WAIT), ("inf", WAIT),
                                                                 ("nan", WAIT), ("x", WAIT)]),
    "ASSIGNMENT3_RETRAIN": (env.retrain, [(None, False), ("", False), ("0", False),
                                          (" 1 ", True), ("yes", RETRAIN)]),
}


def test_parsed_variables(monkeypatch):
    """Each variable read by its parser: the default if unset or empty, the parsed value within
    its bounds (both ends included), anything else refused naming the variable, its value and
    what it should hold."""
    for name, (reader, cases) in PARSED.items():
        for value, expected in cases:
            set_or_unset(monkeypatch, name, value)
            case = f"{name}={value!r}"
            if not isinstance(expected, str):
                assert reader() == expected and type(reader()) is type(expected), case
                continue
            with pytest.raises(ValueError) as refused:
                reader()
            assert isinstance(refused.value, env.EnvironmentValueError), case
            assert str(refused.value) == f"{name}='{value}': expected {expected} or unset it", case


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
