"""store.fields, the checks of a run file's JSON that `runs.read_run` and `checkpoints.Checkpoint`
use: each check table-driven here, once (that each reader reaches them, and with which bounds,
is tested with the readers, in test_runs and test_checkpoints)."""
import math
import re

import pytest

from assignment3.config import Config
from assignment3.store.fields import (
    check_history,
    config_field,
    field,
    increasing,
    integer,
    number,
)
from assignment3.store.runfile import RunFileError
from assignment3.training.harness import HISTORY_KEYS

#: (check, value, whether the value passes): integers without bools or floats, finite numbers
#: without bools, each in its bounds (both ends included).
VALUES = [
    (integer(1), 1, True), (integer(1), 0, False), (integer(1), 10.0, False),
    (integer(1), True, False), (integer(1), "1", False), (integer(1, 10), 10, True),
    (integer(1, 10), 11, False),
    (number(0), 0, True), (number(0), 2.5, True), (number(0), -1.0, False),
    (number(0), math.nan, False), (number(0), math.inf, False), (number(0), None, False),
    (number(0), "0.5", False), (number(0), True, False), (number(0, 1), 1, True),
    (number(0, 1), 1.5, False),
]


def refusal(check, *args):
    """The message of the RunFileError that `check(*args)` raises (None if it raises none)."""
    try:
        check(*args)
    except RunFileError as err:
        return str(err)
    return None


def test_integer_and_number():
    wrong = [(i, value) for i, (ok, value, passes) in enumerate(VALUES) if ok(value) is not passes]
    assert wrong == [], "(row of VALUES, value) judged wrongly"


def test_field_names_the_file_the_field_and_what_it_should_be():
    meta = {"steps": "abc", "position": {"batch": 7}, "notes": list(range(100))}
    assert field("run.npz", meta, "position", lambda v: isinstance(v, dict), "an object") == \
        meta["position"]
    assert refusal(field, "run.npz", meta, "steps", integer(1), "an integer >= 1") == \
        "run.npz: field 'steps': expected an integer >= 1, got \"abc\""
    assert refusal(field, "run.npz", meta, "seconds", number(0), "a number >= 0") == \
        "run.npz: field 'seconds': missing (expected a number >= 0)"
    assert refusal(field, "run.npz", meta["position"], "batch", integer(1, 6), "in 1..6",
                   "position") == "run.npz: field 'position.batch': expected in 1..6, got 7"
    assert refusal(field, "run.npz", meta, "notes", lambda v: False, "an object") == \
        "run.npz: field 'notes': expected an object, got " + str(meta["notes"])[:57] + "..."


HISTORY = {key: list(range(1, 11)) if key == "step" else [0.5] * 10 for key in HISTORY_KEYS}

#: The steps of a saved run's history with the last step 10, as `runs.read_run` checks them.
STEPS = (increasing(10), "increasing steps in 1..10")

#: (history, refusal of check_history with STEPS)
HISTORIES = [
    ("abc", f"field 'history': expected an object with the lists {', '.join(HISTORY_KEYS)}, got "
            "\"abc\"$"),
    ({key: HISTORY[key] for key in HISTORY_KEYS if key != "acc_val"},
     "field 'history': expected an object with the lists step, "),
    ({**HISTORY, "acc_val": "x"}, "field 'history.acc_val': expected a list of numbers, got "
                                  "\"x\"$"),
    ({**HISTORY, "acc_val": ["x"] * 10}, r"field 'history.acc_val': expected a list of numbers, "
                                         r"got \[\"x\""),
    ({**HISTORY, "step": [True] * 10}, r"field 'history.step': expected a list of integers, got "
                                       r"\[true"),
    ({**HISTORY, "eta": [0.1]}, "field 'history': expected lists of one length, got step 10, "
                                "eta 1, cost_train 10, "),
    ({**HISTORY, "step": [2, 1, *range(3, 11)]}, r"field 'history.step': expected increasing "
                                                 r"steps in 1..10, got \[2, 1, 3"),
    ({**HISTORY, "step": list(range(2, 12))}, r"field 'history.step': expected increasing steps "
                                              r"in 1..10, got \[2, 3, 4"),
    ({**HISTORY, "step": list(range(10))}, r"field 'history.step': expected increasing steps in "
                                           r"1..10, got \[0, 1, 2"),
]


def test_check_history():
    """A history of the wrong form, lists of the wrong type or length, steps out of order or
    outside 1..last: refused, naming the field; the history of steps 1..10 is taken."""
    assert check_history("run.npz", {"history": HISTORY}, *STEPS) is HISTORY
    wrong = [(i, said) for i, (history, message) in enumerate(HISTORIES)
             if not re.match(f"run.npz: {message}",
                             said := str(refusal(check_history, "run.npz", {"history": history},
                                                 *STEPS)))]
    assert wrong == [], "(row of HISTORIES, refusal) not as expected"


def test_config_field():
    """The configuration of a run file: an object that Config accepts, else refused, the error
    of Config (a ValueError of a field, a TypeError, unknown fields) in the message."""
    assert config_field("run.npz", {"config": {"hidden": [20], "lam": 0.01}}) == \
        Config(hidden=(20,), lam=0.01)
    for config, message in (
            ("abc", r"expected an object \(a configuration\), got \"abc\"$"),
            ({"n_batch": 0}, r"not a configuration this code accepts \(n_batch must be an integer "
                             r">= 1, got 0\)$"),
            ({"hidden": None}, r"not a configuration this code accepts \('NoneType'"),
            ({"colour": "red"}, r"not a configuration this code accepts \(unknown configuration "
                                r"fields \['colour'\]")):
        with pytest.raises(RunFileError, match=f"^run.npz: field 'config': {message}"):
            config_field("run.npz", {"config": config})
