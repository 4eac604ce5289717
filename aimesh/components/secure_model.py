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
from aimesh.builders.common import GatewayRef, ModelPlatform
from aimesh.components.manifests import aliased, register, upstream
from aimesh.settings import ModelSettings

TYPE = "aimesh:secureModel:SecureModel"
# Earlier type tokens (snake_case module): aliased, so existing stacks keep their resources.
OLD_TYPES = ("aimesh:secure_model:SecureModel",)


@dataclass(frozen=True)
class SecureModelArgs:
    """What one model needs: its settings, the ingress gateway it is exposed through, and the
    few platform facts its objects depend on (`ModelPlatform`: trust domain, integrations,
    observability, masking default). The stack passes its whole `Settings` as `platform`;
    another program passes `aimesh.settings.parse({...})` of just the keys it cares about, so
    its model is validated by the same rules."""

    model: ModelSettings
    gateway: GatewayRef
    platform: ModelPlatform
    # Where the stack declares this model (`aimesh:models[1]`): annotated on every object, so a
    # policy violation names the setting to change. Empty for a model not from a stack file.
    setting: str = ""

    def __post_init__(self) -> None:
        # A validated Settings guarantees this; any other ModelPlatform gets the same clear
        # error here, before anything is registered.
        known = {i.name for i in self.platform.integrations}
        for grant in self.model.integrations:
            if grant.name not in known:
                raise ValueError(
                    f"model {self.model.name!r} grants unknown integration {grant.name!r}; "
                    f"add it to the platform's integrations (known: {sorted(known) or 'none'})"
                )


class SecureModel(pulumi.ComponentResource):
    """One model: namespace, identity, InferenceService (+ canary), zero-trust guards.

    `opts.depends_on` is what every child waits for (the charts installing KServe's and
    Istio's CRDs and webhooks, the mesh-wide policies, the gateway).

    Public attributes: `model_name`, `endpoint` (https URL at the ingress gateway),
    `access_rows` (the access matrix rows, JSON-able), `objects` (every manifest)."""

    def __init__(
        self, name: str, args: SecureModelArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, aliased(opts, *OLD_TYPES))
        model = args.model
        objects = secure_model.build(args.platform, model, args.gateway, args.setting)
        self.model_name = model.name
        self.endpoint = f"https://{model.name}.{args.gateway.domain}"
        self.access_rows: list[dict[str, Any]] = objects.matrix()
        self.objects = objects

        # Children do not inherit the component's dependencies: pass them on explicitly, so
        # every custom resource waits for the charts that install its CRD and webhook.
        self._name = name
        self._upstream = upstream(opts)

        ns = self._register(objects.namespace, [])
        # Data only (no CRD): the intent the policy pack reads, next to what it describes.
        self._register(objects.intent, [ns])
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
