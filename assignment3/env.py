"""The environment variables the package reads, each read and checked here: a value that cannot
be used raises `EnvironmentValueError` naming the variable, what it holds and what it should
hold, instead of being ignored or replaced by a default."""
import os


class EnvironmentValueError(ValueError):
    """An environment variable of the package holds a value it cannot use."""


def read(name):
    """The value of the variable `name` without surrounding spaces, or None if it is unset or
    empty (an empty value means "unset", as in `VAR= command`)."""
    value = os.environ.get(name, "").strip()
    return value or None


def integer(name, default, *, lo=1, hi=None, what="an integer"):
    """The variable `name` as an integer in lo..hi (hi None: no upper bound), or `default` if
    it is unset."""
    text = read(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise EnvironmentValueError(f"{name}={os.environ[name]!r}: expected {what}, an integer "
                                    f"{bounds}; set it to such a value or unset it")
    return value


def choice(name, choices, default):
    """The variable `name`, which must be one of `choices` (strings), or `default` if unset."""
    value = read(name)
    if value is None:
        return default
    if value not in choices:
        raise EnvironmentValueError(f"{name}={os.environ[name]!r}: expected one of "
                                    f"{', '.join(choices)}; set it to one of them or unset it")
    return value
