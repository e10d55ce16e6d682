"""The options of the command line: those that set a `Config` field (from `config.LIMITS`),
the limits of the search's own, the data folder, and how `Config`'s messages name them here."""
import argparse
import os
from collections.abc import Callable, Container, Mapping
from typing import Any, NoReturn

from ..config import LIMITS, Config, ConfigError, Limit, checked_hidden
from ..report.presets import PRESETS

#: The options of `train` that set a `Config` field: option -> (field, help).
TRAIN_OPTIONS = {
    "--hidden": ("hidden", "hidden layer sizes, e.g. 50,50"),
    "--bn": ("batch_norm", "batch normalization"),
    "--bn-order": ("bn_order", "BN before or after the ReLU"),
    "--lam": ("lam", "L2 strength on the weights"),
    "--batch": ("n_batch", "mini-batch size"),
    "--schedule": ("schedule", "learning-rate schedule"),
    "--cycles": ("cycles", "cycles of the cyclical schedule"),
    "--epochs": ("epochs", "length of a one-cycle run"),
    "--eta-max": ("eta_max", "peak learning rate"),
    "--optimizer": ("optimizer", "update rule: sgd (gradient descent, with --momentum) or adamw"),
    "--weight-decay": ("weight_decay", "AdamW's decoupled weight decay"),
    "--momentum": ("momentum", "momentum (0: plain gradient descent)"),
    "--nesterov": ("nesterov", "Nesterov momentum"),
    "--dropout": ("dropout", "drop probability of hidden units"),
    "--flip": ("flip", "random horizontal flips of training images"),
    "--max-shift": ("max_shift", "random shifts of training images by up to this many pixels"),
    "--zca": ("zca", "ZCA whitening"),
    "--label-smoothing": ("label_smoothing", "label smoothing eps: targets (1 - eps) y + eps / 10"),
    "--mixup": ("mixup", "MixUp alpha: mix pairs of training images, lam ~ Beta(alpha, alpha)"),
    "--linear": ("linear", "leave out the ReLU of this many first hidden layers (a linear "
                           "bottleneck)"),
    "--swa": ("swa", "also average the weights of each epoch's end over this last part of the "
                     "run (SWA) and score them"),
    "--swa-lr": ("swa_lr", "hold this learning rate over the averaged part instead of the "
                           "one-cycle tail (0: off)"),
    "--threads": ("blas_threads", "BLAS threads (at most the machine's cores)"),
    "--init": ("init", "he, xavier or a sigma"),
    "--dtype": ("dtype", "float32 or float64"),
    "--seed": ("seed", "seed of the init, shuffling, augmentation, dropout and MixUp (0)"),
}

#: The option that sets each field: how the command line names it in the messages of errors.
OPTION_OF = {**{field: option for option, (field, _) in TRAIN_OPTIONS.items()},
             "lam_range": "--lam-range LO HI", "path": "--data"}

#: What the search command's own numeric options accept.
SEARCH_LIMITS = {"lam_range": Limit(float, 0, lo_open=True), "coarse": Limit(int, 1, 1000),
                 "fine": Limit(int, 0, 1000), "jobs": Limit(int, 1, os.cpu_count() or 1),
                 "wait_workers": Limit(float, 0, lo_open=True)}

#: The --data option (add_argument's keyword arguments), of every command that loads the data.
DATA: dict[str, Any] = {"metavar": "DIR",
                        "help": "folder with the CIFAR-10 python batches (default: $CIFAR10_DIR, "
                                "else a per-user cache, downloaded if missing)"}


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: what is wrong, where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def from_limit(field: str, limits: Mapping[str, Limit] = LIMITS) -> dict[str, Any]:
    """add_argument's keywords of an option that sets `field`, as limits[field] says: on/off
    (with its --no- form) for a bool, one of its choices for a str, else an argparse type: the
    text as a value of its kind if the limit accepts it (one of its `choices` as it is)."""
    limit = limits[field]
    if limit.kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if limit.kind is str:
        return {"choices": limit.choices}

    def parse(text: str) -> object:
        if text in limit.choices:
            return text
        try:
            value = limit.kind(text)
            limit.check(field, value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {limit.describe()}, got {text!r}") from None
        return value
    return {"type": parse}


def hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        return checked_hidden(tuple(int(m) for m in text.split(",")))
    except ConfigError as err:                 # sizes, but not a network Config accepts
        raise argparse.ArgumentTypeError(err.worded(lambda *_: repr(text))) from None
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes such as 50,50, "
                                         f"got {text!r}") from None


def config_options() -> Parser:
    """The options of a run (the preset, the Config fields, the data, --json), shared by the
    train and search commands as an argparse parent parser."""
    t = Parser(add_help=False)                     # the class of the parsers it is a parent of
    t.add_argument("--preset", choices=sorted(PRESETS), default="assignment",
                   help="starting configuration (assignment)")
    for option, (field, help_text) in TRAIN_OPTIONS.items():     # hidden: a list of sizes
        kind = {"type": hidden_sizes} if field == "hidden" else from_limit(field)
        t.add_argument(option, dest=field, help=help_text, **kind)
    # quiet, save and checkpoint: train's own options, unset for search
    t.set_defaults(seed=0, quiet=False, save=None, checkpoint=None)
    t.add_argument("--data", **DATA)
    t.add_argument("--json", action="store_true", help="print one JSON object (no progress bar)")
    return t


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Config:
    """The preset's Config with every option given on the command line replacing its field;
    settings that do not fit together are a usage error of `parser` (ConfigError)."""
    changes = {field: value for field, _ in TRAIN_OPTIONS.values()
               if (value := getattr(args, field)) is not None}
    if changes.get("schedule") == "cyclic" and "epochs" not in changes:
        changes["epochs"] = None                    # a one-cycle preset's length
    config = PRESETS[args.preset].with_(**changes)      # a ConfigError is worded by `main`
    if "cycles" in changes and config.schedule == "one_cycle":
        parser.error(f"--cycles counts the cycles of a cyclic run, and this run is one-cycle "
                     f"(--preset {args.preset}): give its length with --epochs")
    return config


def cli_words(given: Container[str], preset: str) -> Callable[..., str]:
    """How Config's messages name a field here: its option (with a value: as it is typed), and
    where its value came from if not from the command line."""
    def word(field: str, *value: object) -> str:
        option = OPTION_OF.get(field)
        if option is None:
            return f"the {field} of --preset {preset}" + (f" ({value[0]})" if value else "")
        if not value:
            return option
        v = value[0]
        if isinstance(v, bool):
            text = option if v else f"--no-{option[2:]}"
        else:
            text = f"{option} {','.join(map(str, v)) if isinstance(v, tuple) else v}"
        return text if field in given else f"{text} (from --preset {preset})"
    return word
