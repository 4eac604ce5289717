"""The policy pack over the analyzer gRPC protocol, started the way the Pulumi CLI starts it.

`PolicyPackProcess` runs `python -u -m pulumi.policy <engine> .` in policy-pack/ with the CLI's
environment (PULUMI_CONFIG, PULUMI_PROJECT/STACK/ORGANIZATION/DRY_RUN), reads the port the pack
prints, and the tests speak to it only through gRPC: GetAnalyzerInfo, Configure, Analyze,
Remediate and AnalyzeStack, with properties as protobuf Structs (numbers as doubles, unknowns as
the engine's sentinel, secrets in their envelope), exactly what the engine sends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.analyzer import (
    SECRET_SIG,
    SPECIAL_SIG_KEY,
    UNKNOWN,
    AnalyzerError,
    AnalyzerInfo,
    PolicyConfig,
    PolicyPackProcess,
    Resource,
    preview,
    reconcile_policy_config,
    urn,
)

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "policy-pack"
PA_POLICY = "istio-peerauthentication-require-strict-mtls"
MESH_POLICY = "istio-mesh-require-strict-peerauthentication"


def _resource(manifest: dict[str, Any]) -> Resource:
    api_version = manifest["apiVersion"]
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    type_ = f"kubernetes:{group_version}:{manifest['kind']}"
    meta = manifest.get("metadata", {})
    name = f"{meta.get('namespace', '')}-{meta.get('name', 'x')}".strip("-")
    return Resource(
        type=type_,
        urn=urn("test", "aimesh", type_, name),
        name=name,
        properties=manifest,
    )


def _peer_authentication(namespace: str, mode: Any, name: str = "default") -> Resource:
    spec: dict[str, Any] = {} if mode is None else {"mtls": {"mode": mode}}
    return _resource(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    if not (PACK / "__main__.py").exists():
        pytest.skip("policy-pack/__main__.py does not exist yet")
    with PolicyPackProcess(PACK, stack="test", config={"aimesh:environment": "dev"}) as running:
        yield running


@pytest.fixture(scope="module")
def info(pack: PolicyPackProcess) -> AnalyzerInfo:
    return pack.client.get_analyzer_info()


@pytest.fixture
def configured(pack: PolicyPackProcess, info: AnalyzerInfo) -> PolicyPackProcess:
    """The pack configured the way the engine does with no --policy-pack-config."""
    pack.client.configure(reconcile_policy_config(info))
    return pack


def test_the_pack_is_started_like_the_cli_starts_a_python_pack(pack: PolicyPackProcess) -> None:
    command = pack.command("127.0.0.1:1")
    assert command[1:5] == ["-u", "-m", "pulumi.policy", "127.0.0.1:1"]
    assert command[-1] == "."
    env = pack.environment()
    assert json.loads(env["PULUMI_CONFIG"]) == {"aimesh:environment": "dev"}
    assert env["PULUMI_PROJECT"] == "aimesh"
    assert env["PULUMI_STACK"] == "test"
    assert env["PULUMI_DRY_RUN"] == "true"
    assert "PULUMI_ORGANIZATION" in env
    assert "PYTHONHOME" not in env
    assert pack.port > 0
    # The analyzer also answers the engine's plugin-info probe.
    assert pack.client.get_plugin_info()


def test_analyzer_info_describes_every_policy(info: AnalyzerInfo) -> None:
    from aimesh_policies import PACK_NAME, all_policies

    assert info.name == PACK_NAME
    assert info.supports_config
    policies = {p.name: p for p in all_policies()}
    assert {p.name for p in info.policies} == set(policies)
    assert {PA_POLICY, MESH_POLICY} <= set(policies)
    for served in info.policies:
        policy = policies[served.name]
        assert served.enforcement_level == policy.level.value, served.name
        assert served.severity == policy.severity.value, served.name
        assert served.policy_type == ("stack" if policy.is_stack_rule else "resource")
        assert served.description == policy.description
        assert served.remediation_steps == policy.remediation
        # The schema crosses the wire as a Struct (numbers become doubles; 1 == 1.0).
        assert served.config_schema["properties"] == policy.config_schema(), served.name


def test_mandatory_and_advisory_levels_are_both_served(info: AnalyzerInfo) -> None:
    levels = {p.enforcement_level for p in info.policies}
    assert "mandatory" in levels
    assert info.policy(PA_POLICY).enforcement_level == "mandatory"
    assert info.policy(MESH_POLICY).policy_type == "stack"


def test_permissive_peer_authentication_is_a_mandatory_violation_with_the_fix(
    configured: PolicyPackProcess,
) -> None:
    resource = _peer_authentication("payments", "PERMISSIVE")
    result = configured.client.analyze(resource)
    found = [d for d in result.diagnostics if d.policy_name == PA_POLICY]
    assert found, result
    assert all(d.mandatory for d in found)
    message = found[0].message
    assert "PERMISSIVE" in message
    assert "Fix:" in message
    assert "STRICT" in message.split("Fix:", 1)[1]
    assert found[0].urn == resource.urn


def test_strict_peer_authentication_passes_every_policy(configured: PolicyPackProcess) -> None:
    result = configured.client.analyze(_peer_authentication("payments", "STRICT"))
    assert result.diagnostics == ()


def test_configure_reaches_the_policies(pack: PolicyPackProcess, info: AnalyzerInfo) -> None:
    resource = _peer_authentication("legacy", "PERMISSIVE")
    client = pack.client
    try:
        client.configure(
            reconcile_policy_config(
                info,
                {
                    PA_POLICY: PolicyConfig(
                        "",
                        {
                            "exemptNamespaces": [
                                {"name": "legacy", "reason": "test", "expires": "2999-12-31"}
                            ]
                        },
                    )
                },
            )
        )
        assert not [d for d in client.analyze(resource).diagnostics if d.policy_name == PA_POLICY]

        client.configure(reconcile_policy_config(info, {"all": PolicyConfig("advisory")}))
        found = [d for d in client.analyze(resource).diagnostics if d.policy_name == PA_POLICY]
        assert found
        assert not any(d.mandatory for d in found)

        client.configure(reconcile_policy_config(info, {PA_POLICY: PolicyConfig("disabled")}))
        assert not [d for d in client.analyze(resource).diagnostics if d.policy_name == PA_POLICY]
    finally:
        client.configure(reconcile_policy_config(info))


def test_the_pack_refuses_config_naming_what_it_does_not_have(
    pack: PolicyPackProcess, info: AnalyzerInfo
) -> None:
    """The engine validates known properties only and forwards the rest: the pack itself
    refuses a misspelt policy or property at Configure, before judging anything, rather than
    silently dropping an exemption."""
    client = pack.client
    exempt = PolicyConfig("", {"exemptNamespace": ["legacy"]})  # the property is exemptNamespaces
    engine_would_send = {
        **reconcile_policy_config(info),
        PA_POLICY: exempt,
        "istio-peerauthentication-require-strict-mtl": PolicyConfig("advisory"),
        "all": PolicyConfig("advisory"),
    }
    try:
        with pytest.raises(AnalyzerError) as refused:
            client.configure(engine_would_send)
        message = str(refused.value)
        assert "INVALID_ARGUMENT" in message
        assert f"{PA_POLICY}.exemptNamespace" in message
        assert "did you mean `exemptNamespaces`?" in message
        assert f"did you mean `{PA_POLICY}`?" in message
        assert "\n  all:" not in message  # the engine's key for every policy
    finally:
        client.configure(reconcile_policy_config(info))
    # Still serving, and judging with the valid config.
    resource = _peer_authentication("legacy", "PERMISSIVE")
    assert [d for d in client.analyze(resource).diagnostics if d.policy_name == PA_POLICY]


def _istiod_release() -> Resource:
    type_ = "kubernetes:helm.sh/v3:Release"
    return Resource(
        type=type_,
        urn=urn("test", "aimesh", type_, "istiod"),
        name="istiod",
        properties={
            "chart": "istiod",
            "namespace": "istio-system",
            "values": {"meshConfig": {"accessLogFile": "/dev/stdout"}},
        },
    )


def test_stack_without_mesh_wide_strict_is_a_violation(configured: PolicyPackProcess) -> None:
    # A stack that installs the mesh (istiod's Helm release) owns the mesh-wide default.
    namespace_only = [_istiod_release(), _peer_authentication("payments", "STRICT")]
    result = configured.client.analyze_stack(namespace_only)
    found = [d for d in result.diagnostics if d.policy_name == MESH_POLICY]
    assert found, result
    assert all(d.mandatory for d in found)
    assert "Fix:" in found[0].message

    with_root = [*namespace_only, _peer_authentication("istio-system", "STRICT")]
    result = configured.client.analyze_stack(with_root)
    assert not [d for d in result.diagnostics if d.policy_name == MESH_POLICY]


def test_stack_policy_config_crosses_the_wire(pack: PolicyPackProcess, info: AnalyzerInfo) -> None:
    # A team stack without the mesh passes, unless config demands the policy of every stack.
    team_stack = [_peer_authentication("payments", "STRICT")]
    client = pack.client
    try:
        client.configure(reconcile_policy_config(info))
        result = client.analyze_stack(team_stack)
        assert not [d for d in result.diagnostics if d.policy_name == MESH_POLICY]
        strict = {MESH_POLICY: PolicyConfig("", {"requireInEveryStack": True})}
        client.configure(reconcile_policy_config(info, strict))
        result = client.analyze_stack(team_stack)
        assert [d for d in result.diagnostics if d.policy_name == MESH_POLICY]
    finally:
        client.configure(reconcile_policy_config(info))


def test_remediation_raises_a_downgraded_peer_authentication_to_strict(
    pack: PolicyPackProcess, info: AnalyzerInfo
) -> None:
    client = pack.client
    resource = _peer_authentication("payments", "PERMISSIVE")
    try:
        # At its default (mandatory) level a policy only reports; remediation is opt-in.
        client.configure(reconcile_policy_config(info))
        assert client.remediate(resource) == []

        client.configure(reconcile_policy_config(info, {PA_POLICY: PolicyConfig("remediate")}))
        fixes = [f for f in client.remediate(resource) if f.policy_name == PA_POLICY]
        assert len(fixes) == 1
        assert fixes[0].properties is not None
        assert fixes[0].properties["spec"]["mtls"]["mode"] == "STRICT"
        assert fixes[0].properties["metadata"] == resource.properties["metadata"]

        # As in a preview: the remediated properties are what Analyze then sees.
        result = preview(client, [resource, _peer_authentication("istio-system", "STRICT")])
        assert result.remediations[resource.urn]
        assert not [d for d in result.all_diagnostics if d.policy_name == PA_POLICY]
    finally:
        client.configure(reconcile_policy_config(info))


def test_unknown_mode_during_preview_does_not_pass_silently(
    configured: PolicyPackProcess,
) -> None:
    # The engine sends values computed only at apply as this sentinel string.
    result = configured.client.analyze(_peer_authentication("payments", UNKNOWN))
    assert [d for d in result.diagnostics if d.policy_name == PA_POLICY], result


def test_secret_and_odd_values_cross_the_wire(configured: PolicyPackProcess) -> None:
    secret = _resource(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "payments"},
            "stringData": {SPECIAL_SIG_KEY: SECRET_SIG, "value": {"token": "s3cr3t"}},
        }
    )
    odd = _resource(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": 7, "namespace": None, "labels": [1, 2]},
            "spec": {"mtls": ["STRICT"], "portLevelMtls": "nope"},
        }
    )
    for resource in (secret, odd):
        result = configured.client.analyze(resource)
        for d in result.diagnostics:
            assert "s3cr3t" not in d.message
    result = configured.client.analyze_stack([secret, odd])
    assert all("s3cr3t" not in d.message for d in result.diagnostics)


def test_numbers_arriving_as_doubles_are_shown_as_integers(
    configured: PolicyPackProcess,
) -> None:
    # Over the wire every number is a protobuf double: 80 arrives as 80.0. Messages show the
    # number the user wrote.
    gateway = _resource(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "plain", "namespace": "istio-ingress"},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}}],
            },
        }
    )
    entry = _resource(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": "db", "namespace": "payments"},
            "spec": {
                "hosts": ["db.example.com"],
                "ports": [{"number": 5432, "name": "pg", "protocol": "TCP"}],
            },
        }
    )
    pod = _resource(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "payments"},
            "spec": {"containers": [{"name": "c", "ports": [{"hostPort": 8443}]}]},
        }
    )
    istiod = Resource(
        type="kubernetes:helm.sh/v3:Release",
        urn=urn("test", "aimesh", "kubernetes:helm.sh/v3:Release", "istiod"),
        name="istiod",
        properties={
            "chart": "istiod",
            "values": {"global": {"proxy": {"excludeInboundPorts": 15010}}},
        },
    )
    expected = {
        gateway.urn: "port 80 serves plain HTTP",
        entry.urn: "port 5432 (TCP)",
        pod.urn: "binds node port 8443:",
        istiod.urn: "excludes ports 15010 from capture",
    }
    for resource in (gateway, entry, pod, istiod):
        messages = [d.message for d in configured.client.analyze(resource).diagnostics]
        assert any(expected[resource.urn] in m for m in messages), messages
        assert not any(".0" in m.replace("v1.0", "") for m in messages if "port" in m), messages
