"""Sidecar injection and traffic capture: every workload is in the mesh, all of its traffic too.

Istio's injector decides per namespace first (the `istio-injection` label; `istio.io/rev` selects a
revision's injector), then per pod (`sidecar.istio.io/inject` label, or the older annotation, the
label winning). Ambient mode (`istio.io/dataplane-mode: ambient`) puts pods in the mesh without a
sidecar. The `traffic.sidecar.istio.io/*` annotations and istiod's `global.proxy.*` values decide
which ports and address ranges the sidecar's iptables capture.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from aimesh_policies.accessors import as_int, as_map, as_str, get
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    finding,
    show,
    unknown_finding,
)
from aimesh_policies.k8s_object import HELM_VALUES, K8sObject
from aimesh_policies.meshlib import NAMESPACE, namespace_of
from aimesh_policies.objects import ISTIOD_CHARTS, is_istiod_values
from aimesh_policies.pods import KSERVE_GROUP, POD_TEMPLATE_PATHS
from aimesh_policies.workload import meta_owner, meta_unknowns, pod_views

INJECTION_LABEL: Final = "istio-injection"
REVISION_LABEL: Final = "istio.io/rev"
DATAPLANE_LABEL: Final = "istio.io/dataplane-mode"
INJECT: Final = "sidecar.istio.io/inject"
CAPTURE: Final = "traffic.sidecar.istio.io/"
INTERCEPTION: Final = "sidecar.istio.io/interceptionMode"

WORKLOAD_KINDS: Final = frozenset(
    {
        *POD_TEMPLATE_PATHS,
        ("", "Pod"),
        (KSERVE_GROUP, "InferenceService"),
        (KSERVE_GROUP, "LLMInferenceService"),
        (KSERVE_GROUP, "ServingRuntime"),
        (KSERVE_GROUP, "ClusterServingRuntime"),
    }
)


# --- namespaces ----------------------------------------------------------------------------------


def namespace_in_mesh(labels: Mapping[str, str]) -> tuple[bool, str]:
    """(in mesh?, why) from a Namespace's labels."""
    injection = labels.get(INJECTION_LABEL)
    if labels.get(DATAPLANE_LABEL) == "ambient":
        return True, "ambient"
    if injection == "enabled":
        return True, "istio-injection=enabled"
    if injection is not None:
        # The label beats everything else, a revision label included.
        return False, f"label {INJECTION_LABEL}={injection!r} turns injection off"
    if labels.get(REVISION_LABEL):
        return True, "revision label"
    return False, f"no {INJECTION_LABEL}=enabled, {REVISION_LABEL} or ambient label"


def _namespace_injection(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if obj.group_kind == HELM_VALUES:
        yield from _auto_inject_values(obj)
        return
    if ctx.is_control_plane(obj.name):
        return
    labels = obj.labels
    if obj.patch and not {INJECTION_LABEL, REVISION_LABEL, DATAPLANE_LABEL} & set(labels):
        return  # a patch that does not touch the mesh labels leaves them as they are
    in_mesh, why = namespace_in_mesh(labels)
    if in_mesh:
        return
    note = ""
    if INJECTION_LABEL in obj.annotations or INJECT in obj.annotations:
        note = " (an annotation does not enable namespace injection: only the label counts)"
    yield finding(
        obj,
        "metadata.labels",
        f"namespace {obj.name} is outside the mesh: {why}{note}",
        f"label it {INJECTION_LABEL}: enabled (or {REVISION_LABEL}: <revision>, or "
        f"{DATAPLANE_LABEL}: ambient); control-plane namespaces are configured in "
        "controlPlaneNamespaces",
    )


def _auto_inject_values(obj: K8sObject) -> Iterable[Finding]:
    if get(obj.body, "chart") not in ISTIOD_CHARTS:
        return
    value = get(obj.body, "values.global.proxy.autoInject")
    if isinstance(value, str) and value != "enabled":
        yield finding(
            obj,
            "values.global.proxy.autoInject",
            f"is {value!r}: the injector skips every pod that does not opt in explicitly",
            "remove it (default enabled) or set it to enabled",
        )


# --- workloads that opt out ----------------------------------------------------------------------


def _opt_out(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if ctx.is_control_plane(namespace_of(obj)):
        return
    for where in pod_meta_unknowns(obj):
        yield unknown_finding(obj, where)
    for pod in pod_views(obj):
        label = pod.labels.get(INJECT)
        annotation = pod.annotations.get(INJECT)
        # The label wins over the (older) annotation when both are set.
        decisive, kind = (label, "labels") if label is not None else (annotation, "annotations")
        if decisive is not None and decisive.strip().lower() == "false":
            yield finding(
                obj,
                f"{meta_owner(obj, pod.meta_path, kind, INJECT)}.{kind}.{INJECT}",
                "opts out of sidecar injection: the pod runs outside the mesh (no mTLS, no "
                "authorization, no telemetry)",
                f'remove {INJECT}: "false" (or exempt the workload in exemptWorkloads)',
            )
        dataplane = pod.labels.get(DATAPLANE_LABEL)
        if dataplane is not None and dataplane.strip().lower() == "none":
            # Ambient mode's per-pod opt-out: ztunnel stops capturing the pod's traffic.
            yield finding(
                obj,
                f"{meta_owner(obj, pod.meta_path, 'labels', DATAPLANE_LABEL)}"
                f".labels.{DATAPLANE_LABEL}",
                "opts out of the ambient mesh: the pod's traffic bypasses ztunnel (no mTLS, "
                "no authorization, no telemetry)",
                f"remove {DATAPLANE_LABEL}: none (or exempt the workload in exemptWorkloads)",
            )


def _decides(key: str) -> bool:
    return key in (INJECT, INTERCEPTION, DATAPLANE_LABEL) or key.startswith(CAPTURE)


def pod_meta_unknowns(obj: K8sObject) -> list[str]:
    """Unknown pod labels/annotations that decide injection or capture (a computed unrelated
    label does not matter)."""
    return meta_unknowns(obj, _decides)


# --- traffic capture exclusions ------------------------------------------------------------------

_PORT_EXCLUSIONS: Final = ("excludeInboundPorts", "excludeOutboundPorts")
# Values that keep everything captured.
_FULL: Final = {"includeOutboundIPRanges": "*", "includeInboundPorts": "*"}
_ANY_VALUE_EXCLUDES: Final = ("excludeOutboundIPRanges", "excludeInterfaces")


def _ports(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


# The injector excludes the proxy's status port (15020) from inbound capture in every pod and
# writes that into the pod's own annotation: excluding it explicitly changes nothing.
STATUS_PORT: Final = 15020


def capture_problems(
    settings: Mapping[str, str], exempt_ports: frozenset[int]
) -> list[tuple[str, str]]:
    """(setting, problem) for capture settings keyed by their short name
    (excludeInboundPorts, ...)."""
    problems: list[tuple[str, str]] = []
    for key in _PORT_EXCLUSIONS:
        value = settings.get(key)
        if value is None:
            continue
        exempt = exempt_ports | {STATUS_PORT} if key == "excludeInboundPorts" else exempt_ports
        ports = [p for p in _ports(value) if as_int(p) not in exempt]
        if ports:
            problems.append((key, f"excludes ports {','.join(ports)} from capture"))
    for key in _ANY_VALUE_EXCLUDES:
        value = settings.get(key)
        if value is not None and value.strip():
            problems.append((key, f"excludes {value.strip()!r} from capture"))
    for key, full in _FULL.items():
        value = settings.get(key)
        if value is not None and value.strip() != full:
            shown = value.strip() or "nothing"
            problems.append((key, f"captures only {shown!r} instead of {full!r}"))
    mode = settings.get("interceptionMode")
    if mode is not None and mode.strip().upper() == "NONE":
        problems.append(("interceptionMode", "is NONE: no traffic is captured"))
    return problems


def _capture(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if obj.group_kind == HELM_VALUES:
        yield from _capture_values(obj, ctx)
        return
    if ctx.is_control_plane(namespace_of(obj)):
        return
    for where in pod_meta_unknowns(obj):
        yield unknown_finding(obj, where)
    for pod in pod_views(obj):
        settings = {
            k[len(CAPTURE) :]: v for k, v in pod.annotations.items() if k.startswith(CAPTURE)
        }
        mode = pod.annotations.get(INTERCEPTION)
        if mode is not None:
            settings["interceptionMode"] = mode
        for key, problem in capture_problems(settings, ctx.exempt_ports):
            name = INTERCEPTION if key == "interceptionMode" else CAPTURE + key
            yield finding(
                obj,
                f"{meta_owner(obj, pod.meta_path, 'annotations', name)}.annotations.{name}",
                f"{problem}: that traffic bypasses the sidecar (no mTLS, authorization or "
                "egress control)",
                f"remove the {name} annotation ("
                + (
                    "exempt a port with exemptPorts if it truly must bypass the proxy)"
                    if "Ports" in key
                    else "or exempt the workload in exemptWorkloads)"
                ),
            )


_VALUES_KEYS: Final = {
    "excludeInboundPorts": "excludeInboundPorts",
    "excludeOutboundPorts": "excludeOutboundPorts",
    "excludeIPRanges": "excludeOutboundIPRanges",
    "includeIPRanges": "includeOutboundIPRanges",
    "includeInboundPorts": "includeInboundPorts",
    "excludeInterfaces": "excludeInterfaces",
}


def _capture_values(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if get(obj.body, "chart") not in ISTIOD_CHARTS:
        return
    proxy: Mapping[str, Any] = as_map(get(obj.body, "values.global.proxy"))
    settings: dict[str, str] = {}
    names: dict[str, str] = {}
    for values_key, short in _VALUES_KEYS.items():
        raw = proxy.get(values_key)
        # A single port is often written as a YAML number (it crosses the protocol as a double).
        value = show(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        value = as_str(raw) if value is None else value
        if value is not None:
            settings[short] = value
            names[short] = values_key
    for key, problem in capture_problems(settings, ctx.exempt_ports):
        yield finding(
            obj,
            f"values.global.proxy.{names.get(key, key)}",
            f"{problem} for EVERY injected pod of the mesh",
            "restore the chart default (exclusions empty, includes *)",
        )


POLICIES: Final = (
    Policy(
        name="istio-namespace-require-sidecar-injection",
        description="Every namespace outside the control plane is in the mesh.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Label the namespace istio-injection: enabled (or istio.io/rev: "
        "<revision>, or istio.io/dataplane-mode: ambient); list true control-plane namespaces "
        "in controlPlaneNamespaces.",
        catches="A Namespace (not in controlPlaneNamespaces) without injection, or with "
        "istio-injection set to anything but enabled (the label beats a revision label and "
        "any annotation); istiod chart values (or the rendered istio-sidecar-injector "
        "ConfigMap's values) with global.proxy.autoInject other than enabled.",
        check=_namespace_injection,
        kinds=frozenset({NAMESPACE, HELM_VALUES}),
        only=is_istiod_values,
        critical=("metadata.name", "metadata.labels", "values.global.proxy.autoInject"),
    ),
    Policy(
        name="istio-workload-forbid-injection-opt-out",
        description="No workload opts out of sidecar injection (or of the ambient mesh).",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation='Remove sidecar.istio.io/inject: "false" (or istio.io/dataplane-mode: none) '
        "from the pod template (or the InferenceService / its component); exempt a workload in "
        "exemptWorkloads if it truly cannot run in the mesh.",
        catches='sidecar.istio.io/inject: "false" as a label or annotation (the label winning), '
        "and the ambient opt-out label istio.io/dataplane-mode: none, on Pods, every workload "
        "pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, "
        "ReplicationController, Job, CronJob, PodTemplate, Argo Rollout), InferenceServices "
        "(metadata and predictor/transformer/explainer labels and annotations), "
        "LLMInferenceServices and (Cluster)ServingRuntimes.",
        check=_opt_out,
        kinds=WORKLOAD_KINDS,
        critical=("metadata.namespace",),
    ),
    Policy(
        name="istio-workload-forbid-capture-exclusions",
        description="No workload excludes ports, address ranges or interfaces from traffic "
        "capture.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Remove the traffic.sidecar.istio.io/* exclusions (exemptPorts lists ports "
        "that may bypass the proxy); keep istiod's global.proxy capture values at their "
        "defaults.",
        catches="traffic.sidecar.istio.io/excludeInboundPorts, excludeOutboundPorts, "
        "excludeOutboundIPRanges, excludeInterfaces, includeOutboundIPRanges or "
        "includeInboundPorts narrower than *, sidecar.istio.io/interceptionMode NONE, on any "
        "pod template or InferenceService; the same settings mesh-wide in istiod's "
        "global.proxy values (chart values or the rendered istio-sidecar-injector ConfigMap).",
        check=_capture,
        kinds=frozenset({*WORKLOAD_KINDS, HELM_VALUES}),
        only=is_istiod_values,
        critical=("metadata.namespace", "values.global.proxy"),
    ),
)
