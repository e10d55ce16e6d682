"""Checkpoints: a run writes its whole state at every evaluation and when it is stopped, and the
same run given the checkpoint again finishes bit for bit as the run never interrupted (stopped
by real signals, in this process or in a real `python -m assignment3` killed at any point); a
checkpoint of another configuration, other data, other maths, a damaged file or a saved run is
refused and left as it is."""
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from assignment3.config import Config, config_dict
from assignment3.report.presets import BEST
from assignment3.signals import TrainingInterrupted
from assignment3.store import runfile
from assignment3.store.checkpoints import Checkpoint, data_fingerprint, is_random_state
from assignment3.store.provenance import code_version, machine
from assignment3.store.runfile import RunFileError
from assignment3.store.runs import load_run, save_run
from assignment3.training import MATH_VERSION, train
from tests.conftest import make_synthetic
from tests.store.test_runfile import deflated_zeros, members_of, npy_header, write_zip
from tests.store.test_runs import HISTORY, MISSING, changed, craft, same_run

#: A short run on the synthetic data with every random stream (shuffling, flips and shifts,
#: dropout, MixUp) and momentum: 200 steps, an evaluation (and checkpoint) every 10.
STREAMS = Config(hidden=(16,), n_s=100, cycles=1, n_batch=50, evals_per_cycle=20, momentum=0.9,
                 nesterov=True, dropout=0.1, flip=True, max_shift=2, mixup=0.2,
                 label_smoothing=0.1)
TINY = Config(hidden=(10,), n_s=10, cycles=0.5, n_batch=50)


def checkpoint_step(path):
    return runfile.read(path)[1]["step"]


def test_checkpoint_holds_the_finished_run(synthetic, tmp_path):
    path = tmp_path / "ckpt.npz"
    result = train(synthetic, STREAMS, checkpoint=Checkpoint(path))
    arrays, meta = runfile.read(path)
    assert meta["kind"] == "checkpoint" and meta["step"] == result.steps == 200
    assert meta["config"] == config_dict(STREAMS) and meta["math_version"] == MATH_VERSION
    assert meta["data"] == data_fingerprint(synthetic) and meta["history"] == result.history
    assert meta["code_version"] == code_version() and meta["machine"] == machine()
    assert arrays.keys() == {*runfile.param_arrays(result.params, result.stats), "velocity"}
    assert arrays["velocity"].ndim == 1 and np.any(arrays["velocity"])     # the momentum's
    again = train(synthetic, STREAMS, checkpoint=Checkpoint(path))      # nothing left to do
    assert again.resumed_from_step == result.steps
    same_run(again, result)
    assert again.test_accuracy == result.test_accuracy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


def test_run_stopped_by_a_signal_resumes_to_the_same_run(synthetic, tmp_path):
    """SIGTERM to this process once the first checkpoint is written: the run stops at the end of
    its step, writes the checkpoint there and raises TrainingInterrupted; given the checkpoint
    again, it finishes as the run never interrupted (parameters, averages, history, scores)."""
    reference = train(synthetic, STREAMS)
    path = tmp_path / "ckpt.npz"
    late = []                              # a signal that came after the run: the test fails

    def stop_after_first_checkpoint():
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: late.append(signum))
    thread = threading.Thread(target=stop_after_first_checkpoint, daemon=True)
    try:
        thread.start()
        with pytest.raises(TrainingInterrupted, match="SIGTERM at step .* of 200: checkpoint "
                                                      "written to") as stop:
            train(synthetic, STREAMS, checkpoint=Checkpoint(path))
        thread.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert late == []
    assert stop.value.signum == signal.SIGTERM and stop.value.checkpoint == path
    assert 10 <= stop.value.step < 200 and checkpoint_step(path) == stop.value.step
    resumed = train(synthetic, STREAMS, checkpoint=Checkpoint(path))
    assert resumed.resumed_from_step == stop.value.step
    same_run(resumed, reference)
    assert (resumed.val_accuracy, resumed.test_accuracy, resumed.steps) == \
        (reference.val_accuracy, reference.test_accuracy, reference.steps)


@pytest.fixture
def checkpoint(synthetic, tmp_path):
    """(path, bytes) of the checkpoint of the TINY run."""
    path = tmp_path / "ckpt.npz"
    train(synthetic, TINY, checkpoint=Checkpoint(path))
    return path, path.read_bytes()


def refusal(data, config, path):
    """The message of the RunFileError with which the run of `config` on `data` refuses the
    checkpoint `path` (None if it resumes it); the file is left as it was."""
    before = path.read_bytes()
    try:
        train(data, config, checkpoint=Checkpoint(path))
    except RunFileError as err:
        return str(err)
    finally:
        assert path.read_bytes() == before, f"{path} changed"
    return None


def refused(data, config, path, message):
    """The run of `config` on `data` refuses the checkpoint `path` with `message` (a regular
    expression) and leaves it as it was."""
    said = refusal(data, config, path)
    assert re.search(message, str(said)), said


def test_checkpoint_of_another_configuration_is_refused(synthetic, checkpoint):
    refused(synthetic, TINY.with_(lam=0.01), checkpoint[0],
            r"ckpt.npz: was written for another configuration \(lam: 0.005 there, 0.01 here\)")
    refused(synthetic, TINY.with_(hidden=(12,), seed=3), checkpoint[0],
            r"another configuration \(hidden: \[10\] there, \[12\] here; seed: 0 there, 3 here\)")


def test_checkpoint_from_before_a_new_config_field_is_resumed(synthetic, checkpoint):
    """A checkpoint written before Config had a field (here `swa`) holds a configuration
    without it: the field's default is what that code did, so a run with the default resumes
    it, and a run with another value refuses it, naming the field."""
    path = checkpoint[0]
    arrays, meta = runfile.read(path)
    older = {key: value for key, value in meta["config"].items() if key != "swa"}
    runfile.write(path, arrays, {**meta, "config": older})
    refused(synthetic, TINY.with_(swa=0.5), path,
            r"another configuration \(swa: 0.0 there, 0.5 here\)")
    resumed = train(synthetic, TINY, checkpoint=Checkpoint(path))
    assert resumed.resumed_from_step == resumed.steps
    same_run(resumed, train(synthetic, TINY))


def test_checkpoint_of_other_data_is_refused(checkpoint):
    refused(make_synthetic(seed=1), TINY, checkpoint[0], "was written for other data")
    refused(make_synthetic(n_train=350), TINY, checkpoint[0], "was written for other data")


def test_checkpoint_of_other_maths_is_refused(synthetic, checkpoint):
    path = checkpoint[0]
    arrays, meta = runfile.read(path)
    runfile.write(path, arrays, {**meta, "math_version": MATH_VERSION - 1})
    refused(synthetic, TINY, path, f"was written by code whose maths differ \\(math version "
                                   f"{MATH_VERSION - 1}, this code's is {MATH_VERSION}")


def test_saved_run_given_as_checkpoint_is_refused(synthetic, tmp_path):
    save_run(tmp_path / "run.npz", train(synthetic, TINY))
    refused(synthetic, TINY, tmp_path / "run.npz", "is a saved run, not a checkpoint; give "
                                                   "--checkpoint a path of its own")


def test_damaged_checkpoint_is_refused(synthetic, checkpoint):
    """Cut in half, or its first bytes lost: refused as corrupt, and left as it is."""
    path, whole = checkpoint
    for damaged in (whole[:len(whole) // 2], b"\0" * 100 + whole[100:]):
        path.write_bytes(damaged)
        refused(synthetic, TINY, path, "it may be truncated or corrupt")


#: TINY with momentum: its checkpoint holds the velocity.
MOMENTUM = TINY.with_(momentum=0.9)


@pytest.fixture(scope="module")
def stored(synthetic, tmp_path_factory):
    """(arrays, meta) of the checkpoint of the MOMENTUM run (10 steps, 6 mini-batches an epoch,
    evaluations at steps 2, 4, ..., 10)."""
    path = tmp_path_factory.mktemp("stored") / "momentum.npz"
    train(synthetic, MOMENTUM, checkpoint=Checkpoint(path))
    return runfile.read(path)


STATE = r"expected a PCG64 random state, got "

#: (field, value, one-line refusal) of the JSON of the MOMENTUM run's checkpoint: a value of the
#: wrong type, or that this run cannot be at, for each field (the checks of `store.fields`
#: themselves are tested in test_fields, of a random state in test_random_states).
CHECKPOINT_FIELDS = [
    ("kind", "figure", r"field 'kind': expected \"checkpoint\", got \"figure\"$"),
    ("code_version", 5, "field 'code_version': expected a string, got 5$"),
    ("machine", "x", "field 'machine': expected an object, got \"x\"$"),
    ("math_version", "1", "field 'math_version': expected an integer >= 0, got \"1\"$"),
    ("config", "abc", r"field 'config': expected an object \(a configuration\), got \"abc\"$"),
    ("data", "abc", r"field 'data': expected an object \{\"sizes\": \[3 integers\], \"crc32\": "
                    r"an integer\}, got \"abc\"$"),
    ("data.sizes", [300, 100], r"field 'data': expected an object .*, got \{\"sizes\": "),
    ("step", -5, r"field 'step': expected an integer in 1..10 \(the steps of this run; a "
                 r"checkpoint is written after a step\), got -5$"),
    ("position", {"x": 1}, r"field 'position': expected an object with \"epoch\", \"batch\" and "
                           r"\"streams\" \(where the input stream stands\), got \{\"x\": 1\}$"),
    ("position.epoch", "abc", f"field 'position.epoch': {STATE}\"abc\"$"),
    ("position.batch", 7, r"field 'position.batch': expected an integer in 1..6 \(the "
                          r"mini-batches of an epoch\), got 7$"),
    ("position.streams.mixup", MISSING, r"field 'position.streams': expected an object with the "
                                        "random states of shuffle, augment, dropout, mixup, got"),
    ("position.streams.shuffle", 5, f"field 'position.streams.shuffle': {STATE}5$"),
    ("history", "abc", f"field 'history': expected an object with the lists {HISTORY}, got "
                       "\"abc\"$"),
    ("history.step", [2, 4, 6, 8, 9], r"field 'history.step': expected the evaluations of this "
                                      r"run up to step 10 \(every 2 steps and at the last\), "
                                      r"\[2, 4, 6, 8, 10\], got \[2, 4, 6, 8, 9\]$"),
    ("seconds", "abc", "field 'seconds': expected a number >= 0, got \"abc\"$"),
]


def test_each_json_field_of_a_checkpoint_is_checked(synthetic, stored, tmp_path):
    """Each field of the wrong type, or not one this run can be at (a step of -5 was once
    resumed, as another run; a position past the epoch's mini-batches, a history other than
    its evaluations): refused in one line naming the file and the field, the file left as it
    is."""
    arrays, meta = stored
    wrong = []
    for key, value, message in CHECKPOINT_FIELDS:
        path = craft(tmp_path / "ckpt.npz", arrays, changed(meta, key, value))
        said = refusal(synthetic, MOMENTUM, path)
        if not re.match(f"{path}: {message}", str(said)):
            wrong.append((key, value, said))
    assert wrong == [], "(field, value, refusal) not as expected"


def test_random_states():
    """What a checkpoint's position holds for each input stream: a PCG64 state as numpy gives
    it, and nothing else."""
    state = np.random.default_rng(0).bit_generator.state
    assert is_random_state(state)
    assert is_random_state(changed(state, "has_uint32", 1))
    bad = [("bit_generator", "MT19937"), ("state", 5), ("state.state", -1),
           ("state.state", 1 << 128), ("state.inc", 1.5), ("state.extra", 1), ("has_uint32", 2),
           ("has_uint32", True), ("uinteger", 1 << 32), ("extra", 1)]
    assert [(key, value) for key, value in bad if is_random_state(changed(state, key, value))] \
        == []
    assert not is_random_state("abc") and not is_random_state(None)


def test_arrays_of_a_checkpoint_are_checked(synthetic, stored, tmp_path):
    """The optimiser's velocity missing or of another size, a layer more: refused before the
    array is read."""
    arrays, meta = stored
    n = arrays["velocity"].size                     # 30,860: the net's parameters
    cases = [
        ({k: v for k, v in arrays.items() if k != "velocity"},
         "misses the array velocity of its configuration's optimiser$"),
        ({**arrays, "velocity": arrays["velocity"][:-1]},
         rf"array velocity: expected shape \({n},\) float32 \(its configuration's optimiser\), "
         rf"got shape \({n - 1},\) float32; the file is damaged or not of this run$"),
        ({**arrays, "W_2": arrays["W_1"]}, r"array W_2: not part of the network of its "
                                           r"configuration \(2 layers, with batch norm\)")]
    wrong = []
    for i, (file_arrays, message) in enumerate(cases):
        path = craft(tmp_path / "ckpt.npz", file_arrays, meta)
        said = refusal(synthetic, MOMENTUM, path)
        if not re.match(f"{path}: {message}", str(said)):
            wrong.append((i, said))
    assert wrong == [], "(case, refusal) not as expected"


def test_a_member_declaring_another_shape_is_refused_unread(synthetic, checkpoint, tmp_path):
    """A W_0 declaring 160 MiB (of zeros, 160 kB compressed): refused from its header."""
    members = members_of(checkpoint[0])
    members["W_0.npy"] = deflated_zeros(npy_header((10, 1 << 22)), 10 << 24)
    write_zip(tmp_path / "bomb.npz", members)
    refused(synthetic, TINY, tmp_path / "bomb.npz",
            r"array W_0: expected shape \(10, 3072\) float32 \(its configuration's network\), "
            r"got shape \(10, 4194304\) float32")


def test_what_is_no_file_is_named_and_never_blocks(synthetic, tmp_path):
    """A folder, a FIFO (nobody writes to it), /dev/null and a link to nothing given as the
    checkpoint: refused in one line saying what it is, in a thread that never blocks."""
    os.mkfifo(tmp_path / "fifo.npz")
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "dangling.npz").symlink_to(tmp_path / "gone.npz")
    for path, problem in ((tmp_path / "folder.npz", "is a folder, not a file"),
                          (tmp_path / "fifo.npz", r"is a FIFO \(named pipe\), not a file"),
                          (pathlib.Path("/dev/null"), "is a device, not a file"),
                          (tmp_path / "dangling.npz", "is a symbolic link to a file that does "
                                                      "not exist")):
        raised: list[RunFileError] = []

        def resume(path=path, raised=raised):
            try:
                train(synthetic, TINY, checkpoint=Checkpoint(path))
            except RunFileError as err:
                raised.append(err)
        thread = threading.Thread(target=resume, daemon=True)
        thread.start()
        thread.join(30)
        assert not thread.is_alive(), f"resuming from {path} blocked"
        with pytest.raises(RunFileError, match=f"^{path}: {problem}$"):
            raise raised[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.npz", "fifo.npz",
                                                          "folder.npz"]


def test_train_refuses_such_checkpoint_paths_in_one_line(tmp_path):
    """`train --checkpoint` of a folder, a FIFO or /dev/null: exit status 2, one line saying
    what it is, before any data is loaded, and no process blocks."""
    os.mkfifo(tmp_path / "fifo.npz")
    (tmp_path / "folder.npz").mkdir()
    running = {path: subprocess.Popen(
        [sys.executable, "-m", "assignment3", "train", "--data", str(tmp_path / "no data"),
         "--checkpoint", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for path in (tmp_path / "fifo.npz", tmp_path / "folder.npz", "/dev/null")}
    for (path, proc), what in zip(running.items(), ("a FIFO", "a folder", "a device")):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and out == "" and err.count("\n") == 1, err
        assert f"--checkpoint {path} is {what}" in err and "Traceback" not in err


def test_data_fingerprint_tells_data_apart(synthetic):
    assert data_fingerprint(synthetic) == data_fingerprint(make_synthetic())
    assert data_fingerprint(synthetic)["sizes"] == [300, 100, 100]
    assert data_fingerprint(synthetic) != data_fingerprint(make_synthetic(seed=1))


# ---------------------------------------------------------------------------------------------
# The command line on the real data: runs killed at any point resume exactly


#: A short CLI run with every random stream (shuffling, flips and shifts, dropout, MixUp), label
#: smoothing and momentum: the best preset cut to a 32-unit net and half an epoch (88 steps, 11
#: evaluations).
SHORT = ["train", "--preset", "best", "--hidden", "32", "--epochs", "0.5", "--no-zca",
         "--threads", "1", "--seed", "3", "--mixup", "0.2", "--label-smoothing", "0.1", "--json"]
SHORT_STEPS = round(0.5 * (45000 // 256))
SHORT_CONFIG = BEST.with_(hidden=(32,), epochs=0.5, zca=False, blas_threads=1, seed=3, mixup=0.2,
                          label_smoothing=0.1)


@pytest.fixture(scope="module")
def short_run(cifar10, tmp_path_factory):
    """(Result, checkpoint path) of the SHORT run, trained here: the run the CLI makes."""
    ckpt = tmp_path_factory.mktemp("short") / "ckpt.npz"
    return train(cifar10, SHORT_CONFIG, checkpoint=Checkpoint(ckpt)), ckpt


@pytest.fixture
def cli(cifar10_dir):
    """Run `python -m assignment3 *args` on the real data: a finished CompletedProcess, or with
    popen=True the running Popen."""
    env = {**os.environ, "CIFAR10_DIR": str(cifar10_dir)}

    def run(*args, popen=False):
        command = [sys.executable, "-m", "assignment3", *map(str, args)]
        if popen:
            return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=env)
        return subprocess.run(command, capture_output=True, text=True, env=env)
    return run


def wait_for(condition, proc, timeout=60):
    """Poll `condition` (busily: a checkpoint write lasts milliseconds) until it holds; fail if
    `proc` ends or the time runs out first."""
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended first: {proc.communicate()}"
        assert time.monotonic() < end, "timed out"


@pytest.mark.slow
def test_run_killed_at_several_points_resumes_to_the_same_run(cli, tmp_path, short_run):
    """SIGKILL right after the first checkpoint, after a later one, and during a checkpoint
    write (the write's temporary file is left behind); each time the same command resumes.
    The finished run equals the run never interrupted (here, in this process): JSON summary
    (but its seconds) and parameters, history, averages."""
    reference = short_run[0]
    ckpt = tmp_path / "ckpt.npz"

    def partial():
        return any(p.name.endswith(".partial") for p in tmp_path.iterdir())

    command = [*SHORT, "--checkpoint", ckpt, "--save", tmp_path / "resumed.npz"]
    killed_at = []

    def kill_when(condition):
        proc = cli(*command, popen=True)
        wait_for(condition, proc)
        proc.kill()
        proc.communicate()                    # and closes its pipes
        assert proc.returncode == -signal.SIGKILL
        killed_at.append(checkpoint_step(ckpt))

    kill_when(ckpt.exists)
    kill_when(lambda: checkpoint_step(ckpt) >= killed_at[0] + 2 * (SHORT_STEPS // 10))
    for _ in range(10):                  # until a kill lands inside a write (it lasts ~10 ms)
        kill_when(partial)
        if partial():
            break
    assert partial(), "no kill landed during a checkpoint write in 10 tries"
    assert 0 < killed_at[0] < killed_at[1] <= killed_at[2] < SHORT_STEPS

    finished = cli(*command)
    assert finished.returncode == 0, finished.stderr
    ours, theirs = json.loads(finished.stdout), json.loads(json.dumps(reference.summary()))
    assert ours.pop("resumed_from_step") == killed_at[-1] > 0
    ours.pop("seconds"), theirs.pop("seconds")
    assert ours == theirs
    same_run(load_run(tmp_path / "resumed.npz"), reference)
    assert not partial()                 # removed by the next run holding the checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_with_a_checkpoint_and_a_resume_line(cli, tmp_path, short_run, signum,
                                                          code):
    ckpt = tmp_path / "ckpt.npz"
    proc = cli(*SHORT, "--checkpoint", ckpt, popen=True)
    wait_for(ckpt.exists, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"stopped by {signal.Signals(signum).name} at step" in err
    assert f"checkpoint written to {ckpt}: run the same command again to resume" in err
    step = int(err.split(" at step ")[1].split()[0])
    assert checkpoint_step(ckpt) == step                # written at the step it stopped at
    resumed = cli(*SHORT, "--checkpoint", ckpt)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["resumed_from_step"] == step
    assert summary["test_accuracy"] == short_run[0].test_accuracy
    assert summary["val_accuracy"] == short_run[0].val_accuracy


@pytest.mark.slow
def test_refused_checkpoint_is_one_line_and_kept(cli, tmp_path, short_run):
    """`train --checkpoint` of the SHORT run's checkpoint (88 steps, 175 mini-batches an epoch)
    damaged, given to another configuration, with a step of -5 (once resumed, as another run)
    or a position past the epoch's end: exit status 2, one line naming the file and why, the
    file as it was."""
    whole = short_run[1].read_bytes()
    arrays, meta = runfile.read(short_run[1])
    cases = {
        "cut": ([], "not a readable run file (not an .npz archive); it may be truncated or "
                    "corrupt, or another kind of file"),
        "lam": (["--lam", "0.01"], "was written for another configuration (lam: 0.00025 there, "
                                   "0.01 here). Use another checkpoint path for this run, or "
                                   "delete the file to start over"),
        "step": ([], "field 'step': expected an integer in 1..88 (the steps of this run; a "
                     "checkpoint is written after a step), got -5"),
        "batch": ([], "field 'position.batch': expected an integer in 1..175 (the mini-batches "
                      "of an epoch), got 176")}
    files = {name: tmp_path / f"{name}.npz" for name in cases}
    files["cut"].write_bytes(whole[:len(whole) // 2])
    files["lam"].write_bytes(whole)
    craft(files["step"], arrays, changed(meta, "step", -5))
    craft(files["batch"], arrays, changed(meta, "position.batch", 176))
    names = list(cases)
    for pair in (names[i:i + 2] for i in range(0, len(names), 2)):      # two runs at a time
        running = {name: (files[name].read_bytes(),
                          cli(*SHORT, *cases[name][0], "--checkpoint", files[name], popen=True))
                   for name in pair}
        for name, (before, proc) in running.items():
            out, err = proc.communicate(timeout=300)
            assert (proc.returncode, out, err) == (2, "", f"error: {files[name]}: "
                                                          f"{cases[name][1]}\n")
            assert files[name].read_bytes() == before
