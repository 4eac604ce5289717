"""Normalize what CrossGuard hands a policy into Kubernetes objects (`K8sObject`, k8s_object.py).

A policy never looks at Pulumi resource types or property proxies: it sees `K8sObject`s. One Pulumi
resource becomes zero or more objects:

- `kubernetes:apiextensions.k8s.io:CustomResource`: apiVersion/kind from the inputs;
- every typed `kubernetes:<group>/<version>:<Kind>` (also what a Helm v3 or v4 Chart, a
  ConfigGroup or a ConfigFile renders: those children arrive as ordinary typed resources);
  `...Patch` types judge the patched fields, `...List` types expand their items;
- `kubernetes:helm.sh/v3:Release` and `kubernetes:helm.sh/v4:Chart` values become a `HelmValues`
  object (source "chart-values"), and istiod's `meshConfig` additionally a synthetic `MeshConfig`
  object, the same object the `istio` ConfigMap (`data.mesh`) and an IstioOperator produce, so a
  mesh-config rule is written once. Likewise istiod's sidecar-injector ConfigMap (what
  `helm template` renders, e.g. a Helm v3 Chart in render mode) yields the istiod `HelmValues`
  its injector runs with (`data.values`), so a chart-values rule judges rendered output too.

Values are made plain on the way in (accessors.py: unknowns become `UNKNOWN`). Every function here
is total: any input (wrong types, missing fields, unknowns) yields a value, never an exception.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

import yaml

from aimesh_policies.accessors import (
    UNKNOWN,
    as_map,
    as_str,
    get,
    maps,
    plain,
    raw_item,
    str_map,
    unproxied,
)
from aimesh_policies.k8s_object import (
    HELM_VALUES,
    MESH_CONFIG,
    SOURCE_CHART_VALUES,
    SOURCE_RESOURCE,
    GroupKind,
    K8sObject,
    parse_type_token,
    split_api_version,
)

# The namespace istiod runs in (and reads its `istio` mesh ConfigMap from) by default.
ISTIOD_NAMESPACE: Final = "istio-system"

# Charts whose values carry istiod's mesh config (`meshConfig`).
ISTIOD_CHARTS: Final = frozenset({"istiod", "istio-discovery", "istiod-remote"})
# istiod's injector reads the chart values it injects with (global.proxy: autoInject, capture
# ranges, privileged ...) from the `values` key (JSON) of this ConfigMap (`-<revision>` suffixed
# for a revision), which the istiod chart renders beside the `istio` mesh ConfigMap.
INJECTOR_CONFIGMAP: Final = "istio-sidecar-injector"


_CUSTOM_RESOURCE = "kubernetes:apiextensions.k8s.io:CustomResource"
_HELM_TYPES = frozenset({"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"})
# Components whose children are registered (and judged) on their own.
_SKIP_TYPES = frozenset(
    {
        "kubernetes:helm.sh/v3:Chart",
        "kubernetes:yaml/v2:ConfigGroup",
        "kubernetes:yaml/v2:ConfigFile",
        "kubernetes:yaml:ConfigGroup",
        "kubernetes:yaml:ConfigFile",
        "kubernetes:kustomize/v2:Directory",
        "kubernetes:kustomize:Directory",
        "pulumi:providers:kubernetes",
    }
)


def quick_group_kinds(resource_type: str, props: object) -> frozenset[GroupKind] | None:
    """The (group, kind)s `to_objects` may yield, cheaply; None when it cannot tell (then the
    caller must normalize). Lets a policy skip resources it never judges without normalizing."""
    if resource_type in _SKIP_TYPES:
        return frozenset()
    if resource_type in _HELM_TYPES:
        return frozenset({HELM_VALUES, MESH_CONFIG})
    if resource_type == _CUSTOM_RESOURCE:
        api_version = plain(raw_item(props, "apiVersion")) if isinstance(props, Mapping) else None
        kind = plain(raw_item(props, "kind")) if isinstance(props, Mapping) else None
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return None
        group, _ = split_api_version(api_version)
        return _with_derived(frozenset({(group, kind)}))
    parsed = parse_type_token(resource_type)
    if parsed is None:
        return frozenset()
    group, _, kind = parsed
    if kind.endswith("List"):
        return None
    if kind.endswith("Patch"):
        kind = kind[: -len("Patch")]
    return _with_derived(frozenset({(group, kind)}))


def _with_derived(kinds: frozenset[GroupKind]) -> frozenset[GroupKind]:
    if ("", "ConfigMap") in kinds:
        return kinds | {MESH_CONFIG, HELM_VALUES}
    if ("install.istio.io", "IstioOperator") in kinds:
        return kinds | {MESH_CONFIG}
    return kinds


def to_objects(
    resource_type: str, props: Mapping[str, Any] | object, urn: str = "", name: str = ""
) -> list[K8sObject]:
    """The Kubernetes objects one Pulumi resource stands for (see the module docstring)."""
    if not isinstance(resource_type, str) or resource_type in _SKIP_TYPES:
        return []
    body = plain(props)
    if not isinstance(body, Mapping):
        body = {}
    urn = urn if isinstance(urn, str) else ""
    name = name if isinstance(name, str) else ""
    if resource_type in _HELM_TYPES:
        return _from_helm(resource_type, body, urn, name)
    if resource_type == _CUSTOM_RESOURCE:
        group, version = split_api_version(body.get("apiVersion"))
        kind = as_str(body.get("kind")) or ""
        if not kind:
            return []
        return _from_manifest(body, group, version, kind, urn, resource_type, name)
    parsed = parse_type_token(resource_type)
    if parsed is None:
        return []
    group, version, kind = parsed
    if kind.endswith("List") and isinstance(body.get("items"), list):
        objects: list[K8sObject] = []
        item_kind = kind[: -len("List")]
        for item in maps(body.get("items")):
            objects.extend(_from_manifest(item, group, version, item_kind, urn, resource_type, ""))
        return objects
    patch = kind.endswith("Patch")
    if patch:
        kind = kind[: -len("Patch")]
    return _from_manifest(body, group, version, kind, urn, resource_type, name, patch=patch)


# The SDK hands every policy its own freshly decoded copy of a resource's properties, so the pack
# would normalize the same resource once per policy that judges it. `normalized` keys a small
# cache on the resource's full CONTENT (its type, URN, name and properties serialized to JSON,
# which tells true from 1.0 and "1" from 1): a hit returns what `to_objects` returns for exactly
# that input, so nothing can leak between requests - a resource whose properties changed
# (e.g. by remediation) is a different key. Anything JSON cannot encode (an asset, a secret
# wrapper) is normalized uncached. The objects are shared, so nobody may mutate them (fixes copy
# via `as_manifest`, as they must anyway).
_CACHE_SIZE: Final = 4096
_cache: OrderedDict[tuple[str, str, str, str], list[K8sObject]] = OrderedDict()
_cache_lock = threading.Lock()


def _content_key(
    resource_type: str, props: object, urn: str, name: str
) -> tuple[str, str, str, str] | None:
    try:
        content = json.dumps(props, separators=(",", ":"), default=unproxied)
    except (TypeError, ValueError, RecursionError):
        return None
    return (resource_type, urn, name, content)


def normalized(resource_type: str, props: object, urn: str = "", name: str = "") -> list[K8sObject]:
    """`to_objects`, computed once per resource content (see above); a fresh list each call."""
    if not isinstance(resource_type, str) or not isinstance(urn, str) or not isinstance(name, str):
        return to_objects(resource_type, props, urn, name)
    key = _content_key(resource_type, props, urn, name)
    if key is None:
        return to_objects(resource_type, props, urn, name)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return list(hit)
    objs = to_objects(resource_type, props, urn, name)
    with _cache_lock:
        _cache[key] = objs
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return list(objs)


def object_from_manifest(
    manifest: Mapping[str, Any], urn: str = "", resource_type: str = ""
) -> list[K8sObject]:
    """Objects for a plain Kubernetes manifest (a YAML document); [] when it has no kind."""
    body = plain(manifest)
    if not isinstance(body, Mapping):
        return []
    kind = as_str(body.get("kind"))
    if not kind:
        return []
    group, version = split_api_version(body.get("apiVersion"))
    if kind.endswith("List") and isinstance(body.get("items"), list):
        found: list[K8sObject] = []
        for item in maps(body.get("items")):
            found.extend(object_from_manifest(item, urn, resource_type))
        return found
    return _from_manifest(body, group, version, kind, urn, resource_type, "")


def _from_manifest(
    body: Mapping[str, Any],
    group: str,
    version: str,
    kind: str,
    urn: str,
    resource_type: str,
    fallback_name: str,
    *,
    patch: bool = False,
) -> list[K8sObject]:
    # Props win over the type token (a CustomResource's kind is only in its props; a typed
    # resource's apiVersion in props names the served version actually requested).
    props_group, props_version = split_api_version(body.get("apiVersion"))
    if props_version:
        group, version = props_group, props_version
    kind = as_str(body.get("kind")) or kind
    meta = as_map(body.get("metadata"))
    namespace = as_str(meta.get("namespace"))
    obj = K8sObject(
        group=group,
        version=version,
        kind=kind,
        name=as_str(meta.get("name")) or fallback_name,
        namespace=namespace or "",
        labels=str_map(meta.get("labels")),
        annotations=str_map(meta.get("annotations")),
        body=body,
        urn=urn,
        source=SOURCE_RESOURCE,
        resource_type=resource_type,
        namespace_set=bool(namespace),
        patch=patch,
    )
    return [obj, *_derived(obj)]


def _derived(obj: K8sObject) -> list[K8sObject]:
    """Mesh config carried inside an ordinary object (the istio ConfigMap, an IstioOperator);
    istiod's chart values carried by its sidecar-injector ConfigMap."""
    if obj.group == "" and obj.kind == "ConfigMap":
        # A ConfigMap whose name is unknown until apply may be either (or both).
        found = [_injector_values(obj)] if _is_injector_configmap(obj) else []
        if _is_mesh_configmap(obj):
            raw = obj.get("data.mesh") if obj.get("data") is not UNKNOWN else UNKNOWN
            mesh: Any = UNKNOWN if raw is UNKNOWN else _parse_yaml_mapping(raw)
            if mesh is not None:
                found.append(_mesh_config(obj, mesh, "data.mesh", SOURCE_RESOURCE))
        return found
    if obj.group == "install.istio.io" and obj.kind == "IstioOperator":
        mesh = obj.get("spec.meshConfig")
        if mesh is None:
            return []
        return [_mesh_config(obj, mesh, "spec.meshConfig", SOURCE_RESOURCE)]
    return []


def _is_mesh_configmap(obj: K8sObject) -> bool:
    # istiod reads `istio` (or `istio-<revision>`) in its own namespace, key `mesh`. A name
    # unknown until apply cannot rule that out: a ConfigMap carrying a `mesh` key is then judged
    # as mesh config; an istio-named one whose data is unknown yields an unknown mesh config.
    data = obj.body.get("data")
    meta = obj.body.get("metadata")
    name_unknown = meta is UNKNOWN or get(meta, "name") is UNKNOWN
    istio_named = obj.name == "istio" or obj.name.startswith("istio-")
    if data is UNKNOWN:
        # Name and data both unknown: only sitting in the namespace istiod reads its mesh config
        # from (by default) still marks it as possibly istiod's; elsewhere nothing tells it apart
        # from any other ConfigMap.
        return istio_named or (name_unknown and obj.namespace == ISTIOD_NAMESPACE)
    return (istio_named or name_unknown) and "mesh" in as_map(data)


def _is_injector_configmap(obj: K8sObject) -> bool:
    # Like the mesh ConfigMap: a name unknown until apply cannot rule the injector's out, so a
    # ConfigMap carrying a `values` key (or unknown data, in istiod's namespace) is judged too.
    if obj.name == INJECTOR_CONFIGMAP or obj.name.startswith(f"{INJECTOR_CONFIGMAP}-"):
        return True
    meta = obj.body.get("metadata")
    if not (meta is UNKNOWN or get(meta, "name") is UNKNOWN):
        return False
    data = obj.body.get("data")
    if data is UNKNOWN:
        return obj.namespace == ISTIOD_NAMESPACE
    return "values" in as_map(data)


def _injector_values(obj: K8sObject) -> K8sObject:
    """istiod `HelmValues` from the injector ConfigMap's `data.values` (unknown stays unknown;
    text that is not a JSON/YAML object judges as no values)."""
    data = obj.get("data")
    raw = UNKNOWN if data is UNKNOWN else get(data, "values")
    values: Any = UNKNOWN if raw is UNKNOWN else (_parse_yaml_mapping(raw) or {})
    return K8sObject(
        group=HELM_VALUES[0],
        version="v1",
        kind=HELM_VALUES[1],
        name=obj.name,
        namespace=obj.namespace,
        labels={},
        annotations={},
        body={"chart": "istiod", "values": values},
        urn=obj.urn,
        source=SOURCE_RESOURCE,
        resource_type=obj.resource_type,
        # `values.global.proxy.autoInject` is reported as data.values.global.proxy.autoInject.
        origin="data",
        namespace_set=obj.namespace_set,
    )


def _parse_yaml_mapping(raw: Any) -> Mapping[str, Any] | None:
    if not isinstance(raw, str):
        return None
    return _parse_yaml_text(raw)


@lru_cache(maxsize=64)
def _parse_yaml_text(raw: str) -> Mapping[str, Any] | None:
    # Cached: every policy of the pack sees the same mesh ConfigMap (the result is never mutated:
    # fixes copy first).
    try:
        loaded = yaml.safe_load(raw)
    except Exception:
        return None
    parsed = plain(loaded)
    return parsed if isinstance(parsed, Mapping) else None


def _mesh_config(parent: K8sObject, mesh: Any, origin: str, source: str) -> K8sObject:
    return K8sObject(
        group=MESH_CONFIG[0],
        version="v1",
        kind=MESH_CONFIG[1],
        name=parent.name,
        namespace=parent.namespace,
        labels={},
        annotations={},
        # A MeshConfig's fields sit at the top of its body, whatever carried it.
        body=mesh if isinstance(mesh, Mapping) else {},
        urn=parent.urn,
        source=source,
        resource_type=parent.resource_type,
        origin=origin,
        namespace_set=parent.namespace_set,
        whole_unknown=mesh is UNKNOWN,
    )


def is_istiod_values(obj: K8sObject) -> bool:
    """True for anything but Helm values of a chart other than istiod (a filter for `only`)."""
    return obj.group_kind != HELM_VALUES or get(obj.body, "chart") in ISTIOD_CHARTS


def chart_name(props: Mapping[str, Any]) -> str:
    """The chart's short name from a Release/Chart's `chart` ("oci://.../istiod" -> "istiod")."""
    chart = as_str(props.get("chart")) or ""
    chart = chart.rstrip("/").rsplit("/", 1)[-1]
    if ":" in chart:  # "istiod:1.30.3" style references
        chart = chart.split(":", 1)[0]
    return chart


def _from_helm(resource_type: str, body: Mapping[str, Any], urn: str, name: str) -> list[K8sObject]:
    chart = chart_name(body)
    release = as_str(body.get("name")) or name
    namespace = as_str(body.get("namespace")) or ""
    values = body.get("values")
    values_body: Mapping[str, Any] = {
        "chart": chart,
        "values": values if values is UNKNOWN else as_map(values),
        # What decides the rendered output besides the values (visibility.py compares a
        # Release with the v4 Chart that renders it for the pack).
        "source": {
            key: body.get(key)
            for key in (
                "chart",
                "version",
                "repositoryOpts",
                "skipCrds",
                "valueYamlFiles",
                "postrender",
                "postRenderer",
            )
        },
    }
    helm = K8sObject(
        group=HELM_VALUES[0],
        version="v1",
        kind=HELM_VALUES[1],
        name=release,
        namespace=namespace,
        labels={},
        annotations={},
        body=values_body,
        urn=urn,
        source=SOURCE_CHART_VALUES,
        resource_type=resource_type,
        namespace_set=bool(namespace),
    )
    objects = [helm]
    if chart in ISTIOD_CHARTS:
        mesh = values if values is UNKNOWN else as_map(values).get("meshConfig")
        objects.append(
            _mesh_config(
                helm, mesh if mesh is not None else {}, "values.meshConfig", SOURCE_CHART_VALUES
            )
        )
    return objects
