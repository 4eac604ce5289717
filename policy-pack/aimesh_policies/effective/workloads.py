"""The model workloads of a stack and the label sets of their pods (pure, total).

A model is what one intent declares (its selector in its namespace), or, without intent, an
InferenceService (each component and canary predictor is a pod label set KServe creates), an
LLMInferenceService, or a workload whose pod template carries a model label. The effective
policies evaluate every pod label set of a model, because a policy may select only some of its
pods (the canary, one component).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aimesh_policies.accessors import as_list, as_map, as_str, maps, str_map
from aimesh_policies.effective.intent import CONFIGMAP, Intent, Intents, read_intents
from aimesh_policies.framework import Context, Finding, unknown_finding
from aimesh_policies.guards import unknown_at
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.meshlib import (
    INFERENCE_SERVICE,
    LLM_INFERENCE_SERVICE,
    NAMESPACE,
    isvc_components,
    isvc_pod_labels,
    model_namespaces,
    namespace_of,
)
from aimesh_policies.pods import POD_TEMPLATE_PATHS, pods

Labels = Mapping[str, str]
WORKLOAD_KINDS: Final = frozenset({("", "Pod"), *POD_TEMPLATE_PATHS})
# What tells where the models are, which pods they run and what they declare.
MODEL_KINDS: Final = frozenset(
    {NAMESPACE, INFERENCE_SERVICE, LLM_INFERENCE_SERVICE, CONFIGMAP, *WORKLOAD_KINDS}
)


@dataclass
class Model:
    name: str
    namespace: str
    pods: list[dict[str, str]] = field(default_factory=list)
    anchor: K8sObject | None = None  # where a finding about the model is filed
    intent: Intent | None = None
    unreadable: Finding | None = None  # an intent exists but cannot be read or trusted

    def add(self, labels: Labels) -> None:
        item = dict(labels)
        if item not in self.pods:
            self.pods.append(item)


def _isvc_pods(isvc: K8sObject) -> list[dict[str, str]]:
    found = [isvc_pod_labels(isvc, c) for c in isvc_components(isvc)]
    for canary in maps(isvc.spec.get("canary")):
        predictor = as_map(canary.get("predictor"))
        found.append(
            {
                **isvc.labels,
                **str_map(predictor.get("labels")),
                "serving.kserve.io/inferenceservice": isvc.name,
                "component": "predictor",
            }
        )
    return found


def _selects(selector: Labels, labels: Labels) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def discover(objs: Sequence[K8sObject], ctx: Context, intents: Intents) -> list[Model]:
    """Every model of the stack, with the label sets of its pods."""
    candidates: dict[str, list[tuple[str, dict[str, str], K8sObject]]] = {}
    for obj in objs:
        namespace = namespace_of(obj)
        if obj.group_kind == INFERENCE_SERVICE:
            for labels in _isvc_pods(obj):
                candidates.setdefault(namespace, []).append((obj.name, labels, obj))
        elif obj.group_kind == LLM_INFERENCE_SERVICE:
            for view in pods(obj):
                candidates.setdefault(namespace, []).append((obj.name, dict(view.labels), obj))
        elif obj.group_kind in WORKLOAD_KINDS:
            for view in pods(obj):
                if ctx.is_model_workload(view.labels):
                    name = next(
                        (view.labels[k] for k in ctx.model_workload_labels if k in view.labels),
                        obj.name,
                    )
                    candidates.setdefault(namespace, []).append((name, dict(view.labels), obj))
    namespaces = model_namespaces(objs, ctx) | set(intents.models) | set(intents.unreadable)
    models: list[Model] = []
    for namespace in sorted(namespaces | set(candidates)):
        intent = intents.of(namespace)
        found = candidates.get(namespace, [])
        if intent is not None:
            declared = Model(intent.model, namespace, intent=intent)
            for _, labels, obj in found:
                if _selects(intent.selector, labels):
                    declared.add(labels)
                    declared.anchor = declared.anchor or obj
            if not declared.pods:
                declared.add(intent.selector)
            declared.anchor = declared.anchor or intent.obj
            models.append(declared)
            found = [c for c in found if not _selects(intent.selector, c[1])]
        unreadable = intents.unreadable.get(namespace)
        by_name: dict[str, Model] = {}
        for name, labels, obj in found:
            model = by_name.get(name)
            if model is None:
                model = by_name[name] = Model(name, namespace, anchor=obj, unreadable=unreadable)
                models.append(model)
            model.add(labels)
        if unreadable is not None and not found and intent is None:
            models.append(Model(namespace, namespace, anchor=None, unreadable=unreadable))
    return models


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector as Kubernetes reads it: matchLabels and matchExpressions (In,
    NotIn, Exists, DoesNotExist) all hold; an empty selector selects everything (a NetworkPolicy
    podSelector `{}`, an aggregation selector `{}` alike); an operator it does not know selects
    nothing."""
    for key, value in as_map(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in maps(selector.get("matchExpressions")):
        key = as_str(expression.get("key")) or ""
        operator = as_str(expression.get("operator")) or ""
        values = [v for v in as_list(expression.get("values")) if isinstance(v, str)]
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # the API server rejects it; a selector it cannot read selects nothing
    return True


def declared_models(
    objs: Sequence[K8sObject], ctx: Context, intents: Intents | None = None
) -> list[Model]:
    """The models that publish (readable) intent: what the intent-only policies judge."""
    intents = intents if intents is not None else read_intents(objs, ctx)
    return [m for m in discover(objs, ctx, intents) if m.intent is not None]


def namespace_labels(objs: Sequence[K8sObject]) -> dict[str, dict[str, str]]:
    """Labels of every Namespace in the stack, with the name label Kubernetes adds."""
    out: dict[str, dict[str, str]] = {}
    for obj in objs:
        if obj.group_kind == ("", "Namespace") and obj.name:
            out[obj.name] = {**obj.labels, "kubernetes.io/metadata.name": obj.name}
    return out


_ISVC_LABELS: Final = (
    "metadata.labels",
    "spec.predictor.labels",
    "spec.transformer.labels",
    "spec.explainer.labels",
    "spec.canary[].predictor.labels",
)


def _label_unknowns(obj: K8sObject, paths: Sequence[str]) -> list[Finding]:
    return [unknown_finding(obj, where) for path in paths for where in obj.unknown(path)]


_ISVC_SHAPE: Final = (
    "metadata",
    "metadata.name",
    "metadata.namespace",
    "metadata.labels",
    "spec",
    "spec.predictor",
    "spec.predictor.labels",
    "spec.transformer",
    "spec.transformer.labels",
    "spec.explainer",
    "spec.explainer.labels",
    "spec.canary",
    "spec.canary[]",
    "spec.canary[].predictor",
    "spec.canary[].predictor.labels",
)


def shape_unknowns(
    objs: Sequence[K8sObject], ctx: Context, models: Sequence[Model]
) -> list[Finding]:
    """Unknowns that hide which pods a model runs (or whether an object runs model pods at
    all): InferenceService names, namespaces and labels, and - in model namespaces - workload
    pod labels. Each is "cannot verify" rather than a silent pass."""
    namespaces = {m.namespace for m in models}
    found: list[Finding] = []
    for obj in objs:
        if obj.group_kind not in WORKLOAD_KINDS | {INFERENCE_SERVICE, LLM_INFERENCE_SERVICE}:
            continue
        if not obj.unknown(""):
            continue  # one walk over the body: nothing unknown at all (the usual case)
        if obj.group_kind in (INFERENCE_SERVICE, LLM_INFERENCE_SERVICE):
            # Structure first (a whole block unknown), then any label value (deep).
            found += (unknown_at(obj, *_ISVC_SHAPE) + _label_unknowns(obj, _ISVC_LABELS))[:1]
        elif obj.group_kind in WORKLOAD_KINDS and (
            namespace_of(obj) in namespaces or obj.unknown("metadata.namespace")
        ):
            template = POD_TEMPLATE_PATHS.get(obj.group_kind, "")
            meta = f"{template}.metadata" if template else "metadata"
            shape = unknown_at(obj, *(p for p in (template, meta, f"{meta}.labels") if p))
            found += (shape + _label_unknowns(obj, (f"{meta}.labels",)))[:1]
    return found


__all__ = [
    "MODEL_KINDS",
    "WORKLOAD_KINDS",
    "Model",
    "declared_models",
    "discover",
    "namespace_labels",
    "selector_matches",
    "shape_unknowns",
]
