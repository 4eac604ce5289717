"""The access model: who may call which model, how (methods and paths) and when (pure).

One `AccessRow` per grant (an in-mesh caller or an external integration of one model). The
AuthorizationPolicies of builders/secure_model/ are BUILT FROM these rows, and the access
matrix (stack output `accessMatrix`, `python -m tools.access_matrix`) is the same rows printed,
so the report and the policies cannot disagree.

Roles are cumulative: `read` (health and metadata) < `invoke` (read + predict/infer) < `admin`
(invoke + model repository load/unload/index and the other operator endpoints). The paths are
those of the KServe v1 protocol and of the Open Inference (v2) protocol, with the model's own
name in them: a grant on model A never names a path of model B.

Istio matches `paths` exactly, by prefix (`/x/*`), by suffix (`*/x`), and (Istio >= 1.22) with
`{*}` standing for exactly one path segment. The mesh normalizes paths before authorization
with `DECODE_AND_MERGE_SLASHES` (builders/istio.py): `.`/`..` resolved, `%2F`/`%5C` decoded,
`//` merged, so `/v1/models/a/../b` or `//v2/repository/index` are judged as what they are.
Matching stays case-sensitive. Every grant below is also an exact path or a one-segment
template: a variant spelled in another case or with a trailing slash matches no ALLOW and is
denied, so the DENY of operator paths (`admin_paths`) is a second line, never the only one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from aimesh.builders.common import GatewayRef, ModelPlatform, principal
from aimesh.settings import AccessWindow, ModelSettings, RateLimit, Role

# The ports KServe's runtimes serve HTTP on, inside the pod (targetPort of the predictor Service,
# InferenceServiceDefaultHttpPort) and on the predictor Service (CommonDefaultHttpPort).
MODEL_PORT = 8080
SERVICE_PORT = 80

ROLES: tuple[Role, ...] = ("read", "invoke", "admin")


@dataclass(frozen=True)
class Operation:
    """One Istio `to.operation`: these methods on these paths."""

    methods: tuple[str, ...]
    paths: tuple[str, ...]

    def to_istio(self) -> dict[str, Any]:
        return {"operation": {"methods": list(self.methods), "paths": list(self.paths)}}


def read_paths(model: ModelSettings) -> list[str]:
    """Health and metadata endpoints of `model` (GET) for its protocol."""
    name = model.name
    if model.protocol == "v1":
        return ["/", "/v1/models", f"/v1/models/{name}"]
    return [
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{name}",
        f"/v2/models/{name}/ready",
        f"/v2/models/{name}/versions/{{*}}",
        f"/v2/models/{name}/versions/{{*}}/ready",
    ]


def invoke_paths(model: ModelSettings) -> list[str]:
    """Inference endpoints of `model` (POST) for its protocol."""
    name = model.name
    if model.protocol == "v1":
        return [f"/v1/models/{name}:predict"]
    return [f"/v2/models/{name}/infer", f"/v2/models/{name}/versions/{{*}}/infer"]


def admin_paths(model: ModelSettings) -> list[str]:
    """Operator endpoints: model repository (index/load/unload: swapping or listing models,
    i.e. tampering and theft), server logging/trace settings, shared-memory registration,
    statistics and the raw metrics endpoint. Denied to everyone but admins, on every protocol:
    KServe's and Triton's servers expose the v2 repository API whatever the model's protocol.

    Prefix (`/x*`) and suffix (`*/x`) forms, never exact paths: a DENY of an exact path misses
    `/x/` and `/x/sub`; these also cover every model version (`.../versions/3/stats`)."""
    del model  # the same endpoints for every model: they are server-wide
    return [
        "/v2/repository*",
        "/v2/logging*",
        "/v2/trace*",
        "/v2/systemsharedmemory*",
        "/v2/cudasharedmemory*",
        "/metrics*",
        "*/stats",
        "*/trace/setting",
    ]


def operations(model: ModelSettings, role: Role) -> list[Operation]:
    """What `role` may do on `model`: cumulative read < invoke < admin."""
    ops = [Operation(("GET",), tuple(read_paths(model)))]
    if role in ("invoke", "admin"):
        ops.append(Operation(("POST",), tuple(invoke_paths(model))))
    if role == "admin":
        ops.append(Operation(("GET", "POST"), tuple(admin_paths(model))))
    return ops


@dataclass(frozen=True)
class AccessRow:
    """One grant: `caller` may use `operations` on `model`, always or inside `windows`."""

    model: str
    namespace: str
    caller: str  # `<namespace>/<serviceAccount>` or `integration:<name>`
    kind: str  # "workload" (in-mesh, mTLS identity) | "integration" (JWT via the gateway)
    role: Role
    principal: str  # the mTLS source principal the policy names
    request_principals: tuple[str, ...]  # JWT `<iss>/<sub>`; empty for workloads
    audiences: tuple[str, ...]
    operations: tuple[Operation, ...]
    policy: str  # the AuthorizationPolicy that implements the grant
    windows: tuple[AccessWindow, ...] = ()
    rate_limit: RateLimit | None = None
    versions: tuple[str, ...] = ("stable",)
    issuer: str = ""  # integrations: the JWT issuer (rate-limit key)
    # "enforced", or "audit until <date>" while the model's ALLOW rules run in dry-run.
    enforcement: str = "enforced"

    @property
    def batch(self) -> bool:
        return bool(self.windows)

    def rule(self) -> dict[str, Any]:
        """The Istio AuthorizationPolicy rule granting exactly this row."""
        source: dict[str, Any] = {"principals": [self.principal]}
        if self.request_principals:
            source["requestPrincipals"] = list(self.request_principals)
        rule: dict[str, Any] = {
            "from": [{"source": source}],
            "to": [op.to_istio() for op in self.operations],
        }
        if self.audiences:
            # Tells apart integrations that share an issuer (as the gateway does).
            rule["when"] = [{"key": "request.auth.claims[aud]", "values": list(self.audiences)}]
        return rule

    def when(self) -> str:
        if not self.windows:
            return "always"
        return "; ".join(
            f"opens `{w.open}`, closes `{w.close}` ({w.time_zone})" for w in self.windows
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the `accessMatrix` stack output)."""
        return {
            "model": self.model,
            "namespace": self.namespace,
            "caller": self.caller,
            "kind": self.kind,
            "role": self.role,
            "principal": self.principal,
            "requestPrincipals": list(self.request_principals),
            "methods": sorted({m for op in self.operations for m in op.methods}),
            "paths": [p for op in self.operations for p in op.paths],
            "operations": [
                {"methods": list(op.methods), "paths": list(op.paths)} for op in self.operations
            ],
            "when": self.when(),
            "windows": [
                {"open": w.open, "close": w.close, "timeZone": w.time_zone} for w in self.windows
            ],
            "rateLimit": (
                f"{self.rate_limit.requests}/{self.rate_limit.unit}" if self.rate_limit else None
            ),
            "policy": self.policy,
            "versions": list(self.versions),
            "enforcement": self.enforcement,
        }


def short_name(base: str, suffix: str, limit: int = 63) -> str:
    """`<base>-<suffix>` cut to `limit` characters with a stable hash when too long."""
    name = f"{base}-{suffix}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def allow_policy_name(model: ModelSettings) -> str:
    return short_name(model.name, "allow")


def audit_policy_name(model: ModelSettings) -> str:
    """The enforced ALLOW for mesh peers that audit mode adds."""
    return short_name(model.name, "audit-mesh-peers")


def window_policy_name(model: ModelSettings, namespace: str, service_account: str) -> str:
    """The one named policy a batch caller's CronJobs open and close."""
    digest = hashlib.sha256(f"{namespace}/{service_account}".encode()).hexdigest()[:8]
    return short_name(model.name, f"window-{digest}", limit=40)


def request_principals(issuer: str, subjects: list[str]) -> list[str]:
    """`<iss>/<sub>` for each allowed subject, or `<iss>/*` (any subject of the issuer)."""
    return [f"{issuer}/{s}" for s in subjects] if subjects else [f"{issuer}/*"]


def enforcement(model: ModelSettings) -> str:
    """How the model's grants act: `enforced`, or `audit until <date>` (dry-run)."""
    mode = model.authorization
    if mode.audit and mode.until is not None:
        return f"audit until {mode.until.isoformat()}"
    return "enforced"


def audit_matrix_row(platform: ModelPlatform, model: ModelSettings) -> dict[str, Any] | None:
    """The access matrix row for what audit mode lets in while the model's own rows run in
    dry-run: any authenticated peer of the trust domain, on every path but the operator paths
    (secure_model/authorization.py `audit_allow`). None for an enforced model."""
    mode = model.authorization
    if not mode.audit or mode.until is None:
        return None
    peers = f"{platform.trust_domain}/*"
    return {
        "model": model.name,
        "namespace": model.ns,
        "caller": f"{peers} (audit mode)",
        "kind": "audit",
        "role": "any but admin",
        "principal": peers,
        "requestPrincipals": [],
        "methods": ["*"],
        "paths": ["*"],
        "operations": [{"methods": ["*"], "paths": ["*"]}],
        "when": f"until {mode.until.isoformat()}",
        "windows": [],
        "rateLimit": None,
        "policy": audit_policy_name(model),
        "versions": ["stable", "canary"] if model.canary is not None else ["stable"],
        "enforcement": f"enforced while in audit: {mode.reason}",
    }


def rows(platform: ModelPlatform, model: ModelSettings, gateway: GatewayRef) -> list[AccessRow]:
    """Every grant on `model`, in config order: in-mesh callers, then integrations."""
    td = platform.trust_domain
    versions = ("stable", "canary") if model.canary is not None else ("stable",)
    acts = enforcement(model)
    out: list[AccessRow] = []
    for caller in model.callers:
        out.append(
            AccessRow(
                model=model.name,
                namespace=model.ns,
                caller=f"{caller.namespace}/{caller.service_account}",
                kind="workload",
                role=caller.role,
                principal=principal(td, caller.namespace, caller.service_account),
                request_principals=(),
                audiences=(),
                operations=tuple(operations(model, caller.role)),
                policy=(
                    window_policy_name(model, caller.namespace, caller.service_account)
                    if caller.windows
                    else allow_policy_name(model)
                ),
                windows=tuple(caller.windows),
                rate_limit=caller.rate_limit,
                versions=versions,
                enforcement=acts,
            )
        )
    integrations = {i.name: i for i in platform.integrations}
    for grant in model.integrations:
        integration = integrations[grant.name]  # validated by Settings (or SecureModelArgs)
        out.append(
            AccessRow(
                model=model.name,
                namespace=model.ns,
                caller=f"integration:{grant.name}",
                kind="integration",
                role=grant.role,
                # Only through the ingress gateway: its identity AND the token's.
                principal=gateway.principal(td),
                request_principals=tuple(
                    request_principals(integration.issuer, list(integration.subjects))
                ),
                audiences=tuple(integration.audiences),
                operations=tuple(operations(model, grant.role)),
                policy=allow_policy_name(model),
                rate_limit=grant.rate_limit,
                versions=versions,
                issuer=integration.issuer,
                enforcement=acts,
            )
        )
    return out


def admins(access: list[AccessRow]) -> tuple[list[str], list[str]]:
    """(mesh principals, request principals) holding the admin role: the only ones the DENY of
    operator paths exempts."""
    principals = sorted({r.principal for r in access if r.role == "admin" and r.kind == "workload"})
    request = sorted(
        {
            p
            for r in access
            if r.role == "admin" and r.kind == "integration"
            for p in r.request_principals
        }
    )
    return principals, request


# ---- what a request may do (used by tests and the report, same data as the policies) --------


def path_matches(pattern: str, path: str) -> bool:
    """Istio's path matching: exact, `prefix*`, `*suffix`, `*`, and `{*}` single segments."""
    if pattern == "*":
        return True
    if pattern.endswith("*") and "{" not in pattern:
        return path.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return path.endswith(pattern[1:])
    if "{*}" in pattern:
        want, got = pattern.split("/"), path.split("/")
        return len(want) == len(got) and all(
            w == g or (w == "{*}" and g != "") for w, g in zip(want, got, strict=True)
        )
    return pattern == path


def row_allows(row: AccessRow, method: str, path: str) -> bool:
    """Whether `row` grants `method` on `path` (inside its window, for batch rows)."""
    return any(
        method in op.methods and any(path_matches(p, path) for p in op.paths)
        for op in row.operations
    )


def is_admin_path(model: ModelSettings, path: str) -> bool:
    return any(path_matches(p, path) for p in admin_paths(model))
