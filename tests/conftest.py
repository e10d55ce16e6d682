"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """The real CIFAR-10 batches: $CIFAR10_DIR, else <repo>/../shared/data/cifar-10-batches-py."""
    candidates = [REPO.parent / "shared" / "data" / "cifar-10-batches-py"]
    if os.environ.get("CIFAR10_DIR"):
        candidates.insert(0, Path(os.environ["CIFAR10_DIR"]))
    for folder in candidates:
        if (folder / "test_batch").is_file():
            return folder
    pytest.skip(f"real CIFAR-10 data not found in {' or '.join(map(str, candidates))}; "
                "set CIFAR10_DIR to the cifar-10-batches-py folder")
