"""MeshSecurity: the mesh-wide zero-trust defaults in Istio's root namespace.

STRICT mTLS for every workload, a root deny-all AuthorizationPolicy and the REGISTRY_ONLY egress
default. The knowledge (what each object looks like and why) lives in builders/mesh_security.py;
this component only registers it, after Istio's CRDs and validating webhook are ready.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from aimesh.builders import mesh_security
from aimesh.components.manifests import aliased, child_options, register, upstream
from aimesh.settings import Settings

TYPE = "aimesh:meshSecurity:MeshSecurity"
# Earlier type tokens (snake_case module): aliased, so existing stacks keep their resources.
OLD_TYPES = ("aimesh:mesh_security:MeshSecurity",)


@dataclass(frozen=True)
class MeshSecurityArgs:
    """The platform's settings: trust domain, egress mode, control-plane namespaces."""

    settings: Settings


class MeshSecurity(pulumi.ComponentResource):
    """Mesh-wide STRICT mTLS, root-namespace deny-all and egress lockdown.

    `opts.depends_on` (Istio's CRDs and validating webhook) is handed on to every object.
    `ready` lists every object: what depends on it (the models) is created only once the
    mesh-wide posture is in place."""

    def __init__(
        self, name: str, args: MeshSecurityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, aliased(opts, *OLD_TYPES))
        settings = args.settings
        waits = upstream(opts)
        self.resources: dict[str, pulumi.Resource] = {
            suffix: register(
                f"{name}-{suffix}",
                manifest,
                child_options(self, waits),
            )
            for suffix, manifest in mesh_security.manifests(settings).items()
        }
        self.peer_authentication = self.resources["strict-mtls"]
        self.deny_all = self.resources["deny-all"]
        self.sidecar = self.resources["egress"]
        self.ready: list[pulumi.Resource] = list(self.resources.values())
        self.register_outputs(
            {
                "outboundTrafficPolicy": settings.outbound_traffic_policy,
                "objects": sorted(self.resources),
            }
        )
