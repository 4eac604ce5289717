"""The preview side of the runtime guardrails: what the API server's admission policies enforce,
judged again in `pulumi preview`, under the same names.

aimesh installs ValidatingAdmissionPolicies (one invariant each) so that what never passes
through Pulumi (a model manager's kubectl, a controller's pods) cannot weaken zero trust either.
The same invariants are policies here, so a change that admission would reject is stopped in the
pull request already; the pack's policies with the same name as a guardrail are the mirror (some
live in `injection.py` and `workload.py`, where the pack had them first). A test evaluates both
on the same objects and demands the same verdict (tests/policy/test_guardrail_parity.py).

The pods judged are exactly those admission sees: a Pod, the template of every workload kind,
and every InferenceService component (predictor, transformer, explainer, each canary predictor,
and their workerSpecs), with KServe's rule that the component's labels and annotations win over
the InferenceService's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Final

from aimesh_policies.accessors import UNKNOWN, as_int, as_list, as_map, as_str, str_list
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    finding,
    unknown_finding,
)
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.meshlib import AUTHORIZATION_POLICY, NAMESPACE, model_namespaces, namespace_of
from aimesh_policies.pods import KSERVE_GROUP, POD_TEMPLATE_PATHS, PodView
from aimesh_policies.workload import meta_owner, meta_unknowns, pod_views

# The kinds admission guards: Pods, every workload template kind, InferenceServices.
GUARDED_KINDS: Final = frozenset(
    {("", "Pod"), *POD_TEMPLATE_PATHS, (KSERVE_GROUP, "InferenceService")}
) - {("argoproj.io", "Rollout")}
PROXY_CONTAINERS: Final = frozenset({"istio-proxy", "istio-init", "istio-validation"})
# Pod annotations (and the label) that replace or reconfigure the injected proxy or its template.
PROXY_OVERRIDE_ANNOTATIONS: Final = (
    "sidecar.istio.io/proxyImage",
    "sidecar.istio.io/bootstrapOverride",
    "sidecar.istio.io/userVolume",
    "sidecar.istio.io/userVolumeMount",
    "proxy.istio.io/config",
    "inject.istio.io/templates",
    "status.sidecar.istio.io/port",
    "sidecar.istio.io/capNetBindService",
    "sidecar.istio.io/nativeSidecar",
    "sidecar.istio.io/enableCoreDump",
)
PROXY_OVERRIDE_LABELS: Final = ("istio.io/rev",)
APPARMOR_ANNOTATION: Final = "container.apparmor.security.beta.kubernetes.io/"
MODEL_WORKLOAD_LABELS: Final = ("aimesh.io/model", "serving.kserve.io/inferenceservice")
WINDOW_LABEL: Final = "aimesh.io/window"
INJECTION_LABEL: Final = "istio-injection"
ENFORCE_LABEL: Final = "pod-security.kubernetes.io/enforce"


def guarded_pods(obj: K8sObject) -> list[PodView]:
    """The pods admission sees in `obj` (empty for kinds it does not guard)."""
    if obj.group_kind not in GUARDED_KINDS:
        return []
    return pod_views(obj)


def _name(container: Mapping[str, object], path: str) -> str:
    return as_str(container.get("name")) or path.rsplit(".", 1)[-1]


def _context(container: Mapping[str, object]) -> Mapping[str, object]:
    return as_map(container.get("securityContext"))


def _unknown_at(holder: object, path: str, keys: Sequence[str]) -> str | None:
    """The first of `holder`.keys[0].keys[1]... that is unknown at preview, as a field path."""
    current: object = holder
    where = path
    for key in keys:
        current = as_map(current).get(key) if current is not UNKNOWN else current
        where = f"{where}.{key}"
        if current is UNKNOWN:
            return where
    return None


# --- proxy overrides ------------------------------------------------------------------------------


def _decides_proxy(key: str) -> bool:
    return key in PROXY_OVERRIDE_ANNOTATIONS or key in PROXY_OVERRIDE_LABELS


def _proxy_overrides(obj: K8sObject, ctx: Context) -> Iterator[Finding]:
    if obj.group_kind in GUARDED_KINDS:
        for where in meta_unknowns(obj, _decides_proxy):
            yield unknown_finding(obj, where)
    for pod in guarded_pods(obj):
        for key in PROXY_OVERRIDE_ANNOTATIONS:
            if key in pod.annotations:
                yield finding(
                    obj,
                    f"{meta_owner(obj, pod.meta_path, 'annotations', key)}.annotations.{key}",
                    "reconfigures the injected proxy (its image, template, bootstrap, "
                    "ProxyConfig, volumes, status port or sidecar mode): the mesh's injector "
                    "alone decides what the proxy is",
                    f"remove the {key} annotation",
                )
        for key in PROXY_OVERRIDE_LABELS:
            if key in pod.labels:
                yield finding(
                    obj,
                    f"{meta_owner(obj, pod.meta_path, 'labels', key)}.labels.{key}",
                    "chooses another injector revision than the namespace's",
                    f"remove the {key} label",
                )
        if obj.is_("", "Pod"):
            continue  # an injected Pod carries Istio's containers by design
        for path, container in pod.containers:
            if container.get("name") is UNKNOWN:
                yield unknown_finding(obj, f"{path}.name")
            elif as_str(container.get("name")) in PROXY_CONTAINERS:
                yield finding(
                    obj,
                    f"{path}.name",
                    f"declares Istio's own container '{as_str(container.get('name'))}': the "
                    "injector merges it into the proxy it injects (another image, command or "
                    "security context)",
                    "remove the container; the injector adds the proxy",
                )


# --- container and pod security ------------------------------------------------------------------


def _added_capabilities(obj: K8sObject, ctx: Context) -> Iterator[Finding]:
    for pod in guarded_pods(obj):
        for path, container in pod.containers:
            unknown = _unknown_at(container, path, ("securityContext", "capabilities", "add"))
            add_value = as_map(_context(container).get("capabilities")).get("add")
            if unknown is None and any(item is UNKNOWN for item in as_list(add_value)):
                unknown = f"{path}.securityContext.capabilities.add"
            if unknown is not None:
                yield unknown_finding(obj, unknown)
            add = str_list(add_value)
            if add:
                yield finding(
                    obj,
                    f"{path}.securityContext.capabilities.add",
                    f"container '{_name(container, path)}' adds {', '.join(add)}: with Istio's "
                    "CNI node agent no pod needs a capability",
                    "remove capabilities.add (and drop ALL)",
                )


def _container_field(
    key: str, is_bad: Callable[[object], bool], problem: str, fix: str
) -> Callable[[K8sObject, Context], Iterator[Finding]]:
    def check(obj: K8sObject, ctx: Context) -> Iterator[Finding]:
        for pod in guarded_pods(obj):
            for path, container in pod.containers:
                unknown = _unknown_at(container, path, ("securityContext", key))
                if unknown is not None:
                    yield unknown_finding(obj, unknown)
                    continue
                value = _context(container).get(key)
                if value is not None and is_bad(value):
                    yield finding(
                        obj,
                        f"{path}.securityContext.{key}",
                        f"container '{_name(container, path)}' {problem}",
                        fix,
                    )

    return check


def _host_path(obj: K8sObject, ctx: Context) -> Iterator[Finding]:
    for pod in guarded_pods(obj):
        volumes = pod.spec.get("volumes")
        if volumes is UNKNOWN:
            yield unknown_finding(obj, f"{pod.path}.volumes")
        for i, volume in enumerate(as_list(volumes)):
            if volume is UNKNOWN:
                yield unknown_finding(obj, f"{pod.path}.volumes[{i}]")
            if isinstance(volume, Mapping) and "hostPath" in volume:
                yield finding(
                    obj,
                    f"{pod.path}.volumes[{i}].hostPath",
                    f"volume '{as_str(volume.get('name')) or i}' mounts a path of the node",
                    "use a PersistentVolumeClaim, emptyDir, ConfigMap or Secret",
                )


def _host_ports(obj: K8sObject, ctx: Context) -> Iterator[Finding]:
    for pod in guarded_pods(obj):
        for path, container in pod.containers:
            ports = container.get("ports")
            if ports is UNKNOWN:
                yield unknown_finding(obj, f"{path}.ports")
            for j, port in enumerate(as_list(ports)):
                if port is UNKNOWN or as_map(port).get("hostPort") is UNKNOWN:
                    yield unknown_finding(obj, f"{path}.ports[{j}]")
                elif isinstance(port, Mapping) and as_int(port.get("hostPort")):
                    yield finding(
                        obj,
                        f"{path}.ports[{j}].hostPort",
                        f"container '{_name(container, path)}' binds a port of the node",
                        "remove hostPort; expose the port through a Service and the mesh",
                    )


def _profile_unconfined(holder: Mapping[str, object], key: str) -> bool:
    return as_str(as_map(as_map(holder.get("securityContext")).get(key)).get("type")) == (
        "Unconfined"
    )


def _unconfined(key: str, what: str) -> Callable[[K8sObject, Context], Iterator[Finding]]:
    def check(obj: K8sObject, ctx: Context) -> Iterator[Finding]:
        if key == "appArmorProfile" and obj.group_kind in GUARDED_KINDS:
            for where in meta_unknowns(obj, lambda name: name.startswith(APPARMOR_ANNOTATION)):
                yield unknown_finding(obj, where)
        for pod in guarded_pods(obj):
            holders = [(pod.path, pod.spec), *pod.containers]
            for path, holder in holders:
                unknown = _unknown_at(holder, path, ("securityContext", key, "type"))
                if unknown is not None:
                    yield unknown_finding(obj, unknown)
            if _profile_unconfined(pod.spec, key):
                yield finding(
                    obj,
                    f"{pod.path}.securityContext.{key}.type",
                    f"runs every container without {what}",
                    "set type RuntimeDefault (or Localhost)",
                )
            for path, container in pod.containers:
                if _profile_unconfined(container, key):
                    yield finding(
                        obj,
                        f"{path}.securityContext.{key}.type",
                        f"runs container '{_name(container, path)}' without {what}",
                        "set type RuntimeDefault (or Localhost)",
                    )
            if key != "appArmorProfile":
                continue
            for name, value in pod.annotations.items():
                if name.startswith(APPARMOR_ANNOTATION) and value == "unconfined":
                    yield finding(
                        obj,
                        f"{meta_owner(obj, pod.meta_path, 'annotations', name)}.annotations.{name}",
                        f"runs container '{name[len(APPARMOR_ANNOTATION) :]}' without {what}",
                        "remove the annotation (or use runtime/default)",
                    )

    return check


# --- identities -----------------------------------------------------------------------------------


def _service_accounts(
    objs: Sequence[K8sObject],
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(declared, bound): service accounts of the stack, and those some (Cluster)RoleBinding of
    the stack grants rights to."""
    declared: set[tuple[str, str]] = set()
    bound: set[tuple[str, str]] = set()
    for obj in objs:
        if obj.is_("", "ServiceAccount"):
            declared.add((namespace_of(obj), obj.name))
        elif obj.is_("rbac.authorization.k8s.io", "RoleBinding", "ClusterRoleBinding"):
            subjects = obj.body.get("subjects")
            if subjects is UNKNOWN:
                bound.add(("*", "*"))  # unknown at preview: may name any service account
            for subject in as_list(subjects):
                kind, name, ns = (as_map(subject).get(k) for k in ("kind", "name", "namespace"))
                if UNKNOWN in (subject, kind, name, ns):
                    bound.add((namespace_of(obj) if ns is not UNKNOWN else "*", "*"))
                elif as_str(kind) == "ServiceAccount":
                    bound.add((as_str(ns) or namespace_of(obj), as_str(name) or ""))
    return declared, bound


def _own_service_account(objs: Sequence[K8sObject], ctx: Context) -> Iterator[Finding]:
    declared, bound = _service_accounts(objs)

    def uncertain(namespace: str) -> bool:
        # A binding whose subjects are unknown at preview may grant this namespace's accounts.
        return any(ns in (namespace, "*") for ns, name in bound if name == "*")

    namespaces = model_namespaces(objs, ctx)
    for obj in objs:
        if namespace_of(obj) not in namespaces:
            continue
        for pod in guarded_pods(obj):
            model_pod = obj.group == KSERVE_GROUP or any(
                label in pod.labels for label in MODEL_WORKLOAD_LABELS
            )
            where = f"{pod.path}.serviceAccountName"
            if pod.spec.get("serviceAccountName") is UNKNOWN:
                yield unknown_finding(obj, where)
                continue
            account = as_str(pod.spec.get("serviceAccountName")) or ""
            key = (namespace_of(obj), account)
            if not account or account == "default":
                problem = "runs as the namespace's `default` service account"
            elif key not in declared:
                problem = f"runs as '{account}', which this stack does not declare"
            elif model_pod and key not in bound and uncertain(key[0]):
                yield unknown_finding(obj, where)
                continue
            elif model_pod and key in bound:
                problem = (
                    f"runs a model as '{account}', an identity that holds Kubernetes API rights "
                    "(e.g. a window controller's)"
                )
            else:
                continue
            yield finding(
                obj,
                where,
                problem,
                "set serviceAccountName to the model's own service account (no API rights)",
            )


def _window_created_closed(obj: K8sObject, ctx: Context) -> Iterator[Finding]:
    labels = obj.get("metadata.labels")
    if WINDOW_LABEL not in obj.labels:
        if labels is UNKNOWN or as_map(labels).get(WINDOW_LABEL) is UNKNOWN:
            yield unknown_finding(obj, "metadata.labels")
        return
    for path in ("spec", "spec.rules", "spec.action", "spec.selector", "spec.selector.matchLabels"):
        if obj.get(path) is UNKNOWN:
            yield unknown_finding(obj, path)
            return
    if "rules" in obj.spec or as_str(obj.spec.get("action")) not in (None, "ALLOW"):
        yield finding(
            obj,
            "spec",
            "a window policy is registered closed (ALLOW, no rules); only its window "
            "controller opens it, within the two shapes the admission guardrail allows",
            "remove spec.rules (and keep action ALLOW)",
        )
    if not as_map(obj.spec.get("selector")).get("matchLabels"):
        yield finding(
            obj,
            "spec.selector",
            "a window policy without a workload selector would open the whole namespace",
            "select the model's pods",
        )


def _namespace_labels(obj: K8sObject, ctx: Context) -> Iterator[Finding]:
    if not (ctx.namespace_labels_select(obj.labels) or obj.name in ctx.model_namespaces):
        return
    if obj.patch and not {INJECTION_LABEL, ENFORCE_LABEL} & set(obj.labels):
        return
    for key, want in ((INJECTION_LABEL, "enabled"), (ENFORCE_LABEL, "restricted")):
        if obj.labels.get(key) != want:
            yield finding(
                obj,
                f"metadata.labels.{key}",
                f"a model namespace must carry {key}: {want}",
                f"label the namespace {key}: {want}",
            )


POLICIES: Final = (
    Policy(
        name="istio-workload-forbid-proxy-overrides",
        description="No workload replaces or reconfigures its injected proxy or declares "
        "Istio's containers itself.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Remove the proxy override annotations (proxyImage, bootstrapOverride, "
        "userVolume(Mount), proxy.istio.io/config, inject.istio.io/templates, "
        "status.sidecar.istio.io/port, capNetBindService, nativeSidecar, enableCoreDump), the "
        "istio.io/rev pod label and any istio-proxy/istio-init/istio-validation container.",
        catches="Those annotations and the label on Pods, workload templates and "
        "InferenceService components (their own or the InferenceService's); containers named "
        "istio-proxy, istio-init or istio-validation outside injected Pods.",
        check=_proxy_overrides,
        kinds=GUARDED_KINDS,
    ),
    Policy(
        name="workload-forbid-added-capabilities",
        description="No container adds Linux capabilities.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Remove securityContext.capabilities.add (and drop ALL); node agents that "
        "need capabilities are exempted by namespace/name in config.",
        catches="Any capabilities.add entry on any container of a Pod, workload template or "
        "InferenceService component.",
        check=_added_capabilities,
        kinds=GUARDED_KINDS,
    ),
    Policy(
        name="workload-forbid-privilege-escalation",
        description="No container allows privilege escalation.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Set securityContext.allowPrivilegeEscalation: false.",
        catches="allowPrivilegeEscalation: true on any container.",
        check=_container_field(
            "allowPrivilegeEscalation",
            lambda v: v is True,
            "allows privilege escalation (setuid binaries, no_new_privs off)",
            "set allowPrivilegeEscalation: false",
        ),
        kinds=GUARDED_KINDS,
    ),
    Policy(
        name="workload-forbid-host-path",
        description="No pod mounts a path of the node.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Use a PersistentVolumeClaim, emptyDir, ConfigMap or Secret; exempt node "
        "agents by namespace/name in config.",
        catches="spec.volumes[].hostPath on any pod carrier.",
        check=_host_path,
        kinds=GUARDED_KINDS,
    ),
    Policy(
        name="workload-forbid-host-ports",
        description="No container binds a port of the node.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Remove hostPort; expose the port through a Service and the mesh.",
        catches="containers[].ports[].hostPort on any pod carrier.",
        check=_host_ports,
        kinds=GUARDED_KINDS,
    ),
    Policy(
        name="workload-forbid-unmasked-proc-mount",
        description="No container unmasks /proc.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Remove securityContext.procMount (or set Default).",
        catches="securityContext.procMount other than Default on any container.",
        check=_container_field(
            "procMount",
            lambda v: v != "Default",
            "unmasks /proc (procMount Unmasked): kernel interfaces of the node become visible",
            "remove procMount (or set it to Default)",
        ),
        kinds=GUARDED_KINDS,
    ),
    Policy(
        name="workload-forbid-unconfined-seccomp",
        description="No pod or container runs without a seccomp profile.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Set seccompProfile.type RuntimeDefault (or Localhost).",
        catches="seccompProfile.type Unconfined at pod or container level.",
        check=_unconfined("seccompProfile", "a seccomp profile"),
        kinds=GUARDED_KINDS,
    ),
    Policy(
        name="workload-forbid-unconfined-apparmor",
        description="No pod or container runs without an AppArmor profile.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Remove appArmorProfile type Unconfined and the "
        "container.apparmor.security.beta.kubernetes.io/* unconfined annotations.",
        catches="appArmorProfile.type Unconfined at pod or container level, and the beta "
        "AppArmor annotation set to unconfined.",
        check=_unconfined("appArmorProfile", "an AppArmor profile"),
        kinds=GUARDED_KINDS,
    ),
    Policy(
        name="model-workload-require-own-service-account",
        description="Workloads in model namespaces run as an identity the stack declares; "
        "model workloads as one without Kubernetes API rights.",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation="Set serviceAccountName to the model's own service account (declared in the "
        "stack, bound to no Role).",
        catches="A pod carrier in a model namespace with no serviceAccountName, `default`, or "
        "one the stack does not declare; an InferenceService component or model-labelled pod "
        "running as a service account that a (Cluster)RoleBinding of the stack grants rights "
        "to, such as a window controller's.",
        check_stack=_own_service_account,
        kinds=GUARDED_KINDS
        | {("", "ServiceAccount"), ("", "Namespace")}
        | {("rbac.authorization.k8s.io", k) for k in ("RoleBinding", "ClusterRoleBinding")},
    ),
    Policy(
        name="window-controller-only-switches-its-window",
        description="A batch window policy is registered closed; only its controller opens it, "
        "and only to the exact open shape (enforced at admission).",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Register window policies (label aimesh.io/window) as ALLOW with the "
        "model's selector and no rules.",
        catches="An AuthorizationPolicy labelled aimesh.io/window with rules, another action, "
        "or no workload selector.",
        check=_window_created_closed,
        kinds=frozenset({AUTHORIZATION_POLICY}),
    ),
    Policy(
        name="namespace-keep-security-labels",
        description="A model namespace is in the mesh and enforces Pod Security restricted.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Label model namespaces istio-injection: enabled and "
        "pod-security.kubernetes.io/enforce: restricted.",
        catches="A Namespace matching modelNamespaceLabels (or in modelNamespaces) without "
        "istio-injection: enabled or without pod-security.kubernetes.io/enforce: restricted.",
        check=_namespace_labels,
        kinds=frozenset({NAMESPACE}),
        critical=("metadata.labels",),
    ),
)

__all__ = ["GUARDED_KINDS", "POLICIES", "guarded_pods"]
