"""Declared intent: what a stack says its models' access should be, read from the stack itself.

The pack never imports the program, so the program publishes its intent as data in the stack:
one ConfigMap per model namespace, named `aimesh-intent` and labelled `aimesh.io/intent`, whose
`intent.json` holds the declared access rows (built from the same rows as the model's
AuthorizationPolicies), the protective layers it generates (operator paths denied to
non-admins, the trusted JWT issuers and where their keys come from, the NetworkPolicies), the
entry paths (gateway and hosts) and the RBAC it grants. One more, `scope: mesh`, in the mesh
root namespace, holds the generated telemetry (access-log and metric providers, the proxy
statistics and alert rules the alerts need, the collector's audit pipeline).

An intent object is itself an attack surface, so it is judged too (`problems`): a second intent
for a namespace, one that names another namespace than its own, one outside a model namespace
(control plane, gateway, root), one that cannot be read, and one that is itself too broad
(wildcard or namespace-wide callers, any-path or any-method operations, an empty workload
selector, grants of RBAC to whole groups, rights in another namespace). A stack without intent
is judged on invariants only, and says so (`aimesh-model-namespace-require-intent`).

Schema (`intent.json`, version 1, model scope):

    {"version": 1, "model": "<name>", "namespace": "<ns>", "trustDomain": "cluster.local",
     "selector": {"aimesh.io/model": "<name>"}, "ports": [8080],
     "grants": [{"caller": "payments/checkout", "kind": "workload" | "integration",
                 "role": "read" | "invoke" | "admin", "principal": "<td>/ns/<ns>/sa/<sa>",
                 "requestPrincipals": ["<iss>/<sub>"], "audiences": ["..."],
                 "operations": [{"methods": ["GET"], "paths": ["/v1/models"]}],
                 "window": false, "policy": "<AuthorizationPolicy name>"}],
     "adminPaths": ["/v2/repository*", ...],
     "issuers": [{"issuer": "https://...", "jwksUri": "https://...",
                  "fromHeaders": [{"name": "Authorization", "prefix": "Bearer "}]}],
     "entries": [{"gateway": "istio-ingress/aimesh-gateway", "hosts": ["<model>.<domain>"],
                  "serves": ["*.<domain>"]}],
     "networkPolicies": [{"name": "default-deny", "spec": {...}}],
     "rbac": [{"subjects": [{"kind": "ServiceAccount", "name": "...", "namespace": "..."}],
               "rules": [{"apiGroups": [...], "resources": [...], "verbs": [...],
                          "resourceNames": [...]}]}],
     "audit": {"reason": "...", "until": "YYYY-MM-DD"}}   (only while in audit mode)

Mesh scope (`"scope": "mesh"`, root namespace): `accessLogProviders`, `metricsProviders`,
`proxyStatsInclusionRegexps`, `extensionProviders` (the audit/metrics provider definitions),
`alerts` ([{"rule": "<ns>/<PrometheusRule>", "alert": "...", "expr": "...", "for": "2m"}]),
`collector` ({"logsPipelines": {"logs": {"processors": [...], "exporters": [...]}}, "agents":
{"<namespace>/<release>": {"logsPipelines": {...}}}}: other collector releases, e.g. node agents).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_bool, as_int, as_list, as_map, as_str, get, maps
from aimesh_policies.framework import Context, Finding, finding, parse_day, unknown_finding
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.meshlib import namespace_of

INTENT_NAME: Final = "aimesh-intent"
INTENT_LABEL: Final = "aimesh.io/intent"
INTENT_KEY: Final = "intent.json"
VERSION: Final = 1
CONFIGMAP: Final = ("", "ConfigMap")

_PRINCIPAL: Final = re.compile(r"^[^*/\s]+/ns/[^*/\s]+/sa/[^*/\s]+$")
BROAD_GROUPS: Final = frozenset(
    {"system:authenticated", "system:unauthenticated", "system:serviceaccounts"}
)


@dataclass(frozen=True)
class Operation:
    methods: tuple[str, ...]
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Grant:
    """One declared access row."""

    caller: str
    kind: str  # "workload" | "integration"
    role: str
    principal: str
    request_principals: tuple[str, ...]
    audiences: tuple[str, ...]
    operations: tuple[Operation, ...]
    window: bool  # a batch grant: closed in the manifest, opened by its CronJobs at runtime
    policy: str


@dataclass(frozen=True)
class Issuer:
    issuer: str
    jwks_uri: str
    from_headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Entry:
    gateway: str  # "<ns>/<name>"
    hosts: tuple[str, ...]
    # The gateway's server hosts as the program configures them; used only when the Gateway is
    # not in the stack (it belongs to the platform's stack). Empty: assume it serves every host.
    serves: tuple[str, ...] = ()


@dataclass(frozen=True)
class Audit:
    """The model is in audit mode (its ALLOW rules in dry-run) for a reason, until a day."""

    reason: str
    until: datetime.date | None  # None: not a YYYY-MM-DD date (never current)

    def current(self, day: datetime.date) -> bool:
        return bool(self.reason) and self.until is not None and self.until >= day


@dataclass(frozen=True)
class RbacGrant:
    subjects: tuple[tuple[str, str, str], ...]  # (kind, namespace, name)
    rules: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class Intent:
    """A model namespace's declared intent."""

    obj: K8sObject
    model: str
    namespace: str
    trust_domain: str
    selector: Mapping[str, str]
    ports: tuple[int, ...]
    grants: tuple[Grant, ...]
    admin_paths: tuple[str, ...]
    issuers: tuple[Issuer, ...]
    entries: tuple[Entry, ...]
    network_policies: tuple[Mapping[str, Any], ...]
    rbac: tuple[RbacGrant, ...]
    audit: Audit | None = None

    @property
    def admin_principals(self) -> frozenset[str]:
        return frozenset(g.principal for g in self.grants if g.role == "admin")


@dataclass(frozen=True)
class Alert:
    rule: str  # "<ns>/<name>" of the PrometheusRule
    alert: str
    expr: str
    for_: str


@dataclass(frozen=True)
class MeshIntent:
    """The mesh-wide generated telemetry."""

    obj: K8sObject
    access_log_providers: tuple[str, ...]
    metrics_providers: tuple[str, ...]
    proxy_stats_inclusion: tuple[str, ...]
    extension_providers: Mapping[str, Mapping[str, Any]]
    alerts: tuple[Alert, ...]
    # The collector's audit pipelines: name ("logs", "logs/<x>") -> (processors, exporters).
    collector_pipelines: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]
    # Other collector releases with audit pipelines of their own (node agents), by
    # "<namespace>/<release>": their pipelines, declared the same way.
    agent_pipelines: Mapping[str, Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = field(
        default_factory=dict
    )


@dataclass
class Intents:
    """Every intent of a stack, with what is wrong with the intent objects themselves."""

    models: dict[str, Intent] = field(default_factory=dict)  # namespace -> intent
    mesh: MeshIntent | None = None
    problems: list[Finding] = field(default_factory=list)
    # Namespaces whose intent cannot be read (unknown or broken): judged as "cannot verify".
    unreadable: dict[str, Finding] = field(default_factory=dict)

    def of(self, namespace: str) -> Intent | None:
        return self.models.get(namespace)


def is_intent_object(obj: K8sObject) -> bool:
    """A ConfigMap that claims to be intent: the well-known name or the label (a forged copy
    under another name still counts, so it cannot hide) - or one whose name or labels are
    unknown until apply and that carries (or may carry) intent.json."""
    if obj.group_kind != CONFIGMAP:
        return False
    if obj.name == INTENT_NAME or INTENT_LABEL in obj.labels:
        return True
    meta = obj.body.get("metadata")
    identity_unknown = (
        meta is UNKNOWN
        or get(meta, "name") is UNKNOWN
        or get(meta, "labels") is UNKNOWN
        or as_map(get(meta, "labels")).get(INTENT_LABEL) is UNKNOWN
    )
    data = obj.body.get("data")
    return identity_unknown and (data is UNKNOWN or INTENT_KEY in as_map(data))


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(v for v in as_list(value) if isinstance(v, str))


class _Bad(Exception):  # noqa: N818 - a parse failure with its message
    pass


def _need_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise _Bad(f"`{key}` must be a non-empty string")
    return value


def _operations(value: Any) -> tuple[Operation, ...]:
    return tuple(Operation(_strs(op.get("methods")), _strs(op.get("paths"))) for op in maps(value))


def _grant(item: Mapping[str, Any]) -> Grant:
    return Grant(
        caller=_need_str(item, "caller"),
        kind=as_str(item.get("kind")) or "workload",
        role=as_str(item.get("role")) or "",
        principal=_need_str(item, "principal"),
        request_principals=_strs(item.get("requestPrincipals")),
        audiences=_strs(item.get("audiences")),
        operations=_operations(item.get("operations")),
        window=as_bool(item.get("window")) is True,
        policy=as_str(item.get("policy")) or "",
    )


def _subject(item: Mapping[str, Any], namespace: str) -> tuple[str, str, str]:
    kind = as_str(item.get("kind")) or ""
    ns = (as_str(item.get("namespace")) or namespace) if kind == "ServiceAccount" else ""
    return kind, ns, as_str(item.get("name")) or ""


def parse_model(obj: K8sObject, data: Mapping[str, Any]) -> Intent:
    namespace = _need_str(data, "namespace")
    selector = {k: v for k, v in as_map(data.get("selector")).items() if isinstance(v, str)}
    return Intent(
        obj=obj,
        model=_need_str(data, "model"),
        namespace=namespace,
        trust_domain=as_str(data.get("trustDomain")) or "cluster.local",
        selector=selector,
        ports=tuple(p for p in (as_int(v) for v in as_list(data.get("ports"))) if p) or (8080,),
        grants=tuple(_grant(g) for g in maps(data.get("grants"))),
        admin_paths=_strs(data.get("adminPaths")),
        issuers=tuple(
            Issuer(
                _need_str(i, "issuer"),
                as_str(i.get("jwksUri")) or "",
                tuple(
                    (as_str(h.get("name")) or "", as_str(h.get("prefix")) or "")
                    for h in maps(i.get("fromHeaders"))
                ),
            )
            for i in maps(data.get("issuers"))
        ),
        entries=tuple(
            Entry(_need_str(e, "gateway"), _strs(e.get("hosts")), _strs(e.get("serves")))
            for e in maps(data.get("entries"))
        ),
        network_policies=tuple(maps(data.get("networkPolicies"))),
        rbac=tuple(
            RbacGrant(
                tuple(_subject(s, namespace) for s in maps(r.get("subjects"))),
                tuple(maps(r.get("rules"))),
            )
            for r in maps(data.get("rbac"))
        ),
        audit=_audit(data.get("audit")),
    )


def _audit(value: Any) -> Audit | None:
    if value is None:
        return None
    audit = as_map(value)
    return Audit((as_str(audit.get("reason")) or "").strip(), parse_day(audit.get("until")))


def parse_mesh(obj: K8sObject, data: Mapping[str, Any]) -> MeshIntent:
    collector = as_map(data.get("collector"))
    return MeshIntent(
        obj=obj,
        access_log_providers=_strs(data.get("accessLogProviders")),
        metrics_providers=_strs(data.get("metricsProviders")),
        proxy_stats_inclusion=_strs(data.get("proxyStatsInclusionRegexps")),
        extension_providers={
            n: p
            for p in maps(data.get("extensionProviders"))
            if isinstance(n := p.get("name"), str)
        },
        alerts=tuple(
            Alert(
                _need_str(a, "rule"),
                _need_str(a, "alert"),
                as_str(a.get("expr")) or "",
                as_str(a.get("for")) or "",
            )
            for a in maps(data.get("alerts"))
        ),
        collector_pipelines=_declared_pipelines(collector),
        agent_pipelines={
            str(release): _declared_pipelines(as_map(agent))
            for release, agent in as_map(collector.get("agents")).items()
        },
    )


def _declared_pipelines(
    collector: Mapping[str, Any],
) -> Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    return {
        name: (_strs(as_map(p).get("processors")), _strs(as_map(p).get("exporters")))
        for name, p in as_map(collector.get("logsPipelines")).items()
    }


def _payload(obj: K8sObject) -> tuple[Mapping[str, Any] | None, Finding | None]:
    """The decoded intent.json, or the finding explaining why it cannot be read."""
    data = obj.get("data")
    raw = as_map(data).get(INTENT_KEY) if data is not UNKNOWN else UNKNOWN
    if raw is UNKNOWN:
        return None, unknown_finding(obj, "data" if data is UNKNOWN else f"data.{INTENT_KEY}")
    unknown = obj.unknown("metadata.name") or obj.unknown("metadata.namespace")
    unknown = unknown or obj.unknown("metadata.labels")
    if obj.body.get("metadata") is UNKNOWN or unknown:
        return None, unknown_finding(obj, (unknown or ["metadata"])[0])
    if not isinstance(raw, str):
        return None, finding(
            obj,
            f"data.{INTENT_KEY}",
            "the intent object holds no intent.json: the access it should declare cannot be read",
            f"put the declared intent in data.{INTENT_KEY} (or remove the object)",
        )
    try:
        decoded = json.loads(raw)
    except (ValueError, RecursionError):
        decoded = None
    if not isinstance(decoded, Mapping) or as_int(decoded.get("version")) != VERSION:
        return None, finding(
            obj,
            f"data.{INTENT_KEY}",
            f"is not intent version {VERSION} JSON: the declared access cannot be read",
            "publish the intent the program generates (version 1 JSON)",
        )
    return decoded, None


def read_intents(objs: Iterable[K8sObject], ctx: Context) -> Intents:
    """Every intent object of the stack, parsed and judged (never raises)."""
    found = Intents()
    by_namespace: dict[str, list[K8sObject]] = {}
    mesh_objects: list[K8sObject] = []
    for obj in objs:
        if not is_intent_object(obj):
            continue
        data, problem = _payload(obj)
        namespace = namespace_of(obj)
        if problem is not None:
            found.problems.append(problem)
            found.unreadable.setdefault(namespace, problem)
            continue
        assert data is not None
        if as_str(data.get("scope")) == "mesh":
            mesh_objects.append(obj)
            if namespace != ctx.mesh_root_namespace:
                found.problems.append(
                    finding(
                        obj,
                        "metadata.namespace",
                        f"mesh intent outside the mesh root namespace {ctx.mesh_root_namespace}: "
                        "a copy elsewhere could declare weaker telemetry",
                        f"keep the one mesh intent in {ctx.mesh_root_namespace}",
                    )
                )
                continue
            try:
                found.mesh = parse_mesh(obj, data)
            except _Bad as exc:
                found.problems.append(_unreadable(obj, str(exc)))
            continue
        by_namespace.setdefault(namespace, []).append(obj)
        try:
            intent = parse_model(obj, data)
        except _Bad as exc:
            problem = _unreadable(obj, str(exc))
            found.problems.append(problem)
            found.unreadable.setdefault(namespace, problem)
            continue
        problems = _misplaced(intent, namespace, ctx) + list(_too_broad(intent))
        found.problems.extend(problems)
        if problems:
            found.unreadable.setdefault(namespace, problems[0])
        elif namespace not in found.models:
            found.models[namespace] = intent
    for namespace, group in by_namespace.items():
        if len(group) > 1:
            names = ", ".join(sorted(o.name for o in group))
            for obj in group:
                found.problems.append(
                    finding(
                        obj,
                        "metadata",
                        f"namespace {namespace} has {len(group)} intent objects ({names}): a "
                        "forged second intent could declare wider access than the program's",
                        f"keep exactly one ConfigMap {INTENT_NAME} in {namespace}",
                    )
                )
            # Which one is real cannot be told: the namespace is judged as "cannot verify".
            found.models.pop(namespace, None)
            found.unreadable.setdefault(namespace, found.problems[-1])
    if len(mesh_objects) > 1:
        for obj in mesh_objects:
            found.problems.append(
                finding(
                    obj,
                    "metadata",
                    f"{len(mesh_objects)} mesh intent objects: a forged one could declare weaker "
                    "telemetry",
                    f"keep exactly one mesh intent in {ctx.mesh_root_namespace}",
                )
            )
        found.mesh = None
    return found


def _unreadable(obj: K8sObject, why: str) -> Finding:
    return finding(
        obj,
        f"data.{INTENT_KEY}",
        f"the intent cannot be read ({why})",
        "publish the intent the program generates",
    )


def _misplaced(intent: Intent, namespace: str, ctx: Context) -> list[Finding]:
    obj = intent.obj
    if intent.namespace != namespace:
        return [
            finding(
                obj,
                "metadata.namespace",
                f"intent in namespace {namespace} declares the access of namespace "
                f"{intent.namespace}: intent may only describe its own namespace",
                f"move it to {intent.namespace} (or fix its `namespace`)",
            )
        ]
    if (
        ctx.is_control_plane(namespace)
        or namespace in ctx.gateway_namespaces
        or namespace == ctx.mesh_root_namespace
    ):
        return [
            finding(
                obj,
                "metadata.namespace",
                f"model intent in {namespace}, a control-plane, gateway or root namespace: no "
                "model is served there",
                "publish intent only in model namespaces",
            )
        ]
    return []


def is_broad_subject(kind: str, name: str) -> bool:
    """A subject that is everyone, every pod, or every pod of a namespace."""
    if kind == "Group":
        return name in BROAD_GROUPS or name.startswith("system:serviceaccounts:")
    return kind == "User" and name == "system:anonymous"


def _wild_path(path: str, role: str) -> bool:
    """A path that covers too much: any path at all, or - outside the admin role, whose operator
    endpoints are prefix/suffix forms - any prefix, suffix or multi-segment wildcard (a `{*}`
    template segment is one segment, which the program's v2 version paths use)."""
    if path in ("", "*", "/*", "{**}", "/{**}"):
        return True
    return role != "admin" and "*" in path.replace("{*}", "")


def _too_broad(intent: Intent) -> Iterable[Finding]:
    """Intent that itself grants too much: it would make any widening look intended."""
    obj = intent.obj
    at = f"data.{INTENT_KEY}"
    if not intent.selector:
        yield finding(
            obj,
            at,
            "declares an empty workload selector: it would cover every pod of the namespace",
            "select the model's pods (e.g. aimesh.io/model: <name>)",
        )
    for i, grant in enumerate(intent.grants):
        where = f"{at} grants[{i}] ({grant.caller})"
        why = _grant_breadth(grant)
        if why:
            yield finding(obj, where, f"is too broad to be intent: {why}", _BROAD_FIX)
    for i, path in enumerate(intent.admin_paths):
        if path in ("", "*", "/*", "/"):
            yield finding(
                obj,
                f"{at} adminPaths[{i}]",
                f"operator path {path!r} covers every path",
                _BROAD_FIX,
            )
    for i, entry in enumerate(intent.entries):
        if any("*" in h for h in entry.hosts) or not entry.hosts:
            yield finding(
                obj,
                f"{at} entries[{i}]",
                "declares a wildcard (or no) host on the gateway: every host would be intended",
                "list the model's exact hosts",
            )
    for i, rbac in enumerate(intent.rbac):
        for kind, _, name in rbac.subjects:
            if is_broad_subject(kind, name):
                yield finding(
                    obj,
                    f"{at} rbac[{i}]",
                    f"grants RBAC to the whole group {name}",
                    "name the users, groups or service accounts that need the rights",
                )
        for rule in rbac.rules:
            if "*" in _strs(rule.get("verbs")) or "*" in _strs(rule.get("resources")):
                yield finding(
                    obj,
                    f"{at} rbac[{i}]",
                    "declares wildcard RBAC verbs or resources",
                    "declare the exact verbs and resources",
                )


_BROAD_FIX: Final = (
    "declare exact principals (<td>/ns/<ns>/sa/<sa>), exact request principals (<iss>/<sub> or "
    "<iss>/*), and exact methods and paths"
)


def _grant_breadth(grant: Grant) -> str:
    if not _PRINCIPAL.match(grant.principal):
        return f"principal {grant.principal!r} is not one exact <td>/ns/<ns>/sa/<sa>"
    for rp in grant.request_principals:
        issuer, _, subject = rp.rpartition("/")
        if not issuer or "*" in issuer or (subject != "*" and "*" in subject):
            return f"request principal {rp!r} is not <iss>/<sub> or <iss>/*"
    if grant.kind == "integration" and not grant.request_principals:
        return "an integration grant without request principals admits its peer without a token"
    if not grant.operations:
        return "no operations: every method on every path"
    for op in grant.operations:
        if not op.methods or any("*" in m for m in op.methods):
            return "an operation with any method"
        if not op.paths or any(_wild_path(p, grant.role) for p in op.paths):
            return f"an operation with a wildcard path {list(op.paths)}"
    return ""


def intent_namespaces(intents: Intents) -> set[str]:
    return set(intents.models) | set(intents.unreadable)


def required_missing(model_namespaces: set[str], intents: Intents) -> list[str]:
    """Model namespaces without any intent object."""
    return sorted(model_namespaces - intent_namespaces(intents))


__all__ = [
    "INTENT_LABEL",
    "INTENT_NAME",
    "Alert",
    "Audit",
    "Entry",
    "Grant",
    "Intent",
    "Intents",
    "Issuer",
    "MeshIntent",
    "Operation",
    "RbacGrant",
    "is_intent_object",
    "read_intents",
]
