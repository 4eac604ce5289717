"""Names and small helpers every builder shares (pure: no Pulumi imports)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aimesh.settings import IntegrationSettings, ModelSettings

# Labels aimesh puts on what it creates.
MANAGED_BY = {"app.kubernetes.io/managed-by": "aimesh"}
MODEL_LABEL = "aimesh.io/model"
VERSION_LABEL = "aimesh.io/version"
ROLE_LABEL = "aimesh.io/role"

# The Envoy sidecar's UID: a workload running as it escapes traffic capture.
ISTIO_PROXY_UID = 1337


@dataclass(frozen=True)
class GatewayRef:
    """What a model needs to know about the ingress gateway."""

    namespace: str
    name: str  # networking.istio.io Gateway name
    service_account: str
    selector: dict[str, str]
    domain: str

    @property
    def qualified(self) -> str:
        """`<namespace>/<name>`, as VirtualService.spec.gateways wants it."""
        return f"{self.namespace}/{self.name}"

    def principal(self, trust_domain: str) -> str:
        return principal(trust_domain, self.namespace, self.service_account)


class ModelPlatform(Protocol):
    """What a model's objects depend on besides the model and the gateway. The stack's whole
    `Settings` is one; the protocol names the little a model really reads."""

    @property
    def trust_domain(self) -> str: ...

    @property
    def integrations(self) -> Sequence[IntegrationSettings]: ...

    @property
    def observability(self) -> bool: ...

    @property
    def mesh_ca(self) -> str: ...  # who signs workload certificates (builders/mesh_ca.py)
    # Where the model's pods may send DNS (builders/secure_model/network.py).
    @property
    def dns_namespace(self) -> str: ...

    @property
    def dns_pod_labels(self) -> Sequence[str]: ...

    @property
    def dns_egress_cidrs(self) -> Sequence[str]: ...

    def masking_enabled(self, model: ModelSettings) -> bool: ...


def principal(trust_domain: str, namespace: str, service_account: str) -> str:
    """The SPIFFE-style principal Istio authorization matches: `<td>/ns/<ns>/sa/<sa>`."""
    return f"{trust_domain}/ns/{namespace}/sa/{service_account}"


def metadata(
    name: str,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """ObjectMeta with aimesh's managed-by label."""
    meta: dict[str, Any] = {"name": name, "labels": {**MANAGED_BY, **(labels or {})}}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = annotations
    return meta


# Names the stack setting an object was generated from (`aimesh:models[1]`): the policy pack
# adds that setting, and the change that would fix it, to a violation of the object. It changes
# the wording of a violation only, never whether there is one (policy-pack/.../provenance.py).
SETTING_ANNOTATION = "aimesh.io/setting"


def from_setting(manifest: dict[str, Any], setting: str) -> dict[str, Any]:
    """`manifest`, annotated with the stack setting that generated it ('' leaves it as is).
    Its metadata and annotations are new dicts, so shared constants are never changed."""
    if not setting:
        return manifest
    meta = dict(manifest.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), SETTING_ANNOTATION: setting}
    manifest["metadata"] = meta
    return manifest


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge of values: maps merge key by key, anything else is replaced by `override`."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys) for embedded documents, so previews stay quiet."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
