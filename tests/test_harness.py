"""assignment3.training: a run started fresh or from its checkpoint (`Run`), and the `Harness`
around the steps: its evaluations in the background appending the history in order and raising
DivergenceError, and stopped by a real SIGINT or SIGTERM sent to this process: it writes
the checkpoint and raises TrainingInterrupted. On the synthetic data, with tiny runs."""
import os
import signal

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from assignment3.config import Config
from assignment3.nn.cost import evaluate
from assignment3.nn.network import init_params, update_moving_averages
from assignment3.nn.optim import DivergenceError, step
from assignment3.signals import TrainingInterrupted
from assignment3.store.checkpoints import Checkpoint
from assignment3.store.runfile import read
from assignment3.training import schedule, train
from assignment3.training.harness import HISTORY_KEYS, Harness, Run

#: 300 training images in mini-batches of 50: 6 steps an epoch, 40 steps, an evaluation every 4.
CONFIG = Config(hidden=(20,), n_batch=50, n_s=20, cycles=1, momentum=0.5, seed=3)


def arrays_equal(a, b):
    return all(len(a[n]) == len(b[n]) and all(np.array_equal(x, y) for x, y in zip(a[n], b[n]))
               for n in a)


def test_run_starts_fresh_from_the_seed(synthetic):
    run = Run.start(synthetic, CONFIG, None)
    fresh = init_params([3072, 20, 10], batch_norm=True, seed=3, dtype=np.float32)
    assert arrays_equal(run.flat.params, fresh)
    assert run.step == 0 and run.stats is None and run.position is None and run.earlier == 0
    assert run.history == {key: [] for key in HISTORY_KEYS}
    assert set(run.flat.vectors()) == {"velocity"}
    assert set(Run.start(synthetic, CONFIG.with_(momentum=0.0), None).flat.vectors()) == set()
    assert run.seconds() >= 0


def test_run_starts_from_its_checkpoint(synthetic, tmp_path):
    path = tmp_path / "run.ckpt"
    assert Run.start(synthetic, CONFIG, Checkpoint(path)).step == 0     # no file yet: fresh
    result = train(synthetic, CONFIG, checkpoint=Checkpoint(path))
    run = Run.start(synthetic, CONFIG, Checkpoint(path))
    assert run.step == result.steps == 40 and run.history == result.history
    assert arrays_equal(run.flat.params, result.params)
    assert all(np.array_equal(a, c) and np.array_equal(b, d)
               for (a, b), (c, d) in zip(run.stats, result.stats))
    assert run.position["batch"] == 40 % 6 and 0 < run.earlier <= result.seconds
    assert np.abs(run.flat.state["velocity"]).max() > 0                        # the momentum kept


def test_run_state_copies_on_request(synthetic):
    run = Run.start(synthetic, CONFIG, None)
    run.stats = [(np.zeros((20, 1), np.float32), np.ones((20, 1), np.float32))]
    shared, copied = run.state(), run.state(copy=True)
    assert shared.params["W"][0] is run.flat.params["W"][0]
    assert copied.params["W"][0] is not run.flat.params["W"][0]
    assert arrays_equal(copied.params, run.flat.params)
    assert copied.stats[0][0] is not run.stats[0][0]
    assert not np.shares_memory(copied.vectors["velocity"], run.flat.state["velocity"])
    run.flat.theta += 1
    assert not np.array_equal(copied.params["W"][0], run.flat.params["W"][0])


def evaluated_steps(data, run, etas, checkpoint=None, spoil=None):
    """The states of `run` after each of len(etas) steps (copies), each step evaluated in the
    Harness with its rate of `etas` (the weights made infinite after step `spoil`); then the
    Harness waits for the evaluations, raising their errors."""
    states = []
    with Harness(data, CONFIG, run, len(etas), checkpoint) as harness:
        for t, (Xb, Yb, masks, position) in enumerate(harness.inputs(cores=1)):
            stats = step(run.flat, Xb, Yb, 0.05, t, CONFIG.update, masks=masks)
            run.step, run.position = t + 1, position
            run.stats = update_moving_averages(run.stats, stats)
            if run.step == spoil:
                run.flat.params["W"][0][:] = np.inf
            states.append(run.state(copy=True))
            harness.evaluate(etas[t])
            assert len(harness.pending) <= Harness.MAX_PENDING
        harness.check(keep=0)
        assert not harness.pending
    return states


def test_evaluations_append_the_history_in_order(synthetic, tmp_path):
    etas = [0.1, 0.2, 0.3, 0.4, 0.5]
    checkpoint = Checkpoint(tmp_path / "run.ckpt")
    run = Run.start(synthetic, CONFIG, checkpoint)        # no file yet: fresh
    states = evaluated_steps(synthetic, run, etas, checkpoint)
    history = run.history                                 # the run's, as in train: the states
    assert all(state.history is history for state in states)   # hold it, the checkpoint writes it
    assert history["step"] == [1, 2, 3, 4, 5] and history["eta"] == etas
    for i, state in enumerate(states):
        for split in ("train", "val"):
            s = getattr(synthetic, split)
            res = evaluate(state.params, s.X, s.y, CONFIG.lam, state.stats)
            assert history[f"cost_{split}"][i] == res["cost"]
            assert history[f"loss_{split}"][i] == res["loss"]
            assert history[f"acc_{split}"][i] == res["accuracy"]
    _, meta = read(tmp_path / "run.ckpt")                 # each evaluation wrote its state
    assert meta["step"] == 5 and meta["history"]["step"] == [1, 2, 3, 4, 5]


def test_evaluations_raise_divergence_for_a_non_finite_cost(synthetic):
    run = Run.start(synthetic, CONFIG, None)
    with pytest.raises(DivergenceError, match=r"training diverged at step 2: mini-batch cost "
                                              r"is nan \(learning rate 0\.7\)") as err:
        evaluated_steps(synthetic, run, [0.1, 0.7], spoil=2)
    assert err.value.step == 2
    assert run.history["step"] == [1]                     # the diverged one is not in it


def test_harness_limits_blas_and_silences_overflow_while_it_runs(synthetic):
    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before, errors = blas_threads(), np.geterr()
    for threads in sorted({1, min(2, os.cpu_count() or 1)}):
        config = CONFIG.with_(blas_threads=threads)
        with Harness(synthetic, config, Run.start(synthetic, config, None), 4):
            assert blas_threads() and set(blas_threads()) == {threads}
            assert np.geterr()["over"] == np.geterr()["invalid"] == "ignore"
        assert blas_threads() == before and np.geterr() == errors


def run_until_signal(data, config, checkpoint, sig, at_step, progress=False):
    """Train as `train` does, in a Harness, sending `sig` to this process after step
    `at_step`."""
    batches = data.train.n // config.n_batch
    total, eval_every, learning_rate = schedule(config, batches)
    run = Run.start(data, config, checkpoint)
    with Harness(data, config, run, total, checkpoint, progress) as harness:
        for Xb, Yb, masks, position in harness.inputs(cores=1):
            eta = learning_rate(run.step)
            stats = step(run.flat, Xb, Yb, eta, run.step, config.update, masks=masks)
            run.step, run.position = run.step + 1, position
            run.stats = update_moving_averages(run.stats, stats)
            if run.step % eval_every == 0:
                harness.evaluate(eta)
            if run.step == at_step:
                signal.raise_signal(sig)               # a real signal, to this thread
            harness.step_done(eta)
        harness.finish(learning_rate(total - 1))
    return run


def test_a_signal_stops_the_harness_with_its_checkpoint_written(synthetic, tmp_path, capsys):
    """SIGINT or SIGTERM (SIGHUP is handled as SIGTERM: test_signals); the run then goes on from
    its checkpoint as if it had not stopped."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    whole = train(synthetic, CONFIG)
    for sig in (signal.SIGINT, signal.SIGTERM):
        name, path = signal.Signals(sig).name, tmp_path / f"{sig}.ckpt"
        with pytest.raises(TrainingInterrupted, match=f"{name} at step 9 of 40: checkpoint "
                                                       f"written to {path}") as err:
            run_until_signal(synthetic, CONFIG, Checkpoint(path), sig, at_step=9, progress=True)
        assert (err.value.signum, err.value.step, err.value.total) == (sig, 9, 40)
        assert err.value.checkpoint == path
        assert {s: signal.getsignal(s) for s in before} == before, name   # the handlers are back
        _, meta = read(path)
        assert meta["step"] == 9 and meta["history"]["step"] == [4, 8]   # the evaluations before
        assert "0/40" in capsys.readouterr().err, name                   # the bar, on stderr
        resumed = train(synthetic, CONFIG, checkpoint=Checkpoint(path))
        assert resumed.resumed_from_step == 9 and resumed.history == whole.history, name
        assert arrays_equal(resumed.params, whole.params), name


def test_a_signal_without_a_checkpoint_still_stops(synthetic):
    with pytest.raises(TrainingInterrupted, match="SIGTERM at step 3 of 40: no checkpoint was "
                                                   "set") as err:
        run_until_signal(synthetic, CONFIG, None, signal.SIGTERM, at_step=3)
    assert err.value.checkpoint is None


def test_harness_runs_to_the_end_without_a_signal(synthetic):
    run = run_until_signal(synthetic, CONFIG, None, signal.SIGTERM, at_step=-1)
    assert run.step == 40 and run.history["step"] == list(range(4, 41, 4))
    assert run.history == train(synthetic, CONFIG).history
