"""An independent, literal reading of Istio's AuthorizationPolicy semantics, for property tests.

Written from the documentation and istiod's builder behaviour, NOT from the pack's code: every
field is tested by turning its pattern into a regular expression and reading the request
straight from a dict, one rule at a time, with the error rules spelled out case by case. Slow and
obvious on purpose; `tests/policy/test_effective_authz.py` checks the pack's evaluator against it.

A request is a dict: principal (None = plaintext), claims (None = no token), source_ip, method,
path, port, host, headers (lower-case names).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

KNOWN_WHEN = {
    "source.principal",
    "source.namespace",
    "source.ip",
    "remote.ip",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "destination.port",
    "destination.ip",
    "connection.sni",
    "source.serviceAccount",
    "source.trustDomain",
}


class Skip(Exception):  # noqa: N818
    """istiod skips the rule (ALLOW with an unconvertible value, or an unknown `when` key)."""


def glob(pattern: str) -> str:
    """Istio's string pattern as a regex: `*` alone = non-empty, `*x` = ends with x, `x*` =
    starts with x, anything else literal."""
    if pattern == "*":
        return ".+"
    if pattern.startswith("*"):
        return ".*" + re.escape(pattern[1:])
    if pattern.endswith("*"):
        return re.escape(pattern[:-1]) + ".*"
    return re.escape(pattern)


def path_regex(pattern: str) -> str:
    """A path pattern: with `{*}` (one non-empty segment) or `{**}` (the rest) it is a URI
    template, segment by segment; otherwise a string pattern."""
    if "{*}" not in pattern and "{**}" not in pattern:
        return glob(pattern)
    segments = []
    for segment in pattern.split("/"):
        if segment == "{*}":
            segments.append("[^/]+")
        elif segment == "{**}":
            segments.append(".*")
        else:
            segments.append(re.escape(segment))
    return "/".join(segments)


def full(regex: str, value: str | None, flags: int = 0) -> bool:
    return value is not None and re.fullmatch(regex, value, flags | re.DOTALL) is not None


def valid_port(value: str) -> bool:
    return value.isascii() and value.isdigit() and int(value) <= 65535


def valid_ip(value: str) -> bool:
    try:
        if "/" in value:
            address, bits = value.split("/", 1)
            if not bits.isdigit():
                return False
            ipaddress.ip_network(f"{address}/{int(bits)}", strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def in_block(ip: str, block: str) -> bool:
    if "/" in block:
        address, bits = block.split("/", 1)
        return ipaddress.ip_address(ip) in ipaddress.ip_network(
            f"{address}/{int(bits)}", strict=False
        )
    return ipaddress.ip_address(ip) == ipaddress.ip_address(block)


def namespace_of_principal(principal: str | None) -> str | None:
    if principal is None:
        return None
    parts = principal.split("/")
    return parts[2] if len(parts) >= 5 and parts[1] == "ns" and parts[3] == "sa" else None


def request_principal_ok(pattern: str, claims: dict[str, Any] | None) -> bool:
    if (
        claims is None
        or not isinstance(claims.get("iss"), str)
        or not isinstance(claims.get("sub"), str)
    ):
        return False
    iss, sub = str(claims["iss"]), str(claims["sub"])
    if pattern == "*":
        return iss != "" and sub != ""
    cut = pattern.rfind("/")
    if cut < 0:
        # No "/": a wildcard end stands for the whole other half.
        if pattern.startswith("*"):
            return iss != "" and sub.endswith(pattern[1:])
        if pattern.endswith("*"):
            return iss.startswith(pattern[:-1]) and sub != ""
        return iss == pattern and sub == ""
    want_iss, want_sub = pattern[:cut], pattern[cut + 1 :]
    if pattern.startswith("*"):
        iss_ok = iss != "" if want_iss == "*" else iss.endswith(want_iss[1:])
        return iss_ok and sub == want_sub
    if pattern.endswith("*"):
        sub_ok = sub != "" if want_sub == "*" else sub.startswith(want_sub[:-1])
        return iss == want_iss and sub_ok
    return iss == want_iss and sub == want_sub


def value_matches(key: str, pattern: str, request: dict[str, Any], policy_ns: str) -> bool:
    principal = request.get("principal")
    claims = request.get("claims")
    if key == "principals":
        return full(glob(pattern), principal)
    if key == "namespaces":
        ns = namespace_of_principal(principal)
        return full(".*".join(re.escape(p) for p in pattern.split("*")), ns)
    if key == "requestPrincipals":
        return request_principal_ok(pattern, claims)
    if key in ("ipBlocks", "source.ip"):
        return in_block(str(request["source_ip"]), pattern)
    if key in ("remoteIpBlocks", "remote.ip"):
        return in_block(str(request["source_ip"]), pattern)
    if key == "methods":
        return pattern == "*" or full(glob(pattern), str(request["method"]))
    if key == "paths":
        return full(path_regex(pattern), str(request["path"]))
    if key in ("ports", "destination.port"):
        return int(pattern) == int(request["port"])
    if key == "hosts":
        return pattern == "*" or full(glob(pattern), str(request["host"]), re.IGNORECASE)
    if key == "source.principal":
        return full(glob(pattern), principal)
    if key == "source.namespace":
        return value_matches("namespaces", pattern, request, policy_ns)
    if key == "request.auth.principal":
        return request_principal_ok(pattern, claims)
    if key == "request.auth.audiences":
        auds = (claims or {}).get("aud")
        auds = [auds] if isinstance(auds, str) else list(auds or [])
        return any(full(glob(pattern), a) for a in auds)
    if key.startswith("request.headers["):
        name = key[len("request.headers[") : -1].lower()
        value = dict(request["headers"]).get(name)
        return value is not None and (pattern == "*" or full(glob(pattern), str(value)))
    raise AssertionError(key)


def valid_value(key: str, value: str) -> bool:
    if key in ("ports", "destination.port"):
        return valid_port(value)
    if key in ("ipBlocks", "remoteIpBlocks", "source.ip", "remote.ip", "destination.ip"):
        return valid_ip(value)
    return True


def field_ok(
    key: str,
    values: list[str],
    not_values: list[str],
    request: dict[str, Any],
    action: str,
    ns: str,
) -> bool:
    if action == "ALLOW":
        if any(not valid_value(key, v) for v in values + not_values):
            raise Skip
    else:
        values = [v for v in values if valid_value(key, v)]
        not_values = [v for v in not_values if valid_value(key, v)]
    if values and not any(value_matches(key, v, request, ns) for v in values):
        return False
    return not (not_values and any(value_matches(key, v, request, ns) for v in not_values))


SOURCE = [
    ("principals", "notPrincipals"),
    ("requestPrincipals", "notRequestPrincipals"),
    ("namespaces", "notNamespaces"),
    ("ipBlocks", "notIpBlocks"),
    ("remoteIpBlocks", "notRemoteIpBlocks"),
]
OPERATION = [
    ("hosts", "notHosts"),
    ("methods", "notMethods"),
    ("paths", "notPaths"),
    ("ports", "notPorts"),
]


def check_convertible(rule: dict[str, Any]) -> None:
    """istiod builds a rule once, whatever the request: in an ALLOW, one value it cannot convert
    anywhere in the rule drops the whole rule."""
    fields = [
        (k, v)
        for f in rule.get("from") or []
        for pair in SOURCE
        for k in pair
        for v in (f.get("source") or {}).get(k) or []
    ]
    fields += [
        (k, v)
        for t in rule.get("to") or []
        for pair in OPERATION
        for k in pair
        for v in (t.get("operation") or {}).get(k) or []
    ]
    fields += [
        (c["key"], v)
        for c in rule.get("when") or []
        for v in (c.get("values") or []) + (c.get("notValues") or [])
    ]
    for key, value in fields:
        base = key[3].lower() + key[4:] if key.startswith("not") and key[3].isupper() else key
        if not valid_value(base, value):
            raise Skip
        if key.startswith("request.headers") and not (
            key.startswith("request.headers[") and key.endswith("]")
        ):
            raise Skip


def rule_matches(rule: dict[str, Any], request: dict[str, Any], action: str, ns: str) -> bool:
    """Raises Skip when istiod would drop the rule."""
    for condition in rule.get("when") or []:
        key = condition.get("key", "")
        if not (key in KNOWN_WHEN or key.startswith("request.headers")):
            raise Skip  # unknown attribute: the rule is invalid, whatever the action
    if action == "ALLOW":
        check_convertible(rule)
    when_ok = True
    for condition in rule.get("when") or []:
        key = condition["key"]
        if key.startswith("request.headers") and not (
            key.startswith("request.headers[") and key.endswith("]")
        ):
            if (condition.get("values") or condition.get("notValues")) and action == "ALLOW":
                raise Skip
            continue  # DENY: the key's values all fail to convert and are dropped
        if not field_ok(
            key,
            condition.get("values") or [],
            condition.get("notValues") or [],
            request,
            action,
            ns,
        ):
            when_ok = False
    froms = [f.get("source") or {} for f in rule.get("from") or []]
    tos = [t.get("operation") or {} for t in rule.get("to") or []]
    source_results = [
        all(field_ok(k, s.get(k) or [], s.get(nk) or [], request, action, ns) for k, nk in SOURCE)
        for s in froms
    ]
    operation_results = [
        all(
            field_ok(k, o.get(k) or [], o.get(nk) or [], request, action, ns) for k, nk in OPERATION
        )
        for o in tos
    ]
    source_ok = not froms or any(source_results)
    operation_ok = not tos or any(operation_results)
    return when_ok and source_ok and operation_ok


def dry_run(policy: dict[str, Any]) -> bool:
    value = ((policy.get("metadata") or {}).get("annotations") or {}).get("istio.io/dry-run")
    return value in ("1", "t", "T", "true", "TRUE", "True")


def allowed(policies: list[dict[str, Any]], request: dict[str, Any]) -> bool:
    """CUSTOM passes, DENY first, then ALLOW (none applying = allowed)."""
    live = [p for p in policies if not dry_run(p)]

    def action(p: dict[str, Any]) -> str:
        return (p.get("spec") or {}).get("action") or "ALLOW"

    def matches(p: dict[str, Any]) -> bool:
        ns = (p.get("metadata") or {}).get("namespace", "default")
        for rule in (p.get("spec") or {}).get("rules") or []:
            try:
                if rule_matches(rule, request, action(p), ns):
                    return True
            except Skip:
                continue
        return False

    if any(action(p) == "DENY" and matches(p) for p in live):
        return False
    allows = [p for p in live if action(p) == "ALLOW"]
    return not allows or any(matches(p) for p in allows)
