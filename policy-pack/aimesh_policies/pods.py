"""What an object runs and selects: its pod templates (workload kinds, Pods, KServe's
InferenceService components, LLMInferenceServices, ServingRuntimes) with their containers, and an
Istio policy's workload selector and target refs. Total, like every accessor."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aimesh_policies.accessors import as_list, as_map, as_str, get, str_map
from aimesh_policies.k8s_object import GroupKind, K8sObject

# Where each workload kind keeps its pod template (metadata + spec) relative to the body.
POD_TEMPLATE_PATHS: Final[Mapping[GroupKind, str]] = {
    ("apps", "Deployment"): "spec.template",
    ("apps", "StatefulSet"): "spec.template",
    ("apps", "DaemonSet"): "spec.template",
    ("apps", "ReplicaSet"): "spec.template",
    ("", "ReplicationController"): "spec.template",
    ("batch", "Job"): "spec.template",
    ("batch", "CronJob"): "spec.jobTemplate.spec.template",
    ("", "PodTemplate"): "template",
    ("argoproj.io", "Rollout"): "spec.template",
}

KSERVE_GROUP: Final = "serving.kserve.io"
ISVC_COMPONENTS: Final = ("predictor", "transformer", "explainer")
# Predictor keys that are containers in their own right (model formats, the generic `model`).
_ISVC_CONTAINER_KEYS: Final = (
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


# What may hold containers (or a pod spec) inside an InferenceService component.
ISVC_CONTAINER_KEYS: Final = _ISVC_CONTAINER_KEYS


@dataclass(frozen=True)
class PodView:
    """One pod (template) of an object: where it is, its labels/annotations, its pod spec."""

    path: str  # field path of the pod spec ("spec.template.spec", "spec.predictor")
    meta_path: str  # field path of its labels/annotations owner ("spec.template.metadata")
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: Mapping[str, Any]
    # (field path, container) for every container, init container, ephemeral container and
    # KServe model-format container of this pod.
    containers: tuple[tuple[str, Mapping[str, Any]], ...]


def pods(obj: K8sObject) -> list[PodView]:
    """Every pod template `obj` carries: a Pod itself, each workload kind's template, each
    InferenceService component (and its workerSpec), LLMInferenceService templates, and
    (Cluster)ServingRuntimes (the template of every predictor that uses them)."""
    if obj.is_("", "Pod"):
        return [_pod_view(obj.body, "spec", "metadata")]
    template_path = POD_TEMPLATE_PATHS.get(obj.group_kind)
    if template_path is not None:
        template = obj.get(template_path)
        if not isinstance(template, Mapping):
            return []
        return [_pod_view(template, f"{template_path}.spec", f"{template_path}.metadata")]
    if obj.is_(KSERVE_GROUP, "InferenceService"):
        return _isvc_pods(obj)
    if obj.is_(KSERVE_GROUP, "LLMInferenceService", "LLMInferenceServiceConfig"):
        return _llmisvc_pods(obj)
    if obj.is_(KSERVE_GROUP, "ServingRuntime", "ClusterServingRuntime"):
        return _runtime_pods(obj)
    return []


def _pod_view(holder: Mapping[str, Any], spec_path: str, meta_path: str) -> PodView:
    # `holder` holds `metadata` and `spec` (a Pod or a template).
    spec = as_map(holder.get("spec"))
    meta = as_map(holder.get("metadata"))
    return PodView(
        path=spec_path,
        meta_path=meta_path,
        labels=str_map(meta.get("labels")),
        annotations=str_map(meta.get("annotations")),
        spec=spec,
        containers=tuple(_containers(spec, spec_path)),
    )


def _containers(spec: Mapping[str, Any], at: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, item in enumerate(as_list(spec.get(key))):
            if isinstance(item, Mapping):
                yield f"{at}.{key}[{i}]", item


def _isvc_pods(obj: K8sObject) -> list[PodView]:
    views: list[PodView] = []
    for component in ISVC_COMPONENTS:
        spec = obj.spec.get(component)
        if not isinstance(spec, Mapping):
            continue
        at = f"spec.{component}"
        containers = list(_containers(spec, at))
        for key in _ISVC_CONTAINER_KEYS:
            item = spec.get(key)
            if isinstance(item, Mapping):
                containers.append((f"{at}.{key}", item))
        # KServe copies the InferenceService's own labels/annotations onto every component's
        # pods, and the component's on top: both decide (e.g. sidecar injection).
        views.append(
            PodView(
                path=at,
                meta_path=at,
                labels={**obj.labels, **str_map(spec.get("labels"))},
                annotations={**obj.annotations, **str_map(spec.get("annotations"))},
                spec=spec,
                containers=tuple(containers),
            )
        )
        worker = spec.get("workerSpec")
        if isinstance(worker, Mapping):
            views.append(
                PodView(
                    path=f"{at}.workerSpec",
                    meta_path=at,
                    labels=views[-1].labels,
                    annotations=views[-1].annotations,
                    spec=worker,
                    containers=tuple(_containers(worker, f"{at}.workerSpec")),
                )
            )
    return views


def _runtime_pods(obj: K8sObject) -> list[PodView]:
    """A (Cluster)ServingRuntime is a pod template for every predictor using it: its spec holds
    the containers and pod fields, and `labels`/`annotations` KServe copies onto those pods."""
    views: list[PodView] = []
    for at in ("spec", "spec.workerSpec"):
        spec = obj.get(at)
        if isinstance(spec, Mapping):
            views.append(
                PodView(
                    at,
                    at,
                    str_map(spec.get("labels")),
                    str_map(spec.get("annotations")),
                    spec,
                    tuple(_containers(spec, at)),
                )
            )
    return views


def _llmisvc_pods(obj: K8sObject) -> list[PodView]:
    views: list[PodView] = []
    for owner in ("spec", "spec.prefill"):
        holder = obj.get(owner)
        if not isinstance(holder, Mapping):
            continue
        labels = {**obj.labels, **str_map(holder.get("labels"))}
        annotations = {**obj.annotations, **str_map(holder.get("annotations"))}
        for key in ("template", "worker"):
            spec = holder.get(key)
            if isinstance(spec, Mapping):
                at = f"{owner}.{key}"
                views.append(
                    PodView(at, owner, labels, annotations, spec, tuple(_containers(spec, at)))
                )
    return views


def selector_labels(obj: K8sObject) -> Mapping[str, str] | None:
    """An Istio policy's workload selector (`spec.selector.matchLabels`); None when it selects no
    workloads by label (no selector or empty matchLabels: the whole namespace, or - with
    `target_refs` - specific gateways/services)."""
    labels = str_map(get(obj.spec, "selector.matchLabels"))
    return labels or None


def target_refs(obj: K8sObject) -> list[tuple[str, str]]:
    """(kind, name) of an Istio policy's `spec.targetRef` / `spec.targetRefs`."""
    refs = [obj.spec.get("targetRef"), *as_list(obj.spec.get("targetRefs"))]
    return [
        (as_str(r.get("kind")) or "", as_str(r.get("name")) or "")
        for r in refs
        if isinstance(r, Mapping)
    ]
