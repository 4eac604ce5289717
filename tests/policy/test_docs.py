"""docs/policies.md is generated from the pack and must be up to date (`make docs`)."""

from __future__ import annotations

from pathlib import Path

from aimesh_policies import all_policies

from tools import policy_docs

DOC = Path(__file__).resolve().parents[2] / "docs" / "policies.md"


def test_policies_md_is_up_to_date() -> None:
    assert DOC.read_text() == policy_docs.render(), "run `make docs` to regenerate"


def test_every_policy_is_documented_with_level_fix_and_exemption() -> None:
    text = policy_docs.render()
    for policy in all_policies():
        section = text.split(f"### `{policy.name}`", 1)[1].split("\n### ", 1)[0]
        assert f"**{policy.level.value}**" in section, policy.name
        assert policy.remediation in section, policy.name
        assert "**Exempt.**" in section, policy.name
