"""KServe: values of kserve-resources (Standard mode, no ingress of its own) and of
kserve-runtime-configs (the ClusterServingRuntimes) (pure)."""

from __future__ import annotations

from typing import Any

from aimesh.namespaces import INGRESS_NAMESPACE, KSERVE_NAMESPACE
from aimesh.settings import Settings

# Standard is KServe's name for raw Kubernetes Deployments (formerly "RawDeployment"); the
# alternative, Knative, would need Knative Serving and its own gateways.
DEPLOYMENT_MODE = "Standard"
CONTROLLER_DEPLOYMENT = "kserve-controller-manager"
# Models are routed by aimesh's own VirtualServices on this Gateway, never by KServe.
ISTIO_GATEWAY = f"{INGRESS_NAMESPACE}/aimesh-gateway"


def resources_values(settings: Settings) -> dict[str, Any]:
    """Values of kserve-resources.

    - Standard deployment mode (plain Deployments + HPA, no Knative).
    - `disableIngressCreation`: KServe creates no Ingress / HTTPRoute / VirtualService; the
      SecureModel component routes each model through `istio-ingress/aimesh-gateway` with its
      own authorization in front. `disableIstioVirtualHost` likewise stops KServe from adding
      the cluster-local host to VirtualServices, and KServe creates no Gateway of its own.
    - URLs reported in InferenceService status match aimesh's: `https://<name>.<gatewayDomain>`.
    - Model pods do not automount a Kubernetes API token (a model server has no use for the
      API; the Istio sidecar gets its own projected token).
    - KServe's own Prometheus annotation is off: in Standard mode it points `prometheus.io/port`
      at 9091, Knative's queue-proxy, which does not exist here. Each model pod names its
      server's real metrics port instead (builders/secure_model/serving.py), and Istio's
      metrics merging serves those metrics on the sidecar's :15020.
    """
    return {
        "kserve": {
            "controller": {
                "deploymentMode": DEPLOYMENT_MODE,
                # The image tag is pinned by the chart; re-pulling on every restart buys nothing.
                "imagePullPolicy": "IfNotPresent",
                "gateway": {
                    "domain": settings.gateway_domain,
                    "domainTemplate": "{{ .Name }}.{{ .IngressDomain }}",
                    "urlScheme": "https",
                    "disableIngressCreation": True,
                    "disableIstioVirtualHost": True,
                    "ingressGateway": {
                        "enableGatewayApi": False,
                        "createGateway": False,
                        "gateway": ISTIO_GATEWAY,
                    },
                },
            },
            "security": {"autoMountServiceAccountToken": False},
            # Off: KServe would annotate every model pod with prometheus.io/port 9091 (Knative's
            # queue-proxy), where nothing listens in Standard mode.
            "metricsaggregator": {"enablePrometheusScraping": "false"},
        }
    }


def runtime_values(settings: Settings) -> dict[str, Any]:
    """Values of kserve-runtime-configs: the ClusterServingRuntimes (sklearn, xgboost, ...)
    on, the LLM configs (which need the separate llmisvc controller) off."""
    return {"kserve": {"servingruntime": {"enabled": True}, "llmisvcConfigs": {"enabled": False}}}


def controller_replicas_patch(settings: Settings) -> dict[str, Any] | None:
    """A server-side-apply patch of the controller's replicas, or None for one replica.

    kserve-resources v0.20.0 has no replicas value: its Deployment leaves `spec.replicas`
    unset, so the chart never owns that field and a separate patch can own it without a
    field-manager conflict."""
    if settings.kserve_controller_replicas == 1:
        return None
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": CONTROLLER_DEPLOYMENT, "namespace": KSERVE_NAMESPACE},
        "spec": {"replicas": settings.kserve_controller_replicas},
    }
