"""Command line: `python -m assignment3 train ...` trains one network and prints a summary;
`python -m assignment3 search ...` searches for lam, locally or on a Dask cluster; `evaluate`
re-scores a saved run, `plot` draws its learning curves.

Every value the parser accepts either runs or is a usage error: exit status 2 and one line that
names the option. The limits are `config.LIMITS`, shared with `Config`, whose messages are said
here with the options' names."""
import argparse
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Callable, Container, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import env
from .config import LIMITS, PRESETS, Config, ConfigError, Limit, checked_hidden
from .data import DataError, Source, load_cifar10
from .env import EnvironmentValueError
from .nn.optim import DivergenceError
from .scale.cluster import ClusterError
from .scale.search import SearchFileError, coarse_to_fine
from .signals import Stopped, TrainingInterrupted, signals_raise
from .store.checkpoints import Checkpoint
from .store.provenance import code_version
from .store.runfile import RunFileError, write_atomic
from .store.runs import load_run, reevaluate, save_run
from .training import train

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
    "--momentum": ("momentum", "momentum (0: plain gradient descent)"),
    "--nesterov": ("nesterov", "Nesterov momentum"),
    "--dropout": ("dropout", "drop probability of hidden units"),
    "--flip": ("flip", "random horizontal flips of training images"),
    "--max-shift": ("max_shift", "random shifts of training images by up to this many pixels"),
    "--zca": ("zca", "ZCA whitening"),
    "--label-smoothing": ("label_smoothing", "label smoothing eps: targets (1 - eps) y + eps / 10"),
    "--mixup": ("mixup", "MixUp alpha: mix pairs of training images, lam ~ Beta(alpha, alpha)"),
    "--threads": ("blas_threads", "BLAS threads (at most the machine's cores)"),
    "--init": ("init", "he, xavier or a sigma"),
    "--dtype": ("dtype", "float32 or float64"),
    "--seed": ("seed", "seed of the init, shuffling, augmentation, dropout and MixUp (0)"),
}

#: The option that sets each field: how the command line names it in Config's messages.
OPTION_OF = {field: option for option, (field, _) in TRAIN_OPTIONS.items()}

#: What the search command's own numeric options accept.
SEARCH_LIMITS = {"lam_range": Limit(float, 0, lo_open=True), "coarse": Limit(int, 1, 1000),
                 "fine": Limit(int, 0, 1000), "jobs": Limit(int, 1, os.cpu_count() or 1)}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: what is wrong, where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _typed(field: str, limits: Mapping[str, Limit] = LIMITS) -> Callable[[str], object]:
    """An argparse type for `field`: the text as a value of its kind, if limits[field] accepts
    it (one of its `choices` as it is)."""
    limit = limits[field]

    def parse(text: str) -> object:
        if text in limit.choices:
            return text
        try:
            value = limit.kind(text)
            limit.check(field, value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {limit.describe()}, got {text!r}") from None
        return value
    return parse


def _hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(m) for m in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes such as 50,50, "
                                         f"got {text!r}") from None
    try:
        return checked_hidden(sizes)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(err.worded(lambda *_: repr(text))) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m assignment3",
                     description="k-layer networks with batch normalization on CIFAR-10 (KTH "
                                 "DD2424 Assignment 3)")
    sub = parser.add_subparsers(dest="command", required=True)
    config = _config_options()
    t = sub.add_parser("train", parents=[config], help="train one network and print a summary",
                       description="Train one network. --preset assignment (the default) is the "
                                   "assignment's 3-layer BN net (batch 100, cyclical learning rate "
                                   "1e-5..1e-1, n_s = 5 epochs, 2 cycles); --preset best is the "
                                   "best net of notebook 06. Options given override the preset.")
    t.set_defaults(parser=t, handler=_train)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--save", metavar="PATH", help="write the trained run to PATH (.npz)")
    t.add_argument("--checkpoint", metavar="PATH",
                   help="write the training state to PATH at every evaluation and on Ctrl-C, "
                        "SIGTERM or SIGHUP; if PATH exists, resume from it (the same command "
                        "again finishes the run exactly as without the interruption)")
    s = sub.add_parser("search", parents=[config], help="coarse-to-fine search for lam",
                       description="Coarse-to-fine search for lam, by validation accuracy, of the "
                                   "network the other options describe (as for train): locally "
                                   "in --jobs processes, or on the Dask cluster of --scheduler. "
                                   "Trials already in --out are not trained again.")
    s.set_defaults(parser=s, handler=_train, quiet=False, save=None, checkpoint=None)
    _search_options(s)

    e = sub.add_parser("evaluate", help="re-score a saved run on validation and test",
                       description="Re-score a run saved with train --save on the validation and "
                                   "test sets (the same data it was trained on).")
    e.set_defaults(parser=e, handler=_evaluate)
    e.add_argument("path", metavar="PATH", help="a run saved with train --save")
    e.add_argument("--flip-average", action="store_true",
                   help="also the test accuracy with each image's probabilities averaged with "
                        "its mirror image's")
    _add_data(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("plot", help="draw the learning curves of a saved run",
                       description="Loss and accuracy on training and validation data against "
                                   "the update step, of a run saved with train --save.")
    p.set_defaults(parser=p, handler=_plot)
    p.add_argument("path", metavar="PATH", help="a run saved with train --save")
    p.add_argument("--out", metavar="FILE", help="the figure; its format by its extension (png, "
                                                 "pdf, svg, ...); default: PATH with .png")
    return parser


def _config_options() -> _Parser:
    """The options of a run (the preset, the Config fields, the data, --json), shared by the
    commands as an argparse parent parser."""
    t = _Parser(add_help=False)                     # the class of the parsers it is a parent of
    t.add_argument("--preset", choices=sorted(PRESETS), default="assignment",
                   help="starting configuration (assignment)")
    for option, (field, help_text) in TRAIN_OPTIONS.items():
        limit = LIMITS[field]
        kind: dict[str, Any]                        # add_argument's keyword arguments
        if field == "hidden":
            kind = {"type": _hidden}
        elif limit.kind is bool:
            kind = {"action": argparse.BooleanOptionalAction}
        elif limit.kind is str:
            kind = {"choices": limit.choices}
        else:
            kind = {"type": _typed(field)}
        t.add_argument(option, dest=field, help=help_text, **kind)
    t.set_defaults(seed=0)
    _add_data(t)
    t.add_argument("--json", action="store_true", help="print one JSON object (no progress bar)")
    return t


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="folder with the CIFAR-10 python batches (default: $CIFAR10_DIR, "
                             "else a per-user cache, downloaded if missing)")


def _search_options(s: argparse.ArgumentParser) -> None:
    """The search command's own options, added to its parser `s`."""
    s.add_argument("--lam-range", nargs=2, type=_typed("lam_range", SEARCH_LIMITS),
                   default=(1e-5, 1e-1), metavar=("LO", "HI"),
                   help="range of the coarse stage (1e-5 1e-1)")
    s.add_argument("--coarse", type=_typed("coarse", SEARCH_LIMITS), default=8, metavar="N",
                   help="lam values of the coarse stage (8)")
    s.add_argument("--fine", type=_typed("fine", SEARCH_LIMITS), default=8, metavar="N",
                   help="lam values of the fine stage (8; 0: no fine stage)")
    s.add_argument("--random", action="store_true",
                   help="draw the values log-uniformly (with --seed) instead of a grid")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=_typed("jobs", SEARCH_LIMITS), metavar="N",
                       help="local worker processes (default: $ASSIGNMENT3_JOBS, else one per "
                            "core)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help=f"a Dask scheduler, e.g. tcp://host:8786 (default: "
                            f"${env.SCHEDULER}; unset: local processes)")
    s.add_argument("--out", metavar="FILE", help="record each trial in FILE (JSON lines) as it "
                                                 "finishes; if FILE exists, resume its search")


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Config:
    """The preset's Config with every option given on the command line replacing its field;
    settings that do not fit together are a usage error of `parser`."""
    fields = {f.name for f in dataclasses.fields(Config)}
    changes = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    preset = PRESETS[args.preset]
    if changes.get("schedule") == "cyclic" and "epochs" not in changes:
        changes["epochs"] = None                    # a one-cycle preset's length
    try:
        config = preset.with_(**changes)
    except ConfigError as err:
        parser.error(err.worded(_cli_words(changes, args.preset)))
    if "cycles" in changes and config.schedule == "one_cycle":
        parser.error(f"--cycles counts the cycles of a cyclic run, and this run is one-cycle "
                     f"(--preset {args.preset}): give its length with --epochs")
    return config


def _cli_words(given: Container[str], preset: str) -> Callable[..., str]:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status. A stop by Ctrl-C, SIGTERM or SIGHUP prints
    one line (what stopped it; during a training, how to resume it) and returns 128 + the
    signal's number, as a shell reports it. A run or checkpoint file that cannot be used is
    one line and exit status 2."""
    try:
        with signals_raise(resend=False):
            args = build_parser().parse_args(argv)
            return args.handler(args)
    except RunFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        print(f"stopped by {signal.Signals(stop.signum).name} at step {stop.step} of "
              f"{stop.total}; " + (f"checkpoint written to {stop.checkpoint}: run the same "
                                   "command again to resume" if stop.checkpoint else
                                   "nothing kept: add --checkpoint PATH to be able to resume"),
              file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("stopped by Ctrl-C", file=sys.stderr)
        return 128 + signal.SIGINT
    except Stopped as stop:
        print(stop, file=sys.stderr)
        return stop.exit_status


def _train(args: argparse.Namespace) -> int:
    """The train and search commands."""
    config = config_from_args(args, args.parser)
    paths = [Path(p).resolve() for p in (args.save, args.checkpoint) if p]
    if len(paths) == 2 and paths[0] == paths[1]:
        args.parser.error("--save and --checkpoint need different paths: a checkpoint holds the "
                          "training state, a saved run the finished run")
    for option, path in (("--save", args.save), ("--checkpoint", args.checkpoint)):
        if path and not Path(path).resolve().parent.is_dir():
            args.parser.error(f"{option} {path}: the folder {Path(path).resolve().parent} does "
                              "not exist; create it first")
    quiet = args.json or args.quiet
    try:
        if args.command == "search":
            return _search(args, config)
        version = code_version()               # the code that trains, not the one at the end
        data = load_cifar10(args.data, dtype=np.dtype(config.dtype), progress=not quiet)
        checkpoint = Checkpoint(args.checkpoint) if args.checkpoint else None
        result = train(data, config, progress=not quiet, checkpoint=checkpoint)
    except ConfigError as err:                 # the run does not fit the data or the machine
        given = {k for k, v in vars(args).items() if v is not None}
        args.parser.error(err.worded(_cli_words(given, args.preset)))
    except (DataError, EnvironmentValueError, ClusterError, SearchFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DivergenceError as err:
        print(f"error: {err.message('--eta-max', '--lam', '--init')}", file=sys.stderr)
        return 1
    if args.save:
        save_run(args.save, result, version=version)
    if args.json:
        print(json.dumps({**result.summary(), "resumed_from_step": result.resumed_from_step}))
    else:
        resumed = (f" (resumed from step {result.resumed_from_step})"
                   if result.resumed_from_step else "")
        print(f"{'BN' if config.batch_norm else 'no BN'} net, hidden {list(config.hidden)}, "
              f"lam {config.lam}, {result.steps} steps{resumed} in {result.seconds:.1f} s: "
              f"validation accuracy {100 * result.val_accuracy:.2f}%, "
              f"test accuracy {100 * result.test_accuracy:.2f}%"
              + (f"; saved to {args.save}" if args.save else ""))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    result = load_run(args.path)
    try:
        data = load_cifar10(args.data, dtype=np.dtype(result.config.dtype),
                            progress=not args.json)
    except (DataError, EnvironmentValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    scores = reevaluate(data, result, flip_average=args.flip_average)
    summary = {**result.summary(), "test_accuracy": scores["test"], "val_accuracy": scores["val"]}
    if args.flip_average:
        summary["test_accuracy_flip_averaged"] = scores["test, flip-averaged"]
    if args.json:
        print(json.dumps(summary))
    else:
        flip = (f", flip-averaged {100 * scores['test, flip-averaged']:.2f}%"
                if args.flip_average else "")
        print(f"{args.path}: validation accuracy {100 * scores['val']:.2f}%, test accuracy "
              f"{100 * scores['test']:.2f}%{flip} (stored with the run: "
              f"{100 * result.val_accuracy:.2f}%, {100 * result.test_accuracy:.2f}%)")
    return 0


def _plot(args: argparse.Namespace) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    from .report.plots import plot_curves

    out = Path(args.out or Path(args.path).with_suffix(".png"))
    fmt, formats = out.suffix.lstrip(".").lower(), FigureCanvasBase.get_supported_filetypes()
    if fmt not in formats:
        args.parser.error(f"cannot write a figure as {out.name!r}: give --out a name ending in "
                          f"one of {', '.join(sorted(formats))}")
    result = load_run(args.path)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    label = Path(args.path).stem
    for ax, quantity in zip(axes, ("loss", "acc")):
        plot_curves({label: result}, quantity, ax=ax)
    fig.tight_layout()
    write_atomic(out, lambda f: fig.savefig(f, format=fmt))
    print(f"learning curves of {args.path} written to {out}")
    return 0


def _search(args: argparse.Namespace, config: Config) -> int:
    """The search command: run it, print the trials and the best one."""
    if args.lam is not None:
        args.parser.error("search chooses lam: give the range it searches with --lam-range LO HI")
    lo, hi = args.lam_range
    if not lo < hi:
        args.parser.error(f"--lam-range needs LO < HI, got {lo} {hi}")
    out = coarse_to_fine(Source(args.data, dtype=config.dtype), config, coarse=(lo, hi),
                         n_coarse=args.coarse, n_fine=args.fine, random=args.random,
                         seed=args.seed, n_jobs=args.jobs, scheduler=args.scheduler,
                         out=args.out, progress=not args.json)
    fields = ("lam", "val_accuracy", "test_accuracy")
    trials = out["coarse"] + out["fine"]
    if args.json:
        print(json.dumps({"best": {k: out["best"][k] for k in fields},
                          "trials": [{k: t[k] for k in ("stage", *fields)} for t in trials]}))
        return 0
    for t in trials:
        print(f"{t['stage']:6s} lam {t['lam']:.3e}: validation accuracy "
              f"{100 * t['val_accuracy']:.2f}%, test accuracy {100 * t['test_accuracy']:.2f}%")
    best = out["best"]
    print(f"best lam {best['lam']:.3e}: validation accuracy {100 * best['val_accuracy']:.2f}%, "
          f"test accuracy {100 * best['test_accuracy']:.2f}%")
    return 0
