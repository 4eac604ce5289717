"""Effective reachability: NetworkPolicies into and out of model pods, against the generated ones.

Kubernetes semantics (networking.k8s.io/v1): a pod is isolated in a direction when some
NetworkPolicy selecting it lists that direction in `policyTypes` (default: Ingress, plus Egress
when the policy has egress rules); an isolated pod admits a connection when some such policy
has a rule whose peers match (none listed: every peer) and whose ports match (none listed:
every port). A peer is a podSelector (pods of the policy's namespace), a namespaceSelector
(every pod of the selected namespaces), both (the selected pods of the selected namespaces), or
an ipBlock (addresses in `cidr` outside `except`). Label selectors take matchLabels and
matchExpressions (In, NotIn, Exists, DoesNotExist); an empty selector selects everything. A
named port is taken as any port of its protocol (the container's names are not in the stack).

The grid: pods of the model's namespace, of every declared caller namespace, of the gateway,
control-plane and observability namespaces, of every namespace a policy names and of an
unrelated namespace (any pod, and every label set a policy's podSelector names), addresses
(public, private ranges, the cloud metadata address, a sample of every CIDR a policy names),
on the model ports, the mesh ports (15008, 15012, 15020, 15090), DNS, HTTP(S), the API server,
OTLP, SSH and every port a policy names. What the stack's policies let through that the
generated ones (carried in the intent) do not is a violation naming the policy that lets it
through, or the absence of isolation.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aimesh_policies.accessors import as_int, as_list, as_map, as_str, maps, str_map
from aimesh_policies.effective.access import ip_sample
from aimesh_policies.effective.intent import Intents
from aimesh_policies.effective.table import table
from aimesh_policies.effective.workloads import (
    MODEL_KINDS,
    Model,
    declared_models,
    namespace_labels,
    selector_matches,
)
from aimesh_policies.framework import Context, Finding, Level, Policy, Severity, unknown_finding
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.meshlib import NAMESPACE, namespace_of

NETWORK_POLICY: Final = ("networking.k8s.io", "NetworkPolicy")
INGRESS: Final = "Ingress"
EGRESS: Final = "Egress"
PROBE_NAMESPACE: Final = "aimesh-probe"
ADDRESSES: Final = (
    ("a public address", "203.0.113.10"),
    ("a private address (10/8)", "10.96.0.1"),
    ("a private address (172.16/12)", "172.16.5.5"),
    ("a private address (192.168/16)", "192.168.1.1"),
    ("the cloud metadata address", "169.254.169.254"),
)
TCP_PORTS: Final = (22, 53, 80, 443, 4317, 6443, 8080, 15008, 15012, 15020, 15090)


@dataclass(frozen=True)
class Peer:
    label: str
    namespace: str = ""  # "" for an address
    namespace_labels: Mapping[str, str] | None = None
    pod_labels: Mapping[str, str] | None = None
    ip: str = ""


@dataclass(frozen=True)
class Port:
    protocol: str
    number: int

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}"


@dataclass(frozen=True)
class Netpol:
    """A NetworkPolicy reduced to what decides traffic (from the stack or from intent)."""

    name: str
    namespace: str
    pod_selector: Mapping[str, Any]
    types: frozenset[str]
    ingress: tuple[Mapping[str, Any], ...]
    egress: tuple[Mapping[str, Any], ...]
    obj: K8sObject | None = None

    @classmethod
    def of(
        cls, name: str, namespace: str, spec: Mapping[str, Any], obj: K8sObject | None
    ) -> Netpol:
        raw_types = as_list(spec.get("policyTypes"))
        types = {t for t in raw_types if isinstance(t, str)}
        if not raw_types:
            types = {INGRESS} | ({EGRESS} if as_list(spec.get("egress")) else set())
        return cls(
            name,
            namespace,
            as_map(spec.get("podSelector")),
            frozenset(types),
            tuple(maps(spec.get("ingress"))),
            tuple(maps(spec.get("egress"))),
            obj,
        )


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return None


def peer_matches(peer_spec: Mapping[str, Any], peer: Peer, policy_namespace: str) -> bool:
    block = peer_spec.get("ipBlock")
    if block is not None:
        if not peer.ip:
            return False
        cidr = _network(as_map(block).get("cidr"))
        address = ipaddress.ip_address(peer.ip)
        if cidr is None or address.version != cidr.version or address not in cidr:
            return False
        return not any(
            (n := _network(e)) is not None and address.version == n.version and address in n
            for e in as_list(as_map(block).get("except"))
        )
    if not peer.namespace:
        return False  # pod / namespace selectors select pods, not outside addresses
    pod_selector = peer_spec.get("podSelector")
    namespace_selector = peer_spec.get("namespaceSelector")
    if namespace_selector is None and pod_selector is None:
        return False
    if namespace_selector is None:
        in_namespace = peer.namespace == policy_namespace
    else:
        in_namespace = selector_matches(as_map(namespace_selector), peer.namespace_labels or {})
    return in_namespace and (
        pod_selector is None or selector_matches(as_map(pod_selector), peer.pod_labels or {})
    )


def port_matches(port_spec: Mapping[str, Any], port: Port) -> bool:
    protocol = as_str(port_spec.get("protocol")) or "TCP"
    if protocol != port.protocol:
        return False
    value = port_spec.get("port")
    if value is None or (isinstance(value, str) and as_int(value) is None):
        return True  # every port, or a named port (its number is the container's business)
    start = as_int(value)
    end = as_int(port_spec.get("endPort")) or start
    return start is not None and end is not None and start <= port.number <= end


def rule_allows(rule: Mapping[str, Any], key: str, peer: Peer, port: Port, namespace: str) -> bool:
    peers = rule.get(key)
    if as_list(peers) and not any(peer_matches(p, peer, namespace) for p in maps(peers)):
        return False
    ports = as_list(rule.get("ports"))
    return not ports or any(port_matches(p, port) for p in maps(ports))


def decide(
    policies: Sequence[Netpol], pod: Mapping[str, str], direction: str, peer: Peer, port: Port
) -> tuple[bool, Netpol | None]:
    """(allowed, the policy whose rule allows it; None: the pod is not isolated)."""
    selecting = [p for p in policies if selector_matches(p.pod_selector, pod)]
    isolating = [p for p in selecting if direction in p.types]
    if not isolating:
        return True, None
    key = "from" if direction == INGRESS else "to"
    for policy in isolating:
        rules = policy.ingress if direction == INGRESS else policy.egress
        if any(rule_allows(r, key, peer, port, policy.namespace) for r in rules):
            return True, policy
    return False, None


# --- the grid ------------------------------------------------------------------------------------


def _named_namespaces(policies: Iterable[Netpol]) -> set[str]:
    found: set[str] = set()
    for policy in policies:
        for rule in (*policy.ingress, *policy.egress):
            for peer in maps(rule.get("from")) + maps(rule.get("to")):
                labels = as_map(as_map(peer.get("namespaceSelector")).get("matchLabels"))
                name = labels.get("kubernetes.io/metadata.name")
                if isinstance(name, str):
                    found.add(name)
    return found


def _pod_label_sets(policies: Iterable[Netpol]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = [{}]
    for policy in policies:
        for rule in (*policy.ingress, *policy.egress):
            for peer in maps(rule.get("from")) + maps(rule.get("to")):
                selector = as_map(peer.get("podSelector"))
                labels = str_map(selector.get("matchLabels"))
                for expression in maps(selector.get("matchExpressions")):
                    key = as_str(expression.get("key")) or ""
                    values = [v for v in as_list(expression.get("values")) if isinstance(v, str)]
                    if as_str(expression.get("operator")) == "In" and values:
                        labels[key] = values[0]
                    elif as_str(expression.get("operator")) == "Exists":
                        labels[key] = "x"
                if labels and labels not in found:
                    found.append(labels)
    return found


def _cidr_samples(policies: Iterable[Netpol]) -> list[str]:
    found: list[str] = []
    for policy in policies:
        for rule in (*policy.ingress, *policy.egress):
            for peer in maps(rule.get("from")) + maps(rule.get("to")):
                block = as_map(peer.get("ipBlock"))
                for value in (block.get("cidr"), *as_list(block.get("except"))):
                    sample = ip_sample(value) if isinstance(value, str) else ""
                    if sample and sample not in found:
                        found.append(sample)
    return found


def peers(
    model: Model,
    policies: Sequence[Netpol],
    ns_labels: Mapping[str, Mapping[str, str]],
    ctx: Context,
) -> list[Peer]:
    namespaces = [model.namespace]
    if model.intent is not None:
        for grant in model.intent.grants:
            namespaces.append(grant.principal.split("/ns/", 1)[-1].split("/", 1)[0])
    namespaces += [*sorted(ctx.gateway_namespaces), ctx.mesh_root_namespace, "kube-system"]
    namespaces += [*sorted(_named_namespaces(policies)), PROBE_NAMESPACE]
    label_sets = _pod_label_sets(policies)
    found: list[Peer] = []
    for namespace in dict.fromkeys(namespaces):
        labels = {**ns_labels.get(namespace, {}), "kubernetes.io/metadata.name": namespace}
        for pod in label_sets:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(pod.items()))
            what = f"pods {shown}" if shown else "any pod"
            where = "an unrelated namespace" if namespace == PROBE_NAMESPACE else namespace
            found.append(Peer(f"{what} in {where}", namespace, labels, pod))
    for label, address in ADDRESSES:
        found.append(Peer(f"{label} {address}", ip=address))
    for address in _cidr_samples(policies):
        if all(p.ip != address for p in found):
            found.append(Peer(f"address {address}", ip=address))
    return found


def ports(model: Model, policies: Sequence[Netpol]) -> list[Port]:
    numbers = list(TCP_PORTS) + (list(model.intent.ports) if model.intent else [])
    udp = [53]
    for policy in policies:
        for rule in (*policy.ingress, *policy.egress):
            for spec in maps(rule.get("ports")):
                for value in (spec.get("port"), spec.get("endPort")):
                    number = as_int(value)
                    if number is None:
                        continue
                    bucket = udp if as_str(spec.get("protocol")) == "UDP" else numbers
                    bucket.append(number)
    found = [Port("TCP", n) for n in dict.fromkeys(numbers)]
    return found + [Port("UDP", n) for n in dict.fromkeys(udp)]


@dataclass(frozen=True)
class Opening:
    direction: str
    pod: Mapping[str, str]
    peer: Peer
    port: Port
    by: Netpol | None


def cells(
    policies: Sequence[Netpol],
    pod: Mapping[str, str],
    direction: str,
    grid_peers: Sequence[Peer],
    grid_ports: Sequence[Port],
) -> dict[tuple[int, int], Netpol | None] | None:
    """Every (peer, port) the policies let through for `pod` in `direction`, with the policy
    whose rule lets it through; None when no policy isolates the pod (everything passes). The
    same decision as `decide`, rule by rule instead of cell by cell: each rule's peers and ports
    are matched once."""
    isolating = [
        p for p in policies if selector_matches(p.pod_selector, pod) and direction in p.types
    ]
    if not isolating:
        return None
    key = "from" if direction == INGRESS else "to"
    found: dict[tuple[int, int], Netpol | None] = {}
    for policy in isolating:
        for rule in policy.ingress if direction == INGRESS else policy.egress:
            listed = as_list(rule.get(key))
            peer_ok = [
                i
                for i, peer in enumerate(grid_peers)
                if not listed or any(peer_matches(p, peer, policy.namespace) for p in maps(listed))
            ]
            specs = maps(rule.get("ports"))
            port_ok = [
                j
                for j, port in enumerate(grid_ports)
                if not as_list(rule.get("ports")) or any(port_matches(s, port) for s in specs)
            ]
            for i in peer_ok:
                for j in port_ok:
                    found.setdefault((i, j), policy)
    return found


def openings(
    model: Model,
    stack: Sequence[Netpol],
    declared: Sequence[Netpol],
    ns_labels: Mapping[str, Mapping[str, str]],
    ctx: Context,
) -> list[Opening]:
    """What the stack's NetworkPolicies let through to or from the model's pods that the
    declared ones do not."""
    grid_peers = peers(model, [*stack, *declared], ns_labels, ctx)
    grid_ports = ports(model, [*stack, *declared])
    everything = {(i, j): None for i in range(len(grid_peers)) for j in range(len(grid_ports))}
    found: list[Opening] = []
    for pod in model.pods:
        for direction in (INGRESS, EGRESS):
            effective = cells(stack, pod, direction, grid_peers, grid_ports)
            intended = cells(declared, pod, direction, grid_peers, grid_ports)
            if intended is None:
                continue  # declared open (nothing isolates the pod): nothing can be wider
            opened = everything if effective is None else effective
            for (i, j), by in opened.items():
                if (i, j) not in intended:
                    found.append(Opening(direction, pod, grid_peers[i], grid_ports[j], by))
    return found


# --- the policy ----------------------------------------------------------------------------------


def check_reachability(
    objs: Sequence[K8sObject], ctx: Context, intents: Intents | None = None
) -> Iterator[Finding]:
    models = declared_models(objs, ctx, intents)
    if not models:
        return
    namespaces = {m.namespace for m in models}
    stack: dict[str, list[Netpol]] = {}
    for obj in objs:
        if obj.group_kind != NETWORK_POLICY:
            continue
        unknown = obj.unknown("metadata.namespace") or obj.unknown("spec")
        if unknown:
            yield unknown_finding(obj, unknown[0])
            continue
        if namespace_of(obj) in namespaces:
            stack.setdefault(namespace_of(obj), []).append(
                Netpol.of(obj.name, namespace_of(obj), obj.spec, obj)
            )
    ns_labels = namespace_labels(objs)
    for obj in objs:
        if obj.group_kind == NAMESPACE and obj.unknown("metadata.labels"):
            yield unknown_finding(obj, obj.unknown("metadata.labels")[0])
    for model in models:
        intent = model.intent
        assert intent is not None
        if not intent.network_policies:
            continue
        declared = [
            Netpol.of(
                as_str(p.get("name")) or "declared", model.namespace, as_map(p.get("spec")), None
            )
            for p in intent.network_policies
        ]
        found = openings(model, stack.get(model.namespace, []), declared, ns_labels, ctx)
        by_policy: dict[str, list[Opening]] = {}
        for opening in found:
            key = opening.by.name if opening.by is not None else ""
            by_policy.setdefault(key, []).append(opening)
        for group in by_policy.values():
            rows = [
                (o.direction.lower(), o.peer.label, str(o.port), "blocked", "open") for o in group
            ]
            grid = table(("direction", "peer", "port", "intended", "effective"), rows)
            policy = group[0].by
            if policy is None:
                directions = sorted({o.direction.lower() for o in group})
                head = (
                    f"stack: model {model.name} (namespace {model.namespace}): no NetworkPolicy "
                    f"isolates its pods for {' and '.join(directions)} (the generated "
                    "default-deny is missing or no longer selects them)"
                )
                urn = model.anchor.urn if model.anchor else ""
                fix = "restore NetworkPolicy default-deny (podSelector {}, both policyTypes)"
            else:
                assert policy.obj is not None
                head = (
                    f"{policy.obj.ref}: opens the pods of model {model.name} wider than the "
                    "generated NetworkPolicies"
                )
                urn = policy.obj.urn
                fix = "name only the declared peers and ports (as the program generates them)"
            pairs = f"{len(group)} extra peer/port pairs"
            yield Finding(f"{head} ({pairs}):\n{grid}\nFix: {fix}.", urn)


POLICIES: Final = (
    Policy(
        name="networkpolicy-model-reachability-within-intent",
        description="NetworkPolicies let no peer reach, and no destination be reached from, "
        "model pods beyond what the program generates.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Keep the generated NetworkPolicies (default deny, DNS, istiod, the declared "
        "callers' namespaces on the model port, telemetry, port-scoped external HTTPS); name "
        "exact peers and ports in anything added.",
        catches="Effective ingress or egress of model pods (Kubernetes NetworkPolicy semantics: "
        "isolation by policyTypes, pod/namespace selectors with matchExpressions, ipBlock with "
        "except, ports with endPort, named ports) beyond the NetworkPolicies declared in the "
        "intent, over pods of every relevant and an unrelated namespace, public, private and "
        "metadata addresses, and the model, mesh, DNS, HTTP(S), API-server, OTLP and SSH "
        "ports: e.g. a caller rule widened to every namespace or every port, private ranges "
        "opened to HTTPS egress, a new plain-HTTP egress, the default deny removed. Only "
        "namespaces with intent (without it: networkpolicy-forbid-open-model-namespace).",
        check_stack=lambda objs, ctx: check_reachability(objs, ctx),
        kinds=MODEL_KINDS | {NETWORK_POLICY},
    ),
)

__all__ = ["POLICIES", "Netpol", "cells", "decide", "openings", "selector_matches"]
