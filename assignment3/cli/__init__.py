"""Command line: `python -m assignment3 train ...` trains one network and prints a summary;
`python -m assignment3 search ...` searches for lam, locally or on a Dask cluster; `evaluate`
re-scores a saved run, `plot` draws its learning curves. The options are in `options`, what each
command does in `commands`; here the parser and `main`, which turns every stop and refused file
into one line and an exit status.

Every value the parser accepts either runs or is a usage error: exit status 2 and one line that
names the option. The limits are `config.LIMITS`, shared with `Config`, whose messages are said
here with the options' names."""
import argparse
import os
import signal
import sys
from collections.abc import Sequence

from ..config import ConfigError
from ..data import DataError
from ..env import EnvironmentValueError
from ..errors import Error
from ..nn.optim import DivergenceError
from ..scale.cluster import ClusterError
from ..scale.search import SearchFileError, StageDiverged
from ..signals import Stopped, TrainingInterrupted, signals_raise
from ..store.outputs import OutputError
from ..store.runfile import RunFileError
from .commands import evaluate_command, plot_command, train_command
from .options import Parser, add_data, cli_words, config_options, search_options

#: The exit status of each error the commands let through (an Error of a class not here is a
#: bug, and gets a traceback): 2 for what was given (settings, files, data, environment), 1 for
#: what went wrong in the work. A ConfigError is a usage error: said as the parser says its own.
EXIT_STATUS: dict[type[Error], int] = {
    ConfigError: 2, RunFileError: 2, DataError: 2, EnvironmentValueError: 2, ClusterError: 2,
    SearchFileError: 2, OutputError: 1, DivergenceError: 1, StageDiverged: 1}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m assignment3",
                     description="k-layer networks with batch normalization on CIFAR-10 (KTH "
                                 "DD2424 Assignment 3)")
    sub = parser.add_subparsers(dest="command", required=True)
    config = config_options()
    t = sub.add_parser("train", parents=[config], help="train one network and print a summary",
                       description="Train one network. --preset assignment (the default) is the "
                                   "assignment's 3-layer BN net (batch 100, cyclical learning rate "
                                   "1e-5..1e-1, n_s = 5 epochs, 2 cycles); --preset best is the "
                                   "best net of notebook 06. Options given override the preset.")
    t.set_defaults(parser=t, handler=train_command)
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
    s.set_defaults(parser=s, handler=train_command, quiet=False, save=None, checkpoint=None)
    search_options(s)

    e = sub.add_parser("evaluate", help="re-score a saved run on validation and test",
                       description="Re-score a run saved with train --save on the validation and "
                                   "test sets (the same data it was trained on).")
    e.set_defaults(parser=e, handler=evaluate_command)
    e.add_argument("path", metavar="PATH", help="a run saved with train --save")
    e.add_argument("--flip-average", action="store_true",
                   help="also the test accuracy with each image's probabilities averaged with "
                        "its mirror image's")
    add_data(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("plot", help="draw the learning curves of a saved run",
                       description="Loss and accuracy on training and validation data against "
                                   "the update step, of a run saved with train --save.")
    p.set_defaults(parser=p, handler=plot_command)
    p.add_argument("path", metavar="PATH", help="a run saved with train --save")
    p.add_argument("--out", metavar="FILE", help="the figure; its format by its extension (png, "
                                                 "pdf, svg, ...); default: PATH with .png")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status. A stop by Ctrl-C, SIGTERM or SIGHUP prints
    one line (what stopped it; during a training, how to resume it) and returns 128 + the
    signal's number, as a shell reports it. An error of `EXIT_STATUS` is one line, with the
    settings it names worded as options, and its status."""
    try:
        with signals_raise(resend=False):
            args = build_parser().parse_args(argv)
            return args.handler(args)
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
        return stop.exit_status
    except BrokenPipeError:                    # the reader of our output went away (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
