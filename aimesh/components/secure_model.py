"""SecureModel: one model, served and locked down (see builders/secure_model/ for the what).

The component only registers what the builders return, in an order that never leaves a model
pod unguarded: namespace -> service account and every guard (ALLOW/DENY policies, JWT
validation, NetworkPolicies, egress, rate limit, masking, RBAC, window controllers) -> the
namespace deny-all (after the ALLOW rules, so legitimate callers are never cut off in between)
-> the InferenceService and its VirtualService last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from aimesh.builders import secure_model
from aimesh.builders.common import GatewayRef
from aimesh.components.manifests import register
from aimesh.settings import ModelSettings, Settings


@dataclass(frozen=True)
class SecureModelArgs:
    model: ModelSettings
    settings: Settings
    gateway: GatewayRef


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
        kind = str(manifest["kind"])
        suffix = (
            "namespace" if kind == "Namespace" else f"{kind.lower()}-{manifest['metadata']['name']}"
        )
        opts = pulumi.ResourceOptions(
            parent=self,
            depends_on=[*self._upstream, *depends_on],
            ignore_changes=ignore_changes,
        )
        return register(f"{self._name}-{suffix}", manifest, opts)
