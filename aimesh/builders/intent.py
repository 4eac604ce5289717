"""Declared intent: what the stack's configuration grants, published in the stack (pure).

The policy pack never imports the program (it judges any stack), so the program publishes its
intent as data the pack reads: one ConfigMap `aimesh-intent` (label `aimesh.io/intent`) per
model namespace, and one with `scope: mesh` in Istio's root namespace. The pack computes what
the stack's objects actually allow (AuthorizationPolicies, NetworkPolicies, entry paths, RBAC,
telemetry) and reports anything beyond this intent (policy-pack/aimesh_policies/effective/).

Every field is derived from what the program generates, in the same call:

- `grants`: the access rows (builders/access.py) the ALLOW policies are built from;
- `adminPaths`: the operator paths the generated DENY covers;
- `issuers`: the jwtRules of the model's own RequestAuthentication (issuer, JWKS, headers);
- `entries`: the ingress-gateway host of the model's VirtualService;
- `networkPolicies`, `rbac`: the generated NetworkPolicies, and each generated RoleBinding with
  its Role's rules inlined;
- `audit`: present only while the model is in audit mode (`models[].authorization`): its reason
  and last day. The pack then accepts what the enforced `<model>-audit-mesh-peers` ALLOW lets
  through (authenticated peers of the trust domain), and only while both say the audit is on;
- mesh scope: the access-log and metrics providers of the mesh Telemetry and their
  definitions, the proxy statistics the denial alert reads, every active alert of the
  PrometheusRule, and the collector's audit (logs) pipelines.

So intent and enforcement cannot drift apart: a change to who may call a model is a change to
the stack config, visible in review as a change to this data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from aimesh.builders import access, alerts, audit_agent, collector, telemetry
from aimesh.builders.common import GatewayRef, ModelPlatform, metadata
from aimesh.builders.gateway import server_hosts
from aimesh.namespaces import ISTIO_NAMESPACE, OBSERVABILITY_NAMESPACE
from aimesh.settings import ModelSettings, Settings

NAME: Final = "aimesh-intent"
LABEL: Final = "aimesh.io/intent"
KEY: Final = "intent.json"
VERSION: Final = 1


def _config_map(namespace: str, body: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(NAME, namespace, {**labels, LABEL: f"v{VERSION}"}),
        # Sorted, compact JSON: the same config always renders the same text (quiet previews).
        "data": {KEY: json.dumps(body, sort_keys=True, separators=(",", ":"))},
    }


def grant(row: access.AccessRow) -> dict[str, Any]:
    """One access row as intent."""
    return {
        "caller": row.caller,
        "kind": row.kind,
        "role": row.role,
        "principal": row.principal,
        "requestPrincipals": list(row.request_principals),
        "audiences": list(row.audiences),
        "operations": [
            {"methods": list(op.methods), "paths": list(op.paths)} for op in row.operations
        ],
        # A batch grant's policy is created closed; its CronJobs open it inside the window.
        "window": row.batch,
        "policy": row.policy,
    }


def _of_kind(manifests: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m.get("kind") == kind]


def model_intent(
    platform: ModelPlatform,
    model: ModelSettings,
    gateway: GatewayRef,
    rows: Sequence[access.AccessRow],
    generated: Sequence[dict[str, Any]],
    selector: dict[str, str],
    labels: dict[str, str],
) -> dict[str, Any]:
    """The intent ConfigMap of one model, from its access rows and the objects generated for it
    (`generated`: every other manifest of the model; `selector`: its pods' selector)."""
    issuers = [
        {
            "issuer": rule["issuer"],
            "jwksUri": rule["jwksUri"],
            "fromHeaders": rule.get("fromHeaders", []),
        }
        for ra in _of_kind(generated, "RequestAuthentication")
        for rule in ra["spec"]["jwtRules"]
    ]
    roles = {m["metadata"]["name"]: m for m in _of_kind(generated, "Role")}
    rbac = [
        {"subjects": b["subjects"], "rules": roles[b["roleRef"]["name"]]["rules"]}
        for b in _of_kind(generated, "RoleBinding")
        if b["roleRef"]["kind"] == "Role" and b["roleRef"]["name"] in roles
    ]
    # The gateway serves the model's public host; the in-mesh host bound alongside it is not
    # one of the gateway's server hosts. `serves` is what the gateway's servers accept as the
    # program configures them (builders/gateway.py): the pack falls back on it when the Gateway
    # belongs to another stack (a team reusing SecureModel on the platform's gateway).
    entries = [
        {
            "gateway": g,
            "hosts": [h for h in vs["spec"]["hosts"] if h.endswith(f".{gateway.domain}")],
            "serves": server_hosts(gateway.domain),
        }
        for vs in _of_kind(generated, "VirtualService")
        for g in vs["spec"].get("gateways", [])
        if g != "mesh"
    ]
    body = {
        "version": VERSION,
        "model": model.name,
        "namespace": model.ns,
        "trustDomain": platform.trust_domain,
        "selector": dict(selector),
        "ports": [access.MODEL_PORT],
        "grants": [grant(r) for r in rows],
        "adminPaths": access.admin_paths(model),
        "issuers": issuers,
        "entries": entries,
        "networkPolicies": [
            {"name": n["metadata"]["name"], "spec": n["spec"]}
            for n in _of_kind(generated, "NetworkPolicy")
        ],
        "rbac": rbac,
    }
    mode = model.authorization
    if mode.audit and mode.reason is not None and mode.until is not None:
        body["audit"] = {"reason": mode.reason, "until": mode.until.isoformat()}
    return _config_map(model.ns, body, labels)


def _logs_pipelines(pipelines: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"processors": p["processors"], "exporters": p["exporters"]}
        for name, p in pipelines.items()
        if name == "logs" or name.startswith("logs/")
    }


def mesh_intent(settings: Settings) -> dict[str, Any]:
    """The mesh-wide intent: the telemetry the audit trail and the alerts depend on."""
    mesh = telemetry.mesh_telemetry(settings)["spec"]
    log_providers = [p["name"] for e in mesh["accessLogging"] for p in e["providers"]]
    metric_providers = [p["name"] for e in mesh["metrics"] for p in e["providers"]]
    wanted = set(log_providers) | set(metric_providers)
    config = telemetry.mesh_config(settings)
    pipelines = collector.collector_config(settings)["service"]["pipelines"]
    rule = alerts.prometheus_rule(settings)
    body = {
        "version": VERSION,
        "scope": "mesh",
        "accessLogProviders": log_providers,
        "metricsProviders": metric_providers,
        "proxyStatsInclusionRegexps": list(telemetry.PROXY_STATS_INCLUSION_REGEXPS),
        "extensionProviders": [p for p in config["extensionProviders"] if p["name"] in wanted],
        "alerts": [
            {
                "rule": f"{OBSERVABILITY_NAMESPACE}/{rule['metadata']['name']}",
                "alert": item["alert"],
                "expr": item["expr"],
                "for": item["for"],
            }
            for group in rule["spec"]["groups"]
            for item in group["rules"]
            if "alert" in item
        ],
        "collector": {
            "logsPipelines": _logs_pipelines(pipelines),
            # The node agents that read the proxies' log files (builders/audit_agent.py) are a
            # collector chart of their own, with their own audit pipeline: declared by release.
            "agents": {
                f"{OBSERVABILITY_NAMESPACE}/{audit_agent.AGENT_NAME}": {
                    "logsPipelines": _logs_pipelines(
                        audit_agent.agent_config(settings)["service"]["pipelines"]
                    )
                }
            },
        },
    }
    return _config_map(ISTIO_NAMESPACE, body, {"app.kubernetes.io/part-of": "aimesh"})
