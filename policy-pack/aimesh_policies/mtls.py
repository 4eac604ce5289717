"""Data in transit: strict mutual TLS everywhere in the mesh.

Istio's PeerAuthentication resolves per port, then workload, then namespace, then mesh; `UNSET`
(or no `mtls` at all) inherits from the next level up, and at the top (the root namespace, no
selector) it means PERMISSIVE. So:

- mesh level: anything but STRICT is a downgrade, UNSET included;
- namespace / workload / port level: PERMISSIVE or DISABLE is a downgrade; UNSET inherits (safe
  as long as the mesh is STRICT, which the stack rule demands).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_bool, as_int, as_list, as_map, as_str, get, maps
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    as_manifest,
    finding,
    show,
)
from aimesh_policies.k8s_object import HELM_VALUES, MESH_CONFIG, K8sObject
from aimesh_policies.meshlib import (
    DESTINATION_RULE,
    PEER_AUTHENTICATION,
    is_mesh_wide,
    scope,
)
from aimesh_policies.objects import ISTIOD_CHARTS

_DOWNGRADES: Final = ("PERMISSIVE", "DISABLE")


def _mode(value: Any) -> str:
    """A mode as written: "UNSET" when absent, "<unknown>" when unknown, "<invalid>" otherwise."""
    if value is None:
        return "UNSET"
    if value is UNKNOWN:
        return "<unknown>"
    mode = as_str(value)
    return mode if mode else "<invalid>"


def _peer_auth_findings(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    level = scope(obj, ctx)
    mtls = obj.spec.get("mtls")
    mode = _mode(get(mtls, "mode") if isinstance(mtls, Mapping) else mtls)
    if level == "mesh" and mode not in ("STRICT", "<unknown>"):
        why = "UNSET at the mesh root means PERMISSIVE" if mode == "UNSET" else f"is {mode}"
        yield finding(
            obj,
            "spec.mtls.mode",
            f"the mesh-wide PeerAuthentication (root namespace {ctx.mesh_root_namespace}, no "
            f"selector) {why}: plaintext is accepted across the mesh",
            "set spec.mtls.mode: STRICT",
        )
    elif level != "mesh" and mode not in ("STRICT", "UNSET", "<unknown>"):
        yield finding(
            obj,
            "spec.mtls.mode",
            f"{level}-level mTLS is {mode} (not STRICT): plaintext is accepted",
            "set spec.mtls.mode: STRICT (or UNSET to inherit the mesh-wide STRICT)",
        )
    for port, setting in as_map(obj.spec.get("portLevelMtls")).items():
        port_mode = _mode(get(setting, "mode") if isinstance(setting, Mapping) else setting)
        if port_mode in ("STRICT", "UNSET", "<unknown>"):
            continue
        if as_int(port) in ctx.exempt_ports:
            continue
        yield finding(
            obj,
            f"spec.portLevelMtls.{port}.mode",
            f"port {show(port)} accepts plaintext (mode {port_mode})",
            f"set it to STRICT or remove port {show(port)} from portLevelMtls (or exempt the port "
            "in the policy config: exemptPorts)",
        )


def _raise_to_strict(obj: K8sObject) -> Mapping[str, Any] | None:
    """The safe fix: every mode that accepts plaintext raised to STRICT (UNSET ports kept)."""
    manifest = as_manifest(obj)
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        return None
    mtls = spec.get("mtls")
    if not isinstance(mtls, dict):
        mtls = {}
        spec["mtls"] = mtls
    mtls["mode"] = "STRICT"
    ports = spec.get("portLevelMtls")
    if isinstance(ports, dict):
        for port, setting in ports.items():
            if isinstance(setting, dict) and setting.get("mode") in _DOWNGRADES:
                setting["mode"] = "STRICT"
            elif not isinstance(setting, dict):
                ports[port] = {"mode": "STRICT"}
    return manifest


def _mesh_strict_missing(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    # Only a stack that runs the mesh (or sets mesh-wide authentication) owns the mesh default:
    # a team stack judged alone cannot see the platform's root policy.
    mesh_objects = [
        o
        for o in objs
        if o.group_kind == MESH_CONFIG
        or (o.group_kind == HELM_VALUES and get(o.body, "chart") in ISTIOD_CHARTS)
    ]
    runs_mesh = bool(mesh_objects) or any(
        o.group_kind == PEER_AUTHENTICATION and is_mesh_wide(o, ctx) for o in objs
    )
    always = as_bool(ctx.raw.get("requireInEveryStack")) is True
    if not runs_mesh and not always:
        return
    for obj in objs:
        if obj.group_kind != PEER_AUTHENTICATION or not is_mesh_wide(obj, ctx):
            continue
        mode = get(obj.spec, "mtls.mode")
        if mode == "STRICT" or mode is UNKNOWN:  # an unknown mode is reported by the resource rule
            return
    # Anchor the absence on what installs the mesh, when the stack has it.
    anchor = next((o.urn for o in mesh_objects if o.urn), "")
    yield Finding(
        f"stack: no mesh-wide STRICT PeerAuthentication (namespace {ctx.mesh_root_namespace}, "
        "no selector, spec.mtls.mode STRICT): without it every workload accepts plaintext "
        f"(Istio's default is PERMISSIVE). Fix: add PeerAuthentication {ctx.mesh_root_namespace}/"
        "default with spec.mtls.mode: STRICT.",
        anchor,
    )


# --- DestinationRule -----------------------------------------------------------------------------


def in_mesh_host(host: str, cluster_domain: str = "cluster.local") -> bool:
    """Whether a DestinationRule host names in-mesh services: a short name (no dot: resolved in
    the rule's namespace), `*`, or anything under `.svc` / the cluster domain."""
    host = host.strip().lower()
    if not host:
        return False
    if host == "*" or "." not in host:
        return True
    bare = host.lstrip("*.")
    return (
        bare in ("svc", cluster_domain, "local")
        or bare.endswith((".svc", f".{cluster_domain}"))
        or ".svc." in f".{bare}"
    )


def _tls_modes(spec: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    """(field path, tls.mode) of every TLS setting of a DestinationRule spec."""

    def of_policy(policy: Any, at: str) -> Iterable[tuple[str, Any]]:
        if not isinstance(policy, Mapping):
            return
        tls = policy.get("tls")
        if isinstance(tls, Mapping) and "mode" in tls:
            yield f"{at}.tls.mode", tls.get("mode")
        elif tls is UNKNOWN:
            yield f"{at}.tls", UNKNOWN
        for i, port in enumerate(as_list(policy.get("portLevelSettings"))):
            yield from of_policy(port, f"{at}.portLevelSettings[{i}]")

    yield from of_policy(spec.get("trafficPolicy"), "spec.trafficPolicy")
    for i, subset in enumerate(maps(spec.get("subsets"))):
        yield from of_policy(subset.get("trafficPolicy"), f"spec.subsets[{i}].trafficPolicy")


def _destination_rule_findings(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    host = as_str(obj.spec.get("host"))
    domain = as_str(ctx.raw.get("clusterDomain")) or "cluster.local"
    if host is None or not in_mesh_host(host, domain):
        return
    for path, mode in _tls_modes(obj.spec):
        if mode is UNKNOWN or mode == "ISTIO_MUTUAL":
            continue
        shown = as_str(mode) or "<invalid>"
        yield finding(
            obj,
            path,
            f"TLS to in-mesh host {host!r} is {shown}, not ISTIO_MUTUAL: "
            + (
                "traffic leaves the sidecar in plaintext"
                if shown == "DISABLE"
                else "Istio's workload identity (mTLS with SPIFFE certificates) is bypassed"
            ),
            "set tls.mode: ISTIO_MUTUAL or drop the tls block (auto mTLS)",
        )


# --- mesh config ---------------------------------------------------------------------------------


def _auto_mtls_off(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    value = obj.get("enableAutoMtls")
    if value is None or value is UNKNOWN:
        return
    if as_bool(value) is not True:
        yield finding(
            obj,
            "enableAutoMtls",
            "auto mTLS is turned off: clients without an explicit ISTIO_MUTUAL DestinationRule "
            "send plaintext",
            "remove enableAutoMtls (default true) or set it to true",
        )


POLICIES: Final = (
    Policy(
        name="istio-peerauthentication-require-strict-mtls",
        description="Every PeerAuthentication keeps mutual TLS STRICT at mesh, namespace, "
        "workload and port level.",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation="Set spec.mtls.mode to STRICT (UNSET only below the mesh level, where it "
        "inherits) and remove PERMISSIVE/DISABLE entries from spec.portLevelMtls. With "
        "enforcement level `remediate` the pack raises the modes to STRICT itself.",
        catches="A PeerAuthentication whose mode is PERMISSIVE or DISABLE at namespace, workload "
        "or port level, and a mesh-wide one (root namespace, no selector) that is anything but "
        "STRICT: UNSET there means PERMISSIVE.",
        check=_peer_auth_findings,
        kinds=frozenset({PEER_AUTHENTICATION}),
        critical=("metadata.namespace", "spec.selector", "spec.mtls", "spec.portLevelMtls"),
        fix=_raise_to_strict,
    ),
    Policy(
        name="istio-mesh-require-strict-peerauthentication",
        description="A stack that runs the mesh has a mesh-wide STRICT PeerAuthentication.",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation="Add a PeerAuthentication named `default` in the root namespace with no "
        "selector and spec.mtls.mode STRICT.",
        catches="A stack that installs istiod (chart values, IstioOperator or mesh ConfigMap) or "
        "sets mesh-wide authentication but has no mesh-wide STRICT PeerAuthentication. Set "
        "`requireInEveryStack: true` to demand it of every stack.",
        check_stack=_mesh_strict_missing,
        kinds=frozenset({PEER_AUTHENTICATION, MESH_CONFIG, HELM_VALUES}),
        config={
            "requireInEveryStack": {
                "type": "boolean",
                "default": False,
                "description": "Demand the mesh-wide STRICT policy even of stacks that do not "
                "install the mesh.",
            }
        },
    ),
    Policy(
        name="istio-destinationrule-require-istio-mutual",
        description="DestinationRules never downgrade TLS to in-mesh hosts.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Use tls.mode ISTIO_MUTUAL for in-mesh hosts, or omit tls (auto mTLS). "
        "SIMPLE/MUTUAL are for hosts outside the mesh.",
        catches="tls.mode DISABLE, SIMPLE or MUTUAL at the top-level trafficPolicy, in "
        "portLevelSettings or in a subset, for a host inside the mesh (short name, `*`, "
        "`*.svc`, `*.cluster.local`).",
        check=_destination_rule_findings,
        kinds=frozenset({DESTINATION_RULE}),
        critical=("spec.host", "spec.trafficPolicy", "spec.subsets"),
        config={
            "clusterDomain": {
                "type": "string",
                "default": "cluster.local",
                "description": "The cluster's DNS domain (in-mesh hosts end with it).",
            }
        },
    ),
    Policy(
        name="istio-meshconfig-forbid-auto-mtls-off",
        description="Mesh config keeps automatic mutual TLS on.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Remove meshConfig.enableAutoMtls or set it to true.",
        catches="enableAutoMtls: false in istiod's chart values (meshConfig), the istio "
        "ConfigMap's mesh config or an IstioOperator.",
        check=_auto_mtls_off,
        kinds=frozenset({MESH_CONFIG}),
        critical=("enableAutoMtls",),
    ),
)
