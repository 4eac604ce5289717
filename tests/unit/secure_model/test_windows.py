"""Batch windows: the closed-by-default policy, its two shapes, and the reconciler (ConfigMap +
CronJob) that keeps it in the state its schedule says, with the narrowest RBAC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aimesh import settings as settings_module
from aimesh import versions
from aimesh.builders import access, secure_model
from aimesh.builders.secure_model import windows
from aimesh.runtime import window_reconciler
from aimesh.settings import ConfigError
from tests.unit.secure_model.support import by_kind, named, one_model
from tests.unit.test_access import stack


def test_batch_policy_is_closed_outside_its_window(alpha: secure_model.ModelObjects) -> None:
    row = next(r for r in alpha.rows if r.batch)
    (policy,) = alpha.windows
    assert policy["metadata"]["name"] == row.policy
    # Created closed: an ALLOW without rules matches nothing.
    closed = {"selector": {"matchLabels": {"aimesh.io/model": "alpha"}}, "action": "ALLOW"}
    assert policy["spec"] == closed
    assert windows.closed_spec(alpha_model()) == closed
    assert windows.open_spec(alpha_model(), row) == {**closed, "rules": [row.rule()]}


def alpha_model() -> settings_module.ModelSettings:
    from tests.unit.test_access import stack

    return stack().models[0]


def test_one_reconciler_per_batch_caller_level_triggered(alpha: secure_model.ModelObjects) -> None:
    (job,) = by_kind(alpha, "CronJob")
    spec = job["spec"]
    assert spec["schedule"] == f"*/{windows.RECONCILE_EVERY_MINUTES} * * * *"
    # One run at a time; a run that cannot start soon is skipped (the next slot comes).
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] < windows.RECONCILE_EVERY_MINUTES * 60
    job_spec = spec["jobTemplate"]["spec"]
    # A run ends (RUN_SECONDS after it starts) before the Job's deadline, which ends before the
    # next slot: runs never overlap and a hung one is killed.
    assert job_spec["activeDeadlineSeconds"] > windows.RUN_SECONDS + 30
    assert job_spec["activeDeadlineSeconds"] < windows.RECONCILE_EVERY_MINUTES * 60
    # Three slots at least inside the shortest window settings accept.
    assert settings_module.MIN_WINDOW_MINUTES >= 3 * windows.RECONCILE_EVERY_MINUTES


def test_the_reconciler_pod_runs_the_shipped_code_pinned_and_hardened(
    alpha: secure_model.ModelObjects,
) -> None:
    row = next(r for r in alpha.rows if r.batch)
    (job,) = by_kind(alpha, "CronJob")
    template = job["spec"]["jobTemplate"]["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    assert container["image"] == versions.WINDOW_RECONCILER_IMAGE
    assert "@sha256:" in container["image"]  # by digest
    assert container["command"][0] == "python3"
    assert "aimesh.runtime.window_reconciler" in container["args"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (mount,) = container["volumeMounts"]
    assert mount["readOnly"] is True
    assert mount["mountPath"].startswith(container["workingDir"] + "/")
    (volume,) = pod["volumes"]
    configmap = named(alpha, "ConfigMap", volume["configMap"]["name"])
    # The ConfigMap carries the runtime modules byte for byte, and the policy's two shapes.
    runtime = Path(window_reconciler.__file__).parent
    for file in windows.RUNTIME_FILES:
        assert configmap["data"][file] == (runtime / file).read_text()
    shipped = json.loads(configmap["data"]["window.json"])
    model = alpha_model()
    assert shipped["openSpec"] == windows.open_spec(model, row)
    assert shipped["closedSpec"] == windows.closed_spec(model)
    assert shipped["windows"] == [
        {"open": "0 1 * * *", "close": "0 3 * * *", "timeZone": "Etc/UTC"}
    ]
    window_reconciler.Config.from_json(shipped)  # what the pod parses
    # In the mesh, not selected by the model's own policies, and scraped through the sidecar.
    assert "sidecar.istio.io/inject" not in template["metadata"]["labels"]
    assert "aimesh.io/model" not in template["metadata"]["labels"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(windows.METRICS_PORT)


def test_window_role_can_only_get_and_patch_that_object(alpha: secure_model.ModelObjects) -> None:
    row = next(r for r in alpha.rows if r.batch)
    sa = access.short_name(row.policy, "ctl")
    assert windows.controller_service_account(row) == sa
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
    # The token is mounted in this pod only; the service account itself mounts none.
    assert pod["automountServiceAccountToken"] is True
    assert named(alpha, "ServiceAccount", sa)["automountServiceAccountToken"] is False


def caller(*windows_: dict[str, str]) -> list[dict[str, object]]:
    return [{"namespace": "a", "serviceAccount": "b", "windows": list(windows_)}]


def test_window_time_zone_must_be_iana() -> None:
    window = {"open": "0 1 * * *", "close": "0 2 * * *", "timeZone": "Europe/Frankfurt"}
    with pytest.raises(ConfigError, match="not an IANA time zone"):
        one_model(callers=caller(window))
    same = {"open": "0 1 * * *", "close": "0 1 * * *"}
    with pytest.raises(ConfigError, match="never opens"):
        one_model(callers=caller(same))


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"open": "0 1 * * *", "close": "10 1 * * *"}, "only 10 minutes; .* at least 15 minutes"),
        # 30 minutes every day, 10 on the spring-forward day (01:50 CET -> 03:00 CEST).
        (
            {"open": "50 1 * * *", "close": "20 2 * * *", "timeZone": "Europe/Berlin"},
            r"-03-\d\d 01:50 CET \(Europe/Berlin\) is open for only 10 minutes",
        ),
        ({"open": "0 1 30 2 *", "close": "0 2 * * *"}, "never opens"),
        ({"open": "0 1 * * *", "close": "0 2 31 2 *"}, "never happens"),
        ({"open": "0 1 * * 7", "close": "0 2 * * *"}, "day of week '7': out of range 0-6"),
        ({"open": "0 1 L * *", "close": "0 2 * * *"}, "day of month 'L'"),
    ],
)
def test_bad_windows_are_refused_naming_the_key(window: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        one_model(callers=caller(window))
    assert "aimesh:models[0].callers[0].windows[0]" in str(raised.value)


def test_a_window_just_long_enough_is_accepted() -> None:
    _, model = one_model(callers=caller({"open": "0 1 * * *", "close": "15 1 * * *"}))
    assert model.callers[0].windows[0].close == "15 1 * * *"


def test_the_controller_token_is_mounted_only_in_its_own_pods(
    alpha: secure_model.ModelObjects,
) -> None:
    # A pod that merely names the controller's identity gets no token from the service account;
    # only the reconciler's CronJob pods ask for one.
    row = next(r for r in alpha.rows if r.batch)
    account = named(alpha, "ServiceAccount", windows.controller_service_account(row))
    assert account["automountServiceAccountToken"] is False
    for job in by_kind(alpha, "CronJob"):
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is True


def test_the_two_shapes_are_the_closed_policy_and_what_the_reconciler_writes(
    alpha: secure_model.ModelObjects,
) -> None:
    row = next(r for r in alpha.rows if r.batch)
    model = next(m for m in stack().models if m.name == "alpha")
    (policy,) = alpha.windows
    assert windows.closed_spec(model) == policy["spec"]
    shipped = windows.reconciler_config(model, row)
    assert shipped["closedSpec"] == policy["spec"]
    assert shipped["openSpec"] == windows.open_spec(model, row)
    assert shipped["openSpec"] == {**policy["spec"], "rules": [row.rule()]}
