"""SecureModel: one model, served and locked down (see builders/secure_model.py for the what).

The component only registers what the builders return, in an order that never leaves a model
pod unguarded: namespace -> service account and every guard (ALLOW/DENY policies, JWT
validation, NetworkPolicies, egress, rate limit, masking, RBAC, window controllers) -> the
namespace deny-all (after the ALLOW rules, so legitimate callers are never cut off in between)
-> the InferenceService and its VirtualService last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from builders import secure_model
from builders.common import GatewayRef
from settings import ModelSettings, Settings


@dataclass(frozen=True)
class SecureModelArgs:
    model: ModelSettings
    settings: Settings
    gateway: GatewayRef


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


# Core kinds registered as typed resources (their schemas ship with the provider).
_TYPED: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("batch/v1", "CronJob"): k8s.batch.v1.CronJob,
}


class SecureModel(pulumi.ComponentResource):
    """One model: namespace, identity, InferenceService (+ canary), zero-trust guards.

    Public attributes: `model_name`, `endpoint` (https URL at the ingress gateway),
    `access_rows` (the access matrix rows, JSON-able), `objects` (every manifest)."""

    def __init__(
        self, name: str, args: SecureModelArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aimesh:secure_model:SecureModel", name, None, opts)
        model = args.model
        objects = secure_model.build(args.settings, model, args.gateway)
        self.model_name = model.name
        self.endpoint = f"https://{model.name}.{args.gateway.domain}"
        self.access_rows: list[dict[str, Any]] = [row.to_dict() for row in objects.rows]
        self.objects = objects

        # Children do not inherit the component's dependencies: pass them on explicitly, so
        # every custom resource waits for the charts that install its CRD and webhook.
        given: Any = opts.depends_on if opts is not None else None
        if isinstance(given, pulumi.Resource):
            given = [given]
        self._name = name
        self._upstream: list[pulumi.Resource] = [
            d
            for d in (given if isinstance(given, list | tuple) else [])
            if isinstance(d, pulumi.Resource)
        ]

        ns = self._register(objects.namespace, [])
        identity = [self._register(m, [ns]) for m in objects.identity]
        allow = [self._register(m, [ns]) for m in objects.allow]
        # The CronJobs own the rules of a window policy after creation: a later `pulumi up`
        # must not re-open or re-close it behind the schedule's back.
        windows = [self._register(m, [ns], ignore_changes=["spec.rules"]) for m in objects.windows]
        deny_all = self._register(objects.deny_all, [ns, *allow, *windows])
        guards = [self._register(m, [ns, *identity]) for m in objects.guards]
        guarded = [ns, *identity, *allow, *windows, deny_all, *guards]
        self.workload = [self._register(m, guarded) for m in objects.workload]

        self.register_outputs(
            {
                "modelName": self.model_name,
                "endpoint": self.endpoint,
                "accessRows": self.access_rows,
            }
        )

    def _register(
        self,
        manifest: dict[str, Any],
        depends_on: list[pulumi.Resource],
        ignore_changes: list[str] | None = None,
    ) -> pulumi.Resource:
        api_version = str(manifest["apiVersion"])
        kind = str(manifest["kind"])
        meta = manifest["metadata"]
        suffix = f"{kind.lower()}-{meta['name']}"
        if kind == "Namespace":
            suffix = "namespace"
        opts = pulumi.ResourceOptions(
            parent=self,
            depends_on=[*self._upstream, *depends_on],
            ignore_changes=ignore_changes,
        )
        body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
        typed = _TYPED.get((api_version, kind))
        if typed is not None:
            kwargs = {_snake(k): v for k, v in body.items()}
            resource: pulumi.Resource = typed(
                f"{self._name}-{suffix}", metadata=meta, opts=opts, **kwargs
            )
            return resource
        return k8s.apiextensions.CustomResource(
            f"{self._name}-{suffix}",
            api_version=api_version,
            kind=kind,
            metadata=meta,
            opts=opts,
            **body,
        )
