"""The tools as the README shows them: `python -m tools.<name>` from the repository root, with
whatever `python` is first on PATH, and no help from the Makefile's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# An interpreter outside the project's virtualenv, as on a newcomer's PATH.
BARE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"


def _bare(*args: str) -> subprocess.CompletedProcess[str]:
    if not BARE_PYTHON.exists() or Path(sys.prefix) == Path(sys.base_prefix):
        pytest.skip("needs the virtualenv's base interpreter next to the virtualenv")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "POLICY_PACK_CONFIG", "PYTHONHOME")
    }
    return subprocess.run(
        [str(BARE_PYTHON), "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_bare_access_matrix_runs_in_the_project_virtualenv() -> None:
    result = _bare("tools.access_matrix")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Model access matrix (stack `dev`)")


def test_bare_check_finds_the_policy_config_and_passes_the_dev_stack() -> None:
    result = _bare("tools.check", "--stack", "dev")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "config policy-pack/policy-config.json" in result.stdout
    assert "PASS" in result.stdout
