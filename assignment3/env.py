"""The environment variables the package reads: their names, and each read and checked here. A
value that cannot be used raises `EnvironmentValueError` naming the variable, what it holds and
what it should hold, instead of being ignored or replaced by a default. An empty value means
"unset", as in `VAR= command`."""
import math
import os
from pathlib import Path

from .errors import Error

#: The folder holding the CIFAR-10 batches (`data.find_data_dir`).
DATA_DIR = "CIFAR10_DIR"
#: The base of the per-user cache the download goes to (the XDG convention).
CACHE_HOME = "XDG_CACHE_HOME"
#: The number of worker processes of `scale.parallel`.
JOBS = "ASSIGNMENT3_JOBS"
#: The address of a Dask scheduler to train on (`scale.cluster`).
SCHEDULER = "ASSIGNMENT3_SCHEDULER"
#: Seconds that runs on that scheduler wait for it to have workers (`scale.cluster`).
WAIT_WORKERS = "ASSIGNMENT3_WAIT_WORKERS"
#: "1": `make beyond` retrains section 6 instead of loading its stored runs.
RETRAIN = "ASSIGNMENT3_RETRAIN"


class EnvironmentValueError(Error, ValueError):
    """An environment variable of the package holds a value it cannot use."""


def read(name: str) -> str | None:
    """The value of the variable `name` without surrounding spaces, or None if it is unset or
    empty."""
    value = os.environ.get(name, "").strip()
    return value or None


def integer(name: str, default: int, *, lo: int = 1, hi: int | None = None,
            what: str = "an integer") -> int:
    """The variable `name` as an integer in lo..hi (hi None: no upper bound), or `default` if
    it is unset."""
    text = read(name)
    if text is None:
        return default
    try:
        value: int | None = int(text)
    except ValueError:
        value = None
    if value is None or value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise EnvironmentValueError(f"{name}={os.environ[name]!r}: expected {what}, an integer "
                                    f"{bounds}; set it to such a value or unset it")
    return value


def choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """The variable `name`, which must be one of `choices`, or `default` if unset."""
    value = read(name)
    if value is None:
        return default
    if value not in choices:
        raise EnvironmentValueError(f"{name}={os.environ[name]!r}: expected one of "
                                    f"{', '.join(choices)}; set it to one of them or unset it")
    return value


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
    return integer(JOBS, cores, hi=cores, what="the number of worker processes")


def scheduler() -> str | None:
    """$ASSIGNMENT3_SCHEDULER: a Dask scheduler's address, or None."""
    return read(SCHEDULER)


def wait_workers(default: float) -> float:
    """$ASSIGNMENT3_WAIT_WORKERS: seconds, a finite number > 0; `default` if unset."""
    text = read(WAIT_WORKERS)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise EnvironmentValueError(f"{WAIT_WORKERS}={os.environ[WAIT_WORKERS]!r}: expected the "
                                    f"seconds to wait for Dask workers, a number > 0; set it to "
                                    f"such a value or unset it")
    return value


def retrain() -> bool:
    """Whether $ASSIGNMENT3_RETRAIN asks to retrain the stored runs ("1"; "0" or unset: no)."""
    return choice(RETRAIN, ("0", "1"), "0") == "1"
