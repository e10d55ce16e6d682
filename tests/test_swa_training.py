"""Weight averaging (`Config.swa`) in a real run on the synthetic data: the averaged weights are
the mean of the weights at the snapshot steps (recorded by a real checkpoint written at every
step), their BN statistics and scores are recomputed for them, the training itself is the same
with or without it, a stopped run resumes to the same average, a saved run keeps it (and a
damaged file is refused), `reevaluate` and the command line report it."""
import importlib
import json
import os
import shutil
import signal
import time

import numpy as np
import pytest

from assignment3.config import Config
from assignment3.nn.checks import PARAM_NAMES
from assignment3.nn.cost import evaluate
from assignment3.nn.swa import bn_statistics, snapshot_steps
from assignment3.signals import TrainingInterrupted
from assignment3.store import runfile
from assignment3.store.checkpoints import Checkpoint
from assignment3.store.runfile import RunFileError
from assignment3.store.runs import load_run, read_run, reevaluate, save_run
from assignment3.training import train
from tests.conftest import equal_params, equal_stats

#: 300 training images / 50 = 6 steps an epoch, 3 epochs: 18 steps, an evaluation (so a
#: checkpoint) after every step. SWA 0.5 averages steps 12 and 18, SWA 1 steps 6, 12 and 18.
RUN = Config(hidden=(20,), schedule="one_cycle", epochs=3, n_batch=50, evals_per_cycle=18)
HALF, WHOLE = {12: 1, 18: 2}, {6: 1, 12: 2, 18: 3}


def copied(params):
    return {name: [P.copy() for P in arrays] for name, arrays in params.items()}


def flat(params):
    """The params as one vector, in the layout of `FlatParams` (W, b, gamma, beta)."""
    return np.concatenate([P.ravel() for name in PARAM_NAMES for P in params[name]])


def same_averaged(a, b):
    """Two `Averaged` are bit for bit the same: params, stats and scores."""
    assert equal_params(a.params, b.params) and equal_stats(a.stats, b.stats)
    assert (a.val_accuracy, a.test_accuracy) == (b.val_accuracy, b.test_accuracy)


def same_training(a, b):
    """Two Results trained the same: raw params, moving averages, history and scores."""
    assert equal_params(a.params, b.params) and equal_stats(a.stats, b.stats)
    assert a.history == b.history and a.steps == b.steps
    assert (a.val_accuracy, a.test_accuracy) == (b.val_accuracy, b.test_accuracy)


class Recording(Checkpoint):
    """A real checkpoint that also keeps, by step, a copy of the params and of the optimiser's
    vectors of every state it writes (and, with `keep`, a copy of the file written at those
    steps)."""

    def __init__(self, path, keep=()):
        super().__init__(path)
        self.params, self.vectors, self.keep = {}, {}, set(keep)

    def save(self, state):
        super().save(state)
        self.params[state.step] = copied(state.params)
        self.vectors[state.step] = {name: v.copy() for name, v in state.vectors.items()}
        if state.step in self.keep:
            shutil.copyfile(self.path, self.path.with_name(f"at-{state.step}.npz"))


@pytest.fixture(scope="module")
def runs(synthetic64, tmp_path_factory):
    """{swa: (Result, Recording)} of RUN in float64 with SWA 0 (off), 0.5 and 1, each with a
    recording checkpoint (files at steps 5, 12 and 15 kept for resuming)."""
    out = {}
    for swa in (0.0, 0.5, 1.0):
        folder = tmp_path_factory.mktemp(f"swa-{swa}")
        ckpt = Recording(folder / "ckpt.npz", keep=(5, 12, 15))
        out[swa] = train(synthetic64, RUN.with_(dtype="float64", swa=swa), checkpoint=ckpt), ckpt
    return out


# ---------------------------------------------------------------------------------------------
# The average


@pytest.mark.parametrize("swa, snapshots", [(0.5, HALF), (1.0, WHOLE)])
def test_average_is_the_mean_of_the_weights_at_the_snapshot_steps(runs, swa, snapshots):
    """The averaged params: the mean of the params the checkpoint recorded at the epoch ends of
    the window (to float64 rounding); not the final params."""
    result, ckpt = runs[swa]
    assert sorted(ckpt.params) == list(range(1, 19))          # a checkpoint after every step
    assert snapshot_steps(18, 6, swa) == snapshots
    for name in PARAM_NAMES:
        for l, P in enumerate(result.averaged.params[name]):
            mean = np.mean([ckpt.params[s][name][l] for s in snapshots], axis=0)
            assert P.dtype == np.float64 and P.shape == mean.shape
            np.testing.assert_allclose(P, mean, rtol=1e-12, atol=1e-14)
    assert not np.allclose(flat(result.averaged.params), flat(result.params))


@pytest.mark.parametrize("swa, snapshots", [(0.5, HALF), (1.0, WHOLE)])
def test_checkpointed_average_grows_at_the_snapshot_steps_only(runs, swa, snapshots):
    """The optimiser vector "average" of each checkpoint: from the first snapshot step on, the
    mean of the snapshots so far (the first one copied bit for bit), unchanged between them;
    the last one the averaged params of the Result."""
    result, ckpt = runs[swa]
    first = min(snapshots)
    assert np.array_equal(ckpt.vectors[first]["average"], flat(ckpt.params[first]))
    for step in range(first, 19):
        taken = [s for s in snapshots if s <= step]
        mean = np.mean([flat(ckpt.params[s]) for s in taken], axis=0)
        np.testing.assert_allclose(ckpt.vectors[step]["average"], mean, rtol=1e-12, atol=1e-14)
        if step not in snapshots:
            assert np.array_equal(ckpt.vectors[step]["average"],
                                  ckpt.vectors[step - 1]["average"])
    assert np.array_equal(ckpt.vectors[18]["average"], flat(result.averaged.params))
    arrays, _ = runfile.read(ckpt.path)                       # and in the file on disk
    assert np.array_equal(arrays["average"], flat(result.averaged.params))


def test_tiny_window_averages_the_last_weights_only(synthetic):
    """SWA so small that no epoch end is in its window: the averaged params are the final
    params bit for bit; their BN statistics are recomputed, not the moving averages."""
    result = train(synthetic, RUN.with_(swa=1e-6))
    assert equal_params(result.averaged.params, result.params)
    assert not any(np.shares_memory(P, Q) for n in PARAM_NAMES
                   for P, Q in zip(result.averaged.params[n], result.params[n]))
    assert not np.allclose(result.averaged.stats[0][0], result.stats[0][0])


@pytest.mark.parametrize("swa", [0.5, 1.0])
def test_averaged_stats_and_scores_are_recomputed_for_the_averaged_weights(runs, synthetic64,
                                                                          swa):
    """The BN statistics: `bn_statistics` of the averaged params on the training set with the
    run's n_batch; the scores: test-mode accuracy with them on val and test."""
    averaged = runs[swa][0].averaged
    stats = bn_statistics(averaged.params, synthetic64.train.X, RUN.n_batch)
    assert equal_stats(averaged.stats, stats)
    assert averaged.stats[0][0].dtype == np.float64 and averaged.stats[0][0].shape == (20, 1)
    for split, score in ((synthetic64.val, averaged.val_accuracy),
                         (synthetic64.test, averaged.test_accuracy)):
        assert evaluate(averaged.params, split.X, split.y, 0.0, stats)["accuracy"] == score
    summary = runs[swa][0].summary()
    assert (summary["swa_val_accuracy"], summary["swa_test_accuracy"]) == \
        (averaged.val_accuracy, averaged.test_accuracy)


def test_averaged_run_without_bn(synthetic):
    """A net without BN: the average of its params, no statistics ([]), scores in [0, 1]."""
    result = train(synthetic, RUN.with_(batch_norm=False, swa=1e-6))
    assert result.averaged.stats == [] and equal_params(result.averaged.params, result.params)
    assert result.averaged.test_accuracy == result.test_accuracy      # the same net, no BN
    assert result.averaged.val_accuracy == result.val_accuracy


# ---------------------------------------------------------------------------------------------
# The training is the same


def test_swa_off_is_the_default_run(synthetic, runs):
    """swa=0 given is the run of the default: the same params, stats, history and scores, no
    averaged weights, no SWA scores in the summary, no "average" in the checkpoint."""
    default = train(synthetic, RUN)
    zero = train(synthetic, RUN.with_(swa=0.0))
    same_training(default, zero)
    assert default.averaged is None and zero.averaged is None
    assert not {"swa_val_accuracy", "swa_test_accuracy"} & set(default.summary())
    assert set(runs[0.0][1].vectors[18]) == set()


@pytest.mark.parametrize("swa", [0.5, 1.0])
def test_averaging_does_not_change_the_training(runs, swa):
    """The raw params, moving averages, history and scores of a run with SWA are bit for bit
    those of the same run without it."""
    same_training(runs[swa][0], runs[0.0][0])
    for step in range(1, 19):
        assert equal_params(runs[swa][1].params[step], runs[0.0][1].params[step])


# ---------------------------------------------------------------------------------------------
# Stop and resume


@pytest.mark.parametrize("swa", [0.5, 1.0])
@pytest.mark.parametrize("step", [5, 12, 15])
def test_resumed_run_has_the_same_average(runs, synthetic64, tmp_path, swa, step):
    """Resumed from the checkpoint written at step 5 (before any snapshot), 12 (a snapshot) or
    15 (between two): the same averaged params, stats and scores, and the same training."""
    reference, ckpt = runs[swa]
    path = tmp_path / "ckpt.npz"
    shutil.copyfile(ckpt.path.with_name(f"at-{step}.npz"), path)
    resumed = train(synthetic64, RUN.with_(dtype="float64", swa=swa), checkpoint=Checkpoint(path))
    assert resumed.resumed_from_step == step
    same_averaged(resumed.averaged, reference.averaged)
    same_training(resumed, reference)


def test_run_stopped_by_a_signal_resumes_to_the_same_average(synthetic, tmp_path):
    """SIGTERM to this process while the checkpoint of step 9 is written (evaluations every 3
    steps): the run stops at the end of a later step, before the last, writing the checkpoint
    there; resumed, its averaged weights are bit for bit those of the run never stopped."""
    config = RUN.with_(swa=1.0, evals_per_cycle=6)
    reference = train(synthetic, config)
    late = []

    class Stopping(Checkpoint):
        def save(self, state):
            super().save(state)
            if state.step == 9:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.3)                   # the run waits for this save at step 15

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: late.append(signum))
    path = tmp_path / "ckpt.npz"
    try:
        with pytest.raises(TrainingInterrupted, match="SIGTERM at step (9|1[0-5]) of 18: "
                                                      "checkpoint written to") as stop:
            train(synthetic, config, checkpoint=Stopping(path))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert late == []
    assert runfile.read(path)[1]["step"] == stop.value.step
    resumed = train(synthetic, config, checkpoint=Checkpoint(path))
    assert resumed.resumed_from_step == stop.value.step
    same_averaged(resumed.averaged, reference.averaged)
    same_training(resumed, reference)


def resumed_from_damaged(runs, synthetic64, tmp_path, swa, arrays_change, message):
    """The checkpoint at step 12 of the SWA 0.5 run, its arrays changed by `arrays_change`, is
    refused by the run of `swa` with `message` and left as it was."""
    arrays, meta = runfile.read(runs[0.5][1].path.with_name("at-12.npz"))
    meta.pop("format", None)
    path = tmp_path / "ckpt.npz"
    runfile.write(path, arrays_change(arrays), meta)
    before = path.read_bytes()
    with pytest.raises(RunFileError, match=message):
        train(synthetic64, RUN.with_(dtype="float64", swa=swa), checkpoint=Checkpoint(path))
    assert path.read_bytes() == before


def test_checkpoint_without_its_average_is_refused(runs, synthetic64, tmp_path):
    """A checkpoint of a SWA run lacking the vector "average", or with one of another size, is
    refused naming it; one of another swa is another configuration."""
    resumed_from_damaged(runs, synthetic64, tmp_path, 0.5,
                         lambda a: {k: v for k, v in a.items() if k != "average"},
                         r"ckpt.npz: misses the array average of its configuration's optimiser")
    resumed_from_damaged(runs, synthetic64, tmp_path, 0.5,
                         lambda a: a | {"average": a["average"][:-1].copy()},
                         r"ckpt.npz: array average: expected shape \(\d+,\) float64")
    resumed_from_damaged(runs, synthetic64, tmp_path, 1.0, dict,
                         r"was written for another configuration \(swa: 0.5 there, 1.0 here\)")


# ---------------------------------------------------------------------------------------------
# Saved runs


@pytest.fixture(scope="module")
def saved(runs, tmp_path_factory):
    """(path, Result) of the SWA 0.5 run saved with save_run."""
    path = tmp_path_factory.mktemp("saved") / "run.npz"
    save_run(path, runs[0.5][0], version="abc")
    return path, runs[0.5][0]


def test_saved_run_keeps_the_averaged_weights(saved):
    """read_run gives back the averaged params, stats and scores exactly; the file holds them
    as swa_ arrays and the scores in "swa"."""
    path, result = saved
    loaded, meta = read_run(path)
    same_averaged(loaded.averaged, result.averaged)
    assert equal_params(loaded.params, result.params) and loaded.config == result.config
    assert meta["swa"] == {"val_accuracy": result.averaged.val_accuracy,
                           "test_accuracy": result.averaged.test_accuracy}
    assert {n for n in runfile.read(path)[0] if n.startswith("swa_")} == {
        "swa_W_0", "swa_W_1", "swa_b_0", "swa_b_1", "swa_gamma_0", "swa_beta_0", "swa_mu_0",
        "swa_v_0"}
    assert load_run(path).summary() == result.summary()


def test_saved_run_without_swa_has_no_averaged_weights(runs, tmp_path):
    """A run without SWA is saved without swa_ arrays or "swa" field, and read back without."""
    path = tmp_path / "run.npz"
    save_run(path, runs[0.0][0])
    arrays, meta = runfile.read(path)
    assert "swa" not in meta and not any(n.startswith("swa_") for n in arrays)
    assert read_run(path)[0].averaged is None


def rewritten(saved, tmp_path, drop=(), add=None, **meta_changes):
    """A copy of the saved run's file without the arrays `drop`, with the arrays `add` and
    the JSON fields `meta_changes` (None: removed)."""
    arrays, meta = runfile.read(saved[0])
    arrays = {k: v for k, v in arrays.items() if k not in drop} | (add or {})
    meta = {k: v for k, v in (meta | meta_changes).items() if v is not None}
    meta.pop("format", None)
    path = tmp_path / "damaged.npz"
    runfile.write(path, arrays, meta)
    return path


def test_file_without_the_averaged_arrays_is_refused(saved, tmp_path):
    """A run of swa > 0 whose file lacks its swa_ arrays is refused, naming the first missing
    one; so is one lacking a single swa_ array."""
    arrays = runfile.read(saved[0])[0]
    every = [n for n in arrays if n.startswith("swa_")]
    path = rewritten(saved, tmp_path, drop=every)
    with pytest.raises(RunFileError, match=r"damaged.npz: misses the array swa_W_0 of its "
                                           r"configuration's network"):
        read_run(path)
    path = rewritten(saved, tmp_path, drop=["swa_v_0"])
    with pytest.raises(RunFileError, match="misses the array swa_v_0 "):
        read_run(path)


def test_averaged_arrays_of_another_network_are_refused(saved, tmp_path):
    """An swa_ array of another shape, or one the network has not, is refused by name."""
    arrays = runfile.read(saved[0])[0]
    path = rewritten(saved, tmp_path, add={"swa_W_1": arrays["swa_W_1"][:, :5].copy()})
    with pytest.raises(RunFileError, match=r"array swa_W_1: expected shape \(10, 20\)"):
        read_run(path)
    path = rewritten(saved, tmp_path, add={"swa_W_2": arrays["swa_W_1"]})
    with pytest.raises(RunFileError, match="array swa_W_2: not part of the network"):
        read_run(path)


@pytest.mark.parametrize("value", [
    None, "0.5", [0.5, 0.5], {"val_accuracy": 0.5}, {"val_accuracy": 0.5, "test_accuracy": 1.5},
    {"val_accuracy": -0.1, "test_accuracy": 0.5}, {"val_accuracy": True, "test_accuracy": 0.5},
    {"val_accuracy": "0.5", "test_accuracy": 0.5}])
def test_bad_swa_field_is_refused(saved, tmp_path, value):
    """The field "swa" missing (None: removed) or not an object of the two scores in [0, 1]
    is refused, naming the field."""
    path = rewritten(saved, tmp_path, swa=value)
    with pytest.raises(RunFileError, match=r"damaged.npz: field 'swa': (missing|expected an "
                                           r"object of \"val_accuracy\" and \"test_accuracy\")"):
        read_run(path)


def test_reevaluate_gives_the_stored_averaged_scores(saved, synthetic64):
    """reevaluate of the saved run: its scores are those stored with it, named as in the run's
    summary (the averaged weights' swa_val_accuracy and swa_test_accuracy)."""
    path, result = saved
    scores = reevaluate(synthetic64, load_run(path), flip_average=False)
    summary = result.summary()
    assert scores == {name: summary[name] for name in ("val_accuracy", "test_accuracy",
                                                       "swa_val_accuracy", "swa_test_accuracy")}


def test_reevaluate_without_swa_has_no_averaged_scores(runs, synthetic64):
    """A run without SWA gets no averaged scores."""
    assert set(reevaluate(synthetic64, runs[0.0][0])) == {"val_accuracy", "test_accuracy",
                                                          "test_accuracy_flip_averaged"}


# ---------------------------------------------------------------------------------------------
# The command line (the data loader gives the synthetic data: the CIFAR-10 folder is not read)


SHORT = ["train", "--hidden", "20", "--schedule", "one_cycle", "--epochs", "3", "--batch", "50",
         "--quiet", "--data", "unused"]


def test_a_stop_after_the_last_step_finishes_and_saves_the_run(cli_synthetic, tmp_path,
                                                               monkeypatch):
    """A real SIGTERM during the last step, the final evaluations (SWA's BN pass and scores) or
    the save: the run is finished and saved, the command says so and exits with the signal's
    status (128 + 15)."""
    status, out, err = cli_synthetic(*SHORT, "--swa", "0.5", "--json")
    steps = json.loads(out)["steps"]
    for during, call in (("assignment3.training.loop.step", steps),
                         ("assignment3.training.loop.scored_average", 1),
                         ("assignment3.cli.commands.save_run", 1)):
        module, name = during.rsplit(".", 1)
        real, calls = getattr(importlib.import_module(module), name), []

        def signalled(*args, real=real, call=call, calls=calls, **kwargs):
            calls.append(1)
            if len(calls) == call:
                os.kill(os.getpid(), signal.SIGTERM)
            return real(*args, **kwargs)

        path = tmp_path / f"{name}.npz"
        with monkeypatch.context() as patched:
            patched.setattr(during, signalled)
            status, out, err = cli_synthetic(*SHORT, "--swa", "0.5", "--save", path)
        assert (status, err) == (128 + signal.SIGTERM, "stopped by SIGTERM after the last step: "
                                                       "the run was finished and saved\n"), name
        assert out.splitlines()[1] == f"saved to {path}" and load_run(path).averaged is not None


def test_train_line_says_the_averaged_scores(cli_synthetic, tmp_path):
    """With --swa the summary line ends with the averaged weights' scores (those saved with the
    run), and the next line where it was saved; without it, it does not mention them."""
    path = tmp_path / "run.npz"
    status, out, err = cli_synthetic(*SHORT, "--swa", "0.5", "--save", path)
    assert status == 0, err
    averaged = load_run(path).averaged
    assert load_run(path).config.swa == 0.5
    summary, saved = out.splitlines()
    assert summary.endswith(
        f"test accuracy {100 * load_run(path).test_accuracy:.2f}%; averaged weights (SWA): "
        f"validation {100 * averaged.val_accuracy:.2f}%, test "
        f"{100 * averaged.test_accuracy:.2f}%") and saved == f"saved to {path}"
    status, out, err = cli_synthetic(*SHORT)
    assert status == 0, err
    assert "averaged" not in out and "SWA" not in out and out.startswith("BN net, hidden [20]")


def test_train_json_and_evaluate_give_the_averaged_scores(cli_synthetic, tmp_path):
    """train --json has swa_val_accuracy and swa_test_accuracy; evaluate (--json and its line)
    re-scores the saved averaged weights to the same numbers."""
    path = tmp_path / "run.npz"
    status, out, err = cli_synthetic(*SHORT, "--swa", "1", "--json", "--save", path)
    assert status == 0, err
    summary = json.loads(out)
    averaged = load_run(path).averaged
    assert (summary["swa_val_accuracy"], summary["swa_test_accuracy"]) == \
        (averaged.val_accuracy, averaged.test_accuracy)
    status, out, err = cli_synthetic("evaluate", path, "--json", "--data", "unused")
    assert status == 0, err
    again = json.loads(out)
    assert (again["swa_val_accuracy"], again["swa_test_accuracy"]) == \
        (averaged.val_accuracy, averaged.test_accuracy)
    status, out, err = cli_synthetic("evaluate", path, "--data", "unused")
    assert status == 0, err
    val, test = 100 * averaged.val_accuracy, 100 * averaged.test_accuracy   # stored, and again
    assert out.rstrip("\n").endswith(f"; averaged weights (SWA): validation {val:.2f}%, test "
                                     f"{test:.2f}% (stored with the run: {val:.2f}%, "
                                     f"{test:.2f}%)")
    status, out, err = cli_synthetic(*SHORT, "--json")
    assert status == 0, err
    assert not {"swa_val_accuracy", "swa_test_accuracy"} & set(json.loads(out))


def test_evaluate_refuses_a_swa_run_without_its_averaged_arrays(cli_synthetic, saved, tmp_path):
    """One line and exit status 2 naming the missing array."""
    arrays = runfile.read(saved[0])[0]
    path = rewritten(saved, tmp_path, drop=[n for n in arrays if n.startswith("swa_")])
    status, out, err = cli_synthetic("evaluate", path, "--data", "unused")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "misses the array swa_W_0" in err


@pytest.mark.parametrize("value, message", [
    ("1.5", "argument --swa: expected a number in [0, 1], got '1.5'"),
    ("-0.1", "argument --swa: expected a number in [0, 1]"),
    ("x", "argument --swa")])
def test_swa_out_of_range_is_a_usage_error(cli_synthetic, capsys, value, message):
    """Exit status 2 and one line naming --swa, before any data is loaded."""
    with pytest.raises(SystemExit, match="2"):
        cli_synthetic(*SHORT, "--swa", value)
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err, err
