"""Entry paths: every way into a model workload from outside the mesh, against intent.

A model is meant to be reached from outside only through the declared gateway routes
(intent `entries`: an Istio Gateway and the model's hosts on it). Everything else that carries
outside traffic to a model namespace is an entry path beyond intent:

- a Service of type NodePort or LoadBalancer, or with externalIPs, in a model namespace that
  selects model pods (or selects nothing: its endpoints are hand-made);
- an Ingress in a model namespace (its backends are Services of its own namespace);
- a Gateway API route (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute) with a backend in a
  model namespace, whatever Gateway it attaches to;
- an Istio VirtualService bound to any gateway but `mesh` that routes (or mirrors) to a host in
  a model namespace, for each host the gateway actually serves (the VirtualService's hosts that
  match the Gateway's server hosts, when the Gateway is in the stack): a second Gateway, or
  another host on the declared one;
- KServe itself, when its chart values let it create an Ingress / route for every
  InferenceService (`kserve.controller.gateway.disableIngressCreation` not true).

Destination hosts resolve as istiod resolves them: a short name in the route's namespace,
`<svc>.<ns>`, `<svc>.<ns>.svc` and `<svc>.<ns>.svc.<domain>` all name namespace `<ns>`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_bool, as_list, as_str, get, maps, str_map
from aimesh_policies.effective.intent import Intents
from aimesh_policies.effective.table import table
from aimesh_policies.effective.workloads import MODEL_KINDS, Model, declared_models
from aimesh_policies.framework import Context, Finding, Level, Policy, Severity, unknown_finding
from aimesh_policies.k8s_object import HELM_VALUES, K8sObject
from aimesh_policies.meshlib import NETWORKING, namespace_of

SERVICE: Final = ("", "Service")
INGRESS: Final = ("networking.k8s.io", "Ingress")
VIRTUAL_SERVICE: Final = (NETWORKING, "VirtualService")
ISTIO_GATEWAY: Final = (NETWORKING, "Gateway")
GATEWAY_API: Final = "gateway.networking.k8s.io"
ROUTE_KINDS: Final = frozenset(
    (GATEWAY_API, k) for k in ("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute")
)
KSERVE_CHARTS: Final = frozenset({"kserve", "kserve-resources"})
EXTERNAL_TYPES: Final = frozenset({"NodePort", "LoadBalancer"})


@dataclass(frozen=True)
class EntryPath:
    model: Model
    via: K8sObject
    what: str  # "NodePort Service", "Ingress host x", "gateway g host h", ...
    gateway: str = ""  # the Istio gateway ("<ns>/<name>") for VirtualService entries
    host: str = ""
    # The gateway is not in the stack: which hosts it serves is not known here.
    gateway_absent: bool = False


def host_namespace(host: str, route_namespace: str) -> str:
    """The namespace a destination host names ("" for a host outside the cluster)."""
    host = host.rstrip(".")
    parts = host.split(".")
    if len(parts) == 1:
        return route_namespace
    if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
        return parts[1]
    return ""


def host_served(host: str, patterns: Sequence[str]) -> bool:
    """Whether an Istio Gateway server with these `hosts` serves `host` (a `<ns>/` prefix
    scopes the VirtualServices it takes; the host part matches exactly or as `*.suffix`)."""
    for raw in patterns:
        pattern = raw.split("/", 1)[1] if "/" in raw else raw
        if pattern == "*" or pattern == host or host == "*":
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if host.startswith("*.") and pattern.endswith(host[1:]):
            return True
    return False


def _gateway_ref(value: str, namespace: str) -> str:
    return value if "/" in value else f"{namespace}/{value}"


def _destinations(spec: Mapping[str, Any]) -> list[str]:
    hosts: list[str] = []
    for kind in ("http", "tls", "tcp"):
        for route in maps(spec.get(kind)):
            for item in maps(route.get("route")):
                host = as_str(get(item, "destination.host"))
                if host:
                    hosts.append(host)
            mirror = as_str(get(route, "mirror.host"))
            if mirror:
                hosts.append(mirror)
            for item in maps(route.get("mirrors")):
                host = as_str(get(item, "destination.host"))
                if host:
                    hosts.append(host)
    return hosts


def _route_gateways(spec: Mapping[str, Any], namespace: str) -> list[str]:
    """The gateways a VirtualService's routes are bound to: spec.gateways (default mesh) and
    any gateway named by a route's match."""
    names = [g for g in as_list(spec.get("gateways")) if isinstance(g, str)] or ["mesh"]
    for kind in ("http", "tls", "tcp"):
        for route in maps(spec.get(kind)):
            for match in maps(route.get("match")):
                names += [g for g in as_list(match.get("gateways")) if isinstance(g, str)]
    return [_gateway_ref(g, namespace) for g in dict.fromkeys(names) if g != "mesh"]


def _selects_model(service: K8sObject, model: Model) -> bool:
    selector = str_map(service.spec.get("selector"))
    if not selector:
        return True  # hand-made endpoints may point anywhere in the namespace
    return any(all(pod.get(k) == v for k, v in selector.items()) for pod in model.pods)


def entry_paths(
    objs: Sequence[K8sObject], models: Sequence[Model], ctx: Context
) -> tuple[list[EntryPath], list[Finding]]:
    by_ns = {m.namespace: m for m in models}
    gateways = {f"{namespace_of(o)}/{o.name}": o for o in objs if o.group_kind == ISTIO_GATEWAY}
    found: list[EntryPath] = []
    unsure: list[Finding] = []
    for obj in objs:
        namespace = namespace_of(obj)
        model = by_ns.get(namespace)
        placement = obj.get("metadata") is UNKNOWN or bool(obj.unknown("metadata.namespace"))
        if placement and _may_enter(obj):
            # Which namespace it lands in decides whether it is a way into a model.
            unsure.append(
                unknown_finding(obj, (obj.unknown("metadata.namespace") or ["metadata"])[0])
            )
            continue
        if obj.group_kind == SERVICE and model is not None:
            unknown = obj.unknown("spec.type") or obj.unknown("spec.externalIPs")
            if unknown or obj.get("spec") is UNKNOWN:
                unsure.append(unknown_finding(obj, (unknown or ["spec"])[0]))
                continue
            type_ = as_str(obj.spec.get("type")) or "ClusterIP"
            if not _selects_model(obj, model):
                continue
            if type_ in EXTERNAL_TYPES:
                found.append(EntryPath(model, obj, f"{type_} Service {obj.name}"))
            if as_list(obj.spec.get("externalIPs")):
                found.append(EntryPath(model, obj, f"Service {obj.name} with externalIPs"))
        elif obj.group_kind == INGRESS and model is not None:
            if obj.get("spec") is UNKNOWN:
                unsure.append(unknown_finding(obj, "spec"))
                continue
            hosts = [as_str(r.get("host")) or "*" for r in maps(obj.spec.get("rules"))] or ["*"]
            found.append(EntryPath(model, obj, f"Ingress {obj.name} (hosts {', '.join(hosts)})"))
        elif obj.group_kind in ROUTE_KINDS:
            if obj.unknown("spec.rules") or obj.get("spec") is UNKNOWN:
                unsure.append(unknown_finding(obj, (obj.unknown("spec.rules") or ["spec"])[0]))
                continue
            for rule in maps(obj.spec.get("rules")):
                for ref in maps(rule.get("backendRefs")):
                    if (as_str(ref.get("kind")) or "Service") != "Service":
                        continue
                    target = by_ns.get(as_str(ref.get("namespace")) or namespace)
                    if target is not None:
                        parents = [
                            f"{as_str(p.get('namespace')) or namespace}/{as_str(p.get('name'))}"
                            for p in maps(obj.spec.get("parentRefs"))
                        ]
                        found.append(
                            EntryPath(
                                target,
                                obj,
                                f"{obj.kind} {obj.name} on {', '.join(parents) or 'no parent'} "
                                f"to Service {as_str(ref.get('name'))}",
                            )
                        )
        elif obj.group_kind == VIRTUAL_SERVICE:
            found_vs, unsure_vs = _virtual_service(obj, by_ns, gateways)
            found += found_vs
            unsure += unsure_vs
        elif obj.group_kind == HELM_VALUES and as_str(obj.get("chart")) in KSERVE_CHARTS:
            values = obj.get("values")
            flag = get(values, "kserve.controller.gateway.disableIngressCreation")
            if values is UNKNOWN or flag is UNKNOWN:
                unsure.append(
                    unknown_finding(obj, "values.kserve.controller.gateway.disableIngressCreation")
                )
            elif as_bool(flag) is not True:
                for model in models:
                    found.append(
                        EntryPath(
                            model,
                            obj,
                            "KServe's own Ingress / route for every InferenceService "
                            "(disableIngressCreation is not true)",
                        )
                    )
    return found, unsure


def _virtual_service(
    obj: K8sObject, by_ns: Mapping[str, Model], gateways: Mapping[str, K8sObject]
) -> tuple[list[EntryPath], list[Finding]]:
    namespace = namespace_of(obj)
    for path in ("spec", "spec.gateways", "spec.hosts", "spec.http", "spec.tls", "spec.tcp"):
        if obj.unknown(path):
            return [], [unknown_finding(obj, obj.unknown(path)[0])]
    spec = obj.spec
    targets = {
        ns for host in _destinations(spec) if (ns := host_namespace(host, namespace)) in by_ns
    }
    if not targets:
        return [], []
    hosts = [h for h in as_list(spec.get("hosts")) if isinstance(h, str)]
    found: list[EntryPath] = []
    for gateway in _route_gateways(spec, namespace):
        server_hosts: list[str] | None = None
        gateway_obj = gateways.get(gateway)
        if gateway_obj is not None:
            unknown = gateway_obj.unknown("spec.servers")
            if unknown or gateway_obj.get("spec") is UNKNOWN:
                # Which hosts it serves decides what enters through it.
                return [], [unknown_finding(gateway_obj, (unknown or ["spec"])[0])]
            server_hosts = [
                h
                for server in maps(gateway_obj.spec.get("servers"))
                for h in as_list(server.get("hosts"))
                if isinstance(h, str)
            ]
        for host in hosts:
            if server_hosts is not None and not host_served(host, server_hosts):
                continue  # the gateway does not serve this host: nothing enters through it
            for target in sorted(targets):
                found.append(
                    EntryPath(
                        by_ns[target],
                        obj,
                        f"gateway {gateway}, host {host}",
                        gateway=gateway,
                        host=host,
                        gateway_absent=server_hosts is None,
                    )
                )
    return found, []


def _may_enter(obj: K8sObject) -> bool:
    """Whether an object could carry outside traffic into a model in some namespace."""
    if obj.group_kind == SERVICE:
        type_ = obj.spec.get("type")
        return (
            type_ is UNKNOWN
            or as_str(type_) in EXTERNAL_TYPES
            or bool(as_list(obj.spec.get("externalIPs")))
            or obj.spec.get("externalIPs") is UNKNOWN
        )
    if obj.group_kind == INGRESS:
        return True
    if obj.group_kind in ROUTE_KINDS:
        return any(
            not as_str(ref.get("namespace"))
            for rule in maps(obj.spec.get("rules"))
            for ref in maps(rule.get("backendRefs"))
        )
    if obj.group_kind == VIRTUAL_SERVICE:
        return any("." not in host for host in _destinations(obj.spec))
    return False


def _declared(path: EntryPath) -> bool:
    intent = path.model.intent
    if intent is None or not path.gateway:
        return False
    for entry in intent.entries:
        if entry.gateway != path.gateway:
            continue
        if path.host in entry.hosts:
            return True
        # A Gateway of another stack (the platform's, for a team reusing SecureModel): it is
        # taken to serve what the intent says the program configured it to serve, so a host it
        # does not serve opens nothing. The platform's stack judges the Gateway itself.
        if path.gateway_absent and entry.serves and not host_served(path.host, list(entry.serves)):
            return True
    return False


def check_entry_paths(
    objs: Sequence[K8sObject], ctx: Context, intents: Intents | None = None
) -> Iterator[Finding]:
    models = declared_models(objs, ctx, intents)
    if not models:
        return
    found, unsure = entry_paths(objs, models, ctx)
    yield from unsure
    by_object: dict[str, list[EntryPath]] = {}
    for path in found:
        if not _declared(path):
            by_object.setdefault(path.via.urn + path.via.ref, []).append(path)
    for group in by_object.values():
        via = group[0].via
        rows = [(p.model.name, p.what, "no entry", "entry from outside") for p in group]
        grid = table(("model", "entry path", "intended", "effective"), rows)
        declared = sorted(
            {
                f"{e.gateway} {', '.join(e.hosts)}"
                for p in group
                if p.model.intent
                for e in p.model.intent.entries
            }
        )
        yield Finding(
            f"{via.ref}: opens an entry path to a model that the intent does not declare "
            f"(declared: {'; '.join(declared) or 'none'}):\n{grid}\nFix: remove it and publish "
            "the model only through the declared gateway route (the program's VirtualService).",
            via.urn,
        )


POLICIES: Final = (
    Policy(
        name="model-entry-paths-within-intent",
        description="Models are reachable from outside the mesh only through the declared "
        "gateway routes.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Remove the extra entry path; publish the model only through the declared "
        "gateway and hosts (the program's VirtualService on istio-ingress/aimesh-gateway).",
        catches="For models with intent: NodePort / LoadBalancer / externalIPs Services selecting "
        "model pods, Ingresses in model namespaces, Gateway API routes (HTTP, GRPC, TLS, TCP, "
        "UDP) with a backend there, VirtualServices bound to any gateway but `mesh` that route "
        "or mirror to a model namespace for a host the gateway serves (another Gateway, or "
        "another host on the declared one), and KServe chart values that let KServe create its "
        "own ingress.",
        check_stack=lambda objs, ctx: check_entry_paths(objs, ctx),
        kinds=MODEL_KINDS
        | {SERVICE, INGRESS, VIRTUAL_SERVICE, ISTIO_GATEWAY, HELM_VALUES}
        | ROUTE_KINDS,
    ),
)

__all__ = ["POLICIES", "entry_paths", "host_namespace", "host_served"]
