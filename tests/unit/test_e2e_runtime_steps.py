"""The e2e window-reconciler step's own helpers (the step itself runs in `make e2e`)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from aimesh.builders.secure_model import windows
from aimesh.runtime import schedule
from e2e import runtime_steps


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31)))
def test_the_steps_windows_are_closed_and_open_whatever_the_time(at: datetime) -> None:
    now = at.replace(tzinfo=UTC)
    closed = runtime_steps._window(6, 7, now)
    opened = runtime_steps._window(-1, 2, now)
    assert not schedule.Window.parse(closed["open"], closed["close"], "Etc/UTC").is_open(now)
    assert schedule.Window.parse(opened["open"], opened["close"], "Etc/UTC").is_open(now)


def test_the_step_applies_what_the_program_builds_for_the_window_controller() -> None:
    now = datetime(2027, 1, 4, 12, tzinfo=UTC)
    model, built, controller = runtime_steps._objects(runtime_steps._window(6, 7, now))
    assert model.ns == runtime_steps.NAMESPACE
    assert sorted(m["kind"] for m in controller) == [
        "ConfigMap",
        "CronJob",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    (policy,) = built.windows
    assert policy["spec"] == windows.closed_spec(model)
    assert runtime_steps._path(policy) == (
        f"/apis/security.istio.io/v1/namespaces/{model.ns}/authorizationpolicies/"
        f"{policy['metadata']['name']}"
    )
