"""Runtime guardrails: ValidatingAdmissionPolicies that keep zero trust true for whatever reaches
the API server without passing through Pulumi (pure builders).

The policy pack judges what `pulumi preview` sees. A model manager (bound to the model's manager
Role) needs no Pulumi: with kubectl they create and edit InferenceServices, and KServe turns those
into Deployments and Pods. Each guardrail below is one invariant, enforced in-process by the API
server (CEL, no webhook to keep alive), `failurePolicy: Fail`, `validationActions: [Deny]`, with a
`messageExpression` that names the policy and the fix. Each has a CrossGuard policy of the same
name (policy-pack/aimesh_policies), so preview and admission agree; a test proves that both reject
the same objects (tests/policy/test_guardrail_parity.py).

Scope: bindings select namespaces by `kubernetes.io/metadata.name`, a label the API server sets
to the namespace's own name and refuses to change, so nobody can relabel a namespace out of scope.
Model namespaces get every guardrail; the platform's own namespaces whose workloads meet them get
the pod-escape ones (`PLATFORM_GUARDED`). The security labels of those namespaces are guarded too.

Why not the observability namespace or kube-system: kube-prometheus-stack's node exporter (host
network, PID and paths) and Istio's CNI node agent (kube-system: NET_ADMIN, host paths, AppArmor
unconfined) are node agents by design; docs/security.md lists the level of each namespace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aimesh.builders import access, bring_your_own, cel
from aimesh.builders.cluster import namespace as platform_namespace
from aimesh.builders.common import MODEL_LABEL, GatewayRef, metadata
from aimesh.builders.secure_model import serving, windows
from aimesh.namespaces import (
    CERT_MANAGER_NAMESPACE,
    INGRESS_NAMESPACE,
    ISTIO_NAMESPACE,
    KSERVE_NAMESPACE,
)
from aimesh.settings import Settings

API_VERSION = "admissionregistration.k8s.io/v1"
NAME_LABEL = "kubernetes.io/metadata.name"
# Platform namespaces whose own pods meet the pod-escape guardrails (no host access, no added
# capabilities, nothing privileged): they are guarded like model namespaces.
PLATFORM_GUARDED = (ISTIO_NAMESPACE, INGRESS_NAMESPACE, CERT_MANAGER_NAMESPACE, KSERVE_NAMESPACE)

# Where pods are described: (API group, resources). Every kind that carries a pod template, Pods
# themselves (the backstop: whoever creates them), and KServe's InferenceServices (what model
# managers write).
POD_CARRIERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("pods", "podtemplates", "replicationcontrollers")),
    ("apps", ("deployments", "replicasets", "statefulsets", "daemonsets")),
    ("batch", ("jobs", "cronjobs")),
    ("serving.kserve.io", ("inferenceservices",)),
)
# Where each kind keeps its pod template (metadata + spec), relative to `object`.
TEMPLATE_PATHS = {
    "CronJob": "object.spec.jobTemplate.spec.template",
    "PodTemplate": "object.template",
}
DEFAULT_TEMPLATE_PATH = "object.spec.template"
ISVC_COMPONENTS = ("predictor", "transformer", "explainer")
# InferenceService component keys that are containers of their own (the generic `model` and the
# model formats, as KServe v0.20's CRD names them).
ISVC_CONTAINER_KEYS = (
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

# Istio's own containers in an injected pod (`istio-validation` replaces `istio-init` with CNI).
PROXY_CONTAINERS = ("istio-proxy", "istio-init", "istio-validation")
PROXY_UID = 1337
INJECT = "sidecar.istio.io/inject"
DATAPLANE = "istio.io/dataplane-mode"
STATUS = "sidecar.istio.io/status"
CAPTURE = "traffic.sidecar.istio.io/"
INTERCEPTION = "sidecar.istio.io/interceptionMode"
# The injector always excludes its status port from inbound capture and writes it into the pod's
# annotation itself; excluding it explicitly changes nothing.
STATUS_PORT = "15020"
# Pod annotations (and the label) that replace or reconfigure the injected proxy or choose its
# template: another image, an Envoy bootstrap, user volumes, a ProxyConfig (xDS address, metadata
# that makes the proxy privileged), the gateway template (no traffic capture), a status port that
# moves the uncaptured port onto the application's, root for the proxy, a non-native sidecar
# (the storage initializer would run before the proxy), a privileged core-dump init container.
PROXY_OVERRIDE_ANNOTATIONS = (
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
PROXY_OVERRIDE_LABELS = ("istio.io/rev",)
# KServe runs its storage initializer with this UID when the annotation is set (meant for Istio
# CNI's DNS proxy): set to the proxy's UID it downloads outside the sidecar's capture.
STORAGE_INITIALIZER_UID = "serving.kserve.io/storage-initializer-uid"
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
MODEL_WORKLOAD_LABELS = (MODEL_LABEL, "serving.kserve.io/inferenceservice")

MODELS = "models"
PLATFORM = "platform"


@dataclass(frozen=True)
class Guardrail:
    """One invariant: a ValidatingAdmissionPolicy and its binding.

    `expression` is true when the request is allowed. `scope` says which namespaces the binding
    selects: "models" (model namespaces) or "platform" (model namespaces and PLATFORM_GUARDED)."""

    name: str
    invariant: str
    fix: str
    resources: tuple[tuple[str, tuple[str, ...]], ...]
    expression: str
    scope: str
    variables: tuple[tuple[str, str], ...] = ()
    operations: tuple[str, ...] = ("CREATE", "UPDATE")
    match_conditions: tuple[tuple[str, str], ...] = ()

    def all_variables(self) -> tuple[tuple[str, str], ...]:
        """The policy's variables: the shared `pods` view first when the expression uses it."""
        uses_pods = f"variables.{PODS_VARIABLE[0]}" in self.expression
        return ((PODS_VARIABLE,) if uses_pods else ()) + self.variables

    def message_expression(self) -> str:
        who = "request.kind.kind + ' ' + request.namespace + '/' + request.name"
        return f"{cel.string(self.name + ': ')} + {who} + {cel.string(': ' + self.fix)}"


# --- pods, as every carrier describes them -------------------------------------------------------


def _pod(spec: str, meta: str, outer: str) -> str:
    return cel.record(spec=spec, meta=meta, outer=outer)


def _template_pods(template: str) -> str:
    meta = f"(has({template}.metadata) ? {template}.metadata : dyn({{}}))"
    spec = f"(has({template}.spec) ? {template}.spec : dyn({{}}))"
    return f"({cel.present(template)} ? [{_pod(spec, meta, '{}')}] : [])"


def _isvc_pods() -> str:
    components = " + ".join(
        f"({cel.present('object.spec.' + c)} ? [object.spec.{c}] : [])" for c in ISVC_COMPONENTS
    )
    canary = (
        "(has(object.spec.canary) ? object.spec.canary.filter(k, has(k.predictor))"
        ".map(k, k.predictor) : [])"
    )
    workers = " + ".join(
        f"({cel.present('object.spec.' + c + '.workerSpec')} ? "
        f"[{_pod('object.spec.' + c + '.workerSpec', 'object.spec.' + c, 'object.metadata')}]"
        " : [])"
        for c in ISVC_COMPONENTS
    )
    return f"({components} + {canary}).map(c, {_pod('c', 'c', 'object.metadata')}) + {workers}"


PODS_VARIABLE = (
    "pods",
    "request.kind.kind == 'Pod' ? "
    + f"[{_pod('object.spec', 'object.metadata', '{}')}]"
    + " : request.kind.kind == 'InferenceService' ? "
    + _isvc_pods()
    + "".join(
        f" : request.kind.kind == {cel.string(kind)} ? {_template_pods(path)}"
        for kind, path in TEMPLATE_PATHS.items()
    )
    + f" : {_template_pods(DEFAULT_TEMPLATE_PATH)}",
)


def containers_of(spec: str) -> str:
    """Every container of a pod spec (init, regular, ephemeral and KServe's model-format
    containers), as one CEL list."""
    parts = [
        cel.or_empty_list(f"{spec}.{key}")
        for key in ("initContainers", "containers", "ephemeralContainers")
    ]
    parts += [f"(has({spec}.{key}) ? [{spec}.{key}] : [])" for key in ISVC_CONTAINER_KEYS]
    return "(" + " + ".join(parts) + ")"


def _has_meta(kind: str, key: str) -> str:
    """The pod `p` carries `key` in its labels/annotations (its own or the InferenceService's)."""
    return f"({cel.key_of('p.meta.' + kind, key)} || {cel.key_of('p.outer.' + kind, key)})"


def _meta_value(kind: str, key: str) -> str:
    """The value KServe/Kubernetes puts on the pod: the component's own wins over the
    InferenceService's (guard with `_has_meta`)."""
    own = cel.key_of("p.meta." + kind, key)
    return f"({own} ? p.meta.{kind}[{cel.string(key)}] : p.outer.{kind}[{cel.string(key)}])"


def _no_meta(kind: str, key: str, allowed_when: str | None = None) -> str:
    """Pod-level CEL: `key` is absent, or its value satisfies `allowed_when` (a CEL expression
    over `v`)."""
    if allowed_when is None:
        return f"!{_has_meta(kind, key)}"
    value = _meta_value(kind, key)
    return f"(!{_has_meta(kind, key)} || [{value}].all(v, {allowed_when}))"


def _meta_keys(kind: str) -> str:
    """Every key of the pod's labels/annotations (own and the InferenceService's)."""
    own = f"(has(p.meta.{kind}) ? p.meta.{kind} : dyn({{}}))"
    outer = f"(has(p.outer.{kind}) ? p.outer.{kind} : dyn({{}}))"
    return f"[{own}, {outer}]"


def _matches(value: str, regex: str) -> str:
    """`value.matches(regex)` (RE2 syntax, as both the API server and cel-python use)."""
    return f"{value}.matches({cel.string(regex)})"


def _all_pods(condition: str) -> str:
    return f"variables.pods.all(p, {condition})"


def _all_containers(condition: str) -> str:
    return _all_pods(f"{containers_of('p.spec')}.all(c, {condition})")


def _sc(field_path: str) -> str:
    """`c.securityContext.<field_path>` is set."""
    return cel.present(f"c.securityContext.{field_path}")


def _is_injected_proxy() -> str:
    """Container `c` of pod `p` is Istio's own: named like it and either the gateway chart's
    `image: auto` placeholder or in a Pod the injector has already processed."""
    names = cel.literal(list(PROXY_CONTAINERS))
    injected = f"(request.kind.kind == 'Pod' && {_has_meta('annotations', STATUS)})"
    auto = "(has(c.image) && c.image == 'auto')"
    return f"(has(c.name) && c.name in {names} && ({auto} || {injected}))"


# --- the invariants -----------------------------------------------------------------------------


def _pod_guardrails() -> list[Guardrail]:
    false_value = _matches("v", r"^\s*(?i:false)\s*$")
    none_value = _matches("v", r"^\s*(?i:none)\s*$")
    blank = _matches("v", r"^\s*$")
    everything = _matches("v", r"^\s*\*\s*$")
    # Exactly what the injector itself writes passes (the status port excluded, everything
    # included): injected Pods carry these annotations.
    status_port_only = _matches("v", rf"^\s*({STATUS_PORT}\s*)?$")
    capture_ok = " && ".join(
        [
            _no_meta("annotations", CAPTURE + "excludeInboundPorts", status_port_only),
            _no_meta("annotations", CAPTURE + "excludeOutboundPorts", blank),
            _no_meta("annotations", CAPTURE + "excludeOutboundIPRanges", blank),
            _no_meta("annotations", CAPTURE + "excludeInterfaces", blank),
            _no_meta("annotations", CAPTURE + "includeOutboundIPRanges", everything),
            _no_meta("annotations", CAPTURE + "includeInboundPorts", everything),
            _no_meta("annotations", INTERCEPTION, f"!{none_value}"),
        ]
    )
    overrides = " && ".join(
        [_no_meta("annotations", key) for key in PROXY_OVERRIDE_ANNOTATIONS]
        + [_no_meta("labels", key) for key in PROXY_OVERRIDE_LABELS]
    )
    customized = (
        f"(request.kind.kind == 'Pod' || {containers_of('p.spec')}"
        f".all(c, !has(c.name) || !(c.name in {cel.literal(list(PROXY_CONTAINERS))})))"
    )
    proxy_uid = _proxy_uid_expression()
    seccomp_pod = "!(has(p.spec.securityContext) && has(p.spec.securityContext.seccompProfile) && "
    seccomp_pod += "has(p.spec.securityContext.seccompProfile.type) && "
    seccomp_pod += "p.spec.securityContext.seccompProfile.type == 'Unconfined')"
    apparmor_pod = seccomp_pod.replace("seccompProfile", "appArmorProfile")
    apparmor_annotations = (
        f"{_meta_keys('annotations')}.all(m, m.all(k, !k.startsWith("
        f"{cel.string(APPARMOR_ANNOTATION)}) || m[k] != 'unconfined'))"
    )
    return [
        Guardrail(
            name="istio-workload-forbid-injection-opt-out",
            invariant="No workload opts out of sidecar injection or of the ambient mesh.",
            fix=f'remove {INJECT}: "false" and {DATAPLANE}: none; every model pod runs with its '
            "sidecar (mTLS, authorization, telemetry)",
            resources=POD_CARRIERS,
            scope=MODELS,
            expression=_all_pods(
                # The label wins over the annotation, as in Istio's injector.
                f"({_has_meta('labels', INJECT)} ? "
                f"![{_meta_value('labels', INJECT)}].all(v, {false_value}) : "
                f"{_no_meta('annotations', INJECT, '!' + false_value)}) && "
                f"{_no_meta('labels', DATAPLANE, '!' + none_value)}"
            ),
        ),
        Guardrail(
            name="istio-workload-forbid-capture-exclusions",
            invariant="No workload excludes ports, address ranges or interfaces from traffic "
            "capture.",
            fix="remove the traffic.sidecar.istio.io/* exclusions and interceptionMode NONE; all "
            "of a model pod's traffic goes through its sidecar",
            resources=POD_CARRIERS,
            scope=MODELS,
            expression=_all_pods(capture_ok),
        ),
        Guardrail(
            name="istio-workload-forbid-proxy-overrides",
            invariant="No workload replaces or reconfigures its injected proxy (image, template, "
            "bootstrap, ProxyConfig, volumes, status port, sidecar mode) or declares Istio's "
            "containers itself.",
            fix="remove the sidecar.istio.io/proxy.istio.io/inject.istio.io overrides, the "
            "istio.io/rev label and any istio-proxy/istio-init/istio-validation container; the "
            "mesh's injector alone decides what the proxy is",
            resources=POD_CARRIERS,
            scope=MODELS,
            expression=_all_pods(f"{overrides} && {customized}"),
        ),
        Guardrail(
            name="workload-forbid-proxy-uid",
            invariant="No workload runs as the sidecar proxy's UID or GID 1337 (whose traffic "
            "Istio never captures), the storage initializer included.",
            fix=f"run as another non-root user and group; remove {STORAGE_INITIALIZER_UID}: 1337",
            resources=POD_CARRIERS,
            scope=MODELS,
            expression=_all_pods(proxy_uid),
        ),
        Guardrail(
            name="workload-forbid-privileged",
            invariant="No container runs privileged.",
            fix="set securityContext.privileged: false (or remove it)",
            resources=POD_CARRIERS,
            scope=PLATFORM,
            expression=_all_containers(f"!({_sc('privileged')} && c.securityContext.privileged)"),
        ),
        Guardrail(
            name="workload-forbid-host-namespaces",
            invariant="No pod shares the node's network, PID or IPC namespace.",
            fix="remove hostNetwork, hostPID and hostIPC",
            resources=POD_CARRIERS,
            scope=PLATFORM,
            expression=_all_pods(
                " && ".join(
                    f"!(has(p.spec.{key}) && p.spec.{key})"
                    for key in ("hostNetwork", "hostPID", "hostIPC")
                )
            ),
        ),
        Guardrail(
            name="workload-forbid-added-capabilities",
            invariant="No container adds Linux capabilities (with Istio's CNI node agent, not "
            "even the data plane needs one).",
            fix="remove securityContext.capabilities.add (and drop ALL)",
            resources=POD_CARRIERS,
            scope=PLATFORM,
            expression=_all_containers(
                f"!({_sc('capabilities.add')} && size(c.securityContext.capabilities.add) > 0)"
            ),
        ),
        Guardrail(
            name="workload-forbid-privilege-escalation",
            invariant="No container allows privilege escalation.",
            fix="set securityContext.allowPrivilegeEscalation: false",
            resources=POD_CARRIERS,
            scope=PLATFORM,
            expression=_all_containers(
                f"!({_sc('allowPrivilegeEscalation')} && "
                "c.securityContext.allowPrivilegeEscalation)"
            ),
        ),
        Guardrail(
            name="workload-forbid-host-path",
            invariant="No pod mounts a path of the node.",
            fix="use a PersistentVolumeClaim, emptyDir, ConfigMap or Secret instead of hostPath",
            resources=POD_CARRIERS,
            scope=PLATFORM,
            expression=_all_pods("!has(p.spec.volumes) || p.spec.volumes.all(v, !has(v.hostPath))"),
        ),
        Guardrail(
            name="workload-forbid-host-ports",
            invariant="No container binds a port of the node.",
            fix="remove ports[].hostPort; expose the port through a Service and the mesh",
            resources=POD_CARRIERS,
            scope=PLATFORM,
            expression=_all_containers(
                "!has(c.ports) || c.ports.all(q, !has(q.hostPort) || q.hostPort == 0)"
            ),
        ),
        Guardrail(
            name="workload-forbid-unmasked-proc-mount",
            invariant="No container unmasks /proc.",
            fix="remove securityContext.procMount (or set it to Default)",
            resources=POD_CARRIERS,
            scope=PLATFORM,
            expression=_all_containers(
                f"!({_sc('procMount')} && c.securityContext.procMount != 'Default')"
            ),
        ),
        Guardrail(
            name="workload-forbid-unconfined-seccomp",
            invariant="No pod or container runs without a seccomp profile (Unconfined).",
            fix="set seccompProfile.type RuntimeDefault (or Localhost)",
            resources=POD_CARRIERS,
            scope=PLATFORM,
            expression=_all_pods(
                f"{seccomp_pod} && {containers_of('p.spec')}.all(c, "
                f"!({_sc('seccompProfile.type')} && "
                "c.securityContext.seccompProfile.type == 'Unconfined'))"
            ),
        ),
        Guardrail(
            name="workload-forbid-unconfined-apparmor",
            invariant="No pod or container runs without an AppArmor profile (Unconfined, by "
            "field or by the beta annotation).",
            fix="remove appArmorProfile type Unconfined and the "
            "container.apparmor.security.beta.kubernetes.io/* unconfined annotations",
            resources=POD_CARRIERS,
            scope=PLATFORM,
            expression=_all_pods(
                f"{apparmor_pod} && {apparmor_annotations} && {containers_of('p.spec')}.all(c, "
                f"!({_sc('appArmorProfile.type')} && "
                "c.securityContext.appArmorProfile.type == 'Unconfined'))"
            ),
        ),
    ]


def _proxy_uid_expression() -> str:
    """Mirrors the pack's `workload-forbid-proxy-uid`: a container with runAsUser/runAsGroup
    1337, or a pod-level 1337 that a non-proxy container inherits, or a storage initializer told
    to run as 1337; Istio's own containers excepted."""
    checks = []
    for key in ("runAsUser", "runAsGroup"):
        own = f"({_sc(key)} && c.securityContext.{key} == {PROXY_UID})"
        inherits = f"!{_sc(key)}"
        pod_value = (
            f"(has(p.spec.securityContext) && has(p.spec.securityContext.{key}) && "
            f"p.spec.securityContext.{key} == {PROXY_UID})"
        )
        non_proxy = f"{containers_of('p.spec')}.filter(c, !{_is_injected_proxy()})"
        checks.append(f"{non_proxy}.all(c, !{own})")
        # A pod-level 1337 is fine only when every container is Istio's own or sets its own ID.
        checks.append(
            f"(!{pod_value} || (size({containers_of('p.spec')}) > 0 && "
            f"{non_proxy}.all(c, !{inherits})))"
        )
    checks.append(_no_meta("annotations", STORAGE_INITIALIZER_UID, f"v != '{PROXY_UID}'"))
    return " && ".join(checks)


def _service_account_guardrail(
    model_sas: dict[str, list[str]], window_sas: dict[str, list[str]]
) -> Guardrail:
    is_model_pod = (
        "(request.kind.kind == 'InferenceService' || "
        + " || ".join(_has_meta("labels", key) for key in MODEL_WORKLOAD_LABELS)
        + ")"
    )
    named = "has(p.spec.serviceAccountName)"
    allowed = (
        f"{named} && (p.spec.serviceAccountName in variables.modelServiceAccounts || "
        f"(!{is_model_pod} && p.spec.serviceAccountName in variables.controllerServiceAccounts))"
    )
    return Guardrail(
        name="model-workload-require-own-service-account",
        invariant="Model workloads run as the model's own service account (no API rights, no "
        "token); nothing in a model namespace runs as any other identity, the window "
        "controllers' included.",
        fix="set serviceAccountName to the model's own service account (<model>-predictor)",
        resources=POD_CARRIERS,
        scope=MODELS,
        variables=(
            (
                "modelServiceAccounts",
                f"{cel.literal(model_sas)}[request.namespace]",
            ),
            (
                "controllerServiceAccounts",
                f"{cel.literal(window_sas)}[request.namespace]",
            ),
        ),
        expression=_all_pods(allowed),
    )


def _window_guardrail(shapes: dict[str, dict[str, Any]]) -> Guardrail:
    same = " && ".join(
        f"(has(object.metadata.{f}) ? object.metadata.{f} : {empty}) == "
        f"(has(oldObject.metadata.{f}) ? oldObject.metadata.{f} : {empty})"
        for f, empty in (
            ("labels", "dyn({})"),
            ("annotations", "dyn({})"),
            ("ownerReferences", "dyn([])"),
            ("finalizers", "dyn([])"),
        )
    )
    return Guardrail(
        name="window-controller-only-switches-its-window",
        invariant="A window controller's identity may only switch its own window policy between "
        "the exact closed and open shapes the program defines, and change nothing else.",
        fix="the window controller may only set its policy's spec to the closed or the open "
        "shape; anything else is done through the program",
        resources=(("security.istio.io", ("authorizationpolicies",)),),
        operations=("CREATE", "UPDATE", "DELETE"),
        scope=MODELS,
        match_conditions=(
            ("window-controllers", f"request.userInfo.username in {cel.literal(sorted(shapes))}"),
        ),
        variables=(("window", f"{cel.literal(shapes)}[request.userInfo.username]"),),
        expression=(
            "request.operation == 'UPDATE' && request.namespace == variables.window.namespace "
            "&& request.name == variables.window.policy && has(object.spec) && "
            "(object.spec == variables.window.closed || object.spec == variables.window.open) "
            f"&& {same}"
        ),
    )


def _namespace_guardrail(expected: dict[str, dict[str, str]]) -> Guardrail:
    return Guardrail(
        name="namespace-keep-security-labels",
        invariant="A guarded namespace keeps the labels that put it in the mesh and enforce its "
        "Pod Security level.",
        fix="keep istio-injection and pod-security.kubernetes.io/enforce(-version) as the "
        "program sets them",
        resources=(("", ("namespaces",)),),
        scope=PLATFORM,
        variables=(("expected", f"{cel.literal(expected)}[request.name]"),),
        expression=(
            "variables.expected.all(k, has(object.metadata.labels) && k in object.metadata.labels"
            " && object.metadata.labels[k] == variables.expected[k])"
        ),
    )


# --- assembling ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The namespaces each scope's bindings select."""

    models: tuple[str, ...]
    platform: tuple[str, ...]

    def of(self, scope: str) -> tuple[str, ...]:
        return self.models if scope == MODELS else (*self.models, *self.platform)


# The namespace labels the `namespace-keep-security-labels` guardrail keeps: in the mesh (or,
# for control planes, deliberately out of it) and the Pod Security level enforced.
KEPT_LABELS = (
    "istio-injection",
    "pod-security.kubernetes.io/enforce",
    "pod-security.kubernetes.io/enforce-version",
)


def guarded_labels(settings: Settings) -> dict[str, dict[str, str]]:
    """Per guarded namespace, the security labels the program sets (and the guardrail keeps),
    read from the builders that write those namespaces."""
    manifests = [
        platform_namespace(ns, injected=ns == INGRESS_NAMESPACE) for ns in scope(settings).platform
    ]
    manifests += [serving.namespace(model) for model in settings.models]
    out: dict[str, dict[str, str]] = {}
    for manifest in manifests:
        labels = manifest["metadata"]["labels"]
        out[manifest["metadata"]["name"]] = {k: labels[k] for k in KEPT_LABELS if k in labels}
    return out


def guardrails(settings: Settings, gateway: GatewayRef) -> list[Guardrail]:
    """Every guardrail of the stack (those whose scope is empty are left out: a binding must
    select at least one namespace)."""
    model_sas: dict[str, list[str]] = {}
    window_sas: dict[str, list[str]] = {}
    shapes: dict[str, dict[str, Any]] = {}
    for model in settings.models:
        model_sas[model.ns] = [serving.predictor_service_account(model)]
        window_sas[model.ns] = []
        for row in access.rows(settings, model, gateway):
            if not row.batch:
                continue
            sa = windows.controller_service_account(row)
            window_sas[model.ns].append(sa)
            shapes[f"system:serviceaccount:{model.ns}:{sa}"] = {
                "namespace": model.ns,
                "policy": row.policy,
                "closed": windows.closed_spec(model),
                "open": windows.open_spec(model, row),
            }
    out = _pod_guardrails()
    if settings.models:
        out.append(_service_account_guardrail(model_sas, window_sas))
    if shapes:
        out.append(_window_guardrail(shapes))
    out.append(_namespace_guardrail(guarded_labels(settings)))
    return [g for g in out if scope(settings).of(g.scope)]


def scope(settings: Settings) -> Scope:
    """The namespaces each scope's bindings select, for this stack."""
    # A namespace a bring-your-own component owns holds pods aimesh did not shape (an Istio
    # without CNI runs istio-init with NET_ADMIN there): it is the platform team's to guard.
    foreign = bring_your_own.foreign_namespaces(settings)
    return Scope(
        tuple(m.ns for m in settings.models),
        tuple(ns for ns in PLATFORM_GUARDED if ns not in foreign),
    )


def policy(guardrail: Guardrail) -> dict[str, Any]:
    """The ValidatingAdmissionPolicy of one guardrail."""
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [group],
                    "apiVersions": ["*"],
                    "operations": list(guardrail.operations),
                    "resources": list(resources),
                }
                for group, resources in guardrail.resources
            ]
        },
        "validations": [
            {
                "expression": guardrail.expression,
                "messageExpression": guardrail.message_expression(),
                "reason": "Forbidden",
            }
        ],
    }
    variables = guardrail.all_variables()
    if variables:
        spec["variables"] = [{"name": n, "expression": e} for n, e in variables]
    if guardrail.match_conditions:
        spec["matchConditions"] = [
            {"name": n, "expression": e} for n, e in guardrail.match_conditions
        ]
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": metadata(guardrail.name, labels={"aimesh.io/guardrail": guardrail.scope}),
        "spec": spec,
    }


def binding(guardrail: Guardrail, namespaces: Sequence[str]) -> dict[str, Any]:
    """The binding that enforces `guardrail` (Deny) in exactly `namespaces`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": metadata(guardrail.name, labels={"aimesh.io/guardrail": guardrail.scope}),
        "spec": {
            "policyName": guardrail.name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": NAME_LABEL, "operator": "In", "values": list(namespaces)}
                    ]
                }
            },
        },
    }


def manifests(settings: Settings, gateway: GatewayRef) -> list[dict[str, Any]]:
    """Every policy and its binding, policies first."""
    where = scope(settings)
    chosen = guardrails(settings, gateway)
    return [policy(g) for g in chosen] + [binding(g, where.of(g.scope)) for g in chosen]
