"""The audit trail is bound to the proxies (builders/audit_agent.py, builders/collector.py): the
agent reads only the kubelet's `istio-proxy` log files, marks each record's trust from the file it
came from, and the collector accepts OTLP log records from the agent's identity alone, so a
record pushed by an application identity is refused."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest

from aimesh.builders import audit_agent, collector, telemetry
from aimesh.settings import Settings, parse
from tools import schemas

MODELS = [
    {
        "name": "iris",
        "format": "sklearn",
        "storageUri": "gs://b/iris",
        "callers": [{"namespace": "shop", "serviceAccount": "checkout"}],
    },
    {"name": "churn", "namespace": "churn-ns", "format": "sklearn", "storageUri": "gs://b/c"},
]


def _settings(**extra: Any) -> Settings:
    return parse({"models": MODELS, **extra})


# ---- what the agent reads ---------------------------------------------------------------------


def _read(path: str) -> bool:
    """Whether the agent's filelog receiver picks `path` up (its globs: `*` within one path
    segment, as the receiver's doublestar matching)."""
    receiver = audit_agent.agent_config(_settings())["receivers"]["filelog/proxies"]
    included = any(PurePosixPath(path).match(p) for p in receiver["include"])
    excluded = any(PurePosixPath(path).match(p) for p in receiver["exclude"])
    return included and not excluded


@pytest.mark.parametrize(
    ("path", "read"),
    [
        # A model pod's proxy, the gateway's proxy, a caller's proxy.
        ("/var/log/pods/iris_iris-predictor-7f9_0a1b/istio-proxy/0.log", True),
        ("/var/log/pods/istio-ingress_aimesh-ingressgateway-5c_9f/istio-proxy/3.log", True),
        ("/var/log/pods/shop_checkout-6d_77/istio-proxy/0.log", True),
        # The model server's own output: whatever it prints is never read.
        ("/var/log/pods/iris_iris-predictor-7f9_0a1b/kserve-container/0.log", False),
        ("/var/log/pods/iris_iris-predictor-7f9_0a1b/storage-initializer/0.log", False),
        ("/var/log/pods/iris_iris-predictor-7f9_0a1b/istio-proxy-copy/0.log", False),
        ("/var/log/pods/iris_x_1/app/istio-proxy/0.log", False),
        # The audit pipeline's own proxies (their requests are the records themselves).
        ("/var/log/pods/aimesh-observability_aimesh-otel-collector-1_2/istio-proxy/0.log", False),
        ("/var/log/pods/aimesh-observability_aimesh-audit-agent-x_3/istio-proxy/0.log", False),
    ],
)
def test_the_agent_reads_only_the_proxies_own_log_files(path: str, read: bool) -> None:
    assert _read(path) is read


def test_namespace_pod_and_container_come_from_the_path_not_the_record() -> None:
    receiver = audit_agent.agent_config(_settings())["receivers"]["filelog/proxies"]
    container, record = receiver["operators"]
    assert container["type"] == "container"
    assert container["add_metadata_from_filepath"] is True
    # The record's JSON becomes attributes; resource attributes (k8s.*) are the path's.
    assert record["type"] == "json_parser"
    assert record["parse_to"] == "attributes"
    # Offsets survive restarts, so nothing is read twice or skipped.
    assert receiver["storage"] == audit_agent.STORAGE


def test_trust_is_verified_only_in_guarded_namespaces_and_mismatch_wins() -> None:
    settings = _settings()
    assert audit_agent.guarded_namespaces(settings) == ["churn-ns", "iris", "istio-ingress"]
    source, unguarded, verified, mismatch = audit_agent.trust_statements(settings)
    assert source == 'set(attributes["aimesh.audit.source"], "proxy-stdout")'
    assert unguarded.endswith('"unguarded")')
    assert (
        'IsMatch(resource.attributes["k8s.namespace.name"], "^(churn-ns|iris|istio-ingress)$")'
        in (verified)
    )
    # Last: a record naming another namespace or pod than its file's is marked, whatever else.
    assert 'attributes["namespace"] != resource.attributes["k8s.namespace.name"]' in mismatch
    assert 'attributes["pod"] != resource.attributes["k8s.pod.name"]' in mismatch
    # The record's namespace/pod fields are the ones the proxy writes.
    assert telemetry.ACCESS_LOG_FIELDS["namespace"] == "%ENVIRONMENT(POD_NAMESPACE)%"
    assert telemetry.ACCESS_LOG_FIELDS["pod"] == "%ENVIRONMENT(POD_NAME)%"


def test_only_audit_records_pass_and_every_pipeline_is_closed() -> None:
    config = audit_agent.agent_config(_settings())
    drops = config["processors"]["filter/records"]["logs"]["log_record"]
    assert drops == [f'attributes["{f}"] == nil' for f in audit_agent.RECORD_MARKERS]
    assert set(audit_agent.RECORD_MARKERS) <= set(telemetry.ACCESS_LOG_FIELDS)
    (pipeline,) = config["service"]["pipelines"].values()
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline[kind]:
            assert component in config[kind], component
    for extension in config["service"]["extensions"]:
        assert extension in config["extensions"]
    exporter = config["exporters"][pipeline["exporters"][0]]
    assert exporter["endpoint"] == f"{telemetry.COLLECTOR_HOST}:{telemetry.OTLP_GRPC_PORT}"
    assert exporter["sending_queue"]["storage"] == audit_agent.STORAGE


def test_the_daemonset_listens_nowhere_and_keeps_nothing_of_root_but_file_ownership() -> None:
    values = audit_agent.helm_values(_settings())
    assert values["mode"] == "daemonset"
    assert all(port == {"enabled": False} for port in values["ports"].values())
    assert set(values["ports"]) == set(collector.CHART_PORTS)
    sc = values["securityContext"]
    assert sc["runAsUser"] == 0
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert values["serviceAccount"]["automountServiceAccountToken"] is False
    mounts = {m["name"]: m for m in values["extraVolumeMounts"]}
    assert mounts["pod-logs"]["readOnly"] is True
    # Exactly two host paths: the pod logs (read-only) and the agent's own state.
    assert [v["hostPath"]["path"] for v in values["extraVolumes"]] == [
        "/var/log/pods",
        "/var/lib/aimesh/audit-agent",
    ]
    assert values["podLabels"]["sidecar.istio.io/inject"] == "true"


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("environment", ["dev", "production"])
def test_values_match_the_chart_schema(environment: str) -> None:
    values = audit_agent.helm_values(_settings(environment=environment))
    assert schemas.validate_values("opentelemetry-collector", values) == []


# ---- who may send what to the collector ---------------------------------------------------------


def _istio_match(pattern: str, value: str) -> bool:
    """Istio's string match for principals and paths: exact, `*`, `prefix*`, `*suffix`."""
    if pattern == "*":
        return bool(value)
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def _allowed(policy: dict[str, Any], principal: str, port: int, path: str) -> bool:
    """Whether an ALLOW policy admits a request (sources: principals; operations: ports,
    paths); the mesh-wide deny-all refuses whatever no ALLOW admits."""
    for rule in policy["spec"].get("rules", []):
        sources = [f["source"] for f in rule.get("from", [])]
        operations = [t["operation"] for t in rule.get("to", [])]
        who = not sources or any(
            any(_istio_match(p, principal) for p in s.get("principals", ["*"])) for s in sources
        )
        what = not operations or any(
            str(port) in o.get("ports", [str(port)])
            and any(_istio_match(p, path) for p in o.get("paths", ["*"]))
            for o in operations
        )
        if who and what:
            return True
    return False


APPLICATION_IDENTITIES = [
    "cluster.local/ns/iris/sa/iris-predictor",  # a model container (shares its proxy's)
    "cluster.local/ns/churn-ns/sa/default",
    "cluster.local/ns/shop/sa/checkout",  # a caller's container
    "cluster.local/ns/istio-ingress/sa/aimesh-ingressgateway",
    "cluster.local/ns/aimesh-observability/sa/aimesh-otel-collector",
]


@pytest.mark.parametrize("principal", APPLICATION_IDENTITIES)
def test_a_record_pushed_by_an_application_identity_is_refused(principal: str) -> None:
    policy = collector.allow_telemetry_policy(_settings())
    assert not _allowed(policy, principal, 4317, collector.LOGS_SERVICE)


def test_the_agent_may_send_records_and_proxies_only_spans() -> None:
    settings = _settings()
    policy = collector.allow_telemetry_policy(settings)
    agent = collector.audit_writer_principal(settings)
    assert _allowed(policy, agent, 4317, collector.LOGS_SERVICE)
    assert not _allowed(policy, agent, 4317, collector.TRACES_SERVICE)
    assert _allowed(
        policy, "cluster.local/ns/iris/sa/iris-predictor", 4317, collector.TRACES_SERVICE
    )
    assert not _allowed(policy, agent, 4318, collector.LOGS_SERVICE)


def test_the_collector_takes_log_records_only_over_otlp_from_the_agent() -> None:
    # The collector's logs pipelines start at the OTLP receiver; the proxies no longer send it
    # anything but spans (no access-log service provider in the mesh config).
    config = collector.collector_config(_settings())
    for name, pipeline in config["service"]["pipelines"].items():
        assert pipeline["receivers"] == ["otlp"], name
    providers = telemetry.extension_providers(_settings())
    assert not any(k.startswith("envoy") and k.endswith("Als") for p in providers for k in p)
