"""Prometheus rules: what the security team is paged for (pure builders).

Every expression is built from settings (thresholds) and checked in tests/unit/test_alerts.py
against `KNOWN_METRICS`: the metric names and labels Istio, Envoy, cert-manager and the
OpenTelemetry collector really emit, each with the upstream source it was taken from. A typo in
a metric or label would make an alert silently never fire; the test makes it fail instead.

"Model" below means the model's namespace (one namespace per model, builders/common.py), i.e.
Istio's `destination_service_namespace` for server-side (`reporter="destination"`) series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aimesh.builders import access, mesh_ca
from aimesh.builders.common import metadata
from aimesh.namespaces import ISTIO_NAMESPACE, OBSERVABILITY_NAMESPACE
from aimesh.settings import Settings

RULES_API = "monitoring.coreos.com/v1"
RULE_NAME = "aimesh-security"
RUNBOOKS = "docs/runbooks"


# --------------------------------------------------------------------------------------------
# What is really emitted
# --------------------------------------------------------------------------------------------

# Labels Prometheus adds from the scrape target (prometheus-operator's Pod/ServiceMonitor
# relabeling: job, instance, namespace, pod, container, endpoint; service for ServiceMonitors).
TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "container", "endpoint", "service"}
)

# Istio standard metric labels (https://istio.io/latest/docs/reference/config/metrics/, "Labels").
ISTIO_LABELS = frozenset(
    {
        "reporter",
        "source_workload",
        "source_workload_namespace",
        "source_principal",
        "source_app",
        "source_version",
        "source_cluster",
        "source_canonical_service",
        "source_canonical_revision",
        "destination_workload",
        "destination_workload_namespace",
        "destination_principal",
        "destination_app",
        "destination_version",
        "destination_service",
        "destination_service_name",
        "destination_service_namespace",
        "destination_canonical_service",
        "destination_canonical_revision",
        "destination_cluster",
        "request_protocol",
        "response_code",
        "grpc_response_status",
        "response_flags",
        "connection_security_policy",
    }
)


# What the window reconciler exports (one series each per window policy).
WINDOW_OPEN_OUTSIDE = "aimesh_window_open_outside_schedule"
WINDOW_LAST_SUCCESS = "aimesh_window_last_success_timestamp_seconds"
WINDOW_METRICS = (
    "aimesh_window_schedule_open",
    "aimesh_window_policy_open",
    WINDOW_OPEN_OUTSIDE,
    WINDOW_LAST_SUCCESS,
    "aimesh_window_reconcile_errors_total",
)


@dataclass(frozen=True)
class MetricFamily:
    """Metric names (exact, or examples of a family whose name embeds a listener) and labels."""

    names: tuple[str, ...]
    labels: frozenset[str]
    source: str


_ISTIO_DOC = "https://istio.io/latest/docs/reference/config/metrics/"
KNOWN_METRICS: tuple[MetricFamily, ...] = (
    MetricFamily(
        ("istio_requests_total",),
        ISTIO_LABELS | TARGET_LABELS,
        _ISTIO_DOC + " (Request Count, COUNTER)",
    ),
    *(
        MetricFamily(
            (f"{base}_sum", f"{base}_count"),
            ISTIO_LABELS | TARGET_LABELS,
            _ISTIO_DOC + " (DISTRIBUTION -> Prometheus histogram)",
        )
        for base in (
            "istio_request_duration_milliseconds",
            "istio_request_bytes",
            "istio_response_bytes",
        )
    ),
    *(
        MetricFamily(
            (f"{base}_bucket",),
            ISTIO_LABELS | TARGET_LABELS | {"le"},
            _ISTIO_DOC + " (DISTRIBUTION -> Prometheus histogram buckets)",
        )
        for base in (
            "istio_request_duration_milliseconds",
            "istio_request_bytes",
            "istio_response_bytes",
        )
    ),
    # Envoy's HTTP RBAC filter counters http.<stat_prefix>.rbac.{allowed,denied}. Istio's
    # bootstrap does not extract the `inbound_0.0.0.0_<port>` prefix into a tag, so the
    # listener is part of the name (as in Istio's dry-run task:
    # envoy_http_inbound_0_0_0_0_80_rbac...). Only emitted with the proxyStatsMatcher of
    # builders/telemetry.py.
    MetricFamily(
        (
            "envoy_http_inbound_0_0_0_0_8080_rbac_denied",
            "envoy_http_inbound_0_0_0_0_8080_rbac_allowed",
            "envoy_http_outbound_0_0_0_0_8443_rbac_denied",
        ),
        TARGET_LABELS,
        "https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/rbac_filter"
        " (Statistics); https://istio.io/latest/docs/tasks/security/authorization/authz-dry-run/",
    ),
    # The same filter's dry-run (shadow) counters, http.<stat_prefix>.rbac.<shadow prefix>
    # shadow_{allowed,denied}: what the model's ALLOW rules in Istio dry-run (audit mode) would
    # decide. Istio's shadow prefix for ALLOW policies is `istio_dry_run_allow_` (pilot's
    # authz builder, RBACShadowRulesAllowStatPrefix). Only emitted with builders/telemetry.py's
    # proxyStatsMatcher.
    MetricFamily(
        (
            "envoy_http_inbound_0_0_0_0_8080_rbac_istio_dry_run_allow_shadow_denied",
            "envoy_http_inbound_0_0_0_0_8080_rbac_istio_dry_run_allow_shadow_allowed",
        ),
        TARGET_LABELS,
        "https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/rbac_filter"
        " (Statistics: shadow_rules_stat_prefix); istio pilot/pkg/security/authz/builder",
    ),
    # cert-manager controller (pkg/metrics), scraped with honorLabels so `namespace`/`name`
    # are the Certificate's.
    MetricFamily(
        ("certmanager_certificate_expiration_timestamp_seconds",),
        frozenset({"name", "namespace", "issuer_name", "issuer_kind", "issuer_group"})
        | TARGET_LABELS,
        "https://cert-manager.io/docs/devops-tips/prometheus-metrics/ (pkg/metrics)",
    ),
    MetricFamily(
        ("certmanager_certificate_ready_status",),
        frozenset({"name", "namespace", "condition", "issuer_name", "issuer_kind", "issuer_group"})
        | TARGET_LABELS,
        "https://cert-manager.io/docs/devops-tips/prometheus-metrics/ (pkg/metrics)",
    ),
    MetricFamily(
        ("certmanager_issuer_ready_status",),
        frozenset({"name", "namespace", "condition"}) | TARGET_LABELS,
        "cert-manager v1.21.1 internal/collectors/issuer_collector.go",
    ),
    MetricFamily(
        ("certmanager_clusterissuer_ready_status",),
        frozenset({"name", "condition"}) | TARGET_LABELS,
        "cert-manager v1.21.1 internal/collectors/clusterissuer_collector.go",
    ),
    # istiod's CA (security/pkg/server/ca/monitoring.go).
    MetricFamily(
        ("citadel_server_root_cert_expiry_timestamp",),
        TARGET_LABELS,
        "istio/istio security/pkg/server/ca/monitoring.go",
    ),
    # istio-csr v0.17.0: its gRPC server's metrics (go-grpc-middleware providers/prometheus
    # v1.1.0, namespace cert_manager_istio_csr, pkg/server/server.go) - CreateCertificate is
    # every workload's CSR - and its own serving certificate's requests (pkg/tls/tls.go, a
    # counter registered without `_total`; exposition may append it).
    MetricFamily(
        (ISTIO_CSR_HANDLED := "cert_manager_istio_csr_grpc_server_handled_total",),
        frozenset({"grpc_type", "grpc_service", "grpc_method", "grpc_code"}) | TARGET_LABELS,
        "cert-manager/istio-csr v0.17.0 pkg/server/server.go; go-grpc-middleware "
        "providers/prometheus v1.1.0 server_metrics.go",
    ),
    MetricFamily(
        (
            "cert_manager_istio_csr_tls_provider_certificate_requests",
            "cert_manager_istio_csr_tls_provider_certificate_requests_total",
        ),
        frozenset({"success"}) | TARGET_LABELS,
        "cert-manager/istio-csr v0.17.0 pkg/tls/tls.go",
    ),
    # The collector's own telemetry (exporterhelper), merged into the sidecar's :15020 scrape.
    # Recent collectors append `_total` to counters on the Prometheus endpoint.
    # aimesh's own batch-window reconciler (aimesh/runtime/window_reconciler.py, `Metrics`),
    # merged into its sidecar's :15020 scrape; `policy` is the window AuthorizationPolicy.
    MetricFamily(
        WINDOW_METRICS,
        frozenset({"policy"}) | TARGET_LABELS,
        "aimesh/runtime/window_reconciler.py (Metrics; tests/unit/test_window_reconciler.py "
        "scrapes them)",
    ),
    MetricFamily(
        (
            "otelcol_exporter_send_failed_log_records",
            "otelcol_exporter_send_failed_log_records_total",
            "otelcol_exporter_sent_log_records_total",
            "otelcol_receiver_accepted_log_records_total",
        ),
        frozenset({"exporter", "receiver", "transport", "service_name", "service_instance_id"})
        | frozenset({"service_version", "otel_scope_name"})
        | TARGET_LABELS,
        "https://opentelemetry.io/docs/collector/internal-telemetry/ (exporterhelper metrics)",
    ),
)


# --------------------------------------------------------------------------------------------
# Recording rules: one definition of "a model's traffic", shared by alerts and the dashboard
# --------------------------------------------------------------------------------------------

MODEL_LABELS = ("destination_service_namespace", "destination_service_name")
_BY_MODEL = "by (destination_service_namespace, destination_service_name)"

REQUESTS = "aimesh:model_requests:rate5m"
RESPONSE_BYTES = "aimesh:model_response_bytes:rate5m"
ERROR_RATIO = "aimesh:model_errors:ratio5m"
LATENCY_P99 = "aimesh:model_request_duration_p99_ms:5m"


def model_selector(settings: Settings) -> str:
    """Server-side series of the configured models' namespaces."""
    namespaces = "|".join(sorted({m.ns for m in settings.models}))
    return f'reporter="destination", destination_service_namespace=~"{namespaces}"'


def recording_rules(settings: Settings) -> list[dict[str, str]]:
    """Per-model rates the alerts compare with their own history (needs >= 1 model)."""
    sel = model_selector(settings)
    return [
        {"record": REQUESTS, "expr": f"sum {_BY_MODEL} (rate(istio_requests_total{{{sel}}}[5m]))"},
        {
            "record": RESPONSE_BYTES,
            "expr": f"sum {_BY_MODEL} (rate(istio_response_bytes_sum{{{sel}}}[5m]))",
        },
        {
            "record": ERROR_RATIO,
            "expr": (
                f'sum {_BY_MODEL} (rate(istio_requests_total{{{sel}, response_code=~"5.."}}[5m]))'
                f" / sum {_BY_MODEL} (rate(istio_requests_total{{{sel}}}[5m]))"
            ),
        },
        {
            "record": LATENCY_P99,
            "expr": (
                "histogram_quantile(0.99, sum by (destination_service_namespace, "
                "destination_service_name, le) "
                f"(rate(istio_request_duration_milliseconds_bucket{{{sel}}}[5m])))"
            ),
        },
    ]


# Labels each recorded series carries (for the label check of expressions that use them).
RECORDED_LABELS: dict[str, frozenset[str]] = {
    name: frozenset(MODEL_LABELS) for name in (REQUESTS, RESPONSE_BYTES, ERROR_RATIO, LATENCY_P99)
}


# --------------------------------------------------------------------------------------------
# Alerts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    expr: str
    summary: str
    description: str
    needs_models: bool = False
    # Only when istio-csr is the mesh CA (aimesh:meshCa cert-manager).
    needs_istio_csr: bool = False
    # Only while some model is in audit mode (models[].authorization.mode: audit).
    needs_audit: bool = False
    # Only when some model has a batch window.
    needs_windows: bool = False

    @property
    def runbook(self) -> str:
        return f"{RUNBOOKS}/{self.name}.md"


def _num(value: float) -> str:
    """A threshold as PromQL text (no exponent notation, no trailing noise)."""
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


CERT_EXPIRY = "certmanager_certificate_expiration_timestamp_seconds"
ISTIOD_ROOT_EXPIRY = "citadel_server_root_cert_expiry_timestamp"


def mesh_root_expiry(settings: Settings) -> str:
    """Seconds until each mesh root expires, one series per root, whoever the CA is: istiod's
    own root (its CA's gauge), the in-cluster root Certificate (cert-manager's gauge; 0 until
    issued, so left out), or the roots of the static trust bundle, whose expiry is known from
    config: one constant series per root, labelled `root`."""
    if not mesh_ca.enabled(settings):
        return f"{ISTIOD_ROOT_EXPIRY} - time()"
    if settings.mesh_ca_issuer == "selfSigned":
        root = f'{CERT_EXPIRY}{{namespace="{ISTIO_NAMESPACE}", name="{mesh_ca.ROOT_CERTIFICATE}"}}'
        return f"({root} - time()) and {root} > 0"
    return " or ".join(
        f'label_replace(vector({r.certificate.not_after_epoch}), "root", "{r.name}", "", "")'
        " - time()"
        for r in settings.mesh_trust_roots
    )


def mesh_issuance_failures(settings: Settings) -> str:
    """What stops workloads from getting certificates with istio-csr as the CA: failing
    CreateCertificate calls (a refused token, an issuer that does not sign, a chain that does
    not verify against the trust bundle), istio-csr failing to renew its own serving
    certificate, the mesh issuer or istiod's certificate not Ready."""
    parts = [
        f'sum by (grpc_code) (rate({ISTIO_CSR_HANDLED}{{grpc_method="CreateCertificate", '
        'grpc_code!="OK"}[5m])) > 0',
        'sum (increase({__name__=~"cert_manager_istio_csr_tls_provider_certificate_requests'
        '(_total)?", success="0"}[15m])) > 0',
        f'sum by (name) (certmanager_certificate_ready_status{{namespace="{ISTIO_NAMESPACE}", '
        f'name="{mesh_ca.ISTIOD_CERTIFICATE}", condition="True"}}) == 0',
    ]
    ref = mesh_ca.issuer_ref(settings)
    if ref["group"] == "cert-manager.io" and ref["kind"] == "Issuer":
        parts.append(
            f'sum by (name) (certmanager_issuer_ready_status{{namespace="{ISTIO_NAMESPACE}", '
            f'name="{ref["name"]}", condition="True"}}) == 0'
        )
    elif ref["group"] == "cert-manager.io" and ref["kind"] == "ClusterIssuer":
        parts.append(
            f'sum by (name) (certmanager_clusterissuer_ready_status{{name="{ref["name"]}", '
            'condition="True"}) == 0'
        )
    return " or ".join(parts)


# Baselines end an hour ago, so a ramping attack does not raise its own baseline at once.
BASELINE_OFFSET = "1h"


# The window reconciler reports at least every minute while a run lives (and runs start every
# 5 minutes): 15 minutes without a successful pass is three missed slots.
WINDOW_SILENT_SECONDS = 900


def window_policies(settings: Settings) -> list[tuple[str, str]]:
    """(namespace, policy) of every batch window of the stack."""
    return [
        (m.ns, access.window_policy_name(m, c.namespace, c.service_account))
        for m in settings.models
        for c in m.callers
        if c.windows
    ]


def _window_silent(settings: Settings) -> str:
    """No successful reconcile for WINDOW_SILENT_SECONDS: stale (the last report is old) or
    absent (no report at all, per configured window: a reconciler that never ran)."""
    stale = (
        f"(time() - max by (namespace, policy) "
        f"(max_over_time({WINDOW_LAST_SUCCESS}[1h]))) > {WINDOW_SILENT_SECONDS}"
    )
    absent = [
        f'absent_over_time({WINDOW_LAST_SUCCESS}{{namespace="{ns}", policy="{policy}"}}'
        f"[{WINDOW_SILENT_SECONDS // 60}m])"
        for ns, policy in window_policies(settings)
    ]
    return " or ".join([stale, *absent])


def alerts(settings: Settings) -> list[Alert]:
    """Every aimesh alert, thresholds from settings (see docs/runbooks/<name>.md)."""
    s = settings
    window = s.alert_baseline_window
    min_rate = _num(s.alert_min_requests_per_second)
    busy = (
        f"and on (destination_service_namespace, destination_service_name) {REQUESTS} > {min_rate}"
    )
    cert_seconds = s.alert_cert_expiry_days * 86400
    audited = "|".join(sorted(m.ns for m in s.models if m.authorization.audit))
    return [
        Alert(
            "AimeshAuthenticationFailures",
            "warning",
            "sum by (reporter, source_workload, destination_service_namespace) "
            f'(rate(istio_requests_total{{response_code="401"}}[5m])) '
            f"> {_num(s.alert_auth_failures_per_second)}",
            "Many failed authentications (HTTP 401) towards "
            "{{ $labels.destination_service_namespace }}",
            "{{ $value | humanize }} 401/s reported by {{ $labels.reporter }} proxy "
            "{{ $labels.source_workload }}: expired, forged or wrongly-signed JWTs (credential "
            "stuffing, a leaked or rotated key, a misconfigured integration). A missing token is "
            "a 403, see AimeshAuthorizationDenials.",
        ),
        Alert(
            "AimeshAuthorizationDenials",
            "warning",
            "sum by (reporter, source_principal, destination_service_namespace) "
            f'(rate(istio_requests_total{{response_code="403"}}[5m])) '
            f"> {_num(s.alert_authz_denials_per_second)}",
            "Authorization denials (HTTP 403) for {{ $labels.source_principal }}",
            "{{ $value | humanize }} 403/s from {{ $labels.source_principal }} to "
            "{{ $labels.destination_service_namespace }}: a caller probing models or paths "
            "it was not granted, or a grant missing after a change.",
        ),
        Alert(
            "AimeshPolicyDenials",
            "warning",
            'sum by (namespace, pod) (rate({__name__=~"envoy_http_.+_rbac_denied"}[5m])) '
            f"> {_num(s.alert_policy_denials_per_second)}",
            "Istio AuthorizationPolicy denials at {{ $labels.namespace }}/{{ $labels.pod }}",
            "The Envoy RBAC filter of {{ $labels.pod }} denies {{ $value | humanize }} "
            "requests/s (deny-all or a DENY rule matched): lateral movement or a broken grant.",
        ),
        Alert(
            "AimeshAuditModeShadowDenials",
            "warning",
            "sum by (namespace, pod) (rate({__name__=~"
            '"envoy_http_inbound_.+_rbac_istio_dry_run_allow_shadow_denied", '
            f'namespace=~"{audited}"}}[5m])) > 0',
            "Calls that enforcing would break: shadow denials at {{ $labels.namespace }}",
            "{{ $labels.pod }} (a model in audit mode) receives {{ $value | humanize }} "
            "requests/s that its own ALLOW rules, running in dry-run, deny: callers or routes "
            "missing from the model's config. Enforcing now would refuse them.",
            needs_audit=True,
        ),
        Alert(
            "AimeshUnusualRequestVolume",
            "warning",
            f"{REQUESTS} > {_num(s.alert_volume_factor)} * "
            f"avg_over_time({REQUESTS}[{window}] offset {BASELINE_OFFSET}) {busy}",
            "Unusual request volume for model {{ $labels.destination_service_namespace }}",
            f"The request rate is above {_num(s.alert_volume_factor)}x the model's own "
            f"{window} baseline: scraping/model extraction, abuse of a leaked credential, "
            "a runaway client.",
            needs_models=True,
        ),
        Alert(
            "AimeshUnusualResponseVolume",
            "critical",
            f"{RESPONSE_BYTES} > {_num(s.alert_response_bytes_factor)} * "
            f"avg_over_time({RESPONSE_BYTES}[{window}] offset {BASELINE_OFFSET}) {busy}",
            "Unusual response bytes from model {{ $labels.destination_service_namespace }}",
            f"Response bytes/s are above {_num(s.alert_response_bytes_factor)}x the model's "
            f"own {window} baseline: possible data exfiltration or model extraction.",
            needs_models=True,
        ),
        Alert(
            "AimeshModelErrorRate",
            "warning",
            f"{ERROR_RATIO} > {_num(s.alert_error_ratio)} {busy}",
            "5xx errors from model {{ $labels.destination_service_namespace }}",
            "{{ $value | humanizePercentage }} of requests fail with 5xx: malformed or "
            "adversarial inputs crashing the runtime, resource exhaustion, a bad rollout.",
            needs_models=True,
        ),
        Alert(
            "AimeshModelLatencyHigh",
            "warning",
            f"{LATENCY_P99} > {s.alert_latency_p99_ms} {busy}",
            "High p99 latency for model {{ $labels.destination_service_namespace }}",
            "p99 latency is {{ $value | humanize }} ms: oversized or adversarial inputs "
            "(resource-exhaustion attacks), saturation, a slow canary.",
            needs_models=True,
        ),
        Alert(
            "AimeshCertificateExpiringSoon",
            "warning",
            # cert-manager reports 0 for a Certificate that was never issued (no
            # status.notAfter yet, e.g. an ACME order in progress): not "expiring".
            f"{CERT_EXPIRY} - time() < {cert_seconds} and {CERT_EXPIRY} > 0",
            "Certificate {{ $labels.namespace }}/{{ $labels.name }} expires soon",
            f"The certificate expires in less than {s.alert_cert_expiry_days} days and "
            "cert-manager has not renewed it (issuer down, ACME challenge failing).",
        ),
        Alert(
            "AimeshMeshRootCertExpiringSoon",
            "critical",
            f"({mesh_root_expiry(s)}) < {s.alert_mesh_root_expiry_days * 86400}",
            "A mesh root certificate expires soon",
            f"A root CA of the mesh expires in less than {s.alert_mesh_root_expiry_days} days "
            "({{ $labels.root }}{{ $labels.name }}); when it does, every mTLS handshake that "
            "relies on it fails. Rotate it now (docs/pki.md): a rotation takes three changes, "
            "each one workload certificate lifetime apart.",
        ),
        Alert(
            "AimeshMeshCertIssuanceFailing",
            "critical",
            mesh_issuance_failures(s),
            "Workload certificates are not being issued",
            "istio-csr fails to sign workload certificates (code {{ $labels.grpc_code }}), or "
            "its issuer or istiod's certificate is not Ready ({{ $labels.name }}): new pods get "
            "no mesh identity and running ones lose theirs when their certificate expires "
            f"(within {s.mesh_cert_lifetime}).",
            needs_istio_csr=True,
        ),
        Alert(
            "AimeshAuditExportFailing",
            "critical",
            "sum by (exporter) (rate("
            '{__name__=~"otelcol_exporter_send_failed_log_records(_total)?"}[5m])) > 0',
            "Access logs are not reaching SIEM sink {{ $labels.exporter }}",
            "The collector fails to export audit records: the SIEM misses who called which "
            "model until this is fixed (records are retried, then dropped).",
        ),
        Alert(
            "AimeshWindowOpenOutsideSchedule",
            "critical",
            f"max by (namespace, policy) (max_over_time({WINDOW_OPEN_OUTSIDE}[10m])) > 0",
            "Batch window {{ $labels.namespace }}/{{ $labels.policy }} was open outside its "
            "schedule",
            "The window reconciler found the policy open while its schedule had been closed "
            "(a missed or failed close, or a hand edit), or in a shape the program does not "
            "define, and set it back. Find out who or what changed it.",
            needs_windows=True,
        ),
        Alert(
            "AimeshWindowReconcilerSilent",
            "critical",
            _window_silent(settings),
            "The reconciler of batch window {{ $labels.namespace }}/{{ $labels.policy }} "
            "reports nothing",
            f"No successful reconcile for {WINDOW_SILENT_SECONDS // 60} minutes: the window "
            "is neither opened nor closed on schedule, and an open policy stays open.",
            needs_windows=True,
        ),
    ]


def active_alerts(settings: Settings) -> list[Alert]:
    """The alerts that apply to this stack (model alerts need at least one model; istio-csr's
    need it to be the mesh CA; the audit-mode alert a model in audit mode; window alerts a batch
    window)."""
    has_models = bool(settings.models)
    istio_csr = mesh_ca.enabled(settings)
    auditing = any(m.authorization.audit for m in settings.models)
    has_windows = bool(window_policies(settings))
    return [
        a
        for a in alerts(settings)
        if (has_models or not a.needs_models)
        and (istio_csr or not a.needs_istio_csr)
        and (auditing or not a.needs_audit)
        and (has_windows or not a.needs_windows)
    ]


def prometheus_rule(settings: Settings) -> dict[str, Any]:
    """The PrometheusRule with the recording rules and every active alert."""
    groups: list[dict[str, Any]] = []
    if settings.models:
        groups.append({"name": "aimesh-model-traffic", "rules": recording_rules(settings)})
    groups.append(
        {
            "name": "aimesh-security",
            "rules": [
                {
                    "alert": a.name,
                    "expr": a.expr,
                    "for": settings.alert_pending_for,
                    "labels": {"severity": a.severity, "aimesh_alert": "true"},
                    "annotations": {
                        "summary": a.summary,
                        "description": a.description,
                        "runbook": a.runbook,
                    },
                }
                for a in active_alerts(settings)
            ],
        }
    )
    return {
        "apiVersion": RULES_API,
        "kind": "PrometheusRule",
        "metadata": metadata(RULE_NAME, OBSERVABILITY_NAMESPACE),
        "spec": {"groups": groups},
    }
