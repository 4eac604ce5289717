"""Exposure: model workloads reachable around the gateway, and gateways that weaken TLS.

Models are served only through the ingress gateway, which terminates TLS and checks the caller's
token. A NodePort / LoadBalancer Service (or a Service with externalIPs) that selects model pods
opens a path that skips the gateway. A gateway that serves plain HTTP without redirecting,
accepts TLS below 1.2, or passes TLS through untouched (so it can check nothing) weakens the one
door that is meant to be open.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_bool, as_list, as_map, as_str, str_list, str_map
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
    isvc_components,
    isvc_pod_labels,
    model_namespaces,
    namespace_of,
)
from aimesh_policies.pods import POD_TEMPLATE_PATHS, pods

SERVICE: Final = ("", "Service")
ISTIO_GATEWAY: Final = (NETWORKING, "Gateway")
GATEWAY_API: Final = "gateway.networking.k8s.io"
GATEWAY_API_GATEWAY: Final = (GATEWAY_API, "Gateway")

EXTERNAL_SERVICE_TYPES: Final = frozenset({"NodePort", "LoadBalancer"})
# Istio server protocols whose traffic the gateway decrypts or forwards encrypted.
TLS_PROTOCOLS: Final = frozenset({"HTTPS", "TLS"})
# Plain HTTP-family protocols: the only ones `tls.httpsRedirect` can rescue.
HTTP_PROTOCOLS: Final = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
WEAK_TLS_VERSIONS: Final = frozenset({"TLS_AUTO", "TLSV1_0", "TLSV1_1"})
STRONG_TLS_VERSIONS: Final = frozenset({"TLSV1_2", "TLSV1_3"})

WORKLOAD_KINDS: Final = frozenset({("", "Pod"), *POD_TEMPLATE_PATHS})


# --- Services that bypass the gateway ------------------------------------------------------------


def _model_pod_labels(objs: Sequence[K8sObject], ctx: Context) -> dict[str, list[dict[str, str]]]:
    """namespace -> label sets of the model pods the stack declares (workload templates carrying
    a model label, and the pods KServe creates for each InferenceService component)."""
    found: dict[str, list[dict[str, str]]] = {}
    for obj in objs:
        namespace = namespace_of(obj)
        if obj.group_kind == INFERENCE_SERVICE:
            for component in isvc_components(obj):
                found.setdefault(namespace, []).append(isvc_pod_labels(obj, component))
        elif obj.group_kind in WORKLOAD_KINDS:
            for view in pods(obj):
                if ctx.is_model_workload(view.labels):
                    found.setdefault(namespace, []).append(dict(view.labels))
    return found


@dataclass(frozen=True)
class _UnsurePod:
    """A workload's pod template whose labels are partly or wholly unknown until apply."""

    workload: K8sObject
    labels_path: str  # "spec.template.metadata.labels"
    known: Mapping[str, str]
    unknown_keys: frozenset[str]  # keys whose value is unknown
    all_unknown: bool  # the whole label map (or its metadata) is unknown


def _unsure_pods(objs: Sequence[K8sObject], ctx: Context) -> dict[str, list[_UnsurePod]]:
    """namespace -> workload pod templates with unknown labels that are, or may be, model pods
    (a model label key present with an unknown value, or the whole label map unknown)."""
    found: dict[str, list[_UnsurePod]] = {}
    for obj in objs:
        if obj.group_kind not in WORKLOAD_KINDS:
            continue
        for view in pods(obj):
            labels_path = f"{view.meta_path}.labels"
            raw = obj.get(labels_path)
            all_unknown = raw is UNKNOWN
            keys = frozenset(
                k for k, v in as_map(raw).items() if isinstance(k, str) and v is UNKNOWN
            )
            marked = ctx.is_model_workload({**view.labels, **dict.fromkeys(keys, "")})
            if (keys and marked) or all_unknown:
                pod = _UnsurePod(obj, labels_path, view.labels, keys, all_unknown)
                found.setdefault(namespace_of(obj), []).append(pod)
    return found


def _unsure_match(
    pod: _UnsurePod, selector: Mapping[str, str], unknown_keys: Sequence[str]
) -> list[str] | None:
    """None when the Service's selector cannot select the pod; else the pod's unknown label
    paths the match relies on ([] = it matches on known labels alone)."""
    relied: list[str] = []
    for key in (*selector, *unknown_keys):
        if pod.all_unknown:
            relied.append(pod.labels_path)
        elif key in pod.unknown_keys:
            relied.append(f"{pod.labels_path}.{key}")
        elif key not in pod.known or (key in selector and pod.known[key] != selector[key]):
            return None
    if pod.all_unknown:
        return relied[:1]  # the model label itself is unknown too
    return relied


def _why_model(
    service: K8sObject,
    selector: Mapping[str, str],
    ctx: Context,
    namespaces: set[str],
    model_pods: Mapping[str, list[dict[str, str]]],
    unknown_keys: Sequence[str] = (),
) -> str | None:
    """Why the Service's selector reaches model pods, or None when it does not. A selector key
    whose value is unknown until apply may match any value of that label."""
    for key in ctx.model_workload_labels:
        if key in selector or key in unknown_keys:
            return f"its selector names the model label {key}"
    namespace = namespace_of(service)
    if namespace in namespaces:
        return f"it is in the model namespace {namespace}"
    for labels in model_pods.get(namespace, ()):
        if (selector or unknown_keys) and (
            all(labels.get(k) == v for k, v in selector.items())
            and all(k in labels for k in unknown_keys)
        ):
            if unknown_keys:
                return "its selector may match a model workload's pods (values unknown)"
            return "its selector matches a model workload's pods"
    return None


def _exposure(service: K8sObject) -> tuple[bool, bool]:
    """(reachable from outside by type or unknown type, has or may have externalIPs)."""
    type_ = service.spec.get("type")
    external_ips = service.spec.get("externalIPs")
    by_type = type_ is UNKNOWN or as_str(type_) in EXTERNAL_SERVICE_TYPES
    # An entry unknown until apply is still an external IP.
    listed = any(isinstance(ip, str) or ip is UNKNOWN for ip in as_list(external_ips))
    return by_type, external_ips is UNKNOWN or listed


def _service_exposure(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    # Only externally reachable Services need the (stack-wide) model join: look at them first,
    # so the common case (ClusterIP everywhere) stays linear and cheap.
    exposed = [
        s
        for s in objs
        if s.group_kind == SERVICE
        and namespace_of(s) not in ctx.gateway_namespaces
        and (any(_exposure(s)) or s.get("spec") is UNKNOWN)
    ]
    if not exposed:
        return
    namespaces = model_namespaces(objs, ctx)
    model_pods = _model_pod_labels(objs, ctx)
    unsure_pods = _unsure_pods(objs, ctx)
    for service in exposed:
        if service.get("spec") is UNKNOWN:
            yield unknown_finding(service, "spec")
            continue
        raw_selector = service.spec.get("selector")
        if raw_selector is UNKNOWN:
            yield unknown_finding(service, "spec.selector")
            continue
        selector = str_map(raw_selector)
        unknown_keys = [
            k for k, v in as_map(raw_selector).items() if isinstance(k, str) and v is UNKNOWN
        ]
        if not selector and not unknown_keys:
            # No selector: endpoints are managed by hand (or there are none); nothing selected.
            continue
        why = _why_model(service, selector, ctx, namespaces, model_pods, unknown_keys)
        if why is None:
            unsure = [
                (pod, relied)
                for pod in unsure_pods.get(namespace_of(service), ())
                if (relied := _unsure_match(pod, selector, unknown_keys)) is not None
            ]
            if any(not relied for _, relied in unsure):
                why = "its selector matches a model workload's pods"
            elif unsure:
                # Whether it selects model pods depends on pod labels unknown until apply.
                pod, relied = unsure[0]
                yield from (unknown_finding(pod.workload, at) for at in dict.fromkeys(relied))
        if why is None:
            if service.get("metadata") is UNKNOWN or service.get("metadata.namespace") is UNKNOWN:
                # Whether it sits in a model namespace cannot be told yet.
                yield unknown_finding(service, "metadata.namespace")
            continue
        by_type, by_ips = _exposure(service)
        type_ = service.spec.get("type")
        if type_ is UNKNOWN:
            yield unknown_finding(service, "spec.type")
        elif by_type:
            yield finding(
                service,
                "spec.type",
                f"type {type_} exposes model pods on every node / an external load balancer "
                f"({why}), bypassing the ingress gateway's TLS and token checks",
                "use type ClusterIP and publish the model through the gateway (a VirtualService "
                "bound to the aimesh Gateway)",
            )
        if service.spec.get("externalIPs") is UNKNOWN:
            yield unknown_finding(service, "spec.externalIPs")
        elif by_ips:
            yield finding(
                service,
                "spec.externalIPs",
                f"externalIPs route outside traffic straight to model pods ({why}), bypassing "
                "the ingress gateway",
                "remove spec.externalIPs and publish the model through the gateway",
            )


# --- Istio Gateway servers -----------------------------------------------------------------------


def _servers(obj: K8sObject) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for i, server in enumerate(as_list(obj.spec.get("servers"))):
        if isinstance(server, Mapping):
            yield f"spec.servers[{i}]", server


def _label(server: Mapping[str, Any]) -> str:
    port = as_map(server.get("port"))
    name = as_str(port.get("name"))
    number = port.get("number")
    bits = [f"'{name}'" if name else "", f"port {show(number)}" if number is not None else ""]
    return " ".join(b for b in bits if b) or "server"


_SERVER_STRUCTURE: Final = ("spec", "spec.servers", "spec.servers[]")


def _plaintext(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    yield from unknown_at(obj, *_SERVER_STRUCTURE, "spec.servers[].port")
    for at, server in _servers(obj):
        protocol = as_map(server.get("port")).get("protocol")
        if protocol is UNKNOWN:
            yield unknown_finding(obj, f"{at}.port.protocol")
            continue
        name = (as_str(protocol) or "").upper()
        if not name or name in TLS_PROTOCOLS:
            continue  # a server without a protocol is rejected by the API server
        tls = server.get("tls")
        redirect = as_map(tls).get("httpsRedirect")
        if name in HTTP_PROTOCOLS:
            if tls is UNKNOWN or redirect is UNKNOWN:
                yield unknown_finding(obj, f"{at}.tls.httpsRedirect")
            elif as_bool(redirect) is not True:
                yield finding(
                    obj,
                    f"{at}.tls.httpsRedirect",
                    f"{_label(server)} serves plain {name} without redirecting to HTTPS: "
                    "requests and tokens cross the network in clear text",
                    "set tls.httpsRedirect: true on this server (the automatic fix does) and "
                    "serve the hosts on an HTTPS server",
                )
        else:
            yield finding(
                obj,
                f"{at}.port.protocol",
                f"{_label(server)} serves plain {name}: traffic enters the mesh unencrypted",
                "serve it as TLS (protocol TLS or HTTPS with tls.mode SIMPLE or MUTUAL)",
            )


def _fix_redirect(obj: K8sObject) -> Mapping[str, Any] | None:
    manifest = as_manifest(obj)
    servers = as_map(manifest.get("spec")).get("servers")
    changed = False
    for server in servers if isinstance(servers, list) else []:
        if not isinstance(server, dict):
            continue
        protocol = (as_str(as_map(server.get("port")).get("protocol")) or "").upper()
        if protocol in HTTP_PROTOCOLS:
            tls = server.get("tls")
            if not isinstance(tls, dict):
                tls = server["tls"] = {}
            if as_bool(tls.get("httpsRedirect")) is not True:
                tls["httpsRedirect"] = True
                changed = True
    return manifest if changed else None


def _version_problem(value: Any, bound: str) -> str | None:
    name = as_str(value)
    if name is None:
        return None if value is None else f"{bound} is not a TLS version name"
    upper = name.upper()
    if upper in STRONG_TLS_VERSIONS or (bound == "maxProtocolVersion" and upper == "TLS_AUTO"):
        return None
    if upper in WEAK_TLS_VERSIONS:
        if upper == "TLS_AUTO":
            return (
                f"{bound} TLS_AUTO leaves the floor to Envoy's build default instead of "
                "pinning TLS 1.2"
            )
        what = "lets clients negotiate" if bound == "minProtocolVersion" else "caps TLS at"
        return f"{bound} {name} {what} a version below TLS 1.2"
    return f"{bound} {name} is not a known TLS version (TLSV1_2 or TLSV1_3 expected)"


def _tls_version(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if obj.whole_unknown:
        yield unknown_finding(obj, "")
        return
    yield from unknown_at(obj, *_SERVER_STRUCTURE)
    if obj.group_kind == MESH_CONFIG:
        holders: list[tuple[str, Any]] = [("tlsDefaults", obj.get("tlsDefaults"))]
    else:
        holders = [(f"{at}.tls", server.get("tls")) for at, server in _servers(obj)]
    for at, tls in holders:
        for bound in ("minProtocolVersion", "maxProtocolVersion"):
            value = as_map(tls).get(bound)
            if tls is UNKNOWN or value is UNKNOWN:
                yield unknown_finding(obj, f"{at}.{bound}")
                break
            problem = _version_problem(value, bound)
            if problem:
                yield finding(
                    obj,
                    f"{at}.{bound}",
                    problem,
                    f"set {bound} to TLSV1_2 or TLSV1_3"
                    + (
                        " (the automatic fix sets TLSV1_2)" if obj.group_kind != MESH_CONFIG else ""
                    ),
                )


def _fix_tls_version(obj: K8sObject) -> Mapping[str, Any] | None:
    if obj.group_kind != ISTIO_GATEWAY:
        return None
    manifest = as_manifest(obj)
    servers = as_map(manifest.get("spec")).get("servers")
    changed = False
    for server in servers if isinstance(servers, list) else []:
        tls = server.get("tls") if isinstance(server, dict) else None
        if not isinstance(tls, dict):
            continue
        for bound in ("minProtocolVersion", "maxProtocolVersion"):
            if tls.get(bound) is not None and _version_problem(tls.get(bound), bound):
                if bound == "maxProtocolVersion":
                    del tls[bound]
                else:
                    tls[bound] = "TLSV1_2"
                changed = True
    return manifest if changed else None


def _passthrough(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    yield from unknown_at(obj, *_SERVER_STRUCTURE)
    for at, server in _servers(obj):
        mode = as_map(server.get("tls")).get("mode")
        if mode is UNKNOWN or server.get("tls") is UNKNOWN:
            yield unknown_finding(obj, f"{at}.tls.mode")
        elif (as_str(mode) or "").upper() == "PASSTHROUGH":
            hosts = ", ".join(str_list(server.get("hosts"))) or "its hosts"
            yield finding(
                obj,
                f"{at}.tls.mode",
                f"{_label(server)} passes TLS for {hosts} through untouched: the gateway can "
                "neither check a token nor apply authorization, and the backend sees no mesh "
                "identity",
                "terminate TLS at the gateway (tls.mode SIMPLE or MUTUAL with a credentialName) "
                "and let the mesh carry the request with mTLS",
            )


# --- Gateway API listeners (advisory) ----------------------------------------------------------


def _gateway_api_listeners(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    yield from unknown_at(obj, "spec", "spec.listeners", "spec.listeners[]")
    for i, listener in enumerate(as_list(obj.spec.get("listeners"))):
        if not isinstance(listener, Mapping):
            continue
        at = f"spec.listeners[{i}]"
        name = as_str(listener.get("name")) or f"#{i}"
        protocol = listener.get("protocol")
        if protocol is UNKNOWN:
            yield unknown_finding(obj, f"{at}.protocol")
            continue
        upper = (as_str(protocol) or "").upper()
        if upper in ("HTTP", "TCP", "UDP"):
            yield finding(
                obj,
                f"{at}.protocol",
                f"listener '{name}' accepts plain {upper}",
                "use an HTTPS/TLS listener; for HTTP keep only an HTTPRoute whose filter is a "
                "RequestRedirect to scheme https",
            )
        mode = as_map(listener.get("tls")).get("mode")
        if upper == "TLS" and (as_str(mode) or "Terminate").lower() == "passthrough":
            yield finding(
                obj,
                f"{at}.tls.mode",
                f"listener '{name}' passes TLS through: the gateway can check no token",
                "set tls.mode Terminate with certificateRefs",
            )


def _any_external_ips(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    ips = [ip for ip in as_list(obj.spec.get("externalIPs")) if isinstance(ip, str)]
    if ips:
        yield finding(
            obj,
            "spec.externalIPs",
            f"claims {len(ips)} external IP(s): kube-proxy on every node then captures traffic "
            "to those addresses, from any pod (CVE-2020-8554 interception)",
            "remove spec.externalIPs (use a LoadBalancer or the ingress gateway) and enable the "
            "DenyServiceExternalIPs admission plugin",
        )


# --- advisory: wildcard VirtualServices, Kubernetes Ingress without TLS --------------------------

VIRTUAL_SERVICE: Final = (NETWORKING, "VirtualService")
INGRESS: Final = ("networking.k8s.io", "Ingress")


def _wildcard_virtual_service(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    for i, host in enumerate(as_list(obj.spec.get("hosts"))):
        if isinstance(host, str) and "*" in host:
            what = "every hostname" if host.strip() == "*" else f"every hostname matching {host}"
            yield finding(
                obj,
                f"spec.hosts[{i}]",
                f"host '{host}' claims requests for {what} on the gateways it is bound to "
                "(and can shadow other services' routes)",
                "list the exact hostnames this VirtualService serves",
            )


def _ingress_without_tls(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    tls_hosts = {h for t in as_list(obj.spec.get("tls")) for h in str_list(as_map(t).get("hosts"))}
    if not as_list(obj.spec.get("tls")):
        yield finding(
            obj,
            "spec.tls",
            "the Ingress serves plain HTTP (no tls section)",
            "add spec.tls with a certificate Secret covering its hosts",
        )
        return
    for i, rule in enumerate(as_list(obj.spec.get("rules"))):
        host = as_str(as_map(rule).get("host"))
        if host and host not in tls_hosts:
            yield finding(
                obj,
                f"spec.rules[{i}].host",
                f"host {host} is not covered by any spec.tls entry: it is served over plain HTTP",
                "add the host to a spec.tls entry",
            )


POLICIES: Final = (
    Policy(
        name="service-forbid-external-model-exposure",
        description="Services that select model workloads must not be NodePort, LoadBalancer or "
        "carry externalIPs: models are reached only through the ingress gateway.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Make the Service type ClusterIP without externalIPs and publish the model "
        "through the ingress gateway (Gateway + VirtualService).",
        catches="A Service of type NodePort/LoadBalancer, or with spec.externalIPs, whose selector "
        "names a model label (aimesh.io/model, serving.kserve.io/inferenceservice), sits in a "
        "model namespace, or matches the pod labels of a model workload / InferenceService "
        "component in the stack. Gateway namespaces are not judged.",
        check_stack=_service_exposure,
        kinds=frozenset(
            {SERVICE, NAMESPACE, INFERENCE_SERVICE, LLM_INFERENCE_SERVICE, *WORKLOAD_KINDS}
        ),
    ),
    Policy(
        name="istio-gateway-require-tls",
        description="Istio Gateway servers must encrypt: plain HTTP only with tls.httpsRedirect, "
        "no other clear-text protocol.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Serve HTTPS/TLS; on a port-80 HTTP server set tls.httpsRedirect: true (the "
        "automatic fix does).",
        catches="networking.istio.io Gateway servers with protocol HTTP/HTTP2/GRPC/GRPC-WEB and "
        "no tls.httpsRedirect: true, or any other non-TLS protocol (TCP, MONGO...).",
        check=_plaintext,
        kinds=frozenset({ISTIO_GATEWAY}),
        fix=_fix_redirect,
    ),
    Policy(
        name="istio-gateway-require-tls12",
        description="Gateway servers and the mesh TLS defaults must not allow TLS below 1.2.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Set tls.minProtocolVersion to TLSV1_2 or TLSV1_3 (or leave it unset: "
        "Istio's default is TLS 1.2) and never cap maxProtocolVersion below TLSV1_2.",
        catches="Gateway servers (and meshConfig.tlsDefaults) with minProtocolVersion TLS_AUTO, "
        "TLSV1_0 or TLSV1_1, or maxProtocolVersion TLSV1_0/TLSV1_1, or an unrecognised version.",
        check=_tls_version,
        kinds=frozenset({ISTIO_GATEWAY, MESH_CONFIG}),
        fix=_fix_tls_version,
    ),
    Policy(
        name="istio-gateway-forbid-tls-passthrough",
        description="Gateway servers must terminate TLS, not pass it through to backends.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Terminate TLS at the gateway (tls.mode SIMPLE or MUTUAL with a "
        "credentialName); exempt a deliberate passthrough gateway by namespace/name in config.",
        catches="networking.istio.io Gateway servers with tls.mode PASSTHROUGH (the gateway can "
        "check no token and apply no authorization). AUTO_PASSTHROUGH (east-west, mTLS end to "
        "end) is not flagged.",
        check=_passthrough,
        kinds=frozenset({ISTIO_GATEWAY}),
    ),
    Policy(
        name="gateway-api-listener-require-tls",
        description="Gateway API listeners should terminate TLS rather than accept clear text or "
        "pass TLS through.",
        severity=Severity.MEDIUM,
        level=Level.ADVISORY,
        remediation="Use HTTPS/TLS listeners with tls.mode Terminate; keep an HTTP listener only "
        "for an HTTPRoute that redirects to https.",
        catches="gateway.networking.k8s.io Gateway listeners with protocol HTTP, TCP or UDP, and "
        "TLS listeners in Passthrough mode (advisory: a redirecting HTTPRoute is not joined).",
        check=_gateway_api_listeners,
        kinds=frozenset({GATEWAY_API_GATEWAY}),
    ),
    Policy(
        name="service-avoid-external-ips",
        description="Services should not set externalIPs, which let their owner intercept "
        "traffic to those addresses cluster-wide.",
        severity=Severity.MEDIUM,
        level=Level.ADVISORY,
        remediation="Remove spec.externalIPs; publish through a LoadBalancer or the ingress "
        "gateway (model Services are judged by service-forbid-external-model-exposure).",
        catches="Any Service with spec.externalIPs (CVE-2020-8554).",
        check=_any_external_ips,
        kinds=frozenset({SERVICE}),
    ),
    Policy(
        name="istio-virtualservice-forbid-wildcard-hosts",
        description="VirtualServices should name their hosts instead of using wildcards.",
        severity=Severity.MEDIUM,
        level=Level.ADVISORY,
        remediation="List the exact hostnames the VirtualService serves.",
        catches="networking.istio.io VirtualService spec.hosts with a wildcard (`*`, "
        "`*.example.com`).",
        check=_wildcard_virtual_service,
        kinds=frozenset({VIRTUAL_SERVICE}),
    ),
    Policy(
        name="ingress-require-tls",
        description="Kubernetes Ingresses should serve every host over TLS.",
        severity=Severity.MEDIUM,
        level=Level.ADVISORY,
        remediation="Add spec.tls entries (with a certificate Secret) covering every rule host.",
        catches="networking.k8s.io Ingress without spec.tls, or with a rule host no tls entry "
        "covers.",
        check=_ingress_without_tls,
        kinds=frozenset({INGRESS}),
    ),
)

__all__ = ["POLICIES"]
