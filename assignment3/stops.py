"""Stops by signal. Python turns Ctrl-C (SIGINT) into KeyboardInterrupt, so every `finally` on
the way out runs, but a SIGTERM (`kill`, a job scheduler, a notebook server) or SIGHUP (a closed
terminal) ends the process at once: worker processes are orphaned and temporary files stay.
Inside `signals_raise()` these two raise `Stopped` instead, so the same cleanups run; then the
signal is sent again to the handler that was there before (by default: the process ends, with
the exit status of the signal)."""
import signal
import threading
from contextlib import contextmanager

#: The signals that `signals_raise` turns into `Stopped`.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """The process received a stop signal (`signum`). A BaseException, like KeyboardInterrupt,
    so that `except Exception` does not swallow it."""

    def __init__(self, signum):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_status(self):
        """The shell's exit status for a process ended by this signal: 128 + signal number."""
        return 128 + self.signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


@contextmanager
def signals_raise(resend=True):
    """Within the block, SIGTERM and SIGHUP raise `Stopped` (in the main thread; other threads
    cannot take signals, and signals that are ignored, as under nohup, stay ignored). When
    `Stopped` leaves the block, the previous handlers are back and, with `resend`, the signal is
    sent again to them; without `resend` (a command line that reports the stop itself) it
    propagates."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = install(STOP_SIGNALS, _raise_stopped)
    try:
        yield
    except Stopped as stop:
        restore(previous)
        if resend and stop.signum in previous:
            signal.raise_signal(stop.signum)
        raise
    finally:
        restore(previous)


def install(signals, handler):
    """Set `handler` for each of `signals` that is not ignored (as under nohup) and has a
    Python-level handler; returns the handlers it replaced, for `restore`. Main thread only."""
    previous = {sig: signal.getsignal(sig) for sig in signals}
    previous = {sig: h for sig, h in previous.items() if h not in (signal.SIG_IGN, None)}
    for sig in previous:
        signal.signal(sig, handler)
    return previous


def restore(handlers):
    """Set the handlers `install` returned back."""
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
