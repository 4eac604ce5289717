"""`make check` (python -m tools.check): the program's stacks and plain manifests through the pack.

End-to-end tests run the tool as a process, as `make check` does; the rest test how it builds
what the engine would send (URNs, parents, providers, type tokens) and how it reads
`--policy-pack-config`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aimesh_policies import all_policies

from tools import offline
from tools.analyzer import (
    SECRET_SIG,
    SPECIAL_SIG_KEY,
    UNKNOWN,
    AnalyzerInfo,
    PolicyConfig,
    PolicyConfigError,
    PolicyInfo,
    encode_value,
    load_policy_config,
    parse_policy_config,
    reconcile_policy_config,
)
from tools.check import (
    CHART_TYPE,
    STACK_TYPE,
    k8s_type,
    manifests_target,
    run,
    stack_target,
)

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "policy-pack"
NOOP = ROOT / "benchmarks" / "noop_pack"
PA_POLICY = "istio-peerauthentication-require-strict-mtls"
# The policy config the project's own checks and previews use (CI passes the same file).
PROJECT_CONFIG = PACK / "policy-config.json"

needs_pack = pytest.mark.skipif(
    not (PACK / "__main__.py").exists(), reason="policy-pack/__main__.py does not exist yet"
)

MESH_STRICT = {
    "apiVersion": "security.istio.io/v1",
    "kind": "PeerAuthentication",
    "metadata": {"name": "default", "namespace": "istio-system"},
    "spec": {"mtls": {"mode": "STRICT"}},
}
PERMISSIVE = {
    "apiVersion": "security.istio.io/v1beta1",
    "kind": "PeerAuthentication",
    "metadata": {"name": "legacy", "namespace": "payments"},
    "spec": {"mtls": {"mode": "PERMISSIVE"}},
}


def _check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "POLICY_PACK_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "tools.check", *args],
        cwd=ROOT,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _write(directory: Path, name: str, *docs: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump_all(list(docs)))
    return path


# --- end to end ----------------------------------------------------------------------------------


@needs_pack
@pytest.mark.parametrize("stack", offline.stacks())
def test_every_stack_of_the_project_passes_the_pack(
    stack: str, descriptor_set_or_none: Path | None, tmp_path: Path
) -> None:
    # As CI runs it: `make check` with POLICY_PACK_CONFIG set to the project's policy config.
    config = PROJECT_CONFIG
    if descriptor_set_or_none is None:
        # Without Go, the documented way through: the decoding policies lowered to advisory,
        # visibly, in the policy config; they still say that they cannot verify.
        lowered = json.loads(PROJECT_CONFIG.read_text())
        lowered.update({p.name: "advisory" for p in all_policies() if p.concern == "decoding"})
        config = tmp_path / "policy-config.json"
        config.write_text(json.dumps(lowered))
    proc = _check("--stack", stack, env={"POLICY_PACK_CONFIG": str(config)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "policy pack aimesh-zero-trust@" in proc.stdout
    shown = config.relative_to(ROOT) if config.is_relative_to(ROOT) else config
    assert f"config {shown}" in proc.stdout
    if descriptor_set_or_none is None:
        assert "descriptor set" in proc.stdout
    assert "lua: " in proc.stdout  # the embedded Lua sources were compiled (or said why not)
    assert "0 mandatory" in proc.stdout
    assert "PASS" in proc.stdout


@needs_pack
def test_a_violating_manifest_fails_with_the_resource_and_the_fix(tmp_path: Path) -> None:
    _write(tmp_path, "mesh.yaml", MESH_STRICT)
    _write(
        tmp_path / "team",
        "legacy.yaml",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "payments", "labels": {"istio-injection": "enabled"}},
        },
        PERMISSIVE,
    )
    proc = _check("--manifests", str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"MANDATORY {PA_POLICY}" in out
    # Grouped under the resource, named as a Helm v4 Chart child, with the file it came from.
    assert "kubernetes:security.istio.io/v1beta1:PeerAuthentication" in out
    assert "team/legacy.yaml#1" in out
    assert "Fix:" in out
    assert "FAIL" in out
    assert "1 mandatory" in out or "mandatory," in out


@needs_pack
def test_secure_manifests_pass(tmp_path: Path) -> None:
    _write(tmp_path, "mesh.yaml", MESH_STRICT, {**PERMISSIVE, "spec": {"mtls": {"mode": "STRICT"}}})
    proc = _check("--manifests", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout


@needs_pack
def test_policy_pack_config_file_changes_the_verdict(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    _write(manifests, "all.yaml", MESH_STRICT, PERMISSIVE)
    exempt = tmp_path / "exempt.json"
    entry = {"name": "payments", "reason": "legacy clients", "expires": "2999-12-31"}
    exempt.write_text(json.dumps({PA_POLICY: {"exemptNamespaces": [entry]}}))
    proc = _check("--manifests", str(manifests), "--policy-pack-config", str(exempt))
    assert proc.returncode == 0, proc.stdout + proc.stderr

    advisory = tmp_path / "advisory.json"
    advisory.write_text(json.dumps({PA_POLICY: "advisory"}))
    proc = _check("--manifests", str(manifests), "--policy-pack-config", str(advisory), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] is True
    assert any(
        v["policy"] == PA_POLICY and v["level"] == "advisory" and v["source"] == "all.yaml#1"
        for v in report["violations"]
    )


@needs_pack
@pytest.mark.parametrize(
    "entries",
    [
        "payments",
        ["payments"],  # the old form: no reason, no expiry
        [{"name": "payments", "expires": "2999-12-31"}],
        [{"name": "payments", "reason": "r", "expires": "next year"}],
    ],
)
def test_an_invalid_config_file_stops_the_check(tmp_path: Path, entries: object) -> None:
    _write(tmp_path / "m", "all.yaml", MESH_STRICT)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({PA_POLICY: {"exemptNamespaces": entries}}))
    proc = _check("--manifests", str(tmp_path / "m"), "--policy-pack-config", str(bad))
    assert proc.returncode == 2
    assert PA_POLICY in proc.stderr
    assert "exemptNamespaces" in proc.stderr


@needs_pack
def test_every_config_mistake_is_reported_at_once_with_file_key_value_and_nearest_name(
    tmp_path: Path,
) -> None:
    _write(tmp_path / "m", "all.yaml", MESH_STRICT)
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                # a misspelt property would lose the exemption silently
                "istio-namespace-require-sidecar-injection": {"exemptNamespace": ["legacy"]},
                "istio-peerauthentication-require-strict-mtl": "advisory",  # misspelt policy
                PA_POLICY: {"exemptPorts": "15020"},  # wrong type
                "istio-authorizationpolicy-deny-paths-normalization-safe": "advisroy",
            }
        )
    )
    proc = _check("--manifests", str(tmp_path / "m"), "--policy-pack-config", str(bad))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith(f"{bad}: ")]
    assert len(lines) == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    joined = "\n".join(lines)
    assert '.exemptNamespace: ["legacy"]' in joined
    assert "did you mean `exemptNamespaces`?" in joined
    assert f"did you mean `{PA_POLICY}`?" in joined
    assert f"{PA_POLICY}.exemptPorts: '15020'" in joined
    assert "did you mean `advisory`?" in joined
    assert "PASS" not in proc.stdout  # nothing was judged with a config the CLI would refuse


@needs_pack
def test_the_check_finds_the_packs_policy_config_without_the_makefile(tmp_path: Path) -> None:
    """`python -m tools.check` alone judges with the file `make check` and CI pass."""
    manifests = _write(tmp_path / "m", "mesh.yaml", MESH_STRICT).parent
    found = _check("--manifests", str(manifests))
    assert found.returncode == 0, found.stderr
    assert "config policy-pack/policy-config.json" in found.stdout
    bare = _check("--manifests", str(manifests), "--no-policy-pack-config")
    assert "no policy config" in bare.stdout
    chosen = tmp_path / "mine.json"
    chosen.write_text("{}")
    by_env = _check("--manifests", str(manifests), env={"POLICY_PACK_CONFIG": str(chosen)})
    assert f"config {chosen}" in by_env.stdout


def test_a_directory_that_is_not_kubernetes_stops_the_check(tmp_path: Path) -> None:
    _write(tmp_path, "x.yaml", {"hello": "world"})
    proc = _check("--manifests", str(tmp_path), "--policy-pack", str(NOOP))
    assert proc.returncode == 2
    assert "x.yaml#0" in proc.stderr


def test_the_noop_floor_passes_the_dev_stack() -> None:
    report = run(stack_target("dev"), pack_dir=NOOP)
    assert report.info.name == "noop"
    assert report.info.version == "0.1.0"  # PulumiPolicy.yaml's version, as the CLI reports it
    assert not report.failed
    assert report.result.all_diagnostics == []


# --- what the engine would send ------------------------------------------------------------------


def test_type_tokens_follow_pulumi_kubernetes() -> None:
    assert k8s_type("v1", "Service") == "kubernetes:core/v1:Service"
    assert k8s_type("apps/v1", "Deployment") == "kubernetes:apps/v1:Deployment"
    assert (
        k8s_type("security.istio.io/v1beta1", "AuthorizationPolicy")
        == "kubernetes:security.istio.io/v1beta1:AuthorizationPolicy"
    )


def test_manifests_become_chart_children(tmp_path: Path) -> None:
    directory = tmp_path / "rendered"
    _write(
        directory,
        "a.yaml",
        PERMISSIVE,
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}},
            ],
        },
    )
    target = manifests_target(directory)
    types = [r.type for r in target.resources]
    assert types[:3] == [STACK_TYPE, "pulumi:providers:kubernetes", CHART_TYPE]
    chart = target.resources[2]
    children = target.resources[3:]
    assert [c.type for c in children] == [
        "kubernetes:security.istio.io/v1beta1:PeerAuthentication",
        "kubernetes:core/v1:Namespace",
    ]
    pa, ns = children
    assert pa.name == "rendered:payments/legacy"
    assert ns.name == "rendered:payments"  # cluster-scoped: no namespace part
    assert pa.urn == (
        "urn:pulumi:manifests::aimesh::kubernetes:helm.sh/v4:Chart$"
        "kubernetes:security.istio.io/v1beta1:PeerAuthentication::rendered:payments/legacy"
    )
    assert all(c.parent == chart.urn for c in children)
    assert all(
        c.provider is not None and c.provider.type == "pulumi:providers:kubernetes"
        for c in children
    )
    assert pa.properties == PERMISSIVE
    assert target.sources[pa.urn] == "a.yaml#0"


def test_duplicate_objects_are_refused_like_the_engine_would(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", PERMISSIVE)
    _write(tmp_path, "b.yaml", PERMISSIVE)
    with pytest.raises(ValueError, match="duplicate"):
        manifests_target(tmp_path)


def test_stack_target_describes_resources_as_the_engine_does() -> None:
    target = stack_target("dev")
    root, *rest = target.resources
    assert root.type == STACK_TYPE
    assert root.urn == "urn:pulumi:dev::aimesh::pulumi:pulumi:Stack::aimesh-dev"
    assert rest
    urns = {r.urn for r in target.resources}
    for r in rest:
        assert r.parent in urns, r.urn
        assert r.name == r.urn.rsplit("::", 1)[-1]
        custom_k8s = r.type.startswith("kubernetes:") and "helm.sh" not in r.type
        if custom_k8s:
            assert r.provider is not None, r.urn
            assert r.provider.type == "pulumi:providers:kubernetes"
            assert r.provider.urn in urns
    # AnalyzeStack sees the stack's exports as the root stack's properties.
    assert set(target.stack_properties) == {root.urn}
    assert target.config["aimesh:environment"]


# --- wire encoding and policy config --------------------------------------------------------------


def test_values_are_encoded_like_the_engine_marshals_them() -> None:
    from pulumi.output import Unknown

    unknown_value = Unknown()  # type: ignore[no-untyped-call]

    value = {
        "a": unknown_value,
        "b": [1, (2, 3)],
        "__internal": "dropped",
        "s": {SPECIAL_SIG_KEY: SECRET_SIG, "value": {"x": unknown_value}},
        "nested": {"__defaults": [], "keep": None},
    }
    assert encode_value(value) == {
        "a": UNKNOWN,
        "b": [1, [2, 3]],
        "s": {SPECIAL_SIG_KEY: SECRET_SIG, "value": {"x": UNKNOWN}},
        "nested": {"keep": None},
    }


def _info() -> AnalyzerInfo:
    def policy(name: str, level: str, properties: dict[str, Any]) -> PolicyInfo:
        return PolicyInfo(
            name=name,
            display_name="",
            description="",
            enforcement_level=level,
            policy_type="resource",
            severity="high",
            config_schema={"properties": properties, "required": []},
            remediation_steps="",
            url="",
            tags=(),
            framework={},
        )

    return AnalyzerInfo(
        name="p",
        version="1",
        display_name="",
        description="",
        supports_config=True,
        policies=(
            policy("a", "mandatory", {"ports": {"type": "array", "default": [15020]}}),
            policy("b", "advisory", {"flag": {"type": "boolean"}}),
        ),
        initial_config={"b": PolicyConfig("mandatory", {})},
    )


def test_reconcile_fills_defaults_then_initial_config_then_the_file() -> None:
    result = reconcile_policy_config(_info())
    assert result["a"] == PolicyConfig("mandatory", {"ports": [15020]})
    assert result["b"] == PolicyConfig("mandatory", {})  # the pack's initial config

    result = reconcile_policy_config(
        _info(), {"all": PolicyConfig("advisory"), "a": PolicyConfig("", {"ports": [8080]})}
    )
    assert result["a"] == PolicyConfig("advisory", {"ports": [8080]})
    assert result["b"].enforcement_level == "advisory"


def test_reconcile_rejects_config_that_breaks_the_schema() -> None:
    with pytest.raises(PolicyConfigError, match=r"b\.flag: .*boolean"):
        reconcile_policy_config(_info(), {"b": PolicyConfig("", {"flag": "yes"})})


def test_reconcile_rejects_names_the_pack_does_not_have() -> None:
    with pytest.raises(PolicyConfigError) as raised:
        reconcile_policy_config(
            _info(),
            {
                "all": PolicyConfig("advisory"),
                "c": PolicyConfig("advisory"),
                "a": PolicyConfig("", {"port": [1]}),
            },
        )
    assert raised.value.problems == [
        "c: no such policy in p",
        "a.port: [1]: not a property of this policy; did you mean `ports`?",
    ]


def test_config_file_format_matches_the_cli(tmp_path: Path) -> None:
    assert parse_policy_config(
        {"a": "disabled", "b": {"enforcementLevel": "remediate", "x": 1}}
    ) == {
        "a": PolicyConfig("disabled", {}),
        "b": PolicyConfig("remediate", {"x": 1}),
    }
    assert parse_policy_config({"c": {}}) == {}
    with pytest.raises(PolicyConfigError, match="a"):
        parse_policy_config({"a": "sometimes"})
    with pytest.raises(PolicyConfigError, match="b"):
        parse_policy_config({"b": ["advisory"]})
    problems: list[str] = []
    assert parse_policy_config({"a": "mandatroy", "b": "advisory"}, problems) == {
        "b": PolicyConfig("advisory", {})
    }
    assert problems == [
        'a: "mandatroy": not an enforcement level (advisory, mandatory, remediate, disabled); '
        "did you mean `mandatory`?"
    ]
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": "advisory",}')
    with pytest.raises(PolicyConfigError, match=rf"^{re.escape(str(broken))}: line 1 column"):
        load_policy_config(broken)
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    assert load_policy_config(empty) == {}


# --- starting packs ------------------------------------------------------------------------------


def test_a_pack_that_crashes_on_start_is_reported_with_its_traceback(tmp_path: Path) -> None:
    from tools.analyzer import AnalyzerError, PolicyPackProcess

    (tmp_path / "__main__.py").write_text("raise RuntimeError('no policies for you')\n")
    with pytest.raises(AnalyzerError, match="no policies for you"), PolicyPackProcess(tmp_path):
        pass


def test_a_pack_that_prints_no_port_is_refused(tmp_path: Path) -> None:
    from tools.analyzer import AnalyzerError, PolicyPackProcess

    (tmp_path / "__main__.py").write_text("print('hello')\n")
    with pytest.raises(AnalyzerError, match="instead of its port"), PolicyPackProcess(tmp_path):
        pass


def test_check_exits_2_when_the_pack_does_not_start(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "__main__.py").write_text("import sys; sys.exit(3)\n")
    _write(tmp_path / "m", "a.yaml", MESH_STRICT)
    proc = _check("--manifests", str(tmp_path / "m"), "--policy-pack", str(pack))
    assert proc.returncode == 2
    assert "did not print its port" in proc.stderr


# --- Lua sources ---------------------------------------------------------------------------------

LUA_FILTER = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "EnvoyFilter",
    "metadata": {"name": "masking", "namespace": "team-a"},
    "spec": {
        "configPatches": [
            {
                "applyTo": "HTTP_FILTER",
                "match": {"context": "SIDECAR_INBOUND"},
                "patch": {
                    "operation": "INSERT_BEFORE",
                    "value": {
                        "name": "envoy.filters.http.lua",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                            "default_source_code": {"inline_string": "function f() end"},
                            "sourceCodes": {"b": {"inlineString": "return 1"}},
                        },
                    },
                },
            },
            {
                "applyTo": "HTTP_ROUTE",
                "match": {"context": "SIDECAR_INBOUND"},
                "patch": {
                    "operation": "MERGE",
                    "value": {
                        "typed_per_filter_config": {
                            "envoy.filters.http.lua": {
                                "@type": "type.googleapis.com/"
                                "envoy.extensions.filters.http.lua.v3.LuaPerRoute",
                                "source_code": {"inline_string": "function envoy_on_request(h)"},
                            }
                        }
                    },
                },
            },
        ]
    },
}


def test_every_embedded_lua_source_is_found_and_compiled() -> None:
    from tools.analyzer import Resource
    from tools.envoy_lua import compile_errors, lua_sources

    resource = Resource(type="t", urn="urn:x", name="masking", properties=LUA_FILTER)
    found = lua_sources([resource])
    assert [s.path for s in found] == [
        "spec.configPatches[0].patch.value.typed_config.default_source_code",
        'spec.configPatches[0].patch.value.typed_config.source_codes["b"]',
        "spec.configPatches[1].patch.value.typed_per_filter_config.envoy.filters.http.lua"
        ".source_code",
    ]
    pytest.importorskip("lupa", reason="lupa compiles the Lua sources")
    (error,) = compile_errors(found)  # the unterminated per-route function
    assert error.startswith("urn:x: spec.configPatches[1]")


@needs_pack
def test_a_lua_source_that_does_not_compile_fails_the_check(tmp_path: Path) -> None:
    pytest.importorskip("lupa", reason="lupa compiles the Lua sources")
    _write(tmp_path, "mesh.yaml", MESH_STRICT, LUA_FILTER)
    proc = _check("--manifests", str(tmp_path), "--json")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    lua = json.loads(proc.stdout)["lua"]
    assert lua["sources"] == 3
    assert len(lua["errors"]) == 1


def test_a_stack_lacking_secrets_is_checked_with_stand_ins_and_says_so() -> None:
    from tools import check

    prod = check.stack_target("prod")
    # The other note says which policy offline evaluation cannot feed (no Helm here).
    (note,) = [n for n in prod.notes if check.RENDERED_OUTPUT not in n]
    assert "Pulumi.prod.yaml lacks 6 required value(s)" in note
    assert "pulumi config set --stack prod --secret --path 'aimesh:siemSinks[0].token'" in note
    assert "stand-ins" in note
    dev = check.stack_target("dev")
    assert [n for n in dev.notes if check.RENDERED_OUTPUT not in n] == []


def test_a_config_error_is_reported_with_file_and_line_never_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from functools import partial

    from tools import check

    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.typo.yaml").write_text(
        "config:\n  aimesh:environment: dev\n  aimsh:clusterName: foo\n  aimesh:clusterNmae: x\n"
    )
    monkeypatch.chdir(tmp_path)  # where the program looks for Pulumi.<stack>.yaml
    monkeypatch.delenv("POLICY_PACK_CONFIG", raising=False)  # make sets it relative to the repo
    monkeypatch.setattr(offline, "stack_inputs", partial(offline.stack_inputs, root=tmp_path))
    assert check.main(["--stack", "typo"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "Pulumi.typo.yaml:3: aimsh:clusterName: unknown namespace `aimsh`" in err
    assert "Pulumi.typo.yaml:4: aimesh:clusterNmae: unknown key" in err
    assert "did you mean `aimesh:clusterName`?" in err


@needs_pack
def test_an_ended_exemption_exempts_nothing_and_is_reported(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    _write(manifests, "all.yaml", MESH_STRICT, PERMISSIVE)
    config = tmp_path / "ended.json"
    entry = {"name": "payments", "reason": "legacy clients", "expires": "2020-01-31"}
    config.write_text(json.dumps({PA_POLICY: {"exemptNamespaces": [entry]}}))
    proc = _check("--manifests", str(manifests), "--policy-pack-config", str(config))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Not exempt: exemptNamespaces entry 'payments' (legacy clients) ended on 2020-01-31" in (
        proc.stdout
    )
    assert f"exemption {PA_POLICY}: exemptNamespaces 'payments' (legacy clients) ended on" in (
        proc.stdout
    )
