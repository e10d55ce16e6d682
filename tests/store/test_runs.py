"""Saved runs: save_run writes a Result to one run file that read_run and load_run give back
exactly, with the code version, machine and notes; reevaluate scores it again."""
import os

import numpy as np
import pytest

from assignment3.config import Config
from assignment3.store import runfile
from assignment3.store.checkpoints import Checkpoint
from assignment3.store.provenance import code_version, machine
from assignment3.store.runfile import RunFileError
from assignment3.store.runs import load_run, read_run, reevaluate, save_run
from assignment3.training import MATH_VERSION, train


def same_run(a, b):
    """Two Results hold the same configuration, parameters (values and dtype), averages and
    history."""
    assert a.config == b.config and a.history == b.history
    assert a.params.keys() == b.params.keys()
    for name in a.params:
        assert len(a.params[name]) == len(b.params[name])
        for x, y in zip(a.params[name], b.params[name]):
            assert x.dtype == y.dtype and np.array_equal(x, y)
    assert len(a.stats) == len(b.stats)
    for (mu_a, v_a), (mu_b, v_b) in zip(a.stats, b.stats):
        assert np.array_equal(mu_a, mu_b) and np.array_equal(v_a, v_b)


@pytest.mark.parametrize("config", [
    Config(hidden=(30, 20), bn_order="after", schedule="one_cycle", epochs=1, n_batch=50,
           momentum=0.9, dropout=0.1),
    Config(hidden=(20,), batch_norm=False, n_s=10, cycles=1, init=0.01, n_batch=50),
    Config(hidden=(12,), n_s=10, cycles=1, n_batch=50, dtype="float64")])
def test_saved_run_loads_back_exactly(synthetic, synthetic64, tmp_path, config):
    data = synthetic64 if config.dtype == "float64" else synthetic
    result = train(data, config)
    save_run(tmp_path / "run.npz", result, notes={"why": "a test"}, version="abc")
    loaded, meta = read_run(tmp_path / "run.npz")
    same_run(result, loaded)
    assert all(getattr(loaded, k) == getattr(result, k) for k in
               ("steps", "epochs", "seconds", "val_accuracy", "test_accuracy"))
    assert meta["notes"] == {"why": "a test"} and meta["code_version"] == "abc"
    assert meta["math_version"] == MATH_VERSION and meta["machine"]["cores"] == os.cpu_count()
    assert meta["kind"] == "run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]      # no temporary left
    same_run(load_run(tmp_path / "run.npz"), result)


def test_saved_run_records_this_code_and_machine_by_default(synthetic, tmp_path):
    result = train(synthetic, Config(hidden=(10,), n_s=5, cycles=0.5, n_batch=50))
    save_run(tmp_path / "run.npz", result)
    _, meta = read_run(tmp_path / "run.npz")
    assert meta["code_version"] == code_version() and meta["notes"] == {}
    assert meta["machine"] == machine()
    other = {**machine(), "cpu": "another machine"}
    save_run(tmp_path / "run.npz", result, machine=other)
    assert read_run(tmp_path / "run.npz")[1]["machine"] == other


def test_failed_save_leaves_no_file(synthetic, tmp_path):
    result = train(synthetic, Config(hidden=(10,), n_s=5, cycles=0.2, n_batch=50))
    with pytest.raises(TypeError, match="not JSON serializable"):
        save_run(tmp_path / "run.npz", result, notes={"not json": object()})
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_is_not_a_saved_run(synthetic, tmp_path):
    config = Config(hidden=(10,), n_s=10, cycles=0.5, n_batch=50)
    train(synthetic, config, checkpoint=Checkpoint(tmp_path / "ckpt.npz"))
    with pytest.raises(RunFileError, match="ckpt.npz: is a checkpoint, not a saved run: finish "
                                           "its training"):
        load_run(tmp_path / "ckpt.npz")


def test_file_whose_json_is_no_run_is_refused(synthetic, tmp_path):
    config = Config(hidden=(10,), n_s=10, cycles=0.5, n_batch=50)
    save_run(tmp_path / "run.npz", train(synthetic, config))
    arrays, meta = runfile.read(tmp_path / "run.npz")
    for broken in ({k: v for k, v in meta.items() if k != "history"},
                   {**meta, "config": {**meta["config"], "n_batch": 0}}):
        runfile.write(tmp_path / "broken.npz", arrays, broken)
        with pytest.raises(RunFileError, match="broken.npz: its JSON does not describe a run"):
            read_run(tmp_path / "broken.npz")
    del arrays["W_1"]
    runfile.write(tmp_path / "broken.npz", arrays, meta)
    with pytest.raises(RunFileError, match="misses the array W_1"):
        read_run(tmp_path / "broken.npz")


def check_reevaluate(data, config, tmp_path):
    result = train(data, config)
    save_run(tmp_path / "run.npz", result)
    scores = reevaluate(data, load_run(tmp_path / "run.npz"))
    assert scores["test"] == result.test_accuracy and scores["val"] == result.val_accuracy
    assert 0 < scores["test, flip-averaged"] < 1
    assert scores["test, flip-averaged"] != scores["test"]
    assert reevaluate(data, result, flip_average=False).keys() == {"val", "test"}


def test_reevaluate_gives_the_runs_own_scores(synthetic, tmp_path):
    """The stored run scored again: its own validation and test accuracy, and with flip
    averaging another test accuracy."""
    check_reevaluate(synthetic, Config(hidden=(16,), n_s=20, cycles=1, n_batch=50), tmp_path)


@pytest.mark.slow
def test_reevaluate_fits_the_zca_whitening_again(synthetic, tmp_path):
    """A run with ZCA whitening: reevaluate whitens the data as the run did (fitted on the
    training split; a 3072 x 3072 eigendecomposition, hence slow)."""
    check_reevaluate(synthetic, Config(hidden=(16,), n_s=20, cycles=1, n_batch=50, zca=True),
                     tmp_path)
