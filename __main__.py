"""aimesh: wiring only. Settings -> components -> stack outputs.

The knowledge lives in builders/ (pure functions); components/ register what builders return.
Order: Cluster -> Guardrails (admission policies, so everything after is admitted by them) ->
CertManager -> Istio -> KServe / MeshSecurity / Gateway / Observability -> one SecureModel per
model. Every step names what it waits for, so one `pulumi up` converges.
"""

from collections.abc import Sequence

import pulumi

from aimesh import cluster_version, settings
from aimesh.components import (
    CertManager,
    CertManagerArgs,
    Cluster,
    ClusterArgs,
    ExtraObjects,
    ExtraObjectsArgs,
    Gateway,
    GatewayArgs,
    Guardrails,
    GuardrailsArgs,
    Istio,
    IstioArgs,
    KServe,
    KServeArgs,
    MeshSecurity,
    MeshSecurityArgs,
    NamespaceTelemetry,
    NamespaceTelemetryArgs,
    Observability,
    ObservabilityArgs,
    SecureModel,
    SecureModelArgs,
)

config = settings.load()
# Refuses (before anything is registered) a Kubernetes without native sidecars.
cluster_version.check(config)

cluster = Cluster("aimesh", ClusterArgs(config))


def on_cluster(*after: Sequence[pulumi.Resource]) -> pulumi.ResourceOptions:
    """Through the cluster's provider, waiting for `after` (each component hands that on)."""
    return pulumi.ResourceOptions(
        providers={"kubernetes": cluster.provider},
        depends_on=[r for group in after for r in group],
    )


guardrails = Guardrails("aimesh", GuardrailsArgs(config), opts=on_cluster())
# Everything after waits (through cert-manager) for the guardrails: no pod is admitted unguarded.
cert_manager = CertManager("aimesh", CertManagerArgs(config), opts=on_cluster(guardrails.ready))
istio = Istio("aimesh", IstioArgs(config), opts=on_cluster(cert_manager.ready))
kserve = KServe("aimesh", KServeArgs(config), opts=on_cluster(cert_manager.ready, istio.ready))
mesh = MeshSecurity("aimesh", MeshSecurityArgs(config), opts=on_cluster(istio.ready))
gateway = Gateway(
    "aimesh",
    GatewayArgs(config, issuer=cert_manager.issuer),
    opts=on_cluster(cert_manager.ready, istio.ready),
)
if config.observability:
    Observability("aimesh", ObservabilityArgs(config), opts=on_cluster(istio.ready))

models = [
    SecureModel(
        model.name,
        SecureModelArgs(
            model=model,
            gateway=gateway.reference,
            platform=config,
            setting=f"aimesh:models[{index}]",
        ),
        opts=on_cluster(guardrails.ready, kserve.ready, mesh.ready, gateway.ready),
    )
    for index, model in enumerate(config.models)
]

# Per-namespace telemetry overrides tune namespaces the models create, so they come last.
if config.observability and config.telemetry_overrides:
    NamespaceTelemetry("aimesh", NamespaceTelemetryArgs(config), opts=on_cluster(models))

# The escape hatch (aimesh:extraObjects) comes after everything its objects could need.
if config.extra_objects:
    ExtraObjects(
        "aimesh",
        ExtraObjectsArgs(config),
        opts=on_cluster(kserve.ready, mesh.ready, gateway.ready, models),
    )

pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("gatewayAddress", istio.gateway_address)
pulumi.export("modelEndpoints", {m.model_name: m.endpoint for m in models})
pulumi.export("accessMatrix", [row for m in models for row in m.access_rows])
