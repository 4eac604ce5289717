"""`K8sObject`: one Kubernetes object (or synthetic chart-values object) as policies see it, and
the parsing of API versions and Pulumi type tokens into (group, version, kind).

Policies match on API GROUP and kind, never on the version: every served version of an Istio or
KServe API is judged alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from aimesh_policies.accessors import as_map, get, unknown_paths

# Synthetic objects (not Kubernetes API objects): their own group so no real API can collide.
SYNTHETIC_GROUP: Final = "policy.aimesh.io"
MESH_CONFIG: Final = (SYNTHETIC_GROUP, "MeshConfig")
HELM_VALUES: Final = (SYNTHETIC_GROUP, "HelmValues")

SOURCE_RESOURCE: Final = "resource"
SOURCE_CHART_VALUES: Final = "chart-values"


GroupKind = tuple[str, str]


@dataclass(frozen=True)
class K8sObject:
    """One Kubernetes object (or synthetic chart-values object) as policies see it."""

    group: str  # "" for the core API
    version: str
    kind: str
    name: str
    namespace: str  # "" for cluster-scoped (or not set)
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    body: Mapping[str, Any]  # the whole manifest, plain (unknowns as UNKNOWN)
    urn: str = ""
    source: str = SOURCE_RESOURCE
    resource_type: str = ""
    # How a field of `body` is named in messages: "" for manifests, e.g. "values.meshConfig" for
    # a MeshConfig made from Helm values, "data.mesh" for one made from the istio ConfigMap.
    origin: str = ""
    namespace_set: bool = field(default=False)  # metadata.namespace was given explicitly
    whole_unknown: bool = False  # the whole body is unknown until apply (e.g. Helm values)
    # A server-side patch (`...Patch` types): only the fields it sets are judged; an absent
    # field leaves the live object's value alone.
    patch: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> GroupKind:
        return (self.group, self.kind)

    @property
    def spec(self) -> Mapping[str, Any]:
        return as_map(self.body.get("spec"))

    @property
    def ref(self) -> str:
        """`Kind namespace/name` (what every message starts with)."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        origin = " (chart values)" if self.source == SOURCE_CHART_VALUES else ""
        return f"{self.kind} {where or '<unnamed>'}{origin}"

    def get(self, path: str) -> Any:
        return get(self.body, path)

    def field(self, path: str) -> str:
        """`path` as the user wrote it (prefixed by the origin for synthetic objects)."""
        if not self.origin:
            return path
        return f"{self.origin}.{path}" if path else self.origin

    def is_(self, group: str, *kinds: str) -> bool:
        return self.group == group and self.kind in kinds

    def unknown(self, path: str) -> list[str]:
        """Unknown values at or under `path` of the body (see `unknown_paths`), as field names."""
        if self.whole_unknown:
            return [self.field("")]
        return [self.field(p) for p in unknown_paths(self.body, path)]


def split_api_version(api_version: object) -> tuple[str, str]:
    """("security.istio.io", "v1") from "security.istio.io/v1"; ("", "v1") from "v1"."""
    if not isinstance(api_version, str) or not api_version:
        return "", ""
    if "/" in api_version:
        group, _, version = api_version.rpartition("/")
        return group, version
    return "", api_version


@lru_cache(maxsize=1024)
def parse_type_token(resource_type: str) -> tuple[str, str, str] | None:
    """(group, version, kind) for a typed `kubernetes:<group>/<version>:<Kind>` token."""
    if not isinstance(resource_type, str) or not resource_type.startswith("kubernetes:"):
        return None
    parts = resource_type.split(":")
    if len(parts) != 3 or "/" not in parts[1]:
        return None
    group, _, version = parts[1].rpartition("/")
    if group in ("core", ""):
        group = ""
    if group in ("helm.sh", "yaml", "kustomize"):
        return None
    return group, version, parts[2]
