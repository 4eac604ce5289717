"""Batch windows: the closed-by-default policy, the CronJobs that open and close it and their
narrow RBAC."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from aimesh import versions
from aimesh.builders import access, secure_model
from aimesh.builders.secure_model import (
    windows,
)
from aimesh.settings import ConfigError
from tests.unit.secure_model.support import by_kind, named, one_model
from tests.unit.test_access import stack


def test_batch_policy_is_closed_outside_its_window(alpha: secure_model.ModelObjects) -> None:
    row = next(r for r in alpha.rows if r.batch)
    (policy,) = alpha.windows
    assert policy["metadata"]["name"] == row.policy
    # Created closed: an ALLOW without rules matches nothing.
    assert policy["spec"] == {
        "selector": {"matchLabels": {"aimesh.io/model": "alpha"}},
        "action": "ALLOW",
    }
    assert windows.open_patch(row) == {"spec": {"rules": [row.rule()]}}
    assert windows.close_patch() == {"spec": {"rules": None}}


def test_window_cronjobs_patch_exactly_that_policy(alpha: secure_model.ModelObjects) -> None:
    row = next(r for r in alpha.rows if r.batch)
    jobs = by_kind(alpha, "CronJob")
    assert [j["spec"]["schedule"] for j in jobs] == ["0 1 * * *", "0 3 * * *"]
    assert all(j["spec"]["timeZone"] == "Etc/UTC" for j in jobs)
    opened, closed = (j["spec"]["jobTemplate"]["spec"]["template"]["spec"] for j in jobs)
    for pod in (opened, closed):
        container = pod["containers"][0]
        assert container["image"] == versions.KUBECTL_IMAGE
        assert re.search(r":v\d+\.\d+\.\d+$", container["image"])  # pinned, never :latest
        assert row.policy in container["args"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert pod["securityContext"]["runAsNonRoot"] is True

    def patch(pod: dict[str, Any]) -> Any:
        args = pod["containers"][0]["args"]
        return json.loads(next(a for a in args if a.startswith("--patch="))[len("--patch=") :])

    assert patch(opened) == windows.open_patch(row)
    assert patch(closed) == windows.close_patch()
    template = jobs[0]["spec"]["jobTemplate"]["spec"]["template"]
    # In the mesh, and not selected by the model's own policies.
    assert "sidecar.istio.io/inject" not in template["metadata"]["labels"]
    assert "aimesh.io/model" not in template["metadata"]["labels"]


def test_a_missed_closing_still_runs_a_missed_opening_does_not(
    alpha: secure_model.ModelObjects,
) -> None:
    # Fail closed: after a controller outage the CronJob controller runs a missed closing
    # whenever it catches up; a missed opening only within 10 minutes of its schedule.
    opened, closed = by_kind(alpha, "CronJob")
    assert opened["metadata"]["name"].endswith("-open-0")
    assert opened["spec"]["startingDeadlineSeconds"] == 600
    assert closed["metadata"]["name"].endswith("-close-0")
    assert "startingDeadlineSeconds" not in closed["spec"]


def test_window_role_can_only_get_and_patch_that_object(alpha: secure_model.ModelObjects) -> None:
    row = next(r for r in alpha.rows if r.batch)
    sa = access.short_name(row.policy, "ctl")
    role = named(alpha, "Role", sa)
    assert role["rules"] == [
        {
            "apiGroups": ["security.istio.io"],
            "resources": ["authorizationpolicies"],
            "resourceNames": [row.policy],
            "verbs": ["get", "patch"],
        }
    ]
    binding = named(alpha, "RoleBinding", sa)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "alpha"}]
    pod = by_kind(alpha, "CronJob")[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa


def test_window_time_zone_must_be_iana() -> None:
    window = {"open": "0 1 * * *", "close": "0 2 * * *", "timeZone": "Europe/Frankfurt"}
    with pytest.raises(ConfigError, match="not an IANA time zone"):
        one_model(callers=[{"namespace": "a", "serviceAccount": "b", "windows": [window]}])
    same = {"open": "0 1 * * *", "close": "0 1 * * *"}
    with pytest.raises(ConfigError, match="never opens"):
        one_model(callers=[{"namespace": "a", "serviceAccount": "b", "windows": [same]}])


def test_the_controller_token_is_mounted_only_in_its_own_pods(
    alpha: secure_model.ModelObjects,
) -> None:
    # A pod that merely names the controller's identity gets no token from the service account;
    # only the CronJobs' pods ask for one (kubectl needs it).
    row = next(r for r in alpha.rows if r.batch)
    account = named(alpha, "ServiceAccount", windows.controller_service_account(row))
    assert account["automountServiceAccountToken"] is False
    for job in by_kind(alpha, "CronJob"):
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is True


def test_the_two_shapes_are_the_closed_policy_and_the_patch_applied(
    alpha: secure_model.ModelObjects,
) -> None:
    row = next(r for r in alpha.rows if r.batch)
    model = next(m for m in stack().models if m.name == "alpha")
    (policy,) = alpha.windows
    assert windows.closed_spec(model) == policy["spec"]
    assert windows.open_spec(model, row) == {**policy["spec"], **windows.open_patch(row)["spec"]}
