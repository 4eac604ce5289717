"""Normalize what CrossGuard hands a policy into Kubernetes objects.

A policy never looks at Pulumi resource types or property proxies: it sees `K8sObject`s. One Pulumi
resource becomes zero or more objects:

- `kubernetes:apiextensions.k8s.io:CustomResource`: apiVersion/kind from the inputs;
- every typed `kubernetes:<group>/<version>:<Kind>` (also what a Helm v4 Chart, a ConfigGroup or a
  ConfigFile renders: those children arrive as ordinary typed resources); `...Patch` types judge the
  patched fields, `...List` types expand their items;
- `kubernetes:helm.sh/v3:Release` and `kubernetes:helm.sh/v4:Chart` values become a `HelmValues`
  object (source "chart-values"), and istiod's `meshConfig` additionally a synthetic `MeshConfig`
  object, the same object the `istio` ConfigMap (`data.mesh`) and an IstioOperator produce, so a
  mesh-config rule is written once.

Policies match on API GROUP and kind, never on the version: every served version of an Istio or
KServe API is judged alike.

Values unknown during preview (Pulumi's sentinel strings, or `pulumi.output.Unknown` when a test
feeds engine inputs directly) become the `UNKNOWN` marker, which is not a str/bool/int/Mapping, so
typed accessors treat it as absent while `unknown_paths` finds it for the "cannot verify" findings.

Every function here is total: any input (wrong types, missing fields, unknowns) yields a value,
never an exception.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

import yaml

# The pulumi_policy proxy (pulumi_policy/proxy.py) raises UnknownValueError on access to an unknown
# value; its `["__target"]` item hands out the wrapped container without checking. These are its
# sentinels (the engine marshals every unknown as one of them).
UNKNOWN_SENTINELS: Final = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
        "e48ece36-62e2-4504-bad9-02848725956a",  # archive
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)


class Unknown:
    """A value Pulumi does not know until apply. A singleton: compare with `is UNKNOWN`."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown>"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Final = Unknown()

SENTINEL_UNKNOWN_STRING: Final = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# Synthetic objects (not Kubernetes API objects): their own group so no real API can collide.
SYNTHETIC_GROUP: Final = "policy.aimesh.io"
MESH_CONFIG: Final = (SYNTHETIC_GROUP, "MeshConfig")
HELM_VALUES: Final = (SYNTHETIC_GROUP, "HelmValues")

SOURCE_RESOURCE: Final = "resource"
SOURCE_CHART_VALUES: Final = "chart-values"

# The namespace istiod runs in (and reads its `istio` mesh ConfigMap from) by default.
ISTIOD_NAMESPACE: Final = "istio-system"

# Charts whose values carry istiod's mesh config (`meshConfig`).
ISTIOD_CHARTS: Final = frozenset({"istiod", "istio-discovery", "istiod-remote"})

GroupKind = tuple[str, str]


def is_unknown(value: object) -> bool:
    return value is UNKNOWN


def _is_pulumi_unknown(value: object) -> bool:
    # pulumi.output.Unknown, without importing the SDK's internals here.
    cls = type(value)
    return cls.__name__ == "Unknown" and cls.__module__.startswith("pulumi")


def plain(value: object, _depth: int = 0) -> Any:
    """A plain JSON-like copy of `value`: proxies unwrapped (without tripping their unknown
    checks), unknowns as `UNKNOWN`, anything exotic (assets, archives) as its str()."""
    if _depth > 200:  # a self-referencing structure: stop rather than recurse forever
        return UNKNOWN
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return UNKNOWN if value in UNKNOWN_SENTINELS else value
    if value is UNKNOWN or _is_pulumi_unknown(value):
        return UNKNOWN
    target = _proxy_target(value)
    if target is not None:
        return plain(target, _depth + 1)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in list(value.keys()):
            out[str(key)] = plain(_raw_item(value, key), _depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [plain(v, _depth + 1) for v in value]
    if hasattr(value, "value") and type(value).__name__ == "Secret":
        # pulumi_policy.secret.Secret (only when secrets are proxied): judge the wrapped value.
        return plain(value.value, _depth + 1)
    return str(value)


def _proxy_target(value: object) -> object | None:
    name = type(value).__name__
    if name in ("_DictProxy", "_ListProxy", "_DictSecretsProxy", "_ListSecretsProxy"):
        try:
            target: object = value["__target"]  # type: ignore[index]  # the proxies' escape hatch
            return target
        except Exception:
            return None
    return None


def _raw_item(mapping: Mapping[Any, Any], key: Any) -> Any:
    try:
        return mapping[key]
    except Exception:
        return UNKNOWN


# --- total accessors -------------------------------------------------------------------------


def get(value: Any, path: str) -> Any:
    """`value` at a dotted path ("spec.mtls.mode"); None when any step is missing or not a
    mapping; UNKNOWN when a step is unknown (so unknowns propagate)."""
    current = value
    for part in path.split(".") if path else ():
        if current is UNKNOWN:
            return UNKNOWN
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def maps(value: Any) -> list[Mapping[str, Any]]:
    """The mapping elements of a list (anything else is dropped)."""
    return [v for v in as_list(value) if isinstance(v, Mapping)]


def str_list(value: Any) -> list[str]:
    """The string elements of a list; a lone string counts as a one-element list."""
    if isinstance(value, str):
        return [value]
    return [v for v in as_list(value) if isinstance(v, str)]


def as_int(value: Any) -> int | None:
    """An int from an int or a decimal string (ports arrive both ways); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        # ASCII digits only: str.isdigit() also accepts e.g. "²", which int() rejects.
        if text and text.isascii() and text.isdigit():
            return int(text)
    return None


def as_bool(value: Any) -> bool | None:
    """A bool from a bool or a "true"/"false" string (annotations are strings); else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def str_map(value: Any) -> dict[str, str]:
    """A label/annotation map: only string keys with string values (unknowns dropped)."""
    return {k: v for k, v in as_map(value).items() if isinstance(k, str) and isinstance(v, str)}


def unknown_paths(value: Any, path: str = "") -> list[str]:
    """Every path at or under `value` that is unknown ("spec.rules[0].from"). `path` may use
    `[]` to stand for every element of a list, e.g. "spec.rules[].from"; the search is deep."""
    return _unknown_under(value, _split(path), "")


def _split(path: str) -> list[str]:
    parts: list[str] = []
    for raw in path.split(".") if path else ():
        if raw.endswith("[]"):
            if raw[:-2]:
                parts.append(raw[:-2])
            parts.append("[]")
        else:
            parts.append(raw)
    return parts


def _join(prefix: str, part: str) -> str:
    if part.startswith("["):
        return prefix + part
    return f"{prefix}.{part}" if prefix else part


def _unknown_under(value: Any, parts: list[str], at: str) -> list[str]:
    if value is UNKNOWN:
        return [at or "(whole object)"]
    if not parts:
        return _deep_unknowns(value, at, 0)
    head, rest = parts[0], parts[1:]
    if head == "[]":
        found: list[str] = []
        for i, item in enumerate(as_list(value)):
            found.extend(_unknown_under(item, rest, _join(at, f"[{i}]")))
        return found
    if isinstance(value, Mapping):
        return _unknown_under(value.get(head), rest, _join(at, head))
    return []


def _deep_unknowns(value: Any, at: str, depth: int) -> list[str]:
    if value is UNKNOWN:
        return [at or "(whole object)"]
    if depth > 50:
        return []
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found.extend(_deep_unknowns(item, _join(at, str(key)), depth + 1))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_deep_unknowns(item, _join(at, f"[{i}]"), depth + 1))
    return found


# --- the normalized object -------------------------------------------------------------------


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


# --- type tokens -------------------------------------------------------------------------------

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


def quick_group_kinds(resource_type: str, props: object) -> frozenset[GroupKind] | None:
    """The (group, kind)s `to_objects` may yield, cheaply; None when it cannot tell (then the
    caller must normalize). Lets a policy skip resources it never judges without normalizing."""
    if resource_type in _SKIP_TYPES:
        return frozenset()
    if resource_type in _HELM_TYPES:
        return frozenset({HELM_VALUES, MESH_CONFIG})
    if resource_type == _CUSTOM_RESOURCE:
        api_version = plain(_raw_item(props, "apiVersion")) if isinstance(props, Mapping) else None
        kind = plain(_raw_item(props, "kind")) if isinstance(props, Mapping) else None
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
    if ("", "ConfigMap") in kinds or ("install.istio.io", "IstioOperator") in kinds:
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


# --- one normalization per resource content ----------------------------------------------------

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


def unproxied(value: object) -> object:
    """json's hook for what it cannot encode: the SDK's proxies (their wrapped container, encoded
    in turn); anything else raises TypeError (not cacheable)."""
    target = _proxy_target(value)
    if target is None:
        raise TypeError(type(value).__name__)
    return target


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
    """Mesh config carried inside an ordinary object (the istio ConfigMap, an IstioOperator)."""
    if obj.group == "" and obj.kind == "ConfigMap" and _is_mesh_configmap(obj):
        raw = obj.get("data.mesh") if obj.get("data") is not UNKNOWN else UNKNOWN
        mesh: Any
        if raw is UNKNOWN:
            mesh = UNKNOWN
        else:
            mesh = _parse_yaml_mapping(raw)
            if mesh is None:
                return []
        return [_mesh_config(obj, mesh, "data.mesh", SOURCE_RESOURCE)]
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


# --- pod templates -------------------------------------------------------------------------------

# Where each workload kind keeps its pod template (metadata + spec) relative to the body.
POD_TEMPLATE_PATHS: Final[Mapping[GroupKind, str]] = {
    ("apps", "Deployment"): "spec.template",
    ("apps", "StatefulSet"): "spec.template",
    ("apps", "DaemonSet"): "spec.template",
    ("apps", "ReplicaSet"): "spec.template",
    ("", "ReplicationController"): "spec.template",
    ("batch", "Job"): "spec.template",
    ("batch", "CronJob"): "spec.jobTemplate.spec.template",
    ("", "PodTemplate"): "template",
    ("argoproj.io", "Rollout"): "spec.template",
}

KSERVE_GROUP: Final = "serving.kserve.io"
ISVC_COMPONENTS: Final = ("predictor", "transformer", "explainer")
# Predictor keys that are containers in their own right (model formats, the generic `model`).
_ISVC_CONTAINER_KEYS: Final = (
    "model",
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "pmml",
    "lightgbm",
    "paddle",
    "huggingface",
    "art",
)


# What may hold containers (or a pod spec) inside an InferenceService component.
ISVC_CONTAINER_KEYS: Final = _ISVC_CONTAINER_KEYS


@dataclass(frozen=True)
class PodView:
    """One pod (template) of an object: where it is, its labels/annotations, its pod spec."""

    path: str  # field path of the pod spec ("spec.template.spec", "spec.predictor")
    meta_path: str  # field path of its labels/annotations owner ("spec.template.metadata")
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: Mapping[str, Any]
    # (field path, container) for every container, init container, ephemeral container and
    # KServe model-format container of this pod.
    containers: tuple[tuple[str, Mapping[str, Any]], ...]


def pods(obj: K8sObject) -> list[PodView]:
    """Every pod template `obj` carries: a Pod itself, each workload kind's template, each
    InferenceService component (and its workerSpec), LLMInferenceService templates, and
    (Cluster)ServingRuntimes (the template of every predictor that uses them)."""
    if obj.is_("", "Pod"):
        return [_pod_view(obj.body, "spec", "metadata")]
    template_path = POD_TEMPLATE_PATHS.get(obj.group_kind)
    if template_path is not None:
        template = obj.get(template_path)
        if not isinstance(template, Mapping):
            return []
        return [_pod_view(template, f"{template_path}.spec", f"{template_path}.metadata")]
    if obj.is_(KSERVE_GROUP, "InferenceService"):
        return _isvc_pods(obj)
    if obj.is_(KSERVE_GROUP, "LLMInferenceService", "LLMInferenceServiceConfig"):
        return _llmisvc_pods(obj)
    if obj.is_(KSERVE_GROUP, "ServingRuntime", "ClusterServingRuntime"):
        return _runtime_pods(obj)
    return []


def _pod_view(holder: Mapping[str, Any], spec_path: str, meta_path: str) -> PodView:
    # `holder` holds `metadata` and `spec` (a Pod or a template).
    spec = as_map(holder.get("spec"))
    meta = as_map(holder.get("metadata"))
    return PodView(
        path=spec_path,
        meta_path=meta_path,
        labels=str_map(meta.get("labels")),
        annotations=str_map(meta.get("annotations")),
        spec=spec,
        containers=tuple(_containers(spec, spec_path)),
    )


def _containers(spec: Mapping[str, Any], at: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, item in enumerate(as_list(spec.get(key))):
            if isinstance(item, Mapping):
                yield f"{at}.{key}[{i}]", item


def _isvc_pods(obj: K8sObject) -> list[PodView]:
    views: list[PodView] = []
    for component in ISVC_COMPONENTS:
        spec = obj.spec.get(component)
        if not isinstance(spec, Mapping):
            continue
        at = f"spec.{component}"
        containers = list(_containers(spec, at))
        for key in _ISVC_CONTAINER_KEYS:
            item = spec.get(key)
            if isinstance(item, Mapping):
                containers.append((f"{at}.{key}", item))
        # KServe copies the InferenceService's own labels/annotations onto every component's
        # pods, and the component's on top: both decide (e.g. sidecar injection).
        views.append(
            PodView(
                path=at,
                meta_path=at,
                labels={**obj.labels, **str_map(spec.get("labels"))},
                annotations={**obj.annotations, **str_map(spec.get("annotations"))},
                spec=spec,
                containers=tuple(containers),
            )
        )
        worker = spec.get("workerSpec")
        if isinstance(worker, Mapping):
            views.append(
                PodView(
                    path=f"{at}.workerSpec",
                    meta_path=at,
                    labels=views[-1].labels,
                    annotations=views[-1].annotations,
                    spec=worker,
                    containers=tuple(_containers(worker, f"{at}.workerSpec")),
                )
            )
    return views


def _runtime_pods(obj: K8sObject) -> list[PodView]:
    """A (Cluster)ServingRuntime is a pod template for every predictor using it: its spec holds
    the containers and pod fields, and `labels`/`annotations` KServe copies onto those pods."""
    views: list[PodView] = []
    for at in ("spec", "spec.workerSpec"):
        spec = obj.get(at)
        if isinstance(spec, Mapping):
            views.append(
                PodView(
                    at,
                    at,
                    str_map(spec.get("labels")),
                    str_map(spec.get("annotations")),
                    spec,
                    tuple(_containers(spec, at)),
                )
            )
    return views


def _llmisvc_pods(obj: K8sObject) -> list[PodView]:
    views: list[PodView] = []
    for owner in ("spec", "spec.prefill"):
        holder = obj.get(owner)
        if not isinstance(holder, Mapping):
            continue
        labels = {**obj.labels, **str_map(holder.get("labels"))}
        annotations = {**obj.annotations, **str_map(holder.get("annotations"))}
        for key in ("template", "worker"):
            spec = holder.get(key)
            if isinstance(spec, Mapping):
                at = f"{owner}.{key}"
                views.append(
                    PodView(at, owner, labels, annotations, spec, tuple(_containers(spec, at)))
                )
    return views


def selector_labels(obj: K8sObject) -> Mapping[str, str] | None:
    """An Istio policy's workload selector (`spec.selector.matchLabels`); None when it selects no
    workloads by label (no selector or empty matchLabels: the whole namespace, or - with
    `target_refs` - specific gateways/services)."""
    labels = str_map(get(obj.spec, "selector.matchLabels"))
    return labels or None


def target_refs(obj: K8sObject) -> list[tuple[str, str]]:
    """(kind, name) of an Istio policy's `spec.targetRef` / `spec.targetRefs`."""
    refs = [obj.spec.get("targetRef"), *as_list(obj.spec.get("targetRefs"))]
    return [
        (as_str(r.get("kind")) or "", as_str(r.get("name")) or "")
        for r in refs
        if isinstance(r, Mapping)
    ]
