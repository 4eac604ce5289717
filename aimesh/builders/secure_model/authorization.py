"""Who may call the model, built from the access rows (builders/access.py): a namespace-wide
deny-all, ALLOW rules naming exact principals, methods and paths, a DENY of operator paths for
everyone but admins, and the integrations' JWTs validated again at the model."""

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


def allow_policy(model: ModelSettings, rows: list[access.AccessRow]) -> dict[str, Any] | None:
    """ALLOW: one rule per always-on grant (exact principal, methods and paths)."""
    rules = [r.rule() for r in rows if not r.batch]
    if not rules:
        return None
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata(access.allow_policy_name(model), model.ns, model_labels(model)),
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
