"""Who may call the model, built from the access rows (builders/access.py): a namespace-wide
deny-all, ALLOW rules naming exact principals, methods and paths, a DENY of operator paths for
everyone but admins, and the integrations' JWTs validated again at the model.

Audit mode (`models[].authorization.mode: audit`) changes exactly two things: the model's ALLOW
rules (and its batch-window ALLOWs) carry Istio's dry-run annotation, so their decisions are
computed and logged but not enforced, and one enforced ALLOW admits authenticated peers of the
mesh's trust domain (no plaintext, no other trust domain). Istio evaluates DENY before ALLOW
and a request passes when ANY enforced ALLOW matches: the root and namespace deny-alls stay in
place and keep denying everything nobody allows, and the DENY of operator paths stays enforced.
Every object of the audit carries its reason and end date, which the policy pack checks."""

from __future__ import annotations

from typing import Any

from aimesh.builders import access
from aimesh.builders.common import ModelPlatform, metadata
from aimesh.builders.secure_model.meta import SECURITY_API, model_labels, workload_selector
from aimesh.settings import ModelSettings


def deny_all(model: ModelSettings) -> dict[str, Any]:
    """Namespace-wide allow-nothing: only what an ALLOW names gets through."""
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata("deny-all", model.ns, model_labels(model)),
        "spec": {},
    }


# Istio's annotation: the policy's decisions are logged (access log, metrics), not enforced.
DRY_RUN_ANNOTATION = "istio.io/dry-run"
# The audit declaration the policy pack checks (policy-pack/aimesh_policies/auditmode.py reads
# the same keys).
AUDIT_REASON_ANNOTATION = "aimesh.io/audit-reason"
AUDIT_UNTIL_ANNOTATION = "aimesh.io/audit-until"


def audit_annotations(model: ModelSettings) -> dict[str, str]:
    """The model's audit declaration (empty when it is enforced)."""
    mode = model.authorization
    if not mode.audit or mode.reason is None or mode.until is None:
        return {}
    return {AUDIT_REASON_ANNOTATION: mode.reason, AUDIT_UNTIL_ANNOTATION: mode.until.isoformat()}


def audited_annotations(model: ModelSettings) -> dict[str, str] | None:
    """Annotations of a policy that audit mode puts in dry-run: the declaration plus Istio's
    dry-run switch (None when the model is enforced)."""
    declaration = audit_annotations(model)
    return {**declaration, DRY_RUN_ANNOTATION: "true"} if declaration else None


def audit_allow(platform: ModelPlatform, model: ModelSettings) -> dict[str, Any] | None:
    """Audit mode only: the ENFORCED ALLOW that keeps the model reachable while its real rules
    run in dry-run. It admits peers with an mTLS identity of this trust domain
    (`<td>/*`: plaintext and unknown identities stay out) on every path; operator paths stay
    denied by the enforced deny-admin. Selector-scoped: the model's pods only."""
    declaration = audit_annotations(model)
    if not declaration:
        return None
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata(
            access.audit_policy_name(model), model.ns, model_labels(model), declaration
        ),
        "spec": {
            "selector": {"matchLabels": workload_selector(model)},
            "action": "ALLOW",
            "rules": [{"from": [{"source": {"principals": [f"{platform.trust_domain}/*"]}}]}],
        },
    }


def allow_policy(model: ModelSettings, rows: list[access.AccessRow]) -> dict[str, Any] | None:
    """ALLOW: one rule per always-on grant (exact principal, methods and paths); in dry-run
    while the model is in audit mode."""
    rules = [r.rule() for r in rows if not r.batch]
    if not rules:
        return None
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata(
            access.allow_policy_name(model),
            model.ns,
            model_labels(model),
            audited_annotations(model),
        ),
        "spec": {
            "selector": {"matchLabels": workload_selector(model)},
            "action": "ALLOW",
            "rules": rules,
        },
    }


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
        "metadata": metadata(
            access.short_name(model.name, "deny-admin"), model.ns, model_labels(model)
        ),
        "spec": {
            "selector": {"matchLabels": workload_selector(model)},
            "action": "DENY",
            "rules": [rule],
        },
    }


def request_authentication(platform: ModelPlatform, model: ModelSettings) -> dict[str, Any] | None:
    """Validates, at the model's sidecar, the JWTs of the integrations this model grants (the
    gateway forwards the token). Without it the model could not match request principals.
    One rule per issuer; the token is not forwarded to the model container."""
    granted = {g.name for g in model.integrations}
    by_issuer: dict[str, list[Any]] = {}
    for integration in platform.integrations:
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
        "metadata": metadata(access.short_name(model.name, "jwt"), model.ns, model_labels(model)),
        "spec": {"selector": {"matchLabels": workload_selector(model)}, "jwtRules": rules},
    }
