"""Istio: charts base -> istiod -> ingress gateway, with the hardened mesh config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from aimesh import versions
from aimesh.builders import bring_your_own
from aimesh.builders import istio as builders
from aimesh.builders.cluster import namespace, static_gateway_address
from aimesh.components.charts import ChartSpec, existing_crds, install
from aimesh.components.manifests import child_options, upstream
from aimesh.components.mesh_ca import MeshCA, MeshCAArgs
from aimesh.namespaces import INGRESS_NAMESPACE, ISTIO_NAMESPACE
from aimesh.settings import Settings


def chart_specs(settings: Settings) -> dict[str, ChartSpec]:
    """The four Istio charts. base and istiod are v3 Releases: istiod rewrites their
    validating webhooks at runtime (failurePolicy Ignore -> Fail, caBundle), which Helm's
    upgrade tolerates and a v4-managed object would fight. The CNI node agent and the gateway
    are v4 Charts: plain DaemonSet/Deployment/Service/RBAC that CrossGuard should see."""
    return {
        "base": ChartSpec(
            release="istio-base",
            chart="base",
            namespace=ISTIO_NAMESPACE,
            values=builders.base_values(settings),
            mutated_at_runtime=True,
            version=versions.ISTIO,
            repo=versions.ISTIO_REPO,
        ),
        "cni": ChartSpec(
            release=builders.CNI_RELEASE,
            chart="cni",
            namespace=builders.CNI_NAMESPACE,
            values=builders.cni_values(settings),
            version=versions.ISTIO,
            repo=versions.ISTIO_REPO,
        ),
        "istiod": ChartSpec(
            release="istiod",
            chart="istiod",
            namespace=ISTIO_NAMESPACE,
            values=builders.istiod_values(settings),
            mutated_at_runtime=True,
            version=versions.ISTIO,
            repo=versions.ISTIO_REPO,
        ),
        "gateway": ChartSpec(
            release=builders.GATEWAY_NAME,
            chart="gateway",
            namespace=INGRESS_NAMESPACE,
            values=builders.gateway_values(settings),
            version=versions.ISTIO,
            repo=versions.ISTIO_REPO,
        ),
    }


@dataclass(frozen=True)
class IstioArgs:
    """The platform's settings: mesh config (trust domain, egress mode, telemetry), replicas,
    the gateway's service type and ports."""

    settings: Settings


class Istio(pulumi.ComponentResource):
    """Istio's CRDs and control plane, and the `istio-ingress/aimesh-ingressgateway` gateway.

    `opts.depends_on` (cert-manager, whose webhook the charts' objects may need) is handed on to
    every child."""

    ready: list[pulumi.Resource]
    gateway_address: pulumi.Output[str]
    base: pulumi.Resource
    cni: pulumi.Resource
    istiod: pulumi.Resource
    gateway: pulumi.Resource

    def __init__(
        self, name: str, args: IstioArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aimesh:istio:Istio", name, None, opts)
        settings = args.settings
        waits = upstream(opts)
        specs = chart_specs(settings)

        def child(*after: pulumi.Resource) -> pulumi.ResourceOptions:
            return child_options(self, waits, after)

        crds = bring_your_own.crds(settings, "istio")
        if crds:
            # The cluster runs Istio already (base, istiod and the ingress gateway, with their
            # namespaces): its CRDs must exist; every mesh security object is still aimesh's.
            self.ready = existing_crds(f"{name}-istio-crd", crds, settings=settings, opts=child())
            self.gateway_address = pulumi.Output.from_input(static_gateway_address(settings) or "")
            self.register_outputs({"gateway_address": self.gateway_address})
            return
        system_ns = k8s.core.v1.Namespace(
            f"{name}-istio-system-ns",
            metadata=namespace(ISTIO_NAMESPACE, injected=False)["metadata"],
            opts=child(),
        )
        ingress_ns = k8s.core.v1.Namespace(
            f"{name}-istio-ingress-ns",
            metadata=namespace(INGRESS_NAMESPACE, injected=True)["metadata"],
            opts=child(),
        )
        self.base = install(
            f"{name}-istio-base", specs["base"], settings=settings, opts=child(system_ns)
        )
        # With cert-manager as the mesh CA, istio-csr and istiod's certificate come first.
        ca: list[pulumi.Resource] = []
        if settings.mesh_ca == "cert-manager":
            ca = MeshCA(name, MeshCAArgs(settings), opts=child(system_ns)).ready
        # The CNI node agent must redirect traffic before the first injected pod starts: with
        # it, injected pods carry no privileged istio-init and meet Pod Security `restricted`.
        self.cni = install(
            f"{name}-istio-cni", specs["cni"], settings=settings, opts=child(self.base)
        )
        # istiod serves the validating webhook of every Istio CR and injects sidecars.
        self.istiod = install(
            f"{name}-istiod",
            specs["istiod"],
            settings=settings,
            opts=child(self.base, self.cni, *ca),
        )
        # The gateway's pods are injected by istiod, so it waits for a ready istiod.
        self.gateway = install(
            f"{name}-ingressgateway",
            specs["gateway"],
            settings=settings,
            opts=child(ingress_ns, self.istiod),
        )
        self.ready = [self.base, self.cni, self.istiod, self.gateway]

        static = static_gateway_address(settings)
        if static is not None or not isinstance(self.gateway, k8s.helm.v4.Chart):
            self.gateway_address = pulumi.Output.from_input(static or "")
        else:
            self.gateway_address = self.gateway.resources.apply(_load_balancer_address)
        self.register_outputs({"gateway_address": self.gateway_address})


def _load_balancer_address(resources: Sequence[Any] | None) -> pulumi.Output[str]:
    """The external IP/hostname of the gateway Service among the chart's objects. Pulumi
    waits for a LoadBalancer Service to get one before the chart counts as ready."""
    services = [r for r in resources or [] if isinstance(r, k8s.core.v1.Service)]
    return pulumi.Output.all(*[pulumi.Output.all(s.metadata, s.status) for s in services]).apply(
        _pick_address
    )


def _pick_address(pairs: Sequence[Sequence[Any]]) -> str:
    for meta, status in pairs:
        if getattr(meta, "name", None) != builders.GATEWAY_NAME:
            continue
        balancer = getattr(status, "load_balancer", None)
        for ingress in getattr(balancer, "ingress", None) or []:
            address = getattr(ingress, "ip", None) or getattr(ingress, "hostname", None)
            if address:
                return str(address)
    return (
        f"pending: kubectl -n {INGRESS_NAMESPACE} get service {builders.GATEWAY_NAME} "
        "(no LoadBalancer address yet)"
    )
