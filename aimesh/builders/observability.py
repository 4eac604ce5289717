"""The observability namespace and the list of everything Observability registers (pure).

The namespace is deliberately NOT labelled for sidecar injection (neither enabled nor disabled):
pods join the mesh one by one with the `sidecar.istio.io/inject: "true"` pod label. Only the
OpenTelemetry collector and the audit agents do (audit records reach the collector under mTLS,
and only the agents' identity may send it records). Prometheus, Alertmanager, Grafana, the
operator and its admission-webhook Jobs stay out: a Job with a sidecar never completes, and
Prometheus scrapes the sidecars' plaintext merged-metrics port (15020), which mTLS does not
cover.
"""

from __future__ import annotations

from typing import Any

from aimesh.builders import (
    alerts,
    audit_agent,
    collector,
    dashboard,
    intent,
    mesh_ca,
    monitoring,
    telemetry,
)
from aimesh.builders.common import metadata
from aimesh.namespaces import OBSERVABILITY_NAMESPACE
from aimesh.settings import Settings, TelemetryOverride

# Pod Security Admission. `enforce: privileged` because (1) the collector's and the audit
# agents' injected istio-init containers need NET_ADMIN/NET_RAW to set up traffic capture where
# Istio runs without its CNI, (2) the node exporter (clusterMonitoring) needs host namespaces and
# (3) the audit agent reads the node's pod logs (host paths, builders/audit_agent.py).
# `warn`/`audit` stay `restricted` so anything else that is not fully restricted is reported.
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "privileged",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


def namespace() -> dict[str, Any]:
    """The `aimesh-observability` namespace (no injection label: per-pod opt-in)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata(OBSERVABILITY_NAMESPACE, labels=dict(POD_SECURITY)),
    }


def mesh_resources(settings: Settings) -> dict[str, dict[str, Any]]:
    """Istio objects (need Istio's CRDs and istiod's webhook), keyed by resource-name suffix.
    Namespace-level Telemetry overrides are registered separately (see `model_namespaces`)."""
    found: dict[str, dict[str, Any]] = {
        "telemetry-mesh": telemetry.mesh_telemetry(settings),
        # The telemetry the audit trail and the alerts depend on, as data the pack reads.
        "intent": intent.mesh_intent(settings),
        "telemetry-collector": telemetry.collector_loop_guard(collector.COLLECTOR_LABELS),
        "telemetry-audit-agent": telemetry.collector_loop_guard(
            audit_agent.AGENT_LABELS, "audit-agent-no-self-logging"
        ),
        "collector-allow": collector.allow_telemetry_policy(settings),
    }
    for entry in collector.sink_service_entries(settings):
        found[f"egress-{entry['metadata']['name']}"] = entry
    return found


def monitoring_resources(settings: Settings) -> dict[str, dict[str, Any]]:
    """prometheus-operator objects (need the chart's CRDs and admission webhook)."""
    objects = {
        "podmonitor-sidecars": monitoring.sidecar_pod_monitor(),
        "servicemonitor-istiod": monitoring.istiod_service_monitor(),
        "podmonitor-cert-manager": monitoring.cert_manager_pod_monitor(),
    }
    if mesh_ca.enabled(settings):
        objects["servicemonitor-istio-csr"] = monitoring.istio_csr_service_monitor()
    return {**objects, "rules": alerts.prometheus_rule(settings)}


def dashboards(settings: Settings) -> dict[str, dict[str, Any]]:
    return {"dashboard-model-security": dashboard.dashboard_configmap(settings)}


def overrides(settings: Settings) -> list[TelemetryOverride]:
    return list(settings.telemetry_overrides)


def override_resources(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per-namespace Telemetry overrides keyed by resource-name suffix."""
    return {
        f"telemetry-{o.namespace}": telemetry.namespace_telemetry(
            o, f"aimesh:telemetryOverrides[{i}]"
        )
        for i, o in enumerate(settings.telemetry_overrides)
    }
