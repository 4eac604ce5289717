"""One runner over every fixture file of every policy: the verdict is in the file name.

`tests/policy/fixtures/<policy>/<case>-pass.yaml` must yield no finding of that policy,
`<case>-fail.yaml` at least one (and every `# expect:` substring). Plain manifests are judged in
both arrival forms (CustomResource and typed resource) and must agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aimesh_policies import all_policies

from tests.policy.support import (
    FIXTURES,
    fixture_files,
    load_fixture,
    needs_descriptor_set,
    objects_of_documents,
    policy_named,
    run_policy,
)


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_verdict(path: Path, request: pytest.FixtureRequest) -> None:
    fixture = load_fixture(path)
    assert fixture.verdict in ("pass", "fail"), f"{fixture.id}: name must end -pass/-fail"
    policy = policy_named(fixture.policy)
    assert policy is not None, f"{fixture.id}: no policy named {fixture.policy!r}"
    needs_descriptor_set(request, fixture.policy)
    assert fixture.documents, f"{fixture.id}: no YAML documents"
    verdicts = {}
    for typed in (False, True):
        objs = objects_of_documents(fixture.documents, typed=typed)
        findings = run_policy(policy, objs, fixture.config)
        messages = [f.message for f in findings]
        if fixture.verdict == "pass":
            assert not messages, f"{fixture.id} (typed={typed}) should pass: {messages}"
        else:
            assert messages, f"{fixture.id} (typed={typed}) should fail, found nothing"
            for needle in fixture.expect:
                assert any(needle in m for m in messages), (
                    f"{fixture.id}: no finding mentions {needle!r}: {messages}"
                )
        verdicts[typed] = sorted(messages)
    assert verdicts[False] == verdicts[True], f"{fixture.id}: arrival forms disagree"


@pytest.mark.parametrize("policy", all_policies(), ids=lambda p: p.name)
def test_every_policy_has_pass_fail_and_missing_field_cases(policy: object) -> None:
    name = getattr(policy, "name", "")
    files = sorted((FIXTURES / name).glob("*.yaml"))
    stems = [f.stem for f in files]
    assert any(s.endswith("-pass") for s in stems), f"{name}: no -pass fixture"
    assert any(s.endswith("-fail") for s in stems), f"{name}: no -fail fixture"
    assert any("missing" in s for s in stems), f"{name}: no missing-field fixture"


def test_fixture_directories_name_real_policies() -> None:
    names = {p.name for p in all_policies()}
    stray = sorted(d.name for d in FIXTURES.iterdir() if d.is_dir() and d.name not in names)
    assert not stray, f"fixture directories without a policy: {stray}"
