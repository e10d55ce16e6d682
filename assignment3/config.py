"""What a training run is: `Config`, its fields and the limits of each (`LIMITS`, which the
command line shares). `training` trains one."""
from dataclasses import dataclass, replace

from .data import D, K
from .limits import ConfigError, ConfigTypeError, Limit
from .network import BN_ORDERS

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
}


@dataclass(frozen=True)
class Config:
    """One training run. The defaults are the assignment's; the fields after `evals_per_cycle`
    go beyond it and are off by default. Every field is checked against `LIMITS` (ConfigError,
    a ValueError, or ConfigTypeError, a TypeError); `hidden` may be any sequence of sizes and
    is stored as a tuple of ints."""
    hidden: tuple = (50, 50)          # m_1, ..., m_(k-1)
    batch_norm: bool = True
    lam: float = 0.005
    n_batch: int = 100
    eta_min: float = 1e-5
    eta_max: float = 1e-1
    n_s: int | None = None            # None: 5 epochs, 5 * (n // n_batch) steps
    cycles: float = 2
    init: object = "he"               # "he", "xavier" or a float sigma
    seed: int = 0
    dtype: str = "float32"
    evals_per_cycle: int = 10         # a one-cycle run counts as one cycle
    schedule: str = "cyclic"          # or "one_cycle" (`one_cycle_lr`, eta_min -> eta_max -> 0)
    epochs: float | None = None       # length of a one-cycle run
    warmup: float = 0.2               # one-cycle warm-up, as a fraction of the run
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

    def __post_init__(self):
        object.__setattr__(self, "hidden", checked_hidden(self.hidden))
        for name, limit in LIMITS.items():
            if name != "hidden":
                limit.check(name, getattr(self, name))
        if self.eta_min > self.eta_max:
            raise ConfigError("{0} must be at least {1}", ("eta_max", self.eta_max),
                              ("eta_min", self.eta_min))
        if self.schedule == "one_cycle" and self.epochs is None:
            raise ConfigError("{0} needs its length in epochs: set {1}",
                              ("schedule", "one_cycle"), "epochs")
        if self.schedule == "cyclic" and self.epochs is not None:
            raise ConfigError("{0} is the length of a one-cycle run; a cyclic run, {1}, counts "
                              "{2} instead", ("epochs", self.epochs), ("schedule", "cyclic"),
                              "cycles")
        if self.batch_norm and self.n_batch < 2:
            raise ConfigError("{0} normalises each unit over the mini-batch, so it needs {1} >= 2",
                              ("batch_norm", True), "n_batch")
        if self.nesterov and not self.momentum:
            raise ConfigError("{0} needs {1} > 0", ("nesterov", True), "momentum")

    def with_(self, **changes):
        """A copy with some fields changed."""
        return replace(self, **changes)


def checked_hidden(hidden):
    """`hidden` as a tuple of ints, if it is a non-empty sequence of sizes within
    LIMITS["hidden"] and the network on CIFAR-10 has at most MAX_PARAMETERS parameters."""
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__len__") or not len(hidden):
        raise ConfigTypeError("{0} must be a non-empty sequence of layer sizes, got {value!r}",
                              "hidden", value=hidden)
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
