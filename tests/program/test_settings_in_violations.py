"""Violations speak the user's language: objects generated from a stack setting say which one
(annotation `aimesh.io/setting`), and the pack's verdict in `make check` names that setting and
the change that fixes it, next to the Kubernetes detail."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import yaml

from aimesh.builders.common import SETTING_ANNOTATION
from tests.conftest import evaluated
from tools import offline

ROOT = Path(__file__).resolve().parents[2]
SECURE_MODEL = "aimesh:secureModel:SecureModel"


def _setting(inputs: dict[str, object]) -> object:
    meta = inputs.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations.get(SETTING_ANNOTATION) if isinstance(annotations, dict) else None


@pytest.mark.parametrize("stack", offline.stacks())
def test_every_object_of_a_model_names_its_setting(stack: str) -> None:
    evaluation = evaluated(stack)
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    names = [m["name"] for m in config.get("aimesh:models", [])]
    components = {r.urn: r.name for r in evaluation.resources if r.type == SECURE_MODEL}
    assert sorted(components.values()) == sorted(names)
    children = [r for r in evaluation.resources if r.parent in components]
    assert children
    for child in children:
        index = names.index(components[child.parent])
        assert _setting(child.inputs) == f"aimesh:models[{index}]", child.name


def test_platform_objects_name_their_setting() -> None:
    evaluation = evaluated("dev")
    (sidecar,) = evaluation.find("Sidecar", "default")
    assert _setting(sidecar) == "aimesh:outboundTrafficPolicy"
    overrides = evaluation.find("Telemetry", "aimesh-override")
    assert overrides
    assert [_setting(t) for t in overrides] == [
        f"aimesh:telemetryOverrides[{i}]" for i in range(len(overrides))
    ]
    # A fixed object (not from any setting) says nothing.
    (strict,) = evaluation.find("PeerAuthentication")
    assert _setting(strict) is None


def test_make_check_names_the_setting_and_its_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's two cases: a model nobody may call, and egress to anywhere."""
    from tools import check

    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    config["config"]["aimesh:outboundTrafficPolicy"] = "ALLOW_ANY"
    churn = config["config"]["aimesh:models"][1]
    churn.pop("callers")
    churn.pop("integrations")
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.weak.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLICY_PACK_CONFIG", raising=False)
    monkeypatch.setattr(offline, "stack_inputs", partial(offline.stack_inputs, root=tmp_path))
    monkeypatch.setenv("COLUMNS", "200")

    assert (
        check.main(
            [
                "--stack",
                "weak",
                "--policy-pack-config",
                str(ROOT / "policy-pack" / "policy-config.json"),
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    # The Kubernetes detail stays, the stack setting and its change follow it.
    assert "no ALLOW AuthorizationPolicy naming principals covers the predictor" in out
    assert "generated from `aimesh:models[1]`" in out
    assert "`aimesh:models[1].callers`" in out
    assert "spec.outboundTrafficPolicy.mode: ALLOW_ANY" in out
    assert "set `aimesh:outboundTrafficPolicy: REGISTRY_ONLY`" in out
