"""Audit mode: a model's authorization watched, not enforced, for a stated reason and a short time.

Istio runs an AuthorizationPolicy annotated `istio.io/dry-run: "true"` in shadow: its decision is
logged and counted, never enforced. With the mesh-root deny-all in place, dry-run ALLOW rules
alone would leave a model denying everything, so audit mode (the shape aimesh generates,
docs/security.md "Audit mode") is:

- the model's real ALLOW rules in dry-run, each carrying the audit declaration;
- one ENFORCED ALLOW that admits authenticated peers of the mesh only (`<trust domain>/*` or
  `*` principals: plaintext and unauthenticated callers stay out), carrying the declaration;
- everything else enforced: deny-alls, the DENY of operator paths, JWT validation.

The declaration is two annotations on each of those policies: `aimesh.io/audit-reason` (why)
and `aimesh.io/audit-until` (the last day, YYYY-MM-DD, UTC). The policies here make audit mode
safe to allow: a dry-run policy needs a declaration, the declaration needs a reason and an end
no further ahead than `maxAuditDays` (30 by default), past its end it is a violation naming the
model and the date, `forbidAuditMode: true` (for production stacks) refuses it entirely, and a
dry-run DENY, or dry-run in the mesh root or a gateway namespace, is never audit mode.

Other policies read `is_dry_run` (a dry-run policy enforces nothing: it never counts as a
deny-all or as requiring a token) and `is_current_audit_allow` (the enforced peers-only ALLOW of
a current audit may use a peer wildcard) from here.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_bool, as_int, as_map, str_list
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    finding,
    parse_day,
    today,
    unknown_finding,
)
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.meshlib import (
    AUTHORIZATION_POLICY,
    action,
    is_mesh_wide,
    namespace_of,
    rules,
    sources,
)
from aimesh_policies.pods import selector_labels

DRY_RUN: Final = "istio.io/dry-run"
AUDIT_REASON: Final = "aimesh.io/audit-reason"
AUDIT_UNTIL: Final = "aimesh.io/audit-until"
MODEL_LABEL: Final = "aimesh.io/model"
DEFAULT_MAX_AUDIT_DAYS: Final = 30
# What istiod accepts as true (Go's strconv.ParseBool); anything else is not dry-run.
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
# An authenticated peer of a trust domain (`cluster.local/*`) or of any trust domain (`*`).
_PEERS: Final = re.compile(r"^(\*|[^*/]+/\*)$")


def is_dry_run(obj: K8sObject) -> bool:
    """Whether istiod runs this policy in shadow (decisions logged, never enforced)."""
    return obj.annotations.get(DRY_RUN) in _TRUE


@dataclass(frozen=True)
class Declaration:
    """An audit declaration as written on a policy."""

    reason: str  # "" when missing
    until: datetime.date | None  # None when missing or not a YYYY-MM-DD date
    written: str  # `until` as written

    def current(self, day: datetime.date) -> bool:
        return bool(self.reason) and self.until is not None and self.until >= day


def declaration(obj: K8sObject) -> Declaration | None:
    """The audit declaration of a policy, None when it carries neither annotation."""
    notes = obj.annotations
    if AUDIT_REASON not in notes and AUDIT_UNTIL not in notes:
        return None
    written = notes.get(AUDIT_UNTIL) or ""
    return Declaration((notes.get(AUDIT_REASON) or "").strip(), parse_day(written), written)


def model_of(obj: K8sObject) -> str:
    """The model a policy belongs to: its model label, its selector's, else its namespace."""
    selector = selector_labels(obj) or {}
    return obj.labels.get(MODEL_LABEL) or selector.get(MODEL_LABEL) or namespace_of(obj)


def peers_only(principal: str) -> bool:
    """`*` or `<trust domain>/*`: any caller with an mTLS identity (of that trust domain)."""
    return _PEERS.match(principal) is not None


def is_current_audit_allow(obj: K8sObject, day: datetime.date | None = None) -> bool:
    """An ENFORCED ALLOW carrying a current audit declaration: the one policy that may admit
    authenticated peers by wildcard while the model's own rules run in dry-run."""
    decl = declaration(obj)
    return (
        decl is not None
        and not is_dry_run(obj)
        and action(obj) == "ALLOW"
        and decl.current(day or today())
    )


def _unknown_annotations(obj: K8sObject) -> list[str]:
    notes = obj.get("metadata.annotations")
    if notes is UNKNOWN:
        return ["metadata.annotations"]
    return [
        f"metadata.annotations.{key}"
        for key in (DRY_RUN, AUDIT_REASON, AUDIT_UNTIL)
        if as_map(notes).get(key) is UNKNOWN
    ]


def _max_days(ctx: Context) -> int:
    value = as_int(ctx.raw.get("maxAuditDays"))
    return value if value is not None and value >= 1 else DEFAULT_MAX_AUDIT_DAYS


def _enforced_elsewhere(obj: K8sObject, ctx: Context) -> str:
    """Where a dry-run policy suspends more than one model's rules ("" when it does not)."""
    if is_mesh_wide(obj, ctx) or namespace_of(obj) == ctx.mesh_root_namespace:
        return f"in the mesh root namespace {ctx.mesh_root_namespace} (every workload of the mesh)"
    if namespace_of(obj) in ctx.gateway_namespaces:
        return f"in the gateway namespace {namespace_of(obj)} (what lets requests in from outside)"
    return ""


# --- audit declarations: reason, end, maximum, forbidden -----------------------------------------


def _declared(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    for path in _unknown_annotations(obj):
        yield unknown_finding(obj, path)
    dry = is_dry_run(obj)
    decl = declaration(obj)
    if not dry and decl is None:
        return
    model = model_of(obj)
    days = _max_days(ctx)
    if dry:
        act = action(obj)
        if act != "ALLOW":
            yield finding(
                obj,
                f"metadata.annotations.{DRY_RUN}",
                f"a dry-run {act or 'invalid-action'} policy enforces nothing: audit mode runs "
                "a model's ALLOW rules in dry-run only, its DENY rules (operator paths) stay "
                "enforced",
                f"remove the {DRY_RUN} annotation",
            )
        elsewhere = _enforced_elsewhere(obj, ctx)
        if elsewhere:
            yield finding(
                obj,
                f"metadata.annotations.{DRY_RUN}",
                f"a dry-run policy {elsewhere}: audit mode is per model, never for the mesh "
                "root or a gateway",
                f"remove the {DRY_RUN} annotation",
            )
        if decl is None:
            yield finding(
                obj,
                f"metadata.annotations.{DRY_RUN}",
                f"is in dry-run without an audit declaration: model {model}'s authorization "
                "is not enforced and nobody said why or until when",
                f"declare the audit ({AUDIT_REASON}, {AUDIT_UNTIL}: YYYY-MM-DD at most {days} "
                f"days ahead; aimesh: models[].authorization) or remove {DRY_RUN}",
            )
            return
    assert decl is not None
    where = f"audit mode of model {model}"
    if as_bool(ctx.raw.get("forbidAuditMode")) is True:
        yield finding(
            obj,
            "metadata.annotations",
            f"{where}: audit mode is forbidden in this stack (forbidAuditMode)",
            "enforce the model: remove models[].authorization (or its dry-run annotation and "
            "the audit ALLOW)",
        )
    if not decl.reason:
        yield finding(
            obj,
            f"metadata.annotations.{AUDIT_REASON}",
            f"{where} gives no reason",
            f"say why the model is not enforced (a ticket, the migration) in {AUDIT_REASON}",
        )
    if decl.until is None:
        yield finding(
            obj,
            f"metadata.annotations.{AUDIT_UNTIL}",
            f"{where} has no end date ({decl.written or 'missing'}, not YYYY-MM-DD)",
            f"set {AUDIT_UNTIL} to the last day of the audit, at most {days} days ahead",
        )
        return
    day = today()
    if decl.until < day:
        yield finding(
            obj,
            f"metadata.annotations.{AUDIT_UNTIL}",
            f"{where} ended on {decl.until.isoformat()}: its authorization is still not "
            "enforced past the end its owners committed to",
            "enforce the model (remove models[].authorization or set mode: enforce), or extend "
            f"until with a new reason (at most {days} days ahead)",
        )
    elif (decl.until - day).days > days:
        yield finding(
            obj,
            f"metadata.annotations.{AUDIT_UNTIL}",
            f"{where} runs until {decl.until.isoformat()}, more than {days} days ahead "
            "(maxAuditDays)",
            f"choose an end at most {days} days from today; extend it later if needed",
        )


# --- the enforced ALLOW of an audit admits authenticated mesh peers only -------------------------


def _peers_only(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if is_dry_run(obj) or action(obj) != "ALLOW" or declaration(obj) is None:
        return
    elsewhere = _enforced_elsewhere(obj, ctx)
    if elsewhere:
        yield finding(
            obj,
            "metadata.namespace",
            f"an audit-mode ALLOW {elsewhere} opens more than one model",
            "put the audit ALLOW in the model's namespace, selecting the model's pods",
        )
    for i, rule in rules(obj):
        froms = sources(rule)
        if not froms:
            yield finding(
                obj,
                f"spec.rules[{i}].from",
                "the audit-mode ALLOW names no source: callers without an mTLS identity "
                "(plaintext, unauthenticated) get in too",
                'admit authenticated peers only: from: [{source: {principals: ["<trust '
                'domain>/*"]}}]',
            )
        for j, source in froms:
            if not str_list(source.get("principals")):
                yield finding(
                    obj,
                    f"spec.rules[{i}].from[{j}].source",
                    "the audit-mode ALLOW admits callers without naming principals: callers "
                    "without an mTLS identity may match",
                    'add principals: ["<trust domain>/*"] (any authenticated peer of the mesh)',
                )


_CONFIG: Final[Mapping[str, Mapping[str, Any]]] = {
    "maxAuditDays": {
        "type": "integer",
        "minimum": 1,
        "maximum": 365,
        "default": DEFAULT_MAX_AUDIT_DAYS,
        "description": "How far ahead an audit's end (aimesh.io/audit-until) may be.",
    },
    "forbidAuditMode": {
        "type": "boolean",
        "default": False,
        "description": "Refuse audit mode entirely (production stacks).",
    },
}

POLICIES: Final = (
    Policy(
        name="aimesh-audit-mode-require-reason-and-expiry",
        description="A model's authorization is only ever in dry-run (audit mode) for a stated "
        "reason and until a near date; never past it, never for DENY rules, the mesh root or "
        "a gateway.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Enforce the model (models[].authorization removed or mode: enforce), or "
        "declare the audit with aimesh.io/audit-reason and aimesh.io/audit-until (YYYY-MM-DD, "
        "at most maxAuditDays ahead); keep DENY policies and the mesh root and gateway "
        "policies out of dry-run.",
        catches="An AuthorizationPolicy annotated istio.io/dry-run (any value istiod reads as "
        "true) without an audit declaration; a declaration without a reason, without a valid "
        "end date, ended (past until: the model and the date are named), or further ahead than "
        "maxAuditDays (default 30); any audit while forbidAuditMode is true (production); a "
        "dry-run DENY or CUSTOM policy (operator paths stay denied); dry-run in the mesh root "
        "or a gateway namespace (which would suspend the root deny-all or the gateway's token "
        "requirement); annotations unknown at preview.",
        check=_declared,
        kinds=frozenset({AUTHORIZATION_POLICY}),
        config=_CONFIG,
    ),
    Policy(
        name="aimesh-audit-mode-admit-mesh-peers-only",
        description="The enforced ALLOW of a model in audit mode admits authenticated mesh "
        "peers only, in the model's own namespace.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation='Admit principals ["<trust domain>/*"] only (every rule with a source '
        "naming principals), in the model's namespace with the model's selector.",
        catches="An ALLOW carrying an audit declaration (not in dry-run) with a rule without "
        "`from` or a source without principals (plaintext and unauthenticated callers would "
        "get in), or placed in the mesh root or a gateway namespace (it would open every "
        "workload).",
        check=_peers_only,
        kinds=frozenset({AUTHORIZATION_POLICY}),
        critical=("spec.rules",),
    ),
)


__all__ = [
    "AUDIT_REASON",
    "AUDIT_UNTIL",
    "DRY_RUN",
    "POLICIES",
    "Declaration",
    "declaration",
    "is_current_audit_allow",
    "is_dry_run",
    "model_of",
    "peers_only",
]
