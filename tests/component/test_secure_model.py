"""SecureModel under Pulumi mocks: what it registers, in which order, with which parents, and
the accessMatrix stack output (the same rows the policies are built from)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import evaluated
from tools import offline, schemas

SECURE_MODEL = "aimesh:secureModel:SecureModel"


def model_resources(ev: offline.Evaluation, model: str) -> list[offline.Registered]:
    component = next(r for r in ev.resources if r.type == SECURE_MODEL and r.name == model)
    return [r for r in ev.resources if r.parent == component.urn]


def find(resources: list[offline.Registered], kind: str, name: str) -> offline.Registered:
    return next(
        r for r in resources if r.kind == kind and r.inputs.get("metadata", {}).get("name") == name
    )


@pytest.fixture(scope="module")
def dev() -> offline.Evaluation:
    return evaluated("dev")


def test_dev_stack_exercises_every_feature(dev: offline.Evaluation) -> None:
    models = [r.name for r in dev.resources if r.type == SECURE_MODEL]
    assert len(models) >= 2
    kinds = {r.kind for m in models for r in model_resources(dev, m)}
    assert {
        "Namespace",
        "ServiceAccount",
        "InferenceService",
        "VirtualService",
        "AuthorizationPolicy",
        "RequestAuthentication",
        "EnvoyFilter",
        "ServiceEntry",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "CronJob",
    } <= kinds
    isvcs = [r for m in models for r in model_resources(dev, m) if r.kind == "InferenceService"]
    assert any("canary" in r.inputs["spec"] for r in isvcs)


def test_children_are_parented_and_named_from_the_instance(dev: offline.Evaluation) -> None:
    for model in ("fraud-detector", "churn-scorer"):
        children = model_resources(dev, model)
        assert children
        assert all(r.name.startswith(f"{model}-") for r in children)
        assert all(r.provider for r in children)  # the cluster's provider, not the default


def test_nothing_runs_before_its_guards(dev: offline.Evaluation) -> None:
    children = model_resources(dev, "fraud-detector")
    isvc = find(children, "InferenceService", "fraud-detector")
    deny_all = find(children, "AuthorizationPolicy", "deny-all")
    allow = find(children, "AuthorizationPolicy", "fraud-detector-allow")
    netpol = find(children, "NetworkPolicy", "default-deny")
    namespace = find(children, "Namespace", "fraud-detector")
    assert {deny_all.urn, allow.urn, netpol.urn, namespace.urn} <= set(isvc.dependencies)
    # The deny-all comes after the ALLOW rules: callers are never cut off in between.
    assert allow.urn in deny_all.dependencies
    assert namespace.urn in allow.dependencies


def test_custom_resources_wait_for_the_platform(dev: offline.Evaluation) -> None:
    component = next(r for r in dev.resources if r.type == SECURE_MODEL)
    children = model_resources(dev, component.name)
    isvc = next(r for r in children if r.kind == "InferenceService")
    # Whatever the component was told to wait for (KServe, MeshSecurity, Gateway), its
    # children wait for too.
    assert component.dependencies
    assert set(component.dependencies) <= set(isvc.dependencies)


def test_access_matrix_output_is_the_rows(dev: offline.Evaluation) -> None:
    matrix: list[dict[str, Any]] = dev.outputs["accessMatrix"]
    callers = {(r["model"], r["caller"]) for r in matrix}
    assert ("fraud-detector", "batch/nightly-scoring") in callers
    assert ("churn-scorer", "integration:partner-acme") in callers
    allow = find(
        model_resources(dev, "fraud-detector"), "AuthorizationPolicy", "fraud-detector-allow"
    )
    principals = {
        p for rule in allow.inputs["spec"]["rules"] for p in rule["from"][0]["source"]["principals"]
    }
    always = {
        r["principal"] for r in matrix if r["model"] == "fraud-detector" and r["when"] == "always"
    }
    assert principals == always
    assert (
        dev.outputs["modelEndpoints"]["churn-scorer"] == "https://churn-scorer.models.aimesh.local"
    )


def test_caller_of_one_model_has_no_rule_on_the_other(dev: offline.Evaluation) -> None:
    fraud = {r["principal"] for r in dev.outputs["accessMatrix"] if r["model"] == "fraud-detector"}
    for policy in (
        r for r in model_resources(dev, "churn-scorer") if r.kind == "AuthorizationPolicy"
    ):
        if policy.inputs["spec"].get("action") != "ALLOW":
            continue
        for rule in policy.inputs["spec"].get("rules", []):
            named = set(rule["from"][0]["source"].get("principals", []))
            assert not (named & fraud - {"cluster.local/ns/istio-ingress/sa/aimesh-ingressgateway"})


@pytest.mark.usefixtures("upstream_available")
def test_everything_registered_validates(dev: offline.Evaluation) -> None:
    problems = [
        p
        for model in ("fraud-detector", "churn-scorer")
        for r in model_resources(dev, model)
        if r.kind
        for p in schemas.validate(r.inputs)
    ]
    assert problems == []


def test_production_turns_masking_off() -> None:
    config, secrets = offline.stack_config("dev")
    config["aimesh:environment"] = "production"
    ev = offline.evaluate(config, secret_keys=secrets, stack="masking-check")
    names = {r.inputs["metadata"]["name"] for r in ev.resources if r.kind == "EnvoyFilter"}
    assert not any(n.endswith("-masking") for n in names)
    assert any(n.endswith("-rate-limit") for n in names)


@pytest.mark.usefixtures("upstream_available")
def test_every_stack_s_models_validate(stack_evaluation: offline.Evaluation) -> None:
    models = [r.name for r in stack_evaluation.resources if r.type == SECURE_MODEL]
    assert models, "every stack file configures at least one model"
    problems = [
        p
        for model in models
        for r in model_resources(stack_evaluation, model)
        if r.kind
        for p in schemas.validate(r.inputs)
    ]
    assert problems == []
    rows = stack_evaluation.outputs["accessMatrix"]
    assert {r["model"] for r in rows} <= set(models)


def test_window_policies_are_owned_by_their_cronjobs_after_creation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, list[str]] = {}
    original = offline._RecordingMonitor.RegisterResource

    def record(self: offline._RecordingMonitor, request: Any) -> Any:
        seen[request.name] = list(request.ignoreChanges)
        return original(self, request)

    monkeypatch.setattr(offline._RecordingMonitor, "RegisterResource", record)
    ev = offline.evaluate_stack("dev")
    windows = [
        r.name
        for r in ev.resources
        if r.kind == "AuthorizationPolicy"
        and r.inputs["metadata"].get("labels", {}).get("aimesh.io/window") == "batch"
    ]
    assert windows
    assert all(seen[name] == ["spec.rules"] for name in windows)
    # Every other policy is fully managed by Pulumi (drift is corrected on the next `up`).
    others = [
        r.name for r in ev.resources if r.kind == "AuthorizationPolicy" and r.name not in windows
    ]
    assert others
    assert all(seen[name] == [] for name in others)
