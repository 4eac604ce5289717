"""KServe: CRDs, the controller in Standard (raw Deployment) mode, and the serving runtimes."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from aimesh import versions
from aimesh.builders import bring_your_own
from aimesh.builders import kserve as builders
from aimesh.builders.cluster import namespace
from aimesh.components.charts import ChartSpec, existing_crds, install
from aimesh.components.manifests import child_options, upstream
from aimesh.namespaces import KSERVE_NAMESPACE
from aimesh.settings import Settings


def chart_specs(settings: Settings) -> dict[str, ChartSpec]:
    """kserve-crd, kserve-resources and (if enabled) kserve-runtime-configs, all v4 Charts:
    no hooks, and the only runtime rewrite (cert-manager's cainjector filling the webhooks'
    caBundle) touches a field the chart never sets, so server-side apply never fights it."""
    oci = versions.KSERVE_OCI
    specs = {
        "crd": ChartSpec(
            release="kserve-crd",
            chart=f"{oci}/kserve-crd",
            version=versions.KSERVE,
            namespace=KSERVE_NAMESPACE,
        ),
        "resources": ChartSpec(
            release="kserve",
            chart=f"{oci}/kserve-resources",
            version=versions.KSERVE,
            namespace=KSERVE_NAMESPACE,
            values=builders.resources_values(settings),
            # The CRDs belong to kserve-crd; never two owners of one CRD.
            skip_crds=True,
        ),
    }
    if settings.kserve_runtimes:
        specs["runtimes"] = ChartSpec(
            release="kserve-runtime-configs",
            chart=f"{oci}/kserve-runtime-configs",
            version=versions.KSERVE,
            namespace=KSERVE_NAMESPACE,
            values=builders.runtime_values(settings),
        )
    return specs


@dataclass(frozen=True)
class KServeArgs:
    """The platform's settings: runtimes on/off, controller replicas, cluster mode."""

    settings: Settings


class KServe(pulumi.ComponentResource):
    """KServe in Standard mode; it creates no ingress (models are routed through Istio).

    `opts.depends_on` (cert-manager and Istio) is handed on to every child."""

    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: KServeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aimesh:kserve:KServe", name, None, opts)
        settings = args.settings
        render = settings.cluster_mode == "render"
        waits = upstream(opts)
        specs = chart_specs(settings)

        def child(*after: pulumi.Resource) -> pulumi.ResourceOptions:
            return child_options(self, waits, after)

        brought = bring_your_own.crds(settings, "kserve")
        if brought:
            # The cluster runs KServe already (controller, runtimes): its CRDs must exist; the
            # InferenceServices and every policy around them are still aimesh's.
            self.ready = existing_crds(
                f"{name}-kserve-crd", brought, settings=settings, opts=child()
            )
            self.register_outputs({})
            return
        ns = k8s.core.v1.Namespace(
            f"{name}-kserve-ns",
            metadata=namespace(KSERVE_NAMESPACE, injected=False)["metadata"],
            opts=child(),
        )
        crds = install(f"{name}-kserve-crd", specs["crd"], settings=settings, opts=child(ns))
        # The controller chart carries cert-manager objects (its webhook certificate), so it
        # waits for cert-manager (in `depends_on`) and for the CRDs its webhooks validate.
        controller = install(
            f"{name}-kserve", specs["resources"], settings=settings, opts=child(ns, crds)
        )
        self.ready = [crds, controller]
        if "runtimes" in specs:
            # ClusterServingRuntimes are validated by the controller's webhook.
            self.ready.append(
                install(
                    f"{name}-kserve-runtimes",
                    specs["runtimes"],
                    settings=settings,
                    opts=child(crds, controller),
                )
            )
        patch = builders.controller_replicas_patch(settings)
        if patch is not None and not render:
            # A patch of an object the chart creates: it exists only once the chart is done.
            self.ready.append(
                k8s.apps.v1.DeploymentPatch(
                    f"{name}-kserve-controller-replicas",
                    metadata=patch["metadata"],
                    spec=patch["spec"],
                    opts=child(controller),
                )
            )
        self.register_outputs({})
