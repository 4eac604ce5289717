"""Request authentication: a token that is validated must also be REQUIRED.

A RequestAuthentication only rejects INVALID tokens; a request with no token passes it with no
request principal. Unless an AuthorizationPolicy requires a request principal for the same
workloads, the token is optional.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from aimesh_policies.accessors import as_str, maps, str_list
from aimesh_policies.auditmode import is_dry_run
from aimesh_policies.authz import (
    ANONYMOUS_PATHS_CONFIG,
    AP_CRITICAL,
    anonymous_paths,
    only_anonymous_paths,
    requires_request_principal,
)
from aimesh_policies.framework import Context, Finding, Level, Policy, Severity, finding
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.meshlib import (
    AUTHORIZATION_POLICY,
    REQUEST_AUTHENTICATION,
    ByNamespace,
    action,
    namespace_of,
    of_kind,
    operations,
    rules,
    sources,
)
from aimesh_policies.pods import selector_labels, target_refs


def _covers(policy: K8sObject, ra: K8sObject, ctx: Context) -> bool:
    """Whether `policy` applies to every workload `ra` applies to. A root-namespace policy
    reaches every namespace (by its selector, or all of it without one)."""
    same = namespace_of(policy) == namespace_of(ra)
    if not same and namespace_of(policy) != ctx.mesh_root_namespace:
        return False
    policy_refs, ra_refs = set(target_refs(policy)), set(target_refs(ra))
    policy_labels, ra_labels = selector_labels(policy), selector_labels(ra)
    if not policy_refs and policy_labels is None:
        return True  # namespace-wide (or mesh-wide)
    if not same and (policy_refs or ra_refs):
        return False  # targetRefs name objects of the policy's own namespace
    if ra_refs:
        return bool(policy_refs) and ra_refs <= policy_refs
    if policy_refs or ra_labels is None:
        return False  # a namespace-wide RA is only fully covered by a namespace-wide policy
    return policy_labels is not None and all(
        ra_labels.get(k) == v for k, v in policy_labels.items()
    )


def _overlaps(policy: K8sObject, ra: K8sObject, ctx: Context) -> bool:
    """Whether `policy` may apply to some workload of `ra` (no conflicting label). Either one
    in the root namespace reaches the other's namespace."""
    same = namespace_of(policy) == namespace_of(ra)
    root = ctx.mesh_root_namespace
    if not same and root not in (namespace_of(policy), namespace_of(ra)):
        return False
    if target_refs(policy) or target_refs(ra):
        return (same and set(target_refs(policy)) == set(target_refs(ra))) or _covers(
            policy, ra, ctx
        )
    policy_labels, ra_labels = selector_labels(policy) or {}, selector_labels(ra) or {}
    return all(ra_labels.get(k, v) == v for k, v in policy_labels.items())


def _denies_anonymous(rule: Mapping[str, Any], anonymous: frozenset[str]) -> bool:
    """A DENY rule for requests without a request principal (notRequestPrincipals: ["*"]) that
    covers every request except at most the anonymous paths. Operations are OR-ed: one broad
    operation suffices (a host restriction is accepted; a port, method or path restriction leaves
    the rest token-free)."""
    if not any("*" in str_list(s.get("notRequestPrincipals")) for _, s in sources(rule)):
        return False
    ops = operations(rule)
    narrowing = ("paths", "methods", "notMethods", "ports", "notPorts")
    return not ops or any(
        not any(str_list(op.get(k)) for k in narrowing)
        and set(str_list(op.get("notPaths"))) <= anonymous
        for _, op in ops
    )


def _token_optional(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    # A dry-run policy (audit mode) requires nothing: only enforced ones count.
    enforced = [p for p in of_kind(objs, AUTHORIZATION_POLICY) if not is_dry_run(p)]
    index = ByNamespace(enforced, ctx)
    anonymous = anonymous_paths(ctx)
    for ra in of_kind(objs, REQUEST_AUTHENTICATION):
        if not maps(ra.spec.get("jwtRules")):
            continue
        # Only policies of the RA's namespace or the root namespace can cover or overlap it;
        # a root-namespace RA reaches every namespace, so every policy may overlap it.
        namespace = namespace_of(ra)
        root = namespace == ctx.mesh_root_namespace
        policies = index.every() if root else index.reaching(namespace)
        deny = any(
            action(p) == "DENY"
            and _covers(p, ra, ctx)
            and any(_denies_anonymous(r, anonymous) for _, r in rules(p))
            for p in policies
        )
        allows = [p for p in policies if action(p) == "ALLOW" and _overlaps(p, ra, ctx)]
        allow_rules = [r for p in allows for _, r in rules(p)]
        # ALLOW policies are OR-ed: the token is required only if a covering ALLOW policy
        # exists and EVERY ALLOW rule reaching these workloads demands a principal.
        required_by_allow = (
            any(_covers(p, ra, ctx) for p in allows)
            and bool(allow_rules)
            and all(
                requires_request_principal(r) or only_anonymous_paths(r, anonymous)
                for r in allow_rules
            )
        )
        if deny or required_by_allow:
            continue
        yield finding(
            ra,
            "spec",
            "validates JWTs but nothing REQUIRES one for the same workloads: requests without "
            "a token pass with no request principal",
            "add an AuthorizationPolicy with the same selector/targetRefs: action DENY, "
            'rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}] (or ALLOW rules that '
            "all name requestPrincipals)",
        )


def _plain_http_jwks(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    for i, rule in enumerate(maps(obj.spec.get("jwtRules"))):
        uri = as_str(rule.get("jwksUri"))
        if uri is not None and uri.strip().lower().startswith("http://"):
            # The URI itself is not echoed (it may carry credentials).
            yield finding(
                obj,
                f"spec.jwtRules[{i}].jwksUri",
                "the JWKS is fetched over plain http: whoever sits on the path can swap the "
                "keys and mint valid tokens",
                "use an https:// jwksUri (or inline `jwks`)",
            )


POLICIES: Final = (
    Policy(
        name="istio-requestauthentication-require-principal-policy",
        description="Every RequestAuthentication is paired with a policy that requires a "
        "request principal for the same workloads.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Add an AuthorizationPolicy with the RequestAuthentication's "
        'selector/targetRefs: DENY with notRequestPrincipals: ["*"], or ALLOW rules that all '
        "name requestPrincipals.",
        catches="A RequestAuthentication with no covering DENY-without-token policy and no "
        "covering ALLOW policy whose every rule (with every other ALLOW rule reaching the same "
        "workloads) requires a request principal: the token is optional.",
        check_stack=_token_optional,
        kinds=frozenset({REQUEST_AUTHENTICATION, AUTHORIZATION_POLICY}),
        config=ANONYMOUS_PATHS_CONFIG,
        critical=(*AP_CRITICAL, "spec.targetRef", "spec.targetRefs"),
    ),
    Policy(
        name="istio-requestauthentication-forbid-plain-http-jwks",
        description="JWKS keys are fetched over https.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Use an https:// jwksUri or inline jwks.",
        catches="A RequestAuthentication jwtRules[].jwksUri with the http:// scheme.",
        check=_plain_http_jwks,
        kinds=frozenset({REQUEST_AUTHENTICATION}),
        critical=("spec.jwtRules[].jwksUri",),
    ),
)
