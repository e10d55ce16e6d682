"""What a training run is, in one place: `Config` (one run's settings, a field per line, with the
network's wiring and the update rule as values), what each field accepts (`LIMITS`, which the
command line builds its options from), the error that names a setting (`ConfigError`) and a
configuration as JSON and back. `training.train` trains one; the report's configurations and the
command line's presets are in `report.presets`."""
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from .data import D, K
from .errors import Error
from .nn.checks import BN_ORDERS, is_bool, is_int, is_real
from .nn.network import Net
from .nn.optim import SGD, UPDATE_RULES, AdamW, Update


class ConfigError(Error, ValueError):
    """A setting out of its limits, or settings that do not fit together; the message names
    them by their fields (`Error.worded`: the command line's `--eta-max`)."""


class ConfigTypeError(ConfigError, TypeError):
    """A setting of the wrong type (a string where a bool is needed, say)."""


#: Each kind of setting: how `Limit.describe` words it, and the test of a value of that kind (a
#: str is accepted only as one of a limit's `choices`, which `Limit.check` takes first).
KINDS: dict[type, tuple[str, Callable[[object], bool]]] = {
    bool: ("True or False", is_bool), int: ("an integer", is_int), float: ("a number", is_real),
    str: ("", lambda value: False)}


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
    choices: tuple[str, ...] = ()
    optional: bool = False

    def describe(self) -> str:
        """The accepted values other than None in words, e.g. "a number in [0, 1)"."""
        what = KINDS[self.kind][0]
        lo, hi = (v if v is None or v != int(v) else int(v) for v in (self.lo, self.hi))
        if lo is not None and hi is not None:
            what += f" in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        elif lo is not None:
            what += f" {'>' if self.lo_open else '>='} {lo}"
        if self.choices:
            what = (", ".join(self.choices) + f" or {what}" if what
                    else "one of " + ", ".join(self.choices))
        return what

    def check(self, field: str, value: Any) -> None:
        """Raise ConfigTypeError or ConfigError unless `value` is accepted for `field` (a bool
        has no range: only its kind is checked)."""
        if (value is None and self.optional) or (isinstance(value, str) and value in self.choices):
            return
        problem = f"{{0}} must be {self.describe()}{' or None' if self.optional else ''}, " \
                  f"got {{value!r}}"
        if not KINDS[self.kind][1](value):
            raise ConfigTypeError(problem, field, value=value)
        if not math.isfinite(value) or not self._in_range(value):
            raise ConfigError(problem, field, value=value)

    def _in_range(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)


SCHEDULES = ("cyclic", "one_cycle")

#: Widest hidden layer, and most parameters, of a network `Config` accepts: 50 million
#: parameters are 200 MB per copy in float32, and training holds about five copies (parameters,
#: gradients, velocity, evaluation copies) besides the 830 MB of a default run.
MAX_WIDTH = 16_384
MAX_PARAMETERS = 50_000_000

#: What each field of `Config` accepts (`hidden`: each layer size). The command line builds its
#: argument types from this table.
LIMITS = {
    "hidden": Limit(int, 1, MAX_WIDTH),
    "batch_norm": Limit(bool),
    "lam": Limit(float, 0),
    "n_batch": Limit(int, 1),
    "eta_min": Limit(float, 0, lo_open=True),
    "eta_max": Limit(float, 0, lo_open=True),
    "n_s": Limit(int, 1, 1_000_000, optional=True),
    "cycles": Limit(float, 0, 1000, lo_open=True),
    "init": Limit(float, 0, lo_open=True, choices=("he", "xavier")),
    "seed": Limit(int, 0),
    "dtype": Limit(str, choices=("float32", "float64")),
    "evals_per_cycle": Limit(int, 1, 1000),
    "schedule": Limit(str, choices=SCHEDULES),
    "epochs": Limit(float, 0, 10_000, lo_open=True, optional=True),
    "warmup": Limit(float, 0, 1, lo_open=True, hi_open=True),
    "optimizer": Limit(str, choices=tuple(UPDATE_RULES)),
    "momentum": Limit(float, 0, 1, hi_open=True),
    "nesterov": Limit(bool),
    "bn_order": Limit(str, choices=BN_ORDERS),
    "dropout": Limit(float, 0, 1, hi_open=True),
    "flip": Limit(bool),
    "max_shift": Limit(int, 0, 31),
    "zca": Limit(bool),
    "blas_threads": Limit(int, 1),
    "label_smoothing": Limit(float, 0, 1, hi_open=True),
    "mixup": Limit(float, 0, 100),
    "swa": Limit(float, 0, 1),
    "swa_lr": Limit(float, 0),
    "linear": Limit(int, 0),
    "weight_decay": Limit(float, 0),
}


@dataclass(frozen=True)
class Config:
    """One training run. The defaults are the assignment's; the fields after `evals_per_cycle`
    go beyond it and are off by default. Every field is checked against `LIMITS` (ConfigError,
    a ValueError, or ConfigTypeError, a TypeError); `hidden` may be any sequence of sizes and
    is stored as a tuple of ints."""
    hidden: tuple[int, ...] = (50, 50)  # m_1, ..., m_(k-1)
    batch_norm: bool = True
    lam: float = 0.005
    n_batch: int = 100
    eta_min: float = 1e-5
    eta_max: float = 1e-1
    n_s: int | None = None            # None: 5 epochs, 5 * (n // n_batch) steps
    cycles: float = 2
    init: str | float = "he"          # "he", "xavier" or a float sigma
    seed: int = 0
    dtype: str = "float32"
    evals_per_cycle: int = 10         # a one-cycle run counts as one cycle
    schedule: str = "cyclic"          # or "one_cycle" (`one_cycle_lr`, eta_min -> eta_max -> 0)
    epochs: float | None = None       # length of a one-cycle run
    warmup: float = 0.2               # one-cycle warm-up, as a fraction of the run
    optimizer: str = "sgd"            # the update rule: "sgd" or "adamw" (`nn.optim`)
    momentum: float = 0.0             # v = momentum v + grad; theta -= eta v
    nesterov: bool = False            # theta -= eta (grad + momentum v)
    bn_order: str = "before"          # BN "before" or "after" the ReLU
    dropout: float = 0.0              # drop probability of every hidden unit (inverted dropout)
    flip: bool = False                # random horizontal flips of the training mini-batches
    max_shift: int = 0                # random shifts of up to max_shift pixels (dy, dx)
    zca: bool = False                 # ZCA whitening fitted on the training split
    blas_threads: int = 1             # BLAS threads of the training steps
    label_smoothing: float = 0.0      # targets (1 - eps) y + eps / K
    mixup: float = 0.0                # MixUp of mini-batch pairs, lam ~ Beta(mixup, mixup); 0: off
    swa: float = 0.0                  # average the weights of each epoch's end in the run's last
                                      # swa part (SWA, `nn.swa`), scored beside them; 0: off
    swa_lr: float = 0.0               # SWA's constant learning rate over that part (a one-cycle
                                      # run falls to it when the part starts); 0: off
    linear: int = 0                   # the first `linear` hidden layers have no ReLU: a linear
                                      # bottleneck (Lin et al. 2015); 0: every layer has one
    weight_decay: float = 0.0         # AdamW's decoupled weight decay: W *= 1 - eta weight_decay

    def __post_init__(self) -> None:
        for name in LIMITS:                    # numpy scalars as Python values, for JSON
            object.__setattr__(self, name, python_value(getattr(self, name)))
        object.__setattr__(self, "hidden", checked_hidden(self.hidden))
        for name, limit in LIMITS.items():
            if name != "hidden":
                limit.check(name, getattr(self, name))
        for broken, error in CONFLICTS:
            if broken(self):
                raise error(self)

    @property
    def net(self) -> Net:
        """The network's wiring: BN before or after the ReLU, the hidden layers without one."""
        return Net(self.bn_order, self.linear)

    @property
    def update(self) -> Update:
        """The update rule with its settings."""
        if self.optimizer == "adamw":
            return AdamW(self.lam, self.weight_decay)
        return SGD(self.lam, self.momentum, self.nesterov)

    def with_(self, **changes: Any) -> "Config":
        """A copy with some fields changed."""
        return replace(self, **changes)


#: The settings that do not fit together, in the order `Config` checks them: (when the rule is
#: broken, the error saying so).
CONFLICTS: list[tuple[Callable[[Config], object], Callable[[Config], ConfigError]]] = [
    (lambda c: c.eta_min > c.eta_max,
     lambda c: ConfigError("{0} must be at least {1}", ("eta_max", c.eta_max),
                           ("eta_min", c.eta_min))),
    (lambda c: c.schedule == "one_cycle" and c.epochs is None,
     lambda c: ConfigError("{0} needs its length in epochs: set {1}", ("schedule", "one_cycle"),
                           "epochs")),
    (lambda c: c.schedule == "cyclic" and c.epochs is not None,
     lambda c: ConfigError("{0} is the length of a one-cycle run; a cyclic run, {1}, counts {2} "
                           "instead", ("epochs", c.epochs), ("schedule", "cyclic"), "cycles")),
    (lambda c: c.batch_norm and c.n_batch < 2,
     lambda c: ConfigError("{0} normalises each unit over the mini-batch, so it needs {1} >= 2",
                           ("batch_norm", True), "n_batch")),
    (lambda c: c.linear >= len(c.hidden),
     lambda c: ConfigError("{0} leaves no hidden layer with a ReLU ({n} hidden layer{s}): the "
                           "network would be linear", ("linear", c.linear), n=len(c.hidden),
                           s="s" if len(c.hidden) > 1 else "")),
    (lambda c: c.swa_lr and not (c.swa and c.schedule == "one_cycle"),
     lambda c: ConfigError("{0} is the learning rate over the averaged part of a one-cycle run: "
                           "set {1} and {2}", ("swa_lr", c.swa_lr), "swa",
                           ("schedule", "one_cycle"))),
    (lambda c: c.swa_lr > c.eta_max,
     lambda c: ConfigError("{0} must be at most {1}", ("swa_lr", c.swa_lr),
                           ("eta_max", c.eta_max))),
    (lambda c: c.nesterov and not c.momentum,
     lambda c: ConfigError("{0} needs {1} > 0", ("nesterov", True), "momentum")),
    (lambda c: c.optimizer == "adamw" and c.momentum,
     lambda c: ConfigError("{0} is SGD's: {1} keeps its own moving average of the gradient",
                           ("momentum", c.momentum), ("optimizer", "adamw"))),
    (lambda c: c.optimizer == "sgd" and c.weight_decay,
     lambda c: ConfigError("{0} is AdamW's decoupled weight decay: set {1} to adamw, or use {2} "
                           "for SGD", ("weight_decay", c.weight_decay), "optimizer", "lam")),
]


def python_value(value: Any) -> Any:
    """`value` with numpy scalars (and 0-d arrays) as the Python bool, int, float or str they
    hold; anything else as it is."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    return value


def checked_hidden(hidden: Any) -> tuple[int, ...]:
    """`hidden` as a tuple of ints, if it is a non-empty sequence of sizes within
    LIMITS["hidden"] and the network on CIFAR-10 has at most MAX_PARAMETERS parameters."""
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (Sequence, np.ndarray)) \
            or not len(hidden):
        raise ConfigTypeError("{0} must be a non-empty sequence of layer sizes (a list or tuple, "
                              "in order), got {value!r}", "hidden", value=hidden)
    for m in hidden:
        try:
            LIMITS["hidden"].check("hidden", m)
        except ConfigError as err:
            raise type(err)(f"every layer size in {{0}} must be {LIMITS['hidden'].describe()}, "
                            f"got {{value!r}}", "hidden", value=m) from None
    hidden = tuple(int(m) for m in hidden)
    dims = [D, *hidden, K]
    n = sum((m_in + 1) * m_out for m_in, m_out in zip(dims[:-1], dims[1:]))
    if n > MAX_PARAMETERS:
        raise ConfigError("{0} makes a network of {n:,} parameters on CIFAR-10 ({mb:,.0f} MB "
                          "per copy in float32, and training holds about five copies): at most "
                          "{most:,} are allowed", ("hidden", hidden), n=n, mb=4 * n / 1e6,
                          most=MAX_PARAMETERS)
    return hidden


def config_dict(config: Config) -> dict[str, Any]:
    """A `Config` as a JSON-ready dict (hidden as a list)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}


def config_from_dict(fields_: dict[str, Any]) -> Config:
    """The `Config` of a `config_dict`. Raises ValueError naming unknown fields."""
    unknown = set(fields_) - {f.name for f in fields(Config)}
    if unknown:
        raise ValueError(f"unknown configuration fields {sorted(unknown)} (written by a newer "
                         "version of the code?)")
    values: dict[str, Any] = {k: tuple(v) if k == "hidden" else v for k, v in fields_.items()}
    return Config(**values)
