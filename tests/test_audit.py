"""`make audit` (python -m tools.audit): each check's verdict, the exit status, the report files,
and the honest degradation without a Pulumi CLI or a cluster."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import access_matrix, audit, offline

ROOT = Path(__file__).resolve().parent.parent
TODAY = datetime.date(2026, 12, 4)


def run(*args: str, path: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    env.pop("KUBECONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tools.audit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's stack files and approvals to change freely."""
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "approved", tmp_path / "approved")
    return tmp_path


def _set_dev_models(project: Path, change: Any) -> None:
    stack_file = project / "Pulumi.dev.yaml"
    data = yaml.safe_load(stack_file.read_text())
    change(data["config"]["aimesh:models"])
    stack_file.write_text(yaml.safe_dump(data, sort_keys=False))


# ---- 3. the access matrix ------------------------------------------------------------------------


@pytest.mark.parametrize("stack", offline.stacks())
def test_the_committed_approvals_match_the_committed_stacks(stack: str) -> None:
    settings = access_matrix.load(stack)
    approved = json.loads((ROOT / "approved" / f"access-matrix-{stack}.json").read_text())
    changes = audit.matrix_changes(approved, audit.approvable(audit.config_matrix(settings)))
    assert changes == [], (
        f"the access of stack {stack} changed without approval: review it and run "
        f"`python -m tools.audit --stack {stack} --approve` (docs/rollout.md)"
    )


def test_offline_audit_of_an_approved_stack_needs_nothing(project: Path) -> None:
    proc = run("--stack", "dev", "--offline", "--project-dir", str(project))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nothing needs attention" in proc.stdout
    assert "Skipped (--offline)" in proc.stdout


def test_a_new_grant_and_a_wider_role_are_a_reviewable_table(project: Path) -> None:
    def change(models: list[dict[str, Any]]) -> None:
        models[0]["callers"].append({"namespace": "risk", "serviceAccount": "engine"})
        models[0]["callers"][1]["role"] = "invoke"  # the prober: read -> invoke

    _set_dev_models(project, change)
    proc = run(
        "--stack", "dev", "--offline", "--project-dir", str(project), "--report", str(project / "r")
    )
    assert proc.returncode == 1, proc.stdout
    assert (
        "| added | fraud-detector | risk/engine | grant | - | invoke; always; enforced |"
        in proc.stdout
    )
    assert (
        "| changed | fraud-detector | observability-probes/prober | role | read | invoke |"
        in proc.stdout
    )
    report = json.loads((project / "r" / "audit-dev.json").read_text())
    assert report["exitStatus"] == 1
    [matrix] = [c for c in report["checks"] if c["title"].startswith("The access matrix")]
    assert {(i["change"], i["caller"], i["field"]) for i in matrix["items"]} >= {
        ("added", "risk/engine", "grant"),
        ("changed", "observability-probes/prober", "role"),
        ("changed", "observability-probes/prober", "paths"),
    }
    assert (project / "r" / "audit-dev.md").read_text() == proc.stdout

    approve = run("--stack", "dev", "--approve", "--project-dir", str(project))
    assert approve.returncode == 0
    assert run("--stack", "dev", "--offline", "--project-dir", str(project)).returncode == 0


def test_audit_mode_shows_in_the_matrix_diff_and_in_the_ends(project: Path) -> None:
    until = (datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=3)).isoformat()

    def change(models: list[dict[str, Any]]) -> None:
        models[1]["authorization"] = {"mode": "audit", "reason": "TICKET-4", "until": until}

    _set_dev_models(project, change)
    proc = run("--stack", "dev", "--offline", "--project-dir", str(project))
    assert proc.returncode == 1
    changed = f"| enforcement | enforced | audit until {until} |"
    assert f"| changed | churn-scorer | crm/crm-backend {changed}" in proc.stdout
    assert "| added | churn-scorer | cluster.local/* (audit mode) | grant |" in proc.stdout
    assert f"| ends soon | audit mode | model churn-scorer | {until} | TICKET-4 |" in proc.stdout


def test_no_approval_yet_needs_attention(project: Path) -> None:
    (project / "approved" / "access-matrix-dev.json").unlink()
    proc = run("--stack", "dev", "--offline", "--project-dir", str(project))
    assert proc.returncode == 1
    assert "No approved access matrix" in proc.stdout
    assert "--approve" in proc.stdout


# ---- 4. ends ------------------------------------------------------------------------------------


def test_ending_and_ended_audits_and_exemptions(tmp_path: Path) -> None:
    settings = access_matrix.load("dev")
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "p1": {
                    "exemptNamespaces": [
                        {"name": "a", "reason": "r", "expires": "2026-12-03"},
                        {"name": "b", "reason": "r", "expires": "2026-12-10"},
                        {"name": "c", "reason": "r", "expires": "2027-01-30"},
                    ],
                    "exemptPorts": [{"port": 9090, "reason": "", "expires": "2027-01-01"}],
                },
                "p2": {"exemptWorkloads": ["old/form"]},
                "p3": "advisory",
            }
        )
    )
    section = audit.check_ends(settings, config, 7, TODAY)
    assert section.status == audit.ATTENTION
    got = {(i["state"], i["what"]) for i in section.items}
    assert got == {
        ("ENDED", "p1: exemptNamespaces a"),
        ("ends soon", "p1: exemptNamespaces b"),
        ("INVALID", "p1: exemptPorts 9090"),
        ("INVALID", "p2: exemptWorkloads old/form"),
    }
    assert audit.check_ends(settings, None, 7, TODAY).status == audit.OK


def test_the_projects_own_exemption_has_a_reason_and_an_end() -> None:
    config = json.loads((ROOT / "policy-pack" / "policy-config.json").read_text())
    entries = audit.exemptions(config)
    assert entries
    for entry in entries:
        assert entry["reason"]
        assert datetime.date.fromisoformat(entry["expires"])


# ---- 1. drift and 2. live: parsing, judging, degrading ------------------------------------------

DIGEST = {
    "steps": [
        {"op": "same", "urn": "urn:pulumi:dev::aimesh::pulumi:pulumi:Stack::aimesh-dev"},
        {"op": "refresh", "urn": "urn:pulumi:dev::aimesh::kubernetes:core/v1:Namespace::ns"},
        {
            "op": "update",
            "urn": "urn:pulumi:dev::aimesh::aimesh:index:SecureModel"
            "$kubernetes:security.istio.io/v1:AuthorizationPolicy"
            "::churn-scorer-authorizationpolicy-churn-scorer-allow",
            "detailedDiff": {"spec.rules[0].from[0].source.principals[0]": {"kind": "update"}},
            "newState": {
                "outputs": {
                    "kind": "AuthorizationPolicy",
                    "metadata": {"name": "churn-scorer-allow", "namespace": "churn-scorer"},
                }
            },
        },
        {
            "op": "delete",
            "urn": "urn:pulumi:dev::aimesh::kubernetes:networking.k8s.io/v1:NetworkPolicy::gone",
            "oldState": {
                "outputs": {"kind": "NetworkPolicy", "metadata": {"name": "gone", "namespace": "m"}}
            },
        },
    ]
}


def test_drift_names_each_drifted_object_and_property() -> None:
    found = audit.drifted(DIGEST)
    assert [(f["op"], f["object"]) for f in found] == [
        ("update", "AuthorizationPolicy churn-scorer/churn-scorer-allow"),
        ("delete", "NetworkPolicy m/gone"),
    ]
    assert found[0]["properties"] == ["spec.rules[0].from[0].source.principals[0]"]
    assert found[0]["type"] == "kubernetes:security.istio.io/v1:AuthorizationPolicy"
    assert audit.drifted({"steps": [{"op": "same", "urn": "u"}]}) == []


def test_without_cli_or_cluster_the_audit_says_so_and_is_incomplete(
    project: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = run("--stack", "dev", "--project-dir", str(project), path=str(empty))
    assert proc.returncode == 2, proc.stdout
    assert "INCOMPLETE: a check could not run" in proc.stdout
    assert "Not checked: the Pulumi CLI is not on PATH" in proc.stdout
    assert "Not checked: kubectl is not on PATH" in proc.stdout


def test_live_objects_are_cleaned_before_judging() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "m",
            "uid": "1",
            "resourceVersion": "7",
            "managedFields": [{}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
        },
        "status": {"phase": "Active"},
    }
    assert audit.clean(live) == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "m"}}


def test_the_pack_judges_live_objects_changed_behind_pulumis_back() -> None:
    ended = (datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=2)).isoformat()
    objects = [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {
                "name": "churn-scorer-allow",
                "namespace": "churn-scorer",
                "annotations": {
                    "istio.io/dry-run": "true",
                    "aimesh.io/audit-reason": "r",
                    "aimesh.io/audit-until": ended,
                },
            },
            "spec": {
                "selector": {"matchLabels": {"aimesh.io/model": "churn-scorer"}},
                "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b"]}}]}],
            },
        }
    ]
    section = audit.judge(
        audit.Section("live"), objects, ["grpcroutes.gateway.networking.k8s.io"], None
    )
    assert section.status == audit.ATTENTION
    assert any(
        i["policy"] == "aimesh-audit-mode-require-reason-and-expiry"
        and i["mandatory"]
        and f"ended on {ended}" in i["message"]
        for i in section.items
    )
    assert "not served by this cluster: grpcroutes.gateway.networking.k8s.io" in section.lines[0]


def test_exit_status_prefers_attention_over_incomplete() -> None:
    attention = audit.Section("a", audit.ATTENTION)
    missing = audit.Section("b", audit.NOT_CHECKED)
    ok = audit.Section("c")
    skipped = audit.Section("d", audit.SKIPPED)
    assert audit.exit_status([attention, missing]) == 1
    assert audit.exit_status([missing, ok]) == 2
    assert audit.exit_status([ok, skipped]) == 0


def test_a_render_stack_has_no_cluster_to_read(tmp_path: Path) -> None:
    proc = run("--stack", "ci", path=str(tmp_path))
    assert "Skipped: the stack has no cluster" in proc.stdout
