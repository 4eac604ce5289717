"""Visibility: what the pack cannot see, it cannot judge.

A `kubernetes:helm.sh/v3:Release` is installed by Helm inside the provider: CrossGuard gets its
inputs, never the Deployments, RBAC, webhooks and ConfigMaps it creates. So a Release is accepted
only when the same stack also registers the objects its chart renders, each judged by every other
policy, and says which Release they stand for: every such object carries the annotation
`aimesh.io/rendered-from: "<namespace>/<release> sha256:<digest>"`, the digest of the chart
inputs (release name, namespace, chart, version, repository, skipCrds, values, values files). The
pack computes that digest from the Release's own inputs; an object of a rendering with other
inputs does not count.

The pattern (aimesh/components/charts.py does it for every Release): a Helm v3 `Chart` of the same
inputs with a transformation adding the annotation, on a provider with `renderYamlToDirectory`
that only writes YAML, so nothing is installed twice. The engine shows a policy pack no inputs of
a component (neither a v3 nor a v4 Chart), which is why the binding travels on the objects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_bool, as_map, as_str, get
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    finding,
    unknown_finding,
)
from aimesh_policies.k8s_object import HELM_VALUES, K8sObject

RELEASE: Final = "kubernetes:helm.sh/v3:Release"
RENDERED_FROM: Final = "aimesh.io/rendered-from"


def _contains_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_unknown(v) for v in value)
    return False


def _canonical(value: Any) -> Any:
    """Inputs as the engine hands them over: a null decides nothing (Helm removes the key; the
    provider drops nulls from a Release's inputs, list items included), and every number is a
    float, so whole numbers compare as integers."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value if v is not None]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _stamp(identity: dict[str, Any]) -> str:
    text = json.dumps(_canonical(identity), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{identity['namespace']}/{identity['name']} sha256:{digest}"


def _identity(obj: K8sObject) -> dict[str, Any]:
    """What decides a chart's rendered objects: release name and namespace, chart reference,
    version, repository, CRDs on/off, values and values files."""
    source = as_map(get(obj.body, "source"))
    return {
        "name": obj.name,
        "namespace": obj.namespace,
        "chart": source.get("chart"),
        "version": source.get("version"),
        "repo": as_map(source.get("repositoryOpts")).get("repo"),
        "skipCrds": as_bool(source.get("skipCrds")) is True,
        "values": get(obj.body, "values"),
        "valueYamlFiles": source.get("valueYamlFiles") or [],
    }


def stamp_of(release: K8sObject) -> str:
    """The `aimesh.io/rendered-from` value of objects rendered from `release`'s chart inputs."""
    return _stamp(_identity(release))


def _rendered_for_review(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    del ctx  # exemptions are applied before (exemptWorkloads: `<namespace>/<release>`)
    stamps: set[str] = set()
    for obj in objs:
        stamp = obj.annotations.get(RENDERED_FROM) if obj.group_kind != HELM_VALUES else None
        if isinstance(stamp, str):
            stamps.add(stamp)
    rendered = {stamp.split(" ", 1)[0] for stamp in stamps}
    for release in (o for o in objs if o.group_kind == HELM_VALUES):
        if release.resource_type != RELEASE:
            continue
        source = as_map(get(release.body, "source"))
        if source.get("postrender") not in (None, ""):
            yield finding(
                release,
                "postrender",
                "a post-renderer rewrites what Helm installs after rendering: no rendering of "
                "the chart shows the pack those objects",
                "drop the post-renderer (express the change in values)",
            )
            continue
        wanted = _identity(release)
        if _contains_unknown(wanted):
            yield unknown_finding(release, "values")
            continue
        if _stamp(wanted) in stamps:
            continue
        chart = as_str(wanted["chart"]) or "?"
        if f"{release.namespace}/{release.name}" in rendered:
            problem = (
                f"the objects rendered for review were rendered from other inputs than this "
                f"Release's (chart, version, repository, skipCrds or values of {chart} differ): "
                "the pack would judge something else than what Helm installs"
            )
        else:
            problem = (
                f"the pack sees only this Release's inputs, never the objects {chart} installs: "
                "no object in the stack is rendered from the same chart, version and values"
            )
        yield finding(
            release,
            "values",
            problem,
            "render the same chart, version, namespace and values as a kubernetes:helm.sh/v3:"
            f"Chart on a provider with renderYamlToDirectory (it only writes YAML), each object "
            f"annotated {RENDERED_FROM}: '<namespace>/<release> sha256:<digest of the inputs>' "
            "(aimesh/components/charts.py), or install the chart as a v4 Chart",
        )


POLICIES: Final = (
    Policy(
        name="helm-release-require-rendered-output",
        description="Every Helm v3 Release must be rendered for review: the objects of the same "
        "chart, version and values are in the stack, where the pack judges them.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Mirror the Release with a kubernetes:helm.sh/v3:Chart of the same chart, "
        "version, namespace, repository and values on a provider with renderYamlToDirectory, "
        f"each object annotated {RENDERED_FROM} (aimesh does this for every Release: "
        "aimesh/components/charts.py), or install the chart as a v4 Chart; exempt a Release you "
        "judge otherwise as `<namespace>/<release>`.",
        catches="kubernetes:helm.sh/v3:Release with no object in the stack annotated "
        f"{RENDERED_FROM} with the digest of its release name, namespace, chart, version, "
        "repository, skipCrds, values and values files (a rendering of other values, an older "
        "version or another chart does not count; values unknown until apply: cannot verify); "
        "a Release with a post-renderer.",
        check_stack=_rendered_for_review,
    ),
)

__all__ = ["POLICIES", "RENDERED_FROM", "stamp_of"]
