"""Tampering: EnvoyFilters that unpick the enforcement Istio generates, and audit switched off.

Istio enforces authentication and authorization as Envoy filters (jwt_authn, istio_authn, rbac,
ext_authz). An EnvoyFilter can remove them, replace or merge into their config, slip a filter in
front of them that rewrites what they judge, or rewrite a listener's TLS. aimesh's own filters
(per-model local rate limit and the Lua response-masking filter, inserted before the router on
SIDECAR_INBOUND, i.e. after every security filter) must keep passing.

Access logs are the audit trail: a Telemetry that disables them mesh- or namespace-wide erases it,
and one that sends them only to a network access-log service makes them forgeable (anything that
holds a proxy's identity, its application container included, can push records there); only the
proxy's own stdout is bound to the proxy (the kubelet names each container's log file).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_bool, as_list, as_map, as_str, get, str_list
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    as_manifest,
    finding,
    unknown_finding,
)
from aimesh_policies.guards import unknown_at
from aimesh_policies.k8s_object import MESH_CONFIG, K8sObject
from aimesh_policies.meshlib import NETWORKING, namespace_of

ENVOY_FILTER: Final = (NETWORKING, "EnvoyFilter")
TELEMETRY: Final = ("telemetry.istio.io", "Telemetry")

HCM: Final = "envoy.filters.network.http_connection_manager"
# Filters that decide who gets in (current and legacy names). Authentication filters come first,
# authorization after them.
AUTHN_FILTERS: Final = frozenset(
    {
        "envoy.filters.http.jwt_authn",
        "envoy.jwt_authn",
        "istio_authn",
        "istio.authn",
        "envoy.filters.http.istio_authn",
    }
)
AUTHZ_FILTERS: Final = frozenset(
    {
        "envoy.filters.http.rbac",
        "envoy.rbac",
        "envoy.filters.http.ext_authz",
        "envoy.ext_authz",
        "envoy.filters.network.rbac",
        "envoy.filters.network.ext_authz",
    }
)
SECURITY_FILTERS: Final = AUTHN_FILTERS | AUTHZ_FILTERS
# Filters that may sit in front of the security filters: they can only refuse or slow requests,
# never make one look more authorised (extend with the `safeEarlyFilters` config key).
DEFAULT_SAFE_EARLY_FILTERS: Final = (
    "envoy.filters.http.local_ratelimit",
    "envoy.filters.http.ratelimit",
    "envoy.filters.http.bandwidth_limit",
    "envoy.filters.network.local_ratelimit",
    "envoy.filters.network.ratelimit",
    "envoy.filters.network.connection_limit",
)
# Network filters that end the chain: whatever follows them (the HTTP connection manager and its
# authentication / authorization filters) never sees the connection.
TERMINAL_NETWORK_FILTERS: Final = frozenset(
    {
        "envoy.filters.network.tcp_proxy",
        "envoy.tcp_proxy",
        "envoy.filters.network.redis_proxy",
        "envoy.filters.network.thrift_proxy",
        "envoy.filters.network.dubbo_proxy",
        "envoy.filters.network.echo",
    }
)
_REWRITING_OPERATIONS: Final = frozenset({"REMOVE", "REPLACE", "MERGE"})
_KNOWN_OPERATIONS: Final = frozenset(
    {"MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE"}
)


def _lower(value: Any) -> str:
    return (as_str(value) or "").strip().lower()


def _has_key(value: Any, key: str, depth: int = 0) -> bool:
    """Whether `key` appears anywhere in a nested Envoy config (bounded depth)."""
    if depth > 30:
        return False
    if isinstance(value, Mapping):
        return key in value or any(_has_key(v, key, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_has_key(v, key, depth + 1) for v in value)
    return False


def _safe_early(ctx: Context) -> frozenset[str]:
    extra = ctx.raw.get("safeEarlyFilters")
    names = str_list(extra) if isinstance(extra, list) else list(DEFAULT_SAFE_EARLY_FILTERS)
    # Adding another authentication/authorization filter in front only adds checks.
    return frozenset(n.lower() for n in names) | SECURITY_FILTERS


def _patch_problem(patch_: Mapping[str, Any], ctx: Context) -> tuple[str, str] | None:
    """(field suffix, problem) when a config patch weakens enforcement, else None."""
    apply_to = (as_str(patch_.get("applyTo")) or "").upper()
    match = as_map(patch_.get("match"))
    body = as_map(patch_.get("patch"))
    operation = (as_str(body.get("operation")) or "").upper()
    value = body.get("value")
    chain_filter = as_map(get(match, "listener.filterChain.filter"))
    filter_name = _lower(chain_filter.get("name"))
    sub_filter = _lower(get(chain_filter, "subFilter.name"))
    inserted = _lower(as_map(value).get("name"))

    if operation and operation not in _KNOWN_OPERATIONS:
        return "patch.operation", f"operation {operation} is not one Istio knows; cannot judge it"

    if apply_to == "HTTP_FILTER":
        target = sub_filter
        if operation in _REWRITING_OPERATIONS:
            if not target:
                return "match.listener.filterChain.filter.subFilter.name", (
                    f"{operation} on HTTP filters without a subFilter name applies to EVERY "
                    "filter, the authentication and authorization filters included"
                )
            if target in SECURITY_FILTERS:
                verb = {
                    "REMOVE": "removes",
                    "REPLACE": "replaces",
                    "MERGE": "rewrites the config of",
                }[operation]
                return "patch.operation", f"{operation} {verb} the security filter {target}"
        early = _inserted_before_security(operation, target, body, inserted, ctx)
        if early:
            return "patch.operation", early
    elif apply_to == "NETWORK_FILTER":
        target = filter_name
        if operation in _REWRITING_OPERATIONS:
            if not target and operation == "REMOVE":
                return "match.listener.filterChain.filter.name", (
                    "REMOVE on network filters without a filter name removes every network "
                    "filter, RBAC and the HTTP connection manager included"
                )
            if target in SECURITY_FILTERS:
                return "patch.operation", f"{operation} on the security filter {target}"
            if target == HCM and (operation != "MERGE" or _has_key(value, "http_filters")):
                return "patch.operation", (
                    f"{operation} on the HTTP connection manager "
                    + (
                        "rewrites its http_filters"
                        if operation == "MERGE"
                        else "drops the authentication and authorization filters it holds"
                    )
                )
        inserts_early = operation in (
            "INSERT_FIRST",
            "INSERT_BEFORE",
        ) and inserted not in _safe_early(ctx)
        if inserts_early and (
            operation == "INSERT_FIRST" or not target or target in SECURITY_FILTERS
        ):
            return "patch.operation", (
                f"{operation} puts network filter '{inserted or '<unnamed>'}' in front of "
                "network RBAC / ext_authz, where it can rewrite what they judge"
            )
        if inserts_early and target == HCM and inserted in TERMINAL_NETWORK_FILTERS:
            return "patch.operation", (
                f"INSERT_BEFORE the HTTP connection manager puts the terminal filter {inserted} "
                "first: connections are forwarded before any HTTP authentication or "
                "authorization filter runs"
            )
    elif apply_to in _ROUTE_LEVELS:
        overridden = sorted(_per_route_security_overrides(value))
        if overridden:
            return "patch.value", (
                f"per-route config (typed_per_filter_config) overrides {', '.join(overridden)} "
                f"on this {apply_to}: Envoy's per-route settings can disable the check there"
            )
    elif apply_to in ("LISTENER", "FILTER_CHAIN", "CLUSTER") and operation in ("MERGE", "REPLACE"):
        if _has_key(value, "transport_socket"):
            return "patch.value", (
                f"{operation} on a {apply_to} rewrites its transport_socket: mutual TLS can be "
                "downgraded or dropped"
            )
        if apply_to != "CLUSTER" and (
            _has_key(value, "filters") or _has_key(value, "filter_chains")
        ):
            return "patch.value", (
                f"{operation} on a {apply_to} rewrites its filters, bypassing the generated "
                "authentication and authorization filters"
            )
    return None


def _per_route_security_overrides(value: Any, depth: int = 0) -> set[str]:
    """Security filter names keyed in any (typed_)per_filter_config under `value`: RBACPerRoute,
    ExtAuthzPerRoute {disabled: true} and jwt_authn PerRouteConfig switch the check off per
    route."""
    if depth > 30:
        return set()
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in ("typed_per_filter_config", "per_filter_config"):
                found |= {k.lower() for k in as_map(item) if k.lower() in SECURITY_FILTERS}
            found |= _per_route_security_overrides(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            found |= _per_route_security_overrides(item, depth + 1)
    return found


def _inserted_before_security(
    operation: str, target: str, body: Mapping[str, Any], inserted: str, ctx: Context
) -> str | None:
    """Why an inserted HTTP filter lands ahead of (or between) the security filters."""
    if operation not in ("INSERT_FIRST", "INSERT_BEFORE", "INSERT_AFTER", "ADD"):
        return None
    if inserted in _safe_early(ctx):
        return None
    shown = inserted or "<unnamed>"
    if operation == "INSERT_FIRST" or (operation == "INSERT_BEFORE" and not target):
        return (
            f"{operation} puts '{shown}' first, in front of jwt_authn/istio_authn/rbac, where it "
            "can rewrite headers and metadata they judge (or strip the token)"
        )
    if operation == "INSERT_BEFORE" and target in SECURITY_FILTERS:
        return (
            f"INSERT_BEFORE puts '{shown}' in front of {target}, where it can rewrite what it "
            "judges (or answer the request itself)"
        )
    if operation == "INSERT_AFTER" and target in AUTHN_FILTERS:
        return (
            f"INSERT_AFTER {target} puts '{shown}' between authentication and authorization, "
            "where it can rewrite the identity that RBAC judges"
        )
    if operation == "ADD" and body.get("filterClass") is UNKNOWN:
        return (
            f"filterClass is unknown until apply: cannot verify that '{shown}' is not placed "
            "between authentication and authorization (AUTHN)"
        )
    if operation == "ADD" and (as_str(body.get("filterClass")) or "").upper() == "AUTHN":
        return (
            f"filterClass AUTHN places '{shown}' after authentication and before authorization, "
            "where it can rewrite the identity that RBAC judges"
        )
    return None


def _envoy_filter(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if unknown_at(obj, "spec"):
        yield from unknown_at(obj, "spec")
        return
    patches = obj.spec.get("configPatches")
    if patches is UNKNOWN:
        yield unknown_finding(obj, "spec.configPatches")
        return
    for i, item in enumerate(as_list(patches)):
        at = f"spec.configPatches[{i}]"
        if item is UNKNOWN:
            yield unknown_finding(obj, at)
            continue
        if not isinstance(item, Mapping):
            continue
        unknown = [
            p
            for p in ("applyTo", "match", "patch", "patch.operation")
            if get(item, p) is UNKNOWN or (p == "match" and _has_unknown(item.get("match")))
        ]
        value = get(item, "patch.value")
        inserts = (as_str(get(item, "patch.operation")) or "").upper() in _INSERTING
        if not unknown and inserts and value is not UNKNOWN and get(value, "name") is UNKNOWN:
            unknown.append("patch.value.name")  # which filter goes in decides the verdict
        if not unknown and value is UNKNOWN and (inserts or _value_decides(item)):
            unknown.append("patch.value")
        if unknown:
            yield unknown_finding(obj, f"{at}.{unknown[0]}")
            continue
        problem = _patch_problem(item, ctx)
        if problem is None and _value_decides(item) and _unknown_matters(get(item, "patch.value")):
            yield unknown_finding(obj, f"{at}.patch.value")
            continue
        if problem:
            suffix, text = problem
            yield finding(
                obj,
                f"{at}.{suffix}",
                text,
                "remove this patch; change authentication/authorization through "
                "RequestAuthentication / AuthorizationPolicy, and insert your own filters before "
                "envoy.filters.http.router (or with filterClass AUTHZ/STATS)",
            )


def _value_decides(item: Mapping[str, Any]) -> bool:
    """Whether the verdict on a patch depends on what its value contains (TLS settings, the HTTP
    connection manager's filter list, per-route filter config)."""
    apply_to = (as_str(item.get("applyTo")) or "").upper()
    if apply_to in ("LISTENER", "FILTER_CHAIN", "CLUSTER", *_ROUTE_LEVELS):
        return True
    target = _lower(get(item, "match.listener.filterChain.filter.name"))
    return apply_to == "NETWORK_FILTER" and target == HCM


_ROUTE_LEVELS: Final = ("HTTP_ROUTE", "VIRTUAL_HOST", "ROUTE_CONFIGURATION")
_INSERTING: Final = frozenset({"ADD", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE"})
# Keys under which an unknown value could hide a TLS downgrade or a security filter override.
_SENSITIVE_KEYS: Final = frozenset(
    {
        "transport_socket",
        "filters",
        "filter_chains",
        "http_filters",
        "typed_per_filter_config",
        "per_filter_config",
        "typed_config",
    }
)


def _unknown_matters(value: Any, depth: int = 0) -> bool:
    """An unknown patch value, or an unknown under a key that could hide a weakening (an
    unknown buffer size or timeout cannot)."""
    if value is UNKNOWN:
        return True
    if depth > 30:
        return False
    if isinstance(value, Mapping):
        return any(
            (key in _SENSITIVE_KEYS and _has_unknown(item)) or _unknown_matters_below(item, depth)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_unknown_matters(item, depth + 1) for item in value)
    return False


def _unknown_matters_below(item: Any, depth: int) -> bool:
    return isinstance(item, Mapping | list) and _unknown_matters(item, depth + 1)


def _has_unknown(value: Any, depth: int = 0) -> bool:
    if value is UNKNOWN:
        return True
    if depth > 20:
        return False
    if isinstance(value, Mapping):
        return any(_has_unknown(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_has_unknown(v, depth + 1) for v in value)
    return False


# --- WasmPlugin --------------------------------------------------------------------------------

WASM_PLUGIN: Final = ("extensions.istio.io", "WasmPlugin")
_AUTH_PHASES: Final = frozenset({"AUTHN", "AUTHZ"})


def _wasm_plugin(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    structure = unknown_at(obj, "spec", "spec.url", "spec.sha256", "spec.failStrategy")
    structure += unknown_at(obj, "spec.phase")
    if structure:
        yield from structure
        return
    url = as_str(obj.spec.get("url")) or ""
    if url.strip().lower().startswith("http://") and not as_str(obj.spec.get("sha256")):
        yield finding(
            obj,
            "spec.url",
            "the Wasm module (code that runs inside every selected proxy) is downloaded over "
            "plain http with no sha256 to verify it: anyone in the path can replace it",
            "serve it over https or as an oci:// image, and pin spec.sha256",
        )
    phase = (as_str(obj.spec.get("phase")) or "").upper()
    strategy = (as_str(obj.spec.get("failStrategy")) or "").upper()
    if phase in _AUTH_PHASES and strategy == "FAIL_OPEN":
        yield finding(
            obj,
            "spec.failStrategy",
            f"a {phase}-phase plugin with FAIL_OPEN is skipped when it fails: requests then pass "
            "without the check it performs",
            "set failStrategy: FAIL_CLOSE (the default)",
        )


# --- Telemetry ---------------------------------------------------------------------------------


def _telemetry_scope(obj: K8sObject, ctx: Context) -> str | None:
    """ "mesh" / "namespace" for a Telemetry without selector or targetRef(s), else None."""
    has_target = (
        # An empty matchLabels selects every workload of the namespace.
        bool(as_map(as_map(obj.spec.get("selector")).get("matchLabels")))
        or obj.spec.get("targetRef") is not None
        or bool(as_list(obj.spec.get("targetRefs")))
    )
    if has_target:
        return None
    return "mesh" if namespace_of(obj) == ctx.mesh_root_namespace else "namespace"


def _access_logs_off(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    structure = unknown_at(obj, "spec", "spec.selector", "spec.targetRef", "spec.targetRefs")
    if structure:
        # Whether it is mesh-, namespace- or workload-wide cannot be told yet.
        yield from structure
        return
    scope = _telemetry_scope(obj, ctx)
    if scope is None:
        return
    logging = obj.spec.get("accessLogging")
    if logging is UNKNOWN:
        yield unknown_finding(obj, "spec.accessLogging")
        return
    where = "the whole mesh" if scope == "mesh" else f"namespace {namespace_of(obj)}"
    for i, item in enumerate(as_list(logging)):
        at = f"spec.accessLogging[{i}]"
        disabled = as_map(item).get("disabled")
        log_filter = as_map(item).get("filter")
        expression = as_map(log_filter).get("expression")
        if item is UNKNOWN or disabled is UNKNOWN:
            yield unknown_finding(obj, f"{at}.disabled")
        elif log_filter is UNKNOWN or expression is UNKNOWN:
            # A computed expression may be `false` (log nothing).
            yield unknown_finding(obj, f"{at}.filter.expression")
        elif as_bool(disabled) is True:
            yield finding(
                obj,
                f"{at}.disabled",
                f"turns access logging off for {where}: requests leave no audit trail",
                "remove disabled: true (the automatic fix sets it false); to cut volume, use a "
                "filter expression or disable logging for one named workload",
            )
        elif (as_str(expression) or "").strip().lower() == "false":
            yield finding(
                obj,
                f"{at}.filter.expression",
                f"the filter expression 'false' logs nothing for {where}",
                "remove the filter or make it select the requests to keep",
            )


def _fix_access_logs(obj: K8sObject) -> Mapping[str, Any] | None:
    manifest = as_manifest(obj)
    spec = manifest.get("spec")
    items = spec.get("accessLogging") if isinstance(spec, dict) else None
    changed = False
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and as_bool(item.get("disabled")) is True:
            item["disabled"] = False
            changed = True
    return manifest if changed else None


# Istio's built-in access-log provider (`envoy`) writes to /dev/stdout.
BUILTIN_STDOUT_PROVIDER: Final = "envoy"
STDOUT: Final = "/dev/stdout"


def _stdout_providers(meshes: Sequence[K8sObject]) -> set[str] | None:
    """Names of the access-log providers that write to the proxy's stdout, from the mesh
    configs of the stack; None when one of them is unknown (not known yet)."""
    found = {BUILTIN_STDOUT_PROVIDER}
    for mesh in meshes:
        providers = mesh.body.get("extensionProviders")
        if providers is UNKNOWN:
            return None
        for provider in as_list(providers):
            item = as_map(provider)
            file_log = as_map(item.get("envoyFileAccessLog"))
            name = item.get("name")
            if name is UNKNOWN or file_log.get("path") is UNKNOWN:
                return None
            if as_str(file_log.get("path")) == STDOUT and as_str(name):
                found.add(str(name))
    return found


def _channel_finding(obj: K8sObject, path: str, names: list[str]) -> Finding:
    return finding(
        obj,
        path,
        f"access logs go only to {', '.join(names)}, none of which writes to the proxy's "
        "stdout: a network access-log service takes records from anything holding the proxy's "
        "identity (its application container included), so the audit trail can be forged",
        "keep a provider that writes to /dev/stdout (envoyFileAccessLog, or Istio's built-in "
        "`envoy`) in the list, and collect the proxies' log files on the nodes",
    )


def _audit_channel(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    meshes = [o for o in objs if o.group_kind == MESH_CONFIG and not o.whole_unknown]
    if not meshes:
        return  # the mesh is configured elsewhere: its providers cannot be known here
    stdout = _stdout_providers(meshes)
    for mesh in meshes:
        defaults = as_map(mesh.body.get("defaultProviders")).get("accessLogging")
        if stdout is None or defaults is UNKNOWN:
            yield unknown_finding(mesh, "defaultProviders.accessLogging")
            continue
        names = str_list(defaults)
        if names and not set(names) & stdout:
            yield _channel_finding(mesh, "defaultProviders.accessLogging", names)
    for obj in objs:
        if obj.group_kind != TELEMETRY or _telemetry_scope(obj, ctx) is None:
            continue
        for i, item in enumerate(as_list(obj.spec.get("accessLogging"))):
            entry = as_map(item)
            if as_bool(entry.get("disabled")) is True:
                continue  # istio-telemetry-forbid-disabling-access-logs
            providers = entry.get("providers")
            at = f"spec.accessLogging[{i}].providers"
            raw = [
                as_map(p).get("name") if p is not UNKNOWN else UNKNOWN for p in as_list(providers)
            ]
            if stdout is None or item is UNKNOWN or providers is UNKNOWN or UNKNOWN in raw:
                yield unknown_finding(obj, at)
                continue
            names = [n for n in (as_str(r) for r in raw) if n]
            if names and not set(names) & stdout:
                yield _channel_finding(obj, at, names)


POLICIES: Final = (
    Policy(
        name="istio-envoyfilter-forbid-security-filter-tampering",
        description="EnvoyFilters must not remove, replace, rewrite or get in front of the "
        "authentication and authorization filters, nor rewrite listener TLS.",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation="Delete the patch; express authentication and authorization with "
        "RequestAuthentication / AuthorizationPolicy; insert custom HTTP filters before "
        "envoy.filters.http.router or with filterClass AUTHZ/STATS.",
        catches="EnvoyFilter configPatches that REMOVE / REPLACE / MERGE "
        "envoy.filters.http.rbac, jwt_authn, ext_authz, istio_authn or envoy.filters.network.rbac "
        "/ ext_authz; REMOVE/REPLACE (or an http_filters MERGE) of the HTTP connection manager; "
        "HTTP-filter REMOVE/REPLACE/MERGE without a subFilter (hits every filter); a filter "
        "inserted first, before a security filter, between authn and authz, or with filterClass "
        "AUTHN (rate-limit filters excepted: config `safeEarlyFilters`); LISTENER / FILTER_CHAIN "
        "/ CLUSTER MERGE or REPLACE that rewrites transport_socket or the filter chain; "
        "HTTP_ROUTE / VIRTUAL_HOST / ROUTE_CONFIGURATION patches whose typed_per_filter_config "
        "overrides a security filter (per-route RBAC / ext_authz / jwt_authn off). aimesh's "
        "own local_ratelimit and Lua masking filters (INSERT_BEFORE the router) pass.",
        check=_envoy_filter,
        kinds=frozenset({ENVOY_FILTER}),
        config={
            "safeEarlyFilters": {
                "type": "array",
                "items": {"type": "string"},
                "default": list(DEFAULT_SAFE_EARLY_FILTERS),
                "description": "Filter names that may be inserted in front of the security "
                "filters (they can only refuse or delay requests).",
            }
        },
    ),
    Policy(
        name="istio-wasmplugin-forbid-unverified-or-fail-open",
        description="WasmPlugins must not load unverified code over plain http, nor fail open "
        "in the authentication/authorization phases.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Fetch the module over https or as an oci:// image with spec.sha256 pinned; "
        "keep failStrategy FAIL_CLOSE (the default) for AUTHN/AUTHZ-phase plugins.",
        catches="extensions.istio.io WasmPlugin with an http:// url and no sha256, or phase "
        "AUTHN/AUTHZ with failStrategy FAIL_OPEN.",
        check=_wasm_plugin,
        kinds=frozenset({WASM_PLUGIN}),
    ),
    Policy(
        name="istio-telemetry-forbid-disabling-access-logs",
        description="Telemetry must not turn access logging off mesh-wide or namespace-wide.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Remove accessLogging[].disabled: true from mesh- and namespace-level "
        "Telemetry (the automatic fix sets it false); scope any exception to one workload.",
        catches="telemetry.istio.io Telemetry without selector/targetRef(s) (root namespace = "
        "mesh, else namespace) whose accessLogging entry has disabled: true or the filter "
        "expression `false`.",
        check=_access_logs_off,
        kinds=frozenset({TELEMETRY}),
        fix=_fix_access_logs,
    ),
    Policy(
        name="istio-telemetry-require-stdout-access-log",
        description="Mesh- and namespace-wide access logging must include a provider that writes "
        "to the proxy's stdout, the one channel an application container cannot write to.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Keep an envoyFileAccessLog provider with path /dev/stdout (or Istio's "
        "built-in `envoy`) among the providers of the mesh's default and of every mesh- or "
        "namespace-wide Telemetry, and collect the `istio-proxy` containers' log files on the "
        "nodes; network access-log services (envoyOtelAls, envoyHttpAls, envoyTcpAls) may be "
        "added, not substituted.",
        catches="A mesh config (istiod values, the `istio` ConfigMap, an IstioOperator) whose "
        "defaultProviders.accessLogging names no stdout provider, and a telemetry.istio.io "
        "Telemetry without selector/targetRef(s) whose accessLogging providers are all network "
        "services. Judged when the stack carries the mesh config (provider names are defined "
        "there).",
        check_stack=_audit_channel,
        kinds=frozenset({TELEMETRY, MESH_CONFIG}),
    ),
)

__all__ = ["POLICIES"]
