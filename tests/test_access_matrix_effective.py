"""`python -m tools.access_matrix --effective`: declared next to effective access."""

from __future__ import annotations

import pytest

from tools import access_matrix


def test_dev_stack_effective_access_is_exactly_the_declared_one() -> None:
    report = access_matrix.render_effective("dev")
    assert "### `fraud-detector/fraud-detector`" in report
    assert (
        "| caller payments/checkout | `POST /v1/models/fraud-detector:predict :8080` | allowed |"
        in report
    )
    # The batch caller's window is closed in the manifest: declared, not effective now.
    assert "| caller batch/nightly-scoring |" in report
    assert "window only | denied |" in report
    # Nothing is wider than declared (a wider verdict is printed in bold).
    assert "**allowed**" not in report


def test_cli_appends_the_effective_section() -> None:
    assert access_matrix.main(["--stack", "dev", "--effective"]) == 0


def test_effective_goes_with_one_stack_in_markdown() -> None:
    for argv in (["--all-stacks", "--effective"], ["--format", "mermaid", "--effective"]):
        with pytest.raises(SystemExit) as refused:
            access_matrix.main(argv)
        assert refused.value.code == 2
