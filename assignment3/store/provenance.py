"""Where a result comes from, in one place: the code version that made it (the git commit, and
whether the working tree differed), the machine it ran on (CPU, cores, numpy, the BLAS library
and kernel), that machine's float32 matmul rate, and each in the short form the report prints."""
import os
import platform
import subprocess
import timeit
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from ..config import Config
from ..data import D

#: The repository whose commit `code_version` reports.
REPO = Path(__file__).resolve().parents[2]


def machine() -> dict[str, Any]:
    """The machine a run is timed on: CPU model, cores, Python and numpy versions, and the BLAS
    library with its kernel (e.g. "openblas 0.3.31 (Haswell), 2 threads"; the kernel changes
    the rounding of the products, so a seed gives a different run with another kernel)."""
    cpu = next((line.split(":", 1)[1].strip() for line in        # Linux: the model name
                (Path("/proc/cpuinfo").read_text().splitlines()
                 if os.path.exists("/proc/cpuinfo") else [])
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__,
            "blas": "; ".join(f"{i['internal_api']} {i['version']} ({i.get('architecture', '?')}),"
                              f" {i['num_threads']} threads" for i in threadpool_info()
                              if i["user_api"] == "blas")}


#: What the committed notebooks were executed with (docs/same-numbers.md): numpy, its OpenBLAS
#: and the kernel OpenBLAS ran; requirements.lock installs the first two.
REFERENCE = {"numpy": "2.4.6", "blas": "openblas 0.3.31", "kernel": "Haswell"}


def unlike_reference(machine_info: dict[str, Any]) -> str:
    """"" if a `machine()` dict has the numpy, OpenBLAS and kernel of the committed numbers, else
    a clause saying that it has not, for the report's execution record."""
    blas = machine_info.get("blas", "")
    return "" if machine_info.get("numpy") == REFERENCE["numpy"] and \
        blas.startswith(REFERENCE["blas"] + ".") and f"({REFERENCE['kernel']})" in blas else \
        ("; not the versions of the committed numbers (numpy {numpy}, {blas} with the "
         "{kernel} kernel), so the last digits may differ").format(**REFERENCE)


def code_version(repo: Path = REPO) -> str:
    """The git commit of the code ("<hash>", with "+changes" if the working tree differs from
    it), or "unknown" outside a git checkout."""
    try:
        commit, changed = (subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                                          text=True, check=True).stdout.strip()
                           for args in (("rev-parse", "HEAD"), ("status", "--porcelain",
                                        "--untracked-files=no", "--", "assignment3")))
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if changed else "")


def matmul_rate(config: Config, d: int = D, repeats: int = 20) -> float:
    """GFLOP/s of this machine's float32 product of `config`'s first layer, W_1 (m_1 x d) times a
    mini-batch (d x n_batch), with its BLAS threads; median of `repeats`. It bounds the speed of
    the training steps, so it tells how fast the machine was when a run was timed."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((config.hidden[0], d), dtype=np.float32)
    X = rng.standard_normal((d, config.n_batch), dtype=np.float32)
    with threadpool_limits(config.blas_threads, user_api="blas"):   # the first product warms up
        times = timeit.repeat(lambda: W @ X, number=1, repeat=repeats + 1)
    return float(2 * W.size * config.n_batch / np.median(times[1:]) / 1e9)


def describe(machine_info: dict[str, Any] | None) -> str:
    """One line for a `machine()` dict (or "not recorded" for None)."""
    return "{cpu}, {cores} cores, numpy {numpy}, BLAS {blas}".format(**machine_info) \
        if machine_info else "not recorded"


def short_version(version: str) -> str:
    """A `code_version` shortened for print: the first 12 hex digits of the commit and its
    "+changes"; other text (e.g. "unknown") as it is."""
    return version[:12] + version[40:] if len(version) >= 40 and version[:40].isalnum() \
        else version
