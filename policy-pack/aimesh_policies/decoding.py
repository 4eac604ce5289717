"""Decoding: Envoy and mesh configuration that istiod would refuse or silently drop.

The CRD schemas stop where Envoy's configuration starts. An EnvoyFilter patch value (a rate
limit, a Lua filter, anything with a `typed_config`) and istiod's `meshConfig` are free-form
there, so a misspelled field or a wrong `@type` passes every schema check and fails only in a
live mesh: istiod drops the field without an error, or refuses the object, and the control it
carried is silently absent, which is fail-open. These policies decode both against the Envoy
and Istio APIs of Istio 1.30.3 (`protodecode.py`, `descriptors.py`), the way istiod does.

Without the descriptor set (it is built from Go modules, `make descriptors`) nothing can be
verified: every EnvoyFilter and mesh config gets a "cannot verify" finding naming the command,
never a silent pass. A team that cannot build it lowers these two policies to advisory in its
policy config, visibly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from aimesh_policies import descriptors, protodecode
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    finding,
    unknown_finding,
)
from aimesh_policies.k8s_object import MESH_CONFIG, K8sObject
from aimesh_policies.meshlib import NETWORKING

ENVOY_FILTER: Final = (NETWORKING, "EnvoyFilter")

# What istiod does with each kind of problem, said once per kind.
_ENVOY_FILTER_EFFECT: Final = {
    protodecode.UNKNOWN_FIELD: "istiod drops it without an error, so the setting silently does "
    "not apply",
    protodecode.PRUNED_FIELD: "the API server prunes it (the EnvoyFilter schema does not know it), "
    "so it silently does not apply",
    protodecode.UNKNOWN_TYPE: "istiod cannot resolve it, so it refuses the EnvoyFilter (or, "
    "without its webhook, skips the patch) and the filter is absent",
    protodecode.INVALID: "istiod refuses the EnvoyFilter (or, without its webhook, skips the "
    "patch), so what it configures is absent",
    protodecode.ENVOY_REJECTS: "istiod accepts it, but Envoy refuses the configuration update, "
    "so the patched listener or cluster keeps its previous configuration",
}
_MESH_EFFECT: Final = {
    protodecode.UNKNOWN_FIELD: "istiod ignores unknown mesh config fields without an error, so "
    "the setting silently does not apply",
    protodecode.UNKNOWN_TYPE: "istiod cannot load the mesh config and keeps its previous or "
    "default one",
    protodecode.INVALID: "istiod cannot load the mesh config and keeps its previous or default one",
}
# How to fix each kind of problem.
_FIX: Final = {
    protodecode.UNKNOWN_FIELD: "spell the field as the message type above names it (snake_case "
    "or camelCase), or remove it",
    protodecode.PRUNED_FIELD: "spell the field as the EnvoyFilter API names it (camelCase), or "
    "remove it",
    protodecode.UNKNOWN_TYPE: "name a message Istio 1.30.3's istiod registers, as "
    "type.googleapis.com/<v3 message>",
    protodecode.INVALID: "give the field a value of the JSON type and form it takes (the "
    "message says which)",
    protodecode.CONFLICT: "keep one spelling (or one member of the oneof)",
    protodecode.NEVER_APPLIES: "change the match so it can select the object the patch is meant "
    "for, or remove the patch",
    protodecode.ENVOY_REJECTS: "use the config of a filter of the category the applyTo patches",
}


def _decoder(obj: K8sObject, path: str) -> tuple[protodecode.Decoder | None, Finding | None]:
    """The shared decoder, or the "cannot verify" finding that replaces a verdict without it."""
    location = descriptors.located()
    if location is None:
        return None, finding(
            obj,
            path,
            "cannot verify: the Envoy and Istio API descriptor set this check decodes against "
            "is not available here",
            f"build it with {descriptors.BUILD_COMMAND}",
        )
    try:
        return protodecode.decoder_for(location), None
    except Exception as exc:  # a truncated or foreign file: never crash the preview
        return None, finding(
            obj,
            path,
            f"cannot verify: the descriptor set {location} cannot be read ({type(exc).__name__})",
            f"rebuild it: {descriptors.BUILD_COMMAND} (`--force` rebuilds)",
        )


def _report(
    obj: K8sObject, problems: Iterable[protodecode.Problem], effects: dict[str, str]
) -> Iterable[Finding]:
    for problem in problems:
        if problem.kind == protodecode.UNKNOWN_VALUE:
            yield unknown_finding(obj, obj.field(problem.path))
            continue
        effect = effects.get(problem.kind)
        text = f"{problem.message}: {effect}" if effect else problem.message
        yield finding(obj, problem.path, text, _FIX.get(problem.kind, "correct the field"))


def _envoy_filter(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    decoder, cannot = _decoder(obj, "spec.configPatches")
    if decoder is None:
        if cannot is not None:
            yield cannot
        return
    yield from _report(obj, decoder.envoy_filter(obj.body.get("spec")), _ENVOY_FILTER_EFFECT)


def _mesh_config(obj: K8sObject, ctx: Context) -> Iterable[Finding]:
    if obj.whole_unknown:
        yield unknown_finding(obj, obj.field(""))
        return
    decoder, cannot = _decoder(obj, "")
    if decoder is None:
        if cannot is not None:
            yield cannot
        return
    yield from _report(obj, decoder.mesh_config(obj.body), _MESH_EFFECT)


POLICIES: Final = (
    Policy(
        name="istio-envoyfilter-require-decodable-patch",
        description="EnvoyFilter patches must decode as the Envoy configuration their applyTo "
        "names, every typed_config by its @type, and be able to apply where they match.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Correct the field the violation names against the Envoy API of Istio "
        "1.30.3 (spelling, JSON type, a v3 @type), or the applyTo/match combination; build "
        "the descriptor set first if the violation says it cannot verify (`make descriptors`).",
        catches="networking.istio.io EnvoyFilter (any version) whose patch value does not "
        "decode strictly as its applyTo's message (HTTP_FILTER -> HttpFilter, NETWORK_FILTER "
        "-> Filter, CLUSTER, LISTENER, HTTP_ROUTE, ...): an unknown field anywhere (a misspelled "
        "token_bucket: istiod drops it silently), an @type istiod cannot resolve (a typo, a v2 "
        "type), a value of the wrong JSON type or an unknown enum name, a field given both in "
        "snake_case and camelCase, two members of one oneof, a typed_config of another filter "
        "category (a network filter in an HTTP_FILTER patch); fields of the spec the API server "
        "prunes (a misspelled subFilter); applyTo/match combinations istiod refuses (a subFilter "
        "without the HTTP connection manager, a route patch with a listener match) or that never "
        "apply (an HTTP_FILTER patch on a chain matched by another network filter, a sidecar "
        "context on the other direction's virtual listener, a deprecated filter name). Without "
        "the descriptor set: a cannot-verify finding.",
        check=_envoy_filter,
        kinds=frozenset({ENVOY_FILTER}),
    ),
    Policy(
        name="istio-meshconfig-require-decodable-fields",
        description="istiod's mesh config (and its default ProxyConfig) must decode strictly "
        "as Istio's MeshConfig: no field istiod would silently ignore.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Correct the field the violation names against Istio 1.30.3's MeshConfig / "
        "ProxyConfig (spelling, JSON type, enum value); build the descriptor set first if the "
        "violation says it cannot verify (`make descriptors`).",
        catches="meshConfig in istiod Helm values, the istio ConfigMap's `mesh` and an "
        "IstioOperator's spec.meshConfig with an unknown field (e.g. "
        "defaultConfig.holdApplicationUntilProxyStart: istiod ignores it, so apps start before "
        "their sidecar), a value of the wrong JSON type or an unknown enum name. Without the "
        "descriptor set: a cannot-verify finding.",
        check=_mesh_config,
        kinds=frozenset({MESH_CONFIG}),
    ),
)

__all__ = ["POLICIES"]
