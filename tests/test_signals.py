"""assignment3.signals, with real signals sent to this process (os.kill): `signals_raise` turns
SIGTERM and SIGHUP into `Stopped` (cleanups run, then the signal goes to the handler there
before), `StopSignals` notes SIGINT, SIGTERM and SIGHUP instead of stopping, ignored signals stay
ignored, and the handlers come back afterwards. (Stops of whole processes: the download's in
tests/data/test_files.py, a training run's in test_harness.py.)"""
import os
import signal
import threading
import time

import pytest

from assignment3.signals import (
    STOP_SIGNALS,
    Stopped,
    StopSignals,
    TrainingInterrupted,
    install,
    restore,
    signals_raise,
)


def send(sig, until=lambda: True):
    """Send `sig` to this process and give Python the chance to run its handler (it runs in the
    main thread, between two bytecodes)."""
    os.kill(os.getpid(), sig)
    deadline = time.monotonic() + 5
    while not until() and time.monotonic() < deadline:
        time.sleep(0.001)


@pytest.fixture
def recorder():
    """A Python handler of SIGTERM, SIGHUP and SIGINT that records the signals it gets (so that a
    signal sent on to the previous handler cannot end the test session); the handlers of the
    session are back afterwards."""
    received = []
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, *STOP_SIGNALS)}

    def handler(signum, frame):
        received.append(signum)

    for sig in before:
        signal.signal(sig, handler)
    yield received, handler
    for sig, old in before.items():
        signal.signal(sig, old)


def test_signals_raise_turns_the_signal_into_stopped_and_resends_it(recorder):
    received, handler = recorder
    assert STOP_SIGNALS == (signal.SIGTERM, signal.SIGHUP)
    for sig in STOP_SIGNALS:
        name, cleaned = signal.Signals(sig).name, []
        with pytest.raises(Stopped, match=f"stopped by {name}") as err:
            with signals_raise():
                assert signal.getsignal(sig) is not handler
                try:
                    send(sig, until=lambda: False)      # Stopped is raised in the wait
                finally:
                    cleaned.append(True)                # cleanups run on the way out
        assert cleaned == [True], name
        assert err.value.signum == sig
        assert received == [sig], name                  # sent again to the handler before
        assert all(signal.getsignal(s) is handler for s in STOP_SIGNALS), name
        received.clear()


def test_signals_raise_without_resend_only_raises(recorder):
    received, handler = recorder
    with pytest.raises(Stopped) as err:
        with signals_raise(resend=False):
            send(signal.SIGTERM, until=lambda: False)
    assert err.value.signum == signal.SIGTERM and received == []
    assert signal.getsignal(signal.SIGTERM) is handler


def test_signals_raise_without_a_signal_changes_nothing(recorder):
    received, handler = recorder
    with signals_raise():
        value = 1 + 1
    assert value == 2 and received == []
    assert all(signal.getsignal(s) is handler for s in STOP_SIGNALS)
    with pytest.raises(ValueError, match="an error"):   # other errors pass through unchanged
        with signals_raise():
            raise ValueError("an error")
    assert all(signal.getsignal(s) is handler for s in STOP_SIGNALS)


def test_an_ignored_signal_stays_ignored(recorder):
    received, _ = recorder
    signal.signal(signal.SIGHUP, signal.SIG_IGN)                # as under nohup
    with signals_raise():
        send(signal.SIGHUP)
        time.sleep(0.01)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    with StopSignals() as stops:
        send(signal.SIGHUP)
        time.sleep(0.01)
    assert stops.received is None and received == []
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN


def test_stop_signals_note_the_first_signal_and_restore_the_handlers(recorder):
    """Each of SIGINT (no KeyboardInterrupt), SIGTERM and SIGHUP, then another one, which
    changes nothing."""
    received, handler = recorder
    ours = (signal.SIGINT, *STOP_SIGNALS)
    for first, then in zip(ours, ours[1:] + ours[:1]):
        name = signal.Signals(first).name
        with StopSignals() as stops:
            assert stops.received is None
            assert all(signal.getsignal(s) is not handler for s in ours), name
            send(first, until=lambda: stops.received)
            assert stops.received == first, name
            send(then)
            time.sleep(0.01)
        assert stops.received == first, name            # the first one is kept
        assert received == [], name
        assert all(signal.getsignal(s) is handler for s in ours), name


def test_in_another_thread_the_handlers_are_left_alone(recorder):
    """Only the main thread can set handlers: in another thread both are no-ops."""
    _, handler = recorder
    seen = []

    def work():
        with signals_raise():
            seen.append(signal.getsignal(signal.SIGTERM))
        with StopSignals() as stops:
            seen.append(signal.getsignal(signal.SIGTERM))
            seen.append(stops.previous)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [handler, handler, {}]


def test_install_and_restore(recorder):
    _, handler = recorder
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def other(signum, frame):
        pass

    previous = install((signal.SIGTERM, signal.SIGHUP), other)
    assert previous == {signal.SIGTERM: handler}               # the ignored one is left alone
    assert signal.getsignal(signal.SIGTERM) is other
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    restore(previous)
    assert signal.getsignal(signal.SIGTERM) is handler


def test_training_interrupted_says_where_it_stopped(tmp_path):
    stop = TrainingInterrupted(signal.SIGTERM, 5, 10, tmp_path / "run.ckpt")
    assert isinstance(stop, KeyboardInterrupt) and not isinstance(stop, Stopped)
    assert str(stop) == f"SIGTERM at step 5 of 10: checkpoint written to {tmp_path / 'run.ckpt'}"
    assert (stop.signum, stop.step, stop.total) == (signal.SIGTERM, 5, 10)
    assert str(TrainingInterrupted(signal.SIGINT, 1, 2, None)) == (
        "SIGINT at step 1 of 2: no checkpoint was set")
