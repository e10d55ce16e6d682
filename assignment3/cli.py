"""Command line: `python -m assignment3 train ...` trains one network and prints a summary."""
import argparse
import json
import sys

import numpy as np

from .data import DataError, load_cifar10
from .training import Config, DivergenceError, train


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
                       description="Train one network with the assignment's defaults (batch "
                                   "100, cyclical learning rate 1e-5..1e-1, n_s = 5 epochs).")
    t.add_argument("--hidden", type=_hidden, default=(50, 50), help="hidden layer sizes (50,50)")
    t.add_argument("--bn", dest="batch_norm", action=argparse.BooleanOptionalAction,
                   default=True, help="batch normalization (default: on)")
    t.add_argument("--lam", type=_number(float, lambda v: v >= 0, "a number >= 0"),
                   default=0.005, help="L2 strength (0.005)")
    t.add_argument("--cycles", type=_number(float, lambda v: v > 0, "a positive number"),
                   default=2, help="learning-rate cycles (2)")
    t.add_argument("--seed", type=int, default=0, help="seed of the init and shuffling (0)")
    t.add_argument("--init", type=_init, default="he", help="he, xavier or a sigma (he)")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    t.add_argument("--data", metavar="DIR", default=None,
                   help="folder with the CIFAR-10 python batches (default: $CIFAR10_DIR, else "
                        "a per-user cache, downloaded if missing)")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    config = Config(hidden=args.hidden, batch_norm=args.batch_norm, lam=args.lam,
                    cycles=args.cycles, seed=args.seed, init=args.init, dtype=args.dtype)
    try:
        data = load_cifar10(args.data, dtype=np.dtype(args.dtype), progress=not args.json)
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
