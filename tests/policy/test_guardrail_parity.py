"""Preview and admission agree: every runtime guardrail (a ValidatingAdmissionPolicy the program
installs) and the CrossGuard policy of the same name reject the same objects.

The guardrails' CEL is evaluated offline with cel-python (tools/admission.py), the pack's
policies through the same entry points the analyzer uses. Two sources of objects:

- every fixture file the pack is tested with (tests/policy/fixtures/<name>/), document by
  document, for the guardrails that need no stack knowledge;
- the dev stack's own objects (which both must admit) and an attacker's edits of them, as a
  model manager would make them with kubectl (which both must reject), for every guardrail.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aimesh_policies.framework import DEFAULT_CONTROL_PLANE_NAMESPACES, DEFAULT_GATEWAY_NAMESPACES

from aimesh.builders import gateway, guardrails, secure_model
from tests.policy.support import (
    FIXTURES,
    UNKNOWN_TOKEN,
    load_fixture,
    objects_of_documents,
    policy_named,
    run_policy,
)
from tests.program.test_stacks import stack_settings
from tools import admission, manager_attacks, schemas

SETTINGS = stack_settings("dev")
GATEWAY = gateway.reference(SETTINGS)
GUARDRAILS = {g.name: g for g in guardrails.guardrails(SETTINGS, GATEWAY)}
POLICIES = {name: guardrails.policy(g) for name, g in GUARDRAILS.items()}
# Guardrails whose CEL carries the stack's own facts (identities, window shapes, namespace
# labels): judged on the stack's objects below, not on the generic fixtures.
STACK_SPECIFIC = {
    "model-workload-require-own-service-account",
    "window-controller-only-switches-its-window",
    "namespace-keep-security-labels",
}
OUT_OF_SCOPE = {*DEFAULT_CONTROL_PLANE_NAMESPACES, *DEFAULT_GATEWAY_NAMESPACES}


def _has_unknown(value: Any) -> bool:
    if value == UNKNOWN_TOKEN:
        return True
    if isinstance(value, dict):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_unknown(v) for v in value)
    return False


def _guarded(doc: dict[str, Any]) -> bool:
    api_version = str(doc.get("apiVersion", ""))
    key = (api_version.rpartition("/")[0], str(doc.get("kind")))
    namespace = (doc.get("metadata") or {}).get("namespace", "default")
    return (
        "__pulumi__" not in doc
        and key in admission.RESOURCES
        and namespace not in OUT_OF_SCOPE
        and not _has_unknown(doc)
    )


def _pack_rejects(name: str, documents: list[dict[str, Any]], config: dict[str, Any]) -> bool:
    policy = policy_named(name)
    assert policy is not None, f"no pack policy named {name!r}"
    return bool(run_policy(policy, objects_of_documents(documents, typed=False), config))


def _denied(verdict: admission.Verdict) -> bool:
    """Denied by the invariant's own `false` (not by a CEL error on an odd object)."""
    return verdict.applies and not verdict.allowed and verdict.error == ""


def _admission(name: str, request: dict[str, Any]) -> admission.Verdict:
    return admission.evaluate(POLICIES[name], request)


def test_every_guardrail_has_a_pack_policy_of_its_name() -> None:
    assert GUARDRAILS, "the dev stack installs no guardrail"
    missing = [name for name in GUARDRAILS if policy_named(name) is None]
    assert missing == []


def test_every_guardrail_is_one_validation_with_a_message() -> None:
    for policy in POLICIES.values():
        (validation,) = policy["spec"]["validations"]
        assert validation["messageExpression"]
        assert policy["spec"]["failurePolicy"] == "Fail"


# --- the pack's own fixtures ---------------------------------------------------------------------


def _fixture_cases() -> Iterator[Any]:
    for name in sorted(set(GUARDRAILS) - STACK_SPECIFIC):
        for path in sorted((FIXTURES / name).glob("*.yaml")):
            fixture = load_fixture(path)
            for i, doc in enumerate(fixture.documents):
                if _guarded(doc):
                    yield pytest.param(name, doc, id=f"{name}/{path.stem}#{i}")


FIXTURE_CASES = list(_fixture_cases())


def test_the_fixture_parity_is_not_vacuous() -> None:
    names = {case.values[0] for case in FIXTURE_CASES}
    assert names == set(GUARDRAILS) - STACK_SPECIFIC
    assert len(FIXTURE_CASES) > 60


@pytest.mark.parametrize(("name", "doc"), FIXTURE_CASES)
def test_admission_and_preview_agree_on_the_pack_fixtures(name: str, doc: dict[str, Any]) -> None:
    try:
        undecodable = schemas.type_errors(doc)
    except schemas.UpstreamMissingError as exc:
        pytest.skip(str(exc))
    if undecodable:
        pytest.skip(f"the API server cannot decode it, so admission never sees it: {undecodable}")
    verdict = _admission(name, admission.request_for(doc))
    assert verdict.applies
    # A denial must be the invariant's own `false`, never a CEL error on an odd object.
    assert verdict.error == "", verdict.error
    assert (not verdict.allowed) == _pack_rejects(name, [doc], {}), verdict.message


# --- the stack's own objects, and a manager's edits of them --------------------------------------


def _stack_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for model in SETTINGS.models:
        objects += secure_model.build(SETTINGS, model, GATEWAY).all()
    return objects


STACK = _stack_objects()


def _first(kind: str) -> dict[str, Any]:
    return next(o for o in STACK if o["kind"] == kind)


ISVC = _first("InferenceService")
NAMESPACE = next(
    o
    for o in STACK
    if o["kind"] == "Namespace" and o["metadata"]["name"] == ISVC["metadata"]["namespace"]
)
WINDOW_SAS = [
    o["metadata"]["name"]
    for o in STACK
    if o["kind"] == "ServiceAccount"
    and o["metadata"]["namespace"] == ISVC["metadata"]["namespace"]
    and o.get("automountServiceAccountToken") is False
    and o["metadata"]["name"].endswith("-ctl")
]


ATTACKS = manager_attacks.attacks(WINDOW_SAS[0] if WINDOW_SAS else "missing")


def test_the_dev_stack_has_a_window_controller_to_impersonate() -> None:
    assert WINDOW_SAS, "the dev stack's first model has no batch window: the attack is vacuous"


def test_every_pod_guardrail_is_attacked() -> None:
    pod_guardrails = {
        name for name, g in GUARDRAILS.items() if g.resources == guardrails.POD_CARRIERS
    }
    assert pod_guardrails <= {name for name, _, _ in ATTACKS}


def test_both_admit_the_stacks_own_objects() -> None:
    admitted = [
        o for o in STACK if (o["apiVersion"].rpartition("/")[0], o["kind"]) in admission.RESOURCES
    ]
    assert {o["kind"] for o in admitted} >= {"InferenceService", "CronJob", "Namespace"}
    for obj in admitted:
        request = admission.request_for(obj)
        for name, policy in POLICIES.items():
            verdict = admission.evaluate(policy, request)
            assert verdict.allowed, f"{name} denies the program's own {obj['kind']}: {verdict}"
    for name in GUARDRAILS:
        assert not _pack_rejects(name, STACK, {"modelNamespaceLabels": {"aimesh.io/model": "*"}})


@pytest.mark.parametrize(("name", "edit"), [pytest.param(n, e, id=i) for n, i, e in ATTACKS])
def test_a_managers_edit_is_rejected_by_both(
    name: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    attacked = copy.deepcopy(ISVC)
    edit(attacked)
    verdict = _admission(name, admission.request_for(attacked, operation="UPDATE", old=ISVC))
    assert _denied(verdict), verdict
    assert verdict.message.startswith(f"{name}: InferenceService ")
    others = [o for o in STACK if o is not ISVC]
    assert _pack_rejects(name, [attacked, *others], {})


# --- namespace labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("istio-injection", "disabled"),
        ("pod-security.kubernetes.io/enforce", "privileged"),
        ("pod-security.kubernetes.io/enforce", None),
    ],
)
def test_relabelling_a_model_namespace_is_rejected_by_both(key: str, value: str | None) -> None:
    relabelled = copy.deepcopy(NAMESPACE)
    labels = relabelled["metadata"]["labels"]
    if value is None:
        labels.pop(key)
    else:
        labels[key] = value
    name = "namespace-keep-security-labels"
    verdict = _admission(name, admission.request_for(relabelled, operation="UPDATE", old=NAMESPACE))
    assert _denied(verdict), verdict
    assert _pack_rejects(name, [relabelled], {"modelNamespaceLabels": {"aimesh.io/model": "*"}})


# --- the window controller -----------------------------------------------------------------------

WINDOW = "window-controller-only-switches-its-window"


def _window_cases() -> tuple[str, dict[str, Any], dict[str, Any]]:
    policy = next(
        o
        for o in STACK
        if o["kind"] == "AuthorizationPolicy" and "aimesh.io/window" in o["metadata"]["labels"]
    )
    namespace = policy["metadata"]["namespace"]
    shapes = GUARDRAILS[WINDOW]
    assert shapes.match_conditions
    user = next(
        u
        for u in POLICIES[WINDOW]["spec"]["matchConditions"][0]["expression"].split("'")
        if u.startswith(f"system:serviceaccount:{namespace}:")
    )
    return user, policy, namespace


def _as_controller(
    user: str, new: dict[str, Any] | None, old: dict[str, Any], operation: str = "UPDATE"
) -> admission.Verdict:
    request = admission.request_for(new or old, operation=operation, username=user, old=old)
    return _admission(WINDOW, request)


def test_the_window_controller_may_open_and_close_exactly() -> None:
    from aimesh.builders.secure_model import windows

    user, closed, _ = _window_cases()
    model = next(m for m in SETTINGS.models if m.ns == closed["metadata"]["namespace"])
    row = next(
        r
        for r in secure_model.build(SETTINGS, model, GATEWAY).rows
        if r.policy == closed["metadata"]["name"]
    )
    opened = copy.deepcopy(closed)
    opened["spec"] = windows.open_spec(model, row)
    assert _as_controller(user, opened, closed).allowed
    assert _as_controller(user, closed, opened).allowed


@pytest.mark.parametrize(
    "attack",
    ["allow-everyone", "extra-principal", "deny-action", "relabel", "delete", "other-policy"],
)
def test_the_window_controller_can_do_nothing_else(attack: str) -> None:
    user, closed, _ = _window_cases()
    changed = copy.deepcopy(closed)
    operation = "UPDATE"
    if attack == "allow-everyone":
        changed["spec"]["rules"] = [{}]
    elif attack == "extra-principal":
        changed["spec"]["rules"] = [{"from": [{"source": {"principals": ["*"]}}]}]
    elif attack == "deny-action":
        changed["spec"]["action"] = "DENY"
    elif attack == "relabel":
        changed["metadata"]["labels"]["aimesh.io/window"] = "gone"
    elif attack == "delete":
        operation = "DELETE"
    else:
        changed["metadata"]["name"] = "someone-elses-allow"
    verdict = _as_controller(user, changed, closed, operation)
    assert _denied(verdict), verdict


def test_the_window_guardrail_leaves_everyone_else_to_rbac() -> None:
    # The program (or an admin) updates the policy through Pulumi: not the controller's identity.
    _, closed, _ = _window_cases()
    request = admission.request_for(
        closed, operation="UPDATE", username="kubernetes-admin", old=closed
    )
    assert not _admission(WINDOW, request).applies


def test_preview_mirrors_the_window_guardrail_on_what_the_program_registers() -> None:
    # Preview sees what the program registers: the window policy, created closed. The open shape
    # is written only by the controller at run time (ignore_changes keeps Pulumi off `rules`), so
    # the pack flags a window policy registered open, and both reject a rewrite that allows all.
    _, closed, _ = _window_cases()
    assert not _pack_rejects(WINDOW, [closed], {})
    allow_all = copy.deepcopy(closed)
    allow_all["spec"]["rules"] = [{}]
    assert _pack_rejects(WINDOW, [allow_all], {})
