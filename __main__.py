"""aimesh: wiring only. Settings -> components -> stack outputs.

The knowledge lives in builders/ (pure functions); components/ register what builders return.
Order: Cluster -> CertManager -> Istio -> KServe / MeshSecurity / Gateway / Observability ->
one SecureModel per model. Every step names what it waits for, so one `pulumi up` converges.
"""

import pulumi

from aimesh import settings
from aimesh.components.cert_manager import CertManager
from aimesh.components.cluster import Cluster
from aimesh.components.gateway import Gateway
from aimesh.components.istio import Istio
from aimesh.components.kserve import KServe
from aimesh.components.mesh_security import MeshSecurity
from aimesh.components.observability import NamespaceTelemetry, Observability
from aimesh.components.secure_model import SecureModel, SecureModelArgs

config = settings.load()

cluster = Cluster("aimesh", config)
on_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})

cert_manager = CertManager("aimesh", config, opts=on_cluster)
istio = Istio("aimesh", config, depends_on=cert_manager.ready, opts=on_cluster)
kserve = KServe("aimesh", config, depends_on=[*cert_manager.ready, *istio.ready], opts=on_cluster)
mesh = MeshSecurity("aimesh", config, depends_on=istio.ready, opts=on_cluster)
gateway = Gateway(
    "aimesh",
    config,
    depends_on=[*cert_manager.ready, *istio.ready],
    issuer=cert_manager.issuer,
    opts=on_cluster,
)
if config.observability:
    Observability("aimesh", config, depends_on=istio.ready, opts=on_cluster)

models = [
    SecureModel(
        model.name,
        SecureModelArgs(model=model, settings=config, gateway=gateway.reference),
        opts=pulumi.ResourceOptions(
            providers={"kubernetes": cluster.provider},
            depends_on=[*kserve.ready, *mesh.ready, *gateway.ready],
        ),
    )
    for model in config.models
]

# Per-namespace telemetry overrides tune namespaces the models create, so they come last.
if config.observability and config.telemetry_overrides:
    NamespaceTelemetry("aimesh", config, depends_on=models, opts=on_cluster)

pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("gatewayAddress", istio.gateway_address)
pulumi.export("modelEndpoints", {m.model_name: m.endpoint for m in models})
pulumi.export("accessMatrix", [row for m in models for row in m.access_rows])
