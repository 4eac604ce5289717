"""Bad config, table-driven: each case names the exact key path and what is allowed, and fails
before the program registers a single resource (settings.load() runs first in __main__.py)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from aimesh import settings
from aimesh.config_source import ConfigSource
from tools import offline

MODEL = {"name": "iris", "format": "sklearn", "storageUri": "gs://models/iris"}


@dataclass(frozen=True)
class Bad:
    id: str
    config: dict[str, Any]
    # Every fragment must appear in the error (key path first, then what is allowed).
    expected: tuple[str, ...]


SPLUNK = {
    "name": "splunk",
    "type": "splunkHec",
    "endpoint": "https://hec.example.com:8088/services/collector",
}

CASES = [
    Bad(
        "unknown-top-level-key",
        {"clusterMod": "kind"},
        ("aimesh:clusterMod: unknown key", 'given "kind"', "did you mean `aimesh:clusterMode`?"),
    ),
    Bad(
        "unknown-nested-key",
        {"models": [{**MODEL, "minReplica": 2}]},
        ("aimesh:models[0].minReplica: unknown key (given 2)", "did you mean `minReplicas`?"),
    ),
    Bad(
        "unknown-deeply-nested-key",
        {"models": [{**MODEL, "resources": {"cpus": "2"}}]},
        ("aimesh:models[0].resources.cpus: unknown key", "did you mean `cpu`?"),
    ),
    Bad(
        "unknown-key-nothing-close-few-choices",
        {"models": [{**MODEL, "resources": {"disk": "2Gi"}}]},
        ("aimesh:models[0].resources.disk: unknown key", "cpu", "memory", "gpu"),
    ),
    Bad(
        "wrong-enum-cluster-mode",
        {"clusterMode": "minikube"},
        (
            "aimesh:clusterMode: must be one of 'kind', 'existing' or 'render'",
            'given "minikube"',
        ),
    ),
    Bad(
        "misspelt-enum-value",
        {
            "models": [
                {**MODEL, "callers": [{"namespace": "a", "serviceAccount": "b", "role": "invok"}]}
            ]
        },
        ("aimesh:models[0].callers[0].role: must be one of", "did you mean `invoke`?"),
    ),
    Bad(
        "wrong-enum-egress",
        {"outboundTrafficPolicy": "allow"},
        ("aimesh:outboundTrafficPolicy: must be one of 'REGISTRY_ONLY' or 'ALLOW_ANY'",),
    ),
    Bad(
        "wrong-enum-issuer",
        {"issuerType": "vault"},
        ("aimesh:issuerType: must be one of 'selfSignedCA', 'acme' or 'existing'",),
    ),
    Bad(
        "http-storage-uri",
        {"models": [{**MODEL, "storageUri": "http://models.example.com/iris"}]},
        ("aimesh:models[0].storageUri:", "gs://", "s3://", "https://", "pvc://"),
    ),
    Bad(
        "duplicate-model-names",
        {"models": [MODEL, {**MODEL, "namespace": "iris-2"}]},
        ("aimesh:models[1].name: 'iris' is already used by models[0]", "must be unique"),
    ),
    Bad(
        "acme-without-email",
        {"issuerType": "acme"},
        ("aimesh:acmeEmail: required when issuerType is 'acme'",),
    ),
    Bad(
        "existing-issuer-without-name",
        {"issuerType": "existing"},
        ("aimesh:existingIssuerName: required when issuerType is 'existing'",),
    ),
    Bad(
        "weak-ecdsa-key",
        {"certKeySize": 128},
        ("aimesh:certKeySize: 128 is too weak", "must be one of 256, 384"),
    ),
    Bad(
        "weak-rsa-key",
        {"certKeyAlgorithm": "RSA", "certKeySize": 1024},
        ("aimesh:certKeySize: 1024 is too weak", "must be one of 2048, 3072, 4096"),
    ),
    Bad(
        "existing-cluster-without-kubeconfig",
        {"clusterMode": "existing"},
        (
            "aimesh:kubeContext: required value is not set",
            "set one of them",
            "'aimesh:kubeContext' <context-name>",
            "--secret 'aimesh:kubeconfig' < ./kubeconfig.yaml",
        ),
    ),
    Bad(
        "splunk-sink-without-its-token",
        {"siemSinks": [SPLUNK]},
        (
            "aimesh:siemSinks[0].token: required secret is not set",
            "Splunk HEC token of SIEM sink 'splunk'",
            "--secret --path 'aimesh:siemSinks[0].token'",
        ),
    ),
    Bad(
        "alert-receiver-without-its-credential",
        {"alertReceivers": [{"name": "oncall", "type": "pagerduty"}]},
        (
            "aimesh:alertReceivers[0].credential: required secret is not set",
            "PagerDuty routing key",
            "--secret --path 'aimesh:alertReceivers[0].credential'",
        ),
    ),
    Bad(
        "existing-mesh-ca-without-its-pki",
        {"meshCa": "cert-manager", "meshCaIssuer": "existing"},
        (
            "aimesh:meshCaCertificate: required value is not set",
            "'aimesh:meshCaCertificate' < ./mesh-intermediate.pem",
            "aimesh:meshCaKey: required secret is not set",
            "--secret 'aimesh:meshCaKey' < ./mesh-intermediate.key",
            "aimesh:meshTrustRoots[0]: required value is not set",
            "--path 'aimesh:meshTrustRoots[0].pem' < ./root-ca.pem",
        ),
    ),
    Bad(
        "existing-issuer-of-yours-without-roots",
        {"meshCa": "cert-manager", "meshCaIssuer": "existing", "meshCaIssuerName": "vault"},
        ("aimesh:meshTrustRoots[0]: required value is not set",),
    ),
    Bad(
        "mesh-ca-key-without-cert-manager",
        {"meshCaIssuerName": "vault"},
        ("aimesh:meshCaIssuerName: only used with meshCa 'cert-manager'",),
    ),
    Bad(
        "self-signed-mesh-ca-with-roots",
        {"meshCa": "cert-manager", "meshTrustRoots": [{"name": "r", "pem": "x"}]},
        ("aimesh:meshTrustRoots[0]:", "pem is not PEM"),
    ),
    Bad(
        "mesh-cert-duration-too-long",
        {"meshCertDuration": "48h"},
        ("aimesh:meshCertDuration:", "outside 10m..24h"),
    ),
    Bad(
        "mesh-cert-duration-not-a-duration",
        {"meshCertDuration": "one hour"},
        ("aimesh:meshCertDuration:", "is not a duration"),
    ),
    Bad(
        "same-kind-ports",
        {"kindHttpPort": 8443, "kindHttpsPort": 8443},
        ("aimesh:kindHttpsPort: must differ from kindHttpPort",),
    ),
    Bad(
        "port-out-of-range",
        {"kindHttpPort": 70000},
        ("aimesh:kindHttpPort:", "65535"),
    ),
    Bad(
        "replicas-not-an-integer",
        {"istiodReplicas": "two"},
        ("aimesh:istiodReplicas:", "integer"),
    ),
    Bad(
        "model-in-the-gateway-namespace",
        {"models": [{**MODEL, "namespace": "istio-ingress"}]},
        ("'istio-ingress' is reserved for the platform", "aimesh-observability", "kube-system"),
    ),
    Bad(
        # Stack config arrives as JSON text: an unquoted 1.30 would be the number 1.3.
        "kubernetes-version-without-v",
        {"clusterMode": "render", "kubernetesVersion": 1.3},
        ("aimesh:kubernetesVersion:", "with its v", "v1.35"),
    ),
    Bad(
        "trust-domain-not-a-hostname",
        {"trustDomain": "Cluster Local"},
        ("aimesh:trustDomain:", "not a valid lowercase DNS hostname"),
    ),
    Bad(
        "audit-mode-without-reason-and-end",
        {"models": [{**MODEL, "authorization": {"mode": "audit"}}]},
        ("aimesh:models[0].authorization: mode 'audit' needs 'reason' and 'until'", "YYYY-MM-DD"),
    ),
    Bad(
        "audit-mode-until-not-a-date",
        {"models": [{**MODEL, "authorization": {"mode": "audit", "reason": "r", "until": "soon"}}]},
        ("aimesh:models[0].authorization.until: 'soon' is not a calendar date", "YYYY-MM-DD"),
    ),
    Bad(
        "enforce-with-an-end-date",
        {"models": [{**MODEL, "authorization": {"until": "2027-01-01"}}]},
        ("aimesh:models[0].authorization: 'reason' and 'until' belong to mode 'audit'",),
    ),
    Bad(
        "unknown-authorization-mode",
        {"models": [{**MODEL, "authorization": {"mode": "dry-run"}}]},
        ("aimesh:models[0].authorization.mode: must be one of 'enforce' or 'audit'",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_parse_names_key_path_and_allowed_values(case: Bad) -> None:
    with pytest.raises(settings.ConfigError) as raised:
        settings.parse(case.config)
    message = str(raised.value)
    for fragment in case.expected:
        assert fragment in message


class _Recording(offline.Evaluation):
    """An Evaluation that remembers itself, so a run that raises can still be inspected."""

    last: offline.Evaluation | None = None

    def __init__(self) -> None:
        super().__init__()
        _Recording.last = self


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_program_fails_before_registering_anything(
    case: Bad, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offline, "Evaluation", _Recording)
    values = {**offline.project_defaults(), **{f"aimesh:{k}": v for k, v in case.config.items()}}
    config, secret_keys = offline.encode_config(values)
    with pytest.raises(pulumi.RunError) as raised:
        offline.evaluate(config, secret_keys=secret_keys)
    for fragment in case.expected:
        assert fragment in str(raised.value)
    assert _Recording.last is not None
    assert _Recording.last.resources == [], "a resource was registered before config was valid"


def test_the_recorder_does_see_registrations(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above is only meaningful if a valid config does register resources."""
    monkeypatch.setattr(offline, "Evaluation", _Recording)
    config, secret_keys = offline.encode_config(offline.project_defaults())
    offline.evaluate(config, secret_keys=secret_keys)
    assert _Recording.last is not None
    assert any(r.type == "aimesh:cluster:Cluster" for r in _Recording.last.resources)


def test_project_defaults_are_valid_and_secure() -> None:
    parsed = settings.parse({k.split(":", 1)[1]: v for k, v in offline.project_defaults().items()})
    assert parsed.outbound_traffic_policy == "REGISTRY_ONLY"
    assert parsed.cluster_mode == "kind"
    assert (parsed.cert_key_algorithm, parsed.cert_key_size) == ("ECDSA", 256)


# ---- where an error points, and what it shows ---------------------------------------------------


STACK_FILE = """\
config:
  aimsh:clusterName: foo
  kubernetes:context: kind-aimesh
  aimesh:environment: dev
  aimesh:grafanaAdminPasword:
    secure: AAABAHsecret
  aimesh:models:
    - name: iris
      format: sklearn
      storageUri: gs://models/iris
      callers:
        - {namespace: shop, serviceAccount: web, role: invok}
"""


def _errors(tmp_path: Path, text: str = STACK_FILE) -> list[str]:
    (tmp_path / "Pulumi.yaml").write_text("name: aimesh\nruntime: python\nconfig: {}\n")
    (tmp_path / "Pulumi.t.yaml").write_text(text)
    values = yaml.safe_load(text)["config"]
    secret = [k for k, v in values.items() if isinstance(v, dict) and set(v) == {"secure"}]
    source = ConfigSource.for_stack(tmp_path, "t", secret)
    with pytest.raises(settings.ConfigError) as raised:
        settings.parse_stack(values, source)
    lines = str(raised.value).splitlines()
    assert lines[0] == "invalid stack configuration:"
    return [line.removeprefix("  - ") for line in lines[1:]]


def test_every_error_names_the_file_and_line_the_key_and_the_nearest_valid_key(
    tmp_path: Path,
) -> None:
    errors = _errors(tmp_path)
    stack_file = tmp_path / "Pulumi.t.yaml"
    by_key = {e.split(": ", 2)[1]: e for e in errors}
    assert set(by_key) == {
        "aimsh:clusterName",
        "aimesh:grafanaAdminPasword",
        "aimesh:models[0].callers[0].role",
    }
    assert by_key["aimsh:clusterName"].startswith(f"{stack_file}:2: ")
    assert "unknown namespace `aimsh`" in by_key["aimsh:clusterName"]
    assert "did you mean `aimesh:clusterName`?" in by_key["aimsh:clusterName"]
    assert by_key["aimesh:models[0].callers[0].role"].startswith(f"{stack_file}:12: ")
    assert "did you mean `aimesh:grafanaAdminPassword`" in by_key["aimesh:grafanaAdminPasword"]


def test_a_secret_value_is_never_shown(tmp_path: Path) -> None:
    (secret,) = [e for e in _errors(tmp_path) if "grafanaAdminPasword" in e]
    assert "(given [secret])" in secret
    assert "AAAB" not in "\n".join(_errors(tmp_path))


def test_provider_namespaces_are_not_ours_to_judge(tmp_path: Path) -> None:
    errors = _errors(tmp_path)
    assert not [e for e in errors if "kubernetes:" in e]


def test_the_program_reports_the_same_errors_under_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """settings.load() (what `pulumi preview` runs) finds Pulumi.<stack>.yaml itself."""
    monkeypatch.chdir(tmp_path)
    expected = _errors(tmp_path)
    values = yaml.safe_load(STACK_FILE)["config"]
    config, secret_keys = offline.encode_config(values)
    with pytest.raises(pulumi.RunError) as raised:
        offline.evaluate(config, secret_keys=secret_keys, stack="t")
    shown = [line.removeprefix("  - ") for line in str(raised.value).splitlines()[1:]]
    assert [e.replace(f"{tmp_path}/", "") for e in expected] == shown


UNTIL_FORMS = ["2027-01-15", datetime.date(2027, 1, 15), "2027-01-15T00:00:00Z"]


@pytest.mark.parametrize("until", UNTIL_FORMS)
def test_audit_until_reads_the_forms_yaml_and_pulumi_hand_over(until: object) -> None:
    model = {**MODEL, "authorization": {"mode": "audit", "reason": "r", "until": until}}
    parsed = settings.parse({"models": [model]}).models[0].authorization
    assert parsed.until == datetime.date(2027, 1, 15)
