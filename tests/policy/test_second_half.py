"""What the fixture runner cannot express for the workload / exposure / egress / tampering /
protection policies: every pod-carrying kind, the automatic fixes, secrecy of messages, the
pulumi_policy remediation path, config-driven exemptions, and never-raise fuzzing with the keys
these policies read.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

import pytest
from aimesh_policies import all_policies, build_pulumi_policies
from aimesh_policies.accessors import UNKNOWN_SENTINELS
from aimesh_policies.egress import covers_everything
from aimesh_policies.framework import Context, Policy, evaluate, evaluate_stack
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.objects import object_from_manifest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.policy.support import (
    fixture_files,
    load_fixture,
    objects_of_documents,
    policy_named,
    run_policy,
)

MODULES = ("workload", "exposure", "egress", "tampering", "protection")
OURS = [p for p in all_policies() if p.concern in MODULES]


def _policy(name: str) -> Policy:
    policy = policy_named(name)
    assert policy is not None, name
    return policy


def _objects(*manifests: dict[str, Any]) -> list[K8sObject]:
    return [o for m in manifests for o in object_from_manifest(m)]


def _findings(
    name: str, *manifests: dict[str, Any], config: dict[str, Any] | None = None
) -> list[str]:
    policy = _policy(name)
    ctx = Context.from_config(config or {})
    objs = _objects(*manifests)
    if policy.is_stack_rule:
        return [
            f.message
            for f in evaluate_stack(policy, [o for o in objs if policy.applies_to(o)], ctx)
        ]
    return [f.message for o in objs for f in evaluate(policy, o, ctx)]


def test_second_half_policies_are_registered() -> None:
    concerns = {p.concern for p in OURS}
    assert concerns == set(MODULES)
    assert len(OURS) >= 18
    for policy in OURS:
        assert policy.description.endswith(".")
        assert policy.remediation
        assert policy.catches


# --- every place a pod can be described ---------------------------------------------------------

BAD_CONTAINER = {
    "name": "app",
    "image": "ghcr.io/example/app:1.0",
    "securityContext": {
        "privileged": True,
        "capabilities": {"add": ["NET_ADMIN"]},
        "runAsUser": 1337,
    },
}
BAD_POD = {"hostNetwork": True, "containers": [BAD_CONTAINER]}


def _template(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "x"}}, "spec": spec}


# (apiVersion, kind, body builder, field path of the pod spec)
CARRIERS: list[tuple[str, str, dict[str, Any], str]] = [
    ("v1", "Pod", {"spec": BAD_POD}, "spec"),
    ("v1", "PodTemplate", {"template": _template(BAD_POD)}, "template.spec"),
    (
        "v1",
        "ReplicationController",
        {"spec": {"template": _template(BAD_POD)}},
        "spec.template.spec",
    ),
    *[
        ("apps/v1", kind, {"spec": {"template": _template(BAD_POD)}}, "spec.template.spec")
        for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
    ],
    ("batch/v1", "Job", {"spec": {"template": _template(BAD_POD)}}, "spec.template.spec"),
    (
        "batch/v1",
        "CronJob",
        {"spec": {"jobTemplate": {"spec": {"template": _template(BAD_POD)}}}},
        "spec.jobTemplate.spec.template.spec",
    ),
    *[
        (
            "serving.kserve.io/v1beta1",
            "InferenceService",
            {"spec": {component: BAD_POD}},
            f"spec.{component}",
        )
        for component in ("predictor", "transformer", "explainer")
    ],
    (
        "serving.kserve.io/v1beta1",
        "InferenceService",
        {"spec": {"predictor": {"workerSpec": BAD_POD}}},
        "spec.predictor.workerSpec",
    ),
    (
        "serving.kserve.io/v1beta1",
        "InferenceService",
        {"spec": {"canary": [{"predictor": BAD_POD}]}},
        "spec.canary[0].predictor",
    ),
    ("serving.kserve.io/v1alpha1", "ServingRuntime", {"spec": BAD_POD}, "spec"),
    (
        "serving.kserve.io/v1alpha1",
        "LLMInferenceService",
        {"spec": {"template": BAD_POD}},
        "spec.template",
    ),
    (
        "serving.kserve.io/v1alpha1",
        "LLMInferenceService",
        {"spec": {"prefill": {"worker": BAD_POD}}},
        "spec.prefill.worker",
    ),
]


@pytest.mark.parametrize(("api_version", "kind", "body", "at"), CARRIERS, ids=lambda v: str(v)[:40])
def test_every_pod_carrier_is_judged(
    api_version: str, kind: str, body: dict[str, Any], at: str
) -> None:
    manifest = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "demo"},
    }
    manifest.update(copy.deepcopy(body))
    context = f"{at}.containers[0].securityContext"
    expected = {
        "workload-forbid-privileged": f"{context}.privileged",
        "workload-forbid-net-admin-capabilities": f"{context}.capabilities.add",
        "workload-forbid-host-namespaces": f"{at}.hostNetwork",
        "workload-forbid-proxy-uid": f"{context}.runAsUser",
    }
    for name, path in expected.items():
        messages = _findings(name, manifest)
        assert any(path in m for m in messages), (name, messages)


@pytest.mark.parametrize(
    "key", ["sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "model"]
)
def test_model_format_shorthand_containers_are_judged(key: str) -> None:
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "m", "namespace": "m"},
        "spec": {
            "predictor": {key: {"storageUri": "s3://b/m", "securityContext": {"privileged": True}}}
        },
    }
    assert _findings("workload-forbid-privileged", isvc)


# --- automatic fixes -----------------------------------------------------------------------------

FIXABLE: list[tuple[str, dict[str, Any]]] = [
    (
        "workload-forbid-privileged",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n"},
            "spec": {"template": _template(BAD_POD)},
        },
    ),
    (
        "workload-forbid-net-admin-capabilities",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {
                "containers": [
                    {
                        "name": "a",
                        "securityContext": {
                            "capabilities": {"add": ["NET_RAW", "CHOWN", "cap_net_admin"]}
                        },
                    }
                ]
            },
        },
    ),
    (
        "workload-forbid-host-namespaces",
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "i", "namespace": "n"},
            "spec": {
                "predictor": {"hostPID": True, "hostIPC": "true", "model": {"storageUri": "s3://b"}}
            },
        },
    ),
    (
        "istio-gateway-require-tls",
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "g", "namespace": "n"},
            "spec": {
                "servers": [
                    {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
                ]
            },
        },
    ),
    (
        "istio-gateway-require-tls12",
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "g", "namespace": "n"},
            "spec": {
                "servers": [
                    {
                        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                        "hosts": ["*"],
                        "tls": {
                            "mode": "SIMPLE",
                            "credentialName": "c",
                            "minProtocolVersion": "TLSV1_0",
                            "maxProtocolVersion": "TLSV1_1",
                        },
                    }
                ]
            },
        },
    ),
    (
        "istio-egress-forbid-allow-any",
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}},
        },
    ),
    (
        "istio-telemetry-forbid-disabling-access-logs",
        {
            "apiVersion": "telemetry.istio.io/v1",
            "kind": "Telemetry",
            "metadata": {"name": "t", "namespace": "istio-system"},
            "spec": {"accessLogging": [{"disabled": True}, {"providers": [{"name": "envoy"}]}]},
        },
    ),
    (
        "certmanager-certificate-require-strong-key",
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "c", "namespace": "n"},
            "spec": {
                "secretName": "s",
                "issuerRef": {"name": "i"},
                "privateKey": {"algorithm": "ECDSA", "size": 128},
            },
        },
    ),
]


@pytest.mark.parametrize(("name", "manifest"), FIXABLE, ids=[n for n, _ in FIXABLE])
def test_fix_repairs_exactly_what_the_policy_flags(name: str, manifest: dict[str, Any]) -> None:
    policy = _policy(name)
    assert policy.fix is not None
    before = copy.deepcopy(manifest)
    assert _findings(name, manifest), "the case must violate first"
    (obj,) = [o for o in _objects(manifest) if policy.applies_to(o)]
    fixed = policy.fix(obj)
    assert fixed is not None
    assert manifest == before, "a fix must not mutate its input"
    assert not _findings(name, dict(fixed)), "the fixed manifest must pass"
    (fixed_obj,) = [o for o in _objects(dict(fixed)) if policy.applies_to(o)]
    assert policy.fix(fixed_obj) is None, "a fix is idempotent"
    # The fix changes only security fields: names, images, hosts survive.
    assert fixed["metadata"] == manifest["metadata"]


def test_capability_fix_keeps_harmless_capabilities() -> None:
    name, manifest = FIXABLE[1]
    policy = _policy(name)
    (obj,) = _objects(manifest)
    fixed = policy.fix(obj) if policy.fix else None
    assert fixed is not None
    assert fixed["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] == ["CHOWN"]


def test_tls_version_fix_raises_min_and_drops_weak_max() -> None:
    name, manifest = FIXABLE[4]
    policy = _policy(name)
    (obj,) = _objects(manifest)
    fixed = policy.fix(obj) if policy.fix else None
    assert fixed is not None
    tls = fixed["spec"]["servers"][0]["tls"]
    assert tls["minProtocolVersion"] == "TLSV1_2"
    assert "maxProtocolVersion" not in tls
    assert tls["credentialName"] == "c"


def test_remediation_through_the_pulumi_wrapper() -> None:
    """The analyzer's Remediate path: the wrapper hands back the fixed props."""
    wrapper = next(
        w for w in build_pulumi_policies(OURS) if w.name == "istio-egress-forbid-allow-any"
    )

    class Args:
        resource_type = "kubernetes:networking.istio.io/v1:Sidecar"
        props = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}},
        }
        urn = "urn:pulumi:dev::aimesh::kubernetes:networking.istio.io/v1:Sidecar::s"
        name = "s"

        def get_config(self) -> dict[str, Any]:
            return {}

    fixed = wrapper.remediate(Args())
    assert fixed["spec"]["outboundTrafficPolicy"]["mode"] == "REGISTRY_ONLY"


# --- secrecy, exemptions, config -----------------------------------------------------------------


def test_storage_messages_never_echo_credentials_or_paths() -> None:
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "m", "namespace": "m"},
        "spec": {
            "predictor": {
                "model": {"storageUri": "http://bob:s3cr3t@store.example.com/a/b?sig=XYZ"}
            }
        },
    }
    messages = _findings("kserve-require-secure-model-storage", isvc)
    assert messages
    for secret in ("bob", "s3cr3t", "sig=XYZ", "/a/b"):
        assert all(secret not in m for m in messages), messages
    assert any("store.example.com" in m for m in messages)


def test_istio_cni_daemonset_needs_and_honours_an_explicit_exemption() -> None:
    cni = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "istio-cni-node", "namespace": "istio-system"},
        "spec": {
            "template": _template(
                {
                    "hostNetwork": True,
                    "containers": [
                        {"name": "install-cni", "securityContext": {"privileged": True}}
                    ],
                }
            )
        },
    }
    assert _findings("workload-forbid-privileged", cni)
    assert _findings("workload-forbid-host-namespaces", cni)
    config = {
        "exemptWorkloads": [
            {"name": "istio-system/istio-cni-node", "reason": "CNI", "expires": "2999-12-31"}
        ]
    }
    assert not _findings("workload-forbid-privileged", cni, config=config)
    assert not _findings("workload-forbid-host-namespaces", cni, config=config)


def test_safe_early_filters_are_configurable() -> None:
    envoy_filter = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "cors-first", "namespace": "n"},
        "spec": {
            "configPatches": [
                {
                    "applyTo": "HTTP_FILTER",
                    "match": {
                        "listener": {
                            "filterChain": {
                                "filter": {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "subFilter": {"name": "envoy.filters.http.rbac"},
                                }
                            }
                        }
                    },
                    "patch": {
                        "operation": "INSERT_BEFORE",
                        "value": {"name": "envoy.filters.http.cors"},
                    },
                }
            ]
        },
    }
    name = "istio-envoyfilter-forbid-security-filter-tampering"
    assert _findings(name, envoy_filter)
    assert not _findings(
        name, envoy_filter, config={"safeEarlyFilters": ["envoy.filters.http.cors"]}
    )


def test_gateway_namespaces_config_decides_where_nodeports_are_fine() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "edge", "namespace": "edge"},
        "spec": {"type": "LoadBalancer", "selector": {"aimesh.io/model": "iris"}},
    }
    name = "service-forbid-external-model-exposure"
    assert _findings(name, service)
    assert not _findings(name, service, config={"gatewayNamespaces": ["edge"]})
    assert _findings(name, service, config={"modelWorkloadLabels": ["aimesh.io/model"]})


def test_model_workload_labels_config() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "x"},
        "spec": {"type": "NodePort", "selector": {"team.example.com/model": "llm"}},
    }
    name = "service-forbid-external-model-exposure"
    assert not _findings(name, service)
    assert _findings(name, service, config={"modelWorkloadLabels": ["team.example.com/model"]})


# --- address coverage ----------------------------------------------------------------------------


@given(st.integers(1, 8), st.sampled_from(["v4", "v6"]))
def test_any_split_of_the_whole_address_space_is_caught(bits: int, family: str) -> None:
    whole = ipaddress.ip_network("0.0.0.0/0" if family == "v4" else "::/0")
    parts = [str(n) for n in whole.subnets(prefixlen_diff=bits)]
    assert covers_everything(parts) == str(whole)
    assert covers_everything(parts[1:]) is None  # one piece missing: not everything


@given(st.lists(st.ip_addresses(v=4).map(lambda a: f"{a}/{8 + int(a) % 25}"), max_size=6))
def test_narrow_ranges_are_not_everything(cidrs: list[str]) -> None:
    assert covers_everything(cidrs) is None


# --- never raise, with the keys these policies read ----------------------------------------------

_KEYS = st.sampled_from(
    [
        "spec",
        "metadata",
        "template",
        "jobTemplate",
        "containers",
        "initContainers",
        "securityContext",
        "privileged",
        "capabilities",
        "add",
        "runAsUser",
        "runAsGroup",
        "hostNetwork",
        "hostPID",
        "hostIPC",
        "name",
        "image",
        "predictor",
        "transformer",
        "explainer",
        "workerSpec",
        "canary",
        "sklearn",
        "model",
        "storageUri",
        "storageUris",
        "uri",
        "storage",
        "path",
        "env",
        "value",
        "type",
        "selector",
        "externalIPs",
        "servers",
        "port",
        "protocol",
        "tls",
        "httpsRedirect",
        "mode",
        "minProtocolVersion",
        "listeners",
        "outboundTrafficPolicy",
        "hosts",
        "addresses",
        "resolution",
        "ports",
        "ingress",
        "egress",
        "from",
        "to",
        "ipBlock",
        "cidr",
        "policyTypes",
        "configPatches",
        "applyTo",
        "match",
        "listener",
        "filterChain",
        "filter",
        "subFilter",
        "patch",
        "operation",
        "filterClass",
        "accessLogging",
        "disabled",
        "expression",
        "privateKey",
        "algorithm",
        "size",
        "subjects",
        "roleRef",
        "kind",
        "rules",
        "verbs",
        "apiGroups",
        "resources",
        "aggregationRule",
        "clusterRoleSelectors",
        "matchLabels",
        "labels",
        "annotations",
        "namespace",
        "prefill",
        "worker",
        "tlsDefaults",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.sampled_from(
        [
            "*",
            "ALLOW_ANY",
            "NET_ADMIN",
            "ALL",
            "1337",
            "http://u:p@h/x",
            "0.0.0.0/0",
            "::/0",
            "HTTP",
            "PASSTHROUGH",
            "TLSV1_0",
            "REMOVE",
            "INSERT_FIRST",
            "HTTP_FILTER",
            "envoy.filters.http.rbac",
            "ClusterRole",
            "cluster-admin",
            "Group",
            "system:serviceaccounts",
            "RSA",
            "ECDSA",
            "NodePort",
            "[::1",
            "http://[::1",
            "²",
            "٣",
            "runAsUser",
        ]
    ),
    st.sampled_from(sorted(UNKNOWN_SENTINELS)),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(_KEYS, c, max_size=5)),
    max_leaves=30,
)
_OUR_KINDS = sorted({gk for p in OURS for gk in p.kinds if gk[0] != "policy.aimesh.io"})


@st.composite
def _manifests(draw: st.DrawFn) -> dict[str, Any]:
    group, kind = draw(st.sampled_from(_OUR_KINDS))
    body: dict[str, Any] = {"apiVersion": f"{group}/v1" if group else "v1", "kind": kind}
    for key in ("metadata", "spec", "subjects", "roleRef", "rules", "template", "data"):
        if draw(st.booleans()):
            body[key] = draw(_VALUES)
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_manifests(), min_size=1, max_size=6), st.dictionaries(_KEYS, _VALUES, max_size=3))
def test_our_policies_and_fixes_never_raise(
    manifests: list[dict[str, Any]], config: dict[str, Any]
) -> None:
    objs = _objects(*manifests)
    ctx = Context.from_config(config)
    for policy in OURS:
        if policy.is_stack_rule:
            evaluate_stack(policy, [o for o in objs if policy.applies_to(o)], ctx)
            continue
        for obj in objs:
            found = evaluate(policy, obj, ctx)
            assert all(isinstance(f.message, str) and f.message for f in found)
            if policy.fix is not None:
                policy.fix(obj)


def test_each_workload_fix_touches_only_its_own_field() -> None:
    _, manifest = FIXABLE[0]  # privileged + NET_ADMIN + hostNetwork + UID 1337
    (obj,) = _objects(manifest)
    fixed = _policy("workload-forbid-privileged").fix(obj)  # type: ignore[misc]
    assert fixed is not None
    spec = fixed["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    context = spec["containers"][0]["securityContext"]
    assert context["privileged"] is False
    assert context["capabilities"]["add"] == ["NET_ADMIN"]
    assert context["runAsUser"] == 1337  # no safe automatic fix: the UID is the owner's choice


def test_every_finding_names_resource_field_and_fix() -> None:
    """Over every fail fixture of these policies: `<Kind> <ns/name>: <field>: ... Fix: ...`."""
    names = {p.name for p in OURS}
    checked = 0
    for path in fixture_files():
        fixture = load_fixture(path)
        if fixture.policy not in names or fixture.verdict != "fail":
            continue
        policy = _policy(fixture.policy)
        objs = objects_of_documents(fixture.documents, typed=True)
        for found in run_policy(policy, objs, fixture.config):
            kind_and_name, _, rest = found.message.partition(": ")
            assert " " in kind_and_name, found.message  # "<Kind> <ns/name>"
            assert rest, found.message
            assert "Fix: " in found.message, found.message
            checked += 1
    assert checked >= 60
