"""Visibility: what the pack cannot see, it cannot judge.

A `kubernetes:helm.sh/v3:Release` is installed by Helm inside the provider: CrossGuard gets its
values, never the Deployments, RBAC, webhooks and ConfigMaps it creates. A v4 Chart's objects, on
the other hand, arrive one by one (and are rendered during `pulumi preview`). So a Release is
accepted only when the same stack renders the same chart, version and values as a v4 Chart (the
pattern: a provider with `renderYamlToDirectory` that only writes YAML, so nothing is installed
twice), whose objects every other policy then judges.
"""

from __future__ import annotations

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
CHART: Final = "kubernetes:helm.sh/v4:Chart"


def _contains_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_unknown(v) for v in value)
    return False


def _without_nulls(value: Any) -> Any:
    """Values as Helm applies them: a null removes a key, so it decides nothing (and a provider
    may drop it from a Release's checked inputs)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


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
        "values": _without_nulls(get(obj.body, "values")),
        "valueYamlFiles": source.get("valueYamlFiles") or [],
    }


def _rendered_for_review(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    del ctx  # exemptions are applied before (exemptWorkloads: `<namespace>/<release>`)
    helm = [o for o in objs if o.group_kind == HELM_VALUES]
    charts = [_identity(o) for o in helm if o.resource_type == CHART]
    for release in (o for o in helm if o.resource_type == RELEASE):
        source = as_map(get(release.body, "source"))
        if source.get("postrender") not in (None, ""):
            yield finding(
                release,
                "postrender",
                "a post-renderer rewrites what Helm installs after rendering: no rendering of "
                "the chart shows the pack those objects",
                "drop the post-renderer (express the change in values), or install the chart "
                "as a v4 Chart with the same postRenderer",
            )
            continue
        wanted = _identity(release)
        if _contains_unknown(wanted):
            yield unknown_finding(release, "values")
            continue
        if not any(chart == wanted for chart in charts):
            chart = as_str(wanted["chart"]) or "?"
            yield finding(
                release,
                "values",
                f"the pack sees only this Release's values, never the objects {chart} installs: "
                "no v4 Chart in the stack renders the same chart, version and values for it to "
                "judge",
                "add the same chart, version, namespace and values as a kubernetes:helm.sh/v4:"
                "Chart on a provider with renderYamlToDirectory (it only writes YAML), or "
                "install the chart as a v4 Chart",
            )


POLICIES: Final = (
    Policy(
        name="helm-release-require-rendered-output",
        description="Every Helm v3 Release must be rendered for review: the same chart, version "
        "and values as a v4 Chart in the stack, whose objects the pack judges.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Mirror the Release with a kubernetes:helm.sh/v4:Chart of the same chart, "
        "version, namespace, repository and values on a provider with renderYamlToDirectory "
        "(aimesh does this for every Release: aimesh/components/charts.py), or install the chart "
        "as a v4 Chart; exempt a Release you judge otherwise as `<namespace>/<release>`.",
        catches="kubernetes:helm.sh/v3:Release with no v4 Chart of identical release name, "
        "namespace, chart, version, repository, skipCrds, values and values files in the stack "
        "(values unknown until apply: cannot verify); a Release with a post-renderer.",
        check_stack=_rendered_for_review,
        kinds=frozenset({HELM_VALUES}),
    ),
)

__all__ = ["POLICIES"]
