"""`python -m tools.rotation`: a planned change of the mesh CA config, judged against the
committed stack file before it is applied."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import certs
from tools import rotation

OLD, NEW = "corp-root-2024", "corp-root-2026"


def _config(roots: list[str], issuing: str, intermediate: str) -> dict[str, Any]:
    """A stack file's config at one step. The key is left out, as a committed file has it: the
    tool stands in for missing secrets."""
    return {
        "aimesh:meshCa": "cert-manager",
        "aimesh:meshCaIssuer": "existing",
        "aimesh:meshCaCertificate": certs.intermediate(intermediate, issuing).pem,
        "aimesh:meshTrustRoots": [{"name": r, "pem": certs.root(r).pem} for r in roots],
    }


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(rotation.ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    monkeypatch.setattr(rotation, "ROOT", tmp_path)
    return tmp_path


def _run(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> tuple[int, str]:
    (project / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": after}))
    monkeypatch.setattr(rotation, "committed", lambda stack, revision: before)
    code = rotation.main(["--stack", "prod"])
    return code, capsys.readouterr().out


STEPS = [
    ([OLD], OLD, "corp-int-2024"),
    ([OLD, NEW], OLD, "corp-int-2024"),
    ([OLD, NEW], NEW, "corp-int-2026"),
    ([NEW], NEW, "corp-int-2026"),
]


@pytest.mark.parametrize("index", [1, 2, 3], ids=["add", "switch", "remove"])
def test_each_documented_step_is_safe(
    index: int,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _run(
        project, monkeypatch, capsys, _config(*STEPS[index - 1]), _config(*STEPS[index])
    )
    assert code == 0, out
    assert "a safe step" in out
    assert "1h" in out


@pytest.mark.parametrize(("before", "after"), [(0, 2), (1, 3), (0, 3)])
def test_a_skipped_step_fails_with_the_reason(
    before: int,
    after: int,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _run(project, monkeypatch, capsys, _config(*STEPS[before]), _config(*STEPS[after]))
    assert code == 1
    assert "would cut workloads off" in out


def test_no_change_and_no_history_pass(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    same = _config(*STEPS[0])
    assert _run(project, monkeypatch, capsys, same, same) == (
        0,
        "Pulumi.prod.yaml against HEAD: the mesh CA does not change\n",
    )
    code, out = _run(project, monkeypatch, capsys, None, same)
    assert code == 0
    assert "does not exist at HEAD" in out


def test_the_shipped_prod_stack_has_no_roots_yet() -> None:
    prod = yaml.safe_load((rotation.ROOT / "Pulumi.prod.yaml").read_text())["config"]
    assert rotation.settings_of(prod) is None
    assert rotation.settings_of(_config(*STEPS[0])) is not None
