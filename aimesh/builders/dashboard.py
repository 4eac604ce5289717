"""The Grafana "aimesh / model security" dashboard (pure builder).

Grafana's dashboard sidecar (kube-prometheus-stack) loads every ConfigMap labelled
`grafana_dashboard: "1"` in the observability namespace. Panels use the same recorded series
as the alerts (builders/alerts.py), so what pages someone is what they see.
"""

from __future__ import annotations

from typing import Any

from aimesh.builders import alerts
from aimesh.builders.common import canonical_json, metadata
from aimesh.builders.monitoring import DASHBOARD_LABEL, DASHBOARD_LABEL_VALUE
from aimesh.namespaces import OBSERVABILITY_NAMESPACE
from aimesh.settings import Settings

UID = "aimesh-model-security"
CONFIGMAP = "aimesh-dashboard-model-security"
# Grafana template variables the queries use; tests substitute them before parsing.
MODEL_VAR = "$model"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

_M = f'destination_service_namespace=~"{MODEL_VAR}"'


def panels(settings: Settings) -> list[tuple[str, str, str, str]]:
    """(title, PromQL, legend, unit) of every panel, in display order. The baseline panel uses
    the alerts' window and offset, so the ratio shown is the one AimeshUnusualRequestVolume
    compares with `alertVolumeFactor`."""
    baseline = f"[{settings.alert_baseline_window}] offset {alerts.BASELINE_OFFSET}"
    return [
        (
            "Requests/s per model",
            f"{alerts.REQUESTS}{{{_M}}}",
            "{{destination_service_namespace}}",
            "reqps",
        ),
        (
            f"Request rate vs own {settings.alert_baseline_window} baseline (x)",
            f"{alerts.REQUESTS}{{{_M}}} / avg_over_time({alerts.REQUESTS}{{{_M}}}{baseline})",
            "{{destination_service_namespace}}",
            "none",
        ),
        (
            "Failed authentication (401/s)",
            "sum by (source_workload, destination_service_namespace) "
            '(rate(istio_requests_total{response_code="401"}[5m]))',
            "{{source_workload}} -> {{destination_service_namespace}}",
            "reqps",
        ),
        (
            "Authorization denials (403/s) by caller",
            "sum by (source_principal, destination_service_namespace) "
            '(rate(istio_requests_total{response_code="403"}[5m]))',
            "{{source_principal}} -> {{destination_service_namespace}}",
            "reqps",
        ),
        (
            "Policy (RBAC) denials/s by pod",
            'sum by (namespace, pod) (rate({__name__=~"envoy_http_.+_rbac_denied"}[5m]))',
            "{{namespace}}/{{pod}}",
            "reqps",
        ),
        (
            "Top callers per model (requests/s)",
            "topk(10, sum by (source_principal, destination_service_namespace) "
            f'(rate(istio_requests_total{{reporter="destination", {_M}}}[5m])))',
            "{{source_principal}} -> {{destination_service_namespace}}",
            "reqps",
        ),
        (
            "Response bytes/s per model (exfiltration)",
            f"{alerts.RESPONSE_BYTES}{{{_M}}}",
            "{{destination_service_namespace}}",
            "Bps",
        ),
        (
            "Response bytes/s by caller",
            "topk(10, sum by (source_principal, destination_service_namespace) "
            f'(rate(istio_response_bytes_sum{{reporter="destination", {_M}}}[5m])))',
            "{{source_principal}} -> {{destination_service_namespace}}",
            "Bps",
        ),
        (
            "5xx ratio per model",
            f"{alerts.ERROR_RATIO}{{{_M}}}",
            "{{destination_service_namespace}}",
            "percentunit",
        ),
        (
            "p99 latency per model (ms)",
            f"{alerts.LATENCY_P99}{{{_M}}}",
            "{{destination_service_namespace}}",
            "ms",
        ),
        (
            "Plaintext (non-mTLS) requests/s",
            "sum by (destination_service_namespace) (rate(istio_requests_total"
            '{reporter="destination", connection_security_policy!="mutual_tls"}[5m]))',
            "{{destination_service_namespace}}",
            "reqps",
        ),
        (
            "Days until certificate expiry",
            # Never-issued certificates report 0 (see the alert): left out.
            f"({alerts.CERT_EXPIRY} - time()) / 86400 and {alerts.CERT_EXPIRY} > 0",
            "{{namespace}}/{{name}}",
            "d",
        ),
        (
            "Audit records failing export/s",
            "sum by (exporter) (rate("
            '{__name__=~"otelcol_exporter_send_failed_log_records(_total)?"}[5m]))',
            "{{exporter}}",
            "none",
        ),
    ]


def dashboard(settings: Settings) -> dict[str, Any]:
    """The dashboard JSON model (two panels per row, 12 columns wide each)."""
    built = []
    for index, (title, expr, legend, unit) in enumerate(panels(settings)):
        built.append(
            {
                "id": index + 1,
                "type": "timeseries",
                "title": title,
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {"refId": "A", "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                ],
            }
        )
    return {
        "uid": UID,
        "title": "aimesh / model security",
        "tags": ["aimesh", "security", "istio"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "model",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": f"label_values({alerts.REQUESTS}, destination_service_namespace)",
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                },
            ]
        },
        "panels": built,
    }


def dashboard_configmap(settings: Settings) -> dict[str, Any]:
    """The ConfigMap Grafana's sidecar picks up (deterministic JSON: quiet previews)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            CONFIGMAP, OBSERVABILITY_NAMESPACE, labels={DASHBOARD_LABEL: DASHBOARD_LABEL_VALUE}
        ),
        "data": {"aimesh-model-security.json": canonical_json(dashboard(settings))},
    }
