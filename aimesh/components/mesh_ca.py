"""MeshCA: cert-manager's istio-csr as the mesh's certificate authority (meshCa cert-manager).

Registered inside the Istio component, after the istio-system namespace and before istiod: the
issuer chain, the static trust bundle, istio-csr itself and istiod's serving certificate must all
be ready before istiod starts (istiod reads that certificate once, at startup, and agents ask
istio-csr for their certificates as soon as istiod injects them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from aimesh import versions
from aimesh.builders import mesh_ca as builders
from aimesh.components.charts import ChartSpec, install
from aimesh.components.manifests import child_options, register, upstream
from aimesh.namespaces import CERT_MANAGER_NAMESPACE
from aimesh.settings import Settings

TYPE = "aimesh:meshCa:MeshCA"


def chart_spec(settings: Settings) -> ChartSpec:
    """istio-csr is a v4 Chart (no hooks, nothing rewritten at runtime): Pulumi awaits its
    Deployment, which is Ready only once the mesh issuer has signed istio-csr's own serving
    certificate, and CrossGuard sees every object it renders."""
    return ChartSpec(
        release=builders.RELEASE,
        chart=builders.CHART,
        version=versions.ISTIO_CSR,
        repo=builders.REPO,
        namespace=CERT_MANAGER_NAMESPACE,
        values=builders.chart_values(settings),
    )


@dataclass(frozen=True)
class MeshCAArgs:
    """The platform's settings: meshCa cert-manager, its issuer (meshCaIssuer and its keys), the
    trust bundle (meshTrustRoots), the workload certificate lifetime and the trust domain."""

    settings: Settings


class MeshCA(pulumi.ComponentResource):
    """The mesh issuer chain, trust bundle, istio-csr and istiod's certificate; `ready` is what
    istiod must wait for. `opts.depends_on` (cert-manager, the istio-system namespace) is handed
    on to every child."""

    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: MeshCAArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        settings = args.settings
        waits = upstream(opts)

        def child(*after: Sequence[pulumi.Resource]) -> pulumi.ResourceOptions:
            return child_options(self, waits, *after)

        # Each issuer object waits for the one before it (the CA Issuer needs the root's Secret).
        chain: list[pulumi.Resource] = []
        keypair = builders.keypair_secret(settings)
        if keypair is not None:
            meta = keypair["metadata"]
            chain.append(
                k8s.core.v1.Secret(
                    f"{name}-mesh-ca-keypair",
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=meta["name"], namespace=meta["namespace"], labels=meta["labels"]
                    ),
                    type=keypair["type"],
                    # The key is a Pulumi secret: encrypted in the state, masked in previews.
                    string_data={
                        key: pulumi.Output.secret(value)
                        for key, value in keypair["stringData"].items()
                    },
                    opts=child(),
                )
            )
        for manifest in builders.issuer_chain(settings):
            chain.append(register(f"{name}-{manifest['metadata']['name']}", manifest, child(chain)))
        bundle: list[pulumi.Resource] = []
        config_map = builders.trust_bundle_config_map(settings)
        if config_map is not None:
            bundle.append(register(f"{name}-mesh-trust-bundle", config_map, child()))
        csr = install(
            f"{name}-istio-csr",
            chart_spec(settings),
            settings=settings,
            opts=child(chain, bundle),
        )
        istiod_cert = builders.istiod_certificate(settings)
        assert istiod_cert is not None  # MeshCA is only created with meshCa cert-manager
        certificate = register(f"{name}-istiod-certificate", istiod_cert, child(chain))
        self.ready = [*chain, *bundle, csr, certificate]
        self.register_outputs({})
