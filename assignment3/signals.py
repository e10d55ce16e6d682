"""Stops by signal, in one place. Python turns Ctrl-C (SIGINT) into KeyboardInterrupt, so every
`finally` on the way out runs, but a SIGTERM (`kill`, a job scheduler, a notebook server) or
SIGHUP (a closed terminal) ends the process at once: worker processes are orphaned and temporary
files stay. Inside `signals_raise()` these two raise `Stopped` instead, so the same cleanups run;
then the signal is sent again to the handler that was there before (by default: the process
ends, with the exit status of the signal). A training run instead notes the signal
(`StopSignals`) and stops at the end of its current step, after writing its checkpoint."""
import multiprocessing
import multiprocessing.util
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any] | int | None

#: The signals that `signals_raise` turns into `Stopped`.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """The process received a stop signal (`signum`). A BaseException, like KeyboardInterrupt,
    so that `except Exception` does not swallow it. `done`: what was finished first, if any."""

    def __init__(self, signum: int, done: str = "") -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}{done}")


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextmanager
def signals_raise(resend: bool = True) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Stopped` (in the main thread; other threads
    cannot take signals, and signals that are ignored, as under nohup, stay ignored: `install`).
    When `Stopped` leaves the block, the previous handlers are back and, with `resend`, the
    signal is sent again to them; without `resend` (a command line that reports the stop
    itself) it propagates. A process that the re-sent signal ends (the default handler) first
    runs the cleanups of multiprocessing that a normal exit runs (`_exit_cleanups`)."""
    previous = install(STOP_SIGNALS, _raise_stopped)
    try:
        yield
    except Stopped as stop:
        restore(previous)
        if resend and stop.signum in previous:
            if previous[stop.signum] == signal.SIG_DFL:
                _exit_cleanups()
            signal.raise_signal(stop.signum)
        raise
    finally:
        restore(previous)


def _exit_cleanups() -> None:
    """Run multiprocessing's finalizers of exit priority 0 and above, as a normal exit does
    (the process is about to end by a signal, which skips them): the semaphores of queues and
    locks that joblib's executor still holds (a task stuck on its way to killed workers keeps
    them alive) are unlinked, so that loky's resource tracker has no "leaked semlock objects" to
    report. A failing cleanup does not keep the process from ending."""
    with suppress(Exception):                      # the signal ends the process all the same
        multiprocessing.util._run_finalizers(0)  # type: ignore[attr-defined]


def install(signals: tuple[int, ...], handler: Handler) -> dict[int, Handler]:
    """Set `handler` for each of `signals` that is not ignored (as under nohup) and has a
    Python-level handler; returns the handlers it replaced, for `restore`. In another thread
    than the main thread, which alone can set handlers, it sets none."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {sig: signal.getsignal(sig) for sig in signals}
    previous = {sig: h for sig, h in previous.items() if h not in (signal.SIG_IGN, None)}
    for sig in previous:
        signal.signal(sig, handler)
    return previous


def restore(handlers: dict[int, Handler]) -> None:
    """Set the handlers `install` returned back."""
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


class StopSignals:
    """In its `with` block, SIGINT and the `STOP_SIGNALS` (SIGTERM, SIGHUP) set `received` (the
    signal's number) instead of stopping the program, if this is the main thread of the main
    process: threads cannot set handlers, and joblib's workers keep theirs (the process that
    started them stops them). Ignored signals (as under nohup) stay ignored. The previous
    handlers come back at the end."""

    def __enter__(self) -> "StopSignals":
        self.received: int | None = None
        self.previous = (install((signal.SIGINT, *STOP_SIGNALS), self._receive)
                         if multiprocessing.parent_process() is None else {})
        return self

    def _receive(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signum

    def __exit__(self, *exc: object) -> None:
        restore(self.previous)


class TrainingInterrupted(KeyboardInterrupt):
    """`train` stopped on SIGINT, SIGTERM or SIGHUP at the end of step `step` of `total`, after
    writing its `checkpoint` (a path, or None if the run had none). A KeyboardInterrupt, so that
    code that does not know it (a notebook, a script, an `except Exception`) treats it like
    Ctrl-C: it stops the program instead of being handled as an error of the run. (Not a
    `Stopped`, which the code around re-sends as a signal: the stop is done here.)"""

    def __init__(self, signum: int, step: int, total: int, checkpoint: Path | None) -> None:
        self.signum, self.step, self.total, self.checkpoint = signum, step, total, checkpoint
        super().__init__(f"{signal.Signals(signum).name} at step {step} of {total}: " + (
            f"checkpoint written to {checkpoint}" if checkpoint else "no checkpoint was set"))
