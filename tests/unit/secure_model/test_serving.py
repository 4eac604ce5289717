"""Serving a model: namespace, identity, the InferenceService and its versions (canary,
promotion, rollback) behind one weighted VirtualService."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aimesh.builders import secure_model
from aimesh.builders.secure_model import (
    serving,
)
from aimesh.settings import ModelSettings
from tests.unit.secure_model.support import by_kind, named, one_model
from tests.unit.test_access import GATEWAY, stack


def test_namespace_is_injected(alpha: secure_model.ModelObjects) -> None:
    labels = alpha.namespace["metadata"]["labels"]
    assert alpha.namespace["metadata"]["name"] == "alpha"
    assert labels["istio-injection"] == "enabled"


def test_namespace_enforces_pod_security_restricted(alpha: secure_model.ModelObjects) -> None:
    # Istio's CNI node agent does the redirection, so no pod here needs istio-init's
    # NET_ADMIN/NET_RAW: restricted is enforced, pinned to the oldest supported minor.
    labels = alpha.namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.33"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_dedicated_service_account_without_api_token(alpha: secure_model.ModelObjects) -> None:
    sa = named(alpha, "ServiceAccount", "alpha-predictor")
    assert sa["automountServiceAccountToken"] is False
    predictor = named(alpha, "InferenceService", "alpha")["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "alpha-predictor"
    assert predictor["automountServiceAccountToken"] is False


def test_inference_service_standard_mode_and_hardened() -> None:
    _, m = one_model(protocol="v2", runtime="kserve-sklearnserver", minReplicas=2, maxReplicas=4)
    isvc = serving.inference_service(m)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 4)
    assert predictor["labels"] == {"aimesh.io/model": "m", "aimesh.io/version": "stable"}
    assert predictor["securityContext"]["runAsNonRoot"] is True
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "sklearn"}
    assert model["runtime"] == "kserve-sklearnserver"
    assert model["protocolVersion"] == "v2"
    assert model["storageUri"] == "gs://bucket/m"
    ctx = model["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["readOnlyRootFilesystem"] is True
    assert "canary" not in isvc["spec"]


def test_gpus_node_selector_and_tolerations() -> None:
    _, m = one_model(
        resources={"cpu": "4", "memory": "16Gi", "gpu": 2},
        nodeSelector={"accelerator": "nvidia-l4"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    predictor = serving.inference_service(m)["spec"]["predictor"]
    res = predictor["model"]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "2"
    assert res["requests"]["nvidia.com/gpu"] == "2"
    assert predictor["nodeSelector"] == {"accelerator": "nvidia-l4"}
    assert predictor["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    _, cpu_only = one_model()
    assert "nvidia.com/gpu" not in json.dumps(serving.inference_service(cpu_only))


def routes(m: ModelSettings) -> list[tuple[str, int]]:
    vs = serving.virtual_service(stack(), m, GATEWAY)
    return [(r["destination"]["host"], r["weight"]) for r in vs["spec"]["http"][0]["route"]]


def test_canary_gets_its_traffic_percent() -> None:
    _, m = one_model(canary={"storageUri": "gs://bucket/m-v2", "trafficPercent": 20})
    assert routes(m) == [
        ("m-predictor.m.svc.cluster.local", 80),
        ("m-canary-predictor.m.svc.cluster.local", 20),
    ]
    canary = serving.inference_service(m)["spec"]["canary"][0]
    assert canary["trafficPercent"] == 20
    assert canary["predictor"]["name"] == "canary"
    assert canary["predictor"]["model"]["storageUri"] == "gs://bucket/m-v2"
    assert canary["predictor"]["labels"]["aimesh.io/version"] == "canary"
    # KServe derives a canary's replicas from its traffic: no autoscaling fields on it.
    assert "minReplicas" not in canary["predictor"]


def test_rollback_is_traffic_zero_and_keeps_the_canary_deployed() -> None:
    _, m = one_model(canary={"storageUri": "gs://bucket/m-v2", "trafficPercent": 0})
    assert routes(m)[0][1] == 100
    assert routes(m)[1][1] == 0
    assert serving.inference_service(m)["spec"]["canary"][0]["trafficPercent"] == 0


def test_promotion_is_a_config_change() -> None:
    # Promote: the canary's storage URI becomes the model's, the canary entry goes away.
    _, promoted = one_model(storageUri="gs://bucket/m-v2")
    assert routes(promoted) == [("m-predictor.m.svc.cluster.local", 100)]
    isvc = serving.inference_service(promoted)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "gs://bucket/m-v2"


def test_virtual_service_serves_gateway_and_mesh() -> None:
    _, m = one_model()
    vs = serving.virtual_service(stack(), m, GATEWAY)
    assert vs["spec"]["gateways"] == ["istio-ingress/aimesh-gateway", "mesh"]
    assert vs["spec"]["hosts"] == ["m.models.example.com", "m-predictor.m.svc.cluster.local"]


def test_every_version_is_under_the_same_policies() -> None:
    settings, m = one_model(
        canary={"storageUri": "gs://bucket/m-v2", "trafficPercent": 50},
        callers=[{"namespace": "a", "serviceAccount": "b"}],
    )
    objects = secure_model.build(settings, m, GATEWAY)
    isvc = named(objects, "InferenceService", "m")
    stable_labels = isvc["spec"]["predictor"]["labels"]
    canary_labels = isvc["spec"]["canary"][0]["predictor"]["labels"]
    for kind in ("AuthorizationPolicy", "RequestAuthentication", "EnvoyFilter"):
        for obj in by_kind(objects, kind):
            selector = obj["spec"].get("selector", {}).get("matchLabels") or obj["spec"].get(
                "workloadSelector", {}
            ).get("labels")
            if selector is None:  # namespace-wide (deny-all)
                continue
            assert selector.items() <= stable_labels.items()
            assert selector.items() <= canary_labels.items()


@pytest.mark.parametrize(
    ("fields", "port"),
    [
        ({"format": "sklearn"}, "8080"),
        ({"format": "xgboost"}, "8080"),
        ({"format": "onnx"}, "8002"),
        ({"format": "triton"}, "8002"),
        ({"format": "pytorch"}, "8082"),
        ({"format": "tensorflow", "runtime": "kserve-tritonserver"}, "8002"),
        ({"format": "sklearn", "metricsPort": 9100}, "9100"),
    ],
)
def test_model_pods_name_their_servers_metrics_port(fields: dict[str, Any], port: str) -> None:
    # Istio's injector moves prometheus.io/* to the sidecar agent, which scrapes the server on
    # localhost and serves the merge on :15020; KServe's own annotation (9091) is switched off.
    _, model = one_model(**fields)
    isvc = serving.inference_service(model)
    annotations = isvc["spec"]["predictor"]["annotations"]
    assert annotations == {
        "serving.kserve.io/enable-prometheus-scraping": "false",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": port,
        "prometheus.io/path": "/metrics",
    }


def test_the_canary_is_scraped_like_the_stable_version() -> None:
    _, model = one_model(canary={"storageUri": "gs://bucket/m2", "trafficPercent": 10})
    isvc = serving.inference_service(model)
    canary = isvc["spec"]["canary"][0]["predictor"]
    assert canary["annotations"] == isvc["spec"]["predictor"]["annotations"]
