"""The Kubernetes and Istio rules the effective policies rest on, one named case each (RBAC
matching and aggregation, NetworkPolicy isolation and peers, entry-path host resolution, intent
reading). The fixtures show the policies; these pin the semantics underneath."""

from __future__ import annotations

from typing import Any

import pytest
from aimesh_policies.effective import access, entry, network, rbac
from aimesh_policies.effective.intent import read_intents
from aimesh_policies.framework import Context
from aimesh_policies.objects import object_from_manifest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policy.support import FIXTURES, load_fixture, objects_of_documents

# --- RBAC ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "asked", "granted"),
    [
        (["pods/exec"], "pods/exec", True),
        (["*"], "pods/exec", True),
        (["*/exec"], "pods/exec", True),
        (["pods/*"], "pods/exec", False),  # the authorizer has no `<resource>/*` form
        (["pods"], "pods/exec", False),
        (["*/exec"], "pods", False),
    ],
)
def test_rbac_resource_forms(resources: list[str], asked: str, granted: bool) -> None:
    rule = {"apiGroups": [""], "resources": resources, "verbs": ["create"]}
    assert rbac.rule_grants(rule, "create", "", asked) is granted


def test_rbac_verbs_and_groups_are_exact_or_star() -> None:
    rule = {"apiGroups": ["*"], "resources": ["secrets"], "verbs": ["Get"]}
    assert not rbac.rule_grants(rule, "get", "", "secrets")
    rule["verbs"] = ["*"]
    assert rbac.rule_grants(rule, "get", "", "secrets")


def _role_set(*manifests: dict[str, Any]) -> rbac.RoleSet:
    return rbac.RoleSet.build([o for m in manifests for o in object_from_manifest(m)])


def _grants(rules: list[Any], verb: str, group: str, resource: str) -> bool:
    return any(rbac.rule_grants(r, verb, group, resource) for r in rules)


def test_builtin_roles_aggregate_in_a_chain() -> None:
    roles = _role_set()
    assert _grants(roles.cluster["edit"], "create", "", "pods/exec")
    assert _grants(roles.cluster["edit"], "get", "", "secrets")
    assert _grants(roles.cluster["admin"], "create", "", "pods/exec")  # admin <- edit
    assert _grants(roles.cluster["admin"], "create", "rbac.authorization.k8s.io", "rolebindings")
    assert not _grants(roles.cluster["view"], "get", "", "secrets")
    assert _grants(roles.cluster["edit"], "get", "", "pods")  # edit <- view


def test_stack_roles_aggregate_by_label_and_expression() -> None:
    labelled = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": "extra",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true", "team": "ml"},
        },
        "rules": [{"apiGroups": ["x.io"], "resources": ["things"], "verbs": ["delete"]}],
    }
    by_expression = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "team-ml"},
        "aggregationRule": {
            "clusterRoleSelectors": [
                {"matchExpressions": [{"key": "team", "operator": "In", "values": ["ml"]}]}
            ]
        },
    }
    roles = _role_set(labelled, by_expression)
    for name in ("edit", "admin", "team-ml"):
        assert _grants(roles.cluster[name], "delete", "x.io", "things"), name
    assert not _grants(roles.cluster["view"], "delete", "x.io", "things")


def test_service_account_users_are_service_accounts() -> None:
    binding = object_from_manifest(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "b", "namespace": "m"},
            "roleRef": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [
                {"kind": "User", "name": "system:serviceaccount:a:x"},
                {"kind": "ServiceAccount", "name": "y"},
            ],
        }
    )[0]
    assert rbac.subjects_of(binding) == [("ServiceAccount", "a", "x"), ("ServiceAccount", "m", "y")]


def test_platform_identities() -> None:
    ctx = Context.from_config({"platformSubjects": ["User:ops@example.com"]})
    assert rbac.is_platform(("ServiceAccount", "istio-system", "istiod"), ctx)
    assert rbac.is_platform(("ServiceAccount", "istio-ingress", "gw"), ctx)
    assert rbac.is_platform(("User", "", "ops@example.com"), ctx)
    assert rbac.is_platform(("Group", "", "system:masters"), ctx)
    assert not rbac.is_platform(("Group", "", "system:authenticated"), ctx)
    assert not rbac.is_platform(("Group", "", "system:serviceaccounts:payments"), ctx)
    assert not rbac.is_platform(("ServiceAccount", "payments", "checkout"), ctx)


# --- NetworkPolicy --------------------------------------------------------------------------------


def _netpol(spec: dict[str, Any], namespace: str = "m") -> network.Netpol:
    return network.Netpol.of("p", namespace, spec, None)


POD = {"app": "model"}
PEER_A = network.Peer("pod in a", "a", {"kubernetes.io/metadata.name": "a"}, {"app": "c"})
PEER_M = network.Peer("pod in m", "m", {"kubernetes.io/metadata.name": "m"}, {"app": "c"})
OUTSIDE = network.Peer("outside", ip="203.0.113.10")
PRIVATE = network.Peer("private", ip="10.1.2.3")
TCP_80 = network.Port("TCP", 80)


def test_policy_types_default_and_isolation() -> None:
    egress_only_rules = _netpol({"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]})
    assert egress_only_rules.types == {"Ingress", "Egress"}  # egress rules imply Egress
    ingress = _netpol({"podSelector": {"matchLabels": {"app": "other"}}})
    # A policy that does not select the pod isolates nothing.
    assert network.decide([ingress], POD, "Ingress", PEER_A, TCP_80) == (True, None)
    deny = _netpol({"podSelector": {}})
    assert network.decide([deny], POD, "Ingress", PEER_A, TCP_80) == (False, None)
    assert network.decide([deny], POD, "Egress", PEER_A, TCP_80) == (True, None)


def test_peers_ip_blocks_and_ports() -> None:
    policy = _netpol(
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                    "ports": [{"port": 440, "endPort": 450}],
                }
            ],
        }
    )
    assert network.decide([policy], POD, "Egress", OUTSIDE, network.Port("TCP", 443))[0]
    assert not network.decide([policy], POD, "Egress", PRIVATE, network.Port("TCP", 443))[0]
    assert not network.decide([policy], POD, "Egress", OUTSIDE, network.Port("TCP", 451))[0]
    assert not network.decide([policy], POD, "Egress", OUTSIDE, network.Port("UDP", 443))[0]
    # An ipBlock never selects pods, a pod selector never selects outside addresses.
    assert not network.decide([policy], POD, "Egress", PEER_A, network.Port("TCP", 443))[0]


def test_peer_selectors() -> None:
    same_namespace = _netpol({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})
    assert network.decide([same_namespace], POD, "Ingress", PEER_M, TCP_80)[0]
    assert not network.decide([same_namespace], POD, "Ingress", PEER_A, TCP_80)[0]
    both = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "a"}},
        "podSelector": {"matchLabels": {"app": "other"}},
    }
    anded = _netpol({"podSelector": {}, "ingress": [{"from": [both]}]})
    assert not network.decide([anded], POD, "Ingress", PEER_A, TCP_80)[0]
    everything = _netpol({"podSelector": {}, "ingress": [{}]})
    assert network.decide([everything], POD, "Ingress", OUTSIDE, TCP_80)[0]
    expression = {
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["a"]}
            ]
        }
    }
    not_a = _netpol({"podSelector": {}, "ingress": [{"from": [expression]}]})
    assert not network.decide([not_a], POD, "Ingress", PEER_A, TCP_80)[0]
    assert network.decide([not_a], POD, "Ingress", PEER_M, TCP_80)[0]


# --- entry paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "route_namespace", "namespace"),
    [
        ("m-predictor", "m", "m"),
        ("m-predictor", "apps", "apps"),
        ("m-predictor.m", "apps", "m"),
        ("m-predictor.m.svc", "apps", "m"),
        ("m-predictor.m.svc.cluster.local", "apps", "m"),
        ("api.example.com", "m", ""),
    ],
)
def test_destination_hosts_resolve_to_namespaces(
    host: str, route_namespace: str, namespace: str
) -> None:
    assert entry.host_namespace(host, route_namespace) == namespace


def test_gateway_server_hosts() -> None:
    assert entry.host_served("m.models.example", ["*.models.example"])
    assert entry.host_served("m.models.example", ["istio-ingress/*"])
    assert not entry.host_served("m.partner.example", ["*.models.example"])


# --- intent --------------------------------------------------------------------------------------


def _intent(namespace: str, name: str = "aimesh-intent", body_namespace: str | None = None) -> Any:
    body = (
        '{"version": 1, "model": "m", "namespace": "%s", "selector": {"aimesh.io/model": "m"},'
        ' "grants": []}' % (body_namespace or namespace)
    )
    return object_from_manifest(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"aimesh.io/intent": "v1"},
            },
            "data": {"intent.json": body},
        }
    )[0]


def test_intent_is_read_per_namespace() -> None:
    found = read_intents([_intent("m")], Context())
    assert found.problems == []
    intent = found.of("m")
    assert intent is not None
    assert intent.selector == {"aimesh.io/model": "m"}


def test_a_forged_second_intent_makes_the_namespace_unverifiable() -> None:
    found = read_intents([_intent("m"), _intent("m", name="more-access")], Context())
    assert found.of("m") is None
    assert "m" in found.unreadable
    assert len(found.problems) == 2


def test_an_intent_describes_only_its_own_namespace() -> None:
    found = read_intents([_intent("payments", body_namespace="m")], Context())
    assert found.of("m") is None
    assert found.of("payments") is None
    assert found.problems


_PEER_SPECS = [
    {"podSelector": {}},
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "a"}}},
    {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "c"}}},
    {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}},
    {"ipBlock": {"cidr": "10.0.0.0/8"}},
]
_PORT_SPECS = [{"port": 80}, {"protocol": "UDP", "port": 53}, {"port": 70, "endPort": 90}, {}]


@st.composite
def _netpols(draw: st.DrawFn) -> list[network.Netpol]:
    found = []
    for _ in range(draw(st.integers(0, 3))):
        rules = [
            {
                key: value
                for key, value in (
                    ("from", draw(st.lists(st.sampled_from(_PEER_SPECS), max_size=2))),
                    ("to", draw(st.lists(st.sampled_from(_PEER_SPECS), max_size=2))),
                    ("ports", draw(st.lists(st.sampled_from(_PORT_SPECS), max_size=2))),
                )
                if draw(st.booleans())
            }
            for _ in range(draw(st.integers(0, 2)))
        ]
        spec: dict[str, Any] = {
            "podSelector": draw(st.sampled_from([{}, {"matchLabels": {"app": "model"}}])),
            "ingress": rules,
            "egress": rules,
        }
        types = draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
        if types is not None:
            spec["policyTypes"] = types
        found.append(_netpol(spec))
    return found


@settings(max_examples=150, deadline=None)
@given(_netpols())
def test_rule_by_rule_cells_equal_cell_by_cell_decisions(policies: list[network.Netpol]) -> None:
    grid_peers = [PEER_A, PEER_M, OUTSIDE, PRIVATE]
    grid_ports = [TCP_80, network.Port("UDP", 53), network.Port("TCP", 85), network.Port("TCP", 22)]
    for direction in ("Ingress", "Egress"):
        found = network.cells(policies, POD, direction, grid_peers, grid_ports)
        for i, peer in enumerate(grid_peers):
            for j, port in enumerate(grid_ports):
                allowed = network.decide(policies, POD, direction, peer, port)[0]
                assert allowed == (found is None or (i, j) in found), (direction, peer, port)


# --- audit mode ------------------------------------------------------------------------------


def test_explain_shows_what_audit_mode_lets_in_as_declared() -> None:
    fixture = load_fixture(FIXTURES / "istio-model-access-within-intent" / "audit-mode-pass.yaml")
    objs = objects_of_documents(fixture.documents, typed=False)
    [cells] = access.explain(objs, Context()).values()
    peers = [c for c in cells if c.by == "AuthorizationPolicy m/m-audit-mesh-peers"]
    assert {c.declared for c in peers} == {"allowed", "audit mode"}
    assert any(c.identity == "a workload of an unrelated namespace" for c in peers)
    # The model's own ALLOW is in dry-run: it grants nothing, whatever it names.
    assert not [c for c in cells if c.by == "AuthorizationPolicy m/m-allow"]
    # Plaintext peers and the operator paths stay out.
    granted = [c for c in cells if c.effective == "allowed"]
    assert not [c for c in granted if c.identity.startswith("a plaintext")]
    assert not [c for c in granted if c.route.split()[1].startswith(("/metrics", "/v2/repository"))]
