"""The environment variables the package reads: their names, and each read and checked here. A
value that cannot be used raises `EnvironmentValueError` naming the variable, what it holds and
what it should hold, instead of being ignored or replaced by a default. An empty value means
"unset", as in `VAR= command`."""
import contextlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import Error

#: The folder holding the CIFAR-10 batches (`data.find_data_dir`).
DATA_DIR = "CIFAR10_DIR"
#: The base of the per-user cache the download goes to (the XDG convention).
CACHE_HOME = "XDG_CACHE_HOME"
#: The number of worker processes of `scale.parallel`.
JOBS = "ASSIGNMENT3_JOBS"
#: The address of a Dask scheduler to train on (`scale.cluster`), as it is (`read`).
SCHEDULER = "ASSIGNMENT3_SCHEDULER"
#: Seconds that runs on that scheduler wait for it to have workers (`scale.cluster`).
WAIT_WORKERS = "ASSIGNMENT3_WAIT_WORKERS"
#: "1": `make beyond` retrains section 6 instead of loading its stored runs.
RETRAIN = "ASSIGNMENT3_RETRAIN"

T = TypeVar("T")  # a parsed value


class EnvironmentValueError(Error, ValueError):
    """An environment variable of the package holds a value it cannot use."""


def read(name: str) -> str | None:
    """The value of the variable `name` without surrounding spaces, or None if it is unset or
    empty."""
    return os.environ.get(name, "").strip() or None


def parsed(name: str, parse: Callable[[str], T], valid: Callable[[T], bool], default: T,
           expected: str, fix: str = "such a value") -> T:
    """The variable `name` read by `parse` (which may raise ValueError), or `default` if it is
    unset; a value that `parse` refuses or that is not `valid` raises EnvironmentValueError
    saying what it `expected` and what to set it to (`fix`)."""
    text = read(name)
    if text is None:
        return default
    with contextlib.suppress(ValueError):
        value = parse(text)
        if valid(value):
            return value
    raise EnvironmentValueError(f"{name}={os.environ[name]!r}: expected {expected}; set it to "
                                f"{fix} or unset it")


def data_dir() -> Path | None:
    """$CIFAR10_DIR as a path (`~` expanded), or None if unset."""
    value = read(DATA_DIR)
    return Path(value).expanduser() if value else None


def cache_home() -> Path:
    """$XDG_CACHE_HOME, or ~/.cache when that is unset or relative (as the convention says)."""
    xdg = read(CACHE_HOME) or ""
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"


def jobs(cores: int) -> int:
    """Worker processes: $ASSIGNMENT3_JOBS (1 to `cores`), else `cores`."""
    return parsed(JOBS, int, lambda n: 1 <= n <= cores, cores,
                  f"the number of worker processes, an integer in 1..{cores}")


def wait_workers(default: float) -> float:
    """$ASSIGNMENT3_WAIT_WORKERS: seconds, a finite number > 0; `default` if unset."""
    return parsed(WAIT_WORKERS, float, lambda seconds: 0 < seconds < math.inf, default,
                  "the seconds to wait for Dask workers, a number > 0")


def retrain() -> bool:
    """Whether $ASSIGNMENT3_RETRAIN asks to retrain the stored runs ("1"; "0" or unset: no)."""
    return parsed(RETRAIN, str, ("0", "1").__contains__, "0", "one of 0, 1", "one of them") == "1"
