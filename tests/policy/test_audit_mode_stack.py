"""Audit mode end to end, offline: the dev stack with one model in audit mode is evaluated under
mocks and judged by every policy with the project's policy config. A current audit passes with
zero mandatory violations; an ended one is a mandatory violation naming the model and the date;
a stack that forbids audit mode refuses it; nothing else of the stack changes."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
import yaml
from aimesh_policies import all_policies, to_objects
from aimesh_policies.framework import Context, evaluate

from tests.policy.test_our_stacks import mandatory_violations
from tools import offline, schemas

MODEL = "churn-scorer"


def _day(offset: int) -> str:
    return (
        datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=offset)
    ).isoformat()


def _dev_with_audit(until: str) -> offline.Evaluation:
    values = offline.project_defaults(offline.ROOT / "Pulumi.yaml")
    stack = yaml.safe_load((offline.ROOT / "Pulumi.dev.yaml").read_text())["config"]
    values.update(stack)
    models: list[dict[str, Any]] = json.loads(json.dumps(values["aimesh:models"]))
    for model in models:
        if model["name"] == MODEL:
            model["authorization"] = {
                "mode": "audit",
                "reason": "TICKET-9 inventory",
                "until": until,
            }
    values["aimesh:models"] = models
    config, secret_keys = offline.encode_config(values)
    return offline.evaluate(config, secret_keys=secret_keys, stack="dev")


@pytest.fixture(scope="module")
def current() -> offline.Evaluation:
    return _dev_with_audit(_day(10))


def _policies(evaluation: offline.Evaluation) -> list[dict[str, Any]]:
    return [m for m in evaluation.manifests() if m.get("kind") == "AuthorizationPolicy"]


def test_a_current_audit_passes_the_pack(current: offline.Evaluation) -> None:
    assert mandatory_violations(current) == []


def test_audit_mode_changes_only_the_models_allow_rules(current: offline.Evaluation) -> None:
    enforced = {json.dumps(m, sort_keys=True) for m in _policies(offline.evaluate_stack("dev"))}
    audited = {json.dumps(m, sort_keys=True) for m in _policies(current)}
    added = [json.loads(m) for m in audited - enforced]
    removed = [json.loads(m) for m in enforced - audited]
    # One policy changed (the model's ALLOW, now in dry-run) and one is new (peers only).
    assert [m["metadata"]["name"] for m in removed] == [f"{MODEL}-allow"]
    by_name = {m["metadata"]["name"]: m for m in added}
    assert set(by_name) == {f"{MODEL}-allow", f"{MODEL}-audit-mesh-peers"}
    dry = by_name[f"{MODEL}-allow"]
    assert dry["metadata"]["annotations"]["istio.io/dry-run"] == "true"
    assert dry["spec"] == removed[0]["spec"]
    peers = by_name[f"{MODEL}-audit-mesh-peers"]
    assert "istio.io/dry-run" not in peers["metadata"]["annotations"]
    assert peers["spec"]["rules"] == [{"from": [{"source": {"principals": ["cluster.local/*"]}}]}]
    assert peers["spec"]["selector"] == {"matchLabels": {"aimesh.io/model": MODEL}}


def test_the_audit_matrix_row_says_who_gets_in(current: offline.Evaluation) -> None:
    rows = [r for r in current.outputs["accessMatrix"] if r["model"] == MODEL]
    assert {r["enforcement"] for r in rows if r["kind"] != "audit"} == {f"audit until {_day(10)}"}
    [audit] = [r for r in rows if r["kind"] == "audit"]
    assert audit["principal"] == "cluster.local/*"


@pytest.mark.usefixtures("upstream_available")
def test_audit_objects_validate_against_the_upstream_schemas(current: offline.Evaluation) -> None:
    for manifest in _policies(current):
        assert schemas.validate(manifest) == [], manifest["metadata"]["name"]


def test_an_ended_audit_is_a_mandatory_violation_naming_model_and_date() -> None:
    ended = _day(-1)
    violations = mandatory_violations(_dev_with_audit(ended))
    assert violations
    assert any(
        v.startswith("aimesh-audit-mode-require-reason-and-expiry")
        and f"audit mode of model {MODEL} ended on {ended}" in v
        for v in violations
    ), violations
    # The peer wildcard is a wildcard again, and the dry-run ALLOW no longer covers the model.
    assert any(
        v.startswith("istio-authorizationpolicy-forbid-wildcard-sources") for v in violations
    )
    assert any(v.startswith("kserve-inferenceservice-require-principal-allow") for v in violations)
    # Effective access: what the peers ALLOW lets through is no longer intended.
    assert any(
        v.startswith("istio-model-access-within-intent")
        and f"{MODEL}-audit-mesh-peers" in v
        and f"audit mode ended on {ended}" in v
        for v in violations
    ), violations


def test_a_stack_can_forbid_audit_mode(current: offline.Evaluation) -> None:
    [policy] = [
        p for p in all_policies() if p.name == "aimesh-audit-mode-require-reason-and-expiry"
    ]
    ctx = Context.from_config({"forbidAuditMode": True})
    objs = [o for r in current.resources for o in to_objects(r.type, r.inputs, r.urn, r.name)]
    found = [f.message for o in objs for f in evaluate(policy, o, ctx)]
    assert found
    assert all(f"audit mode of model {MODEL}: audit mode is forbidden" in m for m in found)
