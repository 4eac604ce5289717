"""Egress and exfiltration: where a compromised model pod could send what it has.

Istio's default outbound policy is ALLOW_ANY (sidecars pass traffic to any host they do not
know). aimesh locks it to REGISTRY_ONLY, so a pod reaches only what the registry names: a
ServiceEntry with a wildcard host or an any-address range, or a NetworkPolicy rule that opens
everything, quietly undoes that.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_list, as_map, as_str, maps
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    as_manifest,
    finding,
    show,
    unknown_finding,
)
from aimesh_policies.guards import unknown_at
from aimesh_policies.k8s_object import MESH_CONFIG, K8sObject
from aimesh_policies.meshlib import (
    INFERENCE_SERVICE,
    LLM_INFERENCE_SERVICE,
    NAMESPACE,
    NETWORKING,
    model_namespaces,
    namespace_of,
)

SIDECAR: Final = (NETWORKING, "Sidecar")
SERVICE_ENTRY: Final = (NETWORKING, "ServiceEntry")
NETWORK_POLICY: Final = ("networking.k8s.io", "NetworkPolicy")

# Two-label public suffixes under which `*.<suffix>` still means "a whole country's web".
_PUBLIC_SECOND_LEVEL: Final = frozenset(
    {
        "co.uk",
        "org.uk",
        "ac.uk",
        "gov.uk",
        "com.au",
        "net.au",
        "org.au",
        "co.jp",
        "ne.jp",
        "or.jp",
        "com.br",
        "com.cn",
        "com.mx",
        "co.in",
        "co.nz",
        "co.za",
        "com.tr",
        "com.sg",
        "co.kr",
    }
)
# ServiceEntry port protocols matched by Host header or SNI; anything else (TCP, MONGO, ...) is
# matched by destination address, i.e. by every address when the entry lists none.
_NAME_ROUTED_PROTOCOLS: Final = frozenset({"HTTP", "HTTPS", "HTTP2", "GRPC", "GRPC-WEB", "TLS"})


# --- outbound traffic policy ---------------------------------------------------------------------


def _mode_at(obj: K8sObject) -> tuple[str, Any]:
    """(field path, value) of the outbound traffic policy mode of a Sidecar or a MeshConfig."""
    if obj.group_kind == MESH_CONFIG:
        holder, at = obj.get("outboundTrafficPolicy"), "outboundTrafficPolicy"
    else:
        holder, at = obj.spec.get("outboundTrafficPolicy"), "spec.outboundTrafficPolicy"
    if holder is UNKNOWN:
        return f"{at}.mode", UNKNOWN
    return f"{at}.mode", as_map(holder).get("mode")


def _is_allow_any(value: Any) -> bool:
    return (as_str(value) or "").upper() == "ALLOW_ANY"


def _allow_any(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if obj.whole_unknown or obj.get("spec") is UNKNOWN:
        yield unknown_finding(obj, "" if obj.whole_unknown else "spec")
        return
    path, mode = _mode_at(obj)
    if mode is UNKNOWN:
        yield unknown_finding(obj, path)
    elif _is_allow_any(mode):
        where = "every sidecar of the mesh" if obj.group_kind == MESH_CONFIG else "its sidecars"
        yield finding(
            obj,
            path,
            f"ALLOW_ANY lets {where} send traffic to any host outside the service registry "
            "(data exfiltration, command-and-control)",
            "set mode REGISTRY_ONLY and declare each external dependency with a narrowly scoped "
            "ServiceEntry",
        )


def _fix_registry_only(obj: K8sObject) -> Mapping[str, Any] | None:
    if obj.group_kind != SIDECAR:
        return None
    manifest = as_manifest(obj)
    spec = manifest.get("spec")
    policy = spec.get("outboundTrafficPolicy") if isinstance(spec, dict) else None
    if isinstance(policy, dict) and _is_allow_any(policy.get("mode")):
        policy["mode"] = "REGISTRY_ONLY"
        return manifest
    return None


def _is_root_default(sidecar: K8sObject, ctx: Context) -> bool:
    return namespace_of(sidecar) == ctx.mesh_root_namespace and not as_map(
        sidecar.spec.get("workloadSelector")
    )


def _implicit_allow_any(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    """Istio's built-in default is ALLOW_ANY: a mesh config that leaves the mode unset keeps it,
    and every Sidecar that sets no mode inherits the MESH CONFIG's mode (not the root Sidecar's)."""
    meshes = [o for o in objs if o.group_kind == MESH_CONFIG and not o.whole_unknown]
    if not meshes:
        return  # the mesh is installed elsewhere: its default cannot be judged from this stack
    sidecars = [o for o in objs if o.group_kind == SIDECAR]
    open_meshes = [m for m in meshes if _mode_at(m)[1] is None or _is_allow_any(_mode_at(m)[1])]
    if not open_meshes:
        return
    root_locked = any(
        _is_root_default(s, ctx) and (as_str(_mode_at(s)[1]) or "").upper() == "REGISTRY_ONLY"
        for s in sidecars
    )
    for mesh in open_meshes:
        if _mode_at(mesh)[1] is None and not root_locked:
            yield finding(
                mesh,
                "outboundTrafficPolicy.mode",
                "is unset, so Istio's default ALLOW_ANY applies and no root-namespace Sidecar "
                f"in {ctx.mesh_root_namespace} sets REGISTRY_ONLY",
                "set outboundTrafficPolicy.mode: REGISTRY_ONLY in the mesh config",
            )
    for sidecar in sidecars:
        if sidecar.get("spec") is UNKNOWN:
            yield unknown_finding(sidecar, "spec")
            continue
        path, mode = _mode_at(sidecar)
        if mode is None and not _is_root_default(sidecar, ctx):
            yield finding(
                sidecar,
                path,
                "is unset, so this Sidecar inherits the mesh config's ALLOW_ANY (a root "
                "Sidecar's REGISTRY_ONLY does not apply where another Sidecar is selected)",
                "set spec.outboundTrafficPolicy.mode: REGISTRY_ONLY here, and in the mesh config",
            )


# --- ServiceEntry ------------------------------------------------------------------------------


def _too_wide_host(host: str) -> bool:
    host = host.strip().lower().rstrip(".")
    if host == "*":
        return True
    if not host.startswith("*."):
        return False
    suffix = host[2:]
    return "." not in suffix or suffix in _PUBLIC_SECOND_LEVEL


def _wildcard_hosts(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if unknown_at(obj, "spec"):
        yield from unknown_at(obj, "spec")
        return
    hosts = obj.spec.get("hosts")
    if hosts is UNKNOWN:
        yield unknown_finding(obj, "spec.hosts")
        return
    for i, host in enumerate(as_list(hosts)):
        if host is UNKNOWN:
            yield unknown_finding(obj, f"spec.hosts[{i}]")
        elif isinstance(host, str) and _too_wide_host(host):
            yield finding(
                obj,
                f"spec.hosts[{i}]",
                f"host '{host}' admits every domain{'' if host.strip() == '*' else ' under it'}: "
                "the registry no longer limits where pods may send data",
                "list the exact external hostnames the workload needs (e.g. "
                "storage.googleapis.com) and restrict exportTo to the consuming namespace",
            )


def _networks(values: Iterable[Any]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    found: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for value in values:
        text = as_str(value)
        if not text:
            continue
        try:
            found.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            continue  # not an address: the API server rejects it, nothing to judge
    return found


def covers_everything(values: Iterable[Any]) -> str | None:
    """ "0.0.0.0/0" / "::/0" when the union of the CIDRs is every IPv4 / IPv6 address."""
    nets = _networks(values)
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    if v4 and ipaddress.IPv4Network("0.0.0.0/0") in list(ipaddress.collapse_addresses(v4)):
        return "0.0.0.0/0"
    if v6 and ipaddress.IPv6Network("::/0") in list(ipaddress.collapse_addresses(v6)):
        return "::/0"
    return None


def _any_address(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if unknown_at(obj, "spec"):
        yield from unknown_at(obj, "spec")
        return
    addresses = obj.spec.get("addresses")
    if addresses is UNKNOWN or any(a is UNKNOWN for a in as_list(addresses)):
        yield unknown_finding(obj, "spec.addresses")
        return
    everything = covers_everything(as_list(addresses))
    if everything:
        yield finding(
            obj,
            "spec.addresses",
            f"the addresses cover {everything}: every destination IP is treated as this "
            "registered service",
            "list the exact addresses or narrow CIDRs of the external service",
        )


def _address_less_tcp(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    raw = obj.spec.get("resolution")
    resolution = (as_str(raw) or "NONE").upper()
    addresses = obj.spec.get("addresses")
    if raw is UNKNOWN or resolution != "NONE" or addresses is UNKNOWN or as_list(addresses):
        return
    for i, port in enumerate(maps(obj.spec.get("ports"))):
        protocol = (as_str(port.get("protocol")) or "TCP").upper()
        if protocol not in _NAME_ROUTED_PROTOCOLS:
            yield finding(
                obj,
                f"spec.ports[{i}].protocol",
                f"port {show(port.get('number'))} ({protocol}) with resolution NONE and no "
                "addresses matches traffic to ANY IP on that port",
                "add spec.addresses (exact IPs/CIDRs) or use resolution DNS with exact hosts",
            )


# --- NetworkPolicy -----------------------------------------------------------------------------


def _rules(policy: K8sObject, direction: str) -> Iterator[tuple[str, Mapping[str, Any], str]]:
    """(path, rule, unsure) of the ingress or egress rules that are or may be in force: `unsure`
    names the policyTypes field, unknown until apply, that decides whether the rule is in force
    ("" when it is known to be)."""
    raw = policy.spec.get("policyTypes")
    types = [(as_str(v) or "").lower() for v in as_list(raw)]
    key = direction.lower()
    unsure = ""
    if raw is UNKNOWN:
        unsure = "spec.policyTypes"
    elif types and key not in types:
        entries = [i for i, v in enumerate(as_list(raw)) if v is UNKNOWN]
        if not entries:
            return
        unsure = f"spec.policyTypes[{entries[0]}]"
    for i, rule in enumerate(as_list(policy.spec.get(key))):
        if isinstance(rule, Mapping):
            yield f"spec.{key}[{i}]", rule, unsure


def _open_rule(rule: Mapping[str, Any], peers_key: str) -> str | None:
    """Why a rule admits all traffic (no peers and no ports; or an any-address peer and no
    ports), None when it is restricted."""
    if as_list(rule.get("ports")):
        return None
    peers = maps(rule.get(peers_key))
    if not peers and not as_list(rule.get(peers_key)):
        return f"it names no `{peers_key}` peers and no ports: every peer on every port"
    cidrs = [as_map(p.get("ipBlock")).get("cidr") for p in peers]
    everything = covers_everything(cidrs)
    if everything:
        return f"its ipBlock peers cover {everything} on every port"
    return None


_PEER_HINT: Final = {
    "Ingress": "podSelector / namespaceSelector",
    "Egress": "namespaceSelector or exact ipBlocks",
}


def _open_network_policies(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    namespaces = model_namespaces(objs, ctx)
    for policy in objs:
        if policy.group_kind != NETWORK_POLICY:
            continue
        if namespace_of(policy) in namespaces:
            yield from _open_policy(policy)
        elif (
            namespaces
            and policy.unknown("metadata.namespace")
            and any(True for _ in _open_policy(policy))
        ):
            # Its namespace is unknown until apply: it may land in a model namespace. Only an
            # open (or unverifiable) policy is worth a word.
            yield from (unknown_finding(policy, w) for w in policy.unknown("metadata.namespace"))


def _open_policy(policy: K8sObject) -> Iterator[Finding]:
    """What opens all traffic in one NetworkPolicy (assumed to be in a model namespace)."""
    namespace = namespace_of(policy)
    structure = unknown_at(policy, "spec", "spec.ingress", "spec.egress")
    structure += unknown_at(policy, "spec.ingress[]", "spec.egress[]")
    if structure:
        yield from structure
        return
    for direction, peers_key in (("Ingress", "from"), ("Egress", "to")):
        for at, rule, unsure in _rules(policy, direction):
            problem: Finding | None = None
            if rule.get(peers_key) is UNKNOWN or rule.get("ports") is UNKNOWN:
                problem = unknown_finding(policy, at)
            elif not as_list(rule.get("ports")) and any(
                peer is UNKNOWN
                or as_map(peer).get("ipBlock") is UNKNOWN
                or as_map(as_map(peer).get("ipBlock")).get("cidr") is UNKNOWN
                for peer in as_list(rule.get(peers_key))
            ):
                # An unknown peer on every port may be 0.0.0.0/0.
                problem = unknown_finding(policy, f"{at}.{peers_key}")
            else:
                why = _open_rule(rule, peers_key)
                if why:
                    problem = finding(
                        policy,
                        at,
                        f"this {direction.lower()} rule in model namespace {namespace} opens "
                        f"all {direction.lower()}: {why}",
                        f"name the peers ({_PEER_HINT[direction]}) and restrict the ports",
                    )
            if problem is not None:
                # A rule that may not be in force (policyTypes unknown) cannot be verified.
                yield unknown_finding(policy, unsure) if unsure else problem


POLICIES: Final = (
    Policy(
        name="istio-egress-forbid-allow-any",
        description="Neither a Sidecar nor the mesh config may set outboundTrafficPolicy "
        "ALLOW_ANY.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Set outboundTrafficPolicy.mode: REGISTRY_ONLY (the automatic fix does for a "
        "Sidecar) and declare external dependencies with narrow ServiceEntries.",
        catches="Sidecar spec.outboundTrafficPolicy.mode ALLOW_ANY and meshConfig "
        "outboundTrafficPolicy.mode ALLOW_ANY in istiod Helm values, the istio ConfigMap or an "
        "IstioOperator.",
        check=_allow_any,
        kinds=frozenset({SIDECAR, MESH_CONFIG}),
        fix=_fix_registry_only,
    ),
    Policy(
        name="istio-mesh-require-registry-only-default",
        description="When the stack installs the mesh, its outbound default must be "
        "REGISTRY_ONLY, also for Sidecars that set no mode.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Set meshConfig.outboundTrafficPolicy.mode: REGISTRY_ONLY (Istio's default is "
        "ALLOW_ANY), or give every Sidecar an explicit REGISTRY_ONLY mode.",
        catches="A mesh config in the stack that leaves outboundTrafficPolicy unset with no "
        "root-namespace REGISTRY_ONLY Sidecar; and, whenever the mesh default is ALLOW_ANY, every "
        "namespace/workload Sidecar without a mode (Istio applies the mesh config's mode to it, "
        "not the root Sidecar's).",
        check_stack=_implicit_allow_any,
        kinds=frozenset({SIDECAR, MESH_CONFIG}),
    ),
    Policy(
        name="istio-serviceentry-forbid-wildcard-hosts",
        description="ServiceEntries must not register `*` or a whole top-level domain.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Register the exact external hostnames a workload needs and restrict "
        'exportTo to its namespace (".").',
        catches='ServiceEntry hosts "*" and "*.<tld>" (e.g. "*.com", "*.co.uk"), any version of '
        "networking.istio.io.",
        check=_wildcard_hosts,
        kinds=frozenset({SERVICE_ENTRY}),
    ),
    Policy(
        name="istio-serviceentry-forbid-any-address",
        description="ServiceEntries must not claim every IP address.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="List the exact addresses or narrow CIDRs of the external service.",
        catches="ServiceEntry spec.addresses whose union is 0.0.0.0/0 or ::/0 (also split, e.g. "
        "0.0.0.0/1 + 128.0.0.0/1).",
        check=_any_address,
        kinds=frozenset({SERVICE_ENTRY}),
    ),
    Policy(
        name="istio-serviceentry-require-addresses-for-tcp",
        description="A ServiceEntry with TCP ports and resolution NONE should list addresses.",
        severity=Severity.MEDIUM,
        level=Level.ADVISORY,
        remediation="Add spec.addresses, or use resolution DNS with exact hosts.",
        catches="resolution NONE (the default) without addresses on a port that is not HTTP/TLS: "
        "Istio then matches traffic to any IP on that port.",
        check=_address_less_tcp,
        kinds=frozenset({SERVICE_ENTRY}),
    ),
    Policy(
        name="networkpolicy-forbid-open-model-namespace",
        description="NetworkPolicies in model namespaces must not open all ingress or egress.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Name the peers (podSelector / namespaceSelector / exact ipBlocks) and the "
        "ports of each rule; egress to public ranges only on the ports needed (e.g. 443).",
        catches="In a model namespace (configured, labelled, or holding an InferenceService): an "
        "ingress/egress rule with no peers and no ports, or whose ipBlock peers cover 0.0.0.0/0 "
        "or ::/0 with no port restriction.",
        check_stack=_open_network_policies,
        kinds=frozenset({NETWORK_POLICY, NAMESPACE, INFERENCE_SERVICE, LLM_INFERENCE_SERVICE}),
    ),
)

__all__ = ["POLICIES", "covers_everything"]
