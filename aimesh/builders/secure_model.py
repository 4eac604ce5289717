"""One model, served and locked down: every Kubernetes object of a SecureModel (pure builders).

What a model gets, and why:

- its own namespace, sidecar-injected, so that every byte to and from it is mTLS (STRICT is
  mesh-wide, components/mesh_security.py) and every request is checked by its sidecar;
- a dedicated service account (no API token mounted: the model never talks to Kubernetes);
- a KServe InferenceService in Standard (raw Deployment) mode with a hardened pod; a canary is
  a second predictor (`spec.canary`, KServe >= 0.20) whose Deployment and Service are
  `<model>-canary-predictor`. KServe splits traffic for raw mode only on Gateway API
  HTTPRoutes, so aimesh routes both versions itself with one weighted Istio VirtualService (on
  the ingress gateway AND inside the mesh): `trafficPercent: 0` is an instant rollback;
- authorization built from builders/access.py rows: a namespace-wide deny-all, ALLOW rules that
  name exact principals, methods and paths, a DENY of operator paths for everyone but admins,
  one closed-by-default policy per batch caller that CronJobs open and close;
- JWT validation again at the model for integrations (the gateway forwards the token);
- Envoy local rate limits (per model, per caller), DLP (a ServiceEntry for the storage host
  only, NetworkPolicies with default deny), response masking in non-production stacks;
- Kubernetes RBAC: managers manage the InferenceServices, callers may only read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aimesh import versions
from aimesh.builders import access, collector
from aimesh.builders.common import MODEL_LABEL, ROLE_LABEL, VERSION_LABEL, GatewayRef, metadata
from aimesh.namespaces import INGRESS_NAMESPACE, ISTIO_NAMESPACE, OBSERVABILITY_NAMESPACE
from aimesh.settings import ModelSettings, RateLimit, Settings

SECURITY_API = "security.istio.io/v1"
NETWORKING_API = "networking.istio.io/v1"
ENVOY_FILTER_API = "networking.istio.io/v1alpha3"
KSERVE_API = "serving.kserve.io/v1beta1"

CANARY_NAME = "canary"
WINDOW_ROLE = "window-controller"
LUA_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
RATE_LIMIT_FILTER_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
)
# Where Istio's jwt_authn filter puts a validated token's claims (`payload_in_metadata`).
JWT_PAYLOAD_KEY = "payload"
LUA_SOURCE = Path(__file__).resolve().parent / "lua" / "mask_response.lua"

_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
# Private ranges: egress to external storage never needs them (in-cluster traffic has its own
# rules), so the HTTPS egress rule excludes them.
_PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


@dataclass
class ModelObjects:
    """Every manifest of one model, grouped by the order they must be applied in.

    `namespace` first; `identity` (service accounts) and `guards` (authorization, network
    policies, filters, egress) next; `deny_all` once the ALLOW rules exist; `windows` are the
    batch policies the CronJobs own after creation; `workload` (InferenceService, VirtualService)
    last, so no model pod ever runs unguarded."""

    namespace: dict[str, Any]
    identity: list[dict[str, Any]] = field(default_factory=list)
    allow: list[dict[str, Any]] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    deny_all: dict[str, Any] = field(default_factory=dict)
    guards: list[dict[str, Any]] = field(default_factory=list)
    workload: list[dict[str, Any]] = field(default_factory=list)
    rows: list[access.AccessRow] = field(default_factory=list)

    def all(self) -> list[dict[str, Any]]:
        return [
            self.namespace,
            *self.identity,
            *self.allow,
            *self.windows,
            self.deny_all,
            *self.guards,
            *self.workload,
        ]


def _labels(model: ModelSettings) -> dict[str, str]:
    return {MODEL_LABEL: model.name, "app.kubernetes.io/part-of": "aimesh"}


def workload_selector(model: ModelSettings) -> dict[str, str]:
    """Selects every version (stable and canary) of the model's pods."""
    return {MODEL_LABEL: model.name}


def predictor_service_account(model: ModelSettings) -> str:
    return f"{model.name}-predictor"


def service_host(model: ModelSettings, version: str = "stable") -> str:
    """The predictor Service KServe (raw mode) creates: `<isvc>-predictor`, and
    `<isvc>-<canaryName>-predictor` for a canary (port 80 -> the runtime's 8080)."""
    name = model.name if version == "stable" else f"{model.name}-{CANARY_NAME}"
    return f"{name}-predictor.{model.ns}.svc.cluster.local"


# ---- namespace and identities -------------------------------------------------------------


def namespace(model: ModelSettings) -> dict[str, Any]:
    """The model's namespace: sidecar-injected; Pod Security warns/audits at `restricted`
    (enforcing it would reject istio-init's NET_ADMIN when Istio runs without its CNI)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata(
            model.ns,
            labels={
                **_labels(model),
                "istio-injection": "enabled",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
            },
        ),
    }


def service_account(model: ModelSettings) -> dict[str, Any]:
    """The model's own identity (`<td>/ns/<ns>/sa/<model>-predictor`), without an API token."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(predictor_service_account(model), model.ns, _labels(model)),
        "automountServiceAccountToken": False,
    }


# ---- the InferenceService -----------------------------------------------------------------


def _resources(model: ModelSettings) -> dict[str, Any]:
    res = model.resources
    requests: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    limits: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    if res.gpu:
        # Extended resources cannot be overcommitted: request == limit.
        requests[res.gpu_resource] = str(res.gpu)
        limits[res.gpu_resource] = str(res.gpu)
    return {"requests": requests, "limits": limits}


def _container_security(model: ModelSettings) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": model.read_only_root_filesystem,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _model_spec(
    model: ModelSettings, storage_uri: str, runtime_version: str | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "modelFormat": {"name": model.format},
        "protocolVersion": model.protocol,
        "storageUri": storage_uri,
        "resources": _resources(model),
        "securityContext": _container_security(model),
        # A writable scratch space, so the root filesystem can stay read-only.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    if model.runtime:
        spec["runtime"] = model.runtime
    if runtime_version:
        spec["runtimeVersion"] = runtime_version
    return spec


def _predictor(
    model: ModelSettings, version: str, storage_uri: str, runtime_version: str | None
) -> dict[str, Any]:
    predictor: dict[str, Any] = {
        "serviceAccountName": predictor_service_account(model),
        # The model never calls the Kubernetes API (the sidecar has its own projected token).
        "automountServiceAccountToken": False,
        "labels": {**workload_selector(model), VERSION_LABEL: version},
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "model": _model_spec(model, storage_uri, runtime_version),
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    if model.node_selector:
        predictor["nodeSelector"] = dict(model.node_selector)
    if model.tolerations:
        predictor["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in model.tolerations
        ]
    return predictor


def inference_service(model: ModelSettings) -> dict[str, Any]:
    """KServe InferenceService in Standard mode, with the canary as a second predictor."""
    predictor = _predictor(model, "stable", model.storage_uri, None)
    predictor["minReplicas"] = model.min_replicas
    predictor["maxReplicas"] = model.max_replicas
    spec: dict[str, Any] = {"predictor": predictor}
    if model.canary is not None:
        canary = _predictor(model, "canary", model.canary.storage_uri, model.canary.runtime_version)
        # KServe rejects autoscaling fields on a canary: its replicas follow trafficPercent.
        canary["name"] = CANARY_NAME
        # The canary's schema requires the container name; KServe names the model container
        # `kserve-container` (the stable predictor gets it implicitly).
        canary["model"]["name"] = "kserve-container"
        spec["canary"] = [{"trafficPercent": model.canary.traffic_percent, "predictor": canary}]
    return {
        "apiVersion": KSERVE_API,
        "kind": "InferenceService",
        "metadata": metadata(
            model.name,
            model.ns,
            _labels(model),
            {
                "serving.kserve.io/deploymentMode": "Standard",
                "serving.kserve.io/autoscalerClass": "hpa",
            },
        ),
        "spec": spec,
    }


def virtual_service(
    settings: Settings, model: ModelSettings, gateway: GatewayRef
) -> dict[str, Any]:
    """Routes `https://<model>.<domain>` (ingress gateway) and the stable predictor host (inside
    the mesh) to the versions by weight, so in-mesh callers see the same split."""
    canary_percent = model.canary.traffic_percent if model.canary is not None else 0
    route = [
        {
            "destination": {"host": service_host(model), "port": {"number": access.SERVICE_PORT}},
            "weight": 100 - canary_percent,
        }
    ]
    if model.canary is not None:
        route.append(
            {
                "destination": {
                    "host": service_host(model, "canary"),
                    "port": {"number": access.SERVICE_PORT},
                },
                "weight": canary_percent,
            }
        )
    return {
        "apiVersion": NETWORKING_API,
        "kind": "VirtualService",
        "metadata": metadata(model.name, model.ns, _labels(model)),
        "spec": {
            "hosts": [f"{model.name}.{gateway.domain}", service_host(model)],
            "gateways": [gateway.qualified, "mesh"],
            "http": [{"name": "versions", "route": route}],
        },
    }


# ---- authorization (built from the access rows) --------------------------------------------


def deny_all(model: ModelSettings) -> dict[str, Any]:
    """Namespace-wide allow-nothing: only what an ALLOW names gets through."""
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata("deny-all", model.ns, _labels(model)),
        "spec": {},
    }


def allow_policy(model: ModelSettings, rows: list[access.AccessRow]) -> dict[str, Any] | None:
    """ALLOW: one rule per always-on grant (exact principal, methods and paths)."""
    rules = [r.rule() for r in rows if not r.batch]
    if not rules:
        return None
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata(access.allow_policy_name(model), model.ns, _labels(model)),
        "spec": {
            "selector": {"matchLabels": workload_selector(model)},
            "action": "ALLOW",
            "rules": rules,
        },
    }


def window_policy(model: ModelSettings, row: access.AccessRow) -> dict[str, Any]:
    """The batch caller's ALLOW, created CLOSED (no rules: allows nothing). Its CronJobs set
    `rules` to `open_patch(row)` when a window opens and remove them when it closes."""
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata(row.policy, model.ns, {**_labels(model), "aimesh.io/window": "batch"}),
        "spec": {"selector": {"matchLabels": workload_selector(model)}, "action": "ALLOW"},
    }


def open_patch(row: access.AccessRow) -> dict[str, Any]:
    """JSON merge patch that opens a window: the row's rule, nothing else."""
    return {"spec": {"rules": [row.rule()]}}


def close_patch() -> dict[str, Any]:
    """JSON merge patch that closes a window: no rules, the ALLOW matches nothing."""
    return {"spec": {"rules": None}}


def deny_admin(model: ModelSettings, rows: list[access.AccessRow]) -> dict[str, Any]:
    """DENY operator paths (repository load/unload/index, logging, shared memory, metrics) to
    everyone but the admins. DENY is evaluated before ALLOW, so no later ALLOW can widen it."""
    principals, request_principals = access.admins(rows)
    source: dict[str, Any] = {}
    if principals:
        source["notPrincipals"] = principals
    if request_principals:
        source["notRequestPrincipals"] = request_principals
    rule: dict[str, Any] = {"to": [{"operation": {"paths": access.admin_paths(model)}}]}
    if source:
        rule["from"] = [{"source": source}]
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata(access.short_name(model.name, "deny-admin"), model.ns, _labels(model)),
        "spec": {
            "selector": {"matchLabels": workload_selector(model)},
            "action": "DENY",
            "rules": [rule],
        },
    }


def request_authentication(settings: Settings, model: ModelSettings) -> dict[str, Any] | None:
    """Validates, at the model's sidecar, the JWTs of the integrations this model grants (the
    gateway forwards the token). Without it the model could not match request principals.
    One rule per issuer; the token is not forwarded to the model container."""
    granted = {g.name for g in model.integrations}
    by_issuer: dict[str, list[Any]] = {}
    for integration in settings.integrations:
        if integration.name in granted:
            by_issuer.setdefault(integration.issuer, []).append(integration)
    if not by_issuer:
        return None
    rules = [
        {
            "issuer": issuer,
            "jwksUri": members[0].jwks_uri,
            "audiences": sorted({a for m in members for a in m.audiences}),
            "fromHeaders": [{"name": "Authorization", "prefix": "Bearer "}],
        }
        for issuer, members in sorted(by_issuer.items())
    ]
    return {
        "apiVersion": SECURITY_API,
        "kind": "RequestAuthentication",
        "metadata": metadata(access.short_name(model.name, "jwt"), model.ns, _labels(model)),
        "spec": {"selector": {"matchLabels": workload_selector(model)}, "jwtRules": rules},
    }


# ---- Kubernetes RBAC ----------------------------------------------------------------------


def rbac(model: ModelSettings) -> list[dict[str, Any]]:
    """Managers manage InferenceServices in the namespace; callers' service accounts may only
    read them (to discover the endpoint and its readiness)."""
    out: list[dict[str, Any]] = []
    manager_role = access.short_name(model.name, "manager")
    viewer_role = access.short_name(model.name, "viewer")
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(manager_role, model.ns, _labels(model)),
            "rules": [
                {
                    "apiGroups": ["serving.kserve.io"],
                    "resources": ["inferenceservices"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                },
                {
                    "apiGroups": ["serving.kserve.io"],
                    "resources": ["inferenceservices/status"],
                    "verbs": ["get"],
                },
            ],
        }
    )
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(viewer_role, model.ns, _labels(model)),
            "rules": [
                {
                    "apiGroups": ["serving.kserve.io"],
                    "resources": ["inferenceservices"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        }
    )
    if model.managers:
        out.append(
            _binding(
                model,
                manager_role,
                [
                    {"kind": s.kind, "name": s.name, "apiGroup": "rbac.authorization.k8s.io"}
                    for s in model.managers
                ],
            )
        )
    if model.callers:
        out.append(
            _binding(
                model,
                viewer_role,
                [
                    {"kind": "ServiceAccount", "name": c.service_account, "namespace": c.namespace}
                    for c in model.callers
                ],
            )
        )
    return out


def _binding(model: ModelSettings, role: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(role, model.ns, _labels(model)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": subjects,
    }


# ---- batch windows ------------------------------------------------------------------------


def window_controller(model: ModelSettings, row: access.AccessRow) -> list[dict[str, Any]]:
    """ServiceAccount + Role (get/patch of exactly the row's policy) + RoleBinding + one
    CronJob per window edge. The pods run kubectl only (no shell), unprivileged, read-only."""
    sa = access.short_name(row.policy, "ctl")
    labels = {**_labels(model), ROLE_LABEL: WINDOW_ROLE}
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(sa, model.ns, labels),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(sa, model.ns, labels),
            "rules": [
                {
                    "apiGroups": ["security.istio.io"],
                    "resources": ["authorizationpolicies"],
                    "resourceNames": [row.policy],
                    "verbs": ["get", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(sa, model.ns, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": model.ns}],
        },
    ]
    for i, window in enumerate(row.windows):
        for edge, schedule, patch in (
            ("open", window.open, open_patch(row)),
            ("close", window.close, close_patch()),
        ):
            out.append(_cronjob(model, row, sa, f"{edge}-{i}", schedule, window.time_zone, patch))
    return out


def _cronjob(
    model: ModelSettings,
    row: access.AccessRow,
    sa: str,
    suffix: str,
    schedule: str,
    time_zone: str,
    patch: dict[str, Any],
) -> dict[str, Any]:
    # CronJob names are limited to 52 characters (the Job name gets an 11-character suffix).
    name = access.short_name(row.policy, suffix, limit=52)
    # In the mesh like everything else: with native sidecars (Istio on Kubernetes >= 1.33) the
    # proxy stops when kubectl exits, so the Job completes.
    pod_labels = workload_selector_for_controller(model)
    spec: dict[str, Any] = {
        "schedule": schedule,
        "timeZone": time_zone,
        "concurrencyPolicy": "Forbid",
    }
    if suffix.startswith("open"):
        # A missed opening (controller down) runs within 10 minutes or not at all: access that
        # starts hours late, possibly after the closing already ran, would stay open a day.
        # A closing has NO deadline: a late close is always right (fail closed), so the
        # CronJob controller runs a missed closing as soon as it catches up.
        spec["startingDeadlineSeconds"] = 600
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(name, model.ns, {**_labels(model), ROLE_LABEL: WINDOW_ROLE}),
        "spec": {
            **spec,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 4,
                    "activeDeadlineSeconds": 300,
                    "ttlSecondsAfterFinished": 86400,
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": {
                            "serviceAccountName": sa,
                            "restartPolicy": "OnFailure",
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": 65532,
                                "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [
                                {
                                    "name": "kubectl",
                                    "image": versions.KUBECTL_IMAGE,
                                    "imagePullPolicy": "IfNotPresent",
                                    "command": ["kubectl"],
                                    "args": [
                                        "patch",
                                        "authorizationpolicies.security.istio.io",
                                        row.policy,
                                        f"--namespace={model.ns}",
                                        "--type=merge",
                                        f"--patch={json.dumps(patch, sort_keys=True)}",
                                        "--cache-dir=/tmp/kube-cache",
                                    ],
                                    "securityContext": {
                                        "allowPrivilegeEscalation": False,
                                        "privileged": False,
                                        "readOnlyRootFilesystem": True,
                                        "runAsNonRoot": True,
                                        "capabilities": {"drop": ["ALL"]},
                                    },
                                    "resources": {
                                        "requests": {"cpu": "10m", "memory": "32Mi"},
                                        "limits": {"cpu": "100m", "memory": "64Mi"},
                                    },
                                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
                                }
                            ],
                            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                        },
                    },
                }
            },
        },
    }


def workload_selector_for_controller(model: ModelSettings) -> dict[str, str]:
    """Labels of the window-controller pods (NOT the model label: no model policy applies)."""
    return {ROLE_LABEL: WINDOW_ROLE, "aimesh.io/controls": model.name}


# ---- rate limiting ------------------------------------------------------------------------


def _bucket(limit: RateLimit | None) -> dict[str, Any]:
    if limit is None:
        # No model-wide limit: a bucket that never runs dry, so only the callers' apply.
        return {"max_tokens": 1_000_000, "tokens_per_fill": 1_000_000, "fill_interval": "1s"}
    return {
        "max_tokens": limit.requests,
        "tokens_per_fill": limit.requests,
        "fill_interval": f"{_UNIT_SECONDS[limit.unit]}s",
    }


def _xfcc_regex(row: access.AccessRow) -> str:
    # The sidecar APPENDS the verified peer's certificate to x-forwarded-client-cert (Istio's
    # sidecar default, APPEND_FORWARD), and a client's own sidecar sanitizes the header on the
    # way out: the LAST element's URI is the mTLS identity the request arrived with.
    uri = "spiffe://" + row.principal
    escaped = "".join("\\" + c if c in ".+*?()[]{}|^$\\" else c for c in uri)
    return f"^(.*,)?[^,]*URI={escaped}(;[^,]*)?$"


def _descriptor_key(row: access.AccessRow) -> str:
    return "aimesh-caller" if row.kind == "workload" else "aimesh-integration"


def rate_limit_actions(rows: list[access.AccessRow]) -> list[dict[str, Any]]:
    """Route `rate_limits`: one descriptor per rate-limited caller.

    In-mesh callers are recognised by their mTLS identity in the x-forwarded-client-cert
    header the sidecar sets; integrations by the `iss` claim of their validated JWT: Istio
    configures the sidecar's jwt_authn filter (from the RequestAuthentication) to store a valid
    token's payload as dynamic metadata `envoy.filters.http.jwt_authn` / `payload`. No
    metadata (no or invalid token) means no descriptor, so no per-integration bucket applies
    (and the ALLOW rules deny such a request anyway)."""
    actions: list[dict[str, Any]] = []
    for row, _ in _limited(rows):
        if row.kind == "workload":
            action: dict[str, Any] = {
                "header_value_match": {
                    "descriptor_key": _descriptor_key(row),
                    "descriptor_value": row.caller,
                    "expect_match": True,
                    "headers": [
                        {
                            "name": "x-forwarded-client-cert",
                            "string_match": {"safe_regex": {"regex": _xfcc_regex(row)}},
                        }
                    ],
                }
            }
        else:
            action = {
                "metadata": {
                    "descriptor_key": _descriptor_key(row),
                    "metadata_key": {
                        "key": "envoy.filters.http.jwt_authn",
                        "path": [{"key": JWT_PAYLOAD_KEY}, {"key": "iss"}],
                    },
                    "source": "DYNAMIC",
                }
            }
        actions.append({"actions": [action]})
    return actions


def _descriptor_value(row: access.AccessRow) -> str:
    return row.caller if row.kind == "workload" else row.issuer


def _limited(rows: list[access.AccessRow]) -> list[tuple[access.AccessRow, RateLimit]]:
    """The rate-limited rows, one per descriptor (key, value), with that descriptor's limit.

    Integrations are keyed by their issuer, and integrations may share one (settings tell them
    apart by audience or subject). Two grants of one model to such integrations would produce
    the same descriptor twice: Envoy rejects a local rate limit config with a duplicate
    descriptor ("duplicate descriptor in the local rate descriptor"), so the whole inbound
    listener update of the model's sidecar would be refused, and two identical route actions
    would consume the shared bucket twice per request. They share ONE bucket, the strictest of
    their limits (the lowest sustained rate)."""
    chosen: dict[tuple[str, str], tuple[access.AccessRow, RateLimit]] = {}
    for row in rows:
        if row.rate_limit is None:
            continue
        key = (_descriptor_key(row), _descriptor_value(row))
        limit = row.rate_limit
        if key in chosen:
            kept = chosen[key][1]
            if limit.requests / _UNIT_SECONDS[limit.unit] >= (
                kept.requests / _UNIT_SECONDS[kept.unit]
            ):
                continue
            chosen[key] = (chosen[key][0], limit)
        else:
            chosen[key] = (row, limit)
    return list(chosen.values())


def rate_limit_descriptors(rows: list[access.AccessRow]) -> list[dict[str, Any]]:
    return [
        {
            "entries": [{"key": _descriptor_key(row), "value": _descriptor_value(row)}],
            "token_bucket": _bucket(limit),
        }
        for row, limit in _limited(rows)
    ]


def rate_limit_filter(model: ModelSettings, rows: list[access.AccessRow]) -> dict[str, Any] | None:
    """Envoy local rate limit on the model's inbound sidecar: the model-wide bucket (every
    request) and, per rate-limited caller, its own bucket (that caller's requests). Limits are
    per pod (local rate limiting has no shared state): N replicas allow N times the rate.
    None when neither the model nor any caller is rate limited."""
    if model.rate_limit is None and not any(r.rate_limit for r in rows):
        return None
    filter_type = RATE_LIMIT_FILTER_TYPE
    enabled = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    per_route = {
        "@type": filter_type,
        "stat_prefix": "aimesh_model_rate_limit",
        "token_bucket": _bucket(model.rate_limit),
        "filter_enabled": {**enabled, "runtime_key": "aimesh_rate_limit_enabled"},
        "filter_enforced": {**enabled, "runtime_key": "aimesh_rate_limit_enforced"},
        # Both the model-wide bucket and the caller's own bucket are consumed.
        "always_consume_default_token_bucket": True,
        "response_headers_to_add": [
            {
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                "header": {"key": "x-aimesh-rate-limited", "value": "true"},
            }
        ],
        "descriptors": rate_limit_descriptors(rows),
    }
    route_patch: dict[str, Any] = {
        "typed_per_filter_config": {"envoy.filters.http.local_ratelimit": per_route}
    }
    actions = rate_limit_actions(rows)
    if actions:
        route_patch["route"] = {"rate_limits": actions}
    return {
        "apiVersion": ENVOY_FILTER_API,
        "kind": "EnvoyFilter",
        "metadata": metadata(access.short_name(model.name, "rate-limit"), model.ns, _labels(model)),
        "spec": {
            "workloadSelector": {"labels": workload_selector(model)},
            "configPatches": [
                # The filter itself, after authentication/authorization (so denied requests
                # do not drain a caller's bucket and JWT metadata exists).
                _inbound_http_filter_before_router(
                    "envoy.filters.http.local_ratelimit",
                    {"@type": filter_type, "stat_prefix": "aimesh_model_rate_limit"},
                ),
                {
                    # The buckets and descriptors, on every inbound route of the model.
                    "applyTo": "HTTP_ROUTE",
                    "match": {
                        "context": "SIDECAR_INBOUND",
                        "routeConfiguration": {"vhost": {"route": {"action": "ANY"}}},
                    },
                    "patch": {"operation": "MERGE", "value": route_patch},
                },
            ],
        },
    }


def _inbound_http_filter_before_router(name: str, typed_config: dict[str, Any]) -> dict[str, Any]:
    """An EnvoyFilter patch adding HTTP filter `name` to the model's inbound sidecar listener,
    right before the router: after Istio's authentication and authorization filters, so
    denied requests never reach it and the validated JWT's metadata is there."""
    return {
        "applyTo": "HTTP_FILTER",
        "match": {
            "context": "SIDECAR_INBOUND",
            "listener": {
                "filterChain": {
                    "filter": {
                        "name": "envoy.filters.network.http_connection_manager",
                        "subFilter": {"name": "envoy.filters.http.router"},
                    }
                }
            },
        },
        "patch": {
            "operation": "INSERT_BEFORE",
            "value": {"name": name, "typed_config": typed_config},
        },
    }


# ---- response masking ----------------------------------------------------------------------


def lua_source() -> str:
    return LUA_SOURCE.read_text()


def masking_filter(settings: Settings, model: ModelSettings) -> dict[str, Any] | None:
    """Lua filter masking card numbers and e-mail addresses in the model's responses, on in
    non-production stacks (`settings.masking_enabled`)."""
    if not settings.masking_enabled(model):
        return None
    return {
        "apiVersion": ENVOY_FILTER_API,
        "kind": "EnvoyFilter",
        "metadata": metadata(access.short_name(model.name, "masking"), model.ns, _labels(model)),
        "spec": {
            "workloadSelector": {"labels": workload_selector(model)},
            "configPatches": [
                _inbound_http_filter_before_router(
                    "envoy.filters.http.lua",
                    {
                        "@type": LUA_FILTER_TYPE,
                        "default_source_code": {"inline_string": lua_source()},
                    },
                )
            ],
        },
    }


# ---- egress (DLP) ---------------------------------------------------------------------------


# Hosts an `hf://` download touches: the Hub (metadata, `resolve/` URLs) and the CDNs its
# `resolve/` answers redirect to: LFS files to cdn-lfs*.hf.co (formerly *.huggingface.co), files
# in Xet storage (the Hub's default for new repositories) to the Xet bridge, or, with the hf_xet
# client huggingface_hub uses when installed, to the Xet CAS and transfer hosts.
HF_HOSTS = (
    "huggingface.co",
    "cdn-lfs.hf.co",
    "cdn-lfs-us-1.hf.co",
    "cdn-lfs.huggingface.co",
    "cdn-lfs-us-1.huggingface.co",
    "cas-bridge.xethub.hf.co",
    "cas-server.xethub.hf.co",
    "transfer.xethub.hf.co",
)


@dataclass(frozen=True)
class EgressHost:
    host: str
    port: int


def storage_hosts(model: ModelSettings) -> list[EgressHost]:
    """Hosts the storage initializer downloads the model (and the canary's) from.

    pvc:// stays in the cluster; oci:// model images are pulled by the kubelet (KServe's
    modelcar), not by the pod: neither needs egress. `storageHost` overrides the derived host."""
    uris = [model.storage_uri] + ([model.canary.storage_uri] if model.canary else [])
    hosts: list[EgressHost] = []
    for uri in uris:
        parsed = urlparse(uri)
        scheme = parsed.scheme
        if scheme in ("pvc", "oci"):
            continue
        if model.storage_host:
            host = EgressHost(model.storage_host, 443)
        elif scheme == "gs":
            host = EgressHost("storage.googleapis.com", 443)
        elif scheme == "s3":
            # boto3's default virtual-hosted addressing: <bucket>.s3.amazonaws.com
            host = EgressHost(f"{parsed.netloc}.s3.amazonaws.com", 443)
        elif scheme == "hf":
            # The Hub answers file downloads with a redirect to its CDNs (below): with
            # REGISTRY_ONLY, huggingface.co alone stops every model at the first weight file.
            for name in HF_HOSTS:
                if EgressHost(name, 443) not in hosts:
                    hosts.append(EgressHost(name, 443))
            continue
        else:  # https://host[:port]/..., azure://<account>.blob.core.windows.net/...
            host = EgressHost(parsed.hostname or parsed.netloc, parsed.port or 443)
        if host not in hosts:
            hosts.append(host)
    return hosts


def egress_hosts(model: ModelSettings) -> list[EgressHost]:
    allow = [EgressHost(h, 443) for h in model.egress_allowlist]
    return storage_hosts(model) + [h for h in allow if h not in storage_hosts(model)]


def service_entry(model: ModelSettings) -> dict[str, Any] | None:
    """With REGISTRY_ONLY egress, the ONLY external hosts this model's pods can reach, visible
    to this namespace alone (`exportTo: ["."]`). TLS passthrough: the storage client verifies
    the server certificate end to end."""
    hosts = egress_hosts(model)
    if not hosts:
        return None
    ports = sorted({h.port for h in hosts})
    return {
        "apiVersion": NETWORKING_API,
        "kind": "ServiceEntry",
        "metadata": metadata(access.short_name(model.name, "egress"), model.ns, _labels(model)),
        "spec": {
            "hosts": sorted({h.host for h in hosts}),
            "exportTo": ["."],
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",
            "ports": [{"number": p, "name": f"tls-{p}", "protocol": "TLS"} for p in ports],
        },
    }


# ---- NetworkPolicies (defense in depth under the mesh) --------------------------------------


def _netpol(model: ModelSettings, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(name, model.ns, _labels(model)),
        "spec": spec,
    }


def tcp(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def _ns_selector(name: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


def network_policies(
    model: ModelSettings, rows: list[access.AccessRow], observability: bool = True
) -> list[dict[str, Any]]:
    """Default deny (ingress and egress) for the namespace, then only: DNS, istiod (xDS and
    certificates, 15012), the ingress gateway and the callers' namespaces to the model port,
    telemetry (scraping in, OTLP access logs and traces out to the collector) when
    observability is on, HTTPS egress when the model has external hosts, and the window
    controllers to the API server."""
    model_pods = {"matchLabels": workload_selector(model)}
    out = [
        _netpol(model, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _netpol(
            model,
            "allow-dns",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": _ns_selector("kube-system"),
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, tcp(53)],
                    }
                ],
            },
        ),
        _netpol(
            model,
            "allow-istiod",
            {
                # Every pod here has a sidecar (the window controllers too).
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": _ns_selector(ISTIO_NAMESPACE),
                                "podSelector": {"matchLabels": {"app": "istiod"}},
                            }
                        ],
                        "ports": [tcp(15012)],
                    }
                ],
            },
        ),
    ]
    sources: list[dict[str, Any]] = []
    if any(r.kind == "integration" for r in rows):
        sources.append(
            {
                "namespaceSelector": _ns_selector(INGRESS_NAMESPACE),
                "podSelector": {"matchLabels": {"istio": "ingressgateway"}},
            }
        )
    for caller_ns in sorted({r.caller.split("/")[0] for r in rows if r.kind == "workload"}):
        sources.append({"namespaceSelector": _ns_selector(caller_ns)})
    if sources:
        out.append(
            _netpol(
                model,
                "allow-callers",
                {
                    "podSelector": model_pods,
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": sources, "ports": [tcp(access.MODEL_PORT)]}],
                },
            )
        )
    if observability:
        telemetry_peer = {"namespaceSelector": _ns_selector(OBSERVABILITY_NAMESPACE)}
        out.append(
            _netpol(
                model,
                "allow-telemetry",
                {
                    "podSelector": {},
                    "policyTypes": ["Ingress", "Egress"],
                    # In: Istio's merged Prometheus endpoint (15020) and Envoy's stats (15090).
                    "ingress": [{"from": [telemetry_peer], "ports": [tcp(15020), tcp(15090)]}],
                    # Out: every sidecar's audit log (OTel ALS) and traces to the collector.
                    "egress": [collector.telemetry_egress_rule()],
                },
            )
        )
    hosts = egress_hosts(model)
    if hosts:
        # NetworkPolicy cannot name hosts: the port and "outside the cluster" are enforced here,
        # the exact host list by the mesh (REGISTRY_ONLY + the ServiceEntry above).
        out.append(
            _netpol(
                model,
                "allow-external-https",
                {
                    "podSelector": model_pods,
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": _PRIVATE_RANGES}}],
                            "ports": [tcp(p) for p in sorted({h.port for h in hosts})],
                        }
                    ],
                },
            )
        )
    if any(r.batch for r in rows):
        out.append(
            _netpol(
                model,
                "allow-window-controller",
                {
                    "podSelector": {"matchLabels": workload_selector_for_controller(model)},
                    "policyTypes": ["Egress"],
                    # The API server is reached through the `kubernetes` Service (443) and,
                    # after DNAT, on the control-plane node's port (6443 on kind/kubeadm).
                    "egress": [{"ports": [tcp(443), tcp(6443)]}],
                },
            )
        )
    return out


# ---- everything ------------------------------------------------------------------------------


def build(settings: Settings, model: ModelSettings, gateway: GatewayRef) -> ModelObjects:
    """Every object of one model, from the same access rows as the access matrix."""
    rows = access.rows(settings, model, gateway)
    objects = ModelObjects(namespace=namespace(model), rows=rows)
    objects.identity.append(service_account(model))
    allow = allow_policy(model, rows)
    if allow is not None:
        objects.allow.append(allow)
    objects.allow.append(deny_admin(model, rows))
    jwt = request_authentication(settings, model)
    if jwt is not None:
        objects.allow.append(jwt)
    for row in rows:
        if row.batch:
            objects.windows.append(window_policy(model, row))
            objects.guards.extend(window_controller(model, row))
    objects.deny_all = deny_all(model)
    objects.guards.extend(rbac(model))
    objects.guards.extend(network_policies(model, rows, settings.observability))
    for optional in (
        service_entry(model),
        rate_limit_filter(model, rows),
        masking_filter(settings, model),
    ):
        if optional is not None:
            objects.guards.append(optional)
    objects.workload.append(inference_service(model))
    objects.workload.append(virtual_service(settings, model, gateway))
    return objects
