"""The JSON of a run file (`runfile`): each field checked before use, each refusal a
RunFileError naming the file and the field."""
import math
import os
from collections.abc import Callable
from typing import Any

from ..config import Config, config_from_dict
from ..nn.checks import is_int, is_real
from ..training.run import HISTORY_KEYS
from .runfile import RunFileError, shown


def field(path: str | os.PathLike[str], meta: dict[str, Any], name: str,
          ok: Callable[[Any], bool], expected: str, within: str = "") -> Any:
    """meta[name] if `ok` of it; else RunFileError naming `path`, the field (as a field of
    `within`, e.g. "position", if given), what it should be (`expected`) and what it is."""
    label = f"{within}.{name}" if within else name
    if name not in meta:
        raise RunFileError(path, f"field {label!r}: missing (expected {expected})")
    value = meta[name]
    if not ok(value):
        raise RunFileError(path, f"field {label!r}: expected {expected}, got {shown(value)}")
    return value


def integer(lo: int, hi: int | None = None) -> Callable[[Any], bool]:
    """Whether a value is an integer in lo..hi (no bool)."""
    return lambda v: bool(is_int(v) and lo <= v and (hi is None or v <= hi))


def number(lo: float, hi: float | None = None) -> Callable[[Any], bool]:
    """Whether a value is a finite number in [lo, hi] (an int or a float, no bool)."""
    return lambda v: bool(is_real(v) and math.isfinite(v) and lo <= v
                          and (hi is None or v <= hi))


def config_field(path: str | os.PathLike[str], meta: dict[str, Any]) -> Config:
    """The `Config` of the field `config` of `meta`; RunFileError unless it is an object that
    `config_from_dict` accepts."""
    fields_ = field(path, meta, "config", lambda v: isinstance(v, dict),
                    "an object (a configuration)")
    try:
        return config_from_dict(fields_)
    except (TypeError, ValueError) as err:          # ConfigError, ConfigTypeError, unknown fields
        raise RunFileError(path, f"field 'config': not a configuration this code accepts "
                                 f"({err})") from None


def check_history(path: str | os.PathLike[str], meta: dict[str, Any],
                  last: int) -> dict[str, list[Any]]:
    """The field `history` of `meta` if it is the history of a run after `last` steps: an
    object with a list for each of `harness.HISTORY_KEYS`, all of one length, `step`
    increasing integers in 1..last, the others numbers; else RunFileError naming the field."""
    keys = ", ".join(HISTORY_KEYS)
    history = field(path, meta, "history", lambda v: isinstance(v, dict) and
                    set(v) == set(HISTORY_KEYS), f"an object with the lists {keys}")
    for key in HISTORY_KEYS:
        values, integers = history[key], key == "step"
        if not isinstance(values, list) or not all(map(is_int if integers else is_real, values)):
            raise RunFileError(path, f"field 'history.{key}': expected a list of "
                                     f"{'integers' if integers else 'numbers'}, got "
                                     f"{shown(values)}")
    lengths = {len(history[key]) for key in HISTORY_KEYS}
    if len(lengths) > 1:
        found = ", ".join(f"{key} {len(history[key])}" for key in HISTORY_KEYS)
        raise RunFileError(path, f"field 'history': expected lists of one length, got {found}")
    steps = history["step"]
    if any(not 1 <= s <= last for s in steps) or any(a >= b for a, b in zip(steps, steps[1:])):
        raise RunFileError(path, f"field 'history.step': expected increasing steps in "
                                 f"1..{last}, got {shown(steps)}")
    return history
