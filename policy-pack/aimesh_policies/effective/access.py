"""Effective authorization: who can call each model workload on which route, against intent.

For every model (`workloads.discover`) and every label set of its pods, the AuthorizationPolicies
that apply (its namespace and the mesh root, by selector; targetRef policies attach to gateways
and waypoints, never to sidecars; dry-run ones left out) are evaluated over a grid:

- identity classes: each declared caller (its principal; integrations through the gateway with
  a token of their issuer), another workload in the model's namespace, in each caller's
  namespace and in an unrelated namespace, the gateway's identity without a token, a holder of
  any token of each issuer a RequestAuthentication trusts for the model (from another workload
  and through the gateway), a plaintext peer, a caller's name in a foreign trust domain, and
  another workload or a plaintext peer at a sample address of every IP block the policies name;
- route classes: every method x path x port the intent declares or the policies name (paths
  instantiated: `/x*` -> `/x` and `/xaimesh-probe`, `*/x` -> `/aimesh-probe/x`, templates with a
  segment), the operator (admin) paths, `/metrics`, and a path nobody names;
- attacker-chosen attributes (host, headers, claims beyond iss/sub/aud, SNI, Envoy metadata):
  every value the policies name, and absent: a DENY the caller can dodge does not protect, an
  ALLOW the caller can meet does grant.

Anything effective that the intent does not declare is a violation naming the ALLOW policy that
grants it (or the absence of any ALLOW: allow-by-default), as a table of identity, route,
intended and effective. Generated protective layers must hold in effect, whatever objects
implement them: allow-listing for every pod of a model namespace (the deny-all), operator paths
denied by DENY to every identity not declared admin (the deny-admin), and the trusted issuers'
keys fetched only from the declared JWKS and tokens read only from the declared headers.

Audit mode (`models[].authorization: {mode: audit}`, auditmode.py): the model's ALLOW rules run
in dry-run (left out, like every dry-run policy) and one enforced ALLOW, `<model>-audit-mesh-peers`,
lets authenticated peers of the trust domain in on every route. That access is within intent
only while the intent declares the audit and the policy is a current audit ALLOW (a reason, a
last day not past) in the model's namespace; an ended, unexplained or undeclared one is reported
like any other ALLOW that grants too much, and it never covers plaintext peers or other trust
domains.

Without intent (a hand-written stack) only invariants are judged: no access at all for a
workload of an unrelated namespace (unless a current audit ALLOW of the model's namespace lets
it in), a plaintext peer, or an address.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_str, maps
from aimesh_policies.auditmode import declaration, is_current_audit_allow
from aimesh_policies.effective import istio
from aimesh_policies.effective.intent import Grant, Intent, Intents, read_intents
from aimesh_policies.effective.istio import (
    ALLOW,
    CLAIM,
    DENY,
    FREE_DESTINATION_IP,
    FREE_HOST,
    Compiled,
    Request,
    compile_policy,
    path_matcher,
    strings,
)
from aimesh_policies.effective.table import table
from aimesh_policies.effective.workloads import Model, discover, shape_unknowns
from aimesh_policies.framework import Context, Finding, today, unknown_finding
from aimesh_policies.k8s_object import MESH_CONFIG, K8sObject
from aimesh_policies.meshlib import (
    AUTHORIZATION_POLICY,
    REQUEST_AUTHENTICATION,
    namespace_of,
    selects,
)
from aimesh_policies.pods import selector_labels, target_refs

PROBE: Final = "aimesh-probe"
PROBE_NAMESPACE: Final = "aimesh-probe"
PROBE_SUBJECT: Final = "aimesh-probe-subject"
POD_IP: Final = "10.244.0.99"
MAX_SAMPLES: Final = 256
METHODS: Final = ("GET", "POST", "DELETE")


@dataclass(frozen=True)
class Identity:
    label: str
    principal: str | None
    claims: Mapping[str, Any] | None = None
    source_ip: str = POD_IP
    # What the class stands for in invariant mode: nobody may grant it anything.
    anyone: bool = False


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    port: int

    def __str__(self) -> str:
        return f"{self.method} {self.path} :{self.port}"


@dataclass(frozen=True)
class Extra:
    """One (identity, route) the stack admits beyond intent."""

    identity: Identity
    route: Route
    intended: str  # what intent says: "denied", "window only", ...
    by: Compiled | None  # the ALLOW that grants it; None = no ALLOW applies (allow-by-default)


@dataclass
class Evaluation:
    """The grid of one model's pods: every allowed (identity, route) and who grants it."""

    model: Model
    pods: Mapping[str, str]
    identities: list[Identity]
    routes: list[Route]
    td: str = "cluster.local"
    day: datetime.date = field(default_factory=today)
    allowed: dict[tuple[int, int], Compiled | None] = field(default_factory=dict)
    # (identity, route) pairs the DENY stage denies whatever the caller chooses.
    always_denied: set[tuple[int, int]] = field(default_factory=set)
    uncertain: list[Finding] = field(default_factory=list)


# --- which policies apply ----------------------------------------------------------------------


class PolicyIndex:
    """AuthorizationPolicies and RequestAuthentications by namespace; a policy is compiled the
    first time a model's namespace (or the root) needs it, once."""

    def __init__(self, objs: Sequence[K8sObject], ctx: Context) -> None:
        self.ctx = ctx
        self.root = ctx.mesh_root_namespace
        self._raw: dict[str, list[K8sObject]] = {}
        self._compiled: dict[str, list[Compiled]] = {}
        self.ras: dict[str, list[K8sObject]] = {}
        self.unsure: list[K8sObject] = []  # namespace or selector unknown: may apply anywhere
        for obj in objs:
            if obj.group_kind not in (AUTHORIZATION_POLICY, REQUEST_AUTHENTICATION):
                continue
            if _placement_unknown(obj):
                self.unsure.append(obj)
            elif obj.group_kind == AUTHORIZATION_POLICY:
                self._raw.setdefault(namespace_of(obj), []).append(obj)
            else:
                self.ras.setdefault(namespace_of(obj), []).append(obj)

    def _of(self, namespace: str) -> list[Compiled]:
        found = self._compiled.get(namespace)
        if found is None:
            found = self._compiled[namespace] = [
                compile_policy(o) for o in self._raw.get(namespace, [])
            ]
        return found

    def policies(self, namespace: str, pods: Mapping[str, str]) -> list[Compiled]:
        """The policies a sidecar with `pods` labels in `namespace` enforces."""
        found = [p for p in self._of(namespace) if _selects_pods(p.obj, pods)]
        if namespace != self.root:
            found += [p for p in self._of(self.root) if _selects_pods(p.obj, pods)]
        return found

    def request_authentications(self, namespace: str, pods: Mapping[str, str]) -> list[K8sObject]:
        found = [r for r in self.ras.get(namespace, []) if _selects_pods(r, pods)]
        if namespace != self.root:
            found += [r for r in self.ras.get(self.root, []) if _selects_pods(r, pods)]
        return found


def _placement_unknown(obj: K8sObject) -> bool:
    if not obj.unknown(""):
        return False  # one walk over the body: nothing unknown at all (the usual case)
    return bool(
        obj.unknown("metadata.namespace")
        or obj.get("metadata") is UNKNOWN
        or obj.get("spec") is UNKNOWN
        or obj.unknown("spec.selector")
        or obj.unknown("spec.targetRef")
        or obj.unknown("spec.targetRefs")
    )


def _selects_pods(obj: K8sObject, pods: Mapping[str, str]) -> bool:
    # A policy with targetRef(s) attaches to gateways / waypoints, never to a sidecar.
    return not target_refs(obj) and selects(selector_labels(obj), pods)


# --- identity classes ----------------------------------------------------------------------------


def _principal(td: str, namespace: str, sa: str = PROBE) -> str:
    return f"{td}/ns/{namespace}/sa/{sa}"


def _token(issuer: str, subject: str, audience: str) -> dict[str, Any]:
    return {"iss": issuer, "sub": subject, "aud": [audience]}


def _issuers(ras: Sequence[K8sObject]) -> dict[str, str]:
    """issuer -> an audience its RequestAuthentication accepts (a probe one when it does not
    restrict audiences)."""
    out: dict[str, str] = {}
    for ra in ras:
        for rule in maps(ra.spec.get("jwtRules")):
            issuer = as_str(rule.get("issuer"))
            if issuer:
                audiences = [a for a in strings(rule.get("audiences")) if a]
                out.setdefault(issuer, audiences[0] if audiences else PROBE)
    return out


def _ip_samples(policies: Sequence[Compiled]) -> list[str]:
    """One address inside every IP block / source.ip / remote.ip value the policies name."""
    samples: list[str] = []
    for policy in policies:
        for rule in policy.rules:
            for condition in rule.conditions():
                if condition.key not in ("source.ip", "remote.ip"):
                    continue
                for literal in condition.literals:
                    address = ip_sample(literal)
                    if address and address not in samples:
                        samples.append(address)
    return samples


def _literals(policies: Sequence[Compiled], keys: Sequence[str]) -> list[tuple[str, str]]:
    """(key, value as written) of every condition on `keys` in the policies, first seen first."""
    found: list[tuple[str, str]] = []
    for policy in policies:
        for rule in policy.rules:
            for condition in rule.conditions():
                if condition.key in keys:
                    for literal in condition.literals:
                        if (condition.key, literal) not in found:
                            found.append((condition.key, literal))
    return found


def principal_instance(pattern: str) -> str:
    """A well-formed principal (`<td>/ns/<ns>/sa/<sa>`) that a principal pattern matches."""
    if pattern == "*":
        return f"{PROBE}.example/ns/{PROBE}/sa/{PROBE}"
    if pattern.startswith("*"):
        tail = pattern[1:]
        if tail.startswith("/ns/"):
            return f"{PROBE}.example{tail}"  # any trust domain
        if "/sa/" in tail:
            return f"{PROBE}.example/ns/{PROBE}{tail}"  # a namespace ending so
        if "/ns/" in tail:
            return f"{PROBE}{tail}"  # a trust domain ending so
        return f"{PROBE}.example/ns/{PROBE}/sa/{PROBE}{tail}"  # a service account ending so
    if pattern.endswith("*"):
        head = pattern[:-1]
        if "/sa/" in head:
            return head + PROBE
        if "/ns/" in head:
            return f"{head}{PROBE}/sa/{PROBE}"
        return f"{head}{PROBE}/ns/{PROBE}/sa/{PROBE}"
    return pattern


def ip_sample(value: str) -> str:
    try:
        network = istio.parse_ip_block(value)
    except istio.ValueError_:
        return ""
    if network.num_addresses > 2:
        return str(network.network_address + 1)
    return str(network.network_address)


def identities(
    model: Model, policies: Sequence[Compiled], ras: Sequence[K8sObject], td: str
) -> list[Identity]:
    intent = model.intent
    found: list[Identity] = []

    def add(identity: Identity) -> None:
        if all(
            (i.principal, i.claims, i.source_ip)
            != (identity.principal, identity.claims, identity.source_ip)
            for i in found
        ):
            found.append(identity)

    namespaces = [model.namespace]
    gateways: list[str] = []
    if intent is not None:
        for grant in intent.grants:
            caller_ns = grant.principal.split("/ns/", 1)[-1].split("/", 1)[0]
            if caller_ns not in namespaces:
                namespaces.append(caller_ns)
            if grant.kind == "integration":
                if grant.principal not in gateways:
                    gateways.append(grant.principal)
                for rp in grant.request_principals:
                    issuer, _, subject = rp.rpartition("/")
                    audience = grant.audiences[0] if grant.audiences else PROBE
                    add(
                        Identity(
                            f"{grant.caller} (token {issuer}/{subject})",
                            grant.principal,
                            _token(issuer, PROBE_SUBJECT if subject == "*" else subject, audience),
                        )
                    )
            else:
                add(Identity(f"caller {grant.caller}", grant.principal))
    for namespace in (*namespaces, PROBE_NAMESPACE):
        fresh = namespace == PROBE_NAMESPACE
        label = (
            "a workload of an unrelated namespace" if fresh else f"another workload in {namespace}"
        )
        add(Identity(label, _principal(td, namespace), anyone=fresh))
    for gateway in gateways:
        add(Identity(f"the gateway {gateway} without a token", gateway))
    for issuer, audience in _issuers(ras).items():
        token = _token(issuer, PROBE_SUBJECT, audience)
        add(Identity(f"any holder of a {issuer} token", _principal(td, PROBE_NAMESPACE), token))
        for gateway in gateways:
            add(Identity(f"any holder of a {issuer} token via the gateway", gateway, token))
    add(Identity("a plaintext (unauthenticated) peer", None, anyone=True))
    if intent is not None:
        workload = next((g for g in intent.grants if g.kind != "integration"), None)
        if workload is not None:
            foreign = "foreign.example/" + workload.principal.split("/", 1)[-1]
            add(Identity(f"{workload.caller} in a foreign trust domain", foreign))
    issuers = _issuers(ras)
    for key, literal in _literals(policies, ("source.principal", "source.namespace")):
        if key == "source.namespace":
            namespace = value_instance(literal) if "*" in literal else literal
            add(Identity(f"another workload in {namespace}", _principal(td, namespace)))
        else:
            named = principal_instance(literal)
            add(Identity(f"{named} (named by a policy)", named))
    for _, literal in _literals(policies, ("request.auth.principal",)):
        issuer, _, subject = literal.rpartition("/")
        if issuer in issuers and "*" not in literal:
            token = _token(issuer, subject, issuers[issuer])
            add(Identity(f"a holder of a {literal} token", _principal(td, PROBE_NAMESPACE), token))
    for address in _ip_samples(policies):
        stranger = _principal(td, PROBE_NAMESPACE)
        add(Identity(f"a workload at {address}", stranger, source_ip=address, anyone=True))
        add(Identity(f"a plaintext peer at {address}", None, source_ip=address, anyone=True))
    return found


# --- route classes --------------------------------------------------------------------------------


def path_instances(pattern: str) -> list[str]:
    """Concrete paths a pattern matches (and, for a prefix, the prefix itself)."""
    if "{*}" in pattern or "{**}" in pattern:
        return [pattern.replace("{**}", f"{PROBE}/x").replace("{*}", PROBE)]
    if pattern == "*":
        return [f"/{PROBE}"]
    if pattern.startswith("*"):
        return [f"/{PROBE}{pattern[1:]}"]
    if pattern.endswith("*"):
        head = pattern[:-1]
        return [p for p in (head, f"{head.rstrip('/')}/{PROBE}") if p]
    return [pattern] if pattern else []


def value_instance(value: str) -> str:
    """A concrete value a string pattern matches."""
    if value == "*":
        return PROBE
    if value.startswith("*"):
        return PROBE + value[1:]
    if value.endswith("*"):
        return value[:-1] + PROBE
    return value


def routes(model: Model, policies: Sequence[Compiled]) -> list[Route]:
    intent = model.intent
    paths: list[str] = []
    methods: list[str] = list(METHODS)
    ports: list[int] = list(intent.ports) if intent is not None else [8080]

    def add(items: list[Any], values: Iterable[Any]) -> None:
        for value in values:
            if value not in items:
                items.append(value)

    if intent is not None:
        for grant in intent.grants:
            for op in grant.operations:
                add(methods, op.methods)
                for pattern in op.paths:
                    add(paths, path_instances(pattern))
        for pattern in intent.admin_paths:
            add(paths, path_instances(pattern))
    add(paths, ["/", "/metrics", f"/{PROBE}"])
    for policy in policies:
        for rule in policy.rules:
            for condition in rule.conditions():
                if condition.key == ":path":
                    for literal in condition.literals:
                        add(paths, path_instances(literal))
                elif condition.key == ":method":
                    add(methods, [value_instance(v) for v in condition.literals])
                elif condition.key == "destination.port":
                    add(ports, [int(v) for v in condition.literals if _port(v)])
    return [Route(m, p, port) for port in ports for m in methods for p in paths]


def _port(value: str) -> bool:
    try:
        istio.parse_port(value)
    except istio.ValueError_:
        return False
    return True


# --- attacker-chosen attributes ------------------------------------------------------------------


# The claims that make a token holder who it is: never caller-chosen here.
_IDENTITY_CLAIMS: Final = frozenset(CLAIM + c for c in ("iss", "sub", "aud"))


def free_values(model: Model, policies: Sequence[Compiled]) -> dict[str, list[str | None]]:
    """Every free attribute the policies test, with the values worth trying (None = absent; a
    host is always present)."""
    values: dict[str, list[str | None]] = {}
    for policy in policies:
        for rule in policy.rules:
            for condition in rule.conditions():
                name = condition.free
                if not name or name in _IDENTITY_CLAIMS:
                    continue
                if name not in values:
                    values[name] = [f"{PROBE}.invalid"] if name == FREE_HOST else [None]
                    if name == FREE_HOST and model.intent is not None:
                        for entry in model.intent.entries:
                            values[name] += list(entry.hosts)
                options = values[name]
                for literal in condition.literals:
                    sample = (
                        ip_sample(literal)
                        if name == FREE_DESTINATION_IP
                        else value_instance(literal)
                    )
                    if sample and sample not in options:
                        options.append(sample)
    return values


def samples(values: Mapping[str, list[str | None]]) -> Iterator[dict[str, str]] | None:
    """Every combination of free values, or None when there are too many to try."""
    keys = sorted(values)
    total = 1
    for key in keys:
        total *= len(values[key]) or 1
    if total > MAX_SAMPLES:
        return None
    combos = itertools.product(*(values[k] or [None] for k in keys))
    return ({k: v for k, v in zip(keys, combo, strict=True) if v is not None} for combo in combos)


def _with_claims(claims: Mapping[str, Any] | None, free: Mapping[str, str]) -> Any:
    if claims is None:
        return None
    merged: dict[str, Any] = dict(claims)
    for key, value in free.items():
        if not key.startswith(CLAIM):
            continue
        path = key[len(CLAIM) :].split(".")
        holder = merged
        for step in path[:-1]:
            nested = holder.get(step)
            holder[step] = dict(nested) if isinstance(nested, Mapping) else {}
            holder = holder[step]
        holder[path[-1]] = value
    return merged


# --- the grid ------------------------------------------------------------------------------------


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _group_mask(groups: Sequence[tuple[istio.Condition, ...]], requests: Sequence[Request]) -> int:
    mask = 0
    for i, request in enumerate(requests):
        if any(all(c.test(request) for c in g) for g in groups):
            mask |= 1 << i
    return mask


@dataclass
class Grid:
    """Decisions over identities x routes: every allowed pair (and the ALLOW that grants it,
    None when no ALLOW applies), and the pairs some DENY denies whatever the caller chooses."""

    allowed: dict[tuple[int, int], Compiled | None] = field(default_factory=dict)
    always_denied: set[tuple[int, int]] = field(default_factory=set)


def grid(
    who: Sequence[Identity],
    what: Sequence[Route],
    policies: Sequence[Compiled],
    combos: Iterable[Mapping[str, str]],
) -> Grid:
    """The decisions of `policies` for every identity and route, the caller choosing any of the
    free-attribute `combos`: allowed when some choice passes the DENY stage and (when ALLOW
    policies apply) matches an ALLOW rule. Rules are evaluated side by side, as Envoy does: the
    principal conditions over the identities, the permission conditions over the routes."""
    result = Grid()
    enforced = [p for p in policies if p.enforced]
    denies = [r for p in enforced if p.action == DENY for r in p.rules]
    # A pair several ALLOWs grant is credited to the first: audit ALLOWs (auditmode.py) last, so
    # that any other policy granting the same access is the one named.
    allows = [
        (p, r)
        for p in sorted(enforced, key=lambda p: declaration(p.obj) is not None)
        if p.action == ALLOW
        for r in p.rules
    ]
    allow_mode = any(p.action == ALLOW for p in enforced)
    everyone = (1 << len(who)) - 1
    always = [everyone] * len(what)
    for free in combos:
        id_requests = [
            Request(i.principal, _with_claims(i.claims, free), i.source_ip, i.source_ip, free=free)
            for i in who
        ]
        route_requests = [
            Request(method=r.method, path=r.path, port=r.port, free=free) for r in what
        ]
        denied = [0] * len(what)
        for rule in denies:
            principals = _group_mask(rule.principals, id_requests)
            if principals:
                for r in _bits(_group_mask(rule.permissions, route_requests)):
                    denied[r] |= principals
        always = [a & d for a, d in zip(always, denied, strict=True)]
        if not allow_mode:
            for r in range(len(what)):
                for i in _bits(everyone & ~denied[r]):
                    result.allowed.setdefault((i, r), None)
            continue
        for policy, rule in allows:
            principals = _group_mask(rule.principals, id_requests)
            if not principals:
                continue
            for r in _bits(_group_mask(rule.permissions, route_requests)):
                for i in _bits(principals & ~denied[r]):
                    result.allowed.setdefault((i, r), policy)
    result.always_denied = {(i, r) for r in range(len(what)) for i in _bits(always[r])}
    return result


def evaluate(
    model: Model,
    pods: Mapping[str, str],
    policies: Sequence[Compiled],
    ras: Sequence[K8sObject],
    td: str,
) -> Evaluation:
    """The effective grid of one pod label set of a model."""
    who = identities(model, policies, ras, td)
    what = routes(model, policies)
    result = Evaluation(model, pods, who, what, td)
    combos = samples(free_values(model, policies))
    if combos is None:
        result.uncertain.append(
            Finding(
                f"stack: model {model.name} (namespace {model.namespace}): cannot verify its "
                f"access: the policies test more than {MAX_SAMPLES} combinations of "
                "caller-chosen attributes (hosts, headers, claims). Fix: test fewer headers and "
                "claims in AuthorizationPolicies that apply to model workloads.",
                model.anchor.urn if model.anchor else "",
            )
        )
        return result
    decisions = grid(who, what, policies, combos)
    result.allowed = decisions.allowed
    result.always_denied = decisions.always_denied
    return result


# --- intent --------------------------------------------------------------------------------------


def _token_matches(grant: Grant, identity: Identity) -> bool:
    if not grant.request_principals:
        return True
    claims = identity.claims
    if claims is None:
        return False
    if not any(istio.request_principal_matcher(rp)(claims) for rp in grant.request_principals):
        return False
    if grant.audiences:
        return bool(set(grant.audiences) & set(istio.claim_values(claims, ("aud",))))
    return True


def intended(intent: Intent, identity: Identity, route: Route) -> str:
    """ "allowed", "window" (a batch grant: open only while its CronJobs say so) or "denied"."""
    verdict = "denied"
    if route.port not in intent.ports:
        return verdict
    for grant in intent.grants:
        if grant.principal != identity.principal or not _token_matches(grant, identity):
            continue
        for op in grant.operations:
            if route.method in op.methods and any(_matches(p, route.path) for p in op.paths):
                if not grant.window:
                    return "allowed"
                verdict = "window only"
    return verdict


def _matches(pattern: str, path: str) -> bool:
    try:
        return path_matcher(pattern)(path)
    except istio.Uncertain:
        return False


def audit_admits(evaluation: Evaluation, identity: Identity, by: Compiled | None) -> bool:
    """Whether `by` is the current audit ALLOW of the model and lets `identity` in by design:
    an authenticated peer of the trust domain, while the audit is declared (in the intent, when
    there is one) and has not ended."""
    model, day = evaluation.model, evaluation.day
    if by is None or namespace_of(by.obj) != model.namespace:
        return False
    if not is_current_audit_allow(by.obj, day):
        return False
    if model.intent is not None and (
        model.intent.audit is None or not model.intent.audit.current(day)
    ):
        return False
    return identity.principal is not None and identity.principal.startswith(f"{evaluation.td}/")


def extras(evaluation: Evaluation) -> list[Extra]:
    intent = evaluation.model.intent
    out: list[Extra] = []
    for (i, r), policy in sorted(evaluation.allowed.items()):
        identity, route = evaluation.identities[i], evaluation.routes[r]
        if audit_admits(evaluation, identity, policy):
            continue
        if intent is None:
            if identity.anyone:
                out.append(Extra(identity, route, "denied (invariant)", policy))
            continue
        verdict = intended(intent, identity, route)
        if verdict != "allowed":
            out.append(Extra(identity, route, verdict, policy))
    return out


def _is_admin_route(intent: Intent, route: Route) -> bool:
    return any(_matches(p, route.path) for p in intent.admin_paths)


def admin_gaps(evaluation: Evaluation) -> list[tuple[Identity, Route]]:
    """Operator routes not denied by the DENY stage to an identity not declared admin."""
    intent = evaluation.model.intent
    if intent is None or not intent.admin_paths:
        return []
    gaps = []
    for r, route in enumerate(evaluation.routes):
        if route.port not in intent.ports or not _is_admin_route(intent, route):
            continue
        for i, identity in enumerate(evaluation.identities):
            if (i, r) in evaluation.always_denied:
                continue
            if identity.principal in intent.admin_principals:
                continue  # the declared admins' operations are the ALLOW list's to decide
            gaps.append((identity, route))
    return gaps


# --- the policy ----------------------------------------------------------------------------------


def mesh_trust_domain(objs: Sequence[K8sObject]) -> str:
    """The mesh config's trust domain (Istio's default when no mesh config says otherwise)."""
    for obj in objs:
        if obj.group_kind == MESH_CONFIG:
            td = as_str(obj.get("trustDomain"))
            if td:
                return td
    return "cluster.local"


def _anchor_urn(model: Model) -> str:
    return model.anchor.urn if model.anchor is not None else ""


def _where(model: Model, pods: Mapping[str, str]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(pods.items())) or "any pod"
    return f"model {model.name} (namespace {model.namespace}, pods {shown})"


def _cannot_verify(model: Model, why: str, urn: str) -> Finding:
    return Finding(
        f"stack: {model.name} (namespace {model.namespace}): cannot verify its effective access: "
        f"{why}. Fix: make the value known at preview (a literal or config), or re-run the check "
        "after apply.",
        urn,
    )


def check_access(
    objs: Sequence[K8sObject], ctx: Context, intents: Intents | None = None
) -> Iterator[Finding]:
    intents = intents if intents is not None else read_intents(objs, ctx)
    index = PolicyIndex(objs, ctx)
    models = discover(objs, ctx, intents)
    if not models:
        return
    for obj in index.unsure:
        for where in _unknown_placement(obj):
            yield unknown_finding(obj, where)
    yield from shape_unknowns(objs, ctx, models)
    reported: set[tuple[str, str]] = set()
    mesh_td = mesh_trust_domain(objs)
    for model in models:
        if model.unreadable is not None:
            yield _cannot_verify(model, "its intent cannot be read or trusted", _anchor_urn(model))
            continue
        td = model.intent.trust_domain if model.intent is not None else mesh_td
        for pods in model.pods:
            policies = index.policies(model.namespace, pods)
            ras = index.request_authentications(model.namespace, pods)
            for ra in ras:
                unknown = ra.unknown("spec.jwtRules")
                if unknown and (ra.urn + unknown[0], "ra") not in reported:
                    reported.add((ra.urn + unknown[0], "ra"))
                    yield unknown_finding(ra, unknown[0])
            unsure = [(p, path, why) for p in policies for path, why in p.uncertain]
            if unsure:
                for policy, path, why in unsure:
                    if (policy.obj.urn + path, policy.obj.name) not in reported:
                        reported.add((policy.obj.urn + path, policy.obj.name))
                        yield Finding(
                            f"{policy.obj.ref}: {path}: cannot verify: {why}. Fix: make the value "
                            "known at preview (a literal or config), or re-run the check after "
                            "apply.",
                            policy.obj.urn,
                        )
                continue
            evaluation = evaluate(model, pods, policies, ras, td)
            yield from evaluation.uncertain
            yield from _extra_findings(evaluation)
            if model.intent is not None:
                yield from _layer_findings(evaluation, ras)
        if model.intent is not None and not any(
            p.enforced and p.action == ALLOW for p in index.policies(model.namespace, {})
        ):
            yield Finding(
                f"stack: model namespace {model.namespace}: the generated deny-all is missing "
                "and nothing equivalent stands in its place (no namespace- or mesh-wide ALLOW "
                "policy is enforced): a pod of the namespace that no ALLOW selects accepts every "
                f"caller. Fix: add AuthorizationPolicy {model.namespace}/deny-all with spec: {{}}.",
                _anchor_urn(model),
            )


_PLACEMENT: Final = (
    "metadata",
    "spec",
    "metadata.namespace",
    "spec.selector",
    "spec.targetRef",
    "spec.targetRefs",
)


def _unknown_placement(obj: K8sObject) -> list[str]:
    for path in _PLACEMENT:
        found = obj.unknown(path)
        if found:
            return found[:1]
    return []


def _extra_findings(evaluation: Evaluation) -> Iterator[Finding]:
    model = evaluation.model
    by_policy: dict[str, list[Extra]] = {}
    owners: dict[str, Compiled | None] = {}
    for extra in extras(evaluation):
        key = extra.by.obj.urn + extra.by.obj.ref if extra.by is not None else ""
        by_policy.setdefault(key, []).append(extra)
        owners[key] = extra.by
    for key, found in by_policy.items():
        policy = owners[key]
        rows = [(e.identity.label, str(e.route), e.intended, "allowed") for e in found]
        grid = table(("identity", "route", "intended", "effective"), rows)
        if policy is None:
            head = (
                f"stack: {_where(model, evaluation.pods)}: no ALLOW AuthorizationPolicy applies, "
                "so every request not denied gets in"
            )
            fix = (
                "restore the namespace deny-all (an AuthorizationPolicy with spec: {}) and the "
                "model's ALLOW rules"
            )
            urn = _anchor_urn(model)
        else:
            head = (
                f"{policy.obj.ref}: grants {_where(model, evaluation.pods)} more than its "
                "declared intent"
            )
            fix = (
                "narrow the policy to the declared callers, methods and paths (or declare the "
                "access in the stack config, which regenerates the intent)"
            )
            why = _audit_refused(evaluation, policy)
            if why:
                head += f" (an audit-mode ALLOW, but {why})"
                fix = (
                    "enforce the model (remove models[].authorization's audit mode, which removes "
                    "this policy), or declare the audit with a reason and a last day not past"
                )
            urn = policy.obj.urn
        yield Finding(
            f"{head} ({len(found)} extra identity/route pairs):\n{grid}\nFix: {fix}.", urn
        )


def _audit_refused(evaluation: Evaluation, policy: Compiled) -> str:
    """Why an ALLOW carrying an audit declaration does not count as audit mode ("" when it
    carries none, or when it does and only its principals are wider than mesh peers)."""
    notes = declaration(policy.obj)
    if notes is None:
        return ""
    if not notes.reason:
        return "it gives no reason (aimesh.io/audit-reason)"
    if notes.until is None:
        return f"its last day {notes.written!r} is not a YYYY-MM-DD date (aimesh.io/audit-until)"
    if notes.until < evaluation.day:
        return f"audit mode ended on {notes.until.isoformat()}"
    intent = evaluation.model.intent
    if intent is not None and intent.audit is None:
        return "the model's intent does not declare audit mode"
    if intent is not None and intent.audit is not None and not intent.audit.current(evaluation.day):
        return "the audit mode its intent declares has ended or gives no reason"
    return ""


def _layer_findings(evaluation: Evaluation, ras: Sequence[K8sObject]) -> Iterator[Finding]:
    model = evaluation.model
    intent = model.intent
    assert intent is not None
    urn = _anchor_urn(model)
    gaps = admin_gaps(evaluation)
    if gaps:
        rows = [(i.label, str(r), "denied by DENY", "not denied by any DENY") for i, r in gaps]
        grid = table(("identity", "route", "intended", "effective"), rows)
        yield Finding(
            f"stack: {_where(model, evaluation.pods)}: the operator endpoints are no longer "
            f"denied to non-admins by a DENY policy (the generated deny-admin is missing, "
            f"dry-run or narrowed), so only the ALLOW list stands between them and model "
            f"load/unload ({len(gaps)} pairs):\n{grid}\nFix: restore the DENY of "
            f"{', '.join(intent.admin_paths)} for every identity but the declared admins.",
            urn,
        )
    yield from _issuer_findings(model, intent, ras)


def _issuer_findings(model: Model, intent: Intent, ras: Sequence[K8sObject]) -> Iterator[Finding]:
    for issuer in intent.issuers:
        for ra in ras:
            for i, rule in enumerate(maps(ra.spec.get("jwtRules"))):
                if as_str(rule.get("issuer")) != issuer.issuer:
                    continue
                at = f"spec.jwtRules[{i}]"
                problems = []
                if as_str(rule.get("jwksUri")) != issuer.jwks_uri or rule.get("jwks") is not None:
                    problems.append(
                        "its keys come from somewhere other than the declared JWKS "
                        f"({issuer.jwks_uri}): whoever serves them can mint valid tokens"
                    )
                if rule.get("fromParams") or rule.get("fromCookies"):
                    problems.append(
                        "it also reads tokens from URL parameters or cookies, where they leak "
                        "into logs and caches"
                    )
                headers = tuple(
                    (as_str(h.get("name")) or "", as_str(h.get("prefix")) or "")
                    for h in maps(rule.get("fromHeaders"))
                )
                if issuer.from_headers and headers != issuer.from_headers:
                    problems.append("it reads tokens from other headers than declared")
                for problem in problems:
                    yield Finding(
                        f"{ra.ref}: {at}: validates tokens of the trusted issuer "
                        f"{issuer.issuer} for model {model.name}, but {problem}. Fix: use the "
                        "declared jwksUri and headers only (the stack config's integration).",
                        ra.urn,
                    )


# --- explaining ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One (identity, route) of a model as the report shows it."""

    identity: str
    route: str
    declared: str  # "allowed" / "window only" / "denied" / "-" (no intent)
    effective: str  # "allowed" / "denied"
    by: str  # the ALLOW that grants it ("" when denied, "no ALLOW applies" when allow-by-default)


def explain(objs: Sequence[K8sObject], ctx: Context) -> dict[str, list[Cell]]:
    """Per model (`<namespace>/<name>`): every (identity, route) that is declared or effective,
    with both verdicts side by side (what `tools.access_matrix --effective` prints)."""
    intents = read_intents(objs, ctx)
    index = PolicyIndex(objs, ctx)
    out: dict[str, list[Cell]] = {}
    mesh_td = mesh_trust_domain(objs)
    for model in discover(objs, ctx, intents):
        cells: list[Cell] = []
        td = model.intent.trust_domain if model.intent is not None else mesh_td
        for pods in model.pods:
            policies = index.policies(model.namespace, pods)
            if any(p.uncertain for p in policies):
                continue
            ras = index.request_authentications(model.namespace, pods)
            evaluation = evaluate(model, pods, policies, ras, td)
            for i, identity in enumerate(evaluation.identities):
                for r, route in enumerate(evaluation.routes):
                    declared = intended(model.intent, identity, route) if model.intent else "-"
                    granted = (i, r) in evaluation.allowed
                    if declared in ("denied", "-") and not granted:
                        continue
                    policy = evaluation.allowed.get((i, r))
                    if (
                        declared != "allowed"
                        and granted
                        and audit_admits(evaluation, identity, policy)
                    ):
                        declared = "audit mode"
                    by = policy.obj.ref if policy is not None else "no ALLOW applies"
                    cell = Cell(
                        identity.label,
                        str(route),
                        declared,
                        "allowed" if granted else "denied",
                        by if granted else "",
                    )
                    if cell not in cells:
                        cells.append(cell)
        out[f"{model.namespace}/{model.name}"] = cells
    return out


__all__ = [
    "Cell",
    "Evaluation",
    "Extra",
    "Identity",
    "PolicyIndex",
    "Route",
    "audit_admits",
    "check_access",
    "evaluate",
    "explain",
    "extras",
    "identities",
    "intended",
    "routes",
]
