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


# Known gaps, listed rather than hidden (policy -> value paths, a path covering everything under
# it): joins on an identity that is itself unknown until apply. Each is a review finding to close;
# the test fails on any silent pass NOT listed here.
KNOWN_GAPS: dict[str, tuple[str, ...]] = {
    # A Role/ClusterRole whose own name (or whole metadata, or aggregation selector) is unknown
    # cannot be joined to the binding that names it.
    "rbac-forbid-broad-grants-to-all-identities": ("metadata", "aggregationRule"),
    # ... and the rules of a role that only reaches the binding through aggregation.
    "rbac-forbid-broad-grants-to-all-identities/aggregated-wildcard-to-anonymous-fail.yaml": (
        "rules",
    ),
    # A NetworkPolicy whose namespace is unknown cannot be placed in a model namespace; an
    # unknown policyTypes entry hides which direction the rules open.
    "networkpolicy-forbid-open-model-namespace": ("metadata", "spec.policyTypes"),
    # A Secret / ServiceAccount whose whole annotation map is unknown may or may not carry the
    # S3 switches (flagging every such Secret would drown the signal).
    "kserve-require-secure-model-storage": ("metadata",),
    # A ConfigMap whose name AND data are both unknown cannot be told apart from any other
    # ConfigMap (flagging all of them would drown the signal); one of the two known suffices.
    "istio-meshconfig-forbid-auto-mtls-off/configmap-unknown-data-fail.yaml": ("metadata",),
    "istio-meshconfig-forbid-auto-mtls-off/configmap-unknown-name-fail.yaml": ("data",),
    # Model pod labels unknown on the WORKLOAD side of the Service join.
    "service-forbid-external-model-exposure": ("spec.template.metadata.labels",),
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
