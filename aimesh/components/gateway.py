"""Gateway: the only way into the mesh from outside.

A cert-manager Certificate for the gateway's TLS secret, the Istio Gateway (HTTPS with a TLS 1.2+
minimum, HTTP redirecting), JWT authentication of external integrations and the authorization
that requires a token and limits each integration to the models that granted it. The knowledge
lives in builders/gateway.py; this component registers it in a safe order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from aimesh.builders import gateway as build
from aimesh.builders.common import GatewayRef
from aimesh.components.manifests import child_options, register, upstream
from aimesh.settings import Settings


@dataclass(frozen=True)
class GatewayArgs:
    """The platform's settings (domain, TLS, integrations) and, optionally, the issuer of the
    gateway certificate: components/cert_manager.py's `issuer`; without it the issuer is
    derived from settings (`aimesh-ca`, or `existingIssuerName`/`existingIssuerKind`)."""

    settings: Settings
    issuer: Mapping[str, str] | None = None


class Gateway(pulumi.ComponentResource):
    """TLS certificate, Gateway, JWT authn + the policy requiring a token.

    Order: the authentication/authorization policies are created first and the Gateway depends
    on them, so the gateway never routes a request before the token requirement exists.
    `opts.depends_on` (cert-manager and Istio) is handed on to every object."""

    def __init__(
        self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aimesh:gateway:Gateway", name, None, opts)
        settings = args.settings
        waits = upstream(opts)
        self.reference: GatewayRef = build.reference(settings)

        self.policies: dict[str, pulumi.Resource] = {
            suffix: register(f"{name}-{suffix}", manifest, child_options(self, waits))
            for suffix, manifest in build.policies(settings).items()
        }
        cert = build.certificate(settings, args.issuer)
        self.certificate: pulumi.Resource | None = (
            register(f"{name}-certificate", cert, child_options(self, waits)) if cert else None
        )
        self.gateway = register(
            f"{name}-gateway",
            build.gateway(settings),
            child_options(self, waits, list(self.policies.values())),
        )

        certificate = [self.certificate] if self.certificate else []
        self.ready: list[pulumi.Resource] = [*self.policies.values(), *certificate, self.gateway]
        self.register_outputs(
            {
                "gateway": self.reference.qualified,
                "domain": self.reference.domain,
                "tlsSecret": build.TLS_SECRET_NAME,
                "integrations": {
                    i.name: build.integration_hosts(settings, i.name) for i in settings.integrations
                },
            }
        )
