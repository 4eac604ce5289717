"""Identity-based authorization: default deny, ALLOW rules that name exact identities.

Istio AuthorizationPolicy semantics the rules rely on:
- `action` absent means ALLOW; DENY is evaluated first, then ALLOW; a workload with at least one
  ALLOW policy admits only requests some ALLOW rule matches.
- An ALLOW policy with NO rules matches nothing: that is the "allow-nothing" (deny-all) policy,
  and it must pass. An ALLOW with an EMPTY rule (`rules: [{}]`) matches everything: allow-all.
- A policy in the root namespace without a selector applies to every workload of the mesh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from aimesh_policies.accessors import as_str, get, maps, str_list
from aimesh_policies.auditmode import (
    declaration,
    is_current_audit_allow,
    is_dry_run,
    peers_only,
)
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    finding,
    today,
)
from aimesh_policies.k8s_object import MESH_CONFIG, K8sObject
from aimesh_policies.meshlib import (
    AUTHORIZATION_POLICY,
    INFERENCE_SERVICE,
    LLM_INFERENCE_SERVICE,
    NAMESPACE,
    ByNamespace,
    action,
    applies_to_pods,
    is_mesh_wide,
    isvc_components,
    isvc_pod_labels,
    model_namespaces,
    namespace_of,
    namespace_wide,
    of_kind,
    operations,
    rule_constrains_source,
    rule_is_empty,
    rules,
    sources,
)
from aimesh_policies.pods import selector_labels, target_refs

# Critical paths of an AuthorizationPolicy: unknown here means the pack cannot tell what it admits.
AP_CRITICAL: Final = ("metadata.namespace", "spec.action", "spec.selector", "spec.rules")

# Source fields that name an identity positively / negatively.
POSITIVE_IDENTITY: Final = (
    "principals",
    "namespaces",
    "requestPrincipals",
    "serviceAccounts",
    "trustDomains",
)
NEGATIVE_FIELDS: Final = (
    "notPrincipals",
    "notNamespaces",
    "notRequestPrincipals",
    "notServiceAccounts",
    "notTrustDomains",
    "notIpBlocks",
    "notRemoteIpBlocks",
)
IDENTITY_KEYS: Final = ("source.", "request.auth.", "remote.ip", "connection.sni")
# Blocks that match every address (a policy, not a socket bind).
ANY_ADDRESS: Final = frozenset({"0.0.0.0/0", "::/0", "0.0.0.0", "::", "*", "0/0"})  # noqa: S104


def _is_allow(obj: K8sObject) -> bool:
    return action(obj) == "ALLOW"


def _where(obj: K8sObject, ctx: Context) -> str:
    if is_mesh_wide(obj, ctx):
        root = ctx.mesh_root_namespace
        return f" in the mesh root namespace {root}: it applies to EVERY workload of the mesh"
    if namespace_wide(obj):
        return f": it applies to every workload in namespace {namespace_of(obj)}"
    return ""


# --- allow-all -----------------------------------------------------------------------------------


def _allow_all(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if not _is_allow(obj):
        return
    for i, rule in rules(obj):
        if rule_is_empty(rule):
            yield finding(
                obj,
                f"spec.rules[{i}]",
                f"an empty ALLOW rule matches every request (allow-all){_where(obj, ctx)}",
                "name the callers in rules[].from[].source.principals (and the operations in "
                "rules[].to); for deny-all use an ALLOW policy with no rules at all (spec: {})",
            )


# --- wildcards -----------------------------------------------------------------------------------


def wildcard_principal(principal: str) -> bool:
    """`*` anywhere before the service-account part: any trust domain or namespace."""
    head = principal.split("/sa/", 1)[0] if "/sa/" in principal else principal
    return "*" in head


def _wildcards(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if not _is_allow(obj):
        return
    # A model in audit mode admits authenticated peers (`<td>/*`) by design while its own rules
    # run in dry-run; the declaration's reason and end are judged by auditmode.py, and once it
    # ends the wildcard is flagged here again.
    audit = is_current_audit_allow(obj)
    for i, rule in rules(obj):
        for j, source in sources(rule):
            at = f"spec.rules[{i}].from[{j}].source"
            checks = (
                ("principals", lambda v: wildcard_principal(v) and not (audit and peers_only(v))),
                ("namespaces", lambda v: "*" in v),
                ("trustDomains", lambda v: "*" in v),
                ("serviceAccounts", lambda v: "*" in v.split("/", 1)[0] or v == "*"),
            )
            for key, is_wild in checks:
                bad = [v for v in str_list(source.get(key)) if is_wild(v)]
                if bad:
                    yield finding(
                        obj,
                        f"{at}.{key}",
                        f"ALLOW admits wildcard {key} {bad}: any identity matching the pattern, "
                        "including ones created later, gets in",
                        f"list exact {key} (e.g. cluster.local/ns/<ns>/sa/<sa>)",
                    )


# --- negative matches ----------------------------------------------------------------------------


def _negatives(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if not _is_allow(obj):
        return
    for i, rule in rules(obj):
        for j, source in sources(rule):
            negatives = [k for k in NEGATIVE_FIELDS if str_list(source.get(k))]
            positive = any(str_list(source.get(k)) for k in POSITIVE_IDENTITY)
            if negatives and not positive:
                yield finding(
                    obj,
                    f"spec.rules[{i}].from[{j}].source.{negatives[0]}",
                    f"ALLOW by negative match ({', '.join(negatives)}) admits every identity "
                    "except the listed ones",
                    "allow by positive match (principals / namespaces / requestPrincipals); "
                    "put exclusions in a DENY policy",
                )
        for k, condition in enumerate(maps(rule.get("when"))):
            key = as_str(condition.get("key")) or ""
            if (
                key.startswith(IDENTITY_KEYS)
                and str_list(condition.get("notValues"))
                and not str_list(condition.get("values"))
            ):
                yield finding(
                    obj,
                    f"spec.rules[{i}].when[{k}].notValues",
                    f"ALLOW on {key} notValues admits every identity except the listed ones",
                    "use `values` with the identities to admit",
                )


# --- IP-only / any-address sources ---------------------------------------------------------------


def _ip_sources(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if not _is_allow(obj):
        return
    for i, rule in rules(obj):
        for j, source in sources(rule):
            at = f"spec.rules[{i}].from[{j}].source"
            identity = any(str_list(source.get(k)) for k in POSITIVE_IDENTITY)
            for key in ("ipBlocks", "remoteIpBlocks"):
                blocks = str_list(source.get(key))
                if any(b.strip() in ANY_ADDRESS for b in blocks):
                    yield finding(
                        obj,
                        f"{at}.{key}",
                        "ALLOW from any address (0.0.0.0/0 or ::/0)",
                        "remove the any-address block and name the callers by principal",
                    )
                elif blocks and not identity:
                    yield finding(
                        obj,
                        f"{at}.{key}",
                        "ALLOW by IP address only: addresses are not identities (spoofable, "
                        "shared behind NAT, reused by other pods)",
                        "add principals/requestPrincipals to the source (IPs may narrow them)",
                    )


# --- gateway requests need a request principal ---------------------------------------------------


def requires_request_principal(rule: Mapping[str, Any]) -> bool:
    """Whether every request a rule matches carries an authenticated principal: each source
    names principals or requestPrincipals (an empty `from` requires nothing), or a `when`
    condition tests request.auth.*."""
    if any(
        (as_str(c.get("key")) or "").startswith("request.auth.") and str_list(c.get("values"))
        for c in maps(rule.get("when"))
    ):
        return True
    froms = sources(rule)
    return bool(froms) and all(
        str_list(s.get("requestPrincipals")) or str_list(s.get("principals")) for _, s in froms
    )


DEFAULT_ANONYMOUS_PATHS: Final = ("/.well-known/acme-challenge/*",)
ANONYMOUS_PATHS_CONFIG: Final = {
    "anonymousPaths": {
        "type": "array",
        "items": {"type": "string"},
        "default": list(DEFAULT_ANONYMOUS_PATHS),
        "description": "Paths that must stay reachable without a token (exactly as written in "
        "the policy), e.g. the ACME HTTP-01 challenge.",
    }
}


def anonymous_paths(ctx: Context) -> frozenset[str]:
    value = ctx.raw.get("anonymousPaths")
    return frozenset(str_list(value) if isinstance(value, list) else DEFAULT_ANONYMOUS_PATHS)


def only_anonymous_paths(rule: Mapping[str, Any], allowed: frozenset[str]) -> bool:
    """A rule whose every operation is limited to paths that may be anonymous (ACME)."""
    ops = operations(rule)
    return bool(ops) and all(
        str_list(op.get("paths"))
        and set(str_list(op.get("paths"))) <= allowed
        and not str_list(op.get("notPaths"))
        for _, op in ops
    )


def _gateway_without_principal(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if not _is_allow(obj) or namespace_of(obj) not in ctx.gateway_namespaces:
        return
    allowed = anonymous_paths(ctx)
    for i, rule in rules(obj):
        if not requires_request_principal(rule) and not only_anonymous_paths(rule, allowed):
            yield finding(
                obj,
                f"spec.rules[{i}]",
                "ALLOW at the ingress gateway admits requests without a request principal "
                "(anonymous callers from outside the mesh)",
                'require a token: rules[].from[].source.requestPrincipals: ["*"] (or the '
                "issuer/subject), with a RequestAuthentication validating it",
            )


# --- DENY paths that normalization can bypass (advisory) -----------------------------------------


def _bypassable_paths(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if obj.group_kind == MESH_CONFIG:
        mode = get(obj.body, "pathNormalization.normalization")
        if as_str(mode) == "NONE":
            yield finding(
                obj,
                "pathNormalization.normalization",
                "path normalization is off: /a/../admin, //admin and %2e-encoded paths slip "
                "past path-based DENY rules",
                "use DECODE_AND_MERGE_SLASHES (or at least BASE)",
            )
        return
    act = action(obj)
    for i, rule in rules(obj):
        for j, operation in operations(rule):
            key = "paths" if act == "DENY" else "notPaths" if act == "ALLOW" else ""
            if not key:
                continue
            for path in str_list(operation.get(key)):
                problem = _path_weakness(path)
                if problem:
                    yield finding(
                        obj,
                        f"spec.rules[{i}].to[{j}].operation.{key}",
                        f"{act} path {path!r} {problem}",
                        'match prefixes ("/admin", "/admin/*" or "/admin*"), keep '
                        "meshConfig.pathNormalization at DECODE_AND_MERGE_SLASHES, and prefer "
                        "ALLOW lists of the paths that may be called",
                    )


def _path_weakness(path: str) -> str:
    if "%" in path:
        return "contains percent-encoding: Envoy matches the decoded path, so it never matches"
    if path.endswith("*") or path.startswith("*") or path == "/":
        return ""
    if any(c.isalpha() for c in path):
        return (
            "is an exact match: '/x/', '/X' (case) or '/x/sub' variants of it are not denied "
            "(paths are case-sensitive; normalization only merges slashes and decodes)"
        )
    return ""


# --- stack: model namespaces need a deny-all -----------------------------------------------------


def is_deny_all(obj: K8sObject) -> bool:
    """ALLOW with no rules (allow-nothing) or DENY with an empty rule, namespace-wide, and
    enforced (a dry-run policy denies nothing)."""
    if not namespace_wide(obj) or is_dry_run(obj):
        return False
    act = action(obj)
    if act == "ALLOW":
        return _no_rules(obj)
    return act == "DENY" and any(rule_is_empty(r) for _, r in rules(obj))


def _no_rules(obj: K8sObject) -> bool:
    value = obj.spec.get("rules")
    return value is None or value == []


def _model_namespace_without_deny_all(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    policies = of_kind(objs, AUTHORIZATION_POLICY)
    if any(is_mesh_wide(p, ctx) and is_deny_all(p) for p in policies):
        return
    covered = {namespace_of(p) for p in policies if is_deny_all(p)}
    namespaces = {o.name: o for o in of_kind(objs, NAMESPACE)}
    workloads = {
        namespace_of(o): o for o in of_kind(objs, INFERENCE_SERVICE, LLM_INFERENCE_SERVICE)
    }
    for namespace in sorted(model_namespaces(objs, ctx) - covered - ctx.exempt_namespaces):
        anchor = namespaces.get(namespace) or workloads.get(namespace)
        yield Finding(
            f"stack: model namespace {namespace} has no deny-all AuthorizationPolicy (and the "
            f"mesh root {ctx.mesh_root_namespace} has none): every caller the mesh lets through "
            f"reaches the model. Fix: add AuthorizationPolicy {namespace}/deny-all with spec: {{}} "
            "(ALLOW with no rules = allow nothing), then ALLOW exact principals.",
            anchor.urn if anchor else "",
        )


# --- stack: ALLOW rules on model workloads need a source -----------------------------------------


def _model_allow_without_source(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    models = model_namespaces(objs, ctx)
    for obj in of_kind(objs, AUTHORIZATION_POLICY):
        if not _is_allow(obj):
            continue
        selector = selector_labels(obj) or {}
        on_models = (
            namespace_of(obj) in models
            or ctx.is_model_workload(selector)
            or (is_mesh_wide(obj, ctx) and bool(models))
        )
        if not on_models:
            continue
        for i, rule in rules(obj):
            if not rule_constrains_source(rule):
                yield finding(
                    obj,
                    f"spec.rules[{i}].from",
                    "ALLOW rule on model workloads names no source: any caller in (or "
                    "reaching) the mesh may invoke the model",
                    "add rules[].from[].source.principals with the exact callers "
                    "(cluster.local/ns/<ns>/sa/<sa>) or requestPrincipals",
                )


# --- stack: every InferenceService is covered by an ALLOW naming principals ----------------------


def names_principals(rule: Mapping[str, Any]) -> bool:
    """A rule naming exact callers: some source lists non-wildcard principals, service accounts
    or request principals."""
    for _, source in sources(rule):
        exact = [p for p in str_list(source.get("principals")) if not wildcard_principal(p)]
        if exact or str_list(source.get("requestPrincipals")):
            return True
        if [a for a in str_list(source.get("serviceAccounts")) if "*" not in a]:
            return True
    return False


def _audited(policy: K8sObject) -> bool:
    """Enforced, or in dry-run under a current audit declaration (the model's own rules while
    it is in audit mode: the grants are there, their enforcement is being watched)."""
    if not is_dry_run(policy):
        return True
    decl = declaration(policy)
    return decl is not None and decl.current(today())


def _isvc_uncovered(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    index = ByNamespace(
        (
            p
            for p in of_kind(objs, AUTHORIZATION_POLICY)
            if _is_allow(p) and _audited(p) and any(names_principals(r) for _, r in rules(p))
        ),
        ctx,
    )
    for isvc in of_kind(objs, INFERENCE_SERVICE):
        namespace = namespace_of(isvc)
        # Only policies of its namespace or the root namespace can select its pods.
        allows = index.reaching(namespace)
        for component in isvc_components(isvc):
            labels = isvc_pod_labels(isvc, component)
            covered = any(
                applies_to_pods(p, ctx, namespace, labels)
                or any(
                    name.startswith(isvc.name)
                    for kind, name in target_refs(p)
                    if kind == "Service" and namespace_of(p) == namespace
                )
                for p in allows
            )
            if not covered:
                yield finding(
                    isvc,
                    f"spec.{component}",
                    f"no ALLOW AuthorizationPolicy naming principals covers the {component}: "
                    "either nobody can call it (deny-all) or, without deny-all, anybody can",
                    "add an AuthorizationPolicy in its namespace selecting "
                    f"serving.kserve.io/inferenceservice: {isvc.name} that ALLOWs exact principals",
                )


POLICIES: Final = (
    Policy(
        name="istio-authorizationpolicy-forbid-allow-all",
        description="No ALLOW AuthorizationPolicy contains an empty rule (allow-all).",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation="Give every ALLOW rule a source (principals) and operations; a deny-all is "
        "an ALLOW policy with no rules (spec: {}).",
        catches="An ALLOW rule with no from, to or when (`rules: [{}]`), which admits every "
        "request; worst in the root namespace, where it opens the whole mesh. An ALLOW policy "
        "with no rules at all (deny-all) passes.",
        check=_allow_all,
        kinds=frozenset({AUTHORIZATION_POLICY}),
        critical=AP_CRITICAL,
    ),
    Policy(
        name="istio-authorizationpolicy-forbid-wildcard-sources",
        description="ALLOW rules name exact principals, namespaces and trust domains, no "
        "wildcards.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Replace wildcard principals/namespaces/trustDomains/serviceAccounts with "
        "the exact identities (`<trust-domain>/ns/<ns>/sa/<sa>`).",
        catches='`"*"` or `prefix*` patterns in principals (trust domain or namespace part), '
        "namespaces, trustDomains or the namespace of serviceAccounts, in ALLOW rules. "
        "A service-account wildcard inside one namespace (`<td>/ns/<ns>/sa/*`, the same as "
        'namespaces: [<ns>]) and requestPrincipals: ["*"] (any valid token) are accepted.',
        check=_wildcards,
        kinds=frozenset({AUTHORIZATION_POLICY}),
        critical=AP_CRITICAL,
    ),
    Policy(
        name="istio-authorizationpolicy-forbid-negative-match-in-allow",
        description="ALLOW rules admit by positive identity match, never by exclusion.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Allow the callers by principals/namespaces/requestPrincipals; express "
        "exclusions as DENY policies.",
        catches="notPrincipals, notNamespaces, notRequestPrincipals, notServiceAccounts, "
        "notTrustDomains, notIpBlocks or notRemoteIpBlocks in an ALLOW source that names no "
        "identity positively, and `when` conditions on identity keys with only notValues.",
        check=_negatives,
        kinds=frozenset({AUTHORIZATION_POLICY}),
        critical=AP_CRITICAL,
    ),
    Policy(
        name="istio-authorizationpolicy-forbid-ip-only-sources",
        description="ALLOW rules never admit by IP address alone or from any address.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Name the callers by principal or request principal; IP blocks may only "
        "narrow an identity match.",
        catches="ipBlocks/remoteIpBlocks with 0.0.0.0/0 or ::/0, and ALLOW sources whose only "
        "constraint is an IP block.",
        check=_ip_sources,
        kinds=frozenset({AUTHORIZATION_POLICY}),
        critical=AP_CRITICAL,
    ),
    Policy(
        name="istio-gateway-authorizationpolicy-require-request-principal",
        description="ALLOW rules at the ingress gateway require an authenticated request "
        "principal.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation='Add requestPrincipals (e.g. ["*"] for any valid token, or exact '
        "issuer/subject) to every ALLOW rule of the gateway, with a RequestAuthentication.",
        catches="An ALLOW AuthorizationPolicy in a gateway namespace (gatewayNamespaces) with a "
        "rule that admits requests carrying no request principal (and no peer principal); "
        "rules limited to anonymousPaths (default: the ACME HTTP-01 challenge) pass.",
        check=_gateway_without_principal,
        kinds=frozenset({AUTHORIZATION_POLICY}),
        critical=AP_CRITICAL,
        config=ANONYMOUS_PATHS_CONFIG,
    ),
    Policy(
        name="istio-authorizationpolicy-deny-paths-normalization-safe",
        description="DENY rules on paths match prefixes that path normalization cannot bypass.",
        severity=Severity.MEDIUM,
        level=Level.ADVISORY,
        remediation="Deny path prefixes (`/admin*`), keep meshConfig.pathNormalization at "
        "DECODE_AND_MERGE_SLASHES, and prefer ALLOW lists of callable paths.",
        catches="DENY paths (and ALLOW notPaths) that are exact matches, which trailing "
        "slashes, case or extra segments slip past, or that contain percent-encoding; mesh "
        "config with pathNormalization NONE.",
        check=_bypassable_paths,
        kinds=frozenset({AUTHORIZATION_POLICY, MESH_CONFIG}),
        critical=("spec.rules[].to",),
    ),
    Policy(
        name="istio-model-namespace-require-deny-all",
        description="Every model namespace has a deny-all AuthorizationPolicy (or the mesh "
        "root has one).",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation="Add an AuthorizationPolicy with spec: {} (ALLOW, no rules) in each model "
        "namespace, or one in the root namespace for the whole mesh.",
        catches="A namespace holding an InferenceService (or named in modelNamespaces, or "
        "matching modelNamespaceLabels) with no namespace-wide allow-nothing policy there or "
        "in the root namespace.",
        check_stack=_model_namespace_without_deny_all,
        kinds=frozenset(
            {AUTHORIZATION_POLICY, NAMESPACE, INFERENCE_SERVICE, LLM_INFERENCE_SERVICE}
        ),
        critical=AP_CRITICAL,
    ),
    Policy(
        name="istio-model-allow-require-source",
        description="ALLOW rules that reach model workloads name their source.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Add rules[].from[].source.principals (or requestPrincipals) to every ALLOW "
        "rule on model workloads.",
        catches="ALLOW rules without a source constraint in model namespaces, selecting model "
        "workloads (modelWorkloadLabels), or mesh-wide in the root namespace.",
        check_stack=_model_allow_without_source,
        kinds=frozenset(
            {AUTHORIZATION_POLICY, NAMESPACE, INFERENCE_SERVICE, LLM_INFERENCE_SERVICE}
        ),
        critical=AP_CRITICAL,
    ),
    Policy(
        name="kserve-inferenceservice-require-principal-allow",
        description="Every InferenceService component is covered by an ALLOW policy naming "
        "principals.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Add an AuthorizationPolicy selecting the InferenceService's pods "
        "(serving.kserve.io/inferenceservice: <name>) that ALLOWs exact principals.",
        catches="An InferenceService predictor/transformer/explainer that no ALLOW "
        "AuthorizationPolicy with exact principals, service accounts or request principals "
        "selects (same namespace, or mesh-wide).",
        check_stack=_isvc_uncovered,
        kinds=frozenset({AUTHORIZATION_POLICY, INFERENCE_SERVICE}),
        critical=AP_CRITICAL,
    ),
)
