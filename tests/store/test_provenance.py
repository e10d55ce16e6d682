"""Where a result comes from: the code version (a commit of this repository, and whether the
package differs from it), the machine with its BLAS kernel, the matmul rate, and their short
forms."""
import os
import subprocess

import numpy as np

from assignment3.config import Config
from assignment3.store.provenance import (
    REPO,
    code_version,
    describe,
    machine,
    matmul_rate,
    short_version,
    unlike_reference,
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


def test_short_version():
    """A commit is cut to 12 hex digits, keeping its "+changes"; other text is left as it is."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    for version, short in ((commit, "0123456789ab"), (commit + "+changes", "0123456789ab+changes"),
                           ("unknown", "unknown")):
        assert short_version(version) == short, version


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


REFERENCE_MACHINE = {"cpu": "AMD EPYC", "cores": 2, "python": "3.11.7", "numpy": "2.4.6",
                     "blas": "openblas 0.3.31.188.0 (Haswell), 2 threads"}


def test_a_machine_unlike_the_committed_numbers_says_so():
    """Only the committed numbers' numpy, OpenBLAS (any build of 0.3.31) and kernel are like the
    reference: another numpy (2.4.60 is not 2.4.6), OpenBLAS (0.3.310 is not 0.3.31), kernel
    or none recorded is not."""
    assert unlike_reference(REFERENCE_MACHINE) == ""
    for change in ({"numpy": "2.5.5"}, {"numpy": "2.4.60"},
                   {"blas": "openblas 0.3.34.0 (Haswell), 2 threads"},
                   {"blas": "openblas 0.3.310 (Haswell), 2 threads"},
                   {"blas": "openblas 0.3.31.188.0 (SkylakeX), 2 threads"}, {"blas": ""}):
        assert unlike_reference({**REFERENCE_MACHINE, **change}).startswith(
            "; not the versions of the committed numbers (numpy 2.4.6, openblas 0.3.31 with the "
            "Haswell kernel)"), change
