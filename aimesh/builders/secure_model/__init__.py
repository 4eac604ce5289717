"""One model, served and locked down: every Kubernetes object of a SecureModel (pure builders).

What a model gets, one module each:

- `serving`: its own namespace, sidecar-injected, so that every byte to and from it is mTLS
  (STRICT is mesh-wide, components/mesh_security.py) and every request is checked by its
  sidecar; a dedicated service account with no API token; a KServe InferenceService in Standard
  (raw Deployment) mode with a hardened pod, a canary as a second predictor (`spec.canary`,
  KServe >= 0.20), and one weighted Istio VirtualService that routes both versions;
- `authorization`: built from builders/access.py rows: a namespace-wide deny-all, ALLOW rules
  that name exact principals, methods and paths, a DENY of operator paths for everyone but
  admins, and JWT validation again at the model for integrations (the gateway forwards the token);
  in audit mode the ALLOW rules run in dry-run behind one enforced ALLOW for mesh peers;
- `windows`: one closed-by-default policy per batch caller that CronJobs open and close;
- `rbac`: managers manage the InferenceServices, callers may only read them;
- `rate_limit`: Envoy local rate limits (per model, per caller);
- `masking`: response masking in non-production stacks;
- `egress`: a ServiceEntry for the storage host(s) and allowlist only;
- `network`: NetworkPolicies with default deny;
- the declared intent of all of the above (builders/intent.py), which the policy pack judges the
  stack's effective access against.

`meta` (API versions, labels, selector) and `sidecar` (where our HTTP filters go) are shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aimesh.builders import access, intent, mesh_ca
from aimesh.builders.common import GatewayRef, ModelPlatform, from_setting
from aimesh.builders.secure_model import (
    authorization,
    egress,
    masking,
    network,
    rate_limit,
    rbac,
    serving,
    windows,
)
from aimesh.builders.secure_model.meta import model_labels, workload_selector
from aimesh.settings import ModelSettings


@dataclass
class ModelObjects:
    """Every manifest of one model, grouped by the order they must be applied in.

    `namespace` first; `identity` (service accounts) and `guards` (authorization, network
    policies, filters, egress) next; `deny_all` once the ALLOW rules exist; `windows` are the
    batch policies the CronJobs own after creation; `workload` (InferenceService, VirtualService)
    last, so no model pod ever runs unguarded."""

    namespace: dict[str, Any]
    # The declared intent (builders/intent.py): what the policy pack judges the rest against.
    intent: dict[str, Any] = field(default_factory=dict)
    identity: list[dict[str, Any]] = field(default_factory=list)
    allow: list[dict[str, Any]] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    deny_all: dict[str, Any] = field(default_factory=dict)
    guards: list[dict[str, Any]] = field(default_factory=list)
    workload: list[dict[str, Any]] = field(default_factory=list)
    rows: list[access.AccessRow] = field(default_factory=list)
    # What audit mode lets in besides the rows (None when enforced): one more matrix row.
    audit_row: dict[str, Any] | None = None

    def matrix(self) -> list[dict[str, Any]]:
        """The model's access matrix rows (JSON-able): every grant, plus audit mode's."""
        return [r.to_dict() for r in self.rows] + ([self.audit_row] if self.audit_row else [])

    def all(self) -> list[dict[str, Any]]:
        return [
            self.namespace,
            self.intent,
            *self.identity,
            *self.allow,
            *self.windows,
            self.deny_all,
            *self.guards,
            *self.workload,
        ]


def build(
    platform: ModelPlatform, model: ModelSettings, gateway: GatewayRef, setting: str = ""
) -> ModelObjects:
    """Every object of one model, from the same access rows as the access matrix. `setting`
    is where the stack declares the model (`aimesh:models[1]`); every object is annotated with
    it, so a policy violation names the setting to change (common.from_setting)."""
    rows = access.rows(platform, model, gateway)
    objects = ModelObjects(
        namespace=serving.namespace(model),
        rows=rows,
        audit_row=access.audit_matrix_row(platform, model),
    )
    objects.identity.append(serving.service_account(model))
    for allow in (
        authorization.allow_policy(model, rows),
        authorization.audit_allow(platform, model),
    ):
        if allow is not None:
            objects.allow.append(allow)
    objects.allow.append(authorization.deny_admin(model, rows))
    jwt = authorization.request_authentication(platform, model)
    if jwt is not None:
        objects.allow.append(jwt)
    for row in rows:
        if row.batch:
            objects.windows.append(windows.window_policy(model, row))
            objects.guards.extend(windows.window_controller(model, row))
    objects.deny_all = authorization.deny_all(model)
    objects.guards.extend(rbac.rbac(model))
    dns = network.Dns(
        platform.dns_namespace, tuple(platform.dns_pod_labels), tuple(platform.dns_egress_cidrs)
    )
    objects.guards.extend(
        network.network_policies(
            model,
            rows,
            platform.observability,
            mesh_ca.workload_egress_rule(platform.mesh_ca),
            dns,
        )
    )
    for optional in (
        egress.service_entry(model),
        rate_limit.rate_limit_filter(model, rows),
        masking.masking_filter(platform, model),
    ):
        if optional is not None:
            objects.guards.append(optional)
    objects.workload.append(serving.inference_service(model))
    objects.workload.append(serving.virtual_service(platform, model, gateway))
    generated = [m for m in objects.all() if m and m is not objects.namespace]
    objects.intent = intent.model_intent(
        platform, model, gateway, rows, generated, workload_selector(model), model_labels(model)
    )
    for manifest in objects.all():
        from_setting(manifest, setting)
    return objects
