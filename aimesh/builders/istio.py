"""Istio: values of the base, istiod and gateway charts, hardened by default (pure)."""

from __future__ import annotations

from typing import Any

from aimesh.builders import mesh_ca, telemetry
from aimesh.builders.cluster import HTTP_NODE_PORT, HTTPS_NODE_PORT, gateway_service_type
from aimesh.builders.common import deep_merge
from aimesh.namespaces import ISTIO_NAMESPACE
from aimesh.settings import Settings

# Istio's CNI node agent runs in kube-system: it is a node agent (host paths, NET_ADMIN, AppArmor
# unconfined) and kube-system is where node agents live (its chart excludes kube-system's own
# pods from redirection, and managed clusters reserve the system-node-critical priority for it).
CNI_NAMESPACE = "kube-system"
CNI_RELEASE = "istio-cni"

# Fixed names of the ingress gateway (release, Deployment, Service, ServiceAccount).
GATEWAY_NAME = "aimesh-ingressgateway"
GATEWAY_LABELS = {"app": GATEWAY_NAME, "istio": "ingressgateway"}
# The value of meshConfig.ingressSelector: Istio serves Kubernetes Ingresses (cert-manager's
# HTTP-01 solvers) on the workloads labelled `istio: <this>`.
INGRESS_SELECTOR = GATEWAY_LABELS["istio"]


def base_values(settings: Settings) -> dict[str, Any]:
    """Values of the `base` chart (CRDs, the default-revision validating webhook)."""
    # defaultRevision 'default' keeps istiod-default-validator: it validates Istio config that
    # carries no revision label, which is all of aimesh's.
    return {"global": {"istioNamespace": ISTIO_NAMESPACE}, "defaultRevision": "default"}


def mesh_config(settings: Settings) -> dict[str, Any]:
    """The hardened MeshConfig: egress from config (REGISTRY_ONLY by default), JSON access logs
    on stdout (the audit trail the Observability layer ships), the configured trust domain,
    auto mTLS on, apps that start only once their sidecar is ready (no plaintext window), and
    the strictest path normalization before authorization."""
    return {
        "trustDomain": settings.trust_domain,
        "enableAutoMtls": True,
        "outboundTrafficPolicy": {"mode": settings.outbound_traffic_policy},
        "accessLogFile": "/dev/stdout",
        "accessLogEncoding": "JSON",
        "defaultConfig": {"holdApplicationUntilProxyStarts": True},
        "enablePrometheusMerge": True,
        # Normalize paths before authorization: decode %2F/%5C, merge `//`, resolve `.`/`..`, so
        # a path-based DENY (the operator endpoints) cannot be dodged by another spelling.
        "pathNormalization": {"normalization": "DECODE_AND_MERGE_SLASHES"},
        # Only Ingresses that ask for class `istio` are served, on aimesh's gateway.
        "ingressControllerMode": "STRICT",
        "ingressClass": "istio",
        "ingressService": GATEWAY_NAME,
        "ingressSelector": INGRESS_SELECTOR,
    }


def istiod_mesh_config(settings: Settings) -> dict[str, Any]:
    """The meshConfig istiod is installed with: the Observability layer's fragment (extension
    providers, default providers, proxy stats) when observability is on, with the hardened
    platform settings merged last so nothing can loosen them."""
    fragment = telemetry.mesh_config(settings) if settings.observability else {}
    return deep_merge(fragment, mesh_config(settings))


def cni_values(settings: Settings) -> dict[str, Any]:
    """Values of the `cni` chart: the chart's defaults (chained plugin, /opt/cni/bin and
    /etc/cni/net.d, kube-system excluded) fit kind and kubeadm-style nodes."""
    return {}


def istiod_values(settings: Settings) -> dict[str, Any]:
    """Values of the `istiod` chart: the hardened mesh config, JSON control-plane logs,
    replicas from config (autoscaling never below them), kind-sized requests on kind, and the
    mesh CA's settings (builders/mesh_ca.py: workload certificate lifetime; with cert-manager as
    the CA, istiod's CA off and every agent sent to istio-csr).

    Injection for Pod Security `restricted`: with `cni.enabled` the injector adds no istio-init
    (NET_ADMIN/NET_RAW) but an unprivileged `istio-validation` check, the proxy runs with the
    RuntimeDefault seccomp profile, and native sidecars are on unconditionally (the program
    refuses clusters older than 1.33), so the storage initializer always runs after the proxy
    is up, never outside it."""
    values: dict[str, Any] = {
        "global": {
            "istioNamespace": ISTIO_NAMESPACE,
            "logAsJson": True,
            "proxy": {"seccompProfile": {"type": "RuntimeDefault"}},
        },
        "cni": {"enabled": True},
        "env": {"ENABLE_NATIVE_SIDECARS": "true"},
        "meshConfig": istiod_mesh_config(settings),
        "replicaCount": settings.istiod_replicas,
        "autoscaleMin": settings.istiod_replicas,
        "autoscaleMax": max(5, settings.istiod_replicas),
    }
    if settings.cluster_mode == "kind":
        # The chart asks for 500m/2Gi: more than a laptop's kind node should reserve.
        values["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"}}
    return deep_merge(values, mesh_ca.istiod_values(settings))


def gateway_ports(settings: Settings) -> list[dict[str, Any]]:
    """The gateway Service ports; on kind the NodePorts are fixed so the kind config can map
    the host ports to them."""
    http: dict[str, Any] = {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80}
    https: dict[str, Any] = {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}
    if settings.cluster_mode == "kind" and gateway_service_type(settings) == "NodePort":
        http["nodePort"] = HTTP_NODE_PORT
        https["nodePort"] = HTTPS_NODE_PORT
    status = {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021}
    return [status, http, https]


def gateway_values(settings: Settings) -> dict[str, Any]:
    """Values of the `gateway` chart for `istio-ingress/aimesh-ingressgateway`: the fixed
    labels (`istio: ingressgateway`, `app: aimesh-ingressgateway`), the Service type for the
    cluster mode, and replicas from config (a PDB once there is more than one)."""
    service_type = gateway_service_type(settings)
    service: dict[str, Any] = {"type": service_type, "ports": gateway_ports(settings)}
    if service_type == "LoadBalancer":
        # Keep the client's source IP: the access log is an audit record.
        service["externalTrafficPolicy"] = "Local"
    replicas = settings.gateway_replicas
    values: dict[str, Any] = {
        "name": GATEWAY_NAME,
        "labels": {**GATEWAY_LABELS, "istio.io/dataplane-mode": "none"},
        "service": service,
        "replicaCount": replicas,
        # On kind a fixed replica count; elsewhere the HPA never scales below the config.
        "autoscaling": {
            "enabled": settings.cluster_mode != "kind",
            "minReplicas": replicas,
            "maxReplicas": max(5, 2 * replicas),
        },
    }
    if replicas > 1:
        values["podDisruptionBudget"] = {"minAvailable": 1}
    return values
