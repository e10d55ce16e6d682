"""`python -m assignment3 ...`: the command line. A Ctrl-C while its modules load ends it with one
status, 130, and no traceback: numpy turns one inside its own import into an ImportError, which
is a Ctrl-C here if SIGINT came."""
import signal

_interrupted: list[int] = []


def _on_sigint(signum: int, frame: object) -> None:
    _interrupted.append(signum)
    raise KeyboardInterrupt


signal.signal(signal.SIGINT, _on_sigint)
try:
    from .cli import main
except (KeyboardInterrupt, ImportError):
    if not _interrupted:
        raise
    raise SystemExit(130) from None

raise SystemExit(main())
