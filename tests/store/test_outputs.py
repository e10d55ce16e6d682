"""store.outputs: which paths may receive which output, on real files, folders, FIFOs and
devices; and the atomic write, whose cleanup never hides the write's own error."""
import json
import os
import pickle
import socket
import subprocess
import sys

import numpy as np
import pytest

from assignment3.store import runfile
from assignment3.store.outputs import (
    KINDS,
    OTHER,
    PARTIAL_PREFIX,
    OutputError,
    check_output,
    hold,
    kind_of,
    write_atomic,
)


@pytest.fixture
def files(tmp_path):
    """One file of each kind this package writes, and some it does not."""
    made = {}
    for kind in ("run", "checkpoint"):
        made[kind] = tmp_path / f"{kind}.npz"
        runfile.write(made[kind], {"W_0": np.zeros((2, 2))}, {"kind": kind})
    made["search"] = tmp_path / "search.jsonl"
    made["search"].write_text(json.dumps({"search": {"lam_range": [1e-5, 0.1]}}) + "\n")
    made["record"] = tmp_path / "runs.json"
    made["record"].write_text(json.dumps({"ablation": [], "best": [], "machine": {}}))
    made["figure"] = tmp_path / "fig.png"
    made["figure"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    made["pdf"] = tmp_path / "report.pdf"
    made["pdf"].write_bytes(b"%PDF-1.7\n" + bytes(100))
    made["batch"] = tmp_path / "data_batch_1"
    with open(made["batch"], "wb") as f:
        pickle.dump({b"batch_label": b"training batch 1 of 5", b"labels": [1]}, f, protocol=2)
    made["text"] = tmp_path / "notes.txt"
    made["text"].write_text("my notes\n")
    made["empty"] = tmp_path / "empty"
    made["empty"].touch()
    return made


def test_each_file_is_told_apart(files):
    assert {name: kind_of(path) for name, path in files.items()} == {
        "run": "run", "checkpoint": "checkpoint", "search": "search", "record": "record",
        "figure": "figure", "pdf": "pdf", "batch": "a CIFAR-10 data batch", "text": OTHER,
        "empty": "empty"}


def test_a_file_of_ours_may_be_replaced_by_one_of_its_kind_only(files):
    """Each kind of output may go where nothing is, to an empty file or over a file of its kind;
    over any other file it is refused, naming what is there (one of ours: "or delete the
    file")."""
    for kind in KINDS:
        assert check_output(files[kind], kind) == files[kind]
        assert check_output(files["empty"], kind) == files["empty"]
        assert check_output(files[kind].with_name("new"), kind).name == "new"
        for other, path in files.items():
            if other in (kind, "empty"):
                continue
            what = KINDS.get(other) or {"batch": "a CIFAR-10 data batch", "text": OTHER}[other]
            with pytest.raises(OutputError) as refused:
                check_output(path, kind)
            assert str(refused.value) == (f"{path} is {what}, not {KINDS[kind]}: give another "
                                          "path" + (", or delete the file" if other in KINDS
                                                    else "")), (kind, other)


def bound_socket(path):
    """A Unix socket at `path` (the socket is closed, its file stays)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


def test_what_is_no_file_is_refused(tmp_path):
    """A folder, a FIFO, a socket, a symbolic link (even to a file) and a device: refused as
    what they are; writing to the device is refused too, and it is left as it is."""
    (tmp_path / "file").write_text("x")
    made = {"a folder": lambda p: p.mkdir(), r"a FIFO \(named pipe\)": os.mkfifo,
            "a socket": bound_socket,
            "a symbolic link": lambda p: p.symlink_to(tmp_path / "file")}
    for i, (what, make) in enumerate(made.items()):
        make(tmp_path / f"{i}.npz")
        with pytest.raises(OutputError, match=f"^{tmp_path / f'{i}.npz'} is {what}, not a "
                                              "saved run: give another path$"):
            check_output(tmp_path / f"{i}.npz", "run")
    with pytest.raises(OutputError, match="^/dev/null is a device, not a saved run"):
        check_output("/dev/null", "run")
    with pytest.raises(OutputError, match="is a device"):
        write_atomic("/dev/null", "run", lambda f: f.write(b"x"))
    assert not os.path.isfile("/dev/null")


def test_write_atomic_writes_whole_files_and_refuses_others(files):
    write_atomic(files["figure"], "figure", lambda f: f.write(b"\x89PNG new"))
    assert files["figure"].read_bytes() == b"\x89PNG new"
    with pytest.raises(OutputError, match="is a file that assignment3 did not write"):
        write_atomic(files["text"], "figure", lambda f: f.write(b"\x89PNG"))
    assert files["text"].read_text() == "my notes\n"


def ours(folder):
    """The temporary and lock files of outputs left in `folder`."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(PARTIAL_PREFIX))


def test_a_failed_write_leaves_the_old_file_and_nothing_else(files):
    def fail(f):
        f.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    old = files["figure"].read_bytes()
    with pytest.raises(OSError, match="No space left on device"):
        write_atomic(files["figure"], "figure", fail)
    assert files["figure"].read_bytes() == old
    assert ours(files["figure"].parent) == []


def test_cleanup_never_hides_the_error_of_the_write(tmp_path):
    """The write fails after its temporary file has become a folder holding a file, which
    cannot be removed: the error raised is the write's, not the cleanup's."""
    def fail(f):
        partial = next(p for p in tmp_path.iterdir() if p.name.endswith(".partial"))
        partial.unlink()
        partial.mkdir()
        (partial / "inside").touch()
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output error") as caught:
        write_atomic(tmp_path / "run.npz", "run", fail)
    assert caught.value.__context__ is None      # not raised while handling another error


WRITER = """
import sys
from assignment3.store.outputs import write_atomic
body = b"<svg " + sys.argv[2].encode() * 100_000
for _ in range(100):
    write_atomic(sys.argv[1], "figure", lambda f: f.write(body))
"""


KILLED = """
import sys, time
from assignment3.store.outputs import write_atomic
write_atomic(sys.argv[1], "figure", lambda f: (f.write(b"<svg half"), f.flush(), time.sleep(60)))
"""


def test_the_temporary_file_of_a_killed_writer_goes_with_the_next_write(tmp_path):
    target = tmp_path / "fig.svg"
    writer = subprocess.Popen([sys.executable, "-c", KILLED, target])
    while not any(p.name.endswith(".partial") for p in tmp_path.iterdir()):
        assert writer.poll() is None
    writer.kill()
    writer.wait()
    write_atomic(target, "figure", lambda f: f.write(b"<svg whole"))
    assert target.read_bytes() == b"<svg whole" and ours(tmp_path) == []


def test_writers_racing_on_one_path_leave_one_writers_whole_file(tmp_path):
    """Two processes write one path 100 times each: neither fails, and the file is always one
    writer's whole file (each writes through its own temporary file)."""
    target = tmp_path / "fig.svg"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, target, who],
                                stderr=subprocess.PIPE) for who in "AB"]
    seen = set()
    while any(w.poll() is None for w in writers):
        if target.exists():
            seen.add(target.read_bytes())
    assert [w.wait() for w in writers] == [0, 0], [w.stderr.read() for w in writers]
    assert seen | {target.read_bytes()} <= {b"<svg " + who * 100_000 for who in (b"A", b"B")}
    assert ours(tmp_path) == []
    for w in writers:
        w.stderr.close()


HOLDER = """
import sys, time
from assignment3.store.outputs import hold
with hold(sys.argv[1], "run"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_held_path_is_refused_to_other_processes_until_released(tmp_path):
    target = tmp_path / "run.npz"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, target], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    for attempt in (lambda: write_atomic(target, "run", lambda f: f.write(b"x")),
                    lambda: hold(target, "run").__enter__()):
        with pytest.raises(OutputError, match=f"^{target}: another run holds it"):
            attempt()
    holder.communicate("")
    with hold(target, "run"), hold(target, "run"):          # holds of one process nest
        write_atomic(target, "run", lambda f: f.write(b""))
    assert ours(tmp_path) == []


def test_names_must_fit_the_file_system(tmp_path):
    """NAME_MAX is 255 bytes (here); the temporary file's name fits whatever the target's."""
    for name, fits in (("a" * 255, True), ("a" * 256, False), ("é" * 127, True),
                       ("é" * 128, False)):
        if fits:
            write_atomic(tmp_path / name, "figure", lambda f: f.write(b"<svg"))
            assert (tmp_path / name).read_bytes() == b"<svg"
        else:
            with pytest.raises(OutputError, match="names of at most 255 bytes"):
                check_output(tmp_path / name, "figure")


def test_folders_paths_and_loops_that_cannot_take_an_output_are_refused(tmp_path):
    with pytest.raises(OutputError, match=r"the folder .*missing does not exist; create it first"):
        check_output(tmp_path / "missing" / "run.npz", "run")
    (tmp_path / "file").touch()
    with pytest.raises(OutputError, match=r"the folder .*file is not a folder"):
        check_output(tmp_path / "file" / "run.npz", "run")
    deep, fd = tmp_path, os.open(tmp_path, os.O_RDONLY)
    while len(os.fsencode(deep)) < 4096 - 2 * 201:         # made relative to the last folder
        os.mkdir("d" * 200, dir_fd=fd)
        fd, deep = os.open("d" * 200, os.O_RDONLY, dir_fd=fd), deep / ("d" * 200)
    check_output(deep / "x.npz", "run")
    with pytest.raises(OutputError, match="paths of less than 4096: give a shorter one$"):
        check_output(deep / ("x" * 250), "run")
    with pytest.raises(OutputError, match=r"cannot be used \(File name too long\)"):
        check_output(deep / ("d" * 200) / ("d" * 200) / "x.npz", "run")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OutputError, match=r"^.*loop/x.npz: the folder .*loop cannot be used "
                                          r"\(Too many levels of symbolic links\)"):
        check_output(loop / "x.npz", "run")
    with pytest.raises(OutputError, match="is a symbolic link"):
        check_output(loop, "run")


def test_a_damaged_run_file_may_be_replaced_by_a_run_or_checkpoint_only(files):
    """A run file cut short, or with its first bytes lost, is still ours: the reader of a
    checkpoint says what is wrong with it; a figure never replaces it."""
    whole = files["run"].read_bytes()
    for damaged in (whole[:len(whole) // 2], b"\0" * 100 + whole[100:]):
        files["run"].write_bytes(damaged)
        assert kind_of(files["run"]) == "a damaged run file"
        assert check_output(files["run"], "checkpoint") == check_output(files["run"], "run")
        with pytest.raises(OutputError, match="is a damaged run file, not a figure"):
            check_output(files["run"], "figure")
