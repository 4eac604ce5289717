"""Cluster-level knowledge: the kind cluster definition, the platform namespaces, the gateway's
node ports and where the gateway is reached from outside (pure: no Pulumi imports)."""

from __future__ import annotations

import shlex
from typing import Any

from aimesh import versions
from aimesh.builders.common import metadata
from aimesh.namespaces import CONTROL_PLANE_NAMESPACES, INGRESS_NAMESPACE
from aimesh.settings import Settings

# Fixed NodePorts of the ingress gateway Service on kind; the kind config maps host ports to them.
HTTP_NODE_PORT = 30080
HTTPS_NODE_PORT = 30443

INJECTION_LABEL = "istio-injection"

# Pod Security Admission: every platform namespace refuses privileged pods (baseline) and
# reports anything short of `restricted`. None of the platform pods needs more than baseline:
# control planes are not injected (no istio-init with NET_ADMIN) and the gateway runs without
# traffic capture.
POD_SECURITY_LABELS = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


def kind_config(settings: Settings) -> dict[str, Any]:
    """The kind `Cluster` config: one node of the pinned Kubernetes version whose gateway
    NodePorts are published on the host's loopback only (never on every interface)."""
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": settings.cluster_name,
        "nodes": [
            {
                "role": "control-plane",
                "image": versions.KIND_NODE_IMAGE,
                "extraPortMappings": [
                    {
                        "containerPort": HTTP_NODE_PORT,
                        "hostPort": settings.kind_http_port,
                        "listenAddress": "127.0.0.1",
                        "protocol": "TCP",
                    },
                    {
                        "containerPort": HTTPS_NODE_PORT,
                        "hostPort": settings.kind_https_port,
                        "listenAddress": "127.0.0.1",
                        "protocol": "TCP",
                    },
                ],
            }
        ],
    }


def kind_create_command(settings: Settings) -> str:
    """Shell command that creates the kind cluster from the config on stdin and prints ONLY its
    kubeconfig on stdout (kind's progress goes to stderr), so stdout can become the provider's
    kubeconfig. `--wait` returns once the control plane is Ready."""
    name = shlex.quote(settings.cluster_name)
    return (
        f"kind create cluster --name {name} --config=- --wait 180s 1>&2"
        f" && kind get kubeconfig --name {name}"
    )


def kind_delete_command(settings: Settings) -> str:
    """Shell command that deletes the kind cluster (a no-op if it is already gone)."""
    return f"kind delete cluster --name {shlex.quote(settings.cluster_name)}"


def gateway_service_type(settings: Settings) -> str:
    """The ingress gateway Service type: explicit config wins; NodePort on kind (the only way
    in through the host port mappings), LoadBalancer on a real cluster."""
    if settings.gateway_service_type is not None:
        return settings.gateway_service_type
    return "NodePort" if settings.cluster_mode == "kind" else "LoadBalancer"


def static_gateway_address(settings: Settings) -> str | None:
    """Where clients reach the ingress gateway, when it is known without asking the cluster:
    `127.0.0.1:<kindHttpsPort>` on kind, the in-cluster DNS name for ClusterIP, '' in render
    mode. None means: read the LoadBalancer's address from the cluster."""
    service = "aimesh-ingressgateway"
    if settings.cluster_mode == "render":
        return ""
    kind = gateway_service_type(settings)
    if settings.cluster_mode == "kind" and kind == "NodePort":
        return f"127.0.0.1:{settings.kind_https_port}"
    if kind == "ClusterIP":
        return f"{service}.{INGRESS_NAMESPACE}.svc:443"
    return None


def namespace(name: str, *, injected: bool) -> dict[str, Any]:
    """A platform namespace. Control planes carry `istio-injection: disabled` (the API server
    cannot speak Istio mTLS to their webhooks); the ingress namespace is injected."""
    if not injected and name not in CONTROL_PLANE_NAMESPACES:
        raise ValueError(f"{name!r} is not a control-plane namespace; only those opt out")
    labels = {
        INJECTION_LABEL: "enabled" if injected else "disabled",
        **POD_SECURITY_LABELS,
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata(name, labels=labels)}
