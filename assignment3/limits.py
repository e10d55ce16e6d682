"""What a setting accepts (its kind and range), checked in one place for the library (`Config`)
and the command line (which builds its argument types from the same `Limit`s), and the error
that names the settings so that each can say it in its own words."""
import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np


class ConfigError(ValueError):
    """A setting out of its limits, or settings that do not fit together. The message names the
    settings through a function `word(field)` or `word(field, value)`, by default the library's
    names (`eta_max`, `schedule='one_cycle'`); `worded` says it with others (the command line's
    `--eta-max`, `--schedule one_cycle`)."""

    def __init__(self, template, *names, **values):
        """`template` is a str.format template: {0}, {1}, ... for the `names` (each a field or a
        (field, value) pair), and named fields for the `values`."""
        self.template, self.names, self.values = template, names, values
        super().__init__(self.worded())

    def worded(self, word=None):
        """The message with each setting named by `word` (default: `library_word`)."""
        word = word or library_word
        named = [word(*n) if isinstance(n, tuple) else word(n) for n in self.names]
        return self.template.format(*named, **self.values)


class ConfigTypeError(ConfigError, TypeError):
    """A setting of the wrong type (a string where a bool is needed, say)."""


def library_word(field, *value):
    """How the library names a setting: `field`, or `field=value`."""
    return f"{field}={value[0]!r}" if value else field


@dataclass(frozen=True)
class Limit:
    """The values a setting accepts: of `kind` (int, float: any real number, finite; bool; or
    str: one of `choices` only), within lo..hi (ends excluded with lo_open/hi_open); also one
    of the strings `choices`, and None if `optional`."""
    kind: type
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    optional: bool = False

    def describe(self):
        """The accepted values other than None in words, e.g. "a number in [0, 1)"."""
        if self.kind is bool:
            return "True or False"
        what = {int: "an integer", float: "a number", str: ""}[self.kind]
        lo, hi = (v if v is None or v != int(v) else int(v) for v in (self.lo, self.hi))
        if lo is not None and hi is not None:
            what += f" in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        elif lo is not None:
            what += f" {'>' if self.lo_open else '>='} {lo}"
        if self.choices:
            what = (", ".join(self.choices) + f" or {what}" if what
                    else "one of " + ", ".join(self.choices))
        return what

    def check(self, field, value):
        """Raise ConfigTypeError or ConfigError unless `value` is accepted for `field`."""
        if (value is None and self.optional) or (isinstance(value, str) and value in self.choices):
            return
        problem = f"{{0}} must be {self.describe()}{' or None' if self.optional else ''}, " \
                  f"got {{value!r}}"
        if not self._of_kind(value):
            raise ConfigTypeError(problem, field, value=value)
        if self.kind is bool:
            return
        if not math.isfinite(value) or not self._in_range(value):
            raise ConfigError(problem, field, value=value)

    def _of_kind(self, value):
        if self.kind is bool:
            return isinstance(value, (bool, np.bool_))
        if isinstance(value, (bool, np.bool_)) or self.kind is str:
            return False
        return isinstance(value, Integral if self.kind is int else Real)

    def _in_range(self, value):
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
