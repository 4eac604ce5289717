"""Both mesh CA modes through the whole program under Pulumi mocks: what is registered, in which
order, strictly valid upstream, judged by the policy pack; and a root rotation as the sequence of
stack configurations a user applies, with the trust bundle, access matrix and alerts checked at
every step."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from aimesh.builders import mesh_ca
from tests import certs
from tests.component.test_observability import _is_secret
from tests.policy.test_our_stacks import mandatory_violations
from tests.program.test_stacks import CHART_TYPES, waits_for
from tools import offline, schemas

MESH_CA = "aimesh:meshCa:MeshCA"


def _evaluate(stack: str, **overrides: Any) -> offline.Evaluation:
    """`Pulumi.<stack>.yaml` (with offline stand-ins for its secrets) plus `overrides`."""
    config, secret_keys = offline.stack_config(stack)
    for key, value in overrides.items():
        full = f"aimesh:{key}"
        if value is None:
            config.pop(full, None)
        else:
            config[full] = value if isinstance(value, str) else json.dumps(value)
    return offline.evaluate(config, secret_keys=secret_keys, stack=stack)


@cache
def self_signed() -> offline.Evaluation:
    return _evaluate("dev", meshCa="cert-manager")


def _by_name(evaluation: offline.Evaluation, name: str) -> offline.Registered:
    return next(r for r in evaluation.resources if r.name == name)


def _chart(evaluation: offline.Evaluation, chart: str) -> offline.Registered:
    urn = next(c.urn for c in evaluation.chart_installs() if c.name == chart)
    return next(r for r in evaluation.resources if r.urn == urn)


def test_istiod_mode_registers_no_mesh_ca() -> None:
    from tests.conftest import evaluated

    dev = evaluated("dev")
    assert not [r for r in dev.resources if MESH_CA in r.urn or r.type == MESH_CA]
    env = _chart(dev, "istiod").inputs["values"]["env"]
    assert env == {
        "DEFAULT_WORKLOAD_CERT_TTL": "24h",
        "MAX_WORKLOAD_CERT_TTL": "24h",
        "ENABLE_NATIVE_SIDECARS": "true",
    }


def test_self_signed_mode_installs_istio_csr_before_istiod() -> None:
    ev = self_signed()
    component = next(r for r in ev.resources if r.type == MESH_CA)
    assert "aimesh:istio:Istio" in component.urn  # registered inside the Istio component
    children = {r.name for r in ev.resources if f"{MESH_CA}$" in r.urn}
    assert children == {
        "aimesh-aimesh-mesh-selfsigned",
        "aimesh-aimesh-mesh-root",
        "aimesh-aimesh-mesh-ca",
        "aimesh-istio-csr",
        "aimesh-istiod-certificate",
    }
    istiod = _chart(ev, "istiod")
    # istiod waits for istio-csr and for its own certificate, which waits for the issuer chain.
    assert {"cert-manager", "cert-manager-istio-csr", "base"} <= waits_for(ev, istiod)
    assert _by_name(ev, "aimesh-istiod-certificate").urn in istiod.dependencies
    certificate = _by_name(ev, "aimesh-istiod-certificate")
    assert _by_name(ev, "aimesh-aimesh-mesh-ca").urn in certificate.dependencies
    csr = _chart(ev, "cert-manager-istio-csr")
    assert _by_name(ev, "aimesh-aimesh-mesh-ca").urn in csr.dependencies
    assert csr.type == "kubernetes:helm.sh/v4:Chart"
    assert csr.inputs["version"] == "v0.17.0"
    # The ingress gateway's proxies get their certificate from istio-csr too: after istiod.
    assert istiod.urn in _chart(ev, "gateway").dependencies


def test_self_signed_mode_points_the_mesh_at_istio_csr() -> None:
    ev = self_signed()
    values = _chart(ev, "istiod").inputs["values"]
    assert values["env"]["ENABLE_CA_SERVER"] == "false"
    assert values["global"]["caAddress"] == mesh_ca.CA_ADDRESS
    csr = _chart(ev, "cert-manager-istio-csr").inputs["values"]
    assert csr["app"]["tls"]["trustDomain"] == "cluster.local"
    policies = {m["metadata"]["name"] for m in ev.find("NetworkPolicy")}
    assert "allow-mesh-ca" in policies
    assert ev.find("ServiceMonitor", "istio-csr")
    rules = ev.find("PrometheusRule")[0]["spec"]["groups"][-1]["rules"]
    assert "AimeshMeshCertIssuanceFailing" in {r["alert"] for r in rules}


@pytest.mark.usefixtures("upstream_available")
def test_self_signed_mode_validates_strictly_upstream() -> None:
    ev = self_signed()
    mine = [r.inputs for r in ev.resources if f"{MESH_CA}$" in r.urn and r.type not in CHART_TYPES]
    assert mine
    assert [p for m in mine for p in schemas.validate(m)] == []
    values = _chart(ev, "cert-manager-istio-csr").inputs["values"]
    assert schemas.validate_values("istio-csr", values) == []


def test_the_pack_accepts_the_dev_chain_only_where_it_is_exempt() -> None:
    assert mandatory_violations(self_signed()) == []
    # The same objects as a production stack: the self-signed root is refused.
    as_prod = _evaluate(
        "prod",
        meshCaIssuer="selfSigned",
        meshCaCertificate=None,
        meshCaKey=None,
        meshTrustRoots=None,
    )
    violations = mandatory_violations(as_prod)
    assert violations
    assert all(v.startswith("mesh-ca-forbid-self-signed-root: ") for v in violations)


def test_prod_stack_uses_your_pki_with_a_static_trust_bundle() -> None:
    from tests.conftest import evaluated

    prod = evaluated("prod")
    issuer = _by_name(prod, "aimesh-aimesh-mesh-ca").inputs
    assert issuer["spec"] == {"ca": {"secretName": "aimesh-mesh-ca-keypair"}}
    keypair = _by_name(prod, "aimesh-mesh-ca-keypair")
    assert keypair.inputs["type"] == "kubernetes.io/tls"
    # The key pair is a Pulumi secret: encrypted in the state, masked in previews.
    assert _is_secret(keypair.inputs["stringData"])
    assert keypair.urn in issuer_dependencies(prod)
    bundle = _by_name(prod, "aimesh-mesh-trust-bundle").inputs
    assert "BEGIN CERTIFICATE" in bundle["data"]["ca.pem"]
    csr = _chart(prod, "cert-manager-istio-csr").inputs["values"]
    assert csr["replicaCount"] == 2
    assert csr["app"]["tls"]["rootCAFile"].endswith("/ca.pem")
    assert csr["app"]["tls"]["trustDomain"] == "prod.aimesh.example.com"


# ---- a root rotation, stack configuration by stack configuration --------------------------------


def issuer_dependencies(evaluation: offline.Evaluation) -> list[str]:
    return _by_name(evaluation, "aimesh-aimesh-mesh-ca").dependencies


OLD, NEW = "corp-root-2024", "corp-root-2026"
STEPS = [
    ([OLD], OLD, "corp-int-2024"),
    ([OLD, NEW], OLD, "corp-int-2024"),
    ([OLD, NEW], NEW, "corp-int-2026"),
    ([NEW], NEW, "corp-int-2026"),
]


def _rotation_step(roots: list[str], issuing: str, intermediate: str) -> offline.Evaluation:
    issued = certs.intermediate(intermediate, issuing)
    return _evaluate(
        "prod",
        meshTrustRoots=[{"name": r, "pem": certs.root(r).pem} for r in roots],
        meshCaCertificate=issued.pem,
        meshCaKey=issued.key_pem,
    )


def _policies(evaluation: offline.Evaluation) -> dict[tuple[str, str], Any]:
    return {
        (m["metadata"].get("namespace", ""), m["metadata"]["name"]): m
        for m in evaluation.find("AuthorizationPolicy")
    }


def _alert_names(evaluation: offline.Evaluation) -> list[str]:
    return [
        rule.get("alert") or rule["record"]
        for group in evaluation.find("PrometheusRule")[0]["spec"]["groups"]
        for rule in group["rules"]
    ]


def test_rotation_changes_only_the_trust_bundle_and_the_issuer() -> None:
    runs = [_rotation_step(*step) for step in STEPS]
    first = runs[0]
    for (roots, issuing, intermediate), run in zip(STEPS, runs, strict=True):
        bundle = _by_name(run, "aimesh-mesh-trust-bundle").inputs["data"]["ca.pem"]
        assert bundle == "".join(certs.root(r).pem for r in roots)
        # The issuer's key pair (a Pulumi secret) holds this step's intermediate and its root.
        keypair = _by_name(run, "aimesh-mesh-ca-keypair").inputs["stringData"]["value"]
        assert keypair["tls.crt"] == certs.intermediate(intermediate, issuing).pem
        assert keypair["ca.crt"] == certs.root(issuing).pem
        # Identities do not change: the access matrix, every authorization policy and the
        # alert rules (names; only the roots' expiry series follow the bundle) stay the same.
        assert run.outputs["accessMatrix"] == first.outputs["accessMatrix"]
        assert _policies(run) == _policies(first)
        assert _alert_names(run) == _alert_names(first)
        assert mandatory_violations(run) == []
    # The alert on root expiry follows the bundle: one series per trusted root.
    expiry = next(
        r["expr"]
        for r in runs[1].find("PrometheusRule")[0]["spec"]["groups"][-1]["rules"]
        if r.get("alert") == "AimeshMeshRootCertExpiringSoon"
    )
    assert f'"root", "{OLD}"' in expiry
    assert f'"root", "{NEW}"' in expiry


def test_prod_secrets_stay_secret_with_stand_ins() -> None:
    from tests.conftest import evaluated

    prod = evaluated("prod")
    credentials = next(r for r in prod.resources if r.name == "aimesh-siem-credentials")
    assert _is_secret(credentials.inputs["stringData"])
