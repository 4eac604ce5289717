"""Pure Istio builders: the hardened mesh config and the gateway per cluster mode."""

from __future__ import annotations

from typing import Any

import pytest

from aimesh import settings
from aimesh.builders import istio, telemetry
from tools import schemas

EXISTING = {"clusterMode": "existing", "kubeContext": "prod"}


def _settings(**raw: Any) -> settings.Settings:
    return settings.parse(raw)


def test_mesh_config_is_hardened_by_default() -> None:
    mesh = istio.mesh_config(_settings())
    assert mesh["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
    assert mesh["accessLogFile"] == "/dev/stdout"
    assert mesh["accessLogEncoding"] == "JSON"
    assert mesh["enableAutoMtls"] is True
    assert mesh["defaultConfig"]["holdApplicationUntilProxyStarts"] is True
    assert mesh["trustDomain"] == "cluster.local"
    assert mesh["pathNormalization"] == {"normalization": "DECODE_AND_MERGE_SLASHES"}


def test_mesh_config_follows_config() -> None:
    mesh = istio.mesh_config(
        _settings(trustDomain="prod.example.com", outboundTrafficPolicy="ALLOW_ANY")
    )
    assert mesh["trustDomain"] == "prod.example.com"
    assert mesh["outboundTrafficPolicy"] == {"mode": "ALLOW_ANY"}


def test_istio_serves_only_istio_class_ingresses_on_aimesh_gateway() -> None:
    mesh = istio.mesh_config(_settings())
    assert mesh["ingressControllerMode"] == "STRICT"
    assert mesh["ingressService"] == "aimesh-ingressgateway"
    assert mesh["ingressSelector"] == istio.GATEWAY_LABELS["istio"]


def test_istiod_values_carry_the_mesh_config_and_replicas() -> None:
    values = istio.istiod_values(_settings(**EXISTING, istiodReplicas=3))
    for key, value in istio.mesh_config(_settings(**EXISTING)).items():
        if key != "defaultConfig":
            assert values["meshConfig"][key] == value
    assert (values["replicaCount"], values["autoscaleMin"], values["autoscaleMax"]) == (3, 3, 5)
    assert values["global"]["logAsJson"] is True
    # Real clusters keep istiod's upstream requests.
    assert "resources" not in values


def test_observability_fragment_is_merged_without_loosening_anything() -> None:
    mesh = istio.istiod_values(_settings(outboundTrafficPolicy="REGISTRY_ONLY"))["meshConfig"]
    fragment = telemetry.mesh_config(_settings())
    assert mesh["extensionProviders"] == fragment["extensionProviders"]
    assert mesh["defaultProviders"] == fragment["defaultProviders"]
    # defaultConfig holds both sides: the fragment's stats matcher and the platform's hold.
    assert mesh["defaultConfig"]["holdApplicationUntilProxyStarts"] is True
    assert (
        mesh["defaultConfig"]["proxyStatsMatcher"] == fragment["defaultConfig"]["proxyStatsMatcher"]
    )
    for key, value in istio.mesh_config(_settings()).items():
        if key != "defaultConfig":
            assert mesh[key] == value


def test_no_observability_no_extension_providers() -> None:
    mesh = istio.istiod_values(_settings(observability=False))["meshConfig"]
    assert "extensionProviders" not in mesh
    # Only the platform's own defaults: the hold, and the workload certificate lifetime.
    assert mesh["defaultConfig"] == {
        "holdApplicationUntilProxyStarts": True,
        "proxyMetadata": {"SECRET_TTL": "24h"},
    }


def test_istiod_is_kind_sized_on_kind() -> None:
    assert istio.istiod_values(_settings())["resources"]["requests"]["memory"] == "256Mi"


def test_injection_meets_pod_security_restricted() -> None:
    # With the CNI node agent the injector adds istio-validation (no capabilities) instead of
    # istio-init (NET_ADMIN, NET_RAW, root); the proxy gets a seccomp profile of its own; native
    # sidecars start the proxy before the storage initializer.
    values = istio.istiod_values(_settings(**EXISTING))
    assert values["cni"] == {"enabled": True}
    assert values["global"]["proxy"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert values["env"]["ENABLE_NATIVE_SIDECARS"] == "true"
    assert "privileged" not in values["global"]["proxy"]


def test_cni_node_agent_runs_in_kube_system_with_chart_defaults() -> None:
    assert istio.CNI_NAMESPACE == "kube-system"
    assert istio.cni_values(_settings()) == {}


def test_base_keeps_the_default_revision_validator() -> None:
    assert istio.base_values(_settings())["defaultRevision"] == "default"


def test_gateway_fixed_names_and_labels() -> None:
    values = istio.gateway_values(_settings())
    assert values["name"] == "aimesh-ingressgateway"
    assert values["labels"]["istio"] == "ingressgateway"
    assert values["labels"]["app"] == "aimesh-ingressgateway"


def test_gateway_on_kind_is_a_nodeport_with_fixed_ports() -> None:
    values = istio.gateway_values(_settings())
    assert values["service"]["type"] == "NodePort"
    ports = {p["name"]: p for p in values["service"]["ports"]}
    assert (ports["http2"]["port"], ports["http2"]["nodePort"]) == (80, 30080)
    assert (ports["https"]["port"], ports["https"]["nodePort"]) == (443, 30443)
    assert "nodePort" not in ports["status-port"]
    assert values["autoscaling"]["enabled"] is False


def test_gateway_on_a_real_cluster_is_a_load_balancer_keeping_client_ips() -> None:
    values = istio.gateway_values(_settings(**EXISTING))
    assert values["service"]["type"] == "LoadBalancer"
    assert values["service"]["externalTrafficPolicy"] == "Local"
    assert all("nodePort" not in p for p in values["service"]["ports"])


def test_explicit_service_type_wins() -> None:
    values = istio.gateway_values(_settings(gatewayServiceType="ClusterIP"))
    assert values["service"]["type"] == "ClusterIP"
    assert all("nodePort" not in p for p in values["service"]["ports"])


def test_gateway_replicas_autoscaling_and_pdb() -> None:
    one = istio.gateway_values(_settings(**EXISTING))
    assert "podDisruptionBudget" not in one
    three = istio.gateway_values(_settings(**EXISTING, gatewayReplicas=3))
    assert three["replicaCount"] == 3
    assert three["autoscaling"] == {"enabled": True, "minReplicas": 3, "maxReplicas": 6}
    assert three["podDisruptionBudget"] == {"minAvailable": 1}


CASES = [{}, EXISTING, {**EXISTING, "gatewayReplicas": 4}, {"gatewayServiceType": "ClusterIP"}]


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("raw", CASES)
def test_values_exist_in_the_charts(raw: dict[str, Any]) -> None:
    config = _settings(**raw)
    assert schemas.validate_values("istio-base", istio.base_values(config)) == []
    assert schemas.validate_values("istiod", istio.istiod_values(config)) == []
    assert schemas.validate_values("istio-gateway", istio.gateway_values(config)) == []


@pytest.mark.usefixtures("upstream_available")
def test_values_check_would_catch_a_typo() -> None:
    assert schemas.validate_values("istiod", {"replicaCounts": 2}) != []
    assert schemas.validate_values("istio-gateway", {"service": {"typ": "NodePort"}}) != []
