"""Command line: `python -m assignment3 train ...` trains one network and prints a summary."""
import argparse
import dataclasses
import json
import sys

import numpy as np

from .beyond import PRESETS
from .data import DataError, load_cifar10
from .network import BN_ORDERS
from .training import SCHEDULES, Config, DivergenceError, train


def _hidden(text):
    try:
        sizes = tuple(int(m) for m in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes such as 50,50, "
                                         f"got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"layer sizes must be >= 1, got {text!r}")
    return sizes


def _number(kind, ok, what):
    """An argparse type: `kind(text)` if it parses and satisfies `ok`, else a usage error."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


def _init(text):
    if text in ("he", "xavier"):
        return text
    return _number(float, lambda v: v > 0, "he, xavier or a positive sigma")(text)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m assignment3",
                                     description="k-layer networks with batch normalization on "
                                                 "CIFAR-10 (KTH DD2424 Assignment 3)")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one network and print a summary",
                       description="Train one network. --preset assignment (the default) is the "
                                   "assignment's 3-layer BN net (batch 100, cyclical learning rate "
                                   "1e-5..1e-1, n_s = 5 epochs, 2 cycles); --preset best is the "
                                   "best net of notebook 06. Options given override the preset.")
    number = _number(float, lambda v: v >= 0, "a number >= 0")
    positive = _number(float, lambda v: v > 0, "a positive number")
    fraction = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
    count = _number(int, lambda v: v >= 1, "an integer >= 1")
    t.add_argument("--preset", choices=sorted(PRESETS), default="assignment",
                   help="starting configuration (assignment)")
    t.add_argument("--hidden", type=_hidden, help="hidden layer sizes, e.g. 50,50")
    t.add_argument("--bn", dest="batch_norm", action=argparse.BooleanOptionalAction,
                   help="batch normalization")
    t.add_argument("--bn-order", choices=BN_ORDERS, help="BN before or after the ReLU")
    t.add_argument("--lam", type=number, help="L2 strength on the weights")
    t.add_argument("--batch", dest="n_batch", type=count, help="mini-batch size")
    t.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule")
    t.add_argument("--cycles", type=positive, help="cycles of the cyclical schedule")
    t.add_argument("--epochs", type=positive, help="length of a one-cycle run")
    t.add_argument("--eta-max", type=positive, help="peak learning rate")
    t.add_argument("--momentum", type=fraction, help="momentum (0: plain gradient descent)")
    t.add_argument("--nesterov", action=argparse.BooleanOptionalAction, help="Nesterov momentum")
    t.add_argument("--dropout", type=fraction, help="drop probability of hidden units")
    t.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help="random horizontal flips of training images")
    t.add_argument("--max-shift", type=_number(int, lambda v: 0 <= v < 32, "an integer in 0..31"),
                   help="random shifts of training images by up to this many pixels")
    t.add_argument("--zca", action=argparse.BooleanOptionalAction, help="ZCA whitening")
    t.add_argument("--threads", dest="blas_threads", type=count, help="BLAS threads")
    t.add_argument("--init", type=_init, help="he, xavier or a sigma")
    t.add_argument("--dtype", choices=("float32", "float64"))
    t.add_argument("--seed", type=int, default=0, help="seed of the init, shuffling, "
                                                        "augmentation and dropout (0)")
    t.add_argument("--data", metavar="DIR", default=None,
                   help="folder with the CIFAR-10 python batches (default: $CIFAR10_DIR, else "
                        "a per-user cache, downloaded if missing)")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def config_from_args(args, parser):
    """The preset's Config with every option given on the command line replacing its field."""
    fields = {f.name for f in dataclasses.fields(Config)}
    changes = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    try:
        return PRESETS[args.preset].with_(**changes)
    except ValueError as err:
        parser.error(str(err))


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    try:
        data = load_cifar10(args.data, dtype=np.dtype(config.dtype), progress=not args.json)
        result = train(data, config, progress=not args.json)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DivergenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{'BN' if config.batch_norm else 'no BN'} net, hidden {list(config.hidden)}, "
              f"lam {config.lam}, {result.steps} steps in {result.seconds:.1f} s: "
              f"validation accuracy {100 * result.val_accuracy:.2f}%, "
              f"test accuracy {100 * result.test_accuracy:.2f}%")
    return 0
