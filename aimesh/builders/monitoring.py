"""kube-prometheus-stack (Prometheus, Alertmanager, Grafana) and what it scrapes (pure builders).

Prometheus, Alertmanager and Grafana run OUTSIDE the mesh (their namespace has no injection
label). Under STRICT mTLS they still scrape every sidecar: Istio's merged metrics endpoint
(:15020/stats/prometheus, Envoy + Istio + the application's own metrics when its pod carries
prometheus.io annotations, e.g. the collector's) is served by pilot-agent in plaintext and is
not intercepted by the sidecar. istiod (:15014) and cert-manager (:9402) run out of the mesh as
well.
"""

from __future__ import annotations

from typing import Any

from aimesh.builders import mesh_ca
from aimesh.builders.common import metadata
from aimesh.namespaces import CERT_MANAGER_NAMESPACE, ISTIO_NAMESPACE, OBSERVABILITY_NAMESPACE
from aimesh.settings import AlertReceiver, Settings

MONITORING_API = "monitoring.coreos.com/v1"
RELEASE = "aimesh-monitoring"
RECEIVERS_SECRET = "aimesh-alertmanager-receivers"  # noqa: S105 - a Secret name
GRAFANA_SECRET = "aimesh-grafana-admin"  # noqa: S105 - a Secret name
DASHBOARD_LABEL = "grafana_dashboard"
DASHBOARD_LABEL_VALUE = "1"
# prometheus-operator mounts each `alertmanagerSpec.secrets` entry here.
SECRETS_DIR = f"/etc/alertmanager/secrets/{RECEIVERS_SECRET}"
SCRAPE_INTERVAL = "30s"
ISTIO_MERGED_METRICS_PORT = 15020


def _credential_file(receiver: AlertReceiver) -> str:
    return f"{SECRETS_DIR}/{receiver.name}"


def receiver_config(receiver: AlertReceiver) -> dict[str, Any]:
    """An Alertmanager receiver whose secret part is read from a mounted file (`*_file`)."""
    path = _credential_file(receiver)
    if receiver.type == "slack":
        slack: dict[str, Any] = {"api_url_file": path, "send_resolved": True}
        if receiver.channel:
            slack["channel"] = receiver.channel
        return {"name": receiver.name, "slack_configs": [slack]}
    if receiver.type == "pagerduty":
        return {
            "name": receiver.name,
            "pagerduty_configs": [{"routing_key_file": path, "send_resolved": True}],
        }
    return {"name": receiver.name, "webhook_configs": [{"url_file": path, "send_resolved": True}]}


# Every aimesh alert carries this label (builders/alerts.py); receivers only get those.
AIMESH_ALERT_MATCHER = 'aimesh_alert = "true"'


def alertmanager_config(settings: Settings) -> dict[str, Any]:
    """Routes: every receiver gets the aimesh alerts of its severities (`continue` lets several
    receivers see the same alert); everything else (the chart's own Kubernetes rules when
    `clusterMonitoring` is on, Watchdog) goes to the chart's `null` receiver, so a security
    on-call is not paged for node or kubelet problems."""
    routes: list[dict[str, Any]] = [{"receiver": "null", "matchers": ['alertname = "Watchdog"']}]
    for receiver in settings.alert_receivers:
        severities = "|".join(receiver.severities)
        routes.append(
            {
                "receiver": receiver.name,
                "matchers": [AIMESH_ALERT_MATCHER, f'severity =~ "{severities}"'],
                "continue": True,
            }
        )
    return {
        "route": {
            "receiver": "null",
            "group_by": ["alertname", "namespace", "destination_service_namespace"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "receivers": [
            {"name": "null"},
            *(receiver_config(r) for r in settings.alert_receivers),
        ],
    }


def receiver_credentials(settings: Settings) -> dict[str, str]:
    """Secret key (receiver name) -> credential, for the receivers Secret (never logged).
    Settings refuses a receiver without one (`missing_values`), so every receiver has it."""
    return {
        r.name: r.credential.get_secret_value()
        for r in settings.alert_receivers
        if r.credential is not None
    }


def _small(cpu: str, memory: str, limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": limit}}


def helm_values(settings: Settings) -> dict[str, Any]:
    """Values of kube-prometheus-stack (checked against the chart's values.yaml)."""
    prod = settings.production
    cluster = settings.cluster_monitoring
    prometheus_spec: dict[str, Any] = {
        "retention": settings.prometheus_retention,
        "scrapeInterval": SCRAPE_INTERVAL,
        # Select aimesh's PodMonitors/ServiceMonitors/PrometheusRules without the chart's
        # `release` label convention.
        "ruleSelectorNilUsesHelmValues": False,
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "probeSelectorNilUsesHelmValues": False,
        "scrapeConfigSelectorNilUsesHelmValues": False,
        "resources": _small("200m", "1Gi", "4Gi") if prod else _small("100m", "256Mi", "1Gi"),
    }
    if settings.prometheus_storage_size:
        prometheus_spec["storageSpec"] = {
            "volumeClaimTemplate": {
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": settings.prometheus_storage_size}},
                }
            }
        }
    grafana: dict[str, Any] = {
        "enabled": settings.grafana,
        "defaultDashboardsEnabled": cluster,
        "sidecar": {
            "dashboards": {
                "enabled": True,
                "label": DASHBOARD_LABEL,
                "labelValue": DASHBOARD_LABEL_VALUE,
                "searchNamespace": OBSERVABILITY_NAMESPACE,
            }
        },
    }
    if settings.grafana_admin_password is not None:
        grafana["admin"] = {
            "existingSecret": GRAFANA_SECRET,
            "userKey": "admin-user",
            "passwordKey": "admin-password",
        }
    return {
        "fullnameOverride": RELEASE,
        "crds": {"enabled": True},
        "defaultRules": {"create": cluster},
        "kubernetesServiceMonitors": {"enabled": cluster},
        "nodeExporter": {"enabled": cluster},
        "kubeStateMetrics": {"enabled": cluster},
        "prometheusOperator": {
            "resources": _small("50m", "64Mi", "256Mi"),
        },
        "prometheus": {"prometheusSpec": prometheus_spec},
        "alertmanager": {
            "enabled": True,
            "config": alertmanager_config(settings),
            "alertmanagerSpec": {
                "secrets": [RECEIVERS_SECRET] if settings.alert_receivers else [],
                "resources": _small("20m", "32Mi", "128Mi"),
            },
        },
        "grafana": grafana,
    }


def sidecar_pod_monitor() -> dict[str, Any]:
    """Every injected pod (models, callers, the ingress gateway, the collector): the merged
    metrics endpoint :15020/stats/prometheus (Istio standard metrics, Envoy stats, and the
    application's own metrics when the pod carries prometheus.io annotations: the collector and
    the KServe predictors, see builders/kserve.py)."""
    return {
        "apiVersion": MONITORING_API,
        "kind": "PodMonitor",
        "metadata": metadata("istio-sidecars", OBSERVABILITY_NAMESPACE),
        "spec": {
            "namespaceSelector": {"any": True},
            "selector": {
                "matchExpressions": [{"key": "istio-prometheus-ignore", "operator": "DoesNotExist"}]
            },
            "jobLabel": "aimesh-istio-sidecars",
            "podMetricsEndpoints": [
                {
                    # One target per pod: the istio-proxy container's declared Envoy port, then
                    # pointed at pilot-agent's merged endpoint (not declared as a port).
                    "port": "http-envoy-prom",
                    "path": "/stats/prometheus",
                    "interval": SCRAPE_INTERVAL,
                    "relabelings": [
                        {
                            "action": "keep",
                            "sourceLabels": ["__meta_kubernetes_pod_container_name"],
                            "regex": "istio-proxy",
                        },
                        {
                            "action": "replace",
                            "sourceLabels": ["__meta_kubernetes_pod_ip"],
                            "regex": "(.+)",
                            "replacement": f"$1:{ISTIO_MERGED_METRICS_PORT}",
                            "targetLabel": "__address__",
                        },
                    ],
                }
            ],
        },
    }


def istiod_service_monitor() -> dict[str, Any]:
    """istiod's control-plane metrics (:15014, port name http-monitoring), incl. its CA."""
    return {
        "apiVersion": MONITORING_API,
        "kind": "ServiceMonitor",
        "metadata": metadata("istiod", OBSERVABILITY_NAMESPACE),
        "spec": {
            "namespaceSelector": {"matchNames": [ISTIO_NAMESPACE]},
            "selector": {"matchLabels": {"istio": "pilot"}},
            "jobLabel": "istio",
            "endpoints": [{"port": "http-monitoring", "interval": SCRAPE_INTERVAL}],
        },
    }


def cert_manager_pod_monitor() -> dict[str, Any]:
    """cert-manager's controller (:9402, port name http-metrics): certificate expiry.
    honorLabels keeps `namespace`/`name` of the Certificate instead of the target's."""
    return {
        "apiVersion": MONITORING_API,
        "kind": "PodMonitor",
        "metadata": metadata("cert-manager", OBSERVABILITY_NAMESPACE),
        "spec": {
            "namespaceSelector": {"matchNames": [CERT_MANAGER_NAMESPACE]},
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "cert-manager",
                    "app.kubernetes.io/component": "controller",
                }
            },
            "podMetricsEndpoints": [
                {"port": "http-metrics", "interval": SCRAPE_INTERVAL, "honorLabels": True}
            ],
        },
    }


def istio_csr_service_monitor() -> dict[str, Any]:
    """istio-csr's metrics Service (:9402, port name `metrics`): the CreateCertificate calls of
    every workload, and its own serving certificate's renewals (meshCa cert-manager)."""
    return {
        "apiVersion": MONITORING_API,
        "kind": "ServiceMonitor",
        "metadata": metadata("istio-csr", OBSERVABILITY_NAMESPACE),
        "spec": {
            "namespaceSelector": {"matchNames": [CERT_MANAGER_NAMESPACE]},
            "selector": {"matchLabels": dict(mesh_ca.METRICS_SERVICE_LABELS)},
            "endpoints": [{"port": mesh_ca.METRICS_PORT_NAME, "interval": SCRAPE_INTERVAL}],
        },
    }


def scrape_monitors() -> list[dict[str, Any]]:
    return [sidecar_pod_monitor(), istiod_service_monitor(), cert_manager_pod_monitor()]
