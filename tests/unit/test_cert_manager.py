"""Pure cert-manager builders: chart values and the issuer chain per issuerType."""

from __future__ import annotations

from typing import Any

import pytest

from aimesh import settings
from aimesh.builders import cert_manager, istio
from tools import schemas

ACME = {"issuerType": "acme", "acmeEmail": "ops@example.com"}
EXISTING = {
    "issuerType": "existing",
    "existingIssuerName": "corp-ca",
    "existingIssuerKind": "Issuer",
}


def _settings(**raw: Any) -> settings.Settings:
    return settings.parse(raw)


def _by_name(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests}


def test_chart_installs_and_keeps_crds_and_runs_the_startup_check() -> None:
    values = cert_manager.chart_values(_settings())
    assert values["crds"] == {"enabled": True, "keep": True}
    assert values["startupapicheck"]["enabled"] is True
    # Leases live with cert-manager, not in kube-system.
    assert values["global"]["leaderElection"]["namespace"] == "cert-manager"


@pytest.mark.parametrize(("environment", "replicas"), [("dev", 1), ("production", 2)])
def test_replicas_and_disruption_budgets(environment: str, replicas: int) -> None:
    values = cert_manager.chart_values(_settings(environment=environment))
    for part in (values, values["webhook"], values["cainjector"]):
        assert part["replicaCount"] == replicas
        assert part["podDisruptionBudget"] == {"enabled": replicas > 1}


def test_dev_chain_is_self_signed_root_then_ca_issuer() -> None:
    chain = cert_manager.issuer_chain(_settings())
    assert [(m["kind"], m["metadata"]["name"]) for m in chain] == [
        ("ClusterIssuer", "aimesh-selfsigned"),
        ("Certificate", "aimesh-root-ca"),
        ("ClusterIssuer", "aimesh-ca"),
    ]
    objects = _by_name(chain)
    assert objects["aimesh-selfsigned"]["spec"] == {"selfSigned": {}}
    root = objects["aimesh-root-ca"]
    assert root["metadata"]["namespace"] == "cert-manager"
    assert root["spec"]["isCA"] is True
    assert root["spec"]["issuerRef"] == {
        "name": "aimesh-selfsigned",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    # The CA issuer signs with exactly the root's secret.
    assert objects["aimesh-ca"]["spec"] == {"ca": {"secretName": root["spec"]["secretName"]}}


def test_root_key_follows_config_and_rotates() -> None:
    root = _by_name(cert_manager.issuer_chain(_settings(certKeyAlgorithm="RSA", certKeySize=4096)))[
        "aimesh-root-ca"
    ]
    assert root["spec"]["privateKey"] == {
        "algorithm": "RSA",
        "size": 4096,
        "rotationPolicy": "Always",
    }


def test_issuers_are_awaited_until_ready() -> None:
    for manifest in cert_manager.issuer_chain(_settings()) + cert_manager.issuer_chain(
        _settings(**ACME)
    ):
        assert manifest["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Ready"


def test_acme_issuer() -> None:
    (issuer,) = cert_manager.issuer_chain(_settings(**ACME))
    acme = issuer["spec"]["acme"]
    assert issuer["kind"] == "ClusterIssuer"
    assert acme["email"] == "ops@example.com"
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    (solver,) = acme["solvers"]
    ingress = solver["http01"]["ingress"]
    # The class travels as the `kubernetes.io/ingress.class` annotation, which istiod (STRICT
    # mode) compares with meshConfig.ingressClass; `ingressClassName` would need an IngressClass
    # object nobody creates, and istiod would ignore the challenge Ingress.
    assert ingress["class"] == istio.mesh_config(_settings(**ACME))["ingressClass"]
    assert "ingressClassName" not in ingress
    # Solver pods run in the injected, PSA-baseline istio-ingress namespace: never injected.
    assert ingress["podTemplate"]["metadata"]["labels"] == {"sidecar.istio.io/inject": "false"}


def test_existing_issuer_creates_nothing() -> None:
    assert cert_manager.issuer_chain(_settings(**EXISTING)) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, {"name": "aimesh-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}),
        (ACME, {"name": "aimesh-acme", "kind": "ClusterIssuer", "group": "cert-manager.io"}),
        (EXISTING, {"name": "corp-ca", "kind": "Issuer", "group": "cert-manager.io"}),
    ],
)
def test_issuer_ref(raw: dict[str, Any], expected: dict[str, str]) -> None:
    assert cert_manager.issuer_ref(_settings(**raw)) == expected


def test_issuer_ref_is_what_the_chain_creates() -> None:
    for raw in ({}, ACME):
        config = _settings(**raw)
        ref = cert_manager.issuer_ref(config)
        created = {(m["kind"], m["metadata"]["name"]) for m in cert_manager.issuer_chain(config)}
        assert (ref["kind"], ref["name"]) in created


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("raw", [{}, ACME, {"certKeyAlgorithm": "RSA", "certKeySize": 3072}])
def test_chain_validates_against_upstream_crds(raw: dict[str, Any]) -> None:
    for manifest in cert_manager.issuer_chain(_settings(**raw)):
        assert schemas.validate(manifest) == []


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("environment", ["dev", "production"])
def test_values_exist_in_the_chart(environment: str) -> None:
    values = cert_manager.chart_values(_settings(environment=environment))
    assert schemas.validate_values("cert-manager", values) == []


@pytest.mark.usefixtures("upstream_available")
def test_schema_check_would_catch_a_typo() -> None:
    """Guard against a conformance check that cannot fail."""
    root = _by_name(cert_manager.issuer_chain(_settings()))["aimesh-root-ca"]
    broken = {**root, "spec": {**root["spec"], "isCa": True}}
    assert schemas.validate(broken) != []
    assert schemas.validate_values("cert-manager", {"crd": {"enabled": True}}) != []
