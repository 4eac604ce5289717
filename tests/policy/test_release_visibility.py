"""Helm v3 Releases are visible to the pack (aimesh/components/charts.py mirrors each one; the
pack's `helm-release-require-rendered-output` refuses one it cannot see into), shown on the prod
stack through the analyzer protocol, the way `pulumi preview --policy-pack` drives the pack.

The prod stack is evaluated offline (tools.check), so the mirrors' children - which the Kubernetes
provider renders during a real preview - are not there by themselves: each test adds the object
that the chart renders from the values it sets, under the mirror Chart, exactly as the engine
registers a v4 Chart's children (type token, parent, provider)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from aimesh.components.charts import MIRROR_SUFFIX, RELEASE_TYPE
from tools.analyzer import ProviderResource, Resource, load_policy_config
from tools.check import CHART_TYPE, Target, k8s_type, run, stack_target

CONFIG = load_policy_config(
    Path(__file__).resolve().parents[2] / "policy-pack" / "policy-config.json"
)
RENDERED_OUTPUT = "helm-release-require-rendered-output"
MONITORING = "aimesh-monitoring"
# Not mirrored (its chart demands Kubernetes >= 1.22, which Helm cannot assume without a
# cluster), exempted by name in policy-config.json: docs/platform.md.
UNMIRRORED = "aimesh-cert-manager"
ALLOW_ALL = "istio-authorizationpolicy-forbid-allow-all"
# kube-prometheus-stack renders every `extraManifests` entry as a manifest: the values show the
# pack a string, the Release installs an AuthorizationPolicy that allows everyone.
OPEN_POLICY = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: open, namespace: istio-system}
spec: {action: ALLOW, rules: [{}]}
"""


@pytest.fixture(scope="module")
def prod() -> Target:
    return stack_target("prod")


def _named(target: Target, name: str, type_: str) -> Resource:
    (found,) = [r for r in target.resources if r.name == name and r.type == type_]
    return found


def _weakened(resource: Resource) -> Resource:
    values = dict(resource.properties["values"])
    values["extraManifests"] = [OPEN_POLICY]
    return dataclasses.replace(resource, properties={**resource.properties, "values": values})


def _rendered_child(target: Target, mirror: Resource, manifest: dict[str, Any]) -> Resource:
    """The resource the engine registers for one object a v4 Chart renders."""
    provider = _named(target, mirror.name, "pulumi:providers:kubernetes")
    type_ = k8s_type(manifest["apiVersion"], manifest["kind"])
    meta = manifest["metadata"]
    name = f"{mirror.name}:{meta['namespace']}/{meta['name']}"
    prefix, _, _ = mirror.urn.rpartition("::")
    return Resource(
        type=type_,
        urn=f"{prefix}${type_}::{name}",
        name=name,
        properties=manifest,
        parent=mirror.urn,
        provider=ProviderResource(
            type=provider.type,
            urn=provider.urn,
            name=provider.name,
            properties=provider.properties,
        ),
    )


def _mandatory(target: Target) -> set[tuple[str, str]]:
    report = run(target, policy_config=CONFIG)
    return {(d.policy_name, d.urn) for d in report.result.mandatory}


def test_every_release_of_prod_is_mirrored_with_its_values(prod: Target) -> None:
    releases = [r for r in prod.resources if r.type == RELEASE_TYPE and r.name != UNMIRRORED]
    assert len(releases) == 3  # istio base, istiod, kube-prometheus-stack
    for release in releases:
        mirror = _named(prod, release.name + MIRROR_SUFFIX, CHART_TYPE)
        assert mirror.properties["values"] == release.properties["values"]


def test_a_weakening_inside_a_releases_output_is_stopped(prod: Target) -> None:
    release = _named(prod, MONITORING, RELEASE_TYPE)
    mirror = _named(prod, MONITORING + MIRROR_SUFFIX, CHART_TYPE)
    weakened = {release.urn: _weakened(release), mirror.urn: _weakened(mirror)}
    resources = [weakened.get(r.urn, r) for r in prod.resources]
    child = _rendered_child(prod, mirror, yaml.safe_load(OPEN_POLICY))
    found = _mandatory(dataclasses.replace(prod, resources=[*resources, child]))
    # The object the Release would install is refused in preview...
    assert (ALLOW_ALL, child.urn) in found
    # (an allow-all in the root namespace undoes other guarantees too, which their policies say)
    assert {name for name, _ in found} >= {ALLOW_ALL, "istio-model-allow-require-source"}
    # ...while the Release itself is accepted: its mirror is faithful.
    assert RENDERED_OUTPUT not in {name for name, _ in found}


def test_a_release_the_pack_cannot_see_into_is_refused(prod: Target) -> None:
    hidden = {r.urn for r in prod.resources if r.name.endswith(MIRROR_SUFFIX)}
    found = _mandatory(
        dataclasses.replace(prod, resources=[r for r in prod.resources if r.urn not in hidden])
    )
    releases = {r.urn for r in prod.resources if r.type == RELEASE_TYPE and r.name != UNMIRRORED}
    assert {urn for name, urn in found if name == RENDERED_OUTPUT} == releases


def test_a_mirror_that_shows_other_values_than_the_release_is_refused(prod: Target) -> None:
    # Only the Release gets the extra object: the mirror (and so the pack) would not see it.
    release = _named(prod, MONITORING, RELEASE_TYPE)
    resources = [_weakened(r) if r.urn == release.urn else r for r in prod.resources]
    found = _mandatory(dataclasses.replace(prod, resources=resources))
    assert found == {(RENDERED_OUTPUT, release.urn)}
