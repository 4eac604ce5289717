"""builders/collector.py: the OpenTelemetry collector that exports the audit trail."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aimesh import versions
from aimesh.builders import collector
from aimesh.settings import ConfigError, Settings, parse
from tools import schemas

SPLUNK_TOKEN = "splunk-token-value-1234"
OTLP_TOKEN = "otlp-token-value-5678"
SINKS: list[dict[str, Any]] = [
    {
        "name": "splunk",
        "type": "splunkHec",
        "endpoint": "https://hec.example.com:8088/services/collector",
        "token": SPLUNK_TOKEN,
        "index": "audit",
    },
    {"name": "soc-syslog", "type": "syslog", "endpoint": "syslog.example.com:6514"},
    {
        "name": "gateway",
        "type": "otlp",
        "endpoint": "otel.example.com:4317",
        "token": OTLP_TOKEN,
        "signals": ["logs", "traces"],
    },
    {"name": "local", "type": "file", "maxDays": 3},
]
MODELS = [
    {
        "name": "iris",
        "format": "sklearn",
        "storageUri": "gs://b/iris",
        "callers": [{"namespace": "shop", "serviceAccount": "checkout"}],
    }
]


def _settings(**extra: Any) -> Settings:
    return parse({"siemSinks": SINKS, "models": MODELS, **extra})


def _pipelines_are_closed(config: dict[str, Any]) -> None:
    """Every pipeline names only defined components; every exporter is used somewhere."""
    used: set[str] = set()
    for name, pipeline in config["service"]["pipelines"].items():
        assert pipeline["receivers"], name
        assert pipeline["exporters"], name
        for receiver in pipeline["receivers"]:
            assert receiver in config["receivers"], (name, receiver)
        for processor in pipeline["processors"]:
            assert processor in config["processors"], (name, processor)
        for exporter in pipeline["exporters"]:
            assert exporter in config["exporters"], (name, exporter)
            used.add(exporter)
    assert used == set(config["exporters"])
    for extension in config["service"]["extensions"]:
        assert extension in config["extensions"]


@pytest.mark.parametrize(
    "sinks",
    [[], SINKS, SINKS[:1], SINKS[1:2], SINKS[2:3], SINKS[3:]],
    ids=["none", "all", "splunk", "syslog", "otlp", "file"],
)
def test_every_pipeline_references_defined_components(sinks: list[dict[str, Any]]) -> None:
    _pipelines_are_closed(collector.collector_config(parse({"siemSinks": sinks})))


def test_each_sink_gets_the_right_exporter() -> None:
    config = collector.collector_config(_settings())
    exporters = config["exporters"]
    assert exporters["splunk_hec/splunk"]["endpoint"] == SINKS[0]["endpoint"]
    assert exporters["splunk_hec/splunk"]["index"] == "audit"
    assert exporters["syslog/soc-syslog"] == {
        "endpoint": "syslog.example.com",
        "port": 6514,
        "network": "tcp",
        "protocol": "rfc5424",
        "tls": {"insecure": False},
    }
    assert exporters["otlp_grpc/gateway"]["tls"] == {"insecure": False}
    assert exporters["file/local"]["rotation"]["max_days"] == 3
    pipelines = config["service"]["pipelines"]
    assert set(pipelines["logs"]["exporters"]) == {
        "splunk_hec/splunk",
        "otlp_grpc/gateway",
        "file/local",
    }
    # syslog needs the record serialized into `message`
    assert pipelines["logs/syslog"]["processors"] == ["memory_limiter", "transform/syslog", "batch"]
    assert pipelines["traces"]["exporters"] == ["otlp_grpc/gateway"]
    assert "debug" not in exporters


def test_without_sinks_nothing_is_exported_but_counts() -> None:
    config = collector.collector_config(parse({}))
    assert config["exporters"] == {"debug": {"verbosity": "basic"}}


def test_credentials_are_env_references_never_inlined() -> None:
    settings = _settings()
    values = collector.helm_values(settings)
    rendered = json.dumps(values)
    assert SPLUNK_TOKEN not in rendered
    assert OTLP_TOKEN not in rendered
    exporters = values["alternateConfig"]["exporters"]
    assert exporters["splunk_hec/splunk"]["token"] == "${env:AIMESH_SINK_SPLUNK_TOKEN}"
    assert exporters["otlp_grpc/gateway"]["headers"] == {
        "authorization": "Bearer ${env:AIMESH_SINK_GATEWAY_TOKEN}"
    }
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in values["extraEnvs"]}
    assert env == {
        "AIMESH_SINK_SPLUNK_TOKEN": {"name": "aimesh-siem-credentials", "key": "splunk-token"},
        "AIMESH_SINK_GATEWAY_TOKEN": {"name": "aimesh-siem-credentials", "key": "gateway-token"},
    }
    # ... and the Secret has exactly those keys
    assert collector.credentials(settings) == {
        "splunk-token": SPLUNK_TOKEN,
        "gateway-token": OTLP_TOKEN,
    }


def test_tokens_do_not_leak_through_settings_repr() -> None:
    assert SPLUNK_TOKEN not in repr(_settings())


def test_deployment_mode_pinned_contrib_image_in_the_mesh() -> None:
    values = collector.helm_values(_settings())
    assert values["mode"] == "deployment"
    assert values["image"] == {
        "repository": "otel/opentelemetry-collector-contrib",
        "tag": versions.OTEL_COLLECTOR_IMAGE_TAG,
    }
    assert values["command"]["name"] == "otelcol-contrib"
    assert values["podLabels"]["sidecar.istio.io/inject"] == "true"
    # Only OTLP/gRPC is open; the chart's jaeger/zipkin/http receivers are closed.
    open_ports = {name for name, port in values["ports"].items() if port["enabled"]}
    assert open_ports == {"otlp"}
    assert set(values["alternateConfig"]["receivers"]) == {"otlp"}
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["serviceAccount"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        ({"name": "s", "type": "splunkHec", "endpoint": "http://hec:8088", "token": "t"}, "https"),
        ({"name": "s", "type": "splunkHec", "endpoint": "https://hec:8088"}, "token"),
        ({"name": "s", "type": "otlp", "endpoint": "https://otel:4317"}, "host:port"),
        ({"name": "s", "type": "syslog"}, "host:port"),
        ({"name": "s", "type": "syslog", "endpoint": "h:514", "signals": ["traces"]}, "traces"),
        ({"name": "s", "type": "file", "path": "/etc/passwd"}, "/var/log/aimesh/"),
        ({"name": "s", "type": "kafka"}, "type"),
    ],
)
def test_bad_sinks_are_refused(sink: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse({"siemSinks": [sink]})


def test_plaintext_sinks_are_refused_in_production() -> None:
    sink = {"name": "s", "type": "syslog", "endpoint": "syslog:514", "insecure": True}
    assert parse({"siemSinks": [sink]}).siem_sinks[0].insecure
    with pytest.raises(ConfigError, match="plaintext"):
        parse({"environment": "production", "siemSinks": [sink]})


def test_only_the_audit_agent_may_write_logs_and_proxies_only_traces() -> None:
    policy = collector.allow_telemetry_policy(_settings())
    assert policy["spec"]["action"] == "ALLOW"
    assert policy["spec"]["selector"]["matchLabels"] == collector.COLLECTOR_LABELS
    logs, traces = policy["spec"]["rules"]
    assert logs == {
        "from": [
            {
                "source": {
                    "principals": ["cluster.local/ns/aimesh-observability/sa/aimesh-audit-agent"]
                }
            }
        ],
        "to": [
            {
                "operation": {
                    "ports": ["4317"],
                    "paths": ["/opentelemetry.proto.collector.logs.v1.LogsService/Export"],
                }
            }
        ],
    }
    assert traces["to"] == [
        {
            "operation": {
                "ports": ["4317"],
                "paths": ["/opentelemetry.proto.collector.trace.v1.TraceService/Export"],
            }
        }
    ]
    principals = traces["from"][0]["source"]["principals"]
    assert principals == [
        "cluster.local/ns/iris/sa/*",
        "cluster.local/ns/istio-ingress/sa/aimesh-ingressgateway",
        "cluster.local/ns/shop/sa/checkout",
    ]
    assert "*" not in principals
    assert not any(p.startswith("cluster.local/ns/*") for p in principals)


def test_external_sinks_get_a_namespace_local_service_entry() -> None:
    entries = {e["spec"]["hosts"][0]: e for e in collector.sink_service_entries(_settings())}
    assert set(entries) == {"hec.example.com", "syslog.example.com", "otel.example.com"}
    hec = entries["hec.example.com"]["spec"]
    assert hec["ports"] == [{"number": 8088, "name": "tls-8088", "protocol": "TLS"}]
    assert hec["exportTo"] == ["."]
    assert hec["location"] == "MESH_EXTERNAL"


def test_in_cluster_sinks_need_no_service_entry() -> None:
    sink = {"name": "in", "type": "otlp", "endpoint": "otel.siem.svc.cluster.local:4317"}
    assert collector.sink_service_entries(parse({"siemSinks": [sink]})) == []


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("environment", ["dev", "production"])
def test_values_match_the_chart_schema(environment: str) -> None:
    values = collector.helm_values(_settings(environment=environment))
    assert schemas.validate_values("opentelemetry-collector", values) == []


@pytest.mark.usefixtures("upstream_available")
def test_istio_objects_match_the_strict_schema() -> None:
    settings = _settings()
    for manifest in [
        collector.allow_telemetry_policy(settings),
        *collector.sink_service_entries(settings),
    ]:
        assert schemas.validate(manifest) == []


@pytest.mark.usefixtures("upstream_available")
def test_schema_check_catches_a_bad_value() -> None:
    values = collector.helm_values(_settings())
    values["mode"] = "sidecar"
    assert schemas.validate_values("opentelemetry-collector", values)


def test_egress_rule_for_default_deny_namespaces_targets_only_the_collector() -> None:
    rule = collector.telemetry_egress_rule()
    (peer,) = rule["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "aimesh-observability"
    }
    assert peer["podSelector"]["matchLabels"] == collector.COLLECTOR_LABELS
    assert rule["ports"] == [{"protocol": "TCP", "port": 4317}]
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-telemetry-export", "namespace": "iris"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [rule]},
    }
    assert schemas.validate(policy) == []
