"""Model and key protection: model artifacts, certificate keys and the API rights over both.

- A model fetched over plain http can be read or swapped in transit (a poisoned model serves
  attacker-chosen answers with the platform's identity).
- A weak certificate key undermines the gateway's TLS.
- RBAC that hands wildcard or write rights on KServe or Istio security/networking objects (or
  cluster-admin) to every service account or every authenticated user lets any pod rewrite the
  zero-trust configuration itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from aimesh_policies.accessors import (
    UNKNOWN,
    as_bool,
    as_int,
    as_list,
    as_map,
    as_str,
    get,
    maps,
    str_list,
)
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    as_manifest,
    finding,
    unknown_finding,
)
from aimesh_policies.guards import unknown_at
from aimesh_policies.k8s_object import HELM_VALUES, K8sObject
from aimesh_policies.meshlib import namespace_of
from aimesh_policies.pods import ISVC_COMPONENTS, ISVC_CONTAINER_KEYS, KSERVE_GROUP
from aimesh_policies.workload import KSERVE_CHARTS

CERTIFICATE: Final = ("cert-manager.io", "Certificate")
RBAC: Final = "rbac.authorization.k8s.io"
ROLE: Final = (RBAC, "Role")
CLUSTER_ROLE: Final = (RBAC, "ClusterRole")
ROLE_BINDING: Final = (RBAC, "RoleBinding")
CLUSTER_ROLE_BINDING: Final = (RBAC, "ClusterRoleBinding")

MODEL_KINDS: Final = frozenset(
    {
        (KSERVE_GROUP, "InferenceService"),
        (KSERVE_GROUP, "LLMInferenceService"),
        (KSERVE_GROUP, "LLMInferenceServiceConfig"),
        (KSERVE_GROUP, "TrainedModel"),
        (KSERVE_GROUP, "LocalModelCache"),
        (KSERVE_GROUP, "LocalModelNamespaceCache"),
    }
)
# Keys whose string value is a model location, wherever they sit in a KServe spec.
_URI_KEYS: Final = frozenset({"storageUri", "sourceModelUri", "uri"})
# KServe's switch (on the storage Secret or ServiceAccount) that makes S3 downloads plain http.
S3_USE_HTTPS: Final = "serving.kserve.io/s3-usehttps"
S3_VERIFY_SSL: Final = "serving.kserve.io/s3-verifyssl"

MIN_KEY_SIZE: Final = {"RSA": 2048, "ECDSA": 256}

# --- model storage -------------------------------------------------------------------------------


def _safe_location(uri: str) -> str:
    """`http://host/...` without user info, path or query: never echo credentials or tokens."""
    try:
        host = urlsplit(uri.strip()).hostname or "?"
    except ValueError:
        host = "?"
    return f"http://{host}/..."


# Blocks of a KServe spec that may hold a model location: unknown, they hide it.
_URI_HOLDERS: Final = frozenset(
    {
        *ISVC_COMPONENTS,
        *ISVC_CONTAINER_KEYS,
        "storage",
        "containers",
        "initContainers",
        "workerSpec",
        "template",
        "worker",
        "prefill",
    }
)


def _uris(value: Any, at: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(path, value) of every model-location field under a KServe spec (bounded depth):
    storageUri / uri / sourceModelUri anywhere, storage.path, and STORAGE_URI env values."""
    if depth > 12:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{at}.{key}"
            if key in _URI_KEYS or (key == "path" and at.endswith(".storage")):
                yield here, item
            elif item is UNKNOWN and key in _URI_HOLDERS:
                yield here, item  # a whole component / container / storage block unknown
            elif key in ("env",):
                for i, env in enumerate(as_list(item)):
                    if isinstance(env, Mapping) and as_str(env.get("name")) == "STORAGE_URI":
                        yield f"{here}[{i}].value", env.get("value")
            else:
                yield from _uris(item, here, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _uris(item, f"{at}[{i}]", depth + 1)


def _is_off(value: Any) -> bool:
    text = value.strip() if isinstance(value, str) else value
    return text == "0" or text == 0 or as_bool(text) is False


_S3_SWITCHES: Final = (
    (S3_USE_HTTPS, "useHttps", "download models from S3 over plain http"),
    (
        S3_VERIFY_SSL,
        "verifySSL",
        "accept any certificate from the S3 endpoint (no TLS "
        "verification: anyone in the path can serve a model)",
    ),
)


# Data keys that make a Secret an S3 credential for KServe's storage initializer (the documented
# env-style names and KServe's default s3AccessKeyIDName / s3SecretAccessKeyName).
S3_CREDENTIAL_KEYS: Final = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "awsAccessKeyID", "awsSecretAccessKey"}
)


def _s3_credentials(obj: K8sObject) -> bool:
    """Whether a Secret carries S3 credentials (so KServe reads its S3 annotations)."""
    keys = {*as_map(obj.body.get("data")), *as_map(obj.body.get("stringData"))}
    return bool(keys & S3_CREDENTIAL_KEYS)


def _plain_http_storage(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if obj.group_kind == ("", "Secret") and _s3_credentials(obj):
        # An S3 credential whose whole annotation map is unknown until apply may switch https or
        # TLS verification off (other Secrets are never read for these switches).
        if obj.body.get("metadata") is UNKNOWN:
            yield unknown_finding(obj, "metadata")
            return
        if obj.get("metadata.annotations") is UNKNOWN:
            yield unknown_finding(obj, "metadata.annotations")
            return
    if obj.group_kind in (("", "Secret"), ("", "ServiceAccount")):
        for annotation, _, what in _S3_SWITCHES:
            if get(obj.body, "metadata.annotations") is not UNKNOWN and (
                as_map(get(obj.body, "metadata.annotations")).get(annotation) is UNKNOWN
            ):
                yield unknown_finding(obj, f"metadata.annotations.{annotation}")
            elif _is_off(obj.annotations.get(annotation)):
                yield finding(
                    obj,
                    f"metadata.annotations.{annotation}",
                    f"tells KServe's storage initializer to {what}",
                    'remove the annotation or set it "1"',
                )
        return
    if obj.group_kind == HELM_VALUES:
        if as_str(obj.get("chart")) not in KSERVE_CHARTS:
            return
        s3 = obj.get("values.kserve.storage.s3")
        for _, key, what in _S3_SWITCHES:
            value = as_map(s3).get(key)
            if s3 is UNKNOWN or value is UNKNOWN:
                yield unknown_finding(obj, f"values.kserve.storage.s3.{key}")
            elif _is_off(value):
                yield finding(
                    obj,
                    f"values.kserve.storage.s3.{key}",
                    f"makes KServe's storage initializer {what}",
                    f'leave kserve.storage.s3.{key} unset or set it "1"',
                )
        return
    if unknown_at(obj, "spec"):
        yield from unknown_at(obj, "spec")
        return
    for path, value in _uris(obj.spec, "spec"):
        if value is UNKNOWN:
            yield unknown_finding(obj, path)
        elif isinstance(value, str) and value.strip().lower().startswith("http://"):
            yield finding(
                obj,
                path,
                f"the model is fetched over plain http ({_safe_location(value)}): it can be read "
                "or swapped in transit",
                "serve the artifact over https (or s3://, gs://, hf://, pvc://, oci://)",
            )


# --- certificate keys ----------------------------------------------------------------------------


def _weak_key(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if unknown_at(obj, "spec"):
        yield from unknown_at(obj, "spec")
        return
    private_key = obj.spec.get("privateKey")
    if private_key is UNKNOWN:
        yield unknown_finding(obj, "spec.privateKey")
        return
    key = as_map(private_key)
    algorithm_raw, size_raw = key.get("algorithm"), key.get("size")
    if algorithm_raw is UNKNOWN or size_raw is UNKNOWN:
        yield unknown_finding(
            obj, "spec.privateKey.algorithm" if algorithm_raw is UNKNOWN else "spec.privateKey.size"
        )
        return
    algorithm = (as_str(algorithm_raw) or "RSA").upper()  # cert-manager's default: RSA 2048
    if algorithm == "ED25519" or size_raw is None:
        return  # Ed25519 has one size; an unset size defaults to RSA 2048 / ECDSA 256
    minimum = MIN_KEY_SIZE.get(algorithm)
    size = as_int(size_raw)
    if minimum is None or size is None:
        return  # an unknown algorithm or a non-numeric size is rejected by the API server
    if size < minimum:
        yield finding(
            obj,
            "spec.privateKey.size",
            f"{algorithm} key of {size} bits is below the {minimum}-bit minimum",
            f"set size {minimum} or more (the automatic fix sets {minimum})"
            + (", or use ECDSA 256+" if algorithm == "RSA" else ""),
        )


def _fix_key_size(obj: K8sObject) -> Mapping[str, Any] | None:
    manifest = as_manifest(obj)
    spec = manifest.get("spec")
    key = spec.get("privateKey") if isinstance(spec, dict) else None
    if not isinstance(key, dict):
        return None
    algorithm = (as_str(key.get("algorithm")) or "RSA").upper()
    size = as_int(key.get("size"))
    minimum = MIN_KEY_SIZE.get(algorithm)
    if minimum is None or size is None or size >= minimum:
        return None
    key["size"] = minimum
    return manifest


# --- RBAC ------------------------------------------------------------------------------------

# Groups every pod (or every caller) belongs to.
BROAD_GROUPS: Final = frozenset(
    {"system:serviceaccounts", "system:authenticated", "system:unauthenticated"}
)
BROAD_USERS: Final = frozenset({"system:anonymous"})
# Built-in ClusterRoles that grant write on everything (admin/edit aggregate KServe's and any
# other CRD's write rights).
BROAD_BUILTIN_ROLES: Final = frozenset({"cluster-admin", "admin", "edit"})
SENSITIVE_GROUPS: Final = frozenset(
    {"*", KSERVE_GROUP, "security.istio.io", "networking.istio.io", "telemetry.istio.io"}
)
WRITE_VERBS: Final = frozenset({"*", "create", "update", "patch", "delete", "deletecollection"})
READ_VERBS: Final = frozenset({"get", "list", "watch"})
# Subresources that open a pod from the API server: a shell, or a tunnel to a port from inside
# the pod's network namespace (loopback: never seen by the sidecar's inbound capture).
POD_DOORS: Final = frozenset({"pods/exec", "pods/attach", "pods/portforward"})


def _broad_subjects(binding: K8sObject) -> list[str]:
    found = []
    for subject in maps(binding.body.get("subjects")):
        kind = as_str(subject.get("kind")) or ""
        name = as_str(subject.get("name")) or ""
        group = kind == "Group" and (
            name in BROAD_GROUPS or name.startswith("system:serviceaccounts:")
        )
        if group or (kind == "User" and name in BROAD_USERS):
            found.append(name)
    return found


def _broad_rule(rule: Mapping[str, Any]) -> str | None:
    """What a rule grants that nobody should hold for everyone, or None."""
    groups = set(str_list(rule.get("apiGroups")))
    verbs = {v.lower() for v in str_list(rule.get("verbs"))}
    resources = {r.lower() for r in str_list(rule.get("resources"))}
    any_verb, any_resource = "*" in verbs, "*" in resources
    touched = sorted(groups & SENSITIVE_GROUPS)
    if touched:
        shown_groups = ", ".join(touched)
        if any_verb or any_resource:
            return f"wildcard {'verbs' if any_verb else 'resources'} on {shown_groups}"
        writes = sorted(verbs & WRITE_VERBS)
        if writes:
            return f"{'/'.join(writes)} on {shown_groups} {'/'.join(sorted(resources))}".strip()
    core = bool(groups & {"", "*"})
    if core and (any_resource or "secrets" in resources) and (any_verb or verbs & READ_VERBS):
        return "read access to Secrets (gateway TLS keys, CA keys, storage credentials)"
    if core and (any_resource or resources & POD_DOORS) and (any_verb or verbs & {"create", "get"}):
        return (
            "pods/exec, attach or port-forward (a shell in model pods, or a connection that "
            "skips the sidecar)"
        )
    if verbs & {"escalate", "bind", "impersonate"} or (any_verb and groups & {RBAC, "*"}):
        return "escalate / bind / impersonate (grant themselves anything)"
    return None


def _role_problem(
    binding: K8sObject,
    roles: Mapping[tuple[str, str, str], K8sObject],
    cluster_roles: Sequence[K8sObject],
) -> str | None:
    ref = as_map(binding.body.get("roleRef"))
    kind = as_str(ref.get("kind")) or ""
    name = as_str(ref.get("name")) or ""
    if kind == "ClusterRole" and name in BROAD_BUILTIN_ROLES:
        return f"the built-in ClusterRole {name}"
    namespace = namespace_of(binding) if kind == "Role" else ""
    role = roles.get((kind, namespace, name))
    if role is None:
        return None
    rules = maps(role.body.get("rules"))
    if kind == "ClusterRole":
        rules += _aggregated_rules(role, cluster_roles)
    for rule in rules:
        why = _broad_rule(rule)
        if why:
            return f"{kind} {name}, which grants {why}"
    return None


def _referenced(
    binding: K8sObject, roles: Mapping[tuple[str, str, str], K8sObject]
) -> K8sObject | None:
    ref = as_map(binding.body.get("roleRef"))
    kind = as_str(ref.get("kind")) or ""
    namespace = namespace_of(binding) if kind == "Role" else ""
    return roles.get((kind, namespace, as_str(ref.get("name")) or ""))


def _selectors(role: K8sObject) -> list[Mapping[str, Any]]:
    """The matchLabels of a ClusterRole's aggregation selectors, raw (values may be unknown)."""
    return [
        as_map(s.get("matchLabels"))
        for s in maps(as_map(role.body.get("aggregationRule")).get("clusterRoleSelectors"))
    ]


def _label_match(selector: Mapping[str, Any], other: K8sObject) -> str | None:
    """Whether `other`'s labels match an aggregation selector: "yes", "maybe" (a label the
    selector needs is unknown until apply), or None."""
    if not selector or any(v is UNKNOWN for v in selector.values()):
        return None  # an unknown selector value is reported on the aggregating role
    if other.get("metadata") is UNKNOWN or other.get("metadata.labels") is UNKNOWN:
        return "maybe"
    labels = as_map(other.get("metadata.labels"))
    unsure = False
    for key, want in selector.items():
        have = labels.get(key)
        if have is UNKNOWN:
            unsure = True
        elif have != want:
            return None
    return "maybe" if unsure else "yes"


def _aggregated_rules(
    role: K8sObject, cluster_roles: Sequence[K8sObject]
) -> list[Mapping[str, Any]]:
    rules: list[Mapping[str, Any]] = []
    for selector in _selectors(role):
        for other in cluster_roles:
            if other is not role and _label_match(selector, other) == "yes":
                rules.extend(maps(other.body.get("rules")))
    return rules


def _may_grant(role: K8sObject, cluster_roles: Sequence[K8sObject]) -> bool:
    """Whether a role's rules are broad or unknown until apply, its own or - for a ClusterRole -
    those of every ClusterRole its aggregation selectors match or may match."""
    if role.unknown("rules") or any(_broad_rule(r) for r in maps(role.body.get("rules"))):
        return True
    if role.kind != "ClusterRole":
        return False
    if role.unknown("aggregationRule"):
        return True
    return any(
        other is not role
        and _label_match(selector, other) is not None
        and (other.unknown("rules") or any(_broad_rule(r) for r in maps(other.get("rules"))))
        for selector in _selectors(role)
        for other in cluster_roles
    )


def _role_unknowns(role: K8sObject, cluster_roles: Sequence[K8sObject]) -> list[Finding]:
    """Unknowns that may hide what a role bound to everyone grants: its rules, its aggregation
    rule, the rules of the roles it aggregates, and the labels of ClusterRoles that grant
    something broad and might be aggregated into it."""
    found = [unknown_finding(role, where) for where in role.unknown("rules")]
    if role.kind != "ClusterRole":
        return found
    found += [unknown_finding(role, where) for where in role.unknown("aggregationRule")]
    for selector in _selectors(role):
        for other in cluster_roles:
            match = _label_match(selector, other) if other is not role else None
            if match == "yes":
                found += [unknown_finding(other, where) for where in other.unknown("rules")]
            elif match == "maybe" and _may_grant(other, cluster_roles):
                found += [
                    unknown_finding(other, where) for where in other.unknown("metadata.labels")
                ]
    return found


def _identity_unknown(role: K8sObject) -> list[str]:
    """The unknown parts of a role's identity (name, and for a Role its namespace)."""
    paths = ("metadata.name", "metadata.namespace") if role.kind == "Role" else ("metadata.name",)
    found: list[str] = []
    for path in paths:
        found += [where for where in role.unknown(path) if where not in found]
    return found


def _unresolved_candidates(
    binding: K8sObject, candidates: Sequence[K8sObject], cluster_roles: Sequence[K8sObject]
) -> list[Finding]:
    """A binding to everyone that names a role the stack does not hold by a known identity: a
    role of the stack whose name (or namespace, or the binding's namespace) is unknown until
    apply may be the one it names. Reported only when that role grants something broad."""
    ref = as_map(binding.body.get("roleRef"))
    kind, name = as_str(ref.get("kind")) or "", as_str(ref.get("name")) or ""
    if name.startswith("system:"):
        return []  # Kubernetes' own bootstrap roles (system:discovery...), reconciled by it
    binding_ns_unknown = kind == "Role" and bool(binding.unknown("metadata.namespace"))
    found: list[Finding] = []
    for role in candidates:
        if role.kind != kind:
            continue
        unknown = _identity_unknown(role)
        name_ok = role.name == name or bool({"metadata", "metadata.name"} & set(unknown))
        ns_ok = (
            kind != "Role"
            or binding_ns_unknown
            or namespace_of(role) == namespace_of(binding)
            or bool({"metadata", "metadata.namespace"} & set(unknown))
        )
        if not (name_ok and ns_ok and (unknown or binding_ns_unknown)):
            continue
        if not _may_grant(role, cluster_roles):
            continue
        if unknown:
            found += [unknown_finding(role, where) for where in unknown]
        else:
            found += [unknown_finding(binding, w) for w in binding.unknown("metadata.namespace")]
    return found


def _broad_rbac(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    roles: dict[tuple[str, str, str], K8sObject] = {}
    cluster_roles = [o for o in objs if o.group_kind == CLUSTER_ROLE]
    # Every (Cluster)Role: when a binding's roleRef resolves to none of them by a known
    # identity, those whose identity (or the binding's namespace) is unknown may be the one.
    all_roles: list[K8sObject] = []
    for obj in objs:
        if obj.group_kind == CLUSTER_ROLE:
            roles[("ClusterRole", "", obj.name)] = obj
        elif obj.group_kind == ROLE:
            roles[("Role", namespace_of(obj), obj.name)] = obj
        if obj.group_kind in (ROLE, CLUSTER_ROLE):
            all_roles.append(obj)
    for binding in objs:
        if binding.group_kind not in (ROLE_BINDING, CLUSTER_ROLE_BINDING):
            continue
        subjects_unknown = bool(binding.unknown("subjects"))
        role_unknown = bool(binding.unknown("roleRef"))
        everyone = _broad_subjects(binding)
        if role_unknown and (everyone or subjects_unknown):
            yield unknown_finding(binding, "roleRef")
            continue
        if not everyone and not subjects_unknown:
            continue
        role = _referenced(binding, roles)
        if role is None:
            if _role_problem(binding, roles, cluster_roles) is None:
                yield from _unresolved_candidates(binding, all_roles, cluster_roles)
                continue
        else:
            hidden = _role_unknowns(role, cluster_roles)
            if hidden:
                yield from hidden
                continue
        problem = _role_problem(binding, roles, cluster_roles)
        if problem and subjects_unknown:
            yield unknown_finding(binding, "subjects")
        elif problem:
            yield finding(
                binding,
                "subjects",
                f"binds {problem} to {', '.join(everyone)}: every pod or caller in that group "
                "can rewrite models or the mesh's security configuration",
                "bind the role to the specific ServiceAccounts that need it, and narrow its rules "
                "to named resources and read verbs",
            )


POLICIES: Final = (
    Policy(
        name="kserve-require-secure-model-storage",
        description="Model artifacts must not be fetched over plain http.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Serve the model over https or an authenticated object-store scheme (s3://, "
        "gs://, hf://, pvc://, oci://); keep S3 on https (no serving.kserve.io/s3-usehttps: "
        '"0").',
        catches="http:// in InferenceService storageUri / storageUris[].uri / storage.path / "
        "STORAGE_URI env (every component, model format, workerSpec, canary), "
        "LLMInferenceService model.uri, TrainedModel and LocalModelCache URIs; Secrets or "
        'ServiceAccounts annotated serving.kserve.io/s3-usehttps or s3-verifyssl "0"; KServe '
        'chart values kserve.storage.s3.useHttps / verifySSL "0". Messages show only the '
        "host, never credentials or paths.",
        check=_plain_http_storage,
        kinds=MODEL_KINDS | {("", "Secret"), ("", "ServiceAccount"), HELM_VALUES},
    ),
    Policy(
        name="certmanager-certificate-require-strong-key",
        description="cert-manager Certificates must use RSA keys of at least 2048 bits or ECDSA "
        "keys of at least 256 bits.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Set spec.privateKey.size to 2048+ for RSA or 256+ for ECDSA (the automatic "
        "fix raises it to the minimum), or use Ed25519.",
        catches="Certificate spec.privateKey with RSA size < 2048 or ECDSA size < 256 (an unset "
        "algorithm means RSA; an unset size takes cert-manager's safe default and passes).",
        check=_weak_key,
        kinds=frozenset({CERTIFICATE}),
        fix=_fix_key_size,
    ),
    Policy(
        name="rbac-forbid-broad-grants-to-all-identities",
        description="RBAC must not give every service account or every (un)authenticated user "
        "cluster-admin or wildcard/write rights on KServe or Istio objects.",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation="Bind roles to named ServiceAccounts, never to system:serviceaccounts[:ns], "
        "system:authenticated or system:unauthenticated; keep rules on serving.kserve.io and "
        "*.istio.io to named resources and read verbs.",
        catches="(Cluster)RoleBindings whose subjects include the groups system:serviceaccounts, "
        "system:serviceaccounts:<ns>, system:authenticated, system:unauthenticated or the user "
        "system:anonymous, and whose role is cluster-admin/admin/edit, or a (Cluster)Role in the "
        "stack (aggregated rules included) with wildcard verbs/resources or write verbs on "
        "serving.kserve.io, security/networking/telemetry.istio.io or apiGroup *, read access to "
        "Secrets, pods/exec|attach|portforward, or escalate/bind/impersonate.",
        check_stack=_broad_rbac,
        kinds=frozenset({ROLE, CLUSTER_ROLE, ROLE_BINDING, CLUSTER_ROLE_BINDING}),
    ),
)

__all__ = ["POLICIES"]
