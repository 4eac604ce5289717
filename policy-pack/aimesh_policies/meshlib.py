"""Istio / KServe knowledge several policies share (pure, total).

Group/kind constants, where a policy applies (selector vs namespace vs mesh), the effective
workload labels of an InferenceService, and which namespaces serve models.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from aimesh_policies.accessors import as_list, as_map, as_str, maps, str_map
from aimesh_policies.framework import Context
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.pods import ISVC_COMPONENTS, KSERVE_GROUP, selector_labels, target_refs

SECURITY: Final = "security.istio.io"
NETWORKING: Final = "networking.istio.io"

PEER_AUTHENTICATION: Final = (SECURITY, "PeerAuthentication")
AUTHORIZATION_POLICY: Final = (SECURITY, "AuthorizationPolicy")
REQUEST_AUTHENTICATION: Final = (SECURITY, "RequestAuthentication")
DESTINATION_RULE: Final = (NETWORKING, "DestinationRule")
NAMESPACE: Final = ("", "Namespace")
INFERENCE_SERVICE: Final = (KSERVE_GROUP, "InferenceService")
LLM_INFERENCE_SERVICE: Final = (KSERVE_GROUP, "LLMInferenceService")

# Where an object lands when it names no namespace: the provider's default, "default" unless the
# provider says otherwise (which a policy cannot see).
DEFAULT_NAMESPACE: Final = "default"


def namespace_of(obj: K8sObject) -> str:
    return obj.namespace or DEFAULT_NAMESPACE


def namespace_wide(obj: K8sObject) -> bool:
    """No workload selector and no targetRef: the policy applies to its whole namespace."""
    return selector_labels(obj) is None and not target_refs(obj)


def is_mesh_wide(obj: K8sObject, ctx: Context) -> bool:
    """A namespace-wide policy in the root namespace applies to the whole mesh."""
    return namespace_of(obj) == ctx.mesh_root_namespace and namespace_wide(obj)


def scope(obj: K8sObject, ctx: Context) -> str:
    """The level an Istio policy works at: "mesh", "namespace" or "workload"."""
    if not namespace_wide(obj):
        return "workload"
    return "mesh" if namespace_of(obj) == ctx.mesh_root_namespace else "namespace"


def applies_to_pods(
    obj: K8sObject, ctx: Context, namespace: str, labels: Mapping[str, str]
) -> bool:
    """Whether a selector-based AuthorizationPolicy / RequestAuthentication applies to pods with
    `labels` in `namespace` (targetRef policies attach to gateways/services, not to pods by
    label: False). Not for PeerAuthentication, whose selectors are ignored in the root
    namespace."""
    if target_refs(obj):
        return False
    if not reaches_namespace(obj, ctx, namespace):
        return False
    return selects(selector_labels(obj), labels)


def reaches_namespace(obj: K8sObject, ctx: Context, namespace: str) -> bool:
    """Whether an AuthorizationPolicy / RequestAuthentication may select workloads of
    `namespace`: those of its own namespace, and - from the root namespace - those of EVERY
    namespace. Istio matches a root-namespace policy's selector against the workloads of all
    namespaces (istiod lists the root namespace's policies for every proxy), with or without a
    selector; only PeerAuthentication ignores selectors in the root namespace."""
    return namespace_of(obj) in (namespace, ctx.mesh_root_namespace)


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Whether a matchLabels selector (None = everything) selects pods with `labels`."""
    if selector is None:
        return True
    return all(labels.get(k) == v for k, v in selector.items())


def action(obj: K8sObject) -> str:
    """An AuthorizationPolicy's action; absent means ALLOW. Non-strings read as "" (invalid)."""
    value = obj.spec.get("action")
    if value is None:
        return "ALLOW"
    return as_str(value) or ""


def rules(obj: K8sObject) -> list[tuple[int, Mapping[str, Any]]]:
    """(index, rule) of every mapping rule of an AuthorizationPolicy."""
    return [(i, r) for i, r in enumerate(as_list(obj.spec.get("rules"))) if isinstance(r, Mapping)]


def sources(rule: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    """(index, source) of every `from` entry of a rule (a missing source reads as {})."""
    return [(i, as_map(f.get("source"))) for i, f in enumerate(maps(rule.get("from")))]


def operations(rule: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    return [(i, as_map(t.get("operation"))) for i, t in enumerate(maps(rule.get("to")))]


def has_values(mapping: Mapping[str, Any], key: str) -> bool:
    value = mapping.get(key)
    return bool(as_list(value)) or (isinstance(value, str) and bool(value))


def source_constrains(source: Mapping[str, Any]) -> bool:
    """Whether a source restricts anything at all (an empty source matches every request)."""
    return any(has_values(source, k) for k in source)


def rule_constrains_source(rule: Mapping[str, Any]) -> bool:
    """Whether a rule restricts WHO may call: some `from` entry constrains its source, or a `when`
    condition tests an identity key."""
    if any(source_constrains(s) for _, s in sources(rule)):
        return True
    return any(
        (as_str(c.get("key")) or "").startswith(("source.", "request.auth."))
        for c in maps(rule.get("when"))
    )


def rule_is_empty(rule: Mapping[str, Any]) -> bool:
    """A rule with no effective from/to/when matches every request."""
    if any(source_constrains(s) for _, s in sources(rule)):
        return False
    if any(source_constrains(op) for _, op in operations(rule)):
        return False
    return not maps(rule.get("when"))


def isvc_pod_labels(isvc: K8sObject, component: str) -> dict[str, str]:
    """Labels KServe (Standard/raw mode) puts on an InferenceService component's pods: the
    InferenceService's and the component's own labels, plus its identifying labels."""
    spec = as_map(isvc.spec.get(component))
    return {
        **isvc.labels,
        **str_map(spec.get("labels")),
        "serving.kserve.io/inferenceservice": isvc.name,
        "component": component,
        "app": f"isvc.{isvc.name}-{component}",
    }


def isvc_components(isvc: K8sObject) -> list[str]:
    return [c for c in ISVC_COMPONENTS if isinstance(isvc.spec.get(c), Mapping)]


def model_namespaces(objs: Iterable[K8sObject], ctx: Context) -> set[str]:
    """Namespaces serving models: configured by name, Namespaces matching the configured labels,
    and every namespace holding an InferenceService / LLMInferenceService."""
    found = set(ctx.model_namespaces)
    for obj in objs:
        if obj.group_kind in (INFERENCE_SERVICE, LLM_INFERENCE_SERVICE):
            found.add(namespace_of(obj))
        elif obj.group_kind == NAMESPACE and ctx.namespace_labels_select(obj.labels):
            found.add(obj.name)
    return found


def of_kind(objs: Sequence[K8sObject], *kinds: tuple[str, str]) -> list[K8sObject]:
    return [o for o in objs if o.group_kind in kinds]


class ByNamespace:
    """AuthorizationPolicies indexed by namespace, so a stack rule that pairs every
    workload-side object with the policies reaching it is linear, not quadratic.

    `reaching(ns)` is every policy that may select workloads of `ns` (see `reaches_namespace`):
    those of `ns` and every policy of the root namespace. A superset filter: each pairing check
    still applies its own test."""

    def __init__(self, policies: Iterable[K8sObject], ctx: Context) -> None:
        self._root = ctx.mesh_root_namespace
        self._all = list(policies)
        self._local: dict[str, list[K8sObject]] = {}
        for policy in self._all:
            self._local.setdefault(namespace_of(policy), []).append(policy)

    def reaching(self, namespace: str) -> list[K8sObject]:
        local = self._local.get(namespace, [])
        if namespace == self._root:
            return local
        return [*local, *self._local.get(self._root, [])]

    def every(self) -> list[K8sObject]:
        """Every policy (what may share workloads with a root-namespace object)."""
        return self._all
