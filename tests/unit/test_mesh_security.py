"""builders/mesh_security.py: the mesh-wide objects in Istio's root namespace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aimesh import settings
from aimesh.builders import mesh_security
from aimesh.namespaces import ISTIO_NAMESPACE
from tools import schemas

DEFAULTS = settings.parse({})


def test_peer_authentication_is_mesh_wide_strict() -> None:
    pa = mesh_security.strict_mtls(DEFAULTS)
    assert pa["apiVersion"] == "security.istio.io/v1"
    assert pa["kind"] == "PeerAuthentication"
    # Mesh-wide means: in the root namespace, no selector. Istio reads it as the mesh default.
    assert pa["metadata"]["namespace"] == ISTIO_NAMESPACE
    assert pa["metadata"]["name"] == "default"
    assert pa["spec"] == {"mtls": {"mode": "STRICT"}}


def test_peer_authentication_has_no_port_or_workload_exception() -> None:
    spec = mesh_security.strict_mtls(DEFAULTS)["spec"]
    assert "selector" not in spec
    assert "portLevelMtls" not in spec


def test_root_deny_all_is_an_allow_policy_that_matches_nothing() -> None:
    policy = mesh_security.root_deny_all(DEFAULTS)
    assert policy["kind"] == "AuthorizationPolicy"
    assert policy["metadata"]["namespace"] == ISTIO_NAMESPACE
    # ALLOW with no rules: present for every workload, matched by no request -> default deny.
    assert policy["spec"] == {"action": "ALLOW"}
    # (`rules: [{}]` would be the opposite: a rule that matches every request.)
    assert "rules" not in policy["spec"]
    assert "selector" not in policy["spec"]


def test_egress_defaults_to_registry_only() -> None:
    sidecar = mesh_security.egress_lockdown(DEFAULTS)
    assert sidecar["kind"] == "Sidecar"
    assert sidecar["metadata"]["namespace"] == ISTIO_NAMESPACE
    assert sidecar["spec"]["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}


def test_egress_allow_any_only_when_configured() -> None:
    weakened = settings.parse({"outboundTrafficPolicy": "ALLOW_ANY"})
    assert mesh_security.egress_lockdown(weakened)["spec"]["outboundTrafficPolicy"] == {
        "mode": "ALLOW_ANY"
    }


def test_sidecar_keeps_every_namespace_visible() -> None:
    # Restricting `egress` hosts in the ROOT Sidecar would hide models in other namespaces from
    # their callers (their traffic would then fall into REGISTRY_ONLY's black hole).
    spec = mesh_security.egress_lockdown(DEFAULTS)["spec"]
    assert "egress" not in spec
    assert "workloadSelector" not in spec


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *[x for v in value.values() for x in _walk(v)]]
    if isinstance(value, list):
        return [x for v in value for x in _walk(v)]
    return [value]


@pytest.mark.parametrize("outbound", ["REGISTRY_ONLY", "ALLOW_ANY"])
def test_nothing_can_downgrade_mtls(outbound: str) -> None:
    built = mesh_security.manifests(settings.parse({"outboundTrafficPolicy": outbound}))
    kinds = {m["kind"] for m in built.values()}
    # No DestinationRule at all: auto mTLS does the job and a TLS setting could only weaken it.
    assert "DestinationRule" not in kinds
    values = [v for m in built.values() for v in _walk(m)]
    for weak in ("PERMISSIVE", "DISABLE", "UNSET"):
        assert weak not in values


def test_manifests_are_keyed_by_resource_suffix() -> None:
    built = mesh_security.manifests(DEFAULTS)
    assert set(built) == {"strict-mtls", "deny-all", "egress"}
    names = {(m["kind"], m["metadata"]["name"]) for m in built.values()}
    assert len(names) == 3


def test_manifests_are_deterministic() -> None:
    first = json.dumps(mesh_security.manifests(DEFAULTS), sort_keys=True)
    assert first == json.dumps(mesh_security.manifests(DEFAULTS), sort_keys=True)


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("outbound", ["REGISTRY_ONLY", "ALLOW_ANY"])
def test_manifests_conform_to_upstream_crds(outbound: str) -> None:
    built = mesh_security.manifests(settings.parse({"outboundTrafficPolicy": outbound}))
    for manifest in built.values():
        assert schemas.validate(manifest) == []


@pytest.mark.usefixtures("upstream_available")
def test_schema_check_catches_a_typo() -> None:
    # The conformance test above could not fail if unknown fields passed silently.
    typo = mesh_security.strict_mtls(DEFAULTS)
    typo["spec"] = {"mtls": {"mode": "STRICT"}, "mTLS": {"mode": "STRICT"}}
    assert schemas.validate(typo) != []
