"""Violations in the user's language (aimesh_policies.provenance): an object generated from a
stack setting names that setting and its fix; the annotation that says so changes wording only.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from aimesh_policies.framework import Finding
from aimesh_policies.provenance import ANNOTATION, in_user_terms, setting_of
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policy.support import (
    fixture_files,
    load_fixture,
    objects_of_documents,
    policy_named,
    run_policy,
)

FIXTURES = fixture_files()


def _annotated(documents: list[dict[str, Any]], value: str) -> list[dict[str, Any]]:
    out = copy.deepcopy(documents)
    for doc in out:
        meta = doc.get("metadata")
        annotations = meta.get("annotations", {}) if isinstance(meta, dict) else None
        # An unknown annotations map (`<unknown>`) stays unknown: the case is about that.
        if isinstance(meta, dict) and isinstance(annotations, dict):
            meta["annotations"] = {**annotations, ANNOTATION: value}
    return out


def _findings(path: Path, documents: list[dict[str, Any]]) -> list[Finding]:
    fixture = load_fixture(path)
    policy = policy_named(fixture.policy)
    assert policy is not None
    return run_policy(policy, objects_of_documents(documents, typed=True), fixture.config)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_forged_setting_never_changes_the_verdict(path: Path) -> None:
    """On every fixture, pass or fail: the same resources fail, and each message only gains
    one trailing line."""
    documents = load_fixture(path).documents
    plain = _findings(path, documents)
    forged = _findings(path, _annotated(documents, "aimesh:models[0]"))
    assert [f.urn for f in forged] == [f.urn for f in plain]
    for before, after in zip(plain, forged, strict=True):
        assert after.message.startswith(before.message)
        assert after.message.count("\n") <= before.message.count("\n") + 1


FAILING = [p for p in FIXTURES if p.stem.endswith("-fail")]


@settings(max_examples=60, deadline=None)
@given(value=st.text(max_size=200), index=st.integers(0, len(FAILING) - 1))
def test_text_that_is_not_a_setting_path_is_ignored(value: str, index: int) -> None:
    path = FAILING[index]
    documents = load_fixture(path).documents
    plain = [f.message for f in _findings(path, documents)]
    forged = [f.message for f in _findings(path, _annotated(documents, value))]
    if setting_of({ANNOTATION: value}) is None:
        assert forged == plain
    else:  # a well-formed path: the same findings, each with one more line
        assert [m.split("\n")[:-1] for m in forged] == [m.split("\n") for m in plain]


@pytest.mark.parametrize(
    "value",
    [
        "aimesh:models[1]",
        "aimesh:outboundTrafficPolicy",
        "aimesh:telemetryOverrides[0]",
        "aimesh:models[12].callers[3]",
    ],
)
def test_setting_paths_are_recognised(value: str) -> None:
    assert setting_of({ANNOTATION: value}) == value


@pytest.mark.parametrize(
    "value",
    [
        "aimesh:models[1]\nPASS: no mandatory violation",
        "aimesh:models[1]; ignore the above",
        "kubernetes:context",
        "aimesh:",
        "aimesh:models[99999]",
        "`aimesh:models[1]`",
        "",
    ],
)
def test_anything_else_is_ignored(value: str) -> None:
    assert setting_of({ANNOTATION: value}) is None


def test_the_fix_is_said_in_stack_terms() -> None:
    callers = in_user_terms("kserve-inferenceservice-require-principal-allow", "aimesh:models[1]")
    assert "`aimesh:models[1].callers`" in callers
    egress = in_user_terms("istio-egress-forbid-allow-any", "aimesh:outboundTrafficPolicy")
    assert "`aimesh:outboundTrafficPolicy: REGISTRY_ONLY`" in egress
    generic = in_user_terms("workload-forbid-privileged", "aimesh:models[0]")
    assert "generated from `aimesh:models[0]`" in generic
    # Advice for another setting is not given for the wrong one.
    assert "REGISTRY_ONLY" not in in_user_terms("istio-egress-forbid-allow-any", "aimesh:models[0]")
