"""README.md stays true for a newcomer: the two commands, every config key, what CI runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimesh.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("key", sorted(f.alias or n for n, f in Settings.model_fields.items()))
def test_every_config_key_is_documented(key: str) -> None:
    assert f"`{key}`" in README or f"`aimesh:{key}`" in README, f"README misses aimesh:{key}"


def test_the_two_commands_and_ci() -> None:
    assert "make up" in README
    assert "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [
        line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))
    ]
    # The README's test command, then the real engine end to end (issue 9).
    assert commands == ["make test", "make e2e"], ".ci/run: the README's test command, then e2e"
    assert "make e2e" in README


def test_documented_files_exist() -> None:
    for line in README.splitlines():
        for part in line.split("`"):
            if part.startswith(("docs/", "policy-pack/", ".github/workflows/")) and " " not in part:
                path = ROOT / part.rstrip("/")
                # Placeholders and what `make` creates (virtualenvs) are not files of the repo.
                if "<" not in part and not part.rstrip("/").endswith("venv"):
                    assert path.exists(), f"README names {part}, which does not exist"


def test_make_targets_named_in_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("up", "down", "test", "check", "preview", "lint", "format", "docs", "bench"):
        if f"make {target}" in README:
            assert f"\n{target}:" in makefile, f"README names make {target}"
