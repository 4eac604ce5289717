"""aimesh's Pulumi components, for the stack's own program and for anyone else's.

Each takes `(name, XxxArgs(...), opts)`: a typed, frozen args object and standard
`pulumi.ResourceOptions`; what a component waits for is `opts.depends_on`, which it hands on to
every child (children do not inherit it). Type tokens are `aimesh:<module>:<Type>`.

    from aimesh.components import SecureModel, SecureModelArgs
"""

from aimesh.builders.common import GatewayRef, ModelPlatform
from aimesh.components.cert_manager import CertManager, CertManagerArgs
from aimesh.components.cluster import Cluster, ClusterArgs
from aimesh.components.extra_objects import ExtraObjects, ExtraObjectsArgs
from aimesh.components.gateway import Gateway, GatewayArgs
from aimesh.components.guardrails import Guardrails, GuardrailsArgs
from aimesh.components.istio import Istio, IstioArgs
from aimesh.components.kserve import KServe, KServeArgs
from aimesh.components.mesh_ca import MeshCA, MeshCAArgs
from aimesh.components.mesh_security import MeshSecurity, MeshSecurityArgs
from aimesh.components.observability import (
    NamespaceTelemetry,
    NamespaceTelemetryArgs,
    Observability,
    ObservabilityArgs,
)
from aimesh.components.secure_model import SecureModel, SecureModelArgs

__all__ = [
    "CertManager",
    "CertManagerArgs",
    "Cluster",
    "ClusterArgs",
    "ExtraObjects",
    "ExtraObjectsArgs",
    "Gateway",
    "GatewayArgs",
    "GatewayRef",
    "Guardrails",
    "GuardrailsArgs",
    "Istio",
    "IstioArgs",
    "KServe",
    "KServeArgs",
    "MeshCA",
    "MeshCAArgs",
    "MeshSecurity",
    "MeshSecurityArgs",
    "ModelPlatform",
    "NamespaceTelemetry",
    "NamespaceTelemetryArgs",
    "Observability",
    "ObservabilityArgs",
    "SecureModel",
    "SecureModelArgs",
]
