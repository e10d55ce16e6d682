"""Where a result comes from: the code version (a commit of this repository, and whether the
package differs from it), the machine with its BLAS kernel, the matmul rate, and their short
forms."""
import os
import subprocess

import numpy as np
import pytest

from assignment3.config import Config
from assignment3.store.provenance import (
    REPO,
    code_version,
    describe,
    machine,
    matmul_rate,
    short_version,
)


def git(*args):
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_code_version_names_the_commit_of_this_repository():
    version = code_version()
    commit, _, changes = version.partition("+")
    assert commit == git("rev-parse", "HEAD") and len(commit) == 40
    assert git("cat-file", "-t", commit) == "commit"
    package_changed = git("status", "--porcelain", "--untracked-files=no", "--", "assignment3")
    assert changes == ("changes" if package_changed else "")


def test_code_version_outside_a_checkout_is_unknown(tmp_path):
    assert code_version(tmp_path) == "unknown"
    assert code_version(tmp_path / "no such folder") == "unknown"


@pytest.mark.parametrize("version, short", [
    ("0123456789abcdef0123456789abcdef01234567", "0123456789ab"),
    ("0123456789abcdef0123456789abcdef01234567+changes", "0123456789ab+changes"),
    ("unknown", "unknown"),
    ("test", "test"),
])
def test_short_version(version, short):
    assert short_version(version) == short


def test_machine_names_cores_numpy_and_the_blas_kernel():
    info = machine()
    assert info["cores"] == os.cpu_count() and info["numpy"] == np.__version__
    assert info["cpu"] and info["python"].count(".") == 2
    assert info["blas"] and "(" in info["blas"] and "threads" in info["blas"]  # version (kernel)
    line = describe(info)
    assert info["cpu"] in line and info["blas"] in line and f"{os.cpu_count()} cores" in line
    assert describe(None) == "not recorded" and describe({}) == "not recorded"


def test_matmul_rate_is_a_rate_in_gflops():
    rate = matmul_rate(Config(hidden=(64,), n_batch=32), d=256, repeats=3)
    assert isinstance(rate, float) and 0 < rate < 1e5
