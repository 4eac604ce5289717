"""Another team's Pulumi program: its own model, served with aimesh's `SecureModel`.

The platform team runs aimesh (mesh-wide mTLS and deny-all, the ingress gateway, KServe). This
program adds one model to that platform with the same guards the platform's own models get:
its namespace, identity, InferenceService, deny-all and exact ALLOW rules, NetworkPolicies,
egress ServiceEntry, rate limit, RBAC. See README "Use aimesh's components in your own program".
"""

import pulumi
import pulumi_kubernetes as k8s

from aimesh.builders.gateway import reference
from aimesh.components import SecureModel, SecureModelArgs
from aimesh.settings import parse

config = pulumi.Config("reuse-secure-model")

# Only the keys this program cares about; everything else keeps aimesh's defaults. `parse`
# validates them by the platform's own rules (a wrong key or value fails here with its path,
# e.g. `aimesh:models[0].callers[0].role`, before anything is registered).
platform = parse(
    {
        "environment": config.get("environment") or "dev",
        "trustDomain": config.get("trustDomain") or "cluster.local",
        "gatewayDomain": config.get("gatewayDomain") or "models.example.com",
        "models": [
            {
                "name": "ranker",
                "namespace": "search-ranker",
                "format": "sklearn",
                "storageUri": "gs://search-team-models/ranker/v3",
                "callers": [{"namespace": "search", "serviceAccount": "frontend"}],
                "rateLimit": {"requests": 50, "unit": "second"},
            }
        ],
    }
)

# The team's own caller. Whatever the model must come after goes in `opts.depends_on`: the
# component hands it on to every object it creates.
search = k8s.core.v1.Namespace(
    "search", metadata={"name": "search", "labels": {"istio-injection": "enabled"}}
)
frontend = k8s.core.v1.ServiceAccount(
    "frontend",
    metadata={"name": "frontend", "namespace": "search"},
    opts=pulumi.ResourceOptions(depends_on=[search]),
)

ranker = SecureModel(
    "ranker",
    SecureModelArgs(model=platform.models[0], gateway=reference(platform), platform=platform),
    opts=pulumi.ResourceOptions(depends_on=[frontend]),
)

pulumi.export("endpoint", ranker.endpoint)
pulumi.export("accessMatrix", ranker.access_rows)
