"""Saved runs: save_run writes a Result to one run file that read_run and load_run give back
exactly, with the code version, machine and notes; reevaluate scores it again."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from assignment3.cli import main
from assignment3.config import Config
from assignment3.data import DataError
from assignment3.store import runfile
from assignment3.store.checkpoints import Checkpoint
from assignment3.store.provenance import code_version, machine
from assignment3.store.runfile import RunFileError
from assignment3.store.runs import load_run, read_run, reevaluate, save_run
from assignment3.training import MATH_VERSION, train
from tests.store.test_runfile import deflated_zeros, members_of, npy_header, write_zip

PYTHON_M = [sys.executable, "-m", "assignment3"]


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
    with pytest.raises(TypeError, match="not JSON serializable"):      # nothing written
        save_run(tmp_path / "new.npz", result, notes={"not json": object()})
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]


def test_a_checkpoint_is_not_a_saved_run(synthetic, tmp_path):
    config = Config(hidden=(10,), n_s=10, cycles=0.5, n_batch=50)
    train(synthetic, config, checkpoint=Checkpoint(tmp_path / "ckpt.npz"))
    with pytest.raises(RunFileError, match="ckpt.npz: is a checkpoint, not a saved run: finish "
                                           "its training"):
        load_run(tmp_path / "ckpt.npz")


# ---------------------------------------------------------------------------------------------
# Files that are no run: every JSON field and every array checked, one line naming what is wrong

#: The run of the files made here: a 50-50 BN net of 10 steps, an evaluation after each.
FIFTY = Config(hidden=(50, 50), n_s=5, cycles=1, n_batch=50)


@pytest.fixture(scope="module")
def saved(synthetic, tmp_path_factory):
    """(path, Result, arrays, meta) of the FIFTY run saved by save_run."""
    path = tmp_path_factory.mktemp("saved") / "run.npz"
    result = train(synthetic, FIFTY)
    save_run(path, result)
    arrays, meta = runfile.read(path)
    return path, result, arrays, meta


def craft(path, arrays, meta):
    """A run file of `arrays` and the JSON `meta` as given (format 1), written by numpy."""
    np.savez(path, **arrays, meta=np.array(json.dumps({**meta, "format": 1})))
    return path


def changed(meta, key, value):
    """`meta` with the field `key` (a dotted path: "history.step") set to `value`, or left out
    if value is MISSING."""
    meta = json.loads(json.dumps(meta))
    *outer, last = key.split(".")
    inner = meta
    for k in outer:
        inner = inner[k]
    if value is MISSING:
        del inner[last]
    else:
        inner[last] = value
    return meta


MISSING = object()
HISTORY = "step, eta, cost_train, loss_train, acc_train, cost_val, loss_val, acc_val"

def refusal(path):
    """The message of the RunFileError of read_run(path) (None if it reads the file)."""
    try:
        read_run(path)
    except RunFileError as err:
        return str(err)
    return None


#: (field, value, one-line refusal) of the JSON of a saved run: a value of the wrong type or out
#: of range for each field, the refusal naming the field and what it should be (the checks
#: themselves, `store.fields`, are tested in test_fields).
RUN_FIELDS = [
    ("kind", "figure", r"field 'kind': expected \"run\" \(a saved run\), got \"figure\"$"),
    ("config", "abc", r"field 'config': expected an object \(a configuration\), got \"abc\"$"),
    ("config.n_batch", 0, r"field 'config': not a configuration this code accepts \(n_batch must "
                          r"be an integer >= 1, got 0\)$"),
    ("steps", 0, "field 'steps': expected an integer >= 1, got 0$"),
    ("epochs", None, "field 'epochs': expected a number >= 0, got null$"),
    ("seconds", -1.0, "field 'seconds': expected a number >= 0, got -1.0$"),
    ("val_accuracy", 1.5, r"field 'val_accuracy': expected a number in \[0, 1\], got 1.5$"),
    ("test_accuracy", "0.5", r"field 'test_accuracy': expected a number in \[0, 1\], got "
                             r"\"0.5\"$"),
    ("history", "abc", f"field 'history': expected an object with the lists {HISTORY}, got "
                       '"abc"$'),
    ("history.step", list(range(2, 12)), r"field 'history.step': expected increasing steps in "
                                         r"1..10, got \[2, 3, 4"),
    ("math_version", "1", "field 'math_version': expected an integer >= 0, got \"1\"$"),
    ("code_version", 5, "field 'code_version': expected a string, got 5$"),
    ("machine", [], r"field 'machine': expected an object, got \[\]$"),
    ("notes", "x", "field 'notes': expected an object, got \"x\"$"),
]


def test_each_json_field_of_a_run_is_checked(saved, tmp_path):
    """Each field of a saved run's JSON, of the wrong type or out of range: refused in one line
    naming the file, the field and what it should be (the history's steps: up to the run's
    steps)."""
    _, _, arrays, meta = saved
    wrong = []
    for key, value, message in RUN_FIELDS:
        bad = craft(tmp_path / "bad.npz", arrays, changed(meta, key, value))
        said = refusal(bad)
        if not re.match(f"{bad}: {message}", str(said)):
            wrong.append((key, value, said))
    assert wrong == [], "(field, value, refusal) not as expected"


#: (what the file says, one-line refusal) for arrays that are not the configuration's network.
RUN_ARRAYS = [
    ({"config.hidden": [60, 50]}, r"array W_0: expected shape \(60, d\) \(hidden \[60, 50\] of "
                                  r"its configuration\), got shape \(50, 3072\)$"),
    ({"config.hidden": [50, 60]}, r"array W_2: expected shape \(K, 60\) \(hidden \[50, 60\] of "
                                  r"its configuration\), got shape \(10, 50\)$"),
    ({"config.hidden": [50, 50, 50]}, "misses the array W_3 of its configuration's network$"),
    ({"config.hidden": [50]}, r"array W_2: not part of the network of its configuration \(2 "
                              r"layers, with batch norm\); the file is damaged or not of this "
                              "run$"),
    ({"config.batch_norm": False}, r"array gamma_0: not part of the network of its "
                                   r"configuration \(3 layers, no batch norm\)"),
    ({"config.dtype": "float64"}, r"array W_0: expected shape \(50, 3072\) float64 \(its "
                                  r"configuration's network\), got shape \(50, 3072\) float32; "
                                  "the file is damaged or not of this run$"),
    ({"b_0": lambda a: a[:, 0]}, r"array b_0: expected shape \(50, 1\) float32 \(its "
                                 r"configuration's network\), got shape \(50,\) float32"),
    ({"mu_1": MISSING}, "misses the array mu_1 of its configuration's network$"),
    ({"W_1": lambda a: np.where(a == a.flat[7], np.nan, a)},
     "array W_1: holds NaN or infinite values; the file is damaged$"),
    ({"beta_0": lambda a: a - np.inf}, "array beta_0: holds NaN or infinite values"),
    ({"v_1": lambda a: a * -1}, "array v_1: a BN variance is not positive; the file is damaged$"),
]


def test_arrays_are_checked_against_the_configuration(saved, tmp_path):
    """A configuration saying other layers (wider, narrower, more, fewer), no batch norm or
    float64 over the run's arrays, an array of the wrong shape or missing: refused before the
    array's data is read, naming it; an array with NaN or inf, or a variance that is not
    positive: refused before anything is scored from it."""
    _, _, arrays, meta = saved
    wrong = []
    for change, message in RUN_ARRAYS:
        file_arrays, file_meta = dict(arrays), meta
        for key, value in change.items():
            if key.startswith("config."):
                file_meta = changed(meta, key, value)
            elif value is MISSING:
                del file_arrays[key]
            else:
                file_arrays[key] = value(file_arrays[key])
        bad = craft(tmp_path / "bad.npz", file_arrays, file_meta)
        said = refusal(bad)
        if not re.match(f"{bad}: {message}", str(said)):
            wrong.append((change, said))
    assert wrong == [], "(change, refusal) not as expected"


def test_a_file_numpy_writes_of_the_same_run_loads(saved, tmp_path):
    """The reader takes what np.savez_compressed writes of a run (deflated members of real
    arrays) and ignores members the format does not define."""
    path, result, arrays, meta = saved
    np.savez_compressed(tmp_path / "run.npz", **arrays, extra=np.zeros(1000),
                        meta=np.array(json.dumps(meta)))
    same_run(load_run(tmp_path / "run.npz"), result)


def check_reevaluate(data, config, tmp_path):
    result = train(data, config)
    save_run(tmp_path / "run.npz", result)
    scores = reevaluate(data, load_run(tmp_path / "run.npz"))
    assert (scores["test_accuracy"], scores["val_accuracy"]) == (result.test_accuracy,
                                                                 result.val_accuracy)
    assert 0 < scores["test_accuracy_flip_averaged"] < 1
    assert scores["test_accuracy_flip_averaged"] != scores["test_accuracy"]
    assert reevaluate(data, result, flip_average=False).keys() == {"val_accuracy",
                                                                   "test_accuracy"}


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


# ---------------------------------------------------------------------------------------------
# Zip bombs and the command line


@pytest.fixture(scope="module")
def bombs(saved, tmp_path_factory):
    """The saved FIFTY run with, each in a file of 1 to 3 MB: an unknown member of 2 GiB of
    zeros ("junk"); a W_0 declaring 800 MiB of zeros, a network of 210 million parameters
    ("wide"); a W_0 declaring 100 MiB of zeros, a network of 26 million parameters, which a
    configuration allows ("zeros")."""
    folder, members = tmp_path_factory.mktemp("bombs"), members_of(saved[0])
    made = {"junk": {"junk.npy": deflated_zeros(npy_header((1 << 29,)), 1 << 31)},
            "wide": {"W_0.npy": deflated_zeros(npy_header((50, 1 << 22)), 50 << 24)},
            "zeros": {"W_0.npy": deflated_zeros(npy_header((50, 1 << 19)), 50 << 21)}}
    for name, bomb in made.items():
        write_zip(folder / f"{name}.npz", {**members, **bomb})
    return {name: folder / f"{name}.npz" for name in made}


#: Loads each run file given, then reads the first with runfile.read; prints what each did and
#: how many MB the process's peak memory grew meanwhile.
LOAD_EACH = """
import json, resource, sys
from assignment3.store import runfile
from assignment3.store.runs import load_run
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
start, did = peak(), {}
for path in sys.argv[1:]:
    try:
        did[path] = f"loaded, test accuracy {load_run(path).test_accuracy}"
    except runfile.RunFileError as err:
        did[path] = str(err)
try:
    runfile.read(sys.argv[1])
except runfile.RunFileError as err:
    did["read"] = str(err)
did["grew"] = peak() - start
print(json.dumps(did))
"""


def test_zip_bombs_are_never_inflated(saved, bombs):
    """In a process of its own, whose peak memory grows less than 64 MB: the run with a 2 GiB
    unknown member loads (the member is never read; runfile.read, which reads every member,
    refuses it unread), a W_0 of a network larger than a configuration allows is refused from
    its header, and a W_0 that would inflate 1000-fold from its compressed bytes."""
    assert all(path.stat().st_size < 3_000_000 for path in bombs.values())
    proc = subprocess.run([sys.executable, "-c", LOAD_EACH, *map(str, bombs.values())],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    did = json.loads(proc.stdout)
    assert did.pop(str(bombs["junk"])) == f"loaded, test accuracy {saved[1].test_accuracy}"
    assert re.fullmatch(rf"{bombs['junk']}: array junk: [\d,]+ compressed bytes declare "
                        r"2,147,483,776 bytes, more than arrays of a network compress \(16x\); "
                        "refused unread", did.pop("read"))
    assert did.pop(str(bombs["wide"])) == (
        f"{bombs['wide']}: arrays W_0 and W_2: a network of 209,718,310 parameters (4,194,304 "
        "inputs, 10 classes), more than a configuration allows (50,000,000); refused unread")
    assert re.fullmatch(rf"{bombs['zeros']}: array W_0: [\d,]+ compressed bytes declare "
                        r"104,857,728 bytes, more than arrays of a network compress \(16x\); "
                        "refused unread", did.pop(str(bombs["zeros"])))
    assert did.pop("grew") < 64 and did == {}


#: Runs a command (its arguments) and prints [exit status, stderr, its peak memory in MB].
MEASURED = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps([done.returncode, done.stderr,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024]))
"""


def test_the_command_line_refuses_each_in_one_line(saved, bombs, tmp_path, capsys):
    """`evaluate` and `plot` of run files that are no runs (JSON of the wrong type, arrays of the
    wrong shape, a FIFO, a folder, a W_0 declaring 800 MiB): exit status 2 and one line naming
    the file and what is wrong, before any data is loaded (the data folder given does not
    exist), in this process and in real processes (in which nothing blocks). `evaluate` of the
    run with a 2 GiB unknown member reads the run (then misses the data) in under 150 MB."""
    _, _, arrays, meta = saved
    history = craft(tmp_path / "history.npz", arrays, changed(meta, "history", "abc"))
    shape = craft(tmp_path / "shape.npz", {**arrays, "W_1": arrays["W_1"][:, :-1]}, meta)
    os.mkfifo(tmp_path / "fifo.npz")
    (tmp_path / "folder.npz").mkdir()
    no_data = ["--data", str(tmp_path / "no data")]
    lines = {
        history: f"field 'history': expected an object with the lists {HISTORY}, got \"abc\"",
        shape: "array W_1: expected shape (50, 50) float32 (its configuration's network), got "
               "shape (50, 49) float32; the file is damaged or not of this run",
        tmp_path / "fifo.npz": "is a FIFO (named pipe), not a file",
        tmp_path / "folder.npz": "is a folder, not a file",
        bombs["wide"]: "arrays W_0 and W_2: a network of 209,718,310 parameters (4,194,304 "
                       "inputs, 10 classes), more than a configuration allows (50,000,000); "
                       "refused unread"}
    for args in (["evaluate", history, *no_data], ["plot", shape]):
        assert main([str(a) for a in args]) == 2
        assert capsys.readouterr() == ("", f"error: {args[1]}: {lines[args[1]]}\n"), args[0]
    running = {path: subprocess.Popen([*PYTHON_M, *map(str, args)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
               for path, args in ((tmp_path / "fifo.npz", ["evaluate", tmp_path / "fifo.npz",
                                                           *no_data]),
                                  (bombs["wide"], ["evaluate", bombs["wide"], *no_data]),
                                  (tmp_path / "folder.npz", ["plot", tmp_path / "folder.npz"]))}
    junk = subprocess.run([sys.executable, "-c", MEASURED, *PYTHON_M, "evaluate",
                           str(bombs["junk"]), *no_data], capture_output=True, text=True,
                          timeout=120)
    for path, proc in running.items():
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode, out, err) == (2, "", f"error: {path}: {lines[path]}\n")
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".png"] == []
    status, err, peak = json.loads(junk.stdout)
    assert status == 2 and err.startswith("error: the CIFAR-10 folder ") and peak < 150, err


def test_reevaluate_refuses_a_run_of_other_data(synthetic):
    """A run whose network takes 40 inputs, scored on 3072-dimensional images: one line, not a
    traceback from deep inside numpy."""
    from tests.conftest import make_synthetic
    small = make_synthetic(n_train=60, n_val=20, n_test=20, d=40)
    result = train(small, Config(hidden=(8,), n_batch=20, n_s=3, cycles=0.5))
    with pytest.raises(DataError, match="the run's network takes 40 inputs and 10 classes, the "
                                         "data has 3072 and 10: evaluate it on the data it was "
                                         "trained on"):
        reevaluate(synthetic, result)
