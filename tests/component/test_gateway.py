"""Gateway under Pulumi mocks: registered objects, parents, and the safe creation order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tools import offline, schemas

# A minimal program: the Gateway alone, waiting for stand-ins of cert-manager and Istio.
PROGRAM = """
import pulumi
import pulumi_kubernetes as k8s

from aimesh import settings
from aimesh.components import Gateway, GatewayArgs

config = settings.load()
platform = k8s.core.v1.Namespace("platform-stand-in", metadata={"name": "istio-ingress"})
gateway = Gateway(
    "aimesh", GatewayArgs(config), opts=pulumi.ResourceOptions(depends_on=[platform])
)
pulumi.export("ready", [r.urn for r in gateway.ready])
pulumi.export("reference", {
    "qualified": gateway.reference.qualified,
    "serviceAccount": gateway.reference.service_account,
    "selector": gateway.reference.selector,
    "domain": gateway.reference.domain,
})
"""

TOKEN = "aimesh:gateway:Gateway"
IDP = "https://idp.example.com"

CONFIG: dict[str, Any] = {
    "gatewayDomain": "ai.example.com",
    "integrations": [
        {
            "name": "crm",
            "issuer": IDP,
            "jwksUri": f"{IDP}/jwks",
            "audiences": ["crm"],
            "subjects": ["svc-crm"],
        },
        {"name": "bi", "issuer": IDP, "jwksUri": f"{IDP}/jwks", "audiences": ["bi"]},
    ],
    "models": [
        {
            "name": "iris",
            "format": "sklearn",
            "storageUri": "gs://m/iris",
            "integrations": [{"name": "crm"}],
        },
        {
            "name": "fraud",
            "format": "xgboost",
            "storageUri": "gs://m/fraud",
            "integrations": [{"name": "bi"}],
        },
    ],
}


def _evaluate(tmp_path: Path, config: dict[str, Any]) -> offline.Evaluation:
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    values = offline.project_defaults()
    values.update({f"aimesh:{k}": v for k, v in config.items()})
    encoded, secrets = offline.encode_config(values)
    return offline.evaluate(encoded, secret_keys=secrets, program=program)


@pytest.fixture
def evaluation(tmp_path: Path) -> offline.Evaluation:
    return _evaluate(tmp_path, CONFIG)


def _children(evaluation: offline.Evaluation) -> dict[str, offline.Registered]:
    component = next(r for r in evaluation.resources if r.type == TOKEN)
    return {r.name: r for r in evaluation.resources if r.parent == component.urn}


def test_children(evaluation: offline.Evaluation) -> None:
    assert sorted(_children(evaluation)) == [
        "aimesh-allow-bi",
        "aimesh-allow-crm",
        "aimesh-certificate",
        "aimesh-gateway",
        "aimesh-jwt",
        "aimesh-require-jwt",
    ]


def test_every_child_waits_for_the_platform(evaluation: offline.Evaluation) -> None:
    platform = evaluation.urn_of("platform-stand-in")
    for child in _children(evaluation).values():
        assert platform in child.dependencies, child.name


def test_gateway_is_created_after_its_policies(evaluation: offline.Evaluation) -> None:
    children = _children(evaluation)
    gateway = children["aimesh-gateway"]
    for name in ("aimesh-require-jwt", "aimesh-jwt", "aimesh-allow-crm", "aimesh-allow-bi"):
        assert children[name].urn in gateway.dependencies, name
    # ...and the policies do not wait for the Gateway (that would open the window).
    assert gateway.urn not in children["aimesh-require-jwt"].dependencies


def test_ready_covers_policies_certificate_and_gateway(evaluation: offline.Evaluation) -> None:
    assert sorted(evaluation.outputs["ready"]) == sorted(
        r.urn for r in _children(evaluation).values()
    )


def test_reference_keeps_the_fixed_names(evaluation: offline.Evaluation) -> None:
    assert evaluation.outputs["reference"] == {
        "qualified": "istio-ingress/aimesh-gateway",
        "serviceAccount": "aimesh-ingressgateway",
        "selector": {"istio": "ingressgateway", "app": "aimesh-ingressgateway"},
        "domain": "ai.example.com",
    }


def test_integration_allows_name_only_granting_models(evaluation: offline.Evaluation) -> None:
    (crm,) = evaluation.find("AuthorizationPolicy", "aimesh-gateway-allow-crm")
    hosts = crm["spec"]["rules"][0]["to"][0]["operation"]["hosts"]
    assert "iris.ai.example.com" in hosts
    assert not any(h.startswith("fraud.") for h in hosts)
    (bi,) = evaluation.find("AuthorizationPolicy", "aimesh-gateway-allow-bi")
    hosts = bi["spec"]["rules"][0]["to"][0]["operation"]["hosts"]
    assert "fraud.ai.example.com" in hosts
    assert not any(h.startswith("iris.") for h in hosts)


def test_token_is_required_even_without_integrations(tmp_path: Path) -> None:
    evaluation = _evaluate(tmp_path, {})
    (deny,) = evaluation.find("AuthorizationPolicy", "aimesh-gateway-require-jwt")
    assert deny["spec"]["action"] == "DENY"
    assert not evaluation.find("RequestAuthentication")
    # No ALLOW at the gateway: only the token requirement and the root deny-all decide.
    assert [p["metadata"]["name"] for p in evaluation.find("AuthorizationPolicy")] == [
        "aimesh-gateway-require-jwt"
    ]


def test_acme_adds_only_the_challenge_exception(tmp_path: Path) -> None:
    evaluation = _evaluate(
        tmp_path, {**CONFIG, "issuerType": "acme", "acmeEmail": "ops@example.com"}
    )
    (acme,) = evaluation.find("AuthorizationPolicy", "aimesh-gateway-allow-acme")
    operation = acme["spec"]["rules"][0]["to"][0]["operation"]
    assert operation["paths"] == ["/.well-known/acme-challenge/*"]
    assert operation["ports"] == ["80"]
    (cert,) = evaluation.find("Certificate")
    assert cert["spec"]["dnsNames"] == ["fraud.ai.example.com", "iris.ai.example.com"]


@pytest.mark.usefixtures("upstream_available")
def test_registered_objects_conform_to_upstream(evaluation: offline.Evaluation) -> None:
    manifests = [m for m in evaluation.manifests() if m["kind"] != "Namespace"]
    assert len(manifests) == 6
    for manifest in manifests:
        assert schemas.validate(manifest) == [], manifest["metadata"]["name"]


def test_dev_stack_gateway() -> None:
    evaluation = offline.evaluate_stack("dev")
    assert [r.name for r in evaluation.resources if r.type == TOKEN] == ["aimesh"]
    assert evaluation.find("Gateway", "aimesh-gateway")
    assert evaluation.find("AuthorizationPolicy", "aimesh-gateway-require-jwt")
    # The dev partner is granted by churn-scorer only.
    (partner,) = evaluation.find("AuthorizationPolicy", "aimesh-gateway-allow-partner-acme")
    hosts = partner["spec"]["rules"][0]["to"][0]["operation"]["hosts"]
    assert "churn-scorer.models.aimesh.local" in hosts
    assert not any(h.startswith("fraud-detector.") for h in hosts)


@pytest.mark.usefixtures("upstream_available")
def test_dev_stack_gateway_objects_conform_to_upstream() -> None:
    evaluation = offline.evaluate_stack("dev")
    component = next(r for r in evaluation.resources if r.type == TOKEN)
    children = [r.inputs for r in evaluation.resources if r.parent == component.urn]
    assert len(children) >= 5
    for manifest in children:
        assert schemas.validate(manifest) == [], manifest["metadata"]["name"]
