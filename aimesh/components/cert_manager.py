"""CertManager: the cert-manager chart (with its CRDs) and the issuer of gateway certificates."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from aimesh import versions
from aimesh.builders import bring_your_own
from aimesh.builders import cert_manager as builders
from aimesh.builders.cluster import namespace
from aimesh.components.charts import ChartSpec, existing_crds, install
from aimesh.components.manifests import aliased, child_options, register, upstream
from aimesh.namespaces import CERT_MANAGER_NAMESPACE
from aimesh.settings import Settings

TYPE = "aimesh:certManager:CertManager"
# Earlier type tokens (snake_case module): aliased, so existing stacks keep their resources.
OLD_TYPES = ("aimesh:cert_manager:CertManager",)


def chart_spec(settings: Settings) -> ChartSpec:
    """cert-manager is a v3 Release: its post-install hook (startupapicheck) is what proves the
    webhook serves with an injected CA bundle before anything creates an issuer."""
    return ChartSpec(
        release="cert-manager",
        chart="cert-manager",
        version=versions.CERT_MANAGER,
        repo=versions.CERT_MANAGER_REPO,
        namespace=CERT_MANAGER_NAMESPACE,
        values=builders.chart_values(settings),
        hooks=True,
    )


@dataclass(frozen=True)
class CertManagerArgs:
    """The platform's settings: the issuer chain (`issuerType` and its keys) and chart values."""

    settings: Settings


class CertManager(pulumi.ComponentResource):
    """cert-manager and the issuer chain; `issuer` names the issuer of gateway certificates."""

    ready: list[pulumi.Resource]
    issuer: dict[str, str]

    def __init__(
        self, name: str, args: CertManagerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, aliased(opts, *OLD_TYPES))
        settings = args.settings
        waits = upstream(opts)
        crds = bring_your_own.crds(settings, "certManager")
        if crds:
            # The cluster runs cert-manager already: its CRDs must exist; the issuers below
            # are still aimesh's.
            installed = existing_crds(
                f"{name}-cert-manager-crd", crds, settings=settings, opts=child_options(self, waits)
            )
        else:
            ns = k8s.core.v1.Namespace(
                f"{name}-cert-manager-ns",
                metadata=namespace(CERT_MANAGER_NAMESPACE, injected=False)["metadata"],
                opts=child_options(self, waits),
            )
            installed = [
                install(
                    f"{name}-cert-manager",
                    chart_spec(settings),
                    settings=settings,
                    opts=child_options(self, waits, [ns]),
                )
            ]
        # Each issuer object waits for the chart (CRDs + a webhook that answers) and for the
        # one before it (the CA issuer needs the root certificate's secret).
        issued: list[pulumi.Resource] = []
        for manifest in builders.issuer_chain(settings):
            meta = manifest["metadata"]
            issued.append(
                register(
                    f"{name}-{meta['name']}",
                    manifest,
                    child_options(self, waits, installed, issued),
                )
            )
        self.issuer = builders.issuer_ref(settings)
        self.ready = [*installed, *issued]
        self.register_outputs({"issuer": self.issuer})
