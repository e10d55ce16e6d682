"""requirements.lock agrees with pyproject.toml (`make lock` writes the one from the other): on
every supported Python, each dependency and extra of pyproject.toml is pinned exactly once, with
hashes, at a version its bounds allow, and the lock pins nothing as ours that pyproject.toml does
not ask for."""
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ["3.10.13", "3.11.7", "3.12.1", "3.13.0"]
OURS = "assignment3 (pyproject.toml)"


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def wanted() -> list[Requirement]:
    """Every requirement of pyproject.toml, its extras' included, and [tool.uv]'s constraints."""
    p = project()
    reqs = p["project"]["dependencies"] + [
        r for extra in p["project"]["optional-dependencies"].values() for r in extra]
    return [Requirement(r) for r in reqs + p["tool"]["uv"]["constraint-dependencies"]]


def pins() -> list[tuple[Requirement, str]]:
    """(name==version ; marker, its `# via` comment) of every package in the lock."""
    text = (ROOT / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[2])
    found = []
    for entry in entries:
        spec = entry.split(" \\\n", 1)[0]
        assert "--hash=sha256:" in entry, f"{spec}: pinned without a hash"
        found.append((Requirement(spec), entry))
    return found


@pytest.mark.parametrize("python", PYTHONS)
def test_every_requirement_is_pinned_once_within_its_bounds(python):
    env = {"python_full_version": python, "python_version": python.rsplit(".", 1)[0],
           "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    locked = {}
    for pin, _ in pins():
        if pin.marker is None or pin.marker.evaluate(env):
            name = canonicalize_name(pin.name)
            assert name not in locked, f"{pin.name} is pinned twice for Python {python}"
            locked[name] = next(iter(pin.specifier)).version
    for req in wanted():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        version = locked.get(canonicalize_name(req.name))
        assert version is not None, f"{req} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {req.name}=={version} for Python {python}, outside {req}: "
            "run `make lock`")


def test_the_lock_pins_as_ours_only_what_pyproject_asks_for():
    asked = {canonicalize_name(r.name) for r in wanted()}
    ours = {canonicalize_name(pin.name) for pin, entry in pins() if OURS in entry}
    assert ours == asked, "requirements.lock is older than pyproject.toml: run `make lock`"

