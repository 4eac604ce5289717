"""Pure cluster builders (kind config, commands, namespaces, gateway address) and prereqs."""

from __future__ import annotations

import ast
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from aimesh import settings, versions
from aimesh.builders import cluster
from aimesh.namespaces import CONTROL_PLANE_NAMESPACES, INGRESS_NAMESPACE
from tools import prereqs, schemas


def _settings(**raw: Any) -> settings.Settings:
    return settings.parse(raw)


def test_kind_config_pins_node_image_and_maps_gateway_node_ports() -> None:
    config = cluster.kind_config(_settings(kindHttpPort=9080, kindHttpsPort=9443))
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (node,) = config["nodes"]
    assert node["image"] == versions.KIND_NODE_IMAGE
    assert node["image"].startswith("kindest/node:v1.35.")
    assert "@sha256:" in node["image"], "pin the node image by digest (kind release notes)"
    mappings = {m["containerPort"]: m["hostPort"] for m in node["extraPortMappings"]}
    assert mappings == {30080: 9080, 30443: 9443}


def test_kind_ports_are_published_on_loopback_only() -> None:
    node = cluster.kind_config(_settings())["nodes"][0]
    assert {m["listenAddress"] for m in node["extraPortMappings"]} == {"127.0.0.1"}


def test_kind_create_prints_only_the_kubeconfig_on_stdout() -> None:
    command = cluster.kind_create_command(_settings(clusterName="dev-1"))
    create, _, read = command.partition(" && ")
    assert shlex.split(create)[:3] == ["kind", "create", "cluster"]
    assert "--config=-" in create  # the config arrives on stdin
    assert create.endswith("1>&2")  # kind's progress output stays off stdout
    assert shlex.split(read) == ["kind", "get", "kubeconfig", "--name", "dev-1"]


def test_kind_delete_targets_the_configured_cluster() -> None:
    assert shlex.split(cluster.kind_delete_command(_settings(clusterName="dev-1"))) == [
        "kind",
        "delete",
        "cluster",
        "--name",
        "dev-1",
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, "NodePort"),
        ({"clusterMode": "existing", "kubeContext": "prod"}, "LoadBalancer"),
        ({"clusterMode": "render"}, "LoadBalancer"),
        (
            {"clusterMode": "existing", "kubeContext": "p", "gatewayServiceType": "ClusterIP"},
            "ClusterIP",
        ),
    ],
)
def test_gateway_service_type(raw: dict[str, Any], expected: str) -> None:
    assert cluster.gateway_service_type(_settings(**raw)) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"kindHttpsPort": 9443}, "127.0.0.1:9443"),
        ({"clusterMode": "render"}, ""),
        (
            {"clusterMode": "existing", "kubeContext": "p", "gatewayServiceType": "ClusterIP"},
            "aimesh-ingressgateway.istio-ingress.svc:443",
        ),
        # Only the cluster knows a LoadBalancer's address.
        ({"clusterMode": "existing", "kubeContext": "p"}, None),
    ],
)
def test_static_gateway_address(raw: dict[str, Any], expected: str | None) -> None:
    assert cluster.static_gateway_address(_settings(**raw)) == expected


@pytest.mark.parametrize("name", CONTROL_PLANE_NAMESPACES)
def test_control_plane_namespaces_opt_out_of_injection(name: str) -> None:
    manifest = cluster.namespace(name, injected=False)
    assert manifest["metadata"]["name"] == name
    assert manifest["metadata"]["labels"]["istio-injection"] == "disabled"
    assert manifest["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_ingress_namespace_is_injected() -> None:
    labels = cluster.namespace(INGRESS_NAMESPACE, injected=True)["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled"


def test_only_control_planes_may_opt_out_of_the_mesh() -> None:
    with pytest.raises(ValueError, match="not a control-plane namespace"):
        cluster.namespace("iris", injected=False)


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("name", [*CONTROL_PLANE_NAMESPACES, INGRESS_NAMESPACE])
def test_namespaces_validate(name: str) -> None:
    manifest = cluster.namespace(name, injected=name == INGRESS_NAMESPACE)
    assert schemas.validate(manifest) == []


# ---- tools/prereqs.py ------------------------------------------------------------------------


def _which(present: set[str]) -> prereqs.Which:
    return lambda name: f"/usr/bin/{name}" if name in present else None


def _run(returncode: int) -> prereqs.Run:
    def run(argv: Sequence[str]) -> int:
        assert list(argv) == ["docker", "info"]
        return returncode

    return run


ALL = {"pulumi", "docker", "kind", "go", "kubectl"}
# A Python that can build the virtualenvs, whatever interpreter runs the tests.
GOOD_PYTHON: dict[str, Any] = {"version": (3, 11), "can_make_venv": lambda: True}


def test_prereqs_all_present() -> None:
    assert prereqs.problems(_which(ALL), _run(0), "Linux", **GOOD_PYTHON) == []


@pytest.mark.parametrize("missing", sorted(ALL))
def test_prereqs_name_the_missing_tool_and_how_to_get_it(missing: str) -> None:
    found = prereqs.problems(_which(ALL - {missing}), _run(0), "Linux", **GOOD_PYTHON)
    assert len(found) == 1
    assert found[0].startswith(f"{missing} is not on PATH")
    assert "install:" in found[0]
    assert "https://" in found[0]


def test_prereqs_macos_hints_use_brew() -> None:
    (message,) = prereqs.problems(_which(ALL - {"kind"}), _run(0), "Darwin", **GOOD_PYTHON)
    assert "brew install kind" in message


def test_prereqs_docker_daemon_must_answer() -> None:
    (message,) = prereqs.problems(_which(ALL), _run(1), "Linux", **GOOD_PYTHON)
    assert "daemon does not answer" in message
    assert "systemctl start docker" in message


def test_prereqs_main_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prereqs, "problems", lambda: ["kind is not on PATH"])
    assert prereqs.main() == 1
    monkeypatch.setattr(prereqs, "problems", list)
    assert prereqs.main() == 0


@pytest.mark.parametrize(
    ("version", "system", "hint"),
    [((3, 9), "Darwin", "brew install python@3.11"), ((3, 10), "Linux", "python3.11-venv")],
)
def test_prereqs_python_too_old_is_named_first(
    version: tuple[int, int], system: str, hint: str
) -> None:
    """macOS ships python3 3.9: `make up` must say so before trying to build .venv with it."""
    found = prereqs.problems(_which(ALL), _run(0), system, version=version)
    (message,) = found
    assert message.startswith(f"python {version[0]}.{version[1]} is too old")
    assert hint in message
    assert "make up PYTHON=python3.11" in message


def test_prereqs_python_without_venv_support() -> None:
    (message,) = prereqs.problems(
        _which(ALL), _run(0), "Linux", version=(3, 12), can_make_venv=lambda: False
    )
    assert "cannot create virtualenvs" in message
    assert "python3.12-venv" in message


def test_prereqs_python_minimum_matches_pyproject() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert f'requires-python = ">={prereqs.MIN_PYTHON[0]}.{prereqs.MIN_PYTHON[1]}"' in text


def test_prereqs_script_imports_without_new_syntax_at_runtime() -> None:
    """The checker must run on the old Python it is meant to reject: no module-level use of
    `X | Y` types or subscripted ABCs, which raise on import before 3.10/3.9."""
    source = Path(prereqs.__file__).read_text()
    ast.parse(source, feature_version=(3, 8))
    module_level = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and any(isinstance(n, ast.BinOp | ast.Subscript) for n in ast.walk(node))
    ]
    assert module_level == []
