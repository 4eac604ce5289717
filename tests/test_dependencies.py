"""Reproducible installs: hashed locks of every transitive dependency, one way to build a venv.

requirements*.in hold the direct dependencies (exact pins); `make lock` (uv) resolves them into
requirements*.txt with every transitive dependency and its hashes; `make ensure`, the workflows and
`pulumi install` install only those locks.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {
    "program": (ROOT / "requirements.in", ROOT / "requirements.txt"),
    "dev": (ROOT / "requirements-dev.in", ROOT / "requirements-dev.txt"),
    "pack": (ROOT / "policy-pack" / "requirements.in", ROOT / "policy-pack" / "requirements.txt"),
}
REQUIREMENT = re.compile(r"^([A-Za-z0-9._-]+)==(\S+?)(?:\s*;\s*(.+?))?\s*\\?$")


def _lock(path: Path) -> dict[str, tuple[str, str, int]]:
    """name -> (version, marker, number of hashes), from a `uv pip compile --generate-hashes`
    file; fails on any requirement that is not an exact, hashed pin."""
    entries: dict[str, tuple[str, str, int]] = {}
    current = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            version, marker, hashes = entries[current]
            entries[current] = (version, marker, hashes + 1)
            continue
        match = REQUIREMENT.match(stripped)
        assert match, f"{path.name}: not an exact pin: {stripped}"
        current = canonicalize_name(match.group(1))
        entries[current] = (match.group(2), match.group(3) or "", 0)
    return entries


def _direct(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        if stripped.startswith("-r "):
            pins.update(_direct(path.parent / stripped[3:].strip()))
            continue
        match = REQUIREMENT.match(stripped)
        assert match, f"{path.name}: a direct dependency must be an exact pin: {stripped}"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _applies(marker: str) -> bool:
    return not marker or Marker(marker).evaluate()


@pytest.mark.parametrize("name", LOCKS)
def test_lock_pins_every_package_with_hashes_and_honours_the_direct_pins(name: str) -> None:
    direct, lock_file = LOCKS[name]
    lock = _lock(lock_file)
    assert lock
    unhashed = [package for package, (_, _, hashes) in lock.items() if hashes == 0]
    assert unhashed == []
    for package, version in _direct(direct).items():
        assert lock.get(package, ("absent",))[0] == version, f"{lock_file.name}: {package}"


def test_a_package_has_one_version_in_every_lock() -> None:
    dev = _lock(LOCKS["dev"][1])
    for name in ("program", "pack"):
        for package, (version, _, _) in _lock(LOCKS[name][1]).items():
            assert dev.get(package, ("absent",))[0] == version, f"{name}: {package}"


def _expected(lock_file: Path) -> dict[str, str]:
    return {
        package: version
        for package, (version, marker, _) in _lock(lock_file).items()
        if _applies(marker)
    }


def _installed_here() -> dict[str, str]:
    found: dict[str, str] = {
        canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
    }
    found.pop("pip", None)  # the virtualenv's own installer, not a dependency
    return found


def test_dot_venv_holds_exactly_the_dev_lock() -> None:
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"not running in the project's .venv (sys.prefix {sys.prefix})")
    assert _installed_here() == _expected(LOCKS["dev"][1]), "stale .venv: run `make ensure`"


def test_policy_pack_venv_holds_exactly_the_pack_lock() -> None:
    python = ROOT / "policy-pack" / "venv" / "bin" / "python"
    if not python.exists():
        pytest.skip("policy-pack/venv does not exist (make ensure builds it)")
    listing = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    installed: dict[str, str] = {
        canonicalize_name(k): v for k, v in json.loads(listing.stdout).items()
    }
    installed.pop("pip", None)
    assert installed == _expected(LOCKS["pack"][1]), "stale policy-pack/venv: run `make ensure`"


def test_one_recipe_builds_virtualenvs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.count(" -m venv ") == 1
    assert "--require-hashes" in makefile
    assert re.findall(r"-m pip install[^\n]*", makefile) == [
        "-m pip install --quiet --require-hashes -r $(2)"
    ]
    for workflow in (ROOT / ".github" / "workflows").glob("*.yml"):
        text = workflow.read_text()
        assert "pip install" not in text, f"{workflow.name}: install through `make ensure`"
        assert "-m venv" not in text, f"{workflow.name}: install through `make ensure`"
