"""Offline chart sources, bring-your-own components and the extra-objects escape hatch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from aimesh import settings, versions
from aimesh.builders import bring_your_own
from aimesh.builders.charts import ChartLocation, chart_name, locate, rendered_from
from aimesh.settings import ConfigError
from tools import offline

KIND = {"clusterMode": "render"}


def parsed(**raw: Any) -> settings.Settings:
    return settings.parse({**KIND, **raw})


def test_upstream_is_the_default() -> None:
    s = parsed()
    where = locate(s, "cert-manager", versions.CERT_MANAGER, versions.CERT_MANAGER_REPO)
    assert where == ChartLocation("cert-manager", versions.CERT_MANAGER_REPO)


def test_directory_takes_the_helm_pull_archive(tmp_path: Path) -> None:
    archive = tmp_path / f"kserve-crd-{versions.KSERVE}.tgz"
    archive.write_bytes(b"")
    s = parsed(chartSource="directory", chartDirectory=str(tmp_path))
    where = locate(s, f"{versions.KSERVE_OCI}/kserve-crd", versions.KSERVE, None)
    assert where == ChartLocation(str(archive.resolve()), None)


def test_directory_takes_an_unpacked_chart_of_the_pinned_version(tmp_path: Path) -> None:
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "Chart.yaml").write_text(f"name: gateway\nversion: {versions.ISTIO}\n")
    s = parsed(chartSource="directory", chartDirectory=str(tmp_path))
    assert locate(s, "gateway", versions.ISTIO, versions.ISTIO_REPO).chart == str(
        (tmp_path / "gateway").resolve()
    )


def test_directory_never_installs_another_version(tmp_path: Path) -> None:
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "Chart.yaml").write_text("name: gateway\nversion: 1.29.0\n")
    s = parsed(chartSource="directory", chartDirectory=str(tmp_path))
    with pytest.raises(ConfigError, match=r"^aimesh:chartDirectory: "):
        locate(s, "gateway", versions.ISTIO, versions.ISTIO_REPO)


def test_directory_missing_a_chart_names_the_key_and_the_fix(tmp_path: Path) -> None:
    s = parsed(chartSource="directory", chartDirectory=str(tmp_path))
    with pytest.raises(ConfigError, match=r"^aimesh:chartDirectory: .*helm pull"):
        locate(s, "istiod", versions.ISTIO, versions.ISTIO_REPO)


@pytest.mark.parametrize(
    ("mirror", "expected"),
    [
        (
            "https://charts.corp.example/aimesh/",
            ChartLocation("istiod", "https://charts.corp.example/aimesh"),
        ),
        (
            "oci://registry.corp.example/charts",
            ChartLocation("oci://registry.corp.example/charts/istiod", None),
        ),
    ],
)
def test_mirror_serves_every_chart_under_its_name(mirror: str, expected: ChartLocation) -> None:
    s = parsed(chartSource="mirror", chartMirror=mirror)
    assert locate(s, "istiod", versions.ISTIO, versions.ISTIO_REPO) == expected


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"chartSource": "directory"}, "aimesh:chartDirectory"),
        ({"chartSource": "mirror"}, "aimesh:chartMirror"),
        ({"chartDirectory": "/charts"}, "aimesh:chartDirectory"),
        ({"chartSource": "mirror", "chartMirror": "http://plain.example"}, "aimesh:chartMirror"),
        ({"bringYourOwn": ["istio", "istio"]}, "aimesh:bringYourOwn[1]"),
        ({"bringYourOwn": ["linkerd"]}, "aimesh:bringYourOwn[0]"),
        ({"bringYourOwn": ["istio"], "meshCa": "cert-manager"}, "aimesh:meshCa"),
        (
            {"extraObjects": [{"kind": "ConfigMap", "metadata": {"name": "x"}}]},
            "aimesh:extraObjects[0].apiVersion",
        ),
        (
            {"extraObjects": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}]},
            "aimesh:extraObjects[0].metadata.name",
        ),
    ],
)
def test_bad_sources_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        parsed(**raw)


def test_chart_name_of_oci_references() -> None:
    assert chart_name("oci://ghcr.io/kserve/charts/kserve-crd") == "kserve-crd"
    assert chart_name("cert-manager") == "cert-manager"


def test_bring_your_own_lists_the_crds_aimesh_objects_need() -> None:
    s = parsed(bringYourOwn=["istio"])
    assert bring_your_own.crds(s, "istio") == bring_your_own.CRDS["istio"]
    assert bring_your_own.crds(s, "kserve") == ()
    assert bring_your_own.foreign_namespaces(s) == {"istio-system", "istio-ingress"}


def test_every_custom_resource_kind_the_dev_stack_registers_has_a_checked_crd() -> None:
    # A bring-your-own component must check every CRD aimesh's objects are instances of.
    checked = {crd.split(".", 1)[1] for crds in bring_your_own.CRDS.values() for crd in crds}
    evaluation = offline.evaluate_stack("dev")
    groups = {
        str(m["apiVersion"]).rpartition("/")[0]
        for m in evaluation.manifests()
        if "." in str(m.get("apiVersion", "")).rpartition("/")[0]
        and not str(m["apiVersion"]).startswith(
            ("rbac.", "networking.k8s.io", "batch", "apps", "admissionregistration.")
        )
    }
    assert groups <= checked, groups - checked


def _config(**extra: str) -> dict[str, str]:
    config, _ = offline.stack_config("ci")
    return {**config, **extra}


def test_bring_your_own_installs_no_chart_and_keeps_every_security_object() -> None:
    everything = '["certManager", "istio", "kserve", "monitoring", "collector"]'
    full = offline.evaluate(_config(), stack="ci")
    byo = offline.evaluate(_config(**{"aimesh:bringYourOwn": everything}), stack="ci")
    charts = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
    assert [r for r in byo.resources if r.type in charts] == []

    def objects(evaluation: offline.Evaluation) -> set[tuple[str, str]]:
        return {
            (str(m["kind"]), str(m["metadata"]["name"]))
            for m in evaluation.manifests()
            if m.get("kind") != "Namespace"
        }

    assert objects(full) == objects(byo)


def test_extra_objects_are_registered_as_they_are() -> None:
    extra = (
        '[{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", '
        '"metadata": {"name": "team-allow", "namespace": "payments"}, '
        '"spec": {"action": "ALLOW", "rules": [{"from": [{"source": {"principals": '
        '["cluster.local/ns/payments/sa/checkout"]}}]}]}}]'
    )
    evaluation = offline.evaluate(_config(**{"aimesh:extraObjects": extra}), stack="ci")
    (registered,) = [
        r
        for r in evaluation.resources
        if r.name == "aimesh-extra-authorizationpolicy-payments-team-allow"
    ]
    assert registered.inputs["spec"]["action"] == "ALLOW"
    assert registered.inputs["metadata"] == {"name": "team-allow", "namespace": "payments"}
    assert any(r.type == "aimesh:extraObjects:ExtraObjects" for r in evaluation.resources)


def test_the_rendered_from_stamp_changes_with_every_chart_input() -> None:
    base: dict[str, Any] = {
        "release": "istiod",
        "namespace": "istio-system",
        "where": ChartLocation("istiod", "https://istio-release.storage.googleapis.com/charts"),
        "version": "1.30.3",
        "skip_crds": False,
        "values": {"pilot": {"replicaCount": 2}},
    }
    stamp = rendered_from(**base)
    assert stamp.startswith("istio-system/istiod sha256:")
    # Nulls decide nothing, whole floats are integers (as the engine hands values to the pack).
    assert rendered_from(**{**base, "values": {"pilot": {"replicaCount": 2.0, "env": None}}}) == (
        stamp
    )
    for key, other in (
        ("release", "istiod-canary"),
        ("namespace", "istio-canary"),
        ("where", ChartLocation("istiod", "https://mirror.example.com")),
        ("where", ChartLocation("/charts/istiod-1.30.3.tgz", None)),
        ("version", "1.30.2"),
        ("skip_crds", True),
        ("values", {"pilot": {"replicaCount": 3}}),
    ):
        assert rendered_from(**{**base, key: other}) != stamp, key
