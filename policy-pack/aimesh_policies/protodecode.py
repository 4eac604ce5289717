"""Decode EnvoyFilter patches and Istio mesh config strictly, the way istiod reads them.

The CRD schemas stop where Envoy's configuration starts: an EnvoyFilter's `patch.value` and
istiod's `meshConfig` are free-form there. istiod turns them into protobuf messages with the
legacy `jsonpb` decoder (Istio's `pkg/util/protomarshal`), and the details decide whether a
security control is applied, refused or silently absent:

- an EnvoyFilter patch value is decoded as the message its `applyTo` names (HTTP_FILTER ->
  `envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter`, ...). istiod's
  admission check and its config build both decode it leniently: an unknown field (a misspelled
  `token_bucket`) is DROPPED, so the setting silently does not apply (admission only warns);
  an `@type` istiod cannot resolve, or a value of the wrong JSON type, gets the EnvoyFilter
  refused (or, without the webhook, the patch skipped);
- `meshConfig` (and its `defaultConfig`, the default ProxyConfig) is decoded strictly first,
  then, on any error, again ignoring unknown fields: a misspelled key is dropped without a word;
- the EnvoyFilter spec outside `value` passes the API server's CRD schema, which prunes fields
  it does not know (camelCase names only): a misspelled `subFilter` widens the match.

This module mirrors that decoder over a `FileDescriptorSet` of the exact APIs (see
`descriptors.py`) and reports every problem with its JSON path, instead of stopping at the
first: field names in proto (snake_case) or JSON (camelCase) form, both accepted as jsonpb does
(the JSON name wins when both are given, so giving both is reported); `Any` by its `@type`;
Go duration strings; numbers as JSON numbers or quoted; enums by name or number; `null` as
"not set". It also reports `applyTo`/`match` combinations istiod refuses, and ones that it
accepts but that can never apply (an HTTP filter patch matched on a network filter other than
the HTTP connection manager, a sidecar context on the other direction's virtual listener, a
deprecated filter name istiod never generates).

The pool is loaded on first use and kept (per descriptor file), so a pack that never sees an
EnvoyFilter or mesh config never loads it.
"""

from __future__ import annotations

import base64
import difflib
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN

# applyTo -> the message istiod decodes the patch value as (BuildXDSObjectFromStruct).
APPLY_TO_MESSAGE: Final[Mapping[str, str]] = {
    "LISTENER": "envoy.config.listener.v3.Listener",
    "FILTER_CHAIN": "envoy.config.listener.v3.FilterChain",
    "NETWORK_FILTER": "envoy.config.listener.v3.Filter",
    "HTTP_FILTER": "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
    "ROUTE_CONFIGURATION": "envoy.config.route.v3.RouteConfiguration",
    "VIRTUAL_HOST": "envoy.config.route.v3.VirtualHost",
    "HTTP_ROUTE": "envoy.config.route.v3.Route",
    "CLUSTER": "envoy.config.cluster.v3.Cluster",
    "EXTENSION_CONFIG": "envoy.config.core.v3.TypedExtensionConfig",
    "BOOTSTRAP": "envoy.config.bootstrap.v3.Bootstrap",
    "LISTENER_FILTER": "envoy.config.listener.v3.ListenerFilter",
}
ENVOY_FILTER: Final = "istio.networking.v1alpha3.EnvoyFilter"
MESH_CONFIG: Final = "istio.mesh.v1alpha1.MeshConfig"
PROXY_CONFIG: Final = "istio.mesh.v1alpha1.ProxyConfig"

HCM: Final = "envoy.filters.network.http_connection_manager"
_LISTENER_CLASS: Final = frozenset({"LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER"})
_ROUTE_CLASS: Final = frozenset({"ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE"})
# The filter category a patch's typed_config must belong to.
_FILTER_CATEGORY: Final[Mapping[str, str]] = {
    "HTTP_FILTER": "http",
    "NETWORK_FILTER": "network",
    "LISTENER_FILTER": "listener",
}
_CATEGORY_WORDS: Final[Mapping[str, str]] = {
    "http": "an HTTP filter",
    "network": "a network filter",
    "listener": "a listener filter",
    "udp": "a UDP listener filter",
}
# Deprecated filter names istiod still recognises in validation (with a warning) but never
# generates: a match on one of them never matches anything (pkg/config/xds/deprecated.go).
DEPRECATED_FILTER_NAMES: Final[Mapping[str, str]] = {
    "envoy.buffer": "envoy.filters.http.buffer",
    "envoy.cors": "envoy.filters.http.cors",
    "envoy.csrf": "envoy.filters.http.csrf",
    "envoy.http_dynamo_filter": "envoy.filters.http.dynamo",
    "envoy.fault": "envoy.filters.http.fault",
    "envoy.grpc_http1_bridge": "envoy.filters.http.grpc_http1_bridge",
    "envoy.grpc_json_transcoder": "envoy.filters.http.grpc_json_transcoder",
    "envoy.grpc_web": "envoy.filters.http.grpc_web",
    "envoy.gzip": "envoy.filters.http.gzip",
    "envoy.health_check": "envoy.filters.http.health_check",
    "envoy.ip_tagging": "envoy.filters.http.ip_tagging",
    "envoy.lua": "envoy.filters.http.lua",
    "envoy.rate_limit": "envoy.filters.http.ratelimit",
    "envoy.router": "envoy.filters.http.router",
    "envoy.squash": "envoy.filters.http.squash",
    "envoy.listener.http_inspector": "envoy.filters.listener.http_inspector",
    "envoy.listener.original_dst": "envoy.filters.listener.original_dst",
    "envoy.listener.original_src": "envoy.filters.listener.original_src",
    "envoy.listener.proxy_protocol": "envoy.filters.listener.proxy_protocol",
    "envoy.listener.tls_inspector": "envoy.filters.listener.tls_inspector",
    "envoy.client_ssl_auth": "envoy.filters.network.client_ssl_auth",
    "envoy.ext_authz": "envoy.filters.network.ext_authz or envoy.filters.http.ext_authz",
    "envoy.http_connection_manager": HCM,
    "envoy.mongo_proxy": "envoy.filters.network.mongo_proxy",
    "envoy.ratelimit": "envoy.filters.network.ratelimit",
    "envoy.redis_proxy": "envoy.filters.network.redis_proxy",
    "envoy.tcp_proxy": "envoy.filters.network.tcp_proxy",
}
# The sidecar's virtual listeners and the only context they are patched in.
_VIRTUAL_LISTENER_CONTEXT: Final[Mapping[str, str]] = {
    "virtualInbound": "SIDECAR_INBOUND",
    "virtualOutbound": "SIDECAR_OUTBOUND",
}

# Problem kinds: what istiod does with it decides how a policy words the consequence.
UNKNOWN_FIELD: Final = "unknown-field"  # dropped silently (patch value, mesh config)
PRUNED_FIELD: Final = "pruned-field"  # dropped by the API server (CRD schema)
UNKNOWN_TYPE: Final = "unknown-type"  # istiod cannot resolve the @type: refused
INVALID: Final = "invalid"  # wrong JSON type / value: refused
CONFLICT: Final = "conflict"  # two spellings or two oneof members: one silently ignored
NEVER_APPLIES: Final = "never-applies"  # accepted, but the patch can never match
ENVOY_REJECTS: Final = "envoy-rejects"  # istiod accepts it, Envoy refuses the update
UNKNOWN_VALUE: Final = "unknown-value"  # unknown until apply (Pulumi preview)

_MAX_DEPTH: Final = 64
_MAX_PROBLEMS: Final = 50

# Go's time.ParseDuration, which jsonpb uses for google.protobuf.Duration ("1m30s", "100ms").
_GO_DURATION: Final = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_GO_ZERO_DURATION: Final = re.compile(r"[-+]?0")
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})"
)
_WRAPPERS: Final = frozenset(
    {
        "BoolValue",
        "BytesValue",
        "StringValue",
        "Int32Value",
        "UInt32Value",
        "FloatValue",
        "Int64Value",
        "UInt64Value",
        "DoubleValue",
    }
)
_TYPED_STRUCTS: Final = frozenset({"udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"})


@dataclass(frozen=True)
class Problem:
    """One reason a configuration does not decode (or does not apply) as written."""

    path: str  # JSON path in the object, e.g. spec.configPatches[0].patch.value.typed_config
    message: str  # what is wrong, naming the field and the message type
    kind: str = INVALID


@dataclass(frozen=True, slots=True)
class _Field:
    """What the walk needs of one field, read once from its descriptor."""

    name: str
    json_name: str
    type: int
    repeated: bool
    message: Any  # the message descriptor of a message field (None for scalars)
    enum: Any  # the enum descriptor of an enum field
    oneof: str | None  # the oneof it belongs to, when that has other members
    map_key: _Field | None  # map fields: the entry's key and value fields
    map_value: _Field | None

    @property
    def is_value(self) -> bool:
        return self.message is not None and self.message.full_name == "google.protobuf.Value"


@dataclass
class _Walk:
    problems: list[Problem] = field(default_factory=list)
    # Only the EnvoyFilter spec outside `patch.value`: the API server's CRD schema knows
    # camelCase names only and prunes the rest.
    crd: bool = False

    def add(self, path: str, message: str, kind: str = INVALID) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(Problem(path, message, kind))


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _map_path(path: str, key: str) -> str:
    return f'{path}["{key}"]'


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


class Decoder:
    """Strict decoding against one descriptor pool (see the module docstring)."""

    def __init__(self, pool: Any) -> None:
        from google.protobuf.descriptor import FieldDescriptor

        self._pool = pool
        self._fd = FieldDescriptor
        self._ints: dict[int, tuple[int, int]] = {
            FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
            FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
            FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
            FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
            FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
            FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
            FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
            FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
            FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
            FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
        }
        self._fields: dict[str, dict[str, _Field]] = {}

    @classmethod
    def from_file(cls, path: Path) -> Decoder:
        from google.protobuf import descriptor_pb2, descriptor_pool

        files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
        pool = descriptor_pool.DescriptorPool()
        for file in files.file:  # written dependencies first
            pool.Add(file)
        return cls(pool)

    # --- public entry points ------------------------------------------------------------------

    def has_message(self, full_name: str) -> bool:
        return self._message(full_name) is not None

    def decode(self, value: Any, message: str, path: str = "") -> list[Problem]:
        """Problems decoding `value` (JSON-like) as `message`, as istiod's jsonpb would."""
        walk = _Walk()
        descriptor = self._message(message)
        if descriptor is None:
            walk.add(path, f"{message} is not in the descriptor set", UNKNOWN_TYPE)
        else:
            self._value_of_message(walk, descriptor, value, path, 0)
        return walk.problems

    def mesh_config(self, mesh: Any, path: str = "") -> list[Problem]:
        """Problems in istiod's meshConfig (its defaultConfig is the default ProxyConfig)."""
        return self.decode(mesh, MESH_CONFIG, path)

    def envoy_filter(self, spec: Any, path: str = "spec") -> list[Problem]:
        """Problems in an EnvoyFilter spec: fields the API server prunes, patch values that do
        not decode as their applyTo's message, and applyTo/match combinations that istiod
        refuses or that can never apply."""
        walk = _Walk(crd=True)
        descriptor = self._message(ENVOY_FILTER)
        if descriptor is None:
            walk.add(path, f"{ENVOY_FILTER} is not in the descriptor set", UNKNOWN_TYPE)
            return walk.problems
        self._value_of_message(walk, descriptor, spec, path, 0)
        problems = walk.problems
        patches = spec.get("configPatches") if isinstance(spec, Mapping) else None
        for i, patch in enumerate(patches if isinstance(patches, list) else []):
            if isinstance(patch, Mapping):
                problems += self._config_patch(patch, f"{path}.configPatches[{i}]")
        # A patch value's unknowns are met by both walks: report each once.
        return list(dict.fromkeys(problems))[:_MAX_PROBLEMS]

    # --- EnvoyFilter patches --------------------------------------------------------------------

    def _config_patch(self, patch: Mapping[str, Any], at: str) -> list[Problem]:
        walk = _Walk()
        apply_to = patch.get("applyTo")
        body = patch.get("patch")
        match = patch.get("match")
        if UNKNOWN in (apply_to, body, match):
            return []  # the spec decode reports every unknown value
        operation = body.get("operation") if isinstance(body, Mapping) else None
        value = body.get("value") if isinstance(body, Mapping) else None
        if apply_to in (None, "INVALID", 0):
            walk.add(f"{at}.applyTo", "missing applyTo")
            return walk.problems
        if not isinstance(body, Mapping):
            walk.add(f"{at}.patch", "missing patch")
            return walk.problems
        if operation in (None, "INVALID", 0):
            walk.add(f"{at}.patch.operation", "missing patch operation")
            return walk.problems
        if UNKNOWN in (operation, value):
            return walk.problems
        if operation != "REMOVE" and value is None:
            walk.add(f"{at}.patch.value", "missing value for a non-REMOVE operation")
            return walk.problems
        if isinstance(match, Mapping):
            self._match(walk, str(apply_to), match, f"{at}.match")
        message = APPLY_TO_MESSAGE.get(str(apply_to))
        if message is None or value is None:
            return walk.problems  # an unknown applyTo is reported by the spec decode
        descriptor = self._message(message)
        if descriptor is None:
            walk.add(f"{at}.patch.value", f"{message} is not in the descriptor set", UNKNOWN_TYPE)
            return walk.problems
        self._value_of_message(walk, descriptor, value, f"{at}.patch.value", 0)
        category = _FILTER_CATEGORY.get(str(apply_to))
        type_name = _filter_type(value)
        other = _category_of(type_name) if category and type_name else None
        if category is not None and other is not None and other != category:
            walk.add(
                f"{at}.patch.value.typed_config",
                f"{type_name} configures {_CATEGORY_WORDS[other]}, but {apply_to} patches "
                f"{_CATEGORY_WORDS[category]}: Envoy finds no such filter",
                ENVOY_REJECTS,
            )
        return walk.problems

    def _match(self, walk: _Walk, apply_to: str, match: Mapping[str, Any], at: str) -> None:
        listener = match.get("listener")
        route = match.get("routeConfiguration")
        cluster = match.get("cluster")
        has_object = any(v is not None for v in (listener, route, cluster))
        if apply_to in _LISTENER_CLASS and has_object and listener is None:
            walk.add(at, f"applyTo {apply_to} needs a listener match")
        elif apply_to in _ROUTE_CLASS and has_object and route is None:
            walk.add(at, f"applyTo {apply_to} needs a routeConfiguration match")
        elif apply_to == "CLUSTER" and has_object and cluster is None:
            walk.add(at, "applyTo CLUSTER needs a cluster match")
        proxy = match.get("proxy")
        version = proxy.get("proxyVersion") if isinstance(proxy, Mapping) else None
        if isinstance(version, str) and version:
            try:
                re.compile(version)
            except (re.error, OverflowError, RecursionError) as exc:
                walk.add(f"{at}.proxy.proxyVersion", f"invalid regular expression ({exc})")
        if not isinstance(listener, Mapping):
            return
        context = match.get("context")
        name = listener.get("name")
        expected = _VIRTUAL_LISTENER_CONTEXT.get(name) if isinstance(name, str) else None
        directional = context in ("SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY")
        if expected and directional and context != expected:
            walk.add(
                f"{at}.context",
                f"listener {name} is only patched in context {expected}, so with context "
                f"{context} the patch never applies",
                NEVER_APPLIES,
            )
        chain = listener.get("filterChain")
        chain_filter = chain.get("filter") if isinstance(chain, Mapping) else None
        if not isinstance(chain_filter, Mapping):
            return
        fat = f"{at}.listener.filterChain.filter"
        filter_name = chain_filter.get("name")
        sub = chain_filter.get("subFilter")
        if filter_name is UNKNOWN:
            return  # the spec decode reports it
        if apply_to in ("LISTENER", "FILTER_CHAIN"):
            walk.add(
                fat,
                f"a filter match has no effect with applyTo {apply_to}: the patch applies to "
                "every filter chain the rest of the match selects",
                NEVER_APPLIES,
            )
        if not filter_name:
            walk.add(f"{fat}.name", "filter match has no name")
            return
        refused = isinstance(sub, Mapping) and (
            apply_to != "HTTP_FILTER" or filter_name not in (HCM, "envoy.http_connection_manager")
        )
        if isinstance(sub, Mapping):
            if apply_to != "HTTP_FILTER":
                walk.add(
                    f"{fat}.subFilter",
                    "a subFilter match works with applyTo HTTP_FILTER only",
                )
            elif filter_name not in (HCM, "envoy.http_connection_manager"):
                walk.add(
                    f"{fat}.name",
                    f"a subFilter match needs the filter {HCM}, not {filter_name}",
                )
            elif not sub.get("name"):
                walk.add(f"{fat}.subFilter.name", "subFilter match has no name")
        for path, name in ((f"{fat}.name", filter_name), (f"{fat}.subFilter.name", _name(sub))):
            if isinstance(name, str) and name in DEPRECATED_FILTER_NAMES:
                walk.add(
                    path,
                    f"{name} is a deprecated filter name istiod never generates, so the match "
                    f"never applies; use {DEPRECATED_FILTER_NAMES[name]}",
                    NEVER_APPLIES,
                )
        if (
            apply_to == "HTTP_FILTER"
            and not refused
            and isinstance(filter_name, str)
            and filter_name not in (HCM, *DEPRECATED_FILTER_NAMES)
        ):
            walk.add(
                f"{fat}.name",
                f"HTTP filters live only in {HCM}: an HTTP_FILTER patch on a filter chain "
                f"matched by the network filter {filter_name} never applies",
                NEVER_APPLIES,
            )

    # --- the jsonpb walk ------------------------------------------------------------------------

    def _message(self, full_name: str) -> Any | None:
        try:
            return self._pool.FindMessageTypeByName(full_name)
        except KeyError:
            return None

    def _field_table(self, descriptor: Any) -> dict[str, _Field]:
        """name -> field, for both the proto name and the JSON name (jsonpb accepts both);
        built once per message type (reading upb descriptors is the slow part of a decode)."""
        table = self._fields.get(descriptor.full_name)
        if table is None:
            table = {}
            for f in descriptor.fields:
                field_ = self._field(f)
                table[f.name] = field_
                table.setdefault(f.json_name, field_)
            self._fields[descriptor.full_name] = table
        return table

    def _field(self, f: Any) -> _Field:
        message = f.message_type if f.type in (self._fd.TYPE_MESSAGE, self._fd.TYPE_GROUP) else None
        repeated = f.label == self._fd.LABEL_REPEATED
        entry = (
            message if repeated and message is not None and message.GetOptions().map_entry else None
        )
        oneof = f.containing_oneof
        return _Field(
            name=f.name,
            json_name=f.json_name,
            type=f.type,
            repeated=repeated,
            message=message,
            enum=f.enum_type if f.type == self._fd.TYPE_ENUM else None,
            oneof=oneof.name if oneof is not None and len(oneof.fields) > 1 else None,
            map_key=self._field(entry.fields_by_name["key"]) if entry is not None else None,
            map_value=self._field(entry.fields_by_name["value"]) if entry is not None else None,
        )

    def _value_of_message(
        self, walk: _Walk, descriptor: Any, value: Any, path: str, depth: int
    ) -> None:
        if value is UNKNOWN:
            walk.add(path, "value unknown until apply", UNKNOWN_VALUE)
            return
        if depth > _MAX_DEPTH:
            walk.add(path, f"nested deeper than {_MAX_DEPTH} messages: not decoded")
            return
        full = descriptor.full_name
        if value is None and full != "google.protobuf.Value":
            return  # null: not set
        if full.startswith("google.protobuf.") and self._well_known(
            walk, descriptor, value, path, depth
        ):
            return
        if not isinstance(value, Mapping):
            walk.add(path, f"{full} must be a JSON object, got {_json_type(value)}")
            return
        self._fields_of(walk, descriptor, value, path, depth)

    def _fields_of(
        self, walk: _Walk, descriptor: Any, value: Mapping[str, Any], path: str, depth: int
    ) -> None:
        table = self._field_table(descriptor)
        seen: dict[str, str] = {}  # field name -> key used
        oneofs: dict[str, str] = {}  # oneof name -> key used
        for key, item in value.items():
            key = str(key)
            f = table.get(key)
            if f is not None and walk.crd and key != f.json_name:
                f = None  # the CRD schema knows the camelCase name only
            if f is None:
                self._unknown_field(walk, descriptor, key, path)
                continue
            here = _key_path(path, key)
            if f.name in seen:
                walk.add(
                    here,
                    f"{f.name} is given twice ('{seen[f.name]}' and '{key}'): istiod keeps "
                    f"'{f.json_name}' and ignores the other",
                    CONFLICT,
                )
            seen[f.name] = key
            if f.oneof is not None and item is not None:
                if f.oneof in oneofs:
                    walk.add(
                        here,
                        f"'{oneofs[f.oneof]}' and '{key}' are both members of oneof "
                        f"{f.oneof} in {descriptor.full_name}: only one takes effect",
                        CONFLICT,
                    )
                oneofs[f.oneof] = key
            self._field_value(walk, f, item, here, depth)

    def _unknown_field(self, walk: _Walk, descriptor: Any, key: str, path: str) -> None:
        names = {f.json_name for f in descriptor.fields}
        if not walk.crd:
            names |= {f.name for f in descriptor.fields}
        close = difflib.get_close_matches(key, sorted(names), n=1, cutoff=0.75)
        hint = f" (did you mean '{close[0]}'?)" if close and len(key) < 100 else ""
        walk.add(
            _key_path(path, key),
            f"unknown field '{key}' in {descriptor.full_name}{hint}",
            PRUNED_FIELD if walk.crd else UNKNOWN_FIELD,
        )

    def _field_value(self, walk: _Walk, f: _Field, value: Any, path: str, depth: int) -> None:
        if value is UNKNOWN:
            walk.add(path, "value unknown until apply", UNKNOWN_VALUE)
            return
        if value is None and not (f.is_value and not f.repeated):
            return  # null: not set
        if f.map_key is not None and f.map_value is not None:
            self._map(walk, f.map_key, f.map_value, value, path, depth)
        elif f.repeated:
            if not isinstance(value, list | tuple):
                walk.add(path, f"{_leaf(path)} is a list, got {_json_type(value)}")
                return
            for i, item in enumerate(value):
                self._singular(walk, f, item, f"{path}[{i}]", depth)
        else:
            self._singular(walk, f, value, path, depth)

    def _map(
        self, walk: _Walk, key_field: _Field, value_field: _Field, value: Any, path: str, depth: int
    ) -> None:
        if not isinstance(value, Mapping):
            walk.add(path, f"{_leaf(path)} is a map, got {_json_type(value)}")
            return
        for key, item in value.items():
            here = _map_path(path, str(key))
            if key_field.type != self._fd.TYPE_STRING:
                text = str(key)
                if key_field.type == self._fd.TYPE_BOOL:
                    if text not in ("true", "false"):
                        walk.add(here, f"map key '{text}' is not a boolean")
                else:
                    try:
                        number = int(text)
                    except ValueError:
                        walk.add(here, f"map key '{text}' is not an integer")
                        continue
                    self._singular(walk, key_field, number, here, depth)
            self._singular(walk, value_field, item, here, depth)

    def _singular(self, walk: _Walk, f: _Field, value: Any, path: str, depth: int) -> None:
        if value is UNKNOWN:
            walk.add(path, "value unknown until apply", UNKNOWN_VALUE)
            return
        t = f.type
        if f.message is not None:
            self._value_of_message(walk, f.message, value, path, depth + 1)
            return
        if value is None:
            return  # Go's json leaves a scalar untouched on null
        if f.enum is not None:
            self._enum(walk, f.enum, value, path)
        elif t in self._ints:
            self._integer(walk, t, value, path)
        elif t in (self._fd.TYPE_FLOAT, self._fd.TYPE_DOUBLE):
            self._float(walk, value, path)
        elif t == self._fd.TYPE_BOOL:
            if not isinstance(value, bool):
                walk.add(path, f"{_leaf(path)} is a boolean, got {_json_type(value)}")
        elif t == self._fd.TYPE_STRING:
            if not isinstance(value, str):
                walk.add(path, f"{_leaf(path)} is a string, got {_json_type(value)}")
        elif t == self._fd.TYPE_BYTES:
            self._bytes(walk, value, path)

    def _enum(self, walk: _Walk, enum: Any, value: Any, path: str) -> None:
        if isinstance(value, str):
            if value not in enum.values_by_name:
                names = list(enum.values_by_name)
                close = [n for n in names if n.lower() == value.lower()] or (
                    difflib.get_close_matches(value, names, n=1, cutoff=0.6)
                )
                hint = f" (did you mean {close[0]}?)" if close else ""
                walk.add(
                    path,
                    f"{_show(value)} is not a value of {enum.full_name}{hint}; one of: "
                    + ", ".join(names[:12])
                    + (", ..." if len(names) > 12 else ""),
                )
        elif not _is_integral(value):
            walk.add(path, f"{enum.full_name} is an enum name or number, got {_json_type(value)}")

    def _integer(self, walk: _Walk, kind: int, value: Any, path: str) -> None:
        number: Any = value
        if isinstance(value, str):  # jsonpb strips quotes from numbers
            try:
                number = int(value)
            except ValueError:
                walk.add(path, f"{_leaf(path)} is an integer, got {_show(value)}")
                return
        if not _is_integral(number):
            walk.add(path, f"{_leaf(path)} is an integer, got {_show(value)}")
            return
        low, high = self._ints[kind]
        if not low <= int(number) <= high:
            walk.add(path, f"{_leaf(path)} is out of range ({low}..{high}): {_show(value)}")

    def _float(self, walk: _Walk, value: Any, path: str) -> None:
        name = _leaf(path)
        if isinstance(value, bool):
            walk.add(path, f"{name} is a number, got a boolean")
        elif isinstance(value, str):
            if value in ("NaN", "Infinity", "-Infinity"):
                return
            try:
                float(value)
            except ValueError:
                walk.add(path, f"{name} is a number, got {_show(value)}")
        elif not isinstance(value, int | float):
            walk.add(path, f"{name} is a number, got {_json_type(value)}")

    def _bytes(self, walk: _Walk, value: Any, path: str) -> None:
        name = _leaf(path)
        if not isinstance(value, str):
            walk.add(path, f"{name} is base64 bytes, got {_json_type(value)}")
            return
        try:
            base64.b64decode(value, validate=True)
        except ValueError:
            walk.add(path, f"{name} is not valid base64")

    def _well_known(self, walk: _Walk, descriptor: Any, value: Any, path: str, depth: int) -> bool:
        """Decode a google.protobuf well-known type the way jsonpb does; False when `descriptor`
        is an ordinary message (decoded field by field)."""
        name = descriptor.name
        if name == "Any":
            self._any(walk, value, path, depth)
        elif name in _WRAPPERS:
            if value is not None:
                self._singular(walk, self._field_table(descriptor)["value"], value, path, depth)
        elif name == "Duration":
            if not isinstance(value, str) or not (
                _GO_DURATION.fullmatch(value) or _GO_ZERO_DURATION.fullmatch(value)
            ):
                walk.add(
                    path,
                    f"a duration is a string like '1s', '250ms' or '1m30s', got {_show(value)}",
                )
        elif name == "Timestamp":
            if not isinstance(value, str) or not _RFC3339.fullmatch(value):
                walk.add(path, f"a timestamp is an RFC 3339 string, got {_show(value)}")
        elif name == "Struct":
            if not isinstance(value, Mapping):
                walk.add(path, f"a Struct is a JSON object, got {_json_type(value)}")
            else:
                _unknowns_in(walk, value, path)
        elif name == "ListValue":
            if not isinstance(value, list | tuple):
                walk.add(path, f"a ListValue is a JSON list, got {_json_type(value)}")
            else:
                _unknowns_in(walk, value, path)
        elif name == "Value":
            _unknowns_in(walk, value, path)
        else:
            return False
        return True

    def _any(self, walk: _Walk, value: Any, path: str, depth: int) -> None:
        if not isinstance(value, Mapping):
            walk.add(path, f"an Any (typed_config) is a JSON object, got {_json_type(value)}")
            return
        type_url = value.get("@type")
        if type_url is UNKNOWN:
            walk.add(_key_path(path, "@type"), "@type unknown until apply", UNKNOWN_VALUE)
            return
        if not isinstance(type_url, str) or not type_url:
            walk.add(path, "an Any (typed_config) needs '@type'")
            return
        type_name = type_url.rsplit("/", 1)[-1]
        descriptor = self._message(type_name)
        if descriptor is None:
            v2 = ".v2." in type_name or ".v2alpha" in type_name
            hint = " (a v2 API type: use the v3 one)" if v2 else ""
            walk.add(
                _key_path(path, "@type"),
                f"unknown type {type_url}{hint}",
                UNKNOWN_TYPE,
            )
            return
        rest = {k: v for k, v in value.items() if k != "@type"}
        if descriptor.full_name.startswith("google.protobuf.") and descriptor.name in (
            "Any",
            "Duration",
            "Timestamp",
            "Struct",
            "Value",
            "ListValue",
            "Empty",
            *_WRAPPERS,
        ):
            # A well-known type inside an Any is spelled {"@type": ..., "value": ...}; jsonpb
            # ignores any other key.
            for extra in sorted(set(rest) - {"value"}):
                walk.add(
                    _key_path(path, extra),
                    f"unknown field '{extra}' beside the value of a {descriptor.full_name}",
                    UNKNOWN_FIELD,
                )
            if "value" not in rest:
                walk.add(path, f"a {descriptor.full_name} inside an Any needs 'value'")
                return
            inner = _key_path(path, "value")
            self._value_of_message(walk, descriptor, rest["value"], inner, depth + 1)
            return
        self._value_of_message(walk, descriptor, rest, path, depth + 1)
        if descriptor.full_name in _TYPED_STRUCTS:
            self._typed_struct(walk, rest, path, depth)

    def _typed_struct(self, walk: _Walk, value: Mapping[str, Any], path: str, depth: int) -> None:
        """A TypedStruct carries its config as a Struct that Envoy converts to `type_url`'s
        message: decode that too (Envoy ignores unknown fields of dynamic config)."""
        type_url = value.get("type_url", value.get("typeUrl"))
        inner = value.get("value")
        if not isinstance(type_url, str) or not type_url or not isinstance(inner, Mapping):
            return
        type_name = type_url.rsplit("/", 1)[-1]
        descriptor = self._message(type_name)
        if descriptor is None:
            walk.add(
                _key_path(path, "type_url"),
                f"unknown type {type_url} in a TypedStruct: Envoy has no extension for it",
                ENVOY_REJECTS,
            )
            return
        self._value_of_message(walk, descriptor, inner, _key_path(path, "value"), depth + 1)


def _filter_type(value: Any) -> str | None:
    """The message name a filter's typed_config carries (through a TypedStruct)."""
    if not isinstance(value, Mapping):
        return None
    config = value.get("typed_config", value.get("typedConfig"))
    url = config.get("@type") if isinstance(config, Mapping) else None
    if not isinstance(url, str):
        return None
    name = url.rsplit("/", 1)[-1]
    if name in _TYPED_STRUCTS:
        inner = config.get("type_url", config.get("typeUrl"))
        return inner.rsplit("/", 1)[-1] if isinstance(inner, str) else None
    return name


def _name(value: Any) -> Any:
    return value.get("name") if isinstance(value, Mapping) else None


def _category_of(type_name: str) -> str | None:
    for prefix in ("envoy.extensions.filters.", "istio.envoy.config.filter."):
        if type_name.startswith(prefix):
            category = type_name[len(prefix) :].split(".", 1)[0]
            if category in ("http", "network", "listener", "udp"):
                return category
    return None


def _is_integral(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    # Pulumi hands numbers over as doubles; istiod sees the JSON Go writes for a Struct number,
    # which is an integer literal for integral values below 1e21.
    return (
        isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
        and (abs(value) < 1e21)
    )


def _leaf(path: str) -> str:
    """The field a path ends in, as the user wrote it (`a.b[2]` -> `b`, `m["k"]` -> `m["k"]`)."""
    tail = path.rsplit(".", 1)[-1] if '["' not in path.rsplit(".", 1)[-1] else path
    return re.sub(r"\[\d+\]$", "", tail) or path


_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def _show(value: Any) -> str:
    """A value as a message may show it: numbers and booleans; strings only when they look like
    a name or a duration, never arbitrary text (it could be a secret)."""
    if isinstance(value, str):
        return f"'{value}'" if _IDENTIFIER.fullmatch(value) else "a string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _json_type(value) if isinstance(value, Mapping | list) else str(value)


def _unknowns_in(walk: _Walk, value: Any, path: str, depth: int = 0) -> None:
    """Free-form JSON (Struct, Value) accepts anything but an unknown-until-apply value."""
    if depth > _MAX_DEPTH:
        return
    if value is UNKNOWN:
        walk.add(path, "value unknown until apply", UNKNOWN_VALUE)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _unknowns_in(walk, item, _key_path(path, str(key)), depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _unknowns_in(walk, item, f"{path}[{i}]", depth + 1)


# --- the shared decoder ------------------------------------------------------------------------

_LOCK: Final = threading.Lock()
_DECODERS: dict[tuple[str, int, int], Decoder] = {}


def decoder_for(path: Path) -> Decoder:
    """The decoder for the set at `path`, loaded once per file version (path, size, mtime)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        decoder = _DECODERS.get(key)
        if decoder is None:
            decoder = Decoder.from_file(path)
            _DECODERS.clear()
            _DECODERS[key] = decoder
        return decoder
