"""Command line: `python -m assignment3 train ...` trains one network and prints a summary;
`python -m assignment3 search ...` searches for lam, locally or on a Dask cluster; `evaluate`
re-scores a saved run, `plot` draws its learning curves. The options are in `options`, what each
command does in `commands`; here the parser and `main`, which turns every stop and refused file
into one line and an exit status.

Every value the parser accepts either runs or is a usage error: exit status 2 and one line that
names the option. The limits are `config.LIMITS`, shared with `Config`, whose messages are said
here with the options' names."""
import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .. import env
from ..config import ConfigError
from ..data import DataError
from ..env import EnvironmentValueError
from ..errors import Error
from ..nn.optim import DivergenceError
from ..scale.cluster import WAIT_WORKERS, ClusterError
from ..scale.search import SearchFileError, StageDiverged
from ..signals import Stopped, TrainingInterrupted, signals_raise
from ..store.outputs import OutputError
from ..store.runfile import RunFileError
from .commands import evaluate_command, plot_command, train_command
from .options import DATA, SEARCH_LIMITS, Parser, cli_words, config_options, from_limit

#: The exit status of each error the commands let through (an Error of a class not here is a
#: bug, and gets a traceback): 2 for what was given (settings, files, data, environment), 1 for
#: what went wrong in the work. A ConfigError is a usage error: said as the parser says its own.
EXIT_STATUS: dict[type[Error], int] = {
    ConfigError: 2, RunFileError: 2, DataError: 2, EnvironmentValueError: 2, ClusterError: 2,
    SearchFileError: 2, OutputError: 1, DivergenceError: 1, StageDiverged: 1}


#: A saved run, the argument of evaluate and plot.
SAVED_RUN = {"metavar": "PATH", "help": "a run saved with train --save"}

#: The commands: name -> (the function that does it, help, description, its arguments beyond
#: the options of a run that train and search share (`config_options`): name -> add_argument's
#: keywords).
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], str, str, dict[str, Any]]] = {
    "train": (train_command, "train one network and print a summary",
              "Train one network. --preset assignment (the default) is the assignment's 3-layer "
              "BN net (batch 100, cyclical learning rate 1e-5..1e-1, n_s = 5 epochs, 2 cycles); "
              "--preset best is the best net of notebook 06. Options given override the preset.", {
                  "--quiet": {"action": "store_true", "help": "no progress bar"},
                  "--save": {"metavar": "PATH", "help": "write the trained run to PATH (.npz)"},
                  "--checkpoint": {
                      "metavar": "PATH",
                      "help": "write the training state to PATH at every evaluation and on "
                              "Ctrl-C, SIGTERM or SIGHUP; if PATH exists, resume from it (the "
                              "same command again finishes the run exactly as without the "
                              "interruption)"}}),
    "search": (train_command, "coarse-to-fine search for lam",
               "Coarse-to-fine search for lam, by validation accuracy, of the network the other "
               "options describe (as for train): locally in --jobs processes, or on the Dask "
               "cluster of --scheduler. Trials already in --out are not trained again.", {
                   "--lam-range": {"nargs": 2, **from_limit("lam_range", SEARCH_LIMITS),
                                   "default": (1e-5, 1e-1), "metavar": ("LO", "HI"),
                                   "help": "range of the coarse stage (1e-5 1e-1)"},
                   "--coarse": {**from_limit("coarse", SEARCH_LIMITS), "default": 8,
                                "metavar": "N", "help": "lam values of the coarse stage (8)"},
                   "--fine": {**from_limit("fine", SEARCH_LIMITS), "default": 8, "metavar": "N",
                              "help": "lam values of the fine stage (8; 0: no fine stage)"},
                   "--random": {"action": "store_true", "help": "draw the values log-uniformly "
                                                               "(with --seed) instead of a grid"},
                   "--jobs": {**from_limit("jobs", SEARCH_LIMITS), "metavar": "N",
                              "help": "local worker processes (default: $ASSIGNMENT3_JOBS, else "
                                      "one per core)"},
                   "--scheduler": {"metavar": "ADDRESS",
                                   "help": f"a Dask scheduler, e.g. tcp://host:8786 (default: "
                                           f"${env.SCHEDULER}; unset: local processes)"},
                   "--wait-workers": {**from_limit("wait_workers", SEARCH_LIMITS),
                                      "metavar": "SECONDS",
                                      "help": f"on a Dask cluster, how long trials wait for a "
                                              f"scheduler without workers before the search "
                                              f"fails (default: ${env.WAIT_WORKERS}, else "
                                              f"{WAIT_WORKERS:g})"},
                   "--out": {"metavar": "FILE", "help": "record each trial in FILE (JSON lines) "
                                                        "as it finishes; if FILE exists, resume "
                                                        "its search"}}),
    "evaluate": (evaluate_command, "re-score a saved run on validation and test",
                 "Re-score a run saved with train --save on the validation and test sets (the "
                 "same data it was trained on).", {
                     "path": SAVED_RUN,
                     "--flip-average": {"action": "store_true",
                                        "help": "also the test accuracy with each image's "
                                                "probabilities averaged with its mirror image's"},
                     "--data": DATA,
                     "--json": {"action": "store_true", "help": "print one JSON object"}}),
    "plot": (plot_command, "draw the learning curves of a saved run",
             "Loss and accuracy on training and validation data against the update step, of a "
             "run saved with train --save.", {
                 "path": SAVED_RUN,
                 "--out": {"metavar": "FILE", "help": "the figure; its format by its extension "
                                                      "(png, pdf, svg, ...); default: PATH with "
                                                      ".png"}}),
}

#: Options that cannot be given together: of a command that has them, the parser refuses the
#: second, naming both.
EXCLUSIVE = ("--jobs", "--scheduler")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m assignment3",
                    description="k-layer networks with batch normalization on CIFAR-10 (KTH "
                                "DD2424 Assignment 3)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = config_options()
    for name, (handler, help_text, description, arguments) in COMMANDS.items():
        p = sub.add_parser(name, parents=[run] if handler is train_command else [],
                           help=help_text, description=description)
        p.set_defaults(parser=p, handler=handler)
        exclusive = p.add_mutually_exclusive_group() if arguments.keys() >= set(EXCLUSIVE) else p
        for option, keywords in arguments.items():
            (exclusive if option in EXCLUSIVE else p).add_argument(option, **keywords)
    return parser


class Kept:
    """A standard output stream whose loss does not stop the work: once it is closed, or its
    reader has gone (a broken pipe), writes go nowhere (progress turns itself off) and `lost`
    says so. Its descriptor then points at /dev/null, so that the interpreter's last flush is
    quiet too."""

    def __init__(self, stream: TextIO | None) -> None:
        self.lost = stream is None
        self.stream = stream or open(os.devnull, "w")

    def write(self, text: str) -> int:
        self._do(lambda: self.stream.write(text))
        return len(text)

    def flush(self) -> None:
        self._do(self.stream.flush)

    def _do(self, act: Callable[[], object]) -> None:
        if self.lost:
            return
        try:
            act()
        except (OSError, ValueError):           # EPIPE, EBADF, or the file object closed
            self.lost = True
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def __getattr__(self, name: str) -> Any:    # isatty, encoding, fileno, ...
        return getattr(self.stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status. A stop by Ctrl-C, SIGTERM or SIGHUP prints
    one line (what stopped it; during a training, how to resume it) and returns 128 + the
    signal's number, as a shell reports it. An error of `EXIT_STATUS` is one line, with the
    settings it names worded as options, and its status. Closed or broken standard streams do
    not stop the work (`Kept`; closed descriptors 0-2 become /dev/null, so that no file opened
    later takes their place); a lost stdout makes the status 1."""
    for fd in range(3):
        try:
            os.fstat(fd)
        except OSError:                         # closed: the lowest free descriptor, this one
            os.open(os.devnull, os.O_RDWR)
    streams = sys.stdout, sys.stderr
    out = Kept(sys.stdout)
    sys.stdout, sys.stderr = out, Kept(sys.stderr)
    try:
        return run(argv) or int(out.lost)
    finally:
        sys.stdout, sys.stderr = streams


def run(argv: Sequence[str] | None) -> int:
    """`main` on its streams."""
    try:
        with signals_raise(resend=False):
            args = build_parser().parse_args(argv)
            args.handler(args)
            return 0
    except tuple(EXIT_STATUS) as err:
        given = {k for k, v in vars(args).items() if v is not None}
        text = err.worded(cli_words(given, args.preset if "preset" in args else "assignment"))
        if isinstance(err, ConfigError):
            args.parser.error(text)
        print(f"error: {text}", file=sys.stderr)
        return next(status for kind, status in EXIT_STATUS.items() if isinstance(err, kind))
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
        return 128 + stop.signum
