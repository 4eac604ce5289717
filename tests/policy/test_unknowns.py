"""Unknown values never turn a violation into a pass.

During `pulumi preview` any input computed by another resource arrives as Pulumi's unknown
sentinel. For every failing fixture of a MANDATORY policy, each value of each document (every
leaf, list and mapping, one at a time) is replaced by the unknown sentinel: the policy must still
report something - the violation itself, or "cannot verify ... unknown until apply" - never
nothing. This walks every security-critical field the fixtures exercise, in every policy.

A stack rule may leave an unknown to the resource rule that judges the same field (the mesh
config's outbound mode, say): then that mandatory rule must report "cannot verify" for the
document, so the preview still does not pass silently.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aimesh_policies import all_policies
from aimesh_policies.framework import Level

from tests.policy.support import (
    UNKNOWN_TOKEN,
    fixture_files,
    load_fixture,
    objects_of_documents,
    policy_named,
    run_policy,
)

# Fields that decide WHAT the document is, not what it does: an unknown kind (or Helm chart name)
# cannot be judged by any rule, and the engine never sends one (type tokens, CustomResource kinds
# and chart references are literals in every program).
_IDENTITY = frozenset({("apiVersion",), ("kind",), ("__pulumi__",), ("chart",)})


def _paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if at and at[:1] in _IDENTITY:
        return
    if at:
        yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*at, i))


def _replaced(document: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    mutated = copy.deepcopy(document)
    holder: Any = mutated
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = UNKNOWN_TOKEN
    return mutated


# Known gaps, listed rather than hidden (policy or fixture -> value paths, a path covering
# everything under it), each with the reason it is kept. The test fails on any silent pass NOT
# listed here.
KNOWN_GAPS: dict[str, tuple[str, ...]] = {
    # A ConfigMap whose whole metadata (name AND namespace) and data are unknown cannot be told
    # apart from any other ConfigMap: flagging every such ConfigMap would be noise.
    "istio-meshconfig-forbid-auto-mtls-off/configmap-unknown-data-fail.yaml": ("metadata",),
    "istio-meshconfig-forbid-auto-mtls-off/configmap-unknown-name-and-data-fail.yaml": (
        "metadata",
    ),
    # A Secret whose annotations AND data are both unknown carries no sign of being an S3
    # credential: flagging every Secret computed at apply would be noise.
    "kserve-require-secure-model-storage/unknown-annotations-s3-secret-fail.yaml": ("stringData",),
    # A ServiceAccount carries no sign of being a model's storage identity (which one an
    # InferenceService uses is a stack join this resource rule cannot make): flagging every
    # ServiceAccount with computed annotations (workload identity does that) would be noise.
    "kserve-require-secure-model-storage/verifyssl-off-serviceaccount-fail.yaml": ("metadata",),
    # A ConfigMap without data whose name and labels are unknown cannot be told from any other
    # ConfigMap, and declares nothing even if it is meant as intent (an intent object without
    # intent.json widens nothing: its namespace is judged on invariants).
    "aimesh-intent-forbid-forged-or-broad/missing-data-fail.yaml": ("metadata",),
}


def _known_gap(fixture_id: str, policy: str, field: str) -> bool:
    gaps = (*KNOWN_GAPS.get(policy, ()), *KNOWN_GAPS.get(fixture_id, ()))
    return any(field == gap or field.startswith(f"{gap}.") for gap in gaps)


def _mandatory_fail_fixtures() -> list[Path]:
    found = []
    for path in fixture_files():
        policy = policy_named(path.parent.name)
        if path.stem.endswith("-fail") and policy and policy.level is Level.MANDATORY:
            found.append(path)
    return found


def _another_rule_cannot_verify(objs: list[Any], config: dict[str, Any]) -> bool:
    return any(
        "cannot verify" in found.message
        for other in all_policies()
        if other.level is Level.MANDATORY
        for found in run_policy(other, objs, config)
    )


@pytest.mark.parametrize(
    "path", _mandatory_fail_fixtures(), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_no_single_unknown_value_hides_a_violation(path: Path) -> None:
    fixture = load_fixture(path)
    policy = policy_named(fixture.policy)
    assert policy is not None
    silent = []
    for index, document in enumerate(fixture.documents):
        for field in _paths(document):
            documents = list(fixture.documents)
            documents[index] = _replaced(document, field)
            for typed in (False, True):
                objs = objects_of_documents(documents, typed=typed)
                if run_policy(policy, objs, fixture.config):
                    continue
                where = ".".join(map(str, field))
                if _known_gap(fixture.id, fixture.policy, where):
                    continue
                if not _another_rule_cannot_verify(objs, fixture.config):
                    silent.append((index, where, typed))
    assert not silent, f"{fixture.id}: these unknown values make the violation pass: {silent}"
