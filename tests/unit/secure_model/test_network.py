"""NetworkPolicies of one model: default deny, then only what it needs."""

from __future__ import annotations

from aimesh.builders import collector, gateway, secure_model
from aimesh.builders.secure_model import (
    network,
)
from aimesh.settings import parse
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
                # A range is narrowed by exceptions; only single DNS addresses stand alone.
                if "ipBlock" in peer and not peer["ipBlock"]["cidr"].endswith("/32"):
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


def test_dns_reaches_kube_dns_and_node_local_dns_by_default(
    alpha: secure_model.ModelObjects,
) -> None:
    # NodeLocal DNSCache answers on 169.254.20.10 from the host network: a pod selector alone
    # (the old rule: k8s-app=kube-dns) dropped every lookup on clusters that run it.
    (rule,) = named(alpha, "NetworkPolicy", "allow-dns")["spec"]["egress"]
    system = {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}
    assert rule["to"] == [
        {"namespaceSelector": system, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
        {
            "namespaceSelector": system,
            "podSelector": {"matchLabels": {"k8s-app": "node-local-dns"}},
        },
        {"ipBlock": {"cidr": "169.254.20.10/32"}},
    ]
    assert rule["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def test_dns_egress_follows_config() -> None:
    platform = parse(
        {
            "dnsNamespace": "openshift-dns",
            "dnsPodLabels": ["dns.operator.openshift.io/daemonset-dns=default"],
            "dnsEgressCidrs": ["172.30.0.10/32"],
            "models": [{"name": "m", "format": "sklearn", "storageUri": "gs://bucket/m"}],
        }
    )
    objects = secure_model.build(platform, platform.models[0], gateway.reference(platform))
    policy = named(objects, "NetworkPolicy", "allow-dns")
    assert policy["spec"]["egress"][0]["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "openshift-dns"}},
            "podSelector": {"matchLabels": {"dns.operator.openshift.io/daemonset-dns": "default"}},
        },
        {"ipBlock": {"cidr": "172.30.0.10/32"}},
    ]
