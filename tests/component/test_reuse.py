"""The components as a library: typed args, `depends_on` through `opts`, conventional type
tokens with aliases to the old ones, and the example program of another team under mocks."""

from __future__ import annotations

import re
from pathlib import Path

import pulumi
import pytest

import aimesh.components
from aimesh.builders.gateway import reference
from aimesh.components import SecureModel, SecureModelArgs
from aimesh.components.manifests import upstream
from aimesh.settings import ConfigError, ModelSettings, parse
from tests.policy.test_our_stacks import mandatory_violations
from tools import offline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "reuse-secure-model" / "__main__.py"
TOKEN = re.compile(r"^aimesh:([a-z][A-Za-z]*):([A-Z][A-Za-z]*)$")
# Tokens renamed from snake_case modules: each must keep an alias to its old token.
RENAMED = {
    "aimesh:secureModel:SecureModel": "aimesh:secure_model:SecureModel",
    "aimesh:certManager:CertManager": "aimesh:cert_manager:CertManager",
    "aimesh:meshSecurity:MeshSecurity": "aimesh:mesh_security:MeshSecurity",
}


def components(ev: offline.Evaluation) -> list[offline.Registered]:
    return [r for r in ev.resources if r.type.startswith("aimesh:")]


def test_every_component_and_args_class_is_exported() -> None:
    exported = set(aimesh.components.__all__)
    for name in exported:
        assert getattr(aimesh.components, name) is not None
    components_ = {n for n in exported if n + "Args" in exported}
    assert {"SecureModel", "Cluster", "Istio", "KServe", "Gateway"} <= components_
    assert SecureModel is aimesh.components.SecureModel


def test_type_tokens_name_their_module(stack_evaluation: offline.Evaluation) -> None:
    for r in components(stack_evaluation):
        match = TOKEN.match(r.type)
        assert match, r.type
        module = re.sub(r"(?<!^)(?=[A-Z])", "_", match.group(1)).lower()
        assert (ROOT / "aimesh" / "components" / f"{module}.py").is_file(), r.type


def test_renamed_components_alias_their_old_token(stack_evaluation: offline.Evaluation) -> None:
    seen = set()
    for r in components(stack_evaluation):
        expected = [{"type": RENAMED[r.type]}] if r.type in RENAMED else []
        assert r.options["aliasSpecs"] == expected, r.urn
        seen.add(r.type)
    assert {"aimesh:certManager:CertManager", "aimesh:meshSecurity:MeshSecurity"} <= seen


def test_depends_on_must_be_resources() -> None:
    assert upstream(None) == []
    assert upstream(pulumi.ResourceOptions()) == []
    # ResourceOptions refuses a prompt non-resource itself; what it cannot check is an Output
    # (of a list of resources), which a component could not split among its children.
    wrong = pulumi.ResourceOptions()
    wrong.depends_on = pulumi.Output.from_input([])
    with pytest.raises(TypeError, match="depends_on"):
        upstream(wrong)


def test_a_grant_of_an_unknown_integration_is_refused_before_registering() -> None:
    grant = {
        "name": "m",
        "format": "sklearn",
        "storageUri": "gs://b/m",
        "integrations": [{"name": "x"}],
    }
    model = ModelSettings.model_validate(grant)
    platform = parse({})
    with pytest.raises(ValueError, match="unknown integration 'x'"):
        SecureModelArgs(model=model, gateway=reference(platform), platform=platform)


# ---- the example: another team's program -----------------------------------------------------


def example(**config: str) -> offline.Evaluation:
    values = {f"reuse-secure-model:{k}": v for k, v in config.items()}
    return offline.evaluate(values, program=EXAMPLE, stack="example")


@pytest.fixture(scope="module")
def reuse() -> offline.Evaluation:
    return example()


def test_example_serves_a_fully_guarded_model(reuse: offline.Evaluation) -> None:
    (component,) = [r for r in reuse.resources if r.type == "aimesh:secureModel:SecureModel"]
    children = [r for r in reuse.resources if r.parent == component.urn]
    kinds = {r.kind for r in children}
    assert {
        "Namespace",
        "ServiceAccount",
        "InferenceService",
        "VirtualService",
        "AuthorizationPolicy",
        "NetworkPolicy",
        "ServiceEntry",
        "EnvoyFilter",
        "Role",
    } <= kinds
    assert reuse.outputs["endpoint"] == "https://ranker.models.example.com"
    assert [row["caller"] for row in reuse.outputs["accessMatrix"]] == ["search/frontend"]


def test_example_depends_on_reaches_every_child(reuse: offline.Evaluation) -> None:
    frontend = reuse.urn_of("frontend")
    (component,) = [r for r in reuse.resources if r.type == "aimesh:secureModel:SecureModel"]
    children = [r for r in reuse.resources if r.parent == component.urn]
    assert children
    assert all(frontend in r.dependencies for r in children)


def test_example_passes_the_policy_pack(reuse: offline.Evaluation) -> None:
    assert mandatory_violations(reuse) == []


def test_example_config_is_validated_and_used() -> None:
    production = example(environment="production")
    assert not [m for m in production.find("EnvoyFilter") if "masking" in m["metadata"]["name"]]
    with pytest.raises(ConfigError, match="trustDomain"):
        example(trustDomain="not a host")
