"""Every fixture's verdict holds in every served API version and every Helm arrival form.

Policies match on API group and kind. These tests prove it over the whole fixture corpus: each
document of a custom resource kind is re-sent in every other version the pinned upstream CRD
serves (security.istio.io v1/v1beta1, networking.istio.io v1/v1beta1/v1alpha3, ...), and every
Helm document arrives both as `kubernetes:helm.sh/v3:Release` and `kubernetes:helm.sh/v4:Chart`.
Each variant, in both resource forms (CustomResource and typed chart child), must give exactly
the findings of the original.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.policy.support import (
    fixture_files,
    load_fixture,
    needs_descriptor_set,
    objects_of_documents,
    policy_named,
    run_policy,
)
from tools import schemas

HELM_FORMS = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")


@cache
def served_versions() -> dict[tuple[str, str], tuple[str, ...]]:
    """(group, kind) -> every version the pinned upstream CRDs serve."""
    found: dict[tuple[str, str], list[str]] = {}
    for group, version, kind in schemas.crd_schemas():
        found.setdefault((group, kind), []).append(version)
    return {key: tuple(sorted(versions)) for key, versions in found.items()}


def _findings(path: Path, documents: list[dict[str, Any]]) -> list[list[str]]:
    fixture = load_fixture(path)
    policy = policy_named(fixture.policy)
    assert policy is not None
    return [
        sorted(
            f.message
            for f in run_policy(
                policy, objects_of_documents(documents, typed=typed), fixture.config
            )
        )
        for typed in (False, True)
    ]


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_served_version_gives_the_same_verdict(
    path: Path, request: pytest.FixtureRequest
) -> None:
    fixture = load_fixture(path)
    needs_descriptor_set(request, fixture.policy)
    original = _findings(path, fixture.documents)
    for index, document in enumerate(fixture.documents):
        api_version = document.get("apiVersion")
        if not isinstance(api_version, str) or "/" not in api_version:
            continue
        group, _, version = api_version.rpartition("/")
        for other in served_versions().get((group, str(document.get("kind"))), ()):
            if other == version:
                continue
            documents = copy.deepcopy(fixture.documents)
            documents[index]["apiVersion"] = f"{group}/{other}"
            assert _findings(path, documents) == original, f"{fixture.id} as {group}/{other}"


def _helm_paths() -> list[Path]:
    # helm-release-require-rendered-output is about the difference between the two forms (a
    # Release needs a v4 Chart that renders it): swapping them changes the verdict by design.
    return [
        p
        for p in fixture_files()
        if p.parent.name != "helm-release-require-rendered-output"
        and any(
            isinstance(d.get("__pulumi__"), dict) and d["__pulumi__"].get("type") in HELM_FORMS
            for d in load_fixture(p).documents
        )
    ]


@pytest.mark.parametrize("path", _helm_paths(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_helm_release_and_v4_chart_values_agree(path: Path, request: pytest.FixtureRequest) -> None:
    fixture = load_fixture(path)
    needs_descriptor_set(request, fixture.policy)
    documents = copy.deepcopy(fixture.documents)
    for document in documents:
        envelope = document.get("__pulumi__")
        if isinstance(envelope, dict) and envelope.get("type") in HELM_FORMS:
            envelope["type"] = HELM_FORMS[1 - HELM_FORMS.index(envelope["type"])]
    swapped = _findings(path, documents)
    original = _findings(path, fixture.documents)
    assert swapped == original, fixture.id
    assert bool(original[0]) == (fixture.verdict == "fail")
