"""Serving a model: its namespace, its identity, the InferenceService (stable and canary
predictors, hardened pods) and the weighted VirtualService that routes both versions.

KServe splits traffic for raw mode only on Gateway API HTTPRoutes, so aimesh routes both
versions itself with one Istio VirtualService, on the ingress gateway AND inside the mesh:
`trafficPercent: 0` is an instant rollback."""

from __future__ import annotations

from typing import Any

from aimesh.builders import access
from aimesh.builders.common import VERSION_LABEL, GatewayRef, ModelPlatform, metadata
from aimesh.builders.secure_model.meta import (
    KSERVE_API,
    NETWORKING_API,
    model_labels,
    workload_selector,
)
from aimesh.settings import ModelSettings

CANARY_NAME = "canary"
# Where each KServe v0.20 runtime serves its Prometheus metrics (the `prometheus.kserve.io/port`
# of its ClusterServingRuntime in kserve-runtime-configs), for the formats it is chosen for:
# Triton (onnx, tensorrt, triton) on 8002, TorchServe (pytorch) on 8082, every other runtime on
# its inference port 8080.
METRICS_PORTS = {"onnx": 8002, "tensorrt": 8002, "triton": 8002, "pytorch": 8082}
RUNTIME_METRICS_PORTS = {"kserve-tritonserver": 8002, "kserve-torchserve": 8082}
DEFAULT_METRICS_PORT = 8080
# Pod Security Admission in model namespaces: `restricted` enforced, pinned to the oldest
# Kubernetes minor aimesh supports (versions.MIN_KUBERNETES), so a cluster upgrade never changes
# what is enforced. Istio's CNI node agent sets up traffic redirection, so no pod here needs
# istio-init's NET_ADMIN/NET_RAW (docs/security.md, "Pod Security per namespace").
POD_SECURITY_LEVEL = "restricted"
POD_SECURITY_VERSION = "v1.33"


def predictor_service_account(model: ModelSettings) -> str:
    return f"{model.name}-predictor"


def service_host(model: ModelSettings, version: str = "stable") -> str:
    """The predictor Service KServe (raw mode) creates: `<isvc>-predictor`, and
    `<isvc>-<canaryName>-predictor` for a canary (port 80 -> the runtime's 8080)."""
    name = model.name if version == "stable" else f"{model.name}-{CANARY_NAME}"
    return f"{name}-predictor.{model.ns}.svc.cluster.local"


def namespace(model: ModelSettings) -> dict[str, Any]:
    """The model's namespace: sidecar-injected, Pod Security `restricted` enforced (and warned
    and audited). Its security labels are kept by the `namespace-keep-security-labels`
    guardrail; managers have no Namespace rights anyway."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata(
            model.ns,
            labels={
                **model_labels(model),
                "istio-injection": "enabled",
                "pod-security.kubernetes.io/enforce": POD_SECURITY_LEVEL,
                "pod-security.kubernetes.io/enforce-version": POD_SECURITY_VERSION,
                "pod-security.kubernetes.io/warn": POD_SECURITY_LEVEL,
                "pod-security.kubernetes.io/audit": POD_SECURITY_LEVEL,
            },
        ),
    }


def service_account(model: ModelSettings) -> dict[str, Any]:
    """The model's own identity (`<td>/ns/<ns>/sa/<model>-predictor`), without an API token."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(predictor_service_account(model), model.ns, model_labels(model)),
        "automountServiceAccountToken": False,
    }


def metrics_port(model: ModelSettings) -> int:
    """The model server's own metrics port: `metricsPort`, else its runtime's."""
    if model.metrics_port is not None:
        return model.metrics_port
    if model.runtime:
        return RUNTIME_METRICS_PORTS.get(model.runtime, DEFAULT_METRICS_PORT)
    return METRICS_PORTS.get(model.format.lower(), DEFAULT_METRICS_PORT)


def metrics_annotations(model: ModelSettings) -> dict[str, str]:
    """Pod annotations that get the model server's metrics scraped: Istio's injector reads
    `prometheus.io/*`, moves them to the sidecar agent (which scrapes the server on localhost)
    and serves the merged result on :15020, the port Prometheus scrapes outside the mesh. KServe's
    own annotation is switched off for the pod: it would point at Knative's queue-proxy (9091)."""
    return {
        "serving.kserve.io/enable-prometheus-scraping": "false",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(metrics_port(model)),
        "prometheus.io/path": "/metrics",
    }


def _resources(model: ModelSettings) -> dict[str, Any]:
    res = model.resources
    requests: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    limits: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    if res.gpu:
        # Extended resources cannot be overcommitted: request == limit.
        requests[res.gpu_resource] = str(res.gpu)
        limits[res.gpu_resource] = str(res.gpu)
    return {"requests": requests, "limits": limits}


def _container_security(model: ModelSettings) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": model.read_only_root_filesystem,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _model_spec(
    model: ModelSettings, storage_uri: str, runtime_version: str | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "modelFormat": {"name": model.format},
        "protocolVersion": model.protocol,
        "storageUri": storage_uri,
        "resources": _resources(model),
        "securityContext": _container_security(model),
        # A writable scratch space, so the root filesystem can stay read-only.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    if model.runtime:
        spec["runtime"] = model.runtime
    if runtime_version:
        spec["runtimeVersion"] = runtime_version
    return spec


def _predictor(
    model: ModelSettings, version: str, storage_uri: str, runtime_version: str | None
) -> dict[str, Any]:
    predictor: dict[str, Any] = {
        "serviceAccountName": predictor_service_account(model),
        # The model never calls the Kubernetes API (the sidecar has its own projected token).
        "automountServiceAccountToken": False,
        "labels": {**workload_selector(model), VERSION_LABEL: version},
        "annotations": metrics_annotations(model),
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "model": _model_spec(model, storage_uri, runtime_version),
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    if model.node_selector:
        predictor["nodeSelector"] = dict(model.node_selector)
    if model.tolerations:
        predictor["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in model.tolerations
        ]
    return predictor


def inference_service(model: ModelSettings) -> dict[str, Any]:
    """KServe InferenceService in Standard mode, with the canary as a second predictor."""
    predictor = _predictor(model, "stable", model.storage_uri, None)
    predictor["minReplicas"] = model.min_replicas
    predictor["maxReplicas"] = model.max_replicas
    spec: dict[str, Any] = {"predictor": predictor}
    if model.canary is not None:
        canary = _predictor(model, "canary", model.canary.storage_uri, model.canary.runtime_version)
        # KServe rejects autoscaling fields on a canary: its replicas follow trafficPercent.
        canary["name"] = CANARY_NAME
        # The canary's schema requires the container name; KServe names the model container
        # `kserve-container` (the stable predictor gets it implicitly).
        canary["model"]["name"] = "kserve-container"
        spec["canary"] = [{"trafficPercent": model.canary.traffic_percent, "predictor": canary}]
    return {
        "apiVersion": KSERVE_API,
        "kind": "InferenceService",
        "metadata": metadata(
            model.name,
            model.ns,
            model_labels(model),
            {
                "serving.kserve.io/deploymentMode": "Standard",
                "serving.kserve.io/autoscalerClass": "hpa",
            },
        ),
        "spec": spec,
    }


def virtual_service(
    platform: ModelPlatform, model: ModelSettings, gateway: GatewayRef
) -> dict[str, Any]:
    """Routes `https://<model>.<domain>` (ingress gateway) and the stable predictor host (inside
    the mesh) to the versions by weight, so in-mesh callers see the same split."""
    canary_percent = model.canary.traffic_percent if model.canary is not None else 0
    route = [
        {
            "destination": {"host": service_host(model), "port": {"number": access.SERVICE_PORT}},
            "weight": 100 - canary_percent,
        }
    ]
    if model.canary is not None:
        route.append(
            {
                "destination": {
                    "host": service_host(model, "canary"),
                    "port": {"number": access.SERVICE_PORT},
                },
                "weight": canary_percent,
            }
        )
    return {
        "apiVersion": NETWORKING_API,
        "kind": "VirtualService",
        "metadata": metadata(model.name, model.ns, model_labels(model)),
        "spec": {
            "hosts": [f"{model.name}.{gateway.domain}", service_host(model)],
            "gateways": [gateway.qualified, "mesh"],
            "http": [{"name": "versions", "route": route}],
        },
    }
