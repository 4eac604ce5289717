"""Guardrails under Pulumi mocks: typed admission resources, each binding after its policy, and
registered before anything they must admit (charts, models)."""

from __future__ import annotations

import pytest

from tests.conftest import evaluated
from tools import offline

TOKEN = "aimesh:guardrails:Guardrails"
POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"


@pytest.fixture(scope="module")
def dev() -> offline.Evaluation:
    return evaluated("dev")


def test_policies_and_bindings_are_typed_children(dev: offline.Evaluation) -> None:
    (component,) = dev.by_type(TOKEN)
    policies = dev.by_type(POLICY)
    bindings = dev.by_type(BINDING)
    assert policies
    assert len(policies) == len(bindings)
    assert all(r.parent == component.urn for r in [*policies, *bindings])


def test_each_binding_waits_for_its_policy(dev: offline.Evaluation) -> None:
    policies = {r.inputs["metadata"]["name"]: r.urn for r in dev.by_type(POLICY)}
    for binding in dev.by_type(BINDING):
        assert policies[binding.inputs["spec"]["policyName"]] in binding.dependencies


def test_guardrails_come_before_the_charts_and_models(dev: offline.Evaluation) -> None:
    # The first chart (cert-manager) waits for every binding, and every other component waits
    # for cert-manager: nothing the platform or a model runs is admitted unguarded.
    bindings = {r.urn for r in dev.by_type(BINDING)}
    (cert_manager,) = [r for r in dev.resources if r.name == "aimesh-cert-manager"]
    assert bindings <= set(cert_manager.dependencies)
    for isvc in (r for r in dev.resources if r.kind == "InferenceService"):
        assert bindings <= set(isvc.dependencies)
