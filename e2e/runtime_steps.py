"""What runs inside the cluster, against the real API server: the batch-window reconciler.

No container runs in this environment (docs/e2e.md), so the reconciler's Python is run by the
harness, from the files its ConfigMap ships, exactly as the pod runs them
(`python -B -E -s -m aimesh.runtime.window_reconciler`), with what the pod would have: a token
of the window controller's own service account (TokenRequest API), the cluster CA, and the API
server's address. What is real: TLS, token authentication, RBAC on exactly the objects the
program grants, the AuthorizationPolicy CRD's schema and the API server's JSON patch. The
CronJob object itself is created and accepted by the API server too.

The step uses a namespace of its own (`e2e-window`), so the stack's steps start from nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aimesh.builders import gateway, secure_model
from aimesh.builders.secure_model import windows
from aimesh.runtime import schedule
from aimesh.settings import parse
from e2e.cluster import Cluster
from e2e.kube import Json, Kube, object_path
from e2e.report import ScenarioError

NAMESPACE = "e2e-window"
PLURALS = {
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ConfigMap": "configmaps",
    "CronJob": "cronjobs",
    "AuthorizationPolicy": "authorizationpolicies",
}


def require(condition: object, message: str) -> None:
    if not condition:
        raise ScenarioError(message)


def _window(opens_in_hours: int, closes_in_hours: int, now: datetime) -> dict[str, str]:
    """A daily window relative to now (UTC), whole hours, so it is open or closed for sure."""
    opens, closes = now + timedelta(hours=opens_in_hours), now + timedelta(hours=closes_in_hours)
    return {"open": f"0 {opens.hour} * * *", "close": f"0 {closes.hour} * * *"}


def _objects(window: dict[str, str]) -> tuple[Any, secure_model.ModelObjects, list[Json]]:
    """The model, its window policy and its window controller, as the program builds them."""
    settings = parse(
        {
            "models": [
                {
                    "name": NAMESPACE,
                    "format": "sklearn",
                    "storageUri": "gs://bucket/model",
                    "callers": [
                        {"namespace": "batch", "serviceAccount": "nightly", "windows": [window]}
                    ],
                }
            ]
        }
    )
    model = settings.models[0]
    built = secure_model.build(settings, model, gateway.reference(settings))
    controller = [
        m
        for m in built.guards
        if m["kind"] in PLURALS
        and m["metadata"]["labels"].get("aimesh.io/role") == windows.WINDOW_ROLE
    ]
    return model, built, controller


def _path(manifest: Json) -> str:
    meta = manifest["metadata"]
    return object_path(
        manifest["apiVersion"], PLURALS[manifest["kind"]], meta["name"], meta["namespace"]
    )


def _token(api: Kube, service_account: str) -> str:
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    path = object_path("v1", "serviceaccounts", service_account, NAMESPACE) + "/token"
    issued: Json = api.request("POST", path, request)
    token = issued.get("status", {}).get("token")
    require(token, f"no token issued for {NAMESPACE}/{service_account}")
    return str(token)


def lay_out_pod(configmap: Json, cronjob: Json, root: Path) -> list[str]:
    """Write the ConfigMap's files under `root` where the pod mounts them (relative to its
    working directory) and return the pod's command line for running there, interpreter first
    (`python3`: the caller substitutes its own)."""
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    mount = container["volumeMounts"][0]["mountPath"]
    code = root / Path(mount).relative_to(container["workingDir"])
    code.mkdir(parents=True, exist_ok=True)
    for key, text in configmap["data"].items():
        (code / key).write_text(text)
    return [*container["command"], *(a.replace(mount, str(code)) for a in container["args"])]


def _run_reconciler(
    cluster: Cluster, configmap: Json, cronjob: Json, token: str, work: Path
) -> list[Json]:
    """Run the pod's command once, from the files its ConfigMap ships, as its identity."""
    root = work / "pod"
    command = lay_out_pod(configmap, cronjob, root)
    token_file = work / "token"
    token_file.write_text(token)
    done = subprocess.run(
        [
            sys.executable,
            *command[1:],
            "--once",
            "--no-metrics",
            f"--server={cluster.server}",
            f"--token-file={token_file}",
            f"--ca-file={cluster.pki.crt('ca')}",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    require(done.returncode == 0, f"the reconciler failed: {done.stderr or done.stdout}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def window_reconciler(cluster: Cluster) -> dict[str, Any]:
    """Closed outside its schedule, open inside: a hand-opened policy is set back, a closed one
    opened, by the reconciler as its own identity, which can touch nothing else."""
    api = cluster.api
    now = datetime.now(UTC)
    api.apply(
        object_path("v1", "namespaces", NAMESPACE),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    )
    counts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aimesh-e2e-window-") as tmp:
        work = Path(tmp)
        for case, window, should_open in (
            ("closed-now", _window(6, 7, now), False),
            ("open-now", _window(-1, 2, now), True),
        ):
            model, built, controller = _objects(window)
            (policy,) = built.windows
            parsed = schedule.Window.parse(window["open"], window["close"], "Etc/UTC")
            require(parsed.is_open(now) is should_open, f"{case}: the test's window is wrong")
            for manifest in [policy, *controller]:
                api.apply(_path(manifest), manifest)
            row = next(r for r in built.rows if r.batch)
            opened, closed = windows.open_spec(model, row), windows.closed_spec(model)
            # Start from the wrong state: opened by hand outside the schedule, or closed inside.
            start = closed if should_open else opened
            # (Kube.request's body is JSON: a JSON patch is a list.)
            patch: Any = [{"op": "add", "path": "/spec", "value": start}]
            api.request("PATCH", _path(policy), patch, content_type="application/json-patch+json")
            configmap = next(m for m in controller if m["kind"] == "ConfigMap")
            cronjob = next(m for m in controller if m["kind"] == "CronJob")
            sa = windows.controller_service_account(row)
            token = _token(api, sa)
            events = _run_reconciler(cluster, configmap, cronjob, token, work / case)
            live = api.get(_path(policy)) or {}
            expected = opened if should_open else closed
            require(
                live.get("spec") == expected,
                f"{case}: the reconciler left spec {live.get('spec')}, expected {expected}",
            )
            require(
                any(e.get("event") == "set" for e in events),
                f"{case}: the reconciler logged no correction: {events}",
            )
            require(api.get(_path(cronjob)) is not None, f"{case}: the CronJob was not accepted")
            counts[case] = [e.get("event") for e in events]
        counts["forbidden"] = _only_its_own_policy(cluster, token, sa, policy)
    api.delete(object_path("v1", "namespaces", NAMESPACE))
    return counts


def _only_its_own_policy(cluster: Cluster, token: str, sa: str, policy: Json) -> int:
    """The window controller's token: its own policy yes; another policy, a Secret, a new
    policy: refused by the API server's RBAC."""
    other = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "e2e-other", "namespace": NAMESPACE},
        "spec": {"action": "DENY", "rules": [{}]},
    }
    cluster.api.apply(_path(other), other)
    refused = 0
    attempts = [
        ("PATCH", _path(other), [{"op": "remove", "path": "/spec/rules"}]),
        ("GET", object_path("v1", "secrets", "", NAMESPACE), None),
        ("POST", _path(other).rsplit("/", 1)[0], {**other, "metadata": {"name": "e2e-new"}}),
    ]
    for method, path, body in attempts:
        status = _as_token(cluster, token, method, path, body)
        require(status == 403, f"{sa} {method} {path}: HTTP {status}, expected 403")
        refused += 1
    require(
        _as_token(cluster, token, "GET", _path(policy), None) == 200, f"{sa} cannot read its policy"
    )
    return refused


def _as_token(cluster: Cluster, token: str, method: str, path: str, body: Any) -> int:
    import ssl
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(cluster.server + path, data=data, method=method)  # noqa: S310
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Accept", "application/json")
    if data is not None:
        kind = "application/json-patch+json" if method == "PATCH" else "application/json"
        request.add_header("Content-Type", kind)
    context = ssl.create_default_context(cafile=str(cluster.pki.crt("ca")))
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
