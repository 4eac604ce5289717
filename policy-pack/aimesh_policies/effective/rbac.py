"""Effective RBAC: what every identity can do to models, the control plane and security objects.

Rights come from every Role, ClusterRole, RoleBinding and ClusterRoleBinding in the stack plus
the built-in ClusterRoles the API server creates (cluster-admin, admin, edit, view and the
`system:aggregate-to-*` roles they aggregate, encoded below from Kubernetes' bootstrap policy),
with aggregation resolved to a fixed point (`aggregationRule.clusterRoleSelectors`, matchLabels
and matchExpressions, over built-in and stack ClusterRoles alike). A ClusterRole the stack
redefines keeps its built-in rules too (the API server reconciles them back).

Matching is the RBAC authorizer's: a verb, group or resource `*` matches all; a resource matches
exactly (`pods/exec`) or as `*/<subresource>` (a rule for `pods/*` does NOT match `pods/exec`);
`resourceNames` limit a rule to those objects. A ServiceAccount also holds what its groups hold
(`system:serviceaccounts`, `system:serviceaccounts:<ns>`, `system:authenticated`); those groups,
`system:authenticated`, `system:unauthenticated` and `system:anonymous` are identities of their
own, judged like any other (their rights are everyone's).

A violation: an identity that is not a platform identity (ServiceAccounts of control-plane and
gateway namespaces, Kubernetes' own `system:` users and groups, configured `platformSubjects`)
can, in a model, control-plane, root or gateway namespace (or cluster-wide):
open a shell in, attach to, port-forward to or inject a container into pods (or proxy to the
kubelet), run code there (create or change pods or workload controllers), read Secrets, mint
ServiceAccount tokens or impersonate ServiceAccounts, write security objects
(AuthorizationPolicy, PeerAuthentication, RequestAuthentication, NetworkPolicy, EnvoyFilter,
Sidecar, Telemetry, WasmPlugin, admission policies and bindings, webhook configurations), or
escalate / bind roles or impersonate users and groups - unless the intent of that namespace
declares exactly that right for that identity (the program's window controllers may patch one
named AuthorizationPolicy; its managers manage InferenceServices).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_map, as_str, maps, str_list
from aimesh_policies.effective.intent import Intents, is_broad_subject, read_intents
from aimesh_policies.effective.table import table
from aimesh_policies.effective.workloads import MODEL_KINDS, discover, selector_matches
from aimesh_policies.framework import Context, Finding, Level, Policy, Severity, unknown_finding
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.meshlib import namespace_of

RBAC: Final = "rbac.authorization.k8s.io"
ROLE: Final = (RBAC, "Role")
CLUSTER_ROLE: Final = (RBAC, "ClusterRole")
ROLE_BINDING: Final = (RBAC, "RoleBinding")
CLUSTER_ROLE_BINDING: Final = (RBAC, "ClusterRoleBinding")
RBAC_KINDS: Final = frozenset({ROLE, CLUSTER_ROLE, ROLE_BINDING, CLUSTER_ROLE_BINDING})

_R: Final = ("get", "list", "watch")
_W: Final = ("create", "update", "patch", "delete", "deletecollection")
_AGG: Final = "rbac.authorization.k8s.io/aggregate-to-"


def _rule(verbs: Sequence[str], groups: Sequence[str], resources: Sequence[str]) -> dict[str, Any]:
    return {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}


# Kubernetes' bootstrap ClusterRoles that matter here (plugin/pkg/auth/authorizer/rbac/
# bootstrappolicy): name -> (labels, rules, what it aggregates: admin / edit / view).
BuiltinRole = tuple[dict[str, str], list[dict[str, Any]], list[str]]
BUILTIN_CLUSTER_ROLES: Final[Mapping[str, BuiltinRole]] = {
    "cluster-admin": ({}, [_rule(["*"], ["*"], ["*"])], []),
    "admin": ({}, [], ["admin"]),
    "edit": ({_AGG + "admin": "true"}, [], ["edit"]),
    "view": ({_AGG + "edit": "true"}, [], ["view"]),
    "system:aggregate-to-admin": (
        {_AGG + "admin": "true"},
        [
            _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
            _rule([*_R, *_W], [RBAC], ["roles", "rolebindings"]),
        ],
        [],
    ),
    "system:aggregate-to-edit": (
        {_AGG + "edit": "true"},
        [
            _rule(
                _R,
                [""],
                [
                    "pods/attach",
                    "pods/proxy",
                    "pods/exec",
                    "pods/portforward",
                    "secrets",
                    "services/proxy",
                ],
            ),
            _rule(["impersonate"], [""], ["serviceaccounts"]),
            _rule(_W, [""], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
            _rule(["create"], [""], ["pods/eviction"]),
            _rule(
                _W,
                [""],
                [
                    "replicationcontrollers",
                    "replicationcontrollers/scale",
                    "serviceaccounts",
                    "services",
                    "services/proxy",
                    "persistentvolumeclaims",
                    "configmaps",
                    "secrets",
                ],
            ),
            _rule(["create"], [""], ["serviceaccounts/token"]),
            _rule(
                _W,
                ["apps"],
                [
                    "statefulsets",
                    "statefulsets/scale",
                    "daemonsets",
                    "deployments",
                    "deployments/scale",
                    "deployments/rollback",
                    "replicasets",
                    "replicasets/scale",
                ],
            ),
            _rule(_W, ["autoscaling"], ["horizontalpodautoscalers"]),
            _rule(_W, ["batch"], ["jobs", "cronjobs"]),
            _rule(
                _W,
                ["extensions"],
                [
                    "daemonsets",
                    "deployments",
                    "deployments/scale",
                    "deployments/rollback",
                    "ingresses",
                    "replicasets",
                    "replicasets/scale",
                    "replicationcontrollers/scale",
                    "networkpolicies",
                ],
            ),
            _rule(_W, ["policy"], ["poddisruptionbudgets"]),
            _rule(_W, ["networking.k8s.io"], ["networkpolicies", "ingresses"]),
        ],
        [],
    ),
    "system:aggregate-to-view": (
        {_AGG + "view": "true"},
        [
            _rule(
                _R,
                [""],
                [
                    "pods",
                    "replicationcontrollers",
                    "replicationcontrollers/scale",
                    "serviceaccounts",
                    "services",
                    "services/status",
                    "endpoints",
                    "persistentvolumeclaims",
                    "persistentvolumeclaims/status",
                    "configmaps",
                    "limitranges",
                    "resourcequotas",
                    "bindings",
                    "events",
                    "pods/status",
                    "resourcequotas/status",
                    "namespaces/status",
                    "replicationcontrollers/status",
                    "pods/log",
                    "namespaces",
                ],
            ),
            _rule(_R, ["discovery.k8s.io"], ["endpointslices"]),
            _rule(
                _R,
                ["apps"],
                [
                    "controllerrevisions",
                    "statefulsets",
                    "statefulsets/status",
                    "statefulsets/scale",
                    "daemonsets",
                    "daemonsets/status",
                    "deployments",
                    "deployments/status",
                    "deployments/scale",
                    "replicasets",
                    "replicasets/status",
                    "replicasets/scale",
                ],
            ),
            _rule(_R, ["autoscaling"], ["horizontalpodautoscalers"]),
            _rule(_R, ["batch"], ["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
            _rule(_R, ["extensions", "networking.k8s.io"], ["ingresses", "networkpolicies"]),
            _rule(_R, ["policy"], ["poddisruptionbudgets"]),
        ],
        [],
    ),
}
_SELECTORS: Final = {
    "admin": {_AGG + "admin": "true"},
    "edit": {_AGG + "edit": "true"},
    "view": {_AGG + "view": "true"},
}


# --- the questions -------------------------------------------------------------------------------

MODEL: Final = "model"
CONTROL: Final = "control"
GATEWAY: Final = "gateway"
CLUSTER: Final = "cluster"


@dataclass(frozen=True)
class Question:
    capability: str
    verbs: tuple[str, ...]
    group: str
    resource: str  # "pods/exec", "secrets"
    scopes: frozenset[str]  # where it matters


def _q(
    capability: str, verbs: Sequence[str], group: str, resources: Sequence[str], *scopes: str
) -> list[Question]:
    return [Question(capability, tuple(verbs), group, r, frozenset(scopes)) for r in resources]


_EVERYWHERE: Final = (MODEL, CONTROL, GATEWAY)
_PODS: Final = (MODEL, CONTROL)
_RUN: Final = ("create", "update", "patch")
_SECURITY: Final = {
    "security.istio.io": ("authorizationpolicies", "peerauthentications", "requestauthentications"),
    "networking.k8s.io": ("networkpolicies",),
    "networking.istio.io": ("envoyfilters", "sidecars"),
    "telemetry.istio.io": ("telemetries",),
    "extensions.istio.io": ("wasmplugins",),
}
_ADMISSION: Final = (
    "validatingadmissionpolicies",
    "validatingadmissionpolicybindings",
    "mutatingadmissionpolicies",
    "mutatingadmissionpolicybindings",
    "validatingwebhookconfigurations",
    "mutatingwebhookconfigurations",
)
_WORKLOADS: Final = ("deployments", "statefulsets", "daemonsets", "replicasets")
QUESTIONS: Final = (
    *_q("exec into pods", ("create", "get"), "", ["pods/exec", "pods/attach"], *_PODS),
    *_q("port-forward to pods", ("create", "get"), "", ["pods/portforward"], *_PODS),
    *_q("inject containers", ("update", "patch"), "", ["pods/ephemeralcontainers"], *_PODS),
    *_q("proxy to kubelets (exec anywhere)", ("get", "create"), "", ["nodes/proxy"], CLUSTER),
    *_q("run pods", _RUN, "", ["pods"], *_PODS),
    *_q("run workloads", _RUN, "apps", _WORKLOADS, *_PODS),
    *_q("run jobs", _RUN, "batch", ["jobs", "cronjobs"], *_PODS),
    *_q("read secrets", _R, "", ["secrets"], *_EVERYWHERE),
    *_q("mint service-account tokens", ("create",), "", ["serviceaccounts/token"], *_PODS),
    *_q("impersonate service accounts", ("impersonate",), "", ["serviceaccounts"], *_PODS),
    *(
        q
        for group, resources in _SECURITY.items()
        for q in _q("write security objects", _W, group, resources, *_EVERYWHERE)
    ),
    *_q("write admission control", _W, "admissionregistration.k8s.io", _ADMISSION, CLUSTER),
    *_q(
        "escalate or bind roles",
        ("escalate", "bind"),
        RBAC,
        ["roles", "clusterroles"],
        *_EVERYWHERE,
    ),
    *_q("impersonate users and groups", ("impersonate",), "", ["users", "groups"], CLUSTER),
    *_q(
        "impersonate users and groups",
        ("impersonate",),
        "authentication.k8s.io",
        ["uids", "userextras"],
        CLUSTER,
    ),
)


def resource_matches(rule: Mapping[str, Any], resource: str) -> bool:
    _, _, sub = resource.partition("/")
    for value in str_list(rule.get("resources")):
        if value == "*" or value == resource:
            return True
        if sub and value == f"*/{sub}":
            return True
    return False


def rule_grants(rule: Mapping[str, Any], verb: str, group: str, resource: str) -> bool:
    verbs = str_list(rule.get("verbs"))
    groups = str_list(rule.get("apiGroups"))
    return (
        ("*" in verbs or verb in verbs)
        and ("*" in groups or group in groups)
        and resource_matches(rule, resource)
    )


def rule_names(rule: Mapping[str, Any]) -> frozenset[str] | None:
    """The objects a rule is limited to; None = every object."""
    names = str_list(rule.get("resourceNames"))
    return frozenset(names) if names else None


# --- roles, aggregation, bindings ----------------------------------------------------------------


@dataclass
class RoleSet:
    """Rules of every Role (by namespace) and ClusterRole (built-in and stack), aggregated."""

    cluster: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    namespaced: dict[tuple[str, str], list[Mapping[str, Any]]] = field(default_factory=dict)

    @classmethod
    def build(cls, objs: Sequence[K8sObject]) -> RoleSet:
        labels: dict[str, dict[str, str]] = {}
        own: dict[str, list[Mapping[str, Any]]] = {}
        selectors: dict[str, list[Mapping[str, Any]]] = {}
        for name, (builtin_labels, builtin_rules, aggregates) in BUILTIN_CLUSTER_ROLES.items():
            labels[name] = dict(builtin_labels)
            own[name] = list(builtin_rules)
            selectors[name] = [{"matchLabels": _SELECTORS[a]} for a in aggregates]
        found = cls()
        for obj in objs:
            if obj.group_kind == CLUSTER_ROLE:
                labels.setdefault(obj.name, {}).update(obj.labels)
                own.setdefault(obj.name, []).extend(maps(obj.body.get("rules")))
                selectors.setdefault(obj.name, []).extend(
                    maps(as_map(obj.body.get("aggregationRule")).get("clusterRoleSelectors"))
                )
            elif obj.group_kind == ROLE:
                key = (namespace_of(obj), obj.name)
                found.namespaced.setdefault(key, []).extend(maps(obj.body.get("rules")))
        # Aggregation to a fixed point: admin <- edit <- view chains, stack roles anywhere.
        rules = {n: list(r) for n, r in own.items()}
        changed = True
        while changed:
            changed = False
            for name, sels in selectors.items():
                for other, other_labels in labels.items():
                    if other == name or not any(selector_matches(s, other_labels) for s in sels):
                        continue
                    for rule in rules.get(other, []):
                        if rule not in rules[name]:
                            rules[name].append(rule)
                            changed = True
        found.cluster = rules
        return found

    def of(self, kind: str, name: str, namespace: str) -> list[Mapping[str, Any]]:
        if kind == "ClusterRole":
            return self.cluster.get(name, [])
        if kind == "Role":
            return self.namespaced.get((namespace, name), [])
        return []


Subject = tuple[str, str, str]  # (kind, namespace, name); namespace only for ServiceAccounts


def subjects_of(binding: K8sObject) -> list[Subject]:
    out: list[Subject] = []
    for item in maps(binding.body.get("subjects")):
        kind = as_str(item.get("kind")) or ""
        name = as_str(item.get("name")) or ""
        if kind == "ServiceAccount":
            out.append((kind, as_str(item.get("namespace")) or namespace_of(binding), name))
        elif kind == "User" and name.startswith("system:serviceaccount:"):
            ns, _, sa = name[len("system:serviceaccount:") :].partition(":")
            out.append(("ServiceAccount", ns, sa))
        elif kind in ("User", "Group"):
            out.append((kind, "", name))
    return out


def _show(subject: Subject) -> str:
    kind, namespace, name = subject
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


# --- platform identities --------------------------------------------------------------------------

PLATFORM_CONFIG: Final = {
    "platformSubjects": {
        "type": "array",
        "items": {"type": "string"},
        "default": [],
        "description": "Identities that may control models and the control plane, as "
        "`User:<name>`, `Group:<name>` or `ServiceAccount:<namespace>/<name>` (operators, "
        "CI deployers).",
    },
    "platformNamespaces": {
        "type": "array",
        "items": {"type": "string"},
        "default": [],
        "description": "Namespaces whose ServiceAccounts are platform identities, in addition "
        "to controlPlaneNamespaces and gatewayNamespaces.",
    },
}


def is_platform(subject: Subject, ctx: Context) -> bool:
    kind, namespace, name = subject
    configured = ctx.raw.get("platformSubjects")
    listed = str_list(configured) if isinstance(configured, list) else []
    if kind == "ServiceAccount":
        extra = ctx.raw.get("platformNamespaces")
        extra_ns = str_list(extra) if isinstance(extra, list) else []
        return (
            ctx.is_control_plane(namespace)
            or namespace in ctx.gateway_namespaces
            or namespace in extra_ns
            or f"ServiceAccount:{namespace}/{name}" in listed
        )
    if is_broad_subject(kind, name):
        return False
    return name.startswith("system:") or f"{kind}:{name}" in listed


# --- the evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Right:
    subject: Subject
    namespace: str  # "" = cluster-wide
    question: Question
    verb: str
    names: frozenset[str] | None
    binding: K8sObject


def rights(objs: Sequence[K8sObject], roles: RoleSet, scopes: Mapping[str, str]) -> list[Right]:
    """Every (subject, namespace, dangerous question) some binding grants. `scopes` maps the
    namespaces that matter to their scope (model / control / gateway)."""
    found: list[Right] = []
    for binding in objs:
        if binding.group_kind not in (ROLE_BINDING, CLUSTER_ROLE_BINDING):
            continue
        ref = as_map(binding.body.get("roleRef"))
        kind, name = as_str(ref.get("kind")) or "", as_str(ref.get("name")) or ""
        cluster_wide = binding.group_kind == CLUSTER_ROLE_BINDING
        namespace = "" if cluster_wide else namespace_of(binding)
        rules = roles.of(kind, name, namespace)
        if not rules or (kind == "Role" and cluster_wide):
            continue
        for question in QUESTIONS:
            if cluster_wide:
                where = [(ns, s) for ns, s in scopes.items() if s in question.scopes]
                if CLUSTER in question.scopes:
                    where.append(("", CLUSTER))
            else:
                scope = scopes.get(namespace)
                where = [(namespace, scope)] if scope in question.scopes else []
            if not where:
                continue
            for verb in question.verbs:
                granting = [
                    r for r in rules if rule_grants(r, verb, question.group, question.resource)
                ]
                if not granting:
                    continue
                names = _names(granting)
                for subject in subjects_of(binding):
                    for ns, _ in where:
                        found.append(Right(subject, ns, question, verb, names, binding))
    return found


def _names(rules: Sequence[Mapping[str, Any]]) -> frozenset[str] | None:
    """The objects some of `rules` reach (None = every object)."""
    found: set[str] = set()
    for rule in rules:
        limit = rule_names(rule)
        if limit is None:
            return None
        found |= limit
    return frozenset(found)


def _intended(right: Right, intents: Intents) -> bool:
    intent = intents.of(right.namespace)
    if intent is None:
        return False
    for grant in intent.rbac:
        if right.subject not in grant.subjects:
            continue
        for rule in grant.rules:
            if not rule_grants(rule, right.verb, right.question.group, right.question.resource):
                continue
            allowed = rule_names(rule)
            if allowed is None or (right.names is not None and right.names <= allowed):
                return True
    return False


def _scopes(objs: Sequence[K8sObject], ctx: Context, intents: Intents) -> dict[str, str]:
    scopes: dict[str, str] = {}
    for model in discover(objs, ctx, intents):
        scopes[model.namespace] = MODEL
    for namespace in ctx.gateway_namespaces:
        scopes.setdefault(namespace, GATEWAY)
    for namespace in (*ctx.control_plane_namespaces, ctx.mesh_root_namespace):
        scopes.setdefault(namespace, CONTROL)
    return scopes


_CRITICAL: Final = {
    ROLE: ("metadata.name", "metadata.namespace", "rules"),
    CLUSTER_ROLE: ("metadata.name", "metadata.labels", "rules", "aggregationRule"),
    ROLE_BINDING: ("metadata.namespace", "roleRef", "subjects"),
    CLUSTER_ROLE_BINDING: ("roleRef", "subjects"),
}


def check_rbac(
    objs: Sequence[K8sObject], ctx: Context, intents: Intents | None = None
) -> Iterator[Finding]:
    intents = intents if intents is not None else read_intents(objs, ctx)
    rbac_objs = [o for o in objs if o.group_kind in RBAC_KINDS]
    if not rbac_objs:
        return
    for obj in rbac_objs:
        if obj.get("metadata") is UNKNOWN:
            yield unknown_finding(obj, "metadata")
            continue
        for path in _CRITICAL[obj.group_kind]:
            unknown = obj.unknown(path)
            if unknown:
                yield unknown_finding(obj, unknown[0])
                break
    roles = RoleSet.build(rbac_objs)
    scopes = _scopes(objs, ctx, intents)
    by_subject: dict[Subject, list[Right]] = {}
    for right in rights(rbac_objs, roles, scopes):
        if is_platform(right.subject, ctx) or _intended(right, intents):
            continue
        by_subject.setdefault(right.subject, []).append(right)
    for subject, found in by_subject.items():
        # One row per capability and binding, with every namespace it reaches.
        grouped: dict[tuple[str, str], list[str]] = {}
        requests: dict[tuple[str, str], list[str]] = {}
        for right in found:
            role = as_str(as_map(right.binding.body.get("roleRef")).get("name"))
            key = (
                right.question.capability,
                f"{right.binding.kind} {right.binding.name} -> {role}",
            )
            where = right.namespace or "cluster-wide"
            if where not in grouped.setdefault(key, []):
                grouped[key].append(where)
            what = f"{right.verb} {right.question.resource}"
            if right.names is not None:
                what += f" ({', '.join(sorted(right.names))})"
            if what not in requests.setdefault(key, []):
                requests[key].append(what)
        rows = [(_places(grouped[key]), key[0], _few(requests[key]), key[1]) for key in grouped]
        grid = table(("namespaces", "can", "requests", "granted by"), rows)
        binding = found[0].binding
        yield Finding(
            f"{binding.ref}: {_show(subject)} is not a platform identity, yet it can control "
            f"models, the control plane or their security objects:\n{grid}\nFix: bind it only "
            "to the rights it needs (named resources, read verbs), or - for an operator or "
            "deployer - list it in platformSubjects.",
            binding.urn,
        )


def _few(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" +{len(items) - limit} more" if len(items) > limit else "")


def _places(namespaces: Sequence[str]) -> str:
    return _few(sorted(namespaces, key=lambda n: (n != "cluster-wide", n)))


POLICIES: Final = (
    Policy(
        name="rbac-forbid-nonplatform-control-of-models",
        description="No identity outside the platform can exec into, run code in, read secrets "
        "of, or write security objects in model and control-plane namespaces, or escalate.",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation="Bind workload identities and people only to the rights they need; keep "
        "exec, secrets, workload creation, security-object writes and escalate/bind/"
        "impersonate to platform identities (configure them in platformSubjects).",
        catches="Effective rights from every Role, ClusterRole and binding in the stack plus the "
        "built-in cluster-admin, admin, edit, view and system:aggregate-to-* roles (aggregation "
        "resolved, wildcards, `*/subresource`, resourceNames): pods/exec, attach, portforward, "
        "ephemeral containers, nodes/proxy, creating or changing pods and workload "
        "controllers, reading Secrets, minting tokens or impersonating ServiceAccounts, writing "
        "AuthorizationPolicy, PeerAuthentication, RequestAuthentication, NetworkPolicy, "
        "EnvoyFilter, Sidecar, Telemetry, WasmPlugin, admission policies, bindings and webhook "
        "configurations, escalate/bind/impersonate - in model, control-plane, root or gateway "
        "namespaces or cluster-wide - held by any identity (workload identities, people, "
        "system:authenticated, system:serviceaccounts[:ns], system:unauthenticated) that is "
        "not a platform identity, unless the model namespace's intent declares that right.",
        check_stack=lambda objs, ctx: check_rbac(objs, ctx),
        kinds=RBAC_KINDS | MODEL_KINDS,
        config=PLATFORM_CONFIG,
    ),
)

__all__ = ["BUILTIN_CLUSTER_ROLES", "POLICIES", "RoleSet", "resource_matches", "rule_grants"]
