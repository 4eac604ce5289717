"""The audit agent: node-level collection of the proxies' own access logs (pure builders).

Why (docs/threat-model.md, "Audit trail"): a record's origin must be bound to the proxy that
wrote it. An application container shares its pod's identity with its sidecar, so anything that
accepts records over the network from that identity (Envoy's OTLP access-log service included)
also accepts records the application makes up. What an application cannot do is write to another
container's stdout: the kubelet stores each container's output under
`/var/log/pods/<namespace>_<pod>_<uid>/<container>/`, named by the kubelet, not by the pod.

So one agent per node (a DaemonSet of the OpenTelemetry collector, image and chart as the
collector's) reads only `/var/log/pods/*/istio-proxy/*.log`, read-only:

- the `container` operator takes namespace, pod, uid and container name from that path, never
  from the record;
- only JSON lines with the audit record's fields are kept (the proxy's own diagnostics are
  dropped);
- each record gets `aimesh.audit.source: proxy-stdout` and `aimesh.audit.trust`:
  `verified` when its namespace is one aimesh guards (the model namespaces and the ingress
  gateway's, where admission refuses any container named like Istio's own that the injector did
  not add) and the namespace and pod it names are the ones its file belongs to; `mismatch` when
  they differ (a container named `istio-proxy` writing someone else's records); `unguarded`
  otherwise (a caller's namespace: only as trustworthy as that namespace's own controls);
- it forwards them over OTLP (through its sidecar: mTLS) to the collector, whose
  AuthorizationPolicy lets only this agent's identity use the OTLP logs service.

The agent runs as root (the kubelet's log files are root's, mode 0640) with every capability
dropped, no privilege escalation and a read-only root filesystem. Its two host paths are the one
exception the platform needs to the no-hostPath rule, in `aimesh-observability` only:
`/var/log/pods` read-only, and `/var/lib/aimesh/audit-agent` (read offsets and the export queue,
so a restart neither loses nor repeats records).
"""

from __future__ import annotations

from typing import Any

from aimesh import versions
from aimesh.builders import collector
from aimesh.builders.telemetry import COLLECTOR_HOST, OTLP_GRPC_PORT
from aimesh.namespaces import INGRESS_NAMESPACE, OBSERVABILITY_NAMESPACE
from aimesh.settings import Settings

AGENT_NAME = collector.AUDIT_AGENT_SERVICE_ACCOUNT
SERVICE_ACCOUNT = AGENT_NAME
AGENT_LABELS = {"aimesh.io/component": "audit-agent"}
PROXY_CONTAINER = "istio-proxy"
POD_LOGS = "/var/log/pods"
# Only the proxies' files; not the audit pipeline's own namespace (its sidecars log nothing,
# and reading them would feed the agent its own traffic).
PROXY_LOGS = f"{POD_LOGS}/*/{PROXY_CONTAINER}/*.log"
OWN_LOGS = f"{POD_LOGS}/{OBSERVABILITY_NAMESPACE}_*/{PROXY_CONTAINER}/*.log"
STATE_DIR = "/var/lib/aimesh/audit-agent"
STORAGE = "file_storage/audit"
EXPORTER = "otlp_grpc/collector"
# What the agent adds to every record.
SOURCE_ATTRIBUTE = "aimesh.audit.source"
TRUST_ATTRIBUTE = "aimesh.audit.trust"
# The audit record's fields that tell it from the proxy's other output (telemetry.py).
RECORD_MARKERS = ("start_time", "response_code", "source_principal")


def guarded_namespaces(settings: Settings) -> list[str]:
    """Namespaces where admission refuses hand-made Istio containers: the models' and the
    ingress gateway's (builders/guardrails.py, `istio-workload-forbid-proxy-overrides`)."""
    return sorted({INGRESS_NAMESPACE, *(m.ns for m in settings.models)})


def trust_statements(settings: Settings) -> list[str]:
    """OTTL (log context), in order: the last statement that applies wins."""
    # Namespaces are DNS labels ([a-z0-9-]): nothing to escape in a regular expression (and
    # OTTL strings would not take a backslash escape of `-`).
    guarded = "|".join(guarded_namespaces(settings))
    ns = 'resource.attributes["k8s.namespace.name"]'
    pod = 'resource.attributes["k8s.pod.name"]'
    return [
        f'set(attributes["{SOURCE_ATTRIBUTE}"], "proxy-stdout")',
        f'set(attributes["{TRUST_ATTRIBUTE}"], "unguarded")',
        f'set(attributes["{TRUST_ATTRIBUTE}"], "verified") where IsMatch({ns}, "^({guarded})$")',
        f'set(attributes["{TRUST_ATTRIBUTE}"], "mismatch") where attributes["namespace"] != {ns} '
        f'or attributes["pod"] != {pod}',
    ]


def agent_config(settings: Settings) -> dict[str, Any]:
    """The agent's complete collector configuration (the chart's `alternateConfig`)."""
    keep_only_records = [f'attributes["{field}"] == nil' for field in RECORD_MARKERS]
    return {
        "extensions": {
            **collector.health_extension(),
            STORAGE: {"directory": STATE_DIR, "create_directory": False},
        },
        "receivers": {
            "filelog/proxies": {
                "include": [PROXY_LOGS],
                "exclude": [OWN_LOGS],
                # With the stored offsets this only matters on a node's first start: then read
                # what the kubelet still has, rather than begin with a gap.
                "start_at": "beginning",
                "storage": STORAGE,
                "include_file_path": False,
                "include_file_name": False,
                "retry_on_failure": {"enabled": True},
                "operators": [
                    # CRI/docker line format; namespace, pod, uid and container from the path.
                    {"type": "container", "id": "container", "add_metadata_from_filepath": True},
                    {
                        "type": "json_parser",
                        "id": "record",
                        "if": 'body matches "^\\\\{"',
                        "parse_to": "attributes",
                        "on_error": "drop_quiet",
                    },
                ],
            }
        },
        "processors": {
            "memory_limiter": dict(collector.MEMORY_LIMITER),
            # The proxy's own diagnostics (JSON too, with logAsJson) are not audit records.
            "filter/records": {
                "error_mode": "ignore",
                "logs": {"log_record": keep_only_records},
            },
            "transform/trust": {
                "error_mode": "ignore",
                "log_statements": [{"context": "log", "statements": trust_statements(settings)}],
            },
            "batch": {},
        },
        "exporters": {
            EXPORTER: {
                "endpoint": f"{COLLECTOR_HOST}:{OTLP_GRPC_PORT}",
                # Plaintext only to its own sidecar, which carries it under Istio mTLS.
                "tls": {"insecure": True},
                # Survives restarts and collector outages (same host directory).
                "sending_queue": {"enabled": True, "storage": STORAGE},
                "retry_on_failure": {"enabled": True},
            }
        },
        "service": {
            "extensions": ["health_check", STORAGE],
            "pipelines": {
                "logs": {
                    "receivers": ["filelog/proxies"],
                    "processors": ["memory_limiter", "filter/records", "transform/trust", "batch"],
                    "exporters": [EXPORTER],
                }
            },
            "telemetry": collector.own_metrics(),
        },
    }


def host_volumes() -> list[dict[str, Any]]:
    """The agent's two host paths (the platform's only ones outside node exporters)."""
    return [
        {"name": "pod-logs", "hostPath": {"path": POD_LOGS, "type": "Directory"}},
        {"name": "agent-state", "hostPath": {"path": STATE_DIR, "type": "DirectoryOrCreate"}},
    ]


def helm_values(settings: Settings) -> dict[str, Any]:
    """Values of the opentelemetry-collector chart in daemonset mode."""
    resources = (
        {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
        if settings.production
        else {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    )
    return {
        "mode": "daemonset",
        "fullnameOverride": AGENT_NAME,
        "image": {
            "repository": versions.OTEL_COLLECTOR_IMAGE,
            "tag": versions.OTEL_COLLECTOR_IMAGE_TAG,
        },
        "command": {"name": "otelcol-contrib"},
        "alternateConfig": agent_config(settings),
        "serviceAccount": {
            "create": True,
            "name": SERVICE_ACCOUNT,
            # It reads files, never the Kubernetes API.
            "automountServiceAccountToken": False,
        },
        # In the mesh by opt-in, like the collector: it reaches it under mTLS, as itself.
        "podLabels": {**AGENT_LABELS, "sidecar.istio.io/inject": "true"},
        "podAnnotations": collector.metrics_annotations(),
        # No listener at all (the chart would otherwise bind OTLP and Jaeger ports on the node).
        "ports": {name: {"enabled": False} for name in collector.CHART_PORTS},
        # Every node, GPU and tainted ones included: a model pod's records are wherever it runs.
        "tolerations": [{"operator": "Exists"}],
        "extraVolumes": host_volumes(),
        "extraVolumeMounts": [
            {"name": "pod-logs", "mountPath": POD_LOGS, "readOnly": True},
            {"name": "agent-state", "mountPath": STATE_DIR},
        ],
        "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        # Root reads the kubelet's root-owned 0640 files as their owner; nothing else of root's
        # power is kept.
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": resources,
    }
