"""The framework: normalization of every arrival form and served version, unknown values, policy
config and exemptions, and the pulumi_policy wrappers (validate, remediate, stack)."""

from __future__ import annotations

import datetime
from typing import Any

import pulumi_policy
import pytest
from aimesh_policies import (
    CONCERNS,
    all_policies,
    build_pulumi_policies,
    config_schema,
    missing_concerns,
)
from aimesh_policies.accessors import (
    SENTINEL_UNKNOWN_STRING,
    UNKNOWN,
    UNKNOWN_SENTINELS,
    as_bool,
    as_int,
    get,
    plain,
    unknown_paths,
)
from aimesh_policies.framework import (
    COMMON_CONFIG_SCHEMA,
    Context,
    Level,
    Policy,
    Severity,
    evaluate,
)
from aimesh_policies.k8s_object import HELM_VALUES, MESH_CONFIG, SOURCE_CHART_VALUES, K8sObject
from aimesh_policies.mtls import POLICIES as MTLS
from aimesh_policies.objects import object_from_manifest, quick_group_kinds, to_objects
from aimesh_policies.pods import pods
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from tests.policy.support import OPTS

PA = {
    "apiVersion": "security.istio.io/v1",
    "kind": "PeerAuthentication",
    "metadata": {"name": "default", "namespace": "istio-system"},
    "spec": {"mtls": {"mode": "PERMISSIVE"}},
}
STRICT_PA = next(p for p in MTLS if p.name == "istio-peerauthentication-require-strict-mtls")


def _with(manifest: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**manifest, **changes}


# --- normalization -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
@pytest.mark.parametrize("form", ["custom-resource", "typed"])
def test_security_istio_io_every_version_and_form(version: str, form: str) -> None:
    manifest = _with(PA, apiVersion=f"security.istio.io/{version}")
    type_ = (
        "kubernetes:apiextensions.k8s.io:CustomResource"
        if form == "custom-resource"
        else f"kubernetes:security.istio.io/{version}:PeerAuthentication"
    )
    [obj] = to_objects(type_, manifest, "urn:x", "pa")
    assert obj.group_kind == ("security.istio.io", "PeerAuthentication")
    assert (obj.version, obj.name, obj.namespace, obj.urn) == (
        version,
        "default",
        "istio-system",
        "urn:x",
    )
    assert evaluate(STRICT_PA, obj, Context())


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
def test_networking_istio_io_every_version(version: str) -> None:
    manifest = {
        "apiVersion": f"networking.istio.io/{version}",
        "kind": "DestinationRule",
        "metadata": {"name": "r", "namespace": "a"},
        "spec": {"host": "reviews", "trafficPolicy": {"tls": {"mode": "DISABLE"}}},
    }
    [obj] = to_objects("kubernetes:apiextensions.k8s.io:CustomResource", manifest)
    policy = next(p for p in MTLS if p.name == "istio-destinationrule-require-istio-mutual")
    assert obj.group_kind == ("networking.istio.io", "DestinationRule")
    assert evaluate(policy, obj, Context())


def test_typed_token_without_api_version_in_props() -> None:
    # A rendered chart child may carry only metadata/spec: the type token names group/kind.
    [obj] = to_objects(
        "kubernetes:core/v1:Namespace", {"metadata": {"name": "models"}}, "urn:ns", "ns"
    )
    assert (obj.group, obj.version, obj.kind, obj.name) == ("", "v1", "Namespace", "models")
    [dep] = to_objects("kubernetes:apps/v1:Deployment", {"metadata": {"name": "d"}})
    assert dep.group_kind == ("apps", "Deployment")


def test_patch_and_list_types() -> None:
    [patch] = to_objects("kubernetes:core/v1:NamespacePatch", {"metadata": {"name": "m"}})
    assert patch.kind == "Namespace"
    assert patch.patch
    items = {"items": [PA, _with(PA, metadata={"name": "b", "namespace": "x"})]}
    listed = to_objects("kubernetes:security.istio.io/v1:PeerAuthenticationList", items)
    assert [o.name for o in listed] == ["default", "b"]


def test_components_are_skipped_their_children_judged() -> None:
    for type_ in ("kubernetes:yaml/v2:ConfigGroup", "kubernetes:yaml:ConfigFile"):
        assert to_objects(type_, {"objs": [PA]}) == []
    assert to_objects("aws:s3/bucket:Bucket", {"acl": "public"}) == []
    assert to_objects("pulumi:providers:kubernetes", {"kubeconfig": "x"}) == []


@pytest.mark.parametrize(
    ("type_", "chart"),
    [
        ("kubernetes:helm.sh/v3:Release", "istiod"),
        ("kubernetes:helm.sh/v4:Chart", "oci://registry.example/istio/istiod"),
        ("kubernetes:helm.sh/v4:Chart", "istio-discovery"),
    ],
)
def test_helm_values_become_mesh_config(type_: str, chart: str) -> None:
    props = {
        "chart": chart,
        "namespace": "istio-system",
        "values": {"meshConfig": {"enableAutoMtls": False}},
    }
    objs = to_objects(type_, props, "urn:istiod", "istiod")
    kinds = {o.group_kind for o in objs}
    assert kinds == {HELM_VALUES, MESH_CONFIG}
    mesh = next(o for o in objs if o.group_kind == MESH_CONFIG)
    assert mesh.source == SOURCE_CHART_VALUES
    assert mesh.get("enableAutoMtls") is False
    assert mesh.field("enableAutoMtls") == "values.meshConfig.enableAutoMtls"


def test_other_charts_give_only_helm_values() -> None:
    objs = to_objects("kubernetes:helm.sh/v3:Release", {"chart": "gateway", "values": {}})
    assert [o.group_kind for o in objs] == [HELM_VALUES]


def test_mesh_configmap_and_istiooperator_give_mesh_config() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": "enableAutoMtls: false\noutboundTrafficPolicy: {mode: ALLOW_ANY}\n"},
    }
    [configmap, mesh] = to_objects("kubernetes:core/v1:ConfigMap", cm)
    assert configmap.kind == "ConfigMap"
    assert mesh.group_kind == MESH_CONFIG
    assert mesh.get("outboundTrafficPolicy.mode") == "ALLOW_ANY"
    assert mesh.field("enableAutoMtls") == "data.mesh.enableAutoMtls"
    bad = _with(cm, data={"mesh": "{not: yaml: at all"})
    assert [o.kind for o in to_objects("kubernetes:core/v1:ConfigMap", bad)] == ["ConfigMap"]
    other = _with(cm, metadata={"name": "settings"})
    assert [o.kind for o in to_objects("kubernetes:core/v1:ConfigMap", other)] == ["ConfigMap"]
    iop = {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": "cp"},
        "spec": {"meshConfig": {"enableAutoMtls": False}},
    }
    kinds = [
        o.group_kind for o in to_objects("kubernetes:apiextensions.k8s.io:CustomResource", iop)
    ]
    assert MESH_CONFIG in kinds


def test_quick_kinds_agree_with_normalization() -> None:
    cases = [
        ("kubernetes:apiextensions.k8s.io:CustomResource", PA),
        ("kubernetes:security.istio.io/v1beta1:PeerAuthentication", PA),
        ("kubernetes:core/v1:ConfigMap", {"metadata": {"name": "istio"}, "data": {"mesh": "{}"}}),
        ("kubernetes:helm.sh/v3:Release", {"chart": "istiod", "values": {}}),
        ("kubernetes:core/v1:NamespacePatch", {"metadata": {"name": "x"}}),
    ]
    for type_, props in cases:
        quick = quick_group_kinds(type_, props)
        assert quick is not None
        assert {o.group_kind for o in to_objects(type_, props)} <= quick


def test_plain_manifest_loader() -> None:
    [obj] = object_from_manifest(PA)
    assert obj.group_kind == ("security.istio.io", "PeerAuthentication")
    assert object_from_manifest({"metadata": {}}) == []


def test_pod_templates_of_every_workload_kind() -> None:
    template: dict[str, Any] = {
        "metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c"}]},
    }
    cases: dict[tuple[str, str], dict[str, Any]] = {
        ("apps/v1", "Deployment"): {"spec": {"template": template}},
        ("apps/v1", "StatefulSet"): {"spec": {"template": template}},
        ("apps/v1", "DaemonSet"): {"spec": {"template": template}},
        ("apps/v1", "ReplicaSet"): {"spec": {"template": template}},
        ("v1", "ReplicationController"): {"spec": {"template": template}},
        ("batch/v1", "Job"): {"spec": {"template": template}},
        ("batch/v1", "CronJob"): {"spec": {"jobTemplate": {"spec": {"template": template}}}},
        ("v1", "PodTemplate"): {"template": template},
        ("v1", "Pod"): template,
    }
    for (api_version, kind), body in cases.items():
        [obj] = object_from_manifest({"apiVersion": api_version, "kind": kind, **body})
        [pod] = pods(obj)
        assert pod.labels == {"a": "b"}, kind
        assert [c["name"] for _, c in pod.containers] == ["c"], kind


def test_inferenceservice_components_merge_metadata() -> None:
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "m", "annotations": {"x": "1"}},
        "spec": {
            "predictor": {
                "annotations": {"y": "2"},
                "model": {"modelFormat": {"name": "sklearn"}},
                "containers": [{"name": "side"}],
                "workerSpec": {"containers": [{"name": "w"}]},
            },
            "transformer": {"labels": {"z": "3"}, "containers": [{"name": "t"}]},
        },
    }
    [obj] = object_from_manifest(isvc)
    views = {v.path: v for v in pods(obj)}
    assert set(views) == {"spec.predictor", "spec.predictor.workerSpec", "spec.transformer"}
    assert views["spec.predictor"].annotations == {"x": "1", "y": "2"}
    assert {p for p, _ in views["spec.predictor"].containers} == {
        "spec.predictor.containers[0]",
        "spec.predictor.model",
    }
    assert views["spec.transformer"].labels == {"z": "3"}


# --- unknown values ------------------------------------------------------------------------------


def test_every_sentinel_becomes_unknown() -> None:
    for sentinel in UNKNOWN_SENTINELS:
        assert plain({"a": [sentinel]}) == {"a": [UNKNOWN]}


def test_pulumi_output_unknown_becomes_unknown() -> None:
    from pulumi.output import Unknown

    assert plain({"a": Unknown()}) == {"a": UNKNOWN}  # type: ignore[no-untyped-call]


def test_proxy_is_unwrapped_without_raising() -> None:
    raw = _with(PA, spec={"mtls": {"mode": SENTINEL_UNKNOWN_STRING}})
    proxied = unknown_checking_proxy(deserialize_properties(raw))
    with pytest.raises(UnknownValueError):
        _ = proxied["spec"]["mtls"]["mode"]  # what a naive policy would hit
    [obj] = to_objects("kubernetes:apiextensions.k8s.io:CustomResource", proxied)
    assert obj.get("spec.mtls.mode") is UNKNOWN
    messages = [f.message for f in evaluate(STRICT_PA, obj, Context())]
    assert any("spec.mtls.mode: cannot verify: value unknown until apply" in m for m in messages)


def test_unknown_paths_are_deep_and_indexed() -> None:
    body = {"spec": {"rules": [{"from": UNKNOWN}, {"to": [{"x": UNKNOWN}]}]}}
    assert unknown_paths(body, "spec.rules[].from") == ["spec.rules[0].from"]
    assert unknown_paths(body, "spec") == ["spec.rules[0].from", "spec.rules[1].to[0].x"]
    assert unknown_paths(UNKNOWN, "spec") == ["(whole object)"]


def test_unknown_namespace_is_reported() -> None:
    raw = _with(PA, metadata={"name": "x", "namespace": SENTINEL_UNKNOWN_STRING})
    [obj] = to_objects("kubernetes:security.istio.io/v1:PeerAuthentication", raw)
    messages = [f.message for f in evaluate(STRICT_PA, obj, Context())]
    assert any("metadata.namespace: cannot verify" in m for m in messages)


def test_accessors_are_total() -> None:
    assert get({"a": 1}, "a.b.c") is None
    assert get({"a": UNKNOWN}, "a.b") is UNKNOWN
    assert get(None, "a") is None
    assert as_int("8080") == 8080
    assert as_int(True) is None
    assert as_int("x") is None
    assert as_int("²") is None  # found by hypothesis: isdigit() but not int()
    assert as_bool("False") is False
    assert as_bool(1) is None


# --- config and exemptions -----------------------------------------------------------------------


def _until(what: str, value: object, days: int = 30, reason: str = "why") -> dict[str, object]:
    day = datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=days)
    return {what: value, "reason": reason, "expires": day.isoformat()}


def test_context_from_config_and_defaults() -> None:
    ctx = Context.from_config(
        {
            "exemptNamespaces": [_until("name", "legacy")],
            "exemptWorkloads": [
                _until("name", n) for n in ("team/web", "batch/*", "cluster-thing")
            ],
            "exemptPorts": [_until("port", 9090), _until("port", "15020"), _until("port", "x")],
            "meshRootNamespace": "mesh-root",
            "modelNamespaceLabels": {"aimesh.io/model": "*"},
        }
    )
    assert ctx.exempt_ports == frozenset({9090, 15020})
    assert ctx.mesh_root_namespace == "mesh-root"

    def obj(name: str, namespace: str = "", kind: str = "Deployment") -> K8sObject:
        return K8sObject("apps", "v1", kind, name, namespace, {}, {}, {})

    assert ctx.is_exempt(obj("anything", "legacy"))
    assert ctx.is_exempt(obj("web", "team"))
    assert not ctx.is_exempt(obj("api", "team"))
    assert ctx.is_exempt(obj("job", "batch"))
    assert ctx.is_exempt(obj("cluster-thing"))
    assert ctx.namespace_labels_select({"aimesh.io/model": "m"})
    assert not ctx.namespace_labels_select({})
    defaults = Context()
    assert "istio-system" in defaults.control_plane_namespaces
    assert not defaults.namespace_labels_select({"aimesh.io/model": "m"})


@pytest.mark.parametrize(
    "config",
    [
        None,
        "junk",
        7,
        {"exemptNamespaces": "notalist"},
        {"exemptPorts": {}},
        {"exemptNamespaces": [{"name": 3, "reason": [], "expires": "2027-02-30"}]},
        {"exemptPorts": [{"port": 70000, "reason": "r", "expires": "2027-01-01"}]},
    ],
)
def test_context_from_odd_config_never_raises(config: object) -> None:
    ctx = Context.from_config(config)
    assert ctx.mesh_root_namespace == "istio-system"
    assert not ctx.exempt_namespaces
    assert not ctx.exempt_ports


def test_exemption_silences_a_policy() -> None:
    [obj] = object_from_manifest(PA)
    assert evaluate(STRICT_PA, obj, Context())
    config = {"exemptNamespaces": [_until("name", "istio-system")]}
    assert not evaluate(STRICT_PA, obj, Context.from_config(config))


@pytest.mark.parametrize(
    "entry",
    [
        "istio-system",  # the old form: no reason, no expiry
        {"name": "istio-system", "expires": "2099-01-01"},
        {"name": "istio-system", "reason": "  ", "expires": "2099-01-01"},
        {"name": "istio-system", "reason": "why"},
        {"name": "istio-system", "reason": "why", "expires": "someday"},
    ],
)
def test_an_exemption_without_reason_and_expiry_never_exempts(entry: object) -> None:
    [obj] = object_from_manifest(PA)
    assert evaluate(STRICT_PA, obj, Context.from_config({"exemptNamespaces": [entry]}))


def test_an_exemption_applies_through_its_last_day_then_lapses_and_says_so() -> None:
    [obj] = object_from_manifest(PA)
    last_day = Context.from_config({"exemptNamespaces": [_until("name", "istio-system", 0)]})
    assert not evaluate(STRICT_PA, obj, last_day)
    lapsed = Context.from_config(
        {"exemptNamespaces": [_until("name", "istio-system", -1, "legacy mesh, TICKET-7")]}
    )
    [found] = evaluate(STRICT_PA, obj, lapsed)
    assert "Not exempt: exemptNamespaces entry 'istio-system' (legacy mesh, TICKET-7)" in (
        found.message
    )
    # Judged as of another day, the same entry still holds.
    earlier = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=5)
    config = {"exemptNamespaces": [_until("name", "istio-system", -1)]}
    assert not evaluate(STRICT_PA, obj, Context.from_config(config, on=earlier))


def test_every_policy_config_schema_has_the_common_keys_with_defaults() -> None:
    for name, schema in config_schema().items():
        assert set(COMMON_CONFIG_SCHEMA) <= set(schema), name
        assert all("default" in prop for prop in schema.values()), name


def test_policy_definition_is_checked() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Policy("x", "d", Severity.LOW, Level.ADVISORY, "r", "c")


# --- registry ------------------------------------------------------------------------------------


def test_every_concern_module_is_present() -> None:
    assert missing_concerns() == [], f"concern modules missing: {missing_concerns()}"


# Stack rules that must look at objects of any kind, and why.
READS_EVERY_OBJECT = {
    # Looks for the `aimesh.io/rendered-from` stamp a Release's mirror puts on whatever it renders.
    "helm-release-require-rendered-output",
}


def test_policies_are_complete_and_unique() -> None:
    policies = all_policies()
    assert {p.concern for p in policies} <= set(CONCERNS)
    for p in policies:
        assert all((p.name, p.description, p.remediation, p.catches)), p.name
        assert p.name == p.name.lower(), p.name
        assert " " not in p.name, p.name
        assert p.kinds or p.name in READS_EVERY_OBJECT, (
            f"{p.name}: set kinds (a rule that judges every object is a mistake)"
        )


# --- pulumi_policy wrappers ----------------------------------------------------------------------


class _Reports:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str | None]] = []

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.messages.append((message, urn))


def _args(type_: str, props: dict[str, Any], config: dict[str, Any] | None = None) -> Any:
    proxied = unknown_checking_proxy(deserialize_properties(props))
    return pulumi_policy.ResourceValidationArgs(
        type_, proxied, "urn:pulumi:s::p::t::n", "n", OPTS, None, config or {}
    )


def _wrapper(name: str) -> Any:
    return next(p for p in build_pulumi_policies() if p.name == name)


def test_wrappers_carry_levels_severity_and_remediation() -> None:
    wrappers = {p.name: p for p in build_pulumi_policies()}
    for policy in all_policies():
        wrapper = wrappers[policy.name]
        expected_class = (
            pulumi_policy.StackValidationPolicy
            if policy.is_stack_rule
            else pulumi_policy.ResourceValidationPolicy
        )
        assert isinstance(wrapper, expected_class)
        assert wrapper.enforcement_level is not None
        assert wrapper.enforcement_level.value == policy.level.value
        assert wrapper.severity is not None
        assert wrapper.severity.value == policy.severity.value
        assert wrapper.remediation_steps == policy.remediation
        assert wrapper.config_schema is not None
        assert set(COMMON_CONFIG_SCHEMA) <= set(wrapper.config_schema.properties)


def test_resource_wrapper_reports_and_respects_config() -> None:
    wrapper = _wrapper("istio-peerauthentication-require-strict-mtls")
    reports = _Reports()
    wrapper.validate(_args("kubernetes:security.istio.io/v1:PeerAuthentication", PA), reports)
    assert len(reports.messages) == 1
    assert reports.messages[0][1] == "urn:pulumi:s::p::t::n"
    reports = _Reports()
    config = {"exemptNamespaces": [_until("name", "istio-system")]}
    wrapper.validate(
        _args("kubernetes:security.istio.io/v1:PeerAuthentication", PA, config), reports
    )
    assert reports.messages == []


def test_resource_wrapper_skips_other_kinds_cheaply() -> None:
    wrapper = _wrapper("istio-peerauthentication-require-strict-mtls")
    reports = _Reports()
    wrapper.validate(_args("kubernetes:core/v1:Namespace", {"metadata": {"name": "x"}}), reports)
    assert reports.messages == []


def test_remediation_raises_to_strict() -> None:
    wrapper = _wrapper("istio-peerauthentication-require-strict-mtls")
    assert wrapper.has_remediation()
    props = _with(
        PA,
        spec={"mtls": {"mode": "PERMISSIVE"}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}},
    )
    fixed = wrapper.remediate(_args("kubernetes:apiextensions.k8s.io:CustomResource", props))
    assert fixed["spec"]["mtls"]["mode"] == "STRICT"
    assert fixed["spec"]["portLevelMtls"]["8080"]["mode"] == "STRICT"
    assert fixed["metadata"] == PA["metadata"]
    # Nothing to fix: no remediation.
    ok = _with(PA, spec={"mtls": {"mode": "STRICT"}})
    assert wrapper.remediate(_args("kubernetes:apiextensions.k8s.io:CustomResource", ok)) is None


def test_remediation_keeps_unknowns_as_unknowns() -> None:
    wrapper = _wrapper("istio-peerauthentication-require-strict-mtls")
    props = _with(
        PA,
        metadata={
            "name": "default",
            "namespace": "istio-system",
            "labels": {"v": SENTINEL_UNKNOWN_STRING},
        },
    )
    fixed = wrapper.remediate(_args("kubernetes:apiextensions.k8s.io:CustomResource", props))
    assert fixed["metadata"]["labels"]["v"] == SENTINEL_UNKNOWN_STRING


def test_stack_wrapper_reports_absence() -> None:
    wrapper = _wrapper("istio-mesh-require-strict-peerauthentication")
    release = {"chart": "istiod", "namespace": "istio-system", "values": {}}
    resources = [
        pulumi_policy.PolicyResource(
            "kubernetes:helm.sh/v3:Release",
            unknown_checking_proxy(deserialize_properties(release)),
            "urn:istiod",
            "istiod",
            OPTS,
            None,
            None,
            [],
            {},
        )
    ]
    reports = _Reports()
    wrapper.validate(pulumi_policy.StackValidationArgs(resources, {}), reports)
    assert reports.messages
    assert reports.messages[0][0].startswith("stack: no mesh-wide STRICT")


def test_sentinels_match_the_sdk() -> None:
    from pulumi_policy import proxy

    sdk = {
        getattr(proxy, n) for n in dir(proxy) if n.startswith("UNKNOWN_") and n.endswith("_VALUE")
    }
    assert sdk == set(UNKNOWN_SENTINELS)


def test_show_prints_integral_doubles_as_integers() -> None:
    from aimesh_policies.accessors import UNKNOWN
    from aimesh_policies.framework import show

    assert show(80.0) == "80"
    assert show(80) == "80"
    assert show(0.5) == "0.5"
    assert show([80.0, "http"]) == "[80, http]"
    assert show(True) == "true"
    assert show(None) == "<unset>"
    assert show(UNKNOWN) == "<unknown>"


def test_normalization_is_shared_per_content_and_never_leaks() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from aimesh_policies.objects import normalized

    def pa(mode: str) -> dict[str, Any]:
        return {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": "payments"},
            "spec": {"mtls": {"mode": mode}},
        }

    type_ = "kubernetes:security.istio.io/v1:PeerAuthentication"
    urn = "urn:pulumi:t::p::x::pa"
    first = normalized(type_, pa("PERMISSIVE"), urn, "pa")
    again = normalized(type_, pa("PERMISSIVE"), urn, "pa")
    assert again[0] is first[0]  # one normalization for every policy
    # Same resource, changed properties (e.g. remediated): a different key, fresh objects.
    fixed = normalized(type_, pa("STRICT"), urn, "pa")
    assert fixed[0].get("spec.mtls.mode") == "STRICT"
    assert first[0].get("spec.mtls.mode") == "PERMISSIVE"
    # true and 1.0 are different content (Python's == would conflate them).
    flag = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": True}}
    number = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1.0}}
    assert normalized("kubernetes:core/v1:Pod", flag, "u", "p")[0].spec["x"] is True
    assert normalized("kubernetes:core/v1:Pod", number, "u", "p")[0].spec["x"] == 1.0
    assert normalized("kubernetes:core/v1:Pod", number, "u", "p")[0].spec["x"] is not True
    # What JSON cannot encode is normalized uncached, still correctly.
    odd = {**pa("STRICT"), "extra": object()}
    assert normalized(type_, odd, urn, "pa")[0].get("spec.mtls.mode") == "STRICT"

    modes = ["STRICT", "PERMISSIVE", "DISABLE", "UNSET"] * 50

    def judge(mode: str) -> str:
        return str(normalized(type_, pa(mode), urn, "pa")[0].get("spec.mtls.mode"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(judge, modes)) == modes


def test_context_is_parsed_once_per_distinct_config() -> None:
    base = {"exemptNamespaces": [_until("name", "legacy")], "exemptPorts": [_until("port", 9090.0)]}
    ctx = Context.for_config(dict(base))
    assert Context.for_config(dict(base)) is ctx
    assert ctx.exempt_namespaces == frozenset({"legacy"})
    changed = Context.for_config({**base, "exemptNamespaces": []})
    assert changed is not ctx
    assert changed.exempt_namespaces == frozenset()
    assert Context.for_config(None) == Context.from_config(None)
