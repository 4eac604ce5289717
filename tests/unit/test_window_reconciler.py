"""The window reconciler (aimesh/runtime/window_reconciler.py) on a fake clock: it sets exactly the
state the schedule says, corrects failed and missed runs, never opens after a close, undoes hand
edits and reports them; its HTTP calls and its metrics; and the files the ConfigMap ships run in
a bare interpreter, outside this repository."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aimesh.builders import alerts
from aimesh.builders.secure_model import windows
from aimesh.runtime import window_reconciler as wr
from e2e.runtime_steps import lay_out_pod
from tests.unit.secure_model.support import by_kind, one_model

CLOSED = {"selector": {"matchLabels": {"aimesh.io/model": "m"}}, "action": "ALLOW"}
OPENED = {**CLOSED, "rules": [{"from": [{"source": {"principals": ["td/ns/b/sa/job"]}}]}]}


def config(*windows_: tuple[str, str, str], **overrides: Any) -> wr.Config:
    data = {
        "namespace": "m",
        "policy": "m-window-1",
        "apiVersion": "security.istio.io/v1",
        "windows": [{"open": o, "close": c, "timeZone": z} for o, c, z in windows_],
        "openSpec": OPENED,
        "closedSpec": CLOSED,
        "runSeconds": 240,
        "recheckSeconds": 60,
        "graceSeconds": 360,
        "metricsPort": 0,
        **overrides,
    }
    return wr.Config.from_json(data)


NIGHTLY = ("0 1 * * *", "0 3 * * *", "Etc/UTC")


class FakeApi:
    """The one policy, in memory; `fail` makes the next calls raise as the API server would."""

    def __init__(self, spec: Mapping[str, Any] | None) -> None:
        self.spec = None if spec is None else dict(spec)
        self.writes: list[dict[str, Any]] = []
        self.fail = 0

    def _maybe_fail(self) -> None:
        if self.fail:
            self.fail -= 1
            raise wr.ApiError("HTTP 503: the API server is unavailable")

    def get_spec(self) -> Mapping[str, Any] | None:
        self._maybe_fail()
        return None if self.spec is None else dict(self.spec)

    def set_spec(self, spec: Mapping[str, Any]) -> None:
        self._maybe_fail()
        self.spec = dict(spec)
        self.writes.append(dict(spec))


class Clock:
    def __init__(self, start: datetime) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.t += timedelta(seconds=seconds)


def reconciler(cfg: wr.Config, api: FakeApi, clock: Clock) -> wr.Reconciler:
    return wr.Reconciler(cfg, api, wr.Metrics(cfg.policy), now=clock.now)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def run_slots(
    cfg: wr.Config, api: FakeApi, start: datetime, end: datetime, skip: frozenset[int] = frozenset()
) -> Iterator[tuple[datetime, wr.Reconciler]]:
    """Runs as the CronJob starts them: every 5 minutes from `start`, each for its run length;
    slots whose index is in `skip` never run (controller down, pod not scheduled)."""
    slot = 0
    at = start
    while at < end:
        if slot not in skip:
            clock = Clock(at + timedelta(seconds=10))  # pod start-up
            r = reconciler(cfg, api, clock)
            r.run(clock.sleep)
            yield at, r
        slot += 1
        at += timedelta(minutes=5)


def test_one_pass_sets_exactly_the_state_of_the_moment() -> None:
    api = FakeApi(CLOSED)
    clock = Clock(utc(2027, 1, 4, 1, 30))
    r = reconciler(config(NIGHTLY), api, clock)
    assert r.reconcile() == wr.CLOSED
    assert api.spec == OPENED
    clock.t = utc(2027, 1, 4, 3, 0)
    assert r.reconcile() == wr.OPEN
    assert api.spec == CLOSED
    # Already right: nothing is written.
    assert r.reconcile() == wr.CLOSED
    assert api.writes == [OPENED, CLOSED]


def test_a_run_wakes_on_the_edge_so_open_and_close_are_on_time() -> None:
    api = FakeApi(CLOSED)
    seen: list[tuple[datetime, Any]] = []

    class Recording(FakeApi):
        def set_spec(self, spec: Mapping[str, Any]) -> None:
            super().set_spec(spec)
            seen.append((clock.t, spec))

    api = Recording(CLOSED)
    # The run starts at 00:58:10 and lives until 01:02:10: it sleeps to the 01:00 edge.
    clock = Clock(utc(2027, 1, 4, 0, 58, 10))
    reconciler(config(NIGHTLY), api, clock).run(clock.sleep)
    assert seen == [(utc(2027, 1, 4, 1, 0, 1), OPENED)]
    assert clock.t == utc(2027, 1, 4, 1, 2, 10)


def test_a_failed_close_is_corrected_by_the_next_run() -> None:
    cfg = config(NIGHTLY)
    api = FakeApi(OPENED)
    # The run that spans 03:00 cannot reach the API server at all.
    api.fail = 10
    clock = Clock(utc(2027, 1, 4, 2, 58, 10))
    assert reconciler(cfg, api, clock).run(clock.sleep) == 1
    assert api.spec == OPENED
    api.fail = 0
    # The next slot's run closes it on its first pass.
    clock = Clock(utc(2027, 1, 4, 3, 5, 10))
    r = reconciler(cfg, api, clock)
    assert r.run(clock.sleep) == 0
    assert api.writes[0] == CLOSED
    # ...and says the policy was open outside its schedule? Not yet: within the grace period the
    # open policy is the expected lag of a scheduled close.
    assert r.metrics.values["aimesh_window_open_outside_schedule"] == 0


def test_missed_slots_around_a_close_never_leave_it_open_past_the_next_run() -> None:
    cfg = config(NIGHTLY)
    api = FakeApi(CLOSED)
    start = utc(2027, 1, 4, 0, 30)
    # The slots from 02:55 to 03:25 never run (indices 29-35 from 00:30).
    runs = list(run_slots(cfg, api, start, utc(2027, 1, 4, 4, 0), skip=frozenset(range(29, 36))))
    assert api.writes == [OPENED, CLOSED]
    first_after_gap = next(r for at, r in runs if at >= utc(2027, 1, 4, 3, 30))
    # It found the policy open long after the close, closed it and reports it.
    assert first_after_gap.metrics.values["aimesh_window_open_outside_schedule"] == 1
    assert first_after_gap.metrics.values["aimesh_window_policy_open"] == 0


def test_a_late_or_retried_run_never_opens_after_the_close() -> None:
    # A short window, and a run that starts (late, or as a retry) after it closed: it sees
    # "closed" - there is no edge-triggered "open" job that could land now.
    cfg = config(("0 1 * * *", "15 1 * * *", "Etc/UTC"))
    api = FakeApi(CLOSED)
    for start in (utc(2027, 1, 4, 1, 15), utc(2027, 1, 4, 1, 20), utc(2027, 1, 4, 9, 0)):
        clock = Clock(start)
        reconciler(cfg, api, clock).run(clock.sleep, once=True)
    assert api.writes == []
    assert api.spec == CLOSED


def test_a_hand_opened_policy_is_closed_within_a_minute_and_reported() -> None:
    cfg = config(NIGHTLY)
    api = FakeApi(CLOSED)
    clock = Clock(utc(2027, 1, 4, 12, 0, 10))
    r = reconciler(cfg, api, clock)
    edits = {utc(2027, 1, 4, 12, 1, 30): OPENED}

    def sleep(seconds: float) -> None:
        before = clock.t
        clock.sleep(seconds)
        for when, spec in edits.items():
            if before < when <= clock.t:
                api.spec = dict(spec)  # someone patches it by hand in between

    r.run(sleep)
    assert api.writes == [CLOSED]
    assert r.metrics.values["aimesh_window_open_outside_schedule"] == 1


def test_any_other_shape_is_replaced_and_reported_even_inside_the_window() -> None:
    widened = {**OPENED, "rules": [{}]}  # an empty rule: everyone
    api = FakeApi(widened)
    clock = Clock(utc(2027, 1, 4, 1, 30))
    r = reconciler(config(NIGHTLY), api, clock)
    assert r.reconcile() == wr.OTHER
    assert api.spec == OPENED
    assert r.metrics.values["aimesh_window_open_outside_schedule"] == 1


def test_a_missing_policy_is_left_to_the_program() -> None:
    api = FakeApi(None)
    clock = Clock(utc(2027, 1, 4, 1, 30))
    r = reconciler(config(NIGHTLY), api, clock)
    assert r.reconcile() == wr.MISSING
    assert api.writes == []
    assert r.metrics.values["aimesh_window_policy_open"] == 0


def test_a_failing_api_server_fails_the_run_and_counts_errors() -> None:
    api = FakeApi(CLOSED)
    api.fail = 100
    clock = Clock(utc(2027, 1, 4, 12, 0))
    r = reconciler(config(NIGHTLY), api, clock)
    assert r.run(clock.sleep) == 1
    assert r.metrics.values["aimesh_window_reconcile_errors_total"] == 5  # every minute, 4 min
    assert "aimesh_window_last_success_timestamp_seconds" not in r.metrics.values


@pytest.mark.parametrize(
    ("window", "start", "expected"),
    [
        # Berlin, spring forward: 01:30 CET open, the 02:30 close happens at the transition.
        (("30 1 * * *", "30 2 * * *", "Europe/Berlin"), utc(2027, 3, 28, 0, 25), [OPENED, CLOSED]),
        # New York, fall back: 01:10 EDT open, 01:40 EDT close, nothing in the repeated hour.
        (
            ("10 1 * * *", "40 1 * * *", "America/New_York"),
            utc(2027, 11, 7, 5, 0),
            [OPENED, CLOSED],
        ),
    ],
)
def test_runs_across_dst_changes_open_and_close_once(
    window: tuple[str, str, str], start: datetime, expected: list[Any]
) -> None:
    api = FakeApi(CLOSED)
    list(run_slots(config(window), api, start, start + timedelta(hours=3)))
    assert api.writes == expected


# ---- HTTP, metrics, the shipped files -------------------------------------------------------


class PolicyServer:
    """An HTTP endpoint that serves one AuthorizationPolicy the way the API server does for GET
    and JSON-patch PATCH, recording each request."""

    def __init__(self, spec: Mapping[str, Any] | None) -> None:
        self.object: dict[str, Any] | None = (
            None
            if spec is None
            else {
                "apiVersion": "security.istio.io/v1",
                "kind": "AuthorizationPolicy",
                "metadata": {"name": "m-window-1", "namespace": "m"},
                "spec": dict(spec),
            }
        )
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self, body: Any = None) -> None:
                owner.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "authorization": self.headers.get("Authorization"),
                        "content_type": self.headers.get("Content-Type"),
                        "body": body,
                    }
                )

            def _reply(self, code: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._record()
                if owner.object is None:
                    self._reply(404, {"kind": "Status", "message": "not found"})
                else:
                    self._reply(200, owner.object)

            def do_PATCH(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._record(body)
                assert owner.object is not None
                for op in body:
                    assert op["op"] == "add"
                    assert op["path"] == "/spec"
                    owner.object["spec"] = op["value"]
                self._reply(200, owner.object)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("first-token\n")
    return path


def test_the_api_client_patches_the_whole_spec_with_a_fresh_token(token: Path) -> None:
    server = PolicyServer(CLOSED)
    try:
        cfg = config(NIGHTLY)
        api = wr.KubeApi(cfg, server.url, str(token), ca_file="unused")
        assert api.get_spec() == CLOSED
        token.write_text("rotated-token\n")  # the kubelet rotates projected tokens
        api.set_spec(OPENED)
        get, patch = server.requests
        assert (
            get["path"]
            == patch["path"]
            == ("/apis/security.istio.io/v1/namespaces/m/authorizationpolicies/m-window-1")
        )
        assert get["authorization"] == "Bearer first-token"
        assert patch["authorization"] == "Bearer rotated-token"
        assert patch["content_type"] == "application/json-patch+json"
        assert patch["body"] == [{"op": "add", "path": "/spec", "value": OPENED}]
        assert server.object is not None
        assert server.object["spec"] == OPENED
        server.object = None
        assert api.get_spec() is None
    finally:
        server.close()


def test_the_api_client_refuses_other_schemes(token: Path) -> None:
    with pytest.raises(ValueError, match="https"):
        wr.KubeApi(config(NIGHTLY), "file:///etc/passwd", str(token))


def test_metrics_are_served_on_loopback_with_the_names_the_alerts_use() -> None:
    metrics = wr.Metrics("m-window-1")
    metrics.set("aimesh_window_last_success_timestamp_seconds", 1.5e9)
    server = wr.serve_metrics(metrics, 0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            text = response.read().decode()
    finally:
        server.shutdown()
    names = {
        line.split("{", 1)[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    assert names == set(alerts.WINDOW_METRICS)
    assert 'aimesh_window_last_success_timestamp_seconds{policy="m-window-1"} 1.5e+09' in text


def test_the_shipped_configmap_runs_alone_in_a_bare_interpreter(
    tmp_path: Path, token: Path
) -> None:
    """Lay the ConfigMap out as the pod mounts it and run the pod's command in a directory with
    nothing of this repository on the path (`-E -s`, cwd elsewhere)."""
    window = {"open": "0 1 * * *", "close": "0 3 * * *", "timeZone": "Europe/Berlin"}
    settings, model = one_model(
        callers=[{"namespace": "b", "serviceAccount": "job", "windows": [window]}]
    )
    from aimesh.builders import secure_model
    from tests.unit.test_access import GATEWAY

    objects = secure_model.build(settings, model, GATEWAY)
    # The reconciler's ConfigMap (the model namespace also has its intent ConfigMap).
    (configmap,) = [c for c in by_kind(objects, "ConfigMap") if "window.json" in c["data"]]
    (cronjob,) = by_kind(objects, "CronJob")
    # Outside the laid-out files there is no aimesh to import (no installed copy to fall back on).
    elsewhere = subprocess.run(
        [sys.executable, "-E", "-s", "-c", "import aimesh"], cwd=tmp_path, check=False
    )
    assert elsewhere.returncode != 0
    root = tmp_path / "pod"
    command = lay_out_pod(configmap, cronjob, root)
    assert command[0] == "python3"
    shipped = json.loads(configmap["data"]["window.json"])
    server = PolicyServer(shipped["closedSpec"])
    try:
        done = subprocess.run(
            [
                sys.executable,
                *command[1:],
                "--once",
                "--no-metrics",
                f"--server={server.url}",
                f"--token-file={token}",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(e["policy"] == f"{model.ns}/{shipped['policy']}" for e in events)
    # It ran against the policy and left it in one of the two shapes.
    assert server.object is not None
    assert server.object["spec"] in (shipped["closedSpec"], shipped["openSpec"])
    assert next(r["method"] for r in server.requests) == "GET"


def test_the_runtime_modules_import_nothing_but_the_standard_library() -> None:
    runtime = Path(wr.__file__).parent
    for file in windows.RUNTIME_FILES:
        text = (runtime / file).read_text()
        imports = {
            line.split()[1].split(".")[0]
            for line in text.splitlines()
            if line.startswith(("import ", "from "))
        }
        assert imports <= set(sys.stdlib_module_names) | {"__future__", "aimesh"}, file
