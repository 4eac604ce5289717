"""Workload escape: pods that can leave the mesh's control or the node's isolation.

A sidecar only protects what its iptables rules capture. A container that is privileged, holds
NET_ADMIN / NET_RAW, shares the node's network, PID or IPC namespace, or runs as the proxy's own
UID or GID (1337: Istio's capture rules `RETURN` traffic owned by that user or group) can rewrite
or bypass capture and talk to anything unauthenticated. These rules judge every place a pod can
be described: Pods, every workload template kind, KServe InferenceService components (their
containers and the model-format shorthand containers that carry a securityContext), serving
runtimes and LLMInferenceService templates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from aimesh_policies.accessors import (
    UNKNOWN,
    as_bool,
    as_int,
    as_list,
    as_map,
    as_str,
    get,
    str_list,
    str_map,
)
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
from aimesh_policies.k8s_object import HELM_VALUES, K8sObject
from aimesh_policies.objects import ISTIOD_CHARTS
from aimesh_policies.pods import (
    ISVC_COMPONENTS,
    ISVC_CONTAINER_KEYS,
    KSERVE_GROUP,
    POD_TEMPLATE_PATHS,
    PodView,
    pods,
)

# The Envoy sidecar's UID and GID: Istio's iptables `RETURN` packets whose owner is this user or
# this group, so a workload running as either escapes outbound capture entirely.
PROXY_UID: Final = 1337
# istio-validation replaces istio-init when Istio's CNI node agent does the redirection.
PROXY_CONTAINERS: Final = frozenset({"istio-proxy", "istio-init", "istio-validation"})
# Istio writes this annotation on every Pod it injects.
INJECTED: Final = "sidecar.istio.io/status"
# KServe runs its storage initializer as this UID when the annotation is set (meant for Istio's
# CNI with DNS capture): set to 1337, the model download leaves the sidecar's capture.
STORAGE_INITIALIZER_UID: Final = "serving.kserve.io/storage-initializer-uid"
# Capabilities that let a container rewrite the pod's iptables or forge packets around the proxy
# (ALL includes both). Kubernetes accepts names with or without the CAP_ prefix, any case.
ESCAPE_CAPABILITIES: Final = frozenset({"NET_ADMIN", "NET_RAW", "ALL"})
HOST_NAMESPACE_FIELDS: Final = ("hostNetwork", "hostPID", "hostIPC")
# Predictor keys that are containers of their own (the generic `model` and the model formats).
MODEL_FORMAT_KEYS: Final = frozenset(
    {
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
    }
)

WORKLOAD_KINDS: Final = frozenset(
    {
        ("", "Pod"),
        *POD_TEMPLATE_PATHS,
        (KSERVE_GROUP, "InferenceService"),
        (KSERVE_GROUP, "LLMInferenceService"),
        (KSERVE_GROUP, "LLMInferenceServiceConfig"),
        (KSERVE_GROUP, "ServingRuntime"),
        (KSERVE_GROUP, "ClusterServingRuntime"),
    }
)


# --- where the pods are ------------------------------------------------------------------------


def _containers_at(spec: Mapping[str, Any], at: str) -> list[tuple[str, Mapping[str, Any]]]:
    found: list[tuple[str, Mapping[str, Any]]] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, item in enumerate(as_list(spec.get(key))):
            if isinstance(item, Mapping):
                found.append((f"{at}.{key}[{i}]", item))
    return found


def _view(obj: K8sObject, spec: Mapping[str, Any], at: str) -> PodView:
    return PodView(
        path=at,
        meta_path=at,
        labels={**obj.labels, **str_map(spec.get("labels"))},
        annotations={**obj.annotations, **str_map(spec.get("annotations"))},
        spec=spec,
        containers=tuple(_containers_at(spec, at)),
    )


def pod_views(obj: K8sObject) -> list[PodView]:
    """Every pod (template) of `obj`: the shared `objects.pods` (serving runtimes included:
    their containers become the predictor pod's), plus InferenceService canary predictors."""
    views = pods(obj)
    # (Cluster)ServingRuntimes (spec and workerSpec) are among `pods` already.
    if obj.is_(KSERVE_GROUP, "InferenceService"):
        for i, item in enumerate(as_list(obj.spec.get("canary"))):
            predictor = as_map(item).get("predictor") if isinstance(item, Mapping) else None
            if isinstance(predictor, Mapping):
                at = f"spec.canary[{i}].predictor"
                view = _view(obj, predictor, at)
                shorthand = [
                    (f"{at}.{key}", value)
                    for key, value in predictor.items()
                    if isinstance(value, Mapping)
                    and (key in MODEL_FORMAT_KEYS or "securityContext" in value)
                ]
                views.append(
                    PodView(
                        view.path,
                        view.meta_path,
                        view.labels,
                        view.annotations,
                        view.spec,
                        (*view.containers, *shorthand),
                    )
                )
    return views


def at(value: Any, path: str) -> Any:
    """`value` at a field path with list indices ("spec.canary[0].predictor"): None when a step
    is missing, UNKNOWN when a step is unknown (unknowns propagate)."""
    current = value
    for part in path.split(".") if path else ():
        name, _, index = part.partition("[")
        steps: list[str | int] = [name] if name else []
        if index:
            steps.append(as_int(index.rstrip("]")) or 0)
        for step in steps:
            if current is UNKNOWN:
                return UNKNOWN
            if isinstance(step, int):
                items = current if isinstance(current, list) else []
                current = items[step] if step < len(items) else None
            elif isinstance(current, Mapping):
                current = current.get(step)
            else:
                return None
    return current


def meta_unknowns(obj: K8sObject, decides: Callable[[str], bool]) -> list[str]:
    """Unknown labels/annotations of `obj`'s pods that could decide a verdict: a whole metadata
    holder or map, or the value of a key `decides` accepts (a computed unrelated label does not
    matter). KServe copies the InferenceService's own onto its pods, so those count too."""
    metas = {view.meta_path for view in pod_views(obj)}
    if obj.group == KSERVE_GROUP:
        metas.add("metadata")
    found: list[str] = []
    for meta in sorted(metas):
        owner = at(obj.body, meta)
        if owner is UNKNOWN:
            found.append(meta)
            continue
        for kind in ("labels", "annotations"):
            value = get(owner, kind)
            if value is UNKNOWN:
                found.append(f"{meta}.{kind}")
            elif isinstance(value, Mapping):
                found += [
                    f"{meta}.{kind}.{k}"
                    for k, v in value.items()
                    if v is UNKNOWN and isinstance(k, str) and decides(k)
                ]
    return found


def meta_owner(obj: K8sObject, meta_path: str, kind: str, key: str) -> str:
    """Where a pod's label/annotation (`kind`) was set: the component, or (KServe copies them)
    the InferenceService's own metadata."""
    if meta_path != "metadata" and key in as_map(get(at(obj.body, meta_path), kind)):
        return meta_path
    if obj.group == KSERVE_GROUP and key in as_map(get(obj.body, f"metadata.{kind}")):
        return "metadata"
    return meta_path


def _container_name(container: Mapping[str, Any], path: str) -> str:
    name = as_str(container.get("name"))
    if name:
        return name
    # KServe shorthand containers ("spec.predictor.sklearn") carry no name: use the key.
    return path.rsplit(".", 1)[-1]


def _is_proxy(obj: K8sObject, ctx: Context, container: Mapping[str, Any]) -> bool:
    """Istio's own proxy containers, where they legitimately run as 1337 with NET_ADMIN: in a
    control-plane or gateway namespace, wherever the injector replaces the container
    (`image: auto`, the gateway chart's idiom: a pod the injector skipped never starts), and in
    a Pod the injector has processed (what admission sees)."""
    if as_str(container.get("name")) not in PROXY_CONTAINERS:
        return False
    namespace = obj.namespace
    if ctx.is_control_plane(namespace) or namespace in ctx.gateway_namespaces:
        return True
    if obj.is_("", "Pod") and INJECTED in obj.annotations:
        return True
    return as_str(container.get("image")) == "auto"


def _is_on(value: Any) -> bool:
    return as_bool(value) is True


def _escaping_capabilities(value: Any) -> list[str]:
    found = []
    for cap in str_list(value):
        name = cap.strip().upper()
        name = name.removeprefix("CAP_")
        if name in ESCAPE_CAPABILITIES:
            found.append(cap)
    return found


# --- checks -------------------------------------------------------------------------------------

PodCheck = Callable[[K8sObject, Context, PodView], Iterator[Finding]]


def _unknown_structure(obj: K8sObject) -> list[str]:
    """Paths where the pod structure itself (template, pod spec, container lists or a whole
    container) is unknown at preview: nothing under them can be judged."""
    holders: list[str] = []
    template = POD_TEMPLATE_PATHS.get(obj.group_kind)
    if template is not None:
        holders += [template, f"{template}.spec"]
    elif obj.is_("", "Pod"):
        holders.append("spec")
    elif obj.group == KSERVE_GROUP:
        holders += ["spec", *(f"spec.{c}" for c in ("predictor", "transformer", "explainer"))]
        holders += ["spec.template", "spec.worker", "spec.prefill", "spec.workerSpec"]
        holders += ["spec.prefill.template", "spec.prefill.worker"]
        for component in ISVC_COMPONENTS:
            # An unknown workerSpec or model-format container hides its pod fields.
            keys = ("workerSpec", *ISVC_CONTAINER_KEYS)
            holders += [f"spec.{component}.{key}" for key in keys]
    if obj.is_(KSERVE_GROUP, "InferenceService"):
        # Canary predictors are pods of their own.
        holders.append("spec.canary")
        for i, _ in enumerate(as_list(obj.spec.get("canary"))):
            holders += [f"spec.canary[{i}]", f"spec.canary[{i}].predictor"]
            holders += [f"spec.canary[{i}].predictor.{key}" for key in MODEL_FORMAT_KEYS]
    found = [path for path in holders if at(obj.body, path) is UNKNOWN]
    for view in pod_views(obj):
        for key in ("initContainers", "containers", "ephemeralContainers"):
            value = view.spec.get(key)
            if value is UNKNOWN:
                found.append(f"{view.path}.{key}")
            found += [
                f"{view.path}.{key}[{i}]" for i, c in enumerate(as_list(value)) if c is UNKNOWN
            ]
    return found


def _each_pod(pod_check: PodCheck) -> Callable[[K8sObject, Context], list[Finding]]:
    def check(obj: K8sObject, ctx: Context) -> list[Finding]:
        found = [unknown_finding(obj, path) for path in _unknown_structure(obj)]
        for view in pod_views(obj):
            found.extend(pod_check(obj, ctx, view))
        return found

    return check


def _privileged(obj: K8sObject, ctx: Context, view: PodView) -> Iterator[Finding]:
    for path, container in view.containers:
        context = container.get("securityContext")
        value = as_map(context).get("privileged")
        where = f"{path}.securityContext.privileged"
        if context is UNKNOWN or value is UNKNOWN:
            yield unknown_finding(obj, where if value is UNKNOWN else f"{path}.securityContext")
        elif _is_on(value):
            yield finding(
                obj,
                where,
                f"container '{_container_name(container, path)}' runs privileged: it can rewrite "
                "the pod's iptables and bypass the sidecar",
                "set privileged: false (or remove it); grant the one capability the workload "
                "really needs instead",
            )


def _capabilities(obj: K8sObject, ctx: Context, view: PodView) -> Iterator[Finding]:
    for path, container in view.containers:
        if _is_proxy(obj, ctx, container):
            continue
        context = as_map(container.get("securityContext"))
        caps = context.get("capabilities")
        add = as_map(caps).get("add")
        where = f"{path}.securityContext.capabilities.add"
        if container.get("securityContext") is UNKNOWN or caps is UNKNOWN or add is UNKNOWN:
            yield unknown_finding(obj, where)
            continue
        if any(item is UNKNOWN for item in as_list(add)):
            yield unknown_finding(obj, where)
        bad = _escaping_capabilities(add)
        if bad:
            yield finding(
                obj,
                where,
                f"container '{_container_name(container, path)}' adds {', '.join(bad)}: it can "
                "rewrite the pod's traffic capture or forge packets around the sidecar",
                f"remove {', '.join(bad)} from capabilities.add (and drop ALL); traffic "
                "redirection is the job of istio-init / istio-cni, not the application",
            )


def _host_namespaces(obj: K8sObject, ctx: Context, view: PodView) -> Iterator[Finding]:
    for key in HOST_NAMESPACE_FIELDS:
        value = view.spec.get(key)
        where = f"{view.path}.{key}"
        if value is UNKNOWN:
            yield unknown_finding(obj, where)
        elif _is_on(value):
            what = {
                "hostNetwork": "the node's network: no sidecar captures its traffic",
                "hostPID": "the node's process table: it can inspect or signal other pods' "
                "processes, the proxy's included",
                "hostIPC": "the node's IPC namespace: it can read other pods' shared memory",
            }[key]
            yield finding(obj, where, f"the pod shares {what}", f"remove {key} (or set it false)")


def _uid_gid(value: Any) -> int | None:
    return as_int(value)


def _proxy_identity(obj: K8sObject, ctx: Context, view: PodView) -> Iterator[Finding]:
    pod_context = view.spec.get("securityContext")
    pod_values = as_map(pod_context)
    pod_path = f"{view.path}.securityContext"
    if pod_context is UNKNOWN:
        yield unknown_finding(obj, pod_path)
    for key in ("runAsUser", "runAsGroup"):
        pod_value = pod_values.get(key)
        if pod_value is UNKNOWN:
            yield unknown_finding(obj, f"{pod_path}.{key}")
        inheritors: list[str] = []
        for path, container in view.containers:
            context = container.get("securityContext")
            own = as_map(context).get(key)
            where = f"{path}.securityContext.{key}"
            if _is_proxy(obj, ctx, container):
                continue
            if context is UNKNOWN or own is UNKNOWN:
                yield unknown_finding(obj, where if own is UNKNOWN else f"{path}.securityContext")
                continue
            if own is None:
                inheritors.append(_container_name(container, path))
            elif _uid_gid(own) == PROXY_UID:
                yield finding(
                    obj,
                    where,
                    f"container '{_container_name(container, path)}' runs with {key} 1337, the "
                    "sidecar proxy's identity: Istio does not capture its traffic",
                    f"run it as another {('user' if key == 'runAsUser' else 'group')} "
                    "(any non-root ID but 1337)",
                )
        only_proxies = bool(view.containers) and not inheritors
        if _uid_gid(pod_value) == PROXY_UID and not only_proxies:
            who = ", ".join(f"'{n}'" for n in inheritors) or "every container"
            yield finding(
                obj,
                f"{pod_path}.{key}",
                f"the pod runs {who} with {key} 1337, the sidecar proxy's identity: Istio does "
                "not capture their traffic",
                f"set {key} to another non-root ID at pod level",
            )
    uid = view.annotations.get(STORAGE_INITIALIZER_UID)
    if view.meta_path == view.path:  # once per pod (a workerSpec shares its component's meta)
        for where in meta_unknowns(obj, lambda key: key == STORAGE_INITIALIZER_UID):
            if where.startswith((view.meta_path, "metadata")):
                yield unknown_finding(obj, where)
    if uid is not None and uid == str(PROXY_UID):
        yield finding(
            obj,
            f"{meta_owner(obj, view.meta_path, 'annotations', STORAGE_INITIALIZER_UID)}"
            f".annotations.{STORAGE_INITIALIZER_UID}",
            "runs KServe's storage initializer as 1337, the sidecar proxy's identity: the model "
            "download bypasses the sidecar (and egress control)",
            f"remove the {STORAGE_INITIALIZER_UID} annotation",
        )


def _fixer(
    *, privileged: bool = False, capabilities: bool = False, host: bool = False
) -> Callable[[K8sObject], Mapping[str, Any] | None]:
    """A fix for plain manifests that turns off privileged, drops the escaping capabilities or
    turns off the host namespaces (each policy fixes only what it flags)."""

    def fix(obj: K8sObject) -> Mapping[str, Any] | None:
        manifest = as_manifest(obj)
        changed = False
        for view in pod_views(obj):
            spec = _resolve(manifest, view.path)
            if spec is None:
                continue
            for key in HOST_NAMESPACE_FIELDS if host else ():
                if _is_on(spec.get(key)):
                    spec[key] = False
                    changed = True
            for path, _ in view.containers:
                container = _resolve(manifest, path)
                context = container.get("securityContext") if container is not None else None
                if not isinstance(context, dict):
                    continue
                if privileged and _is_on(context.get("privileged")):
                    context["privileged"] = False
                    changed = True
                caps = context.get("capabilities")
                add = caps.get("add") if isinstance(caps, dict) else None
                if capabilities and isinstance(caps, dict) and _escaping_capabilities(add):
                    caps["add"] = [c for c in as_list(add) if not _escaping_capabilities([c])]
                    changed = True
        return manifest if changed else None

    return fix


def _resolve(root: Any, path: str) -> dict[str, Any] | None:
    """The mutable dict at a field path like "spec.template.spec.containers[0]"; None if absent."""
    current = root
    for part in path.split("."):
        name, _, index = part.partition("[")
        if name:
            current = current.get(name) if isinstance(current, dict) else None
        if index:
            i = as_int(index.rstrip("]"))
            items = current if isinstance(current, list) else []
            current = items[i] if i is not None and 0 <= i < len(items) else None
        if current is None:
            return None
    return current if isinstance(current, dict) else None


def _is_model_pod(obj: K8sObject, ctx: Context, view: PodView) -> bool:
    return obj.group == KSERVE_GROUP or ctx.is_model_workload(view.labels)


def _keeps_net_raw(obj: K8sObject, ctx: Context, view: PodView) -> Iterator[Finding]:
    """Container runtimes grant NET_RAW unless it is dropped: a model pod should drop it."""
    if not _is_model_pod(obj, ctx, view):
        return
    for path, container in view.containers:
        if _is_proxy(obj, ctx, container):
            continue
        context = container.get("securityContext")
        drop = as_map(as_map(context).get("capabilities")).get("drop")
        if context is UNKNOWN or drop is UNKNOWN:
            continue  # advisory: an unknown here is not worth a "cannot verify"
        dropped = {c.strip().upper().removeprefix("CAP_") for c in str_list(drop)}
        if not dropped & {"NET_RAW", "ALL"}:
            yield finding(
                obj,
                f"{path}.securityContext.capabilities.drop",
                f"model container '{_container_name(container, path)}' keeps the runtime's "
                "default NET_RAW (raw sockets: packet crafting and spoofing inside the pod)",
                "add capabilities.drop: [ALL] (and add back only what the server needs)",
            )


def _host_path_and_ports(obj: K8sObject, ctx: Context, view: PodView) -> Iterator[Finding]:
    for i, volume in enumerate(as_list(view.spec.get("volumes"))):
        if isinstance(volume, Mapping) and volume.get("hostPath") is not None:
            host = as_str(as_map(volume.get("hostPath")).get("path")) or "?"
            yield finding(
                obj,
                f"{view.path}.volumes[{i}].hostPath",
                f"volume '{as_str(volume.get('name')) or i}' mounts the node's {host}: the pod "
                "reaches outside its sandbox (node files, other pods' data, the runtime socket)",
                "use a PersistentVolumeClaim, emptyDir, ConfigMap or Secret instead",
            )
    for path, container in view.containers:
        for j, port in enumerate(as_list(container.get("ports"))):
            if isinstance(port, Mapping) and as_int(port.get("hostPort")):
                yield finding(
                    obj,
                    f"{path}.ports[{j}].hostPort",
                    f"container '{_container_name(container, path)}' binds node port "
                    f"{show(port.get('hostPort'))}: reachable on the node's address, outside "
                    "Services and NetworkPolicies",
                    "remove hostPort; expose the port through a ClusterIP Service and the mesh",
                )


# --- Helm release values that template container security contexts ---------------------------

# (charts, values path of a container securityContext, what the containers are). A Helm release
# is judged by its values: the rendered pods never reach the policy.
# Charts whose values configure KServe's storage initializer (kserve.storage.*).
KSERVE_CHARTS: Final = frozenset(
    {"kserve", "kserve-resources", "kserve-llmisvc-resources", "kserve-localmodel-resources"}
)
CHART_CONTAINER_CONTEXTS: Final = (
    (frozenset({"gateway"}), "containerSecurityContext", "the gateway's proxy containers"),
    (
        KSERVE_CHARTS,
        "kserve.storage.containerSecurityContext",
        "the storage initializer in every model pod",
    ),
)


def _chart_contexts(obj: K8sObject) -> list[tuple[str, Any, str]]:
    chart = as_str(obj.get("chart")) or ""
    found: list[tuple[str, Any, str]] = []
    for charts, path, what in CHART_CONTAINER_CONTEXTS:
        if chart in charts:
            found.append((f"values.{path}", obj.get(f"values.{path}"), what))
    return found


def _chart_privileged(obj: K8sObject) -> Iterator[Finding]:
    if (as_str(obj.get("chart")) or "") in ISTIOD_CHARTS:
        value = obj.get("values.global.proxy.privileged")
        if value is UNKNOWN:
            yield unknown_finding(obj, "values.global.proxy.privileged")
        elif _is_on(value):
            yield finding(
                obj,
                "values.global.proxy.privileged",
                "makes every injected istio-proxy sidecar privileged, in every pod of the mesh",
                "set global.proxy.privileged: false (the default)",
            )
    for path, context, what in _chart_contexts(obj):
        value = as_map(context).get("privileged")
        if context is UNKNOWN or value is UNKNOWN:
            yield unknown_finding(obj, f"{path}.privileged")
        elif _is_on(value):
            yield finding(
                obj, f"{path}.privileged", f"runs {what} privileged", "set privileged: false"
            )


def _chart_capabilities(obj: K8sObject) -> Iterator[Finding]:
    for path, context, what in _chart_contexts(obj):
        capabilities = as_map(context).get("capabilities")
        add = as_map(capabilities).get("add")
        if UNKNOWN in (context, capabilities, add) or any(a is UNKNOWN for a in as_list(add)):
            yield unknown_finding(obj, f"{path}.capabilities.add")
            continue
        bad = _escaping_capabilities(add)
        if bad:
            yield finding(
                obj,
                f"{path}.capabilities.add",
                f"gives {what} {', '.join(bad)}",
                f"remove {', '.join(bad)} from capabilities.add",
            )


def _with_chart_values(
    pod_check: PodCheck, chart_check: Callable[[K8sObject], Iterator[Finding]]
) -> Callable[[K8sObject, Context], list[Finding]]:
    per_pod = _each_pod(pod_check)

    def check(obj: K8sObject, ctx: Context) -> list[Finding]:
        if obj.group_kind == HELM_VALUES:
            if obj.whole_unknown or obj.get("values") is UNKNOWN:
                return [unknown_finding(obj, "values")] if _chart_judged(obj) else []
            return list(chart_check(obj))
        return per_pod(obj, ctx)

    return check


def _chart_judged(obj: K8sObject) -> bool:
    chart = as_str(obj.get("chart")) or ""
    return chart in ISTIOD_CHARTS or any(
        chart in charts for charts, _, _ in CHART_CONTAINER_CONTEXTS
    )


_REMEDIATION_PREFIX = "Run the application unprivileged; "

POLICIES: Final = (
    Policy(
        name="workload-forbid-privileged",
        description="Containers of every pod, workload template and KServe component must not "
        "run privileged.",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation=_REMEDIATION_PREFIX + "set securityContext.privileged: false (the automatic "
        "fix does this) and grant only the specific capability a container needs.",
        catches="securityContext.privileged: true on any container, init container, ephemeral "
        "container or KServe model-format container (predictor/transformer/explainer, "
        "workerSpec, canary, ServingRuntime, LLMInferenceService templates); in Helm values: "
        "istiod global.proxy.privileged (every sidecar; also in the rendered "
        "istio-sidecar-injector ConfigMap), the gateway chart's "
        "containerSecurityContext and KServe's kserve.storage.containerSecurityContext.",
        check=_with_chart_values(_privileged, _chart_privileged),
        kinds=WORKLOAD_KINDS | {HELM_VALUES},
        fix=_fixer(privileged=True),
    ),
    Policy(
        name="workload-forbid-net-admin-capabilities",
        description="Containers must not add NET_ADMIN, NET_RAW or ALL capabilities, which let "
        "them rewrite or bypass the sidecar's traffic capture.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation=_REMEDIATION_PREFIX + "remove NET_ADMIN, NET_RAW and ALL from "
        "securityContext.capabilities.add (the automatic fix does this); istio-init or istio-cni "
        "sets up redirection, never the application.",
        catches="capabilities.add containing NET_ADMIN, NET_RAW or ALL (any case, with or "
        "without the CAP_ prefix) on any container; Istio's own istio-proxy/istio-init containers "
        "are exempt in control-plane and gateway namespaces and when their image is `auto`; "
        "in Helm values: the gateway chart's and KServe's storage-initializer container "
        "securityContext.",
        check=_with_chart_values(_capabilities, _chart_capabilities),
        kinds=WORKLOAD_KINDS | {HELM_VALUES},
        fix=_fixer(capabilities=True),
    ),
    Policy(
        name="workload-forbid-host-namespaces",
        description="Pods must not share the node's network, PID or IPC namespace.",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation="Remove hostNetwork, hostPID and hostIPC from the pod spec (the automatic fix "
        "sets them false); expose the workload through a Service and the mesh instead.",
        catches="hostNetwork / hostPID / hostIPC: true on a Pod, any workload template, an "
        "InferenceService component (and its workerSpec), a ServingRuntime or an "
        "LLMInferenceService template.",
        check=_each_pod(_host_namespaces),
        kinds=WORKLOAD_KINDS,
        fix=_fixer(host=True),
    ),
    Policy(
        name="workload-forbid-proxy-uid",
        description="Workloads must not run as the sidecar proxy's UID or GID 1337, whose "
        "traffic Istio never captures.",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation="Set runAsUser / runAsGroup to another non-root ID (pod and container "
        "level); only Istio's own proxy containers run as 1337.",
        catches="runAsUser or runAsGroup 1337 at container level, or at pod level when a "
        "container inherits it, and KServe's serving.kserve.io/storage-initializer-uid: 1337; "
        "Istio's istio-proxy/istio-init/istio-validation containers are exempt in control-plane "
        "and gateway namespaces, when their image is `auto` and in Pods Istio has injected.",
        check=_each_pod(_proxy_identity),
        kinds=WORKLOAD_KINDS,
    ),
    Policy(
        name="workload-model-pods-drop-net-raw",
        description="Model containers should drop NET_RAW (or ALL), which container runtimes "
        "grant by default.",
        severity=Severity.MEDIUM,
        level=Level.ADVISORY,
        remediation="Add securityContext.capabilities.drop: [ALL] to every model container.",
        catches="Containers of InferenceService components, serving runtimes, "
        "LLMInferenceServices and pods labelled as model workloads whose capabilities.drop has "
        "neither NET_RAW nor ALL.",
        check=_each_pod(_keeps_net_raw),
        kinds=WORKLOAD_KINDS,
    ),
    Policy(
        name="workload-avoid-host-path-and-host-ports",
        description="Pods should not mount node paths or bind node ports.",
        severity=Severity.MEDIUM,
        level=Level.ADVISORY,
        remediation="Replace hostPath volumes with PVCs/emptyDir/ConfigMaps and hostPort with a "
        "Service; exempt node agents (CNI, log shippers) by namespace/name in config.",
        catches="spec.volumes[].hostPath and containers[].ports[].hostPort in every pod carrier.",
        check=_each_pod(_host_path_and_ports),
        kinds=WORKLOAD_KINDS,
    ),
)

__all__ = ["POLICIES", "meta_owner", "meta_unknowns", "pod_views"]
