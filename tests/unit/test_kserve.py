"""Pure KServe builders: Standard mode, no ingress of KServe's own, runtimes, replicas."""

from __future__ import annotations

from typing import Any

import pytest

from aimesh import settings
from aimesh.builders import kserve
from tools import schemas


def _settings(**raw: Any) -> settings.Settings:
    return settings.parse(raw)


def test_standard_deployment_mode_not_knative() -> None:
    controller = kserve.resources_values(_settings())["kserve"]["controller"]
    assert controller["deploymentMode"] == "Standard"


def test_kserve_creates_no_ingress_of_its_own() -> None:
    gateway = kserve.resources_values(_settings())["kserve"]["controller"]["gateway"]
    assert gateway["disableIngressCreation"] is True
    assert gateway["disableIstioVirtualHost"] is True
    assert gateway["ingressGateway"]["createGateway"] is False
    assert gateway["ingressGateway"]["enableGatewayApi"] is False
    assert gateway["ingressGateway"]["gateway"] == "istio-ingress/aimesh-gateway"


def test_reported_urls_match_aimesh_endpoints() -> None:
    gateway = kserve.resources_values(_settings(gatewayDomain="models.example.com"))["kserve"][
        "controller"
    ]["gateway"]
    assert gateway["domain"] == "models.example.com"
    assert gateway["domainTemplate"] == "{{ .Name }}.{{ .IngressDomain }}"
    assert gateway["urlScheme"] == "https"


def test_model_pods_get_no_api_token() -> None:
    values = kserve.resources_values(_settings())
    assert values["kserve"]["security"]["autoMountServiceAccountToken"] is False


def test_kserve_does_not_point_prometheus_at_knatives_queue_proxy() -> None:
    # With it on, KServe v0.20's pod mutator writes prometheus.io/port: "9091" (queue-proxy),
    # where nothing listens in Standard mode; model pods name their server's port themselves.
    values = kserve.resources_values(_settings())["kserve"]
    # A string: the chart templates it into a ConfigMap as text ('false' upstream).
    assert values["metricsaggregator"] == {"enablePrometheusScraping": "false"}


def test_runtimes_on_llm_configs_off() -> None:
    values = kserve.runtime_values(_settings())["kserve"]
    assert values["servingruntime"]["enabled"] is True
    assert values["llmisvcConfigs"]["enabled"] is False


def test_one_controller_replica_needs_no_patch() -> None:
    assert kserve.controller_replicas_patch(_settings()) is None


def test_controller_replicas_patch() -> None:
    patch = kserve.controller_replicas_patch(_settings(kserveControllerReplicas=3))
    assert patch == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "kserve-controller-manager", "namespace": "kserve"},
        "spec": {"replicas": 3},
    }


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("raw", [{}, {"gatewayDomain": "models.example.com"}])
def test_values_exist_in_the_charts(raw: dict[str, Any]) -> None:
    config = _settings(**raw)
    assert schemas.validate_values("kserve-resources", kserve.resources_values(config)) == []
    assert schemas.validate_values("kserve-runtime-configs", kserve.runtime_values(config)) == []


@pytest.mark.usefixtures("upstream_available")
def test_upstream_default_is_knative_so_the_override_matters() -> None:
    defaults = schemas.chart_defaults("kserve-resources")
    assert defaults["kserve"]["controller"]["deploymentMode"] == "Knative"
    assert defaults["kserve"]["controller"]["gateway"]["disableIngressCreation"] is False
