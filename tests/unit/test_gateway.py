"""builders/gateway.py: certificate, Gateway, JWT authentication and the gateway's authorization.

Besides the shape of each object, the authorization DECISIONS are checked by evaluating requests
against the generated policies with a small model of Istio's documented semantics (below):
RequestAuthentication rejects an invalid token (401) but not a missing one; then DENY policies,
then ALLOW policies (if any ALLOW applies to the workload, a request must match one of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from aimesh import settings
from aimesh.builders import cert_manager, gateway, istio, mesh_security
from aimesh.namespaces import INGRESS_NAMESPACE, ISTIO_NAMESPACE
from tools import schemas

# ---- a model of Istio's request authentication + authorization at one workload -------------


@dataclass(frozen=True)
class Token:
    iss: str
    sub: str
    aud: tuple[str, ...]


@dataclass(frozen=True)
class Request:
    host: str
    path: str = "/v1/models/iris:predict"
    method: str = "POST"
    port: int = gateway.HTTPS_PORT
    token: Token | None = None


WORKLOAD_NS = INGRESS_NAMESPACE
WORKLOAD_LABELS = {"istio": "ingressgateway", "app": "aimesh-ingressgateway"}


def _applies(manifest: Mapping[str, Any]) -> bool:
    namespace = manifest["metadata"]["namespace"]
    labels = (manifest["spec"].get("selector") or {}).get("matchLabels") or {}
    if namespace == ISTIO_NAMESPACE and not labels:
        return True  # root namespace, no selector: every workload of the mesh
    return namespace == WORKLOAD_NS and all(WORKLOAD_LABELS.get(k) == v for k, v in labels.items())


def _string_match(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _field(spec: Mapping[str, Any], name: str, values: Iterable[str | None]) -> bool:
    """`name` (any pattern matches any value) and `notName` (no pattern matches) of a source,
    operation or condition; an absent field matches, and so does an empty list (proto3: an
    empty repeated field is indistinguishable from an unset one)."""
    values = list(values)
    positive = spec.get(name)
    negative = spec.get("not" + name[0].upper() + name[1:])
    if positive and not any(_string_match(p, v) for p in positive for v in values):
        return False
    return not (negative and any(_string_match(p, v) for p in negative for v in values))


SOURCE_FIELDS = {"requestPrincipals", "notRequestPrincipals", "principals", "notPrincipals"}
OPERATION_FIELDS = {
    "hosts",
    "notHosts",
    "ports",
    "notPorts",
    "paths",
    "notPaths",
    "methods",
    "notMethods",
}


def _source(source: Mapping[str, Any], request: Request, principal: str | None) -> bool:
    assert set(source) <= SOURCE_FIELDS, f"model does not know {set(source) - SOURCE_FIELDS}"
    return _field(source, "requestPrincipals", [principal]) and _field(source, "principals", [None])


def _operation(operation: Mapping[str, Any], request: Request) -> bool:
    assert set(operation) <= OPERATION_FIELDS, f"unknown {set(operation) - OPERATION_FIELDS}"
    return (
        _field(operation, "hosts", [request.host])
        and _field(operation, "ports", [str(request.port)])
        and _field(operation, "paths", [request.path])
        and _field(operation, "methods", [request.method])
    )


def _condition(condition: Mapping[str, Any], claims: Mapping[str, list[str]]) -> bool:
    key = condition["key"]
    assert key.startswith("request.auth.claims["), f"model does not know condition {key}"
    values: list[str | None] = list(claims.get(key[len("request.auth.claims[") : -1], [])) or [None]
    return _field(condition, "values", values)


def _rule(rule: Mapping[str, Any], request: Request, principal: str | None, claims: Any) -> bool:
    sources = rule.get("from")
    operations = rule.get("to")
    return (
        (sources is None or any(_source(s["source"], request, principal) for s in sources))
        and (operations is None or any(_operation(o["operation"], request) for o in operations))
        and all(_condition(c, claims) for c in rule.get("when", []))
    )


def _matches(
    policy: Mapping[str, Any], request: Request, principal: str | None, claims: Any
) -> bool:
    return any(_rule(r, request, principal, claims) for r in policy["spec"].get("rules", []))


def decide(manifests: Iterable[Mapping[str, Any]], request: Request) -> int:
    """200 (passed on), 401 (invalid token) or 403 (denied) at the ingress gateway."""
    applying = [m for m in manifests if _applies(m)]
    jwt_rules = [
        rule
        for m in applying
        if m["kind"] == "RequestAuthentication"
        for rule in m["spec"]["jwtRules"]
    ]
    principal: str | None = None
    claims: dict[str, list[str]] = {}
    if request.token is not None and jwt_rules:
        rule = next((r for r in jwt_rules if r["issuer"] == request.token.iss), None)
        if rule is None or not set(rule.get("audiences") or request.token.aud) & set(
            request.token.aud
        ):
            return 401
        principal = f"{request.token.iss}/{request.token.sub}"
        claims = {
            "iss": [request.token.iss],
            "sub": [request.token.sub],
            "aud": [*request.token.aud],
        }
    policies = [m for m in applying if m["kind"] == "AuthorizationPolicy"]
    action = {id(p): p["spec"].get("action", "ALLOW") for p in policies}
    if any(action[id(p)] == "DENY" and _matches(p, request, principal, claims) for p in policies):
        return 403
    allows = [p for p in policies if action[id(p)] == "ALLOW"]
    if allows and not any(_matches(p, request, principal, claims) for p in allows):
        return 403
    return 200


# ---- fixtures --------------------------------------------------------------------------------

IDP = "https://idp.example.com"
JWKS = "https://idp.example.com/.well-known/jwks.json"

INTEGRATIONS: list[dict[str, Any]] = [
    {"name": "crm", "issuer": IDP, "jwksUri": JWKS, "audiences": ["crm"], "subjects": ["svc-crm"]},
    {"name": "bi", "issuer": IDP, "jwksUri": JWKS, "audiences": ["bi"]},
    {
        "name": "partner",
        "issuer": "https://login.partner.example",
        "jwksUri": "https://login.partner.example/keys",
        "audiences": ["aimesh"],
    },
]
MODELS: list[dict[str, Any]] = [
    {
        "name": "iris",
        "format": "sklearn",
        "storageUri": "gs://models/iris",
        "integrations": [{"name": "crm"}],
    },
    {
        "name": "fraud",
        "format": "xgboost",
        "storageUri": "gs://models/fraud",
        "integrations": [{"name": "crm"}, {"name": "bi"}],
    },
    {"name": "internal", "format": "onnx", "storageUri": "gs://models/internal"},
]
IRIS = "iris.models.aimesh.local"
FRAUD = "fraud.models.aimesh.local"
INTERNAL = "internal.models.aimesh.local"

CRM = Token(IDP, "svc-crm", ("crm",))
BI = Token(IDP, "any-bi-user", ("bi",))
PARTNER = Token("https://login.partner.example", "p1", ("aimesh",))


def _settings(**extra: Any) -> settings.Settings:
    return settings.parse({"integrations": INTEGRATIONS, "models": MODELS, **extra})


def _at_gateway(config: settings.Settings) -> list[dict[str, Any]]:
    """Everything that applies at the gateway: the mesh-wide deny-all plus the gateway's own."""
    return [mesh_security.root_deny_all(config), *gateway.policies(config).values()]


FULL = _settings()
ACME = _settings(issuerType="acme", acmeEmail="ops@example.com")
NONE = settings.parse({"models": [MODELS[2]]})


# ---- the decision model itself -----------------------------------------------------------------


def test_model_denies_everything_under_an_empty_allow() -> None:
    assert decide([mesh_security.root_deny_all(FULL)], Request(IRIS, token=CRM)) == 403


def test_model_allows_when_no_policy_applies() -> None:
    assert decide([], Request(IRIS)) == 200


# ---- decisions: who gets through the gateway ----------------------------------------------


@pytest.mark.parametrize("host", [IRIS, FRAUD, INTERNAL, "unknown.models.aimesh.local"])
def test_request_without_token_is_denied(host: str) -> None:
    assert decide(_at_gateway(FULL), Request(host)) == 403


@pytest.mark.parametrize("port", [gateway.HTTPS_PORT, gateway.HTTP_PORT])
def test_request_without_token_is_denied_on_every_port(port: int) -> None:
    assert decide(_at_gateway(FULL), Request(IRIS, port=port)) == 403


def test_integration_reaches_the_models_that_grant_it() -> None:
    assert decide(_at_gateway(FULL), Request(IRIS, token=CRM)) == 200
    assert decide(_at_gateway(FULL), Request(FRAUD, token=CRM)) == 200
    assert decide(_at_gateway(FULL), Request(FRAUD, token=BI)) == 200


def test_integration_cannot_reach_a_model_that_did_not_grant_it() -> None:
    assert decide(_at_gateway(FULL), Request(IRIS, token=BI)) == 403
    assert decide(_at_gateway(FULL), Request(INTERNAL, token=CRM)) == 403
    assert decide(_at_gateway(FULL), Request("unknown.models.aimesh.local", token=CRM)) == 403


def test_integration_granted_nowhere_reaches_nothing() -> None:
    # `partner` is configured (its tokens validate) but no model grants it.
    for host in (IRIS, FRAUD, INTERNAL):
        assert decide(_at_gateway(FULL), Request(host, token=PARTNER)) == 403


def test_host_with_explicit_port_is_matched() -> None:
    # kind maps host port 8443 to the gateway; clients then send `Host: iris...:8443`.
    assert decide(_at_gateway(FULL), Request(f"{IRIS}:8443", token=CRM)) == 200
    assert decide(_at_gateway(FULL), Request(f"{IRIS}:8443", token=BI)) == 403


def test_subject_outside_the_integration_subjects_is_denied() -> None:
    stranger = Token(IDP, "someone-else", ("crm",))
    assert decide(_at_gateway(FULL), Request(IRIS, token=stranger)) == 403


def test_shared_issuer_integrations_are_told_apart_by_audience() -> None:
    # A `bi` subject that claims to be svc-crm but holds a `bi` token gets bi's grants only.
    impostor = Token(IDP, "svc-crm", ("bi",))
    assert decide(_at_gateway(FULL), Request(IRIS, token=impostor)) == 403
    assert decide(_at_gateway(FULL), Request(FRAUD, token=impostor)) == 200


@pytest.mark.parametrize(
    "token",
    [
        Token(IDP, "svc-crm", ("other-audience",)),
        Token("https://evil.example", "svc-crm", ("crm",)),
    ],
    ids=["wrong-audience", "unknown-issuer"],
)
def test_invalid_token_is_rejected(token: Token) -> None:
    assert decide(_at_gateway(FULL), Request(IRIS, token=token)) == 401


def test_authenticated_plain_http_is_passed_on_to_the_redirect() -> None:
    # RBAC runs before routing: with a valid token the HTTP server's 301 to HTTPS answers.
    assert decide(_at_gateway(FULL), Request(IRIS, port=gateway.HTTP_PORT, token=CRM)) == 200


@pytest.mark.parametrize("with_root_deny_all", [True, False])
def test_without_integrations_the_gateway_passes_nothing(with_root_deny_all: bool) -> None:
    built = list(gateway.policies(NONE).values())
    if with_root_deny_all:
        built.append(mesh_security.root_deny_all(NONE))
    assert decide(built, Request(INTERNAL)) == 403
    assert decide(built, Request(INTERNAL, token=CRM)) == 403
    assert decide(built, Request(INTERNAL, port=gateway.HTTP_PORT)) == 403


def test_gateway_policies_hold_without_the_root_deny_all() -> None:
    # Defense in depth: the gateway's own ALLOWs already bound who gets where.
    own = list(gateway.policies(FULL).values())
    assert decide(own, Request(IRIS)) == 403
    assert decide(own, Request(IRIS, token=BI)) == 403
    assert decide(own, Request(IRIS, token=CRM)) == 200


ACME_PATH = "/.well-known/acme-challenge/abc123"


def test_acme_challenge_passes_without_token_only_with_acme() -> None:
    challenge = Request(IRIS, path=ACME_PATH, method="GET", port=gateway.HTTP_PORT)
    assert decide(_at_gateway(ACME), challenge) == 200
    assert decide(_at_gateway(FULL), challenge) == 403


@pytest.mark.parametrize(
    "request_",
    [
        Request(IRIS, path=ACME_PATH, method="GET", port=gateway.HTTPS_PORT),
        Request(IRIS, path=ACME_PATH, method="POST", port=gateway.HTTP_PORT),
        Request(IRIS, path="/v1/models/iris:predict", method="GET", port=gateway.HTTP_PORT),
        Request(IRIS, path="/.well-known/other", method="GET", port=gateway.HTTP_PORT),
        Request("evil.example", path=ACME_PATH, method="GET", port=gateway.HTTP_PORT),
    ],
    ids=["https-port", "post", "other-path-http", "other-well-known", "foreign-host"],
)
def test_acme_exception_is_narrow(request_: Request) -> None:
    assert decide(_at_gateway(ACME), request_) == 403


def test_acme_does_not_weaken_integration_rules() -> None:
    assert decide(_at_gateway(ACME), Request(IRIS, token=CRM)) == 200
    assert decide(_at_gateway(ACME), Request(IRIS, token=BI)) == 403
    assert decide(_at_gateway(ACME), Request(IRIS)) == 403


# ---- objects --------------------------------------------------------------------------------


def test_require_token_policy_exists_without_integrations() -> None:
    policy = gateway.require_token(NONE)
    assert policy["spec"]["action"] == "DENY"
    assert policy["spec"]["rules"] == [{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}]
    assert policy["spec"]["selector"] == {"matchLabels": WORKLOAD_LABELS}


def test_require_token_has_an_exception_only_with_acme() -> None:
    assert "to" not in gateway.require_token(FULL)["spec"]["rules"][0]
    assert gateway.require_token(ACME)["spec"]["rules"][0]["to"] == [
        {"operation": {"notPorts": ["80"]}},
        {"operation": {"notPaths": ["/.well-known/acme-challenge/*"]}},
    ]


def test_request_authentication_one_rule_per_issuer() -> None:
    ra = gateway.request_authentication(FULL)
    assert ra is not None
    assert ra["metadata"]["namespace"] == INGRESS_NAMESPACE
    assert ra["spec"]["selector"] == {"matchLabels": WORKLOAD_LABELS}
    rules = {r["issuer"]: r for r in ra["spec"]["jwtRules"]}
    assert set(rules) == {IDP, "https://login.partner.example"}
    assert rules[IDP]["audiences"] == ["bi", "crm"]
    assert rules[IDP]["jwksUri"] == JWKS
    for rule in rules.values():
        assert rule["jwksUri"].startswith("https://")
        # Only the Authorization header: no `?access_token=` tokens that end up in logs.
        assert rule["fromHeaders"] == [{"name": "Authorization", "prefix": "Bearer "}]
        assert "fromParams" not in rule


def test_no_request_authentication_without_integrations() -> None:
    assert gateway.request_authentication(NONE) is None
    assert "jwt" not in gateway.policies(NONE)


def test_request_principals_format() -> None:
    crm, bi, _ = FULL.integrations
    assert gateway.request_principals(crm) == [f"{IDP}/svc-crm"]
    assert gateway.request_principals(bi) == [f"{IDP}/*"]


def test_integration_hosts_only_from_granting_models() -> None:
    assert gateway.integration_hosts(FULL, "crm") == [FRAUD, IRIS]
    assert gateway.integration_hosts(FULL, "bi") == [FRAUD]
    assert gateway.integration_hosts(FULL, "partner") == []


def test_ungranted_integration_gets_no_allow_policy() -> None:
    partner = FULL.integrations[2]
    assert gateway.integration_allow(FULL, partner) is None
    assert "allow-partner" not in gateway.policies(FULL)
    # Why: an ALLOW whose hosts list is empty matches every host.
    unbounded = gateway.integration_allow(FULL, FULL.integrations[0])
    assert unbounded is not None
    unbounded["spec"]["rules"][0]["to"][0]["operation"]["hosts"] = []
    authn = gateway.request_authentication(FULL)
    assert authn is not None
    assert decide([authn, unbounded], Request(INTERNAL, token=CRM)) == 200


def test_gateway_servers() -> None:
    gw = gateway.gateway(FULL)
    assert gw["apiVersion"] == "networking.istio.io/v1"
    assert gw["metadata"] == {
        "name": "aimesh-gateway",
        "namespace": INGRESS_NAMESPACE,
        "labels": gw["metadata"]["labels"],
    }
    assert gw["spec"]["selector"] == WORKLOAD_LABELS
    https, http = gw["spec"]["servers"]
    assert https["port"] == {"number": 443, "name": "https", "protocol": "HTTPS"}
    assert https["hosts"] == ["*.models.aimesh.local"]
    assert https["tls"]["mode"] == "SIMPLE"
    assert https["tls"]["credentialName"] == "aimesh-gateway-tls"
    assert https["tls"]["minProtocolVersion"] == "TLSV1_2"
    assert all(s.startswith("ECDHE-") for s in https["tls"]["cipherSuites"])
    assert http["port"]["protocol"] == "HTTP"
    assert http["tls"] == {"httpsRedirect": True}


def test_acme_gateway_leaves_port_80_to_the_challenge_solver() -> None:
    # An httpsRedirect server for the same hosts would shadow the solver's Ingress routes.
    servers = gateway.gateway(ACME)["spec"]["servers"]
    assert [s["port"]["number"] for s in servers] == [gateway.HTTPS_PORT]


def test_gateway_tls13_minimum() -> None:
    https = gateway.gateway(_settings(minTlsVersion="TLSV1_3"))["spec"]["servers"][0]
    assert https["tls"]["minProtocolVersion"] == "TLSV1_3"
    assert "cipherSuites" not in https["tls"]


def test_tls_below_1_2_is_not_configurable() -> None:
    with pytest.raises(settings.ConfigError, match="minTlsVersion"):
        _settings(minTlsVersion="TLSV1_1")


def test_reference_uses_fixed_names() -> None:
    ref = gateway.reference(_settings(gatewayDomain="ai.example.com"))
    assert ref.qualified == "istio-ingress/aimesh-gateway"
    assert ref.service_account == "aimesh-ingressgateway"
    assert ref.domain == "ai.example.com"
    assert ref.principal("cluster.local") == (
        "cluster.local/ns/istio-ingress/sa/aimesh-ingressgateway"
    )


def test_certificate_default_issuer_and_wildcard() -> None:
    cert = gateway.certificate(FULL)
    assert cert is not None
    assert cert["metadata"]["namespace"] == INGRESS_NAMESPACE
    assert cert["spec"]["secretName"] == "aimesh-gateway-tls"
    assert cert["spec"]["issuerRef"] == {
        "name": "aimesh-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert cert["spec"]["dnsNames"] == ["*.models.aimesh.local"]
    assert cert["spec"]["privateKey"] == {
        "algorithm": "ECDSA",
        "size": 256,
        "rotationPolicy": "Always",
    }


def test_certificate_key_from_settings() -> None:
    cert = gateway.certificate(_settings(certKeyAlgorithm="RSA", certKeySize=3072))
    assert cert is not None
    assert cert["spec"]["privateKey"]["algorithm"] == "RSA"
    assert cert["spec"]["privateKey"]["size"] == 3072


def test_certificate_existing_issuer() -> None:
    config = _settings(
        issuerType="existing", existingIssuerName="corp-ca", existingIssuerKind="Issuer"
    )
    cert = gateway.certificate(config)
    assert cert is not None
    assert cert["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "Issuer",
        "group": "cert-manager.io",
    }


def test_certificate_explicit_issuer_wins() -> None:
    issuer = {"name": "from-component", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    cert = gateway.certificate(FULL, issuer)
    assert cert is not None
    assert cert["spec"]["issuerRef"] == issuer


def test_acme_certificate_lists_exact_hosts() -> None:
    # HTTP-01 cannot validate a wildcard.
    cert = gateway.certificate(ACME)
    assert cert is not None
    assert cert["spec"]["dnsNames"] == [FRAUD, INTERNAL, IRIS]
    assert not any("*" in name for name in cert["spec"]["dnsNames"])


def test_acme_without_models_requests_no_certificate() -> None:
    config = settings.parse({"issuerType": "acme", "acmeEmail": "ops@example.com"})
    assert gateway.certificate(config) is None
    assert gateway.acme_challenge_allow(config) is None


# ---- config validation this part relies on ---------------------------------------------------


def _integration(**fields: Any) -> dict[str, Any]:
    return {"name": "a", "issuer": IDP, "jwksUri": JWKS, "audiences": ["x"], **fields}


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (_integration(name="b"), "distinct 'audiences'"),
        (_integration(name="b", subjects=["s"]), "distinct 'audiences'"),
        (_integration(name="b", audiences=["y"], jwksUri="https://other/keys"), "jwksUri"),
    ],
    ids=["same-audience", "one-without-subjects", "different-jwks"],
)
def test_indistinguishable_integrations_are_rejected(second: dict[str, Any], message: str) -> None:
    with pytest.raises(settings.ConfigError, match=message):
        settings.parse({"integrations": [_integration(), second]})


@pytest.mark.parametrize(
    "pair",
    [
        [_integration(), _integration(name="b", audiences=["y"])],
        [_integration(subjects=["s1"]), _integration(name="b", subjects=["s2"])],
    ],
    ids=["distinct-audiences", "distinct-subjects"],
)
def test_distinguishable_integrations_share_an_issuer(pair: list[dict[str, Any]]) -> None:
    assert len(settings.parse({"integrations": pair}).integrations) == 2


@pytest.mark.parametrize(
    "fields", [{"issuer": "https://*.example"}, {"subjects": ["svc-*"]}], ids=["issuer", "subject"]
)
def test_wildcards_in_identities_are_rejected(fields: dict[str, Any]) -> None:
    with pytest.raises(settings.ConfigError, match="must not contain"):
        settings.parse({"integrations": [_integration(**fields)]})


def test_jwks_over_http_is_rejected() -> None:
    with pytest.raises(settings.ConfigError, match="https"):
        settings.parse({"integrations": [_integration(jwksUri="http://idp/keys")]})


# ---- upstream conformance ---------------------------------------------------------------------

VARIANTS = {
    "full": FULL,
    "acme": ACME,
    "none": NONE,
    "tls13-rsa": _settings(minTlsVersion="TLSV1_3", certKeyAlgorithm="RSA", certKeySize=4096),
    "existing": _settings(issuerType="existing", existingIssuerName="corp-ca"),
}


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_object_conforms_to_upstream_crds(variant: str) -> None:
    config = VARIANTS[variant]
    built = [*gateway.policies(config).values(), gateway.gateway(config)]
    cert = gateway.certificate(config)
    if cert is not None:
        built.append(cert)
    for manifest in built:
        assert schemas.validate(manifest) == [], manifest["metadata"]["name"]


def test_acme_certificate_uses_the_acme_issuer() -> None:
    cert = gateway.certificate(ACME)
    assert cert is not None
    assert cert["spec"]["issuerRef"] == cert_manager.issuer_ref(ACME)
    assert cert["spec"]["issuerRef"]["name"] != "aimesh-ca"


# ---- contracts with the Istio builder (the gateway chart this part configures) ----------------


def test_policy_ports_are_the_gateway_listener_ports() -> None:
    # AuthorizationPolicy `ports` on a gateway match Envoy's listener (the Service targetPort).
    target_ports = {p["name"]: p["targetPort"] for p in istio.gateway_ports(FULL)}
    assert target_ports["http2"] == gateway.HTTP_PORT
    assert target_ports["https"] == gateway.HTTPS_PORT


def test_selector_is_the_gateway_pod_labels() -> None:
    assert istio.GATEWAY_LABELS == gateway.GATEWAY_SELECTOR
