"""Runs kept on disk: the run format, save and load, `evaluate` and `plot`, checkpoints that
resume a run killed at any point (real processes, real signals) bit for bit, and the files that
are refused."""
import json
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from assignment3 import runfile
from assignment3.beyond import BEST
from assignment3.parallel import train_many
from assignment3.runfile import RunFileError
from assignment3.runs import load_run, read_run, save_run
from assignment3.training import MATH_VERSION, Config, TrainingInterrupted, train

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
    return train(cifar10, SHORT_CONFIG, checkpoint=ckpt), ckpt


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


def same_run(a, b):
    """Two Results hold the same parameters (values and dtype), averages and history."""
    assert a.config == b.config and a.history == b.history
    for name in a.params:
        assert len(a.params[name]) == len(b.params[name])
        for x, y in zip(a.params[name], b.params[name]):
            assert x.dtype == y.dtype and np.array_equal(x, y)
    assert len(a.stats) == len(b.stats)
    for (mu_a, v_a), (mu_b, v_b) in zip(a.stats, b.stats):
        assert np.array_equal(mu_a, mu_b) and np.array_equal(v_a, v_b)


def checkpoint_step(path):
    return runfile.read(path)[1]["step"]


def wait_for(condition, proc, timeout=60):
    """Poll `condition` (busily: a checkpoint write lasts milliseconds) until it holds; fail if
    `proc` ends or the time runs out first."""
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended first: {proc.communicate()}"
        assert time.monotonic() < end, "timed out"


@pytest.mark.parametrize("config", [
    Config(hidden=(30, 20), bn_order="after", schedule="one_cycle", epochs=1, n_batch=50,
           momentum=0.9, dropout=0.1),
    Config(hidden=(20,), batch_norm=False, n_s=10, cycles=1, init=0.01, dtype="float32")])
def test_saved_run_loads_back_exactly(small_data, tmp_path, config):
    result = train(small_data, config)
    save_run(tmp_path / "run.npz", result, notes={"why": "a test"}, version="abc")
    loaded, meta = read_run(tmp_path / "run.npz")
    same_run(result, loaded)
    assert all(getattr(loaded, k) == getattr(result, k) for k in
               ("steps", "epochs", "seconds", "val_accuracy", "test_accuracy"))
    assert meta["notes"] == {"why": "a test"} and meta["code_version"] == "abc"
    assert meta["math_version"] == MATH_VERSION and meta["machine"]["cores"] == os.cpu_count()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]      # no temporary left


def test_failed_save_leaves_no_file(small_data, tmp_path):
    result = train(small_data, Config(hidden=(10,), n_s=5, cycles=0.2))
    with pytest.raises(TypeError):
        save_run(tmp_path / "run.npz", result, notes={"not json": object()})
    assert list(tmp_path.iterdir()) == []


def test_evaluate_gives_the_runs_own_scores(cli, tmp_path):
    trained = cli("train", "--hidden", "20", "--cycles", "0.02", "--seed", "1", "--json",
                  "--save", tmp_path / "run.npz")
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["resumed_from_step"] == 0
    rescored = cli("evaluate", tmp_path / "run.npz", "--json", "--flip-average")
    assert rescored.returncode == 0, rescored.stderr
    again = json.loads(rescored.stdout)
    assert again["test_accuracy"] == summary["test_accuracy"]
    assert again["val_accuracy"] == summary["val_accuracy"]
    assert {k: again[k] for k in ("steps", "epochs", "config")} == \
        {k: summary[k] for k in ("steps", "epochs", "config")}
    assert 0.1 < again["test_accuracy_flip_averaged"] < 1
    text = cli("evaluate", tmp_path / "run.npz")
    assert f"test accuracy {100 * summary['test_accuracy']:.2f}%" in text.stdout


def test_plot_writes_the_format_of_the_extension(cli, small_data, tmp_path):
    save_run(tmp_path / "run.npz", train(small_data, Config(hidden=(10,), n_s=10, cycles=1)))
    for args, out, magic in ((), "run.png", b"\x89PNG"), (("--out", tmp_path / "c.pdf"),
                                                          "c.pdf", b"%PDF"):
        proc = cli("plot", tmp_path / "run.npz", *args)
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / out).read_bytes().startswith(magic)
    proc = cli("plot", tmp_path / "run.npz", "--out", tmp_path / "c.xyz")
    assert proc.returncode == 2 and "give --out a name ending in one of" in proc.stderr
    assert not (tmp_path / "c.xyz").exists()


def test_run_killed_at_several_points_resumes_to_the_same_run(cli, tmp_path, short_run):
    """SIGKILL right after the first checkpoint, after a later one, and during a checkpoint
    write (the write's temporary file is left behind); each time the same command resumes.
    The finished run equals the run never interrupted (here, in this process): JSON summary
    (but its seconds) and parameters, history, averages."""
    reference = short_run[0]
    ckpt, partial = tmp_path / "ckpt.npz", tmp_path / "ckpt.npz.partial"
    command = [*SHORT, "--checkpoint", ckpt, "--save", tmp_path / "resumed.npz"]
    killed_at = []

    def kill_when(condition):
        proc = cli(*command, popen=True)
        wait_for(condition, proc)
        proc.kill()
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        killed_at.append(checkpoint_step(ckpt))

    kill_when(ckpt.exists)
    kill_when(lambda: checkpoint_step(ckpt) >= killed_at[0] + 2 * (SHORT_STEPS // 10))
    for _ in range(10):                  # until a kill lands inside a write (it lasts ~10 ms)
        kill_when(partial.exists)
        if partial.exists():
            break
    assert partial.exists(), "no kill landed during a checkpoint write in 10 tries"
    assert 0 < killed_at[0] < killed_at[1] <= killed_at[2] < SHORT_STEPS

    finished = cli(*command)
    assert finished.returncode == 0, finished.stderr
    ours, theirs = json.loads(finished.stdout), json.loads(json.dumps(reference.summary()))
    assert ours.pop("resumed_from_step") == killed_at[-1] > 0
    ours.pop("seconds"), theirs.pop("seconds")
    assert ours == theirs
    same_run(load_run(tmp_path / "resumed.npz"), reference)
    assert not partial.exists()                          # the next write replaced it


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


def test_sigint_without_checkpoint_says_how_to_keep_a_run(cli):
    proc = cli(*SHORT, "--epochs", "5", popen=True)       # 10x longer than SHORT
    time.sleep(3)                                        # inside training, or still loading
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "add --checkpoint PATH" in err or err.strip() == "stopped by Ctrl-C"


def test_corrupt_checkpoint_is_refused_and_kept(cli, tmp_path, short_run):
    ckpt = tmp_path / "ckpt.npz"
    whole = short_run[1].read_bytes()
    for damaged in (whole[:len(whole) // 2], b"\0" * 100 + whole[100:]):
        ckpt.write_bytes(damaged)
        proc = cli(*SHORT, "--checkpoint", ckpt)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith(f"error: {ckpt}: ") and "corrupt" in proc.stderr
        assert ckpt.read_bytes() == damaged                    # nothing overwritten


def test_checkpoint_of_another_configuration_is_refused(cli, short_run):
    ckpt = short_run[1]
    whole = ckpt.read_bytes()
    proc = cli(*SHORT, "--lam", "0.01", "--checkpoint", ckpt)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "was written for another configuration (lam: 0.00025 there, 0.01 here)" in proc.stderr
    assert ckpt.read_bytes() == whole


def test_checkpoint_of_other_maths_or_data_is_refused(small_data, cifar10, tmp_path):
    config = Config(hidden=(10,), n_s=10, cycles=0.5)
    ckpt = tmp_path / "ckpt.npz"
    train(small_data, config, checkpoint=ckpt)
    with pytest.raises(RunFileError, match="was written for other data"):
        train(cifar10, config, checkpoint=ckpt)
    arrays, meta = runfile.read(ckpt)
    runfile.write(ckpt, arrays, {**meta, "math_version": MATH_VERSION - 1})
    with pytest.raises(RunFileError, match="code whose maths differ"):
        train(small_data, config, checkpoint=ckpt)
    with pytest.raises(RunFileError, match="is a checkpoint, not a saved run"):
        load_run(ckpt)
    save_run(tmp_path / "run.npz", train(small_data, config))
    with pytest.raises(RunFileError, match="is a saved run, not a checkpoint"):
        train(small_data, config, checkpoint=tmp_path / "run.npz")


class _Touch:
    """Unpickling it would create the file `path`."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def test_file_with_a_pickled_object_is_refused(cli, small_data, tmp_path):
    save_run(tmp_path / "run.npz", train(small_data, Config(hidden=(10,), n_s=10, cycles=0.5)))
    arrays, meta = runfile.read(tmp_path / "run.npz")
    marker = tmp_path / "unpickled"
    evil = np.empty(1, dtype=object)
    evil[0] = _Touch(marker)
    pickle.dumps(evil)                                   # it does pickle
    np.savez(tmp_path / "evil.npz", **{**arrays, "W_0": evil}, meta=np.array(json.dumps(meta)))
    with pytest.raises(RunFileError, match="pickled object array"):
        load_run(tmp_path / "evil.npz")
    proc = cli("evaluate", tmp_path / "evil.npz")
    assert proc.returncode == 2 and "pickled object array" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


def test_file_of_another_kind_is_not_taken_for_a_pickle(cli, tmp_path):
    """A JSON file (the record of results/beyond, say) given as a run: not an .npz archive."""
    record = tmp_path / "runs.json"
    record.write_text('{"best": []}')
    proc = cli("evaluate", record)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"error: {record}: not a readable run file (not an .npz "
                                   "archive); it may be truncated or corrupt, or another kind of "
                                   "file")


def test_missing_run_is_a_clear_error(cli, tmp_path):
    proc = cli("evaluate", tmp_path / "nope.npz")
    assert proc.returncode == 2 and f"error: {tmp_path / 'nope.npz'}: no such file" in proc.stderr


def test_train_restores_the_signal_handlers(small_data):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    train(small_data, Config(hidden=(10,), n_s=5, cycles=0.2))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_interrupted_training_is_a_keyboard_interrupt():
    stop = TrainingInterrupted(signal.SIGTERM, 5, 10, None)
    assert isinstance(stop, KeyboardInterrupt) and not isinstance(stop, Exception)
    assert "SIGTERM at step 5 of 10" in str(stop)


def test_train_many_shows_a_bar_over_the_runs(small_data, capsys):
    configs = [Config(hidden=(10,), n_s=5, cycles=0.2, seed=s) for s in (0, 1)]
    train_many(small_data, configs, n_jobs=1)
    assert "2/2" in capsys.readouterr().err
    train_many(small_data, configs, n_jobs=1, progress=False)
    assert capsys.readouterr().err == ""
