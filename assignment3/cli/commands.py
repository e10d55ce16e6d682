"""What each command does: train (and search) a network, save it (or, failing that, keep it
elsewhere), evaluate and plot a saved run, and search for lam. Each prints its output; an error
it raises is said by `main` (a failed write: OutputError, exit status 1)."""
import argparse
import contextlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..config import Config
from ..data import Source, load_cifar10
from ..scale.cluster import worker_wait
from ..scale.search import coarse_to_fine
from ..signals import Stopped, StopSignals
from ..store.checkpoints import Checkpoint
from ..store.outputs import OutputError, check_output, hold, write_atomic
from ..store.provenance import code_version
from ..store.runs import load_run, reevaluate, save_run
from ..training import Result, train
from ..training.loop import check_machine
from .options import config_from_args


def train_command(args: argparse.Namespace) -> None:
    """The train and search commands."""
    config = config_from_args(args, args.parser)
    if args.save and args.checkpoint and \
            os.path.realpath(args.save) == os.path.realpath(args.checkpoint):
        args.parser.error("--save and --checkpoint need different paths: a checkpoint holds the "
                          "training state, a saved run the finished run")
    outputs = (("--save", args.save, "run"), ("--checkpoint", args.checkpoint, "checkpoint"),
               ("--out", getattr(args, "out", None), "search"))
    with contextlib.ExitStack() as held:
        for option, path, kind in outputs:     # checked and held before any work, to the end
            if path:
                try:
                    held.enter_context(hold(path, kind))
                except OutputError as err:
                    args.parser.error(f"{option} {err}")
        if args.command == "search":
            with worker_wait(args.wait_workers):
                search_command(args, config)
        else:
            train_and_save(args, config)


def train_and_save(args: argparse.Namespace, config: Config) -> None:
    """Train, print the summary, then save the run (`save_or_fallback`)."""
    quiet = args.json or args.quiet
    version = code_version()                   # the code that trains, not the one at the end
    check_machine(config)                      # before the data loads
    data = load_cifar10(args.data, dtype=np.dtype(config.dtype), progress=not quiet)
    checkpoint = Checkpoint(args.checkpoint) if args.checkpoint else None
    result = train(data, config, progress=not quiet, checkpoint=checkpoint)
    with StopSignals() as late:                # a stop now waits for the summary and the save
        say_and_save(args, result, version)
    if signum := result.stopped_by or late.received:
        raise Stopped(signum, " after the last step: the run was finished"
                      + (" and saved" if args.save else ""))


def say_and_save(args: argparse.Namespace, result: Result, version: str) -> None:
    """Print the summary of a finished run, then save it (`save_or_fallback`)."""
    config = result.config
    if args.json:
        print(json.dumps({**result.summary(), "resumed_from_step": result.resumed_from_step}))
    else:
        resumed = (f" (resumed from step {result.resumed_from_step})"
                   if result.resumed_from_step else "")
        print(f"{'BN' if config.batch_norm else 'no BN'} net, hidden {list(config.hidden)}, "
              f"lam {config.lam}, {result.steps} steps{resumed} in {result.seconds:.1f} s: "
              f"validation accuracy {100 * result.val_accuracy:.2f}%, "
              f"test accuracy {100 * result.test_accuracy:.2f}%" + averaged_scores(result),
              flush=True)                      # said before saving, whatever the save does
    if args.save:
        save_or_fallback(args.save, result, version)
        if not args.json:
            print(f"saved to {args.save}")


def averaged_scores(result: Result) -> str:
    """The scores of a run's averaged weights for its summary line ("" without SWA)."""
    if result.averaged is None:
        return ""
    return (f"; averaged weights (SWA): validation {100 * result.averaged.val_accuracy:.2f}%, "
            f"test {100 * result.averaged.test_accuracy:.2f}%")


#: Where a run goes when its --save path cannot be written, in this order.
FALLBACKS = (tempfile.gettempdir, Path.home, Path.cwd)


def save_or_fallback(path: str, result: Result, version: str) -> None:
    """Save the run to `path`; if that fails, to a file in the first of `FALLBACKS` (the
    temporary folder, the home folder, the working folder) that takes it, and raise OutputError
    saying where it went (or that no place took it), in one line: a finished run is never lost
    because its write failed, or the message says so."""
    try:
        save_run(path, result, version=version)
        return
    except (OSError, TypeError, ValueError) as err:   # OutputError is a ValueError
        reason = f"{err.strerror}" if isinstance(err, OSError) and err.strerror else str(err)
    stem = os.fsencode(Path(path).stem)[:64].decode(errors="ignore")    # a name that fits
    for place in FALLBACKS:
        try:
            fallback = Path(place()) / f"assignment3-unsaved-{stem}-{os.getpid()}.npz"
            save_run(fallback, result, version=version)
        except (OSError, RuntimeError, TypeError, ValueError):
            continue
        raise OutputError(f"could not write --save {path} ({reason}); the run was written to "
                          f"{fallback} instead")
    raise OutputError(f"could not write --save {path} ({reason}), nor a copy in the temporary, "
                      "home or working folder: the run was not kept (its accuracies are above)")


def evaluate_command(args: argparse.Namespace) -> None:
    result = load_run(args.path)
    data = load_cifar10(args.data, dtype=np.dtype(result.config.dtype), progress=not args.json)
    scores = reevaluate(data, result, flip_average=args.flip_average)
    stored = result.summary()
    if args.json:
        print(json.dumps({**stored, **scores}))
        return

    def said(prefix: str) -> tuple[str, str, str]:
        """Validation and test accuracy now, and as stored, of the weights `prefix` names."""
        val, test, val_then, test_then = (f"{100 * s[f'{prefix}{name}_accuracy']:.2f}%"
                                          for s in (scores, stored) for name in ("val", "test"))
        return val, test, f"(stored with the run: {val_then}, {test_then})"

    flip = (f", flip-averaged {100 * scores['test_accuracy_flip_averaged']:.2f}%"
            if args.flip_average else "")
    val, test, kept = said("")
    line = f"{args.path}: validation accuracy {val}, test accuracy {test}{flip} {kept}"
    if result.averaged is not None:
        val, test, kept = said("swa_")
        line += f"; averaged weights (SWA): validation {val}, test {test} {kept}"
    print(line)


def plot_command(args: argparse.Namespace) -> None:
    """The figure is a plain matplotlib Figure, not pyplot's: no window, whatever the backend."""
    from matplotlib.backend_bases import FigureCanvasBase
    from matplotlib.figure import Figure

    from ..report.plots import plot_curves

    out = Path(args.out or Path(args.path).with_suffix(".png"))
    fmt, formats = out.suffix.lstrip(".").lower(), FigureCanvasBase.get_supported_filetypes()
    if fmt not in formats:
        args.parser.error(f"cannot write a figure as {out.name!r}: give --out a name ending in "
                          f"one of {', '.join(sorted(formats))}")
    if fmt == "pgf" and not any(shutil.which(tex) for tex in ("xelatex", "lualatex", "pdflatex")):
        args.parser.error(f"cannot write {out.name!r}: matplotlib writes .pgf with LaTeX, which "
                          f"is not installed; give --out a .pdf or .svg name")
    try:
        check_output(out, "figure")
    except OutputError as err:
        args.parser.error(f"--out {err}" if args.out else f"{err} (the default --out is PATH "
                          f"with .png: give --out)")
    result = load_run(args.path)
    fig = Figure(figsize=(11, 3.8))
    with warnings.catch_warnings(record=True) as missing:   # glyphs of the name not in the font
        warnings.filterwarnings("always", "Glyph .* missing from font")
        for ax, quantity in zip(fig.subplots(1, 2), ("loss", "acc")):
            plot_curves({Path(args.path).stem: result}, quantity, ax=ax)
        fig.tight_layout()
        try:
            write_atomic(out, "figure", lambda f: fig.savefig(f, format=fmt))
        except OSError as err:
            raise OutputError(f"could not write {out} ({err.strerror or err})") from None
    boxes = [w for w in missing if "missing from font" in str(w.message)]
    for other in missing:
        if other not in boxes:
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    print(f"learning curves of {args.path} written to {out}" + (
        " (characters of its name that the font lacks are drawn as boxes)" if boxes else ""))


def search_command(args: argparse.Namespace, config: Config) -> None:
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
    if args.json:                              # a diverged trial: accuracies null
        print(json.dumps({"best": {k: out["best"][k] for k in fields},
                          "trials": [{k: t[k] for k in ("stage", *fields, "diverged")}
                                     for t in trials]}))
        return
    for t in trials:
        print(f"{t['stage']:6s} lam {t['lam']:.3e}: " + (
            f"diverged at step {t['diverged']['step']} (learning rate "
            f"{t['diverged']['eta']:.3g})" if t["diverged"] else
            f"validation accuracy {100 * t['val_accuracy']:.2f}%, test accuracy "
            f"{100 * t['test_accuracy']:.2f}%"))
    best = out["best"]
    print(f"best lam {best['lam']:.3e}: validation accuracy {100 * best['val_accuracy']:.2f}%, "
          f"test accuracy {100 * best['test_accuracy']:.2f}%")
