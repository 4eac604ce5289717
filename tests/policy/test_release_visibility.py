"""Helm v3 Releases are visible to the pack (aimesh/components/charts.py mirrors each one with a
render-only Helm v3 Chart whose objects carry `aimesh.io/rendered-from`; the pack's
`helm-release-require-rendered-output` refuses a Release no such object stands for), shown on the
prod stack through the analyzer protocol, the way `pulumi preview --policy-pack` drives the pack.

Offline there is no Helm: the program's `kubernetes:helm:template` calls are answered here with
the objects a chart would render (`_helm`), and everything after that is the program's and the
pack's own code: the mirror's transformation stamps them, the SDK registers them as children on
the render-only provider, the pack judges them. The real rendering (cert-manager's chart by the
real provider, for the cluster's Kubernetes version) is in `make e2e`, step a-preview."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from aimesh_policies import to_objects
from aimesh_policies.k8s_object import HELM_VALUES
from aimesh_policies.visibility import stamp_of
from google.protobuf import json_format, struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from aimesh.builders.charts import RENDERED_FROM, ChartLocation, rendered_from
from aimesh.components.charts import MIRROR_SUFFIX, RELEASE_TYPE
from tools import offline
from tools.analyzer import Resource, load_policy_config
from tools.check import RENDERED_OUTPUT, Target, run, stack_target

CONFIG = load_policy_config(
    Path(__file__).resolve().parents[2] / "policy-pack" / "policy-config.json"
)
MONITORING = "aimesh-monitoring"
ALLOW_ALL = "istio-authorizationpolicy-forbid-allow-all"
# What kube-prometheus-stack would render from an `extraManifests` entry: an AuthorizationPolicy
# that allows everyone, in the root namespace.
OPEN_POLICY = yaml.safe_load(
    """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: open, namespace: istio-system}
spec: {action: ALLOW, rules: [{}]}
"""
)


def _helm(extra: Mapping[str, list[dict[str, Any]]]) -> offline.Invokes:
    """`helm template` offline: every release renders its own ServiceAccount (plus `extra` by
    release name), as the chart would into the release's namespace."""

    def invokes(token: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        if token != offline.HELM_TEMPLATE:
            return {}
        opts = json.loads(args["jsonOpts"])
        release = opts["release_name"]
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": release, "namespace": opts["namespace"]},
        }
        return {"result": [account, *extra.get(release, [])]}

    return invokes


@pytest.fixture(scope="module")
def prod() -> Target:
    return stack_target("prod", invokes=_helm({}))


def _mandatory(target: Target) -> set[tuple[str, str]]:
    report = run(target, policy_config=CONFIG)
    return {(d.policy_name, d.urn) for d in report.result.mandatory}


def _releases(target: Target) -> list[Resource]:
    return [r for r in target.resources if r.type == RELEASE_TYPE]


def _stamp(resource: Resource) -> str | None:
    stamp = ((resource.properties.get("metadata") or {}).get("annotations") or {}).get(
        RENDERED_FROM
    )
    return stamp if isinstance(stamp, str) else None


def test_every_release_of_prod_is_mirrored_and_accepted(prod: Target) -> None:
    releases = _releases(prod)
    # cert-manager, istio base, istiod, kube-prometheus-stack
    assert len(releases) == 4
    assert not prod.not_evaluated
    stamps = {_stamp(r) for r in prod.resources} - {None}
    for release in releases:
        props = release.properties
        (stamp,) = [
            s for s in stamps if s and s.startswith(f"{props['namespace']}/{props['name']} ")
        ]
        # Each rendered object sits on the mirror's render-only provider, never the cluster's.
        children = [r for r in prod.resources if _stamp(r) == stamp]
        assert children
        for child in children:
            assert child.provider is not None
            assert child.provider.name == release.name + MIRROR_SUFFIX
            assert child.provider.properties.get("renderYamlToDirectory")
    assert RENDERED_OUTPUT not in {name for name, _ in _mandatory(prod)}


def test_a_weakening_inside_a_releases_output_is_stopped() -> None:
    target = stack_target("prod", invokes=_helm({"aimesh-monitoring": [OPEN_POLICY]}))
    (child,) = [
        r
        for r in target.resources
        if r.type == "kubernetes:security.istio.io/v1:AuthorizationPolicy"
        and r.properties["metadata"]["name"] == "open"
    ]
    found = _mandatory(target)
    # The object the Release would install is refused in preview...
    assert (ALLOW_ALL, child.urn) in found
    # ...while the Release itself is accepted: its mirror is faithful.
    assert RENDERED_OUTPUT not in {name for name, _ in found}


def test_a_release_the_pack_cannot_see_into_is_refused(prod: Target) -> None:
    monitoring = next(r for r in _releases(prod) if r.name == MONITORING)
    prefix = f"{monitoring.properties['namespace']}/{monitoring.properties['name']} "
    hidden = [r for r in prod.resources if (_stamp(r) or "").startswith(prefix)]
    assert hidden
    found = _mandatory(
        dataclasses.replace(prod, resources=[r for r in prod.resources if r not in hidden])
    )
    assert {urn for name, urn in found if name == RENDERED_OUTPUT} == {monitoring.urn}


def test_a_mirror_that_shows_other_values_than_the_release_is_refused(prod: Target) -> None:
    # Only the Release gets the extra object: its mirror (and so the pack) would not see it.
    monitoring = next(r for r in _releases(prod) if r.name == MONITORING)
    values = {**monitoring.properties["values"], "extraManifests": [yaml.safe_dump(OPEN_POLICY)]}
    weakened = dataclasses.replace(
        monitoring, properties={**monitoring.properties, "values": values}
    )
    resources = [weakened if r.urn == monitoring.urn else r for r in prod.resources]
    found = _mandatory(dataclasses.replace(prod, resources=resources))
    assert found == {(RENDERED_OUTPUT, monitoring.urn)}


def test_offline_without_helm_the_rule_is_not_evaluated_and_says_so() -> None:
    target = stack_target("prod")
    assert set(target.not_evaluated) == {RENDERED_OUTPUT}
    assert any(RENDERED_OUTPUT in note for note in target.notes)
    report = run(target, policy_config=CONFIG)
    assert RENDERED_OUTPUT not in {d.policy_name for d in report.result.mandatory}


JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_SCALARS | st.floats(allow_nan=False, allow_infinity=False, width=32),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    values=st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=5),
    repo=st.none() | st.just("https://charts.example.com"),
    skip_crds=st.booleans(),
)
def test_the_program_and_the_pack_compute_the_same_stamp(
    values: dict[str, Any], repo: str | None, skip_crds: bool
) -> None:
    # The program stamps from its own values; the pack sees the Release's inputs after the wire
    # (protobuf Struct: every number a float; the provider also drops nulls).
    where = ChartLocation("istiod", repo)
    stamped = rendered_from(
        release="istiod",
        namespace="istio-system",
        where=where,
        version="1.30.3",
        skip_crds=skip_crds,
        values=values,
    )
    wire = struct_pb2.Struct()
    wire.update(
        {
            "name": "istiod",
            "namespace": "istio-system",
            "chart": "istiod",
            "version": "1.30.3",
            "skipCrds": skip_crds,
            "values": values,
            **({"repositoryOpts": {"repo": repo}} if repo else {}),
        }
    )
    props = json_format.MessageToDict(wire)
    (release,) = [
        o
        for o in to_objects(RELEASE_TYPE, props, "urn:x", "aimesh-istiod")
        if o.group_kind == HELM_VALUES
    ]
    assert stamp_of(release) == stamped
    # Another value is another stamp.
    other = rendered_from(
        release="istiod",
        namespace="istio-system",
        where=where,
        version="1.30.3",
        skip_crds=skip_crds,
        values={**values, "extra": "x"},
    )
    assert other != stamped
