"""ExtraObjects: `aimesh:extraObjects`, manifests registered as they are (the escape hatch).

For what aimesh does not model (a team's own AuthorizationPolicy, a ConfigMap a runtime needs).
They are registered after the platform and the models, so their CRDs exist; the policy pack
judges each one like any other object, so an escape hatch cannot weaken the mesh unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from aimesh.components.manifests import child_options, register, upstream
from aimesh.settings import Settings

TYPE = "aimesh:extraObjects:ExtraObjects"


@dataclass(frozen=True)
class ExtraObjectsArgs:
    """The stack's settings; `settings.extra_objects` are the manifests."""

    settings: Settings


def resource_suffix(manifest: dict[str, Any]) -> str:
    """A stable Pulumi name from the object's identity (kind, namespace, name)."""
    meta = manifest["metadata"]
    kind = str(manifest["kind"]).lower()
    return f"extra-{kind}-{meta.get('namespace', 'cluster')}-{meta['name']}"


class ExtraObjects(pulumi.ComponentResource):
    """Every `aimesh:extraObjects` manifest, unchanged; `opts.depends_on` is handed on."""

    def __init__(
        self, name: str, args: ExtraObjectsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        waits = upstream(opts)
        self.resources = {
            suffix: register(f"{name}-{suffix}", manifest, child_options(self, waits))
            for manifest in args.settings.extra_objects
            for suffix in [resource_suffix(manifest)]
        }
        self.register_outputs({"objects": sorted(self.resources)})
