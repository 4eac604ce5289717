"""Istio AuthorizationPolicy semantics, as istiod 1.30 builds them into Envoy RBAC (pure, total).

What a request meets at a sidecar, in order (pilot/pkg/security/authz/builder):

- CUSTOM policies hand the request to an external authorizer. What it answers is not in the
  stack, so a CUSTOM policy is treated as letting the request through (an over-approximation of
  what is allowed: the pack never assumes a denial it cannot see).
- DENY policies: any matching rule denies.
- ALLOW policies: when at least one applies to the workload, a request must match one of their
  rules; when none applies, everything is allowed. An ALLOW policy with no rules matches nothing
  but still switches the workload to allow-listing (the deny-all idiom).
- AUDIT policies decide nothing.
- A policy annotated `istio.io/dry-run` with a value Go's ParseBool reads as true ("1", "t",
  "true", "TRUE", "True") is built as shadow rules only: it is left out entirely.

Inside a rule (pilot/pkg/security/authz/model): `from` entries are OR-ed, `to` entries are
OR-ed, `when` conditions are AND-ed into every one of them; inside a source or an operation the
fields are AND-ed; a field's values are OR-ed and its `not` values must all miss. An absent or
empty `from` / `to` / source / operation constrains nothing.

Two error rules decide what a malformed rule does:

- a `when` key istiod does not know ("unknown attribute") makes the rule invalid: it is skipped
  (it matches nothing), whatever the action;
- a value a generator cannot convert (a port that is not a number up to 65535, an IP block that
  is not an address or CIDR, a header key without `[name]`, a claim key with bad brackets) makes
  the whole rule skipped in an ALLOW policy (smaller allow), and is dropped on its own in a DENY
  or AUDIT policy (wider deny: a key whose values all drop constrains nothing).

Matching (pilot/pkg/security/authz/matcher): most strings are exact, `prefix*`, `*suffix` or
`*` (any non-empty value; for headers and hosts: present); a `*` anywhere else is literal.
Principals are matched on the peer certificate's `spiffe://` URI, namespaces and service
accounts by regular expressions over it; hosts ignore case; paths are compared without the query
string, and a path holding `{*}` / `{**}` is an Envoy URI template (one segment / any rest).
Request principals are `<iss>/<sub>`, split at the LAST `/`.

Requests are described by `Request`; `compile_policy` turns a manifest into a `Compiled` policy
once, and `decide` answers for one request. The grid evaluation (`access.py`) uses the same
compiled conditions split by side, as Envoy does: principal conditions read who is calling,
permission conditions what is called.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_int, as_list, as_map, as_str
from aimesh_policies.auditmode import DRY_RUN, is_dry_run
from aimesh_policies.k8s_object import K8sObject

ALLOW: Final = "ALLOW"
DENY: Final = "DENY"
AUDIT: Final = "AUDIT"
CUSTOM: Final = "CUSTOM"
ACTIONS: Final = (ALLOW, DENY, AUDIT, CUSTOM)
SPIFFE: Final = "spiffe://"

# Which side of the Envoy RBAC policy a condition sits on.
PRINCIPAL: Final = "principal"
PERMISSION: Final = "permission"

# Free attributes: what the caller (or a value the pack cannot know) decides. A DENY rule that
# tests one can be dodged and an ALLOW rule that tests one can be met, so the evaluation tries
# every value the policies name (see `free_values`).
FREE_HOST: Final = "host"
FREE_SNI: Final = "sni"
FREE_DESTINATION_IP: Final = "destination.ip"
HEADER: Final = "header:"
CLAIM: Final = "claim:"
METADATA: Final = "metadata:"


@dataclass(frozen=True)
class Request:
    """One HTTP request as the model's sidecar sees it.

    `principal`: the peer's mTLS identity (`<td>/ns/<ns>/sa/<sa>`), None for a plaintext peer.
    `claims`: the validated JWT payload (iss, sub, aud, ...), None when no token was validated.
    `free`: attacker-chosen values, keyed as `free_values` names them (`host`, `header:<name>`,
    `claim:<a>.<b>`, `sni`, `metadata:<key>`, `destination.ip`); an absent key is absent."""

    principal: str | None = None
    claims: Mapping[str, Any] | None = None
    source_ip: str = "10.244.0.99"
    remote_ip: str = "10.244.0.99"
    method: str = "GET"
    path: str = "/"
    port: int = 8080
    free: Mapping[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.free.get(FREE_HOST, "")


Matcher = Callable[[str], bool]
Getter = Callable[[Request], Any]


class ValueError_(Exception):  # noqa: N801, N818 - the generator error istiod raises
    """A value istiod's generator cannot convert (see the module docstring)."""


class Uncertain(Exception):  # noqa: N818 - not an error: a verdict the pack cannot reach
    """Something whose effect the pack cannot tell from the manifest (an invalid path template
    Envoy would reject, an unknown value): the policy reports "cannot verify"."""


# --- string matchers ---------------------------------------------------------------------------


def string_matcher(value: str, prefix: str = "", ignore_case: bool = False) -> Matcher:
    """Istio's StringMatcherWithPrefix: `*` = any non-empty value (the prefix ignored), `*x` =
    suffix (with a prefix: the prefix, anything, then x), `x*` = prefix, else exact."""
    fold: Callable[[str], str] = str.lower if ignore_case else str

    if value == "*":
        return lambda s: len(s) > 0
    if value.startswith("*"):
        tail = fold(value[1:])
        if prefix:
            head = fold(prefix)
            return lambda s: fold(s).startswith(head) and fold(s)[len(head) :].endswith(tail)
        return lambda s: fold(s).endswith(tail)
    if value.endswith("*"):
        start = fold(prefix + value[:-1])
        return lambda s: fold(s).startswith(start)
    exact = fold(prefix + value)
    return lambda s: fold(s) == exact


def header_matcher(value: str, ignore_case: bool = False) -> Matcher:
    """Istio's HeaderMatcher / HostMatcher: `*` = present (any value, empty included)."""
    if value == "*":
        return lambda s: True
    return string_matcher(value, ignore_case=ignore_case)


def _regex_matcher(pattern: str) -> Matcher:
    compiled = re.compile(pattern, re.DOTALL)
    return lambda s: compiled.fullmatch(s) is not None


def namespace_matcher(value: str) -> Matcher:
    """`.*/ns/<ns>/.*` over the peer URI, `*` in the namespace standing for `.*`."""
    literal = ".*".join(re.escape(part) for part in value.split("*"))
    return _regex_matcher(f".*/ns/{literal}/.*")


def service_account_matcher(value: str, policy_namespace: str) -> Matcher:
    """`<sa>` (in the policy's namespace) or `<ns>/<sa>`, over the peer URI."""
    ns, sep, sa = value.partition("/")
    if not sep:
        ns, sa = policy_namespace, value
    return _regex_matcher(f"spiffe://.+/ns/{re.escape(ns)}/(.+/|)sa/{re.escape(sa)}(/.+)?")


def trust_domain_matcher(value: str) -> Matcher:
    if value == "*":
        return lambda s: s.startswith(SPIFFE)
    if "*" not in value:
        start = f"{SPIFFE}{value}/"
        return lambda s: s.startswith(start)
    head, _, tail = value.partition("*")
    return _regex_matcher(f"spiffe://{re.escape(head)}[^/]*{re.escape(tail)}/.*")


def request_principal_matcher(value: str) -> Callable[[Mapping[str, Any]], bool]:
    """`<iss>/<sub>` against the token's iss and sub claims (istiod's extended generator)."""
    idx = value.rfind("/")
    found = idx >= 0
    iss, sub = (value[:idx], value[idx + 1 :]) if found else (value, "")
    any_value: Matcher = lambda s: len(s) > 0  # noqa: E731 - the `.+` regex
    match_iss: Matcher
    match_sub: Matcher
    if value == "*":
        match_iss, match_sub = any_value, any_value
    elif value.startswith("*"):
        if found:
            match_iss = any_value if iss == "*" else _suffix(iss[1:])
            match_sub = _exact(sub)
        else:
            match_iss, match_sub = any_value, _suffix(value[1:])
    elif value.endswith("*"):
        if found:
            match_iss = _exact(iss)
            match_sub = any_value if sub == "*" else _prefix(sub[:-1])
        else:
            match_iss, match_sub = _prefix(value[:-1]), any_value
    else:
        match_iss, match_sub = _exact(iss), _exact(sub)

    def match(claims: Mapping[str, Any]) -> bool:
        got_iss, got_sub = claims.get("iss"), claims.get("sub")
        return (
            isinstance(got_iss, str)
            and isinstance(got_sub, str)
            and match_iss(got_iss)
            and match_sub(got_sub)
        )

    return match


def _exact(v: str) -> Matcher:
    return lambda s: s == v


def _prefix(v: str) -> Matcher:
    return lambda s: s.startswith(v)


def _suffix(v: str) -> Matcher:
    return lambda s: s.endswith(v)


# Envoy's URI template: `*` is one segment of pchars, `**` any rest (slashes included).
_PCHAR: Final = r"[A-Za-z0-9\-._~%!$&'()+,;:@=]"


def path_template_matcher(value: str) -> Matcher:
    """A path with `{*}` / `{**}` as Envoy's URI template matcher reads it (after istiod turns
    them into `*` / `**`). Raises Uncertain for a template Envoy would refuse (operators inside a
    segment, `**` not last, braces left over): the listener update would be rejected."""
    template = value.replace("{**}", "**").replace("{*}", "*")
    if not template.startswith("/") or "{" in template or "}" in template:
        raise Uncertain(f"path template {value!r} is not one Envoy accepts")
    parts = template[1:].split("/")
    pattern = ""
    for i, part in enumerate(parts):
        if part == "**":
            if i != len(parts) - 1:
                raise Uncertain(f"path template {value!r}: {{**}} must be the last segment")
            pattern += f"/{_PCHAR[:-1]}/]*"
        elif part == "*":
            pattern += f"/{_PCHAR}+"
        elif "*" in part:
            raise Uncertain(f"path template {value!r}: `*` inside a segment")
        else:
            pattern += "/" + re.escape(part)
    return _regex_matcher(pattern)


def path_matcher(value: str) -> Matcher:
    if "{*}" in value or "{**}" in value:
        return path_template_matcher(value)
    return string_matcher(value)


def parse_ip_block(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address or CIDR as Go's netip parses it (host bits allowed; no netmask form)."""
    if not value:
        raise ValueError_("empty address")
    try:
        if "/" in value:
            address, _, bits = value.partition("/")
            if not bits.isascii() or not bits.isdigit():
                raise ValueError_(f"invalid prefix length in {value!r}")
            return ipaddress.ip_network(f"{address}/{int(bits)}", strict=False)
        return ipaddress.ip_network(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError_(str(exc)) from exc


def ip_matcher(value: str) -> Matcher:
    network = parse_ip_block(value)

    def match(s: str) -> bool:
        try:
            return ipaddress.ip_address(s) in network
        except ValueError:
            return False

    return match


def parse_port(value: str) -> int:
    """istiod's convertToPort: a base-10 unsigned number up to 65535 (no sign, no spaces)."""
    if not value.isascii() or not value.isdigit() or int(value) > 65535:
        raise ValueError_(f"invalid port {value!r}")
    return int(value)


def bracketed(key: str, prefix: str) -> str:
    """`name` from `<prefix>[name]` (istiod's extractNameInBrackets)."""
    rest = key[len(prefix) :]
    if not rest.startswith("[") or not rest.endswith("]"):
        raise ValueError_(f"expecting format [<NAME>], found {rest!r}")
    return rest[1:-1]


def claim_path(key: str) -> tuple[str, ...]:
    """`request.auth.claims[a][b]` -> ("a", "b") (istiod's extractNameInNestedBrackets)."""
    s = key[len("request.auth.claims") :]
    claims: list[str] = []
    begin = 0
    while begin < len(s):
        end = -1
        if s[begin] == "[":
            for i in range(begin + 1, len(s)):
                if s[i] == "[":
                    break
                if s[i] == "]":
                    end = i
                    break
        if end == -1:
            return (bracketed(key, "request.auth.claims"),)
        claims.append(s[begin + 1 : end])
        begin = end + 1
    return tuple(claims)


def claim_values(claims: Mapping[str, Any] | None, path: Sequence[str]) -> list[str]:
    """The string values at a claim path: a string claim, or the strings of a list claim."""
    current: Any = claims
    for step in path:
        if not isinstance(current, Mapping):
            return []
        current = current.get(step)
    if isinstance(current, str):
        return [current]
    return [v for v in as_list(current) if isinstance(v, str)]


# --- conditions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One key of a rule: some value must match (if any are given), no not-value may match.
    `get` returns what the request has for the key ([] when absent): strings, or for request
    principals the claim set itself."""

    key: str
    side: str
    get: Callable[[Request], list[Any]]
    values: tuple[Callable[[Any], bool], ...]
    not_values: tuple[Callable[[Any], bool], ...]
    free: str = ""  # the free attribute it reads, if any
    literals: tuple[str, ...] = ()  # the values as written (for free-attribute samples)

    def test(self, request: Request) -> bool:
        got = self.get(request)
        if self.values and not any(m(v) for m in self.values for v in got):
            return False
        return not (self.not_values and any(m(v) for m in self.not_values for v in got))


def _one(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else []


def _uri(request: Request) -> list[str]:
    return [SPIFFE + request.principal] if request.principal is not None else []


def _free(name: str) -> Callable[[Request], list[str]]:
    return lambda r: _one(r.free.get(name))


def _claims_at(path: tuple[str, ...]) -> Callable[[Request], list[str]]:
    return lambda r: claim_values(r.claims, path)


def _token(request: Request) -> list[Mapping[str, Any]]:
    return [request.claims] if request.claims is not None else []


def _port_matcher(port: int) -> Matcher:
    return lambda s: s == str(port)


@dataclass(frozen=True)
class _Key:
    """How one attribute is read and how a value of it becomes a matcher."""

    side: str
    get: Callable[[Request], list[Any]]
    make: Callable[[str], Callable[[Any], bool]]
    free: str = ""


def _key(key: str, policy_namespace: str) -> _Key | None:
    """The attribute behind a source/operation field (internal `:` names) or a `when` key; None
    when istiod does not know it. Raises ValueError_ for a key it knows but cannot read."""
    if key == "source.principal":
        return _Key(PRINCIPAL, _uri, lambda v: string_matcher(v, SPIFFE))
    if key == "source.namespace":
        return _Key(PRINCIPAL, _uri, namespace_matcher)
    if key == "source.serviceAccount":
        return _Key(PRINCIPAL, _uri, lambda v: service_account_matcher(v, policy_namespace))
    if key == "source.trustDomain":
        return _Key(PRINCIPAL, _uri, trust_domain_matcher)
    if key == "source.ip":
        return _Key(PRINCIPAL, lambda r: [r.source_ip], ip_matcher)
    if key == "remote.ip":
        return _Key(PRINCIPAL, lambda r: [r.remote_ip], ip_matcher)
    if key == "request.auth.principal":
        return _Key(PRINCIPAL, _token, request_principal_matcher)
    if key == "request.auth.audiences":
        return _Key(PRINCIPAL, _claims_at(("aud",)), string_matcher)
    if key == "request.auth.presenter":
        return _Key(PRINCIPAL, _claims_at(("azp",)), string_matcher)
    if key.startswith("request.headers"):
        name = HEADER + bracketed(key, "request.headers").lower()
        return _Key(PRINCIPAL, _free(name), header_matcher, name)
    if key.startswith("request.auth.claims"):
        path = claim_path(key)
        return _Key(PRINCIPAL, _claims_at(path), string_matcher, CLAIM + ".".join(path))
    if key == "destination.ip":
        return _Key(PERMISSION, _free(FREE_DESTINATION_IP), ip_matcher, FREE_DESTINATION_IP)
    if key == "destination.port":
        return _Key(PERMISSION, lambda r: [str(r.port)], lambda v: _port_matcher(parse_port(v)))
    if key == "connection.sni":
        return _Key(PERMISSION, _free(FREE_SNI), string_matcher, FREE_SNI)
    if key.startswith("experimental.envoy.filters."):
        if "[" not in key:
            raise ValueError_(f"invalid key {key!r}")
        name = METADATA + key
        return _Key(PERMISSION, _free(name), string_matcher, name)
    if key == ":path":
        return _Key(PERMISSION, lambda r: [r.path], path_matcher)
    if key == ":method":
        return _Key(PERMISSION, lambda r: [r.method], header_matcher)
    if key == ":authority":
        return _Key(PERMISSION, _free(FREE_HOST), lambda v: header_matcher(v, True), FREE_HOST)
    return None


def known_when_key(key: str) -> bool:
    """Whether istiod knows a `when` key; an unknown one makes the whole rule invalid."""
    if key.startswith(":"):
        return False
    try:
        return _key(key, "") is not None
    except ValueError_:
        return True  # a known prefix with bad brackets: a generator error, per action


# Source fields and operation fields: (field, not-field, attribute key).
SOURCE_FIELDS: Final = (
    ("principals", "notPrincipals", "source.principal"),
    ("requestPrincipals", "notRequestPrincipals", "request.auth.principal"),
    ("serviceAccounts", "notServiceAccounts", "source.serviceAccount"),
    ("trustDomains", "notTrustDomains", "source.trustDomain"),
    ("namespaces", "notNamespaces", "source.namespace"),
    ("remoteIpBlocks", "notRemoteIpBlocks", "remote.ip"),
    ("ipBlocks", "notIpBlocks", "source.ip"),
)
OPERATION_FIELDS: Final = (
    ("hosts", "notHosts", ":authority"),
    ("methods", "notMethods", ":method"),
    ("paths", "notPaths", ":path"),
    ("ports", "notPorts", "destination.port"),
)


def strings(value: Any) -> list[str]:
    """A list field's values as istiod reads them: strings (an integral number is the same as
    its decimal string: a port given as a number is that port)."""
    out: list[str] = []
    for item in as_list(value):
        if isinstance(item, str):
            out.append(item)
        elif (number := as_int(item)) is not None:
            out.append(str(number))
    return out


def _condition(
    key: str, values: list[str], not_values: list[str], action: str, policy_namespace: str
) -> Condition | None:
    """One condition, None when it constrains nothing. Raises ValueError_ when istiod skips the
    rule (an ALLOW whose value cannot be converted)."""
    if not values and not not_values:
        return None  # istiod does not even look at the key
    try:
        spec = _key(key, policy_namespace)
    except ValueError_:
        if action == ALLOW:
            raise
        return None  # DENY/AUDIT: every value of the key fails alike and is dropped
    if spec is None:  # pragma: no cover - callers check known_when_key first
        raise ValueError_(f"unknown attribute {key!r}")

    def convert(raw: list[str]) -> tuple[Callable[[Any], bool], ...]:
        out: list[Callable[[Any], bool]] = []
        for value in raw:
            try:
                out.append(spec.make(value))
            except ValueError_:
                if action == ALLOW:
                    raise
                # DENY/AUDIT: this value is dropped on its own.
        return tuple(out)

    made, not_made = convert(values), convert(not_values)
    if not made and not not_made:
        return None
    return Condition(key, spec.side, spec.get, made, not_made, spec.free, (*values, *not_values))


# --- rules and policies ------------------------------------------------------------------------

Group = tuple[Condition, ...]  # AND-ed conditions (one Envoy principal or permission)


@dataclass(frozen=True)
class Rule:
    """A compiled rule: some principal group AND some permission group must match."""

    index: int
    principals: tuple[Group, ...]
    permissions: tuple[Group, ...]

    def matches(self, request: Request) -> bool:
        return any(all(c.test(request) for c in g) for g in self.principals) and any(
            all(c.test(request) for c in g) for g in self.permissions
        )

    def conditions(self) -> Iterable[Condition]:
        for group in (*self.principals, *self.permissions):
            yield from group


@dataclass(frozen=True)
class Compiled:
    """One AuthorizationPolicy as it takes effect on a sidecar."""

    obj: K8sObject
    action: str  # ALLOW / DENY / AUDIT / CUSTOM; "" for an action istiod ignores
    dry_run: bool
    rules: tuple[Rule, ...]  # the rules that were generated (skipped ones left out)
    skipped: tuple[tuple[int, str], ...]  # (rule index, why istiod skips it)
    uncertain: tuple[tuple[str, str], ...]  # (field path, why the pack cannot tell)

    @property
    def enforced(self) -> bool:
        """Whether it takes part in decisions (not dry-run, a deciding action)."""
        return not self.dry_run and self.action in (ALLOW, DENY)

    def matching_rule(self, request: Request) -> Rule | None:
        return next((r for r in self.rules if r.matches(request)), None)


def policy_action(obj: K8sObject) -> str:
    value = obj.spec.get("action")
    if value is None:
        return ALLOW
    text = as_str(value) or ""
    return text if text in ACTIONS else ""


def compile_policy(obj: K8sObject) -> Compiled:
    """The policy as istiod builds it. Never raises."""
    action = policy_action(obj)
    rules: list[Rule] = []
    skipped: list[tuple[int, str]] = []
    uncertain: list[tuple[str, str]] = []
    for path in ("spec", "spec.action", "metadata.annotations"):
        if obj.get(path) is UNKNOWN:
            uncertain.append((path, "value unknown until apply"))
    if as_map(obj.get("metadata.annotations")).get(DRY_RUN) is UNKNOWN:
        uncertain.append((f"metadata.annotations.{DRY_RUN}", "value unknown until apply"))
    namespace = obj.namespace or "default"
    raw_rules = obj.spec.get("rules")
    if raw_rules is UNKNOWN:
        uncertain.append(("spec.rules", "value unknown until apply"))
    for i, raw in enumerate(as_list(raw_rules)):
        at = f"spec.rules[{i}]"
        if raw is UNKNOWN:
            uncertain.append((at, "value unknown until apply"))
            continue
        if not isinstance(raw, Mapping):
            skipped.append((i, "not a rule"))  # istiod skips nil rules
            continue
        try:
            rules.append(compile_rule(i, raw, action, namespace))
        except ValueError_ as exc:
            skipped.append((i, str(exc)))
        except Uncertain as exc:
            uncertain.append((at, str(exc)))
    return Compiled(obj, action, is_dry_run(obj), tuple(rules), tuple(skipped), tuple(uncertain))


def compile_rule(index: int, rule: Mapping[str, Any], action: str, namespace: str) -> Rule:
    """Raises ValueError_ when istiod skips the rule, Uncertain when the pack cannot tell."""
    base_principal: list[Condition] = []
    base_permission: list[Condition] = []
    for condition in as_list(rule.get("when")):
        if condition is UNKNOWN:
            raise Uncertain("a `when` condition is unknown until apply")
        item = as_map(condition)
        key = item.get("key")
        if key is UNKNOWN or item.get("values") is UNKNOWN or item.get("notValues") is UNKNOWN:
            raise Uncertain("a `when` condition is unknown until apply")
        text = as_str(key) or ""
        if not known_when_key(text):
            raise ValueError_(f"unknown attribute {text!r}")
        built = _condition(
            text, strings(item.get("values")), strings(item.get("notValues")), action, namespace
        )
        if built is not None:
            (base_principal if built.side == PRINCIPAL else base_permission).append(built)
    principals = _groups(
        rule.get("from"), "source", SOURCE_FIELDS, base_principal, action, namespace
    )
    permissions = _groups(
        rule.get("to"), "operation", OPERATION_FIELDS, base_permission, action, namespace
    )
    return Rule(index, principals, permissions)


def _groups(
    entries: Any,
    inner: str,
    fields: tuple[tuple[str, str, str], ...],
    base: list[Condition],
    action: str,
    namespace: str,
) -> tuple[Group, ...]:
    if entries is UNKNOWN:
        raise Uncertain(f"`{'from' if inner == 'source' else 'to'}` is unknown until apply")
    items = as_list(entries)
    if not items:
        return (tuple(base),)
    groups: list[Group] = []
    for entry in items:
        if entry is UNKNOWN or as_map(entry).get(inner) is UNKNOWN:
            raise Uncertain(f"a `{inner}` is unknown until apply")
        body = as_map(as_map(entry).get(inner))
        conditions: list[Condition] = []
        for positive, negative, key in fields:
            if body.get(positive) is UNKNOWN or body.get(negative) is UNKNOWN:
                raise Uncertain(f"{inner}.{positive} is unknown until apply")
            both = (*as_list(body.get(positive)), *as_list(body.get(negative)))
            if any(v is UNKNOWN for v in both):
                raise Uncertain(f"a value of {inner}.{positive} is unknown until apply")
            built = _condition(
                key, strings(body.get(positive)), strings(body.get(negative)), action, namespace
            )
            if built is not None:
                conditions.append(built)
        # istiod puts the source/operation fields in front of the `when` conditions.
        groups.append((*conditions, *base))
    return tuple(groups)


# --- decisions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    allowed: bool
    by: Compiled | None  # the DENY that denied it, or the ALLOW that let it in
    rule: int = -1


def decide(policies: Sequence[Compiled], request: Request) -> Decision:
    """CUSTOM (passes), DENY, then ALLOW, over the enforced policies applying to a workload."""
    enforced = [p for p in policies if p.enforced]
    for policy in enforced:
        if policy.action == DENY:
            rule = policy.matching_rule(request)
            if rule is not None:
                return Decision(False, policy, rule.index)
    allows = [p for p in enforced if p.action == ALLOW]
    if not allows:
        return Decision(True, None)
    for policy in allows:
        rule = policy.matching_rule(request)
        if rule is not None:
            return Decision(True, policy, rule.index)
    return Decision(False, None)


__all__ = [
    "ALLOW",
    "AUDIT",
    "CUSTOM",
    "DENY",
    "Compiled",
    "Condition",
    "Decision",
    "Request",
    "Rule",
    "Uncertain",
    "compile_policy",
    "decide",
    "path_matcher",
    "policy_action",
]
