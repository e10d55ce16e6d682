"""The error family (`assignment3.errors`): every error the command line maps to an exit status
is an `Error`, names the settings it involves by field (worded otherwise on demand), and pickles
whole, attributes included (errors cross process boundaries from workers)."""
import pickle
from pathlib import Path

import pytest

from assignment3.cli import EXIT_STATUS
from assignment3.config import Config, ConfigError
from assignment3.errors import Error
from assignment3.nn.optim import DivergenceError
from assignment3.scale.search import StageDiverged
from assignment3.store.runfile import RunFileError


def config_error():
    with pytest.raises(ConfigError) as err:
        Config(eta_min=0.5, eta_max=0.2)
    return err.value


@pytest.mark.parametrize("make, library, cli", [
    (config_error, "eta_max=0.2 must be at least eta_min=0.5",
     "--eta-max 0.2 must be at least --eta-min 0.5"),
    (lambda: DivergenceError(3, float("nan"), 0.5), "lower eta_max or lam, or use a smaller init",
     "lower --eta-max or --lam, or use a smaller --init"),
    (lambda: StageDiverged("fine", [1e-3]), "(lam 0.001): none trained; lower eta_max, or search "
     "smaller values with lam_range", "lower --eta-max, or search smaller values with "
     "--lam-range"),
    (lambda: RunFileError("a{b}.npz", "is empty"), "a{b}.npz: is empty", "a{b}.npz: is empty"),
    (lambda: Error("a plain message {with braces}"), "a plain message {with braces}",
     "a plain message {with braces}"),
])
def test_errors_name_settings_by_field_and_pickle_whole(make, library, cli):
    err = make()
    assert library in str(err)

    def word(field, *value):
        return f"--{field.replace('_', '-')}" + (f" {value[0]}" if value else "")
    assert cli in err.worded(word)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and str(again) == str(err)
    assert again.__dict__.keys() == err.__dict__.keys()


def test_every_error_of_the_command_line_is_of_the_family():
    assert all(issubclass(kind, Error) for kind in EXIT_STATUS)
    assert set(EXIT_STATUS.values()) == {1, 2}
    assert RunFileError(Path("x"), "y").path == Path("x")
