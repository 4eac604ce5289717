"""The one reader of `pulumi.Config`: stack config -> one frozen, typed, validated `Settings`.

Every key of the `aimesh` namespace is modelled here (and declared, typed and described in
`Pulumi.yaml`). Models forbid unknown keys, so a typo fails loudly instead of silently falling
back to a default. Errors name the full key path (`aimesh:models[1].callers[0].role`) and the
allowed values, and are raised before any resource is registered.

The defaults are the strict posture; every weakening (ALLOW_ANY egress, no masking in a
non-production stack, ...) is an explicit, visible value in a stack file.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from aimesh.config_source import ConfigSource, nearest
from aimesh.namespaces import PLATFORM_NAMESPACES
from aimesh.pem import CaCertificate, read_ca_certificate, read_ca_chain, signing_root
from aimesh.runtime import schedule

NAMESPACE = "aimesh"

# ---------------------------------------------------------------------------------------------
# Reusable field types
# ---------------------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1035 label: use lowercase letters, digits and '-', "
            "start with a letter, at most 63 characters"
        )
    return value


def _hostname(value: str) -> str:
    if "*" in value:
        raise ValueError(f"{value!r}: wildcard hosts are not allowed; list each exact host")
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(
            f"{value!r} is not a valid lowercase DNS hostname (e.g. 'api.example.com')"
        )
    return value


def _https_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme != "https" or not parsed.netloc:
        raise ValueError(
            f"{value!r} must be an https:// URL (keys fetched over http can be forged)"
        )
    return value


def _cron(value: str) -> str:
    try:
        schedule.parse(value)
    except schedule.CronError as exc:
        raise ValueError(f"{exc} (a 5-field cron schedule, e.g. '0 1 * * *')") from None
    return value


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '500m', '2Gi', '1')")
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Hostname = Annotated[str, AfterValidator(_hostname)]
HttpsUrl = Annotated[str, AfterValidator(_https_url)]
Cron = Annotated[str, AfterValidator(_cron)]
Quantity = Annotated[str, AfterValidator(_quantity)]
Role = Literal["admin", "invoke", "read"]

# Storage schemes KServe's storage initializer understands and that keep model bytes encrypted
# in transit (or never leave the cluster). Plain http:// is refused: model theft/tampering.
STORAGE_SCHEMES = ("gs", "s3", "https", "pvc", "hf", "oci", "azure")


def _storage_uri(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in STORAGE_SCHEMES:
        allowed = ", ".join(f"{s}://" for s in STORAGE_SCHEMES)
        raise ValueError(f"{value!r}: storage scheme must be one of {allowed}")
    if not parsed.netloc:
        raise ValueError(f"{value!r} has no bucket/host part")
    return value


StorageUri = Annotated[str, AfterValidator(_storage_uri)]

# With the `v`: stack config reaches the program as JSON text, where a bare 1.30 is the number 1.3.
_KUBERNETES_VERSION = re.compile(r"^v1\.[0-9]+(\.[0-9]+)?$")


def _kubernetes_version(value: Any) -> str:
    if not isinstance(value, str) or not _KUBERNETES_VERSION.match(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes version with its v (e.g. 'v1.35' or 'v1.35.2')"
        )
    return value


def _label_pair(value: str) -> str:
    key, sep, label = value.partition("=")
    if not sep or not key or "," in value or not re.match(r"^[A-Za-z0-9._/-]+$", key + label):
        raise ValueError(f"{value!r} is not one label as key=value (e.g. 'k8s-app=kube-dns')")
    return value


def _cidr(value: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a CIDR block (e.g. '169.254.20.10/32'): {exc}"
        ) from None
    return value


KubernetesVersion = Annotated[str, BeforeValidator(_kubernetes_version)]
LabelPair = Annotated[str, AfterValidator(_label_pair)]
Cidr = Annotated[str, AfterValidator(_cidr)]


class _Model(BaseModel):
    """Base for every config object: camelCase keys, unknown keys rejected, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
    )


# ---------------------------------------------------------------------------------------------
# Platform
# ---------------------------------------------------------------------------------------------
#
# Pulumi's project config schema can type only strings, integers, booleans and arrays of those
# (pulumi/pulumi#11321), so every platform setting is a flat, typed key declared in Pulumi.yaml.
# Only list-of-object keys (models, integrations, sinks, ...) are objects; their schema is the
# pydantic model below, published as docs/config.schema.json.


class IntegrationSettings(_Model):
    """An external caller authenticated by JWT at the ingress gateway."""

    name: DnsLabel
    issuer: str = Field(min_length=1)
    jwks_uri: HttpsUrl
    audiences: list[str] = Field(min_length=1)
    # Optional: exact subjects (`sub`) allowed; empty means any subject of this issuer.
    subjects: list[Annotated[str, Field(min_length=1)]] = []

    @model_validator(mode="after")
    def _no_wildcards(self) -> Self:
        # Both become the request principal `<issuer>/<sub>` that Istio matches with `*` as a
        # wildcard: a `*` here would silently widen who is allowed.
        if "*" in self.issuer or any("*" in s for s in self.subjects):
            raise ValueError(
                f"integration {self.name!r}: 'issuer' and 'subjects' must not contain '*' "
                "(list exact subjects, or none for any subject of the issuer)"
            )
        return self


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class RateLimit(_Model):
    """Envoy local rate limit: a token bucket of `requests` per `unit`."""

    requests: int = Field(ge=1, le=1_000_000)
    unit: Literal["second", "minute", "hour"] = "second"


_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}


# The shortest batch window accepted: three of the window reconciler's 5-minute slots
# (builders/secure_model/windows.py), so every window is seen open by a few runs.
MIN_WINDOW_MINUTES = 15


class AccessWindow(_Model):
    """A batch window: access opens on `open` and closes on `close` (cron, in `timeZone`).

    Both are read exactly as the window reconciler reads them (aimesh/runtime/schedule.py).
    Every opening in the coming year, both DST changes included, must last at least
    MIN_WINDOW_MINUTES."""

    open: Cron
    close: Cron
    time_zone: str = "Etc/UTC"

    @model_validator(mode="after")
    def _window(self) -> Self:
        # CronJob.spec.timeZone takes IANA names; a typo would only fail at apply time.
        import zoneinfo

        known = zoneinfo.available_timezones()
        if known and self.time_zone not in known:
            raise ValueError(
                f"timeZone {self.time_zone!r} is not an IANA time zone (e.g. 'Europe/Berlin')"
            )
        if self.open == self.close:
            raise ValueError("'open' and 'close' are the same schedule: the window never opens")
        window = schedule.Window.parse(self.open, self.close, self.time_zone)
        try:
            schedule.check_length(
                window, MIN_WINDOW_MINUTES, datetime.datetime.now(datetime.UTC).date()
            )
        except schedule.WindowError as exc:
            raise ValueError(
                f"{exc} (open {self.open!r}, close {self.close!r}); move 'open' earlier or "
                f"'close' later"
            ) from None
        return self


class Caller(_Model):
    """An in-mesh workload allowed to call a model, identified by its mTLS principal."""

    namespace: DnsLabel
    service_account: DnsLabel
    role: Role = "invoke"
    # Batch callers: access only inside these windows (default: always).
    windows: list[AccessWindow] = []
    rate_limit: RateLimit | None = None


class IntegrationGrant(_Model):
    """Grants a configured integration (by name) a role on this model through the gateway."""

    name: DnsLabel
    role: Role = "invoke"
    rate_limit: RateLimit | None = None


class Toleration(_Model):
    key: str
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Resources(_Model):
    cpu: Quantity = "1"
    memory: Quantity = "2Gi"
    gpu: int = Field(default=0, ge=0, le=16)
    # The extended resource name GPUs are requested under.
    gpu_resource: str = "nvidia.com/gpu"


class Canary(_Model):
    """A second version of the model taking `trafficPercent` of requests (0 = instant rollback)."""

    storage_uri: StorageUri
    traffic_percent: int = Field(ge=0, le=100)
    runtime_version: str | None = None


class Subject(_Model):
    """A Kubernetes RBAC subject allowed to manage a model's InferenceServices."""

    kind: Literal["User", "Group"]
    name: str = Field(min_length=1)


def _calendar_date(value: Any) -> Any:
    """A calendar day: `2027-01-15` (YAML may hand over a date, Pulumi's JSON a string, and some
    YAML parsers a midnight timestamp); anything else is left for pydantic to reject."""
    if isinstance(value, datetime.datetime):
        return value.date() if value.time() == datetime.time(0) else value
    if isinstance(value, str):
        text = value.strip()
        for suffix in ("T00:00:00Z", "T00:00:00"):
            text = text.removesuffix(suffix)
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError(f'{value!r} is not a calendar date; write it as "YYYY-MM-DD"')
        return text
    return value


CalendarDate = Annotated[datetime.date, BeforeValidator(_calendar_date)]


class Authorization(_Model):
    """How a model's AuthorizationPolicies act: `enforce` (the default) or `audit`.

    In audit mode the model's own ALLOW rules are deployed in Istio dry-run (their decisions are
    logged, not enforced) and one enforced ALLOW admits authenticated peers of the mesh only;
    the deny-all, the DENY of operator paths, JWT validation, mTLS STRICT, NetworkPolicies,
    egress and rate limits stay enforced (docs/security.md, "Audit mode"). It is a temporary
    state: `reason` and `until` are required, and the policy pack refuses an `until` in the
    past or too far ahead."""

    mode: Literal["enforce", "audit"] = "enforce"
    # Why the model is not enforced (a ticket, the migration it belongs to).
    reason: str | None = Field(default=None, min_length=1)
    # The last day audit mode may stay on (UTC); the policy pack blocks deployments after it.
    until: CalendarDate | None = None

    @model_validator(mode="after")
    def _audit_needs_reason_and_end(self) -> Self:
        if self.mode == "audit":
            missing = [k for k in ("reason", "until") if getattr(self, k) is None]
            if missing:
                raise ValueError(
                    f"mode 'audit' needs {' and '.join(repr(k) for k in missing)}: say why the "
                    "model is not enforced and the last day it may stay so (until: "
                    '"YYYY-MM-DD", at most 30 days ahead by default)'
                )
        elif self.reason is not None or self.until is not None:
            raise ValueError(
                "'reason' and 'until' belong to mode 'audit'; remove them or set mode: audit"
            )
        return self

    @property
    def audit(self) -> bool:
        return self.mode == "audit"


class ModelSettings(_Model):
    name: DnsLabel
    # Defaults to the model name.
    namespace: DnsLabel | None = None
    # KServe model format (sklearn, xgboost, onnx, pytorch, tensorflow, huggingface, triton, ...).
    format: str = Field(min_length=1)
    runtime: str | None = None
    protocol: Literal["v1", "v2"] = "v1"
    storage_uri: StorageUri
    resources: Resources = Resources()
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = []
    min_replicas: int = Field(default=1, ge=0, le=100)
    max_replicas: int = Field(default=1, ge=1, le=100)
    callers: list[Caller] = []
    integrations: list[IntegrationGrant] = []
    managers: list[Subject] = []
    rate_limit: RateLimit | None = None
    # Extra egress hosts (exact names) this model may reach besides its storage host.
    egress_allowlist: list[Hostname] = []
    canary: Canary | None = None
    # None: on in non-production stacks, off in production.
    response_masking: bool | None = None
    # The host the storage initializer downloads from, when it cannot be derived from the
    # storage URI (S3-compatible endpoints such as MinIO, regional S3 hosts).
    storage_host: Hostname | None = None
    # Off only for runtimes that must write outside /tmp (a visible weakening).
    read_only_root_filesystem: bool = True
    # Where the model server serves Prometheus metrics; unset: its KServe runtime's port.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # enforce (default) | audit with a reason and an end date (docs/rollout.md).
    authorization: Authorization = Authorization()

    @model_validator(mode="after")
    def _replicas(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) exceeds maxReplicas ({self.max_replicas})"
            )
        return self

    @model_validator(mode="after")
    def _callers(self) -> Self:
        seen: set[tuple[str, str]] = set()
        for caller in self.callers:
            key = (caller.namespace, caller.service_account)
            if key in seen:
                raise ValueError(
                    f"caller {caller.namespace}/{caller.service_account} is listed twice; "
                    "give each service account one entry (one role)"
                )
            seen.add(key)
        _unique("integrations", [g.name for g in self.integrations], "name")
        # Envoy's local rate limiter requires every per-caller bucket's fill interval to be a
        # multiple of the model-wide bucket's: a caller's unit may not be shorter than the model's.
        if self.rate_limit is not None:
            floor = _UNIT_SECONDS[self.rate_limit.unit]
            limited = [(c.namespace + "/" + c.service_account, c.rate_limit) for c in self.callers]
            limited += [(g.name, g.rate_limit) for g in self.integrations]
            for who, limit in limited:
                if limit is not None and _UNIT_SECONDS[limit.unit] < floor:
                    raise ValueError(
                        f"rateLimit of {who!r} is per {limit.unit} but the model's is per "
                        f"{self.rate_limit.unit}: use a unit of {self.rate_limit.unit} or longer"
                    )
        return self

    @property
    def ns(self) -> str:
        return self.namespace or self.name


# ---------------------------------------------------------------------------------------------
# Observability (components/observability.py, builders/telemetry.py, collector.py, alerts.py)
# ---------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^[1-9][0-9]*(s|m|h|d|w)$")
_HOST_PORT = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[0-9]{1,5}$")


def _duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"{value!r} is not a Prometheus duration (e.g. '30s', '5m', '1h', '1d')")
    return value


Duration = Annotated[str, AfterValidator(_duration)]
SinkType = Literal["otlp", "splunkHec", "syslog", "file"]


class SiemSink(_Model):
    """Where the OpenTelemetry collector exports the mesh's access logs (the audit trail)."""

    name: DnsLabel
    type: SinkType
    # otlp and syslog: `host:port`; splunkHec: the HEC URL (https://.../services/collector).
    endpoint: str | None = None
    # A Pulumi secret (`pulumi config set --path --secret 'siemSinks[0].token' ...`): the OTLP
    # bearer token or the Splunk HEC token. Lands in a Kubernetes Secret, never in the ConfigMap.
    token: SecretStr | None = None
    # What the sink receives; only otlp sinks can take traces.
    signals: list[Literal["logs", "traces"]] = ["logs"]
    # TLS is verified; `insecure: true` (plaintext) is refused in production.
    insecure: bool = False
    # splunkHec.
    index: str | None = None
    sourcetype: str = "aimesh:istio:accesslog"
    # syslog.
    protocol: Literal["rfc5424", "rfc3164"] = "rfc5424"
    # file: JSON lines inside the collector pod, rotated (not durable: use for dev or a log agent).
    path: str = "/var/log/aimesh/audit.jsonl"
    max_megabytes: int = Field(default=100, ge=1, le=10_000)
    max_days: int = Field(default=7, ge=1, le=3650)
    max_backups: int = Field(default=5, ge=1, le=1000)

    @model_validator(mode="after")
    def _fields_for_type(self) -> Self:
        where = f"siem sink {self.name!r} ({self.type})"
        if self.type in ("otlp", "syslog") and not _HOST_PORT.match(self.endpoint or ""):
            raise ValueError(f"{where}: 'endpoint' must be host:port (e.g. siem.corp:4317)")
        if self.type == "splunkHec":
            if not self.endpoint:
                raise ValueError(f"{where}: 'endpoint' (the HEC https:// URL) is required")
            _https_url(self.endpoint)
            # A missing token is reported by `missing_values`, with the command that sets it.
        if "traces" in self.signals and self.type != "otlp":
            raise ValueError(f"{where}: only otlp sinks can receive traces")
        if self.type == "file" and not self.path.startswith("/var/log/aimesh/"):
            raise ValueError(f"{where}: 'path' must be under /var/log/aimesh/ (the mounted volume)")
        return self


class AlertReceiver(_Model):
    """An Alertmanager receiver; aimesh alerts of the listed severities are routed to it."""

    name: DnsLabel
    type: Literal["webhook", "slack", "pagerduty"]
    # A Pulumi secret: the webhook URL, the Slack incoming-webhook URL or the PagerDuty routing
    # key. Mounted into Alertmanager as a file (`*_file` settings), never in the chart values.
    # Required: a missing one is reported by `missing_values`, with the command that sets it.
    credential: SecretStr | None = None
    # slack only.
    channel: str | None = None
    severities: list[Literal["critical", "warning", "info"]] = Field(
        default=["critical", "warning"], min_length=1
    )


class TelemetryOverride(_Model):
    """Per-namespace Istio Telemetry settings on top of the mesh-wide defaults."""

    namespace: DnsLabel
    tracing_sampling_percent: float | None = Field(default=None, ge=0, le=100)
    # A CEL expression: only matching requests are logged (e.g. 'response.code >= 400'). There
    # is deliberately no switch to turn a namespace's access logs off: they are the audit trail.
    access_log_filter: str | None = None

    @model_validator(mode="after")
    def _filter_keeps_logging(self) -> Self:
        if self.access_log_filter is not None and self.access_log_filter.strip() in ("", "false"):
            raise ValueError(
                f"telemetryOverrides {self.namespace!r}: accessLogFilter "
                f"{self.access_log_filter!r} would log nothing; access logs are the audit trail"
            )
        return self


# ---------------------------------------------------------------------------------------------
# Mesh PKI (builders/mesh_ca.py, docs/pki.md)
# ---------------------------------------------------------------------------------------------

_GO_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
# Workload certificate lifetime: istio-agent renews at half of it, so below 10 minutes the CA
# sees a request per workload every few minutes; above a day a stolen certificate stays useful
# for longer than Istio's own default (24h).
MESH_CERT_MIN_SECONDS = 600
MESH_CERT_MAX_SECONDS = 86_400
# Unset meshCertDuration: istio-csr's default (NIST SP 800-204A) or Istio's.
MESH_CERT_DEFAULTS = {"cert-manager": "1h", "istiod": "24h"}


def go_duration_seconds(value: str) -> int:
    """Seconds of a Go duration of whole hours/minutes/seconds ("1h", "90m", "1h30m")."""
    match = _GO_DURATION.match(value)
    if not value or match is None:
        raise ValueError(f"{value!r} is not a duration like '30m', '1h' or '1h30m'")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _mesh_cert_duration(value: str) -> str:
    seconds = go_duration_seconds(value)
    if not MESH_CERT_MIN_SECONDS <= seconds <= MESH_CERT_MAX_SECONDS:
        raise ValueError(
            f"{value!r} is outside 10m..24h: shorter floods the CA with renewals, longer keeps "
            "a stolen workload certificate useful for too long"
        )
    return value


MeshCertDuration = Annotated[str, AfterValidator(_mesh_cert_duration)]
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")


def _kind(value: str) -> str:
    if not _KIND.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes kind (e.g. 'Issuer', 'ClusterIssuer')")
    return value


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes object name (lowercase letters, digits, '-', '.')"
        )
    return value


Kind = Annotated[str, AfterValidator(_kind)]
ObjectName = Annotated[str, AfterValidator(_dns_subdomain)]


class TrustRoot(_Model):
    """A root CA every workload trusts (the mesh trust bundle). Public: never a secret."""

    name: DnsLabel
    pem: str = Field(min_length=1)

    @model_validator(mode="after")
    def _parses(self) -> Self:
        try:
            _read_root(self.pem)
        except ValueError as exc:
            raise ValueError(f"meshTrustRoots {self.name!r}: pem {exc}") from None
        return self

    @property
    def certificate(self) -> CaCertificate:
        return _read_root(self.pem)


@lru_cache(maxsize=64)
def _read_root(pem: str) -> CaCertificate:
    return read_ca_certificate(pem)


@lru_cache(maxsize=16)
def _read_chain(pem: str) -> list[CaCertificate]:
    return read_ca_chain(pem)


# ---------------------------------------------------------------------------------------------
# The whole stack
# ---------------------------------------------------------------------------------------------


class Settings(_Model):
    """Everything one stack is configured with (keys as in `Pulumi.<stack>.yaml`, camelCase)."""

    environment: Literal["dev", "staging", "production"] = "dev"

    # Cluster: a kind cluster the program creates, an existing one, or YAML rendered to a folder.
    cluster_mode: Literal["kind", "existing", "render"] = "kind"
    cluster_name: DnsLabel = "aimesh"
    # kind only: host ports mapped to the ingress gateway's NodePorts.
    kind_http_port: int = Field(default=8080, ge=1, le=65535)
    kind_https_port: int = Field(default=8443, ge=1, le=65535)
    # existing only: a kubeconfig path or its YAML content, and/or a context in it.
    kubeconfig: str | None = None
    kube_context: str | None = None
    # render only: where the provider writes the manifests, and the Kubernetes they are for
    # (existing clusters are asked; kind runs the pinned node image).
    render_dir: str = "rendered"
    kubernetes_version: KubernetesVersion = "v1.35"
    # DNS egress from model namespaces: the DNS pods (one label each, in `dnsNamespace`) and
    # addresses (NodeLocal DNSCache listens on a link-local address on every node).
    dns_namespace: DnsLabel = "kube-system"
    dns_pod_labels: list[LabelPair] = Field(
        default=["k8s-app=kube-dns", "k8s-app=node-local-dns"], min_length=1
    )
    dns_egress_cidrs: list[Cidr] = ["169.254.20.10/32"]

    # Where Helm charts come from (docs/platform.md, "Offline chart sources"): the upstream
    # repositories; a directory of `helm pull` archives (<chart>-<version>.tgz) or unpacked
    # <chart>/ folders; or one mirror (an https Helm repository or an oci:// registry) serving
    # the same charts at the same pinned versions. Air-gapped clusters use the last two.
    chart_source: Literal["upstream", "directory", "mirror"] = "upstream"
    chart_directory: str | None = None
    chart_mirror: str | None = None
    # Platform components the cluster already runs (installed by the platform team): aimesh
    # does not install them, checks that their CRDs exist, and still registers every security
    # object of its own on top of them.
    bring_your_own: list[Literal["certManager", "istio", "kserve", "monitoring", "collector"]] = []
    # The escape hatch: further manifests registered as they are, after the platform. The
    # policy pack judges them like every other object, so this cannot quietly weaken anything.
    extra_objects: list[dict[str, Any]] = []

    # Issuer of gateway certificates. selfSignedCA: a self-signed root -> CA issuer chain in the
    # cluster (dev); acme: an ACME server, HTTP-01 through the ingress gateway; existing: an
    # Issuer/ClusterIssuer the platform team already runs (Vault, a corporate CA, ...).
    issuer_type: Literal["selfSignedCA", "acme", "existing"] = "selfSignedCA"
    acme_server: HttpsUrl = "https://acme-v02.api.letsencrypt.org/directory"
    acme_email: str | None = None
    existing_issuer_name: str | None = None
    existing_issuer_kind: Literal["ClusterIssuer", "Issuer"] = "ClusterIssuer"
    # Keys of certificates aimesh requests: ECDSA 256+/RSA 2048+ only.
    cert_key_algorithm: Literal["ECDSA", "RSA"] = "ECDSA"
    cert_key_size: int = 256

    # Istio.
    trust_domain: Hostname = "cluster.local"
    # Who signs workload certificates (docs/pki.md). istiod: istiod's built-in CA and its own
    # self-signed root (dev). cert-manager: istio-csr, signing through a cert-manager issuer;
    # istiod's CA is off.
    mesh_ca: Literal["istiod", "cert-manager"] = "istiod"
    # cert-manager only. selfSigned: an in-cluster self-signed root -> CA Issuer (dev).
    # existing: your PKI, with its root(s) in meshTrustRoots: either an intermediate CA of it
    # (meshCaCertificate, public, and meshCaKey, a Pulumi secret), which aimesh turns into a
    # CA Issuer, or an issuer you already run (meshCaIssuerName, e.g. Vault).
    mesh_ca_issuer: Literal["selfSigned", "existing"] = "selfSigned"
    mesh_ca_certificate: str | None = None
    mesh_ca_key: SecretStr | None = None
    mesh_ca_issuer_name: ObjectName | None = None
    mesh_ca_issuer_kind: Kind = "Issuer"
    mesh_ca_issuer_group: Hostname = "cert-manager.io"
    # Lifetime of workload certificates; unset: MESH_CERT_DEFAULTS for the mode.
    mesh_cert_duration: MeshCertDuration | None = None
    # The trust bundle: every root a workload accepts. Rotation is a sequence of config changes
    # (docs/pki.md): add the new root, switch the issuer, remove the old root.
    mesh_trust_roots: list[TrustRoot] = []
    # meshCaIssuerName only: the root of meshTrustRoots that issuer chains to, needed while the
    # bundle holds more than one (a rotation). With meshCaCertificate it is read from the chain.
    mesh_ca_issuing_root: DnsLabel | None = None
    # REGISTRY_ONLY: pods reach only hosts with a ServiceEntry. ALLOW_ANY is a visible weakening.
    outbound_traffic_policy: Literal["REGISTRY_ONLY", "ALLOW_ANY"] = "REGISTRY_ONLY"
    # Unset: NodePort on kind, LoadBalancer elsewhere.
    gateway_service_type: Literal["NodePort", "LoadBalancer", "ClusterIP"] | None = None
    istiod_replicas: int = Field(default=1, ge=1, le=10)
    gateway_replicas: int = Field(default=1, ge=1, le=20)

    # KServe: the ClusterServingRuntimes of kserve-runtime-configs (sklearn, xgboost, triton...).
    kserve_runtimes: bool = True
    kserve_controller_replicas: int = Field(default=1, ge=1, le=5)

    # Ingress: HTTPS only (HTTP redirects), one host per model under `gatewayDomain`.
    gateway_domain: Hostname = "models.aimesh.local"
    min_tls_version: Literal["TLSV1_2", "TLSV1_3"] = "TLSV1_2"

    integrations: list[IntegrationSettings] = []
    models: list[ModelSettings] = []

    # Observability (components/observability.py).
    observability: bool = True
    tracing_sampling_percent: float = Field(default=1.0, ge=0, le=100)
    telemetry_overrides: list[TelemetryOverride] = []
    siem_sinks: list[SiemSink] = []
    collector_replicas: int = Field(default=1, ge=1, le=10)
    # kube-prometheus-stack: Prometheus, Alertmanager, Grafana.
    prometheus_retention: Duration = "15d"
    # A PersistentVolumeClaim size for Prometheus; unset keeps the TSDB in an emptyDir (dev).
    prometheus_storage_size: Quantity | None = None
    # The chart's own Kubernetes monitoring (node exporter, kube-state-metrics, default rules).
    cluster_monitoring: bool = True
    grafana: bool = True
    # Unset: the Grafana chart generates a random admin password into its Secret.
    grafana_admin_password: SecretStr | None = None
    alert_receivers: list[AlertReceiver] = []
    # Alert thresholds (builders/alerts.py; docs/runbooks/<alert>.md).
    alert_pending_for: Duration = "5m"
    alert_auth_failures_per_second: float = Field(default=0.5, gt=0)
    alert_authz_denials_per_second: float = Field(default=0.5, gt=0)
    alert_policy_denials_per_second: float = Field(default=0.5, gt=0)
    alert_volume_factor: float = Field(default=3.0, gt=1)
    alert_response_bytes_factor: float = Field(default=3.0, gt=1)
    alert_baseline_window: Duration = "1d"
    alert_min_requests_per_second: float = Field(default=0.1, ge=0)
    alert_error_ratio: float = Field(default=0.05, gt=0, lt=1)
    alert_latency_p99_ms: int = Field(default=2000, ge=1)
    alert_cert_expiry_days: int = Field(default=14, ge=1, le=365)
    # A mesh root this close to expiry raises AimeshMeshRootCertExpiringSoon: a root rotation
    # takes three changes, each waiting a workload certificate lifetime, plus change control.
    alert_mesh_root_expiry_days: int = Field(default=60, ge=1, le=3650)

    @model_validator(mode="after")
    def _observability_fields(self) -> Self:
        _unique("siemSinks", [s.name for s in self.siem_sinks], "name")
        _unique("alertReceivers", [r.name for r in self.alert_receivers], "name")
        _unique("telemetryOverrides", [o.namespace for o in self.telemetry_overrides], "namespace")
        if self.production:
            for sink in self.siem_sinks:
                if sink.insecure:
                    raise ValueError(
                        f"siem sink {sink.name!r}: 'insecure: true' sends the audit trail in "
                        "plaintext; not allowed in production"
                    )
        return self

    @model_validator(mode="after")
    def _platform_fields(self) -> Self:
        # clusterMode existing without kubeconfig/kubeContext: reported by `missing_values`.
        if self.kind_http_port == self.kind_https_port:
            raise ValueError(
                f"kindHttpsPort: must differ from kindHttpPort (both are {self.kind_http_port})"
            )
        if self.issuer_type == "acme" and not self.acme_email:
            raise ValueError("acmeEmail: required when issuerType is 'acme' (the account contact)")
        if self.issuer_type == "existing" and not self.existing_issuer_name:
            raise ValueError("existingIssuerName: required when issuerType is 'existing'")
        allowed = {"ECDSA": (256, 384), "RSA": (2048, 3072, 4096)}[self.cert_key_algorithm]
        if self.cert_key_size not in allowed:
            raise ValueError(
                f"certKeySize: {self.cert_key_size} is too weak or unsupported for "
                f"certKeyAlgorithm {self.cert_key_algorithm}; "
                f"must be one of {', '.join(map(str, allowed))}"
            )
        return self

    @model_validator(mode="after")
    def _sources(self) -> Self:
        if self.chart_source == "directory" and not self.chart_directory:
            raise ValueError(
                "chartDirectory: chartSource 'directory' needs the folder holding the charts "
                "(<chart>-<version>.tgz as `helm pull` writes them, or unpacked <chart>/)"
            )
        if self.chart_source == "mirror" and not self.chart_mirror:
            raise ValueError(
                "chartMirror: chartSource 'mirror' needs the mirror's https:// Helm repository "
                "or oci:// registry base"
            )
        if self.chart_directory and self.chart_source != "directory":
            raise ValueError("chartDirectory: only used with chartSource 'directory'; set both")
        if self.chart_mirror and self.chart_source != "mirror":
            raise ValueError("chartMirror: only used with chartSource 'mirror'; set both")
        if self.chart_mirror and urlparse(self.chart_mirror).scheme not in ("https", "oci"):
            raise ValueError(
                f"chartMirror: {self.chart_mirror!r} must be an https:// Helm repository or an "
                "oci:// registry (charts are never fetched over plain http)"
            )
        _unique("bringYourOwn", list(self.bring_your_own), "entry")
        if self.mesh_ca == "cert-manager" and "istio" in self.bring_your_own:
            raise ValueError(
                "meshCa: 'cert-manager' configures istiod (its CA off, istio-csr as caAddress), "
                "but bringYourOwn lists 'istio', so aimesh installs no istiod; point your own "
                "istiod at istio-csr and set meshCa: istiod, or remove 'istio' from bringYourOwn"
            )
        seen: dict[tuple[str, str, str, str], int] = {}
        for index, obj in enumerate(self.extra_objects):
            meta = obj.get("metadata")
            for key, value in (
                ("apiVersion", obj.get("apiVersion")),
                ("kind", obj.get("kind")),
                ("metadata.name", meta.get("name") if isinstance(meta, dict) else None),
            ):
                if not isinstance(value, str) or not value:
                    raise ValueError(
                        f"extraObjects[{index}].{key}: required (a Kubernetes manifest as it "
                        "would be applied)"
                    )
            assert isinstance(meta, dict)
            identity = (
                str(obj["apiVersion"]).split("/")[0],
                str(obj["kind"]),
                str(meta.get("namespace", "")),
                str(meta["name"]),
            )
            if identity in seen:
                raise ValueError(
                    f"extraObjects[{index}]: the same object as extraObjects[{seen[identity]}]"
                )
            seen[identity] = index
        return self

    @model_validator(mode="after")
    def _mesh_ca_fields(self) -> Self:
        _unique("meshTrustRoots", [r.name for r in self.mesh_trust_roots], "name")
        fingerprints: dict[str, str] = {}
        for root in self.mesh_trust_roots:
            other = fingerprints.setdefault(root.certificate.fingerprint, root.name)
            if other != root.name:
                raise ValueError(
                    f"meshTrustRoots: {other!r} and {root.name!r} are the same certificate"
                )
        given = {
            "meshCaCertificate": self.mesh_ca_certificate,
            "meshCaKey": self.mesh_ca_key,
            "meshCaIssuerName": self.mesh_ca_issuer_name,
            "meshCaIssuingRoot": self.mesh_ca_issuing_root,
            "meshTrustRoots": self.mesh_trust_roots,
        }
        if self.mesh_ca == "istiod" or self.mesh_ca_issuer == "selfSigned":
            stray = [k for k, v in given.items() if v]
            if self.mesh_ca == "istiod" and self.mesh_ca_issuer != "selfSigned":
                stray.insert(0, "meshCaIssuer")
            if stray and self.mesh_ca == "istiod":
                raise ValueError(
                    f"{stray[0]}: only used with meshCa 'cert-manager' (meshCa is 'istiod'); "
                    "set meshCa: cert-manager or remove it"
                )
            if stray:
                raise ValueError(
                    f"{stray[0]}: only used with meshCaIssuer 'existing' (the selfSigned root "
                    "is generated in the cluster and trusted as it is)"
                )
            return self
        if self.mesh_ca_issuer_name and (self.mesh_ca_certificate or self.mesh_ca_key):
            raise ValueError(
                "meshCaIssuerName: use either an issuer you run (meshCaIssuerName) or an "
                "intermediate CA aimesh turns into one (meshCaCertificate and meshCaKey), not both"
            )
        if not self.mesh_ca_issuer_name and (
            self.mesh_ca_issuer_kind != "Issuer" or self.mesh_ca_issuer_group != "cert-manager.io"
        ):
            raise ValueError("meshCaIssuerKind: only used with meshCaIssuerName")
        names = [r.name for r in self.mesh_trust_roots]
        if self.mesh_ca_certificate is not None:
            if self.mesh_ca_issuing_root is not None:
                raise ValueError(
                    "meshCaIssuingRoot: only used with meshCaIssuerName; with meshCaCertificate "
                    "the root is read from the certificate chain"
                )
            try:
                chain = read_ca_chain(self.mesh_ca_certificate)
            except ValueError as exc:
                raise ValueError(f"meshCaCertificate: {exc}") from None
            if self.mesh_trust_roots and self.issuing_root is None:
                raise ValueError(
                    f"meshCaCertificate: {chain[0].subject!r} does not chain to any root of "
                    f"meshTrustRoots ({', '.join(names)}): workloads would not trust what it "
                    "signs; add its root first (docs/pki.md, 'Rotating the root')"
                )
            return self
        if self.mesh_ca_issuing_root is not None and self.mesh_ca_issuing_root not in names:
            raise ValueError(
                f"meshCaIssuingRoot: {self.mesh_ca_issuing_root!r} is not in meshTrustRoots "
                f"({', '.join(names) or 'none'}): workloads would not trust what the issuer signs"
            )
        if self.mesh_ca_issuer_name and self.mesh_ca_issuing_root is None and len(names) > 1:
            raise ValueError(
                f"meshCaIssuingRoot: required while meshTrustRoots holds {len(names)} roots "
                f"({', '.join(names)}): name the one meshCaIssuerName chains to"
            )
        return self

    @property
    def mesh_ca_chain(self) -> list[CaCertificate]:
        """meshCaCertificate parsed: the signing CA first, then the intermediates above it."""
        return _read_chain(self.mesh_ca_certificate) if self.mesh_ca_certificate else []

    @property
    def issuing_root(self) -> TrustRoot | None:
        """The trust root the mesh issuer chains to (existing issuers with a bundle): read from
        meshCaCertificate's chain, named by meshCaIssuingRoot, or the only root."""
        if self.mesh_ca_certificate:
            found = signing_root(self.mesh_ca_chain, [r.certificate for r in self.mesh_trust_roots])
            return next(
                (r for r in self.mesh_trust_roots if found and r.certificate == found), None
            )
        for root in self.mesh_trust_roots:
            if root.name == self.mesh_ca_issuing_root or len(self.mesh_trust_roots) == 1:
                return root
        return None

    @property
    def mesh_cert_lifetime(self) -> str:
        """The workload certificate lifetime in force (config, or the mode's default)."""
        return self.mesh_cert_duration or MESH_CERT_DEFAULTS[self.mesh_ca]

    @model_validator(mode="after")
    def _cross_references(self) -> Self:
        _unique("models", [m.name for m in self.models], "name")
        _unique("integrations", [i.name for i in self.integrations], "name")
        namespaces: dict[str, str] = {}
        reserved = {
            *PLATFORM_NAMESPACES,
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
        }
        for model in self.models:
            if model.ns in reserved:
                raise ValueError(
                    f"model {model.name!r}: namespace {model.ns!r} is reserved for the platform; "
                    f"choose another 'namespace' (reserved: {', '.join(sorted(reserved))})"
                )
            other = namespaces.setdefault(model.ns, model.name)
            if other != model.name:
                raise ValueError(
                    f"models {other!r} and {model.name!r} share namespace {model.ns!r}; "
                    "each model gets its own namespace (deny-all and policies are per namespace)"
                )
        known = {i.name for i in self.integrations}
        for model in self.models:
            for grant in model.integrations:
                if grant.name not in known:
                    raise ValueError(
                        f"model {model.name!r} grants unknown integration {grant.name!r}; "
                        f"define it under aimesh:integrations (known: {sorted(known) or 'none'})"
                    )
        return self

    @model_validator(mode="after")
    def _integration_identities(self) -> Self:
        # The gateway validates one JWT rule per issuer (components/gateway.py); integrations
        # sharing an issuer must share its JWKS and stay distinguishable by audience or subject,
        # or one could use the other's model grants.
        for i, first in enumerate(self.integrations):
            for second in self.integrations[i + 1 :]:
                if first.issuer != second.issuer:
                    continue
                pair = f"integrations {first.name!r} and {second.name!r} share issuer"
                if first.jwks_uri != second.jwks_uri:
                    raise ValueError(f"{pair} {first.issuer!r} but not its 'jwksUri'")
                same_audience = set(first.audiences) & set(second.audiences)
                any_subject = not first.subjects or not second.subjects
                if same_audience and (any_subject or set(first.subjects) & set(second.subjects)):
                    raise ValueError(
                        f"{pair} {first.issuer!r} and audience(s) {sorted(same_audience)}: "
                        "give them distinct 'audiences' or distinct, non-empty 'subjects'"
                    )
        return self

    @property
    def production(self) -> bool:
        return self.environment == "production"

    def masking_enabled(self, model: ModelSettings) -> bool:
        """Response masking defaults to on outside production."""
        if model.response_masking is not None:
            return model.response_masking
        return not self.production


def _unique(key: str, names: list[str], field: str) -> None:
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            raise ValueError(
                f"{key}[{index}].{field}: {name!r} is already used by {key}[{seen[name]}]; "
                f"each {field} must be unique"
            )
        seen[name] = index


# ---------------------------------------------------------------------------------------------
# Required values a stack file does not (and often must not) carry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingValue:
    """A value the stack needs that its file does not have: a secret (which only `pulumi config
    set --secret` may write, encrypted) or a public value only its owner has (a root CA)."""

    key: str  # the key path under `aimesh:`, e.g. `siemSinks[0].token`
    what: str  # what it is, in the user's words
    secret: bool
    # (key, value, secret) per `pulumi config set` command; empty: one `--secret` command for
    # `key` with no value, so the CLI prompts and the value never lands in shell history.
    commands: tuple[tuple[str, str, bool], ...] = ()
    # The commands are alternatives (run one), not parts (run all).
    alternatives: bool = False

    def fix(self, stack: str | None) -> list[str]:
        """The exact commands that set it."""
        commands = self.commands or ((self.key, "", True),)
        return [_config_set(key, value, secret, stack) for key, value, secret in commands]

    def describe(self, stack: str | None) -> str:
        kind = "required secret" if self.secret else "required value"
        if not self.commands:
            how = "set it (the CLI prompts for the value, so it stays out of your shell history)"
        elif self.alternatives:
            how = "set one of them"
        else:
            how = "set it"
        lines = [f"{NAMESPACE}:{self.key}: {kind} is not set ({self.what}); {how}:"]
        lines += [f"      {command}" for command in self.fix(stack)]
        return "\n".join(lines)


def _config_set(key: str, value: str, secret: bool, stack: str | None) -> str:
    flags = f" --stack {stack}" if stack else ""
    flags += " --secret" if secret else ""
    flags += " --path" if "." in key or "[" in key else ""
    return f"pulumi config set{flags} '{NAMESPACE}:{key}' {value}".rstrip()


_RECEIVER_CREDENTIALS = {
    "pagerduty": "the PagerDuty routing key",
    "slack": "the Slack incoming-webhook URL",
    "webhook": "the webhook URL",
}


def missing_values(settings: Settings) -> list[MissingValue]:
    """Every value this stack needs and does not have, in key order."""
    missing: list[MissingValue] = []
    if settings.cluster_mode == "existing" and not (settings.kubeconfig or settings.kube_context):
        missing.append(
            MissingValue(
                "kubeContext",
                "clusterMode 'existing' needs the context of your cluster in your kubeconfig, "
                "or the kubeconfig itself (a secret)",
                secret=False,
                commands=(
                    ("kubeContext", "<context-name>", False),
                    ("kubeconfig", "< ./kubeconfig.yaml", True),
                ),
                alternatives=True,
            )
        )
    for index, sink in enumerate(settings.siem_sinks):
        if sink.type == "splunkHec" and sink.token is None:
            missing.append(
                MissingValue(
                    f"siemSinks[{index}].token",
                    f"the Splunk HEC token of SIEM sink {sink.name!r}",
                    secret=True,
                )
            )
    for index, receiver in enumerate(settings.alert_receivers):
        if receiver.credential is None:
            missing.append(
                MissingValue(
                    f"alertReceivers[{index}].credential",
                    f"{_RECEIVER_CREDENTIALS[receiver.type]} of alert receiver {receiver.name!r}",
                    secret=True,
                )
            )
    existing = settings.mesh_ca == "cert-manager" and settings.mesh_ca_issuer == "existing"
    if existing and not settings.mesh_ca_issuer_name:
        if settings.mesh_ca_certificate is None:
            missing.append(
                MissingValue(
                    "meshCaCertificate",
                    "the intermediate CA certificate of your PKI that signs workload "
                    "certificates (PEM, public; or set meshCaIssuerName to an issuer you run)",
                    secret=False,
                    commands=(("meshCaCertificate", "< ./mesh-intermediate.pem", False),),
                )
            )
        if settings.mesh_ca_key is None:
            missing.append(
                MissingValue(
                    "meshCaKey",
                    "the private key of meshCaCertificate (PEM); it lands only in an "
                    "encrypted Pulumi secret and in the Kubernetes Secret of the mesh issuer",
                    secret=True,
                    commands=(("meshCaKey", "< ./mesh-intermediate.key", True),),
                )
            )
    if existing and not settings.mesh_trust_roots:
        missing.append(
            MissingValue(
                "meshTrustRoots[0]",
                "the root CA certificate your mesh issuer chains to: public, not a secret; "
                "workloads trust exactly the roots listed here",
                secret=False,
                commands=(
                    ("meshTrustRoots[0].name", "<root-name>", False),
                    ("meshTrustRoots[0].pem", "< ./root-ca.pem", False),
                ),
            )
        )
    return missing


# ---------------------------------------------------------------------------------------------
# Loading and error reporting
# ---------------------------------------------------------------------------------------------


class ConfigError(Exception):
    """Invalid stack configuration; the message lists every problem with its key path."""


class MissingValuesError(ConfigError):
    """The config is valid but lacks values only its owner can set (see `MissingValue`)."""

    def __init__(self, message: str, missing: list[MissingValue]) -> None:
        super().__init__(message)
        self.missing = missing


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = NAMESPACE
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += (":" if i == 0 else ".") + part
    return path


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config model found at `loc`, for listing the known keys next to an unknown one."""
    model: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = next(
            (f for n, f in model.model_fields.items() if part in (n, f.alias)),
            None,
        )
        if field is None:
            return None
        model = _innermost_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _innermost_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _innermost_model(arg)
        if found is not None:
            return found
    return None


def _field_at(loc: tuple[int | str, ...]) -> Any:
    """The pydantic field at `loc` (None when there is none, e.g. an unknown key)."""
    named = [i for i, part in enumerate(loc) if isinstance(part, str)]
    if not named:
        return None
    parent = _model_at(loc[: named[-1]])
    if parent is None:
        return None
    name = loc[named[-1]]
    return next((f for n, f in parent.model_fields.items() if name in (n, f.alias)), None)


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    field = _field_at(loc)
    return field is not None and "SecretStr" in str(field.annotation)


def _did_you_mean(word: Any, candidates: list[str], prefix: str = "") -> str:
    match = nearest(word, candidates) if isinstance(word, str) else None
    return f"; did you mean `{prefix}{match}`?" if match else ""


_FEW_KEYS = 8  # an unknown key without a near match lists the keys allowed there, if few


def _describe(error: Mapping[str, Any], source: ConfigSource | None) -> str:
    """One problem: where (file:line), the key path, what is wrong, the value given and, for
    a misspelling, the name or value probably meant."""
    loc = tuple(error["loc"])
    kind = error["type"]
    top = f"{NAMESPACE}:{loc[0]}" if loc else ""
    where = f"{source.where(top, loc[1:])}: " if source is not None and top else ""
    given = ""
    if loc and kind != "missing":
        value = error.get("input")
        shown = (source or _NO_SOURCE).shown(top, value, secret=_is_secret(loc))
        given = f" (given {shown})"
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = sorted(f.alias or n for n, f in parent.model_fields.items()) if parent else []
        hint = _did_you_mean(loc[-1], known, f"{NAMESPACE}:" if len(loc) == 1 else "")
        if not hint and len(known) <= _FEW_KEYS:
            hint = f"; the keys here are {', '.join(known)}"
        elif not hint:
            hint = "; every key is listed in README.md, Configuration reference"
        return f"{where}{_key_path(loc)}: unknown key{given}{hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    hint = ""
    if kind == "literal_error":
        message = message.replace("Input should be", "must be one of")
        allowed = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
        hint = _did_you_mean(error.get("input"), allowed)
    if not loc and _LEADING_KEY_PATH.match(message):
        # A cross-field check names the key it blames first: `acmeEmail: required when ...`.
        key = message.split(":", 1)[0]
        top_key = re.split(r"[.\[]", key, maxsplit=1)[0]
        place = f"{source.where(f'{NAMESPACE}:{top_key}')}: " if source is not None else ""
        return f"{place}{NAMESPACE}:{message}"
    return f"{where}{_key_path(loc)}: {message}{given}{hint}"


_LEADING_KEY_PATH = re.compile(r"^[a-z][A-Za-z0-9]*(\[\d+\])?(\.[a-z][A-Za-z0-9]*|\[\d+\])*: ")
_NO_SOURCE = ConfigSource(Path("Pulumi.<stack>.yaml"))

# Config namespaces this program's providers and the engine read; any other namespace in a
# stack file is a typo (`aimsh:`) that Pulumi would pass on silently.
PROVIDER_NAMESPACES = frozenset({"pulumi", "kubernetes", "command"})


def _validated(
    raw: Mapping[str, Any],
    source: ConfigSource | None,
    found: list[str] | None = None,
    stack: str | None = None,
) -> Settings:
    """`Settings` from the `aimesh:` keys, or ConfigError listing `found` and every problem;
    then MissingValuesError when values only the stack's owner can set are missing, one per
    key with the command that sets it for `stack`."""
    problems = list(found or [])
    try:
        settings = Settings.model_validate(dict(raw))
    except ValidationError as exc:
        problems += [_describe(e, source) for e in exc.errors()]
    else:
        if not problems:
            missing = missing_values(settings)
            if not missing:
                return settings
            where = f"Pulumi.{stack}.yaml" if stack else "the stack config"
            listed = "\n".join(f"  - {m.describe(stack)}" for m in missing)
            raise MissingValuesError(
                f"invalid stack configuration: {where} lacks {len(missing)} required value(s); "
                f"nothing was created:\n{listed}",
                missing,
            )
    listed = "\n".join(f"  - {p}" for p in problems)
    raise ConfigError(f"invalid stack configuration:\n{listed}")


def parse(
    raw: Mapping[str, Any], source: ConfigSource | None = None, *, stack: str | None = None
) -> Settings:
    """Validate raw config values (keys without the `aimesh:` prefix) into `Settings`. Raises
    ConfigError listing every problem; with a `source`, each names its file and line. Values
    the stack lacks are reported one per key, with the command that sets each for `stack`."""
    return _validated(raw, source, stack=stack or (source.stack if source else None))


def parse_stack(values: Mapping[str, Any], source: ConfigSource | None = None) -> Settings:
    """Validate a stack's whole config (`namespace:key` -> decoded value, every namespace):
    the `aimesh:` keys as `parse` does, and every key of a namespace no provider of this
    program reads (a misspelt `aimsh:clusterName`) as an error too."""
    raw: dict[str, Any] = {}
    problems: list[str] = []
    for full_key, value in values.items():
        namespace, _, key = full_key.partition(":")
        if namespace == NAMESPACE and key:
            raw[key] = value
        elif namespace not in PROVIDER_NAMESPACES:
            where = f"{source.where(full_key)}: " if source is not None else ""
            shown = (source or _NO_SOURCE).shown(full_key, value)
            meant = nearest(namespace, [NAMESPACE, *PROVIDER_NAMESPACES])
            hint = (
                f"; did you mean `{meant}:{key}`?"
                if meant
                else f"; this program reads {NAMESPACE}: and its providers' "
                f"{', '.join(sorted(PROVIDER_NAMESPACES))}:"
            )
            problems.append(
                f"{where}{full_key}: unknown namespace `{namespace}` (given {shown}){hint}"
            )
    if source is not None:  # which keys are secrets is known only with the source
        problems += [
            f"{source.where(problem.split(': ', 1)[0])}: {problem}"
            for problem in _plaintext_credentials(raw, source.secret_keys)
        ]
    return _validated(raw, source, problems, stack=source.stack if source else None)


def decode_value(value: str) -> Any:
    """Pulumi passes structured config as JSON text and scalars as plain strings."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def values_from_pulumi() -> dict[str, Any]:
    """Every config key the engine passed (all namespaces), decoded. Pulumi itself would
    silently ignore an undeclared key or namespace; validation rejects them."""
    from pulumi.runtime import config as runtime_config

    # The language host hands config over through set_all_config; PULUMI_CONFIG is the older path.
    passed = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {k: decode_value(v) if isinstance(v, str) else v for k, v in passed.items()}


# Keys holding credentials. Pulumi.yaml cannot mark them `secret: true` without making them
# required in every stack (pulumi/pulumi#21797), so the program insists instead.
SECRET_KEYS = ("kubeconfig", "grafanaAdminPassword")


def _plaintext_credentials(keys: Iterable[str], secret: Collection[str]) -> list[str]:
    """The credential keys among `keys` that are not secrets: `<key>: <problem and fix>`."""
    return [
        f"{NAMESPACE}:{key}: holds credentials, so it must be a secret: "
        f"`pulumi config set --secret {NAMESPACE}:{key} ...`"
        for key in SECRET_KEYS
        if key in keys and f"{NAMESPACE}:{key}" not in secret
    ]


def require_secrets(raw: Mapping[str, Any], secret: set[str]) -> None:
    """Raise ConfigError when a credential key was set in plain text."""
    problems = _plaintext_credentials(raw, secret)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"invalid stack configuration:\n{listed}")


def load() -> Settings:
    """Read and validate this stack's config. Raises ConfigError (as a clean Pulumi error
    whose every line names Pulumi.<stack>.yaml and the line of the setting)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    values = values_from_pulumi()
    root = Path(pulumi.get_root_directory() or ".")
    secret = [k for k in values if runtime_config.is_config_secret(k)]
    source = ConfigSource.for_stack(root, pulumi.get_stack(), secret)
    try:
        return parse_stack(values, source)
    except ConfigError as exc:
        raise pulumi.RunError(str(exc)) from None
