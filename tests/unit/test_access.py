"""The access model: roles -> methods/paths, rows of who may call what and when; each rule shown
both allowing and denying."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aimesh.builders import access, secure_model
from aimesh.builders.common import GatewayRef
from aimesh.builders.gateway import reference
from aimesh.settings import ModelSettings, Settings, parse
from tools import access_matrix

GATEWAY = GatewayRef(
    namespace="istio-ingress",
    name="aimesh-gateway",
    service_account="aimesh-ingressgateway",
    selector={"istio": "ingressgateway"},
    domain="models.example.com",
)


def stack(**overrides: Any) -> Settings:
    raw: dict[str, Any] = {
        "integrations": [
            {
                "name": "partner",
                "issuer": "https://idp.partner.example",
                "jwksUri": "https://idp.partner.example/jwks.json",
                "audiences": ["models"],
                "subjects": ["client-a"],
            },
            {
                "name": "anyone-at-idp",
                "issuer": "https://idp.other.example",
                "jwksUri": "https://idp.other.example/jwks.json",
                "audiences": ["models"],
            },
        ],
        "models": [
            {
                "name": "alpha",
                "format": "sklearn",
                "protocol": "v1",
                "storageUri": "gs://bucket/alpha",
                "callers": [
                    {"namespace": "apps", "serviceAccount": "web", "role": "invoke"},
                    {"namespace": "ops", "serviceAccount": "probe", "role": "read"},
                    {"namespace": "ml", "serviceAccount": "operator", "role": "admin"},
                    {
                        "namespace": "batch",
                        "serviceAccount": "nightly",
                        "role": "invoke",
                        "windows": [{"open": "0 1 * * *", "close": "0 3 * * *"}],
                    },
                ],
                "integrations": [{"name": "partner", "role": "invoke"}],
            },
            {
                "name": "beta",
                "format": "xgboost",
                "protocol": "v2",
                "storageUri": "s3://models/beta",
                "callers": [{"namespace": "crm", "serviceAccount": "backend", "role": "invoke"}],
                "integrations": [{"name": "anyone-at-idp", "role": "read"}],
            },
        ],
    }
    raw.update(overrides)
    return parse(raw)


def model(settings: Settings, name: str) -> ModelSettings:
    return next(m for m in settings.models if m.name == name)


def row_of(rows: list[access.AccessRow], caller: str) -> access.AccessRow:
    return next(r for r in rows if r.caller == caller)


@pytest.fixture
def alpha_rows() -> list[access.AccessRow]:
    settings = stack()
    return access.rows(settings, model(settings, "alpha"), GATEWAY)


@pytest.fixture
def beta_rows() -> list[access.AccessRow]:
    settings = stack()
    return access.rows(settings, model(settings, "beta"), GATEWAY)


# ---- roles on the v1 protocol ----------------------------------------------------------------


def test_invoke_caller_can_predict_and_read_but_not_reach_the_repository(
    alpha_rows: list[access.AccessRow],
) -> None:
    web = row_of(alpha_rows, "apps/web")
    assert access.row_allows(web, "POST", "/v1/models/alpha:predict")
    assert access.row_allows(web, "GET", "/v1/models/alpha")
    assert not access.row_allows(web, "POST", "/v2/repository/models/alpha/load")
    assert not access.row_allows(web, "POST", "/v2/repository/models/alpha/unload")
    assert not access.row_allows(web, "POST", "/v2/repository/index")
    assert not access.row_allows(web, "GET", "/metrics")
    # Right path, wrong method.
    assert not access.row_allows(web, "GET", "/v1/models/alpha:predict")
    assert not access.row_allows(web, "DELETE", "/v1/models/alpha")


def test_read_caller_cannot_predict(alpha_rows: list[access.AccessRow]) -> None:
    probe = row_of(alpha_rows, "ops/probe")
    assert access.row_allows(probe, "GET", "/v1/models/alpha")
    assert access.row_allows(probe, "GET", "/")
    assert not access.row_allows(probe, "POST", "/v1/models/alpha:predict")
    assert probe.to_dict()["methods"] == ["GET"]


def test_admin_may_load_and_unload_and_everything_else(alpha_rows: list[access.AccessRow]) -> None:
    operator = row_of(alpha_rows, "ml/operator")
    for method, path in [
        ("POST", "/v2/repository/models/alpha/load"),
        ("POST", "/v2/repository/models/alpha/unload"),
        ("POST", "/v2/repository/index"),
        ("POST", "/v1/models/alpha:predict"),
        ("GET", "/v1/models/alpha"),
        ("GET", "/metrics"),
        ("GET", "/v2/models/alpha/versions/1/stats"),
    ]:
        assert access.row_allows(operator, method, path), path


def test_roles_are_cumulative() -> None:
    settings = stack()
    m = model(settings, "alpha")
    read, invoke, admin = (
        {(meth, p) for op in access.operations(m, role) for meth in op.methods for p in op.paths}
        for role in ("read", "invoke", "admin")
    )
    assert read < invoke < admin


# ---- roles on the v2 protocol ----------------------------------------------------------------


def test_v2_paths(beta_rows: list[access.AccessRow]) -> None:
    backend = row_of(beta_rows, "crm/backend")
    assert access.row_allows(backend, "POST", "/v2/models/beta/infer")
    assert access.row_allows(backend, "POST", "/v2/models/beta/versions/3/infer")
    assert access.row_allows(backend, "GET", "/v2/models/beta/ready")
    assert access.row_allows(backend, "GET", "/v2/health/ready")
    assert not access.row_allows(backend, "POST", "/v2/repository/models/beta/load")
    assert not access.row_allows(backend, "POST", "/v1/models/beta:predict")  # not its protocol
    # `{*}` is exactly one segment: it cannot reach a nested path.
    assert not access.row_allows(backend, "POST", "/v2/models/beta/versions/3/x/infer")


def test_read_integration_on_v2_cannot_infer(beta_rows: list[access.AccessRow]) -> None:
    reader = row_of(beta_rows, "integration:anyone-at-idp")
    assert access.row_allows(reader, "GET", "/v2/models/beta")
    assert not access.row_allows(reader, "POST", "/v2/models/beta/infer")
    assert reader.request_principals == ("https://idp.other.example/*",)


# ---- model isolation ----------------------------------------------------------------------


def test_a_caller_of_alpha_has_no_rule_on_beta(
    alpha_rows: list[access.AccessRow], beta_rows: list[access.AccessRow]
) -> None:
    alpha_principals = {r.principal for r in alpha_rows if r.kind == "workload"}
    assert alpha_principals.isdisjoint({r.principal for r in beta_rows})
    # And no path granted on alpha names beta (or the other way round).
    for row in alpha_rows:
        assert not any(access.row_allows(row, m, "/v2/models/beta/infer") for m in ("GET", "POST"))
    for row in beta_rows:
        assert not any(access.row_allows(row, m, "/v1/models/alpha:predict") for m in ("POST",))


def test_integration_goes_through_the_gateway_with_its_token(
    alpha_rows: list[access.AccessRow],
) -> None:
    partner = row_of(alpha_rows, "integration:partner")
    assert partner.principal == "cluster.local/ns/istio-ingress/sa/aimesh-ingressgateway"
    assert partner.request_principals == ("https://idp.partner.example/client-a",)
    rule = partner.rule()
    assert rule["from"] == [
        {
            "source": {
                "principals": ["cluster.local/ns/istio-ingress/sa/aimesh-ingressgateway"],
                "requestPrincipals": ["https://idp.partner.example/client-a"],
            }
        }
    ]
    assert rule["when"] == [{"key": "request.auth.claims[aud]", "values": ["models"]}]


def test_workload_rule_names_exact_principal_methods_and_paths(
    alpha_rows: list[access.AccessRow],
) -> None:
    rule = row_of(alpha_rows, "apps/web").rule()
    assert rule["from"] == [{"source": {"principals": ["cluster.local/ns/apps/sa/web"]}}]
    for to in rule["to"]:
        op = to["operation"]
        assert op["methods"]
        assert op["paths"]
        # v1 grants are exact paths: no prefix or wildcard that could reach other endpoints.
        assert not any("*" in p for p in op["paths"])


def test_trust_domain_is_used() -> None:
    settings = stack(trustDomain="prod.example.com")
    rows = access.rows(settings, model(settings, "alpha"), GATEWAY)
    assert row_of(rows, "apps/web").principal == "prod.example.com/ns/apps/sa/web"


# ---- batch windows and the report -----------------------------------------------------------


def test_batch_caller_has_its_own_policy_and_window(alpha_rows: list[access.AccessRow]) -> None:
    nightly = row_of(alpha_rows, "batch/nightly")
    assert nightly.batch
    assert nightly.policy != access.allow_policy_name(model(stack(), "alpha"))
    assert nightly.when() == "opens `0 1 * * *`, closes `0 3 * * *` (Etc/UTC)"
    assert not row_of(alpha_rows, "apps/web").batch
    assert row_of(alpha_rows, "apps/web").when() == "always"


def test_rows_are_json_able(alpha_rows: list[access.AccessRow]) -> None:
    dumped = json.loads(json.dumps([r.to_dict() for r in alpha_rows]))
    assert {d["caller"] for d in dumped} == {
        "apps/web",
        "ops/probe",
        "ml/operator",
        "batch/nightly",
        "integration:partner",
    }


def test_admins_are_the_only_exempted(alpha_rows: list[access.AccessRow]) -> None:
    principals, request = access.admins(alpha_rows)
    assert principals == ["cluster.local/ns/ml/sa/operator"]
    assert request == []


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/v2/repository/*", "/v2/repository/models/x/load", True),
        ("/v2/repository/*", "/v2/repositoryx", False),
        ("/v2/repository*", "/v2/repository", True),
        ("*/stats", "/v2/models/a/versions/2/stats", True),
        ("/v1/models/a:predict", "/v1/models/a:predict", True),
        ("/v1/models/a:predict", "/v1/models/ab:predict", False),
        ("/v2/models/a/versions/{*}/infer", "/v2/models/a/versions/1/infer", True),
        ("/v2/models/a/versions/{*}/infer", "/v2/models/a/versions//infer", False),
        ("*/ready", "/v2/health/ready", True),
        ("*", "/anything", True),
    ],
)
def test_istio_path_semantics(pattern: str, path: str, expected: bool) -> None:
    assert access.path_matches(pattern, path) is expected


def test_short_names_stay_within_limits() -> None:
    long = "m" * 63
    assert len(access.short_name(long, "window-12345678", limit=40)) <= 40
    assert access.short_name("a", "b") == "a-b"
    assert access.short_name(long, "x") != access.short_name(long, "y")


# ---- the Markdown report ------------------------------------------------------------------


def test_report_is_built_from_the_same_rows() -> None:
    from tools import access_matrix

    settings = stack()
    report = access_matrix.render(settings, "test")
    for m in settings.models:
        for row in access.rows(settings, m, GATEWAY):
            assert f"`{row.caller}`" in report
            assert f"`{row.policy}`" in report
    assert "opens `0 1 * * *`, closes `0 3 * * *` (Etc/UTC)" in report


def test_committed_report_of_every_stack_is_current() -> None:
    from pathlib import Path

    from tools import access_matrix, offline

    committed = Path(__file__).resolve().parents[2] / "docs" / "access-matrix.md"
    expected = access_matrix.render_document(offline.stacks())
    assert committed.read_text() == expected, "docs/access-matrix.md is stale: run `make docs`"


def test_report_tool_fails_cleanly_on_an_unknown_stack(capsys: pytest.CaptureFixture[str]) -> None:
    from tools import access_matrix

    assert access_matrix.main(["--stack", "no-such-stack"]) == 2
    assert "Pulumi.no-such-stack.yaml" in capsys.readouterr().err


@pytest.mark.parametrize(
    "path",
    [
        "/v2/repository/index",
        "/v2/repository/models/alpha/load",
        "/v2/repository",
        "/metrics",
        "/metrics/",
        "/v2/logging",
        "/v2/trace/setting",
        "/v2/models/alpha/trace/setting",
        "/v2/models/stats",
        "/v2/models/alpha/versions/1/stats",
        "/v2/cudasharedmemory/region/x/register",
    ],
)
def test_operator_paths_only_for_admins(alpha_rows: list[access.AccessRow], path: str) -> None:
    alpha = model(stack(), "alpha")
    assert access.is_admin_path(alpha, path)
    for row in alpha_rows:
        allowed = any(access.row_allows(row, m, path) for m in ("GET", "POST"))
        assert allowed is (row.role == "admin"), (row.caller, path)


def test_no_read_or_invoke_path_is_an_operator_path() -> None:
    for m in stack().models:
        for path in [*access.read_paths(m), *access.invoke_paths(m)]:
            assert not access.is_admin_path(m, path.replace("{*}", "1")), path


@pytest.mark.parametrize(
    "path",
    [
        "//v2/repository/index",
        "/v2//repository/index",
        "/v2%2Frepository/index",
        "/v2/repository%2Findex",
        "/V2/REPOSITORY/INDEX",
        "/v2/repository/index/",
        "//metrics",
        "/v2/models/beta/versions/1/stats/",
    ],
)
def test_spellings_that_dodge_the_operator_deny_match_no_grant_either(path: str) -> None:
    # The mesh's default normalization (BASE) neither merges `//` nor decodes `%2F`, and
    # matching is case-sensitive: such a spelling may slip past the DENY of operator paths, so
    # it must not match any non-admin ALLOW either (exact paths, one-segment templates).
    settings = stack()
    for m in settings.models:
        for row in access.rows(settings, m, GATEWAY):
            if row.role == "admin":
                continue
            for method in ("GET", "POST"):
                assert not access.row_allows(row, method, path), (row.caller, method, path)


def test_audit_mode_marks_the_rows_and_adds_what_it_lets_in() -> None:
    audited = {
        "name": "iris",
        "format": "sklearn",
        "storageUri": "gs://b/iris",
        "callers": [{"namespace": "shop", "serviceAccount": "web"}],
        "authorization": {"mode": "audit", "reason": "TICKET-1", "until": "2027-01-15"},
    }
    settings = parse({"models": [audited]})
    objects = secure_model.build(settings, settings.models[0], reference(settings))
    matrix = objects.matrix()
    assert [r["enforcement"] for r in matrix[:-1]] == ["audit until 2027-01-15"]
    assert matrix[-1]["kind"] == "audit"
    assert matrix[-1]["principal"] == "cluster.local/*"
    assert matrix[-1]["policy"] == "iris-audit-mesh-peers"
    report = access_matrix.render(settings, "test")
    assert "**Audit mode until 2027-01-15** (TICKET-1)" in report
    enforced = parse({"models": [{**audited, "authorization": {"mode": "enforce"}}]})
    objects = secure_model.build(enforced, enforced.models[0], reference(enforced))
    assert [r["enforcement"] for r in objects.matrix()] == ["enforced"]
