"""The OpenTelemetry collector that carries the audit trail to the SIEM (pure builders).

The audit agent (builders/audit_agent.py) reads the proxies' JSON access-log records from their
own stdout on every node and sends them over OTLP/gRPC to this collector; the proxies send their
sampled spans directly. The collector batches both and exports them to every configured sink
(OTLP, Splunk HEC, syslog, a rotated file). It runs IN the mesh (a sidecar, opted in per pod), so
records travel under mTLS, and `allow_telemetry_policy` decides who may send what: the OTLP logs
service only to the agent's identity (an application container shares its pod's identity with
its proxy, so no workload may write audit records), the traces service to the mesh's proxies.

Credentials never appear in the collector ConfigMap or the chart values: the config refers to
environment variables (`${env:AIMESH_SINK_<NAME>_TOKEN}`) that come from one Kubernetes Secret
built from Pulumi secrets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from aimesh import versions
from aimesh.builders.common import metadata, principal
from aimesh.builders.telemetry import COLLECTOR_NAME, OTLP_GRPC_PORT
from aimesh.namespaces import INGRESS_NAMESPACE, OBSERVABILITY_NAMESPACE
from aimesh.settings import Settings, SiemSink

CREDENTIALS_SECRET = "aimesh-siem-credentials"  # noqa: S105 - a Secret name
COMPONENT_LABEL = "aimesh.io/component"
COLLECTOR_LABELS = {COMPONENT_LABEL: "otel-collector"}
SERVICE_ACCOUNT = COLLECTOR_NAME
# The ingress gateway's service account (fixed name, see the brief / builders/common.py users).
GATEWAY_SERVICE_ACCOUNT = "aimesh-ingressgateway"
AUDIT_VOLUME = "audit-log"
AUDIT_DIR = "/var/log/aimesh"
HEALTH_PORT = 13133
METRICS_PORT = 8888
# The audit agent's identity (builders/audit_agent.py): the only writer of audit records.
AUDIT_AGENT_SERVICE_ACCOUNT = "aimesh-audit-agent"
# The OTLP/gRPC services (HTTP/2 paths, which Istio authorization matches).
LOGS_SERVICE = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
TRACES_SERVICE = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# The chart's port entries (each would otherwise listen, and bind a host port in daemonset mode).
CHART_PORTS = (
    "otlp",
    "otlp-http",
    "jaeger-compact",
    "jaeger-thrift",
    "jaeger-grpc",
    "zipkin",
    "metrics",
)
# A collector's own safeguards and telemetry, the same for this collector and the agent.
MEMORY_LIMITER = {"check_interval": "5s", "limit_percentage": 80, "spike_limit_percentage": 25}


def health_extension() -> dict[str, Any]:
    return {"health_check": {"endpoint": f"${{env:MY_POD_IP}}:{HEALTH_PORT}"}}


def own_metrics() -> dict[str, Any]:
    """The collector's own metrics, on loopback: pilot-agent scrapes them from inside the pod
    and merges them into :15020."""
    exporter = {"prometheus": {"host": "localhost", "port": METRICS_PORT}}
    return {"metrics": {"readers": [{"pull": {"exporter": exporter}}]}}


def metrics_annotations() -> dict[str, str]:
    """Pod annotations that make Istio merge the collector's metrics into :15020."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }


def env_var(sink: SiemSink) -> str:
    """The environment variable that carries a sink's token inside the collector pod."""
    return f"AIMESH_SINK_{sink.name.upper().replace('-', '_')}_TOKEN"


def secret_key(sink: SiemSink) -> str:
    return f"{sink.name}-token"


def exporter_id(sink: SiemSink) -> str:
    """The collector component id (`type/name`) of a sink's exporter."""
    kind = {"otlp": "otlp_grpc", "splunkHec": "splunk_hec", "syslog": "syslog", "file": "file"}
    return f"{kind[sink.type]}/{sink.name}"


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def sink_host_port(sink: SiemSink) -> tuple[str, int] | None:
    """Where a network sink connects to (None for the file sink)."""
    if sink.type == "file" or not sink.endpoint:
        return None
    if sink.type == "splunkHec":
        url = urlparse(sink.endpoint)
        return url.hostname or "", url.port or 443
    return _host_port(sink.endpoint)


def exporter_config(sink: SiemSink) -> dict[str, Any]:
    """One exporter's configuration; secrets only as `${env:...}` references."""
    token = f"${{env:{env_var(sink)}}}"
    if sink.type == "otlp":
        config: dict[str, Any] = {"endpoint": sink.endpoint, "tls": {"insecure": sink.insecure}}
        if sink.token is not None:
            config["headers"] = {"authorization": f"Bearer {token}"}
        return config
    if sink.type == "splunkHec":
        config = {
            "endpoint": sink.endpoint,
            "token": token,
            "source": "aimesh",
            "sourcetype": sink.sourcetype,
            "tls": {"insecure_skip_verify": False},
        }
        if sink.index:
            config["index"] = sink.index
        return config
    if sink.type == "syslog":
        host, port = _host_port(sink.endpoint or "")
        return {
            "endpoint": host,
            "port": port,
            "network": "tcp",
            "protocol": sink.protocol,
            "tls": {"insecure": sink.insecure},
        }
    return {
        "path": sink.path,
        "format": "json",
        "rotation": {
            "max_megabytes": sink.max_megabytes,
            "max_days": sink.max_days,
            "max_backups": sink.max_backups,
        },
    }


# Syslog carries one string per record: the exporter sends attributes["message"], so the
# record's attributes are serialized into it (JSON) before export.
SYSLOG_TRANSFORM = "transform/syslog"
_SYSLOG_STATEMENTS = [
    'set(attributes["message"], String(attributes))',
    'set(attributes["appname"], "aimesh-audit")',
    'set(attributes["msg_id"], "access")',
]


def collector_config(settings: Settings) -> dict[str, Any]:
    """The complete collector configuration (the chart's `alternateConfig`: deployed as is,
    not merged with the chart's default receivers)."""
    sinks = settings.siem_sinks
    exporters: dict[str, Any] = {exporter_id(s): exporter_config(s) for s in sinks}
    log_sinks = [exporter_id(s) for s in sinks if "logs" in s.signals and s.type != "syslog"]
    syslog_sinks = [exporter_id(s) for s in sinks if "logs" in s.signals and s.type == "syslog"]
    trace_sinks = [exporter_id(s) for s in sinks if "traces" in s.signals]
    # Without a sink of a signal the collector still needs an exporter; `debug` at `basic`
    # verbosity logs counts only (never the records' content).
    if not (log_sinks or syslog_sinks) or not trace_sinks:
        exporters["debug"] = {"verbosity": "basic"}
    processors: dict[str, Any] = {"memory_limiter": dict(MEMORY_LIMITER), "batch": {}}
    common = ["memory_limiter", "batch"]
    pipelines: dict[str, Any] = {}
    if log_sinks or not syslog_sinks:
        pipelines["logs"] = {
            "receivers": ["otlp"],
            "processors": common,
            "exporters": log_sinks or ["debug"],
        }
    if syslog_sinks:
        processors[SYSLOG_TRANSFORM] = {
            "error_mode": "ignore",
            "log_statements": [{"context": "log", "statements": list(_SYSLOG_STATEMENTS)}],
        }
        pipelines["logs/syslog"] = {
            "receivers": ["otlp"],
            "processors": ["memory_limiter", SYSLOG_TRANSFORM, "batch"],
            "exporters": syslog_sinks,
        }
    pipelines["traces"] = {
        "receivers": ["otlp"],
        "processors": common,
        "exporters": trace_sinks or ["debug"],
    }
    return {
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": f"${{env:MY_POD_IP}}:{OTLP_GRPC_PORT}"}}}
        },
        "processors": processors,
        "exporters": exporters,
        "extensions": health_extension(),
        "service": {
            "extensions": ["health_check"],
            "pipelines": pipelines,
            "telemetry": own_metrics(),
        },
    }


def credentials(settings: Settings) -> dict[str, str]:
    """Secret key -> token value of every sink with a token (the component wraps them as
    Pulumi secrets; this mapping must never be logged)."""
    return {
        secret_key(s): s.token.get_secret_value()
        for s in settings.siem_sinks
        if s.token is not None
    }


def credentials_secret_metadata() -> dict[str, Any]:
    return metadata(CREDENTIALS_SECRET, OBSERVABILITY_NAMESPACE)


def _resources(settings: Settings) -> dict[str, Any]:
    if settings.production:
        return {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    return {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


def helm_values(settings: Settings) -> dict[str, Any]:
    """Values of the opentelemetry-collector chart (checked against its values.schema.json)."""
    env = [
        {
            "name": env_var(s),
            "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": secret_key(s)}},
        }
        for s in settings.siem_sinks
        if s.token is not None
    ]
    return {
        "mode": "deployment",
        "fullnameOverride": COLLECTOR_NAME,
        "replicaCount": settings.collector_replicas,
        "image": {
            "repository": versions.OTEL_COLLECTOR_IMAGE,
            "tag": versions.OTEL_COLLECTOR_IMAGE_TAG,
        },
        "command": {"name": "otelcol-contrib"},
        "alternateConfig": collector_config(settings),
        "serviceAccount": {
            "create": True,
            "name": SERVICE_ACCOUNT,
            # The collector never calls the Kubernetes API (no k8s presets).
            "automountServiceAccountToken": False,
        },
        # In the mesh by opt-in: the namespace has no injection label (Prometheus, Grafana and
        # the operator's webhook jobs stay out), this pod asks for its sidecar.
        "podLabels": {**COLLECTOR_LABELS, "sidecar.istio.io/inject": "true"},
        # Istio merges these app metrics into the sidecar's :15020 endpoint Prometheus scrapes.
        "podAnnotations": metrics_annotations(),
        "ports": {
            **{name: {"enabled": False} for name in CHART_PORTS},
            "otlp": {
                "enabled": True,
                "containerPort": OTLP_GRPC_PORT,
                "servicePort": OTLP_GRPC_PORT,
                "protocol": "TCP",
                "appProtocol": "grpc",
            },
        },
        "extraEnvs": env,
        "extraVolumes": [{"name": AUDIT_VOLUME, "emptyDir": {"sizeLimit": "1Gi"}}],
        "extraVolumeMounts": [{"name": AUDIT_VOLUME, "mountPath": AUDIT_DIR}],
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": _resources(settings),
    }


def trace_source_principals(settings: Settings) -> list[str]:
    """Every proxy that sends spans to the collector: the ingress gateway, the models'
    workloads (any service account of a model namespace: KServe names them) and each
    configured caller's exact service account."""
    td = settings.trust_domain
    found = {principal(td, INGRESS_NAMESPACE, GATEWAY_SERVICE_ACCOUNT)}
    for model in settings.models:
        found.add(f"{td}/ns/{model.ns}/sa/*")
        for caller in model.callers:
            found.add(principal(td, caller.namespace, caller.service_account))
    for override in settings.telemetry_overrides:
        if override.namespace != OBSERVABILITY_NAMESPACE:
            found.add(f"{td}/ns/{override.namespace}/sa/*")
    return sorted(found)


def audit_writer_principal(settings: Settings) -> str:
    """The audit agent's identity: the one principal that may send log records."""
    return principal(settings.trust_domain, OBSERVABILITY_NAMESPACE, AUDIT_AGENT_SERVICE_ACCOUNT)


def allow_telemetry_policy(settings: Settings) -> dict[str, Any]:
    """ALLOW, on the collector's OTLP port, the audit agent to use the logs service and the
    mesh's proxies the traces service, nothing else: under the mesh-wide deny-all, a workload
    that pushes log records (an application container holds its proxy's identity) is refused."""
    port = [str(OTLP_GRPC_PORT)]
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": metadata("otel-collector-allow-telemetry", OBSERVABILITY_NAMESPACE),
        "spec": {
            "selector": {"matchLabels": dict(COLLECTOR_LABELS)},
            "action": "ALLOW",
            "rules": [
                {
                    "from": [{"source": {"principals": [audit_writer_principal(settings)]}}],
                    "to": [{"operation": {"ports": port, "paths": [LOGS_SERVICE]}}],
                },
                {
                    "from": [{"source": {"principals": trace_source_principals(settings)}}],
                    "to": [{"operation": {"ports": port, "paths": [TRACES_SERVICE]}}],
                },
            ],
        },
    }


def _in_cluster(host: str) -> bool:
    return host.endswith((".svc", ".svc.cluster.local", ".cluster.local"))


def sink_service_entries(settings: Settings) -> list[dict[str, Any]]:
    """Under REGISTRY_ONLY egress the collector's sidecar reaches only declared hosts: one
    ServiceEntry per external sink, visible to this namespace only."""
    entries = []
    for sink in settings.siem_sinks:
        target = sink_host_port(sink)
        if target is None or _in_cluster(target[0]):
            continue
        host, port = target
        # The collector speaks TLS itself: the sidecar passes it through by SNI.
        protocol = "TCP" if sink.insecure else "TLS"
        entries.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "ServiceEntry",
                "metadata": metadata(f"siem-{sink.name}", OBSERVABILITY_NAMESPACE),
                "spec": {
                    "hosts": [host],
                    "location": "MESH_EXTERNAL",
                    "resolution": "DNS",
                    "exportTo": ["."],
                    "ports": [
                        {"number": port, "name": f"{protocol.lower()}-{port}", "protocol": protocol}
                    ],
                },
            }
        )
    return entries


def telemetry_egress_rule() -> dict[str, Any]:
    """The NetworkPolicy egress rule a namespace with a default-deny egress policy needs so its
    sidecars can deliver access logs and spans to the collector (OTLP/gRPC)."""
    return {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": OBSERVABILITY_NAMESPACE}
                },
                "podSelector": {"matchLabels": dict(COLLECTOR_LABELS)},
            }
        ],
        "ports": [{"protocol": "TCP", "port": OTLP_GRPC_PORT}],
    }
