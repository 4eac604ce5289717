"""The pack's Istio authorization evaluator against Istio's semantics.

Named cases pin the rules that are easy to get wrong (each from istiod's builder: unknown `when`
keys, unconvertible values per action, dry-run, empty rules and policies, matching forms). The
property tests draw random policies from a vocabulary that reaches every field, wildcard form,
`not` form and error rule, and compare, over a grid of requests:

- `istio.decide` (the compiled evaluator, one request) with `bruteforce_authz.allowed`, a
  separate, literal reading of the same semantics;
- `access.grid` (the side-by-side bitmask evaluation over identities x routes, the caller
  choosing headers and host) with the brute force trying every header and host value itself.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from aimesh_policies.effective import access, istio
from aimesh_policies.effective.access import Identity, Route
from aimesh_policies.effective.istio import FREE_HOST, HEADER, Request, compile_policy, decide
from aimesh_policies.effective.workloads import Model
from aimesh_policies.objects import object_from_manifest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.policy import bruteforce_authz as bf

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


def policy(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": "m"}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": meta,
        "spec": spec,
    }


def compiled(*manifests: dict[str, Any]) -> list[istio.Compiled]:
    return [compile_policy(object_from_manifest(m)[0]) for m in manifests]


def engine_request(r: dict[str, Any]) -> Request:
    free = {FREE_HOST: r["host"], **{HEADER + k: v for k, v in r["headers"].items()}}
    return Request(
        r["principal"],
        r["claims"],
        r["source_ip"],
        r["source_ip"],
        r["method"],
        r["path"],
        r["port"],
        free,
    )


def req(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "principal": "cluster.local/ns/a/sa/x",
        "claims": None,
        "source_ip": "10.0.0.5",
        "method": "GET",
        "path": "/a",
        "port": 8080,
        "host": "m.example",
        "headers": {},
    }
    return {**base, **overrides}


def both(manifests: list[dict[str, Any]], request: dict[str, Any]) -> bool:
    mine = decide(compiled(*manifests), engine_request(request)).allowed
    assert mine == bf.allowed(manifests, request), (manifests, request)
    return mine


# --- named cases ----------------------------------------------------------------------------------


def test_no_policy_allows_and_allow_with_no_rules_allows_nothing() -> None:
    assert both([], req())
    assert not both([policy({})], req())


def test_empty_rule_allows_everything_and_deny_wins() -> None:
    allow_all = policy({"rules": [{}]})
    deny = policy({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/a"]}}]}]})
    assert both([allow_all], req(principal=None))
    assert not both([allow_all, deny], req())
    assert both([allow_all, deny], req(path="/b"))


def test_unknown_when_key_skips_the_rule_for_allow_and_deny() -> None:
    rule = {"when": [{"key": "request.regex.headers[x]", "values": ["1"]}]}
    assert not both([policy({"rules": [rule]})], req())  # ALLOW: matches nothing
    deny = policy({"action": "DENY", "rules": [rule]})
    assert both([deny], req())  # DENY: skipped too (istiod's model.New fails the rule)


def test_unconvertible_value_skips_allow_rule_but_drops_only_the_value_in_deny() -> None:
    bad_port = {"to": [{"operation": {"ports": ["http"]}}]}
    assert not both([policy({"rules": [bad_port]})], req())
    # DENY: the bad value is dropped; with nothing left the field constrains nothing.
    assert not both([policy({"action": "DENY", "rules": [bad_port]})], req())
    mixed = {"to": [{"operation": {"ports": ["http", "9090"]}}]}
    assert both([policy({"action": "DENY", "rules": [mixed]})], req())
    assert not both([policy({"action": "DENY", "rules": [mixed]})], req(port=9090))


def test_header_key_without_brackets() -> None:
    rule = {"when": [{"key": "request.headers", "values": ["1"]}]}
    assert not both([policy({"rules": [rule]})], req())
    assert not both([policy({"action": "DENY", "rules": [rule]})], req())  # denies everything


def test_dry_run_and_custom_and_audit_decide_nothing() -> None:
    deny_all = {"action": "DENY", "rules": [{}]}
    assert both([policy(deny_all, {"istio.io/dry-run": "true"})], req())
    assert not both([policy(deny_all, {"istio.io/dry-run": "yes"})], req())  # not a Go bool
    assert both([policy({"action": "CUSTOM", "provider": {"name": "x"}, "rules": [{}]})], req())
    assert both([policy({"action": "AUDIT", "rules": [{}]})], req())


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("/a*", "/abc", True),
        ("*/b", "/x/b", True),
        ("*", "/", True),
        ("/a*b", "/a*b", True),  # a star inside is literal
        ("/a*b", "/axb", False),
        ("/v2/{*}/infer", "/v2/m/infer", True),
        ("/v2/{*}/infer", "/v2/m/n/infer", False),
        ("/v2/{*}/infer", "/v2//infer", False),
        ("/x/{**}", "/x/a/b", True),
        ("/x/{**}", "/x/", True),
    ],
)
def test_path_forms(pattern: str, value: str, matches: bool) -> None:
    manifest = policy({"rules": [{"to": [{"operation": {"paths": [pattern]}}]}]})
    assert decide(compiled(manifest), engine_request(req(path=value))).allowed is matches


def test_hosts_ignore_case_methods_do_not() -> None:
    manifest = policy({"rules": [{"to": [{"operation": {"hosts": ["M.Example"]}}]}]})
    assert both([manifest], req(host="m.example"))
    manifest = policy({"rules": [{"to": [{"operation": {"methods": ["get"]}}]}]})
    assert not both([manifest], req())


@pytest.mark.parametrize(
    ("pattern", "claims", "matches"),
    [
        ("https://iss/sub", {"iss": "https://iss", "sub": "sub"}, True),
        ("https://iss/*", {"iss": "https://iss", "sub": "any"}, True),
        ("https://iss/*", {"iss": "https://other", "sub": "any"}, False),
        ("*", {"iss": "i", "sub": "s"}, True),
        ("*/s", {"iss": "i", "sub": "s"}, True),
        ("https://iss/sub", None, False),
    ],
)
def test_request_principals(pattern: str, claims: dict[str, str] | None, matches: bool) -> None:
    manifest = policy({"rules": [{"from": [{"source": {"requestPrincipals": [pattern]}}]}]})
    assert both([manifest], req(claims=claims)) is matches


def test_not_principals_admits_plaintext() -> None:
    manifest = policy({"rules": [{"from": [{"source": {"notPrincipals": ["x/ns/a/sa/b"]}}]}]})
    assert both([manifest], req(principal=None))


def test_uncertain_template_and_unknowns_are_reported_not_guessed() -> None:
    bad = policy({"rules": [{"to": [{"operation": {"paths": ["/a/{*}x"]}}]}]})
    assert compiled(bad)[0].uncertain
    unknown = policy({"rules": [{"from": [{"source": {"principals": ["<unknown>"]}}]}]})
    unknown["spec"]["rules"][0]["from"][0]["source"]["principals"] = [
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    ]
    assert compiled(unknown)[0].uncertain


# --- property tests -------------------------------------------------------------------------------

PRINCIPALS = ["cluster.local/ns/a/sa/x", "cluster.local/ns/b/sa/y", "*", "cluster.local/ns/a/*"]
PRINCIPALS += ["*/sa/x", "*/ns/b/sa/y"]
NAMESPACES = ["a", "b", "*", "a*", "*b", "c"]
REQUEST_PRINCIPALS = ["iss1/sub1", "iss1/*", "*", "*/sub1", "iss2/sub2", "iss1"]
IP_BLOCKS = ["10.0.0.0/8", "192.168.1.1", "not-an-ip", "10.1.2.3/33", "172.16.0.0/12"]
METHODS = ["GET", "POST", "*", "P*", "*T"]
PATHS = ["/a", "/a*", "*/b", "*", "/v2/{*}/infer", "/x/{**}", "/"]
PORTS = ["8080", "9090", "http", "70000"]
HOSTS = ["m.example", "*.example", "*", "M.EXAMPLE", "other.test"]
WHEN = [
    ("request.headers[x-a]", ["1", "*", "2*"]),
    ("request.headers", ["1"]),
    ("unknown.key", ["1"]),
    ("source.namespace", ["a", "b*"]),
    ("request.auth.audiences", ["aud1", "aud*"]),
    ("destination.port", ["8080", "bad"]),
    ("source.ip", ["10.0.0.0/8", "bad"]),
    ("source.principal", ["cluster.local/ns/b/sa/y", "*"]),
]


def _maybe(values: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), max_size=2, unique=True)


@st.composite
def source(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, vocab in (
        ("principals", PRINCIPALS),
        ("namespaces", NAMESPACES),
        ("requestPrincipals", REQUEST_PRINCIPALS),
        ("ipBlocks", IP_BLOCKS),
        ("remoteIpBlocks", IP_BLOCKS),
    ):
        for name in (field, "not" + field[0].upper() + field[1:]):
            if draw(st.integers(0, 5)) == 0:
                out[name] = draw(_maybe(vocab))
    return out


@st.composite
def operation(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, vocab in (
        ("methods", METHODS),
        ("paths", PATHS),
        ("ports", PORTS),
        ("hosts", HOSTS),
    ):
        for name in (field, "not" + field[0].upper() + field[1:]):
            if draw(st.integers(0, 4)) == 0:
                out[name] = draw(_maybe(vocab))
    return out


@st.composite
def rule(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["from"] = [{"source": s} for s in draw(st.lists(source(), max_size=2))]
    if draw(st.booleans()):
        out["to"] = [{"operation": o} for o in draw(st.lists(operation(), max_size=2))]
    if draw(st.integers(0, 2)) == 0:
        key, vocab = draw(st.sampled_from(WHEN))
        values = draw(_maybe(vocab))
        out["when"] = [{"key": key, draw(st.sampled_from(["values", "notValues"])): values}]
    return out


@st.composite
def policies(draw: st.DrawFn) -> list[dict[str, Any]]:
    found = []
    for _ in range(draw(st.integers(1, 3))):
        spec: dict[str, Any] = {"action": draw(st.sampled_from(["ALLOW", "DENY", "AUDIT"]))}
        rules: list[dict[str, Any]] = draw(st.lists(rule(), max_size=3))
        keep_empty: bool = draw(st.booleans())
        if rules or keep_empty:
            spec["rules"] = rules
        dry = {"istio.io/dry-run": "true"} if draw(st.integers(0, 6)) == 0 else None
        found.append(policy(spec, dry))
    return found


CLAIMS = [
    None,
    {"iss": "iss1", "sub": "sub1", "aud": ["aud1"]},
    {"iss": "iss2", "sub": "sub2", "aud": "audX"},
]
REQUESTS = [
    req(
        principal=p,
        claims=c,
        source_ip=ip,
        method=m,
        path=path,
        port=port,
        host=host,
        headers=headers,
    )
    for p, c, ip, m, path, port, host, headers in itertools.product(
        [None, "cluster.local/ns/a/sa/x", "cluster.local/ns/b/sa/y", "other.td/ns/c/sa/x"],
        CLAIMS,
        ["10.0.0.5", "192.168.1.1"],
        ["GET", "POST", "PUT"],
        ["/a", "/ab", "/x/b", "/v2/m/infer", "/x/y/z", "/"],
        [8080, 9090],
        ["m.example", "Other.Test"],
        [{}, {"x-a": "1"}, {"x-a": "2x"}],
    )
]


@SETTINGS
@given(policies(), st.lists(st.sampled_from(range(len(REQUESTS))), min_size=20, max_size=40))
def test_compiled_evaluator_agrees_with_brute_force(
    manifests: list[dict[str, Any]], picks: list[int]
) -> None:
    engine = compiled(*manifests)
    for i in picks:
        request = REQUESTS[i]
        assert decide(engine, engine_request(request)).allowed == bf.allowed(manifests, request), (
            manifests,
            request,
        )


IDENTITIES = [
    Identity("plaintext", None),
    Identity("a/x", "cluster.local/ns/a/sa/x"),
    Identity("b/y", "cluster.local/ns/b/sa/y", {"iss": "iss1", "sub": "sub1", "aud": ["aud1"]}),
    Identity("c/x at 192.168.1.1", "other.td/ns/c/sa/x", source_ip="192.168.1.1"),
]
ROUTES = [
    Route(m, p, port)
    for m, p, port in itertools.product(
        ["GET", "POST"], ["/a", "/x/b", "/v2/m/infer", "/"], [8080, 9090]
    )
]


def _instances(value: str) -> str:
    # The brute force's own concrete value for a pattern (not the pack's).
    if value == "*":
        return "zz"
    if value.startswith("*"):
        return "zz" + value[1:]
    if value.endswith("*"):
        return value[:-1] + "zz"
    return value


def _choices(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every host and x-a header value worth trying, read from the manifests by the test."""
    hosts: set[str] = {"probe.invalid"}
    headers: set[str | None] = {None}
    for manifest in manifests:
        for r in manifest["spec"].get("rules") or []:
            for t in r.get("to") or []:
                operation = t.get("operation") or {}
                for value in operation.get("hosts", []) + operation.get("notHosts", []):
                    hosts.add(_instances(value))
            for w in r.get("when") or []:
                if w["key"] == "request.headers[x-a]":
                    for value in w.get("values", []) + w.get("notValues", []):
                        headers.add(_instances(value))
    return [
        {"host": h, "headers": {} if v is None else {"x-a": v}}
        for h, v in itertools.product(sorted(hosts), sorted(headers, key=str))
    ]


@SETTINGS
@given(policies())
def test_grid_agrees_with_brute_force_over_caller_choices(manifests: list[dict[str, Any]]) -> None:
    engine = compiled(*manifests)
    model = Model("m", "m", pods=[{}])
    combos = access.samples(access.free_values(model, engine))
    assert combos is not None
    result = access.grid(IDENTITIES, ROUTES, engine, list(combos))
    choices = _choices(manifests)
    for (i, identity), (r, route) in itertools.product(enumerate(IDENTITIES), enumerate(ROUTES)):
        expected = any(
            bf.allowed(
                manifests,
                req(
                    principal=identity.principal,
                    claims=identity.claims,
                    source_ip=identity.source_ip,
                    method=route.method,
                    path=route.path,
                    port=route.port,
                    **choice,
                ),
            )
            for choice in choices
        )
        assert ((i, r) in result.allowed) == expected, (manifests, identity, route)
