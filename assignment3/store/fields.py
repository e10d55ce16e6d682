"""The JSON of a run file (`runfile`): each field checked before use, each refusal a
RunFileError naming the file and the field."""
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from ..config import Config, config_from_dict
from ..nn.checks import is_int, is_real
from ..training.harness import HISTORY_KEYS
from .runfile import RunFileError, shown

#: A check of a field's value.
Check = Callable[[Any], bool]

#: What the fields of an object must be, name -> (a check of the value, or the `Table` of the
#: fields of an object, and what it is expected to be), in the order they are checked.
Table: TypeAlias = Mapping[str, tuple["Check | Table", str]]


def field(path: str | os.PathLike[str], meta: dict[str, Any], name: str,
          ok: Check | Table, expected: str, within: str = "") -> Any:
    """meta[name] if `ok` of it (a table: if it is an object of exactly the fields of `ok`,
    each then checked by it); else RunFileError naming `path`, the field (as a field of
    `within`, e.g. "position", if given), what it should be (`expected`) and what it is."""
    label = f"{within}.{name}" if within else name
    if name not in meta:
        raise RunFileError(path, f"field {label!r}: missing (expected {expected})")
    value = meta[name]
    if not (is_object(value) and set(value) == set(ok) if isinstance(ok, Mapping) else ok(value)):
        raise RunFileError(path, f"field {label!r}: expected {expected}, got {shown(value)}")
    if isinstance(ok, Mapping):
        fields(path, value, ok, label)
    return value


def fields(path: str | os.PathLike[str], meta: dict[str, Any], table: Table,
           within: str = "") -> dict[str, Any]:
    """The fields of `table` of `meta`, each checked in turn by `field`, by name."""
    return {name: field(path, meta, name, ok, expected, within)
            for name, (ok, expected) in table.items()}


def integer(lo: int, hi: int | None = None) -> Check:
    """Whether a value is an integer in lo..hi (no bool)."""
    return lambda v: bool(is_int(v) and lo <= v and (hi is None or v <= hi))


def number(lo: float, hi: float | None = None) -> Check:
    """Whether a value is a finite number in [lo, hi] (an int or a float, no bool)."""
    return lambda v: bool(is_real(v) and math.isfinite(v) and lo <= v and (hi is None or v <= hi))


def shaped(**checks: Check) -> Check:
    """Whether a value is an object with exactly the keys of `checks`, each passing its check."""
    return lambda v: (isinstance(v, dict) and set(v) == set(checks)
                      and all(ok(v[key]) for key, ok in checks.items()))


def list_of(ok: Check, n: int | None = None) -> Check:
    """Whether a value is a list (of `n` items, if given) of which each passes `ok`."""
    return lambda v: isinstance(v, list) and n in (None, len(v)) and all(map(ok, v))


def increasing(last: int) -> Check:
    """Whether a list of integers increases within 1..last (a saved run's history steps)."""
    return lambda steps: all(1 <= s <= last for s in steps) and all(
        a < b for a, b in zip(steps, steps[1:]))


def is_object(value: Any) -> bool:
    """Whether a value is a JSON object (a dict)."""
    return isinstance(value, dict)


#: A field of a JSON object, of text and of a configuration (`fields` tables).
OBJECT, STRING = (is_object, "an object"), (lambda v: isinstance(v, str), "a string")
CONFIG = (is_object, "an object (a configuration)")


def config_field(path: str | os.PathLike[str], meta: dict[str, Any]) -> Config:
    """The `Config` of the field `config` of `meta`; RunFileError unless it is an object that
    `config_from_dict` accepts."""
    fields_ = field(path, meta, "config", *CONFIG)
    try:
        return config_from_dict(fields_)
    except (TypeError, ValueError) as err:          # ConfigError, ConfigTypeError, unknown fields
        raise RunFileError(path, f"field 'config': not a configuration this code accepts "
                                 f"({err})") from None


#: The lists of a run's history (`check_history`).
HISTORY = {key: (list_of(is_int), "a list of integers") if key == "step" else
           (list_of(is_real), "a list of numbers") for key in HISTORY_KEYS}


def check_history(path: str | os.PathLike[str], meta: dict[str, Any], steps: Check,
                  expected: str) -> dict[str, list[Any]]:
    """The field `history` of `meta` if it is the history of a run: an object with a list for
    each of `harness.HISTORY_KEYS`, all of one length, `step` integers passing `steps` (that
    is, being `expected`), the others numbers; else RunFileError naming the field."""
    history = field(path, meta, "history", HISTORY,
                    f"an object with the lists {', '.join(HISTORY_KEYS)}")
    if len({len(history[key]) for key in HISTORY_KEYS}) > 1:
        raise RunFileError(path, "field 'history': expected lists of one length, got " + ", ".join(
            f"{key} {len(history[key])}" for key in HISTORY_KEYS))
    field(path, history, "step", steps, expected, "history")
    return history
