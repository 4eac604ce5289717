"""NetworkPolicies of one model: default deny, then only what it needs."""

from __future__ import annotations

from aimesh.builders import collector, secure_model
from aimesh.builders.secure_model import (
    network,
)
from tests.unit.secure_model.support import by_kind, named, one_model


def test_network_policies_default_deny_and_nothing_all_open(
    alpha: secure_model.ModelObjects,
) -> None:
    policies = by_kind(alpha, "NetworkPolicy")
    default = named(alpha, "NetworkPolicy", "default-deny")
    assert default["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: ingress from anywhere"
            assert rule.get("ports")
        for rule in policy["spec"].get("egress", []):
            assert rule.get("ports"), f"{policy['metadata']['name']}: egress on every port"
            for peer in rule.get("to", []):
                if "ipBlock" in peer:
                    assert peer["ipBlock"]["except"]
    names = {p["metadata"]["name"] for p in policies}
    assert {"allow-dns", "allow-istiod", "allow-callers", "allow-external-https"} <= names


def test_callers_namespaces_and_gateway_may_reach_the_model_port(
    alpha: secure_model.ModelObjects,
) -> None:
    rule = named(alpha, "NetworkPolicy", "allow-callers")["spec"]["ingress"][0]
    namespaces = [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule["from"]
    ]
    assert namespaces == ["istio-ingress", "apps", "batch", "ml", "ops"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_sidecars_may_export_telemetry_only_when_observability_is_on(
    alpha: secure_model.ModelObjects,
) -> None:
    policy = named(alpha, "NetworkPolicy", "allow-telemetry")
    (egress,) = policy["spec"]["egress"]
    assert egress == collector.telemetry_egress_rule()  # the collector's own contract
    assert egress["ports"] == [{"protocol": "TCP", "port": 4317}]
    _, m = one_model()
    names = {p["metadata"]["name"] for p in network.network_policies(m, [], False)}
    assert "allow-telemetry" not in names


def test_pvc_model_without_callers_has_no_external_egress_or_caller_ingress() -> None:
    _, m = one_model(storageUri="pvc://claim/m")
    names = {p["metadata"]["name"] for p in network.network_policies(m, [])}
    assert "allow-external-https" not in names
    assert "allow-callers" not in names
    assert "allow-window-controller" not in names
