"""The runtime guardrails as manifests: one invariant per policy, bound to exactly the right
namespaces, in CEL that a standard CEL implementation compiles (what they reject is proven in
tests/policy/test_guardrail_parity.py)."""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from aimesh import settings
from aimesh.builders import cel, gateway, guardrails
from aimesh.namespaces import OBSERVABILITY_NAMESPACE
from tests.program.test_stacks import stack_settings

DEV = stack_settings("dev")


def _manifests(config: settings.Settings) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (m["kind"], m["metadata"]["name"]): m
        for m in guardrails.manifests(config, gateway.reference(config))
    }


def _expressions(policy: dict[str, Any]) -> list[str]:
    spec = policy["spec"]
    found = [v["expression"] for v in spec.get("variables", [])]
    found += [c["expression"] for c in spec.get("matchConditions", [])]
    for validation in spec["validations"]:
        found += [validation["expression"], validation["messageExpression"]]
    return found


def test_every_policy_has_one_binding_that_denies() -> None:
    manifests = _manifests(DEV)
    policies = {n for k, n in manifests if k == "ValidatingAdmissionPolicy"}
    bindings = {n for k, n in manifests if k == "ValidatingAdmissionPolicyBinding"}
    assert policies == bindings
    assert len(policies) == len(guardrails.guardrails(DEV, gateway.reference(DEV)))
    for name in bindings:
        spec = manifests[("ValidatingAdmissionPolicyBinding", name)]["spec"]
        assert spec["policyName"] == name
        assert spec["validationActions"] == ["Deny"]


def test_every_policy_fails_closed_with_one_invariant_and_a_message() -> None:
    for (kind, name), manifest in _manifests(DEV).items():
        if kind != "ValidatingAdmissionPolicy":
            continue
        spec = manifest["spec"]
        assert spec["failurePolicy"] == "Fail"
        (validation,) = spec["validations"]
        assert validation["reason"] == "Forbidden"
        assert validation["messageExpression"].startswith(cel.string(f"{name}: "))


def test_the_cel_is_standard_cel() -> None:
    # cel-python implements standard CEL and nothing of Kubernetes' extension libraries: what it
    # compiles uses none of them.
    env = celpy.Environment()
    for (kind, _), manifest in _manifests(DEV).items():
        if kind == "ValidatingAdmissionPolicy":
            for expression in _expressions(manifest):
                env.compile(expression)


def test_bindings_select_namespaces_by_their_immutable_name_label() -> None:
    scope = guardrails.scope(DEV)
    models = {m.ns for m in DEV.models}
    assert set(scope.models) == models
    for (kind, _), manifest in _manifests(DEV).items():
        if kind != "ValidatingAdmissionPolicyBinding":
            continue
        (expression,) = manifest["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
        assert expression["key"] == "kubernetes.io/metadata.name"
        assert expression["operator"] == "In"
        selected = set(expression["values"])
        assert models <= selected
        # Node agents live where no guardrail binds.
        assert not selected & {"kube-system", OBSERVABILITY_NAMESPACE}


def test_mesh_guardrails_bind_model_namespaces_and_pod_escape_ones_the_platform_too() -> None:
    manifests = _manifests(DEV)

    def selected(name: str) -> set[str]:
        binding = manifests[("ValidatingAdmissionPolicyBinding", name)]
        selector = binding["spec"]["matchResources"]["namespaceSelector"]
        return set(selector["matchExpressions"][0]["values"])

    models = {m.ns for m in DEV.models}
    assert selected("istio-workload-forbid-injection-opt-out") == models
    assert selected("workload-forbid-host-namespaces") == models | set(guardrails.PLATFORM_GUARDED)


def test_pod_guardrails_cover_every_pod_carrier() -> None:
    covered = {r for _, resources in guardrails.POD_CARRIERS for r in resources}
    assert covered == {
        "pods",
        "podtemplates",
        "replicationcontrollers",
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
        "inferenceservices",
    }


def test_isvc_container_keys_match_the_pack() -> None:
    from aimesh_policies.pods import ISVC_CONTAINER_KEYS

    assert set(guardrails.ISVC_CONTAINER_KEYS) == set(ISVC_CONTAINER_KEYS)


def test_proxy_override_lists_match_the_pack() -> None:
    from aimesh_policies import guardrails as pack

    assert guardrails.PROXY_OVERRIDE_ANNOTATIONS == pack.PROXY_OVERRIDE_ANNOTATIONS
    assert guardrails.PROXY_OVERRIDE_LABELS == pack.PROXY_OVERRIDE_LABELS
    assert set(guardrails.PROXY_CONTAINERS) == pack.PROXY_CONTAINERS


def test_no_models_no_model_guardrails() -> None:
    empty = settings.parse({})
    names = {g.name for g in guardrails.guardrails(empty, gateway.reference(empty))}
    assert "istio-workload-forbid-injection-opt-out" not in names
    assert "model-workload-require-own-service-account" not in names
    # The platform's own namespaces are still guarded.
    assert "workload-forbid-privileged" in names


def test_the_window_guardrail_exists_only_with_batch_windows() -> None:
    plain = settings.parse(
        {"models": [{"name": "m", "format": "sklearn", "storageUri": "gs://b/m"}]}
    )
    names = {g.name for g in guardrails.guardrails(plain, gateway.reference(plain))}
    assert "window-controller-only-switches-its-window" not in names
    dev = {g.name for g in guardrails.guardrails(DEV, gateway.reference(DEV))}
    assert "window-controller-only-switches-its-window" in dev


def test_the_window_guardrail_matches_only_the_controllers() -> None:
    policy = _manifests(DEV)[
        ("ValidatingAdmissionPolicy", "window-controller-only-switches-its-window")
    ]
    (condition,) = policy["spec"]["matchConditions"]
    assert condition["expression"].startswith("request.userInfo.username in [")
    assert "system:serviceaccount:" in condition["expression"]
    rule = policy["spec"]["matchConstraints"]["resourceRules"][0]
    assert rule["resources"] == ["authorizationpolicies"]
    assert set(rule["operations"]) == {"CREATE", "UPDATE", "DELETE"}


def test_the_namespace_guardrail_keeps_what_the_program_writes() -> None:
    labels = guardrails.guarded_labels(DEV)
    for model in DEV.models:
        assert labels[model.ns] == {
            "istio-injection": "enabled",
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "v1.33",
        }
    assert labels["istio-system"]["istio-injection"] == "disabled"
    assert labels["istio-ingress"]["istio-injection"] == "enabled"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("it's", "'it\\'s'"),
        ({"a": [1, True]}, "{'a': dyn([dyn(1), dyn(true)])}"),
        ("back\\slash", "'back\\\\slash'"),
    ],
)
def test_cel_literals(value: Any, expected: str) -> None:
    assert cel.literal(value) == expected


def test_namespaces_of_brought_components_are_the_platform_teams_to_guard() -> None:
    # An Istio the platform team runs may inject istio-init (NET_ADMIN) into its gateway pods.
    config = settings.parse({"bringYourOwn": ["istio", "certManager"]})
    platform = set(guardrails.scope(config).platform)
    assert platform == {"kserve"}
    assert set(guardrails.guarded_labels(config)) == {"kserve"}
