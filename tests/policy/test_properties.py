"""No policy ever raises, whatever the input (property-based, over ALL policies).

Inputs: (1) random manifests of every kind any policy judges, with random JSON-ish values and
Pulumi's unknown sentinels anywhere; (2) every fixture document with random subtrees replaced by
random values (realistic structure, odd leaves); (3) the same through the pulumi_policy wrappers
with the SDK's unknown-checking proxy, exactly as the analyzer hands them over; (4) stack rules
over random sets of such objects; (5) random policy config.
"""

from __future__ import annotations

from typing import Any

import pulumi_policy
import pytest
from aimesh_policies import all_policies, build_pulumi_policies
from aimesh_policies.accessors import UNKNOWN_SENTINELS
from aimesh_policies.framework import Context, evaluate, evaluate_stack
from aimesh_policies.k8s_object import HELM_VALUES, SYNTHETIC_GROUP, K8sObject
from aimesh_policies.objects import to_objects
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

from tests.policy.support import OPTS, fixture_files, load_fixture, resources

POLICIES = all_policies()
WRAPPERS = build_pulumi_policies()
KINDS = sorted(
    {gk for p in POLICIES for gk in p.kinds if gk[0] != SYNTHETIC_GROUP}
    | {("", "Namespace"), ("apps", "Deployment"), ("serving.kserve.io", "InferenceService")}
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

unknown = st.sampled_from(sorted(UNKNOWN_SENTINELS))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "*",
            "STRICT",
            "PERMISSIVE",
            "DISABLE",
            "UNSET",
            "ALLOW",
            "DENY",
            "ISTIO_MUTUAL",
            "ALLOW_ANY",
            "false",
            "true",
            "0.0.0.0/0",
            "http://x",
            "istio-system",
            "8080,9090",
        ]
    ),
    unknown,
)
KEYS = st.sampled_from(
    [
        "spec",
        "metadata",
        "mtls",
        "mode",
        "rules",
        "from",
        "to",
        "source",
        "operation",
        "principals",
        "notPrincipals",
        "selector",
        "matchLabels",
        "labels",
        "annotations",
        "template",
        "containers",
        "securityContext",
        "portLevelMtls",
        "trafficPolicy",
        "tls",
        "host",
        "hosts",
        "values",
        "meshConfig",
        "jwtRules",
        "jwksUri",
        "predictor",
        "namespace",
        "name",
        "action",
        "ports",
        "paths",
        "global",
        "proxy",
        "data",
        "mesh",
        "sidecar.istio.io/inject",
        "traffic.sidecar.istio.io/excludeInboundPorts",
    ]
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=6)), children, max_size=5),
    ),
    max_leaves=25,
)


@st.composite
def manifests(
    draw: st.DrawFn, kinds: list[tuple[str, str]] | None = None
) -> tuple[str, dict[str, Any]]:
    group, kind = draw(st.sampled_from(kinds or KINDS))
    version = draw(st.sampled_from(["v1", "v1beta1", "v1alpha3", "v2"]))
    api_version = f"{group}/{version}" if group else version
    body: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    for key in ("metadata", "spec", "data", "template"):
        if draw(st.booleans()):
            body[key] = draw(json_values)
    form = draw(st.sampled_from(["custom-resource", "typed", "patch"]))
    if form == "custom-resource":
        type_ = "kubernetes:apiextensions.k8s.io:CustomResource"
    else:
        suffix = "Patch" if form == "patch" else ""
        type_ = f"kubernetes:{group or 'core'}/{version}:{kind}{suffix}"
    return type_, body


@st.composite
def helm_values(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    type_ = draw(st.sampled_from(["kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"]))
    chart = draw(
        st.one_of(st.sampled_from(["istiod", "gateway", "kserve", "oci://x/istiod"]), scalars)
    )
    return type_, {"chart": chart, "values": draw(json_values), "namespace": draw(scalars)}


def _mutate(value: Any, path: list[Any], replacement: Any) -> Any:
    if not path:
        return replacement
    head, rest = path[0], path[1:]
    if isinstance(value, dict) and head in value:
        return {**value, head: _mutate(value[head], rest, replacement)}
    if isinstance(value, list) and isinstance(head, int) and head < len(value):
        return [*value[:head], _mutate(value[head], rest, replacement), *value[head + 1 :]]
    return value


def _paths(value: Any, prefix: list[Any]) -> list[list[Any]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, [*prefix, k])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, [*prefix, i])
    return found


FIXTURES_BY_POLICY: dict[str, list[tuple[str, dict[str, Any]]]] = {}
for _path in fixture_files():
    for _typed in (False, True):
        for _type, _props, _, _ in resources(load_fixture(_path).documents, typed=_typed):
            FIXTURES_BY_POLICY.setdefault(_path.parent.name, []).append((_type, _props))
FIXTURE_RESOURCES = [r for rs in FIXTURES_BY_POLICY.values() for r in rs]


@st.composite
def mutated_fixtures(
    draw: st.DrawFn, pool: list[tuple[str, dict[str, Any]]] | None = None
) -> tuple[str, dict[str, Any]]:
    type_, props = draw(st.sampled_from(pool or FIXTURE_RESOURCES))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(props, [])))
        props = _mutate(props, path, draw(json_values))
    return type_, props if isinstance(props, dict) else {"value": props}


any_resource = st.one_of(manifests(), helm_values(), mutated_fixtures())
configs = st.one_of(
    st.just({}),
    st.dictionaries(
        st.sampled_from(
            [
                "exemptNamespaces",
                "exemptWorkloads",
                "exemptPorts",
                "controlPlaneNamespaces",
                "modelNamespaces",
                "modelNamespaceLabels",
                "modelWorkloadLabels",
                "meshRootNamespace",
                "gatewayNamespaces",
                "anonymousPaths",
                "clusterDomain",
                "requireInEveryStack",
                "maxAuditDays",
                "forbidAuditMode",
            ]
        ),
        json_values,
        max_size=4,
    ),
)


def _objects(resource: tuple[str, dict[str, Any]]) -> list[K8sObject]:
    type_, props = resource
    return to_objects(type_, props, "urn:pulumi:s::p::t::n", "n")


def _targeted(policy: Any) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """Resources aimed at one policy: its kinds, its own fixtures mutated, and anything."""
    kinds = sorted(gk for gk in policy.kinds if gk[0] != SYNTHETIC_GROUP) or None
    own = FIXTURES_BY_POLICY.get(policy.name) or None
    return st.one_of(manifests(kinds), mutated_fixtures(own), mutated_fixtures(own), helm_values())


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_each_policy_never_raises(policy: Any) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(_targeted(policy), min_size=1, max_size=4), config=configs)
    def run(batch: list[tuple[str, dict[str, Any]]], config: Any) -> None:
        ctx = Context.from_config(config)
        objs = [o for r in batch for o in _objects(r)]
        if policy.is_stack_rule:
            found = evaluate_stack(policy, objs, ctx)
        else:
            found = [f for o in objs for f in evaluate(policy, o, ctx)]
            if policy.fix is not None:
                for o in objs:
                    if policy.applies_to(o):
                        policy.fix(o)
        assert all(isinstance(f.message, str) and f.message for f in found)

    run()


@SETTINGS
@given(resource=any_resource, config=configs)
def test_resource_rules_never_raise(resource: tuple[str, dict[str, Any]], config: Any) -> None:
    ctx = Context.from_config(config)
    for obj in _objects(resource):
        for policy in POLICIES:
            if not policy.is_stack_rule:
                for found in evaluate(policy, obj, ctx):
                    assert isinstance(found.message, str)
                    assert found.message


@SETTINGS
@given(batch=st.lists(any_resource, max_size=6), config=configs)
def test_stack_rules_never_raise(batch: list[tuple[str, dict[str, Any]]], config: Any) -> None:
    ctx = Context.from_config(config)
    objs = [o for r in batch for o in _objects(r)]
    for policy in POLICIES:
        if policy.is_stack_rule:
            for found in evaluate_stack(policy, objs, ctx):
                assert isinstance(found.message, str)


@SETTINGS
@given(resource=any_resource, config=configs)
def test_fixes_never_raise(resource: tuple[str, dict[str, Any]], config: Any) -> None:
    for obj in _objects(resource):
        for policy in POLICIES:
            if policy.fix is not None and policy.applies_to(obj):
                fixed = policy.fix(obj)
                assert fixed is None or isinstance(fixed, dict)


class _Sink:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, message: str, urn: str | None = None) -> None:
        assert isinstance(message, str)
        self.count += 1


@SETTINGS
@given(resource=any_resource)
def test_wrappers_never_raise_through_the_sdk_proxy(resource: tuple[str, dict[str, Any]]) -> None:
    type_, props = resource
    proxied = unknown_checking_proxy(deserialize_properties(props))
    args = pulumi_policy.ResourceValidationArgs(type_, proxied, "urn:x", "n", OPTS, None, {})
    stack_args = pulumi_policy.StackValidationArgs(
        [pulumi_policy.PolicyResource(type_, proxied, "urn:x", "n", OPTS, None, None, [], {})], {}
    )
    for wrapper in WRAPPERS:
        if isinstance(wrapper, pulumi_policy.ResourceValidationPolicy):
            wrapper.validate(args, _Sink())
            if wrapper.has_remediation():
                wrapper.remediate(args)
        else:
            wrapper.validate(stack_args, _Sink())


def test_strategies_reach_every_kind_and_chart_values() -> None:
    # Guards the generators themselves: every judged kind and the Helm forms are generated.
    judged = {gk for p in POLICIES for gk in p.kinds}
    assert {gk for gk in judged if gk[0] != SYNTHETIC_GROUP} <= set(KINDS)
    assert HELM_VALUES in judged
    assert len(FIXTURE_RESOURCES) > 100
