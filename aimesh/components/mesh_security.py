"""MeshSecurity: the mesh-wide zero-trust defaults in Istio's root namespace.

STRICT mTLS for every workload, a root deny-all AuthorizationPolicy and the REGISTRY_ONLY egress
default. The knowledge (what each object looks like and why) lives in builders/mesh_security.py;
this component only registers it, after Istio's CRDs and validating webhook are ready.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from aimesh.builders import mesh_security
from aimesh.components.manifests import child_options, register
from aimesh.settings import Settings


class MeshSecurity(pulumi.ComponentResource):
    """Mesh-wide STRICT mTLS, root-namespace deny-all and egress lockdown.

    `ready` lists every object: what depends on it (the models) is created only once the
    mesh-wide posture is in place."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        depends_on: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aimesh:mesh_security:MeshSecurity", name, None, opts)
        self.resources: dict[str, pulumi.Resource] = {
            suffix: register(
                f"{name}-{suffix}",
                manifest,
                child_options(self, depends_on),
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
