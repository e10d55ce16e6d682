"""The run format: arrays and JSON in one .npz archive, written atomically, read without
unpickling; every file that is not such a run file is refused, naming the file and why."""
import json
import pathlib
import pickle

import numpy as np
import pytest

from assignment3.nn.network import init_params
from assignment3.store import runfile
from assignment3.store.runfile import FORMAT_VERSION, RunFileError


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {"W_0": rng.standard_normal((3, 4)).astype(np.float32),
            "b_0": rng.standard_normal((3, 1)), "count": np.arange(5)}


@pytest.fixture
def stored(tmp_path, arrays):
    """A run file of `arrays` with a small meta, and its bytes."""
    path = tmp_path / "run.npz"
    runfile.write(path, arrays, {"kind": "run", "notes": {"why": "a test"}, "steps": [1, 2]})
    return path, path.read_bytes()


def test_written_file_reads_back_exactly(stored, arrays, tmp_path):
    path, _ = stored
    read_arrays, meta = runfile.read(path)
    assert meta == {"format": FORMAT_VERSION, "kind": "run", "notes": {"why": "a test"},
                    "steps": [1, 2]}
    assert read_arrays.keys() == arrays.keys()
    for name, a in arrays.items():
        assert read_arrays[name].dtype == a.dtype and np.array_equal(read_arrays[name], a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]      # no temporary left


def test_write_refuses_before_writing_anything(tmp_path, arrays):
    path = tmp_path / "run.npz"
    with pytest.raises(ValueError, match="'meta' is the name of the JSON member"):
        runfile.write(path, {**arrays, "meta": np.zeros(1)}, {})
    with pytest.raises(TypeError, match="not JSON serializable"):
        runfile.write(path, arrays, {"not json": object()})
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_file_whole(stored):
    """A writer that fails half-way: the file holds the old content, the partial file is gone."""
    path, old = stored

    def half_then_fail(f):
        f.write(b"half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        runfile.write_atomic(path, half_then_fail)
    assert path.read_bytes() == old
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.npz"]


def test_parameters_and_moving_averages_round_trip():
    params = init_params([20, 8, 6, 10], batch_norm=True, seed=0)
    stats = [(np.full((8, 1), 0.5), np.full((8, 1), 2.0)), (np.zeros((6, 1)), np.ones((6, 1)))]
    flat = runfile.param_arrays(params, stats)
    assert sorted(flat) == sorted(["W_0", "W_1", "W_2", "b_0", "b_1", "b_2", "gamma_0",
                                   "gamma_1", "beta_0", "beta_1", "mu_0", "v_0", "mu_1", "v_1"])
    back, back_stats = runfile.params_from(flat, 3, 2, "run.npz")
    assert back.keys() == params.keys()
    for name in params:
        assert all(a is b for a, b in zip(back[name], params[name]))
    assert all(a is b for pair, back_pair in zip(stats, back_stats)
               for a, b in zip(pair, back_pair))
    del flat["W_1"]
    with pytest.raises(RunFileError, match="run.npz: misses the array W_1 of its configuration"):
        runfile.params_from(flat, 3, 2, "run.npz")


class _Touch:
    """Unpickling it would create the file `path`."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def write_with_pickle(path, marker):
    """An .npz run file whose W_0 is an object array holding a `_Touch(marker)`."""
    evil = np.empty(1, dtype=object)
    evil[0] = _Touch(marker)
    pickle.dumps(evil)                                   # it does pickle
    np.savez(path, W_0=evil, meta=np.array(json.dumps({"format": FORMAT_VERSION})))


def test_file_with_a_pickled_object_is_refused_unread(tmp_path):
    marker = tmp_path / "unpickled"
    write_with_pickle(tmp_path / "evil.npz", marker)
    with pytest.raises(RunFileError, match="holds a pickled object array, which loading would "
                                           "have to unpickle"):
        runfile.read(tmp_path / "evil.npz")
    assert not marker.exists()


def damaged(stored, tmp_path, how):
    """The stored run file damaged in the way `how` says, written to a new file."""
    path, whole = stored
    meta_of = {"other format": {"format": FORMAT_VERSION + 1},
               "meta not a dict": [FORMAT_VERSION]}
    out = tmp_path / "damaged.npz"
    if how == "truncated":
        out.write_bytes(whole[:len(whole) // 2])
    elif how == "zeroed start":
        out.write_bytes(b"\0" * 100 + whole[100:])
    elif how == "JSON file":
        out.write_text('{"best": []}')
    elif how == "no meta":
        np.savez(out, W_0=np.zeros(2))
    elif how == "meta not text":
        np.savez(out, W_0=np.zeros(2), meta=np.zeros(2))
    elif how == "damaged JSON":
        np.savez(out, W_0=np.zeros(2), meta=np.array('{"format": 1, '))
    else:
        np.savez(out, W_0=np.zeros(2), meta=np.array(json.dumps(meta_of[how])))
    return out


@pytest.mark.parametrize("how, message", [
    ("truncated", r"not a readable run file \(not an .npz archive\); it may be truncated or "
                  r"corrupt, or another kind of file"),
    ("zeroed start", "not a readable run file .*; it may be truncated or corrupt"),
    ("JSON file", r"not a readable run file \(not an .npz archive\)"),
    ("no meta", "has no 'meta' member with JSON text; not a run file"),
    ("meta not text", "has no 'meta' member with JSON text"),
    ("damaged JSON", r"its JSON member is damaged \("),
    ("other format", f"is in run format {FORMAT_VERSION + 1}, this code reads format "
                     f"{FORMAT_VERSION}"),
    ("meta not a dict", "is in run format None"),
])
def test_file_that_is_no_run_file_is_refused(stored, tmp_path, how, message):
    path = damaged(stored, tmp_path, how)
    before = path.read_bytes()
    with pytest.raises(RunFileError, match=message) as err:
        runfile.read(path)
    assert str(err.value).startswith(f"{path}: ") and err.value.path == path
    assert path.read_bytes() == before                                    # left as it is


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(RunFileError, match="nope.npz: no such file"):
        runfile.read(tmp_path / "nope.npz")
    with pytest.raises(RunFileError, match="no such file"):              # a folder is no file
        runfile.read(tmp_path)
