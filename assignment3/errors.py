"""The package's errors, one family: an `Error` says what is wrong and what to do. Where it names
settings, it names them by their fields through a template, so that a caller can word them its
own way (`worded`: the command line names them by its options, `cli.options.cli_words`). Each
kind of error is defined where it arises (`config.ConfigError`, `nn.optim.DivergenceError`,
`data.DataError`, ...); the command line's exit status of each is one table, `cli.EXIT_STATUS`.
This module is the bottom of the package: every part may raise its errors, nn too."""
from collections.abc import Callable
from typing import Any


def library_word(field: str, *value: object) -> str:
    """How the library names a setting: `field`, or `field=value`."""
    return f"{field}={value[0]!r}" if value else field


class Error(Exception):
    """An error of the package. `template` is its message; with `names` or `values` it is a
    str.format template: {0}, {1}, ... for the settings `names` (each a field, or a (field,
    value) pair), and named fields for the `values`, which are also the error's attributes."""

    def __init__(self, template: str, *names: str | tuple[str, object], **values: Any) -> None:
        self.template, self.names, self.values = template, names, values
        self.__dict__.update(values)
        super().__init__(self.worded())

    def worded(self, word: Callable[..., str] = library_word) -> str:
        """The message, with each setting named by `word(field)` or `word(field, value)`."""
        if not (self.names or self.values):
            return self.template
        named = [word(*n) if isinstance(n, tuple) else word(n) for n in self.names]
        return self.template.format(*named, **self.values)

    def __reduce__(self) -> tuple[Callable[..., "Error"], tuple[Any, ...], dict[str, Any]]:
        """Pickled whole: unpickled as a new object of its class with its message and its
        attributes, without its class's __init__ (whose arguments differ from class to class)."""
        return type(self).__new__, (type(self), *self.args), self.__dict__
