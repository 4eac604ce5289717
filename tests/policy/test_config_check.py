"""The pack's own check of the policy config it is handed (config_check.unknown_names)."""

from __future__ import annotations

from aimesh_policies import all_policies
from aimesh_policies.config_check import nearest, unknown_names

SIDECAR = "istio-namespace-require-sidecar-injection"


def test_known_names_and_the_all_key_pass() -> None:
    config = {SIDECAR: {"exemptNamespaces": ["a"], "exemptPorts": [15020]}, "all": {}}
    assert unknown_names(config, all_policies()) == []


def test_a_misspelt_property_names_the_path_the_value_and_the_property_meant() -> None:
    (problem,) = unknown_names({SIDECAR: {"exemptNamespace": ["legacy"]}}, all_policies())
    assert problem.startswith(f'{SIDECAR}.exemptNamespace: ["legacy"]: ')
    assert problem.endswith("did you mean `exemptNamespaces`?")


def test_a_misspelt_policy_names_the_policy_meant() -> None:
    (problem,) = unknown_names({SIDECAR.replace("sidecar", "sidcar"): {}}, all_policies())
    assert f"did you mean `{SIDECAR}`?" in problem


def test_no_suggestion_when_nothing_is_close() -> None:
    (problem,) = unknown_names({"zzz": {}}, all_policies())
    assert "did you mean" not in problem
    assert nearest("zzz", ["exemptPorts"]) is None
