"""What a model manager can try with kubectl: edits of an InferenceService, each of which one
runtime guardrail must refuse (and the CrossGuard policy of the same name too).

A manager's Role allows create/update/patch/delete of InferenceServices in the model's
namespace, nothing else; so every route out of the mesh, onto the node or into another identity
that is open to them is an edit of an InferenceService. Used by the offline parity test
(tests/policy/test_guardrail_parity.py) and against a real API server (tools/guardrail_probe.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Edit = Callable[[dict[str, Any]], None]


def _predictor(isvc: dict[str, Any]) -> dict[str, Any]:
    predictor: dict[str, Any] = isvc["spec"]["predictor"]
    return predictor


def _annotate(where: str, key: str, value: str) -> Edit:
    def edit(isvc: dict[str, Any]) -> None:
        holder = isvc["metadata"] if where == "metadata" else _predictor(isvc)
        holder.setdefault("annotations", {})[key] = value

    return edit


def _label(key: str, value: str) -> Edit:
    def edit(isvc: dict[str, Any]) -> None:
        _predictor(isvc).setdefault("labels", {})[key] = value

    return edit


def _model_security(**fields: Any) -> Edit:
    def edit(isvc: dict[str, Any]) -> None:
        _predictor(isvc)["model"]["securityContext"].update(fields)

    return edit


def _pod_field(**fields: Any) -> Edit:
    def edit(isvc: dict[str, Any]) -> None:
        _predictor(isvc).update(fields)

    return edit


def _volume(volume: dict[str, Any]) -> Edit:
    def edit(isvc: dict[str, Any]) -> None:
        _predictor(isvc)["volumes"].append(volume)

    return edit


def _port(port: dict[str, Any]) -> Edit:
    def edit(isvc: dict[str, Any]) -> None:
        _predictor(isvc)["model"]["ports"] = [port]

    return edit


def _container(container: dict[str, Any]) -> Edit:
    def edit(isvc: dict[str, Any]) -> None:
        _predictor(isvc)["containers"] = [container]

    return edit


def attacks(window_account: str) -> list[tuple[str, str, Edit]]:
    """(guardrail that must refuse it, name, the edit), given the name of a window controller's
    service account in the model's namespace. Every route of docs/threat-model.md, "A model
    manager with kubectl"."""
    return [
        (
            "istio-workload-forbid-injection-opt-out",
            "inject-false-annotation",
            _annotate("metadata", "sidecar.istio.io/inject", "false"),
        ),
        (
            "istio-workload-forbid-injection-opt-out",
            "inject-false-label",
            _label("sidecar.istio.io/inject", "false"),
        ),
        (
            "istio-workload-forbid-injection-opt-out",
            "ambient-opt-out",
            _label("istio.io/dataplane-mode", "none"),
        ),
        (
            "istio-workload-forbid-capture-exclusions",
            "exclude-outbound-ranges",
            _annotate("predictor", "traffic.sidecar.istio.io/excludeOutboundIPRanges", "0.0.0.0/0"),
        ),
        (
            "istio-workload-forbid-capture-exclusions",
            "exclude-model-port",
            _annotate("metadata", "traffic.sidecar.istio.io/excludeInboundPorts", "8080"),
        ),
        (
            "istio-workload-forbid-capture-exclusions",
            "narrow-include-ranges",
            _annotate(
                "predictor", "traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.1/32"
            ),
        ),
        (
            "istio-workload-forbid-capture-exclusions",
            "interception-none",
            _annotate("predictor", "sidecar.istio.io/interceptionMode", "NONE"),
        ),
        (
            "istio-workload-forbid-proxy-overrides",
            "gateway-template",
            _annotate("metadata", "inject.istio.io/templates", "gateway"),
        ),
        (
            "istio-workload-forbid-proxy-overrides",
            "foreign-proxy-image",
            _annotate("predictor", "sidecar.istio.io/proxyImage", "registry.example/envoy:evil"),
        ),
        (
            "istio-workload-forbid-proxy-overrides",
            "status-port-on-model-port",
            _annotate("predictor", "status.sidecar.istio.io/port", "8080"),
        ),
        (
            "istio-workload-forbid-proxy-overrides",
            "proxy-config",
            _annotate("predictor", "proxy.istio.io/config", '{"discoveryAddress":"evil:15012"}'),
        ),
        (
            "istio-workload-forbid-proxy-overrides",
            "declared-istio-proxy",
            _container({"name": "istio-proxy", "image": "registry.example/envoy:evil"}),
        ),
        ("workload-forbid-proxy-uid", "run-as-proxy-uid", _model_security(runAsUser=1337)),
        (
            "workload-forbid-proxy-uid",
            "storage-initializer-as-proxy",
            _annotate("metadata", "serving.kserve.io/storage-initializer-uid", "1337"),
        ),
        ("workload-forbid-privileged", "privileged", _model_security(privileged=True)),
        ("workload-forbid-host-namespaces", "host-network", _pod_field(hostNetwork=True)),
        ("workload-forbid-host-namespaces", "host-pid", _pod_field(hostPID=True)),
        ("workload-forbid-host-namespaces", "host-ipc", _pod_field(hostIPC=True)),
        (
            "workload-forbid-added-capabilities",
            "net-admin",
            _model_security(capabilities={"add": ["NET_ADMIN"], "drop": ["ALL"]}),
        ),
        (
            "workload-forbid-privilege-escalation",
            "escalation",
            _model_security(allowPrivilegeEscalation=True),
        ),
        (
            "workload-forbid-host-path",
            "host-root",
            _volume({"name": "root", "hostPath": {"path": "/"}}),
        ),
        ("workload-forbid-host-ports", "host-port", _port({"containerPort": 8080, "hostPort": 80})),
        (
            "workload-forbid-unmasked-proc-mount",
            "unmasked-proc",
            _model_security(procMount="Unmasked"),
        ),
        (
            "workload-forbid-unconfined-seccomp",
            "unconfined-seccomp",
            _model_security(seccompProfile={"type": "Unconfined"}),
        ),
        (
            "workload-forbid-unconfined-apparmor",
            "unconfined-apparmor-annotation",
            _annotate(
                "metadata",
                "container.apparmor.security.beta.kubernetes.io/kserve-container",
                "unconfined",
            ),
        ),
        (
            "workload-forbid-unconfined-apparmor",
            "unconfined-apparmor-field",
            _model_security(appArmorProfile={"type": "Unconfined"}),
        ),
        (
            "model-workload-require-own-service-account",
            "window-controller-identity",
            _pod_field(serviceAccountName=window_account),
        ),
        (
            "model-workload-require-own-service-account",
            "default-identity",
            _pod_field(serviceAccountName="default"),
        ),
    ]
