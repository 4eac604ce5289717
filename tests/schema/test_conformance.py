"""Every Kubernetes object and every Helm chart's values that ANY stack registers, checked
against the upstream schemas of the pinned versions. Generic over all registered resources, so
what any component adds is covered without touching this file."""

from __future__ import annotations

from typing import Any

import pytest

from aimesh import versions
from tools import offline, schemas

SECRET_SIG = "4dabf18193072939515e22adb298388d"
CHART_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
ISTIO_CHARTS = {"base": "istio-base", "istiod": "istiod", "gateway": "istio-gateway"}
# Published chart name -> its reference data (istio-csr's chart lives in `istio-csr/` upstream).
CHART_KEYS = {"cert-manager-istio-csr": "istio-csr"}

pytestmark = pytest.mark.usefixtures("upstream_available")


def reveal(value: Any) -> Any:
    """Secret-wrapped values (as the mocks record them) replaced by what they wrap."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return reveal(value.get("value"))
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def chart_values_key(chart: offline.ChartInstall) -> str | None:
    """The `tools.schemas.CHART_VALUES` key of an installed chart, None if it has no
    reference values. Istio's chart names are generic (`base`, `gateway`), so Istio's
    repository disambiguates them."""
    if chart.repo == versions.ISTIO_REPO:
        return ISTIO_CHARTS.get(chart.name)
    if chart.name in CHART_KEYS:
        return CHART_KEYS[chart.name]
    return chart.name if chart.name in schemas.CHART_VALUES else None


def _charts(evaluation: offline.Evaluation) -> list[offline.ChartInstall]:
    return evaluation.chart_installs()


def _is_patch(resource: offline.Registered) -> bool:
    # `*Patch` resources are partial objects by design (server-side apply of a few fields).
    return resource.type.endswith("Patch")


def test_every_kubernetes_object_validates(stack_evaluation: offline.Evaluation) -> None:
    objects = [
        r
        for r in stack_evaluation.resources
        if r.type.startswith("kubernetes:")
        and r.custom
        and r.type not in CHART_TYPES
        and isinstance(r.inputs.get("kind"), str)
        and not _is_patch(r)
    ]
    assert objects, "no Kubernetes objects found: the check would be vacuous"
    problems = [p for r in objects for p in schemas.validate(reveal(r.inputs))]
    assert problems == []


def test_patches_name_a_known_kind(stack_evaluation: offline.Evaluation) -> None:
    for patch in (r for r in stack_evaluation.resources if _is_patch(r)):
        assert patch.inputs["metadata"]["name"]
        kind = patch.type.rsplit(":", 1)[-1].removesuffix("Patch")
        assert patch.inputs["kind"] == kind


def test_every_chart_is_pinned(stack_evaluation: offline.Evaluation) -> None:
    charts = _charts(stack_evaluation)
    assert charts
    for chart in charts:
        assert chart.version, f"{chart.release}: chart version must be pinned"


def test_every_chart_values_key_exists_upstream(stack_evaluation: offline.Evaluation) -> None:
    problems: list[str] = []
    checked = 0
    for chart in _charts(stack_evaluation):
        values = reveal(chart.values)
        key = chart_values_key(chart)
        if key is None:
            if values:
                problems.append(f"{chart.release}: no upstream reference values for its chart")
            continue
        checked += 1
        problems += [f"{chart.release}: {p}" for p in schemas.validate_values(key, values)]
    assert checked, "no chart values were checked"
    assert problems == []


@pytest.mark.parametrize(
    ("chart", "repo", "key"),
    [
        ("base", versions.ISTIO_REPO, "istio-base"),
        ("gateway", versions.ISTIO_REPO, "istio-gateway"),
        ("cert-manager", versions.CERT_MANAGER_REPO, "cert-manager"),
        ("cert-manager-istio-csr", versions.CERT_MANAGER_REPO, "istio-csr"),
        (f"{versions.KSERVE_OCI}/kserve-resources", None, "kserve-resources"),
        (f"{versions.KSERVE_OCI}/kserve-crd", None, None),
    ],
)
def test_chart_values_key(chart: str, repo: str | None, key: str | None) -> None:
    install = offline.ChartInstall(
        urn="urn",
        type=CHART_TYPES[1],
        release="x",
        chart=chart,
        version="1",
        repo=repo,
        namespace="n",
        values={},
    )
    assert chart_values_key(install) == key
