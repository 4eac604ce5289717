"""Shared helpers of the policy tests: fixture files -> objects, and running one policy."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi_policy
import pytest
import yaml
from aimesh_policies import all_policies
from aimesh_policies.accessors import SENTINEL_UNKNOWN_STRING
from aimesh_policies.framework import Context, Finding, Policy, evaluate, evaluate_stack
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.objects import to_objects

FIXTURES = Path(__file__).parent / "fixtures"
# Resource options as the analyzer builds them (the policies never read them).
OPTS = pulumi_policy.PolicyResourceOptions(
    False, [], None, [], pulumi_policy.PolicyCustomTimeouts(0, 0, 0), []
)
UNKNOWN_TOKEN = "<unknown>"
_HEADER = re.compile(r"^#\s*(expect|config):\s*(.*)$")
# Dates relative to the day the test runs (exemption expiries, audit-mode end dates), so that a
# fixture's verdict never changes with the calendar: `{{today}}`, `{{today+30d}}`, `{{today-1d}}`.
_DAY = re.compile(r"\{\{today(?:([+-][0-9]+)d)?\}\}")


def with_days(text: str, on: datetime.date | None = None) -> str:
    """`text` with every `{{today[+-N]d}}` replaced by that day (UTC), as YYYY-MM-DD."""
    base = on or datetime.datetime.now(datetime.UTC).date()
    return _DAY.sub(
        lambda m: (base + datetime.timedelta(days=int(m.group(1) or 0))).isoformat(), text
    )


@dataclass(frozen=True)
class Fixture:
    path: Path
    policy: str
    verdict: str  # "pass" | "fail"
    documents: list[dict[str, Any]]
    expect: list[str]
    config: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.policy}/{self.path.name}"


def fixture_files() -> list[Path]:
    return sorted(FIXTURES.glob("*/*.yaml"))


def load_fixture(path: Path) -> Fixture:
    text = with_days(path.read_text())
    expect: list[str] = []
    config: dict[str, Any] = {}
    for line in text.splitlines():
        match = _HEADER.match(line.strip())
        if match and match.group(1) == "expect":
            expect.append(match.group(2).strip())
        elif match and match.group(1) == "config":
            config.update(json.loads(match.group(2)))
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    verdict = path.stem.rsplit("-", 1)[-1]
    return Fixture(path, path.parent.name, verdict, documents, expect, config)


def _with_unknowns(value: Any) -> Any:
    if value == UNKNOWN_TOKEN:
        return SENTINEL_UNKNOWN_STRING
    if isinstance(value, Mapping):
        return {k: _with_unknowns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_unknowns(v) for v in value]
    return value


def typed_token(manifest: Mapping[str, Any]) -> str:
    """`kubernetes:<group>/<version>:<Kind>` for a manifest (core group spelled `core`)."""
    api_version = str(manifest.get("apiVersion") or "v1")
    group, _, version = api_version.rpartition("/")
    return f"kubernetes:{group or 'core'}/{version}:{manifest.get('kind')}"


def resources(
    documents: list[dict[str, Any]], *, typed: bool
) -> list[tuple[str, dict[str, Any], str, str]]:
    """(type, props, urn, name) per document, as CrossGuard would hand them over."""
    out = []
    for i, doc in enumerate(documents):
        doc = dict(doc)
        envelope = doc.pop("__pulumi__", None)
        if isinstance(envelope, Mapping):
            type_ = str(envelope.get("type"))
            name = str(envelope.get("name") or f"r{i}")
        else:
            type_ = typed_token(doc) if typed else "kubernetes:apiextensions.k8s.io:CustomResource"
            meta = doc.get("metadata")
            name = str((meta.get("name") if isinstance(meta, Mapping) else None) or f"r{i}")
        urn = f"urn:pulumi:test::aimesh::{type_}::{name}-{i}"
        out.append((type_, _with_unknowns(doc), urn, name))
    return out


def objects_of_documents(documents: list[dict[str, Any]], *, typed: bool) -> list[K8sObject]:
    objs: list[K8sObject] = []
    for type_, props, urn, name in resources(documents, typed=typed):
        objs.extend(to_objects(type_, props, urn, name))
    return objs


def run_policy(policy: Policy, objs: list[K8sObject], config: Mapping[str, Any]) -> list[Finding]:
    ctx = Context.from_config(config)
    if policy.is_stack_rule:
        return evaluate_stack(policy, objs, ctx)
    found: list[Finding] = []
    for obj in objs:
        found.extend(evaluate(policy, obj, ctx))
    return found


def policy_named(name: str) -> Policy | None:
    return next((p for p in all_policies() if p.name == name), None)


def needs_descriptor_set(request: pytest.FixtureRequest, policy_name: str) -> None:
    """The decoding policies can only say "cannot verify" without the Envoy/Istio descriptor set:
    a test of their verdicts builds it first, or skips where Go is absent (tests/conftest.py)."""
    policy = policy_named(policy_name)
    if policy is not None and policy.concern == "decoding":
        request.getfixturevalue("descriptor_set")
