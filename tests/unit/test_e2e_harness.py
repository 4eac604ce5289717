"""Offline checks of the e2e harness: the committed wrapper modules say what e2e/pins.toml says,
and the report records what happened. The real run is `make e2e` (docs/e2e.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from e2e import checks, toolchain
from e2e.report import Report, ScenarioError

PINS = toolchain.load_pins()


def _requires(module: str) -> dict[str, str]:
    text = (toolchain.MODULES / module / "go.mod").read_text()
    return dict(re.findall(r"^\s*(?:require\s+)?(\S+) (v\S+)(?: // indirect)?$", text, flags=re.M))


def _replaces(module: str) -> dict[str, str]:
    text = (toolchain.MODULES / module / "go.mod").read_text()
    return dict(re.findall(r"^\s*(\S+) => \S+ (v\S+)$", text, flags=re.M))


@pytest.mark.parametrize(
    ("module", "path", "version"),
    [
        ("pulumi", PINS["pulumi"]["module"], PINS["pulumi"]["version"]),
        ("pulumi", "github.com/pulumi/pulumi/sdk/v3", PINS["pulumi"]["sdk_version"]),
        ("provider", PINS["provider"]["module"], PINS["provider"]["version"]),
        ("kube", PINS["kubernetes"]["module"], PINS["kubernetes"]["version"]),
        ("kube", PINS["kwok"]["module"], PINS["kwok"]["version"]),
        ("etcd", PINS["etcd"]["module"], PINS["etcd"]["version"]),
        ("certmanager", PINS["cert-manager"]["module"], PINS["cert-manager"]["version"]),
    ],
)
def test_wrapper_modules_build_the_pinned_versions(module: str, path: str, version: str) -> None:
    # A pin edited without `python -m e2e.toolchain --regen` would build something else.
    assert _requires(module).get(path) == version


def test_every_kubernetes_staging_module_is_one_release() -> None:
    replaces = _replaces("kube")
    staging = {name: v for name, v in _requires("kube").items() if name.startswith("k8s.io/")}
    assert len(replaces) >= 30
    assert set(replaces.values()) == {PINS["kubernetes"]["staging_version"]}
    # A staging module the build uses but nothing replaces would resolve to another release.
    for name, version in staging.items():
        if version == "v0.0.0":
            assert name in replaces


def test_wrapper_modules_have_checksums() -> None:
    for module in ("pulumi", "provider", "kube", "etcd", "certmanager"):
        go_sum = (toolchain.MODULES / module / "go.sum").read_text()
        assert go_sum.count(" h1:") > 50, module


def test_staging_replaces_come_from_the_kubernetes_go_mod() -> None:
    kube_mod = (
        "require (\n\tk8s.io/api v0.0.0\n\tk8s.io/utils v0.0.0-2026\n\tk8s.io/kubelet v0.0.0\n)\n"
    )
    assert toolchain._staging_replaces(kube_mod, "v0.36.3") == [
        "\tk8s.io/api => k8s.io/api v0.36.3",
        "\tk8s.io/kubelet => k8s.io/kubelet v0.36.3",
    ]


def test_toolchain_hash_covers_pins_and_modules() -> None:
    first = toolchain.pins_hash()
    assert first == toolchain.pins_hash()
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert toolchain.current().root.name == first


def test_cache_root_honours_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIMESH_E2E_CACHE", str(tmp_path))
    assert toolchain.cache_root() == tmp_path.resolve()


def test_report_records_pass_fail_and_stops(tmp_path: Path) -> None:
    report = Report(tmp_path / "report.json")
    with report.step("first", "passes") as step:
        step.counts = {"resources": 3}
    with pytest.raises(ScenarioError), report.step("second", "fails"):
        raise ScenarioError("the cluster changed")
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["result"] == "fail"
    assert [(s["name"], s["status"]) for s in data["steps"]] == [
        ("first", "pass"),
        ("second", "fail"),
    ]
    assert data["steps"][0]["counts"] == {"resources": 3}
    assert data["steps"][1]["detail"] == "the cluster changed"
    assert report.summary().splitlines()[-1] == "1 passed, 1 failed"


def test_differences_sees_pruned_and_rewritten_fields() -> None:
    want = {"spec": {"mtls": {"mode": "STRICT"}, "ports": [{"port": 8080}]}}
    live = {"spec": {"mtls": {"mode": "STRICT"}, "ports": [{"port": "8080", "protocol": "TCP"}]}}
    assert checks.differences(want, live) == []  # defaults added, int-or-string: the same
    assert checks.differences({"spec": {"typo": 1}}, {"spec": {}}) == [
        ".spec.typo: missing in the API server (pruned or dropped?)"
    ]
    assert checks.differences({"spec": {"mode": "STRICT"}}, {"spec": {"mode": "PERMISSIVE"}})
    assert checks.differences({"a": [1, 2]}, {"a": [1]})


def test_differences_skip_secret_inputs() -> None:
    secret = {checks.SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:abc"}
    assert checks.differences({"data": secret}, {"data": {"x": "eA=="}}) == []


def test_plaintext_secrets_finds_values_and_keys() -> None:
    exported = (
        '{"outputs": {"password": "hunter2-long", "other": "-----BEGIN EC PRIVATE KEY-----"}}'
    )
    assert checks.plaintext_secrets(exported, ["hunter2-long", "absent"]) == [
        "secret value #0",
        "private key material",
    ]
    assert checks.plaintext_secrets('{"ciphertext": "v1:x"}', ["hunter2-long"]) == []


def test_state_objects_skip_charts_providers_reads_and_rendered_only() -> None:
    mirror = "urn:pulumi:e2e::aimesh::pulumi:providers:kubernetes::aimesh-cert-manager-rendered"
    deployment = {
        "resources": [
            {"type": "pulumi:providers:kubernetes", "custom": True},
            {
                "type": "pulumi:providers:kubernetes",
                "custom": True,
                "urn": mirror,
                "id": "p1",
                "inputs": {"renderYamlToDirectory": "rendered/releases/cert-manager"},
            },
            {
                # An object of a Release's mirror: written as YAML, never sent to the cluster.
                "type": "kubernetes:apps/v1:Deployment",
                "custom": True,
                "provider": f"{mirror}::p1",
                "outputs": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "cert-manager", "namespace": "cert-manager"},
                },
            },
            {"type": "kubernetes:helm.sh/v3:Release", "custom": True, "outputs": {}},
            {
                "type": "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
                "custom": True,
                "external": True,
                "outputs": {
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition",
                    "metadata": {"name": "x"},
                },
            },
            {
                "type": "kubernetes:security.istio.io/v1:PeerAuthentication",
                "custom": True,
                "outputs": {
                    "apiVersion": "security.istio.io/v1",
                    "kind": "PeerAuthentication",
                    "metadata": {"name": "default", "namespace": "istio-system"},
                },
            },
        ]
    }
    refs = [ref for _, ref in checks.state_objects(deployment)]
    assert [str(r) for r in refs] == ["PeerAuthentication istio-system/default"]


def test_cert_manager_controller_is_the_charts_release() -> None:
    # The controller that issues the e2e certificates is the release the chart installs.
    assert PINS["cert-manager"]["module"] == PINS["charts"]["cert-manager"]["module"]
    assert PINS["cert-manager"]["version"] == PINS["charts"]["cert-manager"]["version"]


def test_cert_manager_main_compiles_in_only_the_issuer_chain() -> None:
    main = (toolchain.MODULES / "certmanager" / "main.go").read_text()
    assert main == toolchain.CERT_MANAGER_MAIN
    imported = set(re.findall(r'_ "github.com/cert-manager/cert-manager/pkg/([\w/]+)"', main))
    assert "controller/certificaterequests/approver" in imported
    assert {"issuer/selfsigned", "issuer/ca"} <= imported
    # No ACME, Vault or Venafi: nothing in the e2e stack uses them.
    assert not [p for p in imported if re.search(r"acme|vault|venafi", p)]


class _FakeApi:
    """Discovery of one cluster-scoped and one namespaced kind, and the live objects."""

    def __init__(self, live: dict[str, dict[str, object]]) -> None:
        self.live = live

    def request(self, method: str, path: str, *_: object, **__: object) -> dict[str, object]:
        if path == "/apis":
            return {"groups": [{"versions": [{"groupVersion": "cert-manager.io/v1"}]}]}
        if path == "/apis/cert-manager.io/v1":
            return {
                "resources": [
                    {"name": "clusterissuers", "kind": "ClusterIssuer", "namespaced": False},
                    {"name": "certificates", "kind": "Certificate", "namespaced": True},
                ]
            }
        return {"resources": []}

    def get(self, path: str) -> dict[str, object] | None:
        return self.live.get(path)


def _issuer_state(kind: str, metadata: dict[str, str]) -> dict[str, object]:
    return {
        "type": "kubernetes:cert-manager.io/v1:" + kind,
        "custom": True,
        "inputs": {"metadata": metadata, "spec": {"selfSigned": {}}},
        "outputs": {
            "apiVersion": "cert-manager.io/v1",
            "kind": kind,
            # The provider's outputs carry no namespace for a cluster-scoped object.
            "metadata": {
                k: v for k, v in metadata.items() if k == "name" or kind != "ClusterIssuer"
            },
        },
    }


def test_verify_objects_ignores_a_namespace_on_cluster_scoped_inputs() -> None:
    # The provider defaults the namespace of a custom resource whose CRD it cannot see yet;
    # a cluster-scoped object has none in the API server, and that is no difference.
    live = {
        "/apis/cert-manager.io/v1/clusterissuers/root": {
            "metadata": {"name": "root"},
            "spec": {"selfSigned": {}},
        }
    }
    api = _FakeApi(live)
    resources = checks.Resources(api)  # type: ignore[arg-type]
    issuer = _issuer_state("ClusterIssuer", {"name": "root", "namespace": "default"})
    verified = checks.verify_objects(api, resources, {"resources": [issuer]})  # type: ignore[arg-type]
    assert verified["verified_in_api"] == 1
    # A namespaced object missing its namespace is still a difference.
    state = {"resources": [_issuer_state("Certificate", {"name": "c", "namespace": "x"})]}
    live["/apis/cert-manager.io/v1/namespaces/x/certificates/c"] = {
        "metadata": {"name": "c"},
        "spec": {"selfSigned": {}},
    }
    with pytest.raises(AssertionError, match=r"metadata\.namespace: missing"):
        checks.verify_objects(api, resources, state)  # type: ignore[arg-type]


class _OneObjectApi:
    """Stands in for the API server's GET of one object (the fingerprint's only input)."""

    def __init__(self, live: dict[str, Any]) -> None:
        self.live = live

    def get(self, path: str) -> dict[str, Any]:
        return self.live


class _Paths:
    def path(self, ref: Any) -> str:
        return str(ref)


def test_a_controllers_status_write_is_not_a_change_but_a_clients_write_is() -> None:
    cronjob: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "w", "namespace": "m", "labels": {"a": "1"}},
        "spec": {"schedule": "*/5 * * * *"},
    }
    deployment = {
        "resources": [{"type": "kubernetes:batch/v1:CronJob", "custom": True, "outputs": cronjob}]
    }

    def fingerprint(live: dict[str, Any]) -> dict[str, str]:
        api = _OneObjectApi(live)
        return checks.object_fingerprints(api, _Paths(), deployment)  # type: ignore[arg-type]

    before = fingerprint({**cronjob, "metadata": {**cronjob["metadata"], "resourceVersion": "1"}})
    fired = {
        **cronjob,
        "metadata": {**cronjob["metadata"], "resourceVersion": "2", "managedFields": [{}]},
        "status": {"lastScheduleTime": "2026-12-04T20:45:00Z"},
    }
    assert fingerprint(fired) == before
    relabelled = {**cronjob, "metadata": {**cronjob["metadata"], "labels": {"a": "2"}}}
    assert fingerprint(relabelled) != before
    assert fingerprint({**cronjob, "spec": {"schedule": "* * * * *"}}) != before
