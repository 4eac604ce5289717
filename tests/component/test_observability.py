"""components/observability.py under Pulumi mocks: what is registered, in which order, how."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi.runtime import rpc

from aimesh.builders import collector, monitoring, telemetry
from aimesh.components.charts import TEMPLATE_TYPE
from tests.conftest import evaluated
from tools import offline, schemas

OBS = "aimesh:observability:Observability"
MODEL = {"name": "iris", "format": "sklearn", "storageUri": "gs://bucket/iris"}
TOKEN = "hec-token-never-in-inputs"
CREDENTIAL = "https://hooks.example/never-in-values"


def _is_secret(value: Any) -> bool:
    """Pulumi's wire format for a secret value (the mock monitor keeps the marker)."""
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def _evaluate(**config: Any) -> offline.Evaluation:
    values = offline.project_defaults()
    values.update({f"aimesh:{k}": v for k, v in config.items()})
    encoded, secret_keys = offline.encode_config(values)
    # Credentials are set with `pulumi config set --secret` (settings insists); the value stays
    # readable here so the test below can look for it everywhere else.
    secret_keys += [k for k in ("aimesh:grafanaAdminPassword",) if k in encoded]
    return offline.evaluate(encoded, secret_keys=secret_keys)


def _children(evaluation: offline.Evaluation) -> list[offline.Registered]:
    return [r for r in evaluation.resources if f"{OBS}$" in r.urn]


def _named(evaluation: offline.Evaluation, name: str) -> offline.Registered:
    """The chart or object called `name` (not a Release's render-only mirror of that name)."""
    return next(r for r in _children(evaluation) if r.name == name and r.type != TEMPLATE_TYPE)


@pytest.fixture(scope="module")
def full() -> offline.Evaluation:
    return _evaluate(
        models=[MODEL],
        siemSinks=[
            {
                "name": "splunk",
                "type": "splunkHec",
                "endpoint": "https://hec.example.com/services/collector",
                "token": TOKEN,
            }
        ],
        alertReceivers=[{"name": "soc", "type": "webhook", "credential": CREDENTIAL}],
        grafanaAdminPassword="grafana-pass",
        telemetryOverrides=[{"namespace": "iris", "tracingSamplingPercent": 20}],
    )


def test_charts_use_the_install_method_their_content_needs(full: offline.Evaluation) -> None:
    release = _named(full, "aimesh-monitoring")
    assert release.type == "kubernetes:helm.sh/v3:Release"  # CRDs + webhook hook Jobs
    assert release.inputs["chart"] == "kube-prometheus-stack"
    assert release.inputs["version"] == "88.5.3"
    assert release.inputs["waitForJobs"] is True
    chart = _named(full, "aimesh-otel-collector")
    assert chart.type == "kubernetes:helm.sh/v4:Chart"  # plain objects, visible to CrossGuard
    assert chart.inputs["version"] == "0.170.0"
    assert chart.inputs["values"]["mode"] == "deployment"
    agent = _named(full, "aimesh-audit-agent")
    assert agent.type == "kubernetes:helm.sh/v4:Chart"
    assert agent.inputs["values"]["mode"] == "daemonset"


def test_render_mode_renders_both_charts(tmp_path: Any) -> None:
    rendered = _evaluate(clusterMode="render", renderDir=str(tmp_path))
    # Render mode's Helm v3 Chart (`helm template` for aimesh:kubernetesVersion; hooks kept).
    installs = {c.release: c for c in rendered.chart_installs()}
    assert installs[monitoring.RELEASE].type == "kubernetes:helm.sh/v3:Chart"
    assert installs[monitoring.RELEASE].chart == "kube-prometheus-stack"
    assert installs[telemetry.COLLECTOR_NAME].type == "kubernetes:helm.sh/v3:Chart"


def test_custom_resources_wait_for_what_serves_their_crd(full: offline.Evaluation) -> None:
    release = _named(full, "aimesh-monitoring").urn
    istiod = full.urn_of("aimesh-istiod")
    for r in _children(full):
        group = r.type.split(":")[1].split("/")[0]
        if group == "monitoring.coreos.com":
            assert release in r.dependencies, r.name
        if group.endswith("istio.io"):
            assert istiod in r.dependencies, r.name
        assert r.parent.endswith(f"{OBS}::aimesh"), r.name


def test_every_registered_object_matches_its_upstream_schema(
    full: offline.Evaluation, upstream_available: None
) -> None:
    checked = 0
    for r in _children(full):
        if (
            r.custom
            and r.type.startswith("kubernetes:")
            and "helm.sh" not in r.type
            and r.kind not in ("Secret",)
        ):
            manifest = {**r.inputs, "apiVersion": r.inputs.get("apiVersion"), "kind": r.kind}
            assert schemas.validate(manifest) == [], r.name
            checked += 1
    assert checked >= 9


def test_chart_values_pass_the_chart_checks(
    full: offline.Evaluation, upstream_available: None
) -> None:
    kps = _named(full, "aimesh-monitoring").inputs["values"]
    assert schemas.validate_values("kube-prometheus-stack", kps) == []
    otel = _named(full, "aimesh-otel-collector").inputs["values"]
    assert schemas.validate_values("opentelemetry-collector", otel) == []


def test_secrets_are_secret_and_nowhere_else(full: offline.Evaluation) -> None:
    secrets = {r.name: r for r in _children(full) if r.type == "kubernetes:core/v1:Secret"}
    assert set(secrets) == {
        "aimesh-siem-credentials",
        "aimesh-alert-receivers",
        "aimesh-grafana-admin",
    }
    for secret in secrets.values():
        assert _is_secret(secret.inputs["stringData"]), secret.name
    everything_else = json.dumps(
        [r.inputs for r in full.resources if r.type != "kubernetes:core/v1:Secret"], default=str
    )
    for value in (TOKEN, CREDENTIAL, "grafana-pass"):
        assert value not in everything_else


def test_collector_and_alertmanager_reference_the_secrets(full: offline.Evaluation) -> None:
    otel = _named(full, "aimesh-otel-collector")
    assert full.urn_of("aimesh-siem-credentials") in otel.dependencies
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in otel.inputs["values"]["extraEnvs"]}
    assert refs == {collector.CREDENTIALS_SECRET}
    kps = _named(full, "aimesh-monitoring")
    spec = kps.inputs["values"]["alertmanager"]["alertmanagerSpec"]
    assert spec["secrets"] == [monitoring.RECEIVERS_SECRET]
    assert full.urn_of("aimesh-alert-receivers") in kps.dependencies


def test_namespace_overrides_come_after_the_models(full: offline.Evaluation) -> None:
    override = next(r for r in full.resources if r.name == "aimesh-telemetry-iris")
    assert "aimesh:observability:NamespaceTelemetry" in override.urn
    # The Namespace SecureModel creates for the model is among what the override waits for.
    namespaces = {
        r.urn
        for r in full.resources
        if r.type == "kubernetes:core/v1:Namespace" and r.inputs["metadata"]["name"] == "iris"
    }
    assert len(namespaces) == 1
    assert namespaces <= set(override.dependencies)
    assert override.inputs["metadata"]["namespace"] == "iris"


def test_dev_stack_turns_everything_on_with_small_footprint() -> None:
    dev = evaluated("dev")
    names = {r.name for r in _children(dev)}
    assert {
        "aimesh-observability-ns",
        "aimesh-telemetry-mesh",
        "aimesh-telemetry-collector",
        "aimesh-collector-allow",
        "aimesh-monitoring",
        "aimesh-otel-collector",
        "aimesh-rules",
        "aimesh-podmonitor-sidecars",
        "aimesh-dashboard-model-security",
    } <= names
    kps = _named(dev, "aimesh-monitoring").inputs["values"]
    assert kps["nodeExporter"] == {"enabled": False}
    sinks = _named(dev, "aimesh-otel-collector").inputs["values"]["alternateConfig"]["exporters"]
    assert "file/local-audit" in sinks


def test_prod_stack_wires_the_siem_with_secret_credentials() -> None:
    prod = evaluated("prod")
    exporters = _named(prod, "aimesh-otel-collector").inputs["values"]["alternateConfig"][
        "exporters"
    ]
    assert {"splunk_hec/splunk", "syslog/soc-syslog", "otlp_grpc/otel-gateway"} <= set(exporters)
    entries = {r.name for r in _children(prod) if r.kind == "ServiceEntry"}
    assert entries == {
        "aimesh-egress-siem-splunk",
        "aimesh-egress-siem-soc-syslog",
        "aimesh-egress-siem-otel-gateway",
    }
    secret = _named(prod, "aimesh-siem-credentials")
    assert _is_secret(secret.inputs["stringData"])


def test_observability_off_registers_nothing() -> None:
    off = _evaluate(observability=False)
    assert not [r for r in off.resources if "aimesh:observability" in r.urn]
