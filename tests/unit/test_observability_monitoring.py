"""builders/monitoring.py and builders/dashboard.py: Prometheus, Alertmanager, Grafana."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from aimesh.builders import alerts, dashboard, monitoring, observability
from aimesh.settings import ConfigError, Settings, parse
from tools import schemas

SLACK_URL = "https://hooks.slack.example/T000/B000/secret"
RECEIVERS: list[dict[str, Any]] = [
    {"name": "oncall", "type": "pagerduty", "credential": "pd-key", "severities": ["critical"]},
    {"name": "channel", "type": "slack", "credential": SLACK_URL, "channel": "#sec"},
    {"name": "soar", "type": "webhook", "credential": "https://soar.example/hook"},
]


def _settings(**extra: Any) -> Settings:
    return parse({"alertReceivers": RECEIVERS, **extra})


def test_receivers_read_their_credentials_from_mounted_files() -> None:
    values = monitoring.helm_values(_settings())
    assert SLACK_URL not in json.dumps(values)
    config = values["alertmanager"]["config"]
    receivers = {r["name"]: r for r in config["receivers"]}
    base = "/etc/alertmanager/secrets/aimesh-alertmanager-receivers"
    assert receivers["oncall"]["pagerduty_configs"][0]["routing_key_file"] == f"{base}/oncall"
    assert receivers["channel"]["slack_configs"][0]["api_url_file"] == f"{base}/channel"
    assert receivers["channel"]["slack_configs"][0]["channel"] == "#sec"
    assert receivers["soar"]["webhook_configs"][0]["url_file"] == f"{base}/soar"
    assert values["alertmanager"]["alertmanagerSpec"]["secrets"] == [monitoring.RECEIVERS_SECRET]
    assert monitoring.receiver_credentials(_settings())["channel"] == SLACK_URL


def test_routes_send_each_receiver_its_severities() -> None:
    route = monitoring.alertmanager_config(_settings())["route"]
    by_receiver = {r["receiver"]: r for r in route["routes"]}
    assert by_receiver["oncall"]["matchers"] == ['aimesh_alert = "true"', 'severity =~ "critical"']
    assert by_receiver["channel"]["matchers"][1] == 'severity =~ "critical|warning"'
    assert all(by_receiver[n]["continue"] for n in ("oncall", "channel", "soar"))
    # every route names a defined receiver
    defined = {r["name"] for r in monitoring.alertmanager_config(_settings())["receivers"]}
    assert {r["receiver"] for r in route["routes"]} | {route["receiver"]} <= defined


_MATCHER = re.compile(r'^([a-zA-Z_]+) (=~|!~|!=|=) "(.*)"$')


def _matches(matcher: str, labels: dict[str, str]) -> bool:
    """Alertmanager's matcher semantics (regexes are anchored, a missing label is "")."""
    found = _MATCHER.match(matcher)
    assert found, f"unparsable matcher {matcher!r}"
    name, op, value = found.groups()
    actual = labels.get(name, "")
    if op in ("=", "!="):
        return (actual == value) == (op == "=")
    return (re.fullmatch(value, actual) is not None) == (op == "=~")


def _notified(config: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """The receivers an alert reaches through the (one-level) route tree."""
    route = config["route"]
    found: list[str] = []
    for child in route["routes"]:
        if all(_matches(m, labels) for m in child["matchers"]):
            found.append(child["receiver"])
            if not child.get("continue", False):
                break
    return found or [route["receiver"]]


def test_only_aimesh_alerts_reach_the_receivers() -> None:
    settings = _settings(models=[{"name": "iris", "format": "sklearn", "storageUri": "gs://b/i"}])
    config = monitoring.alertmanager_config(settings)
    groups = alerts.prometheus_rule(settings)["spec"]["groups"]
    rules = [r for g in groups for r in g["rules"] if "alert" in r]
    for rule in rules:
        labels = {"alertname": rule["alert"], **rule["labels"]}
        everyone = {"oncall", "channel", "soar"}
        expected = everyone if labels["severity"] == "critical" else everyone - {"oncall"}
        assert set(_notified(config, labels)) == expected, rule["alert"]
    # kube-prometheus-stack's own rules (clusterMonitoring) page nobody on the security side.
    assert _notified(config, {"alertname": "KubeletDown", "severity": "critical"}) == ["null"]
    assert _notified(config, {"alertname": "Watchdog", "severity": "none"}) == ["null"]


def test_no_receivers_no_mounted_secret() -> None:
    values = monitoring.helm_values(parse({}))
    assert values["alertmanager"]["alertmanagerSpec"]["secrets"] == []
    assert values["alertmanager"]["config"]["receivers"] == [{"name": "null"}]


@pytest.mark.parametrize(
    "receiver",
    [
        {"name": "x", "type": "email", "credential": "c"},
        {"name": "x", "type": "slack"},
        {"name": "x", "type": "slack", "credential": "c", "severities": []},
    ],
)
def test_bad_receivers_are_refused(receiver: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="alertReceivers"):
        parse({"alertReceivers": [receiver]})


def test_dev_footprint_is_small_and_prod_keeps_data() -> None:
    dev = monitoring.helm_values(parse({"clusterMonitoring": False, "prometheusRetention": "2d"}))
    assert dev["nodeExporter"] == {"enabled": False}
    assert dev["defaultRules"] == {"create": False}
    assert dev["prometheus"]["prometheusSpec"]["retention"] == "2d"
    assert "storageSpec" not in dev["prometheus"]["prometheusSpec"]
    prod = monitoring.helm_values(
        parse({"environment": "production", "prometheusStorageSize": "100Gi"})
    )
    claim = prod["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"


def test_grafana_password_comes_from_a_secret_or_is_generated() -> None:
    assert "admin" not in monitoring.helm_values(parse({}))["grafana"]
    with_password = monitoring.helm_values(parse({"grafanaAdminPassword": "s3cret"}))
    assert with_password["grafana"]["admin"]["existingSecret"] == monitoring.GRAFANA_SECRET
    assert "s3cret" not in json.dumps(with_password)


def test_prometheus_selects_aimesh_monitors_without_release_labels() -> None:
    spec = monitoring.helm_values(parse({}))["prometheus"]["prometheusSpec"]
    for key in ("ruleSelectorNilUsesHelmValues", "podMonitorSelectorNilUsesHelmValues"):
        assert spec[key] is False


def test_sidecars_are_scraped_on_the_plaintext_merged_port() -> None:
    endpoint = monitoring.sidecar_pod_monitor()["spec"]["podMetricsEndpoints"][0]
    assert endpoint["path"] == "/stats/prometheus"
    address = next(r for r in endpoint["relabelings"] if r.get("targetLabel") == "__address__")
    assert address["replacement"] == "$1:15020"


def test_baseline_panel_compares_with_the_alerts_baseline() -> None:
    # dev pages on a 6h baseline: the panel must show the same ratio, not a fixed 1d one.
    settings = _settings(alertBaselineWindow="6h")
    alert = next(a for a in alerts.alerts(settings) if a.name == "AimeshUnusualRequestVolume")
    title, expr, _, _ = next(p for p in dashboard.panels(settings) if "baseline" in p[0])
    window = f"[6h] offset {alerts.BASELINE_OFFSET}"
    assert window in alert.expr
    assert window in expr
    assert "6h" in title


def test_cert_manager_metrics_keep_the_certificate_labels() -> None:
    endpoint = monitoring.cert_manager_pod_monitor()["spec"]["podMetricsEndpoints"][0]
    assert endpoint["honorLabels"] is True


def test_dashboard_is_a_labelled_configmap_with_valid_json() -> None:
    configmap = dashboard.dashboard_configmap(_settings())
    assert configmap["metadata"]["labels"][monitoring.DASHBOARD_LABEL] == "1"
    assert configmap["metadata"]["namespace"] == "aimesh-observability"
    (document,) = configmap["data"].values()
    model = json.loads(document)
    assert model["uid"] == dashboard.UID
    exprs = [t["expr"] for p in model["panels"] for t in p["targets"]]
    assert exprs == [p[1] for p in dashboard.panels(_settings())]
    # what pages someone is what they see
    for series in (alerts.REQUESTS, alerts.RESPONSE_BYTES, alerts.ERROR_RATIO, alerts.LATENCY_P99):
        assert any(series in e for e in exprs), series
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize(
    "config",
    [
        {},
        {"clusterMonitoring": False, "grafana": False},
        {
            "environment": "production",
            "alertReceivers": RECEIVERS,
            "grafanaAdminPassword": "x",
            "prometheusStorageSize": "50Gi",
        },
    ],
    ids=["defaults", "small", "production"],
)
def test_values_exist_in_the_chart(config: dict[str, Any]) -> None:
    values = monitoring.helm_values(parse(config))
    assert schemas.validate_values("kube-prometheus-stack", values) == []


@pytest.mark.usefixtures("upstream_available")
def test_values_check_catches_an_unknown_key() -> None:
    values = monitoring.helm_values(parse({}))
    values["prometheus"]["prometheusSpec"]["retentionDays"] = 3
    assert schemas.validate_values("kube-prometheus-stack", values)


@pytest.mark.usefixtures("upstream_available")
def test_monitoring_objects_match_the_prometheus_operator_crds() -> None:
    models = [{"name": "iris", "format": "sklearn", "storageUri": "gs://b/i"}]
    for manifest in observability.monitoring_resources(parse({"models": models})).values():
        assert schemas.validate(manifest) == [], manifest["kind"]
    assert schemas.validate(dashboard.dashboard_configmap(_settings())) == []
    assert schemas.validate(observability.namespace()) == []


def test_namespace_is_out_of_the_mesh_and_only_the_collector_opts_in() -> None:
    labels = observability.namespace()["metadata"]["labels"]
    assert "istio-injection" not in labels  # neither enabled nor disabled: per-pod opt-in
    assert "istio.io/rev" not in labels
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    kps = json.dumps(monitoring.helm_values(parse({})))
    assert "sidecar.istio.io/inject" not in kps  # nothing in the monitoring stack opts out/in


def test_only_workload_scoped_telemetry_turns_access_logs_off() -> None:
    models = [{"name": "iris", "format": "sklearn", "storageUri": "gs://b/i"}]
    for manifest in observability.mesh_resources(parse({"models": models})).values():
        if manifest["kind"] != "Telemetry":
            continue
        for entry in manifest["spec"].get("accessLogging", []):
            if entry.get("disabled"):
                assert manifest["spec"]["selector"]["matchLabels"]
