"""The window reconciler: keeps one batch window's AuthorizationPolicy in exactly the state its
schedule says (level-triggered, fail closed). Standard library only (aimesh/runtime/__init__.py).

A CronJob starts it every few minutes (aimesh/builders/secure_model/windows.py). Each run, for
about the length of one slot:

1. computes from the schedule whether the window should be open NOW (aimesh/runtime/schedule.py);
2. reads the policy and, unless its `spec` already is exactly that state's shape, replaces the
   whole `spec` with it (a JSON patch `add /spec`: nothing else of the object changes, and the
   result is one of the two shapes the admission guardrail lets this identity write);
3. sleeps until the next edge of the schedule or a minute, whichever comes first, and repeats.

So a failed or missed run is corrected by the next one, a late or retried run can only ever set
the state of the moment it runs (never open after the close), and an edit made by hand is undone
within a minute while a run is alive. What it sees is exported as Prometheus gauges on
127.0.0.1 (pilot-agent merges them into the sidecar's :15020 endpoint) and logged as JSON lines:

- `aimesh_window_schedule_open{policy}`: the schedule says open;
- `aimesh_window_policy_open{policy}`: the policy (as last written or read) is not the closed
  shape;
- `aimesh_window_open_outside_schedule{policy}`: 1 for the rest of the run once it found the
  policy open while the schedule had been closed for more than a grace period (one slot and a
  minute, so the seconds between a scheduled close and the run that applies it do not count), or
  found it in any shape but the two the program defines;
- `aimesh_window_last_success_timestamp_seconds{policy}`: when it last read (and if needed
  corrected) the policy;
- `aimesh_window_reconcile_errors_total{policy}`: failed attempts in this run.

    python -m aimesh.runtime.window_reconciler --config window.json [--once]
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from aimesh.runtime import schedule

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
OPEN, CLOSED, OTHER, MISSING = "open", "closed", "other", "missing"


@dataclass(frozen=True)
class Config:
    """What one reconciler keeps (the ConfigMap's `window.json`, written by the program)."""

    namespace: str
    policy: str
    api_version: str
    windows: tuple[schedule.Window, ...]
    open_spec: Mapping[str, Any]
    closed_spec: Mapping[str, Any]
    run_seconds: float
    recheck_seconds: float
    grace_seconds: float
    metrics_port: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Config:
        return cls(
            namespace=data["namespace"],
            policy=data["policy"],
            api_version=data["apiVersion"],
            windows=tuple(
                schedule.Window.parse(w["open"], w["close"], w["timeZone"]) for w in data["windows"]
            ),
            open_spec=data["openSpec"],
            closed_spec=data["closedSpec"],
            run_seconds=float(data["runSeconds"]),
            recheck_seconds=float(data["recheckSeconds"]),
            grace_seconds=float(data["graceSeconds"]),
            metrics_port=int(data["metricsPort"]),
        )


class ApiError(Exception):
    """The API server refused or could not be reached."""


class Api(Protocol):
    def get_spec(self) -> Mapping[str, Any] | None:
        """The policy's spec ({} if it has none); None if the policy does not exist."""

    def set_spec(self, spec: Mapping[str, Any]) -> None:
        """Replace the policy's whole spec."""


class KubeApi:
    """The policy through the Kubernetes API, with the pod's projected token (re-read on every
    request: the kubelet rotates it) and the cluster CA."""

    def __init__(
        self,
        config: Config,
        server: str | None = None,
        token_file: str = f"{SERVICE_ACCOUNT_DIR}/token",
        ca_file: str = f"{SERVICE_ACCOUNT_DIR}/ca.crt",
        timeout: float = 10.0,
    ) -> None:
        if server is None:
            host = os.environ["KUBERNETES_SERVICE_HOST"]
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        if not server.startswith(("https://", "http://")):
            raise ValueError(f"--server {server!r}: an https:// URL")
        self.url = (
            f"{server.rstrip('/')}/apis/{config.api_version}/namespaces/{config.namespace}"
            f"/authorizationpolicies/{config.policy}"
        )
        self._token_file = token_file
        self._context = (
            ssl.create_default_context(cafile=ca_file) if server.startswith("https:") else None
        )
        self._timeout = timeout

    def _call(self, method: str, body: Any = None, content_type: str = "") -> Any:
        with open(self._token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        # The scheme is https (or http, which only a test passes with --server): checked above.
        request = urllib.request.Request(self.url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(  # noqa: S310 - see above
                request, context=self._context, timeout=self._timeout
            ) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if method == "GET" and exc.code == 404:
                return None
            raise ApiError(f"{method} {self.url}: HTTP {exc.code}: {_status_message(exc)}") from exc
        except (OSError, ValueError) as exc:
            raise ApiError(f"{method} {self.url}: {exc}") from exc

    def get_spec(self) -> Mapping[str, Any] | None:
        found = self._call("GET")
        if found is None:
            return None
        spec = found.get("spec") if isinstance(found, dict) else None
        return spec if isinstance(spec, dict) else {}

    def set_spec(self, spec: Mapping[str, Any]) -> None:
        # `add` replaces an existing member (RFC 6902), and creates `spec` if someone removed it.
        self._call(
            "PATCH", [{"op": "add", "path": "/spec", "value": spec}], "application/json-patch+json"
        )


def _status_message(exc: urllib.error.HTTPError) -> str:
    try:
        status = json.loads(exc.read() or b"{}")
    except (OSError, ValueError):
        return str(exc.reason)
    message = status.get("message") if isinstance(status, dict) else None
    return str(message or exc.reason)


class Metrics:
    """The reconciler's gauges, as Prometheus text (one policy per process)."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.values: dict[str, float] = {
            "aimesh_window_schedule_open": 0,
            "aimesh_window_policy_open": 0,
            "aimesh_window_open_outside_schedule": 0,
            "aimesh_window_reconcile_errors_total": 0,
        }
        self._lock = threading.Lock()

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self.values[name] = value

    def add(self, name: str, value: float = 1) -> None:
        with self._lock:
            self.values[name] = self.values.get(name, 0) + value

    def render(self) -> str:
        with self._lock:
            items = sorted(self.values.items())
        lines = []
        for name, value in items:
            kind = "counter" if name.endswith("_total") else "gauge"
            lines.append(f"# TYPE {name} {kind}")
            lines.append(f'{name}{{policy="{self.policy}"}} {value:g}')
        return "\n".join(lines) + "\n"


def serve_metrics(metrics: Metrics, port: int) -> ThreadingHTTPServer:
    """Serve /metrics on loopback only (pilot-agent scrapes it from inside the pod)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def shape(spec: Mapping[str, Any] | None, config: Config) -> str:
    """Which of the program's shapes `spec` is: open, closed, other, or missing (no policy)."""
    if spec is None:
        return MISSING
    if spec == config.closed_spec:
        return CLOSED
    if spec == config.open_spec:
        return OPEN
    return OTHER


def log(event: str, **fields: Any) -> None:
    record = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "event": event, **fields}
    print(json.dumps(record, sort_keys=True), flush=True)


@dataclass
class Reconciler:
    """One policy, one schedule; `now` is injectable so tests can run a fake clock."""

    config: Config
    api: Api
    metrics: Metrics
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def reconcile(self) -> str:
        """One pass: read, compare with the schedule, correct. Returns the shape found."""
        at = self.now()
        should_open = schedule.is_open(self.config.windows, at)
        target = self.config.open_spec if should_open else self.config.closed_spec
        self.metrics.set("aimesh_window_schedule_open", int(should_open))
        found = shape(self.api.get_spec(), self.config)
        policy = f"{self.config.namespace}/{self.config.policy}"
        if found == MISSING:
            # Nothing to open or close; the program recreates it on its next `pulumi up`.
            self.metrics.set("aimesh_window_policy_open", 0)
            log("policy-missing", policy=policy)
            return found
        grace = timedelta(seconds=self.config.grace_seconds)
        closed_a_while = not should_open and not schedule.is_open(self.config.windows, at - grace)
        if found == OTHER or (found == OPEN and closed_a_while):
            self.metrics.set("aimesh_window_open_outside_schedule", 1)
            log("open-outside-schedule", policy=policy, found=found)
        self.metrics.set("aimesh_window_policy_open", int(found != CLOSED))
        wanted = OPEN if should_open else CLOSED
        if found != wanted:
            self.api.set_spec(target)
            log("set", policy=policy, found=found, state=wanted)
        self.metrics.set("aimesh_window_policy_open", int(should_open))
        self.metrics.set("aimesh_window_last_success_timestamp_seconds", at.timestamp())
        return found

    def wake_at(self, at: datetime) -> datetime:
        """When to look again: the next schedule edge (a second past it) or after
        `recheck_seconds`, whichever is first."""
        later = at + timedelta(seconds=self.config.recheck_seconds)
        edge = schedule.next_edge(self.config.windows, at)
        if edge is not None and edge + timedelta(seconds=1) < later:
            return edge + timedelta(seconds=1)
        return later

    def run(self, sleep: Callable[[float], None], once: bool = False) -> int:
        """Reconcile until `run_seconds` have passed (one pass with `once`). Exit status 0 when
        the last pass succeeded, 1 when it failed (the Job shows the failure, the next run
        retries)."""
        deadline = self.now() + timedelta(seconds=self.config.run_seconds)
        while True:
            try:
                self.reconcile()
                ok = True
            except ApiError as exc:
                ok = False
                self.metrics.add("aimesh_window_reconcile_errors_total")
                log("error", policy=f"{self.config.namespace}/{self.config.policy}", error=str(exc))
            at = self.now()
            if once or at >= deadline:
                return 0 if ok else 1
            wake = min(self.wake_at(at), deadline)
            sleep(max((wake - at).total_seconds(), 0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--config", required=True, help="window.json written by the program")
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--server", help="API server URL (default: the in-cluster Service)")
    parser.add_argument("--token-file", default=f"{SERVICE_ACCOUNT_DIR}/token")
    parser.add_argument("--ca-file", default=f"{SERVICE_ACCOUNT_DIR}/ca.crt")
    parser.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as handle:
        config = Config.from_json(json.load(handle))
    metrics = Metrics(config.policy)
    if not args.no_metrics:
        serve_metrics(metrics, config.metrics_port)
    api = KubeApi(config, args.server, args.token_file, args.ca_file)
    return Reconciler(config, api, metrics).run(time.sleep, once=args.once)


if __name__ == "__main__":
    sys.exit(main())
