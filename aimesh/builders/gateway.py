"""The ingress gateway's edge: TLS certificate, the Istio Gateway, JWT authentication of external
integrations and the authorization that requires a token (pure builders).

Request flow at the gateway (Istio evaluates CUSTOM, then DENY, then ALLOW):

1. RequestAuthentication (`aimesh-gateway-jwt`): a token that is present is validated against its
   issuer's JWKS (signature, expiry, audience). An INVALID token is rejected with 401. A request
   WITHOUT a token is NOT rejected by it: it simply carries no request principal.
2. DENY (`aimesh-gateway-require-jwt`): every request without a request principal is denied
   (403), on every port - the only exception is the ACME HTTP-01 challenge path on the HTTP port
   when `issuerType` is `acme`. This holds with or without integrations: with none, nothing but
   ACME gets through the gateway (in-mesh callers reach models directly, over mTLS).
3. ALLOW (`aimesh-gateway-allow-<integration>`): the integration's request principals
   (`<iss>/<sub>`, or `<iss>/*`) with its audiences, only to the hosts of the models that grant
   it. Together with the root-namespace deny-all (an ALLOW matching nothing), anything not
   matched here is denied - an integration cannot reach a model that did not grant it.

The models repeat the check at their own sidecars (components/secure_model.py): defense in depth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aimesh.builders import cert_manager
from aimesh.builders.common import GatewayRef, metadata
from aimesh.namespaces import INGRESS_NAMESPACE
from aimesh.settings import IntegrationSettings, ModelSettings, Settings

SECURITY_API = "security.istio.io/v1"
NETWORKING_API = "networking.istio.io/v1"
CERT_MANAGER_API = "cert-manager.io/v1"

# Fixed names (see the brief shared by every component).
GATEWAY_NAME = "aimesh-gateway"
GATEWAY_SERVICE_ACCOUNT = "aimesh-ingressgateway"
GATEWAY_SELECTOR = {"istio": "ingressgateway", "app": "aimesh-ingressgateway"}
TLS_SECRET_NAME = "aimesh-gateway-tls"  # noqa: S105 - a Secret's name, not a secret

# Ports the gateway's Envoy listens on: the `targetPort`s of the `gateway` chart's Service
# (80 and 443 by default; the chart lets the proxy bind them through the unprivileged-port
# sysctl). AuthorizationPolicy `ports` match these listener ports, not the NodePorts.
HTTP_PORT = 80
HTTPS_PORT = 443

ACME_CHALLENGE_PATH = "/.well-known/acme-challenge/*"

# TLS 1.2 suites with forward secrecy and AEAD only (Envoy's default list also has static-RSA
# key exchange). TLS 1.3 suites are not configurable and are all strong.
TLS12_CIPHER_SUITES = [
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
]

_LABELS = {"app.kubernetes.io/part-of": "aimesh", "app.kubernetes.io/component": "gateway"}


def reference(settings: Settings) -> GatewayRef:
    """What models need to know about the gateway (names fixed for every component)."""
    return GatewayRef(
        namespace=INGRESS_NAMESPACE,
        name=GATEWAY_NAME,
        service_account=GATEWAY_SERVICE_ACCOUNT,
        selector=dict(GATEWAY_SELECTOR),
        domain=settings.gateway_domain,
    )


def model_host(settings: Settings, model: ModelSettings) -> str:
    """The public host a model is served at."""
    return f"{model.name}.{settings.gateway_domain}"


def _host_patterns(hosts: list[str]) -> list[str]:
    # Authorization `hosts` compare the Host/:authority header exactly; clients that connect on a
    # non-default port (kind maps 8443 -> 443) send `host:port`, so each host is listed twice.
    return [pattern for host in hosts for pattern in (host, f"{host}:*")]


# ---- certificate -----------------------------------------------------------------------------


def issuer_ref(settings: Settings, issuer: Mapping[str, str] | None = None) -> dict[str, str]:
    """The issuerRef of the gateway Certificate.

    `issuer` (components/cert_manager.py's `issuer`) wins when given; otherwise the same
    derivation cert-manager's builder uses (`aimesh-ca`, `aimesh-acme` or the platform team's
    own). A namespaced `Issuer` must live in istio-ingress (cert-manager resolves it there)."""
    if issuer is not None:
        return {"name": issuer["name"], "kind": issuer["kind"], "group": issuer["group"]}
    return cert_manager.issuer_ref(settings)


def certificate_hosts(settings: Settings) -> list[str]:
    """DNS names of the gateway certificate.

    A wildcard `*.<gatewayDomain>` covers every model for in-cluster/corporate CAs. ACME cannot
    validate a wildcard over HTTP-01 (it needs DNS-01), so with `acme` each model's exact host is
    listed instead."""
    if settings.issuer_type == "acme":
        return sorted(model_host(settings, m) for m in settings.models)
    return [f"*.{settings.gateway_domain}"]


def certificate(
    settings: Settings, issuer: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """cert-manager Certificate whose Secret the Gateway's HTTPS server serves.

    None when there is nothing to certify (acme without any model): the HTTPS listener then has
    no secret and serves nothing, which is the correct state for a gateway without models."""
    hosts = certificate_hosts(settings)
    if not hosts:
        return None
    return {
        "apiVersion": CERT_MANAGER_API,
        "kind": "Certificate",
        "metadata": metadata(TLS_SECRET_NAME, INGRESS_NAMESPACE, _LABELS),
        "spec": {
            "secretName": TLS_SECRET_NAME,
            "issuerRef": issuer_ref(settings, issuer),
            "dnsNames": hosts,
            "privateKey": {
                "algorithm": settings.cert_key_algorithm,
                "size": settings.cert_key_size,
                # A new key on every renewal: a leaked key dies with its certificate.
                "rotationPolicy": "Always",
            },
            # Server certificate only; ECDHE suites need signatures, not key encipherment.
            "usages": ["server auth", "digital signature"],
            "revisionHistoryLimit": 2,
        },
    }


# ---- gateway ---------------------------------------------------------------------------------


def server_hosts(domain: str) -> list[str]:
    """The hosts the gateway's servers accept (also published in each model's intent, which
    tells the policy pack what the gateway serves when it belongs to another stack)."""
    return [f"*.{domain}"]


def gateway(settings: Settings) -> dict[str, Any]:
    """networking.istio.io Gateway: HTTPS with the cert-manager secret, HTTP only redirects.

    With `issuerType: acme` there is no HTTP server: port 80 then belongs to cert-manager's
    HTTP-01 solver (its Ingress, served by this gateway). A Gateway server with `httpsRedirect`
    for the same hosts shadows the solver's routes and the challenge fails (istio/istio#33593,
    #27643). Without the redirect, port 80 answers ACME challenges and denies the rest (403)."""
    hosts = server_hosts(settings.gateway_domain)
    tls: dict[str, Any] = {
        "mode": "SIMPLE",
        "credentialName": TLS_SECRET_NAME,
        "minProtocolVersion": settings.min_tls_version,
    }
    if settings.min_tls_version == "TLSV1_2":
        tls["cipherSuites"] = list(TLS12_CIPHER_SUITES)
    servers: list[dict[str, Any]] = [
        {
            "name": "https",
            "port": {"number": HTTPS_PORT, "name": "https", "protocol": "HTTPS"},
            "hosts": hosts,
            "tls": tls,
        }
    ]
    if settings.issuer_type != "acme":
        servers.append(
            {
                "name": "http-redirect",
                "port": {"number": HTTP_PORT, "name": "http", "protocol": "HTTP"},
                "hosts": hosts,
                "tls": {"httpsRedirect": True},
            }
        )
    return {
        "apiVersion": NETWORKING_API,
        "kind": "Gateway",
        "metadata": metadata(GATEWAY_NAME, INGRESS_NAMESPACE, _LABELS),
        # Both fixed labels: a Gateway's selector matches proxies in every namespace.
        "spec": {"selector": dict(GATEWAY_SELECTOR), "servers": servers},
    }


# ---- JWT authentication and authorization -----------------------------------------------------


def issuers(settings: Settings) -> dict[str, list[IntegrationSettings]]:
    """Integrations grouped by JWT issuer (settings guarantees one JWKS per issuer)."""
    grouped: dict[str, list[IntegrationSettings]] = {}
    for integration in settings.integrations:
        grouped.setdefault(integration.issuer, []).append(integration)
    return grouped


def request_authentication(settings: Settings) -> dict[str, Any] | None:
    """RequestAuthentication on the gateway workload: one JWT rule per issuer.

    Integrations that share an issuer share one rule (Istio leaves two rules for one issuer
    undefined, istio/istio#19245); their audiences are merged here and told apart again by each
    integration's ALLOW. None when no integration is configured."""
    rules = []
    for issuer, members in sorted(issuers(settings).items()):
        rules.append(
            {
                "issuer": issuer,
                "jwksUri": members[0].jwks_uri,
                "audiences": sorted({a for m in members for a in m.audiences}),
                # Only the Authorization header: Istio's default also reads `?access_token=`,
                # and tokens in URLs end up in access logs.
                "fromHeaders": [{"name": "Authorization", "prefix": "Bearer "}],
                # Forwarded so that the model's own sidecar can validate the token again.
                "forwardOriginalToken": True,
            }
        )
    if not rules:
        return None
    return {
        "apiVersion": SECURITY_API,
        "kind": "RequestAuthentication",
        "metadata": metadata("aimesh-gateway-jwt", INGRESS_NAMESPACE, _LABELS),
        "spec": {"selector": {"matchLabels": dict(GATEWAY_SELECTOR)}, "jwtRules": rules},
    }


def require_token(settings: Settings) -> dict[str, Any]:
    """DENY every request without a request principal (no token means no access).

    RequestAuthentication rejects bad tokens but lets token-less requests through; this is
    the policy that closes that gap. With `acme`, the HTTP-01 challenge path on the HTTP port is
    the one exception (the CA cannot present a token). Note that RBAC runs before routing, so a
    plain-HTTP request without a token gets 403, not the HTTPS redirect."""
    rule: dict[str, Any] = {"from": [{"source": {"notRequestPrincipals": ["*"]}}]}
    if settings.issuer_type == "acme":
        # Denied unless BOTH on the HTTP port AND on the challenge path (operations are ORed).
        rule["to"] = [
            {"operation": {"notPorts": [str(HTTP_PORT)]}},
            {"operation": {"notPaths": [ACME_CHALLENGE_PATH]}},
        ]
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata("aimesh-gateway-require-jwt", INGRESS_NAMESPACE, _LABELS),
        "spec": {
            "selector": {"matchLabels": dict(GATEWAY_SELECTOR)},
            "action": "DENY",
            "rules": [rule],
        },
    }


def request_principals(integration: IntegrationSettings) -> list[str]:
    """`<iss>/<sub>` for each allowed subject, or `<iss>/*` (any subject of the issuer)."""
    if integration.subjects:
        return [f"{integration.issuer}/{sub}" for sub in integration.subjects]
    return [f"{integration.issuer}/*"]


def integration_hosts(settings: Settings, integration: str) -> list[str]:
    """Hosts of the models that grant `integration` (and only those)."""
    return sorted(
        model_host(settings, m)
        for m in settings.models
        if any(grant.name == integration for grant in m.integrations)
    )


def integration_allow(
    settings: Settings, integration: IntegrationSettings
) -> dict[str, Any] | None:
    """ALLOW one integration's tokens to the hosts of the models that granted it.

    None when no model grants it: an ALLOW with an empty `hosts` list would match EVERY host."""
    hosts = integration_hosts(settings, integration.name)
    if not hosts:
        return None
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata(
            f"aimesh-gateway-allow-{integration.name}",
            INGRESS_NAMESPACE,
            {**_LABELS, "aimesh.io/integration": integration.name},
        ),
        "spec": {
            "selector": {"matchLabels": dict(GATEWAY_SELECTOR)},
            "action": "ALLOW",
            "rules": [
                {
                    "from": [{"source": {"requestPrincipals": request_principals(integration)}}],
                    "to": [{"operation": {"hosts": _host_patterns(hosts)}}],
                    # The audience tells apart integrations that share an issuer.
                    "when": [
                        {"key": "request.auth.claims[aud]", "values": list(integration.audiences)}
                    ],
                }
            ],
        },
    }


def acme_challenge_allow(settings: Settings) -> dict[str, Any] | None:
    """ALLOW the ACME HTTP-01 challenge (GET of the token path, HTTP port, certificate hosts).

    Only with `issuerType: acme` and hosts to certify; everything else stays denied."""
    hosts = certificate_hosts(settings)
    if settings.issuer_type != "acme" or not hosts:
        return None
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata("aimesh-gateway-allow-acme", INGRESS_NAMESPACE, _LABELS),
        "spec": {
            "selector": {"matchLabels": dict(GATEWAY_SELECTOR)},
            "action": "ALLOW",
            "rules": [
                {
                    "to": [
                        {
                            "operation": {
                                "hosts": _host_patterns(hosts),
                                "ports": [str(HTTP_PORT)],
                                "methods": ["GET"],
                                "paths": [ACME_CHALLENGE_PATH],
                            }
                        }
                    ]
                }
            ],
        },
    }


def policies(settings: Settings) -> dict[str, dict[str, Any]]:
    """Authentication and authorization at the gateway, keyed by resource-name suffix."""
    out: dict[str, dict[str, Any]] = {"require-jwt": require_token(settings)}
    jwt = request_authentication(settings)
    if jwt is not None:
        out["jwt"] = jwt
    acme = acme_challenge_allow(settings)
    if acme is not None:
        out["allow-acme"] = acme
    for integration in settings.integrations:
        allow = integration_allow(settings, integration)
        if allow is not None:
            out[f"allow-{integration.name}"] = allow
    return out
