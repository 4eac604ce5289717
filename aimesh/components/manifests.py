"""Registering a builder's manifest as a Pulumi resource: the one place components do it.

Core kinds become typed resources (their schemas ship with the provider, so the engine
validates and diffs them field by field); everything else is a CustomResource.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# Core kinds the builders produce, registered as typed resources.
_TYPED: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("batch/v1", "CronJob"): k8s.batch.v1.CronJob,
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicy",
    ): k8s.admissionregistration.v1.ValidatingAdmissionPolicy,
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicyBinding",
    ): k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding,
}


def upstream(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    """What a component was asked to wait for (`opts.depends_on`), as a list to hand its
    children: they do not inherit it (see `child_options`).

    Only resources can be handed on; an Output of them could not be split among the children,
    so it is refused with the fix rather than silently not waited for."""
    given: Any = opts.depends_on if opts is not None else None
    if given is None:
        return []
    if isinstance(given, pulumi.Resource):
        return [given]
    if isinstance(given, list | tuple) and all(isinstance(d, pulumi.Resource) for d in given):
        return list(given)
    raise TypeError(
        "depends_on of an aimesh component must be a resource or a list of resources (not an "
        f"Output), so that each of its children can wait for them; got {type(given).__name__}"
    )


def aliased(opts: pulumi.ResourceOptions | None, *old_types: str) -> pulumi.ResourceOptions:
    """`opts` plus an alias for each type token the component was registered under before, so
    a stack created with the old token adopts the component (and, through it, its children)
    instead of replacing them."""
    return pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=t) for t in old_types])
    )


def child_options(
    parent: pulumi.Resource, *after: Sequence[pulumi.Resource]
) -> pulumi.ResourceOptions:
    """Options of a component's child: parented to the component and waiting for `after`.

    Children do not inherit their component's `depends_on`, so components pass what they wait
    for (the charts installing CRDs and webhooks) on to every child explicitly."""
    return pulumi.ResourceOptions(parent=parent, depends_on=[r for group in after for r in group])


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def register(
    resource_name: str, manifest: Mapping[str, Any], opts: pulumi.ResourceOptions
) -> pulumi.Resource:
    """Register `manifest` (apiVersion, kind, metadata, body) under `resource_name`."""
    api_version = str(manifest["apiVersion"])
    kind = str(manifest["kind"])
    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
    typed = _TYPED.get((api_version, kind))
    if typed is not None:
        resource: pulumi.Resource = typed(
            resource_name,
            metadata=manifest["metadata"],
            opts=opts,
            **{_snake(k): v for k, v in body.items()},
        )
        return resource
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=api_version,
        kind=kind,
        metadata=manifest["metadata"],
        opts=opts,
        **body,
    )
