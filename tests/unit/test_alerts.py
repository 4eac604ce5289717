"""Every PromQL expression aimesh ships parses with a real PromQL parser and refers only to
metrics and labels that Istio / Envoy / cert-manager / the collector really emit
(builders/alerts.py KNOWN_METRICS, each entry with its upstream source); thresholds follow
the stack config."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from aimesh.builders import access, alerts, dashboard
from aimesh.settings import ConfigError, Settings, parse

MODEL = {
    "name": "iris",
    "format": "sklearn",
    "storageUri": "gs://bucket/iris",
    # A batch caller: the window alerts apply.
    "callers": [
        {
            "namespace": "batch",
            "serviceAccount": "nightly",
            "windows": [{"open": "0 1 * * *", "close": "0 3 * * *"}],
        }
    ],
}
OTHER = {"name": "churn", "namespace": "churn-ns", "format": "sklearn", "storageUri": "gs://b/c"}


def _settings(**extra: Any) -> Settings:
    return parse({"models": [MODEL, OTHER], **extra})


# ---- a small checker over the parser's AST ------------------------------------------------


def _known_labels(name: str) -> frozenset[str] | None:
    """Labels of an exact metric name (a known family or a recorded series), None if unknown."""
    if name in alerts.RECORDED_LABELS:
        return alerts.RECORDED_LABELS[name]
    for family in alerts.KNOWN_METRICS:
        if name in family.names:
            return family.labels
    return None


def _selector_labels(selector: Any) -> frozenset[str]:
    """The labels a vector selector's series carry; fails on unknown metrics/labels."""
    matchers = list(selector.matchers.matchers)
    name_regexes = [m.value for m in matchers if m.name == "__name__"]
    if selector.name:
        labels = _known_labels(selector.name)
        assert labels is not None, f"unknown metric {selector.name!r}"
    else:
        # A name regex (Envoy's listener-embedding names): it must match a documented example
        # of exactly one family.
        assert len(name_regexes) == 1, f"selector without a metric name: {selector}"
        pattern = re.compile(name_regexes[0])
        families = [f for f in alerts.KNOWN_METRICS if any(pattern.fullmatch(n) for n in f.names)]
        assert len(families) == 1, (
            f"name regex {pattern.pattern!r} matches {len(families)} families"
        )
        labels = families[0].labels
    for matcher in matchers:
        if matcher.name != "__name__":
            assert matcher.name in labels, f"{selector}: label {matcher.name!r} is not emitted"
    return labels


def _labels_of(expr: Any) -> frozenset[str]:
    """The label names the result of `expr` can carry, checking every selector, grouping and
    vector-matching label on the way."""
    if isinstance(expr, promql_parser.VectorSelector):
        return _selector_labels(expr)
    if isinstance(expr, promql_parser.MatrixSelector):
        return _selector_labels(expr.vector_selector)
    if isinstance(expr, promql_parser.SubqueryExpr | promql_parser.ParenExpr):
        return _labels_of(expr.expr)
    if isinstance(expr, promql_parser.UnaryExpr):
        return _labels_of(expr.expr)
    if isinstance(expr, promql_parser.NumberLiteral | promql_parser.StringLiteral):
        return frozenset()
    if isinstance(expr, promql_parser.Call):
        inner: frozenset[str] = frozenset()
        for arg in expr.args:
            inner |= _labels_of(arg)
        # histogram_quantile consumes the bucket boundary label.
        return inner - {"le"} if expr.func.name == "histogram_quantile" else inner
    if isinstance(expr, promql_parser.AggregateExpr):
        inner = _labels_of(expr.expr)
        if expr.param is not None:
            _labels_of(expr.param)
        modifier = expr.modifier
        if modifier is None:
            return frozenset()
        for label in modifier.labels:
            assert label in inner, f"`{modifier}`: {label!r} is not a label of {expr.expr}"
        if modifier.type == promql_parser.AggModifierType.By:
            return frozenset(modifier.labels)
        return inner - set(modifier.labels)
    if isinstance(expr, promql_parser.BinaryExpr):
        left, right = _labels_of(expr.lhs), _labels_of(expr.rhs)
        matching = expr.modifier.matching if expr.modifier is not None else None
        if matching is not None:
            for label in matching.labels:
                assert label in left, f"`{matching}`: {label!r} not on the left side"
                assert label in right, f"`{matching}`: {label!r} not on the right side"
        return left or right
    raise AssertionError(f"unexpected PromQL node {type(expr).__name__}: {expr}")


def check(expr: str) -> frozenset[str]:
    return _labels_of(promql_parser.parse(expr))


def _rule_expressions(settings: Settings) -> Iterator[tuple[str, str]]:
    for group in alerts.prometheus_rule(settings)["spec"]["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


# ---- the checker itself must catch mistakes --------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        'rate(istio_request_total{reporter="destination"}[5m])',  # metric typo
        'rate(istio_requests_total{response_status="401"}[5m])',  # label typo
        "sum by (model) (rate(istio_requests_total[5m]))",  # grouping by a label never emitted
        'sum by (pod) (rate({__name__=~"envoy_.+_rbac_denyd"}[5m]))',  # regex matches nothing
        "certmanager_certificate_expiry_seconds - time()",  # made-up cert-manager metric
        "a:b:c > 1",  # an unrecorded series
    ],
)
def test_checker_rejects_unknown_metrics_and_labels(bad: str) -> None:
    with pytest.raises(AssertionError):
        check(bad)


def test_checker_rejects_unparsable_promql() -> None:
    with pytest.raises(ValueError, match=r".+"):
        promql_parser.parse("sum by (a (rate(x[5m]))")


# ---- the shipped expressions ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name_expr",
    list(_rule_expressions(_settings())),
    ids=lambda pair: pair[0],
)
def test_every_rule_expression_parses_and_uses_emitted_metrics(name_expr: tuple[str, str]) -> None:
    check(name_expr[1])


@pytest.mark.parametrize("panel", dashboard.panels(_settings()), ids=lambda p: p[0])
def test_every_dashboard_query_parses_and_uses_emitted_metrics(panel: tuple[str, ...]) -> None:
    # Grafana substitutes the template variable before the query reaches Prometheus.
    expr = panel[1].replace(dashboard.MODEL_VAR, ".+")
    check(expr)


def test_recorded_series_carry_the_model_labels_they_declare() -> None:
    for rule in alerts.recording_rules(_settings()):
        assert check(rule["expr"]) == alerts.RECORDED_LABELS[rule["record"]]


def test_model_rules_only_look_at_the_configured_models_server_side() -> None:
    for rule in alerts.recording_rules(_settings()):
        assert 'reporter="destination"' in rule["expr"]
        assert 'destination_service_namespace=~"churn-ns|iris"' in rule["expr"]


# ---- thresholds come from config --------------------------------------------------------------


def _alert(settings: Settings, name: str) -> alerts.Alert:
    return next(a for a in alerts.alerts(settings) if a.name == name)


@pytest.mark.parametrize(
    ("key", "value", "alert", "expected"),
    [
        ("alertAuthFailuresPerSecond", "2.5", "AimeshAuthenticationFailures", "> 2.5"),
        ("alertAuthzDenialsPerSecond", "0.25", "AimeshAuthorizationDenials", "> 0.25"),
        ("alertPolicyDenialsPerSecond", "7", "AimeshPolicyDenials", "> 7"),
        ("alertVolumeFactor", "4.5", "AimeshUnusualRequestVolume", "> 4.5 * avg_over_time"),
        ("alertResponseBytesFactor", "10", "AimeshUnusualResponseVolume", "> 10 * avg_over_time"),
        ("alertBaselineWindow", "7d", "AimeshUnusualRequestVolume", "[7d] offset 1h"),
        ("alertMinRequestsPerSecond", "2", "AimeshModelErrorRate", "rate5m > 2"),
        ("alertErrorRatio", "0.2", "AimeshModelErrorRate", "ratio5m > 0.2"),
        ("alertLatencyP99Ms", 750, "AimeshModelLatencyHigh", "> 750"),
        ("alertCertExpiryDays", 3, "AimeshCertificateExpiringSoon", "< 259200"),
        ("alertMeshRootExpiryDays", 3, "AimeshMeshRootCertExpiringSoon", "< 259200"),
    ],
)
def test_thresholds_come_from_config(key: str, value: Any, alert: str, expected: str) -> None:
    expr = _alert(_settings(**{key: value}), alert).expr
    assert expected in expr
    check(expr)


def test_pending_duration_and_runbook_on_every_alert() -> None:
    rule = alerts.prometheus_rule(_settings(alertPendingFor="10m"))
    security = next(g for g in rule["spec"]["groups"] if g["name"] == "aimesh-security")
    assert {r["for"] for r in security["rules"]} == {"10m"}
    for r in security["rules"]:
        assert r["labels"]["severity"] in {"critical", "warning"}
        assert r["annotations"]["runbook"] == f"docs/runbooks/{r['alert']}.md"


@pytest.mark.parametrize("value", ["5 minutes", "1.5h", "0m", "-1h"])
def test_bad_durations_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="Prometheus duration"):
        parse({"alertBaselineWindow": value})


@pytest.mark.parametrize(
    ("key", "value"),
    [("alertVolumeFactor", "1.0"), ("alertErrorRatio", "1.5"), ("alertAuthFailuresPerSecond", "0")],
)
def test_thresholds_that_would_always_fire_are_refused(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse({key: value})


def test_without_models_only_platform_alerts_remain() -> None:
    settings = parse({})
    rule = alerts.prometheus_rule(settings)
    assert [g["name"] for g in rule["spec"]["groups"]] == ["aimesh-security"]
    names = {a.name for a in alerts.active_alerts(settings)}
    assert "AimeshUnusualRequestVolume" not in names
    assert {"AimeshAuthenticationFailures", "AimeshCertificateExpiringSoon"} <= names
    for _, expr in _rule_expressions(settings):
        check(expr)


def test_every_known_metric_family_names_its_source() -> None:
    for family in alerts.KNOWN_METRICS:
        assert family.source.strip(), family.names


# ---- runbooks -----------------------------------------------------------------------------------

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"


def _promql_blocks(text: str) -> list[str]:
    """Queries of the ```promql blocks: one per line, indented lines continue the previous."""
    queries: list[str] = []
    for block in re.findall(r"```promql\n(.*?)```", text, flags=re.DOTALL):
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and queries:
                queries[-1] += " " + line.strip()
            else:
                queries.append(line.strip())
    return queries


@pytest.mark.parametrize("alert", [a.name for a in alerts.alerts(_settings())])
def test_every_alert_has_a_runbook_with_checked_queries(alert: str) -> None:
    path = RUNBOOKS / f"{alert}.md"
    assert path.is_file(), f"missing runbook {path}"
    text = path.read_text()
    for section in ("## What it means", "## Investigate", "## What to do"):
        assert section in text, f"{path.name}: no '{section}'"
    queries = _promql_blocks(text)
    assert queries, f"{path.name}: no PromQL to investigate with"
    for query in queries:
        check(query)
    assert "```sh" in text, f"{path.name}: no access-log / kubectl commands"


def test_no_runbook_without_an_alert() -> None:
    names = {a.name for a in alerts.alerts(_settings())}
    assert {p.stem for p in RUNBOOKS.glob("*.md")} <= names


# ---- semantics: what the platform alerts return on given samples --------------------------------

NOW = 1_800_000_000.0
DAY = 86400.0
Sample = tuple[dict[str, str], float]


def _identity(labels: dict[str, str]) -> frozenset[tuple[str, str]]:
    # Vector matching ignores the metric name.
    return frozenset((k, v) for k, v in labels.items() if k != "__name__")


def _evaluate(expr: Any, series: dict[str, list[Sample]]) -> list[Sample] | float:
    """A minimal instant-query evaluator (plain selectors, time(), numbers, arithmetic and
    comparisons with a scalar, `and`), enough to run the certificate expressions."""
    if isinstance(expr, promql_parser.NumberLiteral):
        return float(expr.val)
    if isinstance(expr, promql_parser.ParenExpr):
        return _evaluate(expr.expr, series)
    if isinstance(expr, promql_parser.Call) and expr.func.name == "time":
        return NOW
    if isinstance(expr, promql_parser.VectorSelector):
        assert expr.name, "only plain selectors are supported"
        assert not list(expr.matchers.matchers), "only plain selectors are supported"
        name = str(expr.name)
        return [({"__name__": name, **labels}, v) for labels, v in series.get(name, [])]
    assert isinstance(expr, promql_parser.BinaryExpr), f"unsupported node {expr}"
    op = str(expr.op)
    lhs, rhs = _evaluate(expr.lhs, series), _evaluate(expr.rhs, series)
    if op == "and":
        assert isinstance(lhs, list)
        assert isinstance(rhs, list)
        right = {_identity(labels) for labels, _ in rhs}
        return [(labels, v) for labels, v in lhs if _identity(labels) in right]
    arithmetic = {
        "+": float.__add__,
        "-": float.__sub__,
        "*": float.__mul__,
        "/": float.__truediv__,
    }
    compare = {"<": float.__lt__, ">": float.__gt__, "<=": float.__le__, ">=": float.__ge__}
    if isinstance(lhs, float) and isinstance(rhs, float):
        return arithmetic[op](lhs, rhs)
    assert isinstance(lhs, list), "vector <op> scalar only"
    assert isinstance(rhs, float), "vector <op> scalar only"
    if op in arithmetic:
        return [
            ({k: v for k, v in labels.items() if k != "__name__"}, arithmetic[op](v, rhs))
            for labels, v in lhs
        ]
    return [(labels, v) for labels, v in lhs if compare[op](v, rhs)]


def _certificates() -> dict[str, list[Sample]]:
    def cert(name: str, expiry: float) -> Sample:
        return ({"namespace": "istio-ingress", "name": name, "issuer_name": "ca"}, expiry)

    return {
        alerts.CERT_EXPIRY: [
            cert("soon", NOW + 2 * DAY),
            cert("fine", NOW + 60 * DAY),
            # cert-manager's value for a Certificate with no status.notAfter yet (never issued).
            cert("pending", 0.0),
        ]
    }


def test_certificate_alert_fires_for_expiring_certificates_not_for_unissued_ones() -> None:
    expr = _alert(_settings(alertCertExpiryDays=14), "AimeshCertificateExpiringSoon").expr
    fired = _evaluate(promql_parser.parse(expr), _certificates())
    assert isinstance(fired, list)
    assert [labels["name"] for labels, _ in fired] == ["soon"]


def test_certificate_panel_leaves_out_unissued_certificates() -> None:
    expr = next(
        p[1] for p in dashboard.panels(_settings()) if p[0] == "Days until certificate expiry"
    )
    shown = _evaluate(promql_parser.parse(expr), _certificates())
    assert isinstance(shown, list)
    assert {labels["name"]: round(v) for labels, v in shown} == {"soon": 2, "fine": 60}


# ---- the mesh CA's alerts in every mode ---------------------------------------------------------


def _mesh_modes() -> dict[str, Settings]:
    from tests import certs

    roots = [{"name": name, "pem": certs.root(name).pem} for name in ("corp-root-a", "corp-root-b")]
    existing = {"meshCa": "cert-manager", "meshCaIssuer": "existing", "meshTrustRoots": roots}
    intermediate = certs.intermediate("corp-int-a", "corp-root-a")
    return {
        "istiod": _settings(),
        "self-signed": _settings(meshCa="cert-manager"),
        "intermediate": _settings(
            **existing, meshCaCertificate=intermediate.pem, meshCaKey=intermediate.key_pem
        ),
        "cluster-issuer": _settings(
            **existing,
            meshCaIssuingRoot="corp-root-a",
            meshCaIssuerName="vault",
            meshCaIssuerKind="ClusterIssuer",
        ),
        "external-issuer": _settings(
            **existing,
            meshCaIssuingRoot="corp-root-a",
            meshCaIssuerName="pca",
            meshCaIssuerKind="AWSPCAIssuer",
            meshCaIssuerGroup="awspca.cert-manager.io",
        ),
    }


@pytest.mark.parametrize("mode", list(_mesh_modes()))
def test_mesh_ca_alerts_use_emitted_metrics_in_every_mode(mode: str) -> None:
    settings = _mesh_modes()[mode]
    names = {a.name for a in alerts.active_alerts(settings)}
    assert ("AimeshMeshCertIssuanceFailing" in names) == (mode != "istiod")
    for name, expr in _rule_expressions(settings):
        if name.startswith("AimeshMesh"):
            check(expr)


def test_issuance_alert_watches_the_issuer_that_is_configured() -> None:
    modes = _mesh_modes()
    assert 'certmanager_issuer_ready_status{namespace="istio-system", name="aimesh-mesh-ca"' in (
        _alert(modes["self-signed"], "AimeshMeshCertIssuanceFailing").expr
    )
    assert 'certmanager_clusterissuer_ready_status{name="vault"' in (
        _alert(modes["cluster-issuer"], "AimeshMeshCertIssuanceFailing").expr
    )
    external = _alert(modes["external-issuer"], "AimeshMeshCertIssuanceFailing").expr
    assert "issuer_ready_status" not in external  # cert-manager does not report external issuers
    assert 'grpc_method="CreateCertificate", grpc_code!="OK"' in external


def _evaluate_roots(expr: Any) -> list[Sample]:
    """The static-root expiry expression: `label_replace(vector(t), ...) - time()` joined by
    `or`, compared with a threshold."""
    if isinstance(expr, promql_parser.ParenExpr):
        return _evaluate_roots(expr.expr)
    assert isinstance(expr, promql_parser.BinaryExpr)
    op = str(expr.op)
    if op == "or":
        return _evaluate_roots(expr.lhs) + _evaluate_roots(expr.rhs)
    if op == "<":
        rhs: Any = expr.rhs
        return [(labels, v) for labels, v in _evaluate_roots(expr.lhs) if v < float(rhs.val)]
    assert op == "-"
    call: Any = expr.lhs
    assert call.func.name == "label_replace"
    vector, label, value = call.args[0], call.args[1], call.args[2]
    assert vector.func.name == "vector"
    return [({str(label.val): str(value.val)}, float(vector.args[0].val) - NOW)]


def test_static_roots_raise_the_expiry_alert_one_by_one() -> None:
    from tests import certs

    soon = int(NOW + 10 * DAY)
    later = int(NOW + 400 * DAY)
    settings = _mesh_modes()["intermediate"]
    roots = {r.name: r for r in settings.mesh_trust_roots}
    assert alerts.mesh_root_expiry(settings).count("label_replace") == 2
    # Same expression shape, epochs chosen for the check.
    expr = alerts.mesh_root_expiry(settings)
    for name, epoch in (("corp-root-a", soon), ("corp-root-b", later)):
        real = roots[name].certificate.not_after_epoch
        expr = expr.replace(
            f'vector({real}), "root", "{name}"', f'vector({epoch}), "root", "{name}"'
        )
    fired = _evaluate_roots(promql_parser.parse(f"({expr}) < {60 * 86400}"))
    assert [labels["root"] for labels, _ in fired] == ["corp-root-a"]
    assert certs.root("corp-root-a").cert.not_valid_after_utc.timestamp() == (
        roots["corp-root-a"].certificate.not_after_epoch
    )


# ---- batch windows ----------------------------------------------------------------------------


def test_window_alerts_watch_every_configured_window() -> None:
    settings = _settings()
    (model,) = (m for m in settings.models if m.name == "iris")
    policy = access.window_policy_name(model, "batch", "nightly")
    assert alerts.window_policies(settings) == [("iris", policy)]
    silent = _alert(settings, "AimeshWindowReconcilerSilent").expr
    # A reconciler that never reported at all is caught per window, not only a stale one.
    assert (
        f'absent_over_time({alerts.WINDOW_LAST_SUCCESS}{{namespace="iris", policy="{policy}"}}'
        in silent
    )
    assert check(silent) >= {"namespace", "policy"}
    opened = _alert(settings, "AimeshWindowOpenOutsideSchedule").expr
    assert check(opened) == {"namespace", "policy"}


def test_without_windows_the_window_alerts_are_inactive() -> None:
    names = {a.name for a in alerts.active_alerts(parse({"models": [OTHER]}))}
    assert "AimeshWindowOpenOutsideSchedule" not in names
    assert "AimeshWindowReconcilerSilent" not in names
    assert {"AimeshWindowOpenOutsideSchedule", "AimeshWindowReconcilerSilent"} <= {
        a.name for a in alerts.active_alerts(_settings())
    }
