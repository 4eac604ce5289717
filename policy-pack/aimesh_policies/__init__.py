"""aimesh's CrossGuard policy pack: zero trust for Istio + KServe + cert-manager, as a package.

- `all_policies()`: every `Policy` of every concern module (each module exports `POLICIES`).
- `build_pulumi_policies()`: the thin pulumi_policy wrappers (`ResourceValidationPolicy` /
  `StackValidationPolicy`) that `policy-pack/__main__.py` hands to `PolicyPack`.
- `config_schema()`: the `--policy-pack-config` schema, per policy.

The wrappers catch nothing: every check is total (see framework.py).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Final

from aimesh_policies.accessors import SENTINEL_UNKNOWN_STRING, UNKNOWN
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    evaluate,
    evaluate_stack,
)
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.objects import normalized, quick_group_kinds, to_objects

PACK_NAME: Final = "aimesh-zero-trust"

# One module per concern; the first four are transport/identity, the rest workload/perimeter.
CONCERNS: Final = (
    "mtls",
    "authz",
    "authn",
    "injection",
    "workload",
    "exposure",
    "egress",
    "tampering",
    "protection",
    "decoding",
    "pki",
    "guardrails",
    "auditmode",
    "effective",
    "visibility",
)


def missing_concerns() -> list[str]:
    """Concern modules not (yet) present in the package."""
    missing = []
    for concern in CONCERNS:
        try:
            importlib.import_module(f"aimesh_policies.{concern}")
        except ModuleNotFoundError as exc:
            if exc.name != f"aimesh_policies.{concern}":
                raise
            missing.append(concern)
    return missing


@cache
def all_policies() -> tuple[Policy, ...]:
    """Every policy of every concern module present, `concern` filled in, names unique."""
    policies: list[Policy] = []
    for concern in CONCERNS:
        try:
            module = importlib.import_module(f"aimesh_policies.{concern}")
        except ModuleNotFoundError as exc:
            if exc.name != f"aimesh_policies.{concern}":
                raise
            continue
        for policy in getattr(module, "POLICIES", ()):
            policies.append(dataclasses.replace(policy, concern=concern))
    names = [p.name for p in policies]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate policy names: {duplicates}")
    return tuple(policies)


def config_schema() -> dict[str, dict[str, dict[str, Any]]]:
    """policy name -> JSON schema properties of its config (with defaults)."""
    return {p.name: p.config_schema() for p in all_policies()}


# --- pulumi_policy wrappers ----------------------------------------------------------------------


def _wire(value: Any) -> Any:
    """Back to what the engine understands: UNKNOWN as Pulumi's unknown sentinel."""
    if value is UNKNOWN:
        return SENTINEL_UNKNOWN_STRING
    if isinstance(value, Mapping):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def objects_of(
    resource_type: str, props: Any, urn: str, name: str, policy: Policy
) -> list[K8sObject]:
    """The objects of one resource that `policy` judges (a cheap kind filter first)."""
    if policy.kinds:
        quick = quick_group_kinds(resource_type, props)
        if quick is not None and not quick & policy.kinds:
            return []
    # Normalized once per resource content, shared by every policy that judges it.
    return [o for o in normalized(resource_type, props, urn, name) if policy.applies_to(o)]


def _resource_policy(policy: Policy) -> Any:
    import pulumi_policy

    def validate(args: Any, report_violation: Any) -> None:
        objs = objects_of(args.resource_type, args.props, args.urn, args.name, policy)
        if not objs:
            return
        ctx = Context.for_config(args.get_config())
        for obj in objs:
            for found in evaluate(policy, obj, ctx):
                report_violation(found.message, args.urn or None)

    remediate = None
    if policy.fix is not None:
        fix = policy.fix

        def remediate(args: Any) -> Mapping[str, Any] | None:
            objs = objects_of(args.resource_type, args.props, args.urn, args.name, policy)
            ctx = Context.for_config(args.get_config())
            for obj in objs:
                # Only a plain resource can be rewritten (not chart values), and only when the
                # rule actually fires on it.
                if obj.source == "resource" and not obj.origin and evaluate(policy, obj, ctx):
                    fixed = fix(obj)
                    if fixed is not None:
                        return dict(_wire(fixed))
            return None

    return pulumi_policy.ResourceValidationPolicy(
        name=policy.name,
        description=policy.description,
        validate=validate,
        # The SDK also accepts a plain (non-awaitable) mapping from remediate (policy.py,
        # Remediate: `elif result is not None: new_props = result`); its annotation does not.
        remediate=remediate,  # type: ignore[arg-type]
        enforcement_level=_level(policy.level),
        config_schema=pulumi_policy.PolicyConfigSchema(properties=policy.config_schema()),
        severity=_severity(policy.severity),
        remediation_steps=policy.remediation,
    )


def _stack_policy(policy: Policy) -> Any:
    import pulumi_policy

    def validate(args: Any, report_violation: Any) -> None:
        ctx = Context.for_config(args.get_config())
        objs: list[K8sObject] = []
        for resource in args.resources:
            objs.extend(
                objects_of(
                    resource.resource_type, resource.props, resource.urn, resource.name, policy
                )
            )
        for found in evaluate_stack(policy, objs, ctx):
            report_violation(found.message, found.urn or None)

    return pulumi_policy.StackValidationPolicy(
        name=policy.name,
        description=policy.description,
        validate=validate,
        enforcement_level=_level(policy.level),
        config_schema=pulumi_policy.PolicyConfigSchema(properties=policy.config_schema()),
        severity=_severity(policy.severity),
        remediation_steps=policy.remediation,
    )


def _level(level: Level) -> Any:
    import pulumi_policy

    return pulumi_policy.EnforcementLevel(level.value)


def _severity(severity: Severity) -> Any:
    import pulumi_policy

    return pulumi_policy.Severity(severity.value)


def build_pulumi_policies(policies: Sequence[Policy] | None = None) -> list[Any]:
    """pulumi_policy Policy objects for `policies` (default: all)."""
    chosen = all_policies() if policies is None else policies
    return [_stack_policy(p) if p.is_stack_rule else _resource_policy(p) for p in chosen]


__all__ = [
    "CONCERNS",
    "PACK_NAME",
    "Context",
    "Finding",
    "K8sObject",
    "Level",
    "Policy",
    "Severity",
    "all_policies",
    "build_pulumi_policies",
    "config_schema",
    "missing_concerns",
    "objects_of",
    "to_objects",
]
