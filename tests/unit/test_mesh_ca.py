"""The mesh CA builders (both modes), the trust-root checks, and root rotation as a sequence of
stack configurations, verified with real certificates at every step."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

from aimesh import pem, settings
from aimesh.builders import istio, mesh_ca
from aimesh.builders.cert_manager import WAIT_FOR_READY
from aimesh.builders.secure_model import network
from aimesh.settings import ConfigError, Settings, parse
from tests import certs
from tools import schemas

OLD, NEW = "corp-root-2024", "corp-root-2026"


def _root(name: str) -> dict[str, str]:
    return {"name": name, "pem": certs.root(name).pem}


def _intermediate(name: str, root: str) -> dict[str, str]:
    issued = certs.intermediate(name, root)
    return {"meshCaCertificate": issued.pem, "meshCaKey": issued.key_pem}


def _existing(**extra: Any) -> Settings:
    config = {
        "meshCa": "cert-manager",
        "meshCaIssuer": "existing",
        **_intermediate("corp-int-2024", OLD),
        "meshTrustRoots": [_root(OLD)],
        **extra,
    }
    return parse({k: v for k, v in config.items() if v is not None})


# ---- trust roots are real CA certificates -------------------------------------------------------


def test_a_root_is_read_with_its_fingerprint_and_expiry() -> None:
    root = certs.root(OLD)
    read = pem.read_ca_certificate("some text before\n" + root.pem)
    assert read.fingerprint == root.cert.fingerprint(hashes.SHA256()).hex()
    assert read.not_after == root.cert.not_valid_after_utc
    assert read.pem.startswith("-----BEGIN CERTIFICATE-----")
    assert "some text" not in read.pem


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not a certificate", "is not PEM"),
        (certs.root(OLD).pem + certs.root(NEW).pem, "holds 2 certificates"),
        (
            certs.root(OLD).pem + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "a private key never belongs",
        ),
        (certs.leaf("w", certs.intermediate("i", OLD)).pem, "is not a CA"),
        (certs.expired_root("gone").pem, "expired on"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "not a parsable X.509 certificate",
        ),
    ],
    ids=["not-pem", "two-certificates", "private-key", "leaf", "expired", "garbage"],
)
def test_bad_roots_are_refused_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _existing(meshTrustRoots=[{"name": "bad", "pem": text}])
    assert "meshTrustRoots 'bad': pem" in str(raised.value)
    assert message in str(raised.value)
    if "PRIVATE KEY" in text:
        assert "AAAA" not in str(raised.value)  # never echoes key material


def test_the_same_root_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="are the same certificate"):
        _existing(meshTrustRoots=[_root(OLD), {"name": "again", "pem": certs.root(OLD).pem}])


def _vault(**extra: Any) -> Settings:
    return _existing(meshCaCertificate=None, meshCaKey=None, meshCaIssuerName="vault-mesh", **extra)


def test_an_issuer_of_yours_names_its_root_while_two_are_trusted() -> None:
    with pytest.raises(ConfigError, match="meshCaIssuingRoot: required while"):
        _vault(meshTrustRoots=[_root(OLD), _root(NEW)])
    with pytest.raises(ConfigError, match="meshCaIssuingRoot: 'elsewhere' is not in"):
        _vault(meshTrustRoots=[_root(OLD), _root(NEW)], meshCaIssuingRoot="elsewhere")
    chosen = _vault(meshTrustRoots=[_root(OLD), _root(NEW)], meshCaIssuingRoot=NEW)
    assert chosen.issuing_root is not None
    assert chosen.issuing_root.name == NEW
    assert _vault().issuing_root is not None  # one root: implied


def test_an_intermediate_takes_no_issuer_kind_or_declared_root() -> None:
    with pytest.raises(ConfigError, match="meshCaIssuerKind: only used with meshCaIssuerName"):
        _existing(meshCaIssuerKind="ClusterIssuer")
    with pytest.raises(ConfigError, match="meshCaIssuingRoot: only used with meshCaIssuerName"):
        _existing(meshCaIssuingRoot=OLD)
    with pytest.raises(ConfigError, match="not both"):
        _existing(meshCaIssuerName="vault")


def test_the_intermediate_must_chain_to_a_trusted_root() -> None:
    with pytest.raises(ConfigError) as raised:
        _existing(**_intermediate("corp-int-2026", NEW))
    assert "meshCaCertificate: " in str(raised.value)
    assert "does not chain to any root of meshTrustRoots (corp-root-2024)" in str(raised.value)
    with pytest.raises(ConfigError, match="meshCaCertificate: is not PEM"):
        _existing(meshCaCertificate="not pem")
    # The root of the chain is read from it, whichever order the bundle lists.
    both = _existing(meshTrustRoots=[_root(NEW), _root(OLD)])
    assert both.issuing_root is not None
    assert both.issuing_root.name == OLD
    # Signing directly with a root of the bundle is a chain too.
    direct = _existing(meshCaCertificate=certs.root(OLD).pem)
    assert direct.issuing_root is not None
    assert direct.issuing_root.name == OLD


# ---- what each mode generates -------------------------------------------------------------------


def test_istiod_mode_only_caps_the_workload_certificate_lifetime() -> None:
    s = parse({"meshCertDuration": "12h"})
    assert not mesh_ca.enabled(s)
    assert mesh_ca.issuer_chain(s) == []
    assert mesh_ca.trust_bundle_config_map(s) is None
    assert mesh_ca.istiod_certificate(s) is None
    assert mesh_ca.workload_egress_rule(s.mesh_ca) is None
    values = istio.istiod_values(s)
    assert values["env"] == {
        "DEFAULT_WORKLOAD_CERT_TTL": "12h",
        "MAX_WORKLOAD_CERT_TTL": "12h",
        "ENABLE_NATIVE_SIDECARS": "true",  # builders/istio.py: Pod Security restricted
    }
    assert values["meshConfig"]["defaultConfig"]["proxyMetadata"] == {"SECRET_TTL": "12h"}
    assert "caAddress" not in values["global"]
    assert parse({}).mesh_cert_lifetime == "24h"


def test_self_signed_mode_builds_the_dev_chain_in_istio_system() -> None:
    s = parse({"meshCa": "cert-manager", "trustDomain": "mesh.example.com"})
    chain = mesh_ca.issuer_chain(s)
    assert [(m["kind"], m["metadata"]["name"]) for m in chain] == [
        ("Issuer", "aimesh-mesh-selfsigned"),
        ("Certificate", "aimesh-mesh-root"),
        ("Issuer", "aimesh-mesh-ca"),
    ]
    assert {m["metadata"]["namespace"] for m in chain} == {"istio-system"}
    assert all(m["metadata"]["annotations"] == WAIT_FOR_READY for m in chain)
    root = chain[1]["spec"]
    assert root["isCA"] is True
    assert root["duration"] == mesh_ca.ROOT_DURATION
    assert "mesh.example.com" in root["subject"]["organizations"]
    assert chain[2]["spec"] == {"ca": {"secretName": "aimesh-mesh-root"}}
    assert mesh_ca.trust_bundle_config_map(s) is None  # the dev root is read from the issuer
    values = mesh_ca.chart_values(s)
    assert values["app"]["certmanager"]["issuer"] == {
        "enabled": True,
        "name": "aimesh-mesh-ca",
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    assert values["app"]["tls"]["trustDomain"] == "mesh.example.com"
    assert values["app"]["server"]["maxCertificateDuration"] == "1h"
    assert "rootCAFile" not in values["app"]["tls"]
    assert "volumes" not in values


def test_istiod_is_sent_to_istio_csr_with_its_own_ca_off() -> None:
    s = parse({"meshCa": "cert-manager", "meshCertDuration": "30m"})
    values = istio.istiod_values(s)
    assert values["env"] == {"ENABLE_CA_SERVER": "false", "ENABLE_NATIVE_SIDECARS": "true"}
    assert values["global"]["caAddress"] == "cert-manager-istio-csr.cert-manager.svc:443"
    assert values["meshConfig"]["defaultConfig"]["proxyMetadata"] == {"SECRET_TTL": "30m"}
    # The hardened mesh config is still all there.
    assert values["meshConfig"]["defaultConfig"]["holdApplicationUntilProxyStarts"] is True
    # istio-csr's serving certificate carries exactly the host istiod sends agents to.
    host = mesh_ca.chart_values(s)["app"]["tls"]["certificateDNSNames"]
    assert values["global"]["caAddress"].rsplit(":", 1)[0] in host


def test_istiod_certificate_carries_the_trust_domain() -> None:
    cert = mesh_ca.istiod_certificate(parse({"meshCa": "cert-manager", "trustDomain": "td.io"}))
    assert cert is not None
    spec = cert["spec"]
    assert spec["secretName"] == "istiod-tls"
    assert spec["dnsNames"] == ["istiod.istio-system.svc"]
    assert spec["uris"] == ["spiffe://td.io/ns/istio-system/sa/istiod"]
    assert spec["issuerRef"]["name"] == "aimesh-mesh-ca"
    assert cert["metadata"]["annotations"] == WAIT_FOR_READY


def test_existing_intermediate_gets_a_ca_issuer_and_a_static_trust_bundle() -> None:
    s = _existing()
    assert [(m["kind"], m["spec"]) for m in mesh_ca.issuer_chain(s)] == [
        ("Issuer", {"ca": {"secretName": "aimesh-mesh-ca-keypair"}})
    ]
    keypair = mesh_ca.keypair_secret(s)
    assert keypair is not None
    assert keypair["metadata"]["namespace"] == "istio-system"
    assert keypair["type"] == "kubernetes.io/tls"
    intermediate = certs.intermediate("corp-int-2024", OLD)
    assert keypair["stringData"] == {
        "tls.crt": intermediate.pem,
        "tls.key": intermediate.key_pem,
        "ca.crt": certs.root(OLD).pem,
    }
    bundle = mesh_ca.trust_bundle_config_map(s)
    assert bundle is not None
    assert bundle["metadata"]["namespace"] == "cert-manager"
    assert bundle["data"]["ca.pem"] == certs.root(OLD).pem
    values = mesh_ca.chart_values(s)
    assert values["app"]["tls"]["rootCAFile"] == "/var/run/secrets/aimesh-mesh-trust/ca.pem"
    assert values["volumes"] == [
        {"name": "trust-bundle", "configMap": {"name": "aimesh-mesh-trust-bundle"}}
    ]
    assert values["volumeMounts"][0]["mountPath"] == "/var/run/secrets/aimesh-mesh-trust"


def test_existing_issuer_is_referenced_as_it_is() -> None:
    s = _vault(meshCaIssuerKind="ClusterIssuer")
    assert mesh_ca.issuer_chain(s) == []
    assert mesh_ca.keypair_secret(s) is None
    assert mesh_ca.chart_values(s)["app"]["certmanager"]["issuer"]["name"] == "vault-mesh"
    cert = mesh_ca.istiod_certificate(s)
    assert cert is not None
    assert cert["spec"]["issuerRef"] == {
        "name": "vault-mesh",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }


def test_production_runs_two_istio_csr_replicas() -> None:
    values = mesh_ca.chart_values(parse({"meshCa": "cert-manager", "environment": "production"}))
    assert values["replicaCount"] == 2
    assert values["podDisruptionBudget"] == {"enabled": True}


def test_model_namespaces_may_reach_istio_csr_only_with_it() -> None:
    model = settings.ModelSettings.model_validate(
        {"name": "iris", "format": "sklearn", "storageUri": "gs://b/iris"}
    )
    s = parse({"meshCa": "cert-manager"})
    rule = mesh_ca.workload_egress_rule(s.mesh_ca)
    policies = {p["metadata"]["name"]: p for p in network.network_policies(model, [], False, rule)}
    assert policies["allow-mesh-ca"]["spec"]["egress"] == [rule]
    assert rule is not None
    assert rule["ports"] == [{"protocol": "TCP", "port": 6443}]
    assert rule["to"][0]["podSelector"] == {"matchLabels": {"app": "cert-manager-istio-csr"}}
    assert "allow-mesh-ca" not in {
        p["metadata"]["name"] for p in network.network_policies(model, [], False)
    }


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize(
    "extra",
    [
        {"meshCa": "cert-manager"},
        {"meshCa": "cert-manager", "environment": "production", "clusterMode": "render"},
        {"existing": "intermediate"},
        {"existing": "issuer"},
    ],
    ids=["self-signed", "self-signed-production", "existing-intermediate", "existing-issuer"],
)
def test_every_object_and_value_validates_strictly_upstream(extra: dict[str, Any]) -> None:
    if extra.get("existing") == "intermediate":
        s = _existing()
    elif extra.get("existing") == "issuer":
        s = _vault()
    else:
        s = parse(extra)
    objects = [*mesh_ca.issuer_chain(s), mesh_ca.istiod_certificate(s)]
    objects += [m for m in (mesh_ca.trust_bundle_config_map(s), mesh_ca.keypair_secret(s)) if m]
    assert [p for m in objects if m for p in schemas.validate(m)] == []
    assert schemas.validate_values("istio-csr", mesh_ca.chart_values(s)) == []
    assert schemas.validate_values("istiod", istio.istiod_values(s)) == []


# ---- rotating the root: a sequence of stack configurations --------------------------------------

INTERMEDIATES = {OLD: "corp-int-2024", NEW: "corp-int-2026"}


def _step(roots: list[str], issuing: str) -> Settings:
    return _existing(
        meshTrustRoots=[_root(r) for r in roots],
        **_intermediate(INTERMEDIATES[issuing], issuing),
    )


ROTATION = [
    ("before", [OLD], OLD),
    ("add the new root", [OLD, NEW], OLD),
    ("switch the issuer", [OLD, NEW], NEW),
    ("remove the old root", [NEW], NEW),
]


def _workload_certificate(issuing: str) -> tuple[certs.Issued, certs.Issued]:
    """A workload certificate as istio-csr hands it out at a step: (leaf, intermediate)."""
    intermediate = certs.intermediate(INTERMEDIATES[issuing], issuing)
    uri = "spiffe://prod.aimesh.example.com/ns/claims/sa/claims-api"
    return certs.leaf("claims-api", intermediate, uri), intermediate


def _accepted(issuing: str, bundle: str) -> bool:
    leaf, intermediate = _workload_certificate(issuing)
    return certs.verifies(leaf, [intermediate], bundle)


def test_each_rotation_step_is_safe_and_keeps_every_workload_connected() -> None:
    steps = [_step(roots, issuing) for _, roots, issuing in ROTATION]
    for index, (name, roots, issuing) in enumerate(ROTATION):
        current = steps[index]
        bundle = mesh_ca.trust_bundle(current)
        # What istio-csr serves is exactly the configured roots, in order.
        assert bundle == "".join(certs.root(r).pem for r in roots), name
        # istio-csr only hands out certificates that chain to its bundle.
        assert _accepted(issuing, bundle), name
        if index == 0:
            continue
        previous = steps[index - 1]
        _, _, issued_before = ROTATION[index - 1]
        assert mesh_ca.rotation_problems(previous, current) == [], name
        # During the step, peers on either side of it must accept each other: a certificate
        # issued before the step against the new bundle, and one issued after against the old.
        assert _accepted(issued_before, bundle), f"{name}: old certificates refused"
        assert _accepted(issuing, mesh_ca.trust_bundle(previous)), f"{name}: new ones refused"


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (0, 2, "did not hold before"),  # add and switch at once
        (1, 3, "leaves the trust bundle while certificates it signed"),  # switch and remove
        (0, 3, "did not hold before"),  # replace the root outright
    ],
    ids=["add-and-switch", "switch-and-remove", "replace"],
)
def test_skipping_a_step_is_refused_because_a_workload_would_be_cut_off(
    before: int, after: int, message: str
) -> None:
    first = _step(*ROTATION[before][1:])
    second = _step(*ROTATION[after][1:])
    problems = mesh_ca.rotation_problems(first, second)
    assert any(message in p for p in problems), problems
    # ... and that is real: one side of the step cannot verify the other's certificates.
    issued_before, issued_after = ROTATION[before][2], ROTATION[after][2]
    assert not (
        _accepted(issued_before, mesh_ca.trust_bundle(second))
        and _accepted(issued_after, mesh_ca.trust_bundle(first))
    )


def test_an_intermediate_rotation_under_the_same_root_is_one_step() -> None:
    first = _existing()
    second = _existing(**_intermediate("corp-int-2024-b", OLD))
    assert mesh_ca.rotation_problems(first, second) == []


def test_an_issuer_of_yours_rotates_the_same_way() -> None:
    steps = [
        _vault(meshTrustRoots=[_root(OLD)]),
        _vault(meshTrustRoots=[_root(OLD), _root(NEW)], meshCaIssuingRoot=OLD),
        _vault(meshTrustRoots=[_root(OLD), _root(NEW)], meshCaIssuingRoot=NEW),
        _vault(meshTrustRoots=[_root(NEW)]),
    ]
    for before, after in itertools.pairwise(steps):
        assert mesh_ca.rotation_problems(before, after) == []
    assert mesh_ca.rotation_problems(steps[0], steps[2])
    assert mesh_ca.rotation_problems(steps[1], steps[3])


def test_changing_the_mode_is_a_migration_not_a_rotation() -> None:
    assert mesh_ca.rotation_problems(parse({}), _existing())
    assert mesh_ca.rotation_problems(parse({"meshCa": "cert-manager"}), _existing())
    assert mesh_ca.rotation_problems(parse({}), parse({})) == []
