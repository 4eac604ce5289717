"""The program refuses Kubernetes without native sidecars (< 1.33), before registering anything.

The existing-cluster path is exercised for real: the official Kubernetes client reads a
kubeconfig that points at a small HTTP server on 127.0.0.1 answering `/version` and
`/api/v1/nodes` the way an API server does."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pulumi
import pytest
import yaml

from aimesh import cluster_version, settings, versions
from tools import offline

EXISTING = {"clusterMode": "existing", "kubeContext": "fake"}


def _version(git: str) -> dict[str, str]:
    major, minor = git.lstrip("v").split(".")[:2]
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git,
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _node(name: str, kubelet: str) -> dict[str, Any]:
    info = {
        "architecture": "amd64",
        "bootID": "b",
        "containerRuntimeVersion": "containerd://2.0",
        "kernelVersion": "6.1",
        "kubeProxyVersion": kubelet,
        "kubeletVersion": kubelet,
        "machineID": "m",
        "operatingSystem": "linux",
        "osImage": "Debian",
        "systemUUID": "u",
    }
    return {"metadata": {"name": name}, "status": {"nodeInfo": info}}


class FakeApiServer:
    """Answers GET /version and GET /api/v1/nodes (or 403 for nodes) on 127.0.0.1."""

    def __init__(self, server: str, kubelets: list[str] | None) -> None:
        answers = {
            "/version": (200, _version(server)),
            "/api/v1/nodes": (
                (
                    200,
                    {
                        "kind": "NodeList",
                        "apiVersion": "v1",
                        "metadata": {},
                        "items": [_node(f"n{i}", k) for i, k in enumerate(kubelets)],
                    },
                )
                if kubelets is not None
                else (403, {"kind": "Status", "status": "Failure", "code": 403})
            ),
        }
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler) -> None:  # noqa: N805 - the http.server API
                self.requests.append(handler.path)
                code, body = answers.get(handler.path.split("?")[0].rstrip("/"), (404, {}))
                data = json.dumps(body).encode()
                handler.send_response(code)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)

            def log_message(handler, *args: Any) -> None:  # noqa: N805
                del args

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def kubeconfig(self) -> str:
        host, port = str(self.httpd.server_address[0]), int(self.httpd.server_address[1])
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://{host}:{port}"}}],
                "users": [{"name": "fake", "user": {"token": "t"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _no_assumption(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cluster_version.ASSUME_ENV, raising=False)


def _existing(api: FakeApiServer) -> settings.Settings:
    return settings.parse({**EXISTING, "kubeconfig": api.kubeconfig})


def test_versions_as_servers_report_them() -> None:
    assert cluster_version.minor("v1.33.2-eks-1a2b3c") == (1, 33)
    assert cluster_version.minor("1.35") == (1, 35)
    with pytest.raises(cluster_version.UnsupportedClusterError):
        cluster_version.minor("latest")


def test_an_existing_cluster_is_asked() -> None:
    with FakeApiServer("v1.35.1", ["v1.35.1", "v1.34.3"]) as api:
        found = cluster_version.target(_existing(api))
    assert found.server == "v1.35.1"
    assert found.oldest_kubelet == "v1.34.3"
    assert "/version/" in api.requests


def test_an_old_api_server_is_refused_with_what_was_found() -> None:
    with (
        FakeApiServer("v1.32.4", ["v1.32.4"]) as api,
        pytest.raises(cluster_version.UnsupportedClusterError) as refused,
    ):
        cluster_version.target(_existing(api))
    message = str(refused.value)
    assert "v1.32.4" in message
    assert "aimesh:kubeconfig" in message
    assert "1.33" in message
    assert "nothing was created" in message


def test_an_old_kubelet_is_refused_even_behind_a_new_api_server() -> None:
    # Istio turns native sidecars on only when every node supports them.
    with (
        FakeApiServer("v1.34.0", ["v1.34.0", "v1.31.9"]) as api,
        pytest.raises(cluster_version.UnsupportedClusterError, match=r"kubelet is v1\.31\.9"),
    ):
        cluster_version.target(_existing(api))


def test_a_kubelet_that_reports_no_release_is_refused_by_name() -> None:
    with (
        FakeApiServer("v1.36.3", ["v1.36.3", "kwok-0.8.0"]) as api,
        pytest.raises(cluster_version.UnsupportedClusterError) as refused,
    ):
        cluster_version.target(_existing(api))
    assert "n1" in str(refused.value)
    assert "kwok-0.8.0" in str(refused.value)
    assert "nothing was created" in str(refused.value)


def test_credentials_that_may_not_list_nodes_still_check_the_server() -> None:
    with FakeApiServer("v1.33.0", None) as api:
        found = cluster_version.target(_existing(api))
    assert found.oldest_kubelet is None


def test_an_unreachable_cluster_is_a_clear_error() -> None:
    with FakeApiServer("v1.35.0", []) as api:
        config = _existing(api)
    with pytest.raises(cluster_version.UnsupportedClusterError, match="cannot read the cluster"):
        cluster_version.target(config)


def test_render_mode_checks_the_configured_target() -> None:
    render = {"clusterMode": "render"}
    assert cluster_version.target(settings.parse(render)).server == "v1.35"
    with pytest.raises(cluster_version.UnsupportedClusterError, match="aimesh:kubernetesVersion"):
        cluster_version.target(settings.parse({**render, "kubernetesVersion": "v1.32"}))


def test_kind_runs_the_pinned_node_image() -> None:
    assert versions.KIND_NODE_VERSION in versions.KIND_NODE_IMAGE
    assert cluster_version.target(settings.parse({})).server == versions.KIND_NODE_VERSION


def test_a_bare_number_is_not_a_version() -> None:
    # Stack config arrives as JSON text: 1.30 would be the number 1.3.
    with pytest.raises(settings.ConfigError, match="kubernetesVersion"):
        settings.parse({"kubernetesVersion": 1.3})


def test_the_program_stops_before_registering_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cluster_version.ASSUME_ENV, "v1.32.0")
    config, secrets = offline.stack_config("prod")
    with pytest.raises(pulumi.RunError, match=r"v1\.32\.0"):
        offline.evaluate(config, secret_keys=secrets, stack="prod")
