"""Istio telemetry: the audit access log, metrics and tracing (pure builders).

Every Envoy in the mesh (sidecars and the ingress gateway) writes one JSON access-log record per
request with the caller's identities, to its own stdout, and nowhere else: the node-level audit
agent (builders/audit_agent.py) reads only the `istio-proxy` containers' log files, which the
kubelet names after the container, so an application container cannot write a record that looks
like its proxy's. A network access-log service (Envoy's OTLP/gRPC ALS) would accept records from
anything holding the pod's identity, the application included, so none is used for the audit
trail. Sampled traces still go to the collector over OTLP (diagnostics, not audit).

The providers live in the istiod mesh config (`meshConfig.extensionProviders`), which the Istio
component renders: `mesh_config()` returns the fragment it merges in. The Telemetry resources
here only select providers by name.
"""

from __future__ import annotations

from typing import Any

from aimesh.builders.common import from_setting, metadata
from aimesh.namespaces import ISTIO_NAMESPACE, OBSERVABILITY_NAMESPACE
from aimesh.settings import Settings, TelemetryOverride

TELEMETRY_API = "telemetry.istio.io/v1"

# Extension provider names (meshConfig.extensionProviders[].name).
PROMETHEUS_PROVIDER = "prometheus"
STDOUT_LOG_PROVIDER = "aimesh-audit-stdout"
TRACING_PROVIDER = "aimesh-tracing"

# The collector Service the proxies send to (the chart names it <release>-opentelemetry-collector
# unless fullnameOverride is set; builders/collector.py sets it to this name).
COLLECTOR_NAME = "aimesh-otel-collector"
COLLECTOR_HOST = f"{COLLECTOR_NAME}.{OBSERVABILITY_NAMESPACE}.svc.cluster.local"
OTLP_GRPC_PORT = 4317

# Where Istio's jwt_authn filter keeps a validated token's claims: dynamic metadata namespace
# `envoy.filters.http.jwt_authn`, key `payload` (Istio's `filters.EnvoyJwtFilterPayload`). Only
# the proxy that validated the token (the ingress gateway, where RequestAuthentication applies)
# has it; `iss` + "/" + `sub` is what Istio calls the request principal.
_JWT_PAYLOAD = "envoy.filters.http.jwt_authn:payload"

# Where Envoy's RBAC filter puts the decision of Istio's dry-run ALLOW policies (namespace
# `envoy.filters.http.rbac`, keys `<shadow_rules_stat_prefix>shadow_engine_result` /
# `..._shadow_effective_policy_id`; Istio's shadow prefix for ALLOW is `istio_dry_run_allow_`).
# Set only on proxies where a dry-run policy applies: models in audit mode.
_RBAC = "envoy.filters.http.rbac"
SHADOW_ALLOW_PREFIX = "istio_dry_run_allow_"

# The audit record: field -> Envoy access-log command operator. Documented field by field in
# docs/observability.md (keep them in step; a test checks every field is documented).
ACCESS_LOG_FIELDS: dict[str, str] = {
    "start_time": "%START_TIME%",
    # Who: the mTLS identity of the peer that opened the connection (SPIFFE URI SAN,
    # spiffe://<trust domain>/ns/<ns>/sa/<sa>); empty for plaintext or external TLS clients.
    "source_principal": "%DOWNSTREAM_PEER_URI_SAN%",
    # Who, for external callers: the JWT issuer and subject at the gateway.
    "request_principal_issuer": f"%DYNAMIC_METADATA({_JWT_PAYLOAD}:iss)%",
    "request_principal_subject": f"%DYNAMIC_METADATA({_JWT_PAYLOAD}:sub)%",
    "source_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    # What: the model (host at the gateway, the workload's namespace = the model's namespace).
    "authority": "%REQ(:AUTHORITY)%",
    "namespace": "%ENVIRONMENT(POD_NAMESPACE)%",
    "workload": "%ENVIRONMENT(ISTIO_META_WORKLOAD_NAME)%",
    "pod": "%ENVIRONMENT(POD_NAME)%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "traceparent": "%REQ(TRACEPARENT)%",
    # Result: code, Envoy's response flags and the detail naming the deciding filter
    # (e.g. rbac_access_denied_matched_policy[...], jwt_authn_access_denied{...}).
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    # Audit mode: what the model's dry-run ALLOW rules decided ("allowed" / "denied") and the
    # rule that matched (ns[<ns>]-policy[<name>]-rule[<i>]); what enforcing would do.
    "shadow_allow_result": f"%DYNAMIC_METADATA({_RBAC}:{SHADOW_ALLOW_PREFIX}shadow_engine_result)%",
    "shadow_allow_policy": (
        f"%DYNAMIC_METADATA({_RBAC}:{SHADOW_ALLOW_PREFIX}shadow_effective_policy_id)%"
    ),
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration_ms": "%DURATION%",
    "upstream_service_time_ms": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%",
    # The identity the upstream proved (the model's workload principal, seen from the gateway).
    "upstream_peer_principal": "%UPSTREAM_PEER_URI_SAN%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "route_name": "%ROUTE_NAME%",
}


def extension_providers(settings: Settings) -> list[dict[str, Any]]:
    """meshConfig.extensionProviders: Prometheus metrics, the JSON audit log to the proxy's
    stdout, and OpenTelemetry tracing to the collector.

    The list REPLACES Istio's default providers when set, so `prometheus` is repeated here."""
    del settings  # same providers for every stack; the Telemetry resources select and tune them
    labels = dict(ACCESS_LOG_FIELDS)
    return [
        {"name": PROMETHEUS_PROVIDER, "prometheus": {}},
        {
            "name": STDOUT_LOG_PROVIDER,
            "envoyFileAccessLog": {"path": "/dev/stdout", "logFormat": {"labels": labels}},
        },
        {
            "name": TRACING_PROVIDER,
            "opentelemetry": {"service": COLLECTOR_HOST, "port": OTLP_GRPC_PORT},
        },
    ]


# Envoy RBAC filter counters (http.<prefix>.rbac.{allowed,denied}) are not in Istio's default
# proxy stats; the AimeshPolicyDenials alert needs `denied`. The dry-run (shadow) counters,
# http.<prefix>.rbac.istio_dry_run_allow_shadow_{allowed,denied}, feed
# AimeshAuditModeShadowDenials.
PROXY_STATS_INCLUSION_REGEXPS = [
    r"http\..*\.rbac\.(allowed|denied)",
    rf"http\..*\.rbac\.{SHADOW_ALLOW_PREFIX}shadow_(allowed|denied)",
]


def mesh_config(settings: Settings) -> dict[str, Any]:
    """The istiod `meshConfig` fragment observability needs; the Istio component deep-merges it
    into its own meshConfig (maps merge, these lists are owned here)."""
    return {
        "extensionProviders": extension_providers(settings),
        # What applies where no Telemetry resource says otherwise (the root Telemetry below
        # names its providers explicitly as well).
        "defaultProviders": {
            "metrics": [PROMETHEUS_PROVIDER],
            "accessLogging": [STDOUT_LOG_PROVIDER],
            "tracing": [TRACING_PROVIDER],
        },
        "defaultConfig": {
            "proxyStatsMatcher": {"inclusionRegexps": list(PROXY_STATS_INCLUSION_REGEXPS)},
        },
    }


def _percent(value: float) -> float:
    # Telemetry takes a double; keep YAML/JSON tidy (1.0 -> 1.0, 0.5 -> 0.5).
    return round(float(value), 4)


def mesh_telemetry(settings: Settings) -> dict[str, Any]:
    """The mesh-wide Telemetry (root namespace, no selector): audit logs for every request in
    both directions, Prometheus metrics, traces sampled at `tracingSamplingPercent`."""
    return {
        "apiVersion": TELEMETRY_API,
        "kind": "Telemetry",
        "metadata": metadata("mesh-default", ISTIO_NAMESPACE),
        "spec": {
            "accessLogging": [
                {
                    "providers": [{"name": STDOUT_LOG_PROVIDER}],
                    "match": {"mode": "CLIENT_AND_SERVER"},
                }
            ],
            "metrics": [{"providers": [{"name": PROMETHEUS_PROVIDER}]}],
            "tracing": [
                {
                    "providers": [{"name": TRACING_PROVIDER}],
                    "randomSamplingPercentage": _percent(settings.tracing_sampling_percent),
                }
            ],
        },
    }


def namespace_telemetry(override: TelemetryOverride, setting: str = "") -> dict[str, Any]:
    """A namespace's Telemetry override (fields left unset inherit the mesh-wide ones);
    `setting` is where the stack declares it (`aimesh:telemetryOverrides[0]`)."""
    spec: dict[str, Any] = {}
    if override.access_log_filter:
        spec["accessLogging"] = [
            {
                "providers": [{"name": STDOUT_LOG_PROVIDER}],
                "filter": {"expression": override.access_log_filter},
            }
        ]
    if override.tracing_sampling_percent is not None:
        spec["tracing"] = [
            {
                "providers": [{"name": TRACING_PROVIDER}],
                "randomSamplingPercentage": _percent(override.tracing_sampling_percent),
            }
        ]
    return from_setting(
        {
            "apiVersion": TELEMETRY_API,
            "kind": "Telemetry",
            "metadata": metadata("aimesh-override", override.namespace),
            "spec": spec,
        },
        setting,
    )


def collector_loop_guard(
    collector_labels: dict[str, str], name: str = "collector-no-self-logging"
) -> dict[str, Any]:
    """The audit pipeline's own sidecars (the collector's, the audit agent's) log nothing:
    their requests ARE the access-log stream, and logging them would feed it to itself."""
    return {
        "apiVersion": TELEMETRY_API,
        "kind": "Telemetry",
        "metadata": metadata(name, OBSERVABILITY_NAMESPACE),
        "spec": {
            "selector": {"matchLabels": dict(collector_labels)},
            "accessLogging": [{"disabled": True}],
            "tracing": [{"disableSpanReporting": True}],
        },
    }


def telemetry_resources(
    settings: Settings, collector_labels: dict[str, str]
) -> list[dict[str, Any]]:
    """Every Telemetry resource of the stack: mesh-wide, per-namespace overrides, loop guard."""
    return [
        mesh_telemetry(settings),
        *(
            namespace_telemetry(o, f"aimesh:telemetryOverrides[{i}]")
            for i, o in enumerate(settings.telemetry_overrides)
        ),
        collector_loop_guard(collector_labels),
    ]
