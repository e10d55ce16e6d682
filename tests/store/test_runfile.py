"""The run format: arrays and JSON in one .npz archive, written atomically, read without
unpickling; every file that is not such a run file is refused, naming the file and why: a
folder, FIFO or device by what it is (without blocking), members that would inflate or whose
header does not match their size before any of their data is decompressed."""
import io
import json
import os
import pathlib
import pickle
import struct
import threading
import zipfile
import zlib

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


def test_parameters_and_moving_averages_round_trip(tmp_path):
    """`param_arrays` names every array of a network; `read_network` reads those of the network
    back (with or without a prefix), and refuses a file that misses one."""
    params = init_params([20, 8, 6, 10], batch_norm=True, seed=0)
    stats = [(np.full((8, 1), 0.5), np.full((8, 1), 2.0)), (np.zeros((6, 1)), np.ones((6, 1)))]
    flat = runfile.param_arrays(params, stats)
    assert sorted(flat) == sorted(["W_0", "W_1", "W_2", "b_0", "b_1", "b_2", "gamma_0",
                                   "gamma_1", "beta_0", "beta_1", "mu_0", "v_0", "mu_1", "v_1"])
    path = tmp_path / "run.npz"
    runfile.write(path, {**flat, **runfile.param_arrays(params, stats, runfile.AVERAGED)},
                  {"kind": "run"})
    for prefix in ("", runfile.AVERAGED):
        with runfile.RunFile(path) as f:
            back, back_stats = runfile.read_network(f, [20, 8, 6, 10], True, np.float64, prefix)
        assert back.keys() == params.keys()
        for name in params:
            assert all(np.array_equal(a, b) for a, b in zip(back[name], params[name], strict=True))
        assert all(np.array_equal(a, b) for pair, back_pair in zip(stats, back_stats, strict=True)
                   for a, b in zip(pair, back_pair, strict=True))
    del flat["W_1"]
    runfile.write(path, flat, {"kind": "run"})
    with pytest.raises(RunFileError, match="run.npz: misses the array W_1 of its configuration's "
                                           "network$"), runfile.RunFile(path) as f:
        runfile.read_network(f, [20, 8, 6, 10], True, np.float64)


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


def read_in_thread(path):
    """runfile.read(path) in a thread: (the error it raised, whether it was still blocked after
    10 s)."""
    raised = []

    def read():
        try:
            runfile.read(path)
        except RunFileError as err:
            raised.append(err)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    return (raised[0] if raised else None), thread.is_alive()


def test_what_is_not_a_run_file_is_named(stored, tmp_path):
    """A missing path, a folder, a FIFO (read without blocking: no writer ever opens it), a
    device, a link to nothing and an empty file, each named as what it is; a link to a run
    file reads as the file."""
    os.mkfifo(tmp_path / "fifo.npz")
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "dangling.npz").symlink_to(tmp_path / "gone.npz")
    (tmp_path / "empty.npz").touch()
    for path, problem in ((tmp_path / "nope.npz", "no such file"),
                          (tmp_path / "folder.npz", "is a folder, not a file"),
                          (tmp_path / "fifo.npz", r"is a FIFO \(named pipe\), not a file"),
                          (pathlib.Path("/dev/null"), "is a device, not a file"),
                          (tmp_path / "dangling.npz", "is a symbolic link to a file that does "
                                                      "not exist"),
                          (tmp_path / "empty.npz", "is empty, not a run file")):
        err, blocked = read_in_thread(path)
        assert not blocked, f"reading {path} blocked"
        with pytest.raises(RunFileError, match=f"^{path}: {problem}$"):
            raise err
    (tmp_path / "link.npz").symlink_to(stored[0])
    assert runfile.read(tmp_path / "link.npz")[1]["kind"] == "run"


# ---------------------------------------------------------------------------------------------
# Zip archives made member by member: compressed, lying about their sizes, with bad headers


def npy(a):
    """The .npy bytes of the array a."""
    out = io.BytesIO()
    np.lib.format.write_array(out, a, allow_pickle=False)
    return out.getvalue()


def npy_header(shape, descr="<f4"):
    """The .npy header of an array of `shape` and `descr`, without its data."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return out.getvalue()


def deflated_zeros(header, nbytes):
    """A deflated zip member of `header` and `nbytes` zero bytes, as (compressed bytes,
    size, CRC-32), made fast: one MiB of zeros compressed once (to about 1 kB) and repeated
    (each copy ends on a full flush, so that the copies chain into one stream)."""
    block = bytes(1 << 20)
    assert nbytes % len(block) == 0
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflate.compress(header) + deflate.flush(zlib.Z_FULL_FLUSH)
    body = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(nbytes // len(block)):
        crc = zlib.crc32(block, crc)
    return head + body * (nbytes // len(block)) + deflate.flush(), len(header) + nbytes, crc


def write_zip(path, members, declared=None):
    """A zip archive of `members`: name -> bytes (stored) or (compressed bytes, size, crc)
    (deflated); `declared`: name -> the size its headers declare (stored: both sizes), if not
    its own."""
    out, directory = bytearray(), bytearray()
    for name, member in members.items():
        if isinstance(member, bytes):
            method, data, size, crc = 0, member, len(member), zlib.crc32(member)
        else:
            method, (data, size, crc) = 8, member
        stored = len(data)
        if name in (declared or {}):
            size = declared[name]
            stored = stored if method else size
        encoded, offset = name.encode(), len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 33, crc, stored, size,
                           len(encoded), 0) + encoded + data
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 33,
                                 crc, stored, size, len(encoded), 0, 0, 0, 0, 0,
                                 offset) + encoded
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                      len(directory), len(out), 0)
    pathlib.Path(path).write_bytes(bytes(out + directory + end))


def members_of(path):
    """The members of the zip archive `path` (a small one), by name."""
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def test_zip_members_made_here_are_what_numpy_reads(tmp_path):
    """The archives of `write_zip` are valid: numpy reads them, a deflated member included."""
    meta = npy(np.array(json.dumps({"format": FORMAT_VERSION})))
    write_zip(tmp_path / "ok.npz", {"meta.npy": meta, "W_0.npy": npy(np.eye(2)),
                                    "z.npy": deflated_zeros(npy_header((1 << 18,)), 1 << 20)})
    with np.load(tmp_path / "ok.npz") as f:
        assert np.array_equal(f["W_0"], np.eye(2)) and f["z"].shape == (1 << 18,)
        assert not f["z"].any()
    arrays, _ = runfile.read(tmp_path / "ok.npz")            # 1 MiB of 1 kB: within the bound
    assert not arrays["z"].any()


#: The member of a run file with its format alone.
FORMAT_ONLY = npy(np.array(json.dumps({"format": FORMAT_VERSION})))
EYE = npy(np.eye(2))


@pytest.mark.parametrize("member, declared, message", [
    (("z.npy", deflated_zeros(npy_header((1 << 23,)), 1 << 25)), None,
     r"array z: [\d,]+ compressed bytes declare 33,554,560 bytes, more than arrays of a network "
     r"compress \(16x\); refused unread"),
    (("W_0.npy", npy_header((2, 2), "<f8") + bytes(4)), None,
     r"array W_0: its member declares 4 bytes of data, its header's shape \(2, 2\) float64 "
     r"needs 32; the file is damaged"),
    (("W_0.npy", b"PK not an array at all"), None,
     r"not a readable run file \(member W_0: ValueError: .*magic"),
    (("W_0.npy", b"\x93NUMPY\x09\x00" + EYE[8:]), None,
     r"not a readable run file \(member W_0: ValueError: npy format version \(9, 0\)\); it may "
     r"be truncated or corrupt"),
    (("W_0.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + b"{" * 100), None,
     r"not a readable run file \(member W_0: ValueError: its .npy header declares "
     r"1,073,741,824 bytes, more than the 10,064 a header may take\); it may be truncated"),
    (("W_0.npy", npy_header((1000, 1000)) + bytes(100)), 4_000_128,
     r"array W_0: its member declares 4,000,128 bytes, more than the file holds; the file is "
     r"truncated"),
    (("W_0.npy", EYE), "crc", r"not a readable run file \(member W_0: BadZipFile: Bad CRC-32"),
], ids=["bomb", "size not its header's", "no npy", "npy version 9", "huge header",
        "beyond the file", "crc"])
def test_member_is_checked_before_its_data_is_read(tmp_path, member, declared, message):
    """A member that would inflate 1000-fold (32 MiB of 32 kB), one whose zip size is not its
    header's, one that is no .npy, a header of an unknown version or declaring a gigabyte (numpy
    would read all of it before checking it), a member larger than the file, and stored bytes
    that are not what the directory's CRC says."""
    name, data = member
    path = tmp_path / "bad.npz"
    write_zip(path, {"meta.npy": FORMAT_ONLY, name: data},
              declared={name: declared} if isinstance(declared, int) else {})
    if declared == "crc":                      # the stored data changed after the CRC was taken
        whole = path.read_bytes()
        at = whole.index(EYE) + len(EYE) - 1
        path.write_bytes(whole[:at] + b"\x01" + whole[at + 1:])
    with pytest.raises(RunFileError, match=f"^{path}: {message}"):
        runfile.read(path)


def meta_member(value):
    """A zip archive's member `meta.npy` holding np.array(value) (a run file's: its JSON text)."""
    return {"meta.npy": npy(np.array(value))}


@pytest.mark.parametrize("members, message", [
    (None, r"not a readable run file \(not an .npz archive\); it may be truncated or corrupt, or "
     r"another kind of file"),
    ({"W_0.npy": EYE}, "has no 'meta' member with JSON text; not a run file"),
    (meta_member(1.5), "has no 'meta' member with JSON text"),
    (meta_member(["{}"]), "has no 'meta' member with JSON text"),
    ({"meta.npy": deflated_zeros(npy_header((), "<U20971520"), 5 << 24)},
     r"its JSON member 'meta' declares 83,886,208 bytes, more than the 67,108,864 a run file's "
     r"JSON may take; refused unread"),
    ({"meta.npy": deflated_zeros(npy_header((), "<U4194304"), 1 << 24)},
     r"its JSON member 'meta': [\d,]+ compressed bytes declare 16,777,344 bytes, more than a "
     r"run's JSON compresses \(64x\); refused unread"),
    (meta_member("[" * 100_000 + "]" * 100_000),
     r"its JSON member is damaged \(nested too deeply\)"),
    (meta_member('{"format": 1, "seed": ' + "9" * 5000 + "}"),
     r"its JSON member is damaged \(Exceeds the limit"),
    (meta_member(f"[{FORMAT_VERSION}]"),
     r"its JSON member holds \[1\], not an object; not a run file"),
    (meta_member('{"kind": "run"}'), "field 'format': missing; not a run file"),
    (meta_member('{"format": true}'), "is in run format true, this code reads format 1"),
    (meta_member('{"format": 1.0}'), "is in run format 1.0, this code reads format 1"),
    (meta_member(json.dumps({"format": FORMAT_VERSION + 1})),
     f"is in run format {FORMAT_VERSION + 1}, this code reads format {FORMAT_VERSION}"),
], ids=["truncated", "no meta", "meta a float", "meta an array", "meta of 80 MiB",
        "meta inflating", "JSON nested too deeply", "JSON of 5000 digits", "JSON no object",
        "no format", "format true", "format 1.0", "format 2"])
def test_file_that_is_no_run_file_is_refused(stored, tmp_path, members, message):
    """A run file cut short; archives without a JSON member or whose `meta` is not a str scalar,
    whose JSON member declares 80 MiB (inflating from 80 kB) or 16 MiB (within the limit, but
    inflating 1000-fold from 16 kB), is nested too deeply for the parser, holds an integer of
    5,000 digits, or is not an object; without a format, or of another one (true and 1.0 equal
    1 in Python): refused, naming the file, and left as it is. (members None: the stored run
    file cut in half.)"""
    path = tmp_path / "bad.npz"
    if members is None:
        path.write_bytes(stored[1][:len(stored[1]) // 2])
    else:
        write_zip(path, members)
    before = path.read_bytes()
    with pytest.raises(RunFileError, match=f"^{path}: {message}") as err:
        runfile.read(path)
    assert err.value.path == path and path.read_bytes() == before


def test_unknown_members_and_other_files_in_the_archive(stored, tmp_path):
    """Members that are no .npy arrays (a note, a folder entry) are not arrays of the file."""
    members = {**members_of(stored[0]), "notes.txt": b"hello", "folder/": b""}
    write_zip(tmp_path / "more.npz", members)
    arrays, meta = runfile.read(tmp_path / "more.npz")
    assert sorted(arrays) == ["W_0", "b_0", "count"] and meta["kind"] == "run"
