"""The GitHub workflows: valid against GitHub's workflow schema, and doing what CI promises.

The schema check uses check-jsonschema's vendored copy of the SchemaStore workflow schema
(`--builtin-schema vendor.github-workflows`), so it runs offline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))

# Inputs of pulumi/actions v7.0.0 (its action.yml); a misspelt input is silently ignored by GitHub.
PULUMI_ACTION_INPUTS = {
    "continue-on-error",
    "debug",
    "exclude",
    "exclude-dependents",
    "log-flow",
    "log-verbosity",
    "command",
    "stack-name",
    "pulumi-version",
    "pulumi-version-file",
    "work-dir",
    "comment-on-pr",
    "comment-on-pr-number",
    "comment-on-summary",
    "github-token",
    "cloud-url",
    "secrets-provider",
    "parallel",
    "message",
    "config-map",
    "expect-no-changes",
    "diff",
    "replace",
    "target",
    "target-dependents",
    "policyPacks",
    "policyPackConfigs",
    "refresh",
    "upsert",
    "remove",
    "edit-pr-comment",
    "color",
    "exclude-protected",
    "plan",
    "suppress-outputs",
    "suppress-progress",
    "always-include-summary",
}
# A tag can be moved to other code; a commit cannot. The release it is goes in a comment.
PINNED = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
# The pulumi/actions major in use; bump with its releases.
PULUMI_ACTIONS_MAJOR = "v7"


def _check_jsonschema() -> str:
    found = shutil.which("check-jsonschema") or str(
        Path(sys.executable).parent / "check-jsonschema"
    )
    if not Path(found).exists():
        pytest.skip("check-jsonschema is not installed (requirements-dev.txt pins it)")
    return found


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    assert isinstance(data, dict)
    # YAML 1.1 reads the bare key `on` as boolean true.
    if True in data:
        data["on"] = data.pop(True)
    return data


def _steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (job_name, step)
        for job_name, job in workflow["jobs"].items()
        for step in job.get("steps", [])
    ]


def test_there_are_workflows() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"pull-request.yml", "deploy.yml"} <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_github_schema(path: Path) -> None:
    result = _validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    # The validator must be able to fail: a job without runs-on and a step with an unknown key.
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    steps:\n      - run: echo hi\n        bogus: 1\n")
    result = _validate(broken)
    assert result.returncode != 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(- )?uses:", line)]
    assert lines
    for line in lines:
        assert PINNED.match(line), f"{path.name}: {line.strip()} is not pinned to a commit SHA"
    for line in lines:
        if "pulumi/actions@" in line:
            assert (
                line.endswith(f"# {PULUMI_ACTIONS_MAJOR}") or f"# {PULUMI_ACTIONS_MAJOR}." in line
            )


def _pulumi_steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (j, s) for j, s in _steps(workflow) if str(s.get("uses", "")).startswith("pulumi/actions@")
    ]


def test_pull_request_workflow_runs_make_test_and_a_policy_preview() -> None:
    workflow = _load("pull-request.yml")
    assert "pull_request" in workflow["on"]
    runs = [str(s.get("run", "")) for _, s in _steps(workflow)]
    assert any(re.search(r"(^|\s)make test(\s|$)", r) for r in runs)

    previews = _pulumi_steps(workflow)
    assert len(previews) == 1
    job, step = previews[0]
    inputs = step["with"]
    assert set(inputs) <= PULUMI_ACTION_INPUTS, set(inputs) - PULUMI_ACTION_INPUTS
    assert inputs["command"] == "preview"
    assert inputs["policyPacks"] == "policy-pack"
    assert inputs["comment-on-pr"] is True
    assert "vars." in inputs["stack-name"]
    # Where the state lives is configuration, not a secret (a secret would be masked in logs).
    assert "vars.PULUMI_BACKEND_URL" in inputs["cloud-url"]
    assert "secrets." not in inputs["cloud-url"]
    # The same policy config as `make check`: the committed file unless a variable overrides it.
    assert inputs["policyPackConfigs"] == "${{ env.POLICY_PACK_CONFIG }}"
    default = workflow["env"]["POLICY_PACK_CONFIG"].split("'")[1]
    assert (ROOT / default).is_file(), default
    env = step["env"]
    assert "secrets.PULUMI_ACCESS_TOKEN" in env["PULUMI_ACCESS_TOKEN"]
    assert "secrets.PULUMI_CONFIG_PASSPHRASE" in env["PULUMI_CONFIG_PASSPHRASE"]
    # The preview only runs once the offline tests pass, and may comment on the PR.
    preview_job = workflow["jobs"][job]
    assert "test" in preview_job["needs"]
    assert preview_job["permissions"]["pull-requests"] == "write"
    # Both virtualenvs (the pack's own, PulumiPolicy.yaml: virtualenv venv) come from the one
    # Makefile recipe that installs the hashed locks (tests/test_dependencies.py).
    runs = [str(s.get("run", "")) for j, s in _steps(workflow) if j == job]
    assert "make ensure" in runs


def test_pull_request_workflow_checks_every_stack_offline_without_credentials() -> None:
    workflow = _load("pull-request.yml")
    check_jobs = [
        name
        for name, job in workflow["jobs"].items()
        if any("make check" in str(s.get("run", "")) for s in job.get("steps", []))
    ]
    assert check_jobs
    for name in check_jobs:
        text = yaml.safe_dump(workflow["jobs"][name])
        assert "secrets." not in text, f"{name} must not need credentials"
        assert "Pulumi.*.yaml" in text  # every stack file, not a hand-kept list


def test_deploy_workflow_runs_up_of_prod_with_the_pack_behind_an_environment() -> None:
    workflow = _load("deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    ups = _pulumi_steps(workflow)
    assert len(ups) == 1
    job, step = ups[0]
    inputs = step["with"]
    assert set(inputs) <= PULUMI_ACTION_INPUTS, set(inputs) - PULUMI_ACTION_INPUTS
    assert inputs["command"] == "up"
    assert inputs["policyPacks"] == "policy-pack"
    deploy_job = workflow["jobs"][job]
    assert deploy_job["environment"]["name"] == "production"
    assert "test" in deploy_job["needs"]
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert "vars.PULUMI_BACKEND_URL" in inputs["cloud-url"]
    assert "secrets." not in inputs["cloud-url"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_job_that_runs_the_pack_builds_the_descriptor_set_first(path: Path) -> None:
    # Without the set the decoding policies can only say "cannot verify": every job that runs
    # the tests, the offline check or a preview/up with the pack builds it, with the Go that the
    # descriptor module asks for.
    workflow = _load(path.name)
    for name, job in workflow["jobs"].items():
        steps = job.get("steps", [])
        texts = [str(s.get("run", "")) + str(s.get("uses", "")) for s in steps]
        users = [
            i for i, t in enumerate(texts) if re.search(r"make (test|check)|pulumi/actions@", t)
        ]
        if not users:
            continue
        builds = [i for i, s in enumerate(steps) if s.get("run") == "make descriptors"]
        assert builds, f"{path.name}:{name}: no `make descriptors` step"
        assert builds[0] < users[0], f"{path.name}:{name}: the set is built after it is needed"
        go = [
            s for s in steps[: builds[0]] if str(s.get("uses", "")).startswith("actions/setup-go@")
        ]
        assert go, f"{path.name}:{name}: no Go before `make descriptors`"
        assert go[0]["with"]["go-version-file"] == "policy-pack/descriptors/go.mod"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_make_test_job_fetches_the_upstream_schemas_first(path: Path) -> None:
    """On GitHub there is no ../shared: the schema tests need `make schemas` to download the
    pinned files (make test would run it too; a step of its own shows it in the log)."""
    workflow = _load(path.name)
    for job in workflow["jobs"].values():
        runs = [str(step.get("run", "")).strip() for step in job.get("steps", [])]
        if "make test" in runs:
            assert "make schemas" in runs
            assert runs.index("make schemas") < runs.index("make test")


def test_audit_workflow_runs_make_audit_on_a_schedule_and_keeps_the_report() -> None:
    workflow = _load("audit.yml")
    assert workflow["on"]["schedule"][0]["cron"]
    assert "workflow_dispatch" in workflow["on"]
    steps = [s for _, s in _steps(workflow)]
    runs = [str(s.get("run", "")) for s in steps]
    assert any(re.search(r"(^|\s)make audit STACK=", r) for r in runs)
    [upload] = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()"  # the report matters most when the audit fails
    assert upload["with"]["path"] == "audit-report/"
    # The CLI is installed, not run: no command on the pulumi action.
    [(_, install)] = _pulumi_steps(workflow)
    assert "command" not in install["with"]
    assert set(install["with"]) <= PULUMI_ACTION_INPUTS
    # Read-only kubeconfig from a secret, never echoed.
    text = (ROOT / ".github" / "workflows" / "audit.yml").read_text()
    assert "secrets.AUDIT_KUBECONFIG" in text
    assert workflow["permissions"] == {"contents": "read"}
