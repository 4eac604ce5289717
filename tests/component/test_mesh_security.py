"""MeshSecurity under Pulumi mocks: what it registers, with which parent and dependencies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tools import offline, schemas

# A minimal program: MeshSecurity alone, waiting for a stand-in of the Istio charts.
PROGRAM = """
import pulumi
import pulumi_kubernetes as k8s

from aimesh import settings
from aimesh.components import MeshSecurity, MeshSecurityArgs

config = settings.load()
istio = k8s.core.v1.Namespace("istio-stand-in", metadata={"name": "istio-system"})
mesh = MeshSecurity(
    "aimesh", MeshSecurityArgs(config), opts=pulumi.ResourceOptions(depends_on=[istio])
)
pulumi.export("ready", [r.urn for r in mesh.ready])
"""

TOKEN = "aimesh:meshSecurity:MeshSecurity"


def _evaluate(tmp_path: Path, **config: Any) -> offline.Evaluation:
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    values = offline.project_defaults()
    values.update({f"aimesh:{k}": v for k, v in config.items()})
    encoded, secrets = offline.encode_config(values)
    return offline.evaluate(encoded, secret_keys=secrets, program=program)


@pytest.fixture
def evaluation(tmp_path: Path) -> offline.Evaluation:
    return _evaluate(tmp_path)


def _children(evaluation: offline.Evaluation) -> list[offline.Registered]:
    component = next(r for r in evaluation.resources if r.type == TOKEN)
    return [r for r in evaluation.resources if r.parent == component.urn]


def test_component_type_and_children(evaluation: offline.Evaluation) -> None:
    children = _children(evaluation)
    assert sorted(c.name for c in children) == [
        "aimesh-deny-all",
        "aimesh-egress",
        "aimesh-strict-mtls",
    ]
    assert {c.type for c in children} == {
        "kubernetes:security.istio.io/v1:PeerAuthentication",
        "kubernetes:security.istio.io/v1:AuthorizationPolicy",
        "kubernetes:networking.istio.io/v1:Sidecar",
    }


def test_every_child_waits_for_istio(evaluation: offline.Evaluation) -> None:
    istio = evaluation.urn_of("istio-stand-in")
    for child in _children(evaluation):
        assert istio in child.dependencies, child.name


def test_ready_lists_every_child(evaluation: offline.Evaluation) -> None:
    assert sorted(evaluation.outputs["ready"]) == sorted(c.urn for c in _children(evaluation))


def test_registered_objects(evaluation: offline.Evaluation) -> None:
    (pa,) = evaluation.find("PeerAuthentication")
    assert pa["metadata"]["namespace"] == "istio-system"
    assert pa["spec"] == {"mtls": {"mode": "STRICT"}}
    (deny_all,) = evaluation.find("AuthorizationPolicy")
    assert deny_all["spec"] == {"action": "ALLOW"}
    (sidecar,) = evaluation.find("Sidecar")
    assert sidecar["spec"]["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}


def test_outbound_policy_comes_from_config(tmp_path: Path) -> None:
    evaluation = _evaluate(tmp_path, outboundTrafficPolicy="ALLOW_ANY")
    (sidecar,) = evaluation.find("Sidecar")
    assert sidecar["spec"]["outboundTrafficPolicy"] == {"mode": "ALLOW_ANY"}


def test_invalid_outbound_policy_fails_before_any_resource(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="outboundTrafficPolicy"):
        _evaluate(tmp_path, outboundTrafficPolicy="ALLOW_SOME")


@pytest.mark.usefixtures("upstream_available")
def test_registered_objects_conform_to_upstream(evaluation: offline.Evaluation) -> None:
    manifests = [m for m in evaluation.manifests() if m["kind"] != "Namespace"]
    assert len(manifests) == 3
    for manifest in manifests:
        assert schemas.validate(manifest) == []


def test_whole_program_registers_mesh_security() -> None:
    evaluation = offline.evaluate_stack("dev")
    component = [r for r in evaluation.resources if r.type == TOKEN]
    assert [c.name for c in component] == ["aimesh"]
    assert evaluation.find("PeerAuthentication", "default")
    assert evaluation.find("AuthorizationPolicy", "deny-all")
