"""builders/telemetry.py: the audit access log, metrics and tracing (Istio Telemetry API)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from aimesh.builders import telemetry
from aimesh.builders.collector import COLLECTOR_LABELS
from aimesh.settings import ConfigError, parse
from tools import schemas

ROOT = Path(__file__).resolve().parents[2]


def _providers(settings: Any = None) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in telemetry.extension_providers(settings or parse({}))}


def test_access_log_carries_who_what_and_result() -> None:
    fields = telemetry.ACCESS_LOG_FIELDS
    # who: the mTLS peer and the JWT subject (Istio keeps the validated payload here)
    assert fields["source_principal"] == "%DOWNSTREAM_PEER_URI_SAN%"
    assert fields["request_principal_subject"] == (
        "%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:payload:sub)%"
    )
    # what and the result
    for field in ("authority", "namespace", "method", "path", "response_code", "response_flags"):
        assert field in fields
    for field in ("bytes_sent", "bytes_received", "duration_ms"):
        assert field in fields
    # every value is an Envoy command operator, never free text
    for value in fields.values():
        assert re.fullmatch(r"%[A-Z_]+(\([^)]*\))?%", value), value


def test_access_log_goes_to_the_proxys_stdout_and_over_no_network_service() -> None:
    providers = _providers()
    stdout = providers[telemetry.STDOUT_LOG_PROVIDER]["envoyFileAccessLog"]
    assert stdout["path"] == "/dev/stdout"
    assert stdout["logFormat"] == {"labels": telemetry.ACCESS_LOG_FIELDS}
    # No access-log service: anything holding a proxy's identity (its application container
    # too) could push records into one. Only tracing talks to the collector.
    kinds = {key for p in providers.values() for key in p if key != "name"}
    assert kinds == {"envoyFileAccessLog", "prometheus", "opentelemetry"}
    fragment = telemetry.mesh_config(parse({}))
    assert fragment["defaultProviders"]["accessLogging"] == [telemetry.STDOUT_LOG_PROVIDER]


def test_prometheus_provider_is_kept_when_the_default_list_is_replaced() -> None:
    assert _providers()["prometheus"] == {"name": "prometheus", "prometheus": {}}


def test_mesh_config_fragment_references_only_defined_providers() -> None:
    fragment = telemetry.mesh_config(parse({}))
    names = {p["name"] for p in fragment["extensionProviders"]}
    for providers in fragment["defaultProviders"].values():
        assert set(providers) <= names
    regexps = fragment["defaultConfig"]["proxyStatsMatcher"]["inclusionRegexps"]
    assert any(re.fullmatch(r, "http.inbound_0.0.0.0_8080.rbac.denied") for r in regexps)
    # Audit mode's shadow decisions (Envoy: <prefix>.rbac.<shadow_rules_stat_prefix>shadow_*).
    shadow = "http.inbound_0.0.0.0_8080.rbac.istio_dry_run_allow_shadow_denied"
    assert any(re.fullmatch(r, shadow) for r in regexps)
    assert not any(
        re.fullmatch(r, "http.inbound_0.0.0.0_8080.downstream_rq_total") for r in regexps
    )


def test_mesh_telemetry_logs_both_directions_with_configured_sampling() -> None:
    resource = telemetry.mesh_telemetry(parse({"tracingSamplingPercent": "2.5"}))
    assert resource["metadata"]["namespace"] == "istio-system"
    assert "selector" not in resource["spec"]  # mesh-wide: the root namespace, no selector
    logging = resource["spec"]["accessLogging"][0]
    assert logging["match"]["mode"] == "CLIENT_AND_SERVER"
    assert logging["providers"] == [{"name": telemetry.STDOUT_LOG_PROVIDER}]
    assert resource["spec"]["tracing"][0]["randomSamplingPercentage"] == 2.5
    assert resource["spec"]["metrics"][0]["providers"] == [{"name": "prometheus"}]


@pytest.mark.parametrize("value", ["-1", "100.5", "lots"])
def test_sampling_outside_0_100_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="tracingSamplingPercent"):
        parse({"tracingSamplingPercent": value})


def test_namespace_override_sets_only_what_it_overrides() -> None:
    settings = parse(
        {
            "telemetryOverrides": [
                {"namespace": "iris", "tracingSamplingPercent": 50},
                {"namespace": "churn", "accessLogFilter": "response.code >= 400"},
            ]
        }
    )
    iris, churn = (telemetry.namespace_telemetry(o) for o in settings.telemetry_overrides)
    assert iris["metadata"]["namespace"] == "iris"
    assert set(iris["spec"]) == {"tracing"}
    assert iris["spec"]["tracing"][0]["randomSamplingPercentage"] == 50
    # A namespace override replaces the whole field: the providers are repeated.
    assert churn["spec"]["accessLogging"][0]["filter"] == {"expression": "response.code >= 400"}
    assert churn["spec"]["accessLogging"][0]["providers"] == [
        {"name": telemetry.STDOUT_LOG_PROVIDER}
    ]


@pytest.mark.parametrize("expression", ["false", " false ", ""])
def test_a_filter_that_logs_nothing_is_refused(expression: str) -> None:
    with pytest.raises(ConfigError, match="would log nothing"):
        parse({"telemetryOverrides": [{"namespace": "iris", "accessLogFilter": expression}]})


def test_a_namespace_cannot_switch_its_access_logs_off() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        parse({"telemetryOverrides": [{"namespace": "iris", "disableAccessLogs": True}]})


def test_duplicate_override_namespaces_are_refused() -> None:
    with pytest.raises(ConfigError, match="must be unique"):
        parse({"telemetryOverrides": [{"namespace": "a"}, {"namespace": "a"}]})


def test_collector_does_not_log_its_own_log_stream() -> None:
    guard = telemetry.collector_loop_guard(COLLECTOR_LABELS)
    assert guard["spec"]["selector"]["matchLabels"] == COLLECTOR_LABELS
    assert guard["spec"]["accessLogging"] == [{"disabled": True}]


def test_every_access_log_field_is_documented() -> None:
    doc = (ROOT / "docs" / "observability.md").read_text()
    for field in telemetry.ACCESS_LOG_FIELDS:
        assert f"`{field}`" in doc, f"docs/observability.md does not describe `{field}`"


@pytest.mark.usefixtures("upstream_available")
def test_telemetry_resources_match_the_strict_istio_schema() -> None:
    settings = parse(
        {
            "telemetryOverrides": [
                {"namespace": "iris", "tracingSamplingPercent": 50},
                {"namespace": "churn", "accessLogFilter": "response.code >= 400"},
            ]
        }
    )
    for resource in telemetry.telemetry_resources(settings, COLLECTOR_LABELS):
        assert schemas.validate(resource) == []
